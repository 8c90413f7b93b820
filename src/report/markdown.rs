//! The bench summary as `report.md`: what the figures say in plain words, the plots, a few
//! grids to read values off, and how it was measured. Every point's every figure is in
//! summary.csv and summary.json, not repeated here.

use std::fmt::Write;

use super::matrix::{layout_name, mode_name, BenchPoint, BenchSummary, PointKey, PointStatus};
use super::units::{count, percent, plural, rate, ratio, time_ms, time_ns};
use super::{Spread, Verdict};
use crate::latency::LatencyMode;
use crate::options::Mode;
use crate::region::Layout;
use crate::strategy::StrategyKind;
use crate::target::TargetKind;

type Group = (Mode, usize, Layout, LatencyMode);

struct View<'a> {
    s: &'a BenchSummary,
    strategies: Vec<StrategyKind>,
    workers: Vec<usize>,
}

impl View<'_> {
    fn at(&self, strategy: StrategyKind, g: Group, workers: usize) -> Option<&BenchPoint> {
        self.s.point(PointKey {
            strategy,
            mode: g.0,
            slots: g.1,
            layout: g.2,
            latency: g.3,
            workers,
            engine: TargetKind::Memory,
            isolation: None,
        })
    }

    /// A table with one row per strategy and one column per worker count.
    fn grid(&self, out: &mut String, g: Group, cell: impl Fn(&BenchPoint) -> Option<String>) {
        out.push_str("| strategy |");
        for &w in &self.workers {
            let _ = write!(out, " {} |", plural(w as u64, "worker"));
        }
        out.push_str("\n| --- |");
        for _ in &self.workers {
            out.push_str(" ---: |");
        }
        out.push('\n');
        for &s in &self.strategies {
            let _ = write!(out, "| {} |", s.name());
            for &w in &self.workers {
                let text = self
                    .at(s, g, w)
                    .and_then(&cell)
                    .unwrap_or_else(|| "–".into());
                let _ = write!(out, " {text} |");
            }
            out.push('\n');
        }
    }

    /// Throughput is read untimed where the bench measured it so.
    fn main(&self) -> Group {
        let (m, s, l) = self.s.main_axis();
        let off = (m, s, l, LatencyMode::Off);
        if self.s.groups().contains(&off) {
            off
        } else {
            (m, s, l, LatencyMode::All)
        }
    }

    fn timed(&self) -> Group {
        let (m, s, l) = self.s.main_axis();
        (m, s, l, LatencyMode::All)
    }

    fn most(&self) -> usize {
        self.workers.last().copied().unwrap_or(1)
    }
}

fn group_title(g: Group) -> String {
    format!(
        "{}, {}, {} layout, {}",
        mode_name(g.0),
        plural(g.1 as u64, "slot"),
        layout_name(g.2),
        match g.3 {
            LatencyMode::Off => "untimed".to_string(),
            LatencyMode::All => "every update timed".to_string(),
            other => format!("latency {other}"),
        }
    )
}

/// `12.3M` or, with repeats, `12.3M (12.1M–12.5M)`.
fn rate_cell(p: &BenchPoint, repeat: u32) -> String {
    let o: &Spread = &p.ops_per_sec_over_runs;
    let mark = if p.status == PointStatus::Collapsed {
        " **collapsed**"
    } else {
        ""
    };
    if repeat > 1 {
        format!(
            "{} ({}–{}){mark}",
            rate(p.ops_per_sec),
            rate(o.min),
            rate(o.max)
        )
    } else {
        format!("{}{mark}", rate(p.ops_per_sec))
    }
}

pub fn render_markdown(summary: &BenchSummary) -> String {
    if !summary.has_targets() {
        return render_memory(summary);
    }
    let mut out = super::targets::render_targets(summary);
    let memory = summary.memory_only();
    if !memory.points.is_empty() {
        // The memory points' own report below, its headings one level down.
        out.push('\n');
        for line in render_memory(&memory).lines() {
            if line.starts_with('#') {
                out.push('#');
            }
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The memory target's report: its matrix, plots and ratios.
fn render_memory(summary: &BenchSummary) -> String {
    let v = View {
        s: summary,
        strategies: summary.strategies(),
        workers: summary.worker_counts(),
    };
    let st = &summary.settings;
    let m = &summary.machine;
    let mut out = format!(
        "# racepool bench, {}\n\n",
        m.started.split('T').next().unwrap_or(&m.started)
    );
    let _ = writeln!(
        out,
        "{} on {}, {}: {} measured, {} each.\n",
        if st.quick {
            "The quick matrix"
        } else {
            "The full matrix"
        },
        m.cpu,
        plural(m.cores as u64, "core"),
        plural(summary.points.len() as u64, "point"),
        plural(st.repeat as u64, "run"),
    );
    out.push_str("## What it shows\n\n");
    for line in reading(&v) {
        let _ = writeln!(out, "- {line}");
    }

    out.push_str("\n## Plots\n\n");
    for (file, alt) in [
        ("throughput.svg", "Throughput vs workers"),
        ("latency.svg", "p99 and p99.9 latency vs workers"),
        ("spectrum.svg", "Latency percentile spectrum"),
        ("racy-loss.svg", "Share of updates racy lost"),
    ] {
        let _ = writeln!(out, "![{alt}]({file})\n");
    }

    let _ = writeln!(
        out,
        "## Throughput\n\nUpdates per second, median{} of each point's runs.\n",
        if st.repeat > 1 { " (min–max)" } else { "" }
    );
    for g in summary.groups() {
        let _ = writeln!(out, "### {}\n", group_title(g));
        v.grid(&mut out, g, |p| Some(rate_cell(p, st.repeat)));
        let _ = write!(
            out,
            "| *ideal: atomic's 1-worker rate × min(N, {})* |",
            m.cores
        );
        for &w in &v.workers {
            let l = v
                .at(StrategyKind::Atomic, g, w)
                .and_then(|p| p.ideal_ops_per_sec);
            let _ = write!(out, " {} |", l.map_or("–".into(), rate));
        }
        out.push_str("\n\n");
    }

    out.push_str("## Tail latency\n\np99 / p99.9 of every update of every run, merged.\n\n");
    for g in summary
        .groups()
        .into_iter()
        .filter(|g| g.3 != LatencyMode::Off)
    {
        let _ = writeln!(out, "### {}\n", group_title(g));
        v.grid(&mut out, g, |p| {
            p.latency_ns
                .map(|l| format!("{} / {}", time_ns(l.p99 as f64), time_ns(l.p999 as f64)))
        });
        out.push('\n');
    }

    let main = v.main();
    let _ = writeln!(
        out,
        "## Ratios\n\nMedian throughput over another's at the same point ({}).\n\n### Relative to atomic\n",
        group_title(main)
    );
    let cell = |r: Option<f64>| Some(r.map_or("–".into(), ratio));
    v.grid(&mut out, main, |p| cell(p.vs_atomic));
    out.push_str("\n### Relative to pthread\n\n");
    v.grid(&mut out, main, |p| cell(p.vs_pthread));
    if main.0 == Mode::Processes && st.modes.contains(&Mode::Threads) {
        out.push_str(
            "\n### Processes relative to threads\n\nFor futex-lock: shared futexes relative to private ones.\n\n",
        );
        v.grid(&mut out, main, |p| cell(p.process_vs_thread));
    }
    let groups = summary.groups();
    let overhead: Vec<Group> = groups
        .iter()
        .copied()
        .filter(|g| g.3 == LatencyMode::All && groups.contains(&(g.0, g.1, g.2, LatencyMode::Off)))
        .collect();
    if !overhead.is_empty() {
        out.push_str("\n## What timing costs\n\nUntimed throughput over timed (one clock read per update: each update's end is the next one's start).\n\n");
        for g in overhead {
            let _ = writeln!(
                out,
                "### {}\n",
                group_title((g.0, g.1, g.2, LatencyMode::Off))
            );
            v.grid(&mut out, g, |p| cell(p.untimed_vs_timed));
            out.push('\n');
        }
    }

    out.push_str("\n## How it was measured\n\n");
    let _ = writeln!(
        out,
        "- Machine: {}, {}, Linux {}; {}.",
        m.cpu,
        plural(m.cores as u64, "core"),
        m.kernel,
        m.rustc.as_deref().unwrap_or("rustc unknown")
    );
    let _ = writeln!(
        out,
        "- Built from: racepool {}; started {}.",
        match &m.git_revision {
            Some(c) => format!(
                "`{c}`{}",
                match m.git_dirty {
                    Some(true) => " with uncommitted changes",
                    Some(false) => "",
                    None => " (uncommitted changes unknown)",
                }
            ),
            None => "of an unknown commit".into(),
        },
        m.started
    );
    let _ = writeln!(out, "- Command: `{}`", m.command.join(" "));
    let _ = writeln!(
        out,
        "- Each point: {}{}, each told to stop after max({}, workers × {}); a run still going at {}× that is stopped and its point marked collapsed. Throughput is updates / window (barrier release to the last worker's end).",
        plural(st.repeat as u64, "measured run"),
        if st.warmup {
            " after one unmeasured warm-up run"
        } else {
            ""
        },
        time_ms(st.budget_ms),
        time_ms(st.budget_per_worker_ms),
        st.cap_factor
    );
    out.push_str("- Every figure of every point, at full precision: [summary.csv](summary.csv) (one row per point), [summary.json](summary.json) and [points.jsonl](points.jsonl) (the same points, one JSON object a line); the machine alone: [machine.json](machine.json).\n");
    out
}

/// The figures in plain words, most important first.
fn reading(v: &View<'_>) -> Vec<String> {
    let s = v.s;
    let mut lines = Vec::new();
    let main = v.main();
    let timed = v.timed();
    let most = v.most();

    // Correctness first: it is what racepool is for.
    let failed: Vec<&BenchPoint> = s
        .points
        .iter()
        .filter(|p| p.verdict == Verdict::Failed)
        .collect();
    if failed.is_empty() {
        let exact = s
            .points
            .iter()
            .filter(|p| p.key.strategy.is_exact())
            .count();
        lines.push(format!(
            "Nothing was lost: every strategy that promises exactness counted every update at all {} of its points.",
            count(exact as u64)
        ));
    } else {
        lines.push(format!(
            "**FAILED**: a strategy that promises exactness lost updates at {}: {}.",
            plural(failed.len() as u64, "point"),
            failed
                .iter()
                .map(|p| p.key.label())
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    let racy: Vec<&BenchPoint> = s
        .points
        .iter()
        .filter(|p| p.key.strategy == StrategyKind::Racy && p.runs > 0)
        .collect();
    if let Some(worst) = racy
        .iter()
        .max_by(|a, b| a.loss_fraction.total_cmp(&b.loss_fraction))
    {
        let lossy = racy.iter().filter(|p| p.lost > 0).count();
        if worst.lost > 0 {
            lines.push(format!(
                "racy, the plain read-then-write, lost updates at {lossy} of its {} points, up to {} of them ({}, {}).",
                racy.len(),
                percent(worst.loss_fraction),
                mode_name(worst.key.mode),
                plural(worst.key.workers as u64, "worker")
            ));
        } else {
            lines.push(format!(
                "racy lost nothing at any of its {} points: the race was not caught (too few workers or too short a budget).",
                racy.len()
            ));
        }
    }

    // Who is fastest, and how far from ideal scaling.
    let fastest: Vec<(usize, &BenchPoint)> = v
        .workers
        .iter()
        .filter_map(|&w| {
            v.strategies
                .iter()
                .filter(|k| k.is_exact())
                .filter_map(|&k| v.at(k, main, w))
                .filter(|p| p.verdict == Verdict::Exact)
                .max_by(|a, b| a.ops_per_sec.total_cmp(&b.ops_per_sec))
                .map(|p| (w, p))
        })
        .collect();
    if let (Some((w0, first)), Some((wn, last))) = (fastest.first(), fastest.last()) {
        let same = fastest
            .iter()
            .all(|(_, p)| p.key.strategy == first.key.strategy);
        let at = format!("({})", group_title(main));
        if same {
            lines.push(format!(
                "{} was the fastest exact strategy at every worker count {at}: {}/s at {}, {}/s at {}.",
                first.key.strategy.name(),
                rate(first.ops_per_sec),
                plural(*w0 as u64, "worker"),
                rate(last.ops_per_sec),
                plural(*wn as u64, "worker")
            ));
        } else {
            lines.push(format!(
                "The fastest exact strategy {at}: {}.",
                fastest
                    .iter()
                    .map(|(w, p)| format!(
                        "{} at {} ({}/s)",
                        p.key.strategy.name(),
                        plural(*w as u64, "worker"),
                        rate(p.ops_per_sec)
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if let Some(ideal) = last.ideal_ops_per_sec.filter(|_| *wn > 1) {
            let share = last.ops_per_sec / ideal;
            lines.push(format!(
                "More workers did not mean more updates: at {} {} reached {} of the ideal {}/s (its 1-worker rate × min(N, {})), because every update goes through the same {}.",
                plural(*wn as u64, "worker"),
                last.key.strategy.name(),
                percent(share),
                rate(ideal),
                plural(s.machine.cores as u64, "core"),
                if main.1 == 1 { "counter's cache line" } else { "few cache lines" }
            ));
        }
    }

    // The tail at the most workers: the best and the worst exact strategy.
    let tails: Vec<(StrategyKind, u64, f64)> = v
        .strategies
        .iter()
        .filter(|k| k.is_exact())
        .filter_map(|&k| v.at(k, timed, most))
        .filter_map(|p| {
            p.latency_ns
                .map(|l| (p.key.strategy, l.p999, p.ops_per_sec))
        })
        .collect();
    let best = tails.iter().min_by_key(|t| t.1);
    let worst = tails.iter().max_by_key(|t| t.1);
    if let (Some(b), Some(w)) = (best, worst) {
        if b.0 != w.0 {
            lines.push(format!(
                "At {}, one update in a thousand took longer than {} with {} (p99.9), but only {} with {}, which ran at {} {}'s throughput.",
                plural(most as u64, "worker"),
                time_ns(w.1 as f64),
                w.0.name(),
                time_ns(b.1 as f64),
                b.0.name(),
                ratio(b.2 / w.2.max(f64::MIN_POSITIVE)),
                w.0.name()
            ));
        }
    }

    let spin: Vec<(usize, f64)> = v
        .workers
        .iter()
        .filter_map(|&w| {
            v.at(StrategyKind::SpinLock, main, w)
                .map(|p| (w, p.ops_per_sec))
        })
        .collect();
    let peak = spin.iter().map(|x| x.1).fold(0.0, f64::max);
    if let (true, Some(&(w, r))) = (peak > 0.0, spin.last()) {
        lines.push(format!(
            "spin-lock ran at {} of its peak at {} ({}/s): {}.",
            percent(r / peak),
            plural(w as u64, "worker"),
            rate(r),
            if r < peak / 10.0 {
                "its waiters burn the time slices the lock holder needs"
            } else {
                "its backoff yields the CPU to the holder"
            }
        ));
    }

    let overhead: Vec<f64> = v
        .strategies
        .iter()
        .filter_map(|&k| v.at(k, timed, 1).and_then(|p| p.untimed_vs_timed))
        .collect();
    if !overhead.is_empty() {
        let sp = Spread::of(overhead);
        lines.push(format!(
            "Timing every update is not free: at 1 worker the untimed runs were {}–{} faster, so read throughput from the untimed figures and latency from the timed ones.",
            ratio(sp.min),
            ratio(sp.max)
        ));
    }

    let spawns: Vec<f64> = s
        .points
        .iter()
        .filter(|p| p.key.mode == Mode::Processes && p.key.workers == most && p.runs > 0)
        .map(|p| p.spawn_ms)
        .collect();
    if !spawns.is_empty() && most > 1 {
        let sp = Spread::of(spawns);
        lines.push(format!(
            "{} were forked and waiting at the start barrier in a median {} (worst {}).",
            plural(most as u64, "worker process"),
            time_ms(sp.median),
            time_ms(sp.max)
        ));
    }

    let collapsed: Vec<String> = s
        .points
        .iter()
        .filter(|p| p.status == PointStatus::Collapsed)
        .map(|p| p.key.label())
        .collect();
    if collapsed.is_empty() {
        lines.push(format!(
            "Every run stopped on time: no point reached the {}× cap.",
            s.settings.cap_factor
        ));
    } else {
        lines.push(format!(
            "Stopped at the {}× cap (collapsed): {}.",
            s.settings.cap_factor,
            collapsed.join("; ")
        ));
    }
    lines
}
