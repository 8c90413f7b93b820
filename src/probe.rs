//! The hooks a strategy calls during one update, and the named points inside it where a test
//! can hold a worker.
//!
//! `--hold-after-read` scripts the Hermitage lost-update interleaving: each worker's first
//! update stops right after its read until every worker has read too, so a read-then-write
//! loses an update on every run, not by luck. A worker that holds a lock cannot wait for the
//! others to read (they are queued behind it), so it waits until one of them is queued: the
//! lock word shows a waiter. In a run with a strike (`--crash-at`), a lock holder instead waits
//! until every other worker has passed its own hold or is queued behind it, and one is queued
//! (unless all are done): so the worker struck after its read dies holding the lock with a
//! live waiter behind it on every run, whichever turn it gets.
//!
//! The probe is also the worker's voice to the parent during an update: its lock identity, its
//! intent record, what it waits for and holds (the watchdog's dump), and the named points where
//! `--crash-at` / `--stop-at` strike (`fault::Point`). Only a run with faults armed pays for
//! it: the others run [`Quiet`], whose hooks compile away.

use std::cell::Cell;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::time::{Duration, Instant};

use crate::fault::{Point, Strike, StrikeAt};
use crate::futex;
use crate::region::{intent, status, Header, Region, Slot, WorkerArea};
use crate::step;
use crate::store::Persistence;

/// How long a held worker waits for the others before giving up on the script.
const HOLD_LIMIT: Duration = Duration::from_secs(10);

/// What a strategy tells the run while it makes one update. Chosen once per run: [`Quiet`]
/// when no fault is armed (its hooks compile to nothing but the store's), [`Probe`] when one is.
pub trait Hooks {
    /// The identity this worker writes into lock words it takes (`step::owner_id`).
    fn owner_id(&self) -> u32;
    /// Update `op` (1-based) on `slot` begins, before anything is touched.
    fn begin(&self, slot: usize, op: u64);
    /// The values of the update in flight, after the read and before the write.
    fn intent(&self, old: u32, new: u32);
    /// Right after the slot was read. `lock_waiter` is, when the caller holds the slot's lock,
    /// that slot and the lock word's value meaning "someone is queued".
    fn after_read(&self, lock_waiter: Option<(Slot<'_>, u32)>);
    /// The worker reached a named point of its update (`--crash-at`, `--stop-at`, `--pause`).
    fn point(&self, point: Point);
    /// This worker waits for the lock of `slot` (None: it waits for nothing).
    fn waiting(&self, slot: Option<usize>);
    /// This worker holds the lock of `slot` (None: it holds none). Clears `waiting`.
    fn holding(&self, slot: Option<usize>);
    /// A robust mutex came back EOWNERDEAD and this worker made it consistent.
    fn repaired(&self);
    /// This worker's release found its lock word naming someone else: it was robbed.
    fn robbed(&self);
    /// The update has won: lock strategies call it before they unlock (the incident's "write
    /// DB, then notify"), the others right after their winning step. Persists it, if stored.
    fn won(&self, slot: usize, read: u32, written: u32, retries: u32);
    /// The store failed: the worker must stop.
    fn store_failed(&self) -> bool;
}

/// The hooks of a run without armed faults: the counters a death or a stall needs anyway
/// (robust repairs, robberies, both cold), the store's calls, nothing else.
pub struct Quiet<'a, P> {
    area: &'a WorkerArea,
    owner_id: u32,
    persist: &'a P,
}

impl<'a, P: Persistence> Quiet<'a, P> {
    pub fn new(area: &'a WorkerArea, owner_id: u32, persist: &'a P) -> Self {
        Quiet {
            area,
            owner_id,
            persist,
        }
    }
}

impl<P: Persistence> Hooks for Quiet<'_, P> {
    #[inline(always)]
    fn owner_id(&self) -> u32 {
        self.owner_id
    }
    #[inline(always)]
    fn begin(&self, _: usize, _: u64) {
        self.persist.begin();
    }
    #[inline(always)]
    fn intent(&self, _: u32, _: u32) {}
    #[inline(always)]
    fn after_read(&self, _: Option<(Slot<'_>, u32)>) {}
    #[inline(always)]
    fn point(&self, _: Point) {}
    #[inline(always)]
    fn waiting(&self, _: Option<usize>) {}
    #[inline(always)]
    fn holding(&self, _: Option<usize>) {}
    #[cold]
    fn repaired(&self) {
        // Relaxed: a counter the parent reads after the worker is done or dead.
        self.area.repairs.fetch_add(1, Relaxed);
    }
    #[cold]
    fn robbed(&self) {
        // Relaxed: as in `repaired`.
        self.area.robbed.fetch_add(1, Relaxed);
    }
    #[inline(always)]
    fn won(&self, slot: usize, read: u32, written: u32, retries: u32) {
        self.persist.won(slot, read, written, retries);
    }
    #[inline(always)]
    fn store_failed(&self) -> bool {
        self.persist.failed()
    }
}

/// The hooks of a run with faults armed (or a scripted interleaving): the intent record, the
/// watchdog's view of who waits and holds, the named points where strikes and pauses happen,
/// the scripted hold, and a `--kill` victim's wait for its kill.
pub struct Probe<'a, P> {
    /// What every run's hooks do (identity, cold counters, the store): delegated to.
    quiet: Quiet<'a, P>,
    header: &'a Header,
    workers: u32,
    /// Armed until the first hold has happened (one hold per worker).
    armed: Cell<bool>,
    area: &'a WorkerArea,
    strike: Option<StrikeAt>,
    /// Visits to the strike's point so far.
    visits: Cell<u32>,
    /// `--kill`: the op before which this victim waits to be killed, if it is one.
    park_before: Option<u64>,
    /// The region, when a lock holder's hold waits for the others by their areas (`queued`).
    region: Option<&'a Region>,
    /// Set after such a hold: the next update waits until every worker has held.
    barrier_next: Cell<bool>,
}

impl<'a, P: Persistence> Probe<'a, P> {
    /// Worker `w`'s probe: it names itself in lock words as `owner_id`, holds its first update
    /// after the read with `hold_after_read`, and carries the strike aimed at it.
    pub fn new(
        region: &'a Region,
        w: usize,
        owner_id: u32,
        persist: &'a P,
        hold_after_read: bool,
        strike: Option<StrikeAt>,
    ) -> Self {
        Probe {
            quiet: Quiet::new(region.worker(w), owner_id, persist),
            header: region.header(),
            workers: region.worker_count() as u32,
            armed: Cell::new(hold_after_read),
            area: region.worker(w),
            strike,
            visits: Cell::new(0),
            park_before: None,
            region: None,
            barrier_next: Cell::new(false),
        }
    }

    /// The same probe, whose lock holders hold until every other worker has passed its hold
    /// or is queued behind them, and one is queued (see the module doc).
    pub fn queued_by_areas(mut self, region: &'a Region) -> Self {
        self.region = Some(region);
        self
    }

    /// The same probe, waiting before update `op` to be killed (`--kill`'s victim).
    pub fn parking_before(mut self, op: Option<u64>) -> Self {
        self.park_before = op;
        self
    }
}

impl<P: Persistence> Hooks for Probe<'_, P> {
    #[inline]
    fn owner_id(&self) -> u32 {
        self.quiet.owner_id
    }

    #[inline]
    fn begin(&self, slot: usize, op: u64) {
        if self.barrier_next.get() {
            self.wait_all_held();
        }
        if self.park_before == Some(op) {
            self.park();
        }
        // Relaxed: the parent reads these only after the worker is dead (seen with waitid)
        // or done (the Acquire of DONE); a process's death publishes all it stored.
        self.area.intent_slot.store(slot as u32, Relaxed);
        self.area.intent_stage.store(intent::CHOSEN, Relaxed);
        self.area.intent_op.store(op, Relaxed);
        self.quiet.begin(slot, op);
    }

    #[inline]
    fn intent(&self, old: u32, new: u32) {
        // Relaxed: as in `begin`.
        self.area.intent_old.store(old, Relaxed);
        self.area.intent_new.store(new, Relaxed);
        self.area.intent_stage.store(intent::READ, Relaxed);
    }

    #[inline]
    fn after_read(&self, lock_waiter: Option<(Slot<'_>, u32)>) {
        if self.armed.get() {
            self.hold(lock_waiter);
        }
    }

    #[inline]
    fn point(&self, point: Point) {
        // Relaxed: a request polled here; the claim below is the CAS that decides.
        if point == Point::HoldingLock && self.header.pause_request.load(Relaxed) == 1 {
            self.pause_holding();
        }
        if let Some(s) = self.strike {
            if s.point == point {
                let v = self.visits.get() + 1;
                self.visits.set(v);
                if v == s.n {
                    // Relaxed: read by the parent after the death (waitid), which publishes
                    // everything the dead process stored.
                    self.area.struck.store(1, Relaxed);
                    strike(s.strike);
                }
            }
        }
    }

    #[inline]
    fn waiting(&self, slot: Option<usize>) {
        // Relaxed: read by the watchdog for a dump only.
        self.area
            .waiting_on
            .store(slot.map_or(0, |s| s as u32 + 1), Relaxed);
    }

    #[inline]
    fn holding(&self, slot: Option<usize>) {
        // Relaxed: read by the watchdog and the death report only.
        self.area.waiting_on.store(0, Relaxed);
        self.area
            .holding
            .store(slot.map_or(0, |s| s as u32 + 1), Relaxed);
    }

    #[cold]
    fn repaired(&self) {
        self.quiet.repaired();
    }

    #[cold]
    fn robbed(&self) {
        self.quiet.robbed();
    }

    #[inline]
    fn won(&self, slot: usize, read: u32, written: u32, retries: u32) {
        self.quiet.won(slot, read, written, retries);
    }

    #[inline]
    fn store_failed(&self) -> bool {
        self.quiet.store_failed()
    }
}

impl<P: Persistence> Probe<'_, P> {
    #[cold]
    fn hold(&self, lock_waiter: Option<(Slot<'_>, u32)>) {
        self.armed.set(false);
        let held = &self.header.held;
        // SeqCst: test-only path; the simplest reasoning is worth more than speed here.
        let arrived = held.fetch_add(1, SeqCst) + 1;
        // A holder that waits by the areas waits for a queued worker even when it is the last
        // to hold (the struck worker must die with one behind it).
        let by_areas = lock_waiter.is_some() && self.region.is_some();
        if arrived >= self.workers {
            <futex::Shared as futex::Scope>::wake_all(held);
            if !by_areas {
                return;
            }
        }
        // Past the limit the script did not happen as written; the run's check says whether
        // the loss happened anyway.
        let deadline = Instant::now() + HOLD_LIMIT;
        loop {
            let now_held = held.load(SeqCst);
            if now_held >= self.workers && !by_areas {
                return;
            }
            match (lock_waiter, self.region) {
                (Some((slot, _)), Some(region)) => {
                    if self.others_queued(region, slot.index) {
                        self.barrier_next.set(true);
                        return;
                    }
                }
                (Some((slot, waiter)), None) => {
                    if slot.lock.load(Relaxed) == waiter {
                        return;
                    }
                }
                (None, _) => {}
            }
            if Instant::now() >= deadline {
                return;
            }
            // Bounded: the lock-waiter condition is not signalled on `held`, so poll it.
            futex::shared_wait_for(held, now_held, Duration::from_millis(1));
        }
    }

    /// `--kill`'s victim, not killed yet at its last update: waits here, holding nothing, for
    /// the watcher's kill (it looks every few ms). A stop request (SIGINT) releases it.
    #[cold]
    fn park(&self) {
        // Relaxed: a flag the watcher polls; the kill is what follows, not a publication.
        self.area.parked.store(1, Relaxed);
        // Relaxed: a request polled here.
        while self.header.stop.load(Relaxed) == 0 {
            futex::shared_wait_for(&self.area.parked, 1, Duration::from_millis(10));
        }
        self.area.parked.store(0, Relaxed);
    }

    /// After a hold by the areas: wait until every worker has held once (bounded), so those
    /// done with their hold cannot take the lock again and again ahead of one still queued
    /// (the lock is not fair) and finish before it has held.
    #[cold]
    fn wait_all_held(&self) {
        self.barrier_next.set(false);
        let held = &self.header.held;
        let deadline = Instant::now() + HOLD_LIMIT;
        loop {
            // SeqCst: as in `hold`.
            let now_held = held.load(SeqCst);
            if now_held >= self.workers || Instant::now() >= deadline {
                return;
            }
            // The last to hold wakes `held`; bounded all the same.
            futex::shared_wait_for(held, now_held, Duration::from_millis(1));
        }
    }

    /// Whether every other worker has passed its hold (read in its first update, even if it
    /// died there), is queued for `slot`'s lock, or is done. The worker about to be struck
    /// right here also wants one of them queued, unless all are done: its death must leave a
    /// live waiter behind it (none can finish meanwhile: each needs the lock it holds).
    fn others_queued(&self, region: &Region, slot: usize) -> bool {
        let me_w = step::owner_worker(self.quiet.owner_id);
        let struck_here = self
            .strike
            .is_some_and(|s| s.point == Point::AfterRead && s.n == 1);
        let (mut queued, mut running) = (0, 0);
        for o in (0..region.worker_count()).filter(|&o| Some(o) != me_w) {
            let area = region.worker(o);
            // Relaxed: a script's progress readings; a stale one only holds a little longer.
            if matches!(area.status.load(Relaxed), status::DONE | status::FAILED) {
                continue;
            }
            running += 1;
            if area.waiting_on.load(Relaxed) == slot as u32 + 1 {
                queued += 1;
            } else if area.completed.load(Relaxed) == 0
                && area.intent_stage.load(Relaxed) != intent::READ
            {
                return false; // it has not reached its hold yet
            }
        }
        !struck_here || queued > 0 || running == 0
    }

    /// Claims the watcher's pause request and stops here, holding the lock.
    #[cold]
    fn pause_holding(&self) {
        let me = step::owner_worker(self.quiet.owner_id).unwrap_or(0) as u32 + 2;
        // SeqCst: rare; one claimant wins and the watcher reads who.
        if self
            .header
            .pause_request
            .compare_exchange(1, me, SeqCst, SeqCst)
            .is_ok()
        {
            strike(Strike::Stop);
        }
    }
}

/// The worker strikes itself: SIGKILL (it dies here) or SIGSTOP (it hangs here).
#[cold]
fn strike(how: Strike) {
    use nix::sys::signal::{raise, Signal};
    let _ = raise(match how {
        Strike::Kill => Signal::SIGKILL,
        Strike::Stop => Signal::SIGSTOP,
    });
}
