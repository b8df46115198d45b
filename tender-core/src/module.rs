//! What a module is: the whole story of one device or service of the
//! tender, from its command-line options to its last flush.
//!
//! Every method but [`Module::name`] has an empty default, so a module
//! implements only the stages it takes part in. [`crate::lifecycle`] calls
//! the stages in this order, for every module in the order of
//! [`crate::modules::all`]:
//!
//! 1. [`Module::parse_option`] for each option before the kernel;
//! 2. [`Module::guest_memory`] and [`Module::reserved_memory`]: the memory
//!    plan;
//! 3. [`Module::initial_vcpu`]: changes to the vCPU state at the first
//!    instruction (the image is loaded, the default state is set);
//! 4. [`Module::setup`]: open back-ends, register hypercalls and poll
//!    sources, start threads;
//! 5. [`Module::boot_info`]: feature bits and data for the guest;
//! 6. [`Module::before_first_run`]: the last moment before the guest runs;
//! 7. while the guest runs: its hypercalls, and [`Module::vm_exit`] for exits
//!    the core does not serve;
//! 8. [`Module::guest_ended`], when the guest itself ended the run (a HALT
//!    or a fault; not a tender error): its vCPU and memory as they were at
//!    the end (a core dump is written here); then [`Module::halt`]: the
//!    guest ended, however it ended.
//!
//! For the sandbox (`crate::sandbox`), [`Module::vcpu_rules`] adds what the
//! module's hypercalls and hooks need on the vCPU thread once set-up is
//! over, and [`Module::thread_rules`] lists the allow-lists of the threads
//! the module started (each of them installed its own at its start).

use std::rc::Rc;

use hvt_abi::boot::BootInfo;

use crate::devices::poller::PollSet;
use crate::error::{FatalHandler, Result};
use crate::hypercall::Hypercalls;
use crate::manifest::Manifest;
use crate::memory::GuestRam;
use crate::sandbox::{Allowlist, SeccompMode};
use crate::stats::Counter;
use crate::vm::{ExitAction, TrapDecision, Vcpu, VmExit, VmOps};

/// An area at the top of guest memory that the lifecycle set aside for one
/// module, outside the guest-visible memory (§3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reservation {
    pub gpa: u64,
    pub size: u64,
}

/// What a module sees while the VM is being set up.
pub struct SetupContext<'a> {
    /// The manifest the guest will receive; modules attach their devices.
    pub manifest: &'a mut Manifest,
    /// Where handlers are registered, one per hypercall number.
    pub hypercalls: &'a mut Hypercalls,
    /// What POLL waits on; modules add their devices' readiness.
    pub poll: &'a Rc<dyn PollSet>,
    /// Guest memory, still only the builder's: the layout may change here.
    pub ram: &'a mut GuestRam,
    /// The VM operations a module may use.
    pub vm: &'a mut dyn VmOps,
    /// This module's reserved area, if it asked for one and it fitted.
    pub reservation: Option<Reservation>,
    /// How a module's thread ends the tender on a fatal error.
    pub fatal: &'a FatalHandler,
    /// What the seccomp filters of the module's threads do (`--seccomp`).
    pub seccomp: SeccompMode,
    /// The guest carries our note (§12): the module may offer our
    /// extensions, negotiated by feature bits (§12.5). Without it the guest
    /// must see exactly what upstream shows it.
    pub extensions: bool,
}

/// How the guest ended, for [`Module::halt`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The guest called HALT (or a module ended it) with this exit code.
    Exit(i32),
    /// The guest faulted: a CPL 3 guest's fault (§12, exit 255), or, at
    /// CPL 0, a CPU event the tender does not serve (a triple fault, `hlt`,
    /// a write to memory the host maps read-only: exit 1 as upstream).
    GuestFault,
    /// The tender stopped the guest on an error.
    Error,
}

/// One module of the tender. See the module documentation for the order in
/// which the lifecycle calls these.
pub trait Module {
    /// Module name, as `--help` lists it.
    fn name(&self) -> &'static str;

    /// Usage lines for `--help`.
    fn usage(&self) -> &'static str {
        ""
    }

    /// Offered every option before the kernel. Returns `Ok(true)` if the
    /// option is this module's, `Err` if it is but is malformed. As
    /// upstream's modules do, a module refuses one of its options with
    /// `Error::InvalidOption` and its reason (`why`, printed first, then
    /// "Invalid option: `X'" and the usage); another error ends the tender
    /// with its own message.
    fn parse_option(&mut self, _option: &str, _manifest: &mut Manifest) -> Result<bool> {
        Ok(false)
    }

    /// The guest's memory size, from the one module that decides it (core).
    fn guest_memory(&self) -> Option<u64> {
        None
    }

    /// Bytes this module wants at the top of guest memory for its own use,
    /// outside the guest-visible memory; rounded up to 2 MiB.
    fn reserved_memory(&self, _manifest: &Manifest) -> u64 {
        0
    }

    /// Changes to the vCPU's initial state (control registers, descriptor
    /// tables, registers), after the tender has set its default.
    fn initial_vcpu(&mut self, _vcpu: &mut dyn Vcpu, _ram: &GuestRam) -> Result<()> {
        Ok(())
    }

    /// Opens devices, registers hypercalls and poll sources, starts threads.
    fn setup(&mut self, _ctx: &mut SetupContext<'_>) -> Result<()> {
        Ok(())
    }

    /// Fills in what this module tells the guest at boot: feature bits in
    /// `host_features`, addresses of what it offers.
    fn boot_info(&self, _info: &mut BootInfo) {}

    /// Runs once, just before the guest's first instruction (a debugger
    /// waits for its client here).
    fn before_first_run(&mut self, _vcpu: &mut dyn Vcpu) -> Result<()> {
        Ok(())
    }

    /// Runs at every exit of the guest (hypercalls included), before the
    /// exit is served. It runs tens of thousands of times a second: keep it
    /// to a few loads when there is nothing to do.
    fn guest_exit(&mut self) -> Result<()> {
        Ok(())
    }

    /// Runs before each entry into the guest, once the exit before it was
    /// served (and before the first). As cheap as [`Module::guest_exit`].
    fn guest_resume(&mut self) -> Result<()> {
        Ok(())
    }

    /// Offered each VM exit the core does not serve. `Ok(None)`: not this
    /// module's; the core's own handling (an error) applies if no module
    /// takes it.
    fn vm_exit(
        &mut self,
        _exit: &VmExit,
        _vcpu: &mut dyn Vcpu,
        _ram: &GuestRam,
    ) -> Result<Option<ExitAction>> {
        Ok(None)
    }

    /// `KVM_RUN` returned because a signal arrived, not for an exit of the
    /// guest's (`--gdb`'s Ctrl-C arrives so); `None` runs the guest on.
    fn interrupted(&mut self, _vcpu: &mut dyn Vcpu) -> Result<Option<ExitAction>> {
        Ok(None)
    }

    /// A CPL 3 guest trapped (§12.4: an exception reached the tender
    /// through the trampoline). `vcpu` gives the guest's registers at the
    /// trap; `None` leaves the trap to the next module, and a trap no
    /// module takes ends the guest with its report (exit 255). A debugger
    /// takes `#BP` and `#DB`.
    fn trap(
        &mut self,
        _vector: u8,
        _vcpu: &mut dyn Vcpu,
        _ram: &GuestRam,
    ) -> Result<Option<TrapDecision>> {
        Ok(None)
    }

    /// A hypercall was served and the guest goes on; only called when
    /// [`Module::vcpu_debug`]: a debugger stops the guest here for a
    /// Ctrl-C that came during the hypercall (a POLL's wait), and at CPL 3
    /// to end a single step (the host drops the step's `#DB` after an
    /// `out`). `vcpu` is KVM's, the guest's own registers, RIP still at
    /// the `out` until the module calls [`Vcpu::complete_pending_io`].
    fn after_hypercall(
        &mut self,
        _vcpu: &mut dyn Vcpu,
        _ram: &GuestRam,
    ) -> Result<Option<ExitAction>> {
        Ok(None)
    }

    /// The guest ended the run (a HALT or a fault, never a tender error),
    /// and its vCPU is stopped where it ended: a module that records the
    /// guest's last state (dumpcore) reads registers and memory here. It
    /// runs on the vCPU thread under its filter (the module's
    /// [`Module::vcpu_rules`]), before every module's [`Module::halt`]. The
    /// mock tender has no vCPU and does not call it.
    fn guest_ended(&mut self, _ending: Ending, _vcpu: &mut dyn Vcpu, _ram: &GuestRam) {}

    /// The guest ended: stop threads, flush, sync.
    fn halt(&mut self, _ending: Ending) {}

    /// This module's counters, for the line that `TENDER_STATS=1` prints
    /// when the guest ends ([`crate::stats`]). Asked once, before the run.
    fn counters(&self, _out: &mut Vec<(&'static str, Counter)>) {}

    /// Adds to the vCPU thread's allow-list what this module's hypercall
    /// handlers and hooks call once set-up is over, with the descriptors
    /// they use.
    fn vcpu_rules(&self, _vcpu: &mut Allowlist) {}

    /// Whether this module sets the vCPU's registers and KVM's guest debug
    /// controls once the sandbox is on (a debugger): the tender then allows
    /// `KVM_SET_REGS`, `KVM_SET_SREGS`, `KVM_SET_GUEST_DEBUG`, `KVM_GET_FPU`,
    /// `KVM_SET_FPU` and `KVM_GET_XSAVE` on the vCPU.
    fn vcpu_debug(&self) -> bool {
        false
    }

    /// The allow-lists of the threads this module started during set-up.
    fn thread_rules(&self) -> Vec<Allowlist> {
        Vec::new()
    }
}
