//! votes: poll options in slots, one vote per update (the vote-counting incident).
//!
//! A voter submits an option id as text. With `--invalid-rate P` some ids are bad, in the three
//! ways the incident listed: out of range, non-numeric, trailing garbage. Each is rejected with
//! its reason (as `Integer.parse` plus the `{0, []}` branch did), counted, and never touches a
//! slot. An accepted vote goes through the chosen strategy; the value it writes is the vote's
//! `votes_after`, marked in a per-option bitmap: the incident's check is that per option the
//! `votes_after` values run initial+1 … final with no gap and no repeat.

use std::fmt::Write;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;

use super::{Check, Judgement, Layout, Plan, Rng, StrategyWorker, Work, Worker};
use crate::check;
use crate::pick::{Pick, SlotPicker};
use crate::probe::Hooks;
use crate::region::{Region, SlotTable};
use crate::strategy::{Applied, Strategy};
use crate::target::{Session, UpdateError};
use crate::worker::{self, Halt, Outcome, Step, WorkerReport};

/// Why a ballot was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// A number, but no such option.
    OutOfRange,
    /// No number at all.
    NonNumeric,
    /// A number followed by something else ("3x").
    TrailingGarbage,
}

impl Rejection {
    pub const ALL: [Rejection; 3] = [
        Rejection::OutOfRange,
        Rejection::NonNumeric,
        Rejection::TrailingGarbage,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Rejection::OutOfRange => "out-of-range",
            Rejection::NonNumeric => "non-numeric",
            Rejection::TrailingGarbage => "trailing-garbage",
        }
    }
}

/// Parses an option id the way the fixed handler does: an optional sign and at least one digit
/// (`Integer.parse`), nothing after it, and an option that exists.
pub fn parse_ballot(text: &str, options: usize) -> Result<usize, Rejection> {
    let bytes = text.as_bytes();
    let sign = usize::from(matches!(bytes.first(), Some(b'+' | b'-')));
    let digits = bytes[sign..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    if digits == 0 {
        return Err(Rejection::NonNumeric);
    }
    if sign + digits != bytes.len() {
        return Err(Rejection::TrailingGarbage);
    }
    match text.parse::<i128>() {
        Ok(n) if n >= 0 && (n as u128) < options as u128 => Ok(n as usize),
        // Negative, too large, or beyond i128: no such option either way.
        _ => Err(Rejection::OutOfRange),
    }
}

/// Salt of the ballot stream (which ballots are bad, and how).
const BALLOT_SALT: u64 = 0x00B4_1107;

/// Tally words of a votes worker.
mod tally {
    /// Rejections by reason, in `Rejection::ALL` order: 0, 1, 2.
    pub const REJECTED: usize = 0;
    /// Bad ids the parser accepted, or good ids it refused (must stay 0).
    pub const MISPARSED: usize = 3;
    /// votes_after values already marked by another vote.
    pub const REPEATS: usize = 4;
    /// votes_after values beyond what the option can reach.
    pub const OUT_OF_SEQUENCE: usize = 5;
    pub const ACCEPTED: usize = 6;
}

/// Votes worker `w` had accepted (each one persisted as an event when the run has a store).
pub fn accepted(region: &Region, w: usize) -> u64 {
    super::tally(region, w, tally::ACCEPTED)
}

/// One ballot: the text a voter sent and what it should parse to.
fn ballot(
    picker: &mut SlotPicker,
    rng: &mut Rng,
    rate: f64,
    options: usize,
    text: &mut String,
) -> Result<usize, Rejection> {
    text.clear();
    let r = rng.next_u64();
    let bad = rate > 0.0 && ((r >> 11) as f64 / (1u64 << 53) as f64) < rate;
    if !bad {
        let option = picker.next_slot();
        let _ = write!(text, "{option}");
        return Ok(option);
    }
    let kind = Rejection::ALL[(r % 3) as usize];
    let pick = (r >> 2) as usize;
    match kind {
        Rejection::OutOfRange => match pick % 4 {
            0 => text.push_str("-1"),
            1 => text.push_str("99999999999999999999999999999999999999999"),
            _ => {
                let _ = write!(text, "{}", options + pick % 1000);
            }
        },
        Rejection::NonNumeric => text.push_str(["abc", "", "one", "+", " 1", "x0"][pick % 6]),
        Rejection::TrailingGarbage => {
            let _ = write!(
                text,
                "{}{}",
                pick % options,
                ["x", " ", ".5", "3a", "!"][(pick >> 10) % 5]
            );
        }
    }
    Err(kind)
}

/// Worker `w`'s ballot stream: what it will vote for, and how its bad ballots go wrong.
struct Ballots {
    picker: SlotPicker,
    rng: Rng,
    rate: f64,
    options: usize,
}

impl Ballots {
    fn new(seed: u64, w: usize, options: usize, pick: Pick, rate: f64) -> Ballots {
        Ballots {
            picker: SlotPicker::new(seed, w, options, pick),
            rng: super::rng(seed, w, BALLOT_SALT),
            rate,
            options,
        }
    }

    fn next(&mut self, text: &mut String) -> Result<usize, Rejection> {
        ballot(
            &mut self.picker,
            &mut self.rng,
            self.rate,
            self.options,
            text,
        )
    }
}

/// What a worker's first `n` ballots were: accepted per option, rejected per reason.
fn replay(mut ballots: Ballots, n: u64, accepted: &mut [u64], rejected: &mut [u64; 3]) {
    let mut text = String::new();
    for _ in 0..n {
        match ballots.next(&mut text) {
            Ok(o) => accepted[o] += 1,
            Err(k) => rejected[k as usize] += 1,
        }
    }
}

/// Each option's first bit in the `votes_after` bitmap (the options' accepted votes, summed),
/// with the total last. Replayed before the fork, so every worker knows the layout.
pub fn bitmap_offsets(plan: &Plan, rate: f64) -> Vec<u64> {
    let mut accepted = vec![0u64; plan.slots];
    let mut rejected = [0u64; 3];
    for w in 0..plan.workers {
        let ballots = Ballots::new(plan.seed, w, plan.slots, plan.pick, rate);
        replay(ballots, plan.ops, &mut accepted, &mut rejected);
    }
    let mut offsets = Vec::with_capacity(plan.slots + 1);
    let mut at = 0;
    for a in accepted {
        offsets.push(at);
        at += a;
    }
    offsets.push(at);
    offsets
}

/// A votes worker, once its hooks and strategy are chosen (the counter's one dispatch).
pub struct Voter;

impl StrategyWorker for Voter {
    fn run<S: Strategy, H: Hooks>(
        self,
        on: Worker<'_>,
        strategy: &S,
        hooks: H,
    ) -> Option<WorkerReport> {
        let Worker { region, plan, ctl } = on;
        let Work::Votes {
            invalid_rate,
            bitmap,
        } = &plan.work
        else {
            unreachable!("a votes worker runs a votes plan")
        };
        let layout = Layout {
            workers: region.worker_count(),
        };
        let mut step = Vote {
            strategy,
            hooks,
            slots: region.slots(),
            ballots: Ballots::new(plan.seed, ctl.worker, plan.slots, plan.pick, *invalid_rate),
            text: String::with_capacity(64),
            tally: [0; 7],
            bitmap,
            initial: plan.initial,
            words: &region.scratch()[layout.array_start()..],
            tally_words: &region.scratch()[layout.tally(ctl.worker)],
        };
        worker::run(&mut step, ctl, plan.ops, plan.latency, plan.clock)
    }
}

/// One ballot: parse it; an accepted vote goes through the strategy (which persists its event
/// through the hooks: inside its lock, or right after its winning step).
struct Vote<'a, S, H> {
    strategy: &'a S,
    hooks: H,
    slots: SlotTable<'a>,
    ballots: Ballots,
    text: String,
    tally: [u64; 7],
    bitmap: &'a [u64],
    initial: u32,
    /// The `votes_after` bitmap words.
    words: &'a [AtomicU64],
    tally_words: &'a [AtomicU64],
}

impl<S: Strategy, H: Hooks> Step for Vote<'_, S, H> {
    #[inline]
    fn update(&mut self, _: u64) -> Result<Outcome, Halt> {
        if self.hooks.store_failed() {
            return Err(Halt::Store);
        }
        let meant = self.ballots.next(&mut self.text);
        let parsed = parse_ballot(&self.text, self.slots.len());
        if parsed != meant {
            self.tally[tally::MISPARSED] += 1;
        }
        let option = match parsed {
            Ok(o) => o,
            Err(why) => {
                self.tally[tally::REJECTED + why as usize] += 1;
                return Ok(Outcome::Applied(Applied::default()));
            }
        };
        let slot = self.slots.get(option);
        self.hooks.begin(option, self.tally[tally::ACCEPTED] + 1);
        let applied = self.strategy.apply(slot, &self.hooks);
        self.tally[tally::ACCEPTED] += 1;
        // votes_after: the value this vote left behind.
        mark(
            self.bitmap,
            self.words,
            self.initial,
            option,
            applied.written,
            &mut self.tally,
        );
        Ok(Outcome::Applied(applied))
    }

    fn finish(&mut self) {
        super::publish_tally(self.tally_words, &self.tally);
    }
}

/// One ballot on a target other than memory: the ballot goes to the target as the voter typed
/// it, and the target (its constraints) accepts or refuses it; the tallies and the
/// `votes_after` bitmap are the memory voter's, so the check is the same.
pub struct RemoteVote<'a, Se> {
    session: Se,
    ballots: Ballots,
    text: String,
    tally: [u64; 7],
    bitmap: &'a [u64],
    initial: u32,
    words: &'a [AtomicU64],
    tally_words: &'a [AtomicU64],
}

impl<'a, Se: Session> RemoteVote<'a, Se> {
    pub fn new(session: Se, region: &'a Region, plan: &'a Plan, worker: usize) -> Self {
        let Work::Votes {
            invalid_rate,
            bitmap,
        } = &plan.work
        else {
            unreachable!("a votes worker runs a votes plan")
        };
        let layout = Layout {
            workers: region.worker_count(),
        };
        RemoteVote {
            session,
            ballots: Ballots::new(plan.seed, worker, plan.slots, plan.pick, *invalid_rate),
            text: String::with_capacity(64),
            tally: [0; 7],
            bitmap,
            initial: plan.initial,
            words: &region.scratch()[layout.array_start()..],
            tally_words: &region.scratch()[layout.tally(worker)],
        }
    }
}

impl<Se: Session> Step for RemoteVote<'_, Se> {
    #[inline]
    fn update(&mut self, _: u64) -> Result<Outcome, Halt> {
        let meant = self.ballots.next(&mut self.text);
        let applied = match self.session.vote(&self.text) {
            Ok(a) => a,
            Err(UpdateError::Rejected(reason)) => {
                match Rejection::ALL.iter().position(|r| r.name() == reason) {
                    Some(k) => {
                        self.tally[tally::REJECTED + k] += 1;
                        if meant != Err(Rejection::ALL[k]) {
                            self.tally[tally::MISPARSED] += 1;
                        }
                    }
                    None => self.tally[tally::MISPARSED] += 1,
                }
                // A refused ballot is one of the worker's ballots, as on memory (the check
                // replays `completed` ballots).
                return Ok(Outcome::Applied(Applied::default()));
            }
            Err(UpdateError::Unknown(m)) => return Err(Halt::Unknown(m)),
            Err(UpdateError::Fatal(m)) => return Err(Halt::Fatal(m)),
        };
        let Ok(option) = meant else {
            // The target accepted a ballot the voter's parser refuses.
            self.tally[tally::MISPARSED] += 1;
            self.tally[tally::ACCEPTED] += 1;
            return Ok(Outcome::Applied(applied));
        };
        self.tally[tally::ACCEPTED] += 1;
        mark(
            self.bitmap,
            self.words,
            self.initial,
            option,
            applied.written,
            &mut self.tally,
        );
        Ok(Outcome::Applied(applied))
    }

    fn finish(&mut self) {
        super::publish_tally(self.tally_words, &self.tally);
    }
}

/// Marks `votes_after` (`written`) of a vote for `option` in the bitmap: a repeat or an
/// impossible value is tallied.
fn mark(
    bitmap: &[u64],
    words: &[AtomicU64],
    initial: u32,
    option: usize,
    written: u32,
    tally: &mut [u64; 7],
) {
    let votes_after = written as u64;
    let first = bitmap[option];
    let len = bitmap[option + 1] - first;
    match votes_after.checked_sub(initial as u64 + 1) {
        Some(k) if k < len => {
            let bit = first + k;
            let word = &words[(bit / 64) as usize];
            // Relaxed: the parent reads the bitmap only after every worker is done (reaped, or
            // its report read), which orders it; fetch_or alone makes each bit's first setter
            // unique.
            if word.fetch_or(1 << (bit % 64), Relaxed) & (1 << (bit % 64)) != 0 {
                tally[tally::REPEATS] += 1;
            }
        }
        _ => tally[tally::OUT_OF_SEQUENCE] += 1,
    }
}

/// The incident's check: totals exact (rejected ballots excluded), each rejection counted
/// under its reason, and per option `votes_after` running initial+1 … final.
pub fn check(plan: &Plan, region: &Region, finals: &[u32], reports: &[WorkerReport]) -> Judgement {
    let Work::Votes {
        invalid_rate,
        bitmap,
    } = &plan.work
    else {
        unreachable!("checked as votes: a votes plan")
    };
    // The options' final counts: the region's, or the target's rows.
    let options = finals.len();
    let mut accepted = vec![0u64; options];
    let mut rejected = [0u64; 3];
    let mut counted = [0u64; 7];
    for r in reports {
        let ballots = Ballots::new(plan.seed, r.worker, options, plan.pick, *invalid_rate);
        replay(ballots, r.completed, &mut accepted, &mut rejected);
        for (k, c) in counted.iter_mut().enumerate() {
            *c += super::tally(region, r.worker, k);
        }
    }
    let values = finals;
    let (count, wrong) = check::count(plan.initial, &accepted, values);
    let mut c = Check {
        scenario: "votes",
        variant: plan.variant.name(),
        invariant: super::ScenarioKind::Votes.invariant(),
        ..Check::default()
    };
    // Gaps: votes_after values in initial+1 … initial+accepted nobody wrote.
    let words = &region.scratch()[Layout {
        workers: region.worker_count(),
    }
    .array_start()..];
    let bit = |b: u64| words[(b / 64) as usize].load(Relaxed) & (1 << (b % 64)) != 0;
    let mut gaps = 0u64;
    for (o, &value) in values.iter().enumerate() {
        let (first, end) = (bitmap[o], bitmap[o + 1]);
        let missing = (first..end).filter(|&b| !bit(b)).count() as u64;
        gaps += missing;
        if missing > 0 {
            c.findings.push(format!(
                "option {o}: {} votes accepted, final count {}; {missing} votes_after values never written",
                end - first,
                value
            ));
        }
    }
    for s in wrong.iter().take(4) {
        c.findings.push(format!(
            "option {}: expected {} votes, found {} ({} lost)",
            s.slot,
            s.expected,
            s.observed,
            s.expected.saturating_sub(s.observed)
        ));
    }
    let mut mismatched = 0;
    for (k, why) in Rejection::ALL.iter().enumerate() {
        let got = counted[tally::REJECTED + k];
        c.counters.insert(format!("rejected {}", why.name()), got);
        if got != rejected[k] {
            mismatched += got.abs_diff(rejected[k]);
            c.findings.push(format!(
                "{} ballots sent {}, rejected as such {got}",
                why.name(),
                rejected[k]
            ));
        }
    }
    let repeats = counted[tally::REPEATS];
    let misparsed = counted[tally::MISPARSED] + counted[tally::OUT_OF_SEQUENCE];
    if repeats > 0 {
        c.findings.push(format!(
            "{repeats} votes reported a votes_after another vote had already reported"
        ));
    }
    if misparsed > 0 {
        c.findings.push(format!(
            "{misparsed} ballots parsed wrongly or left an impossible votes_after"
        ));
    }
    c.counters
        .insert("accepted".into(), counted[tally::ACCEPTED]);
    c.counters.insert("votes_after repeats".into(), repeats);
    c.counters.insert("votes_after gaps".into(), gaps);
    c.violations = count.lost + count.unexpected + repeats + gaps + mismatched + misparsed;
    Judgement {
        count,
        wrong_slots: Vec::new(),
        check: Some(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_bad_id_kind_is_rejected_with_its_reason() {
        assert_eq!(parse_ballot("2", 4), Ok(2));
        assert_eq!(parse_ballot("+0", 4), Ok(0));
        assert_eq!(parse_ballot("4", 4), Err(Rejection::OutOfRange));
        assert_eq!(parse_ballot("-1", 4), Err(Rejection::OutOfRange));
        assert_eq!(
            parse_ballot("99999999999999999999999999999999999999999", 4),
            Err(Rejection::OutOfRange)
        );
        for t in ["", "abc", "+", " 1", "x0"] {
            assert_eq!(parse_ballot(t, 4), Err(Rejection::NonNumeric), "{t:?}");
        }
        for t in ["1x", "2 ", "0.5", "13a"] {
            assert_eq!(parse_ballot(t, 4), Err(Rejection::TrailingGarbage), "{t:?}");
        }
    }

    #[test]
    fn generated_ballots_parse_to_what_they_meant() {
        let mut picker = SlotPicker::new(3, 0, 5, Pick::Uniform);
        let mut rng = crate::workload::rng(3, 0, BALLOT_SALT);
        let mut text = String::new();
        let mut kinds = [0; 3];
        for _ in 0..10_000 {
            let meant = ballot(&mut picker, &mut rng, 0.5, 5, &mut text);
            assert_eq!(parse_ballot(&text, 5), meant, "{text:?}");
            if let Err(k) = meant {
                kinds[k as usize] += 1;
            }
        }
        assert!(kinds.iter().all(|&n| n > 1000), "{kinds:?}");
    }
}
