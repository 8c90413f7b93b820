//! The on-disk frame of one record, and the reader.
//!
//! ```text
//! offset  size  field
//!      0     4  magic "RPE3": "RPE" and the format version (3; version 2's "RPE2" is read too)
//!      4     4  payload length, little-endian
//!      8     4  writer, little-endian: the worker's index, or 0xffff_ffff for the parent
//!     12     4  sequence, little-endian: the writer's record number (per writer, from 0)
//!     16     4  CRC32C of bytes 0..16: the header is trusted before its length is used
//!     20     n  payload: one postcard-encoded record (see `WireRef`)
//!   20+n     4  CRC32C of bytes 0..20+n: everything before it
//! ```
//!
//! The header has its own checksum so a flipped bit in the length is caught as corruption
//! instead of passing for a record cut short. The reader then tells the two apart:
//! - a **torn tail**: the file ends inside a record whose header is intact (or inside a
//!   header, or in zero bytes): what a crash during an append leaves.
//! - **damage**: a complete record whose checksum fails, anywhere, reported at its byte offset.
//!
//! postcard does the payload (a maintained serde format, compact varints); only the frame is by
//! hand, because no crate frames records with a checksum for O_APPEND writers.
//!
//! Version 2 (version 1 was magic "RPEV") shrank an event from ~45 payload bytes to ~23: no
//! run id (the run header before it names the run, and the hash chain includes the run id, so
//! an event attributed to the wrong run fails its link), no worker (the header names the
//! writer, so even a torn record says whose it was), the written value and the completion time
//! as deltas, and the hash as 8 fixed bytes instead of a ~10-byte varint.
//!
//! Version 3 adds one record kind, the invocation's closing record (`Close`, tag 5), and
//! changes nothing else: every version 2 record reads the same. A version 3 log without its
//! closing record was not finished; a version 2 log cannot say.
//!
//! [`scan`] stops at the first damaged record. [`scan_resync`] reports it and goes on from the
//! next intact record: a worker killed inside a `write(2)` can leave a torn record mid-file
//! (the kernel stops a write between pages on SIGKILL) with other workers' records after it.

use serde::{Deserialize, Serialize};

use super::event::{Close, Event, Reads, Record, RunEnd, RunInfo, Transfer};
use super::loaded::{Damage, Defect, Place, Tail, Writer};

/// "RPE" and the format version.
pub const MAGIC: u32 = u32::from_le_bytes(*b"RPE3");
/// Version 2's magic: read like version 3 (it has every record kind but `Close`).
pub const MAGIC_V2: u32 = u32::from_le_bytes(*b"RPE2");
/// Version 1's magic: recognised only to say which version a file is.
pub const MAGIC_V1: u32 = u32::from_le_bytes(*b"RPEV");
pub const HEADER: usize = 20;
pub const TRAILER: usize = 4;
/// Larger lengths are corruption: no record comes near (a run end holds 4 bytes per slot and
/// 8 per worker).
pub const MAX_PAYLOAD: usize = 1 << 30;
/// The largest framed event: tag, five u32 and two u64 varints at their widest, the hash.
pub const MAX_EVENT_FRAME: usize = HEADER + 1 + 4 * 5 + 2 * 10 + 8 + TRAILER;
/// The writer field of the parent's records (run headers, ends, the closing record).
pub const PARENT: u32 = u32::MAX;

/// A record as the log stores it (serialised side). The variants' order is the tag.
#[derive(Serialize)]
enum WireRef<'a> {
    Run(&'a RunInfo),
    Event(WireEvent),
    End(&'a RunEnd),
    Transfer(&'a Transfer),
    Reads(&'a Reads),
    Close(&'a Close),
}

/// The same, read back. Must list the variants in `WireRef`'s order.
#[derive(Deserialize)]
enum WireOwned {
    Run(RunInfo),
    Event(WireEvent),
    End(RunEnd),
    Transfer(Transfer),
    Reads(Reads),
    Close(Close),
}

/// An event without its run id, worker and sequence (the run header and the frame carry those).
#[derive(Serialize, Deserialize)]
struct WireEvent {
    slot: u32,
    read: u32,
    /// `written - read`, wrapping: 1 (one byte) for every update that is not corrupt.
    step: u32,
    retries: u32,
    invoke_ns: u64,
    /// `complete_ns - invoke_ns`, wrapping: a few bytes instead of eight.
    took_ns: u64,
    /// Little-endian; fixed width because a hash is as wide as a varint gets.
    hash: [u8; 8],
}

impl WireEvent {
    #[inline]
    fn of(e: &Event) -> WireEvent {
        WireEvent {
            slot: e.slot,
            read: e.read,
            step: e.written.wrapping_sub(e.read),
            retries: e.retries,
            invoke_ns: e.invoke_ns,
            took_ns: e.complete_ns.wrapping_sub(e.invoke_ns),
            hash: e.hash.to_le_bytes(),
        }
    }

    fn event(&self, run: u64, worker: u32, seq: u64) -> Event {
        Event {
            run,
            worker,
            seq,
            slot: self.slot,
            read: self.read,
            written: self.read.wrapping_add(self.step),
            retries: self.retries,
            invoke_ns: self.invoke_ns,
            complete_ns: self.invoke_ns.wrapping_add(self.took_ns),
            hash: u64::from_le_bytes(self.hash),
        }
    }
}

/// Frames `record` with `seq` at the start of `out`, returning the frame's length, or `None`
/// (and `out` in an unspecified state) when it does not fit.
#[inline]
pub fn encode_at(seq: u64, record: &Record, out: &mut [u8]) -> Option<usize> {
    let room = out.len().checked_sub(HEADER + TRAILER)?;
    let (writer, wire) = match record {
        Record::Run(r) => (PARENT, WireRef::Run(r)),
        Record::Event(e) => (e.worker, WireRef::Event(WireEvent::of(e))),
        Record::End(e) => (PARENT, WireRef::End(e)),
        Record::Transfer(t) => (t.worker, WireRef::Transfer(t)),
        Record::Reads(r) => (r.worker, WireRef::Reads(r)),
        Record::Close(c) => (PARENT, WireRef::Close(c)),
    };
    // Config validation keeps workers × ops below 2^32: a writer's records number fewer.
    let seq = u32::try_from(seq).expect("a writer's sequence fits 32 bits");
    let len = postcard::to_slice(&wire, &mut out[HEADER..HEADER + room])
        .ok()?
        .len();
    assert!(len <= MAX_PAYLOAD, "a record of {len} bytes");
    out[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    out[4..8].copy_from_slice(&(len as u32).to_le_bytes());
    out[8..12].copy_from_slice(&writer.to_le_bytes());
    out[12..16].copy_from_slice(&seq.to_le_bytes());
    let header_crc = crc32c::crc32c(&out[..16]);
    out[16..20].copy_from_slice(&header_crc.to_le_bytes());
    // CRC of 0..end continues the header's CRC of 0..16 instead of hashing it again.
    let end = HEADER + len;
    let crc = crc32c::crc32c_append(header_crc, &out[16..end]);
    out[end..end + TRAILER].copy_from_slice(&crc.to_le_bytes());
    Some(end + TRAILER)
}

/// Appends `record` framed with `seq` to `out`.
pub fn encode(seq: u64, record: &Record, out: &mut Vec<u8>) {
    let start = out.len();
    let mut room = MAX_EVENT_FRAME;
    loop {
        out.resize(start + room, 0);
        if let Some(n) = encode_at(seq, record, &mut out[start..]) {
            out.truncate(start + n);
            return;
        }
        room *= 4;
    }
}

/// A complete record as found in the file.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    /// Byte offset of the record's first byte.
    pub offset: u64,
    /// Its length in bytes, frame included.
    pub len: u64,
    /// The format version its magic names (2 or 3).
    pub version: u8,
    /// The worker that wrote it, or `PARENT`.
    pub writer: u32,
    pub seq: u64,
    pub payload: &'a [u8],
}

/// What is at one position of the file.
enum Next<'a> {
    Frame(Frame<'a>),
    End(Tail),
    Bad(Defect, Writer),
}

fn next(bytes: &[u8], pos: usize) -> Next<'_> {
    let rest = &bytes[pos..];
    if rest.is_empty() {
        return Next::End(Tail::Clean);
    }
    let torn = Next::End(Tail::Torn {
        offset: pos as u64,
        bytes: rest.len() as u64,
    });
    if rest.len() < HEADER {
        return torn;
    }
    let word = |at: usize| u32::from_le_bytes(rest[at..at + 4].try_into().expect("4 bytes"));
    let header_crc = crc32c::crc32c(&rest[..16]);
    if header_crc != word(16) {
        // Blocks a crash left allocated but unwritten read as zeros: still a torn tail.
        if rest.iter().all(|&b| b == 0) {
            return torn;
        }
        return Next::Bad(Defect::HeaderChecksum, Writer::Unknown);
    }
    let version = match word(0) {
        MAGIC => 3,
        MAGIC_V2 => 2,
        MAGIC_V1 => return Next::Bad(Defect::Version1, Writer::Unknown),
        other => return Next::Bad(Defect::BadMagic(other), Writer::Unknown),
    };
    let len = word(4) as usize;
    if len > MAX_PAYLOAD {
        return Next::Bad(Defect::ImplausibleLength(len as u32), Writer::Unknown);
    }
    let total = HEADER + len + TRAILER;
    if rest.len() < total {
        return torn;
    }
    let (writer, seq) = (word(8), word(12) as u64);
    let end = HEADER + len;
    let crc = u32::from_le_bytes(rest[end..total].try_into().expect("4 bytes"));
    if crc32c::crc32c_append(header_crc, &rest[16..end]) != crc {
        let who = if writer == PARENT {
            Writer::Parent
        } else {
            Writer::Worker {
                worker: writer,
                seq,
            }
        };
        return Next::Bad(Defect::RecordChecksum, who);
    }
    Next::Frame(Frame {
        offset: pos as u64,
        len: total as u64,
        version,
        writer,
        seq,
        payload: &rest[HEADER..end],
    })
}

/// Walks every frame of `bytes`, calling `each` on the complete, checksummed ones, in order.
/// Stops at the first damaged record: `Err` holds its offset.
pub fn scan<'a>(bytes: &'a [u8], mut each: impl FnMut(Frame<'a>)) -> Result<Tail, u64> {
    let mut pos = 0usize;
    loop {
        match next(bytes, pos) {
            Next::Frame(frame) => {
                pos += frame.len as usize;
                each(frame);
            }
            Next::End(tail) => return Ok(tail),
            Next::Bad(..) => return Err(pos as u64),
        }
    }
}

/// Like `scan`, but a damaged record is handed to `each` as an `Err` and the walk goes on from
/// the next intact record (magic, both checksums); damage with no intact record after it runs
/// to the end of the file.
pub fn scan_resync<'a>(bytes: &'a [u8], mut each: impl FnMut(Result<Frame<'a>, Damage>)) -> Tail {
    let mut pos = 0usize;
    loop {
        match next(bytes, pos) {
            Next::Frame(frame) => {
                pos += frame.len as usize;
                each(Ok(frame));
            }
            Next::End(tail) => return tail,
            Next::Bad(defect, writer) => {
                let resume = next_intact(bytes, pos + 1).unwrap_or(bytes.len());
                each(Err(Damage {
                    at: Place::Bytes {
                        offset: pos as u64,
                        len: (resume - pos) as u64,
                    },
                    defect,
                    writer,
                }));
                pos = resume;
            }
        }
    }
}

/// The offset of the first intact record (magic, both checksums) at or after `from`.
pub fn next_intact(bytes: &[u8], from: usize) -> Option<usize> {
    (from..bytes.len().saturating_sub(HEADER - 1))
        .filter(|&at| is_magic(&bytes[at..at + 4]))
        .find(|&at| matches!(next(bytes, at), Next::Frame(..)))
}

/// Whether `word` is the magic of a version this racepool reads.
fn is_magic(word: &[u8]) -> bool {
    word == MAGIC.to_le_bytes() || word == MAGIC_V2.to_le_bytes()
}

/// Whether a file starting with `head` (its first bytes, up to 4) is a racepool log: it starts
/// with a known magic, or, shorter than one, with the start of the current one.
pub fn starts_a_log(head: &[u8]) -> bool {
    let known = [MAGIC, MAGIC_V2, MAGIC_V1].map(u32::to_le_bytes);
    match head.len() {
        0 => false,
        n if n < 4 => head == &known[0][..n],
        _ => known.iter().any(|m| head[..4] == m[..]),
    }
}

/// Decodes a frame's payload. An event takes its sequence from the frame and its run id from
/// `run`: the id of the run header it follows (the caller's to know).
#[inline]
pub fn decode(frame: &Frame<'_>, run: u64) -> Result<Record, Defect> {
    let wire: WireOwned = postcard::from_bytes(frame.payload).map_err(Defect::Undecodable)?;
    Ok(match wire {
        WireOwned::Run(r) => Record::Run(r),
        WireOwned::Event(e) => Record::Event(e.event(run, frame.writer, frame.seq)),
        WireOwned::End(e) => Record::End(e),
        WireOwned::Transfer(t) => Record::Transfer(Transfer {
            worker: frame.writer,
            seq: frame.seq,
            ..t
        }),
        WireOwned::Reads(r) => Record::Reads(Reads {
            worker: frame.writer,
            ..r
        }),
        WireOwned::Close(c) => Record::Close(c),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::history::event::{Event, RunEnd};

    fn event(seq: u64) -> Record {
        Record::Event(Event {
            run: 9,
            worker: 3,
            seq,
            slot: 0,
            read: 41,
            written: 42,
            retries: 1,
            invoke_ns: 100,
            complete_ns: 200,
            hash: 5,
        })
    }

    fn file() -> Vec<u8> {
        let mut out = Vec::new();
        for seq in 0..3 {
            encode(seq, &event(seq), &mut out);
        }
        encode(
            0,
            &Record::End(RunEnd {
                run: 9,
                fingerprint: 1,
                finals: vec![42],
                completed: vec![3],
                killed: vec![],
            }),
            &mut out,
        );
        out
    }

    fn read(bytes: &[u8]) -> (Vec<Record>, Result<Tail, u64>) {
        let mut records = Vec::new();
        let tail = scan(bytes, |f| records.push(decode(&f, 9).expect("decodes")));
        (records, tail)
    }

    /// Byte offsets of the records of a clean file.
    fn starts(bytes: &[u8]) -> Vec<usize> {
        let mut s = Vec::new();
        scan(bytes, |f| s.push(f.offset as usize)).expect("a clean file");
        s
    }

    #[test]
    fn round_trip_keeps_every_record_and_its_sequence() {
        let (records, tail) = read(&file());
        assert_eq!(tail, Ok(Tail::Clean));
        assert_eq!(records.len(), 4);
        assert_eq!(records[2], event(2));
    }

    #[test]
    fn transfers_and_reads_round_trip_and_take_their_writer_from_the_frame() {
        use crate::history::event::{Reads, Seen, Transfer};
        let t = Transfer {
            worker: 4,
            seq: 2,
            from: 1,
            to: 0,
            amount: 7,
            from_version: 3,
            from_before: u32::MAX,
            to_version: 0,
            to_before: 1000,
            invoke_ns: 5,
            complete_ns: 9,
        };
        let r = Reads {
            worker: 6,
            first: 512,
            seen: vec![
                Seen {
                    value: 3,
                    lo: 2,
                    hi: 3
                };
                3
            ],
        };
        let mut out = Vec::new();
        encode(t.seq, &Record::Transfer(t), &mut out);
        encode(0, &Record::Reads(r.clone()), &mut out);
        let (records, tail) = read(&out);
        assert_eq!(tail, Ok(Tail::Clean));
        assert_eq!(records, vec![Record::Transfer(t), Record::Reads(r)]);
    }

    #[test]
    fn older_record_kinds_keep_their_tags() {
        // postcard writes the variant index first: new kinds are appended, so a log written
        // before them decodes unchanged.
        let mut out = Vec::new();
        encode(0, &event(0), &mut out);
        assert_eq!(out[HEADER], 1, "Event is variant 1");
        let mut out = Vec::new();
        let t = crate::history::event::Transfer::default();
        encode(0, &Record::Transfer(t), &mut out);
        assert_eq!(out[HEADER], 3, "Transfer is variant 3");
    }

    #[test]
    fn deltas_round_trip_even_when_they_wrap() {
        let mut e = Event {
            run: 9,
            worker: 1,
            seq: 4,
            slot: 2,
            read: 7,
            written: 3,
            retries: u32::MAX,
            invoke_ns: 500,
            complete_ns: 20,
            hash: u64::MAX,
        };
        for (r, w, invoke, complete) in [(7, 3, 500, 20), (0, 1, 0, u64::MAX)] {
            (e.read, e.written, e.invoke_ns, e.complete_ns) = (r, w, invoke, complete);
            let mut out = Vec::new();
            encode(e.seq, &Record::Event(e), &mut out);
            let (records, tail) = read(&out);
            assert_eq!(tail, Ok(Tail::Clean));
            assert_eq!(records, vec![Record::Event(e)]);
        }
    }

    #[test]
    fn an_event_frame_fits_the_widest_event() {
        let e = Event {
            run: u64::MAX,
            worker: u32::MAX,
            seq: u32::MAX as u64,
            slot: u32::MAX,
            read: u32::MAX,
            written: u32::MAX - 1,
            retries: u32::MAX,
            invoke_ns: u64::MAX,
            complete_ns: u64::MAX - 1,
            hash: u64::MAX,
        };
        let mut out = Vec::new();
        encode(e.seq, &Record::Event(e), &mut out);
        assert_eq!(out.len(), MAX_EVENT_FRAME);
    }

    /// `bytes` with every record's magic replaced by `magic` (both checksums redone).
    pub(crate) fn with_magic(bytes: &[u8], magic: u32) -> Vec<u8> {
        let mut out = bytes.to_vec();
        for at in starts(bytes) {
            let len = u32::from_le_bytes(out[at + 4..at + 8].try_into().unwrap()) as usize;
            out[at..at + 4].copy_from_slice(&magic.to_le_bytes());
            let crc = crc32c::crc32c(&out[at..at + 16]);
            out[at + 16..at + 20].copy_from_slice(&crc.to_le_bytes());
            let end = at + HEADER + len;
            let crc = crc32c::crc32c(&out[at..end]);
            out[end..end + TRAILER].copy_from_slice(&crc.to_le_bytes());
        }
        out
    }

    #[test]
    fn a_version_1_record_is_named_not_just_corrupt() {
        let mut damage = Vec::new();
        scan_resync(&with_magic(&file(), MAGIC_V1), |r| {
            damage.extend(r.err());
        });
        assert_eq!(damage[0].defect, Defect::Version1);
        assert!(damage[0].to_string().contains("version 1"), "{}", damage[0]);
    }

    #[test]
    fn version_2_records_read_as_they_were_written() {
        let v2 = with_magic(&file(), MAGIC_V2);
        let (records, tail) = read(&v2);
        assert_eq!(tail, Ok(Tail::Clean));
        assert_eq!(records, read(&file()).0);
        let mut versions = Vec::new();
        scan(&v2, |f| versions.push(f.version)).unwrap();
        assert_eq!(versions, vec![2; 4]);
    }

    #[test]
    fn the_closing_record_round_trips_as_the_parents() {
        let mut out = Vec::new();
        encode(0, &Record::Close(Close { runs: 3 }), &mut out);
        assert_eq!(out[HEADER], 5, "Close is variant 5");
        let mut writers = Vec::new();
        scan(&out, |f| writers.push(f.writer)).unwrap();
        assert_eq!(writers, vec![PARENT]);
        assert_eq!(read(&out).0, vec![Record::Close(Close { runs: 3 })]);
    }

    #[test]
    fn only_files_that_start_with_a_magic_are_logs() {
        let log = file();
        for n in 1..=8 {
            assert!(starts_a_log(&log[..n.min(4)]), "{n} bytes");
        }
        for not in [
            &b""[..],
            b"root:x:0:0",
            b"R\x00",
            b"SQLite format 3\0",
            &[0u8; 4],
        ] {
            assert!(!starts_a_log(&not[..not.len().min(4)]), "{not:?}");
        }
    }

    /// `scan_resync`'s view of `bytes`: the sequence of each record read and each damage.
    fn resync(bytes: &[u8]) -> (Vec<u64>, Vec<Damage>) {
        let (mut seqs, mut damage) = (Vec::new(), Vec::new());
        let tail = scan_resync(bytes, |r| match r {
            Ok(f) => seqs.push(f.seq),
            Err(d) => damage.push(d),
        });
        assert_eq!(tail, Tail::Clean);
        (seqs, damage)
    }

    #[test]
    fn a_record_torn_mid_file_is_skipped_and_names_its_writer() {
        let bytes = file();
        let starts = starts(&bytes);
        // Record 1 (worker 3's record 1) keeps its header and 2 payload bytes.
        let mut torn = bytes[..starts[1] + HEADER + 2].to_vec();
        torn.extend_from_slice(&bytes[starts[2]..]);
        let (seqs, damage) = resync(&torn);
        assert_eq!(seqs, vec![0, 2, 0], "the records around it are read");
        assert_eq!(damage.len(), 1);
        assert_eq!(
            damage[0].at,
            Place::Bytes {
                offset: starts[1] as u64,
                len: (HEADER + 2) as u64
            }
        );
        assert_eq!(damage[0].writer, Writer::Worker { worker: 3, seq: 1 });
        // Cut inside its header: still skipped, but it names nobody.
        let mut torn = bytes[..starts[1] + 9].to_vec();
        torn.extend_from_slice(&bytes[starts[2]..]);
        let (seqs, damage) = resync(&torn);
        assert_eq!(seqs, vec![0, 2, 0]);
        assert_eq!(damage[0].writer, Writer::Unknown);
        // The strict walk stops there.
        assert_eq!(read(&torn).1, Err(starts[1] as u64));
    }

    #[test]
    fn a_cut_record_is_a_torn_tail_not_an_error() {
        let bytes = file();
        // The end record is at least a header, a trailer and a few payload bytes long.
        for cut in 1..HEADER + TRAILER {
            let (records, tail) = read(&bytes[..bytes.len() - cut]);
            assert_eq!(records.len(), 3, "cut {cut}");
            assert!(matches!(tail, Ok(Tail::Torn { .. })), "cut {cut}: {tail:?}");
        }
    }

    #[test]
    fn every_single_bit_flip_is_corruption_at_its_record() {
        let bytes = file();
        let starts = starts(&bytes);
        for bit in 0..bytes.len() * 8 {
            let mut b = bytes.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            let at = scan(&b, |_| {}).expect_err(&format!("bit {bit} not flagged")) as usize;
            let record = starts.iter().rposition(|&s| s <= bit / 8).unwrap();
            assert_eq!(at, starts[record], "bit {bit}");
        }
    }
}
