//! The event log: one append-only file every worker appends to.
//!
//! Each worker opens the file itself after the fork with O_APPEND, so the kernel picks the
//! offset of every `write(2)` atomically and concurrent appends never overwrite each other.
//! Records are framed (`history::frame`) and buffered per worker: a batch of whole records goes
//! out in one `write(2)`. A regular-file write is all-or-error except at a size limit; a short
//! write is therefore an error (the file then ends in a torn record, which the reader reports).
//!
//! What a worker killed mid-run loses: the records still in its buffer (at most `batch`
//! events), never a record already written; a SIGKILL inside its `write(2)` can leave the
//! batch cut between pages, a torn record verify accepts only as that worker's last. `--fsync every` writes and fdatasyncs each record
//! before the update is acknowledged; `end` leaves durability to one fsync by the parent after
//! every worker has exited (the page cache is shared, so that one call covers every worker).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use super::Fsync;
use crate::history::frame;
use crate::history::Record;

pub struct LogWriter {
    file: File,
    /// The batch being built: frames are encoded straight into it, `buf[..len]` is full.
    buf: Box<[u8]>,
    len: usize,
    /// The next record's sequence number (this writer's records, from 0).
    seq: u64,
    pending: usize,
    batch: usize,
    fsync: Fsync,
}

impl LogWriter {
    /// Creates (or empties) the log. The parent calls this once, before any worker exists.
    pub fn create(path: &Path, fsync: Fsync) -> io::Result<LogWriter> {
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(path)?;
        drop(file);
        LogWriter::open(path, fsync, 1)
    }

    /// Opens the log for appending; a worker calls this after the fork.
    pub fn open(path: &Path, fsync: Fsync, batch: usize) -> io::Result<LogWriter> {
        let file = OpenOptions::new().append(true).open(path)?;
        let batch = if fsync == Fsync::Every {
            1
        } else {
            batch.max(1)
        };
        Ok(LogWriter {
            file,
            // Room for `batch` events at their widest (capped): a batch never flushes early.
            buf: vec![0; batch.min(4096) * frame::MAX_EVENT_FRAME].into_boxed_slice(),
            len: 0,
            seq: 0,
            pending: 0,
            batch,
            fsync,
        })
    }

    /// Frames `record`; writes the batch once it is full.
    #[inline]
    pub fn append(&mut self, record: &Record) -> io::Result<()> {
        match frame::encode_at(self.seq, record, &mut self.buf[self.len..]) {
            Some(n) => self.len += n,
            None => self.append_large(record)?,
        }
        self.seq += 1;
        self.pending += 1;
        if self.pending >= self.batch {
            self.flush()?;
        }
        Ok(())
    }

    /// A record that does not fit what is left of the buffer: the batch so far goes first,
    /// then the record, from the buffer if it fits there now, else alone.
    #[cold]
    fn append_large(&mut self, record: &Record) -> io::Result<()> {
        self.flush()?;
        if let Some(n) = frame::encode_at(self.seq, record, &mut self.buf) {
            self.len = n;
            return Ok(());
        }
        let mut one = Vec::new();
        frame::encode(self.seq, record, &mut one);
        write_once(&mut self.file, self.fsync, &one)
    }

    /// Writes every buffered record with one `write(2)`.
    pub fn flush(&mut self) -> io::Result<()> {
        if self.len == 0 {
            return Ok(());
        }
        write_once(&mut self.file, self.fsync, &self.buf[..self.len])?;
        self.len = 0;
        self.pending = 0;
        Ok(())
    }

    /// Flushes what is buffered; with `--fsync end` or `every`, makes it durable.
    pub fn finish(&mut self) -> io::Result<()> {
        self.flush()?;
        self.sync()
    }

    /// fdatasync unless `--fsync never`.
    pub fn sync(&mut self) -> io::Result<()> {
        if self.fsync != Fsync::Never {
            self.file.sync_data()?;
        }
        Ok(())
    }
}

/// One `write(2)` of whole records; anything short of all of `bytes` is an error.
fn write_once(file: &mut File, fsync: Fsync, bytes: &[u8]) -> io::Result<()> {
    let n = loop {
        match file.write(bytes) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => break other?,
        }
    };
    if n != bytes.len() {
        return Err(io::Error::other(format!(
            "short write: {n} of {} bytes reached the log (file size limit or disk full?)",
            bytes.len()
        )));
    }
    if fsync == Fsync::Every {
        file.sync_data()?;
    }
    Ok(())
}
