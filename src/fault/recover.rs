//! What the parent does for a worker it saw die (with `waitid(WNOWAIT)`, before reaping it, so
//! its PID stays pinned): names the cause, finds the update it had in flight, frees a lock word
//! that names it (waking every waiter), wakes the waiters of the slot it was updating (a wake
//! it may have owed between its release and its wake), and times the hand-over to the next
//! owner.

use std::sync::atomic::AtomicU32;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use super::{Cause, Death, Fate, InFlight, Recovery, Strike, StrikeAt};
use crate::clock::now_ns;
use crate::futex::{Scope, Shared};
use crate::pool::{Dead, Signalled};
use crate::region::{intent, Region};
use crate::step::{self, LockWord};

/// The kind of lock a strategy leaves behind when its owner dies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockKind {
    /// None: the update is one atomic step (or no step at all).
    Free,
    /// A lock word naming its owner (futex-lock, spin-lock, the scenarios' locks): the parent
    /// frees it when the word names the dead worker.
    Word,
    /// A robust pthread mutex: the kernel hands it to the next locker with EOWNERDEAD.
    Robust,
}

/// Everything about a run the recovery needs, fixed before the first fork.
pub struct Recoverer<'a> {
    pub region: &'a Region,
    pub locks: LockKind,
    /// `--crash-at`, and the worker it strikes.
    pub strike: Option<(StrikeAt, usize)>,
    /// The workers write intent records (faults are armed).
    pub armed: bool,
    /// Without an intent record: the slot of a worker's update number `n` (from 0), replayed
    /// from its seeded choices, if the workload's updates have one slot each.
    pub nth_slot: &'a (dyn Fn(usize, u64) -> Option<usize> + Sync),
    /// Updates each worker was to make.
    pub ops: u64,
}

impl Recoverer<'_> {
    /// Recovers a worker dead but not yet reaped (its PID still pinned).
    pub fn recover(&self, dead: &Dead) -> Death {
        let Dead {
            worker: w,
            pid,
            signal,
            by,
            seen_ns,
            go_ns,
        } = *dead;
        let area = self.region.worker(w);
        let cause = self.cause(w, signal, by);
        // Relaxed: the worker is dead; everything it stored is in the region.
        let acknowledged = area.completed.load(Relaxed);
        let in_flight = self.in_flight(w, acknowledged);
        let me = step::owner_id(w, self.region.header().generation.load(Relaxed));
        let mut holding = None;
        let mut waiters = None;
        let mut handover_ms = None;
        let recovery = match (self.locks, &in_flight) {
            (LockKind::Word, Some(f)) => {
                let slot = self.region.slot(f.slot);
                // Read the value and count the queue while the dead owner's lock still keeps
                // everyone out (after the repair, a waiter takes it and leaves the queue).
                let value = slot.value.load(Relaxed);
                let queued = self.armed.then(|| self.queued(w, f.slot));
                match LockWord::<Shared>::repair(slot.lock, me) {
                    Some(word) => {
                        holding = Some(f.slot);
                        let fate = match (f.recorded, f.old, f.new) {
                            (false, _, _) => Fate::Unrecorded,
                            (true, Some(_), Some(n)) if value == n => Fate::RolledForward,
                            (true, Some(_), Some(_)) => Fate::RolledBack,
                            (true, _, _) => Fate::NotRead,
                        };
                        waiters = queued;
                        if queued.is_some_and(|q| q > 0) {
                            handover_ms = handover(slot.lock, slot.value, value, seen_ns);
                        }
                        Recovery::FreedLock {
                            slot: f.slot,
                            word,
                            fate,
                        }
                    }
                    None => {
                        // It may have released and died before its wake: wake for it.
                        Shared::wake_all(slot.lock);
                        Recovery::WokeWaiters { slot: f.slot }
                    }
                }
            }
            (LockKind::Word, None) => match self.scan(me) {
                Some((slot, word)) => {
                    holding = Some(slot);
                    Recovery::FreedLock {
                        slot,
                        word,
                        fate: Fate::Unrecorded,
                    }
                }
                None => Recovery::Nothing,
            },
            (LockKind::Robust, _) => {
                // Relaxed: as above. Written by armed workers only.
                holding = area
                    .holding
                    .load(Relaxed)
                    .checked_sub(1)
                    .map(|s| s as usize);
                Recovery::RobustList
            }
            (LockKind::Free, Some(_)) => Recovery::LockFree,
            (LockKind::Free, None) => Recovery::Nothing,
        };
        Death {
            worker: w,
            pid: pid.as_raw(),
            at_ms: seen_ns.saturating_sub(go_ns) as f64 / 1e6,
            signal: format!("{signal}"),
            cause,
            planned: cause.planned(),
            acknowledged,
            in_flight,
            holding,
            recovery,
            waiters,
            handover_ms,
        }
    }

    fn cause(&self, w: usize, signal: nix::sys::signal::Signal, by: Signalled) -> Cause {
        // Relaxed: the worker is dead; everything it stored is in the region.
        let struck = self.region.worker(w).struck.load(Relaxed) != 0;
        match self.strike {
            Some((s, victim))
                if struck
                    && s.strike == Strike::Kill
                    && signal == nix::sys::signal::Signal::SIGKILL
                    && w == victim =>
            {
                Cause::Strike(s)
            }
            _ => match by {
                Signalled::Kill => Cause::Kill,
                Signalled::Stop => Cause::Stopped,
                Signalled::Nobody => Cause::Unplanned,
            },
        }
    }

    /// The update worker `w` had in flight: from its intent record when it writes one, else
    /// the next one its replayed choices name, if it had updates left.
    fn in_flight(&self, w: usize, acknowledged: u64) -> Option<InFlight> {
        let area = self.region.worker(w);
        if self.armed {
            // Relaxed: the worker is dead; everything it stored is in the region.
            let op = area.intent_op.load(Relaxed);
            return (op > acknowledged).then(|| {
                let read = area.intent_stage.load(Relaxed) == intent::READ;
                InFlight {
                    op,
                    slot: area.intent_slot.load(Relaxed) as usize,
                    old: read.then(|| area.intent_old.load(Relaxed)),
                    new: read.then(|| area.intent_new.load(Relaxed)),
                    recorded: true,
                }
            });
        }
        if acknowledged >= self.ops {
            return None;
        }
        (self.nth_slot)(w, acknowledged).map(|slot| InFlight {
            op: acknowledged + 1,
            slot,
            old: None,
            new: None,
            recorded: false,
        })
    }

    /// Other workers queued for `slot`'s lock: they name it in `waiting_on` from before their
    /// first attempt until they hold it (armed runs).
    fn queued(&self, w: usize, slot: usize) -> u32 {
        // Relaxed: a count for the report.
        (0..self.region.worker_count())
            .filter(|&o| {
                o != w && self.region.worker(o).waiting_on.load(Relaxed) == slot as u32 + 1
            })
            .count() as u32
    }

    /// Without a known slot (a workload whose updates take several locks): frees every lock
    /// word that names the dead worker, in a region small enough to scan; returns the first.
    fn scan(&self, dead: u32) -> Option<(usize, u32)> {
        const MOST: usize = 4096;
        let slots = self.region.slots();
        let mut first = None;
        for i in 0..slots.len().min(MOST) {
            if let Some(word) = LockWord::<Shared>::repair(slots.get(i).lock, dead) {
                first = first.or(Some((i, word)));
            }
        }
        first
    }
}

/// After a repair with waiters queued: how long until a live worker owned the lock, in ms from
/// the death being seen (None if nobody took it within the bound). Owned: the word is held
/// again, or the slot no longer holds `value` (read under the dead owner's lock), for a new
/// owner may take, update and release it between two looks. It polls without sleeping on the
/// word: the new owner's CAS wakes nobody.
fn handover(word: &AtomicU32, slot: &AtomicU32, value: u32, seen_ns: u64) -> Option<f64> {
    const BOUND: Duration = Duration::from_secs(2);
    let start = Instant::now();
    while start.elapsed() < BOUND {
        // Relaxed: readings for the report; they order nothing.
        if !step::is_unlocked(word.load(Relaxed)) || slot.load(Relaxed) != value {
            return Some(now_ns().saturating_sub(seen_ns) as f64 / 1e6);
        }
        std::thread::yield_now();
    }
    None
}
