//! cache: a value (slot 0) and its related entries (slots 1..=R) that must belong together
//! (the stale-cache incident: `set`, then `invalidateRelated`, as two awaited steps).
//!
//! Workers 0..writers write: each write takes a new version v and makes the value and every
//! related entry v. The others read the value and the related entries and check that they
//! match; a mix of versions is a torn read.
//!
//! - `two-step` (the bug): set the value, then the related entries, with `--race-window`
//!   spins between; readers read without any protocol.
//! - `pair-lock`: writers and readers take the pair's futex lock (slot 0's word).
//! - `seqlock`: writers (serialised by the same lock) make the sequence odd, write, make it
//!   even again; readers retry when it was odd or changed under them.
//! - `packed-word`: value and related entry packed into one 64-bit atomic word (high half the
//!   value, low half the related entry); one store writes both, one load reads both.
//!
//! With `--store`, each write is persisted as an event on slot 0 (version v-1 to v: versions
//! are tickets, so a duplicate or a gap would be the writers' fault) and each read as what it
//! saw (value, lowest and highest related version), batched; `torture verify` counts the torn
//! reads from the record alone.

use std::marker::PhantomData;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::atomic::{fence, AtomicU64};

use super::{global, widen, Check, Env, Fix, Judgement, Plan, ScenarioKind, Variant};
use crate::check::Count;
use crate::futex::Scope;
use crate::history::{Reads, Seen};
use crate::region::Region;
use crate::strategy::{Applied, LockWord};
use crate::target::{CacheOps, EventDraft, UpdateError};
use crate::worker::{Halt, Outcome, Step, WorkerReport};

/// Tally words of a cache worker.
mod tally {
    pub const READS: usize = 0;
    /// Reads that saw a mix of versions.
    pub const TORN: usize = 1;
    /// Of those, reads that saw a new value beside stale related entries (the incident's).
    pub const NEW_BESIDE_STALE: usize = 2;
    pub const WRITES: usize = 3;
}

/// Sets the packed word and the version ticket to the initial version.
pub fn prepare(region: &Region, initial: u32) {
    let scratch = region.scratch();
    // Relaxed: no worker exists yet; fork (or thread spawn) orders these before any access.
    scratch[global::PACKED].store(pack(initial, initial), Relaxed);
    scratch[global::TICKET].store(initial as u64, Relaxed);
}

/// packed-word keeps the pair in its word, not in the slots: copies it into the slots after
/// the run, so the region's final values (saved with a stored run) are the pair it ended with.
pub fn settle(region: &Region, variant: Variant) {
    if variant != Variant::Fix(Fix::PackedWord) {
        return;
    }
    // Relaxed: every worker has been reaped (or joined); the parent is alone.
    let (v, r) = unpack(region.scratch()[global::PACKED].load(Relaxed));
    region.slot(0).value.store(v, Relaxed);
    for s in 1..region.slot_count() {
        region.slot(s).value.store(r, Relaxed);
    }
}

/// Layout of the packed word: value in the high 32 bits, related entry in the low 32.
#[inline]
fn pack(value: u32, related: u32) -> u64 {
    (value as u64) << 32 | related as u64
}

#[inline]
fn unpack(word: u64) -> (u32, u32) {
    ((word >> 32) as u32, word as u32)
}

pub struct Cache<S> {
    fix: Fix,
    related: usize,
    _scope: PhantomData<S>,
}

impl<S> Cache<S> {
    pub fn new(env: &Env<'_>) -> Self {
        let Variant::Fix(fix) = env.plan.variant else {
            unreachable!("cache runs --fix variants (validated)")
        };
        Cache {
            fix,
            related: env.region.slot_count() - 1,
            _scope: PhantomData,
        }
    }
}

pub struct Worker {
    writer: bool,
    first: bool,
    tally: [u64; 4],
}

impl<S: Scope> Cache<S> {
    fn seq<'e>(env: &'e Env<'_>) -> &'e AtomicU64 {
        &env.scratch[global::VERSION]
    }

    /// The next version; callers that need versions in write order take it under the lock.
    fn ticket(env: &Env<'_>) -> u32 {
        // Relaxed: only uniqueness matters; the value is published by the write protocol.
        (env.scratch[global::TICKET].fetch_add(1, Relaxed) + 1) as u32
    }

    /// Stores the related entries (Relaxed: ordered by the variant's protocol, or racy).
    fn set_related(&self, env: &Env<'_>, v: u32) {
        for r in 1..=self.related {
            env.region.slot(r).value.store(v, Relaxed);
        }
    }

    fn write(&self, env: &Env<'_>, me: &mut Worker) -> Applied {
        let value = env.region.slot(0);
        let first = std::mem::take(&mut me.first);
        me.tally[tally::WRITES] += 1;
        match self.fix {
            Fix::TwoStep => {
                let v = Self::ticket(env);
                // Relaxed: racy by design.
                value.value.store(v, Relaxed);
                if first {
                    // Scripted: the reader reads between the set and the invalidation.
                    env.script.arrive();
                    env.script.wait_for(2);
                }
                widen(env.plan.race_window);
                self.set_related(env, v);
                env.won(0, v - 1, v, 0);
                Applied {
                    written: v,
                    ..Applied::default()
                }
            }
            Fix::PairLock => {
                let (retries, waits) = LockWord::<S>::lock(value.lock, env.owner_id());
                let v = Self::ticket(env);
                value.value.store(v, Relaxed);
                self.set_related(env, v);
                // Inside the lock, like the counter's lock strategies.
                env.won(0, v - 1, v, retries);
                let woke = LockWord::<S>::unlock(value.lock);
                Applied {
                    written: v,
                    retries,
                    waits,
                    wakes: woke as u32,
                    ..Applied::default()
                }
            }
            Fix::Seqlock => {
                // Writers exclude each other with the lock; readers never take it.
                let (retries, waits) = LockWord::<S>::lock(value.lock, env.owner_id());
                let seq = Self::seq(env);
                // Relaxed: only writers store it, and they hold the lock.
                let s = seq.load(Relaxed);
                seq.store(s + 1, Relaxed);
                // Release fence: a reader that sees any data store below also sees the odd
                // sequence (pairs with the reader's Acquire fence before its second load).
                fence(Release);
                let v = Self::ticket(env);
                value.value.store(v, Relaxed);
                self.set_related(env, v);
                // Release: pairs with the reader's Acquire load of the sequence; the data
                // stores above are visible to a reader that sees s + 2.
                seq.store(s + 2, Release);
                // Still inside the writers' lock, like pair-lock.
                env.won(0, v - 1, v, retries);
                let woke = LockWord::<S>::unlock(value.lock);
                Applied {
                    written: v,
                    retries,
                    waits,
                    wakes: woke as u32,
                    ..Applied::default()
                }
            }
            Fix::PackedWord => {
                let v = Self::ticket(env);
                // Release: pairs with the readers' Acquire load (nothing else is published,
                // but it keeps the word's history in the order writers made it visible).
                env.scratch[global::PACKED].store(pack(v, v), Release);
                env.won(0, v - 1, v, 0);
                Applied {
                    written: v,
                    ..Applied::default()
                }
            }
            other => unreachable!("{} is not a cache variant (validated)", other.name()),
        }
    }

    /// Reads the value and the related entries; returns (value, lowest and highest related).
    /// `window`: spins between the value and the related entries (two-step widens the race
    /// on the reader's side too, so readers overlap the writer's window).
    #[inline]
    fn read_plain(&self, env: &Env<'_>, window: u32) -> (u32, u32, u32) {
        // Relaxed: racy in two-step; ordered by the lock or the sequence otherwise.
        let v = env.region.slot(0).value.load(Relaxed);
        widen(window);
        let (mut lo, mut hi) = (u32::MAX, 0);
        for r in 1..=self.related {
            let x = env.region.slot(r).value.load(Relaxed);
            lo = lo.min(x);
            hi = hi.max(x);
        }
        if self.related == 0 {
            (lo, hi) = (v, v);
        }
        (v, lo, hi)
    }

    fn read(&self, env: &Env<'_>, me: &mut Worker) -> Applied {
        let first = std::mem::take(&mut me.first);
        let mut applied = Applied::default();
        let (v, lo, hi) = match self.fix {
            Fix::TwoStep => {
                if first {
                    // Scripted: read only once the writer has set the value…
                    env.script.wait_for(1);
                }
                let seen = self.read_plain(env, env.plan.race_window);
                if first {
                    // …and let it invalidate only after this read.
                    env.script.arrive();
                }
                seen
            }
            Fix::PairLock => {
                let lock = env.region.slot(0).lock;
                let (retries, waits) = LockWord::<S>::lock(lock, env.owner_id());
                let seen = self.read_plain(env, 0);
                let woke = LockWord::<S>::unlock(lock);
                applied = Applied {
                    retries,
                    waits,
                    wakes: woke as u32,
                    ..applied
                };
                seen
            }
            Fix::Seqlock => {
                let seq = Self::seq(env);
                loop {
                    // Acquire: pairs with the writer's Release store of the even sequence.
                    let s1 = seq.load(Acquire);
                    if s1 % 2 == 1 {
                        applied.retries += 1;
                        if applied.retries % 8 == 0 {
                            // The writer may be preempted mid-write: give it the CPU.
                            std::thread::yield_now();
                        }
                        continue;
                    }
                    let seen = self.read_plain(env, 0);
                    // Acquire fence: pairs with the writer's Release fence after it made the
                    // sequence odd; if we read any of its data, the load below sees s1 + 1
                    // or later.
                    fence(Acquire);
                    if seq.load(Relaxed) == s1 {
                        break seen;
                    }
                    applied.retries += 1;
                }
            }
            Fix::PackedWord => {
                // Acquire: pairs with the writer's Release store.
                let (v, r) = unpack(env.scratch[global::PACKED].load(Acquire));
                (v, r, r)
            }
            other => unreachable!("{} is not a cache variant (validated)", other.name()),
        };
        me.tally[tally::READS] += 1;
        env.read_seen(Seen { value: v, lo, hi });
        if lo != v || hi != v {
            me.tally[tally::TORN] += 1;
            if lo < v {
                me.tally[tally::NEW_BESIDE_STALE] += 1;
            }
        }
        applied.read = v;
        applied
    }
}

impl<S: Scope> super::Scenario for Cache<S> {
    type Worker = Worker;

    fn start(&self, env: &Env<'_>) -> Worker {
        Worker {
            writer: match env.plan.work {
                super::Work::Cache { writers } => env.w < writers,
                _ => unreachable!("a cache worker runs a cache plan"),
            },
            first: true,
            tally: [0; 4],
        }
    }

    #[inline]
    fn step(&self, env: &Env<'_>, me: &mut Worker, _i: u64) -> Applied {
        if me.writer {
            self.write(env, me)
        } else {
            self.read(env, me)
        }
    }

    fn finish(&self, env: &Env<'_>, me: Worker) {
        env.publish_tally(&me.tally);
    }
}

/// Torn reads must be 0 for a fix (and the final state must be one version throughout).
pub fn check(plan: &Plan, region: &Region, finals: &[u32], reports: &[WorkerReport]) -> Judgement {
    let sum = |k: usize| super::tally_sum(region, reports, k);
    let (reads, torn, new_beside_stale, writes) = (
        sum(tally::READS),
        sum(tally::TORN),
        sum(tally::NEW_BESIDE_STALE),
        sum(tally::WRITES),
    );
    let mut c = Check {
        scenario: "cache",
        variant: plan.variant.name(),
        invariant: ScenarioKind::Cache.invariant(),
        ..Check::default()
    };
    // The final state: one version throughout.
    let (value, related): (u32, Vec<u32>) = if plan.variant == Variant::Fix(Fix::PackedWord) {
        let (v, r) = unpack(region.scratch()[global::PACKED].load(Relaxed));
        (v, vec![r])
    } else {
        // The region's slots, or the target's keys.
        (finals[0], finals[1..].to_vec())
    };
    let final_torn = related.iter().any(|&r| r != value) as u64;
    if torn > 0 {
        c.findings.push(format!(
            "{torn} of {reads} reads were torn; {new_beside_stale} saw a new value beside stale related entries"
        ));
    }
    if final_torn > 0 {
        c.findings.push(format!(
            "the final state is torn: value {value}, related {related:?}"
        ));
    }
    c.violations = torn + final_torn;
    c.counters.insert("reads".into(), reads);
    c.counters.insert("writes".into(), writes);
    c.counters.insert("torn reads".into(), torn);
    c.counters
        .insert("new value beside stale related".into(), new_beside_stale);
    let count = Count {
        expected: reads,
        observed: reads - torn,
        lost: torn,
        unexpected: 0,
        wrong_slots: final_torn as usize,
    };
    Judgement {
        count,
        wrong_slots: Vec::new(),
        check: Some(c),
    }
}

/// A cache worker on a target other than memory (Redis): a writer writes a new version the
/// fix's way, a reader reads and checks what it saw, through the target's [`CacheOps`]. The
/// tallies are the memory worker's, so the check is the same; with `--store target` each
/// write carries its event and reads are recorded in batches, as the memory recorder does.
pub struct RemoteCache<'a> {
    ops: Box<dyn CacheOps>,
    writer: bool,
    worker: usize,
    events: bool,
    /// The writer's next event's sequence number.
    seq: u64,
    /// The reader's reads not yet recorded.
    reads: Reads,
    tally: [u64; 4],
    tally_words: &'a [AtomicU64],
}

/// Reads per recorded batch (as the memory recorder's).
const READS_PER_BATCH: usize = 256;

impl<'a> RemoteCache<'a> {
    pub fn new(ops: Box<dyn CacheOps>, region: &'a Region, plan: &Plan, worker: usize) -> Self {
        let writers = match plan.work {
            super::Work::Cache { writers } => writers,
            _ => unreachable!("a cache worker runs a cache plan"),
        };
        let layout = super::Layout {
            workers: region.worker_count(),
        };
        RemoteCache {
            ops,
            writer: worker < writers,
            worker,
            events: plan.events,
            seq: 0,
            reads: Reads {
                worker: worker as u32,
                first: 0,
                seen: Vec::new(),
            },
            tally: [0; 4],
            tally_words: &region.scratch()[layout.tally(worker)],
        }
    }

    fn flush(&mut self) -> Result<(), UpdateError> {
        if self.reads.seen.is_empty() {
            return Ok(());
        }
        self.ops.record_reads(&self.reads)?;
        self.reads.first += self.reads.seen.len() as u64;
        self.reads.seen.clear();
        Ok(())
    }

    fn step(&mut self) -> Result<Applied, UpdateError> {
        if self.writer {
            let event = self.events.then(|| EventDraft {
                worker: self.worker as u32,
                seq: self.seq,
                invoke_ns: crate::clock::now_ns(),
            });
            let applied = self.ops.write(event)?;
            self.seq += u64::from(self.events);
            self.tally[tally::WRITES] += 1;
            return Ok(applied);
        }
        let (seen, retries) = self.ops.read()?;
        self.tally[tally::READS] += 1;
        if seen.lo != seen.value || seen.hi != seen.value {
            self.tally[tally::TORN] += 1;
            if seen.lo < seen.value {
                self.tally[tally::NEW_BESIDE_STALE] += 1;
            }
        }
        if self.events {
            self.reads.seen.push(seen);
            if self.reads.seen.len() >= READS_PER_BATCH {
                self.flush()?;
            }
        }
        Ok(Applied {
            read: seen.value,
            retries,
            ..Applied::default()
        })
    }
}

impl Step for RemoteCache<'_> {
    fn update(&mut self, _: u64) -> Result<Outcome, Halt> {
        match self.step() {
            Ok(a) => Ok(Outcome::Applied(a)),
            Err(UpdateError::Unknown(m)) => Err(Halt::Unknown(m)),
            Err(UpdateError::Fatal(m)) => Err(Halt::Fatal(m)),
            Err(UpdateError::Rejected(r)) => Err(Halt::Fatal(format!("cache refused: {r}"))),
        }
    }

    fn finish(&mut self) {
        // The last batch: a failure leaves reads unrecorded, which verify then reports
        // (fewer reads recorded than the reader acknowledged), never a silent "verified".
        let _ = self.flush();
        super::publish_tally(self.tally_words, &self.tally);
    }
}
