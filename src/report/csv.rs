//! The bench summary as CSV: one row per point, one serde row struct, figures at full
//! precision, empty cells where a figure does not exist. Every column name carries its unit
//! (`_ns`, `_ms`, `_percent`, `ops_per_sec`); counts and ratios have none.

use serde::Serialize;

use super::matrix::{layout_name, mode_name, BenchPoint, BenchSummary, PointStatus};
use super::Verdict;

/// One point as a CSV row. The columns are these fields, in this order.
#[derive(Serialize)]
pub struct Row {
    /// `memory`, or the target's kind.
    pub engine: &'static str,
    /// A SQL target's isolation level; empty elsewhere.
    pub isolation: Option<&'static str>,
    pub strategy: &'static str,
    pub mode: &'static str,
    pub layout: &'static str,
    pub slots: usize,
    pub workers: usize,
    pub latency: String,
    pub status: &'static str,
    pub verdict: &'static str,
    pub runs: usize,
    pub updates: u64,
    pub lost: u64,
    pub unexpected: u64,
    /// lost / updates × 100 (JSON keeps the fraction, `loss_fraction`).
    pub loss_percent: f64,
    /// The median over runs, then the spread.
    pub ops_per_sec: f64,
    pub ops_per_sec_min: f64,
    pub ops_per_sec_q1: f64,
    pub ops_per_sec_q3: f64,
    pub ops_per_sec_max: f64,
    pub p50_ns: Option<u64>,
    pub p90_ns: Option<u64>,
    pub p99_ns: Option<u64>,
    pub p999_ns: Option<u64>,
    pub max_ns: Option<u64>,
    pub retries_per_update: f64,
    pub waits_per_update: f64,
    pub wakes_per_update: f64,
    pub worker_ops_per_sec_min: f64,
    pub worker_ops_per_sec_median: f64,
    pub worker_ops_per_sec_max: f64,
    pub fairness_min_over_median: f64,
    pub starved: usize,
    pub preemptions: f64,
    pub spawn_ms: f64,
    pub window_ms: f64,
    pub ideal_ops_per_sec: Option<f64>,
    pub vs_atomic: Option<f64>,
    pub vs_pthread: Option<f64>,
    pub process_vs_thread: Option<f64>,
    pub untimed_vs_timed: Option<f64>,
    /// A target's point: Hermitage's expected verdict (`loses`, `exact`).
    pub expected: Option<&'static str>,
    /// The peer measured beside the point (`pgbench`, `redis-benchmark`), its median tps
    /// and p99, and racepool's median over the peer's.
    pub peer: Option<String>,
    pub peer_tps: Option<f64>,
    pub peer_p99_us: Option<f64>,
    pub vs_peer: Option<f64>,
}

impl Row {
    pub fn of(p: &BenchPoint) -> Row {
        let k = &p.key;
        let lat = |f: fn(&super::Percentiles) -> u64| p.latency_ns.as_ref().map(f);
        Row {
            engine: k.engine.name(),
            isolation: k.isolation.map(|l| l.name()),
            strategy: k.strategy.name(),
            mode: mode_name(k.mode),
            layout: layout_name(k.layout),
            slots: k.slots,
            workers: k.workers,
            latency: k.latency.to_string(),
            status: status_name(p.status),
            verdict: verdict_name(p.verdict),
            runs: p.runs,
            updates: p.updates,
            lost: p.lost,
            unexpected: p.unexpected,
            loss_percent: p.loss_fraction * 100.0,
            ops_per_sec: p.ops_per_sec,
            ops_per_sec_min: p.ops_per_sec_over_runs.min,
            ops_per_sec_q1: p.ops_per_sec_over_runs.q1,
            ops_per_sec_q3: p.ops_per_sec_over_runs.q3,
            ops_per_sec_max: p.ops_per_sec_over_runs.max,
            p50_ns: lat(|l| l.p50),
            p90_ns: lat(|l| l.p90),
            p99_ns: lat(|l| l.p99),
            p999_ns: lat(|l| l.p999),
            max_ns: lat(|l| l.max),
            retries_per_update: p.retries_per_update,
            waits_per_update: p.waits_per_update,
            wakes_per_update: p.wakes_per_update,
            worker_ops_per_sec_min: p.fairness.min_ops_per_sec,
            worker_ops_per_sec_median: p.fairness.median_ops_per_sec,
            worker_ops_per_sec_max: p.fairness.max_ops_per_sec,
            fairness_min_over_median: p.fairness.min_over_median,
            starved: p.fairness.starved,
            preemptions: p.preemptions,
            spawn_ms: p.spawn_ms,
            window_ms: p.window_ms,
            ideal_ops_per_sec: p.ideal_ops_per_sec,
            vs_atomic: p.vs_atomic,
            vs_pthread: p.vs_pthread,
            process_vs_thread: p.process_vs_thread,
            untimed_vs_timed: p.untimed_vs_timed,
            expected: p.expected.map(|e| e.name()),
            peer: p.peer.as_ref().map(|x| x.tool.clone()),
            peer_tps: p.peer.as_ref().map(|x| x.tps.median),
            peer_p99_us: p.peer.as_ref().map(|x| x.p99_us),
            vs_peer: p.peer.as_ref().map(|x| x.ratio),
        }
    }
}

pub fn status_name(s: PointStatus) -> &'static str {
    match s {
        PointStatus::Measured => "measured",
        PointStatus::Collapsed => "collapsed",
    }
}

pub fn verdict_name(v: Verdict) -> &'static str {
    match v {
        Verdict::Exact => "exact",
        Verdict::RaceCaught => "race-caught",
        Verdict::RaceMissed => "race-missed",
        Verdict::Failed => "failed",
    }
}

pub fn render_csv(summary: &BenchSummary) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    for p in &summary.points {
        w.serialize(Row::of(p))
            .expect("a row of numbers and names serialises");
    }
    let bytes = w.into_inner().expect("writing to memory cannot fail");
    String::from_utf8(bytes).expect("names and numbers are UTF-8")
}
