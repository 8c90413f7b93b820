//! The human tables on stdout, within 100 columns: the main table always, the workers' detail
//! with `Detail::Full` (`--verbose`).

use std::fmt::Write;

use super::summary::{Fairness, Spread, StrategySummary, Summary, Verdict};
use super::units::{count, percent, plural, rate, time_ms, time_ns};
use crate::options::{Mode, Options};

/// How much the run's text says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Detail {
    /// The main table: counts, loss, throughput, tail latency and the verdict.
    #[default]
    Brief,
    /// Also what the workers did: p50 and max latency, retries, futex waits and wakes,
    /// preemptions, spawn and window times, and the spread of per-worker rates.
    Full,
}

/// The summary as the default (`Detail::Brief`) text.
pub fn render_text(summary: &Summary) -> String {
    render_text_with(summary, Detail::Brief)
}

/// The whole text: [`render_head`], one [`render_row`] per strategy, then [`render_tail`] (what
/// `torture run` prints piece by piece as the strategies finish, so the two are the same).
pub fn render_text_with(summary: &Summary, detail: Detail) -> String {
    let columns = Columns::of(&summary.config);
    let mut out = render_head(&summary.config, summary.machine.cores, &columns);
    for s in &summary.strategies {
        out.push_str(&render_row(s, &columns));
    }
    out.push_str(&render_tail(summary, detail));
    out
}

/// The main table's columns and their widths, fixed before the first row is known so that
/// rows printed as their strategies finish line up: the counts as wide as the most the runs
/// can count, the figures as wide as their formatters write them. A cell wider than that (a
/// loss below 0.01%) pushes the rest of its row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Columns {
    headings: Vec<&'static str>,
    width: Vec<usize>,
    /// A SQL target's rows name their isolation level (second column, words).
    isolation: bool,
    /// A database or Redis target retries by design (serialization failures, failed EXECs):
    /// its retries are part of the verdict's price.
    retries: bool,
}

impl Columns {
    pub fn of(config: &Options) -> Columns {
        let target = &config.target;
        let isolation = target.is_sql();
        let retries = isolation || matches!(target, crate::target::TargetSpec::Redis(_));
        let label = config
            .variants()
            .iter()
            .map(|v| v.name().chars().count())
            .max()
            .unwrap_or(0);
        // Every slot starts at `initial` and every update adds one: summed over slots and runs.
        let mut most = (config.initial as u64)
            .saturating_mul(config.slots as u64)
            .saturating_add((config.workers as u64).saturating_mul(config.ops))
            .saturating_mul(config.repeat.max(1) as u64);
        if config.scenario.is_some() {
            // A scenario counts units of its own (a ledger's money): room for one more digit.
            most = most.saturating_mul(10);
        }
        let n = count(most).len();
        let mut columns: Vec<(&'static str, usize)> = vec![("strategy", label)];
        if isolation {
            let level = config
                .levels()
                .iter()
                .map(|l| l.map_or(1, |l| l.name().chars().count()))
                .max()
                .unwrap_or(0);
            columns.push(("isolation", level));
        }
        // loss: `34.3%`, `0.017%`; ops/s: `12.3k`; latency: `1.25 µs`.
        columns.extend([
            ("expected", n),
            ("observed", n),
            ("lost", n),
            ("loss", 6),
            ("ops/s", 5),
            ("p99", 7),
            ("p99.9", 7),
        ]);
        if retries {
            columns.push(("retries/upd", 4));
        }
        columns.push(("verdict", 0));
        Columns {
            headings: columns.iter().map(|c| c.0).collect(),
            width: columns
                .iter()
                .map(|&(h, w)| w.max(h.chars().count()))
                .collect(),
            isolation,
            retries,
        }
    }

    /// One line of the table: the name (and isolation level) left-aligned, the figures
    /// right-aligned, the verdict as it is.
    fn line(&self, cells: &[String]) -> String {
        let words = if self.isolation { 2 } else { 1 };
        let mut line = String::new();
        for (c, cell) in cells.iter().enumerate() {
            let pad = " ".repeat(self.width[c].saturating_sub(cell.chars().count()));
            if c < words || c == cells.len() - 1 {
                line.push_str(cell);
                line.push_str(&pad);
            } else {
                line.push_str(&pad);
                line.push_str(cell);
            }
            line.push_str("  ");
        }
        format!("{}\n", line.trim_end())
    }
}

/// What the text says before any strategy has run: the run's shape and the table's headings.
pub fn render_head(config: &Options, cores: usize, columns: &Columns) -> String {
    let mut out = String::new();
    header(&mut out, config, cores);
    out.push('\n');
    out.push_str(&columns.line(&row(&columns.headings)));
    out
}

/// One strategy's line of the main table.
pub fn render_row(s: &StrategySummary, columns: &Columns) -> String {
    let lat = |f: fn(&super::Percentiles) -> u64| {
        s.latency_ns
            .as_ref()
            .map_or("–".into(), |p| time_ns(f(p) as f64))
    };
    let updates: u64 = s.runs.iter().map(|r| r.updates).sum();
    let mut cells = vec![s.label().to_string()];
    if columns.isolation {
        cells.push(s.isolation.map_or("–", |l| l.name()).into());
    }
    cells.extend([
        count(s.expected),
        count(s.observed),
        count(s.lost),
        // A scenario's `lost` counts units of its invariant, not updates.
        if s.scenario.is_some() {
            "–".into()
        } else {
            percent(s.lost as f64 / updates.max(1) as f64)
        },
        rate(s.ops_per_sec),
        lat(|p| p.p99),
        lat(|p| p.p999),
    ]);
    if columns.retries {
        cells.push(format!("{:.2}", s.retries_per_update));
    }
    cells.push(verdict(s));
    columns.line(&cells)
}

/// Everything after the main table's rows: notes, `--verbose`'s detail, the store, faults.
pub fn render_tail(summary: &Summary, detail: Detail) -> String {
    let mut out = String::new();
    scenario_notes(summary, &mut out);
    let _ = writeln!(
        out,
        "\nlost = expected - observed, per slot; loss = lost / updates; ops/s = updates / window."
    );
    for s in summary.strategies.iter().filter(|s| isolation_held(s)) {
        let _ = writeln!(
            out,
            "{} at {}: no update lost: the database refused {:.2} conflicting transactions per update, and each was retried.",
            s.label(),
            s.isolation.map_or("", |l| l.name()),
            s.retries_per_update
        );
    }
    for s in summary
        .strategies
        .iter()
        .filter(|s| s.verdict == Verdict::RaceMissed && !isolation_held(s))
    {
        let _ = writeln!(
            out,
            "{}: the race was not caught this time; widen it with --race-window N.",
            s.label()
        );
    }
    if detail == Detail::Full {
        workers_detail(&mut out, summary);
    }
    store_lines(&mut out, summary);
    render_faults(&mut out, summary);
    out
}

/// `racepool: 50 worker processes × 2,000 updates on 1 slot, 2 cores, 3 runs each`, then the
/// settings that decide which slots are hit.
fn header(out: &mut String, c: &Options, cores: usize) {
    let workers = plural(
        c.workers as u64,
        match c.mode {
            Mode::Processes => "worker process",
            Mode::Threads => "worker thread",
        },
    );
    let _ = writeln!(
        out,
        "racepool: {workers} × {} on {}, {}{}",
        plural(c.ops, "update"),
        plural(c.slots as u64, "slot"),
        plural(cores as u64, "core"),
        if c.repeat > 1 {
            format!(", {} runs each", count(c.repeat as u64))
        } else {
            String::new()
        },
    );
    let _ = writeln!(
        out,
        "          {} layout, pick {}, initial {}, seed {}",
        match c.layout {
            crate::region::Layout::Packed => "packed",
            crate::region::Layout::Padded => "padded",
        },
        c.pick,
        count(c.initial as u64),
        c.seed,
    );
    if c.target != crate::target::TargetSpec::Memory {
        let shown = crate::target::sql::masked(&c.target.to_string());
        let mut line = format!("          target {shown}");
        if let Some(ms) = c.lock_ttl_ms {
            line.push_str(&format!(", lock TTL {ms} ms"));
        }
        if c.fencing {
            line.push_str(", fencing tokens");
        }
        let _ = writeln!(out, "{line}");
    }
}

/// The verdict column. A scenario's row says whether its invariant (named in the note under
/// the table) held; the counter's, whether every update landed.
fn verdict(s: &StrategySummary) -> String {
    let runs = s.runs.len();
    let failed = s
        .runs
        .iter()
        .filter(|r| r.verdict == Verdict::Failed)
        .count();
    let of_runs = |k: usize| {
        if runs == 1 {
            String::new()
        } else {
            format!(" in {k} of {runs} runs")
        }
    };
    if s.scenario.is_some() {
        return match s.verdict {
            Verdict::Exact => format!("holds{}", of_runs(runs)),
            Verdict::RaceCaught => format!("broken{}", of_runs(s.runs_with_loss)),
            Verdict::RaceMissed => "held: race missed".into(),
            Verdict::Failed => format!("FAILED: broken{}", of_runs(s.runs_with_loss.max(1))),
        };
    }
    // Deaths leave updates whose outcome nobody knows: nothing acknowledged was lost, but the
    // count is a bound, not exact, unless recovery settled each of them.
    let unknown: u64 = s
        .runs
        .iter()
        .filter_map(|r| r.faults.as_ref())
        .map(|f| f.in_flight.saturating_sub(f.rolled_forward + f.rolled_back))
        .sum();
    let unplanned: u64 = s
        .runs
        .iter()
        .filter_map(|r| r.faults.as_ref())
        .map(|f| f.unplanned as u64)
        .sum();
    match s.verdict {
        Verdict::Exact if unplanned > 0 => format!(
            "bounds held, {}{}",
            plural(unplanned, "unplanned death"),
            of_runs(runs)
        ),
        Verdict::Exact if unknown > 0 => {
            format!("bounds held, {} in flight{}", count(unknown), of_runs(runs))
        }
        Verdict::Exact => format!("exact{}", of_runs(runs)),
        Verdict::RaceCaught => format!("race caught{}", of_runs(s.runs_with_loss)),
        // The database refused the conflicting writes (serialization failures), retried.
        Verdict::RaceMissed if isolation_held(s) => "none lost: retried".into(),
        Verdict::RaceMissed => "race missed".into(),
        // Exact in memory, yet failed: its stored record did not verify.
        Verdict::Failed if s.lost == 0 && s.unexpected == 0 => {
            let bad = s
                .runs
                .iter()
                .filter(|r| r.history.as_ref().is_some_and(|h| !h.problems.is_empty()))
                .count();
            format!("FAILED: record not verified{}", of_runs(bad))
        }
        Verdict::Failed if s.unexpected > 0 => format!(
            "FAILED: {} unexpected{}",
            count(s.unexpected),
            of_runs(failed)
        ),
        Verdict::Failed => format!("FAILED: lost updates{}", of_runs(failed)),
    }
}

/// A bug's row at an isolation level that lost nothing because the database refused its
/// conflicting transactions (retried), not because the race was missed.
fn isolation_held(s: &StrategySummary) -> bool {
    s.verdict == Verdict::RaceMissed && s.isolation.is_some() && s.retries_per_update > 0.0
}

/// What the workers did: where the time went and how evenly they progressed. With several
/// runs, counts are totals, times medians, and the worker rates those of the median run.
fn workers_detail(out: &mut String, summary: &Summary) {
    out.push('\n');
    let mut rows = vec![row(&[
        "strategy",
        "p50",
        "max",
        "retries",
        "futex waits",
        "futex wakes",
        "preempted",
    ])];
    for s in &summary.strategies {
        let lat = |f: fn(&super::Percentiles) -> u64| {
            s.latency_ns
                .as_ref()
                .map_or("–".into(), |p| time_ns(f(p) as f64))
        };
        let total = |f: fn(&super::RunSummary) -> u64| count(s.runs.iter().map(f).sum());
        rows.push(vec![
            s.label().into(),
            lat(|p| p.p50),
            lat(|p| p.max),
            total(|r| r.retries),
            total(|r| r.waits),
            total(|r| r.wakes),
            total(|r| r.preemptions),
        ]);
    }
    table(out, &rows, Text::First);
    out.push('\n');

    let mut rows = vec![row(&[
        "strategy",
        "spawn",
        "window",
        "slowest worker",
        "median worker",
        "fastest worker",
        "starved",
    ])];
    for s in &summary.strategies {
        let median = |f: fn(&super::RunSummary) -> f64| Spread::of(s.runs.iter().map(f)).median;
        let f = Fairness::of_median_run(&s.runs);
        rows.push(vec![
            s.label().into(),
            time_ms(median(|r| r.spawn_ms)),
            time_ms(median(|r| r.window_ms)),
            format!("{}/s", rate(f.min_ops_per_sec)),
            format!("{}/s", rate(f.median_ops_per_sec)),
            format!("{}/s", rate(f.max_ops_per_sec)),
            count(f.starved as u64),
        ]);
    }
    table(out, &rows, Text::First);
    let _ = writeln!(
        out,
        "\nretries: failed CAS or lock attempts; preempted: involuntary context switches; spawn: \
         first fork\nto the start barrier; window: barrier release to the last worker's end; \
         starved: workers below\na tenth of the median worker's rate."
    );
    if summary.config.repeat > 1 {
        let _ = writeln!(
            out,
            "With {} runs: counts are totals, times medians, worker rates the median run's.",
            summary.config.repeat
        );
    }
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
    let mut rows = vec![row(&[
        "strategy",
        "persisted",
        "duplicates",
        "gaps",
        "witnesses",
        "verified",
    ])];
    // The run header's name: the strategy, or a scenario's "record whole-record".
    for h in &checked {
        rows.push(vec![
            h.strategy.clone(),
            count(h.persisted),
            count(h.duplicates),
            count(h.gaps),
            count(h.witnesses),
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
    table(out, &rows, Text::FirstAndLast);
    for h in &checked {
        for w in h.witness_list.iter().take(2) {
            let _ = writeln!(out, "witness ({}): {w}", h.strategy);
        }
        for t in h.torn_list.iter().take(2) {
            let _ = writeln!(out, "torn read ({}): {t}", h.strategy);
        }
    }
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
    // The bounds note only where a worker died: a run with pauses alone is counted exactly.
    let deaths = summary
        .strategies
        .iter()
        .flat_map(|s| &s.runs)
        .any(|r| r.faults.as_ref().is_some_and(|f| !f.deaths.is_empty()));
    for s in &summary.strategies {
        for (i, r) in s.runs.iter().enumerate() {
            if let Some(f) = &r.faults {
                if std::mem::take(&mut first) {
                    let _ = writeln!(out);
                    if deaths {
                        let _ = writeln!(
                            out,
                            "with deaths, expected is within acknowledged ..= acknowledged + in flight, per slot."
                        );
                    }
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

fn row(cells: &[&str]) -> Vec<String> {
    cells.iter().map(|s| s.to_string()).collect()
}

/// Which columns are words, left-aligned; the rest are figures, right-aligned.
#[derive(Clone, Copy, PartialEq)]
enum Text {
    /// The first column only (a name).
    First,
    /// The first and the last (a name, then free text such as a verdict).
    FirstAndLast,
}

fn table(out: &mut String, rows: &[Vec<String>], text: Text) {
    let cols = rows[0].len();
    let width: Vec<usize> = (0..cols)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            let pad = " ".repeat(width[c] - cell.chars().count());
            let words = match text {
                Text::First => c == 0,
                Text::FirstAndLast => c == 0 || c == cols - 1,
            };
            if words {
                line.push_str(cell);
                line.push_str(&pad);
            } else {
                line.push_str(&pad);
                line.push_str(cell);
            }
            line.push_str("  ");
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
}
