//! Faults injected into a process-mode run, and what they did.
//!
//! - `--kill K`: the parent's watcher SIGKILLs K random running workers at random moments of
//!   the measured window (seeded: moments are fractions of the run's updates).
//! - `--pause K:MS`: stop K workers, each the next one to take a lock (it stops itself there
//!   on the watcher's request; any running worker if none takes a lock soon), SIGCONT each MS
//!   later. A paused worker is alive: nothing is taken from it.
//! - `--crash-at POINT:N`: one worker (seed mod workers) SIGKILLs itself the N-th time it
//!   reaches POINT of its update. `--stop-at POINT:N` SIGSTOPs it there instead and nobody
//!   resumes it: a hung lock holder, for the watchdog's tests.
//!
//! A death is data, not a failure. Accounting with deaths (Jepsen's terms): per slot,
//! acknowledged ≤ final ≤ acknowledged + in flight at death, where a worker's acknowledged
//! updates are its `completed` counter and its in-flight update is its intent record (written
//! before the update: slot, then op id; old and new once read). Lost (acknowledged but absent)
//! and unexpected (present but never attempted) must both be 0.

use std::fmt::{self, Write as _};
use std::str::FromStr;

use serde::Serialize;

use crate::strategy::StrategyKind;
use crate::workload::SplitMix64;

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

    /// Whether `strategy` passes this point in every update.
    pub fn applies_to(self, strategy: StrategyKind) -> bool {
        use StrategyKind::*;
        match self {
            Point::AfterRead => matches!(strategy, Racy | Cas | FutexLock | SpinLock | Pthread),
            Point::AfterCas => matches!(strategy, Cas | Atomic),
            Point::HoldingLock => matches!(strategy, FutexLock | SpinLock | Pthread),
            Point::AfterWrite => matches!(strategy, Racy | FutexLock | SpinLock | Pthread),
            Point::BeforeWake => matches!(strategy, FutexLock),
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
    /// `--kill K`.
    pub kill: u32,
    /// `--pause K:MS`.
    pub pause: Option<PauseSpec>,
    /// `--crash-at` / `--stop-at`.
    pub strike: Option<StrikeAt>,
}

impl Faults {
    pub fn any(&self) -> bool {
        self.kill > 0 || self.pause.is_some_and(|p| p.count > 0) || self.strike.is_some()
    }

    /// Whether a worker may die during the run without failing it.
    pub fn deaths_expected(&self) -> bool {
        self.kill > 0 || self.strike.is_some_and(|s| s.strike == Strike::Kill)
    }

    /// The worker `--crash-at` / `--stop-at` strikes in a run with this seed.
    pub fn struck_worker(seed: u64, workers: usize) -> usize {
        (seed % workers as u64) as usize
    }
}

/// The update a dead worker had in flight, from its intent record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InFlight {
    /// The worker's op id (1-based sequence).
    pub op: u64,
    pub slot: usize,
    /// The value read and the value about to be written, once read.
    pub old: Option<u32>,
    pub new: Option<u32>,
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
    /// Who killed it: "--kill", "--crash-at POINT:N", or "unexpected".
    pub cause: String,
    /// Updates it had acknowledged.
    pub acknowledged: u64,
    pub in_flight: Option<InFlight>,
    /// The slot whose lock it held when it died (futex-lock: its identity in the word;
    /// pthread, spin-lock: its `holding` field).
    pub holding: Option<usize>,
    /// What recovery did, in words.
    pub recovery: String,
    /// futex-lock, spin-lock: workers queued for the lock it held when the parent freed it
    /// (other workers naming the slot in `waiting_on`); None when it held none.
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
}

/// The fault section of the text report.
pub fn render(out: &mut String, strategy: &str, run: usize, r: &FaultReport) {
    let a = &r.asked;
    let mut asked = Vec::new();
    if a.kill > 0 {
        let landed = r.deaths.iter().filter(|d| d.cause == "--kill");
        let mid_run = landed.clone().filter(|d| d.was_mid_run()).count();
        // A kill sent as a worker finished lands on a process that already exited.
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
        "faults ({strategy}, run {run}): {}; {} death(s), {} lock recover{} ({} steals), {} robust repair(s), {} in flight ({} rolled forward, {} rolled back){}",
        if asked.is_empty() { "none asked".into() } else { asked.join(", ") },
        r.deaths.len(),
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

/// The watcher's seeded choices (victims and moments).
pub fn watcher_rng(seed: u64) -> SplitMix64 {
    SplitMix64::new(seed ^ 0xD1B5_4A32_D192_ED03)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_accept_anything_between_acknowledged_and_in_flight() {
        // Slot 0: 10 acked, 2 in flight: 10, 11 and 12 are all fine.
        for v in 10..=12 {
            let (c, wrong) = crate::check::bounded_count(0, &[10], &[2], &[v]);
            assert!(c.exact(), "{v}: {c:?}");
            assert!(wrong.is_empty());
        }
    }

    #[test]
    fn below_acknowledged_is_lost_and_above_in_flight_is_unexpected() {
        let (c, _) = crate::check::bounded_count(5, &[10, 10], &[1, 1], &[14, 17]);
        assert_eq!((c.lost, c.unexpected, c.wrong_slots), (1, 1, 2));
    }

    #[test]
    fn without_deaths_it_is_the_exact_count() {
        let (a, wa) = crate::check::bounded_count(50, &[25, 0, 3], &[0, 0, 0], &[75, 49, 54]);
        let (b, wb) = crate::check::count(50, &[25, 0, 3], &[75, 49, 54]);
        assert_eq!((a, wa), (b, wb));
    }

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
}
