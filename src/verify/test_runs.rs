//! Runs built by hand for the checkers' unit tests: a header, records, an end.

use crate::history::event::{fingerprint, link_hash};
use crate::history::{Event, RunEnd, RunHistory, RunInfo};

/// The run id of every hand-built run.
pub(super) const RUN: u64 = 7;

/// A run named `strategy` of `workers` workers on `slots` slots from `initial`, no records.
pub(super) fn run(strategy: &str, workers: u32, slots: u32, initial: u32) -> RunHistory {
    RunHistory::new(RunInfo {
        run: RUN,
        strategy: strategy.into(),
        workers,
        slots,
        ops: 10,
        initial,
        seed: 1,
        persist: "events".into(),
    })
}

/// Its end: the region's `finals` with their fingerprint, each worker's acknowledged count.
pub(super) fn end(finals: Vec<u32>, completed: Vec<u64>) -> Option<RunEnd> {
    Some(RunEnd {
        run: RUN,
        fingerprint: fingerprint(&finals),
        finals,
        completed,
        killed: vec![],
    })
}

/// Worker `worker`'s record `seq`: on `slot`, from `written - 1` to `written`, linked, invoked
/// at `at` ns and completed 5 ns later.
pub(super) fn event(worker: u32, seq: u64, slot: u32, written: u32, at: u64) -> Event {
    Event {
        run: RUN,
        worker,
        seq,
        slot,
        read: written - 1,
        written,
        retries: 0,
        invoke_ns: at,
        complete_ns: at + 5,
        hash: link_hash(RUN, slot, written - 1, written),
    }
}
