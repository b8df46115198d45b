//! Note lookup with the exact rules of §1.4, and our unprivileged note (§12).

use hvt_abi::note::{
    AbiDesc, ABI1_NOTE_MAX_DESCSZ, ABI1_NOTE_TYPE, HVT_ABI_VERSION, MFT1_NOTE_MAX_DESCSZ,
    MFT1_NOTE_TYPE, NOTE_MIN_SEGMENT, SOLO5_NOTE_HEADER_SIZE, SOLO5_NOTE_NAME, TENDER_NOTE_NAME,
    TENDER_NOTE_NAMESZ, UNPRIVILEGED_CPL3, UNPRIVILEGED_NOTE_TYPE,
};
use hvt_abi::{note::target, note::UnprivilegedDesc};
use vm_memory::ByteValued;

use super::header::{ElfFile, PT_NOTE, READ_FAILED};
use tender_core::error::Result;
use tender_core::manifest::Manifest;
use tender_core::memory::host_len;

/// Where the descriptor starts in a Solo5 note, as upstream aligns it: the
/// ABI1 descriptor (4-byte fields) right after the header, the manifest
/// (8-byte fields) 4 bytes later.
const ABI1_DESC_ALIGN: u64 = 4;
const MFT1_DESC_ALIGN: u64 = 8;

/// Finds the first note of `n_type` named "Solo5" and returns its descriptor
/// (after the alignment padding). `Ok(None)` if no segment holds one. Every
/// failure has upstream's message.
fn find_solo5_note(
    elf: &ElfFile,
    n_type: u32,
    max_descsz: u32,
    desc_align: u64,
) -> Result<Option<Vec<u8>>> {
    for (i, ph) in elf.phdrs.iter().enumerate() {
        if ph.p_type != PT_NOTE {
            continue;
        }
        if ph.p_filesz < NOTE_MIN_SEGMENT {
            return Err(elf.invalid(format!(
                "phdr[{i}].p_filesz note does not fall within valid size ({} < {NOTE_MIN_SEGMENT})",
                ph.p_filesz
            )));
        }
        if ph.p_filesz < SOLO5_NOTE_HEADER_SIZE {
            continue;
        }
        let mut hdr = [0u8; host_len(SOLO5_NOTE_HEADER_SIZE)];
        match elf.read_full(ph.p_offset, &mut hdr) {
            Ok(n) if n == hdr.len() => {}
            Ok(n) => {
                return Err(elf.error(format!(
                    "phdr[{i}] bytes read mismatches note size ({n} != {SOLO5_NOTE_HEADER_SIZE})"
                )))
            }
            Err(_) => {
                return Err(elf.error(format!("phdr[{i}] pread_in_full returned {READ_FAILED}")))
            }
        }
        let word = |at: usize| u32::from_le_bytes(hdr[at..at + 4].try_into().expect("4 bytes"));
        let (namesz, descsz, kind) = (word(0), word(4), word(8));
        if namesz as usize != SOLO5_NOTE_NAME.len()
            || &hdr[12..18] != SOLO5_NOTE_NAME
            || kind != n_type
        {
            continue;
        }
        if descsz < 1 || descsz > max_descsz {
            return Err(elf.invalid(format!(
                "phdr[{i}] note does not fall within valid size \
                 ({descsz} < 1 || {descsz} > {max_descsz})"
            )));
        }
        let note_end = SOLO5_NOTE_HEADER_SIZE + u64::from(descsz);
        if ph.p_filesz < note_end {
            return Err(elf.invalid(format!(
                "phdr[{i}] note does not fall within valid size ({} < {note_end})",
                ph.p_filesz
            )));
        }
        // The descriptor after its padding; upstream's size wraps (as an
        // unsigned size) when the padding is longer than the descriptor.
        let desc_offset = SOLO5_NOTE_HEADER_SIZE.next_multiple_of(desc_align);
        let size = u64::from(descsz).wrapping_sub(desc_offset - SOLO5_NOTE_HEADER_SIZE);
        if size == 0 || size > u64::from(descsz) {
            return Err(elf.error(format!(
                "INV_EXE: phdr[{i}] note does not fall within valid size \
                 ({size} <= 0 || {size} > {descsz})"
            )));
        }
        let mut desc = vec![0u8; host_len(size)];
        match elf.read_full(ph.p_offset.saturating_add(desc_offset), &mut desc) {
            Ok(n) if n == desc.len() => return Ok(Some(desc)),
            Ok(n) => {
                return Err(elf.error(format!(
                    "phdr[{i}] bytes read mismatches note size ({n} != {size})"
                )))
            }
            Err(_) => {
                return Err(elf.error(format!(
                    "phdr[{i}] pread_in_full for note_data returned {READ_FAILED} < 0"
                )))
            }
        }
    }
    Ok(None)
}

/// Checks the ABI1 note: the image must be for hvt, ABI version 2 (§1.2).
pub fn find_abi_note(elf: &ElfFile) -> Result<()> {
    let desc = find_solo5_note(elf, ABI1_NOTE_TYPE, ABI1_NOTE_MAX_DESCSZ, ABI1_DESC_ALIGN)?
        .ok_or_else(|| elf.error("No Solo5 ABI information found in executable"))?;
    let mut abi = AbiDesc::default();
    let n = desc.len().min(abi.as_slice().len());
    abi.as_mut_slice()[..n].copy_from_slice(&desc[..n]);
    if abi.abi_target != target::HVT {
        return Err(elf.error("Executable is not for the solo5-hvt target"));
    }
    if abi.abi_version != HVT_ABI_VERSION {
        return Err(elf.error(format!(
            "Executable requests unsupported ABI version {}",
            abi.abi_version
        )));
    }
    Ok(())
}

/// Returns the raw manifest bytes of the MFT1 note (§1.3), unvalidated.
pub fn find_manifest_note(elf: &ElfFile) -> Result<Vec<u8>> {
    find_solo5_note(elf, MFT1_NOTE_TYPE, MFT1_NOTE_MAX_DESCSZ, MFT1_DESC_ALIGN)?
        .ok_or_else(|| elf.error("No Solo5 manifest found in executable"))
}

/// The manifest of the MFT1 note, validated (§4.3): "FILE: Solo5 manifest
/// is invalid" otherwise.
pub fn read_manifest(elf: &ElfFile) -> Result<Manifest> {
    Manifest::parse(&find_manifest_note(elf)?).map_err(|e| elf.error(e.to_string()))
}

/// True when the image carries our note asking to run at CPL 3 (§12). A
/// malformed note of ours is ignored: the guest then runs as upstream would.
pub fn is_unprivileged(elf: &ElfFile) -> bool {
    const HEADER: usize = 20;
    const NOTE: usize = HEADER + std::mem::size_of::<UnprivilegedDesc>();
    elf.phdrs
        .iter()
        .filter(|ph| ph.p_type == PT_NOTE && ph.p_filesz >= NOTE as u64)
        .any(|ph| {
            let mut note = [0u8; NOTE];
            if !matches!(elf.read_full(ph.p_offset, &mut note), Ok(n) if n == note.len()) {
                return false;
            }
            let word = |i: usize| u32::from_le_bytes(note[i..i + 4].try_into().expect("4 bytes"));
            word(0) == TENDER_NOTE_NAMESZ
                && word(4) as usize == std::mem::size_of::<UnprivilegedDesc>()
                && word(8) == UNPRIVILEGED_NOTE_TYPE
                && note[12..20] == *TENDER_NOTE_NAME
                && word(HEADER) & UNPRIVILEGED_CPL3 != 0
        })
}
