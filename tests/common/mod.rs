//! Runs the built `torture` binary. Integration tests never fork inside the test harness
//! (it is multi-threaded); they drive the binary, which forks while single-threaded.
#![allow(dead_code)]

pub mod services;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub fn torture() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_torture"));
    cmd.env_remove("RACEPOOL_FAIL_FORK_AT");
    cmd
}

/// Runs `torture ARGS --json` and returns the exit code and the parsed summary.
pub fn run_json(args: &[&str]) -> (i32, Value) {
    let out = torture()
        .args(args)
        .arg("--json")
        .output()
        .expect("torture runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): stdout={stdout} stderr={}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().expect("exited, not killed"), summary)
}

pub fn output(args: &[&str]) -> Output {
    torture().args(args).output().expect("torture runs")
}

/// The runs of the strategy named `name` in a summary.
pub fn runs<'a>(summary: &'a Value, name: &str) -> &'a Vec<Value> {
    summary["strategies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["strategy"] == name)
        .unwrap_or_else(|| panic!("no strategy {name}"))["runs"]
        .as_array()
        .unwrap()
}

/// Pids of processes whose parent is `parent`, read from /proc.
pub fn children_of(parent: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the command name, which is in parentheses and may hold spaces.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let ppid = rest
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(parent) {
            out.push(pid);
        }
    }
    out
}

pub fn alive(pid: u32) -> bool {
    // A zombie still has a /proc entry; it is dead for our purposes.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !matches!(
            stat.rsplit_once(')')
                .and_then(|(_, r)| r.split_whitespace().next()),
            Some("Z") | Some("X")
        ),
        Err(_) => false,
    }
}

/// A file name under the temp dir, unique to this test process; removed (with SQLite's
/// companions) when dropped.
pub struct TempPath(pub PathBuf);

impl TempPath {
    pub fn new(name: &str) -> TempPath {
        TempPath(std::env::temp_dir().join(format!("racepool-{}-{name}", std::process::id())))
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
    pub fn arg(&self, prefix: &str) -> String {
        format!("{prefix}{}", self.0.display())
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm", "-journal", ".lock"] {
            let mut p = self.0.as_os_str().to_owned();
            p.push(suffix);
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Runs `torture` with `args`; returns (exit code, stdout + stderr).
pub fn run(args: &[&str]) -> (i32, String, Output) {
    let out = torture().args(args).output().expect("the binary runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text, out)
}
