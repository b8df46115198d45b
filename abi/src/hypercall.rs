//! Hypercall numbers, argument structs and result codes (§5).
//!
//! A hypercall is `outl %eax, %dx` with `DX = PIO_BASE + nr` and `EAX` the
//! guest-physical address of the argument struct.

/// Port of hypercall 0 (`HVT_HYPERCALL_PIO_BASE`).
pub const PIO_BASE: u16 = 0x500;
/// Doorbell port of the network ring, served by an ioeventfd (§6.7).
pub const RING_KICK_PIO_BASE: u16 = 0x600;

/// Hypercall numbers.
pub mod nr {
    pub const WALLTIME: u16 = 1;
    pub const PUTS: u16 = 2;
    pub const POLL: u16 = 3;
    pub const BLOCK_WRITE: u16 = 4;
    pub const BLOCK_READ: u16 = 5;
    pub const NET_WRITE: u16 = 6;
    pub const NET_READ: u16 = 7;
    pub const HALT: u16 = 8;
    /// First invalid number (`HVT_HYPERCALL_MAX`).
    pub const MAX: u16 = 9;
}

/// `solo5_result_t`.
pub mod result {
    pub const OK: i32 = 0;
    pub const AGAIN: i32 = 1;
    pub const EINVAL: i32 = 2;
    pub const EUNSPEC: i32 = 3;
}

/// Guest exit statuses (`solo5.h`).
pub mod exit {
    pub const SUCCESS: i32 = 0;
    pub const FAILURE: i32 = 1;
    pub const ABORT: i32 = 255;
}

/// Bytes a non-zero HALT cookie must make readable (`HVT_HALT_COOKIE_MAX`).
pub const HALT_COOKIE_MAX: u64 = 512;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Walltime {
    /// OUT: `CLOCK_REALTIME` in ns since the UNIX epoch.
    pub nsecs: u64,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Puts {
    pub data: u64,
    pub len: u64,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Poll {
    /// IN: relative timeout.
    pub timeout_nsecs: u64,
    /// OUT: bit `i` set when the net device with handle `i` is readable.
    pub ready_set: u64,
    /// OUT: number of ready devices.
    pub ret: i32,
    pub _pad: u32,
}

/// BLOCK_WRITE and BLOCK_READ share this layout.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct BlockIo {
    pub handle: u64,
    pub offset: u64,
    pub data: u64,
    pub len: u64,
    pub ret: i32,
    pub _pad: u32,
}

/// NET_WRITE and NET_READ share this layout; NET_READ writes `len` back.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct NetIo {
    pub handle: u64,
    pub data: u64,
    pub len: u64,
    pub ret: i32,
    pub _pad: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Halt {
    /// GPA of a trap frame (dumpcore hint), or 0.
    pub cookie: u64,
    pub exit_status: i32,
    pub _pad: u32,
}

/// The trap frame at the start of a HALT cookie (§6.6): what the x86_64
/// bindings' trap handler saw, for a core dump's registers.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrapFrame {
    pub cr2: u64,
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

crate::assert_layout!(Walltime, size = 8, nsecs @ 0);
crate::assert_layout!(Puts, size = 16, data @ 0, len @ 8);
crate::assert_layout!(Poll, size = 24, timeout_nsecs @ 0, ready_set @ 8, ret @ 16);
crate::assert_layout!(BlockIo, size = 40, handle @ 0, offset @ 8, data @ 16, len @ 24, ret @ 32);
crate::assert_layout!(NetIo, size = 32, handle @ 0, data @ 8, len @ 16, ret @ 24);
crate::assert_layout!(Halt, size = 16, cookie @ 0, exit_status @ 8);
crate::assert_layout!(TrapFrame, size = 56, cr2 @ 0, error_code @ 8, rip @ 16, cs @ 24, rflags @ 32, rsp @ 40, ss @ 48);

/// Upper-case name of hypercall `number`, as the tender's messages print it.
pub fn name(number: u16) -> &'static str {
    match number {
        nr::WALLTIME => "WALLTIME",
        nr::PUTS => "PUTS",
        nr::POLL => "POLL",
        nr::BLOCK_WRITE => "BLOCK_WRITE",
        nr::BLOCK_READ => "BLOCK_READ",
        nr::NET_WRITE => "NET_WRITE",
        nr::NET_READ => "NET_READ",
        nr::HALT => "HALT",
        _ => "INVALID",
    }
}

/// How a guest buffer's length is given in an argument struct.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BufferLen {
    /// The `u64` field at this byte offset of the struct.
    Field(usize),
    /// A fixed length, when the pointer is non-zero (the HALT cookie).
    Fixed(u64),
}

/// A guest pointer field of an argument struct (§5.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BufferField {
    /// Byte offset of the `u64` guest address in the struct.
    pub ptr_offset: usize,
    /// Where its length comes from.
    pub len: BufferLen,
    /// True when the tender writes into the buffer (reads from devices).
    pub written_by_tender: bool,
}

/// The shape of a hypercall's argument struct: its size and the guest
/// buffers it names. Someone who moves arguments between address spaces
/// (an in-process tender) needs exactly this.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArgShape {
    pub size: usize,
    pub buffers: &'static [BufferField],
    /// True when the tender writes results into the struct (every call but
    /// PUTS and HALT).
    pub has_results: bool,
}

/// The argument shape of hypercall `number`, `None` for an invalid number.
pub fn arg_shape(number: u16) -> Option<ArgShape> {
    use core::mem::{offset_of, size_of};
    const fn field(ptr_offset: usize, len_offset: usize, written: bool) -> BufferField {
        BufferField {
            ptr_offset,
            len: BufferLen::Field(len_offset),
            written_by_tender: written,
        }
    }
    const PUTS: &[BufferField] = &[field(offset_of!(Puts, data), offset_of!(Puts, len), false)];
    const BLOCK_WRITE: &[BufferField] = &[field(
        offset_of!(BlockIo, data),
        offset_of!(BlockIo, len),
        false,
    )];
    const BLOCK_READ: &[BufferField] = &[field(
        offset_of!(BlockIo, data),
        offset_of!(BlockIo, len),
        true,
    )];
    const NET_WRITE: &[BufferField] = &[field(
        offset_of!(NetIo, data),
        offset_of!(NetIo, len),
        false,
    )];
    const NET_READ: &[BufferField] =
        &[field(offset_of!(NetIo, data), offset_of!(NetIo, len), true)];
    const HALT: &[BufferField] = &[BufferField {
        ptr_offset: offset_of!(Halt, cookie),
        len: BufferLen::Fixed(HALT_COOKIE_MAX),
        written_by_tender: false,
    }];
    let (size, buffers): (usize, &'static [BufferField]) = match number {
        nr::WALLTIME => (size_of::<Walltime>(), &[]),
        nr::PUTS => (size_of::<Puts>(), PUTS),
        nr::POLL => (size_of::<Poll>(), &[]),
        nr::BLOCK_WRITE => (size_of::<BlockIo>(), BLOCK_WRITE),
        nr::BLOCK_READ => (size_of::<BlockIo>(), BLOCK_READ),
        nr::NET_WRITE => (size_of::<NetIo>(), NET_WRITE),
        nr::NET_READ => (size_of::<NetIo>(), NET_READ),
        nr::HALT => (size_of::<Halt>(), HALT),
        _ => return None,
    };
    let has_results = !matches!(number, nr::PUTS | nr::HALT);
    Some(ArgShape {
        size,
        buffers,
        has_results,
    })
}
