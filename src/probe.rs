//! Named points inside a strategy's update where a test can hold a worker.
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
//! The probe is also the worker's voice to the parent during an update (`for_worker`): its
//! lock identity, its intent record, what it waits for and holds (the watchdog's dump), and
//! the named points where `--crash-at` / `--stop-at` strike (`fault::Point`).

use std::cell::Cell;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::time::{Duration, Instant};

use crate::fault::{Point, Strike, StrikeAt};
use crate::futex;
use crate::region::{intent, status, Header, Region, Slot, WorkerArea};
use crate::step;
use crate::store::Recorder;

/// How long a held worker waits for the others before giving up on the script.
const HOLD_LIMIT: Duration = Duration::from_secs(10);

pub struct Probe<'a> {
    header: &'a Header,
    workers: u32,
    /// Armed until the first hold has happened (one hold per worker).
    armed: Cell<bool>,
    /// Whether a hold gave up waiting (the script did not happen as written).
    pub timed_out: Cell<bool>,
    /// Where winning updates are persisted, when the run has a store.
    recorder: Option<&'a Recorder<'a>>,
    /// The worker this probe speaks for, once `for_worker` named it.
    me: Option<Me<'a>>,
    /// The region, when a lock holder's hold waits for the others by their areas (`queued`).
    region: Option<&'a Region>,
    /// Set after such a hold: the next update waits until every worker has held.
    barrier_next: Cell<bool>,
}

/// The worker behind a probe: where it reports, and how it names itself in lock words.
struct Me<'a> {
    area: &'a WorkerArea,
    owner_id: u32,
    strike: Option<StrikeAt>,
    /// Visits to the strike's point so far.
    visits: Cell<u32>,
}

impl<'a> Probe<'a> {
    /// A probe that never holds.
    pub fn off(header: &'a Header) -> Probe<'a> {
        Probe {
            header,
            workers: 0,
            armed: Cell::new(false),
            timed_out: Cell::new(false),
            recorder: None,
            me: None,
            region: None,
            barrier_next: Cell::new(false),
        }
    }

    /// A probe that holds the first update after its read.
    pub fn hold_after_read(header: &'a Header, workers: u32) -> Probe<'a> {
        Probe {
            header,
            workers,
            armed: Cell::new(true),
            timed_out: Cell::new(false),
            recorder: None,
            me: None,
            region: None,
            barrier_next: Cell::new(false),
        }
    }

    /// Names the worker this probe speaks for: its area, its lock identity (`step::owner_id`)
    /// and the strike it carries, if `--crash-at` / `--stop-at` chose it.
    pub fn for_worker(
        mut self,
        area: &'a WorkerArea,
        owner_id: u32,
        strike: Option<StrikeAt>,
    ) -> Probe<'a> {
        self.me = Some(Me {
            area,
            owner_id,
            strike,
            visits: Cell::new(0),
        });
        self
    }

    /// The identity this worker writes into lock words it takes.
    #[inline]
    pub fn owner_id(&self) -> u32 {
        self.me
            .as_ref()
            .map_or(step::owner_id(0, 0), |m| m.owner_id)
    }

    /// Whether the parent asked every worker to stop (SIGINT).
    #[inline]
    pub fn stop_requested(&self) -> bool {
        // Relaxed: a request, not a publication; seeing it one update late is fine.
        self.header.stop.load(Relaxed) != 0
    }

    /// Records the intent of update `op` (1-based) on `slot`, before anything is touched.
    #[inline]
    pub fn begin(&self, slot: usize, op: u64) {
        if self.barrier_next.get() {
            self.wait_all_held();
        }
        if let Some(m) = &self.me {
            // Relaxed: the parent reads these only after the worker is dead (seen with waitid)
            // or done (the Acquire of DONE); a process's death publishes all it stored.
            m.area.intent_slot.store(slot as u32, Relaxed);
            m.area.intent_stage.store(intent::CHOSEN, Relaxed);
            m.area.intent_op.store(op, Relaxed);
        }
    }

    /// Records the values of the update in flight, after the read and before the write.
    #[inline]
    pub fn intent(&self, old: u32, new: u32) {
        if let Some(m) = &self.me {
            // Relaxed: as in `begin`.
            m.area.intent_old.store(old, Relaxed);
            m.area.intent_new.store(new, Relaxed);
            m.area.intent_stage.store(intent::READ, Relaxed);
        }
    }

    /// This worker waits for the lock of `slot` (None: it waits for nothing).
    #[inline]
    pub fn waiting(&self, slot: Option<usize>) {
        if let Some(m) = &self.me {
            // Relaxed: read by the watchdog for a dump only.
            m.area
                .waiting_on
                .store(slot.map_or(0, |s| s as u32 + 1), Relaxed);
        }
    }

    /// This worker holds the lock of `slot` (None: it holds none). Clears `waiting`.
    #[inline]
    pub fn holding(&self, slot: Option<usize>) {
        if let Some(m) = &self.me {
            // Relaxed: read by the watchdog and the death report only.
            m.area.waiting_on.store(0, Relaxed);
            m.area
                .holding
                .store(slot.map_or(0, |s| s as u32 + 1), Relaxed);
        }
    }

    /// A robust mutex came back EOWNERDEAD and this worker made it consistent.
    #[cold]
    pub fn repaired(&self) {
        if let Some(m) = &self.me {
            // Relaxed: a counter the parent reads after the worker is done.
            m.area.repairs.fetch_add(1, Relaxed);
        }
    }

    /// This worker's release found its lock word naming someone else: it was robbed.
    #[cold]
    pub fn robbed(&self) {
        if let Some(m) = &self.me {
            // Relaxed: a counter the parent reads after the worker is done or dead.
            m.area.robbed.fetch_add(1, Relaxed);
        }
    }

    /// The worker reached `point`: the strike, if this is its N-th visit there.
    #[inline]
    pub fn point(&self, point: Point) {
        if let Some(m) = &self.me {
            // Relaxed: a request polled here; the claim below is the CAS that decides.
            if point == Point::HoldingLock && self.header.pause_request.load(Relaxed) == 1 {
                self.pause_holding(m);
            }
            if let Some(s) = m.strike {
                if s.point == point {
                    let v = m.visits.get() + 1;
                    m.visits.set(v);
                    if v == s.n {
                        // Relaxed: read by the parent after the death (waitid), which
                        // publishes everything the dead process stored.
                        m.area.struck.store(1, Relaxed);
                        strike(s.strike);
                    }
                }
            }
        }
    }

    /// The same probe, whose lock holders hold until every other worker has passed its hold
    /// or is queued behind them, and one is queued (see the module doc).
    pub fn queued_by_areas(mut self, region: &'a Region) -> Probe<'a> {
        self.region = Some(region);
        self
    }

    /// The same probe, persisting every winning update through `recorder`.
    pub fn with_recorder(mut self, recorder: &'a Recorder<'a>) -> Probe<'a> {
        self.recorder = Some(recorder);
        self
    }

    /// Called by a strategy once its update has won: lock strategies before they unlock (the
    /// incident's "write DB, then notify"), the others right after their winning step. Persists
    /// the event when the run has a store; otherwise does nothing.
    #[inline]
    pub fn won(&self, slot: Slot<'_>, read: u32, written: u32, retries: u32) {
        if let Some(r) = self.recorder {
            r.won(slot.index, read, written, retries);
        }
    }

    /// Called by a strategy right after it read the slot. `lock_waiter` is, when the caller
    /// holds the slot's lock, that slot and the lock word's value meaning "someone is queued".
    /// Strategies without a lock pass None and so never build a `Slot`: an unarmed probe costs
    /// them no address arithmetic.
    #[inline]
    pub fn after_read(&self, lock_waiter: Option<(Slot<'_>, u32)>) {
        if self.armed.get() {
            self.hold(lock_waiter);
        }
    }

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
                self.timed_out.set(true);
                return;
            }
            // Bounded: the lock-waiter condition is not signalled on `held`, so poll it.
            futex::shared_wait_for(held, now_held, Duration::from_millis(1));
        }
    }
}

impl Probe<'_> {
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
            if now_held >= self.workers {
                return;
            }
            if Instant::now() >= deadline {
                self.timed_out.set(true);
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
        let me = self.me.as_ref();
        let me_w = me.and_then(|m| step::owner_worker(m.owner_id));
        let struck_here = me
            .and_then(|m| m.strike)
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
    fn pause_holding(&self, m: &Me<'_>) {
        let me = step::owner_worker(m.owner_id).unwrap_or(0) as u32 + 2;
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
