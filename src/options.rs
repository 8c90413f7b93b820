//! Everything one `torture run` needs, parsed and validated once, before anything forks: every
//! bad input is one `Error::Usage` line naming the flag that is wrong (exit 2).
//!
//! [`RunArgs`] is the command line (clap); [`Options::from_args`] turns it into [`Options`],
//! applying the scenario's flags and checking what only the command line knows (which flags
//! were given); [`Options::validate`] checks every number against the others, the target and
//! this machine. Nothing downstream validates again.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::error::Error;
use crate::fault::{Faults, PauseSpec, Strike, StrikeAt};
use crate::latency::LatencyMode;
use crate::pick::Pick;
use crate::region::{Layout, Region, MAX_REGION_BYTES};
use crate::store::{Fsync, Persist, StoreConfig, StoreSpec};
use crate::strategy::StrategyKind;
use crate::target::TargetSpec;
use crate::workload::{Fix, ScenarioConfig, ScenarioKind, Variant};

pub use crate::progress::CAP_FACTOR;
pub use crate::strategy::Mode;

/// The flags of `torture run` (also the default command).
#[derive(clap::Args, Clone, Debug)]
pub struct RunArgs {
    /// Worker processes (or threads with --mode threads).
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub workers: usize,
    /// Updates each worker makes.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub ops: u64,
    /// Shared counters the updates are spread over.
    #[arg(long, default_value_t = 1, value_name = "S")]
    pub slots: usize,
    /// Strategies to run, comma separated [default: every one the target has, racy first].
    #[arg(long, value_enum, value_delimiter = ',', value_name = "NAME")]
    pub strategy: Vec<StrategyKind>,
    /// Where the slots live: memory (a shared region), or dir:PATH (one file per slot, or the
    /// record file of --scenario record).
    #[arg(long, default_value = "memory", value_name = "memory|dir:PATH")]
    pub target: TargetSpec,
    #[arg(long, value_enum, default_value = "processes")]
    pub mode: Mode,
    /// packed: 4-byte slots sharing cache lines; padded: one 128-byte line per slot.
    #[arg(long, value_enum, default_value = "packed")]
    pub layout: Layout,
    /// Seed of every worker's slot choice (runs with the same seed pick the same slots).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// How slots are chosen: uniform, or hot:P (P% of updates to slot 0).
    #[arg(long, default_value = "uniform", value_name = "uniform|hot:P")]
    pub pick: Pick,
    /// Value every slot starts at (the poll that already had 50 votes).
    #[arg(long, default_value_t = 0, value_name = "V")]
    pub initial: u32,
    /// racy only: spin iterations between its read and its write, to widen the race (any target).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub race_window: u32,
    /// Which updates are timed: all, sample:N (one in N) or off.
    #[arg(long, default_value = "all", value_name = "all|sample:N|off")]
    pub latency: LatencyMode,
    /// Run each strategy R times and report how often updates were lost.
    #[arg(long, default_value_t = 1, value_name = "R")]
    pub repeat: u32,
    /// For tests: hold each worker's first update right after its read until every worker has
    /// read (a lock holder: until another worker queues on the lock). Scripts the lost update.
    #[arg(long)]
    pub hold_after_read: bool,
    /// Process mode: SIGKILL K seeded workers, each after a seeded share of its updates (a
    /// victim not reached by its last update waits there for its kill). Deaths are data: the
    /// run checks acknowledged <= final <= acknowledged + in flight.
    #[arg(long, default_value_t = 0, value_name = "K")]
    pub kill: u32,
    /// Process mode: stop K workers, each while it holds a lock (the next one to take a lock
    /// stops itself there), and SIGCONT each MS later. A paused worker is alive: nothing is
    /// taken from it.
    #[arg(long, value_name = "K:MS")]
    pub pause: Option<PauseSpec>,
    /// For tests, process mode: one worker SIGKILLs itself the N-th time it reaches POINT
    /// (after-read, after-cas, holding-lock, after-write, before-wake).
    #[arg(long, value_name = "POINT:N", value_parser = |s: &str| StrikeAt::parse(s, Strike::Kill))]
    pub crash_at: Option<StrikeAt>,
    /// For tests, process mode: like --crash-at, but the worker SIGSTOPs itself there and
    /// nobody resumes it (a hung lock holder: the watchdog's case).
    #[arg(long, value_name = "POINT:N", value_parser = |s: &str| StrikeAt::parse(s, Strike::Stop))]
    pub stop_at: Option<StrikeAt>,
    /// Seconds without any completed update before the run is declared stalled and stopped.
    #[arg(long, default_value_t = 10.0, value_name = "SECS")]
    pub stall_timeout: f64,
    /// Persist every winning update, then verify the record: log:PATH (an append-only event
    /// log) or sqlite:PATH. The file is emptied first.
    #[arg(long, value_name = "log:PATH|sqlite:PATH")]
    pub store: Option<StoreSpec>,
    /// When the event log, and a dir: target's files, are made durable: never (the page cache
    /// decides), at the end of each run (the parent syncs once), or every update (before it is
    /// acknowledged).
    #[arg(long, value_enum, default_value = "end")]
    pub fsync: Fsync,
    /// SQLite only: how a worker writes slots.value: blind (UPDATE … SET value = ?) or
    /// monotonic (never lower a stored value) [default: monotonic].
    #[arg(long, value_enum)]
    pub persist: Option<Persist>,
    /// Events a worker buffers before one write(2) (log) or one transaction (SQLite).
    #[arg(long, default_value_t = 256, value_name = "N")]
    pub batch: u32,
    /// For tests: hold each worker's first update before it persists until every worker has
    /// updated, then persist newest first (scripts the rollback of --persist blind).
    #[arg(long)]
    pub hold_before_persist: bool,
    /// Write each run's stored history for external checkers into this directory (created if
    /// missing): one Jepsen counter history per run and slot (needs --store).
    #[arg(long, value_name = "DIR")]
    pub history: Option<PathBuf>,
    /// edn: Jepsen's form, one op map a line; json: elle-cli's, one array.
    #[arg(long, value_enum, default_value = "edn")]
    pub history_format: crate::history::export::Format,
    /// Print the summary as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub scenario: ScenarioArgs,
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

/// One invocation's run, validated.
#[derive(Clone, Debug, Serialize)]
pub struct Options {
    pub strategies: Vec<StrategyKind>,
    pub workers: usize,
    pub ops: u64,
    pub slots: usize,
    /// Where the slots live.
    pub target: TargetSpec,
    pub mode: Mode,
    pub layout: Layout,
    pub seed: u64,
    pub pick: Pick,
    pub initial: u32,
    pub race_window: u32,
    pub latency: LatencyMode,
    pub repeat: u32,
    pub hold_after_read: bool,
    /// The incident replayed (`--scenario`); `None` is the plain counter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scenario: Option<ScenarioConfig>,
    /// Where every winning update is persisted and then verified; none: memory only.
    pub store: Option<StoreConfig>,
    /// `--fsync`: when a target's updates are made durable (the store's is in `store`).
    pub fsync: Fsync,
    /// Writes each run's stored history for external checkers into this directory.
    pub history: Option<PathBuf>,
    #[serde(skip)]
    pub stall_timeout: Duration,
    /// Run by time: after this long the workers are told to stop (each finishes its update in
    /// flight), and a run still going at `CAP_FACTOR` times it is killed (`Error::TimeLimit`).
    /// `ops` is then only an upper bound. None: every worker makes all its `ops`.
    #[serde(skip)]
    pub time_limit: Option<Duration>,
    /// Draw the per-run progress bar on stderr (when it is a terminal).
    #[serde(skip)]
    pub progress: bool,
    /// `--kill`, `--pause`, `--crash-at`, `--stop-at` (process mode only).
    pub faults: Faults,
}

type Checked = Result<(), Error>;

fn usage(m: impl Into<String>) -> Checked {
    Err(Error::Usage(m.into()))
}

impl Options {
    /// The options of `args`, validated.
    pub fn from_args(args: &RunArgs) -> Result<Options, Error> {
        if args.crash_at.is_some() && args.stop_at.is_some() {
            return Err(Error::Usage(
                "--crash-at and --stop-at strike the same worker: give one".into(),
            ));
        }
        if !(args.stall_timeout.is_finite() && args.stall_timeout > 0.0) {
            return Err(Error::Usage(
                "--stall-timeout must be a positive number of seconds".into(),
            ));
        }
        let sqlite = matches!(args.store, Some(StoreSpec::Sqlite(_)));
        if let (Some(p), false) = (args.persist, sqlite) {
            return Err(Error::Usage(format!(
                "--persist {} applies to --store sqlite:PATH (an event log only appends)",
                p.name()
            )));
        }
        if args.hold_before_persist && args.store.is_none() {
            return Err(Error::Usage(
                "--hold-before-persist scripts how updates reach a store: give --store too".into(),
            ));
        }
        let strategies = if args.strategy.is_empty() {
            args.target.strategies()?.to_vec()
        } else {
            args.strategy.clone()
        };
        let mut options = Options {
            strategies,
            workers: args.workers,
            ops: args.ops,
            slots: args.slots,
            target: args.target.clone(),
            mode: args.mode,
            layout: args.layout,
            seed: args.seed,
            pick: args.pick,
            initial: args.initial,
            race_window: args.race_window,
            latency: args.latency,
            repeat: args.repeat,
            hold_after_read: args.hold_after_read,
            store: args.store.clone().map(|spec| StoreConfig {
                spec,
                fsync: args.fsync,
                persist: args.persist.unwrap_or(Persist::Monotonic),
                batch: args.batch,
                hold_before_persist: args.hold_before_persist,
            }),
            history: args.history.clone(),
            fsync: args.fsync,
            stall_timeout: Duration::from_secs_f64(args.stall_timeout),
            scenario: None,
            time_limit: None,
            progress: true,
            faults: Faults {
                kill: args.kill,
                pause: args.pause,
                strike: args.crash_at.or(args.stop_at),
            },
        };
        args.scenario
            .apply(&mut options, !args.strategy.is_empty())?;
        options.validate()?;
        Ok(options)
    }

    /// The rows to run, in order: each strategy, or each of the scenario's variants.
    pub fn variants(&self) -> Vec<Variant> {
        match &self.scenario {
            Some(sc) => sc.variants(&self.strategies),
            None => self
                .strategies
                .iter()
                .map(|&s| Variant::Strategy(s))
                .collect(),
        }
    }

    /// Checks every number against the others, the target and this machine; the message
    /// names the flag.
    pub fn validate(&self) -> Checked {
        self.validate_strategies()?;
        if self.workers == 0 {
            return usage("--workers must be at least 1");
        }
        if let Some(sc) = &self.scenario {
            // The scenario's own flag says how many slots it takes: name that one.
            self.validate_scenario_shape(sc)?;
        }
        if self.slots == 0 {
            return usage("--slots must be at least 1");
        }
        if self.ops == 0 {
            return usage("--ops must be at least 1");
        }
        if self.repeat == 0 {
            return usage("--repeat must be at least 1");
        }
        if self.slots > u32::MAX as usize {
            return usage(format!(
                "--slots {} is more than a 32-bit slot index can address",
                self.slots
            ));
        }
        let limit = worker_limit(self.mode);
        if self.workers > limit.0 {
            return usage(format!(
                "--workers {} is more than this machine can {} ({})",
                self.workers,
                match self.mode {
                    Mode::Processes => "fork",
                    Mode::Threads => "spawn",
                },
                limit.1
            ));
        }
        let total = (self.workers as u128) * (self.ops as u128) + self.initial as u128;
        if total > u32::MAX as u128 {
            return usage(format!(
                "--ops {} with {} workers and --initial {} could push a slot past 2^32-1",
                self.ops, self.workers, self.initial
            ));
        }
        // A target of its own keeps its slots; the region then holds the control plane only.
        let region_slots = if self.target == TargetSpec::Memory {
            self.slots
        } else {
            0
        };
        let bytes =
            Region::bytes_needed(region_slots, self.workers, self.layout).unwrap_or(usize::MAX);
        let available = memory_available().unwrap_or(MAX_REGION_BYTES as u64);
        if bytes > MAX_REGION_BYTES || bytes as u64 > available / 2 {
            return usage(format!(
                "--slots {} and --workers {} need {} MiB of shared memory; this machine can spare {} MiB",
                self.slots,
                self.workers,
                bytes >> 20,
                (available / 2).min(MAX_REGION_BYTES as u64) >> 20
            ));
        }
        if self.workers > crate::step::MAX_OWNERS {
            return usage(format!(
                "--workers {} is more than a lock word can name ({})",
                self.workers,
                crate::step::MAX_OWNERS
            ));
        }
        self.validate_target()?;
        self.validate_faults()?;
        self.validate_store()?;
        match &self.scenario {
            Some(sc) => self.validate_scenario(sc),
            None => self.validate_counter(),
        }
    }

    fn validate_strategies(&self) -> Checked {
        if self.strategies.is_empty() {
            return usage("--strategy: name at least one strategy");
        }
        for (i, s) in self.strategies.iter().enumerate() {
            if self.strategies[..i].contains(s) {
                return usage(format!(
                    "--strategy {} is named twice: use --repeat to run it again",
                    s.name()
                ));
            }
        }
        let implemented = self.target.strategies()?;
        if let Some(s) = self.strategies.iter().find(|s| !implemented.contains(s)) {
            return usage(format!(
                "--strategy {} is not one --target {} implements ({})",
                s.name(),
                self.target.kind().name(),
                implemented
                    .iter()
                    .map(|k| k.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        Ok(())
    }

    fn validate_target(&self) -> Checked {
        let target = format!("--target {}", self.target.kind().name());
        if let Some(sc) = &self.scenario {
            self.validate_scenario_target(sc, &target)?;
        }
        if self.target == TargetSpec::Memory {
            return Ok(());
        }
        if self.faults.any() || self.hold_after_read {
            return usage(format!(
                "{target}: --kill, --pause, --crash-at, --stop-at and --hold-after-read script the memory target's workers; run them on --target memory"
            ));
        }
        Ok(())
    }

    /// A scenario runs on a target that can hold its slots, each variant with a mechanism the
    /// target implements for them.
    fn validate_scenario_target(&self, sc: &ScenarioConfig, target: &str) -> Checked {
        let implemented = scenario_strategies(&self.target, sc.kind)?;
        if implemented.is_empty() {
            return usage(format!(
                "{target} does not run --scenario {}; run it on --target memory",
                sc.kind.name()
            ));
        }
        if let Some(f) = sc
            .fixes
            .iter()
            .find(|f| !implemented.contains(&f.mechanism()))
        {
            let names: Vec<&str> = sc
                .kind
                .default_fixes(implemented)
                .iter()
                .map(|f| f.name())
                .collect();
            return usage(format!(
                "--fix {} is not one {target} implements for --scenario {} ({})",
                f.name(),
                sc.kind.name(),
                names.join(", ")
            ));
        }
        Ok(())
    }

    fn validate_faults(&self) -> Checked {
        let f = &self.faults;
        if let Some(p) = f.pause {
            if p.count == 0 || p.ms == 0 {
                return usage(format!(
                    "--pause {p} pauses nothing: K workers and MS milliseconds must both be at least 1"
                ));
            }
        }
        if !f.any() {
            return Ok(());
        }
        if self.scenario.is_some() {
            return usage(
                "--kill, --pause, --crash-at and --stop-at do not apply to --scenario yet",
            );
        }
        if self.mode != Mode::Processes {
            return usage(
                "--kill, --pause, --crash-at and --stop-at need --mode processes: a thread cannot be killed or stopped alone",
            );
        }
        if f.kill as usize > self.workers {
            return usage(format!(
                "--kill {} is more than the {} workers",
                f.kill, self.workers
            ));
        }
        if f.kill > 0 && self.ops < 2 {
            return usage(format!(
                "--kill {} needs --ops 2 or more: a victim is killed after its first update and before its last",
                f.kill
            ));
        }
        if let Some(p) = f.pause {
            if p.count as usize > self.workers {
                return usage(format!(
                    "--pause {p}: more than the {} workers",
                    self.workers
                ));
            }
        }
        if let Some(s) = f.strike {
            let flag = match s.strike {
                Strike::Kill => "--crash-at",
                Strike::Stop => "--stop-at",
            };
            if let Some(k) = self.strategies.iter().find(|k| !k.reaches(s.point)) {
                let fit: Vec<&str> = StrategyKind::ALL
                    .iter()
                    .filter(|k| k.reaches(s.point))
                    .map(|k| k.name())
                    .collect();
                return usage(format!(
                    "{flag} {s}: {} never reaches {}; it applies to {}",
                    k.name(),
                    s.point,
                    fit.join(", ")
                ));
            }
            // Each point is passed once per update: the N-th visit needs N updates.
            if s.n as u64 > self.ops {
                return usage(format!(
                    "{flag} {s} can never strike: a worker makes only --ops {} updates, so it reaches {} at most {} times",
                    self.ops, s.point, self.ops
                ));
            }
        }
        Ok(())
    }

    fn validate_store(&self) -> Checked {
        if self.history.is_some() && self.store.is_none() {
            return usage("--history exports what a store recorded: give --store too");
        }
        let Some(store) = &self.store else {
            return Ok(());
        };
        if self.faults.deaths_expected() && matches!(store.spec, StoreSpec::Sqlite(_)) {
            // The slots table of a killed worker's uncommitted batch lags by up to a batch
            // per death; verify bounds that for the log only (see docs/history.md).
            return usage(
                "--store sqlite with --kill or --crash-at is not supported yet: use --store log",
            );
        }
        if store.batch == 0 {
            return usage("--batch must be at least 1");
        }
        if store.hold_before_persist {
            let ok = self.slots == 1
                && self.mode == Mode::Processes
                && self.scenario.is_none()
                && self
                    .strategies
                    .iter()
                    .all(|s| matches!(s, StrategyKind::Atomic | StrategyKind::Cas));
            if !ok {
                return usage(
                    "--hold-before-persist needs the plain counter, --slots 1, process mode and atomic or cas (a lock holder cannot wait for the others)",
                );
            }
        }
        if let Some(sc) = &self.scenario {
            let counter = matches!(sc.kind, ScenarioKind::Votes | ScenarioKind::Record);
            if self.history.is_some() && !counter {
                return usage(format!(
                    "--history exports counter events (Jepsen's counter model); --scenario {}'s transfers and reads are checked by torture verify only",
                    sc.kind.name()
                ));
            }
        }
        Ok(())
    }

    fn validate_counter(&self) -> Checked {
        if self.hold_after_read {
            if let Some(s) = self.strategies.iter().find(|s| !s.can_hold_after_read()) {
                return usage(format!(
                    "--hold-after-read applies to racy, cas and futex-lock, not {}",
                    s.name()
                ));
            }
        }
        Ok(())
    }

    /// The flags that size a scenario's state, each named on its own.
    fn validate_scenario_shape(&self, sc: &ScenarioConfig) -> Checked {
        match sc.kind {
            ScenarioKind::Votes => {
                if !(0.0..=1.0).contains(&sc.invalid_rate) {
                    return usage("--invalid-rate must be a fraction from 0 to 1");
                }
            }
            ScenarioKind::Record => {
                if self.slots == 0 || self.slots > crate::workload::MAX_FIELDS {
                    return usage(format!(
                        "--fields must be from 1 to {}",
                        crate::workload::MAX_FIELDS
                    ));
                }
            }
            ScenarioKind::Cache => {
                if self.slots > crate::workload::MAX_FIELDS {
                    return usage(format!(
                        "--related must be from 0 to {}",
                        crate::workload::MAX_FIELDS - 1
                    ));
                }
                if sc.writers == 0 {
                    return usage(
                        "--writers must be at least 1: a cache needs a writer to change it",
                    );
                }
                if sc.writers >= self.workers {
                    return usage(format!(
                        "--writers {} leaves no reader among --workers {}",
                        sc.writers, self.workers
                    ));
                }
            }
            ScenarioKind::Ledger => {
                if self.slots < 2 || self.slots > crate::workload::MAX_ACCOUNTS {
                    return usage(format!(
                        "--accounts must be from 2 (a transfer needs two) to {}",
                        crate::workload::MAX_ACCOUNTS
                    ));
                }
                if sc.auditors >= self.workers {
                    return usage(format!(
                        "--auditors {} leaves no worker to transfer among --workers {}",
                        sc.auditors, self.workers
                    ));
                }
            }
        }
        Ok(())
    }

    /// The rest of a scenario's numbers.
    fn validate_scenario(&self, sc: &ScenarioConfig) -> Checked {
        if sc.kind == ScenarioKind::Ledger {
            if self.initial > i32::MAX as u32 / self.slots as u32 {
                return usage("--initial is too large for the ledger's signed total");
            }
            if self.hold_after_read && (self.workers < 2 + sc.auditors || self.slots < 3) {
                return usage(
                    "--hold-after-read on the ledger scripts workers 0 and 1 transferring: it needs --accounts 3 or more and --workers at least 2 + --auditors",
                );
            }
        }
        if self.hold_after_read {
            if self.workers < 2 {
                return usage("--hold-after-read scripts two workers: use --workers 2 or more");
            }
            for v in sc.variants(&self.strategies) {
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

impl ScenarioArgs {
    /// Applies the scenario to `options`; `strategy_given`: --strategy was on the command line.
    fn apply(&self, options: &mut Options, strategy_given: bool) -> Checked {
        let Some(kind) = self.scenario else {
            if !self.fix.is_empty() {
                return usage("--fix applies to --scenario record, cache or ledger");
            }
            if self.invalid_rate != 0.0 {
                return usage("--invalid-rate applies to --scenario votes");
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
            if self.invalid_rate != 0.0 {
                return usage("--invalid-rate applies to --scenario votes");
            }
        }
        for (i, f) in self.fix.iter().enumerate() {
            if self.fix[..i].contains(f) {
                return usage(format!(
                    "--fix {} is named twice: use --repeat to run it again",
                    f.name()
                ));
            }
        }
        let fixes = if kind == ScenarioKind::Votes {
            Vec::new()
        } else if self.fix.is_empty() {
            // The target's own variants (validated with the target: none is a usage error).
            kind.default_fixes(scenario_strategies(&options.target, kind)?)
        } else {
            self.fix.clone()
        };
        match kind {
            ScenarioKind::Votes => {}
            ScenarioKind::Record => options.slots = self.fields,
            ScenarioKind::Cache => options.slots = 1 + self.related,
            ScenarioKind::Ledger => {
                options.slots = self.accounts;
                // Accounts need money to move: 1000 each unless --initial says otherwise.
                if options.initial == 0 {
                    options.initial = 1000;
                }
            }
        }
        options.scenario = Some(ScenarioConfig {
            kind,
            fixes,
            invalid_rate: self.invalid_rate,
            writers: self.writers,
            auditors: self.auditors,
        });
        Ok(())
    }
}

/// The strategies `target` implements for `kind`'s slots: memory's for every scenario; none
/// where the target cannot hold them.
fn scenario_strategies(
    target: &TargetSpec,
    kind: ScenarioKind,
) -> Result<&'static [StrategyKind], Error> {
    match (target, kind.holds()) {
        (TargetSpec::Memory, _) => Ok(&StrategyKind::ALL),
        (target, Some(holds)) => target.strategies_for(holds),
        (_, None) => Ok(&[]),
    }
}

/// The most workers we agree to start, and why that number.
fn worker_limit(mode: Mode) -> (usize, String) {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
    };
    let running = std::fs::read_dir("/proc")
        .map(|d| {
            d.filter(|e| {
                e.as_ref().is_ok_and(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .bytes()
                        .all(|b| b.is_ascii_digit())
                })
            })
            .count()
        })
        .unwrap_or(0);
    let headroom = 256;
    match mode {
        Mode::Processes => {
            let pid_max = read("/proc/sys/kernel/pid_max").unwrap_or(32768);
            let nproc = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NPROC)
                .map(|(soft, _)| soft as usize)
                .unwrap_or(usize::MAX);
            let limit = pid_max.min(nproc).saturating_sub(running + headroom);
            (
                limit,
                format!("pid_max {pid_max}, RLIMIT_NPROC {nproc}, {running} processes running"),
            )
        }
        Mode::Threads => {
            let max = read("/proc/sys/kernel/threads-max").unwrap_or(10_000);
            (
                max.saturating_sub(running + headroom),
                format!("threads-max {max}"),
            )
        }
    }
}

fn memory_available() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
