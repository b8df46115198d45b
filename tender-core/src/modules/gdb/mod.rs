//! `--gdb`: a GDB remote-protocol stub (the `gdbstub` crate) on the vCPU
//! thread, for guests at CPL 0 and at CPL 3 (docs/debugging.md).
//!
//! Before the guest's first instruction the tender listens on
//! `--gdb-addr` (127.0.0.1 unless told otherwise) port `--gdb-port`
//! (1234), waits for one connection and serves gdb until it continues or
//! steps. The guest then runs under KVM's guest debug controls: software
//! breakpoints (`int3` patched in by the stub, `KVM_GUESTDBG_USE_SW_BP`),
//! single-step (`KVM_GUESTDBG_SINGLESTEP`) and up to four hardware
//! breakpoints (DR0-DR3, DR7). Every debug exit is a stop reported to
//! gdb; the guest's end is reported as its exit status.
//!
//! Watchpoints (`watch.rs`): the host delivers no data breakpoint, so
//! while gdb has a write watchpoint set the stub carries out its continue
//! as single steps (the same ones as `stepi`, at either level), compares
//! the watched bytes after each and reports a change as a hardware
//! watchpoint's hit; breakpoints, the guest's end and Ctrl-C stop it as
//! they stop a continue.
//!
//! Registers are read once at a stop and written back, if gdb changed
//! them, before the guest resumes. Memory is read and written through
//! [`GuestRam::debugger_access`]: anywhere below the guest's visible size,
//! including the text the host maps read-only.
//!
//! CPL 3 guests (our note): KVM's debug controls do not reach them on this
//! host, so the stub works through their trap path (§12.4) instead:
//! breakpoints are `int3` patched into the text, a hit is a `#BP` trap
//! ([`Module::trap`]) reported at the `int3`'s address; a step is RFLAGS.TF
//! in the trap frame (or in KVM's registers at a stop that is not a trap),
//! ended by the `#DB` or, since the host drops the `#DB` after an `out`, by
//! the hypercall's exit ([`Module::after_hypercall`]). Continuing from a
//! breakpoint's address puts the guest's byte back, steps once and
//! re-inserts the `int3`. No hardware breakpoints (the host loads no
//! debug registers for user mode): gdb is told there are none.
//! Any other trap (a fault) is reported to gdb as a signal, and the guest
//! ends as without `--gdb` when gdb lets it go on.
//!
//! Sandbox ([`Gdb::vcpu_rules`], [`Gdb::vcpu_debug`]): the connection is
//! accepted before the filters exist; afterwards the vCPU thread may
//! `recvfrom`/`sendto` on the connection, `mprotect` (patching read-only
//! text), and set registers and KVM's debug controls.

mod arch;
mod conn;
mod target;
mod watch;

use std::net::{IpAddr, SocketAddr, TcpListener};

use gdbstub::common::Signal;
use gdbstub::conn::Connection;
use gdbstub::stub::state_machine::GdbStubStateMachine;
use gdbstub::stub::{DisconnectReason, GdbStub, SingleThreadStopReason};

use self::conn::{signal_on_input, GdbConnection, Waiting};
use self::target::{Resume, Stub};
use crate::error::{Error, Result};
use crate::manifest::Manifest;
use crate::memory::GuestRam;
use crate::module::{Ending, Module, SetupContext};
use crate::sandbox::Allowlist;
use crate::stats::Counter;
use crate::vm::{
    DebugControl, ExitAction, Registers, SpecialRegisters, TrapDecision, TrapResume, Vcpu, VmExit,
    RFLAGS_TF,
};

/// The `int3` instruction.
const INT3: u8 = 0xcc;
/// `#DB` and `#BP`, as KVM reports them in a debug exit.
const DB_VECTOR: u32 = 1;
const BP_VECTOR: u32 = 3;
/// DR6.BS: the #DB is a single step's.
const DR6_BS: u64 = 1 << 14;

/// The `--gdb` module.
pub struct Gdb {
    enabled: bool,
    addr: IpAddr,
    port: u16,
    target: Option<Stub>,
    machine: Option<GdbStubStateMachine<'static, Stub, GdbConnection>>,
    /// The connection's descriptor, for the filter.
    conn_fd: Option<i32>,
    /// The guest runs at CPL 3: the trap path instead of KVM's debug controls.
    cpl3: bool,
    /// CPL 3: the breakpoint whose byte is out for a step over it.
    stepping_over: Option<u64>,
    /// Steps the stub made for its write watchpoints (`TENDER_STATS=1`).
    watch_steps: Counter,
}

impl Default for Gdb {
    fn default() -> Self {
        Gdb {
            enabled: false,
            addr: IpAddr::from([127, 0, 0, 1]),
            port: 1234,
            target: None,
            machine: None,
            conn_fd: None,
            cpl3: false,
            stepping_over: None,
            watch_steps: Counter::default(),
        }
    }
}

fn gdb_error(e: impl std::fmt::Display) -> Error {
    Error::Other(format!("gdb: {e}"))
}
impl Gdb {
    pub fn new() -> Gdb {
        Gdb::default()
    }

    /// Serves gdb until it resumes the guest, then sets KVM's debug
    /// controls and the registers it changed. `Ok(None)`: resume;
    /// `Ok(Some(code))`: gdb killed the guest.
    fn serve_and_resume(&mut self, vcpu: &mut dyn Vcpu) -> Result<Option<i32>> {
        let regs = vcpu.registers()?;
        if let Some(code) = self.serve_at_stop(vcpu, regs)? {
            return Ok(Some(code));
        }
        if self.cpl3 {
            self.resume_cpl3_from_kvm(vcpu)?;
            return Ok(None);
        }
        let watching = self.stepping_for_watches();
        let Some(target) = self.target.as_mut() else {
            return Ok(None);
        };
        if target.regs_dirty {
            vcpu.set_registers(&target.regs)?;
        }
        target.write_back_state(vcpu)?;
        if self.machine.is_none() {
            // Detached: the debug controls are off already.
            return Ok(None);
        }
        let mut control = DebugControl {
            enabled: true,
            single_step: target.resume == Some(Resume::Step) || watching,
            software_breakpoints: true,
            hardware_breakpoints: target.hardware,
            ..DebugControl::default()
        };
        for (slot, watch) in control.watchpoints.iter_mut().zip(&target.watch) {
            *slot = watch.map(|(w, _)| w);
        }
        vcpu.set_debug(&control)?;
        Ok(None)
    }

    /// Serves gdb at a stop where the guest's registers are `regs`, until
    /// it resumes the guest (or detaches: `Ok(None)` too), or kills it.
    fn serve_at_stop(&mut self, vcpu: &mut dyn Vcpu, regs: Registers) -> Result<Option<i32>> {
        let (Some(target), Some(mut machine)) = (self.target.as_mut(), self.machine.take()) else {
            return Ok(None);
        };
        target.regs = regs;
        if self.cpl3 {
            // The stub's TF is not the guest's.
            target.regs.rflags &= !RFLAGS_TF;
        }
        target.sregs = vcpu.special_registers()?;
        // Not every vCPU gives its FPU (gdb then reads zeros).
        target.fpu = vcpu.fpu().ok();
        target.regs_dirty = false;
        target.sregs_dirty = false;
        target.fpu_dirty = false;
        target.resume = None;
        loop {
            machine = match machine {
                GdbStubStateMachine::Idle(mut inner) => match inner.borrow_conn().next_byte() {
                    Ok(Some(byte)) => inner.incoming_data(target, byte).map_err(gdb_error)?,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {
                        GdbStubStateMachine::Idle(inner)
                    }
                    _ => return self.detached(vcpu),
                },
                GdbStubStateMachine::Running(mut inner) => {
                    // The signals of the packets gdb sent while the guest
                    // stood are no Ctrl-C. What it sent after its resume
                    // packet (a Ctrl-C) is fed now: it may have come with
                    // the packet, or before this cleared its signal.
                    crate::interrupt::take();
                    if let Some(byte) = inner.borrow_conn().pending_byte() {
                        machine = inner.incoming_data(target, byte).map_err(gdb_error)?;
                        continue;
                    }
                    // A send that fails shows as a closed connection at
                    // the next stop.
                    let _ = inner.borrow_conn().flush();
                    self.machine = Some(GdbStubStateMachine::Running(inner));
                    return Ok(None);
                }
                GdbStubStateMachine::CtrlCInterrupt(inner) => inner
                    .interrupt_handled(target, Some(SingleThreadStopReason::Signal(Signal::SIGINT)))
                    .map_err(gdb_error)?,
                GdbStubStateMachine::Disconnected(inner) => {
                    if inner.get_reason() == DisconnectReason::Kill {
                        crate::diag::warn("gdb: guest killed by the debugger");
                        return Ok(Some(1));
                    }
                    return self.detached(vcpu);
                }
            };
        }
    }

    /// CPL 3, as gdb resumes the guest: whether TF goes on (a step, or a
    /// step over the breakpoint at the guest's RIP, whose byte goes back
    /// in until the step ends).
    fn cpl3_single_step(&mut self) -> bool {
        let watching = self.stepping_for_watches();
        let Some(target) = self.target.as_mut() else {
            return false;
        };
        let step = target.resume == Some(Resume::Step) || watching;
        if self.machine.is_none() {
            return false;
        }
        let rip = target.regs.rip;
        if let Some(&(addr, byte)) = target.software.iter().find(|(a, _)| *a == rip) {
            if target.ram.debugger_access(addr, &mut [byte], true).is_ok() {
                self.stepping_over = Some(addr);
                return true;
            }
        }
        step
    }

    /// CPL 3: the `int3` of the breakpoint stepped over goes back in (if
    /// gdb still wants it).
    fn reinsert(&mut self) {
        let (Some(addr), Some(target)) = (self.stepping_over.take(), self.target.as_ref()) else {
            return;
        };
        if target.software.iter().any(|(a, _)| *a == addr) {
            let _ = target.ram.debugger_access(addr, &mut [INT3], true);
        }
    }

    /// CPL 3, resuming from a stop that is not a trap (the first stop,
    /// Ctrl-C, a step ended by a hypercall): KVM's registers are the
    /// guest's; TF goes there.
    fn resume_cpl3_from_kvm(&mut self, vcpu: &mut dyn Vcpu) -> Result<()> {
        let step = self.cpl3_single_step();
        let Some(target) = self.target.as_mut() else {
            return Ok(());
        };
        let mut regs = target.regs;
        if step {
            regs.rflags |= RFLAGS_TF;
        }
        if target.regs_dirty || vcpu.registers()?.rflags != regs.rflags {
            vcpu.set_registers(&regs)?;
        }
        target.write_back_state(vcpu)?;
        Ok(())
    }

    /// Reports `reason` to gdb (the guest is running as gdb sees it) and
    /// serves it with the guest's registers `regs`.
    fn stop(
        &mut self,
        reason: SingleThreadStopReason<u64>,
        vcpu: &mut dyn Vcpu,
        regs: Registers,
    ) -> Result<Option<i32>> {
        if !self.report(reason)? {
            return Ok(None);
        }
        self.serve_at_stop(vcpu, regs)
    }

    /// Tells gdb the guest stopped for `reason`; false when gdb is not
    /// waiting for a stop (no session, or detached).
    fn report(&mut self, reason: SingleThreadStopReason<u64>) -> Result<bool> {
        let Some(GdbStubStateMachine::Running(inner)) = self.machine.take() else {
            return Ok(false);
        };
        let target = self.target.as_mut().expect("a machine has a target");
        self.machine = Some(inner.report_stop(target, reason).map_err(gdb_error)?);
        Ok(true)
    }

    /// gdb went away (detach or a closed connection): the guest runs on
    /// without the debugger.
    fn detached(&mut self, vcpu: &mut dyn Vcpu) -> Result<Option<i32>> {
        // Dropping the machine never closes the connection (`GdbConnection`).
        self.machine = None;
        if let Some(target) = self.target.as_mut() {
            for (addr, byte) in std::mem::take(&mut target.software) {
                let _ = target.ram.debugger_access(addr, &mut [byte], true);
            }
            target.write_watches.clear();
            target.watch = [None; 4];
            if target.regs_dirty && !self.cpl3 {
                vcpu.set_registers(&target.regs)?;
            }
        }
        if !self.cpl3 {
            vcpu.set_debug(&DebugControl::default())?;
        }
        Ok(None)
    }

    /// Feeds gdb what it sent while the guest ran (its Ctrl-C is one
    /// byte, 0x03). Whether that was a Ctrl-C: then the stop is reported
    /// as `stop` and gdb is to be served, or, with `None`, the machine runs
    /// again for the caller to report the stop its own way.
    /// gdb disconnecting while the guest runs (a `D` or `k` packet that
    /// came without a Ctrl-C first, which gdb itself never sends) detaches:
    /// the guest runs on without the debugger.
    fn take_ctrl_c(
        &mut self,
        stop: Option<SingleThreadStopReason<u64>>,
        vcpu: &mut dyn Vcpu,
    ) -> Result<bool> {
        let Some(GdbStubStateMachine::Running(mut running)) = self.machine.take() else {
            return Ok(false);
        };
        if running.borrow_conn().waiting() == Waiting::Closed {
            // gdb went away while the guest ran (its end of the
            // connection raises SIGIO too).
            self.machine = Some(GdbStubStateMachine::Running(running));
            self.detached(vcpu)?;
            return Ok(false);
        }
        let target = self.target.as_mut().expect("a machine has a target");
        let machine = loop {
            let Some(byte) = running.borrow_conn().pending_byte() else {
                break GdbStubStateMachine::Running(running);
            };
            match running.incoming_data(target, byte).map_err(gdb_error)? {
                GdbStubStateMachine::Running(next) => running = next,
                other => break other,
            }
        };
        let interrupted = match machine {
            GdbStubStateMachine::CtrlCInterrupt(interrupted) => interrupted,
            GdbStubStateMachine::Disconnected(_) => {
                self.detached(vcpu)?;
                return Ok(false);
            }
            running => {
                self.machine = Some(running);
                return Ok(false);
            }
        };
        self.machine = Some(
            interrupted
                .interrupt_handled(target, stop)
                .map_err(gdb_error)?,
        );
        Ok(true)
    }

    /// CPL 3: how the guest goes on from a trap where gdb was served:
    /// the registers gdb changed into the frame and KVM, TF as gdb's
    /// resume needs it; `moved`: the stub reported another RIP than the
    /// frame's (a breakpoint's, before its `int3`).
    fn resume_from_trap(&mut self, vcpu: &mut dyn Vcpu, moved: bool) -> Result<TrapDecision> {
        let step = self.cpl3_single_step();
        let Some(target) = self.target.as_ref() else {
            return Ok(TrapDecision::Resume(TrapResume::default()));
        };
        if target.regs_dirty {
            // Into the frame (RIP, RSP, RFLAGS, RDX) and KVM (the rest).
            vcpu.set_registers(&target.regs)?;
        }
        // Special registers: KVM's, but for CS and SS (the trampoline's
        // until `iretq`).
        target.write_back_state(vcpu)?;
        let rip = (target.regs_dirty || moved).then_some(target.regs.rip);
        Ok(TrapDecision::Resume(TrapResume {
            rip,
            single_step: Some(step),
        }))
    }

    /// CPL 3: a Ctrl-C taken at a trap that is no stop of its own (the
    /// step past a breakpoint): gdb is served with the guest's registers
    /// at the trap, then the guest goes on as gdb says.
    fn resume_after_ctrl_c_at_trap(&mut self, vcpu: &mut dyn Vcpu) -> Result<TrapDecision> {
        let regs = vcpu.registers()?;
        if let Some(code) = self.serve_at_stop(vcpu, regs)? {
            return Ok(TrapDecision::Exit(code));
        }
        self.resume_from_trap(vcpu, false)
    }

    /// The stop reason of a debug exit, and the guest's RIP at the stop.
    fn stop_reason(
        &mut self,
        exception: u32,
        pc: u64,
        dr6: u64,
        vcpu: &mut dyn Vcpu,
    ) -> Result<Option<SingleThreadStopReason<u64>>> {
        let Some(target) = self.target.as_ref() else {
            return Ok(None);
        };
        if exception == BP_VECTOR {
            let mut regs = vcpu.registers()?;
            // KVM reports the int3's own address; a trap reports the next.
            let at = [regs.rip, pc, regs.rip.wrapping_sub(1)]
                .into_iter()
                .find(|a| target.software.iter().any(|(b, _)| b == a));
            let Some(at) = at else {
                // An int3 of the guest's own: a SIGTRAP after it.
                return Ok(Some(SingleThreadStopReason::Signal(Signal::SIGTRAP)));
            };
            if regs.rip != at {
                regs.rip = at;
                vcpu.set_registers(&regs)?;
            }
            return Ok(Some(SingleThreadStopReason::SwBreak(())));
        }
        if exception != DB_VECTOR {
            return Ok(None);
        }
        for index in 0..4 {
            if dr6 & (1 << index) == 0 {
                continue;
            }
            if target.hardware[index].is_some() {
                return Ok(Some(SingleThreadStopReason::HwBreak(())));
            }
            if let Some((w, kind)) = target.watch[index] {
                return Ok(Some(SingleThreadStopReason::Watch {
                    tid: (),
                    kind,
                    addr: w.address,
                }));
            }
        }
        if dr6 & DR6_BS != 0 || target.resume == Some(Resume::Step) {
            return Ok(Some(SingleThreadStopReason::DoneStep));
        }
        Ok(Some(SingleThreadStopReason::Signal(Signal::SIGTRAP)))
    }
}

impl Module for Gdb {
    fn name(&self) -> &'static str {
        "gdb"
    }

    fn usage(&self) -> &'static str {
        "    --gdb (optional flag for running in a gdb debug session)\n  \
         [ --gdb-port=1234 ] (port to use)\n  \
         [ --gdb-addr=127.0.0.1 ] (address to listen on; unsafe on other interfaces)\n"
    }

    fn parse_option(&mut self, option: &str, _manifest: &mut Manifest) -> Result<bool> {
        let invalid = |why: &str| super::invalid_option(option, Some(why.into()));
        if option == "--gdb" {
            self.enabled = true;
        } else if let Some(port) = option.strip_prefix("--gdb-port=") {
            self.port = port
                .parse()
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(|| invalid("not a TCP port"))?;
        } else if let Some(addr) = option.strip_prefix("--gdb-addr=") {
            self.addr = addr.parse().map_err(|_| invalid("not an IP address"))?;
        } else {
            return Ok(false);
        }
        Ok(true)
    }

    fn initial_vcpu(&mut self, vcpu: &mut dyn Vcpu, _ram: &GuestRam) -> Result<()> {
        if self.enabled {
            self.cpl3 = vcpu.special_registers()?.cs.dpl != 0;
        }
        Ok(())
    }

    fn setup(&mut self, ctx: &mut SetupContext<'_>) -> Result<()> {
        if self.enabled {
            self.target = Some(Stub {
                ram: ctx.ram.clone(),
                regs: Registers::default(),
                sregs: SpecialRegisters::default(),
                regs_dirty: false,
                sregs_dirty: false,
                fpu: None,
                fpu_dirty: false,
                resume: None,
                software: Vec::new(),
                hardware: [None; 4],
                watch: [None; 4],
                debug_register_watch: !self.cpl3
                    && std::env::var_os("TENDER_GDB_DR_WATCH").is_some(),
                write_watches: Default::default(),
                hardware_first: !self.cpl3 && std::env::var_os("TENDER_GDB_INT3").is_none(),
                cpl3: self.cpl3,
            });
        }
        Ok(())
    }

    fn before_first_run(&mut self, vcpu: &mut dyn Vcpu) -> Result<()> {
        if self.target.is_none() {
            return Ok(());
        }
        let where_ = SocketAddr::new(self.addr, self.port);
        let listener =
            TcpListener::bind(where_).map_err(|e| gdb_error(format!("{where_}: {e}")))?;
        crate::diag::warn(format!("gdb: waiting for a connection on {where_}"));
        let (conn, peer) = listener.accept().map_err(gdb_error)?;
        drop(listener);
        crate::diag::warn(format!("gdb: connected from {peer}"));
        let mut conn = GdbConnection::new(conn);
        self.conn_fd = Some(conn.fd());
        // Before the sandbox: gdbstub's session start (TCP_NODELAY).
        conn.on_session_start().map_err(gdb_error)?;
        signal_on_input(&conn)?;
        let target = self.target.as_mut().expect("checked above");
        let machine = GdbStub::new(conn)
            .run_state_machine(target)
            .map_err(gdb_error)?;
        self.machine = Some(machine);
        match self.serve_and_resume(vcpu)? {
            None => Ok(()),
            Some(_) => Err(Error::Other("gdb: guest killed before it ran".into())),
        }
    }

    fn vm_exit(
        &mut self,
        exit: &VmExit,
        vcpu: &mut dyn Vcpu,
        _ram: &GuestRam,
    ) -> Result<Option<ExitAction>> {
        let VmExit::Debug {
            exception, pc, dr6, ..
        } = *exit
        else {
            return Ok(None);
        };
        if self.machine.is_none() {
            return Ok(None);
        }
        let Some(reason) = self.stop_reason(exception, pc, dr6, vcpu)? else {
            return Ok(None);
        };
        let Some(reason) = self.after_watched_step(reason, vcpu)? else {
            return Ok(Some(ExitAction::Resume));
        };
        if !self.report(reason)? {
            return Ok(None);
        }
        Ok(Some(match self.serve_and_resume(vcpu)? {
            None => ExitAction::Resume,
            Some(code) => ExitAction::Exit(code),
        }))
    }

    fn interrupted(&mut self, vcpu: &mut dyn Vcpu) -> Result<Option<ExitAction>> {
        // KVM_RUN saw the signal, or the request it left: what gdb sent is
        // read now.
        let requested = crate::interrupt::take();
        if self.machine.is_none() {
            return Ok(None);
        }
        if self.cpl3 && vcpu.special_registers()?.cs.dpl == 0 {
            // Inside the trap trampoline, between a trap's exit and its
            // `iretq`: no register is the guest's yet. The next exit (a
            // trap, a hypercall) takes the request.
            if requested {
                crate::interrupt::defer();
            }
            return Ok(None);
        }
        if !self.take_ctrl_c(Some(SingleThreadStopReason::Signal(Signal::SIGINT)), vcpu)? {
            return Ok(None);
        }
        Ok(Some(match self.serve_and_resume(vcpu)? {
            None => ExitAction::Resume,
            Some(code) => ExitAction::Exit(code),
        }))
    }

    fn trap(
        &mut self,
        vector: u8,
        vcpu: &mut dyn Vcpu,
        _ram: &GuestRam,
    ) -> Result<Option<TrapDecision>> {
        if !self.cpl3 || self.machine.is_none() {
            return Ok(None);
        }
        let debug = u32::from(vector) == DB_VECTOR;
        let mut watched = None;
        if debug && self.stepping_for_watches() {
            // A step of a watched continue; the breakpoint it stepped
            // over (if any) goes back in.
            self.reinsert();
            match self.after_watched_step(SingleThreadStopReason::DoneStep, vcpu)? {
                None => {
                    return Ok(Some(TrapDecision::Resume(TrapResume {
                        rip: None,
                        single_step: Some(self.stepping_for_watches()),
                    })))
                }
                Some(reason) => watched = Some(reason),
            }
        }
        if debug && self.stepping_over.is_some() {
            self.reinsert();
            let target = self.target.as_ref().expect("a machine has a target");
            if target.resume != Some(Resume::Step) {
                // Past the breakpoint: on with the continue, unless a
                // Ctrl-C came while the guest was in the trampoline.
                if crate::interrupt::take()
                    && self
                        .take_ctrl_c(Some(SingleThreadStopReason::Signal(Signal::SIGINT)), vcpu)?
                {
                    return Ok(Some(self.resume_after_ctrl_c_at_trap(vcpu)?));
                }
                return Ok(Some(TrapDecision::Resume(TrapResume {
                    rip: None,
                    single_step: Some(false),
                })));
            }
        }
        let target = self.target.as_ref().expect("a machine has a target");
        let mut regs = vcpu.registers()?;
        let reason = match u32::from(vector) {
            _ if let Some(reason) = watched => reason,
            BP_VECTOR => {
                // The trap's RIP is after the int3.
                let at = regs.rip.wrapping_sub(1);
                if target.software.iter().any(|(a, _)| *a == at) {
                    regs.rip = at;
                    SingleThreadStopReason::SwBreak(())
                } else {
                    SingleThreadStopReason::Signal(Signal::SIGTRAP)
                }
            }
            DB_VECTOR if target.resume == Some(Resume::Step) => SingleThreadStopReason::DoneStep,
            DB_VECTOR => SingleThreadStopReason::Signal(Signal::SIGTRAP),
            0 | 16 | 19 => SingleThreadStopReason::Signal(Signal::SIGFPE),
            6 => SingleThreadStopReason::Signal(Signal::SIGILL),
            17 => SingleThreadStopReason::Signal(Signal::SIGBUS),
            _ => SingleThreadStopReason::Signal(Signal::SIGSEGV),
        };
        let moved = regs.rip != vcpu.registers()?.rip;
        if let Some(code) = self.stop(reason, vcpu, regs)? {
            return Ok(Some(TrapDecision::Exit(code)));
        }
        if !debug && u32::from(vector) != BP_VECTOR {
            // A fault: the guest ends as it would without gdb (gdb sees
            // it terminated).
            return Ok(Some(TrapDecision::End));
        }
        Ok(Some(self.resume_from_trap(vcpu, moved)?))
    }

    fn after_hypercall(
        &mut self,
        vcpu: &mut dyn Vcpu,
        _ram: &GuestRam,
    ) -> Result<Option<ExitAction>> {
        if self.machine.is_none() {
            return Ok(None);
        }
        let signalled = crate::interrupt::take();
        if !signalled && self.stepping_for_watches() {
            // The step's #DB is lost after the `out`, but TF stays on: the
            // watched continue steps on from the next instruction.
            self.reinsert();
            return Ok(Some(ExitAction::Resume));
        }
        let over = self.stepping_over.is_some();
        self.reinsert();
        let step = self.cpl3 && self.target.as_ref().map(|t| t.resume) == Some(Some(Resume::Step));
        if !signalled && !step && !over {
            return Ok(None);
        }
        // A stop here is after the hypercall: KVM finishes its `out` first
        // (RIP past it), without running the guest on.
        if signalled
            && self.take_ctrl_c(Some(SingleThreadStopReason::Signal(Signal::SIGINT)), vcpu)?
        {
            // A Ctrl-C while the tender served the hypercall (a POLL
            // whose wait the signal cut short).
            vcpu.complete_pending_io()?;
            if let Some(code) = self.serve_and_resume(vcpu)? {
                return Ok(Some(ExitAction::Exit(code)));
            }
            return Ok(Some(ExitAction::Resume));
        }
        if !step {
            if over && !self.stepping_for_watches() {
                // CPL 3, past the breakpoint (the step's #DB is lost after
                // the `out`): on with the continue, without TF.
                let mut regs = vcpu.registers()?;
                regs.rflags &= !RFLAGS_TF;
                vcpu.set_registers(&regs)?;
            }
            return Ok(Some(ExitAction::Resume));
        }
        // CPL 3: the step ends after the `out`.
        vcpu.complete_pending_io()?;
        let regs = vcpu.registers()?;
        if let Some(code) = self.stop(SingleThreadStopReason::DoneStep, vcpu, regs)? {
            return Ok(Some(ExitAction::Exit(code)));
        }
        self.resume_cpl3_from_kvm(vcpu)?;
        Ok(Some(ExitAction::Resume))
    }

    fn guest_ended(&mut self, ending: Ending, _vcpu: &mut dyn Vcpu, _ram: &GuestRam) {
        let (Some(target), Some(GdbStubStateMachine::Running(inner))) =
            (self.target.as_mut(), self.machine.take())
        else {
            return;
        };
        let reason = match ending {
            Ending::Exit(code) => SingleThreadStopReason::Exited(code.to_le_bytes()[0]),
            Ending::GuestFault | Ending::Error => {
                SingleThreadStopReason::Terminated(Signal::SIGSEGV)
            }
        };
        // Nothing to do if the report fails: the guest has ended anyway.
        let _ = inner.report_stop(target, reason);
    }

    fn vcpu_debug(&self) -> bool {
        self.enabled
    }

    fn counters(&self, out: &mut Vec<(&'static str, Counter)>) {
        if self.enabled {
            out.push(("gdb_watch_steps", self.watch_steps.clone()));
        }
    }

    fn vcpu_rules(&self, vcpu: &mut Allowlist) {
        let Some(fd) = self.conn_fd else {
            return;
        };
        vcpu.allow_fds(libc::SYS_recvfrom, &[fd])
            .allow_fds(libc::SYS_sendto, &[fd])
            .allow(libc::SYS_mprotect)
            .allow(libc::SYS_rt_sigreturn);
    }
}
