//! An in-process tender without KVM, for running guest code on the host.
//!
//! The guest's hypercalls arrive here (through the bindings' host transport)
//! instead of through `outl`. They are served by the real tender's code:
//! the modules of `tender-core`, built through the same lifecycle as the
//! tender's ([`ModuleSet`]), the same dispatcher, argument checks and
//! `GuestRam` validation. What the mock adds is what a test needs:
//!
//! * the console is captured;
//! * POLL waits on a [`VirtualClock`] that jumps straight to the deadline,
//!   so timer tests run instantly and deterministically;
//! * network devices are in-memory wires ([`tender_core::devices::wire`]),
//!   two devices of the guest per wire, back to back, opened by the net
//!   module's own option parsing (`--net:NAME=...`);
//! * the shared-memory network ring can be offered ([`MockConfig::ring`]),
//!   for tests that play the guest's side of it against the real I/O
//!   thread ([`MockTender::ring_gpa`], [`MockTender::kick_ring`]).
//!
//! [`MockConfig::system`] is the other use: an application run as a host
//! process, with the real clock, its console on stdout and host taps as its
//! network devices.
//!
//! The guest finds its devices in boot information the mock provides (the
//! bindings' host hook [`boot_info`]). Hypercall arguments are marshalled
//! between the guest's address space and the mock's guest memory
//! ([`marshal`]).

mod boot_info;
mod clock;
mod current;
pub mod marshal;
mod vm;

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use hvt_abi::boot::BootInfo;
use hvt_abi::hypercall::RING_KICK_PIO_BASE;
use hvt_abi::manifest::{MftEntry, MFT_DEV_BLOCK_BASIC, MFT_DEV_NET_BASIC, MFT_MAX_ENTRIES};
use tender_core::devices::console::Console;
use tender_core::devices::disk::BlockBackend;
use tender_core::devices::poller::{PollSet, Poller};
use tender_core::devices::wire;
use tender_core::error::{Error, FatalHandler, Result};
use tender_core::hypercall::{Action, Hypercalls};
use tender_core::lifecycle::{ModuleSet, SetupEnv};
use tender_core::manifest::Manifest;
use tender_core::memory::GuestRam;
use tender_core::module::Ending;
use tender_core::modules::{self, block, net, Host};
use tender_core::sandbox::SeccompMode;
use tender_core::vm::{ExitAction, VmExit};

pub use clock::VirtualClock;
pub use current::{boot_info, hypercall, install, monotonic_ns, port_write, uninstall, with};
pub use tender_core::devices::frame::FrameBackend;
pub use tender_core::devices::memdisk::{DiskFault, MemDisk};
pub use tender_core::devices::wire::{WireConfig, WirePort, WireStats};
pub use vm::{MockVcpu, MockVm};
pub use vm_memory::VolatileSlice;

/// Guest memory of a mock tender, in MiB.
pub const MOCK_MEM_MIB: u64 = 16;

/// How the guest ended: raised as a panic payload by the transport, because
/// a halted guest never returns from its HALT hypercall.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestExit {
    /// The exit code a tender process would have.
    pub code: i32,
    /// The tender's error message, when the tender stopped the guest.
    pub error: Option<String>,
}

/// What a mock tender offers its guest.
#[derive(Debug, Clone, Copy, Default)]
pub struct MockConfig<'a> {
    /// The command line in the boot information.
    pub cmdline: &'a str,
    /// Network devices on in-memory wires, by name: handles 1, 2, ... in
    /// this order. Devices are wired to each other in pairs (first with
    /// second, third with fourth, ...), so there must be an even number.
    pub net_devices: &'a [&'a str],
    /// How each wire behaves.
    pub wire: WireConfig,
    /// Offer the shared-memory network ring. A guest on the host cannot use
    /// it (its buffers are not in the mock's memory); a test plays the
    /// guest's side in the mock's memory instead.
    pub ring: bool,
    /// Network devices on host taps, as (device name, interface), after the
    /// wired ones. Taps need the real clock.
    pub taps: &'a [(&'a str, &'a str)],
    /// The host's monotonic clock and an epoll set instead of the virtual
    /// clock, and the console on stdout instead of captured.
    pub real_clock: bool,
    /// Block devices on in-memory disks, after the network devices. Keep an
    /// `Arc` of a disk to look at it, or to run another guest on it.
    pub disks: &'a [MockDisk<'a>],
    /// Play a guest without our note (§12): the tender offers none of our
    /// extensions, as for an upstream Solo5 guest.
    pub upstream_guest: bool,
}

/// A block device of a mock tender.
#[derive(Clone)]
pub struct MockDisk<'a> {
    /// The device's name in the manifest.
    pub name: &'a str,
    pub disk: Arc<MemDisk>,
    /// `--block-sector-size`; 512 when `None`.
    pub block_size: Option<u16>,
    /// Attached with `--block-ro:`.
    pub read_only: bool,
}

impl<'a> MockDisk<'a> {
    /// `disk` as the writable device `name` with 512-byte sectors.
    pub fn new(name: &'a str, disk: &Arc<MemDisk>) -> MockDisk<'a> {
        MockDisk {
            name,
            disk: disk.clone(),
            block_size: None,
            read_only: false,
        }
    }
}

impl std::fmt::Debug for MockDisk<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockDisk")
            .field("name", &self.name)
            .field("capacity", &self.disk.capacity())
            .field("block_size", &self.block_size)
            .field("read_only", &self.read_only)
            .finish()
    }
}

impl<'a> MockConfig<'a> {
    /// An application run as a host process: real clock, console on
    /// stdout, its network devices on the host taps `taps`.
    pub fn system(cmdline: &'a str, taps: &'a [(&'a str, &'a str)]) -> MockConfig<'a> {
        MockConfig {
            cmdline,
            taps,
            real_clock: true,
            ..MockConfig::default()
        }
    }
}

/// The MAC of the mock's wired network device `handle`: local unicast,
/// unique.
pub fn mock_mac(handle: usize) -> net::Mac {
    [0x02, 0, 0, 0, 0, u8::try_from(handle).unwrap_or(u8::MAX)]
}

/// What POLL waits on, and where monotonic time comes from.
enum MockClock {
    Virtual(Rc<VirtualClock>),
    Real(Instant),
}

/// One in-process tender.
pub struct MockTender {
    ram: GuestRam,
    hypercalls: Hypercalls,
    modules: ModuleSet,
    vm: MockVm,
    vcpu: MockVcpu,
    console: Arc<Console>,
    clock: MockClock,
    /// The wire port of each wired network device, by handle.
    ports: Vec<Option<Arc<WirePort>>>,
    /// What the modules' threads reported as fatal.
    fatal_errors: Arc<Mutex<Vec<String>>>,
    info: BootInfo,
    boot_info: &'static BootInfo,
}

impl MockTender {
    /// A tender with no devices and an empty command line.
    pub fn new() -> Result<MockTender> {
        MockTender::with_config(&MockConfig::default())
    }

    /// A tender with the command line and devices of `config`.
    pub fn with_config(config: &MockConfig<'_>) -> Result<MockTender> {
        let wired = config.net_devices;
        let net_names: Vec<&str> = wired
            .iter()
            .copied()
            .chain(config.taps.iter().map(|(name, _)| *name))
            .collect();
        let names: Vec<&str> = net_names
            .iter()
            .copied()
            .chain(config.disks.iter().map(|d| d.name))
            .collect();
        if !wired.len().is_multiple_of(2) || names.len() >= MFT_MAX_ENTRIES {
            return Err(Error::Other(format!(
                "mock tender: {} wired and {} tap devices: wires come in pairs, at most {} devices",
                wired.len(),
                config.taps.len(),
                MFT_MAX_ENTRIES - 1
            )));
        }
        if let Some(bad) = names.iter().find(|n| !modules::valid_device_name(n)) {
            return Err(Error::Other(format!(
                "mock tender: invalid device name '{bad}'"
            )));
        }
        let mut manifest = Manifest {
            entries: std::iter::once(MftEntry::RESERVED_FIRST)
                .chain(
                    net_names
                        .iter()
                        .map(|n| MftEntry::new(n, MFT_DEV_NET_BASIC)),
                )
                .chain(
                    config
                        .disks
                        .iter()
                        .map(|d| MftEntry::new(d.name, MFT_DEV_BLOCK_BASIC)),
                )
                .collect(),
        };
        // The disks, by device name; the block module opens them by name.
        let disks: BTreeMap<String, Arc<MemDisk>> = config
            .disks
            .iter()
            .map(|d| (d.name.to_owned(), d.disk.clone()))
            .collect();
        let open_block: block::OpenBlock =
            Box::new(move |value: &str, read_only: bool| match disks.get(value) {
                Some(disk) => {
                    disk.set_read_only(read_only);
                    let backend: Arc<dyn BlockBackend> = disk.clone();
                    Ok(backend)
                }
                None => block::open_file(value, read_only),
            });

        // The wires, by device name; the net module opens them by name.
        let mut ports: Vec<Option<Arc<WirePort>>> = vec![None; manifest.entries.len()];
        let mut wires: BTreeMap<String, Arc<dyn FrameBackend>> = BTreeMap::new();
        for (pair, ends) in wired.chunks(2).enumerate() {
            let (a, b) = wire::pair(config.wire, [ends[0], ends[1]]);
            for (offset, port) in [a, b].into_iter().enumerate() {
                let port = Arc::new(port);
                ports[1 + 2 * pair + offset] = Some(port.clone());
                wires.insert(ends[offset].to_owned(), port);
            }
        }
        let open_net: net::OpenNet = Box::new(move |value: &str| match wires.get(value) {
            Some(port) => Ok(port.clone()),
            None => net::open_host(value),
        });
        let console = Arc::new(if config.real_clock {
            Console::Stdout
        } else {
            Console::captured()
        });
        let mut modules = ModuleSet::new(modules::all(Host {
            console: console.clone(),
            open_net,
            open_block,
        }));

        // The command line a tender would get for these devices.
        let mut options = vec![format!("--mem={MOCK_MEM_MIB}")];
        for (handle, name) in wired.iter().enumerate().map(|(i, n)| (i + 1, n)) {
            options.push(format!("--net:{name}={name}"));
            let mac = net::mac::format_mac(&mock_mac(handle));
            options.push(format!("--net-mac:{name}={mac}"));
        }
        for (name, iface) in config.taps {
            options.push(format!("--net:{name}={iface}"));
        }
        for disk in config.disks {
            let kind = if disk.read_only { "block-ro" } else { "block" };
            options.push(format!("--{kind}:{}={}", disk.name, disk.name));
            if let Some(size) = disk.block_size {
                options.push(format!("--block-sector-size:{}={size}", disk.name));
            }
        }
        if !config.ring {
            options.push("--no-net-ring".into());
        }
        modules.parse_options(&options, &mut manifest)?;

        let mut ram = modules.allocate_memory(&manifest)?;
        let mut vm = MockVm {
            ioeventfd: config.ring,
            ..MockVm::default()
        };
        let (clock, poll): (MockClock, Rc<dyn PollSet>) = if config.real_clock {
            (MockClock::Real(Instant::now()), Rc::new(Poller::new()?))
        } else {
            let clock = Rc::new(VirtualClock::default());
            (MockClock::Virtual(clock.clone()), clock)
        };
        let fatal_errors = Arc::new(Mutex::new(Vec::new()));
        let recorded = fatal_errors.clone();
        let fatal: FatalHandler = Arc::new(move |error: Error| {
            recorded
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(error.to_string());
        });
        let hypercalls = modules.setup(SetupEnv {
            manifest: &mut manifest,
            ram: &mut ram,
            vm: &mut vm,
            poll,
            fatal,
            // The mock runs inside a test process, which it must not confine.
            seccomp: SeccompMode::Off,
            // Mock guests are ours: they get our extensions unless the test
            // plays an upstream guest.
            extensions: !config.upstream_guest,
        })?;
        let mut info = BootInfo {
            mem_size: ram.visible_size(),
            kernel_end: marshal::BUFFER_GPA,
            cpu_cycle_freq: 1_000_000_000,
            ..BootInfo::default()
        };
        modules.boot_info(&mut info);
        let (host_base, _) = ram.host_mapping();
        let boot_info = boot_info::leak(info, &manifest, config.cmdline, host_base as u64);
        Ok(MockTender {
            ram,
            hypercalls,
            modules,
            vm,
            vcpu: MockVcpu::default(),
            console,
            clock,
            ports,
            fatal_errors,
            info,
            boot_info,
        })
    }

    /// The wire port of network device `handle`.
    pub fn wire_port(&self, handle: usize) -> Option<&WirePort> {
        self.ports.get(handle)?.as_deref()
    }

    /// The wire port of network device `handle`, to keep (for another
    /// thread, say).
    pub fn shared_wire_port(&self, handle: usize) -> Option<Arc<WirePort>> {
        self.ports.get(handle)?.clone()
    }

    /// The boot information this tender gives its guest (host addresses).
    pub fn boot_info(&self) -> &'static BootInfo {
        self.boot_info
    }

    /// Everything the guest wrote to its console (nothing when it goes to
    /// stdout).
    pub fn console_output(&self) -> Vec<u8> {
        self.console.captured_bytes()
    }

    /// The virtual clock. Panics on a mock with the real clock.
    pub fn clock(&self) -> &VirtualClock {
        match &self.clock {
            MockClock::Virtual(clock) => clock,
            MockClock::Real(_) => panic!("this mock tender runs on the real clock"),
        }
    }

    /// Monotonic nanoseconds: virtual, or since the mock was made.
    pub fn monotonic_ns(&self) -> u64 {
        match &self.clock {
            MockClock::Virtual(clock) => clock.now_ns(),
            MockClock::Real(start) => u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX),
        }
    }

    /// The mock's guest memory, as the tender's modules see it.
    pub fn ram(&self) -> &GuestRam {
        &self.ram
    }

    /// Guest-physical address of the network ring, if one is offered.
    pub fn ring_gpa(&self) -> Option<u64> {
        (self.info.net_ring != 0).then_some(self.info.net_ring)
    }

    /// Rings the ring's doorbell as the guest's OUT to port 0x600 does.
    /// False if no doorbell is registered.
    pub fn kick_ring(&self) -> bool {
        self.vm.port_write(RING_KICK_PIO_BASE, 0)
    }

    /// A guest's 32-bit OUT of `value` to `port` that is not a hypercall: an
    /// in-kernel doorbell if one is registered for it, otherwise an exit the
    /// modules serve as on a tender. `Err`: the message the tender would
    /// stop with.
    pub fn port_write(&mut self, port: u16, value: u32) -> std::result::Result<Action, String> {
        if self.vm.port_write(port, value) {
            return Ok(Action::Continue);
        }
        let exit = VmExit::IoOut {
            port,
            size: 4,
            value,
        };
        self.guest_exit(
            |mock| match mock.modules.vm_exit(&exit, &mut mock.vcpu, &mock.ram) {
                Ok(Some(ExitAction::Resume)) => Ok(Action::Continue),
                Ok(Some(ExitAction::Exit(code))) => Ok(Action::Exit(code)),
                Ok(None) => Err(Error::invalid_port(port).to_string()),
                Err(e) => Err(e.to_string()),
            },
        )
    }

    /// One exit of the guest, as the tender's run loop takes it: the
    /// modules' exit stage, `serve`, and their resume stage if the guest
    /// goes on.
    fn guest_exit(
        &mut self,
        serve: impl FnOnce(&mut MockTender) -> std::result::Result<Action, String>,
    ) -> std::result::Result<Action, String> {
        self.modules.guest_exit().map_err(|e| e.to_string())?;
        let action = serve(self)?;
        if action == Action::Continue {
            self.modules.guest_resume().map_err(|e| e.to_string())?;
        }
        Ok(action)
    }

    /// What the modules' threads reported as fatal (a tender would have
    /// exited with the first).
    pub fn fatal_errors(&self) -> Vec<String> {
        self.fatal_errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The mock's VM (doorbells and regions the modules registered).
    pub fn vm(&self) -> &MockVm {
        &self.vm
    }
}

impl Drop for MockTender {
    fn drop(&mut self) {
        // As a tender does when its guest ends: threads stop, data is synced.
        self.modules.halt(Ending::Exit(0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hvt_abi::hypercall::{nr, Poll, Puts, Walltime};
    use tender_core::hypercall::Action;

    fn served<T>(
        mock: &mut MockTender,
        number: u16,
        arg: &mut T,
    ) -> std::result::Result<Action, String> {
        // SAFETY: `arg` is the struct of `number`, its buffers are live.
        unsafe { mock.serve(number, (arg as *mut T).cast()) }
    }

    #[test]
    fn puts_reaches_the_captured_console() {
        let mut mock = MockTender::new().unwrap();
        let text = b"hello from the host";
        let mut arg = Puts {
            data: text.as_ptr() as u64,
            len: text.len() as u64,
        };
        assert_eq!(served(&mut mock, nr::PUTS, &mut arg), Ok(Action::Continue));
        assert_eq!(mock.console_output(), text);
        assert_eq!(
            arg.data,
            text.as_ptr() as u64,
            "the guest's pointer is restored"
        );
    }

    #[test]
    fn poll_advances_the_virtual_clock_by_the_timeout() {
        let mut mock = MockTender::new().unwrap();
        let mut arg = Poll {
            timeout_nsecs: 1_500_000_000,
            ..Poll::default()
        };
        assert_eq!(served(&mut mock, nr::POLL, &mut arg), Ok(Action::Continue));
        assert_eq!(mock.clock().now_ns(), 1_500_000_000);
        assert_eq!((arg.ready_set, arg.ret), (0, 0));
    }

    #[test]
    fn scheduled_readiness_ends_a_poll_early() {
        let mut mock = MockTender::new().unwrap();
        mock.clock().schedule_ready(3, 2_000);
        mock.clock().schedule_ready(5, 9_000);
        let mut arg = Poll {
            timeout_nsecs: 5_000,
            ..Poll::default()
        };
        served(&mut mock, nr::POLL, &mut arg).unwrap();
        assert_eq!(
            (arg.ready_set, arg.ret, mock.clock().now_ns()),
            (1 << 3, 1, 2_000)
        );
        served(&mut mock, nr::POLL, &mut arg).unwrap();
        assert_eq!(
            (arg.ready_set, arg.ret, mock.clock().now_ns()),
            (0, 0, 7_000)
        );
    }

    #[test]
    fn walltime_is_real_time() {
        let mut mock = MockTender::new().unwrap();
        let mut arg = Walltime::default();
        served(&mut mock, nr::WALLTIME, &mut arg).unwrap();
        assert!(arg.nsecs > 1_500_000_000 * 1_000_000_000, "{}", arg.nsecs);
    }

    #[test]
    fn oversized_buffers_fail_the_real_check() {
        let mut mock = MockTender::new().unwrap();
        let mut arg = Puts {
            data: 0x1000,
            len: u64::MAX / 2,
        };
        let err = served(&mut mock, nr::PUTS, &mut arg).unwrap_err();
        assert!(
            err.starts_with("hypercall PUTS: Invalid guest access: gpa=0x1000"),
            "{err}"
        );
    }

    #[test]
    fn unknown_numbers_are_refused_by_the_dispatcher() {
        let mut mock = MockTender::new().unwrap();
        let mut arg = 0u64;
        assert_eq!(
            served(&mut mock, 0, &mut arg),
            Err("Invalid guest hypercall: num=0".into())
        );
        assert_eq!(
            served(&mut mock, 9, &mut arg),
            Err("Invalid guest port access: port=0x509".into())
        );
        // Block and net calls have no handler without those devices.
        assert_eq!(
            served(&mut mock, nr::BLOCK_READ, &mut [0u64; 5]),
            Err("Invalid guest hypercall: num=5".into())
        );
    }

    fn net_io(handle: u64, buffer: &mut [u8], len: usize) -> hvt_abi::hypercall::NetIo {
        hvt_abi::hypercall::NetIo {
            handle,
            data: buffer.as_mut_ptr() as u64,
            len: len as u64,
            ret: -1,
            _pad: 0,
        }
    }

    fn poll(mock: &mut MockTender, timeout_nsecs: u64) -> std::result::Result<(u64, i32), String> {
        let mut arg = Poll {
            timeout_nsecs,
            ..Poll::default()
        };
        served(mock, nr::POLL, &mut arg)?;
        Ok((arg.ready_set, arg.ret))
    }

    fn two_devices(wire: WireConfig) -> MockTender {
        MockTender::with_config(&MockConfig {
            cmdline: "x y",
            net_devices: &["a", "b"],
            wire,
            ..MockConfig::default()
        })
        .unwrap()
    }

    #[test]
    fn the_boot_info_lists_the_wired_devices() {
        let mock = two_devices(WireConfig::clean());
        let info = mock.boot_info();
        assert_eq!((info.host_features, info.net_ring), (0, 0));
        // SAFETY: the mock leaked a NUL-terminated command line there.
        let cmdline = unsafe { std::ffi::CStr::from_ptr(info.cmdline as *const _) };
        assert_eq!(cmdline.to_str(), Ok("x y"));
        // SAFETY: the mock leaked the manifest bytes there.
        let header = unsafe { *(info.mft as *const hvt_abi::manifest::MftHeader) };
        assert_eq!((header.version, header.entries), (1, 3));
        // SAFETY: followed by `entries` entries.
        let entries = unsafe {
            std::slice::from_raw_parts(
                (info.mft as *const hvt_abi::manifest::MftHeader).add(1) as *const MftEntry,
                3,
            )
        };
        assert_eq!(entries[0], MftEntry::RESERVED_FIRST);
        for (handle, name) in [(1, "a"), (2, "b")] {
            let entry = &entries[handle];
            assert_eq!(entry.name_bytes(), name.as_bytes());
            assert_eq!((entry.kind, entry.attached), (MFT_DEV_NET_BASIC, 1));
            assert_eq!(entry.net().mac, mock_mac(handle));
            assert_eq!(entry.net().mtu, 1500);
        }
        assert!(mock.wire_port(1).is_some() && mock.wire_port(0).is_none());
        assert!(MockTender::with_config(&MockConfig {
            net_devices: &["odd"],
            ..MockConfig::default()
        })
        .is_err());
    }

    #[test]
    fn queued_frames_make_a_device_ready_without_moving_the_clock() {
        let mut mock = two_devices(WireConfig::clean());
        assert_eq!(poll(&mut mock, 1_000).unwrap(), (0, 0));
        assert_eq!(mock.clock().now_ns(), 1_000);

        let mut frame = [7u8; 60];
        let mut arg = net_io(1, &mut frame, 60);
        served(&mut mock, nr::NET_WRITE, &mut arg).unwrap();
        assert_eq!(arg.ret, hvt_abi::hypercall::result::OK);
        assert_eq!(poll(&mut mock, 5_000).unwrap(), (1 << 2, 1));
        assert_eq!(mock.clock().now_ns(), 1_000);

        // Reported and not read: still ready, but the clock runs again.
        assert_eq!(poll(&mut mock, 5_000).unwrap(), (1 << 2, 1));
        assert_eq!(mock.clock().now_ns(), 6_000);

        let mut buffer = [0u8; 1514];
        let mut arg = net_io(2, &mut buffer, 1514);
        served(&mut mock, nr::NET_READ, &mut arg).unwrap();
        assert_eq!((arg.ret, arg.len), (hvt_abi::hypercall::result::OK, 60));
        assert_eq!(&buffer[..60], &[7u8; 60]);
        served(&mut mock, nr::NET_READ, &mut arg).unwrap();
        assert_eq!(arg.ret, hvt_abi::hypercall::result::AGAIN);
        assert_eq!(poll(&mut mock, 1_000).unwrap(), (0, 0));
        assert_eq!(mock.clock().now_ns(), 7_000);
    }

    #[test]
    fn waiting_forever_is_a_deadlock() {
        let mut mock = two_devices(WireConfig::clean());
        let err = poll(&mut mock, u64::MAX).unwrap_err();
        assert!(
            err.starts_with("mock tender: the guest waits forever"),
            "{err}"
        );
        mock.clock().schedule_ready(1, 500);
        assert_eq!(poll(&mut mock, u64::MAX).unwrap(), (1 << 1, 1));
    }
}
