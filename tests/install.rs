//! `tender` installed under upstream's name (`scripts/install-solo5-hvt.sh`)
//! and run the way the engines that exec `solo5-hvt` run it
//! (`docs/solo5-compatibility.md`): urunc's
//! `solo5-hvt --mem=N --net:service=TAP --block:rootfs=PATH KERNEL ARGS`
//! and Albatross's `taskset -c CPUS solo5-hvt --mem=N --net:SVC=TAP
//! --net-mac:SVC=MAC --block:NAME=PATH --block-sector-size:NAME=N -- KERNEL
//! ARGS`, stdout and stderr on one FIFO, stopped with SIGTERM. The guest is
//! a C unikernel built by `scripts/hvt-cc` (`tests/engines/devices.c`).

mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use common::{is_root, repo_root, scratch, tender_bin, ConsoleFifo, NetNs};

/// The install script run into a scratch directory with this test's
/// tender (`TENDER=`: no nested cargo build). Returns the directory.
fn installed() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = scratch("install").join("bin");
        let out = Command::new(repo_root().join("scripts/install-solo5-hvt.sh"))
            .arg(&dir)
            .env("TENDER", tender_bin())
            .output()
            .expect("run scripts/install-solo5-hvt.sh");
        assert!(
            out.status.success(),
            "install failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
}

/// `tests/engines/devices.c` built with the manifest of `engine` (urunc or
/// albatross) and its block device's name.
fn engine_guest(engine: &str, block: &str) -> PathBuf {
    let dir = repo_root().join("tests/engines");
    let output = scratch("install").join(format!("{engine}.hvt"));
    let out =
        common::without_host_build_settings(&mut Command::new(repo_root().join("scripts/hvt-cc")))
            .arg(format!(
                "--manifest={}",
                dir.join(format!("{engine}.json")).display()
            ))
            .arg(format!("-DBLOCK_NAME={block}"))
            .arg("-o")
            .arg(&output)
            .arg(dir.join("devices.c"))
            .output()
            .expect("run scripts/hvt-cc");
    assert!(
        out.status.success(),
        "hvt-cc: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    output
}

/// A blank image of `len` bytes.
fn image(name: &str, len: u64) -> PathBuf {
    let path = scratch("install").join(name);
    let file = std::fs::File::create(&path).expect("create the image");
    file.set_len(len).expect("size the image");
    path
}

#[test]
fn the_script_installs_tender_and_a_solo5_hvt_link_to_it() {
    let dir = installed();
    let link = dir.join("solo5-hvt");
    assert_eq!(
        std::fs::read_link(&link).expect("solo5-hvt is a link"),
        Path::new("tender")
    );
    assert_eq!(
        std::fs::read(dir.join("tender")).expect("installed tender"),
        std::fs::read(tender_bin()).expect("built tender")
    );
    let out = Command::new(&link).arg("--version").output().expect("run");
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("solo5-hvt tender, version v"),
        "{stderr}"
    );
    assert!(stderr.ends_with("\nABI version 2\n"), "{stderr}");
    // The name it was run as, in its messages and usage.
    let out = Command::new(&link).output().expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("solo5-hvt: Missing KERNEL operand\nusage: solo5-hvt [ CORE OPTIONS ]"),
        "{stderr}"
    );
}

#[test]
fn urunc_shape_runs_a_c_unikernel_with_a_tap_and_a_root_disk() {
    if !is_root() {
        eprintln!("skipped: needs root for a network namespace and a tap");
        return;
    }
    let mut ns = NetNs::new();
    let tap = ns.add_tap(None, true, Some("10.83.0.1/24"));
    let kernel = engine_guest("urunc", "rootfs");
    let disk = image("rootfs.img", 1 << 20);
    let out = ns
        .exec(installed().join("solo5-hvt"))
        .args([
            "--mem=64".to_owned(),
            format!("--net:service={tap}"),
            format!("--block:rootfs={}", disk.display()),
        ])
        .arg(&kernel)
        .arg("urunc-was-here")
        .output()
        .expect("run solo5-hvt");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(", mtu 1500\n"), "{stdout}");
    assert!(
        stdout.contains("block rootfs: capacity 1048576, block size 512\n"),
        "{stdout}"
    );
    assert!(stdout.contains("block 0 written\nSUCCESS\n"), "{stdout}");
    let written = std::fs::read(&disk).expect("read the image");
    assert_eq!(&written[..15], b"urunc-was-here\0");
}

#[test]
fn albatross_shape_pinned_on_a_fifo_stops_on_sigterm() {
    if !is_root() {
        eprintln!("skipped: needs root for a network namespace and a tap");
        return;
    }
    let mut ns = NetNs::new();
    let tap = ns.add_tap(None, true, Some("10.84.0.1/24"));
    let kernel = engine_guest("albatross", "storage");
    let disk = image("storage.img", 1 << 20);
    let mut console = ConsoleFifo::new(&scratch("install").join("console.fifo"));
    let mut command = ns.exec("taskset");
    command
        .args(["-c", "0"])
        .arg(installed().join("solo5-hvt"))
        .args([
            "--mem=64".to_owned(),
            format!("--net:service={tap}"),
            "--net-mac:service=02:00:00:00:00:2a".to_owned(),
            format!("--block:storage={}", disk.display()),
            "--block-sector-size:storage=4096".to_owned(),
            "--".to_owned(),
        ])
        .arg(&kernel)
        .arg("wait");
    let mut child = console.spawn(command);
    console.wait_for("waiting\n", &mut child, Duration::from_secs(30));
    // `ip netns exec` and `taskset` exec the tender: the child is it.
    let pid = libc::pid_t::try_from(child.id()).expect("pid");
    // SAFETY: signals our own child, not reaped yet.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = child.wait().expect("wait");
    let output = console.read_to_end();
    assert_eq!(status.code(), Some(1), "{status:?}: {output}");
    assert!(status.signal().is_none(), "{output}");
    assert!(
        output.contains("net service: mac 02:00:00:00:00:2a, mtu 1500\n"),
        "{output}"
    );
    assert!(
        output.contains("block storage: capacity 1048576, block size 4096\n"),
        "{output}"
    );
    assert!(
        output.ends_with("waiting\nsolo5-hvt: Exiting on signal 15\n"),
        "{output}"
    );
    // The block the guest wrote is in the image (synced on the signal).
    let written = std::fs::read(&disk).expect("read the image");
    assert_eq!(&written[..5], b"wait\0");
}
