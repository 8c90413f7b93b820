//! The loop one worker runs: pick a slot, apply the strategy, time it, count it.

use std::sync::atomic::Ordering::{Relaxed, Release};

use hdrhistogram::Histogram;

use crate::clock::now_ns;
use crate::fault::{Faults, StrikeAt};
use crate::futex::{Private, Shared};
use crate::latency::{self, LatencyMode};
use crate::probe::Probe;
use crate::region::{status, Region, WorkerArea};
use crate::store::{Recorder, RunStore};
use crate::strategy::{Atomic, Cas, FutexLock, Pthread, Racy, SpinLock, Strategy, StrategyKind};
use crate::workload::{Pick, SlotPicker};

/// What every worker of a run does; the same for all of them.
#[derive(Clone, Debug)]
pub struct Plan {
    pub strategy: StrategyKind,
    /// Futex scope: shared across processes, or private within one.
    pub processes: bool,
    pub ops: u64,
    pub seed: u64,
    pub pick: Pick,
    pub latency: LatencyMode,
    pub race_window: u32,
    pub hold_after_read: bool,
    /// Set when the run replays an incident (`--scenario`): the worker runs its step instead.
    pub scenario: Option<crate::scenario::WorkerPlan>,
    /// Where winning updates are persisted; each worker opens its own writer after the fork.
    pub store: Option<std::sync::Arc<RunStore>>,
    /// `--crash-at` / `--stop-at`: struck on worker `Faults::struck_worker(seed, workers)`.
    pub strike: Option<StrikeAt>,
}

/// One worker's result, as it travels back to the parent.
#[derive(Clone, Debug)]
pub struct WorkerReport {
    pub worker: usize,
    /// Updates completed (acknowledged).
    pub completed: u64,
    pub retries: u64,
    pub waits: u64,
    pub wakes: u64,
    pub start_ns: u64,
    pub end_ns: u64,
    pub histogram: Histogram<u64>,
}

/// Runs worker `w`'s whole plan against the region.
pub fn run(region: &Region, w: usize, plan: &Plan) -> WorkerReport {
    if let Some(scenario) = &plan.scenario {
        return crate::scenario::run_worker(region, w, plan, scenario);
    }
    match plan.strategy {
        StrategyKind::Racy => drive(
            &Racy {
                window: plan.race_window,
            },
            region,
            w,
            plan,
        ),
        StrategyKind::Atomic => drive(&Atomic, region, w, plan),
        StrategyKind::Cas => drive(&Cas, region, w, plan),
        StrategyKind::FutexLock if plan.processes => {
            drive(&FutexLock::<Shared>::new(), region, w, plan)
        }
        StrategyKind::FutexLock => drive(&FutexLock::<Private>::new(), region, w, plan),
        StrategyKind::SpinLock => drive(&SpinLock, region, w, plan),
        StrategyKind::Pthread => drive(&Pthread, region, w, plan),
        other => unreachable!("validated: {} is not a memory strategy", other.name()),
    }
}

fn drive<S: Strategy>(strategy: &S, region: &Region, w: usize, plan: &Plan) -> WorkerReport {
    let area = region.worker(w);
    let probe = match (plan.hold_after_read, plan.strike) {
        // A strike in the script: lock holders wait for real waiters (see `probe`).
        (true, Some(_)) => Probe::hold_after_read(region.header(), region.worker_count() as u32)
            .queued_by_areas(region),
        (true, None) => Probe::hold_after_read(region.header(), region.worker_count() as u32),
        (false, _) => Probe::off(region.header()),
    };
    let strike = plan
        .strike
        .filter(|_| w == Faults::struck_worker(plan.seed, region.worker_count()));
    // Relaxed: written by the parent before the first fork (or thread spawn).
    let generation = region.header().generation.load(Relaxed);
    let probe = probe.for_worker(area, crate::step::owner_id(w, generation), strike);
    // Opened here, in the worker (after the fork): never a file or connection of the parent's.
    let recorder = plan.store.as_deref().map(|s| Recorder::open(s, w));
    let probe = match &recorder {
        Some(r) => probe.with_recorder(r),
        None => probe,
    };
    let mut picker = SlotPicker::new(plan.seed, w, region.slot_count(), plan.pick);
    let mut histogram = latency::new_histogram();
    let (mut retries, mut waits, mut wakes) = (0u64, 0u64, 0u64);
    let start_ns = now_ns();
    let mut done = 0;
    for i in 0..plan.ops {
        // Relaxed (inside `stop_requested`): a flag only; seeing it one update late costs
        // one more update, and every figure reaches the parent through `publish`'s Release.
        // Stopped by time or SIGINT, or the store failed: the run proves nothing more (the
        // parent reports it).
        if probe.stop_requested() || recorder.as_ref().is_some_and(|r| r.failed()) {
            break;
        }
        let slot = region.slot(picker.next_slot());
        probe.begin(slot.index, i + 1);
        let timed = plan.latency.times(i);
        let t0 = if timed || recorder.is_some() {
            now_ns()
        } else {
            0
        };
        if let Some(r) = &recorder {
            r.begin(t0);
        }
        let applied = strategy.apply(slot, &probe);
        if timed {
            // With a store the update ends when it won (inside the lock for the lock
            // strategies): the time its event records, one clock read fewer.
            let t1 = recorder
                .as_ref()
                .and_then(|r| r.completed_ns())
                .unwrap_or_else(now_ns);
            histogram.saturating_record(t1.saturating_sub(t0).max(1));
        }
        retries += applied.retries as u64;
        waits += applied.waits as u64;
        wakes += applied.wakes as u64;
        // Relaxed: read for progress only; final figures are published by `publish`.
        area.completed.store(i + 1, Relaxed);
        done = i + 1;
    }
    if let Some(r) = &recorder {
        r.finish();
    }
    WorkerReport {
        worker: w,
        completed: done,
        retries,
        waits,
        wakes,
        start_ns,
        end_ns: now_ns(),
        histogram,
    }
}

impl WorkerReport {
    /// Writes the report into the worker's area and marks it DONE. False if the histogram did
    /// not fit (the area is then marked FAILED).
    pub fn publish(&self, area: &WorkerArea) -> bool {
        area.completed.store(self.completed, Relaxed);
        area.retries.store(self.retries, Relaxed);
        area.waits.store(self.waits, Relaxed);
        area.wakes.store(self.wakes, Relaxed);
        area.start_ns.store(self.start_ns, Relaxed);
        area.end_ns.store(self.end_ns, Relaxed);
        let fits = area.publish_histogram(&latency::encode(&self.histogram));
        // Release: pairs with the parent's Acquire in `read_back`; publishes every field above.
        area.status
            .store(if fits { status::DONE } else { status::FAILED }, Release);
        fits
    }

    /// Reads back what worker `w` published; an error if it did not finish.
    pub fn read_back(area: &WorkerArea, w: usize) -> Result<WorkerReport, String> {
        // Acquire: pairs with the Release in `publish`.
        match area.status.load(std::sync::atomic::Ordering::Acquire) {
            status::DONE => {}
            status::FAILED => return Err(format!("worker {w} could not publish its histogram")),
            s => return Err(format!("worker {w} exited without a report (state {s})")),
        }
        let histogram = latency::decode(area.histogram())
            .map_err(|e| format!("worker {w}'s histogram is unreadable: {e}"))?;
        Ok(WorkerReport {
            worker: w,
            completed: area.completed.load(Relaxed),
            retries: area.retries.load(Relaxed),
            waits: area.waits.load(Relaxed),
            wakes: area.wakes.load(Relaxed),
            start_ns: area.start_ns.load(Relaxed),
            end_ns: area.end_ns.load(Relaxed),
            histogram,
        })
    }
}
