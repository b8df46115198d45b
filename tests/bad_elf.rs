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

/// The guest memory of the runs with `--mem=2`: the whole allocation the
/// loader checks against (hello has no network ring).
const MEM: u64 = 2 << 20;

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
/// and checks that the only output is "tender: MESSAGE" (each line of
/// MESSAGE under the program's name), where `message` gets the image's
/// path, with exit 1 and no panic or signal.
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
    let expected: String = message(path)
        .lines()
        .map(|line| format!("tender: {line}\n"))
        .collect();
    assert_eq!(run.stderr, expected);
}

/// Every failed header check (§2) gives upstream's one message.
fn header_invalid() -> impl FnOnce(&str) -> String {
    |path| {
        format!(
            "{path}: invalid executable: invalid or unsupported executable \
             (elf header invalid while loading note)"
        )
    }
}

/// "PATH: MESSAGE".
fn named(message: String) -> impl FnOnce(&str) -> String {
    move |path| format!("{path}: {message}")
}

/// How upstream prints a failed read's -1: as an unsigned size.
const READ_FAILED: u64 = u64::MAX;

/// "PATH: invalid executable: WHY".
fn invalid(why: String) -> impl FnOnce(&str) -> String {
    move |path| format!("{path}: invalid executable: {why}")
}

/// A message that does not name the file.
fn plain(message: &str) -> impl FnOnce(&str) -> String + '_ {
    move |_| message.to_owned()
}

/// A copy of hello with `edit` applied runs to its end.
fn still_runs(tag: &str, edit: impl FnOnce(&mut Elf)) {
    let mut elf = hello();
    edit(&mut elf);
    let path = write_image(tag, "kernel", &elf.bytes);
    let run = tender(["--mem=2".as_ref(), path.as_os_str()]);
    assert_eq!(run.code, 0, "{tag}: {}", run.output());
    assert!(run.stdout.contains("SUCCESS"), "{tag}: {}", run.stdout);
    assert_eq!(run.stderr, "", "{tag}");
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
    assert_refused("text", text, &[], header_invalid());
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
    assert_refused("random", &bytes, &[], header_invalid());
}

#[test]
fn empty_file_is_too_short() {
    assert_refused(
        "empty",
        &[],
        &[],
        invalid("elf header does not match the expected size (0 != 64)".into()),
    );
}

#[test]
fn file_cut_inside_the_elf_header_is_too_short() {
    let elf = hello();
    assert_refused(
        "cut-ehdr",
        &elf.bytes[..40],
        &[],
        invalid("elf header does not match the expected size (40 != 64)".into()),
    );
}

#[test]
fn file_cut_inside_the_program_headers_is_refused() {
    let elf = hello();
    let cut = elf.phdr(elf.phnum() / 2) + 10;
    let (read, table) = (cut - elf.phdr(0), elf.phnum() * 56);
    assert_refused(
        "cut-phdrs",
        &elf.bytes[..cut],
        &[],
        invalid(format!(
            "program header does not match the expected size ({read} != {table} while loading note)"
        )),
    );
}

#[test]
fn program_headers_offset_past_the_end_is_refused() {
    let mut elf = hello();
    elf.set_u64(32, u64::MAX - 8);
    // An offset the kernel refuses to read at: upstream's failed read.
    assert_refused(
        "phoff-huge",
        &elf.bytes,
        &[],
        named(format!(
            "pread_in_full for ph_size returned {READ_FAILED} < 0 while loading note"
        )),
    );
}

#[test]
fn program_headers_past_the_end_of_the_file_are_a_short_read() {
    let mut elf = hello();
    let past = elf.bytes.len() as u64 + 100;
    elf.set_u64(32, past);
    let table = elf.phnum() * 56;
    assert_refused(
        "phoff-past-eof",
        &elf.bytes,
        &[],
        invalid(format!(
            "program header does not match the expected size (0 != {table} while loading note)"
        )),
    );
}

#[test]
fn elfclass32_is_not_elf64() {
    let mut elf = hello();
    elf.bytes[4] = 1;
    assert_refused("class32", &elf.bytes, &[], header_invalid());
}

#[test]
fn big_endian_is_refused() {
    let mut elf = hello();
    elf.bytes[5] = 2;
    assert_refused("msb", &elf.bytes, &[], header_invalid());
}

#[test]
fn wrong_e_version_is_refused() {
    let mut elf = hello();
    elf.set_u32(20, 2);
    assert_refused("version", &elf.bytes, &[], header_invalid());
}

/// Upstream checks the header's `e_version` only, not the identification
/// byte EI_VERSION; EI_OSABI, EI_ABIVERSION and the padding are not
/// checked either.
#[test]
fn identification_bytes_upstream_ignores_are_ignored() {
    still_runs("ei-version-0", |elf| elf.bytes[6] = 0);
    still_runs("ei-version-9", |elf| elf.bytes[6] = 9);
    still_runs("ei-osabi", |elf| {
        elf.bytes[7] = 3;
        elf.bytes[8] = 1;
        elf.bytes[15] = 0xff;
    });
}

#[test]
fn wrong_machine_is_refused() {
    let mut elf = hello();
    elf.set_u16(18, 3); // EM_386
    assert_refused("machine", &elf.bytes, &[], header_invalid());
}

#[test]
fn shared_object_is_not_et_exec() {
    let mut elf = hello();
    elf.set_u16(16, 3); // ET_DYN
    assert_refused("et-dyn", &elf.bytes, &[], header_invalid());
}

#[test]
fn wrong_e_ehsize_is_refused() {
    let mut elf = hello();
    elf.set_u16(52, 52);
    assert_refused("ehsize", &elf.bytes, &[], header_invalid());
}

#[test]
fn wrong_e_phentsize_is_refused() {
    let mut elf = hello();
    elf.set_u16(54, 64);
    assert_refused("phentsize", &elf.bytes, &[], header_invalid());
}

#[test]
fn zero_program_headers_is_refused() {
    let mut elf = hello();
    elf.set_u16(56, 0);
    assert_refused("phnum0", &elf.bytes, &[], header_invalid());
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
        invalid(format!(
            "e_entry does not fall within the memory allocation range \
             ({entry} < {GUEST_MIN_BASE} || {entry} >= {MEM})"
        )),
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
        invalid(format!(
            "e_entry does not fall within the memory allocation range \
             ({MEM} < {GUEST_MIN_BASE} || {MEM} >= {MEM})"
        )),
    );
}

#[test]
fn segment_below_0x100000_is_refused() {
    let mut elf = hello();
    let i = loaded(&elf)[0];
    let low = GUEST_MIN_BASE / 2;
    set_ph(&mut elf, i, Elf::P_VADDR, low);
    assert_refused(
        "seg-low",
        &elf.bytes,
        &["--mem=2"],
        invalid(format!(
            "phdr[{i}].p_vaddr outside of valid memory range ({low} < {GUEST_MIN_BASE})"
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
        invalid(format!(
            "phdr[{b}].p_vaddr is not in ascending order ({va} < {vb})"
        )),
    );
}

#[test]
fn overlapping_segments_are_refused() {
    let mut elf = hello();
    let (a, b) = (loaded(&elf)[0], loaded(&elf)[1]);
    // Stretch the first segment one page over the start of the second.
    let vb = ph(&elf, b, Elf::P_VADDR);
    let memsz = vb - ph(&elf, a, Elf::P_VADDR) + 0x1000;
    set_ph(&mut elf, a, Elf::P_MEMSZ, memsz);
    let end = (vb + 0x1000).next_multiple_of(ph(&elf, a, Elf::P_ALIGN));
    assert_refused(
        "seg-overlap",
        &elf.bytes,
        &["--mem=2"],
        invalid(format!(
            "phdr[{b}].p_vaddr_start is outside of memory range ({vb} < {end} (e_end))"
        )),
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
        invalid(format!(
            "phdr[{i}] p_vaddr_start not aligned with architectural page size \
             ({} & (4095 - 1))",
            vaddr + 0x10
        )),
    );
}

#[test]
fn p_align_not_a_power_of_two_is_refused() {
    let mut elf = hello();
    let i = loaded(&elf)[0];
    set_ph(&mut elf, i, Elf::P_ALIGN, 0x1800);
    let vaddr = ph(&elf, i, Elf::P_VADDR);
    assert_refused(
        "align-npot",
        &elf.bytes,
        &["--mem=2"],
        invalid(format!(
            "phdr[{i}].p_vaddr is outside of memory range \
             (align_down with {vaddr} (p_vaddr) and 6144 (p_align) failed)"
        )),
    );
}

#[test]
fn p_align_zero_is_refused() {
    let mut elf = hello();
    let i = loaded(&elf)[0];
    set_ph(&mut elf, i, Elf::P_ALIGN, 0);
    let vaddr = ph(&elf, i, Elf::P_VADDR);
    assert_refused(
        "align-zero",
        &elf.bytes,
        &["--mem=2"],
        invalid(format!(
            "phdr[{i}].p_vaddr is outside of memory range \
             (align_down with {vaddr} (p_vaddr) and 0 (p_align) failed)"
        )),
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
        invalid(format!("phdr[{i}] requests WRITE and EXEC permissions")),
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
        invalid(format!(
            "phdr[{i}] program memory segment falls outside of valid range \
             ({} (p_memsz) < {filesz} (p_filesz))",
            filesz - 1
        )),
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
        invalid(format!(
            "phdr[{i}] program file segment falls outside of valid range \
             ({} >= {MEM} (mem_size))",
            0x1000_0000
        )),
    );
}

#[test]
fn segment_address_near_u64_max_is_refused() {
    let mut elf = hello();
    let i = *loaded(&elf).last().unwrap();
    let vaddr = 0xffff_ffff_ffff_f000u64;
    set_ph(&mut elf, i, Elf::P_VADDR, vaddr);
    assert_refused(
        "seg-u64max",
        &elf.bytes,
        &["--mem=2"],
        invalid(format!(
            "phdr[{i}] program file segment falls outside of valid range \
             ({vaddr} >= {MEM} (mem_size))"
        )),
    );
}

#[test]
fn segment_memory_size_past_the_end_of_memory_is_refused() {
    let mut elf = hello();
    let i = *loaded(&elf).last().unwrap();
    set_ph(&mut elf, i, Elf::P_MEMSZ, 0x20_0000);
    let end = (ph(&elf, i, Elf::P_VADDR) + 0x20_0000).next_multiple_of(ph(&elf, i, Elf::P_ALIGN));
    assert_refused(
        "memsz-past-mem",
        &elf.bytes,
        &["--mem=2"],
        invalid(format!(
            "phdr[{i}] program memory segment falls outside of valid range \
             ({end} (p_vaddr + p_memsz) > {MEM} (mem_size))"
        )),
    );
}

#[test]
fn segment_memory_size_that_overflows_is_refused() {
    let mut elf = hello();
    let i = *loaded(&elf).last().unwrap();
    set_ph(&mut elf, i, Elf::P_MEMSZ, u64::MAX);
    let vaddr = ph(&elf, i, Elf::P_VADDR);
    assert_refused(
        "memsz-overflow",
        &elf.bytes,
        &["--mem=2"],
        invalid(format!(
            "phdr[{i}] program memory segment falls outside of valid range \
             ({vaddr} (p_vaddr) + {} (p_memsz) overflow)",
            u64::MAX
        )),
    );
}

#[test]
fn segment_end_that_overflows_when_aligned_is_refused() {
    let mut elf = hello();
    let i = *loaded(&elf).last().unwrap();
    let vaddr = ph(&elf, i, Elf::P_VADDR);
    set_ph(&mut elf, i, Elf::P_MEMSZ, u64::MAX - vaddr);
    let align = ph(&elf, i, Elf::P_ALIGN);
    assert_refused(
        "memsz-align-overflow",
        &elf.bytes,
        &["--mem=2"],
        invalid(format!(
            "phdr[{i}] program memory segment falls outside of valid range \
             (align_up with {} (p_vaddr_end) and {align} (p_align) failed)",
            u64::MAX
        )),
    );
}

#[test]
fn segment_file_size_that_overflows_is_refused() {
    let mut elf = hello();
    let i = *loaded(&elf).last().unwrap();
    let filesz = u64::MAX - 0x100;
    set_ph(&mut elf, i, Elf::P_FILESZ, filesz);
    set_ph(&mut elf, i, Elf::P_MEMSZ, filesz);
    let vaddr = ph(&elf, i, Elf::P_VADDR);
    assert_refused(
        "filesz-overflow",
        &elf.bytes,
        &["--mem=2"],
        invalid(format!(
            "phdr[{i}] program file segment falls outside of valid range \
             ({vaddr} (p_vaddr) + {filesz} (p_filesz) overflow)"
        )),
    );
}

#[test]
fn segment_offset_past_the_end_of_the_file_is_refused() {
    let mut elf = hello();
    let i = *loaded(&elf).last().unwrap();
    let offset = elf.bytes.len() as u64 + 0x1000;
    set_ph(&mut elf, i, Elf::P_OFFSET, offset);
    let filesz = ph(&elf, i, Elf::P_FILESZ);
    assert_refused(
        "offset-past-eof",
        &elf.bytes,
        &["--mem=2"],
        named(format!(
            "phdr[{i}] host file segment mismatched \
             (pread_in_full returned 0 != {filesz} (p_filesz))"
        )),
    );
}

#[test]
fn segment_offset_the_kernel_cannot_read_at_is_refused() {
    let mut elf = hello();
    let i = *loaded(&elf).last().unwrap();
    set_ph(&mut elf, i, Elf::P_OFFSET, 1 << 63);
    assert_refused(
        "offset-huge",
        &elf.bytes,
        &["--mem=2"],
        named(format!("phdr[{i}] pread_in_full returned {READ_FAILED}")),
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
    let in_file = elf.bytes.len() as u64 - ph(&elf, i, Elf::P_OFFSET);
    assert_refused(
        "filesz-past-eof",
        &elf.bytes,
        &["--mem=4096"],
        named(format!(
            "phdr[{i}] host file segment mismatched \
             (pread_in_full returned {in_file} != {filesz} (p_filesz))"
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
        named("No Solo5 ABI information found in executable".into()),
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
        named("No Solo5 ABI information found in executable".into()),
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
        named("Executable is not for the solo5-hvt target".into()),
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
        named(format!(
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
            "phdr[{i}] note does not fall within valid size ({filesz} < {})",
            SOLO5_NOTE_HEADER_SIZE + u64::from(ABI1_NOTE_MAX_DESCSZ)
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
            "phdr[{i}] note does not fall within valid size \
             ({descsz} < 1 || {descsz} > {ABI1_NOTE_MAX_DESCSZ})"
        )),
    );
}

#[test]
fn abi_note_descsz_zero_is_refused() {
    let mut elf = hello();
    let i = elf.note_phdr(ABI1_NOTE_TYPE);
    let off = elf.note_offset(ABI1_NOTE_TYPE);
    elf.set_u32(off + NOTE_DESCSZ, 0);
    assert_refused(
        "abi-descsz-zero",
        &elf.bytes,
        &[],
        invalid(format!(
            "phdr[{i}] note does not fall within valid size \
             (0 < 1 || 0 > {ABI1_NOTE_MAX_DESCSZ})"
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
            "phdr[{i}] note does not fall within valid size \
             ({descsz} < 1 || {descsz} > {MFT1_NOTE_MAX_DESCSZ})"
        )),
    );
}

/// A manifest descriptor no longer than the padding before the manifest:
/// upstream's size check, its size wrapped as an unsigned size, and its
/// message ("INV_EXE" as it prints it).
#[test]
fn manifest_note_no_longer_than_its_padding_is_refused() {
    for descsz in [1u32, 3, 4] {
        let mut elf = hello();
        let i = elf.note_phdr(MFT1_NOTE_TYPE);
        let off = elf.note_offset(MFT1_NOTE_TYPE);
        elf.set_u32(off + NOTE_DESCSZ, descsz);
        let size = u64::from(descsz).wrapping_sub(NOTE_MFT_PAD as u64);
        assert_refused(
            &format!("mft-descsz-{descsz}"),
            &elf.bytes,
            &[],
            named(format!(
                "INV_EXE: phdr[{i}] note does not fall within valid size \
                 ({size} <= 0 || {size} > {descsz})"
            )),
        );
    }
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
        named(format!(
            "phdr[{i}] bytes read mismatches note size (0 != {SOLO5_NOTE_HEADER_SIZE})"
        )),
    );
}

#[test]
fn note_offset_the_kernel_cannot_read_at_is_refused() {
    let mut elf = hello();
    let i = elf.note_phdr(ABI1_NOTE_TYPE);
    set_ph(&mut elf, i, Elf::P_OFFSET, 1 << 63);
    assert_refused(
        "note-offset-huge",
        &elf.bytes,
        &[],
        named(format!("phdr[{i}] pread_in_full returned {READ_FAILED}")),
    );
}

/// A note whose header is in the file but whose descriptor is not: not
/// found, as upstream reads it (its segment then ends past the file).
#[test]
fn manifest_descriptor_past_the_end_of_the_file_is_a_short_read() {
    let mut elf = hello();
    let i = elf.note_phdr(MFT1_NOTE_TYPE);
    let offset = elf.bytes.len() as u64 - SOLO5_NOTE_HEADER_SIZE;
    let header = elf.note_offset(MFT1_NOTE_TYPE);
    let note: Vec<u8> = elf.bytes[header..header + 20].to_vec();
    let end = elf.bytes.len();
    elf.bytes[end - 20..].copy_from_slice(&note);
    set_ph(&mut elf, i, Elf::P_OFFSET, offset);
    let size = u64::from(elf.u32_at(end - 20 + NOTE_DESCSZ)) - NOTE_MFT_PAD as u64;
    assert_refused(
        "mft-desc-past-eof",
        &elf.bytes,
        &[],
        named(format!(
            "phdr[{i}] bytes read mismatches note size (0 != {size})"
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
             All declared devices must be attached. See --help for syntax.",
        ),
    );
}

#[test]
fn manifest_version_2_is_invalid() {
    let mut elf = hello();
    let off = mft(&elf) + offset_of!(MftHeader, version);
    elf.set_u32(off, MFT_VERSION + 1);
    assert_refused(
        "mft-version",
        &elf.bytes,
        &[],
        named(MANIFEST_INVALID.into()),
    );
}

#[test]
fn manifest_entry_count_not_matching_its_size_is_invalid() {
    let mut elf = hello();
    let off = mft(&elf) + offset_of!(MftHeader, entries);
    elf.set_u32(off, 2);
    assert_refused("mft-size", &elf.bytes, &[], named(MANIFEST_INVALID.into()));
}

#[test]
fn manifest_with_zero_entries_is_invalid() {
    let mut elf = hello();
    let off = mft(&elf) + offset_of!(MftHeader, entries);
    elf.set_u32(off, 0);
    assert_refused("mft-zero", &elf.bytes, &[], named(MANIFEST_INVALID.into()));
}

#[test]
fn manifest_note_shorter_than_its_header_is_invalid() {
    let mut elf = hello();
    let off = elf.note_offset(MFT1_NOTE_TYPE);
    let descsz = NOTE_MFT_PAD + size_of::<MftHeader>() - 1;
    elf.set_u32(off + NOTE_DESCSZ, u32::try_from(descsz).unwrap());
    assert_refused("mft-short", &elf.bytes, &[], named(MANIFEST_INVALID.into()));
}

#[test]
fn manifest_first_entry_not_reserved_is_invalid() {
    let mut elf = hello();
    let off = mft_entry(&elf, 0) + ENTRY_KIND;
    assert_eq!(elf.u32_at(off), MFT_RESERVED_FIRST);
    elf.set_u32(off, MFT_DEV_BLOCK_BASIC);
    assert_refused(
        "mft-first-type",
        &elf.bytes,
        &[],
        named(MANIFEST_INVALID.into()),
    );
}

#[test]
fn manifest_first_entry_with_a_name_is_invalid() {
    let mut elf = hello();
    let off = mft_entry(&elf, 0) + ENTRY_NAME;
    elf.bytes[off] = b'x';
    assert_refused(
        "mft-first-name",
        &elf.bytes,
        &[],
        named(MANIFEST_INVALID.into()),
    );
}

#[test]
fn manifest_reserved_entry_attached_is_invalid() {
    let mut elf = hello();
    let off = mft_entry(&elf, 0) + ENTRY_ATTACHED;
    elf.bytes[off] = 1;
    assert_refused(
        "mft-attached0",
        &elf.bytes,
        &[],
        named(MANIFEST_INVALID.into()),
    );
}

#[test]
fn manifest_device_entry_attached_is_invalid() {
    let mut elf = hello();
    let mut device = entry(b"disk", MFT_DEV_BLOCK_BASIC);
    device[ENTRY_ATTACHED] = 1;
    add_entry(&mut elf, device);
    assert_refused(
        "mft-attached1",
        &elf.bytes,
        &[],
        named(MANIFEST_INVALID.into()),
    );
}

#[test]
fn manifest_unterminated_name_is_invalid() {
    let mut elf = hello();
    add_entry(&mut elf, entry(&[b'a'; MFT_NAME_SIZE], MFT_DEV_BLOCK_BASIC));
    assert_refused(
        "mft-unterminated",
        &elf.bytes,
        &[],
        named(MANIFEST_INVALID.into()),
    );
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
        named("No Solo5 manifest found in executable".into()),
    );
}
