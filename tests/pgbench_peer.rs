//! The pgbench peer against the real PostgreSQL: it runs the target's own statements, its
//! figures are read from its output and logs, and its run is exact and removed.

mod common;

use std::sync::Barrier;
use std::time::Instant;

use common::services::{self, Service};
use racepool::peer::pgbench;
use racepool::strategy::StrategyKind;
use racepool::target::postgres::Postgres;
use racepool::target::sql::Isolation;
use racepool::target::{RunShape, Session, Target};

fn target(test: &str) -> Option<Postgres> {
    let url = services::url(Service::Postgres, test)?;
    if let Err(e) = pgbench::binary() {
        eprintln!("\n!!!!!!!! SKIPPED {test}: {e} !!!!!!!!\n");
        return None;
    }
    Some(Postgres::new(&url, Isolation::ReadCommitted))
}

#[test]
fn pgbench_runs_the_targets_statements_exactly() {
    let Some(t) = target("pgbench_runs_the_targets_statements_exactly") else {
        return;
    };
    for strategy in [StrategyKind::Atomic, StrategyKind::Lock] {
        // `run` itself fails unless the row ends at clients × transactions.
        let f = pgbench::run(&t, strategy, 4, 50).expect("pgbench");
        assert_eq!((f.clients, f.transactions), (4, 200));
        assert!(f.tps > 0.0);
        assert!(0 < f.p50_us && f.p50_us <= f.p99_us, "{f:?}");
    }
    // Its run is gone: the count of runs it could have left is what clean finds now.
    assert!(matches!(
        pgbench::run(&t, StrategyKind::Racy, 1, 1),
        Err(pgbench::PeerError::NoScript(StrategyKind::Racy))
    ));
}

/// racepool's sessions, one thread each, released together: updates per second.
fn racepool_rate(t: &Postgres, strategy: StrategyKind, clients: usize, each: u64) -> f64 {
    let shape = RunShape {
        run: racepool::store::RunStore::new_run_id(),
        slots: 1,
        workers: clients,
        initial: 0,
        race_window: 0,
    };
    t.create(&shape).unwrap();
    let barrier = Barrier::new(clients + 1);
    let secs = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|w| {
                let (t, shape, barrier) = (t, &shape, &barrier);
                scope.spawn(move || {
                    let mut s = t.connect(shape, w, strategy).unwrap();
                    barrier.wait();
                    for _ in 0..each {
                        s.update(0, None).unwrap();
                    }
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        for h in handles {
            h.join().unwrap();
        }
        start.elapsed().as_secs_f64()
    });
    assert_eq!(t.finals(&shape).unwrap()[0] as u64, clients as u64 * each);
    t.clean(Some(shape.run)).unwrap();
    (clients as u64 * each) as f64 / secs
}

/// The figures for the note: `cargo test --release --test pgbench_peer -- --ignored
/// --nocapture`. A few seconds per point; not part of the suite.
#[test]
#[ignore]
fn pgbench_side_by_side() {
    let Some(t) = target("pgbench_side_by_side") else {
        return;
    };
    for strategy in [StrategyKind::Atomic, StrategyKind::Lock] {
        for clients in [1usize, 8, 50] {
            let each = (10_000 / clients as u64).max(100);
            let f = pgbench::run(&t, strategy, clients, each).expect("pgbench");
            let ours = racepool_rate(&t, strategy, clients, each);
            eprintln!(
                "{:<6} {clients:>2} clients: pgbench {:>7.0} tps (p50 {} µs, p99 {} µs), \
                 racepool {ours:>7.0} updates/s, ratio {:.2}",
                strategy.name(),
                f.tps,
                f.p50_us,
                f.p99_us,
                ours / f.tps
            );
        }
    }
}
