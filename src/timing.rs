//! How a worker times its updates, chosen once per run and monomorphized into the loop: an
//! untimed run has no clock read, no branch and no histogram in it at all.
//!
//! A [`Timing`] is made of a [`TimeSource`] (what a timestamp is) and a [`Sink`] (where a span
//! goes). The run's are `clock::Clock` (the TSC where it is invariant, calibrated once in the
//! parent before the first fork; CLOCK_MONOTONIC elsewhere) and `latency::Buckets` (an inline
//! log-linear array merged into the HDR histogram once, when the worker finishes); a test swaps
//! in its own of either without touching the loop.

use hdrhistogram::Histogram;

use crate::clock::{Calibration, Clock, Elapsed, Ticks};
use crate::latency::{self, Buckets, LatencyMode};

/// A source of timestamps.
pub trait TimeSource: Copy {
    /// One reading; only the span between two readings of the same source means anything.
    type Stamp: Copy;
    fn now(self) -> Self::Stamp;
    /// The span from `from` to `to`, in the source's ticks.
    fn span(self, from: Self::Stamp, to: Self::Stamp) -> Elapsed;
}

impl TimeSource for Clock {
    type Stamp = Ticks;
    #[inline(always)]
    fn now(self) -> Ticks {
        Clock::now(&self)
    }
    #[inline(always)]
    fn span(self, from: Ticks, to: Ticks) -> Elapsed {
        to.since(from)
    }
}

/// Where spans go.
pub trait Sink {
    /// Before the start barrier: touches what `record` will write, so it does not fault in
    /// the window.
    fn prepare(&mut self) {}
    fn record(&mut self, span: Elapsed);
    /// Everything recorded, in nanoseconds, as the histogram the worker publishes.
    fn into_histogram(self) -> Histogram<u64>;
}

/// The buckets, converted to nanoseconds by the clock's calibration at the end. Boxed: they
/// are 58 KiB, and a thread worker's stack is 256 KiB (`pool`).
pub struct Bucketed {
    buckets: Box<Buckets>,
    calibration: Calibration,
}

impl Bucketed {
    pub fn new(calibration: Calibration) -> Bucketed {
        Bucketed {
            buckets: Box::default(),
            calibration,
        }
    }
}

impl Sink for Bucketed {
    fn prepare(&mut self) {
        self.buckets.touch();
    }
    #[inline(always)]
    fn record(&mut self, span: Elapsed) {
        self.buckets.record(span);
    }
    fn into_histogram(self) -> Histogram<u64> {
        self.buckets.to_histogram(self.calibration)
    }
}

/// Which updates are timed, and how.
pub trait Timing {
    /// What `start` hands to `stop`.
    type Mark: Copy;
    /// Before the start barrier: see [`Sink::prepare`].
    fn prepare(&mut self) {}
    /// Right after the start barrier, before the first update.
    fn begin(&mut self) {}
    fn start(&mut self) -> Self::Mark;
    fn stop(&mut self, mark: Self::Mark);
    fn into_histogram(self) -> Histogram<u64>;
}

/// No update is timed: nothing of timing is in the loop.
#[derive(Clone, Copy, Debug, Default)]
pub struct Untimed;

impl Timing for Untimed {
    type Mark = ();
    #[inline(always)]
    fn start(&mut self) {}
    #[inline(always)]
    fn stop(&mut self, _: ()) {}
    fn into_histogram(self) -> Histogram<u64> {
        latency::new_histogram()
    }
}

/// Every update is timed, with one clock reading per update (laps): an update's end is the
/// next one's start. A span is the update and the loop's own work around it (the stop check,
/// the acknowledgement, the previous span's record: a few ns); the first starts at `begin`.
/// Two readings per update would double the timer's cost, which is most of a timed update's
/// (a TSC read costs more than an uncontended atomic add).
pub struct Every<C: TimeSource, S> {
    clock: C,
    sink: S,
    /// The end of the last update (or `begin`): the next update's start.
    last: C::Stamp,
}

impl<C: TimeSource, S: Sink> Every<C, S> {
    pub fn new(clock: C, sink: S) -> Self {
        let last = clock.now();
        Every { clock, sink, last }
    }
}

impl<C: TimeSource, S: Sink> Timing for Every<C, S> {
    type Mark = C::Stamp;
    fn prepare(&mut self) {
        self.sink.prepare();
    }
    fn begin(&mut self) {
        self.last = self.clock.now();
    }
    #[inline(always)]
    fn start(&mut self) -> C::Stamp {
        self.last
    }
    #[inline(always)]
    fn stop(&mut self, t0: C::Stamp) {
        let t1 = self.clock.now();
        self.sink.record(self.clock.span(t0, t1));
        self.last = t1;
    }
    fn into_histogram(self) -> Histogram<u64> {
        self.sink.into_histogram()
    }
}

/// One update in `every` is timed (the first, then every `every`-th): a countdown, no
/// division per update.
pub struct Sampled<C, S> {
    clock: C,
    sink: S,
    every: u32,
    left: u32,
}

impl<C: TimeSource, S: Sink> Sampled<C, S> {
    pub fn new(clock: C, sink: S, every: u32) -> Self {
        Sampled {
            clock,
            sink,
            every: every.max(1),
            left: 0,
        }
    }
}

impl<C: TimeSource, S: Sink> Timing for Sampled<C, S> {
    /// The start, or None for an untimed update.
    type Mark = Option<C::Stamp>;
    fn prepare(&mut self) {
        self.sink.prepare();
    }
    #[inline]
    fn start(&mut self) -> Option<C::Stamp> {
        if self.left == 0 {
            self.left = self.every - 1;
            Some(self.clock.now())
        } else {
            self.left -= 1;
            None
        }
    }
    #[inline]
    fn stop(&mut self, mark: Option<C::Stamp>) {
        if let Some(t0) = mark {
            let t1 = self.clock.now();
            self.sink.record(self.clock.span(t0, t1));
        }
    }
    fn into_histogram(self) -> Histogram<u64> {
        self.sink.into_histogram()
    }
}

/// What runs with the timing a run chose (Rust has no generic closures: this is one).
pub trait WithTiming {
    type Out;
    fn with<T: Timing>(self, timing: T) -> Self::Out;
}

/// Calls `user` with the timing `mode` names, reading `clock` (built in the parent, before the
/// first fork): the one place a latency mode becomes a type.
pub fn dispatch<U: WithTiming>(mode: LatencyMode, clock: Clock, user: U) -> U::Out {
    let sink = || Bucketed::new(clock.calibration());
    match mode {
        LatencyMode::Off => user.with(Untimed),
        LatencyMode::All => user.with(Every::new(clock, sink())),
        LatencyMode::Sample(n) => user.with(Sampled::new(clock, sink(), n)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

    /// A source that advances 10 ticks per reading.
    #[derive(Clone, Copy)]
    struct Tens(&'static AtomicU64);
    impl TimeSource for Tens {
        type Stamp = u64;
        fn now(self) -> u64 {
            self.0.fetch_add(10, Relaxed)
        }
        fn span(self, from: u64, to: u64) -> Elapsed {
            Elapsed(to - from)
        }
    }

    fn count<T: Timing>(mut t: T, updates: u32) -> u64 {
        for _ in 0..updates {
            let m = t.start();
            t.stop(m);
        }
        t.into_histogram().len()
    }

    #[test]
    fn each_timing_times_the_updates_its_mode_names() {
        static CLOCK: AtomicU64 = AtomicU64::new(1);
        let sink = || Bucketed::new(Calibration::NANOSECONDS);
        assert_eq!(count(Untimed, 100), 0);
        assert_eq!(count(Every::new(Tens(&CLOCK), sink()), 100), 100);
        // The first of every 8: updates 0, 8, …, 96.
        assert_eq!(count(Sampled::new(Tens(&CLOCK), sink(), 8), 100), 13);
        assert_eq!(count(Sampled::new(Tens(&CLOCK), sink(), 1), 5), 5);
    }

    #[test]
    fn a_timed_update_records_its_span_in_nanoseconds() {
        static CLOCK: AtomicU64 = AtomicU64::new(1);
        // 10 ticks at 2 ticks per ns... as a calibration of 2000 ticks per µs: 5 ns.
        let mut t = Every::new(Tens(&CLOCK), Bucketed::new(Calibration::ticks_per_us(2000)));
        let m = t.start();
        t.stop(m);
        let h = t.into_histogram();
        assert_eq!((h.len(), h.max()), (1, 5));
    }
}
