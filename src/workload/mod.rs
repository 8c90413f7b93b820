//! WHAT is updated and what "nothing lost" means: the plain counter and the four incidents,
//! each a workload that says what a worker does per update and how the parent checks the
//! result.
//!
//! - `counter`: workers add 1 to slots with a strategy; the final values must equal the
//!   initial ones plus every acknowledged update (within a death's bounds);
//! - `votes`: the poll counter (the SharedArrayBuffer / vote-counting incidents), with bad
//!   option ids rejected and counted, and `votes_after` checked to run 1…n per option;
//! - `record`: a record of F fields rewritten whole (the file-store incident);
//! - `cache`: a value and its related entries, set then invalidated (the stale-cache incident);
//! - `ledger`: transfers between accounts; the total never changes.
//!
//! Every workload runs through the same pipeline (`run`): region, pool, `worker::drive`,
//! check, summary. The counter and votes update slots with a strategy, through the one
//! `strategy::dispatch`; record, cache and ledger are [`Scenario`]s with their own variants.
//! What a scenario adds lives in the region's scratch words (see `Region::scratch`): version
//! and sequence words, per-worker tallies, and for votes a `votes_after` bitmap. Each worker
//! publishes its tallies before it reports DONE; the parent reads them after reaping.
//!
//! With `--store`, counter, votes and record workers persist each winning update (one slot, v
//! to v+1) through their hooks, and the run's stored record is verified. cache and ledger are
//! not counters: a ledger worker persists each transfer that moved money (both accounts'
//! versions and balances read), a cache writer each version it wrote and a reader what each
//! read saw; `torture verify` checks their own invariants from those records.
//!
//! Variants are named after the incident's own code (`whole-record`, `seqlock`, …) and map to
//! the strategy whose mechanism they use, so the summary keeps one row type.

mod cache;
pub mod counter;
mod ledger;
mod record;
pub mod remote;
mod votes;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::atomic::{AtomicU32, AtomicU64};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::barrier::Gate;
use crate::check::{Count, SlotCount};
use crate::fault::recover::LockKind;
use crate::fault::{Death, KillPlan, StrikeAt};
use crate::futex::{self, Private, Scope, Shared};
use crate::latency::LatencyMode;
use crate::pick::{Pick, SlotPicker};
use crate::probe::{Hooks, Probe, Quiet};
use crate::region::Region;
use crate::store::{NoStore, Persistence, Recorder, RunStore};
use crate::strategy::{self, Applied, Mode, Strategy, StrategyKind, WithStrategy};
use crate::target::{Holds, TargetKind};
use crate::worker::{self, Control, Halt, Outcome, Step, WorkerReport};

pub use ledger::MAX_ACCOUNTS;
pub use record::MAX_FIELDS;
pub use votes::{parse_ballot, Rejection};

/// Which incident a run replays.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ScenarioKind {
    /// Poll options; each update is a vote; bad ids are rejected (with --strategy).
    Votes,
    /// A record of --fields fields; each worker changes its own field (with --fix).
    Record,
    /// A value and its --related entries; one writer (or --writers) and many readers (--fix).
    Cache,
    /// Transfers between --accounts accounts; the total never changes (--fix).
    Ledger,
}

impl ScenarioKind {
    pub fn name(self) -> &'static str {
        match self {
            ScenarioKind::Votes => "votes",
            ScenarioKind::Record => "record",
            ScenarioKind::Cache => "cache",
            ScenarioKind::Ledger => "ledger",
        }
    }

    /// The invariant the verdict column names.
    pub fn invariant(self) -> &'static str {
        match self {
            ScenarioKind::Votes => "votes_after 1..n per option",
            ScenarioKind::Record => "every field update kept",
            ScenarioKind::Cache => "no torn read",
            ScenarioKind::Ledger => "total unchanged",
        }
    }

    /// What this scenario's slots hold, for a target other than memory; None: it runs on
    /// memory only (its workers have no step over a target's `Session` yet, see `remote`).
    pub fn holds(self) -> Option<Holds> {
        match self {
            ScenarioKind::Record => Some(Holds::Record),
            ScenarioKind::Votes => Some(Holds::Poll),
            ScenarioKind::Cache => Some(Holds::Cache),
            ScenarioKind::Ledger => None,
        }
    }

    /// The flag that sets how many slots this scenario's state takes (`--slots` for votes).
    pub fn slots_flag(self) -> &'static str {
        match self {
            ScenarioKind::Votes => "--slots",
            ScenarioKind::Record => "--fields",
            ScenarioKind::Cache => "--related",
            ScenarioKind::Ledger => "--accounts",
        }
    }

    /// The variants run when --fix is not given, on a target that implements `implemented`:
    /// the bug first, then every fix that terminates (unordered-locks deadlocks by design, so
    /// it is asked for by name) and whose mechanism the target has.
    pub fn default_fixes(self, target: TargetKind, implemented: &[StrategyKind]) -> Vec<Fix> {
        Fix::ALL
            .into_iter()
            .filter(|f| f.scenario() == self && *f != Fix::UnorderedLocks)
            .filter(|f| f.runs_on(target) && implemented.contains(&f.mechanism()))
            .collect()
    }
}

/// The named variants of record, cache and ledger: each scenario's bug and its fixes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Fix {
    /// record bug: read all fields, change one, write all back.
    WholeRecord,
    /// record: the whole read-modify-write under one per-record futex lock.
    RecordLock,
    /// record: each worker `fetch_add`s its own field only.
    FieldAtomic,
    /// record: optimistic version word; CAS it to claim the write, retry if it moved.
    VersionCas,
    /// cache bug: set the value, then invalidate the related entries, as two steps.
    TwoStep,
    /// cache: one lock around the pair, for writers and readers.
    PairLock,
    /// cache: readers retry when the sequence is odd or changed.
    Seqlock,
    /// cache: value and related entry packed into one 64-bit atomic word.
    PackedWord,
    /// ledger bug: debit and credit as two separate read-modify-writes.
    TwoRmw,
    /// ledger: lock both accounts, lowest index first.
    OrderedLocks,
    /// ledger: one lock for every transfer.
    GlobalLock,
    /// ledger: lock `from` then `to`: deadlocks; the watchdog must name the cycle.
    UnorderedLocks,
    /// record on dir: the whole rewrite inside `flock(LOCK_EX)` on the record file.
    Flock,
    /// record on dir: each rewrite a new record version, claimed by `link(2)` (EEXIST: retry).
    LinkCas,
    /// record on dir: one file per field, each update one `O_APPEND` record to its own.
    FieldFiles,
    /// cache on Redis: writers and readers each in one MULTI/EXEC.
    Multi,
    /// cache on Redis: writers in one Lua script, readers in one MGET.
    Script,
    /// cache on Redis: MULTI/EXEC writers; readers WATCH, read, retry on a nil EXEC.
    Watch,
}

impl Fix {
    pub const ALL: [Fix; 18] = [
        Fix::WholeRecord,
        Fix::RecordLock,
        Fix::FieldAtomic,
        Fix::VersionCas,
        Fix::TwoStep,
        Fix::PairLock,
        Fix::Seqlock,
        Fix::PackedWord,
        Fix::TwoRmw,
        Fix::OrderedLocks,
        Fix::GlobalLock,
        Fix::UnorderedLocks,
        Fix::Flock,
        Fix::LinkCas,
        Fix::FieldFiles,
        Fix::Multi,
        Fix::Script,
        Fix::Watch,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Fix::WholeRecord => "whole-record",
            Fix::RecordLock => "record-lock",
            Fix::FieldAtomic => "field-atomic",
            Fix::VersionCas => "version-cas",
            Fix::TwoStep => "two-step",
            Fix::PairLock => "pair-lock",
            Fix::Seqlock => "seqlock",
            Fix::PackedWord => "packed-word",
            Fix::TwoRmw => "two-rmw",
            Fix::OrderedLocks => "ordered-locks",
            Fix::GlobalLock => "global-lock",
            Fix::UnorderedLocks => "unordered-locks",
            Fix::Flock => "flock",
            Fix::LinkCas => "link-cas",
            Fix::FieldFiles => "field-files",
            Fix::Multi => "multi",
            Fix::Script => "script",
            Fix::Watch => "watch",
        }
    }

    pub fn scenario(self) -> ScenarioKind {
        match self {
            Fix::WholeRecord
            | Fix::RecordLock
            | Fix::FieldAtomic
            | Fix::VersionCas
            | Fix::Flock
            | Fix::LinkCas
            | Fix::FieldFiles => ScenarioKind::Record,
            Fix::TwoStep
            | Fix::PairLock
            | Fix::Seqlock
            | Fix::PackedWord
            | Fix::Multi
            | Fix::Script
            | Fix::Watch => ScenarioKind::Cache,
            Fix::TwoRmw | Fix::OrderedLocks | Fix::GlobalLock | Fix::UnorderedLocks => {
                ScenarioKind::Ledger
            }
        }
    }

    /// The bug of its scenario (the others promise the invariant).
    pub fn is_bug(self) -> bool {
        matches!(self, Fix::WholeRecord | Fix::TwoStep | Fix::TwoRmw)
    }

    /// The strategy whose mechanism the variant uses: the summary's row type.
    pub fn mechanism(self) -> StrategyKind {
        match self {
            Fix::WholeRecord | Fix::TwoStep | Fix::TwoRmw => StrategyKind::Racy,
            Fix::RecordLock
            | Fix::PairLock
            | Fix::OrderedLocks
            | Fix::GlobalLock
            | Fix::UnorderedLocks => StrategyKind::FutexLock,
            Fix::FieldAtomic | Fix::PackedWord | Fix::Multi => StrategyKind::Atomic,
            Fix::VersionCas | Fix::Seqlock | Fix::Watch => StrategyKind::Cas,
            Fix::Script => StrategyKind::Script,
            Fix::Flock => StrategyKind::Flock,
            Fix::LinkCas => StrategyKind::LinkCas,
            Fix::FieldFiles => StrategyKind::Append,
        }
    }

    /// Whether the variant runs on a target of `kind` (its mechanism must be one the target
    /// implements too): the cache's shared-memory fixes on memory only, its Redis fixes on
    /// Redis only.
    pub fn runs_on(self, kind: TargetKind) -> bool {
        match self {
            Fix::PairLock | Fix::Seqlock | Fix::PackedWord => kind == TargetKind::Memory,
            Fix::Multi | Fix::Script | Fix::Watch => kind == TargetKind::Redis,
            _ => true,
        }
    }

    /// Whether `--hold-after-read` has a losing step to hold in this variant: the bugs, and
    /// unordered-locks (each worker holds its first lock until the other holds its own).
    pub fn can_script(self) -> bool {
        self.is_bug() || self == Fix::UnorderedLocks
    }
}

/// One row of a scenario's table: a votes strategy or a named fix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Variant {
    Strategy(StrategyKind),
    Fix(Fix),
}

impl Variant {
    pub fn name(self) -> &'static str {
        match self {
            Variant::Strategy(s) => s.name(),
            Variant::Fix(f) => f.name(),
        }
    }
    pub fn mechanism(self) -> StrategyKind {
        match self {
            Variant::Strategy(s) => s,
            Variant::Fix(f) => f.mechanism(),
        }
    }
    pub fn is_bug(self) -> bool {
        !self.mechanism().is_exact()
    }
}

/// A scenario's settings, validated once with the rest of the options.
#[derive(Clone, Debug, Serialize)]
pub struct ScenarioConfig {
    pub kind: ScenarioKind,
    /// record, cache, ledger: the variants to run (votes runs the options' strategies).
    pub fixes: Vec<Fix>,
    /// votes: fraction of ballots carrying a bad option id.
    pub invalid_rate: f64,
    /// cache: workers 0..writers write, the others read.
    pub writers: usize,
    /// ledger: workers 0..auditors sample the total during the run instead of transferring.
    pub auditors: usize,
}

impl ScenarioConfig {
    /// The rows to run, in order: votes runs `strategies`, the others their fixes.
    pub fn variants(&self, strategies: &[StrategyKind]) -> Vec<Variant> {
        match self.kind {
            ScenarioKind::Votes => strategies.iter().map(|&s| Variant::Strategy(s)).collect(),
            _ => self.fixes.iter().map(|&f| Variant::Fix(f)).collect(),
        }
    }
}

/// Which workload a run's workers run, with what each worker needs to know of it.
#[derive(Clone, Debug)]
pub enum Work {
    Counter,
    Votes {
        invalid_rate: f64,
        /// Each option's first bit in the `votes_after` bitmap, and one past the last.
        bitmap: Arc<Vec<u64>>,
    },
    Record,
    Cache {
        /// Workers 0..writers write, the others read.
        writers: usize,
    },
    Ledger {
        /// The last `auditors` workers sample the total instead of transferring.
        auditors: usize,
    },
}

/// What every worker of one run does; the same for all of them, fixed before the first fork.
#[derive(Clone, Debug)]
pub struct Plan {
    pub work: Work,
    /// The strategy (counter, votes) or the fix (record, cache, ledger) this run runs.
    pub variant: Variant,
    pub mode: Mode,
    pub workers: usize,
    pub slots: usize,
    pub ops: u64,
    pub seed: u64,
    pub pick: Pick,
    pub initial: u32,
    pub latency: LatencyMode,
    /// The update timer, calibrated in the parent before the first fork.
    pub clock: crate::clock::Clock,
    pub race_window: u32,
    pub hold_after_read: bool,
    /// Where winning updates are persisted; each worker opens its own writer after the fork.
    pub store: Option<Arc<RunStore>>,
    /// `--store target`: each update writes its event into the target itself, in the same
    /// transaction or atomic step (`target::EventDraft`).
    pub events: bool,
    /// `--crash-at` / `--stop-at`, struck on worker `Faults::struck_worker(seed, workers)`.
    pub strike: Option<StrikeAt>,
    /// `--kill`'s victims and when each is killed.
    pub kills: KillPlan,
    /// Faults (or a scripted interleaving) are armed: workers run the `Probe`, with its
    /// intent record and named points. Unarmed, they run `Quiet`.
    pub armed: bool,
}

impl Work {
    /// The workload `scenario` names (None: the counter), for a run shaped as `plan` (whose
    /// own `work` is not read).
    pub fn new(scenario: Option<&ScenarioConfig>, plan: &Plan) -> Work {
        let Some(sc) = scenario else {
            return Work::Counter;
        };
        match sc.kind {
            ScenarioKind::Votes => Work::Votes {
                invalid_rate: sc.invalid_rate,
                bitmap: Arc::new(votes::bitmap_offsets(plan, sc.invalid_rate)),
            },
            ScenarioKind::Record => Work::Record,
            ScenarioKind::Cache => Work::Cache {
                writers: sc.writers,
            },
            ScenarioKind::Ledger => Work::Ledger {
                auditors: sc.auditors,
            },
        }
    }

    /// The scenario it replays, if it is not the plain counter.
    pub fn scenario(&self) -> Option<ScenarioKind> {
        match self {
            Work::Counter => None,
            Work::Votes { .. } => Some(ScenarioKind::Votes),
            Work::Record => Some(ScenarioKind::Record),
            Work::Cache { .. } => Some(ScenarioKind::Cache),
            Work::Ledger { .. } => Some(ScenarioKind::Ledger),
        }
    }
}

impl Plan {
    /// What `torture verify` and the progress bar call this run: the strategy, or the scenario
    /// and its variant.
    pub fn label(&self) -> String {
        match self.work.scenario() {
            None => self.variant.name().into(),
            Some(k) => format!("{} {}", k.name(), self.variant.name()),
        }
    }

    /// What a worker that dies mid-update leaves held.
    pub fn lock_kind(&self) -> LockKind {
        match self.work {
            Work::Counter | Work::Votes { .. } => self.variant.mechanism().lock_kind(),
            // The fixes' locks are lock words (the bugs take none; a scan finds nothing).
            _ => LockKind::Word,
        }
    }

    /// Scratch words the workload needs after the worker areas.
    pub fn scratch_words(&self) -> usize {
        let array = match &self.work {
            Work::Counter => return 0,
            Work::Votes { bitmap, .. } => {
                (bitmap.last().copied().unwrap_or(0) as usize).div_ceil(64)
            }
            // One version word per account: what chains each account's states in the store.
            Work::Ledger { .. } => self.slots,
            Work::Record | Work::Cache { .. } => 0,
        };
        Layout {
            workers: self.workers,
        }
        .array_start()
            + array
    }

    /// Sets up the region before the first fork.
    pub fn prepare(&self, region: &Region) {
        if let Work::Cache { .. } = self.work {
            cache::prepare(region, self.initial);
        }
    }

    /// Makes the region's slots hold the state the run ended with, after every worker is
    /// reaped (packed-word keeps it in its own word).
    pub fn settle(&self, region: &Region) {
        if let Work::Cache { .. } = self.work {
            cache::settle(region, self.variant);
        }
    }

    /// Updates worker `report.worker` acknowledged as the store counts them: a rejected ballot
    /// is no update; refused overdrafts and audits change nothing and leave no record.
    pub fn acknowledged(&self, region: &Region, report: &WorkerReport) -> u64 {
        match self.work {
            Work::Votes { .. } => votes::accepted(region, report.worker),
            Work::Ledger { .. } => ledger::transfers(region, report.worker),
            _ => report.completed,
        }
    }

    /// Without an intent record: the slot of worker `w`'s update number `n` (from 0), replayed
    /// from its seeded choices. Only the counter's updates have one slot each.
    pub fn nth_slot(&self, w: usize, n: u64) -> Option<usize> {
        matches!(self.work, Work::Counter)
            .then(|| SlotPicker::new(self.seed, w, self.slots, self.pick).nth(n))
    }

    /// Whether the check can bound a death's update in flight (the counter's can: one slot,
    /// one unit; a scenario's update touches several words and tallies).
    pub fn bounds_deaths(&self) -> bool {
        matches!(self.work, Work::Counter)
    }

    /// Says what stalled workers wait for, if the workload can (the ledger names a lock cycle).
    pub fn explain_stall(&self) -> Option<fn(&Region) -> Option<String>> {
        matches!(self.work, Work::Ledger { .. }).then_some(ledger::explain_stall as _)
    }

    /// The parent's check, after every worker is reaped: `finals` are the slots' final values
    /// (the region's, or the target's), `in_flight` the updates a death or a lost outcome left
    /// in flight, per slot.
    pub fn judge(
        &self,
        region: &Region,
        finals: &[u32],
        reports: &[WorkerReport],
        in_flight: &[u64],
    ) -> Judgement {
        match &self.work {
            Work::Counter => counter::check(self, finals, reports, in_flight),
            Work::Votes { .. } => votes::check(self, region, finals, reports),
            Work::Record => record::check(self, region, finals, reports),
            Work::Cache { .. } => cache::check(self, region, finals, reports),
            Work::Ledger { .. } => ledger::check(self, region, reports),
        }
    }

    /// Per slot, the updates deaths and lost outcomes left in flight.
    pub fn in_flight(&self, deaths: &[Death], reports: &[WorkerReport]) -> Vec<u64> {
        let mut in_flight = vec![0u64; self.slots];
        for f in deaths.iter().filter_map(|d| d.in_flight.as_ref()) {
            in_flight[f.slot] += 1;
        }
        for r in reports {
            if let Some(Halt::Unknown(_)) = r.halt {
                if let Some(slot) = self.nth_slot(r.worker, r.completed) {
                    in_flight[slot] += 1;
                }
            }
        }
        in_flight
    }
}

/// What a run's own check decided.
pub struct Judgement {
    pub count: Count,
    /// The first slots whose final value is out of bounds.
    pub wrong_slots: Vec<SlotCount>,
    /// A scenario's invariant (None for the counter, whose count is its invariant).
    pub check: Option<Check>,
}

// ---------------------------------------------------------------------------------------------
// Worker side.
// ---------------------------------------------------------------------------------------------

/// Runs worker `w`'s whole plan against the region (called in the worker, after the fork),
/// passing `gate`'s barriers around its loop. None: the parent was gone before the release.
pub fn work(region: &Region, w: usize, plan: &Plan, gate: &dyn Gate) -> Option<WorkerReport> {
    let ctl = Control {
        header: region.header(),
        area: region.worker(w),
        worker: w,
        gate,
    };
    match &plan.work {
        Work::Counter => with_strategy(Worker { region, plan, ctl }, counter::Memory),
        Work::Votes { .. } => with_strategy(Worker { region, plan, ctl }, votes::Voter),
        Work::Record | Work::Cache { .. } | Work::Ledger { .. } => match plan.mode {
            Mode::Processes => run_scenario::<Shared>(region, w, plan, ctl),
            Mode::Threads => run_scenario::<Private>(region, w, plan, ctl),
        },
    }
}

/// This worker's identity in lock words (`step::owner_id`).
pub fn owner_id(region: &Region, w: usize) -> u32 {
    // Relaxed: written by the parent before the first fork (or thread spawn).
    crate::step::owner_id(w, region.header().generation.load(Relaxed))
}

/// What runs with the hooks a run chose (Rust has no generic closures: this is one).
trait WithHooks {
    type Out;
    fn with<H: Hooks>(self, hooks: H) -> Self::Out;
}

/// What one worker works on: the region, the run's plan, its own control words.
#[derive(Clone, Copy)]
pub struct Worker<'a> {
    pub region: &'a Region,
    pub plan: &'a Plan,
    pub ctl: Control<'a>,
}

/// A workload whose updates go through a strategy (the counter, votes): what it runs once the
/// run's hooks and strategy are chosen, both as types.
pub trait StrategyWorker {
    fn run<S: Strategy, H: Hooks>(
        self,
        on: Worker<'_>,
        strategy: &S,
        hooks: H,
    ) -> Option<WorkerReport>;
}

/// Chooses the worker's hooks, then the run's strategy (the one `strategy::dispatch`), and runs
/// `workload` with both.
fn with_strategy<W: StrategyWorker>(on: Worker<'_>, workload: W) -> Option<WorkerReport> {
    struct Hooked<'a, W> {
        on: Worker<'a>,
        workload: W,
    }
    impl<W: StrategyWorker> WithHooks for Hooked<'_, W> {
        type Out = Option<WorkerReport>;
        fn with<H: Hooks>(self, hooks: H) -> Option<WorkerReport> {
            let plan = self.on.plan;
            let chosen = Chosen {
                on: self.on,
                workload: self.workload,
                hooks,
            };
            strategy::dispatch(
                plan.variant.mechanism(),
                plan.mode,
                plan.race_window,
                chosen,
            )
        }
    }
    struct Chosen<'a, W, H> {
        on: Worker<'a>,
        workload: W,
        hooks: H,
    }
    impl<W: StrategyWorker, H: Hooks> WithStrategy for Chosen<'_, W, H> {
        type Out = Option<WorkerReport>;
        fn with<S: Strategy>(self, strategy: &S) -> Option<WorkerReport> {
            self.workload.run(self.on, strategy, self.hooks)
        }
    }
    with_hooks(on.region, on.ctl.worker, on.plan, Hooked { on, workload })
}

/// Calls `user` with worker `w`'s hooks, chosen once: the armed `Probe` or the `Quiet` ones,
/// over its own store writer (opened here, after the fork: never a file of the parent's) or
/// none.
fn with_hooks<U: WithHooks>(region: &Region, w: usize, plan: &Plan, user: U) -> U::Out {
    match plan.store.as_deref() {
        None => hooks_over(region, w, plan, &NoStore, user),
        Some(store) => {
            let recorder = Recorder::open(store, w);
            let out = hooks_over(region, w, plan, &recorder, user);
            recorder.finish();
            out
        }
    }
}

fn hooks_over<P: Persistence, U: WithHooks>(
    region: &Region,
    w: usize,
    plan: &Plan,
    persist: &P,
    user: U,
) -> U::Out {
    let me = owner_id(region, w);
    if !plan.armed {
        return user.with(Quiet::new(region.worker(w), me, persist));
    }
    let strike = plan
        .strike
        .filter(|_| w == crate::fault::Faults::struck_worker(plan.seed, plan.workers));
    let probe = Probe::new(region, w, me, persist, plan.hold_after_read, strike)
        .parking_before(plan.kills.park_before(w, plan.ops));
    // A strike in the script: lock holders wait for real waiters (see `probe`).
    if plan.hold_after_read && plan.strike.is_some() {
        user.with(probe.queued_by_areas(region))
    } else {
        user.with(probe)
    }
}

/// Record, cache and ledger: the scenario's own step, around the one loop.
fn run_scenario<S: Scope>(
    region: &Region,
    w: usize,
    plan: &Plan,
    ctl: Control<'_>,
) -> Option<WorkerReport> {
    // Opened here, in the worker (after the fork): never a file or connection of the parent's.
    let recorder = plan.store.as_deref().map(|s| Recorder::open(s, w));
    let env = Env {
        region,
        scratch: region.scratch(),
        layout: Layout {
            workers: region.worker_count(),
        },
        w,
        plan,
        script: Script {
            word: &region.header().held,
            // Only the first two workers play the script; the others run freely.
            on: plan.hold_after_read && w < 2,
        },
        recorder: recorder.as_ref(),
    };
    let report = match plan.work {
        Work::Record => scenario_loop(&record::Record::<S>::new(&env), &env, ctl),
        Work::Cache { .. } => scenario_loop(&cache::Cache::<S>::new(&env), &env, ctl),
        Work::Ledger { .. } => scenario_loop(&ledger::Ledger::<S>::new(&env), &env, ctl),
        _ => unreachable!("counter and votes update through a strategy"),
    };
    if let Some(r) = &recorder {
        r.finish();
    }
    report
}

fn scenario_loop<Sc: Scenario>(sc: &Sc, env: &Env<'_>, ctl: Control<'_>) -> Option<WorkerReport> {
    let mut step = ScenarioStep {
        sc,
        env,
        me: Some(sc.start(env)),
    };
    worker::run(
        &mut step,
        ctl,
        env.plan.ops,
        env.plan.latency,
        env.plan.clock,
    )
}

/// A scenario as the loop's step.
struct ScenarioStep<'s, 'e, Sc: Scenario> {
    sc: &'s Sc,
    env: &'s Env<'e>,
    me: Option<Sc::Worker>,
}

impl<Sc: Scenario> Step for ScenarioStep<'_, '_, Sc> {
    #[inline]
    fn update(&mut self, i: u64) -> Result<Outcome, Halt> {
        // A worker whose store failed stops: the parent reports the failure for the run.
        if self.env.recorder.is_some_and(|r| r.failed()) {
            return Err(Halt::Store);
        }
        let me = self
            .me
            .as_mut()
            .expect("finished only once, after the loop");
        Ok(Outcome::Applied(self.sc.step(self.env, me, i)))
    }

    fn finish(&mut self) {
        if let Some(me) = self.me.take() {
            self.sc.finish(self.env, me);
        }
    }
}

/// What one run of a scenario found, in the summary and its JSON.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Check {
    pub scenario: &'static str,
    pub variant: &'static str,
    pub invariant: &'static str,
    /// Units by which the invariant was broken (lost updates, torn reads, money moved…).
    pub violations: u64,
    /// Named tallies: rejections by reason, reads, refused overdrafts…
    pub counters: BTreeMap<String, u64>,
    /// What broke, in words, first few only ("field 2 lost 31 updates, …").
    pub findings: Vec<String>,
}

/// The row a scenario adds to a strategy summary.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub scenario: &'static str,
    pub variant: &'static str,
    pub invariant: &'static str,
    /// Counters summed over runs.
    pub counters: BTreeMap<String, u64>,
    /// Findings of the first run that broke the invariant.
    pub findings: Vec<String>,
}

/// Words in a worker's tally block (the largest any scenario needs: record's per-field
/// erasures for up to 64 fields, plus its own counters).
const TALLY: usize = 72;

/// The scratch layout every scenario shares: a few global words, one tally block per worker,
/// then the scenario's own array (the votes bitmap).
#[derive(Clone, Copy, Debug)]
pub struct Layout {
    pub workers: usize,
}

/// Global scratch words.
pub mod global {
    /// record version word; cache sequence word; ledger global lock word (low 32 bits).
    pub const VERSION: usize = 0;
    /// cache: the writers' version ticket.
    pub const TICKET: usize = 1;
    /// cache: value and related entry packed in one word (packed-word).
    pub const PACKED: usize = 2;
    /// Scripted interleaving: a second rendezvous counter.
    pub const SCRIPT: usize = 3;
    pub const COUNT: usize = 8;
}

impl Layout {
    pub fn tally(self, w: usize) -> std::ops::Range<usize> {
        let start = global::COUNT + w * TALLY;
        start..start + TALLY
    }
    pub fn array_start(self) -> usize {
        global::COUNT + self.workers * TALLY
    }
}

/// What a scenario's worker sees.
pub struct Env<'a> {
    pub region: &'a Region,
    pub scratch: &'a [AtomicU64],
    pub layout: Layout,
    pub w: usize,
    pub plan: &'a Plan,
    pub script: Script<'a>,
    /// Where this worker persists its winning updates (transfers, reads), when the run has a
    /// store.
    pub recorder: Option<&'a Recorder<'a>>,
}

impl Env<'_> {
    /// This worker's tally words (written only by it, read by the parent after it is DONE).
    pub fn tally(&self) -> &[AtomicU64] {
        &self.scratch[self.layout.tally(self.w)]
    }

    /// Stores this worker's final tallies where the parent reads them (`tally`, `tally_sum`).
    pub fn publish_tally(&self, tally: &[u64]) {
        for (word, v) in self.tally().iter().zip(tally) {
            // Relaxed: published by the worker's Release store of DONE (see `tally`).
            word.store(*v, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Persists one winning update when the run has a store: inside the critical section for
    /// lock fixes, right after the winning step otherwise (as `Probe::won`).
    #[inline]
    pub fn won(&self, slot: usize, read: u32, written: u32, retries: u32) {
        if let Some(r) = self.recorder {
            r.won(slot, read, written, retries);
        }
    }

    /// Persists one ledger transfer when the run has a store: inside its locks for the lock
    /// fixes, after its second write for the bug.
    #[inline]
    pub fn transferred(&self, t: crate::history::Transfer) {
        if let Some(r) = self.recorder {
            r.transfer(t);
        }
    }

    /// Persists what one cache read saw when the run has a store.
    #[inline]
    pub fn read_seen(&self, seen: crate::history::Seen) {
        if let Some(r) = self.recorder {
            r.read(seen);
        }
    }

    /// This worker's identity in lock words (`step::owner_id`).
    pub fn owner_id(&self) -> u32 {
        owner_id(self.region, self.w)
    }
}

/// The per-worker step of record, cache and ledger; the loop around it (stop word, timing,
/// progress) is `worker::drive`'s. The invariant check is each module's `check`.
pub trait Scenario: Sync {
    /// A worker's own state (its random stream, its tallies).
    type Worker;
    fn start(&self, env: &Env<'_>) -> Self::Worker;
    /// Update number `i` of this worker.
    fn step(&self, env: &Env<'_>, me: &mut Self::Worker, i: u64) -> Applied;
    /// Publishes the worker's tallies into `env.tally()` (before DONE is stored).
    fn finish(&self, env: &Env<'_>, me: Self::Worker);
}

/// A two-worker rendezvous in shared memory, for scripted interleavings: worker A arrives
/// and waits until B has done its step, and so on. Counted on the header's `held` word;
/// every wait is bounded, and a script that does not happen as written gives up after
/// `SCRIPT_LIMIT` (the invariant check then shows whether the loss happened anyway).
pub struct Script<'a> {
    word: &'a AtomicU32,
    pub on: bool,
}

const SCRIPT_LIMIT: Duration = Duration::from_secs(10);

impl Script<'_> {
    /// Marks one more step done and wakes whoever waits for it.
    pub fn arrive(&self) {
        if self.on {
            // SeqCst: test-only path, once per worker; the simplest ordering to reason about.
            self.word.fetch_add(1, SeqCst);
            <futex::Shared as Scope>::wake_all(self.word);
        }
    }

    /// Waits until `n` steps are done (or the script gives up).
    pub fn wait_for(&self, n: u32) {
        if !self.on {
            return;
        }
        let deadline = Instant::now() + SCRIPT_LIMIT;
        loop {
            let seen = self.word.load(SeqCst);
            if seen >= n || Instant::now() >= deadline {
                return;
            }
            futex::shared_wait_for(self.word, seen, Duration::from_millis(50));
        }
    }
}

/// Publishes a worker's tally into its block, at the end of its run (the writing side of
/// [`tally`]).
pub fn publish_tally(words: &[AtomicU64], tally: &[u64]) {
    for (word, &v) in words.iter().zip(tally) {
        // Relaxed: published by the worker's Release store of DONE, which the parent's Acquire
        // load observes before it reads the tally.
        word.store(v, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Reads worker `w`'s tally word `k` (after the pool reaped every worker).
pub fn tally(region: &Region, w: usize, k: usize) -> u64 {
    let layout = Layout {
        workers: region.worker_count(),
    };
    // Relaxed: the worker stored it before its Release store of DONE (or before sending its
    // report over the channel in thread mode), which the parent has already observed.
    region.scratch()[layout.tally(w)][k].load(std::sync::atomic::Ordering::Relaxed)
}

/// Tally word `k` summed over every reporting worker.
pub fn tally_sum(region: &Region, reports: &[WorkerReport], k: usize) -> u64 {
    reports.iter().map(|r| tally(region, r.worker, k)).sum()
}

/// A splitmix64 stream per (seed, worker, purpose): the parent can replay it exactly.
pub type Rng = crate::pick::SplitMix64;

pub fn rng(seed: u64, worker: usize, salt: u64) -> Rng {
    Rng::new(
        seed ^ (worker as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03)
            ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15),
    )
}

/// Spins `n` times between a read and its write, to widen a race on purpose.
#[inline]
pub fn widen(n: u32) {
    for _ in 0..n {
        std::hint::spin_loop();
    }
}
