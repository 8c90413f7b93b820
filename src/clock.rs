//! Two clocks, for two jobs.
//!
//! - [`now_ns`]: CLOCK_MONOTONIC in nanoseconds, which every process reads alike (through the
//!   vDSO). Anything compared across processes uses it: event times persisted by stores (verify
//!   orders them), run windows, progress.
//! - [`Clock`]: the update timer. The TSC where it is invariant, calibrated once against
//!   CLOCK_MONOTONIC by `quanta`; CLOCK_MONOTONIC itself elsewhere. Its [`Ticks`] only measure
//!   spans inside one worker: a span converts to nanoseconds of CLOCK_MONOTONIC through the
//!   [`Calibration`] (quanta's rate, measured against CLOCK_MONOTONIC until its mean error is
//!   under 10 ns; a test holds it to 1% over 20 ms), but a reading is never an event time: the
//!   TSC and CLOCK_MONOTONIC drift apart by a few ppm while NTP slews the latter.
//!
//! Fork safety: `Clock` is plain data (no thread, no file, no lock). The parent builds it once
//! before the first fork, paying for the calibration (10–20 ms, at most 200 ms, inside
//! `quanta`); every child inherits the copy and reads the TSC, one counter for the whole machine
//! when it is invariant and the kernel keeps it in step across cores.

use std::sync::OnceLock;

/// Nanoseconds since an arbitrary point shared by all processes of this boot.
#[inline]
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// CLOCK_REALTIME in nanoseconds since the Unix epoch: the one clock hosts and a database can
/// be compared on (a joined run measures each host's offset to the database's).
pub fn realtime_ns() -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_REALTIME always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128
}

/// CLOCK_REALTIME minus CLOCK_MONOTONIC, in ns: what turns a monotonic reading into wall time.
/// Read as the tightest of a few monotonic–realtime–monotonic triples, the realtime reading
/// against their midpoint: one pair of reads can be split by a preemption (milliseconds on a
/// loaded machine), which would shift every time converted with it.
pub fn realtime_minus_monotonic() -> i128 {
    let mut best: Option<(u64, i128)> = None;
    for _ in 0..16 {
        let m0 = now_ns();
        let r = realtime_ns();
        let m1 = now_ns();
        let gap = m1 - m0;
        if best.is_none_or(|(g, _)| gap < g) {
            best = Some((gap, r - (m0 as i128 + m1 as i128) / 2));
        }
    }
    best.expect("read at least once").1
}

/// Sleeps until CLOCK_REALTIME reads `at_ns` (returns at once if it is past): an absolute
/// sleep, so a slow caller is not late by its own delay.
pub fn sleep_until_realtime(at_ns: i128) {
    let Ok(secs) = libc::time_t::try_from(at_ns.div_euclid(1_000_000_000)) else {
        return;
    };
    let ts = libc::timespec {
        tv_sec: secs,
        tv_nsec: at_ns.rem_euclid(1_000_000_000) as libc::c_long,
    };
    // SAFETY: `ts` is a valid timespec; no remainder is asked for with TIMER_ABSTIME. EINTR
    // (a signal) sleeps again: the moment is absolute.
    while unsafe {
        libc::clock_nanosleep(
            libc::CLOCK_REALTIME,
            libc::TIMER_ABSTIME,
            &ts,
            std::ptr::null_mut(),
        )
    } == libc::EINTR
    {}
}

/// What a [`Clock`] reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// The time-stamp counter (`rdtsc`): invariant (constant rate, never stops) on this CPU.
    Tsc,
    /// CLOCK_MONOTONIC in nanoseconds: no invariant TSC, or not x86-64.
    Monotonic,
}

/// One reading of a [`Clock`]: TSC cycles or nanoseconds, depending on its [`Source`]. Only
/// the span between two readings of the same clock means anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ticks(u64);

/// A span between two readings, in the clock's ticks; nanoseconds through its [`Calibration`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Elapsed(pub u64);

impl Ticks {
    /// The span since `start`; 0 if `start` reads later (the TSC of the core this process
    /// moved to may trail the last one's by a few cycles). A `cmov`, not a branch.
    #[inline]
    pub fn since(self, start: Ticks) -> Elapsed {
        Elapsed(self.0.saturating_sub(start.0))
    }
}

/// Converts spans of ticks to nanoseconds: `ns = ticks × ns_per_2³²_ticks / 2³²`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Calibration {
    /// Nanoseconds per 2³² ticks (2³² itself when a tick is a nanosecond). About 31 bits for a
    /// TSC of a few GHz: the conversion is exact to 1 part in 10⁹, far below a bucket's width.
    ns_per_2_32_ticks: u64,
}

impl Calibration {
    /// One tick is one nanosecond (the CLOCK_MONOTONIC fallback).
    pub const NANOSECONDS: Calibration = Calibration {
        ns_per_2_32_ticks: 1 << 32,
    };

    /// `ticks_per_us` ticks make a microsecond (for tests, and for a TSC of known rate).
    pub fn ticks_per_us(ticks_per_us: u64) -> Calibration {
        assert!(ticks_per_us > 0, "a clock ticks");
        Calibration {
            ns_per_2_32_ticks: (1000u64 << 32) / ticks_per_us,
        }
    }

    /// The span in nanoseconds (rounded down).
    #[inline]
    pub fn to_ns(self, span: Elapsed) -> u64 {
        ((span.0 as u128 * self.ns_per_2_32_ticks as u128) >> 32) as u64
    }
}

/// The update timer; see the module doc. Build it in the parent, before any fork.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    source: Source,
    calibration: Calibration,
}

impl Clock {
    /// The TSC when `quanta` finds it invariant (CPUID: invariant TSC and `rdtscp`) and the
    /// kernel has not demoted it as a clocksource; CLOCK_MONOTONIC otherwise. The first call in
    /// a process calibrates (see the module doc); later calls reuse the result.
    pub fn calibrated() -> Clock {
        static CLOCK: OnceLock<Clock> = OnceLock::new();
        *CLOCK.get_or_init(|| {
            let quanta = quanta::Clock::new();
            if quanta_reads_the_tsc(&quanta) && kernel_trusts_the_tsc() {
                Clock {
                    source: Source::Tsc,
                    calibration: Calibration {
                        // `delta_as_nanos` applies quanta's calibration (a multiply and a
                        // shift); 2³² ticks is ~1.4 s at 3 GHz, well inside its range.
                        ns_per_2_32_ticks: quanta.delta_as_nanos(0, 1 << 32),
                    },
                }
            } else {
                Clock::monotonic()
            }
        })
    }

    /// CLOCK_MONOTONIC, whatever the CPU offers: the fallback, and a fixed reference for tests.
    pub fn monotonic() -> Clock {
        Clock {
            source: Source::Monotonic,
            calibration: Calibration::NANOSECONDS,
        }
    }

    pub fn source(&self) -> Source {
        self.source
    }

    pub fn calibration(&self) -> Calibration {
        self.calibration
    }

    /// The current reading: one `rdtsc` (no fence: a span of one update is long beside the
    /// few cycles `rdtsc` may be reordered by), or one `clock_gettime` in the fallback.
    #[inline]
    pub fn now(&self) -> Ticks {
        match self.source {
            Source::Tsc => Ticks(rdtsc()),
            Source::Monotonic => Ticks(now_ns()),
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[inline]
fn rdtsc() -> u64 {
    // SAFETY: `rdtsc` has no preconditions on x86-64 (it reads a counter; user mode may run it
    // unless the kernel set CR4.TSD, which Linux does only for seccomp-strict processes, where
    // `quanta` would not have chosen it either: its detection runs `rdtsc` too).
    unsafe { core::arch::x86_64::_rdtsc() }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline]
fn rdtsc() -> u64 {
    unreachable!("Source::Tsc is chosen on x86-64 only")
}

/// Whether `quanta` settled on the TSC rather than its CLOCK_MONOTONIC fallback. It does not
/// say, so ask its raw reading: a TSC value lies between two `rdtsc`s taken around it; a
/// CLOCK_MONOTONIC value (nanoseconds since boot, not cycles since reset) does not, bar a
/// coincidence that three tries in a row rule out.
#[cfg(target_arch = "x86_64")]
fn quanta_reads_the_tsc(quanta: &quanta::Clock) -> bool {
    (0..3).all(|_| {
        let before = rdtsc();
        let raw = quanta.raw();
        let after = rdtsc();
        (before..=after).contains(&raw)
    })
}

#[cfg(not(target_arch = "x86_64"))]
fn quanta_reads_the_tsc(_: &quanta::Clock) -> bool {
    false
}

/// False when the kernel runs CLOCK_MONOTONIC on another clocksource although the TSC is
/// there: it found the TSC unstable or out of step across cores. Unreadable (a container
/// without /sys): the CPU's word stands.
fn kernel_trusts_the_tsc() -> bool {
    match std::fs::read_to_string(
        "/sys/devices/system/clocksource/clocksource0/current_clocksource",
    ) {
        Ok(current) => current.trim() == "tsc",
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibrations_convert_spans() {
        assert_eq!(Calibration::NANOSECONDS.to_ns(Elapsed(123_456)), 123_456);
        // 3 ticks a nanosecond: 3000 ticks are 1 µs (to the rounding of the factor).
        let three_ghz = Calibration::ticks_per_us(3000);
        assert!((999..=1000).contains(&three_ghz.to_ns(Elapsed(3000))));
        assert_eq!(three_ghz.to_ns(Elapsed(0)), 0);
        // No overflow at the top of u64.
        assert!(three_ghz.to_ns(Elapsed(u64::MAX)) > u64::MAX / 4);
    }

    #[test]
    fn a_reading_before_the_start_is_an_empty_span() {
        assert_eq!(Ticks(10).since(Ticks(12)), Elapsed(0));
        assert_eq!(Ticks(12).since(Ticks(10)), Elapsed(2));
    }

    #[test]
    fn the_fallback_reads_clock_monotonic() {
        let clock = Clock::monotonic();
        let before = now_ns();
        let Ticks(t) = clock.now();
        assert!((before..=now_ns()).contains(&t));
    }

    /// The calibrated clock agrees with CLOCK_MONOTONIC over a span. Each end is bracketed by
    /// two CLOCK_MONOTONIC reads, so a preemption widens the allowed interval instead of
    /// failing the test; the 1% slack covers the calibration only.
    #[test]
    fn the_calibrated_clock_measures_clock_monotonic_spans() {
        let clock = Clock::calibrated();
        let bracket = || {
            let before = now_ns();
            let t = clock.now();
            (before, t, now_ns())
        };
        let (start_lo, start, start_hi) = bracket();
        while now_ns() < start_hi + 20_000_000 {
            std::hint::spin_loop();
        }
        let (end_lo, end, end_hi) = bracket();
        let ns = clock.calibration().to_ns(end.since(start));
        let (shortest, longest) = (end_lo - start_hi, end_hi - start_lo);
        assert!(
            ns >= shortest - shortest / 100 && ns <= longest + longest / 100,
            "{:?} clock: {ns} ns, CLOCK_MONOTONIC between {shortest} and {longest}",
            clock.source()
        );
    }
}
