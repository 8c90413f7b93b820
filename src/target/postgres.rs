//! `--target postgres://USER@HOST:PORT/DB`: the slots are rows of `racepool_slots` (see
//! [`super::sql`] for the tables and each strategy's statements).
//!
//! The client is the synchronous `postgres` crate without TLS. It drives `tokio-postgres` on a
//! current-thread runtime that each `Client` builds when it connects and drops with it: the
//! runtime starts no thread, and exists only in the process that connected (a worker, after
//! the fork; the parent, in a call that closes it before returning).
//!
//! Dialect: `$n` placeholders; `UPDATE … RETURNING` for `atomic`; `pg_advisory_xact_lock` for
//! `advisory` (taken in the transaction, released by its end: nothing can be left held); the
//! ballot checks are POSIX regular expressions (`~`).
//!
//! Retried: 40001 (serialization_failure) and 40P01 (deadlock_detected). Lost (the outcome is
//! unknown): class 08 (connection exceptions), 57P01–57P03 (the backend was terminated, the
//! server shut down or is starting) and any I/O error or closed connection.

use std::time::Duration;

use ::postgres::error::SqlState;
use ::postgres::types::{ToSql, Type};
use ::postgres::{Client, NoTls, Statement};

use super::sql::{
    rejection, AdvisoryLock, Arg, Bound, Cell, Driver, Failure, Isolation, Placeholders,
    SchemaLock, Sql, Tables,
};
use super::TargetKind;

/// The PostgreSQL target.
pub type Postgres = Sql<Pg>;

/// How long a connection attempt may take before the server counts as not answering.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection to PostgreSQL.
pub struct Pg {
    client: Client,
}

fn failure(e: ::postgres::Error) -> Failure {
    let Some(db) = e.as_db_error() else {
        let text = match std::error::Error::source(&e) {
            Some(s) => format!("{e}: {s}"),
            None => e.to_string(),
        };
        let io = std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>());
        return if e.is_closed() || io {
            Failure::Lost(text)
        } else {
            Failure::Other(text)
        };
    };
    let code = db.code();
    let text = format!(
        "{}: {} (SQLSTATE {})",
        db.severity(),
        db.message(),
        code.code()
    );
    if *code == SqlState::T_R_SERIALIZATION_FAILURE || *code == SqlState::T_R_DEADLOCK_DETECTED {
        return Failure::Retry(text);
    }
    if *code == SqlState::CHECK_VIOLATION || *code == SqlState::FOREIGN_KEY_VIOLATION {
        if let Some(reason) = db.constraint().and_then(rejection) {
            return Failure::Rejected(reason);
        }
    }
    let gone = [
        SqlState::ADMIN_SHUTDOWN,
        SqlState::CRASH_SHUTDOWN,
        SqlState::CANNOT_CONNECT_NOW,
    ];
    if code.code().starts_with("08") || gone.contains(code) {
        return Failure::Lost(text);
    }
    Failure::Other(text)
}

fn params<'a>(order: &[usize], args: &'a [Arg<'a>]) -> Vec<&'a (dyn ToSql + Sync)> {
    order
        .iter()
        .map(|&n| match &args[n - 1] {
            Arg::Int(v) => v as &(dyn ToSql + Sync),
            Arg::Text(s) => s as &(dyn ToSql + Sync),
        })
        .collect()
}

fn cell(row: &::postgres::Row, i: usize) -> Result<Cell, ::postgres::Error> {
    let ty = row.columns()[i].type_();
    Ok(if *ty == Type::INT8 {
        row.try_get::<_, Option<i64>>(i)?
            .map_or(Cell::Null, Cell::Int)
    } else if *ty == Type::INT4 {
        row.try_get::<_, Option<i32>>(i)?
            .map_or(Cell::Null, |v| Cell::Int(v.into()))
    } else if *ty == Type::BOOL {
        row.try_get::<_, Option<bool>>(i)?
            .map_or(Cell::Null, |v| Cell::Int(v.into()))
    } else {
        row.try_get::<_, Option<String>>(i)?
            .map_or(Cell::Null, Cell::Text)
    })
}

impl Driver for Pg {
    type Stmt = (Statement, Vec<usize>);
    const KIND: TargetKind = TargetKind::Postgres;
    const PLACEHOLDERS: Placeholders = Placeholders::Dollar;
    const TABLE_SUFFIX: &'static str = "";
    // One bigint key per run and row; a collision between two runs' keys costs only waiting.
    const ADVISORY: AdvisoryLock =
        AdvisoryLock::InTransaction("SELECT pg_advisory_xact_lock(:1::bigint # ({key})::bigint)");
    // The two-int key space, apart from the rows' bigint keys: 'racp', 0.
    const SCHEMA_LOCK: SchemaLock =
        SchemaLock::InTransaction("SELECT pg_advisory_xact_lock(1918985072, 0)");
    const CAPACITY: &'static str = "SELECT current_setting('max_connections')::bigint, \
         CASE WHEN (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN 0 \
         ELSE current_setting('superuser_reserved_connections')::bigint END, \
         (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')";
    const HAS_TABLES: &'static str = "SELECT count(*) FROM information_schema.tables \
         WHERE table_schema = current_schema() AND table_name = 'racepool_runs'";

    fn connect(url: &str, app: &str) -> Result<Pg, Failure> {
        let mut config: ::postgres::Config = url
            .parse()
            .map_err(|e: ::postgres::Error| Failure::Other(format!("not a PostgreSQL URL: {e}")))?;
        if config.get_application_name().is_none() {
            config.application_name(app);
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        config
            .connect(NoTls)
            .map(|client| Pg { client })
            .map_err(failure)
    }

    fn simple(&mut self, sql: &str) -> Result<(), Failure> {
        self.client.batch_execute(sql).map_err(failure)
    }

    fn prepare(&mut self, b: &Bound) -> Result<Self::Stmt, Failure> {
        let st = self.client.prepare(&b.sql).map_err(failure)?;
        Ok((st, b.order.clone()))
    }

    fn row(&mut self, st: &Self::Stmt, args: &[Arg<'_>]) -> Result<Option<[i64; 2]>, Failure> {
        let row = self
            .client
            .query_opt(&st.0, &params(&st.1, args))
            .map_err(failure)?;
        let Some(row) = row else { return Ok(None) };
        let first = row.try_get::<_, i64>(0).map_err(failure)?;
        let second = match row.len() {
            1 => 0,
            _ => row.try_get::<_, i64>(1).map_err(failure)?,
        };
        Ok(Some([first, second]))
    }

    fn exec(&mut self, st: &Self::Stmt, args: &[Arg<'_>]) -> Result<u64, Failure> {
        self.client
            .execute(&st.0, &params(&st.1, args))
            .map_err(failure)
    }

    fn increment(&mut self, st: &Self::Stmt, args: &[Arg<'_>]) -> Result<Option<i64>, Failure> {
        self.row(st, args).map(|r| r.map(|[v, _]| v))
    }

    fn rows(&mut self, b: &Bound, args: &[Arg<'_>]) -> Result<Vec<Vec<Cell>>, Failure> {
        let rows = self
            .client
            .query(&b.sql, &params(&b.order, args))
            .map_err(failure)?;
        rows.iter()
            .map(|r| (0..r.len()).map(|i| cell(r, i)).collect())
            .collect::<Result<_, _>>()
            .map_err(failure)
    }

    fn execute(&mut self, b: &Bound, args: &[Arg<'_>]) -> Result<u64, Failure> {
        self.client
            .execute(&b.sql, &params(&b.order, args))
            .map_err(failure)
    }

    fn isolation_sql(level: Isolation) -> String {
        format!(
            "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL {}",
            level.sql()
        )
    }

    fn regex(col: &str, pattern: &str) -> String {
        format!("({col} ~ '{pattern}')")
    }

    fn increment_sql(t: Tables) -> String {
        let v = t.value();
        format!(
            "UPDATE {} SET {v} = {v} + 1, version = version + 1 WHERE {} RETURNING {v}",
            t.state(),
            t.row::<Pg>()
        )
    }

    fn ballot_to_id() -> String {
        // The cast runs only when the checks passed (PostgreSQL folds a CASE arm whose
        // condition is false away without evaluating it).
        "(CASE WHEN :2::text ~ '^[+-]?[0-9]' AND :2::text !~ '^[+-]?[0-9]+[^0-9]' \
         AND length(:2::text) <= 18 THEN :2::text::bigint ELSE -1 END)"
            .into()
    }
}
