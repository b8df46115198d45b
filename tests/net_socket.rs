//! Network devices on sockets handed over as `--net:NAME=@FD` (§4.5), as
//! a user-space network (gvproxy's datagram link) hands them: one end of a
//! socketpair goes to the tender, the test holds the other and exchanges
//! real Ethernet frames with the guest through it. Every path is covered: the
//! shared-memory ring with our guest (§12.8) and with upstream's protocol
//! (the guest without our note), and the hypercalls (`--no-net-ring`, and
//! pingd, whose raw frames go by hypercall). No tap, no namespace.

mod common;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{cpl0_copy, guest, inheriting, tender_bin, ConsoleLines, Run};

/// The test's side of the link.
const HOST_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];
const HOST_IP: [u8; 4] = [10, 0, 0, 1];
/// The guest's, given with `--net-mac` where the test needs to know it.
const GUEST_MAC: [u8; 6] = [0x02, 0x12, 0x34, 0x56, 0x78, 0x9a];
const GUEST_IP: [u8; 4] = [10, 0, 0, 2];

/// A socketpair of `kind`, both ends close-on-exec.
fn socketpair(kind: libc::c_int) -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: creates a socketpair into a local array.
    let rc = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            kind | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    assert_eq!(rc, 0, "socketpair: {}", std::io::Error::last_os_error());
    // SAFETY: two fresh descriptors we own.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

const KINDS: [(libc::c_int, &str); 2] = [
    (libc::SOCK_SEQPACKET, "SOCK_SEQPACKET"),
    (libc::SOCK_DGRAM, "SOCK_DGRAM"),
];

/// How a runtime guest (echo: smoltcp on the runtime's device) moves its
/// frames.
#[derive(Clone, Copy, Debug)]
enum Path {
    /// Our guest, through the ring (served at its exits, §12.8).
    Ring,
    /// The same guest with `--no-net-ring`: NET_READ and NET_WRITE.
    Hypercalls,
    /// The guest without our note: upstream's ring protocol, served by the
    /// ring's thread.
    UpstreamRing,
}

const PATHS: [Path; 3] = [Path::Ring, Path::Hypercalls, Path::UpstreamRing];

impl Path {
    fn image(self, name: &str) -> String {
        let path = match self {
            Path::Ring | Path::Hypercalls => guest(name),
            Path::UpstreamRing => cpl0_copy(name),
        };
        path.to_str().expect("UTF-8 path").to_owned()
    }

    fn options(self) -> Vec<String> {
        match self {
            Path::Hypercalls => vec!["--no-net-ring".into()],
            Path::Ring | Path::UpstreamRing => Vec::new(),
        }
    }

    /// What the tender's fatal messages add for the ring.
    fn suffix(self) -> &'static str {
        match self {
            Path::Hypercalls => "",
            Path::Ring | Path::UpstreamRing => " (ring)",
        }
    }
}

/// The tender with `args`, descriptor `fd` inherited, under a time limit.
fn command(fd: RawFd, args: &[String]) -> Command {
    let mut command = Command::new("timeout");
    command.arg("60").arg(tender_bin()).args(args);
    let mut command = inheriting(command, fd);
    command.stdin(Stdio::null());
    command
}

/// A tender running in the background with its end of the socket.
struct Tender {
    child: Child,
    console: ConsoleLines,
}

impl Tender {
    /// Starts the tender on `theirs` (closed here once the child has it).
    fn start(theirs: OwnedFd, args: &[String]) -> Tender {
        Tender::start_with(theirs, args, false)
    }

    /// [`Tender::start`], with `TENDER_STATS=1` if `stats`.
    fn start_with(theirs: OwnedFd, args: &[String], stats: bool) -> Tender {
        let fd = theirs.as_raw_fd();
        let mut command = command(fd, args);
        if stats {
            command.env("TENDER_STATS", "1");
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the tender");
        drop(theirs);
        let console = ConsoleLines::capture(&mut child);
        Tender { child, console }
    }

    fn wait_for(&mut self, text: &str) -> String {
        self.console.wait_for(text, Duration::from_secs(20))
    }

    /// Stops the tender (SIGTERM), waits for it; its code and every line
    /// it printed.
    fn stop(self) -> (i32, Vec<String>) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("a pid");
        // SAFETY: signals our own child, `timeout`, which passes SIGTERM on
        // to the tender.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        self.wait()
    }

    /// Waits for the tender to end; its code and every line it printed.
    fn wait(mut self) -> (i32, Vec<String>) {
        let status = self.child.wait().expect("wait for the tender");
        self.console.settle(Duration::from_millis(200));
        let _ = self.console.output();
        let lines = self.console.seen().to_vec();
        (status.code().unwrap_or(-1), lines)
    }
}

impl Drop for Tender {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Gives `socket` a receive timeout, so a missing frame fails the test.
fn set_timeout(socket: &OwnedFd, timeout: Duration) {
    let tv = libc::timeval {
        tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap(),
        tv_usec: 0,
    };
    // SAFETY: SO_RCVTIMEO reads one timeval of the size given.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            libc::socklen_t::try_from(std::mem::size_of::<libc::timeval>()).unwrap(),
        )
    };
    assert_eq!(rc, 0);
}

fn send(socket: &OwnedFd, frame: &[u8]) {
    // SAFETY: sends from a live slice.
    let n = unsafe { libc::send(socket.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
    assert_eq!(n, isize::try_from(frame.len()).unwrap(), "send");
}

/// The next frame from the guest (10 s at most).
fn receive(socket: &OwnedFd) -> Vec<u8> {
    set_timeout(socket, Duration::from_secs(10));
    let mut buffer = vec![0u8; 2048];
    // SAFETY: receives into a live buffer of the length given.
    let n = unsafe {
        libc::recv(
            socket.as_raw_fd(),
            buffer.as_mut_ptr().cast(),
            buffer.len(),
            0,
        )
    };
    assert!(
        n >= 0,
        "no frame from the guest: {}",
        std::io::Error::last_os_error()
    );
    buffer.truncate(n.unsigned_abs());
    buffer
}

fn ethernet(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(14 + payload.len());
    frame.extend_from_slice(&dst);
    frame.extend_from_slice(&src);
    frame.extend_from_slice(&ethertype.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

fn arp(operation: u16, sha: [u8; 6], spa: [u8; 4], tha: [u8; 6], tpa: [u8; 4]) -> Vec<u8> {
    let mut arp = vec![0, 1, 0x08, 0x00, 6, 4];
    arp.extend_from_slice(&operation.to_be_bytes());
    for part in [&sha[..], &spa, &tha, &tpa] {
        arp.extend_from_slice(part);
    }
    arp
}

/// The Internet checksum of `bytes`.
fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|pair| u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !u16::try_from(sum).unwrap()
}

/// An IPv4 packet with an ICMP echo message of `kind` (8 request, 0 reply).
fn icmp_echo(kind: u8, src: [u8; 4], dst: [u8; 4], id: u16, seq: u16, data: &[u8]) -> Vec<u8> {
    let mut icmp = vec![kind, 0, 0, 0];
    icmp.extend_from_slice(&id.to_be_bytes());
    icmp.extend_from_slice(&seq.to_be_bytes());
    icmp.extend_from_slice(data);
    let sum = checksum(&icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    let total = u16::try_from(20 + icmp.len()).unwrap();
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&[0x12, 0x34, 0x40, 0x00, 64, 1, 0, 0]);
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    let sum = checksum(&ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    ip.extend_from_slice(&icmp);
    ip
}

/// The first frame from the guest of `ethertype`, skipping any other.
fn receive_of(socket: &OwnedFd, ethertype: u16) -> Vec<u8> {
    for _ in 0..20 {
        let frame = receive(socket);
        if frame.len() >= 14 && frame[12..14] == ethertype.to_be_bytes() {
            return frame;
        }
    }
    panic!("no frame of type {ethertype:#06x} among 20 from the guest");
}

/// The ARP request the test sends for the guest's address.
fn arp_request() -> Vec<u8> {
    let request = arp(1, HOST_MAC, HOST_IP, [0; 6], GUEST_IP);
    ethernet([0xff; 6], HOST_MAC, 0x0806, &request)
}

/// The guest's answer to [`arp_request`] (a 42-byte frame).
fn arp_reply() -> Vec<u8> {
    let reply = arp(2, GUEST_MAC, GUEST_IP, HOST_MAC, HOST_IP);
    ethernet(HOST_MAC, GUEST_MAC, 0x0806, &reply)
}

const ECHO_ID: u16 = 0x4242;
const ECHO_SEQ: u16 = 7;

fn echo_data() -> Vec<u8> {
    (0u8..56).collect()
}

/// The echo request the test sends to the guest.
fn echo_request() -> Vec<u8> {
    let echo = icmp_echo(8, HOST_IP, GUEST_IP, ECHO_ID, ECHO_SEQ, &echo_data());
    ethernet(GUEST_MAC, HOST_MAC, 0x0800, &echo)
}

/// Checks that `frame` answers [`echo_request`]: from the guest to the
/// test, valid checksums, the request's identifier, sequence and data.
fn assert_echo_reply(frame: &[u8], context: &str) {
    assert_eq!(
        frame[..14],
        ethernet(HOST_MAC, GUEST_MAC, 0x0800, &[]),
        "{context}"
    );
    let ip = &frame[14..];
    let header = usize::from(ip[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    assert_eq!((ip[0] >> 4, ip[9]), (4, 1), "IPv4, ICMP: {context}");
    assert_eq!(
        (&ip[12..16], &ip[16..20]),
        (&GUEST_IP[..], &HOST_IP[..]),
        "{context}"
    );
    assert_eq!(checksum(&ip[..header]), 0, "IP checksum: {context}");
    let icmp = &ip[header..total];
    assert_eq!(checksum(icmp), 0, "ICMP checksum: {context}");
    assert_eq!(icmp[..2], [0, 0], "an echo reply: {context}");
    assert_eq!(icmp[4..6], ECHO_ID.to_be_bytes(), "{context}");
    assert_eq!(icmp[6..8], ECHO_SEQ.to_be_bytes(), "{context}");
    assert_eq!(icmp[8..], echo_data(), "{context}");
}

/// pingd on a socketpair of `kind` (its raw frames go by hypercall): it
/// answers the test's ARP request and echo request with exactly the frames
/// a network expects and, woken by each frame through POLL, exits 0 after
/// the echo.
fn pingd_answers(kind: libc::c_int, kind_name: &str) {
    let (ours, theirs) = socketpair(kind);
    let fd = theirs.as_raw_fd();
    let args = [
        format!("--net:service0=@{fd}"),
        format!("--net-mac:service0={}", mac_text(GUEST_MAC)),
        guest("pingd").to_str().expect("UTF-8 path").to_owned(),
        "--ipv4=10.0.0.2".into(),
        "--limit=1".into(),
    ];
    let mut tender = Tender::start(theirs, &args);
    tender.wait_for("pingd: service0 is 10.0.0.2, MTU 1500");
    // The guest is asleep in POLL: each frame must wake it.
    std::thread::sleep(Duration::from_millis(100));
    send(&ours, &arp_request());
    assert_eq!(receive(&ours), arp_reply(), "ARP reply ({kind_name})");
    std::thread::sleep(Duration::from_millis(100));
    send(&ours, &echo_request());
    // pingd answers in place: the request with its addresses swapped.
    let answer = icmp_echo(0, GUEST_IP, HOST_IP, ECHO_ID, ECHO_SEQ, &echo_data());
    assert_eq!(
        receive(&ours),
        ethernet(HOST_MAC, GUEST_MAC, 0x0800, &answer),
        "echo reply ({kind_name})"
    );
    let (code, lines) = tender.wait();
    assert_eq!(code, 0, "{kind_name}: {lines:#?}");
    for line in ["pingd: answered 1 echo requests", "SUCCESS"] {
        assert!(
            lines.iter().any(|l| l == line),
            "{kind_name}: no {line:?} in {lines:#?}"
        );
    }
}

fn mac_text(mac: [u8; 6]) -> String {
    mac.map(|b| format!("{b:02x}")).join(":")
}

#[test]
fn pingd_answers_arp_and_echo_over_a_seqpacket_socketpair() {
    pingd_answers(libc::SOCK_SEQPACKET, "SOCK_SEQPACKET");
}

#[test]
fn pingd_answers_arp_and_echo_over_a_datagram_socketpair() {
    pingd_answers(libc::SOCK_DGRAM, "SOCK_DGRAM");
}

/// The echo guest (smoltcp on the runtime's device) on `theirs`, by
/// `path`, once it listens at 10.0.0.2.
fn start_echo(theirs: OwnedFd, path: Path) -> Tender {
    start_echo_with(theirs, path, false)
}

/// [`start_echo`], with the tender's counters printed at the end if
/// `stats`.
fn start_echo_with(theirs: OwnedFd, path: Path, stats: bool) -> Tender {
    let fd = theirs.as_raw_fd();
    let mut args = path.options();
    args.extend([
        format!("--net:service=@{fd}"),
        format!("--net-mac:service={}", mac_text(GUEST_MAC)),
        path.image("echo"),
        "--ipv4=10.0.0.2/24".into(),
    ]);
    let mut tender = Tender::start_with(theirs, &args, stats);
    tender.wait_for("echo: listening on 10.0.0.2/24 port 7");
    // The guest is asleep in POLL: each frame must wake it.
    std::thread::sleep(Duration::from_millis(100));
    tender
}

#[test]
fn a_runtime_guest_answers_arp_and_echo_over_each_path() {
    for (kind, kind_name) in KINDS {
        for path in PATHS {
            let context = format!("{kind_name}, {path:?}");
            let (ours, theirs) = socketpair(kind);
            let tender = start_echo_with(theirs, path, true);
            send(&ours, &arp_request());
            let reply = receive_of(&ours, 0x0806);
            assert_eq!(reply[..42], arp_reply(), "ARP reply ({context})");
            for seq in 0..3 {
                std::thread::sleep(Duration::from_millis(50));
                send(&ours, &echo_request());
                assert_echo_reply(&receive_of(&ours, 0x0800), &format!("{context}, #{seq}"));
            }
            let (_, lines) = tender.stop();
            // The frames went the way the path says.
            let ring_entries: u64 = lines
                .iter()
                .filter_map(|l| l.strip_prefix("tender: stats: "))
                .flat_map(str::split_whitespace)
                .filter_map(|pair| pair.split_once('='))
                .filter(|(name, _)| name.starts_with("net_ring_") && name.ends_with("_entries"))
                .map(|(_, n)| n.parse::<u64>().expect("a count"))
                .sum();
            match path {
                Path::Hypercalls => assert_eq!(ring_entries, 0, "{context}: {lines:#?}"),
                Path::Ring | Path::UpstreamRing => {
                    // An ARP reply and three echoes at least, and the reads.
                    assert!(ring_entries >= 4, "{context}: {lines:#?}")
                }
            }
        }
    }
}

/// The probe on a socket: what it printed (it exits by itself).
fn probe(theirs: OwnedFd, options: &[&str]) -> Run {
    let fd = theirs.as_raw_fd();
    let mut args: Vec<String> = options.iter().map(|&o| o.to_owned()).collect();
    args.push(format!("--net:service0=@{fd}"));
    args.push(guest("netprobe").to_str().unwrap().to_owned());
    let out = command(fd, &args).output().expect("run the tender");
    drop(theirs);
    out.into()
}

#[test]
fn a_socket_device_has_mtu_1500_and_the_mac_given_or_a_random_one() {
    for (kind, kind_name) in KINDS {
        let (ours, theirs) = socketpair(kind);
        let mac = "--net-mac:service0=02:12:34:56:78:9a";
        let run = probe(theirs, &[mac]);
        assert_eq!(run.code, 0, "{kind_name}: {}", run.output());
        assert!(
            run.stdout
                .contains("MTU is 1500\nMAC is 02:12:34:56:78:9a\n"),
            "{kind_name}: {}",
            run.output()
        );
        assert!(run
            .stdout
            .contains("bad handles: EINVAL\nservice0: sent frame\n"));
        // The probe's broadcast frame, from the MAC given.
        let mut payload = b"netprobe frame from service0".to_vec();
        payload.resize(46, 0);
        assert_eq!(
            receive(&ours),
            ethernet([0xff; 6], GUEST_MAC, 0x88b5, &payload),
            "{kind_name}"
        );

        let (_ours, theirs) = socketpair(kind);
        let run = probe(theirs, &[]);
        assert_eq!(run.code, 0, "{kind_name}: {}", run.output());
        let text = run
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix("MAC is "))
            .expect("a MAC line");
        let first = u8::from_str_radix(&text[..2], 16).unwrap();
        assert_eq!(first & 0x03, 0x02, "{kind_name}: not local unicast: {text}");
    }
}

/// The lines a refused `--net:service0=@FD` prints: the reason, upstream's
/// "Invalid option" and the usage; exit 1, nothing from a guest.
fn assert_refused(run: &Run, fd: RawFd, reason: &str) {
    common::assert_invalid_option(
        run,
        &format!("Could not attach interface: @{fd}: {reason}"),
        &format!("--net:service0=@{fd}"),
    );
}

#[test]
fn descriptors_that_do_not_carry_frames_are_refused() {
    let netprobe = guest("netprobe").to_str().unwrap().to_owned();
    let refused = |fd: RawFd| -> Run {
        command(fd, &[format!("--net:service0=@{fd}"), netprobe.clone()])
            .output()
            .expect("run the tender")
            .into()
    };

    let (_ours, stream) = socketpair(libc::SOCK_STREAM);
    assert_refused(
        &refused(stream.as_raw_fd()),
        stream.as_raw_fd(),
        "a SOCK_STREAM socket, which does not keep frames apart \
         (use SOCK_SEQPACKET or SOCK_DGRAM)",
    );

    let file: OwnedFd = std::fs::File::open(&netprobe).unwrap().into();
    assert_refused(
        &refused(file.as_raw_fd()),
        file.as_raw_fd(),
        "a regular file, not a tap or a SOCK_SEQPACKET or SOCK_DGRAM socket",
    );

    // A datagram socket with no peer could send no frame.
    // SAFETY: a fresh socket, owned at once.
    let lone = unsafe {
        OwnedFd::from_raw_fd(libc::socket(
            libc::AF_UNIX,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            0,
        ))
    };
    assert_refused(
        &refused(lone.as_raw_fd()),
        lone.as_raw_fd(),
        "Transport endpoint is not connected",
    );

    // A connected UDP socket: an ICMP error from the network would look
    // like a peer gone, so only Unix-domain sockets are taken.
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind UDP");
    udp.connect("127.0.0.1:9").expect("connect UDP");
    let udp: OwnedFd = udp.into();
    assert_refused(
        &refused(udp.as_raw_fd()),
        udp.as_raw_fd(),
        "not a Unix-domain socket (a socketpair's end)",
    );

    // Not open in the tender (nothing inherits 900).
    let run: Run = Command::new("timeout")
        .arg("60")
        .arg(tender_bin())
        .args(["--net:service0=@900", &netprobe])
        .stdin(Stdio::null())
        .output()
        .expect("run the tender")
        .into();
    assert_refused(&run, 900, "Bad file descriptor");
}

/// The single line of the tender's own on stderr (the guest's console
/// lines aside).
fn tender_lines(lines: &[String]) -> Vec<&str> {
    lines
        .iter()
        .filter(|l| l.starts_with("tender: "))
        .map(String::as_str)
        .collect()
}

#[test]
fn a_frame_sent_to_a_closed_peer_ends_the_tender_with_one_line() {
    for (kind, kind_name) in KINDS {
        let error = if kind == libc::SOCK_SEQPACKET {
            "Broken pipe"
        } else {
            "Connection refused"
        };
        for path in PATHS {
            let context = format!("{kind_name}, {path:?}");
            let (ours, theirs) = socketpair(kind);
            let fd = theirs.as_raw_fd();
            let tender = start_echo(theirs, path);
            // A request, then the test stops listening: the answer has
            // nowhere to go. (A connection is shut for reading only, so
            // that the guest does not see its end first.)
            send(&ours, &arp_request());
            if kind == libc::SOCK_SEQPACKET {
                // SAFETY: shuts down our own socket.
                let rc = unsafe { libc::shutdown(ours.as_raw_fd(), libc::SHUT_RD) };
                assert_eq!(rc, 0);
            } else {
                drop(ours);
            }
            let (code, lines) = tender.wait();
            // Exit 1, not a signal.
            assert_eq!(code, 1, "{context}: {lines:#?}");
            let expected = format!(
                "tender: Fatal error when writing to @{fd}{}: {error} \
                 (the socket's other end is closed)",
                path.suffix()
            );
            assert_eq!(tender_lines(&lines), [expected.as_str()], "{context}");
        }
    }
}

#[test]
fn the_end_of_a_seqpacket_connection_ends_the_tender_with_one_line() {
    for path in PATHS {
        let (ours, theirs) = socketpair(libc::SOCK_SEQPACKET);
        let fd = theirs.as_raw_fd();
        let tender = start_echo(theirs, path);
        // The guest, asleep in POLL, wakes to the hang-up and reads.
        drop(ours);
        let (code, lines) = tender.wait();
        assert_eq!(code, 1, "{path:?}: {lines:#?}");
        let expected = format!(
            "tender: Fatal error when reading from @{fd}{}: the socket's other end is closed",
            path.suffix()
        );
        assert_eq!(tender_lines(&lines), [expected.as_str()], "{path:?}");
    }
}

#[test]
fn the_last_net_option_for_a_device_wins() {
    let (first_ours, first) = socketpair(libc::SOCK_SEQPACKET);
    let (ours, second) = socketpair(libc::SOCK_SEQPACKET);
    let (a, b) = (first.as_raw_fd(), second.as_raw_fd());
    let mut command = Command::new("timeout");
    command.arg("60").arg(tender_bin()).args([
        format!("--net:service0=@{a}"),
        format!("--net:service0=@{b}"),
        // The same descriptor again changes nothing.
        format!("--net:service0=@{b}"),
        "--net-mac:service0=02:00:00:00:00:07".into(),
        format!("--net-mac:service0={}", mac_text(GUEST_MAC)),
        guest("netprobe").to_str().unwrap().to_owned(),
    ]);
    let out = inheriting(inheriting(command, a), b)
        .stdin(Stdio::null())
        .output()
        .expect("run the tender");
    drop((first, second));
    let run: Run = out.into();
    assert_eq!(run.code, 0, "{}", run.output());
    assert!(
        run.stdout.contains("MAC is 02:12:34:56:78:9a\n"),
        "{}",
        run.output()
    );
    // The probe's frame went to the second socket; the first was closed
    // unused.
    assert_eq!(&receive(&ours)[..12], [[0xff; 6], GUEST_MAC].concat());
    assert!(
        receive(&first_ours).is_empty(),
        "the first socket got a frame"
    );
}
