//! Boot benchmark: exec-to-exit of `hello` under the tender, at CPL 3 and
//! CPL 0, against the floor measured in the same run: a process that creates
//! a VM and one vCPU and runs it to its first exit. Also the tender's peak RSS.
//!
//! `cargo bench --bench boot` (set BOOT_BENCH_RUNS to change the 50 runs).

#[path = "../../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kvm_bindings::kvm_userspace_memory_region;
use kvm_ioctls::{Kvm, VcpuExit};

/// Child mode: the floor. Create a VM with 2 MiB, one vCPU in real mode at
/// a `out dx, al` instruction, and run it to that first exit.
fn floor_child() {
    let kvm = Kvm::new().expect("open /dev/kvm");
    let vm = kvm.create_vm().expect("create VM");
    let size = 2 << 20;
    // SAFETY: anonymous private mapping, checked below.
    let host = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    assert_ne!(host, libc::MAP_FAILED);
    // out dx, al ; hlt
    let code = [0xee, 0xf4];
    // SAFETY: the mapping is 2 MiB; 0x1000 + 2 is inside it.
    unsafe {
        std::ptr::copy_nonoverlapping(code.as_ptr(), (host as *mut u8).add(0x1000), code.len())
    };
    let region = kvm_userspace_memory_region {
        slot: 0,
        flags: 0,
        guest_phys_addr: 0,
        memory_size: size as u64,
        userspace_addr: host as u64,
    };
    // SAFETY: the mapping outlives the VM (the process exits right after).
    unsafe { vm.set_user_memory_region(region) }.expect("memory region");
    let mut vcpu = vm.create_vcpu(0).expect("create vCPU");
    let mut sregs = vcpu.get_sregs().expect("sregs");
    sregs.cs.base = 0;
    sregs.cs.selector = 0;
    vcpu.set_sregs(&sregs).expect("set sregs");
    let regs = kvm_bindings::kvm_regs {
        rip: 0x1000,
        rdx: 0x500,
        rflags: 2,
        ..Default::default()
    };
    vcpu.set_regs(&regs).expect("set regs");
    match vcpu.run().expect("run") {
        VcpuExit::IoOut(0x500, _) => {}
        other => panic!("unexpected first exit {other:?}"),
    }
}

/// Runs `command` to completion and returns the wall time from spawn to exit.
fn measure(command: &mut Command) -> Duration {
    command.stdout(Stdio::null()).stderr(Stdio::null());
    let start = Instant::now();
    let status = command.spawn().expect("spawn").wait().expect("wait");
    let elapsed = start.elapsed();
    assert!(status.success(), "{command:?} failed: {status}");
    elapsed
}

struct Stats {
    min: Duration,
    median: Duration,
}

fn series(runs: usize, mut make: impl FnMut() -> Command) -> Stats {
    // One warm-up run: page cache, first-use costs.
    measure(&mut make());
    let mut times: Vec<Duration> = (0..runs).map(|_| measure(&mut make())).collect();
    times.sort();
    Stats {
        min: times[0],
        median: times[runs / 2],
    }
}

/// Peak RSS (VmHWM, KiB) and CPU time (user, system) of a tender running
/// the `idle` guest for `ms`, read from /proc while it runs. (A child's
/// ru_maxrss would include this process's RSS when spawned by vfork.)
fn idle_tender(tender: &Path, idle: &Path, ms: u64) -> (u64, Duration, Duration) {
    let mut child = Command::new(tender)
        .arg(idle)
        .arg(ms.to_string())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn idle tender");
    std::thread::sleep(Duration::from_millis(ms * 3 / 4));
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).expect("status");
    let hwm_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM");
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", child.id())).expect("stat");
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .expect("stat format")
        .1
        .split_whitespace()
        .collect();
    // utime and stime are fields 14 and 15 of stat: 11 and 12 after the name.
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let cpu = |i: usize| Duration::from_secs_f64(fields[i].parse::<f64>().expect("ticks") / ticks);
    let (user, system) = (cpu(11), cpu(12));
    assert!(child.wait().expect("wait").success());
    (hwm_kib, user, system)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    if std::env::args().any(|a| a == "--floor-child") {
        floor_child();
        return;
    }
    if std::env::args().any(|a| a == "--list") {
        // `cargo test --benches` lists benchmarks; there are no tests here.
        return;
    }
    let runs: usize = std::env::var("BOOT_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let hello = common::guest("hello");
    let hello_cpl0 = common::cpl0_copy("hello");
    let tender = common::tender_bin();
    let me = std::env::current_exe().expect("own path");

    let floor = series(runs, || {
        let mut c = Command::new(&me);
        c.arg("--floor-child");
        c
    });
    let cpl3 = series(runs, || {
        let mut c = Command::new(&tender);
        c.arg(&hello);
        c
    });
    let cpl0 = series(runs, || {
        let mut c = Command::new(&tender);
        c.arg(&hello_cpl0);
        c
    });

    println!("boot benchmark, {runs} runs each (exec to exit, wall clock)");
    println!(
        "{:<44} {:>9} {:>9} {:>9}",
        "", "min ms", "median ms", "x floor"
    );
    for (name, s) in [
        ("floor: VM + vCPU, run to first exit", &floor),
        ("tender hello, CPL 3 (our note)", &cpl3),
        ("tender hello, CPL 0 (upstream mode)", &cpl0),
    ] {
        println!(
            "{:<44} {:>9.3} {:>9.3} {:>8.2}x",
            name,
            ms(s.min),
            ms(s.median),
            s.median.as_secs_f64() / floor.median.as_secs_f64()
        );
    }
    let idle_ms = 400;
    let (hwm, user, system) = idle_tender(&tender, &common::guest("idle"), idle_ms);
    println!(
        "tender with an idle guest: peak RSS {hwm} KiB; CPU in its first {} ms: user {:.0} ms, system {:.0} ms",
        idle_ms * 3 / 4,
        ms(user),
        ms(system)
    );
}
