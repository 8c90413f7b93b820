//! Named points inside a strategy's update where a test can hold a worker.
//!
//! `--hold-after-read` scripts the Hermitage lost-update interleaving: each worker's first
//! update stops right after its read until every worker has read too, so a read-then-write
//! loses an update on every run, not by luck. A worker that holds a lock cannot wait for the
//! others to read (they are queued behind it), so it waits until one of them is queued: the
//! lock word shows a waiter.
//!
//! The probe is also the worker's voice to the parent during an update (`for_worker`): its
//! lock identity, its intent record, what it waits for and holds (the watchdog's dump), and
//! the named points where `--crash-at` / `--stop-at` strike (`fault::Point`).

use std::cell::Cell;
use std::sync::atomic::AtomicU32;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::time::{Duration, Instant};

use crate::fault::{Point, Strike, StrikeAt};
use crate::futex;
use crate::region::{intent, Header, Slot, WorkerArea};
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
                        strike(s.strike);
                    }
                }
            }
        }
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
    /// holds the slot's lock, that lock word and its value meaning "someone is queued". Only
    /// the word is passed (not the `Slot`) so an unarmed probe costs no address arithmetic.
    #[inline]
    pub fn after_read(&self, lock_waiter: Option<(&AtomicU32, u32)>) {
        if self.armed.get() {
            self.hold(lock_waiter);
        }
    }

    #[cold]
    fn hold(&self, lock_waiter: Option<(&AtomicU32, u32)>) {
        self.armed.set(false);
        let held = &self.header.held;
        // SeqCst: test-only path; the simplest reasoning is worth more than speed here.
        let arrived = held.fetch_add(1, SeqCst) + 1;
        if arrived >= self.workers {
            <futex::Shared as futex::Scope>::wake_all(held);
            return;
        }
        let deadline = Instant::now() + HOLD_LIMIT;
        loop {
            let now_held = held.load(SeqCst);
            if now_held >= self.workers {
                return;
            }
            if let Some((lock, waiter)) = lock_waiter {
                if lock.load(Relaxed) == waiter {
                    return;
                }
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
