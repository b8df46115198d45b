//! An allocation workload, shared (by path) between the runtime's benchmark
//! guest and the host benchmark, so both allocators run the same sequence:
//! up to 256 live blocks of 16-2048 bytes; each step frees a random block
//! and allocates a new one, touching its first and last byte.

use core::alloc::{GlobalAlloc, Layout};

const SLOTS: usize = 256;

/// Runs `steps` free+allocate steps on `allocator`; returns a checksum so
/// the work cannot be optimised away, or `None` if an allocation failed.
pub fn churn<A: GlobalAlloc>(allocator: &A, steps: usize, seed: u64) -> Option<u64> {
    let mut state = seed | 1;
    let mut next = move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    let mut slots: [(*mut u8, usize); SLOTS] = [(core::ptr::null_mut(), 0); SLOTS];
    let mut checksum = 0u64;
    let mut failed = false;
    for _ in 0..steps {
        let r = next();
        // reason: below SLOTS (256).
        #[allow(clippy::cast_possible_truncation)]
        let slot = (r % SLOTS as u64) as usize;
        let (old, old_size) = slots[slot];
        if !old.is_null() {
            // SAFETY: allocated below with this size and alignment 8.
            unsafe { allocator.dealloc(old, Layout::from_size_align_unchecked(old_size, 8)) };
        }
        let size = 16 + ((r >> 20) % 2033) as usize;
        // SAFETY: non-zero size, power-of-two alignment.
        let ptr = unsafe { allocator.alloc(Layout::from_size_align_unchecked(size, 8)) };
        if ptr.is_null() {
            failed = true;
            slots[slot] = (core::ptr::null_mut(), 0);
            break;
        }
        let [first, last, ..] = r.to_le_bytes();
        // SAFETY: `ptr` is a fresh block of `size` bytes.
        unsafe {
            ptr.write(first);
            ptr.add(size - 1).write(last);
            checksum =
                checksum.wrapping_add(u64::from(ptr.read()) + u64::from(ptr.add(size - 1).read()));
        }
        slots[slot] = (ptr, size);
    }
    for (ptr, size) in slots {
        if !ptr.is_null() {
            // SAFETY: allocated above with this size and alignment 8.
            unsafe { allocator.dealloc(ptr, Layout::from_size_align_unchecked(size, 8)) };
        }
    }
    (!failed).then_some(checksum)
}
