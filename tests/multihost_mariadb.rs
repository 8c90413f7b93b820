//! `--join` with MariaDB as the meeting place: one run across several hosts against one
//! MariaDB, coordinated through its tables. On one machine, several `torture` parents stand in
//! for the hosts, each in its own process group with its own workers, against the real server.
//!
//! Connections: MariaDB's max_connections is shared with every other test, so a joined run
//! here is 3 hosts × `RACEPOOL_JOIN_WORKERS` workers (8 by default), as PostgreSQL's.

mod common;
#[path = "common/join.rs"]
mod join;

use common::services::{self, Service};
use join::{Place, ALONE};

fn workers() -> usize {
    std::env::var("RACEPOOL_JOIN_WORKERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8)
}

/// Runs `test` against the MariaDB the tests use, one joined run at a time.
fn on_mariadb(name: &str, test: impl FnOnce(Place)) {
    let Some(url) = services::url(Service::Mysql, name) else {
        return;
    };
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    test(Place {
        url: &url,
        workers: workers(),
        tag: "maria",
    });
}

#[test]
fn three_hosts_every_mariadb_strategy_judged_as_on_one_host() {
    on_mariadb(
        "three_hosts_every_mariadb_strategy_judged_as_on_one_host",
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
    on_mariadb(
        "report_from_a_fourth_process_prints_the_last_hosts_summary",
        join::report_from_a_fourth_process_prints_the_last_hosts_summary,
    );
}

#[test]
fn a_host_with_other_flags_is_refused_naming_the_flag() {
    on_mariadb(
        "a_host_with_other_flags_is_refused_naming_the_flag",
        join::a_host_with_other_flags_is_refused_naming_the_flag,
    );
}

#[test]
fn a_missing_host_fails_everyone_within_the_timeout() {
    on_mariadb(
        "a_missing_host_fails_everyone_within_the_timeout",
        join::a_missing_host_fails_everyone_within_the_timeout,
    );
}

#[test]
fn a_host_killed_mid_run_is_named_dead_and_the_verdict_is_bounded() {
    on_mariadb(
        "a_host_killed_mid_run_is_named_dead_and_the_verdict_is_bounded",
        join::a_host_killed_mid_run_is_named_dead_and_the_verdict_is_bounded,
    );
}
