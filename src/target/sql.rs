//! What the PostgreSQL and MariaDB targets share: the tables, the statements of each strategy,
//! isolation levels, which failures are retried, the run's record and its loader. Each engine
//! supplies a [`Driver`] (its client, its placeholders, its few dialect differences); everything
//! a strategy does is written once, here.
//!
//! ## Tables (created if missing, shared by every run, keyed by run id)
//!
//! | table | one row per | columns |
//! | --- | --- | --- |
//! | `racepool_runs` | run | workload (`counter`, `votes`), isolation, slots, workers, initial; the record's header (strategy, ops, seed, persist) and end (fingerprint) |
//! | `racepool_slots` | counter slot | value, version (every write bumps it), final_value (the end) |
//! | `racepool_events` | winning update | worker, seq, slot, value_read, value_written, retries, invoke_ns, complete_ns, hash, crc |
//! | `racepool_workers` | worker, at the end | completed (acknowledged), killed, in_flight |
//! | `racepool_options` | poll option | label, votes, version, final_value |
//! | `racepool_votes` | accepted vote | ballot (the text sent), option_id, votes_before, votes_after, … as an event |
//!
//! `version - (value - initial)` on a slot is the number of writes that were lost.
//!
//! ## One update, by strategy (`K` is the row: `run = :run AND slot = :slot`)
//!
//! | strategy | statements |
//! | --- | --- |
//! | `racy` | `BEGIN; SELECT value …K; UPDATE … SET value = :read + 1 …K; COMMIT` (the incident) |
//! | `atomic` | `UPDATE … SET value = value + 1 …K RETURNING value` (MariaDB: `value = LAST_INSERT_ID(value + 1)`, the new value comes back in the OK packet); one autocommit statement unless an event is written beside it |
//! | `cas` | `BEGIN; SELECT value, version …K; UPDATE … SET value = :read + 1 …K AND version = :version; COMMIT`, a new transaction while no row changed (a retry) |
//! | `lock` | `BEGIN; SELECT value …K FOR UPDATE; UPDATE …; COMMIT` |
//! | `advisory` | PostgreSQL `BEGIN; SELECT pg_advisory_xact_lock(k); SELECT; UPDATE; COMMIT`; MariaDB `GET_LOCK(k)` before `BEGIN`, `RELEASE_LOCK(k)` after `COMMIT` or `ROLLBACK` (a session lock outlives transactions, so it is released on every path) |
//!
//! Each session runs at the target's [`Isolation`] (set once per connection, so an autocommit
//! statement runs at it too). A serialization failure or deadlock (PostgreSQL 40001 / 40P01,
//! MariaDB 1213 / 1205) rolls the transaction back and runs it again, counted in
//! `Applied::retries`; so is a `cas` that changed no row. With an event, the event row is
//! inserted in the same transaction, after the write: it commits with the update or not at all.
//!
//! A connection lost mid-update is `UpdateError::Unknown` (the `COMMIT` may have arrived).
//!
//! ## Wiring (for the run pipeline)
//!
//! - `--target postgres://…` / `mysql://…`: `Postgres::new(url, level)` / `Mysql::new(url,
//!   level)`, one target per `--isolation` level; then the [`Target`] life as for any target.
//!   `--isolation` parses as [`Isolation`] (`clap::ValueEnum`); it is recorded in the run's row.
//! - `--store target`: [`RecordStore::begin_record`] after `create`, an [`EventDraft`] to every
//!   `Session::update`, [`RecordStore::end_record`] after reaping (workers that returned
//!   `UpdateError::Unknown` go in `RunEnd::killed` with `in_flight`).
//! - `torture verify URL`: [`RecordStore::load`] gives the checker's `Loaded`.
//! - `torture clean URL [--run ID]`: [`Target::clean`].
//! - votes: [`Sql::create_poll`] instead of `create`, [`Sql::connect_voter`] instead of
//!   `connect`, [`Voter::vote`] per ballot; `finals`, the record and `clean` as for a counter.

use std::marker::PhantomData;

use crate::error::Error;
use crate::history::event::ChainKey;
use crate::history::loaded::{Closure, Damage, Defect, Missing, Place, Tail, Writer};
use crate::history::{Event, Killed, RunEnd, RunInfo};
use crate::history::{Loaded, RunHistory};
use crate::strategy::{Applied, StrategyKind};
use crate::target::{
    EventDraft, Holds, RecordStore, RunShape, Session, Target, TargetKind, UpdateError,
};

/// `--isolation`: the level every transaction of a run's sessions runs at.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    serde::Serialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum Isolation {
    /// Both engines' default for racepool (PostgreSQL's own default too).
    #[default]
    ReadCommitted,
    RepeatableRead,
    Serializable,
}

impl Isolation {
    pub const ALL: [Isolation; 3] = [
        Isolation::ReadCommitted,
        Isolation::RepeatableRead,
        Isolation::Serializable,
    ];

    /// As the CLI and reports spell it.
    pub fn name(self) -> &'static str {
        match self {
            Isolation::ReadCommitted => "read-committed",
            Isolation::RepeatableRead => "repeatable-read",
            Isolation::Serializable => "serializable",
        }
    }

    /// As SQL spells it (both engines).
    pub fn sql(self) -> &'static str {
        match self {
            Isolation::ReadCommitted => "READ COMMITTED",
            Isolation::RepeatableRead => "REPEATABLE READ",
            Isolation::Serializable => "SERIALIZABLE",
        }
    }
}

/// The strategies a SQL target implements, the bug first.
pub const STRATEGIES: [StrategyKind; 5] = [
    StrategyKind::Racy,
    StrategyKind::Atomic,
    StrategyKind::Cas,
    StrategyKind::Lock,
    StrategyKind::Advisory,
];

/// The votes table's constraints, each the database's reason for refusing a ballot, and the
/// reason as the votes workload counts it (`workload::Rejection::name`). The two checks are
/// disjoint by construction, so which one fires never depends on the order an engine tests them.
pub const BALLOT_CONSTRAINTS: [(&str, &str); 3] = [
    ("racepool_votes_non_numeric", "non-numeric"),
    ("racepool_votes_trailing_garbage", "trailing-garbage"),
    ("racepool_votes_out_of_range", "out-of-range"),
];

/// The reason a constraint named `name` stands for, if it is one of the ballot's.
pub fn rejection(name: &str) -> Option<&'static str> {
    BALLOT_CONSTRAINTS
        .iter()
        .find(|(c, _)| *c == name)
        .map(|(_, r)| *r)
}

/// The reason whose constraint `message` names (MariaDB reports constraints only in text).
pub fn rejection_in(message: &str) -> Option<&'static str> {
    BALLOT_CONSTRAINTS
        .iter()
        .find(|(c, _)| message.contains(&format!("`{c}`")))
        .map(|(_, r)| *r)
}

/// How a failed statement is handled, decided once per engine from its error codes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// A serialization failure or deadlock: roll back and run the transaction again.
    Retry(String),
    /// The connection is gone: whatever was in flight may or may not have committed.
    Lost(String),
    /// A ballot constraint refused the row: roll back, count it, go on.
    Rejected(&'static str),
    /// Anything else: the run cannot go on meaningfully.
    Other(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Retry(m) | Failure::Lost(m) | Failure::Other(m) => f.write_str(m),
            Failure::Rejected(r) => write!(f, "rejected: {r}"),
        }
    }
}

impl Failure {
    fn into_update_error(self) -> UpdateError {
        match self {
            Failure::Lost(m) => UpdateError::Unknown(m),
            Failure::Rejected(r) => UpdateError::Rejected(r),
            Failure::Retry(m) | Failure::Other(m) => UpdateError::Fatal(m),
        }
    }
}

/// A statement argument. Every integer column is BIGINT, so every integer argument is `i64`.
#[derive(Clone, Copy, Debug)]
pub enum Arg<'a> {
    Int(i64),
    Text(&'a str),
}

/// A value read back on the parent side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cell {
    Null,
    Int(i64),
    Text(String),
}

impl Cell {
    pub fn int(&self) -> Option<i64> {
        match self {
            Cell::Int(v) => Some(*v),
            // MariaDB's text protocol sends numbers as text.
            Cell::Text(t) => t.parse().ok(),
            Cell::Null => None,
        }
    }
    pub fn text(&self) -> Option<String> {
        match self {
            Cell::Text(t) => Some(t.clone()),
            Cell::Int(v) => Some(v.to_string()),
            Cell::Null => None,
        }
    }
}

/// How an engine writes a statement's placeholders.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placeholders {
    /// `$1, $2 …`, each argument once (PostgreSQL).
    Dollar,
    /// `?` per use, arguments repeated as often as they are used (MariaDB).
    Question,
    /// pgbench's `:name` variables.
    Pgbench,
}

/// The names of the session arguments, by number (`:1` is the run): pgbench's variables.
const ARG_NAMES: [&str; 12] = [
    "run", "slot", "next", "version", "worker", "seq", "read", "retries", "invoke", "complete",
    "hash", "crc",
];

/// A statement with its placeholders rendered, and which argument each one takes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bound {
    pub sql: String,
    /// For each placeholder (each distinct one for `Dollar`), the 1-based argument number.
    pub order: Vec<usize>,
}

/// Renders a template whose arguments are written `:N` (N from 1; `::` is a cast, not an
/// argument). `Dollar` renumbers them densely in order of first use, so a statement that uses
/// arguments 1, 2 and 6 takes `$1, $2, $3`.
pub fn render(template: &str, style: Placeholders) -> Bound {
    let bytes = template.as_bytes();
    let mut sql = String::with_capacity(template.len());
    let mut order = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let starts_arg = bytes[i] == b':'
            && bytes.get(i + 1).is_some_and(u8::is_ascii_digit)
            && (i == 0 || bytes[i - 1] != b':');
        if !starts_arg {
            let next = template[i..].chars().next().expect("in bounds");
            sql.push(next);
            i += next.len_utf8();
            continue;
        }
        let digits = bytes[i + 1..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        let n: usize = template[i + 1..i + 1 + digits].parse().expect("digits");
        i += 1 + digits;
        match style {
            Placeholders::Dollar => {
                let k = match order.iter().position(|&m| m == n) {
                    Some(k) => k,
                    None => {
                        order.push(n);
                        order.len() - 1
                    }
                };
                sql.push_str(&format!("${}", k + 1));
            }
            Placeholders::Question => {
                order.push(n);
                sql.push('?');
            }
            Placeholders::Pgbench => {
                sql.push(':');
                sql.push_str(ARG_NAMES[n - 1]);
            }
        }
    }
    Bound { sql, order }
}

/// How an engine takes an advisory lock on a row's key.
pub enum AdvisoryLock {
    /// Inside the transaction, released by its end (`pg_advisory_xact_lock`): one statement,
    /// executed for its effect.
    InTransaction(&'static str),
    /// Around the transaction, held by the session (`GET_LOCK` / `RELEASE_LOCK`): `get` returns
    /// 1 when granted.
    Session {
        get: &'static str,
        release: &'static str,
    },
}

/// How an engine serializes schema changes between concurrent parents (two `CREATE TABLE IF
/// NOT EXISTS` racing fail on PostgreSQL; `clean` must not drop tables a `create` just used).
pub enum SchemaLock {
    /// Taken inside a transaction that then holds the DDL too (PostgreSQL: DDL is transactional).
    InTransaction(&'static str),
    /// Taken by the session around DDL that commits by itself (MariaDB).
    Session {
        get: &'static str,
        release: &'static str,
    },
}

/// One engine: its client and its dialect. Every method opens nothing: the session or the
/// parent-side call owns the connection and drops it when done.
pub trait Driver: Sized {
    /// A prepared statement and the argument order it takes.
    type Stmt;
    const KIND: TargetKind;
    const PLACEHOLDERS: Placeholders;
    /// After `CREATE TABLE (…)`.
    const TABLE_SUFFIX: &'static str;
    const ADVISORY: AdvisoryLock;
    const SCHEMA_LOCK: SchemaLock;
    /// One row: the server's connection limit, the slots reserved for superusers that this
    /// user cannot take, and the connections in use (this one included).
    const CAPACITY: &'static str;
    /// One row: 1 when `racepool_runs` exists in the connection's schema.
    const HAS_TABLES: &'static str;

    /// Opens a connection; `app` names it where the engine can show it (PostgreSQL's
    /// `application_name`).
    fn connect(url: &str, app: &str) -> Result<Self, Failure>;
    /// A statement without arguments, by the simple protocol (BEGIN, COMMIT, SET, DDL).
    fn simple(&mut self, sql: &str) -> Result<(), Failure>;
    fn prepare(&mut self, b: &Bound) -> Result<Self::Stmt, Failure>;
    /// The first row's first two columns (the second 0 when there is one column).
    fn row(&mut self, st: &Self::Stmt, args: &[Arg<'_>]) -> Result<Option<[i64; 2]>, Failure>;
    /// Rows changed.
    fn exec(&mut self, st: &Self::Stmt, args: &[Arg<'_>]) -> Result<u64, Failure>;
    /// Runs `increment_sql`: the value it left, or None when no row matched.
    fn increment(&mut self, st: &Self::Stmt, args: &[Arg<'_>]) -> Result<Option<i64>, Failure>;
    /// Parent side: every row of a one-off statement.
    fn rows(&mut self, b: &Bound, args: &[Arg<'_>]) -> Result<Vec<Vec<Cell>>, Failure>;
    /// Parent side: rows changed by a one-off statement.
    fn execute(&mut self, b: &Bound, args: &[Arg<'_>]) -> Result<u64, Failure>;

    /// `SET` the session's isolation level for every later transaction.
    fn isolation_sql(level: Isolation) -> String;
    /// `col` matches the regular expression `pattern` (no quotes in it).
    fn regex(col: &str, pattern: &str) -> String;
    /// `UPDATE {table} SET {value} = {value} + 1 … WHERE {key}` returning the new value.
    fn increment_sql(t: Tables) -> String;
    /// The ballot text argument `:2` as an option id, -1 when it is not a whole number of at
    /// most 18 characters (the votes table's checks then say why).
    fn ballot_to_id() -> String;
}

/// Which pair of tables a session updates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tables {
    /// `racepool_slots` and `racepool_events`: the counter.
    Counter,
    /// `racepool_options` and `racepool_votes`: the poll.
    Poll,
}

impl Tables {
    pub fn state(self) -> &'static str {
        match self {
            Tables::Counter => "racepool_slots",
            Tables::Poll => "racepool_options",
        }
    }
    pub fn key(self) -> &'static str {
        match self {
            Tables::Counter => "slot",
            Tables::Poll => "option_id",
        }
    }
    pub fn value(self) -> &'static str {
        match self {
            Tables::Counter => "value",
            Tables::Poll => "votes",
        }
    }
    pub fn events(self) -> &'static str {
        match self {
            Tables::Counter => "racepool_events",
            Tables::Poll => "racepool_votes",
        }
    }
    fn read_col(self) -> &'static str {
        match self {
            Tables::Counter => "value_read",
            Tables::Poll => "votes_before",
        }
    }
    fn written_col(self) -> &'static str {
        match self {
            Tables::Counter => "value_written",
            Tables::Poll => "votes_after",
        }
    }
    fn workload(self) -> &'static str {
        match self {
            Tables::Counter => "counter",
            Tables::Poll => "votes",
        }
    }
    /// The tables of a run whose slots hold `holds` (a record is not a SQL target's).
    fn of_holds(holds: Holds) -> Tables {
        match holds {
            Holds::Poll => Tables::Poll,
            Holds::Counters | Holds::Record | Holds::Cache => Tables::Counter,
        }
    }
    fn of_workload(s: &str) -> Option<Tables> {
        [Tables::Counter, Tables::Poll]
            .into_iter()
            .find(|t| t.workload() == s)
    }
    /// The row's key as SQL: the slot argument, or the option the ballot text names.
    pub fn key_expr<D: Driver>(self) -> String {
        match self {
            Tables::Counter => ":2".into(),
            Tables::Poll => D::ballot_to_id(),
        }
    }
    /// `WHERE` of the row an update targets.
    pub fn row<D: Driver>(self) -> String {
        format!("run = :1 AND {} = {}", self.key(), self.key_expr::<D>())
    }
}

/// Session statement templates (arguments numbered as `ARG_NAMES`).
pub mod statement {
    use super::{Driver, Tables};

    pub fn read<D: Driver>(t: Tables, for_update: bool) -> String {
        format!(
            "SELECT {}, version FROM {} WHERE {}{}",
            t.value(),
            t.state(),
            t.row::<D>(),
            if for_update { " FOR UPDATE" } else { "" }
        )
    }

    /// The blind write of the value the session computed (`racy`, `lock`, `advisory`), or
    /// `cas`'s conditional one.
    pub fn write<D: Driver>(t: Tables, cas: bool) -> String {
        format!(
            "UPDATE {} SET {} = :3, version = version + 1 WHERE {}{}",
            t.state(),
            t.value(),
            t.row::<D>(),
            if cas { " AND version = :4" } else { "" }
        )
    }

    pub fn insert_event<D: Driver>(t: Tables) -> String {
        match t {
            Tables::Counter => "INSERT INTO racepool_events (run, worker, seq, slot, value_read, \
                 value_written, retries, invoke_ns, complete_ns, hash, crc) \
                 VALUES (:1, :5, :6, :2, :7, :3, :8, :9, :10, :11, :12)"
                .into(),
            Tables::Poll => format!(
                "INSERT INTO racepool_votes (run, worker, seq, ballot, option_id, votes_before, \
                 votes_after, retries, invoke_ns, complete_ns, hash, crc) \
                 VALUES (:1, :5, :6, :2, {}, :7, :3, :8, :9, :10, :11, :12)",
                D::ballot_to_id()
            ),
        }
    }
}

/// The tables, for `CREATE TABLE IF NOT EXISTS`, children last.
fn schema<D: Driver>() -> Vec<String> {
    let s = D::TABLE_SUFFIX;
    let event_columns = "worker BIGINT NOT NULL, seq BIGINT NOT NULL";
    let event_tail = "retries BIGINT NOT NULL, invoke_ns BIGINT NOT NULL, \
         complete_ns BIGINT NOT NULL, hash BIGINT NOT NULL, crc BIGINT NOT NULL, \
         PRIMARY KEY (run, worker, seq)";
    vec![
        format!(
            "CREATE TABLE IF NOT EXISTS racepool_runs (run BIGINT NOT NULL PRIMARY KEY, \
             workload TEXT NOT NULL, isolation TEXT NOT NULL, slots BIGINT NOT NULL, \
             workers BIGINT NOT NULL, initial BIGINT NOT NULL, strategy TEXT, ops BIGINT, \
             seed BIGINT, persist TEXT, fingerprint BIGINT){s}"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS racepool_slots (run BIGINT NOT NULL, \
             slot BIGINT NOT NULL, value BIGINT NOT NULL, version BIGINT NOT NULL, \
             final_value BIGINT, PRIMARY KEY (run, slot)){s}"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS racepool_events (run BIGINT NOT NULL, {event_columns}, \
             slot BIGINT NOT NULL, value_read BIGINT NOT NULL, value_written BIGINT NOT NULL, \
             {event_tail}){s}"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS racepool_workers (run BIGINT NOT NULL, \
             worker BIGINT NOT NULL, completed BIGINT NOT NULL, killed BIGINT NOT NULL, \
             in_flight BIGINT NOT NULL, PRIMARY KEY (run, worker)){s}"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS racepool_options (run BIGINT NOT NULL, \
             option_id BIGINT NOT NULL, label TEXT NOT NULL, votes BIGINT NOT NULL, \
             version BIGINT NOT NULL, final_value BIGINT, PRIMARY KEY (run, option_id)){s}"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS racepool_votes (run BIGINT NOT NULL, {event_columns}, \
             ballot TEXT NOT NULL, option_id BIGINT NOT NULL, votes_before BIGINT NOT NULL, \
             votes_after BIGINT NOT NULL, {event_tail}, \
             CONSTRAINT {} CHECK ({}), \
             CONSTRAINT {} CHECK (NOT {}), \
             CONSTRAINT {} FOREIGN KEY (run, option_id) \
             REFERENCES racepool_options (run, option_id)){s}",
            BALLOT_CONSTRAINTS[0].0,
            D::regex("ballot", "^[+-]?[0-9]"),
            BALLOT_CONSTRAINTS[1].0,
            D::regex("ballot", "^[+-]?[0-9]+[^0-9]"),
            BALLOT_CONSTRAINTS[2].0,
        ),
    ]
}

/// Every table, children first (the order `DELETE` and `DROP` need).
const TABLES: [&str; 6] = [
    "racepool_votes",
    "racepool_options",
    "racepool_events",
    "racepool_workers",
    "racepool_slots",
    "racepool_runs",
];

/// CRC32C over an event's fields: an event row's own checksum, so an edited row is caught even
/// where the hash chain does not cover the field (retries, times, the worker).
pub fn event_crc(e: &Event) -> u32 {
    let mut bytes = [0u8; 60];
    let fields: [&[u8]; 10] = [
        &e.run.to_le_bytes(),
        &e.worker.to_le_bytes(),
        &e.seq.to_le_bytes(),
        &e.slot.to_le_bytes(),
        &e.read.to_le_bytes(),
        &e.written.to_le_bytes(),
        &e.retries.to_le_bytes(),
        &e.invoke_ns.to_le_bytes(),
        &e.complete_ns.to_le_bytes(),
        &e.hash.to_le_bytes(),
    ];
    let mut at = 0;
    for f in fields {
        bytes[at..at + f.len()].copy_from_slice(f);
        at += f.len();
    }
    crc32c::crc32c(&bytes[..at])
}

/// The URL as it may be printed: a password is masked.
pub fn masked(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.into();
    };
    let (auth, host) = match rest.rsplit_once('@') {
        Some(parts) => parts,
        None => return url.into(),
    };
    match auth.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.into(),
    }
}

/// A SQL target, parent side: a URL and an isolation level, never a connection.
pub struct Sql<D> {
    url: String,
    isolation: Isolation,
    driver: PhantomData<fn() -> D>,
}

impl<D> Clone for Sql<D> {
    fn clone(&self) -> Self {
        Sql {
            url: self.url.clone(),
            isolation: self.isolation,
            driver: PhantomData,
        }
    }
}

impl<D> std::fmt::Debug for Sql<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sql")
            .field("url", &masked(&self.url))
            .field("isolation", &self.isolation)
            .finish()
    }
}

fn to_u32(v: i64, what: &str) -> Result<u32, Failure> {
    u32::try_from(v).map_err(|_| Failure::Other(format!("{what} {v} is not a 32-bit count")))
}

impl<D: Driver> Sql<D> {
    /// The target at `url` whose sessions run at `isolation`. Connects to nothing.
    pub fn new(url: &str, isolation: Isolation) -> Sql<D> {
        Sql {
            url: url.into(),
            isolation,
            driver: PhantomData,
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn isolation(&self) -> Isolation {
        self.isolation
    }

    fn fail(&self, f: Failure) -> Error {
        Error::Target(format!("{}: {f}", masked(&self.url)))
    }

    fn parent(&self, app: &str) -> Result<D, Error> {
        D::connect(&self.url, app).map_err(|f| self.fail(f))
    }

    fn has_tables(c: &mut D) -> Result<bool, Failure> {
        let rows = c.rows(&render(D::HAS_TABLES, D::PLACEHOLDERS), &[])?;
        Ok(rows.first().and_then(|r| r[0].int()).unwrap_or(0) > 0)
    }

    /// Runs `body` holding the schema lock, after `ddl`, in one transaction where the engine
    /// allows; commits on success, rolls back otherwise. The lock is released on every path.
    fn schema_tx<T>(
        c: &mut D,
        ddl: &[String],
        body: impl FnOnce(&mut D) -> Result<T, Failure>,
    ) -> Result<T, Failure> {
        match D::SCHEMA_LOCK {
            SchemaLock::InTransaction(lock) => {
                c.simple("BEGIN")?;
                let r = (|| {
                    c.simple(lock)?;
                    for d in ddl {
                        c.simple(d)?;
                    }
                    body(c)
                })();
                match r {
                    Ok(v) => c.simple("COMMIT").map(|_| v),
                    Err(e) => {
                        let _ = c.simple("ROLLBACK");
                        Err(e)
                    }
                }
            }
            SchemaLock::Session { get, release } => {
                let got = c.rows(&render(get, D::PLACEHOLDERS), &[])?;
                if got.first().and_then(|r| r[0].int()) != Some(1) {
                    return Err(Failure::Other(
                        "the schema lock racepool:schema was not granted within 60 s".into(),
                    ));
                }
                let r = (|| {
                    for d in ddl {
                        c.simple(d)?;
                    }
                    c.simple("BEGIN")?;
                    match body(c) {
                        Ok(v) => c.simple("COMMIT").map(|_| v),
                        Err(e) => {
                            let _ = c.simple("ROLLBACK");
                            Err(e)
                        }
                    }
                })();
                let released = c.rows(&render(release, D::PLACEHOLDERS), &[]);
                let v = r?;
                released.map(|_| v)
            }
        }
    }

    /// Creates the tables if missing and the run's rows: its `racepool_runs` row and one state
    /// row per slot (or option) at `initial`.
    fn create_tables(&self, shape: &RunShape, tables: Tables) -> Result<(), Error> {
        let mut c = self.parent(&format!("racepool/{}", shape.run))?;
        let run = shape.run as i64;
        Self::schema_tx(&mut c, &schema::<D>(), |c| {
            let insert_run = render(
                "INSERT INTO racepool_runs (run, workload, isolation, slots, workers, initial) \
                 VALUES (:1, :2, :3, :4, :5, :6)",
                D::PLACEHOLDERS,
            );
            let args = [
                Arg::Int(run),
                Arg::Text(tables.workload()),
                Arg::Text(self.isolation.name()),
                Arg::Int(shape.slots as i64),
                Arg::Int(shape.workers as i64),
                Arg::Int(shape.initial as i64),
            ];
            c.execute(&insert_run, &args).map_err(|f| match f {
                Failure::Other(m) => Failure::Other(format!("run {run} cannot be created: {m}")),
                other => other,
            })?;
            // Integers only, formatted here: no text from outside reaches the statement.
            const BATCH: usize = 1000;
            let mut first = 0;
            while first < shape.slots {
                let last = (first + BATCH).min(shape.slots);
                let rows: Vec<String> = (first..last)
                    .map(|s| match tables {
                        Tables::Counter => format!("({run}, {s}, {}, 0)", shape.initial),
                        Tables::Poll => format!("({run}, {s}, 'option {s}', {}, 0)", shape.initial),
                    })
                    .collect();
                let columns = match tables {
                    Tables::Counter => "run, slot, value, version",
                    Tables::Poll => "run, option_id, label, votes, version",
                };
                c.simple(&format!(
                    "INSERT INTO {} ({columns}) VALUES {}",
                    tables.state(),
                    rows.join(", ")
                ))?;
                first = last;
            }
            Ok(())
        })
        .map_err(|f| self.fail(f))
    }

    /// Creates a poll of `shape.slots` options (`option 0`, `option 1` …) at `shape.initial`
    /// votes, for [`Sql::connect_voter`]. Its `finals`, record and `clean` are a counter's.
    pub fn create_poll(&self, shape: &RunShape) -> Result<(), Error> {
        self.create_tables(shape, Tables::Poll)
    }

    fn session(
        &self,
        shape: &RunShape,
        worker: usize,
        strategy: StrategyKind,
        tables: Tables,
    ) -> Result<SqlSession<D>, UpdateError> {
        if !STRATEGIES.contains(&strategy) {
            return Err(UpdateError::Fatal(format!(
                "{} is not a {} strategy",
                strategy.name(),
                D::KIND.name()
            )));
        }
        let app = format!("racepool/{}/{worker}", shape.run);
        let fatal = |f: Failure| UpdateError::Fatal(format!("{}: {f}", masked(&self.url)));
        let mut conn = D::connect(&self.url, &app).map_err(fatal)?;
        conn.simple(&D::isolation_sql(self.isolation))
            .map_err(fatal)?;
        let mut prep = |t: String| conn.prepare(&render(&t, D::PLACEHOLDERS)).map(Some);
        let mut st = Statements {
            read: None,
            write: None,
            increment: None,
            lock: None,
            unlock: None,
            insert: prep(statement::insert_event::<D>(tables)).map_err(fatal)?,
        };
        match strategy {
            StrategyKind::Atomic => {
                st.increment = prep(D::increment_sql(tables)).map_err(fatal)?;
            }
            StrategyKind::Cas => {
                st.read = prep(statement::read::<D>(tables, false)).map_err(fatal)?;
                st.write = prep(statement::write::<D>(tables, true)).map_err(fatal)?;
            }
            _ => {
                let for_update = strategy == StrategyKind::Lock;
                st.read = prep(statement::read::<D>(tables, for_update)).map_err(fatal)?;
                st.write = prep(statement::write::<D>(tables, false)).map_err(fatal)?;
            }
        }
        if strategy == StrategyKind::Advisory {
            let key = tables.key_expr::<D>();
            match D::ADVISORY {
                AdvisoryLock::InTransaction(t) => {
                    st.lock = prep(t.replace("{key}", &key)).map_err(fatal)?;
                }
                AdvisoryLock::Session { get, release } => {
                    st.lock = prep(get.replace("{key}", &key)).map_err(fatal)?;
                    st.unlock = prep(release.replace("{key}", &key)).map_err(fatal)?;
                }
            }
        }
        Ok(SqlSession {
            conn,
            st,
            strategy,
            tables,
            run: shape.run,
            chain: ChainKey::of(shape.run),
            // A joined run's worker ids are unique across its hosts.
            worker: (shape.share.first_worker + worker) as u32,
            share: shape.share,
            votes: 0,
        })
    }

    /// Opens worker `worker`'s voting session on the poll `create_poll` made. After the fork.
    pub fn connect_voter(
        &self,
        shape: &RunShape,
        worker: usize,
        strategy: StrategyKind,
    ) -> Result<Voter<D>, UpdateError> {
        self.session(shape, worker, strategy, Tables::Poll)
            .map(Voter)
    }

    /// The run's workload, from its row.
    fn tables_of(c: &mut D, run: u64) -> Result<Tables, Failure> {
        let b = render(
            "SELECT workload FROM racepool_runs WHERE run = :1",
            D::PLACEHOLDERS,
        );
        let rows = c.rows(&b, &[Arg::Int(run as i64)])?;
        let w = rows
            .first()
            .and_then(|r| r[0].text())
            .ok_or_else(|| Failure::Other(format!("no run {run}")))?;
        Tables::of_workload(&w)
            .ok_or_else(|| Failure::Other(format!("run {run} has an unknown workload '{w}'")))
    }

    fn values(c: &mut D, run: u64, t: Tables, column: &str) -> Result<Vec<Option<i64>>, Failure> {
        let b = render(
            &format!(
                "SELECT {column} FROM {} WHERE run = :1 ORDER BY {}",
                t.state(),
                t.key()
            ),
            D::PLACEHOLDERS,
        );
        Ok(c.rows(&b, &[Arg::Int(run as i64)])?
            .iter()
            .map(|r| r[0].int())
            .collect())
    }
}

fn load_from<D: Driver>(c: &mut D, only: Option<u64>) -> Result<Loaded, Failure> {
    let mut loaded = Loaded {
        runs: Vec::new(),
        orphans: Vec::new(),
        damaged: Vec::new(),
        tail: Tail::Clean,
        read_to: None,
        size: None,
        // Runs are rows keyed one by one: there is no invocation-wide closing record to miss.
        closure: Closure::Unrecorded,
        records: 0,
    };
    if !Sql::<D>::has_tables(c)? {
        return Ok(loaded);
    }
    let b = render(
        "SELECT run, workload, strategy, workers, slots, ops, initial, seed, persist, \
         fingerprint FROM racepool_runs WHERE persist IS NOT NULL ORDER BY run",
        D::PLACEHOLDERS,
    );
    for r in c.rows(&b, &[])? {
        let int = |i: usize, what: &str| {
            r[i].int()
                .ok_or_else(|| Failure::Other(format!("racepool_runs.{what} is not a number")))
        };
        let run = int(0, "run")? as u64;
        if only.is_some_and(|o| o != run) {
            continue;
        }
        let tables = Tables::of_workload(&r[1].text().unwrap_or_default())
            .ok_or_else(|| Failure::Other(format!("run {run} has an unknown workload")))?;
        let info = RunInfo {
            run,
            strategy: r[2].text().unwrap_or_default(),
            workers: to_u32(int(3, "workers")?, "workers")?,
            slots: to_u32(int(4, "slots")?, "slots")?,
            ops: int(5, "ops")? as u64,
            initial: to_u32(int(6, "initial")?, "initial")?,
            seed: int(7, "seed")? as u64,
            persist: r[8].text().unwrap_or_default(),
        };
        let fingerprint = r[9].int();
        let ev = render(
            &format!(
                "SELECT worker, seq, {}, {}, {}, retries, invoke_ns, complete_ns, hash, crc \
                 FROM {} WHERE run = :1 ORDER BY worker, seq",
                tables.key(),
                tables.read_col(),
                tables.written_col(),
                tables.events()
            ),
            D::PLACEHOLDERS,
        );
        let mut events = Vec::new();
        let mut damaged = Vec::new();
        for e in c.rows(&ev, &[Arg::Int(run as i64)])? {
            let n = |i: usize| e[i].int().unwrap_or(-1);
            // A row edited to a value out of range becomes an impossible event, not a panic.
            let small = |i: usize| u32::try_from(n(i)).unwrap_or(u32::MAX);
            let event = Event {
                run,
                worker: small(0),
                seq: n(1) as u64,
                slot: small(2),
                read: small(3),
                written: small(4),
                retries: small(5),
                invoke_ns: n(6) as u64,
                complete_ns: n(7) as u64,
                hash: n(8) as u64,
            };
            // A row that fails its checksum is damage named by its key; its content is never used.
            if event_crc(&event) as i64 != n(9) {
                damaged.push(Damage {
                    at: Place::row(
                        tables.events(),
                        &[
                            ("run", run as i64),
                            ("worker", event.worker as i64),
                            ("seq", event.seq as i64),
                        ],
                    ),
                    defect: Defect::RowChecksum,
                    writer: Writer::Worker {
                        worker: event.worker,
                        seq: event.seq,
                    },
                });
                continue;
            }
            events.push(event);
        }
        let stored: Vec<u32> = Sql::<D>::values(c, run, tables, tables.value())?
            .into_iter()
            .map(|v| v.and_then(|v| u32::try_from(v).ok()).unwrap_or(u32::MAX))
            .collect();
        let final_values = Sql::<D>::values(c, run, tables, "final_value")?;
        let unknown_finals = final_values
            .iter()
            .filter(|v| v.and_then(|v| u32::try_from(v).ok()).is_none())
            .count() as u32
            + info.slots.saturating_sub(final_values.len() as u32);
        let finals: Option<Vec<u32>> = final_values
            .into_iter()
            .map(|v| v.and_then(|v| u32::try_from(v).ok()))
            .collect();
        let wb = render(
            "SELECT worker, completed, killed, in_flight FROM racepool_workers \
             WHERE run = :1 ORDER BY worker",
            D::PLACEHOLDERS,
        );
        let mut completed = Vec::new();
        let mut killed = Vec::new();
        for w in c.rows(&wb, &[Arg::Int(run as i64)])? {
            let n = |i: usize| w[i].int().unwrap_or(0);
            completed.push(n(1) as u64);
            if n(2) != 0 {
                killed.push(Killed {
                    worker: n(0) as u32,
                    in_flight: n(3) != 0,
                });
            }
        }
        // The end is whole only with every part of it (history::loaded's contract).
        let mut missing = Vec::new();
        if fingerprint.is_none() {
            missing.push(Missing::Fingerprint);
        }
        if unknown_finals > 0 {
            missing.push(Missing::FinalValues {
                slots: unknown_finals,
            });
        }
        let unacknowledged = info.workers.saturating_sub(completed.len() as u32);
        if unacknowledged > 0 {
            missing.push(Missing::Acknowledged {
                workers: unacknowledged,
            });
        }
        let whole = missing.is_empty();
        if fingerprint.is_none() && unknown_finals == info.slots && completed.is_empty() {
            // Nothing of the end: the run never ended (an empty list says all of it).
            missing.clear();
        }
        let end = match (fingerprint, finals) {
            (Some(f), Some(finals)) if whole => Some(RunEnd {
                run,
                fingerprint: f as u64,
                finals,
                completed,
                killed,
            }),
            _ => None,
        };
        loaded.records += events.len() as u64 + 1 + end.is_some() as u64;
        loaded.runs.push(RunHistory {
            events,
            end,
            missing,
            stored: Some(stored),
            damaged,
            ..RunHistory::new(info)
        });
    }
    Ok(loaded)
}

impl<D: Driver> RecordStore for Sql<D> {
    /// Writes the run's header: from here on the run is a record `torture verify URL` checks.
    /// Before any fork, after `create`.
    fn begin_record(&self, info: &RunInfo) -> Result<(), Error> {
        let mut c = self.parent(&format!("racepool/{}", info.run))?;
        let b = render(
            "UPDATE racepool_runs SET strategy = :2, ops = :3, seed = :4, persist = 'target', \
             workers = :5, slots = :6, initial = :7 WHERE run = :1",
            D::PLACEHOLDERS,
        );
        let args = [
            Arg::Int(info.run as i64),
            Arg::Text(&info.strategy),
            Arg::Int(info.ops as i64),
            Arg::Int(info.seed as i64),
            Arg::Int(info.workers as i64),
            Arg::Int(info.slots as i64),
            Arg::Int(info.initial as i64),
        ];
        match c.execute(&b, &args) {
            Ok(1) => Ok(()),
            Ok(_) => Err(self.fail(Failure::Other(format!(
                "run {} was not created before its record began",
                info.run
            )))),
            Err(f) => Err(self.fail(f)),
        }
    }

    /// Writes the run's end: each slot's final value as the parent read it, the fingerprint,
    /// each worker's acknowledged count and deaths. After every worker is reaped.
    fn end_record(&self, end: &RunEnd) -> Result<(), Error> {
        let mut c = self.parent(&format!("racepool/{}", end.run))?;
        let run = end.run as i64;
        let r = (|| {
            let t = Self::tables_of(&mut c, end.run)?;
            c.simple("BEGIN")?;
            let fp = render(
                "UPDATE racepool_runs SET fingerprint = :2 WHERE run = :1",
                D::PLACEHOLDERS,
            );
            c.execute(&fp, &[Arg::Int(run), Arg::Int(end.fingerprint as i64)])?;
            let set = render(
                &format!(
                    "UPDATE {} SET final_value = :3 WHERE run = :1 AND {} = :2",
                    t.state(),
                    t.key()
                ),
                D::PLACEHOLDERS,
            );
            for (s, &v) in end.finals.iter().enumerate() {
                let args = [Arg::Int(run), Arg::Int(s as i64), Arg::Int(v as i64)];
                c.execute(&set, &args)?;
            }
            let worker = render(
                "INSERT INTO racepool_workers (run, worker, completed, killed, in_flight) \
                 VALUES (:1, :2, :3, :4, :5)",
                D::PLACEHOLDERS,
            );
            for (w, &completed) in end.completed.iter().enumerate() {
                let death = end.killed.iter().find(|k| k.worker as usize == w);
                let args = [
                    Arg::Int(run),
                    Arg::Int(w as i64),
                    Arg::Int(completed as i64),
                    Arg::Int(death.is_some() as i64),
                    Arg::Int(death.is_some_and(|k| k.in_flight) as i64),
                ];
                c.execute(&worker, &args)?;
            }
            c.simple("COMMIT")
        })();
        r.map_err(|f| {
            let _ = c.simple("ROLLBACK");
            self.fail(f)
        })
    }

    /// Every recorded run (or only `run`) read back into the checker's form: the header, the
    /// events in worker and sequence order, the end, and the values the state rows hold now.
    /// An event row failing its checksum makes the store corrupt (as an SQLite row does).
    fn load(&self, run: Option<u64>) -> Result<Loaded, Error> {
        let mut c = self.parent("racepool/verify")?;
        load_from(&mut c, run).map_err(|f| self.fail(f))
    }
}

impl<D: Driver> Target for Sql<D> {
    type Session = SqlSession<D>;

    fn kind(&self) -> TargetKind {
        D::KIND
    }

    fn strategies(&self) -> &'static [StrategyKind] {
        &STRATEGIES
    }

    /// Counters, and a poll's options (`--scenario votes`: the ballots checked by the votes
    /// table's constraints).
    fn strategies_for(&self, holds: Holds) -> &'static [StrategyKind] {
        match holds {
            Holds::Counters | Holds::Poll => &STRATEGIES,
            Holds::Record | Holds::Cache => &[],
        }
    }

    fn preflight(&self, shape: &RunShape, strategies: &[StrategyKind]) -> Result<(), Error> {
        if let Some(s) = strategies.iter().find(|s| !STRATEGIES.contains(s)) {
            return Err(Error::Usage(format!(
                "--strategy {} is not a {} strategy (it has {})",
                s.name(),
                D::KIND.name(),
                STRATEGIES.map(|s| s.name()).join(", ")
            )));
        }
        let mut c = self.parent("racepool/preflight")?;
        let rows = c
            .rows(&render(D::CAPACITY, D::PLACEHOLDERS), &[])
            .map_err(|f| self.fail(f))?;
        let n = |i: usize| rows.first().and_then(|r| r[i].int()).unwrap_or(0);
        let (max, reserved, in_use) = (n(0), n(1), n(2));
        // This connection stands for the parent's own, which it opens again after the run.
        let free = (max - reserved - in_use).max(0);
        if shape.workers as i64 > free {
            return Err(Error::Usage(format!(
                "--workers {} is more than {} can still accept (max_connections {max}, {}{in_use} in use): at most {free}",
                shape.workers,
                masked(&self.url),
                if reserved > 0 {
                    format!("{reserved} reserved for superusers, ")
                } else {
                    String::new()
                },
            )));
        }
        Ok(())
    }

    fn create(&self, shape: &RunShape) -> Result<(), Error> {
        self.create_tables(shape, Tables::of_holds(shape.holds))
    }

    /// A poll's session (`shape.holds` is `Poll`) takes ballots ([`Session::vote`]).
    fn connect(
        &self,
        shape: &RunShape,
        worker: usize,
        strategy: StrategyKind,
    ) -> Result<SqlSession<D>, UpdateError> {
        self.session(shape, worker, strategy, Tables::of_holds(shape.holds))
    }

    fn finals(&self, shape: &RunShape) -> Result<Vec<u32>, Error> {
        let mut c = self.parent(&format!("racepool/{}", shape.run))?;
        (|| {
            let t = Self::tables_of(&mut c, shape.run)?;
            let values = Self::values(&mut c, shape.run, t, t.value())?;
            if values.len() != shape.slots {
                return Err(Failure::Other(format!(
                    "run {} has {} of its {} rows in {}",
                    shape.run,
                    values.len(),
                    shape.slots,
                    t.state()
                )));
            }
            values
                .into_iter()
                .map(|v| to_u32(v.unwrap_or(-1), "a final value"))
                .collect()
        })()
        .map_err(|f| self.fail(f))
    }

    fn clean(&self, run: Option<u64>) -> Result<u64, Error> {
        let mut c = self.parent("racepool/clean")?;
        (|| {
            if !Self::has_tables(&mut c)? {
                return Ok(0);
            }
            Self::schema_tx(&mut c, &[], |c| {
                let (filter, args) = match run {
                    Some(r) => (" WHERE run = :1", vec![Arg::Int(r as i64)]),
                    None => ("", vec![]),
                };
                let count = render(
                    &format!("SELECT COUNT(*) FROM racepool_runs{filter}"),
                    D::PLACEHOLDERS,
                );
                let removed = c.rows(&count, &args)?[0][0].int().unwrap_or(0) as u64;
                for t in TABLES {
                    let del = render(&format!("DELETE FROM {t}{filter}"), D::PLACEHOLDERS);
                    c.execute(&del, &args)?;
                }
                let left = render("SELECT COUNT(*) FROM racepool_runs", D::PLACEHOLDERS);
                if c.rows(&left, &[])?[0][0].int() == Some(0) {
                    for t in TABLES {
                        c.simple(&format!("DROP TABLE IF EXISTS {t}"))?;
                    }
                }
                Ok(removed)
            })
        })()
        .map_err(|f| self.fail(f))
    }

    fn records(&self) -> Option<&dyn super::Records> {
        Some(self)
    }
}

/// A session's prepared statements (those its strategy uses).
struct Statements<S> {
    /// `SELECT value, version` (`FOR UPDATE` for `lock`).
    read: Option<S>,
    /// The blind write, or `cas`'s conditional one.
    write: Option<S>,
    /// `atomic`'s one statement.
    increment: Option<S>,
    /// `advisory`: the lock (inside the transaction, or before it for a session lock).
    lock: Option<S>,
    /// `advisory` with a session lock: its release.
    unlock: Option<S>,
    /// The event row (the vote row for a poll).
    insert: Option<S>,
}

/// Where each session argument sits (`ARG_NAMES`, 0-based).
mod arg {
    pub const NEXT: usize = 2;
    pub const VERSION: usize = 3;
    pub const READ: usize = 6;
    pub const COMPLETE: usize = 9;
    pub const HASH: usize = 10;
    pub const CRC: usize = 11;
}

/// What one attempt at an update came to.
enum Step {
    Won {
        read: u32,
        written: u32,
    },
    /// `cas` changed no row: someone else wrote first.
    Again,
}

/// Retries of one update before the session gives up: far beyond what contention costs
/// (tens per update with 50 workers at serializable), so only a failure that repeats for
/// ever (a row locked by someone who never lets go, 1205 each time) reaches it.
const MAX_RETRIES: u32 = 100_000;

/// A worker's connection: one update per call.
pub struct SqlSession<D: Driver> {
    conn: D,
    st: Statements<D::Stmt>,
    strategy: StrategyKind,
    tables: Tables,
    run: u64,
    chain: ChainKey,
    /// The run's worker id (its host's first, plus the worker's own).
    worker: u32,
    /// Puts the event's times on the run's clock (a joined run's: the database's).
    share: super::Share,
    /// Votes this session has had accepted: the next vote row's `seq`.
    votes: u64,
}

/// What an attempt writes beside the update.
#[derive(Clone, Copy)]
struct Draft {
    seq: u64,
    invoke_ns: u64,
}

fn need<S>(s: &Option<S>) -> Result<&S, Failure> {
    s.as_ref()
        .ok_or_else(|| Failure::Other("statement not prepared for this strategy".into()))
}

impl<D: Driver> SqlSession<D> {
    /// Runs the update until it wins, retrying serialization failures, deadlocks and `cas`
    /// misses. `key` is the slot (counter) or the ballot text (poll); `number` the slot or
    /// option as a number, for the event's hash.
    fn apply(
        &mut self,
        key: Arg<'_>,
        number: Option<u32>,
        draft: Option<Draft>,
    ) -> Result<Applied, UpdateError> {
        let mut retries = 0u32;
        loop {
            let args = self.args(key, draft, retries);
            let attempt = if self.st.unlock.is_some() {
                self.locked_attempt(args, number, draft, retries)
            } else {
                self.attempt(args, number, draft, retries)
            };
            match attempt {
                Ok(Step::Won { read, written }) => {
                    return Ok(Applied {
                        read,
                        written,
                        retries,
                        waits: 0,
                        wakes: 0,
                    })
                }
                Ok(Step::Again) | Err(Failure::Retry(_)) if retries >= MAX_RETRIES => {
                    return Err(UpdateError::Fatal(format!(
                        "gave up after {retries} retries of one update on run {}",
                        self.run
                    )))
                }
                Ok(Step::Again) | Err(Failure::Retry(_)) => retries += 1,
                Err(f) => return Err(f.into_update_error()),
            }
        }
    }

    /// Every argument a session statement may take, those known before the attempt filled in.
    fn args<'a>(&self, key: Arg<'a>, draft: Option<Draft>, retries: u32) -> [Arg<'a>; 12] {
        let d = draft.unwrap_or(Draft {
            seq: 0,
            invoke_ns: 0,
        });
        [
            Arg::Int(self.run as i64),
            key,
            Arg::Int(0),
            Arg::Int(0),
            Arg::Int(self.worker as i64),
            Arg::Int(d.seq as i64),
            Arg::Int(0),
            Arg::Int(retries as i64),
            Arg::Int(d.invoke_ns as i64),
            Arg::Int(0),
            Arg::Int(0),
            Arg::Int(0),
        ]
    }

    /// MariaDB `advisory`: the session lock, the attempt, and the release on every path but a
    /// lost connection (the server drops a lost session's locks with it).
    fn locked_attempt(
        &mut self,
        args: [Arg<'_>; 12],
        number: Option<u32>,
        draft: Option<Draft>,
        retries: u32,
    ) -> Result<Step, Failure> {
        match self.conn.row(need(&self.st.lock)?, &args)? {
            Some([1, _]) => {}
            _ => {
                return Err(Failure::Other(
                    "the advisory lock was not granted within 60 s".into(),
                ))
            }
        }
        let r = self.attempt(args, number, draft, retries);
        if matches!(r, Err(Failure::Lost(_))) {
            return r;
        }
        let released = self.conn.row(need(&self.st.unlock)?, &args);
        released.and(r)
    }

    /// One try: a transaction, ended here (committed when it won, rolled back otherwise), or,
    /// for `atomic` without an event, one autocommit statement.
    fn attempt(
        &mut self,
        args: [Arg<'_>; 12],
        number: Option<u32>,
        draft: Option<Draft>,
        retries: u32,
    ) -> Result<Step, Failure> {
        if self.strategy == StrategyKind::Atomic && draft.is_none() {
            let v = self.conn.increment(need(&self.st.increment)?, &args)?;
            let written = to_u32(v.ok_or_else(|| self.no_row())?, "a value")?;
            return Ok(Step::Won {
                read: written.wrapping_sub(1),
                written,
            });
        }
        self.conn.simple("BEGIN")?;
        let step = self.in_transaction(args, number, draft, retries);
        match step {
            Ok(Step::Won { .. }) => self.conn.simple("COMMIT").and(step),
            Err(Failure::Lost(_)) => step,
            // A failed ROLLBACK matters only when the connection went with it.
            _ => match self.conn.simple("ROLLBACK") {
                Err(f @ Failure::Lost(_)) => Err(f),
                _ => step,
            },
        }
    }

    /// The statements between `BEGIN` and `COMMIT`.
    fn in_transaction(
        &mut self,
        mut args: [Arg<'_>; 12],
        number: Option<u32>,
        draft: Option<Draft>,
        retries: u32,
    ) -> Result<Step, Failure> {
        if let (Some(lock), None) = (&self.st.lock, &self.st.unlock) {
            self.conn.exec(lock, &args)?;
        }
        let (read, written) = if self.strategy == StrategyKind::Atomic {
            let Some(v) = self.conn.increment(need(&self.st.increment)?, &args)? else {
                return self.vote_without_option(&args);
            };
            let w = to_u32(v, "a value")?;
            (w.wrapping_sub(1), w)
        } else {
            let Some([read, version]) = self.conn.row(need(&self.st.read)?, &args)? else {
                return self.vote_without_option(&args);
            };
            let read = to_u32(read, "a value")?;
            let next = read.wrapping_add(1);
            args[arg::NEXT] = Arg::Int(next as i64);
            args[arg::VERSION] = Arg::Int(version);
            if self.conn.exec(need(&self.st.write)?, &args)? == 0 {
                if self.strategy == StrategyKind::Cas {
                    return Ok(Step::Again);
                }
                return Err(self.no_row());
            }
            (read, next)
        };
        if let Some(d) = draft {
            let complete_ns = self.share.on_run_clock(crate::clock::now_ns());
            let slot = number.ok_or_else(|| {
                Failure::Other("the database accepted a ballot this session cannot read".into())
            })?;
            let e = Event {
                run: self.run,
                worker: self.worker,
                seq: d.seq,
                slot,
                read,
                written,
                retries,
                invoke_ns: d.invoke_ns,
                complete_ns,
                hash: self.chain.link(slot, read, written),
            };
            args[arg::NEXT] = Arg::Int(written as i64);
            args[arg::READ] = Arg::Int(read as i64);
            args[arg::COMPLETE] = Arg::Int(complete_ns as i64);
            args[arg::HASH] = Arg::Int(e.hash as i64);
            args[arg::CRC] = Arg::Int(event_crc(&e) as i64);
            self.conn.exec(need(&self.st.insert)?, &args)?;
        }
        Ok(Step::Won { read, written })
    }

    /// No state row matched. On a poll, the ballot names no option: the vote row's insert lets
    /// the database say why (a check, or the foreign key). On a counter, the run's rows are gone.
    fn vote_without_option(&mut self, args: &[Arg<'_>; 12]) -> Result<Step, Failure> {
        if self.tables == Tables::Counter {
            return Err(self.no_row());
        }
        self.conn.exec(need(&self.st.insert)?, args)?;
        Err(Failure::Other(format!(
            "the database accepted the ballot {:?}, which names no option of run {}",
            args[1], self.run
        )))
    }

    fn no_row(&self) -> Failure {
        Failure::Other(format!(
            "run {} has no such row in {} (cleaned or dropped mid-run?)",
            self.run,
            self.tables.state()
        ))
    }
}

impl<D: Driver> Session for SqlSession<D> {
    fn update(&mut self, slot: u32, event: Option<EventDraft>) -> Result<Applied, UpdateError> {
        let draft = event.map(|e| Draft {
            seq: e.seq,
            invoke_ns: self.share.on_run_clock(e.invoke_ns),
        });
        self.apply(Arg::Int(slot as i64), Some(slot), draft)
    }

    /// See [`Voter`]: the vote row is the event, written in the vote's transaction.
    fn vote(&mut self, ballot: &str) -> Result<Applied, UpdateError> {
        if self.tables != Tables::Poll {
            return Err(UpdateError::Fatal(format!(
                "run {}'s slots are counters, not a poll's options",
                self.run
            )));
        }
        let draft = Draft {
            seq: self.votes,
            invoke_ns: self.share.on_run_clock(crate::clock::now_ns()),
        };
        // Only for the event's hash, and only used once the database found the option: a
        // ballot it accepted is a whole number this parse reads the same way.
        let number = ballot
            .parse::<i64>()
            .ok()
            .and_then(|n| u32::try_from(n).ok());
        let applied = self.apply(Arg::Text(ballot), number, Some(draft))?;
        self.votes += 1;
        Ok(applied)
    }
}

/// A worker's voting session on a poll (`Sql::connect_voter`).
///
/// For the votes workload: `vote(ballot)` per ballot, where `ballot` is the option id as the
/// voter typed it. The database decides: the vote row's checks and foreign key refuse a bad
/// ballot, returned as `UpdateError::Rejected` with the reason the votes workload counts
/// (`non-numeric`, `trailing-garbage`, `out-of-range`; [`BALLOT_CONSTRAINTS`]), and the worker
/// goes on. An accepted vote updates the option with the session's strategy and inserts its
/// vote row (the event: `votes_after` is `Applied::written`) in the same transaction; its
/// `seq` counts this session's accepted votes from 0. `UpdateError::Unknown` and `Fatal` mean
/// what they mean for `Session::update`.
pub struct Voter<D: Driver>(SqlSession<D>);

impl<D: Driver> Voter<D> {
    pub fn vote(&mut self, ballot: &str) -> Result<Applied, UpdateError> {
        Session::vote(&mut self.0, ballot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_render_per_engine() {
        let t = "SELECT x FROM t WHERE run = :1 AND k = :2::bigint AND v = :6 OR k = :2";
        let d = render(t, Placeholders::Dollar);
        assert_eq!(
            d.sql,
            "SELECT x FROM t WHERE run = $1 AND k = $2::bigint AND v = $3 OR k = $2"
        );
        assert_eq!(d.order, vec![1, 2, 6]);
        let q = render(t, Placeholders::Question);
        assert_eq!(
            q.sql,
            "SELECT x FROM t WHERE run = ? AND k = ?::bigint AND v = ? OR k = ?"
        );
        assert_eq!(q.order, vec![1, 2, 6, 2]);
        let p = render("SET v = :3 WHERE run = :1", Placeholders::Pgbench);
        assert_eq!(p.sql, "SET v = :next WHERE run = :run");
    }

    #[test]
    fn a_cast_is_not_an_argument() {
        let b = render("SELECT '1'::int, ':x', :1", Placeholders::Dollar);
        assert_eq!(b.sql, "SELECT '1'::int, ':x', $1");
        assert_eq!(b.order, vec![1]);
    }

    #[test]
    fn ballot_reasons_are_the_votes_workloads() {
        let names: Vec<&str> = crate::workload::Rejection::ALL
            .iter()
            .map(|r| r.name())
            .collect();
        for (constraint, reason) in BALLOT_CONSTRAINTS {
            assert!(names.contains(&reason), "{reason}");
            assert_eq!(rejection(constraint), Some(reason));
            let mariadb = format!("CONSTRAINT `{constraint}` failed for `test`.`racepool_votes`");
            assert_eq!(rejection_in(&mariadb), Some(reason));
        }
        assert_eq!(rejection("racepool_votes_pkey"), None);
        assert_eq!(rejection_in("Duplicate entry"), None);
    }

    #[test]
    fn passwords_are_masked() {
        assert_eq!(
            masked("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(masked("mysql://root@h/db"), "mysql://root@h/db");
        assert_eq!(masked("postgres://h/db"), "postgres://h/db");
    }

    #[test]
    fn the_event_checksum_covers_every_field() {
        let e = Event {
            run: 1,
            worker: 2,
            seq: 3,
            slot: 4,
            read: 5,
            written: 6,
            retries: 7,
            invoke_ns: 8,
            complete_ns: 9,
            hash: 10,
        };
        let base = event_crc(&e);
        let edits: [fn(&mut Event); 10] = [
            |e| e.run += 1,
            |e| e.worker += 1,
            |e| e.seq += 1,
            |e| e.slot += 1,
            |e| e.read += 1,
            |e| e.written += 1,
            |e| e.retries += 1,
            |e| e.invoke_ns += 1,
            |e| e.complete_ns += 1,
            |e| e.hash += 1,
        ];
        for (i, edit) in edits.iter().enumerate() {
            let mut changed = e;
            edit(&mut changed);
            assert_ne!(event_crc(&changed), base, "field {i}");
        }
    }
}
