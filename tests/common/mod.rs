//! Helpers shared by the integration tests: the built binary, and temp files that clean up.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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

pub fn torture() -> Command {
    Command::new(env!("CARGO_BIN_EXE_torture"))
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
