//! One `Summary` per invocation; every output format renders it, so they cannot disagree.
//! The bench has its own one summary (`BenchSummary`), rendered the same way.

pub mod csv;
pub mod markdown;
pub mod matrix;
mod summary;
pub mod svg;
mod text;
pub mod verify;

pub use summary::{Fairness, Machine, Percentiles, RunSummary, StrategySummary, Summary, Verdict};
pub use text::render_text;
