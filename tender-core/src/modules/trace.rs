//! `--trace[=FILE]`: one line per hypercall and per other VM exit the
//! tender serves, strace-like, with the arguments decoded from guest
//! memory, the result and the time taken; at the end (HALT, a fault, an
//! error, SIGINT/SIGTERM) a summary of counts and time per call.
//!
//! The module installs a [`crate::hypercall::Observer`] on the hypercall
//! table; without `--trace` there is none, and dispatch pays one branch.
//! Arguments are read with the same checked accessors the handlers use
//! (`GuestRam::read_arg`): a struct the guest placed out of bounds is
//! printed as invalid, never dereferenced.
//!
//! The lines are written from the vCPU thread, one `write` each, so a trace
//! survives a crash of the tender up to its last line. The summary is built
//! without allocation (a signal handler prints it).

use std::fmt::Write as _;
use std::fs::File;
use std::io::Write as _;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use hvt_abi::hypercall::{name, nr, result, BlockIo, Halt, NetIo, Poll, Puts, Walltime};

use crate::error::{os_error_text, Error, Result};
use crate::halt;
use crate::hypercall::{Action, Observer};
use crate::manifest::Manifest;
use crate::memory::GuestRam;
use crate::module::{Ending, Module, SetupContext};
use crate::sandbox::Allowlist;
use crate::stats::decimal;
use crate::vm::{ExitAction, VmExit};

/// Where the trace goes.
enum Sink {
    Stderr,
    File(File),
}

impl Sink {
    fn fd(&self) -> RawFd {
        match self {
            Sink::Stderr => libc::STDERR_FILENO,
            Sink::File(file) => file.as_raw_fd(),
        }
    }

    fn write(&self, bytes: &[u8]) {
        // A trace that cannot be written (a full disk) does not stop the
        // guest: the trace is a diagnostic.
        let _ = match self {
            Sink::Stderr => std::io::stderr().write_all(bytes),
            Sink::File(file) => {
                let mut file: &File = file;
                file.write_all(bytes)
            }
        };
    }
}

/// The kinds of VM exit other than hypercalls, as the summary names them.
const EXIT_KINDS: [&str; 6] = [
    "exit io_out",
    "exit io_in",
    "exit mmio",
    "exit debug",
    "exit hlt",
    "exit shutdown",
];

fn exit_kind(exit: &VmExit) -> usize {
    match exit {
        VmExit::IoOut { .. } => 0,
        VmExit::IoIn { .. } => 1,
        VmExit::Mmio { .. } => 2,
        VmExit::Debug { .. } => 3,
        VmExit::Hlt => 4,
        VmExit::Shutdown => 5,
    }
}

const HYPERCALL_ROWS: usize = nr::MAX as usize;
const ROWS: usize = HYPERCALL_ROWS + EXIT_KINDS.len();

/// Name of summary row `row`: the hypercalls by number (0 stands for none:
/// it is never served), then the exit kinds.
fn row_name(row: usize) -> &'static str {
    match u16::try_from(row) {
        Ok(number) if row < HYPERCALL_ROWS => name(number),
        _ => EXIT_KINDS[row - HYPERCALL_ROWS],
    }
}

/// Counts and times per row. Atomics, so that a signal handler may read
/// them; only the vCPU thread writes.
#[derive(Default)]
struct Row {
    calls: AtomicU64,
    errors: AtomicU64,
    nanos: AtomicU64,
}

pub struct Summary {
    rows: [Row; ROWS],
}

impl Default for Summary {
    fn default() -> Self {
        Summary {
            rows: std::array::from_fn(|_| Row::default()),
        }
    }
}

impl Summary {
    fn add(&self, row: usize, error: bool, elapsed: Duration) {
        let row = &self.rows[row];
        row.calls.fetch_add(1, Ordering::Relaxed);
        row.errors.fetch_add(u64::from(error), Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        row.nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Writes the table to `fd` in one `write`, like `strace -c`: seconds
    /// in all, microseconds per call, calls and errors, for every row that
    /// has calls, then the total. Async-signal-safe: a stack buffer.
    pub fn print(&self, fd: RawFd) {
        let mut out = Buffer::new();
        out.push(b"    seconds  usecs/call     calls    errors call\n");
        out.push(b"----------- ----------- --------- --------- ----------------\n");
        let (mut calls, mut errors, mut nanos) = (0u64, 0u64, 0u64);
        for (index, row) in self.rows.iter().enumerate() {
            let row_calls = row.calls.load(Ordering::Relaxed);
            if row_calls == 0 {
                continue;
            }
            let row_errors = row.errors.load(Ordering::Relaxed);
            let row_nanos = row.nanos.load(Ordering::Relaxed);
            (calls, errors) = (calls + row_calls, errors + row_errors);
            nanos = nanos.saturating_add(row_nanos);
            out.line(
                row_nanos,
                Some(row_nanos / row_calls / 1000),
                row_calls,
                row_errors,
                row_name(index),
            );
        }
        out.push(b"----------- ----------- --------- --------- ----------------\n");
        out.line(nanos, None, calls, errors, "total");
        // SAFETY: write(2) of our own buffer, `len` bytes of it.
        unsafe { libc::write(fd, out.bytes.as_ptr().cast(), out.len) };
    }
}

/// A fixed buffer for the summary (no allocation).
struct Buffer {
    bytes: [u8; 2048],
    len: usize,
}

impl Buffer {
    fn new() -> Buffer {
        Buffer {
            bytes: [0; 2048],
            len: 0,
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        let n = bytes.len().min(self.bytes.len() - self.len);
        self.bytes[self.len..self.len + n].copy_from_slice(&bytes[..n]);
        self.len += n;
    }

    /// `text` right-aligned in `width` columns.
    fn right(&mut self, text: &[u8], width: usize) {
        for _ in text.len()..width {
            self.push(b" ");
        }
        self.push(text);
    }

    fn line(&mut self, nanos: u64, per_call: Option<u64>, calls: u64, errors: u64, name: &str) {
        let mut seconds = [0u8; 32];
        let seconds = seconds_text(nanos, &mut seconds);
        self.right(seconds, 11);
        self.push(b" ");
        match per_call {
            Some(us) => self.right(decimal(us, &mut [0; 20]), 11),
            None => self.right(b"", 11),
        }
        self.push(b" ");
        self.right(decimal(calls, &mut [0; 20]), 9);
        self.push(b" ");
        self.right(decimal(errors, &mut [0; 20]), 9);
        self.push(b" ");
        self.push(name.as_bytes());
        self.push(b"\n");
    }
}

/// `nanos` as seconds with six decimals (`0.000012`), no allocation.
fn seconds_text(nanos: u64, out: &mut [u8; 32]) -> &[u8] {
    let micros = nanos / 1000;
    let mut digits = [0u8; 20];
    let whole = decimal(micros / 1_000_000, &mut digits);
    let mut len = whole.len();
    out[..len].copy_from_slice(whole);
    out[len] = b'.';
    len += 1;
    let mut frac = micros % 1_000_000;
    for i in (0..6).rev() {
        // reason: a digit, below 10.
        #[allow(clippy::cast_possible_truncation)]
        let digit = (frac % 10) as u8;
        out[len + i] = b'0' + digit;
        frac /= 10;
    }
    &out[..len + 6]
}

/// The summary a SIGINT/SIGTERM prints, and where (set once, by the
/// first tender of the process that traces).
static ON_SIGNAL: OnceLock<(Arc<Summary>, RawFd)> = OnceLock::new();

/// The trace file's descriptor, for the threads' allow-lists: a signal
/// handler may print the summary on any thread (-1: none).
static TRACE_FD: AtomicI32 = AtomicI32::new(-1);

/// Prints the summary of a traced run, if there is one. Async-signal-safe:
/// the SIGINT/SIGTERM handler calls it.
pub fn print_on_signal() {
    if let Some((summary, fd)) = ON_SIGNAL.get() {
        summary.print(*fd);
    }
}

/// The trace file's descriptor, if `--trace=FILE` opened one: every
/// thread may write there (a signal handler's summary).
pub fn signal_fd() -> Option<RawFd> {
    let fd = TRACE_FD.load(Ordering::Relaxed);
    (fd >= 0).then_some(fd)
}

/// The module: `--trace` and `--trace=FILE`.
#[derive(Default)]
pub struct Trace {
    sink: Option<Arc<Sink>>,
    summary: Arc<Summary>,
}

impl Trace {
    pub fn new() -> Trace {
        Trace::default()
    }
}

impl Module for Trace {
    fn name(&self) -> &'static str {
        "trace"
    }

    fn usage(&self) -> &'static str {
        "  [ --trace[=FILE] ] (trace hypercalls and VM exits to stderr or FILE, \
         with a summary at exit)\n"
    }

    fn parse_option(&mut self, option: &str, _manifest: &mut Manifest) -> Result<bool> {
        let sink = if option == "--trace" {
            Sink::Stderr
        } else if let Some(path) = option.strip_prefix("--trace=") {
            if path.is_empty() {
                return Err(super::invalid_option(option, None));
            }
            // Opened now, before any privilege drop or chroot, as images
            // are; truncated, as a shell's `>` would.
            let file = File::create(path).map_err(|e| {
                Error::Argument(format!(
                    "Could not open trace file {path}: {}",
                    os_error_text(&e)
                ))
            })?;
            Sink::File(file)
        } else {
            return Ok(false);
        };
        // The last one wins.
        self.sink = Some(Arc::new(sink));
        Ok(true)
    }

    fn setup(&mut self, ctx: &mut SetupContext<'_>) -> Result<()> {
        let Some(sink) = &self.sink else {
            return Ok(());
        };
        if let Sink::File(file) = &**sink {
            TRACE_FD.store(file.as_raw_fd(), Ordering::Relaxed);
        }
        let _ = ON_SIGNAL.set((self.summary.clone(), sink.fd()));
        ctx.hypercalls.set_observer(Box::new(Tracer {
            sink: sink.clone(),
            summary: self.summary.clone(),
            line: String::with_capacity(256),
            before: None,
        }));
        Ok(())
    }

    fn halt(&mut self, _ending: Ending) {
        if let Some(sink) = &self.sink {
            self.summary.print(sink.fd());
        }
    }

    fn vcpu_rules(&self, vcpu: &mut Allowlist) {
        // The lines: one write each, on the trace's descriptor (stderr is
        // in every list already).
        if let Some(sink) = &self.sink {
            vcpu.allow_fds(libc::SYS_write, &[sink.fd()]);
        }
    }
}

/// The observer that writes the lines.
struct Tracer {
    sink: Arc<Sink>,
    summary: Arc<Summary>,
    /// The line being built: its capacity is kept, so tracing allocates
    /// nothing once warm (the vCPU thread's allow-list has no `mmap`).
    line: String,
    /// The call's arguments as the guest wrote them.
    before: Option<Args>,
}

impl Tracer {
    fn emit(&mut self) {
        self.line.push('\n');
        self.sink.write(self.line.as_bytes());
        self.line.clear();
    }
}

impl Observer for Tracer {
    fn before(&mut self, ram: &GuestRam, number: u16, gpa: u64) {
        self.before = Args::read(ram, number, gpa);
    }

    fn after(
        &mut self,
        ram: &GuestRam,
        number: u16,
        gpa: u64,
        result: &std::result::Result<Action, Error>,
        elapsed: Duration,
    ) {
        let before = self.before.take();
        let after = Args::read(ram, number, gpa);
        format_call(&mut self.line, number, gpa, before.as_ref());
        format_result(&mut self.line, number, after.as_ref(), result, elapsed);
        self.emit();
        self.summary
            .add(usize::from(number), result.is_err(), elapsed);
    }

    fn vm_exit(&mut self, exit: &VmExit, served: &Result<Option<ExitAction>>, elapsed: Duration) {
        format_exit(&mut self.line, exit, served, elapsed);
        self.emit();
        let failed = !matches!(served, Ok(Some(_)));
        self.summary
            .add(HYPERCALL_ROWS + exit_kind(exit), failed, elapsed);
    }
}

/// A hypercall's argument struct, read from guest memory.
#[derive(Debug, Clone, Copy)]
enum Args {
    Walltime(Walltime),
    Puts(Puts),
    Poll(Poll),
    Block(BlockIo),
    Net(NetIo),
    Halt(Halt),
}

impl Args {
    /// The struct of hypercall `number` at `gpa`; `None` when the address
    /// fails the check of §5 (or the number has no struct).
    fn read(ram: &GuestRam, number: u16, gpa: u64) -> Option<Args> {
        Some(match number {
            nr::WALLTIME => Args::Walltime(ram.read_arg(gpa).ok()?),
            nr::PUTS => Args::Puts(ram.read_arg(gpa).ok()?),
            nr::POLL => Args::Poll(ram.read_arg(gpa).ok()?),
            nr::BLOCK_READ | nr::BLOCK_WRITE => Args::Block(ram.read_arg(gpa).ok()?),
            nr::NET_READ | nr::NET_WRITE => Args::Net(ram.read_arg(gpa).ok()?),
            nr::HALT => Args::Halt(halt::read(ram, gpa).ok()?),
            _ => return None,
        })
    }
}

/// `solo5_result_t` by name.
fn result_name(ret: i32) -> std::borrow::Cow<'static, str> {
    match ret {
        result::OK => "OK".into(),
        result::AGAIN => "AGAIN".into(),
        result::EINVAL => "EINVAL".into(),
        result::EUNSPEC => "EUNSPEC".into(),
        other => format!("{other}").into(),
    }
}

/// `NAME(arguments)`, from the struct as the guest wrote it.
fn format_call(out: &mut String, number: u16, gpa: u64, args: Option<&Args>) {
    let call = if number == 0 || number >= nr::MAX {
        "hypercall"
    } else {
        name(number)
    };
    let _ = match args {
        None if number == 0 => write!(out, "{call}(num={number}, arg=0x{gpa:x})"),
        None => write!(out, "{call}(arg=0x{gpa:x} invalid)"),
        Some(Args::Walltime(_)) => write!(out, "{call}()"),
        Some(Args::Puts(a)) => write!(out, "{call}(data=0x{:x}, len={})", a.data, a.len),
        Some(Args::Poll(a)) => write!(out, "{call}(timeout_ns={})", a.timeout_nsecs),
        Some(Args::Block(a)) => write!(
            out,
            "{call}(handle={}, offset={}, data=0x{:x}, len={})",
            a.handle, a.offset, a.data, a.len
        ),
        Some(Args::Net(a)) => write!(
            out,
            "{call}(handle={}, data=0x{:x}, len={})",
            a.handle, a.data, a.len
        ),
        Some(Args::Halt(a)) => write!(
            out,
            "{call}(cookie=0x{:x}, status={})",
            a.cookie, a.exit_status
        ),
    };
}

/// ` = RESULT <seconds>`, from the struct as the tender left it. A HALT
/// that ends the guest has no result.
fn format_result(
    out: &mut String,
    number: u16,
    args: Option<&Args>,
    outcome: &std::result::Result<Action, Error>,
    elapsed: Duration,
) {
    let _ = match outcome {
        Err(error) => write!(out, " = ERROR ({error})"),
        Ok(Action::Exit(_)) if number == nr::HALT => return,
        Ok(Action::Exit(code)) => write!(out, " = exit {code}"),
        Ok(Action::Continue) => match args {
            None => write!(out, " = ?"),
            Some(Args::Walltime(a)) => write!(out, " = 0 nsecs={}", a.nsecs),
            Some(Args::Puts(_)) => write!(out, " = 0"),
            Some(Args::Poll(a)) => write!(out, " = {} ready=0x{:x}", a.ret, a.ready_set),
            Some(Args::Block(a)) => write!(out, " = {}", result_name(a.ret)),
            Some(Args::Net(a)) if number == nr::NET_READ && a.ret == result::OK => {
                write!(out, " = OK len={}", a.len)
            }
            Some(Args::Net(a)) => write!(out, " = {}", result_name(a.ret)),
            Some(Args::Halt(_)) => write!(out, " = 0"),
        },
    };
    push_elapsed(out, elapsed);
}

/// ` <seconds.micros>`.
fn push_elapsed(out: &mut String, elapsed: Duration) {
    let _ = write!(
        out,
        " <{}.{:06}>",
        elapsed.as_secs(),
        elapsed.subsec_micros()
    );
}

/// A VM exit other than a hypercall, and what became of it.
fn format_exit(
    out: &mut String,
    exit: &VmExit,
    served: &Result<Option<ExitAction>>,
    elapsed: Duration,
) {
    let _ = match *exit {
        VmExit::IoOut { port, size, value } => write!(
            out,
            "EXIT io_out(port=0x{port:x}, size={size}, value=0x{value:x})"
        ),
        VmExit::IoIn { port, size } => write!(out, "EXIT io_in(port=0x{port:x}, size={size})"),
        VmExit::Mmio { gpa, write } => write!(out, "EXIT mmio(gpa=0x{gpa:x}, write={write})"),
        VmExit::Debug { exception, pc, .. } => {
            write!(out, "EXIT debug(exception={exception}, pc=0x{pc:x})")
        }
        VmExit::Hlt => write!(out, "EXIT hlt()"),
        VmExit::Shutdown => write!(out, "EXIT shutdown()"),
    };
    let _ = match served {
        Ok(Some(ExitAction::Resume)) => write!(out, " = resume"),
        Ok(Some(ExitAction::Exit(code))) => write!(out, " = exit {code}"),
        Ok(None) => write!(out, " = not served"),
        Err(error) => write!(out, " = ERROR ({error})"),
    };
    push_elapsed(out, elapsed);
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARG: u64 = 0x10000;

    fn ram() -> GuestRam {
        GuestRam::new(2 << 20).unwrap()
    }

    fn line(
        ram: &GuestRam,
        number: u16,
        gpa: u64,
        outcome: std::result::Result<Action, Error>,
    ) -> String {
        let mut out = String::new();
        let args = Args::read(ram, number, gpa);
        format_call(&mut out, number, gpa, args.as_ref());
        format_result(
            &mut out,
            number,
            args.as_ref(),
            &outcome,
            Duration::from_micros(12),
        );
        out
    }

    #[test]
    fn calls_are_decoded_from_guest_memory() {
        let ram = ram();
        ram.write_arg(
            ARG,
            &Puts {
                data: 0x1050a0,
                len: 13,
            },
        )
        .unwrap();
        assert_eq!(
            line(&ram, nr::PUTS, ARG, Ok(Action::Continue)),
            "PUTS(data=0x1050a0, len=13) = 0 <0.000012>"
        );
        ram.write_arg(
            ARG,
            &Halt {
                cookie: 0,
                exit_status: 0,
                _pad: 0,
            },
        )
        .unwrap();
        assert_eq!(
            line(&ram, nr::HALT, ARG, Ok(Action::Exit(0))),
            "HALT(cookie=0x0, status=0)"
        );
        let poll = Poll {
            timeout_nsecs: 1_000_000,
            ready_set: 2,
            ret: 1,
            _pad: 0,
        };
        ram.write_arg(ARG, &poll).unwrap();
        assert_eq!(
            line(&ram, nr::POLL, ARG, Ok(Action::Continue)),
            "POLL(timeout_ns=1000000) = 1 ready=0x2 <0.000012>"
        );
        let net = NetIo {
            handle: 1,
            data: 0x2000,
            len: 42,
            ret: 0,
            _pad: 0,
        };
        ram.write_arg(ARG, &net).unwrap();
        assert_eq!(
            line(&ram, nr::NET_WRITE, ARG, Ok(Action::Continue)),
            "NET_WRITE(handle=1, data=0x2000, len=42) = OK <0.000012>"
        );
        assert_eq!(
            line(&ram, nr::NET_READ, ARG, Ok(Action::Continue)),
            "NET_READ(handle=1, data=0x2000, len=42) = OK len=42 <0.000012>"
        );
        let block = BlockIo {
            handle: 2,
            offset: 512,
            data: 0x3000,
            len: 512,
            ret: 2,
            _pad: 0,
        };
        ram.write_arg(ARG, &block).unwrap();
        assert_eq!(
            line(&ram, nr::BLOCK_READ, ARG, Ok(Action::Continue)),
            "BLOCK_READ(handle=2, offset=512, data=0x3000, len=512) = EINVAL <0.000012>"
        );
        ram.write_arg(ARG, &Walltime { nsecs: 7 }).unwrap();
        assert_eq!(
            line(&ram, nr::WALLTIME, ARG, Ok(Action::Continue)),
            "WALLTIME() = 0 nsecs=7 <0.000012>"
        );
    }

    #[test]
    fn hostile_arguments_are_printed_as_invalid() {
        let ram = ram();
        let error = Error::Guest("Invalid guest access: gpa=0xfffffff0, sz=16".into());
        for gpa in [0xffff_fff0, u64::from(u32::MAX), (2 << 20) - 8] {
            let text = line(&ram, nr::PUTS, gpa, Err(error.clone()));
            assert_eq!(
                text,
                format!(
                    "PUTS(arg=0x{gpa:x} invalid) = ERROR (Invalid guest access: gpa=0xfffffff0, sz=16) <0.000012>"
                )
            );
        }
        // A struct that is readable but names a buffer out of bounds is
        // printed as the guest wrote it.
        ram.write_arg(
            ARG,
            &Puts {
                data: u64::MAX,
                len: u64::MAX,
            },
        )
        .unwrap();
        assert!(line(&ram, nr::PUTS, ARG, Err(error))
            .starts_with("PUTS(data=0xffffffffffffffff, len=18446744073709551615) = ERROR ("));
        assert_eq!(
            line(
                &ram,
                0,
                ARG,
                Err(Error::Guest("Invalid guest hypercall: num=0".into()))
            ),
            "hypercall(num=0, arg=0x10000) = ERROR (Invalid guest hypercall: num=0) <0.000012>"
        );
        assert_eq!(result_name(-5), "-5");
    }

    #[test]
    fn exits_are_decoded() {
        let mut out = String::new();
        let exit = VmExit::IoOut {
            port: 0x4ff,
            size: 4,
            value: 1,
        };
        format_exit(
            &mut out,
            &exit,
            &Ok(Some(ExitAction::Resume)),
            Duration::from_micros(3),
        );
        assert_eq!(
            out,
            "EXIT io_out(port=0x4ff, size=4, value=0x1) = resume <0.000003>"
        );
        out.clear();
        format_exit(&mut out, &VmExit::Shutdown, &Ok(None), Duration::ZERO);
        assert_eq!(out, "EXIT shutdown() = not served <0.000000>");
    }

    #[test]
    fn the_summary_is_a_table() {
        let summary = Summary::default();
        summary.add(usize::from(nr::PUTS), false, Duration::from_micros(10));
        summary.add(usize::from(nr::PUTS), false, Duration::from_micros(14));
        summary.add(usize::from(nr::HALT), false, Duration::ZERO);
        summary.add(HYPERCALL_ROWS + 5, true, Duration::from_secs(2));
        let mut seconds = [0u8; 32];
        assert_eq!(seconds_text(2_000_024_000, &mut seconds), b"2.000024");
        let mut fds = [0; 2];
        // SAFETY: pipe(2) fills the two descriptors.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        let [read, write] = fds;
        summary.print(write);
        // SAFETY: closes the write end we own.
        unsafe { libc::close(write) };
        let mut text = String::new();
        // SAFETY: takes ownership of the read end.
        let mut file = unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(read) };
        std::io::Read::read_to_string(&mut file, &mut text).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "    seconds  usecs/call     calls    errors call");
        assert_eq!(lines[2], "   0.000024          12         2         0 PUTS");
        assert_eq!(lines[3], "   0.000000           0         1         0 HALT");
        assert_eq!(
            lines[4],
            "   2.000000     2000000         1         1 exit shutdown"
        );
        assert_eq!(
            lines[6],
            "   2.000024                     4         1 total"
        );
    }
}
