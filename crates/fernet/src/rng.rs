//! Random bytes for keys and IVs.
//!
//! Keys come straight from the OS CSPRNG. IVs are public and only need to be
//! unpredictable, so they are drawn from a per-thread buffer of OS random
//! bytes, refilled 64 IVs at a time: one `getrandom` call (about 0.5 µs, the
//! largest single cost of a small token) serves 64 tokens.
//!
//! A forked child inherits its parent's buffer, and handing out the same
//! bytes in both processes would repeat IVs. So every buffer is tagged with
//! the process generation it was filled in, and a fork starts a new
//! generation: on Linux the generation marker lives in a page mapped with
//! `MADV_WIPEONFORK`, which the kernel zeroes in the child (the technique
//! BoringSSL uses), so detecting a fork costs one atomic load. Elsewhere on
//! Unix the process id is compared instead.

// The only `unsafe` of the crate: mapping the wipe-on-fork page.
#![allow(unsafe_code)]

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};

/// IVs per OS call.
const IVS_PER_REFILL: usize = 64;
const POOL_LEN: usize = 16 * IVS_PER_REFILL;

/// Counts forks seen (plus one for the first use); a buffer filled under an
/// older generation is discarded.
static GENERATION: AtomicU64 = AtomicU64::new(0);

struct Pool {
    generation: u64,
    pos: usize,
    bytes: [u8; POOL_LEN],
}

thread_local! {
    static POOL: RefCell<Pool> = const {
        RefCell::new(Pool { generation: 0, pos: POOL_LEN, bytes: [0; POOL_LEN] })
    };
}

/// Fills `buf` from the OS CSPRNG.
pub(crate) fn fill_fresh(buf: &mut [u8]) {
    #[allow(clippy::expect_used)]
    getrandom::fill(buf).expect("the operating system's random number generator failed"); // ok: unrecoverable, documented as a panic
}

/// A fresh, unpredictable 16-byte IV.
pub(crate) fn iv() -> [u8; 16] {
    let generation = fork::generation();
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        if pool.generation != generation || pool.pos == POOL_LEN {
            fill_fresh(&mut pool.bytes);
            pool.generation = generation;
            pool.pos = 0;
        }
        let mut iv = [0u8; 16];
        let pos = pool.pos;
        iv.copy_from_slice(&pool.bytes[pos..pos + 16]);
        // Consumed bytes are wiped so the buffer never holds an IV already handed out.
        pool.bytes[pos..pos + 16].fill(0);
        pool.pos = pos + 16;
        iv
    })
}

/// Starts a new generation, so every thread's buffer is refilled before use.
fn bump() {
    GENERATION.fetch_add(1, Ordering::AcqRel);
}

#[cfg(target_os = "linux")]
mod fork {
    use super::{GENERATION, Ordering, bump};
    use std::sync::OnceLock;
    use std::sync::atomic::AtomicU64;

    /// A word in a wipe-on-fork page: nonzero in the process that set it,
    /// zero in any child forked after.
    static MARKER: OnceLock<Option<&'static AtomicU64>> = OnceLock::new();

    fn map_marker() -> Option<&'static AtomicU64> {
        // SAFETY: sysconf has no memory-safety preconditions.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).ok()?;
        // SAFETY: an anonymous private mapping at an address the kernel
        // chooses aliases no Rust object; the result is checked below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                page,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return None;
        }
        // SAFETY: `ptr` is the start of the `page`-byte mapping made above.
        if unsafe { libc::madvise(ptr, page, libc::MADV_WIPEONFORK) } != 0 {
            // Kernels before 4.14: fall back to comparing process ids.
            // SAFETY: unmaps exactly the mapping made above, never shared.
            unsafe { libc::munmap(ptr, page) };
            return None;
        }
        // SAFETY: the mapping is page-aligned (so aligned for u64), zeroed,
        // readable and writable, and never unmapped, so it is valid for
        // 'static; it is only ever accessed through this atomic.
        Some(unsafe { &*ptr.cast::<AtomicU64>() })
    }

    pub(super) fn generation() -> u64 {
        match MARKER.get_or_init(map_marker) {
            Some(marker) => {
                if marker.load(Ordering::Acquire) == 0 {
                    // First use, or the page was wiped by a fork. Bump before
                    // arming, so no thread sees the armed marker with the
                    // old generation.
                    bump();
                    marker.store(1, Ordering::Release);
                }
            }
            None => super::pid_check(),
        }
        GENERATION.load(Ordering::Acquire)
    }
}

#[cfg(all(unix, not(target_os = "linux")))]
mod fork {
    use super::{GENERATION, Ordering};

    pub(super) fn generation() -> u64 {
        super::pid_check();
        GENERATION.load(Ordering::Acquire)
    }
}

#[cfg(not(unix))]
mod fork {
    use super::{GENERATION, Ordering};

    /// No `fork` on this platform: one generation for the process.
    pub(super) fn generation() -> u64 {
        if GENERATION.load(Ordering::Acquire) == 0 {
            super::bump();
        }
        GENERATION.load(Ordering::Acquire)
    }
}

/// Fallback fork detection: a new process id means a new generation.
#[cfg(unix)]
#[allow(dead_code)] // unused on Linux kernels with MADV_WIPEONFORK
fn pid_check() {
    use std::sync::atomic::AtomicU32;
    static PID: AtomicU32 = AtomicU32::new(0);
    let pid = std::process::id();
    if PID.load(Ordering::Acquire) != pid {
        bump();
        PID.store(pid, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ivs_do_not_repeat_across_refills_and_threads() {
        let mut seen = HashSet::new();
        for _ in 0..IVS_PER_REFILL * 3 {
            assert!(seen.insert(iv()));
        }
        let other: Vec<[u8; 16]> =
            std::thread::spawn(|| (0..IVS_PER_REFILL * 2).map(|_| iv()).collect())
                .join()
                .unwrap();
        for iv in other {
            assert!(seen.insert(iv));
        }
    }

    #[test]
    fn a_new_generation_discards_the_buffer() {
        let before = iv();
        let generation = GENERATION.load(Ordering::Acquire);
        // Simulate a fork: a generation change must refill, not continue.
        POOL.with(|p| p.borrow_mut().generation = generation.wrapping_sub(1));
        let pos_before = POOL.with(|p| p.borrow().pos);
        let _ = iv();
        let pos_after = POOL.with(|p| p.borrow().pos);
        assert_eq!(pos_after, 16, "refilled and took the first IV");
        assert!(pos_before >= 16);
        assert_ne!(iv(), before);
    }
}
