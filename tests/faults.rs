//! Faults through the built binary (forking inside the multi-threaded test harness is unsafe):
//! dead lock holders recovered, strikes at every named point, chaos kills, a paused holder
//! never robbed, PIDs wrapping without a false recovery, the watchdog's dump, and SIGINT. The
//! issue's counts, each in one invocation (`--repeat`) where it can be: about 25 s alone.

use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

fn torture(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_torture"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("the torture binary runs")
}

/// Runs with `--json`; asserts exit 0 and returns every run of every strategy.
fn runs(args: &[&str]) -> Vec<Value> {
    let mut all = args.to_vec();
    all.push("--json");
    let out = torture(&all);
    assert!(
        out.status.success(),
        "torture {args:?} failed ({:?}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).expect("JSON summary");
    summary["strategies"]
        .as_array()
        .expect("strategies")
        .iter()
        .flat_map(|s| s["runs"].as_array().expect("runs").clone())
        .collect()
}

/// Held by the tests that start a thousand workers: one such run at a time on the machine
/// (the harness runs tests in parallel), and no chaos timing disturbed by the other one.
static THOUSAND: Mutex<()> = Mutex::new(());

fn thousand() -> std::sync::MutexGuard<'static, ()> {
    THOUSAND.lock().unwrap_or_else(|e| e.into_inner())
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

/// lost = 0 and unexpected = 0: every acknowledged update is in, nothing unattempted is.
fn assert_accounted(run: &Value) {
    let c = &run["count"];
    assert_eq!(
        (u(&c["lost"]), u(&c["unexpected"])),
        (0, 0),
        "{}: {run}",
        run["strategy"]
    );
}

#[test]
fn a_killed_lock_holder_is_recovered_and_the_next_locker_gets_the_lock_every_time() {
    // The struck worker holds the lock after its first read until every other worker has
    // held once and one is queued behind it (--hold-after-read with a strike: a barrier
    // read from the workers' areas), then dies there: a holder killed with a live waiter
    // behind it, on every run. 100 runs in one invocation.
    let runs = runs(&[
        "--strategy",
        "futex-lock",
        "--workers",
        "4",
        "--ops",
        "50",
        "--hold-after-read",
        "--crash-at",
        "after-read:1",
        "--repeat",
        "100",
    ]);
    assert_eq!(runs.len(), 100);
    for run in &runs {
        assert_accounted(run);
        let f = &run["faults"];
        let deaths = f["deaths"].as_array().expect("deaths");
        assert_eq!(deaths.len(), 1, "{f}");
        let death = &deaths[0];
        assert_eq!(death["cause"], "--crash-at after-read:1", "{f}");
        assert_eq!(death["holding"], 0, "it died holding slot 0's lock: {f}");
        assert_eq!(u(&f["lock_recoveries"]), 1, "{f}");
        assert_eq!(u(&f["lock_steals"]), 0, "{f}");
        // Its read was never written: the lock's recovery rolls it back.
        assert_eq!(u(&f["rolled_back"]), 1, "{f}");
        assert!(
            u(&death["waiters"]) >= 1,
            "nobody was queued behind it: {f}"
        );
        // The next locker owned the lock within the bound of the death being seen
        // (before its reap): the parent's repair woke it, no 50 ms bounded wait ran out.
        let handover = death["handover_ms"]
            .as_f64()
            .unwrap_or_else(|| panic!("no waiter took the repaired lock: {f}"));
        assert!(handover < 100.0, "handover took {handover} ms: {f}");
    }
}

#[test]
fn a_crash_at_every_named_point_loses_nothing() {
    // Every point with every strategy that reaches it, N = 1..=20: 100 invocations (the seed,
    // hence the struck worker, changes with N).
    let cases: [(&str, &str); 5] = [
        ("after-read", "cas,futex-lock,spin-lock,pthread"),
        ("after-cas", "cas,atomic"),
        ("holding-lock", "futex-lock,spin-lock,pthread"),
        ("after-write", "futex-lock,spin-lock,pthread"),
        ("before-wake", "futex-lock"),
    ];
    let mut checked = 0;
    for n in 1..=20u64 {
        for (point, strategies) in cases {
            let strike = format!("{point}:{n}");
            let runs = runs(&[
                "--strategy",
                strategies,
                "--workers",
                "4",
                "--ops",
                "200",
                "--crash-at",
                &strike,
                "--seed",
                &n.to_string(),
                "--latency",
                "off",
            ]);
            assert_eq!(runs.len(), strategies.split(',').count(), "{strike}");
            for run in &runs {
                assert_accounted(run);
                let deaths = run["faults"]["deaths"].as_array().expect("deaths");
                assert_eq!(deaths.len(), 1, "{strike}: {run}");
                assert_eq!(deaths[0]["cause"], format!("--crash-at {strike}"));
                assert_eq!(u(&deaths[0]["acknowledged"]), n - 1, "{strike}: {run}");
                assert_eq!(u(&run["faults"]["lock_steals"]), 0, "{strike}: {run}");
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 20 * 13);
}

#[test]
fn chaos_kills_among_a_thousand_workers_land_mid_run_and_lose_nothing() {
    // 1000 workers, --kill 100, 5 runs per strategy in one invocation. Victims are drawn
    // among workers in the middle of their updates, so every landed kill must find one
    // there (begun: acknowledged or in flight), never a worker not yet scheduled.
    let _one = thousand();
    for (strategy, ops) in [("futex-lock", "3000"), ("cas", "20000")] {
        let runs = runs(&[
            "--strategy",
            strategy,
            "--workers",
            "1000",
            "--ops",
            ops,
            "--kill",
            "100",
            "--repeat",
            "5",
            "--latency",
            "off",
        ]);
        assert_eq!(runs.len(), 5);
        let (mut sent, mut landed) = (0, 0);
        for run in &runs {
            assert_accounted(run);
            let f = &run["faults"];
            let deaths = f["deaths"].as_array().expect("deaths");
            assert!(u(&f["kills_sent"]) > 0, "{f}");
            assert!(deaths.iter().all(|d| d["cause"] == "--kill"), "{f}");
            let mid_run = deaths
                .iter()
                .filter(|d| u(&d["acknowledged"]) > 0 || !d["in_flight"].is_null())
                .count();
            assert_eq!(
                mid_run,
                deaths.len(),
                "a kill hit a worker not yet begun: {f}"
            );
            assert_eq!(u(&f["lock_steals"]), 0, "{f}");
            // One recovery per death that held the lock.
            let held = deaths.iter().filter(|d| !d["holding"].is_null()).count() as u64;
            assert_eq!(u(&f["lock_recoveries"]), held, "{f}");
            sent += u(&f["kills_sent"]);
            landed += deaths.len() as u64;
            eprintln!(
                "chaos {strategy} seed {}: {} kills sent, {} landed mid-run, {held} held a lock, {} recoveries, lost {}, unexpected {}",
                run["seed"],
                u(&f["kills_sent"]),
                deaths.len(),
                u(&f["lock_recoveries"]),
                u(&run["count"]["lost"]),
                u(&run["count"]["unexpected"]),
            );
        }
        // A sent kill misses only when its victim finished between being chosen and the
        // signal: rare. (Before victims had to be mid-run, most cas kills missed or hit
        // workers not yet begun, and one victim could be "killed" several times.)
        assert!(
            landed * 10 >= sent * 9,
            "{strategy}: {landed} of {sent} kills landed"
        );
    }
}

#[test]
fn forty_rounds_of_a_thousand_workers_wrap_pids_without_a_false_recovery() {
    // 40 rounds of 1000 workers from one parent (20 futex-lock, then 20 pthread): more
    // forks than pid_max, so later rounds' workers get the PIDs of earlier ones, including
    // PIDs of workers that died holding a lock. Every round has a real holder death
    // (--crash-at holding-lock) and random kills, so the recovery paths run every round.
    // A false recovery would rob a live owner (its release finds a foreign word:
    // lock_steals) or repair more robust mutexes than deaths could have left.
    let _one = thousand();
    let runs = runs(&[
        "--strategy",
        "futex-lock,pthread",
        "--workers",
        "1000",
        "--ops",
        "20",
        "--crash-at",
        "holding-lock:7",
        "--kill",
        "10",
        "--repeat",
        "20",
        "--latency",
        "off",
    ]);
    assert_eq!(runs.len(), 40);
    let (mut reused, mut holder_reused, mut crashes) = (0, 0, 0);
    let (mut pthread_crashes, mut pthread_repairs) = (0u64, 0u64);
    for run in &runs {
        assert_accounted(run);
        let f = &run["faults"];
        let deaths = f["deaths"].as_array().expect("deaths");
        assert_eq!(u(&f["lock_steals"]), 0, "a live owner was robbed: {f}");
        assert!(
            deaths.iter().all(|d| d["cause"] != "unplanned"),
            "a death nobody caused: {f}"
        );
        // The struck worker dies holding slot 0's lock, unless a --kill reached it first.
        let crash: Vec<&Value> = deaths
            .iter()
            .filter(|d| d["cause"] == "--crash-at holding-lock:7")
            .collect();
        assert!(crash.len() <= 1, "{f}");
        for c in &crash {
            assert_eq!(c["holding"], 0, "{f}");
        }
        crashes += crash.len();
        let held = deaths.iter().filter(|d| !d["holding"].is_null()).count() as u64;
        match run["strategy"].as_str() {
            Some("futex-lock") => {
                // Every recovery freed a lock its dead owner's identity was in.
                assert_eq!(u(&f["lock_recoveries"]), held, "{f}");
                assert!(u(&f["lock_recoveries"]) >= crash.len() as u64, "{f}");
            }
            _ => {
                // The kernel hands a dead owner's mutex over with EOWNERDEAD: once per
                // death at most (a kill between lock and bookkeeping may not show as held).
                // Only a later locker repairs: a holder struck after every other worker had
                // finished leaves nobody to, so crashes and repairs are compared in total.
                let repairs = u(&f["robust_repairs"]);
                assert!(repairs <= deaths.len() as u64, "{f}");
                pthread_crashes += crash.len() as u64;
                pthread_repairs += repairs.min(crash.len() as u64);
                assert_eq!(u(&f["lock_recoveries"]), 0, "{f}");
            }
        }
        reused += u(&f["pids_reused"]);
        holder_reused += u(&f["holder_pids_reused"]);
    }
    assert!(
        crashes >= 30,
        "only {crashes} of 40 rounds struck their holder"
    );
    assert!(
        pthread_repairs * 2 >= pthread_crashes,
        "only {pthread_repairs} of {pthread_crashes} struck pthread holders were repaired"
    );
    let pid_max: u64 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(u64::MAX);
    eprintln!(
        "pid wrap: 40000 forks, pid_max {pid_max}: {reused} worker PIDs reused from earlier rounds, {holder_reused} of them once a dead lock holder's"
    );
    if pid_max < 40_000 {
        // Pigeonhole: 40000 PIDs cannot all be distinct below pid_max.
        assert!(
            reused >= 40_000 - pid_max,
            "{reused} reused, pid_max {pid_max}"
        );
    }
}

#[test]
fn a_paused_lock_holder_is_never_robbed_and_its_waiters_sleep() {
    let runs = runs(&[
        "--strategy",
        "futex-lock",
        "--workers",
        "4",
        "--ops",
        "20000",
        "--pause",
        "1:2000",
    ]);
    let run = &runs[0];
    assert_accounted(run);
    let f = &run["faults"];
    assert_eq!(u(&f["lock_steals"]), 0, "{f}");
    assert_eq!(u(&f["lock_recoveries"]), 0, "{f}");
    assert!(f["deaths"].as_array().expect("deaths").is_empty(), "{f}");
    let pauses = f["pauses"].as_array().expect("pauses");
    assert_eq!(pauses.len(), 1, "{f}");
    // The watcher asks the next worker taking a lock to stop itself there: the holder.
    assert_eq!(
        pauses[0]["holding"], 0,
        "the holder of slot 0 was paused: {f}"
    );
    // Three waiters spinning for 2 s on 2 cores would burn ~4000 ms of CPU; sleeping ones
    // (bounded 50 ms futex waits) a few ms.
    let cpu = pauses[0]["others_cpu_ms"].as_f64().expect("cpu");
    assert!(cpu < 500.0, "the waiters used {cpu} ms of CPU: they spun");
}

#[test]
fn the_watchdog_names_the_holder_and_its_waiters_then_stops_everything() {
    let out = torture(&[
        "--strategy",
        "futex-lock",
        "--workers",
        "4",
        "--ops",
        "1000",
        "--stop-at",
        "holding-lock:3",
        "--stall-timeout",
        "1",
        "--seed",
        "2",
    ]);
    // The run could not finish: exit 4 (docs/exit-codes.md).
    assert_eq!(out.status.code(), Some(4));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("stalled"), "{err}");
    assert!(err.contains("held by worker 2"), "{err}");
    // Who waits depends on how far the others got before worker 2 stopped: named either way.
    assert!(err.contains("waiting: "), "{err}");
}

#[test]
fn faults_are_refused_in_thread_mode() {
    for flag in [
        &["--kill", "1"][..],
        &["--pause", "1:10"],
        &["--crash-at", "after-read:1"],
    ] {
        let mut args = vec!["--mode", "threads", "--workers", "2", "--ops", "10"];
        args.extend_from_slice(flag);
        let out = torture(&args);
        assert_eq!(out.status.code(), Some(2), "{flag:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("--mode processes"),
            "{flag:?}"
        );
    }
}

#[test]
fn a_crash_point_the_strategy_never_reaches_is_refused() {
    let out = torture(&["--strategy", "atomic", "--crash-at", "holding-lock:1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("never reaches holding-lock"));
}

/// The PIDs of `pid`'s children, from /proc.
fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

#[test]
fn sigint_stops_the_workers_prints_a_partial_summary_and_exits_130() {
    let child = Command::new(env!("CARGO_BIN_EXE_torture"))
        .args([
            "--strategy",
            "futex-lock",
            "--workers",
            "3",
            "--ops",
            "100000000",
            "--json",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn torture");
    let pid = child.id();
    // The measured window has begun once the watcher thread exists (it starts after the
    // barrier's release): two tasks in the parent.
    let deadline = Instant::now() + Duration::from_secs(60);
    let workers = loop {
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
            .map(|d| d.count())
            .unwrap_or(0);
        let kids = children(pid);
        if tasks >= 2 && kids.len() == 3 {
            break kids;
        }
        assert!(
            Instant::now() < deadline,
            "torture never started its workers"
        );
        // Polling /proc for a state, not waiting for an interleaving.
        std::thread::sleep(Duration::from_millis(1));
    };
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .expect("SIGINT");
    let out = child.wait_with_output().expect("torture ends");
    assert_eq!(out.status.code(), Some(130));
    let summary: Value = serde_json::from_slice(&out.stdout).expect("a partial JSON summary");
    assert_eq!(summary["interrupted"], true);
    let run = &summary["strategies"][0]["runs"][0];
    assert_eq!(run["interrupted"], true);
    assert_accounted(run);
    assert!(u(&run["updates"]) < 300_000_000);
    // Nothing left behind: every worker was reaped (a zombie would still have its /proc entry;
    // reparented ones would not be ours, which the state check below would show).
    for w in workers {
        let stat = std::fs::read_to_string(format!("/proc/{w}/stat")).unwrap_or_default();
        assert!(
            !stat.contains("(torture)"),
            "worker {w} is still there: {stat}"
        );
    }
}

#[test]
fn kills_on_a_short_run_land_every_time_by_progress_not_by_the_clock() {
    // 20 workers of 200 updates end in a few ms, before the watcher looks twice: kills drawn
    // in time would often send none. Victims are killed by their own progress, and a victim
    // the watcher has not reached waits before its last update, so all 3 land, mid-run.
    let runs = runs(&[
        "--strategy",
        "atomic,futex-lock",
        "--workers",
        "20",
        "--ops",
        "200",
        "--kill",
        "3",
        "--repeat",
        "10",
    ]);
    assert_eq!(runs.len(), 20);
    for run in &runs {
        assert_accounted(run);
        let f = &run["faults"];
        assert_eq!(u(&f["kills_sent"]), 3, "{f}");
        let deaths = f["deaths"].as_array().expect("deaths");
        assert_eq!(deaths.len(), 3, "{f}");
        for d in deaths {
            assert_eq!(d["cause"], "--kill", "{f}");
            let acked = u(&d["acknowledged"]);
            assert!((1..200).contains(&acked), "not mid-run: {f}");
        }
        // The survivors made every update; the victims what they acknowledged.
        let acked: u64 = deaths.iter().map(|d| u(&d["acknowledged"])).sum();
        assert_eq!(u(&run["updates"]), 17 * 200 + acked, "{run}");
    }
}

#[test]
fn a_killed_worker_is_not_counted_as_starved() {
    // The struck worker dies in its first update: 0 updates done, by rate the most starved
    // worker there is. It is dead, not starved: fairness is the survivors'.
    let runs = runs(&[
        "--strategy",
        "cas,futex-lock",
        "--workers",
        "8",
        "--ops",
        "1000",
        "--crash-at",
        "after-read:1",
        "--repeat",
        "5",
    ]);
    assert_eq!(runs.len(), 10);
    for run in &runs {
        let deaths = run["faults"]["deaths"].as_array().expect("deaths");
        assert_eq!(deaths.len(), 1, "{run}");
        assert_eq!(u(&deaths[0]["acknowledged"]), 0, "{run}");
        assert_eq!(u(&run["fairness"]["starved"]), 0, "{run}");
    }
}
