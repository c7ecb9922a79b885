//! The allocator of a launcher: a bump arena in front of glibc's malloc.
//!
//! `moat run` lives for a few hundred microseconds and ends in `execve`, which frees
//! everything at once. Counted with bench/peers/icount (user-space instructions from exec to
//! exec, `moat run --rox /usr,/lib,/lib64,/bin --ro /etc -- /bin/true`), glibc's malloc and
//! free were a third of moat's own instructions: about 17,000 of 50,000, for a hundred or so
//! small blocks (strings of the policy, the plan's vectors and maps), most of the cost in
//! bookkeeping a process that is about to exec never needs (bins, tcache, coalescing), plus
//! its first-use initialisation. Here a block is a pointer bump in a static arena (a few
//! instructions), freeing the newest block gives it back, freeing any other arena block does
//! nothing, and growing the newest block grows it in place. Past the arena (long-lived
//! commands such as `moat record`, which allocate as they go), every request goes to the
//! system allocator, so the memory no arena block gives back is bounded by the arena.
//!
//! No crate offers a global allocator with this fall-back; the arena is the simplest that
//! does the job, and its tests hold it to `GlobalAlloc`'s contract.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Bytes in moat's arena: what a `moat run` with a large policy needs, several times over.
/// It is in `.bss`, so only the pages used are ever touched.
pub const ARENA: usize = 1 << 20;

/// The arena, 16-byte aligned like malloc's blocks.
#[repr(C, align(16))]
struct Arena<const N: usize>(UnsafeCell<[u8; N]>);

// SAFETY: the arena's bytes are handed out in disjoint blocks (see `LaunchAlloc::alloc`);
// no two owners ever see the same byte.
unsafe impl<const N: usize> Sync for Arena<N> {}

/// A bump allocator over a static arena of `N` bytes, falling back to [`System`].
pub struct LaunchAlloc<const N: usize> {
    arena: Arena<N>,
    /// Offset of the first free byte.
    next: AtomicUsize,
}

impl<const N: usize> LaunchAlloc<N> {
    /// An empty arena.
    pub const fn new() -> LaunchAlloc<N> {
        LaunchAlloc {
            arena: Arena(UnsafeCell::new([0; N])),
            next: AtomicUsize::new(0),
        }
    }

    fn base(&self) -> usize {
        self.arena.0.get() as usize
    }

    fn owns(&self, ptr: *mut u8) -> bool {
        let p = ptr as usize;
        p >= self.base() && p < self.base() + N
    }
}

// SAFETY: blocks are carved from the arena with a compare-and-swap on `next`, so two
// threads never get overlapping blocks; every block is aligned as its layout asks and lies
// inside the arena; blocks outside the arena are the system allocator's, handed back to it.
unsafe impl<const N: usize> GlobalAlloc for LaunchAlloc<N> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let base = self.base();
        let mut next = self.next.load(Ordering::Relaxed);
        loop {
            // Align the address (not just the offset): the arena is only 16-byte aligned.
            // Alignments are powers of two, so this is a mask, not a division.
            let mask = layout.align() - 1;
            let start = ((base + next + mask) & !mask) - base;
            let Some(end) = start.checked_add(layout.size()).filter(|e| *e <= N) else {
                // SAFETY: the caller's layout, passed on unchanged.
                return unsafe { System.alloc(layout) };
            };
            match self
                .next
                .compare_exchange_weak(next, end, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return (base + start) as *mut u8,
                Err(now) => next = now,
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if !self.owns(ptr) {
            // SAFETY: a block of the system allocator, with the layout it was made with.
            return unsafe { System.dealloc(ptr, layout) };
        }
        // The newest block is given back; any other stays used until exit or exec.
        let start = ptr as usize - self.base();
        let _ = self.next.compare_exchange(
            start + layout.size(),
            start,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if self.owns(ptr) {
            let start = ptr as usize - self.base();
            let end = start + layout.size();
            // The newest block grows (or shrinks) where it is.
            if let Some(new_end) = start.checked_add(new_size).filter(|e| *e <= N) {
                if self
                    .next
                    .compare_exchange(end, new_end, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
                {
                    return ptr;
                }
            }
        }
        // SAFETY: `Layout::from_size_align_unchecked` with the old alignment and a size the
        // caller guarantees is valid for it; then a copy of the smaller of the two sizes
        // between two live blocks, and the old block freed as this allocator frees.
        unsafe {
            let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
            let new = self.alloc(new_layout);
            if !new.is_null() {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            new
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small arena, so that the tests reach its end.
    const SMALL: usize = 4096;
    type Small = LaunchAlloc<SMALL>;

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    #[test]
    fn blocks_are_aligned_disjoint_and_reused_when_newest() {
        let a = Small::new();
        // SAFETY: every block is used within its layout and freed with it.
        unsafe {
            let p = a.alloc(layout(3, 1));
            let q = a.alloc(layout(8, 8));
            assert_eq!(q as usize % 8, 0);
            assert!(q as usize >= p as usize + 3);
            let r = a.alloc(layout(10, 64));
            assert_eq!(r as usize % 64, 0);
            std::ptr::write_bytes(r, 7, 10);
            a.dealloc(r, layout(10, 64));
            // The newest block came back: the next one starts where it did (or before,
            // after alignment).
            let s = a.alloc(layout(1, 1));
            assert!(s as usize <= r as usize);
            // An older block freed stays used.
            a.dealloc(p, layout(3, 1));
            let t = a.alloc(layout(1, 1));
            assert!(t as usize > s as usize);
        }
    }

    #[test]
    fn the_newest_block_grows_in_place_others_move() {
        let a = Small::new();
        // SAFETY: as above; realloc keeps the contents up to the smaller size.
        unsafe {
            let p = a.alloc(layout(4, 1));
            std::ptr::copy_nonoverlapping(b"moat".as_ptr(), p, 4);
            let p2 = a.realloc(p, layout(4, 1), 100);
            assert_eq!(p2, p);
            let q = a.alloc(layout(4, 1));
            let p3 = a.realloc(p2, layout(100, 1), 200);
            assert_ne!(p3, p2);
            assert_eq!(std::slice::from_raw_parts(p3, 4), b"moat");
            a.dealloc(q, layout(4, 1));
            a.dealloc(p3, layout(200, 1));
        }
    }

    #[test]
    fn past_the_arena_the_system_allocator_serves() {
        let a = Small::new();
        // SAFETY: as above.
        unsafe {
            let big = a.alloc(layout(SMALL + 1, 8));
            assert!(!big.is_null() && !a.owns(big));
            std::ptr::write_bytes(big, 1, SMALL + 1);
            a.dealloc(big, layout(SMALL + 1, 8));
            let most = a.alloc(layout(SMALL - 16, 16));
            assert!(a.owns(most));
            let spill = a.alloc(layout(64, 16));
            assert!(!a.owns(spill));
            let grown = a.realloc(most, layout(SMALL - 16, 16), SMALL * 2);
            assert!(!a.owns(grown));
            a.dealloc(grown, layout(SMALL * 2, 16));
            a.dealloc(spill, layout(64, 16));
        }
    }

    #[test]
    fn threads_get_disjoint_blocks() {
        let a = std::sync::Arc::new(LaunchAlloc::<{ 1 << 17 }>::new());
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let a = std::sync::Arc::clone(&a);
                std::thread::spawn(move || {
                    (0..1000)
                        // SAFETY: blocks kept alive until compared, never written.
                        .map(|_| unsafe { a.alloc(layout(16, 16)) } as usize)
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all: Vec<usize> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        all.sort_unstable();
        assert!(all.windows(2).all(|w| w[1] - w[0] >= 16));
    }
}
