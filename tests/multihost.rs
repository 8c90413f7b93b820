//! `--join`: one run across several hosts against one PostgreSQL, coordinated through it. On
//! one machine, several `torture` parents stand in for the hosts, each in its own process
//! group with its own workers, against the real server.
//!
//! Connections: the shared PostgreSQL's max_connections (100) is shared with every other test,
//! so a joined run on it is 3 hosts × `RACEPOOL_JOIN_WORKERS` workers (8 by default: 24 worker
//! connections plus one or two per parent). The 3 × 50 runs start a PostgreSQL of their own
//! (`OwnPostgres`, max_connections 250), stopped and removed when the test ends.

mod common;

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::services::{self, OwnPostgres, Service};
use serde_json::Value;

/// One joined run at a time: each takes a third of the connections these tests may use.
static ALONE: Mutex<()> = Mutex::new(());

fn workers() -> usize {
    std::env::var("RACEPOOL_JOIN_WORKERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8)
}

/// A name no other test process uses.
fn name(test: &str) -> String {
    format!("t{}-{test}", std::process::id())
}

/// `torture` parents standing in for hosts, each the leader of its own process group; every
/// group is SIGKILLed and reaped when dropped (a failed test leaves no process behind).
struct Hosts(Vec<Child>);

impl Hosts {
    fn start(url: &str, name: &str, hosts: u32, extra: &[&str], count: usize) -> Hosts {
        Hosts::start_with(url, name, hosts, workers(), extra, count)
    }

    /// `count` hosts of `workers` workers each.
    fn start_with(
        url: &str,
        name: &str,
        hosts: u32,
        workers: usize,
        extra: &[&str],
        count: usize,
    ) -> Hosts {
        let mut started = Hosts(Vec::new());
        for _ in 0..count {
            started.add(host_with(url, name, hosts, workers, extra));
        }
        started
    }

    fn add(&mut self, mut cmd: Command) {
        let child = cmd
            .process_group(0)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("torture starts");
        self.0.push(child);
    }

    /// Waits for every host; their outputs, in start order.
    fn wait(mut self) -> Vec<Output> {
        std::mem::take(&mut self.0)
            .into_iter()
            .map(|c| c.wait_with_output().expect("the host is waited for"))
            .collect()
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for c in &mut self.0 {
            // SAFETY: killpg sends a signal; the group is the child's own (process_group(0)).
            unsafe { libc::killpg(c.id() as i32, libc::SIGKILL) };
            let _ = c.wait();
        }
    }
}

fn host(url: &str, name: &str, hosts: u32, extra: &[&str]) -> Command {
    host_with(url, name, hosts, workers(), extra)
}

fn host_with(url: &str, name: &str, hosts: u32, workers: usize, extra: &[&str]) -> Command {
    let mut cmd = common::torture();
    let w = workers.to_string();
    cmd.args(["run", "--target", url, "--join", name, "--hosts"])
        .arg(hosts.to_string())
        .args(["-w", &w])
        .args(extra);
    cmd
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(o)))
}

/// `torture report --json` for the joined run: (exit code, verdict) or None when it does not
/// exist yet.
fn report(url: &str, name: &str) -> Option<(i32, Value)> {
    let o = common::output(&["report", "--target", url, "--run", name, "--json"]);
    let code = o.status.code().expect("exited");
    (code != 2).then(|| (code, json(&o)))
}

/// Removes the joined run's rows and its slots.
fn clean(url: &str, verdict: &Value) {
    let run = verdict["run"].as_u64().expect("a run id").to_string();
    let o = common::output(&["clean", url, "--run", &run]);
    assert!(o.status.success(), "{}", text(&o));
}

fn url(test: &str) -> Option<String> {
    services::url(Service::Postgres, test)
}

#[test]
fn three_hosts_one_verdict_racy_loses_and_the_fixes_are_exact() {
    let Some(url) = url("three_hosts_one_verdict_racy_loses_and_the_fixes_are_exact") else {
        return;
    };
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    let ops = 150u64;
    let w = workers() as u64;
    for strategy in ["racy", "atomic", "cas", "lock"] {
        let name = name(strategy);
        let n = ops.to_string();
        let hosts = Hosts::start(
            &url,
            &name,
            3,
            &["-s", strategy, "-n", &n, "--join-timeout", "30", "--json"],
            3,
        );
        let outs = hosts.wait();
        let verdicts: Vec<Value> = outs.iter().map(json).collect();
        let v = &verdicts[0];
        // Every host printed the same verdict, judged once.
        for (o, other) in outs.iter().zip(&verdicts) {
            assert_eq!(other["count"], v["count"], "{strategy}: {}", text(o));
            assert_eq!(other["reported_by"], v["reported_by"], "{strategy}");
        }
        let hosts = v["hosts"].as_array().unwrap();
        assert_eq!(hosts.len(), 3, "{strategy}: {v}");
        for h in hosts {
            assert_eq!(h["state"], "done", "{strategy}: {h}");
            assert_eq!(h["acknowledged"], w * ops, "{strategy}: {h}");
            assert_eq!(h["workers"], w, "{strategy}: {h}");
        }
        // Expected is the sum over hosts; the merged histogram saw every update.
        let sum: u64 = hosts
            .iter()
            .map(|h| h["acknowledged"].as_u64().unwrap())
            .sum();
        assert_eq!(v["updates"], sum, "{strategy}");
        assert_eq!(v["count"]["expected"], 3 * w * ops, "{strategy}: {v}");
        assert!(
            v["latency_ns"]["p99"].as_u64().unwrap() > 0,
            "{strategy}: {v}"
        );
        assert_eq!(v["bounded"], false, "{strategy}: {v}");
        if strategy == "racy" {
            assert!(
                v["count"]["lost"].as_u64().unwrap() > 0,
                "racy lost nothing: {v}"
            );
            assert_eq!(v["verdict"], "race-caught", "{v}");
        } else {
            assert_eq!(v["count"]["observed"], 3 * w * ops, "{strategy}: {v}");
            assert_eq!(v["count"]["lost"], 0, "{strategy}: {v}");
            assert_eq!(v["verdict"], "exact", "{strategy}: {v}");
            for o in &outs {
                assert_eq!(o.status.code(), Some(0), "{strategy}: {}", text(o));
            }
        }
        // Every host was released at the agreed moment, give or take the scheduler.
        assert!(v["release_skew_ns"].as_i64().is_some(), "{v}");
        clean(&url, v);
    }
}

#[test]
fn report_from_a_fourth_process_prints_the_last_hosts_summary() {
    let Some(url) = url("report_from_a_fourth_process_prints_the_last_hosts_summary") else {
        return;
    };
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    let name = name("report");
    let outs = Hosts::start(&url, &name, 3, &["-s", "atomic", "-n", "100"], 3).wait();
    let summaries: Vec<&Output> = outs
        .iter()
        .filter(|o| String::from_utf8_lossy(&o.stdout).starts_with("joined run "))
        .filter(|o| String::from_utf8_lossy(&o.stdout).contains("strategy"))
        .collect();
    assert_eq!(
        summaries.len(),
        1,
        "exactly one host prints the summary: {:?}",
        outs.iter().map(text).collect::<Vec<_>>()
    );
    for o in &outs {
        assert_eq!(o.status.code(), Some(0), "{}", text(o));
        if !std::ptr::eq(o, summaries[0]) {
            assert!(
                String::from_utf8_lossy(&o.stdout).contains("printed by host"),
                "{}",
                text(o)
            );
        }
    }
    let again = common::output(&["report", "--target", &url, "--run", &name]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert_eq!(
        String::from_utf8_lossy(&again.stdout),
        String::from_utf8_lossy(&summaries[0].stdout)
    );
    clean(&url, &report(&url, &name).expect("the run exists").1);
}

#[test]
fn a_host_with_other_flags_is_refused_naming_the_flag() {
    let Some(url) = url("a_host_with_other_flags_is_refused_naming_the_flag") else {
        return;
    };
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    let name = name("mismatch");
    let first = Hosts::start(
        &url,
        &name,
        2,
        &["-s", "atomic", "-n", "100", "--join-timeout", "3"],
        1,
    );
    // Wait until the first host registered the run (its plan is then the run's).
    let deadline = Instant::now() + Duration::from_secs(20);
    while report(&url, &name).is_none() {
        assert!(Instant::now() < deadline, "the first host never registered");
        std::thread::sleep(Duration::from_millis(20));
    }
    let o = host(
        &url,
        &name,
        2,
        &["-s", "atomic", "-n", "200", "--join-timeout", "3"],
    )
    .output()
    .expect("torture runs");
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("--ops (200 here, 100 on the hosts that joined first)"),
        "{}",
        text(&o)
    );
    // The refused host never joined: the first one fails at the barrier.
    let outs = first.wait();
    assert_eq!(outs[0].status.code(), Some(4), "{}", text(&outs[0]));
    clean(&url, &report(&url, &name).expect("the run exists").1);
}

#[test]
fn a_missing_host_fails_everyone_within_the_timeout() {
    let Some(url) = url("a_missing_host_fails_everyone_within_the_timeout") else {
        return;
    };
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    let name = name("missing");
    let t0 = Instant::now();
    let hosts = Hosts::start(
        &url,
        &name,
        3,
        &["-s", "atomic", "-n", "100", "--join-timeout", "3"],
        2,
    );
    let pids: Vec<u32> = hosts.0.iter().map(|c| c.id()).collect();
    let outs = hosts.wait();
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(20), "took {took:?}");
    for o in &outs {
        assert_eq!(o.status.code(), Some(4), "{}", text(o));
        let t = text(o);
        assert!(
            t.contains("1 of 3 host(s) did not reach the start barrier within 3s")
                && t.contains("1 never registered"),
            "{t}"
        );
    }
    // Every worker of every host was killed and reaped.
    for p in pids {
        assert!(common::children_of(p).is_empty(), "host {p} left workers");
    }
    let (code, v) = report(&url, &name).expect("the run exists");
    assert_eq!(code, 4, "{v}");
    for h in v["hosts"].as_array().unwrap() {
        assert_eq!(h["state"], "failed", "{h}");
        assert_eq!(h["acknowledged"], 0, "no update was made: {h}");
    }
    clean(&url, &v);
}

#[test]
fn a_host_killed_mid_run_is_named_dead_and_the_verdict_is_bounded() {
    let Some(url) = url("a_host_killed_mid_run_is_named_dead_and_the_verdict_is_bounded") else {
        return;
    };
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    let name = name("dead");
    let w = workers() as u64;
    let ops = 600u64;
    let n = ops.to_string();
    let mut hosts = Hosts::start(
        &url,
        &name,
        3,
        &["-s", "atomic", "-n", &n, "--join-timeout", "3", "--json"],
        3,
    );
    let victim = hosts.0[1].id();
    // Wait until the victim's own row shows acknowledged updates: it is mid-run.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "the victim never made progress");
        if let Some((_, v)) = report(&url, &name) {
            let mine = v["hosts"]
                .as_array()
                .unwrap()
                .iter()
                .find(|h| h["pid"] == victim)
                .cloned();
            if let Some(h) = mine {
                assert_ne!(h["state"], "done", "the victim finished first: {v}");
                if h["acknowledged"].as_u64().unwrap() > 0 {
                    break;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // Only the parent: its workers die with it (PR_SET_PDEATHSIG).
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(victim as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("the victim is alive");
    let mut victim_child = hosts.0.remove(1);
    let _ = victim_child.wait();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !common::children_of(victim).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the victim's workers outlived it"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let outs = hosts.wait();
    for o in &outs {
        assert_eq!(o.status.code(), Some(3), "{}", text(o));
    }
    let v = json(&outs[0]);
    assert_eq!(v["bounded"], true, "{v}");
    assert_eq!(v["verdict"], "exact", "the bounds held: {v}");
    assert_eq!(v["count"]["lost"], 0, "{v}");
    assert_eq!(v["count"]["unexpected"], 0, "{v}");
    let hs = v["hosts"].as_array().unwrap();
    let dead = hs.iter().find(|h| h["pid"] == victim).unwrap();
    assert_eq!(dead["state"], "dead", "{v}");
    assert!(dead["in_flight"].as_u64().unwrap() > 0, "{v}");
    assert_eq!(
        dead["acknowledged"].as_u64().unwrap() + dead["in_flight"].as_u64().unwrap(),
        w * ops,
        "its plan is acknowledged or in flight: {v}"
    );
    for h in hs.iter().filter(|h| h["pid"] != victim) {
        assert_eq!(h["state"], "done", "{v}");
        assert_eq!(h["acknowledged"], w * ops, "{v}");
    }
    // The observed total lies within the bounds: every survivor's update, and the dead
    // host's acknowledged ones at least.
    let observed = v["count"]["observed"].as_u64().unwrap();
    let low = 2 * w * ops + dead["acknowledged"].as_u64().unwrap();
    assert!(observed >= low && observed <= 3 * w * ops, "{v}");
    let t = common::output(&["report", "--target", &url, "--run", &name]);
    assert_eq!(t.status.code(), Some(3), "{}", text(&t));
    let t = text(&t);
    assert!(t.contains(&format!(":{victim} is dead")), "{t}");
    assert!(t.contains("bounds held"), "{t}");
    clean(&url, &v);
}

#[test]
fn a_run_the_server_cannot_take_whole_is_refused_before_anything_forks() {
    let Some(url) = url("a_run_the_server_cannot_take_whole_is_refused_before_anything_forks")
    else {
        return;
    };
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    let name = name("toobig");
    // 3 hosts of 40 workers: more than max_connections (100), though one host's 40 fit.
    let o = common::output(&[
        "run", "--target", &url, "--join", &name, "--hosts", "3", "-w", "40", "-s", "atomic", "-n",
        "10",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("--hosts 3: 40 workers on every host: --workers 120"),
        "{}",
        text(&o)
    );
    // Nothing was left: the run is gone with its refusal.
    assert!(report(&url, &name).is_none());
}

/// `torture verify URL --run ID --json`: (exit code, the run's check).
fn verify(url: &str, run: u64) -> (i32, Value) {
    let o = common::output(&["verify", url, "--run", &run.to_string(), "--json"]);
    let v = json(&o);
    let check = v["runs"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["run"] == run))
        .cloned()
        .unwrap_or_else(|| panic!("verify names no run {run}: {v}"));
    (o.status.code().expect("exited"), check)
}

#[test]
fn three_hosts_of_fifty_give_every_strategys_verdict_and_a_record_verify_checks() {
    let test = "three_hosts_of_fifty_give_every_strategys_verdict_and_a_record_verify_checks";
    // 150 workers' connections and the parents': more than the shared server's 100.
    let Some(pg) = OwnPostgres::start(test, 250) else {
        return;
    };
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    let url = pg.url();
    let (w, ops) = (50u64, 40u64);
    let n = ops.to_string();
    for strategy in ["racy", "atomic", "cas", "lock", "advisory"] {
        let name = name(&format!("fifty-{strategy}"));
        let outs = Hosts::start_with(
            url,
            &name,
            3,
            w as usize,
            &[
                "-s",
                strategy,
                "-n",
                &n,
                "--store",
                "target",
                "--join-timeout",
                "120",
                "--json",
            ],
            3,
        )
        .wait();
        let verdicts: Vec<Value> = outs.iter().map(json).collect();
        let v = &verdicts[0];
        for (o, other) in outs.iter().zip(&verdicts) {
            assert_eq!(o.status.code(), Some(0), "{strategy}: {}", text(o));
            assert_eq!(other["count"], v["count"], "{strategy}");
            // Every host waited for the end the reporter wrote: one check, seen by all.
            assert_eq!(other["history"], v["history"], "{strategy}");
        }
        let hosts = v["hosts"].as_array().unwrap();
        assert_eq!(hosts.len(), 3, "{strategy}: {v}");
        for h in hosts {
            assert_eq!(h["state"], "done", "{strategy}: {h}");
            assert_eq!(h["acknowledged"], w * ops, "{strategy}: {h}");
        }
        assert_eq!(v["count"]["expected"], 3 * w * ops, "{strategy}: {v}");
        assert_eq!(v["bounded"], false, "{strategy}: {v}");
        assert!(v["release_skew_ns"].as_i64().is_some(), "{v}");
        // The joined summary's check is verify's, from the record alone.
        let run = v["run"].as_u64().unwrap();
        let (code, check) = verify(url, run);
        let h = &v["history"];
        assert_eq!(h["verified"], check["verified"], "{strategy}: {check}");
        assert_eq!(h["witnesses"], check["witnesses"], "{strategy}: {check}");
        // Every host's workers wrote under ids of their own: 150 workers, each its 40 events.
        assert_eq!(check["events"], 3 * w * ops, "{strategy}: {check}");
        assert_eq!(check["acknowledged"], 3 * w * ops, "{strategy}: {check}");
        assert_eq!(check["sequence_errors"], 0, "{strategy}: {check}");
        if strategy == "racy" {
            assert_eq!(v["verdict"], "race-caught", "{v}");
            assert!(v["count"]["lost"].as_u64().unwrap() > 0, "{v}");
            // Lost updates, proven from the record: witnesses, some spanning hosts.
            assert_eq!(code, 1, "{check}");
            assert_eq!(check["verified"], false, "{check}");
            assert!(check["witnesses"].as_u64().unwrap() > 0, "{check}");
            assert!(check["duplicates"].as_u64().unwrap() > 0, "{check}");
            assert!(v["witnesses_across_hosts"].as_u64().unwrap() > 0, "{v}");
            let across = &v["witness_across_hosts"]["workers"];
            let host_of = |g: &Value| g.as_u64().unwrap() / w;
            assert_ne!(host_of(&across[0]), host_of(&across[1]), "{v}");
        } else {
            assert_eq!(v["verdict"], "exact", "{strategy}: {v}");
            assert_eq!(v["count"]["observed"], 3 * w * ops, "{strategy}: {v}");
            assert_eq!(code, 0, "{strategy}: {check}");
            assert_eq!(check["verified"], true, "{strategy}: {check}");
            assert_eq!(check["duplicates"], 0, "{strategy}: {check}");
            assert_eq!(check["gaps"], 0, "{strategy}: {check}");
            // Times from three hosts, on the database's clock: in real-time order.
            assert_eq!(check["order_violations"], 0, "{strategy}: {check}");
        }
        clean(url, v);
    }
}

#[test]
fn a_joined_run_keeps_its_record_in_the_target_not_in_a_file() {
    // Refused before anything connects: no server is needed.
    let o = common::output(&[
        "run",
        "--target",
        "postgres://postgres@127.0.0.1:1/none",
        "--join",
        "file",
        "--hosts",
        "2",
        "-s",
        "atomic",
        "--store",
        "log:racepool-never-written.log",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("give --store target"), "{}", text(&o));
    assert!(!std::path::Path::new("racepool-never-written.log").exists());
}
