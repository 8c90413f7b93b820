//! The history of a run as durable records: what each winning update saw and wrote.
//!
//! - [`event`]: the records (a run's header, one event per winning update, the run's end, the
//!   invocation's closing record) and the FNV-1a hash chain over each slot's states.
//! - [`frame`]: how a record is laid out on disk (magic, length, sequence, header checksum,
//!   payload, CRC32C over all of it) and the reader that tells a torn tail from damage.
//! - [`log`]: the event log read back into runs.
//! - [`loaded`]: a store read back, whatever its format: what every loader produces and what
//!   `verify` checks.
//! - [`export`]: each counter run's history per slot in Jepsen's EDN or elle-cli's JSON form,
//!   for external checkers.

pub mod event;
pub mod export;
pub mod frame;
pub mod loaded;
pub mod log;

pub use event::{Close, Event, Killed, Reads, Record, RunEnd, RunInfo, Seen, Transfer};
pub use loaded::{Loaded, RunHistory};
