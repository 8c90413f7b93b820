//! The event log read back: its frames sorted into runs (see `loaded` for the contract).
//!
//! A record belongs to the run whose header it follows, up to that run's end. Records that
//! follow no header (it was cut, damaged or never written) are orphans, kept apart: they are
//! never given to the run before them, whose end they are not. A run whose end never comes is
//! kept with `end: None`. Damaged records are skipped from the next intact one on.

use std::io::{Read, Seek};
use std::path::Path;

use super::event::Record;
use super::frame::{self, Frame};
use super::loaded::{
    Closure, Damage, Defect, LoadError, Loaded, Missing, Orphans, Place, RunHistory, Tail, Writer,
};

/// Bytes read at a time: the log is streamed, never held whole (a fresh buffer the size of
/// the file cost more in page faults than the parse itself).
const CHUNK: usize = 4 << 20;
/// The smallest framed event: frame, tag and seven one-byte fields and the 8-byte hash.
const MIN_EVENT_FRAME: u64 = (frame::HEADER + 1 + 7 + 8 + frame::TRAILER) as u64;

/// Reads an event log. Errors are for files that cannot be read or are not logs at all;
/// damage is part of what it returns.
pub fn load(path: &Path) -> Result<Loaded, LoadError> {
    load_in_chunks(path, CHUNK)
}

fn load_in_chunks(path: &Path, chunk: usize) -> Result<Loaded, LoadError> {
    let fail = |e: std::io::Error| LoadError::Io {
        path: path.display().to_string(),
        error: e.to_string(),
    };
    let mut file = std::fs::File::open(path).map_err(fail)?;
    let size = file.metadata().map_err(fail)?.len();
    let mut head = Vec::with_capacity(4);
    (&mut file)
        .take(SNIFF)
        .read_to_end(&mut head)
        .map_err(fail)?;
    file.seek(std::io::SeekFrom::Start(0)).map_err(fail)?;
    let mut parser = first_bytes(path, &head, size)?;
    let mut buf = vec![0u8; chunk.min(size as usize + 1).max(frame::HEADER)];
    // `buf[..filled]` holds the file from byte `base`: whole records, then a partial one.
    let (mut base, mut filled) = (0u64, 0usize);
    loop {
        if filled == buf.len() {
            // One record longer than the buffer (a run end of many slots).
            buf.resize(buf.len() * 2, 0);
        }
        let n = match file.read(&mut buf[filled..]) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => other.map_err(fail)?,
        };
        filled += n;
        let eof = n == 0;
        if !eof && filled < buf.len() {
            continue;
        }
        match frame::scan(&buf[..filled], |f| parser.frame(f, base)) {
            // The end of the buffer is not the end of the file: keep the partial record.
            Ok(Tail::Torn { offset, .. }) if !eof => {
                buf.copy_within(offset as usize..filled, 0);
                filled -= offset as usize;
                base += offset;
            }
            Ok(Tail::Clean) if !eof => {
                base += filled as u64;
                filled = 0;
            }
            Ok(tail) => return Ok(parser.finish(shift(tail, base))),
            Err(at) => {
                // Damage is rare (a killed worker's torn write, or real corruption): read the
                // rest whole and walk it resynchronising after each damaged record.
                let from = at as usize;
                buf.truncate(filled);
                file.read_to_end(&mut buf).map_err(fail)?;
                let base = base + from as u64;
                let tail = frame::scan_resync(&buf[from..], |r| parser.record(r, base));
                return Ok(parser.finish(shift(tail, base)));
            }
        }
    }
}

/// How much of a file's start is searched for an intact record when its first bytes are not a
/// record's: a damaged first record is followed by an intact one well within this.
const SNIFF: u64 = 1 << 20;

/// Refuses a file that is not a log, from its first `SNIFF` bytes: a log starts with a
/// record's magic, or (its first record damaged) holds an intact record. Else a parser for it.
fn first_bytes(path: &Path, start: &[u8], size: u64) -> Result<Parser, LoadError> {
    let path = path.display().to_string();
    let head = &start[..start.len().min(4)];
    // The version the file says: its first record's, or its first intact record's.
    let said = match frame::next_intact(start, 0) {
        Some(at) => &start[at..at + 4],
        None => head,
    };
    if !frame::starts_a_log(said) {
        let why = if size == 0 {
            "the file is empty".into()
        } else {
            format!(
                "it starts with \"{}\", not a record's magic \"{}\", and holds no record",
                head.escape_ascii(),
                frame::MAGIC.to_le_bytes().escape_ascii()
            )
        };
        return Err(LoadError::NotARecord { path, why });
    }
    if said == frame::MAGIC_V1.to_le_bytes() {
        return Err(LoadError::Version {
            path,
            why: Defect::Version1.to_string(),
        });
    }
    Ok(Parser::new(said, size))
}

fn shift(tail: Tail, base: u64) -> Tail {
    match tail {
        Tail::Clean => Tail::Clean,
        Tail::Torn { offset, bytes } => Tail::Torn {
            offset: offset + base,
            bytes,
        },
    }
}

/// Parses the bytes of an event log (whatever they hold: the caller knows it is a log).
pub fn parse(bytes: &[u8]) -> Loaded {
    let mut parser = Parser::new(&bytes[..bytes.len().min(4)], bytes.len() as u64);
    let tail = frame::scan_resync(bytes, |r| parser.record(r, 0));
    parser.finish(tail)
}

/// What the records read so far are part of.
#[derive(Clone, Copy)]
enum Open {
    /// Nothing: the start of the file, or after a run's end.
    Nothing,
    /// The last run of `runs`, whose end has not come.
    Run,
    /// The last group of `orphans`: records whose header is missing.
    Orphans,
}

/// Sorts a log's records into runs.
struct Parser {
    runs: Vec<RunHistory>,
    orphans: Vec<Orphans>,
    damaged: Vec<Damage>,
    open: Open,
    closure: Option<(u64, Place)>,
    /// Whether any record is of version 3 (which writes a closing record).
    closes: bool,
    /// The byte after the last intact record.
    read_to: u64,
    records: u64,
    /// The file's size: bounds how many events a run header may make room for.
    size: u64,
}

impl Parser {
    /// A parser for a file of `size` bytes that starts with `head` (up to 4 bytes).
    fn new(head: &[u8], size: u64) -> Parser {
        // A file whose first record is torn still says its version, if it started to.
        let v3 = frame::MAGIC.to_le_bytes();
        Parser {
            runs: Vec::new(),
            orphans: Vec::new(),
            damaged: Vec::new(),
            open: Open::Nothing,
            closure: None,
            closes: !head.is_empty() && head == &v3[..head.len()],
            read_to: 0,
            records: 0,
            size,
        }
    }

    fn record(&mut self, record: Result<Frame<'_>, Damage>, base: u64) {
        match record {
            Ok(f) => self.frame(f, base),
            Err(mut d) => {
                if let Place::Bytes { offset, .. } = &mut d.at {
                    *offset += base;
                }
                self.damage(d);
            }
        }
    }

    fn damage(&mut self, d: Damage) {
        match (self.open, self.runs.last_mut()) {
            (Open::Run, Some(r)) => r.damaged.push(d),
            _ => self.damaged.push(d),
        }
    }

    /// The open run, if a run is open.
    #[inline]
    fn run(&mut self) -> Option<&mut RunHistory> {
        match self.open {
            Open::Run => self.runs.last_mut(),
            _ => None,
        }
    }

    /// The group of orphans records outside any run join, opened at `at` if none is.
    fn orphans(&mut self, at: u64, len: u64) -> &mut Orphans {
        if !matches!(self.open, Open::Orphans) {
            self.leave_run(at);
            self.open = Open::Orphans;
            self.orphans.push(Orphans {
                at: Some(Place::Bytes { offset: at, len }),
                ..Orphans::default()
            });
        }
        self.orphans.last_mut().expect("just opened")
    }

    /// Ends the open run's span at byte `to` (its end record's end, or where the first record
    /// not its starts) and closes it.
    fn leave_run(&mut self, to: u64) {
        if let Some(Place::Bytes { offset, len }) = self.run().and_then(|r| r.span.as_mut()) {
            *len = to - *offset;
        }
        self.open = Open::Nothing;
    }

    /// One complete record, `base` bytes into the file.
    #[inline]
    fn frame(&mut self, f: Frame<'_>, base: u64) {
        let at = base + f.offset;
        self.closes |= f.version >= 3;
        // An event belongs to the run whose header it follows (an event stores no run id; the
        // hash chain, which includes the run id, catches a misattributed one).
        let run_id = self.run().map_or(0, |r| r.info.run);
        let record = match frame::decode(&f, run_id) {
            Ok(r) => r,
            Err(defect) => {
                let writer = if f.writer == frame::PARENT {
                    Writer::Parent
                } else {
                    Writer::Worker {
                        worker: f.writer,
                        seq: f.seq,
                    }
                };
                let at = Place::Bytes {
                    offset: at,
                    len: f.len,
                };
                return self.damage(Damage { at, defect, writer });
            }
        };
        self.records += 1;
        self.read_to = at + f.len;
        match record {
            Record::Event(e) => match self.run() {
                Some(r) => r.events.push(e),
                None => self.orphans(at, f.len).events += 1,
            },
            Record::Transfer(t) => match self.run() {
                Some(r) => r.transfers.push(t),
                None => self.orphans(at, f.len).transfers += 1,
            },
            Record::Reads(reads) => match self.run() {
                Some(r) => r.reads.push(reads),
                None => self.orphans(at, f.len).reads += 1,
            },
            Record::Run(info) => {
                self.leave_run(at);
                let left = self.size.saturating_sub(at) / MIN_EVENT_FRAME;
                let expected = (info.workers as u64).saturating_mul(info.ops).min(left);
                let mut run = RunHistory::new(info);
                run.events.reserve(expected as usize);
                run.span = Some(Place::Bytes { offset: at, len: 0 });
                self.runs.push(run);
                self.open = Open::Run;
            }
            Record::End(end) => match self.run() {
                Some(r) if r.info.run == end.run => {
                    r.end = Some(end);
                    self.leave_run(at + f.len);
                }
                // Another run's end: the open run's never came, and this one's header is lost.
                _ => {
                    let o = self.orphans(at, f.len);
                    o.ends += 1;
                    o.run = Some(end.run);
                    self.open = Open::Nothing;
                }
            },
            Record::Close(c) => {
                self.leave_run(at);
                self.closure = Some((
                    c.runs,
                    Place::Bytes {
                        offset: at,
                        len: f.len,
                    },
                ));
                self.open = Open::Nothing;
            }
        }
    }

    fn finish(mut self, tail: Tail) -> Loaded {
        self.leave_run(self.read_to);
        for r in self.runs.iter_mut().filter(|r| r.end.is_none()) {
            r.missing = vec![Missing::End];
        }
        let closure = match self.closure {
            Some((runs, at)) => Closure::Closed { runs, at },
            None if self.closes => Closure::Open,
            None => Closure::Unrecorded,
        };
        Loaded {
            runs: self.runs,
            orphans: self.orphans,
            damaged: self.damaged,
            tail,
            read_to: Some(self.read_to),
            size: Some(self.size),
            closure,
            records: self.records,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::history::event::{fingerprint, link_hash};
    use crate::history::{Close, Event, RunEnd, RunInfo};

    /// A two-worker run `run` of `n` events each on one slot, and its end.
    pub(crate) fn run_records(run: u64, n: u32, out: &mut Vec<u8>) {
        let info = RunInfo {
            run,
            strategy: "atomic".into(),
            workers: 2,
            slots: 1,
            ops: n as u64,
            initial: 0,
            seed: 1,
            persist: "events".into(),
        };
        frame::encode(0, &Record::Run(info), out);
        for v in 0..2 * n {
            let e = Event {
                run,
                worker: v % 2,
                seq: (v / 2) as u64,
                slot: 0,
                read: v,
                written: v + 1,
                retries: 0,
                invoke_ns: 1000 + 10 * v as u64,
                complete_ns: 1005 + 10 * v as u64,
                hash: link_hash(run, 0, v, v + 1),
            };
            frame::encode(e.seq, &Record::Event(e), out);
        }
        let finals = vec![2 * n];
        let end = RunEnd {
            run,
            fingerprint: fingerprint(&finals),
            finals,
            completed: vec![n as u64; 2],
            killed: vec![],
        };
        frame::encode(0, &Record::End(end), out);
    }

    /// A closed log of one run of `n` events per worker.
    pub(crate) fn log(n: u32) -> Vec<u8> {
        let mut out = Vec::new();
        run_records(5, n, &mut out);
        frame::encode(0, &Record::Close(Close { runs: 1 }), &mut out);
        out
    }

    pub(crate) fn starts(bytes: &[u8]) -> Vec<u64> {
        let mut s = Vec::new();
        frame::scan(bytes, |f| s.push(f.offset)).expect("a clean log");
        s
    }

    fn load_via_file(test: &str, bytes: &[u8], chunk: usize) -> Loaded {
        let path = std::env::temp_dir().join(format!(
            "racepool-log-unit-{}-{test}-{chunk}",
            std::process::id(),
        ));
        std::fs::write(&path, bytes).unwrap();
        let loaded = load_in_chunks(&path, chunk);
        std::fs::remove_file(&path).unwrap();
        loaded.unwrap()
    }

    #[test]
    fn streaming_in_small_chunks_reads_what_one_slice_reads() {
        let bytes = log(50);
        let whole = parse(&bytes);
        assert!(whole.runs[0].end.is_some());
        assert!(matches!(whole.closure, Closure::Closed { runs: 1, .. }));
        // Chunks smaller than a record, than a header, and not dividing the file.
        for chunk in [7, 20, 33, 64, 4096] {
            let l = load_via_file("whole", &bytes, chunk);
            assert_eq!(l.records, whole.records, "chunk {chunk}");
            assert_eq!(l.runs[0].events, whole.runs[0].events, "chunk {chunk}");
            assert_eq!(l.runs[0].end, whole.runs[0].end, "chunk {chunk}");
            assert_eq!(l.runs[0].span, whole.runs[0].span, "chunk {chunk}");
            assert_eq!(l.closure, whole.closure, "chunk {chunk}");
            assert_eq!(l.tail, Tail::Clean, "chunk {chunk}");
            assert_eq!(l.read_to, Some(bytes.len() as u64), "chunk {chunk}");
        }
    }

    #[test]
    fn streamed_offsets_are_file_offsets() {
        let bytes = log(50);
        let starts = starts(&bytes);
        let last = *starts.last().unwrap();
        let mid = starts[starts.len() / 2];
        let mut flipped = bytes.clone();
        flipped[mid as usize + frame::HEADER] ^= 1;
        for chunk in [7, 64, 1000] {
            let torn = load_via_file("torn", &bytes[..bytes.len() - 3], chunk);
            let bytes_left = bytes.len() as u64 - 3 - last;
            assert_eq!(
                torn.tail,
                Tail::Torn {
                    offset: last,
                    bytes: bytes_left
                },
                "chunk {chunk}"
            );
            assert_eq!(torn.read_to, Some(last), "chunk {chunk}");
            let bad = load_via_file("flipped", &flipped, chunk);
            // A damaged record mid-run is skipped and kept in its run.
            assert_eq!(
                bad.runs[0].damaged[0].at.offset(),
                Some(mid),
                "chunk {chunk}"
            );
            assert_eq!(bad.runs[0].events.len(), 99, "chunk {chunk}");
        }
    }

    #[test]
    fn records_after_a_lost_header_are_orphans_and_the_runs_after_them_are_read() {
        let mut bytes = Vec::new();
        run_records(5, 2, &mut bytes);
        let second = bytes.len();
        run_records(6, 3, &mut bytes);
        let third = bytes.len();
        run_records(7, 2, &mut bytes);
        let s = starts(&bytes);
        // Run 6's header is torn inside its header: what follows names no run.
        let mut torn = bytes[..second + 9].to_vec();
        torn.extend_from_slice(
            &bytes[s[s.iter().position(|&x| x == second as u64).unwrap() + 1] as usize..],
        );
        let l = parse(&torn);
        let ids: Vec<u64> = l.runs.iter().map(|r| r.info.run).collect();
        assert_eq!(ids, vec![5, 7], "run 7 is not lost behind the damage");
        assert_eq!(l.orphans.len(), 1);
        let o = &l.orphans[0];
        assert_eq!((o.events, o.ends, o.run), (6, 1, Some(6)));
        assert!(l.damaged[0].at.offset() == Some(second as u64));
        assert!(l.runs.iter().all(|r| r.end.is_some()));
        // Cut inside run 6: run 6 has no end, and the log no closing record.
        let l = parse(&bytes[..third - 10]);
        assert_eq!(l.runs[1].end, None);
        assert_eq!(l.runs[1].missing, vec![Missing::End]);
        assert_eq!(l.closure, Closure::Open);
        assert!(matches!(l.tail, Tail::Torn { .. }));
    }

    #[test]
    fn an_end_of_another_run_leaves_the_open_run_without_its_end() {
        let mut a = Vec::new();
        run_records(5, 2, &mut a);
        let mut b = Vec::new();
        run_records(6, 2, &mut b);
        // Run 5 without its end, then run 6 without its header: run 6's events cannot be told
        // from run 5's (an event names no run; its hash link does, which verify checks), but
        // run 6's end is not taken for run 5's.
        let (sa, sb) = (starts(&a), starts(&b));
        let mut bytes = a[..*sa.last().unwrap() as usize].to_vec();
        bytes.extend_from_slice(&b[sb[1] as usize..]);
        let l = parse(&bytes);
        assert_eq!(l.runs.len(), 1);
        assert_eq!(l.runs[0].end, None);
        assert_eq!(l.runs[0].events.len(), 8);
        assert_eq!((l.orphans[0].run, l.orphans[0].ends), (Some(6), 1));
    }

    #[test]
    fn a_version_2_log_cannot_say_whether_it_was_closed() {
        let mut v3 = Vec::new();
        run_records(5, 2, &mut v3);
        let bytes = frame::tests::with_magic(&v3, frame::MAGIC_V2);
        let l = parse(&bytes);
        assert_eq!(l.closure, Closure::Unrecorded);
        assert!(l.runs[0].end.is_some());
        // The same run in version 3 without its closing record was not finished.
        assert_eq!(parse(&v3).closure, Closure::Open);
    }

    #[test]
    fn what_is_not_a_log_is_refused_before_anything_is_read() {
        for (name, bytes) in [
            ("empty", &b""[..]),
            ("text", b"root:x:0:0:root:/root:/bin/bash\n"),
            ("zeros", &[0u8; 64]),
        ] {
            let path = std::env::temp_dir().join(format!(
                "racepool-log-unit-{}-not-{name}",
                std::process::id()
            ));
            std::fs::write(&path, bytes).unwrap();
            let got = load(&path);
            std::fs::remove_file(&path).unwrap();
            assert!(
                matches!(got, Err(LoadError::NotARecord { .. })),
                "{name}: {got:?}"
            );
        }
    }
}
