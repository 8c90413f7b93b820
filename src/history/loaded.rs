//! A store read back: what every loader produces and what `verify` checks.
//!
//! One loader per format turns a store into a [`Loaded`]: the event log (`history::log`),
//! SQLite (`store::sqlite`), and the targets' own tables and streams. A loader judges nothing:
//! it reports what it found, where, and what it could not read; the checker decides. The
//! contract every loader keeps:
//!
//! - Every run whose header it found is in [`Loaded::runs`], in the order the store holds
//!   them, even one with nothing else.
//! - [`RunHistory::end`] is `Some` only when every part of the run's end was found: each
//!   worker's acknowledged count, every slot's final value and the fingerprint. Otherwise it is
//!   `None`, and [`RunHistory::missing`] says which parts are absent (an empty list means the
//!   whole end is absent). Such a run is incomplete: verify never calls it verified.
//! - A record that does not check (a checksum, a payload that does not decode) is a [`Damage`],
//!   kept in the run it lies in, or in [`Loaded::damaged`] when it lies in none; its content is
//!   never used.
//! - Records that belong to no run it found (their header is lost) are [`Orphans`], never
//!   dropped and never given to another run.
//! - [`Loaded::closure`] says whether the invocation that wrote the store finished it, and how
//!   many runs it wrote: a run cut off whole leaves no other trace.

use serde::Serialize;

use super::event::{Event, Reads, RunEnd, RunInfo, Transfer};

/// Everything a store held.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub runs: Vec<RunHistory>,
    /// Records whose run header is missing, in store order.
    pub orphans: Vec<Orphans>,
    /// Damaged records outside any run: never accepted.
    pub damaged: Vec<Damage>,
    /// How the readable record ends (a file's torn last record).
    pub tail: Tail,
    /// Where the readable record ends: for a file, the byte after its last intact record.
    pub read_to: Option<u64>,
    /// For a file, its size in bytes.
    pub size: Option<u64>,
    /// Whether the invocation that wrote the store closed it.
    pub closure: Closure,
    /// Intact records (log) or rows (SQL) read.
    pub records: u64,
}

/// One run as read back from a store.
#[derive(Clone, Debug)]
pub struct RunHistory {
    pub info: RunInfo,
    /// The counter's winning updates; a cache run's writes.
    pub events: Vec<Event>,
    /// A ledger run's transfers.
    pub transfers: Vec<Transfer>,
    /// A cache run's reads, in batches.
    pub reads: Vec<Reads>,
    /// The run's end, when all of it was found (see the module's contract).
    pub end: Option<RunEnd>,
    /// What of the end is missing when `end` is `None`; empty means all of it.
    pub missing: Vec<Missing>,
    /// The values the store itself keeps per slot (SQLite's `slots.value`); for the log, the
    /// stored state is what its events add up to.
    pub stored: Option<Vec<u32>>,
    /// Damaged records between its header and its end (accepted only as killed workers' last).
    pub damaged: Vec<Damage>,
    /// Where its records lie: for a file, from its header to the end of its end record, or up
    /// to the first record that is not its.
    pub span: Option<Place>,
}

impl RunHistory {
    /// A run with its header only; loaders fill in the rest.
    pub fn new(info: RunInfo) -> RunHistory {
        RunHistory {
            info,
            events: Vec::new(),
            transfers: Vec::new(),
            reads: Vec::new(),
            end: None,
            missing: Vec::new(),
            stored: None,
            damaged: Vec::new(),
            span: None,
        }
    }
}

/// A part of a run's end that a finished run has and this one lacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "part", rename_all = "kebab-case")]
pub enum Missing {
    /// The whole end record: acknowledged counts, final values and fingerprint.
    End,
    /// The fingerprint of the region's final values (SQLite: `runs.fingerprint` is NULL).
    Fingerprint,
    /// The final values of `slots` of the run's slots (SQLite: `slots` rows, `region_value`).
    FinalValues { slots: u32 },
    /// The acknowledged counts of `workers` of the run's workers (SQLite: `workers` rows).
    Acknowledged { workers: u32 },
}

impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Missing::End => {
                f.write_str("its end record (acknowledged counts, final values, fingerprint)")
            }
            Missing::Fingerprint => f.write_str("the fingerprint of its final values"),
            Missing::FinalValues { slots } => write!(f, "the final values of {slots} slot(s)"),
            Missing::Acknowledged { workers } => {
                write!(f, "the acknowledged counts of {workers} worker(s)")
            }
        }
    }
}

/// Where in a store something lies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Place {
    /// `len` bytes of a file from byte `offset` (the event log).
    Bytes { offset: u64, len: u64 },
    /// A row of a table (SQLite, PostgreSQL, MariaDB), named by its key columns.
    Row {
        table: String,
        key: Vec<(String, i64)>,
    },
    /// An entry of a stream (Redis), named by its key and entry id.
    Entry { stream: String, id: String },
}

impl Place {
    /// A table row keyed by `key`.
    pub fn row(table: &str, key: &[(&str, i64)]) -> Place {
        Place::Row {
            table: table.into(),
            key: key.iter().map(|&(c, v)| (c.into(), v)).collect(),
        }
    }

    /// Where a file's span starts.
    pub fn offset(&self) -> Option<u64> {
        match self {
            Place::Bytes { offset, .. } => Some(*offset),
            _ => None,
        }
    }
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::Bytes { offset, .. } => write!(f, "byte offset {offset}"),
            Place::Row { table, key } => {
                write!(f, "{table} row (")?;
                for (i, (column, value)) in key.iter().enumerate() {
                    let sep = if i == 0 { "" } else { ", " };
                    write!(f, "{sep}{column} {value}")?;
                }
                f.write_str(")")
            }
            Place::Entry { stream, id } => write!(f, "entry {id} of stream {stream}"),
        }
    }
}

/// How a file ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Tail {
    Clean,
    /// The last `bytes` bytes, from `offset`, are an incomplete record.
    Torn {
        offset: u64,
        bytes: u64,
    },
}

/// Why a record cannot be trusted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Defect {
    /// A frame's header does not match its checksum (so its length cannot be trusted).
    HeaderChecksum,
    /// A frame's header checks, the record as a whole does not: torn or flipped.
    RecordChecksum,
    /// The header checks but names no record format this racepool knows.
    BadMagic(u32),
    /// A record of format version 1, which this racepool does not read.
    Version1,
    /// A header whose checksum matches, with an impossible payload length.
    ImplausibleLength(u32),
    /// The checksum matches but the payload does not decode.
    Undecodable(postcard::Error),
    /// A row whose own checksum column does not match its values.
    RowChecksum,
}

impl std::fmt::Display for Defect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Defect::HeaderChecksum => f.write_str("header checksum mismatch"),
            Defect::RecordChecksum => f.write_str("record checksum mismatch"),
            Defect::BadMagic(m) => write!(f, "bad magic {m:#010x}"),
            Defect::Version1 => f.write_str(
                "a format version 1 record (magic RPEV): this racepool reads versions 2 and 3",
            ),
            Defect::ImplausibleLength(n) => write!(f, "payload length {n} is implausible"),
            Defect::Undecodable(e) => {
                write!(f, "checksum matches but the payload does not decode: {e}")
            }
            Defect::RowChecksum => f.write_str("the row fails its checksum"),
        }
    }
}

/// Who wrote a damaged record, as far as it still says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Writer {
    /// Nothing names it (a frame torn inside its header).
    Unknown,
    /// The parent: a run's header or end, or the closing record.
    Parent,
    /// Worker `worker`'s record number `seq` (from 0).
    Worker { worker: u32, seq: u64 },
}

/// A record that did not check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Damage {
    /// Where it lies; for a file, the bytes skipped (up to the next intact record, or the end).
    pub at: Place,
    pub defect: Defect,
    pub writer: Writer,
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.at {
            Place::Bytes { offset, .. } => {
                write!(f, "corrupt record at byte offset {offset}: {}", self.defect)?;
                match self.writer {
                    Writer::Worker { worker, seq } => {
                        write!(f, " (worker {worker}'s record {seq})")
                    }
                    Writer::Parent => f.write_str(" (the parent's record)"),
                    Writer::Unknown => Ok(()),
                }
            }
            at => write!(f, "corrupt {at}: {}", self.defect),
        }
    }
}

/// Records that belong to no run the store holds: their run's header was cut, damaged or
/// deleted. Counted, never checked, never given to another run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Orphans {
    /// Where the first of them lies.
    pub at: Option<Place>,
    /// The run they belong to, when one of them names it (an end record; a row's run column).
    pub run: Option<u64>,
    pub events: u64,
    pub transfers: u64,
    pub reads: u64,
    /// End records (log) or end rows (SQL) among them.
    pub ends: u64,
}

impl Orphans {
    pub fn records(&self) -> u64 {
        self.events + self.transfers + self.reads + self.ends
    }
}

/// Whether the invocation that wrote a store closed it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Closure {
    /// The closing record: the invocation ended having written `runs` runs.
    Closed { runs: u64, at: Place },
    /// The format keeps a closing record and the store has none: the invocation did not finish
    /// writing it (it crashed, or the store was cut), so runs after the last found may be gone.
    Open,
    /// The format predates the closing record (log version 2, older SQLite databases): a run
    /// cut off whole cannot be seen.
    Unrecorded,
}

/// Why a store could not be read at all (exit 2); a store that reads but fails is a verdict.
#[derive(Debug)]
pub enum LoadError {
    /// The file is not a racepool record (empty, text, another format).
    NotARecord { path: String, why: String },
    /// A racepool record of a format version this racepool does not read.
    Version { path: String, why: String },
    /// The file or database could not be read.
    Io { path: String, error: String },
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::NotARecord { path, why } => {
                write!(f, "{path}: not a racepool record ({why})")
            }
            LoadError::Version { path, why } => write!(f, "{path}: {why}"),
            LoadError::Io { path, error } => write!(f, "reading {path}: {error}"),
        }
    }
}

impl std::error::Error for LoadError {}

impl From<LoadError> for crate::error::Error {
    fn from(e: LoadError) -> Self {
        crate::error::Error::Usage(e.to_string())
    }
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
