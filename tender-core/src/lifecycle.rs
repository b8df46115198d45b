//! The sequence that drives every module through its stages (see
//! [`crate::module`]). It names no device: the tender and the mock tender
//! both build their guest's devices through it, so the wiring exists once.

use std::ffi::OsStr;
use std::rc::Rc;

use hvt_abi::boot::BootInfo;
use hvt_abi::layout::{DEFAULT_MEM_SIZE, MAX_MEM_SIZE, MEM_GRANULE};

use crate::devices::poller::PollSet;
use crate::error::{Error, FatalHandler, Result};
use crate::hypercall::Hypercalls;
use crate::manifest::Manifest;
use crate::memory::GuestRam;
use crate::module::{Ending, Module, Reservation, SetupContext};
use crate::sandbox::{Allowlist, SeccompMode};
use crate::stats::Counter;
use crate::vm::{ExitAction, TrapDecision, Vcpu, VmExit, VmOps};

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
    pub seccomp: SeccompMode,
    /// The guest carries our note (§12): our extensions may be offered.
    pub extensions: bool,
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

    /// The `--help` text, under the program's name (`crate::diag`): core's
    /// options, then every other module's. The lines upstream prints too
    /// are upstream's, so that what compares them finds them.
    pub fn usage(&self) -> String {
        let program = String::from_utf8_lossy(crate::diag::program_name());
        let mut text = format!(
            "usage: {program} [ CORE OPTIONS ] [ MODULE OPTIONS ] [ -- ] KERNEL [ ARGS ]\n\
             KERNEL is the filename of the unikernel to run.\n\
             ARGS are optional arguments passed to the unikernel.\nCore options:\n",
        );
        let (core, others): (Vec<_>, Vec<_>) = self.iter().partition(|m| m.name() == "core");
        // Core's text lists --help and --version after --mem, as upstream.
        for module in &core {
            text.push_str(module.usage());
        }
        text.push_str("Compiled-in modules: ");
        for module in self.iter() {
            text.push_str(module.name());
            text.push(' ');
        }
        text.push_str("\nCompiled-in module options:\n");
        for module in &others {
            text.push_str(module.usage());
        }
        text
    }

    /// Stage 1: offers each option, in order, to the modules in turn; the
    /// first option no module takes is a usage error. Modules see options
    /// as text: bytes that are not UTF-8 reach them as U+FFFD (so a value
    /// that names a host file must be UTF-8), and an option no module
    /// takes is reported as it was given.
    pub fn parse_options<S: AsRef<OsStr>>(
        &mut self,
        options: &[S],
        manifest: &mut Manifest,
    ) -> Result<()> {
        for option in options {
            let option = option.as_ref();
            let text = option.to_string_lossy();
            let mut taken = false;
            for module in &mut self.modules {
                match module.parse_option(&text, manifest) {
                    Ok(false) => continue,
                    Ok(true) => taken = true,
                    // The module's refusal names the option as it was given.
                    Err(Error::InvalidOption { why, .. }) => {
                        return Err(Error::InvalidOption {
                            option: option.to_owned(),
                            why,
                        })
                    }
                    Err(e) => return Err(e),
                }
                break;
            }
            if !taken {
                return Err(Error::InvalidOption {
                    option: option.to_owned(),
                    why: None,
                });
            }
        }
        Ok(())
    }

    /// Stage 2: allocates guest memory for the guest and the modules'
    /// reservations. The allocation is at most 4 GiB: reservations are
    /// carved from the top, each only while at least 2 MiB stay visible to
    /// the guest (a module whose reservation does not fit gets none).
    pub fn allocate_memory(&mut self, manifest: &Manifest) -> Result<GuestRam> {
        let requested = self
            .modules
            .iter()
            .find_map(|m| m.guest_memory())
            .unwrap_or(DEFAULT_MEM_SIZE);
        let (guest, adjusted) = size_guest_memory(requested);
        if adjusted {
            crate::diag::warn(format!("adjusting memory to {guest} bytes"));
        }
        if guest > MAX_MEM_SIZE {
            return Err(Error::Argument(format!(
                "guest memory size {guest} bytes exceeds the max size {MAX_MEM_SIZE} bytes"
            )));
        }
        let wanted: Vec<u64> = self
            .modules
            .iter()
            .map(|m| {
                let size = m.reserved_memory(manifest).min(MAX_MEM_SIZE);
                size.next_multiple_of(MEM_GRANULE)
            })
            .collect();
        // A reservation grows the allocation, up to 4 GiB; beyond that it
        // comes out of the guest's memory, as long as 2 MiB stay visible.
        let (mut alloc_size, mut reserved) = (guest, 0u64);
        let mut granted = vec![false; wanted.len()];
        for (grant, &size) in granted.iter_mut().zip(&wanted) {
            let grown = alloc_size.saturating_add(size).min(MAX_MEM_SIZE);
            let visible = grown.saturating_sub(reserved.saturating_add(size));
            if size != 0 && visible >= MEM_GRANULE {
                (alloc_size, reserved, *grant) = (grown, reserved + size, true);
            }
        }
        let mut top = alloc_size;
        for ((slot, &size), grant) in self.reservations.iter_mut().zip(&wanted).zip(granted) {
            *slot = grant.then(|| {
                top -= size;
                Reservation { gpa: top, size }
            });
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
                seccomp: env.seccomp,
                extensions: env.extensions,
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

    /// Stage 7, at every exit of the guest before it is served.
    pub fn guest_exit(&mut self) -> Result<()> {
        self.modules.iter_mut().try_for_each(|m| m.guest_exit())
    }

    /// Stage 7, before each entry into the guest.
    pub fn guest_resume(&mut self) -> Result<()> {
        self.modules.iter_mut().try_for_each(|m| m.guest_resume())
    }

    /// Stage 7: offers a VM exit the core does not serve to each module until
    /// one takes it.
    pub fn vm_exit(
        &mut self,
        exit: &VmExit,
        vcpu: &mut dyn Vcpu,
        ram: &GuestRam,
    ) -> Result<Option<ExitAction>> {
        self.first_answer(|m| m.vm_exit(exit, vcpu, ram))
    }

    /// Stage 7, when `KVM_RUN` returned for a signal rather than a guest
    /// exit: the first module that takes it decides (a debugger's Ctrl-C).
    pub fn interrupted(&mut self, vcpu: &mut dyn Vcpu) -> Result<Option<ExitAction>> {
        self.first_answer(|m| m.interrupted(vcpu))
    }

    /// Stage 7, a CPL 3 guest's trap: the first module that takes it
    /// decides ([`Module::trap`]).
    pub fn trap(
        &mut self,
        vector: u8,
        vcpu: &mut dyn Vcpu,
        ram: &GuestRam,
    ) -> Result<Option<TrapDecision>> {
        self.first_answer(|m| m.trap(vector, vcpu, ram))
    }

    /// Stage 7, after a guest's hypercall while a debugger drives the
    /// vCPU ([`Module::after_hypercall`]).
    pub fn after_hypercall(
        &mut self,
        vcpu: &mut dyn Vcpu,
        ram: &GuestRam,
    ) -> Result<Option<ExitAction>> {
        self.first_answer(|m| m.after_hypercall(vcpu, ram))
    }

    /// Asks each module in turn; the first answer decides.
    fn first_answer<T>(
        &mut self,
        mut ask: impl FnMut(&mut dyn Module) -> Result<Option<T>>,
    ) -> Result<Option<T>> {
        for module in &mut self.modules {
            if let Some(answer) = ask(&mut **module)? {
                return Ok(Some(answer));
            }
        }
        Ok(None)
    }

    /// Stage 8, when the guest itself ended the run: every module's
    /// [`Module::guest_ended`], in order, with the stopped vCPU.
    pub fn guest_ended(&mut self, ending: Ending, vcpu: &mut dyn Vcpu, ram: &GuestRam) {
        for module in &mut self.modules {
            module.guest_ended(ending, vcpu, ram);
        }
    }

    /// Stage 8: every module's halt hook, in reverse order of set-up.
    pub fn halt(&mut self, ending: Ending) {
        for module in self.modules.iter_mut().rev() {
            module.halt(ending);
        }
    }

    /// Every module's counters, in module order.
    pub fn counters(&self) -> Vec<(&'static str, Counter)> {
        let mut out = Vec::new();
        for module in &self.modules {
            module.counters(&mut out);
        }
        out
    }

    /// Adds every module's rules to the vCPU thread's allow-list.
    pub fn vcpu_rules(&self, vcpu: &mut Allowlist) {
        for module in &self.modules {
            module.vcpu_rules(vcpu);
        }
    }

    /// Whether a module drives the vCPU's debug state (`--gdb`): the vCPU
    /// thread may then also set registers and KVM's guest debug controls.
    pub fn vcpu_debug(&self) -> bool {
        self.modules.iter().any(|m| m.vcpu_debug())
    }

    /// The allow-lists of every thread the modules started.
    pub fn thread_rules(&self) -> Vec<Allowlist> {
        self.modules.iter().flat_map(|m| m.thread_rules()).collect()
    }
}

/// The guest's memory for a request of `requested` bytes, as upstream sizes
/// it (§3.1): rounded down to 2 MiB, at least 2 MiB; true when that changed
/// the request. A size above the maximum is the caller's to refuse, after
/// the adjustment is reported (upstream reports both).
pub fn size_guest_memory(requested: u64) -> (u64, bool) {
    let size = (requested & !(MEM_GRANULE - 1)).max(MEM_GRANULE);
    (size, size != requested)
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;

    use hvt_abi::layout::MAX_MEM_SIZE;

    use super::*;

    /// A module that records the stages it sees.
    struct Probe {
        name: &'static str,
        guest: Option<u64>,
        reserve: u64,
        syscalls: &'static [libc::c_long],
        log: Rc<RefCell<Vec<String>>>,
    }

    impl Probe {
        fn boxed(name: &'static str, log: &Rc<RefCell<Vec<String>>>) -> Box<Probe> {
            Box::new(Probe {
                name,
                guest: None,
                reserve: 0,
                syscalls: &[],
                log: log.clone(),
            })
        }
    }

    impl Module for Probe {
        fn name(&self) -> &'static str {
            self.name
        }
        fn parse_option(&mut self, option: &str, _: &mut Manifest) -> Result<bool> {
            let mine = option.strip_prefix("--") == Some(self.name);
            if mine {
                self.log
                    .borrow_mut()
                    .push(format!("{} took {option}", self.name));
            }
            Ok(mine)
        }
        fn guest_memory(&self) -> Option<u64> {
            self.guest
        }
        fn reserved_memory(&self, _: &Manifest) -> u64 {
            self.reserve
        }
        fn halt(&mut self, ending: Ending) {
            self.log
                .borrow_mut()
                .push(format!("{} halt {ending:?}", self.name));
        }
        fn vcpu_rules(&self, vcpu: &mut Allowlist) {
            for &call in self.syscalls {
                vcpu.allow(call);
            }
        }
    }

    fn manifest() -> Manifest {
        Manifest {
            entries: vec![hvt_abi::manifest::MftEntry::RESERVED_FIRST],
        }
    }

    #[test]
    fn each_option_goes_to_the_first_module_that_takes_it() {
        let log = Rc::new(RefCell::new(Vec::new()));
        let mut set = ModuleSet::new(vec![Probe::boxed("a", &log), Probe::boxed("b", &log)]);
        let options = ["--b", "--a"];
        set.parse_options(&options, &mut manifest()).unwrap();
        assert_eq!(*log.borrow(), ["b took --b", "a took --a"]);
        let err = set
            .parse_options(&["--c", "--b"], &mut manifest())
            .unwrap_err();
        assert_eq!(err.to_string(), "Invalid option: `--c'");
        assert!(err.shows_usage());
        assert_eq!(log.borrow().len(), 2, "nothing after the first bad option");
    }

    #[test]
    fn guest_memory_is_sized_like_upstream() {
        assert_eq!(size_guest_memory(512 << 20), (512 << 20, false));
        assert_eq!(size_guest_memory(3 << 20), (2 << 20, true));
        assert_eq!(size_guest_memory(1 << 20), (2 << 20, true));
        assert_eq!(size_guest_memory(MAX_MEM_SIZE), (MAX_MEM_SIZE, false));
        // A wrapped negative request stays huge: the caller refuses it.
        assert_eq!(size_guest_memory(u64::MAX << 20), (u64::MAX << 21, true));
    }

    #[test]
    fn reservations_are_carved_from_the_top_while_the_guest_keeps_2_mib() {
        let log = Rc::new(RefCell::new(Vec::new()));
        let mut core = Probe::boxed("core", &log);
        core.guest = Some(64 << 20);
        let mut first = Probe::boxed("first", &log);
        first.reserve = 1; // rounded up to 2 MiB
        let mut second = Probe::boxed("second", &log);
        second.reserve = 4 << 20;
        let mut set = ModuleSet::new(vec![core, first, second]);
        let ram = set.allocate_memory(&manifest()).unwrap();
        assert_eq!(ram.alloc_size(), 70 << 20);
        assert_eq!(ram.visible_size(), 64 << 20);
        assert_eq!(
            set.reservations,
            [
                None,
                Some(Reservation {
                    gpa: 68 << 20,
                    size: 2 << 20
                }),
                Some(Reservation {
                    gpa: 64 << 20,
                    size: 4 << 20
                }),
            ]
        );
    }

    #[test]
    fn at_4_gib_reservations_come_out_of_the_guest_and_may_not_fit() {
        let log = Rc::new(RefCell::new(Vec::new()));
        let mut core = Probe::boxed("core", &log);
        core.guest = Some(MAX_MEM_SIZE);
        let mut ring = Probe::boxed("ring", &log);
        ring.reserve = 2 << 20;
        let mut set = ModuleSet::new(vec![core, ring]);
        let ram = set.allocate_memory(&manifest()).unwrap();
        assert_eq!(ram.alloc_size(), MAX_MEM_SIZE);
        assert_eq!(ram.visible_size(), MAX_MEM_SIZE - (2 << 20));

        let mut small = Probe::boxed("core", &log);
        small.guest = Some(2 << 20);
        let mut huge = Probe::boxed("huge", &log);
        huge.reserve = MAX_MEM_SIZE;
        let mut set = ModuleSet::new(vec![small, huge]);
        let ram = set.allocate_memory(&manifest()).unwrap();
        assert_eq!(set.reservations, [None, None]);
        assert_eq!(ram.visible_size(), 2 << 20);
        assert_eq!(ram.alloc_size(), 2 << 20);
    }

    #[test]
    fn halt_hooks_run_in_reverse_and_rules_are_merged() {
        let log = Rc::new(RefCell::new(Vec::new()));
        let mut a = Probe::boxed("a", &log);
        a.syscalls = &[libc::SYS_write, libc::SYS_read];
        let mut b = Probe::boxed("b", &log);
        b.syscalls = &[libc::SYS_read, libc::SYS_futex];
        let mut set = ModuleSet::new(vec![a, b]);
        set.halt(Ending::Exit(3));
        assert_eq!(*log.borrow(), ["b halt Exit(3)", "a halt Exit(3)"]);
        let mut vcpu = Allowlist::new("vcpu");
        set.vcpu_rules(&mut vcpu);
        let mut expected = vec![
            libc::SYS_read,
            libc::SYS_write,
            libc::SYS_futex,
            libc::SYS_exit_group,
        ];
        expected.sort_unstable();
        assert_eq!(vcpu.syscalls(), expected);
        assert!(set.usage().contains("Compiled-in modules: a b \n"));
    }
}
