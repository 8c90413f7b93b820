//! `--store target` with `--join`: one record of the joined run in its database, the same
//! rows a run on one host keeps, so `torture verify URL --run ID` checks it like any other.
//!
//! - The host that creates the run writes its header once, after its slots: the run's
//!   workers are every host's (`hosts × workers`).
//! - Each host's workers write their events (in the transaction of their update) under the
//!   run's worker ids, `host index × workers + w` (its [`Seat`]), with their times on the
//!   database's clock (each host's offset measured at registration), so the real-time order
//!   check compares hosts on one clock.
//! - The host that reports the verdict writes the end: the finals as the database holds them
//!   once every host is done, and each worker's acknowledged count and death from its host's
//!   figures. A dead host's workers left no figures: each is killed with an update in flight,
//!   its acknowledged count what its committed events show (the record is the one witness left
//!   of it; its host's verdict is bounded).
//! - The other hosts wait (at most `--join-timeout`) for the end before they print, so every
//!   host shows the same check.

use std::time::{Duration, Instant};

use super::db::{connect, Registration};
use super::report::Joined;
use super::Join;
use crate::error::Error;
use crate::history::{Killed, RunEnd, RunInfo};
use crate::options::Options;
use crate::target::postgres::Postgres;
use crate::target::sql::masked;
use crate::target::{RecordStore, RunShape, Seat, Target};

/// This host's seat: its workers' first id in the run, and its CLOCK_MONOTONIC to the
/// database's clock (via CLOCK_REALTIME, then the offset measured at registration).
pub fn seat(reg: &Registration, workers: usize) -> Seat {
    let shift =
        crate::clock::realtime_ns() - crate::clock::now_ns() as i128 + reg.offset_ns as i128;
    Seat {
        first_worker: reg.index as usize * workers,
        clock_shift_ns: shift as i64,
    }
}

/// The creator's part, after it made the slots and before any host forks: the run's header,
/// naming every host's workers.
pub fn begin(target: &Postgres, opts: &Options, join: &Join, run: u64) -> Result<(), Error> {
    let variant = opts.variants()[0];
    target.begin_record(&RunInfo {
        run,
        strategy: variant.name().into(),
        workers: (opts.workers * join.hosts as usize) as u32,
        slots: opts.slots as u32,
        ops: opts.ops,
        initial: opts.initial,
        seed: opts.seed,
        persist: String::new(),
    })
}

/// The reporter's part, once every host is done or dead: the run's end, from the hosts'
/// figures in the join tables and the slots' values now.
pub fn end(target: &Postgres, url: &str, joined: &Joined, shape: &RunShape) -> Result<(), Error> {
    let workers = joined.hosts.first().map_or(0, |h| h.workers);
    let total = workers * joined.hosts_planned as usize;
    let mut completed = vec![0u64; total];
    let mut killed = Vec::new();
    let committed = committed_events(url, joined.run)?;
    for h in &joined.hosts {
        let first = h.index as usize * workers;
        for w in 0..h.workers.min(workers) {
            let g = first + w;
            match &h.figures {
                Some(f) => {
                    completed[g] = f.completed.get(w).copied().unwrap_or(0);
                    let in_flight = f.in_flight.get(w).copied().unwrap_or(0) > 0;
                    if in_flight || f.deaths.iter().any(|d| d.0 == w) {
                        killed.push(Killed {
                            worker: g as u32,
                            in_flight,
                        });
                    }
                }
                None => {
                    completed[g] = committed.get(g).copied().unwrap_or(0);
                    killed.push(Killed {
                        worker: g as u32,
                        in_flight: true,
                    });
                }
            }
        }
    }
    let finals = target.finals(shape)?;
    target.end_record(&RunEnd {
        run: joined.run,
        fingerprint: crate::history::event::fingerprint(&finals),
        finals,
        completed,
        killed,
    })
}

/// Each worker's committed events in run `run`, by the run's worker id.
fn committed_events(url: &str, run: u64) -> Result<Vec<u64>, Error> {
    let fail = |m: String| Error::Target(format!("{}: {m}", masked(url)));
    let mut c = connect(url, "racepool/join/end").map_err(fail)?;
    let mut out = Vec::new();
    for r in c
        .query(
            "SELECT worker, count(*) FROM racepool_events WHERE run = $1 GROUP BY worker",
            &[&(run as i64)],
        )
        .map_err(|e| fail(e.to_string()))?
    {
        let w = r.get::<_, i64>(0).max(0) as usize;
        if w >= out.len() {
            out.resize(w + 1, 0);
        }
        out[w] = r.get::<_, i64>(1) as u64;
    }
    Ok(out)
}

/// A host that does not report: waits until the reporter wrote the run's end (or
/// `--join-timeout` passed: then it prints what there is, the check saying the end is missing).
pub fn wait_for_end(join: &Join, run: u64) -> Result<(), Error> {
    let fail = |m: String| Error::Target(format!("{}: {m}", masked(&join.url)));
    let mut c = connect(&join.url, "racepool/join/end").map_err(fail)?;
    let deadline = Instant::now() + join.timeout;
    loop {
        let ended: bool = c
            .query_one(
                "SELECT fingerprint IS NOT NULL FROM racepool_runs WHERE run = $1",
                &[&(run as i64)],
            )
            .map_err(|e| fail(e.to_string()))?
            .get(0);
        if ended || Instant::now() > deadline || crate::pool::interrupted() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
