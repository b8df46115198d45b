//! Boot benchmark: exec-to-exit of `hello` under the tender, at CPL 3 and
//! CPL 0, against the floor measured in the same run with the same memory
//! size: a process that creates a VM with that much memory and one vCPU and
//! runs it to its first exit. Two tables: the default 512 MiB and
//! `--mem=2`. With upstream's solo5-hvt and its test_hello at hand
//! (`SOLO5_HVT`, `SOLO5_TEST_HELLO`), a row for them and the ratio. Also
//! the tender's peak RSS. Drop-in rows: the C hello of the conformance suite
//! built by `scripts/hvt-cc` (Solo5's C API from our bindings) under
//! `tender` at CPL 3 and, the same file, under upstream's solo5-hvt at
//! CPL 0; and upstream's test_hello under `tender`.
//!
//! `cargo bench --bench boot` (set BOOT_BENCH_RUNS to change the 50 runs).

#[path = "../../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kvm_bindings::kvm_userspace_memory_region;
use kvm_ioctls::{Kvm, VcpuExit};

/// Child mode: the floor. Create a VM with `mib` MiB of memory in one slot
/// (as the tender maps it: anonymous, private, no reserve), one vCPU in
/// real mode at a `out dx, al` instruction, and run it to that first exit.
fn floor_child(mib: usize) {
    let kvm = Kvm::new().expect("open /dev/kvm");
    let vm = kvm.create_vm().expect("create VM");
    let size = mib << 20;
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
    // SAFETY: the mapping is at least 2 MiB; 0x1000 + 2 is inside it.
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

/// One run: wall time from spawn to exit, and the child's CPU time (user
/// plus system, from `wait4`'s rusage: the child's own, unlike
/// `getrusage(RUSAGE_CHILDREN)` which sums every child reaped so far).
#[derive(Clone, Copy)]
struct Sample {
    wall: Duration,
    cpu: Duration,
}

/// Runs `command` to completion and measures it.
fn measure(command: &mut Command) -> Sample {
    command.stdout(Stdio::null()).stderr(Stdio::null());
    let start = Instant::now();
    // Reaped by wait4 below, which also gives its own rusage.
    #[allow(clippy::zombie_processes)]
    let child = command.spawn().expect("spawn");
    let pid = libc::pid_t::try_from(child.id()).expect("pid fits pid_t");
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 on our own child, with valid out-pointers; the `Child`
    // is not waited for again (dropping it does not wait).
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = start.elapsed();
    assert_eq!(rc, pid, "wait4: {}", std::io::Error::last_os_error());
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{command:?} failed: status {status:#x}"
    );
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec.unsigned_abs())
            + Duration::from_micros(t.tv_usec.unsigned_abs())
    };
    Sample {
        wall,
        cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
    }
}

struct Stats {
    min: Duration,
    median: Duration,
    cpu_median: Duration,
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

/// A row of the table: its name and how to start one run of it.
struct Row {
    name: String,
    make: Box<dyn Fn() -> Command>,
}

fn row(name: impl Into<String>, program: &Path, args: &[&std::ffi::OsStr]) -> Row {
    let program = program.to_owned();
    let args: Vec<std::ffi::OsString> = args.iter().map(|&a| a.to_owned()).collect();
    Row {
        name: name.into(),
        make: Box::new(move || {
            let mut c = Command::new(&program);
            c.args(&args);
            c
        }),
    }
}

/// Runs every row `runs` times, in turns (one run of each row, then the
/// next round), so that load from other processes falls on all rows alike
/// and the ratios of one run compare like with like.
fn series(runs: usize, rows: &[Row]) -> Vec<Stats> {
    // One warm-up round: page cache, first-use costs.
    for r in rows {
        measure(&mut (r.make)());
    }
    let mut samples: Vec<Vec<Sample>> = rows.iter().map(|_| Vec::with_capacity(runs)).collect();
    for _ in 0..runs {
        for (r, out) in rows.iter().zip(samples.iter_mut()) {
            out.push(measure(&mut (r.make)()));
        }
    }
    samples
        .into_iter()
        .map(|s| Stats {
            min: s.iter().map(|x| x.wall).min().expect("runs > 0"),
            median: median(s.iter().map(|x| x.wall).collect()),
            cpu_median: median(s.iter().map(|x| x.cpu).collect()),
        })
        .collect()
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

/// Upstream's solo5-hvt and its test_hello, built from source outside the
/// repository: `SOLO5_HVT` and `SOLO5_TEST_HELLO` name them (by default the
/// scratch build of the issue, when it is there). `None` skips the rows.
fn upstream() -> Option<(PathBuf, PathBuf)> {
    let path = |var: &str, default: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(default))
    };
    let hvt = path("SOLO5_HVT", "/work/scratch/solo5/tenders/hvt/solo5-hvt");
    let hello = path(
        "SOLO5_TEST_HELLO",
        "/work/scratch/solo5/tests/test_hello/test_hello.hvt",
    );
    (hvt.is_file() && hello.is_file()).then_some((hvt, hello))
}

/// The conformance suite's C hello, built by `scripts/hvt-cc` without SSE
/// (so that it also runs at CPL 0 on this host).
fn c_hello() -> PathBuf {
    let root = common::repo_root();
    let output = common::scratch("boot-bench").join("c-hello.hvt");
    let status = Command::new(root.join("scripts/hvt-cc"))
        .arg("-mgeneral-regs-only")
        .arg("-o")
        .arg(&output)
        .arg(root.join("tests/conformance/hello.c"))
        .status()
        .expect("run scripts/hvt-cc");
    assert!(status.success(), "scripts/hvt-cc failed");
    output
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--floor-child") {
        let mib = args
            .get(i + 1)
            .and_then(|m| m.parse().ok())
            .expect("--floor-child MiB");
        floor_child(mib);
        return;
    }
    if args.iter().any(|a| a == "--list") {
        // `cargo test --benches` lists benchmarks; there are no tests here.
        return;
    }
    let runs: usize = std::env::var("BOOT_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50)
        .max(1);
    // Leaked: the rows borrow them for the whole run.
    let hello: &'static Path = Box::leak(common::guest("hello").into_boxed_path());
    let hello_cpl0: &'static Path = Box::leak(common::cpl0_copy("hello").into_boxed_path());
    let tender = common::tender_bin();
    let me = std::env::current_exe().expect("own path");
    let c_hello: &'static Path = Box::leak(c_hello().into_boxed_path());
    let upstream: Option<(&'static Path, &'static Path)> = upstream().map(|(h, t)| {
        (
            &*Box::leak(h.into_boxed_path()),
            &*Box::leak(t.into_boxed_path()),
        )
    });

    println!("boot benchmark, {runs} runs of each row in turns (exec to exit, wall clock;");
    println!("CPU = user + system time of the process, median)");
    // The tender's default (512 MiB) and the smallest size: the floor of
    // each table maps the same size as the tender runs of that table.
    for (mib, option) in [(512usize, None), (2, Some("--mem=2"))] {
        let mem: Vec<&std::ffi::OsStr> = option.iter().map(|o| o.as_ref()).collect();
        let with = |image: &'static Path| {
            let mut a = mem.clone();
            a.push(image.as_os_str());
            a
        };
        let mib_arg = mib.to_string();
        let mut rows = vec![
            row(
                format!("floor: VM ({mib} MiB) + vCPU, first exit"),
                &me,
                &["--floor-child".as_ref(), mib_arg.as_ref()],
            ),
            row("tender hello, CPL 3 (our note)", &tender, &with(hello)),
            row(
                "tender hello, CPL 0 (upstream mode)",
                &tender,
                &with(hello_cpl0),
            ),
        ];
        if let Some((hvt, test_hello)) = upstream {
            // test_hello has 2 MiB of data: upstream's smallest size that
            // runs it is 4 MiB.
            let (name, args): (&str, Vec<&std::ffi::OsStr>) = match option {
                None => ("upstream solo5-hvt test_hello", with(test_hello)),
                Some(_) => (
                    "upstream solo5-hvt test_hello, --mem=4",
                    vec!["--mem=4".as_ref(), test_hello.as_os_str()],
                ),
            };
            rows.push(row(name, hvt, &args));
        }
        // The drop-in rows: hvt-cc's C hello and upstream's test_hello,
        // each under both tenders where it runs (test_hello needs 4 MiB).
        let drop_in_start = rows.len();
        let greeting: &std::ffi::OsStr = "Hello_Solo5".as_ref();
        let mut c_args = with(c_hello);
        c_args.push(greeting);
        rows.push(row("tender C hello (hvt-cc), CPL 3", &tender, &c_args));
        if let Some((hvt, test_hello)) = upstream {
            rows.push(row(
                "upstream solo5-hvt, the same C hello, CPL 0",
                hvt,
                &c_args,
            ));
            let mem4: Vec<&std::ffi::OsStr> = match option {
                None => vec![test_hello.as_os_str()],
                Some(_) => vec!["--mem=4".as_ref(), test_hello.as_os_str()],
            };
            rows.push(row("tender, upstream test_hello, CPL 0", &tender, &mem4));
        }
        let stats = series(runs, &rows);
        let floor = &stats[0];
        let cpl3 = &stats[1];
        println!();
        println!(
            "memory {mib} MiB ({})",
            option.unwrap_or("the default, no --mem")
        );
        println!(
            "{:<44} {:>8} {:>9} {:>8} {:>8}",
            "", "min ms", "median ms", "x floor", "CPU ms"
        );
        for (r, s) in rows.iter().zip(&stats) {
            println!(
                "{:<44} {:>8.3} {:>9.3} {:>7.2}x {:>8.3}",
                r.name,
                ms(s.min),
                ms(s.median),
                s.median.as_secs_f64() / floor.median.as_secs_f64(),
                ms(s.cpu_median),
            );
        }
        if let [c_ours, c_upstream, test_hello_ours] = &stats[drop_in_start..] {
            println!(
                "same C image, upstream solo5-hvt / tender: {:.2}x wall, {:.2}x CPU",
                c_upstream.median.as_secs_f64() / c_ours.median.as_secs_f64(),
                c_upstream.cpu_median.as_secs_f64() / c_ours.cpu_median.as_secs_f64(),
            );
            println!(
                "upstream test_hello, tender / solo5-hvt: {:.2}x wall, {:.2}x CPU",
                test_hello_ours.median.as_secs_f64() / stats[3].median.as_secs_f64(),
                test_hello_ours.cpu_median.as_secs_f64() / stats[3].cpu_median.as_secs_f64(),
            );
        }
        if let Some(up) = stats.get(3).filter(|_| upstream.is_some()) {
            println!(
                "upstream test_hello / tender hello CPL 3: {:.2}x wall, {:.2}x CPU",
                up.median.as_secs_f64() / cpl3.median.as_secs_f64(),
                up.cpu_median.as_secs_f64() / cpl3.cpu_median.as_secs_f64(),
            );
        } else {
            println!("(upstream rows skipped: set SOLO5_HVT and SOLO5_TEST_HELLO)");
        }
    }
    println!();
    let idle_ms = 400;
    let (hwm, user, system) = idle_tender(&tender, &common::guest("idle"), idle_ms);
    println!(
        "tender with an idle guest: peak RSS {hwm} KiB; CPU in its first {} ms: user {:.0} ms, system {:.0} ms",
        idle_ms * 3 / 4,
        ms(user),
        ms(system)
    );
}
