//! The rendezvous in the database: two tables and the statements each step runs.
//!
//! | table | one row per | columns |
//! | --- | --- | --- |
//! | `racepool_join_runs` | joined run (by name) | plan (JSON), plan_hash, hosts, run (the slots' run id), slots_ready, release_at, reported_by, created_at |
//! | `racepool_join_hosts` | host of a run | host, idx (order of registration), pid, workers, seed, registered_at, clock_offset_ns, rtt_ns, state, heartbeat_at, progress (JSON), figures (JSON), histogram (HdrHistogram V2), finished_at |
//!
//! A host's `state`: `registered` -> `ready` (its workers stand at its barrier) -> `running`
//! (released; heartbeats) -> `done` (figures written), or `failed` (it gave up, saying why) or
//! `dead` (its heartbeat stopped for `--join-timeout`; written by another host).
//!
//! Every decision that must be taken once (who creates the run, when to release, who is
//! dead, who reports) is taken in a transaction holding the run's row `FOR UPDATE`, so two
//! hosts never take it differently. Every time is the database's `clock_timestamp()`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use postgres::{Client, NoTls, Transaction};

use super::meeting::{Meeting, Registration, Seat};
use super::plan::Join;
use super::report::{histogram_of, Figures, Host, Stored};
use crate::error::Error;
use crate::target::sql::masked;

/// How far ahead of "every host is ready" the release is set: every host polls every few ms
/// and must read it before it passes (two cores shared by several parents in the tests).
pub const RELEASE_LEAD: Duration = Duration::from_millis(250);
/// How often a waiting host looks.
const POLL: Duration = Duration::from_millis(5);
/// How often a running host says it is alive.
pub const HEARTBEAT: Duration = Duration::from_millis(100);

/// Serializes the join tables' DDL and `clean` (the two-int advisory key space: 'racp', 1).
const SCHEMA_LOCK: &str = "SELECT pg_advisory_xact_lock(1918985072, 1)";

const SCHEMA: [&str; 2] = [
    "CREATE TABLE IF NOT EXISTS racepool_join_runs (name TEXT PRIMARY KEY, plan TEXT NOT NULL, \
     plan_hash BIGINT NOT NULL, hosts INT NOT NULL, run BIGINT NOT NULL, \
     slots_ready BOOLEAN NOT NULL DEFAULT false, release_at TIMESTAMPTZ, reported_by TEXT, \
     created_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp())",
    "CREATE TABLE IF NOT EXISTS racepool_join_hosts (name TEXT NOT NULL \
     REFERENCES racepool_join_runs (name) ON DELETE CASCADE, host TEXT NOT NULL, \
     idx INT NOT NULL, pid BIGINT NOT NULL, workers BIGINT NOT NULL, seed BIGINT NOT NULL, \
     registered_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(), \
     clock_offset_ns BIGINT NOT NULL, rtt_ns BIGINT NOT NULL, state TEXT NOT NULL, \
     heartbeat_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(), progress TEXT, \
     figures TEXT, histogram BYTEA, finished_at TIMESTAMPTZ, note TEXT, \
     PRIMARY KEY (name, host), UNIQUE (name, idx))",
];

/// `ts` as ns since the Unix epoch (PostgreSQL keeps µs).
pub const EPOCH_NS: &str = "(extract(epoch FROM {}) * 1000000)::bigint * 1000";

fn epoch_ns(col: &str) -> String {
    EPOCH_NS.replace("{}", col)
}

/// Opens a coordination connection.
pub fn connect(url: &str, app: &str) -> Result<Client, String> {
    let mut config: postgres::Config = url
        .parse()
        .map_err(|e: postgres::Error| format!("not a PostgreSQL URL: {e}"))?;
    config.application_name(app);
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
    config.connect(NoTls).map_err(|e| describe(&e))
}

fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => match std::error::Error::source(e) {
            Some(s) => format!("{e}: {s}"),
            None => e.to_string(),
        },
    }
}

/// Measures the database's clock against CLOCK_REALTIME: the midpoint of the quickest of a
/// few `SELECT clock_timestamp()` round trips. Returns (offset, round trip) in ns.
pub fn clock_offset(c: &mut Client) -> Result<(i64, i64), postgres::Error> {
    let sql = format!("SELECT {}", epoch_ns("clock_timestamp()"));
    let st = c.prepare(&sql)?;
    let mut best: Option<(i64, i64)> = None;
    for _ in 0..5 {
        let t0 = crate::clock::realtime_ns();
        let db: i64 = c.query_one(&st, &[])?.get(0);
        let t1 = crate::clock::realtime_ns();
        let rtt = (t1 - t0) as i64;
        let offset = (db as i128 - (t0 + t1) / 2) as i64;
        if best.is_none_or(|(_, r)| rtt < r) {
            best = Some((offset, rtt));
        }
    }
    Ok(best.expect("measured at least once"))
}

fn schema(tx: &mut Transaction<'_>) -> Result<(), postgres::Error> {
    tx.batch_execute(SCHEMA_LOCK)?;
    for d in SCHEMA {
        tx.batch_execute(d)?;
    }
    Ok(())
}

fn target_error(join: &Join, m: impl std::fmt::Display) -> Error {
    Error::Target(format!("--join {}: {}: {m}", join.name, masked(&join.url)))
}

fn failed_error(join: &Join, m: impl std::fmt::Display) -> Error {
    Error::Join(format!("--join {}: {}: {m}", join.name, masked(&join.url)))
}

/// Registers this host in the run `join.name`, creating the run if it is the first: the plan
/// must be the run's (else `Error::Usage` naming the first differing flag), the run must not
/// have started, and must not have its hosts already.
pub fn register(
    join: &Join,
    plan: &str,
    me: &str,
    workers: usize,
    seed: u64,
) -> Result<Registration, Error> {
    let mut c = connect(&join.url, &format!("racepool/join/{}", join.name))
        .map_err(|m| target_error(join, m))?;
    let (offset_ns, rtt_ns) = clock_offset(&mut c).map_err(|e| target_error(join, describe(&e)))?;
    let mut tx = c
        .transaction()
        .map_err(|e| target_error(join, describe(&e)))?;
    let r = (|| -> Result<Result<Registration, Error>, postgres::Error> {
        schema(&mut tx)?;
        let hash = crc32c::crc32c(plan.as_bytes()) as i64;
        let fresh = crate::store::RunStore::new_run_id();
        let created = tx.query_opt(
            "INSERT INTO racepool_join_runs (name, plan, plan_hash, hosts, run) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO NOTHING RETURNING run",
            &[
                &join.name,
                &plan,
                &hash,
                &(join.hosts as i32),
                &(fresh as i64),
            ],
        )?;
        let creator = created.is_some();
        let row = tx.query_one(
            "SELECT plan, plan_hash, run, release_at IS NOT NULL, hosts \
             FROM racepool_join_runs WHERE name = $1 FOR UPDATE",
            &[&join.name],
        )?;
        let (their_plan, their_hash, run, started, hosts): (String, i64, i64, bool, i32) =
            (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
        if their_hash != hash || their_plan != plan {
            let flag =
                super::plan::first_difference(plan, &their_plan).unwrap_or("the plan".into());
            return Ok(Err(Error::Usage(format!(
                "--join {}: this host's flags differ from the run's: {flag}",
                join.name
            ))));
        }
        if started {
            return Ok(Err(Error::Usage(format!(
                "--join {}: that run has started already (its hosts were released); join a new name, or remove it with torture clean --run {run}",
                join.name
            ))));
        }
        let taken: Vec<String> = tx
            .query(
                "SELECT host FROM racepool_join_hosts WHERE name = $1 ORDER BY idx",
                &[&join.name],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if taken.len() as i64 >= hosts as i64 {
            return Ok(Err(Error::Usage(format!(
                "--join {}: the run has its {hosts} host(s) already ({})",
                join.name,
                taken.join(", ")
            ))));
        }
        let index = taken.len() as u32;
        tx.execute(
            "INSERT INTO racepool_join_hosts (name, host, idx, pid, workers, seed, \
             clock_offset_ns, rtt_ns, state) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'registered')",
            &[
                &join.name,
                &me,
                &(index as i32),
                &(std::process::id() as i64),
                &(workers as i64),
                &(super::plan::host_seed(seed, index) as i64),
                &offset_ns,
                &rtt_ns,
            ],
        )?;
        Ok(Ok(Registration {
            run: run as u64,
            index,
            creator,
            offset_ns,
            rtt_ns,
        }))
    })();
    match r {
        Ok(Ok(reg)) => {
            tx.commit().map_err(|e| target_error(join, describe(&e)))?;
            Ok(reg)
        }
        Ok(Err(e)) => Err(e),
        Err(e) => Err(target_error(join, describe(&e))),
    }
}

/// The creator made the run's slots: the other hosts may fork.
pub fn slots_ready(join: &Join) -> Result<(), Error> {
    let mut c = connect(&join.url, "racepool/join").map_err(|m| failed_error(join, m))?;
    c.execute(
        "UPDATE racepool_join_runs SET slots_ready = true WHERE name = $1",
        &[&join.name],
    )
    .map_err(|e| failed_error(join, describe(&e)))?;
    Ok(())
}

/// Waits (at most `--join-timeout`) until the run's creator made its slots: a worker
/// prepares its statements on them when it connects.
pub fn wait_for_slots(join: &Join, me: &str) -> Result<(), Error> {
    let mut c = connect(&join.url, "racepool/join").map_err(|m| failed_error(join, m))?;
    let deadline = Instant::now() + join.timeout;
    loop {
        let row = c
            .query_one(
                "SELECT r.slots_ready, (SELECT string_agg(h.host || ': ' || coalesce(h.note, ''), '; ') \
                 FROM racepool_join_hosts h WHERE h.name = r.name AND h.state = 'failed') \
                 FROM racepool_join_runs r WHERE r.name = $1",
                &[&join.name],
            )
            .map_err(|e| failed_error(join, describe(&e)))?;
        if row.get::<_, bool>(0) {
            return Ok(());
        }
        if let Some(f) = row.get::<_, Option<String>>(1) {
            return Err(failed_error(
                join,
                format!("a host failed before the start: {f}"),
            ));
        }
        if Instant::now() > deadline || crate::pool::interrupted() {
            return Err(failed_error(join, super::meeting::slots_late(join, me)));
        }
        std::thread::sleep(POLL);
    }
}

/// Best effort: says this host gave up, and why, so the others stop waiting for it.
pub fn failed(join: &Join, me: &str, why: &str) {
    if let Ok(mut c) = connect(&join.url, "racepool/join") {
        let _ = c.execute(
            "UPDATE racepool_join_hosts SET state = 'failed', note = $3, \
             finished_at = clock_timestamp() WHERE name = $1 AND host = $2 \
             AND state IN ('registered', 'ready', 'running')",
            &[&join.name, &me, &why],
        );
    }
}

/// Best effort: the creator was refused before anything was made: the run goes (a host
/// that joined it meanwhile then fails too), and the tables with it when no run is left.
pub fn withdraw(join: &Join, run: u64) {
    let _ = clean(&join.url, Some(run));
}

/// The start barrier across hosts. This host's workers all stand at its own barrier: it says
/// it is ready, then waits until every host is (the one that sees it sets the release, once)
/// or until `--join-timeout` (then it fails, naming who is missing). Returns the release as
/// this host's CLOCK_REALTIME ns.
pub fn meet(co: &Seat) -> Result<i128, Error> {
    let join = &co.join;
    let fail = |m: String| failed_error(join, m);
    let mut c = connect(&join.url, &format!("racepool/join/{}", join.name)).map_err(fail)?;
    let db = |e: postgres::Error| failed_error(join, describe(&e));
    c.execute(
        "UPDATE racepool_join_hosts SET state = 'ready', heartbeat_at = clock_timestamp() \
         WHERE name = $1 AND host = $2",
        &[&join.name, &co.me],
    )
    .map_err(db)?;
    let deadline = Instant::now() + join.timeout;
    let release_sql = format!(
        "SELECT {} FROM racepool_join_runs WHERE name = $1 FOR UPDATE",
        epoch_ns("release_at")
    );
    let set_sql = format!(
        "UPDATE racepool_join_runs SET release_at = clock_timestamp() + make_interval(secs => $2) \
         WHERE name = $1 RETURNING {}",
        epoch_ns("release_at")
    );
    loop {
        let mut tx = c.transaction().map_err(db)?;
        let release: Option<i64> = tx
            .query_one(&release_sql, &[&join.name])
            .map_err(db)?
            .get(0);
        if let Some(at) = release {
            tx.commit().map_err(db)?;
            return Ok(at as i128 - co.reg.offset_ns as i128);
        }
        let hosts: Vec<(String, String, Option<String>)> = tx
            .query(
                "SELECT host, state, note FROM racepool_join_hosts WHERE name = $1 ORDER BY idx",
                &[&join.name],
            )
            .map_err(db)?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        let ready = hosts.iter().filter(|h| h.1 == "ready").count();
        if ready == join.hosts as usize {
            let lead = RELEASE_LEAD.as_secs_f64();
            let at: i64 = tx
                .query_one(&set_sql, &[&join.name, &lead])
                .map_err(db)?
                .get(0);
            tx.commit().map_err(db)?;
            return Ok(at as i128 - co.reg.offset_ns as i128);
        }
        let gave_up = hosts.iter().find(|h| h.1 == "failed" && h.0 != co.me);
        let late = Instant::now() > deadline;
        if gave_up.is_some() || late || crate::pool::interrupted() {
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
            tx.execute(
                "UPDATE racepool_join_hosts SET state = 'failed', note = $3, \
                 finished_at = clock_timestamp() WHERE name = $1 AND host = $2",
                &[&join.name, &co.me, &why],
            )
            .map_err(db)?;
            tx.commit().map_err(db)?;
            return Err(
                if crate::pool::interrupted() && gave_up.is_none() && !late {
                    Error::Interrupted(format!("--join {}: {why}", join.name))
                } else {
                    fail(why)
                },
            );
        }
        tx.commit().map_err(db)?;
        std::thread::sleep(POLL);
    }
}

/// The heartbeat: every `HEARTBEAT` until `stop`, this host's row says it is alive and what
/// its workers have acknowledged. On its own connection, in the heartbeat thread; a failed
/// beat is tried again on a new connection at the next (a host is declared dead only after
/// `--join-timeout` of silence).
pub fn beat(co: &Seat, completed: &dyn Fn() -> Vec<u64>, stop: &AtomicBool) {
    let mut conn: Option<Client> = None;
    // SeqCst: pairs with the runner's store that ends the heartbeat.
    while !stop.load(Ordering::SeqCst) {
        if conn.is_none() {
            conn = connect(
                &co.join.url,
                &format!("racepool/join/{}/beat", co.join.name),
            )
            .ok();
        }
        if let Some(c) = conn.as_mut() {
            let progress = serde_json::to_string(&completed()).expect("numbers serialise");
            let r = c.execute(
                "UPDATE racepool_join_hosts SET heartbeat_at = clock_timestamp(), progress = $3, \
                 state = CASE WHEN state = 'ready' THEN 'running' ELSE state END \
                 WHERE name = $1 AND host = $2",
                &[&co.join.name, &co.me, &progress],
            );
            if r.is_err() {
                conn = None;
            }
        }
        let until = Instant::now() + HEARTBEAT;
        while Instant::now() < until && !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Writes this host's figures, then waits until every host is done (or failed, or silent
/// for `--join-timeout`: dead). The host that sees that first reports the verdict. Returns
/// who reports it.
pub fn finish(co: &Seat, figures: Figures, histogram: Vec<u8>) -> Result<String, Error> {
    let join = &co.join;
    let db = |e: postgres::Error| failed_error(join, describe(&e));
    let mut c = connect(&join.url, &format!("racepool/join/{}", join.name))
        .map_err(|m| failed_error(join, m))?;
    c.execute(
        "UPDATE racepool_join_hosts SET state = 'done', figures = $3, histogram = $4, \
         progress = $5, finished_at = clock_timestamp(), heartbeat_at = clock_timestamp() \
         WHERE name = $1 AND host = $2",
        &[
            &join.name,
            &co.me,
            &serde_json::to_string(&figures).expect("figures serialise"),
            &histogram,
            &serde_json::to_string(&figures.completed).expect("numbers serialise"),
        ],
    )
    .map_err(db)?;
    let timeout = join.timeout.as_secs_f64();
    loop {
        let mut tx = c.transaction().map_err(db)?;
        let by: Option<String> = tx
            .query_one(
                "SELECT reported_by FROM racepool_join_runs WHERE name = $1 FOR UPDATE",
                &[&join.name],
            )
            .map_err(db)?
            .get(0);
        if let Some(by) = by {
            tx.commit().map_err(db)?;
            return Ok(by);
        }
        tx.execute(
            "UPDATE racepool_join_hosts SET state = 'dead', note = 'no heartbeat for ' || $2 || ' s' \
             WHERE name = $1 AND state IN ('registered', 'ready', 'running') \
             AND heartbeat_at < clock_timestamp() - make_interval(secs => $2)",
            &[&join.name, &timeout],
        )
        .map_err(db)?;
        let open: i64 = tx
            .query_one(
                "SELECT count(*) FROM racepool_join_hosts WHERE name = $1 \
                 AND state IN ('registered', 'ready', 'running')",
                &[&join.name],
            )
            .map_err(db)?
            .get(0);
        if open == 0 {
            tx.execute(
                "UPDATE racepool_join_runs SET reported_by = $2 WHERE name = $1",
                &[&join.name, &co.me],
            )
            .map_err(db)?;
            tx.commit().map_err(db)?;
            return Ok(co.me.clone());
        }
        tx.execute(
            "UPDATE racepool_join_hosts SET heartbeat_at = clock_timestamp() \
             WHERE name = $1 AND host = $2",
            &[&join.name, &co.me],
        )
        .map_err(db)?;
        tx.commit().map_err(db)?;
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

/// `torture clean`: removes the joined runs whose slots' run is `run` (every one if None;
/// then the tables too). Returns how many joined runs it removed.
pub fn clean(url: &str, run: Option<u64>) -> Result<u64, Error> {
    let fail = |m: String| Error::Target(format!("{}: {m}", masked(url)));
    let mut c = connect(url, "racepool/clean").map_err(fail)?;
    let db = |e: postgres::Error| Error::Target(format!("{}: {}", masked(url), describe(&e)));
    let exists: i64 = c
        .query_one(
            "SELECT count(*) FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_name = 'racepool_join_runs'",
            &[],
        )
        .map_err(db)?
        .get(0);
    if exists == 0 {
        return Ok(0);
    }
    let mut tx = c.transaction().map_err(db)?;
    tx.batch_execute(SCHEMA_LOCK).map_err(db)?;
    let removed = match run {
        Some(r) => tx
            .execute(
                "DELETE FROM racepool_join_runs WHERE run = $1",
                &[&(r as i64)],
            )
            .map_err(db)?,
        None => tx
            .execute("DELETE FROM racepool_join_runs", &[])
            .map_err(db)?,
    };
    let left: i64 = tx
        .query_one("SELECT count(*) FROM racepool_join_runs", &[])
        .map_err(db)?
        .get(0);
    if left == 0 {
        tx.batch_execute(
            "DROP TABLE IF EXISTS racepool_join_hosts; DROP TABLE IF EXISTS racepool_join_runs",
        )
        .map_err(db)?;
    }
    tx.commit().map_err(db)?;
    Ok(removed)
}

/// Reads the joined run `name`'s rows and its slots' final values (`racepool_slots`).
pub fn load(url: &str, name: &str) -> Result<Stored, Error> {
    let fail = |m: String| Error::Target(format!("{}: {m}", masked(url)));
    let mut c = connect(url, "racepool/report").map_err(fail)?;
    let db = |e: postgres::Error| Error::Target(format!("{}: {e}", masked(url)));
    let exists: i64 = c
        .query_one(
            "SELECT count(*) FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_name = 'racepool_join_runs'",
            &[],
        )
        .map_err(db)?
        .get(0);
    let row = if exists == 0 {
        None
    } else {
        c.query_opt(
            &format!(
                "SELECT plan, hosts, run, {}, reported_by FROM racepool_join_runs WHERE name = $1",
                epoch_ns("release_at")
            ),
            &[&name],
        )
        .map_err(db)?
    };
    let Some(row) = row else {
        return Err(Error::Usage(format!(
            "--run {name}: {} holds no joined run of that name",
            masked(url)
        )));
    };
    let run = row.get::<_, i64>(2) as u64;
    let mut hosts = Vec::new();
    let mut histograms = Vec::new();
    for r in c
        .query(
            "SELECT host, idx, pid, workers, seed, clock_offset_ns, rtt_ns, state, note, \
             progress, figures, histogram FROM racepool_join_hosts WHERE name = $1 ORDER BY idx",
            &[&name],
        )
        .map_err(db)?
    {
        let figures: Option<Figures> = r
            .get::<_, Option<&str>>(10)
            .and_then(|f| serde_json::from_str(f).ok());
        let progress: Vec<u64> = r
            .get::<_, Option<&str>>(9)
            .and_then(|p| serde_json::from_str(p).ok())
            .unwrap_or_default();
        if let Some(h) = r.get::<_, Option<&[u8]>>(11).and_then(histogram_of) {
            histograms.push(h);
        }
        hosts.push(Host::recorded(
            r.get(0),
            r.get::<_, i32>(1) as u32,
            r.get(2),
            r.get::<_, i64>(3) as usize,
            r.get::<_, i64>(4) as u64,
            r.get(5),
            r.get(6),
            r.get(7),
            r.get(8),
            figures,
            progress,
        ));
    }
    let finals: Vec<u32> = c
        .query(
            "SELECT value FROM racepool_slots WHERE run = $1 ORDER BY slot",
            &[&(run as i64)],
        )
        .map_err(db)?
        .iter()
        .map(|r| u32::try_from(r.get::<_, i64>(0)).unwrap_or(u32::MAX))
        .collect();
    Ok(Stored {
        name: name.into(),
        url: masked(url),
        plan: row.get(0),
        hosts_planned: row.get::<_, i32>(1) as u32,
        run,
        release_ns: row.get(3),
        reported_by: row.get(4),
        hosts,
        histograms,
        finals,
    })
}

/// PostgreSQL as the meeting place: the two tables above, at `url`.
pub struct Tables {
    pub url: String,
}

impl Meeting for Tables {
    fn register(
        &self,
        join: &Join,
        plan: &str,
        me: &str,
        workers: usize,
        seed: u64,
    ) -> Result<Registration, Error> {
        register(join, plan, me, workers, seed)
    }
    fn withdraw(&self, join: &Join, run: u64) {
        withdraw(join, run)
    }
    fn slots_ready(&self, join: &Join) -> Result<(), Error> {
        slots_ready(join)
    }
    fn wait_for_slots(&self, join: &Join, me: &str) -> Result<(), Error> {
        wait_for_slots(join, me)
    }
    fn failed(&self, join: &Join, me: &str, why: &str) {
        failed(join, me, why)
    }
    fn meet(&self, seat: &Seat) -> Result<i128, Error> {
        meet(seat)
    }
    fn beat(&self, seat: &Seat, completed: &dyn Fn() -> Vec<u64>, stop: &AtomicBool) {
        beat(seat, completed, stop)
    }
    fn finish(&self, seat: &Seat, figures: Figures, histogram: Vec<u8>) -> Result<String, Error> {
        finish(seat, figures, histogram)
    }
    fn load(&self, name: &str) -> Result<Stored, Error> {
        load(&self.url, name)
    }
    fn clean(&self, run: Option<u64>) -> Result<u64, Error> {
        clean(&self.url, run)
    }
}
