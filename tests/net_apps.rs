//! Network guests under KVM at CPL 3, each in a network namespace and tap of
//! its own: the host pings them, fetches pages from httpd with curl, and
//! echoes data through echo from many clients at once.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::{Child, Stdio};
use std::time::Duration;

use common::{guest, ConsoleLines, NetNs};

/// A guest running in the background until it is stopped.
struct Guest {
    child: Child,
    console: ConsoleLines,
    /// Busy loops on every core while the guest runs (`NET_TESTS=hog`).
    _hog: Option<common::CpuHog>,
}

/// How the whole suite runs (`NET_TESTS`, which `scripts/test.sh` sets for
/// a second and third pass): `no-ring` gives every guest `--no-net-ring`,
/// `hog` runs a busy loop on each core while each guest runs. Unset: the
/// ring, on a quiet host.
fn suite_mode() -> String {
    std::env::var("NET_TESTS").unwrap_or_default()
}

impl Guest {
    fn start(ns: &NetNs, args: &[&str]) -> Guest {
        let mode = suite_mode();
        let mut args: Vec<&str> = args.to_vec();
        if mode == "no-ring" && !args.contains(&"--no-net-ring") {
            args.insert(0, "--no-net-ring");
        }
        let hog = (mode == "hog").then(common::CpuHog::start);
        let mut child = ns
            .tender_command(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the tender");
        let console = ConsoleLines::capture(&mut child);
        Guest {
            child,
            console,
            _hog: hog,
        }
    }

    /// Waits (up to 20 s) for a console line containing `text`.
    fn wait_for(&mut self, text: &str) -> String {
        self.console.wait_for(text, Duration::from_secs(20))
    }

    /// Waits for the guest to exit by itself; returns its code and output.
    fn wait(mut self) -> (i32, String) {
        let status = self.child.wait().expect("wait");
        self.console.settle(Duration::from_millis(200));
        (status.code().unwrap_or(-1), self.console.output())
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        // A child already reaped (a test waited for its exit) is not
        // signalled: its process id may belong to another process by now.
        if matches!(self.child.try_wait(), Ok(None)) {
            // SAFETY: signals our own child, not yet reaped (the `ip netns
            // exec` wrapper passes SIGTERM on through `timeout` to the
            // tender).
            unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        }
        let _ = self.child.wait();
    }
}

/// A namespace with one tap at 10.77.0.1/24; the guest is 10.77.0.2.
fn one_tap(mtu: Option<u32>) -> (NetNs, String) {
    let mut ns = NetNs::new();
    let tap = ns.add_tap(mtu, true, Some("10.77.0.1/24"));
    (ns, tap)
}

fn run_in(ns: &NetNs, program: &str, args: &[&str]) -> (bool, String) {
    let out = ns.exec(program).args(args).output().expect("run");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn host_ping_gets_replies() {
    let (ns, tap) = one_tap(None);
    let image = guest("echo");
    let mut echo = Guest::start(
        &ns,
        &[
            &format!("--net:service={tap}"),
            image.to_str().unwrap(),
            "--ipv4=10.77.0.2/24",
        ],
    );
    echo.wait_for("echo: listening on 10.77.0.2/24 port 7");
    let (ok, out) = run_in(
        &ns,
        "ping",
        &["-c", "5", "-i", "0.2", "-W", "2", "10.77.0.2"],
    );
    assert!(ok && out.contains("5 received"), "{out}");
}

#[test]
fn pingd_answers_a_flood_until_its_limit() {
    let (ns, tap) = one_tap(None);
    let image = guest("pingd");
    let mut pingd = Guest::start(
        &ns,
        &[
            &format!("--net:service0={tap}"),
            image.to_str().unwrap(),
            "--ipv4=10.77.0.2",
            "--limit=2000",
        ],
    );
    pingd.wait_for("pingd: service0 is 10.77.0.2, MTU 1500");
    let (ok, out) = run_in(&ns, "ping", &["-f", "-c", "2000", "-W", "2", "10.77.0.2"]);
    assert!(ok && out.contains("2000 received"), "{out}");
    let (code, output) = pingd.wait();
    assert_eq!(code, 0, "{output}");
    assert!(
        output.contains("pingd: answered 2000 echo requests") && output.contains("SUCCESS"),
        "{output}"
    );
}

#[test]
fn pingd2_answers_on_two_interfaces() {
    let mut ns = NetNs::new();
    let tap0 = ns.add_tap(None, true, Some("10.78.0.1/24"));
    let tap1 = ns.add_tap(None, true, Some("10.79.0.1/24"));
    let image = guest("pingd2");
    let mut pingd = Guest::start(
        &ns,
        &[
            &format!("--net:service0={tap0}"),
            &format!("--net:service1={tap1}"),
            image.to_str().unwrap(),
            "--ipv4=10.78.0.2",
            "--ipv4-second=10.79.0.2",
            "--limit=1000",
        ],
    );
    pingd.wait_for("pingd: service1 is 10.79.0.2");
    let flood = |target: &'static str| {
        let mut command = ns.exec("ping");
        command.args(["-f", "-c", "500", "-W", "2", target]);
        command.output().expect("ping")
    };
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| flood("10.78.0.2"));
        let b = s.spawn(|| flood("10.79.0.2"));
        (a.join().unwrap(), b.join().unwrap())
    });
    for out in [a, b] {
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("500 received"), "{text}");
    }
    let (code, output) = pingd.wait();
    assert_eq!(code, 0, "{output}");
    assert!(output.contains("answered 1000 echo requests"), "{output}");
}

#[test]
fn a_9000_byte_mtu_reaches_the_guest_and_carries_jumbo_frames() {
    let (ns, tap) = one_tap(Some(9000));
    let image = guest("pingd");
    let mut pingd = Guest::start(
        &ns,
        &[
            &format!("--net:service0={tap}"),
            image.to_str().unwrap(),
            "--ipv4=10.77.0.2",
            "--limit=3",
        ],
    );
    pingd.wait_for("pingd: service0 is 10.77.0.2, MTU 9000");
    // 8000 bytes of payload, not fragmented: one 8042-byte frame each way.
    let (ok, out) = run_in(
        &ns,
        "ping",
        &[
            "-c",
            "3",
            "-i",
            "0.2",
            "-s",
            "8000",
            "-M",
            "do",
            "-W",
            "2",
            "10.77.0.2",
        ],
    );
    assert!(ok && out.contains("3 received"), "{out}");
    assert_eq!(pingd.wait().0, 0);
}

/// Fetches `count` pages in one curl run (one connection unless `close`);
/// returns curl's "CODE SIZE" line of each.
fn curl_many(ns: &NetNs, count: usize, close: bool) -> Vec<String> {
    let mut command = ns.exec("curl");
    command.args(["-s", "-w", "%{http_code} %{size_download}\\n"]);
    if close {
        command.args(["-H", "Connection: close"]);
    }
    for _ in 0..count {
        command.args(["-o", "/dev/null", "http://10.77.0.2/"]);
    }
    let out = command.output().expect("curl");
    assert!(
        out.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

fn stats(ns: &NetNs) -> String {
    let (ok, out) = run_in(ns, "curl", &["-s", "http://10.77.0.2/stats"]);
    assert!(ok, "{out}");
    out
}

fn stat(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} in {text}"))
}

#[test]
fn httpd_serves_a_thousand_pages_with_and_without_keep_alive() {
    let (ns, tap) = one_tap(None);
    let image = guest("httpd");
    let mut httpd = Guest::start(
        &ns,
        &[
            &format!("--net:service={tap}"),
            image.to_str().unwrap(),
            "--ipv4=10.77.0.2/24",
        ],
    );
    httpd.wait_for("httpd: serving on 10.77.0.2/24 port 80");
    let (ok, page) = run_in(&ns, "curl", &["-s", "http://10.77.0.2/"]);
    assert!(
        ok && page.contains("<h1>Hello from a unikernel</h1>"),
        "{page}"
    );
    let expected = format!("200 {}", page.len());

    let kept = curl_many(&ns, 1000, false);
    assert_eq!(kept.len(), 1000);
    assert!(kept.iter().all(|l| *l == expected), "{:?}", &kept[..3]);
    let after_keep_alive = stats(&ns);
    // The first page, one connection for the thousand, and the stats call.
    assert_eq!(
        stat(&after_keep_alive, "connections"),
        3,
        "{after_keep_alive}"
    );

    let closed = curl_many(&ns, 1000, true);
    assert!(closed.iter().all(|l| *l == expected), "{:?}", &closed[..3]);
    let after_close = stats(&ns);
    assert_eq!(
        stat(&after_close, "connections"),
        3 + 1000 + 1,
        "{after_close}"
    );
    assert_eq!(
        stat(&after_close, "requests"),
        1 + 1000 + 1 + 1000 + 1,
        "{after_close}"
    );
    let (ok, missing) = run_in(
        &ns,
        "curl",
        &[
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "http://10.77.0.2/nope",
        ],
    );
    assert!(ok && missing == "404", "{missing}");
}

/// `clients` concurrent connections each echo `bytes` of patterned data.
fn echo_clients(ns: &NetNs, clients: usize, bytes: usize) {
    ns.enter(|| {
        std::thread::scope(|s| {
            let workers: Vec<_> = (0..clients)
                .map(|id| {
                    s.spawn(move || {
                        let data: Vec<u8> = (0..bytes)
                            .map(|i| (i * 31 + id * 7).to_le_bytes()[0])
                            .collect();
                        let stream = TcpStream::connect(("10.77.0.2", 7)).expect("connect");
                        stream
                            .set_read_timeout(Some(Duration::from_secs(30)))
                            .unwrap();
                        let mut writer = stream.try_clone().unwrap();
                        let to_send = data.clone();
                        let sender = std::thread::spawn(move || {
                            writer.write_all(&to_send).expect("send");
                            writer.shutdown(Shutdown::Write).expect("shutdown");
                        });
                        let mut back = Vec::with_capacity(bytes);
                        (&stream).read_to_end(&mut back).expect("receive");
                        sender.join().unwrap();
                        assert_eq!(back.len(), bytes, "client {id} got {} bytes", back.len());
                        assert!(back == data, "client {id}: contents differ");
                    })
                })
                .collect();
            for w in workers {
                w.join().expect("client failed");
            }
        })
    });
}

#[test]
fn echo_serves_32_clients_a_mebibyte_each_through_the_ring() {
    let (ns, tap) = one_tap(None);
    let image = guest("echo");
    let mut echo = Guest::start(
        &ns,
        &[
            &format!("--net:service={tap}"),
            image.to_str().unwrap(),
            "--ipv4=10.77.0.2/24",
            "--connections=32",
        ],
    );
    echo.wait_for("echo: listening");
    echo_clients(&ns, 32, 1 << 20);
    let (code, output) = echo.wait();
    assert_eq!(code, 0, "{output}");
    assert!(
        output.contains(&format!(
            "echo: served 32 connections, {} bytes",
            32u64 << 20
        )),
        "{output}"
    );
}

/// The ring's paths for a busy host (§12.8): the I/O thread descheduled
/// under a reader that waits for it, reads served in the guest's own exit,
/// the thread woken late. Every byte still arrives, in order, for our guest
/// and for the same guest without our note (upstream's protocol).
#[test]
fn echo_through_the_ring_with_a_cpu_hog_on_each_core() {
    let (ns, tap) = one_tap(None);
    let _hog = common::CpuHog::start();
    for (image, clients, bytes) in [
        (guest("echo"), 8, 512 << 10),
        (common::cpl0_copy("echo"), 2, 64 << 10),
    ] {
        let connections = format!("--connections={clients}");
        let mut echo = Guest::start(
            &ns,
            &[
                &format!("--net:service={tap}"),
                image.to_str().unwrap(),
                "--ipv4=10.77.0.2/24",
                &connections,
            ],
        );
        echo.wait_for("echo: listening");
        echo_clients(&ns, clients, bytes);
        let (code, output) = echo.wait();
        assert_eq!(code, 0, "{output}");
        assert!(
            output.contains(&format!(
                "echo: served {clients} connections, {} bytes",
                clients * bytes
            )),
            "{output}"
        );
    }
}

#[test]
fn echo_over_hypercalls_only() {
    let (ns, tap) = one_tap(None);
    let image = guest("echo");
    let mut echo = Guest::start(
        &ns,
        &[
            "--no-net-ring",
            &format!("--net:service={tap}"),
            image.to_str().unwrap(),
            "--ipv4=10.77.0.2/24",
            "--connections=4",
        ],
    );
    echo.wait_for("echo: listening");
    echo_clients(&ns, 4, 256 << 10);
    let (code, output) = echo.wait();
    assert_eq!(code, 0, "{output}");
}

#[test]
fn a_missing_interface_fails_with_a_message() {
    let ns = NetNs::new();
    let image = guest("echo");
    let run = ns.tender([
        "--net:service=nosuchtap0",
        image.to_str().unwrap(),
        "--ipv4=10.77.0.2/24",
    ]);
    assert_eq!(run.code, 1, "{}", run.output());
    // Upstream's two lines, then the usage.
    assert!(
        run.stderr.starts_with(
            "tender: Could not attach interface: nosuchtap0: No such file or directory\n\
             tender: Invalid option: `--net:service=nosuchtap0'\nusage: tender "
        ),
        "{}",
        run.stderr
    );
}

#[test]
fn without_an_address_the_guest_asks_dhcp() {
    let (ns, tap) = one_tap(None);
    let leases = common::scratch("dhcp").join(format!("{tap}.leases"));
    let mut dnsmasq = ns
        .exec("dnsmasq")
        .args([
            "--no-daemon",
            "--port=0",
            "--bind-interfaces",
            &format!("--interface={tap}"),
        ])
        .args([
            "--dhcp-range=10.77.0.50,10.77.0.60,255.255.255.0,1h",
            &format!("--dhcp-leasefile={}", leases.display()),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start dnsmasq");
    let image = guest("httpd");
    let mut httpd = Guest::start(
        &ns,
        &[&format!("--net:service={tap}"), image.to_str().unwrap()],
    );
    let line = httpd.wait_for("httpd: serving on 10.77.0.");
    let address = line
        .split("serving on ")
        .nth(1)
        .and_then(|s| s.split('/').next())
        .expect("address")
        .to_owned();
    // The host learnt the guest's MAC from DHCP and sends no ARP request,
    // so the guest must resolve the host's MAC first; smoltcp drops the
    // reply that needed it. A ping gets that out of the way.
    let _ = run_in(&ns, "ping", &["-c", "2", "-i", "0.5", "-W", "1", &address]);
    let (ok, page) = run_in(
        &ns,
        "curl",
        &["-s", "-m", "5", &format!("http://{address}/")],
    );
    let _ = dnsmasq.kill();
    let _ = dnsmasq.wait();
    assert!(ok && page.contains("Hello from a unikernel"), "{page}");
    assert!(
        !httpd
            .console
            .seen()
            .iter()
            .any(|l| l.contains("lease lost")),
        "{:?}",
        httpd.console.seen()
    );
}

#[test]
fn ipv6_ping_and_http() {
    let (ns, tap) = one_tap(None);
    // The namespace starts with IPv6 off (no unsolicited frames): switch it
    // on for this tap only.
    let (ok, out) = run_in(
        &ns,
        "sysctl",
        &["-qw", &format!("net.ipv6.conf.{tap}.disable_ipv6=0")],
    );
    assert!(ok, "{out}");
    ns.ip(&["addr", "add", "fd00:77::1/64", "dev", &tap, "nodad"]);
    let image = guest("httpd");
    let mut httpd = Guest::start(
        &ns,
        &[
            &format!("--net:service={tap}"),
            image.to_str().unwrap(),
            "--ipv4=10.77.0.2/24",
            "--ipv6=fd00:77::2/64",
        ],
    );
    httpd.wait_for("httpd: serving");
    let (ok, out) = run_in(
        &ns,
        "ping",
        &["-6", "-c", "3", "-i", "0.2", "-W", "2", "fd00:77::2"],
    );
    assert!(ok && out.contains("3 received"), "{out}");
    let (ok, page) = run_in(
        &ns,
        "curl",
        &["-s", "-m", "10", "-g", "http://[fd00:77::2]/"],
    );
    assert!(ok && page.contains("Hello from a unikernel"), "{page}");
}

/// One keep-alive request on `stream`; the response's body.
fn http_get(stream: &mut TcpStream, path: &str) -> Result<String, String> {
    write!(stream, "GET {path} HTTP/1.1\r\nHost: guest\r\n\r\n")
        .map_err(|e| format!("write: {e}"))?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            Ok(_) => return Err("closed before the response".into()),
            Err(e) => return Err(format!("read: {e}")),
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    if !head.starts_with("HTTP/1.1 200 OK") {
        return Err(format!("response: {head}"));
    }
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: ")?.trim().parse().ok())
        .ok_or_else(|| format!("no length in {head}"))?;
    let mut body = vec![0u8; length];
    stream
        .read_exact(&mut body)
        .map_err(|e| format!("read body: {e}"))?;
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// `clients` threads connect at once (a barrier starts them) and fetch a
/// page each on a keep-alive connection; `opened` counts the connections
/// made. Each thread then meets the others and the caller at `all_open`
/// (if given), waits for `release`, fetches a second page and closes.
/// Returns the errors (connect refused or reset, short reads, timeouts).
fn concurrent_clients(
    clients: usize,
    opened: &std::sync::atomic::AtomicUsize,
    all_open: Option<&std::sync::Barrier>,
    release: &std::sync::atomic::AtomicBool,
) -> Vec<String> {
    use std::sync::atomic::Ordering;
    let start = std::sync::Barrier::new(clients);
    let errors = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for id in 0..clients {
            let (start, errors) = (&start, &errors);
            std::thread::Builder::new()
                .stack_size(128 << 10)
                .spawn_scoped(s, move || {
                    start.wait();
                    let run = || -> Result<(), String> {
                        let address = "10.77.0.2:80".parse().unwrap();
                        let connected =
                            TcpStream::connect_timeout(&address, Duration::from_secs(60))
                                .map_err(|e| format!("connect: {e}"));
                        let first = connected.and_then(|mut stream| {
                            stream
                                .set_read_timeout(Some(Duration::from_secs(60)))
                                .unwrap();
                            opened.fetch_add(1, Ordering::SeqCst);
                            http_get(&mut stream, "/").map(|_| stream)
                        });
                        // A client that failed still meets the others.
                        if let Some(all_open) = all_open {
                            all_open.wait();
                        }
                        while !release.load(Ordering::SeqCst) {
                            std::thread::sleep(Duration::from_millis(10));
                        }
                        http_get(&mut first?, "/")?;
                        Ok(())
                    };
                    if let Err(e) = run() {
                        errors.lock().unwrap().push(format!("client {id}: {e}"));
                    }
                })
                .expect("spawn a client");
        }
    });
    errors.into_inner().unwrap()
}

#[test]
fn httpd_serves_1000_connections_opened_at_once_without_a_reset() {
    let (ns, tap) = one_tap(None);
    let image = guest("httpd");
    let mut httpd = Guest::start(
        &ns,
        &[
            &format!("--net:service={tap}"),
            image.to_str().unwrap(),
            "--ipv4=10.77.0.2/24",
        ],
    );
    httpd.wait_for("httpd: serving on 10.77.0.2/24 port 80");
    let before = stats(&ns);
    let clients = 1000;
    let opened = std::sync::atomic::AtomicUsize::new(0);
    let all_open = std::sync::Barrier::new(clients + 1);
    let release = std::sync::atomic::AtomicBool::new(false);
    let (errors, during) = ns.enter(|| {
        std::thread::scope(|s| {
            let clients =
                s.spawn(|| concurrent_clients(clients, &opened, Some(&all_open), &release));
            all_open.wait();
            // Every client holds its connection open now.
            let during = stats(&ns);
            release.store(true, std::sync::atomic::Ordering::SeqCst);
            (clients.join().unwrap(), during)
        })
    });
    assert!(
        errors.is_empty(),
        "{} of {clients} clients failed, e.g. {:?}",
        errors.len(),
        &errors[..errors.len().min(5)]
    );
    // The thousand, and the stats connection itself.
    assert_eq!(stat(&during, "open_connections"), 1001, "{during}");
    let per_connection = (stat(&during, "heap_used") - stat(&before, "heap_used")) / 1000;
    eprintln!("guest heap per idle connection: {per_connection} bytes");
    // Two 64 KiB socket buffers and a little more (smoltcp's socket, the
    // task serving it); more would mean a leak or a larger buffer.
    assert!(
        (128 << 10..160 << 10).contains(&per_connection),
        "{per_connection} bytes per connection\n{during}"
    );
    let after = stats(&ns);
    assert_eq!(stat(&after, "syn_dropped"), 0, "{after}");
    // The stats calls before, during and now, and two pages per client.
    assert_eq!(stat(&after, "requests"), 1 + 1 + 2000 + 1, "{after}");
}

#[test]
fn beyond_the_connection_limit_clients_wait_and_the_guest_survives() {
    let (ns, tap) = one_tap(None);
    let image = guest("httpd");
    let mut httpd = Guest::start(
        &ns,
        &[
            &format!("--net:service={tap}"),
            image.to_str().unwrap(),
            "--ipv4=10.77.0.2/24",
            "--max-connections=100",
        ],
    );
    httpd.wait_for("httpd: serving on 10.77.0.2/24 port 80");
    let clients = 300;
    let opened = std::sync::atomic::AtomicUsize::new(0);
    let release = std::sync::atomic::AtomicBool::new(false);
    let errors = ns.enter(|| {
        std::thread::scope(|s| {
            let run = s.spawn(|| concurrent_clients(clients, &opened, None, &release));
            // Only the first 100 get in; the others wait in connect (their
            // SYNs held by the guest or retransmitted), none is refused.
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while opened.load(std::sync::atomic::Ordering::SeqCst) < 100
                && std::time::Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(50));
            }
            std::thread::sleep(Duration::from_secs(2));
            let at_limit = opened.load(std::sync::atomic::Ordering::SeqCst);
            // Let the first ones finish and close: the waiting get their turn.
            release.store(true, std::sync::atomic::Ordering::SeqCst);
            (run.join().unwrap(), at_limit)
        })
    });
    let (errors, at_limit) = errors;
    assert_eq!(at_limit, 100, "connections open at the limit");
    assert!(
        errors.is_empty(),
        "{} of {clients} clients failed, e.g. {:?}",
        errors.len(),
        &errors[..errors.len().min(5)]
    );
    let after = stats(&ns);
    assert!(stat(&after, "syn_held") >= 200, "{after}");
    assert_eq!(stat(&after, "connections"), 300 + 1, "{after}");
    assert_eq!(stat(&after, "max_tcp_sockets"), 100, "{after}");
}
