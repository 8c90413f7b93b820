//! A lock word taken by CAS that sleeps on a futex when contended: `SELECT … FOR UPDATE`.
//!
//! The protocol of Rust std's futex mutex:
//! - `lock`: CAS UNLOCKED→LOCKED; if that fails, spin a little (load only), then mark the word
//!   CONTENDED with a swap and sleep while it stays CONTENDED.
//! - `unlock`: swap to UNLOCKED; wake one waiter only if the word was CONTENDED, so an
//!   uncontended unlock makes no syscall. The woken waiter re-marks the word CONTENDED when it
//!   takes it, so the remaining sleepers are woken in turn.
//!
//! The scope decides where a wake can reach: `Shared` across processes, with every sleep
//! bounded so a lost wake costs a bounded delay, or `Private` for threads.

use std::marker::PhantomData;
use std::sync::atomic::AtomicU32;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};

use super::{Applied, Strategy};
use crate::futex::Scope;
use crate::probe::Probe;
use crate::region::Slot;

pub const UNLOCKED: u32 = 0;
pub const LOCKED: u32 = 1; // no waiters
pub const CONTENDED: u32 = 2; // waiters may sleep

/// Load-only spins before sleeping. Few: with far more workers than cores, the holder is
/// usually preempted, and spinning only burns the time slice it needs to finish.
const SPIN_LIMIT: u32 = 40;

/// The lock protocol on a word, in a given futex scope.
pub struct LockWord<S>(PhantomData<S>);

impl<S: Scope> LockWord<S> {
    /// Takes the lock; returns (failed attempts, futex waits).
    #[inline]
    pub fn lock(word: &AtomicU32) -> (u32, u32) {
        // Acquire: pairs with the Release swap in `unlock`, so the previous holder's writes
        // to the slot are visible in our critical section.
        if word
            .compare_exchange(UNLOCKED, LOCKED, Acquire, Relaxed)
            .is_ok()
        {
            return (0, 0);
        }
        Self::lock_contended(word)
    }

    #[cold]
    fn lock_contended(word: &AtomicU32) -> (u32, u32) {
        let mut retries = 1;
        let mut waits = 0;
        let mut state = Self::spin(word);
        if state == UNLOCKED {
            match word.compare_exchange(UNLOCKED, LOCKED, Acquire, Relaxed) {
                Ok(_) => return (retries, waits),
                Err(s) => {
                    state = s;
                    retries += 1;
                }
            }
        }
        loop {
            // Mark CONTENDED before sleeping so the holder's unlock knows to wake someone.
            // Acquire: as in `lock`. If it was UNLOCKED we now hold it (as CONTENDED, which
            // may cost one unneeded wake, never a missed one).
            if state != CONTENDED && word.swap(CONTENDED, Acquire) == UNLOCKED {
                return (retries, waits);
            }
            waits += 1;
            S::wait(word, CONTENDED);
            state = Self::spin(word);
            retries += 1;
        }
    }

    /// Spins while the word is LOCKED with no waiters; returns the state seen last.
    fn spin(word: &AtomicU32) -> u32 {
        let mut spins = SPIN_LIMIT;
        loop {
            // Relaxed load only: easier on the cache line than a CAS; the CAS that takes the
            // lock is what orders.
            let state = word.load(Relaxed);
            if state != LOCKED || spins == 0 {
                return state;
            }
            std::hint::spin_loop();
            spins -= 1;
        }
    }

    /// Releases the lock; returns true if it woke a waiter.
    #[inline]
    pub fn unlock(word: &AtomicU32) -> bool {
        // Release: pairs with the Acquire in `lock`, publishing the critical section.
        if word.swap(UNLOCKED, Release) == CONTENDED {
            // Waiters may sleep: wake one. It marks the word CONTENDED again when it takes the
            // lock, so the others are woken in turn.
            S::wake_one(word);
            return true;
        }
        false
    }
}

/// Updates the slot inside the lock.
pub struct FutexLock<S>(PhantomData<S>);

impl<S> FutexLock<S> {
    pub fn new() -> Self {
        FutexLock(PhantomData)
    }
}

impl<S> Default for FutexLock<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: Scope> Strategy for FutexLock<S> {
    #[inline]
    fn apply(&self, slot: Slot<'_>, probe: &Probe<'_>) -> Applied {
        let (retries, waits) = LockWord::<S>::lock(slot.lock);
        // Relaxed: the lock's Acquire/Release order these accesses.
        let read = slot.value.load(Relaxed);
        probe.after_read(slot, Some(CONTENDED));
        let written = read.wrapping_add(1);
        slot.value.store(written, Relaxed);
        probe.won(slot, read, written, retries);
        let woke = LockWord::<S>::unlock(slot.lock);
        Applied {
            read,
            written,
            retries,
            waits,
            wakes: woke as u32,
        }
    }
}
