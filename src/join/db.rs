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
use serde::{Deserialize, Serialize};

use super::Join;
use crate::error::Error;
use crate::run::HostFigures;
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

/// What registration decided for this host.
#[derive(Clone, Debug)]
pub struct Registration {
    /// The slots' run id, the same on every host.
    pub run: u64,
    /// This host's place in the order of registration, from 0.
    pub index: u32,
    /// Whether this host created the run (and so creates its slots).
    pub creator: bool,
    /// The database's clock minus this host's CLOCK_REALTIME, in ns.
    pub offset_ns: i64,
    /// The round trip the offset was measured in.
    pub rtt_ns: i64,
}

/// One host's side of the rendezvous: the `Joint` the runner calls.
pub struct Coordinator {
    pub join: Join,
    pub me: String,
    pub reg: Registration,
    /// Set by `finish`: the host that reported the verdict.
    pub ended: std::sync::Mutex<Option<String>>,
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
            let flag = super::first_difference(plan, &their_plan).unwrap_or("the plan".into());
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
                &(super::host_seed(seed, index) as i64),
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
            return Err(failed_error(
                join,
                format!(
                    "{me}: the run's slots were not made within {:?} by the host that created it",
                    join.timeout
                ),
            ));
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
pub fn meet(co: &Coordinator) -> Result<i128, Error> {
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
                Some((h, _, note)) => format!(
                    "host {h} failed before the start barrier ({}); every host of the run fails",
                    note.as_deref().unwrap_or("no reason given")
                ),
                None if late => missing(join, &hosts),
                None => "interrupted at the start barrier".into(),
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

/// Who is missing at the barrier, named.
fn missing(join: &Join, hosts: &[(String, String, Option<String>)]) -> String {
    let not_ready: Vec<String> = hosts
        .iter()
        .filter(|h| h.1 != "ready")
        .map(|h| format!("{} ({})", h.0, h.1))
        .collect();
    let unregistered = (join.hosts as usize).saturating_sub(hosts.len());
    let mut parts = Vec::new();
    if !not_ready.is_empty() {
        parts.push(format!("not ready: {}", not_ready.join(", ")));
    }
    if unregistered > 0 {
        parts.push(format!("{unregistered} never registered"));
    }
    format!(
        "{} of {} host(s) did not reach the start barrier within {:?} ({}); every host of the run fails",
        join.hosts as usize - hosts.iter().filter(|h| h.1 == "ready").count(),
        join.hosts,
        join.timeout,
        parts.join("; ")
    )
}

/// The heartbeat: every `HEARTBEAT` until `stop`, this host's row says it is alive and what
/// its workers have acknowledged. On its own connection, in the heartbeat thread; a failed
/// beat is tried again on a new connection at the next (a host is declared dead only after
/// `--join-timeout` of silence).
pub fn beat(co: &Coordinator, completed: &dyn Fn() -> Vec<u64>, stop: &AtomicBool) {
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

/// One host's figures as its row keeps them (JSON; the histogram beside it, V2-serialized).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Figures {
    pub completed: Vec<u64>,
    pub in_flight: Vec<u64>,
    /// (worker, signal) of every worker that died.
    pub deaths: Vec<(usize, String)>,
    pub retries: u64,
    /// On the database's clock, ns since the epoch: when this host released its workers, and
    /// when its last worker finished.
    pub released_ns: i64,
    pub ended_ns: i64,
    /// On the database's clock: its first and its last worker's first update started.
    #[serde(default)]
    pub first_start_ns: i64,
    #[serde(default)]
    pub last_start_ns: i64,
    /// On the database's clock: when each worker finished (its rate's end).
    #[serde(default)]
    pub worker_ended_ns: Vec<i64>,
    pub spawn_ms: f64,
}

/// Writes this host's figures, then waits until every host is done (or failed, or silent
/// for `--join-timeout`: dead). The host that sees that first reports the verdict. Returns
/// who reports it.
pub fn finish(co: &Coordinator, f: HostFigures) -> Result<String, Error> {
    let join = &co.join;
    let db = |e: postgres::Error| failed_error(join, describe(&e));
    // CLOCK_MONOTONIC -> CLOCK_REALTIME -> the database's clock.
    let to_db = {
        let real = crate::clock::realtime_ns();
        let mono = crate::clock::now_ns() as i128;
        move |mono_ns: u64| (mono_ns as i128 + (real - mono) + co.reg.offset_ns as i128) as i64
    };
    let figures = Figures {
        released_ns: to_db(f.go_ns),
        first_start_ns: to_db(f.start_ns.iter().copied().min().unwrap_or(f.go_ns)),
        last_start_ns: to_db(f.start_ns.iter().copied().max().unwrap_or(f.go_ns)),
        worker_ended_ns: f.end_ns.iter().map(|&e| to_db(e.max(f.go_ns))).collect(),
        ended_ns: to_db(
            f.end_ns
                .iter()
                .copied()
                .max()
                .unwrap_or(f.go_ns)
                .max(f.go_ns),
        ),
        completed: f.completed,
        in_flight: f.in_flight,
        deaths: f.deaths,
        retries: f.retries,
        spawn_ms: f.spawn_ms,
    };
    let mut histogram = Vec::new();
    hdrhistogram::serialization::Serializer::serialize(
        &mut hdrhistogram::serialization::V2Serializer::new(),
        &f.histogram,
        &mut histogram,
    )
    .map_err(|e| failed_error(join, format!("the histogram does not serialise: {e}")))?;
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
