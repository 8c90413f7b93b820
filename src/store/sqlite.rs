//! The SQLite store: tables a user can audit with the `sqlite3` shell.
//!
//! - `runs`: one row per run (the poll): strategy, workers, initial value, the region's
//!   fingerprint once it ended.
//! - `slots`: one row per slot (the poll's options): `value` is what the workers persisted,
//!   `region_value` the region's final value, written by the parent at the end.
//! - `events`: one row per winning update (the vote events), `votes_after` the value written,
//!   `crc` a CRC32C of the event's encoding so a row edited by hand is caught.
//! - `workers`: how many updates each worker acknowledged.
//!
//! Every worker opens its own connection after the fork, in WAL mode with a busy timeout, and
//! persists in batched transactions: its events plus an `UPDATE slots` per event, `blind`
//! (`SET value = ?`, the persistence-layer lost update) or `monotonic` (`SET value = max(value, ?)`).
//! A transaction never waits for a slot lock while it holds SQLite's write lock, so persisting
//! inside a critical section cannot deadlock.
//!
//! Writers queue on an `flock` of `PATH.lock` before `BEGIN IMMEDIATE`: SQLite's own busy
//! handler polls with sleeps of up to 100 ms, which with a thousand writers wastes seconds,
//! while a blocked `flock` is woken by the kernel the moment the holder lets go.
//! `--fsync every` maps to `synchronous = FULL` (each commit is durable), otherwise `NORMAL`
//! (WAL stays consistent; a power loss may drop the last commits).

use std::path::Path;
use std::time::Duration;

use rusqlite::{params, Connection, OpenFlags, TransactionBehavior};

use nix::fcntl::{Flock, FlockArg};

use super::{Fsync, Persist};
use crate::error::Error;
use crate::history::frame::Tail;
use crate::history::{Event, Record, RunEnd, RunInfo};
use crate::verify::{Loaded, RunHistory};

/// How long a connection waits for SQLite's write lock: a thousand workers queue for it.
const BUSY_TIMEOUT: Duration = Duration::from_secs(120);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS runs (
    run INTEGER PRIMARY KEY,
    strategy TEXT NOT NULL,
    workers INTEGER NOT NULL,
    slots INTEGER NOT NULL,
    ops INTEGER NOT NULL,
    initial INTEGER NOT NULL,
    seed INTEGER NOT NULL,
    persist TEXT NOT NULL,
    fingerprint INTEGER -- NULL until the run ended
);
CREATE TABLE IF NOT EXISTS slots (
    run INTEGER NOT NULL,
    slot INTEGER NOT NULL,
    value INTEGER NOT NULL,
    region_value INTEGER,
    PRIMARY KEY (run, slot)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    run INTEGER NOT NULL,
    worker INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    slot INTEGER NOT NULL,
    read INTEGER NOT NULL,
    votes_after INTEGER NOT NULL,
    retries INTEGER NOT NULL,
    invoke_ns INTEGER NOT NULL,
    complete_ns INTEGER NOT NULL,
    hash INTEGER NOT NULL,
    crc INTEGER NOT NULL,
    PRIMARY KEY (run, worker, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS workers (
    run INTEGER NOT NULL,
    worker INTEGER NOT NULL,
    completed INTEGER NOT NULL,
    PRIMARY KEY (run, worker)
) WITHOUT ROWID;
";

/// Whether `path` starts like an SQLite database.
pub fn is_sqlite(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 16];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|_| &head == b"SQLite format 3\0")
}

fn lock_path(path: &Path) -> std::path::PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".lock");
    p.into()
}

fn connect(path: &Path) -> Result<Connection, String> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| e.to_string())?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(|e| e.to_string())?;
    Ok(conn)
}

/// Creates an empty database (removing an older one and its WAL) with the schema, in WAL mode.
pub fn create(path: &Path) -> Result<(), String> {
    for suffix in ["", "-wal", "-shm", "-journal", ".lock"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    let conn = Connection::open(path).map_err(|e| e.to_string())?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(|e| e.to_string())?;
    conn.execute_batch(SCHEMA).map_err(|e| e.to_string())?;
    std::fs::File::create(lock_path(path)).map_err(|e| e.to_string())?;
    Ok(())
}

/// Inserts the run and its slots at their initial value. Before the first fork.
pub fn begin_run(path: &Path, info: &RunInfo) -> Result<(), String> {
    let mut conn = connect(path)?;
    let tx = conn.transaction().map_err(|e| e.to_string())?;
    tx.execute(
        "INSERT INTO runs (run, strategy, workers, slots, ops, initial, seed, persist)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            info.run as i64,
            info.strategy,
            info.workers,
            info.slots,
            info.ops as i64,
            info.initial,
            info.seed as i64,
            info.persist
        ],
    )
    .map_err(|e| e.to_string())?;
    {
        let mut slot = tx
            .prepare("INSERT INTO slots (run, slot, value) VALUES (?1, ?2, ?3)")
            .map_err(|e| e.to_string())?;
        for s in 0..info.slots {
            slot.execute(params![info.run as i64, s, info.initial])
                .map_err(|e| e.to_string())?;
        }
    }
    tx.commit().map_err(|e| e.to_string())
    // The connection closes here: no connection is carried across the fork.
}

/// Records the region's final values, its fingerprint and the acknowledgements.
pub fn end_run(path: &Path, end: &RunEnd) -> Result<(), String> {
    let mut conn = connect(path)?;
    let tx = conn.transaction().map_err(|e| e.to_string())?;
    {
        let mut slot = tx
            .prepare("UPDATE slots SET region_value = ?3 WHERE run = ?1 AND slot = ?2")
            .map_err(|e| e.to_string())?;
        for (s, v) in end.finals.iter().enumerate() {
            slot.execute(params![end.run as i64, s as i64, v])
                .map_err(|e| e.to_string())?;
        }
        let mut worker = tx
            .prepare("INSERT INTO workers (run, worker, completed) VALUES (?1, ?2, ?3)")
            .map_err(|e| e.to_string())?;
        for (w, n) in end.completed.iter().enumerate() {
            worker
                .execute(params![end.run as i64, w as i64, *n as i64])
                .map_err(|e| e.to_string())?;
        }
    }
    tx.execute(
        "UPDATE runs SET fingerprint = ?2 WHERE run = ?1",
        params![end.run as i64, end.fingerprint as i64],
    )
    .map_err(|e| e.to_string())?;
    tx.commit().map_err(|e| e.to_string())
}

/// CRC32C of an event's encoding: the row's own checksum.
fn event_crc(e: &Event) -> u32 {
    let bytes = postcard::to_allocvec(&Record::Event(*e)).expect("events serialise");
    crc32c::crc32c(&bytes) ^ crc32c::crc32c(&e.seq.to_le_bytes())
}

/// A worker's connection.
pub struct SqliteWriter {
    conn: Connection,
    /// `PATH.lock`, flocked around each transaction (taken out while locked).
    queue: Option<std::fs::File>,
    run: u64,
    persist: Persist,
    batch: usize,
    pending: Vec<Event>,
}

impl SqliteWriter {
    /// Opens the worker's own connection (after the fork).
    pub fn open(
        path: &Path,
        run: u64,
        persist: Persist,
        fsync: Fsync,
        batch: usize,
    ) -> Result<Self, String> {
        let conn = connect(path)?;
        let sync = if fsync == Fsync::Every {
            "FULL"
        } else {
            "NORMAL"
        };
        conn.pragma_update(None, "synchronous", sync)
            .map_err(|e| e.to_string())?;
        let queue = std::fs::OpenOptions::new()
            .read(true)
            .open(lock_path(path))
            .map_err(|e| format!("opening {}: {e}", lock_path(path).display()))?;
        Ok(SqliteWriter {
            conn,
            queue: Some(queue),
            run,
            persist,
            batch,
            pending: Vec::with_capacity(batch.min(4096)),
        })
    }

    /// Buffers one event; commits the batch once it is full.
    pub fn append(&mut self, event: Event) -> Result<(), String> {
        self.pending.push(event);
        if self.pending.len() >= self.batch {
            self.flush()?;
        }
        Ok(())
    }

    /// One transaction: every buffered event and its slot update, in the order they won.
    pub fn flush(&mut self) -> Result<(), String> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let queue = self
            .queue
            .take()
            .expect("the lock file is back after every flush");
        let held = match Flock::lock(queue, FlockArg::LockExclusive) {
            Ok(held) => held,
            Err((queue, errno)) => {
                self.queue = Some(queue);
                return Err(format!("flock of the writers' queue: {errno}"));
            }
        };
        let result = self.transaction();
        match held.unlock() {
            Ok(queue) => self.queue = Some(queue),
            Err((_, errno)) => return Err(format!("unlocking the writers' queue: {errno}")),
        }
        result?;
        self.pending.clear();
        Ok(())
    }

    fn transaction(&mut self) -> Result<(), String> {
        let e = |e: rusqlite::Error| e.to_string();
        // IMMEDIATE: take the write lock at BEGIN, so a busy database is waited for here (with
        // the busy timeout) instead of failing a read-to-write upgrade mid-transaction.
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(e)?;
        {
            let mut insert = tx
                .prepare(
                    "INSERT INTO events (run, worker, seq, slot, read, votes_after, retries,
                         invoke_ns, complete_ns, hash, crc)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                )
                .map_err(e)?;
            let mut update = tx
                .prepare(match self.persist {
                    Persist::Blind => "UPDATE slots SET value = ?3 WHERE run = ?1 AND slot = ?2",
                    Persist::Monotonic => {
                        "UPDATE slots SET value = max(value, ?3) WHERE run = ?1 AND slot = ?2"
                    }
                })
                .map_err(e)?;
            for ev in &self.pending {
                insert
                    .execute(params![
                        self.run as i64,
                        ev.worker,
                        ev.seq as i64,
                        ev.slot,
                        ev.read,
                        ev.written,
                        ev.retries,
                        ev.invoke_ns as i64,
                        ev.complete_ns as i64,
                        ev.hash as i64,
                        event_crc(ev)
                    ])
                    .map_err(e)?;
                update
                    .execute(params![self.run as i64, ev.slot, ev.written])
                    .map_err(e)?;
            }
        }
        tx.commit().map_err(e)
    }

    pub fn finish(&mut self) -> Result<(), String> {
        self.flush()
    }
}

/// Reads every run of a database into the checker's form.
pub fn load(path: &Path) -> Result<Loaded, Error> {
    let err = |e: rusqlite::Error| Error::Usage(format!("reading {}: {e}", path.display()));
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(err)?;
    let mut runs = Vec::new();
    let mut corrupt_rows = Vec::new();
    let mut stmt = conn
        .prepare(
            "SELECT run, strategy, workers, slots, ops, initial, seed, persist, fingerprint
             FROM runs ORDER BY rowid",
        )
        .map_err(err)?;
    let infos = stmt
        .query_map([], |r| {
            Ok((
                RunInfo {
                    run: r.get::<_, i64>(0)? as u64,
                    strategy: r.get(1)?,
                    workers: r.get(2)?,
                    slots: r.get(3)?,
                    ops: r.get::<_, i64>(4)? as u64,
                    initial: r.get(5)?,
                    seed: r.get::<_, i64>(6)? as u64,
                    persist: r.get(7)?,
                },
                r.get::<_, Option<i64>>(8)?,
            ))
        })
        .map_err(err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(err)?;
    let mut records = 0u64;
    for (info, fingerprint) in infos {
        let run = info.run as i64;
        let mut ev = conn
            .prepare(
                "SELECT worker, seq, slot, read, votes_after, retries, invoke_ns, complete_ns,
                        hash, crc
                 FROM events WHERE run = ?1 ORDER BY worker, seq",
            )
            .map_err(err)?;
        let events = ev
            .query_map([run], |r| {
                let e = Event {
                    run: info.run,
                    worker: r.get(0)?,
                    seq: r.get::<_, i64>(1)? as u64,
                    slot: r.get(2)?,
                    read: r.get(3)?,
                    written: r.get(4)?,
                    retries: r.get(5)?,
                    invoke_ns: r.get::<_, i64>(6)? as u64,
                    complete_ns: r.get::<_, i64>(7)? as u64,
                    hash: r.get::<_, i64>(8)? as u64,
                };
                Ok((e, r.get::<_, u32>(9)?))
            })
            .map_err(err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        records += events.len() as u64;
        for (e, crc) in &events {
            if event_crc(e) != *crc {
                corrupt_rows.push(format!(
                    "events row (run {}, worker {}, seq {}) fails its checksum",
                    info.run, e.worker, e.seq
                ));
            }
        }
        let mut slots = conn
            .prepare("SELECT value, region_value FROM slots WHERE run = ?1 ORDER BY slot")
            .map_err(err)?;
        let rows = slots
            .query_map([run], |r| {
                Ok((r.get::<_, u32>(0)?, r.get::<_, Option<u32>>(1)?))
            })
            .map_err(err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        let stored: Vec<u32> = rows.iter().map(|r| r.0).collect();
        let finals: Option<Vec<u32>> = rows.iter().map(|r| r.1).collect();
        let mut w = conn
            .prepare("SELECT completed FROM workers WHERE run = ?1 ORDER BY worker")
            .map_err(err)?;
        let completed = w
            .query_map([run], |r| Ok(r.get::<_, i64>(0)? as u64))
            .map_err(err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        let end = match (fingerprint, finals) {
            (Some(f), Some(finals)) => Some(RunEnd {
                run: info.run,
                fingerprint: f as u64,
                finals,
                completed,
                // Refused with deaths (see `Config::validate`): nobody was killed.
                killed: Vec::new(),
            }),
            _ => None,
        };
        runs.push(RunHistory {
            info,
            events: events.into_iter().map(|(e, _)| e).collect(),
            end,
            stored: Some(stored),
            damaged: Vec::new(),
        });
    }
    Ok(Loaded {
        runs,
        tail: Tail::Clean,
        corrupt: corrupt_rows
            .first()
            .map(|r| crate::history::frame::Corrupt {
                offset: 0,
                reason: format!("{r} ({} such rows)", corrupt_rows.len()),
            }),
        damaged: Vec::new(),
        records,
    })
}
