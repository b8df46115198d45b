//! The net module (§4.5, §6.4, §6.7): attaches back-ends (taps on the
//! tender) to the network devices of the manifest, serves NET_WRITE and
//! NET_READ, and offers the shared-memory ring.
//!
//! Back-ends are opened while the options are parsed, as upstream attaches
//! its taps, so a bad interface is reported before any guest memory is set
//! up. The MAC (given or random), the manifest entry, the poll set, the
//! hypercalls ([`hypercalls`]) and the ring ([`ring`]) are set up in
//! [`Module::setup`].

pub mod hypercalls;
pub mod mac;
pub mod ring;

use std::collections::BTreeMap;
use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;

use hvt_abi::boot::BootInfo;
use hvt_abi::manifest::{MftEntry, MftNetBasic, MFT_DEV_NET_BASIC};

use super::{named_option, only_device, valid_device_name};
use crate::devices::frame::{FrameBackend, Readiness};
use crate::devices::tap::{error_text, Tap};
use crate::error::{Error, Result};
use crate::manifest::Manifest;
use crate::memory::GuestRam;
use crate::module::{Ending, Module, SetupContext};
use crate::sandbox::Allowlist;
use crate::stats::Counter;
use crate::vm::{ExitAction, Vcpu, VmExit};
pub use mac::Mac;

/// Opens the back-end named by the value of `--net:NAME=VALUE`.
pub type OpenNet = Box<dyn FnMut(&str) -> io::Result<Arc<dyn FrameBackend>>>;

/// The back-ends of the attached network devices, indexed by handle; `None`
/// where the manifest has no attached network device.
pub type Backends = Vec<Option<Arc<dyn FrameBackend>>>;

/// What the command line said about one network device.
#[derive(Default)]
struct Device {
    backend: Option<Arc<dyn FrameBackend>>,
    mac: Option<Mac>,
}

pub struct Net {
    open: OpenNet,
    /// Network devices by manifest index (= guest handle).
    devices: BTreeMap<usize, Device>,
    /// `--no-net-ring` not given.
    ring_enabled: bool,
    /// The ring, once offered.
    ring: Option<ring::RingService>,
    /// The descriptors of the attached back-ends (for the sandbox).
    fds: Vec<RawFd>,
}

/// The tender's back-ends: `IFACE` is an existing tap, `@FD` an open tap
/// descriptor handed to the tender.
pub fn open_tap(value: &str) -> io::Result<Arc<dyn FrameBackend>> {
    let tap = match value.strip_prefix('@') {
        Some(digits) => Tap::from_fd(parse_fd(digits)?)?,
        None => Tap::open(value)?,
    };
    Ok(Arc::new(tap))
}

/// The descriptor number of `--net:NAME=@FD`.
fn parse_fd(digits: &str) -> io::Result<RawFd> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    digits
        .parse()
        .map_err(|_| io::Error::from_raw_os_error(libc::ERANGE))
}

impl Net {
    pub fn new(open: OpenNet) -> Net {
        Net {
            open,
            devices: BTreeMap::new(),
            ring_enabled: true,
            ring: None,
            fds: Vec::new(),
        }
    }

    /// Opens the back-end named by the value of `--net:NAME=VALUE`.
    fn attach(&mut self, value: &str) -> Result<Arc<dyn FrameBackend>> {
        let taken = value.strip_prefix('@').is_some_and(|digits| {
            // Two devices on one descriptor would both close it.
            parse_fd(digits).is_ok_and(|fd| {
                self.devices
                    .values()
                    .filter_map(|d| d.backend.as_ref())
                    .any(|b| b.readiness() == Readiness::Fd(fd))
            })
        });
        let opened = if taken {
            Err(io::Error::from_raw_os_error(libc::EBUSY))
        } else {
            (self.open)(value)
        };
        opened.map_err(|e| {
            Error::Device(format!(
                "Could not attach interface: {value}: {}",
                error_text(&e)
            ))
        })
    }
}

impl Module for Net {
    fn name(&self) -> &'static str {
        "net"
    }

    fn usage(&self) -> &'static str {
        "  [ --net:NAME=IFACE | @NN ] (attach tap at IFACE or at fd @NN as network NAME)\n  \
         [ --net-mac:NAME=HWADDR ] (set HWADDR for network NAME)\n  \
         [ --net=IFACE ] (when the manifest declares one network)\n  \
         [ --no-net-ring ] (network devices use hypercalls only, no shared-memory ring)\n"
    }

    fn parse_option(&mut self, option: &str, manifest: &mut Manifest) -> Result<bool> {
        if option == "--no-net-ring" {
            self.ring_enabled = false;
            return Ok(true);
        }
        let (name, value, is_mac) = if let Some(iface) = option.strip_prefix("--net=") {
            let name = only_device(manifest, MFT_DEV_NET_BASIC).ok_or_else(|| {
                Error::Usage("--net=IFACE needs exactly one network device in the manifest".into())
            })?;
            (name, iface, false)
        } else if let Some((name, value)) = named_option(option, "--net") {
            (name.to_owned(), value, false)
        } else if let Some((name, value)) = named_option(option, "--net-mac") {
            (name.to_owned(), value, true)
        } else {
            return Ok(false);
        };
        let index = valid_device_name(&name)
            .then(|| manifest.find(&name, MFT_DEV_NET_BASIC))
            .flatten()
            .ok_or_else(|| Error::Usage(format!("Resource not declared in manifest: '{name}'")))?;

        if is_mac {
            if self.devices.get(&index).is_some_and(|d| d.mac.is_some()) {
                return Err(Error::Usage(format!(
                    "MAC address of network device '{name}' given twice: `{option}'"
                )));
            }
            let mac = mac::parse_mac(value).ok_or_else(|| {
                Error::Usage(format!(
                    "Malformed MAC address for network device '{name}': '{value}' \
                     (expected xx:xx:xx:xx:xx:xx)"
                ))
            })?;
            self.devices.entry(index).or_default().mac = Some(mac);
        } else {
            if self
                .devices
                .get(&index)
                .is_some_and(|d| d.backend.is_some())
            {
                return Err(Error::Usage(format!(
                    "Network device '{name}' attached twice: `{option}'"
                )));
            }
            let backend = self.attach(value)?;
            self.devices.entry(index).or_default().backend = Some(backend);
        }
        Ok(true)
    }

    fn reserved_memory(&self, manifest: &Manifest) -> u64 {
        let has_devices = manifest.handles_of(MFT_DEV_NET_BASIC).next().is_some();
        if self.ring_enabled && has_devices {
            ring::RING_AREA
        } else {
            0
        }
    }

    fn setup(&mut self, ctx: &mut SetupContext<'_>) -> Result<()> {
        let mut backends: Backends = vec![None; ctx.manifest.entries.len()];
        for (index, device) in std::mem::take(&mut self.devices) {
            // A MAC without a back-end: the attach check reports the device.
            let Some(backend) = device.backend else {
                continue;
            };
            // As upstream, an all-zero MAC means "none given".
            let mac = match device.mac {
                Some(mac) if mac != [0; 6] => mac,
                _ => mac::random_mac().map_err(|e| {
                    Error::Device(format!(
                        "Could not generate a MAC address: {}",
                        error_text(&e)
                    ))
                })?,
            };
            attach(&mut ctx.manifest.entries[index], mac, backend.mtu());
            if let Readiness::Fd(fd) = backend.readiness() {
                self.fds.push(fd);
            }
            ctx.poll.watch(index, backend.clone())?;
            backends[index] = Some(backend);
        }
        if backends.iter().all(Option::is_none) {
            // No handlers: NET_* hypercalls stay invalid (§5).
            return Ok(());
        }
        if let Some(reservation) = ctx.reservation {
            self.ring = ring::offer(ctx, reservation, &backends);
        }
        hypercalls::register_hypercalls(ctx.hypercalls, backends)
    }

    fn boot_info(&self, info: &mut BootInfo) {
        if let Some(ring) = &self.ring {
            ring.describe(info);
        }
    }

    fn guest_exit(&mut self) -> Result<()> {
        match &self.ring {
            Some(ring) => ring.serve_at_exit(),
            None => Ok(()),
        }
    }

    fn guest_resume(&mut self) -> Result<()> {
        match &self.ring {
            Some(ring) => ring.serve_at_resume(),
            None => Ok(()),
        }
    }

    fn vm_exit(
        &mut self,
        exit: &VmExit,
        _vcpu: &mut dyn Vcpu,
        _ram: &GuestRam,
    ) -> Result<Option<ExitAction>> {
        // The ring was served as this exit began (`guest_exit`).
        let serve_now = match (exit, &self.ring) {
            (&VmExit::IoOut { port, size, value }, Some(ring)) => {
                ring.is_serve_now(port, size, value)
            }
            _ => false,
        };
        Ok(serve_now.then_some(ExitAction::Resume))
    }

    fn halt(&mut self, _ending: Ending) {
        // Upstream's HALT hook: the ring thread stops before the tender exits.
        if let Some(ring) = self.ring.as_mut() {
            ring.stop();
        }
    }

    fn counters(&self, out: &mut Vec<(&'static str, Counter)>) {
        if let Some(ring) = &self.ring {
            let counters = ring.counters();
            out.extend([
                ("net_ring_exit_entries", counters.exit_entries.clone()),
                ("net_ring_thread_entries", counters.thread_entries.clone()),
                ("net_ring_doorbells", counters.doorbells.clone()),
                ("net_ring_wakeups", counters.wakeups.clone()),
            ]);
        }
    }

    fn vcpu_rules(&self, vcpu: &mut Allowlist) {
        // NET_READ and NET_WRITE: one read or write of a tap.
        vcpu.allow_fds(libc::SYS_read, &self.fds)
            .allow_fds(libc::SYS_write, &self.fds);
        // The ring's thread is woken (for a burst, and to stop it) by a
        // write of its doorbell; reads served at exits ask the taps, without
        // waiting, whether more frames wait (§12.8).
        if let Some(ring) = &self.ring {
            vcpu.allow_fds(libc::SYS_write, &[ring.doorbell_fd()]);
            if ring.exit_service() {
                vcpu.allow_third_arg(libc::SYS_poll, &[0]);
            }
        }
    }

    fn thread_rules(&self) -> Vec<Allowlist> {
        self.ring
            .iter()
            .map(|ring| ring.allowlist().clone())
            .collect()
    }
}

/// Fills in the manifest entry of an attached network device (§4.4): MAC,
/// MTU and the attached flag. Upstream leaks its host descriptor in `b`;
/// the guest learns nothing of the host from ours: 0.
fn attach(entry: &mut MftEntry, mac: Mac, mtu: u16) {
    entry.set_net(MftNetBasic {
        mac,
        mtu,
        _pad: [0; 8],
    });
    entry.b = 0;
    entry.attached = 1;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fd_syntax() {
        assert_eq!(parse_fd("3").unwrap(), 3);
        for (bad, code) in [
            ("", libc::EINVAL),
            ("-1", libc::EINVAL),
            ("3x", libc::EINVAL),
            ("+3", libc::EINVAL),
            ("99999999999", libc::ERANGE),
        ] {
            assert_eq!(
                parse_fd(bad).unwrap_err().raw_os_error(),
                Some(code),
                "{bad}"
            );
        }
    }

    fn manifest() -> Manifest {
        Manifest {
            entries: vec![
                MftEntry::RESERVED_FIRST,
                MftEntry::new("disk", hvt_abi::manifest::MFT_DEV_BLOCK_BASIC),
                MftEntry::new("service0", MFT_DEV_NET_BASIC),
            ],
        }
    }

    fn refused(net: &mut Net, option: &str) -> Error {
        net.parse_option(option, &mut manifest()).unwrap_err()
    }

    #[test]
    fn option_errors() {
        let mut net = Net::new(Box::new(open_tap));
        let err = refused(&mut net, "--net:disk=tap0");
        assert_eq!(err.to_string(), "Resource not declared in manifest: 'disk'");
        let err = refused(&mut net, "--net-mac:serv-ice0=02:00:00:00:00:01");
        assert_eq!(
            err.to_string(),
            "Resource not declared in manifest: 'serv-ice0'"
        );
        let err = refused(&mut net, "--net-mac:service0=02:00:00:00:00");
        assert_eq!(
            err.to_string(),
            "Malformed MAC address for network device 'service0': '02:00:00:00:00' \
             (expected xx:xx:xx:xx:xx:xx)"
        );
        assert!(net
            .parse_option("--net-mac:service0=02:00:00:00:00:01", &mut manifest())
            .unwrap());
        let err = refused(&mut net, "--net-mac:service0=02:00:00:00:00:02");
        assert_eq!(
            err.to_string(),
            "MAC address of network device 'service0' given twice: \
             `--net-mac:service0=02:00:00:00:00:02'"
        );
        let err = refused(&mut net, "--net:service0=@x");
        assert_eq!(
            err.to_string(),
            "Could not attach interface: @x: Invalid argument"
        );
        assert!(!err.shows_usage());
        let err = refused(&mut net, "--net:service0=@1073741824");
        assert_eq!(
            err.to_string(),
            "Could not attach interface: @1073741824: Bad file descriptor"
        );
        let err = refused(&mut net, "--net=tender-nosuch");
        assert_eq!(
            err.to_string(),
            "Could not attach interface: tender-nosuch: No such device"
        );
        let err = refused(&mut net, "--net:service0=a-name-of-16chrs");
        assert_eq!(
            err.to_string(),
            "Could not attach interface: a-name-of-16chrs: File name too long"
        );
        assert!(!net.parse_option("--block:disk=x", &mut manifest()).unwrap());
    }
}
