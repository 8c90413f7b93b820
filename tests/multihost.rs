//! `--join`: one run across several hosts against one PostgreSQL, coordinated through it. On
//! one machine, several `torture` parents stand in for the hosts, each in its own process
//! group with its own workers, against the real server.
//!
//! Connections: the shared PostgreSQL's max_connections (100) is shared with every other test,
//! so a joined run on it is 3 hosts × `RACEPOOL_JOIN_WORKERS` workers (8 by default: 24 worker
//! connections plus one or two per parent). The 3 × 50 runs start a PostgreSQL of their own
//! (`OwnPostgres`, max_connections 250), stopped and removed when the test ends.

mod common;
#[path = "common/join.rs"]
mod join;

use common::services::{self, OwnPostgres, Service};
use join::{json, report, text, Hosts, Place, ALONE};
use serde_json::Value;

fn workers() -> usize {
    std::env::var("RACEPOOL_JOIN_WORKERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8)
}

/// The shared PostgreSQL the tests use, as a meeting place of `workers()` per host.
fn place(url: &str) -> Place<'_> {
    Place {
        url,
        workers: workers(),
        tag: "pg",
    }
}

/// Runs `test` against the shared PostgreSQL, one joined run at a time.
fn on_postgres(name: &str, test: impl FnOnce(Place)) {
    let Some(url) = services::url(Service::Postgres, name) else {
        return;
    };
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    test(place(&url));
}

#[test]
fn three_hosts_every_postgres_strategy_judged_as_on_one_host() {
    on_postgres(
        "three_hosts_every_postgres_strategy_judged_as_on_one_host",
        |p| {
            join::three_hosts_every_strategy_judged_as_on_one_host(
                p,
                &["racy", "atomic", "cas", "lock", "advisory"],
            )
        },
    );
}

#[test]
fn report_from_a_fourth_process_prints_the_last_hosts_summary() {
    on_postgres(
        "report_from_a_fourth_process_prints_the_last_hosts_summary",
        join::report_from_a_fourth_process_prints_the_last_hosts_summary,
    );
}

#[test]
fn a_host_with_other_flags_is_refused_naming_the_flag() {
    on_postgres(
        "a_host_with_other_flags_is_refused_naming_the_flag",
        join::a_host_with_other_flags_is_refused_naming_the_flag,
    );
}

#[test]
fn a_missing_host_fails_everyone_within_the_timeout() {
    on_postgres(
        "a_missing_host_fails_everyone_within_the_timeout",
        join::a_missing_host_fails_everyone_within_the_timeout,
    );
}

#[test]
fn a_host_killed_mid_run_is_named_dead_and_the_verdict_is_bounded() {
    on_postgres(
        "a_host_killed_mid_run_is_named_dead_and_the_verdict_is_bounded",
        join::a_host_killed_mid_run_is_named_dead_and_the_verdict_is_bounded,
    );
}

#[test]
fn a_run_the_server_cannot_take_whole_is_refused_before_anything_forks() {
    let test = "a_run_the_server_cannot_take_whole_is_refused_before_anything_forks";
    let Some(url) = services::url(Service::Postgres, test) else {
        return;
    };
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    let name = place(&url).name("toobig");
    // 3 hosts of 40 workers: more than max_connections (100), though one host's 40 fit.
    let o = common::output(&[
        "run", "--target", &url, "--join", &name, "--hosts", "3", "-w", "40", "-s", "atomic", "-n",
        "10",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("--hosts 3: 40 workers on every host: --workers 120"),
        "{}",
        text(&o)
    );
    // Nothing was left: the run is gone with its refusal.
    assert!(report(&url, &name).is_none());
}

/// `torture verify URL --run ID --json`: (exit code, the run's check).
fn verify(url: &str, run: u64) -> (i32, Value) {
    let o = common::output(&["verify", url, "--run", &run.to_string(), "--json"]);
    let v = json(&o);
    let check = v["runs"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["run"] == run))
        .cloned()
        .unwrap_or_else(|| panic!("verify names no run {run}: {v}"));
    (o.status.code().expect("exited"), check)
}

#[test]
fn three_hosts_of_fifty_give_every_strategys_verdict_and_a_record_verify_checks() {
    let test = "three_hosts_of_fifty_give_every_strategys_verdict_and_a_record_verify_checks";
    // 150 workers' connections and the parents': more than the shared server's 100.
    let Some(pg) = OwnPostgres::start(test, 250) else {
        return;
    };
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    let url = pg.url();
    let (w, ops) = (50u64, 40u64);
    let fifty = Place {
        url,
        workers: w as usize,
        tag: "pg",
    };
    let n = ops.to_string();
    for strategy in ["racy", "atomic", "cas", "lock", "advisory"] {
        let name = fifty.name(&format!("fifty-{strategy}"));
        let outs = Hosts::start(
            fifty,
            &name,
            3,
            &[
                "-s",
                strategy,
                "-n",
                &n,
                "--store",
                "target",
                "--join-timeout",
                "120",
                "--json",
            ],
            3,
        )
        .wait();
        let verdicts: Vec<Value> = outs.iter().map(json).collect();
        let v = &verdicts[0];
        for (o, other) in outs.iter().zip(&verdicts) {
            assert_eq!(o.status.code(), Some(0), "{strategy}: {}", text(o));
            assert_eq!(other["count"], v["count"], "{strategy}");
            // Every host waited for the end the reporter wrote: one check, seen by all.
            assert_eq!(other["history"], v["history"], "{strategy}");
        }
        let hosts = v["hosts"].as_array().unwrap();
        assert_eq!(hosts.len(), 3, "{strategy}: {v}");
        for h in hosts {
            assert_eq!(h["state"], "done", "{strategy}: {h}");
            assert_eq!(h["acknowledged"], w * ops, "{strategy}: {h}");
        }
        assert_eq!(v["count"]["expected"], 3 * w * ops, "{strategy}: {v}");
        assert_eq!(v["bounded"], false, "{strategy}: {v}");
        assert!(v["release_skew_ns"].as_i64().is_some(), "{v}");
        // The joined summary's check is verify's, from the record alone.
        let run = v["run"].as_u64().unwrap();
        let (code, check) = verify(url, run);
        let h = &v["history"];
        assert_eq!(h["verified"], check["verified"], "{strategy}: {check}");
        assert_eq!(h["witnesses"], check["witnesses"], "{strategy}: {check}");
        // Every host's workers wrote under ids of their own: 150 workers, each its 40 events.
        assert_eq!(check["events"], 3 * w * ops, "{strategy}: {check}");
        assert_eq!(check["acknowledged"], 3 * w * ops, "{strategy}: {check}");
        assert_eq!(check["sequence_errors"], 0, "{strategy}: {check}");
        if strategy == "racy" {
            assert_eq!(v["verdict"], "race-caught", "{v}");
            assert!(v["count"]["lost"].as_u64().unwrap() > 0, "{v}");
            // Lost updates, proven from the record: witnesses, some spanning hosts.
            assert_eq!(code, 1, "{check}");
            assert_eq!(check["verified"], false, "{check}");
            assert!(check["witnesses"].as_u64().unwrap() > 0, "{check}");
            assert!(check["duplicates"].as_u64().unwrap() > 0, "{check}");
            assert!(v["witnesses_across_hosts"].as_u64().unwrap() > 0, "{v}");
            let across = &v["witness_across_hosts"]["workers"];
            let host_of = |g: &Value| g.as_u64().unwrap() / w;
            assert_ne!(host_of(&across[0]), host_of(&across[1]), "{v}");
        } else {
            assert_eq!(v["verdict"], "exact", "{strategy}: {v}");
            assert_eq!(v["count"]["observed"], 3 * w * ops, "{strategy}: {v}");
            assert_eq!(code, 0, "{strategy}: {check}");
            assert_eq!(check["verified"], true, "{strategy}: {check}");
            assert_eq!(check["duplicates"], 0, "{strategy}: {check}");
            assert_eq!(check["gaps"], 0, "{strategy}: {check}");
            // Times from three hosts, on the database's clock: in real-time order.
            assert_eq!(check["order_violations"], 0, "{strategy}: {check}");
        }
        join::clean(url, &name, v);
    }
}

#[test]
fn a_joined_run_keeps_its_record_in_the_target_not_in_a_file() {
    // Refused before anything connects: no server is needed.
    let o = common::output(&[
        "run",
        "--target",
        "postgres://postgres@127.0.0.1:1/none",
        "--join",
        "file",
        "--hosts",
        "2",
        "-s",
        "atomic",
        "--store",
        "log:racepool-never-written.log",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("give --store target"), "{}", text(&o));
    assert!(!std::path::Path::new("racepool-never-written.log").exists());
}
