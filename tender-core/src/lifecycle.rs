//! The sequence that drives every module through its stages (see
//! [`crate::module`]). It names no device: the tender and the mock tender
//! both build their guest's devices through it, so the wiring exists once.

use std::rc::Rc;

use hvt_abi::boot::BootInfo;
use hvt_abi::layout::{DEFAULT_MEM_SIZE, MAX_MEM_SIZE, MEM_GRANULE};

use crate::devices::poller::PollSet;
use crate::error::{Error, FatalHandler, Result};
use crate::hypercall::Hypercalls;
use crate::manifest::Manifest;
use crate::memory::GuestRam;
use crate::module::{Ending, Module, Reservation, SetupContext};
use crate::vm::{ExitAction, Vcpu, VmExit, VmOps};

/// The modules of one tender, and what the lifecycle learnt about them.
pub struct ModuleSet {
    modules: Vec<Box<dyn Module>>,
    /// The reservation of each module, by position, once memory is planned.
    reservations: Vec<Option<Reservation>>,
}

/// What set-up needs from the host besides the modules.
pub struct SetupEnv<'a> {
    pub manifest: &'a mut Manifest,
    pub ram: &'a mut GuestRam,
    pub vm: &'a mut dyn VmOps,
    pub poll: Rc<dyn PollSet>,
    pub fatal: FatalHandler,
}

impl ModuleSet {
    pub fn new(modules: Vec<Box<dyn Module>>) -> ModuleSet {
        let reservations = vec![None; modules.len()];
        ModuleSet {
            modules,
            reservations,
        }
    }

    /// The modules, in order.
    pub fn iter(&self) -> impl Iterator<Item = &dyn Module> {
        self.modules.iter().map(|m| &**m)
    }

    /// The `--help` text: core's options, then every other module's.
    pub fn usage(&self) -> String {
        let mut text = String::from(
            "usage: tender [ CORE OPTIONS ] [ MODULE OPTIONS ] [ -- ] KERNEL [ ARGS ]\n\
             KERNEL is the filename of the unikernel to run.\n\
             ARGS are optional arguments passed to KERNEL.\nCore options:\n",
        );
        let (core, others): (Vec<_>, Vec<_>) = self.iter().partition(|m| m.name() == "core");
        for module in &core {
            text.push_str(module.usage());
        }
        text.push_str(
            "  [ --help ] (display this help)\n  [ --version ] (display version information)\n",
        );
        let names: Vec<&str> = self.iter().map(|m| m.name()).collect();
        text.push_str(&format!("Compiled-in modules: {}\n", names.join(" ")));
        text.push_str("Compiled-in module options:\n");
        for module in &others {
            text.push_str(module.usage());
        }
        text
    }

    /// Stage 1: offers each option to the modules in turn; an option no
    /// module takes is a usage error.
    pub fn parse_options(&mut self, options: &[String], manifest: &mut Manifest) -> Result<()> {
        for option in options {
            let mut taken = false;
            for module in &mut self.modules {
                if module.parse_option(option, manifest)? {
                    taken = true;
                    break;
                }
            }
            if !taken {
                return Err(Error::Usage(format!("Invalid option: `{option}'")));
            }
        }
        Ok(())
    }

    /// Stage 2: allocates guest memory for the guest and the modules'
    /// reservations. The allocation is at most 4 GiB: reservations are
    /// carved from the top, each only while at least 2 MiB stay visible to
    /// the guest (a module whose reservation does not fit gets none).
    pub fn allocate_memory(&mut self, manifest: &Manifest) -> Result<GuestRam> {
        let guest = self
            .modules
            .iter()
            .find_map(|m| m.guest_memory())
            .unwrap_or(DEFAULT_MEM_SIZE);
        let wanted: Vec<u64> = self
            .modules
            .iter()
            .map(|m| m.reserved_memory(manifest).next_multiple_of(MEM_GRANULE))
            .collect();
        let alloc_size = wanted
            .iter()
            .fold(guest, |total, size| total.saturating_add(*size))
            .min(MAX_MEM_SIZE);
        let mut top = alloc_size;
        for (slot, &size) in self.reservations.iter_mut().zip(&wanted) {
            *slot = None;
            if size != 0 && top.saturating_sub(size) >= MEM_GRANULE {
                top -= size;
                *slot = Some(Reservation { gpa: top, size });
            }
        }
        let mut ram = GuestRam::new(alloc_size)?;
        ram.reserve_top(alloc_size - top)?;
        Ok(ram)
    }

    /// Stage 3: the modules' changes to the vCPU's initial state.
    pub fn initial_vcpu(&mut self, vcpu: &mut dyn Vcpu, ram: &GuestRam) -> Result<()> {
        self.modules
            .iter_mut()
            .try_for_each(|m| m.initial_vcpu(vcpu, ram))
    }

    /// Stage 4: sets up every module, then checks that every device of the
    /// manifest was attached (§4.5). Returns the hypercall table.
    pub fn setup(&mut self, env: SetupEnv<'_>) -> Result<Hypercalls> {
        let mut hypercalls = Hypercalls::default();
        for (module, reservation) in self.modules.iter_mut().zip(&self.reservations) {
            let mut ctx = SetupContext {
                manifest: &mut *env.manifest,
                hypercalls: &mut hypercalls,
                poll: &env.poll,
                ram: &mut *env.ram,
                vm: &mut *env.vm,
                reservation: *reservation,
                fatal: &env.fatal,
            };
            module.setup(&mut ctx)?;
        }
        env.manifest.check_all_attached()?;
        Ok(hypercalls)
    }

    /// Stage 5: what the modules add to the boot information.
    pub fn boot_info(&self, info: &mut BootInfo) {
        for module in &self.modules {
            module.boot_info(info);
        }
    }

    /// Stage 6: the last hook before the guest runs.
    pub fn before_first_run(&mut self, vcpu: &mut dyn Vcpu) -> Result<()> {
        self.modules
            .iter_mut()
            .try_for_each(|m| m.before_first_run(vcpu))
    }

    /// Stage 7: offers a VM exit the core does not serve to each module until
    /// one takes it.
    pub fn vm_exit(
        &mut self,
        exit: &VmExit,
        vcpu: &mut dyn Vcpu,
        ram: &GuestRam,
    ) -> Result<Option<ExitAction>> {
        for module in &mut self.modules {
            if let Some(action) = module.vm_exit(exit, vcpu, ram)? {
                return Ok(Some(action));
            }
        }
        Ok(None)
    }

    /// Stage 8: every module's halt hook, in reverse order of set-up.
    pub fn halt(&mut self, ending: Ending) {
        for module in self.modules.iter_mut().rev() {
            module.halt(ending);
        }
    }

    /// The system calls every module's threads make after set-up.
    pub fn thread_syscalls(&self) -> Vec<libc::c_long> {
        let mut calls: Vec<libc::c_long> = self
            .modules
            .iter()
            .flat_map(|m| m.thread_syscalls().iter().copied())
            .collect();
        calls.sort_unstable();
        calls.dedup();
        calls
    }
}
