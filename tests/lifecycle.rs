//! The parent dying must not leave workers behind; nothing may be left in /dev/shm.

mod common;

use std::time::{Duration, Instant};

use common::{alive, children_of, torture};

#[test]
fn killing_the_parent_kills_every_worker_within_a_second() {
    let mut parent = torture()
        .args([
            "--workers",
            "40",
            "--ops",
            "50000000",
            "--strategy",
            "futex-lock",
            "--latency",
            "off",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = parent.id();

    // Observe (not guess) that every worker exists before killing the parent.
    let deadline = Instant::now() + Duration::from_secs(30);
    let workers = loop {
        let kids = children_of(pid);
        if kids.len() == 40 {
            break kids;
        }
        assert!(
            Instant::now() < deadline,
            "only {} workers appeared",
            kids.len()
        );
        std::thread::yield_now();
    };

    parent.kill().unwrap(); // SIGKILL: no chance to clean up; PR_SET_PDEATHSIG must do it.
    let killed_at = Instant::now();
    parent.wait().unwrap();
    loop {
        let left: Vec<u32> = workers.iter().copied().filter(|&w| alive(w)).collect();
        if left.is_empty() {
            break;
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(1),
            "workers {left:?} outlived their parent by 1 s"
        );
        std::thread::yield_now();
    }
}

#[test]
fn a_run_leaves_no_shared_memory_file() {
    let before = shm_entries();
    let out = torture()
        .args(["--workers", "20", "--ops", "100"])
        .output()
        .unwrap();
    assert!(out.status.success());
    // The region is a memfd: it has no name in /dev/shm to leave behind.
    assert_eq!(shm_entries(), before);
    assert!(!before.iter().any(|n| n.contains("racepool")), "{before:?}");
}

fn shm_entries() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/dev/shm")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}
