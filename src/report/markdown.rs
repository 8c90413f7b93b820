//! The bench summary as `report.md`: a generated reading, then tables, then every point.

use std::fmt::Write;

use super::csv::{status_name, verdict_name};
use super::matrix::{layout_name, mode_name, BenchPoint, BenchSummary, PointKey, PointStatus};
use super::Verdict;
use crate::latency::LatencyMode;
use crate::options::Mode;
use crate::region::Layout;
use crate::strategy::StrategyKind;

type Group = (Mode, usize, Layout, LatencyMode);

/// A rate with three significant figures and an SI suffix: 12.3M, 850k, 42.0.
pub fn rate(v: f64) -> String {
    let (d, s) = if v >= 1e9 {
        (1e9, "G")
    } else if v >= 1e6 {
        (1e6, "M")
    } else if v >= 1e3 {
        (1e3, "k")
    } else {
        (1.0, "")
    };
    let x = v / d;
    let digits = if x >= 100.0 {
        0
    } else if x >= 10.0 {
        1
    } else {
        2
    };
    format!("{x:.digits$}{s}")
}

fn micros(ns: u64) -> String {
    let us = ns as f64 / 1e3;
    if us >= 100.0 {
        format!("{us:.0}")
    } else if us >= 10.0 {
        format!("{us:.1}")
    } else {
        format!("{us:.2}")
    }
}

fn ratio(r: Option<f64>) -> String {
    r.map_or("–".into(), |r| format!("{r:.2}×"))
}

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
        })
    }

    /// A table with one row per strategy and one column per worker count.
    fn grid(&self, out: &mut String, g: Group, cell: impl Fn(&BenchPoint) -> Option<String>) {
        out.push_str("| strategy |");
        for w in &self.workers {
            let _ = write!(out, " {w} |");
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
    fn throughput_latency(&self) -> LatencyMode {
        let (m, s, l) = self.s.main_axis();
        if self.s.groups().contains(&(m, s, l, LatencyMode::Off)) {
            LatencyMode::Off
        } else {
            LatencyMode::All
        }
    }

    fn main(&self) -> Group {
        let (m, s, l) = self.s.main_axis();
        (m, s, l, self.throughput_latency())
    }
}

fn group_title(g: Group) -> String {
    format!(
        "{}, {} slot(s), {}, latency {}",
        mode_name(g.0),
        g.1,
        layout_name(g.2),
        g.3
    )
}

pub fn render_markdown(summary: &BenchSummary) -> String {
    let v = View {
        s: summary,
        strategies: summary.strategies(),
        workers: summary.worker_counts(),
    };
    let st = &summary.settings;
    let m = &summary.machine;
    let mut out = String::from("# racepool bench\n\n");
    let _ = writeln!(
        out,
        "- Machine: {} ({} cores), Linux {}; {}; git {}",
        m.cpu,
        m.cores,
        m.kernel,
        m.rustc.as_deref().unwrap_or("rustc unknown"),
        m.git_revision.as_deref().unwrap_or("unknown")
    );
    let _ = writeln!(out, "- Command: `{}`", m.command.join(" "));
    let _ = writeln!(
        out,
        "- Each point: {} measured run(s){}, each told to stop after max({} ms, workers × {} ms) (a run still going at {}× that is stopped and its point marked collapsed). Throughput is updates / window (barrier release to the last worker's end), median [min–max] over runs. Latency merges every timed update of every run.",
        st.repeat,
        if st.warmup {
            " after one unmeasured warm-up run"
        } else {
            ""
        },
        st.budget_ms,
        st.budget_per_worker_ms,
        st.cap_factor
    );
    let _ = writeln!(
        out,
        "- {} point(s) measured; every exact strategy exact: **{}**.\n",
        summary.points.len(),
        if summary.all_exact { "yes" } else { "NO" }
    );

    out.push_str("## Reading\n\n");
    for line in reading(&v) {
        let _ = writeln!(out, "- {line}");
    }

    out.push_str("\n## Throughput (updates/s, median [min–max])\n\n");
    for g in summary.groups() {
        let _ = writeln!(out, "### {}\n", group_title(g));
        v.grid(&mut out, g, |p| {
            let mark = if p.status == PointStatus::Collapsed {
                " **collapsed**"
            } else {
                ""
            };
            Some(format!(
                "{} [{}–{}]{mark}",
                rate(p.ops_per_sec.median),
                rate(p.ops_per_sec.min),
                rate(p.ops_per_sec.max)
            ))
        });
        let _ = write!(out, "| linear (atomic at 1 × min(N, {})) |", m.cores);
        for &w in &v.workers {
            let l = v
                .at(StrategyKind::Atomic, g, w)
                .and_then(|p| p.linear_ops_per_sec);
            let _ = write!(out, " {} |", l.map_or("–".into(), rate));
        }
        out.push_str("\n\n");
    }

    out.push_str("## Latency (p99 / p99.9 per update, µs)\n\n");
    for g in summary
        .groups()
        .into_iter()
        .filter(|g| g.3 != LatencyMode::Off)
    {
        let _ = writeln!(out, "### {}\n", group_title(g));
        v.grid(&mut out, g, |p| {
            p.latency_ns
                .map(|l| format!("{} / {}", micros(l.p99), micros(l.p999)))
        });
        out.push('\n');
    }

    let main = v.main();
    let _ = writeln!(
        out,
        "## Ratios ({})\n\n### Throughput relative to atomic\n",
        group_title(main)
    );
    v.grid(&mut out, main, |p| Some(ratio(p.vs_atomic)));
    out.push_str("\n### Throughput relative to pthread\n\n");
    v.grid(&mut out, main, |p| Some(ratio(p.vs_pthread)));
    if main.0 == Mode::Processes {
        out.push_str(
            "\n### Processes relative to threads (for futex-lock: shared futex relative to private)\n\n",
        );
        v.grid(&mut out, main, |p| Some(ratio(p.process_vs_thread)));
    }
    out.push_str("\n## Instrumentation overhead (throughput untimed / timed)\n\n");
    let groups = summary.groups();
    for g in groups.iter().filter(|g| g.3 == LatencyMode::All) {
        if !groups.contains(&(g.0, g.1, g.2, LatencyMode::Off)) {
            continue;
        }
        let _ = writeln!(
            out,
            "### {}, {} slot(s), {}\n",
            mode_name(g.0),
            g.1,
            layout_name(g.2)
        );
        v.grid(&mut out, *g, |p| Some(ratio(p.untimed_vs_timed)));
        out.push('\n');
    }

    out.push_str("\n## Every point\n\n");
    out.push_str("| strategy | mode | layout | slots | workers | latency | status | verdict | runs | ops/s median | ops/s min | ops/s max | p50 ns | p99 ns | p99.9 ns | loss rate | retries/update | waits/update | fairness | starved | spawn ms |\n");
    out.push_str("| --- | --- | --- | ---: | ---: | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for p in &summary.points {
        let k = &p.key;
        let lat = |f: fn(&super::Percentiles) -> u64| {
            p.latency_ns
                .as_ref()
                .map_or("–".into(), |l| f(l).to_string())
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.0} | {:.0} | {:.0} | {} | {} | {} | {:.6} | {:.3} | {:.3} | {:.3} | {} | {:.1} |",
            k.strategy.name(),
            mode_name(k.mode),
            layout_name(k.layout),
            k.slots,
            k.workers,
            k.latency,
            status_name(p.status),
            verdict_name(p.verdict),
            p.runs,
            p.ops_per_sec.median,
            p.ops_per_sec.min,
            p.ops_per_sec.max,
            lat(|l| l.p50),
            lat(|l| l.p99),
            lat(|l| l.p999),
            p.loss_rate,
            p.retries_per_update,
            p.waits_per_update,
            p.fairness,
            p.starved,
            p.spawn_ms
        );
    }
    out.push_str("\nfairness = slowest worker's rate / median worker's rate (median over runs); starved = workers below a tenth of the median.\n");
    out
}

/// Short sentences read off the tables.
fn reading(v: &View<'_>) -> Vec<String> {
    let s = v.s;
    let mut lines = Vec::new();
    let main = v.main();
    let (mode, slots, layout) = s.main_axis();
    let timed = (mode, slots, layout, LatencyMode::All);
    let most = v.workers.last().copied().unwrap_or(1);

    let fastest: Vec<String> = v
        .workers
        .iter()
        .filter_map(|&w| {
            v.strategies
                .iter()
                .filter(|k| k.is_exact())
                .filter_map(|&k| v.at(k, main, w))
                .filter(|p| p.verdict == Verdict::Exact)
                .max_by(|a, b| a.ops_per_sec.median.total_cmp(&b.ops_per_sec.median))
                .map(|p| {
                    format!(
                        "{w}: {} ({})",
                        p.key.strategy.name(),
                        rate(p.ops_per_sec.median)
                    )
                })
        })
        .collect();
    if !fastest.is_empty() {
        lines.push(format!(
            "Fastest exact strategy per worker count ({}): {}.",
            group_title(main),
            fastest.join("; ")
        ));
    }

    let collapsed: Vec<String> = s
        .points
        .iter()
        .filter(|p| p.status == PointStatus::Collapsed)
        .map(|p| p.key.label())
        .collect();
    if collapsed.is_empty() {
        lines.push(format!("No point hit the {}× cap.", s.settings.cap_factor));
    } else {
        lines.push(format!(
            "Collapsed (stopped at the {}× cap): {}.",
            s.settings.cap_factor,
            collapsed.join("; ")
        ));
    }
    let spin: Vec<(usize, f64)> = v
        .workers
        .iter()
        .filter_map(|&w| {
            v.at(StrategyKind::SpinLock, main, w)
                .map(|p| (w, p.ops_per_sec.median))
        })
        .collect();
    let peak = spin.iter().map(|x| x.1).fold(0.0, f64::max);
    if peak > 0.0 {
        match spin.iter().find(|x| x.1 < peak / 10.0) {
            Some((w, r)) => lines.push(format!(
                "spin-lock falls below a tenth of its peak ({}) at {w} workers ({}).",
                rate(peak),
                rate(*r)
            )),
            None => lines.push(format!(
                "spin-lock stays above a tenth of its peak ({}) at every worker count measured ({} at {most} workers): its backoff yields the CPU.",
                rate(peak),
                spin.last().map_or("–".into(), |x| rate(x.1))
            )),
        }
    }

    if let (Some(f), Some(p)) = (
        v.at(StrategyKind::FutexLock, timed, most),
        v.at(StrategyKind::Pthread, timed, most),
    ) {
        let tail = match (f.latency_ns, p.latency_ns) {
            (Some(a), Some(b)) => format!(
                "p99.9 {} µs vs {} µs ({})",
                micros(a.p999),
                micros(b.p999),
                if a.p999 <= b.p999 {
                    "no worse"
                } else {
                    "worse"
                }
            ),
            _ => "no latency figures".into(),
        };
        let r = f.ops_per_sec.median / p.ops_per_sec.median.max(f64::MIN_POSITIVE);
        lines.push(format!(
            "futex-lock vs pthread at {most} workers ({}): {r:.2}× throughput (goal ≥ 1.0×: {}), {tail}.",
            group_title(timed),
            if r >= 1.0 { "met" } else { "not met" }
        ));
    }

    let one: Vec<(StrategyKind, f64)> =
        [StrategyKind::Atomic, StrategyKind::Cas, StrategyKind::Racy]
            .iter()
            .filter_map(|&k| {
                v.at(k, (mode, slots, layout, LatencyMode::Off), 1)
                    .map(|p| (k, p.ops_per_sec.median))
            })
            .collect();
    if one.len() == 3 {
        let hi = one.iter().map(|x| x.1).fold(0.0, f64::max);
        let lo = one.iter().map(|x| x.1).fold(f64::INFINITY, f64::min);
        let spread = 1.0 - lo / hi;
        lines.push(format!(
            "Untimed at 1 worker: {}: the slowest is {:.0}% below the fastest (goal within 10%: {}).",
            one.iter()
                .map(|(k, r)| format!("{} {}", k.name(), rate(*r)))
                .collect::<Vec<_>>()
                .join(", "),
            spread * 100.0,
            if spread <= 0.10 { "met" } else { "not met" }
        ));
    }

    let overhead: Vec<String> = v
        .strategies
        .iter()
        .filter_map(|&k| {
            v.at(k, timed, 1)
                .and_then(|p| p.untimed_vs_timed)
                .map(|r| format!("{} {r:.2}×", k.name()))
        })
        .collect();
    if !overhead.is_empty() {
        lines.push(format!(
            "What timing every update costs at 1 worker (untimed / timed throughput): {}.",
            overhead.join(", ")
        ));
    }

    if s.settings.modes.len() > 1 {
        let procs = (Mode::Processes, slots, layout, main.3);
        let pt: Vec<String> = v
            .strategies
            .iter()
            .filter_map(|&k| {
                v.at(k, procs, most)
                    .and_then(|p| p.process_vs_thread)
                    .map(|r| format!("{} {r:.2}×", k.name()))
            })
            .collect();
        if !pt.is_empty() {
            lines.push(format!(
                "Processes / threads at {most} workers: {}.",
                pt.join(", ")
            ));
        }
        let fx: Vec<String> = v
            .workers
            .iter()
            .filter_map(|&w| {
                v.at(StrategyKind::FutexLock, procs, w)
                    .and_then(|p| p.process_vs_thread)
                    .map(|r| format!("{w}: {r:.2}×"))
            })
            .collect();
        if !fx.is_empty() {
            lines.push(format!(
                "Shared / private futex by workers (futex-lock in processes / in threads: a proxy, since the modes also differ in address spaces and scheduling): {}.",
                fx.join(", ")
            ));
        }
    }

    let spawns: Vec<f64> = s
        .points
        .iter()
        .filter(|p| p.key.mode == Mode::Processes && p.key.workers == most && p.runs > 0)
        .map(|p| p.spawn_ms)
        .collect();
    if !spawns.is_empty() {
        let sp = super::matrix::Spread::of(spawns);
        lines.push(format!(
            "{most} workers forked and at the start barrier: median {:.0} ms over points, worst {:.0} ms (goal < 150 ms: {}).",
            sp.median,
            sp.max,
            if sp.median < 150.0 { "met" } else { "not met" }
        ));
    }
    if let Some(r) = s
        .points
        .iter()
        .filter(|p| p.key.strategy == StrategyKind::Racy)
        .max_by(|a, b| a.loss_rate.total_cmp(&b.loss_rate))
    {
        lines.push(format!(
            "racy lost up to {:.2}% of its updates ({}); every exact strategy exact: {}.",
            r.loss_rate * 100.0,
            r.key.label(),
            if s.all_exact { "yes" } else { "NO" }
        ));
    }
    lines
}
