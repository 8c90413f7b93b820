//! The two barriers in shared memory.
//!
//! - Start: every worker arrives, then the parent releases all of them at once, so spawning is
//!   measured apart from the window where workers contend.
//! - Done: a worker whose loop has ended (its end stamped) counts itself and waits until every
//!   worker has, before any post-loop work (its histogram, its report, its exit). With more
//!   workers than cores, a finished worker's post-loop work would otherwise take a CPU from one
//!   still in its loop and lengthen the measured window. A worker that dies (or panics) never
//!   counts itself: whoever sees it end counts it ([`count_out`]), so the barrier opens all
//!   the same; every wait is bounded besides.

use std::sync::atomic::Ordering::{Acquire, Relaxed, Release, SeqCst};
use std::time::{Duration, Instant};

use crate::futex::{self, Scope, Shared};
use crate::region::{Header, WorkerArea};

/// How long a finished worker waits at the done barrier at most. Only a safety net: every
/// worker that ends is counted (by itself or by [`count_out`]), and a stop request opens the
/// barrier. Leaving early costs nothing but window accuracy.
const DONE_LIMIT: Duration = Duration::from_secs(30);

/// One bounded sleep at the done barrier, between looks at the stop word and the parent.
const DONE_STEP: Duration = Duration::from_millis(50);

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

/// Counts one more ended worker; the one that completes the count wakes the waiters. Adds
/// exactly 1, so exactly one call crosses `worker_count` (a worker counted twice, killed
/// between its count and its flag, only opens the barrier early).
fn count_one(header: &Header) {
    // SeqCst: one RMW per worker per run, like the arrivals.
    if header.ended.fetch_add(1, SeqCst) + 1 == header.worker_count {
        Shared::wake_all(&header.ended);
    }
}

/// A worker's loop has ended: it counts itself, then waits until every worker's has (or the
/// parent asks everyone to stop, or the parent is gone, or `DONE_LIMIT` passes). The wake is
/// shared in both modes: the parent may count a dead worker and wake from another process.
pub fn finish(header: &Header, area: &WorkerArea, alive: impl Fn() -> bool) {
    count_one(header);
    // Relaxed: read by the parent only after this process exited (which publishes all it
    // stored), or by this thread's own `count_out`. Stored after the count: a death between
    // the two is counted twice (early release), never not at all (a wait to the limit).
    area.ended.store(1, Relaxed);
    let deadline = Instant::now() + DONE_LIMIT;
    loop {
        let seen = header.ended.load(SeqCst);
        // Relaxed: a request, polled (as in the loop).
        if seen >= header.worker_count || header.stop.load(Relaxed) != 0 {
            return;
        }
        futex::shared_wait_for(&header.ended, seen, DONE_STEP);
        if !alive() || Instant::now() >= deadline {
            return;
        }
    }
}

/// Worker `area`'s run is over (it exited, died or panicked): counts it at the done barrier
/// unless it counted itself, so no finished worker waits for it.
pub fn count_out(header: &Header, area: &WorkerArea) {
    // Relaxed: see `finish`; a swap, so the parent and the worker's own clean-up (a panic in
    // a thread) never both count it.
    if area.ended.swap(1, Relaxed) == 0 {
        count_one(header);
    }
}

/// A worker's two barriers, as its loop passes them: the pool's, in the worker.
pub trait Gate {
    /// Arrives at the start barrier and waits for the release; false: the parent is gone
    /// (the worker returns without starting).
    fn start(&self) -> bool;
    /// Its loop has ended: the done barrier ([`finish`]).
    fn done(&self);
}

/// A gate whose start barrier its worker already passed (a target's worker connects, then
/// passes it, before its loop): starting again returns at once; the done barrier is `0`'s.
pub struct Started<'a>(pub &'a dyn Gate);

impl Gate for Started<'_> {
    fn start(&self) -> bool {
        true
    }
    fn done(&self) {
        self.0.done()
    }
}
