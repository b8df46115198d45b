//! Applications run as host processes (`main!` on the host; what `cargo run
//! --target x86_64-unknown-linux-gnu -- ARGS` does with a guest crate): the
//! command line, exit codes, console and errors are the tender's, the clock
//! is real, and a tap named by `HVT_NET_NAME` is the network device. The
//! applications are this package's binaries `hvt-host-probe` and
//! `hvt-host-net-probe` (tests/apps/). The tap test needs root and `ip`
//! (it makes a network namespace of its own); skipped otherwise.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::ffi::OsStrExt;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hvt_bindings::abi::hypercall::exit;
use hvt_bindings::abi::layout::CMDLINE_SIZE;

const PROBE: &str = env!("CARGO_BIN_EXE_hvt-host-probe");
const NET_PROBE: &str = env!("CARGO_BIN_EXE_hvt-host-net-probe");

const BANNER: &str = "Solo5: Bindings version v0.1.0 (tender, Rust, host process)\n";

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl From<Output> for Run {
    fn from(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

fn run<S: AsRef<OsStr>>(program: &str, args: &[S]) -> Run {
    Command::new(program)
        .args(args)
        .env_remove("HVT_NET_service")
        .output()
        .expect("run the probe")
        .into()
}

#[test]
fn the_command_line_is_the_args_as_tender_passes_them() {
    let out = run(PROBE, &["one", "", "two  three", "--x=1"]);
    assert_eq!((out.code, out.stderr.as_str()), (0, ""), "{}", out.stdout);
    assert_eq!(
        out.stdout,
        format!("{BANNER}command line: 'one  two  three --x=1'\nSolo5: solo5_exit(0) called\n")
    );
    let out = run(PROBE, &["--solo5:quiet", "--solo5:warn", "a"]);
    assert_eq!(out.stdout, "command line: 'a'\n", "log options removed");
    let out = run::<&str>(PROBE, &[]);
    assert!(out.stdout.contains("command line: ''\n"), "{}", out.stdout);
}

#[test]
fn errors_exit_1_and_panics_abort_with_255() {
    let out = run(PROBE, &["--solo5:quiet", "--fail"]);
    assert_eq!(out.code, 1);
    assert_eq!(out.stdout, "command line: '--fail'\nError: asked to fail\n");
    let out = run(PROBE, &["--panic"]);
    assert_eq!(out.code, exit::ABORT, "{}", out.stderr);
    assert!(
        out.stdout
            .contains("Solo5: ABORT: panicked at guest/runtime/tests/apps/host_probe.rs:"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.ends_with("on purpose\n"), "{}", out.stdout);
    assert_eq!(out.stderr, "");
}

#[test]
fn time_is_real() {
    let start = Instant::now();
    let out = run(PROBE, &["--solo5:quiet", "--sleep=150"]);
    assert!(start.elapsed() >= Duration::from_millis(150));
    assert_eq!(out.code, 0);
    let slept: u64 = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("slept ")?.strip_suffix(" ms")?.parse().ok())
        .expect("slept line");
    assert!((150..1000).contains(&slept), "{}", out.stdout);
}

#[test]
fn what_the_tender_refuses_exits_1_with_its_message() {
    let not_utf8 = OsStr::from_bytes(b"a\xff");
    let out = run(PROBE, &[not_utf8]);
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (1, "", "tender: argument is not valid UTF-8: a\u{fffd}\n")
    );
    let out = run(PROBE, &["x".repeat(CMDLINE_SIZE)]);
    let too_long = format!(
        "tender: Guest command line too long (max={} characters)\n",
        CMDLINE_SIZE - 1
    );
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (1, "", too_long.as_str())
    );
}

#[test]
fn a_declared_network_device_needs_its_variable() {
    let out = run(NET_PROBE, &["--ipv4=10.0.0.2/24"]);
    assert_eq!((out.code, out.stdout.as_str()), (1, ""), "{}", out.stderr);
    assert_eq!(
        out.stderr,
        "tender: Device 'service' of type NET_BASIC declared but not attached.\n\
         tender: All declared devices must be attached. See --help for syntax.\n\
         tender: A host process attaches network device NAME to a tap with HVT_NET_NAME=TAP \
         (e.g. HVT_NET_service=tap0).\n"
    );
    let out: Run = Command::new(NET_PROBE)
        .env("HVT_NET_service", "@notanfd")
        .output()
        .unwrap()
        .into();
    assert_eq!((out.code, out.stdout.as_str()), (1, ""), "{}", out.stderr);
    assert!(
        out.stderr
            .starts_with("tender: Could not attach interface: @notanfd"),
        "{}",
        out.stderr
    );
}

fn is_root() -> bool {
    // SAFETY: no arguments, cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network namespace with a tap at 10.77.0.1/24, deleted (tap included)
/// when dropped.
struct Namespace {
    name: String,
    tap: String,
}

impl Namespace {
    fn new() -> Namespace {
        let pid = std::process::id();
        let ns = Namespace {
            name: format!("hvt-host-{pid}"),
            tap: format!("hvh{pid}"),
        };
        ip(&["netns", "add", &ns.name]);
        ip(&[
            "-n", &ns.name, "tuntap", "add", "dev", &ns.tap, "mode", "tap",
        ]);
        ip(&[
            "-n",
            &ns.name,
            "addr",
            "add",
            "10.77.0.1/24",
            "dev",
            &ns.tap,
        ]);
        ip(&["-n", &ns.name, "link", "set", &ns.tap, "up"]);
        ip(&["-n", &ns.name, "link", "set", "lo", "up"]);
        ns
    }

    /// Runs `f` on a thread inside the namespace.
    fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let file = std::fs::File::open(&path).expect("open the namespace");
                    use std::os::fd::AsRawFd;
                    // SAFETY: a namespace descriptor; only this thread moves.
                    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                    assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
                    f()
                })
                .join()
                .expect("namespace thread")
        })
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Kills the child if the test fails before it exits.
struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_tap_is_the_network_device() {
    let have_ip = Command::new("ip")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if !is_root() || !have_ip {
        eprintln!("host_process: the tap test needs root and ip; skipped");
        return;
    }
    let ns = Namespace::new();
    let child = Command::new("ip")
        .args(["netns", "exec", &ns.name, NET_PROBE, "--ipv4=10.77.0.2/24"])
        .env("HVT_NET_service", &ns.tap)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the probe");
    let mut child = Reaper(child);
    let stdout = child.0.stdout.take().unwrap();
    let (lines_tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !seen.iter().any(|l: &String| l.starts_with("ready on")) {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(_) => {
                let _ = child.0.kill();
                let mut stderr = String::new();
                let _ = child.0.stderr.take().unwrap().read_to_string(&mut stderr);
                panic!("the probe did not get ready: {seen:?} {stderr}");
            }
        }
    }
    assert_eq!(seen.last().unwrap(), "ready on 10.77.0.2/24");

    let ping = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.name,
            "ping",
            "-c",
            "2",
            "-W",
            "5",
            "10.77.0.2",
        ])
        .output()
        .expect("run ping");
    assert!(
        ping.status.success(),
        "{}",
        String::from_utf8_lossy(&ping.stdout)
    );

    let message: Vec<u8> = (0..100_000u32)
        .map(|i| u8::try_from(i % 251).unwrap())
        .collect();
    let echoed = ns.enter(|| {
        let addr: SocketAddr = "10.77.0.2:7".parse().unwrap();
        let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut writer = conn.try_clone().unwrap();
        let sent = message.clone();
        let sender = std::thread::spawn(move || {
            writer.write_all(&sent).unwrap();
            writer.shutdown(std::net::Shutdown::Write).unwrap();
        });
        let mut echoed = Vec::new();
        conn.read_to_end(&mut echoed).expect("read the echo");
        sender.join().unwrap();
        echoed
    });
    assert!(echoed == message, "echoed {} bytes", echoed.len());

    let status = child.0.wait().expect("wait for the probe");
    seen.extend(lines.iter());
    assert_eq!(status.code(), Some(0), "{seen:?}");
    assert!(seen.iter().any(|l| l == "echoed 100000 bytes"), "{seen:?}");
}
