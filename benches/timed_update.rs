//! What timing one update costs, alone: `N` updates (a `fetch_add` on a local counter), each
//! timed the old way (two `clock_gettime` + an HDR record), the new way (two `Clock` reads +
//! a bucket record), or not at all.
//!
//! `cargo bench --bench timed_update -- MODE N` prints nanoseconds per update;
//! `scripts/instructions.sh` runs it under callgrind for instructions per update.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use racepool::clock::{now_ns, Clock};
use racepool::latency::{new_histogram, Buckets};

/// The old loop's timing: CLOCK_MONOTONIC on both sides, straight into the HDR histogram.
#[inline(never)]
fn run_hdr(counter: &AtomicU64, n: u64) -> u64 {
    let mut histogram = new_histogram();
    for _ in 0..n {
        let t0 = now_ns();
        counter.fetch_add(1, Relaxed);
        histogram.saturating_record(now_ns().saturating_sub(t0).max(1));
    }
    histogram.len()
}

/// The new timing: TSC (or the fallback) on both sides, into buckets merged at the end.
#[inline(never)]
fn run_buckets(clock: &Clock, counter: &AtomicU64, n: u64) -> u64 {
    let mut buckets = Buckets::new();
    for _ in 0..n {
        let t0 = clock.now();
        counter.fetch_add(1, Relaxed);
        buckets.record(clock.now().since(t0));
    }
    buckets.to_histogram(clock.calibration()).len()
}

/// One read per update: each update's end is the next one's start (laps).
#[inline(never)]
fn run_laps(clock: &Clock, counter: &AtomicU64, n: u64) -> u64 {
    let mut buckets = Buckets::new();
    let mut last = clock.now();
    for _ in 0..n {
        counter.fetch_add(1, Relaxed);
        let now = clock.now();
        buckets.record(now.since(last));
        last = now;
    }
    buckets.to_histogram(clock.calibration()).len()
}

#[inline(never)]
fn run_off(counter: &AtomicU64, n: u64) -> u64 {
    for _ in 0..n {
        counter.fetch_add(1, Relaxed);
    }
    n
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let (mode, n) = match args.as_slice() {
        [mode, n] => (mode.as_str(), n.parse::<u64>().ok()),
        [] => ("all", Some(10_000_000)),
        _ => ("", None),
    };
    let Some(n) = n else {
        eprintln!("usage: timed_update [hdr|buckets|off|all] [N]");
        std::process::exit(2);
    };
    let clock = Clock::calibrated();
    let counter = black_box(AtomicU64::new(0));
    let modes: &[&str] = match mode {
        "all" => &["off", "hdr", "buckets", "laps"],
        "laps" => &["laps"],
        "hdr" => &["hdr"],
        "buckets" => &["buckets"],
        "off" => &["off"],
        other => {
            eprintln!("timed_update: unknown mode '{other}'");
            std::process::exit(2);
        }
    };
    for &mode in modes {
        let start = Instant::now();
        let recorded = match mode {
            "hdr" => run_hdr(&counter, n),
            "buckets" => run_buckets(&clock, &counter, n),
            "laps" => run_laps(&clock, &counter, n),
            _ => run_off(&counter, n),
        };
        let ns = start.elapsed().as_nanos() as f64 / n as f64;
        assert_eq!(recorded, n, "every update timed once");
        println!("{mode}\t{ns:.2} ns/update\tclock {:?}", clock.source());
    }
}
