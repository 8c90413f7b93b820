//! MariaDB (or MySQL) as the meeting place: the same two tables as PostgreSQL's ([`super::db`]),
//! in InnoDB, and the same steps, each decision taken in a transaction holding the run's row
//! `FOR UPDATE`.
//!
//! | table | one row per | columns |
//! | --- | --- | --- |
//! | `racepool_join_runs` | joined run (by name) | plan (JSON), hosts, run (the slots' run id), slots_ready, release_us, reported_by, created_us |
//! | `racepool_join_hosts` | host of a run | host, idx, pid, workers, seed, registered_us, clock_offset_ns, rtt_ns, state, heartbeat_us, progress (JSON), figures (JSON), histogram (HdrHistogram V2), finished_us, note |
//!
//! Times are µs since the epoch on the server's clock, `SYSDATE(6)` (the moment the function
//! runs, not the statement's start as `NOW(6)`), kept as integers. The DDL (which commits
//! implicitly in MariaDB) runs before the registration's transaction, under `GET_LOCK`. Every
//! coordination session reads committed data (`READ COMMITTED`): a loop's next look sees what
//! the other hosts committed since.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ::mysql::prelude::Queryable;
use ::mysql::{Conn, Opts, OptsBuilder, Row};

use super::meeting::{Meeting, Registration, Seat};
use super::plan::{first_difference, host_seed, Join};
use super::report::{histogram_of, Figures, Host, Stored};
use crate::error::Error;
use crate::target::sql::masked;

/// How far ahead of "every host is ready" the release is set (as PostgreSQL's).
pub const RELEASE_LEAD: Duration = Duration::from_millis(250);
/// How often a waiting host looks.
const POLL: Duration = Duration::from_millis(5);
/// How often a running host says it is alive.
pub const HEARTBEAT: Duration = Duration::from_millis(100);

/// The server's clock, µs since the epoch.
const NOW_US: &str = "CAST(UNIX_TIMESTAMP(SYSDATE(6)) * 1000000 AS SIGNED)";

const SCHEMA: [&str; 2] = [
    "CREATE TABLE IF NOT EXISTS racepool_join_runs (name VARCHAR(63) NOT NULL PRIMARY KEY, \
     plan LONGTEXT NOT NULL, hosts INT NOT NULL, run BIGINT NOT NULL, \
     slots_ready BOOLEAN NOT NULL DEFAULT false, release_us BIGINT NULL, \
     reported_by VARCHAR(255) NULL, created_us BIGINT NOT NULL) ENGINE=InnoDB",
    "CREATE TABLE IF NOT EXISTS racepool_join_hosts (name VARCHAR(63) NOT NULL, \
     host VARCHAR(255) NOT NULL, idx INT NOT NULL, pid BIGINT NOT NULL, workers BIGINT NOT NULL, \
     seed BIGINT NOT NULL, registered_us BIGINT NOT NULL, clock_offset_ns BIGINT NOT NULL, \
     rtt_ns BIGINT NOT NULL, state VARCHAR(16) NOT NULL, heartbeat_us BIGINT NOT NULL, \
     progress LONGTEXT NULL, figures LONGTEXT NULL, histogram LONGBLOB NULL, \
     finished_us BIGINT NULL, note TEXT NULL, PRIMARY KEY (name, host), UNIQUE (name, idx), \
     FOREIGN KEY (name) REFERENCES racepool_join_runs (name) ON DELETE CASCADE) ENGINE=InnoDB",
];

/// Serializes the join tables' DDL and `clean`.
const SCHEMA_LOCK: &str = "SELECT GET_LOCK('racepool:join-schema', 60)";
const SCHEMA_UNLOCK: &str = "SELECT RELEASE_LOCK('racepool:join-schema')";

/// MariaDB as a joined run's meeting place (see the module doc).
pub struct InnoTables {
    pub url: String,
}

type Db = ::mysql::Error;

/// Opens a coordination connection (closed when dropped; a transaction left open with it is
/// rolled back by the server).
fn connect(url: &str) -> Result<Conn, String> {
    let url = match url.strip_prefix("mariadb://") {
        Some(rest) => format!("mysql://{rest}"),
        None => url.to_string(),
    };
    let opts = Opts::from_url(&url).map_err(|e| format!("not a MySQL URL: {e}"))?;
    let builder = OptsBuilder::from_opts(opts).tcp_connect_timeout(Some(Duration::from_secs(10)));
    let mut c = Conn::new(builder).map_err(|e| e.to_string())?;
    c.query_drop("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        .map_err(|e| e.to_string())?;
    Ok(c)
}

fn now_us(c: &mut Conn) -> Result<i64, Db> {
    Ok(c.query_first(format!("SELECT {NOW_US}"))?.unwrap_or(0))
}

/// The clock offset: the quickest of a few round trips, as PostgreSQL's.
fn clock_offset(c: &mut Conn) -> Result<(i64, i64), Db> {
    let mut best: Option<(i64, i64)> = None;
    for _ in 0..5 {
        let t0 = crate::clock::realtime_ns();
        let db = now_us(c)? as i128 * 1000;
        let t1 = crate::clock::realtime_ns();
        let rtt = (t1 - t0) as i64;
        let offset = (db - (t0 + t1) / 2) as i64;
        if best.is_none_or(|(_, r)| rtt < r) {
            best = Some((offset, rtt));
        }
    }
    Ok(best.expect("measured at least once"))
}

fn schema(c: &mut Conn) -> Result<(), Db> {
    c.query_drop(SCHEMA_LOCK)?;
    let made = SCHEMA.iter().try_for_each(|d| c.query_drop(d));
    let unlocked = c.query_drop(SCHEMA_UNLOCK);
    made.and(unlocked)
}

/// Runs `body` in a transaction: committed when it returns Ok, rolled back otherwise; again
/// (at most 20 times) when InnoDB picked it as a deadlock's victim or its lock wait timed
/// out, which rolled it back whole.
fn tx<T>(c: &mut Conn, mut body: impl FnMut(&mut Conn) -> Result<T, Db>) -> Result<T, Db> {
    let mut tries = 0;
    loop {
        c.query_drop("START TRANSACTION")?;
        let r = body(c).and_then(|v| c.query_drop("COMMIT").map(|()| v));
        match r {
            Ok(v) => return Ok(v),
            Err(e) => {
                let _ = c.query_drop("ROLLBACK");
                let again =
                    matches!(&e, ::mysql::Error::MySqlError(m) if m.code == 1213 || m.code == 1205);
                tries += 1;
                if !again || tries >= 20 {
                    return Err(e);
                }
                std::thread::sleep(POLL);
            }
        }
    }
}

/// Holds the named lock of the joined run `name` (a session lock: it dies with a lost
/// connection) while `body` runs: registrations take turns, so two first hosts never
/// deadlock inserting the same run.
fn run_lock<T>(
    c: &mut Conn,
    name: &str,
    body: impl FnOnce(&mut Conn) -> Result<T, Db>,
) -> Result<T, Db> {
    let key = format!("racepool:join:{name}");
    c.exec_drop("SELECT GET_LOCK(?, 60)", (&key,))?;
    let r = body(c);
    let _ = c.exec_drop("SELECT RELEASE_LOCK(?)", (&key,));
    r
}

impl InnoTables {
    fn target_error(&self, join: &Join, m: impl std::fmt::Display) -> Error {
        Error::Target(format!("--join {}: {}: {m}", join.name, masked(&self.url)))
    }

    fn failed_error(&self, join: &Join, m: impl std::fmt::Display) -> Error {
        Error::Join(format!("--join {}: {}: {m}", join.name, masked(&self.url)))
    }

    fn has_tables(c: &mut Conn) -> Result<bool, Db> {
        let n: Option<i64> = c.query_first(
            "SELECT COUNT(*) FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'racepool_join_runs'",
        )?;
        Ok(n.unwrap_or(0) > 0)
    }

    /// Hosts of the run as (host, state, note), in registration order.
    fn hosts(c: &mut Conn, name: &str) -> Result<Vec<(String, String, Option<String>)>, Db> {
        c.exec(
            "SELECT host, state, note FROM racepool_join_hosts WHERE name = ? ORDER BY idx",
            (name,),
        )
    }

    fn mark_failed(c: &mut Conn, name: &str, me: &str, why: &str) -> Result<(), Db> {
        c.exec_drop(
            format!(
                "UPDATE racepool_join_hosts SET state = 'failed', note = ?, finished_us = {NOW_US} \
                 WHERE name = ? AND host = ? AND state IN ('registered', 'ready', 'running')"
            ),
            (why, name, me),
        )
    }
}

/// What registration found.
enum Joined {
    Ok(Registration),
    Refused(Error),
}

impl Meeting for InnoTables {
    fn register(
        &self,
        join: &Join,
        plan: &str,
        me: &str,
        workers: usize,
        seed: u64,
    ) -> Result<Registration, Error> {
        let mut c = connect(&self.url).map_err(|m| self.target_error(join, m))?;
        let db = |e: Db| self.target_error(join, e);
        let (offset_ns, rtt_ns) = clock_offset(&mut c).map_err(db)?;
        schema(&mut c).map_err(db)?;
        let fresh = crate::store::RunStore::new_run_id() as i64;
        let r = run_lock(&mut c, &join.name, |c| tx(c, |c| {
            // Locked first, inserted only when missing (registrations take turns under the
            // run's named lock): an INSERT that finds the row would hold a shared lock and
            // deadlock upgrading it against a host polling the row at the barrier.
            let select = "SELECT plan, run, release_us, hosts FROM racepool_join_runs \
                          WHERE name = ? FOR UPDATE";
            let mut row: Option<(String, i64, Option<i64>, u32)> =
                c.exec_first(select, (&join.name,))?;
            let creator = row.is_none();
            if creator {
                c.exec_drop(
                    format!(
                        "INSERT INTO racepool_join_runs (name, plan, hosts, run, created_us) \
                         VALUES (?, ?, ?, ?, {NOW_US})"
                    ),
                    (&join.name, plan, join.hosts, fresh),
                )?;
                row = c.exec_first(select, (&join.name,))?;
            }
            let (their_plan, run, release, hosts) = row.unwrap_or_default();
            if their_plan != plan {
                let flag = first_difference(plan, &their_plan).unwrap_or("the plan".into());
                return Ok(Joined::Refused(Error::Usage(format!(
                    "--join {}: this host's flags differ from the run's: {flag}",
                    join.name
                ))));
            }
            if release.is_some() {
                return Ok(Joined::Refused(Error::Usage(format!(
                    "--join {}: that run has started already (its hosts were released); join a new name, or remove it with torture clean --run {run}",
                    join.name
                ))));
            }
            let taken: Vec<String> = c.exec(
                "SELECT host FROM racepool_join_hosts WHERE name = ? ORDER BY idx",
                (&join.name,),
            )?;
            if taken.len() >= hosts as usize {
                return Ok(Joined::Refused(Error::Usage(format!(
                    "--join {}: the run has its {hosts} host(s) already ({})",
                    join.name,
                    taken.join(", ")
                ))));
            }
            let index = taken.len() as u32;
            c.exec_drop(
                format!(
                    "INSERT INTO racepool_join_hosts (name, host, idx, pid, workers, seed, \
                     registered_us, clock_offset_ns, rtt_ns, state, heartbeat_us) \
                     VALUES (?, ?, ?, ?, ?, ?, {NOW_US}, ?, ?, 'registered', {NOW_US})"
                ),
                (
                    &join.name,
                    me,
                    index,
                    std::process::id(),
                    workers as i64,
                    host_seed(seed, index) as i64,
                    offset_ns,
                    rtt_ns,
                ),
            )?;
            Ok(Joined::Ok(Registration {
                run: run as u64,
                index,
                creator,
                offset_ns,
                rtt_ns,
            }))
        }))
        .map_err(db)?;
        match r {
            Joined::Ok(reg) => Ok(reg),
            Joined::Refused(e) => Err(e),
        }
    }

    fn withdraw(&self, _join: &Join, run: u64) {
        let _ = self.clean(Some(run));
    }

    fn slots_ready(&self, join: &Join) -> Result<(), Error> {
        let mut c = connect(&self.url).map_err(|m| self.failed_error(join, m))?;
        c.exec_drop(
            "UPDATE racepool_join_runs SET slots_ready = true WHERE name = ?",
            (&join.name,),
        )
        .map_err(|e| self.failed_error(join, e))
    }

    fn wait_for_slots(&self, join: &Join, me: &str) -> Result<(), Error> {
        let mut c = connect(&self.url).map_err(|m| self.failed_error(join, m))?;
        let db = |e: Db| self.failed_error(join, e);
        let deadline = Instant::now() + join.timeout;
        loop {
            let ready: Option<bool> = c
                .exec_first(
                    "SELECT slots_ready FROM racepool_join_runs WHERE name = ?",
                    (&join.name,),
                )
                .map_err(db)?;
            match ready {
                Some(true) => return Ok(()),
                None => {
                    return Err(self.failed_error(
                        join,
                        "the run's row is gone (its creator withdrew, or it was cleaned)",
                    ))
                }
                Some(false) => {}
            }
            let failed: Vec<String> = InnoTables::hosts(&mut c, &join.name)
                .map_err(db)?
                .into_iter()
                .filter(|h| h.1 == "failed")
                .map(|h| format!("{}: {}", h.0, h.2.unwrap_or_default()))
                .collect();
            if !failed.is_empty() {
                return Err(self.failed_error(
                    join,
                    format!("a host failed before the start: {}", failed.join("; ")),
                ));
            }
            if Instant::now() > deadline || crate::pool::interrupted() {
                return Err(self.failed_error(join, super::meeting::slots_late(join, me)));
            }
            std::thread::sleep(POLL);
        }
    }

    fn failed(&self, join: &Join, me: &str, why: &str) {
        if let Ok(mut c) = connect(&self.url) {
            let _ = InnoTables::mark_failed(&mut c, &join.name, me, why);
        }
    }

    fn meet(&self, co: &Seat) -> Result<i128, Error> {
        let join = &co.join;
        let fail = |m: String| self.failed_error(join, m);
        let mut c = connect(&self.url).map_err(fail)?;
        let db = |e: Db| self.failed_error(join, e);
        c.exec_drop(
            format!(
                "UPDATE racepool_join_hosts SET state = 'ready', heartbeat_us = {NOW_US} \
                 WHERE name = ? AND host = ?"
            ),
            (&join.name, &co.me),
        )
        .map_err(db)?;
        let deadline = Instant::now() + join.timeout;
        let lead = RELEASE_LEAD.as_micros() as i64;
        enum Step {
            Go(i64),
            Fail(String, bool),
            Wait,
        }
        loop {
            let step = tx(&mut c, |c| {
                let release: Option<Option<i64>> = c.exec_first(
                    "SELECT release_us FROM racepool_join_runs WHERE name = ? FOR UPDATE",
                    (&join.name,),
                )?;
                let Some(release) = release else {
                    return Ok(Step::Fail(
                        "the run's row is gone (removed by torture clean?)".into(),
                        false,
                    ));
                };
                if let Some(at) = release {
                    return Ok(Step::Go(at));
                }
                let hosts = InnoTables::hosts(c, &join.name)?;
                if hosts.iter().filter(|h| h.1 == "ready").count() == join.hosts as usize {
                    c.exec_drop(
                        format!(
                            "UPDATE racepool_join_runs SET release_us = {NOW_US} + ? WHERE name = ?"
                        ),
                        (lead, &join.name),
                    )?;
                    let at: Option<Option<i64>> = c.exec_first(
                        "SELECT release_us FROM racepool_join_runs WHERE name = ?",
                        (&join.name,),
                    )?;
                    return Ok(Step::Go(at.flatten().unwrap_or(0)));
                }
                let gave_up = hosts.iter().find(|h| h.1 == "failed" && h.0 != co.me);
                let late = Instant::now() > deadline;
                if gave_up.is_none() && !late && !crate::pool::interrupted() {
                    return Ok(Step::Wait);
                }
                let why = match gave_up {
                    Some((h, _, note)) => super::meeting::gave_up(h, note.as_deref()),
                    None if late => super::meeting::missing(
                        join,
                        &hosts
                            .iter()
                            .map(|h| (h.0.clone(), h.1.clone()))
                            .collect::<Vec<_>>(),
                    ),
                    None => super::meeting::INTERRUPTED.into(),
                };
                InnoTables::mark_failed(c, &join.name, &co.me, &why)?;
                Ok(Step::Fail(why, gave_up.is_none() && !late))
            })
            .map_err(db)?;
            match step {
                Step::Go(at) => return Ok(at as i128 * 1000 - co.reg.offset_ns as i128),
                Step::Fail(why, true) if crate::pool::interrupted() => {
                    return Err(Error::Interrupted(format!("--join {}: {why}", join.name)))
                }
                Step::Fail(why, _) => return Err(fail(why)),
                Step::Wait => std::thread::sleep(POLL),
            }
        }
    }

    fn beat(&self, co: &Seat, completed: &dyn Fn() -> Vec<u64>, stop: &AtomicBool) {
        let mut conn: Option<Conn> = None;
        let sql = format!(
            "UPDATE racepool_join_hosts SET heartbeat_us = {NOW_US}, progress = ?, \
             state = CASE WHEN state = 'ready' THEN 'running' ELSE state END \
             WHERE name = ? AND host = ?"
        );
        // SeqCst: pairs with the runner's store that ends the heartbeat.
        while !stop.load(Ordering::SeqCst) {
            if conn.is_none() {
                conn = connect(&self.url).ok();
            }
            if let Some(c) = conn.as_mut() {
                let progress = serde_json::to_string(&completed()).expect("numbers serialise");
                if c.exec_drop(&sql, (progress, &co.join.name, &co.me))
                    .is_err()
                {
                    conn = None;
                }
            }
            let until = Instant::now() + HEARTBEAT;
            while Instant::now() < until && !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    fn finish(&self, co: &Seat, figures: Figures, histogram: Vec<u8>) -> Result<String, Error> {
        let join = &co.join;
        let mut c = connect(&self.url).map_err(|m| self.failed_error(join, m))?;
        let db = |e: Db| self.failed_error(join, e);
        c.exec_drop(
            format!(
                "UPDATE racepool_join_hosts SET state = 'done', figures = ?, histogram = ?, \
                 progress = ?, finished_us = {NOW_US}, heartbeat_us = {NOW_US} \
                 WHERE name = ? AND host = ?"
            ),
            (
                serde_json::to_string(&figures).expect("figures serialise"),
                histogram,
                serde_json::to_string(&figures.completed).expect("numbers serialise"),
                &join.name,
                &co.me,
            ),
        )
        .map_err(db)?;
        let silence = join.timeout.as_micros() as i64;
        let note = format!("no heartbeat for {} s", join.timeout.as_secs_f64());
        loop {
            let by = tx(&mut c, |c| {
                let by: Option<Option<String>> = c.exec_first(
                    "SELECT reported_by FROM racepool_join_runs WHERE name = ? FOR UPDATE",
                    (&join.name,),
                )?;
                if let Some(Some(by)) = by {
                    return Ok(Some(by));
                }
                c.exec_drop(
                    format!(
                        "UPDATE racepool_join_hosts SET state = 'dead', note = ? \
                         WHERE name = ? AND state IN ('registered', 'ready', 'running') \
                         AND heartbeat_us < {NOW_US} - ?"
                    ),
                    (&note, &join.name, silence),
                )?;
                let open: Option<i64> = c.exec_first(
                    "SELECT COUNT(*) FROM racepool_join_hosts WHERE name = ? \
                     AND state IN ('registered', 'ready', 'running')",
                    (&join.name,),
                )?;
                if open.unwrap_or(0) == 0 {
                    c.exec_drop(
                        "UPDATE racepool_join_runs SET reported_by = ? WHERE name = ?",
                        (&co.me, &join.name),
                    )?;
                    return Ok(Some(co.me.clone()));
                }
                c.exec_drop(
                    format!(
                        "UPDATE racepool_join_hosts SET heartbeat_us = {NOW_US} \
                         WHERE name = ? AND host = ?"
                    ),
                    (&join.name, &co.me),
                )?;
                Ok(None)
            })
            .map_err(db)?;
            if let Some(by) = by {
                return Ok(by);
            }
            if crate::pool::interrupted() {
                // This host's figures are written: the others judge without waiting for it.
                return Err(Error::Interrupted(format!(
                    "--join {}: interrupted while waiting for the other hosts; torture report --run {} prints the verdict once they are done",
                    join.name, join.name
                )));
            }
            std::thread::sleep(POLL * 4);
        }
    }

    fn load(&self, name: &str) -> Result<Stored, Error> {
        let fail = |m: String| Error::Target(format!("{}: {m}", masked(&self.url)));
        let mut c = connect(&self.url).map_err(fail)?;
        let db = |e: Db| fail(e.to_string());
        /// plan, hosts, run, release_us, reported_by.
        type RunRow = (String, u32, i64, Option<i64>, Option<String>);
        let row: Option<RunRow> = if InnoTables::has_tables(&mut c).map_err(db)? {
            c.exec_first(
                "SELECT plan, hosts, run, release_us, reported_by FROM racepool_join_runs \
                     WHERE name = ?",
                (name,),
            )
            .map_err(db)?
        } else {
            None
        };
        let Some((plan, hosts_planned, run, release_us, reported_by)) = row else {
            return Err(Error::Usage(format!(
                "--run {name}: {} holds no joined run of that name",
                masked(&self.url)
            )));
        };
        let rows: Vec<Row> = c
            .exec(
                "SELECT host, idx, pid, workers, seed, clock_offset_ns, rtt_ns, state, note, \
                 progress, figures, histogram FROM racepool_join_hosts WHERE name = ? ORDER BY idx",
                (name,),
            )
            .map_err(db)?;
        let mut hosts = Vec::new();
        let mut histograms = Vec::new();
        for r in rows {
            let text = |i: usize| r.get::<Option<String>, _>(i).flatten();
            let int = |i: usize| r.get::<Option<i64>, _>(i).flatten().unwrap_or(0);
            if let Some(h) = r
                .get::<Option<Vec<u8>>, _>(11)
                .flatten()
                .and_then(|b| histogram_of(&b))
            {
                histograms.push(h);
            }
            hosts.push(Host::recorded(
                text(0).unwrap_or_default(),
                int(1) as u32,
                int(2),
                int(3) as usize,
                int(4) as u64,
                int(5),
                int(6),
                text(7).unwrap_or_default(),
                text(8),
                text(10).and_then(|f| serde_json::from_str(&f).ok()),
                text(9)
                    .and_then(|p| serde_json::from_str(&p).ok())
                    .unwrap_or_default(),
            ));
        }
        let finals: Vec<u32> = c
            .exec::<i64, _, _>(
                "SELECT value FROM racepool_slots WHERE run = ? ORDER BY slot",
                (run,),
            )
            .map_err(db)?
            .into_iter()
            .map(|v| u32::try_from(v).unwrap_or(u32::MAX))
            .collect();
        Ok(Stored {
            name: name.into(),
            url: masked(&self.url),
            plan,
            hosts_planned,
            run: run as u64,
            release_ns: release_us.map(|us| us * 1000),
            reported_by,
            hosts,
            histograms,
            finals,
        })
    }

    fn clean(&self, run: Option<u64>) -> Result<u64, Error> {
        let fail = |m: String| Error::Target(format!("{}: {m}", masked(&self.url)));
        let mut c = connect(&self.url).map_err(fail)?;
        let db = |e: Db| fail(e.to_string());
        if !InnoTables::has_tables(&mut c).map_err(db)? {
            return Ok(0);
        }
        c.query_drop(SCHEMA_LOCK).map_err(db)?;
        let r = (|| {
            match run {
                Some(r) => {
                    c.exec_drop("DELETE FROM racepool_join_runs WHERE run = ?", (r as i64,))?
                }
                None => c.query_drop("DELETE FROM racepool_join_runs")?,
            }
            let removed = c.affected_rows();
            let left: Option<i64> = c.query_first("SELECT COUNT(*) FROM racepool_join_runs")?;
            if left.unwrap_or(0) == 0 {
                c.query_drop("DROP TABLE IF EXISTS racepool_join_hosts")?;
                c.query_drop("DROP TABLE IF EXISTS racepool_join_runs")?;
            }
            Ok(removed)
        })();
        let _ = c.query_drop(SCHEMA_UNLOCK);
        r.map_err(db)
    }
}
