//! The event log: one append-only file every worker appends to.
//!
//! Each worker opens the file itself after the fork with O_APPEND, so the kernel picks the
//! offset of every `write(2)` atomically and concurrent appends never overwrite each other.
//! Records are framed (`history::frame`) and buffered per worker: a batch of whole records goes
//! out in one `write(2)`. A regular-file write is all-or-error except at a size limit; a short
//! write is therefore an error (the file then ends in a torn record, which the reader reports).
//!
//! What a worker killed mid-run loses: the records still in its buffer (at most `batch`
//! events), never a record already written. `--fsync every` writes and fdatasyncs each record
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
    buf: Vec<u8>,
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
        Ok(LogWriter {
            file,
            buf: Vec::with_capacity(batch.min(4096) * 64),
            seq: 0,
            pending: 0,
            batch: if fsync == Fsync::Every {
                1
            } else {
                batch.max(1)
            },
            fsync,
        })
    }

    /// Frames `record`; writes the batch once it is full.
    #[inline]
    pub fn append(&mut self, record: &Record) -> io::Result<()> {
        frame::encode(self.seq, record, &mut self.buf);
        self.seq += 1;
        self.pending += 1;
        if self.pending >= self.batch {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes every buffered record with one `write(2)`.
    pub fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let n = loop {
            match self.file.write(&self.buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other?,
            }
        };
        if n != self.buf.len() {
            return Err(io::Error::other(format!(
                "short write: {n} of {} bytes reached the log (file size limit or disk full?)",
                self.buf.len()
            )));
        }
        self.buf.clear();
        self.pending = 0;
        if self.fsync == Fsync::Every {
            self.file.sync_data()?;
        }
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
