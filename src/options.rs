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
use crate::target::redis::{Fencing, RedisOptions};
use crate::target::sql::Isolation;
use crate::target::{TargetOptions, TargetSpec};
use crate::workload::{Fix, ScenarioConfig, ScenarioKind, Variant};

pub use crate::strategy::Mode;

/// The `--help` sections of `torture run`, in the order they print: clap prints a section where
/// its first flag is declared, so [`RunArgs`] declares its flags section by section. A new flag
/// takes the section of what it changes (`--isolation`: `TARGET`, `--fencing`: `STRATEGIES`); a
/// flag that only scripts a test takes `TESTING` and `hide_short_help`, so `-h` stays short.
pub mod heading {
    pub const WORKLOAD: &str = "Workload";
    pub const STRATEGIES: &str = "Strategies";
    pub const TARGET: &str = "Target";
    pub const SCENARIO: &str = "Scenario";
    pub const STORE: &str = "Store";
    pub const FAULTS: &str = "Faults";
    pub const OUTPUT: &str = "Output";
    pub const TESTING: &str = "Testing hooks";
    pub const JOIN: &str = "Join (several hosts, one run)";
}

/// The flags of `torture run` (also the default command). Each doc comment's first paragraph
/// is the flag's `-h` line; the whole comment is its `--help` text.
#[derive(clap::Args, Clone, Debug)]
pub struct RunArgs {
    /// Worker processes (threads with --mode threads)
    ///
    /// Each worker makes --ops updates to the shared slots; all of them start together, so they
    /// contend from the first update.
    #[arg(short, long, default_value_t = 100, value_name = "N", help_heading = heading::WORKLOAD)]
    pub workers: usize,
    /// Updates each worker makes
    ///
    /// workers × ops (+ --initial) must fit a slot's 32 bits, so every count can be checked
    /// exactly.
    #[arg(
        short = 'n',
        long,
        default_value_t = 1000,
        value_name = "N",
        help_heading = heading::WORKLOAD
    )]
    pub ops: u64,
    /// Shared counters the updates are spread over
    ///
    /// One slot is the hardest contention; each update picks its slot as --pick says.
    #[arg(long, default_value_t = 1, value_name = "S", help_heading = heading::WORKLOAD)]
    pub slots: usize,
    /// Slot choice: uniform, or hot:P (P% to slot 0).
    #[arg(
        long,
        default_value = "uniform",
        value_name = "uniform|hot:P",
        help_heading = heading::WORKLOAD
    )]
    pub pick: Pick,
    /// Value every slot starts at
    ///
    /// The poll that already had 50 votes. --scenario ledger: each account's balance [default
    /// there: 1000].
    #[arg(long, default_value_t = 0, value_name = "V", help_heading = heading::WORKLOAD)]
    pub initial: u32,
    /// Forked processes, or threads of one process
    ///
    /// processes: each worker is a forked process mapping the shared region, and futexes are
    /// process-shared. threads: threads of one process, with private futexes. --kill, --pause,
    /// --crash-at and --stop-at need processes: a thread cannot be killed or stopped alone.
    #[arg(
        long,
        value_enum,
        default_value = "processes",
        hide_possible_values = true,
        help_heading = heading::WORKLOAD
    )]
    pub mode: Mode,
    /// Seed of every random choice (slots, fault victims)
    ///
    /// Slots, ballots, fault victims and their moments: runs with the same seed make the same
    /// choices. Run r of --repeat uses SEED + r.
    #[arg(long, default_value_t = 1, help_heading = heading::WORKLOAD)]
    pub seed: u64,
    /// Runs per strategy, to count how often updates are lost.
    #[arg(short, long, default_value_t = 1, value_name = "R", help_heading = heading::WORKLOAD)]
    pub repeat: u32,

    /// Strategies to run, comma separated [default: all the target has].
    #[arg(
        short,
        long,
        value_enum,
        value_delimiter = ',',
        value_name = "NAME",
        hide_possible_values = true,
        long_help = help::strategies(),
        help_heading = heading::STRATEGIES
    )]
    pub strategy: Vec<StrategyKind>,
    /// racy: spins between its read and its write, to widen the race
    ///
    /// racy on every target spins N times between reading the slot and writing it back; 0
    /// leaves the race as narrow as the hardware makes it.
    #[arg(long, default_value_t = 0, value_name = "N", help_heading = heading::STRATEGIES)]
    pub race_window: u32,

    /// Where the slots live: memory, dir:PATH or a server URL.
    #[arg(
        short,
        long,
        default_value = "memory",
        value_name = "TARGET",
        long_help = help::targets(),
        help_heading = heading::TARGET
    )]
    pub target: TargetSpec,
    /// memory: packed (slots share cache lines) or padded
    ///
    /// packed: values 4 bytes apart, 32 slots to a cache line. padded: one 128-byte cell per
    /// slot, its value, lock word and mutex together and nothing else.
    #[arg(
        long,
        value_enum,
        default_value = "packed",
        hide_possible_values = true,
        help_heading = heading::TARGET
    )]
    pub layout: Layout,

    /// SQL: isolation levels, comma separated; each runs every strategy
    ///
    /// read-committed, repeatable-read, serializable [default: read-committed]. Each level is
    /// a row per strategy. Serialization failures and deadlocks are rolled back, retried and
    /// counted (retries/upd).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        value_name = "LEVEL",
        hide_possible_values = true,
        help_heading = heading::TARGET
    )]
    pub isolation: Vec<crate::target::sql::Isolation>,
    /// Redis lock: the lock key's TTL in ms [default: 1000]
    ///
    /// The server frees the lock after MS, whether its holder is done or not: a holder paused
    /// longer (--pause) writes a stale value over its successor's, unless --fencing.
    #[arg(long, value_name = "MS", help_heading = heading::TARGET)]
    pub lock_ttl: Option<u64>,
    /// Redis lock: fencing tokens; a stale holder's read and write are refused
    ///
    /// Each acquisition takes a token from INCR; the slot's scripts refuse a read or write
    /// whose token is below the highest seen, and the holder starts over.
    #[arg(long, help_heading = heading::STRATEGIES)]
    pub fencing: bool,

    #[command(flatten)]
    pub scenario: ScenarioArgs,

    /// Persist and verify every update: log:PATH, sqlite:PATH or target
    ///
    /// log:PATH is an append-only event log; sqlite:PATH a database with the events and a
    /// slots table. The file is emptied first. target (postgres, mysql, redis): each event is
    /// written by the update's own transaction (or atomic step) into the target itself.
    /// `torture verify PATH|URL` checks it again later, from the record alone.
    #[arg(long, value_name = "STORE", help_heading = heading::STORE)]
    pub store: Option<StoreArg>,
    /// Sync the log and dir: files: never, end or every
    ///
    /// never: the page cache decides (a crash of the machine may lose the tail). end: once, by
    /// the parent, after every worker has exited and again after the run's end. every: each
    /// record (each file write) is fdatasync'd before its update is acknowledged.
    #[arg(
        long,
        value_enum,
        default_value = "end",
        value_name = "WHEN",
        hide_possible_values = true,
        help_heading = heading::STORE
    )]
    pub fsync: Fsync,
    /// SQLite: blind or monotonic writes [default: monotonic]
    ///
    /// blind: `UPDATE slots SET value = ?`, so two winners persisting out of order roll the
    /// value back. monotonic: `SET value = max(value, ?)`, so a stored value never goes down.
    #[arg(
        long,
        value_enum,
        value_name = "HOW",
        hide_possible_values = true,
        help_heading = heading::STORE
    )]
    pub persist: Option<Persist>,
    /// Events per write (log) or per transaction (SQLite)
    ///
    /// Each worker buffers this many events, then writes them with one write(2) to the log or
    /// one SQLite transaction.
    #[arg(long, default_value_t = 256, value_name = "N", help_heading = heading::STORE)]
    pub batch: u32,
    /// Export Jepsen histories of each run into DIR (needs --store)
    ///
    /// One counter history per run and slot, for external checkers; DIR is created if missing.
    #[arg(long, value_name = "DIR", help_heading = heading::STORE)]
    pub history: Option<PathBuf>,
    /// --history's form: edn (Jepsen) or json (elle-cli)
    ///
    /// edn: Jepsen's form, one op map a line. json: elle-cli's, one array.
    #[arg(
        long,
        value_enum,
        default_value = "edn",
        value_name = "FORMAT",
        hide_possible_values = true,
        help_heading = heading::STORE
    )]
    pub history_format: crate::history::export::Format,

    /// SIGKILL K workers mid-update (process mode)
    ///
    /// Each victim dies after a seeded share of its updates (one not reached by its last update
    /// waits there for its kill). Deaths are data: the run checks acknowledged <= final <=
    /// acknowledged + in flight. See docs/faults.md.
    #[arg(long, default_value_t = 0, value_name = "K", help_heading = heading::FAULTS)]
    pub kill: u32,
    /// SIGSTOP K workers holding a lock, SIGCONT each MS later (process mode)
    ///
    /// The next worker to take a lock stops itself there. A paused worker is alive: nothing is
    /// taken from it, and every update must still count.
    #[arg(long, value_name = "K:MS", help_heading = heading::FAULTS)]
    pub pause: Option<PauseSpec>,
    /// Stop the run after SECS without progress
    ///
    /// No update completed for SECS: the run is stalled. It prints who holds which lock and who waits for it, kills and reaps every
    /// worker and ends with exit 4.
    #[arg(long, default_value_t = 10.0, value_name = "SECS", help_heading = heading::FAULTS)]
    pub stall_timeout: f64,

    /// Print the summary as JSON instead of a table.
    #[arg(long, help_heading = heading::OUTPUT)]
    pub json: bool,

    /// Also print a detail table: p50 and max latency, retries, futex waits and wakes,
    /// preemptions, spawn and window times, per-worker rates
    #[arg(short = 'v', long, help_heading = heading::OUTPUT)]
    pub verbose: bool,
    /// Updates timed: all, sample:N (one in N) or off.
    #[arg(
        long,
        default_value = "all",
        value_name = "all|sample:N|off",
        help_heading = heading::OUTPUT
    )]
    pub latency: LatencyMode,

    /// Script the lost update: each worker's first update waits after its read
    ///
    /// It waits until every worker has read (a lock holder: until another worker queues on the
    /// lock), so racy loses on every run, not by luck. racy, cas and futex-lock; with
    /// --scenario, the bugs and unordered-locks.
    #[arg(long, hide_short_help = true, help_heading = heading::TESTING)]
    pub hold_after_read: bool,
    /// Process mode: one worker SIGKILLs itself the N-th time it reaches POINT
    ///
    /// POINT: after-read, after-cas, holding-lock, after-write or before-wake. The worker is
    /// SEED mod --workers; a point the chosen strategies never reach is refused.
    #[arg(
        long,
        value_name = "POINT:N",
        value_parser = |s: &str| StrikeAt::parse(s, Strike::Kill),
        hide_short_help = true,
        help_heading = heading::TESTING
    )]
    pub crash_at: Option<StrikeAt>,
    /// Process mode: like --crash-at, but the worker SIGSTOPs itself and stays stopped
    ///
    /// A hung lock holder: the --stall-timeout watchdog's case.
    #[arg(
        long,
        value_name = "POINT:N",
        value_parser = |s: &str| StrikeAt::parse(s, Strike::Stop),
        hide_short_help = true,
        help_heading = heading::TESTING
    )]
    pub stop_at: Option<StrikeAt>,
    /// Script --persist blind's rollback: updates reach the store newest first
    ///
    /// Each worker's first update waits before it persists until every worker has updated.
    /// Needs --store, --slots 1, process mode and atomic or cas.
    #[arg(long, hide_short_help = true, help_heading = heading::TESTING)]
    pub hold_before_persist: bool,

    #[command(flatten)]
    pub join: JoinArgs,
}

/// The join flags of `torture run`.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct JoinArgs {
    /// Join the run NAME across hosts, coordinated through --target
    ///
    /// Every host runs the same command (its own workers); the hosts are released together,
    /// and the host that finishes last prints one verdict for all of them. The target is the
    /// meeting place: PostgreSQL or MariaDB (racepool_join_* tables) or Redis
    /// (racepool:join:{NAME}:* keys).
    #[arg(long, value_name = "NAME", help_heading = heading::JOIN)]
    pub join: Option<String>,
    /// --join: how many hosts take part
    #[arg(long, value_name = "H", help_heading = heading::JOIN)]
    pub hosts: Option<u32>,
    /// --join: how long to wait for every host [default: 60]
    ///
    /// At the start barrier: a host missing after SECS fails the run for everyone, named. At
    /// the end: a host silent for SECS (no heartbeat) is named dead and the verdict is bounded.
    #[arg(long, value_name = "SECS", help_heading = heading::JOIN)]
    pub join_timeout: Option<f64>,
}

/// The scenario flags, flattened into `torture run` (docs/scenarios.md).
#[derive(clap::Args, Clone, Debug)]
#[command(next_help_heading = heading::SCENARIO)]
pub struct ScenarioArgs {
    /// Replay an incident: votes, record, cache or ledger.
    #[arg(
        long,
        value_enum,
        value_name = "NAME",
        hide_possible_values = true,
        long_help = help::scenarios()
    )]
    pub scenario: Option<ScenarioKind>,
    /// Variants of record, cache, ledger [default: the bug, then each fix].
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        value_name = "NAME",
        hide_possible_values = true,
        long_help = help::fixes()
    )]
    pub fix: Vec<Fix>,
    /// votes: fraction of ballots with a bad option id
    ///
    /// A bad id is out of range, non-numeric or has trailing garbage; each is rejected with its
    /// reason.
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    pub invalid_rate: f64,
    /// record: fields per record (worker w changes field w mod F).
    #[arg(long, default_value_t = 4, value_name = "F")]
    pub fields: usize,
    /// cache: related entries beside the value.
    #[arg(long, default_value_t = 2, value_name = "R")]
    pub related: usize,
    /// cache: workers that write (the rest read).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub writers: usize,
    /// ledger: accounts the transfers move money between.
    #[arg(long, default_value_t = 8, value_name = "N")]
    pub accounts: usize,
    /// ledger: workers that only sample the total
    ///
    /// They read the total during the run instead of transferring; it must never change.
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
    /// `--isolation`: a SQL target's levels, each running every strategy (empty elsewhere).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub isolation: Vec<Isolation>,
    /// `--lock-ttl`: Redis `lock`'s TTL in ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lock_ttl_ms: Option<u64>,
    /// `--fencing`: Redis `lock` carries fencing tokens.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub fencing: bool,
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
    /// `--store target`: every winning update's event is written into the target, in the
    /// update's own transaction, and each run verified from there.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub store_target: bool,
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

/// `--store`: a file of racepool's own, or the target itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreArg {
    File(StoreSpec),
    /// `--store target`: the target keeps the record beside its state (`target::RecordStore`).
    Target,
}

impl std::str::FromStr for StoreArg {
    type Err = String;
    fn from_str(s: &str) -> Result<StoreArg, String> {
        match s {
            "target" => Ok(StoreArg::Target),
            _ => s
                .parse()
                .map(StoreArg::File)
                .map_err(|_| format!("'{s}': expected log:PATH, sqlite:PATH or target")),
        }
    }
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
        let sqlite = matches!(args.store, Some(StoreArg::File(StoreSpec::Sqlite(_))));
        if let (Some(p), false) = (args.persist, sqlite) {
            return Err(Error::Usage(format!(
                "--persist {} applies to --store sqlite:PATH (an event log only appends)",
                p.name()
            )));
        }
        if args.hold_before_persist && !matches!(args.store, Some(StoreArg::File(_))) {
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
            isolation: match (args.target.is_sql(), args.isolation.is_empty()) {
                (true, true) => vec![Isolation::default()],
                _ => args.isolation.clone(),
            },
            lock_ttl_ms: args.lock_ttl,
            fencing: args.fencing,
            mode: args.mode,
            layout: args.layout,
            seed: args.seed,
            pick: args.pick,
            initial: args.initial,
            race_window: args.race_window,
            latency: args.latency,
            repeat: args.repeat,
            hold_after_read: args.hold_after_read,
            store_target: args.store == Some(StoreArg::Target),
            store: file_store(&args.store).map(|spec| StoreConfig {
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

    /// The isolation levels to run, each every variant: a SQL target's `--isolation`, or one
    /// pass without a level on any other target.
    pub fn levels(&self) -> Vec<Option<Isolation>> {
        if self.isolation.is_empty() {
            vec![None]
        } else {
            self.isolation.iter().copied().map(Some).collect()
        }
    }

    /// What the target is asked beyond its URL, for one isolation level.
    pub fn target_options(&self, level: Option<Isolation>) -> TargetOptions {
        let mut redis = RedisOptions::default();
        if let Some(ms) = self.lock_ttl_ms {
            redis.lock_ttl = Duration::from_millis(ms);
        }
        if self.fencing {
            redis.fencing = Fencing::Tokens;
        }
        TargetOptions {
            isolation: level.unwrap_or_default(),
            redis,
        }
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
        self.validate_target_flags(&target)?;
        if self.target == TargetSpec::Memory {
            return Ok(());
        }
        // Redis `lock` stops a holder past its TTL with --pause: the fencing demonstration.
        let pause_only = self.faults.kill == 0 && self.faults.strike.is_none();
        if matches!(self.target, TargetSpec::Redis(_)) && pause_only && !self.hold_after_read {
            return Ok(());
        }
        if self.faults.any() || self.hold_after_read {
            return usage(format!(
                "{target}: --kill, --pause, --crash-at, --stop-at and --hold-after-read script the memory target's workers; run them on --target memory (--pause also runs on redis)"
            ));
        }
        Ok(())
    }

    /// The flags that belong to one kind of target: refused on every other, named.
    fn validate_target_flags(&self, target: &str) -> Checked {
        let sql = self.target.is_sql();
        let redis = matches!(self.target, TargetSpec::Redis(_));
        if !sql && !self.isolation.is_empty() {
            return usage(format!(
                "--isolation applies to --target postgres:// and mysql:// (isolation levels are SQL's), not {target}"
            ));
        }
        for (i, l) in self.isolation.iter().enumerate() {
            if self.isolation[..i].contains(l) {
                return usage(format!(
                    "--isolation {} is named twice: use --repeat to run it again",
                    l.name()
                ));
            }
        }
        let lock = self.strategies.contains(&StrategyKind::Lock) && self.scenario.is_none();
        for (flag, given) in [
            ("--lock-ttl", self.lock_ttl_ms.is_some()),
            ("--fencing", self.fencing),
        ] {
            if given && !redis {
                return usage(format!(
                    "{flag} applies to --target redis:// (its lock strategy), not {target}"
                ));
            }
            if given && !lock {
                return usage(format!(
                    "{flag} applies to the lock strategy: add lock to --strategy"
                ));
            }
        }
        if self.lock_ttl_ms == Some(0) {
            return usage("--lock-ttl must be at least 1 ms");
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
        let kind = self.target.kind();
        if let Some(f) = sc
            .fixes
            .iter()
            .find(|f| !f.runs_on(kind) || !implemented.contains(&f.mechanism()))
        {
            let names: Vec<&str> = sc
                .kind
                .default_fixes(kind, implemented)
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
        if self.history.is_some() && self.store.is_none() && !self.store_target {
            return usage("--history exports what a store recorded: give --store too");
        }
        if self.store_target {
            if !self.target.keeps_record() {
                return usage(format!(
                    "--store target keeps the record in a database or Redis (postgres://, mysql://, redis://); --target {} keeps none: use --store log:PATH",
                    self.target.kind().name()
                ));
            }
            if let Some(sc) = self
                .scenario
                .as_ref()
                .filter(|sc| !matches!(sc.kind, ScenarioKind::Votes | ScenarioKind::Cache))
            {
                return usage(format!(
                    "--store target records the plain counter, votes and cache; --scenario {} is not recorded in the target yet: use --store log:PATH",
                    sc.kind.name()
                ));
            }
        }
        // Votes and cache on a target record through the target's own sessions only.
        let own = self
            .scenario
            .as_ref()
            .filter(|sc| matches!(sc.kind, ScenarioKind::Votes | ScenarioKind::Cache));
        if let (Some(sc), true, true) =
            (own, self.target != TargetSpec::Memory, self.store.is_some())
        {
            return usage(format!(
                "--store log: or sqlite: with --scenario {} on {}: the target records it itself: use --store target",
                sc.kind.name(),
                self.target.kind().name()
            ));
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
            kind.default_fixes(
                options.target.kind(),
                scenario_strategies(&options.target, kind)?,
            )
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

/// `--store`'s file, when it names one.
fn file_store(arg: &Option<StoreArg>) -> Option<StoreSpec> {
    match arg {
        Some(StoreArg::File(spec)) => Some(spec.clone()),
        _ => None,
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

/// The `--help` texts that are lists, made from the types they list, so a strategy, target or
/// fix added there shows up here (and in the help snapshots) without a second edit.
mod help {
    use clap::ValueEnum;

    use crate::strategy::StrategyKind;
    use crate::target::{TargetKind, TargetSpec};
    use crate::workload::{Fix, ScenarioKind};

    /// Columns a list line may take: `--help` indents by 10, and an 80-column terminal is the
    /// narrowest we lay lists out for (clap wraps prose itself, but breaks a list's columns).
    const LIST_WIDTH: usize = 70;

    /// One spec per target kind, to ask each which strategies it runs (opening a spec checks
    /// it and connects to nothing), and how the help spells it.
    const TARGETS: [(&str, &str); 5] = [
        ("memory", "memory"),
        ("dir:PATH", "dir:PATH"),
        (
            "postgres://USER@HOST:PORT/DB",
            "postgres://localhost/racepool",
        ),
        ("mysql://USER@HOST:PORT/DB", "mysql://localhost/racepool"),
        ("redis://HOST:PORT[/DB]", "redis://localhost:6379"),
    ];

    /// Each target as the help spells it, its kind, and its strategies (None: not built in).
    fn targets_with_strategies(
    ) -> impl Iterator<Item = (&'static str, TargetKind, Option<&'static [StrategyKind]>)> {
        TARGETS.iter().map(|&(shown, spec)| {
            let spec: TargetSpec = spec.parse().expect("the help's target specs parse");
            (shown, spec.kind(), spec.strategies().ok())
        })
    }

    /// What each strategy does, in a few words (the type's doc has the detail).
    fn gist(s: StrategyKind) -> &'static str {
        match s {
            StrategyKind::Racy => "read, then write read + 1: the lost update",
            StrategyKind::Atomic => "one atomic add (UPDATE … SET v = v + 1)",
            StrategyKind::Cas => "compare-and-swap retry loop (optimistic)",
            StrategyKind::FutexLock => "a lock word whose waiters sleep on a futex",
            StrategyKind::SpinLock => "the same lock word, its waiters spinning",
            StrategyKind::Pthread => "a process-shared pthread_mutex_t",
            StrategyKind::Lock => "SQL: SELECT … FOR UPDATE; Redis: a SET NX lock key",
            StrategyKind::Advisory => "SQL: an advisory lock around the update",
            StrategyKind::Script => "Redis: one Lua script reads and writes",
            StrategyKind::Flock => "flock(LOCK_EX) around the update",
            StrategyKind::Fcntl => "an open-file-description lock (F_OFD_SETLKW)",
            StrategyKind::LinkCas => "link(2) the next version's file; EEXIST: retry",
            StrategyKind::Append => "O_APPEND a record per update; the value is the count",
        }
    }

    fn describe(kind: TargetKind) -> &'static str {
        match kind {
            TargetKind::Memory => "a shared memfd region",
            TargetKind::Dir => "one file per slot in the directory PATH",
            TargetKind::Postgres => "a row per slot, in PostgreSQL",
            TargetKind::Mysql => "a row per slot, in MariaDB or MySQL",
            TargetKind::Redis => "a key per slot",
        }
    }

    /// Two columns, the first as wide as its widest cell, the second wrapped under itself.
    fn rows<'a>(rows: impl IntoIterator<Item = (&'a str, String)>) -> String {
        let rows: Vec<_> = rows.into_iter().collect();
        let width = rows
            .iter()
            .map(|(k, _)| k.chars().count())
            .max()
            .unwrap_or(0);
        let indent = 2 + width + 2;
        let mut out = String::new();
        for (key, text) in rows {
            let mut line = format!("  {key:<width$}  ");
            let mut fresh = true;
            for word in text.split_whitespace() {
                let len = line.chars().count();
                if !fresh && len + 1 + word.chars().count() > LIST_WIDTH {
                    out.push_str(&line);
                    out.push('\n');
                    line = " ".repeat(indent);
                    fresh = true;
                }
                if !fresh {
                    line.push(' ');
                }
                line.push_str(word);
                fresh = false;
            }
            out.push_str(&line);
            out.push('\n');
        }
        out
    }

    /// `--strategy`'s long help: which target runs which, then what each does.
    pub fn strategies() -> String {
        let by_target = rows(targets_with_strategies().map(|(_, kind, strategies)| {
            let list = strategies.map_or("not built into this racepool yet".into(), |list| {
                list.iter().map(|s| s.name()).collect::<Vec<_>>().join(", ")
            });
            (kind.name(), list)
        }));
        let what = rows(
            StrategyKind::value_variants()
                .iter()
                .map(|s| (s.name(), gist(*s).to_string())),
        );
        format!(
            "Strategies to run, comma separated [default: all the target has, racy first]\n\n\
             racy is the bug, expected to lose updates; every other strategy promises that none \
             is lost (exit 1 if one does). Each target runs its own:\n\n{by_target}\n{}",
            what.trim_end()
        )
    }

    /// `--target`'s long help: every target, and which are not built in yet.
    pub fn targets() -> String {
        let list = rows(TARGETS.iter().map(|&(shown, spec)| {
            let spec: TargetSpec = spec.parse().expect("the help's target specs parse");
            (shown, describe(spec.kind()).to_string())
        }));
        let missing: Vec<_> = targets_with_strategies()
            .filter(|(_, _, strategies)| strategies.is_none())
            .map(|(_, kind, _)| kind.name())
            .collect();
        let mut out = format!("Where the slots live\n\n{list}\n");
        if !missing.is_empty() {
            out.push_str(&format!(
                "Not built into this racepool yet: {}. ",
                missing.join(", ")
            ));
        }
        out.push_str(
            "postgresql:// and mariadb:// are accepted too. --strategy says which strategies \
             each target runs.",
        );
        out
    }

    /// `--scenario`'s long help: each incident in a line.
    pub fn scenarios() -> String {
        values::<ScenarioKind>(
            "Replay an incident instead of the plain counter (docs/scenarios.md)\n\n\
             Each row of the table is a variant: the bug first, then each fix. votes runs \
             --strategy's rows; record, cache and ledger run --fix's.",
        )
    }

    /// `--fix`'s long help: every variant, the bug of each scenario first.
    pub fn fixes() -> String {
        values::<Fix>(
            "record, cache, ledger: the variants to run, comma separated [default: the bug, then \
             each fix]",
        )
    }

    /// `intro`, then each value of `T` with its doc.
    fn values<T: ValueEnum>(intro: &str) -> String {
        let values: Vec<_> = T::value_variants()
            .iter()
            .filter_map(|v| v.to_possible_value())
            .collect();
        let list = rows(values.iter().map(|v| {
            let help = v.get_help().map(|h| h.to_string()).unwrap_or_default();
            (v.get_name(), help.replace('`', ""))
        }));
        format!("{intro}\n\n{}", list.trim_end())
    }
}
