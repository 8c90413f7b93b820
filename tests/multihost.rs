//! `--join`: one run across several hosts against one PostgreSQL, coordinated through it. On
//! one machine, several `torture` parents stand in for the hosts, each in its own process
//! group with its own workers, against the real server.
//!
//! Connections: PostgreSQL's max_connections is shared with every other test, so a joined run
//! here is 3 hosts × `RACEPOOL_JOIN_WORKERS` workers (8 by default: 24 worker connections plus
//! one or two per parent), not the 3 × 50 a bigger server takes.

mod common;

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::services::{self, Service};
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
        let mut started = Hosts(Vec::new());
        for _ in 0..count {
            started.add(url, name, hosts, extra);
        }
        started
    }

    fn add(&mut self, url: &str, name: &str, hosts: u32, extra: &[&str]) {
        let child = host(url, name, hosts, extra)
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
    let mut cmd = common::torture();
    let w = workers().to_string();
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
