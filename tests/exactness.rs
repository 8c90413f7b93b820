//! Every strategy that promises exactness lands exactly, with 1000 contending workers, on one
//! slot and on 64, in process and thread mode, run after run. racy must lose (the harness can
//! catch a race).

mod common;

use common::{run_json, runs};

const CORRECT: &str = "atomic,cas,futex-lock,spin-lock,pthread";

fn assert_exact(mode: &str, slots: &str) {
    let (code, s) = run_json(&[
        "--workers",
        "1000",
        "--ops",
        "200",
        "--slots",
        slots,
        "--mode",
        mode,
        "--repeat",
        "5",
        "--strategy",
        CORRECT,
        "--pick",
        "hot:50",
    ]);
    assert_eq!(code, 0, "{s}");
    for name in CORRECT.split(',') {
        let runs = runs(&s, name);
        assert_eq!(runs.len(), 5);
        for run in runs {
            assert_eq!(run["updates"], 200_000, "{name}: {run}");
            assert_eq!(run["count"]["expected"], 200_000, "{name}: {run}");
            assert_eq!(run["count"]["observed"], 200_000, "{name}: {run}");
            assert_eq!(run["count"]["lost"], 0, "{name}");
            assert_eq!(run["verdict"], "exact", "{name}");
        }
    }
    assert_eq!(s["all_exact"], true);
}

#[test]
fn correct_strategies_are_exact_with_1000_processes_on_one_slot() {
    assert_exact("processes", "1");
}

#[test]
fn correct_strategies_are_exact_with_1000_processes_on_64_slots() {
    assert_exact("processes", "64");
}

#[test]
fn correct_strategies_are_exact_with_1000_threads_on_one_slot() {
    assert_exact("threads", "1");
}

#[test]
fn correct_strategies_are_exact_with_1000_threads_on_64_slots() {
    assert_exact("threads", "64");
}

#[test]
fn initial_values_are_counted_like_the_poll_that_already_had_50_votes() {
    let (code, s) = run_json(&[
        "--workers",
        "25",
        "--ops",
        "1",
        "--initial",
        "50",
        "--strategy",
        "atomic,futex-lock",
    ]);
    assert_eq!(code, 0);
    for name in ["atomic", "futex-lock"] {
        assert_eq!(runs(&s, name)[0]["count"]["observed"], 75);
    }
}

#[test]
fn racy_with_a_widened_window_loses_updates_in_at_least_19_of_20_runs() {
    let (code, s) = run_json(&[
        "--workers",
        "200",
        "--ops",
        "50",
        "--strategy",
        "racy",
        "--race-window",
        "20000",
        "--repeat",
        "20",
    ]);
    assert_eq!(code, 0, "the race being caught is not a failure");
    let lossy = runs(&s, "racy")
        .iter()
        .filter(|r| r["count"]["lost"].as_u64().unwrap() > 0)
        .count();
    assert!(lossy >= 19, "lost updates in only {lossy} of 20 runs");
    assert_eq!(s["strategies"][0]["verdict"], "race-caught");
    // Lost is measured, never more than what was applied, and never "unexpected" value.
    for run in runs(&s, "racy") {
        assert_eq!(run["count"]["unexpected"], 0);
    }
}

#[test]
fn the_table_says_how_many_runs_lost_updates() {
    let out = common::output(&[
        "--workers",
        "50",
        "--ops",
        "50",
        "--strategy",
        "racy,atomic",
        "--race-window",
        "20000",
        "--repeat",
        "3",
    ]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("race caught in "), "{text}");
    assert!(text.contains("exact in 3 of 3 runs"), "{text}");
}
