//! `--join` with Redis as the meeting place: one run across several hosts against one Redis,
//! coordinated through its keys. On one machine, several `torture` parents stand in for the
//! hosts, each in its own process group with its own workers, against the real server.
//!
//! 3 hosts × `RACEPOOL_JOIN_REDIS_WORKERS` workers (50 by default: Redis takes thousands of
//! clients). Every run here is judged like one host's: `racy` loses, the others are exact.

mod common;
#[path = "common/redis.rs"]
mod harness;
#[path = "common/join.rs"]
mod join;

use std::process::Child;
use std::time::{Duration, Instant};

use join::{Hosts, Leftover, Place, ALONE};
use racepool::target::redis::resp::{Client, RedisUrl};

fn workers() -> usize {
    std::env::var("RACEPOOL_JOIN_REDIS_WORKERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50)
}

/// Runs `test` against the shared Redis (or a throwaway one), one joined run at a time.
fn on_redis(name: &str, test: impl FnOnce(Place)) {
    let Some(server) = harness::redis(name) else {
        return;
    };
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    test(Place {
        url: server.url(),
        workers: workers(),
        tag: "redis",
    });
}

#[test]
fn three_hosts_every_redis_strategy_judged_as_on_one_host() {
    on_redis(
        "three_hosts_every_redis_strategy_judged_as_on_one_host",
        |p| {
            join::three_hosts_every_strategy_judged_as_on_one_host(
                p,
                &["racy", "atomic", "cas", "script", "lock"],
            )
        },
    );
}

#[test]
fn report_from_a_fourth_process_prints_the_last_hosts_summary() {
    on_redis(
        "report_from_a_fourth_process_prints_the_last_hosts_summary",
        join::report_from_a_fourth_process_prints_the_last_hosts_summary,
    );
}

#[test]
fn a_host_with_other_flags_is_refused_naming_the_flag() {
    on_redis(
        "a_host_with_other_flags_is_refused_naming_the_flag",
        join::a_host_with_other_flags_is_refused_naming_the_flag,
    );
}

#[test]
fn a_missing_host_fails_everyone_within_the_timeout() {
    on_redis(
        "a_missing_host_fails_everyone_within_the_timeout",
        join::a_missing_host_fails_everyone_within_the_timeout,
    );
}

#[test]
fn a_host_killed_mid_run_is_named_dead_and_the_verdict_is_bounded() {
    on_redis(
        "a_host_killed_mid_run_is_named_dead_and_the_verdict_is_bounded",
        join::a_host_killed_mid_run_is_named_dead_and_the_verdict_is_bounded,
    );
}

/// The state of host `index` of the joined run `name`, read straight from its key (a
/// round trip of µs: fast enough to catch a host between registering and being ready).
fn state(c: &mut Client, name: &str, index: u32) -> Option<String> {
    let key = format!("racepool:join:{{{name}}}:host:{index}");
    c.call(&[&"HGET", &key, &"state"])
        .ok()?
        .bulk()
        .ok()?
        .map(|b| String::from_utf8_lossy(b).into_owned())
}

#[test]
fn a_host_registered_but_stopped_before_the_barrier_is_named_by_everyone() {
    on_redis(
        "a_host_registered_but_stopped_before_the_barrier_is_named_by_everyone",
        |p| {
            let url = p.url;
            let name = p.name("stopped");
            let _left = Leftover {
                url,
                name: name.clone(),
            };
            let mut c = Client::connect(&RedisUrl::parse(url).unwrap(), Duration::from_secs(5))
                .expect("connects");
            let args = ["-s", "atomic", "-n", "100", "--join-timeout", "3"];
            // Two hosts reach the barrier first and wait there for the third.
            let mut hosts = Hosts::start(p, &name, 3, &args, 2);
            let deadline = Instant::now() + Duration::from_secs(30);
            while (0..2).any(|i| state(&mut c, &name, i).as_deref() != Some("ready")) {
                assert!(Instant::now() < deadline, "two hosts never got ready");
                std::thread::sleep(Duration::from_millis(5));
            }
            // The third registers, and is stopped (its whole group) before its workers are
            // ready: forking and connecting 50 workers takes far longer than a look here.
            hosts.add(p, &name, 3, &args);
            let third = hosts.0[2].id();
            let deadline = Instant::now() + Duration::from_secs(20);
            while state(&mut c, &name, 2).is_none() {
                assert!(Instant::now() < deadline, "the third never registered");
            }
            // SAFETY: killpg sends a signal; the group is the child's own.
            unsafe { libc::killpg(third as i32, libc::SIGSTOP) };
            assert_eq!(
                state(&mut c, &name, 2).as_deref(),
                Some("registered"),
                "stopped too late to test this"
            );
            let first_two: Vec<Child> = hosts.0.drain(..2).collect();
            let outs = Hosts(first_two).wait();
            for o in &outs {
                assert_eq!(o.status.code(), Some(4), "{}", join::text(o));
                let t = join::text(o);
                assert!(
                    t.contains("1 of 3 host(s) did not reach the start barrier within 3s")
                        && t.contains(&format!(":{third} (registered)")),
                    "{t}"
                );
            }
            // The stopped host is SIGKILLed with its group and reaped.
            drop(hosts);
            let (_, v) = join::report(url, &name).expect("the run exists");
            assert_eq!(v["count"]["observed"], 0, "no update was made: {v}");
            join::clean(url, &name, &v);
        },
    );
}
