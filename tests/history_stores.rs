//! Torture runs with a store, checked by `torture verify`: correct strategies verify, racy
//! and a blind persistence layer are caught, a corrupted log is flagged at its record.

mod common;

use common::{run, TempPath};
use racepool::history::frame;

/// Generous: the shared CI machine may be heavily loaded; stalls are not what is tested.
const STALL: &str = "600";

fn torture_with_store(store: &str, strategies: &str, extra: &[&str]) -> (i32, String) {
    let mut args = vec![
        "--workers",
        "1000",
        "--ops",
        "2",
        "--slots",
        "4",
        "--strategy",
        strategies,
        "--store",
        store,
        "--stall-timeout",
        STALL,
        "--latency",
        "off",
        "--json",
    ];
    args.extend_from_slice(extra);
    let (code, text, _) = run(&args);
    (code, text)
}

fn verified_runs(json: &str) -> Vec<bool> {
    let start = json.find('{').expect("a JSON summary");
    let end = json.rfind('}').expect("a JSON summary");
    let v: serde_json::Value = serde_json::from_str(&json[start..=end]).expect("JSON summary");
    v["strategies"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["runs"].as_array().unwrap().clone())
        .map(|r| r["history"]["verified"].as_bool().expect("a history check"))
        .collect()
}

#[test]
fn every_correct_strategy_verifies_from_the_log_and_from_sqlite() {
    for (name, prefix) in [("all.log", "log:"), ("all.db", "sqlite:")] {
        let store = TempPath::new(name);
        let (code, text) = torture_with_store(
            &store.arg(prefix),
            "atomic,cas,futex-lock,spin-lock,pthread",
            &[],
        );
        assert_eq!(code, 0, "{prefix}\n{text}");
        assert_eq!(verified_runs(&text), vec![true; 5], "{prefix}\n{text}");
        let (code, text, _) = run(&["verify", store.path().to_str().unwrap()]);
        assert_eq!(code, 0, "{text}");
        assert_eq!(text.matches(": verified").count(), 5, "{text}");
        assert!(text.contains("2000 persisted, 2000 acknowledged"), "{text}");
    }
}

#[test]
fn racy_leaves_duplicates_and_witnesses_in_either_store() {
    for (name, prefix) in [("racy.log", "log:"), ("racy.db", "sqlite:")] {
        let store = TempPath::new(name);
        // The scripted interleaving: every worker reads before any writes, so duplicates are
        // certain, not lucky.
        let (code, text) = torture_with_store(&store.arg(prefix), "racy", &["--hold-after-read"]);
        assert_eq!(code, 0, "racy is expected to lose: {text}");
        assert_eq!(verified_runs(&text), vec![false]);
        let (code, text, _) = run(&["verify", store.path().to_str().unwrap()]);
        assert_eq!(code, 1, "{text}");
        assert!(text.contains("NOT verified"), "{text}");
        let dups: u64 = text
            .split("duplicates ")
            .nth(1)
            .and_then(|s| s.split(',').next())
            .and_then(|n| n.parse().ok())
            .expect("a duplicate count");
        assert!(dups > 0, "{text}");
        assert!(
            text.contains("witness: worker ") && text.contains(" and both wrote "),
            "{text}"
        );
    }
}

#[test]
fn a_blind_update_rolls_sqlite_back_and_a_monotonic_one_does_not() {
    let blind = TempPath::new("blind.db");
    let script = [
        "--workers",
        "16",
        "--ops",
        "1",
        "--strategy",
        "atomic",
        "--hold-before-persist",
        "--stall-timeout",
        STALL,
    ];
    let mut args = script.to_vec();
    let spec = blind.arg("sqlite:");
    args.extend(["--store", &spec, "--persist", "blind"]);
    let (code, text, _) = run(&args);
    assert_eq!(code, 1, "blind must fail the run: {text}");
    assert!(
        text.contains("slot 0 is stored as 1, behind the region's 16"),
        "{text}"
    );
    assert!(!text.contains(" exact\n"), "{text}");
    let (code, text, _) = run(&["verify", blind.path().to_str().unwrap()]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("behind the region's 16"), "{text}");

    let monotonic = TempPath::new("monotonic.db");
    let mut args = script.to_vec();
    let spec = monotonic.arg("sqlite:");
    args.extend(["--store", &spec, "--persist", "monotonic"]);
    let (code, text, _) = run(&args);
    assert_eq!(code, 0, "{text}");
    let (code, text, _) = run(&["verify", monotonic.path().to_str().unwrap()]);
    assert_eq!(code, 0, "{text}");
}

/// A small finished log and the byte offsets where its records start.
fn finished_log(name: &str) -> (TempPath, Vec<u8>, Vec<usize>) {
    let log = TempPath::new(name);
    let (code, text, _) = run(&[
        "--workers",
        "8",
        "--ops",
        "20",
        "--slots",
        "2",
        "--strategy",
        "atomic",
        "--store",
        &log.arg("log:"),
        "--stall-timeout",
        STALL,
    ]);
    assert_eq!(code, 0, "{text}");
    let bytes = std::fs::read(log.path()).unwrap();
    let mut starts = Vec::new();
    frame::scan(&bytes, |f| starts.push(f.offset as usize)).expect("a clean log");
    assert_eq!(
        starts.len(),
        1 + 8 * 20 + 1 + 1,
        "header, events, end, closing"
    );
    (log, bytes, starts)
}

#[test]
fn one_flipped_bit_is_flagged_every_time_at_its_record() {
    let (log, bytes, starts) = finished_log("flip.log");
    // xorshift: a fixed sequence of "random" bits, the same on every run.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut flagged = 0;
    for _ in 0..100 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let bit = (x % (bytes.len() as u64 * 8)) as usize;
        let mut b = bytes.clone();
        b[bit / 8] ^= 1 << (bit % 8);
        std::fs::write(log.path(), &b).unwrap();
        let (code, text, _) = run(&["verify", log.path().to_str().unwrap()]);
        let record = starts[starts.iter().rposition(|&s| s <= bit / 8).unwrap()];
        let want = format!("corrupt record at byte offset {record}:");
        if code == 1 && text.contains(&want) {
            flagged += 1;
        } else {
            panic!(
                "bit {bit} (byte {}): exit {code}, wanted {want:?}\n{text}",
                bit / 8
            );
        }
    }
    assert_eq!(flagged, 100);
}

#[test]
fn a_cut_log_is_a_torn_tail_and_never_verified() {
    let (log, bytes, starts) = finished_log("torn.log");
    let (end, close) = (starts[starts.len() - 2], starts[starts.len() - 1]);
    // Inside the closing record: the run is whole, the store is not.
    for keep in [close + 1, close + frame::HEADER, bytes.len() - 1] {
        std::fs::write(log.path(), &bytes[..keep]).unwrap();
        let (code, text, _) = run(&["verify", log.path().to_str().unwrap()]);
        assert_eq!(code, 1, "{text}");
        assert!(
            text.contains(&format!(
                "torn tail: the last {} bytes (from byte offset {close})",
                keep - close
            )),
            "{text}"
        );
        assert!(
            text.contains("160 persisted") && text.contains(": verified"),
            "{text}"
        );
        assert!(text.contains("INCOMPLETE, not verified"), "{text}");
    }
    // Inside the run's end record: the run itself is incomplete.
    for keep in [end + 1, end + frame::HEADER, close - 1] {
        std::fs::write(log.path(), &bytes[..keep]).unwrap();
        let (code, text, _) = run(&["verify", log.path().to_str().unwrap()]);
        assert_eq!(code, 1, "{text}");
        assert!(
            text.contains(
                "160 persisted, ? (no end record) acknowledged: INCOMPLETE, not verified"
            ),
            "{text}"
        );
        assert!(!text.contains(": verified"), "{text}");
    }
}

#[test]
fn killed_workers_with_the_log_verify_within_their_bounds() {
    // --kill lands when the watcher gets the CPU; --crash-at makes one death certain.
    for (strategy, crash) in [
        ("atomic", "after-cas:500"),
        ("futex-lock", "after-write:500"),
    ] {
        let log = TempPath::new(&format!("kill-{strategy}.log"));
        let (code, text, _) = run(&[
            "--workers",
            "200",
            "--strategy",
            strategy,
            "--store",
            &log.arg("log:"),
            "--kill",
            "20",
            "--crash-at",
            crash,
            "--stall-timeout",
            STALL,
            "--json",
        ]);
        assert_eq!(code, 0, "{strategy}: {text}");
        let start = text.find('{').expect("a JSON summary");
        let v: serde_json::Value = serde_json::from_str(&text[start..]).expect("JSON summary");
        let r = &v["strategies"][0]["runs"][0];
        let h = &r["history"];
        assert_eq!(h["verified"], true, "{strategy}: {h}");
        assert_eq!(r["count"]["lost"], 0, "{strategy}");
        assert_eq!(r["count"]["unexpected"], 0, "{strategy}");
        let died = r["faults"]["deaths"].as_array().map_or(0, |d| d.len());
        assert!(
            died >= 1,
            "{strategy}: the --crash-at worker must die\n{text}"
        );
        assert_eq!(
            h["killed"], died as u64,
            "{strategy}: the end record names the dead"
        );
        // What is missing is bounded by what the killed workers had not persisted.
        assert!(h["gaps"].as_u64() <= h["missing_allowed"].as_u64(), "{h}");
        let (code, text, _) = run(&["verify", log.path().to_str().unwrap()]);
        assert_eq!(code, 0, "{strategy}: {text}");
        assert!(text.contains("killed workers"), "{strategy}: {text}");
    }
}

#[test]
fn sqlite_with_deaths_is_a_usage_error() {
    let db = TempPath::new("kill.db");
    for faults in [["--kill", "20"], ["--crash-at", "after-cas:3"]] {
        let (code, _, out) = run(&[
            "--workers",
            "200",
            "--strategy",
            "atomic",
            "--store",
            &db.arg("sqlite:"),
            faults[0],
            faults[1],
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(code, 2, "{faults:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{faults:?}: {stderr}");
        assert!(
            stderr.contains("--store sqlite with --kill or --crash-at is not supported"),
            "{faults:?}: {stderr}"
        );
        assert!(
            !db.path().exists(),
            "{faults:?}: refused before the store is made"
        );
    }
}
