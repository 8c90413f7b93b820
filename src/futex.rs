//! Wait and wake on a 32-bit word, with the futex's scope as a type.
//!
//! - [`Shared`] crosses processes: linux-futex's `Futex<Shared>` (no `FUTEX_PRIVATE_FLAG`), so
//!   the kernel keys the wait queue on the physical page of the MAP_SHARED region.
//! - [`Private`] stays inside one process: atomic-wait, which always passes
//!   `FUTEX_PRIVATE_FLAG`. A private wake never reaches a waiter in another process.
//!
//! Contract of `wait`: it returns at once if the word no longer holds `expected`, and it may
//! return spuriously (a signal, a timeout, a stale wake). Callers always re-check and loop.
//!
//! Under `cfg(loom)` only the `Scope` trait exists: `tests/loom.rs` supplies a model futex.

#[cfg(not(loom))]
use std::time::Duration;

#[cfg(not(loom))]
use linux_futex::AsFutex;

use crate::sync::AtomicU32;

#[cfg(not(loom))]
/// How long one process-mode wait may sleep before it re-checks its word. A wake that never
/// comes (its sender died) therefore costs at most this much, never a hang.
pub const SHARED_WAIT_BOUND: Duration = Duration::from_millis(50);

#[cfg(not(loom))]
/// How long a worker parked at the start barrier sleeps between looks at its parent. Long:
/// 10,000 parked workers waking every 50 ms would take the CPU from the parent still forking
/// them; PR_SET_PDEATHSIG already covers a dead parent, this is only the backstop.
pub const PARKED_WAIT_BOUND: Duration = Duration::from_secs(1);

/// A futex scope: where a wake can reach.
pub trait Scope: Copy + Send + Sync + 'static {
    /// Sleeps while `word == expected` (see the module contract).
    fn wait(word: &AtomicU32, expected: u32);
    /// Sleeps while `word == expected`, for a worker parked with nothing to do (the start
    /// barrier). Same contract as `wait`; the bound, where there is one, is longer.
    fn wait_parked(word: &AtomicU32, expected: u32) {
        Self::wait(word, expected);
    }
    /// Wakes at most one waiter on `word`.
    fn wake_one(word: &AtomicU32);
    /// Wakes every waiter on `word`.
    fn wake_all(word: &AtomicU32);
}

#[cfg(not(loom))]
/// Across processes; every wait bounded by [`SHARED_WAIT_BOUND`].
#[derive(Clone, Copy, Debug)]
pub struct Shared;

#[cfg(not(loom))]
/// Within one process (thread mode).
#[derive(Clone, Copy, Debug)]
pub struct Private;

#[cfg(not(loom))]
impl Scope for Shared {
    #[inline]
    fn wait(word: &AtomicU32, expected: u32) {
        // WrongValue, Interrupted (EINTR) and TimedOut all mean "look again": the caller loops.
        let _ =
            AsFutex::<linux_futex::Shared>::as_futex(word).wait_for(expected, SHARED_WAIT_BOUND);
    }
    fn wait_parked(word: &AtomicU32, expected: u32) {
        let _ =
            AsFutex::<linux_futex::Shared>::as_futex(word).wait_for(expected, PARKED_WAIT_BOUND);
    }
    #[inline]
    fn wake_one(word: &AtomicU32) {
        AsFutex::<linux_futex::Shared>::as_futex(word).wake(1);
    }
    #[inline]
    fn wake_all(word: &AtomicU32) {
        AsFutex::<linux_futex::Shared>::as_futex(word).wake(i32::MAX);
    }
}

#[cfg(not(loom))]
impl Scope for Private {
    #[inline]
    fn wait(word: &AtomicU32, expected: u32) {
        atomic_wait::wait(word, expected);
    }
    #[inline]
    fn wake_one(word: &AtomicU32) {
        atomic_wait::wake_one(word);
    }
    #[inline]
    fn wake_all(word: &AtomicU32) {
        atomic_wait::wake_all(word);
    }
}

#[cfg(not(loom))]
/// Waits with a shared futex for at most `timeout`; true if woken (or the word changed) before
/// it expired. Used by the parent, which must never block without a bound.
pub fn shared_wait_for(word: &AtomicU32, expected: u32, timeout: Duration) -> bool {
    let f = AsFutex::<linux_futex::Shared>::as_futex(word);
    !matches!(
        f.wait_for(expected, timeout),
        Err(linux_futex::TimedWaitError::TimedOut)
    )
}
