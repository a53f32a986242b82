//! The wasm build's memory allocator: power-of-two size classes, each with its own free list.
//!
//! Why not a general allocator: the tag allocates and frees a few dozen small blocks per call
//! (JSON values, keys, payload text) and holds little memory for long. A free list per size
//! class makes allocating and freeing a handful of instructions, and growing a String or Vec
//! within its class free of any copy. The free-list allocator it replaced walked one address-
//! sorted list on every allocation and every free, which cost about a tenth of each track() call
//! once a page had sent a few hundred events; dlmalloc would add about 2 KB of gzip.
//!
//! The price is memory: a block is rounded up to a power of two (at least 16 bytes) and a freed
//! block is only ever reused for its own class. For a tag's working set, some hundreds of KB at
//! most, that is well spent. Memory never shrinks, as with any wasm allocator.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ptr::null_mut;

const PAGE: usize = 65536;
/// The smallest block, 16 bytes: room for the free-list link.
const MIN_SHIFT: u32 = 4;
const MIN_ALIGN: usize = 1 << MIN_SHIFT;
const CLASSES: usize = 28;

/// Where fresh memory comes from: `grow(pages)` returns the address of `pages` new pages.
pub trait Grow {
    fn grow(&self, pages: usize) -> Option<usize>;
}

#[cfg(target_arch = "wasm32")]
pub struct WasmMemory;

#[cfg(target_arch = "wasm32")]
impl Grow for WasmMemory {
    fn grow(&self, pages: usize) -> Option<usize> {
        let previous = core::arch::wasm32::memory_grow(0, pages);
        if previous == usize::MAX {
            None
        } else {
            Some(previous * PAGE)
        }
    }
}

pub struct SizeClasses<G> {
    state: UnsafeCell<State>,
    grower: G,
}

struct State {
    /// Head of each class's free list; a free block's first word links to the next.
    free: [*mut u8; CLASSES],
    /// The part of the last grown region not yet carved into blocks: `next..end`.
    next: usize,
    end: usize,
}

// SAFETY: the tag runs on one thread (wasm32 without the atomics feature has exactly one), and the
// native tests use an allocator from one thread at a time.
unsafe impl<G> Sync for SizeClasses<G> {}

impl<G: Grow> SizeClasses<G> {
    pub const fn new(grower: G) -> Self {
        SizeClasses { state: UnsafeCell::new(State { free: [null_mut(); CLASSES], next: 0, end: 0 }), grower }
    }

    /// A fresh block of `size` bytes aligned to `align`, from the current region or a new one.
    unsafe fn carve(&self, state: &mut State, size: usize, align: usize) -> *mut u8 {
        let mut start = (state.next + align - 1) & !(align - 1);
        if start < state.next || start.checked_add(size).is_none_or(|end| end > state.end) {
            let Some(pages) = size.checked_add(align).map(|bytes| bytes.div_ceil(PAGE)) else { return null_mut() };
            let Some(base) = self.grower.grow(pages) else { return null_mut() };
            if base != state.end {
                // Not contiguous with the last region (the first growth): its tail is given up.
                state.next = base;
            }
            state.end = base + pages * PAGE;
            start = (state.next + align - 1) & !(align - 1);
        }
        state.next = start + size;
        start as *mut u8
    }
}

/// The class of a layout: block size 2^(class + 4), at least its size and its alignment.
fn class_of(layout: Layout) -> usize {
    let size = layout.size().max(layout.align()).max(MIN_ALIGN);
    (usize::BITS - (size - 1).leading_zeros() - MIN_SHIFT) as usize
}

unsafe impl<G: Grow> GlobalAlloc for SizeClasses<G> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let state = &mut *self.state.get();
        let class = class_of(layout);
        if class >= CLASSES {
            return null_mut();
        }
        let head = state.free[class];
        if !head.is_null() {
            state.free[class] = *(head as *mut *mut u8);
            return head;
        }
        // Each block is aligned to its own size (up to a page), so any block of a class serves any
        // request of that class: a class is at least as large as the alignment asked for.
        let size = 1 << (class as u32 + MIN_SHIFT);
        if layout.align() > PAGE {
            return null_mut();
        }
        self.carve(state, size, size.min(PAGE))
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let state = &mut *self.state.get();
        let class = class_of(layout);
        *(ptr as *mut *mut u8) = state.free[class];
        state.free[class] = ptr;
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
        if class_of(new_layout) == class_of(layout) {
            return ptr;
        }
        let moved = self.alloc(new_layout);
        if !moved.is_null() {
            core::ptr::copy_nonoverlapping(ptr, moved, layout.size().min(new_size));
            self.dealloc(ptr, layout);
        }
        moved
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// Pages from one leaked buffer, handed out in order like memory.grow; `limit` pages in all.
    struct Buffer {
        base: usize,
        used: Cell<usize>,
        limit: usize,
    }

    impl Buffer {
        fn new(limit: usize) -> Buffer {
            let bytes = vec![0u8; (limit + 1) * PAGE].leak();
            let base = (bytes.as_ptr() as usize).next_multiple_of(PAGE);
            Buffer { base, used: Cell::new(0), limit }
        }
    }

    impl Grow for &Buffer {
        fn grow(&self, pages: usize) -> Option<usize> {
            let used = self.used.get();
            if used + pages > self.limit {
                return None;
            }
            self.used.set(used + pages);
            Some(self.base + used * PAGE)
        }
    }

    #[test]
    fn classes_round_up_to_powers_of_two() {
        let class = |size, align| class_of(Layout::from_size_align(size, align).unwrap());
        assert_eq!([class(0, 1), class(1, 1), class(16, 1), class(17, 1), class(32, 8), class(33, 1)], [0, 0, 0, 1, 1, 2]);
        assert_eq!(class(1, 64), 2);
        assert_eq!(class(65536, 1), 12);
    }

    /// Random allocations, frees and reallocations: every live block keeps its bytes, is aligned,
    /// and overlaps no other; freed blocks are reused.
    #[test]
    fn blocks_stay_apart_keep_their_bytes_and_are_reused() {
        let buffer = Buffer::new(256);
        let heap = SizeClasses::new(&buffer);
        let mut live: Vec<(*mut u8, Layout, u8)> = Vec::new();
        let mut seed = 0x2545_f491_u64;
        let mut random = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        for step in 0..20_000 {
            let fill = (step % 251) as u8;
            match random(3) {
                0 | 1 if live.len() < 300 => {
                    let align = [1, 2, 4, 8, 16, 32, 128][random(7)];
                    let size = [0, 1, 7, 16, 24, 100, 500, 3000, 70_000][random(9)];
                    let layout = Layout::from_size_align(size, align).unwrap();
                    let ptr = unsafe { heap.alloc(layout) };
                    assert!(!ptr.is_null() && ptr as usize % align == 0, "{size} {align}");
                    unsafe { ptr.write_bytes(fill, size) };
                    live.push((ptr, layout, fill));
                }
                2 if !live.is_empty() => {
                    let (ptr, layout, fill) = live.swap_remove(random(live.len()));
                    let new_size = [0, 5, 40, 300, 5000][random(5)];
                    let moved = unsafe { heap.realloc(ptr, layout, new_size) };
                    let kept = layout.size().min(new_size);
                    assert!(unsafe { std::slice::from_raw_parts(moved, kept) }.iter().all(|&b| b == fill));
                    let layout = Layout::from_size_align(new_size, layout.align()).unwrap();
                    unsafe { moved.write_bytes(fill, new_size) };
                    live.push((moved, layout, fill));
                }
                _ if !live.is_empty() => {
                    let (ptr, layout, fill) = live.swap_remove(random(live.len()));
                    assert!(unsafe { std::slice::from_raw_parts(ptr, layout.size()) }.iter().all(|&b| b == fill));
                    unsafe { heap.dealloc(ptr, layout) };
                }
                _ => {}
            }
            if step % 1000 == 0 {
                let mut spans: Vec<(usize, usize)> = live.iter().map(|(p, l, _)| (*p as usize, *p as usize + l.size())).collect();
                spans.sort();
                assert!(spans.windows(2).all(|w| w[0].1 <= w[1].0), "overlapping blocks");
            }
        }
        // About 13,000 allocations averaging some 10 KB fit in these 16 MB (every allocation above
        // succeeded) only because freed blocks are reused.
        assert!(buffer.used.get() <= 256);
    }

    #[test]
    fn out_of_memory_is_a_null_pointer() {
        let buffer = Buffer::new(2);
        let heap = SizeClasses::new(&buffer);
        assert!(unsafe { heap.alloc(Layout::from_size_align(3 * PAGE, 1).unwrap()) }.is_null());
        assert!(!unsafe { heap.alloc(Layout::from_size_align(100, 1).unwrap()) }.is_null());
        assert!(unsafe { heap.alloc(Layout::from_size_align(usize::MAX / 2, 1).unwrap()) }.is_null());
    }
}
