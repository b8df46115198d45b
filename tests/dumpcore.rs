//! `--dumpcore=DIR` (issue 12, item 2): a guest that aborts, panics or
//! faults leaves `DIR/core.solo5-hvt.<pid>`, an ELF core that gdb reads;
//! its exit status stays what it was; an existing file is never
//! overwritten; a bad DIR is refused at start-up; the dump is written under
//! the vCPU thread's seccomp filter. gdb checks are skipped, with a
//! message, where gdb is not installed (`.ci/run` installs it).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{cpl0_copy_of, guest, have_gdb, is_root, scratch, tender_bin, Run};

/// `consoleprobe` built with debug info, so that gdb names functions and
/// lines in the backtrace.
fn consoleprobe_debug() -> PathBuf {
    common::probe_with_debug_info("consoleprobe")
}

/// An empty directory of its own for one test.
fn core_dir(tag: &str) -> PathBuf {
    let dir = scratch("dumpcore").join(tag);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the core directory");
    dir
}

/// Runs the tender with `--dumpcore=DIR` first; the run and its pid.
fn run_dumping(dir: &Path, args: &[&std::ffi::OsStr]) -> (Run, u32) {
    let child = Command::new(tender_bin())
        .arg(format!("--dumpcore={}", dir.display()))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the tender");
    let pid = child.id();
    let out = child.wait_with_output().expect("wait for the tender");
    (out.into(), pid)
}

/// The files in `dir`.
fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read the core directory")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The one core `pid` left in `dir`, checked as an ELF core for x86_64
/// and named as upstream names it; the run printed upstream's line.
fn the_core(dir: &Path, pid: u32, run: &Run) -> PathBuf {
    let name = format!("core.solo5-hvt.{pid}");
    assert_eq!(files(dir), vec![name.clone()], "{}", run.output());
    let path = dir.join(&name);
    assert!(
        run.stderr.contains(&format!(
            "tender: dumpcore: dumping guest core to: {}\n",
            path.display()
        )),
        "{}",
        run.output()
    );
    assert!(!run.stderr.contains("seccomp"), "{}", run.output());
    assert!(!run.stderr.contains("incomplete"), "{}", run.output());
    let bytes = std::fs::read(&path).expect("read the core");
    assert_eq!(&bytes[..4], b"\x7fELF");
    assert_eq!(u16::from_le_bytes([bytes[16], bytes[17]]), 4, "ET_CORE");
    assert_eq!(u16::from_le_bytes([bytes[18], bytes[19]]), 62, "EM_X86_64");
    let meta = std::fs::metadata(&path).unwrap();
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    // Sparse: far fewer blocks than its length.
    assert!(meta.blocks() * 512 < meta.len() / 8, "{meta:?}");
    path
}

/// `gdb -batch` on `image` and `core` with `commands`; its stdout.
fn gdb(image: &Path, core: &Path, commands: &[&str]) -> String {
    let mut command = Command::new("gdb");
    command.args(["-batch", "-nx"]);
    for c in commands {
        command.args(["-ex", c]);
    }
    let out = command.arg(image).arg(core).output().expect("run gdb");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_panic_at_cpl3_leaves_a_core_whose_backtrace_names_the_panicking_function() {
    let image = consoleprobe_debug();
    let dir = core_dir("panic");
    let (run, pid) = run_dumping(&dir, &[image.as_ref(), "panic".as_ref()]);
    assert_eq!(run.code, 255, "{}", run.output());
    assert!(run.stdout.contains("Solo5: ABORT: "), "{}", run.output());
    let core = the_core(&dir, pid, &run);
    if have_gdb() {
        let bt = gdb(&image, &core, &["bt"]);
        assert!(bt.contains("hvt_bindings::panic::on_panic"), "{bt}");
        assert!(bt.contains("consoleprobe::main"), "{bt}");
        assert!(bt.contains("consoleprobe.rs:26"), "{bt}");
    }
}

/// A CPL 3 fault's core holds the guest's registers from the trap frame,
/// not the trampoline's: gdb's backtrace starts in the faulting function.
#[test]
fn a_fault_at_cpl3_leaves_a_core_whose_backtrace_names_the_faulting_function() {
    let image = consoleprobe_debug();
    let dir = core_dir("fault-cpl3");
    let (run, pid) = run_dumping(&dir, &[image.as_ref(), "fault".as_ref()]);
    common::assert_guest_fault(&run, true, "fault");
    assert!(
        run.stderr
            .contains("Guest fault: vector 14 (#PF) error=0x6 cr2=0x0 "),
        "{}",
        run.stderr
    );
    let core = the_core(&dir, pid, &run);
    if have_gdb() {
        let bt = gdb(&image, &core, &["bt"]);
        // Frame #0 is the faulting store (`write_volatile`, inlined into
        // `store_to_null`), then the function, at its line.
        assert!(bt.starts_with("#0") || bt.contains("\n#0"), "{bt}");
        assert!(
            bt.contains("consoleprobe::store_to_null () at probes/src/bin/consoleprobe.rs:"),
            "{bt}"
        );
        assert!(bt.contains("consoleprobe::main"), "{bt}");
        let regs = gdb(&image, &core, &["info registers cs ss"]);
        assert!(regs.contains("0xb") && regs.contains("0x13"), "{regs}");
    }
}

#[test]
fn an_abort_at_cpl0_dumps_too() {
    let image = cpl0_copy_of(&consoleprobe_debug());
    let dir = core_dir("abort-cpl0");
    let (run, pid) = run_dumping(&dir, &[image.as_ref(), "abort".as_ref()]);
    assert_eq!(run.code, 255, "{}", run.output());
    let core = the_core(&dir, pid, &run);
    if have_gdb() {
        let bt = gdb(&image, &core, &["bt"]);
        assert!(bt.contains("hvt_bindings::exit::abort"), "{bt}");
        assert!(bt.contains("consoleprobe::main"), "{bt}");
    }
}

#[test]
fn a_fault_dumps_at_both_levels_and_keeps_its_status() {
    let image = guest("hostile");
    for (image, cpl3) in [(image.clone(), true), (cpl0_copy_of(&image), false)] {
        let dir = core_dir(if cpl3 { "triple-cpl3" } else { "triple-cpl0" });
        let (run, pid) = run_dumping(&dir, &[image.as_ref(), "triple".as_ref()]);
        common::assert_guest_fault(&run, cpl3, "triple");
        let core = the_core(&dir, pid, &run);
        if have_gdb() {
            // The registers are the guest's at the `ud2` of its `main`: at
            // CPL 3 from the trap frame (§12.4), at CPL 0 KVM's after the
            // triple fault.
            let regs = gdb(&image, &core, &["info registers rip"]);
            assert!(regs.contains("<hostile::main"), "{regs}");
        }
    }
}

#[test]
fn an_existing_core_is_never_overwritten() {
    let dir = core_dir("exists");
    // The shell's pid is the tender's once it execs.
    let script = format!(
        "echo keep > {dir}/core.solo5-hvt.$$ && exec {tender} --dumpcore={dir} {image} panic",
        dir = dir.display(),
        tender = tender_bin().display(),
        image = consoleprobe_debug().display(),
    );
    let run: Run = Command::new("sh")
        .args(["-c", &script])
        .output()
        .expect("run the shell")
        .into();
    assert_eq!(run.code, 255, "{}", run.output());
    let names = files(&dir);
    assert_eq!(names.len(), 1, "{names:?}");
    assert_eq!(
        std::fs::read_to_string(dir.join(&names[0])).unwrap(),
        "keep\n"
    );
    assert!(
        run.stderr.contains(&format!(
            "tender: dumpcore: open({}): File exists (os error 17)\n",
            names[0]
        )),
        "{}",
        run.output()
    );
    assert!(
        run.stderr
            .contains("tender: dumpcore: error(s) dumping core, file may be incomplete\n"),
        "{}",
        run.output()
    );
    assert!(!run.stderr.contains("seccomp"), "{}", run.output());
}

#[test]
fn a_bad_directory_is_refused_at_start_up() {
    let dir = core_dir("bad");
    let file = dir.join("a-file");
    std::fs::write(&file, b"").unwrap();
    for (what, path) in [("missing", dir.join("missing")), ("a file", file)] {
        let run = common::tender([
            format!("--dumpcore={}", path.display()),
            guest("hello").display().to_string(),
        ]);
        assert_eq!(run.code, 1, "{what}: {}", run.output());
        assert_eq!(run.stderr, "tender: dumpcore: cannot open dir\n", "{what}");
        assert_eq!(run.stdout, "", "{what}: the guest never ran");
    }
    // Not writable: as root, only a read-only file system says so.
    let ro = dir.join("ro");
    std::fs::create_dir_all(&ro).unwrap();
    let mounted = is_root()
        && Command::new("mount")
            .args(["-t", "tmpfs", "-o", "ro,size=64k", "tender-dumpcore-ro"])
            .arg(&ro)
            .status()
            .is_ok_and(|s| s.success());
    if !mounted {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o500)).unwrap();
    }
    let run = common::tender([
        format!("--dumpcore={}", ro.display()),
        guest("hello").display().to_string(),
    ]);
    if mounted {
        let _ = Command::new("umount").arg(&ro).status();
    }
    if mounted || !is_root() {
        assert_eq!(run.code, 1, "{}", run.output());
        assert_eq!(run.stderr, "tender: dumpcore: dir not writable\n");
    } else {
        eprintln!("root without mount: the read-only case is skipped");
    }
}

#[test]
fn a_normal_exit_writes_nothing() {
    let dir = core_dir("normal");
    let (run, _) = run_dumping(&dir, &[guest("hello").as_ref()]);
    assert_eq!(run.code, 0, "{}", run.output());
    let (run, _) = run_dumping(&dir, &[consoleprobe_debug().as_ref(), "exit".as_ref()]);
    assert_eq!(run.code, 3, "{}", run.output());
    assert!(files(&dir).is_empty(), "{:?}", files(&dir));
    assert!(!run.stderr.contains("dumpcore"), "{}", run.output());
}

#[test]
fn a_full_disk_is_one_message_and_the_status_stays() {
    if !is_root() {
        eprintln!("needs root (a tmpfs mount); skipped");
        return;
    }
    let dir = core_dir("full");
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=16k", "tender-dumpcore-full"])
        .arg(&dir)
        .status()
        .is_ok_and(|s| s.success());
    assert!(mounted, "mount a tmpfs");
    let (run, pid) = run_dumping(&dir, &[consoleprobe_debug().as_ref(), "panic".as_ref()]);
    let _ = Command::new("umount").arg(&dir).status();
    assert_eq!(run.code, 255, "{}", run.output());
    assert!(
        run.stderr.contains(&format!(
            "tender: dumpcore: dumping guest core to: {}/core.solo5-hvt.{pid}\n",
            dir.display()
        )),
        "{}",
        run.output()
    );
    assert!(
        run.stderr.contains("No space left on device"),
        "{}",
        run.output()
    );
    assert!(
        run.stderr
            .ends_with("tender: dumpcore: error(s) dumping core, file may be incomplete\n"),
        "{}",
        run.output()
    );
    assert!(!run.stderr.contains("seccomp"), "{}", run.output());
}

#[test]
fn the_tender_stays_confined_with_dumpcore() {
    let dir = core_dir("confined");
    let mut child = Command::new(tender_bin())
        .arg(format!("--dumpcore={}", dir.display()))
        .arg(guest("sleeper"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the tender");
    let mut stdout = child.stdout.take().unwrap();
    // Once the guest prints, the filter is in place (before KVM_RUN).
    let mut first = [0u8; 1];
    std::io::Read::read_exact(&mut stdout, &mut first).expect("the guest prints");
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(status.contains("\nSeccomp:\t2\n"), "{status}");
    assert!(status.contains("\nNoNewPrivs:\t1\n"), "{status}");
    let deadline = Instant::now() + Duration::from_secs(1);
    while Instant::now() < deadline && !files(&dir).is_empty() {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(files(&dir).is_empty(), "killed, not dumped");
}
