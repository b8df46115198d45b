//! The mock tender's VM: no hypervisor, only what modules ask of one. A
//! doorbell (ioeventfd) registration is kept so that a test can ring it as
//! a guest's port write would.

use std::sync::Arc;

use tender_core::error::{Error, Result};
use tender_core::vm::{DebugControl, Extension, Registers, SpecialRegisters, Vcpu, VmOps};
use vm_memory::GuestRegionMmap;
use vmm_sys_util::eventfd::EventFd;

#[derive(Default)]
pub struct MockVm {
    /// Offer the in-kernel doorbell, and with it the network ring.
    pub ioeventfd: bool,
    /// (port, datamatch, eventfd) of each registered doorbell.
    pub doorbells: Vec<(u16, u32, EventFd)>,
    /// Regions modules added, with their read-only flag.
    pub regions: Vec<(Arc<GuestRegionMmap>, bool)>,
}

impl VmOps for MockVm {
    fn has_extension(&self, extension: Extension) -> bool {
        match extension {
            Extension::IoEventFd => self.ioeventfd,
            Extension::GuestDebug => false,
        }
    }

    fn register_ioevent(&mut self, eventfd: &EventFd, port: u16, datamatch: u32) -> Result<()> {
        if !self.ioeventfd {
            return Err(Error::Other("mock tender: no ioeventfd offered".into()));
        }
        let eventfd = eventfd
            .try_clone()
            .map_err(|e| Error::Device(format!("mock tender: eventfd: {e}")))?;
        self.doorbells.push((port, datamatch, eventfd));
        Ok(())
    }

    fn add_memory_region(&mut self, region: Arc<GuestRegionMmap>, read_only: bool) -> Result<()> {
        self.regions.push((region, read_only));
        Ok(())
    }
}

impl MockVm {
    /// Writes `value` to `port` as a 32-bit OUT would: signals the doorbell
    /// registered there for that value. False if there is none.
    pub fn port_write(&self, port: u16, value: u32) -> bool {
        self.doorbells
            .iter()
            .find(|(p, datamatch, _)| *p == port && *datamatch == value)
            .is_some_and(|(_, _, eventfd)| eventfd.write(1).is_ok())
    }
}

/// The mock's vCPU: a register file for the modules' exit hooks. Nothing
/// runs on it: the guest is code of the test process.
#[derive(Default)]
pub struct MockVcpu {
    pub registers: Registers,
    pub special_registers: SpecialRegisters,
    pub debug: Option<DebugControl>,
}

impl Vcpu for MockVcpu {
    fn registers(&self) -> Result<Registers> {
        Ok(self.registers)
    }
    fn set_registers(&mut self, registers: &Registers) -> Result<()> {
        self.registers = *registers;
        Ok(())
    }
    fn special_registers(&self) -> Result<SpecialRegisters> {
        Ok(self.special_registers)
    }
    fn set_special_registers(&mut self, registers: &SpecialRegisters) -> Result<()> {
        self.special_registers = *registers;
        Ok(())
    }
    fn set_debug(&mut self, control: &DebugControl) -> Result<()> {
        self.debug = Some(*control);
        Ok(())
    }
}
