//! The stale-cache incident on a real Redis: the two-step writer tears a read that lands
//! between its set and its invalidation (scripted, every time); MULTI/EXEC, a Lua script and
//! WATCH readers never tear; the record read back from the stream counts the same torn reads.

#[path = "common/redis.rs"]
mod harness;

use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Barrier;

use harness::{fresh_run, redis, Cleanup};
use racepool::clock::now_ns;
use racepool::fault::Point;
use racepool::history::event::fingerprint;
use racepool::history::{Reads, RunEnd, RunInfo, Seen};
use racepool::target::redis::cache::{CacheFix, CacheSession};
use racepool::target::redis::{stream, RedisOptions, RedisTarget};
use racepool::target::{EventDraft, RunShape, Target};
use racepool::verify::{verify, Verification};

const INITIAL: u32 = 10;
const RELATED: usize = 3;

/// A cache run's slots (the value and its related entries) and header.
fn cache_run(t: &RedisTarget, fix: CacheFix, workers: usize, ops: u64) -> RunShape {
    let sh = RunShape {
        run: fresh_run(),
        slots: RELATED + 1,
        workers,
        initial: INITIAL,
        race_window: 0,
    };
    t.create(&sh).unwrap();
    t.begin(&RunInfo {
        run: sh.run,
        strategy: format!("cache {}", fix.name()),
        workers: workers as u32,
        slots: sh.slots as u32,
        ops,
        initial: INITIAL,
        seed: 0,
        persist: "target".into(),
    })
    .unwrap();
    sh
}

/// A writer: `ops` writes of fresh tickets, each with its event. Returns writes made.
fn writer(s: &mut CacheSession, w: usize, ops: u64, at: &mut dyn FnMut(Point)) -> u64 {
    for seq in 0..ops {
        let v = s.ticket().unwrap();
        let e = EventDraft {
            worker: w as u32,
            seq,
            invoke_ns: now_ns(),
        };
        s.write_at(v, Some(e), at).unwrap();
    }
    ops
}

/// A reader: `ops` reads, recorded in one batch. Returns what it saw and its retries.
fn reader(s: &mut CacheSession, w: usize, ops: u64, at: &mut dyn FnMut(Point)) -> (Vec<Seen>, u64) {
    let mut seen = Vec::new();
    let mut retries = 0;
    for _ in 0..ops {
        let r = s.read_at(at).unwrap();
        retries += r.retries as u64;
        seen.push(r.seen);
    }
    s.record_reads(&Reads {
        worker: w as u32,
        first: 0,
        seen: seen.clone(),
    })
    .unwrap();
    (seen, retries)
}

/// Ends the run and verifies its record.
fn finish(t: &RedisTarget, sh: &RunShape, completed: Vec<u64>) -> (Vec<u32>, Verification) {
    let finals = t.finals(sh).unwrap();
    t.end(&RunEnd {
        run: sh.run,
        fingerprint: fingerprint(&finals),
        finals: finals.clone(),
        completed,
        killed: Vec::new(),
    })
    .unwrap();
    (
        finals,
        verify(&stream::into_loaded(t.load(Some(sh.run)).unwrap())),
    )
}

#[test]
fn two_step_tears_the_read_that_lands_between_set_and_invalidation() {
    let Some(r) = redis("two_step_tears_the_read_that_lands_between_set_and_invalidation") else {
        return;
    };
    let t = RedisTarget::open(r.url(), RedisOptions::default()).unwrap();
    let sh = cache_run(&t, CacheFix::TwoStep, 2, 1);
    let _clean = Cleanup(&t, sh.run);
    let (value_set, read_done) = (Barrier::new(2), Barrier::new(2));
    let (writes, (seen, _)) = std::thread::scope(|s| {
        let w = s.spawn(|| {
            let mut session = t.connect_cache(&sh, 0, CacheFix::TwoStep).unwrap();
            writer(&mut session, 0, 1, &mut |p| {
                if p == Point::AfterWrite {
                    // The value is set; the related entries are not yet rewritten.
                    value_set.wait();
                    read_done.wait();
                }
            })
        });
        let r = s.spawn(|| {
            let mut session = t.connect_cache(&sh, 1, CacheFix::TwoStep).unwrap();
            value_set.wait();
            let out = reader(&mut session, 1, 1, &mut |_| {});
            read_done.wait();
            out
        });
        (w.join().unwrap(), r.join().unwrap())
    });
    let new = INITIAL + 1;
    assert_eq!(
        seen,
        vec![Seen {
            value: new,
            lo: INITIAL,
            hi: INITIAL
        }],
        "the new value beside stale related entries"
    );
    let (finals, v) = finish(&t, &sh, vec![writes, 1]);
    assert_eq!(
        finals,
        vec![new; RELATED + 1],
        "the invalidation did land, later"
    );
    assert!(!v.verified);
    let run = &v.runs[0];
    assert_eq!((run.reads, run.torn_reads), (1, 1));
    let torn = &run.torn_list[0];
    assert_eq!((torn.worker, torn.value, torn.lo), (1, new, INITIAL));
    assert_eq!(
        torn.value_by,
        Some(0),
        "the writer of the new value is named"
    );
}

/// One writer and three readers, all at once, many times: a fix never tears, and its record
/// verifies.
fn never_tears(test: &str, fix: CacheFix) {
    let Some(r) = redis(test) else {
        return;
    };
    let t = RedisTarget::open(r.url(), RedisOptions::default()).unwrap();
    for _ in 0..3 {
        let (workers, ops) = (4, 150);
        let sh = cache_run(&t, fix, workers, ops);
        let _clean = Cleanup(&t, sh.run);
        let start = Barrier::new(workers);
        let results: Vec<(u64, Vec<Seen>)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..workers)
                .map(|w| {
                    let (t, sh, start) = (&t, &sh, &start);
                    s.spawn(move || {
                        let mut session = t.connect_cache(sh, w, fix).unwrap();
                        start.wait();
                        if w == 0 {
                            (writer(&mut session, w, ops, &mut |_| {}), Vec::new())
                        } else {
                            let (seen, _) = reader(&mut session, w, ops, &mut |_| {});
                            (seen.len() as u64, seen)
                        }
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let torn: Vec<&Seen> = results
            .iter()
            .flat_map(|(_, seen)| seen)
            .filter(|s| s.torn())
            .collect();
        assert!(torn.is_empty(), "{}: {torn:?}", fix.name());
        let (finals, v) = finish(&t, &sh, results.iter().map(|r| r.0).collect());
        assert_eq!(finals, vec![INITIAL + ops as u32; RELATED + 1]);
        assert!(v.verified, "{}: {:?}", fix.name(), v.runs[0].problems);
        assert_eq!(v.runs[0].reads, 3 * ops);
    }
}

#[test]
fn multi_exec_never_tears() {
    never_tears("multi_exec_never_tears", CacheFix::Multi);
}

#[test]
fn a_lua_writer_and_one_mget_never_tear() {
    never_tears("a_lua_writer_and_one_mget_never_tear", CacheFix::Script);
}

#[test]
fn watch_readers_never_tear() {
    never_tears("watch_readers_never_tear", CacheFix::Watch);
}

#[test]
fn a_watch_reader_starts_over_when_a_write_lands_under_it() {
    let Some(r) = redis("a_watch_reader_starts_over_when_a_write_lands_under_it") else {
        return;
    };
    let t = RedisTarget::open(r.url(), RedisOptions::default()).unwrap();
    let sh = cache_run(&t, CacheFix::Watch, 2, 1);
    let _clean = Cleanup(&t, sh.run);
    let (value_read, written) = (Barrier::new(2), Barrier::new(2));
    let once = AtomicBool::new(false);
    let (writes, (seen, retries)) = std::thread::scope(|s| {
        let w = s.spawn(|| {
            let mut session = t.connect_cache(&sh, 0, CacheFix::Watch).unwrap();
            value_read.wait();
            let n = writer(&mut session, 0, 1, &mut |_| {});
            written.wait();
            n
        });
        let r = s.spawn(|| {
            let mut session = t.connect_cache(&sh, 1, CacheFix::Watch).unwrap();
            reader(&mut session, 1, 1, &mut |p| {
                // Between the value and the related entries, the first time only.
                if p == Point::AfterRead && !once.swap(true, SeqCst) {
                    value_read.wait();
                    written.wait();
                }
            })
        });
        (w.join().unwrap(), r.join().unwrap())
    });
    assert_eq!(retries, 1, "EXEC answered nil once");
    let new = INITIAL + 1;
    assert_eq!(
        seen,
        vec![Seen {
            value: new,
            lo: new,
            hi: new
        }]
    );
    let (_, v) = finish(&t, &sh, vec![writes, 1]);
    assert!(v.verified, "{:?}", v.runs[0].problems);
}
