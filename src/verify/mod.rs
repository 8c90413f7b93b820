//! `torture verify`: proves from the stored record alone that no update was lost or duplicated.
//!
//! Input is a [`Loaded`] store, whatever its format (see `history::loaded`); output is a
//! [`Verification`]: one [`RunCheck`] per run and what is wrong with the store as a whole.
//! Rendering is `report::verify`'s. A run is one of three things:
//!
//! - **verified**: its end record is whole and every invariant below holds;
//! - **incomplete**: part of its end is missing (the store was cut, a crash, a row deleted), so
//!   nothing can be proven about what was acknowledged; never called verified;
//! - **not verified**: an invariant fails (an incomplete run can fail too: a lost update among
//!   the records present is shown with its witnesses).
//!
//! A counter run (the plain counter, votes, record) is checked per slot, one function per
//! invariant (`counter`): the written values are exactly {initial+1 … final} (no duplicate: two
//! winners of one value, a lost update shown with its witnesses; no gap: a value nobody
//! persisted); the stored final state equals the region's; every event's hash links the state
//! it read to the one it wrote; no event completed before an event writing a lower value was
//! invoked; every worker's records are its sequence 0, 1, 2 … up to what it acknowledged; and
//! acknowledged ≤ final ≤ acknowledged + in flight, with what killed workers may lack.
//!
//! A ledger run (its header names `ledger …`) is checked from its transfers (`ledger`), a cache
//! run (`cache …`) from its writes and reads (`cache`). What all runs share, the end record and
//! damaged records, is `end`'s.
//!
//! Record checksums are checked by the loaders before anything here runs.

mod cache;
mod counter;
mod end;
mod ledger;
mod problem;
#[cfg(test)]
mod test_runs;
mod verdict;

use std::path::Path;

use crate::history::loaded::{Closure, Tail};
pub use crate::history::loaded::{LoadError, Loaded, RunHistory, Shape};
pub use problem::{FinalMismatch, Problem, RecordProblem, Rejection, TornRead, Witness};
pub use verdict::{RunCheck, Status, Verification};

/// Loads any store by looking at its first bytes: SQLite databases name themselves.
pub fn load(path: &Path) -> Result<Loaded, LoadError> {
    if crate::store::sqlite::is_sqlite(path) {
        crate::store::sqlite::load(path)
    } else {
        crate::history::log::load(path)
    }
}

/// Checks one run.
pub fn check_run(run: &RunHistory) -> RunCheck {
    let mut c = RunCheck::of(run);
    match Shape::of(&run.info.strategy) {
        Shape::Counter => counter::check(run, &mut c),
        Shape::Ledger => ledger::check(run, &mut c),
        Shape::Cache => cache::check(run, &mut c),
    }
    c.settle()
}

/// Checks every run of a loaded store, and the store as a whole.
pub fn verify(loaded: &Loaded) -> Verification {
    let runs: Vec<RunCheck> = loaded.runs.iter().map(check_run).collect();
    let mut record = Vec::new();
    if let Tail::Torn { offset, bytes } = loaded.tail {
        record.push(RecordProblem::TornTail { offset, bytes });
    }
    record.extend(loaded.orphans.iter().cloned().map(RecordProblem::Orphans));
    record.extend(loaded.damaged.iter().cloned().map(RecordProblem::Damaged));
    match &loaded.closure {
        Closure::Open => record.push(RecordProblem::NotClosed),
        Closure::Closed { runs: closed, .. } if *closed != runs.len() as u64 => {
            record.push(RecordProblem::RunCount {
                closed: *closed,
                found: runs.len() as u64,
            })
        }
        _ => {}
    }
    if runs.is_empty() {
        record.push(RecordProblem::NoRun);
    }
    // The first damaged record nobody accounts for: outside any run, or in a run and not
    // accepted; by byte offset where there is one.
    let first = loaded
        .damaged
        .iter()
        .map(|d| (d.at.offset(), d.to_string()))
        .chain(
            runs.iter()
                .flat_map(|r| &r.problems)
                .filter_map(|p| match p {
                    Problem::Damaged { damage, .. } if p.proves_failure() => {
                        Some((damage.at.offset(), p.to_string()))
                    }
                    _ => None,
                }),
        )
        .min_by_key(|(offset, _)| offset.unwrap_or(u64::MAX));
    let verified = record.is_empty() && runs.iter().all(|r| r.verified);
    Verification {
        records: loaded.records,
        runs,
        record_problems: record,
        read_to: loaded.read_to,
        size: loaded.size,
        closure: loaded.closure.clone(),
        corrupt_offset: first.as_ref().and_then(|f| f.0),
        corrupt: first.map(|f| f.1),
        verified,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::log::{parse, tests::log};

    #[test]
    fn the_scenario_shape_comes_from_the_run_header() {
        assert_eq!(Shape::of("ledger two-rmw"), Shape::Ledger);
        assert_eq!(Shape::of("cache seqlock"), Shape::Cache);
        assert_eq!(Shape::of("record whole-record"), Shape::Counter);
        assert_eq!(Shape::of("atomic"), Shape::Counter);
    }

    #[test]
    fn a_closed_log_verifies_and_every_cut_of_it_does_not() {
        let bytes = log(20);
        assert!(verify(&parse(&bytes)).verified);
        for cut in 1..bytes.len() {
            let v = verify(&parse(&bytes[..cut]));
            assert!(!v.verified, "cut at {cut}");
            assert!(v.incomplete(), "cut at {cut}");
        }
    }

    #[test]
    fn a_damaged_record_mid_run_is_corruption_at_its_offset() {
        let bytes = log(50);
        let starts = crate::history::log::tests::starts(&bytes);
        let mid = starts[starts.len() / 2];
        let mut flipped = bytes.clone();
        flipped[mid as usize + crate::history::frame::HEADER] ^= 1;
        let v = verify(&parse(&flipped));
        assert_eq!(v.corrupt_offset, Some(mid));
        assert_eq!(v.runs[0].status, Status::Failed);
        assert!(!v.verified);
    }
}
