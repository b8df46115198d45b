//! Guests that break the rules (§5, §6.6, §8, §12): each ends with the
//! documented message and exit code, and the tender is never the one that
//! crashes.

mod common;
#[path = "common/hostile_script.rs"]
mod hostile_script;

use std::time::{Duration, Instant};

use common::{cpl0_copy, guest, tender, Run};
use hostile_script::{assert_no_crash, at_both_levels, run_script, step_words};
use hvt_abi::hypercall::{exit, name, nr, Walltime, HALT_COOKIE_MAX, PIO_BASE, RING_KICK_PIO_BASE};
use hvt_abi::layout::BOOT_INFO_BASE;

/// Guest memory of every run here, as `--mem=64` sets it.
const MEM: u64 = 64 << 20;

/// The tender's message for a refused access to `port`.
fn port_refused(port: u16) -> String {
    format!("Invalid guest port access: port={port:#x}")
}

/// The tender's message for a guest range it refused.
fn access_refused(gpa: u64, size: impl std::fmt::Display) -> String {
    format!("Invalid guest access: gpa={gpa:#x}, sz={size}")
}

fn hostile(image: &std::path::Path, action: &str) -> Run {
    let mut argv = vec![
        format!("--mem={}", MEM >> 20).into(),
        image.as_os_str().to_owned(),
    ];
    argv.extend(action.split(' ').map(Into::into));
    let run = tender(argv);
    assert!(
        !run.stderr.contains("panicked"),
        "tender panicked: {}",
        run.stderr
    );
    assert!(
        !run.stdout.contains("survived"),
        "guest was not stopped: {}",
        run.stdout
    );
    run
}

/// Stopped by the tender with exit 1 and `message` on stderr, at both
/// privilege levels.
fn assert_tender_stops(action: &str, message: &str) {
    for image in [guest("hostile"), cpl0_copy("hostile")] {
        let run = hostile(&image, action);
        assert_eq!(run.code, 1, "{action}: {}", run.output());
        assert!(
            run.stderr.contains(message),
            "{action}: expected '{message}' in {}",
            run.stderr
        );
    }
}

#[test]
fn port_below_the_hypercall_range() {
    assert_tender_stops("port-low", &port_refused(PIO_BASE - 1));
}

#[test]
fn hypercall_number_9_is_past_the_range() {
    assert_tender_stops("hc9", &port_refused(PIO_BASE + nr::MAX));
}

#[test]
fn ring_doorbell_without_a_ring() {
    assert_tender_stops("port-ring", &port_refused(RING_KICK_PIO_BASE));
}

/// The trap path's port (§12.4) answers only the tender's trampoline: a
/// guest's own `out` there is refused like any other port, at CPL 3 too.
#[test]
fn the_trap_port_is_refused_to_the_guest() {
    assert_tender_stops("port-trap", &port_refused(hvt_abi::layout::TRAP_PORT));
}

#[test]
fn hypercall_number_0_is_invalid() {
    assert_tender_stops("hc0", "Invalid guest hypercall: num=0");
}

#[test]
fn in_instead_of_out() {
    assert_tender_stops("in", &port_refused(PIO_BASE + nr::WALLTIME));
}

#[test]
fn eight_and_sixteen_bit_outs() {
    assert_tender_stops("out8", &port_refused(PIO_BASE + nr::WALLTIME));
    assert_tender_stops("out16", &port_refused(PIO_BASE + nr::WALLTIME));
}

#[test]
fn argument_past_the_end_of_memory() {
    // WALLTIME's argument one page past the end of memory.
    let size = size_of::<Walltime>();
    assert_tender_stops("gpa-oob", &access_refused(MEM + 0x1000, size));
}

#[test]
fn argument_ending_exactly_at_the_top_of_memory() {
    let size = size_of::<Walltime>();
    assert_tender_stops("gpa-top", &access_refused(MEM - size as u64, size));
}

#[test]
fn results_written_into_guest_code_are_refused_not_a_crash() {
    // The tender's own mapping of guest code is read-only (§2): writing a
    // WALLTIME result there must be an invalid access, never a SIGSEGV.
    assert_tender_stops(
        "gpa-text",
        &format!(
            "hypercall {}: Invalid guest access: gpa=0x10",
            name(nr::WALLTIME)
        ),
    );
}

#[test]
fn puts_with_a_huge_length() {
    let puts = name(nr::PUTS);
    assert_tender_stops(
        "puts-huge",
        &format!("hypercall {puts}: Invalid guest access: gpa=0x100000"),
    );
    // The guest names 32 bytes from 16 below the top.
    assert_tender_stops(
        "puts-past-top",
        &format!("hypercall {puts}: {}", access_refused(MEM - 16, 32)),
    );
}

#[test]
fn halt_with_a_cookie_near_the_top() {
    // The guest's cookie lies 100 bytes below the top.
    assert_tender_stops(
        "halt-cookie",
        &format!(
            "hypercall {}: {}",
            name(nr::HALT),
            access_refused(MEM - 100, HALT_COOKIE_MAX)
        ),
    );
}

#[test]
fn write_to_guest_code_is_a_translation_fault() {
    assert_tender_stops("write-text", "KVM: host/guest translation fault: rip=0x");
}

#[test]
fn hlt_at_cpl0_is_an_unhandled_exit() {
    let run = hostile(&cpl0_copy("hostile"), "hlt");
    assert_eq!(run.code, 1, "{}", run.output());
    assert!(
        run.stderr
            .contains("KVM: unhandled exit: exit_reason=0x5, rip=0x"),
        "{}",
        run.stderr
    );
}

#[test]
fn triple_fault_at_cpl0_is_an_unhandled_exit() {
    let run = hostile(&cpl0_copy("hostile"), "triple");
    assert_eq!(run.code, 1, "{}", run.output());
    assert!(
        run.stderr
            .contains("KVM: unhandled exit: exit_reason=0x8, rip=0x"),
        "{}",
        run.stderr
    );
}

/// At CPL 3 `hlt` (privileged: #GP(0)) and `ud2` (#UD) reach the trap
/// path (§12.4): one line with the vector, error code, CR2, the guest's
/// frame and registers, exit 255.
#[test]
fn faults_at_cpl3_report_vector_and_registers_and_exit_255() {
    for (action, vector) in [
        ("hlt", "vector 13 (#GP) error=0x0 "),
        ("triple", "vector 6 (#UD) error=0x0 "),
    ] {
        let run = hostile(&guest("hostile"), action);
        assert_eq!(run.code, exit::ABORT, "{action}: {}", run.output());
        let line = run
            .stderr
            .lines()
            .find(|l| l.starts_with("tender: Guest fault: "))
            .unwrap_or_else(|| panic!("{action}: {}", run.stderr));
        assert!(line.contains(vector), "{line}");
        for field in [
            " rip=0x10",
            " rsp=0x",
            " rflags=0x",
            " cs=0xb ss=0x13 ",
            " rax=0x",
            " r15=0x",
        ] {
            assert!(line.contains(field), "{field}: {line}");
        }
        assert_eq!(
            run.stderr
                .lines()
                .filter(|l| l.contains("Guest fault"))
                .count(),
            1
        );
    }
}

#[test]
fn exit_status_is_its_low_byte() {
    for (status, code) in [
        ("0", 0),
        ("42", 42),
        ("255", 255),
        ("256", 0),
        ("300", 44),
        ("-1", 255),
    ] {
        let run = hostile(&guest("hostile"), &format!("exit {status}"));
        assert_eq!(run.code, code, "exit {status}: {}", run.output());
        assert!(
            run.stdout
                .contains(&format!("Solo5: solo5_exit({status}) called")),
            "{}",
            run.stdout
        );
    }
}

#[test]
fn abort_and_panic_exit_255() {
    let run = hostile(&guest("hostile"), "abort");
    assert_eq!(run.code, exit::ABORT, "{}", run.output());
    assert!(
        run.stdout.contains("Solo5: solo5_abort() called"),
        "{}",
        run.stdout
    );
    let run = hostile(&guest("hostile"), "panic");
    assert_eq!(run.code, exit::ABORT, "{}", run.output());
    assert!(
        run.stdout.contains("Solo5: ABORT: panicked at"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("hostile guest panics on request"),
        "{}",
        run.stdout
    );
}

// ---------------------------------------------------------------------------
// Scripted hostile guests (`guest/probes/src/bin/hostile-lib/script.rs`):
// the command line is a list of steps, each printing `hostile: STEP => ...`
// when it returns. `tests/hostile_boundaries.rs` has every hypercall at its
// boundaries; here are guest stores, faults, port I/O and guests that are
// legal but unfriendly.

/// [`common::assert_guest_fault`], and the script did not run to its end.
fn assert_guest_fault(run: &Run, cpl3: bool, what: &str) {
    common::assert_guest_fault(run, cpl3, what);
    assert!(
        !run.stdout.contains("script done"),
        "{what}: {}",
        run.output()
    );
}

#[test]
fn guest_stores_and_loads_where_its_page_tables_forbid_them_fault() {
    // (step, the faulting address): the boot info page and the TSS are
    // read-only in the guest's page tables (§3.2, §12.3), page 0 and the
    // page tables are not mapped, nor is anything past the allocation.
    let cases = [
        ("w8:bi:1", 0x10000),
        ("w64:bi+8:1", 0x10008),
        ("w8:0x18000:1", 0x18000),
        ("w8:0:1", 0),
        ("w8:0x2000:1", 0x2000),
        ("w8:top+0x1000:1", MEM + 0x1000),
        ("w8:0x400000000:1", 0x4_0000_0000),
        ("r64:0", 0),
        ("r64:top+0x1000", MEM + 0x1000),
    ];
    for (image, cpl3) in at_both_levels("hostile") {
        for (step, cr2) in cases {
            let run = run_script(&image, MEM, &[step]);
            assert_guest_fault(&run, cpl3, step);
            if cpl3 {
                assert!(
                    run.stderr.contains(&format!(" cr2={cr2:#x} ")),
                    "{step}: {}",
                    run.stderr
                );
            }
        }
    }
}

/// The trap path's pages (§12.4: GDT, IDT, trampoline, trap stack) are
/// mapped supervisor-only: a CPL 3 load there is a #PF with error 0x5
/// (present, user, read) and a store 0x7.
#[test]
fn the_trap_path_pages_are_supervisor_only() {
    for page in [0x1000u64, 0x9000, 0xA000, 0xB000] {
        for (step, error) in [
            (format!("r64:{page:#x}"), 5),
            (format!("w8:{page:#x}:1"), 7),
        ] {
            let run = run_script(&guest("hostile"), MEM, &[&step]);
            assert_guest_fault(&run, true, &step);
            assert!(
                run.stderr.contains(&format!(
                    "Guest fault: vector 14 (#PF) error={error:#x} cr2={page:#x} "
                )),
                "{step}: {}",
                run.stderr
            );
        }
    }
}

#[test]
fn guest_stores_into_its_read_only_segments_are_translation_faults() {
    // The host maps text and rodata read-only (§2): hardware KVM fails
    // KVM_RUN with EFAULT, shadow-paging KVM exits with MMIO (§11).
    for (image, _) in at_both_levels("hostile") {
        for step in ["w8:rodata:1", "w64:rodata+15:0", "w64:text+1:0"] {
            let run = run_script(&image, MEM, &[step]);
            assert_eq!(run.code, 1, "{step}: {}", run.output());
            assert!(
                run.stderr
                    .contains("tender: KVM: host/guest translation fault: rip=0x"),
                "{step}: {}",
                run.output()
            );
        }
    }
}

/// §5 checks a hypercall's ranges against the top of memory and the host
/// protection only. Low memory (page 0, the GDT and page tables, the boot
/// info, the TSS) is read/write in the host mapping, so the tender writes
/// a result there for the guest, where the guest's own stores fault (see
/// above). Upstream behaves the same. This pins the behaviour down.
#[test]
fn hypercall_results_land_in_low_memory_only_at_cpl0() {
    // At CPL 0 the guest owns its low memory (boot info, page tables) as
    // upstream's guests do, and the tender writes results there. At CPL 3
    // the guest cannot write it itself, so the tender refuses to write it
    // on its behalf (§12): otherwise a BLOCK_READ could rewrite the
    // guest's page tables and take it out of CPL 3.
    let steps = [
        "r64:bi",
        // WALLTIME over the boot info's `mem_size`.
        "hc:1:bi",
        "r64:bi+0",
        // Over page 0 and PML4[1] (0 before; the guest never uses it).
        "hc:1:0",
        "hc:1:0x2008",
    ];
    for (image, cpl3) in at_both_levels("hostile") {
        let run = run_script(&image, MEM, &steps);
        if cpl3 {
            assert_eq!(run.code, 1, "{}", run.output());
            assert!(
                run.stderr.contains(&format!(
                    "tender: hypercall WALLTIME: Invalid guest access: gpa=0x{BOOT_INFO_BASE:x}, sz=8"
                )),
                "{}",
                run.output()
            );
            continue;
        }
        assert_eq!(run.code, 0, "{}", run.output());
        assert!(
            run.stdout.contains("hostile: script done"),
            "{}",
            run.output()
        );
        assert_eq!(
            step_words(&run, "r64:bi"),
            Some(vec![MEM]),
            "{}",
            run.output()
        );
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let written = u128::from(step_words(&run, "r64:bi+0").expect("r64")[0]);
        assert!(
            written.abs_diff(now) < 60_000_000_000,
            "the boot info's mem_size now holds the wall clock: {written} vs {now}"
        );
    }
}

#[test]
fn exceptions_with_no_idt_end_the_guest() {
    // #UD, #BP, a software interrupt, #DE, #GP from a non-canonical
    // address, an MSR that does not exist, SYSCALL with EFER.SCE clear.
    for (image, cpl3) in at_both_levels("hostile") {
        for step in [
            "ud2", "int3", "int80", "div0", "noncanon", "rdmsr", "syscall",
        ] {
            let run = run_script(&image, MEM, &[step]);
            assert_guest_fault(&run, cpl3, step);
        }
    }
}

/// A CPL 0 guest may load page tables of its own. Mapped and touched,
/// memory past the guest's own is an MMIO exit, which ends it with the
/// message of §8; at CPL 3 loading CR3 is itself a fault.
#[test]
fn a_guest_that_maps_memory_past_its_own_is_stopped() {
    for (image, cpl3) in at_both_levels("hostile") {
        for step in [
            "mmior:0xc0000000",
            "mmiow:0xc0000000",
            "mmior:top+0x1000",
            "mmiow:0xfee00000",
        ] {
            let run = run_script(&image, MEM, &[step]);
            if cpl3 {
                assert_guest_fault(&run, cpl3, step);
                continue;
            }
            assert_eq!(run.code, 1, "{step}: {}", run.output());
            // Upstream's words for the fault (hardware KVM's EFAULT).
            let line = run.stderr.lines().last().unwrap_or_default();
            let rip = line
                .strip_prefix("tender: KVM: host/guest translation fault: rip=0x")
                .unwrap_or_else(|| panic!("{step}: {}", run.output()));
            assert!(
                u64::from_str_radix(rip, 16).is_ok(),
                "{step}: {}",
                run.output()
            );
        }
        // Its own memory, through its own tables, is fine.
        let run = run_script(&image, MEM, &["mmior:0x10000"]);
        if cpl3 {
            assert_guest_fault(&run, cpl3, "own page tables");
        } else {
            assert_eq!(run.code, 0, "{}", run.output());
        }
    }
}

/// VMCALL is KVM's own hypercall: the tender never sees it. At CPL 3 KVM
/// refuses it in the guest's RAX; at CPL 0 KVM may first rewrite the
/// instruction for the host's CPU, which in read-only guest code is a
/// write the tender reports as a translation fault (§2).
#[test]
fn vmcall_never_reaches_the_tender() {
    for (image, cpl3) in at_both_levels("hostile") {
        let run = run_script(&image, MEM, &["vmcall", "say:after"]);
        if run.code == 0 {
            assert!(run.stdout.contains("hostile: after"), "{}", run.output());
        } else {
            assert!(!cpl3, "{}", run.output());
            assert_eq!(run.code, 1, "{}", run.output());
            assert!(
                run.stderr
                    .contains("tender: KVM: host/guest translation fault: rip=0x"),
                "{}",
                run.output()
            );
        }
    }
}

#[test]
fn cli_is_harmless() {
    // Interrupts are off already. At CPL 0, and at CPL 3 while IOPL is 3,
    // `cli` is allowed; shadow-paging KVM resets IOPL after the first exit
    // (§11), and the #GP is then a guest fault, never a tender error.
    for (image, cpl3) in at_both_levels("hostile") {
        let run = run_script(&image, MEM, &["cli", "say:after"]);
        if cpl3 && run.code == exit::ABORT {
            assert_guest_fault(&run, cpl3, "cli");
        } else {
            assert_eq!(run.code, 0, "{}", run.output());
            assert!(run.stdout.contains("hostile: after"), "{}", run.output());
        }
    }
}

#[test]
fn string_port_io_to_the_hypercall_ports() {
    // `rep outsd` of three WALLTIME argument addresses. §5 ignores the
    // repeat count of one exit: KVM may exit once per dword (all three
    // served, as on this project's hosts) or once for all (the first).
    let steps = [
        "w32:buf:0x400100",
        "w32:buf+4:0x400200",
        "w32:buf+8:0x400300",
        "outs:0x501:buf:3",
        "r64:buf+0x100",
        "r64:buf+0x200",
        "r64:buf+0x300",
    ];
    for (image, cpl3) in at_both_levels("hostile") {
        let run = run_script(&image, MEM, &steps);
        assert_eq!(run.code, 0, "{}", run.output());
        let first = step_words(&run, "r64:buf+0x100").expect("first")[0];
        assert_ne!(first, 0, "the first was served: {}", run.output());
        // A source that runs past the top: its first dword (0) is a
        // WALLTIME at GPA 0, then the guest's own page fault. At CPL 3 the
        // tender does not write low memory for the guest (§12): refused.
        let run = run_script(&image, MEM, &["outs:0x501:top-4:2"]);
        if cpl3 {
            assert_eq!(run.code, 1, "{}", run.output());
            assert!(
                run.stderr
                    .contains("tender: hypercall WALLTIME: Invalid guest access: gpa=0x0, sz=8"),
                "{}",
                run.output()
            );
        } else {
            assert_guest_fault(&run, cpl3, "outs past the top");
        }
        // To a port that is not a hypercall's.
        let run = run_script(&image, MEM, &["outs:0x4ff:buf:1"]);
        assert_eq!(run.code, 1, "{}", run.output());
        assert!(
            run.stderr.contains(&port_refused(PIO_BASE - 1)),
            "{}",
            run.output()
        );
        // A WALLTIME address past the top, as a string.
        let run = run_script(&image, MEM, &["w32:buf:top-8", "outs:0x501:buf:1"]);
        assert_eq!(run.code, 1, "{}", run.output());
        assert!(
            run.stderr.contains(&format!(
                "hypercall {}: {}",
                name(nr::WALLTIME),
                access_refused(MEM - 8, 8)
            )),
            "{}",
            run.output()
        );
    }
}

/// A console the host cannot write for another reason than a closed pipe
/// (here a full device): PUTS ends the tender with the message of §6.1,
/// exit 1. (Ours: upstream dies on an assertion.)
#[test]
fn a_console_that_fails_ends_the_tender_with_its_error() {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("open /dev/full");
    let out = std::process::Command::new(common::tender_bin())
        .arg(format!("--mem={}", MEM >> 20))
        .arg(guest("hostile"))
        .arg("flood:100")
        .stdout(full)
        .output()
        .expect("run the tender");
    let run = Run::from(out);
    assert_no_crash(&run, "/dev/full");
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(
        run.stderr,
        "tender: Fatal error writing the guest console: No space left on device\n"
    );
}

/// A console that is a pipe whose reader went away: the first PUTS kills
/// the tender with SIGPIPE, as it kills upstream's (§8).
#[test]
fn a_console_whose_reader_is_gone_ends_the_tender_by_sigpipe() {
    use std::os::unix::process::ExitStatusExt;
    for image in [guest("hostile"), cpl0_copy("hostile")] {
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        let out = std::process::Command::new(common::tender_bin())
            .arg(format!("--mem={}", MEM >> 20))
            .arg(&image)
            .arg("flood:100")
            .stdout(writer)
            .output()
            .expect("run the tender");
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGPIPE),
            "{:?}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    }
}

/// A tender running in the background, its output drained as it comes.
struct Background {
    child: std::process::Child,
    ready: std::sync::mpsc::Receiver<()>,
    stdout_bytes: std::sync::Arc<std::sync::atomic::AtomicU64>,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

/// What a guest prints when its unfriendly part begins.
const READY: &[u8] = b"hostile: ready";

impl Background {
    fn spawn(mut command: std::process::Command) -> Background {
        use std::io::Read;
        use std::process::Stdio;
        use std::sync::atomic::Ordering;
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the tender");
        let (ready_tx, ready) = std::sync::mpsc::channel();
        let stdout_bytes = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let mut out = child.stdout.take().expect("stdout");
        let count = stdout_bytes.clone();
        // Counts what the guest prints; keeps only a tail to find the
        // marker in, however much a flood prints.
        let stdout_reader = std::thread::spawn(move || {
            let mut chunk = vec![0u8; 1 << 16];
            let mut tail: Vec<u8> = Vec::new();
            let mut seen = false;
            while let Ok(n) = out.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                count.fetch_add(n as u64, Ordering::Relaxed);
                if !seen {
                    tail.extend_from_slice(&chunk[..n]);
                    if tail.windows(READY.len()).any(|w| w == READY) {
                        seen = true;
                        let _ = ready_tx.send(());
                    }
                    let keep = tail.len().saturating_sub(READY.len());
                    tail.drain(..keep);
                }
            }
        });
        let mut err = child.stderr.take().expect("stderr");
        let text = stderr.clone();
        let stderr_reader = std::thread::spawn(move || {
            let mut all = String::new();
            let _ = err.read_to_string(&mut all);
            *text.lock().unwrap() = all;
        });
        Background {
            child,
            ready,
            stdout_bytes,
            stderr,
            readers: vec![stdout_reader, stderr_reader],
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn wait_ready(&mut self) {
        if self.ready.recv_timeout(Duration::from_secs(20)).is_err() {
            let status = self.child.try_wait();
            panic!("the guest never got ready ({status:?})");
        }
    }

    /// The tender's open descriptors, by number and target.
    fn fds(&self) -> Vec<String> {
        let dir = format!("/proc/{}/fd", self.pid());
        let mut fds: Vec<String> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{dir}: {e}"))
            .filter_map(Result::ok)
            .map(|entry| {
                let target = std::fs::read_link(entry.path())
                    .map(|t| t.display().to_string())
                    .unwrap_or_default();
                format!("{}->{target}", entry.file_name().to_string_lossy())
            })
            .collect();
        fds.sort();
        fds
    }

    fn printed(&self) -> u64 {
        self.stdout_bytes.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn assert_running(&mut self) {
        let status = self.child.try_wait().expect("try_wait");
        assert!(status.is_none(), "the tender ended early: {status:?}");
    }

    /// Sends SIGTERM; returns the exit code (-1: a signal), stderr, and how
    /// long the tender took to go.
    fn terminate(mut self) -> (i32, String, Duration) {
        let pid = libc::pid_t::try_from(self.pid()).expect("pid");
        // SAFETY: signals our own child, which has not been reaped yet.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        let sent = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            assert!(
                sent.elapsed() < Duration::from_secs(10),
                "the tender ignored SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(5));
        };
        let took = sent.elapsed();
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        let stderr = self.stderr.lock().unwrap().clone();
        (status.code().unwrap_or(-1), stderr, took)
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs a guest that will not stop by itself for a second: its descriptors
/// stay the same, the host stays responsive (a short sleep of ours is not
/// held up), and SIGTERM ends it at once with the message of §8. Returns
/// how much it printed in that second.
fn stop_unfriendly(mut command: std::process::Command, what: &str) -> u64 {
    let mut tender = Background::spawn({
        command.env_remove("RUST_BACKTRACE");
        command
    });
    tender.wait_ready();
    let started = Instant::now();
    let fds = tender.fds();
    let printed = tender.printed();
    let asleep = Instant::now();
    std::thread::sleep(Duration::from_millis(50));
    let slept = asleep.elapsed();
    assert!(
        slept < Duration::from_millis(1050),
        "{what}: a 50 ms sleep took {slept:?}"
    );
    std::thread::sleep(Duration::from_secs(1).saturating_sub(started.elapsed()));
    tender.assert_running();
    assert_eq!(tender.fds(), fds, "{what}: the open descriptors changed");
    let printed = tender.printed() - printed;
    let (code, stderr, took) = tender.terminate();
    assert!(!stderr.contains("panicked"), "{what}: {stderr}");
    assert_eq!(code, 1, "{what}: {stderr}");
    assert!(
        stderr.contains("tender: Exiting on signal 15"),
        "{what}: {stderr}"
    );
    assert!(
        took < Duration::from_secs(2),
        "{what}: SIGTERM took {took:?}"
    );
    printed
}

fn unfriendly(steps: &[&str]) -> Vec<u64> {
    at_both_levels("hostile")
        .iter()
        .map(|(image, cpl3)| {
            let mut command = std::process::Command::new(common::tender_bin());
            command
                .arg(format!("--mem={}", MEM >> 20))
                .arg(image)
                .arg("say:ready")
                .args(steps);
            stop_unfriendly(
                command,
                &format!("{} at CPL {}", steps.join(" "), if *cpl3 { 3 } else { 0 }),
            )
        })
        .collect()
}

#[test]
fn a_guest_that_spins_without_hypercalls_is_stopped_by_sigterm() {
    unfriendly(&["spin"]);
}

#[test]
fn a_guest_that_polls_with_timeout_zero_forever_is_stopped_by_sigterm() {
    unfriendly(&["pollspin"]);
}

#[test]
fn a_guest_that_sleeps_forever_is_stopped_by_sigterm() {
    // POLL with the largest timeout: about 584 years.
    unfriendly(&["hc:3:buf:max,0,0"]);
}

#[test]
fn a_guest_that_floods_the_console_is_stopped_by_sigterm() {
    for printed in unfriendly(&["flood:4096"]) {
        assert!(
            printed > 1 << 20,
            "the flood went on: {printed} bytes in a second"
        );
    }
}

/// A flood into a console nobody reads: the tender blocks in its write,
/// and SIGTERM still ends it at once.
#[test]
fn a_guest_blocked_on_a_full_console_is_stopped_by_sigterm() {
    for (image, _) in at_both_levels("hostile") {
        let (reader, writer) = std::io::pipe().expect("pipe");
        let mut child = std::process::Command::new(common::tender_bin())
            .arg(format!("--mem={}", MEM >> 20))
            .arg(&image)
            .arg("flood:4096")
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start the tender");
        std::thread::sleep(Duration::from_millis(500));
        assert!(child.try_wait().expect("try_wait").is_none(), "it ended");
        let pid = libc::pid_t::try_from(child.id()).expect("pid");
        let sent = Instant::now();
        // SAFETY: signals our own child, not reaped yet.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        let out = child.wait_with_output().expect("wait");
        let took = sent.elapsed();
        drop(reader);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("tender: Exiting on signal 15"), "{stderr}");
        assert!(took < Duration::from_secs(2), "SIGTERM took {took:?}");
    }
}

/// A guest with devices that makes rejected requests in a loop: the
/// tender's descriptors stay the same, the image is untouched, SIGTERM
/// ends it.
#[test]
fn a_guest_looping_on_rejected_device_requests_leaks_nothing() {
    if !common::is_root() {
        eprintln!("hostile: needs root (a netns and a tap); skipped");
        return;
    }
    let mut ns = common::NetNs::new();
    let tap = ns.add_tap(None, true, None);
    let original: Vec<u8> = (0..64u32 << 10)
        .map(|i| u8::try_from(i % 253).unwrap())
        .collect();
    let image = common::write_image("hostile-loop", "storage.img", &original);
    let steps = [
        "say:ready",
        // Block requests for no block device, out of range, with a bad
        // buffer and no valid handle; net requests for the block device;
        // a read on the idle tap; a POLL; the doorbell.
        "hc:4:buf:0,0,top,512,0",
        "hc:4:buf:2,65536,buf+0x1000,512,0",
        "hc:4:buf:2,0,top,max,0",
        "hc:5:buf:1,0,buf+0x1000,512,0",
        "hc:5:buf:64,0,top,512,0",
        "hc:6:buf:2,top,60,0",
        "hc:7:buf:max,top,60,0",
        "hc:7:buf:1,buf+0x1000,1514,0",
        "hc:3:buf+0x100:0,0,0",
        "out:0x600:4:0",
        "loop",
    ];
    for (guest_image, cpl3) in at_both_levels("hostile-dev") {
        let mut command = ns.exec(common::tender_bin());
        command
            .arg(format!("--mem={}", MEM >> 20))
            .arg(format!("--net:service={tap}"))
            .arg(format!("--block:storage={}", image.display()))
            .arg(&guest_image)
            .args(steps);
        let printed = stop_unfriendly(
            command,
            &format!("rejected requests at CPL {}", if cpl3 { 3 } else { 0 }),
        );
        assert!(printed > 0, "the guest made requests");
        assert!(
            std::fs::read(&image).expect("read image") == original,
            "the image changed"
        );
    }
}
