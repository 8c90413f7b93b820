//! A store that cannot be written fails the run with one clear error: non-zero exit, never
//! "exact", no worker left behind. The file size limit stands in for a full disk; it is set
//! above the shared region (a memfd is sized under the same limit) and below the log.

mod common;

use std::os::unix::process::CommandExt;

use common::{torture, TempPath};

/// Processes whose executable is this test's `torture` binary.
fn tortures_running() -> usize {
    let me = std::fs::canonicalize(env!("CARGO_BIN_EXE_torture")).unwrap();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter(|e| std::fs::read_link(e.path().join("exe")).is_ok_and(|p| p == me))
        .count()
}

#[test]
fn a_log_past_the_file_size_limit_fails_the_run_cleanly() {
    let log = TempPath::new("fsize.log");
    let mut cmd = torture();
    cmd.args([
        "--workers",
        "50",
        "--ops",
        "1000",
        "--strategy",
        "atomic",
        "--batch",
        "8",
        "--stall-timeout",
        "600",
        "--store",
        &log.arg("log:"),
    ]);
    // SAFETY: runs in the child between fork and exec and only makes two async-signal-safe
    // calls (setrlimit, signal) on plain values; nothing is allocated or locked.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 1536 * 1024,
                rlim_max: 1536 * 1024,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // Ignored, the write returns EFBIG instead of killing the writer.
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The store failed mid-run: exit 4 (docs/exit-codes.md).
    assert_eq!(out.status.code(), Some(4), "{stdout}{stderr}");
    assert!(!stdout.contains("exact"), "{stdout}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one error line: {stderr}");
    assert!(
        lines[0].contains("could not persist to") && lines[0].contains("File too large")
            || lines[0].contains("short write"),
        "{stderr}"
    );
    assert_eq!(tortures_running(), 0, "a worker was left behind");
    let shm: Vec<_> = std::fs::read_dir("/dev/shm")
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        !shm.iter().any(|n| n.to_string_lossy().contains("racepool")),
        "{shm:?}"
    );
}
