//! How a worker times its updates, chosen once per run and monomorphized into the loop: an
//! untimed run has no clock read, no branch and no histogram in it at all.
//!
//! A [`Timing`] is made of a [`Clock`] (what a timestamp is) and a [`Sink`] (where a span goes).
//! A run's clock is `clock::Clock`: the TSC where it is invariant and the kernel trusts it,
//! CLOCK_MONOTONIC otherwise, calibrated once by the parent before it forks ([`calibrate`]); the
//! sink is `latency::Buckets`, an inline bucket array of spans in ticks, turned into the HDR
//! histogram (nanoseconds) once, when the worker finishes. A timed update costs two clock reads
//! and one bucket increment (~22 instructions, `scripts/instructions.sh`).

use hdrhistogram::Histogram;

use crate::clock::{Calibration, Elapsed, Ticks};
use crate::latency::{self, Buckets, LatencyMode};

/// A source of timestamps.
pub trait Clock: Copy {
    /// A reading, in the clock's own unit.
    type Stamp: Copy;
    fn now(self) -> Self::Stamp;
    /// The span between two readings, in ticks.
    fn span(self, from: Self::Stamp, to: Self::Stamp) -> Elapsed;
    /// How its ticks become nanoseconds.
    fn calibration(self) -> Calibration;
}

impl Clock for crate::clock::Clock {
    type Stamp = Ticks;
    #[inline]
    fn now(self) -> Ticks {
        crate::clock::Clock::now(&self)
    }
    #[inline]
    fn span(self, from: Ticks, to: Ticks) -> Elapsed {
        to.since(from)
    }
    fn calibration(self) -> Calibration {
        crate::clock::Clock::calibration(&self)
    }
}

/// Calibrates the run's clock in this process, so that processes forked after it inherit the
/// calibration instead of each measuring it again (10–20 ms each). Idempotent.
pub fn calibrate() -> crate::clock::Clock {
    crate::clock::Clock::calibrated()
}

/// Where spans go.
pub trait Sink {
    fn record(&mut self, span: Elapsed);
    /// Everything recorded, in nanoseconds, as the histogram the worker publishes.
    fn into_histogram(self, calibration: Calibration) -> Histogram<u64>;
}

/// The inline bucket array, boxed: 58 KiB would crowd a thread worker's 256 KiB stack.
impl Sink for Box<Buckets> {
    #[inline]
    fn record(&mut self, span: Elapsed) {
        Buckets::record(self, span);
    }
    fn into_histogram(self, calibration: Calibration) -> Histogram<u64> {
        self.to_histogram(calibration)
    }
}

/// Which updates are timed, and how.
pub trait Timing {
    /// What `start` hands to `stop`.
    type Mark: Copy;
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

/// Every update is timed.
pub struct Every<C, S> {
    clock: C,
    sink: S,
}

impl<C: Clock, S: Sink> Every<C, S> {
    pub fn new(clock: C, sink: S) -> Self {
        Every { clock, sink }
    }
}

impl<C: Clock, S: Sink> Timing for Every<C, S> {
    type Mark = C::Stamp;
    #[inline]
    fn start(&mut self) -> C::Stamp {
        self.clock.now()
    }
    #[inline]
    fn stop(&mut self, t0: C::Stamp) {
        let t1 = self.clock.now();
        self.sink.record(self.clock.span(t0, t1));
    }
    fn into_histogram(self) -> Histogram<u64> {
        self.sink.into_histogram(self.clock.calibration())
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

impl<C: Clock, S: Sink> Sampled<C, S> {
    pub fn new(clock: C, sink: S, every: u32) -> Self {
        Sampled {
            clock,
            sink,
            every: every.max(1),
            left: 0,
        }
    }
}

impl<C: Clock, S: Sink> Timing for Sampled<C, S> {
    /// The start reading, or None for an untimed update.
    type Mark = Option<C::Stamp>;
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
        self.sink.into_histogram(self.clock.calibration())
    }
}

/// What runs with the timing a run chose (Rust has no generic closures: this is one).
pub trait WithTiming {
    type Out;
    fn with<T: Timing>(self, timing: T) -> Self::Out;
}

/// Calls `user` with the timing `mode` names: the one place a latency mode becomes a type.
pub fn dispatch<U: WithTiming>(mode: LatencyMode, user: U) -> U::Out {
    match mode {
        LatencyMode::Off => user.with(Untimed),
        LatencyMode::All => user.with(Every::new(calibrate(), Box::<Buckets>::default())),
        LatencyMode::Sample(n) => {
            user.with(Sampled::new(calibrate(), Box::<Buckets>::default(), n))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A clock that advances 10 ticks per reading; a tick is a nanosecond.
    #[derive(Clone, Copy)]
    struct Steps(&'static std::sync::atomic::AtomicU64);
    impl Clock for Steps {
        type Stamp = u64;
        fn now(self) -> u64 {
            self.0.fetch_add(10, std::sync::atomic::Ordering::Relaxed)
        }
        fn span(self, from: u64, to: u64) -> Elapsed {
            Elapsed(to - from)
        }
        fn calibration(self) -> Calibration {
            Calibration::NANOSECONDS
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
        static CLOCK: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let sink = Box::<Buckets>::default;
        assert_eq!(count(Untimed, 100), 0);
        assert_eq!(count(Every::new(Steps(&CLOCK), sink()), 100), 100);
        // The first of every 8: updates 0, 8, …, 96.
        assert_eq!(count(Sampled::new(Steps(&CLOCK), sink(), 8), 100), 13);
        assert_eq!(count(Sampled::new(Steps(&CLOCK), sink(), 1), 5), 5);
    }

    #[test]
    fn a_timed_update_records_what_its_clock_says() {
        static CLOCK: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let mut t = Every::new(Steps(&CLOCK), Box::<Buckets>::default());
        let m = t.start();
        t.stop(m);
        let h = t.into_histogram();
        assert_eq!((h.len(), h.max()), (1, 10));
    }

    #[test]
    fn the_run_clock_measures_real_time_in_nanoseconds() {
        // A real span through the run's clock and sink: within a few percent of what
        // CLOCK_MONOTONIC saw around it (the TSC or the fallback, whichever this machine has).
        let mut t = Every::new(calibrate(), Box::<Buckets>::default());
        let before = crate::clock::now_ns();
        let m = t.start();
        std::thread::sleep(std::time::Duration::from_millis(20));
        t.stop(m);
        let wall = crate::clock::now_ns() - before;
        let h = t.into_histogram();
        assert_eq!(h.len(), 1);
        let got = h.max() as f64;
        assert!(
            got <= wall as f64 * 1.03 && got >= 20e6 * 0.97,
            "{got} ns vs {wall} ns"
        );
    }
}
