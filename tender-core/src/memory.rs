//! Guest memory, and the one place where guest addresses are validated.
//!
//! Every address and length that comes from the guest goes through
//! [`GuestRam::check`] before it is dereferenced, with the exact rule of §5:
//! `gpa + len` must be strictly below the guest-visible memory size.
//!
//! [`GuestRam`] is a cheap, cloneable, `Send + Sync` handle: the vCPU thread
//! and every device thread hold one, and all of them reach guest memory only
//! through its checked slices. Its layout (visible size, host protection) is
//! set while the VM is built and is fixed once a second handle exists, so no
//! holder can see a layout the others do not.

use std::sync::Arc;

use hvt_abi::layout::{MAX_MEM_SIZE, MEM_GRANULE};
use vm_memory::{
    Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion, VolatileSlice,
};

use crate::error::{Error, Result};

// The tender builds only for 64-bit hosts: every guest address and length
// (a `u64`) fits a host `usize`, which is what makes [`host_len`] lossless.
const _: () = assert!(usize::BITS == 64);

/// A guest address or length as a host `usize` (an offset or a size in the
/// tender's mapping of guest memory).
// No truncation: `usize` is 64 bits wide, asserted above.
#[allow(clippy::cast_possible_truncation)]
pub const fn host_len(x: u64) -> usize {
    x as usize
}

/// A guest address range that failed validation (§5): the tender stops the
/// guest with "Invalid guest access".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidAccess {
    pub gpa: u64,
    pub len: u64,
}

impl std::fmt::Display for InvalidAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Invalid guest access: gpa=0x{:x}, sz={}",
            self.gpa, self.len
        )
    }
}

/// The rule of §5 for a range in guest memory of `limit` visible bytes.
pub fn check_range(gpa: u64, len: u64, limit: u64) -> std::result::Result<(), InvalidAccess> {
    match gpa.checked_add(len) {
        Some(end) if gpa < limit && end < limit => Ok(()),
        _ => Err(InvalidAccess { gpa, len }),
    }
}

/// Host protection of a part of guest memory that is not read/write: the
/// loader makes guest code and read-only data read-only (or inaccessible) in
/// the tender's own mapping (§2). A guest address inside one must not be
/// written (or read) by the tender, which would fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Protected {
    pub start: u64,
    pub end: u64,
    /// What the tender may do there on the guest's behalf (§5).
    pub prot: libc::c_int,
    /// The host mapping's own protection, which can be wider: writes the
    /// tender refuses may still be KVM's to make (`refuse_writes`).
    pub host_prot: libc::c_int,
}

/// Sets the host protection of guest memory `[start, end)`, page-aligned.
///
/// # Safety
/// The range must lie inside the mapping at `host`, and no Rust reference
/// into it may be outstanding: only its protection changes.
unsafe fn mprotect_range(host: *mut u8, start: u64, end: u64, prot: libc::c_int) -> Result<()> {
    // SAFETY: the caller's promise.
    let rc = unsafe {
        libc::mprotect(
            host.add(host_len(start)).cast(),
            host_len(end - start),
            prot,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(Error::Memory(format!(
            "mprotect of guest memory failed: {}",
            std::io::Error::last_os_error()
        )))
    }
}

/// The host-protection part of the §5 check: `[gpa, gpa + len)` may be read
/// (or written, if `write`) by the tender. Bounds are checked separately.
pub fn check_protection(
    protected: &[Protected],
    gpa: u64,
    len: u64,
    write: bool,
) -> std::result::Result<(), InvalidAccess> {
    let end = gpa.saturating_add(len);
    let refused = protected.iter().any(|p| {
        let overlaps = gpa < p.end && end > p.start;
        let allowed = if write {
            p.prot & libc::PROT_WRITE != 0
        } else {
            p.prot != libc::PROT_NONE
        };
        overlaps && !allowed
    });
    if refused {
        Err(InvalidAccess { gpa, len })
    } else {
        Ok(())
    }
}

/// The guest's memory: one anonymous, zero-filled mapping at GPA 0.
#[derive(Clone)]
pub struct GuestRam {
    mem: GuestMemoryMmap,
    layout: Arc<Layout>,
}

/// What the checks need to know about the mapping.
#[derive(Debug)]
struct Layout {
    /// Bytes of the allocation (page tables map all of it).
    alloc_size: u64,
    /// Bytes the guest may name in hypercalls; less than `alloc_size` when
    /// modules reserved the top of the allocation for themselves.
    visible_size: u64,
    /// Ranges the host mapping does not allow to read or write.
    protected: Vec<Protected>,
}

impl GuestRam {
    /// Maps `alloc_size` bytes of zeroed memory.
    pub fn new(alloc_size: u64) -> Result<Self> {
        if alloc_size == 0 || !alloc_size.is_multiple_of(MEM_GRANULE) || alloc_size > MAX_MEM_SIZE {
            return Err(Error::Memory(format!(
                "invalid guest memory size {alloc_size}"
            )));
        }
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), host_len(alloc_size))])
            .map_err(|e| Error::Memory(format!("Could not allocate guest memory: {e}")))?;
        let region = mem.iter().next().expect("guest memory has one region");
        let host = region
            .get_host_address(vm_memory::MemoryRegionAddress(0))
            .map_err(|e| Error::Memory(format!("Could not map guest memory: {e}")))?;
        // Guest memory stays out of the tender's core dumps: it is the
        // guest's data, not the tender's state. Best effort.
        // SAFETY: advice on our own fresh mapping; no memory is accessed.
        unsafe { libc::madvise(host.cast(), host_len(alloc_size), libc::MADV_DONTDUMP) };
        Ok(GuestRam {
            mem,
            layout: Arc::new(Layout {
                alloc_size,
                visible_size: alloc_size,
                protected: Vec::new(),
            }),
        })
    }

    /// The layout, for a change made while this is the only handle.
    fn layout_mut(&mut self) -> Result<&mut Layout> {
        Arc::get_mut(&mut self.layout)
            .ok_or_else(|| Error::Memory("guest memory layout changed after it was shared".into()))
    }

    /// Whole allocation, reserved areas included.
    pub fn alloc_size(&self) -> u64 {
        self.layout.alloc_size
    }

    /// Guest-visible size (`boot_info.mem_size`).
    pub fn visible_size(&self) -> u64 {
        self.layout.visible_size
    }

    /// Keeps the top `bytes` of the allocation out of the guest-visible size.
    pub fn reserve_top(&mut self, bytes: u64) -> Result<()> {
        let layout = self.layout_mut()?;
        layout.visible_size = layout.alloc_size - bytes.min(layout.alloc_size);
        Ok(())
    }

    /// Host address of GPA 0 and the mapping length, for the KVM memslot.
    pub fn host_mapping(&self) -> (*mut u8, u64) {
        let region = self.mem.iter().next().expect("guest memory has one region");
        let host = region
            .get_host_address(vm_memory::MemoryRegionAddress(0))
            .expect("region start is mapped");
        (host, region.len())
    }

    /// Validates a guest range the tender will read, by the rule of §5 and
    /// the host protection of the range.
    pub fn check(&self, gpa: u64, len: u64) -> std::result::Result<GuestAddress, InvalidAccess> {
        self.check_access(gpa, len, false)
    }

    /// Validates a guest range the tender reads, or writes if `write`.
    pub fn check_access(
        &self,
        gpa: u64,
        len: u64,
        write: bool,
    ) -> std::result::Result<GuestAddress, InvalidAccess> {
        check_range(gpa, len, self.layout.visible_size)?;
        check_protection(&self.layout.protected, gpa, len, write)?;
        Ok(GuestAddress(gpa))
    }

    /// A view of an area the tender keeps for itself outside the
    /// guest-visible memory (a module's reservation, §3.1). Never for an
    /// address the guest names: those go through [`GuestRam::slice`].
    pub fn reserved_slice(&self, gpa: u64, len: u64) -> Result<VolatileSlice<'_>> {
        let inside = gpa >= self.layout.visible_size
            && gpa
                .checked_add(len)
                .is_some_and(|end| end <= self.layout.alloc_size);
        let slice = usize::try_from(len)
            .ok()
            .filter(|_| inside)
            .and_then(|len| self.mem.get_slice(GuestAddress(gpa), len).ok());
        slice.ok_or_else(|| {
            Error::Memory(format!(
                "0x{gpa:x}+{len} is not a reserved area of guest memory"
            ))
        })
    }

    /// A validated view of guest memory the tender reads.
    pub fn slice(
        &self,
        gpa: u64,
        len: u64,
    ) -> std::result::Result<VolatileSlice<'_>, InvalidAccess> {
        let addr = self.check_access(gpa, len, false)?;
        self.mem
            .get_slice(addr, host_len(len))
            .map_err(|_| InvalidAccess { gpa, len })
    }

    /// A validated view of guest memory the tender writes.
    pub fn slice_mut(
        &self,
        gpa: u64,
        len: u64,
    ) -> std::result::Result<VolatileSlice<'_>, InvalidAccess> {
        let addr = self.check_access(gpa, len, true)?;
        self.mem
            .get_slice(addr, host_len(len))
            .map_err(|_| InvalidAccess { gpa, len })
    }

    /// Reads a hypercall argument struct.
    pub fn read_arg<T: vm_memory::ByteValued>(
        &self,
        gpa: u64,
    ) -> std::result::Result<T, InvalidAccess> {
        let len = std::mem::size_of::<T>() as u64;
        let addr = self.check(gpa, len)?;
        self.mem
            .read_obj(addr)
            .map_err(|_| InvalidAccess { gpa, len })
    }

    /// Writes a hypercall result struct back.
    pub fn write_arg<T: vm_memory::ByteValued>(
        &self,
        gpa: u64,
        value: &T,
    ) -> std::result::Result<(), InvalidAccess> {
        let len = std::mem::size_of::<T>() as u64;
        let addr = self.check_access(gpa, len, true)?;
        self.mem
            .write_obj(*value, addr)
            .map_err(|_| InvalidAccess { gpa, len })
    }

    /// Tender-side writes (ELF image, page tables, boot info): anywhere in the
    /// allocation, never from guest-supplied addresses.
    pub fn write_bytes(&self, gpa: u64, bytes: &[u8]) -> Result<()> {
        self.mem
            .write_slice(bytes, GuestAddress(gpa))
            .map_err(|e| Error::Memory(format!("guest memory write at 0x{gpa:x}: {e}")))
    }

    /// A tender-side view of `[gpa, gpa + len)` for atomic stores (a page
    /// the tender keeps current for the guest, §12.7): anywhere in the
    /// allocation, never from guest-supplied addresses.
    pub fn tender_slice(&self, gpa: u64, len: u64) -> Result<VolatileSlice<'_>> {
        usize::try_from(len)
            .ok()
            .and_then(|len| self.mem.get_slice(GuestAddress(gpa), len).ok())
            .ok_or_else(|| Error::Memory(format!("0x{gpa:x}+{len} is not in guest memory")))
    }

    /// Tender-side read, for tests and diagnostics.
    pub fn read_bytes(&self, gpa: u64, bytes: &mut [u8]) -> Result<()> {
        self.mem
            .read_slice(bytes, GuestAddress(gpa))
            .map_err(|e| Error::Memory(format!("guest memory read at 0x{gpa:x}: {e}")))
    }

    /// Tender-side struct write.
    pub fn write_obj<T: vm_memory::ByteValued>(&self, gpa: u64, value: &T) -> Result<()> {
        self.write_bytes(gpa, value.as_slice())
    }

    /// A debugger's access to `[gpa, gpa + len)` (`--gdb`): anywhere below the
    /// guest-visible size, whatever the host protection. Pages the host maps
    /// read-only (guest text, where software breakpoints go) or not at all are
    /// made accessible for the copy and get their protection back after it.
    pub fn debugger_access(&self, gpa: u64, bytes: &mut [u8], write: bool) -> Result<()> {
        let len = bytes.len() as u64;
        check_range(gpa, len, self.layout.visible_size)
            .map_err(|e| Error::Memory(e.to_string()))?;
        let end = gpa + len;
        let (host, _) = self.host_mapping();
        let needed = if write {
            libc::PROT_READ | libc::PROT_WRITE
        } else {
            libc::PROT_READ
        };
        // Only what the host mapping itself withholds is opened, and only
        // that is put back.
        let opened: Vec<(u64, u64, libc::c_int)> = self
            .layout
            .protected
            .iter()
            .filter(|p| gpa < p.end && end > p.start && p.host_prot & needed != needed)
            .map(|p| {
                let start = p.start.max(gpa) & !4095;
                (start, p.end.min(end.next_multiple_of(4096)), p.host_prot)
            })
            .collect();
        for &(start, end, _) in &opened {
            // SAFETY: below the visible size (checked above), page-aligned.
            unsafe { mprotect_range(host, start, end, needed)? };
        }
        let copied = if write {
            self.write_bytes(gpa, bytes)
        } else {
            self.read_bytes(gpa, bytes)
        };
        for &(start, end, prot) in &opened {
            // SAFETY: as above.
            unsafe { mprotect_range(host, start, end, prot)? };
        }
        copied
    }

    /// Refuses the tender's own writes into `[start, end)` on the guest's
    /// behalf (hypercall results, device reads), without changing the host
    /// mapping (KVM itself may still need to write there, e.g. accessed
    /// bits in page tables).
    pub fn refuse_writes(&mut self, start: u64, end: u64) -> Result<()> {
        let layout = self.layout_mut()?;
        layout.protected.push(Protected {
            start,
            end,
            prot: libc::PROT_READ,
            host_prot: libc::PROT_READ | libc::PROT_WRITE,
        });
        Ok(())
    }

    /// Changes the host protection of `[start, end)` of the allocation.
    /// Ranges left read/write are not recorded: read/write is the default.
    pub fn protect(&mut self, start: u64, end: u64, prot: libc::c_int) -> Result<()> {
        // The host mapping of guest memory is never executable: guest code
        // runs in the guest, never in the tender.
        if prot & libc::PROT_EXEC != 0 {
            return Err(Error::Memory(
                "guest memory is never executable on the host".into(),
            ));
        }
        if start > end || end > self.layout.alloc_size || !start.is_multiple_of(4096) {
            return Err(Error::Memory(format!(
                "mprotect range 0x{start:x}-0x{end:x} is invalid"
            )));
        }
        let (host, _) = self.host_mapping();
        let layout = self.layout_mut()?;
        // SAFETY: the range lies inside our own mapping (checked above), and
        // no other handle exists whose checks would miss the change.
        unsafe { mprotect_range(host, start, end, prot)? };
        // The new protection replaces the old one inside [start, end); what
        // lies outside keeps its protection.
        let mut ranges = Vec::with_capacity(layout.protected.len() + 2);
        for p in layout.protected.drain(..) {
            if p.start < start {
                ranges.push(Protected {
                    end: p.end.min(start),
                    ..p
                });
            }
            if p.end > end {
                ranges.push(Protected {
                    start: p.start.max(end),
                    ..p
                });
            }
        }
        layout.protected = ranges;
        if prot != libc::PROT_READ | libc::PROT_WRITE {
            layout.protected.push(Protected {
                start,
                end,
                prot,
                host_prot: prot,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_ending_at_the_top_are_rejected() {
        let ram = GuestRam::new(2 << 20).unwrap();
        let top = 2u64 << 20;
        assert!(ram.check(0x1000, 16).is_ok());
        assert!(ram.check(top - 17, 16).is_ok());
        assert_eq!(
            ram.check(top - 16, 16),
            Err(InvalidAccess {
                gpa: top - 16,
                len: 16
            })
        );
        assert!(ram.check(top, 0).is_err());
        assert!(ram.check(u64::MAX - 1, 16).is_err());
        assert!(ram.check(0, u64::MAX).is_err());
    }

    #[test]
    fn protected_ranges_refuse_the_access_they_forbid() {
        let mut ram = GuestRam::new(4 << 20).unwrap();
        ram.protect(0x10_0000, 0x10_2000, libc::PROT_READ).unwrap();
        ram.protect(0x10_2000, 0x10_3000, libc::PROT_NONE).unwrap();
        // Reading code is fine, writing it is not.
        assert!(ram.read_arg::<u64>(0x10_0000).is_ok());
        assert!(ram.write_arg(0x10_0ff8, &0u64).is_err());
        assert!(
            ram.slice_mut(0x0f_fff0, 0x20).is_err(),
            "straddling into read-only"
        );
        assert!(ram.slice(0x0f_fff0, 0x20).is_ok());
        // No access at all: neither.
        assert!(ram.read_arg::<u64>(0x10_2008).is_err());
        assert!(ram.slice(0x10_1ff8, 16).is_err());
        // Outside them, both.
        assert!(ram.write_arg(0x10_3000, &1u64).is_ok());
        assert!(
            ram.slice(0x10_2000, 0).is_ok(),
            "an empty range touches nothing"
        );
    }

    /// The host permissions (`rwx` of /proc/self/maps) at `addr`.
    fn host_perms(addr: usize) -> String {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        maps.lines()
            .find_map(|line| {
                let mut fields = line.split_whitespace();
                let (from, to) = fields.next()?.split_once('-')?;
                let from = usize::from_str_radix(from, 16).ok()?;
                let to = usize::from_str_radix(to, 16).ok()?;
                (from <= addr && addr < to).then(|| fields.next().unwrap_or("")[..3].to_owned())
            })
            .expect("the address is mapped")
    }

    #[test]
    fn a_debugger_write_leaves_each_page_as_the_host_had_it() {
        let mut ram = GuestRam::new(2 << 20).unwrap();
        // Refused to the tender, but read/write on the host (KVM writes
        // there); and read-only text.
        ram.refuse_writes(0, 0x10_0000).unwrap();
        ram.protect(0x10_0000, 0x10_1000, libc::PROT_READ).unwrap();
        let (host, _) = ram.host_mapping();
        for gpa in [0x1000u64, 0x10_0000] {
            ram.debugger_access(gpa, &mut [0xcc], true).unwrap();
            let mut byte = [0u8];
            ram.debugger_access(gpa, &mut byte, false).unwrap();
            assert_eq!(byte, [0xcc]);
        }
        assert_eq!(host_perms(host as usize + 0x1000), "rw-");
        assert_eq!(host_perms(host as usize + 0x10_0000), "r--");
    }

    #[test]
    fn guest_memory_is_never_executable_on_the_host() {
        let mut ram = GuestRam::new(2 << 20).unwrap();
        let err = ram
            .protect(0x10_0000, 0x10_1000, libc::PROT_READ | libc::PROT_EXEC)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "guest memory is never executable on the host"
        );
        // And the mapping itself is not: /proc/self/maps shows no x for it.
        let (host, len) = ram.host_mapping();
        let start = host as usize;
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let line = maps
            .lines()
            .find(|line| {
                let range = line.split_whitespace().next().unwrap_or("");
                let (from, to) = range.split_once('-').unwrap_or(("0", "0"));
                let from = usize::from_str_radix(from, 16).unwrap_or(0);
                let to = usize::from_str_radix(to, 16).unwrap_or(0);
                from <= start && start < to && to - from >= host_len(len).min(1)
            })
            .expect("the mapping is listed");
        let perms = line.split_whitespace().nth(1).unwrap();
        assert_eq!(&perms[..3], "rw-", "{line}");
    }

    #[test]
    fn reserved_top_is_not_a_legal_buffer() {
        let mut ram = GuestRam::new(4 << 20).unwrap();
        ram.reserve_top(2 << 20).unwrap();
        assert_eq!(ram.visible_size(), 2 << 20);
        assert!(ram.check((2 << 20) + 16, 8).is_err());
        assert!(ram.slice((2 << 20) - 100, 50).is_ok());
    }

    #[test]
    fn memory_starts_zeroed_and_round_trips() {
        let ram = GuestRam::new(2 << 20).unwrap();
        let mut buf = [0xffu8; 8];
        ram.read_bytes(0x10000, &mut buf).unwrap();
        assert_eq!(buf, [0; 8]);
        ram.write_arg(0x10000, &0x1122_3344_5566_7788u64).unwrap();
        assert_eq!(ram.read_arg::<u64>(0x10000).unwrap(), 0x1122_3344_5566_7788);
    }
}
