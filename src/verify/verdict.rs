//! The verdict's types: a run's standing and counters ([`RunCheck`]), and the whole store's
//! ([`Verification`]). The checkers fill them; `report::verify` renders them.

use serde::Serialize;

use super::problem::{FinalMismatch, Problem, RecordProblem, TornRead, Witness};
use crate::history::loaded::{Closure, Missing, Place, Shape};
use crate::history::RunHistory;

/// A run's standing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Its end is whole and every invariant holds.
    Verified,
    /// Part of its end is missing and nothing failed among what is there.
    #[default]
    Incomplete,
    /// An invariant fails.
    Failed,
}

/// The verdict on one run, field by field.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RunCheck {
    pub run: u64,
    /// What the run's header names: the strategy, or a scenario and its variant.
    pub strategy: String,
    pub persist: String,
    pub status: Status,
    /// `status == Verified`.
    pub verified: bool,
    /// What of the run's end the store lacks (empty for a complete run).
    pub missing: Vec<Missing>,
    /// Where its records lie in the store.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub span: Option<Place>,
    /// Records in the store: events, or transfers, or a cache's writes plus reads.
    pub persisted: u64,
    pub events: u64,
    pub transfers: u64,
    /// cache: reads persisted.
    pub reads: u64,
    /// Updates the workers acknowledged (from the run's end record).
    pub acknowledged: Option<u64>,
    /// Extra winners of an already-written value, summed over slots.
    pub duplicates: u64,
    /// Values in {initial+1 … final} that no event wrote.
    pub gaps: u64,
    /// Pairs of workers that won the same value (first few in `witness_list`).
    pub witnesses: u64,
    pub witness_list: Vec<Witness>,
    /// Events whose hash does not link the state they read to the one they wrote.
    pub broken_links: u64,
    /// Events that completed before an event writing a lower value was invoked.
    pub order_violations: u64,
    /// Missing or repeated per-worker sequence numbers.
    pub sequence_errors: u64,
    /// Slots whose stored final value differs from the region's (first few).
    pub final_mismatches: u64,
    pub final_mismatch_list: Vec<FinalMismatch>,
    /// Whether the fingerprint saved with the run matches the final values saved with it.
    pub fingerprint_ok: Option<bool>,
    /// Workers the run's end record says died.
    pub killed: u64,
    /// Values that may lack an event: over killed workers, acknowledged + in flight - persisted.
    pub missing_allowed: u64,
    /// Damaged records accepted as a killed worker's torn last record.
    pub torn_records: u64,
    /// Damaged records not accepted.
    pub corrupt_records: u64,
    /// ledger: transfers that read an account state other than the one its previous version
    /// left (a broken chain).
    pub broken_chains: u64,
    /// ledger: balances read or left below zero (an overdraft that was not refused), and final
    /// balances below zero.
    pub negative_balances: u64,
    /// ledger: the region's final total minus the starting total.
    pub total_change: i64,
    /// cache: reads that saw the value beside related entries of another version.
    pub torn_reads: u64,
    pub torn_list: Vec<TornRead>,
    /// The first problem of each label, the headline first.
    pub problems: Vec<Problem>,
}

impl RunCheck {
    pub(super) fn of(run: &RunHistory) -> RunCheck {
        RunCheck {
            run: run.info.run,
            strategy: run.info.strategy.clone(),
            persist: run.info.persist.clone(),
            missing: match (&run.end, run.missing.is_empty()) {
                (Some(_), _) => Vec::new(),
                (None, true) => vec![Missing::End],
                (None, false) => run.missing.clone(),
            },
            span: run.span.clone(),
            events: run.events.len() as u64,
            transfers: run.transfers.len() as u64,
            reads: run.reads.iter().map(|r| r.seen.len() as u64).sum(),
            ..RunCheck::default()
        }
    }

    /// Notes `p` unless a problem of its label is noted already (all are counted).
    pub(super) fn problem(&mut self, p: Problem) {
        if !self.problems.iter().any(|q| q.label() == p.label()) {
            self.problems.push(p);
        }
    }

    /// Puts `p` first: the headline.
    pub(super) fn headline(&mut self, p: Problem) {
        self.problems.insert(0, p);
    }

    /// Settles the status once every invariant has had its say.
    pub(super) fn settle(mut self) -> RunCheck {
        self.status = if self.problems.iter().any(Problem::proves_failure) {
            Status::Failed
        } else if !self.missing.is_empty() {
            Status::Incomplete
        } else {
            Status::Verified
        };
        self.verified = self.status == Status::Verified;
        self
    }

    pub fn shape(&self) -> Shape {
        Shape::of(&self.strategy)
    }
}

/// The verdict on a whole store.
#[derive(Clone, Debug, Serialize)]
pub struct Verification {
    /// Intact records (log) or rows (SQL) read.
    pub records: u64,
    pub runs: Vec<RunCheck>,
    /// What is wrong with the store beside its runs.
    pub record_problems: Vec<RecordProblem>,
    /// For a file: the byte after its last intact record, and its size.
    pub read_to: Option<u64>,
    pub size: Option<u64>,
    pub closure: Closure,
    /// The first damaged record not accepted, in any run or outside them.
    pub corrupt: Option<String>,
    pub corrupt_offset: Option<u64>,
    /// Every run verified and nothing wrong with the store.
    pub verified: bool,
}

impl Verification {
    /// Whether some run, or the store, is incomplete (as opposed to wrong).
    pub fn incomplete(&self) -> bool {
        self.runs.iter().any(|r| !r.missing.is_empty())
            || self.record_problems.iter().any(|p| {
                matches!(
                    p,
                    RecordProblem::TornTail { .. }
                        | RecordProblem::NotClosed
                        | RecordProblem::Orphans(_)
                        | RecordProblem::RunCount { .. }
                )
            })
    }
}

/// How many witnesses and mismatches are listed (all are counted).
pub(super) const LISTED: usize = 10;
