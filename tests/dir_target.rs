//! `--target dir:PATH` through the built binary: the generic remote path (a `Target` opened in
//! the parent, a `Session` per worker after the fork, finals read after the reap) on a real
//! directory. racy must lose (its window widened on purpose), flock must be exact run after
//! run, and a directory that cannot take the run is refused before anything forks.

mod common;

use std::path::{Path, PathBuf};

use common::{output, run_json, runs};

/// A fresh directory under the system's temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("racepool-dir-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
    fn target(&self) -> String {
        format!("dir:{}", self.0.display())
    }
    fn files(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn u(v: &serde_json::Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

#[test]
fn racy_on_a_directory_loses_updates_in_every_run_with_a_widened_window() {
    let dir = TempDir::new("racy");
    let (code, s) = run_json(&[
        "--target",
        &dir.target(),
        "--strategy",
        "racy",
        "--workers",
        "8",
        "--ops",
        "50",
        "--race-window",
        "20000",
        "--repeat",
        "10",
        "--latency",
        "off",
    ]);
    assert_eq!(code, 0, "racy is not promised exact: {s}");
    let runs = runs(&s, "racy");
    assert_eq!(runs.len(), 10);
    for run in runs {
        assert_eq!(u(&run["updates"]), 400, "{run}");
        assert!(u(&run["count"]["lost"]) > 0, "the race was missed: {run}");
        // Lost is measured against the files' final values: never more than was applied,
        // and no value appears that nobody wrote.
        assert_eq!(u(&run["count"]["unexpected"]), 0, "{run}");
        assert_eq!(run["verdict"], "race-caught", "{run}");
    }
}

#[test]
fn flock_on_a_directory_is_exact_run_after_run() {
    let dir = TempDir::new("flock");
    let (code, s) = run_json(&[
        "--target",
        &dir.target(),
        "--strategy",
        "flock",
        "--workers",
        "16",
        "--ops",
        "100",
        "--slots",
        "3",
        "--initial",
        "50",
        "--repeat",
        "10",
    ]);
    assert_eq!(code, 0, "{s}");
    let runs = runs(&s, "flock");
    assert_eq!(runs.len(), 10);
    for run in runs {
        assert_eq!(u(&run["updates"]), 1600, "{run}");
        assert_eq!(u(&run["count"]["expected"]), 1600 + 3 * 50, "{run}");
        assert_eq!(u(&run["count"]["observed"]), 1600 + 3 * 50, "{run}");
        assert_eq!(u(&run["count"]["lost"]), 0, "{run}");
        assert_eq!(run["verdict"], "exact", "{run}");
    }
    // What the runs leave is their own slot files, nothing else: 10 runs of 3 slots.
    let files = dir.files();
    assert_eq!(files.len(), 30, "{files:?}");
    assert!(
        files
            .iter()
            .all(|f| f.starts_with("racepool-") && f.contains("-slot-")),
        "{files:?}"
    );
}

#[test]
fn a_directory_that_cannot_take_the_run_is_refused_before_anything_forks() {
    let dir = TempDir::new("refused");
    let file = dir.0.join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    let missing = dir.0.join("missing");
    let cases: [(String, &str); 3] = [
        (format!("dir:{}", file.display()), "not a directory"),
        (format!("dir:{}", missing.display()), "dir:"),
        // Nobody, root included, creates files in /proc.
        ("dir:/proc".to_string(), "not writable"),
    ];
    for (target, says) in &cases {
        let out = output(&["--target", target, "--workers", "2", "--ops", "10"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{target}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
        assert!(
            stderr.contains("--target") && stderr.contains(says),
            "{target}: {stderr}"
        );
        assert!(out.stdout.is_empty());
    }
    // Refused before the slots were made: only the file we put there.
    assert_eq!(dir.files(), vec!["a-file".to_string()]);
    assert!(!Path::new(&missing).exists());
}

#[test]
fn a_strategy_the_directory_does_not_implement_is_refused() {
    let dir = TempDir::new("strategy");
    let out = output(&["--target", &dir.target(), "--strategy", "atomic"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("--strategy atomic") && stderr.contains("racy, flock"),
        "{stderr}"
    );
    assert!(dir.files().is_empty());
}
