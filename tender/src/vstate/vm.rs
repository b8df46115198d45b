//! The KVM VM with one memory slot and one vCPU (§3.1, §8), and the VM
//! operations modules may ask of it ([`VmOps`]).

use std::sync::Arc;

use hvt_abi::layout::CR4_FSGSBASE;
use kvm_bindings::{kvm_sregs, kvm_userspace_memory_region, KVM_MEM_READONLY};
use kvm_ioctls::{Cap, IoEventAddress, Kvm, VmFd};
use tender_core::error::{errno_text, Error, Result};
use tender_core::memory::GuestRam;
use tender_core::vm::{Extension, VmOps};
use vm_memory::{GuestMemoryRegion, GuestRegionMmap};
use vmm_sys_util::eventfd::EventFd;

use super::vcpu::KvmVcpu;
use crate::arch::x86_64::{cpuid, gdt, paging, regs, Privilege};

/// KVM API version every tender requires.
const KVM_API_VERSION: i32 = 12;

pub struct Vm {
    /// The `/dev/kvm` handle, until set-up is over.
    kvm: Option<Kvm>,
    pub fd: VmFd,
    pub vcpu: KvmVcpu,
    /// Regions modules added, kept mapped for as long as the VM exists.
    extra_regions: Vec<Arc<GuestRegionMmap>>,
}

/// "KVM: WHAT failed: `<strerror>`", as upstream words a failed ioctl
/// (WHAT is "ioctl (NAME)").
pub fn kvm_error(what: &str, e: vmm_sys_util::errno::Error) -> Error {
    Error::Kvm(format!("{what} failed: {}", errno_text(e.errno())))
}

impl Vm {
    /// Opens /dev/kvm, checks what the tender needs, and creates the VM with
    /// `ram` as slot 0 at GPA 0 and one vCPU.
    pub fn new(ram: &GuestRam) -> Result<Vm> {
        let kvm = Kvm::new().map_err(|e| {
            Error::Other(format!(
                "Could not open: /dev/kvm: {}",
                errno_text(e.errno())
            ))
        })?;
        let version = kvm.get_api_version();
        if version != KVM_API_VERSION {
            return Err(Error::Kvm(format!(
                "API version is {version}, {} requires version {KVM_API_VERSION}",
                String::from_utf8_lossy(tender_core::diag::program_name())
            )));
        }
        for (cap, name) in [
            (Cap::UserMemory, "KVM_CAP_USER_MEMORY"),
            (Cap::GetTscKhz, "KVM_CAP_GET_TSC_KHZ"),
        ] {
            if !kvm.check_extension(cap) {
                return Err(Error::Kvm(format!("host does not support {name}")));
            }
        }
        let fd = kvm
            .create_vm()
            .map_err(|e| kvm_error("ioctl (CREATE_VM)", e))?;
        let (host, size) = ram.host_mapping();
        let region = kvm_userspace_memory_region {
            slot: 0,
            flags: 0,
            guest_phys_addr: 0,
            memory_size: size,
            userspace_addr: host as u64,
        };
        // SAFETY: the region is our own mapping, which outlives the VM (the
        // caller keeps `ram` alive for as long as the VM runs).
        unsafe { fd.set_user_memory_region(region) }
            .map_err(|e| kvm_error("ioctl (SET_USER_MEMORY_REGION)", e))?;
        let vcpu = fd
            .create_vcpu(0)
            .map_err(|e| kvm_error("ioctl (CREATE_VCPU)", e))?;
        Ok(Vm {
            kvm: Some(kvm),
            fd,
            vcpu: KvmVcpu::new(vcpu),
            extra_regions: Vec::new(),
        })
    }

    /// Closes `/dev/kvm`: once set up, the VM needs only its own and its
    /// vCPU's descriptors.
    pub fn close_kvm(&mut self) {
        self.kvm = None;
    }

    /// TSC frequency in Hz (§3.5).
    pub fn tsc_hz(&self) -> Result<u64> {
        match self.vcpu.fd.get_tsc_khz() {
            Ok(khz) => Ok(u64::from(khz) * 1000),
            Err(e) if e.errno() == libc::EIO => {
                Err(Error::Kvm("host TSC is unstable, cannot continue".into()))
            }
            Err(e) => Err(kvm_error("ioctl (KVM_GET_TSC_KHZ)", e)),
        }
    }

    /// GDT, page tables, CPUID and registers for the first instruction.
    pub fn set_initial_state(
        &self,
        ram: &GuestRam,
        entry: u64,
        privilege: Privilege,
    ) -> Result<()> {
        let vcpu = &self.vcpu.fd;
        gdt::write_gdt(ram, privilege)?;
        paging::write_page_tables(ram, privilege)?;
        let kvm = self
            .kvm
            .as_ref()
            .ok_or_else(|| Error::Kvm("set-up is over".into()))?;
        cpuid::passthrough(kvm, vcpu)?;
        let sregs = vcpu
            .get_sregs()
            .map_err(|e| kvm_error("ioctl (GET_SREGS)", e))?;
        let initial = regs::initial_sregs(sregs, privilege);
        // A CPL 3 guest sets its thread pointer with `wrfsbase` (the C API's
        // solo5_set_tls_base), allowed once CR4.FSGSBASE is set. KVM refuses
        // the bit when the guest's CPUID lacks FSGSBASE: the guest then runs
        // without it, and `wrfsbase` faults as on such a CPU.
        let with_fsgsbase = kvm_sregs {
            cr4: initial.cr4 | CR4_FSGSBASE,
            ..initial
        };
        if privilege != Privilege::User || vcpu.set_sregs(&with_fsgsbase).is_err() {
            vcpu.set_sregs(&initial)
                .map_err(|e| kvm_error("ioctl (SET_SREGS)", e))?;
        }
        vcpu.set_regs(&regs::initial_regs(entry, ram.visible_size(), privilege))
            .map_err(|e| kvm_error("ioctl (SET_REGS)", e))
    }
}

impl VmOps for Vm {
    fn has_extension(&self, extension: Extension) -> bool {
        let cap = match extension {
            Extension::IoEventFd => Cap::Ioeventfd,
            Extension::GuestDebug => Cap::SetGuestDebug,
        };
        self.kvm
            .as_ref()
            .is_some_and(|kvm| kvm.check_extension(cap))
    }

    fn register_ioevent(&mut self, eventfd: &EventFd, port: u16, datamatch: u32) -> Result<()> {
        self.fd
            .register_ioevent(eventfd, &IoEventAddress::Pio(u64::from(port)), datamatch)
            .map_err(|e| kvm_error("ioctl (IOEVENTFD)", e))
    }

    fn add_memory_region(&mut self, region: Arc<GuestRegionMmap>, read_only: bool) -> Result<()> {
        // Slot 0 is the guest's memory; modules' regions follow.
        let slot = u32::try_from(self.extra_regions.len() + 1)
            .map_err(|_| Error::Kvm("too many memory regions".into()))?;
        let host = region
            .get_host_address(vm_memory::MemoryRegionAddress(0))
            .map_err(|e| Error::Kvm(format!("memory region has no host mapping: {e}")))?;
        let kvm_region = kvm_userspace_memory_region {
            slot,
            flags: if read_only { KVM_MEM_READONLY } else { 0 },
            guest_phys_addr: region.start_addr().0,
            memory_size: region.len(),
            userspace_addr: host as u64,
        };
        // SAFETY: the region is mapped for as long as the VM exists: the VM
        // keeps an `Arc` of it in `extra_regions`.
        unsafe { self.fd.set_user_memory_region(kvm_region) }
            .map_err(|e| kvm_error("ioctl (SET_USER_MEMORY_REGION)", e))?;
        self.extra_regions.push(region);
        Ok(())
    }
}
