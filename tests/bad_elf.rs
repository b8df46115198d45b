//! Bad executables (§1, §2, §4.3): the real `hello` guest, broken one field
//! at a time. Each is refused with its message on stderr and exit 1, never
//! with a panic or a signal.

mod common;

use common::{guest, tender, write_image, Elf, ABI1, MFT1, PT_LOAD, PT_NOTE};

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
            state as u8
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
    elf.set_u64(24, 0x80000);
    assert_refused(
        "entry-low",
        &elf.bytes,
        &["--mem=2"],
        invalid("entry point 0x80000 is outside guest memory".into()),
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
    set_ph(&mut elf, i, Elf::P_VADDR, 0x80000);
    assert_refused(
        "seg-low",
        &elf.bytes,
        &["--mem=2"],
        invalid(format!(
            "phdr[{i}]: segment below the minimum load address 0x100000"
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

#[test]
fn missing_abi_note_is_refused() {
    let mut elf = hello();
    let off = elf.note_offset(ABI1);
    elf.set_u32(off + 8, 0x3249_4241); // "ABI2"
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
    let off = elf.note_offset(ABI1);
    elf.bytes[off + 12..off + 17].copy_from_slice(b"Solo6");
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
    let off = elf.note_offset(ABI1);
    elf.set_u32(off + 20, 2); // spt
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
    let off = elf.note_offset(ABI1);
    elf.set_u32(off + 24, 3);
    assert_refused(
        "abi-version",
        &elf.bytes,
        &[],
        plain("Executable requests unsupported ABI version 3"),
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
            "phdr[{i}].p_filesz note does not fall within valid size (0 < 12)"
        )),
    );
}

#[test]
fn note_segment_of_12_to_19_bytes_is_ignored() {
    let mut elf = hello();
    let i = elf.phdrs_of(PT_NOTE)[0];
    assert_ne!(i, elf.note_phdr(ABI1));
    set_ph(&mut elf, i, Elf::P_FILESZ, 12);
    let path = write_image("note-12", "kernel", &elf.bytes);
    let run = tender(["--mem=2".as_ref(), path.as_os_str()]);
    assert_eq!(run.code, 0, "{}", run.output());
    assert!(run.stdout.contains("SUCCESS"), "{}", run.stdout);
}

#[test]
fn abi_note_descsz_beyond_its_segment_is_refused() {
    let mut elf = hello();
    let i = elf.note_phdr(ABI1);
    let off = elf.note_offset(ABI1);
    let filesz = ph(&elf, i, Elf::P_FILESZ);
    elf.set_u32(off + 4, 32); // the maximum, but 20 + 32 > 36
    assert_refused(
        "abi-descsz-segment",
        &elf.bytes,
        &[],
        invalid(format!(
            "phdr[{i}] note does not fall within valid size (descsz 32, p_filesz {filesz})"
        )),
    );
}

#[test]
fn abi_note_descsz_above_its_maximum_is_refused() {
    let mut elf = hello();
    let i = elf.note_phdr(ABI1);
    let off = elf.note_offset(ABI1);
    elf.set_u32(off + 4, 33);
    set_ph(&mut elf, i, Elf::P_FILESZ, 20 + 40);
    assert_refused(
        "abi-descsz-max",
        &elf.bytes,
        &[],
        invalid(format!(
            "phdr[{i}] note does not fall within valid size (descsz 33, p_filesz 60)"
        )),
    );
}

#[test]
fn abi_note_descsz_zero_is_refused() {
    let mut elf = hello();
    let i = elf.note_phdr(ABI1);
    let off = elf.note_offset(ABI1);
    let filesz = ph(&elf, i, Elf::P_FILESZ);
    elf.set_u32(off + 4, 0);
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
    let i = elf.note_phdr(MFT1);
    let off = elf.note_offset(MFT1);
    elf.set_u32(off + 4, 6669);
    set_ph(&mut elf, i, Elf::P_FILESZ, 20 + 6672);
    // The segment may now reach past the end of the file: the size check
    // comes first.
    elf.bytes.resize(elf.bytes.len() + 8192, 0);
    assert_refused(
        "mft-descsz-max",
        &elf.bytes,
        &[],
        invalid(format!(
            "phdr[{i}] note does not fall within valid size (descsz 6669, p_filesz 6692)"
        )),
    );
}

#[test]
fn note_offset_past_the_end_of_the_file_is_refused() {
    let mut elf = hello();
    let i = elf.note_phdr(ABI1);
    let offset = elf.bytes.len() as u64;
    set_ph(&mut elf, i, Elf::P_OFFSET, offset);
    assert_refused(
        "note-past-eof",
        &elf.bytes,
        &[],
        invalid(format!(
            "read of 20 bytes at offset 0x{offset:x} is past the end of the file"
        )),
    );
}

// ---------------------------------------------------------------------------
// Manifest (§4.3).

const ENTRY_SIZE: usize = 104;
const RESERVED_FIRST: u32 = 1 << 30;

/// File offset of the manifest (`struct mft`) inside the MFT1 note.
fn mft(elf: &Elf) -> usize {
    elf.note_offset(MFT1) + 24
}

/// File offset of manifest entry `n`.
fn mft_entry(elf: &Elf, n: usize) -> usize {
    mft(elf) + 8 + n * ENTRY_SIZE
}

/// An entry named `name` of type `kind`, not attached.
fn entry(name: &[u8], kind: u32) -> [u8; ENTRY_SIZE] {
    let mut e = [0u8; ENTRY_SIZE];
    e[..name.len()].copy_from_slice(name);
    e[68..72].copy_from_slice(&kind.to_le_bytes());
    e
}

/// Moves the manifest note to the end of the file with `extra` appended as
/// one more entry (the note has no room where it is).
fn add_entry(elf: &mut Elf, extra: [u8; ENTRY_SIZE]) {
    let i = elf.note_phdr(MFT1);
    let old = elf.note_offset(MFT1);
    let size = ph(elf, i, Elf::P_FILESZ) as usize;
    let mut note = elf.bytes[old..old + size].to_vec();
    let descsz = u32::from_le_bytes(note[4..8].try_into().unwrap()) + ENTRY_SIZE as u32;
    note[4..8].copy_from_slice(&descsz.to_le_bytes());
    let entries = u32::from_le_bytes(note[28..32].try_into().unwrap()) + 1;
    note[28..32].copy_from_slice(&entries.to_le_bytes());
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
    add_entry(&mut elf, entry(b"eth0", 2));
    assert_refused(
        "mft-added",
        &elf.bytes,
        &["--mem=2"],
        plain(
            "Device 'eth0' of type NET_BASIC declared but not attached.\n\
             All declared devices must be attached. See --help for syntax.",
        ),
    );
}

#[test]
fn manifest_version_2_is_invalid() {
    let mut elf = hello();
    let off = mft(&elf);
    elf.set_u32(off, 2);
    assert_refused("mft-version", &elf.bytes, &[], plain(MANIFEST_INVALID));
}

#[test]
fn manifest_entry_count_not_matching_its_size_is_invalid() {
    let mut elf = hello();
    let off = mft(&elf) + 4;
    elf.set_u32(off, 2);
    assert_refused("mft-size", &elf.bytes, &[], plain(MANIFEST_INVALID));
}

#[test]
fn manifest_with_zero_entries_is_invalid() {
    let mut elf = hello();
    let off = mft(&elf) + 4;
    elf.set_u32(off, 0);
    assert_refused("mft-zero", &elf.bytes, &[], plain(MANIFEST_INVALID));
}

#[test]
fn manifest_note_shorter_than_its_header_is_invalid() {
    let mut elf = hello();
    let off = elf.note_offset(MFT1);
    elf.set_u32(off + 4, 4 + 7);
    assert_refused("mft-short", &elf.bytes, &[], plain(MANIFEST_INVALID));
}

#[test]
fn manifest_first_entry_not_reserved_is_invalid() {
    let mut elf = hello();
    let off = mft_entry(&elf, 0) + 68;
    assert_eq!(elf.u32_at(off), RESERVED_FIRST);
    elf.set_u32(off, 1);
    assert_refused("mft-first-type", &elf.bytes, &[], plain(MANIFEST_INVALID));
}

#[test]
fn manifest_first_entry_with_a_name_is_invalid() {
    let mut elf = hello();
    let off = mft_entry(&elf, 0);
    elf.bytes[off] = b'x';
    assert_refused("mft-first-name", &elf.bytes, &[], plain(MANIFEST_INVALID));
}

#[test]
fn manifest_reserved_entry_attached_is_invalid() {
    let mut elf = hello();
    let off = mft_entry(&elf, 0) + 96;
    elf.bytes[off] = 1;
    assert_refused("mft-attached0", &elf.bytes, &[], plain(MANIFEST_INVALID));
}

#[test]
fn manifest_device_entry_attached_is_invalid() {
    let mut elf = hello();
    let mut device = entry(b"disk", 1);
    device[96] = 1;
    add_entry(&mut elf, device);
    assert_refused("mft-attached1", &elf.bytes, &[], plain(MANIFEST_INVALID));
}

#[test]
fn manifest_unterminated_name_is_invalid() {
    let mut elf = hello();
    add_entry(&mut elf, entry(&[b'a'; 68], 1));
    assert_refused("mft-unterminated", &elf.bytes, &[], plain(MANIFEST_INVALID));
}

#[test]
fn missing_manifest_note_is_refused() {
    let mut elf = hello();
    let off = elf.note_offset(MFT1);
    elf.set_u32(off + 8, 0x3254_464d); // "MFT2"
    assert_refused(
        "no-mft",
        &elf.bytes,
        &[],
        plain("No Solo5 manifest found in executable"),
    );
}
