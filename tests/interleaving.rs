//! The Hermitage lost-update script: two workers held right after their read. Deterministic:
//! the bug shows on every run, the fixes hold on every run.

mod common;

use common::{run_json, runs};

const SCRIPT: &[&str] = &[
    "--workers",
    "2",
    "--ops",
    "1",
    "--hold-after-read",
    "--repeat",
    "20",
];

fn scripted(strategy: &str) -> (i32, serde_json::Value) {
    let mut args = SCRIPT.to_vec();
    args.extend(["--strategy", strategy]);
    run_json(&args)
}

#[test]
fn racy_ends_at_one_of_two_every_time() {
    let (code, s) = scripted("racy");
    assert_eq!(code, 0, "racy losing is the race caught, not a failure");
    for run in runs(&s, "racy") {
        assert_eq!(run["count"]["observed"], 1, "{run}");
        assert_eq!(run["count"]["lost"], 1, "{run}");
    }
}

#[test]
fn cas_ends_at_two_with_exactly_one_failed_compare_exchange() {
    let (code, s) = scripted("cas");
    assert_eq!(code, 0);
    for run in runs(&s, "cas") {
        assert_eq!(run["count"]["observed"], 2, "{run}");
        assert_eq!(run["retries"], 1, "{run}");
    }
}

#[test]
fn futex_lock_ends_at_two_with_the_second_worker_queued_on_the_lock() {
    let (code, s) = scripted("futex-lock");
    assert_eq!(code, 0);
    for run in runs(&s, "futex-lock") {
        assert_eq!(run["count"]["observed"], 2, "{run}");
        // The holder waited until the other worker marked the word contended.
        assert!(run["waits"].as_u64().unwrap() >= 1, "{run}");
        // The holder's unlock woke it; it then held the lock marked CONTENDED, so its own
        // unlock may send one more (unneeded) wake, as in std's futex mutex.
        assert!((1..=2).contains(&run["wakes"].as_u64().unwrap()), "{run}");
    }
}

#[test]
fn the_script_in_thread_mode_loses_the_same_update() {
    let mut args = SCRIPT.to_vec();
    args.extend(["--strategy", "racy,cas,futex-lock", "--mode", "threads"]);
    let (_, s) = run_json(&args);
    assert!(runs(&s, "racy").iter().all(|r| r["count"]["observed"] == 1));
    assert!(runs(&s, "cas")
        .iter()
        .all(|r| r["count"]["observed"] == 2 && r["retries"] == 1));
    assert!(runs(&s, "futex-lock")
        .iter()
        .all(|r| r["count"]["observed"] == 2));
}
