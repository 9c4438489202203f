//! Exact counters that scale: one cache-line-padded shard per thread slot,
//! summed on read, so concurrent threads never contend on a counter.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Operation counts since the key store was created. Each is exact: every
/// operation that completed is counted once, whatever the concurrency.
///
/// `#[non_exhaustive]`, so a counter can be added: read the fields; to
/// build one (in a test), start from [`Statistics::default`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Statistics {
    /// Tokens made.
    pub encryptions: u64,
    /// Tokens decrypted.
    pub decryptions: u64,
    /// Decryptions that failed (malformed, expired, no key matched).
    pub decryption_failures: u64,
    /// New versions made active by rotation.
    pub rotations: u64,
    /// Key lookups served from the cache of derived keys.
    pub cache_hits: u64,
    /// Key lookups that derived (or expanded) a key.
    pub cache_misses: u64,
    /// Salt-hash comparisons made.
    pub integrity_checks: u64,
}

#[derive(Clone, Copy)]
pub(crate) enum Counter {
    Encryptions,
    Decryptions,
    DecryptionFailures,
    Rotations,
    /// Key lookups beyond the one implied by each encryption and each
    /// decryption: further trial attempts, failed decryptions' attempts,
    /// rotations' derivations. Hits are derived from it on read, so the hot
    /// path counts one thing per operation.
    ExtraLookups,
    CacheMisses,
    IntegrityChecks,
}

const COUNTERS: usize = 7;

#[repr(align(128))]
#[derive(Default)]
struct Shard([AtomicU64; COUNTERS]);

/// A set of striped counters.
pub(crate) struct Counters {
    shards: Box<[Shard]>,
}

/// Shards per counter set: enough for every core to have its own; a power
/// of two, so a thread's shard is a mask away.
fn shard_count() -> usize {
    std::thread::available_parallelism()
        .map_or(4, |n| n.get())
        .clamp(1, 64)
        .next_power_of_two()
}

thread_local! {
    /// This thread's shard number, assigned on first use.
    static SLOT: Cell<usize> = const { Cell::new(usize::MAX) };
}

fn slot(len: usize) -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = SLOT.with(|s| {
        let n = s.get();
        if n != usize::MAX {
            return n;
        }
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        s.set(n);
        n
    });
    // `len` is a power of two.
    n & (len - 1)
}

impl Counters {
    pub(crate) fn new() -> Self {
        Self {
            shards: (0..shard_count()).map(|_| Shard::default()).collect(),
        }
    }

    pub(crate) fn add(&self, counter: Counter, n: u64) {
        self.shards[slot(self.shards.len())].0[counter as usize].fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn get(&self, counter: Counter) -> u64 {
        self.shards
            .iter()
            .map(|s| s.0[counter as usize].load(Ordering::Relaxed))
            .sum()
    }

    pub(crate) fn snapshot(&self) -> Statistics {
        let (encryptions, decryptions) = (
            self.get(Counter::Encryptions),
            self.get(Counter::Decryptions),
        );
        let misses = self.get(Counter::CacheMisses);
        let lookups = encryptions + decryptions + self.get(Counter::ExtraLookups);
        Statistics {
            encryptions,
            decryptions,
            decryption_failures: self.get(Counter::DecryptionFailures),
            rotations: self.get(Counter::Rotations),
            cache_hits: lookups.saturating_sub(misses),
            cache_misses: misses,
            integrity_checks: self.get(Counter::IntegrityChecks),
        }
    }
}

/// One striped counter (per-version decryption counts).
pub(crate) struct StripedCounter {
    shards: Box<[PaddedU64]>,
}

#[repr(align(128))]
#[derive(Default)]
struct PaddedU64(AtomicU64);

impl StripedCounter {
    pub(crate) fn new() -> Self {
        Self {
            shards: (0..shard_count()).map(|_| PaddedU64::default()).collect(),
        }
    }

    pub(crate) fn incr(&self) {
        self.shards[slot(self.shards.len())]
            .0
            .fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn get(&self) -> u64 {
        self.shards
            .iter()
            .map(|s| s.0.load(Ordering::Relaxed))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn counts_are_exact_across_threads() {
        let c = Arc::new(Counters::new());
        let v = Arc::new(StripedCounter::new());
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (c, v) = (Arc::clone(&c), Arc::clone(&v));
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        c.add(Counter::Encryptions, 1);
                        c.add(Counter::ExtraLookups, 2);
                        v.incr();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let s = c.snapshot();
        assert_eq!(s.encryptions, 80_000);
        assert_eq!(
            s.cache_hits,
            80_000 + 160_000,
            "one implied lookup per encryption, plus extras"
        );
        assert_eq!(s.decryptions, 0);
        assert_eq!(v.get(), 80_000);
    }
}
