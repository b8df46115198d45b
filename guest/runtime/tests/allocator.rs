//! The guest's allocator type (talc as configured in `memory`), stressed on
//! the host over a heap of its own: random sizes, alignments up to 4096,
//! fragmentation, with every live block's contents checked.

use std::alloc::{GlobalAlloc, Layout};

use hvt_runtime::memory::GuestAllocator;

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        let n = u64::try_from(n).unwrap();
        usize::try_from(self.next() % n).unwrap()
    }
}

struct Heap {
    allocator: GuestAllocator,
    _arena: Vec<u64>,
    base: usize,
    size: usize,
}

fn heap(size: usize) -> Heap {
    let mut arena = vec![0u64; size / 8];
    let base = arena.as_mut_ptr() as usize;
    let allocator = GuestAllocator::new(talc::source::Manual);
    // SAFETY: the arena is ours, lives as long as the Heap, and is given once.
    let claimed = unsafe { allocator.lock().claim(base as *mut u8, size) };
    assert!(claimed.is_some());
    Heap {
        allocator,
        _arena: arena,
        base,
        size,
    }
}

struct Block {
    ptr: *mut u8,
    layout: Layout,
    fill: u8,
}

fn check(block: &Block) {
    // SAFETY: the block is live and `layout.size()` long.
    let bytes = unsafe { std::slice::from_raw_parts(block.ptr, block.layout.size()) };
    assert!(
        bytes.iter().all(|&b| b == block.fill),
        "block at {:p} was overwritten",
        block.ptr
    );
}

#[test]
fn random_sizes_and_alignments_keep_their_contents() {
    let heap = heap(32 << 20);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut live: Vec<Block> = Vec::new();
    for round in 0..60_000u32 {
        if live.is_empty() || rng.below(100) < 55 {
            let size = match rng.below(10) {
                0 => 1 + rng.below(64 << 10),
                1..=3 => 1 + rng.below(4096),
                _ => 1 + rng.below(256),
            };
            let align = 1usize << rng.below(13); // 1 ..= 4096
            let layout = Layout::from_size_align(size, align).unwrap();
            // SAFETY: a non-zero-sized layout.
            let ptr = unsafe { heap.allocator.alloc(layout) };
            if ptr.is_null() {
                continue; // full: frees will make room
            }
            assert_eq!(ptr as usize % align, 0, "misaligned block");
            assert!(ptr as usize >= heap.base && ptr as usize + size <= heap.base + heap.size);
            let fill = (round & 0xFF) as u8 | 1;
            // SAFETY: freshly allocated, `size` bytes.
            unsafe { ptr.write_bytes(fill, size) };
            live.push(Block { ptr, layout, fill });
        } else {
            let block = live.swap_remove(rng.below(live.len()));
            check(&block);
            // SAFETY: allocated above with this layout, freed once.
            unsafe { heap.allocator.dealloc(block.ptr, block.layout) };
        }
        if round % 4096 == 0 {
            live.iter().for_each(check);
        }
    }
    // No two live blocks overlap.
    let mut spans: Vec<(usize, usize)> = live
        .iter()
        .map(|b| (b.ptr as usize, b.ptr as usize + b.layout.size()))
        .collect();
    spans.sort();
    assert!(
        spans.windows(2).all(|w| w[0].1 <= w[1].0),
        "live blocks overlap"
    );
    live.iter().for_each(check);
}

#[test]
fn fragmented_heap_still_serves_a_large_block_once_freed() {
    let heap = heap(4 << 20);
    let small = Layout::from_size_align(1000, 8).unwrap();
    let mut blocks = Vec::new();
    loop {
        // SAFETY: non-zero-sized layout.
        let ptr = unsafe { heap.allocator.alloc(small) };
        if ptr.is_null() {
            break;
        }
        blocks.push(ptr);
    }
    assert!(blocks.len() > 3000, "only {} blocks fit", blocks.len());
    let large = Layout::from_size_align(1 << 20, 4096).unwrap();
    // Free every other block: plenty of free bytes, no large hole.
    for ptr in blocks.iter().step_by(2) {
        // SAFETY: allocated above, freed once.
        unsafe { heap.allocator.dealloc(*ptr, small) };
    }
    // SAFETY: non-zero-sized layout.
    let none = unsafe { heap.allocator.alloc(large) };
    assert!(
        none.is_null(),
        "a 1 MiB block cannot fit in 1000-byte holes"
    );
    for ptr in blocks.iter().skip(1).step_by(2) {
        // SAFETY: allocated above, freed once.
        unsafe { heap.allocator.dealloc(*ptr, small) };
    }
    // SAFETY: non-zero-sized layout.
    let big = unsafe { heap.allocator.alloc(large) };
    assert!(!big.is_null(), "coalesced free space serves 1 MiB");
    assert_eq!(big as usize % 4096, 0);
}

#[test]
fn exhaustion_returns_null_instead_of_corrupting() {
    let heap = heap(1 << 20);
    let layout = Layout::from_size_align(64 << 10, 16).unwrap();
    let mut count = 0;
    loop {
        // SAFETY: non-zero-sized layout.
        let ptr = unsafe { heap.allocator.alloc(layout) };
        if ptr.is_null() {
            break;
        }
        count += 1;
        assert!(count < 64, "more 64 KiB blocks than fit in 1 MiB");
    }
    assert!(count >= 14, "only {count} blocks");
}
