//! Offering the shared-memory network ring (§3.1, §6.7): memory for it is
//! set aside before the VM exists, and the ring is offered after the net
//! module attached its taps, if KVM can serve the doorbell in the kernel.

use std::os::fd::RawFd;

use hvt_abi::hypercall::RING_KICK_PIO_BASE;
use hvt_abi::layout::MAX_MEM_SIZE;
use hvt_abi::manifest::MFT_DEV_NET_BASIC;
use kvm_ioctls::{Cap, IoEventAddress};
use vmm_sys_util::eventfd::{EventFd, EFD_CLOEXEC};

use crate::devices::net_ring::{RingService, RING_AREA};
use crate::manifest::Manifest;
use crate::vstate::memory::GuestRam;
use crate::vstate::vm::Vm;

/// True when the manifest declares a network device and the ring is not
/// switched off.
pub fn wanted(manifest: &Manifest, enabled: bool) -> bool {
    enabled && manifest.handles_of(MFT_DEV_NET_BASIC).next().is_some()
}

/// How much memory to allocate: the guest's, plus the ring area if wanted,
/// at most 4 GiB (with `--mem=4096` the ring is carved out of the 4 GiB).
pub fn allocation(mem_size: u64, wanted: bool) -> u64 {
    if wanted {
        (mem_size + RING_AREA).min(MAX_MEM_SIZE)
    } else {
        mem_size
    }
}

/// Sets the ring area aside at the top of `ram` if wanted and the allocation
/// has room for it (at least twice its size); returns its address.
pub fn reserve(ram: &mut GuestRam, wanted: bool) -> Option<u64> {
    if !wanted || ram.alloc_size() < 2 * RING_AREA {
        return None;
    }
    ram.reserve_top(RING_AREA);
    Some(ram.visible_size())
}

/// Starts the ring service over the attached taps, or `None` when KVM or
/// the host cannot (the guest then uses the hypercalls).
pub fn offer(
    vm: &Vm,
    ram: &mut GuestRam,
    manifest: &Manifest,
    ring_gpa: u64,
) -> Option<RingService> {
    if !vm.kvm.check_extension(Cap::Ioeventfd) {
        return None;
    }
    // The image may have put a segment over the ring area: make it ours
    // again, read/write and zeroed, before the thread looks at it (§6.7).
    ram.protect(
        ring_gpa,
        ram.alloc_size(),
        libc::PROT_READ | libc::PROT_WRITE,
    )
    .ok()?;
    ram.write_bytes(
        ring_gpa,
        &vec![0u8; std::mem::size_of::<hvt_abi::ring::Ring>()],
    )
    .ok()?;
    let taps: Vec<Option<RawFd>> = manifest
        .entries
        .iter()
        .map(|e| (e.kind == MFT_DEV_NET_BASIC && e.attached != 0).then_some(e.b as RawFd))
        .collect();
    let doorbell = EventFd::new(EFD_CLOEXEC).ok()?;
    vm.fd
        .register_ioevent(
            &doorbell,
            &IoEventAddress::Pio(u64::from(RING_KICK_PIO_BASE)),
            // A 32-bit data match on ring id 0 makes the registration 4
            // bytes long: other access sizes still reach the tender, which
            // refuses them (§6.7).
            0u32,
        )
        .ok()?;
    let (host_base, _) = ram.host_mapping();
    RingService::start(
        host_base,
        ram.visible_size(),
        ram.protected().to_vec(),
        ring_gpa,
        taps,
        doorbell,
    )
    .ok()
}
