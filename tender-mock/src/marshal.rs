//! Moving a hypercall between the guest's address space and the mock's
//! guest memory.
//!
//! A guest on the host builds its argument structs in host memory, so each
//! call is marshalled: the struct and the buffers it names (the ABI says
//! which, [`hvt_abi::hypercall::arg_shape`]) are copied into the mock's
//! guest memory at fixed addresses, the call is dispatched with those
//! addresses, and results are copied back. A buffer too large for the
//! mock's memory is passed with its host address, which the tender's check
//! rejects, as a real tender rejects an out-of-range address.

use hvt_abi::hypercall::{arg_shape, BufferLen, PIO_BASE};
use tender_core::hypercall::Action;

use crate::MockTender;

/// Where marshalled argument structs go.
/// (A `u32`: it travels in EAX.)
pub const ARG_GPA: u32 = 0x1_0000;
/// Where marshalled buffers go, up to the end of the guest's memory.
pub const BUFFER_GPA: u64 = 0x10_0000;

fn read_u64(bytes: &[u8], offset: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[offset..offset + 8]);
    u64::from_le_bytes(word)
}

fn write_u64(bytes: &mut [u8], offset: usize, value: u64) {
    bytes[offset..offset + 8].copy_from_slice(&value.to_le_bytes());
}

impl MockTender {
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
        let Some(shape) = arg_shape(number) else {
            // Not an ABI hypercall: let the dispatcher refuse it.
            return self.dispatch(number);
        };
        let mut copy = vec![0u8; shape.size];
        // SAFETY: the caller promises `arg` holds the struct of `number`.
        unsafe { std::ptr::copy_nonoverlapping(arg, copy.as_mut_ptr(), shape.size) };
        let limit = self.ram.visible_size();
        let mut next_buffer = BUFFER_GPA;
        let mut placed = Vec::new();
        for buffer in shape.buffers {
            let host = read_u64(&copy, buffer.ptr_offset);
            let len = match buffer.len {
                BufferLen::Field(offset) => read_u64(&copy, offset),
                BufferLen::Fixed(len) if host != 0 => len,
                BufferLen::Fixed(_) => continue,
            };
            let end = next_buffer.checked_add(len).filter(|&end| end < limit);
            let Some(end) = end else {
                // Leave the host address: the tender's check refuses it.
                continue;
            };
            // Below `limit`, a few MiB: fits a usize.
            let mut bytes = vec![0u8; usize::try_from(len).map_err(|e| e.to_string())?];
            // SAFETY: the caller promises the buffer is valid for `len`.
            unsafe {
                std::ptr::copy_nonoverlapping(host as *const u8, bytes.as_mut_ptr(), bytes.len())
            };
            self.ram
                .write_bytes(next_buffer, &bytes)
                .map_err(|e| e.to_string())?;
            write_u64(&mut copy, buffer.ptr_offset, next_buffer);
            placed.push((buffer, host, next_buffer, len));
            next_buffer = end;
        }
        self.ram
            .write_bytes(u64::from(ARG_GPA), &copy)
            .map_err(|e| e.to_string())?;
        let action = self.dispatch(number)?;
        self.ram
            .read_bytes(u64::from(ARG_GPA), &mut copy)
            .map_err(|e| e.to_string())?;
        for (buffer, host, gpa, len) in placed {
            if buffer.written_by_tender {
                // NET_READ shortens `len` to the frame length.
                let out_len = match buffer.len {
                    BufferLen::Field(offset) => read_u64(&copy, offset).min(len),
                    BufferLen::Fixed(len) => len,
                };
                let mut bytes = vec![0u8; usize::try_from(out_len).map_err(|e| e.to_string())?];
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
        self.guest_exit(|mock| {
            mock.hypercalls
                .dispatch_pio(&mock.ram, port, true, 4, ARG_GPA)
                .map_err(|e| e.to_string())
        })
    }
}
