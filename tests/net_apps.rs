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
}

impl Guest {
    fn start(ns: &NetNs, args: &[&str]) -> Guest {
        let mut child = ns
            .tender_command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the tender");
        let console = ConsoleLines::capture(&mut child);
        Guest { child, console }
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
        // SAFETY: signals our own child (the `ip netns exec` wrapper passes
        // SIGTERM on through `timeout` to the tender).
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
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
    assert!(
        run.stderr
            .contains("Could not attach interface: nosuchtap0: No such device"),
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
