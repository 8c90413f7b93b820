//! Line plots written as plain SVG text, and the bench's four figures drawn with them.
//!
//! A figure is a title, a line saying what its lines and bands are, one or more panels side by
//! side, one legend, and a caption with machine, commit and date. Every tick is written by
//! `units`: times as `100 ns`, `1 µs`; rates as `10M`; shares as `20%`.

use std::fmt::Write;

use super::matrix::{layout_name, mode_name, BenchSummary, PointKey, SPECTRUM};
use super::units;
use crate::latency::LatencyMode;
use crate::options::Mode;
use crate::strategy::StrategyKind;

/// How an axis writes its ticks.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Format {
    /// Whole things: `1`, `16`, `1,000`.
    Count,
    /// Per second: `10M`.
    Rate,
    /// Nanoseconds: `100 ns`, `1 µs`, `10 ms`.
    TimeNs,
    /// A fraction shown as a percent: `20%`.
    Percent,
}

impl Format {
    fn tick(self, v: f64) -> String {
        match self {
            Format::Count if v >= 0.0 && v.fract() == 0.0 => units::count(v as u64),
            Format::Count | Format::Rate => units::rate(v),
            Format::TimeNs => units::time_ns(v),
            Format::Percent => units::percent(v),
        }
    }
}

pub struct AxisSpec {
    pub label: String,
    pub log: bool,
    pub format: Format,
    /// Tick positions and labels; None: chosen from the range (y) or the data's values (x).
    pub ticks: Option<Vec<(f64, String)>>,
}

/// One line of a panel; points a log axis cannot show are left out.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    /// (x, low, high) where repeats give a spread: drawn as a shaded band behind the line.
    pub band: Vec<(f64, f64, f64)>,
    pub dash: Dash,
    /// Index into the palette: one colour per strategy, the same in every figure.
    pub colour: usize,
}

/// A line's stroke: solid lines also mark their points.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dash {
    Solid,
    Dashed,
    Dotted,
}

impl Dash {
    /// The SVG attribute that draws it (none for solid).
    fn attr(self) -> &'static str {
        match self {
            Dash::Solid => "",
            Dash::Dashed => r#" stroke-dasharray="6 4""#,
            Dash::Dotted => r#" stroke-dasharray="2 3""#,
        }
    }
}

pub struct Panel {
    /// Above the panel when the figure has several.
    pub title: String,
    pub x: AxisSpec,
    pub y: AxisSpec,
    pub series: Vec<Series>,
}

pub struct Figure {
    pub title: String,
    /// Under the title: the configuration, and what the lines and bands are.
    pub subtitle: String,
    /// At the foot: machine, commit and date.
    pub caption: String,
    pub panels: Vec<Panel>,
    /// One y range for every panel, so their heights compare.
    pub shared_y: bool,
}

const PANEL_W: f64 = 500.0;
const PANEL_W_SPLIT: f64 = 330.0;
const PANEL_H: f64 = 330.0;
const LEFT: f64 = 78.0;
const GAP: f64 = 78.0;
const LEGEND: f64 = 220.0;
const TOP: f64 = 74.0;
const BOTTOM: f64 = 82.0;
const COLOURS: [&str; 8] = [
    "#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f",
];
/// Roughly how wide a character of the 12 px sans-serif is, to keep tick labels apart.
const CHAR_W: f64 = 6.8;

/// Escapes the five characters XML reserves.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

impl Figure {
    pub fn render(&self) -> String {
        let n = self.panels.len().max(1) as f64;
        let pw = if n > 1.0 { PANEL_W_SPLIT } else { PANEL_W };
        let w = LEFT + n * pw + (n - 1.0) * GAP + LEGEND;
        // Taller when the legend needs it (a bench of several targets names many lines).
        let h = (TOP + PANEL_H + BOTTOM).max(TOP + self.legend_height() + BOTTOM);
        let mut svg = String::new();
        let _ = write!(
            svg,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
        );
        let _ = write!(
            svg,
            r##"<rect width="{w}" height="{h}" fill="white"/><text x="{LEFT}" y="24" font-size="16" font-weight="bold">{}</text><text x="{LEFT}" y="44" fill="#444">{}</text>"##,
            escape(&self.title),
            escape(&self.subtitle)
        );
        let shared = self.shared_y.then(|| {
            let values = self.panels.iter().flat_map(|p| p.y_values());
            let log = self.panels.first().is_some_and(|p| p.y.log);
            Axis::fit(values, log, true)
        });
        for (i, panel) in self.panels.iter().enumerate() {
            let left = LEFT + i as f64 * (pw + GAP);
            // Panels that share a y axis name it once, on the first.
            let y_label = i == 0 || !self.shared_y;
            panel.render(&mut svg, left, pw, n > 1.0, shared.as_ref(), y_label);
        }
        self.legend(&mut svg, w - LEGEND + 16.0);
        let _ = write!(
            svg,
            r##"<text x="{LEFT}" y="{}" font-size="11" fill="#666">{}</text></svg>"##,
            h - 12.0,
            escape(&self.caption)
        );
        svg.push('\n');
        svg
    }

    /// Each (name, colour, dash) once, in the order the panels name them.
    fn legend_entries(&self) -> Vec<(&str, usize, Dash)> {
        let mut seen: Vec<(&str, usize, Dash)> = Vec::new();
        for s in self.panels.iter().flat_map(|p| &p.series) {
            let entry = (s.name.as_str(), s.colour, s.dash);
            if !seen.contains(&entry) {
                seen.push(entry);
            }
        }
        seen
    }

    /// How far down the legend reaches below `TOP`.
    fn legend_height(&self) -> f64 {
        8.0 + self
            .legend_entries()
            .iter()
            .map(|(name, _, _)| 8.0 + 15.0 * name.split('\n').count() as f64)
            .sum::<f64>()
    }

    fn legend(&self, svg: &mut String, x: f64) {
        let mut y = TOP + 8.0;
        for (name, colour, dash) in self.legend_entries() {
            let c = COLOURS[colour % COLOURS.len()];
            let dash = dash.attr();
            let _ = write!(
                svg,
                r#"<line x1="{x}" y1="{y}" x2="{}" y2="{y}" stroke="{c}" stroke-width="2"{dash}/>"#,
                x + 24.0
            );
            for (i, line) in name.split('\n').enumerate() {
                let _ = write!(
                    svg,
                    r#"<text x="{}" y="{}">{}</text>"#,
                    x + 30.0,
                    y + 4.0 + 15.0 * i as f64,
                    escape(line)
                );
            }
            y += 8.0 + 15.0 * name.split('\n').count() as f64;
        }
    }
}

impl Panel {
    fn shown(&self, x: f64, y: f64) -> bool {
        x.is_finite() && y.is_finite() && (!self.x.log || x > 0.0) && (!self.y.log || y > 0.0)
    }

    fn y_values(&self) -> Vec<f64> {
        self.series
            .iter()
            .flat_map(|s| {
                let band = s.band.iter().flat_map(|&(x, lo, hi)| [(x, lo), (x, hi)]);
                s.points.iter().copied().chain(band)
            })
            .filter(|&(x, y)| self.shown(x, y))
            .map(|(_, y)| y)
            .collect()
    }

    fn render(
        &self,
        svg: &mut String,
        left: f64,
        pw: f64,
        titled: bool,
        shared: Option<&Axis>,
        y_label: bool,
    ) {
        let ph = PANEL_H;
        let top = TOP;
        if titled {
            let _ = write!(
                svg,
                r#"<text x="{}" y="{}" text-anchor="middle" font-size="13" font-weight="bold">{}</text>"#,
                left + pw / 2.0,
                top - 8.0,
                escape(&self.title)
            );
        }
        let xs: Vec<f64> = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().copied())
            .filter(|&(x, y)| self.shown(x, y))
            .map(|(x, _)| x)
            .collect();
        let ys = self.y_values();
        if xs.is_empty() || ys.is_empty() {
            let _ = write!(
                svg,
                r##"<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#333"/><text x="{}" y="{}" text-anchor="middle">no data</text>"##,
                left + pw / 2.0,
                top + ph / 2.0
            );
            return;
        }
        let x_ticks_given = self.x.ticks.as_ref().map(|t| t.iter().map(|&(x, _)| x));
        let x_axis = Axis::exact(
            xs.iter()
                .copied()
                .chain(x_ticks_given.into_iter().flatten()),
            self.x.log,
        );
        let y_axis = shared
            .cloned()
            .unwrap_or_else(|| Axis::fit(ys.into_iter(), self.y.log, true));
        // A margin at each end, so the first and last points do not sit on the frame.
        let px = |x: f64| left + (0.04 + 0.92 * x_axis.frac(x)) * pw;
        let py = |y: f64| top + (1.0 - y_axis.frac(y)) * ph;

        // Grid and ticks; an x label that would touch the one before drops a row.
        let x_ticks = self.x.ticks.clone().unwrap_or_else(|| {
            let mut v = xs.clone();
            v.sort_by(f64::total_cmp);
            v.dedup();
            v.into_iter().map(|x| (x, self.x.format.tick(x))).collect()
        });
        let mut last_end = [f64::NEG_INFINITY; 2];
        for (x, label) in x_ticks.iter().filter(|(x, _)| self.shown(*x, 1.0)) {
            let cx = px(*x);
            let half = label.chars().count() as f64 * CHAR_W / 2.0;
            let row = usize::from(cx - half < last_end[0] + 4.0);
            last_end[row] = cx + half;
            let _ = write!(
                svg,
                r##"<line x1="{cx:.1}" y1="{top}" x2="{cx:.1}" y2="{}" stroke="#e4e4e4"/><line x1="{cx:.1}" y1="{}" x2="{cx:.1}" y2="{}" stroke="#333"/><text x="{cx:.1}" y="{}" text-anchor="middle">{}</text>"##,
                top + ph,
                top + ph,
                top + ph + 4.0 + 8.0 * row as f64,
                top + ph + 18.0 + 14.0 * row as f64,
                escape(label)
            );
        }
        let y_ticks = self.y.ticks.clone().unwrap_or_else(|| {
            y_axis
                .ticks()
                .into_iter()
                .map(|y| (y, self.y.format.tick(y)))
                .collect()
        });
        for (y, label) in &y_ticks {
            let cy = py(*y);
            let _ = write!(
                svg,
                r##"<line x1="{left}" y1="{cy:.1}" x2="{}" y2="{cy:.1}" stroke="#e4e4e4"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
                left + pw,
                left - 6.0,
                cy + 4.0,
                escape(label)
            );
        }
        let _ = write!(
            svg,
            r##"<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#333"/><text x="{}" y="{}" text-anchor="middle">{}</text><text x="{}" y="{}" text-anchor="middle" transform="rotate(-90 {} {})">{}</text>"##,
            left + pw / 2.0,
            top + ph + 48.0,
            escape(&self.x.label),
            left - 62.0,
            top + ph / 2.0,
            left - 62.0,
            top + ph / 2.0,
            if y_label {
                escape(&self.y.label)
            } else {
                String::new()
            }
        );

        // One series with a spread: a shaded band. Several: whiskers, each series nudged
        // sideways so that overlapping bands do not turn into one grey mass.
        let spread: Vec<&Series> = self.series.iter().filter(|s| !s.band.is_empty()).collect();
        let whiskers = spread.len() > 1;
        let nudge = |s: &Series| {
            spread
                .iter()
                .position(|t| std::ptr::eq(*t, s))
                .map_or(0.0, |i| (i as f64 - (spread.len() - 1) as f64 / 2.0) * 4.0)
        };
        for s in &spread {
            let colour = COLOURS[s.colour % COLOURS.len()];
            let band: Vec<(f64, f64, f64)> = s
                .band
                .iter()
                .copied()
                .filter(|&(x, lo, hi)| self.shown(x, lo) && self.shown(x, hi) && hi > lo)
                .collect();
            if whiskers {
                let dx = nudge(s);
                for &(x, lo, hi) in &band {
                    let (cx, y0, y1) = (px(x) + dx, py(lo), py(hi));
                    let _ = write!(
                        svg,
                        r#"<path d="M{:.1},{y0:.1}h6M{cx:.1},{y0:.1}V{y1:.1}M{:.1},{y1:.1}h6" stroke="{colour}" stroke-width="1.2" stroke-opacity="0.8" fill="none"/>"#,
                        cx - 3.0,
                        cx - 3.0,
                    );
                }
            } else if band.len() > 1 {
                let upper = band.iter().map(|&(x, _, hi)| (px(x), py(hi)));
                let lower = band.iter().rev().map(|&(x, lo, _)| (px(x), py(lo)));
                let path: Vec<String> = upper
                    .chain(lower)
                    .map(|(x, y)| format!("{x:.1},{y:.1}"))
                    .collect();
                let _ = write!(
                    svg,
                    r#"<polygon points="{}" fill="{colour}" fill-opacity="0.15" stroke="none"/>"#,
                    path.join(" ")
                );
            }
        }
        for s in &self.series {
            let colour = COLOURS[s.colour % COLOURS.len()];
            let dx = if whiskers { nudge(s) } else { 0.0 };
            let pts: Vec<(f64, f64)> = s
                .points
                .iter()
                .copied()
                .filter(|&(x, y)| self.shown(x, y))
                .map(|(x, y)| (px(x) + dx, py(y)))
                .collect();
            let dash = s.dash.attr();
            if pts.len() > 1 {
                let path: Vec<String> = pts.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
                let _ = write!(
                    svg,
                    r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>"#,
                    path.join(" ")
                );
            }
            if s.dash == Dash::Solid {
                for (x, y) in &pts {
                    let _ = write!(
                        svg,
                        r#"<circle cx="{x:.1}" cy="{y:.1}" r="3" fill="{colour}"/>"#
                    );
                }
            }
        }
    }
}

/// A linear or log10 axis over a data range.
#[derive(Clone, Debug)]
struct Axis {
    lo: f64,
    hi: f64,
    log: bool,
}

/// 1, 2, 5, 10, 20, 50, …: the steps a log axis is cut at.
fn nice_below(v: f64) -> f64 {
    let mag = 10f64.powf(v.log10().floor());
    [5.0, 2.0, 1.0]
        .iter()
        .map(|m| m * mag)
        .find(|t| *t <= v * (1.0 + 1e-9))
        .unwrap_or(mag)
}

fn nice_above(v: f64) -> f64 {
    let mag = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|t| *t >= v * (1.0 - 1e-9))
        .unwrap_or(10.0 * mag)
}

impl Axis {
    /// The data's own range (the x axis: its ticks are the data's values).
    fn exact(values: impl Iterator<Item = f64>, log: bool) -> Axis {
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for v in values.filter(|v| v.is_finite() && (!log || *v > 0.0)) {
            lo = lo.min(v);
            hi = hi.max(v);
        }
        if !lo.is_finite() {
            (lo, hi) = (1.0, 10.0);
        }
        if hi <= lo {
            hi = if log { lo * 10.0 } else { lo + 1.0 };
        }
        Axis { lo, hi, log }
    }

    /// A range that starts and ends on a tick (the y axis).
    fn fit(values: impl Iterator<Item = f64>, log: bool, from_zero: bool) -> Axis {
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for v in values.filter(|v| v.is_finite() && (!log || *v > 0.0)) {
            lo = lo.min(v);
            hi = hi.max(v);
        }
        if !lo.is_finite() {
            return Axis {
                lo: if log { 1.0 } else { 0.0 },
                hi: 10.0,
                log,
            };
        }
        if log {
            let (mut lo, mut hi) = (nice_below(lo), nice_above(hi));
            if hi <= lo {
                hi = nice_above(lo * 1.5);
            }
            // Wide ranges are read in decades: start and end on one.
            if hi / lo > 1000.0 {
                lo = 10f64.powf(lo.log10().floor());
                hi = 10f64.powf(hi.log10().ceil());
            }
            Axis { lo, hi, log }
        } else {
            let lo = if from_zero { lo.min(0.0) } else { lo };
            let hi = if hi > lo { hi * 1.05 } else { lo + 1.0 };
            Axis { lo, hi, log }
        }
    }

    fn frac(&self, v: f64) -> f64 {
        if self.log {
            (v.log10() - self.lo.log10()) / (self.hi.log10() - self.lo.log10())
        } else {
            (v - self.lo) / (self.hi - self.lo)
        }
    }

    fn ticks(&self) -> Vec<f64> {
        if self.log {
            let decades = (self.hi / self.lo).log10();
            let steps: &[f64] = if decades <= 1.5 {
                &[1.0, 2.0, 5.0]
            } else if decades <= 3.0 {
                &[1.0, 3.0]
            } else {
                &[1.0]
            };
            let mut out = Vec::new();
            let first = self.lo.log10().floor() as i32;
            for e in first..=self.hi.log10().ceil() as i32 {
                for m in steps {
                    let t = m * 10f64.powi(e);
                    if t >= self.lo * (1.0 - 1e-9) && t <= self.hi * (1.0 + 1e-9) {
                        out.push(t);
                    }
                }
            }
            out
        } else {
            let raw = (self.hi - self.lo) / 5.0;
            let mag = 10f64.powf(raw.log10().floor());
            let step = [1.0, 2.0, 5.0, 10.0]
                .iter()
                .map(|m| m * mag)
                .find(|s| *s >= raw)
                .unwrap_or(raw);
            let mut t = (self.lo / step).ceil() * step;
            let mut out = Vec::new();
            while t <= self.hi + step * 1e-9 {
                out.push(t);
                t += step;
            }
            out
        }
    }
}

/// A strategy's palette index: its place in `StrategyKind::ALL`.
fn colour_of(s: StrategyKind) -> usize {
    StrategyKind::ALL.iter().position(|&k| k == s).unwrap_or(0)
}

/// The reference line's colour: grey, after every strategy's.
const REFERENCE_COLOUR: usize = 7;

/// A percentile tick: 0.99999 as "99.999%", without float noise.
fn percentile(q: f64) -> String {
    let text = format!("{:.4}", q * 100.0);
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}%")
}

/// Machine, commit and date, for the foot of every figure.
pub fn caption(summary: &BenchSummary) -> String {
    let m = &summary.machine;
    format!(
        "{}, {}, Linux {} · racepool {} · {}",
        m.cpu,
        units::plural(m.cores as u64, "core"),
        m.kernel,
        super::revision::describe(m.git_revision.as_deref(), m.git_dirty),
        m.started.split('T').next().unwrap_or(&m.started)
    )
}

/// The bench's plots, as (file name, SVG text).
pub fn bench_plots(summary: &BenchSummary) -> Vec<(&'static str, String)> {
    let (mode, slots, layout) = summary.main_axis();
    let strategies = summary.strategies();
    let workers = summary.worker_counts();
    let at = |strategy: StrategyKind, mode: Mode, latency: LatencyMode, w: usize| {
        summary.point(PointKey {
            strategy,
            mode,
            layout,
            slots,
            workers: w,
            latency,
            engine: crate::target::TargetKind::Memory,
            isolation: None,
        })
    };
    let repeat = summary.settings.repeat;
    let runs = if repeat > 1 {
        format!("{repeat} runs")
    } else {
        "1 run".into()
    };
    let where_ = format!(
        "{}, {}, {} layout",
        mode_name(mode),
        units::plural(slots as u64, "slot"),
        layout_name(layout)
    );
    let caption = caption(summary);
    let workers_axis = || AxisSpec {
        label: "workers (log scale)".into(),
        log: true,
        format: Format::Count,
        ticks: None,
    };
    // Throughput is read untimed when the bench measured it so.
    let has_off = summary
        .points
        .iter()
        .any(|p| p.key.latency == LatencyMode::Off);
    let tp_latency = if has_off {
        LatencyMode::Off
    } else {
        LatencyMode::All
    };

    let mut throughput: Vec<Series> = strategies
        .iter()
        .map(|&s| {
            let pts: Vec<_> = workers
                .iter()
                .filter_map(|&w| at(s, mode, tp_latency, w).map(|p| (w as f64, p)))
                .collect();
            Series {
                name: s.name().into(),
                points: pts.iter().map(|(w, p)| (*w, p.ops_per_sec)).collect(),
                band: pts
                    .iter()
                    .map(|(w, p)| {
                        let o = &p.ops_per_sec_over_runs;
                        (*w, o.min, o.max)
                    })
                    .collect(),
                dash: Dash::Solid,
                colour: colour_of(s),
            }
        })
        .collect();
    throughput.push(Series {
        name: format!(
            "ideal: atomic's 1-worker rate\n× min(N, {})",
            units::plural(summary.machine.cores as u64, "core")
        ),
        points: workers
            .iter()
            .filter_map(|&w| {
                at(StrategyKind::Atomic, mode, tp_latency, w)
                    .and_then(|p| p.ideal_ops_per_sec.map(|l| (w as f64, l)))
            })
            .collect(),
        band: Vec::new(),
        dash: Dash::Dashed,
        colour: REFERENCE_COLOUR,
    });

    let tail_panel = |title: &str, pick: fn(&super::Percentiles) -> u64, spread: bool| Panel {
        title: title.into(),
        x: workers_axis(),
        y: AxisSpec {
            label: "latency per update (log scale)".into(),
            log: true,
            format: Format::TimeNs,
            ticks: None,
        },
        series: strategies
            .iter()
            .map(|&s| {
                let pts: Vec<_> = workers
                    .iter()
                    .filter_map(|&w| at(s, mode, LatencyMode::All, w).map(|p| (w as f64, p)))
                    .collect();
                Series {
                    name: s.name().into(),
                    points: pts
                        .iter()
                        .filter_map(|(w, p)| p.latency_ns.as_ref().map(|l| (*w, pick(l) as f64)))
                        .collect(),
                    band: pts
                        .iter()
                        .filter_map(|(w, p)| {
                            let o = if spread {
                                p.p999_ns_over_runs
                            } else {
                                p.p99_ns_over_runs
                            }?;
                            Some((*w, o.min, o.max))
                        })
                        .collect(),
                    dash: Dash::Solid,
                    colour: colour_of(s),
                }
            })
            .collect(),
    };

    let most = workers.last().copied().unwrap_or(1);
    let nines = |q: f64| -(1.0 - q).log10();
    let spectrum: Vec<Series> = strategies
        .iter()
        .map(|&s| Series {
            name: s.name().into(),
            points: at(s, mode, LatencyMode::All, most)
                .map(|p| {
                    p.spectrum
                        .iter()
                        .map(|q| (nines(q.q), q.ns as f64))
                        .collect()
                })
                .unwrap_or_default(),
            band: Vec::new(),
            dash: Dash::Solid,
            colour: colour_of(s),
        })
        .collect();
    let spectrum_ticks = SPECTRUM
        .iter()
        .map(|&q| (nines(q), percentile(q)))
        .collect();

    let loss_panel = |m: Mode| {
        let pts: Vec<_> = workers
            .iter()
            .filter_map(|&w| at(StrategyKind::Racy, m, LatencyMode::All, w).map(|p| (w as f64, p)))
            .collect();
        Panel {
            title: mode_name(m).into(),
            x: workers_axis(),
            y: AxisSpec {
                label: "updates lost".into(),
                log: false,
                format: Format::Percent,
                ticks: None,
            },
            series: vec![Series {
                name: "racy".into(),
                points: pts.iter().map(|(w, p)| (*w, p.loss_fraction)).collect(),
                band: pts
                    .iter()
                    .map(|(w, p)| {
                        let o = &p.loss_fraction_over_runs;
                        (*w, o.min, o.max)
                    })
                    .collect(),
                dash: Dash::Solid,
                colour: colour_of(StrategyKind::Racy),
            }],
        }
    };
    let loss: Vec<Panel> = summary
        .settings
        .modes
        .iter()
        .map(|&m| loss_panel(m))
        .collect();

    let band_note = if repeat > 1 {
        "; bars: min–max over runs"
    } else {
        ""
    };
    vec![
        (
            "throughput.svg",
            Figure {
                title: "Throughput vs workers".into(),
                subtitle: format!(
                    "{where_}, {} · line: median of {runs}{band_note}",
                    if tp_latency == LatencyMode::Off {
                        "untimed"
                    } else {
                        "every update timed"
                    }
                ),
                caption: caption.clone(),
                panels: vec![Panel {
                    title: String::new(),
                    x: workers_axis(),
                    y: AxisSpec {
                        label: "updates per second (log scale)".into(),
                        log: true,
                        format: Format::Rate,
                        ticks: None,
                    },
                    series: throughput,
                }],
                shared_y: false,
            }
            .render(),
        ),
        (
            "latency.svg",
            Figure {
                title: "Tail latency vs workers".into(),
                subtitle: format!(
                    "{where_} · line: every update of {runs} merged{}",
                    if repeat > 1 {
                        "; bars: min–max of the runs' own figure"
                    } else {
                        ""
                    }
                ),
                caption: caption.clone(),
                panels: vec![
                    tail_panel("p99", |l| l.p99, false),
                    tail_panel("p99.9", |l| l.p999, true),
                ],
                shared_y: true,
            }
            .render(),
        ),
        (
            "spectrum.svg",
            Figure {
                title: format!(
                    "Latency percentiles at {}",
                    units::plural(most as u64, "worker")
                ),
                subtitle: format!("{where_} · every update of {runs} merged"),
                caption: caption.clone(),
                panels: vec![Panel {
                    title: String::new(),
                    x: AxisSpec {
                        label: "percentile (log scale of 1 − p)".into(),
                        log: false,
                        format: Format::Percent,
                        ticks: Some(spectrum_ticks),
                    },
                    y: AxisSpec {
                        label: "latency per update (log scale)".into(),
                        log: true,
                        format: Format::TimeNs,
                        ticks: None,
                    },
                    series: spectrum,
                }],
                shared_y: false,
            }
            .render(),
        ),
        (
            "racy-loss.svg",
            Figure {
                title: "racy: share of updates lost".into(),
                subtitle: format!(
                    "{}, {} layout, every update timed · line: over all {runs}{}",
                    units::plural(slots as u64, "slot"),
                    layout_name(layout),
                    if repeat > 1 {
                        "; band: min–max over runs"
                    } else {
                        ""
                    }
                ),
                caption,
                panels: loss,
                shared_y: true,
            }
            .render(),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figure(series: Vec<Series>, y: Format) -> Figure {
        Figure {
            title: "a < b & c".into(),
            subtitle: "s".into(),
            caption: "cpu, 2 cores".into(),
            panels: vec![Panel {
                title: String::new(),
                x: AxisSpec {
                    label: "x".into(),
                    log: true,
                    format: Format::Count,
                    ticks: None,
                },
                y: AxisSpec {
                    label: "y".into(),
                    log: true,
                    format: y,
                    ticks: None,
                },
                series,
            }],
            shared_y: false,
        }
    }

    #[test]
    fn a_plot_is_one_svg_element_with_escaped_text() {
        let svg = figure(
            vec![Series {
                name: "s".into(),
                points: vec![(1.0, 10.0), (10.0, 1000.0), (0.0, 5.0)],
                band: vec![(1.0, 8.0, 12.0), (10.0, 900.0, 1100.0)],
                dash: Dash::Dashed,
                colour: 0,
            }],
            Format::Rate,
        )
        .render();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("a &lt; b &amp; c"));
        assert!(svg.contains("<polygon"), "one series: its band is drawn");
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
    }

    #[test]
    fn time_axes_tick_in_time_units() {
        let svg = figure(
            vec![Series {
                name: "s".into(),
                points: vec![(1.0, 40.0), (1000.0, 2_000_000.0)],
                band: Vec::new(),
                dash: Dash::Solid,
                colour: 0,
            }],
            Format::TimeNs,
        )
        .render();
        for tick in [">10 ns<", ">1 µs<", ">1 ms<", ">10 ms<", ">1,000<"] {
            assert!(svg.contains(tick), "{tick} missing");
        }
        assert!(!svg.contains(">1M<") && !svg.contains(">1k<"));
    }

    #[test]
    fn ticks_and_percentiles_read_well() {
        assert_eq!(Format::Rate.tick(2_500_000.0), "2.5M");
        assert_eq!(Format::Count.tick(1000.0), "1,000");
        assert_eq!(Format::Percent.tick(0.2), "20%");
        assert_eq!(percentile(0.99999), "99.999%");
        assert_eq!(percentile(0.5), "50%");
        assert_eq!(nice_below(14.6e6), 10e6);
        assert_eq!(nice_above(22.5e6), 50e6);
    }
}
