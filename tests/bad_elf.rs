//! Bad executables (§1, §2, §4.3): the real `hello` guest, broken one field
//! at a time. Each is refused with its message on stderr and exit 1, never
//! with a panic or a signal.

mod common;

use core::mem::{offset_of, size_of};

use common::{guest, tender, write_image, Elf, NOTE_TYPE, PT_LOAD, PT_NOTE};
use hvt_abi::layout::GUEST_MIN_BASE;
use hvt_abi::manifest::{
    Mft, MftEntry, MftHeader, MFT_DEV_BLOCK_BASIC, MFT_DEV_NET_BASIC, MFT_NAME_SIZE,
    MFT_RESERVED_FIRST, MFT_VERSION,
};
use hvt_abi::note::{
    target, AbiDesc, AbiNote, ManifestNote, NoteHeader, ABI1_NOTE_MAX_DESCSZ, ABI1_NOTE_TYPE,
    HVT_ABI_VERSION, MFT1_NOTE_MAX_DESCSZ, MFT1_NOTE_TYPE, NOTE_MIN_SEGMENT,
    SOLO5_NOTE_HEADER_SIZE,
};

/// The hello guest's bytes, ready to be broken.
fn hello() -> Elf {
    Elf::load(&guest("hello"))
}

/// A program-header field of header `i`.
fn ph(elf: &Elf, i: usize, field: usize) -> u64 {
    elf.u64_at(elf.phdr(i) + field)
}

fn set_ph(elf: &mut Elf, i: usize, field: usize, value: u64) {
    let off = elf.phdr(i) + field;
    elf.set_u64(off, value);
}

fn set_ph_flags(elf: &mut Elf, i: usize, flags: u32) {
    let off = elf.phdr(i) + Elf::P_FLAGS;
    elf.set_u32(off, flags);
}

/// The PT_LOAD headers the tender copies (`p_filesz != 0`), in file order.
fn loaded(elf: &Elf) -> Vec<usize> {
    elf.phdrs_of(PT_LOAD)
        .into_iter()
        .filter(|&i| ph(elf, i, Elf::P_FILESZ) != 0)
        .collect()
}

/// Writes `bytes` as a fresh image, runs the tender on it after `options`,
/// and checks that the only output is the one line "tender: MESSAGE" where
/// `message` gets the image's path, with exit 1 and no panic or signal.
fn assert_refused(tag: &str, bytes: &[u8], options: &[&str], message: impl FnOnce(&str) -> String) {
    let path = write_image(tag, "kernel", bytes);
    let path = path.to_str().expect("UTF-8 path");
    let mut args: Vec<&str> = options.to_vec();
    args.push(path);
    let run = tender(&args);
    assert_ne!(run.code, -1, "tender was killed: {}", run.stderr);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    assert_eq!(run.code, 1, "{}", run.output());
    assert_eq!(run.stdout, "", "{}", run.output());
    assert_eq!(run.stderr, format!("tender: {}\n", message(path)));
}

/// "PATH: invalid or unsupported executable (elf header invalid: WHY)".
fn header_invalid(why: &str) -> impl FnOnce(&str) -> String + '_ {
    move |path| format!("{path}: invalid or unsupported executable (elf header invalid: {why})")
}

/// "PATH: invalid executable: WHY".
fn invalid(why: String) -> impl FnOnce(&str) -> String {
    move |path| format!("{path}: invalid executable: {why}")
}

/// A message that does not name the file.
fn plain(message: &str) -> impl FnOnce(&str) -> String + '_ {
    move |_| message.to_owned()
}

// ---------------------------------------------------------------------------
// The harness itself: an unbroken copy runs.

#[test]
fn unbroken_copy_runs() {
    let path = write_image("unbroken", "kernel", &hello().bytes);
    let run = tender(["--mem=2".as_ref(), path.as_os_str()]);
    assert_eq!(run.code, 0, "{}", run.output());
    assert!(run.stdout.contains("SUCCESS"), "{}", run.stdout);
}

// ---------------------------------------------------------------------------
// ELF header (§2).

#[test]
fn text_file_is_not_an_elf() {
    let text = b"#!/bin/sh\n# This is a shell script, not a unikernel at all.\necho hello\n";
    assert_refused("text", text, &[], header_invalid("bad magic"));
}

#[test]
fn random_bytes_are_not_an_elf() {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let bytes: Vec<u8> = (0..8192)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        })
        .collect();
    assert_ne!(&bytes[..4], b"\x7fELF");
    assert_refused("random", &bytes, &[], header_invalid("bad magic"));
}

#[test]
fn empty_file_is_too_short() {
    assert_refused("empty", &[], &[], header_invalid("file too short"));
}

#[test]
fn file_cut_inside_the_elf_header_is_too_short() {
    let elf = hello();
    assert_refused(
        "cut-ehdr",
        &elf.bytes[..40],
        &[],
        header_invalid("file too short"),
    );
}

#[test]
fn file_cut_inside_the_program_headers_is_refused() {
    let elf = hello();
    let cut = elf.phdr(elf.phnum() / 2) + 10;
    assert_refused(
        "cut-phdrs",
        &elf.bytes[..cut],
        &[],
        header_invalid("program headers past the end of the file"),
    );
}

#[test]
fn program_headers_offset_past_the_end_is_refused() {
    let mut elf = hello();
    elf.set_u64(32, u64::MAX - 8);
    assert_refused(
        "phoff-huge",
        &elf.bytes,
        &[],
        header_invalid("program headers past the end of the file"),
    );
}

#[test]
fn elfclass32_is_not_elf64() {
    let mut elf = hello();
    elf.bytes[4] = 1;
    assert_refused("class32", &elf.bytes, &[], header_invalid("not ELF64"));
}

#[test]
fn big_endian_is_refused() {
    let mut elf = hello();
    elf.bytes[5] = 2;
    assert_refused("msb", &elf.bytes, &[], header_invalid("not little-endian"));
}

#[test]
fn wrong_e_version_is_refused() {
    let mut elf = hello();
    elf.set_u32(20, 2);
    assert_refused("version", &elf.bytes, &[], header_invalid("bad version"));
}

#[test]
fn wrong_machine_is_refused() {
    let mut elf = hello();
    elf.set_u16(18, 3); // EM_386
    assert_refused("machine", &elf.bytes, &[], header_invalid("not EM_X86_64"));
}

#[test]
fn shared_object_is_not_et_exec() {
    let mut elf = hello();
    elf.set_u16(16, 3); // ET_DYN
    assert_refused("et-dyn", &elf.bytes, &[], header_invalid("not ET_EXEC"));
}

#[test]
fn wrong_e_ehsize_is_refused() {
    let mut elf = hello();
    elf.set_u16(52, 52);
    assert_refused("ehsize", &elf.bytes, &[], header_invalid("bad e_ehsize"));
}

#[test]
fn wrong_e_phentsize_is_refused() {
    let mut elf = hello();
    elf.set_u16(54, 64);
    assert_refused(
        "phentsize",
        &elf.bytes,
        &[],
        header_invalid("bad e_phentsize"),
    );
}

#[test]
fn zero_program_headers_is_refused() {
    let mut elf = hello();
    elf.set_u16(56, 0);
    assert_refused(
        "phnum0",
        &elf.bytes,
        &[],
        header_invalid("no program headers"),
    );
}

// ---------------------------------------------------------------------------
// Entry point and segments (§2).

#[test]
fn entry_point_below_0x100000_is_refused() {
    let mut elf = hello();
    let entry = GUEST_MIN_BASE / 2;
    elf.set_u64(24, entry);
    assert_refused(
        "entry-low",
        &elf.bytes,
        &["--mem=2"],
        invalid(format!("entry point {entry:#x} is outside guest memory")),
    );
}

#[test]
fn entry_point_at_the_end_of_memory_is_refused() {
    let mut elf = hello();
    elf.set_u64(24, 0x200000);
    assert_refused(
        "entry-high",
        &elf.bytes,
        &["--mem=2"],
        invalid("entry point 0x200000 is outside guest memory".into()),
    );
}

#[test]
fn segment_below_0x100000_is_refused() {
    let mut elf = hello();
    let i = loaded(&elf)[0];
    set_ph(&mut elf, i, Elf::P_VADDR, GUEST_MIN_BASE / 2);
    assert_refused(
        "seg-low",
        &elf.bytes,
        &["--mem=2"],
        invalid(format!(
            "phdr[{i}]: segment below the minimum load address {GUEST_MIN_BASE:#x}"
        )),
    );
}

#[test]
fn segments_out_of_ascending_order_are_refused() {
    let mut elf = hello();
    let (a, b) = (loaded(&elf)[1], loaded(&elf)[2]);
    let (va, vb) = (ph(&elf, a, Elf::P_VADDR), ph(&elf, b, Elf::P_VADDR));
    set_ph(&mut elf, a, Elf::P_VADDR, vb);
    set_ph(&mut elf, b, Elf::P_VADDR, va);
    assert_refused(
        "seg-order",
        &elf.bytes,
        &["--mem=2"],
        invalid(format!("phdr[{b}]: segments are not in ascending order")),
    );
}

#[test]
fn overlapping_segments_are_refused() {
    let mut elf = hello();
    let (a, b) = (loaded(&elf)[0], loaded(&elf)[1]);
    // Stretch the first segment one page over the start of the second.
    let memsz = ph(&elf, b, Elf::P_VADDR) - ph(&elf, a, Elf::P_VADDR) + 0x1000;
    set_ph(&mut elf, a, Elf::P_MEMSZ, memsz);
    assert_refused(
        "seg-overlap",
        &elf.bytes,
        &["--mem=2"],
        invalid(format!("phdr[{b}]: segment overlaps a previous segment")),
    );
}

#[test]
fn segment_not_4k_aligned_is_refused() {
    // With p_align 0x1000 an unaligned p_vaddr is rounded to whole pages
    // (start down, end up) and accepted, as upstream does; a smaller
    // p_align leaves the segment's pages partial.
    let mut elf = hello();
    let i = *loaded(&elf).last().unwrap();
    let vaddr = ph(&elf, i, Elf::P_VADDR);
    set_ph(&mut elf, i, Elf::P_VADDR, vaddr + 0x10);
    set_ph(&mut elf, i, Elf::P_ALIGN, 0x10);
    assert_refused(
        "seg-unaligned",
        &elf.bytes,
        &["--mem=2"],
        invalid(format!("phdr[{i}]: segment is not 4 KiB aligned")),
    );
}

#[test]
fn p_align_not_a_power_of_two_is_refused() {
    let mut elf = hello();
    let i = loaded(&elf)[0];
    set_ph(&mut elf, i, Elf::P_ALIGN, 0x1800);
    assert_refused(
        "align-npot",
        &elf.bytes,
        &["--mem=2"],
        invalid(format!("phdr[{i}]: p_align is not a power of two")),
    );
}

#[test]
fn p_align_zero_is_refused() {
    let mut elf = hello();
    let i = loaded(&elf)[0];
    set_ph(&mut elf, i, Elf::P_ALIGN, 0);
    assert_refused(
        "align-zero",
        &elf.bytes,
        &["--mem=2"],
        invalid(format!("phdr[{i}]: p_align is not a power of two")),
    );
}

#[test]
fn write_and_exec_segment_is_refused() {
    let mut elf = hello();
    let i = loaded(&elf)[0];
    set_ph_flags(&mut elf, i, 4 | 2 | 1); // R W X
    assert_refused(
        "wx",
        &elf.bytes,
        &["--mem=2"],
        invalid(format!(
            "phdr[{i}]: segment requests WRITE and EXEC permissions"
        )),
    );
}

#[test]
fn p_memsz_below_p_filesz_is_refused() {
    let mut elf = hello();
    let i = loaded(&elf)[0];
    let filesz = ph(&elf, i, Elf::P_FILESZ);
    set_ph(&mut elf, i, Elf::P_MEMSZ, filesz - 1);
    assert_refused(
        "memsz-small",
        &elf.bytes,
        &["--mem=2"],
        invalid(format!("phdr[{i}]: p_memsz is smaller than p_filesz")),
    );
}

#[test]
fn segment_address_past_the_end_of_memory_is_refused() {
    let mut elf = hello();
    let i = *loaded(&elf).last().unwrap();
    set_ph(&mut elf, i, Elf::P_VADDR, 0x1000_0000);
    assert_refused(
        "seg-past-mem",
        &elf.bytes,
        &["--mem=2"],
        invalid(format!("phdr[{i}]: segment is outside guest memory")),
    );
}

#[test]
fn segment_address_near_u64_max_is_refused() {
    let mut elf = hello();
    let i = *loaded(&elf).last().unwrap();
    set_ph(&mut elf, i, Elf::P_VADDR, 0xffff_ffff_ffff_f000);
    assert_refused(
        "seg-u64max",
        &elf.bytes,
        &["--mem=2"],
        invalid(format!("phdr[{i}]: segment is outside guest memory")),
    );
}

#[test]
fn segment_memory_size_past_the_end_of_memory_is_refused() {
    let mut elf = hello();
    let i = *loaded(&elf).last().unwrap();
    set_ph(&mut elf, i, Elf::P_MEMSZ, 0x20_0000);
    assert_refused(
        "memsz-past-mem",
        &elf.bytes,
        &["--mem=2"],
        invalid(format!(
            "phdr[{i}]: segment memory size is outside guest memory"
        )),
    );
}

#[test]
fn segment_memory_size_that_overflows_is_refused() {
    let mut elf = hello();
    let i = *loaded(&elf).last().unwrap();
    set_ph(&mut elf, i, Elf::P_MEMSZ, u64::MAX);
    assert_refused(
        "memsz-overflow",
        &elf.bytes,
        &["--mem=2"],
        invalid(format!(
            "phdr[{i}]: segment memory size is outside guest memory"
        )),
    );
}

#[test]
fn segment_file_size_that_overflows_is_refused() {
    let mut elf = hello();
    let i = *loaded(&elf).last().unwrap();
    set_ph(&mut elf, i, Elf::P_FILESZ, u64::MAX - 0x100);
    set_ph(&mut elf, i, Elf::P_MEMSZ, u64::MAX - 0x100);
    assert_refused(
        "filesz-overflow",
        &elf.bytes,
        &["--mem=2"],
        invalid(format!(
            "phdr[{i}]: segment file size is outside guest memory"
        )),
    );
}

#[test]
fn segment_offset_past_the_end_of_the_file_is_refused() {
    let mut elf = hello();
    let i = *loaded(&elf).last().unwrap();
    let offset = elf.bytes.len() as u64 + 0x1000;
    set_ph(&mut elf, i, Elf::P_OFFSET, offset);
    assert_refused(
        "offset-past-eof",
        &elf.bytes,
        &["--mem=2"],
        invalid(format!(
            "phdr[{i}]: segment data lies past the end of the file"
        )),
    );
}

#[test]
fn segment_larger_than_the_file_is_refused() {
    // A file size within guest memory but far beyond the file: refused
    // without a crash, even with the largest guest memory.
    let mut elf = hello();
    let i = *loaded(&elf).last().unwrap();
    let filesz = 0xf000_0000u64;
    set_ph(&mut elf, i, Elf::P_FILESZ, filesz);
    set_ph(&mut elf, i, Elf::P_MEMSZ, filesz);
    assert_refused(
        "filesz-past-eof",
        &elf.bytes,
        &["--mem=4096"],
        invalid(format!(
            "phdr[{i}]: segment data lies past the end of the file"
        )),
    );
}

// ---------------------------------------------------------------------------
// Notes (§1.2, §1.4).

/// Offset of `n_descsz` in a note header.
const NOTE_DESCSZ: usize = offset_of!(NoteHeader, descsz);
/// Offsets of the ABI1 note's name and descriptor fields in the note.
const ABI_NAME: usize = offset_of!(AbiNote, name);
const ABI_TARGET: usize = offset_of!(AbiNote, desc) + offset_of!(AbiDesc, abi_target);
const ABI_VERSION: usize = offset_of!(AbiNote, desc) + offset_of!(AbiDesc, abi_version);

#[test]
fn missing_abi_note_is_refused() {
    let mut elf = hello();
    let off = elf.note_offset(ABI1_NOTE_TYPE);
    elf.set_u32(off + NOTE_TYPE, u32::from_le_bytes(*b"ABI2"));
    assert_refused(
        "no-abi",
        &elf.bytes,
        &[],
        plain("No Solo5 ABI information found in executable"),
    );
}

#[test]
fn abi_note_with_another_owner_is_not_found() {
    let mut elf = hello();
    let off = elf.note_offset(ABI1_NOTE_TYPE) + ABI_NAME;
    elf.bytes[off..off + 5].copy_from_slice(b"Solo6");
    assert_refused(
        "abi-owner",
        &elf.bytes,
        &[],
        plain("No Solo5 ABI information found in executable"),
    );
}

#[test]
fn abi_note_for_another_target_is_refused() {
    let mut elf = hello();
    let off = elf.note_offset(ABI1_NOTE_TYPE);
    elf.set_u32(off + ABI_TARGET, target::SPT);
    assert_refused(
        "abi-target",
        &elf.bytes,
        &[],
        plain("Executable is not for the solo5-hvt target"),
    );
}

#[test]
fn abi_version_3_is_refused() {
    let mut elf = hello();
    let off = elf.note_offset(ABI1_NOTE_TYPE);
    let version = HVT_ABI_VERSION + 1;
    elf.set_u32(off + ABI_VERSION, version);
    assert_refused(
        "abi-version",
        &elf.bytes,
        &[],
        plain(&format!(
            "Executable requests unsupported ABI version {version}"
        )),
    );
}

#[test]
fn note_segment_below_12_bytes_is_refused() {
    let mut elf = hello();
    let i = elf.phdrs_of(PT_NOTE)[0];
    set_ph(&mut elf, i, Elf::P_FILESZ, 0);
    assert_refused(
        "note-empty",
        &elf.bytes,
        &[],
        invalid(format!(
            "phdr[{i}].p_filesz note does not fall within valid size (0 < {NOTE_MIN_SEGMENT})"
        )),
    );
}

#[test]
fn note_segment_of_12_to_19_bytes_is_ignored() {
    let mut elf = hello();
    let i = elf.phdrs_of(PT_NOTE)[0];
    assert_ne!(i, elf.note_phdr(ABI1_NOTE_TYPE));
    set_ph(&mut elf, i, Elf::P_FILESZ, NOTE_MIN_SEGMENT);
    let path = write_image("note-12", "kernel", &elf.bytes);
    let run = tender(["--mem=2".as_ref(), path.as_os_str()]);
    assert_eq!(run.code, 0, "{}", run.output());
    assert!(run.stdout.contains("SUCCESS"), "{}", run.stdout);
}

#[test]
fn abi_note_descsz_beyond_its_segment_is_refused() {
    let mut elf = hello();
    let i = elf.note_phdr(ABI1_NOTE_TYPE);
    let off = elf.note_offset(ABI1_NOTE_TYPE);
    let filesz = ph(&elf, i, Elf::P_FILESZ);
    // The maximum, but header and descriptor then overrun the segment.
    elf.set_u32(off + NOTE_DESCSZ, ABI1_NOTE_MAX_DESCSZ);
    assert_refused(
        "abi-descsz-segment",
        &elf.bytes,
        &[],
        invalid(format!(
            "phdr[{i}] note does not fall within valid size (descsz {ABI1_NOTE_MAX_DESCSZ}, p_filesz {filesz})"
        )),
    );
}

#[test]
fn abi_note_descsz_above_its_maximum_is_refused() {
    let mut elf = hello();
    let i = elf.note_phdr(ABI1_NOTE_TYPE);
    let off = elf.note_offset(ABI1_NOTE_TYPE);
    let descsz = ABI1_NOTE_MAX_DESCSZ + 1;
    elf.set_u32(off + NOTE_DESCSZ, descsz);
    let filesz = SOLO5_NOTE_HEADER_SIZE + u64::from(descsz).next_multiple_of(8);
    set_ph(&mut elf, i, Elf::P_FILESZ, filesz);
    assert_refused(
        "abi-descsz-max",
        &elf.bytes,
        &[],
        invalid(format!(
            "phdr[{i}] note does not fall within valid size (descsz {descsz}, p_filesz {filesz})"
        )),
    );
}

#[test]
fn abi_note_descsz_zero_is_refused() {
    let mut elf = hello();
    let i = elf.note_phdr(ABI1_NOTE_TYPE);
    let off = elf.note_offset(ABI1_NOTE_TYPE);
    let filesz = ph(&elf, i, Elf::P_FILESZ);
    elf.set_u32(off + NOTE_DESCSZ, 0);
    assert_refused(
        "abi-descsz-zero",
        &elf.bytes,
        &[],
        invalid(format!(
            "phdr[{i}] note does not fall within valid size (descsz 0, p_filesz {filesz})"
        )),
    );
}

#[test]
fn manifest_note_descsz_above_its_maximum_is_refused() {
    let mut elf = hello();
    let i = elf.note_phdr(MFT1_NOTE_TYPE);
    let off = elf.note_offset(MFT1_NOTE_TYPE);
    let descsz = MFT1_NOTE_MAX_DESCSZ + 1;
    elf.set_u32(off + NOTE_DESCSZ, descsz);
    let filesz = SOLO5_NOTE_HEADER_SIZE + u64::from(descsz).next_multiple_of(8);
    set_ph(&mut elf, i, Elf::P_FILESZ, filesz);
    // The segment may now reach past the end of the file: the size check
    // comes first.
    elf.bytes.resize(elf.bytes.len() + 8192, 0);
    assert_refused(
        "mft-descsz-max",
        &elf.bytes,
        &[],
        invalid(format!(
            "phdr[{i}] note does not fall within valid size (descsz {descsz}, p_filesz {filesz})"
        )),
    );
}

#[test]
fn note_offset_past_the_end_of_the_file_is_refused() {
    let mut elf = hello();
    let i = elf.note_phdr(ABI1_NOTE_TYPE);
    let offset = elf.bytes.len() as u64;
    set_ph(&mut elf, i, Elf::P_OFFSET, offset);
    assert_refused(
        "note-past-eof",
        &elf.bytes,
        &[],
        invalid(format!(
            "read of {SOLO5_NOTE_HEADER_SIZE} bytes at offset 0x{offset:x} is past the end of the file"
        )),
    );
}

// ---------------------------------------------------------------------------
// Manifest (§4.3).

const ENTRY_SIZE: usize = size_of::<MftEntry>();
/// Offsets of an entry's fields.
const ENTRY_NAME: usize = offset_of!(MftEntry, name);
const ENTRY_KIND: usize = offset_of!(MftEntry, kind);
const ENTRY_ATTACHED: usize = offset_of!(MftEntry, attached);
/// Offset of the manifest (`struct mft`) in the MFT1 note, and the padding
/// before it that `n_descsz` counts.
const NOTE_MFT: usize = offset_of!(ManifestNote<1>, mft);
const NOTE_MFT_PAD: usize = NOTE_MFT - offset_of!(ManifestNote<1>, pad);

/// File offset of the manifest (`struct mft`) inside the MFT1 note.
fn mft(elf: &Elf) -> usize {
    elf.note_offset(MFT1_NOTE_TYPE) + NOTE_MFT
}

/// File offset of manifest entry `n`.
fn mft_entry(elf: &Elf, n: usize) -> usize {
    mft(elf) + offset_of!(Mft<1>, entries) + n * ENTRY_SIZE
}

/// An entry named `name` of type `kind`, not attached.
fn entry(name: &[u8], kind: u32) -> [u8; ENTRY_SIZE] {
    let mut e = [0u8; ENTRY_SIZE];
    e[ENTRY_NAME..ENTRY_NAME + name.len()].copy_from_slice(name);
    e[ENTRY_KIND..ENTRY_KIND + 4].copy_from_slice(&kind.to_le_bytes());
    e
}

/// The `u32` at `off` of `bytes`.
fn u32_in(bytes: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(bytes[off..off + 4].try_into().unwrap())
}

/// Moves the manifest note to the end of the file with `extra` appended as
/// one more entry (the note has no room where it is).
fn add_entry(elf: &mut Elf, extra: [u8; ENTRY_SIZE]) {
    let i = elf.note_phdr(MFT1_NOTE_TYPE);
    let old = elf.note_offset(MFT1_NOTE_TYPE);
    let size = usize::try_from(ph(elf, i, Elf::P_FILESZ)).unwrap();
    let mut note = elf.bytes[old..old + size].to_vec();
    let descsz = u32_in(&note, NOTE_DESCSZ) + u32::try_from(ENTRY_SIZE).unwrap();
    note[NOTE_DESCSZ..NOTE_DESCSZ + 4].copy_from_slice(&descsz.to_le_bytes());
    let at = NOTE_MFT + offset_of!(MftHeader, entries);
    let entries = u32_in(&note, at) + 1;
    note[at..at + 4].copy_from_slice(&entries.to_le_bytes());
    note.extend_from_slice(&extra);
    elf.bytes.resize(elf.bytes.len().next_multiple_of(8), 0);
    let new = elf.bytes.len() as u64;
    elf.bytes.extend_from_slice(&note);
    set_ph(elf, i, Elf::P_OFFSET, new);
    set_ph(elf, i, Elf::P_FILESZ, note.len() as u64);
    set_ph(elf, i, Elf::P_MEMSZ, note.len() as u64);
}

const MANIFEST_INVALID: &str = "Solo5 manifest is invalid";

#[test]
fn added_device_is_declared_but_not_attached() {
    // Checks add_entry itself: the larger manifest is valid.
    let mut elf = hello();
    add_entry(&mut elf, entry(b"eth0", MFT_DEV_NET_BASIC));
    assert_refused(
        "mft-added",
        &elf.bytes,
        &["--mem=2"],
        plain(
            "Device 'eth0' of type NET_BASIC declared but not attached.\n\
             tender: All declared devices must be attached. See --help for syntax.",
        ),
    );
}

#[test]
fn manifest_version_2_is_invalid() {
    let mut elf = hello();
    let off = mft(&elf) + offset_of!(MftHeader, version);
    elf.set_u32(off, MFT_VERSION + 1);
    assert_refused("mft-version", &elf.bytes, &[], plain(MANIFEST_INVALID));
}

#[test]
fn manifest_entry_count_not_matching_its_size_is_invalid() {
    let mut elf = hello();
    let off = mft(&elf) + offset_of!(MftHeader, entries);
    elf.set_u32(off, 2);
    assert_refused("mft-size", &elf.bytes, &[], plain(MANIFEST_INVALID));
}

#[test]
fn manifest_with_zero_entries_is_invalid() {
    let mut elf = hello();
    let off = mft(&elf) + offset_of!(MftHeader, entries);
    elf.set_u32(off, 0);
    assert_refused("mft-zero", &elf.bytes, &[], plain(MANIFEST_INVALID));
}

#[test]
fn manifest_note_shorter_than_its_header_is_invalid() {
    let mut elf = hello();
    let off = elf.note_offset(MFT1_NOTE_TYPE);
    let descsz = NOTE_MFT_PAD + size_of::<MftHeader>() - 1;
    elf.set_u32(off + NOTE_DESCSZ, u32::try_from(descsz).unwrap());
    assert_refused("mft-short", &elf.bytes, &[], plain(MANIFEST_INVALID));
}

#[test]
fn manifest_first_entry_not_reserved_is_invalid() {
    let mut elf = hello();
    let off = mft_entry(&elf, 0) + ENTRY_KIND;
    assert_eq!(elf.u32_at(off), MFT_RESERVED_FIRST);
    elf.set_u32(off, MFT_DEV_BLOCK_BASIC);
    assert_refused("mft-first-type", &elf.bytes, &[], plain(MANIFEST_INVALID));
}

#[test]
fn manifest_first_entry_with_a_name_is_invalid() {
    let mut elf = hello();
    let off = mft_entry(&elf, 0) + ENTRY_NAME;
    elf.bytes[off] = b'x';
    assert_refused("mft-first-name", &elf.bytes, &[], plain(MANIFEST_INVALID));
}

#[test]
fn manifest_reserved_entry_attached_is_invalid() {
    let mut elf = hello();
    let off = mft_entry(&elf, 0) + ENTRY_ATTACHED;
    elf.bytes[off] = 1;
    assert_refused("mft-attached0", &elf.bytes, &[], plain(MANIFEST_INVALID));
}

#[test]
fn manifest_device_entry_attached_is_invalid() {
    let mut elf = hello();
    let mut device = entry(b"disk", MFT_DEV_BLOCK_BASIC);
    device[ENTRY_ATTACHED] = 1;
    add_entry(&mut elf, device);
    assert_refused("mft-attached1", &elf.bytes, &[], plain(MANIFEST_INVALID));
}

#[test]
fn manifest_unterminated_name_is_invalid() {
    let mut elf = hello();
    add_entry(&mut elf, entry(&[b'a'; MFT_NAME_SIZE], MFT_DEV_BLOCK_BASIC));
    assert_refused("mft-unterminated", &elf.bytes, &[], plain(MANIFEST_INVALID));
}

#[test]
fn missing_manifest_note_is_refused() {
    let mut elf = hello();
    let off = elf.note_offset(MFT1_NOTE_TYPE);
    elf.set_u32(off + NOTE_TYPE, u32::from_le_bytes(*b"MFT2"));
    assert_refused(
        "no-mft",
        &elf.bytes,
        &[],
        plain("No Solo5 manifest found in executable"),
    );
}
