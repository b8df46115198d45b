//! Guest memory: the heap (talc) and the stack with its guard.
//!
//! ```text
//! _end ─ heap_start ─────────── heap ──────────┬─ guard ─┬──── stack ────┬ mem_size
//!                                              │ 64 KiB  │    512 KiB    │
//! ```
//!
//! The stack grows down from the top of memory (the tender's initial RSP).
//! There are no guard pages (a CPL 3 guest cannot change its page tables),
//! so the gap below the stack is filled with a pattern that the scheduler
//! checks on every pass and at exit: an overflow ends the guest with a clear
//! message instead of silently corrupting the heap.

/// Stack size of a guest.
pub const STACK_SIZE: usize = 512 << 10;
/// Size of the checked gap between heap and stack.
pub const GUARD_SIZE: usize = 64 << 10;
/// Smallest heap the runtime starts with.
pub const MIN_HEAP: usize = 512 << 10;
/// Bytes of the guard nearest the stack checked on every scheduler pass
/// (the whole guard is checked at exit).
#[cfg_attr(not(target_os = "none"), allow(dead_code))]
const GUARD_CHECK_NEAR: usize = 512;
#[cfg_attr(not(target_os = "none"), allow(dead_code))]
const GUARD_PATTERN: u64 = 0x57AC_C0DE_57AC_C0DE;

/// The allocator: talc (fast, small, `no_std`, stable Rust), behind a spin
/// lock that never spins (one CPU, no interrupts).
pub type GuestAllocator = talc::TalcLock<spinning_top::RawSpinlock, talc::source::Manual>;

#[cfg(target_os = "none")]
#[global_allocator]
static ALLOCATOR: GuestAllocator = GuestAllocator::new(talc::source::Manual);

/// The guest's global allocator (for the benchmark guest).
#[cfg(target_os = "none")]
pub fn global_allocator() -> &'static GuestAllocator {
    &ALLOCATOR
}

#[cfg(target_os = "none")]
static GUARD_BASE: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

/// How `heap_size` bytes above `heap_start` are split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub heap_start: usize,
    pub heap_size: usize,
    pub guard_base: usize,
    pub stack_base: usize,
}

/// Splits the region the bindings hand over; `None` if it is too small.
pub fn layout(heap_start: usize, heap_size: usize) -> Option<Layout> {
    let top = heap_start.checked_add(heap_size)?;
    let stack_base = top.checked_sub(STACK_SIZE)?;
    let guard_base = stack_base.checked_sub(GUARD_SIZE)?;
    let heap = guard_base.checked_sub(heap_start)?;
    (heap >= MIN_HEAP).then_some(Layout {
        heap_start,
        heap_size: heap,
        guard_base,
        stack_base,
    })
}

/// Gives the heap to the allocator and arms the stack guard.
#[cfg(target_os = "none")]
pub fn init(start: &hvt_bindings::StartInfo) {
    let Some(layout) = layout(start.heap_start, start.heap_size) else {
        hvt_bindings::println!(
            "Solo5: ABORT: Not enough memory for the runtime (needs {} KiB of heap, stack and guard)",
            (MIN_HEAP + GUARD_SIZE + STACK_SIZE) >> 10
        );
        hvt_bindings::exit::halt(hvt_bindings::abi::hypercall::exit::ABORT);
    };
    // SAFETY: the region lies between the image and the guard, is unused,
    // and is handed over once.
    let claimed = unsafe {
        ALLOCATOR
            .lock()
            .claim(layout.heap_start as *mut u8, layout.heap_size)
    };
    assert!(claimed.is_some(), "the allocator refused the heap");
    let guard = layout.guard_base as *mut u64;
    for i in 0..GUARD_SIZE / 8 {
        // SAFETY: the guard gap is ours and unused; below the live stack.
        unsafe { guard.add(i).write_volatile(GUARD_PATTERN) };
    }
    GUARD_BASE.store(layout.guard_base, core::sync::atomic::Ordering::Relaxed);
    HEAP_SIZE.store(layout.heap_size, core::sync::atomic::Ordering::Relaxed);
}

#[cfg(target_os = "none")]
static HEAP_SIZE: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

/// Bytes of heap the guest started with; `None` on the host, where the
/// heap is the host's allocator.
pub fn heap_size() -> Option<usize> {
    #[cfg(target_os = "none")]
    {
        let size = HEAP_SIZE.load(core::sync::atomic::Ordering::Relaxed);
        (size > 0).then_some(size)
    }
    #[cfg(not(target_os = "none"))]
    None
}

/// Bytes of heap allocated now (what was asked for, without the
/// allocator's own overhead); `None` on the host.
pub fn heap_used() -> Option<usize> {
    #[cfg(target_os = "none")]
    {
        Some(ALLOCATOR.lock().counters().allocated_bytes)
    }
    #[cfg(not(target_os = "none"))]
    None
}

#[cfg(target_os = "none")]
fn guard_intact(bytes: usize) -> bool {
    let base = GUARD_BASE.load(core::sync::atomic::Ordering::Relaxed);
    if base == 0 {
        return true;
    }
    let top = (base + GUARD_SIZE) as *const u64;
    (1..=bytes / 8).all(|i| {
        // SAFETY: reads inside the guard gap, which nothing else uses.
        unsafe { top.sub(i).read_volatile() == GUARD_PATTERN }
    })
}

#[cfg(target_os = "none")]
fn stack_overflowed() -> ! {
    hvt_bindings::println!(
        "Solo5: ABORT: stack overflow: the stack outgrew its {} KiB",
        STACK_SIZE >> 10
    );
    hvt_bindings::exit::halt(hvt_bindings::abi::hypercall::exit::ABORT)
}

/// Cheap check on every scheduler pass: the guard bytes nearest the stack.
pub fn check_stack() {
    #[cfg(target_os = "none")]
    if !guard_intact(GUARD_CHECK_NEAR) {
        stack_overflowed();
    }
}

/// Full check of the guard, at exit.
pub fn check_stack_fully() {
    #[cfg(target_os = "none")]
    if !guard_intact(GUARD_SIZE) {
        stack_overflowed();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_puts_stack_on_top_and_guard_below() {
        let l = layout(0x10_0000, 64 << 20).unwrap();
        assert_eq!(l.stack_base, 0x10_0000 + (64 << 20) - STACK_SIZE);
        assert_eq!(l.guard_base, l.stack_base - GUARD_SIZE);
        assert_eq!(l.heap_start + l.heap_size, l.guard_base);
        assert!(layout(0x10_0000, STACK_SIZE + GUARD_SIZE + MIN_HEAP - 1).is_none());
        assert!(layout(0x10_0000, STACK_SIZE + GUARD_SIZE + MIN_HEAP).is_some());
        assert!(layout(usize::MAX - 10, 100).is_none());
    }
}
