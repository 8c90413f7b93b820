//! `torture verify`: proves from the stored record alone that no update was lost or duplicated.
//!
//! Per run and per slot, from the events and the run's end record:
//! - the written values are exactly {initial+1 … final}: no duplicate (two winners of one value:
//!   a lost update, shown with its witnesses) and no gap (a value nobody persisted);
//! - the stored final state equals the region's (the fingerprint saved with the run);
//! - every event's hash links the state it read to the state it wrote;
//! - real time: no event completed before an event writing a lower value was invoked;
//! - every worker's records are its sequence 0, 1, 2 … up to what it acknowledged.
//!
//! A ledger run (its header names `ledger …`) is checked from its transfers instead: per
//! account, the versions run 0, 1, 2 … with no gap and no repeat (two transfers that read the
//! same state of an account: a lost update, both workers named), each transfer read the
//! balance the previous version left, each chain ends at the region's final balance, no
//! balance goes below zero and the total is what the run started with. A cache run (`cache …`)
//! from its writes (each version written once) and its readers' reads: a read whose related
//! entries are not of the value's version is torn, and counted.
//!
//! Record checksums are checked by the reader (`history::frame`) before anything here runs.

mod scenario;

use std::path::Path;

use serde::Serialize;

use scenario::{check_cache, check_ledger};

use crate::error::Error;
use crate::history::event::{fingerprint, ChainKey};
use crate::history::frame::{self, Corrupt, Damage, Tail};
use crate::history::{Event, Reads, Record, RunEnd, RunInfo, Transfer};

/// One run as read back from a store.
#[derive(Clone, Debug)]
pub struct RunHistory {
    pub info: RunInfo,
    pub events: Vec<Event>,
    /// A ledger run's transfers.
    pub transfers: Vec<Transfer>,
    /// A cache run's reads, in batches.
    pub reads: Vec<Reads>,
    pub end: Option<RunEnd>,
    /// The values the store itself keeps per slot (SQLite's `slots.value`); for the log, the
    /// stored state is what its events add up to.
    pub stored: Option<Vec<u32>>,
    /// Damaged records between its header and its end (accepted only as killed workers' last).
    pub damaged: Vec<Damage>,
}

/// Everything a store held.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub runs: Vec<RunHistory>,
    pub tail: Tail,
    /// A record that stopped the reading (one that checks but cannot be placed); nothing after
    /// it was read.
    pub corrupt: Option<Corrupt>,
    /// Damaged records outside any run: never accepted.
    pub damaged: Vec<Damage>,
    pub records: u64,
}

/// Bytes read at a time: the log is streamed, never held whole (a fresh buffer the size of
/// the file cost more in page faults than the parse itself).
const CHUNK: usize = 4 << 20;
/// The smallest framed event: frame, tag and seven one-byte fields and the 8-byte hash.
const MIN_EVENT_FRAME: u64 = (frame::HEADER + 1 + 7 + 8 + frame::TRAILER) as u64;

/// Reads an event log. Only I/O errors are errors: corruption is part of what it returns.
pub fn load_log(path: &Path) -> Result<Loaded, Error> {
    load_log_in_chunks(path, CHUNK)
}

fn load_log_in_chunks(path: &Path, chunk: usize) -> Result<Loaded, Error> {
    use std::io::Read;
    let fail = |e: std::io::Error| Error::Usage(format!("reading {}: {e}", path.display()));
    let mut file = std::fs::File::open(path).map_err(fail)?;
    let size = file.metadata().map_err(fail)?.len();
    let mut parser = Parser::new(size);
    let mut buf = vec![0u8; chunk.min(size as usize + 1).max(frame::HEADER)];
    // `buf[..filled]` holds the file from byte `base`: whole records, then a partial one.
    let (mut base, mut filled) = (0u64, 0usize);
    loop {
        if filled == buf.len() {
            // One record longer than the buffer (a run end of many slots).
            buf.resize(buf.len() * 2, 0);
        }
        let n = match file.read(&mut buf[filled..]) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => other.map_err(fail)?,
        };
        filled += n;
        let eof = n == 0;
        if !eof && filled < buf.len() {
            continue;
        }
        let scanned = frame::scan(&buf[..filled], |f| parser.frame(f, base));
        match scanned {
            // The end of the buffer is not the end of the file: keep the partial record.
            Ok(Tail::Torn { offset, .. }) if !eof => {
                buf.copy_within(offset as usize..filled, 0);
                filled -= offset as usize;
                base += offset;
            }
            Ok(Tail::Clean) if !eof => {
                base += filled as u64;
                filled = 0;
            }
            Ok(tail) => return Ok(parser.finish(shift(tail, base), None)),
            Err(c) => {
                // Damage is rare (a killed worker's torn write, or real corruption): read the
                // rest whole and walk it resynchronising after each damaged record.
                let from = c.offset as usize;
                buf.truncate(filled);
                file.read_to_end(&mut buf).map_err(fail)?;
                let base = base + from as u64;
                let walked = frame::scan_resync(&buf[from..], |r| parser.record(r, base));
                return Ok(match walked {
                    Ok(tail) => parser.finish(shift(tail, base), None),
                    Err(mut c) => {
                        c.offset += base;
                        parser.finish(Tail::Clean, Some(c))
                    }
                });
            }
        }
    }
}

fn shift(tail: Tail, base: u64) -> Tail {
    match tail {
        Tail::Clean => Tail::Clean,
        Tail::Torn { offset, bytes } => Tail::Torn {
            offset: offset + base,
            bytes,
        },
    }
}

/// Parses the bytes of an event log.
pub fn parse_log(bytes: &[u8]) -> Loaded {
    let mut parser = Parser::new(bytes.len() as u64);
    match frame::scan_resync(bytes, |r| parser.record(r, 0)) {
        Ok(tail) => parser.finish(tail, None),
        Err(c) => parser.finish(Tail::Clean, Some(c)),
    }
}

/// Sorts a log's records into runs.
struct Parser {
    runs: Vec<RunHistory>,
    damaged: Vec<Damage>,
    records: u64,
    /// The file's size: bounds how many events a run header may make room for.
    size: u64,
}

impl Parser {
    fn new(size: u64) -> Parser {
        Parser {
            runs: Vec::new(),
            damaged: Vec::new(),
            records: 0,
            size,
        }
    }

    fn record(
        &mut self,
        record: Result<frame::Frame<'_>, Damage>,
        base: u64,
    ) -> Result<(), String> {
        match record {
            Ok(f) => self.frame(f, base),
            Err(mut d) => {
                d.offset += base;
                match self.runs.last_mut().filter(|r| r.end.is_none()) {
                    Some(r) => r.damaged.push(d),
                    None => self.damaged.push(d),
                }
                Ok(())
            }
        }
    }

    /// One complete record, `base` bytes into the file.
    #[inline]
    fn frame(&mut self, f: frame::Frame<'_>, base: u64) -> Result<(), String> {
        // An event belongs to the run whose header it follows (version 2 stores no run id in
        // an event; the hash chain, which includes the run id, catches a misattributed one).
        let open = self
            .runs
            .last()
            .filter(|r| r.end.is_none())
            .map(|r| r.info.run);
        match frame::decode(&f, open.unwrap_or(0))? {
            Record::Run(info) => {
                let left = self.size.saturating_sub(base + f.offset) / MIN_EVENT_FRAME;
                let expected = (info.workers as u64).saturating_mul(info.ops).min(left);
                self.runs.push(RunHistory {
                    info,
                    events: Vec::with_capacity(expected as usize),
                    transfers: Vec::new(),
                    reads: Vec::new(),
                    end: None,
                    stored: None,
                    damaged: Vec::new(),
                })
            }
            Record::Event(e) => match self.runs.last_mut() {
                Some(r) if open.is_some() => r.events.push(e),
                _ => return Err(format!("event of worker {} outside any run", e.worker)),
            },
            Record::Transfer(t) => match self.runs.last_mut() {
                Some(r) if open.is_some() => r.transfers.push(t),
                _ => return Err(format!("transfer of worker {} outside any run", t.worker)),
            },
            Record::Reads(reads) => match self.runs.last_mut() {
                Some(r) if open.is_some() => r.reads.push(reads),
                _ => return Err(format!("reads of worker {} outside any run", reads.worker)),
            },
            Record::End(end) => match self.runs.last_mut() {
                Some(r) if r.info.run == end.run && r.end.is_none() => r.end = Some(end),
                _ => return Err(format!("end of run {} without its start", end.run)),
            },
        }
        self.records += 1;
        Ok(())
    }

    fn finish(self, tail: Tail, corrupt: Option<Corrupt>) -> Loaded {
        Loaded {
            runs: self.runs,
            tail,
            corrupt,
            damaged: self.damaged,
            records: self.records,
        }
    }
}

/// Two winners of one value: the lost update, named. For a ledger, `slot` is the account,
/// `read` and `written` its versions and `balance` the balance both read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Witness {
    pub slot: u32,
    pub read: u32,
    pub written: u32,
    pub workers: [u32; 2],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub balance: Option<u32>,
}

impl std::fmt::Display for Witness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.balance {
            None if self.workers[0] == self.workers[1] => write!(
                f,
                "worker {} read {} on slot {} and wrote {} twice (a stale write in between had rolled the slot back)",
                self.workers[0], self.read, self.slot, self.written
            ),
            None => write!(
                f,
                "worker {} and worker {} both read {} on slot {} and both wrote {}",
                self.workers[0], self.workers[1], self.read, self.slot, self.written
            ),
            Some(b) => write!(
                f,
                "worker {} and worker {} both read version {} of account {} (balance {}) and both wrote version {}",
                self.workers[0], self.workers[1], self.read, self.slot, b as i32, self.written
            ),
        }
    }
}

/// A cache read that saw the value beside related entries of another version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TornRead {
    pub worker: u32,
    /// The reader's read number.
    pub read: u64,
    pub value: u32,
    /// The lowest and highest version among the related entries it saw.
    pub lo: u32,
    pub hi: u32,
    /// The writer of the value's version, if a write event names it.
    pub value_by: Option<u32>,
}

impl std::fmt::Display for TornRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "worker {} (read {}) saw value version {}",
            self.worker, self.read, self.value
        )?;
        if let Some(w) = self.value_by {
            write!(f, " (written by worker {w})")?;
        }
        if self.lo == self.hi {
            write!(f, " beside related entries of version {}", self.lo)
        } else {
            write!(
                f,
                " beside related entries of versions {} to {}",
                self.lo, self.hi
            )
        }
    }
}

/// A slot whose stored final value is not the region's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FinalMismatch {
    pub slot: u32,
    pub stored: u32,
    pub region: u32,
}

/// The verdict on one run, field by field.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RunCheck {
    pub run: u64,
    pub strategy: String,
    pub persist: String,
    /// Events in the store.
    pub persisted: u64,
    /// Updates the workers acknowledged (from the run's end record).
    pub acknowledged: Option<u64>,
    /// True when every property holds.
    pub verified: bool,
    /// Extra winners of an already-written value, summed over slots.
    pub duplicates: u64,
    /// Values in {initial+1 … final} that no event wrote.
    pub gaps: u64,
    /// Pairs of workers that won the same value (first few in `witness_list`).
    pub witnesses: u64,
    pub witness_list: Vec<Witness>,
    /// Events whose hash does not link the state they read to the one they wrote.
    pub broken_links: u64,
    /// Events that completed before an event writing a lower value was invoked.
    pub order_violations: u64,
    /// Missing or repeated per-worker sequence numbers.
    pub sequence_errors: u64,
    /// Slots whose stored final value differs from the region's (first few).
    pub final_mismatches: u64,
    pub final_mismatch_list: Vec<FinalMismatch>,
    /// Whether the fingerprint saved with the run matches the final values saved with it.
    pub fingerprint_ok: Option<bool>,
    /// Workers the run's end record says died.
    pub killed: u64,
    /// Values that may lack an event: over killed workers, acknowledged + in flight - persisted.
    pub missing_allowed: u64,
    /// Damaged records accepted as a killed worker's torn last record.
    pub torn_records: u64,
    /// The first damaged record not accepted, as "corrupt record at byte offset …".
    pub corrupt: Option<String>,
    pub corrupt_offset: Option<u64>,
    /// ledger: transfers that read an account state other than the one its previous version
    /// left (a broken chain).
    pub broken_chains: u64,
    /// ledger: balances read or left below zero (an overdraft that was not refused), and final
    /// balances below zero.
    pub negative_balances: u64,
    /// ledger: the region's final total minus the starting total.
    pub total_change: i64,
    /// cache: reads persisted.
    pub reads: u64,
    /// cache: reads that saw the value beside related entries of another version.
    pub torn_reads: u64,
    pub torn_list: Vec<TornRead>,
    /// Human sentences, the first of each kind of problem.
    pub problems: Vec<String>,
}

/// What a run's records are made of, from the scenario its header names ("ledger two-rmw").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// Events of slots moving v to v+1: the counter, votes and record.
    Counter,
    /// Transfers chaining each account's versions.
    Ledger,
    /// Writes of the value's version, and readers' reads.
    Cache,
}

impl Shape {
    pub fn of(strategy: &str) -> Shape {
        match strategy.split(' ').next() {
            Some("ledger") => Shape::Ledger,
            Some("cache") => Shape::Cache,
            _ => Shape::Counter,
        }
    }
}

/// The verdict on a whole store.
#[derive(Clone, Debug, Serialize)]
pub struct Verification {
    pub records: u64,
    pub torn_tail: Option<Tail>,
    pub corrupt: Option<String>,
    pub corrupt_offset: Option<u64>,
    pub runs: Vec<RunCheck>,
    pub verified: bool,
}

/// How many witnesses and mismatches are listed (all are counted).
const LISTED: usize = 10;

/// Checks every run of a loaded store.
pub fn verify(loaded: &Loaded) -> Verification {
    let runs: Vec<RunCheck> = loaded.runs.iter().map(check_run).collect();
    // The first record nobody accounts for: outside any run, in a run and not accepted, or
    // the one that stopped the reading.
    let first = loaded
        .damaged
        .iter()
        .map(|d| (d.offset, corrupt_text(d)))
        .chain(
            runs.iter()
                .filter_map(|r| r.corrupt_offset.zip(r.corrupt.clone())),
        )
        .chain(
            loaded
                .corrupt
                .as_ref()
                .map(|c| (c.offset, format!("{c}; nothing after it was read"))),
        )
        .min_by_key(|(offset, _)| *offset);
    let verified = first.is_none() && !runs.is_empty() && runs.iter().all(|r| r.verified);
    Verification {
        records: loaded.records,
        torn_tail: match loaded.tail {
            Tail::Clean => None,
            t => Some(t),
        },
        corrupt_offset: first.as_ref().map(|f| f.0),
        corrupt: first.map(|f| f.1),
        runs,
        verified,
    }
}

fn corrupt_text(d: &Damage) -> String {
    let c = Corrupt {
        offset: d.offset,
        reason: d.reason.clone(),
    };
    match d.header {
        Some((w, seq)) if w != frame::PARENT => format!("{c} (worker {w}'s record {seq})"),
        _ => c.to_string(),
    }
}

/// What the events say about one value of one slot.
#[derive(Clone, Copy)]
struct Cell {
    count: u32,
    /// The first event that wrote the value.
    first: u32,
    /// The latest invocation among its writers, and which event.
    invoke_max: u64,
    invoke_at: u32,
    /// The earliest completion among its writers, and which event.
    complete_min: u64,
    complete_at: u32,
}

const EMPTY: Cell = Cell {
    count: 0,
    first: 0,
    invoke_max: 0,
    invoke_at: 0,
    complete_min: u64::MAX,
    complete_at: 0,
};

/// Checks one run.
pub fn check_run(run: &RunHistory) -> RunCheck {
    match Shape::of(&run.info.strategy) {
        Shape::Ledger => return check_ledger(run),
        Shape::Cache => return check_cache(run),
        Shape::Counter => {}
    }
    let info = &run.info;
    let slots = info.slots as usize;
    let initial = info.initial;
    let events = &run.events;
    let chain = ChainKey::of(info.run);
    let chain_of = |r: u64| {
        if r == info.run {
            chain
        } else {
            ChainKey::of(r)
        }
    };
    let mut c = RunCheck {
        run: info.run,
        strategy: info.strategy.clone(),
        persist: info.persist.clone(),
        persisted: events.len() as u64,
        ..RunCheck::default()
    };
    if !run.transfers.is_empty() || !run.reads.is_empty() {
        problem(
            &mut c,
            "foreign records: ",
            format!(
                "{} transfers and {} read batches in a run of {}, which writes events only",
                run.transfers.len(),
                run.reads.len(),
                info.strategy
            ),
        );
    }

    // Pass 1: per-event facts, per-slot maxima and per-worker sequences.
    let mut max_written = vec![initial; slots];
    let mut next_seq = vec![0u64; info.workers as usize];
    let mut valid = vec![true; events.len()];
    for (i, e) in events.iter().enumerate() {
        if e.slot as usize >= slots || e.worker >= info.workers || e.written <= initial {
            valid[i] = false;
            problem(
                &mut c,
                "impossible event: ",
                format!(
                    "worker {} wrote {} on slot {} (run has {} workers, {} slots, initial {})",
                    e.worker, e.written, e.slot, info.workers, slots, initial
                ),
            );
            c.broken_links += 1;
            continue;
        }
        if e.read.wrapping_add(1) != e.written
            || e.hash != chain_of(e.run).link(e.slot, e.read, e.written)
        {
            c.broken_links += 1;
            problem(
                &mut c,
                "broken hash chain: ",
                format!(
                    "worker {} seq {} on slot {} read {} wrote {} with hash {:016x}",
                    e.worker, e.seq, e.slot, e.read, e.written, e.hash
                ),
            );
        }
        let s = e.slot as usize;
        max_written[s] = max_written[s].max(e.written);
        let next = &mut next_seq[e.worker as usize];
        if e.seq != *next {
            c.sequence_errors += 1;
            problem(
                &mut c,
                "sequence: ",
                format!(
                    "worker {} record {} follows record {}",
                    e.worker,
                    e.seq,
                    *next as i64 - 1
                ),
            );
        }
        *next = (*next).max(e.seq + 1);
    }
    // Per worker: Some(in flight at death) for a killed one, and the most records it may have.
    let workers = info.workers as usize;
    let mut killed: Vec<Option<bool>> = vec![None; workers];
    let mut most = vec![0u64; workers];
    if let Some(end) = &run.end {
        if end.completed.len() != workers
            || end.finals.len() != slots
            || end.killed.iter().any(|k| k.worker >= info.workers)
        {
            problem(
                &mut c,
                "malformed end record: ",
                format!(
                    "{} worker counts and {} final values for {} workers and {} slots",
                    end.completed.len(),
                    end.finals.len(),
                    info.workers,
                    slots
                ),
            );
        } else {
            c.acknowledged = Some(end.completed.iter().sum());
            for k in &end.killed {
                killed[k.worker as usize] = Some(k.in_flight);
            }
            c.killed = killed.iter().flatten().count() as u64;
            for (w, (&acked, &seen)) in end.completed.iter().zip(&next_seq).enumerate() {
                // A killed worker persisted at most what it acknowledged and its update in
                // flight; whatever it had buffered is missing, and allowed to be.
                most[w] = acked + killed[w].unwrap_or(false) as u64;
                if killed[w].is_some() {
                    if seen > most[w] {
                        c.sequence_errors += seen - most[w];
                        problem(
                            &mut c,
                            "persisted but never acknowledged: ",
                            format!(
                                "worker {w} (killed) acknowledged {acked} updates with {} in flight, its records end at {seen}",
                                most[w] - acked
                            ),
                        );
                    } else {
                        c.missing_allowed += most[w] - seen;
                    }
                } else if acked != seen {
                    c.sequence_errors += acked.abs_diff(seen);
                    problem(
                        &mut c,
                        "acknowledged but not persisted: ",
                        format!(
                            "worker {w} acknowledged {acked} updates, its records end at {seen}"
                        ),
                    );
                }
            }
            let ok = fingerprint(&end.finals) == end.fingerprint;
            c.fingerprint_ok = Some(ok);
            if !ok {
                problem(
                    &mut c,
                    "fingerprint: ",
                    format!(
                        "the saved final values hash to {:016x}, the region's fingerprint is {:016x}",
                        fingerprint(&end.finals),
                        end.fingerprint
                    ),
                );
            }
            let region_total: u64 = end
                .finals
                .iter()
                .map(|&v| v.saturating_sub(initial) as u64)
                .sum();
            let acked = c.acknowledged.unwrap_or(0);
            let in_flight = killed.iter().filter(|k| **k == Some(true)).count() as u64;
            // Jepsen's accounting with deaths: acknowledged ≤ final ≤ acknowledged + in flight.
            if region_total > acked + in_flight {
                problem(
                    &mut c,
                    "final count above acknowledged: ",
                    format!(
                        "the region holds {region_total} updates, workers acknowledged {acked} with {in_flight} in flight"
                    ),
                );
            }
            if region_total < acked {
                problem(
                    &mut c,
                    "final count below acknowledged: ",
                    format!(
                        "the region holds {region_total} updates, workers acknowledged {acked}"
                    ),
                );
            }
        }
    }
    check_damage(&mut c, run, &killed, &most, &next_seq);
    let finals: Option<&[u32]> = run
        .end
        .as_ref()
        .map(|e| e.finals.as_slice())
        .filter(|f| f.len() == slots);

    // Cells: one per value initial+1 ..= max(region final, max written), per slot.
    let mut offsets = Vec::with_capacity(slots + 1);
    let mut total = 0usize;
    let mut per_slot = vec![0u64; slots];
    for (i, e) in events.iter().enumerate() {
        if valid[i] {
            per_slot[e.slot as usize] += 1;
        }
    }
    let mut top = vec![initial; slots];
    for s in 0..slots {
        offsets.push(total);
        let hi = max_written[s].max(finals.map_or(initial, |f| f[s]));
        // A final value far beyond the events (a lie that passed the checksum) is a gap we
        // count without allocating a cell per missing value.
        let cap = initial as u64 + per_slot[s] * 2 + 1024;
        let hi_capped = (hi as u64).min(cap) as u32;
        if (hi as u64) > cap {
            c.gaps += hi as u64 - cap;
        }
        top[s] = hi_capped;
        total += (hi_capped - initial) as usize;
    }
    offsets.push(total);
    let mut cells = vec![EMPTY; total];
    let mut same_worker: Vec<Witness> = Vec::new();
    for (i, e) in events.iter().enumerate() {
        if !valid[i] || e.written > top[e.slot as usize] {
            continue;
        }
        let cell = &mut cells[offsets[e.slot as usize] + (e.written - initial - 1) as usize];
        if cell.count == 0 {
            cell.first = i as u32;
        } else {
            c.duplicates += 1;
            c.witnesses += 1;
            let first = &events[cell.first as usize];
            let witness = Witness {
                slot: e.slot,
                read: e.read,
                written: e.written,
                workers: [first.worker, e.worker],
                balance: None,
            };
            // Two workers colliding tell the story best; one worker winning a value twice (a
            // stale write rolled the slot back between its two updates) is listed only if
            // nothing else is.
            if first.worker != e.worker {
                if c.witness_list.len() < LISTED {
                    c.witness_list.push(witness);
                }
            } else if same_worker.len() < LISTED {
                same_worker.push(witness);
            }
        }
        cell.count += 1;
        if e.invoke_ns >= cell.invoke_max {
            cell.invoke_max = e.invoke_ns;
            cell.invoke_at = i as u32;
        }
        if e.complete_ns < cell.complete_min {
            cell.complete_min = e.complete_ns;
            cell.complete_at = i as u32;
        }
    }

    let room = LISTED.saturating_sub(c.witness_list.len());
    c.witness_list.extend(same_worker.into_iter().take(room));

    // Pass 2, per slot in value order: gaps, real-time order, final state.
    let mut first_gap: Option<(u32, usize)> = None;
    let mut behind_excused = false;
    let mut stored_all = Vec::with_capacity(slots);
    for s in 0..slots {
        let cells = &cells[offsets[s]..offsets[s + 1]];
        let region_final = finals.map(|f| f[s]);
        let must_have = region_final.unwrap_or(max_written[s]).min(top[s]);
        let mut later_invoked: Option<(u64, u32)> = None;
        for (k, cell) in cells.iter().enumerate() {
            let value = initial + 1 + k as u32;
            if cell.count == 0 {
                if value <= must_have {
                    c.gaps += 1;
                    first_gap.get_or_insert((value, s));
                }
                continue;
            }
            if let Some((t, at)) = later_invoked {
                if cell.complete_min < t {
                    c.order_violations += 1;
                    let (a, b) = (&events[cell.complete_at as usize], &events[at as usize]);
                    problem(
                        &mut c,
                        "real-time order: ",
                        format!(
                            "worker {} wrote {value} on slot {s} and completed {} ns before worker {} wrote the lower value {} was even invoked",
                            a.worker,
                            t - cell.complete_min,
                            b.worker,
                            b.written
                        ),
                    );
                }
            }
            if later_invoked.is_none_or(|(t, _)| cell.invoke_max > t) {
                later_invoked = Some((cell.invoke_max, cell.invoke_at));
            }
        }
        let stored = match &run.stored {
            Some(v) => v.get(s).copied().unwrap_or(initial),
            None => max_written[s],
        };
        stored_all.push(stored);
        if let Some(region) = region_final {
            // The log's stored state is its highest event: behind the region only by values
            // with no event, which the gap count already bounds.
            let behind_by_gaps = run.stored.is_none() && c.killed > 0 && stored < region;
            behind_excused |= behind_by_gaps;
            if stored != region && !behind_by_gaps {
                c.final_mismatches += 1;
                if c.final_mismatch_list.len() < LISTED {
                    c.final_mismatch_list.push(FinalMismatch {
                        slot: s as u32,
                        stored,
                        region,
                    });
                }
                problem(
                    &mut c,
                    "final state: ",
                    format!(
                        "slot {s} is stored as {stored}, {} the region's {region}",
                        if stored < region {
                            "behind"
                        } else {
                            "ahead of"
                        }
                    ),
                );
            }
        }
    }
    if c.gaps > c.missing_allowed {
        let (value, s) = first_gap.unwrap_or_default();
        let allowed = if c.killed > 0 {
            format!(
                " ({} missing, at most {} allowed for killed workers)",
                c.gaps, c.missing_allowed
            )
        } else {
            String::new()
        };
        problem(
            &mut c,
            "gap: ",
            format!("no event wrote {value} on slot {s}{allowed}"),
        );
    }
    if let Some(end) = &run.end {
        if c.final_mismatches == 0
            && !behind_excused
            && fingerprint(&stored_all) != end.fingerprint
            && finals.is_some()
        {
            problem(
                &mut c,
                "final state: ",
                "the stored values do not hash to the region's fingerprint".into(),
            );
        }
    }
    if c.duplicates > 0 {
        let text = format!(
            "{} value(s) won twice, first: {}",
            c.duplicates, c.witness_list[0]
        );
        // The headline: put it first.
        c.problems.insert(0, format!("lost update: {text}"));
    }
    c.verified = c.problems.is_empty();
    c
}

/// Accepts each damaged record of `run` only as a killed worker's torn last record: its header
/// names a killed worker, is that worker's next record, within what it may have persisted, and
/// no other damage claimed that worker. A record whose header is torn too names nobody: it
/// needs a killed worker no damage claimed. The first one not accepted makes the run corrupt.
fn check_damage(
    c: &mut RunCheck,
    run: &RunHistory,
    killed: &[Option<bool>],
    most: &[u64],
    next_seq: &[u64],
) {
    let mut claimed = vec![false; killed.len()];
    let mut rejected: Vec<(&Damage, String)> = Vec::new();
    let mut nameless = Vec::new();
    for d in &run.damaged {
        match d.header {
            Some((w, seq)) => {
                let w = w as usize;
                let why = if w >= killed.len() {
                    format!("written by {w}, not a worker of this run")
                } else if killed[w].is_none() {
                    format!("worker {w} was not killed")
                } else if claimed[w] {
                    format!("worker {w} already has a torn record")
                } else if seq != next_seq[w] || seq >= most[w] {
                    format!(
                        "not worker {w}'s last record (its records end at {}, it may have {})",
                        next_seq[w], most[w]
                    )
                } else {
                    claimed[w] = true;
                    c.torn_records += 1;
                    continue;
                };
                rejected.push((d, why));
            }
            None => nameless.push(d),
        }
    }
    let free = killed
        .iter()
        .zip(&claimed)
        .filter(|(k, taken)| k.is_some() && !**taken)
        .count();
    for (i, d) in nameless.into_iter().enumerate() {
        if i < free {
            c.torn_records += 1;
        } else {
            rejected.push((d, "more torn records than killed workers".into()));
        }
    }
    if let Some((d, why)) = rejected.into_iter().min_by_key(|(d, _)| d.offset) {
        let text = format!(
            "{}; a torn record is accepted only as a killed worker's last, and {why}",
            corrupt_text(d)
        );
        c.problems.push(text.clone());
        c.corrupt = Some(text);
        c.corrupt_offset = Some(d.offset);
    }
}

/// Notes the first problem of each kind (all are counted in their fields).
fn problem(c: &mut RunCheck, kind: &str, text: String) {
    if !c.problems.iter().any(|p| p.starts_with(kind)) {
        c.problems.push(format!("{kind}{text}"));
    }
}

/// Loads any store by looking at its first bytes: SQLite databases name themselves.
pub fn load(path: &Path) -> Result<Loaded, Error> {
    if crate::store::sqlite::is_sqlite(path) {
        crate::store::sqlite::load(path)
    } else {
        load_log(path)
    }
}

/// The verdict as text, one run per paragraph.
pub fn render(v: &Verification) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    if let Some(Tail::Torn { offset, bytes }) = v.torn_tail {
        let _ = writeln!(
            out,
            "torn tail: the last {bytes} bytes (from byte offset {offset}) are an incomplete record; ignored"
        );
    }
    if let Some(c) = &v.corrupt {
        let _ = writeln!(out, "{c}");
    }
    for r in &v.runs {
        let _ = writeln!(
            out,
            "run {} ({}, persist {}): {} persisted, {} acknowledged: {}",
            r.run,
            r.strategy,
            r.persist,
            r.persisted,
            r.acknowledged
                .map_or("? (no end record)".into(), |a| a.to_string()),
            if r.verified {
                "verified"
            } else {
                "NOT verified"
            }
        );
        let _ = match Shape::of(&r.strategy) {
            Shape::Counter => writeln!(
                out,
                "  duplicates {}, gaps {}, witnesses {}, broken links {}, order violations {}, sequence errors {}, final mismatches {}",
                r.duplicates,
                r.gaps,
                r.witnesses,
                r.broken_links,
                r.order_violations,
                r.sequence_errors,
                r.final_mismatches
            ),
            Shape::Ledger => writeln!(
                out,
                "  transfers {}: duplicates {}, gaps {}, witnesses {}, broken chains {}, negative balances {}, total change {}, sequence errors {}, final mismatches {}",
                r.persisted,
                r.duplicates,
                r.gaps,
                r.witnesses,
                r.broken_chains,
                r.negative_balances,
                r.total_change,
                r.sequence_errors,
                r.final_mismatches
            ),
            Shape::Cache => writeln!(
                out,
                "  writes {}, reads {}: torn reads {}, duplicates {}, gaps {}, broken links {}, sequence errors {}, final mismatches {}",
                r.persisted - r.reads,
                r.reads,
                r.torn_reads,
                r.duplicates,
                r.gaps,
                r.broken_links,
                r.sequence_errors,
                r.final_mismatches
            ),
        };
        if r.killed > 0 {
            let _ = writeln!(
                out,
                "  killed workers {}: {} torn record(s) accepted, up to {} missing event(s) allowed",
                r.killed, r.torn_records, r.missing_allowed
            );
        }
        for w in r.witness_list.iter().take(3) {
            let _ = writeln!(out, "  witness: {w}");
        }
        for t in r.torn_list.iter().take(3) {
            let _ = writeln!(out, "  torn read: {t}");
        }
        for p in &r.problems {
            let _ = writeln!(out, "  {p}");
        }
    }
    if v.runs.is_empty() {
        let _ = writeln!(out, "no run found");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::event::link_hash;

    /// A two-worker run of `n` events each on one slot, and its end.
    fn log(n: u32) -> Vec<u8> {
        let run = 5;
        let mut out = Vec::new();
        let info = RunInfo {
            run,
            strategy: "atomic".into(),
            workers: 2,
            slots: 1,
            ops: n as u64,
            initial: 0,
            seed: 1,
            persist: "events".into(),
        };
        frame::encode(0, &Record::Run(info), &mut out);
        for v in 0..2 * n {
            let e = Event {
                run,
                worker: v % 2,
                seq: (v / 2) as u64,
                slot: 0,
                read: v,
                written: v + 1,
                retries: 0,
                invoke_ns: 1000 + 10 * v as u64,
                complete_ns: 1005 + 10 * v as u64,
                hash: link_hash(run, 0, v, v + 1),
            };
            frame::encode(e.seq, &Record::Event(e), &mut out);
        }
        let finals = vec![2 * n];
        let end = RunEnd {
            run,
            fingerprint: fingerprint(&finals),
            finals,
            completed: vec![n as u64; 2],
            killed: vec![],
        };
        frame::encode(0, &Record::End(end), &mut out);
        out
    }

    fn load_via_file(test: &str, bytes: &[u8], chunk: usize) -> Loaded {
        let path = std::env::temp_dir().join(format!(
            "racepool-verify-unit-{}-{test}-{chunk}",
            std::process::id(),
        ));
        std::fs::write(&path, bytes).unwrap();
        let loaded = load_log_in_chunks(&path, chunk);
        std::fs::remove_file(&path).unwrap();
        loaded.unwrap()
    }

    #[test]
    fn streaming_in_small_chunks_reads_what_one_slice_reads() {
        let bytes = log(50);
        let whole = parse_log(&bytes);
        assert!(verify(&whole).verified);
        // Chunks smaller than a record, than a header, and not dividing the file.
        for chunk in [7, 20, 33, 64, 4096] {
            let l = load_via_file("whole", &bytes, chunk);
            assert_eq!(l.records, whole.records, "chunk {chunk}");
            assert_eq!(l.runs[0].events, whole.runs[0].events, "chunk {chunk}");
            assert_eq!(l.tail, Tail::Clean, "chunk {chunk}");
            assert!(verify(&l).verified, "chunk {chunk}");
        }
    }

    #[test]
    fn streamed_offsets_are_file_offsets() {
        let bytes = log(50);
        let mut starts = Vec::new();
        frame::scan(&bytes, |f| {
            starts.push(f.offset);
            Ok(())
        })
        .unwrap();
        let last = *starts.last().unwrap();
        let mid = starts[starts.len() / 2];
        let mut flipped = bytes.clone();
        flipped[mid as usize + frame::HEADER] ^= 1;
        for chunk in [7, 64, 1000] {
            let torn = load_via_file("torn", &bytes[..bytes.len() - 3], chunk);
            assert_eq!(
                torn.tail,
                Tail::Torn {
                    offset: last,
                    bytes: bytes.len() as u64 - 3 - last
                },
                "chunk {chunk}"
            );
            let bad = load_via_file("flipped", &flipped, chunk);
            // A damaged record mid-run is skipped, and not accepted: nobody was killed.
            assert_eq!(bad.runs[0].damaged[0].offset, mid, "chunk {chunk}");
            let v = verify(&bad);
            assert_eq!(v.corrupt_offset, Some(mid), "chunk {chunk}");
            assert!(!v.verified);
        }
    }

    #[test]
    fn an_event_before_any_run_header_is_corruption() {
        let bytes = log(2);
        let mut first = 0;
        frame::scan(&bytes, |f| {
            if first == 0 && f.offset > 0 {
                first = f.offset as usize;
            }
            Ok(())
        })
        .unwrap();
        let loaded = parse_log(&bytes[first..]);
        let c = loaded.corrupt.expect("an event with no run");
        assert_eq!(c.offset, 0);
        assert!(c.reason.contains("outside any run"), "{}", c.reason);
    }
}
