//! One file per way to update a slot. A strategy makes one update and says what it saw; it
//! knows nothing of processes, histograms or files. [`dispatch`] is the one place a strategy's
//! name becomes its type, for every workload that updates slots with one.

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

use crate::fault::recover::LockKind;
use crate::fault::Point;
use crate::futex::{Private, Shared};
use crate::probe::Hooks;
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

/// One way to add 1 to a slot. Generic over its hooks, so an unarmed run's hooks vanish.
pub trait Strategy: Sync {
    fn apply<H: Hooks>(&self, slot: Slot<'_>, hooks: &H) -> Applied;
}

/// Processes sharing a memfd mapping, or threads sharing one address space: where a futex
/// wake must reach.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    Processes,
    Threads,
}

/// What runs with the strategy a run chose (Rust has no generic closures: this is one).
pub trait WithStrategy {
    type Out;
    fn with<S: Strategy>(self, strategy: &S) -> Self::Out;
}

/// Calls `user` with the memory strategy `kind` names, its futexes scoped for `mode` and
/// racy's window widened by `race_window` spins.
///
/// # Panics
/// If `kind` is not a memory strategy (`StrategyKind::ALL`): validated before any worker runs.
pub fn dispatch<U: WithStrategy>(
    kind: StrategyKind,
    mode: Mode,
    race_window: u32,
    user: U,
) -> U::Out {
    match (kind, mode) {
        (StrategyKind::Racy, _) => user.with(&Racy {
            window: race_window,
        }),
        (StrategyKind::Atomic, _) => user.with(&Atomic),
        (StrategyKind::Cas, _) => user.with(&Cas),
        (StrategyKind::FutexLock, Mode::Processes) => user.with(&FutexLock::<Shared>::new()),
        (StrategyKind::FutexLock, Mode::Threads) => user.with(&FutexLock::<Private>::new()),
        (StrategyKind::SpinLock, _) => user.with(&SpinLock),
        (StrategyKind::Pthread, _) => user.with(&Pthread),
        (other, _) => unreachable!("validated: {} is not a memory strategy", other.name()),
    }
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

    /// Whether the strategy passes `point` in every update (where `--crash-at` can strike).
    pub fn reaches(self, point: Point) -> bool {
        use StrategyKind::*;
        match point {
            Point::AfterRead => matches!(self, Racy | Cas | FutexLock | SpinLock | Pthread),
            Point::AfterCas => matches!(self, Cas | Atomic),
            Point::HoldingLock => matches!(self, FutexLock | SpinLock | Pthread),
            Point::AfterWrite => matches!(self, Racy | FutexLock | SpinLock | Pthread),
            Point::BeforeWake => matches!(self, FutexLock),
        }
    }

    /// What a worker that dies mid-update leaves held, for the parent to recover.
    pub fn lock_kind(self) -> LockKind {
        match self {
            StrategyKind::FutexLock | StrategyKind::SpinLock => LockKind::Word,
            StrategyKind::Pthread => LockKind::Robust,
            _ => LockKind::Free,
        }
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
