//! ledger: accounts in slots; workers transfer random amounts between two accounts, refusing
//! overdrafts. The total across accounts never changes (the classic bank test).
//!
//! - `two-rmw` (the bug): debit and credit as two separate read-modify-writes, with
//!   `--race-window` spins between a read and its write.
//! - `ordered-locks`: both accounts' futex locks, lowest index first.
//! - `unordered-locks`: `from`'s lock, then `to`'s: two opposite transfers deadlock. The
//!   watchdog must catch it and name the cycle; each worker announces the accounts it holds
//!   and the one it waits for, in its tally words, for exactly that.
//! - `global-lock`: one lock for every transfer (slot 0's lock word: no per-account lock is
//!   used in this variant).
//!
//! The last `--auditors` workers sample the total during the run under the variant's
//! discipline (no lock for the bug, every account lock in index order, or the global lock).
//!
//! Each account has a version word beside its balance (the scenario's scratch array), bumped
//! by every transfer that touches the account, under the same discipline as the balance (its
//! lock, the global lock, or racily in the bug). A balance goes up and down, so it cannot name
//! a state the way a counter's value does; the version does. With `--store`, every transfer
//! that moved money is persisted with both accounts' (version, balance) read, so `torture
//! verify` can chain each account's states: two transfers that read the same version are a
//! lost update, with both workers named.

use std::marker::PhantomData;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;

use super::{widen, Check, Env, Fix, Judgement, Layout, Plan, Rng, ScenarioKind, Variant};
use crate::check::Count;
use crate::futex::Scope;
use crate::history::Transfer;
use crate::region::Region;
use crate::strategy::{Applied, LockWord};
use crate::worker::WorkerReport;

/// The most accounts: each worker announces the accounts it holds as a 64-bit mask.
pub const MAX_ACCOUNTS: usize = 64;

/// Tally words of a ledger worker.
mod tally {
    pub const TRANSFERS: usize = 0;
    pub const REFUSED: usize = 1;
    pub const AUDITS: usize = 2;
    pub const AUDIT_MISMATCHES: usize = 3;
    /// Live during the run (read by the watchdog): bit a set while account a's lock is held.
    pub const HOLDING: usize = 4;
    /// Live during the run: 1 + the account whose lock this worker waits for, or 0.
    pub const WAITING: usize = 5;
}

pub struct Ledger<S> {
    fix: Fix,
    accounts: usize,
    _scope: PhantomData<S>,
}

impl<S> Ledger<S> {
    pub fn new(env: &Env<'_>) -> Self {
        let Variant::Fix(fix) = env.plan.variant else {
            unreachable!("ledger runs --fix variants (validated)")
        };
        Ledger {
            fix,
            accounts: env.region.slot_count(),
            _scope: PhantomData,
        }
    }
}

pub struct Teller {
    auditor: bool,
    rng: Rng,
    first: bool,
    expected_total: i64,
    tally: [u64; 4],
}

impl<S: Scope> Ledger<S> {
    /// Takes account `a`'s lock, announcing the wait and then the hold.
    fn lock(env: &Env<'_>, a: usize, applied: &mut Applied) {
        let t = env.tally();
        // Relaxed: announcements for the watchdog's diagnosis only; a deadlocked worker's
        // words stay put, and that is when they are read.
        t[tally::WAITING].store(a as u64 + 1, Relaxed);
        let (retries, waits) = LockWord::<S>::lock(env.region.slot(a).lock, env.owner_id());
        t[tally::WAITING].store(0, Relaxed);
        t[tally::HOLDING].fetch_or(1 << a, Relaxed);
        applied.retries += retries;
        applied.waits += waits;
    }

    fn unlock(env: &Env<'_>, a: usize, applied: &mut Applied) {
        // Relaxed: as in `lock`.
        env.tally()[tally::HOLDING].fetch_and(!(1 << a), Relaxed);
        applied.wakes += LockWord::<S>::unlock(env.region.slot(a).lock) as u32;
    }

    /// Moves `amount` if `from` can pay, bumps both versions and persists the transfer;
    /// inside whatever protects the two accounts.
    /// Relaxed: ordered by the locks in the fixed variants.
    fn transfer_locked(env: &Env<'_>, from: usize, to: usize, amount: u32) -> bool {
        let f = env.region.slot(from).value;
        let t = env.region.slot(to).value;
        let balance = f.load(Relaxed);
        if balance < amount {
            return false;
        }
        let (fv, tv) = (version(env, from), version(env, to));
        let (from_version, to_version) = (fv.load(Relaxed) as u32, tv.load(Relaxed) as u32);
        let credit = t.load(Relaxed);
        f.store(balance - amount, Relaxed);
        t.store(credit + amount, Relaxed);
        fv.store(from_version as u64 + 1, Relaxed);
        tv.store(to_version as u64 + 1, Relaxed);
        // Inside the locks: the versions and balances recorded are the ones they protected
        // (verify orders records by version; batches reach the file in any order).
        env.transferred(Transfer {
            from: from as u32,
            to: to as u32,
            amount,
            from_version,
            from_before: balance,
            to_version,
            to_before: credit,
            ..Transfer::default()
        });
        true
    }

    fn transfer(&self, env: &Env<'_>, me: &mut Teller) -> Applied {
        let first = std::mem::take(&mut me.first);
        let a = self.accounts as u64;
        let (mut from, mut to, mut amount) = {
            let from = me.rng.below(a) as usize;
            let to = (from + 1 + me.rng.below(a - 1) as usize) % self.accounts;
            (from, to, 1 + me.rng.below(10) as u32)
        };
        let scripted = first && env.script.on;
        if scripted {
            // two-rmw: both debit account 0 (credits go to different accounts, so the lost
            // debit cannot be cancelled by a lost credit); unordered: opposite directions.
            (from, to, amount) = match (self.fix, env.w) {
                (Fix::UnorderedLocks, 0) => (0, 1, 1),
                (Fix::UnorderedLocks, _) => (1, 0, 1),
                (_, w) => (0, 1 + w, 1),
            };
        }
        let mut applied = Applied::default();
        let moved = match self.fix {
            Fix::TwoRmw => {
                let f = env.region.slot(from).value;
                let t = env.region.slot(to).value;
                let (fv, tv) = (version(env, from), version(env, to));
                // Relaxed: racy by design; each step alone is a plain read then write (of the
                // balance and its version, as an application would read and write a row).
                let balance = f.load(Relaxed);
                let from_version = fv.load(Relaxed) as u32;
                if balance < amount {
                    false
                } else {
                    if scripted {
                        // Both workers have read the same balance before either writes it.
                        env.script.arrive();
                        env.script.wait_for(2);
                    }
                    widen(env.plan.race_window);
                    f.store(balance.wrapping_sub(amount), Relaxed);
                    fv.store(from_version as u64 + 1, Relaxed);
                    let credit = t.load(Relaxed);
                    let to_version = tv.load(Relaxed) as u32;
                    widen(env.plan.race_window);
                    t.store(credit.wrapping_add(amount), Relaxed);
                    tv.store(to_version as u64 + 1, Relaxed);
                    // As the worker believes it happened: a lost debit shows in the store as
                    // one version of `from` read by two transfers.
                    env.transferred(Transfer {
                        from: from as u32,
                        to: to as u32,
                        amount,
                        from_version,
                        from_before: balance,
                        to_version,
                        to_before: credit,
                        ..Transfer::default()
                    });
                    true
                }
            }
            Fix::OrderedLocks => {
                let (lo, hi) = (from.min(to), from.max(to));
                Self::lock(env, lo, &mut applied);
                Self::lock(env, hi, &mut applied);
                let moved = Self::transfer_locked(env, from, to, amount);
                Self::unlock(env, hi, &mut applied);
                Self::unlock(env, lo, &mut applied);
                moved
            }
            Fix::UnorderedLocks => {
                Self::lock(env, from, &mut applied);
                if scripted {
                    // Each holds its first lock until the other holds its own: a cycle.
                    env.script.arrive();
                    env.script.wait_for(2);
                }
                Self::lock(env, to, &mut applied);
                let moved = Self::transfer_locked(env, from, to, amount);
                Self::unlock(env, to, &mut applied);
                Self::unlock(env, from, &mut applied);
                moved
            }
            Fix::GlobalLock => {
                let lock = env.region.slot(0).lock;
                let (retries, waits) = LockWord::<S>::lock(lock, env.owner_id());
                let moved = Self::transfer_locked(env, from, to, amount);
                let woke = LockWord::<S>::unlock(lock);
                applied.retries += retries;
                applied.waits += waits;
                applied.wakes += woke as u32;
                moved
            }
            other => unreachable!("{} is not a ledger variant (validated)", other.name()),
        };
        if moved {
            me.tally[tally::TRANSFERS] += 1;
        } else {
            me.tally[tally::REFUSED] += 1;
        }
        applied.written = amount;
        applied
    }

    /// Sums every balance under the variant's discipline.
    fn audit(&self, env: &Env<'_>, me: &mut Teller) -> Applied {
        let mut applied = Applied::default();
        // Balances are read as signed: a wrapped debit shows as a negative balance.
        // Relaxed: racy in two-rmw (that is the point); ordered by the locks otherwise.
        let sum = |env: &Env<'_>| -> i64 {
            (0..self.accounts)
                .map(|a| env.region.slot(a).value.load(Relaxed) as i32 as i64)
                .sum()
        };
        let total = match self.fix {
            Fix::TwoRmw => sum(env),
            Fix::OrderedLocks | Fix::UnorderedLocks => {
                for a in 0..self.accounts {
                    Self::lock(env, a, &mut applied);
                }
                let total = sum(env);
                for a in (0..self.accounts).rev() {
                    Self::unlock(env, a, &mut applied);
                }
                total
            }
            Fix::GlobalLock => {
                let lock = env.region.slot(0).lock;
                let (retries, waits) = LockWord::<S>::lock(lock, env.owner_id());
                let total = sum(env);
                applied.wakes += LockWord::<S>::unlock(lock) as u32;
                applied.retries += retries;
                applied.waits += waits;
                total
            }
            other => unreachable!("{} is not a ledger variant (validated)", other.name()),
        };
        me.tally[tally::AUDITS] += 1;
        if total != me.expected_total {
            me.tally[tally::AUDIT_MISMATCHES] += 1;
        }
        applied
    }
}

impl<S: Scope> super::Scenario for Ledger<S> {
    type Worker = Teller;

    fn start(&self, env: &Env<'_>) -> Teller {
        let workers = env.region.worker_count();
        Teller {
            auditor: match env.plan.work {
                super::Work::Ledger { auditors } => env.w >= workers - auditors,
                _ => unreachable!("a ledger worker runs a ledger plan"),
            },
            rng: super::rng(env.plan.seed, env.w, 0x1ED6E2),
            first: true,
            expected_total: env.plan.initial as i32 as i64 * self.accounts as i64,
            tally: [0; 4],
        }
    }

    #[inline]
    fn step(&self, env: &Env<'_>, me: &mut Teller, _i: u64) -> Applied {
        if me.auditor {
            self.audit(env, me)
        } else {
            self.transfer(env, me)
        }
    }

    fn finish(&self, env: &Env<'_>, me: Teller) {
        env.publish_tally(&me.tally);
    }
}

/// Account `a`'s version word (see the module doc).
fn version<'e>(env: &'e Env<'_>, a: usize) -> &'e AtomicU64 {
    &env.scratch[env.layout.array_start() + a]
}

/// Transfers worker `w` made (what it persisted with a store; refusals and audits are not
/// transfers).
pub fn transfers(region: &Region, w: usize) -> u64 {
    super::tally(region, w, tally::TRANSFERS)
}

/// The total never changes (at the end and in every audit) and no balance goes negative.
pub fn check(plan: &Plan, region: &Region, reports: &[WorkerReport]) -> Judgement {
    let sum = |k: usize| super::tally_sum(region, reports, k);
    let balances: Vec<i64> = region.values().iter().map(|&v| v as i32 as i64).collect();
    let expected = plan.initial as i32 as i64 * balances.len() as i64;
    let total: i64 = balances.iter().sum();
    let negative = balances.iter().filter(|&&b| b < 0).count() as u64;
    let mismatches = sum(tally::AUDIT_MISMATCHES);
    let drift = total.abs_diff(expected);
    let mut c = Check {
        scenario: "ledger",
        variant: plan.variant.name(),
        invariant: ScenarioKind::Ledger.invariant(),
        violations: drift + negative + mismatches,
        ..Check::default()
    };
    if drift > 0 {
        c.findings.push(format!(
            "the total changed from {expected} to {total} ({} {drift})",
            if total > expected {
                "created"
            } else {
                "destroyed"
            }
        ));
    }
    if negative > 0 {
        c.findings
            .push(format!("{negative} account(s) went negative: {balances:?}"));
    }
    if mismatches > 0 {
        c.findings.push(format!(
            "{mismatches} of {} audits during the run saw a different total",
            sum(tally::AUDITS)
        ));
    }
    c.counters.insert("transfers".into(), sum(tally::TRANSFERS));
    c.counters
        .insert("refused overdrafts".into(), sum(tally::REFUSED));
    c.counters.insert("audits".into(), sum(tally::AUDITS));
    c.counters.insert("audit mismatches".into(), mismatches);
    let count = Count {
        expected: expected.max(0) as u64,
        observed: total.max(0) as u64,
        lost: drift,
        unexpected: 0,
        wrong_slots: 0,
    };
    Judgement {
        count,
        wrong_slots: Vec::new(),
        check: Some(c),
    }
}

/// For the watchdog: the cycle of workers each waiting for a lock another holds, named.
pub fn explain_stall(region: &Region) -> Option<String> {
    let layout = Layout {
        workers: region.worker_count(),
    };
    let scratch = region.scratch();
    let accounts = region.slot_count().min(MAX_ACCOUNTS);
    // Relaxed: a stalled run is quiescent; these are announcements, not data.
    let word = |w: usize, k: usize| scratch[layout.tally(w)][k].load(Relaxed);
    let mut holder = vec![None; accounts];
    for w in 0..layout.workers {
        let held = word(w, tally::HOLDING);
        for (a, h) in holder.iter_mut().enumerate() {
            if held & (1 << a) != 0 {
                *h = Some(w);
            }
        }
    }
    let waits_on = |w: usize| -> Option<(usize, usize)> {
        let a = (word(w, tally::WAITING) as usize).checked_sub(1)?;
        Some((a, (*holder.get(a)?)?))
    };
    for start in 0..layout.workers {
        // Follow "waits for the holder of" from `start`; each worker waits for at most one
        // lock, so a cycle is found within `workers` steps if there is one.
        let mut path = vec![start];
        let mut w = start;
        while let Some((_, next)) = waits_on(w) {
            if let Some(at) = path.iter().position(|&p| p == next) {
                let cycle = &path[at..];
                let named: Vec<String> = cycle
                    .iter()
                    .take(8)
                    .map(|&w| {
                        let (a, h) = waits_on(w).expect("on the cycle");
                        let held: Vec<String> = (0..accounts)
                            .filter(|&x| word(w, tally::HOLDING) & (1 << x) != 0)
                            .map(|x| x.to_string())
                            .collect();
                        format!(
                            "worker {w} holds account {} and waits for account {a}, held by worker {h}",
                            held.join("+")
                        )
                    })
                    .collect();
                return Some(format!(
                    "deadlock: a cycle of {} workers ({})",
                    cycle.len(),
                    named.join("; ")
                ));
            }
            if path.len() > layout.workers {
                break;
            }
            path.push(next);
            w = next;
        }
    }
    None
}
