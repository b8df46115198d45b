//! An in-process tender, for running guest code on the host in tests.
//!
//! The guest's hypercalls arrive here (through the bindings' host transport)
//! instead of through `outl`. They are served by the real tender's code: the
//! same `Hypercalls` dispatcher, argument checks, `GuestRam` validation and
//! module handlers. What the mock adds is what a test needs: the console is
//! captured, and POLL waits on a virtual clock that jumps straight to the
//! deadline, so timer tests run instantly and deterministically.
//!
//! Network devices are the net module's: its NET_WRITE/NET_READ handlers
//! are registered over in-memory wires ([`crate::devices::wire`]) instead of
//! taps, two devices of the guest per wire, back to back. POLL reports a
//! device readable (without moving the clock) while frames wait for it.
//!
//! The guest finds its devices in boot information the mock provides (the
//! bindings' host hook [`boot_info`]): a manifest with the attached devices,
//! as a tender writes it, with host addresses for its pointers.
//!
//! The guest's argument structs live in host memory, so each call is
//! marshalled: the struct and the buffers it names are copied into the
//! mock's guest memory at fixed addresses, the call is dispatched with those
//! addresses, and results are copied back. A buffer too large for the mock's
//! memory is passed with its host address, which the tender's check rejects,
//! as a real tender rejects an out-of-range address.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use hvt_abi::boot::BootInfo;
use hvt_abi::hypercall::{nr, HALT_COOKIE_MAX, PIO_BASE};
use hvt_abi::manifest::{MftEntry, MFT_DEV_NET_BASIC, MFT_MAX_ENTRIES};

use crate::devices::console::Console;
use crate::devices::frame::FrameBackend;
use crate::devices::poller::Waiter;
use crate::devices::wire::{self, WireConfig, WirePort};
use crate::error::{Error, Result};
use crate::hypercall::{Action, Hypercalls};
use crate::manifest::Manifest;
use crate::modules::{core, net};
use crate::vstate::memory::GuestRam;

/// Guest memory of a mock tender.
pub const MOCK_MEM_SIZE: u64 = 16 << 20;
/// Where marshalled argument structs go.
const ARG_GPA: u64 = 0x1_0000;
/// Where marshalled buffers go, up to the end of memory.
const BUFFER_GPA: u64 = 0x10_0000;

/// How the guest ended: raised as a panic payload by the transport, because
/// a halted guest never returns from its HALT hypercall.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestExit {
    /// The exit code a tender process would have.
    pub code: i32,
    /// The tender's error message, when the tender stopped the guest.
    pub error: Option<String>,
}

/// A monotonic clock that only moves when the guest waits, with scripted
/// device readiness on it, and the wire ports whose queued frames make
/// their devices readable.
#[derive(Default)]
pub struct VirtualClock {
    now_ns: Cell<u64>,
    /// (time, handle): the device becomes readable at that time.
    events: RefCell<Vec<(u64, usize)>>,
    /// (handle, port): the device is readable while frames wait on the port.
    ports: RefCell<Vec<(usize, Rc<WirePort>)>>,
    /// The ports the last wait reported, with their receive counts then.
    reported: RefCell<Vec<(usize, u64)>>,
}

impl VirtualClock {
    pub fn now_ns(&self) -> u64 {
        self.now_ns.get()
    }

    /// Makes device `handle` readable at virtual time `at_ns` (once).
    pub fn schedule_ready(&self, handle: usize, at_ns: u64) {
        assert!(handle < 64, "handle {handle} does not fit a ready set");
        self.events.borrow_mut().push((at_ns, handle));
    }

    /// Reports device `handle` readable whenever frames wait on `port`.
    pub fn watch(&self, handle: usize, port: Rc<WirePort>) {
        assert!(handle < 64, "handle {handle} does not fit a ready set");
        self.ports.borrow_mut().push((handle, port));
    }

    /// The watched ports with frames waiting: (fresh, stale) ready sets. A
    /// port is stale when the last wait reported it and the guest has not
    /// asked it for a frame since.
    fn ready_ports(&self) -> (u64, u64) {
        let reported = self.reported.borrow();
        let (mut fresh, mut stale) = (0u64, 0u64);
        for (handle, port) in self.ports.borrow().iter() {
            if port.pending() == 0 {
                continue;
            }
            let ignored = reported
                .iter()
                .any(|&(h, calls)| h == *handle && calls == port.receive_calls());
            if ignored {
                stale |= 1 << handle;
            } else {
                fresh |= 1 << handle;
            }
        }
        (fresh, stale)
    }

    /// Remembers what this wait reported, to tell stale readiness later.
    fn report(&self, ready_set: u64) -> Result<(u64, i32)> {
        let mut reported = self.reported.borrow_mut();
        reported.clear();
        for (handle, port) in self.ports.borrow().iter() {
            if ready_set & (1 << handle) != 0 {
                reported.push((*handle, port.receive_calls()));
            }
        }
        Ok((ready_set, ready_set.count_ones() as i32))
    }

    /// Takes the scripted events due at or before `at` into a ready set.
    fn fire_events(&self, at: u64) -> u64 {
        let mut ready_set = 0u64;
        self.events.borrow_mut().retain(|&(time, handle)| {
            let fire = time <= at;
            if fire {
                ready_set |= 1 << handle;
            }
            !fire
        });
        ready_set
    }
}

impl Waiter for VirtualClock {
    /// Returns at once, the clock unmoved, when frames the guest has not
    /// been told about wait on a port. Otherwise jumps to the earlier of the
    /// timeout and the next scripted readiness event.
    ///
    /// Ports the guest was told about and did not read stay in the ready
    /// set (epoll is level-triggered) but do not stop the clock: a real
    /// tender would have the guest spin until its deadline, so the mock
    /// jumps there. A wait that nothing can end (no deadline, no event, no
    /// frame the guest will read) is a deadlock, reported as an error
    /// instead of hanging the test.
    fn wait(&self, timeout_ns: u64) -> Result<(u64, i32)> {
        let now = self.now_ns.get();
        let (fresh, stale) = self.ready_ports();
        if fresh != 0 {
            return self.report(fresh | stale | self.fire_events(now));
        }
        let deadline = now.saturating_add(timeout_ns);
        let first = self
            .events
            .borrow()
            .iter()
            .map(|&(at, _)| at)
            .min()
            .filter(|&at| at <= deadline);
        let Some(at) = first else {
            if deadline == u64::MAX {
                return Err(Error::new(
                    "mock tender: the guest waits forever: no deadline, no readiness \
                     event, no frame it will read",
                ));
            }
            self.now_ns.set(deadline);
            return self.report(stale);
        };
        self.now_ns.set(now.max(at));
        self.report(self.fire_events(at) | stale)
    }
}

/// What a mock tender offers its guest.
#[derive(Debug, Clone, Copy, Default)]
pub struct MockConfig<'a> {
    /// The command line in the boot information.
    pub cmdline: &'a str,
    /// Network devices, by name: handles 1, 2, ... in this order. Devices
    /// are wired to each other in pairs (first with second, third with
    /// fourth, ...), so there must be an even number of them.
    pub net_devices: &'a [&'a str],
    /// How each wire behaves.
    pub wire: WireConfig,
}

/// The MAC of the mock's network device `handle`: local unicast, unique.
pub fn mock_mac(handle: usize) -> net::Mac {
    [0x02, 0, 0, 0, 0, handle as u8]
}

/// One in-process tender.
pub struct MockTender {
    ram: GuestRam,
    hypercalls: Hypercalls,
    console: Rc<RefCell<Console>>,
    clock: Rc<VirtualClock>,
    /// The wire port of each network device, by handle.
    ports: Vec<Option<Rc<WirePort>>>,
    boot_info: &'static BootInfo,
}

impl MockTender {
    /// A tender with no devices and an empty command line.
    pub fn new() -> Result<MockTender> {
        MockTender::with_config(&MockConfig::default())
    }

    /// A tender with the command line and network devices of `config`.
    pub fn with_config(config: &MockConfig<'_>) -> Result<MockTender> {
        let ram = GuestRam::new(MOCK_MEM_SIZE)?;
        let mut hypercalls = Hypercalls::default();
        let console = Rc::new(RefCell::new(Console::Captured(Vec::new())));
        let clock = Rc::new(VirtualClock::default());
        core::register(&mut hypercalls, console.clone(), clock.clone())?;

        let names = config.net_devices;
        if !names.len().is_multiple_of(2) || names.len() >= MFT_MAX_ENTRIES {
            return Err(Error::new(format!(
                "mock tender: {} network devices: they are wired in pairs, at most {}",
                names.len(),
                MFT_MAX_ENTRIES - 2
            )));
        }
        if let Some(bad) = names
            .iter()
            .find(|name| !crate::modules::valid_device_name(name))
        {
            return Err(Error::new(format!(
                "mock tender: invalid device name '{bad}'"
            )));
        }
        let mut manifest = Manifest {
            entries: std::iter::once(MftEntry::RESERVED_FIRST)
                .chain(
                    names
                        .iter()
                        .map(|name| MftEntry::new(name, MFT_DEV_NET_BASIC)),
                )
                .collect(),
        };
        let mut ports: Vec<Option<Rc<WirePort>>> = vec![None; manifest.entries.len()];
        for (pair, ends) in names.chunks(2).enumerate() {
            let (a, b) = wire::pair(config.wire, [ends[0], ends[1]]);
            ports[1 + 2 * pair] = Some(Rc::new(a));
            ports[2 + 2 * pair] = Some(Rc::new(b));
        }
        let mut backends: net::Backends = vec![None; manifest.entries.len()];
        for (handle, port) in ports.iter().enumerate() {
            let Some(port) = port else { continue };
            // The wire has no host descriptor: `b` stays 0.
            net::attach(
                &mut manifest.entries[handle],
                mock_mac(handle),
                port.mtu(),
                0,
            );
            clock.watch(handle, port.clone());
            backends[handle] = Some(port.clone());
        }
        if !names.is_empty() {
            net::register_hypercalls(&mut hypercalls, backends)?;
        }
        manifest.check_all_attached()?;
        Ok(MockTender {
            ram,
            hypercalls,
            console,
            clock,
            ports,
            boot_info: leak_boot_info(&manifest, config.cmdline),
        })
    }

    /// The wire port of network device `handle`.
    pub fn wire_port(&self, handle: usize) -> Option<&WirePort> {
        self.ports.get(handle)?.as_deref()
    }

    /// The boot information this tender gives its guest.
    pub fn boot_info(&self) -> &'static BootInfo {
        self.boot_info
    }

    /// Everything the guest wrote to its console.
    pub fn console_output(&self) -> Vec<u8> {
        match &*self.console.borrow() {
            Console::Captured(bytes) => bytes.clone(),
            Console::Stdout => Vec::new(),
        }
    }

    pub fn clock(&self) -> &VirtualClock {
        &self.clock
    }

    /// Serves hypercall `number` whose argument struct is at `arg` in host
    /// memory. Returns the tender's action, or its error message.
    ///
    /// # Safety
    /// `arg` must point at the argument struct of `number`, and every buffer
    /// it names with a length the mock can hold must be valid for that length.
    pub unsafe fn serve(
        &mut self,
        number: u16,
        arg: *mut u8,
    ) -> std::result::Result<Action, String> {
        let Some(shape) = shape_of(number) else {
            // Not an ABI hypercall: let the dispatcher refuse it.
            return self.dispatch(number);
        };
        let mut copy = vec![0u8; shape.size];
        // SAFETY: the caller promises `arg` holds the struct of `number`.
        unsafe { std::ptr::copy_nonoverlapping(arg, copy.as_mut_ptr(), shape.size) };
        let mut next_buffer = BUFFER_GPA;
        let mut placed = Vec::new();
        for buffer in shape.buffers {
            let host = read_u64(&copy, buffer.ptr_offset);
            let len = match buffer.len {
                Len::Field(offset) => read_u64(&copy, offset),
                Len::Fixed(len) if host != 0 => len,
                Len::Fixed(_) => continue,
            };
            let fits = next_buffer
                .checked_add(len)
                .is_some_and(|end| end < MOCK_MEM_SIZE);
            if !fits {
                // Leave the host address: the tender's check refuses it.
                continue;
            }
            let mut bytes = vec![0u8; len as usize];
            // SAFETY: the caller promises the buffer is valid for `len`.
            unsafe {
                std::ptr::copy_nonoverlapping(host as *const u8, bytes.as_mut_ptr(), bytes.len())
            };
            self.ram
                .write_bytes(next_buffer, &bytes)
                .map_err(|e| e.to_string())?;
            write_u64(&mut copy, buffer.ptr_offset, next_buffer);
            placed.push((buffer, host, next_buffer, len));
            next_buffer += len;
        }
        self.ram
            .write_bytes(ARG_GPA, &copy)
            .map_err(|e| e.to_string())?;
        let action = self.dispatch(number)?;
        self.ram
            .read_bytes(ARG_GPA, &mut copy)
            .map_err(|e| e.to_string())?;
        for (buffer, host, gpa, len) in placed {
            if buffer.copy_back {
                // NET_READ shortens `len` to the frame length.
                let out_len = match buffer.len {
                    Len::Field(offset) => read_u64(&copy, offset).min(len),
                    Len::Fixed(len) => len,
                };
                let mut bytes = vec![0u8; out_len as usize];
                self.ram
                    .read_bytes(gpa, &mut bytes)
                    .map_err(|e| e.to_string())?;
                // SAFETY: within the buffer the caller vouched for.
                unsafe {
                    std::ptr::copy_nonoverlapping(bytes.as_ptr(), host as *mut u8, bytes.len())
                };
            }
            // The guest sees its own pointer again, not the mock's address.
            write_u64(&mut copy, buffer.ptr_offset, host);
        }
        // SAFETY: as above, `arg` holds `shape.size` bytes.
        unsafe { std::ptr::copy_nonoverlapping(copy.as_ptr(), arg, shape.size) };
        Ok(action)
    }

    fn dispatch(&mut self, number: u16) -> std::result::Result<Action, String> {
        let port = PIO_BASE.wrapping_add(number);
        self.hypercalls
            .dispatch_pio(&self.ram, port, true, 4, ARG_GPA as u32)
            .map_err(|e| e.to_string())
    }
}

/// Boot information for a guest on the host, as a tender writes it (§4.1,
/// §4.4) but with host addresses, leaked: the guest keeps it for its life.
/// No ring is offered, so the guest's network devices use the hypercalls.
fn leak_boot_info(manifest: &Manifest, cmdline: &str) -> &'static BootInfo {
    let bytes = manifest.to_bytes();
    // Words, for the alignment of the manifest's structs.
    let mut words = vec![0u64; bytes.len().div_ceil(8)];
    for (word, chunk) in words.iter_mut().zip(bytes.chunks(8)) {
        let mut raw = [0u8; 8];
        raw[..chunk.len()].copy_from_slice(chunk);
        *word = u64::from_ne_bytes(raw);
    }
    let mft: &'static [u64] = Box::leak(words.into_boxed_slice());
    let mut line = cmdline.as_bytes().to_vec();
    line.push(0);
    let cmdline: &'static [u8] = Box::leak(line.into_boxed_slice());
    Box::leak(Box::new(BootInfo {
        mem_size: MOCK_MEM_SIZE,
        kernel_end: BUFFER_GPA,
        cpu_cycle_freq: 1_000_000_000,
        cmdline: cmdline.as_ptr() as u64,
        mft: mft.as_ptr() as u64,
        host_features: 0,
        guest_features: 0,
        net_ring: 0,
    }))
}

enum Len {
    /// The length is the u64 at this offset of the struct.
    Field(usize),
    /// A fixed length, when the pointer is non-zero (the HALT cookie).
    Fixed(u64),
}

struct Buffer {
    ptr_offset: usize,
    len: Len,
    copy_back: bool,
}

struct Shape {
    size: usize,
    buffers: &'static [Buffer],
}

/// Which fields of each argument struct are guest pointers (§5.1).
fn shape_of(number: u16) -> Option<Shape> {
    const NONE: &[Buffer] = &[];
    const PUTS: &[Buffer] = &[Buffer {
        ptr_offset: 0,
        len: Len::Field(8),
        copy_back: false,
    }];
    const BLOCK_WRITE: &[Buffer] = &[Buffer {
        ptr_offset: 16,
        len: Len::Field(24),
        copy_back: false,
    }];
    const BLOCK_READ: &[Buffer] = &[Buffer {
        ptr_offset: 16,
        len: Len::Field(24),
        copy_back: true,
    }];
    const NET_WRITE: &[Buffer] = &[Buffer {
        ptr_offset: 8,
        len: Len::Field(16),
        copy_back: false,
    }];
    const NET_READ: &[Buffer] = &[Buffer {
        ptr_offset: 8,
        len: Len::Field(16),
        copy_back: true,
    }];
    const HALT: &[Buffer] = &[Buffer {
        ptr_offset: 0,
        len: Len::Fixed(HALT_COOKIE_MAX),
        copy_back: false,
    }];
    let (size, buffers) = match number {
        nr::WALLTIME => (8, NONE),
        nr::PUTS => (16, PUTS),
        nr::POLL => (24, NONE),
        nr::BLOCK_WRITE => (40, BLOCK_WRITE),
        nr::BLOCK_READ => (40, BLOCK_READ),
        nr::NET_WRITE => (32, NET_WRITE),
        nr::NET_READ => (32, NET_READ),
        nr::HALT => (16, HALT),
        _ => return None,
    };
    Some(Shape { size, buffers })
}

fn read_u64(bytes: &[u8], offset: usize) -> u64 {
    u64::from_le_bytes(bytes[offset..offset + 8].try_into().expect("8 bytes"))
}

fn write_u64(bytes: &mut [u8], offset: usize, value: u64) {
    bytes[offset..offset + 8].copy_from_slice(&value.to_le_bytes());
}

thread_local! {
    static CURRENT: RefCell<Option<MockTender>> = const { RefCell::new(None) };
}

/// Makes `mock` the tender of this thread's guest code.
pub fn install(mock: MockTender) {
    CURRENT.with(|current| *current.borrow_mut() = Some(mock));
}

/// Takes this thread's mock tender back.
pub fn uninstall() -> Option<MockTender> {
    CURRENT.with(|current| current.borrow_mut().take())
}

/// Runs `f` on this thread's mock tender.
pub fn with<R>(f: impl FnOnce(&mut MockTender) -> R) -> R {
    CURRENT.with(|current| {
        f(current
            .borrow_mut()
            .as_mut()
            .expect("no mock tender installed on this thread"))
    })
}

/// The bindings' host transport: serves the hypercall on this thread's mock
/// tender. A HALT, or a call the tender refuses, ends the guest by
/// unwinding with a [`GuestExit`] payload.
///
/// A safe `fn` because it is the bindings' transport, whose type is a safe
/// function pointer: its caller is guest code of this process passing its
/// own argument struct, as on a real tender.
#[allow(clippy::not_unsafe_ptr_arg_deref)]
pub fn hypercall(number: u16, arg: *mut u8) {
    // SAFETY: the bindings pass the argument struct of `number`, built by
    // guest code in this process from its own buffers.
    let result = with(|mock| unsafe { mock.serve(number, arg) });
    match result {
        Ok(Action::Continue) => {}
        Ok(Action::Exit(code)) => std::panic::panic_any(GuestExit { code, error: None }),
        Err(message) => std::panic::panic_any(GuestExit {
            code: 1,
            error: Some(message),
        }),
    }
}

/// The bindings' host clock: this thread's virtual monotonic time.
pub fn monotonic_ns() -> u64 {
    with(|mock| mock.clock.now_ns())
}

/// The bindings' host boot information: that of this thread's mock tender,
/// `None` when none is installed.
pub fn boot_info() -> Option<&'static BootInfo> {
    CURRENT
        .try_with(|current| {
            current
                .try_borrow()
                .ok()
                .and_then(|mock| mock.as_ref().map(|m| m.boot_info))
        })
        .ok()
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hvt_abi::hypercall::{Poll, Puts, Walltime};

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
