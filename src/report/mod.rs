//! One `Summary` per invocation; every output format renders it, so they cannot disagree.

mod summary;
mod text;

pub use summary::{Fairness, Machine, Percentiles, RunSummary, StrategySummary, Summary, Verdict};
pub use text::render_text;
