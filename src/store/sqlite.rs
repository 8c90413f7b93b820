//! The SQLite store: tables a user can audit with the `sqlite3` shell.
//!
//! - `runs`: one row per run (the poll): strategy, workers, initial value, the region's
//!   fingerprint once it ended.
//! - `slots`: one row per slot (the poll's options): `value` is what the workers persisted,
//!   `region_value` the region's final value, written by the parent at the end.
//! - `events`: one row per winning update (the vote events), `votes_after` the value written,
//!   `crc` a CRC32C of the event's encoding so a row edited by hand is caught.
//! - `workers`: how many updates each worker acknowledged.
//! - `closing`: one row once the invocation wrote its last run (how many runs it wrote): a
//!   database without it was not finished. Databases older than it have no such table.
//! - `transfers`: a ledger run's transfers (balances signed, so `SUM` and `< 0` read naturally);
//!   `slots.value` is not kept for a ledger (a transfer moves two balances; the chain of each
//!   account's versions is the record), `slots.region_value` is.
//! - `reads`: a cache run's reads, one row per read: the value's version and the lowest and
//!   highest version among the related entries (`related_lo <> value OR related_hi <> value`
//!   is a torn read). A cache write is an `events` row on slot 0.
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
use crate::history::loaded::{
    Closure, Damage, Defect, LoadError, Missing, Orphans, Place, Tail, Writer,
};
use crate::history::{Event, Loaded, Reads, Record, RunEnd, RunHistory, RunInfo, Seen, Transfer};

/// How long a connection waits for SQLite's write lock: a thousand workers queue for it.
const BUSY_TIMEOUT: Duration = Duration::from_secs(120);

/// `PRAGMA user_version` of a database this racepool creates: from 3 on, it has the `closing`
/// table, so a database of version 3 without it was tampered with, not merely old.
const SCHEMA_VERSION: i64 = 3;

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
CREATE TABLE IF NOT EXISTS transfers (
    run INTEGER NOT NULL,
    worker INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    from_account INTEGER NOT NULL,
    to_account INTEGER NOT NULL,
    amount INTEGER NOT NULL,
    from_version INTEGER NOT NULL,
    from_before INTEGER NOT NULL,
    to_version INTEGER NOT NULL,
    to_before INTEGER NOT NULL,
    invoke_ns INTEGER NOT NULL,
    complete_ns INTEGER NOT NULL,
    crc INTEGER NOT NULL,
    PRIMARY KEY (run, worker, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS reads (
    run INTEGER NOT NULL,
    worker INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    value INTEGER NOT NULL,
    related_lo INTEGER NOT NULL,
    related_hi INTEGER NOT NULL,
    PRIMARY KEY (run, worker, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS workers (
    run INTEGER NOT NULL,
    worker INTEGER NOT NULL,
    completed INTEGER NOT NULL,
    PRIMARY KEY (run, worker)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS closing (
    runs INTEGER NOT NULL -- written once, after the invocation's last run
);
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
    conn.pragma_update(None, "user_version", SCHEMA_VERSION)
        .map_err(|e| e.to_string())?;
    conn.execute_batch(SCHEMA).map_err(|e| e.to_string())?;
    Ok(())
}

/// Inserts the run and its slots at their initial value. Before the first fork.
pub fn begin_run(path: &Path, info: &RunInfo) -> Result<(), String> {
    // The writers' queue lives only while the run does: `end_run` removes it.
    std::fs::File::create(lock_path(path)).map_err(|e| e.to_string())?;
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
    tx.commit().map_err(|e| e.to_string())?;
    // Every writer has been reaped: nobody queues on the lock file any more.
    match std::fs::remove_file(lock_path(path)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.to_string()),
        _ => Ok(()),
    }
}

/// Closes the database: the invocation wrote `runs` runs. After its last run.
pub fn close(path: &Path, runs: u64) -> Result<(), String> {
    let conn = connect(path)?;
    conn.execute("INSERT INTO closing (runs) VALUES (?1)", [runs as i64])
        .map(drop)
        .map_err(|e| e.to_string())
}

/// CRC32C of an event's encoding: the row's own checksum.
fn event_crc(e: &Event) -> u32 {
    let bytes = postcard::to_allocvec(&Record::Event(*e)).expect("events serialise");
    crc32c::crc32c(&bytes) ^ crc32c::crc32c(&e.seq.to_le_bytes())
}

/// CRC32C of a transfer's encoding with its worker and sequence: the row's own checksum.
fn transfer_crc(t: &Transfer) -> u32 {
    let bytes = postcard::to_allocvec(&Record::Transfer(*t)).expect("transfers serialise");
    let mut who = [0u8; 12];
    who[..4].copy_from_slice(&t.worker.to_le_bytes());
    who[4..].copy_from_slice(&t.seq.to_le_bytes());
    crc32c::crc32c_append(crc32c::crc32c(&bytes), &who)
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
    transfers: Vec<Transfer>,
    reads: Vec<Reads>,
    /// Records buffered (a batch of reads counts once).
    buffered: usize,
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
            transfers: Vec::new(),
            reads: Vec::new(),
            buffered: 0,
        })
    }

    /// Buffers one event; commits the batch once it is full.
    pub fn append(&mut self, event: Event) -> Result<(), String> {
        self.pending.push(event);
        self.buffered += 1;
        if self.buffered >= self.batch {
            self.flush()?;
        }
        Ok(())
    }

    /// Buffers a transfer or a batch of reads like an event.
    pub fn append_record(&mut self, record: Record) -> Result<(), String> {
        match record {
            Record::Event(e) => return self.append(e),
            Record::Transfer(t) => self.transfers.push(t),
            Record::Reads(r) => self.reads.push(r),
            Record::Run(_) | Record::End(_) | Record::Close(_) => {
                return Err("run headers, ends and the closing record are the parent's".into())
            }
        }
        self.buffered += 1;
        if self.buffered >= self.batch {
            self.flush()?;
        }
        Ok(())
    }

    /// One transaction: every buffered event and its slot update, in the order they won.
    pub fn flush(&mut self) -> Result<(), String> {
        if self.buffered == 0 {
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
        self.transfers.clear();
        self.reads.clear();
        self.buffered = 0;
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
            if !self.transfers.is_empty() {
                let mut insert = tx
                    .prepare(
                        "INSERT INTO transfers (run, worker, seq, from_account, to_account, amount,
                             from_version, from_before, to_version, to_before, invoke_ns,
                             complete_ns, crc)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                    )
                    .map_err(e)?;
                for t in &self.transfers {
                    insert
                        .execute(params![
                            self.run as i64,
                            t.worker,
                            t.seq as i64,
                            t.from,
                            t.to,
                            t.amount,
                            t.from_version,
                            t.from_before as i32,
                            t.to_version,
                            t.to_before as i32,
                            t.invoke_ns as i64,
                            t.complete_ns as i64,
                            transfer_crc(t)
                        ])
                        .map_err(e)?;
                }
            }
            if !self.reads.is_empty() {
                let mut insert = tx
                    .prepare(
                        "INSERT INTO reads (run, worker, seq, value, related_lo, related_hi)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    )
                    .map_err(e)?;
                for batch in &self.reads {
                    for (k, seen) in batch.seen.iter().enumerate() {
                        insert
                            .execute(params![
                                self.run as i64,
                                batch.worker,
                                (batch.first + k as u64) as i64,
                                seen.value,
                                seen.lo,
                                seen.hi
                            ])
                            .map_err(e)?;
                    }
                }
            }
        }
        tx.commit().map_err(e)
    }

    pub fn finish(&mut self) -> Result<(), String> {
        self.flush()
    }
}

/// Reads every run of a database (see `history::loaded` for what a loader promises). A row
/// whose checksum fails is kept out of its run and reported as damage, named by its key.
pub fn load(path: &Path) -> Result<Loaded, LoadError> {
    let name = path.display().to_string();
    let err = |e: rusqlite::Error| LoadError::Io {
        path: name.clone(),
        error: e.to_string(),
    };
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(err)?;
    let has = |table: &str| -> Result<bool, LoadError> {
        conn.query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [table],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n > 0)
        .map_err(err)
    };
    if !has("runs")? {
        return Err(LoadError::NotARecord {
            path: name.clone(),
            why: "an SQLite database without racepool's tables".into(),
        });
    }
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(err)?;
    let closure = if has("closing")? || version >= SCHEMA_VERSION {
        let runs: Option<i64> = match has("closing")? {
            true => conn
                .query_row("SELECT max(runs) FROM closing", [], |r| r.get(0))
                .map_err(err)?,
            false => None,
        };
        match runs {
            Some(runs) => Closure::Closed {
                runs: runs as u64,
                at: Place::row("closing", &[]),
            },
            None => Closure::Open,
        }
    } else {
        Closure::Unrecorded
    };
    let infos = load_runs(&conn).map_err(err)?;
    let mut records = infos.len() as u64;
    let mut runs = Vec::with_capacity(infos.len());
    for (info, fingerprint) in infos {
        let mut run = RunHistory::new(info);
        load_events(&conn, &mut run).map_err(err)?;
        load_transfers(&conn, &mut run).map_err(err)?;
        run.reads = load_reads(&conn, run.info.run).map_err(err)?;
        let (stored, finals, slot_rows) = load_slots(&conn, &run.info).map_err(err)?;
        let completed = load_workers(&conn, &run.info).map_err(err)?;
        records += (run.events.len() + run.transfers.len() + run.damaged.len()) as u64
            + run.reads.iter().map(|r| r.seen.len() as u64).sum::<u64>()
            + slot_rows
            + completed.iter().flatten().count() as u64;
        run.stored = Some(stored);
        end_of(&mut run, fingerprint, finals, completed);
        runs.push(run);
    }
    Ok(Loaded {
        runs,
        orphans: load_orphans(&conn).map_err(err)?,
        damaged: Vec::new(),
        tail: Tail::Clean,
        read_to: None,
        size: None,
        closure,
        records,
    })
}

/// Every run's header and its fingerprint (NULL until the run ended), in the order written.
fn load_runs(conn: &Connection) -> rusqlite::Result<Vec<(RunInfo, Option<u64>)>> {
    let mut stmt = conn.prepare(
        "SELECT run, strategy, workers, slots, ops, initial, seed, persist, fingerprint
         FROM runs ORDER BY rowid",
    )?;
    let rows = stmt.query_map([], |r| {
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
            r.get::<_, Option<i64>>(8)?.map(|f| f as u64),
        ))
    })?;
    rows.collect()
}

/// A row that fails its checksum, as damage named by its key.
fn bad_row(table: &str, run: u64, worker: u32, seq: u64) -> Damage {
    Damage {
        at: Place::row(
            table,
            &[
                ("run", run as i64),
                ("worker", worker as i64),
                ("seq", seq as i64),
            ],
        ),
        defect: Defect::RowChecksum,
        writer: Writer::Worker { worker, seq },
    }
}

/// A run's events, in worker and sequence order; rows failing their checksum go to `damaged`.
fn load_events(conn: &Connection, run: &mut RunHistory) -> rusqlite::Result<()> {
    let id = run.info.run;
    let mut stmt = conn.prepare(
        "SELECT worker, seq, slot, read, votes_after, retries, invoke_ns, complete_ns, hash, crc
         FROM events WHERE run = ?1 ORDER BY worker, seq",
    )?;
    let mut rows = stmt.query([id as i64])?;
    while let Some(r) = rows.next()? {
        let e = Event {
            run: id,
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
        if event_crc(&e) == r.get::<_, u32>(9)? {
            run.events.push(e);
        } else {
            run.damaged.push(bad_row("events", id, e.worker, e.seq));
        }
    }
    Ok(())
}

/// A run's transfers, in worker and sequence order; rows failing their checksum go to
/// `damaged`.
fn load_transfers(conn: &Connection, run: &mut RunHistory) -> rusqlite::Result<()> {
    let id = run.info.run;
    let mut stmt = conn.prepare(
        "SELECT worker, seq, from_account, to_account, amount, from_version, from_before,
                to_version, to_before, invoke_ns, complete_ns, crc
         FROM transfers WHERE run = ?1 ORDER BY worker, seq",
    )?;
    let mut rows = stmt.query([id as i64])?;
    while let Some(r) = rows.next()? {
        let t = Transfer {
            worker: r.get(0)?,
            seq: r.get::<_, i64>(1)? as u64,
            from: r.get(2)?,
            to: r.get(3)?,
            amount: r.get(4)?,
            from_version: r.get(5)?,
            from_before: r.get::<_, i64>(6)? as i32 as u32,
            to_version: r.get(7)?,
            to_before: r.get::<_, i64>(8)? as i32 as u32,
            invoke_ns: r.get::<_, i64>(9)? as u64,
            complete_ns: r.get::<_, i64>(10)? as u64,
        };
        if transfer_crc(&t) == r.get::<_, u32>(11)? {
            run.transfers.push(t);
        } else {
            run.damaged.push(bad_row("transfers", id, t.worker, t.seq));
        }
    }
    Ok(())
}

/// A run's slots: the stored value of each (the initial value where its row is missing), the
/// region's final values where every one is there, and how many rows there are.
type Slots = (Vec<u32>, Vec<Option<u32>>, u64);

fn load_slots(conn: &Connection, info: &RunInfo) -> rusqlite::Result<Slots> {
    let n = info.slots as usize;
    let (mut stored, mut finals) = (vec![info.initial; n], vec![None; n]);
    let mut rows = 0;
    let mut stmt =
        conn.prepare("SELECT slot, value, region_value FROM slots WHERE run = ?1 ORDER BY slot")?;
    let mut q = stmt.query([info.run as i64])?;
    while let Some(r) = q.next()? {
        rows += 1;
        let slot = r.get::<_, i64>(0)?;
        if let Some(s) = usize::try_from(slot).ok().filter(|&s| s < n) {
            stored[s] = r.get(1)?;
            finals[s] = r.get(2)?;
        }
    }
    Ok((stored, finals, rows))
}

/// Each worker's acknowledged count, where its row is there.
fn load_workers(conn: &Connection, info: &RunInfo) -> rusqlite::Result<Vec<Option<u64>>> {
    let mut completed = vec![None; info.workers as usize];
    let mut stmt =
        conn.prepare("SELECT worker, completed FROM workers WHERE run = ?1 ORDER BY worker")?;
    let mut q = stmt.query([info.run as i64])?;
    while let Some(r) = q.next()? {
        let worker = r.get::<_, i64>(0)?;
        if let Some(w) = usize::try_from(worker)
            .ok()
            .filter(|&w| w < completed.len())
        {
            completed[w] = Some(r.get::<_, i64>(1)? as u64);
        }
    }
    Ok(completed)
}

/// The run's end when every part of it is there, else what is missing.
fn end_of(
    run: &mut RunHistory,
    fingerprint: Option<u64>,
    finals: Vec<Option<u32>>,
    completed: Vec<Option<u64>>,
) {
    let no_finals = finals.iter().filter(|f| f.is_none()).count() as u32;
    let no_acks = completed.iter().filter(|c| c.is_none()).count() as u32;
    if let (Some(fingerprint), 0, 0) = (fingerprint, no_finals, no_acks) {
        run.end = Some(RunEnd {
            run: run.info.run,
            fingerprint,
            finals: finals.into_iter().flatten().collect(),
            completed: completed.into_iter().flatten().collect(),
            // Refused with deaths (see `Config::validate`): nobody was killed.
            killed: Vec::new(),
        });
        return;
    }
    let nothing =
        fingerprint.is_none() && no_finals == run.info.slots && no_acks == run.info.workers;
    run.missing = if nothing {
        vec![Missing::End]
    } else {
        let mut m = Vec::new();
        if fingerprint.is_none() {
            m.push(Missing::Fingerprint);
        }
        if no_finals > 0 {
            m.push(Missing::FinalValues { slots: no_finals });
        }
        if no_acks > 0 {
            m.push(Missing::Acknowledged { workers: no_acks });
        }
        m
    };
}

/// Rows of runs that have no `runs` row, grouped by run.
fn load_orphans(conn: &Connection) -> rusqlite::Result<Vec<Orphans>> {
    let mut by_run: std::collections::BTreeMap<i64, Orphans> = Default::default();
    for table in ["events", "transfers", "reads", "slots", "workers"] {
        let mut stmt = conn.prepare(&format!(
            "SELECT run, count(*) FROM {table}
             WHERE run NOT IN (SELECT run FROM runs) GROUP BY run"
        ))?;
        let mut q = stmt.query([])?;
        while let Some(r) = q.next()? {
            let (run, n): (i64, i64) = (r.get(0)?, r.get(1)?);
            let o = by_run.entry(run).or_insert_with(|| Orphans {
                run: Some(run as u64),
                ..Orphans::default()
            });
            let n = n as u64;
            match table {
                "events" => o.events += n,
                "transfers" => o.transfers += n,
                "reads" => o.reads += n,
                _ => o.ends += n,
            }
        }
    }
    Ok(by_run.into_values().collect())
}

/// A run's reads, one batch per run of consecutive reads of a worker (a missing row starts a
/// new batch, which verify then reports as a sequence error).
fn load_reads(conn: &Connection, run: u64) -> rusqlite::Result<Vec<Reads>> {
    let mut stmt = conn.prepare(
        "SELECT worker, seq, value, related_lo, related_hi
         FROM reads WHERE run = ?1 ORDER BY worker, seq",
    )?;
    let mut batches: Vec<Reads> = Vec::new();
    let mut rows = stmt.query([run as i64])?;
    while let Some(r) = rows.next()? {
        let (worker, seq): (u32, u64) = (r.get(0)?, r.get::<_, i64>(1)? as u64);
        let seen = Seen {
            value: r.get(2)?,
            lo: r.get(3)?,
            hi: r.get(4)?,
        };
        match batches.last_mut() {
            Some(b) if b.worker == worker && b.first + b.seen.len() as u64 == seq => {
                b.seen.push(seen)
            }
            _ => batches.push(Reads {
                worker,
                first: seq,
                seen: vec![seen],
            }),
        }
    }
    Ok(batches)
}
