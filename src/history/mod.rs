//! The history of a run as durable records: what each winning update saw and wrote.
//!
//! - [`event`]: the records (a run's header, one event per winning update, the run's end) and
//!   the FNV-1a hash chain over each slot's states.
//! - [`frame`]: how a record is laid out on disk (magic, length, sequence, header checksum,
//!   payload, CRC32C over all of it) and the reader that tells a torn tail from corruption.
//! - [`jsonl`]: the history as Jepsen-style JSON Lines for external checkers.

pub mod event;
pub mod frame;
pub mod jsonl;

pub use event::{Event, Killed, Reads, Record, RunEnd, RunInfo, Seen, Transfer};
