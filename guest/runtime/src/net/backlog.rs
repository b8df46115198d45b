//! The listeners' SYN backlog: what a kernel's SYN and accept queues do,
//! on top of smoltcp, which has neither (a segment that no socket accepts
//! is answered with RST, so a burst of SYNs beyond the sockets that happen
//! to be listening is reset).
//!
//! Every pure SYN (SYN without ACK or RST, checksums valid) for a port with
//! a [`TcpListener`](super::TcpListener) is taken out of the device's frames
//! before smoltcp sees it ([`Capture`]). After smoltcp's poll, [`Backlog::admit`]
//! decides for each one, oldest first:
//!
//! * a free listening socket of the listener takes it, or the listener's
//!   pool grows by a new listening socket (buffers allocated now, not when
//!   the listener is bound) while the pool holds fewer than `backlog`
//!   connections (handshaking or waiting for `accept`) and the stack holds
//!   fewer than `max_tcp_sockets` TCP sockets; the frame is then handed to
//!   smoltcp in a second poll ("injected");
//! * otherwise it is held (at most [`MAX_HELD`] SYNs, each for at most
//!   [`HOLD_TIME`]) and admitted once `accept` or a closed connection makes
//!   room: the client waits, as for a kernel with a full backlog;
//! * beyond that it is dropped silently: the client retransmits it later.
//!   A listened port never answers a SYN with RST.
//!
//! A retransmitted SYN of a handshake under way is dropped (smoltcp resends
//! its SYN-ACK by itself); a SYN for an existing connection, for an address
//! that is not ours or for a port whose listener is gone goes to smoltcp
//! as it is.

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::vec::Vec;
use core::task::Waker;

use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::phy::{self, Device, DeviceCapabilities};
use smoltcp::socket::{tcp, Socket};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{
    EthernetFrame, EthernetProtocol, IpAddress, IpEndpoint, IpListenEndpoint, IpProtocol,
    Ipv4Packet, Ipv6Packet, TcpPacket,
};

/// SYNs held at most while no listening socket can take them (also the
/// most taken from the device in one poll).
pub const MAX_HELD: usize = 1024;
/// How long a held SYN waits before it is forgotten (the client will have
/// retransmitted it by then, which holds it again).
pub const HOLD_TIME: Duration = Duration::from_secs(30);
/// A handshake that has not completed after this long is given up and its
/// socket freed, as a kernel gives up a SYN-RECEIVED entry after its last
/// SYN-ACK retransmission (63 s on Linux): a flood of SYNs from addresses
/// that never answer cannot keep a backlog full.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Largest frame held: a SYN with options is under 100 bytes; one that
/// carries data is taken up to a standard Ethernet frame.
const MAX_HELD_FRAME: usize = 1514;

/// The connection a SYN opens, seen from this side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SynKey {
    pub local: IpEndpoint,
    pub remote: IpEndpoint,
}

/// The connection a frame opens if it is a pure SYN (SYN set, ACK and RST
/// clear) over IPv4 or IPv6 in Ethernet with valid checksums; `None` for
/// anything else, whatever its bytes (nothing here can panic on a frame).
pub fn parse_syn(frame: &[u8]) -> Option<SynKey> {
    let ethernet = EthernetFrame::new_checked(frame).ok()?;
    let (src, dst, payload) = match ethernet.ethertype() {
        EthernetProtocol::Ipv4 => {
            let ip = Ipv4Packet::new_checked(ethernet.payload()).ok()?;
            if ip.next_header() != IpProtocol::Tcp
                || ip.more_frags()
                || ip.frag_offset() != 0
                || !ip.verify_checksum()
            {
                return None;
            }
            (
                IpAddress::Ipv4(ip.src_addr()),
                IpAddress::Ipv4(ip.dst_addr()),
                ip.payload(),
            )
        }
        EthernetProtocol::Ipv6 => {
            let ip = Ipv6Packet::new_checked(ethernet.payload()).ok()?;
            if ip.next_header() != IpProtocol::Tcp {
                return None;
            }
            (
                IpAddress::Ipv6(ip.src_addr()),
                IpAddress::Ipv6(ip.dst_addr()),
                ip.payload(),
            )
        }
        _ => return None,
    };
    let tcp = TcpPacket::new_checked(payload).ok()?;
    if !tcp.syn() || tcp.ack() || tcp.rst() || tcp.dst_port() == 0 {
        return None;
    }
    if !tcp.verify_checksum(&src, &dst) {
        return None;
    }
    Some(SynKey {
        local: IpEndpoint::new(dst, tcp.dst_port()),
        remote: IpEndpoint::new(src, tcp.src_port()),
    })
}

/// One listener's sockets that are not yet the application's: listening,
/// handshaking, or connected and waiting for `accept`.
pub struct Pool {
    pub backlog: usize,
    /// Each socket with the time its SYN was handed to it.
    pub sockets: Vec<(SocketHandle, Instant)>,
    /// The task waiting in `accept`.
    pub waker: Option<Waker>,
}

/// Whether a pool socket is a connection for `accept` (or one that already
/// ended: `accept` hands it out too, its reads report the end).
pub fn is_acceptable(state: tcp::State) -> bool {
    !matches!(state, tcp::State::Listen | tcp::State::SynReceived)
}

struct Held {
    key: SynKey,
    frame: Vec<u8>,
    since: Instant,
}

/// What the backlog has done, for statistics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BacklogStats {
    /// SYNs handed to a listening socket.
    pub admitted: u64,
    /// SYNs that had to wait at least once.
    pub held: u64,
    /// SYNs dropped: the held queue full, held too long, or too large.
    pub dropped: u64,
    /// Retransmitted SYNs of a handshake under way (dropped: smoltcp
    /// resends its SYN-ACK) or of a held SYN (merged with it).
    pub duplicates: u64,
    /// Handshakes given up after [`HANDSHAKE_TIMEOUT`].
    pub handshakes_timed_out: u64,
}

/// The listeners of one stack, their pools and the SYNs on their way.
pub struct Backlog {
    pub listeners: BTreeMap<u16, Pool>,
    /// SYNs taken from the device during the last poll.
    captured: Vec<Held>,
    /// SYNs waiting for room, oldest first.
    held: VecDeque<Held>,
    /// Frames to hand to smoltcp in the next poll.
    inject: VecDeque<Vec<u8>>,
    max_held: usize,
    /// Most TCP sockets (of every kind) the stack holds before a listener
    /// stops growing its pool.
    pub max_tcp_sockets: usize,
    pub stats: BacklogStats,
}

impl Backlog {
    pub fn new(max_tcp_sockets: usize, max_held: usize) -> Backlog {
        Backlog {
            listeners: BTreeMap::new(),
            captured: Vec::new(),
            held: VecDeque::new(),
            inject: VecDeque::new(),
            max_held,
            max_tcp_sockets,
            stats: BacklogStats::default(),
        }
    }

    /// SYNs waiting for room now.
    pub fn held_now(&self) -> usize {
        self.held.len()
    }

    /// Takes `frame` if it is a SYN for a listened port.
    fn capture(&mut self, frame: &[u8], now: Instant) -> bool {
        if self.listeners.is_empty() {
            return false;
        }
        let Some(key) = parse_syn(frame) else {
            return false;
        };
        if !self.listeners.contains_key(&key.local.port) {
            return false;
        }
        if frame.len() > MAX_HELD_FRAME || self.captured.len() >= MAX_HELD {
            // Dropped: the client retransmits.
            self.stats.dropped += 1;
            return true;
        }
        self.captured.push(Held {
            key,
            frame: frame.to_vec(),
            since: now,
        });
        true
    }

    /// Decides for every captured and held SYN (see the module's text);
    /// `ours` tells whether an address is the interface's. Returns whether
    /// frames are to be injected (poll smoltcp again).
    pub fn admit(
        &mut self,
        sockets: &mut SocketSet<'static>,
        ours: impl Fn(IpAddress) -> bool,
        now: Instant,
    ) -> bool {
        if self.captured.is_empty() && self.held.is_empty() {
            return false;
        }
        // The connections that exist (`true`: a pool's handshake under way).
        let mut existing: BTreeMap<(IpEndpoint, u16), bool> = BTreeMap::new();
        let mut tcp_sockets = 0usize;
        for (_, socket) in sockets.iter() {
            let Socket::Tcp(socket) = socket else {
                continue;
            };
            tcp_sockets += 1;
            if let (Some(local), Some(remote)) = (socket.local_endpoint(), socket.remote_endpoint())
            {
                existing.insert(
                    (remote, local.port),
                    socket.state() == tcp::State::SynReceived,
                );
            }
        }
        let mut free: BTreeMap<u16, usize> = BTreeMap::new();
        for (&port, pool) in &self.listeners {
            let listening = pool
                .sockets
                .iter()
                .filter(|&&(h, _)| sockets.get::<tcp::Socket>(h).state() == tcp::State::Listen)
                .count();
            free.insert(port, listening);
        }

        let mut waiting = core::mem::take(&mut self.held);
        let newly: Vec<Held> = core::mem::take(&mut self.captured);
        let mut held_keys: BTreeSet<SynKey> = BTreeSet::new();
        let mut new_held: VecDeque<Held> = VecDeque::new();
        for (syn, was_held) in waiting
            .drain(..)
            .map(|h| (h, true))
            .chain(newly.into_iter().map(|h| (h, false)))
        {
            let port = syn.key.local.port;
            let Some(pool) = self.listeners.get_mut(&port) else {
                // The listener is gone: smoltcp answers as for any closed port.
                self.inject.push_back(syn.frame);
                continue;
            };
            if !ours(syn.key.local.addr) {
                // Not for us: smoltcp drops it.
                self.inject.push_back(syn.frame);
                continue;
            }
            match existing.get(&(syn.key.remote, port)) {
                Some(true) => {
                    self.stats.duplicates += 1;
                    continue;
                }
                Some(false) => {
                    self.inject.push_back(syn.frame);
                    continue;
                }
                None => {}
            }
            if was_held && now - syn.since >= HOLD_TIME {
                self.stats.dropped += 1;
                continue;
            }
            let room = free.entry(port).or_default();
            if *room > 0 {
                *room -= 1;
                // The socket that takes it is whichever listening one smoltcp
                // finds first: mark the oldest free one as in use from now.
                if let Some(entry) = pool
                    .sockets
                    .iter_mut()
                    .find(|(h, _)| sockets.get::<tcp::Socket>(*h).state() == tcp::State::Listen)
                {
                    entry.1 = now;
                }
            } else if pool.sockets.len() < pool.backlog && tcp_sockets < self.max_tcp_sockets {
                let Some(handle) = listen(sockets, port) else {
                    self.stats.dropped += 1;
                    continue;
                };
                pool.sockets.push((handle, now));
                tcp_sockets += 1;
            } else {
                if held_keys.contains(&syn.key) {
                    // A retransmission of a held SYN: keep the newer frame.
                    if let Some(old) = new_held.iter_mut().find(|h| h.key == syn.key) {
                        old.frame = syn.frame;
                        old.since = old.since.max(syn.since);
                    }
                    self.stats.duplicates += 1;
                    continue;
                }
                if new_held.len() >= self.max_held {
                    self.stats.dropped += 1;
                    continue;
                }
                if !was_held {
                    self.stats.held += 1;
                }
                held_keys.insert(syn.key);
                new_held.push_back(syn);
                continue;
            }
            existing.insert((syn.key.remote, port), true);
            self.stats.admitted += 1;
            self.inject.push_back(syn.frame);
        }
        self.held = new_held;
        !self.inject.is_empty()
    }

    /// After the last poll of a round: frees the pools' idle listening
    /// sockets (a pool grows again on demand), gives up their handshakes
    /// older than [`HANDSHAKE_TIMEOUT`] (reset, then freed by the stack
    /// once closed: pushed on `closing`), and wakes the listeners that have
    /// a connection to accept.
    pub fn settle(
        &mut self,
        sockets: &mut SocketSet<'static>,
        closing: &mut Vec<SocketHandle>,
        now: Instant,
    ) {
        for pool in self.listeners.values_mut() {
            let mut acceptable = false;
            pool.sockets.retain(|&(handle, since)| {
                let socket = sockets.get_mut::<tcp::Socket>(handle);
                match socket.state() {
                    tcp::State::Listen => {
                        sockets.remove(handle);
                        false
                    }
                    tcp::State::SynReceived if now - since >= HANDSHAKE_TIMEOUT => {
                        socket.abort();
                        self.stats.handshakes_timed_out += 1;
                        closing.push(handle);
                        false
                    }
                    tcp::State::SynReceived => true,
                    _ => {
                        acceptable = true;
                        true
                    }
                }
            });
            if acceptable {
                if let Some(waker) = pool.waker.take() {
                    waker.wake();
                }
            }
        }
    }
}

/// A new socket listening on `port`, added to `sockets`.
fn listen(sockets: &mut SocketSet<'static>, port: u16) -> Option<SocketHandle> {
    let mut socket = super::tcp::new_socket();
    socket.listen(IpListenEndpoint { addr: None, port }).ok()?;
    Some(sockets.add(socket))
}

/// smoltcp's view of the device during a poll: the backlog's injected SYNs
/// first, then the device's frames, less the SYNs the backlog captures
/// (handed to smoltcp as empty frames, which it skips). A device frame is
/// looked at where the device holds it, not copied.
pub struct Capture<'a, D: Device> {
    pub device: &'a mut D,
    pub backlog: &'a mut Backlog,
    /// Where an injected SYN is while smoltcp reads it.
    pub buffer: &'a mut Vec<u8>,
}

pub enum CaptureRx<'a, R> {
    /// A SYN the backlog admitted.
    Injected(&'a [u8]),
    /// A frame of the device, unless the backlog captures it.
    Device {
        token: R,
        backlog: &'a mut Backlog,
        timestamp: Instant,
    },
}

impl<R: phy::RxToken> phy::RxToken for CaptureRx<'_, R> {
    fn consume<T, F: FnOnce(&[u8]) -> T>(self, f: F) -> T {
        match self {
            CaptureRx::Injected(frame) => f(frame),
            CaptureRx::Device {
                token,
                backlog,
                timestamp,
            } => token.consume(|frame| {
                if backlog.capture(frame, timestamp) {
                    f(&[])
                } else {
                    f(frame)
                }
            }),
        }
    }
}

impl<D: Device> Device for Capture<'_, D> {
    type RxToken<'b>
        = CaptureRx<'b, D::RxToken<'b>>
    where
        Self: 'b;
    type TxToken<'b>
        = D::TxToken<'b>
    where
        Self: 'b;

    fn receive(&mut self, timestamp: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let Capture {
            device,
            backlog,
            buffer,
        } = self;
        if !backlog.inject.is_empty() {
            let tx = device.transmit(timestamp)?;
            if let Some(frame) = backlog.inject.pop_front() {
                **buffer = frame;
            }
            return Some((CaptureRx::Injected(buffer), tx));
        }
        let (token, tx) = device.receive(timestamp)?;
        let rx = CaptureRx::Device {
            token,
            backlog,
            timestamp,
        };
        Some((rx, tx))
    }

    fn transmit(&mut self, timestamp: Instant) -> Option<Self::TxToken<'_>> {
        self.device.transmit(timestamp)
    }

    fn capabilities(&self) -> DeviceCapabilities {
        self.device.capabilities()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::phy::ChecksumCapabilities;
    use smoltcp::wire::{
        EthernetAddress, EthernetRepr, Ipv4Address, Ipv4Repr, Ipv6Address, Ipv6Repr, TcpControl,
        TcpRepr, TcpSeqNumber,
    };
    use std::vec;

    const US: Ipv4Address = Ipv4Address::new(10, 0, 0, 1);
    const PEER: Ipv4Address = Ipv4Address::new(10, 0, 0, 2);

    fn tcp_repr(src_port: u16, dst_port: u16, control: TcpControl, ack: bool) -> TcpRepr<'static> {
        TcpRepr {
            src_port,
            dst_port,
            control,
            seq_number: TcpSeqNumber(1000),
            ack_number: ack.then_some(TcpSeqNumber(1)),
            window_len: 64240,
            window_scale: Some(7),
            max_seg_size: Some(1460),
            sack_permitted: true,
            sack_ranges: [None, None, None],
            timestamp: None,
            payload: &[],
        }
    }

    /// An Ethernet frame carrying a TCP segment from PEER:src_port to US:dst_port.
    fn frame4(src_port: u16, dst_port: u16, control: TcpControl, ack: bool) -> Vec<u8> {
        let tcp = tcp_repr(src_port, dst_port, control, ack);
        let ip = Ipv4Repr {
            src_addr: PEER,
            dst_addr: US,
            next_header: IpProtocol::Tcp,
            payload_len: tcp.buffer_len(),
            hop_limit: 64,
        };
        let eth = EthernetRepr {
            src_addr: EthernetAddress([2, 0, 0, 0, 0, 2]),
            dst_addr: EthernetAddress([2, 0, 0, 0, 0, 1]),
            ethertype: EthernetProtocol::Ipv4,
        };
        let mut bytes = vec![0; eth.buffer_len() + ip.buffer_len() + tcp.buffer_len()];
        let mut frame = EthernetFrame::new_unchecked(&mut bytes[..]);
        eth.emit(&mut frame);
        let mut packet = Ipv4Packet::new_unchecked(frame.payload_mut());
        let caps = ChecksumCapabilities::default();
        ip.emit(&mut packet, &caps);
        let mut segment = TcpPacket::new_unchecked(packet.payload_mut());
        tcp.emit(
            &mut segment,
            &IpAddress::Ipv4(PEER),
            &IpAddress::Ipv4(US),
            &caps,
        );
        bytes
    }

    fn syn(src_port: u16, dst_port: u16) -> Vec<u8> {
        frame4(src_port, dst_port, TcpControl::Syn, false)
    }

    fn frame6(src_port: u16, dst_port: u16) -> Vec<u8> {
        let (src, dst) = (
            Ipv6Address::new(0xfd00, 0, 0, 0, 0, 0, 0, 2),
            Ipv6Address::new(0xfd00, 0, 0, 0, 0, 0, 0, 1),
        );
        let tcp = tcp_repr(src_port, dst_port, TcpControl::Syn, false);
        let ip = Ipv6Repr {
            src_addr: src,
            dst_addr: dst,
            next_header: IpProtocol::Tcp,
            payload_len: tcp.buffer_len(),
            hop_limit: 64,
        };
        let eth = EthernetRepr {
            src_addr: EthernetAddress([2, 0, 0, 0, 0, 2]),
            dst_addr: EthernetAddress([2, 0, 0, 0, 0, 1]),
            ethertype: EthernetProtocol::Ipv6,
        };
        let mut bytes = vec![0; eth.buffer_len() + ip.buffer_len() + tcp.buffer_len()];
        let mut frame = EthernetFrame::new_unchecked(&mut bytes[..]);
        eth.emit(&mut frame);
        let mut packet = Ipv6Packet::new_unchecked(frame.payload_mut());
        ip.emit(&mut packet);
        let mut segment = TcpPacket::new_unchecked(packet.payload_mut());
        let caps = ChecksumCapabilities::default();
        tcp.emit(
            &mut segment,
            &IpAddress::Ipv6(src),
            &IpAddress::Ipv6(dst),
            &caps,
        );
        bytes
    }

    #[test]
    fn a_pure_syn_is_recognised_over_ipv4_and_ipv6() {
        let key = parse_syn(&syn(40000, 80)).expect("IPv4 SYN");
        assert_eq!(key.local, IpEndpoint::new(IpAddress::Ipv4(US), 80));
        assert_eq!(key.remote, IpEndpoint::new(IpAddress::Ipv4(PEER), 40000));
        let key = parse_syn(&frame6(40001, 443)).expect("IPv6 SYN");
        assert_eq!(key.local.port, 443);
        assert_eq!(key.remote.port, 40001);
    }

    #[test]
    fn other_segments_are_not_syns() {
        assert_eq!(
            parse_syn(&frame4(1, 80, TcpControl::Syn, true)),
            None,
            "SYN-ACK"
        );
        assert_eq!(
            parse_syn(&frame4(1, 80, TcpControl::None, true)),
            None,
            "ACK"
        );
        assert_eq!(
            parse_syn(&frame4(1, 80, TcpControl::Rst, false)),
            None,
            "RST"
        );
        assert_eq!(parse_syn(&syn(1, 0)), None, "port 0");
    }

    #[test]
    fn a_bad_checksum_or_a_fragment_is_not_a_syn() {
        let good = syn(40000, 80);
        let mut tcp_sum = good.clone();
        let last = tcp_sum.len() - 1;
        tcp_sum[last] ^= 0x55;
        assert_eq!(parse_syn(&tcp_sum), None);
        let mut ip_sum = good.clone();
        ip_sum[14 + 8] ^= 1; // TTL: the header checksum no longer matches
        assert_eq!(parse_syn(&ip_sum), None);
        let mut fragment = good.clone();
        fragment[14 + 6] |= 0x20; // more fragments
        assert_eq!(parse_syn(&fragment), None);
    }

    #[test]
    fn no_frame_makes_the_parser_panic() {
        let good = syn(40000, 80);
        for len in 0..good.len() {
            assert_eq!(parse_syn(&good[..len]), None, "cut at {len}");
        }
        // Every single-byte corruption: parsed or refused, never a panic.
        for at in 0..good.len() {
            for value in [0u8, 0x0f, 0x45, 0xff] {
                let mut bad = good.clone();
                bad[at] = value;
                let _ = parse_syn(&bad);
            }
        }
        assert_eq!(parse_syn(&frame6(1, 80)[..60]), None);
    }

    fn backlog_on(port: u16, backlog: usize, max_sockets: usize, max_held: usize) -> Backlog {
        let mut b = Backlog::new(max_sockets, max_held);
        b.listeners.insert(
            port,
            Pool {
                backlog,
                sockets: Vec::new(),
                waker: None,
            },
        );
        b
    }

    fn at(secs: u64) -> Instant {
        Instant::from_secs(i64::try_from(secs).unwrap())
    }

    /// A device with frames to read; what smoltcp sends is counted.
    struct Frames {
        rx: VecDeque<Vec<u8>>,
        tx: Vec<u8>,
        sent: usize,
    }

    struct FrameRx(Vec<u8>);
    struct FrameTx<'a>(&'a mut Vec<u8>, &'a mut usize);

    impl phy::RxToken for FrameRx {
        fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
            f(&self.0)
        }
    }

    impl phy::TxToken for FrameTx<'_> {
        fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
            self.0.resize(len, 0);
            *self.1 += 1;
            f(self.0)
        }
    }

    impl Device for Frames {
        type RxToken<'a> = FrameRx;
        type TxToken<'a> = FrameTx<'a>;
        fn receive(&mut self, _: Instant) -> Option<(FrameRx, FrameTx<'_>)> {
            let frame = self.rx.pop_front()?;
            Some((FrameRx(frame), FrameTx(&mut self.tx, &mut self.sent)))
        }
        fn transmit(&mut self, _: Instant) -> Option<FrameTx<'_>> {
            Some(FrameTx(&mut self.tx, &mut self.sent))
        }
        fn capabilities(&self) -> DeviceCapabilities {
            let mut caps = DeviceCapabilities::default();
            caps.medium = phy::Medium::Ethernet;
            caps.max_transmission_unit = 1514;
            caps
        }
    }

    fn interface(device: &mut Frames) -> smoltcp::iface::Interface {
        let mut iface = smoltcp::iface::Interface::new(
            smoltcp::iface::Config::new(EthernetAddress([2, 0, 0, 0, 0, 1]).into()),
            device,
            Instant::ZERO,
        );
        iface.update_ip_addrs(|a| {
            let _ = a.push(smoltcp::wire::IpCidr::new(IpAddress::Ipv4(US), 24));
        });
        iface
    }

    /// smoltcp's poll through `Capture` of the admitted SYNs (and `rx`);
    /// returns how many sockets went to SYN-RECEIVED.
    fn deliver(b: &mut Backlog, sockets: &mut SocketSet<'static>) -> usize {
        let handshaking = |sockets: &SocketSet<'static>| {
            sockets
                .iter()
                .filter(
                    |(_, s)| matches!(s, Socket::Tcp(t) if t.state() == tcp::State::SynReceived),
                )
                .count()
        };
        let before = handshaking(sockets);
        let mut device = Frames {
            rx: VecDeque::new(),
            tx: Vec::new(),
            sent: 0,
        };
        let mut iface = interface(&mut device);
        let mut buffer = Vec::new();
        let mut capture = Capture {
            device: &mut device,
            backlog: b,
            buffer: &mut buffer,
        };
        iface.poll(Instant::ZERO, &mut capture, sockets);
        assert!(b.inject.is_empty());
        handshaking(sockets) - before
    }

    #[test]
    fn the_pool_grows_to_the_backlog_then_syns_wait_then_are_dropped() {
        let mut b = backlog_on(80, 3, 100, 2);
        let mut sockets = SocketSet::new(vec![]);
        for port in 0..6 {
            assert!(b.capture(&syn(40000 + port, 80), at(0)));
        }
        assert!(b.admit(&mut sockets, |_| true, at(0)));
        assert_eq!(deliver(&mut b, &mut sockets), 3, "three fit the backlog");
        assert_eq!(b.listeners[&80].sockets.len(), 3);
        assert_eq!(b.held_now(), 2, "two wait");
        assert_eq!(b.stats.dropped, 1, "the sixth finds the queue full");
        assert_eq!(b.stats.held, 2);
        assert_eq!(b.stats.admitted, 3);
        // Nothing changes while there is no room.
        assert!(!b.admit(&mut sockets, |_| true, at(1)));
        assert_eq!(b.held_now(), 2);
        // accept takes one: the oldest held SYN gets its place.
        b.listeners.get_mut(&80).unwrap().sockets.remove(0);
        assert!(b.admit(&mut sockets, |_| true, at(2)));
        assert_eq!(deliver(&mut b, &mut sockets), 1);
        assert_eq!(b.held_now(), 1);
        assert_eq!(b.stats.admitted, 4);
    }

    #[test]
    fn the_stack_limit_stops_growth_and_held_syns_expire() {
        let mut b = backlog_on(80, 100, 2, 10);
        let mut sockets = SocketSet::new(vec![]);
        for port in 0..4 {
            b.capture(&syn(40000 + port, 80), at(0));
        }
        b.admit(&mut sockets, |_| true, at(0));
        assert_eq!(deliver(&mut b, &mut sockets), 2, "two sockets at most");
        assert_eq!(b.held_now(), 2);
        // A retransmission of a held SYN does not queue it twice.
        b.capture(&syn(40003, 80), at(5));
        b.admit(&mut sockets, |_| true, at(5));
        assert_eq!(b.held_now(), 2);
        assert_eq!(b.stats.duplicates, 1);
        // 40002 was last seen at 0 s, 40003 at 5 s.
        b.admit(&mut sockets, |_| true, at(HOLD_TIME.secs()));
        assert_eq!(b.held_now(), 1);
        assert_eq!(b.stats.dropped, 1);
        b.max_tcp_sockets = 3;
        assert!(b.admit(&mut sockets, |_| true, at(HOLD_TIME.secs() + 1)));
        assert_eq!(deliver(&mut b, &mut sockets), 1);
        assert_eq!(b.held_now(), 0);
    }

    #[test]
    fn a_retransmitted_syn_of_a_handshake_under_way_is_dropped() {
        let mut b = backlog_on(80, 10, 10, 10);
        let mut sockets = SocketSet::new(vec![]);
        b.capture(&syn(40000, 80), at(0));
        b.admit(&mut sockets, |_| true, at(0));
        assert_eq!(deliver(&mut b, &mut sockets), 1);
        b.capture(&syn(40000, 80), at(1));
        assert!(!b.admit(&mut sockets, |_| true, at(1)));
        assert_eq!(b.listeners[&80].sockets.len(), 1, "no second socket");
        assert_eq!((b.stats.duplicates, b.stats.dropped), (1, 0));
    }

    #[test]
    fn syns_for_other_ports_or_addresses_go_to_smoltcp_untouched() {
        let mut b = backlog_on(80, 0, 0, 10);
        let mut sockets = SocketSet::new(vec![]);
        assert!(!b.capture(&syn(40000, 81), at(0)), "no listener on 81");
        assert!(!b.capture(&frame4(1, 80, TcpControl::None, true), at(0)));
        assert!(b.capture(&syn(40000, 80), at(0)));
        // Not our address: passed on (smoltcp drops it), no socket made.
        assert!(b.admit(&mut sockets, |_| false, at(0)));
        assert_eq!(b.inject.len(), 1);
        assert!(b.listeners[&80].sockets.is_empty());
        // The listener went away: passed on (smoltcp answers a closed port).
        b.inject.clear();
        b.capture(&syn(40001, 80), at(0));
        b.listeners.clear();
        assert!(b.admit(&mut sockets, |_| true, at(0)));
        assert_eq!(b.inject.len(), 1);
    }

    #[test]
    fn settle_frees_idle_listening_sockets_and_stale_handshakes() {
        let mut b = backlog_on(80, 10, 10, 10);
        let mut sockets = SocketSet::new(vec![]);
        b.capture(&syn(40000, 80), at(0));
        b.capture(&syn(40001, 80), at(0));
        b.admit(&mut sockets, |_| true, at(0));
        // Only the first SYN reaches its socket; the other stays listening.
        let frame = b.inject.pop_front().unwrap();
        b.inject.push_back(frame);
        b.inject.truncate(1);
        assert_eq!(deliver(&mut b, &mut sockets), 1);
        let mut closing = Vec::new();
        b.settle(&mut sockets, &mut closing, at(1));
        assert_eq!(b.listeners[&80].sockets.len(), 1, "the idle one is freed");
        assert_eq!(sockets.iter().count(), 1);
        assert!(closing.is_empty());
        b.settle(&mut sockets, &mut closing, at(HANDSHAKE_TIMEOUT.secs()));
        assert!(b.listeners[&80].sockets.is_empty());
        assert_eq!(closing.len(), 1, "reset, freed once closed");
        assert_eq!(b.stats.handshakes_timed_out, 1);
    }
}
