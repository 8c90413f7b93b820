//! What is done to a run from outside it, while it runs.
//!
//! Workers SIGKILLed from outside the run (as the OOM killer or an operator would) are data,
//! exactly like `--kill` deaths: the survivors finish, a lock a dead worker held is recovered,
//! the accounting is bounded (acknowledged ≤ final ≤ acknowledged + in flight), the summary is
//! printed with each death marked unplanned, and the exit code is 3.
//!
//! The test watches the run through its own shared region (the run's memfd, opened through
//! `/proc/PID/fd` and checked by `Region::attach`): it kills only once the start barrier is
//! released, and only workers past it with most of their updates left, so every kill lands in
//! the measured window. No sleep hopes for an interleaving; the polls wait for
//! states the run announces.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use racepool::region::{status, Region};
use serde_json::Value;

const WORKERS: usize = 1000;
const VICTIMS: usize = 20;
const STALL_SECS: u64 = 30;

/// One run of a thousand workers at a time on the machine.
static THOUSAND: Mutex<()> = Mutex::new(());

/// The run's region, once `pid` has mapped it: its memfd is the one named "racepool".
fn region_of(pid: u32, workers: usize, deadline: Instant) -> Region {
    loop {
        assert!(Instant::now() < deadline, "no racepool region in {pid}");
        if let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
            for fd in fds.flatten() {
                let is_region = std::fs::read_link(fd.path())
                    .is_ok_and(|l| l.to_string_lossy() == "/memfd:racepool (deleted)");
                if !is_region {
                    continue;
                }
                // Until its creator has written the header, attach refuses it: look again.
                let opened = File::options().read(true).write(true).open(fd.path());
                if let Ok(Ok(region)) = opened.map(Region::attach) {
                    assert_eq!(region.worker_count(), workers);
                    return region;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// SIGKILLs `pid` if it is still a child of `parent`: through a pidfd, so a PID recycled
/// meanwhile (the worker exited and was reaped) can never be hit.
fn kill_child(parent: u32, pid: u32) -> bool {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) } as i32;
    if fd < 0 {
        return false;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
    let ours = fields.get(1) == Some(&parent.to_string().as_str()) && fields.first() != Some(&"Z");
    // SAFETY: `fd` is the pidfd opened above (it pins the process the stat was read of); a
    // null siginfo and flags 0 send a plain SIGKILL; the descriptor is ours to close.
    let sent = ours
        && unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                fd,
                libc::SIGKILL,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        } == 0;
    // SAFETY: closes the descriptor opened above, once.
    unsafe { libc::close(fd) };
    sent
}

/// The measured window opens when the parent releases the barrier.
fn wait_for_release(region: &Region, deadline: Instant) {
    while region.header().go.load(Relaxed) == 0 {
        assert!(Instant::now() < deadline, "the barrier was never released");
        std::thread::yield_now();
    }
}

struct Round {
    code: i32,
    summary: Value,
    stderr: String,
    killed: Vec<usize>,
    /// From the last kill to the run's exit.
    after_kills: Duration,
}

/// One run of `strategy` with 1000 workers of `ops` updates on 8 slots, 20 of them SIGKILLed
/// from here once the window is open.
fn round(strategy: &str, ops: u64, store: Option<&str>) -> Round {
    let ops_arg = ops.to_string();
    let stall = STALL_SECS.to_string();
    let mut args = vec![
        "--strategy",
        strategy,
        "--workers",
        "1000",
        "--ops",
        &ops_arg,
        "--slots",
        "8",
        "--latency",
        "off",
        "--stall-timeout",
        &stall,
        "--json",
    ];
    if let Some(store) = store {
        // Every record durable before its update is acknowledged: each update waits for the
        // disk, so a thousand workers stay mid-run long enough to be found there.
        args.extend(["--store", store, "--fsync", "every"]);
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_torture"))
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("torture starts");
    let parent = child.id();
    let region = region_of(parent, WORKERS, Instant::now() + Duration::from_secs(120));
    let deadline = Instant::now() + Duration::from_secs(120);
    wait_for_release(&region, deadline);
    // Victims: past the barrier (running), with a tenth of their updates or more still to make
    // (under a contended lock, most of those have not made their first one yet: they wait for
    // it). A kill takes microseconds; a tenth of the updates takes far longer.
    let mut killed = Vec::new();
    while killed.len() < VICTIMS {
        assert!(
            Instant::now() < deadline,
            "only {} victims found",
            killed.len()
        );
        if let Ok(Some(st)) = child.try_wait() {
            panic!(
                "{strategy}: the run ended ({st}) before {VICTIMS} victims were found ({} were): give it more --ops",
                killed.len()
            );
        }
        for w in 0..WORKERS {
            if killed.len() == VICTIMS {
                break;
            }
            let area = region.worker(w);
            let done = area.completed.load(Relaxed);
            let running = area.status.load(Relaxed) == status::RUNNING;
            if running && done < ops - ops / 10 && !killed.contains(&w) {
                let pid = area.pid.load(Relaxed);
                if kill_child(parent, pid) {
                    killed.push(w);
                }
            }
        }
    }
    let killed_at = Instant::now();
    drop(region);
    let out = child.wait_with_output().expect("torture ends");
    let after_kills = killed_at.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let summary: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!("{strategy}: no JSON summary ({e}): {stdout}\n{stderr}");
    });
    Round {
        code: out.status.code().expect("exited"),
        summary,
        stderr,
        killed,
        after_kills,
    }
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

/// What must hold after every round.
fn assert_bounded(strategy: &str, r: &Round) {
    let run = &r.summary["strategies"][0]["runs"][0];
    let f = &run["faults"];
    let deaths = f["deaths"].as_array().expect("deaths are reported");
    assert_eq!(
        r.code, 3,
        "{strategy}: unplanned deaths exit 3: {}",
        r.stderr
    );
    assert!(
        r.after_kills < Duration::from_secs(STALL_SECS),
        "{strategy}: took {:?} after the kills",
        r.after_kills
    );
    // Each victim had a tenth of its updates left or more when the kill was sent: it died of
    // it.
    assert!(
        deaths.len() * 10 >= VICTIMS * 9 && deaths.len() <= VICTIMS,
        "{strategy}: {} of {VICTIMS} kills landed: {f}",
        deaths.len()
    );
    for d in deaths {
        assert_eq!(d["cause"], "unplanned", "{f}");
        assert_eq!(d["planned"], false, "{f}");
        assert!(
            r.killed.contains(&(u(&d["worker"]) as usize)),
            "{strategy}: worker {} died but was not killed by the test",
            d["worker"]
        );
    }
    assert_eq!(u(&f["unplanned"]), deaths.len() as u64, "{f}");
    // The bounds: nothing acknowledged is missing, nothing unattempted is there.
    assert_eq!(u(&run["count"]["lost"]), 0, "{strategy}: {run}");
    assert_eq!(u(&run["count"]["unexpected"]), 0, "{strategy}: {run}");
    assert_eq!(u(&f["lock_steals"]), 0, "{strategy}: {f}");
    if strategy == "futex-lock" {
        // Every lock a dead worker held was freed by the parent.
        let held = deaths.iter().filter(|d| !d["holding"].is_null()).count() as u64;
        assert_eq!(u(&f["lock_recoveries"]), held, "{f}");
    }
    // The survivors finished every update.
    let updates = u(&run["updates"]);
    let dead_acked: u64 = deaths.iter().map(|d| u(&d["acknowledged"])).sum();
    let ops = u(&run["ops_per_worker"]);
    assert_eq!(
        updates,
        (WORKERS - deaths.len()) as u64 * ops + dead_acked,
        "{strategy}: {run}"
    );
    assert!(r.stderr.contains("unplanned"), "{}", r.stderr);
}

#[test]
fn twenty_workers_killed_from_outside_are_data_and_the_run_exits_3() {
    let _one = THOUSAND.lock().unwrap_or_else(|e| e.into_inner());
    for (strategy, ops) in [
        ("futex-lock", 20_000),
        ("pthread", 20_000),
        ("cas", 100_000),
        ("atomic", 100_000),
    ] {
        for _ in 0..5 {
            let r = round(strategy, ops, None);
            assert_bounded(strategy, &r);
        }
    }
}

#[test]
fn killed_from_outside_with_the_log_verify_agrees_within_the_bounds() {
    let _one = THOUSAND.lock().unwrap_or_else(|e| e.into_inner());
    for strategy in ["futex-lock", "pthread", "cas", "atomic"] {
        let log: PathBuf = std::env::temp_dir().join(format!(
            "racepool-external-{}-{strategy}.log",
            std::process::id()
        ));
        let store = format!("log:{}", log.display());
        let r = round(strategy, 40, Some(&store));
        assert_bounded(strategy, &r);
        let h = &r.summary["strategies"][0]["runs"][0]["history"];
        let deaths = r.summary["strategies"][0]["runs"][0]["faults"]["deaths"]
            .as_array()
            .map_or(0, |d| d.len());
        assert_eq!(h["verified"], true, "{strategy}: {h}");
        assert_eq!(
            u(&h["killed"]),
            deaths as u64,
            "the end record names the dead: {h}"
        );
        let out = Command::new(env!("CARGO_BIN_EXE_torture"))
            .args(["verify", log.to_str().unwrap()])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let _ = std::fs::remove_file(&log);
        assert_eq!(out.status.code(), Some(0), "{strategy}: {text}");
        assert!(text.contains("killed workers"), "{strategy}: {text}");
    }
}

#[test]
fn a_target_that_fails_mid_run_ends_the_run_with_exit_4_and_one_line() {
    // The slot files vanish once the window is open: every worker's next update cannot open
    // its slot (Fatal), and the run ends saying so, with no verdict.
    let dir = std::env::temp_dir().join(format!("racepool-fatal-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_torture"))
        .args([
            "--target",
            &format!("dir:{}", dir.display()),
            "--strategy",
            "flock",
            "--workers",
            "4",
            "--ops",
            "1000000",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let region = region_of(child.id(), 4, deadline);
    wait_for_release(&region, deadline);
    // Begun, far from done.
    while (0..4).all(|w| region.worker(w).completed.load(Relaxed) == 0) {
        assert!(Instant::now() < deadline, "no update began");
        std::thread::yield_now();
    }
    for f in std::fs::read_dir(&dir).unwrap().flatten() {
        std::fs::remove_file(f.path()).unwrap();
    }
    drop(region);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains("target failed mid-run"), "{stderr}");
    assert!(out.stdout.is_empty(), "no verdict");
}

/// The done barrier: a worker whose loop has ended waits there until every other's has, so its
/// post-loop work never takes a CPU from one still updating. A worker that dies before it gets
/// there must not hold the others up: the parent counts it out when it reaps it. Here one
/// worker is stopped at the start, the others finish and wait (their loops ended, their
/// reports not yet published), then the stopped one is SIGKILLed: the run ends at once, exit
/// 3, with the bounds held.
#[test]
fn a_worker_killed_while_the_others_wait_at_the_done_barrier_holds_nobody_up() {
    const N: usize = 8;
    const OPS: u64 = 1_000_000;
    let ops = OPS.to_string();
    let child = Command::new(env!("CARGO_BIN_EXE_torture"))
        .args(["--strategy", "atomic", "--workers", "8", "--ops", &ops])
        .args(["--slots", "1", "--latency", "off", "--stall-timeout", "60"])
        .arg("--json")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("torture starts");
    let parent = child.id();
    let deadline = Instant::now() + Duration::from_secs(60);
    let region = region_of(parent, N, deadline);
    // Every worker has arrived at the start barrier: stop worker 0 there (or, released
    // already, early in its loop).
    while region.header().arrived.load(Relaxed) < N as u32 {
        assert!(Instant::now() < deadline, "the workers never arrived");
        std::thread::yield_now();
    }
    let victim = region.worker(0);
    let pid = victim.pid.load(Relaxed) as libc::pid_t;
    // SAFETY: kill takes a pid and a signal; the worker cannot be reaped (and its PID reused)
    // before its loop ends, and its loop cannot end before the others wait for it.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    assert_eq!(
        victim.ended.load(Relaxed),
        0,
        "worker 0 finished before it was stopped: give it more --ops"
    );
    // The others end their loops and wait: ended, but not yet DONE (nothing published).
    for w in 1..N {
        let area = region.worker(w);
        while area.ended.load(Relaxed) == 0 {
            assert!(Instant::now() < deadline, "worker {w} never ended its loop");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    std::thread::sleep(Duration::from_millis(200));
    for w in 1..N {
        assert_ne!(
            region.worker(w).status.load(Relaxed),
            status::DONE,
            "worker {w} published before every loop had ended"
        );
    }
    assert!(kill_child(parent, pid as u32), "worker 0 is SIGKILLed");
    let killed_at = Instant::now();
    drop(region);
    let out = child.wait_with_output().expect("torture ends");
    let after_kill = killed_at.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The barrier's own limit is 30 s, a stall 60 s: this is the parent counting it out.
    assert!(
        after_kill < Duration::from_secs(10),
        "the run took {after_kill:?} after the kill"
    );
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    let summary: Value = serde_json::from_str(&stdout).expect("a JSON summary");
    let run = &summary["strategies"][0]["runs"][0];
    let deaths = run["faults"]["deaths"].as_array().expect("deaths");
    assert_eq!(deaths.len(), 1, "{run}");
    assert_eq!(deaths[0]["worker"], 0, "{run}");
    assert_eq!(deaths[0]["cause"], "unplanned", "{run}");
    assert_eq!(u(&run["count"]["lost"]), 0, "{run}");
    assert_eq!(u(&run["count"]["unexpected"]), 0, "{run}");
    let acked = u(&deaths[0]["acknowledged"]);
    assert_eq!(u(&run["updates"]), (N as u64 - 1) * OPS + acked, "{run}");
}
