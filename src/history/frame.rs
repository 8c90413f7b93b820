//! The on-disk frame of one record, and the reader.
//!
//! ```text
//! offset  size  field
//!      0     4  magic "RPEV" (little-endian u32 0x5645_5052)
//!      4     4  payload length, little-endian
//!      8     8  sequence, little-endian: the writer's record number (per worker, from 0)
//!     16     4  CRC32C of bytes 0..16: the header is trusted before its length is used
//!     20     n  payload: one postcard-encoded `Record`
//!   20+n     4  CRC32C of bytes 0..20+n: everything before it
//! ```
//!
//! The header has its own checksum so a flipped bit in the length is caught as corruption
//! instead of passing for a record cut short. The reader then tells the two apart:
//! - a **torn tail**: the file ends inside a record whose header is intact (or inside a
//!   header, or in zero bytes): what a crash during an append leaves. Reported, not fatal.
//! - **corruption**: a complete record whose checksum fails, anywhere. An error naming the
//!   record's byte offset; nothing after it is trusted.
//!
//! postcard does the payload (a maintained serde format, compact varints); only the frame is by
//! hand, because no crate frames records with a checksum for O_APPEND writers.

use super::event::Record;

pub const MAGIC: u32 = u32::from_le_bytes(*b"RPEV");
pub const HEADER: usize = 20;
pub const TRAILER: usize = 4;
/// Larger lengths are corruption: no record comes near (a run end holds 4 bytes per slot and
/// 8 per worker).
pub const MAX_PAYLOAD: usize = 1 << 30;

/// Appends `record` framed with `seq` to `out`.
pub fn encode(seq: u64, record: &Record, out: &mut Vec<u8>) {
    let start = out.len();
    let mut buf = std::mem::take(out);
    buf.extend_from_slice(&[0; HEADER]);
    // postcard appends to any `Extend<u8>`; it takes the Vec by value and hands it back.
    let mut buf = postcard::to_extend(record, buf).expect("records serialise");
    let len = buf.len() - start - HEADER;
    assert!(len <= MAX_PAYLOAD, "a record of {len} bytes");
    buf[start..start + 4].copy_from_slice(&MAGIC.to_le_bytes());
    buf[start + 4..start + 8].copy_from_slice(&(len as u32).to_le_bytes());
    buf[start + 8..start + 16].copy_from_slice(&seq.to_le_bytes());
    let header_crc = crc32c::crc32c(&buf[start..start + 16]);
    buf[start + 16..start + 20].copy_from_slice(&header_crc.to_le_bytes());
    let crc = crc32c::crc32c(&buf[start..]);
    buf.extend_from_slice(&crc.to_le_bytes());
    *out = buf;
}

/// A complete record as found in the file.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    /// Byte offset of the record's first byte.
    pub offset: u64,
    pub seq: u64,
    pub payload: &'a [u8],
}

/// How the file ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Tail {
    Clean,
    /// The last `bytes` bytes, from `offset`, are an incomplete record.
    Torn {
        offset: u64,
        bytes: u64,
    },
}

/// A record that cannot be trusted, and where it starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Corrupt {
    pub offset: u64,
    pub reason: String,
}

impl std::fmt::Display for Corrupt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "corrupt record at byte offset {}: {}",
            self.offset, self.reason
        )
    }
}

/// Walks every frame of `bytes`, calling `each` on the complete, checksummed ones, in order.
/// Stops at the first corrupt record; `each` may reject a frame too (e.g. a payload that does
/// not decode), which is reported as corruption at that frame's offset.
pub fn scan<'a>(
    bytes: &'a [u8],
    mut each: impl FnMut(Frame<'a>) -> Result<(), String>,
) -> Result<Tail, Corrupt> {
    let mut pos = 0usize;
    let corrupt = |pos: usize, reason: String| Corrupt {
        offset: pos as u64,
        reason,
    };
    loop {
        let rest = &bytes[pos..];
        if rest.is_empty() {
            return Ok(Tail::Clean);
        }
        let torn = Tail::Torn {
            offset: pos as u64,
            bytes: rest.len() as u64,
        };
        if rest.len() < HEADER {
            return Ok(torn);
        }
        let word = |at: usize| u32::from_le_bytes(rest[at..at + 4].try_into().expect("4 bytes"));
        if crc32c::crc32c(&rest[..16]) != word(16) {
            // Blocks a crash left allocated but unwritten read as zeros: still a torn tail.
            if rest.iter().all(|&b| b == 0) {
                return Ok(torn);
            }
            return Err(corrupt(pos, "header checksum mismatch".into()));
        }
        if word(0) != MAGIC {
            return Err(corrupt(pos, format!("bad magic {:#010x}", word(0))));
        }
        let len = word(4) as usize;
        if len > MAX_PAYLOAD {
            return Err(corrupt(pos, format!("payload length {len} is implausible")));
        }
        let total = HEADER + len + TRAILER;
        if rest.len() < total {
            return Ok(torn);
        }
        let end = HEADER + len;
        let crc = u32::from_le_bytes(rest[end..total].try_into().expect("4 bytes"));
        if crc32c::crc32c(&rest[..end]) != crc {
            return Err(corrupt(pos, "record checksum mismatch".into()));
        }
        let frame = Frame {
            offset: pos as u64,
            seq: u64::from_le_bytes(rest[8..16].try_into().expect("8 bytes")),
            payload: &rest[HEADER..end],
        };
        each(frame).map_err(|reason| corrupt(pos, reason))?;
        pos += total;
    }
}

/// Decodes a frame's payload, putting the frame's sequence into an event.
pub fn decode(frame: &Frame<'_>) -> Result<Record, String> {
    let mut record: Record = postcard::from_bytes(frame.payload)
        .map_err(|e| format!("checksum matches but the payload does not decode: {e}"))?;
    if let Record::Event(e) = &mut record {
        e.seq = frame.seq;
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
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
            }),
            &mut out,
        );
        out
    }

    fn read(bytes: &[u8]) -> (Vec<Record>, Result<Tail, Corrupt>) {
        let mut records = Vec::new();
        let tail = scan(bytes, |f| {
            records.push(decode(&f)?);
            Ok(())
        });
        (records, tail)
    }

    #[test]
    fn round_trip_keeps_every_record_and_its_sequence() {
        let (records, tail) = read(&file());
        assert_eq!(tail, Ok(Tail::Clean));
        assert_eq!(records.len(), 4);
        assert_eq!(records[2], event(2));
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
        let starts: Vec<usize> = {
            let mut s = Vec::new();
            scan(&bytes, |f| {
                s.push(f.offset as usize);
                Ok(())
            })
            .unwrap();
            s
        };
        for bit in 0..bytes.len() * 8 {
            let mut b = bytes.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            let (_, tail) = read(&b);
            let at = tail.expect_err(&format!("bit {bit} not flagged")).offset as usize;
            let record = starts.iter().rposition(|&s| s <= bit / 8).unwrap();
            assert_eq!(at, starts[record], "bit {bit}");
        }
    }
}
