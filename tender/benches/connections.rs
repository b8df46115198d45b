//! Connections under load, on a tap in a network namespace of its own:
//! `wrk -c500` and `-c1000` against httpd, with the shared-memory ring and
//! with hypercalls only, beside `wrk -c16` against the same guest as the
//! baseline of the run; the socket errors wrk reports (connect, read,
//! write, timeout), requests per second, what the guest's SYN backlog did,
//! and the guest heap each idle connection takes (httpd's /stats
//! `heap_used` before and after 500 idle keep-alive connections).
//!
//! `cargo bench --bench connections` (as root, with wrk installed).

#[path = "../../tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::Duration;

use common::{guest, NetNs};

const IDLE: usize = 500;

fn start_httpd(ns: &NetNs, tap: &str, ring: bool) -> Child {
    let net = format!("--net:service={tap}");
    let image = guest("httpd");
    let mut args: Vec<&str> = if ring { vec![] } else { vec!["--no-net-ring"] };
    args.extend([net.as_str(), image.to_str().unwrap(), "--ipv4=10.68.0.2/24"]);
    let mut child = ns
        .tender_command(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start tender");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    loop {
        let line = lines.next().expect("httpd ended early").expect("read");
        if line.contains("httpd: serving") {
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

/// One keep-alive GET of `path` on `stream`; the body.
fn get(stream: &mut TcpStream, path: &str) -> String {
    write!(stream, "GET {path} HTTP/1.1\r\nHost: guest\r\n\r\n").expect("send");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).expect("response");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: ")?.trim().parse().ok())
        .expect("length");
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).expect("body");
    String::from_utf8_lossy(&body).into_owned()
}

fn stat(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} in {text}"))
}

fn stats() -> String {
    let mut stream = TcpStream::connect(("10.68.0.2", 80)).expect("connect");
    get(&mut stream, "/stats")
}

/// Guest heap per idle connection: `IDLE` keep-alive connections, each
/// served one page, held open while /stats is read.
fn heap_per_idle_connection(ns: &NetNs) -> f64 {
    ns.enter(|| {
        let before = stat(&stats(), "heap_used");
        let mut idle: Vec<TcpStream> = (0..IDLE)
            .map(|_| TcpStream::connect(("10.68.0.2", 80)).expect("connect"))
            .collect();
        for stream in &mut idle {
            stream
                .set_read_timeout(Some(Duration::from_secs(30)))
                .unwrap();
            get(stream, "/");
        }
        let during = stat(&stats(), "heap_used");
        drop(idle);
        (during as f64 - before as f64) / IDLE as f64
    })
}

/// httpd's address in the bench's namespace.
const URL: &str = "http://10.68.0.2/";

fn measure(ring: bool) {
    let mut ns = NetNs::new();
    let tap = ns.add_tap(None, true, Some("10.68.0.1/24"));
    let child = start_httpd(&ns, &tap, ring);
    let per_idle = heap_per_idle_connection(&ns);
    // Let the idle connections' sockets close before wrk starts.
    std::thread::sleep(Duration::from_millis(500));
    let base = common::wrk(&ns, 16, 4, URL);
    let runs = [
        (500, 4, common::wrk(&ns, 500, 4, URL)),
        (1000, 10, common::wrk(&ns, 1000, 10, URL)),
    ];
    let after = ns.enter(stats);
    stop(child);
    let path = if ring { "ring" } else { "hypercalls only" };
    println!("httpd, {path}:");
    println!(
        "  guest heap per idle connection: {per_idle:.0} bytes ({:.2}x the two 64 KiB socket buffers), {IDLE} connections",
        per_idle / f64::from(128u32 << 10)
    );
    println!("  wrk -c16   -d4s : {:>8.0} req/s (baseline)", base.rps);
    for (c, d, run) in &runs {
        let [connect, read, write, timeout] = run.errors;
        println!(
            "  wrk -c{c:<4} -d{d}s{}: {:>8.0} req/s ({:.2}x baseline), socket errors: connect {connect}, read {read}, write {write}, timeout {timeout}",
            if *d < 10 { " " } else { "" },
            run.rps,
            run.rps / base.rps
        );
    }
    println!(
        "  SYN backlog: {} admitted, {} held at least once, {} dropped, {} duplicates; {} TCP sockets at most (max_tcp_sockets)",
        stat(&after, "syn_admitted"),
        stat(&after, "syn_held"),
        stat(&after, "syn_dropped"),
        stat(&after, "syn_duplicates"),
        stat(&after, "max_tcp_sockets"),
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    println!("connections benchmark (wrk -t2; httpd with its default limit and backlog)");
    measure(true);
    measure(false);
}
