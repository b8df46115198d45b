//! NET_WRITE and NET_READ (§6.4): one frame per hypercall, moved between
//! guest memory and a device's back-end. The tender registers them over its
//! taps, the mock tender over its wire ports: the same handlers serve both.

use std::io;
use std::sync::Arc;

use hvt_abi::hypercall::{nr, result, NetIo};

use super::Backends;
use crate::devices::frame::FrameBackend;
use crate::error::os_error_text;
use crate::error::{Error, Result};
use crate::hypercall::{Action, Fault, HypercallResult, Hypercalls};
use crate::memory::GuestRam;

/// Registers NET_WRITE and NET_READ (§6.4) over `backends`, indexed by
/// handle (`None` where the manifest has no attached network device). The
/// tender registers its taps here, the mock tender its wire ports: both are
/// served by the same handlers.
pub fn register_hypercalls(hypercalls: &mut Hypercalls, backends: Backends) -> Result<()> {
    let backends = Arc::new(backends);
    let write_backends = Arc::clone(&backends);
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
                    return Err(Fault::Fatal(Error::Device(format!(
                        "Fatal error when writing to {}: wrote only {n} out of {} bytes",
                        device.name(),
                        arg.len
                    ))))
                }
                Err(e) => {
                    return Err(Fault::Fatal(Error::Device(format!(
                        "Fatal error when writing to {}: {}",
                        device.name(),
                        os_error_text(&e)
                    ))))
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
                    return Err(Fault::Fatal(Error::Device(format!(
                        "Fatal error when reading from {}: {}",
                        device.name(),
                        os_error_text(&e)
                    ))))
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
    use crate::devices::frame::Readiness;

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
        fn readiness(&self) -> Readiness {
            Readiness::Queue {
                waiting: 0,
                receives: 0,
            }
        }
    }

    fn call(
        hypercalls: &mut Hypercalls,
        ram: &GuestRam,
        number: u16,
        arg: NetIo,
    ) -> std::result::Result<NetIo, String> {
        // A `u32`: it travels in EAX.
        let gpa: u32 = 0x10000;
        ram.write_arg(u64::from(gpa), &arg).unwrap();
        hypercalls
            .dispatch_pio(ram, 0x500 + number, true, 4, gpa)
            .map_err(|e| e.to_string())?;
        Ok(ram.read_arg(u64::from(gpa)).unwrap())
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
            vec![None, Some(Arc::new(a)), Some(Arc::new(b))],
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
            let broken: Arc<dyn FrameBackend> = Arc::new(Broken { short });
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
