//! Segment loading with every check of §2.

use hvt_abi::layout::GUEST_MIN_BASE;

use super::header::{ElfFile, PF_R, PF_W, PF_X, PT_LOAD};
use tender_core::error::Result;
use tender_core::memory::{host_len, GuestRam};

/// What the loader hands on to the boot-info writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadedImage {
    pub entry: u64,
    /// Highest end of the loaded segments (bss excluded, as upstream).
    pub kernel_end: u64,
}

const PAGE: u64 = 4096;
/// Segment bytes are copied from the file in pieces of this size.
const COPY_CHUNK: u64 = 1 << 20;

/// Loads every `PT_LOAD` segment with `p_filesz != 0` into `ram` and sets the
/// host protection of each (§2). `mem_size` is the whole allocation.
pub fn load_segments(elf: &ElfFile, ram: &mut GuestRam) -> Result<LoadedImage> {
    let mem_size = ram.alloc_size();
    if elf.entry < GUEST_MIN_BASE || elf.entry >= mem_size {
        return Err(elf.invalid(format!(
            "entry point 0x{:x} is outside guest memory",
            elf.entry
        )));
    }
    let mut kernel_end = 0u64;
    let mut prev_vaddr = 0u64;
    let mut highest_end = 0u64;
    let mut protections = Vec::new();
    for (i, ph) in elf.phdrs.iter().enumerate() {
        if ph.p_type != PT_LOAD || ph.p_filesz == 0 {
            continue;
        }
        let bad = |why: &str| elf.invalid(format!("phdr[{i}]: {why}"));
        if ph.p_vaddr < GUEST_MIN_BASE {
            return Err(bad("segment below the minimum load address 0x100000"));
        }
        if ph.p_vaddr < prev_vaddr {
            return Err(bad("segments are not in ascending order"));
        }
        prev_vaddr = ph.p_vaddr;
        if ph.p_align == 0 || !ph.p_align.is_power_of_two() {
            return Err(bad("p_align is not a power of two"));
        }
        let start = ph.p_vaddr & !(ph.p_align - 1);
        if start < GUEST_MIN_BASE {
            return Err(bad("aligned segment start is below 0x100000"));
        }
        if start < highest_end {
            return Err(bad("segment overlaps a previous segment"));
        }
        if ph.p_vaddr >= mem_size {
            return Err(bad("segment is outside guest memory"));
        }
        match ph.p_vaddr.checked_add(ph.p_filesz) {
            Some(file_end) if file_end <= mem_size => {}
            _ => return Err(bad("segment file size is outside guest memory")),
        }
        if ph.p_memsz < ph.p_filesz {
            return Err(bad("p_memsz is smaller than p_filesz"));
        }
        let end = ph
            .p_vaddr
            .checked_add(ph.p_memsz)
            .and_then(|e| e.checked_add(ph.p_align - 1))
            .map(|e| e & !(ph.p_align - 1));
        let end = match end {
            Some(end) if end <= mem_size => end,
            _ => return Err(bad("segment memory size is outside guest memory")),
        };
        highest_end = end;
        kernel_end = kernel_end.max(end);

        // Check the file range before reading (a huge p_filesz must not
        // cost a huge buffer), then copy in bounded chunks.
        let in_file = ph
            .p_offset
            .checked_add(ph.p_filesz)
            .is_some_and(|end| end <= elf.file_len());
        if !in_file {
            return Err(bad("segment data lies past the end of the file"));
        }
        let mut chunk = vec![0u8; host_len(COPY_CHUNK.min(ph.p_filesz))];
        let mut copied = 0;
        while copied < ph.p_filesz {
            let n = host_len(COPY_CHUNK.min(ph.p_filesz - copied));
            elf.read_at(ph.p_offset + copied, &mut chunk[..n])?;
            ram.write_bytes(ph.p_vaddr + copied, &chunk[..n])?;
            copied += n as u64;
        }
        // Guest memory is zero-filled already; the bss tail needs no write.

        if start % PAGE != 0 || end % PAGE != 0 {
            return Err(bad("segment is not 4 KiB aligned"));
        }
        if ph.p_flags & PF_W != 0 && ph.p_flags & PF_X != 0 {
            return Err(bad("segment requests WRITE and EXEC permissions"));
        }
        let mut prot = libc::PROT_NONE;
        if ph.p_flags & (PF_R | PF_X) != 0 {
            // Guest code is never executable on the host: X becomes R.
            prot |= libc::PROT_READ;
        }
        if ph.p_flags & PF_W != 0 {
            prot |= libc::PROT_WRITE;
        }
        protections.push((start, end, prot));
    }
    // Protect after all copies, so a read-only segment does not block a
    // later segment sharing nothing with it but the loop.
    for (start, end, prot) in protections {
        ram.protect(start, end, prot)?;
    }
    Ok(LoadedImage {
        entry: elf.entry,
        kernel_end,
    })
}
