//! The two properties every strategy relies on, tested directly, with negative controls.

mod common;

use common::torture;
use serde_json::Value;

fn selftest(args: &[&str]) -> Value {
    let out = torture().arg("selftest").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_forked_childs_write_is_seen_through_the_shared_map_and_not_through_map_anon() {
    let r = selftest(&["shared-write", "--rounds", "100"]);
    assert_eq!(r["seen_through_shared_map"], 100, "{r}");
    // Negative control: memmap2's map_anon is MAP_PRIVATE, copy-on-write after fork.
    assert_eq!(r["seen_through_anon_map"], 0, "{r}");
}

#[test]
fn a_shared_futex_wake_reaches_a_waiter_in_another_process_every_time() {
    let r = selftest(&[
        "wake",
        "--scope",
        "shared",
        "--rounds",
        "100",
        "--timeout-ms",
        "1000",
    ]);
    assert_eq!(r["woken"], 100, "{r}");
    assert_eq!(r["timed_out"], 0, "{r}");
    let latency = r["max_wake_latency_ms"].as_f64().unwrap();
    assert!(latency < 100.0, "a wake took {latency} ms to land");
}

#[test]
fn a_private_futex_wake_never_reaches_a_waiter_in_another_process() {
    // Negative control: atomic-wait's FUTEX_PRIVATE_FLAG keys the wait on the address space.
    let r = selftest(&[
        "wake",
        "--scope",
        "private",
        "--rounds",
        "3",
        "--timeout-ms",
        "150",
    ]);
    assert_eq!(r["woken"], 0, "{r}");
    assert_eq!(r["timed_out"], 3, "{r}");
}
