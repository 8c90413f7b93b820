//! The PostgreSQL and MariaDB targets against the real servers, at the library level: each
//! worker is a thread with its own connection (database clients are thread-safe; forking
//! inside the test harness is not), released together by a barrier.
//!
//! Hermitage's findings are the expected verdicts: PostgreSQL loses updates with `racy` at read
//! committed, and turns them into retried serialization failures at repeatable read and
//! serializable; MariaDB/InnoDB loses them at read committed and repeatable read, and
//! serializable makes them exact (as retried deadlocks). Every other strategy is exact
//! everywhere.

mod common;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Barrier, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use common::services::{self, Service};
use racepool::error::Error;
use racepool::history::event::fingerprint;
use racepool::history::RunEnd;
use racepool::history::RunInfo;
use racepool::strategy::{Applied, StrategyKind};
use racepool::target::mysql::My;
use racepool::target::postgres::Pg;
use racepool::target::sql::{render, Driver, Isolation, Sql, STRATEGIES};
use racepool::target::{EventDraft, RecordStore, RunShape, Session, Target, UpdateError};
use racepool::verify;
use racepool::workload::parse_ballot;

/// Tests that count the server's connections run alone; all others share.
static SERVER: RwLock<()> = RwLock::new(());

fn shared() -> RwLockReadGuard<'static, ()> {
    SERVER.read().unwrap_or_else(|e| e.into_inner())
}

fn alone() -> RwLockWriteGuard<'static, ()> {
    SERVER.write().unwrap_or_else(|e| e.into_inner())
}

/// An engine as the tests see it: its service and Hermitage's verdict for `racy`.
trait Engine: Driver + 'static {
    const SERVICE: Service;
    /// Whether `racy` loses updates at `level`.
    fn racy_loses(level: Isolation) -> bool;
}

impl Engine for Pg {
    const SERVICE: Service = Service::Postgres;
    fn racy_loses(level: Isolation) -> bool {
        level == Isolation::ReadCommitted
    }
}

impl Engine for My {
    const SERVICE: Service = Service::Mysql;
    fn racy_loses(level: Isolation) -> bool {
        level != Isolation::Serializable
    }
}

fn target<D: Engine>(test: &str, level: Isolation) -> Option<Sql<D>> {
    services::url(D::SERVICE, test).map(|url| Sql::new(&url, level))
}

fn fresh_run() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Relaxed);
    ((racepool::clock::now_ns() ^ ((std::process::id() as u64) << 40)) + n) & (i64::MAX as u64)
}

/// A run's rows, removed when the test is done with them, whatever happened.
struct Run<'t, D: Driver> {
    target: &'t Sql<D>,
    shape: RunShape,
}

impl<'t, D: Driver> Run<'t, D> {
    fn counter(target: &'t Sql<D>, workers: usize, slots: usize, initial: u32) -> Self {
        let shape = RunShape {
            run: fresh_run(),
            slots,
            workers,
            initial,
            race_window: 0,
            ..Default::default()
        };
        target.create(&shape).expect("create");
        Run { target, shape }
    }

    fn poll(target: &'t Sql<D>, workers: usize, options: usize) -> Self {
        let shape = RunShape {
            run: fresh_run(),
            slots: options,
            workers,
            initial: 0,
            race_window: 0,
            ..Default::default()
        };
        target.create_poll(&shape).expect("create_poll");
        Run { target, shape }
    }

    fn begin_record(&self, strategy: StrategyKind, ops: u64) {
        let s = &self.shape;
        self.target
            .begin_record(&RunInfo {
                run: s.run,
                strategy: strategy.name().into(),
                workers: s.workers as u32,
                slots: s.slots as u32,
                ops,
                initial: s.initial,
                seed: 7,
                persist: "target".into(),
            })
            .expect("begin_record");
    }

    fn end_record(&self, completed: Vec<u64>) -> Vec<u32> {
        let finals = self.target.finals(&self.shape).expect("finals");
        self.target
            .end_record(&RunEnd {
                run: self.shape.run,
                fingerprint: fingerprint(&finals),
                finals: finals.clone(),
                completed,
                killed: vec![],
            })
            .expect("end_record");
        finals
    }

    fn verify(&self) -> verify::RunCheck {
        let loaded = self.target.load(Some(self.shape.run)).expect("load");
        assert_eq!(loaded.runs.len(), 1);
        // A row failing its checksum is damage inside its run: the run's own verdict says it.
        verify::verify(&loaded).runs.into_iter().next().unwrap()
    }
}

impl<D: Driver> Drop for Run<'_, D> {
    fn drop(&mut self) {
        let removed = self.target.clean(Some(self.shape.run));
        if !std::thread::panicking() {
            assert_eq!(removed.expect("clean"), 1);
        }
    }
}

/// What the workers did.
struct Outcome {
    /// Updates each worker had acknowledged.
    acked: Vec<u64>,
    applied: Vec<Applied>,
    /// The error that stopped a worker, by worker.
    errors: Vec<(usize, UpdateError)>,
    elapsed: Duration,
}

impl Outcome {
    fn total(&self) -> u64 {
        self.acked.iter().sum()
    }
    fn retries(&self) -> u64 {
        self.applied.iter().map(|a| a.retries as u64).sum()
    }
}

/// `shape.workers` threads, each with its own session, released together, `ops` updates each
/// over the slots in turn; with `events`, each writes its event in the update's transaction.
fn drive<D: Driver>(
    target: &Sql<D>,
    shape: &RunShape,
    strategy: StrategyKind,
    ops: u64,
    events: bool,
) -> Outcome {
    let barrier = Barrier::new(shape.workers + 1);
    let applied = Mutex::new(Vec::new());
    let errors = Mutex::new(Vec::new());
    let mut acked = vec![0u64; shape.workers];
    let elapsed = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..shape.workers)
            .map(|w| {
                let (barrier, applied, errors) = (&barrier, &applied, &errors);
                scope.spawn(move || {
                    let session = target.connect(shape, w, strategy);
                    barrier.wait();
                    let mut session = session.expect("connect");
                    let mut mine = Vec::with_capacity(ops as usize);
                    for seq in 0..ops {
                        let slot = ((w as u64 + seq) % shape.slots as u64) as u32;
                        let event = events.then(|| EventDraft {
                            worker: w as u32,
                            seq,
                            invoke_ns: racepool::clock::now_ns(),
                        });
                        match session.update(slot, event) {
                            Ok(a) => mine.push(a),
                            Err(e) => {
                                errors.lock().unwrap().push((w, e));
                                break;
                            }
                        }
                    }
                    let n = mine.len() as u64;
                    applied.lock().unwrap().extend(mine);
                    n
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        for (w, h) in handles.into_iter().enumerate() {
            acked[w] = h.join().expect("worker thread");
        }
        start.elapsed()
    });
    Outcome {
        acked,
        applied: applied.into_inner().unwrap(),
        errors: errors.into_inner().unwrap(),
        elapsed,
    }
}

/// Raw SQL on the engine, for the tests' own reads and edits.
fn raw<D: Driver>(target: &Sql<D>) -> D {
    D::connect(target.url(), "racepool-test").unwrap_or_else(|f| panic!("connect: {f}"))
}

fn ints<D: Driver>(c: &mut D, sql: &str) -> Vec<i64> {
    let b = render(sql, D::PLACEHOLDERS);
    c.rows(&b, &[])
        .unwrap_or_else(|f| panic!("{sql}: {f}"))
        .iter()
        .map(|r| r[0].int().unwrap_or(-1))
        .collect()
}

fn exec<D: Driver>(c: &mut D, sql: &str) -> u64 {
    let b = render(sql, D::PLACEHOLDERS);
    c.execute(&b, &[]).unwrap_or_else(|f| panic!("{sql}: {f}"))
}

// ---- every strategy × isolation verdict ------------------------------------------------

const VERDICT_WORKERS: usize = 8;
const VERDICT_OPS: u64 = 60;

fn verdicts<D: Engine>(test: &str) {
    let _g = shared();
    let Some(probe) = target::<D>(test, Isolation::ReadCommitted) else {
        return;
    };
    let mut table = Vec::new();
    for level in Isolation::ALL {
        let t = Sql::<D>::new(probe.url(), level);
        for strategy in STRATEGIES {
            let run = Run::counter(&t, VERDICT_WORKERS, 1, 0);
            let o = drive(&t, &run.shape, strategy, VERDICT_OPS, false);
            assert!(
                o.errors.is_empty(),
                "{strategy:?} {level:?}: {:?}",
                o.errors
            );
            let final_value = t.finals(&run.shape).unwrap()[0] as u64;
            let expected = VERDICT_WORKERS as u64 * VERDICT_OPS;
            assert_eq!(o.total(), expected, "every update acknowledged");
            let lost = expected - final_value;
            let name = format!("{} {} {}", D::KIND.name(), level.name(), strategy.name());
            if strategy == StrategyKind::Racy && D::racy_loses(level) {
                assert!(lost > 0, "{name}: racy must lose updates");
                assert_eq!(o.retries(), 0, "{name}: nothing refused a racy write");
            } else {
                assert_eq!(lost, 0, "{name}: must be exact");
            }
            if strategy == StrategyKind::Racy && !D::racy_loses(level) {
                // Exact only because the engine refused the lost updates: the control that
                // the exactness above is not a lack of contention.
                assert!(o.retries() > 0, "{name}: exact without a single retry");
            }
            table.push(format!(
                "{name}: lost {lost} of {expected}, {:.2} retries/update, {:.0} updates/s",
                o.retries() as f64 / expected as f64,
                expected as f64 / o.elapsed.as_secs_f64()
            ));
        }
    }
    eprintln!("{}", table.join("\n"));
}

#[test]
fn postgres_verdicts_match_hermitage() {
    verdicts::<Pg>("postgres_verdicts_match_hermitage");
}

#[test]
fn mariadb_verdicts_match_hermitage() {
    verdicts::<My>("mariadb_verdicts_match_hermitage");
}

/// Strategies that need no retry report none, where the engine gives them no reason to.
fn no_needless_retries<D: Engine>(test: &str, levels: &[Isolation], strategies: &[StrategyKind]) {
    let _g = shared();
    let Some(probe) = target::<D>(test, Isolation::ReadCommitted) else {
        return;
    };
    for &level in levels {
        let t = Sql::<D>::new(probe.url(), level);
        for &strategy in strategies {
            let run = Run::counter(&t, 6, 1, 0);
            let o = drive(&t, &run.shape, strategy, 40, true);
            assert!(o.errors.is_empty(), "{:?}", o.errors);
            assert_eq!(o.retries(), 0, "{level:?} {strategy:?}");
        }
    }
}

#[test]
fn postgres_atomic_lock_advisory_never_retry_at_read_committed() {
    no_needless_retries::<Pg>(
        "postgres_atomic_lock_advisory_never_retry_at_read_committed",
        &[Isolation::ReadCommitted],
        &[
            StrategyKind::Atomic,
            StrategyKind::Lock,
            StrategyKind::Advisory,
        ],
    );
}

#[test]
fn mariadb_atomic_lock_advisory_never_retry() {
    no_needless_retries::<My>(
        "mariadb_atomic_lock_advisory_never_retry",
        &Isolation::ALL,
        &[
            StrategyKind::Atomic,
            StrategyKind::Lock,
            StrategyKind::Advisory,
        ],
    );
}

// ---- correct strategies over many runs ------------------------------------------------

fn exact_over_many_runs<D: Engine>(test: &str) {
    let _g = shared();
    let Some(t) = target::<D>(test, Isolation::ReadCommitted) else {
        return;
    };
    const RUNS: usize = 10;
    for strategy in STRATEGIES.into_iter().filter(|s| s.is_exact()) {
        for _ in 0..RUNS {
            let run = Run::counter(&t, 6, 2, 1000);
            let o = drive(&t, &run.shape, strategy, 20, false);
            assert!(o.errors.is_empty(), "{:?}", o.errors);
            let finals = t.finals(&run.shape).unwrap();
            // Slot s gets the updates whose (worker + seq) % 2 == s.
            assert_eq!(finals, vec![1060, 1060], "{strategy:?}");
        }
    }
}

#[test]
fn postgres_correct_strategies_are_exact_over_many_runs() {
    exact_over_many_runs::<Pg>("postgres_correct_strategies_are_exact_over_many_runs");
}

#[test]
fn mariadb_correct_strategies_are_exact_over_many_runs() {
    exact_over_many_runs::<My>("mariadb_correct_strategies_are_exact_over_many_runs");
}

// ---- the record in the database ---------------------------------------------------------

fn racy_loss_has_witnesses<D: Engine>(test: &str) {
    let _g = shared();
    let Some(t) = target::<D>(test, Isolation::ReadCommitted) else {
        return;
    };
    let run = Run::counter(&t, 8, 1, 0);
    run.begin_record(StrategyKind::Racy, 50);
    let o = drive(&t, &run.shape, StrategyKind::Racy, 50, true);
    assert!(o.errors.is_empty(), "{:?}", o.errors);
    let finals = run.end_record(o.acked.clone());
    assert!((finals[0] as u64) < o.total(), "racy must lose");
    let c = run.verify();
    assert!(!c.verified);
    assert_eq!(c.persisted, o.total(), "every acknowledged event is stored");
    assert_eq!(c.acknowledged, Some(o.total()));
    // Every value up to the final one was written (each write read its predecessor), so the
    // values won twice are at most the updates lost; a stale write that rolled the row back
    // loses the values above it too, so they can be fewer. A loss needs at least one.
    let lost = o.total() - finals[0] as u64;
    assert!(
        (1..=lost).contains(&c.duplicates),
        "duplicates {} within 1..={lost}",
        c.duplicates
    );
    let w = c
        .witness_list
        .iter()
        .find(|w| w.workers[0] != w.workers[1])
        .expect("a witness naming two workers");
    assert_eq!(w.read + 1, w.written);
    assert!(
        c.problems[0].to_string().starts_with("lost update"),
        "{:?}",
        c.problems
    );
    assert_eq!(c.broken_links, 0, "the chain itself is intact");
    assert_eq!(c.sequence_errors, 0);
}

#[test]
fn postgres_racy_loss_is_shown_with_witnesses() {
    racy_loss_has_witnesses::<Pg>("postgres_racy_loss_is_shown_with_witnesses");
}

#[test]
fn mariadb_racy_loss_is_shown_with_witnesses() {
    racy_loss_has_witnesses::<My>("mariadb_racy_loss_is_shown_with_witnesses");
}

/// The record round trip (header, events, end read back as written), and verify catching an
/// edited, a deleted and a duplicated event row, each undone to show it was the cause.
fn record_round_trip_and_tampering<D: Engine>(test: &str) {
    let _g = shared();
    let Some(t) = target::<D>(test, Isolation::RepeatableRead) else {
        return;
    };
    let run = Run::counter(&t, 4, 3, 5);
    run.begin_record(StrategyKind::Cas, 30);
    let o = drive(&t, &run.shape, StrategyKind::Cas, 30, true);
    assert!(o.errors.is_empty(), "{:?}", o.errors);
    let finals = run.end_record(o.acked.clone());
    assert_eq!(finals.iter().map(|&v| (v - 5) as u64).sum::<u64>(), 120);

    let loaded = t.load(Some(run.shape.run)).unwrap();
    let h = &loaded.runs[0];
    assert_eq!(h.info.strategy, "cas");
    assert_eq!((h.info.workers, h.info.slots, h.info.initial), (4, 3, 5));
    assert_eq!(h.events.len(), 120);
    let end = h.end.as_ref().expect("end");
    assert_eq!(end.finals, finals);
    assert_eq!(end.completed, o.acked);
    assert_eq!(h.stored.as_deref(), Some(&finals[..]));
    // The events carry what the sessions returned.
    let mut from_events: Vec<(u32, u32)> = h.events.iter().map(|e| (e.read, e.written)).collect();
    let mut from_sessions: Vec<(u32, u32)> =
        o.applied.iter().map(|a| (a.read, a.written)).collect();
    from_events.sort_unstable();
    from_sessions.sort_unstable();
    assert_eq!(from_events, from_sessions);
    assert_eq!(
        h.events.iter().map(|e| e.retries as u64).sum::<u64>(),
        o.retries()
    );
    let c = run.verify();
    assert!(c.verified, "{:?}", c.problems);

    let mut c2 = raw(&t);
    let r = run.shape.run;
    let key = format!("run = {r} AND worker = 1 AND seq = 7");
    // Edited: a different value written.
    assert_eq!(
        exec(
            &mut c2,
            &format!("UPDATE racepool_events SET value_written = value_written + 1 WHERE {key}")
        ),
        1
    );
    // The row's checksum covers the value: the edited row is damage, named by its key, and its
    // content is never used (so the value it claimed is a gap, not a broken link).
    let c = run.verify();
    assert!(!c.verified, "{:?}", c.problems);
    assert!(
        c.problems
            .iter()
            .any(|p| p.to_string().contains("fails its checksum")),
        "{:?}",
        c.problems
    );
    exec(
        &mut c2,
        &format!("UPDATE racepool_events SET value_written = value_written - 1 WHERE {key}"),
    );
    assert!(run.verify().verified);
    // Edited where no chain looks: only the row's checksum does.
    exec(
        &mut c2,
        &format!("UPDATE racepool_events SET retries = retries + 9 WHERE {key}"),
    );
    let c = run.verify();
    assert!(!c.verified, "a row edited outside the chain");
    assert!(
        c.problems
            .iter()
            .any(|p| p.to_string().contains("fails its checksum")),
        "{:?}",
        c.problems
    );
    exec(
        &mut c2,
        &format!("UPDATE racepool_events SET retries = retries - 9 WHERE {key}"),
    );
    assert!(run.verify().verified);
    // Deleted: a gap in the slot's values and in the worker's sequence.
    let columns = "run, worker, seq, slot, value_read, value_written, retries, invoke_ns, \
                   complete_ns, hash, crc";
    let b = render(
        &format!("SELECT {columns} FROM racepool_events WHERE {key}"),
        D::PLACEHOLDERS,
    );
    let row: Vec<i64> = c2.rows(&b, &[]).unwrap()[0]
        .iter()
        .map(|c| c.int().unwrap())
        .collect();
    let insert = |row: &[i64]| {
        let values: Vec<String> = row.iter().map(i64::to_string).collect();
        format!(
            "INSERT INTO racepool_events ({columns}) VALUES ({})",
            values.join(", ")
        )
    };
    exec(&mut c2, &format!("DELETE FROM racepool_events WHERE {key}"));
    let c = run.verify();
    assert!(!c.verified && c.gaps == 1 && c.sequence_errors > 0, "{c:?}");
    exec(&mut c2, &insert(&row));
    assert!(run.verify().verified);
    // Duplicated: the key refuses a copy as it is. As worker 1's next record its checksum (over
    // the sequence too) no longer matches, so the copy is damage and never counted; with the
    // checksum made to match (a writer that persisted one update twice), it is a value won twice.
    assert!(c2
        .execute(&render(&insert(&row), D::PLACEHOLDERS), &[])
        .is_err());
    let mut next = row.clone();
    next[2] = 30;
    exec(&mut c2, &insert(&next));
    let c = run.verify();
    assert!(!c.verified && c.corrupt_records == 1, "{c:?}");
    let event = racepool::history::Event {
        run: next[0] as u64,
        worker: next[1] as u32,
        seq: next[2] as u64,
        slot: next[3] as u32,
        read: next[4] as u32,
        written: next[5] as u32,
        retries: next[6] as u32,
        invoke_ns: next[7] as u64,
        complete_ns: next[8] as u64,
        hash: next[9] as u64,
    };
    let crc = racepool::target::sql::event_crc(&event);
    exec(
        &mut c2,
        &format!(
            "UPDATE racepool_events SET crc = {crc} WHERE run = {r} AND worker = 1 AND seq = 30"
        ),
    );
    let c = run.verify();
    assert!(!c.verified && c.duplicates == 1, "{c:?}");
}

#[test]
fn postgres_record_round_trips_and_tampering_is_caught() {
    record_round_trip_and_tampering::<Pg>("postgres_record_round_trips_and_tampering_is_caught");
}

#[test]
fn mariadb_record_round_trips_and_tampering_is_caught() {
    record_round_trip_and_tampering::<My>("mariadb_record_round_trips_and_tampering_is_caught");
}

// ---- votes ------------------------------------------------------------------------------

/// Ballots as voters type them: valid ones and each way to be invalid.
const BALLOTS: [&str; 20] = [
    "0",
    "1",
    "2",
    "+1",
    "-0",
    "00",
    "007",
    "-1",
    "3",
    "99999999999999999999999",
    "abc",
    "",
    " 1",
    "+",
    "x0",
    "1x",
    "2 ",
    "0.5",
    "1\n",
    "2",
];

fn votes<D: Engine>(test: &str) {
    let _g = shared();
    let Some(t) = target::<D>(test, Isolation::ReadCommitted) else {
        return;
    };
    const OPTIONS: usize = 3;
    const VOTERS: usize = 3;
    const ROUNDS: usize = 4;
    // The oracle: the memory scenario's parser, an implementation apart from the database's.
    let mut accepted = [0u64; OPTIONS];
    for b in BALLOTS {
        if let Ok(o) = parse_ballot(b, OPTIONS) {
            accepted[o] += (VOTERS * ROUNDS) as u64;
        }
    }
    for strategy in STRATEGIES {
        let run = Run::poll(&t, VOTERS, OPTIONS);
        run.begin_record(strategy, (ROUNDS * BALLOTS.len()) as u64);
        let barrier = Barrier::new(VOTERS);
        let acked: Vec<u64> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..VOTERS)
                .map(|w| {
                    let (t, shape, barrier) = (&t, &run.shape, &barrier);
                    scope.spawn(move || {
                        let mut voter = t.connect_voter(shape, w, strategy).expect("voter");
                        barrier.wait();
                        let mut n = 0;
                        for _ in 0..ROUNDS {
                            for b in BALLOTS {
                                match (voter.vote(b), parse_ballot(b, OPTIONS)) {
                                    (Ok(a), Ok(_)) => {
                                        assert_eq!(a.read + 1, a.written);
                                        n += 1;
                                    }
                                    (Err(UpdateError::Rejected(why)), Err(r)) => {
                                        assert_eq!(why, r.name(), "ballot {b:?}")
                                    }
                                    (got, want) => {
                                        panic!("ballot {b:?}: got {got:?}, expected {want:?}")
                                    }
                                }
                            }
                        }
                        n
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let finals = run.end_record(acked);
        if strategy.is_exact() {
            assert_eq!(finals, accepted.map(|a| a as u32).to_vec(), "{strategy:?}");
            // votes_after runs 1, 2, 3 … per option: no gap, no repeat.
            let c = run.verify();
            assert!(c.verified, "{strategy:?}: {:?}", c.problems);
            assert_eq!(c.persisted, accepted.iter().sum::<u64>());
        }
    }
}

#[test]
fn postgres_votes_are_exact_and_bad_ballots_rejected_per_reason() {
    votes::<Pg>("postgres_votes_are_exact_and_bad_ballots_rejected_per_reason");
}

#[test]
fn mariadb_votes_are_exact_and_bad_ballots_rejected_per_reason() {
    votes::<My>("mariadb_votes_are_exact_and_bad_ballots_rejected_per_reason");
}

// ---- what cannot work is refused before anything starts -------------------------------

fn refusals<D: Engine>(test: &str) {
    let _g = shared();
    let Some(t) = target::<D>(test, Isolation::ReadCommitted) else {
        return;
    };
    let shape = |workers| RunShape {
        run: fresh_run(),
        slots: 1,
        workers,
        initial: 0,
        race_window: 0,
        ..Default::default()
    };
    match t.preflight(&shape(100_000), &STRATEGIES) {
        Err(Error::Usage(m)) => {
            assert!(m.contains("--workers 100000"), "{m}");
            assert!(m.contains("max_connections"), "{m}");
        }
        other => panic!("{other:?}"),
    }
    t.preflight(&shape(2), &STRATEGIES)
        .expect("two workers fit");
    match t.preflight(&shape(2), &[StrategyKind::FutexLock]) {
        Err(Error::Usage(m)) => assert!(m.contains("futex-lock"), "{m}"),
        other => panic!("{other:?}"),
    }
    // A server that does not answer: port 1 on loopback.
    let scheme = t.url().split_once("://").unwrap().0;
    let nowhere = Sql::<D>::new(
        &format!("{scheme}://root@127.0.0.1:1/test"),
        Isolation::ReadCommitted,
    );
    match nowhere.preflight(&shape(2), &STRATEGIES) {
        Err(Error::Target(m)) => assert!(m.contains("127.0.0.1:1"), "{m}"),
        other => panic!("{other:?}"),
    }
    match nowhere.connect(&shape(2), 0, StrategyKind::Atomic) {
        Err(UpdateError::Fatal(m)) => assert!(m.contains("127.0.0.1:1"), "{m}"),
        Err(e) => panic!("{e:?}"),
        Ok(_) => panic!("connected to nothing"),
    }
}

#[test]
fn postgres_refuses_too_many_workers_and_unreachable_servers() {
    refusals::<Pg>("postgres_refuses_too_many_workers_and_unreachable_servers");
}

#[test]
fn mariadb_refuses_too_many_workers_and_unreachable_servers() {
    refusals::<My>("mariadb_refuses_too_many_workers_and_unreachable_servers");
}

// ---- a connection killed mid-update ------------------------------------------------------

/// Polls `sql` (one count) until it is `want`, for at most 20 s: the server's own view of
/// something this test caused, never a hope about timing.
fn eventually<D: Driver>(c: &mut D, sql: &str, want: i64) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = ints(c, sql)[0];
        if got == want || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Kills one of `run`'s workers while it waits for a row lock inside its transaction;
/// returns how many were waiting when it struck.
trait Killer: Engine {
    fn kill_a_waiting_worker(c: &mut Self, run: u64, waiting: i64) -> i64;
}

impl Killer for Pg {
    fn kill_a_waiting_worker(c: &mut Pg, run: u64, waiting: i64) -> i64 {
        let count = format!(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'racepool/{run}/%' \
             AND wait_event_type = 'Lock'"
        );
        let seen = eventually(c, &count, waiting);
        let killed = ints(
            c,
            &format!(
                "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE application_name = 'racepool/{run}/0') k"
            ),
        );
        assert_eq!(killed, vec![1]);
        seen
    }
}

impl Killer for My {
    fn kill_a_waiting_worker(c: &mut My, _run: u64, waiting: i64) -> i64 {
        // Every other test is held off (`alone`), so the run's workers are the only sessions
        // waiting in a locking read of the slots.
        let blocked = "FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() \
                       AND INFO LIKE '%racepool_slots%FOR UPDATE%'";
        let seen = eventually(c, &format!("SELECT COUNT(*) {blocked}"), waiting);
        let id = ints(c, &format!("SELECT MIN(ID) {blocked}"))[0];
        exec(c, &format!("KILL CONNECTION {id}"));
        seen
    }
}

fn killed_mid_update<D: Killer>(test: &str) {
    let _g = alone();
    let Some(t) = target::<D>(test, Isolation::ReadCommitted) else {
        return;
    };
    const WORKERS: usize = 3;
    let run = Run::counter(&t, WORKERS, 1, 0);
    let r = run.shape.run;
    let mut blocker = raw(&t);
    let (before, blocked) = (Barrier::new(WORKERS + 1), Barrier::new(WORKERS + 1));
    let results: Vec<(u64, Option<UpdateError>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..WORKERS)
            .map(|w| {
                let (t, shape, before, blocked) = (&t, &run.shape, &before, &blocked);
                scope.spawn(move || {
                    let mut s = t.connect(shape, w, StrategyKind::Lock).expect("connect");
                    let mut n = 0;
                    for _ in 0..10 {
                        s.update(0, None).expect("before the kill");
                        n += 1;
                    }
                    before.wait();
                    blocked.wait();
                    for _ in 0..10 {
                        match s.update(0, None) {
                            Ok(_) => n += 1,
                            Err(e) => return (n, Some(e)),
                        }
                    }
                    (n, None)
                })
            })
            .collect();
        before.wait();
        // Hold the row, so every worker's next update waits inside its transaction.
        blocker.simple("BEGIN").unwrap();
        ints(
            &mut blocker,
            &format!("SELECT value FROM racepool_slots WHERE run = {r} FOR UPDATE"),
        );
        blocked.wait();
        let mut watcher = raw(&t);
        let waiting = D::kill_a_waiting_worker(&mut watcher, r, WORKERS as i64);
        assert_eq!(waiting, WORKERS as i64, "every worker waits for the row");
        blocker.simple("COMMIT").unwrap();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let unknown: Vec<_> = results.iter().filter(|r| r.1.is_some()).collect();
    assert_eq!(unknown.len(), 1, "{results:?}");
    assert!(
        matches!(unknown[0], (10, Some(UpdateError::Unknown(_)))),
        "{results:?}"
    );
    assert_eq!(
        results.iter().filter(|r| *r == &(20, None)).count(),
        WORKERS - 1,
        "the others go on: {results:?}"
    );
    let acked: u64 = results.iter().map(|r| r.0).sum();
    let final_value = t.finals(&run.shape).unwrap()[0] as u64;
    assert!(
        acked <= final_value && final_value <= acked + 1,
        "acknowledged {acked} ≤ final {final_value} ≤ {acked} + 1 in flight"
    );
}

#[test]
fn postgres_connection_killed_mid_update_is_unknown_and_bounded() {
    killed_mid_update::<Pg>("postgres_connection_killed_mid_update_is_unknown_and_bounded");
}

#[test]
fn mariadb_connection_killed_mid_update_is_unknown_and_bounded() {
    killed_mid_update::<My>("mariadb_connection_killed_mid_update_is_unknown_and_bounded");
}

// ---- nothing leaks, clean leaves nothing --------------------------------------------------

fn nothing_left<D: Engine>(test: &str, connections: &str) {
    let _g = alone();
    let Some(t) = target::<D>(test, Isolation::ReadCommitted) else {
        return;
    };
    let mut probe = raw(&t);
    let before = ints(&mut probe, connections)[0];
    let mut shapes = Vec::new();
    {
        for strategy in STRATEGIES {
            let run = Run::counter(&t, 8, 4, 0);
            shapes.push(run.shape.clone());
            let o = drive(&t, &run.shape, strategy, 10, true);
            assert!(o.errors.is_empty(), "{:?}", o.errors);
        }
        // A poll too, with rejected ballots.
        let poll = Run::poll(&t, 2, 2);
        let mut v = t
            .connect_voter(&poll.shape, 0, StrategyKind::Advisory)
            .unwrap();
        assert!(v.vote("1").is_ok());
        assert_eq!(v.vote("9"), Err(UpdateError::Rejected("out-of-range")));
    }
    // Every session, parent-side connection and lock is gone with the run.
    assert_eq!(
        eventually(&mut probe, connections, before),
        before,
        "the server's connection count returns to where it was"
    );
    for shape in &shapes {
        let r = shape.run as i64;
        if D::KIND == racepool::target::TargetKind::Postgres {
            let keys: Vec<String> = (0..4).map(|s| (r ^ s).to_string()).collect();
            let held = ints(
                &mut probe,
                &format!(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND \
                     ((classid::bigint << 32) | objid::bigint) IN ({})",
                    keys.join(", ")
                ),
            );
            assert_eq!(held, vec![0], "no advisory lock held");
        } else {
            for s in 0..4 {
                let free = ints(
                    &mut probe,
                    &format!("SELECT IS_FREE_LOCK(CONCAT('racepool:', {r}, ':', {s}))"),
                );
                assert_eq!(free, vec![1], "no advisory lock held on slot {s}");
            }
        }
        if ints(&mut probe, D::HAS_TABLES)[0] == 1 {
            for table in ["racepool_slots", "racepool_events", "racepool_runs"] {
                let rows = ints(
                    &mut probe,
                    &format!("SELECT count(*) FROM {table} WHERE run = {r}"),
                );
                assert_eq!(rows, vec![0], "{table} keeps nothing of the run");
            }
        }
        assert_eq!(t.clean(Some(shape.run)).unwrap(), 0, "cleaned twice");
    }
    if ints(&mut probe, D::HAS_TABLES)[0] == 1 {
        let others = ints(&mut probe, "SELECT count(*) FROM racepool_runs")[0];
        assert!(others > 0, "the tables go with the last run");
        eprintln!("{test}: {others} other run(s) keep the tables");
    }
}

#[test]
fn postgres_leaves_no_connection_lock_or_row() {
    nothing_left::<Pg>(
        "postgres_leaves_no_connection_lock_or_row",
        // Every connection a target opens is named `racepool/…`; others come and go.
        "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'racepool/%'",
    );
}

#[test]
fn mariadb_leaves_no_connection_lock_or_row() {
    nothing_left::<My>(
        "mariadb_leaves_no_connection_lock_or_row",
        "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS \
         WHERE VARIABLE_NAME = 'THREADS_CONNECTED'",
    );
}
