//! The net module (§4.5, §6.4, §6.7): attaches back-ends (on the tender,
//! taps and frame sockets: [`backend`]) to the network devices of the
//! manifest, serves NET_WRITE and NET_READ, and offers the shared-memory
//! ring.
//!
//! Back-ends are opened while the options are parsed, as upstream attaches
//! its taps, so a bad interface is reported before any guest memory is set
//! up; the last option given for a device wins, as upstream's. The MAC (given or random), the manifest entry, the poll set, the
//! hypercalls ([`hypercalls`]) and the ring ([`ring`]) are set up in
//! [`Module::setup`].

pub mod backend;
pub mod hypercalls;
pub mod mac;
pub mod ring;

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;

use hvt_abi::boot::BootInfo;
use hvt_abi::manifest::{MftEntry, MftNetBasic, MFT_DEV_NET_BASIC};

use super::{invalid_option, named_option, only_device, valid_device_name};
use crate::devices::frame::{FrameBackend, Readiness};
use crate::error::os_error_text;
use crate::error::{Error, Result};
use crate::manifest::Manifest;
use crate::memory::GuestRam;
use crate::module::{Ending, Module, SetupContext};
use crate::sandbox::Allowlist;
use crate::stats::Counter;
use crate::vm::{ExitAction, Vcpu, VmExit};
pub use backend::open_host;
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
    /// The attached back-ends, once set up (for the sandbox).
    attached: Vec<Arc<dyn FrameBackend>>,
}

impl Net {
    pub fn new(open: OpenNet) -> Net {
        Net {
            open,
            devices: BTreeMap::new(),
            ring_enabled: true,
            ring: None,
            attached: Vec::new(),
        }
    }

    /// Attaches the back-end named by `value` to the device at `index`, in
    /// place of any given before (the last option wins, as upstream's). A
    /// new back-end is opened before the old one is closed, so the same
    /// tap twice is busy, as upstream finds it.
    fn set_backend(&mut self, index: usize, value: &str) -> io::Result<()> {
        let holder = backend::parse_fd(value.strip_prefix('@').unwrap_or_default())
            .ok()
            .and_then(|fd| {
                self.devices.iter().find_map(|(&i, d)| {
                    let backend = d.backend.as_ref()?;
                    (backend.readiness() == Readiness::Fd(fd)).then_some(i)
                })
            });
        match holder {
            // Already this device's: opening it again would give the
            // descriptor two owners.
            Some(i) if i == index => Ok(()),
            // Two devices on one descriptor would both close it.
            Some(_) => Err(io::Error::from_raw_os_error(libc::EBUSY)),
            None => {
                let backend = (self.open)(value)?;
                self.devices.entry(index).or_default().backend = Some(backend);
                Ok(())
            }
        }
    }
}

impl Module for Net {
    fn name(&self) -> &'static str {
        "net"
    }

    fn usage(&self) -> &'static str {
        // Upstream's lines first, word for word; ours after them.
        "    --net:NAME=IFACE | @NN (attach tap at IFACE or at fd @NN as network NAME)\n  \
         [ --net-mac:NAME=HWADDR ] (set HWADDR for network NAME)\n  \
         [ --net=IFACE ] (when the manifest declares one network)\n  \
         [ --no-net-ring ] (network devices use hypercalls only, no shared-memory ring)\n"
    }

    fn parse_option(&mut self, option: &str, manifest: &mut Manifest) -> Result<bool> {
        if option == "--no-net-ring" {
            self.ring_enabled = false;
            return Ok(true);
        }
        // Upstream's order: the option's syntax, then the device's name in
        // the manifest, then the value. A refusal is its reason (if any),
        // then "Invalid option", then the usage.
        let (name, value, is_mac) = if let Some(iface) = option.strip_prefix("--net=") {
            // Ours, not upstream's: its own message, then the usage.
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
        if !valid_device_name(&name) || value.is_empty() {
            return Err(invalid_option(option, None));
        }
        let mac = if is_mac {
            // Upstream's sscanf does not match: no reason, as upstream.
            let mac = mac::parse_mac(value).ok_or_else(|| invalid_option(option, None))?;
            Some(mac)
        } else {
            None
        };
        let index = manifest.find(&name, MFT_DEV_NET_BASIC).ok_or_else(|| {
            invalid_option(
                option,
                Some(format!("Resource not declared in manifest: '{name}'")),
            )
        })?;
        match mac {
            Some(mac) => self.devices.entry(index).or_default().mac = Some(mac),
            None => self.set_backend(index, value).map_err(|e| {
                invalid_option(
                    option,
                    Some(format!(
                        "Could not attach interface: {value}: {}",
                        os_error_text(&e)
                    )),
                )
            })?,
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
                        os_error_text(&e)
                    ))
                })?,
            };
            attach(&mut ctx.manifest.entries[index], mac, backend.mtu());
            ctx.poll.watch(index, backend.clone())?;
            self.attached.push(backend.clone());
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
        // NET_READ and NET_WRITE: what a back-end calls to move one frame.
        for backend in &self.attached {
            backend.allow_calls(vcpu);
        }
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

    fn manifest() -> Manifest {
        Manifest {
            entries: vec![
                MftEntry::RESERVED_FIRST,
                MftEntry::new("disk", hvt_abi::manifest::MFT_DEV_BLOCK_BASIC),
                MftEntry::new("service0", MFT_DEV_NET_BASIC),
            ],
        }
    }

    /// The lines of the refusal of `option`; refusals show the usage.
    fn refused(net: &mut Net, option: &str) -> Vec<String> {
        let err = net.parse_option(option, &mut manifest()).unwrap_err();
        assert!(err.shows_usage(), "{option}: {err}");
        err.to_string().lines().map(str::to_owned).collect()
    }

    #[test]
    fn option_errors_are_upstreams() {
        let mut net = Net::new(Box::new(open_host));
        for (option, reason) in [
            (
                "--net:disk=tap0",
                Some("Resource not declared in manifest: 'disk'"),
            ),
            (
                "--net-mac:nosuch=02:00:00:00:00:01",
                Some("Resource not declared in manifest: 'nosuch'"),
            ),
            // Names upstream's syntax does not take, empty values.
            ("--net:serv-ice0=tap0", None),
            ("--net-mac:serv-ice0=02:00:00:00:00:01", None),
            ("--net:service0=", None),
            ("--net:=tap0", None),
            ("--net=", None),
            // The MAC's syntax is checked before the name.
            ("--net-mac:nosuch=02:00:00:00:00", None),
            (
                "--net:service0=@x",
                Some("Could not attach interface: @x: Invalid argument"),
            ),
            (
                "--net:service0=@1073741824",
                Some("Could not attach interface: @1073741824: Bad file descriptor"),
            ),
            (
                "--net=tender-nosuch",
                Some("Could not attach interface: tender-nosuch: No such file or directory"),
            ),
            (
                "--net:service0=a-name-of-16chrs",
                Some("Could not attach interface: a-name-of-16chrs: File name too long"),
            ),
        ] {
            let mut expected: Vec<String> = reason.iter().map(|r| r.to_string()).collect();
            expected.push(format!("Invalid option: `{option}'"));
            assert_eq!(refused(&mut net, option), expected, "{option}");
        }
        assert!(!net.parse_option("--block:disk=x", &mut manifest()).unwrap());
        let two = &mut manifest();
        two.entries
            .push(MftEntry::new("service1", MFT_DEV_NET_BASIC));
        let err = net.parse_option("--net=tap0", two).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--net=IFACE needs exactly one network device in the manifest"
        );
        assert!(err.shows_usage());
    }

    /// A back-end that is only a name.
    struct Named(String);

    impl FrameBackend for Named {
        fn name(&self) -> &str {
            &self.0
        }
        fn mtu(&self) -> u16 {
            1500
        }
        fn send(&self, frame: &vm_memory::VolatileSlice<'_>) -> io::Result<usize> {
            Ok(frame.len())
        }
        fn receive(&self, _buffer: &mut vm_memory::VolatileSlice<'_>) -> io::Result<usize> {
            Ok(0)
        }
        fn readiness(&self) -> Readiness {
            Readiness::Queue {
                waiting: 0,
                receives: 0,
            }
        }
    }

    #[test]
    fn the_last_of_an_option_given_twice_wins() {
        let mut net = Net::new(Box::new(|value: &str| {
            let backend: Arc<dyn FrameBackend> = Arc::new(Named(value.to_owned()));
            Ok(backend)
        }));
        let mut manifest = manifest();
        for option in [
            "--net-mac:service0=02:00:00:00:00:01",
            "--net:service0=tapa",
            "--net-mac:service0=02:00:00:00:00:02",
            "--net=tapb",
        ] {
            assert!(net.parse_option(option, &mut manifest).unwrap(), "{option}");
        }
        let device = &net.devices[&2];
        assert_eq!(device.mac, Some([2, 0, 0, 0, 0, 2]));
        assert_eq!(device.backend.as_ref().unwrap().name(), "tapb");
    }
}
