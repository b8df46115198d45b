//! Segment loading with every check of §2, in upstream's order and with its
//! messages.

use hvt_abi::layout::GUEST_MIN_BASE;

use super::header::{ElfFile, PF_R, PF_W, PF_X, PT_LOAD, READ_FAILED};
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
/// host protection of each (§2), with upstream's checks in upstream's order
/// and its message for each. `mem_size` is the whole allocation.
pub fn load_segments(elf: &ElfFile, ram: &mut GuestRam) -> Result<LoadedImage> {
    let mem_size = ram.alloc_size();
    const MIN: u64 = GUEST_MIN_BASE;
    let entry = elf.entry;
    if entry < MIN || entry >= mem_size {
        return Err(elf.invalid(format!(
            "e_entry does not fall within the memory allocation range \
             ({entry} < {MIN} || {entry} >= {mem_size})"
        )));
    }
    let mut kernel_end = 0u64;
    let mut prev_vaddr = 0u64;
    let mut protections = Vec::new();
    for (i, ph) in elf.phdrs.iter().enumerate() {
        if ph.p_type != PT_LOAD || ph.p_filesz == 0 {
            continue;
        }
        let (vaddr, filesz, memsz, align) = (ph.p_vaddr, ph.p_filesz, ph.p_memsz, ph.p_align);
        let bad = |why: String| Err(elf.invalid(format!("phdr[{i}]{why}")));
        if vaddr < MIN {
            return bad(format!(
                ".p_vaddr outside of valid memory range ({vaddr} < {MIN})"
            ));
        }
        if vaddr < prev_vaddr {
            return bad(format!(
                ".p_vaddr is not in ascending order ({vaddr} < {prev_vaddr})"
            ));
        }
        prev_vaddr = vaddr;
        if !align.is_power_of_two() {
            return bad(format!(
                ".p_vaddr is outside of memory range \
                 (align_down with {vaddr} (p_vaddr) and {align} (p_align) failed)"
            ));
        }
        let start = vaddr & !(align - 1);
        if start < MIN {
            return bad(format!(
                ".p_vaddr_start is outside of memory range ({start} < {MIN} (p_min_loadaddr))"
            ));
        }
        // Segments may not overlap: each starts at or after the end of
        // every segment before it.
        if start < kernel_end {
            return bad(format!(
                ".p_vaddr_start is outside of memory range ({start} < {kernel_end} (e_end))"
            ));
        }
        if vaddr >= mem_size {
            return bad(format!(
                " program file segment falls outside of valid range \
                 ({vaddr} >= {mem_size} (mem_size))"
            ));
        }
        let Some(file_end) = vaddr.checked_add(filesz) else {
            return bad(format!(
                " program file segment falls outside of valid range \
                 ({vaddr} (p_vaddr) + {filesz} (p_filesz) overflow)"
            ));
        };
        if file_end > mem_size {
            return bad(format!(
                " program file segment falls outside of valid range \
                 ({file_end} (p_vaddr + p_filesz) > {mem_size} (mem_size))"
            ));
        }
        if memsz < filesz {
            return bad(format!(
                " program memory segment falls outside of valid range \
                 ({memsz} (p_memsz) < {filesz} (p_filesz))"
            ));
        }
        let Some(mem_end) = vaddr.checked_add(memsz) else {
            return bad(format!(
                " program memory segment falls outside of valid range \
                 ({vaddr} (p_vaddr) + {memsz} (p_memsz) overflow)"
            ));
        };
        let Some(end) = mem_end.checked_add(align - 1).map(|e| e & !(align - 1)) else {
            return bad(format!(
                " program memory segment falls outside of valid range \
                 (align_up with {mem_end} (p_vaddr_end) and {align} (p_align) failed)"
            ));
        };
        if end > mem_size {
            return bad(format!(
                " program memory segment falls outside of valid range \
                 ({end} (p_vaddr + p_memsz) > {mem_size} (mem_size))"
            ));
        }
        kernel_end = kernel_end.max(end);

        copy_segment(elf, ram, i, ph.p_offset, vaddr, filesz)?;
        // Guest memory is zero-filled already; the bss tail needs no write.

        // Upstream prints the mask, 4095, followed by " - 1".
        for (name, at) in [("p_vaddr_start", start), ("p_vaddr_end", end)] {
            if at % PAGE != 0 {
                return bad(format!(
                    " {name} not aligned with architectural page size ({at} & ({} - 1))",
                    PAGE - 1
                ));
            }
        }
        if ph.p_flags & PF_W != 0 && ph.p_flags & PF_X != 0 {
            return bad(" requests WRITE and EXEC permissions".into());
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
        ram.protect(start, end, prot)
            .map_err(|_| elf.error("mprotect failed"))?;
    }
    Ok(LoadedImage { entry, kernel_end })
}

/// Copies `filesz` bytes at file offset `offset` to guest `vaddr`, in
/// bounded pieces (a huge `p_filesz` must not cost a huge buffer). A short
/// file, or a range the kernel refuses to read (beyond `i64::MAX`), fails
/// as upstream's single read of the whole segment does.
fn copy_segment(
    elf: &ElfFile,
    ram: &mut GuestRam,
    i: usize,
    offset: u64,
    vaddr: u64,
    filesz: u64,
) -> Result<()> {
    let readable = offset
        .checked_add(filesz)
        .is_some_and(|end| end <= i64::MAX as u64);
    if !readable {
        return Err(elf.error(format!("phdr[{i}] pread_in_full returned {READ_FAILED}")));
    }
    let available = elf.file_len().saturating_sub(offset).min(filesz);
    if available != filesz {
        return Err(elf.error(format!(
            "phdr[{i}] host file segment mismatched \
             (pread_in_full returned {available} != {filesz} (p_filesz))"
        )));
    }
    let mut chunk = vec![0u8; host_len(COPY_CHUNK.min(filesz))];
    let mut copied = 0;
    while copied < filesz {
        let n = host_len(COPY_CHUNK.min(filesz - copied));
        match elf.read_full(offset + copied, &mut chunk[..n]) {
            Ok(read) if read == n => {}
            Ok(read) => {
                return Err(elf.error(format!(
                    "phdr[{i}] host file segment mismatched \
                     (pread_in_full returned {} != {filesz} (p_filesz))",
                    copied + read as u64
                )))
            }
            Err(_) => {
                return Err(elf.error(format!("phdr[{i}] pread_in_full returned {READ_FAILED}")))
            }
        }
        ram.write_bytes(vaddr + copied, &chunk[..n])?;
        copied += n as u64;
    }
    Ok(())
}
