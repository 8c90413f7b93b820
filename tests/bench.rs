//! `torture bench` through the built binary (forking inside the test harness is unsafe).

use std::path::{Path, PathBuf};
use std::process::Command;

fn torture() -> Command {
    Command::new(env!("CARGO_BIN_EXE_torture"))
}

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

/// Well-formed enough: one root `<svg>` element, every tag closed in order, no stray `<`.
fn check_svg(path: &Path) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(
        text.starts_with("<svg"),
        "{}: does not start with <svg",
        path.display()
    );
    let mut stack: Vec<String> = Vec::new();
    let mut roots = 0;
    let mut rest = text.as_str();
    while let Some(open) = rest.find('<') {
        let close = rest[open..].find('>').expect("every tag ends") + open;
        let tag = &rest[open + 1..close];
        assert!(!tag.contains('<'), "{}: '<' inside a tag", path.display());
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(
                stack.pop().as_deref(),
                Some(name.trim()),
                "{}",
                path.display()
            );
        } else {
            let name = tag.split_whitespace().next().unwrap().trim_end_matches('/');
            if stack.is_empty() {
                roots += 1;
            }
            if !tag.ends_with('/') {
                stack.push(name.to_string());
            }
        }
        rest = &rest[close + 1..];
    }
    assert!(stack.is_empty(), "{}: unclosed {stack:?}", path.display());
    assert_eq!(roots, 1, "{}: one root element", path.display());
    assert!(!text.contains("NaN"), "{}: NaN coordinates", path.display());
}

#[test]
fn quick_bench_writes_every_report_and_correct_strategies_are_exact() {
    let dir = TempDir::new("bench-quick");
    let out = torture()
        .args(["bench", "--quick", "--out"])
        .arg(&dir.0)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "status {:?}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // Progress is hidden when stderr is not a terminal.
    assert!(!String::from_utf8_lossy(&out.stderr).contains("ETA"));
    for f in [
        "report.md",
        "summary.json",
        "summary.csv",
        "machine.json",
        "points.jsonl",
        "throughput.svg",
        "latency.svg",
        "spectrum.svg",
        "racy-loss.svg",
    ] {
        let p = dir.0.join(f);
        assert!(p.is_file(), "{f} missing");
        if f.ends_with(".svg") {
            check_svg(&p);
        }
    }

    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.0.join("summary.json")).unwrap())
            .unwrap();
    let points = summary["points"].as_array().unwrap();
    assert!(!points.is_empty());
    assert_eq!(summary["all_exact"], true);
    for p in points {
        let strategy = p["strategy"].as_str().unwrap();
        let verdict = p["verdict"].as_str().unwrap();
        if strategy == "racy" {
            assert_ne!(verdict, "failed", "{p}");
        } else {
            assert_eq!(verdict, "exact", "{p}");
            assert_eq!(p["lost"], 0, "{p}");
            assert_eq!(p["unexpected"], 0, "{p}");
        }
    }
    // points.jsonl carries what summary.json carries, derived figures included.
    let jsonl = std::fs::read_to_string(dir.0.join("points.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(&lines, points);
    assert!(
        points
            .iter()
            .any(|p| p["workers"] == 4 && p["ideal_ops_per_sec"].is_f64()),
        "derived figures are filled in"
    );
    let csv = std::fs::read_to_string(dir.0.join("summary.csv")).unwrap();
    assert_eq!(csv.lines().count(), points.len() + 1);

    let machine: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.0.join("machine.json")).unwrap())
            .unwrap();
    assert!(machine["cores"].as_u64().unwrap() >= 1);
    assert_eq!(machine["command"][1], "bench");
    // The revision is the one the binary was built from: a full hash, or null (unknown).
    let rev = &machine["git_revision"];
    assert!(rev.is_null() || rev.as_str().unwrap().len() == 40, "{rev}");
    assert!(machine["git_dirty"].is_null() || machine["git_dirty"].is_boolean());
    assert!(machine["started"].as_str().unwrap().ends_with('Z'));
    let report = std::fs::read_to_string(dir.0.join("report.md")).unwrap();
    assert!(report.contains("## What it shows"), "{report}");
    assert!(report.contains("](throughput.svg)"), "{report}");
}

#[test]
fn bad_bench_input_is_one_line_and_exit_2() {
    let dir = TempDir::new("bench-bad");
    for args in [&["--workers", "0"][..], &["--repeat", "0"][..]] {
        let out = torture()
            .args(["bench", "--out"])
            .arg(&dir.0)
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("torture: "), "{err}");
    }
    // A name clap does not know: its whole message, the first line naming the flag.
    let out = torture()
        .args(["bench", "--out"])
        .arg(&dir.0)
        .args(["--strategy", "nope"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let first = err.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("torture: ") && first.contains("--strategy"),
        "{err}"
    );
}

/// A matrix of a few points that takes about a second.
const SMALL: [&str; 14] = [
    "--strategy",
    "atomic,racy",
    "--workers",
    "1,2",
    "--mode",
    "processes",
    "--layout",
    "packed",
    "--repeat",
    "1",
    "--budget-ms",
    "20",
    "--no-warmup",
    "--quick",
];

/// `torture bench [--force] --out DIR` over the small matrix.
fn small_bench(out: &Path, force: bool) -> std::process::Output {
    let mut cmd = torture();
    cmd.arg("bench");
    if force {
        cmd.arg("--force");
    }
    cmd.arg("--out").arg(out).args(SMALL).output().unwrap()
}

#[test]
fn an_earlier_run_is_never_overwritten_without_force() {
    let dir = TempDir::new("bench-clobber");
    let first = small_bench(&dir.0, false);
    assert!(first.status.success(), "{first:?}");
    std::fs::write(dir.0.join("notes.txt"), "mine").unwrap();
    let report = std::fs::read(dir.0.join("summary.json")).unwrap();

    let again = small_bench(&dir.0, false);
    assert_eq!(again.status.code(), Some(2));
    let err = String::from_utf8_lossy(&again.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("--out") && err.contains("--force"), "{err}");
    assert_eq!(std::fs::read(dir.0.join("summary.json")).unwrap(), report);

    let forced = small_bench(&dir.0, true);
    assert!(forced.status.success(), "{forced:?}");
    assert_ne!(std::fs::read(dir.0.join("summary.json")).unwrap(), report);
    // --force replaces the bench's own files and nothing else.
    assert_eq!(
        std::fs::read_to_string(dir.0.join("notes.txt")).unwrap(),
        "mine"
    );
    let names: Vec<String> = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.ends_with(".tmp")), "{names:?}");
    // A memory bench writes every file but the targets' plots.
    for f in racepool::bench::FILES
        .iter()
        .filter(|f| !f.starts_with("targets-"))
    {
        assert!(names.iter().any(|n| n == f), "{f} missing: {names:?}");
    }
}

#[test]
fn an_out_that_is_a_file_is_bad_input() {
    let dir = TempDir::new("bench-file");
    std::fs::write(&dir.0, "not a directory").unwrap();
    let out = small_bench(&dir.0, false);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a directory"), "{err}");
    assert_eq!(std::fs::read_to_string(&dir.0).unwrap(), "not a directory");
    let _ = std::fs::remove_file(&dir.0);
}
