//! The one loop every worker runs, whatever its workload and target: check the stop word, time
//! (or not), make one update, count it. Generic over the update ([`Step`]) and the timing, so
//! what a run did not arm is not in the loop at all; each worker's acknowledged count stays,
//! since a worker can die from outside in any run and the bounds need it.

use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};

use hdrhistogram::Histogram;

use crate::barrier::Gate;
use crate::clock::{now_ns, Clock};
use crate::latency::{self, LatencyMode};
use crate::region::{halt, status, Header, WorkerArea};
use crate::strategy::Applied;
use crate::timing::{self, Timing, WithTiming};

/// What one call of a step did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The update happened (acknowledged once the loop counts it).
    Applied(Applied),
    /// The target refused it before anything changed; the worker goes on.
    Rejected,
}

/// Why a worker stops before its last update, other than being asked to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Halt {
    /// The store failed (its own block says how).
    Store,
    /// The update's outcome is unknown (a broken connection): it is in flight, as at a death.
    Unknown(String),
    /// The target failed; the run proves nothing.
    Fatal(String),
}

/// What a worker does per update: the workload's step on its target, with its strategy and
/// hooks already chosen.
pub trait Step {
    /// How many updates the loop makes between two looks at the stop word. 1 unless an update
    /// is so short that the look is a noticeable part of it: a load after a locked
    /// instruction waits for it to complete, so a stop check per `lock xadd` lengthens every
    /// update by a load (measured: atomic at 0.86x the C loop, which has no load).
    const STOP_EVERY: u64 = 1;
    /// Update number `i` of this worker (from 0).
    fn update(&mut self, i: u64) -> Result<Outcome, Halt>;
    /// After the last update (or a halt): flush, publish tallies.
    fn finish(&mut self) {}
}

/// The words a worker is steered by and reports into, and its barriers.
#[derive(Clone, Copy)]
pub struct Control<'a> {
    pub header: &'a Header,
    pub area: &'a WorkerArea,
    pub worker: usize,
    /// Passed by the loop: the start barrier once its step and timing are built (so what they
    /// first touch is faulted in before the release), the done barrier once its end is stamped.
    pub gate: &'a dyn Gate,
}

impl Control<'_> {
    /// Whether the parent asked every worker to stop (SIGINT, a time limit).
    #[inline(always)]
    fn stop_requested(&self) -> bool {
        // Relaxed: a request, not a publication; seeing it late costs a few more updates
        // (`Step::STOP_EVERY` at most), and every figure reaches the parent through
        // `publish`'s Release.
        self.header.stop.load(Relaxed) != 0
    }
}

/// One worker's result, as it travels back to the parent.
#[derive(Clone, Debug)]
pub struct WorkerReport {
    pub worker: usize,
    /// Updates completed (acknowledged).
    pub completed: u64,
    /// Updates the target refused (not counted in `completed`).
    pub rejected: u64,
    pub retries: u64,
    pub waits: u64,
    pub wakes: u64,
    pub start_ns: u64,
    pub end_ns: u64,
    pub histogram: Histogram<u64>,
    /// Why it stopped early, if it did (its area's `halt` and note).
    pub halt: Option<Halt>,
}

/// Passes the start barrier, runs `step` for up to `ops` updates with the timing `latency`
/// names (reading `clock`), passes the done barrier, then finishes it. None: the parent was
/// gone before the release.
pub fn run<St: Step>(
    step: &mut St,
    ctl: Control<'_>,
    ops: u64,
    latency: LatencyMode,
    clock: Clock,
) -> Option<WorkerReport> {
    struct Drive<'s, 'c, St> {
        step: &'s mut St,
        ctl: Control<'c>,
        ops: u64,
    }
    impl<St: Step> WithTiming for Drive<'_, '_, St> {
        type Out = Option<WorkerReport>;
        fn with<T: Timing>(self, timing: T) -> Option<WorkerReport> {
            drive(self.step, timing, self.ctl, self.ops)
        }
    }
    timing::dispatch(latency, clock, Drive { step, ctl, ops })
}

/// The loop, between the two barriers. `completed` is stored after every update: the
/// acknowledgement a death's bounds are built on, and the progress the watcher reads.
///
/// Nothing the loop touches should fault after the release (a fault costs a CPU that, with
/// more workers than cores, another worker's loop is waiting for): the step and the timing's
/// buckets are built and touched, the loop's code is this function's, and the clock's pages
/// are mapped by one reading, all before the start barrier.
#[inline(never)]
pub fn drive<St: Step, T: Timing>(
    step: &mut St,
    mut timing: T,
    ctl: Control<'_>,
    ops: u64,
) -> Option<WorkerReport> {
    let (mut retries, mut waits, mut wakes) = (0u64, 0u64, 0u64);
    let (mut done, mut rejected) = (0u64, 0u64);
    let mut halted = None;
    timing.prepare();
    std::hint::black_box(now_ns());
    if !ctl.gate.start() {
        return None;
    }
    let start_ns = now_ns();
    timing.begin();
    let mut i = 0;
    'run: while i < ops {
        if ctl.stop_requested() {
            break;
        }
        let chunk_end = ops.min(i.saturating_add(St::STOP_EVERY));
        while i < chunk_end {
            let mark = timing.start();
            match step.update(i) {
                Ok(Outcome::Applied(applied)) => {
                    timing.stop(mark);
                    retries += applied.retries as u64;
                    waits += applied.waits as u64;
                    wakes += applied.wakes as u64;
                    done += 1;
                    // Relaxed: read for progress, and after a death (which publishes all the
                    // dead process stored); final figures are published by `publish`.
                    ctl.area.completed.store(done, Relaxed);
                }
                Ok(Outcome::Rejected) => {
                    timing.stop(mark);
                    rejected += 1;
                }
                Err(h) => {
                    halted = Some(h);
                    break 'run;
                }
            }
            i += 1;
        }
    }
    let end_ns = now_ns();
    // Everything below is after this worker's window: it waits until every worker's loop has
    // ended, so none of it takes a CPU from a worker still updating.
    ctl.gate.done();
    step.finish();
    Some(WorkerReport {
        worker: ctl.worker,
        completed: done,
        rejected,
        retries,
        waits,
        wakes,
        start_ns,
        end_ns,
        histogram: timing.into_histogram(),
        halt: halted,
    })
}

impl WorkerReport {
    /// Writes the report into the worker's area and marks it DONE. False if the histogram did
    /// not fit (the area is then marked FAILED).
    pub fn publish(&self, area: &WorkerArea) -> bool {
        area.completed.store(self.completed, Relaxed);
        area.rejected.store(self.rejected, Relaxed);
        area.retries.store(self.retries, Relaxed);
        area.waits.store(self.waits, Relaxed);
        area.wakes.store(self.wakes, Relaxed);
        area.start_ns.store(self.start_ns, Relaxed);
        area.end_ns.store(self.end_ns, Relaxed);
        let (code, note) = match &self.halt {
            None | Some(Halt::Store) => (halt::NONE, None),
            Some(Halt::Unknown(m)) => (halt::UNKNOWN, Some(m)),
            Some(Halt::Fatal(m)) => (halt::FATAL, Some(m)),
        };
        if let Some(m) = note {
            let mut cut = m.len().min(crate::region::NOTE_BYTES);
            while !m.is_char_boundary(cut) {
                cut -= 1;
            }
            area.note.publish(&m.as_bytes()[..cut]);
        }
        area.halt.store(code, Relaxed);
        let fits = area.publish_histogram(&latency::encode(&self.histogram));
        // Release: pairs with the parent's Acquire in `read_back`; publishes every field above.
        area.status
            .store(if fits { status::DONE } else { status::FAILED }, Release);
        fits
    }

    /// Reads back what worker `w` published; None if it did not finish (it died).
    pub fn read_back(area: &WorkerArea, w: usize) -> Result<Option<WorkerReport>, ReadBack> {
        // Acquire: pairs with the Release in `publish`.
        match area.status.load(Acquire) {
            status::DONE => {}
            status::FAILED => return Err(ReadBack::HistogramTooLarge(w)),
            _ => return Ok(None),
        }
        let histogram =
            latency::decode(area.histogram()).map_err(|e| ReadBack::HistogramUnreadable(w, e))?;
        let note = || String::from_utf8_lossy(area.note.read()).into_owned();
        let halt = match area.halt.load(Relaxed) {
            halt::UNKNOWN => Some(Halt::Unknown(note())),
            halt::FATAL => Some(Halt::Fatal(note())),
            _ => None,
        };
        Ok(Some(WorkerReport {
            worker: w,
            completed: area.completed.load(Relaxed),
            rejected: area.rejected.load(Relaxed),
            retries: area.retries.load(Relaxed),
            waits: area.waits.load(Relaxed),
            wakes: area.wakes.load(Relaxed),
            start_ns: area.start_ns.load(Relaxed),
            end_ns: area.end_ns.load(Relaxed),
            histogram,
            halt,
        }))
    }

    /// What a dead worker left: its counters as they stood, no histogram.
    pub fn of_dead(area: &WorkerArea, w: usize, start_ns: u64, end_ns: u64) -> WorkerReport {
        // Relaxed: the worker is dead and reaped; everything it stored is in the region.
        WorkerReport {
            worker: w,
            completed: area.completed.load(Relaxed),
            rejected: 0,
            retries: 0,
            waits: 0,
            wakes: 0,
            start_ns,
            end_ns,
            histogram: latency::new_histogram(),
            halt: None,
        }
    }
}

/// Why a finished worker's report cannot be read.
#[derive(Debug)]
pub enum ReadBack {
    /// Its histogram did not fit its area.
    HistogramTooLarge(usize),
    HistogramUnreadable(usize, String),
}

impl std::fmt::Display for ReadBack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadBack::HistogramTooLarge(w) => {
                write!(f, "worker {w} could not publish its histogram")
            }
            ReadBack::HistogramUnreadable(w, e) => {
                write!(f, "worker {w}'s histogram is unreadable: {e}")
            }
        }
    }
}
