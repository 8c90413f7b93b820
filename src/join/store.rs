//! `--store target` with `--join`: one record of the joined run in its target, the same one a
//! run on one host keeps, so `torture verify URL --run ID` checks it like any other.
//!
//! - The host that creates the run writes its header once, after its slots and before any
//!   host's workers connect: the run's workers are every host's (`hosts × workers`).
//! - Each host's workers write their events (in the transaction of their update) under the
//!   run's worker ids, `host index × workers + w` (its [`Share`]), with their times on the
//!   meeting place's clock (each host's offset measured at registration), so the real-time
//!   order check compares hosts on one clock.
//! - The host that reports the verdict writes the end: the finals as the target holds them
//!   once every host is done, and each worker's acknowledged count and death from its host's
//!   figures. A dead host's workers left no figures: each is killed with an update in flight,
//!   its acknowledged count what its committed events show (the record is the one witness left
//!   of it; the joined verdict stays bounded).
//! - The other hosts wait (at most `--join-timeout`) for the end before they print, so every
//!   host shows the same check.

use std::time::{Duration, Instant};

use super::meeting::Registration;
use super::plan::Join;
use super::report::Joined;
use crate::error::Error;
use crate::history::{Event, Killed, RunEnd, RunInfo};
use crate::options::Options;
use crate::target::{Records, Share};
use crate::verify::RunCheck;

/// This host's share: its workers' first id in the run, and its CLOCK_MONOTONIC to the
/// meeting place's clock (via CLOCK_REALTIME, then the offset measured at registration).
pub fn share(reg: &Registration, workers: usize) -> Share {
    let shift = crate::clock::realtime_minus_monotonic() + reg.offset_ns as i128;
    Share {
        first_worker: reg.index as usize * workers,
        clock_shift_ns: shift as i64,
    }
}

/// The run's header, naming every host's workers: written once, by the creator.
pub fn header(opts: &Options, join: &Join, run: u64) -> RunInfo {
    RunInfo {
        run,
        strategy: opts.variants()[0].name().into(),
        workers: (opts.workers * join.hosts as usize) as u32,
        slots: opts.slots as u32,
        ops: opts.ops,
        initial: opts.initial,
        seed: opts.seed,
        persist: String::new(),
    }
}

/// The run's record as `torture verify` checks it, with its events; None when the run keeps
/// none (no `--store target`).
pub fn checked(records: &dyn Records, run: u64) -> Result<Option<(RunCheck, Vec<Event>)>, Error> {
    let loaded = records.load_record(Some(run))?;
    Ok(loaded
        .runs
        .into_iter()
        .find(|r| r.info.run == run)
        .map(|r| (crate::verify::check_run(&r), r.events)))
}

/// The run's end, once every host is done or dead: from the hosts' figures in `joined` and
/// the slots' values now (`finals`); `events` is the record, for a dead host's workers.
pub fn end(joined: &Joined, finals: Vec<u32>, events: &[Event]) -> RunEnd {
    let workers = joined.hosts.first().map_or(0, |h| h.workers);
    let mut completed = vec![0u64; workers * joined.hosts_planned as usize];
    let mut committed = vec![0u64; completed.len()];
    for e in events {
        if let Some(c) = committed.get_mut(e.worker as usize) {
            *c += 1;
        }
    }
    let mut killed = Vec::new();
    for h in &joined.hosts {
        let first = h.index as usize * workers;
        for w in 0..h.workers.min(workers) {
            let g = first + w;
            let Some(slot) = completed.get_mut(g) else {
                continue;
            };
            match &h.figures {
                Some(f) => {
                    *slot = f.completed.get(w).copied().unwrap_or(0);
                    let in_flight = f.in_flight.get(w).copied().unwrap_or(0) > 0;
                    if in_flight || f.deaths.iter().any(|d| d.0 == w) {
                        killed.push(Killed {
                            worker: g as u32,
                            in_flight,
                        });
                    }
                }
                None => {
                    *slot = committed[g];
                    killed.push(Killed {
                        worker: g as u32,
                        in_flight: true,
                    });
                }
            }
        }
    }
    RunEnd {
        run: joined.run,
        fingerprint: crate::history::event::fingerprint(&finals),
        finals,
        completed,
        killed,
    }
}

/// A host that does not report: waits until the reporter wrote the run's end, or
/// `--join-timeout` passed (then the check it prints says the end is missing).
pub fn wait_for_end(records: &dyn Records, join: &Join, run: u64) -> Result<(), Error> {
    let deadline = Instant::now() + join.timeout;
    loop {
        let loaded = records.load_record(Some(run))?;
        let ended = loaded
            .runs
            .iter()
            .any(|r| r.info.run == run && r.end.is_some());
        if ended || Instant::now() > deadline || crate::pool::interrupted() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::join::report::{judged, Figures, Host, Stored};

    fn event(worker: u32, seq: u64) -> Event {
        Event {
            run: 7,
            worker,
            seq,
            slot: 0,
            read: 0,
            written: 1,
            retries: 0,
            invoke_ns: 0,
            complete_ns: 0,
            hash: 0,
        }
    }

    #[test]
    fn the_end_names_workers_by_their_run_wide_ids_and_a_dead_hosts_by_their_events() {
        // Host 0 done (its worker 1 died with an update in flight); host 1 dead, no figures.
        let done = Figures {
            completed: vec![5, 3],
            in_flight: vec![0, 1],
            deaths: vec![(1, "SIGKILL".into())],
            ..Figures::default()
        };
        let host = |index: u32, state: &str, figures: Option<Figures>| {
            Host::recorded(
                format!("h{index}"),
                index,
                1,
                2,
                index as u64,
                0,
                0,
                state.into(),
                None,
                figures,
                vec![1, 1],
            )
        };
        let joined = judged(Stored {
            name: "t".into(),
            url: "postgres://h/db".into(),
            plan: r#"{"ops":5,"slots":1,"initial":0,"strategies":["atomic"]}"#.into(),
            hosts_planned: 2,
            run: 7,
            release_ns: Some(0),
            reported_by: Some("h0".into()),
            hosts: vec![host(0, "done", Some(done)), host(1, "dead", None)],
            histograms: Vec::new(),
            finals: vec![14],
        })
        .unwrap();
        // The dead host's workers are the run's 2 and 3: 4 and 2 committed events.
        let events: Vec<Event> = (0..4)
            .map(|s| event(2, s))
            .chain((0..2).map(|s| event(3, s)))
            .collect();
        let end = end(&joined, vec![14], &events);
        assert_eq!(end.completed, vec![5, 3, 4, 2]);
        let killed: Vec<(u32, bool)> = end.killed.iter().map(|k| (k.worker, k.in_flight)).collect();
        assert_eq!(killed, vec![(1, true), (2, true), (3, true)]);
        assert_eq!(end.fingerprint, crate::history::event::fingerprint(&[14]));
    }
}
