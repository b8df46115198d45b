//! kv benchmark: PUTs and GETs per second against the `kv` guest (ring,
//! CPL 3) on a 256 MiB image, on a tap in a network namespace of its own,
//! for values of 100 bytes, 1 KiB and 4 KiB:
//!
//! * one connection, one request at a time (this benchmark's own client):
//!   the latency-bound rate;
//! * 16 connections (wrk -t2 -c16 -d4s, PUT through a Lua script): the
//!   throughput-bound rate. The PUTs go to 1,000 keys in turn.
//!
//! Every PUT is one block write (a pwrite into the host's page cache)
//! before its answer; a GET is one block read.
//!
//! `cargo bench --bench kv` (as root, with wrk installed).

#[path = "../../tests/common/mod.rs"]
mod common;
#[path = "../../tests/common/http_client.rs"]
mod http_client;

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{guest, scratch, tender_bin, NetNs};
use http_client::HttpClient;

const GUEST: &str = "10.68.0.2";
const KEYS: usize = 1000;
/// How long each single-connection run lasts.
const RUN: Duration = Duration::from_secs(3);

fn start_kv(ns: &NetNs, tap: &str, image: &std::path::Path) -> Child {
    let mut child = ns
        .exec(tender_bin())
        .arg(format!("--net:service={tap}"))
        .arg(format!("--block:storage={}", image.display()))
        .arg(guest("kv"))
        .arg(format!("--ipv4={GUEST}/24"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the tender");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    loop {
        let line = lines.next().expect("kv ended early").expect("read");
        if line.contains("kv: serving on") {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    child
}

/// Requests per second of `request` (which checks the answer) on one
/// connection for [`RUN`].
fn one_connection(ns: &NetNs, mut request: impl FnMut(&mut HttpClient, usize)) -> f64 {
    let mut client = ns
        .enter(|| HttpClient::connect(&format!("{GUEST}:80"), Duration::from_secs(10)))
        .expect("connect");
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < RUN {
        request(&mut client, n);
        n += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// wrk's requests per second, with `script` (Lua) if given.
fn wrk(ns: &NetNs, url: &str, script: Option<&std::path::Path>) -> f64 {
    let mut command = ns.exec("wrk");
    command.args(["-t2", "-c16", "-d4s"]);
    if let Some(script) = script {
        command.arg("-s").arg(script);
    }
    let out = command.arg(url).output().expect("wrk");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("Non-2xx"), "wrk saw errors: {text}");
    text.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("wrk output: {text}"))
}

struct Figures {
    size: usize,
    put_1: f64,
    get_1: f64,
    put_16: f64,
    get_16: f64,
}

fn measure(ns: &NetNs, size: usize) -> Figures {
    let value = vec![0x5au8; size];
    let put_1 = one_connection(ns, |c, n| {
        let status = c
            .put(&format!("k{size}-{}", n % KEYS), &value)
            .expect("PUT");
        assert!(status == 201 || status == 204, "PUT: {status}");
    });
    let get_1 = one_connection(ns, |c, n| {
        let (status, body) = c.get(&format!("k{size}-{}", n % KEYS)).expect("GET");
        assert!(status == 200 && body.len() == size, "GET: {status}");
    });
    // wrk: PUTs to KEYS keys in turn, GETs of one key.
    let script = scratch("kv-bench").join(format!("put{size}.lua"));
    std::fs::write(
        &script,
        format!(
            "wrk.method = \"PUT\"\nwrk.body = string.rep(\"x\", {size})\n\
             local n = 0\nrequest = function()\n  n = n + 1\n  \
             return wrk.format(nil, \"/w{size}-\" .. (n % {KEYS}))\nend\n"
        ),
    )
    .expect("write the Lua script");
    let put_16 = wrk(ns, &format!("http://{GUEST}/"), Some(&script));
    let get_16 = wrk(ns, &format!("http://{GUEST}/k{size}-1"), None);
    Figures {
        size,
        put_1,
        get_1,
        put_16,
        get_16,
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let mut ns = NetNs::new();
    let tap = ns.add_tap(None, true, Some("10.68.0.1/24"));
    let image = scratch("kv-bench").join("disk.img");
    let file = std::fs::File::create(&image).expect("create the image");
    file.set_len(256 << 20).expect("size the image");
    let mut kv = start_kv(&ns, &tap, &image);
    let figures: Vec<Figures> = [100, 1024, 4096]
        .into_iter()
        .map(|size| measure(&ns, size))
        .collect();
    let _ = kv.kill();
    let _ = kv.wait();
    let _ = std::fs::remove_file(&image);
    println!(
        "kv benchmark (256 MiB image, ring, CPL 3; 1 connection for {RUN:?}; wrk -t2 -c16 -d4s)"
    );
    println!(
        "{:>8} {:>14} {:>14} {:>14} {:>14}",
        "value", "PUT/s 1 conn", "GET/s 1 conn", "PUT/s 16 conn", "GET/s 16 conn"
    );
    for f in &figures {
        println!(
            "{:>6} B {:>14.0} {:>14.0} {:>14.0} {:>14.0}",
            f.size, f.put_1, f.get_1, f.put_16, f.get_16
        );
    }
}
