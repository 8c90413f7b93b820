//! Faults injected into a process-mode run, deaths nobody asked for, and what they did.
//!
//! - `--kill K`: the parent's watcher SIGKILLs K seeded victims, each once it has
//!   acknowledged a seeded number of its updates (by progress, not by the clock: see
//!   [`KillPlan`]). A victim the watcher has not reached by its last update waits there to be
//!   killed, so every kill lands while the run has work left, however short the run.
//! - `--pause K:MS`: stop K workers, each the next one to take a lock (it stops itself there
//!   on the watcher's request; any running worker if none takes a lock soon), SIGCONT each MS
//!   later. A paused worker is alive: nothing is taken from it.
//! - `--crash-at POINT:N`: one worker (seed mod workers) SIGKILLs itself the N-th time it
//!   reaches POINT of its update. `--stop-at POINT:N` SIGSTOPs it there instead and nobody
//!   resumes it: a hung lock holder, for the watchdog's tests.
//!
//! - A worker killed from outside (the OOM killer, an operator) is a death like the others,
//!   marked unplanned ([`Cause::Unplanned`]).
//!
//! A death is data, not a failure. Accounting with deaths (Jepsen's terms): per slot,
//! acknowledged ≤ final ≤ acknowledged + in flight at death, where a worker's acknowledged
//! updates are its `completed` counter and its in-flight update is its intent record (written
//! before the update when faults are armed: slot, then op id; old and new once read), or,
//! without one, the next update its replayed slot choices say it was making. Lost
//! (acknowledged but absent) and unexpected (present but never attempted) must both be 0.
//!
//! [`recover`] frees what a dead worker held and says what became of its update in flight.

pub mod recover;

use std::fmt::{self, Write as _};
use std::str::FromStr;

use serde::{Serialize, Serializer};

use crate::pick::SplitMix64;

/// A named point of a strategy's update where `--crash-at` / `--stop-at` strike.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Point {
    /// Right after the slot was read, before the write (racy, cas, and the locks).
    AfterRead,
    /// After the winning CAS (cas) or the fetch_add (atomic): applied, not acknowledged.
    AfterCas,
    /// Right after the lock was taken, before the read (futex-lock, spin-lock, pthread).
    HoldingLock,
    /// After the write, still holding the lock (racy: after the write).
    AfterWrite,
    /// futex-lock: after the releasing swap, before the wake a waiter may be owed.
    BeforeWake,
}

impl Point {
    pub const ALL: [Point; 5] = [
        Point::AfterRead,
        Point::AfterCas,
        Point::HoldingLock,
        Point::AfterWrite,
        Point::BeforeWake,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Point::AfterRead => "after-read",
            Point::AfterCas => "after-cas",
            Point::HoldingLock => "holding-lock",
            Point::AfterWrite => "after-write",
            Point::BeforeWake => "before-wake",
        }
    }
}

impl fmt::Display for Point {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Point {
    type Err = String;
    fn from_str(s: &str) -> Result<Point, String> {
        Point::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Point::ALL.iter().map(|p| p.name()).collect();
                format!("'{s}': points are {}", names.join(", "))
            })
    }
}

/// What a worker does to itself at the point.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strike {
    /// SIGKILL: the worker dies there (`--crash-at`).
    Kill,
    /// SIGSTOP: the worker hangs there and nobody resumes it (`--stop-at`).
    Stop,
}

/// `--crash-at POINT:N` / `--stop-at POINT:N`: the N-th time (1-based) at POINT.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct StrikeAt {
    pub point: Point,
    pub n: u32,
    pub strike: Strike,
}

impl StrikeAt {
    /// Parses `POINT:N`.
    pub fn parse(s: &str, strike: Strike) -> Result<StrikeAt, String> {
        let (p, n) = s
            .rsplit_once(':')
            .ok_or_else(|| format!("'{s}': expected POINT:N, e.g. holding-lock:3"))?;
        let n = n
            .parse::<u32>()
            .ok()
            .filter(|&n| n >= 1)
            .ok_or_else(|| format!("'{s}': N counts visits from 1"))?;
        Ok(StrikeAt {
            point: p.parse()?,
            n,
            strike,
        })
    }
}

impl fmt::Display for StrikeAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.point, self.n)
    }
}

/// `--pause K:MS`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct PauseSpec {
    pub count: u32,
    pub ms: u64,
}

impl FromStr for PauseSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<PauseSpec, String> {
        let bad = || format!("'{s}': expected K:MS, e.g. 1:2000");
        let (k, ms) = s.split_once(':').ok_or_else(bad)?;
        Ok(PauseSpec {
            count: k.parse().map_err(|_| bad())?,
            ms: ms.parse().map_err(|_| bad())?,
        })
    }
}

impl fmt::Display for PauseSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.count, self.ms)
    }
}

/// The faults of one run, as the CLI asked for them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Faults {
    /// `--kill`.
    pub kill: u32,
    /// `--pause`.
    pub pause: Option<PauseSpec>,
    /// `--crash-at` / `--stop-at`.
    pub strike: Option<StrikeAt>,
}

impl Faults {
    pub fn any(&self) -> bool {
        self.kill > 0 || self.pause.is_some_and(|p| p.count > 0) || self.strike.is_some()
    }

    /// Whether a worker is meant to die during the run.
    pub fn deaths_expected(&self) -> bool {
        self.kill > 0 || self.strike.is_some_and(|s| s.strike == Strike::Kill)
    }

    /// The worker `--crash-at` / `--stop-at` strikes in a run with this seed.
    pub fn struck_worker(seed: u64, workers: usize) -> usize {
        (seed % workers as u64) as usize
    }
}

/// One `--kill` victim: who, and after how many acknowledged updates of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Victim {
    pub worker: usize,
    /// The watcher kills it once it has acknowledged this many updates (1 ..= ops - 1).
    pub at: u64,
}

/// Who `--kill` kills, and when, by progress: victim v is killed once it has acknowledged
/// `v.at` updates, a seeded point between 5% and 90% of its own updates. A victim the watcher
/// has not reached by then parks before its last update until the kill arrives (the watcher
/// looks every few ms; a short run is over before it looks twice), so every kill lands while
/// the run has work left. Seeded, and known to the parent and every worker before the fork.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KillPlan {
    pub victims: Vec<Victim>,
}

impl KillPlan {
    /// `kill` distinct victims among `workers` workers of `ops` updates each (ops ≥ 2).
    pub fn new(seed: u64, workers: usize, ops: u64, kill: u32) -> KillPlan {
        let mut rng = watcher_rng(seed);
        let mut chosen = vec![false; workers];
        let mut victims = Vec::with_capacity(kill as usize);
        let (lo, hi) = (
            (ops / 20).max(1),
            (ops * 9 / 10).clamp(1, ops.saturating_sub(1).max(1)),
        );
        while victims.len() < (kill as usize).min(workers) {
            let w = rng.below(workers as u64) as usize;
            if std::mem::replace(&mut chosen[w], true) {
                continue;
            }
            let at = lo.min(hi) + rng.below(hi.saturating_sub(lo) + 1);
            victims.push(Victim { worker: w, at });
        }
        KillPlan { victims }
    }

    /// The update (1-based op id) before which worker `w` parks if it is a victim not yet
    /// killed: its last one.
    pub fn park_before(&self, w: usize, ops: u64) -> Option<u64> {
        self.victims.iter().any(|v| v.worker == w).then_some(ops)
    }
}

/// Who killed a worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    /// `--kill`: the watcher, as asked.
    Kill,
    /// `--crash-at POINT:N`: the worker itself, at the named point.
    Strike(StrikeAt),
    /// torture itself, ending the run: a stall, a timed run's cap, SIGINT's grace run out.
    Stopped,
    /// Nobody the run knows: the OOM killer, an operator. The run's data stays good
    /// (bounded), but the exit code says it happened (3).
    Unplanned,
}

impl Cause {
    /// Whether the run asked for this death (or made it itself).
    pub fn planned(self) -> bool {
        self != Cause::Unplanned
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::Kill => f.write_str("--kill"),
            Cause::Strike(s) => write!(f, "--crash-at {s}"),
            Cause::Stopped => f.write_str("stopped by torture"),
            Cause::Unplanned => f.write_str("unplanned"),
        }
    }
}

/// JSON: the cause as it is shown ("--kill", "--crash-at after-read:1", "unplanned").
impl Serialize for Cause {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The update a dead worker had in flight.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InFlight {
    /// The worker's op id (1-based sequence).
    pub op: u64,
    pub slot: usize,
    /// The value read and the value about to be written, once read (intent record only).
    pub old: Option<u32>,
    pub new: Option<u32>,
    /// True: from the worker's intent record. False: inferred (no record in an unarmed run):
    /// the next update its slot choices say it was making, which it may not have begun; the
    /// bounds count it in flight all the same (safe: it only widens the upper bound by one).
    pub recorded: bool,
}

/// What became of a dead lock holder's update, read while its lock still kept everyone out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Its write is in: counted in flight.
    RolledForward,
    /// It had read; its write never happened.
    RolledBack,
    /// It had not read yet.
    NotRead,
    /// No intent record says what it read: the bounds decide.
    Unrecorded,
}

/// What the parent did for a dead worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recovery {
    /// Freed the lock of `slot` (its word named the dead worker) and woke its waiters.
    FreedLock { slot: usize, word: u32, fate: Fate },
    /// The lock of `slot` did not name it: woke its waiters for a wake it may have owed.
    WokeWaiters { slot: usize },
    /// pthread: the kernel's robust list hands the mutex to the next locker with EOWNERDEAD.
    RobustList,
    /// Lock-free: nothing held; the update in flight is within the bounds.
    LockFree,
    /// Nothing in flight, nothing held.
    Nothing,
}

impl fmt::Display for Recovery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Recovery::FreedLock { slot, word, fate } => {
                let fate = match fate {
                    Fate::RolledForward => "rolled forward (its write is in: counted in flight)",
                    Fate::RolledBack => "rolled back (its write never happened)",
                    Fate::NotRead => "rolled back (it had not read yet)",
                    Fate::Unrecorded => "no intent record: within the bounds",
                };
                write!(
                    f,
                    "freed the lock of slot {slot} (word {word:#010x}), woke its waiters; {fate}"
                )
            }
            Recovery::WokeWaiters { slot } => write!(
                f,
                "lock of slot {slot} not held by it; woke its waiters (a wake it may have owed)"
            ),
            Recovery::RobustList => {
                f.write_str("the kernel's robust list: the next locker gets EOWNERDEAD and repairs")
            }
            Recovery::LockFree => {
                f.write_str("lock-free: nothing held; the update in flight is within the bounds")
            }
            Recovery::Nothing => f.write_str("nothing in flight, nothing held"),
        }
    }
}

/// JSON: the recovery in words, as the text report shows it.
impl Serialize for Recovery {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One worker's death, seen by the parent before it reaped the worker.
#[derive(Clone, Debug, Serialize)]
pub struct Death {
    pub worker: usize,
    /// Its PID, pinned (a zombie) while the parent recovered; free for reuse once reaped.
    pub pid: i32,
    /// ms after the start barrier's release.
    pub at_ms: f64,
    /// The signal that killed it.
    pub signal: String,
    /// Who killed it.
    pub cause: Cause,
    /// False for a death nobody asked for (`cause` "unplanned").
    pub planned: bool,
    /// Updates it had acknowledged.
    pub acknowledged: u64,
    pub in_flight: Option<InFlight>,
    /// The slot whose lock it held when it died (futex-lock, spin-lock: its identity in the
    /// word; pthread: its `holding` field, armed runs only).
    pub holding: Option<usize>,
    /// What recovery did.
    pub recovery: Recovery,
    /// futex-lock, spin-lock: workers queued for the lock it held when the parent freed it
    /// (other workers naming the slot in `waiting_on`, armed runs only); None when it held none.
    pub waiters: Option<u32>,
    /// ms from the death being seen to a live worker owning the repaired lock (when waiters
    /// were queued on it).
    pub handover_ms: Option<f64>,
}

impl Death {
    /// Whether it died between its first update and its last: it had begun (acknowledged one,
    /// or has one in flight), not merely been forked.
    pub fn was_mid_run(&self) -> bool {
        self.acknowledged > 0 || self.in_flight.is_some()
    }
}

/// A pause the watcher made.
#[derive(Clone, Debug, Serialize)]
pub struct Pause {
    pub worker: usize,
    pub at_ms: f64,
    pub ms: u64,
    /// The slot whose lock it held when it stopped (read from the lock word once stopped).
    pub holding: Option<usize>,
    /// CPU time all other workers used while it was stopped, in ms: near 0 when waiters sleep.
    pub others_cpu_ms: f64,
}

/// What the faults did in one run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct FaultReport {
    pub asked: Faults,
    /// Kills sent by the watcher (fewer than asked when the run ended first).
    pub kills_sent: u32,
    pub deaths: Vec<Death>,
    /// Deaths nobody asked for (OOM killer, operator): the run's exit code is 3.
    pub unplanned: u32,
    pub pauses: Vec<Pause>,
    /// Locks the parent freed because their owner died.
    pub lock_recoveries: u32,
    /// Releases that found the lock word no longer naming the releaser: a recovery robbed a
    /// live owner (counted by the owners themselves, futex-lock). Must be 0: a paused owner is
    /// never robbed, and no recycled PID can pass for a dead one.
    pub lock_steals: u32,
    /// pthread robust-mutex repairs (EOWNERDEAD) made by the next lockers.
    pub robust_repairs: u64,
    /// Updates in flight at a death (the slack of the accounting's upper bound).
    pub in_flight: u64,
    /// In-flight updates found applied (rolled forward) and absent (rolled back).
    pub rolled_forward: u64,
    pub rolled_back: u64,
    /// The longest handover after a recovery, in ms.
    pub max_handover_ms: Option<f64>,
    /// Workers of this run whose PID a worker of an earlier run of this invocation had: the
    /// PID space wrapped (a lock word naming PIDs would be ambiguous from here on).
    pub pids_reused: u32,
    /// Of those, PIDs whose earlier worker died holding a lock.
    pub holder_pids_reused: u32,
}

impl FaultReport {
    pub fn is_empty(&self) -> bool {
        !self.asked.any() && self.deaths.is_empty()
    }

    /// Counts one death into the totals and keeps it.
    pub fn record(&mut self, death: Death) {
        self.in_flight += death.in_flight.is_some() as u64;
        self.unplanned += !death.planned as u32;
        if let Recovery::FreedLock { fate, .. } = death.recovery {
            self.lock_recoveries += 1;
            match fate {
                Fate::RolledForward => self.rolled_forward += 1,
                Fate::RolledBack | Fate::NotRead => self.rolled_back += 1,
                Fate::Unrecorded => {}
            }
        }
        if let Some(h) = death.handover_ms {
            self.max_handover_ms = Some(self.max_handover_ms.map_or(h, |m: f64| m.max(h)));
        }
        self.deaths.push(death);
    }
}

/// The fault section of the text report.
pub fn render(out: &mut String, strategy: &str, run: usize, r: &FaultReport) {
    let a = &r.asked;
    let mut asked = Vec::new();
    if a.kill > 0 {
        let landed = r.deaths.iter().filter(|d| d.cause == Cause::Kill);
        let mid_run = landed.clone().filter(|d| d.was_mid_run()).count();
        asked.push(format!(
            "--kill {} ({} sent, {} landed, {mid_run} mid-run)",
            a.kill,
            r.kills_sent,
            landed.count()
        ));
    }
    if let Some(p) = a.pause {
        asked.push(format!("--pause {p}"));
    }
    if let Some(s) = a.strike {
        asked.push(match s.strike {
            Strike::Kill => format!("--crash-at {s}"),
            Strike::Stop => format!("--stop-at {s}"),
        });
    }
    let _ = writeln!(
        out,
        "faults ({strategy}, run {run}): {}; {} death(s){}, {} lock recover{} ({} steals), {} robust repair(s), {} in flight ({} rolled forward, {} rolled back){}",
        if asked.is_empty() { "none asked".into() } else { asked.join(", ") },
        r.deaths.len(),
        if r.unplanned > 0 { format!(" ({} UNPLANNED)", r.unplanned) } else { String::new() },
        r.lock_recoveries,
        if r.lock_recoveries == 1 { "y" } else { "ies" },
        r.lock_steals,
        r.robust_repairs,
        r.in_flight,
        r.rolled_forward,
        r.rolled_back,
        r.max_handover_ms
            .map_or(String::new(), |h| format!(", max handover {h:.1}ms")),
    );
    if r.pids_reused > 0 {
        let _ = writeln!(
            out,
            "  {} worker PID(s) reused from earlier runs ({} of workers that died holding a lock)",
            r.pids_reused, r.holder_pids_reused
        );
    }
    const SHOWN: usize = 8;
    for d in r.deaths.iter().take(SHOWN) {
        let flight = match &d.in_flight {
            None => "nothing in flight".to_string(),
            Some(f) => match (f.old, f.new) {
                (Some(o), Some(n)) => format!("op {} on slot {} ({o}->{n})", f.op, f.slot),
                _ if !f.recorded => format!("op {} on slot {} maybe in flight", f.op, f.slot),
                _ => format!("op {} on slot {} (not read yet)", f.op, f.slot),
            },
        };
        let _ = writeln!(
            out,
            "  worker {:>4} died at {:>8.1}ms by {} ({}): {} acked, {}, {}; recovery: {}",
            d.worker,
            d.at_ms,
            d.signal,
            d.cause,
            d.acknowledged,
            flight,
            d.holding.map_or("held no lock".into(), |s| format!(
                "held the lock of slot {s}"
            )),
            d.recovery,
        );
    }
    if r.deaths.len() > SHOWN {
        let _ = writeln!(out, "  … {} more deaths in --json", r.deaths.len() - SHOWN);
    }
    for p in &r.pauses {
        let _ = writeln!(
            out,
            "  worker {:>4} paused at {:>8.1}ms for {}ms, {}; others used {:.1}ms of CPU meanwhile",
            p.worker,
            p.at_ms,
            p.ms,
            p.holding.map_or("holding no lock".into(), |s| format!(
                "holding the lock of slot {s}"
            )),
            p.others_cpu_ms,
        );
    }
}

/// The PIDs earlier runs of this invocation gave their workers, each with whether its worker
/// died holding a lock: to show PIDs being recycled across runs (`FaultReport::pids_reused`).
static EARLIER_PIDS: std::sync::Mutex<Option<std::collections::HashMap<i32, bool>>> =
    std::sync::Mutex::new(None);

impl FaultReport {
    /// Counts this run's workers whose PID an earlier run's worker had (and, of those, whose
    /// earlier worker died holding a lock), then remembers this run's PIDs for the next runs.
    pub fn note_pid_reuse(&mut self, pids: &[i32]) {
        let mut earlier = EARLIER_PIDS.lock().unwrap_or_else(|e| e.into_inner());
        let earlier = earlier.get_or_insert_with(Default::default);
        for p in pids {
            if let Some(&held) = earlier.get(p) {
                self.pids_reused += 1;
                self.holder_pids_reused += held as u32;
            }
        }
        for (w, &p) in pids.iter().enumerate() {
            let held = self
                .deaths
                .iter()
                .any(|d| d.worker == w && d.holding.is_some());
            earlier.insert(p, held);
        }
    }
}

/// The watcher's seeded choices (victims and moments).
pub fn watcher_rng(seed: u64) -> SplitMix64 {
    SplitMix64::new(seed ^ 0xD1B5_4A32_D192_ED03)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_reject() {
        assert_eq!(
            StrikeAt::parse("holding-lock:3", Strike::Kill),
            Ok(StrikeAt {
                point: Point::HoldingLock,
                n: 3,
                strike: Strike::Kill
            })
        );
        assert!(StrikeAt::parse("holding-lock:0", Strike::Kill).is_err());
        assert!(StrikeAt::parse("nowhere:1", Strike::Kill).is_err());
        assert_eq!(
            "2:1500".parse::<PauseSpec>(),
            Ok(PauseSpec { count: 2, ms: 1500 })
        );
        assert!("2".parse::<PauseSpec>().is_err());
    }

    #[test]
    fn a_kill_plan_names_distinct_victims_killed_mid_run() {
        for (workers, ops, kill) in [(20, 200, 3), (4, 2, 4), (1000, 20, 100), (5, 10_000, 5)] {
            let plan = KillPlan::new(9, workers, ops, kill);
            assert_eq!(plan.victims.len(), kill as usize);
            let mut seen: Vec<usize> = plan.victims.iter().map(|v| v.worker).collect();
            seen.sort_unstable();
            seen.dedup();
            assert_eq!(seen.len(), kill as usize, "distinct");
            for v in &plan.victims {
                // After its first update, before its last.
                assert!(v.at >= 1 && v.at < ops, "{v:?} of {ops}");
                assert_eq!(plan.park_before(v.worker, ops), Some(ops));
            }
        }
        assert_eq!(KillPlan::new(9, 20, 200, 3), KillPlan::new(9, 20, 200, 3));
    }

    #[test]
    fn causes_and_recoveries_say_what_they_are() {
        let s = StrikeAt::parse("after-read:1", Strike::Kill).unwrap();
        assert_eq!(Cause::Strike(s).to_string(), "--crash-at after-read:1");
        assert_eq!(Cause::Kill.to_string(), "--kill");
        assert!(!Cause::Unplanned.planned() && Cause::Kill.planned());
        let mut r = FaultReport::default();
        for (fate, forward, back) in [
            (Fate::RolledForward, 1, 0),
            (Fate::RolledBack, 1, 1),
            (Fate::Unrecorded, 1, 1),
        ] {
            r.record(Death {
                worker: 0,
                pid: 1,
                at_ms: 0.0,
                signal: "SIGKILL".into(),
                cause: Cause::Unplanned,
                planned: false,
                acknowledged: 3,
                in_flight: None,
                holding: Some(0),
                recovery: Recovery::FreedLock {
                    slot: 0,
                    word: 1,
                    fate,
                },
                waiters: None,
                handover_ms: None,
            });
            assert_eq!((r.rolled_forward, r.rolled_back), (forward, back));
        }
        assert_eq!((r.lock_recoveries, r.unplanned), (3, 3));
    }
}
