//! A small HTTP/1.1 server with keep-alive: `/` is a static page, `/stats`
//! reports what the server has done. `httpd.hvt [--ipv4=ADDR/LEN] [--port=80]
//! [--backlog=128] [--max-connections=N]` (N: the stack's TCP socket limit,
//! by default from the memory size; connections beyond it wait).
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::vec::Vec;
use core::cell::Cell;

use hvt_runtime::net::{Stack, TcpListener, TcpStream};
use hvt_runtime::time::Instant;
use hvt_runtime::{println, spawn, Args};

hvt_runtime::manifest!(net "service");
hvt_runtime::main!(main);

const PAGE: &str = "<!DOCTYPE html>\n<html><head><title>tender</title></head>\n\
<body><h1>Hello from a unikernel</h1><p>Served by httpd on tender.</p></body></html>\n";

/// Longest request head accepted.
const MAX_HEAD: usize = 8192;

struct Stats {
    started: Instant,
    connections: Cell<u64>,
    requests: Cell<u64>,
    /// Connections being served now.
    open: Cell<u64>,
}

static mut STATS: Option<Stats> = None;

fn stats() -> &'static Stats {
    // SAFETY: set once in main before any task runs; single-threaded guest.
    unsafe {
        (*core::ptr::addr_of!(STATS))
            .as_ref()
            .expect("stats initialised")
    }
}

/// Finds the end of the request head.
fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

struct Request<'a> {
    method: &'a str,
    path: &'a str,
    keep_alive: bool,
}

fn parse(head: &[u8]) -> Option<Request<'_>> {
    let text = core::str::from_utf8(head).ok()?;
    let mut lines = text.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, path, version) = (first.next()?, first.next()?, first.next()?);
    let mut keep_alive = version == "HTTP/1.1";
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            if name.trim().eq_ignore_ascii_case("connection") {
                let value = value.trim();
                if value.eq_ignore_ascii_case("close") {
                    keep_alive = false;
                } else if value.eq_ignore_ascii_case("keep-alive") {
                    keep_alive = true;
                }
            }
        }
    }
    Some(Request {
        method,
        path,
        keep_alive,
    })
}

fn response(request: &Request<'_>, stack: &Stack) -> Vec<u8> {
    let (status, kind, body) = match (request.method, request.path) {
        ("GET", "/") | ("GET", "/index.html") => ("200 OK", "text/html", PAGE.into()),
        ("GET", "/stats") => {
            let s = stats();
            let (rx, tx) = stack.frame_counts();
            let (backlog, held) = stack.backlog_stats();
            let mut body = format!(
                "uptime_ms {}\nconnections {}\nrequests {}\nframes_received {rx}\nframes_sent {tx}\n\
                 open_connections {}\ntcp_sockets {}\nmax_tcp_sockets {}\n\
                 syn_admitted {}\nsyn_held {}\nsyn_waiting {held}\nsyn_dropped {}\nsyn_duplicates {}\n",
                s.started.elapsed().as_millis(),
                s.connections.get(),
                s.requests.get(),
                s.open.get(),
                stack.tcp_sockets(),
                stack.max_tcp_sockets(),
                backlog.admitted,
                backlog.held,
                backlog.dropped,
                backlog.duplicates,
            );
            if let Some(used) = hvt_runtime::memory::heap_used() {
                body.push_str(&format!("heap_used {used}\n"));
            }
            ("200 OK", "text/plain", body)
        }
        ("GET", _) => ("404 Not Found", "text/plain", "not found\n".into()),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "method not allowed\n".into(),
        ),
    };
    let connection = if request.keep_alive {
        "keep-alive"
    } else {
        "close"
    };
    let mut out = format!(
        "HTTP/1.1 {status}\r\nServer: tender-httpd\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: {connection}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

async fn serve(mut conn: TcpStream, stack: Stack) {
    let mut buf: Vec<u8> = Vec::with_capacity(2048);
    let mut chunk = [0u8; 2048];
    loop {
        // Answer every complete request already buffered (pipelining).
        while let Some(end) = head_end(&buf) {
            let Some(request) = parse(&buf[..end]) else {
                let _ = conn.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await;
                conn.shutdown();
                return;
            };
            stats().requests.set(stats().requests.get() + 1);
            let keep_alive = request.keep_alive;
            let reply = response(&request, &stack);
            buf.drain(..end);
            if conn.write_all(&reply).await.is_err() {
                return;
            }
            if !keep_alive {
                conn.shutdown();
                let _ = conn.flush().await;
                return;
            }
        }
        if buf.len() > MAX_HEAD {
            let _ = conn.write_all(b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await;
            conn.shutdown();
            return;
        }
        match conn.read(&mut chunk).await {
            Ok(0) | Err(_) => {
                conn.shutdown();
                return;
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

async fn main(args: Args) -> Result<(), &'static str> {
    // SAFETY: before any task runs.
    unsafe {
        STATS = Some(Stats {
            started: Instant::now(),
            connections: Cell::new(0),
            requests: Cell::new(0),
            open: Cell::new(0),
        })
    };
    let stack = Stack::from_args("service", &args).map_err(|_| "bad network options")?;
    let port = args
        .value("--port")
        .and_then(|p| p.parse().ok())
        .unwrap_or(80);
    let ip = stack.wait_ipv4().await;
    let backlog = args
        .value("--backlog")
        .and_then(|p| p.parse().ok())
        .unwrap_or(128);
    if let Some(max) = args.value("--max-connections").and_then(|p| p.parse().ok()) {
        stack.set_max_tcp_sockets(max);
    }
    let mut listener = TcpListener::bind(&stack, port, backlog).map_err(|_| "cannot listen")?;
    println!("httpd: serving on {ip} port {port}");
    loop {
        let conn = listener.accept().await.map_err(|_| "accept failed")?;
        stats().connections.set(stats().connections.get() + 1);
        let stack = stack.clone();
        spawn(async move {
            stats().open.set(stats().open.get() + 1);
            serve(conn, stack).await;
            stats().open.set(stats().open.get() - 1);
        });
    }
}
