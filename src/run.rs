//! One runner for every workload and every target:
//!
//! ```text
//! Options -> (per variant, per repeat) run_once:
//!     target (the region, or a Target's slots) -> pool (fork, barrier, reap: deaths to fault/)
//!     -> worker::drive in every worker -> check (workload, store) -> RunSummary
//! ```
//!
//! The memory target is the region itself, its strategies monomorphized into the workers'
//! loop; every other target goes through `target::Target` (opened in the parent, its slots
//! made before the fork, each worker connecting after it, its finals read after the reap).
//! The region is the control plane for every target: barrier, stop word, each worker's
//! counters and histogram.

use hdrhistogram::Histogram;

use crate::barrier::{Gate, Started};
use crate::clock::Clock;
use crate::error::Error;
use crate::fault::recover::Recoverer;
use crate::fault::{FaultReport, Faults, KillPlan};
use crate::history::{Killed, RunEnd, RunInfo};
use crate::latency::{self, LatencyMode};
use crate::options::{Mode, Options};
use crate::pool::{self, child_exit, Exit, PoolOutcome};
use crate::progress::{self, WatchOutcome, Watcher};
use crate::region::Region;
use crate::report::{Fairness, Percentiles, RunSummary, StrategySummary, Summary, Verdict};
use crate::store::RunStore;
use crate::target::sql::Isolation;
use crate::target::{Records, RunShape, Share, Target, WithTarget};
use crate::verify::{self, RunCheck};
use crate::worker::{Control, Halt, WorkerReport};
use crate::workload::{self, Judgement, Plan, Row, Variant, Work};

/// Runs every variant `repeat` times and summarises.
pub fn run(opts: &Options) -> Result<Summary, Error> {
    run_each(opts, &mut |_| Ok(()))
}

/// As [`run`], handing each variant's row to `on_row` as soon as its runs are done (the text
/// output prints it then). An error from `on_row` ends the invocation.
pub fn run_each(
    opts: &Options,
    on_row: &mut dyn FnMut(&StrategySummary) -> Result<(), Error>,
) -> Result<Summary, Error> {
    if let Some(store) = &opts.store {
        store.prepare()?;
    }
    // Before anything forks: a target that cannot take the run refuses it here.
    let levels = opts.levels();
    opts.target
        .open_with(&opts.target_options(levels[0]), Preflight(opts))??;
    let mut rows = Vec::new();
    let variants = opts.variants();
    let what = if opts.scenario.is_some() {
        "variant"
    } else {
        "strategy"
    };
    // A row per level and variant: the bar counts rows.
    let n = levels.len() * variants.len();
    'levels: for (l, &level) in levels.iter().enumerate() {
        for (v, &variant) in variants.iter().enumerate() {
            let mut runs = Vec::new();
            let mut histograms = Vec::new();
            for r in 0..opts.repeat {
                let mut position = progress::position(what, l * variants.len() + v, n);
                if let Some(level) = level {
                    position = format!("{position}, {}", level.name());
                }
                if opts.repeat > 1 {
                    position = format!(
                        "{position}, {}",
                        progress::position("run", r as usize, opts.repeat as usize)
                    );
                }
                let seed = opts.seed.wrapping_add(r as u64);
                let (run, histogram) = run_once_at(opts, level, variant, seed, &position)?;
                runs.push(run);
                histograms.push(histogram);
                if pool::interrupted() {
                    break;
                }
            }
            let mut row = row(opts, variant, runs, histograms);
            row.isolation = level;
            on_row(&row)?;
            rows.push(row);
            if pool::interrupted() {
                break 'levels;
            }
        }
    }
    let summary = Summary::new(opts, rows);
    if let Some(store) = &opts.store {
        let runs = summary.strategies.iter().map(|s| s.runs.len() as u64).sum();
        store.close(runs)?;
    }
    // `opts.history` is exported by the caller (history::export), from the store.
    Ok(summary)
}

struct Preflight<'a>(&'a Options);

impl WithTarget for Preflight<'_> {
    type Out = Result<(), Error>;
    fn memory(self) -> Self::Out {
        Ok(())
    }
    fn with<T: Target + 'static>(self, target: T) -> Self::Out {
        let o = self.0;
        let mechanisms: Vec<_> = o.variants().iter().map(|v| v.mechanism()).collect();
        target.preflight(&shape_of(o, 0), &mechanisms)
    }
}

fn shape_of(opts: &Options, run: u64) -> RunShape {
    RunShape {
        run,
        slots: opts.slots,
        workers: opts.workers,
        initial: opts.initial,
        race_window: opts.race_window,
        fsync: opts.fsync,
        // Validated: a scenario on a target other than memory holds what the target can.
        holds: opts
            .scenario
            .as_ref()
            .and_then(|sc| sc.kind.holds())
            .unwrap_or_default(),
        share: Share::default(),
    }
}

/// One variant's runs, summed into its row. A scenario's row is judged by its invariant.
fn row(
    opts: &Options,
    variant: Variant,
    runs: Vec<RunSummary>,
    histograms: Vec<Histogram<u64>>,
) -> StrategySummary {
    let Some(sc) = &opts.scenario else {
        return StrategySummary::of(variant.mechanism(), runs, histograms);
    };
    let mut row = Row {
        scenario: sc.kind.name(),
        variant: variant.name(),
        invariant: sc.kind.invariant(),
        counters: Default::default(),
        findings: Vec::new(),
    };
    for check in runs.iter().filter_map(|r| r.check.as_ref()) {
        for (k, v) in &check.counters {
            *row.counters.entry(k.clone()).or_default() += v;
        }
        if row.findings.is_empty() {
            row.findings = check.findings.clone();
        }
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
    s
}

/// One run of `variant`: a fresh region (and fresh slots on the target), one pool of workers,
/// one check.
pub fn run_once(
    opts: &Options,
    variant: Variant,
    seed: u64,
) -> Result<(RunSummary, Histogram<u64>), Error> {
    run_once_at(opts, opts.levels()[0], variant, seed, "")
}

/// [`run_once`] at one isolation level (a SQL target's; None elsewhere), its progress bar
/// saying where it stands (`strategy 2 of 3, run 1 of 5`).
pub fn run_once_at(
    opts: &Options,
    level: Option<Isolation>,
    variant: Variant,
    seed: u64,
    position: &str,
) -> Result<(RunSummary, Histogram<u64>), Error> {
    opts.target.open_with(
        &opts.target_options(level),
        Once {
            opts,
            variant,
            seed,
            position,
        },
    )?
}

struct Once<'a> {
    opts: &'a Options,
    variant: Variant,
    seed: u64,
    position: &'a str,
}

impl WithTarget for Once<'_> {
    type Out = Result<(RunSummary, Histogram<u64>), Error>;
    fn memory(self) -> Self::Out {
        once(self.opts, &Memory, self.variant, self.seed, self.position)
    }
    fn with<T: Target + 'static>(self, target: T) -> Self::Out {
        once(
            self.opts,
            &Remote(&target),
            self.variant,
            self.seed,
            self.position,
        )
    }
}

/// Where a run's slots live, as the runner sees it.
trait Place: Sync {
    /// Slots the region holds: the memory target's; none for a target with its own.
    fn region_slots(&self, slots: usize) -> usize;
    /// Makes the run's slots (the region's are made with it).
    fn create(&self, shape: &RunShape) -> Result<(), Error>;
    /// Worker `w`'s whole run, in the worker (after the fork): it passes `gate`'s start
    /// barrier once its loop is built, or, with `connect_first`, once connected to its target;
    /// its done barrier when its loop has ended. None: the parent is gone before the release.
    fn work(
        &self,
        region: &Region,
        w: usize,
        plan: &Plan,
        shape: &RunShape,
        gate: &dyn Gate,
        connect_first: bool,
    ) -> Option<WorkerReport>;
    /// After every worker is reaped, whatever happened: tidies what they left (`Target::settle`).
    fn settle(&self, shape: &RunShape) -> Result<(), Error>;
    /// Every slot's final value, after every worker is reaped.
    fn finals(&self, region: &Region, shape: &RunShape) -> Result<Vec<u32>, Error>;
    /// `--store target`: the record the target keeps (validated: it keeps one).
    fn records(&self) -> Option<&dyn Records>;
}

/// The memory target: the region's slots, strategies monomorphized into the loop.
struct Memory;

impl Place for Memory {
    fn region_slots(&self, slots: usize) -> usize {
        slots
    }
    fn create(&self, _: &RunShape) -> Result<(), Error> {
        Ok(())
    }
    fn work(
        &self,
        region: &Region,
        w: usize,
        plan: &Plan,
        _: &RunShape,
        gate: &dyn Gate,
        _: bool,
    ) -> Option<WorkerReport> {
        workload::work(region, w, plan, gate)
    }
    fn settle(&self, _: &RunShape) -> Result<(), Error> {
        Ok(())
    }
    fn finals(&self, region: &Region, _: &RunShape) -> Result<Vec<u32>, Error> {
        Ok(region.values())
    }
    fn records(&self) -> Option<&dyn Records> {
        None
    }
}

/// Any other target, through its `Session`s.
struct Remote<'t, T>(&'t T);

impl<T: Target> Place for Remote<'_, T> {
    fn region_slots(&self, _: usize) -> usize {
        0
    }
    fn create(&self, shape: &RunShape) -> Result<(), Error> {
        self.0.create(shape)
    }
    fn work(
        &self,
        region: &Region,
        w: usize,
        plan: &Plan,
        shape: &RunShape,
        gate: &dyn Gate,
        connect_first: bool,
    ) -> Option<WorkerReport> {
        // Without `connect_first` the start barrier comes first, and connecting after it.
        if !connect_first && !gate.start() {
            return None;
        }
        let started = Started(gate);
        let ctl = Control {
            header: region.header(),
            area: region.worker(w),
            worker: w,
            gate: if connect_first { gate } else { &started },
        };
        workload::remote::work(self.0, region, ctl, plan, shape)
    }
    fn settle(&self, shape: &RunShape) -> Result<(), Error> {
        self.0.settle(shape)
    }
    fn finals(&self, _: &Region, shape: &RunShape) -> Result<Vec<u32>, Error> {
        self.0.finals(shape)
    }
    fn records(&self) -> Option<&dyn Records> {
        self.0.records()
    }
}

/// What the pool left of one run: the plan it ran, the region, how each worker ended and
/// what it reported, the deaths. Every worker is reaped and the target settled.
struct Pooled<'p> {
    plan: Plan,
    region: Region,
    outcome: PoolOutcome,
    interrupted: bool,
    reports: Vec<WorkerReport>,
    faults: FaultReport,
    /// `--store target`: the target's record of the run.
    records: Option<&'p dyn Records>,
    run_id: u64,
    shape: RunShape,
}

/// Forks the pool of one run of `variant` against `place` and reaps it: the run's slots are
/// made here (or, joined, by the host that created the joined run), its workers released
/// together (joined: when every host's are ready), every worker reaped, the target settled.
fn pooled<'p, P: Place>(
    opts: &Options,
    place: &'p P,
    variant: Variant,
    seed: u64,
    position: &str,
    joint: Option<&dyn Joint>,
) -> Result<Pooled<'p>, Error> {
    let run_id = joint.map_or_else(RunStore::new_run_id, |j| j.run_id());
    let mut plan = Plan {
        work: Work::Counter,
        variant,
        mode: opts.mode,
        workers: opts.workers,
        slots: opts.slots,
        ops: opts.ops,
        seed,
        pick: opts.pick,
        initial: opts.initial,
        latency: opts.latency,
        // Calibrated here, in the parent, once per invocation (then reused): every worker
        // inherits it and only reads the counter.
        clock: match opts.latency {
            LatencyMode::Off => Clock::monotonic(),
            _ => Clock::calibrated(),
        },
        race_window: opts.race_window,
        hold_after_read: opts.hold_after_read,
        store: None,
        events: opts.store_target,
        strike: opts.faults.strike,
        kills: if opts.faults.kill > 0 {
            KillPlan::new(seed, opts.workers, opts.ops, opts.faults.kill)
        } else {
            KillPlan::default()
        },
        armed: opts.faults.any() || opts.hold_after_read,
    };
    plan.work = Work::new(opts.scenario.as_ref(), &plan);
    let region = Region::create_with_scratch(
        place.region_slots(opts.slots),
        opts.workers,
        opts.layout,
        opts.initial,
        plan.scratch_words(),
    )?;
    plan.prepare(&region);
    plan.store = begin_store(opts, &plan, run_id)?;
    let target_shape = RunShape {
        share: joint.map_or_else(Share::default, |j| j.share()),
        ..shape_of(opts, run_id)
    };
    // A joined run's slots were made by the host that created it.
    if joint.is_none() {
        place.create(&target_shape)?;
    }
    // `--store target`: the header is written before any fork, as a log's is.
    let records =
        match opts.store_target {
            true => Some(place.records().ok_or_else(|| {
                Error::Usage("--store target: this target keeps no record".into())
            })?),
            false => None,
        };
    // A joined run's header was written once, by the host that created the run.
    if let (Some(r), None) = (records, joint) {
        r.begin_record(&run_info(opts, &plan, run_id))?;
    }

    let watcher = Watcher {
        label: plan.label(),
        position: position.to_string(),
        total: opts.ops * opts.workers as u64,
        stall_timeout: opts.stall_timeout,
        explain_stall: plan.explain_stall(),
        time_limit: opts.time_limit,
        show: opts.progress,
        faults: opts.faults.clone(),
        kills: plan.kills.clone(),
        seed,
    };
    let nth_slot = |w: usize, n: u64| plan.nth_slot(w, n);
    let recoverer = Recoverer {
        region: &region,
        locks: plan.lock_kind(),
        strike: plan
            .strike
            .map(|s| (s, Faults::struck_worker(seed, opts.workers))),
        armed: plan.armed,
        nth_slot: &nth_slot,
        ops: opts.ops,
    };
    let body = |w: usize, gate: &dyn Gate| -> i32 {
        // A joined run's workers connect before the barrier: the hosts' release starts updates.
        let Some(report) = place.work(&region, w, &plan, &target_shape, gate, joint.is_some())
        else {
            return child_exit::PARENT_GONE;
        };
        if report.publish(region.worker(w)) {
            child_exit::OK
        } else {
            child_exit::HISTOGRAM_TOO_LARGE
        }
    };
    let mut faults = FaultReport::default();
    let mut on_death = |dead| faults.record(recoverer.recover(&dead));
    let pooled = match (opts.mode, joint) {
        (Mode::Processes, None) => pool::run_processes(&region, &body, &watcher, &mut on_death),
        (Mode::Processes, Some(joint)) => pool::run_processes(
            &region,
            &body,
            &Rendezvous {
                watcher: &watcher,
                joint,
            },
            &mut on_death,
        ),
        (Mode::Threads, _) => pool::run_threads(&region, &body, &watcher),
    };
    // Every worker is reaped (or was never forked): the target tidies what they left, whatever
    // else went wrong; its own failure counts after the workers' (which explain it better).
    let settled = place.settle(&target_shape);
    // A store that failed explains any worker trouble better than the trouble itself.
    if let Some(failure) = plan.store.as_ref().and_then(|s| s.failure()) {
        return Err(Error::Store(failure));
    }
    let (outcome, seen) = pooled?;
    if let Some(stall) = seen.stalled {
        return Err(stall);
    }
    faults.kills_sent = seen.kills_sent;
    faults.pauses = seen.pauses;
    faults.asked = opts.faults.clone();
    faults.note_pid_reuse(&outcome.pids);

    let reports = collect(&region, &outcome, &mut faults)?;
    settled.map_err(mid_run)?;
    if let Some(d) = faults.deaths.iter().find(|d| !d.planned) {
        if !plan.bounds_deaths() {
            return Err(Error::Worker(format!(
                "worker {} was killed by {} from outside the run; {} cannot bound what a dead worker's update did, so this run proves nothing",
                d.worker,
                d.signal,
                plan.label()
            )));
        }
    }
    plan.settle(&region);
    Ok(Pooled {
        plan,
        region,
        outcome,
        interrupted: seen.interrupted,
        reports,
        faults,
        records,
        run_id,
        shape: target_shape,
    })
}

fn once<P: Place>(
    opts: &Options,
    place: &P,
    variant: Variant,
    seed: u64,
    position: &str,
) -> Result<(RunSummary, Histogram<u64>), Error> {
    let Pooled {
        plan,
        region,
        outcome,
        interrupted,
        reports,
        faults,
        records,
        run_id,
        shape: target_shape,
    } = pooled(opts, place, variant, seed, position, None)?;
    let finals = place.finals(&region, &target_shape).map_err(mid_run)?;
    let in_flight = plan.in_flight(&faults.deaths, &reports);
    let judgement = plan.judge(&region, &finals, &reports, &in_flight);
    let acknowledged = || {
        reports
            .iter()
            .map(|r| plan.acknowledged(&region, r))
            .collect()
    };
    let history = match (&plan.store, records) {
        (Some(store), _) => Some(persist_end_and_verify(
            store,
            &finals,
            acknowledged(),
            killed(&faults, &reports),
        )?),
        (None, Some(r)) => Some(record_end_and_verify(
            r,
            &RunEnd {
                run: run_id,
                fingerprint: crate::history::event::fingerprint(&finals),
                finals: finals.clone(),
                completed: acknowledged(),
                killed: killed(&faults, &reports),
            },
        )?),
        (None, None) => None,
    };
    let (mut run, histogram) = summarise(
        opts,
        &plan,
        outcome,
        interrupted,
        reports,
        faults,
        judgement,
        &finals,
        run_id,
    );
    if let Some(check) = history {
        // A run whose stored record does not verify failed, whatever memory says; a bug's
        // record is expected to show the damage (its witnesses).
        if !check.verified && !variant.is_bug() {
            run.verdict = Verdict::Failed;
        }
        run.history = Some(check);
    }
    Ok((run, histogram))
}

/// One host's share of a joined run (`--join`, see `join`): the run's slots exist already
/// under its id; the workers are released when every host's are ready; what the host saw goes
/// back to the target, where the host that finishes last (or `torture report`) judges them all.
pub trait Joint: Sync {
    /// The joined run's id: every host's workers update its rows.
    fn run_id(&self) -> u64;
    /// This host's workers' share of the run (their ids, their events' clock).
    fn share(&self) -> Share {
        Share::default()
    }
    /// In the parent, once every local worker stands at the start barrier, while it has no
    /// thread: waits for every host's workers. Returns when to release, as CLOCK_REALTIME ns.
    fn meet(&self) -> Result<i128, Error>;
    /// On a thread of the parent while the workers run, until `stop`: says this host is alive
    /// and what its workers have acknowledged (`completed`, read afresh at each beat).
    fn beat(&self, completed: &dyn Fn() -> Vec<u64>, stop: &std::sync::atomic::AtomicBool);
    /// After every worker is reaped: this host's figures.
    fn finish(&self, figures: HostFigures) -> Result<(), Error>;
}

/// What one host of a joined run saw, for its row in the target.
pub struct HostFigures {
    /// Each worker's acknowledged updates.
    pub completed: Vec<u64>,
    /// Each worker's updates whose outcome is unknown (a death mid-update, a lost connection).
    pub in_flight: Vec<u64>,
    /// The workers that died, and by which signal.
    pub deaths: Vec<(usize, String)>,
    pub retries: u64,
    pub histogram: Histogram<u64>,
    /// CLOCK_MONOTONIC ns: the release, each worker's first update's start and its last
    /// completion.
    pub go_ns: u64,
    pub start_ns: Vec<u64>,
    pub end_ns: Vec<u64>,
    pub spawn_ms: f64,
}

/// One host's share of the joined run `joint`: its workers, released with every host's; its
/// figures written back through `joint`.
pub fn host<T: Target>(
    opts: &Options,
    target: &T,
    variant: Variant,
    seed: u64,
    joint: &dyn Joint,
) -> Result<(), Error> {
    let place = Remote(target);
    let p = pooled(opts, &place, variant, seed, "", Some(joint))?;
    let mut in_flight = vec![0u64; p.reports.len()];
    for d in &p.faults.deaths {
        if d.in_flight.is_some() {
            in_flight[d.worker] += 1;
        }
    }
    for r in &p.reports {
        if let Some(Halt::Unknown(_)) = r.halt {
            in_flight[r.worker] += 1;
        }
    }
    let mut histogram = latency::new_histogram();
    for r in &p.reports {
        histogram.add(&r.histogram).expect("same bounds");
    }
    joint.finish(HostFigures {
        completed: p.reports.iter().map(|r| r.completed).collect(),
        in_flight,
        deaths: p
            .faults
            .deaths
            .iter()
            .map(|d| (d.worker, d.signal.clone()))
            .collect(),
        retries: p.reports.iter().map(|r| r.retries).sum(),
        histogram,
        go_ns: p.outcome.go_ns,
        start_ns: p.reports.iter().map(|r| r.start_ns).collect(),
        end_ns: p.reports.iter().map(|r| r.end_ns).collect(),
        spawn_ms: p.outcome.spawn_ns as f64 / 1e6,
    })
}

/// The watcher of a joined run's host: before anything else, the hosts meet (no thread
/// exists yet: every fork is done, and the rendezvous' connections open and close in turn);
/// then a heartbeat thread says this host is alive while the run's own watcher watches, and
/// the workers are released at the moment the hosts agreed on.
struct Rendezvous<'a> {
    watcher: &'a Watcher,
    joint: &'a dyn Joint,
}

impl pool::Watch for Rendezvous<'_> {
    type Seen = WatchOutcome;
    fn watch<T>(
        &self,
        region: &Region,
        live: Option<&pool::Live>,
        body: impl FnOnce() -> T,
    ) -> (T, WatchOutcome) {
        let release_at = match self.joint.meet() {
            Ok(at) => at,
            Err(e) => {
                // No worker may update: they are told to stop before the release, and killed.
                // Relaxed: every worker is killed; the word only keeps a worker that runs
                // before its SIGKILL lands from starting its first update.
                region
                    .header()
                    .stop
                    .store(1, std::sync::atomic::Ordering::Relaxed);
                if let Some(live) = live {
                    live.kill_all();
                }
                let out = body();
                return (
                    out,
                    WatchOutcome {
                        stalled: Some(e),
                        interrupted: false,
                        kills_sent: 0,
                        pauses: Vec::new(),
                    },
                );
            }
        };
        let stop = std::sync::atomic::AtomicBool::new(false);
        let completed = || {
            (0..region.worker_count())
                // Relaxed: a progress figure, read while the worker writes it.
                .map(|w| {
                    region
                        .worker(w)
                        .completed
                        .load(std::sync::atomic::Ordering::Relaxed)
                })
                .collect::<Vec<u64>>()
        };
        std::thread::scope(|scope| {
            let beat = scope.spawn(|| self.joint.beat(&completed, &stop));
            let watched = self.watcher.watch(region, live, || {
                // Released hosts' workers already hold the CPUs: under CFS this thread would
                // wake ms late behind them. At the lowest real-time priority it wakes on time;
                // it only sleeps, releases and reaps until it drops back after the run.
                let raised = PolicyGuard::fifo();
                crate::clock::sleep_until_realtime(release_at);
                let out = body();
                drop(raised);
                out
            });
            // SeqCst: the heartbeat's only stop signal; nothing else is published with it.
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
            let _ = beat.join();
            watched
        })
    }
}

/// This thread at SCHED_FIFO priority 1 while it lives, back to SCHED_OTHER after. Best
/// effort: without CAP_SYS_NICE nothing changes.
struct PolicyGuard {
    raised: bool,
}

impl PolicyGuard {
    fn fifo() -> PolicyGuard {
        let param = libc::sched_param { sched_priority: 1 };
        // SAFETY: gettid and sched_setscheduler have no memory preconditions; `param` is a
        // valid sched_param for the call; the TID addresses this thread alone.
        let raised =
            unsafe { libc::sched_setscheduler(libc::gettid(), libc::SCHED_FIFO, &param) } == 0;
        PolicyGuard { raised }
    }
}

impl Drop for PolicyGuard {
    fn drop(&mut self) {
        if self.raised {
            let param = libc::sched_param { sched_priority: 0 };
            // SAFETY: as in `fifo`; SCHED_OTHER takes priority 0.
            unsafe { libc::sched_setscheduler(libc::gettid(), libc::SCHED_OTHER, &param) };
        }
    }
}

/// Every worker's report: read back from its area, or, for a worker that died, what its
/// counters said. A worker that exited with a failure, or whose target failed, fails the run.
fn collect(
    region: &Region,
    outcome: &PoolOutcome,
    faults: &mut FaultReport,
) -> Result<Vec<WorkerReport>, Error> {
    let mut reports = Vec::with_capacity(outcome.exits.len());
    let mut failed = Vec::new();
    for (w, exit) in outcome.exits.iter().enumerate() {
        let area = region.worker(w);
        // Relaxed: every worker is reaped (or joined); all it stored is in the region.
        faults.robust_repairs += area.repairs.load(std::sync::atomic::Ordering::Relaxed) as u64;
        faults.lock_steals += area.robbed.load(std::sync::atomic::Ordering::Relaxed);
        match exit {
            Exit::Code(child_exit::OK) => {
                match WorkerReport::read_back(area, w).map_err(|e| Error::Worker(e.to_string()))? {
                    Some(r) => reports.push(r),
                    None => failed.push(format!("worker {w}: exited without a report")),
                }
            }
            Exit::Code(_) => failed.push(format!("worker {w}: {exit}")),
            Exit::Signal(_) => {
                let end = faults
                    .deaths
                    .iter()
                    .find(|d| d.worker == w)
                    .map_or(outcome.go_ns, |d| outcome.go_ns + (d.at_ms * 1e6) as u64);
                reports.push(WorkerReport::of_dead(area, w, outcome.go_ns, end));
            }
        }
    }
    if let Some(first) = failed.first() {
        return Err(Error::Worker(format!(
            "{} worker(s) failed, first {first}",
            failed.len()
        )));
    }
    let fatal: Vec<String> = reports
        .iter()
        .filter_map(|r| match &r.halt {
            Some(Halt::Fatal(m)) => Some(format!("worker {}: {m}", r.worker)),
            _ => None,
        })
        .collect();
    if let Some(first) = fatal.first() {
        return Err(Error::TargetFailed(format!(
            "the target failed mid-run for {} worker(s); first, {first}",
            fatal.len()
        )));
    }
    Ok(reports)
}

/// A target that fails after the workers are reaped (tidying, reading the finals) failed during
/// the run as far as the user can tell: one wording for every way it shows.
fn mid_run(e: Error) -> Error {
    match e {
        Error::TargetFailed(m) => Error::TargetFailed(format!("the target failed mid-run: {m}")),
        e => e,
    }
}

/// The workers the end record names as dead (or whose last outcome is unknown), each with
/// whether an update of its may be in flight.
fn killed(faults: &FaultReport, reports: &[WorkerReport]) -> Vec<Killed> {
    let mut killed: Vec<Killed> = faults
        .deaths
        .iter()
        .map(|d| Killed {
            worker: d.worker as u32,
            in_flight: d.in_flight.is_some(),
        })
        .collect();
    killed.extend(reports.iter().filter_map(|r| match r.halt {
        Some(Halt::Unknown(_)) => Some(Killed {
            worker: r.worker as u32,
            in_flight: true,
        }),
        _ => None,
    }));
    killed
}

/// Writes one run's header to the store, if the invocation has one. `plan.label()` is what
/// `torture verify` will call the run (the strategy, or the scenario and its variant).
fn begin_store(
    opts: &Options,
    plan: &Plan,
    run: u64,
) -> Result<Option<std::sync::Arc<RunStore>>, Error> {
    let Some(store) = &opts.store else {
        return Ok(None);
    };
    let info = run_info(opts, plan, run);
    Ok(Some(std::sync::Arc::new(RunStore::begin(store, info)?)))
}

/// One run's header. `plan.label()` is what `torture verify` will call the run (the strategy,
/// or the scenario and its variant).
fn run_info(opts: &Options, plan: &Plan, run: u64) -> RunInfo {
    RunInfo {
        run,
        strategy: plan.label(),
        workers: opts.workers as u32,
        slots: opts.slots as u32,
        ops: opts.ops,
        initial: opts.initial,
        seed: plan.seed,
        persist: String::new(),
    }
}

/// `--store target`: writes the run's end into the target, then checks this run's record,
/// read back from the target alone, exactly as `torture verify URL` would.
fn record_end_and_verify(records: &dyn Records, end: &RunEnd) -> Result<RunCheck, Error> {
    records.end_record(end)?;
    let loaded = records.load_record(Some(end.run))?;
    let run = loaded
        .runs
        .iter()
        .find(|r| r.info.run == end.run)
        .ok_or_else(|| {
            Error::Store(format!(
                "the target does not hold run {} after it was written",
                end.run
            ))
        })?;
    // A row that fails its checksum is this run's damage (`RunHistory::damaged`): the
    // checker's to judge, as a killed worker's torn record in a log.
    Ok(verify::check_run(run))
}

/// Saves the run's end (final values, fingerprint, each worker's acknowledged updates, the
/// dead), then checks the stored record of this run exactly as `torture verify` would.
fn persist_end_and_verify(
    store: &RunStore,
    finals: &[u32],
    completed: Vec<u64>,
    killed: Vec<Killed>,
) -> Result<RunCheck, Error> {
    store.end(&RunEnd {
        run: store.info.run,
        fingerprint: crate::history::event::fingerprint(finals),
        finals: finals.to_vec(),
        completed,
        killed,
    })?;
    let loaded = verify::load(store.config.spec.path())?;
    // Damage inside this run is the checker's to judge (a killed worker's torn last record);
    // anything else means the store is not what the run wrote.
    let outside = loaded.damaged.first().map(ToString::to_string).or_else(|| {
        loaded
            .orphans
            .first()
            .map(|o| format!("{} records of no run", o.records()))
    });
    if let Some(c) = outside {
        return Err(Error::Store(format!(
            "{}: {c}",
            store.config.spec.path().display()
        )));
    }
    let run = loaded
        .runs
        .iter()
        .find(|r| r.info.run == store.info.run)
        .ok_or_else(|| {
            Error::Store(format!(
                "{} does not hold run {} after it was written",
                store.config.spec.path().display(),
                store.info.run
            ))
        })?;
    Ok(verify::check_run(run))
}

/// One run's summary: the figures every run reports (timing, latency, retries, fairness),
/// around what its check decided.
#[allow(clippy::too_many_arguments)]
fn summarise(
    opts: &Options,
    plan: &Plan,
    outcome: PoolOutcome,
    interrupted: bool,
    reports: Vec<WorkerReport>,
    faults: FaultReport,
    judgement: Judgement,
    finals: &[u32],
    run_id: u64,
) -> (RunSummary, Histogram<u64>) {
    let mut histogram = latency::new_histogram();
    let (mut retries, mut waits, mut wakes, mut updates) = (0u64, 0u64, 0u64, 0u64);
    let mut end_ns = outcome.go_ns;
    let mut rates = Vec::with_capacity(reports.len());
    for r in &reports {
        histogram.add(&r.histogram).expect("same bounds");
        retries += r.retries;
        waits += r.waits;
        wakes += r.wakes;
        updates += r.completed;
        end_ns = end_ns.max(r.end_ns);
        // A dead worker's rate says when it died, not how fairly it was served.
        if !faults.deaths.iter().any(|d| d.worker == r.worker) {
            let secs = (r.end_ns.saturating_sub(outcome.go_ns)).max(1) as f64 / 1e9;
            rates.push(r.completed as f64 / secs);
        }
    }
    let window_ns = end_ns.saturating_sub(outcome.go_ns).max(1);
    let per = |n: u64| n as f64 / updates.max(1) as f64;
    let Judgement {
        count,
        wrong_slots,
        check,
    } = judgement;
    let strategy = plan.variant.mechanism();
    let verdict = match &check {
        // The invariant decides, not the slot count: a bug is expected to break it.
        Some(c) => match (plan.variant.is_bug(), c.violations == 0) {
            (false, true) => Verdict::Exact,
            (false, false) => Verdict::Failed,
            (true, false) => Verdict::RaceCaught,
            (true, true) => Verdict::RaceMissed,
        },
        None => Verdict::of(strategy, &count),
    };
    let mut check = check;
    if let Some(c) = &mut check {
        c.findings.truncate(8);
    }
    let run = RunSummary {
        run: run_id,
        strategy,
        mode: opts.mode,
        layout: opts.layout,
        workers: opts.workers,
        slots: opts.slots,
        ops_per_worker: opts.ops,
        seed: plan.seed,
        updates,
        rejected: reports.iter().map(|r| r.rejected).sum(),
        loss_fraction: count.loss_rate(updates),
        verdict,
        count,
        wrong_slots,
        spawn_ms: outcome.spawn_ns as f64 / 1e6,
        window_ms: window_ns as f64 / 1e6,
        ops_per_sec: updates as f64 / (window_ns as f64 / 1e9),
        latency_ns: Percentiles::of(&histogram),
        retries,
        waits,
        wakes,
        retries_per_update: per(retries),
        waits_per_update: per(waits),
        wakes_per_update: per(wakes),
        preemptions: outcome.preemptions,
        voluntary_switches: outcome.voluntary_switches,
        fairness: Fairness::of(rates),
        fingerprint: format!("{:016x}", crate::history::event::fingerprint(finals)),
        check,
        history: None,
        interrupted,
        faults: (!faults.is_empty()).then_some(faults),
    };
    (run, histogram)
}
