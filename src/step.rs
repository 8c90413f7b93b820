//! The strategies' core steps over bare words, and nothing else.
//!
//! Each strategy in `strategy/` is a thin wrapper around these functions: it picks the words in
//! the shared region, calls the step, and reports hook points to its `Probe`. The steps take
//! `&AtomicU32` from the `sync` shim, so under `cfg(loom)` `tests/loom.rs` runs the very same
//! code on loom's atomics with 2–3 threads (the region lives in mmap memory where loom's
//! atomics cannot go, which is why the steps are kept apart from it).

use crate::futex::Scope;
use crate::sync::AtomicU32;
use crate::sync::Ordering::{AcqRel, Acquire, Relaxed, Release};

/// Reads a slot: the first half of every read-then-write (the race, or a critical section).
/// Relaxed: in the race, racy by design (the atomics only keep it defined behaviour); in a
/// critical section, ordered by the lock's Acquire and Release.
#[inline]
pub fn read(value: &AtomicU32) -> u32 {
    value.load(Relaxed)
}

/// Stores what was read plus one, whatever happened in between (the race's second half);
/// returns what it wrote.
#[inline]
pub fn write_successor(value: &AtomicU32, read: u32) -> u32 {
    let written = read.wrapping_add(1);
    value.store(written, Relaxed);
    written
}

/// One indivisible add; returns the value it replaced. Relaxed: the slot is the only data, and
/// all RMWs on one atomic form a single modification order, which is all an exact count needs.
#[inline]
pub fn atomic_add(value: &AtomicU32) -> u32 {
    value.fetch_add(1, Relaxed)
}

/// Compare-exchange from `seen` until it wins; returns (the value it replaced, failed CASes).
/// Relaxed for the reason given in `atomic_add`: the CAS itself makes read and write one step.
#[inline]
pub fn cas_add(value: &AtomicU32, mut seen: u32) -> (u32, u32) {
    let mut retries = 0;
    loop {
        // Strong CAS: a failure always means another worker won, so `retries` counts real
        // contention, never a spurious failure.
        match value.compare_exchange(seen, seen.wrapping_add(1), Relaxed, Relaxed) {
            Ok(_) => return (seen, retries),
            Err(current) => {
                // Reuse what the failed CAS saw instead of loading again.
                seen = current;
                retries += 1;
            }
        }
    }
}

/// The read and write of a critical section: plain Relaxed accesses, ordered by the lock's
/// Acquire (taking it) and Release (giving it back). Returns (read, written).
#[inline]
pub fn locked_add(value: &AtomicU32) -> (u32, u32) {
    let seen = read(value);
    (seen, write_successor(value, seen))
}

// ---------------------------------------------------------------------------------------------
// The lock word.
//
// Layout of the 32-bit word (the futex lock's; the spin lock stores the same identity and
// never sets CONTENDED):
//
//   bit 31        CONTENDED: waiters may sleep; the releaser must wake one
//   bits 21..=30  generation of the owner's identity (10 bits)
//   bits 0..=20   owner: worker index + 1 (0 means nobody)
//
// | word                      | meaning                                           |
// | ------------------------- | ------------------------------------------------- |
// | 0                         | unlocked                                          |
// | owner, CONTENDED clear    | held by `owner`, nobody sleeps on it              |
// | owner, CONTENDED set      | held by `owner`, waiters may sleep on this value  |
//
// Invariant: a locked word is never 0 (owner >= 1), and only the owner stores 0 into it, or
// the parent, after the owner is known dead (`repair`). The identity is never a PID: PIDs wrap
// (pid_max is 32768 here) and a recycled PID would make a dead owner look alive.
// ---------------------------------------------------------------------------------------------

pub const UNLOCKED: u32 = 0;
/// Waiters may sleep on the word: whoever releases it must wake one.
pub const CONTENDED: u32 = 1 << 31;
const OWNER_BITS: u32 = 21;
const OWNER_MASK: u32 = (1 << OWNER_BITS) - 1;
const GENERATION_MASK: u32 = (1 << 10) - 1;
/// Workers a lock word can name.
pub const MAX_OWNERS: usize = OWNER_MASK as usize;

/// The identity worker `w` writes into lock words it takes: index + 1 and a generation.
#[inline]
pub fn owner_id(worker: usize, generation: u32) -> u32 {
    assert!(
        worker < MAX_OWNERS,
        "worker {worker} cannot be named in a lock word"
    );
    ((generation & GENERATION_MASK) << OWNER_BITS) | (worker as u32 + 1)
}

/// The identity part of a word (owner and generation), without the CONTENDED bit.
#[inline]
pub fn identity(word: u32) -> u32 {
    word & !CONTENDED
}

/// The worker index a word names, if it is held.
#[inline]
pub fn owner_worker(word: u32) -> Option<usize> {
    match word & OWNER_MASK {
        0 => None,
        o => Some(o as usize - 1),
    }
}

#[inline]
pub fn is_unlocked(word: u32) -> bool {
    word == UNLOCKED
}

#[inline]
pub fn is_contended(word: u32) -> bool {
    word & CONTENDED != 0
}

/// Load-only spins before sleeping. Few: with far more workers than cores, the holder is
/// usually preempted, and spinning only burns the time slice it needs to finish. None under
/// loom: a spin is a yield there, which lets the holder run to its release first and would
/// hide the interleavings where a waiter goes to sleep before the release.
#[cfg(not(loom))]
const SPIN_LIMIT: u32 = 40;
#[cfg(loom)]
const SPIN_LIMIT: u32 = 0;

/// The futex lock's protocol on a word, in a given futex scope (std's futex mutex, with the
/// owner's identity in the word).
///
/// - `lock`: CAS 0→me; if that fails, spin a little (load only), then set CONTENDED on the
///   holder's word and sleep while the word still equals that value.
/// - `release`: swap to 0; if the old word was CONTENDED, `wake` one waiter. The woken waiter
///   takes the lock marked CONTENDED (it cannot know whether others sleep), so the remaining
///   sleepers are woken in turn.
pub struct LockWord<S>(std::marker::PhantomData<S>);

impl<S: Scope> LockWord<S> {
    /// Takes the lock for `me` (an `owner_id`); returns (failed attempts, futex waits).
    #[inline]
    pub fn lock(word: &AtomicU32, me: u32) -> (u32, u32) {
        // Acquire: pairs with the Release swap in `release` (or the AcqRel CAS in `repair`),
        // so the previous holder's writes to the slot are visible in our critical section.
        if word
            .compare_exchange(UNLOCKED, me, Acquire, Relaxed)
            .is_ok()
        {
            return (0, 0);
        }
        Self::lock_contended(word, me)
    }

    #[cold]
    fn lock_contended(word: &AtomicU32, me: u32) -> (u32, u32) {
        let mut retries = 1;
        let mut waits = 0;
        let mut state = Self::spin(word);
        // Free after spinning and nobody marked it: take it plainly, as in the fast path.
        if is_unlocked(state) {
            match word.compare_exchange(UNLOCKED, me, Acquire, Relaxed) {
                Ok(_) => return (retries, waits),
                Err(s) => {
                    state = s;
                    retries += 1;
                }
            }
        }
        loop {
            if is_unlocked(state) {
                // We may have slept, so others may sleep too: take it marked CONTENDED so our
                // release wakes the next one (one unneeded wake at worst, never a missed one).
                // Acquire: as in `lock`.
                match word.compare_exchange(UNLOCKED, me | CONTENDED, Acquire, Relaxed) {
                    Ok(_) => return (retries, waits),
                    Err(s) => {
                        state = s;
                        retries += 1;
                        continue;
                    }
                }
            }
            if !is_contended(state) {
                // Tell the holder to wake us. Relaxed: only the word's modification order
                // matters; the holder's swap in `release` reads the bit or our CAS fails.
                if let Err(s) = word.compare_exchange(state, state | CONTENDED, Relaxed, Relaxed) {
                    state = s;
                    continue;
                }
                state |= CONTENDED;
            }
            waits += 1;
            // Sleeps only while the word still equals `state`; spurious returns loop.
            S::wait(word, state);
            state = Self::spin(word);
            retries += 1;
        }
    }

    /// Spins while the word is held with no waiters; returns the state seen last.
    fn spin(word: &AtomicU32) -> u32 {
        let mut spins = SPIN_LIMIT;
        loop {
            // Relaxed load only: easier on the cache line than a CAS; the CAS that takes the
            // lock is what orders.
            let state = word.load(Relaxed);
            if is_unlocked(state) || is_contended(state) || spins == 0 {
                return state;
            }
            crate::sync::spin_loop();
            spins -= 1;
        }
    }

    /// Gives the lock back; true if waiters may sleep and one must be woken (`wake`).
    #[inline]
    pub fn release(word: &AtomicU32) -> bool {
        is_contended(Self::release_word(word))
    }

    /// `release`, returning the word it replaced: an owner that finds another identity there
    /// was robbed (a recovery freed its lock while it was alive: `lock_steals`).
    #[inline]
    pub fn release_word(word: &AtomicU32) -> u32 {
        // Release: pairs with the Acquire in `lock`, publishing the critical section.
        word.swap(UNLOCKED, Release)
    }

    /// Wakes one waiter after a contended `release`.
    #[inline]
    pub fn wake(word: &AtomicU32) {
        S::wake_one(word);
    }

    /// `release`, then `wake` if needed; true if it woke.
    #[inline]
    pub fn unlock(word: &AtomicU32) -> bool {
        let contended = Self::release(word);
        if contended {
            Self::wake(word);
        }
        contended
    }

    /// Frees a lock whose owner `dead` (an `owner_id`) is known to be dead, then wakes every
    /// waiter (the dead owner cannot, and we do not know how many sleep). Returns the word it
    /// replaced, or None if `dead` did not hold it. Only the parent calls this, after seeing the
    /// death with `waitid(WNOWAIT)`: a paused owner is alive and is never robbed.
    pub fn repair(word: &AtomicU32, dead: u32) -> Option<u32> {
        let mut state = word.load(Relaxed);
        loop {
            if is_unlocked(state) || identity(state) != identity(dead) {
                return None;
            }
            // AcqRel: acquires whatever the dead holder published, releases it to the next
            // locker's Acquire. A waiter may set CONTENDED meanwhile: retry with what we saw.
            match word.compare_exchange(state, UNLOCKED, AcqRel, Relaxed) {
                Ok(_) => {
                    S::wake_all(word);
                    return Some(state);
                }
                Err(s) => state = s,
            }
        }
    }
}

/// The spin lock: CAS 0→me (an `owner_id`, so a dead holder can be repaired like the futex
/// lock's) with bounded exponential backoff, then yielding. Returns the failed attempts.
#[inline]
pub fn spin_lock(word: &AtomicU32, me: u32) -> u32 {
    /// Backoff doubles up to this many spins; after that every wait yields the CPU instead.
    const MAX_SPINS: u32 = 64;
    let mut retries = 0;
    let mut spins = 1;
    // Acquire: pairs with the Release store in `spin_unlock`, made by the previous holder.
    while word
        .compare_exchange_weak(UNLOCKED, me, Acquire, Relaxed)
        .is_err()
    {
        retries += 1;
        // Wait until it looks free (load only), backing off; past the bound, yield: the holder
        // is most likely preempted and needs our CPU more than we do.
        loop {
            if spins <= MAX_SPINS {
                for _ in 0..spins {
                    crate::sync::spin_loop();
                }
                spins *= 2;
            } else {
                crate::sync::yield_now();
            }
            if word.load(Relaxed) == UNLOCKED {
                break;
            }
        }
    }
    retries
}

/// Releases the spin lock. Release: publishes the critical section to the next Acquire.
#[inline]
pub fn spin_unlock(word: &AtomicU32) {
    word.store(UNLOCKED, Release);
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn identity_round_trips_and_is_never_unlocked() {
        for (w, g) in [(0, 0), (5, 3), (MAX_OWNERS - 1, 1023), (7, 1024 + 9)] {
            let id = owner_id(w, g);
            assert_ne!(id, UNLOCKED);
            assert!(!is_contended(id));
            assert_eq!(owner_worker(id), Some(w));
            assert_eq!(owner_worker(id | CONTENDED), Some(w));
            assert_eq!(identity(id | CONTENDED), id);
        }
        assert_eq!(owner_worker(UNLOCKED), None);
    }

    #[test]
    fn repair_frees_only_the_dead_owners_word() {
        let dead = owner_id(3, 1);
        let alive = owner_id(4, 1);
        let word = AtomicU32::new(dead | CONTENDED);
        assert_eq!(
            LockWord::<crate::futex::Private>::repair(&word, alive),
            None
        );
        assert_eq!(
            LockWord::<crate::futex::Private>::repair(&word, dead),
            Some(dead | CONTENDED)
        );
        assert_eq!(word.load(Relaxed), UNLOCKED);
        // Same worker, another generation: not the same identity.
        word.store(owner_id(3, 2), Relaxed);
        assert_eq!(LockWord::<crate::futex::Private>::repair(&word, dead), None);
    }

    #[test]
    fn a_robbed_owner_sees_a_foreign_word_at_its_release() {
        type Lock = LockWord<crate::futex::Private>;
        let me = owner_id(2, 7);
        let word = AtomicU32::new(UNLOCKED);
        Lock::lock(&word, me);
        assert_eq!(identity(Lock::release_word(&word)), me, "not robbed");
        // Negative control: a wrong repair (as a recycled-PID identity would make) frees the
        // live owner's lock and another worker takes it: the owner's release must tell.
        Lock::lock(&word, me);
        assert!(Lock::repair(&word, me).is_some());
        Lock::lock(&word, owner_id(5, 7));
        assert_ne!(identity(Lock::release_word(&word)), me, "robbed");
    }
}
