//! One invocation: Config -> (per strategy, per repeat) Region -> Pool -> Count -> Summary.

use crate::config::{Config, Mode};
use crate::error::Error;
use crate::fault;
use crate::latency;
use crate::pool::{self, PoolOutcome};
use crate::progress::Watcher;
use crate::region::Region;
use crate::report::{
    Fairness, Machine, Percentiles, RunSummary, StrategySummary, Summary, Verdict,
};
use crate::strategy::StrategyKind;
use crate::worker::Plan;
use crate::workload::SlotPicker;

/// Runs every strategy `repeat` times and summarises.
pub fn run(config: &Config) -> Result<Summary, Error> {
    config.validate()?;
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
    let all_exact = strategies.iter().all(|s| s.verdict != Verdict::Failed);
    Ok(Summary {
        tool: format!("racepool {}", env!("CARGO_PKG_VERSION")),
        machine: Machine::this(),
        config: config.clone(),
        strategies,
        all_exact,
        interrupted: pool::interrupted(),
    })
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
        strike: config.faults.strike,
    };
    let watcher = Watcher {
        label: strategy.name().into(),
        total: config.ops * config.workers as u64,
        stall_timeout: config.stall_timeout,
        faults: config.faults.clone(),
        seed,
    };
    let outcome = match config.mode {
        Mode::Processes => pool::run_processes(&region, &plan, &watcher)?,
        Mode::Threads => pool::run_threads(&region, &plan, &watcher)?,
    };
    Ok(summarise(config, &plan, &region, outcome))
}

fn summarise(
    config: &Config,
    plan: &Plan,
    region: &Region,
    outcome: PoolOutcome,
) -> (RunSummary, hdrhistogram::Histogram<u64>) {
    let mut applied = vec![0u64; region.slot_count()];
    let mut histogram = latency::new_histogram();
    let (mut retries, mut waits, mut wakes, mut updates) = (0u64, 0u64, 0u64, 0u64);
    let mut end_ns = outcome.go_ns;
    let mut rates = Vec::with_capacity(outcome.reports.len());
    for r in &outcome.reports {
        SlotPicker::new(plan.seed, r.worker, region.slot_count(), plan.pick)
            .replay(r.completed, &mut applied);
        histogram.add(&r.histogram).expect("same bounds");
        retries += r.retries;
        waits += r.waits;
        wakes += r.wakes;
        updates += r.completed;
        end_ns = end_ns.max(r.end_ns);
        let secs = (r.end_ns.saturating_sub(outcome.go_ns)).max(1) as f64 / 1e9;
        rates.push(r.completed as f64 / secs);
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
        fault::bounded_count(config.initial, &applied, &in_flight, &region.values());
    wrong_slots.truncate(16);
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
        loss_rate: count.loss_rate(updates),
        verdict: Verdict::of(plan.strategy, &count),
        count,
        wrong_slots,
        spawn_ms: outcome.spawn_ns as f64 / 1e6,
        window_ms: window_ns as f64 / 1e6,
        ops_per_sec: updates as f64 / (window_ns as f64 / 1e9),
        latency_ns: Percentiles::of(&histogram),
        retries_per_update: per(retries),
        waits_per_update: per(waits),
        wakes_per_update: per(wakes),
        preemptions: outcome.preemptions,
        voluntary_switches: outcome.voluntary_switches,
        fairness: Fairness::of(rates),
        fingerprint: format!("{:016x}", region.fingerprint()),
        interrupted: outcome.interrupted,
        faults: (!outcome.faults.is_empty()).then_some(outcome.faults),
    };
    (run, histogram)
}
