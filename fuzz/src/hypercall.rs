//! Target `hypercall`: the bytes are a guest. A tender with every module
//! (4 MiB of memory, network devices `a` and `b` on one in-memory wire, a
//! writable disk `disk` and a read-only disk `ro` of 4 KiB sectors, no
//! ring) serves a sequence of the guest's memory writes and port accesses
//! through the real dispatcher (`Hypercalls::dispatch_pio`) with raw
//! guest-physical arguments, as the vCPU loop does on a KVM exit.
//!
//! The input (see [`ops`]): one byte of disk fault, then operations until
//! the input ends, the guest halts or the tender stops it with an error.

use std::sync::Arc;

use hvt_abi::hypercall::PIO_BASE;
use hvt_abi::manifest::{MftEntry, MFT_DEV_BLOCK_BASIC, MFT_DEV_NET_BASIC};
use tender_core::devices::frame::FrameBackend;
use tender_core::devices::memdisk::{DiskFault, MemDisk};
use tender_core::devices::wire::{self, WireConfig};
use tender_core::hypercall::Action;
use tender_core::lifecycle::ModuleSet;
use tender_core::manifest::Manifest;
use tender_core::modules;
use vm_memory::VolatileSlice;

use crate::input::Reader;
use crate::rig::{self, Rig};

/// The operations of the input, by their first byte (modulo 5).
pub mod ops {
    /// `gpa: u32` (modulo the guest's memory), `len: u8`, `len` bytes: the
    /// guest writes its memory.
    pub const WRITE: u8 = 0;
    /// `access: u8`, `value: u32`: a port access with EAX = `value`. The
    /// access's low 4 bits are the port's offset from 0x500; bit 4 makes
    /// it an IN, bits 5 and 6 a 1- or 2-byte access.
    pub const PORT: u8 = 1;
    /// `len: u16` (modulo 2048), `len` bytes: a frame arrives for device
    /// `a` (handle 1), sent by `b`'s end of the wire.
    pub const FRAME: u8 = 2;
    /// `handle: u8` (modulo 64), `at: u32`: the virtual clock makes the
    /// device readable at that time (ns).
    pub const READY: u8 = 3;
    /// No operation.
    pub const NOP: u8 = 4;

    /// The `access` byte of a 32-bit OUT to hypercall `number`.
    pub const fn hypercall(number: u16) -> u8 {
        // Hypercall numbers are below 16.
        #[allow(clippy::cast_possible_truncation)]
        let access = number as u8 & 0x0f;
        access
    }
}

/// Operations served per input at most.
const MAX_OPS: usize = 256;

fn disk_fault(r: &mut Reader<'_>) -> Option<DiskFault> {
    match r.u8() % 8 {
        5 => Some(DiskFault::IoError {
            at: u64::from(r.u8() % 4),
        }),
        6 => Some(DiskFault::Torn {
            at: u64::from(r.u8() % 4),
            keep: u64::from(r.u16()),
        }),
        7 => Some(DiskFault::CrashAfter {
            writes: u64::from(r.u8() % 4),
        }),
        _ => None,
    }
}

/// Port, direction and size of an `access` byte.
fn port_access(access: u8) -> (u16, bool, usize) {
    let port = PIO_BASE + u16::from(access & 0x0f);
    let is_out = access & 0x10 == 0;
    let size = match access & 0x60 {
        0x20 => 1,
        0x40 => 2,
        _ => 4,
    };
    (port, is_out, size)
}

pub fn hypercall(data: &[u8]) {
    let mut r = Reader::new(data);
    let disk = Arc::new(MemDisk::new("disk", 64 << 10));
    disk.set_fault(disk_fault(&mut r));
    let ro = Arc::new(MemDisk::new("ro", 16 << 10));
    // A small wire: frames a guest sends are held in memory.
    let config = WireConfig {
        capacity: 32,
        ..WireConfig::clean()
    };
    let (a, b) = wire::pair(config, ["a", "b"]);
    let (a, b): (Arc<dyn FrameBackend>, Arc<dyn FrameBackend>) = (Arc::new(a), Arc::new(b));
    let host = rig::host(
        &[("a", a), ("b", b.clone())],
        &[("disk", disk), ("ro", ro.clone())],
    );
    let manifest = Manifest {
        entries: vec![
            MftEntry::RESERVED_FIRST,
            MftEntry::new("a", MFT_DEV_NET_BASIC),
            MftEntry::new("b", MFT_DEV_NET_BASIC),
            MftEntry::new("disk", MFT_DEV_BLOCK_BASIC),
            MftEntry::new("ro", MFT_DEV_BLOCK_BASIC),
        ],
    };
    let options: Vec<String> = [
        "--mem=4",
        "--net:a=a",
        "--net:b=b",
        "--net-mac:a=02:00:00:00:00:01",
        "--block:disk=disk",
        "--block-ro:ro=ro",
        "--block-sector-size:ro=4096",
        "--no-net-ring",
    ]
    .map(String::from)
    .to_vec();
    let mut rig = Rig::build(
        ModuleSet::new(modules::all(host)),
        manifest,
        &options,
        false,
        true,
    )
    .expect("the fixed devices attach");
    let visible = rig.ram.visible_size();

    for _ in 0..MAX_OPS {
        if r.is_empty() {
            break;
        }
        match r.u8() % 5 {
            ops::WRITE => {
                let gpa = u64::from(r.u32()) % visible;
                let len = usize::from(r.u8());
                // Past the end of memory: cut, as a guest cannot write there.
                let bytes = r.bytes(len);
                let room = usize::try_from(visible - gpa).unwrap_or(usize::MAX);
                rig.ram
                    .write_bytes(gpa, &bytes[..bytes.len().min(room)])
                    .expect("a write inside guest memory");
            }
            ops::PORT => {
                let (port, is_out, size) = port_access(r.u8());
                let value = r.u32();
                match rig
                    .hypercalls
                    .dispatch_pio(&rig.ram, port, is_out, size, value)
                {
                    Ok(Action::Continue) => {}
                    Ok(Action::Exit(code)) => {
                        assert!((0..=255).contains(&code), "exit code {code}");
                        break;
                    }
                    // The tender would print it and exit 1.
                    Err(error) => {
                        assert!(!error.to_string().is_empty());
                        break;
                    }
                }
            }
            ops::FRAME => {
                let len = usize::from(r.u16() % 2048);
                let mut frame = r.bytes(len).to_vec();
                let _ = b.send(&VolatileSlice::from(&mut frame[..]));
            }
            ops::READY => {
                let handle = usize::from(r.u8() % 64);
                rig.clock.schedule_ready(handle, u64::from(r.u32()));
            }
            _ => {}
        }
    }
    // The guest can write only through the block module, and never to the
    // read-only disk.
    assert!(
        ro.contents().iter().all(|&byte| byte == 0),
        "the read-only disk was written"
    );
}
