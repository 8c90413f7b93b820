//! The invariants every run shares, whatever its scenario: its end record fits its header, its
//! fingerprint matches its final values, each worker persisted what it acknowledged (within
//! what a death allows), and damaged records are only killed workers' torn last records.

use super::problem::{Problem, Rejection};
use super::verdict::RunCheck;
use crate::history::event::fingerprint;
use crate::history::loaded::{Place, Writer};
use crate::history::{RunEnd, RunHistory};

/// Who died, and how many records each worker may have persisted, from the run's end.
pub(super) struct Deaths {
    /// Per worker: `Some(in flight at death)` for a killed one.
    pub killed: Vec<Option<bool>>,
    /// Per worker: the most records it may have persisted.
    pub most: Vec<u64>,
    /// False when the run's end is missing or malformed: nobody is known to have died.
    pub known: bool,
}

impl Deaths {
    fn unknown(workers: usize) -> Deaths {
        Deaths {
            killed: vec![None; workers],
            most: vec![0; workers],
            known: false,
        }
    }

    /// Updates begun and not acknowledged by workers that died.
    pub fn in_flight(&self) -> u64 {
        self.killed.iter().filter(|k| **k == Some(true)).count() as u64
    }
}

/// The records `ok` keeps (a record out of the run's range is left out of every other
/// check), with their indices.
pub(super) fn kept<'a, T>(
    records: &'a [T],
    ok: &'a [bool],
) -> impl Iterator<Item = (usize, &'a T)> {
    records
        .iter()
        .enumerate()
        .zip(ok)
        .filter(|(_, ok)| **ok)
        .map(|(r, _)| r)
}

/// Records of kinds the run's scenario never writes: `foreign` of them; `writes` names what
/// it does write ("events only").
pub(super) fn foreign_records(
    run: &RunHistory,
    foreign: usize,
    writes: &'static str,
    c: &mut RunCheck,
) {
    if foreign > 0 {
        c.problem(Problem::ForeignRecords {
            events: run.events.len() as u64,
            transfers: run.transfers.len() as u64,
            reads: run.reads.len() as u64,
            strategy: run.info.strategy.clone(),
            writes,
        });
    }
}

/// The run's end when it is there and its sizes fit the run's header; a misfit is a problem.
pub(super) fn well_formed<'a>(run: &'a RunHistory, c: &mut RunCheck) -> Option<&'a RunEnd> {
    let end = run.end.as_ref()?;
    let info = &run.info;
    if end.completed.len() != info.workers as usize
        || end.finals.len() != info.slots as usize
        || end.killed.iter().any(|k| k.worker >= info.workers)
    {
        c.problem(Problem::MalformedEnd {
            completed: end.completed.len(),
            finals: end.finals.len(),
            workers: info.workers,
            slots: info.slots,
        });
        return None;
    }
    Some(end)
}

/// The saved final values hash to the saved fingerprint.
pub(super) fn fingerprint_matches(end: &RunEnd, c: &mut RunCheck) {
    let computed = fingerprint(&end.finals);
    let ok = computed == end.fingerprint;
    c.fingerprint_ok = Some(ok);
    if !ok {
        c.problem(Problem::Fingerprint {
            computed,
            saved: end.fingerprint,
        });
    }
}

/// Each worker's records end where its acknowledged count says (`persisted[w]` records of
/// worker `w` were found). A killed worker (only where `deaths_allowed`) may lack what it had
/// buffered and may have persisted its update in flight: what it lacks is allowed missing.
pub(super) fn acknowledged(
    end: Option<&RunEnd>,
    persisted: &[u64],
    deaths_allowed: bool,
    c: &mut RunCheck,
) -> Deaths {
    let Some(end) = end else {
        return Deaths::unknown(persisted.len());
    };
    let mut deaths = Deaths {
        killed: vec![None; persisted.len()],
        most: persisted.to_vec(),
        known: true,
    };
    if !end.killed.is_empty() && !deaths_allowed {
        c.problem(Problem::KilledInScenario {
            killed: end.killed.len(),
        });
    }
    if deaths_allowed {
        for k in &end.killed {
            deaths.killed[k.worker as usize] = Some(k.in_flight);
        }
    }
    c.acknowledged = Some(end.completed.iter().sum());
    c.killed = deaths.killed.iter().flatten().count() as u64;
    for (w, (&acked, &seen)) in end.completed.iter().zip(persisted).enumerate() {
        let worker = w as u32;
        match deaths.killed[w] {
            Some(in_flight) => {
                let most = acked + in_flight as u64;
                deaths.most[w] = most;
                if seen > most {
                    c.sequence_errors += seen - most;
                    c.problem(Problem::PersistedNotAcknowledged {
                        worker,
                        acknowledged: acked,
                        in_flight: in_flight as u64,
                        persisted: seen,
                    });
                } else {
                    c.missing_allowed += most - seen;
                }
            }
            None => {
                deaths.most[w] = acked;
                if acked != seen {
                    c.sequence_errors += acked.abs_diff(seen);
                    c.problem(Problem::AcknowledgedNotPersisted {
                        worker,
                        acknowledged: acked,
                        persisted: seen,
                    });
                }
            }
        }
    }
    deaths
}

/// Accepts each damaged record of `run` only as a killed worker's torn last record: it names a
/// killed worker, is that worker's next record (`next_seq`), within what it may have persisted,
/// and no other damage claimed that worker. A record torn inside its header names nobody: it
/// needs a killed worker no damage claimed. Rows are never torn. The first damage not accepted
/// is the problem; every one is counted.
pub(super) fn damage(run: &RunHistory, deaths: &Deaths, next_seq: &[u64], c: &mut RunCheck) {
    let workers = deaths.killed.len();
    let mut claimed = vec![false; workers];
    let mut rejected = Vec::new();
    let mut nameless = Vec::new();
    for d in &run.damaged {
        let why = match (&d.at, d.writer) {
            (Place::Row { .. } | Place::Entry { .. }, _) => Rejection::Row,
            _ if !deaths.known => Rejection::NoEnd,
            (_, Writer::Parent) => Rejection::Parent,
            (_, Writer::Unknown) => {
                nameless.push(d);
                continue;
            }
            (_, Writer::Worker { worker, seq }) => {
                let w = worker as usize;
                if w >= workers {
                    Rejection::NotAWorker { writer: worker }
                } else if deaths.killed[w].is_none() {
                    Rejection::NotKilled { worker }
                } else if claimed[w] {
                    Rejection::AlreadyTorn { worker }
                } else if seq != next_seq[w] || seq >= deaths.most[w] {
                    Rejection::NotLast {
                        worker,
                        next: next_seq[w],
                        most: deaths.most[w],
                    }
                } else {
                    claimed[w] = true;
                    c.torn_records += 1;
                    continue;
                }
            }
        };
        rejected.push((d, why));
    }
    let free = deaths
        .killed
        .iter()
        .zip(&claimed)
        .filter(|(k, taken)| k.is_some() && !**taken)
        .count();
    for (i, d) in nameless.into_iter().enumerate() {
        if i < free {
            c.torn_records += 1;
        } else {
            rejected.push((d, Rejection::TooMany));
        }
    }
    c.corrupt_records = rejected.len() as u64;
    if let Some((d, why)) = rejected
        .into_iter()
        .min_by_key(|(d, _)| d.at.offset().unwrap_or(u64::MAX))
    {
        c.problem(Problem::Damaged {
            damage: d.clone(),
            why,
        });
    }
}

/// Notes a per-worker sequence number: records must run 0, 1, 2 … per worker.
#[inline]
pub(super) fn sequence(c: &mut RunCheck, next: &mut u64, worker: u32, seq: u64) {
    if seq != *next {
        c.sequence_errors += 1;
        c.problem(Problem::Sequence {
            worker,
            seq,
            next: *next,
        });
    }
    *next = (*next).max(seq + 1);
}
