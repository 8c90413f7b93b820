//! One `Summary` per invocation; every output format renders it, so they cannot disagree.
//! The bench has its own one summary (`BenchSummary`), rendered the same way. Every figure a
//! person reads is written by `units`, so text, Markdown and plots agree on how it looks.

pub mod csv;
pub mod markdown;
pub mod matrix;
pub mod revision;
mod summary;
pub mod svg;
pub mod targets;
mod text;
pub mod units;
pub mod verify;

pub use summary::{
    Fairness, Machine, Percentiles, RunSummary, Spread, StrategySummary, Summary, Verdict,
};
pub use text::{
    render_head, render_row, render_tail, render_text, render_text_with, Columns, Detail,
};
