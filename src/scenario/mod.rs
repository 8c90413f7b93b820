//! The four incidents as scenarios: what is updated, the bug, its fixes, and the invariant
//! that says whether anything was lost.
//!
//! - `votes`: the poll counter (the SharedArrayBuffer / vote-counting incidents), with bad
//!   option ids rejected and counted, and `votes_after` checked to run 1…n per option;
//! - `record`: a record of F fields rewritten whole (the file-store incident);
//! - `cache`: a value and its related entries, set then invalidated (the stale-cache incident);
//! - `ledger`: transfers between accounts; the total never changes.
//!
//! A scenario reuses the run's machinery: the region's slots (fields, cache entries, accounts)
//! with their lock words, `LockWord`, the pool (processes or threads), the start barrier and the
//! watchdog. What it adds lives in the region's scratch words (see `Region::scratch`): version
//! and sequence words, per-worker tallies, and for votes a `votes_after` bitmap. Each worker
//! publishes its tallies before it reports DONE; the parent reads them after reaping, like the
//! rest of the report.
//!
//! With `--store`, votes and record workers persist each winning update (one slot, v to v+1)
//! through the same `Recorder` as the counter, and the run's stored record is verified like
//! the counter's. cache and ledger are not counters: a ledger worker persists each transfer
//! that moved money (both accounts' versions and balances read), a cache writer each version
//! it wrote and a reader what each read saw; `torture verify` checks their own invariants
//! from those records (`verify::Shape`).
//!
//! Variants are named after the incident's own code (`whole-record`, `seqlock`, …) and map to
//! the strategy whose mechanism they use, so the summary keeps one row type.

mod cache;
mod ledger;
mod record;
mod votes;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicU32, AtomicU64};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::check::Count;
use crate::clock::now_ns;
use crate::config::{Config, Mode};
use crate::error::Error;
use crate::futex::{self, Scope};
use crate::latency;
use crate::pool::PoolOutcome;
use crate::region::{Region, WorkerArea};
use crate::report::{RunSummary, StrategySummary, Summary, Verdict};
use crate::store::Recorder;
use crate::strategy::{Applied, StrategyKind};
use crate::worker::{Plan, WorkerReport};

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

    /// The variants run when --fix is not given: the bug first, then every fix that
    /// terminates (unordered-locks deadlocks by design, so it is asked for by name).
    pub fn default_fixes(self) -> Vec<Fix> {
        Fix::ALL
            .into_iter()
            .filter(|f| f.scenario() == self && *f != Fix::UnorderedLocks)
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
}

impl Fix {
    pub const ALL: [Fix; 12] = [
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
        }
    }

    pub fn scenario(self) -> ScenarioKind {
        match self {
            Fix::WholeRecord | Fix::RecordLock | Fix::FieldAtomic | Fix::VersionCas => {
                ScenarioKind::Record
            }
            Fix::TwoStep | Fix::PairLock | Fix::Seqlock | Fix::PackedWord => ScenarioKind::Cache,
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
            Fix::FieldAtomic | Fix::PackedWord => StrategyKind::Atomic,
            Fix::VersionCas | Fix::Seqlock => StrategyKind::Cas,
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

/// A scenario's settings, validated once with the rest of the config.
#[derive(Clone, Debug, Serialize)]
pub struct ScenarioConfig {
    pub kind: ScenarioKind,
    /// record, cache, ledger: the variants to run (votes uses the config's strategies).
    pub fixes: Vec<Fix>,
    /// votes: fraction of ballots carrying a bad option id.
    pub invalid_rate: f64,
    /// cache: workers 0..writers write, the others read.
    pub writers: usize,
    /// ledger: workers 0..auditors sample the total during the run instead of transferring.
    pub auditors: usize,
}

/// The scenario flags, flattened into `torture run`.
#[derive(clap::Args, Clone, Debug)]
pub struct ScenarioArgs {
    /// Replay an incident: votes, record, cache or ledger [default: the plain counter].
    #[arg(long, value_enum, value_name = "NAME")]
    pub scenario: Option<ScenarioKind>,
    /// record/cache/ledger: variants to run, comma separated [default: the bug, then each fix].
    #[arg(long, value_enum, value_delimiter = ',', value_name = "NAME")]
    pub fix: Vec<Fix>,
    /// votes: fraction of ballots with a bad option id (out of range, non-numeric, trailing
    /// garbage), each rejected with its reason.
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    pub invalid_rate: f64,
    /// record: fields per record (one slot each; worker w changes field w mod F).
    #[arg(long, default_value_t = 4, value_name = "F")]
    pub fields: usize,
    /// cache: related entries beside the value.
    #[arg(long, default_value_t = 2, value_name = "R")]
    pub related: usize,
    /// cache: workers that write (the rest read).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub writers: usize,
    /// ledger: accounts.
    #[arg(long, default_value_t = 8, value_name = "N")]
    pub accounts: usize,
    /// ledger: workers that sample the total during the run instead of transferring.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub auditors: usize,
}

impl ScenarioArgs {
    /// Applies the scenario to `config`; `strategy_given`: --strategy was on the command line.
    pub fn apply(&self, config: &mut Config, strategy_given: bool) -> Result<(), Error> {
        let usage = |m: String| Err(Error::Usage(m));
        let Some(kind) = self.scenario else {
            if !self.fix.is_empty() {
                return usage("--fix applies to --scenario record, cache or ledger".into());
            }
            if self.invalid_rate != 0.0 {
                return usage("--invalid-rate applies to --scenario votes".into());
            }
            return Ok(());
        };
        let list = |k: ScenarioKind| {
            Fix::ALL
                .iter()
                .filter(|f| f.scenario() == k)
                .map(|f| f.name())
                .collect::<Vec<_>>()
                .join(", ")
        };
        if kind == ScenarioKind::Votes {
            if !self.fix.is_empty() {
                return usage(format!(
                    "--scenario votes takes --strategy (racy, atomic, cas, futex-lock, spin-lock, pthread), not --fix {}",
                    self.fix[0].name()
                ));
            }
        } else {
            if strategy_given {
                return usage(format!(
                    "--strategy does not apply to --scenario {}; its variants are --fix {}",
                    kind.name(),
                    list(kind)
                ));
            }
            if let Some(f) = self.fix.iter().find(|f| f.scenario() != kind) {
                return usage(format!(
                    "--fix {} does not apply to --scenario {} (its variants: {})",
                    f.name(),
                    kind.name(),
                    list(kind)
                ));
            }
        }
        if kind != ScenarioKind::Votes && self.invalid_rate != 0.0 {
            return usage("--invalid-rate applies to --scenario votes".into());
        }
        let fixes = if kind == ScenarioKind::Votes {
            Vec::new()
        } else if self.fix.is_empty() {
            kind.default_fixes()
        } else {
            self.fix.clone()
        };
        match kind {
            ScenarioKind::Votes => {}
            ScenarioKind::Record => config.slots = self.fields,
            ScenarioKind::Cache => config.slots = 1 + self.related,
            ScenarioKind::Ledger => {
                config.slots = self.accounts;
                // Accounts need money to move: 1000 each unless --initial says otherwise.
                if config.initial == 0 {
                    config.initial = 1000;
                }
            }
        }
        config.scenario = Some(ScenarioConfig {
            kind,
            fixes,
            invalid_rate: self.invalid_rate,
            writers: self.writers,
            auditors: self.auditors,
        });
        Ok(())
    }
}

impl ScenarioConfig {
    /// The rows to run, in order.
    pub fn variants(&self, config: &Config) -> Vec<Variant> {
        match self.kind {
            ScenarioKind::Votes => config
                .strategies
                .iter()
                .map(|&s| Variant::Strategy(s))
                .collect(),
            _ => self.fixes.iter().map(|&f| Variant::Fix(f)).collect(),
        }
    }

    /// Checks the scenario's own numbers; the message names the flag.
    pub fn validate(&self, config: &Config) -> Result<(), Error> {
        let usage = |m: String| Err(Error::Usage(m));
        match self.kind {
            ScenarioKind::Votes => {
                if !(0.0..=1.0).contains(&self.invalid_rate) {
                    return usage("--invalid-rate must be a fraction from 0 to 1".into());
                }
            }
            ScenarioKind::Record => {
                if config.slots == 0 || config.slots > 64 {
                    return usage("--fields must be from 1 to 64".into());
                }
            }
            ScenarioKind::Cache => {
                if self.writers == 0 || self.writers >= config.workers {
                    return usage(format!(
                        "--writers {} leaves no reader among --workers {}",
                        self.writers, config.workers
                    ));
                }
                if config.slots > 64 {
                    return usage("--related must be from 0 to 63".into());
                }
            }
            ScenarioKind::Ledger => {
                if config.slots < 2 || config.slots > ledger::MAX_ACCOUNTS {
                    return usage(format!(
                        "--accounts must be from 2 (a transfer needs two) to {}",
                        ledger::MAX_ACCOUNTS
                    ));
                }
                if config.initial > i32::MAX as u32 / config.slots as u32 {
                    return usage("--initial is too large for the ledger's signed total".into());
                }
                if config.hold_after_read
                    && (config.workers < 2 + self.auditors || config.slots < 3)
                {
                    return usage(
                        "--hold-after-read on the ledger scripts workers 0 and 1 transferring: it needs --accounts 3 or more and --workers at least 2 + --auditors".into(),
                    );
                }
                if self.auditors >= config.workers {
                    return usage(format!(
                        "--auditors {} leaves no worker to transfer among --workers {}",
                        self.auditors, config.workers
                    ));
                }
            }
        }
        if config.hold_after_read {
            if config.workers < 2 {
                return usage(
                    "--hold-after-read scripts two workers: use --workers 2 or more".into(),
                );
            }
            for v in self.variants(config) {
                let ok = match v {
                    Variant::Fix(f) => f.can_script(),
                    Variant::Strategy(s) => s.can_hold_after_read(),
                };
                if !ok {
                    return usage(format!(
                        "--hold-after-read scripts the losing step of a bug; {} has none to hold",
                        v.name()
                    ));
                }
            }
        }
        Ok(())
    }
}

/// What a worker needs to know about the scenario, beyond the plan.
#[derive(Clone, Debug)]
pub struct WorkerPlan {
    pub kind: ScenarioKind,
    pub variant: Variant,
    pub writers: usize,
    pub auditors: usize,
    pub initial: u32,
    /// votes: each option's first bit in the `votes_after` bitmap, and one past the last.
    pub bitmap: std::sync::Arc<Vec<u64>>,
    pub invalid_rate: f64,
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

/// The verdict column for a scenario row: the invariant, then what happened to it.
pub fn verdict_text(s: &StrategySummary, row: &Row) -> String {
    let runs = s.runs.len();
    let broke = s.runs_with_loss;
    let v = match s.verdict {
        Verdict::Exact => format!("holds in {runs} of {runs} runs"),
        Verdict::RaceCaught => format!("broken in {broke} of {runs} runs: race caught"),
        Verdict::RaceMissed => "held: race missed (widen --race-window)".into(),
        Verdict::Failed => format!("FAILED: broken in {broke} of {runs} runs"),
    };
    format!("{}: {v}", row.invariant)
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
    pub sp: &'a WorkerPlan,
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
        // Relaxed: written by the parent before the first fork (or thread spawn).
        let generation = self
            .region
            .header()
            .generation
            .load(std::sync::atomic::Ordering::Relaxed);
        crate::step::owner_id(self.w, generation)
    }
}

/// The per-worker step of a scenario; the loop around it (timing, progress, tallies) is
/// `drive`'s. Which variants apply and the invariant check are each module's `check`.
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

/// Runs worker `w` of a scenario plan (called by `worker::run`).
pub fn run_worker(region: &Region, w: usize, plan: &Plan, sp: &WorkerPlan) -> WorkerReport {
    use crate::futex::{Private, Shared};
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
        sp,
        script: Script {
            word: &region.header().held,
            // Only the first two workers play the script; the others run freely.
            on: plan.hold_after_read && w < 2,
        },
        recorder: recorder.as_ref(),
    };
    match (sp.kind, plan.processes) {
        (ScenarioKind::Votes, true) => votes::run::<Shared>(&env),
        (ScenarioKind::Votes, false) => votes::run::<Private>(&env),
        (ScenarioKind::Record, true) => drive(&record::Record::<Shared>::new(&env), &env),
        (ScenarioKind::Record, false) => drive(&record::Record::<Private>::new(&env), &env),
        (ScenarioKind::Cache, true) => drive(&cache::Cache::<Shared>::new(&env), &env),
        (ScenarioKind::Cache, false) => drive(&cache::Cache::<Private>::new(&env), &env),
        (ScenarioKind::Ledger, true) => drive(&ledger::Ledger::<Shared>::new(&env), &env),
        (ScenarioKind::Ledger, false) => drive(&ledger::Ledger::<Private>::new(&env), &env),
    }
}

/// The loop every scenario worker runs: step, time, count, publish progress.
pub fn drive<Sc: Scenario>(scenario: &Sc, env: &Env<'_>) -> WorkerReport {
    let area: &WorkerArea = env.region.worker(env.w);
    let mut me = scenario.start(env);
    let mut histogram = latency::new_histogram();
    let (mut retries, mut waits, mut wakes) = (0u64, 0u64, 0u64);
    let start_ns = now_ns();
    let mut done = 0;
    for i in 0..env.plan.ops {
        // A worker whose store failed stops: the parent reports the failure for the run.
        if env.recorder.is_some_and(|r| r.failed()) {
            break;
        }
        let timed = env.plan.latency.times(i);
        let t0 = if timed || env.recorder.is_some() {
            now_ns()
        } else {
            0
        };
        if let Some(r) = env.recorder {
            r.begin(t0);
        }
        let applied = scenario.step(env, &mut me, i);
        if timed {
            histogram.saturating_record(now_ns().saturating_sub(t0).max(1));
        }
        retries += applied.retries as u64;
        waits += applied.waits as u64;
        wakes += applied.wakes as u64;
        // Relaxed: read for progress (and the watchdog) only; final figures are published
        // by `WorkerReport::publish`.
        area.completed
            .store(i + 1, std::sync::atomic::Ordering::Relaxed);
        done = i + 1;
    }
    let end_ns = now_ns();
    if let Some(r) = env.recorder {
        r.finish();
    }
    scenario.finish(env, me);
    WorkerReport {
        worker: env.w,
        completed: done,
        retries,
        waits,
        wakes,
        start_ns,
        end_ns,
        histogram,
    }
}

/// A splitmix64 stream per (seed, worker, purpose): the parent can replay it exactly.
pub type Rng = crate::workload::SplitMix64;

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

/// Runs every variant of the scenario `repeat` times and summarises, like `run::run`.
pub fn run(config: &Config, sc: &ScenarioConfig) -> Result<Summary, Error> {
    let mut strategies = Vec::new();
    for variant in sc.variants(config) {
        let mut runs = Vec::new();
        let mut histograms = Vec::new();
        let mut row = Row {
            scenario: sc.kind.name(),
            variant: variant.name(),
            invariant: sc.kind.invariant(),
            counters: BTreeMap::new(),
            findings: Vec::new(),
        };
        for r in 0..config.repeat {
            let seed = config.seed.wrapping_add(r as u64);
            let (run, histogram) = run_once(config, sc, variant, seed)?;
            if let Some(check) = &run.check {
                for (k, v) in &check.counters {
                    *row.counters.entry(k.clone()).or_default() += v;
                }
                if row.findings.is_empty() {
                    row.findings = check.findings.clone();
                }
            }
            runs.push(run);
            histograms.push(histogram);
        }
        let mut s = StrategySummary::of(variant.mechanism(), runs, histograms);
        // The row's verdict is the invariant's, not the slot count's.
        s.runs_with_loss = s
            .runs
            .iter()
            .filter(|r| r.check.as_ref().is_some_and(|c| c.violations > 0))
            .count();
        s.verdict = if s.runs.iter().any(|r| r.verdict == Verdict::Failed) {
            Verdict::Failed
        } else if variant.is_bug() {
            if s.runs_with_loss > 0 {
                Verdict::RaceCaught
            } else {
                Verdict::RaceMissed
            }
        } else {
            Verdict::Exact
        };
        s.scenario = Some(row);
        strategies.push(s);
    }
    Ok(Summary::new(config, strategies))
}

/// Scratch words the scenario needs besides the globals and tallies.
fn array_words(config: &Config, sc: &ScenarioConfig, bitmap: &[u64]) -> usize {
    match sc.kind {
        ScenarioKind::Votes => (bitmap.last().copied().unwrap_or(0) as usize).div_ceil(64),
        // One version word per account: what chains each account's states in the store.
        ScenarioKind::Ledger => config.slots,
        _ => 0,
    }
}

fn run_once(
    config: &Config,
    sc: &ScenarioConfig,
    variant: Variant,
    seed: u64,
) -> Result<(RunSummary, Histogram<u64>), Error> {
    let mechanism = variant.mechanism();
    let bitmap = match sc.kind {
        ScenarioKind::Votes => votes::bitmap_offsets(config, sc, seed),
        _ => Vec::new(),
    };
    let layout = Layout {
        workers: config.workers,
    };
    let scratch = layout.array_start() + array_words(config, sc, &bitmap);
    let region = Region::create_with_scratch(
        config.slots,
        config.workers,
        config.layout,
        config.initial,
        scratch,
    )?;
    let sp = WorkerPlan {
        kind: sc.kind,
        variant,
        writers: sc.writers,
        auditors: sc.auditors,
        initial: config.initial,
        bitmap: std::sync::Arc::new(bitmap),
        invalid_rate: sc.invalid_rate,
    };
    if sc.kind == ScenarioKind::Cache {
        cache::prepare(&region, config.initial);
    }
    let plan = Plan {
        strategy: mechanism,
        processes: config.mode == Mode::Processes,
        ops: config.ops,
        seed,
        pick: config.pick,
        latency: config.latency,
        race_window: config.race_window,
        hold_after_read: config.hold_after_read,
        scenario: Some(sp.clone()),
        // The scenario and variant, so `torture verify` names what it checks.
        store: crate::run::begin_store(
            config,
            format!("{} {}", sc.kind.name(), variant.name()),
            seed,
        )?,
        strike: config.faults.strike,
    };
    let watcher = crate::run::watcher(
        config,
        format!("{} {}", sc.kind.name(), variant.name()),
        seed,
        (sc.kind == ScenarioKind::Ledger).then_some(ledger::explain_stall as _),
    );
    let outcome = crate::run::run_pool(config.mode, &region, &plan, &watcher)?;
    let history = match &plan.store {
        Some(store) => {
            // Acknowledged = events each worker persisted: a rejected ballot is no update.
            let mut acked = vec![0u64; region.worker_count()];
            for r in &outcome.reports {
                acked[r.worker] = match sc.kind {
                    ScenarioKind::Votes => votes::accepted(&region, r.worker),
                    // Refused overdrafts and audits change nothing and leave no record.
                    ScenarioKind::Ledger => ledger::transfers(&region, r.worker),
                    _ => r.completed,
                };
            }
            if sc.kind == ScenarioKind::Cache {
                cache::settle(&region, variant);
            }
            // Scenarios refuse fault flags: nobody was killed.
            Some(crate::run::persist_end_and_verify(
                store,
                &region,
                acked,
                Vec::new(),
            )?)
        }
        None => None,
    };
    let (count, check) = match sc.kind {
        ScenarioKind::Votes => votes::check(config, sc, &sp, seed, &region, &outcome.reports),
        ScenarioKind::Record => record::check(config, &sp, &region, &outcome.reports),
        ScenarioKind::Cache => cache::check(config, &sp, &region, &outcome.reports),
        ScenarioKind::Ledger => ledger::check(config, &sp, &region, &outcome.reports),
    };
    let (mut run, histogram) = summarise(config, &plan, &region, outcome, count, check);
    if let Some(h) = history {
        // A fix whose stored record does not verify failed, whatever memory says; the bug's
        // record is expected to show the damage (its witnesses).
        if !h.verified && !variant.is_bug() {
            run.verdict = Verdict::Failed;
        }
        run.history = Some(h);
    }
    Ok((run, histogram))
}

fn summarise(
    config: &Config,
    plan: &Plan,
    region: &Region,
    outcome: PoolOutcome,
    count: Count,
    mut check: Check,
) -> (RunSummary, Histogram<u64>) {
    let variant = plan.scenario.as_ref().expect("a scenario plan").variant;
    check.findings.truncate(8);
    // The invariant decides, not the slot count: a bug is expected to break it.
    let verdict = match (variant.is_bug(), check.violations == 0) {
        (false, true) => Verdict::Exact,
        (false, false) => Verdict::Failed,
        (true, false) => Verdict::RaceCaught,
        (true, true) => Verdict::RaceMissed,
    };
    let judged = crate::run::Judged {
        count,
        verdict,
        wrong_slots: Vec::new(),
        check: Some(check),
    };
    crate::run::run_summary(config, plan, region, outcome, judged)
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

/// Below the table: each scenario row's tallies and what broke.
pub fn render_notes(summary: &Summary, out: &mut String) {
    use std::fmt::Write;
    let Some(sc) = &summary.config.scenario else {
        return;
    };
    let _ = writeln!(
        out,
        "\nscenario {}: invariant \"{}\"; lost = units by which it broke",
        sc.kind.name(),
        sc.kind.invariant()
    );
    for s in &summary.strategies {
        let Some(row) = &s.scenario else { continue };
        let counters: Vec<String> = row
            .counters
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let _ = writeln!(out, "  {}: {}", row.variant, counters.join(", "));
        for f in &row.findings {
            let _ = writeln!(out, "    {f}");
        }
    }
}
