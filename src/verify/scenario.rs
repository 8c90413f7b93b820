//! The checks of the two scenarios that are not counters: the ledger's transfers and the
//! cache's writes and reads (see the module above for what each proves).

use super::{check_damage, problem, FinalMismatch, RunCheck, RunHistory, TornRead, Witness};
use super::{EMPTY, LISTED};
use crate::history::event::{fingerprint, ChainKey};

/// What every scenario's end record must satisfy: its shape, the fingerprint of its final
/// values, and each worker's acknowledged count equal to the records it persisted
/// (`persisted[w]`; scenarios refuse faults, so nobody died). Damaged records are rejected
/// (no killed worker can own one). Returns the final values when the record is well formed.
fn check_end<'a>(c: &mut RunCheck, run: &'a RunHistory, persisted: &[u64]) -> Option<&'a [u32]> {
    let info = &run.info;
    let workers = info.workers as usize;
    check_damage(c, run, &vec![None; workers], persisted, persisted);
    let end = run.end.as_ref()?;
    if end.completed.len() != workers || end.finals.len() != info.slots as usize {
        problem(
            c,
            "malformed end record: ",
            format!(
                "{} worker counts and {} final values for {} workers and {} slots",
                end.completed.len(),
                end.finals.len(),
                workers,
                info.slots
            ),
        );
        return None;
    }
    if !end.killed.is_empty() {
        problem(
            c,
            "malformed end record: ",
            format!(
                "{} killed workers in a scenario run (faults are refused)",
                end.killed.len()
            ),
        );
    }
    c.acknowledged = Some(end.completed.iter().sum());
    for (w, (&acked, &seen)) in end.completed.iter().zip(persisted).enumerate() {
        if acked != seen {
            c.sequence_errors += acked.abs_diff(seen);
            problem(
                c,
                "acknowledged but not persisted: ",
                format!("worker {w} acknowledged {acked}, its records hold {seen}"),
            );
        }
    }
    let ok = fingerprint(&end.finals) == end.fingerprint;
    c.fingerprint_ok = Some(ok);
    if !ok {
        problem(
            c,
            "fingerprint: ",
            format!(
                "the saved final values hash to {:016x}, the region's fingerprint is {:016x}",
                fingerprint(&end.finals),
                end.fingerprint
            ),
        );
    }
    Some(&end.finals)
}

fn new_check(run: &RunHistory, persisted: u64) -> RunCheck {
    RunCheck {
        run: run.info.run,
        strategy: run.info.strategy.clone(),
        persist: run.info.persist.clone(),
        persisted,
        ..RunCheck::default()
    }
}

/// Notes a per-worker sequence number: records must run 0, 1, 2 … per worker.
fn sequence(c: &mut RunCheck, next: &mut u64, worker: u32, seq: u64) {
    if seq != *next {
        c.sequence_errors += 1;
        problem(
            c,
            "sequence: ",
            format!(
                "worker {worker} record {seq} follows record {}",
                *next as i64 - 1
            ),
        );
    }
    *next = (*next).max(seq + 1);
}

/// A ledger run, from its transfers.
pub(super) fn check_ledger(run: &RunHistory) -> RunCheck {
    let info = &run.info;
    let (accounts, workers) = (info.slots as usize, info.workers as usize);
    let ts = &run.transfers;
    let mut c = new_check(run, ts.len() as u64);
    if !run.events.is_empty() || !run.reads.is_empty() {
        problem(
            &mut c,
            "foreign records: ",
            format!(
                "{} events and {} read batches in a ledger run, which writes transfers only",
                run.events.len(),
                run.reads.len()
            ),
        );
    }
    // Balances are signed: a wrapped debit reads as negative.
    let signed = |b: u32| b as i32 as i64;
    // Per account: every leg (version read, transfer index, which leg), sorted by version.
    let mut legs: Vec<Vec<(u32, u32, u8)>> = vec![Vec::new(); accounts];
    let mut next_seq = vec![0u64; workers];
    for (i, t) in ts.iter().enumerate() {
        if t.worker as usize >= workers
            || t.from as usize >= accounts
            || t.to as usize >= accounts
            || t.from == t.to
            || t.amount == 0
        {
            c.broken_chains += 1;
            problem(
                &mut c,
                "impossible transfer: ",
                format!(
                    "worker {} moved {} from account {} to account {} (run has {workers} workers, {accounts} accounts)",
                    t.worker, t.amount, t.from, t.to
                ),
            );
            continue;
        }
        sequence(&mut c, &mut next_seq[t.worker as usize], t.worker, t.seq);
        for (leg, &(account, version, before, after)) in t.legs().iter().enumerate() {
            legs[account as usize].push((version, i as u32, leg as u8));
            if signed(after) < 0 || signed(before) < 0 {
                c.negative_balances += 1;
                problem(
                    &mut c,
                    "overdraft: ",
                    format!(
                        "worker {} moved {} from account {} at version {version}, taking it from {} to {}",
                        t.worker, t.amount, account, signed(before), signed(after)
                    ),
                );
            }
        }
    }
    let finals = check_end(&mut c, run, &next_seq);
    let initial = info.initial;
    for (a, legs) in legs.iter_mut().enumerate() {
        // Stable: among transfers that read the same version, the first persisted comes first.
        legs.sort_by_key(|l| l.0);
        let (mut version, mut balance) = (0u32, initial);
        // Who left the current state (None: the initial one).
        let mut left_by: Option<u32> = None;
        let mut j = 0;
        while j < legs.len() {
            let (v, i, leg) = legs[j];
            let mut k = j + 1;
            while k < legs.len() && legs[k].0 == v {
                k += 1;
            }
            let t = &ts[i as usize];
            let (_, _, before, after) = t.legs()[leg as usize];
            if v > version {
                c.gaps += (v - version) as u64;
                problem(
                    &mut c,
                    "gap: ",
                    format!("no transfer of account {a} read its version {version}"),
                );
            } else if before != balance {
                c.broken_chains += 1;
                let by = left_by.map_or("the run's start".into(), |w| format!("worker {w}"));
                problem(
                    &mut c,
                    "broken chain: ",
                    format!(
                        "worker {} read account {a} at version {v} holding {}, but {by} left it holding {}",
                        t.worker,
                        signed(before),
                        signed(balance)
                    ),
                );
            }
            for &(_, other, _) in &legs[j + 1..k] {
                c.duplicates += 1;
                c.witnesses += 1;
                if c.witness_list.len() < LISTED {
                    c.witness_list.push(Witness {
                        slot: a as u32,
                        read: v,
                        written: v + 1,
                        workers: [t.worker, ts[other as usize].worker],
                        balance: Some(before),
                    });
                }
            }
            (version, balance, left_by) = (v + 1, after, Some(t.worker));
            j = k;
        }
        if let Some(region) = finals.map(|f| f[a]) {
            if region != balance {
                c.final_mismatches += 1;
                if c.final_mismatch_list.len() < LISTED {
                    c.final_mismatch_list.push(FinalMismatch {
                        slot: a as u32,
                        stored: balance,
                        region,
                    });
                }
                problem(
                    &mut c,
                    "final state: ",
                    format!(
                        "account {a}'s transfers leave it holding {} at version {version}, the region holds {}",
                        signed(balance),
                        signed(region)
                    ),
                );
            }
        }
    }
    if let Some(finals) = finals {
        let total: i64 = finals.iter().map(|&b| signed(b)).sum();
        let start = signed(initial) * accounts as i64;
        c.total_change = total - start;
        if total != start {
            problem(
                &mut c,
                "total: ",
                format!(
                    "the accounts hold {total}, the run started with {start} ({} {})",
                    if total > start {
                        "created"
                    } else {
                        "destroyed"
                    },
                    total.abs_diff(start)
                ),
            );
        }
        let negative = finals.iter().filter(|&&b| signed(b) < 0).count() as u64;
        if negative > 0 {
            c.negative_balances += negative;
            problem(
                &mut c,
                "negative balance: ",
                format!("{negative} account(s) end below zero"),
            );
        }
    }
    if c.duplicates > 0 {
        let text = format!(
            "{} account state(s) read by two transfers, first: {}",
            c.duplicates, c.witness_list[0]
        );
        c.problems.insert(0, format!("lost update: {text}"));
    }
    c.verified = c.problems.is_empty();
    c
}

/// A cache run, from its writes (events on slot 0: the value's new version) and its reads.
pub(super) fn check_cache(run: &RunHistory) -> RunCheck {
    let info = &run.info;
    let workers = info.workers as usize;
    let initial = info.initial;
    let events = &run.events;
    let reads: u64 = run.reads.iter().map(|r| r.seen.len() as u64).sum();
    let mut c = new_check(run, events.len() as u64 + reads);
    c.reads = reads;
    if !run.transfers.is_empty() {
        problem(
            &mut c,
            "foreign records: ",
            format!("{} transfers in a cache run", run.transfers.len()),
        );
    }
    let chain = ChainKey::of(info.run);
    // persisted[w]: writes, or reads, per worker (a worker does one or the other).
    let mut persisted = vec![0u64; workers];
    let mut next_seq = vec![0u64; workers];
    // cells[k]: the writes of version initial + 1 + k, and the first writer.
    let bound = initial as u64 + events.len() as u64;
    let mut cells = vec![EMPTY; events.len()];
    for (i, e) in events.iter().enumerate() {
        if e.worker as usize >= workers
            || e.slot != 0
            || e.written <= initial
            || e.written as u64 > bound
        {
            c.broken_links += 1;
            problem(
                &mut c,
                "impossible write: ",
                format!(
                    "worker {} wrote version {} on slot {} ({} writes from version {initial})",
                    e.worker,
                    e.written,
                    e.slot,
                    events.len()
                ),
            );
            continue;
        }
        if e.read.wrapping_add(1) != e.written || e.hash != chain.link(0, e.read, e.written) {
            c.broken_links += 1;
            problem(
                &mut c,
                "broken hash chain: ",
                format!(
                    "worker {} seq {} wrote version {}",
                    e.worker, e.seq, e.written
                ),
            );
        }
        sequence(&mut c, &mut next_seq[e.worker as usize], e.worker, e.seq);
        persisted[e.worker as usize] += 1;
        let cell = &mut cells[(e.written - initial - 1) as usize];
        if cell.count == 0 {
            cell.first = i as u32;
        } else {
            c.duplicates += 1;
            c.witnesses += 1;
            if c.witness_list.len() < LISTED {
                c.witness_list.push(Witness {
                    slot: 0,
                    read: e.read,
                    written: e.written,
                    workers: [events[cell.first as usize].worker, e.worker],
                    balance: None,
                });
            }
        }
        cell.count += 1;
    }
    // Versions written: initial + 1 ..= top, each exactly once.
    let top = cells
        .iter()
        .rposition(|x| x.count > 0)
        .map_or(initial, |k| initial + 1 + k as u32);
    let gaps = cells[..(top - initial) as usize]
        .iter()
        .filter(|x| x.count == 0)
        .count() as u64;
    if gaps > 0 {
        c.gaps += gaps;
        problem(
            &mut c,
            "gap: ",
            format!("{gaps} version(s) up to {top} were never written"),
        );
    }
    let writer = |v: u32| -> Option<u32> {
        let k = v.checked_sub(initial + 1)? as usize;
        cells
            .get(k)
            .filter(|x| x.count > 0)
            .map(|x| events[x.first as usize].worker)
    };
    let known = |v: u32| v == initial || writer(v).is_some();
    let mut first_read = vec![0u64; workers];
    let mut new_beside_stale = 0u64;
    for batch in &run.reads {
        let w = batch.worker as usize;
        if w >= workers {
            c.sequence_errors += 1;
            problem(
                &mut c,
                "impossible read: ",
                format!("reads of worker {w} in a run of {workers} workers"),
            );
            continue;
        }
        if batch.first != first_read[w] {
            c.sequence_errors += 1;
            problem(
                &mut c,
                "sequence: ",
                format!(
                    "worker {w}'s reads resume at {} after {}",
                    batch.first, first_read[w]
                ),
            );
        }
        for (k, seen) in batch.seen.iter().enumerate() {
            if !known(seen.value) || !known(seen.lo) || !known(seen.hi) {
                c.broken_links += 1;
                problem(
                    &mut c,
                    "phantom read: ",
                    format!(
                        "worker {w} saw value version {} beside related {} to {}, which no write made",
                        seen.value, seen.lo, seen.hi
                    ),
                );
            }
            if seen.torn() {
                c.torn_reads += 1;
                new_beside_stale += (seen.lo < seen.value) as u64;
                if c.torn_list.len() < LISTED {
                    c.torn_list.push(TornRead {
                        worker: w as u32,
                        read: batch.first + k as u64,
                        value: seen.value,
                        lo: seen.lo,
                        hi: seen.hi,
                        value_by: writer(seen.value),
                    });
                }
            }
        }
        first_read[w] = batch.first + batch.seen.len() as u64;
        persisted[w] += batch.seen.len() as u64;
    }
    let finals = check_end(&mut c, run, &persisted);
    if let Some(finals) = finals {
        let value = finals.first().copied().unwrap_or(initial);
        if finals.iter().any(|&r| r != value) || !known(value) {
            c.final_mismatches += 1;
            problem(
                &mut c,
                "final state: ",
                format!("the region ends with value and related versions {finals:?}"),
            );
        }
    }
    if c.torn_reads > 0 {
        let text = format!(
            "{} of {reads} reads saw the value beside related entries of another version ({new_beside_stale} a new value beside stale entries), first: {}",
            c.torn_reads, c.torn_list[0]
        );
        c.problems.insert(0, format!("torn read: {text}"));
    }
    if c.duplicates > 0 {
        let text = format!("{} version(s) written twice", c.duplicates);
        problem(&mut c, "duplicate write: ", text);
    }
    c.verified = c.problems.is_empty();
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::event::link_hash;
    use crate::history::{Event, Reads, RunEnd, RunInfo, Seen, Transfer};
    use crate::verify::Shape;

    fn info(strategy: &str, workers: u32, slots: u32, initial: u32) -> RunInfo {
        RunInfo {
            run: 7,
            strategy: strategy.into(),
            workers,
            slots,
            ops: 10,
            initial,
            seed: 1,
            persist: "events".into(),
        }
    }

    fn end(finals: Vec<u32>, completed: Vec<u64>) -> Option<RunEnd> {
        Some(RunEnd {
            run: 7,
            fingerprint: fingerprint(&finals),
            finals,
            completed,
            killed: vec![],
        })
    }

    /// (worker, seq, from, to, amount, from_version, from_before, to_version, to_before)
    fn transfer(t: [u32; 9]) -> Transfer {
        Transfer {
            worker: t[0],
            seq: t[1] as u64,
            from: t[2],
            to: t[3],
            amount: t[4],
            from_version: t[5],
            from_before: t[6],
            to_version: t[7],
            to_before: t[8],
            invoke_ns: 0,
            complete_ns: 0,
        }
    }

    fn ledger(transfers: &[[u32; 9]], finals: Vec<u32>, completed: Vec<u64>) -> RunCheck {
        check_ledger(&RunHistory {
            info: info("ledger ordered-locks", 2, 3, 100),
            events: vec![],
            transfers: transfers.iter().map(|&t| transfer(t)).collect(),
            reads: vec![],
            end: end(finals, completed),
            stored: None,
            damaged: vec![],
        })
    }

    #[test]
    fn a_ledger_whose_chains_end_at_the_finals_verifies() {
        // 0 -> 1 (5), then 1 -> 2 (7): every account's versions chain from 100.
        let c = ledger(
            &[
                [0, 0, 0, 1, 5, 0, 100, 0, 100],
                [1, 0, 1, 2, 7, 1, 105, 0, 100],
            ],
            vec![95, 98, 107],
            vec![1, 1],
        );
        assert!(c.verified, "{:?}", c.problems);
        assert_eq!(c.persisted, 2);
    }

    #[test]
    fn two_transfers_reading_one_account_version_are_a_lost_update_with_both_workers() {
        // Both debit account 0 from version 0 (balance 100): one debit vanished.
        let c = ledger(
            &[
                [0, 0, 0, 1, 5, 0, 100, 0, 100],
                [1, 0, 0, 2, 5, 0, 100, 0, 100],
            ],
            vec![95, 105, 105],
            vec![1, 1],
        );
        assert!(!c.verified);
        assert_eq!(c.duplicates, 1);
        assert_eq!(c.witness_list[0].workers, [0, 1]);
        assert_eq!(c.witness_list[0].slot, 0);
        assert_eq!(
            c.witness_list[0].to_string(),
            "worker 0 and worker 1 both read version 0 of account 0 (balance 100) and both wrote version 1"
        );
        assert!(
            c.problems[0].starts_with("lost update: "),
            "{:?}",
            c.problems
        );
        assert_eq!(c.total_change, 5);
        assert!(
            c.problems.iter().any(|p| p.starts_with("total: ")),
            "{:?}",
            c.problems
        );
    }

    #[test]
    fn a_transfer_that_read_a_state_nobody_left_breaks_the_chain() {
        // Account 1's version 1 claims 90, but version 0's transfer left it at 105.
        let c = ledger(
            &[
                [0, 0, 0, 1, 5, 0, 100, 0, 100],
                [1, 0, 1, 2, 7, 1, 90, 0, 100],
            ],
            vec![95, 83, 107],
            vec![1, 1],
        );
        assert!(!c.verified);
        assert_eq!(c.broken_chains, 1);
        assert!(
            c.problems.iter().any(|p| p.contains(
                "worker 1 read account 1 at version 1 holding 90, but worker 0 left it holding 105"
            )),
            "{:?}",
            c.problems
        );
    }

    #[test]
    fn a_chain_that_does_not_end_at_the_regions_balance_is_a_final_mismatch() {
        let c = ledger(
            &[[0, 0, 0, 1, 5, 0, 100, 0, 100]],
            vec![95, 104, 101],
            vec![1, 0],
        );
        assert!(!c.verified);
        assert_eq!(c.final_mismatches, 2);
        assert_eq!(c.final_mismatch_list[0].slot, 1);
        assert_eq!(c.final_mismatch_list[0].stored, 105);
        assert_eq!(c.final_mismatch_list[0].region, 104);
    }

    #[test]
    fn an_overdraft_a_gap_and_an_unpersisted_transfer_are_each_named() {
        // Worker 0 moves 150 out of 100; worker 1 reads account 2 at version 1 (no version 0);
        // worker 1 acknowledged 2 transfers but persisted 1.
        let c = ledger(
            &[
                [0, 0, 0, 1, 150, 0, 100, 0, 100],
                [1, 0, 2, 1, 1, 1, 100, 1, 250],
            ],
            vec![(-50i32) as u32, 251, 99],
            vec![1, 2],
        );
        assert!(!c.verified);
        assert!(c.negative_balances >= 2, "{c:?}");
        assert_eq!(c.gaps, 1);
        assert_eq!(c.sequence_errors, 1);
        for kind in ["overdraft: ", "gap: ", "acknowledged but not persisted: "] {
            assert!(
                c.problems.iter().any(|p| p.starts_with(kind)),
                "{kind}: {:?}",
                c.problems
            );
        }
    }

    fn cache(reads: Vec<Seen>, finals: Vec<u32>) -> RunCheck {
        // One writer (worker 0) wrote versions 1 and 2; worker 1 read.
        let events = (1..=2u32)
            .map(|v| Event {
                run: 7,
                worker: 0,
                seq: v as u64 - 1,
                slot: 0,
                read: v - 1,
                written: v,
                retries: 0,
                invoke_ns: 0,
                complete_ns: 0,
                hash: link_hash(7, 0, v - 1, v),
            })
            .collect();
        let n = reads.len() as u64;
        check_cache(&RunHistory {
            info: info("cache two-step", 2, 3, 0),
            events,
            transfers: vec![],
            reads: vec![Reads {
                worker: 1,
                first: 0,
                seen: reads,
            }],
            end: end(finals, vec![2, n]),
            stored: None,
            damaged: vec![],
        })
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
            c.problems[0].starts_with("torn read: 2 of 3 reads"),
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
            c.problems.iter().any(|p| p.starts_with("phantom read: ")),
            "{:?}",
            c.problems
        );
        assert_eq!(c.final_mismatches, 1);
    }

    #[test]
    fn the_scenario_shape_comes_from_the_run_header() {
        assert_eq!(Shape::of("ledger two-rmw"), Shape::Ledger);
        assert_eq!(Shape::of("cache seqlock"), Shape::Cache);
        assert_eq!(Shape::of("record whole-record"), Shape::Counter);
        assert_eq!(Shape::of("atomic"), Shape::Counter);
    }
}
