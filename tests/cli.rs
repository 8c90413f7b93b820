//! Bad input: exit 2, nothing on stdout, no worker started. A value our validation refuses is
//! one line naming the flag; a command line clap cannot parse gets clap's whole message (a
//! suggestion, the possible values, the usage) under a first line that names the flag.

mod common;

use common::{output, torture};

fn assert_refused(args: &[&str], mentions: &str) {
    let out = output(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.contains(mentions),
        "{args:?} should mention {mentions}: {stderr}"
    );
    assert!(out.stdout.is_empty(), "nothing on stdout");
}

/// Refused by the parser: the first line says what is wrong with which flag, and clap's hints
/// follow it.
fn assert_unparsable(args: &[&str], mentions: &str) {
    let out = output(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    let first = stderr.lines().next().unwrap_or_default();
    assert!(first.starts_with("torture: "), "{args:?}: {stderr}");
    assert!(
        first.contains(mentions),
        "{args:?}: the first line should mention {mentions}: {stderr}"
    );
    assert!(
        stderr
            .trim_end()
            .ends_with("For more information, try '--help'."),
        "{args:?}: clap's hints should follow: {stderr}"
    );
    assert!(out.stdout.is_empty(), "nothing on stdout");
}

#[test]
fn zero_workers_is_refused() {
    assert_refused(&["--workers", "0"], "--workers");
}

#[test]
fn zero_slots_is_refused() {
    assert_refused(&["--slots", "0"], "--slots");
}

#[test]
fn zero_ops_and_zero_repeats_are_refused() {
    assert_refused(&["--ops", "0"], "--ops");
    assert_refused(&["--repeat", "0"], "--repeat");
}

#[test]
fn more_workers_than_the_machine_can_fork_is_refused() {
    assert_refused(&["--workers", "5000000"], "--workers");
    assert_refused(&["--workers", "5000000", "--mode", "threads"], "--workers");
}

#[test]
fn more_slots_than_the_machine_can_map_is_refused() {
    assert_refused(&["--slots", "4000000000"], "--slots");
    assert_refused(&["--slots", "99999999999999"], "--slots");
}

#[test]
fn a_count_that_would_wrap_a_slot_is_refused() {
    assert_refused(&["--workers", "1000", "--ops", "5000000"], "--ops");
}

#[test]
fn an_unknown_strategy_is_refused() {
    assert_unparsable(&["--strategy", "atomic,optimistic"], "--strategy");
}

#[test]
fn malformed_numbers_are_refused() {
    assert_unparsable(&["--workers", "ten"], "--workers");
    assert_unparsable(&["--ops", "-5"], "--ops");
    assert_unparsable(&["--initial", "1e3"], "--initial");
    assert_refused(&["--stall-timeout", "0"], "--stall-timeout");
}

#[test]
fn malformed_choices_are_refused() {
    assert_unparsable(&["--pick", "zipf"], "--pick");
    assert_unparsable(&["--latency", "sample:0"], "--latency");
    assert_unparsable(&["--mode", "fibers"], "--mode");
}

#[test]
fn holding_after_read_is_refused_where_there_is_no_read_to_hold() {
    assert_refused(
        &["--hold-after-read", "--strategy", "atomic"],
        "--hold-after-read",
    );
}

#[test]
fn a_fork_failing_part_way_stops_every_started_worker() {
    let out = torture()
        .args(["--workers", "200", "--strategy", "atomic"])
        .env("RACEPOOL_FAIL_FORK_AT", "150")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Fork refused: the run could not finish, exit 4 (docs/exit-codes.md).
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("fork failed after 150 of 200 workers"),
        "{stderr}"
    );
    // The binary has exited; its children were killed and reaped, so none is left with it
    // as parent, and none was re-parented alive (checked by name).
    assert!(no_torture_worker_left());
}

fn no_torture_worker_left() -> bool {
    // Workers are re-parented to init if the parent died without reaping; they keep the name.
    let me = std::process::id();
    std::fs::read_dir("/proc").unwrap().flatten().all(|e| {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            return true;
        };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        // Other tests of this binary may be running their own torture concurrently; only
        // orphans (parent 1) would be ours to blame.
        !(comm.trim() == "torture" && pid != me && common::children_of(1).contains(&pid))
    })
}

#[test]
fn help_and_version_exit_zero() {
    assert!(output(&["--help"]).status.success());
    assert!(output(&["--version"]).status.success());
}

#[test]
fn a_scenarios_own_size_flag_is_the_one_named() {
    assert_refused(&["--scenario", "ledger", "--accounts", "0"], "--accounts");
    assert_refused(&["--scenario", "record", "--fields", "0"], "--fields");
    assert_refused(&["--scenario", "cache", "--related", "64"], "--related");
    assert_refused(&["--scenario", "cache", "--writers", "0"], "--writers");
}

#[test]
fn flags_that_would_mean_nothing_are_refused_not_ignored() {
    assert_refused(&["--pause", "0:100"], "--pause");
    assert_refused(&["--pause", "2:0"], "--pause");
    assert_refused(
        &[
            "--hold-before-persist",
            "--strategy",
            "atomic",
            "--slots",
            "1",
        ],
        "--hold-before-persist",
    );
    // An event log only appends: how SQLite writes slots.value does not apply to it.
    let log = std::env::temp_dir().join(format!("racepool-cli-{}.log", std::process::id()));
    let store = format!("log:{}", log.display());
    assert_refused(&["--store", &store, "--persist", "blind"], "--persist");
    assert_refused(&["--persist", "blind"], "--persist");
    assert!(!log.exists(), "refused before the store was made");
    // The 50th visit of a point never comes in 10 updates.
    assert_refused(
        &[
            "--strategy",
            "cas",
            "--ops",
            "10",
            "--crash-at",
            "after-read:50",
        ],
        "--crash-at",
    );
    assert_refused(
        &[
            "--strategy",
            "cas",
            "--ops",
            "10",
            "--stop-at",
            "after-read:11",
        ],
        "--stop-at",
    );
    assert_refused(&["--strategy", "racy,racy"], "--strategy");
    assert_refused(
        &["--scenario", "record", "--fix", "record-lock,record-lock"],
        "--fix",
    );
    // A victim is killed between its first update and its last: one update has no between.
    assert_refused(&["--kill", "1", "--ops", "1"], "--kill");
}

#[test]
fn selftest_rounds_must_be_counted_from_one() {
    assert_unparsable(&["selftest", "shared-write", "--rounds", "0"], "--rounds");
    assert_unparsable(
        &["selftest", "wake", "--scope", "shared", "--rounds", "0"],
        "--rounds",
    );
}
