//! The records a run leaves behind and the hash chain that links each slot's states.
//!
//! A run writes one [`RunInfo`] before any worker starts, one [`Event`] per winning update (by
//! the worker that won it) and one [`RunEnd`] after every worker has been reaped, carrying the
//! region's final values and their fingerprint. `torture verify` needs nothing else.
//!
//! Two scenarios are not counters and add their own records: a ledger run writes one
//! [`Transfer`] per transfer that moved money, a cache run one [`Event`] per write (the value's
//! new version) and [`Reads`], batches of what its readers saw.
//!
//! After its last run, the invocation writes one [`Close`]: how many runs it wrote. A store
//! without it was not finished (a crash, a cut), and a run cut off whole shows only there.

use std::hash::Hasher;

use serde::{Deserialize, Serialize};

/// One durable record. Encoded with postcard (varints: an event is ~45 bytes, not 56).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Record {
    Run(RunInfo),
    Event(Event),
    End(RunEnd),
    // New kinds go last: postcard encodes the variant index, and older logs keep decoding.
    Transfer(Transfer),
    Reads(Reads),
    Close(Close),
}

/// The invocation's last record: it wrote `runs` runs (each a header and an end) before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Close {
    pub runs: u64,
}

/// One ledger transfer that moved money, written by the worker that made it. Each account's
/// states form a chain by version (the account's version word, bumped by every transfer that
/// touches it): a balance is not monotonic, so unlike a counter's value it cannot name a state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    /// The writer: carried by the frame, not the payload.
    #[serde(skip)]
    pub worker: u32,
    /// Per-worker sequence, from 0: carried by the frame.
    #[serde(skip)]
    pub seq: u64,
    pub from: u32,
    pub to: u32,
    pub amount: u32,
    /// The state of `from` the transfer read: its version and balance (it wrote version + 1,
    /// balance - amount).
    pub from_version: u32,
    pub from_before: u32,
    /// The state of `to` it read (it wrote version + 1, balance + amount).
    pub to_version: u32,
    pub to_before: u32,
    pub invoke_ns: u64,
    pub complete_ns: u64,
}

impl Transfer {
    /// The two account states it read and wrote: (account, version read, balance read,
    /// balance written).
    pub fn legs(&self) -> [(u32, u32, u32, u32); 2] {
        [
            (
                self.from,
                self.from_version,
                self.from_before,
                self.from_before.wrapping_sub(self.amount),
            ),
            (
                self.to,
                self.to_version,
                self.to_before,
                self.to_before.wrapping_add(self.amount),
            ),
        ]
    }
}

/// What one cache read saw: the value's version and the lowest and highest version among its
/// related entries. The read is whole when all three are equal.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen {
    pub value: u32,
    pub lo: u32,
    pub hi: u32,
}

impl Seen {
    pub fn torn(&self) -> bool {
        self.lo != self.value || self.hi != self.value
    }
}

/// A batch of one reader's reads, in the order it made them: a frame per read would cost five
/// times the read itself.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reads {
    #[serde(skip)]
    pub worker: u32,
    /// The reader's index of `seen[0]` among all its reads: batches must follow each other.
    pub first: u64,
    pub seen: Vec<Seen>,
}

/// What a run was asked to do: enough for a reader to check it without the command line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunInfo {
    /// Unique per run (CLOCK_MONOTONIC ns at its start, mixed with the pid).
    pub run: u64,
    pub strategy: String,
    pub workers: u32,
    pub slots: u32,
    pub ops: u64,
    /// Every slot's starting value: the first event of a slot writes `initial + 1`.
    pub initial: u32,
    pub seed: u64,
    /// How the store persisted slot values ("events" for the log, "blind"/"monotonic").
    pub persist: String,
}

/// One winning update, written by the worker that won it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub run: u64,
    pub worker: u32,
    /// Per-worker sequence, from 0: carried by the frame, not the payload (see `frame`).
    #[serde(skip)]
    pub seq: u64,
    pub slot: u32,
    /// The value the update read.
    pub read: u32,
    /// The value it wrote: the vote counter's `votes_after`.
    pub written: u32,
    pub retries: u32,
    /// CLOCK_MONOTONIC ns before the update started (a joined run's: the meeting place's
    /// clock, ns since the epoch, so hosts compare; `target::Share`).
    pub invoke_ns: u64,
    /// CLOCK_MONOTONIC ns right after its winning step (inside the lock for lock strategies;
    /// a joined run's on the meeting place's clock, as `invoke_ns`).
    pub complete_ns: u64,
    /// `link_hash(run, slot, read, written)`: chains the state it read to the one it wrote.
    pub hash: u64,
}

/// What the parent saw once every worker was reaped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunEnd {
    pub run: u64,
    /// FNV-1a over `finals`, as `Region::fingerprint` computed it from the live region.
    pub fingerprint: u64,
    /// The region's final value of every slot.
    pub finals: Vec<u32>,
    /// Updates each worker acknowledged (completed), by worker index.
    pub completed: Vec<u64>,
    /// Workers that died during the run (`--kill`, `--crash-at`), by worker index.
    pub killed: Vec<Killed>,
}

/// A worker that died during the run: the events it had buffered never reached the store, and
/// its last write may have been cut short (a torn record, which verify then accepts as its
/// last record).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Killed {
    pub worker: u32,
    /// It died with an update begun and not acknowledged, which may have been applied.
    pub in_flight: bool,
}

/// The hashed state of `slot` holding `value` in `run`. A closed form, so a winner can chain
/// its event to the state it read without seeing the record of whoever wrote that state.
#[inline]
pub fn state_hash(run: u64, slot: u32, value: u32) -> u64 {
    let mut h = fnv::FnvHasher::default();
    h.write_u64(run);
    h.write_u32(slot);
    h.write_u32(value);
    h.finish()
}

/// The link from the state read to the state written: FNV-1a continued from the read state's
/// hash over the written value. Verify recomputes it per event and follows the links per slot
/// (each value must be written exactly once, by an event that read its predecessor).
#[inline]
pub fn link_hash(run: u64, slot: u32, read: u32, written: u32) -> u64 {
    ChainKey::of(run).link(slot, read, written)
}

/// A run's hash chain with the run id already hashed: FNV-1a is a byte stream, so its state
/// after the run id is a constant per run, and each link then hashes 12 bytes instead of 20.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainKey(u64);

impl ChainKey {
    pub fn of(run: u64) -> ChainKey {
        let mut h = fnv::FnvHasher::default();
        h.write_u64(run);
        ChainKey(h.finish())
    }

    /// `link_hash(run, slot, read, written)` (`FnvHasher::finish` is its state, and
    /// `with_key` resumes from one).
    #[inline]
    pub fn link(self, slot: u32, read: u32, written: u32) -> u64 {
        let mut h = fnv::FnvHasher::with_key(self.0);
        h.write_u32(slot);
        h.write_u32(read);
        h.write_u32(written);
        h.finish()
    }
}

/// FNV-1a over slot values, exactly as `Region::fingerprint` computes it.
pub fn fingerprint(values: &[u32]) -> u64 {
    let mut h = fnv::FnvHasher::default();
    for &v in values {
        h.write_u32(v);
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::region::{Layout, Region};

    #[test]
    fn fingerprint_matches_the_regions() {
        let region = Region::create(5, 1, Layout::Packed, 7).unwrap();
        region
            .slot(3)
            .value
            .store(11, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(fingerprint(&region.values()), region.fingerprint());
        assert_ne!(fingerprint(&[7, 7, 7, 7, 7]), region.fingerprint());
    }

    #[test]
    fn link_depends_on_every_part() {
        let base = link_hash(1, 0, 41, 42);
        assert_ne!(base, link_hash(2, 0, 41, 42));
        assert_ne!(base, link_hash(1, 1, 41, 42));
        assert_ne!(base, link_hash(1, 0, 40, 42));
        assert_ne!(base, link_hash(1, 0, 41, 43));
    }

    #[test]
    fn the_chain_key_resumes_the_same_stream() {
        // link_hash as version 1 computed it: from the read state's hash, then the value.
        let long_way = |run: u64, slot: u32, read: u32, written: u32| {
            let mut h = fnv::FnvHasher::with_key(state_hash(run, slot, read));
            h.write_u32(written);
            h.finish()
        };
        for (run, slot, read, written) in [(1, 0, 41, 42), (u64::MAX, 7, 0, 1), (99, 3, 5, 5)] {
            assert_eq!(
                ChainKey::of(run).link(slot, read, written),
                long_way(run, slot, read, written)
            );
        }
    }
}
