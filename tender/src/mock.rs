//! An in-process tender, for running guest code on the host in tests.
//!
//! The guest's hypercalls arrive here (through the bindings' host transport)
//! instead of through `outl`. They are served by the real tender's code: the
//! same `Hypercalls` dispatcher, argument checks, `GuestRam` validation and
//! module handlers. What the mock adds is what a test needs: the console is
//! captured, and POLL waits on a virtual clock that jumps straight to the
//! deadline, so timer tests run instantly and deterministically.
//!
//! The guest's argument structs live in host memory, so each call is
//! marshalled: the struct and the buffers it names are copied into the
//! mock's guest memory at fixed addresses, the call is dispatched with those
//! addresses, and results are copied back. A buffer too large for the mock's
//! memory is passed with its host address, which the tender's check rejects,
//! as a real tender rejects an out-of-range address.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use hvt_abi::hypercall::{nr, HALT_COOKIE_MAX, PIO_BASE};

use crate::devices::console::Console;
use crate::devices::poller::Waiter;
use crate::error::Result;
use crate::hypercall::{Action, Hypercalls};
use crate::modules::core;
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

/// A monotonic clock that only moves when the guest waits, and scripted
/// device readiness on it.
#[derive(Default)]
pub struct VirtualClock {
    now_ns: Cell<u64>,
    /// (time, handle): the device becomes readable at that time.
    events: RefCell<Vec<(u64, usize)>>,
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
}

impl Waiter for VirtualClock {
    /// Jumps to the earlier of the timeout and the next readiness event.
    fn wait(&self, timeout_ns: u64) -> Result<(u64, i32)> {
        let deadline = self.now_ns.get().saturating_add(timeout_ns);
        let mut events = self.events.borrow_mut();
        let first = events
            .iter()
            .map(|&(at, _)| at)
            .min()
            .filter(|&at| at <= deadline);
        let Some(at) = first else {
            self.now_ns.set(deadline);
            return Ok((0, 0));
        };
        self.now_ns.set(self.now_ns.get().max(at));
        let mut ready_set = 0u64;
        events.retain(|&(time, handle)| {
            let fire = time <= at;
            if fire {
                ready_set |= 1 << handle;
            }
            !fire
        });
        Ok((ready_set, ready_set.count_ones() as i32))
    }
}

/// One in-process tender.
pub struct MockTender {
    ram: GuestRam,
    hypercalls: Hypercalls,
    console: Rc<RefCell<Console>>,
    clock: Rc<VirtualClock>,
}

impl MockTender {
    pub fn new() -> Result<MockTender> {
        let ram = GuestRam::new(MOCK_MEM_SIZE)?;
        let mut hypercalls = Hypercalls::default();
        let console = Rc::new(RefCell::new(Console::Captured(Vec::new())));
        let clock = Rc::new(VirtualClock::default());
        core::register(&mut hypercalls, console.clone(), clock.clone())?;
        Ok(MockTender {
            ram,
            hypercalls,
            console,
            clock,
        })
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
        // Block and net calls have no handler without those modules.
        assert_eq!(
            served(&mut mock, nr::BLOCK_READ, &mut [0u64; 5]),
            Err("Invalid guest hypercall: num=5".into())
        );
    }
}
