//! Network devices on real taps (§4.5, §6.3, §6.4). Every test that needs a
//! tap makes its own network namespace (deleted at the end, also on
//! failure), creates its taps there and runs the tender inside it; the
//! addresses used never leave the namespace. Needs root; skipped otherwise.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{guest, inheriting, is_root, tender, unique_name, NetNs, Run};
use hvt_abi::hypercall::RING_KICK_PIO_BASE;

const ETHERTYPE_PROBE: [u8; 2] = [0x88, 0xb5];
const ETHERTYPE_IPV4: [u8; 2] = [0x08, 0x00];

fn skip() -> bool {
    if !is_root() {
        eprintln!("net_tap: needs root (network namespaces, taps); skipped");
        return true;
    }
    false
}

fn netprobe() -> String {
    guest("netprobe").to_str().expect("UTF-8 path").to_owned()
}

fn netprobe2() -> String {
    guest("netprobe2").to_str().expect("UTF-8 path").to_owned()
}

fn assert_no_panic(run: &Run) {
    assert_ne!(run.code, -1, "tender was killed: {}", run.output());
    assert!(!run.stderr.contains("panicked"), "{}", run.output());
}

/// A successful probe run: exit 0, the bad handles refused, the frame sent.
fn assert_probe_ok(run: &Run) {
    assert_no_panic(run);
    assert_eq!(run.code, 0, "{}", run.output());
    assert!(
        run.stdout.contains("bad handles: EINVAL"),
        "{}",
        run.output()
    );
    assert!(
        run.stdout.contains("service0: sent frame"),
        "{}",
        run.output()
    );
}

/// Refused by the tender: exit 1, nothing from a guest, `message` as the
/// first line of stderr.
fn assert_refused(run: &Run, message: &str) {
    assert_no_panic(run);
    assert_eq!(run.code, 1, "{}", run.output());
    assert_eq!(run.stdout, "", "{}", run.output());
    let expected = format!("tender: {message}\n");
    assert!(
        run.stderr.starts_with(&expected),
        "expected {expected:?} at the start of {:?}",
        run.stderr
    );
}

/// The MACs the probe printed, in device order.
fn macs(run: &Run) -> Vec<[u8; 6]> {
    run.stdout
        .lines()
        .filter_map(|line| line.strip_prefix("MAC is "))
        .map(|text| {
            let bytes: Vec<u8> = text
                .split(':')
                .map(|b| u8::from_str_radix(b, 16).expect("hex MAC"))
                .collect();
            bytes.try_into().expect("six bytes")
        })
        .collect()
}

/// A raw packet socket on one interface of a namespace: it sees the frames
/// the guest writes and those the kernel sends to the guest.
struct PacketSocket(OwnedFd);

impl PacketSocket {
    fn open(ns: &NetNs, iface: &str) -> PacketSocket {
        ns.enter(|| {
            let protocol = u16::try_from(libc::ETH_P_ALL)
                .expect("ETH_P_ALL fits a u16")
                .to_be();
            // SAFETY: plain syscall; the result is checked.
            let fd = unsafe {
                libc::socket(
                    libc::AF_PACKET,
                    libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                    i32::from(protocol),
                )
            };
            assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
            // SAFETY: a fresh descriptor we own.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            let name = std::ffi::CString::new(iface).unwrap();
            // SAFETY: a NUL-terminated name.
            let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
            assert_ne!(index, 0, "if_nametoindex {iface}");
            // SAFETY: sockaddr_ll is plain old data.
            let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            addr.sll_family = u16::try_from(libc::AF_PACKET).expect("AF_PACKET fits a u16");
            addr.sll_protocol = protocol;
            addr.sll_ifindex = index as i32;
            // SAFETY: binds to a fully initialised sockaddr_ll.
            let rc = unsafe {
                libc::bind(
                    fd.as_raw_fd(),
                    (&addr as *const libc::sockaddr_ll).cast(),
                    libc::socklen_t::try_from(std::mem::size_of::<libc::sockaddr_ll>())
                        .expect("sockaddr_ll fits a socklen_t"),
                )
            };
            assert_eq!(rc, 0, "bind: {}", std::io::Error::last_os_error());
            PacketSocket(fd)
        })
    }

    /// Every frame queued so far.
    fn frames(&self) -> Vec<Vec<u8>> {
        let mut frames = Vec::new();
        let mut buffer = vec![0u8; 65536];
        loop {
            // SAFETY: receives into a buffer of the size given.
            let n = unsafe {
                libc::recv(
                    self.0.as_raw_fd(),
                    buffer.as_mut_ptr().cast(),
                    buffer.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if n < 0 {
                return frames;
            }
            frames.push(buffer[..n as usize].to_vec());
        }
    }
}

/// The probe's broadcast frame from `device` with source `mac`.
fn is_probe_frame(frame: &[u8], mac: &[u8; 6], device: &str) -> bool {
    let payload = format!("netprobe frame from {device}");
    frame.len() >= 14 + payload.len()
        && frame[..6] == [0xff; 6]
        && frame[6..12] == mac[..]
        && frame[12..14] == ETHERTYPE_PROBE
        && frame[14..14 + payload.len()] == *payload.as_bytes()
}

/// An IPv4 UDP frame to `mac` whose payload is `payload`.
fn is_udp_frame_to(frame: &[u8], mac: &[u8; 6], payload: &str) -> bool {
    frame.len() >= 14 + 20 + 8
        && frame[..6] == mac[..]
        && frame[12..14] == ETHERTYPE_IPV4
        && frame[14 + 9] == 17
        && frame.ends_with(payload.as_bytes())
}

/// A tender running in the background, its stdout read line by line.
struct Background {
    child: Child,
    lines: Receiver<String>,
    stdout: JoinHandle<String>,
    seen: String,
}

impl Background {
    fn spawn(mut command: Command) -> Background {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the tender");
        let (sender, lines) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        let stdout = std::thread::spawn(move || {
            let mut all = String::new();
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                all.push_str(&line);
                all.push('\n');
                let _ = sender.send(line);
            }
            all
        });
        Background {
            child,
            lines,
            stdout,
            seen: String::new(),
        }
    }

    /// Waits until a line of stdout equals `want`.
    fn wait_for_line(&mut self, want: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push_str(&line);
                    self.seen.push('\n');
                    if line == want {
                        return;
                    }
                }
                Err(_) => panic!("no line {want:?} from the guest; saw:\n{}", self.seen),
            }
        }
    }

    fn finish(mut self) -> Run {
        let mut stderr = String::new();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .expect("read stderr");
        let status = self.child.wait().expect("wait for the tender");
        Run {
            code: status.code().unwrap_or(-1),
            stdout: self.stdout.join().expect("stdout reader"),
            stderr,
        }
    }
}

/// Sends one UDP datagram from inside the namespace.
fn send_udp(ns: &NetNs, to: &str, payload: &str) {
    ns.enter(|| {
        let socket = std::net::UdpSocket::bind("0.0.0.0:0").expect("bind UDP");
        socket
            .send_to(payload.as_bytes(), to)
            .expect("send UDP datagram");
    });
}

#[test]
fn mtu_9000_is_reported() {
    if skip() {
        return;
    }
    let mut ns = NetNs::new();
    let tap = ns.add_tap(Some(9000), true, None);
    // The short form: the manifest declares one network device.
    let run = ns.tender(["--mem=64", &format!("--net={tap}"), &netprobe()]);
    assert_probe_ok(&run);
    assert!(run.stdout.contains("MTU is 9000\n"), "{}", run.output());
    assert!(
        run.stdout.contains("service0: handle 1\n"),
        "{}",
        run.output()
    );
}

#[test]
fn mac_from_the_command_line_reaches_the_guest_and_its_frames() {
    if skip() {
        return;
    }
    let mut ns = NetNs::new();
    let tap = ns.add_tap(None, true, None);
    let sniffer = PacketSocket::open(&ns, &tap);
    // The MAC option may come before the attach option.
    let run = ns.tender([
        "--mem=64",
        "--net-mac:service0=02:aa:bb:cc:dd:ee",
        &format!("--net:service0={tap}"),
        &netprobe(),
    ]);
    assert_probe_ok(&run);
    assert!(run.stdout.contains("MTU is 1500\n"), "{}", run.output());
    assert!(
        run.stdout.contains("MAC is 02:aa:bb:cc:dd:ee\n"),
        "{}",
        run.output()
    );
    let mac = [0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee];
    let frames = sniffer.frames();
    assert!(
        frames.iter().any(|f| is_probe_frame(f, &mac, "service0")),
        "the guest's frame is not on the tap: {frames:02x?}"
    );
}

#[test]
fn random_mac_is_local_and_unicast() {
    if skip() {
        return;
    }
    let mut ns = NetNs::new();
    let tap = ns.add_tap(None, true, None);
    let mut seen = Vec::new();
    for _ in 0..2 {
        let run = ns.tender(["--mem=64", &format!("--net:service0={tap}"), &netprobe()]);
        assert_probe_ok(&run);
        let mac = macs(&run)[0];
        assert_eq!(mac[0] & 0x01, 0, "multicast bit set: {mac:02x?}");
        assert_eq!(mac[0] & 0x02, 0x02, "local bit clear: {mac:02x?}");
        seen.push(mac);
    }
    assert_ne!(seen[0], seen[1], "the same random MAC twice");
}

#[test]
fn guest_answers_arp_and_receives_udp() {
    if skip() {
        return;
    }
    let mut ns = NetNs::new();
    let tap = ns.add_tap(None, true, Some("10.91.0.1/24"));
    let sniffer = PacketSocket::open(&ns, &tap);
    let mut probe = Background::spawn(ns.tender_command([
        "--mem=64",
        &format!("--net:service0={tap}"),
        &netprobe(),
        "10.91.0.2",
    ]));
    probe.wait_for_line("ready", Duration::from_secs(30));
    // The kernel asks for 10.91.0.2 by ARP (a frame to the guest), takes
    // the guest's reply (a frame from it) and only then sends the datagram
    // (a frame to the guest's MAC).
    send_udp(&ns, "10.91.0.2:7777", "hello guest");
    let run = probe.finish();
    assert_probe_ok(&run);
    assert!(
        run.stdout
            .contains("service0: answered ARP from 10.91.0.1\n"),
        "{}",
        run.output()
    );
    assert!(
        run.stdout.contains("service0: got UDP: hello guest\n"),
        "{}",
        run.output()
    );
    let mac = macs(&run)[0];
    let frames = sniffer.frames();
    assert!(
        frames
            .iter()
            .any(|f| is_udp_frame_to(f, &mac, "hello guest")),
        "no UDP frame to the guest's MAC on the tap: {frames:02x?}"
    );
}

/// Opens a new tap called `name` in `ns` the way a parent process would
/// before handing it to the tender.
fn open_tap(ns: &NetNs, name: &str) -> OwnedFd {
    ns.enter(|| {
        // SAFETY: plain syscall; the result is checked.
        let fd = unsafe { libc::open(c"/dev/net/tun".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
        assert!(
            fd >= 0,
            "open /dev/net/tun: {}",
            std::io::Error::last_os_error()
        );
        // SAFETY: a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: ifreq is plain old data.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        for (dst, &src) in req.ifr_name.iter_mut().zip(name.as_bytes()) {
            *dst = src as libc::c_char;
        }
        req.ifr_ifru.ifru_flags = libc::c_short::try_from(libc::IFF_TAP | libc::IFF_NO_PI)
            .expect("the tap flags fit a c_short");
        // SAFETY: TUNSETIFF on our descriptor with an initialised ifreq.
        let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF, &mut req) };
        assert_eq!(rc, 0, "TUNSETIFF: {}", std::io::Error::last_os_error());
        fd
    })
}

#[test]
fn preopened_tap_descriptor() {
    if skip() {
        return;
    }
    let mut ns = NetNs::new();
    let tap = unique_name("tfd");
    let fd = open_tap(&ns, &tap);
    ns.adopt_link(&tap);
    ns.ip(&["link", "set", &tap, "mtu", "1400", "up"]);
    let sniffer = PacketSocket::open(&ns, &tap);
    let raw = fd.as_raw_fd();
    let command = ns.tender_command([
        "--mem=64".to_owned(),
        format!("--net:service0=@{raw}"),
        netprobe(),
    ]);
    let run: Run = inheriting(command, raw)
        .output()
        .expect("run the tender")
        .into();
    assert_probe_ok(&run);
    assert!(run.stdout.contains("MTU is 1400\n"), "{}", run.output());
    let mac = macs(&run)[0];
    let frames = sniffer.frames();
    assert!(
        frames.iter().any(|f| is_probe_frame(f, &mac, "service0")),
        "the guest's frame is not on the tap: {frames:02x?}"
    );
}

#[test]
fn bad_descriptors_are_refused() {
    // No tap involved: stdin of the tender is /dev/null, fd 1000 is closed.
    // (Sockets: tests/net_socket.rs.)
    for (fd, reason) in [
        ("1000", "Bad file descriptor"),
        (
            "0",
            "a character device, not a tap or a SOCK_SEQPACKET or SOCK_DGRAM socket",
        ),
        ("x1", "Invalid argument"),
    ] {
        let option = format!("--net:service0=@{fd}");
        let run = tender([&option, &netprobe()]);
        common::assert_invalid_option(
            &run,
            &format!("Could not attach interface: @{fd}: {reason}"),
            &option,
        );
    }
}

#[test]
fn missing_interface_is_refused_and_not_created() {
    if skip() {
        return;
    }
    let ns = NetNs::new();
    let missing = unique_name("nx");
    let option = format!("--net:service0={missing}");
    let run = ns.tender(["--mem=64", &option, &netprobe()]);
    // Upstream's words: it looks for the name among the interfaces.
    common::assert_invalid_option(
        &run,
        &format!("Could not attach interface: {missing}: No such file or directory"),
        &option,
    );
    assert!(!ns.try_ip(&["link", "show", &missing]).status.success());
    let host = Command::new("ip")
        .args(["link", "show", &missing])
        .output()
        .expect("run ip");
    assert!(!host.status.success(), "{missing} exists on the host");
}

#[test]
fn down_interface_is_refused() {
    if skip() {
        return;
    }
    let mut ns = NetNs::new();
    let tap = ns.add_tap(None, false, None);
    let option = format!("--net:service0={tap}");
    let run = ns.tender(["--mem=64", &option, &netprobe()]);
    common::assert_invalid_option(
        &run,
        &format!("Could not attach interface: {tap}: Network is down"),
        &option,
    );
}

#[test]
fn interface_that_is_not_a_tap_is_refused() {
    if skip() {
        return;
    }
    let ns = NetNs::new();
    ns.ip(&["link", "set", "lo", "up"]);
    let run = ns.tender(["--mem=64", "--net:service0=lo", &netprobe()]);
    common::assert_invalid_option(
        &run,
        "Could not attach interface: lo: Invalid argument",
        "--net:service0=lo",
    );
}

#[test]
fn long_interface_name_is_refused() {
    let option = "--net:service0=abcdefghijklmnop";
    let run = tender([option, &netprobe()]);
    common::assert_invalid_option(
        &run,
        "Could not attach interface: abcdefghijklmnop: File name too long",
        option,
    );
}

#[test]
fn undeclared_device_is_refused() {
    for option in ["--net:nosuch=tap0", "--net-mac:nosuch=02:00:00:00:00:01"] {
        let run = tender([option, &netprobe()]);
        common::assert_invalid_option(&run, "Resource not declared in manifest: 'nosuch'", option);
    }
}

#[test]
fn malformed_mac_is_refused() {
    for bad in ["02:00:00:00:00", "02:00:00:00:00:zz", "02-00-00-00-00-01"] {
        let option = format!("--net-mac:service0={bad}");
        let run = tender([&option, &netprobe()]);
        // Upstream's one line: its sscanf does not match, so no reason.
        assert_no_panic(&run);
        assert_eq!(run.code, 1, "{}", run.output());
        let lines: Vec<&str> = run.stderr.lines().collect();
        assert_eq!(lines[0], format!("tender: Invalid option: `{option}'"));
        assert!(lines[1].starts_with("usage: tender "), "{}", run.stderr);
    }
}

#[test]
fn the_last_of_two_options_for_a_device_wins() {
    if skip() {
        return;
    }
    let mut ns = NetNs::new();
    let tap = ns.add_tap(None, true, None);
    let other = ns.add_tap(None, true, None);
    let first = PacketSocket::open(&ns, &tap);
    let second = PacketSocket::open(&ns, &other);
    let run = ns.tender([
        "--net-mac:service0=02:00:00:00:00:01".to_owned(),
        format!("--net:service0={tap}"),
        "--net-mac:service0=02:00:00:00:00:02".to_owned(),
        format!("--net={other}"),
        netprobe(),
    ]);
    assert_probe_ok(&run);
    let mac = [2, 0, 0, 0, 0, 2];
    assert_eq!(macs(&run), [mac]);
    let frames = second.frames();
    assert!(
        frames.iter().any(|f| is_probe_frame(f, &mac, "service0")),
        "the guest's frame is not on the second tap: {frames:02x?}"
    );
    let frames = first.frames();
    assert!(
        !frames.iter().any(|f| is_probe_frame(f, &mac, "service0")),
        "the guest's frame is on the first tap: {frames:02x?}"
    );
    // The same tap twice: the second attach finds it busy, as upstream's.
    let option = format!("--net:service0={tap}");
    let run = ns.tender([option.as_str(), option.as_str(), &netprobe()]);
    common::assert_invalid_option(
        &run,
        &format!("Could not attach interface: {tap}: Device or resource busy"),
        &option,
    );
}

#[test]
fn declared_device_without_a_tap_is_not_attached() {
    // Both lines under the program's name, as upstream prints them.
    let message = "Device 'service0' of type NET_BASIC declared but not attached.\n\
                   tender: All declared devices must be attached. See --help for syntax.";
    let run = tender([&netprobe()]);
    assert_refused(&run, message);
    // A MAC alone attaches nothing.
    let run = tender(["--net-mac:service0=02:00:00:00:00:01", &netprobe()]);
    assert_refused(&run, message);
}

#[test]
fn short_frame_write_ends_the_tender() {
    if skip() {
        return;
    }
    let mut ns = NetNs::new();
    let tap = ns.add_tap(None, true, None);
    let run = ns.tender([
        "--mem=64",
        &format!("--net:service0={tap}"),
        &netprobe(),
        "short-write",
    ]);
    assert_no_panic(&run);
    assert_eq!(run.code, 1, "{}", run.output());
    assert!(!run.stdout.contains("survived"), "{}", run.output());
    assert!(
        run.stderr.contains(&format!(
            "tender: Fatal error when writing to {tap}: Invalid argument"
        )),
        "{}",
        run.output()
    );
}

#[test]
fn two_nics_use_handles_1_and_2() {
    if skip() {
        return;
    }
    let mut ns = NetNs::new();
    let tap0 = ns.add_tap(None, true, Some("10.91.0.1/24"));
    let tap1 = ns.add_tap(Some(9000), true, Some("10.92.0.1/24"));
    let sniffer0 = PacketSocket::open(&ns, &tap0);
    let sniffer1 = PacketSocket::open(&ns, &tap1);
    let mut probe = Background::spawn(ns.tender_command([
        "--mem=64",
        &format!("--net:service0={tap0}"),
        &format!("--net:service1={tap1}"),
        "--net-mac:service1=02:00:00:00:01:01",
        &netprobe2(),
        "10.91.0.2",
        "10.92.0.2",
    ]));
    probe.wait_for_line("ready", Duration::from_secs(30));
    send_udp(&ns, "10.91.0.2:7777", "hello service0");
    send_udp(&ns, "10.92.0.2:7777", "hello service1");
    let run = probe.finish();
    assert_probe_ok(&run);
    for line in [
        "service0: handle 1",
        "service1: handle 2",
        "MTU is 1500",
        "MTU is 9000",
        "MAC is 02:00:00:00:01:01",
        "service1: sent frame",
        "service0: got UDP: hello service0",
        "service1: got UDP: hello service1",
        "netprobe: done",
    ] {
        assert!(
            run.stdout.lines().any(|l| l == line),
            "no line {line:?} in {}",
            run.output()
        );
    }
    let macs = macs(&run);
    assert_ne!(macs[0], macs[1]);
    // Each device's frames go to its own tap, and only there.
    let frames0 = sniffer0.frames();
    let frames1 = sniffer1.frames();
    assert!(frames0
        .iter()
        .any(|f| is_probe_frame(f, &macs[0], "service0")));
    assert!(frames1
        .iter()
        .any(|f| is_probe_frame(f, &macs[1], "service1")));
    assert!(!frames0
        .iter()
        .any(|f| is_probe_frame(f, &macs[1], "service1")));
    assert!(!frames1
        .iter()
        .any(|f| is_probe_frame(f, &macs[0], "service0")));
    assert!(frames0
        .iter()
        .any(|f| is_udp_frame_to(f, &macs[0], "hello service0")));
    assert!(frames1
        .iter()
        .any(|f| is_udp_frame_to(f, &macs[1], "hello service1")));
}

#[test]
fn corrupt_ring_indices_end_the_tender() {
    if skip() {
        return;
    }
    let mut ns = NetNs::new();
    let tap = ns.add_tap(None, true, None);
    let run = ns.tender([
        "--mem=64",
        &format!("--net:service0={tap}"),
        &netprobe(),
        "ring-garbage",
    ]);
    assert_no_panic(&run);
    assert_eq!(run.code, 1, "{}", run.output());
    assert!(!run.stdout.contains("survived"), "{}", run.output());
    assert!(
        run.stderr
            .contains("tender: net ring: invalid indices ent_head=0, ent_tail=2147483648"),
        "{}",
        run.output()
    );
}

#[test]
fn an_8_bit_doorbell_is_refused() {
    if skip() {
        return;
    }
    let mut ns = NetNs::new();
    let tap = ns.add_tap(None, true, None);
    let run = ns.tender([
        "--mem=64",
        &format!("--net:service0={tap}"),
        &netprobe(),
        "kick8",
    ]);
    assert_no_panic(&run);
    assert_eq!(run.code, 1, "{}", run.output());
    assert!(
        run.stderr.contains(&format!(
            "Invalid guest port access: port={RING_KICK_PIO_BASE:#x}"
        )),
        "{}",
        run.output()
    );
}

#[test]
fn the_ring_is_offered_at_4_gib_too() {
    if skip() {
        return;
    }
    let mut ns = NetNs::new();
    let tap = ns.add_tap(None, true, None);
    // kick8 first checks that a ring is offered ("no ring offered", 2).
    let run = ns.tender([
        "--mem=4096",
        &format!("--net:service0={tap}"),
        &netprobe(),
        "kick8",
    ]);
    assert_eq!(run.code, 1, "{}", run.output());
    assert!(!run.stdout.contains("no ring offered"), "{}", run.output());
}
