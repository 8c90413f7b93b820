//! The Redis target at the library level, against a real server: every strategy's verdict,
//! the lock without and with fencing when a holder outlives its TTL, the record in a stream
//! read back and verified, preflight, clean, and a server that dies mid-run.
//!
//! Workers are threads here, each with its own connection: forking inside the test harness
//! is not allowed (the binary's forked workers drive the same sessions).

#[path = "common/redis.rs"]
mod harness;

use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use harness::{count_keys, fresh_run, redis, Cleanup, Server};
use racepool::clock::now_ns;
use racepool::error::Error;
use racepool::fault::Point;
use racepool::history::event::fingerprint;
use racepool::history::{RunEnd, RunInfo};
use racepool::strategy::StrategyKind;
use racepool::target::redis::{stream, Fencing, Keys, RedisOptions, RedisTarget, SessionStats};
use racepool::target::{EventDraft, RunShape, Target, UpdateError};
use racepool::verify::{verify, Verification};

/// What the workers did.
#[derive(Debug, Default)]
struct Outcome {
    acked: Vec<u64>,
    /// Per worker: stopped by an `Unknown` (one update in flight).
    in_flight: Vec<bool>,
    errors: Vec<Option<UpdateError>>,
    stats: Vec<SessionStats>,
    retries: u64,
}

impl Outcome {
    fn acked(&self) -> u64 {
        self.acked.iter().sum()
    }
    fn in_flight(&self) -> u64 {
        self.in_flight.iter().filter(|&&f| f).count() as u64
    }
}

/// Runs `workers` threads of `ops` updates each (slot = (worker + i) % slots), released
/// together; `hook(worker, i, point)` is called at each point of each update.
fn drive(
    target: &RedisTarget,
    shape: &RunShape,
    strategy: StrategyKind,
    ops: u64,
    store: bool,
    hook: &(dyn Fn(usize, u64, Point) + Sync),
) -> Outcome {
    let start = Barrier::new(shape.workers);
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..shape.workers)
            .map(|w| {
                let start = &start;
                s.spawn(move || {
                    let mut session = target.connect(shape, w, strategy).expect("connect");
                    start.wait();
                    let (mut acked, mut retries, mut error) = (0u64, 0u64, None);
                    for i in 0..ops {
                        let event = store.then(|| EventDraft {
                            worker: w as u32,
                            seq: acked,
                            invoke_ns: now_ns(),
                        });
                        let slot = ((w as u64 + i) % shape.slots as u64) as u32;
                        match session.update_at(slot, event, &mut |p| hook(w, i, p)) {
                            Ok(a) => {
                                acked += 1;
                                retries += a.retries as u64;
                            }
                            Err(e) => {
                                error = Some(e);
                                break;
                            }
                        }
                    }
                    (acked, retries, error, session.stats)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut out = Outcome::default();
    for (acked, retries, error, stats) in results {
        out.acked.push(acked);
        out.retries += retries;
        out.in_flight
            .push(matches!(error, Some(UpdateError::Unknown(_))));
        out.errors.push(error);
        out.stats.push(stats);
    }
    out
}

fn target(url: &str, options: RedisOptions) -> RedisTarget {
    RedisTarget::open(url, options).unwrap()
}

fn shape(workers: usize, slots: usize) -> RunShape {
    RunShape {
        run: fresh_run(),
        slots,
        workers,
        initial: 100,
        race_window: 0,
        ..RunShape::default()
    }
}

fn total(finals: &[u32], initial: u32) -> u64 {
    finals.iter().map(|&v| (v - initial) as u64).sum()
}

/// Writes the run's header, drives it storing events, writes its end, reads it all back and
/// verifies it.
fn stored_run(
    t: &RedisTarget,
    sh: &RunShape,
    strategy: StrategyKind,
    ops: u64,
    hook: &(dyn Fn(usize, u64, Point) + Sync),
) -> (Outcome, Vec<u32>, Verification) {
    t.begin(&RunInfo {
        run: sh.run,
        strategy: strategy.name().into(),
        workers: sh.workers as u32,
        slots: sh.slots as u32,
        ops,
        initial: sh.initial,
        seed: 0,
        persist: "target".into(),
    })
    .unwrap();
    let out = drive(t, sh, strategy, ops, true, hook);
    let finals = t.finals(sh).unwrap();
    t.end(&RunEnd {
        run: sh.run,
        fingerprint: fingerprint(&finals),
        finals: finals.clone(),
        completed: out.acked.clone(),
        killed: Vec::new(),
    })
    .unwrap();
    let loaded = stream::into_loaded(t.load(Some(sh.run)).unwrap());
    (out, finals, verify(&loaded))
}

#[test]
fn racy_loses_updates_and_verify_names_the_witnesses() {
    let Some(r) = redis("racy_loses_updates_and_verify_names_the_witnesses") else {
        return;
    };
    let t = target(r.url(), RedisOptions::default());
    let sh = shape(4, 1);
    let _clean = Cleanup(&t, sh.run);
    t.create(&sh).unwrap();
    // Every worker's first update reads, then waits until all have read: all four write the
    // same value. The race, widened on purpose, not hoped for.
    let all_read = Barrier::new(sh.workers);
    let hook = |_w: usize, i: u64, p: Point| {
        if i == 0 && p == Point::AfterRead {
            all_read.wait();
        }
    };
    let (out, finals, v) = stored_run(&t, &sh, StrategyKind::Racy, 50, &hook);
    let lost = out.acked() - total(&finals, sh.initial);
    assert!(
        lost >= 3,
        "racy lost {lost}, the scripted overlap alone loses 3"
    );
    assert!(!v.verified);
    let run = &v.runs[0];
    assert!(run.duplicates >= 3, "{run:?}");
    let w = &run.witness_list[0];
    assert_ne!(w.workers[0], w.workers[1], "{w:?}");
    assert_eq!(w.written, w.read + 1);
    assert!(run.witness_list.iter().any(|w| w.read == sh.initial));
}

/// A correct strategy: exact in every run, and its stored record verifies.
fn exact_over_many_runs(test: &str, strategy: StrategyKind, fencing: Fencing) {
    let Some(r) = redis(test) else {
        return;
    };
    let options = RedisOptions {
        fencing,
        ..RedisOptions::default()
    };
    let t = target(r.url(), options);
    for run in 0..8 {
        let sh = shape(4, 2);
        let _clean = Cleanup(&t, sh.run);
        t.create(&sh).unwrap();
        let out = drive(&t, &sh, strategy, 150, false, &|_, _, _| {});
        assert!(out.errors.iter().all(Option::is_none), "{:?}", out.errors);
        let finals = t.finals(&sh).unwrap();
        assert_eq!(
            total(&finals, sh.initial),
            out.acked(),
            "{} run {run}: {finals:?}",
            strategy.name()
        );
        assert_eq!(out.acked(), 4 * 150);
    }
    // Once more with the record in the stream, under a forced conflict: every worker's first
    // update holds after its read until all have read.
    let sh = shape(4, 1);
    let _clean = Cleanup(&t, sh.run);
    t.create(&sh).unwrap();
    let all_read = Barrier::new(sh.workers);
    let overlap = matches!(strategy, StrategyKind::Cas);
    // Once per worker: a retried read of the same update goes on.
    let waited: Vec<AtomicBool> = (0..sh.workers).map(|_| AtomicBool::new(false)).collect();
    let hook = |w: usize, _i: u64, p: Point| {
        if overlap && p == Point::AfterRead && !waited[w].swap(true, SeqCst) {
            all_read.wait();
        }
    };
    let (out, finals, v) = stored_run(&t, &sh, strategy, 100, &hook);
    assert_eq!(total(&finals, sh.initial), out.acked());
    assert!(v.verified, "{:?}", v.runs[0].problems);
    assert_eq!(v.runs[0].persisted, out.acked());
    // Every event got its completion: from its worker's next entry, or the session's last.
    let runs = t.load(Some(sh.run)).unwrap();
    assert!(runs[0]
        .events
        .iter()
        .all(|e| e.complete_ns != u64::MAX && e.complete_ns > e.invoke_ns));
    if overlap {
        assert!(
            out.retries >= 3,
            "three of four must retry: {}",
            out.retries
        );
    }
}

#[test]
fn atomic_is_exact() {
    exact_over_many_runs("atomic_is_exact", StrategyKind::Atomic, Fencing::Off);
}

#[test]
fn cas_is_exact_and_retries_when_exec_answers_nil() {
    exact_over_many_runs(
        "cas_is_exact_and_retries_when_exec_answers_nil",
        StrategyKind::Cas,
        Fencing::Off,
    );
}

#[test]
fn script_is_exact() {
    exact_over_many_runs("script_is_exact", StrategyKind::Script, Fencing::Off);
}

#[test]
fn lock_is_exact_while_holders_finish_within_the_ttl() {
    exact_over_many_runs(
        "lock_is_exact_while_holders_finish_within_the_ttl",
        StrategyKind::Lock,
        Fencing::Off,
    );
}

#[test]
fn fenced_lock_is_exact() {
    exact_over_many_runs("fenced_lock_is_exact", StrategyKind::Lock, Fencing::Tokens);
}

/// How worker 1 runs once worker 0's lock has expired under it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Then {
    /// Worker 1 makes this many updates, then worker 0 writes.
    Updates(u64),
    /// Worker 1 takes the lock and reads, then is held while worker 0 writes; then worker 1
    /// writes: both read the same value.
    Overlaps,
}

/// Worker 0 takes the lock, reads, and is held past the lock's TTL; once the server has
/// expired the lock, worker 1 runs as `then` says, around worker 0's write. Returns the
/// outcome, the finals and the verdict on the stored record.
fn holder_outlives_its_ttl(
    t: &RedisTarget,
    sh: &RunShape,
    then: Then,
) -> (Outcome, Vec<u32>, Verification) {
    let lock_key = Keys::of(sh.run).lock(0);
    let (held, go_on) = (Barrier::new(2), Barrier::new(2));
    let (held1, go_on1) = (Barrier::new(2), Barrier::new(2));
    let url = t.url().to_string();
    let once = [AtomicBool::new(false), AtomicBool::new(false)];
    let hook = |w: usize, _i: u64, p: Point| {
        // Each worker's first time holding the lock with its value read (a refused holder
        // that starts over holds it again: that time it goes on).
        let holds = w == 0 || then == Then::Overlaps;
        if p == Point::HoldingLock && holds && !once[w].swap(true, SeqCst) {
            let (h, g) = if w == 0 {
                (&held, &go_on)
            } else {
                (&held1, &go_on1)
            };
            h.wait();
            g.wait();
        }
    };
    let later = match then {
        Then::Updates(n) => n,
        Then::Overlaps => 1,
    };
    // Two workers, uneven op counts: drive them by hand around the barriers.
    let out = std::thread::scope(|s| {
        let hook = &hook;
        let w0 = s.spawn(move || one_worker(t, sh, 0, 1, hook));
        held.wait();
        // The TTL runs out on the server's clock: poll the key's existence, bounded.
        let deadline = Instant::now() + t.options.lock_ttl * 50;
        while harness::command(&url, &["EXISTS", &lock_key])
            .int()
            .unwrap()
            == 1
        {
            assert!(Instant::now() < deadline, "the lock never expired");
            std::thread::sleep(Duration::from_millis(5));
        }
        // Worker 1 starts only once worker 0's lock has expired.
        let w1 = s.spawn(move || one_worker(t, sh, 1, later, hook));
        let (r0, r1);
        if then == Then::Overlaps {
            held1.wait();
            go_on.wait();
            r0 = w0.join().unwrap();
            go_on1.wait();
            r1 = w1.join().unwrap();
        } else {
            r1 = w1.join().unwrap();
            go_on.wait();
            r0 = w0.join().unwrap();
        }
        [r0, r1]
    });
    let mut o = Outcome::default();
    for (acked, retries, error, stats) in out {
        o.acked.push(acked);
        o.retries += retries;
        o.in_flight.push(false);
        assert!(error.is_none(), "{error:?}");
        o.errors.push(error);
        o.stats.push(stats);
    }
    let finals = t.finals(sh).unwrap();
    t.end(&RunEnd {
        run: sh.run,
        fingerprint: fingerprint(&finals),
        finals: finals.clone(),
        completed: o.acked.clone(),
        killed: Vec::new(),
    })
    .unwrap();
    let v = verify(&stream::into_loaded(t.load(Some(sh.run)).unwrap()));
    (o, finals, v)
}

fn one_worker(
    t: &RedisTarget,
    sh: &RunShape,
    w: usize,
    ops: u64,
    hook: &(dyn Fn(usize, u64, Point) + Sync),
) -> (u64, u64, Option<UpdateError>, SessionStats) {
    let mut session = t.connect(sh, w, StrategyKind::Lock).unwrap();
    let (mut acked, mut retries) = (0, 0);
    for i in 0..ops {
        let event = EventDraft {
            worker: w as u32,
            seq: acked,
            invoke_ns: now_ns(),
        };
        match session.update_at(0, Some(event), &mut |p| hook(w, i, p)) {
            Ok(a) => {
                acked += 1;
                retries += a.retries as u64;
            }
            Err(e) => return (acked, retries, Some(e), session.stats),
        }
    }
    (acked, retries, None, session.stats)
}

fn lock_run(url: &str, fencing: Fencing) -> (RedisTarget, RunShape) {
    let t = target(
        url,
        RedisOptions {
            lock_ttl: Duration::from_millis(100),
            fencing,
            ..RedisOptions::default()
        },
    );
    let sh = shape(2, 1);
    t.create(&sh).unwrap();
    t.begin(&RunInfo {
        run: sh.run,
        strategy: "lock".into(),
        workers: 2,
        slots: 1,
        ops: 10,
        initial: sh.initial,
        seed: 0,
        persist: "target".into(),
    })
    .unwrap();
    (t, sh)
}

#[test]
fn lock_without_fencing_loses_updates_when_a_holder_outlives_its_ttl() {
    let test = "lock_without_fencing_loses_updates_when_a_holder_outlives_its_ttl";
    let Some(r) = redis(test) else {
        return;
    };
    let (t, sh) = lock_run(r.url(), Fencing::Off);
    let _clean = Cleanup(&t, sh.run);
    let (out, finals, v) = holder_outlives_its_ttl(&t, &sh, Then::Updates(10));
    // Worker 0 read 100, worker 1 counted to 110, then worker 0 wrote its stale 101.
    assert_eq!(out.acked(), 11);
    assert_eq!(finals, vec![sh.initial + 1]);
    assert_eq!(
        out.stats[0].robbed, 1,
        "the late holder found its lock gone"
    );
    assert!(!v.verified);
    let run = &v.runs[0];
    assert!(run.witnesses >= 1, "{run:?}");
    let w = &run.witness_list[0];
    assert_eq!((w.read, w.written), (sh.initial, sh.initial + 1));
    let mut both = w.workers;
    both.sort();
    assert_eq!(both, [0, 1], "the stale holder and the one after it: {w:?}");
}

#[test]
fn fencing_refuses_the_holder_that_outlived_its_ttl_and_stays_exact() {
    let test = "fencing_refuses_the_holder_that_outlived_its_ttl_and_stays_exact";
    let Some(r) = redis(test) else {
        return;
    };
    let (t, sh) = lock_run(r.url(), Fencing::Tokens);
    let _clean = Cleanup(&t, sh.run);
    let (out, finals, v) = holder_outlives_its_ttl(&t, &sh, Then::Updates(10));
    assert_eq!(out.acked(), 11);
    assert_eq!(
        finals,
        vec![sh.initial + 11],
        "exact: the stale write was refused"
    );
    assert_eq!(
        out.stats[0].fenced, 1,
        "worker 0's stale write refused once"
    );
    assert!(out.retries >= 1);
    assert!(v.verified, "{:?}", v.runs[0].problems);
}

#[test]
fn preflight_refuses_an_unreachable_server_and_more_workers_than_it_accepts() {
    let test = "preflight_refuses_an_unreachable_server_and_more_workers_than_it_accepts";
    // Nothing listens on a port we just released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let options = RedisOptions {
        io_timeout: Duration::from_secs(1),
        ..RedisOptions::default()
    };
    let dead = target(&format!("redis://127.0.0.1:{port}"), options);
    let e = dead
        .preflight(&shape(2, 1), &[StrategyKind::Atomic])
        .unwrap_err();
    assert!(
        matches!(&e, Error::Target(m) if m.contains("cannot connect")),
        "{e}"
    );
    assert_eq!(e.exit_code(), 2);

    let Some(s) = Server::start(test, &["--maxclients", "8"]) else {
        return;
    };
    let t = target(&s.url, RedisOptions::default());
    t.preflight(&shape(7, 1), &[StrategyKind::Atomic]).unwrap();
    let e = t
        .preflight(&shape(9, 1), &[StrategyKind::Atomic])
        .unwrap_err();
    match &e {
        Error::Usage(m) => {
            assert!(m.starts_with("--workers 9"), "{m}");
            assert!(m.contains("maxclients 8"), "{m}");
        }
        other => panic!("{other}"),
    }
    let e = t
        .preflight(&shape(2, 1), &[StrategyKind::FutexLock])
        .unwrap_err();
    assert!(
        matches!(&e, Error::Usage(m) if m.starts_with("--strategy futex-lock")),
        "{e}"
    );
}

#[test]
fn clean_removes_a_run_or_every_run_and_nothing_else() {
    let test = "clean_removes_a_run_or_every_run_and_nothing_else";
    // clean(None) removes every run: only ever on a server of our own.
    let Some(s) = Server::start(test, &[]) else {
        return;
    };
    let t = target(
        &s.url,
        RedisOptions {
            fencing: Fencing::Tokens,
            ..RedisOptions::default()
        },
    );
    harness::command(&s.url, &["SET", "user:1", "theirs"]);
    harness::command(&s.url, &["SET", "racepool:{x}:slot:0", "not a run id"]);
    let mut runs = Vec::new();
    for _ in 0..3 {
        let sh = shape(2, 3);
        t.create(&sh).unwrap();
        // A run that used every kind of key: slots, run hash, stream, fencing tokens.
        stored_run(&t, &sh, StrategyKind::Lock, 20, &|_, _, _| {});
        let pattern = Keys::of(sh.run).pattern();
        assert!(count_keys(&s.url, &pattern) >= 3 + 1 + 1 + 2 * 3);
        runs.push(sh);
    }
    assert_eq!(t.clean(Some(runs[0].run)).unwrap(), 1);
    assert_eq!(count_keys(&s.url, &Keys::of(runs[0].run).pattern()), 0);
    assert!(count_keys(&s.url, &Keys::of(runs[1].run).pattern()) > 0);
    assert_eq!(
        t.clean(Some(runs[0].run)).unwrap(),
        0,
        "nothing left to clean"
    );
    assert_eq!(t.clean(None).unwrap(), 2);
    assert_eq!(count_keys(&s.url, "racepool:{[0-9]*}:*"), 0);
    assert_eq!(count_keys(&s.url, "*"), 2, "the foreign keys stay");
}

#[test]
fn clean_on_the_shared_server_leaves_none_of_the_runs_keys() {
    let Some(r) = redis("clean_on_the_shared_server_leaves_none_of_the_runs_keys") else {
        return;
    };
    let t = target(r.url(), RedisOptions::default());
    let sh = shape(2, 4);
    t.create(&sh).unwrap();
    stored_run(&t, &sh, StrategyKind::Cas, 10, &|_, _, _| {});
    let pattern = Keys::of(sh.run).pattern();
    assert_eq!(count_keys(r.url(), &pattern), 4 + 1 + 1);
    assert_eq!(t.clean(Some(sh.run)).unwrap(), 1);
    assert_eq!(count_keys(r.url(), &pattern), 0);
}

#[test]
fn a_server_killed_mid_run_ends_every_worker_with_bounded_accounting() {
    let test = "a_server_killed_mid_run_ends_every_worker_with_bounded_accounting";
    // Acknowledged INCRs are on disk before their reply: a restart keeps them.
    let Some(mut s) = Server::start(test, &["--appendonly", "yes", "--appendfsync", "always"])
    else {
        return;
    };
    let options = RedisOptions {
        io_timeout: Duration::from_secs(2),
        ..RedisOptions::default()
    };
    let t = target(&s.url, options);
    let sh = shape(4, 2);
    t.create(&sh).unwrap();
    // Worker 0 holds after its 50th INCR while the server is killed; the others are mid-run.
    let (held, killed) = (Barrier::new(2), Barrier::new(2));
    let hook = |w: usize, i: u64, p: Point| {
        if (w, i, p) == (0, 50, Point::AfterCas) {
            held.wait();
            killed.wait();
        }
    };
    let out = std::thread::scope(|scope| {
        let runner = scope.spawn(|| drive(&t, &sh, StrategyKind::Atomic, 1_000_000, false, &hook));
        held.wait();
        s.kill();
        killed.wait();
        runner.join().unwrap()
    });
    for e in &out.errors {
        assert!(matches!(e, Some(UpdateError::Unknown(_))), "{e:?}");
    }
    s.restart();
    let finals = t.finals(&sh).unwrap();
    let applied = total(&finals, sh.initial);
    let (acked, in_flight) = (out.acked(), out.in_flight());
    assert!(acked >= 51, "worker 0 alone acknowledged 51");
    assert!(
        acked <= applied && applied <= acked + in_flight,
        "acknowledged {acked} ≤ applied {applied} ≤ acknowledged + in flight {}",
        acked + in_flight
    );
}

#[test]
fn a_server_that_lost_its_keys_fails_the_run_instead_of_judging_it() {
    let test = "a_server_that_lost_its_keys_fails_the_run_instead_of_judging_it";
    let Some(mut s) = Server::start(test, &[]) else {
        return;
    };
    let t = target(&s.url, RedisOptions::default());
    let sh = shape(1, 2);
    t.create(&sh).unwrap();
    s.restart(); // no persistence: the slots are gone
    let e = t.finals(&sh).unwrap_err();
    assert!(
        matches!(&e, Error::Target(m) if m.contains("is gone")),
        "{e}"
    );
    let mut session = t.connect(&sh, 0, StrategyKind::Racy).unwrap();
    let e = racepool::target::Session::update(&mut session, 0, None).unwrap_err();
    assert!(
        matches!(&e, UpdateError::Fatal(m) if m.contains("gone")),
        "{e:?}"
    );
}

#[test]
fn a_stopped_server_makes_the_update_unknown_within_the_timeout() {
    let test = "a_stopped_server_makes_the_update_unknown_within_the_timeout";
    let Some(s) = Server::start(test, &[]) else {
        return;
    };
    let t = target(
        &s.url,
        RedisOptions {
            io_timeout: Duration::from_millis(300),
            ..RedisOptions::default()
        },
    );
    let sh = shape(1, 1);
    t.create(&sh).unwrap();
    let mut session = t.connect(&sh, 0, StrategyKind::Atomic).unwrap();
    s.signal("-STOP");
    let started = Instant::now();
    let e = racepool::target::Session::update(&mut session, 0, None).unwrap_err();
    let waited = started.elapsed();
    s.signal("-CONT");
    assert!(matches!(e, UpdateError::Unknown(_)), "{e:?}");
    assert!(waited < Duration::from_secs(5), "no hang: {waited:?}");
    // Broken once, never trusted again.
    let again = racepool::target::Session::update(&mut session, 0, None).unwrap_err();
    assert!(matches!(again, UpdateError::Unknown(_)));
}

#[test]
fn the_redis_benchmark_peer_reports_rate_and_p99_and_leaves_no_key() {
    let test = "the_redis_benchmark_peer_reports_rate_and_p99_and_leaves_no_key";
    let Some(r) = redis(test) else {
        return;
    };
    let url = racepool::target::redis::resp::RedisUrl::parse(r.url()).unwrap();
    match racepool::peer::redis_benchmark::incr(&url, 2, 2000) {
        Err(racepool::peer::redis_benchmark::PeerError::NotInstalled) => {
            harness::skip(test, "redis-benchmark is not installed")
        }
        Err(e) => panic!("{e}"),
        Ok(f) => {
            assert!(f.rps > 0.0 && f.p99_ms >= f.p50_ms, "{f:?}");
            assert_eq!(f.clients, 2);
        }
    }
    assert_eq!(count_keys(r.url(), "racepool:{*}:peer"), 0);
}

#[test]
fn the_loader_refuses_a_stream_entry_that_is_not_racepools() {
    let Some(r) = redis("the_loader_refuses_a_stream_entry_that_is_not_racepools") else {
        return;
    };
    let t = target(r.url(), RedisOptions::default());
    let sh = shape(1, 1);
    let _clean = Cleanup(&t, sh.run);
    t.create(&sh).unwrap();
    stored_run(&t, &sh, StrategyKind::Atomic, 3, &|_, _, _| {});
    let stream_key = Keys::of(sh.run).events();
    harness::command(r.url(), &["XADD", &stream_key, "*", "k", "e", "w", "zero"]);
    let e = t.load(Some(sh.run)).unwrap_err();
    assert!(
        matches!(&e, Error::Usage(m) if m.contains("'s'") || m.contains("not a racepool record")),
        "{e}"
    );
    assert_eq!(e.exit_code(), 2);
    // A run id this process never creates (`sh.run ^ 1` may be a concurrent test's run).
    let e = t.load(Some(fresh_run())).unwrap_err();
    assert!(
        matches!(&e, Error::Usage(m) if m.contains("no stored record")),
        "{e}"
    );
}

#[test]
fn a_run_lives_in_the_urls_database_and_is_never_created_twice() {
    let test = "a_run_lives_in_the_urls_database_and_is_never_created_twice";
    let Some(s) = Server::start(test, &[]) else {
        return;
    };
    let db3 = format!("{}/3", s.url);
    let t = target(&db3, RedisOptions::default());
    let sh = shape(1, 2);
    t.create(&sh).unwrap();
    assert_eq!(count_keys(&s.url, "*"), 0, "database 0 untouched");
    assert_eq!(count_keys(&db3, "*"), 2 + 1);
    let e = t.create(&sh).unwrap_err();
    assert!(
        matches!(&e, Error::Target(m) if m.contains("already has keys")),
        "{e}"
    );
    assert_eq!(
        t.finals(&sh).unwrap(),
        vec![sh.initial; 2],
        "nothing overwritten"
    );
    assert_eq!(t.clean(Some(sh.run)).unwrap(), 1);
    assert_eq!(count_keys(&db3, "*"), 0);
}

#[test]
fn fencing_only_the_write_still_loses_when_two_holders_read_the_same_value() {
    let test = "fencing_only_the_write_still_loses_when_two_holders_read_the_same_value";
    let Some(r) = redis(test) else {
        return;
    };
    // Worker 0 reads 100 and outlives its lock; worker 1 takes it and reads 100; worker 0
    // writes, then worker 1 writes.
    for fencing in [Fencing::Off, Fencing::WriteOnly, Fencing::Tokens] {
        let (t, sh) = lock_run(r.url(), fencing);
        let _clean = Cleanup(&t, sh.run);
        let (out, finals, v) = holder_outlives_its_ttl(&t, &sh, Then::Overlaps);
        assert_eq!(out.acked(), 2);
        if fencing == Fencing::Tokens {
            // Worker 0's write is refused (worker 1's read raised the guard), and so is
            // worker 1's after worker 0 started over with a newer token.
            assert_eq!(finals, vec![sh.initial + 2], "exact");
            assert!(out.stats[0].fenced >= 1 && out.stats[1].fenced >= 1);
            assert!(v.verified, "{:?}", v.runs[0].problems);
        } else {
            assert_eq!(finals, vec![sh.initial + 1], "{fencing:?}: both wrote 101");
            assert_eq!(out.stats[1].fenced, 0, "{fencing:?}: nobody was refused");
            let w = &v.runs[0].witness_list[0];
            assert_eq!((w.read, w.written), (sh.initial, sh.initial + 1));
        }
    }
}
