//! Network benchmark, all in one run on taps in network namespaces of its
//! own: TCP throughput host-to-guest and guest-to-host, ping RTT, 1-byte TCP
//! round trip, and httpd requests per second (wrk), with the shared-memory
//! ring and with hypercalls only; the baseline is the same transfers between
//! two host endpoints over a veth pair. Then the guest figures again with a
//! CPU hog pinned to each core (a busy loop per core, started here), as on a
//! shared server.
//!
//! With each figure: the tender's returns from KVM_RUN (its exits) and the
//! ring's in-kernel doorbells per MB or per request, and the tender's CPU
//! time per MB or per request (all threads), read from `TENDER_STATS=1` and
//! `/proc`.
//!
//! `cargo bench --bench net` (as root, with ping and wrk installed);
//! NET_BENCH_HOG=0 skips the pass with the hog.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{guest, NetNs};

/// Bytes moved in each throughput run.
const TRANSFER: usize = 64 << 20;
const ROUND_TRIPS: usize = 2000;
const PINGS: usize = 200;

fn send_all(addr: (&str, u16)) -> Duration {
    let mut stream = TcpStream::connect(addr).expect("connect");
    let chunk = vec![0x5au8; 64 << 10];
    let start = Instant::now();
    let mut sent = 0;
    while sent < TRANSFER {
        stream.write_all(&chunk).expect("send");
        sent += chunk.len();
    }
    stream.shutdown(Shutdown::Write).expect("shutdown");
    // The discard side closes once it has read everything.
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).expect("wait for close");
    start.elapsed()
}

fn receive_all(addr: (&str, u16)) -> Duration {
    let mut stream = TcpStream::connect(addr).expect("connect");
    let mut buf = vec![0u8; 64 << 10];
    let start = Instant::now();
    let mut got = 0;
    while got < TRANSFER {
        let n = stream.read(&mut buf).expect("receive");
        assert!(n > 0, "source closed early");
        got += n;
    }
    start.elapsed()
}

fn round_trips(addr: (&str, u16)) -> Duration {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_nodelay(true).unwrap();
    let mut times = Vec::with_capacity(ROUND_TRIPS);
    let mut byte = [0u8; 1];
    for i in 0..ROUND_TRIPS {
        let start = Instant::now();
        // Any byte will do: the low byte of the count.
        stream.write_all(&[i.to_le_bytes()[0]]).unwrap();
        stream.read_exact(&mut byte).unwrap();
        times.push(start.elapsed());
    }
    times.sort();
    times[times.len() / 2]
}

fn mb_per_s(d: Duration) -> f64 {
    TRANSFER as f64 / d.as_secs_f64() / 1e6
}

/// Ping's round trips to `target`: (average, median) in ms.
fn ping_ms(ns: &NetNs, target: &str) -> (f64, f64) {
    let out = ns
        .exec("ping")
        .args(["-c", &PINGS.to_string(), "-i", "0.005", target])
        .output()
        .expect("ping");
    let text = String::from_utf8_lossy(&out.stdout);
    // "64 bytes from ...: icmp_seq=1 ttl=64 time=0.213 ms"
    let mut times: Vec<f64> = text
        .lines()
        .filter_map(|l| l.split("time=").nth(1))
        .filter_map(|t| t.trim_end_matches(" ms").parse().ok())
        .collect();
    assert!(!times.is_empty(), "ping output: {text}");
    times.sort_by(f64::total_cmp);
    let average = times.iter().sum::<f64>() / times.len() as f64;
    (average, times[times.len() / 2])
}

/// One measurement of a guest: the figure, and what the tender spent on it.
#[derive(Clone, Copy, Default)]
struct Cost {
    /// Returns from KVM_RUN.
    exits: f64,
    /// Doorbells the ring's thread woke up to.
    doorbells: f64,
    /// CPU time of the tender process (all its threads), in ms.
    cpu_ms: f64,
}

impl Cost {
    fn per(self, units: f64) -> Cost {
        Cost {
            exits: self.exits / units,
            doorbells: self.doorbells / units,
            cpu_ms: self.cpu_ms / units,
        }
    }
}

#[derive(Default)]
struct Figures {
    to_guest: f64,
    from_guest: f64,
    ping_ms: f64,
    ping_median_ms: f64,
    tcp_rtt: Duration,
    http_rps: f64,
    /// Per MB, host to guest and guest to host; per ping; per request.
    to_guest_cost: Cost,
    from_guest_cost: Cost,
    ping_cost: Cost,
    http_cost: Cost,
}

/// A tender running a guest, with `TENDER_STATS=1`.
struct Guest {
    child: Child,
    stats: std::thread::JoinHandle<String>,
}

fn start_guest(ns: &NetNs, args: &[&str], ready: &str) -> Guest {
    // `ip netns exec` execs the tender itself: the child is the tender.
    let mut child = ns
        .exec(common::tender_bin())
        .args(args)
        .env("TENDER_STATS", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tender");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    loop {
        let line = lines.next().expect("guest ended early").expect("read");
        if line.contains(ready) {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let stats = std::thread::spawn(move || {
        stderr
            .lines()
            .map_while(Result::ok)
            .find_map(|l| l.strip_prefix("tender: stats:").map(str::to_owned))
            .unwrap_or_default()
    });
    Guest { child, stats }
}

/// The CPU time (user + system, all threads) of process `pid`, in ms.
fn cpu_ms(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which ends with ')'): utime is the
    // 12th, stime the 13th of them.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: f64 = fields
        .get(11..13)
        .map(|t| t.iter().filter_map(|v| v.parse::<f64>().ok()).sum())
        .unwrap_or(0.0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks * 1000.0 / hz
}

/// Stops the guest; what the tender spent on it.
fn stop(guest: Guest) -> Cost {
    let Guest { mut child, stats } = guest;
    let cpu_ms = cpu_ms(child.id());
    // SAFETY: signals our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
    let line = stats.join().unwrap_or_default();
    let value = |name: &str| -> f64 {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    Cost {
        exits: value("kvm_run_returns"),
        doorbells: value("net_ring_doorbells"),
        cpu_ms,
    }
}

fn measure_guest(ring: bool) -> Figures {
    let mut ns = NetNs::new();
    let tap = ns.add_tap(None, true, Some("10.66.0.1/24"));
    let net = format!("--net:service={tap}");
    let (echo, httpd) = (guest("echo"), guest("httpd"));
    let args = |image: &std::path::Path| -> Vec<String> {
        let mut args: Vec<String> = if ring {
            vec![]
        } else {
            vec!["--no-net-ring".into()]
        };
        args.extend([
            net.clone(),
            image.to_str().unwrap().into(),
            "--ipv4=10.66.0.2/24".into(),
        ]);
        args
    };
    let echo_args = args(&echo);
    let echo_args: Vec<&str> = echo_args.iter().map(String::as_str).collect();
    let mb = TRANSFER as f64 / 1e6;
    let mut f = Figures::default();

    let guest = start_guest(&ns, &echo_args, "echo: listening");
    let idle = stop(guest);
    // Each transfer in a guest of its own, so that its costs are its own
    // (less what a guest costs to start and stop, measured just above).
    let less_idle = |cost: Cost| Cost {
        exits: cost.exits - idle.exits,
        doorbells: cost.doorbells - idle.doorbells,
        cpu_ms: (cost.cpu_ms - idle.cpu_ms).max(0.0),
    };
    let guest = start_guest(&ns, &echo_args, "echo: listening");
    let to_guest = ns.enter(|| send_all(("10.66.0.2", 9)));
    f.to_guest_cost = less_idle(stop(guest)).per(mb);
    let guest = start_guest(&ns, &echo_args, "echo: listening");
    let from_guest = ns.enter(|| receive_all(("10.66.0.2", 19)));
    f.from_guest_cost = less_idle(stop(guest)).per(mb);
    let guest = start_guest(&ns, &echo_args, "echo: listening");
    f.tcp_rtt = ns.enter(|| round_trips(("10.66.0.2", 7)));
    (f.ping_ms, f.ping_median_ms) = ping_ms(&ns, "10.66.0.2");
    // Per ping, though the round trips before them are in it too.
    f.ping_cost = less_idle(stop(guest)).per((PINGS + ROUND_TRIPS) as f64);
    f.to_guest = mb_per_s(to_guest);
    f.from_guest = mb_per_s(from_guest);

    let httpd_args = args(&httpd);
    let httpd_args: Vec<&str> = httpd_args.iter().map(String::as_str).collect();
    let guest = start_guest(&ns, &httpd_args, "httpd: serving");
    let run = common::wrk(&ns, 16, 4, "http://10.66.0.2/");
    f.http_rps = run.rps;
    f.http_cost = less_idle(stop(guest)).per(run.requests.max(1.0));
    f
}

/// What each kind of exit from CPL 3 costs (the `exitcost` probe, one run):
/// a port write the tender serves (WALLTIME), POLL with no wait, and the
/// in-kernel doorbell (a port write an ioeventfd serves), in us.
fn exit_kinds() -> Vec<(String, f64)> {
    let mut ns = NetNs::new();
    let tap = ns.add_tap(None, true, Some("10.68.0.1/24"));
    let probe = guest("exitcost");
    let out = ns
        .exec(common::tender_bin())
        .args([
            &format!("--net:service={tap}"),
            probe.to_str().unwrap(),
            "5000",
        ])
        .output()
        .expect("exitcost");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("exitcost: "))
        .filter_map(|l| {
            let (kind, ns) = l.split_once(' ')?;
            Some((kind.to_owned(), ns.trim().parse::<f64>().ok()? / 1000.0))
        })
        .collect()
}

/// The same transfers between two namespaces joined by a veth pair.
fn measure_veth() -> Figures {
    let server_ns = NetNs::new();
    let mut client_ns = NetNs::new();
    let (a, b) = (common::unique_name("va"), common::unique_name("vb"));
    client_ns.ip(&[
        "link",
        "add",
        &a,
        "type",
        "veth",
        "peer",
        "name",
        &b,
        "netns",
        &server_ns.name,
    ]);
    client_ns.adopt_link(&a);
    client_ns.ip(&["addr", "add", "10.67.0.1/24", "dev", &a]);
    client_ns.ip(&["link", "set", &a, "up"]);
    server_ns.ip(&["addr", "add", "10.67.0.2/24", "dev", &b]);
    server_ns.ip(&["link", "set", &b, "up"]);
    server_ns.ip(&["link", "set", "lo", "up"]);
    // Servers like the guest's: discard (9), source (19), echo (7).
    let listeners: Vec<TcpListener> = server_ns.enter(|| {
        [9u16, 19, 7]
            .iter()
            .map(|p| TcpListener::bind(("10.67.0.2", *p)).expect("bind"))
            .collect()
    });
    let mut listeners = listeners.into_iter();
    let (discard, source, echo) = (
        listeners.next().unwrap(),
        listeners.next().unwrap(),
        listeners.next().unwrap(),
    );
    std::thread::spawn(move || {
        for conn in discard.incoming().map_while(Result::ok) {
            std::thread::spawn(move || {
                let mut conn = conn;
                let _ = std::io::copy(&mut conn, &mut std::io::sink());
            });
        }
    });
    std::thread::spawn(move || {
        for conn in source.incoming().map_while(Result::ok) {
            std::thread::spawn(move || {
                let mut conn = conn;
                let chunk = [0x5au8; 16384];
                while conn.write_all(&chunk).is_ok() {}
            });
        }
    });
    std::thread::spawn(move || {
        for conn in echo.incoming().map_while(Result::ok) {
            std::thread::spawn(move || {
                let _ = conn.set_nodelay(true);
                let mut reader = conn.try_clone().unwrap();
                let mut writer = conn;
                let _ = std::io::copy(&mut reader, &mut writer);
            });
        }
    });
    let (to, from, rtt) = client_ns.enter(|| {
        (
            send_all(("10.67.0.2", 9)),
            receive_all(("10.67.0.2", 19)),
            round_trips(("10.67.0.2", 7)),
        )
    });
    let (ping_ms, ping_median_ms) = ping_ms(&client_ns, "10.67.0.2");
    Figures {
        to_guest: mb_per_s(to),
        from_guest: mb_per_s(from),
        ping_ms,
        ping_median_ms,
        tcp_rtt: rtt,
        http_rps: f64::NAN,
        ..Figures::default()
    }
}

fn print_row(name: &str, f: &Figures) {
    println!(
        "{:<34} {:>7.1} MB/s {:>7.1} MB/s {:>5.3}/{:>5.3} ms {:>9.1} us {:>8.0} r/s",
        name,
        f.to_guest,
        f.from_guest,
        f.ping_ms,
        f.ping_median_ms,
        f.tcp_rtt.as_secs_f64() * 1e6,
        f.http_rps
    );
}

fn print_costs(name: &str, f: &Figures) {
    let cost = |c: Cost| format!("{:>7.1} {:>6.1} {:>6.2}", c.exits, c.doorbells, c.cpu_ms);
    println!(
        "{:<34} {}  {}  {}  {}",
        name,
        cost(f.to_guest_cost),
        cost(f.from_guest_cost),
        cost(f.ping_cost),
        cost(Cost {
            cpu_ms: f.http_cost.cpu_ms * 1000.0,
            ..f.http_cost
        })
    );
}

fn print_ratios(ring: &Figures, hypercalls: &Figures) {
    println!(
        "ring / hypercalls: {:.2}x host->guest, {:.2}x guest->host, {:.2}x httpd requests, \
         ping {:.2}x the time (median {:.2}x), KVM_RUN returns per request {:.2}x, per MB {:.2}x / {:.2}x",
        ring.to_guest / hypercalls.to_guest,
        ring.from_guest / hypercalls.from_guest,
        ring.http_rps / hypercalls.http_rps,
        ring.ping_ms / hypercalls.ping_ms,
        ring.ping_median_ms / hypercalls.ping_median_ms,
        ring.http_cost.exits / hypercalls.http_cost.exits,
        ring.to_guest_cost.exits / hypercalls.to_guest_cost.exits,
        ring.from_guest_cost.exits / hypercalls.from_guest_cost.exits,
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    let veth = measure_veth();
    let exits = exit_kinds();
    let ring = measure_guest(true);
    let hypercalls = measure_guest(false);
    let hogged = (std::env::var("NET_BENCH_HOG").as_deref() != Ok("0")).then(|| {
        let _hog = common::CpuHog::start();
        (measure_guest(true), measure_guest(false))
    });
    println!(
        "network benchmark ({} MiB per transfer, {ROUND_TRIPS} TCP round trips, {PINGS} pings, \
         wrk -t2 -c16 -d4s)",
        TRANSFER >> 20
    );
    println!(
        "{:<34} {:>12} {:>12} {:>14} {:>12} {:>12}",
        "", "host->peer", "peer->host", "ping avg/median", "1-byte RTT", "httpd"
    );
    print_row("veth pair, two host endpoints", &veth);
    print_row("guest, ring", &ring);
    print_row("guest, hypercalls only", &hypercalls);
    if let Some((ring, hypercalls)) = &hogged {
        print_row("guest, ring, CPU hog on each core", ring);
        print_row("guest, hypercalls, CPU hog", hypercalls);
    }
    println!(
        "tender costs: KVM_RUN returns, ring doorbells, CPU ms; per MB host->guest, per MB \
         guest->host, per ping or 1-byte round trip, per request (CPU: ms per 1000 requests)"
    );
    print_costs("guest, ring", &ring);
    print_costs("guest, hypercalls only", &hypercalls);
    if let Some((ring, hypercalls)) = &hogged {
        print_costs("guest, ring, CPU hog", ring);
        print_costs("guest, hypercalls, CPU hog", hypercalls);
    }
    let kinds: Vec<String> = exits
        .iter()
        .map(|(kind, us)| format!("{kind} {us:.1} us"))
        .collect();
    println!(
        "exits from CPL 3, 5,000 each (walltime: a port write the tender serves; poll0: POLL \
         without waiting; doorbell: a port write served in the host kernel): {}",
        kinds.join(", ")
    );
    print_ratios(&ring, &hypercalls);
    if let Some((ring, hypercalls)) = &hogged {
        print!("with a CPU hog: ");
        print_ratios(ring, hypercalls);
    }
    println!(
        "guest (ring) / veth: {:.2}x host->guest, {:.2}x guest->host",
        ring.to_guest / veth.to_guest,
        ring.from_guest / veth.from_guest
    );
}
