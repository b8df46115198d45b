//! The net module (§4.5, §6.4): attaches tap interfaces to the network
//! devices of the manifest and serves NET_WRITE and NET_READ by hypercall.
//!
//! Taps are attached while the options are parsed, as upstream does, so a
//! bad interface is reported before any guest memory is set up. The MAC
//! (given or random), the manifest entry, the poll set and the hypercalls
//! are set up in [`Module::setup`]. The hypercall handlers work over any
//! [`FrameBackend`]: the mock tender registers them, through
//! [`register_hypercalls`], over the in-memory wire.

use std::collections::BTreeMap;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;

use hvt_abi::hypercall::{nr, result, NetIo};
use hvt_abi::manifest::{MftEntry, MftNetBasic, MFT_DEV_NET_BASIC};

use super::{named_option, only_device, valid_device_name, Module, SetupContext};
use crate::devices::frame::FrameBackend;
use crate::devices::tap::{error_text, Tap};
use crate::error::{Error, Result};
use crate::hypercall::{Action, Fault, HypercallResult, Hypercalls};
use crate::manifest::Manifest;
use crate::vstate::memory::GuestRam;

/// An Ethernet address.
pub type Mac = [u8; 6];

/// What the command line said about one network device.
#[derive(Default)]
struct Device {
    tap: Option<Tap>,
    mac: Option<Mac>,
}

/// Network devices by manifest index (= guest handle).
#[derive(Default)]
pub struct Net {
    devices: BTreeMap<usize, Device>,
}

/// The back-ends of the attached network devices, indexed by handle; `None`
/// where the manifest has no attached network device.
pub type Backends = Vec<Option<Rc<dyn FrameBackend>>>;

/// Parses `xx:xx:xx:xx:xx:xx` (six groups of one or two hex digits).
pub fn parse_mac(text: &str) -> Option<Mac> {
    let mut mac = [0u8; 6];
    let mut groups = text.split(':');
    for byte in &mut mac {
        let group = groups.next()?;
        if !(1..=2).contains(&group.len()) || !group.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        *byte = u8::from_str_radix(group, 16).ok()?;
    }
    groups.next().is_none().then_some(mac)
}

/// `mac` with the multicast bit cleared and the locally-administered bit
/// set (§4.5).
pub fn local_unicast(mut mac: Mac) -> Mac {
    mac[0] = (mac[0] & !0x01) | 0x02;
    mac
}

/// A random locally-administered unicast MAC, from getrandom(2).
pub fn random_mac() -> io::Result<Mac> {
    let mut mac = [0u8; 6];
    let mut filled = 0;
    while filled < mac.len() {
        let rest = &mut mac[filled..];
        // SAFETY: getrandom writes at most `rest.len()` bytes into `rest`.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        filled += n as usize;
    }
    Ok(local_unicast(mac))
}

/// `xx:xx:xx:xx:xx:xx`.
pub fn format_mac(mac: &Mac) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
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
    /// Opens the tap named by the value of `--net:NAME=VALUE`.
    fn attach(&self, value: &str) -> Result<Tap> {
        let tap = match value.strip_prefix('@') {
            Some(digits) => parse_fd(digits).and_then(|fd| {
                // Two devices on one descriptor would both close it.
                let taken = self
                    .devices
                    .values()
                    .filter_map(|d| d.tap.as_ref())
                    .any(|tap| tap.as_raw_fd() == fd);
                if taken {
                    return Err(io::Error::from_raw_os_error(libc::EBUSY));
                }
                Tap::from_fd(fd)
            }),
            None => Tap::open(value),
        };
        tap.map_err(|e| {
            Error::new(format!(
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
         [ --net=IFACE ] (when the manifest declares one network)\n"
    }

    fn parse_option(&mut self, option: &str, manifest: &mut Manifest) -> Result<bool> {
        let (name, value, is_mac) = if let Some(iface) = option.strip_prefix("--net=") {
            let name = only_device(manifest, MFT_DEV_NET_BASIC).ok_or_else(|| {
                Error::usage("--net=IFACE needs exactly one network device in the manifest")
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
            .ok_or_else(|| Error::usage(format!("Resource not declared in manifest: '{name}'")))?;

        if is_mac {
            if self.devices.get(&index).is_some_and(|d| d.mac.is_some()) {
                return Err(Error::usage(format!(
                    "MAC address of network device '{name}' given twice: `{option}'"
                )));
            }
            let mac = parse_mac(value).ok_or_else(|| {
                Error::usage(format!(
                    "Malformed MAC address for network device '{name}': '{value}' \
                     (expected xx:xx:xx:xx:xx:xx)"
                ))
            })?;
            self.devices.entry(index).or_default().mac = Some(mac);
        } else {
            if self.devices.get(&index).is_some_and(|d| d.tap.is_some()) {
                return Err(Error::usage(format!(
                    "Network device '{name}' attached twice: `{option}'"
                )));
            }
            let tap = self.attach(value)?;
            self.devices.entry(index).or_default().tap = Some(tap);
        }
        Ok(true)
    }

    fn setup(&mut self, ctx: &mut SetupContext<'_>) -> Result<()> {
        let mut backends: Backends = (0..ctx.manifest.entries.len()).map(|_| None).collect();
        let mut attached = 0;
        for (index, device) in std::mem::take(&mut self.devices) {
            // A MAC without a tap: the attach check reports the device.
            let Some(tap) = device.tap else { continue };
            // As upstream, an all-zero MAC means "none given".
            let mac = match device.mac {
                Some(mac) if mac != [0; 6] => mac,
                _ => random_mac().map_err(|e| {
                    Error::new(format!(
                        "Could not generate a MAC address: {}",
                        error_text(&e)
                    ))
                })?,
            };
            // `b.hostfd`, as upstream (§4.4).
            let hostfd = u64::from(tap.as_raw_fd() as u32);
            attach(&mut ctx.manifest.entries[index], mac, tap.mtu(), hostfd);
            ctx.poller.add_device(tap.as_raw_fd(), index)?;
            backends[index] = Some(Rc::new(tap));
            attached += 1;
        }
        if attached == 0 {
            // No handlers: NET_* hypercalls stay invalid (§5).
            return Ok(());
        }
        register_hypercalls(ctx.hypercalls, backends)
    }
}

/// Fills in the manifest entry of an attached network device (§4.4): MAC,
/// MTU, the tender-private `b` and the attached flag.
pub fn attach(entry: &mut MftEntry, mac: Mac, mtu: u16, b: u64) {
    entry.set_net(MftNetBasic {
        mac,
        mtu,
        _pad: [0; 8],
    });
    entry.b = b;
    entry.attached = 1;
}

/// Registers NET_WRITE and NET_READ (§6.4) over `backends`, indexed by
/// handle (`None` where the manifest has no attached network device). The
/// tender registers its taps here, the mock tender its wire ports: both are
/// served by the same handlers.
pub fn register_hypercalls(hypercalls: &mut Hypercalls, backends: Backends) -> Result<()> {
    let backends = Rc::new(backends);
    let write_backends = Rc::clone(&backends);
    hypercalls.register(
        nr::NET_WRITE,
        Box::new(move |ram, gpa| net_write(&write_backends, ram, gpa)),
    )?;
    hypercalls.register(
        nr::NET_READ,
        Box::new(move |ram, gpa| net_read(&backends, ram, gpa)),
    )
}

/// The back-end of `handle`, if it names an attached network device.
fn backend_of(backends: &Backends, handle: u64) -> Option<&dyn FrameBackend> {
    usize::try_from(handle)
        .ok()
        .and_then(|index| backends.get(index))
        .and_then(Option::as_deref)
}

/// NET_WRITE (§6.4): one `write()` of the guest's frame.
fn net_write(backends: &Backends, ram: &GuestRam, gpa: u64) -> HypercallResult {
    let mut arg: NetIo = ram.read_arg(gpa)?;
    arg.ret = match backend_of(backends, arg.handle) {
        None => result::EINVAL,
        Some(device) => {
            let frame = ram.slice(arg.data, arg.len)?;
            match device.send(&frame) {
                Ok(n) if n as u64 == arg.len => result::OK,
                Ok(n) => {
                    return Err(Fault::Fatal(format!(
                        "Fatal error when writing to {}: wrote only {n} out of {} bytes",
                        device.name(),
                        arg.len
                    )))
                }
                Err(e) => {
                    return Err(Fault::Fatal(format!(
                        "Fatal error when writing to {}: {}",
                        device.name(),
                        error_text(&e)
                    )))
                }
            }
        }
    };
    ram.write_arg(gpa, &arg)?;
    Ok(Action::Continue)
}

/// NET_READ (§6.4): one `read()` into the guest's buffer.
fn net_read(backends: &Backends, ram: &GuestRam, gpa: u64) -> HypercallResult {
    let mut arg: NetIo = ram.read_arg(gpa)?;
    arg.ret = match backend_of(backends, arg.handle) {
        None => result::EINVAL,
        Some(device) => {
            let mut buffer = ram.slice_mut(arg.data, arg.len)?;
            match device.receive(&mut buffer) {
                Ok(0) => result::AGAIN,
                Ok(n) => {
                    arg.len = n as u64;
                    result::OK
                }
                // EINTR cannot happen on a non-blocking tap; were it to,
                // "try again" is the right answer.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) =>
                {
                    result::AGAIN
                }
                Err(e) => {
                    return Err(Fault::Fatal(format!(
                        "Fatal error when reading from {}: {}",
                        device.name(),
                        error_text(&e)
                    )))
                }
            }
        }
    };
    ram.write_arg(gpa, &arg)?;
    Ok(Action::Continue)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_syntax() {
        assert_eq!(
            parse_mac("02:aa:BB:0c:dd:ee"),
            Some([0x02, 0xaa, 0xbb, 0x0c, 0xdd, 0xee])
        );
        assert_eq!(parse_mac("2:0:0:0:0:1"), Some([2, 0, 0, 0, 0, 1]));
        for bad in [
            "",
            "02:00:00:00:00",
            "02:00:00:00:00:00:00",
            "02:00:00:00:00:",
            "02:00:00:00:00:001",
            "02:00:00:00:00:0g",
            "02-00-00-00-00-01",
            " 02:00:00:00:00:01",
            "02:00:00:00:00:01 ",
            "+2:00:00:00:00:01",
            "020000000001",
        ] {
            assert_eq!(parse_mac(bad), None, "{bad:?} accepted");
        }
        assert_eq!(
            format_mac(&[0x02, 0xaa, 0, 1, 0x10, 0xff]),
            "02:aa:00:01:10:ff"
        );
    }

    #[test]
    fn random_macs_are_local_unicast() {
        let mut seen = Vec::new();
        for _ in 0..64 {
            let mac = random_mac().unwrap();
            assert_eq!(mac[0] & 0x01, 0, "multicast bit set: {}", format_mac(&mac));
            assert_eq!(mac[0] & 0x02, 0x02, "local bit clear: {}", format_mac(&mac));
            seen.push(mac);
        }
        seen.sort();
        seen.dedup();
        assert!(seen.len() > 60, "random MACs repeat");
        assert_eq!(local_unicast([0xff; 6])[0], 0xfe);
        assert_eq!(local_unicast([0x00; 6])[0], 0x02);
    }

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
        let mut net = Net::default();
        let err = refused(&mut net, "--net:disk=tap0");
        assert_eq!(err.message(), "Resource not declared in manifest: 'disk'");
        let err = refused(&mut net, "--net-mac:serv-ice0=02:00:00:00:00:01");
        assert_eq!(
            err.message(),
            "Resource not declared in manifest: 'serv-ice0'"
        );
        let err = refused(&mut net, "--net-mac:service0=02:00:00:00:00");
        assert_eq!(
            err.message(),
            "Malformed MAC address for network device 'service0': '02:00:00:00:00' \
             (expected xx:xx:xx:xx:xx:xx)"
        );
        assert!(net
            .parse_option("--net-mac:service0=02:00:00:00:00:01", &mut manifest())
            .unwrap());
        let err = refused(&mut net, "--net-mac:service0=02:00:00:00:00:02");
        assert_eq!(
            err.message(),
            "MAC address of network device 'service0' given twice: \
             `--net-mac:service0=02:00:00:00:00:02'"
        );
        let err = refused(&mut net, "--net:service0=@x");
        assert_eq!(
            err.message(),
            "Could not attach interface: @x: Invalid argument"
        );
        assert!(!err.show_usage);
        let err = refused(&mut net, "--net:service0=@1073741824");
        assert_eq!(
            err.message(),
            "Could not attach interface: @1073741824: Bad file descriptor"
        );
        let err = refused(&mut net, "--net=tender-nosuch");
        assert_eq!(
            err.message(),
            "Could not attach interface: tender-nosuch: No such device"
        );
        let err = refused(&mut net, "--net:service0=a-name-of-16chrs");
        assert_eq!(
            err.message(),
            "Could not attach interface: a-name-of-16chrs: File name too long"
        );
        assert!(!net.parse_option("--block:disk=x", &mut manifest()).unwrap());
    }

    #[test]
    fn bad_handles_are_einval_and_bad_buffers_are_faults() {
        let ram = GuestRam::new(2 << 20).unwrap();
        let backends: Backends = vec![None, None, None];
        let gpa = 0x10000;
        for handle in [0u64, 1, 2, 99, u64::MAX] {
            for call in [net_write, net_read] {
                let arg = NetIo {
                    handle,
                    data: 0x20000,
                    len: 64,
                    ret: -1,
                    _pad: 0,
                };
                ram.write_arg(gpa, &arg).unwrap();
                assert_eq!(call(&backends, &ram, gpa), Ok(Action::Continue));
                let back: NetIo = ram.read_arg(gpa).unwrap();
                assert_eq!(back.ret, result::EINVAL, "handle {handle}");
                assert_eq!(back.len, 64);
            }
        }
        assert!(matches!(
            net_read(&backends, &ram, (2 << 20) - 16),
            Err(Fault::Access(_))
        ));
    }

    #[test]
    fn setup_without_taps_registers_nothing() {
        let mut net = Net::default();
        let mut manifest = manifest();
        net.parse_option("--net-mac:service0=02:00:00:00:00:01", &mut manifest)
            .unwrap();
        let ram = GuestRam::new(2 << 20).unwrap();
        let poller = Rc::new(crate::devices::poller::Poller::new().unwrap());
        let mut hypercalls = crate::hypercall::Hypercalls::default();
        let mut ctx = SetupContext {
            manifest: &mut manifest,
            hypercalls: &mut hypercalls,
            poller: &poller,
            ram: &ram,
        };
        net.setup(&mut ctx).unwrap();
        assert_eq!(manifest.entries[2].attached, 0);
        let err = hypercalls
            .dispatch_pio(&ram, 0x500 + nr::NET_READ, true, 4, 0x10000)
            .unwrap_err();
        assert_eq!(err.message(), "Invalid guest hypercall: num=7");
    }

    /// A back-end whose sends and receives fail, or send too little.
    struct Broken {
        short: bool,
    }

    impl FrameBackend for Broken {
        fn name(&self) -> &str {
            "broken0"
        }
        fn mtu(&self) -> u16 {
            1500
        }
        fn send(&self, _frame: &vm_memory::VolatileSlice<'_>) -> io::Result<usize> {
            if self.short {
                Ok(3)
            } else {
                Err(io::Error::from_raw_os_error(libc::EIO))
            }
        }
        fn receive(&self, _buffer: &mut vm_memory::VolatileSlice<'_>) -> io::Result<usize> {
            Err(io::Error::from_raw_os_error(libc::ENETDOWN))
        }
    }

    fn call(
        hypercalls: &mut Hypercalls,
        ram: &GuestRam,
        number: u16,
        arg: NetIo,
    ) -> std::result::Result<NetIo, String> {
        let gpa = 0x10000;
        ram.write_arg(gpa, &arg).unwrap();
        hypercalls
            .dispatch_pio(ram, 0x500 + number, true, 4, gpa as u32)
            .map_err(|e| e.message().to_owned())?;
        Ok(ram.read_arg(gpa).unwrap())
    }

    fn io(handle: u64, data: u64, len: u64) -> NetIo {
        NetIo {
            handle,
            data,
            len,
            ret: -1,
            _pad: 0,
        }
    }

    #[test]
    fn the_handlers_move_frames_over_a_wire() {
        use crate::devices::wire::{pair, WireConfig};

        let ram = GuestRam::new(2 << 20).unwrap();
        let (a, b) = pair(WireConfig::clean(), ["a", "b"]);
        let mut hypercalls = Hypercalls::default();
        register_hypercalls(
            &mut hypercalls,
            vec![None, Some(Rc::new(a)), Some(Rc::new(b))],
        )
        .unwrap();
        let frame: Vec<u8> = (0..100).collect();
        ram.write_bytes(0x20000, &frame).unwrap();
        let sent = call(&mut hypercalls, &ram, nr::NET_WRITE, io(1, 0x20000, 100)).unwrap();
        assert_eq!((sent.ret, sent.len), (result::OK, 100));

        // Nothing came back to the sender; the frame is at the other end.
        let none = call(&mut hypercalls, &ram, nr::NET_READ, io(1, 0x30000, 1514)).unwrap();
        assert_eq!((none.ret, none.len), (result::AGAIN, 1514));
        let got = call(&mut hypercalls, &ram, nr::NET_READ, io(2, 0x30000, 1514)).unwrap();
        assert_eq!((got.ret, got.len), (result::OK, 100));
        let mut back = vec![0u8; 100];
        ram.read_bytes(0x30000, &mut back).unwrap();
        assert_eq!(back, frame);

        // A short buffer gets the start of the frame, as from a tap.
        call(&mut hypercalls, &ram, nr::NET_WRITE, io(2, 0x20000, 100)).unwrap();
        let cut = call(&mut hypercalls, &ram, nr::NET_READ, io(1, 0x40000, 10)).unwrap();
        assert_eq!((cut.ret, cut.len), (result::OK, 10));
        // The same argument checks as for a tap.
        let bad = call(&mut hypercalls, &ram, nr::NET_READ, io(0, 0x40000, 10)).unwrap();
        assert_eq!(bad.ret, result::EINVAL);
        let err = call(
            &mut hypercalls,
            &ram,
            nr::NET_WRITE,
            io(1, 0x1f_ff00, 0x100),
        );
        assert_eq!(
            err.unwrap_err(),
            "hypercall NET_WRITE: Invalid guest access: gpa=0x1fff00, sz=256"
        );
    }

    #[test]
    fn backend_failures_end_the_guest_with_the_tap_messages() {
        let ram = GuestRam::new(2 << 20).unwrap();
        for (short, write_error) in [
            (
                false,
                "Fatal error when writing to broken0: Input/output error",
            ),
            (
                true,
                "Fatal error when writing to broken0: wrote only 3 out of 10 bytes",
            ),
        ] {
            let mut hypercalls = Hypercalls::default();
            let broken: Rc<dyn FrameBackend> = Rc::new(Broken { short });
            register_hypercalls(&mut hypercalls, vec![None, Some(broken)]).unwrap();
            let err = call(&mut hypercalls, &ram, nr::NET_WRITE, io(1, 0x20000, 10));
            assert_eq!(err.unwrap_err(), write_error);
            let err = call(&mut hypercalls, &ram, nr::NET_READ, io(1, 0x20000, 10));
            assert_eq!(
                err.unwrap_err(),
                "Fatal error when reading from broken0: Network is down"
            );
        }
    }
}
