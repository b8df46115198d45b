//! The tender's self-sandbox: a seccomp-BPF allow-list per thread.
//!
//! Once set-up is over, a thread of the tender may make only the system
//! calls its work needs, most with their arguments filtered: `ioctl` only
//! `KVM_RUN` (and the register reads of a fault report) on the vCPU's
//! descriptor, `read`/`write`/`pread64`/... only on the descriptors of the
//! devices it serves. Each module declares the rules of the threads it runs
//! ([`Module::vcpu_rules`](crate::module::Module::vcpu_rules), [`Module::thread_rules`](crate::module::Module::thread_rules)); the tender composes them, and
//! every filter installs `NO_NEW_PRIVS` first.
//!
//! A forbidden call raises SIGSYS, whose handler prints which call was
//! refused on which thread and ends the whole process with exit code 1
//! (never one thread alone: a tender with a dead vCPU thread would hang).
//! `--seccomp=log` lets refused calls through and has the kernel log them,
//! a diagnostic for a C library or kernel that needs a new call.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::os::fd::RawFd;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

use crate::error::{Error, Result};

/// What a filter does with a call outside its allow-list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeccompMode {
    /// Refuse it: SIGSYS, the call reported, the process ends (the default).
    Enforce,
    /// Let it through and have the kernel log it (`--seccomp=log`).
    Log,
    /// Install no filter (`--seccomp=off`: for a tender embedded in a test
    /// process, never for production).
    Off,
}

impl SeccompMode {
    /// The value of `--seccomp=`.
    pub fn parse(value: &str) -> Option<SeccompMode> {
        match value {
            "on" => Some(SeccompMode::Enforce),
            "log" => Some(SeccompMode::Log),
            "off" => Some(SeccompMode::Off),
            _ => None,
        }
    }
}

/// One rule of an allow-list: a call, and the argument values it may have.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Args {
    /// Any arguments.
    Any,
    /// One of these descriptors as the first argument.
    Fd(BTreeSet<RawFd>),
    /// `ioctl(fd, request)` with one of these (fd, request) pairs.
    Ioctl(BTreeSet<(RawFd, u64)>),
    /// One of these values as argument `index`.
    Value { index: u8, values: BTreeSet<u64> },
    /// One of these sets of arguments, every argument of a set as given.
    Exact(BTreeSet<Vec<ArgEq>>),
}

/// One argument of a call allowed only with exact arguments
/// ([`Allowlist::allow_exact`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ArgEq {
    /// Argument `index`, a C `int` (descriptor, flags, mode): its low 32 bits.
    Int(u8, u32),
    /// Argument `index`, a pointer or a 64-bit value: all 64 bits.
    Word(u8, u64),
}

/// The system calls one thread may make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowlist {
    thread: &'static str,
    rules: BTreeMap<libc::c_long, Args>,
}

impl Allowlist {
    /// An allow-list for the thread called `thread` (in reports and docs),
    /// with what every thread needs: the SIGSYS and signal handlers' report
    /// on stderr (and in the `--trace` file), their syncs of block images,
    /// and the exit.
    pub fn new(thread: &'static str) -> Allowlist {
        let mut list = Allowlist {
            thread,
            rules: BTreeMap::new(),
        };
        list.allow_fds(libc::SYS_write, &[libc::STDERR_FILENO]);
        // The SIGINT/SIGTERM handler prints the `--trace=FILE` summary
        // there, on whichever thread the signal lands.
        if let Some(fd) = crate::modules::trace::signal_fd() {
            list.allow_fds(libc::SYS_write, &[fd]);
        }
        list.allow_fds(
            libc::SYS_fdatasync,
            &crate::devices::exit_sync::registered(),
        );
        list.allow(libc::SYS_exit_group);
        list
    }

    /// `syscall` with any arguments.
    pub fn allow(&mut self, syscall: libc::c_long) -> &mut Self {
        self.rules.insert(syscall, Args::Any);
        self
    }

    /// `syscall` with one of `fds` as its first argument (added to any
    /// already allowed).
    pub fn allow_fds(&mut self, syscall: libc::c_long, fds: &[RawFd]) -> &mut Self {
        match self
            .rules
            .entry(syscall)
            .or_insert_with(|| Args::Fd(BTreeSet::new()))
        {
            Args::Fd(set) => set.extend(fds),
            // Already broader, or filtered on another argument: left as it is.
            Args::Any | Args::Ioctl(_) | Args::Value { .. } | Args::Exact(_) => {}
        }
        self
    }

    /// `syscall` with one of `values` as its first argument.
    pub fn allow_values(&mut self, syscall: libc::c_long, values: &[u64]) -> &mut Self {
        self.allow_arg(syscall, 0, values)
    }

    /// `syscall` with one of `values` as its third argument.
    pub fn allow_third_arg(&mut self, syscall: libc::c_long, values: &[u64]) -> &mut Self {
        self.allow_arg(syscall, 2, values)
    }

    fn allow_arg(&mut self, syscall: libc::c_long, index: u8, values: &[u64]) -> &mut Self {
        let entry = self.rules.entry(syscall).or_insert_with(|| Args::Value {
            index,
            values: BTreeSet::new(),
        });
        if let Args::Value {
            index: rule_index,
            values: set,
        } = entry
        {
            // One argument per system call: a second rule on another
            // argument would be merged into the first and check the wrong
            // one.
            assert_eq!(
                *rule_index, index,
                "system call {syscall}: rules on two of its arguments"
            );
            set.extend(values);
        }
        self
    }

    /// `syscall` with exactly the arguments `args` (those not named are
    /// free); a second call adds another allowed set.
    pub fn allow_exact(&mut self, syscall: libc::c_long, args: &[ArgEq]) -> &mut Self {
        if let Args::Exact(sets) = self
            .rules
            .entry(syscall)
            .or_insert_with(|| Args::Exact(BTreeSet::new()))
        {
            sets.insert(args.to_vec());
        }
        self
    }

    /// `ioctl(fd, request)` for each of `requests`.
    pub fn allow_ioctls(&mut self, fd: RawFd, requests: &[u64]) -> &mut Self {
        let entry = self
            .rules
            .entry(libc::SYS_ioctl)
            .or_insert_with(|| Args::Ioctl(BTreeSet::new()));
        if let Args::Ioctl(set) = entry {
            set.extend(requests.iter().map(|&r| (fd, r)));
        }
        self
    }

    /// The calls allowed, by number.
    pub fn syscalls(&self) -> Vec<libc::c_long> {
        self.rules
            .iter()
            .filter(|(_, args)| match args {
                Args::Any => true,
                Args::Fd(fds) => !fds.is_empty(),
                Args::Ioctl(pairs) => !pairs.is_empty(),
                Args::Value { values, .. } => !values.is_empty(),
                Args::Exact(sets) => !sets.is_empty(),
            })
            .map(|(&call, _)| call)
            .collect()
    }

    /// Every descriptor a rule names.
    pub fn fds(&self) -> BTreeSet<RawFd> {
        let mut fds = BTreeSet::new();
        for args in self.rules.values() {
            match args {
                Args::Any | Args::Value { .. } | Args::Exact(_) => {}
                Args::Fd(set) => fds.extend(set),
                Args::Ioctl(pairs) => fds.extend(pairs.iter().map(|&(fd, _)| fd)),
            }
        }
        fds
    }

    /// Compiles the allow-list for the calling architecture.
    pub fn compile(&self, mode: SeccompMode) -> Result<ThreadFilter> {
        let bad = |e: seccompiler::BackendError| Error::Other(format!("seccomp filter: {e}"));
        let arg = |index: u8, len: SeccompCmpArgLen, value: u64| {
            SeccompCondition::new(index, len, SeccompCmpOp::Eq, value).map_err(bad)
        };
        let mut rules = BTreeMap::new();
        for (&syscall, args) in &self.rules {
            // A rule for no descriptor allows nothing (seccompiler reads an
            // empty chain as "any arguments").
            let empty = match args {
                Args::Any => false,
                Args::Fd(fds) => fds.is_empty(),
                Args::Ioctl(pairs) => pairs.is_empty(),
                Args::Value { values, .. } => values.is_empty(),
                Args::Exact(sets) => sets.is_empty(),
            };
            if empty {
                continue;
            }
            let chain = match args {
                Args::Any => Vec::new(),
                Args::Fd(fds) => fds
                    .iter()
                    .map(|&fd| {
                        let fd = u64::from(fd.unsigned_abs());
                        SeccompRule::new(vec![arg(0, SeccompCmpArgLen::Dword, fd)?]).map_err(bad)
                    })
                    .collect::<Result<Vec<_>>>()?,
                Args::Value { index, values } => values
                    .iter()
                    .map(|&value| {
                        SeccompRule::new(vec![arg(*index, SeccompCmpArgLen::Qword, value)?])
                            .map_err(bad)
                    })
                    .collect::<Result<Vec<_>>>()?,
                Args::Exact(sets) => sets
                    .iter()
                    .map(|set| {
                        let conditions = set
                            .iter()
                            .map(|&eq| match eq {
                                ArgEq::Int(index, value) => {
                                    arg(index, SeccompCmpArgLen::Dword, u64::from(value))
                                }
                                ArgEq::Word(index, value) => {
                                    arg(index, SeccompCmpArgLen::Qword, value)
                                }
                            })
                            .collect::<Result<Vec<_>>>()?;
                        SeccompRule::new(conditions).map_err(bad)
                    })
                    .collect::<Result<Vec<_>>>()?,
                Args::Ioctl(pairs) => pairs
                    .iter()
                    .map(|&(fd, request)| {
                        let fd = u64::from(fd.unsigned_abs());
                        SeccompRule::new(vec![
                            arg(0, SeccompCmpArgLen::Dword, fd)?,
                            arg(1, SeccompCmpArgLen::Dword, request)?,
                        ])
                        .map_err(bad)
                    })
                    .collect::<Result<Vec<_>>>()?,
            };
            rules.insert(syscall, chain);
        }
        let mismatch = match mode {
            SeccompMode::Log => SeccompAction::Log,
            SeccompMode::Enforce | SeccompMode::Off => SeccompAction::Trap,
        };
        let filter = SeccompFilter::new(rules, mismatch, SeccompAction::Allow, TargetArch::x86_64)
            .map_err(bad)?;
        let program: BpfProgram = filter.try_into().map_err(bad)?;
        Ok(ThreadFilter {
            thread: self.thread,
            program: (mode != SeccompMode::Off).then_some(program),
        })
    }
}

/// A compiled filter, to be installed by the thread it is for.
pub struct ThreadFilter {
    thread: &'static str,
    program: Option<BpfProgram>,
}

thread_local! {
    /// The name the SIGSYS handler reports for this thread.
    static THREAD: Cell<&'static str> = const { Cell::new("") };
}

impl ThreadFilter {
    /// Installs the filter on the calling thread, for good (no-op when the
    /// sandbox is off). Sets `NO_NEW_PRIVS` first.
    pub fn apply(&self) -> Result<()> {
        let Some(program) = &self.program else {
            return Ok(());
        };
        THREAD.with(|name| name.set(self.thread));
        install_sigsys_handler()?;
        install_panic_report();
        seccompiler::apply_filter(program)
            .map_err(|e| Error::Other(format!("Could not install the seccomp filter: {e}")))
    }
}

/// A debug-build self-test of the filters: with `TENDER_SECCOMP_SELFTEST`
/// set to `thread`, the thread of that name makes a call no filter allows
/// (`getppid`) right after its filter is installed. Release builds have no
/// such path.
#[cfg(debug_assertions)]
pub fn selftest_forbidden_call(thread: &str) {
    if std::env::var_os("TENDER_SECCOMP_SELFTEST").is_some_and(|t| t == thread) {
        // SAFETY: getppid takes no arguments; the filter refuses it.
        unsafe { libc::syscall(libc::SYS_getppid) };
    }
}

/// The system call number in a SIGSYS's siginfo (`si_syscall`).
fn refused_syscall(info: *const libc::siginfo_t) -> i32 {
    // `struct siginfo` for SIGSYS: after si_signo, si_errno, si_code and
    // padding (16 bytes) come `void *call_addr` and `int syscall`.
    const SYSCALL_OFFSET: usize = 16 + std::mem::size_of::<*const u8>();
    if info.is_null() {
        return -1;
    }
    // SAFETY: the kernel passes a full siginfo_t to an SA_SIGINFO handler;
    // the offset lies inside it and is aligned for an i32.
    unsafe { info.cast::<u8>().add(SYSCALL_OFFSET).cast::<i32>().read() }
}

/// Appends the decimal digits of `value` to `buffer` at `at`; returns the
/// new end. Async-signal-safe (no allocation).
fn put_number(buffer: &mut [u8], mut at: usize, value: i64) -> usize {
    let mut digits = [0u8; 20];
    let mut n = value.unsigned_abs();
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10).to_le_bytes()[0];
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if value < 0 && at < buffer.len() {
        buffer[at] = b'-';
        at += 1;
    }
    for &digit in digits[..len].iter().rev() {
        if at < buffer.len() {
            buffer[at] = digit;
            at += 1;
        }
    }
    at
}

extern "C" fn on_sigsys(_: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // Only async-signal-safe work: format into stack buffers, write, sync,
    // _exit (all of which every filter allows).
    let mut number = [0u8; 24];
    let digits = put_number(&mut number, 0, i64::from(refused_syscall(info)));
    let thread = THREAD.try_with(Cell::get).unwrap_or("?");
    crate::diag::write_line(&[
        b"seccomp: thread '",
        thread.as_bytes(),
        b"' made a forbidden system call: ",
        &number[..digits],
    ]);
    crate::devices::exit_sync::sync_all();
    // SAFETY: _exit(2) is async-signal-safe; it ends every thread.
    unsafe { libc::_exit(crate::error::TENDER_ERROR_EXIT) };
}

/// Once confined, a panic must not go through the default report, which
/// asks the system for the thread's id and the working directory: this one
/// writes the message, syncs the images and ends the process at once.
fn install_panic_report() {
    std::panic::set_hook(Box::new(|info| {
        let thread = THREAD.try_with(Cell::get).unwrap_or("?");
        let program = String::from_utf8_lossy(crate::diag::program_name());
        let line = format!("{program}: thread '{thread}' panicked: {info}\n");
        // SAFETY: write(2) of our own buffer to stderr.
        unsafe { libc::write(libc::STDERR_FILENO, line.as_ptr().cast(), line.len()) };
        crate::devices::exit_sync::sync_all();
        // SAFETY: _exit(2) ends every thread, without unwinding or aborting
        // (which would ask for more system calls).
        unsafe { libc::_exit(crate::error::TENDER_ERROR_EXIT) };
    }));
}

/// Installs the process-wide SIGSYS handler (idempotent).
fn install_sigsys_handler() -> Result<()> {
    vmm_sys_util::signal::register_signal_handler(libc::SIGSYS, on_sigsys)
        .map_err(|e| Error::Other(format!("Could not install a signal handler: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_add_up_and_name_their_descriptors() {
        let mut vcpu = Allowlist::new("vcpu");
        vcpu.allow_ioctls(7, &[0xae80])
            .allow_fds(libc::SYS_write, &[1]);
        // A second module's rules for the same calls add to the first's.
        vcpu.allow_fds(libc::SYS_read, &[9])
            .allow_fds(libc::SYS_write, &[9]);
        let mut expected = vec![
            libc::SYS_ioctl,
            libc::SYS_read,
            libc::SYS_write,
            libc::SYS_exit_group,
        ];
        expected.sort_unstable();
        assert_eq!(vcpu.syscalls(), expected);
        assert_eq!(vcpu.fds().into_iter().collect::<Vec<_>>(), [1, 2, 7, 9]);
        assert!(vcpu
            .compile(SeccompMode::Enforce)
            .unwrap()
            .program
            .is_some());
        assert!(vcpu.compile(SeccompMode::Off).unwrap().program.is_none());
        assert_eq!(SeccompMode::parse("log"), Some(SeccompMode::Log));
        assert_eq!(SeccompMode::parse("maybe"), None);
    }

    #[test]
    fn a_rule_for_no_descriptor_allows_nothing() {
        let mut list = Allowlist::new("t");
        list.allow_fds(libc::SYS_read, &[]);
        assert!(!list.syscalls().contains(&libc::SYS_read));
        let filter = list.compile(SeccompMode::Enforce).unwrap();
        let mut with_read = Allowlist::new("t");
        with_read.allow(libc::SYS_read);
        let allowing = with_read.compile(SeccompMode::Enforce).unwrap();
        // The empty rule is left out: the program is the one without read.
        let without = Allowlist::new("t").compile(SeccompMode::Enforce).unwrap();
        assert_eq!(filter.program, without.program);
        assert_ne!(allowing.program, without.program);
    }

    #[test]
    fn numbers_format_without_allocating() {
        let mut buffer = [0u8; 32];
        let end = put_number(&mut buffer, 0, 231);
        assert_eq!(&buffer[..end], b"231");
        let end = put_number(&mut buffer, 0, -1);
        assert_eq!(&buffer[..end], b"-1");
    }

    #[test]
    fn a_filter_in_force_refuses_what_it_does_not_list() {
        // In a thread of its own: the filter stays with the thread.
        let outcome = std::thread::spawn(|| {
            let mut list = Allowlist::new("test");
            list.allow(libc::SYS_futex)
                .allow(libc::SYS_getpid)
                .allow(libc::SYS_exit)
                .allow(libc::SYS_munmap)
                .allow(libc::SYS_madvise)
                .allow(libc::SYS_sigaltstack)
                .allow(libc::SYS_rt_sigprocmask);
            // Log mode: a refused call goes through (and is logged), so the
            // test process survives to tell.
            list.compile(SeccompMode::Log).unwrap().apply().unwrap();
            // SAFETY: getppid has no arguments and cannot fail.
            let parent = unsafe { libc::getppid() };
            let status = std::fs::read_to_string("/proc/thread-self/status").unwrap_or_default();
            (parent, status)
        })
        .join()
        .unwrap();
        assert!(outcome.0 > 0);
        assert!(outcome.1.contains("Seccomp:\t2"), "{}", outcome.1);
        assert!(outcome.1.contains("NoNewPrivs:\t1"), "{}", outcome.1);
    }
}
