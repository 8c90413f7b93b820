//! `--target postgres://…`, `mysql://…` and `redis://…` through the built binary, against real
//! servers (tests/common/services.rs, tests/common/redis.rs; a loud skip, or a failure with
//! RACEPOOL_REQUIRE_SERVICES=1): the incident's loss with witnesses, every correct strategy
//! exact run after run, the isolation table's verdicts (Hermitage's), the refusals before
//! anything forks, `--store target` verified from the target alone and catching an edited or
//! deleted event, `torture clean` leaving nothing, and Redis's lock losing updates to a holder
//! paused past its TTL unless `--fencing`.
//!
//! Every run of a test is cleaned by its id when the test ends, however it ends; tests run one
//! at a time (each forks up to 8 workers, each a connection, on a shared server).

mod common;
#[path = "common/redis.rs"]
mod harness;

use common::services::{self, Service};
use common::{output, run_json};
use serde_json::Value;

static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn turn() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Removes every run a test made on `url` when the test ends (`torture clean URL --run ID`).
struct Runs {
    url: String,
    ids: Vec<u64>,
}

impl Runs {
    fn on(url: &str) -> Runs {
        Runs {
            url: url.into(),
            ids: Vec::new(),
        }
    }

    /// `torture --target URL ARGS --json --latency off`: (exit code, summary); its runs are
    /// noted for cleaning.
    fn run(&mut self, args: &[&str]) -> (i32, Value) {
        let mut all = vec!["--target", &self.url, "--latency", "off"];
        all.extend_from_slice(args);
        let (code, summary) = run_json(&all);
        self.ids.extend(run_ids(&summary));
        (code, summary)
    }
}

impl Drop for Runs {
    fn drop(&mut self) {
        for id in &self.ids {
            let _ = output(&["clean", &self.url, "--run", &id.to_string()]);
        }
    }
}

fn run_ids(summary: &Value) -> Vec<u64> {
    rows(summary)
        .iter()
        .flat_map(|r| r["runs"].as_array().unwrap())
        .map(|r| r["run"].as_u64().expect("every run has an id"))
        .collect()
}

fn rows(summary: &Value) -> &Vec<Value> {
    summary["strategies"].as_array().expect("strategies")
}

/// The row of `strategy` at `isolation` (None: a target without levels).
fn row<'a>(summary: &'a Value, strategy: &str, isolation: Option<&str>) -> &'a Value {
    rows(summary)
        .iter()
        .find(|s| s["strategy"] == strategy && s["isolation"].as_str() == isolation)
        .unwrap_or_else(|| panic!("no row {strategy} at {isolation:?}"))
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

fn pg(test: &str) -> Option<String> {
    services::url(Service::Postgres, test)
}

fn mariadb(test: &str) -> Option<String> {
    services::url(Service::Mysql, test)
}

/// The shared Redis, or a throwaway one kept alive by the returned guard.
fn redis(test: &str) -> Option<harness::Redis> {
    harness::redis(test)
}

/// Client connections the server counts now (`psql`/`mariadb` are not used: the count is read
/// through racepool's own drivers, one connection that is itself counted and closed).
fn sql_ints(url: &str, sql: &str) -> Vec<i64> {
    use racepool::target::mysql::My;
    use racepool::target::postgres::Pg;
    use racepool::target::sql::{render, Driver};
    fn rows<D: Driver>(url: &str, sql: &str) -> Vec<i64> {
        let mut c = D::connect(url, "racepool/test").unwrap_or_else(|f| panic!("{url}: {f}"));
        c.rows(&render(sql, D::PLACEHOLDERS), &[])
            .unwrap_or_else(|f| panic!("{sql}: {f}"))
            .iter()
            .map(|r| r[0].int().unwrap_or(-1))
            .collect()
    }
    if url.starts_with("postgres") {
        rows::<Pg>(url, sql)
    } else {
        rows::<My>(url, sql)
    }
}

fn sql_exec(url: &str, sql: &str) -> u64 {
    use racepool::target::mysql::My;
    use racepool::target::postgres::Pg;
    use racepool::target::sql::{render, Driver};
    fn exec<D: Driver>(url: &str, sql: &str) -> u64 {
        let mut c = D::connect(url, "racepool/test").unwrap_or_else(|f| panic!("{url}: {f}"));
        c.execute(&render(sql, D::PLACEHOLDERS), &[])
            .unwrap_or_else(|f| panic!("{sql}: {f}"))
    }
    if url.starts_with("postgres") {
        exec::<Pg>(url, sql)
    } else {
        exec::<My>(url, sql)
    }
}

/// Connections of this server that are not the counting one.
fn connections(url: &str) -> i64 {
    let sql = if url.starts_with("postgres") {
        "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
    } else {
        "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS \
         WHERE VARIABLE_NAME = 'THREADS_CONNECTED'"
    };
    sql_ints(url, sql)[0] - 1
}

/// No connection of `runs` is still open. PostgreSQL names each session's run in its
/// `application_name`, so that is exact; MariaDB counts every client of a server other helpers
/// share, so a leak (8 workers' connections per run) must show above a couple of strangers.
fn no_connection_left(url: &str, before: i64, runs: &[u64]) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let left = if url.starts_with("postgres") {
            runs.iter()
                .map(|id| {
                    sql_ints(
                        url,
                        &format!(
                            "SELECT count(*) FROM pg_stat_activity \
                             WHERE application_name LIKE 'racepool/{id}%'"
                        ),
                    )[0]
                })
                .sum::<i64>()
        } else {
            (connections(url) - before - 2).max(0)
        };
        if left == 0 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{left} connection(s) of the runs still open"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Rows of `run` left in every racepool table (0 when none, or no table at all).
fn rows_left(url: &str, run: u64) -> i64 {
    let tables = sql_ints(
        url,
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'racepool_runs'",
    );
    if tables[0] == 0 {
        return 0;
    }
    [
        "racepool_runs",
        "racepool_slots",
        "racepool_events",
        "racepool_workers",
    ]
    .iter()
    .map(|t| sql_ints(url, &format!("SELECT count(*) FROM {t} WHERE run = {run}"))[0])
    .sum()
}

/// Hermitage's verdicts through the binary: `racy` loses at `losing` levels (with witnesses
/// in the record), is held by retried serialization failures at the others; every other
/// strategy is exact at every level; connections return to where they were; `torture clean`
/// leaves no row of the runs.
fn isolation_table(url: &str, losing: &[&str]) {
    let _turn = turn();
    let before = connections(url);
    let mut runs = Runs::on(url);
    let (code, summary) = runs.run(&[
        "-w",
        "8",
        "-n",
        "40",
        "--store",
        "target",
        "--isolation",
        "read-committed,repeatable-read,serializable",
    ]);
    assert_eq!(code, 0, "every correct row exact: {summary}");
    for level in ["read-committed", "repeatable-read", "serializable"] {
        let racy = row(&summary, "racy", Some(level));
        if losing.contains(&level) {
            assert_eq!(racy["verdict"], "race-caught", "racy at {level}: {racy}");
            assert!(u(&racy["lost"]) > 0, "racy at {level}");
            let check = &racy["runs"][0]["history"];
            assert!(u(&check["witnesses"]) > 0, "racy at {level}: {check}");
            assert_eq!(check["verified"], false);
        } else {
            assert_eq!(u(&racy["lost"]), 0, "racy at {level}: {racy}");
            assert!(
                racy["retries_per_update"].as_f64().unwrap() > 0.0,
                "racy at {level} is held by retried serialization failures: {racy}"
            );
            assert_eq!(racy["runs"][0]["history"]["verified"], true);
        }
        for s in ["atomic", "cas", "lock", "advisory"] {
            let r = row(&summary, s, Some(level));
            assert_eq!(r["verdict"], "exact", "{s} at {level}: {r}");
            assert_eq!(u(&r["lost"]), 0);
            assert_eq!(r["runs"][0]["history"]["verified"], true, "{s} at {level}");
        }
    }
    no_connection_left(url, before, &runs.ids);
    let ids = std::mem::take(&mut runs.ids);
    for id in &ids {
        assert!(rows_left(url, *id) > 0, "run {id} keeps its record");
        let out = output(&["clean", url, "--run", &id.to_string()]);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        assert_eq!(rows_left(url, *id), 0, "run {id} left rows after clean");
    }
}

#[test]
fn postgres_isolation_table_is_hermitages() {
    let Some(url) = pg("postgres_isolation_table_is_hermitages") else {
        return;
    };
    isolation_table(&url, &["read-committed"]);
}

#[test]
fn mariadb_isolation_table_is_hermitages() {
    let Some(url) = mariadb("mariadb_isolation_table_is_hermitages") else {
        return;
    };
    isolation_table(&url, &["read-committed", "repeatable-read"]);
}

/// Every correct strategy, exact in every one of `repeat` runs at 8 workers.
fn exact_run_after_run(url: &str, strategies: &str, ops: &str) {
    let _turn = turn();
    let mut runs = Runs::on(url);
    let (code, summary) = runs.run(&["-w", "8", "-n", ops, "-r", "3", "-s", strategies]);
    assert_eq!(code, 0, "{summary}");
    for r in rows(&summary) {
        assert_eq!(r["verdict"], "exact", "{r}");
        assert_eq!(r["runs"].as_array().unwrap().len(), 3);
        for run in r["runs"].as_array().unwrap() {
            assert_eq!(u(&run["count"]["lost"]), 0, "{run}");
            assert_eq!(u(&run["updates"]), 8 * ops.parse::<u64>().unwrap());
        }
    }
}

#[test]
fn postgres_correct_strategies_are_exact_run_after_run() {
    let Some(url) = pg("postgres_correct_strategies_are_exact_run_after_run") else {
        return;
    };
    exact_run_after_run(&url, "atomic,cas,lock,advisory", "50");
}

#[test]
fn mariadb_correct_strategies_are_exact_run_after_run() {
    let Some(url) = mariadb("mariadb_correct_strategies_are_exact_run_after_run") else {
        return;
    };
    exact_run_after_run(&url, "atomic,cas,lock,advisory", "50");
}

#[test]
fn redis_correct_strategies_are_exact_run_after_run() {
    let Some(r) = redis("redis_correct_strategies_are_exact_run_after_run") else {
        return;
    };
    exact_run_after_run(r.url(), "atomic,cas,script,lock", "200");
}

#[test]
fn redis_racy_loses_with_witnesses_and_the_record_verifies_elsewhere() {
    let Some(r) = redis("redis_racy_loses_with_witnesses_and_the_record_verifies_elsewhere") else {
        return;
    };
    let _turn = turn();
    let url = r.url();
    let mut runs = Runs::on(url);
    let (code, summary) = runs.run(&["-w", "8", "-n", "200", "--store", "target"]);
    assert_eq!(code, 0, "{summary}");
    let racy = row(&summary, "racy", None);
    assert_eq!(racy["verdict"], "race-caught", "{racy}");
    assert!(u(&racy["runs"][0]["history"]["witnesses"]) > 0, "{racy}");
    for s in ["atomic", "cas", "script", "lock"] {
        let r = row(&summary, s, None);
        assert_eq!(r["verdict"], "exact", "{r}");
        assert_eq!(r["runs"][0]["history"]["verified"], true, "{s}");
    }
    // From the stream alone, later: each correct run verifies, racy's does not.
    for s in rows(&summary) {
        let id = u(&s["runs"][0]["run"]).to_string();
        let out = output(&["verify", url, "--run", &id]);
        let want = if s["strategy"] == "racy" { 1 } else { 0 };
        assert_eq!(out.status.code(), Some(want), "{}: {out:?}", s["strategy"]);
    }
    // A deleted event is a gap in what verify reads.
    let cas = u(&row(&summary, "cas", None)["runs"][0]["run"]);
    let stream = format!("racepool:{{{cas}}}:events");
    let first = harness::command(url, &["XRANGE", &stream, "-", "+", "COUNT", "1"]);
    let id = match first {
        racepool::target::redis::resp::Reply::Array(entries) => match &entries[0] {
            racepool::target::redis::resp::Reply::Array(e) => match &e[0] {
                racepool::target::redis::resp::Reply::Bulk(b) => {
                    String::from_utf8_lossy(b).into_owned()
                }
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    };
    harness::command(url, &["XDEL", &stream, &id]);
    let out = output(&["verify", url, "--run", &cas.to_string()]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("NOT verified"), "{text}");
    // Clean leaves none of the run's keys.
    let ids = std::mem::take(&mut runs.ids);
    for id in ids {
        let out = output(&["clean", url, "--run", &id.to_string()]);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        assert_eq!(
            harness::count_keys(url, &format!("racepool:{{{id}}}:*")),
            0,
            "run {id}"
        );
    }
}

/// `--store target` verified from the database alone; an edited and a deleted event row are
/// caught by `torture verify URL`.
fn sql_record_tampering(url: &str) {
    let _turn = turn();
    let mut runs = Runs::on(url);
    let (code, summary) = runs.run(&["-w", "4", "-n", "50", "-s", "cas", "--store", "target"]);
    assert_eq!(code, 0, "{summary}");
    let id = runs.ids[0];
    let verify = || output(&["verify", url, "--run", &id.to_string(), "--json"]);
    let out = verify();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let edited = sql_exec(
        url,
        &format!(
            "UPDATE racepool_events SET value_written = value_written + 1 \
             WHERE run = {id} AND worker = 0 AND seq = 3"
        ),
    );
    assert_eq!(edited, 1);
    let out = verify();
    assert_eq!(out.status.code(), Some(1), "an edited row: {out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("checksum"));
    let deleted = sql_exec(
        url,
        &format!("DELETE FROM racepool_events WHERE run = {id} AND worker = 0 AND seq = 3"),
    );
    assert_eq!(deleted, 1);
    let out = verify();
    assert_eq!(out.status.code(), Some(1), "a deleted row: {out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let run = &v["runs"][0];
    assert_eq!(u(&run["gaps"]), 1, "{run}");
}

#[test]
fn postgres_verify_from_the_database_catches_edited_and_deleted_events() {
    let Some(url) = pg("postgres_verify_from_the_database_catches_edited_and_deleted_events")
    else {
        return;
    };
    sql_record_tampering(&url);
}

#[test]
fn mariadb_verify_from_the_database_catches_edited_and_deleted_events() {
    let Some(url) = mariadb("mariadb_verify_from_the_database_catches_edited_and_deleted_events")
    else {
        return;
    };
    sql_record_tampering(&url);
}

/// exit 2 and one line naming `flag`.
fn refused(args: &[&str], flag: &str) {
    let out = output(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains(flag), "{args:?}: {stderr}");
}

#[test]
fn more_workers_than_the_server_accepts_are_refused_before_any_fork() {
    let _turn = turn();
    for (url, name) in [
        (pg("more_workers_than_the_server_accepts (postgres)"), "pg"),
        (
            mariadb("more_workers_than_the_server_accepts (mariadb)"),
            "my",
        ),
    ] {
        let Some(url) = url else { continue };
        let before = connections(&url);
        // More than either server's max_connections (100 and 151 here; ask the server).
        let max = if name == "pg" {
            sql_ints(&url, "SELECT current_setting('max_connections')::bigint")[0]
        } else {
            sql_ints(&url, "SELECT @@max_connections")[0]
        };
        let w = (max + 1).to_string();
        refused(
            &["--target", &url, "-w", &w, "-n", "1", "-s", "atomic"],
            "--workers",
        );
        // Refused before anything connected but the preflight's own, closed connection.
        no_connection_left(&url, before, &[]);
    }
    // Redis: a throwaway server that accepts 4 clients.
    if let Some(server) = harness::Server::start("redis maxclients", &["--maxclients", "4"]) {
        refused(
            &[
                "--target",
                &server.url,
                "-w",
                "8",
                "-n",
                "1",
                "-s",
                "atomic",
            ],
            "--workers",
        );
    }
}

#[test]
fn unreachable_servers_and_misplaced_flags_are_refused() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    for url in [
        format!("postgres://postgres@127.0.0.1:{port}/test"),
        format!("mysql://root@127.0.0.1:{port}/test"),
        format!("redis://127.0.0.1:{port}"),
    ] {
        let out = output(&["--target", &url, "-w", "2", "-n", "1", "-s", "atomic"]);
        assert_eq!(out.status.code(), Some(2), "{url}: {out:?}");
        let out = output(&["verify", &url]);
        assert_eq!(out.status.code(), Some(2), "verify {url}: {out:?}");
    }
    let pg = "postgres://postgres@127.0.0.1:5432/test";
    let rd = "redis://127.0.0.1:6379";
    refused(
        &["--target", rd, "--isolation", "serializable"],
        "--isolation",
    );
    refused(&["--isolation", "serializable"], "--isolation");
    refused(&["--target", pg, "--fencing", "-s", "lock"], "--fencing");
    refused(
        &["--target", pg, "--lock-ttl", "50", "-s", "lock"],
        "--lock-ttl",
    );
    refused(&["--target", rd, "--fencing", "-s", "atomic"], "--fencing");
    refused(
        &["--target", rd, "--lock-ttl", "0", "-s", "lock"],
        "--lock-ttl",
    );
    refused(
        &["--target", pg, "--isolation", "serializable,serializable"],
        "--isolation",
    );
    refused(&["--store", "target"], "--store target");
    refused(&["--target", rd, "--scenario", "votes"], "--scenario votes");
    refused(&["--scenario", "cache", "--fix", "multi"], "--fix multi");
    refused(
        &["--target", rd, "--scenario", "cache", "--fix", "seqlock"],
        "--fix seqlock",
    );
    refused(
        &[
            "--target",
            rd,
            "--scenario",
            "cache",
            "--store",
            "log:cache.log",
        ],
        "--store",
    );
    refused(
        &[
            "--target",
            pg,
            "--scenario",
            "votes",
            "--store",
            "log:votes.log",
        ],
        "--store",
    );
    refused(&["--target", pg, "--kill", "1"], "--kill");
    refused(&["verify", "run.log", "--run", "3"], "--run");
}

/// Redis `lock` without fencing: a holder paused past the lock's TTL writes its stale value
/// over its successors' work: lost updates in every run, with witnesses in the record. With
/// `--fencing`, the same pauses lose nothing.
#[test]
fn redis_lock_paused_past_its_ttl_loses_and_fencing_is_exact() {
    let Some(r) = redis("redis_lock_paused_past_its_ttl_loses_and_fencing_is_exact") else {
        return;
    };
    let _turn = turn();
    let url = r.url();
    let mut runs = Runs::on(url);
    let demo = [
        "-w",
        "4",
        "-n",
        "300",
        "-r",
        "3",
        "-s",
        "lock",
        "--lock-ttl",
        "30",
        "--pause",
        "1:150",
        "--store",
        "target",
    ];
    let (code, summary) = runs.run(&demo);
    assert_eq!(code, 1, "lock lost updates: exit 1: {summary}");
    let lock = row(&summary, "lock", None);
    assert_eq!(lock["verdict"], "failed");
    for run in lock["runs"].as_array().unwrap() {
        assert!(u(&run["count"]["lost"]) > 0, "every run loses: {run}");
        assert!(u(&run["history"]["witnesses"]) > 0, "{run}");
        let pauses = run["faults"]["pauses"].as_array().unwrap();
        assert_eq!(pauses.len(), 1, "{run}");
        assert_eq!(pauses[0]["holding"], 0, "the pause caught a lock holder");
        assert!(
            u(&run["faults"]["lock_steals"]) >= 1,
            "its release found the lock expired: {run}"
        );
    }
    let mut fenced = demo.to_vec();
    fenced.push("--fencing");
    let (code, summary) = runs.run(&fenced);
    assert_eq!(code, 0, "{summary}");
    let lock = row(&summary, "lock", None);
    assert_eq!(lock["verdict"], "exact", "{lock}");
    for run in lock["runs"].as_array().unwrap() {
        assert_eq!(u(&run["count"]["lost"]), 0, "{run}");
        assert_eq!(run["history"]["verified"], true, "{run}");
        assert!(
            u(&run["retries"]) > 0,
            "the stale holder was refused and retried"
        );
    }
}

/// `--scenario votes` on a database: the ballots go to the database as typed, its constraints
/// refuse the bad ones (counted per reason, the same ballots for every strategy), racy's
/// votes_after repeat with witnesses in the vote rows, every other strategy keeps
/// votes_after 1, 2, 3… per option, and `torture verify URL` agrees from the vote rows alone.
fn votes_on(url: &str) {
    let _turn = turn();
    let mut runs = Runs::on(url);
    let (code, summary) = runs.run(&[
        "--scenario",
        "votes",
        "--slots",
        "3",
        "--invalid-rate",
        "0.25",
        "-w",
        "8",
        "-n",
        "40",
        "--store",
        "target",
    ]);
    assert_eq!(code, 0, "{summary}");
    let level = Some("read-committed");
    let reasons = ["non-numeric", "out-of-range", "trailing-garbage"];
    let rejected = |r: &Value| -> Vec<u64> {
        reasons
            .iter()
            .map(|why| u(&r["scenario"]["counters"][format!("rejected {why}")]))
            .collect()
    };
    let racy = row(&summary, "racy", level);
    assert_eq!(racy["verdict"], "race-caught", "{racy}");
    assert!(u(&racy["scenario"]["counters"]["votes_after repeats"]) > 0);
    assert!(u(&racy["runs"][0]["history"]["witnesses"]) > 0);
    let sent = rejected(racy);
    assert!(
        sent.iter().all(|&n| n > 0),
        "every reason is exercised: {sent:?}"
    );
    for s in ["atomic", "cas", "lock", "advisory"] {
        let r = row(&summary, s, level);
        assert_eq!(r["verdict"], "exact", "{s}: {r}");
        assert_eq!(
            rejected(r),
            sent,
            "{s}: the same ballots, refused the same way"
        );
        let c = &r["scenario"]["counters"];
        assert_eq!(u(&c["votes_after repeats"]), 0, "{s}");
        assert_eq!(u(&c["votes_after gaps"]), 0, "{s}");
        assert_eq!(
            u(&c["accepted"]) + sent.iter().sum::<u64>(),
            8 * 40,
            "{s}: every ballot accepted or refused"
        );
        let id = u(&r["runs"][0]["run"]).to_string();
        let out = output(&["verify", url, "--run", &id]);
        assert_eq!(out.status.code(), Some(0), "{s}: {out:?}");
    }
    // The database holds the rejected ballots nowhere: its vote rows are the accepted ones.
    let atomic = row(&summary, "atomic", level);
    let id = u(&atomic["runs"][0]["run"]);
    let rows = sql_ints(
        url,
        &format!("SELECT count(*) FROM racepool_votes WHERE run = {id}"),
    )[0];
    assert_eq!(rows as u64, u(&atomic["scenario"]["counters"]["accepted"]));
}

#[test]
fn postgres_votes_are_exact_and_bad_ballots_refused_by_the_database() {
    let Some(url) = pg("postgres_votes_are_exact_and_bad_ballots_refused_by_the_database") else {
        return;
    };
    votes_on(&url);
}

#[test]
fn mariadb_votes_are_exact_and_bad_ballots_refused_by_the_database() {
    let Some(url) = mariadb("mariadb_votes_are_exact_and_bad_ballots_refused_by_the_database")
    else {
        return;
    };
    votes_on(&url);
}

/// `--scenario cache` on Redis: the two-step writer tears reads (a new value beside stale
/// related entries), counted and named by verify from the stream; multi, script and watch
/// never tear, run after run.
#[test]
fn redis_cache_two_step_tears_and_its_fixes_hold() {
    let Some(r) = redis("redis_cache_two_step_tears_and_its_fixes_hold") else {
        return;
    };
    let _turn = turn();
    let url = r.url();
    let mut runs = Runs::on(url);
    let (code, summary) = runs.run(&[
        "--scenario",
        "cache",
        "--related",
        "2",
        "-w",
        "4",
        "-n",
        "500",
        "-r",
        "2",
        "--store",
        "target",
    ]);
    assert_eq!(code, 0, "{summary}");
    let names: Vec<&str> = rows(&summary)
        .iter()
        .map(|s| s["scenario"]["variant"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["two-step", "multi", "script", "watch"]);
    for s in rows(&summary) {
        let variant = s["scenario"]["variant"].as_str().unwrap();
        let torn = u(&s["scenario"]["counters"]["torn reads"]);
        for run in s["runs"].as_array().unwrap() {
            let h = &run["history"];
            if variant == "two-step" {
                assert!(u(&run["check"]["violations"]) > 0, "two-step tears: {run}");
                assert_eq!(h["verified"], false, "{h}");
            } else {
                assert_eq!(h["verified"], true, "{variant}: {h}");
            }
        }
        if variant == "two-step" {
            assert_eq!(s["verdict"], "race-caught", "{s}");
            assert!(torn > 0);
        } else {
            assert_eq!(s["verdict"], "exact", "{variant}: {s}");
            assert_eq!(torn, 0, "{variant}");
        }
    }
}
