//! Every history under tests/fixtures/ gets the verdict it names: built into an event log and
//! checked by `torture verify`, the binary a user runs; in the current format (version 3,
//! closed by its closing record) and in version 2 (no closing record), which verify still
//! reads.

mod common;

use common::{run, TempPath};
use racepool::history::event::{fingerprint, link_hash};
use racepool::history::frame;
use racepool::history::{Close, Event, Killed, Record, RunEnd, RunInfo};
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
    /// Leave the run's end record out.
    #[serde(default)]
    drop_end: bool,
    /// Whether the log ends with its closing record (version 3 only; default: yes, unless
    /// it is cut with `truncate`).
    closed: Option<bool>,
}

/// `bytes` with every record's magic replaced by version 2's (both checksums redone).
fn as_version_2(bytes: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let mut starts = Vec::new();
    frame::scan(bytes, |f| starts.push(f.offset as usize)).expect("a clean log");
    for at in starts {
        let len = u32::from_le_bytes(out[at + 4..at + 8].try_into().unwrap()) as usize;
        out[at..at + 4].copy_from_slice(&frame::MAGIC_V2.to_le_bytes());
        let crc = crc32c::crc32c(&out[at..at + 16]);
        out[at + 16..at + 20].copy_from_slice(&crc.to_le_bytes());
        let end = at + frame::HEADER + len;
        let crc = crc32c::crc32c(&out[at..end]);
        out[end..end + frame::TRAILER].copy_from_slice(&crc.to_le_bytes());
    }
    out
}

/// The fixture's log in format `version` (2 or 3).
fn build(f: &Fixture, version: u8) -> Vec<u8> {
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
    let end = Record::End(RunEnd {
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
    });
    if !f.drop_end {
        frame::encode(0, &end, &mut out);
    }
    let closed = f.closed.unwrap_or(f.truncate.is_none());
    if version == 3 && closed {
        frame::encode(0, &Record::Close(Close { runs: 1 }), &mut out);
    }
    if version == 2 {
        out = as_version_2(&out);
    }
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
        let want = if f.expect == "pass" { 0 } else { 1 };
        // Version 2 keeps no closing record: a fixture about it is version 3's alone.
        let versions: &[u8] = if f.closed == Some(false) {
            &[3]
        } else {
            &[3, 2]
        };
        for &version in versions {
            std::fs::write(log.path(), build(&f, version)).unwrap();
            let (code, text, _) = run(&["verify", log.path().to_str().unwrap()]);
            let name = format!("{} (version {version})", path.display());
            assert_eq!(code, want, "{name}: exit {code}\n{text}");
            assert!(
                text.contains(&f.message),
                "{name}: expected {:?} in\n{text}",
                f.message
            );
            // An incomplete run is never called verified.
            if f.drop_end || f.truncate.is_some() {
                assert!(!text.contains(": verified"), "{name}:\n{text}");
            }
        }
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
