//! The joined-run (`--join`) tests every meeting place passes, each a function of the place:
//! several `torture` parents stand in for the hosts, each in its own process group with its
//! own workers, against the real server. Barriers (the meeting place's own record), not sleeps.
#![allow(dead_code)]

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

/// One joined run at a time: each holds every host's workers on the machine's cores.
pub static ALONE: Mutex<()> = Mutex::new(());

/// The meeting place under test: its URL and how many workers each host forks.
#[derive(Clone, Copy)]
pub struct Place<'a> {
    pub url: &'a str,
    pub workers: usize,
    /// A word no other place's runs use in their names.
    pub tag: &'a str,
}

impl Place<'_> {
    /// A name no other test process uses.
    pub fn name(&self, test: &str) -> String {
        format!("t{}-{}-{test}", std::process::id(), self.tag)
    }
}

/// `torture` parents standing in for hosts, each the leader of its own process group; every
/// group is SIGKILLed and reaped when dropped (a failed test leaves no process behind).
pub struct Hosts(pub Vec<Child>);

impl Hosts {
    pub fn start(p: Place, name: &str, hosts: u32, extra: &[&str], count: usize) -> Hosts {
        let mut started = Hosts(Vec::new());
        for _ in 0..count {
            started.add(p, name, hosts, extra);
        }
        started
    }

    pub fn add(&mut self, p: Place, name: &str, hosts: u32, extra: &[&str]) {
        let child = host(p, name, hosts, extra)
            .process_group(0)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("torture starts");
        self.0.push(child);
    }

    /// Waits for every host; their outputs, in start order.
    pub fn wait(mut self) -> Vec<Output> {
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

/// Removes the joined run's keys and its slots when the test ends, however it ends.
pub struct Leftover<'a> {
    pub url: &'a str,
    pub name: String,
}

impl Drop for Leftover<'_> {
    fn drop(&mut self) {
        if let Some((_, v)) = report(self.url, &self.name) {
            if let Some(run) = v["run"].as_u64() {
                let _ = crate::common::output(&["clean", self.url, "--run", &run.to_string()]);
            }
        }
    }
}

pub fn host(p: Place, name: &str, hosts: u32, extra: &[&str]) -> Command {
    let mut cmd = crate::common::torture();
    let w = p.workers.to_string();
    cmd.args(["run", "--target", p.url, "--join", name, "--hosts"])
        .arg(hosts.to_string())
        .args(["-w", &w])
        .args(extra);
    cmd
}

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(o)))
}

/// `torture report --json` for the joined run: (exit code, verdict) or None when it does not
/// exist (yet).
pub fn report(url: &str, name: &str) -> Option<(i32, Value)> {
    let o = crate::common::output(&["report", "--target", url, "--run", name, "--json"]);
    let code = o.status.code().expect("exited");
    (code != 2).then(|| (code, json(&o)))
}

/// Removes the joined run's record and its slots; nothing of it is left.
pub fn clean(url: &str, name: &str, verdict: &Value) {
    let run = verdict["run"].as_u64().expect("a run id");
    let o = crate::common::output(&["clean", url, "--run", &run.to_string()]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        report(url, name).is_none(),
        "the joined run's record is gone"
    );
    if url.starts_with("redis://") {
        let mut left = keys(url, &format!("racepool:{{{run}}}:*"));
        left.extend(keys(url, &format!("racepool:join:{{{name}}}:*")));
        assert!(left.is_empty(), "the run's keys are gone: {left:?}");
    }
}

/// Keys matching `pattern` on the server.
pub fn keys(url: &str, pattern: &str) -> Vec<String> {
    let u = racepool::target::redis::resp::RedisUrl::parse(url).unwrap();
    let mut c = racepool::target::redis::resp::Client::connect(&u, Duration::from_secs(5))
        .expect("connects");
    let mut found = Vec::new();
    c.scan(pattern, |_, page| {
        found.extend(
            page.into_iter()
                .map(|k| String::from_utf8_lossy(&k).into_owned()),
        );
        Ok(())
    })
    .expect("scans");
    found
}

pub fn three_hosts_every_strategy_judged_as_on_one_host(p: Place, strategies: &[&str]) {
    let url = p.url;
    let ops = 40u64;
    let w = p.workers as u64;
    for &strategy in strategies {
        let name = p.name(strategy);
        let _left = Leftover {
            url,
            name: name.clone(),
        };
        let n = ops.to_string();
        // Redis' lock: a TTL no holder outlives on a loaded machine (150 workers on few
        // cores), so the lock is as exact here as on one host.
        // --store target: every host's workers write into the run's one record.
        let mut args = vec![
            "-s",
            strategy,
            "-n",
            &n,
            "--store",
            "target",
            "--join-timeout",
            "60",
            "--json",
        ];
        if strategy == "lock" && url.starts_with("redis://") {
            args.extend(["--lock-ttl", "30000"]);
        }
        let outs = Hosts::start(p, &name, 3, &args, 3).wait();
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
        }
        for o in &outs {
            assert_eq!(o.status.code(), Some(0), "{strategy}: {}", text(o));
        }
        // The record, as torture verify reads it: every host's events under ids of their own,
        // on one clock.
        let run = v["run"].as_u64().unwrap().to_string();
        let o = crate::common::output(&["verify", url, "--run", &run, "--json"]);
        let check = json(&o)["runs"][0].clone();
        assert_eq!(check["events"], 3 * w * ops, "{strategy}: {check}");
        assert_eq!(check["sequence_errors"], 0, "{strategy}: {check}");
        assert_eq!(v["history"]["verified"], check["verified"], "{strategy}");
        if strategy == "racy" {
            assert_eq!(o.status.code(), Some(1), "{check}");
            assert!(check["witnesses"].as_u64().unwrap() > 0, "{check}");
            assert!(v["witnesses_across_hosts"].as_u64().unwrap() > 0, "{v}");
        } else {
            assert_eq!(o.status.code(), Some(0), "{strategy}: {check}");
            assert_eq!(check["order_violations"], 0, "{strategy}: {check}");
        }
        // Released at the agreed moment on the server's clock, every host within a second.
        let skew = v["release_skew_ns"].as_i64().expect("a release skew");
        assert!((0..1_000_000_000).contains(&skew), "{strategy}: {v}");
        let _ = std::io::Write::write_fmt(
            &mut std::io::stderr(),
            format_args!(
                "{strategy}: release skew across hosts {skew} ns, first to last worker started {} ns\n",
                v["worker_start_skew_ns"]
            ),
        );
        clean(url, &name, v);
    }
}

pub fn report_from_a_fourth_process_prints_the_last_hosts_summary(p: Place) {
    let url = p.url;
    let name = p.name("report");
    let _left = Leftover {
        url,
        name: name.clone(),
    };
    let outs = Hosts::start(p, &name, 3, &["-s", "atomic", "-n", "40"], 3).wait();
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
    let again = crate::common::output(&["report", "--target", url, "--run", &name]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert_eq!(
        String::from_utf8_lossy(&again.stdout),
        String::from_utf8_lossy(&summaries[0].stdout)
    );
    clean(url, &name, &report(url, &name).expect("the run exists").1);
}

pub fn a_host_with_other_flags_is_refused_naming_the_flag(p: Place) {
    let url = p.url;
    let name = p.name("mismatch");
    let _left = Leftover {
        url,
        name: name.clone(),
    };
    let first = Hosts::start(
        p,
        &name,
        2,
        &["-s", "atomic", "-n", "100", "--join-timeout", "3"],
        1,
    );
    // Wait until the first host registered the run (its plan is then the run's).
    let deadline = Instant::now() + Duration::from_secs(20);
    while report(url, &name).is_none() {
        assert!(Instant::now() < deadline, "the first host never registered");
        std::thread::sleep(Duration::from_millis(20));
    }
    let o = host(
        p,
        &name,
        2,
        &["-s", "cas", "-n", "100", "--join-timeout", "3"],
    )
    .output()
    .expect("torture runs");
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o)
            .contains(r#"--strategy (["cas"] here, ["atomic"] on the hosts that joined first)"#),
        "{}",
        text(&o)
    );
    // The refused host never joined: the first one fails at the barrier.
    let outs = first.wait();
    assert_eq!(outs[0].status.code(), Some(4), "{}", text(&outs[0]));
    assert!(
        text(&outs[0]).contains("1 never registered"),
        "{}",
        text(&outs[0])
    );
    clean(url, &name, &report(url, &name).expect("the run exists").1);
}

pub fn a_missing_host_fails_everyone_within_the_timeout(p: Place) {
    let url = p.url;
    let name = p.name("missing");
    let _left = Leftover {
        url,
        name: name.clone(),
    };
    let t0 = Instant::now();
    let hosts = Hosts::start(
        p,
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
        assert!(
            crate::common::children_of(p).is_empty(),
            "host {p} left workers"
        );
    }
    let (code, v) = report(url, &name).expect("the run exists");
    assert_eq!(code, 4, "{v}");
    for h in v["hosts"].as_array().unwrap() {
        assert_eq!(h["state"], "failed", "{h}");
        assert_eq!(h["acknowledged"], 0, "no update was made: {h}");
    }
    assert_eq!(v["count"]["observed"], 0, "no update was made: {v}");
    clean(url, &name, &v);
}

pub fn a_host_killed_mid_run_is_named_dead_and_the_verdict_is_bounded(p: Place) {
    let url = p.url;
    let name = p.name("dead");
    let _left = Leftover {
        url,
        name: name.clone(),
    };
    let w = p.workers as u64;
    let ops = 400u64;
    let n = ops.to_string();
    let mut hosts = Hosts::start(
        p,
        &name,
        3,
        &["-s", "atomic", "-n", &n, "--join-timeout", "3", "--json"],
        3,
    );
    let victim = hosts.0[1].id();
    // Wait until the victim's own record shows acknowledged updates: it is mid-run.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "the victim never made progress");
        if let Some((_, v)) = report(url, &name) {
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
    while !crate::common::children_of(victim).is_empty() {
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
    let t = crate::common::output(&["report", "--target", url, "--run", &name]);
    assert_eq!(t.status.code(), Some(3), "{}", text(&t));
    let t = text(&t);
    assert!(t.contains(&format!(":{victim} is dead")), "{t}");
    assert!(t.contains("bounds held"), "{t}");
    clean(url, &name, &v);
}
