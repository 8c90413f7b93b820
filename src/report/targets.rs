//! A target bench's report and plots: the table engine × isolation × strategy × workers, each
//! point with Hermitage's expected verdict beside the measured one, and the peers beside
//! racepool (pgbench, redis-benchmark) as ratios.

use std::fmt::Write;

use super::matrix::{BenchPoint, BenchSummary, Expected, PointStatus};
use super::svg::{caption, AxisSpec, Dash, Figure, Format, Panel, Series};
use super::units::{percent, plural, rate, ratio, time_ns};
use super::Verdict;
use crate::target::TargetKind;

/// The target points, in the order they were measured.
fn target_points(s: &BenchSummary) -> impl Iterator<Item = &BenchPoint> {
    s.points
        .iter()
        .filter(|p| p.key.engine != TargetKind::Memory && p.runs > 0)
}

/// What the point measured, in the words of the expected verdict: `exact`, `loses 86%`.
pub fn measured(p: &BenchPoint) -> String {
    match (p.status, p.verdict) {
        (PointStatus::Collapsed, _) => "collapsed".into(),
        (_, Verdict::Failed) => format!("**FAILED**: {} lost", p.lost),
        (_, Verdict::RaceCaught) => format!("loses {}", percent(p.loss_fraction)),
        (_, Verdict::Exact | Verdict::RaceMissed) => "exact".into(),
    }
}

/// Whether the measured verdict is the expected one.
fn as_expected(p: &BenchPoint) -> bool {
    let lost = p.lost > 0 || p.verdict == Verdict::Failed;
    match p.expected {
        Some(Expected::Loses) => lost,
        Some(Expected::Exact) => !lost,
        None => true,
    }
}

/// The updates a point's runs were to make: workers × ops, every run.
fn planned(st: &super::matrix::BenchSettings, p: &BenchPoint) -> u64 {
    st.ops_per_worker.unwrap_or(0) * p.key.workers as u64 * p.runs as u64
}

fn level(p: &BenchPoint) -> &'static str {
    p.key.isolation.map_or("–", |l| l.name())
}

/// The head of report.md for a bench with targets.
pub fn render_targets(summary: &BenchSummary) -> String {
    let st = &summary.settings;
    let m = &summary.machine;
    let points: Vec<&BenchPoint> = target_points(summary).collect();
    let mut engines: Vec<TargetKind> = Vec::new();
    for p in &points {
        if !engines.contains(&p.key.engine) {
            engines.push(p.key.engine);
        }
    }
    let mut names: Vec<&str> = engines.iter().map(|e| e.name()).collect();
    if summary
        .points
        .iter()
        .any(|p| p.key.engine == TargetKind::Memory)
    {
        names.push("memory (below)");
    }
    let mut out = format!(
        "# racepool bench on {}, {}\n\n",
        names.join(", "),
        m.started.split('T').next().unwrap_or(&m.started)
    );
    let _ = writeln!(
        out,
        "{}, {}: {} measured, each {} of {} updates per worker (by count{}).\n",
        m.cpu,
        plural(m.cores as u64, "core"),
        plural(points.len() as u64, "point"),
        plural(st.repeat as u64, "run"),
        st.ops_per_worker.unwrap_or(0),
        match st.target_budget_ms {
            Some(ms) => format!(
                ", a run not done after {} told to stop there",
                super::units::time_ms(ms)
            ),
            None => String::new(),
        }
    );

    out.push_str("## What it shows\n\n");
    let correct: Vec<&&BenchPoint> = points
        .iter()
        .filter(|p| p.key.strategy.is_exact())
        .collect();
    let failed: Vec<&&BenchPoint> = correct
        .iter()
        .copied()
        .filter(|p| p.verdict == Verdict::Failed)
        .collect();
    if failed.is_empty() {
        let _ = writeln!(
            out,
            "- Every correct strategy counted every update at all {} of its points.",
            correct.len()
        );
    } else {
        let labels: Vec<String> = failed.iter().map(|p| p.key.label()).collect();
        let _ = writeln!(
            out,
            "- **Lost updates where none may be lost**: {}.",
            labels.join("; ")
        );
    }
    let short: Vec<String> = points
        .iter()
        .filter(|p| p.updates < planned(st, p))
        .map(|p| format!("{} ({} of {})", p.key.label(), p.updates, planned(st, p)))
        .collect();
    if !short.is_empty() {
        let _ = writeln!(
            out,
            "- Stopped by the time cap before their count (updates made of those planned; every one still counted): {}.",
            short.join("; ")
        );
    }
    let matching = points.iter().filter(|p| as_expected(p)).count();
    let _ = writeln!(
        out,
        "- Hermitage's expected verdict held at {matching} of {} points{}",
        points.len(),
        if matching == points.len() {
            ".".to_string()
        } else {
            let off: Vec<String> = points
                .iter()
                .filter(|p| !as_expected(p))
                .map(|p| format!("{} ({})", p.key.label(), measured(p)))
                .collect();
            format!("; not at: {}.", off.join("; "))
        }
    );
    for &e in &engines {
        let racy: Vec<&&BenchPoint> = points
            .iter()
            .filter(|p| p.key.engine == e && !p.key.strategy.is_exact() && p.lost > 0)
            .collect();
        if let Some(worst) = racy
            .iter()
            .max_by(|a, b| a.loss_fraction.total_cmp(&b.loss_fraction))
        {
            let _ = writeln!(
                out,
                "- {}: racy lost updates at {} of its points, up to {} ({}).",
                e.name(),
                racy.len(),
                percent(worst.loss_fraction),
                worst.key.label()
            );
        }
    }

    // The peers' ratios in one line per tool and strategy, by worker count.
    let mut lines: Vec<(String, String)> = Vec::new();
    for p in points.iter().filter(|p| p.peer.is_some()) {
        let peer = p.peer.as_ref().expect("filtered");
        let head = format!(
            "racepool / {} tps, {} {}{}",
            peer.tool,
            p.key.engine.name(),
            p.key.strategy.name(),
            p.key
                .isolation
                .map_or(String::new(), |l| format!(" ({})", l.name()))
        );
        let cell = format!(
            "{} at {}",
            ratio(peer.ratio),
            plural(p.key.workers as u64, "worker")
        );
        match lines.iter_mut().find(|(h, _)| *h == head) {
            Some((_, cells)) => {
                cells.push_str(", ");
                cells.push_str(&cell);
            }
            None => lines.push((head, cell)),
        }
    }
    for (head, cells) in &lines {
        let _ = writeln!(out, "- {head}: {cells}.");
    }

    out.push_str("\n## Engine × isolation × strategy\n\n");
    let _ = writeln!(
        out,
        "Expected: Hermitage's findings (PostgreSQL read committed loses racy's updates, repeatable read and serializable turn them into retried serialization failures; MariaDB/InnoDB loses them under read committed and repeatable read, serializable makes them exact; Redis and files lose them); every other strategy is exact, and so is one worker alone. Updates/s: median{} over runs; latency: every update of every run, merged.\n",
        if st.repeat > 1 { " (min–max)" } else { "" }
    );
    out.push_str("| engine | isolation | strategy | workers | expected | measured | retries/upd | updates/s | p50 | p99 | p99.9 |\n");
    out.push_str("| --- | --- | --- | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: |\n");
    for p in &points {
        let o = &p.ops_per_sec_over_runs;
        let rate_cell = if st.repeat > 1 {
            format!("{} ({}–{})", rate(p.ops_per_sec), rate(o.min), rate(o.max))
        } else {
            rate(p.ops_per_sec)
        };
        let t = |f: fn(&super::Percentiles) -> u64| {
            p.latency_ns
                .as_ref()
                .map_or("–".into(), |l| time_ns(f(l) as f64))
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {}{} | {:.3} | {} | {} | {} | {} |",
            p.key.engine.name(),
            level(p),
            p.key.strategy.name(),
            p.key.workers,
            p.expected.map_or("–", |e| e.name()),
            measured(p),
            if as_expected(p) {
                ""
            } else {
                " (not as expected)"
            },
            p.retries_per_update,
            rate_cell,
            t(|l| l.p50),
            t(|l| l.p99),
            t(|l| l.p999),
        );
    }

    out.push_str("\n## Peers\n\n");
    let peered: Vec<&&BenchPoint> = points.iter().filter(|p| p.peer.is_some()).collect();
    if !peered.is_empty() {
        out.push_str("Each peer ran right after racepool's run at the same point, run for run, with the same statements (pgbench: the target's own `UPDATE … RETURNING`, or `SELECT … FOR UPDATE` and `UPDATE` in one transaction, prepared) or command (`INCR`), the same number of clients and the same updates per client, at the first isolation level benched. Ratio: racepool's median updates/s over the peer's median. The peer's p99: pgbench's from its `-l` log of every transaction, redis-benchmark's as it reports it.\n\n");
        out.push_str("| engine | isolation | strategy | workers | racepool updates/s | peer | peer tps | racepool p99 | peer p99 | racepool / peer |\n");
        out.push_str("| --- | --- | --- | ---: | ---: | --- | ---: | ---: | ---: | ---: |\n");
        for p in &peered {
            let peer = p.peer.as_ref().expect("filtered");
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} ({}–{}) | {} | {} | **{}** |",
                p.key.engine.name(),
                level(p),
                p.key.strategy.name(),
                p.key.workers,
                rate(p.ops_per_sec),
                peer.tool,
                rate(peer.tps.median),
                rate(peer.tps.min),
                rate(peer.tps.max),
                p.latency_ns
                    .as_ref()
                    .map_or("–".into(), |l| time_ns(l.p99 as f64)),
                time_ns(peer.p99_us * 1e3),
                ratio(peer.ratio),
            );
        }
        out.push('\n');
        if peered.iter().any(|p| p.key.engine == TargetKind::Redis) {
            out.push_str("redis-benchmark multiplexes its connections in one process over an event loop; racepool's workers are processes, each blocked in its own round trip, so on a small machine they pay context switches the event loop does not: the Redis ratio includes that cost.\n\n");
        }
    }
    for note in &summary.peer_notes {
        let _ = writeln!(out, "- {note}");
    }
    if peered.is_empty() && summary.peer_notes.is_empty() {
        out.push_str("No peer ran: the peers run beside PostgreSQL `atomic` and `lock` (pgbench) and Redis `atomic` (redis-benchmark).\n");
    }

    out.push_str("\n## Plots\n\n");
    for (file, alt) in TARGET_PLOTS {
        let _ = writeln!(out, "![{alt}]({file})\n");
    }

    out.push_str("## How it was measured\n\n");
    let _ = writeln!(
        out,
        "- Machine: {}, {}, Linux {}; {}; racepool {}; started {}.",
        m.cpu,
        plural(m.cores as u64, "core"),
        m.kernel,
        m.rustc.as_deref().unwrap_or("rustc unknown"),
        super::revision::describe(m.git_revision.as_deref(), m.git_dirty),
        m.started
    );
    let _ = writeln!(out, "- Command: `{}`", m.command.join(" "));
    out.push_str("- Each run makes a fixed count of updates per worker, not as many as fit a time budget: every update is then accounted for (the final value is checked against an exact total, so a loss is a count, not an estimate), the peers make the same number of transactions per client, and a slow strategy is not flattered by a ragged end. Throughput is updates / window (barrier release to the last worker's end), connections opened before the barrier.\n");
    out.push_str("- Every worker is a process with its own connection, opened after the fork. A SQL strategy retries serialization failures and deadlocks; retries/upd counts them (and cas misses, Redis EXEC failures).\n");
    out.push_str("- What each run made on its target (rows, keys, files) is removed as soon as the run is measured: a bench keeps no record (`torture run --store target` does).\n");
    out.push_str("- Every figure at full precision: [summary.csv](summary.csv), [summary.json](summary.json), [points.jsonl](points.jsonl); the machine: [machine.json](machine.json).\n");
    out
}

/// The target plots, with their alt texts.
pub const TARGET_PLOTS: [(&str, &str); 2] = [
    (
        "targets-throughput.svg",
        "Updates per second vs workers, per engine",
    ),
    ("targets-latency.svg", "p99 latency vs workers, per engine"),
];

/// The target plots: one panel per engine, one line per isolation level and strategy.
pub fn target_plots(summary: &BenchSummary) -> Vec<(&'static str, String)> {
    let points: Vec<&BenchPoint> = target_points(summary).collect();
    if points.is_empty() {
        return Vec::new();
    }
    let mut engines: Vec<TargetKind> = Vec::new();
    for p in &points {
        if !engines.contains(&p.key.engine) {
            engines.push(p.key.engine);
        }
    }
    let panel = |e: TargetKind, y: AxisSpec, pick: &dyn Fn(&BenchPoint) -> Option<f64>| {
        let mut lines: Vec<(
            Option<crate::target::sql::Isolation>,
            crate::strategy::StrategyKind,
        )> = Vec::new();
        for p in points.iter().filter(|p| p.key.engine == e) {
            if !lines.contains(&(p.key.isolation, p.key.strategy)) {
                lines.push((p.key.isolation, p.key.strategy));
            }
        }
        let mut strategies: Vec<crate::strategy::StrategyKind> = Vec::new();
        let mut levels: Vec<Option<crate::target::sql::Isolation>> = Vec::new();
        for &(l, s) in &lines {
            if !strategies.contains(&s) {
                strategies.push(s);
            }
            if !levels.contains(&l) {
                levels.push(l);
            }
        }
        Panel {
            title: e.name().into(),
            x: AxisSpec {
                label: "workers (log scale)".into(),
                log: true,
                format: Format::Count,
                ticks: None,
            },
            y,
            series: lines
                .iter()
                .map(|&(l, s)| {
                    let pts: Vec<&&BenchPoint> = points
                        .iter()
                        .filter(|p| {
                            p.key.engine == e && p.key.isolation == l && p.key.strategy == s
                        })
                        .collect();
                    Series {
                        name: match l {
                            Some(l) => format!("{} {}", s.name(), l.name()),
                            None => s.name().into(),
                        },
                        points: pts
                            .iter()
                            .filter_map(|p| pick(p).map(|v| (p.key.workers as f64, v)))
                            .collect(),
                        band: Vec::new(),
                        // One stroke per level: the first solid, then dashed, then dotted.
                        dash: match levels.iter().position(|&x| x == l).unwrap_or(0) {
                            0 => Dash::Solid,
                            1 => Dash::Dashed,
                            _ => Dash::Dotted,
                        },
                        colour: strategies.iter().position(|&x| x == s).unwrap_or(0) % 7,
                    }
                })
                .collect(),
        }
    };
    let caption = caption(summary);
    let throughput = Figure {
        title: "Updates per second by engine, isolation and strategy".into(),
        subtitle: format!(
            "median of {} per point; each worker a process with its own connection",
            plural(summary.settings.repeat as u64, "run")
        ),
        caption: caption.clone(),
        panels: engines
            .iter()
            .map(|&e| {
                panel(
                    e,
                    AxisSpec {
                        label: "updates per second (log scale)".into(),
                        log: true,
                        format: Format::Rate,
                        ticks: None,
                    },
                    &|p| Some(p.ops_per_sec).filter(|&r| r > 0.0),
                )
            })
            .collect(),
        shared_y: true,
    };
    let latency = Figure {
        title: "p99 latency per update by engine, isolation and strategy".into(),
        subtitle: "every update of every run of a point, merged".into(),
        caption,
        panels: engines
            .iter()
            .map(|&e| {
                panel(
                    e,
                    AxisSpec {
                        label: "p99 per update (log scale)".into(),
                        log: true,
                        format: Format::TimeNs,
                        ticks: None,
                    },
                    &|p| p.latency_ns.as_ref().map(|l| l.p99 as f64),
                )
            })
            .collect(),
        shared_y: true,
    };
    vec![
        (TARGET_PLOTS[0].0, throughput.render()),
        (TARGET_PLOTS[1].0, latency.render()),
    ]
}
