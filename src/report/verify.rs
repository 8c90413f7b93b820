//! `torture verify`'s verdict as text: a paragraph per run (what it is, its standing, what is
//! missing, its counters and problems), then the store as a whole (where the readable record
//! ends, whether it was closed, what lies outside every run), then one line of totals.

use std::fmt::Write;

use crate::history::loaded::{Closure, Place};
use crate::verify::{RunCheck, Shape, Status, Verification};

/// The verdict, one run per paragraph, then the store.
pub fn render(v: &Verification) -> String {
    let mut out = String::new();
    for r in &v.runs {
        run(&mut out, r);
    }
    record(&mut out, v);
    out
}

/// The standing of one run, as the end of its first line says it.
pub fn standing(r: &RunCheck) -> &'static str {
    match (r.status, r.missing.is_empty()) {
        (Status::Verified, _) => "verified",
        (Status::Incomplete, _) => "INCOMPLETE, not verified",
        (Status::Failed, true) => "NOT verified",
        (Status::Failed, false) => "NOT verified, and incomplete",
    }
}

/// The verdict on the whole store, as `torture verify`'s last word.
pub fn overall(v: &Verification) -> &'static str {
    if v.verified {
        "verified"
    } else if v.incomplete()
        && v.runs.iter().all(|r| r.status != Status::Failed)
        && v.corrupt.is_none()
    {
        "INCOMPLETE, not verified"
    } else {
        "NOT verified"
    }
}

fn run(out: &mut String, r: &RunCheck) {
    // The persistence mode means something for counter slots only.
    let persist = match r.shape() {
        Shape::Counter => format!(", persist {}", r.persist),
        Shape::Ledger | Shape::Cache => String::new(),
    };
    let acknowledged = r
        .acknowledged
        .map_or("? (no end record)".into(), |a| a.to_string());
    let _ = writeln!(
        out,
        "run {} ({}{persist}): {} persisted, {acknowledged} acknowledged: {}",
        r.run,
        r.strategy,
        r.persisted,
        standing(r)
    );
    if !r.missing.is_empty() {
        let missing: Vec<String> = r.missing.iter().map(ToString::to_string).collect();
        let _ = write!(out, "  missing: {}", missing.join("; "));
        if let Some(Place::Bytes { offset, len }) = &r.span {
            let _ = write!(
                out,
                "; its records run from byte offset {offset} to {}",
                offset + len
            );
        }
        let _ = writeln!(out);
    }
    let _ = match r.shape() {
        Shape::Counter => writeln!(
            out,
            "  duplicates {}, gaps {}, witnesses {}, broken links {}, order violations {}, sequence errors {}, final mismatches {}",
            r.duplicates,
            r.gaps,
            r.witnesses,
            r.broken_links,
            r.order_violations,
            r.sequence_errors,
            r.final_mismatches
        ),
        Shape::Ledger => writeln!(
            out,
            "  transfers {}: duplicates {}, gaps {}, witnesses {}, broken chains {}, negative balances {}, total change {}, sequence errors {}, final mismatches {}",
            r.transfers,
            r.duplicates,
            r.gaps,
            r.witnesses,
            r.broken_chains,
            r.negative_balances,
            r.total_change,
            r.sequence_errors,
            r.final_mismatches
        ),
        Shape::Cache => writeln!(
            out,
            "  writes {}, reads {}: torn reads {}, duplicates {}, gaps {}, broken links {}, sequence errors {}, final mismatches {}",
            r.events,
            r.reads,
            r.torn_reads,
            r.duplicates,
            r.gaps,
            r.broken_links,
            r.sequence_errors,
            r.final_mismatches
        ),
    };
    if r.killed > 0 {
        let _ = writeln!(
            out,
            "  killed workers {}: {} torn record(s) accepted, up to {} missing event(s) allowed",
            r.killed, r.torn_records, r.missing_allowed
        );
    }
    for w in r.witness_list.iter().take(3) {
        let _ = writeln!(out, "  witness: {w}");
    }
    for t in r.torn_list.iter().take(3) {
        let _ = writeln!(out, "  torn read: {t}");
    }
    for p in &r.problems {
        let _ = writeln!(out, "  {p}");
    }
}

/// The store as a whole: how far it reads, whether it was closed, what is outside every run.
fn record(out: &mut String, v: &Verification) {
    let _ = write!(out, "record: {} records read", v.records);
    if let (Some(to), Some(size)) = (v.read_to, v.size) {
        let _ = write!(out, "; readable to byte offset {to} of {size}");
    }
    let _ = match &v.closure {
        Closure::Closed { runs, .. } => writeln!(out, "; closed after {runs} run(s)"),
        Closure::Open => writeln!(out, "; not closed"),
        Closure::Unrecorded => writeln!(
            out,
            "; its format keeps no closing record, so a run cut off whole would not show"
        ),
    };
    for p in &v.record_problems {
        let _ = writeln!(out, "  {p}");
    }
}

/// The last line: what was checked and how fast, counting each kind of record by its name.
pub fn checked(v: &Verification, secs: f64) -> String {
    let sum = |f: fn(&RunCheck) -> u64| v.runs.iter().map(f).sum::<u64>();
    let kinds = [
        (sum(|r| r.events), "events"),
        (sum(|r| r.transfers), "transfers"),
        (sum(|r| r.reads), "reads"),
    ];
    let parts: Vec<String> = kinds
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, kind)| format!("{n} {kind}"))
        .collect();
    let what = match parts.len() {
        0 => "nothing".to_string(),
        1 => parts[0].clone(),
        n => format!("{} and {}", parts[..n - 1].join(", "), parts[n - 1]),
    };
    format!(
        "{} records, {what} checked in {secs:.3}s ({:.0} records/s)",
        v.records,
        v.records as f64 / secs.max(1e-9)
    )
}
