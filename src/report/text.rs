//! The human table on stdout.

use std::fmt::Write;

use super::summary::{StrategySummary, Summary, Verdict};
use crate::options::Mode;

/// Nanoseconds as a short human figure.
pub fn duration_ns(ns: u64) -> String {
    let ns = ns as f64;
    if ns < 1e3 {
        format!("{ns:.0}ns")
    } else if ns < 1e6 {
        format!("{:.1}µs", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.1}ms", ns / 1e6)
    } else {
        format!("{:.2}s", ns / 1e9)
    }
}

/// A rate as a short human figure.
pub fn rate(per_sec: f64) -> String {
    if per_sec >= 1e6 {
        format!("{:.2}M", per_sec / 1e6)
    } else if per_sec >= 1e3 {
        format!("{:.1}k", per_sec / 1e3)
    } else {
        format!("{per_sec:.0}")
    }
}

fn verdict(s: &StrategySummary) -> String {
    if let Some(row) = &s.scenario {
        return scenario_verdict(s, row);
    }
    let runs = s.runs.len();
    let rate = s.lost as f64 / (s.runs.iter().map(|r| r.updates).sum::<u64>().max(1)) as f64;
    match s.verdict {
        Verdict::Exact if runs == 1 => "exact".into(),
        Verdict::Exact => format!("exact in {runs} of {runs} runs"),
        Verdict::RaceCaught if runs == 1 => format!("race caught: {:.2}% lost", rate * 100.0),
        Verdict::RaceCaught => format!(
            "race caught: lost updates in {} of {runs} runs ({:.2}%)",
            s.runs_with_loss,
            rate * 100.0
        ),
        Verdict::RaceMissed => "race missed: no loss (widen --race-window)".into(),
        // Exact in memory, yet failed: its stored record did not verify.
        Verdict::Failed if s.lost == 0 && s.unexpected == 0 => {
            let bad = s
                .runs
                .iter()
                .filter(|r| r.history.as_ref().is_some_and(|h| !h.problems.is_empty()))
                .count();
            format!("FAILED: stored record not verified in {bad} of {runs} runs")
        }
        Verdict::Failed => format!(
            "FAILED: lost {} (+{} unexpected) in {} of {runs} runs",
            s.lost,
            s.unexpected,
            s.runs_with_loss.max(1)
        ),
    }
}

pub fn render_text(summary: &Summary) -> String {
    let c = &summary.config;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "racepool: {} workers ({}) x {} updates on {} slot{} ({}, pick {}, initial {}, seed {}), {} core{}{}",
        c.workers,
        match c.mode {
            Mode::Processes => "processes",
            Mode::Threads => "threads",
        },
        c.ops,
        c.slots,
        if c.slots == 1 { "" } else { "s" },
        match c.layout {
            crate::region::Layout::Packed => "packed",
            crate::region::Layout::Padded => "padded",
        },
        c.pick,
        c.initial,
        c.seed,
        summary.machine.cores,
        if summary.machine.cores == 1 { "" } else { "s" },
        if c.repeat > 1 { format!(", {} runs each", c.repeat) } else { String::new() },
    );
    out.push('\n');
    let head = [
        "strategy", "expected", "observed", "lost", "ops/s", "p50", "p99", "p99.9", "max",
        "verdict",
    ];
    let mut rows: Vec<Vec<String>> = vec![head.iter().map(|s| s.to_string()).collect()];
    for s in &summary.strategies {
        let lat = |f: fn(&super::Percentiles) -> u64| {
            s.latency_ns
                .as_ref()
                .map_or("-".into(), |p| duration_ns(f(p)))
        };
        rows.push(vec![
            s.label().into(),
            s.expected.to_string(),
            s.observed.to_string(),
            s.lost.to_string(),
            rate(s.median_ops_per_sec),
            lat(|p| p.p50),
            lat(|p| p.p99),
            lat(|p| p.p999),
            lat(|p| p.max),
            verdict(s),
        ]);
    }
    table(&mut out, &rows, 1);
    out.push('\n');

    let head = [
        "strategy",
        "spawn",
        "window",
        "retries/upd",
        "waits/upd",
        "wakes/upd",
        "preempted",
        "worker ops/s min/med/max",
        "starved",
    ];
    let mut rows: Vec<Vec<String>> = vec![head.iter().map(|s| s.to_string()).collect()];
    for s in &summary.strategies {
        // Medians over runs would hide a bad run; the first run is shown, JSON has them all.
        let r = &s.runs[s.runs.len() / 2];
        rows.push(vec![
            s.label().into(),
            format!("{:.0}ms", r.spawn_ms),
            format!("{:.0}ms", r.window_ms),
            format!("{:.3}", r.retries_per_update),
            format!("{:.3}", r.waits_per_update),
            format!("{:.3}", r.wakes_per_update),
            r.preemptions.to_string(),
            format!(
                "{}/{}/{}",
                rate(r.fairness.min_ops_per_sec),
                rate(r.fairness.median_ops_per_sec),
                rate(r.fairness.max_ops_per_sec)
            ),
            r.fairness.starved.to_string(),
        ]);
    }
    table(&mut out, &rows, 1);
    scenario_notes(summary, &mut out);
    let _ = writeln!(
        out,
        "\nlost = expected - observed, per slot. preempted = involuntary context switches of the workers."
    );
    store_lines(&mut out, summary);
    render_faults(&mut out, summary);
    out
}

/// What verify proved from each run's stored record.
fn store_lines(out: &mut String, summary: &Summary) {
    let checked: Vec<_> = summary
        .strategies
        .iter()
        .flat_map(|s| s.runs.iter())
        .filter_map(|r| r.history.as_ref())
        .collect();
    if checked.is_empty() {
        return;
    }
    out.push('\n');
    let head = [
        "strategy",
        "persisted",
        "duplicates",
        "gaps",
        "witnesses",
        "verified",
    ];
    let mut rows: Vec<Vec<String>> = vec![head.iter().map(|s| s.to_string()).collect()];
    // The run header's name: the strategy, or a scenario's "record whole-record".
    for h in &checked {
        rows.push(vec![
            h.strategy.clone(),
            h.persisted.to_string(),
            h.duplicates.to_string(),
            h.gaps.to_string(),
            h.witnesses.to_string(),
            if h.verified {
                "verified".into()
            } else {
                format!(
                    "NOT verified: {}",
                    h.problems.first().map_or(String::new(), |p| p.to_string())
                )
            },
        ]);
    }
    table(out, &rows, 1);
    for h in &checked {
        for w in h.witness_list.iter().take(2) {
            let _ = writeln!(out, "witness ({}): {w}", h.strategy);
        }
        for t in h.torn_list.iter().take(2) {
            let _ = writeln!(out, "torn read ({}): {t}", h.strategy);
        }
    }
}

/// The verdict column for a scenario row: the invariant, then what happened to it.
fn scenario_verdict(s: &StrategySummary, row: &crate::workload::Row) -> String {
    let runs = s.runs.len();
    let broke = s.runs_with_loss;
    let v = match s.verdict {
        Verdict::Exact => format!("holds in {runs} of {runs} runs"),
        Verdict::RaceCaught => format!("broken in {broke} of {runs} runs: race caught"),
        Verdict::RaceMissed => "held: race missed (widen --race-window)".into(),
        Verdict::Failed => format!("FAILED: broken in {broke} of {runs} runs"),
    };
    format!("{}: {v}", row.invariant)
}

/// Below the table: each scenario row's tallies and what broke.
fn scenario_notes(summary: &Summary, out: &mut String) {
    let Some(sc) = &summary.config.scenario else {
        return;
    };
    let _ = writeln!(
        out,
        "\nscenario {}: invariant \"{}\"; lost = units by which it broke",
        sc.kind.name(),
        sc.kind.invariant()
    );
    for s in &summary.strategies {
        let Some(row) = &s.scenario else { continue };
        let counters: Vec<String> = row
            .counters
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let _ = writeln!(out, "  {}: {}", row.variant, counters.join(", "));
        for f in &row.findings {
            let _ = writeln!(out, "    {f}");
        }
    }
}

/// Faults and interruption, after the tables (`fault::render` writes each run's section).
fn render_faults(out: &mut String, summary: &Summary) {
    let mut first = true;
    for s in &summary.strategies {
        for (i, r) in s.runs.iter().enumerate() {
            if let Some(f) = &r.faults {
                if std::mem::take(&mut first) {
                    let _ = writeln!(
                        out,
                        "\nwith deaths, expected is within acknowledged ..= acknowledged + in flight, per slot."
                    );
                }
                crate::fault::render(out, s.strategy.name(), i + 1, f);
            }
        }
    }
    if summary.interrupted {
        let _ = writeln!(
            out,
            "\nINTERRUPTED (SIGINT): partial figures; workers stopped after their update in flight."
        );
    }
}

/// Left-aligns the first `left` columns, right-aligns the rest, except the last (free text).
fn table(out: &mut String, rows: &[Vec<String>], left: usize) {
    let cols = rows[0].len();
    let width: Vec<usize> = (0..cols)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            let pad = width[c] - cell.chars().count();
            if c < left || c == cols - 1 {
                line.push_str(cell);
                if c != cols - 1 {
                    line.push_str(&" ".repeat(pad));
                }
            } else {
                line.push_str(&" ".repeat(pad));
                line.push_str(cell);
            }
            if c != cols - 1 {
                line.push_str("  ");
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_rates_read_well() {
        assert_eq!(duration_ns(85), "85ns");
        assert_eq!(duration_ns(1_250), "1.2µs");
        assert_eq!(duration_ns(3_400_000), "3.4ms");
        assert_eq!(rate(12_345_678.0), "12.35M");
        assert_eq!(rate(950.0), "950");
    }
}
