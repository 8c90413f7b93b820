//! The start barrier in shared memory: every worker arrives, then the parent releases all of
//! them at once, so spawning is measured apart from the window where workers contend.

use std::sync::atomic::Ordering::{Acquire, Release, SeqCst};
use std::time::Duration;

use crate::futex::{self, Scope, Shared};
use crate::region::Header;

/// A worker arrives; the last one wakes the parent. The parent always waits on `arrived` with
/// a bounded shared futex, so the wake is shared too (a private wake would not match).
pub fn arrive(header: &Header) {
    // SeqCst: one RMW per worker per run; keeps the arrival count trivially totally ordered.
    let arrived = header.arrived.fetch_add(1, SeqCst) + 1;
    if arrived == header.worker_count {
        Shared::wake_all(&header.arrived);
    }
}

/// A worker waits until the parent says go. `alive` is polled after each bounded sleep in
/// process mode: a worker whose parent vanished must not wait for ever.
pub fn wait_go<S: Scope>(header: &Header, alive: impl Fn() -> bool) -> bool {
    // Acquire: pairs with the Release store in `release`.
    while header.go.load(Acquire) == 0 {
        S::wait_parked(&header.go, 0);
        if !alive() {
            return false;
        }
    }
    true
}

/// The parent waits up to `step` for more arrivals; returns how many have arrived.
pub fn arrivals(header: &Header, step: Duration) -> u32 {
    let seen = header.arrived.load(SeqCst);
    if seen < header.worker_count {
        futex::shared_wait_for(&header.arrived, seen, step);
    }
    header.arrived.load(SeqCst)
}

/// The parent lets every worker go.
pub fn release<S: Scope>(header: &Header) {
    // Release: pairs with the Acquire load in `wait_go`.
    header.go.store(1, Release);
    S::wake_all(&header.go);
}
