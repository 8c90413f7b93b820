//! `torture bench --target …` through the built binary against the real servers
//! (tests/common/services.rs, tests/common/redis.rs; a loud skip, or a failure with
//! RACEPOOL_REQUIRE_SERVICES=1): the report's engine × isolation × strategy table with
//! Hermitage's expected verdicts, every correct strategy exact, the peers' ratios when pgbench
//! and redis-benchmark are installed, a worker count the server cannot take refused before
//! anything runs, and nothing left on the servers afterwards (rows, keys, connections).
//!
//! Small on purpose: 1 and 4 workers, one run of 100 updates each per point.

mod common;
#[path = "common/redis.rs"]
mod harness;

use std::path::PathBuf;

use common::services::{self, Service};
use common::torture;
use serde_json::Value;

/// A fresh directory under the system's temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("racepool-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One integer column of `sql`'s rows, through racepool's own drivers.
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

/// Rows of the runs `ids` still in the database's racepool tables.
fn rows_left(url: &str, ids: &[u64]) -> i64 {
    let list: Vec<String> = ids.iter().map(u64::to_string).collect();
    let mut left = 0;
    for table in ["racepool_runs", "racepool_slots"] {
        let exists = sql_ints(
            url,
            &format!("SELECT count(*) FROM information_schema.tables WHERE table_name = '{table}'"),
        )[0];
        if exists > 0 {
            left += sql_ints(
                url,
                &format!(
                    "SELECT count(*) FROM {table} WHERE run IN ({})",
                    list.join(",")
                ),
            )[0];
        }
    }
    left
}

fn run_ids(summary: &Value, engine: &str) -> Vec<u64> {
    summary["points"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["engine"] == engine)
        .flat_map(|p| p["run_ids"].as_array().unwrap().iter())
        .map(|v| v.as_u64().unwrap())
        .collect()
}

fn on_path(tool: &str) -> bool {
    std::process::Command::new(tool)
        .arg("--version")
        .output()
        .is_ok()
}

#[test]
fn a_target_bench_writes_the_isolation_table_every_correct_strategy_exact_and_leaves_nothing() {
    let test =
        "a_target_bench_writes_the_isolation_table_every_correct_strategy_exact_and_leaves_nothing";
    let Some(pg) = services::url(Service::Postgres, test) else {
        return;
    };
    let Some(my) = services::url(Service::Mysql, test) else {
        return;
    };
    let Some(redis) = harness::redis(test) else {
        return;
    };
    let out = TempDir::new("bench-targets");
    let targets = format!("{pg},{my},{}", redis.url());
    let o = torture()
        .args(["bench", "--target", &targets])
        .args(["--workers", "1,4", "--repeat", "1", "--ops", "100", "--out"])
        .arg(&out.0)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{stdout}\n{stderr}");

    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(out.0.join("summary.json")).unwrap())
            .unwrap();
    let points = summary["points"].as_array().unwrap();
    // PostgreSQL and MariaDB: 3 levels × 5 strategies × 2 worker counts; Redis: 5 × 2.
    assert_eq!(points.len(), 2 * 3 * 5 * 2 + 5 * 2, "{stdout}");
    assert_eq!(summary["settings"]["ops_per_worker"], 100);
    for p in points {
        let label = format!(
            "{} {} {} w={}",
            p["engine"], p["isolation"], p["strategy"], p["workers"]
        );
        assert_eq!(
            p["updates"],
            100 * p["workers"].as_u64().unwrap(),
            "{label}"
        );
        assert_eq!(p["run_ids"].as_array().unwrap().len(), 1, "{label}");
        if p["strategy"] != "racy" {
            // Every correct strategy exact at every point, on every engine and level.
            assert_eq!(p["verdict"], "exact", "{label}");
            assert_eq!(p["lost"], 0, "{label}");
            assert_eq!(p["expected"], "exact", "{label}");
        }
        // Hermitage: these levels turn racy's race into retried failures, never a loss.
        let retried = match p["engine"].as_str().unwrap() {
            "postgres" => p["isolation"] != "read-committed",
            "mysql" => p["isolation"] == "serializable",
            _ => false,
        };
        if p["strategy"] == "racy" && (retried || p["workers"] == 1) {
            assert_eq!(p["expected"], "exact", "{label}");
            assert_eq!(p["lost"], 0, "{label}");
        }
        if p["strategy"] == "racy" && !retried && p["workers"] == 4 {
            assert_eq!(p["expected"], "loses", "{label}");
        }
        assert!(p["ops_per_sec"].as_f64().unwrap() > 0.0, "{label}");
        assert!(p["latency_ns"]["p999"].as_u64().unwrap() > 0, "{label}");
    }

    let md = std::fs::read_to_string(out.0.join("report.md")).unwrap();
    assert!(md.contains("## Engine × isolation × strategy"), "{md}");
    assert!(md.contains("| engine | isolation | strategy | workers | expected | measured |"));
    assert!(
        md.contains("| mysql | repeatable-read | racy | 4 | loses |"),
        "{md}"
    );
    assert!(
        md.contains("| postgres | serializable | racy | 4 | exact | exact |"),
        "{md}"
    );
    assert!(
        md.contains("| redis | – | atomic | 4 | exact | exact |"),
        "{md}"
    );
    for plot in ["targets-throughput.svg", "targets-latency.svg"] {
        let svg = std::fs::read_to_string(out.0.join(plot)).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("postgres"),
            "{plot}"
        );
        assert!(md.contains(&format!("]({plot})")), "{plot}");
    }
    let csv = std::fs::read_to_string(out.0.join("summary.csv")).unwrap();
    assert!(csv.starts_with("engine,isolation,strategy,"), "{csv}");

    // The peers: a ratio beside PostgreSQL atomic and lock (read committed, the first level)
    // and Redis atomic at each worker count, or a note saying which is missing.
    let peers: Vec<&Value> = points.iter().filter(|p| !p["peer"].is_null()).collect();
    let notes = summary["peer_notes"].to_string();
    if racepool::peer::pgbench::binary().is_ok() {
        for s in ["atomic", "lock"] {
            for w in [1, 4] {
                let p = peers
                    .iter()
                    .find(|p| {
                        p["engine"] == "postgres"
                            && p["isolation"] == "read-committed"
                            && p["strategy"] == s
                            && p["workers"] == w
                    })
                    .unwrap_or_else(|| panic!("no pgbench beside {s} w={w}: {notes}"));
                assert_eq!(p["peer"]["tool"], "pgbench");
                let ratio = p["peer"]["ratio"].as_f64().unwrap();
                let ours = p["ops_per_sec"].as_f64().unwrap();
                let theirs = p["peer"]["tps"]["median"].as_f64().unwrap();
                assert!((ratio - ours / theirs).abs() < 1e-9, "{p}");
                assert!(p["peer"]["p99_us"].as_f64().unwrap() > 0.0, "{p}");
            }
        }
        assert!(md.contains("| pgbench |"), "{md}");
    } else {
        assert!(notes.contains("pgbench is not installed"), "{notes}");
    }
    let redis_peers = peers.iter().filter(|p| p["engine"] == "redis").count();
    if on_path("redis-benchmark") {
        assert_eq!(redis_peers, 2, "{notes}");
        assert!(md.contains("| redis-benchmark |"), "{md}");
        assert!(md.contains("multiplexes"), "{md}");
    } else {
        assert_eq!(redis_peers, 0);
        assert!(
            notes.contains("redis-benchmark is not installed"),
            "{notes}"
        );
    }
    // No peer where it has no statements of its own.
    assert!(peers
        .iter()
        .all(|p| p["strategy"] == "atomic" || p["strategy"] == "lock"));

    // Nothing left behind: every run's rows, keys and connections are gone.
    for url in [&pg, &my] {
        let engine = if url.starts_with("postgres") {
            "postgres"
        } else {
            "mysql"
        };
        let ids = run_ids(&summary, engine);
        assert_eq!(ids.len(), 30);
        assert_eq!(rows_left(url, &ids), 0, "{engine}");
    }
    let open: i64 = run_ids(&summary, "postgres")
        .iter()
        .map(|id| {
            sql_ints(
                &pg,
                &format!(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'racepool/{id}%'"
                ),
            )[0]
        })
        .sum();
    assert_eq!(open, 0, "connections of the bench's runs still open");
    for id in run_ids(&summary, "redis") {
        assert_eq!(
            harness::count_keys(redis.url(), &format!("racepool:{{{id}}}:*")),
            0,
            "run {id}"
        );
    }
}

#[test]
fn a_worker_count_the_server_cannot_take_is_refused_before_anything_runs() {
    let test = "a_worker_count_the_server_cannot_take_is_refused_before_anything_runs";
    let Some(pg) = services::url(Service::Postgres, test) else {
        return;
    };
    let out = TempDir::new("bench-refused");
    let o = torture()
        .args(["bench", "--target", &pg, "--workers", "1,1000", "--out"])
        .arg(&out.0)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("--workers 1000 "), "{stderr}");
    assert!(stderr.contains("max_connections"), "{stderr}");
    assert!(
        o.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    // Refused before anything ran: not even the output directory was made.
    assert!(!out.0.exists());

    // A strategy none of the targets runs, and --isolation without a SQL target: bad input.
    let o = torture()
        .args(["bench", "--target", &pg, "--strategy", "pthread", "--out"])
        .arg(&out.0)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--strategy pthread"), "{stderr}");
    assert!(!out.0.exists());
}
