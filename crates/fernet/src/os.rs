//! What the codec asks of the operating system: random bytes for keys and
//! IVs, fork detection, the clock, and locked memory for key material.
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

// The only `unsafe` of the crate: mapping the wipe-on-fork page, reading
// the coarse clock, and the locked-memory arena (`secure` below).
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

/// Starts a new generation, so every thread's generator is reseeded before
/// use.
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
        let page = super::page_size();
        let ptr = super::map_anonymous(page)?.as_ptr().cast::<libc::c_void>();
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

/// The page size (4096 where the OS does not say).
fn page_size() -> usize {
    static PAGE: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *PAGE.get_or_init(|| {
        #[cfg(unix)]
        {
            // SAFETY: sysconf has no memory-safety preconditions.
            let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
            usize::try_from(page)
                .ok()
                .filter(|p| p.is_power_of_two())
                .unwrap_or(4096)
        }
        #[cfg(not(unix))]
        4096
    })
}

/// A fresh anonymous private read-write mapping of `len` bytes (zeroed,
/// page-aligned), or `None` if the OS refuses.
#[cfg(unix)]
fn map_anonymous(len: usize) -> Option<std::ptr::NonNull<u8>> {
    // SAFETY: an anonymous private mapping at an address the kernel chooses
    // aliases no Rust object; the result is checked below.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        return None;
    }
    std::ptr::NonNull::new(ptr.cast::<u8>())
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

/// Memory for key material: locked in RAM (`mlock`, so it is never written
/// to swap) and left out of core dumps (`MADV_DONTDUMP`), wherever the
/// operating system allows.
///
/// A small arena: pages are mapped a few at a time and cut into slots of
/// power-of-two sizes (64 bytes to 2 KiB) that are reused, never unmapped;
/// larger values get pages of their own. A slot is wiped when it is freed,
/// so every slot handed out is zeroed. When the OS refuses to lock (a low
/// `RLIMIT_MEMLOCK`) or to map, the memory is used all the same and the
/// shortfall is counted for [`status`]: keys keep working, only less
/// protected.
///
/// Locks are not inherited across `fork`: a child's copies of these pages
/// are unlocked (though still left out of its core dumps), and its
/// [`status`] still shows the parent's counts.
pub(crate) mod secure {
    use super::page_size;
    use std::alloc::Layout;
    use std::marker::PhantomData;
    use std::mem::MaybeUninit;
    use std::ops::{Deref, DerefMut};
    use std::ptr::NonNull;
    use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
    use std::sync::{Mutex, PoisonError};

    use zeroize::Zeroize as _;

    const MIN_SLOT: usize = 64;
    const MAX_SLOT: usize = 2048;
    /// Size classes: 64, 128, ..., 2048 bytes.
    const CLASSES: usize = (MAX_SLOT / MIN_SLOT).ilog2() as usize + 1;
    /// Pages mapped at once for small slots.
    const CHUNK_PAGES: usize = 4;

    /// Bytes of mapped key-material pages by protection.
    static LOCKED: AtomicUsize = AtomicUsize::new(0);
    static UNLOCKED: AtomicUsize = AtomicUsize::new(0);
    static DUMPABLE: AtomicUsize = AtomicUsize::new(0);
    /// The `errno` of the first refused lock (0: none).
    static LOCK_ERROR: AtomicI32 = AtomicI32::new(0);

    /// (locked, unlocked, dumpable) bytes, and the first lock error.
    pub(crate) fn status() -> (usize, usize, usize, Option<i32>) {
        let error = LOCK_ERROR.load(Ordering::Relaxed);
        (
            LOCKED.load(Ordering::Relaxed),
            UNLOCKED.load(Ordering::Relaxed),
            DUMPABLE.load(Ordering::Relaxed),
            (error != 0).then_some(error),
        )
    }

    /// Pages for key material.
    struct Region {
        ptr: NonNull<u8>,
        len: usize,
        /// From `mmap` (else from the heap, when mapping failed).
        mapped: bool,
        locked: bool,
        dontdump: bool,
    }

    impl Region {
        /// `len` bytes, a multiple of the page size, zeroed.
        fn new(len: usize) -> Self {
            #[cfg(unix)]
            if let Some(region) = Self::map(len) {
                region.count(1);
                return region;
            }
            let layout = Self::heap_layout(len);
            // SAFETY: `layout` has a nonzero size (at least one page).
            let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
            let Some(ptr) = NonNull::new(ptr) else {
                std::alloc::handle_alloc_error(layout)
            };
            let region = Self {
                ptr,
                len,
                mapped: false,
                locked: false,
                dontdump: false,
            };
            region.count(1);
            region
        }

        fn heap_layout(len: usize) -> Layout {
            match Layout::from_size_align(len, page_size()) {
                Ok(layout) => layout,
                // Lengths are whole pages of an allocation that was asked
                // for, so far below `isize::MAX`.
                Err(_) => std::alloc::handle_alloc_error(Layout::new::<[u8; 0]>()),
            }
        }

        #[cfg(unix)]
        fn map(len: usize) -> Option<Self> {
            let ptr = super::map_anonymous(len)?;
            #[cfg(any(target_os = "linux", target_os = "android"))]
            // SAFETY: `ptr..ptr+len` is exactly the mapping made above.
            let dontdump =
                unsafe { libc::madvise(ptr.as_ptr().cast(), len, libc::MADV_DONTDUMP) } == 0;
            #[cfg(not(any(target_os = "linux", target_os = "android")))]
            let dontdump = false;
            // SAFETY: as above; locking has no effect on memory contents.
            let locked = unsafe { libc::mlock(ptr.as_ptr().cast(), len) } == 0;
            if !locked {
                let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(-1);
                let _ = LOCK_ERROR.compare_exchange(0, errno, Ordering::Relaxed, Ordering::Relaxed);
            }
            Some(Self {
                ptr,
                len,
                mapped: true,
                locked,
                dontdump,
            })
        }

        /// Adds (`sign` 1) or removes (-1) this region from the counts.
        fn count(&self, sign: isize) {
            let update = |counter: &AtomicUsize| {
                if sign > 0 {
                    counter.fetch_add(self.len, Ordering::Relaxed);
                } else {
                    counter.fetch_sub(self.len, Ordering::Relaxed);
                }
            };
            update(if self.locked { &LOCKED } else { &UNLOCKED });
            if !self.dontdump {
                update(&DUMPABLE);
            }
        }

        /// Returns the pages to the OS. The caller has wiped them.
        fn release(self) {
            self.count(-1);
            if self.mapped {
                #[cfg(unix)]
                // SAFETY: unmaps exactly the mapping made in `map`, which no
                // live reference points into any more (its only slot is
                // being freed); unmapping also unlocks it.
                unsafe {
                    libc::munmap(self.ptr.as_ptr().cast(), self.len);
                }
            } else {
                // SAFETY: allocated in `new` with this very layout.
                unsafe { std::alloc::dealloc(self.ptr.as_ptr(), Self::heap_layout(self.len)) };
            }
        }
    }

    /// Free slots by size class, as addresses (so the arena is `Send`).
    /// Pages of small slots are kept for reuse, never unmapped.
    struct Arena {
        free: [Vec<usize>; CLASSES],
    }

    impl Arena {
        const fn new() -> Self {
            Self {
                free: [const { Vec::new() }; CLASSES],
            }
        }

        fn take(&mut self, class: usize) -> NonNull<u8> {
            if let Some(ptr) = self.free[class]
                .pop()
                .and_then(|a| NonNull::new(a as *mut u8))
            {
                return ptr;
            }
            let size = MIN_SLOT << class;
            let region = Region::new((CHUNK_PAGES * page_size()).max(size));
            let base = region.ptr.as_ptr() as usize;
            // Every slot but the first goes on the free list; the first is
            // handed out. Slots are aligned to their size: the region is
            // page-aligned and sizes are powers of two up to a page or two.
            self.free[class].extend((1..region.len / size).rev().map(|i| base + i * size));
            region.ptr
        }

        fn give_back(&mut self, class: usize, ptr: NonNull<u8>) {
            self.free[class].push(ptr.as_ptr() as usize);
        }
    }

    static ARENA: Mutex<Arena> = Mutex::new(Arena::new());

    fn arena() -> std::sync::MutexGuard<'static, Arena> {
        // The arena's state is consistent at every point where a panic could
        // unwind (an allocation failure aborts instead), so a poisoned lock
        // holds valid lists.
        ARENA.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Zeroes `len` bytes at `ptr`, without letting the compiler skip it.
    ///
    /// # Safety
    ///
    /// `ptr..ptr+len` is writable memory that nothing else refers to.
    unsafe fn wipe(ptr: NonNull<u8>, len: usize) {
        // SAFETY: per the contract; `MaybeUninit<u8>` accepts any contents,
        // including a value's uninitialised padding.
        let bytes =
            unsafe { std::slice::from_raw_parts_mut(ptr.cast::<MaybeUninit<u8>>().as_ptr(), len) };
        bytes.zeroize();
    }

    /// Where a slot came from.
    enum Source {
        /// Slot of `MIN_SLOT << class` bytes from the shared arena.
        Class(usize),
        /// Pages of its own.
        Pages(Region),
    }

    /// Zeroed memory for `layout`, locked where possible; wiped and
    /// returned on drop. Owns its bytes exclusively.
    struct Slot {
        ptr: NonNull<u8>,
        source: Source,
    }

    impl Slot {
        fn new(layout: Layout) -> Self {
            let need = layout.size().max(layout.align()).max(MIN_SLOT);
            if need <= MAX_SLOT {
                let class = need.next_power_of_two().ilog2() as usize - MIN_SLOT.ilog2() as usize;
                let ptr = arena().take(class);
                Self {
                    ptr,
                    source: Source::Class(class),
                }
            } else {
                // Page alignment covers any alignment a Rust type asks for
                // in practice; larger ones are refused at compile time by
                // `Locked::ALIGN_OK`.
                let region = Region::new(need.next_multiple_of(page_size()));
                Self {
                    ptr: region.ptr,
                    source: Source::Pages(region),
                }
            }
        }

        fn len(&self) -> usize {
            match &self.source {
                Source::Class(class) => MIN_SLOT << class,
                Source::Pages(region) => region.len,
            }
        }
    }

    impl Drop for Slot {
        fn drop(&mut self) {
            // SAFETY: the slot's bytes are ours alone, and whatever lived in
            // them has been dropped by the owner.
            unsafe { wipe(self.ptr, self.len()) };
            match std::mem::replace(&mut self.source, Source::Class(0)) {
                Source::Class(class) => arena().give_back(class, self.ptr),
                Source::Pages(region) => region.release(),
            }
        }
    }

    /// A `T` in locked memory, like a `Box<T>`: the value lives in a slot of
    /// the arena, is dropped in place and its bytes are wiped on drop.
    ///
    /// Construction moves the value through the stack once (as any
    /// constructor does); callers that build secrets wipe that residue with
    /// [`super::wipe_stack`] or fill the slot in place.
    pub(crate) struct Locked<T> {
        slot: Slot,
        _owns: PhantomData<T>,
    }

    // SAFETY: a `Locked<T>` owns its `T` exclusively, as a `Box<T>` does.
    unsafe impl<T: Send> Send for Locked<T> {}
    // SAFETY: shared access only ever gives out `&T`.
    unsafe impl<T: Sync> Sync for Locked<T> {}

    impl<T> Locked<T> {
        const ALIGN_OK: () = assert!(std::mem::align_of::<T>() <= 4096);

        pub(crate) fn new(value: T) -> Self {
            let () = Self::ALIGN_OK;
            let slot = Slot::new(Layout::new::<T>());
            // SAFETY: the slot is at least `size_of::<T>()` bytes, aligned
            // for `T` (slots are aligned to their power-of-two size, which is
            // at least `T`'s alignment, or to a page), and ours alone.
            unsafe { slot.ptr.cast::<T>().as_ptr().write(value) };
            Self {
                slot,
                _owns: PhantomData,
            }
        }

        fn ptr(&self) -> NonNull<T> {
            self.slot.ptr.cast()
        }

        #[cfg(test)]
        pub(crate) fn addr(&self) -> usize {
            self.slot.ptr.as_ptr() as usize
        }
    }

    impl<T> Deref for Locked<T> {
        type Target = T;

        fn deref(&self) -> &T {
            // SAFETY: initialised in `new`, alive until `drop`; the borrow
            // is tied to `&self`.
            unsafe { self.ptr().as_ref() }
        }
    }

    impl<T> DerefMut for Locked<T> {
        fn deref_mut(&mut self) -> &mut T {
            // SAFETY: as for `deref`, and `&mut self` is exclusive.
            unsafe { self.ptr().as_mut() }
        }
    }

    impl<T: Clone> Clone for Locked<T> {
        fn clone(&self) -> Self {
            Self::new(T::clone(self))
        }
    }

    impl<T> Drop for Locked<T> {
        fn drop(&mut self) {
            // SAFETY: the value was written in `new` and is dropped once,
            // here; `slot` (dropped after this) then wipes its bytes.
            unsafe { std::ptr::drop_in_place(self.ptr().as_ptr()) };
        }
    }

    /// Bytes of a length fixed at creation, in locked memory, zeroed at
    /// first and wiped on drop.
    pub(crate) struct LockedBytes {
        slot: Slot,
        len: usize,
    }

    // SAFETY: owns its bytes exclusively, like a `Box<[u8]>`.
    unsafe impl Send for LockedBytes {}
    // SAFETY: shared access only ever gives out `&[u8]`.
    unsafe impl Sync for LockedBytes {}

    impl LockedBytes {
        pub(crate) fn zeroed(len: usize) -> Self {
            let slot = Slot::new(
                Layout::array::<u8>(len)
                    .unwrap_or_else(|_| std::alloc::handle_alloc_error(Layout::new::<[u8; 0]>())),
            );
            Self { slot, len }
        }

        pub(crate) fn as_slice(&self) -> &[u8] {
            // SAFETY: the slot holds at least `len` bytes, initialised
            // (slots are handed out zeroed) and ours alone.
            unsafe { std::slice::from_raw_parts(self.slot.ptr.as_ptr(), self.len) }
        }

        pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
            // SAFETY: as for `as_slice`, and `&mut self` is exclusive.
            unsafe { std::slice::from_raw_parts_mut(self.slot.ptr.as_ptr(), self.len) }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn slots_are_aligned_zeroed_and_wiped_when_freed() {
            // A private arena, so no other test reuses these slots.
            let mut arena = Arena::new();
            for class in 0..CLASSES {
                let size = MIN_SLOT << class;
                let a = arena.take(class);
                let b = arena.take(class);
                assert_eq!(a.as_ptr() as usize % size, 0, "class {class}");
                assert_ne!(a, b);
                // SAFETY: `a` is a fresh slot of `size` bytes.
                let bytes = unsafe { std::slice::from_raw_parts_mut(a.as_ptr(), size) };
                assert!(bytes.iter().all(|&b| b == 0));
                bytes.fill(0xa5);
                // SAFETY: as above.
                unsafe { wipe(a, size) };
                assert!(bytes.iter().all(|&b| b == 0));
                arena.give_back(class, a);
                assert_eq!(arena.take(class), a, "freed slots are reused");
            }
        }

        #[test]
        fn locked_values_drop_in_place_and_clone_into_their_own_slot() {
            use std::sync::Arc;
            let counter = Arc::new(());
            let a = Locked::new((Arc::clone(&counter), [7u8; 100]));
            let b = a.clone();
            assert_ne!(a.addr(), b.addr());
            assert_eq!(b.1, [7u8; 100]);
            assert_eq!(Arc::strong_count(&counter), 3);
            drop(a);
            drop(b);
            assert_eq!(Arc::strong_count(&counter), 1);
            // Larger than any slot: pages of its own.
            let big = Locked::new([1u64; 1000]);
            assert_eq!(big.addr() % page_size(), 0);
            assert_eq!(big.iter().sum::<u64>(), 1000);
            let mut bytes = LockedBytes::zeroed(5000);
            assert!(bytes.as_slice().iter().all(|&b| b == 0));
            bytes.as_mut_slice()[4999] = 1;
            assert_eq!(bytes.as_slice().len(), 5000);
        }
    }
}

/// Overwrites `N` bytes of the stack below the caller's frame: the residue
/// of a key schedule or other secret that a callee computed on the stack and
/// then moved into locked memory. Best effort (the callee must not have been
/// inlined into the caller, which is why secret builders are
/// `#[inline(never)]`).
#[inline(never)]
pub(crate) fn wipe_stack() {
    use zeroize::Zeroize as _;
    let mut buf = [0u8; 8 * 1024];
    buf[..].zeroize();
    std::hint::black_box(&buf);
}

/// Reading this process's memory map, for tests of locked memory.
#[cfg(all(test, target_os = "linux"))]
pub(crate) mod proc_maps {
    // Test support: a malformed `/proc` is a failed test.
    #![allow(clippy::unwrap_used)]

    /// The mapping of `/proc/self/smaps` that holds `addr`: its `VmFlags`
    /// (`lo`: locked, `dd`: left out of core dumps) and its `Locked:` size.
    pub(crate) fn smaps_of(addr: usize) -> (Vec<String>, u64) {
        let text = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut inside = false;
        let (mut flags, mut locked_kb) = (Vec::new(), 0);
        for line in text.lines() {
            let first = line.split_whitespace().next().unwrap_or("");
            if let Some((start, end)) = first.split_once('-')
                && let (Ok(start), Ok(end)) = (
                    usize::from_str_radix(start, 16),
                    usize::from_str_radix(end, 16),
                )
            {
                if inside {
                    break;
                }
                inside = (start..end).contains(&addr);
            } else if inside && first == "Locked:" {
                locked_kb = line.split_whitespace().nth(1).unwrap().parse().unwrap();
            } else if inside && first == "VmFlags:" {
                flags = line.split_whitespace().skip(1).map(str::to_owned).collect();
            }
        }
        assert!(!flags.is_empty(), "no mapping holds {addr:#x}");
        (flags, locked_kb)
    }

    /// `VmLck` of `/proc/self/status`, in kB.
    pub(crate) fn vm_locked_kb() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("VmLck:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_os = "linux")]
    use proc_maps::{smaps_of, vm_locked_kb};
    use std::collections::HashSet;

    #[cfg(target_os = "linux")]
    #[test]
    fn key_memory_is_locked_and_left_out_of_core_dumps() {
        let value = secure::Locked::new([0x5au8; 32]);
        let bytes = secure::LockedBytes::zeroed(100_000);
        for addr in [value.addr(), bytes.as_slice().as_ptr() as usize] {
            let (flags, locked_kb) = smaps_of(addr);
            let status = crate::secure_memory_status();
            assert!(
                flags.iter().any(|f| f == "lo") && locked_kb > 0,
                "not locked: {flags:?}, {locked_kb} kB; {status}"
            );
            assert!(flags.iter().any(|f| f == "dd"), "dumpable: {flags:?}");
        }
        assert!(vm_locked_kb() >= 100, "VmLck {} kB", vm_locked_kb());
        assert!(crate::secure_memory_status().locked_bytes >= 100_000);
    }

    #[cfg(target_os = "linux")]
    const MEMLOCK_CHILD: &str = "SECRETS_MANAGER_FERNET_MEMLOCK_CHILD";

    /// Runs itself again in a fresh process of this test binary, which
    /// (seeing the variable) does `memlock_child`'s work.
    #[cfg(target_os = "linux")]
    #[test]
    fn with_no_memlock_allowance_keys_still_work() {
        if std::env::var_os(MEMLOCK_CHILD).is_some() {
            memlock_child();
            return;
        }
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "os::tests::with_no_memlock_allowance_keys_still_work",
            ])
            .args(["--nocapture", "--test-threads=1"])
            .env(MEMLOCK_CHILD, "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stdout}\n{stderr}");
        assert!(
            stdout.contains("memlock child: working, unlocked"),
            "{stdout}\n{stderr}"
        );
    }

    /// The child's work: with `RLIMIT_MEMLOCK` at zero, keys still work.
    #[cfg(target_os = "linux")]
    fn memlock_child() {
        if std::env::var_os(MEMLOCK_CHILD).is_none() {
            return;
        }
        let zero = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `zero` is a valid rlimit for the call's duration.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &zero) }, 0);
        // SAFETY: plain system calls with no pointers (`setgroups` with an
        // empty list). Root's CAP_IPC_LOCK would ignore the limit, so a root
        // child becomes `nobody`, which drops every capability.
        unsafe {
            if libc::geteuid() == 0 {
                assert_eq!(libc::setgroups(0, std::ptr::null()), 0);
                assert_eq!(libc::setresgid(65534, 65534, 65534), 0);
                assert_eq!(libc::setresuid(65534, 65534, 65534), 0);
            }
        }

        let key = crate::Key::generate();
        let f = crate::Fernet::new(&key);
        let token = f.encrypt(b"still works");
        assert_eq!(&*f.decrypt(&token).unwrap(), b"still works");
        let password = crate::SecretBytes::from_slice(b"pw");
        assert_eq!(password.expose_secret(), b"pw");

        let status = crate::secure_memory_status();
        assert_eq!(status.locked_bytes, 0, "{status}");
        assert!(status.unlocked_bytes > 0, "{status}");
        assert!(
            matches!(status.lock_error, Some(libc::EPERM | libc::ENOMEM)),
            "{status:?}"
        );
        assert!(!status.is_fully_protected());
        assert_eq!(vm_locked_kb(), 0);
        // Still left out of core dumps.
        let probe = secure::Locked::new([1u8; 16]);
        let (flags, locked_kb) = smaps_of(probe.addr());
        assert!(flags.iter().any(|f| f == "dd") && !flags.iter().any(|f| f == "lo"));
        assert_eq!(locked_kb, 0);
        println!("memlock child: working, unlocked ({status})");
    }

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

    /// This thread's generator seed after drawing an IV, then after
    /// `tamper` changes its state and another IV is drawn.
    fn seeds_around(tamper: impl FnOnce(&mut Seeded)) -> ([u8; 32], [u8; 32]) {
        let seed = || {
            let _ = iv();
            IV_RNG.with(|c| c.borrow().as_ref().map(|s| s.rng.get_seed()).unwrap())
        };
        let before = seed();
        IV_RNG.with(|c| tamper(c.borrow_mut().as_mut().unwrap()));
        (before, seed())
    }

    #[test]
    fn a_new_generation_reseeds() {
        // Simulate a fork: a generation change must reseed, not continue.
        let (before, after) = seeds_around(|s| s.generation = s.generation.wrapping_sub(1));
        assert_ne!(before, after);
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
        let (before, after) = seeds_around(|s| s.used = IVS_PER_SEED);
        assert_ne!(before, after);
        let (before, after) = seeds_around(|s| s.used = IVS_PER_SEED - 1);
        assert_eq!(before, after, "a seed is used up to its last IV");
    }
}
