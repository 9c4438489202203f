//! What the codec asks of the operating system: random bytes for keys and
//! IVs, fork detection, and the clock.
//!
//! Keys come straight from the OS CSPRNG. IVs are public and only need to be
//! unpredictable, so, as OpenSSL and BoringSSL do, they come from a
//! per-thread ChaCha20 generator seeded from the OS CSPRNG (and reseeded
//! after every 2^20 IVs). One `getrandom` call costs more than the rest of a
//! small token; a ChaCha20 block serves four IVs in a few nanoseconds.
//!
//! A forked child inherits its parent's generator, and drawing from the same
//! state in both processes would repeat IVs. So every generator is tagged
//! with the process generation it was seeded in, and a fork starts a new
//! generation: on Linux the generation marker lives in a page mapped with
//! `MADV_WIPEONFORK`, which the kernel zeroes in the child (the technique
//! BoringSSL uses), so detecting a fork costs one atomic load. Elsewhere on
//! Unix the process id is compared instead.

// The only `unsafe` of the crate: mapping the wipe-on-fork page, and
// reading the coarse clock.
#![allow(unsafe_code)]

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};

use chacha20::ChaCha20Rng;
use rand_core::{Rng as _, SeedableRng as _};

/// IVs drawn from one seed before the generator is reseeded.
const IVS_PER_SEED: u64 = 1 << 20;

/// Counts forks seen (plus one for the first use); a generator seeded under
/// an older generation is reseeded before use.
static GENERATION: AtomicU64 = AtomicU64::new(0);

struct Seeded {
    generation: u64,
    used: u64,
    rng: ChaCha20Rng,
}

thread_local! {
    static IV_RNG: RefCell<Option<Seeded>> = const { RefCell::new(None) };
}

/// Fills `buf` from the OS CSPRNG.
pub(crate) fn fill_fresh(buf: &mut [u8]) {
    #[allow(clippy::expect_used)]
    getrandom::fill(buf).expect("the operating system's random number generator failed"); // ok: unrecoverable, documented as a panic
}

fn seed(generation: u64) -> Seeded {
    let mut seed = zeroize::Zeroizing::new([0u8; 32]);
    fill_fresh(&mut seed[..]);
    Seeded {
        generation,
        used: 0,
        rng: ChaCha20Rng::from_seed(*seed),
    }
}

/// A fresh, unpredictable 16-byte IV.
pub(crate) fn iv() -> [u8; 16] {
    let generation = fork::generation();
    IV_RNG.with(|cell| {
        let mut slot = cell.borrow_mut();
        let state = match &mut *slot {
            Some(s) if s.generation == generation && s.used < IVS_PER_SEED => s,
            stale => stale.insert(seed(generation)),
        };
        state.used += 1;
        let mut iv = [0u8; 16];
        state.rng.fill_bytes(&mut iv);
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

/// Whole seconds of `CLOCK_REALTIME_COARSE`, where there is one.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn coarse_unix_seconds() -> Option<u64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable `timespec` for the call's duration.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) };
    if rc == 0 {
        u64::try_from(ts.tv_sec).ok()
    } else {
        None
    }
}

/// No coarse clock on this platform: callers use `SystemTime`.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn coarse_unix_seconds() -> Option<u64> {
    None
}

/// Fallback fork detection: a new process id means a new generation.
#[cfg(unix)]
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
    fn ivs_do_not_repeat_across_threads() {
        let mut seen = HashSet::new();
        for _ in 0..1000 {
            assert!(seen.insert(iv()));
        }
        let other: Vec<[u8; 16]> = std::thread::spawn(|| (0..1000).map(|_| iv()).collect())
            .join()
            .unwrap();
        for iv in other {
            assert!(seen.insert(iv));
        }
    }

    #[test]
    fn a_new_generation_reseeds() {
        let _ = iv();
        let seed_before = IV_RNG.with(|c| c.borrow().as_ref().map(|s| s.rng.get_seed()));
        // Simulate a fork: a generation change must reseed, not continue.
        IV_RNG.with(|c| {
            if let Some(s) = c.borrow_mut().as_mut() {
                s.generation = s.generation.wrapping_sub(1);
            }
        });
        let _ = iv();
        let seed_after = IV_RNG.with(|c| c.borrow().as_ref().map(|s| s.rng.get_seed()));
        assert!(seed_before.is_some());
        assert_ne!(seed_before, seed_after);
    }

    #[test]
    fn the_coarse_clock_agrees_with_the_system_clock() {
        let precise = || {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs()
        };
        let before = precise();
        #[cfg(target_os = "linux")]
        assert!(coarse_unix_seconds().is_some());
        let coarse = coarse_unix_seconds().unwrap_or(before);
        let after = precise();
        // At most one tick behind, so at most one second off at a boundary.
        assert!(
            coarse + 1 >= before && coarse <= after,
            "{before} {coarse} {after}"
        );
    }

    #[test]
    fn a_used_up_seed_is_replaced() {
        let _ = iv();
        let seed_before = IV_RNG.with(|c| c.borrow().as_ref().map(|s| s.rng.get_seed()));
        IV_RNG.with(|c| {
            if let Some(s) = c.borrow_mut().as_mut() {
                s.used = IVS_PER_SEED;
            }
        });
        let _ = iv();
        let seed_after = IV_RNG.with(|c| c.borrow().as_ref().map(|s| s.rng.get_seed()));
        assert_ne!(seed_before, seed_after);
    }
}
