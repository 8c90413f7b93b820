//! The result types, documented field by field. JSON is their serde form.

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::check::{Count, SlotCount};
use crate::fault::FaultReport;
use crate::latency;
use crate::options::{Mode, Options};
use crate::region::Layout;
use crate::strategy::StrategyKind;

/// Everything one invocation of `torture` found.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub tool: String,
    pub machine: Machine,
    pub config: Options,
    pub strategies: Vec<StrategySummary>,
    /// True when every strategy that promises exactness was exact in every run.
    pub all_exact: bool,
    /// SIGINT stopped the run: the figures are partial.
    pub interrupted: bool,
}

impl Summary {
    /// The invocation's summary: `all_exact` and `interrupted` derived, never passed in.
    pub fn new(config: &Options, strategies: Vec<StrategySummary>) -> Summary {
        Summary {
            tool: super::revision::tool(),
            machine: Machine::this(),
            config: config.clone(),
            all_exact: strategies.iter().all(|s| s.verdict != Verdict::Failed),
            strategies,
            interrupted: crate::pool::interrupted(),
        }
    }
}

impl Summary {
    /// Workers that died with nobody asking (the OOM killer, an operator), over every run:
    /// the run's data stands (bounded), and the exit code says it happened (3).
    pub fn unplanned_deaths(&self) -> u64 {
        self.strategies
            .iter()
            .flat_map(|s| &s.runs)
            .filter_map(|r| r.faults.as_ref())
            .map(|f| f.unplanned as u64)
            .sum()
    }
}

/// Where the figures were measured.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub cpu: String,
    pub kernel: String,
}

impl Machine {
    pub fn this() -> Machine {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".into());
        Machine {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu,
            kernel,
        }
    }
}

/// A strategy's runs (one per `--repeat`) and what they add up to.
#[derive(Clone, Debug, Serialize)]
pub struct StrategySummary {
    pub strategy: StrategyKind,
    pub runs: Vec<RunSummary>,
    /// Runs in which at least one update was lost.
    pub runs_with_loss: usize,
    /// Sums over all runs.
    pub expected: u64,
    pub observed: u64,
    pub lost: u64,
    pub unexpected: u64,
    /// Updates per second in the measured window: the median over runs.
    pub ops_per_sec: f64,
    /// The same over runs: median, quartiles, min and max.
    pub ops_per_sec_over_runs: Spread,
    /// Latency percentiles of every run's updates merged, in ns.
    pub latency_ns: Option<Percentiles>,
    pub verdict: Verdict,
    /// The scenario row this strategy stands for (`--scenario`): variant, invariant, tallies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scenario: Option<crate::workload::Row>,
    /// The isolation level the row ran at (a SQL target's `--isolation`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub isolation: Option<crate::target::sql::Isolation>,
    /// Retries per completed update, over every run (SQL: serialization failures, deadlocks,
    /// cas misses; Redis: failed EXECs, lock acquisitions, fenced refusals).
    pub retries_per_update: f64,
    #[serde(skip)]
    pub histogram: Histogram<u64>,
}

/// One run of one strategy.
#[derive(Clone, Debug, Serialize)]
pub struct RunSummary {
    /// The run's id: every row, key and file it made on a target carries it (`torture clean
    /// TARGET --run ID`, `torture verify URL --run ID`).
    pub run: u64,
    pub strategy: StrategyKind,
    pub mode: Mode,
    pub layout: Layout,
    pub workers: usize,
    pub slots: usize,
    pub ops_per_worker: u64,
    pub seed: u64,
    /// Updates the workers completed (each believes it added 1).
    pub updates: u64,
    /// Updates the target refused before anything changed (not in `updates`).
    pub rejected: u64,
    pub count: Count,
    /// lost / updates, a fraction (0.25 is a quarter of the updates).
    pub loss_fraction: f64,
    /// The first slots whose final value is wrong (at most 16).
    pub wrong_slots: Vec<SlotCount>,
    /// From the first fork until every worker stood at the start barrier, in ms.
    pub spawn_ms: f64,
    /// From the barrier's release until the last worker finished, in ms.
    pub window_ms: f64,
    /// updates / window, per second.
    pub ops_per_sec: f64,
    pub latency_ns: Option<Percentiles>,
    /// Failed attempts (CAS failures, failed lock attempts), futex waits and wakes, in total.
    pub retries: u64,
    pub waits: u64,
    pub wakes: u64,
    pub retries_per_update: f64,
    pub waits_per_update: f64,
    pub wakes_per_update: f64,
    /// Involuntary context switches of the workers: how often the scheduler preempted them.
    pub preemptions: u64,
    pub voluntary_switches: u64,
    pub fairness: Fairness,
    /// FNV-1a of the final slot values.
    pub fingerprint: String,
    /// With a store: what `torture verify` proved from the record alone (persisted, verified,
    /// duplicates, gaps, witnesses, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<crate::verify::RunCheck>,
    pub verdict: Verdict,
    /// The scenario's invariant check of this run (`--scenario`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check: Option<crate::workload::Check>,
    /// SIGINT stopped this run: its workers stopped early and reported what they had done.
    pub interrupted: bool,
    /// Faults injected and what recovery did (absent when none were asked and nobody died).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub faults: Option<FaultReport>,
}

/// Latency percentiles in nanoseconds.
#[derive(Clone, Copy, Debug, Serialize, PartialEq)]
pub struct Percentiles {
    pub count: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Option<Percentiles> {
        if h.is_empty() {
            return None;
        }
        Some(Percentiles {
            count: h.len(),
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        })
    }
}

/// How evenly the workers progressed: each worker's updates per second from the barrier's
/// release to its own finish (workers that died are left out: their rate says when they died).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Fairness {
    /// The slowest worker's rate, the median worker's and the fastest's.
    pub min_ops_per_sec: f64,
    pub median_ops_per_sec: f64,
    pub max_ops_per_sec: f64,
    /// Slowest / median: 1 is perfectly even, 0.1 a worker ten times behind the median.
    pub min_over_median: f64,
    /// Workers slower than a tenth of the median.
    pub starved: usize,
}

impl Fairness {
    /// The median run's, by `min_over_median`: what several runs report as one.
    pub fn of_median_run(runs: &[RunSummary]) -> Fairness {
        let mut all: Vec<Fairness> = runs.iter().map(|r| r.fairness).collect();
        all.sort_by(|a, b| a.min_over_median.total_cmp(&b.min_over_median));
        all.get(all.len().saturating_sub(1) / 2)
            .copied()
            .unwrap_or_default()
    }

    pub fn of(mut rates: Vec<f64>) -> Fairness {
        if rates.is_empty() {
            return Fairness::default();
        }
        rates.sort_by(f64::total_cmp);
        let median = median_sorted(&rates);
        Fairness {
            min_ops_per_sec: rates[0],
            median_ops_per_sec: median,
            max_ops_per_sec: rates[rates.len() - 1],
            min_over_median: if median > 0.0 { rates[0] / median } else { 0.0 },
            starved: rates.iter().filter(|&&r| r < median / 10.0).count(),
        }
    }
}

/// What a run or a strategy's runs amount to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Every update is in the final values.
    Exact,
    /// racy lost updates: the harness caught the race, as it must.
    RaceCaught,
    /// racy lost nothing this time: the race was not caught (widen --race-window).
    RaceMissed,
    /// A strategy that promises exactness is off: the run fails.
    Failed,
}

impl Verdict {
    pub fn of(strategy: StrategyKind, count: &Count) -> Verdict {
        match (strategy.is_exact(), count.exact()) {
            (true, true) => Verdict::Exact,
            (true, false) => Verdict::Failed,
            (false, false) if count.unexpected == 0 => Verdict::RaceCaught,
            (false, false) => Verdict::Failed,
            (false, true) => Verdict::RaceMissed,
        }
    }
}

/// Median and spread of one figure over a point's or a strategy's runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    /// First and third quartile (linear interpolation between runs).
    pub q1: f64,
    pub q3: f64,
}

impl Spread {
    pub fn of(values: impl IntoIterator<Item = f64>) -> Spread {
        let mut v: Vec<f64> = values.into_iter().collect();
        if v.is_empty() {
            return Spread::default();
        }
        v.sort_by(f64::total_cmp);
        let at = |q: f64| {
            let pos = q * (v.len() - 1) as f64;
            let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
            v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
        };
        Spread {
            median: at(0.5),
            min: v[0],
            max: v[v.len() - 1],
            q1: at(0.25),
            q3: at(0.75),
        }
    }
}

pub fn median_sorted(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

impl StrategySummary {
    /// The row's name: the strategy, or the scenario variant it stands for.
    pub fn label(&self) -> &'static str {
        self.scenario
            .as_ref()
            .map_or(self.strategy.name(), |row| row.variant)
    }

    pub fn of(
        strategy: StrategyKind,
        runs: Vec<RunSummary>,
        histograms: Vec<Histogram<u64>>,
    ) -> StrategySummary {
        let mut histogram = latency::new_histogram();
        for h in &histograms {
            histogram.add(h).expect("same bounds");
        }
        let rates = Spread::of(runs.iter().map(|r| r.ops_per_sec));
        let sum = |f: fn(&RunSummary) -> u64| runs.iter().map(f).sum::<u64>();
        let failed = runs.iter().any(|r| r.verdict == Verdict::Failed);
        let runs_with_loss = runs.iter().filter(|r| r.count.lost > 0).count();
        let verdict = if failed {
            Verdict::Failed
        } else if !strategy.is_exact() {
            if runs_with_loss > 0 {
                Verdict::RaceCaught
            } else {
                Verdict::RaceMissed
            }
        } else {
            Verdict::Exact
        };
        StrategySummary {
            strategy,
            runs_with_loss,
            expected: sum(|r| r.count.expected),
            observed: sum(|r| r.count.observed),
            lost: sum(|r| r.count.lost),
            unexpected: sum(|r| r.count.unexpected),
            ops_per_sec: rates.median,
            ops_per_sec_over_runs: rates,
            latency_ns: Percentiles::of(&histogram),
            verdict,
            scenario: None,
            isolation: None,
            retries_per_update: sum(|r| r.retries) as f64 / sum(|r| r.updates).max(1) as f64,
            histogram,
            runs,
        }
    }
}
