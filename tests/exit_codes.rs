//! The exit-code contract (docs/exit-codes.md): output that cannot be written ends with one
//! line and exit 4, never a panic; a selftest exits 1 when its property does not hold.

use std::fs::OpenOptions;
use std::process::{Command, Output, Stdio};

fn torture(args: &[&str], stdout: Stdio) -> Output {
    Command::new(env!("CARGO_BIN_EXE_torture"))
        .args(args)
        .env_remove("RACEPOOL_FAIL_FORK_AT")
        .stdout(stdout)
        .output()
        .expect("the binary runs")
}

/// stdout is /dev/full: every write fails with ENOSPC.
fn full() -> Stdio {
    OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full exists on Linux")
        .into()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A short run.
const RUN: &[&str] = &["--workers", "4", "--ops", "10", "--strategy", "atomic"];

/// A log with one finished run, removed when dropped.
struct Log(std::path::PathBuf);

impl Log {
    fn new() -> Log {
        let path = std::env::temp_dir().join(format!("racepool-{}-exit.log", std::process::id()));
        let store = format!("log:{}", path.display());
        let args: Vec<&str> = RUN.iter().copied().chain(["--store", &store]).collect();
        let out = torture(&args, Stdio::null());
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        Log(path)
    }
}

impl Drop for Log {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn a_full_stdout_is_exit_4_with_one_line_and_no_panic() {
    let log = Log::new();
    let log = log.0.to_str().unwrap();
    let json: Vec<&str> = RUN.iter().copied().chain(["--json"]).collect();
    let cases: [&[&str]; 7] = [
        RUN,
        &json,
        &["verify", log],
        &["verify", log, "--json"],
        &["selftest", "shared-write", "--rounds", "2"],
        &["selftest", "wake", "--scope", "shared", "--rounds", "2"],
        &["--help"],
    ];
    for args in cases {
        let out = torture(args, full());
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(4), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: one line: {err}");
        assert!(
            err.contains("stdout") && err.contains("No space left"),
            "{args:?}: {err}"
        );
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

fn selftest(args: &[&str]) -> (Option<i32>, serde_json::Value, String) {
    let mut all = vec!["selftest"];
    all.extend_from_slice(args);
    let out = torture(&all, Stdio::piped());
    let report = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out.status.code(), report, stderr(&out))
}

#[test]
fn a_selftest_exits_0_when_its_property_holds() {
    for args in [
        &["shared-write", "--rounds", "3"][..],
        &["wake", "--scope", "shared", "--rounds", "3"],
        // The negative control, with its defaults: no wake may cross processes.
        &["wake", "--scope", "private"],
    ] {
        let (code, report, err) = selftest(args);
        assert_eq!(code, Some(0), "{args:?}: {report} {err}");
        assert_eq!(report["holds"], true, "{args:?}: {report}");
        assert!(err.is_empty(), "{args:?}: {err}");
    }
    let (_, report, _) = selftest(&["wake", "--scope", "private"]);
    assert!(
        report["property"]
            .as_str()
            .unwrap()
            .starts_with("negative control"),
        "{report}"
    );
    // Bounded by default: every private round waits out its timeout.
    let budget = report["rounds"].as_u64().unwrap() * report["timeout_ms"].as_u64().unwrap();
    assert!(budget <= 3000, "{report}");
}

#[test]
fn a_selftest_exits_1_when_its_property_does_not_hold() {
    // Each scope checked with the other scope's futex flag: the property must fail.
    for (scope, flag) in [("shared", "private"), ("private", "shared")] {
        let (code, report, err) = selftest(&[
            "wake",
            "--scope",
            scope,
            "--use-flag",
            flag,
            "--rounds",
            "2",
            "--timeout-ms",
            "100",
        ]);
        assert_eq!(code, Some(1), "{scope}: {report} {err}");
        assert_eq!(report["holds"], false, "{scope}: {report}");
        assert_eq!(err.lines().count(), 1, "{scope}: {err}");
        assert!(err.contains("does NOT hold"), "{scope}: {err}");
    }
}

#[test]
fn a_selftest_of_zero_rounds_is_refused() {
    for args in [
        &["shared-write", "--rounds", "0"][..],
        &["wake", "--scope", "shared", "--rounds", "0"],
    ] {
        let (code, _, err) = selftest(args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains("--rounds"), "{args:?}: {err}");
    }
}
