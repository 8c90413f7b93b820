//! `torture`: parse the command line, run, print, exit. Errors become exit codes in one place.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use racepool::config::{Config, Mode};
use racepool::error::Error;
use racepool::fault::{Faults, PauseSpec, Strike, StrikeAt};
use racepool::latency::LatencyMode;
use racepool::region::Layout;
use racepool::report::{self, Verdict};
use racepool::selftest::{self, WakeScope};
use racepool::store::{Fsync, Persist, StoreConfig, StoreSpec};
use racepool::strategy::StrategyKind;
use racepool::workload::Pick;

/// Tortures concurrent update strategies on shared memory across forked worker processes and
/// proves, with exact counts, whether any update was lost.
#[derive(Parser)]
#[command(
    name = "torture",
    version,
    args_conflicts_with_subcommands = true,
    allow_negative_numbers = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the torture test (the default when no subcommand is given).
    Run(RunArgs),
    /// Prove from a stored record alone (an event log or an SQLite database) that no update
    /// was lost or duplicated. Exit 0: verified; 1: not verified or corrupt; 2: unreadable.
    Verify {
        /// The event log or SQLite database a run wrote with --store.
        path: PathBuf,
        /// Print the verdict as JSON.
        #[arg(long)]
        json: bool,
        /// Also write the history as Jepsen-style JSON Lines to this file.
        #[arg(long, value_name = "FILE.jsonl")]
        history: Option<PathBuf>,
    },
    /// Measure the strategy × workers × slots × mode × layout matrix and write reports to --out.
    Bench(BenchArgs),
    /// Check the properties racepool relies on: shared memory and cross-process wakes.
    Selftest {
        #[command(subcommand)]
        check: SelftestCheck,
    },
}

#[derive(Subcommand)]
enum SelftestCheck {
    /// A forked child's write is seen through the shared map, not through map_anon.
    SharedWrite {
        #[arg(long, default_value_t = 100)]
        rounds: u32,
    },
    /// A futex wake from the parent reaches a child sleeping on the region (or not).
    Wake {
        #[arg(long, value_enum)]
        scope: WakeScope,
        #[arg(long, default_value_t = 100)]
        rounds: u32,
        /// How long the child sleeps at most, in ms.
        #[arg(long, default_value_t = 1000)]
        timeout_ms: u64,
    },
}

#[derive(Args, Clone)]
struct BenchArgs {
    /// Directory for report.md, summary.json, summary.csv, machine.json, points.jsonl, *.svg.
    /// It must not exist or be empty, unless --force.
    #[arg(long, default_value = "results/bench", value_name = "DIR")]
    out: std::path::PathBuf,
    /// Write into a --out directory that already holds files: the bench's own files there are
    /// removed first, nothing else.
    #[arg(long)]
    force: bool,
    /// A small matrix for CI: under a minute.
    #[arg(long)]
    quick: bool,
    /// Strategies, comma separated [default: all six].
    #[arg(long, value_enum, value_delimiter = ',', value_name = "NAME")]
    strategy: Vec<StrategyKind>,
    /// Worker counts, comma separated [default: 1,2,4,16,64,256,1000; quick: 1,4,16].
    #[arg(long, value_delimiter = ',', value_name = "N,..")]
    workers: Vec<usize>,
    /// Slot counts, comma separated [default: 1,64; quick: 1].
    #[arg(long, value_delimiter = ',', value_name = "S,..")]
    slots: Vec<usize>,
    /// Modes, comma separated [default: processes,threads].
    #[arg(long, value_enum, value_delimiter = ',')]
    mode: Vec<Mode>,
    /// Layouts, comma separated [default: packed,padded; quick: packed].
    #[arg(long, value_enum, value_delimiter = ',')]
    layout: Vec<Layout>,
    /// Measured runs per point [default: 5; quick: 1].
    #[arg(long, value_name = "R")]
    repeat: Option<u32>,
    /// Each run is told to stop after this many ms [default: 150; quick: 100].
    #[arg(long, value_name = "MS")]
    budget_ms: Option<u64>,
    /// Skip the unmeasured warm-up run before each point.
    #[arg(long)]
    no_warmup: bool,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Args, Clone)]
struct RunArgs {
    /// Worker processes (or threads with --mode threads).
    #[arg(long, default_value_t = 100, value_name = "N")]
    workers: usize,
    /// Updates each worker makes.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    ops: u64,
    /// Shared counters the updates are spread over.
    #[arg(long, default_value_t = 1, value_name = "S")]
    slots: usize,
    /// Strategies to run, comma separated [default: all six, racy first].
    #[arg(long, value_enum, value_delimiter = ',', value_name = "NAME")]
    strategy: Vec<StrategyKind>,
    #[arg(long, value_enum, default_value = "processes")]
    mode: Mode,
    /// packed: 4-byte slots sharing cache lines; padded: one 128-byte line per slot.
    #[arg(long, value_enum, default_value = "packed")]
    layout: Layout,
    /// Seed of every worker's slot choice (runs with the same seed pick the same slots).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// How slots are chosen: uniform, or hot:P (P% of updates to slot 0).
    #[arg(long, default_value = "uniform", value_name = "uniform|hot:P")]
    pick: Pick,
    /// Value every slot starts at (the poll that already had 50 votes).
    #[arg(long, default_value_t = 0, value_name = "V")]
    initial: u32,
    /// racy only: spin iterations between its read and its write, to widen the race.
    #[arg(long, default_value_t = 0, value_name = "N")]
    race_window: u32,
    /// Which updates are timed: all, sample:N (one in N) or off.
    #[arg(long, default_value = "all", value_name = "all|sample:N|off")]
    latency: LatencyMode,
    /// Run each strategy R times and report how often updates were lost.
    #[arg(long, default_value_t = 1, value_name = "R")]
    repeat: u32,
    /// For tests: hold each worker's first update right after its read until every worker has
    /// read (a lock holder: until another worker queues on the lock). Scripts the lost update.
    #[arg(long)]
    hold_after_read: bool,
    /// Process mode: SIGKILL K random workers at random moments of the measured window
    /// (seeded). Deaths are data: the run checks acknowledged <= final <= acknowledged + in flight.
    #[arg(long, default_value_t = 0, value_name = "K")]
    kill: u32,
    /// Process mode: stop K workers, each while it holds a lock (the next one to take a lock
    /// stops itself there), and SIGCONT each MS later. A paused worker is alive: nothing is
    /// taken from it.
    #[arg(long, value_name = "K:MS")]
    pause: Option<PauseSpec>,
    /// For tests, process mode: one worker SIGKILLs itself the N-th time it reaches POINT
    /// (after-read, after-cas, holding-lock, after-write, before-wake).
    #[arg(long, value_name = "POINT:N", value_parser = |s: &str| StrikeAt::parse(s, Strike::Kill))]
    crash_at: Option<StrikeAt>,
    /// For tests, process mode: like --crash-at, but the worker SIGSTOPs itself there and
    /// nobody resumes it (a hung lock holder: the watchdog's case).
    #[arg(long, value_name = "POINT:N", value_parser = |s: &str| StrikeAt::parse(s, Strike::Stop))]
    stop_at: Option<StrikeAt>,
    /// Seconds without any completed update before the run is declared stalled and stopped.
    #[arg(long, default_value_t = 10.0, value_name = "SECS")]
    stall_timeout: f64,
    /// Persist every winning update, then verify the record: log:PATH (an append-only event
    /// log) or sqlite:PATH. The file is emptied first.
    #[arg(long, value_name = "log:PATH|sqlite:PATH")]
    store: Option<StoreSpec>,
    /// When the event log is made durable: never, at the end of each run, or every record.
    #[arg(long, value_enum, default_value = "end")]
    fsync: Fsync,
    /// SQLite only: how a worker writes slots.value: blind (UPDATE … SET value = ?) or
    /// monotonic (never lower a stored value).
    #[arg(long, value_enum, default_value = "monotonic")]
    persist: Persist,
    /// Events a worker buffers before one write(2) (log) or one transaction (SQLite).
    #[arg(long, default_value_t = 256, value_name = "N")]
    batch: u32,
    /// For tests: hold each worker's first update before it persists until every worker has
    /// updated, then persist newest first (scripts the rollback of --persist blind).
    #[arg(long)]
    hold_before_persist: bool,
    /// Write the stored history as Jepsen-style JSON Lines to this file (needs --store).
    #[arg(long, value_name = "FILE.jsonl")]
    history: Option<PathBuf>,
    /// Print the summary as JSON instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    scenario: racepool::scenario::ScenarioArgs,
}

impl RunArgs {
    fn config(&self) -> Result<Config, Error> {
        if self.crash_at.is_some() && self.stop_at.is_some() {
            return Err(Error::Usage(
                "--crash-at and --stop-at strike the same worker: give one".into(),
            ));
        }
        if !(self.stall_timeout.is_finite() && self.stall_timeout > 0.0) {
            return Err(Error::Usage(
                "--stall-timeout must be a positive number of seconds".into(),
            ));
        }
        let mut config = Config {
            strategies: if self.strategy.is_empty() {
                StrategyKind::ALL.to_vec()
            } else {
                self.strategy.clone()
            },
            workers: self.workers,
            ops: self.ops,
            slots: self.slots,
            mode: self.mode,
            layout: self.layout,
            seed: self.seed,
            pick: self.pick,
            initial: self.initial,
            race_window: self.race_window,
            latency: self.latency,
            repeat: self.repeat,
            hold_after_read: self.hold_after_read,
            store: self.store.clone().map(|spec| StoreConfig {
                spec,
                fsync: self.fsync,
                persist: self.persist,
                batch: self.batch,
                hold_before_persist: self.hold_before_persist,
            }),
            history: self.history.clone(),
            stall_timeout: Duration::from_secs_f64(self.stall_timeout),
            scenario: None,
            time_limit: None,
            progress: true,
            faults: Faults {
                kill: self.kill,
                pause: self.pause,
                strike: self.crash_at.or(self.stop_at),
            },
        };
        self.scenario
            .apply(&mut config, !self.strategy.is_empty())?;
        Ok(config)
    }
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if e.use_stderr() => {
            // One line naming the flag; clap's usage hints follow it in its own rendering.
            let text = e.render().to_string();
            eprintln!(
                "torture: {}",
                text.lines()
                    .next()
                    .unwrap_or("bad arguments")
                    .trim_start_matches("error: ")
            );
            return ExitCode::from(2);
        }
        Err(e) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
    };
    match execute(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("torture: {e}");
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

fn execute(cli: Cli) -> Result<ExitCode, Error> {
    match cli.command {
        None => torture(&cli.run),
        Some(Command::Run(args)) => torture(&args),
        Some(Command::Verify {
            path,
            json,
            history,
        }) => verify(&path, json, history.as_deref()),
        Some(Command::Bench(args)) => bench(&args),
        Some(Command::Selftest { check }) => {
            let json = match check {
                SelftestCheck::SharedWrite { rounds } => {
                    serde_json::to_string(&selftest::shared_write(rounds)?)
                }
                SelftestCheck::Wake {
                    scope,
                    rounds,
                    timeout_ms,
                } => serde_json::to_string(&selftest::cross_process_wake(
                    scope,
                    rounds,
                    Duration::from_millis(timeout_ms),
                )?),
            };
            println!("{}", json.expect("reports serialise"));
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn verify(
    path: &std::path::Path,
    json: bool,
    history: Option<&std::path::Path>,
) -> Result<ExitCode, Error> {
    let t0 = std::time::Instant::now();
    let loaded = racepool::verify::load(path)?;
    let verdict = racepool::verify::verify(&loaded);
    let secs = t0.elapsed().as_secs_f64();
    if let Some(out) = history {
        racepool::run::export_history(path, out)?;
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&verdict).expect("the verdict serialises")
        );
    } else {
        print!("{}", racepool::verify::render(&verdict));
        let events: u64 = verdict.runs.iter().map(|r| r.persisted).sum();
        println!(
            "{} records, {events} events checked in {:.3}s ({:.0} events/s)",
            verdict.records,
            secs,
            events as f64 / secs.max(1e-9)
        );
    }
    if let Some(c) = &verdict.corrupt {
        eprintln!("torture verify: {}: {c}", path.display());
    }
    if verdict.verified {
        Ok(ExitCode::SUCCESS)
    } else {
        if verdict.corrupt.is_none() {
            eprintln!("torture verify: {}: NOT verified", path.display());
        }
        Ok(ExitCode::from(1))
    }
}

fn torture(args: &RunArgs) -> Result<ExitCode, Error> {
    let config = args.config()?;
    let summary = racepool::run::run(&config)?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&summary).expect("the summary serialises")
        );
    } else {
        print!("{}", report::render_text(&summary));
    }
    for s in summary
        .strategies
        .iter()
        .filter(|s| s.verdict == Verdict::Failed)
    {
        // A run can fail on its stored record alone (the region exact): say only what broke.
        if s.lost > 0 || s.unexpected > 0 {
            eprintln!(
                "torture: {} promises exactness but lost {} update(s) (+{} unexpected) in {} of {} run(s)",
                s.label(),
                s.lost,
                s.unexpected,
                s.runs.iter().filter(|r| r.verdict == Verdict::Failed).count(),
                s.runs.len()
            );
        }
        for h in s.runs.iter().filter_map(|r| r.history.as_ref()) {
            if let Some(p) = h.problems.first() {
                eprintln!(
                    "torture: {}'s stored record (run {}) is not verified: {p}",
                    s.strategy.name(),
                    h.run
                );
            }
        }
    }
    Ok(if summary.interrupted {
        // 128 + SIGINT, as a shell reports a command ended by Ctrl-C.
        ExitCode::from(130)
    } else if summary.all_exact {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn bench(args: &BenchArgs) -> Result<ExitCode, Error> {
    let mut opts = racepool::bench::BenchOptions::defaults(args.quick);
    if args.workers.contains(&0) || args.slots.contains(&0) {
        return Err(Error::Usage(
            "--workers and --slots take counts of at least 1".into(),
        ));
    }
    opts.out = args.out.clone();
    opts.force = args.force;
    fn or<T: Clone>(given: &[T], default: &mut Vec<T>) {
        if !given.is_empty() {
            *default = given.to_vec();
        }
    }
    or(&args.strategy, &mut opts.strategies);
    or(&args.workers, &mut opts.workers);
    or(&args.slots, &mut opts.slots);
    or(&args.mode, &mut opts.modes);
    or(&args.layout, &mut opts.layouts);
    opts.repeat = args.repeat.unwrap_or(opts.repeat);
    opts.budget = args.budget_ms.map_or(opts.budget, Duration::from_millis);
    opts.warmup &= !args.no_warmup;
    opts.seed = args.seed;
    opts.command = std::env::args().collect();
    let summary = racepool::bench::bench(&opts)?;
    println!(
        "bench: {} point(s) written to {} (report.md, summary.json, summary.csv, machine.json, points.jsonl, 4 plots)",
        summary.points.len(),
        opts.out.display()
    );
    for p in summary
        .points
        .iter()
        .filter(|p| p.verdict == Verdict::Failed)
    {
        eprintln!(
            "torture: {} promises exactness but lost {} update(s) (+{} unexpected)",
            p.key.label(),
            p.lost,
            p.unexpected
        );
    }
    Ok(if summary.all_exact {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
