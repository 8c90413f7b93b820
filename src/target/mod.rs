//! WHERE the shared state lives: the memfd region (`memory`, the default), one row per slot
//! (`postgres://…`, `mysql://…`), one key per slot (`redis://…`) or one file per slot
//! (`dir:PATH`).
//!
//! This module is the contract every target keeps. The memory target is the region itself: its
//! strategies are monomorphized into the worker loop (`worker`), so it does not go through
//! [`Session`]. Every other target does, one call per update; a network round trip costs
//! thousands of times what a `match` on the strategy does.
//!
//! A run's life on a target, and who does what:
//!
//! 1. **Parent, before any fork.** [`TargetSpec::open`] (the registry: one line per target)
//!    checks the URL or path and hands the [`Target`] to its caller. [`Target::preflight`] refuses what cannot work, naming the flag: a server that
//!    does not answer, `--workers` above the connections it can still accept, a path that is not
//!    a writable directory. [`Target::create`] makes this run's slots at `initial`, keyed by the
//!    run id so runs never collide.
//! 2. **Each worker, after the fork.** [`Target::connect`] opens the worker's own connection,
//!    file handles or client. Every parent-side call opens and closes its own connection, so no
//!    socket, client, pool or async runtime exists in the parent when it forks, and none is
//!    ever used on both sides of a fork.
//! 3. **Parent, after every worker is reaped.** [`Target::settle`] puts in order what the
//!    workers left (a dead worker's temporary file, versions to fold, `--fsync end`), whatever
//!    else the run went through; then [`Target::finals`] reads every slot's final value, and
//!    the check compares it with what the workers acknowledged (bounded by updates in flight at
//!    a death or a lost connection).
//! 4. What the run created stays as its record (rows, keys, files), for `torture verify` and for
//!    the user to inspect; [`Target::clean`] (`torture clean TARGET [--run ID]`) removes it.
//!    Nothing else is ever left: no lock, session, temporary table or stray file.
//!
//! Workloads: the plain counter runs on every target. A scenario runs on a target when its
//! slots are something the target can hold ([`Holds`], named by the scenario) and the target
//! implements the strategy each of its variants uses ([`Target::strategies_for`]): record's
//! fields on `dir`. Its workers then make every update through the same [`Session::update`]
//! (add 1 to one slot, which for record is the worker's field, made the variant's way). A
//! scenario whose updates are not "add 1 to a slot" (cache, ledger) needs its own session
//! trait beside [`Session`] and a `connect` for it; it keeps the rest of this contract.

pub mod dir;
pub mod mysql;
pub mod postgres;
pub mod redis;
pub mod sql;

/// The cache scenario's variants a server runs (`--fix`), in the target's own terms.
pub use redis::cache::CacheFix;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::Serialize;

use crate::error::Error;
use crate::history::Loaded;
use crate::history::{RunEnd, RunInfo};
use crate::store::Fsync;
use crate::strategy::{Applied, StrategyKind};

/// What runs with the target a run names (Rust has no generic closures: this is one).
pub trait WithTarget {
    type Out;
    /// The memory target: the region itself, not a `Target`.
    fn memory(self) -> Self::Out;
    fn with<T: Target + 'static>(self, target: T) -> Self::Out;
}

impl TargetSpec {
    /// The registry: the one place a `--target` becomes its type. Opening checks the spec
    /// only; it connects to nothing (that is `Target::preflight`'s and `Target::connect`'s).
    pub fn open<U: WithTarget>(&self, user: U) -> Result<U::Out, Error> {
        self.open_with(&TargetOptions::default(), user)
    }

    /// [`TargetSpec::open`] with what the run asks of the target beyond its URL (the
    /// isolation level of a SQL target's sessions, a Redis lock's TTL and fencing).
    pub fn open_with<U: WithTarget>(
        &self,
        options: &TargetOptions,
        user: U,
    ) -> Result<U::Out, Error> {
        match self {
            TargetSpec::Memory => Ok(user.memory()),
            TargetSpec::Dir(path) => Ok(user.with(dir::Dir::new(path.clone()))),
            TargetSpec::Postgres(url) => {
                Ok(user.with(postgres::Postgres::new(url, options.isolation)))
            }
            TargetSpec::Mysql(url) => Ok(user.with(mysql::Mysql::new(url, options.isolation))),
            TargetSpec::Redis(url) => Ok(user.with(redis::RedisTarget::open(url, options.redis)?)),
        }
    }

    /// Whether the target keeps a record of its own (`--store target`, `torture verify URL`).
    pub fn keeps_record(&self) -> bool {
        struct Keeps;
        impl WithTarget for Keeps {
            type Out = bool;
            fn memory(self) -> bool {
                false
            }
            fn with<T: Target + 'static>(self, target: T) -> bool {
                target.records().is_some()
            }
        }
        self.open(Keeps).unwrap_or(false)
    }

    /// Whether the target is a SQL database (the one kind with isolation levels).
    pub fn is_sql(&self) -> bool {
        matches!(self, TargetSpec::Postgres(_) | TargetSpec::Mysql(_))
    }

    /// The strategies the target implements, the bug first (memory: `StrategyKind::ALL`).
    pub fn strategies(&self) -> Result<&'static [StrategyKind], Error> {
        self.strategies_for(Holds::Counters)
    }

    /// The strategies the target implements for slots that hold `holds`, the bug first
    /// (memory: `StrategyKind::ALL` for anything; none: it cannot hold them).
    pub fn strategies_for(&self, holds: Holds) -> Result<&'static [StrategyKind], Error> {
        struct Strategies(Holds);
        impl WithTarget for Strategies {
            type Out = &'static [StrategyKind];
            fn memory(self) -> Self::Out {
                &StrategyKind::ALL
            }
            fn with<T: Target + 'static>(self, target: T) -> Self::Out {
                target.strategies_for(self.0)
            }
        }
        self.open(Strategies(holds))
    }
}

/// What a run asks of its target beyond the URL; each target takes what applies to it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TargetOptions {
    /// `--isolation`: the level of a SQL target's transactions.
    pub isolation: sql::Isolation,
    /// `--lock-ttl`, `--fencing`: Redis `lock`.
    pub redis: redis::RedisOptions,
}

/// What a run's slots hold, so that a target lays them out for it: independent counters, or
/// the fields of one record (which a target may keep together: one file, one hash).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Holds {
    /// The plain counter's slots: each update adds 1 to one of them.
    #[default]
    Counters,
    /// `--scenario record`: the slots are the fields of one record; each update adds 1 to the
    /// worker's own field, by the variant's way of rewriting the record.
    Record,
    /// `--scenario votes`: the slots are a poll's options; each update is a ballot (its text
    /// as the voter sent it) that the target accepts or refuses ([`Session::vote`]).
    Poll,
    /// `--scenario cache`: slot 0 is a cached value, the others its related entries, written
    /// and read together ([`CacheOps`], from [`Target::connect_cache`]).
    Cache,
}

/// Which system a target is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TargetKind {
    Memory,
    Postgres,
    Mysql,
    Redis,
    Dir,
}

impl TargetKind {
    pub fn name(self) -> &'static str {
        match self {
            TargetKind::Memory => "memory",
            TargetKind::Postgres => "postgres",
            TargetKind::Mysql => "mysql",
            TargetKind::Redis => "redis",
            TargetKind::Dir => "dir",
        }
    }
}

/// `--target`: where the slots live, as the user typed it (minus nothing: a URL keeps its
/// query, a path stays as given).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "at", rename_all = "kebab-case")]
pub enum TargetSpec {
    /// The shared region (the default).
    Memory,
    /// `postgres://USER@HOST:PORT/DB` (or `postgresql://`).
    Postgres(String),
    /// `mysql://USER@HOST:PORT/DB` (MariaDB or MySQL; `mariadb://` is accepted too).
    Mysql(String),
    /// `redis://HOST:PORT[/DB]`.
    Redis(String),
    /// `dir:PATH`: a directory on a real file system.
    Dir(PathBuf),
}

impl TargetSpec {
    pub fn kind(&self) -> TargetKind {
        match self {
            TargetSpec::Memory => TargetKind::Memory,
            TargetSpec::Postgres(_) => TargetKind::Postgres,
            TargetSpec::Mysql(_) => TargetKind::Mysql,
            TargetSpec::Redis(_) => TargetKind::Redis,
            TargetSpec::Dir(_) => TargetKind::Dir,
        }
    }
}

impl FromStr for TargetSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<TargetSpec, String> {
        let scheme = s.split_once("://").map(|(scheme, _)| scheme);
        match (s, scheme) {
            ("memory", _) => Ok(TargetSpec::Memory),
            (_, Some("postgres" | "postgresql")) => Ok(TargetSpec::Postgres(s.into())),
            (_, Some("mysql" | "mariadb")) => Ok(TargetSpec::Mysql(s.into())),
            (_, Some("redis")) => Ok(TargetSpec::Redis(s.into())),
            _ => match s.strip_prefix("dir:") {
                Some(p) if !p.is_empty() => Ok(TargetSpec::Dir(p.into())),
                _ => Err(format!(
                    "'{s}': expected memory, postgres://…, mysql://…, redis://… or dir:PATH"
                )),
            },
        }
    }
}

impl fmt::Display for TargetSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetSpec::Memory => f.write_str("memory"),
            TargetSpec::Postgres(u) | TargetSpec::Mysql(u) | TargetSpec::Redis(u) => f.write_str(u),
            TargetSpec::Dir(p) => write!(f, "dir:{}", p.display()),
        }
    }
}

/// What a run asks of a target: enough to create its slots and to judge whether it fits.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RunShape {
    /// Unique per run; every row, key and file of the run carries it.
    pub run: u64,
    pub slots: usize,
    pub workers: usize,
    pub initial: u32,
    /// `--race-window`: spin iterations a `racy` session waits between its read and its
    /// write, to widen the race on purpose (0: none).
    pub race_window: u32,
    /// `--fsync`: when an update is made durable: before it is acknowledged (`every`), once by
    /// the parent after the reap (`end`, in [`Target::settle`]), or when the system likes.
    pub fsync: Fsync,
    /// What the slots hold (the counter's, or a scenario's).
    pub holds: Holds,
    /// This host's share of a joined run (`--join`); a run on one host: worker 0, its own
    /// clock.
    pub share: Share,
}

/// A host's place in a joined run, for the events its workers write (`--store target`): the
/// run's worker ids are unique across hosts, and every host's event times are on the run's
/// one clock, so `torture verify` checks the joined record like any other. Kept by the SQL
/// targets (the ones a joined run takes a record on).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Share {
    /// This host's worker `w` is the run's worker `first_worker + w` (host index × workers,
    /// decided at registration).
    pub first_worker: usize,
    /// Added to CLOCK_MONOTONIC ns for an event's times: this host's clock to the database's
    /// (ns since the epoch), measured at registration. 0: the host's own monotonic clock.
    pub clock_shift_ns: i64,
}

impl Share {
    /// `mono` (CLOCK_MONOTONIC ns) on the run's clock.
    pub fn on_run_clock(self, mono: u64) -> u64 {
        (mono as i64).wrapping_add(self.clock_shift_ns) as u64
    }
}

/// Why one update failed. The worker loop treats each kind once, the same for every target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UpdateError {
    /// The outcome is unknown: the connection broke or the server went away mid-update, so the
    /// update may or may not have been applied. The worker stops and reports it in flight;
    /// the parent's accounting is then bounded (acknowledged ≤ final ≤ acknowledged + in
    /// flight), exactly as for a worker that died.
    Unknown(String),
    /// The target refused it before anything changed, for a reason the workload counts (an
    /// invalid vote option rejected by a foreign key). The worker goes on.
    Rejected(&'static str),
    /// The target cannot go on in a way that makes the run meaningless (disk full, permission
    /// denied, table dropped): the run ends with this error, never with a verdict.
    Fatal(String),
}

impl fmt::Display for UpdateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpdateError::Unknown(m) => write!(f, "outcome unknown: {m}"),
            UpdateError::Rejected(r) => write!(f, "rejected: {r}"),
            UpdateError::Fatal(m) => f.write_str(m),
        }
    }
}

/// The event a session writes beside its update, in the same transaction, when the run stores
/// its events in the target itself (`--store target`). The session fills in what it read and
/// wrote and when it won; `worker` and `seq` are the worker loop's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventDraft {
    pub worker: u32,
    /// The worker's sequence number of this event, from 0.
    pub seq: u64,
    /// CLOCK_MONOTONIC ns before the update started.
    pub invoke_ns: u64,
}

/// A target, parent side. Cheap to clone into every worker: it holds a URL or a path, never a
/// connection.
pub trait Target: Send + Sync {
    /// A worker's own connection, opened after the fork.
    type Session: Session;

    fn kind(&self) -> TargetKind;

    /// The strategies this target implements, in the order a run without `--strategy` runs
    /// them (the bug first).
    fn strategies(&self) -> &'static [StrategyKind];

    /// The strategies it implements for slots that hold `holds`, the bug first: its counter
    /// strategies for counters, and none for anything else unless it says so.
    fn strategies_for(&self, holds: Holds) -> &'static [StrategyKind] {
        match holds {
            Holds::Counters => self.strategies(),
            Holds::Record | Holds::Poll | Holds::Cache => &[],
        }
    }

    /// Refuses, before anything is forked, what cannot work: `Error::Usage` naming the flag
    /// (`--workers 200 is more than postgres://… can still accept (max_connections 100, 7 in
    /// use)`), or `Error::Target` when the target does not answer.
    fn preflight(&self, shape: &RunShape, strategies: &[StrategyKind]) -> Result<(), Error>;

    /// Creates the run's slots at `shape.initial` (and its event table, stream or file when the
    /// run stores events in the target). Opens and closes its own connection.
    fn create(&self, shape: &RunShape) -> Result<(), Error>;

    /// Opens worker `worker`'s own session for `strategy`. Called in the worker, after the fork.
    fn connect(
        &self,
        shape: &RunShape,
        worker: usize,
        strategy: StrategyKind,
    ) -> Result<Self::Session, UpdateError>;

    /// After every worker is reaped, whatever the run went through (a worker's failure, an
    /// interrupt), before `finals`: removes what the workers left behind that is not the run's
    /// record (a dead worker's temporary file), and makes the run durable under `--fsync end`.
    /// An error is `Error::TargetFailed`. Nothing to do by default.
    fn settle(&self, _shape: &RunShape) -> Result<(), Error> {
        Ok(())
    }

    /// Every slot's final value, by slot index. After every worker is reaped; its own connection.
    fn finals(&self, shape: &RunShape) -> Result<Vec<u32>, Error>;

    /// Removes one run's state, or every run's (`run` None). Returns how many runs it removed.
    fn clean(&self, run: Option<u64>) -> Result<u64, Error>;

    /// `--store target`: the record this target keeps beside its state (a [`RecordStore`]),
    /// if it keeps one.
    fn records(&self) -> Option<&dyn Records> {
        None
    }

    /// `--scenario cache`: worker `worker`'s cache session for `fix`, after the fork (a target
    /// whose `strategies_for(Holds::Cache)` names the fix's mechanism).
    fn connect_cache(
        &self,
        shape: &RunShape,
        worker: usize,
        fix: CacheFix,
    ) -> Result<Box<dyn CacheOps>, UpdateError> {
        let _ = (shape, worker);
        Err(UpdateError::Fatal(format!(
            "{} does not run --scenario cache --fix {}",
            self.kind().name(),
            fix.name()
        )))
    }
}

/// A cache worker's connection (`--scenario cache` on a target): a writer writes a new version
/// into the value and every related entry, a reader reads them and says what it saw, each the
/// fix's way.
pub trait CacheOps {
    /// Writes the next version everywhere; an update of slot 0 from version - 1 to version.
    /// With `event`, its event is written in the same atomic step (`--store target`).
    fn write(&mut self, event: Option<EventDraft>) -> Result<Applied, UpdateError>;
    /// Reads the value and the related entries: what it saw, and how often it started over.
    fn read(&mut self) -> Result<(crate::history::Seen, u32), UpdateError>;
    /// `--store target`: records a reader's batch of reads.
    fn record_reads(&mut self, reads: &crate::history::Reads) -> Result<(), UpdateError>;
}

/// `--store target`: a target that keeps the run's record beside its state, so that `torture
/// verify TARGET` proves from the target alone what it proves from a log. Parent side, each
/// call on its own connection.
pub trait RecordStore: Target {
    /// Writes the run's header. After `create`, before any fork.
    fn begin_record(&self, info: &RunInfo) -> Result<(), Error>;
    /// Writes the run's end (final values, fingerprint, acknowledged counts, deaths). After
    /// every worker is reaped.
    fn end_record(&self, end: &RunEnd) -> Result<(), Error>;
    /// Every recorded run (or only `run`), in the form `verify` checks.
    fn load(&self, run: Option<u64>) -> Result<Loaded, Error>;
}

/// [`RecordStore`] as the run pipeline and `torture verify` reach it, whatever the target's
/// type: [`Target::records`] hands it out.
pub trait Records {
    /// [`RecordStore::begin_record`].
    fn begin_record(&self, info: &RunInfo) -> Result<(), Error>;
    /// [`RecordStore::end_record`].
    fn end_record(&self, end: &RunEnd) -> Result<(), Error>;
    /// [`RecordStore::load`].
    fn load_record(&self, run: Option<u64>) -> Result<Loaded, Error>;
}

impl<T: RecordStore> Records for T {
    fn begin_record(&self, info: &RunInfo) -> Result<(), Error> {
        RecordStore::begin_record(self, info)
    }
    fn end_record(&self, end: &RunEnd) -> Result<(), Error> {
        RecordStore::end_record(self, end)
    }
    fn load_record(&self, run: Option<u64>) -> Result<Loaded, Error> {
        RecordStore::load(self, run)
    }
}

/// A worker's connection to a target: one update per call.
pub trait Session {
    /// Adds 1 to `slot` the way the session's strategy does, and says what it saw. With
    /// `event`, also writes the event in the same transaction (or the same atomic step) as the
    /// update.
    fn update(&mut self, slot: u32, event: Option<EventDraft>) -> Result<Applied, UpdateError>;

    /// `--scenario votes` (a session of a target whose slots hold a poll): one ballot, the
    /// option id as the voter typed it. The target decides: a ballot naming no option is
    /// `UpdateError::Rejected` with the reason the votes workload counts (`non-numeric`,
    /// `trailing-garbage`, `out-of-range`); an accepted one adds 1 to its option with the
    /// session's strategy (`Applied::written` is the vote's `votes_after`) and, with
    /// `--store target`, writes the vote's event in the same transaction.
    fn vote(&mut self, ballot: &str) -> Result<Applied, UpdateError> {
        let _ = ballot;
        Err(UpdateError::Fatal("this target takes no ballots".into()))
    }

    /// Releases that found the session's lock gone or someone else's so far: the holder
    /// outlived its lock (Redis `lock` past its TTL). 0 for a session without such locks.
    fn robbed(&self) -> u64 {
        0
    }

    /// `update`, calling `at` at each named point of the update it reaches (`--pause` stops a
    /// lock holder at `Point::HoldingLock`). A session without such points ignores `at`.
    fn update_at(
        &mut self,
        slot: u32,
        event: Option<EventDraft>,
        at: &mut dyn FnMut(crate::fault::Point),
    ) -> Result<Applied, UpdateError> {
        let _ = at;
        self.update(slot, event)
    }

    /// `update`, calling `won` with what it applied once the update is decided: a lock
    /// strategy calls it before it unlocks (so a store sees a lock's updates in the order they
    /// were made, as memory's lock strategies persist them), the others right after their
    /// winning step. The default calls it after `update` returns, which is right for every
    /// strategy that holds no lock across its update.
    fn update_then<F: FnOnce(&Applied)>(
        &mut self,
        slot: u32,
        event: Option<EventDraft>,
        won: F,
    ) -> Result<Applied, UpdateError> {
        let applied = self.update(slot, event)?;
        won(&applied);
        Ok(applied)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_by_scheme_and_say_what_they_expect() {
        assert_eq!("memory".parse(), Ok(TargetSpec::Memory));
        assert_eq!(
            "postgres://postgres@127.0.0.1:5432/test"
                .parse::<TargetSpec>()
                .map(|t| t.kind()),
            Ok(TargetKind::Postgres)
        );
        assert_eq!(
            "mariadb://root@127.0.0.1/test"
                .parse::<TargetSpec>()
                .map(|t| t.kind()),
            Ok(TargetKind::Mysql)
        );
        assert_eq!(
            "redis://127.0.0.1:6379/0"
                .parse::<TargetSpec>()
                .map(|t| t.kind()),
            Ok(TargetKind::Redis)
        );
        assert_eq!("dir:/tmp/x".parse(), Ok(TargetSpec::Dir("/tmp/x".into())));
        let e = "sqlite://x".parse::<TargetSpec>().unwrap_err();
        assert!(e.contains("expected memory"), "{e}");
        assert!("dir:".parse::<TargetSpec>().is_err());
    }
}
