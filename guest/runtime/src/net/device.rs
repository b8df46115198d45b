//! smoltcp's `phy::Device` over an hvt network device.
//!
//! Every NET_READ and NET_WRITE is a VM exit, so the device reads only when
//! the tender has reported it readable, and stops at the first "no frame",
//! or earlier when the ring says the device is drained (the tender's epoll
//! is level-triggered: frames left over make the next yield report the
//! device again).

use alloc::vec;
use alloc::vec::Vec;

use hvt_bindings::net::{self, NetError, NetInfo};

use super::ring::RingClient;
use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

/// Ethernet header bytes on top of the MTU.
const ETHERNET_HEADER: usize = 14;

pub struct NetDevice {
    info: NetInfo,
    /// The shared-memory ring, when the tender offers one.
    ring: Option<RingClient>,
    /// The tender reported a frame (or more) waiting.
    readable: bool,
    rx: Vec<u8>,
    tx: Vec<u8>,
    /// Frames received and sent, for statistics.
    pub rx_frames: u64,
    pub tx_frames: u64,
}

impl NetDevice {
    /// The attached device `name` of the manifest.
    pub fn acquire(name: &str) -> Result<NetDevice, NetError> {
        let info = net::acquire(name)?;
        let frame = usize::from(info.mtu) + ETHERNET_HEADER;
        let ring = RingClient::from_boot_info();
        if ring.is_some() {
            super::ring::uses_ring(info.handle, frame);
        }
        Ok(NetDevice {
            info,
            ring,
            readable: true,
            rx: vec![0; frame],
            tx: vec![0; frame],
            rx_frames: 0,
            tx_frames: 0,
        })
    }

    pub fn info(&self) -> NetInfo {
        self.info
    }

    /// Reads one frame into `rx`; clears `readable` when the tender said
    /// it was the last one waiting (§12.8), which saves the read that would
    /// only have returned `AGAIN`.
    fn read_frame(&mut self) -> Result<usize, NetError> {
        match self.ring.as_mut() {
            Some(ring) => {
                let received = ring.read(self.info.handle, &mut self.rx)?;
                if received.drained {
                    self.readable = false;
                }
                Ok(received.len)
            }
            None => net::read(self.info.handle, &mut self.rx),
        }
    }

    /// Called when the tender's ready set names this device.
    pub fn set_readable(&mut self) {
        self.readable = true;
    }
}

pub struct RxToken<'a> {
    frame: &'a [u8],
}

pub struct TxToken<'a> {
    handle: u64,
    ring: Option<&'a mut RingClient>,
    buffer: &'a mut Vec<u8>,
    sent: &'a mut u64,
}

impl phy::Device for NetDevice {
    type RxToken<'a> = RxToken<'a>;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, _now: Instant) -> Option<(RxToken<'_>, TxToken<'_>)> {
        if !self.readable {
            return None;
        }
        match self.read_frame() {
            Ok(len) => {
                self.rx_frames += 1;
                let handle = self.info.handle;
                Some((
                    RxToken {
                        frame: &self.rx[..len],
                    },
                    TxToken {
                        handle,
                        ring: self.ring.as_mut(),
                        buffer: &mut self.tx,
                        sent: &mut self.tx_frames,
                    },
                ))
            }
            Err(NetError::Again) => {
                self.readable = false;
                None
            }
            Err(error) => {
                log::warn!(
                    "net: read from handle {} failed: {error:?}",
                    self.info.handle
                );
                self.readable = false;
                None
            }
        }
    }

    fn transmit(&mut self, _now: Instant) -> Option<TxToken<'_>> {
        Some(TxToken {
            handle: self.info.handle,
            ring: self.ring.as_mut(),
            buffer: &mut self.tx,
            sent: &mut self.tx_frames,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = usize::from(self.info.mtu) + ETHERNET_HEADER;
        caps.max_burst_size = None;
        caps
    }
}

impl phy::RxToken for RxToken<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.frame)
    }
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        if self.buffer.len() < len {
            self.buffer.resize(len, 0);
        }
        let result = f(&mut self.buffer[..len]);
        let frame = &self.buffer[..len];
        let sent = match self.ring {
            Some(ring) => ring.write(self.handle, frame),
            None => net::write(self.handle, frame),
        };
        match sent {
            Ok(()) => *self.sent += 1,
            Err(error) => log::warn!("net: write to handle {} failed: {error:?}", self.handle),
        }
        result
    }
}
