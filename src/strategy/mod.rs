//! One file per way to update a slot. A strategy makes one update and says what it saw; it
//! knows nothing of processes, histograms or files.

mod atomic;
mod cas;
mod futex_lock;
mod pthread;
mod racy;
mod spin_lock;

pub use atomic::Atomic;
pub use cas::Cas;
pub use futex_lock::{FutexLock, LockWord};
pub use pthread::Pthread;
pub use racy::Racy;
pub use spin_lock::SpinLock;

use crate::probe::Probe;
use crate::region::Slot;

/// What one update saw and did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// The value the update read (for `atomic`, the value `fetch_add` returned).
    pub read: u32,
    /// The value it wrote: the vote counter's `votes_after`.
    pub written: u32,
    /// Failed attempts before it won (CAS failures, failed lock attempts).
    pub retries: u32,
    /// Futex waits it made.
    pub waits: u32,
    /// Futex wakes it sent.
    pub wakes: u32,
}

/// One way to add 1 to a slot.
pub trait Strategy: Sync {
    fn apply(&self, slot: Slot<'_>, probe: &Probe<'_>) -> Applied;
}

/// The strategies by name, as the CLI and the reports spell them.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum StrategyKind {
    /// load, then store load+1: the read-modify-write bug.
    Racy,
    /// fetch_add: `UPDATE … SET v = v + 1 RETURNING v`.
    Atomic,
    /// compare-exchange retry loop: optimistic `WHERE version = $seen`.
    Cas,
    /// CAS lock word that sleeps on a futex when contended: `SELECT … FOR UPDATE`.
    FutexLock,
    /// The same lock word, spinning (with bounded backoff) instead of sleeping.
    SpinLock,
    /// glibc process-shared `pthread_mutex_t`.
    Pthread,
    /// SQL: `SELECT … FOR UPDATE`, then the update, in one transaction. Redis: a lock key
    /// taken with `SET key token NX PX ttl`, released by compare-and-delete (`--fencing` adds
    /// fencing tokens).
    Lock,
    /// SQL: an advisory lock around the read-modify-write (PostgreSQL `pg_advisory_xact_lock`,
    /// MariaDB `GET_LOCK`).
    Advisory,
    /// Redis: one Lua script that reads and writes (`EVALSHA`).
    Script,
    /// Files: `flock(LOCK_EX)` around the read-modify-write.
    Flock,
    /// Files: an open-file-description lock (`F_OFD_SETLKW`) around the read-modify-write.
    Fcntl,
    /// Files: write the next version to a temporary file and `link(2)` it to a versioned name,
    /// which fails with EEXIST if another worker made that version first: compare-and-set.
    LinkCas,
    /// Files: each update appends one record with `O_APPEND`; the value is the record count.
    Append,
}

impl StrategyKind {
    /// The memory target's strategies, in the order a run without `--strategy` runs them.
    pub const ALL: [StrategyKind; 6] = [
        StrategyKind::Racy,
        StrategyKind::Atomic,
        StrategyKind::Cas,
        StrategyKind::FutexLock,
        StrategyKind::SpinLock,
        StrategyKind::Pthread,
    ];

    pub fn name(self) -> &'static str {
        match self {
            StrategyKind::Racy => "racy",
            StrategyKind::Atomic => "atomic",
            StrategyKind::Cas => "cas",
            StrategyKind::FutexLock => "futex-lock",
            StrategyKind::SpinLock => "spin-lock",
            StrategyKind::Pthread => "pthread",
            StrategyKind::Lock => "lock",
            StrategyKind::Advisory => "advisory",
            StrategyKind::Script => "script",
            StrategyKind::Flock => "flock",
            StrategyKind::Fcntl => "fcntl",
            StrategyKind::LinkCas => "link-cas",
            StrategyKind::Append => "append",
        }
    }

    /// Whether the strategy promises that no update is lost.
    pub fn is_exact(self) -> bool {
        self != StrategyKind::Racy
    }

    /// Whether the strategy has a step between its read and its write where `--hold-after-read`
    /// can hold it (fetch_add has none; pthread and spin-lock waiters cannot announce themselves).
    pub fn can_hold_after_read(self) -> bool {
        matches!(
            self,
            StrategyKind::Racy | StrategyKind::Cas | StrategyKind::FutexLock
        )
    }
}
