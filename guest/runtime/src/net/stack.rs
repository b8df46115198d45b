//! One network interface: the smoltcp `Interface`, its sockets and its
//! device, shared by the socket handles and the task that drives it.
//!
//! The driving task polls smoltcp, then sleeps until the earliest of: the
//! device becoming readable (the yield's ready set), smoltcp's `poll_at`
//! (retransmissions, ARP/NDP, DHCP timers), or a socket operation kicking it
//! (data queued to send, a window to open). No `RefCell` borrow is held
//! across an `.await`.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::rc::Rc;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::future::{poll_fn, Future};
use core::pin::Pin;
use core::task::{Context, Poll, Waker};

use smoltcp::iface::{Config as IfaceConfig, Interface, SocketHandle, SocketSet};
use smoltcp::socket::{dhcpv4, tcp, udp, Socket};
use smoltcp::time::Instant as NetInstant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr, Ipv4Cidr};

use super::backlog::{Backlog, BacklogStats, Capture, MAX_HELD};
use super::config::Config;
use super::device::NetDevice;
use super::error::Error;
use super::tcp::default_max_tcp_sockets;
use crate::io;
use crate::time::{self, Instant};

pub(crate) struct Inner {
    pub(crate) iface: Interface,
    pub(crate) sockets: SocketSet<'static>,
    pub(crate) device: NetDevice,
    dhcp: Option<SocketHandle>,
    /// The driving task's waker, to kick it after a socket operation.
    driver: Option<Waker>,
    kicked: bool,
    /// Tasks waiting for an IPv4 address.
    config_waiters: Vec<Waker>,
    /// Closed-by-drop TCP sockets, removed once smoltcp is done with them.
    pub(crate) closing: Vec<SocketHandle>,
    /// What streams in TIME-WAIT had not read yet, kept here because smoltcp
    /// forgets the socket, buffer included, when TIME-WAIT ends. An entry
    /// also records that the peer closed gracefully (FIN, not a reset).
    pub(crate) time_wait_data: BTreeMap<SocketHandle, VecDeque<u8>>,
    /// Dropped UDP sockets with datagrams still to send, removed once sent
    /// (or at the deadline, if the peer's address never resolves).
    pub(crate) closing_udp: Vec<(SocketHandle, NetInstant)>,
    next_ephemeral_port: u16,
    /// The listeners and the SYNs on their way to them.
    pub(crate) backlog: Backlog,
    /// The frame smoltcp is reading (`Capture` copies it here).
    frame: Vec<u8>,
}

pub(crate) fn now() -> NetInstant {
    NetInstant::from_micros(Instant::now().as_nanos() as i64 / 1000)
}

impl Inner {
    fn poll(&mut self) {
        let timestamp = now();
        loop {
            self.keep_time_wait_data();
            let mut device = Capture {
                device: &mut self.device,
                backlog: &mut self.backlog,
                buffer: &mut self.frame,
            };
            self.iface.poll(timestamp, &mut device, &mut self.sockets);
            self.free_closed(timestamp);
            // SYNs for listened ports: admitted ones go to smoltcp in
            // another poll, the rest wait or are dropped (net::backlog).
            let iface = &self.iface;
            if !self
                .backlog
                .admit(&mut self.sockets, |addr| iface.has_ip_addr(addr), timestamp)
            {
                break;
            }
        }
        self.backlog
            .settle(&mut self.sockets, &mut self.closing, timestamp);
        self.poll_dhcp();
    }

    fn poll_dhcp(&mut self) {
        if let Some(handle) = self.dhcp {
            let event = self.sockets.get_mut::<dhcpv4::Socket>(handle).poll();
            match event {
                Some(dhcpv4::Event::Configured(config)) => {
                    let (address, router) = (config.address, config.router);
                    self.set_ipv4(address);
                    match router {
                        Some(router) => {
                            let _ = self.iface.routes_mut().add_default_ipv4_route(router);
                        }
                        None => {
                            self.iface.routes_mut().remove_default_ipv4_route();
                        }
                    }
                    log::info!("net: DHCP gave {address}");
                }
                Some(dhcpv4::Event::Deconfigured) => {
                    // Also reported once at start, before any lease.
                    if self.ipv4().is_some() {
                        log::warn!("net: DHCP lease lost");
                    }
                    self.iface
                        .update_ip_addrs(|addrs| addrs.retain(|a| !matches!(a, IpCidr::Ipv4(_))));
                    self.iface.routes_mut().remove_default_ipv4_route();
                }
                None => {}
            }
        }
    }

    /// Removes the dropped sockets smoltcp is done with.
    fn free_closed(&mut self, timestamp: NetInstant) {
        let sockets = &mut self.sockets;
        self.closing.retain(|&handle| {
            let closed = sockets.get::<tcp::Socket>(handle).state() == tcp::State::Closed;
            if closed {
                sockets.remove(handle);
            }
            !closed
        });
        self.closing_udp.retain(|&(handle, deadline)| {
            let done =
                sockets.get::<udp::Socket>(handle).send_queue() == 0 || timestamp >= deadline;
            if done {
                sockets.remove(handle);
            }
            !done
        });
    }

    /// Moves the unread data of streams in TIME-WAIT out of smoltcp, which
    /// drops it when TIME-WAIT ends: the application may read the end of a
    /// half-closed connection later than that. A socket enters TIME-WAIT in
    /// one poll and leaves it in a later one, so this, run before each
    /// poll, always gets there first.
    fn keep_time_wait_data(&mut self) {
        for (handle, socket) in self.sockets.iter_mut() {
            let Socket::Tcp(socket) = socket else {
                continue;
            };
            if socket.state() != tcp::State::TimeWait || self.closing.contains(&handle) {
                continue;
            }
            let kept = self.time_wait_data.entry(handle).or_default();
            while let Ok(n) = socket.recv(|data| {
                kept.extend(data.iter());
                (data.len(), data.len())
            }) {
                if n == 0 {
                    break;
                }
            }
        }
    }

    fn set_ipv4(&mut self, cidr: Ipv4Cidr) {
        self.iface.update_ip_addrs(|addrs| {
            addrs.retain(|a| !matches!(a, IpCidr::Ipv4(_)));
            let _ = addrs.push(IpCidr::Ipv4(cidr));
        });
        for waker in self.config_waiters.drain(..) {
            waker.wake();
        }
    }

    /// Wakes the driving task so it polls smoltcp soon.
    pub(crate) fn kick(&mut self) {
        self.kicked = true;
        if let Some(waker) = self.driver.take() {
            waker.wake();
        }
    }

    pub(crate) fn ephemeral_port(&mut self) -> u16 {
        let port = self.next_ephemeral_port;
        self.next_ephemeral_port = if port == u16::MAX { 49152 } else { port + 1 };
        port
    }

    pub(crate) fn ipv4(&self) -> Option<Ipv4Cidr> {
        self.iface.ip_addrs().iter().find_map(|a| match a {
            IpCidr::Ipv4(v4) => Some(*v4),
            _ => None,
        })
    }
}

/// A network interface. Cloning gives another handle to the same one.
#[derive(Clone)]
pub struct Stack {
    pub(crate) inner: Rc<RefCell<Inner>>,
}

impl Stack {
    /// Brings up the network device `name` of the manifest with `config`,
    /// and starts the task that drives it.
    pub fn new(name: &str, config: Config) -> Result<Stack, Error> {
        let mut device = NetDevice::acquire(name).map_err(|_| Error::NoDevice)?;
        let mac = device.info().mac;
        let mut iface_config = IfaceConfig::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
        iface_config.random_seed = crate::__bindings::clock::rdtsc()
            ^ crate::__bindings::clock::wall_ns().rotate_left(17)
            ^ u64::from_le_bytes([mac[0], mac[1], mac[2], mac[3], mac[4], mac[5], 0, 0]);
        let mut iface = Interface::new(iface_config, &mut device, now());
        iface.update_ip_addrs(|addrs| {
            if let Some(v4) = config.ipv4 {
                let _ = addrs.push(IpCidr::Ipv4(v4));
            }
            if let Some(v6) = config.ipv6 {
                let _ = addrs.push(IpCidr::Ipv6(v6));
            }
        });
        if let Some(gateway) = config.ipv4_gateway {
            let _ = iface.routes_mut().add_default_ipv4_route(gateway);
        }
        if let Some(gateway) = config.ipv6_gateway {
            let _ = iface.routes_mut().add_default_ipv6_route(gateway);
        }
        let mut sockets = SocketSet::new(vec![]);
        let dhcp = config
            .ipv4
            .is_none()
            .then(|| sockets.add(dhcpv4::Socket::new()));
        let inner = Rc::new(RefCell::new(Inner {
            iface,
            sockets,
            device,
            dhcp,
            driver: None,
            kicked: true,
            config_waiters: Vec::new(),
            closing: Vec::new(),
            closing_udp: Vec::new(),
            time_wait_data: BTreeMap::new(),
            next_ephemeral_port: 49152 + (crate::__bindings::clock::rdtsc() % 8192) as u16,
            backlog: Backlog::new(default_max_tcp_sockets(), MAX_HELD),
            frame: Vec::new(),
        }));
        crate::spawn(drive(Rc::downgrade(&inner)));
        Ok(Stack { inner })
    }

    /// Brings up `name` with the addresses given on the command line
    /// (`--ipv4=`, `--ipv4-gateway=`, `--ipv6=`, `--ipv6-gateway=`), or DHCPv4.
    pub fn from_args(name: &str, args: &crate::Args) -> Result<Stack, Error> {
        Stack::new(name, Config::from_args(args).map_err(Error::Config)?)
    }

    /// Waits until the interface has an IPv4 address (at once when static).
    pub async fn wait_ipv4(&self) -> Ipv4Cidr {
        poll_fn(|cx| {
            let mut inner = self.inner.borrow_mut();
            match inner.ipv4() {
                Some(cidr) => Poll::Ready(cidr),
                None => {
                    inner.config_waiters.push(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await
    }

    /// The interface's IPv4 address, if it has one.
    pub fn ipv4(&self) -> Option<Ipv4Cidr> {
        self.inner.borrow().ipv4()
    }

    /// MAC address and MTU of the device.
    pub fn device_info(&self) -> hvt_bindings::net::NetInfo {
        self.inner.borrow().device.info()
    }

    /// Most TCP sockets the stack holds before its listeners stop taking
    /// new connections (they wait, see [`TcpListener`](super::TcpListener)).
    /// By default half the heap in sockets of [`TCP_SOCKET_MEMORY`](super::TCP_SOCKET_MEMORY)
    /// bytes: 2,032 at the default 512 MiB of guest memory.
    pub fn max_tcp_sockets(&self) -> usize {
        self.inner.borrow().backlog.max_tcp_sockets
    }

    /// Sets [`Stack::max_tcp_sockets`] (at least 1). Lowering it closes no
    /// connection; new ones wait until the count is below it.
    pub fn set_max_tcp_sockets(&self, max: usize) {
        self.inner.borrow_mut().backlog.max_tcp_sockets = max.max(1);
        self.inner.borrow_mut().kick();
    }

    /// TCP sockets the stack holds now: connections (open or closing) and
    /// the listeners' handshakes.
    pub fn tcp_sockets(&self) -> usize {
        self.inner
            .borrow()
            .sockets
            .iter()
            .filter(|(_, s)| matches!(s, Socket::Tcp(_)))
            .count()
    }

    /// What the listeners' SYN backlog has done, and the SYNs waiting now.
    pub fn backlog_stats(&self) -> (BacklogStats, usize) {
        let inner = self.inner.borrow();
        (inner.backlog.stats, inner.backlog.held_now())
    }

    /// Frames received and sent so far.
    pub fn frame_counts(&self) -> (u64, u64) {
        let inner = self.inner.borrow();
        (inner.device.rx_frames, inner.device.tx_frames)
    }
}

/// Waits for the first of: device readable, `deadline`, a kick.
struct Wake<'a> {
    inner: &'a Rc<RefCell<Inner>>,
    readable: io::Readable,
    sleep: Option<time::Sleep>,
}

impl Future for Wake<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        {
            let mut inner = self.inner.borrow_mut();
            if inner.kicked {
                inner.kicked = false;
                return Poll::Ready(());
            }
            inner.driver = Some(cx.waker().clone());
        }
        if Pin::new(&mut self.readable).poll(cx).is_ready() {
            self.inner.borrow_mut().device.set_readable();
            return Poll::Ready(());
        }
        if let Some(sleep) = self.sleep.as_mut() {
            if Pin::new(sleep).poll(cx).is_ready() {
                return Poll::Ready(());
            }
        }
        Poll::Pending
    }
}

/// The task that drives one interface until every `Stack` handle is gone.
async fn drive(weak: alloc::rc::Weak<RefCell<Inner>>) {
    loop {
        let Some(inner) = weak.upgrade() else { return };
        let (handle, deadline) = {
            let mut guard = inner.borrow_mut();
            guard.poll();
            let state = &mut *guard;
            let poll_at = state.iface.poll_at(now(), &state.sockets);
            // A handle beyond usize fails io::readable's range check.
            let handle = usize::try_from(state.device.info().handle).unwrap_or(usize::MAX);
            (handle, poll_at)
        };
        let sleep = deadline.map(|at| {
            let ns = (at.total_micros().max(0) as u64).saturating_mul(1000);
            time::sleep_until(Instant::from_nanos(ns))
        });
        Wake {
            inner: &inner,
            readable: io::readable(handle),
            sleep,
        }
        .await;
        // Do not keep the interface alive while sleeping.
        drop(inner);
    }
}
