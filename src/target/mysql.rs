//! `--target mysql://USER@HOST:PORT/DB` (MariaDB or MySQL; `mariadb://` too): the slots are
//! rows of `racepool_slots` in InnoDB (see [`super::sql`] for the tables and each strategy's
//! statements).
//!
//! The client is the synchronous `mysql` crate with its default features off: no TLS stack, no
//! connection pool thread, the Rust zlib backend. A `Conn` is a socket and buffers, opened in
//! the process that uses it.
//!
//! Dialect: `?` placeholders (an argument used twice is sent twice); MariaDB has no `UPDATE …
//! RETURNING`, so `atomic` is `SET value = LAST_INSERT_ID(value + 1)`, whose argument the
//! server returns in the statement's OK packet (one round trip, per connection, not visible to
//! other sessions); `advisory` is `GET_LOCK` before `BEGIN` and `RELEASE_LOCK` after the
//! transaction ends, on every path (a lost session's locks die with it); the ballot checks are
//! `REGEXP`.
//!
//! Retried: 1213 (deadlock) and 1205 (lock wait timeout; the transaction is rolled back whole).
//! Lost (the outcome is unknown): I/O errors, 1927 (connection killed), 1053 (server shutdown),
//! 2006 / 2013 (server gone, connection lost).

use std::time::Duration;

use ::mysql::prelude::Queryable;
use ::mysql::{Conn, Opts, OptsBuilder, Params, Statement, Value};

use super::sql::{
    rejection_in, AdvisoryLock, Arg, Bound, Cell, Driver, Failure, Isolation, Placeholders,
    SchemaLock, Sql, Tables,
};
use super::TargetKind;

/// The MariaDB / MySQL target.
pub type Mysql = Sql<My>;

/// How long a connection attempt may take before the server counts as not answering.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection to MariaDB or MySQL.
pub struct My {
    conn: Conn,
}

mod code {
    pub const LOCK_WAIT_TIMEOUT: u16 = 1205;
    pub const DEADLOCK: u16 = 1213;
    pub const NO_REFERENCED_ROW: u16 = 1452;
    pub const CONSTRAINT_FAILED: u16 = 4025;
    pub const SERVER_SHUTDOWN: u16 = 1053;
    pub const CONNECTION_KILLED: u16 = 1927;
    pub const SERVER_GONE: u16 = 2006;
    pub const SERVER_LOST: u16 = 2013;
}

fn failure(e: ::mysql::Error) -> Failure {
    use ::mysql::{DriverError, Error};
    let text = e.to_string();
    match &e {
        Error::MySqlError(m) => match m.code {
            code::DEADLOCK | code::LOCK_WAIT_TIMEOUT => Failure::Retry(text),
            code::CONSTRAINT_FAILED | code::NO_REFERENCED_ROW => {
                rejection_in(&m.message).map_or(Failure::Other(text), Failure::Rejected)
            }
            code::CONNECTION_KILLED
            | code::SERVER_SHUTDOWN
            | code::SERVER_GONE
            | code::SERVER_LOST => Failure::Lost(text),
            _ => Failure::Other(text),
        },
        Error::IoError(_) | Error::CodecError(_) => Failure::Lost(text),
        Error::DriverError(
            DriverError::ConnectTimeout
            | DriverError::CouldNotConnect(_)
            | DriverError::PacketOutOfSync
            | DriverError::UnexpectedPacket,
        ) => Failure::Lost(text),
        _ => Failure::Other(text),
    }
}

fn params(order: &[usize], args: &[Arg<'_>]) -> Params {
    if order.is_empty() {
        return Params::Empty;
    }
    Params::Positional(
        order
            .iter()
            .map(|&n| match args[n - 1] {
                Arg::Int(v) => Value::Int(v),
                Arg::Text(s) => Value::Bytes(s.as_bytes().to_vec()),
            })
            .collect(),
    )
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::UInt(u) => i64::try_from(*u).ok(),
        Value::Bytes(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        _ => None,
    }
}

fn cell(v: &Value) -> Cell {
    match v {
        Value::NULL => Cell::Null,
        Value::Bytes(b) => Cell::Text(String::from_utf8_lossy(b).into_owned()),
        other => int(other).map_or(Cell::Null, Cell::Int),
    }
}

impl Driver for My {
    type Stmt = (Statement, Vec<usize>);
    const KIND: TargetKind = TargetKind::Mysql;
    const PLACEHOLDERS: Placeholders = Placeholders::Question;
    const TABLE_SUFFIX: &'static str = " ENGINE=InnoDB";
    const ADVISORY: AdvisoryLock = AdvisoryLock::Session {
        get: "SELECT GET_LOCK(CONCAT('racepool:', :1, ':', {key}), 60)",
        release: "SELECT RELEASE_LOCK(CONCAT('racepool:', :1, ':', {key}))",
    };
    const SCHEMA_LOCK: SchemaLock = SchemaLock::Session {
        get: "SELECT GET_LOCK('racepool:schema', 60)",
        release: "SELECT RELEASE_LOCK('racepool:schema')",
    };
    const CAPACITY: &'static str = "SELECT @@max_connections, 0, \
         (SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS \
          WHERE VARIABLE_NAME = 'THREADS_CONNECTED')";
    const HAS_TABLES: &'static str = "SELECT COUNT(*) FROM information_schema.TABLES \
         WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'racepool_runs'";

    fn connect(url: &str, _app: &str) -> Result<My, Failure> {
        let url = match url.strip_prefix("mariadb://") {
            Some(rest) => format!("mysql://{rest}"),
            None => url.to_string(),
        };
        let opts =
            Opts::from_url(&url).map_err(|e| Failure::Other(format!("not a MySQL URL: {e}")))?;
        let builder = OptsBuilder::from_opts(opts).tcp_connect_timeout(Some(CONNECT_TIMEOUT));
        Conn::new(builder).map(|conn| My { conn }).map_err(failure)
    }

    fn simple(&mut self, sql: &str) -> Result<(), Failure> {
        self.conn.query_drop(sql).map_err(failure)
    }

    fn prepare(&mut self, b: &Bound) -> Result<Self::Stmt, Failure> {
        let st = self.conn.prep(&b.sql).map_err(failure)?;
        Ok((st, b.order.clone()))
    }

    fn row(&mut self, st: &Self::Stmt, args: &[Arg<'_>]) -> Result<Option<[i64; 2]>, Failure> {
        let row: Option<::mysql::Row> = self
            .conn
            .exec_first(&st.0, params(&st.1, args))
            .map_err(failure)?;
        let Some(row) = row else { return Ok(None) };
        let at = |i: usize| row.as_ref(i).and_then(int);
        let first = at(0).ok_or_else(|| Failure::Other("a NULL where a number was due".into()))?;
        Ok(Some([first, at(1).unwrap_or(0)]))
    }

    fn exec(&mut self, st: &Self::Stmt, args: &[Arg<'_>]) -> Result<u64, Failure> {
        self.conn
            .exec_drop(&st.0, params(&st.1, args))
            .map_err(failure)?;
        Ok(self.conn.affected_rows())
    }

    fn increment(&mut self, st: &Self::Stmt, args: &[Arg<'_>]) -> Result<Option<i64>, Failure> {
        // `LAST_INSERT_ID(expr)` is evaluated only for a matched row: with none, the OK
        // packet's id is stale, so the row count decides.
        Ok(match self.exec(st, args)? {
            0 => None,
            _ => Some(self.conn.last_insert_id() as i64),
        })
    }

    fn rows(&mut self, b: &Bound, args: &[Arg<'_>]) -> Result<Vec<Vec<Cell>>, Failure> {
        let rows: Vec<::mysql::Row> = self
            .conn
            .exec(&b.sql, params(&b.order, args))
            .map_err(failure)?;
        Ok(rows
            .iter()
            .map(|r| {
                (0..r.len())
                    .map(|i| r.as_ref(i).map_or(Cell::Null, cell))
                    .collect()
            })
            .collect())
    }

    fn execute(&mut self, b: &Bound, args: &[Arg<'_>]) -> Result<u64, Failure> {
        self.conn
            .exec_drop(&b.sql, params(&b.order, args))
            .map_err(failure)?;
        Ok(self.conn.affected_rows())
    }

    fn isolation_sql(level: Isolation) -> String {
        format!("SET SESSION TRANSACTION ISOLATION LEVEL {}", level.sql())
    }

    fn regex(col: &str, pattern: &str) -> String {
        format!("({col} REGEXP '{pattern}')")
    }

    fn increment_sql(t: Tables) -> String {
        let v = t.value();
        format!(
            "UPDATE {} SET {v} = LAST_INSERT_ID({v} + 1), version = version + 1 WHERE {}",
            t.state(),
            t.row::<My>()
        )
    }

    fn ballot_to_id() -> String {
        "(CASE WHEN :2 REGEXP '^[+-]?[0-9]' AND NOT (:2 REGEXP '^[+-]?[0-9]+[^0-9]') \
         AND CHAR_LENGTH(:2) <= 18 THEN CAST(:2 AS SIGNED) ELSE -1 END)"
            .into()
    }
}
