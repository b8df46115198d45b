//! BLOCK_WRITE and BLOCK_READ (§6.5): one transfer of any length at any
//! offset inside the device (no alignment checks in the tender, as
//! upstream). A bad handle or range is EINVAL; a host I/O error or a short
//! transfer ends the tender, never a silent success.

use std::sync::Arc;

use hvt_abi::hypercall::{nr, result, BlockIo};

use super::Backends;
use crate::devices::disk::BlockBackend;
use crate::error::os_error_text;
use crate::error::{Error, Result};
use crate::hypercall::{Action, Fault, HypercallResult, Hypercalls};
use crate::memory::GuestRam;

/// Registers BLOCK_WRITE and BLOCK_READ over `backends`, indexed by handle.
pub fn register_hypercalls(hypercalls: &mut Hypercalls, backends: Backends) -> Result<()> {
    let backends = Arc::new(backends);
    let write_backends = Arc::clone(&backends);
    hypercalls.register(
        nr::BLOCK_WRITE,
        Box::new(move |ram, gpa| block_write(&write_backends, ram, gpa)),
    )?;
    hypercalls.register(
        nr::BLOCK_READ,
        Box::new(move |ram, gpa| block_read(&backends, ram, gpa)),
    )
}

/// The back-end of `arg.handle` if the request lies inside it (§6.5):
/// `len` at most `SSIZE_MAX`, `offset` below the capacity, `offset + len`
/// not past it.
fn target<'a>(backends: &'a Backends, arg: &BlockIo) -> Option<&'a dyn BlockBackend> {
    let device = usize::try_from(arg.handle)
        .ok()
        .and_then(|index| backends.get(index))
        .and_then(Option::as_deref)?;
    let capacity = device.capacity();
    let fits = i64::try_from(arg.len).is_ok()
        && arg.offset < capacity
        && arg
            .offset
            .checked_add(arg.len)
            .is_some_and(|end| end <= capacity);
    fits.then_some(device)
}

fn fatal(message: String) -> Fault {
    Fault::Fatal(Error::Device(message))
}

/// BLOCK_WRITE (§6.5): one `pwrite` of the guest's bytes.
fn block_write(backends: &Backends, ram: &GuestRam, gpa: u64) -> HypercallResult {
    let mut arg: BlockIo = ram.read_arg(gpa)?;
    arg.ret = match target(backends, &arg) {
        None => result::EINVAL,
        // Our extension (§12.6): the device is read-only.
        Some(device) if device.read_only() => result::EUNSPEC,
        Some(device) => {
            let data = ram.slice(arg.data, arg.len)?;
            match device.write_at(&data, arg.offset) {
                Ok(n) if n as u64 == arg.len => result::OK,
                Ok(n) => {
                    return Err(fatal(format!(
                        "Fatal error: wrote only {n} out of {} bytes",
                        arg.len
                    )))
                }
                Err(e) => {
                    return Err(fatal(format!(
                        "Fatal error when writing: {}",
                        os_error_text(&e)
                    )))
                }
            }
        }
    };
    ram.write_arg(gpa, &arg)?;
    Ok(Action::Continue)
}

/// BLOCK_READ (§6.5): one `pread` into the guest's buffer.
fn block_read(backends: &Backends, ram: &GuestRam, gpa: u64) -> HypercallResult {
    let mut arg: BlockIo = ram.read_arg(gpa)?;
    arg.ret = match target(backends, &arg) {
        None => result::EINVAL,
        Some(device) => {
            let mut buffer = ram.slice_mut(arg.data, arg.len)?;
            match device.read_at(&mut buffer, arg.offset) {
                Ok(n) if n as u64 == arg.len => result::OK,
                Ok(n) => {
                    return Err(fatal(format!(
                        "Fatal error: read only {n} out of {} bytes",
                        arg.len
                    )))
                }
                Err(e) => {
                    return Err(fatal(format!(
                        "Fatal error when reading: {}",
                        os_error_text(&e)
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

    use crate::devices::memdisk::{DiskFault, MemDisk};

    const ARG: u64 = 0x1_0000;
    const DATA: u64 = 0x2_0000;

    fn setup(disk: Arc<MemDisk>) -> (GuestRam, Hypercalls) {
        let ram = GuestRam::new(4 << 20).unwrap();
        let mut hypercalls = Hypercalls::default();
        let backend: Arc<dyn BlockBackend> = disk;
        register_hypercalls(&mut hypercalls, vec![None, Some(backend)]).unwrap();
        (ram, hypercalls)
    }

    fn call(
        hypercalls: &mut Hypercalls,
        ram: &GuestRam,
        number: u16,
        handle: u64,
        offset: u64,
        len: u64,
    ) -> std::result::Result<i32, String> {
        let arg = BlockIo {
            handle,
            offset,
            data: DATA,
            len,
            ret: -1,
            _pad: 0,
        };
        ram.write_arg(ARG, &arg).unwrap();
        let port = hvt_abi::hypercall::PIO_BASE + number;
        hypercalls
            .dispatch_pio(ram, port, true, 4, u32::try_from(ARG).unwrap())
            .map_err(|e| e.to_string())?;
        Ok(ram.read_arg::<BlockIo>(ARG).unwrap().ret)
    }

    #[test]
    fn any_length_at_any_offset_inside_the_device_and_einval_outside() {
        let disk = Arc::new(MemDisk::new("d", 8192));
        let (ram, mut hc) = setup(disk.clone());
        ram.write_bytes(DATA, &[0xab; 8192]).unwrap();
        // No alignment rules in the tender: offset 1, length 3, whole device.
        assert_eq!(
            call(&mut hc, &ram, nr::BLOCK_WRITE, 1, 1, 3),
            Ok(result::OK)
        );
        assert_eq!(&disk.contents()[..5], &[0, 0xab, 0xab, 0xab, 0]);
        assert_eq!(
            call(&mut hc, &ram, nr::BLOCK_WRITE, 1, 0, 8192),
            Ok(result::OK)
        );
        assert_eq!(
            call(&mut hc, &ram, nr::BLOCK_READ, 1, 8191, 1),
            Ok(result::OK)
        );
        for (handle, offset, len) in [
            (0, 0, 512),
            (2, 0, 512),
            (u64::MAX, 0, 512),
            (1, 8192, 0),
            (1, 8192, 1),
            (1, 8191, 2),
            (1, 512, u64::MAX),
            (1, u64::MAX, 2),
            (1, 0, 1 << 63),
        ] {
            for number in [nr::BLOCK_WRITE, nr::BLOCK_READ] {
                assert_eq!(
                    call(&mut hc, &ram, number, handle, offset, len),
                    Ok(result::EINVAL),
                    "{number} {handle} {offset} {len}"
                );
            }
        }
        // Inside the device but past guest memory: the §5 check ends it.
        let err = call(&mut hc, &ram, nr::BLOCK_READ, 1, 0, 8192);
        assert!(err.is_ok());
        let arg = BlockIo {
            handle: 1,
            offset: 0,
            data: (4 << 20) - 100,
            len: 512,
            ret: -1,
            _pad: 0,
        };
        ram.write_arg(ARG, &arg).unwrap();
        let err = hc
            .dispatch_pio(&ram, 0x500 + nr::BLOCK_READ, true, 4, 0x1_0000)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "hypercall BLOCK_READ: Invalid guest access: gpa=0x{:x}, sz=512",
                (4 << 20) - 100
            )
        );
    }

    #[test]
    fn a_read_only_device_refuses_writes_and_keeps_its_bytes() {
        let disk = Arc::new(MemDisk::from_bytes("d", vec![5; 4096]));
        disk.set_read_only(true);
        let (ram, mut hc) = setup(disk.clone());
        assert_eq!(
            call(&mut hc, &ram, nr::BLOCK_WRITE, 1, 0, 512),
            Ok(result::EUNSPEC)
        );
        assert_eq!(disk.contents(), vec![5; 4096]);
        assert_eq!(disk.writes(), 0);
        assert_eq!(
            call(&mut hc, &ram, nr::BLOCK_READ, 1, 0, 512),
            Ok(result::OK)
        );
        let mut back = [0u8; 512];
        ram.read_bytes(DATA, &mut back).unwrap();
        assert_eq!(back, [5; 512]);
    }

    #[test]
    fn host_failures_end_the_guest_with_upstreams_messages() {
        let disk = Arc::new(MemDisk::new("d", 4096));
        let (ram, mut hc) = setup(disk.clone());
        disk.set_fault(Some(DiskFault::IoError { at: 0 }));
        assert_eq!(
            call(&mut hc, &ram, nr::BLOCK_WRITE, 1, 0, 512),
            Err("Fatal error when writing: Input/output error".into())
        );
        disk.set_fault(Some(DiskFault::Torn { at: 0, keep: 100 }));
        assert_eq!(
            call(&mut hc, &ram, nr::BLOCK_WRITE, 1, 0, 512),
            Err("Fatal error when writing: the disk lost power".into())
        );
    }
}
