//! Line plots written as plain SVG text, and the bench's four plots drawn with them.

use std::fmt::Write;

use super::matrix::{BenchSummary, PointKey};
use crate::latency::LatencyMode;
use crate::options::Mode;
use crate::strategy::StrategyKind;

/// One line of a plot; points with a coordinate a log axis cannot show are left out.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    pub dashed: bool,
    /// Index into the palette: one colour per strategy, the same in every plot.
    pub colour: usize,
}

pub struct Plot {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub x_log: bool,
    pub y_log: bool,
    /// Tick positions and labels on x; None: the distinct x values of the data.
    pub x_ticks: Option<Vec<(f64, String)>>,
    pub series: Vec<Series>,
}

const W: f64 = 760.0;
const H: f64 = 460.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 190.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 60.0;
const COLOURS: [&str; 8] = [
    "#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f",
];

/// Escapes the five characters XML reserves.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

impl Plot {
    pub fn render(&self) -> String {
        let shown = |x: f64, y: f64| {
            x.is_finite() && y.is_finite() && (!self.x_log || x > 0.0) && (!self.y_log || y > 0.0)
        };
        let all: Vec<(f64, f64)> = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().copied())
            .filter(|&(x, y)| shown(x, y))
            .collect();
        let mut svg = String::new();
        let _ = write!(
            svg,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
        );
        let _ = write!(
            svg,
            r#"<rect width="{W}" height="{H}" fill="white"/><text x="{}" y="24" text-anchor="middle" font-size="15">{}</text>"#,
            (LEFT + W - RIGHT) / 2.0,
            escape(&self.title)
        );
        if all.is_empty() {
            let _ = write!(
                svg,
                r#"<text x="{}" y="{}" text-anchor="middle">no data</text></svg>"#,
                W / 2.0,
                H / 2.0
            );
            return svg;
        }
        let x_axis = Axis::fit(all.iter().map(|p| p.0), self.x_log, false);
        let y_axis = Axis::fit(all.iter().map(|p| p.1), self.y_log, true);
        let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
        let px = |x: f64| LEFT + x_axis.frac(x) * pw;
        let py = |y: f64| TOP + (1.0 - y_axis.frac(y)) * ph;

        // Frame, grid and ticks.
        let _ = write!(
            svg,
            r##"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>"##
        );
        let x_ticks = self.x_ticks.clone().unwrap_or_else(|| {
            let mut xs: Vec<f64> = all.iter().map(|p| p.0).collect();
            xs.sort_by(f64::total_cmp);
            xs.dedup();
            xs.into_iter().map(|x| (x, number(x))).collect()
        });
        for (x, label) in x_ticks.iter().filter(|(x, _)| shown(*x, 1.0)) {
            let _ = write!(
                svg,
                r##"<line x1="{0:.1}" y1="{TOP}" x2="{0:.1}" y2="{1}" stroke="#ddd"/><text x="{0:.1}" y="{2}" text-anchor="middle">{3}</text>"##,
                px(*x),
                TOP + ph,
                TOP + ph + 18.0,
                escape(label)
            );
        }
        for y in y_axis.ticks() {
            let _ = write!(
                svg,
                r##"<line x1="{LEFT}" y1="{0:.1}" x2="{1}" y2="{0:.1}" stroke="#ddd"/><text x="{2}" y="{3:.1}" text-anchor="end">{4}</text>"##,
                py(y),
                LEFT + pw,
                LEFT - 6.0,
                py(y) + 4.0,
                number(y)
            );
        }
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="middle">{}</text><text x="18" y="{}" text-anchor="middle" transform="rotate(-90 18 {})">{}</text>"#,
            LEFT + pw / 2.0,
            H - 16.0,
            escape(&self.x_label),
            TOP + ph / 2.0,
            TOP + ph / 2.0,
            escape(&self.y_label)
        );

        // Lines, markers and the legend.
        for (i, s) in self.series.iter().enumerate() {
            let colour = COLOURS[s.colour % COLOURS.len()];
            let pts: Vec<(f64, f64)> = s
                .points
                .iter()
                .copied()
                .filter(|&(x, y)| shown(x, y))
                .map(|(x, y)| (px(x), py(y)))
                .collect();
            let dash = if s.dashed {
                r#" stroke-dasharray="6 4""#
            } else {
                ""
            };
            if pts.len() > 1 {
                let path: Vec<String> = pts.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
                let _ = write!(
                    svg,
                    r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>"#,
                    path.join(" ")
                );
            }
            for (x, y) in &pts {
                let _ = write!(
                    svg,
                    r#"<circle cx="{x:.1}" cy="{y:.1}" r="3" fill="{colour}"/>"#
                );
            }
            let ly = TOP + 10.0 + 20.0 * i as f64;
            let lx = W - RIGHT + 14.0;
            let _ = write!(
                svg,
                r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{colour}" stroke-width="2"{dash}/><text x="{}" y="{}">{}</text>"#,
                lx + 24.0,
                lx + 30.0,
                ly + 4.0,
                escape(&s.name)
            );
        }
        svg.push_str("</svg>\n");
        svg
    }
}

/// A linear or log10 axis over a data range.
struct Axis {
    lo: f64,
    hi: f64,
    log: bool,
}

impl Axis {
    fn fit(values: impl Iterator<Item = f64>, log: bool, from_zero: bool) -> Axis {
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for v in values {
            lo = lo.min(v);
            hi = hi.max(v);
        }
        if log {
            let (lo, hi) = (lo.log10().floor(), hi.log10().ceil());
            Axis {
                lo,
                hi: if hi > lo { hi } else { lo + 1.0 },
                log,
            }
        } else {
            let lo = if from_zero { lo.min(0.0) } else { lo };
            let hi = if hi > lo { hi * 1.05 } else { lo + 1.0 };
            Axis { lo, hi, log }
        }
    }

    fn frac(&self, v: f64) -> f64 {
        let v = if self.log { v.log10() } else { v };
        (v - self.lo) / (self.hi - self.lo)
    }

    fn ticks(&self) -> Vec<f64> {
        if self.log {
            (self.lo as i32..=self.hi as i32)
                .map(|e| 10f64.powi(e))
                .collect()
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

/// The `linear` reference line's colour: after every strategy's.
const LINEAR_COLOUR: usize = StrategyKind::ALL.len() + 1;

/// A percentile tick: 0.99999 as "99.999%", without float noise.
fn percent(q: f64) -> String {
    let text = format!("{:.4}", q * 100.0);
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}%")
}

/// A short axis label: 1, 250, 1.5k, 12M, 0.05.
fn number(v: f64) -> String {
    let a = v.abs();
    let trim = |s: String| {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    };
    if a >= 1e9 {
        format!("{}G", trim(format!("{:.1}", v / 1e9)))
    } else if a >= 1e6 {
        format!("{}M", trim(format!("{:.1}", v / 1e6)))
    } else if a >= 1e3 {
        format!("{}k", trim(format!("{:.1}", v / 1e3)))
    } else if a >= 1.0 || a == 0.0 {
        trim(format!("{v:.1}"))
    } else {
        trim(format!("{v:.3}"))
    }
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
        })
    };
    let where_ = format!(
        "{}, {slots} slot(s), {}",
        super::matrix::mode_name(mode),
        super::matrix::layout_name(layout)
    );
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
        .map(|&s| Series {
            name: s.name().into(),
            points: workers
                .iter()
                .filter_map(|&w| {
                    at(s, mode, tp_latency, w).map(|p| (w as f64, p.ops_per_sec.median))
                })
                .collect(),
            dashed: false,
            colour: colour_of(s),
        })
        .collect();
    throughput.push(Series {
        name: "linear (atomic)".into(),
        points: workers
            .iter()
            .filter_map(|&w| {
                at(StrategyKind::Atomic, mode, tp_latency, w)
                    .and_then(|p| p.linear_ops_per_sec.map(|l| (w as f64, l)))
            })
            .collect(),
        dashed: true,
        colour: LINEAR_COLOUR,
    });

    let mut tails = Vec::new();
    for &s in &strategies {
        for (name, pick, dashed) in [
            (
                "p99",
                (|p: &super::Percentiles| p.p99) as fn(&super::Percentiles) -> u64,
                false,
            ),
            ("p99.9", |p: &super::Percentiles| p.p999, true),
        ] {
            tails.push(Series {
                name: format!("{} {name}", s.name()),
                points: workers
                    .iter()
                    .filter_map(|&w| {
                        at(s, mode, LatencyMode::All, w)
                            .and_then(|p| p.latency_ns.as_ref())
                            .map(|l| (w as f64, pick(l) as f64))
                    })
                    .collect(),
                dashed,
                colour: colour_of(s),
            });
        }
    }

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
            dashed: false,
            colour: colour_of(s),
        })
        .collect();
    let spectrum_ticks = [0.5, 0.9, 0.99, 0.999, 0.9999, 0.99999]
        .iter()
        .map(|&q| (nines(q), percent(q)))
        .collect();

    let loss: Vec<Series> = summary
        .settings
        .modes
        .iter()
        .map(|&m| Series {
            name: format!("racy, {}", super::matrix::mode_name(m)),
            points: workers
                .iter()
                .filter_map(|&w| {
                    at(StrategyKind::Racy, m, LatencyMode::All, w).map(|p| (w as f64, p.loss_rate))
                })
                .collect(),
            dashed: m == Mode::Threads,
            colour: colour_of(StrategyKind::Racy),
        })
        .collect();

    vec![
        (
            "throughput.svg",
            Plot {
                title: format!("Throughput vs workers ({where_}, latency {tp_latency})"),
                x_label: "workers (log)".into(),
                y_label: "updates per second, median (log)".into(),
                x_log: true,
                y_log: true,
                x_ticks: None,
                series: throughput,
            }
            .render(),
        ),
        (
            "latency.svg",
            Plot {
                title: format!("p99 (solid) and p99.9 (dashed) latency vs workers ({where_})"),
                x_label: "workers (log)".into(),
                y_label: "latency per update, ns (log)".into(),
                x_log: true,
                y_log: true,
                x_ticks: None,
                series: tails,
            }
            .render(),
        ),
        (
            "spectrum.svg",
            Plot {
                title: format!("Latency percentile spectrum at {most} workers ({where_})"),
                x_label: "percentile".into(),
                y_label: "latency per update, ns (log)".into(),
                x_log: false,
                y_log: true,
                x_ticks: Some(spectrum_ticks),
                series: spectrum,
            }
            .render(),
        ),
        (
            "racy-loss.svg",
            Plot {
                title: format!("racy: share of updates lost vs workers ({slots} slot(s))"),
                x_label: "workers (log)".into(),
                y_label: "lost / updates".into(),
                x_log: true,
                y_log: false,
                x_ticks: None,
                series: loss,
            }
            .render(),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plot_is_one_svg_element_with_escaped_text() {
        let svg = Plot {
            title: "a < b & c".into(),
            x_label: "x".into(),
            y_label: "y".into(),
            x_log: true,
            y_log: true,
            x_ticks: None,
            series: vec![Series {
                name: "s".into(),
                points: vec![(1.0, 10.0), (10.0, 1000.0), (0.0, 5.0)],
                dashed: true,
                colour: 0,
            }],
        }
        .render();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("a &lt; b &amp; c"));
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
    }

    #[test]
    fn axis_labels_are_short() {
        assert_eq!(number(1000.0), "1k");
        assert_eq!(number(2_500_000.0), "2.5M");
        assert_eq!(number(0.25), "0.25");
        assert_eq!(number(16.0), "16");
        assert_eq!(percent(0.99999), "99.999%");
        assert_eq!(percent(0.5), "50%");
    }
}
