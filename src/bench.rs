//! `torture bench`: the strategy × workers × slots × mode × layout matrix, each point run by
//! time, repeated, summarised into one `BenchSummary` and rendered after every point.
//!
//! Every run is told to stop after the budget (workers finish the update in flight), so each
//! point takes about `(repeat + warm-up) × budget` plus spawning, whatever the strategy's speed;
//! a run still going at `CAP_FACTOR` × budget is stopped and the point marked collapsed.
//!
//! The parent stays single-threaded between runs: progress is drawn here, on the main thread,
//! between points, and every thread a run starts is joined before `run_once` returns, so each
//! fork happens with no other thread alive.

use std::fs;
use std::io::{ErrorKind, IsTerminal};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget};

use crate::error::Error;
use crate::latency::{self, LatencyMode};
use crate::options::{Mode, Options};
use crate::pick::Pick;
use crate::progress;
use crate::progress::CAP_FACTOR;
use crate::region::Layout;
use crate::report::csv::render_csv;
use crate::report::markdown::render_markdown;
use crate::report::matrix::PeerPoint;
use crate::report::matrix::{
    BenchPoint, BenchSettings, BenchSummary, MachineInfo, PointKey, PointStatus,
};
use crate::report::svg::bench_plots;
use crate::report::units::{count, percent, rate, time_ns};
use crate::report::Spread;
use crate::report::{revision, Machine, Verdict};
use crate::run::run_once;
use crate::strategy::StrategyKind;
use crate::target::sql::Isolation;
use crate::target::{RunShape, Target, TargetKind, TargetOptions, TargetSpec, WithTarget};
use crate::workload::Variant;

/// What the command line asked for.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    pub out: PathBuf,
    /// Write into an `out` that already holds files (replacing the bench's own files there).
    pub force: bool,
    pub quick: bool,
    pub strategies: Vec<StrategyKind>,
    pub workers: Vec<usize>,
    pub slots: Vec<usize>,
    pub modes: Vec<Mode>,
    pub layouts: Vec<Layout>,
    pub repeat: u32,
    pub warmup: bool,
    pub budget: Duration,
    pub seed: u64,
    /// The command line, recorded in machine.json and the report.
    pub command: Vec<String>,
    /// `--target`: where the slots live, each benched in turn (memory by default). Empty
    /// `strategies`: each target's own; named ones: those a target implements.
    pub targets: Vec<TargetSpec>,
    /// `--isolation`: a SQL target's levels, each running every strategy.
    pub isolation: Vec<Isolation>,
    /// `--ops`: a target's runs make this many updates per worker (they run by count).
    pub ops: u64,
    /// `--budget-ms` on a target: a run whose count is not done by then is told to stop (its
    /// workers finish the update in flight); None: by count alone.
    pub target_budget: Option<Duration>,
}

/// A target bench's defaults, where the memory bench's do not fit a network round trip.
pub const TARGET_WORKERS: [usize; 3] = [1, 8, 50];
pub const TARGET_REPEAT: u32 = 3;
pub const TARGET_OPS: u64 = 1000;

/// The files a bench writes into its output directory (`--force` removes these, and only
/// these, before it starts, so no file of an earlier run is left beside the new ones). The
/// memory plots are written when memory is benched, the `targets-` plots when a server is.
pub const FILES: [&str; 11] = [
    "report.md",
    "summary.json",
    "summary.csv",
    "machine.json",
    "points.jsonl",
    "throughput.svg",
    "latency.svg",
    "spectrum.svg",
    "racy-loss.svg",
    "targets-throughput.svg",
    "targets-latency.svg",
];

impl BenchOptions {
    /// The defaults of the full run, or of `--quick`, for every axis the user left empty.
    pub fn defaults(quick: bool) -> BenchOptions {
        BenchOptions {
            out: PathBuf::from("results/bench"),
            force: false,
            quick,
            strategies: StrategyKind::ALL.to_vec(),
            workers: if quick {
                vec![1, 4, 16]
            } else {
                vec![1, 2, 4, 16, 64, 256, 1000]
            },
            slots: if quick { vec![1] } else { vec![1, 64] },
            modes: vec![Mode::Processes, Mode::Threads],
            layouts: if quick {
                vec![Layout::Packed]
            } else {
                vec![Layout::Packed, Layout::Padded]
            },
            repeat: if quick { 1 } else { 5 },
            warmup: !quick,
            budget: Duration::from_millis(if quick { 100 } else { 150 }),
            seed: 1,
            command: Vec::new(),
            targets: vec![TargetSpec::Memory],
            isolation: Isolation::ALL.to_vec(),
            ops: TARGET_OPS,
            target_budget: None,
        }
    }

    /// The strategies benched on `target`: the ones named that it implements, or all of its
    /// own (memory: the six).
    fn strategies_on(&self, target: &TargetSpec) -> Vec<StrategyKind> {
        let own: &[StrategyKind] = match target {
            TargetSpec::Memory => &StrategyKind::ALL,
            t => t.strategies().unwrap_or(&[]),
        };
        if self.strategies.is_empty() {
            own.to_vec()
        } else {
            self.strategies
                .iter()
                .copied()
                .filter(|s| own.contains(s))
                .collect()
        }
    }

    /// The isolation levels benched on `target` (None: a target without levels).
    fn levels_on(&self, target: &TargetSpec) -> Vec<Option<Isolation>> {
        if target.is_sql() {
            self.isolation.iter().copied().map(Some).collect()
        } else {
            vec![None]
        }
    }

    /// The target a point's engine names (one per kind: `check_targets` refuses two).
    fn spec(&self, engine: TargetKind) -> &TargetSpec {
        self.targets
            .iter()
            .find(|t| t.kind() == engine)
            .expect("every point's engine is one of the targets")
    }

    /// Refuses, before anything runs, what the targets cannot take: two of one kind, a
    /// strategy no target implements, `--isolation` without a SQL target, and (asking each
    /// server) more workers than it can still accept, naming the limit.
    fn check_targets(&self) -> Result<(), Error> {
        self.check_input()?;
        let most = self.workers.iter().copied().max().unwrap_or(1);
        for t in self.targets.iter().filter(|t| **t != TargetSpec::Memory) {
            let level = self.levels_on(t)[0];
            let options = TargetOptions {
                isolation: level.unwrap_or_default(),
                ..Default::default()
            };
            t.open_with(
                &options,
                Preflight {
                    workers: most,
                    strategies: self.strategies_on(t),
                },
            )??;
        }
        Ok(())
    }

    /// What `check_targets` refuses without asking a server.
    fn check_input(&self) -> Result<(), Error> {
        for (i, t) in self.targets.iter().enumerate() {
            if self.targets[..i].iter().any(|o| o.kind() == t.kind()) {
                return Err(Error::Usage(format!(
                    "--target names {} twice: bench one server of each kind at a time",
                    t.kind().name()
                )));
            }
        }
        if let Some(s) = self.strategies.iter().find(|s| {
            !self
                .targets
                .iter()
                .any(|t| self.strategies_on(t).contains(s))
        }) {
            return Err(Error::Usage(format!(
                "--strategy {} runs on none of the targets benched",
                s.name()
            )));
        }
        if !self.isolation.is_empty()
            && self.isolation != Isolation::ALL
            && !self.targets.iter().any(TargetSpec::is_sql)
        {
            return Err(Error::Usage(
                "--isolation applies to --target postgres:// and mysql:// (isolation levels are SQL's)"
                    .into(),
            ));
        }
        if self.isolation.is_empty() && self.targets.iter().any(TargetSpec::is_sql) {
            return Err(Error::Usage("--isolation names no level".into()));
        }
        if self.ops == 0 {
            return Err(Error::Usage("--ops must be at least 1".into()));
        }
        Ok(())
    }

    /// The points to measure, in order: the first mode, slot count and layout first (the
    /// figures most of the report reads), timed then untimed, strategies inside worker counts.
    ///
    /// With one slot the layouts hold the same bytes (value, lock word and mutex of one slot
    /// in one cache line either way), so one slot is measured in the first layout only.
    /// Untimed (`latency off`) points are measured for the first slot count and layout, in
    /// every mode: enough to show what timing costs without doubling the bench.
    pub fn points(&self) -> Vec<PointKey> {
        let mut out = Vec::new();
        for target in &self.targets {
            if *target == TargetSpec::Memory {
                out.extend(self.memory_points());
                continue;
            }
            let strategies = self.strategies_on(target);
            for level in self.levels_on(target) {
                for &workers in &self.workers {
                    for &strategy in &strategies {
                        out.push(PointKey {
                            strategy,
                            mode: Mode::Processes,
                            layout: Layout::Packed,
                            slots: 1,
                            workers,
                            latency: LatencyMode::All,
                            engine: target.kind(),
                            isolation: level,
                        });
                    }
                }
            }
        }
        out
    }

    /// The memory target's points (see [`BenchOptions::points`]).
    fn memory_points(&self) -> Vec<PointKey> {
        let strategies = self.strategies_on(&TargetSpec::Memory);
        let mut out = Vec::new();
        for &mode in &self.modes {
            for (si, &slots) in self.slots.iter().enumerate() {
                for (li, &layout) in self.layouts.iter().enumerate() {
                    if slots == 1 && li > 0 && self.layouts.len() > 1 {
                        continue;
                    }
                    let main = si == 0 && li == 0;
                    for latency in [LatencyMode::All, LatencyMode::Off] {
                        if latency == LatencyMode::Off && !main {
                            continue;
                        }
                        for &workers in &self.workers {
                            for &strategy in &strategies {
                                out.push(PointKey {
                                    strategy,
                                    mode,
                                    layout,
                                    slots,
                                    workers,
                                    latency,
                                    engine: TargetKind::Memory,
                                    isolation: None,
                                });
                            }
                        }
                    }
                }
            }
        }
        out
    }

    fn config(&self, key: PointKey, budget: Duration) -> Options {
        if key.engine != TargetKind::Memory {
            return self.target_config(key);
        }
        Options {
            strategies: vec![key.strategy],
            workers: key.workers,
            // An upper bound only: the time limit ends the run. Capped so no slot can wrap.
            ops: (u32::MAX as u64 / key.workers as u64).max(1),
            slots: key.slots,
            mode: key.mode,
            layout: key.layout,
            seed: self.seed,
            pick: Pick::Uniform,
            target: crate::target::TargetSpec::Memory,
            isolation: Vec::new(),
            lock_ttl_ms: None,
            fencing: false,
            store_target: false,
            initial: 0,
            race_window: 0,
            latency: key.latency,
            repeat: 1,
            hold_after_read: false,
            // Longer than the cap: the cap, not the stall watchdog, ends a collapsed run.
            stall_timeout: (budget * CAP_FACTOR * 2).max(Duration::from_secs(10)),
            time_limit: Some(budget),
            progress: false,
            scenario: None,
            store: None,
            history: None,
            fsync: crate::store::Fsync::default(),
            faults: crate::fault::Faults::default(),
        }
    }

    /// A target's point runs by count: `ops` updates per worker, every one accounted for.
    fn target_config(&self, key: PointKey) -> Options {
        Options {
            strategies: vec![key.strategy],
            workers: key.workers,
            ops: self.ops,
            slots: 1,
            mode: Mode::Processes,
            layout: Layout::Packed,
            seed: self.seed,
            pick: Pick::Uniform,
            target: self.spec(key.engine).clone(),
            isolation: key.isolation.into_iter().collect(),
            lock_ttl_ms: None,
            fencing: false,
            store_target: false,
            initial: 0,
            race_window: 0,
            latency: LatencyMode::All,
            repeat: 1,
            hold_after_read: false,
            // Longer than the cap of a run by time, so the cap, not the watchdog, ends it.
            stall_timeout: self.target_budget.map_or(Duration::from_secs(30), |b| {
                (b * CAP_FACTOR * 2).max(Duration::from_secs(30))
            }),
            time_limit: self.target_budget,
            progress: false,
            scenario: None,
            store: None,
            history: None,
            fsync: crate::store::Fsync::default(),
            faults: crate::fault::Faults::default(),
        }
    }

    fn settings(&self) -> BenchSettings {
        let points = self.points();
        let mut strategies: Vec<StrategyKind> = Vec::new();
        for k in &points {
            if !strategies.contains(&k.strategy) {
                strategies.push(k.strategy);
            }
        }
        let targets = self.targets.iter().any(|t| *t != TargetSpec::Memory);
        BenchSettings {
            quick: self.quick,
            budget_ms: self.budget.as_secs_f64() * 1e3,
            budget_per_worker_ms: BUDGET_PER_WORKER.as_secs_f64() * 1e3,
            cap_factor: CAP_FACTOR,
            repeat: self.repeat,
            warmup: self.warmup,
            strategies,
            workers: self.workers.clone(),
            slots: self.slots.clone(),
            modes: self.modes.clone(),
            layouts: self.layouts.clone(),
            seed: self.seed,
            targets: self.targets.iter().map(TargetSpec::kind).collect(),
            isolation: if self.targets.iter().any(TargetSpec::is_sql) {
                self.isolation.clone()
            } else {
                Vec::new()
            },
            ops_per_worker: targets.then_some(self.ops),
            target_budget_ms: self
                .target_budget
                .filter(|_| targets)
                .map(|b| b.as_secs_f64() * 1e3),
        }
    }
}

/// `Target::preflight` for the most workers any point asks, whatever the target's type.
struct Preflight {
    workers: usize,
    strategies: Vec<StrategyKind>,
}

impl WithTarget for Preflight {
    type Out = Result<(), Error>;
    fn memory(self) -> Self::Out {
        Ok(())
    }
    fn with<T: Target + 'static>(self, target: T) -> Self::Out {
        let shape = RunShape {
            slots: 1,
            workers: self.workers,
            ..Default::default()
        };
        target.preflight(&shape, &self.strategies)
    }
}

/// Removes one run's rows, keys or files from its target, once it is measured.
struct Clean(u64);

impl WithTarget for Clean {
    type Out = Result<u64, Error>;
    fn memory(self) -> Self::Out {
        Ok(0)
    }
    fn with<T: Target + 'static>(self, target: T) -> Self::Out {
        target.clean(Some(self.0))
    }
}

/// Per worker, the least a run's budget may be: every worker must be scheduled at least once
/// before it can see the stop flag, and a scheduler round of 1000 CPU-bound processes on a
/// 2-core machine takes longer than a short budget. Without this, `atomic` at 1000 workers is
/// "collapsed" by the scheduler, not by its own behaviour.
pub const BUDGET_PER_WORKER: Duration = Duration::from_micros(500);

/// The time limit of one run of a point with `workers` workers.
pub fn point_budget(base: Duration, workers: usize) -> Duration {
    base.max(BUDGET_PER_WORKER * workers as u32)
}

/// Runs the whole matrix, writing every file after each point. Returns the final summary.
pub fn bench(opts: &BenchOptions) -> Result<BenchSummary, Error> {
    bench_each(opts, &mut |_| Ok(()))
}

/// As [`bench()`], handing `on_point` a one-line result ([`point_line`]) as each point is done
/// and written (the progress bar is lifted meanwhile, so the line lands above it).
pub fn bench_each(
    opts: &BenchOptions,
    on_point: &mut dyn FnMut(&str) -> Result<(), Error>,
) -> Result<BenchSummary, Error> {
    if opts.repeat == 0 {
        return Err(Error::Usage("--repeat must be at least 1".into()));
    }
    if opts.budget.is_zero() {
        return Err(Error::Usage("--budget-ms must be at least 1".into()));
    }
    opts.check_input()?;
    let points = opts.points();
    if points.is_empty() {
        return Err(Error::Usage(
            "the matrix is empty: name at least one strategy, worker count, slot count, mode and layout".into(),
        ));
    }
    // Every configuration is checked before the first run: bad input fails at once.
    for &key in &points {
        opts.config(key, opts.budget).validate()?;
    }
    // A server that cannot take the most workers refuses here, before any file is written.
    opts.check_targets()?;
    prepare_out(&opts.out, opts.force)?;

    let machine = machine_info(&opts.command);
    write_file(
        &opts.out.join("machine.json"),
        &serde_json::to_string_pretty(&machine).expect("machine info serialises"),
    )?;
    let mut summary = BenchSummary {
        tool: revision::tool(),
        machine,
        settings: opts.settings(),
        points: Vec::new(),
        all_exact: true,
        peer_notes: Vec::new(),
    };

    let progress = Progress::new(opts, &points);
    let label_width = points.iter().map(|k| k.label().len()).max().unwrap_or(0);
    for (i, &key) in points.iter().enumerate() {
        progress.show(i, key);
        let point = if key.engine == TargetKind::Memory {
            measure(opts, key)?
        } else {
            measure_target(opts, key, &mut summary.peer_notes)?
        };
        let line = point_line(i, points.len(), label_width, &point);
        summary.points.push(point);
        summary.derive();
        write_reports(&opts.out, &summary)?;
        progress.bar.suspend(|| on_point(&line))?;
    }
    progress.bar.finish_and_clear();
    Ok(summary)
}

/// One point: an unmeasured warm-up, then `repeat` runs by time.
fn measure(opts: &BenchOptions, key: PointKey) -> Result<BenchPoint, Error> {
    let budget = point_budget(opts.budget, key.workers);
    let config = opts.config(key, budget);
    let cap = budget * CAP_FACTOR;
    let mut collapsed = false;
    if opts.warmup {
        // A short warm-up: it only faults the pages in and wakes the CPUs; whether it was
        // capped says nothing (the measured runs decide).
        let warm = opts.config(key, (budget / 4).max(Duration::from_millis(1)));
        match run_once(&warm, Variant::Strategy(key.strategy), opts.seed) {
            Ok(_) | Err(Error::TimeLimit(_)) => {}
            Err(e) => return Err(e),
        }
    }
    let mut runs = Vec::new();
    let mut histogram = latency::new_histogram();
    for r in 0..opts.repeat {
        if collapsed {
            break;
        }
        match run_once(
            &config,
            Variant::Strategy(key.strategy),
            opts.seed.wrapping_add(r as u64),
        ) {
            Ok((run, h)) => {
                histogram.add(&h).expect("same bounds");
                // Threads cannot be killed at the cap: a run that ran past it collapsed too.
                collapsed = run.window_ms > cap.as_secs_f64() * 1e3;
                runs.push(run);
            }
            Err(Error::TimeLimit(_)) => collapsed = true,
            Err(e) => return Err(e),
        }
    }
    Ok(BenchPoint::of(key, &runs, &histogram, collapsed))
}

/// The peer run beside a target's point, if any: pgbench beside PostgreSQL `atomic` and
/// `lock`, at the first isolation level benched (its statements are the target's own, run at
/// that level); redis-benchmark's `INCR` beside Redis `atomic`.
fn peer_of(opts: &BenchOptions, key: PointKey) -> Option<&'static str> {
    let first = |k: PointKey| k.isolation == opts.isolation.first().copied();
    match (key.engine, key.strategy) {
        (TargetKind::Postgres, StrategyKind::Atomic | StrategyKind::Lock) if first(key) => {
            Some("pgbench")
        }
        (TargetKind::Redis, StrategyKind::Atomic) => Some("redis-benchmark"),
        _ => None,
    }
}

/// One peer run: its tps and p99 (µs), or why it gave none.
fn run_peer(opts: &BenchOptions, key: PointKey, tool: &str) -> Result<(f64, f64), (bool, String)> {
    let spec = opts.spec(key.engine);
    match (tool, spec) {
        ("pgbench", TargetSpec::Postgres(url)) => {
            use crate::peer::pgbench::{self, PeerError};
            let target =
                crate::target::postgres::Postgres::new(url, key.isolation.unwrap_or_default());
            match pgbench::run(&target, key.strategy, key.workers, opts.ops) {
                Ok(f) => Ok((f.tps, f.p99_us as f64)),
                Err(e @ PeerError::NotInstalled(_)) => Err((true, e.to_string())),
                Err(e) => Err((false, e.to_string())),
            }
        }
        ("redis-benchmark", TargetSpec::Redis(url)) => {
            use crate::peer::redis_benchmark::{self, PeerError};
            let url = crate::target::redis::resp::RedisUrl::parse(url).map_err(|e| (false, e))?;
            let requests = opts.ops * key.workers as u64;
            match redis_benchmark::incr(&url, key.workers, requests) {
                Ok(f) => Ok((f.rps, f.p99_ms * 1e3)),
                Err(e @ PeerError::NotInstalled) => Err((true, e.to_string())),
                Err(e) => Err((false, e.to_string())),
            }
        }
        _ => Err((
            false,
            format!("{tool} has nothing to run against {}", key.engine.name()),
        )),
    }
}

/// One target's point: `repeat` runs by count, each followed by the peer's run at the same
/// point when there is one (alternating, so both see the same server state and machine load);
/// every run's rows, keys or files removed once it is measured.
fn measure_target(
    opts: &BenchOptions,
    key: PointKey,
    notes: &mut Vec<String>,
) -> Result<BenchPoint, Error> {
    let config = opts.config(key, opts.budget);
    let spec = opts.spec(key.engine).clone();
    let mut peer = peer_of(opts, key);
    // A peer already known to be missing is not tried again.
    if let Some(tool) = peer {
        if notes
            .iter()
            .any(|n| n.starts_with(tool) && n.contains("not installed"))
        {
            peer = None;
        }
    }
    let mut runs = Vec::new();
    let mut histogram = latency::new_histogram();
    let mut peer_runs: Vec<(f64, f64)> = Vec::new();
    let mut collapsed = false;
    for r in 0..opts.repeat {
        let (run, h) = match run_once(
            &config,
            Variant::Strategy(key.strategy),
            opts.seed.wrapping_add(r as u64),
        ) {
            Ok(done) => done,
            // Still going at CAP_FACTOR × --budget-ms: its workers were killed.
            Err(Error::TimeLimit(why)) => {
                collapsed = true;
                notes.push(format!("{}: {why}.", key.label()));
                break;
            }
            Err(e) => return Err(e),
        };
        spec.open(Clean(run.run))??;
        histogram.add(&h).expect("same bounds");
        runs.push(run);
        if let Some(tool) = peer {
            match run_peer(opts, key, tool) {
                Ok(figures) => peer_runs.push(figures),
                Err((missing, why)) => {
                    let note = if missing {
                        format!(
                            "{tool} is not installed: no peer beside {} ({why}).",
                            key.engine.name()
                        )
                    } else {
                        format!("{tool} failed beside {}: {why}.", key.label())
                    };
                    if !notes.contains(&note) {
                        notes.push(note);
                    }
                    peer = None;
                }
            }
        }
    }
    let mut point = BenchPoint::of(key, &runs, &histogram, collapsed);
    if let Some(tool) = peer.filter(|_| !peer_runs.is_empty()) {
        let tps = Spread::of(peer_runs.iter().map(|f| f.0));
        point.peer = Some(PeerPoint {
            tool: tool.into(),
            runs: peer_runs.len(),
            tps,
            p99_us: Spread::of(peer_runs.iter().map(|f| f.1)).median,
            ratio: point.ops_per_sec / tps.median,
        });
    }
    Ok(point)
}

/// Refuses an `out` that already holds files unless `force`; with `force`, removes the files
/// an earlier bench wrote there (and nothing else). Bad input: exit 2, naming the flag.
fn prepare_out(out: &Path, force: bool) -> Result<(), Error> {
    let entries = match fs::read_dir(out) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return fs::create_dir_all(out).map_err(|e| io_error(out, e));
        }
        Err(e) if e.kind() == ErrorKind::NotADirectory => {
            return Err(Error::Usage(format!(
                "--out {}: not a directory",
                out.display()
            )));
        }
        Err(e) => return Err(io_error(out, e)),
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    if names.is_empty() {
        return Ok(());
    }
    if !force {
        names.sort();
        let shown = names.iter().take(3).cloned().collect::<Vec<_>>().join(", ");
        let more = if names.len() > 3 { ", …" } else { "" };
        return Err(Error::Usage(format!(
            "--out {} already holds files ({shown}{more}): name a new directory, or add --force to replace the bench's files there",
            out.display()
        )));
    }
    for name in FILES {
        match fs::remove_file(out.join(name)) {
            Err(e) if e.kind() != ErrorKind::NotFound => return Err(io_error(&out.join(name), e)),
            _ => {}
        }
    }
    Ok(())
}

/// Renders every report from the one summary (each file replaced whole, never half-written).
pub fn write_reports(dir: &Path, summary: &BenchSummary) -> Result<(), Error> {
    write_file(&dir.join("report.md"), &render_markdown(summary))?;
    write_file(
        &dir.join("summary.json"),
        &serde_json::to_string_pretty(summary).expect("the summary serialises"),
    )?;
    // The same points as summary.json, one a line, with every figure derived so far.
    let mut jsonl = String::new();
    for p in &summary.points {
        jsonl.push_str(&serde_json::to_string(p).expect("a point serialises"));
        jsonl.push('\n');
    }
    write_file(&dir.join("points.jsonl"), &jsonl)?;
    write_file(&dir.join("summary.csv"), &render_csv(summary))?;
    let memory = summary.memory_only();
    let mut plots = crate::report::targets::target_plots(summary);
    if !memory.points.is_empty() {
        plots.extend(bench_plots(&memory));
    }
    for (name, svg) in plots {
        write_file(&dir.join(name), &svg)?;
    }
    Ok(())
}

fn write_file(path: &Path, text: &str) -> Result<(), Error> {
    let name = path.file_name().map_or("".into(), |n| n.to_string_lossy());
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    fs::write(&tmp, text)
        .and_then(|_| fs::rename(&tmp, path))
        .map_err(|e| io_error(path, e))
}

fn io_error(path: &Path, e: std::io::Error) -> Error {
    Error::System(format!("writing {}: {e}", path.display()))
}

/// The machine, the toolchain and the command, for machine.json.
pub fn machine_info(command: &[String]) -> MachineInfo {
    let this = Machine::this();
    // Child processes only (no thread): the parent stays single-threaded for later forks.
    let output = |cmd: &str, args: &[&str]| {
        std::process::Command::new(cmd)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .filter(|s| !s.is_empty())
    };
    MachineInfo {
        cpu: this.cpu,
        cores: this.cores,
        kernel: this.kernel,
        rustc: output("rustc", &["--version"]),
        // Stamped when the binary was built, whatever directory it runs in.
        git_revision: revision::commit().map(str::to_string),
        git_dirty: revision::dirty(),
        started: utc_now(),
        command: command.to_vec(),
    }
}

/// Now, in UTC, as `2026-11-23T10:22:31Z`.
fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    utc(secs)
}

/// Seconds since the epoch as an ISO 8601 UTC time (proleptic Gregorian calendar).
fn utc(secs: u64) -> String {
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's days_from_civil, inverted).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// One point's result, as it is done: ` 3/42  cas processes w=4 … latency=all
/// 5.17M/s  p99  241 ns  exact` (or `34.3% lost`, `collapsed`), the label padded to
/// `label_width` so the figures line up.
pub fn point_line(i: usize, n: usize, label_width: usize, p: &BenchPoint) -> String {
    // `3/42`: the bar above says `point 3 of 42`; the line keeps its columns for the figures.
    let at = format!("{}/{}", count(i as u64 + 1), count(n as u64));
    let at_width = 2 * count(n as u64).len() + 1;
    // Untimed points (`latency=off`) have no latency: a dash keeps the verdicts in line.
    let p99 = p
        .latency_ns
        .as_ref()
        .map_or("–".into(), |l| time_ns(l.p99 as f64));
    let p99 = format!("  p99 {p99:>7}");
    let result = match (p.status, p.verdict) {
        (PointStatus::Collapsed, _) => "collapsed".to_string(),
        (_, Verdict::Exact) => "exact".into(),
        // Only the bug is expected to lose: its share lost says the race was caught.
        (_, Verdict::RaceCaught) => format!("{} lost", percent(p.loss_fraction)),
        // A target's racy that Hermitage expects exact (retried serialization failures).
        (_, Verdict::RaceMissed) if p.expected == Some(crate::report::matrix::Expected::Exact) => {
            "exact (as expected)".into()
        }
        (_, Verdict::RaceMissed) => "race missed".into(),
        (_, Verdict::Failed) => format!("FAILED: {} lost", count(p.lost)),
    };
    let peer = p.peer.as_ref().map_or(String::new(), |x| {
        format!("  {} {}", crate::report::units::ratio(x.ratio), x.tool)
    });
    format!(
        "{at:>at_width$}  {:<label_width$}  {:>5}/s{p99}  {result}{peer}\n",
        p.key.label(),
        rate(p.ops_per_sec),
    )
}

/// Which point is running and an ETA, in `progress::style`, on stderr when it is a terminal;
/// drawn between points from the main thread (no steady tick: indicatif starts no thread, and
/// no thread may live while a run forks).
struct Progress {
    bar: ProgressBar,
    start: Instant,
    /// Estimated cost of each point.
    weights: Vec<f64>,
    total: f64,
}

impl Progress {
    fn new(opts: &BenchOptions, points: &[PointKey]) -> Progress {
        let runs = opts.repeat as f64 + if opts.warmup { 0.25 } else { 0.0 };
        // About 0.2 ms to fork or spawn and reap each worker, plus the budget.
        let weights: Vec<f64> = points
            .iter()
            .map(|k| match k.engine {
                TargetKind::Memory => {
                    runs * (point_budget(opts.budget, k.workers).as_secs_f64()
                        + 0.0002 * k.workers as f64)
                }
                // A guess of a few thousand updates a second, the peer's run as long again.
                _ => {
                    let peer = if peer_of(opts, *k).is_some() {
                        2.0
                    } else {
                        1.0
                    };
                    peer * opts.repeat as f64 * (opts.ops * k.workers as u64) as f64 / 3000.0
                }
            })
            .collect();
        let total = weights.iter().sum();
        let bar = if std::io::stderr().is_terminal() {
            ProgressBar::with_draw_target(Some(points.len() as u64), ProgressDrawTarget::stderr())
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(progress::style());
        Progress {
            bar,
            start: Instant::now(),
            weights,
            total,
        }
    }

    fn show(&self, i: usize, key: PointKey) {
        let done: f64 = self.weights[..i].iter().sum();
        let left =
            (done > 0.0).then(|| self.start.elapsed().as_secs_f64() / done * (self.total - done));
        self.bar.set_prefix(progress::prefix(
            &progress::position("point", i, self.weights.len()),
            &key.label(),
        ));
        self.bar.set_message(progress::eta(left));
        self.bar.set_position(i as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_point_says_where_it_stands_and_what_it_measured_in_one_aligned_line() {
        let summary = crate::report::matrix::sample::summary();
        let n = summary.points.len();
        let width = summary
            .points
            .iter()
            .map(|p| p.key.label().len())
            .max()
            .unwrap();
        let lines: Vec<String> = summary
            .points
            .iter()
            .enumerate()
            .map(|(i, p)| point_line(i, n, width, p))
            .collect();
        // racy, 1 worker, processes: 1,234,567.891/s, p99 300 ns, 1.7% lost.
        assert_eq!(
            lines[0],
            format!(
                " 1/12  {:<width$}  1.23M/s  p99  300 ns  1.7% lost\n",
                "racy processes w=1 slots=1 packed latency=all"
            )
        );
        assert!(lines[2].starts_with(" 3/12  racy "), "{}", lines[2]);
        assert!(lines[9].starts_with("10/12  pthread "), "{}", lines[9]);
        // pthread with 4 workers collapsed in the sample.
        assert!(lines[10].ends_with("  collapsed\n"), "{}", lines[10]);
        assert!(lines[4].ends_with("  exact\n"), "{}", lines[4]);
        // The figures and the verdicts start in the same column on every line, timed or not.
        let at = |l: &String| l.find("/s").unwrap();
        assert!(lines.iter().all(|l| at(l) == at(&lines[0])), "{lines:#?}");
        let mut untimed = summary.points[0].clone();
        untimed.latency_ns = None;
        let untimed = point_line(0, n, width, &untimed);
        assert_eq!(
            untimed.replace("      –", " 300 ns"),
            lines[0],
            "{untimed}{}",
            lines[0]
        );
        assert!(
            lines.iter().all(|l| l.trim_end().len() <= 100),
            "{lines:#?}"
        );
        // The full default bench's widest line still fits 100 columns.
        let full = BenchOptions::defaults(false).points();
        let widest = full.iter().map(|k| k.label().len()).max().unwrap();
        let mut point = summary.points[0].clone();
        point.key = *full.iter().find(|k| k.label().len() == widest).unwrap();
        let line = point_line(full.len() - 1, full.len(), widest, &point);
        assert!(line.trim_end().len() <= 100, "{line}");
    }

    #[test]
    fn a_target_bench_runs_each_level_and_worker_count_of_the_targets_own_strategies() {
        let mut opts = BenchOptions::defaults(false);
        opts.targets = vec![
            "postgres://u@h/db".parse().unwrap(),
            "redis://h:6379".parse().unwrap(),
        ];
        opts.strategies = Vec::new();
        opts.workers = vec![1, 8];
        let points = opts.points();
        // PostgreSQL: 3 levels × 2 worker counts × 5 strategies; Redis: 2 × 5.
        assert_eq!(points.len(), 30 + 10);
        assert!(points[..30]
            .iter()
            .all(|k| k.engine == TargetKind::Postgres));
        assert_eq!(points[0].isolation, Some(Isolation::ReadCommitted));
        assert_eq!(points[29].isolation, Some(Isolation::Serializable));
        assert!(points[30..].iter().all(|k| k.isolation.is_none()));
        // Named strategies: those a target implements; one no target runs is refused.
        opts.strategies = vec![StrategyKind::Atomic, StrategyKind::Advisory];
        let points = opts.points();
        assert_eq!(points.len(), 3 * 2 * 2 + 2);
        assert_eq!(peer_of(&opts, points[0]), Some("pgbench"));
        assert_eq!(peer_of(&opts, points[1]), None);
        assert_eq!(peer_of(&opts, points[4]), None, "only at the first level");
        assert_eq!(peer_of(&opts, points[12]), Some("redis-benchmark"));
        opts.strategies = vec![StrategyKind::Pthread];
        let e = opts.check_input().unwrap_err().to_string();
        assert!(e.contains("--strategy pthread"), "{e}");
        opts.strategies = Vec::new();
        opts.targets.push("postgres://other/db".parse().unwrap());
        let e = opts.check_input().unwrap_err().to_string();
        assert!(e.contains("postgres twice"), "{e}");
    }

    #[test]
    fn utc_dates_are_civil_dates() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(utc(4_107_542_399), "2100-02-28T23:59:59Z");
    }
}
