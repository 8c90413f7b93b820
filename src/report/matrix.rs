//! The bench's one summary: every measured point of the matrix and the ratios derived from
//! them. JSON, CSV, Markdown and the SVG plots all render this value, so they cannot disagree.

use hdrhistogram::Histogram;
use serde::Serialize;

use super::{Fairness, Percentiles, RunSummary, Spread, Verdict};
use crate::latency::LatencyMode;
use crate::options::Mode;
use crate::region::Layout;
use crate::strategy::StrategyKind;
use crate::target::sql::Isolation;
use crate::target::TargetKind;

/// Everything one `torture bench` measured, in the order it measured it.
#[derive(Clone, Debug, Serialize)]
pub struct BenchSummary {
    pub tool: String,
    pub machine: MachineInfo,
    pub settings: BenchSettings,
    pub points: Vec<BenchPoint>,
    /// True when every point of every strategy that promises exactness was exact.
    pub all_exact: bool,
    /// Why a peer gave no figures (not installed, failed): one line each, for the report.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub peer_notes: Vec<String>,
}

/// Where and how the figures were taken (also written alone as `machine.json`).
#[derive(Clone, Debug, Serialize)]
pub struct MachineInfo {
    pub cpu: String,
    pub cores: usize,
    pub kernel: String,
    /// `rustc --version`, when a rustc is on the PATH.
    pub rustc: Option<String>,
    /// The commit the binary was built from (stamped at build time); None: unknown.
    pub git_revision: Option<String>,
    /// Whether its sources differed from that commit; None: unknown.
    pub git_dirty: Option<bool>,
    /// When the bench started, UTC (`2026-11-23T10:22:31Z`).
    pub started: String,
    /// The exact command line, one argument per element.
    pub command: Vec<String>,
}

/// The matrix and the rules every point was measured by.
#[derive(Clone, Debug, Serialize)]
pub struct BenchSettings {
    pub quick: bool,
    /// Each run is told to stop after max(budget_ms, workers x budget_per_worker_ms) (it ends
    /// after its updates in flight).
    pub budget_ms: f64,
    /// Every worker must be scheduled once to see the stop flag: the budget grows with workers.
    pub budget_per_worker_ms: f64,
    /// A run still going at `cap_factor` x budget is stopped and its point marked collapsed.
    pub cap_factor: u32,
    /// Measured runs per point.
    pub repeat: u32,
    /// Whether each point first ran once, unmeasured, for a quarter of the budget.
    pub warmup: bool,
    pub strategies: Vec<StrategyKind>,
    pub workers: Vec<usize>,
    pub slots: Vec<usize>,
    pub modes: Vec<Mode>,
    pub layouts: Vec<Layout>,
    pub seed: u64,
    /// The targets benched, by kind (`memory`, `postgres`, …; URLs are not recorded).
    pub targets: Vec<TargetKind>,
    /// A SQL target's isolation levels, each running every strategy.
    pub isolation: Vec<Isolation>,
    /// Updates per worker in each run of a target's point (a target's points run by count,
    /// not by time; None when only memory was benched).
    pub ops_per_worker: Option<u64>,
    /// `--budget-ms` on targets: a run whose count is not done by then is told to stop.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_budget_ms: Option<f64>,
}

/// What identifies one point of the matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct PointKey {
    pub strategy: StrategyKind,
    pub mode: Mode,
    pub layout: Layout,
    pub slots: usize,
    pub workers: usize,
    #[serde(serialize_with = "display")]
    pub latency: LatencyMode,
    /// Where the slots lived: `memory`, or the target's kind.
    pub engine: TargetKind,
    /// A SQL target's isolation level (None elsewhere).
    pub isolation: Option<Isolation>,
}

fn display<S: serde::Serializer>(v: &LatencyMode, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

impl PointKey {
    /// The same point with other coordinates; used to find a point's references.
    pub fn with(self, f: impl FnOnce(&mut PointKey)) -> PointKey {
        let mut k = self;
        f(&mut k);
        k
    }

    pub fn label(&self) -> String {
        if self.engine != TargetKind::Memory {
            let level = self
                .isolation
                .map_or(String::new(), |l| format!(" {}", l.name()));
            return format!(
                "{} {}{level} w={}",
                self.strategy.name(),
                self.engine.name(),
                self.workers
            );
        }
        format!(
            "{} {} w={} slots={} {} latency={}",
            self.strategy.name(),
            mode_name(self.mode),
            self.workers,
            self.slots,
            layout_name(self.layout),
            self.latency
        )
    }
}

/// Whether a point ran to its budget or had to be stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PointStatus {
    /// Every run ended within `cap_factor` x budget.
    Measured,
    /// A run did not: killed at the cap (processes) or far past it (threads). The runs
    /// measured before it are kept; the remaining repeats were skipped.
    Collapsed,
}

/// One latency quantile of a point's merged histogram.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Quantile {
    pub q: f64,
    pub ns: u64,
}

/// The quantiles kept for the percentile spectrum plot.
pub const SPECTRUM: [f64; 9] = [0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9999, 0.99999];

/// One configuration, measured `runs` times.
#[derive(Clone, Debug, Serialize)]
pub struct BenchPoint {
    #[serde(flatten)]
    pub key: PointKey,
    pub status: PointStatus,
    /// Measured runs (fewer than `repeat` when the point collapsed).
    pub runs: usize,
    pub verdict: Verdict,
    /// Updates the workers completed, over all runs.
    pub updates: u64,
    pub lost: u64,
    pub unexpected: u64,
    /// lost / updates over all runs, a fraction (racy's figure; 0 for an exact strategy).
    pub loss_fraction: f64,
    /// Each run's own loss fraction, over runs.
    pub loss_fraction_over_runs: Spread,
    /// Updates per second in the measured window (barrier release to the last worker's end):
    /// the median over runs.
    pub ops_per_sec: f64,
    /// The same over runs: median, quartiles, min and max.
    pub ops_per_sec_over_runs: Spread,
    /// Every run's updates merged; None with `--latency off`.
    pub latency_ns: Option<Percentiles>,
    /// Each run's own p99 and p99.9, over runs (the merged figures lie between min and max).
    pub p99_ns_over_runs: Option<Spread>,
    pub p999_ns_over_runs: Option<Spread>,
    pub spectrum: Vec<Quantile>,
    pub retries_per_update: f64,
    pub waits_per_update: f64,
    pub wakes_per_update: f64,
    /// The median run's (by `min_over_median`) spread of per-worker rates.
    pub fairness: Fairness,
    /// Median involuntary context switches per run.
    pub preemptions: f64,
    /// Median ms from the first fork (or spawn) until every worker stood at the barrier.
    pub spawn_ms: f64,
    /// Median ms of the measured window.
    pub window_ms: f64,
    /// Ideal scaling: the 1-worker median of the same configuration × min(workers, cores).
    pub ideal_ops_per_sec: Option<f64>,
    /// Median throughput over `atomic`'s at the same configuration.
    pub vs_atomic: Option<f64>,
    /// Median throughput over `pthread`'s at the same configuration.
    pub vs_pthread: Option<f64>,
    /// Process mode's median over thread mode's (for futex-lock: shared over private futex).
    pub process_vs_thread: Option<f64>,
    /// For a `latency all` point: the `latency off` median over this one (what timing costs).
    pub untimed_vs_timed: Option<f64>,
    /// A target's point: the ids of its runs (each removed from the target once measured).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub run_ids: Vec<u64>,
    /// A target's point: what Hermitage's findings expect of it, `loses` or `exact`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<Expected>,
    /// The peer run beside this point (pgbench, redis-benchmark), when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<PeerPoint>,
}

/// What a target's point is expected to do, from Hermitage's findings (SQL) and the strategy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Expected {
    Loses,
    Exact,
}

impl Expected {
    /// `racy` loses under PostgreSQL read committed, MariaDB read committed and repeatable read,
    /// and on Redis and files; PostgreSQL repeatable read and serializable, and MariaDB
    /// serializable, turn the race into retried serialization failures or deadlocks (exact).
    /// Every other strategy is exact everywhere, and so is one worker alone (nobody to race).
    pub fn of(key: &PointKey) -> Expected {
        let (engine, isolation, strategy) = (key.engine, key.isolation, key.strategy);
        if strategy.is_exact() || key.workers < 2 {
            return Expected::Exact;
        }
        match (engine, isolation) {
            (TargetKind::Postgres, Some(Isolation::RepeatableRead | Isolation::Serializable))
            | (TargetKind::Mysql, Some(Isolation::Serializable)) => Expected::Exact,
            _ => Expected::Loses,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Expected::Loses => "loses",
            Expected::Exact => "exact",
        }
    }
}

/// A peer tool measured beside a point, alternating run for run with racepool's, with the same
/// statements (or command) and the same number of clients.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PeerPoint {
    /// `pgbench` or `redis-benchmark`.
    pub tool: String,
    pub runs: usize,
    /// Its transactions (or requests) per second, over runs.
    pub tps: Spread,
    /// Its p99 per transaction, median over runs, µs (pgbench: from its `-l` logs).
    pub p99_us: f64,
    /// racepool's median updates/s over the peer's median tps.
    pub ratio: f64,
}

impl BenchPoint {
    /// Summarises a point's runs and their histograms; ratios are filled by `derive`.
    pub fn of(
        key: PointKey,
        runs: &[RunSummary],
        histogram: &Histogram<u64>,
        collapsed: bool,
    ) -> BenchPoint {
        let updates: u64 = runs.iter().map(|r| r.updates).sum();
        let lost: u64 = runs.iter().map(|r| r.count.lost).sum();
        let unexpected: u64 = runs.iter().map(|r| r.count.unexpected).sum();
        let verdict = if runs.iter().any(|r| r.verdict == Verdict::Failed) {
            Verdict::Failed
        } else if key.strategy.is_exact() {
            Verdict::Exact
        } else if lost > 0 {
            Verdict::RaceCaught
        } else {
            Verdict::RaceMissed
        };
        let total = |f: fn(&RunSummary) -> f64| {
            runs.iter().map(|r| f(r) * r.updates as f64).sum::<f64>() / updates.max(1) as f64
        };
        let median = |f: fn(&RunSummary) -> f64| Spread::of(runs.iter().map(f)).median;
        let over_runs = |f: fn(&Percentiles) -> u64| {
            let v: Vec<f64> = runs
                .iter()
                .filter_map(|r| r.latency_ns.as_ref().map(|l| f(l) as f64))
                .collect();
            (!v.is_empty()).then(|| Spread::of(v))
        };
        let ops_per_sec = Spread::of(runs.iter().map(|r| r.ops_per_sec));
        BenchPoint {
            key,
            status: if collapsed {
                PointStatus::Collapsed
            } else {
                PointStatus::Measured
            },
            runs: runs.len(),
            verdict,
            updates,
            lost,
            unexpected,
            loss_fraction: lost as f64 / updates.max(1) as f64,
            loss_fraction_over_runs: Spread::of(runs.iter().map(|r| r.loss_fraction)),
            ops_per_sec: ops_per_sec.median,
            ops_per_sec_over_runs: ops_per_sec,
            latency_ns: Percentiles::of(histogram),
            p99_ns_over_runs: over_runs(|l| l.p99),
            p999_ns_over_runs: over_runs(|l| l.p999),
            spectrum: if histogram.is_empty() {
                Vec::new()
            } else {
                SPECTRUM
                    .iter()
                    .map(|&q| Quantile {
                        q,
                        ns: histogram.value_at_quantile(q),
                    })
                    .collect()
            },
            retries_per_update: total(|r| r.retries_per_update),
            waits_per_update: total(|r| r.waits_per_update),
            wakes_per_update: total(|r| r.wakes_per_update),
            fairness: Fairness::of_median_run(runs),
            preemptions: median(|r| r.preemptions as f64),
            spawn_ms: median(|r| r.spawn_ms),
            window_ms: median(|r| r.window_ms),
            ideal_ops_per_sec: None,
            vs_atomic: None,
            vs_pthread: None,
            process_vs_thread: None,
            untimed_vs_timed: None,
            run_ids: if key.engine == TargetKind::Memory {
                Vec::new()
            } else {
                runs.iter().map(|r| r.run).collect()
            },
            expected: (key.engine != TargetKind::Memory).then(|| Expected::of(&key)),
            peer: None,
        }
    }
}

impl BenchSummary {
    /// Fills every point's references from the others (points not measured yet give None).
    pub fn derive(&mut self) {
        let cores = self.machine.cores.max(1);
        let medians: Vec<(PointKey, f64, bool)> = self
            .points
            .iter()
            .map(|p| (p.key, p.ops_per_sec, p.runs > 0))
            .collect();
        let find = |k: PointKey| {
            medians
                .iter()
                .find(|(key, _, ok)| *ok && *key == k)
                .map(|&(_, m, _)| m)
                .filter(|&m| m > 0.0)
        };
        for p in &mut self.points {
            let k = p.key;
            let me = p.ops_per_sec;
            let ratio = |other: Option<f64>| other.map(|o| me / o);
            p.ideal_ops_per_sec =
                find(k.with(|k| k.workers = 1)).map(|one| one * k.workers.min(cores) as f64);
            p.vs_atomic = ratio(find(k.with(|k| k.strategy = StrategyKind::Atomic)));
            p.vs_pthread = ratio(find(k.with(|k| k.strategy = StrategyKind::Pthread)));
            p.process_vs_thread = match k.mode {
                Mode::Processes => ratio(find(k.with(|k| k.mode = Mode::Threads))),
                Mode::Threads => None,
            };
            p.untimed_vs_timed = match k.latency {
                LatencyMode::All => find(k.with(|k| k.latency = LatencyMode::Off)).map(|o| o / me),
                _ => None,
            }
            .filter(|r| r.is_finite());
        }
        self.all_exact = self.points.iter().all(|p| p.verdict != Verdict::Failed);
    }

    /// Whether any point ran on a target other than memory.
    pub fn has_targets(&self) -> bool {
        self.points
            .iter()
            .any(|p| p.key.engine != TargetKind::Memory)
    }

    /// The same summary with the memory target's points only: what the memory report and
    /// plots read (a target's points have their own table and plots).
    pub fn memory_only(&self) -> BenchSummary {
        let mut s = self.clone();
        s.points.retain(|p| p.key.engine == TargetKind::Memory);
        s
    }

    pub fn point(&self, key: PointKey) -> Option<&BenchPoint> {
        self.points.iter().find(|p| p.key == key && p.runs > 0)
    }

    /// The configuration most figures are read at: the first mode, slot count and layout of
    /// the matrix, timed (`latency all`).
    pub fn main_axis(&self) -> (Mode, usize, Layout) {
        let s = &self.settings;
        (
            s.modes.first().copied().unwrap_or(Mode::Processes),
            s.slots.first().copied().unwrap_or(1),
            s.layouts.first().copied().unwrap_or(Layout::Packed),
        )
    }

    /// The configurations measured, in order: (mode, slots, layout, latency).
    pub fn groups(&self) -> Vec<(Mode, usize, Layout, LatencyMode)> {
        let mut out: Vec<(Mode, usize, Layout, LatencyMode)> = Vec::new();
        for p in &self.points {
            let g = (p.key.mode, p.key.slots, p.key.layout, p.key.latency);
            if !out.contains(&g) {
                out.push(g);
            }
        }
        out
    }

    /// Worker counts measured, ascending.
    pub fn worker_counts(&self) -> Vec<usize> {
        let mut w: Vec<usize> = self.points.iter().map(|p| p.key.workers).collect();
        w.sort_unstable();
        w.dedup();
        w
    }

    /// Strategies measured, in the settings' order.
    pub fn strategies(&self) -> Vec<StrategyKind> {
        self.settings
            .strategies
            .iter()
            .copied()
            .filter(|s| self.points.iter().any(|p| p.key.strategy == *s))
            .collect()
    }
}

pub fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::Processes => "processes",
        Mode::Threads => "threads",
    }
}

pub fn layout_name(l: Layout) -> &'static str {
    match l {
        Layout::Packed => "packed",
        Layout::Padded => "padded",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hermitage_expects_racy_to_lose_where_the_level_lets_it() {
        let key = |engine, isolation, strategy, workers| PointKey {
            strategy,
            mode: Mode::Processes,
            layout: Layout::Packed,
            slots: 1,
            workers,
            latency: LatencyMode::All,
            engine,
            isolation,
        };
        use Isolation::*;
        use TargetKind::*;
        let racy = |e, l| Expected::of(&key(e, l, StrategyKind::Racy, 8));
        assert_eq!(racy(Postgres, Some(ReadCommitted)), Expected::Loses);
        assert_eq!(racy(Postgres, Some(RepeatableRead)), Expected::Exact);
        assert_eq!(racy(Postgres, Some(Serializable)), Expected::Exact);
        assert_eq!(racy(Mysql, Some(ReadCommitted)), Expected::Loses);
        assert_eq!(racy(Mysql, Some(RepeatableRead)), Expected::Loses);
        assert_eq!(racy(Mysql, Some(Serializable)), Expected::Exact);
        assert_eq!(racy(Redis, None), Expected::Loses);
        assert_eq!(racy(Dir, None), Expected::Loses);
        // One worker has nobody to race; a correct strategy is exact everywhere.
        let alone = key(Mysql, Some(ReadCommitted), StrategyKind::Racy, 1);
        assert_eq!(Expected::of(&alone), Expected::Exact);
        for s in [StrategyKind::Atomic, StrategyKind::Cas, StrategyKind::Lock] {
            let k = key(Postgres, Some(ReadCommitted), s, 50);
            assert_eq!(Expected::of(&k), Expected::Exact);
        }
    }

    #[test]
    fn spread_has_median_and_quartiles() {
        let s = Spread::of([5.0, 1.0, 3.0, 2.0, 4.0]);
        assert_eq!(
            (s.min, s.q1, s.median, s.q3, s.max),
            (1.0, 2.0, 3.0, 4.0, 5.0)
        );
        assert_eq!(Spread::of([2.0, 4.0]).median, 3.0);
        assert_eq!(Spread::of([]), Spread::default());
    }
}

#[cfg(test)]
pub(crate) mod sample {
    use super::*;

    /// A small summary with figures that do not round to themselves, for exporter tests.
    pub fn summary() -> BenchSummary {
        let mut points = Vec::new();
        for (i, strategy) in [
            StrategyKind::Racy,
            StrategyKind::Atomic,
            StrategyKind::Pthread,
        ]
        .into_iter()
        .enumerate()
        {
            for (j, workers) in [1usize, 4].into_iter().enumerate() {
                for mode in [Mode::Processes, Mode::Threads] {
                    let base = 1_234_567.891 * (i + 1) as f64 / (j + 1) as f64
                        + if mode == Mode::Threads { 0.5 } else { 0.0 };
                    let loss = if strategy.is_exact() { 0.0 } else { 0.017 };
                    points.push(BenchPoint {
                        key: PointKey {
                            strategy,
                            mode,
                            layout: Layout::Packed,
                            slots: 1,
                            workers,
                            latency: LatencyMode::All,
                            engine: TargetKind::Memory,
                            isolation: None,
                        },
                        status: if workers == 4 && strategy == StrategyKind::Pthread {
                            PointStatus::Collapsed
                        } else {
                            PointStatus::Measured
                        },
                        runs: 3,
                        verdict: if strategy.is_exact() {
                            Verdict::Exact
                        } else {
                            Verdict::RaceCaught
                        },
                        updates: 1000 + i as u64,
                        lost: if strategy.is_exact() { 0 } else { 17 },
                        unexpected: 0,
                        loss_fraction: loss,
                        loss_fraction_over_runs: Spread {
                            median: loss,
                            min: loss / 2.0,
                            max: loss * 2.0,
                            q1: loss,
                            q3: loss,
                        },
                        ops_per_sec: base,
                        ops_per_sec_over_runs: Spread {
                            median: base,
                            min: base * 0.9,
                            max: base * 1.1,
                            q1: base * 0.95,
                            q3: base * 1.05,
                        },
                        latency_ns: Some(Percentiles {
                            count: 1000,
                            p50: 100 + i as u64,
                            p90: 200,
                            p99: 300 + j as u64,
                            p999: 4000,
                            max: 5000,
                        }),
                        p99_ns_over_runs: Some(Spread::of([290.0, 301.0, 310.0])),
                        p999_ns_over_runs: Some(Spread::of([3000.0, 4000.0, 4500.0])),
                        spectrum: vec![Quantile { q: 0.5, ns: 100 }],
                        retries_per_update: 0.25,
                        waits_per_update: 0.125,
                        wakes_per_update: 0.0,
                        fairness: Fairness {
                            min_ops_per_sec: base / 8.0,
                            median_ops_per_sec: base / 4.0,
                            max_ops_per_sec: base / 2.0,
                            min_over_median: 0.5,
                            starved: j,
                        },
                        preemptions: 3.0,
                        spawn_ms: 1.5,
                        window_ms: 100.25,
                        ideal_ops_per_sec: None,
                        vs_atomic: None,
                        vs_pthread: None,
                        process_vs_thread: None,
                        untimed_vs_timed: None,
                        run_ids: Vec::new(),
                        expected: None,
                        peer: None,
                    });
                }
            }
        }
        let mut s = BenchSummary {
            tool: "racepool test".into(),
            machine: MachineInfo {
                cpu: "test cpu".into(),
                cores: 2,
                kernel: "6.0".into(),
                rustc: None,
                git_revision: None,
                git_dirty: None,
                started: "2026-11-23T10:22:31Z".into(),
                command: vec!["torture".into(), "bench".into()],
            },
            settings: BenchSettings {
                quick: true,
                budget_ms: 100.0,
                budget_per_worker_ms: 0.5,
                cap_factor: 10,
                repeat: 3,
                warmup: false,
                strategies: vec![
                    StrategyKind::Racy,
                    StrategyKind::Atomic,
                    StrategyKind::Pthread,
                ],
                workers: vec![1, 4],
                slots: vec![1],
                modes: vec![Mode::Processes, Mode::Threads],
                layouts: vec![Layout::Packed],
                seed: 1,
                targets: vec![TargetKind::Memory],
                isolation: Vec::new(),
                ops_per_worker: None,
                target_budget_ms: None,
            },
            points,
            all_exact: false,
            peer_notes: Vec::new(),
        };
        s.derive();
        s
    }
}

#[cfg(test)]
mod exporters_agree {
    use super::*;
    use crate::report::csv::render_csv;
    use crate::report::markdown::render_markdown;
    use crate::report::units;

    /// serde_json's default float parser may differ from Rust's in the last bit.
    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= a.abs().max(b.abs()) * 1e-12
    }

    #[test]
    fn json_and_csv_carry_the_same_figures_with_the_unit_in_each_name() {
        let s = sample::summary();
        let json: serde_json::Value =
            serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        let csv = render_csv(&s);
        let mut reader = csv::Reader::from_reader(csv.as_bytes());
        let header = reader.headers().unwrap().clone();
        let col = |name: &str| {
            header
                .iter()
                .position(|h| h == name)
                .unwrap_or_else(|| panic!("no column {name}"))
        };
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        let points = json["points"].as_array().unwrap();
        assert_eq!(points.len(), s.points.len());
        assert_eq!(rows.len(), s.points.len());
        for (p, row) in points.iter().zip(&rows) {
            let num = |name: &str| -> Option<f64> { row[col(name)].parse().ok() };
            for field in ["strategy", "mode", "latency", "status", "verdict"] {
                assert_eq!(p[field].as_str().unwrap(), &row[col(field)], "{field}");
            }
            assert_eq!(
                p["workers"].as_u64().unwrap().to_string(),
                row[col("workers")]
            );
            // One shape everywhere: a number, with its spread beside it.
            let median = p["ops_per_sec"].as_f64().unwrap();
            assert!(close(median, num("ops_per_sec").unwrap()));
            let min = p["ops_per_sec_over_runs"]["min"].as_f64().unwrap();
            assert!(close(min, num("ops_per_sec_min").unwrap()));
            match (p["vs_atomic"].as_f64(), num("vs_atomic")) {
                (Some(a), Some(b)) => assert!(close(a, b)),
                (a, b) => assert_eq!(a, b),
            }
            let p99 = p["latency_ns"]["p99"].as_u64().unwrap();
            assert_eq!(p99.to_string(), row[col("p99_ns")]);
            // JSON keeps the fraction; CSV, read by people in spreadsheets, the percent.
            let fraction = p["loss_fraction"].as_f64().unwrap();
            assert!(close(fraction * 100.0, num("loss_percent").unwrap()));
            assert!(p.get("loss_rate").is_none());
            let fair = p["fairness"]["min_over_median"].as_f64().unwrap();
            assert!(close(fair, num("fairness_min_over_median").unwrap()));
            assert_eq!(
                p["fairness"]["starved"].as_u64().unwrap().to_string(),
                row[col("starved")]
            );
        }
        assert!(!header.iter().any(|h| h == "loss_rate" || h == "fairness"));
    }

    #[test]
    fn markdown_shows_the_json_figures_as_people_read_them() {
        let s = sample::summary();
        let md = render_markdown(&s);
        for p in s.points.iter().filter(|p| p.key.mode == Mode::Processes) {
            let cell = format!(
                "{} ({}–{})",
                units::rate(p.ops_per_sec),
                units::rate(p.ops_per_sec_over_runs.min),
                units::rate(p.ops_per_sec_over_runs.max)
            );
            assert!(md.contains(&cell), "{cell} missing");
            let l = p.latency_ns.unwrap();
            let tail = format!(
                "{} / {}",
                units::time_ns(l.p99 as f64),
                units::time_ns(l.p999 as f64)
            );
            assert!(md.contains(&tail), "{tail} missing");
        }
        // Loss as a percent, the plots embedded, no goal lines, no table of every point.
        assert!(md.contains("up to 1.7% of them"), "{md}");
        for plot in ["throughput", "latency", "spectrum", "racy-loss"] {
            assert!(md.contains(&format!("]({plot}.svg)")), "{plot}");
        }
        assert!(!md.contains("goal"));
        assert!(!md.contains("0.017"));
        assert!(md.lines().count() < 150, "{} lines", md.lines().count());
    }

    #[test]
    fn ratios_are_derived_from_the_same_points() {
        let s = sample::summary();
        let find = |strategy, mode, workers| {
            s.points
                .iter()
                .find(|p| {
                    p.key.strategy == strategy && p.key.mode == mode && p.key.workers == workers
                })
                .unwrap()
        };
        let racy = find(StrategyKind::Racy, Mode::Processes, 4);
        let atomic = find(StrategyKind::Atomic, Mode::Processes, 4);
        assert_eq!(racy.vs_atomic, Some(racy.ops_per_sec / atomic.ops_per_sec));
        let threads = find(StrategyKind::Racy, Mode::Threads, 4);
        assert_eq!(
            racy.process_vs_thread,
            Some(racy.ops_per_sec / threads.ops_per_sec)
        );
        let one = find(StrategyKind::Racy, Mode::Processes, 1);
        // Ideal scaling is capped by the machine's 2 cores.
        assert_eq!(racy.ideal_ops_per_sec, Some(one.ops_per_sec * 2.0));
        assert_eq!(
            find(StrategyKind::Atomic, Mode::Processes, 1).vs_atomic,
            Some(1.0)
        );
    }
}
