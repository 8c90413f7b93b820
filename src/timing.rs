//! How a worker times its updates, chosen once per run and monomorphized into the loop: an
//! untimed run has no clock read, no branch and no histogram in it at all.
//!
//! A [`Timing`] is made of a [`Clock`] (what a timestamp is) and a [`Sink`] (where a latency
//! goes). Today the clock is `clock::now_ns` (CLOCK_MONOTONIC) and the sink the HDR histogram;
//! a cheaper clock (the TSC) or sink (an inline bucket array merged into the histogram at the
//! end) plugs in as another impl without touching the loop.

use hdrhistogram::Histogram;

use crate::latency::{self, LatencyMode};

/// A source of timestamps.
pub trait Clock: Copy {
    /// A timestamp in the clock's own unit.
    fn now(self) -> u64;
    /// The nanoseconds between two timestamps of this clock.
    fn elapsed_ns(self, from: u64, to: u64) -> u64;
}

/// CLOCK_MONOTONIC through the vDSO: one clock every process reads alike.
#[derive(Clone, Copy, Debug, Default)]
pub struct Monotonic;

impl Clock for Monotonic {
    #[inline]
    fn now(self) -> u64 {
        crate::clock::now_ns()
    }
    #[inline]
    fn elapsed_ns(self, from: u64, to: u64) -> u64 {
        to.saturating_sub(from)
    }
}

/// Where latencies go.
pub trait Sink {
    fn record(&mut self, ns: u64);
    /// Everything recorded, as the histogram the worker publishes.
    fn into_histogram(self) -> Histogram<u64>;
}

/// Straight into the HDR histogram (2 significant digits).
pub struct Hdr(Histogram<u64>);

impl Default for Hdr {
    fn default() -> Hdr {
        Hdr(latency::new_histogram())
    }
}

impl Sink for Hdr {
    #[inline]
    fn record(&mut self, ns: u64) {
        self.0.saturating_record(ns.max(1));
    }
    fn into_histogram(self) -> Histogram<u64> {
        self.0
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
    type Mark = u64;
    #[inline]
    fn start(&mut self) -> u64 {
        self.clock.now()
    }
    #[inline]
    fn stop(&mut self, t0: u64) {
        let t1 = self.clock.now();
        self.sink.record(self.clock.elapsed_ns(t0, t1));
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
    /// The start timestamp, or None for an untimed update.
    type Mark = Option<u64>;
    #[inline]
    fn start(&mut self) -> Option<u64> {
        if self.left == 0 {
            self.left = self.every - 1;
            Some(self.clock.now())
        } else {
            self.left -= 1;
            None
        }
    }
    #[inline]
    fn stop(&mut self, mark: Option<u64>) {
        if let Some(t0) = mark {
            let t1 = self.clock.now();
            self.sink.record(self.clock.elapsed_ns(t0, t1));
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

/// Calls `user` with the timing `mode` names: the one place a latency mode becomes a type.
pub fn dispatch<U: WithTiming>(mode: LatencyMode, user: U) -> U::Out {
    match mode {
        LatencyMode::Off => user.with(Untimed),
        LatencyMode::All => user.with(Every::new(Monotonic, Hdr::default())),
        LatencyMode::Sample(n) => user.with(Sampled::new(Monotonic, Hdr::default(), n)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A clock that advances 10 ns per reading.
    #[derive(Clone, Copy)]
    struct Ticks(&'static std::sync::atomic::AtomicU64);
    impl Clock for Ticks {
        fn now(self) -> u64 {
            self.0.fetch_add(10, std::sync::atomic::Ordering::Relaxed)
        }
        fn elapsed_ns(self, from: u64, to: u64) -> u64 {
            to - from
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
        assert_eq!(count(Untimed, 100), 0);
        assert_eq!(count(Every::new(Ticks(&CLOCK), Hdr::default()), 100), 100);
        // The first of every 8: updates 0, 8, …, 96.
        assert_eq!(
            count(Sampled::new(Ticks(&CLOCK), Hdr::default(), 8), 100),
            13
        );
        assert_eq!(count(Sampled::new(Ticks(&CLOCK), Hdr::default(), 1), 5), 5);
    }

    #[test]
    fn a_timed_update_records_what_its_clock_says() {
        static CLOCK: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let mut t = Every::new(Ticks(&CLOCK), Hdr::default());
        let m = t.start();
        t.stop(m);
        let h = t.into_histogram();
        assert_eq!((h.len(), h.max()), (1, 10));
    }
}
