//! Named points inside a strategy's update where a test can hold a worker.
//!
//! `--hold-after-read` scripts the Hermitage lost-update interleaving: each worker's first
//! update stops right after its read until every worker has read too, so a read-then-write
//! loses an update on every run, not by luck. A worker that holds a lock cannot wait for the
//! others to read (they are queued behind it), so it waits until one of them is queued: the
//! lock word shows a waiter.

use std::cell::Cell;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::time::{Duration, Instant};

use crate::futex;
use crate::region::{Header, Slot};
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

    /// Called by a strategy right after it read the slot. `lock_waiter` is the lock word's
    /// value that means "someone is queued", when the caller holds the slot's lock.
    #[inline]
    pub fn after_read(&self, slot: Slot<'_>, lock_waiter: Option<u32>) {
        if self.armed.get() {
            self.hold(slot, lock_waiter);
        }
    }

    #[cold]
    fn hold(&self, slot: Slot<'_>, lock_waiter: Option<u32>) {
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
            if let Some(waiter) = lock_waiter {
                if slot.lock.load(Relaxed) == waiter {
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
