//! A cache run, from its writes (events on slot 0: the value's new version) and its readers'
//! reads: each version is written once, every read saw versions that were written, the final
//! value and related entries are one version, and a read whose related entries are not of the
//! value's version is torn, and counted.

use super::end;
use super::problem::{Problem, TornRead, Witness};
use super::verdict::{RunCheck, LISTED};
use crate::history::event::ChainKey;
use crate::history::RunHistory;

/// Checks a cache run into `c`.
pub(super) fn check(run: &RunHistory, c: &mut RunCheck) {
    c.persisted = run.events.len() as u64 + c.reads;
    end::foreign_records(run, run.transfers.len(), "events and reads only", c);
    // persisted[w]: writes, or reads, per worker (a worker does one or the other).
    let mut persisted = vec![0u64; run.info.workers as usize];
    let writers = writes(run, &mut persisted, c);
    let end = end::well_formed(run, c);
    let complete = end.is_some();
    if complete {
        versions_all_written(run.info.initial, &writers, c);
    }
    reads(run, &writers, complete, &mut persisted, c);
    let deaths = end::acknowledged(end, &persisted, false, c);
    if let Some(end) = end {
        end::fingerprint_matches(end, c);
        final_state(&end.finals, run.info.initial, &writers, c);
    }
    end::damage(run, &deaths, &persisted, c);
    if let Some(first) = c.torn_list.first().cloned() {
        let new_beside_stale = run
            .reads
            .iter()
            .flat_map(|b| &b.seen)
            .filter(|s| s.torn() && s.lo < s.value)
            .count() as u64;
        c.headline(Problem::TornReads {
            torn: c.torn_reads,
            reads: c.reads,
            new_beside_stale,
            first,
        });
    }
    if c.duplicates > 0 {
        c.problem(Problem::DuplicateWrites {
            versions: c.duplicates,
        });
    }
}

/// Who first wrote each version initial + 1 + k (`None`: nobody).
struct Writers {
    initial: u32,
    by: Vec<Option<u32>>,
}

impl Writers {
    fn of(&self, version: u32) -> Option<u32> {
        let k = version.checked_sub(self.initial + 1)? as usize;
        self.by.get(k).copied().flatten()
    }

    /// Whether some write made `version` (or it is the initial one).
    fn known(&self, version: u32) -> bool {
        version == self.initial || self.of(version).is_some()
    }
}

/// The writes: each within the run, linking version - 1 to version in the run's chain, in its
/// writer's sequence, and each version written once (a second writer is a witness).
fn writes(run: &RunHistory, persisted: &mut [u64], c: &mut RunCheck) -> Writers {
    let (workers, initial, events) = (run.info.workers, run.info.initial, &run.events);
    let chain = ChainKey::of(run.info.run);
    let mut next_seq = vec![0u64; workers as usize];
    let bound = initial as u64 + events.len() as u64;
    let mut by: Vec<Option<u32>> = vec![None; events.len()];
    for e in events {
        if e.worker >= workers || e.slot != 0 || e.written <= initial || e.written as u64 > bound {
            c.broken_links += 1;
            c.problem(Problem::ImpossibleWrite {
                worker: e.worker,
                version: e.written,
                slot: e.slot,
                writes: events.len() as u64,
                initial,
            });
            continue;
        }
        if e.read.wrapping_add(1) != e.written || e.hash != chain.link(0, e.read, e.written) {
            c.broken_links += 1;
            c.problem(Problem::BrokenWrite {
                worker: e.worker,
                seq: e.seq,
                version: e.written,
            });
        }
        end::sequence(c, &mut next_seq[e.worker as usize], e.worker, e.seq);
        persisted[e.worker as usize] += 1;
        let first = &mut by[(e.written - initial - 1) as usize];
        match *first {
            None => *first = Some(e.worker),
            Some(w) => {
                c.duplicates += 1;
                c.witnesses += 1;
                if c.witness_list.len() < LISTED {
                    c.witness_list.push(Witness {
                        slot: 0,
                        read: e.read,
                        written: e.written,
                        workers: [w, e.worker],
                        balance: None,
                    });
                }
            }
        }
    }
    Writers { initial, by }
}

/// Versions initial + 1 ..= the highest written are each written.
fn versions_all_written(initial: u32, writers: &Writers, c: &mut RunCheck) {
    let Some(top) = writers.by.iter().rposition(Option::is_some) else {
        return;
    };
    let gaps = writers.by[..top].iter().filter(|w| w.is_none()).count() as u64;
    if gaps > 0 {
        c.gaps += gaps;
        c.problem(Problem::VersionsUnwritten {
            versions: gaps,
            top: initial + 1 + top as u32,
        });
    }
}

/// The reads: each reader's batches follow each other; a read whose related entries are not
/// of its value's version is torn; where the run's end is there (`complete`), every version a
/// read saw was written (without the end, its write may be in the writer's unwritten batch).
fn reads(
    run: &RunHistory,
    writers: &Writers,
    complete: bool,
    persisted: &mut [u64],
    c: &mut RunCheck,
) {
    let workers = run.info.workers;
    let mut first_read = vec![0u64; workers as usize];
    for batch in &run.reads {
        let worker = batch.worker;
        if worker >= workers {
            c.sequence_errors += 1;
            c.problem(Problem::ImpossibleRead { worker, workers });
            continue;
        }
        let w = worker as usize;
        if batch.first != first_read[w] {
            c.sequence_errors += 1;
            c.problem(Problem::ReadSequence {
                worker,
                first: batch.first,
                after: first_read[w],
            });
        }
        for (k, seen) in batch.seen.iter().enumerate() {
            let made = |v| writers.known(v);
            if complete && !(made(seen.value) && made(seen.lo) && made(seen.hi)) {
                c.broken_links += 1;
                c.problem(Problem::PhantomRead {
                    worker,
                    value: seen.value,
                    lo: seen.lo,
                    hi: seen.hi,
                });
            }
            if seen.torn() {
                c.torn_reads += 1;
                if c.torn_list.len() < LISTED {
                    c.torn_list.push(TornRead {
                        worker,
                        read: batch.first + k as u64,
                        value: seen.value,
                        lo: seen.lo,
                        hi: seen.hi,
                        value_by: writers.of(seen.value),
                    });
                }
            }
        }
        first_read[w] = batch.first + batch.seen.len() as u64;
        persisted[w] += batch.seen.len() as u64;
    }
}

/// The region ends with the value and its related entries at one written version.
fn final_state(finals: &[u32], initial: u32, writers: &Writers, c: &mut RunCheck) {
    let value = finals.first().copied().unwrap_or(initial);
    if finals.iter().any(|&r| r != value) || !writers.known(value) {
        c.final_mismatches += 1;
        c.problem(Problem::CacheFinal {
            finals: finals.to_vec(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_runs::{end, event, run};
    use crate::history::{Reads, Seen};
    use crate::verify::{check_run, RunCheck};

    fn cache(reads: Vec<Seen>, finals: Vec<u32>) -> RunCheck {
        // One writer (worker 0) wrote versions 1 and 2; worker 1 read.
        let mut r = run("cache two-step", 2, 3, 0);
        r.events = (1..=2u32)
            .map(|v| event(0, v as u64 - 1, 0, v, 0))
            .collect();
        let n = reads.len() as u64;
        r.reads = vec![Reads {
            worker: 1,
            first: 0,
            seen: reads,
        }];
        r.end = end(finals, vec![2, n]);
        check_run(&r)
    }

    fn seen(value: u32, lo: u32, hi: u32) -> Seen {
        Seen { value, lo, hi }
    }

    #[test]
    fn whole_cache_reads_verify() {
        let c = cache(
            vec![seen(0, 0, 0), seen(1, 1, 1), seen(2, 2, 2)],
            vec![2; 3],
        );
        assert!(c.verified, "{:?}", c.problems);
        assert_eq!((c.reads, c.persisted), (3, 5));
    }

    #[test]
    fn a_torn_cache_read_is_counted_and_names_reader_and_writer() {
        let c = cache(
            vec![seen(1, 1, 1), seen(2, 1, 1), seen(2, 1, 2)],
            vec![2; 3],
        );
        assert!(!c.verified);
        assert_eq!(c.torn_reads, 2);
        assert_eq!(
            c.torn_list[0].to_string(),
            "worker 1 (read 1) saw value version 2 (written by worker 0) beside related entries of version 1"
        );
        assert!(
            c.problems[0]
                .to_string()
                .starts_with("torn read: 2 of 3 reads"),
            "{:?}",
            c.problems
        );
    }

    #[test]
    fn a_cache_read_of_a_version_nobody_wrote_and_a_torn_final_state_are_caught() {
        let c = cache(vec![seen(9, 9, 9)], vec![2, 1, 2]);
        assert!(!c.verified);
        assert_eq!(c.torn_reads, 0);
        assert!(
            c.problems
                .iter()
                .any(|p| p.to_string().starts_with("phantom read: ")),
            "{:?}",
            c.problems
        );
        assert_eq!(c.final_mismatches, 1);
    }
}
