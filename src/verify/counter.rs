//! A counter run (the plain counter, votes, record): events of slots moving v to v+1, checked
//! one invariant per function. The per-value facts several invariants need (who wrote each
//! value of each slot, and when) are gathered once into an [`Index`].

use super::end::{self, Deaths};
use super::problem::{FinalMismatch, Problem, Witness};
use super::verdict::{RunCheck, LISTED};
use crate::history::event::{fingerprint, ChainKey};
use crate::history::{Event, RunEnd, RunHistory};

/// Checks a counter run into `c`.
pub(super) fn check(run: &RunHistory, c: &mut RunCheck) {
    c.persisted = run.events.len() as u64;
    end::foreign_records(run, run.transfers.len() + run.reads.len(), "events only", c);
    let valid = in_range(run, c);
    hash_links(run, &valid, c);
    let persisted = worker_sequences(run, &valid, c);
    let end = end::well_formed(run, c);
    let deaths = end::acknowledged(end, &persisted, true, c);
    if let Some(end) = end {
        end::fingerprint_matches(end, c);
        final_count_bounds(run.info.initial, end, &deaths, c);
    }
    end::damage(run, &deaths, &persisted, c);
    let index = Index::build(run, &valid, end.map(|e| e.finals.as_slice()));
    no_duplicate(&index, &run.events, c);
    real_time_order(&index, &run.events, c);
    // Without the end, a value nobody wrote may sit in a worker's unwritten batch: gaps and
    // the final state are provable only against the region's final values.
    if let Some(end) = end {
        no_gap(&index, &end.finals, c);
        final_state(run, &index, end, c);
    }
}

/// Every event names a worker and a slot of the run and writes above the initial value; the
/// others are counted as broken links and left out of every other check.
fn in_range(run: &RunHistory, c: &mut RunCheck) -> Vec<bool> {
    let info = &run.info;
    run.events
        .iter()
        .map(|e| {
            let ok = e.slot < info.slots && e.worker < info.workers && e.written > info.initial;
            if !ok {
                c.broken_links += 1;
                c.problem(Problem::ImpossibleEvent {
                    worker: e.worker,
                    slot: e.slot,
                    written: e.written,
                    workers: info.workers,
                    slots: info.slots,
                    initial: info.initial,
                });
            }
            ok
        })
        .collect()
}

/// Every event wrote the value after the one it read, and its hash links the two states.
fn hash_links(run: &RunHistory, valid: &[bool], c: &mut RunCheck) {
    let chain = ChainKey::of(run.info.run);
    for (_, e) in end::kept(&run.events, valid) {
        let key = if e.run == run.info.run {
            chain
        } else {
            ChainKey::of(e.run)
        };
        if e.read.wrapping_add(1) != e.written || e.hash != key.link(e.slot, e.read, e.written) {
            c.broken_links += 1;
            c.problem(Problem::BrokenLink {
                worker: e.worker,
                seq: e.seq,
                slot: e.slot,
                read: e.read,
                written: e.written,
                hash: e.hash,
            });
        }
    }
}

/// Each worker's records are its sequence 0, 1, 2 …; returns where each worker's records end.
fn worker_sequences(run: &RunHistory, valid: &[bool], c: &mut RunCheck) -> Vec<u64> {
    let mut next = vec![0u64; run.info.workers as usize];
    for (_, e) in end::kept(&run.events, valid) {
        end::sequence(c, &mut next[e.worker as usize], e.worker, e.seq);
    }
    next
}

/// Jepsen's accounting with deaths: acknowledged ≤ the region's total ≤ acknowledged + in
/// flight.
fn final_count_bounds(initial: u32, end: &RunEnd, deaths: &Deaths, c: &mut RunCheck) {
    let region: u64 = end
        .finals
        .iter()
        .map(|&v| v.saturating_sub(initial) as u64)
        .sum();
    let acknowledged = c.acknowledged.unwrap_or(0);
    let in_flight = deaths.in_flight();
    if region > acknowledged + in_flight {
        c.problem(Problem::FinalAboveAcknowledged {
            region,
            acknowledged,
            in_flight,
        });
    }
    if region < acknowledged {
        c.problem(Problem::FinalBelowAcknowledged {
            region,
            acknowledged,
        });
    }
}

/// What the events say about one value of one slot.
#[derive(Clone, Copy)]
struct Cell {
    count: u32,
    /// The first event that wrote the value.
    first: u32,
    /// The latest invocation among its writers, and which event.
    invoke_max: u64,
    invoke_at: u32,
    /// The earliest completion among its writers, and which event.
    complete_min: u64,
    complete_at: u32,
}

const EMPTY: Cell = Cell {
    count: 0,
    first: 0,
    invoke_max: 0,
    invoke_at: 0,
    complete_min: u64::MAX,
    complete_at: 0,
};

/// One cell per value initial+1 ..= top per slot, where top is the highest value written or
/// final, capped so that a lie that passed the checksum cannot make us allocate for it.
struct Index {
    initial: u32,
    /// `cells[offsets[s]..offsets[s + 1]]` are slot `s`'s.
    cells: Vec<Cell>,
    offsets: Vec<usize>,
    /// Per slot: the highest value a cell stands for, and above it, values uncounted.
    top: Vec<u32>,
    beyond: Vec<u64>,
    /// Per slot: the highest value an event wrote.
    max_written: Vec<u32>,
    /// (event, first event) for every event that wrote a value already written.
    repeats: Vec<(u32, u32)>,
}

impl Index {
    fn build(run: &RunHistory, valid: &[bool], finals: Option<&[u32]>) -> Index {
        let (slots, initial, events) = (run.info.slots as usize, run.info.initial, &run.events);
        let mut max_written = vec![initial; slots];
        let mut per_slot = vec![0u64; slots];
        for (_, e) in end::kept(events, valid) {
            let s = e.slot as usize;
            max_written[s] = max_written[s].max(e.written);
            per_slot[s] += 1;
        }
        let (mut offsets, mut top, mut beyond) = (Vec::new(), Vec::new(), Vec::new());
        let mut total = 0usize;
        for s in 0..slots {
            offsets.push(total);
            let hi = max_written[s].max(finals.map_or(initial, |f| f[s])) as u64;
            let cap = initial as u64 + per_slot[s] * 2 + 1024;
            top.push(hi.min(cap) as u32);
            beyond.push(hi.saturating_sub(cap));
            total += (hi.min(cap) - initial as u64) as usize;
        }
        offsets.push(total);
        let mut cells = vec![EMPTY; total];
        let mut repeats = Vec::new();
        for (i, e) in end::kept(events, valid) {
            let s = e.slot as usize;
            if e.written > top[s] {
                continue;
            }
            let cell = &mut cells[offsets[s] + (e.written - initial - 1) as usize];
            if cell.count == 0 {
                cell.first = i as u32;
            } else {
                repeats.push((i as u32, cell.first));
            }
            cell.count += 1;
            if e.invoke_ns >= cell.invoke_max {
                cell.invoke_max = e.invoke_ns;
                cell.invoke_at = i as u32;
            }
            if e.complete_ns < cell.complete_min {
                cell.complete_min = e.complete_ns;
                cell.complete_at = i as u32;
            }
        }
        Index {
            initial,
            cells,
            offsets,
            top,
            beyond,
            max_written,
            repeats,
        }
    }

    fn slots(&self) -> usize {
        self.top.len()
    }

    /// Slot `s`'s cells, the k-th for value initial + 1 + k.
    fn slot(&self, s: usize) -> &[Cell] {
        &self.cells[self.offsets[s]..self.offsets[s + 1]]
    }
}

/// No value is written twice: every extra winner is a lost update, and the two workers that
/// won it are its witnesses.
fn no_duplicate(index: &Index, events: &[Event], c: &mut RunCheck) {
    let mut same_worker = Vec::new();
    for &(i, first) in &index.repeats {
        let (e, first) = (&events[i as usize], &events[first as usize]);
        c.duplicates += 1;
        c.witnesses += 1;
        let witness = Witness {
            slot: e.slot,
            read: e.read,
            written: e.written,
            workers: [first.worker, e.worker],
            balance: None,
        };
        // Two workers colliding tell the story best; one worker winning a value twice (a
        // stale write rolled the slot back between its two updates) is listed only if
        // nothing else is.
        if first.worker != e.worker {
            if c.witness_list.len() < LISTED {
                c.witness_list.push(witness);
            }
        } else if same_worker.len() < LISTED {
            same_worker.push(witness);
        }
    }
    let room = LISTED.saturating_sub(c.witness_list.len());
    c.witness_list.extend(same_worker.into_iter().take(room));
    if let Some(first) = c.witness_list.first().cloned() {
        c.headline(Problem::LostUpdate {
            values: c.duplicates,
            first,
        });
    }
}

/// Real time: per slot, no value's writer completed before the writer of a lower value was
/// invoked (the lower value would then have been written after the higher one).
fn real_time_order(index: &Index, events: &[Event], c: &mut RunCheck) {
    for s in 0..index.slots() {
        // The latest invocation among the writers of lower values, and its event.
        let mut later_invoked: Option<(u64, u32)> = None;
        for (k, cell) in index.slot(s).iter().enumerate() {
            if cell.count == 0 {
                continue;
            }
            if let Some((t, at)) = later_invoked {
                if cell.complete_min < t {
                    c.order_violations += 1;
                    let (a, b) = (&events[cell.complete_at as usize], &events[at as usize]);
                    c.problem(Problem::OrderViolation {
                        worker: a.worker,
                        slot: s as u32,
                        value: index.initial + 1 + k as u32,
                        ahead_ns: t - cell.complete_min,
                        lower_worker: b.worker,
                        lower_value: b.written,
                    });
                }
            }
            if later_invoked.is_none_or(|(t, _)| cell.invoke_max > t) {
                later_invoked = Some((cell.invoke_max, cell.invoke_at));
            }
        }
    }
}

/// No gap: every value from initial+1 to the region's final value was written by an event,
/// except as many as killed workers may lack.
fn no_gap(index: &Index, finals: &[u32], c: &mut RunCheck) {
    let mut first: Option<(u32, u32)> = None;
    for (s, &fin) in finals.iter().enumerate() {
        let must_have = fin.min(index.top[s]);
        for (k, cell) in index.slot(s).iter().enumerate() {
            let value = index.initial + 1 + k as u32;
            if cell.count == 0 && value <= must_have {
                c.gaps += 1;
                first.get_or_insert((value, s as u32));
            }
        }
        // Values above the cap, up to the final value, have no cell and no event.
        let beyond = index.beyond[s].min(fin.saturating_sub(index.top[s]) as u64);
        if beyond > 0 {
            c.gaps += beyond;
            first.get_or_insert((index.top[s] + 1, s as u32));
        }
    }
    if c.gaps > c.missing_allowed {
        let (value, slot) = first.expect("a gap was counted");
        c.problem(Problem::Gap {
            slot,
            value,
            missing: c.gaps,
            allowed: c.missing_allowed,
            killed: c.killed > 0,
        });
    }
}

/// The stored final state is the region's: per slot, the store's own value (SQLite) or the
/// highest value an event wrote (the log); and the stored values hash to the fingerprint.
fn final_state(run: &RunHistory, index: &Index, end: &RunEnd, c: &mut RunCheck) {
    let mut behind_excused = false;
    let mut stored_all = Vec::with_capacity(end.finals.len());
    for (s, &region) in end.finals.iter().enumerate() {
        let stored = match &run.stored {
            Some(v) => v.get(s).copied().unwrap_or(run.info.initial),
            None => index.max_written[s],
        };
        stored_all.push(stored);
        // The log's stored state is its highest event: behind the region only by values with
        // no event, which the gap count already bounds.
        let behind_by_gaps = run.stored.is_none() && c.killed > 0 && stored < region;
        behind_excused |= behind_by_gaps;
        if stored != region && !behind_by_gaps {
            c.final_mismatches += 1;
            let m = FinalMismatch {
                slot: s as u32,
                stored,
                region,
            };
            if c.final_mismatch_list.len() < LISTED {
                c.final_mismatch_list.push(m.clone());
            }
            c.problem(Problem::FinalState(m));
        }
    }
    if c.final_mismatches == 0 && !behind_excused && fingerprint(&stored_all) != end.fingerprint {
        c.problem(Problem::StoredFingerprint);
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_runs::{end, event, run as header};
    use super::super::{check_run, Status};
    use crate::history::{Killed, RunHistory};

    /// A one-slot run of `workers` workers whose events are `(worker, written)` in order, and
    /// its end with the final value `finals` (None: no end).
    fn run(workers: u32, events: &[(u32, u32)], finals: Option<u32>) -> RunHistory {
        let mut seq = vec![0u64; workers as usize];
        let mut r = header("atomic", workers, 1, 0);
        for (i, &(w, v)) in events.iter().enumerate() {
            r.events
                .push(event(w, seq[w as usize], 0, v, 10 * i as u64));
            seq[w as usize] += 1;
        }
        r.end = finals.and_then(|f| end(vec![f], seq));
        r
    }

    #[test]
    fn a_whole_run_verifies_and_the_same_run_without_its_end_is_incomplete() {
        let whole = run(2, &[(0, 1), (1, 2), (0, 3)], Some(3));
        let c = check_run(&whole);
        assert_eq!(c.status, Status::Verified, "{:?}", c.problems);
        let mut cut = whole.clone();
        cut.end = None;
        let c = check_run(&cut);
        assert_eq!(c.status, Status::Incomplete);
        assert!(!c.verified);
        assert_eq!(c.acknowledged, None);
    }

    #[test]
    fn a_lost_update_in_an_incomplete_run_still_fails_with_its_witnesses() {
        let c = check_run(&run(2, &[(0, 1), (1, 1)], None));
        assert_eq!(c.status, Status::Failed);
        assert_eq!(c.duplicates, 1);
        assert!(!c.missing.is_empty(), "it is incomplete too");
        assert_eq!(c.problems[0].label(), "lost update");
    }

    #[test]
    fn a_gap_in_an_incomplete_run_is_not_evidence() {
        // Value 2 may be in worker 1's unwritten batch when the record was cut.
        let c = check_run(&run(2, &[(0, 1), (0, 3)], None));
        assert_eq!(c.status, Status::Incomplete, "{:?}", c.problems);
        assert_eq!(c.gaps, 0);
    }

    #[test]
    fn a_final_value_far_beyond_the_events_is_a_gap_named_at_its_first_missing_value() {
        let mut r = run(1, &[(0, 1)], Some(5000));
        r.end.as_mut().unwrap().completed = vec![5000];
        let c = check_run(&r);
        assert_eq!(c.status, Status::Failed);
        assert_eq!(c.gaps, 4999, "values 2 ..= 5000");
        assert!(
            c.problems
                .iter()
                .any(|p| p.to_string().starts_with("gap: no event wrote 2 on slot 0")),
            "{:?}",
            c.problems
        );
    }

    #[test]
    fn a_killed_workers_missing_values_are_allowed_up_to_its_bound() {
        // Worker 1 acknowledged 2 and died with one in flight: it may lack up to 3 events.
        let mut r = run(2, &[(0, 1), (0, 2)], Some(4));
        let end = r.end.as_mut().unwrap();
        end.completed = vec![2, 2];
        end.killed = vec![Killed {
            worker: 1,
            in_flight: true,
        }];
        let c = check_run(&r);
        assert_eq!(c.missing_allowed, 3);
        assert_eq!(c.status, Status::Verified, "{:?}", c.problems);
    }
}
