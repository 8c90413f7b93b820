//! Every history under tests/fixtures/ gets the verdict it names: built into an event log and
//! checked by `torture verify`, the binary a user runs.

mod common;

use common::{run, TempPath};
use racepool::history::event::{fingerprint, link_hash};
use racepool::history::frame;
use racepool::history::{Event, Killed, Record, RunEnd, RunInfo};
use serde::Deserialize;

/// A fixture: a run's header, its events as
/// `[worker, seq, slot, read, written, invoke_ns, complete_ns]`, the region's final values, and
/// what to break.
#[derive(Deserialize)]
struct Fixture {
    expect: String,
    message: String,
    run: RunInfo,
    events: Vec<[u64; 7]>,
    finals: Vec<u32>,
    /// Acknowledged updates per worker; default: the events each worker has.
    completed: Option<Vec<u64>>,
    /// A fingerprint to save instead of the finals' own.
    fingerprint: Option<u64>,
    /// Index of an event whose hash is saved wrong.
    bad_hash: Option<usize>,
    /// Index of a record (0 is the run header) to flip one payload bit of.
    flip_record: Option<usize>,
    /// Bytes to cut from the end of the file.
    truncate: Option<usize>,
    /// Workers that died, as `[worker, in flight (0 or 1)]`.
    killed: Option<Vec<[u64; 2]>>,
    /// Index of an event whose record is cut short mid-file (header and 3 payload bytes kept,
    /// the records after it intact): what a worker killed inside its `write(2)` leaves.
    tear: Option<usize>,
}

fn build(f: &Fixture) -> Vec<u8> {
    let run = f.run.run;
    let mut out = Vec::new();
    let mut starts = vec![0];
    frame::encode(0, &Record::Run(f.run.clone()), &mut out);
    let mut completed = vec![0u64; f.run.workers as usize];
    for (i, &[worker, seq, slot, read, written, invoke, complete]) in f.events.iter().enumerate() {
        starts.push(out.len());
        let (slot, read, written) = (slot as u32, read as u32, written as u32);
        let mut hash = link_hash(run, slot, read, written);
        if f.bad_hash == Some(i) {
            hash ^= 1;
        }
        let e = Event {
            run,
            worker: worker as u32,
            seq,
            slot,
            read,
            written,
            retries: 0,
            invoke_ns: invoke,
            complete_ns: complete,
            hash,
        };
        completed[worker as usize] += 1;
        frame::encode(seq, &Record::Event(e), &mut out);
    }
    starts.push(out.len());
    frame::encode(
        0,
        &Record::End(RunEnd {
            run,
            fingerprint: f.fingerprint.unwrap_or_else(|| fingerprint(&f.finals)),
            finals: f.finals.clone(),
            completed: f.completed.clone().unwrap_or(completed),
            killed: f
                .killed
                .iter()
                .flatten()
                .map(|&[worker, in_flight]| Killed {
                    worker: worker as u32,
                    in_flight: in_flight == 1,
                })
                .collect(),
        }),
        &mut out,
    );
    if let Some(i) = f.tear {
        // Event i is record i + 1; the record after it starts at starts[i + 2].
        let (cut, next) = (starts[i + 1] + frame::HEADER + 3, starts[i + 2]);
        out.drain(cut..next);
    }
    if let Some(r) = f.flip_record {
        out[starts[r] + frame::HEADER] ^= 0x10;
    }
    if let Some(n) = f.truncate {
        out.truncate(out.len() - n);
    }
    out
}

#[test]
fn every_fixture_gets_its_verdict() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    names.sort();
    assert!(names.len() >= 10, "fixtures missing: {names:?}");
    let (mut passes, mut fails) = (0, 0);
    for path in names {
        let f: Fixture = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let log = TempPath::new(&format!(
            "fixture-{}.log",
            path.file_stem().unwrap().to_string_lossy()
        ));
        std::fs::write(log.path(), build(&f)).unwrap();
        let (code, text, _) = run(&["verify", log.path().to_str().unwrap()]);
        let want = if f.expect == "pass" { 0 } else { 1 };
        assert_eq!(code, want, "{}: exit {code}\n{text}", path.display());
        assert!(
            text.contains(&f.message),
            "{}: expected {:?} in\n{text}",
            path.display(),
            f.message
        );
        if want == 0 {
            passes += 1;
        } else {
            fails += 1;
        }
    }
    assert!(
        passes >= 3 && fails >= 7,
        "{passes} passing, {fails} failing"
    );
}
