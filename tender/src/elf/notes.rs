//! Note lookup with the exact rules of §1.4, and our unprivileged note (§12).

use hvt_abi::note::{
    AbiDesc, ABI1_NOTE_MAX_DESCSZ, ABI1_NOTE_TYPE, HVT_ABI_VERSION, MFT1_NOTE_MAX_DESCSZ,
    MFT1_NOTE_TYPE, NOTE_MIN_SEGMENT, SOLO5_NOTE_HEADER_SIZE, SOLO5_NOTE_NAME, TENDER_NOTE_NAME,
    TENDER_NOTE_NAMESZ, UNPRIVILEGED_CPL3, UNPRIVILEGED_NOTE_TYPE,
};
use hvt_abi::{note::target, note::UnprivilegedDesc};
use vm_memory::ByteValued;

use super::header::{ElfFile, PT_NOTE};
use tender_core::error::{Error, Result};
use tender_core::memory::host_len;

/// Bytes of padding before a descriptor of alignment 8 (the manifest).
const MFT_DESC_PADDING: u32 = 4;

/// Finds the first note of `n_type` named "Solo5" and returns its descriptor
/// (without the leading padding). `Ok(None)` if no segment holds one.
fn find_solo5_note(
    elf: &ElfFile,
    n_type: u32,
    max_descsz: u32,
    padding: u32,
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
        elf.read_at(ph.p_offset, &mut hdr)?;
        let namesz = u32::from_le_bytes(hdr[0..4].try_into().expect("4 bytes"));
        let descsz = u32::from_le_bytes(hdr[4..8].try_into().expect("4 bytes"));
        let kind = u32::from_le_bytes(hdr[8..12].try_into().expect("4 bytes"));
        if namesz as usize != SOLO5_NOTE_NAME.len()
            || &hdr[12..18] != SOLO5_NOTE_NAME
            || kind != n_type
        {
            continue;
        }
        if descsz == 0
            || descsz > max_descsz
            || descsz < padding
            || ph.p_filesz < SOLO5_NOTE_HEADER_SIZE + u64::from(descsz)
        {
            return Err(elf.invalid(format!(
                "phdr[{i}] note does not fall within valid size (descsz {descsz}, p_filesz {})",
                ph.p_filesz
            )));
        }
        let mut desc = vec![0u8; (descsz - padding) as usize];
        elf.read_at(
            ph.p_offset + SOLO5_NOTE_HEADER_SIZE + u64::from(padding),
            &mut desc,
        )?;
        return Ok(Some(desc));
    }
    Ok(None)
}

/// Checks the ABI1 note: the image must be for hvt, ABI version 2 (§1.2).
pub fn find_abi_note(elf: &ElfFile) -> Result<()> {
    let desc = find_solo5_note(elf, ABI1_NOTE_TYPE, ABI1_NOTE_MAX_DESCSZ, 0)?
        .ok_or_else(|| Error::Elf("No Solo5 ABI information found in executable".into()))?;
    let mut abi = AbiDesc::default();
    let n = desc.len().min(abi.as_slice().len());
    abi.as_mut_slice()[..n].copy_from_slice(&desc[..n]);
    if abi.abi_target != target::HVT {
        return Err(Error::Elf(
            "Executable is not for the solo5-hvt target".into(),
        ));
    }
    if abi.abi_version != HVT_ABI_VERSION {
        return Err(Error::Elf(format!(
            "Executable requests unsupported ABI version {}",
            abi.abi_version
        )));
    }
    Ok(())
}

/// Returns the raw manifest bytes of the MFT1 note (§1.3), unvalidated.
pub fn find_manifest_note(elf: &ElfFile) -> Result<Vec<u8>> {
    find_solo5_note(elf, MFT1_NOTE_TYPE, MFT1_NOTE_MAX_DESCSZ, MFT_DESC_PADDING)?
        .ok_or_else(|| Error::Elf("No Solo5 manifest found in executable".into()))
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
            if elf.read_at(ph.p_offset, &mut note).is_err() {
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
