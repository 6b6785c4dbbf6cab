//! Memory given back after large answers. glibc's malloc keeps what a thread freed in that
//! thread's arena, and after freeing one large block it raises the size from which blocks get a
//! mapping of their own to that block's size: a server that read a few 4 MB answers would keep
//! tens of MB for good. So, on glibc, blocks from [`MMAP_THRESHOLD`] up always get their own
//! mapping (returned to the system when freed), and when the last large answer in use is dropped
//! the free memory of every arena is returned (`malloc_trim`). Elsewhere this does nothing.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Bodies from this size on are large: reading one is followed by a trim.
pub const LARGE_BODY: usize = 512 * 1024;

/// Blocks from this size on are mapped on their own (glibc's initial default, kept fixed).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: i32 = 128 * 1024;

/// Large answers whose memory is still in use.
static IN_USE: AtomicUsize = AtomicUsize::new(0);

/// Held while a large answer (its body, then what was read from it) is in use; the last one
/// dropped returns free memory to the system.
#[derive(Debug, PartialEq)]
pub struct LargeAnswer(());

impl LargeAnswer {
    pub fn hold() -> Self {
        IN_USE.fetch_add(1, Ordering::AcqRel);
        Self(())
    }
}

impl Drop for LargeAnswer {
    fn drop(&mut self) {
        if IN_USE.fetch_sub(1, Ordering::AcqRel) == 1 {
            trim();
        }
    }
}

/// Fixes the allocator's mapping threshold; called once, when the first client is built.
pub fn configure() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        // SAFETY: mallopt only changes malloc's tuning parameters; M_MMAP_THRESHOLD takes any
        // value up to 32 MiB on 64-bit glibc, and glibc serialises the change itself.
        ONCE.call_once(|| unsafe {
            glibc::mallopt(glibc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        });
    }
}

/// Returns the free memory of every arena to the system.
fn trim() {
    // SAFETY: malloc_trim takes no pointers and may be called at any time from any thread.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    unsafe {
        glibc::malloc_trim(0);
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod glibc {
    /// `M_MMAP_THRESHOLD` of glibc's malloc.h.
    pub const M_MMAP_THRESHOLD: i32 = -3;

    unsafe extern "C" {
        pub fn mallopt(param: i32, value: i32) -> i32;
        pub fn malloc_trim(pad: usize) -> i32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards_count_and_the_last_one_trims_without_harm() {
        configure();
        let first = LargeAnswer::hold();
        let second = LargeAnswer::hold();
        assert!(IN_USE.load(Ordering::Acquire) >= 2);
        drop(first);
        drop(second);
        // Another test may hold one; what matters is that dropping never underflows or panics.
        assert!(IN_USE.load(Ordering::Acquire) < usize::MAX / 2);
    }
}
