//! One invocation: Config -> (per strategy, per repeat) Region -> Pool -> Count -> Summary.

use crate::check::{Count, SlotCount};
use crate::config::{Config, Mode};
use crate::error::Error;
use crate::history::{frame, Killed, RunEnd, RunInfo};
use crate::latency;
use crate::pool::{self, PoolOutcome};
use crate::progress::Watcher;
use crate::region::Region;
use crate::report::{Fairness, Percentiles, RunSummary, StrategySummary, Summary, Verdict};
use crate::store::RunStore;
use crate::strategy::StrategyKind;
use crate::verify::{self, RunCheck};
use crate::worker::Plan;
use crate::workload::SlotPicker;

/// Runs every strategy `repeat` times and summarises.
pub fn run(config: &Config) -> Result<Summary, Error> {
    config.validate()?;
    if let Some(store) = &config.store {
        store.prepare()?;
    }
    let summary = match &config.scenario {
        Some(scenario) => crate::scenario::run(config, scenario)?,
        None => run_strategies(config)?,
    };
    if let (Some(store), Some(path)) = (&config.store, &config.history) {
        export_history(store.spec.path(), path)?;
    }
    Ok(summary)
}

/// The plain counter: every strategy, `repeat` times.
fn run_strategies(config: &Config) -> Result<Summary, Error> {
    let mut strategies = Vec::new();
    for &strategy in &config.strategies {
        let mut runs = Vec::new();
        let mut histograms = Vec::new();
        for r in 0..config.repeat {
            let (run, histogram) = run_once(config, strategy, config.seed.wrapping_add(r as u64))?;
            runs.push(run);
            histograms.push(histogram);
            if pool::interrupted() {
                break;
            }
        }
        strategies.push(StrategySummary::of(strategy, runs, histograms));
        if pool::interrupted() {
            break;
        }
    }
    Ok(Summary::new(config, strategies))
}

/// One strategy, one fresh region, one pool of workers.
pub fn run_once(
    config: &Config,
    strategy: StrategyKind,
    seed: u64,
) -> Result<(RunSummary, hdrhistogram::Histogram<u64>), Error> {
    let region = Region::create(config.slots, config.workers, config.layout, config.initial)?;
    let plan = Plan {
        strategy,
        processes: config.mode == Mode::Processes,
        ops: config.ops,
        seed,
        pick: config.pick,
        latency: config.latency,
        race_window: config.race_window,
        hold_after_read: config.hold_after_read,
        scenario: None,
        store: begin_store(config, strategy.name().into(), seed)?,
        strike: config.faults.strike,
    };
    let watcher = watcher(config, strategy.name().into(), seed, None);
    let outcome = run_pool(config.mode, &region, &plan, &watcher)?;
    let history = match &plan.store {
        Some(store) => {
            let mut completed = vec![0u64; region.worker_count()];
            for r in &outcome.reports {
                completed[r.worker] = r.completed;
            }
            let killed = outcome
                .faults
                .deaths
                .iter()
                .map(|d| Killed {
                    worker: d.worker as u32,
                    in_flight: d.in_flight.is_some(),
                })
                .collect();
            Some(persist_end_and_verify(store, &region, completed, killed)?)
        }
        None => None,
    };
    let (mut run, histogram) = summarise(config, &plan, &region, outcome);
    if let Some(check) = history {
        if !check.verified && strategy.is_exact() {
            run.verdict = Verdict::Failed;
        }
        run.history = Some(check);
    }
    Ok((run, histogram))
}

/// Saves the run's end (final values, fingerprint, each worker's acknowledged updates), then
/// checks the stored record of this run exactly as `torture verify` would.
pub(crate) fn persist_end_and_verify(
    store: &RunStore,
    region: &Region,
    completed: Vec<u64>,
    killed: Vec<Killed>,
) -> Result<RunCheck, Error> {
    store.end(&RunEnd {
        run: store.info.run,
        fingerprint: region.fingerprint(),
        finals: region.values(),
        completed,
        killed,
    })?;
    let loaded = verify::load(store.config.spec.path())?;
    // Damage inside this run is the checker's to judge (a killed worker's torn last record);
    // anything else means the store is not what the run wrote.
    let outside = loaded.damaged.first().map(|d| frame::Corrupt {
        offset: d.offset,
        reason: d.reason.clone(),
    });
    if let Some(c) = loaded.corrupt.as_ref().or(outside.as_ref()) {
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

/// Writes the whole store's history as JSON Lines.
/// Writes one run's header to the store, if the invocation has one. `name` is what
/// `torture verify` will call the run (the strategy, or the scenario and its variant).
pub(crate) fn begin_store(
    config: &Config,
    name: String,
    seed: u64,
) -> Result<Option<std::sync::Arc<RunStore>>, Error> {
    let Some(store) = &config.store else {
        return Ok(None);
    };
    let info = RunInfo {
        run: RunStore::new_run_id(),
        strategy: name,
        workers: config.workers as u32,
        slots: config.slots as u32,
        ops: config.ops,
        initial: config.initial,
        seed,
        persist: String::new(),
    };
    Ok(Some(std::sync::Arc::new(RunStore::begin(store, info)?)))
}

/// The watcher of one run of `config`, labelled `label`.
pub(crate) fn watcher(
    config: &Config,
    label: String,
    seed: u64,
    explain_stall: Option<fn(&Region) -> Option<String>>,
) -> Watcher {
    Watcher {
        label,
        total: config.ops * config.workers as u64,
        stall_timeout: config.stall_timeout,
        explain_stall,
        time_limit: config.time_limit,
        show: config.progress,
        faults: config.faults.clone(),
        seed,
    }
}

/// Runs the workers in `mode`. A store that failed explains any worker trouble better than the
/// trouble itself, so its failure is the error when there is one.
pub(crate) fn run_pool(
    mode: Mode,
    region: &Region,
    plan: &Plan,
    watcher: &Watcher,
) -> Result<PoolOutcome, Error> {
    let outcome = match mode {
        Mode::Processes => pool::run_processes(region, plan, watcher),
        Mode::Threads => pool::run_threads(region, plan, watcher),
    };
    if let Some(failure) = plan.store.as_ref().and_then(|s| s.failure()) {
        return Err(Error::Store(failure));
    }
    outcome
}

pub fn export_history(store: &std::path::Path, out: &std::path::Path) -> Result<u64, Error> {
    let loaded = verify::load(store)?;
    let file = std::fs::File::create(out)
        .map_err(|e| Error::Usage(format!("creating {}: {e}", out.display())))?;
    crate::history::jsonl::write(&loaded, file)
        .map_err(|e| Error::System(format!("writing {}: {e}", out.display())))
}

fn summarise(
    config: &Config,
    plan: &Plan,
    region: &Region,
    outcome: PoolOutcome,
) -> (RunSummary, hdrhistogram::Histogram<u64>) {
    let mut applied = vec![0u64; region.slot_count()];
    for r in &outcome.reports {
        SlotPicker::new(plan.seed, r.worker, region.slot_count(), plan.pick)
            .replay(r.completed, &mut applied);
    }
    // A dead worker's update in flight may or may not be in the final values.
    let mut in_flight = vec![0u64; region.slot_count()];
    for f in outcome
        .faults
        .deaths
        .iter()
        .filter_map(|d| d.in_flight.as_ref())
    {
        in_flight[f.slot] += 1;
    }
    let (count, mut wrong_slots) =
        crate::check::bounded_count(config.initial, &applied, &in_flight, &region.values());
    wrong_slots.truncate(16);
    let judged = Judged {
        verdict: Verdict::of(plan.strategy, &count),
        count,
        wrong_slots,
        check: None,
    };
    run_summary(config, plan, region, outcome, judged)
}

/// What a run's own check decided: the plain counter's exact count, or a scenario's invariant.
pub(crate) struct Judged {
    pub count: Count,
    pub verdict: Verdict,
    pub wrong_slots: Vec<SlotCount>,
    pub check: Option<crate::scenario::Check>,
}

/// One run's summary: the figures every run reports (timing, latency, retries, fairness),
/// around what its check decided. The counter and every scenario share it.
pub(crate) fn run_summary(
    config: &Config,
    plan: &Plan,
    region: &Region,
    outcome: PoolOutcome,
    judged: Judged,
) -> (RunSummary, hdrhistogram::Histogram<u64>) {
    let mut histogram = latency::new_histogram();
    let (mut retries, mut waits, mut wakes, mut updates) = (0u64, 0u64, 0u64, 0u64);
    let mut end_ns = outcome.go_ns;
    let mut rates = Vec::with_capacity(outcome.reports.len());
    for r in &outcome.reports {
        histogram.add(&r.histogram).expect("same bounds");
        retries += r.retries;
        waits += r.waits;
        wakes += r.wakes;
        updates += r.completed;
        end_ns = end_ns.max(r.end_ns);
        let secs = (r.end_ns.saturating_sub(outcome.go_ns)).max(1) as f64 / 1e9;
        rates.push(r.completed as f64 / secs);
    }
    let window_ns = end_ns.saturating_sub(outcome.go_ns).max(1);
    let per = |n: u64| n as f64 / updates.max(1) as f64;
    let run = RunSummary {
        strategy: plan.strategy,
        mode: config.mode,
        layout: config.layout,
        workers: config.workers,
        slots: config.slots,
        ops_per_worker: config.ops,
        seed: plan.seed,
        updates,
        loss_fraction: judged.count.loss_rate(updates),
        verdict: judged.verdict,
        count: judged.count,
        wrong_slots: judged.wrong_slots,
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
        fingerprint: format!("{:016x}", region.fingerprint()),
        check: judged.check,
        history: None,
        interrupted: outcome.interrupted,
        faults: (!outcome.faults.is_empty()).then_some(outcome.faults),
    };
    (run, histogram)
}
