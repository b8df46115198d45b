//! `--gdb` (issue 12, item 1): real gdb in batch mode attaches to a CPL 0
//! guest built with debug information, breaks on a named function, reads
//! a local and a global, single-steps and sees the guest's exit status;
//! the same at CPL 3 through the trap path (software breakpoints and
//! steps); at both levels `watch` on a global reports every write as a
//! hardware watchpoint's (the stub steps and compares: the host delivers
//! no data breakpoint), together with breakpoints and Ctrl-C, and read
//! watchpoints are refused; the stub listens on loopback only by default;
//! the tender stays confined while attached. gdb checks are skipped, with
//! a message, where gdb is not installed (`.ci/run` installs it).

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};

use common::{cpl0_copy_of, have_gdb, tender_bin};

/// A `#[test]` at each level for `check(image)`: the CPL 0 copy of
/// `gdbprobe` and the image itself (CPL 3); skipped without gdb.
macro_rules! at_both_levels {
    ($check:ident: $cpl0:ident, $cpl3:ident) => {
        #[test]
        fn $cpl0() {
            if have_gdb() {
                $check(&cpl0_copy_of(&gdbprobe_debug()));
            }
        }

        #[test]
        fn $cpl3() {
            if have_gdb() {
                $check(&gdbprobe_debug());
            }
        }
    };
}

/// `gdbprobe` built with debug info, so that gdb finds its function,
/// local and global by name.
fn gdbprobe_debug() -> PathBuf {
    common::probe_with_debug_info("gdbprobe")
}

/// A port of its own for each tender of this test process.
fn port() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    20000 + (std::process::id() % 20000) as u16 + NEXT.fetch_add(1, Ordering::Relaxed) * 7
}

/// A tender started with `--gdb` on `port`, once it listens; its stderr
/// line saying where.
fn start_tender(port: u16, image: &std::path::Path) -> (Child, String) {
    start_tender_with(port, image, &[])
}

/// [`start_tender`] with guest arguments.
fn start_tender_with(port: u16, image: &std::path::Path, args: &[&str]) -> (Child, String) {
    let mut child = Command::new(tender_bin())
        .arg("--gdb")
        .arg(format!("--gdb-port={port}"))
        .arg(image)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the tender");
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr
        .read_line(&mut line)
        .expect("the tender says where it listens");
    // Drain the rest in the background, so the tender never blocks on it.
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    (child, line)
}

/// `gdb -batch` against the tender on `port`, with `commands`; its stdout.
fn gdb(image: &std::path::Path, port: u16, commands: &[&str]) -> String {
    gdb_output(image, port, commands).0
}

/// As [`gdb`]: its stdout and its stderr (where its errors go).
fn gdb_output(image: &std::path::Path, port: u16, commands: &[&str]) -> (String, String) {
    let mut command = Command::new("gdb");
    command.args(["-batch", "-nx", "-ex", "set pagination off"]);
    command
        .arg("-ex")
        .arg(format!("target remote 127.0.0.1:{port}"));
    for c in commands {
        command.arg("-ex").arg(c);
    }
    let out = command.arg(image).output().expect("run gdb");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let errors = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!("gdb said:\n{text}\n{errors}");
    (text, errors)
}

#[test]
fn gdb_breaks_reads_steps_and_sees_the_exit_at_cpl0() {
    if !have_gdb() {
        return;
    }
    let image = cpl0_copy_of(&gdbprobe_debug());
    let port = port();
    let (mut tender, line) = start_tender(port, &image);
    assert!(
        line.contains(&format!(
            "gdb: waiting for a connection on 127.0.0.1:{port}"
        )),
        "{line}"
    );
    let out = gdb(
        &gdbprobe_debug(),
        port,
        &[
            "break gdbprobe::accumulate",
            "continue",
            "print step",
            "print gdbprobe::TOTAL",
            "continue",
            "print step",
            "print gdbprobe::TOTAL",
            "stepi",
            "stepi",
            "info registers rip",
            "delete",
            "continue",
        ],
    );
    let status = tender.wait().expect("the tender ends");
    assert!(out.contains("Breakpoint 1, gdbprobe::accumulate"), "{out}");
    assert!(out.contains("$1 = 1\n"), "{out}");
    assert!(out.contains("$2 = 0\n"), "{out}");
    assert!(out.contains("$3 = 2\n"), "{out}");
    assert!(out.contains("$4 = 2\n"), "{out}");
    assert!(out.contains("rip "), "{out}");
    assert!(out.contains("exited with code 036"), "{out}");
    assert_eq!(status.code(), Some(30));
}

/// The five writes of `accumulate` to `TOTAL`, as gdb reports them.
const TOTAL_WRITES: [(u64, u64); 5] = [(0, 2), (2, 6), (6, 12), (12, 20), (20, 30)];

/// gdb's report of each write in `writes` is in `out`, in order.
fn assert_watch_hits(out: &str, writes: &[(u64, u64)]) {
    let mut rest = out;
    for (old, new) in writes {
        let report = format!("Old value = {old}\nNew value = {new}\n");
        let at = rest
            .find(&report)
            .unwrap_or_else(|| panic!("no {report:?} (in order) in\n{out}"));
        rest = &rest[at + report.len()..];
    }
}

/// `watch TOTAL`, then a continue per write: the stub steps the guest and
/// compares (the host delivers no data breakpoint), gdb sees each write
/// as a hardware watchpoint's, then the exit.
fn watch_sees_every_write(image: &std::path::Path) {
    let mut commands = vec![
        // Text the host maps read-only is writable for the debugger
        // (the entry point's first byte has run already).
        "set {unsigned char}0x100000 = 0x90",
        "print/x {unsigned char}0x100000",
        // At the entry point (no debug information) gdb parses C, where
        // `gdbprobe::TOTAL` is a "constant value" it will not watch.
        "set language rust",
        "watch gdbprobe::TOTAL",
    ];
    commands.extend(["continue"; 6]);
    let out = to_the_usual_end(image, &[], &commands);
    assert!(out.contains("$1 = 0x90"), "{out}");
    assert!(
        out.contains("Hardware watchpoint 1: gdbprobe::TOTAL"),
        "{out}"
    );
    assert_eq!(
        out.matches("Hardware watchpoint 1: gdbprobe::TOTAL")
            .count(),
        6,
        "{out}"
    );
    assert_watch_hits(&out, &TOTAL_WRITES);
}

at_both_levels!(
    watch_sees_every_write:
    a_watchpoint_at_cpl0_fires_on_every_write,
    a_watchpoint_at_cpl3_fires_on_every_write
);

/// A breakpoint set together with a watchpoint still stops the stepped
/// continue: breakpoint (step 1), write 0 -> 2, breakpoint (step 2),
/// write 2 -> 6; with both deleted the guest runs to its end.
fn breakpoint_and_watchpoint_both_stop(image: &std::path::Path) {
    let out = to_the_usual_end(
        image,
        &[],
        &[
            "break gdbprobe::accumulate",
            "set language rust",
            "watch gdbprobe::TOTAL",
            "continue",
            "print step",
            "continue",
            "continue",
            "print step",
            "continue",
            "delete",
            "continue",
        ],
    );
    let stops: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("Breakpoint 1, ") || l.starts_with("Old value = "))
        .map(|l| {
            if l.starts_with("Breakpoint") {
                "break"
            } else {
                "watch"
            }
        })
        .collect();
    assert_eq!(stops, ["break", "watch", "break", "watch"], "{out}");
    assert!(out.contains("$1 = 1\n"), "{out}");
    assert!(out.contains("$2 = 2\n"), "{out}");
    assert_watch_hits(&out, &TOTAL_WRITES[..2]);
}

at_both_levels!(
    breakpoint_and_watchpoint_both_stop:
    a_breakpoint_still_stops_while_a_watchpoint_is_set_at_cpl0,
    a_breakpoint_still_stops_while_a_watchpoint_is_set_at_cpl3
);

/// A read watchpoint cannot be seen by comparing bytes: the stub refuses
/// it (gdb's `Z3`), gdb says so and does not resume; once it is deleted
/// the guest runs to its end. The same for an access watchpoint (`Z4`).
fn read_watchpoints_are_refused(image: &std::path::Path) {
    let port = port();
    let (mut tender, _) = start_tender(port, image);
    let (out, errors) = gdb_output(
        &gdbprobe_debug(),
        port,
        &[
            "set language rust",
            "rwatch gdbprobe::TOTAL",
            "continue",
            "delete",
            "awatch gdbprobe::TOTAL",
            "continue",
            "delete",
            "continue",
        ],
    );
    let status = tender.wait().expect("the tender ends");
    assert!(
        out.contains("Hardware read watchpoint 1: gdbprobe::TOTAL"),
        "{out}"
    );
    assert!(
        out.contains("Hardware access (read/write) watchpoint 2: gdbprobe::TOTAL"),
        "{out}"
    );
    assert!(
        errors.contains("Could not insert hardware watchpoint 1."),
        "{errors}"
    );
    assert!(
        errors.contains("Could not insert hardware watchpoint 2."),
        "{errors}"
    );
    assert!(!out.contains("Value = "), "{out}");
    assert!(out.contains("exited with code 036"), "{out}");
    assert_eq!(status.code(), Some(30));
}

at_both_levels!(
    read_watchpoints_are_refused:
    a_read_watchpoint_is_refused_at_cpl0,
    a_read_watchpoint_is_refused_at_cpl3
);

/// The listening socket is on 127.0.0.1 (`/proc/net/tcp`: 0100007F), and
/// the tender is confined once gdb lets the guest run.
#[test]
fn the_stub_listens_on_loopback_and_stays_confined() {
    let image = cpl0_copy_of(&gdbprobe_debug());
    let port = port();
    let (mut tender, _) = start_tender(port, &image);
    let tcp = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let listening = format!("0100007F:{port:04X} 00000000:0000 0A");
    assert!(tcp.contains(&listening), "{listening} not in\n{tcp}");
    if have_gdb() {
        // Stop at a breakpoint and read the tender's status while gdb holds it.
        let pid = tender.id();
        let mut gdb = Command::new("gdb")
            .args(["-batch", "-nx"])
            .arg("-ex")
            .arg(format!("target remote 127.0.0.1:{port}"))
            .args(["-ex", "break gdbprobe::accumulate", "-ex", "continue"])
            .args(["-ex", "shell sleep 1", "-ex", "kill"])
            .arg(gdbprobe_debug())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run gdb");
        let mut stdout = BufReader::new(gdb.stdout.take().unwrap());
        let mut line = String::new();
        while stdout.read_line(&mut line).is_ok_and(|n| n > 0) {
            if line.contains("Breakpoint 1, ") {
                break;
            }
        }
        assert!(line.contains("Breakpoint 1, "), "{line}");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        assert!(status.contains("\nSeccomp:\t2\n"), "{status}");
        let _ = gdb.wait();
    }
    let _ = tender.kill();
    let _ = tender.wait();
}

/// At CPL 3 (the probe as built, with our note) the stub works through
/// the trap path: `break` patches an `int3`, the hit is a #BP trap;
/// `stepi` is RFLAGS.TF; continuing from a breakpoint steps over it; the
/// tender is confined while gdb holds the guest.
#[test]
fn gdb_breaks_reads_steps_and_sees_the_exit_at_cpl3() {
    if !have_gdb() {
        return;
    }
    let image = gdbprobe_debug();
    let port = port();
    let (mut tender, line) = start_tender(port, &image);
    assert!(
        line.contains(&format!(
            "gdb: waiting for a connection on 127.0.0.1:{port}"
        )),
        "{line}"
    );
    let pid = tender.id();
    let out = gdb(
        &image,
        port,
        &[
            "break gdbprobe::accumulate",
            "continue",
            "print step",
            "print gdbprobe::TOTAL",
            &format!("shell grep Seccomp: /proc/{pid}/status"),
            "continue",
            "print step",
            "print gdbprobe::TOTAL",
            "info registers rip",
            "stepi",
            "info registers rip",
            "stepi",
            "info registers rip",
            "delete",
            "continue",
        ],
    );
    let status = tender.wait().expect("the tender ends");
    assert!(out.contains("Breakpoint 1, gdbprobe::accumulate"), "{out}");
    assert!(out.contains("$1 = 1\n"), "{out}");
    assert!(out.contains("$2 = 0\n"), "{out}");
    assert!(out.contains("Seccomp:\t2"), "{out}");
    assert!(out.contains("$3 = 2\n"), "{out}");
    assert!(out.contains("$4 = 2\n"), "{out}");
    // Each stepi moves RIP.
    let rips: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("rip "))
        .map(|l| l.split_whitespace().nth(1).unwrap_or(""))
        .collect();
    assert_eq!(rips.len(), 3, "{out}");
    assert!(rips[0] != rips[1] && rips[1] != rips[2], "{out}");
    assert!(out.contains("exited with code 036"), "{out}");
    assert_eq!(status.code(), Some(30));
}

/// At CPL 3 the host drops the step's #DB after an `out`: a `stepi` over
/// a hypercall (the console's PUTS at the guest's exit) ends at the
/// hypercall's exit, on the next instruction, and the next `stepi` goes on
/// from there. The PUTS `out`s are found with objdump (skipped without).
#[test]
fn stepi_over_a_hypercall_at_cpl3_ends_after_the_out() {
    if !have_gdb() {
        return;
    }
    let image = gdbprobe_debug();
    let Ok(dump) = Command::new("objdump").arg("-d").arg(&image).output() else {
        eprintln!("objdump is not installed: skipped");
        return;
    };
    // `mov $0x502,%dx` (PUTS) then `out %eax,(%dx)`: the out's address.
    let dump = String::from_utf8_lossy(&dump.stdout);
    let lines: Vec<&str> = dump.lines().collect();
    let outs: Vec<u64> = lines
        .windows(2)
        .filter(|w| w[0].contains("mov    $0x502,%dx") && w[1].contains("out    %eax,(%dx)"))
        .filter_map(|w| u64::from_str_radix(w[1].trim().split(':').next()?, 16).ok())
        .collect();
    assert!(!outs.is_empty(), "no PUTS in\n{dump}");
    let port = port();
    let (mut tender, _) = start_tender(port, &image);
    let mut commands: Vec<String> = outs.iter().map(|a| format!("break *0x{a:x}")).collect();
    commands.extend(
        [
            "continue",
            "delete",
            "info registers rip",
            "stepi",
            "info registers rip",
            "stepi",
            "info registers rip",
            "continue",
        ]
        .map(String::from),
    );
    let commands: Vec<&str> = commands.iter().map(String::as_str).collect();
    let out = gdb(&image, port, &commands);
    let status = tender.wait().expect("the tender ends");
    let rips: Vec<u64> = out
        .lines()
        .filter(|l| l.starts_with("rip "))
        .filter_map(|l| {
            u64::from_str_radix(l.split_whitespace().nth(1)?.trim_start_matches("0x"), 16).ok()
        })
        .collect();
    assert_eq!(rips.len(), 3, "{out}");
    assert!(outs.contains(&rips[0]), "{out}");
    assert_eq!(rips[1], rips[0] + 1, "{out}");
    assert!(rips[2] > rips[1], "{out}");
    assert!(out.contains("exited with code 036"), "{out}");
    assert_eq!(status.code(), Some(30));
}

/// gdb, started against a tender running `image` with the guest argument
/// `mode`, continues the guest, gets a SIGINT (as a Ctrl-C at its prompt
/// sends 0x03) after `after`, then runs `commands`. gdb's stdout, the
/// tender's status and its stderr.
fn ctrl_c(
    image: &std::path::Path,
    mode: &str,
    after: std::time::Duration,
    commands: &[&str],
) -> (String, std::process::ExitStatus, String) {
    let port = port();
    let mut tender = Command::new(tender_bin())
        .arg("--gdb")
        .arg(format!("--gdb-port={port}"))
        .arg(image)
        .arg(mode)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the tender");
    let mut stderr = BufReader::new(tender.stderr.take().unwrap());
    let mut line = String::new();
    stderr
        .read_line(&mut line)
        .expect("the tender says where it listens");
    let mut gdb = Command::new("gdb");
    gdb.args(["-batch", "-nx"])
        .arg("-ex")
        .arg(format!("target remote 127.0.0.1:{port}"))
        .args(["-ex", "continue"]);
    for c in commands {
        gdb.arg("-ex").arg(c);
    }
    let mut gdb = gdb
        .arg(gdbprobe_debug())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run gdb");
    std::thread::sleep(after);
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(gdb.id() as libc::pid_t, libc::SIGINT) };
    // A stop that never comes must fail the test, not hang it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while gdb.try_wait().expect("wait for gdb").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = gdb.kill();
            let _ = tender.kill();
            panic!("gdb did not stop the guest and end within 30 s of its Ctrl-C");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = gdb.wait_with_output().expect("gdb ends");
    let errors = String::from_utf8_lossy(&out.stderr).into_owned();
    let out = String::from_utf8_lossy(&out.stdout).into_owned();
    let status = tender.wait().expect("the tender ends");
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut stderr, &mut rest);
    eprintln!("gdb said:\n{out}\n{errors}\ntender said:\n{rest}");
    (out, status, rest)
}

/// gdb's Ctrl-C stops a guest that never exits; gdb reads its counter;
/// `kill` ends the tender with exit 1.
fn ctrl_c_interrupts_a_spinning_guest_and_kill_ends_it(image: &std::path::Path) {
    let (out, status, stderr) = ctrl_c(
        image,
        "spin",
        std::time::Duration::from_secs(2),
        &["print gdbprobe::SPINS > 0", "print $pc >= 0x100000", "kill"],
    );
    assert!(out.contains("Program received signal SIGINT"), "{out}");
    assert!(out.contains("$1 = true"), "{out}");
    assert!(out.contains("$2 = true"), "{out}");
    assert!(
        stderr.contains("gdb: guest killed by the debugger"),
        "{stderr}"
    );
    assert_eq!(status.code(), Some(1));
}

at_both_levels!(
    ctrl_c_interrupts_a_spinning_guest_and_kill_ends_it:
    ctrl_c_interrupts_a_spinning_guest_and_kill_ends_it_at_cpl0,
    ctrl_c_interrupts_a_spinning_guest_and_kill_ends_it_at_cpl3
);

/// A guest that yields for an hour: the tender waits in its POLL when
/// gdb's Ctrl-C comes. The wait ends early (as a signal ends upstream's),
/// the guest stops right after its POLL's `out` (the instruction before
/// RIP is that `out`), and goes on when gdb lets it: it counts the early
/// wake-up and comes back to its POLL, where a breakpoint stops it.
fn ctrl_c_interrupts_a_guest_waiting_in_poll(image: &std::path::Path) {
    let (out, status, stderr) = ctrl_c(
        image,
        "idle",
        std::time::Duration::from_secs(2),
        &[
            "print gdbprobe::IDLES",
            "x/i $pc - 1",
            "tbreak *($pc - 1)",
            "continue",
            "print gdbprobe::IDLES",
            "kill",
        ],
    );
    assert!(out.contains("Program received signal SIGINT"), "{out}");
    assert!(out.contains("$1 = 0\n"), "{out}");
    assert!(out.contains("Temporary breakpoint 1, "), "{out}");
    assert!(out.contains("$2 = 1\n"), "{out}");
    let before = out
        .lines()
        .find(|l| l.trim_start().starts_with("0x") && l.contains(">:\t"))
        .unwrap_or("");
    assert!(
        before.contains("out") && before.contains("%eax,(%dx)"),
        "{out}"
    );
    assert!(
        stderr.contains("gdb: guest killed by the debugger"),
        "{stderr}"
    );
    assert_eq!(status.code(), Some(1));
}

at_both_levels!(
    ctrl_c_interrupts_a_guest_waiting_in_poll:
    ctrl_c_interrupts_a_guest_waiting_in_poll_at_cpl0,
    ctrl_c_interrupts_a_guest_waiting_in_poll_at_cpl3
);

/// A tender with `--gdb` runs `image` with `args`; gdb runs `commands`
/// against it; the guest's end must be the usual one (exit 30, gdb's
/// `036`). gdb's output.
fn to_the_usual_end(image: &std::path::Path, args: &[&str], commands: &[&str]) -> String {
    let port = port();
    let (mut tender, _) = start_tender_with(port, image, args);
    let out = gdb(&gdbprobe_debug(), port, commands);
    let status = tender.wait().expect("the tender ends");
    assert!(out.contains("exited with code 036"), "{out}");
    assert_eq!(status.code(), Some(30), "{out}");
    out
}

/// gdb stops the guest (with `args`) at its first `accumulate`, runs
/// `commands` there, deletes its breakpoints and lets the guest run to
/// its usual end ([`to_the_usual_end`]). gdb's output.
fn at_first_accumulate(image: &std::path::Path, args: &[&str], commands: &[&str]) -> String {
    let mut all = vec!["break gdbprobe::accumulate", "continue"];
    all.extend_from_slice(commands);
    all.extend_from_slice(&["delete", "continue"]);
    to_the_usual_end(image, args, &all)
}

/// gdb reads the FS and GS bases and writes FS's: the value reaches the
/// vCPU (read back after a step, which re-reads every register from
/// KVM); the guest's own goes back and it ends as without gdb.
fn fs_base_is_read_and_written(image: &std::path::Path) {
    let out = at_first_accumulate(
        image,
        &[],
        &[
            "print/x $fs_base",
            "print/x $gs_base",
            "set $fs_base = 0x123456789000",
            "stepi",
            "print/x $fs_base",
            "set $fs_base = $1",
            "stepi",
            "print/x $fs_base == $1",
        ],
    );
    assert!(out.contains("$1 = 0x"), "{out}");
    assert!(out.contains("$2 = 0x"), "{out}");
    assert!(out.contains("$3 = 0x123456789000\n"), "{out}");
    assert!(out.contains("$4 = 0x1\n"), "{out}");
}

at_both_levels!(
    fs_base_is_read_and_written:
    fs_base_is_read_and_written_at_cpl0,
    fs_base_is_read_and_written_at_cpl3
);

/// gdb reads the x87 and SSE registers and writes one: the x87 control
/// word is the vCPU's reset value, and an XMM register gdb
/// wrote reaches the vCPU (read back after a step, which reads every
/// register from KVM again). The guest generates no SSE code, so the
/// write does not change its course.
fn fpu_registers_are_read_and_written(image: &std::path::Path) {
    let out = at_first_accumulate(
        image,
        &[],
        &[
            "print/x $fctrl",
            "set $xmm7.v2_int64[1] = 0x1122334455667788",
            "stepi",
            "print/x $xmm7.v2_int64",
        ],
    );
    assert!(out.contains("$1 = 0x37f\n"), "{out}");
    assert!(out.contains("$2 = [0x0, 0x1122334455667788]\n"), "{out}");
}

at_both_levels!(
    fpu_registers_are_read_and_written:
    fpu_registers_are_read_and_written_at_cpl0,
    fpu_registers_are_read_and_written_at_cpl3
);

/// A CPL 3 guest's own SSE state: `gdbprobe sse` puts a mark in XMM15
/// before its first `accumulate`; gdb reads it there. (Not at CPL 0: SSE
/// there ends the VM on this host.)
#[test]
fn gdb_reads_the_guests_own_sse_register_at_cpl3() {
    if !have_gdb() {
        return;
    }
    let out = at_first_accumulate(
        &gdbprobe_debug(),
        &["sse"],
        &["print/x $xmm15.v2_int64[0]", "print/x $mxcsr"],
    );
    assert!(out.contains("$1 = 0x5eedf00dcafe0042\n"), "{out}");
    // What the guest's `stmxcsr` gives here; `KVM_GET_FPU` alone says 0.
    assert!(out.contains("$2 = 0x1f80\n"), "{out}");
}

/// A debugger client that breaks the protocol while the guest runs: the
/// tender never dies by its own sandbox (closing the connection is not on
/// the vCPU thread's list). `D` without a Ctrl-C first detaches and the
/// guest runs on, as it does when the client just goes away; a NACK
/// (`-`), which the stub cannot answer, ends the tender with one `gdb:`
/// line and exit 1.
fn a_rude_client_never_kills_the_tender_by_seccomp(image: &std::path::Path) {
    use std::io::Write;
    // An empty write: the client closes the connection instead.
    for (rude, ends) in [(&b"$D#44"[..], false), (&b"-"[..], true), (&b""[..], false)] {
        let port = port();
        let mut tender = Command::new(tender_bin())
            .arg("--gdb")
            .arg(format!("--gdb-port={port}"))
            .arg(image)
            .arg("spin")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the tender");
        let mut stderr = BufReader::new(tender.stderr.take().unwrap());
        let mut line = String::new();
        stderr.read_line(&mut line).expect("the tender listens");
        let mut client =
            std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to the stub");
        // Continue (the checksum of `c` is 0x63), then the rude bytes
        // while the guest runs.
        client.write_all(b"$c#63").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(300));
        if rude.is_empty() {
            drop(client);
        } else {
            client.write_all(rude).unwrap();
        }
        // The NACK's end may take a loaded machine a while; a tender that
        // runs on is seen after a second.
        let wait = std::time::Duration::from_secs(if ends { 10 } else { 1 });
        let deadline = std::time::Instant::now() + wait;
        let mut status = None;
        while status.is_none() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(50));
            status = tender.try_wait().expect("the tender's status");
        }
        let _ = tender.kill();
        let status = status.or_else(|| tender.wait().ok());
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut rest);
        assert!(!rest.contains("seccomp"), "{rest}");
        if ends {
            assert!(rest.contains("tender: gdb: "), "{rest}");
            assert_eq!(status.and_then(|s| s.code()), Some(1), "{rest}");
        } else {
            // Still running a second later (killed above, by signal).
            assert_eq!(status.and_then(|s| s.code()), None, "{rest}");
        }
    }
}

at_both_levels!(
    a_rude_client_never_kills_the_tender_by_seccomp:
    a_rude_client_never_kills_the_tender_by_seccomp_at_cpl0,
    a_rude_client_never_kills_the_tender_by_seccomp_at_cpl3
);

/// `detach` at a breakpoint of a CPL 3 guest: the `int3`s go, the guest
/// runs on without the debugger and ends with its own status.
#[test]
fn detach_at_cpl3_lets_the_guest_run_to_its_end() {
    if !have_gdb() {
        return;
    }
    let image = gdbprobe_debug();
    let port = port();
    let (mut tender, _) = start_tender(port, &image);
    let out = gdb(
        &image,
        port,
        &["break gdbprobe::accumulate", "continue", "detach"],
    );
    let status = tender.wait().expect("the tender ends");
    assert!(out.contains("Breakpoint 1, gdbprobe::accumulate"), "{out}");
    assert!(out.contains("(process 1) detached]"), "{out}");
    assert_eq!(status.code(), Some(30));
}

/// Ctrl-C still stops a continue the stub carries out as steps for a
/// watchpoint: the probe spins after its five writes, with `TOTAL`
/// watched; gdb's Ctrl-C stops it (the stub reads the connection between
/// steps), gdb reads the spin counter, `kill` ends the tender. The stats
/// line shows the stub stepped.
fn ctrl_c_interrupts_a_watched_continue(image: &std::path::Path) {
    let port = port();
    let mut tender = Command::new(tender_bin())
        .arg("--gdb")
        .arg(format!("--gdb-port={port}"))
        .arg(image)
        .arg("spin")
        .env("TENDER_STATS", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the tender");
    let mut stderr = BufReader::new(tender.stderr.take().unwrap());
    let mut line = String::new();
    stderr
        .read_line(&mut line)
        .expect("the tender says where it listens");
    let mut command = Command::new("gdb");
    command
        .args(["-batch", "-nx"])
        .arg("-ex")
        .arg(format!("target remote 127.0.0.1:{port}"))
        .args(["-ex", "set language rust", "-ex", "watch gdbprobe::TOTAL"]);
    for _ in 0..6 {
        command.args(["-ex", "continue"]);
    }
    let mut gdb = command
        .args([
            "-ex",
            "print gdbprobe::SPINS > 0",
            // In the guest's text, not the tender's trap trampoline
            // (0xA000), also after a step from there.
            "-ex",
            "print $pc >= 0x100000",
            "-ex",
            "stepi",
            "-ex",
            "print $pc >= 0x100000",
            "-ex",
            "kill",
        ])
        .arg(gdbprobe_debug())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run gdb");
    let mut stdout = BufReader::new(gdb.stdout.take().unwrap());
    let mut out = String::new();
    // The fifth write reported, the last continue steps the spin loop.
    while !out.contains("New value = 30") {
        if stdout.read_line(&mut out).unwrap_or(0) == 0 {
            panic!("gdb ended before the fifth write:\n{out}");
        }
    }
    std::thread::sleep(std::time::Duration::from_secs(1));
    let gdb_pid = libc::pid_t::try_from(gdb.id()).unwrap();
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(gdb_pid, libc::SIGINT) };
    let _ = std::io::Read::read_to_string(&mut stdout, &mut out);
    let _ = gdb.wait();
    // gdb is gone: a tender still stepping its guest is a failure, not a hang.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        if let Some(status) = tender.try_wait().expect("the tender's status") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = tender.kill();
            panic!("the tender outlived gdb by 20 s; gdb said:\n{out}");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut stderr, &mut rest);
    eprintln!("gdb said:\n{out}\ntender said:\n{rest}");
    assert!(out.contains("Program received signal SIGINT"), "{out}");
    assert!(out.contains("$1 = true"), "{out}");
    assert!(out.contains("$2 = true"), "{out}");
    assert!(out.contains("$3 = true"), "{out}");
    assert!(rest.contains("gdb: guest killed by the debugger"), "{rest}");
    let steps: u64 = rest
        .split_whitespace()
        .find_map(|w| w.strip_prefix("gdb_watch_steps="))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no gdb_watch_steps in {rest}"));
    assert!(steps > 1000, "{rest}");
    assert_eq!(status.code(), Some(1));
}

at_both_levels!(
    ctrl_c_interrupts_a_watched_continue:
    ctrl_c_interrupts_a_watched_continue_at_cpl0,
    ctrl_c_interrupts_a_watched_continue_at_cpl3
);
