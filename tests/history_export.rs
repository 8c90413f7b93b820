//! The `--history` export, checked by Jepsen's counter rule as an external checker would
//! apply it (`support/jepsen_counter.rs`, which knows nothing of racepool): every run that
//! `torture verify` verifies passes, with or without killed workers; racy's fails.

#[path = "support/jepsen_counter.rs"]
mod jepsen_counter;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use jepsen_counter::{check, parse_edn, parse_json, Problem, Stats};

/// Generous: the shared CI machine may be heavily loaded; stalls are not what is tested.
const STALL: &str = "600";

fn torture(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_torture"))
        .args(args)
        .env_remove("RACEPOOL_FAIL_FORK_AT")
        .output()
        .expect("the binary runs")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A directory under the temp dir for one test's store and histories, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("racepool-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
    fn path(&self, name: &str) -> String {
        self.0.join(name).to_str().unwrap().to_string()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The history files in `dir`, sorted by name.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut f: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    f.sort();
    f
}

fn check_file(path: &Path) -> Result<Stats, Problem> {
    let text = std::fs::read_to_string(path).unwrap();
    let ops = match path.extension().and_then(|e| e.to_str()) {
        Some("edn") => parse_edn(&text),
        Some("json") => parse_json(&text),
        other => panic!("{}: extension {other:?}", path.display()),
    };
    check(&ops)
}

/// Runs `torture` with a log store and `--history`, asserts exit 0 and that verify agrees;
/// returns the history files.
fn verified_run(scratch: &Scratch, args: &[&str]) -> Vec<PathBuf> {
    let (log, dir) = (scratch.path("run.log"), scratch.path("history"));
    let store = format!("log:{log}");
    let mut all = vec!["--stall-timeout", STALL, "--latency", "off"];
    all.extend_from_slice(&["--store", &store, "--history", &dir]);
    all.extend_from_slice(args);
    let out = torture(&all);
    assert_eq!(out.status.code(), Some(0), "{args:?}\n{}", text(&out));
    let out = torture(&["verify", &log]);
    assert_eq!(out.status.code(), Some(0), "{args:?}\n{}", text(&out));
    files(Path::new(&dir))
}

#[test]
fn verified_runs_pass_the_counter_rule_with_and_without_kills() {
    for strategy in ["atomic", "cas", "futex-lock"] {
        // after-cas: the fetch_add or CAS is applied and not acknowledged; after-write: the
        // lock holder has written. Either way the worker dies with 99 acknowledged updates
        // still in its buffer (--batch 256) and one in flight: none of them persisted.
        let crash = match strategy {
            "futex-lock" => "after-write:100",
            _ => "after-cas:100",
        };
        for (n, (case, faults)) in [
            ("no faults", &[][..]),
            ("--kill 3", &["--kill", "3"][..]),
            ("--crash-at", &["--crash-at", crash][..]),
        ]
        .into_iter()
        .enumerate()
        {
            let scratch = Scratch::new(&format!("export-{strategy}-{n}"));
            let mut args = vec![
                "--workers",
                "20",
                "--ops",
                "500",
                "--strategy",
                strategy,
                "--initial",
                "50",
            ];
            args.extend_from_slice(faults);
            let histories = verified_run(&scratch, &args);
            assert_eq!(histories.len(), 1, "one run, one slot: {histories:?}");
            let stats =
                check_file(&histories[0]).unwrap_or_else(|p| panic!("{strategy}, {case}: {p:?}"));
            assert_eq!(
                stats.initial,
                Some(50),
                "the starting value is in the history"
            );
            // One read per update (what it saw) and the final read.
            assert!(stats.reads > 1, "{stats:?}");
            let last = stats.last_read.unwrap();
            match case {
                "no faults" => {
                    assert_eq!((stats.ok_adds, stats.info_adds), (50 + 20 * 500, 0));
                    assert_eq!(last, 50 + 20 * 500);
                }
                "--crash-at" => {
                    // Without its :info adds the history would fail: the final value holds
                    // updates that reached no store.
                    assert!(stats.ok_adds < last, "{strategy}: {stats:?}");
                    assert_eq!(stats.info_adds, 100, "{strategy}: {stats:?}");
                }
                _ => {}
            }
        }
    }
}

#[test]
fn every_run_and_slot_is_its_own_history() {
    let scratch = Scratch::new("export-slots");
    let histories = verified_run(
        &scratch,
        &[
            "--workers",
            "8",
            "--ops",
            "300",
            "--slots",
            "3",
            "--strategy",
            "atomic,cas",
            "--crash-at",
            "after-cas:40",
        ],
    );
    assert_eq!(histories.len(), 6, "2 runs x 3 slots: {histories:?}");
    for h in &histories {
        let stats = check_file(h).unwrap_or_else(|p| panic!("{}: {p:?}", h.display()));
        // The dead worker's 40 unknown updates (39 acknowledged, 1 in flight, slot not in the
        // record) may have gone to any slot: each slot's history holds them as :info.
        assert_eq!(stats.info_adds, 40, "{}: {stats:?}", h.display());
        let name = h.file_name().unwrap().to_str().unwrap();
        let run: u64 = name.split('-').next().unwrap().parse().unwrap();
        assert!(run < 1 << 53, "run id {run} must survive a float decoder");
        assert_eq!(run as f64 as u64, run);
    }
}

#[test]
fn a_racy_run_fails_the_counter_rule() {
    let scratch = Scratch::new("export-racy");
    let (log, dir) = (scratch.path("racy.log"), scratch.path("history"));
    // --hold-after-read: every worker reads before any writes, so 7 of 8 first updates are lost.
    let out = torture(&[
        "--workers",
        "8",
        "--ops",
        "50",
        "--strategy",
        "racy",
        "--hold-after-read",
        "--stall-timeout",
        STALL,
        "--store",
        &format!("log:{log}"),
        "--history",
        &dir,
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "racy is expected to lose\n{}",
        text(&out)
    );
    let histories = files(Path::new(&dir));
    assert_eq!(histories.len(), 1);
    match check_file(&histories[0]) {
        Err(Problem::OutOfBounds { lower, value, .. }) => assert!(value < lower),
        other => panic!("racy must fail the counter rule: {other:?}"),
    }
    // torture verify names the same run as not verified.
    assert_eq!(torture(&["verify", &log]).status.code(), Some(1));
}

#[test]
fn edn_and_json_hold_the_same_history_from_the_run_and_from_verify() {
    let scratch = Scratch::new("export-formats");
    let log = scratch.path("f.log");
    let store = format!("log:{log}");
    let (edn, json, again) = (
        scratch.path("edn"),
        scratch.path("json"),
        scratch.path("again"),
    );
    let out = torture(&[
        "--workers",
        "6",
        "--ops",
        "100",
        "--strategy",
        "futex-lock",
        "--store",
        &store,
        "--history",
        &edn,
        "--stall-timeout",
        STALL,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    for (dir, format) in [(&json, "json"), (&again, "edn")] {
        let out = torture(&["verify", &log, "--history", dir, "--history-format", format]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    }
    let (e, j, a) = (
        files(Path::new(&edn)),
        files(Path::new(&json)),
        files(Path::new(&again)),
    );
    assert_eq!((e.len(), j.len()), (1, 1));
    assert!(j[0].to_str().unwrap().ends_with(".json"));
    let read = |p: &PathBuf| std::fs::read_to_string(p).unwrap();
    assert_eq!(parse_edn(&read(&e[0])), parse_json(&read(&j[0])));
    assert_eq!(read(&e[0]), read(&a[0]), "the run and verify export alike");
    assert!(check_file(&j[0]).is_ok());
}

#[test]
fn a_run_without_its_end_record_is_not_exported() {
    let scratch = Scratch::new("export-incomplete");
    let log = scratch.path("i.log");
    let out = torture(&[
        "--workers",
        "4",
        "--ops",
        "20",
        "--strategy",
        "atomic",
        "--store",
        &format!("log:{log}"),
        "--stall-timeout",
        STALL,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // Cut the file inside the run's end record (the closing record follows it).
    let bytes = std::fs::read(&log).unwrap();
    let mut end_at = None;
    racepool::history::frame::scan_resync(&bytes, |r| {
        if let Ok(f) = r {
            if let Ok(racepool::history::Record::End(_)) = racepool::history::frame::decode(&f, 0) {
                end_at = Some((f.offset + f.len) as usize);
            }
        }
    });
    let end_at = end_at.expect("a finished run has an end record");
    std::fs::write(&log, &bytes[..end_at - 8]).unwrap();
    let dir = scratch.path("history");
    let out = torture(&["verify", &log, "--history", &dir]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("has no end record"), "{}", text(&out));
    assert_eq!(files(Path::new(&dir)), Vec::<PathBuf>::new());
}
