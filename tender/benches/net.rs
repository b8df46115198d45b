//! Network benchmark, all in one run on taps in network namespaces of its
//! own: TCP throughput host-to-guest and guest-to-host, ping RTT, 1-byte TCP
//! round trip, and httpd requests per second (wrk), with the shared-memory
//! ring and with hypercalls only; the baseline is the same transfers between
//! two host endpoints over a veth pair.
//!
//! `cargo bench --bench net` (as root, with ping and wrk installed).

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

fn ping_avg_ms(ns: &NetNs, target: &str) -> f64 {
    let out = ns
        .exec("ping")
        .args(["-c", "200", "-i", "0.005", "-q", target])
        .output()
        .expect("ping");
    let text = String::from_utf8_lossy(&out.stdout);
    // rtt min/avg/max/mdev = a/b/c/d ms
    text.lines()
        .find_map(|l| l.split(" = ").nth(1))
        .and_then(|v| v.split('/').nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("ping output: {text}"))
}

fn wrk_rps(ns: &NetNs, url: &str) -> f64 {
    let out = ns
        .exec("wrk")
        .args(["-t2", "-c16", "-d4s", url])
        .output()
        .expect("wrk");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("wrk output: {text}"))
}

struct Figures {
    to_guest: f64,
    from_guest: f64,
    ping_ms: f64,
    tcp_rtt: Duration,
    http_rps: f64,
}

fn start_guest(ns: &NetNs, args: &[&str], ready: &str) -> Child {
    let mut child = ns
        .tender_command(args)
        .stdout(Stdio::piped())
        // Stopping it makes the tender say "Exiting on signal 15".
        .stderr(Stdio::null())
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
    child
}

fn stop(mut child: Child) {
    // SAFETY: signals our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
}

fn measure_guest(ring: bool) -> Figures {
    let mut ns = NetNs::new();
    let tap = ns.add_tap(None, true, Some("10.66.0.1/24"));
    let net = format!("--net:service={tap}");
    let mut tender_args: Vec<&str> = if ring { vec![] } else { vec!["--no-net-ring"] };
    let (echo, httpd) = (guest("echo"), guest("httpd"));
    tender_args.extend([net.as_str(), echo.to_str().unwrap(), "--ipv4=10.66.0.2/24"]);
    let child = start_guest(&ns, &tender_args, "echo: listening");
    let (to_guest, from_guest, tcp_rtt) = ns.enter(|| {
        (
            send_all(("10.66.0.2", 9)),
            receive_all(("10.66.0.2", 19)),
            round_trips(("10.66.0.2", 7)),
        )
    });
    let ping_ms = ping_avg_ms(&ns, "10.66.0.2");
    stop(child);
    let mut httpd_args: Vec<&str> = if ring { vec![] } else { vec!["--no-net-ring"] };
    httpd_args.extend([net.as_str(), httpd.to_str().unwrap(), "--ipv4=10.66.0.2/24"]);
    let child = start_guest(&ns, &httpd_args, "httpd: serving");
    let http_rps = wrk_rps(&ns, "http://10.66.0.2/");
    stop(child);
    Figures {
        to_guest: mb_per_s(to_guest),
        from_guest: mb_per_s(from_guest),
        ping_ms,
        tcp_rtt,
        http_rps,
    }
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
    let ping_ms = ping_avg_ms(&client_ns, "10.67.0.2");
    Figures {
        to_guest: mb_per_s(to),
        from_guest: mb_per_s(from),
        ping_ms,
        tcp_rtt: rtt,
        http_rps: f64::NAN,
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let veth = measure_veth();
    let ring = measure_guest(true);
    let hypercalls = measure_guest(false);
    println!("network benchmark ({} MiB per transfer, {ROUND_TRIPS} TCP round trips, 200 pings, wrk -t2 -c16 -d4s)", TRANSFER >> 20);
    println!(
        "{:<34} {:>12} {:>12} {:>10} {:>12} {:>12}",
        "", "host->peer", "peer->host", "ping avg", "1-byte RTT", "httpd"
    );
    for (name, f) in [
        ("veth pair, two host endpoints", &veth),
        ("guest, ring", &ring),
        ("guest, hypercalls only", &hypercalls),
    ] {
        println!(
            "{:<34} {:>7.1} MB/s {:>7.1} MB/s {:>7.3} ms {:>9.1} us {:>8.0} r/s",
            name,
            f.to_guest,
            f.from_guest,
            f.ping_ms,
            f.tcp_rtt.as_secs_f64() * 1e6,
            f.http_rps
        );
    }
    println!(
        "ring / hypercalls: {:.2}x host->guest, {:.2}x guest->host, {:.2}x httpd requests",
        ring.to_guest / hypercalls.to_guest,
        ring.from_guest / hypercalls.from_guest,
        ring.http_rps / hypercalls.http_rps
    );
    println!(
        "guest (ring) / veth: {:.2}x host->guest, {:.2}x guest->host",
        ring.to_guest / veth.to_guest,
        ring.from_guest / veth.from_guest
    );
}
