//! record: a record of F fields, one slot each; worker w changes only field w mod F (the
//! file-based store incident: four API workers, each updating one field of the same user).
//!
//! - `whole-record` (the bug): read all F fields, change one, write all F back, with
//!   `--race-window` spins between the read and the write. A worker that read before another
//!   wrote puts its stale copy of the other's field back: that update is lost.
//! - `record-lock`: the same read-modify-write under the record's futex lock (slot 0's word).
//! - `field-atomic`: `fetch_add` on the worker's own field only; no other field is written.
//! - `version-cas`: an optimistic version word (even = stable): read it, read the record, CAS
//!   the version to odd to claim the write, write, publish version+2; retry if the CAS fails.
//!
//! On `--target dir:PATH` the record is a file and its variants are the file system's:
//! `whole-record`, `flock`, `link-cas` and `field-files` (see `target::dir::record`); each
//! worker's update goes through its session (`super::remote`), and [`check`] judges the
//! fields' final values the same way.

use std::marker::PhantomData;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};

use super::{global, widen, Check, Env, Fix, Judgement, Plan, ScenarioKind, Variant};
use crate::check;
use crate::futex::Scope;
use crate::region::Region;
use crate::strategy::{Applied, LockWord};
use crate::worker::WorkerReport;

/// Tally words of a record worker.
mod tally {
    /// Word `ERASED + j`: updates of field j this worker's stale writes overwrote (a witness,
    /// taken just before each store).
    pub const ERASED: usize = 8;
}

/// The most fields a record may have (one tally word each).
pub const MAX_FIELDS: usize = 64;

pub struct Record<S> {
    fix: Fix,
    fields: usize,
    _scope: PhantomData<S>,
}

impl<S> Record<S> {
    pub fn new(env: &Env<'_>) -> Self {
        let Variant::Fix(fix) = env.plan.variant else {
            unreachable!("record runs --fix variants (validated)")
        };
        Record {
            fix,
            fields: env.region.slot_count(),
            _scope: PhantomData,
        }
    }
}

pub struct Writer {
    field: usize,
    erased: [u64; MAX_FIELDS],
    /// The scripted hold is for the first update only.
    first: bool,
}

impl<S: Scope> Record<S> {
    /// Reads the whole record.
    #[inline]
    fn read_all(&self, env: &Env<'_>, copy: &mut [u32; MAX_FIELDS]) {
        for (j, c) in copy.iter_mut().enumerate().take(self.fields) {
            // Relaxed: in whole-record this is the bug; under a lock or a version the lock's
            // or version's Acquire orders it.
            *c = env.region.slot(j).value.load(Relaxed);
        }
    }

    /// Writes the whole record back, noting which newer values the stale copy overwrites.
    #[inline]
    fn write_all(&self, env: &Env<'_>, copy: &[u32; MAX_FIELDS], me: &mut Writer) {
        for (j, &v) in copy.iter().enumerate().take(self.fields) {
            let slot = env.region.slot(j);
            // Relaxed: a witness only (exact when the write is protected, a close estimate
            // when it is racy); the final values are what the check trusts.
            let now = slot.value.load(Relaxed);
            let mine = if j == me.field { v.wrapping_sub(1) } else { v };
            if now > mine {
                me.erased[j] += (now - mine) as u64;
            }
            slot.value.store(v, Relaxed);
        }
    }
}

impl<S: Scope> super::Scenario for Record<S> {
    type Worker = Writer;

    fn start(&self, env: &Env<'_>) -> Writer {
        Writer {
            field: env.w % self.fields,
            erased: [0; MAX_FIELDS],
            first: true,
        }
    }

    #[inline]
    fn step(&self, env: &Env<'_>, me: &mut Writer, _i: u64) -> Applied {
        let mut copy = [0u32; MAX_FIELDS];
        let field = me.field;
        let first = std::mem::take(&mut me.first);
        match self.fix {
            Fix::WholeRecord => {
                self.read_all(env, &mut copy);
                if first {
                    // Scripted: both workers have read before either writes.
                    env.script.arrive();
                    env.script.wait_for(2);
                }
                widen(env.plan.race_window);
                copy[field] = copy[field].wrapping_add(1);
                self.write_all(env, &copy, me);
                // Recorded as the worker believes it happened: a stale copy shows in the store
                // as a value of its field won twice.
                env.won(field, copy[field].wrapping_sub(1), copy[field], 0);
                Applied {
                    read: copy[field].wrapping_sub(1),
                    written: copy[field],
                    ..Applied::default()
                }
            }
            Fix::RecordLock => {
                let lock = env.region.slot(0).lock;
                let (retries, waits) = LockWord::<S>::lock(lock, env.owner_id());
                self.read_all(env, &mut copy);
                copy[field] = copy[field].wrapping_add(1);
                self.write_all(env, &copy, me);
                // Inside the lock: events reach the store in the order the values were made.
                env.won(field, copy[field].wrapping_sub(1), copy[field], retries);
                let woke = LockWord::<S>::unlock(lock);
                Applied {
                    read: copy[field].wrapping_sub(1),
                    written: copy[field],
                    retries,
                    waits,
                    wakes: woke as u32,
                }
            }
            Fix::FieldAtomic => {
                // Relaxed: the field is the only data this update touches; RMWs on one atomic
                // form a single modification order, which is all an exact count needs.
                let read = env.region.slot(field).value.fetch_add(1, Relaxed);
                env.won(field, read, read.wrapping_add(1), 0);
                Applied {
                    read,
                    written: read.wrapping_add(1),
                    ..Applied::default()
                }
            }
            Fix::VersionCas => {
                let version = &env.scratch[global::VERSION];
                let mut retries = 0;
                // Acquire: pairs with the Release store of the previous writer's version+2,
                // so its field writes are visible to `read_all`.
                let mut seen = version.load(Acquire);
                loop {
                    if seen % 2 == 1 {
                        // A writer holds the claim: let it run (it may be preempted).
                        retries += 1;
                        if retries % 8 == 0 {
                            std::thread::yield_now();
                        } else {
                            std::hint::spin_loop();
                        }
                        seen = version.load(Acquire);
                        continue;
                    }
                    self.read_all(env, &mut copy);
                    // AcqRel: Release orders our reads before any later claimer's writes;
                    // Acquire as in the load above. Success means nobody claimed since `seen`,
                    // so the copy is the current record.
                    match version.compare_exchange(seen, seen + 1, AcqRel, Acquire) {
                        Ok(_) => break,
                        Err(now) => {
                            // Reuse what the failed CAS saw instead of loading again.
                            seen = now;
                            retries += 1;
                        }
                    }
                }
                copy[field] = copy[field].wrapping_add(1);
                self.write_all(env, &copy, me);
                // While the claim is held (the version is odd): like a lock's critical section.
                env.won(field, copy[field].wrapping_sub(1), copy[field], retries);
                // Release: pairs with the Acquire loads above in the next writer.
                version.store(seen + 2, Release);
                Applied {
                    read: copy[field].wrapping_sub(1),
                    written: copy[field],
                    retries,
                    ..Applied::default()
                }
            }
            other => unreachable!("{} is not a record variant (validated)", other.name()),
        }
    }

    fn finish(&self, env: &Env<'_>, me: Writer) {
        for j in 0..self.fields {
            // Relaxed: published by the worker's Release store of DONE (see `super::tally`).
            env.tally()[tally::ERASED + j].store(me.erased[j], Relaxed);
        }
    }
}

/// Every field's final value (`finals`: the region's, or the target's) must equal its initial
/// value plus the updates made to it; a lost field update is named with the worker whose stale
/// copy overwrote it when the region holds the record (its writers tallied what they erased;
/// another target's witnesses are in its stored record).
pub fn check(plan: &Plan, region: &Region, finals: &[u32], reports: &[WorkerReport]) -> Judgement {
    let fields = finals.len();
    let mut applied = vec![0u64; fields];
    for r in reports {
        applied[r.worker % fields] += r.completed;
    }
    let (count, wrong) = check::count(plan.initial, &applied, finals);
    let mut c = Check {
        scenario: "record",
        variant: plan.variant.name(),
        invariant: ScenarioKind::Record.invariant(),
        violations: count.lost + count.unexpected,
        ..Check::default()
    };
    let tallied = region.slot_count() == fields;
    let erased = |w: usize, j: usize| {
        if tallied {
            super::tally(region, w, tally::ERASED + j)
        } else {
            0
        }
    };
    let mut witnessed = 0;
    for r in reports {
        for j in 0..fields {
            witnessed += erased(r.worker, j);
        }
    }
    for s in &wrong {
        let worst = reports
            .iter()
            .map(|r| (erased(r.worker, s.slot), r.worker))
            .max()
            .filter(|&(n, _)| n > 0);
        let lost = s.expected.saturating_sub(s.observed);
        c.findings.push(match worst {
            Some((_, w)) => format!(
                "field {} lost {lost} updates, overwritten by worker {w}'s stale copy",
                s.slot
            ),
            None if tallied => format!(
                "field {} lost {lost} updates, overwritten by a stale copy",
                s.slot
            ),
            None => format!(
                "field {} lost {lost} updates, overwritten by a stale copy (--store records the witnesses)",
                s.slot
            ),
        });
    }
    if tallied {
        c.counters.insert(
            "updates erased by stale copies (some restored later)".into(),
            witnessed,
        );
    }
    c.counters.insert("fields".into(), fields as u64);
    Judgement {
        count,
        wrong_slots: Vec::new(),
        check: Some(c),
    }
}
