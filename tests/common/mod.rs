//! Shared harness of the integration tests: builds the guests (a cargo call
//! of their own, with their own target directory), runs the tender binary,
//! and edits ELF images for the bad-input tests.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{mpsc, OnceLock};
use std::time::Duration;

use hvt_abi::note::{NoteHeader, UNPRIVILEGED_NOTE_TYPE};

/// Root of the repository.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tender/ has a parent")
        .to_owned()
}

/// The tender binary cargo built for these tests.
pub fn tender_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_tender"))
}

/// Removes the settings of this (host) build that must not leak into a
/// nested cargo build of guests: flags and target meant for the tender.
pub fn without_host_build_settings(command: &mut Command) -> &mut Command {
    command
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
}

/// Whether gdb runs here.
pub fn gdb_installed() -> bool {
    Command::new("gdb")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// cargo in `guest/`, for a build of guests of its own.
pub fn guest_cargo() -> Command {
    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cargo.current_dir(repo_root().join("guest"));
    without_host_build_settings(&mut cargo);
    cargo
}

/// [`gdb_installed`], saying so when it is not (the tests that need gdb
/// are then skipped; `.ci/run` installs it).
pub fn have_gdb() -> bool {
    let found = gdb_installed();
    if !found {
        eprintln!("gdb is not installed: gdb checks skipped (.ci/run installs it)");
    }
    found
}

/// Builds every guest once per test process and returns the directory that
/// holds the images (`<name>` without extension).
pub fn guest_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = repo_root();
        let target_dir = root.join("target").join("guest");
        let status = guest_cargo()
            .args(["build", "--release", "--target-dir"])
            .arg(&target_dir)
            .status()
            .expect("run cargo for the guests");
        assert!(status.success(), "building the guests failed");
        target_dir.join("x86_64-unknown-none").join("release")
    })
}

/// Path of the guest image `name`.
pub fn guest(name: &str) -> PathBuf {
    let path = guest_dir().join(name);
    assert!(path.exists(), "guest {name} was not built");
    path
}

/// What a tender run left behind.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// stdout and stderr together, as upstream's tests match them.
    pub fn output(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

impl From<Output> for Run {
    fn from(out: Output) -> Self {
        Run {
            // A signal (no code) shows as -1: never a tender's own code.
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// Runs the tender with `args`, with a time limit so a hung guest fails the
/// test instead of hanging it.
pub fn tender<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let out = Command::new("timeout")
        .arg("60")
        .arg(tender_bin())
        .args(args)
        .output()
        .expect("run the tender");
    out.into()
}

/// The lines a background tender prints on stdout and stderr, as they
/// come, and all it printed so far.
pub struct ConsoleLines {
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl ConsoleLines {
    /// Takes over `child`'s piped stdout and stderr.
    pub fn capture(child: &mut Child) -> ConsoleLines {
        let (tx, lines) = mpsc::channel();
        let streams: [Option<Box<dyn Read + Send>>; 2] = [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ];
        for stream in streams.into_iter().flatten() {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        ConsoleLines {
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits up to `timeout` for a line containing `text` and returns it;
    /// fails the test with everything printed so far otherwise.
    pub fn wait_for(&mut self, text: &str, timeout: Duration) -> String {
        loop {
            match self.lines.recv_timeout(timeout) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(text) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no '{text}' from the guest; it said:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Takes the lines that wait, until none comes for `quiet`.
    pub fn settle(&mut self, quiet: Duration) {
        while let Ok(line) = self.lines.recv_timeout(quiet) {
            self.seen.push(line);
        }
    }

    /// Everything printed so far, the lines that wait included.
    pub fn output(&mut self) -> String {
        self.settle(Duration::ZERO);
        self.seen.join("\n")
    }

    /// The lines printed so far.
    pub fn seen(&self) -> &[String] {
        &self.seen
    }
}

/// A scratch directory unique to this test process and `tag`. The test
/// harness has no hook at the process's end, so the first call removes
/// what earlier test processes, no longer running, left behind.
pub fn scratch(tag: &str) -> PathBuf {
    static SWEPT: std::sync::Once = std::sync::Once::new();
    SWEPT.call_once(remove_scratch_of_ended_processes);
    let dir = std::env::temp_dir().join(format!("tender-test-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// Removes `tender-test-PID-*` directories whose process has ended.
fn remove_scratch_of_ended_processes() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("tender-test-"))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Writes `bytes` as an image file in the scratch directory.
pub fn write_image(tag: &str, name: &str, bytes: &[u8]) -> PathBuf {
    let path = scratch(tag).join(name);
    std::fs::write(&path, bytes).expect("write image");
    path
}

/// Byte-level access to an ELF64 image, for making bad ones.
pub struct Elf {
    pub bytes: Vec<u8>,
}

pub const PT_LOAD: u32 = 1;
pub const PT_NOTE: u32 = 4;

/// A file offset or size read from the image as a `usize`.
fn file_usize(value: u64) -> usize {
    usize::try_from(value).expect("file offset fits a usize")
}

/// Offset of `n_type` in a note header (§1).
pub const NOTE_TYPE: usize = core::mem::offset_of!(NoteHeader, kind);

impl Elf {
    pub fn load(path: &Path) -> Elf {
        Elf {
            bytes: std::fs::read(path).expect("read image"),
        }
    }

    pub fn u16_at(&self, off: usize) -> u16 {
        u16::from_le_bytes(self.bytes[off..off + 2].try_into().unwrap())
    }
    pub fn u32_at(&self, off: usize) -> u32 {
        u32::from_le_bytes(self.bytes[off..off + 4].try_into().unwrap())
    }
    pub fn u64_at(&self, off: usize) -> u64 {
        u64::from_le_bytes(self.bytes[off..off + 8].try_into().unwrap())
    }
    pub fn set_u16(&mut self, off: usize, v: u16) {
        self.bytes[off..off + 2].copy_from_slice(&v.to_le_bytes());
    }
    pub fn set_u32(&mut self, off: usize, v: u32) {
        self.bytes[off..off + 4].copy_from_slice(&v.to_le_bytes());
    }
    pub fn set_u64(&mut self, off: usize, v: u64) {
        self.bytes[off..off + 8].copy_from_slice(&v.to_le_bytes());
    }

    /// File offset of program header `i`.
    pub fn phdr(&self, i: usize) -> usize {
        file_usize(self.u64_at(32)) + i * usize::from(self.u16_at(54))
    }
    pub fn phnum(&self) -> usize {
        usize::from(self.u16_at(56))
    }
    pub fn p_type(&self, i: usize) -> u32 {
        self.u32_at(self.phdr(i))
    }
    /// Indices of the program headers of type `p_type`.
    pub fn phdrs_of(&self, p_type: u32) -> Vec<usize> {
        (0..self.phnum())
            .filter(|&i| self.p_type(i) == p_type)
            .collect()
    }
    /// Field offsets inside a program header.
    pub const P_FLAGS: usize = 4;
    pub const P_OFFSET: usize = 8;
    pub const P_VADDR: usize = 16;
    pub const P_PADDR: usize = 24;
    pub const P_FILESZ: usize = 32;
    pub const P_MEMSZ: usize = 40;
    pub const P_ALIGN: usize = 48;

    /// The PT_NOTE whose note has `n_type`.
    pub fn note_phdr(&self, n_type: u32) -> usize {
        *self
            .phdrs_of(PT_NOTE)
            .iter()
            .find(|&&i| {
                let off = file_usize(self.u64_at(self.phdr(i) + Self::P_OFFSET));
                self.u32_at(off + NOTE_TYPE) == n_type
            })
            .expect("note present")
    }
    /// File offset of the note with `n_type`.
    pub fn note_offset(&self, n_type: u32) -> usize {
        file_usize(self.u64_at(self.phdr(self.note_phdr(n_type)) + Self::P_OFFSET))
    }
}

/// A copy of the guest `name` without our unprivileged note, so the tender
/// runs it at CPL 0 as upstream runs every guest (see [`cpl0_copy_of`]).
pub fn cpl0_copy(name: &str) -> PathBuf {
    cpl0_copy_of(&guest(name))
}

/// A copy of the image at `path` without our unprivileged note, so the
/// tender runs it at CPL 0 as upstream runs every guest (the note's type is
/// cleared; the tender then does not recognise it). The image must carry
/// the note.
/// Made once per test process and path, in a scratch directory of its own,
/// so parallel tests never read a copy while another test is writing it.
pub fn cpl0_copy_of(path: &Path) -> PathBuf {
    static COPIES: std::sync::Mutex<Vec<(PathBuf, PathBuf)>> = std::sync::Mutex::new(Vec::new());
    let mut copies = COPIES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, copy)) = copies.iter().find(|(p, _)| p == path) {
        return copy.clone();
    }
    let mut elf = Elf::load(path);
    let off = elf.note_offset(UNPRIVILEGED_NOTE_TYPE);
    elf.set_u32(off + NOTE_TYPE, 0);
    // Numbered: two images of one file name (a Rust and a C `hello`) get
    // copies of their own.
    let file = path.file_name().expect("an image file").to_string_lossy();
    let copy = write_image("cpl0", &format!("{}-{file}-cpl0", copies.len()), &elf.bytes);
    copies.push((path.to_owned(), copy.clone()));
    copy
}

/// Whether the tests run as root: network namespaces and taps need it.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// `command` with descriptor `fd` inherited by the child: its
/// close-on-exec flag is cleared in the child only, between fork and exec.
pub fn inheriting(mut command: Command, fd: std::os::fd::RawFd) -> Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: only fcntl, async-signal-safe, between fork and exec.
    unsafe {
        command.pre_exec(move || {
            if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command
}

/// A name unique to this test process: `prefix`, the process id and a
/// counter; short enough for an interface name (< 16 characters).
pub fn unique_name(prefix: &str) -> String {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = format!("{prefix}{}x{n}", std::process::id());
    assert!(name.len() < 16, "interface name {name} too long");
    name
}

/// A network namespace of one test, with its own interfaces. Dropping it
/// deletes the interfaces and the namespace, also when the test fails.
pub struct NetNs {
    pub name: String,
    links: Vec<String>,
}

impl NetNs {
    /// A new, empty namespace (only `lo`, down), with IPv6 off so that the
    /// kernel sends no unsolicited frames on its taps.
    pub fn new() -> NetNs {
        let name = unique_name("tns");
        let out = Command::new("ip")
            .args(["netns", "add", &name])
            .output()
            .expect("run ip");
        assert!(
            out.status.success(),
            "ip netns add {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let ns = NetNs {
            name,
            links: Vec::new(),
        };
        // Best effort: a kernel without IPv6 has nothing to switch off.
        let _ = ns
            .exec("sysctl")
            .args([
                "-qw",
                "net.ipv6.conf.default.disable_ipv6=1",
                "net.ipv6.conf.all.disable_ipv6=1",
            ])
            .output();
        ns
    }

    /// `ip -n NS ARGS`, whatever its outcome.
    pub fn try_ip(&self, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["-n", &self.name])
            .args(args)
            .output()
            .expect("run ip")
    }

    /// `ip -n NS ARGS`, which must succeed; returns its stdout.
    pub fn ip(&self, args: &[&str]) -> String {
        let out = self.try_ip(args);
        assert!(
            out.status.success(),
            "ip -n {} {}: {}",
            self.name,
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Deletes `link` with the namespace (for interfaces a test made itself).
    pub fn adopt_link(&mut self, link: &str) {
        self.links.push(link.to_owned());
    }

    /// A persistent tap in the namespace, with `mtu` if given, brought up
    /// if `up`, with `address` (CIDR) if given. Returns its name.
    pub fn add_tap(&mut self, mtu: Option<u32>, up: bool, address: Option<&str>) -> String {
        let tap = unique_name("tap");
        self.ip(&["tuntap", "add", "dev", &tap, "mode", "tap"]);
        self.adopt_link(&tap);
        if let Some(mtu) = mtu {
            self.ip(&["link", "set", &tap, "mtu", &mtu.to_string()]);
        }
        if let Some(address) = address {
            self.ip(&["addr", "add", address, "dev", &tap]);
        }
        if up {
            self.ip(&["link", "set", &tap, "up"]);
        }
        tap
    }

    /// `program` run inside the namespace (`ip netns exec`).
    pub fn exec(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name]).arg(program);
        command
    }

    /// The tender inside the namespace, with the time limit of [`tender`].
    pub fn tender_command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut command = self.exec("timeout");
        command.arg("60").arg(tender_bin()).args(args);
        command
    }

    /// Runs the tender inside the namespace to its end.
    pub fn tender<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.tender_command(args)
            .output()
            .expect("run the tender")
            .into()
    }

    /// Runs `f` on a thread of its own that joined the namespace: sockets
    /// and taps it creates belong to the namespace, and stay usable from
    /// any thread afterwards.
    pub fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        use std::os::fd::AsRawFd;
        let path = format!("/run/netns/{}", self.name);
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let ns = std::fs::File::open(&path).expect("open the netns file");
                    // SAFETY: joins this thread (only) to the namespace.
                    let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
                    assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
                    f()
                })
                .join()
                .expect("thread in the netns panicked")
        })
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        for link in &self.links {
            let _ = self.try_ip(&["link", "del", link]);
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// What `wrk` reported.
pub struct Wrk {
    pub rps: f64,
    /// Requests completed.
    pub requests: f64,
    /// Socket errors: connect, read, write, timeout.
    pub errors: [u64; 4],
}

/// Runs `wrk -t2 -cCONNECTIONS -dSECONDSs URL` inside `ns`.
pub fn wrk(ns: &NetNs, connections: usize, seconds: u32, url: &str) -> Wrk {
    let out = ns
        .exec("wrk")
        .args([
            "-t2",
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            url,
        ])
        .output()
        .expect("wrk");
    let text = String::from_utf8_lossy(&out.stdout);
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("wrk output: {text}"));
    // "  12345 requests in 4.00s, ..."
    let requests = text
        .lines()
        .find_map(|l| l.trim().split_once(" requests in "))
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or_else(|| panic!("wrk output: {text}"));
    // "Socket errors: connect 0, read 0, write 0, timeout 12", only when
    // there were any.
    let mut errors = [0; 4];
    if let Some(line) = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Socket errors:"))
    {
        for (slot, part) in errors.iter_mut().zip(line.split(',')) {
            *slot = part
                .split_whitespace()
                .nth(1)
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
        }
    }
    Wrk {
        rps,
        requests,
        errors,
    }
}

/// A busy loop pinned to each core (`taskset`), as other tenants of a
/// server; killed when dropped.
pub struct CpuHog(Vec<Child>);

impl CpuHog {
    pub fn start() -> CpuHog {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        CpuHog(
            (0..cores)
                .map(|core| {
                    Command::new("taskset")
                        .args(["-c", &core.to_string(), "sh", "-c", "while :; do :; done"])
                        .spawn()
                        .expect("start a CPU hog (taskset)")
                })
                .collect(),
        )
    }
}

impl Drop for CpuHog {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A fault the guest does not handle (§6.6, §12.4): at CPL 3 (`cpl3`) the
/// trap path reports it (vector, error code, CR2, frame, registers) and the
/// tender exits 255; at CPL 0, with no IDT, KVM's triple fault is an unhandled
/// exit, exit 1. (This project's shadow-paging KVM ends some CPL 0 faults
/// in its instruction emulator instead: an internal error exit, §8, §11.)
pub fn assert_guest_fault(run: &Run, cpl3: bool, what: &str) {
    if cpl3 {
        assert_eq!(
            run.code,
            hvt_abi::hypercall::exit::ABORT,
            "{what}: {}",
            run.output()
        );
        assert!(
            run.stderr.contains("tender: Guest fault: vector "),
            "{what}: {}",
            run.output()
        );
    } else {
        assert_eq!(run.code, 1, "{what}: {}", run.output());
        assert!(
            run.stderr
                .contains("tender: KVM: unhandled exit: exit_reason=0x8, rip=0x")
                || run
                    .stderr
                    .contains("tender: KVM: internal error exit: suberror=0x"),
            "{what}: {}",
            run.output()
        );
    }
}

/// A FIFO that a tender's stdout and stderr share, as Albatross runs it,
/// and the test's non-blocking end to read it.
pub struct ConsoleFifo {
    reader: std::fs::File,
    writer: Option<std::fs::File>,
    pub output: Vec<u8>,
}

impl ConsoleFifo {
    /// Makes the FIFO at `path` and opens both ends (the reader first, so
    /// that opening the writer does not wait).
    pub fn new(path: &Path) -> ConsoleFifo {
        use std::os::unix::fs::OpenOptionsExt;
        let c_path = std::ffi::CString::new(path.to_str().expect("UTF-8 path")).expect("no NUL");
        // SAFETY: creates a FIFO at a path the test owns.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        let reader = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .expect("open the FIFO to read");
        let writer = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .expect("open the FIFO to write");
        ConsoleFifo {
            reader,
            writer: Some(writer),
            output: Vec::new(),
        }
    }

    /// Starts `command` with the FIFO as its stdout and stderr, and no
    /// stdin. The command (and with it the writer) is dropped once started:
    /// the FIFO ends when the child has gone.
    pub fn spawn(&mut self, mut command: Command) -> Child {
        let writer = self.writer.take().expect("one child per FIFO");
        command
            .stdin(std::process::Stdio::null())
            .stdout(writer.try_clone().expect("dup"))
            .stderr(writer);
        command.spawn().expect("start the command")
    }

    /// Reads what there is; false at the end of the FIFO.
    fn read_some(&mut self) -> bool {
        let mut chunk = [0u8; 4096];
        match self.reader.read(&mut chunk) {
            Ok(0) => false,
            Ok(n) => {
                self.output.extend_from_slice(&chunk[..n]);
                true
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(10));
                true
            }
            Err(e) => panic!("read the FIFO: {e}"),
        }
    }

    /// Reads until `text` has come, panicking after `limit` or if `child`
    /// ended first (it is then killed and reaped).
    pub fn wait_for(&mut self, text: &str, child: &mut Child, limit: Duration) {
        let started = std::time::Instant::now();
        while !String::from_utf8_lossy(&self.output).contains(text) {
            if started.elapsed() > limit || matches!(child.try_wait(), Ok(Some(_))) {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{text:?} never came: {}",
                    String::from_utf8_lossy(&self.output)
                );
            }
            self.read_some();
        }
    }

    /// Reads to the end (every writer gone, within 30 s) and returns all
    /// the output.
    pub fn read_to_end(&mut self) -> String {
        let started = std::time::Instant::now();
        while self.read_some() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the FIFO never ended: {}",
                String::from_utf8_lossy(&self.output)
            );
        }
        String::from_utf8_lossy(&self.output).into_owned()
    }
}

/// Refused as upstream refuses a module's option: `reason`, then
/// "Invalid option: `OPTION'", then the usage; exit 1, no panic, nothing
/// from a guest.
pub fn assert_invalid_option(run: &Run, reason: &str, option: &str) {
    assert_ne!(run.code, -1, "tender was killed: {}", run.output());
    assert!(!run.stderr.contains("panicked"), "{}", run.output());
    assert_eq!(run.code, 1, "{}", run.output());
    assert_eq!(run.stdout, "", "{}", run.output());
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert!(lines.len() > 3, "{}", run.stderr);
    assert_eq!(
        lines[..2],
        [
            format!("tender: {reason}"),
            format!("tender: Invalid option: `{option}'"),
        ],
        "{}",
        run.stderr
    );
    assert!(lines[2].starts_with("usage: tender "), "{}", run.stderr);
}

/// Probe `bin` of the guest workspace's `probes` crate built with debug
/// info, in a target directory of its own (`target/guest-debug`), so that
/// gdb names functions, lines and variables. Built once per test process
/// and binary.
pub fn probe_with_debug_info(bin: &str) -> PathBuf {
    static BUILT: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let target_dir = repo_root().join("target").join("guest-debug");
    let path = target_dir
        .join("x86_64-unknown-none")
        .join("release")
        .join(bin);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if !built.iter().any(|b| b == bin) {
        let status = guest_cargo()
            .args(["build", "--release", "-p", "probes", "--bin", bin])
            .arg("--target-dir")
            .arg(&target_dir)
            .env("CARGO_PROFILE_RELEASE_DEBUG", "true")
            .status()
            .expect("run cargo for the debug guest");
        assert!(status.success(), "building {bin} with debug info failed");
        built.push(bin.to_owned());
    }
    path
}

/// `hcloop`'s figure, from its line "hcloop: N WALLTIME hypercalls, NS ns
/// each": nanoseconds per hypercall.
pub fn hcloop_ns(stdout: &str) -> f64 {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("hcloop: "))
        .and_then(|l| l.split(", ").nth(1))
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("hcloop figure")
}

/// The median of benchmark samples (the upper one of an even count).
pub fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// The smallest of benchmark samples.
pub fn minimum(samples: &[f64]) -> f64 {
    samples.iter().copied().fold(f64::INFINITY, f64::min)
}

/// A positive count from the environment variable `name`, else `default`
/// (benchmarks' run and call counts).
pub fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(default)
}
