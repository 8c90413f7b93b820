//! The bench summary as CSV: one row per point, figures at full precision (`f64` Display
//! round-trips), empty cells where a figure does not exist.

use std::fmt::Write;

use super::matrix::{layout_name, mode_name, BenchSummary, PointStatus};
use super::Verdict;

pub const HEADER: &[&str] = &[
    "strategy",
    "mode",
    "layout",
    "slots",
    "workers",
    "latency",
    "status",
    "verdict",
    "runs",
    "updates",
    "lost",
    "unexpected",
    "loss_rate",
    "ops_per_sec_median",
    "ops_per_sec_min",
    "ops_per_sec_max",
    "ops_per_sec_q1",
    "ops_per_sec_q3",
    "p50_ns",
    "p90_ns",
    "p99_ns",
    "p999_ns",
    "max_ns",
    "retries_per_update",
    "waits_per_update",
    "wakes_per_update",
    "fairness",
    "starved",
    "preemptions",
    "spawn_ms",
    "window_ms",
    "linear_ops_per_sec",
    "vs_atomic",
    "vs_pthread",
    "process_vs_thread",
    "untimed_vs_timed",
];

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
    let mut out = HEADER.join(",");
    out.push('\n');
    let opt = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    for p in &summary.points {
        let k = &p.key;
        let lat = |f: fn(&super::Percentiles) -> u64| {
            p.latency_ns
                .as_ref()
                .map(|l| f(l).to_string())
                .unwrap_or_default()
        };
        let cells = [
            k.strategy.name().to_string(),
            mode_name(k.mode).into(),
            layout_name(k.layout).into(),
            k.slots.to_string(),
            k.workers.to_string(),
            k.latency.to_string(),
            status_name(p.status).into(),
            verdict_name(p.verdict).into(),
            p.runs.to_string(),
            p.updates.to_string(),
            p.lost.to_string(),
            p.unexpected.to_string(),
            p.loss_rate.to_string(),
            p.ops_per_sec.median.to_string(),
            p.ops_per_sec.min.to_string(),
            p.ops_per_sec.max.to_string(),
            p.ops_per_sec.q1.to_string(),
            p.ops_per_sec.q3.to_string(),
            lat(|l| l.p50),
            lat(|l| l.p90),
            lat(|l| l.p99),
            lat(|l| l.p999),
            lat(|l| l.max),
            p.retries_per_update.to_string(),
            p.waits_per_update.to_string(),
            p.wakes_per_update.to_string(),
            p.fairness.to_string(),
            p.starved.to_string(),
            p.preemptions.to_string(),
            p.spawn_ms.to_string(),
            p.window_ms.to_string(),
            opt(p.linear_ops_per_sec),
            opt(p.vs_atomic),
            opt(p.vs_pthread),
            opt(p.process_vs_thread),
            opt(p.untimed_vs_timed),
        ];
        debug_assert_eq!(cells.len(), HEADER.len());
        let _ = writeln!(out, "{}", cells.join(","));
    }
    out
}
