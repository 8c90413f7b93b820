//! A ledger run, from its transfers: per account, the versions read run 0, 1, 2 … with no gap
//! and no repeat (two transfers that read the same state of an account: a lost update, both
//! workers named), each transfer read the balance the previous version left, each chain ends
//! at the region's final balance, no balance goes below zero and the total is what the run
//! started with.

use super::end;
use super::problem::{FinalMismatch, Problem, Witness};
use super::verdict::{RunCheck, LISTED};
use crate::history::RunHistory;

/// Balances are signed: a wrapped debit reads as negative.
fn signed(b: u32) -> i64 {
    b as i32 as i64
}

/// Checks a ledger run into `c`.
pub(super) fn check(run: &RunHistory, c: &mut RunCheck) {
    c.persisted = run.transfers.len() as u64;
    end::foreign_records(run, run.events.len() + run.reads.len(), "transfers only", c);
    let valid = possible(run, c);
    let persisted = worker_sequences(run, &valid, c);
    no_overdraft(run, &valid, c);
    let end = end::well_formed(run, c);
    let deaths = end::acknowledged(end, &persisted, false, c);
    if let Some(end) = end {
        end::fingerprint_matches(end, c);
    }
    end::damage(run, &deaths, &persisted, c);
    let states = chains(run, &valid, end.is_some(), c);
    if let Some(end) = end {
        accounts_end_at_finals(&states, &end.finals, c);
        total_kept(run.info.initial, &end.finals, c);
    }
    if let Some(first) = c.witness_list.first().cloned() {
        c.headline(Problem::LostTransfer {
            states: c.duplicates,
            first,
        });
    }
}

/// Every transfer names a worker and two different accounts of the run and moves something;
/// the others are counted as broken chains and left out of every other check.
fn possible(run: &RunHistory, c: &mut RunCheck) -> Vec<bool> {
    let (workers, accounts) = (run.info.workers, run.info.slots);
    run.transfers
        .iter()
        .map(|t| {
            let ok = t.worker < workers
                && t.from < accounts
                && t.to < accounts
                && t.from != t.to
                && t.amount != 0;
            if !ok {
                c.broken_chains += 1;
                c.problem(Problem::ImpossibleTransfer {
                    worker: t.worker,
                    amount: t.amount,
                    from: t.from,
                    to: t.to,
                    workers,
                    accounts,
                });
            }
            ok
        })
        .collect()
}

/// Each worker's transfers are its sequence 0, 1, 2 …; returns where each worker's end.
fn worker_sequences(run: &RunHistory, ok: &[bool], c: &mut RunCheck) -> Vec<u64> {
    let mut next = vec![0u64; run.info.workers as usize];
    for (_, t) in end::kept(&run.transfers, ok) {
        end::sequence(c, &mut next[t.worker as usize], t.worker, t.seq);
    }
    next
}

/// No balance read or left below zero: an overdraft that was not refused.
fn no_overdraft(run: &RunHistory, ok: &[bool], c: &mut RunCheck) {
    for (_, t) in end::kept(&run.transfers, ok) {
        for &(account, version, before, after) in &t.legs() {
            if signed(after) < 0 || signed(before) < 0 {
                c.negative_balances += 1;
                c.problem(Problem::Overdraft {
                    worker: t.worker,
                    amount: t.amount,
                    account,
                    version,
                    before: signed(before),
                    after: signed(after),
                });
            }
        }
    }
}

/// Walks each account's chain of versions: no version read twice (a lost update, witnessed),
/// each transfer read the balance the previous version left, and, where the run's end is
/// there (`complete`), no version skipped (without the end, the skipped one may be in a
/// worker's unwritten batch). Returns each account's last (version, balance).
fn chains(run: &RunHistory, ok: &[bool], complete: bool, c: &mut RunCheck) -> Vec<(u32, u32)> {
    let ts = &run.transfers;
    // Per account: every leg (version read, transfer index, which leg), sorted by version.
    let mut legs: Vec<Vec<(u32, u32, u8)>> = vec![Vec::new(); run.info.slots as usize];
    for (i, t) in end::kept(&run.transfers, ok) {
        for (leg, &(account, version, _, _)) in t.legs().iter().enumerate() {
            legs[account as usize].push((version, i as u32, leg as u8));
        }
    }
    let mut states = Vec::with_capacity(legs.len());
    for (a, legs) in legs.iter_mut().enumerate() {
        let account = a as u32;
        // Stable: among transfers that read the same version, the first persisted comes first.
        legs.sort_by_key(|l| l.0);
        let (mut version, mut balance) = (0u32, run.info.initial);
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
                if complete {
                    c.gaps += (v - version) as u64;
                    c.problem(Problem::VersionGap { account, version });
                }
            } else if before != balance {
                c.broken_chains += 1;
                c.problem(Problem::BrokenChain {
                    worker: t.worker,
                    account,
                    version: v,
                    read: signed(before),
                    left_by,
                    left: signed(balance),
                });
            }
            for &(_, other, _) in &legs[j + 1..k] {
                c.duplicates += 1;
                c.witnesses += 1;
                if c.witness_list.len() < LISTED {
                    c.witness_list.push(Witness {
                        slot: account,
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
        states.push((version, balance));
    }
    states
}

/// Each account's chain ends at the region's final balance.
fn accounts_end_at_finals(states: &[(u32, u32)], finals: &[u32], c: &mut RunCheck) {
    for (a, (&(version, balance), &region)) in states.iter().zip(finals).enumerate() {
        if region != balance {
            c.final_mismatches += 1;
            let m = FinalMismatch {
                slot: a as u32,
                stored: balance,
                region,
            };
            if c.final_mismatch_list.len() < LISTED {
                c.final_mismatch_list.push(m);
            }
            c.problem(Problem::AccountFinal {
                account: a as u32,
                balance: signed(balance),
                version,
                region: signed(region),
            });
        }
    }
}

/// The total is what the run started with, and no account ends below zero.
fn total_kept(initial: u32, finals: &[u32], c: &mut RunCheck) {
    let total: i64 = finals.iter().map(|&b| signed(b)).sum();
    let start = signed(initial) * finals.len() as i64;
    c.total_change = total - start;
    if total != start {
        c.problem(Problem::Total { total, start });
    }
    let negative = finals.iter().filter(|&&b| signed(b) < 0).count() as u64;
    if negative > 0 {
        c.negative_balances += negative;
        c.problem(Problem::NegativeBalances { accounts: negative });
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_runs::{end, run};
    use crate::history::Transfer;
    use crate::verify::{check_run, RunCheck};

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
        let mut r = run("ledger ordered-locks", 2, 3, 100);
        r.transfers = transfers.iter().map(|&t| transfer(t)).collect();
        r.end = end(finals, completed);
        check_run(&r)
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
            c.problems[0].to_string().starts_with("lost update: "),
            "{:?}",
            c.problems
        );
        assert_eq!(c.total_change, 5);
        assert!(
            c.problems
                .iter()
                .any(|p| p.to_string().starts_with("total: ")),
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
            c.problems.iter().any(|p| p.to_string().contains(
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
                c.problems.iter().any(|p| p.to_string().starts_with(kind)),
                "{kind}: {:?}",
                c.problems
            );
        }
    }
}
