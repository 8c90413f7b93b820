//! Where winning states are persisted: the event log (default) or SQLite.
//!
//! The parent prepares the store before the first fork and writes each run's header and end;
//! every worker opens its own file or connection after the fork (a connection carried across
//! `fork` would share its file locks and buffers with the parent) and persists each update it
//! wins through [`Recorder::won`], which the strategies reach through the probe: inside the
//! critical section for the lock strategies, right after the winning step for the others.
//! Scenarios that are not counters use [`Recorder::transfer`] (a ledger transfer) and
//! [`Recorder::read`] (a cache read, batched into one `Reads` record per 256).
//!
//! A worker whose write fails stops updating and reports the failure once; the parent turns it
//! into one error for the whole run (never an "exact" verdict).

pub mod log;
pub mod sqlite;

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::Ordering::{Acquire, Relaxed, SeqCst};
use std::sync::atomic::{AtomicU32, AtomicU64};

use serde::Serialize;

use crate::clock::now_ns;
use crate::error::Error;
use crate::history::event::ChainKey;
use crate::history::{Event, Reads, Record, RunEnd, RunInfo, Seen, Transfer};
use crate::region::{Note, Shareable, SharedBlock};

/// `--store log:PATH` or `--store sqlite:PATH`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "path", rename_all = "kebab-case")]
pub enum StoreSpec {
    Log(PathBuf),
    Sqlite(PathBuf),
}

impl FromStr for StoreSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once(':') {
            Some(("log", p)) if !p.is_empty() => Ok(StoreSpec::Log(p.into())),
            Some(("sqlite", p)) if !p.is_empty() => Ok(StoreSpec::Sqlite(p.into())),
            _ => Err(format!("'{s}': expected log:PATH or sqlite:PATH")),
        }
    }
}

impl StoreSpec {
    pub fn path(&self) -> &Path {
        match self {
            StoreSpec::Log(p) | StoreSpec::Sqlite(p) => p,
        }
    }
}

/// When the log is made durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Fsync {
    /// Never: the page cache decides (a crash of the machine may lose the tail).
    Never,
    /// Once, by the parent, after every worker has exited and again after the run's end.
    End,
    /// Every record is written and fdatasync'd before its update is acknowledged.
    Every,
}

/// How SQLite's `slots.value` is written after a correct in-memory update.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Persist {
    /// `UPDATE slots SET value = ?`: two winners persisting out of order roll the value back.
    Blind,
    /// `UPDATE slots SET value = max(value, ?)`: a stored value never goes down.
    Monotonic,
}

impl Persist {
    pub fn name(self) -> &'static str {
        match self {
            Persist::Blind => "blind",
            Persist::Monotonic => "monotonic",
        }
    }
}

/// Everything about persistence one invocation was asked for.
#[derive(Clone, Debug, Serialize)]
pub struct StoreConfig {
    pub spec: StoreSpec,
    pub fsync: Fsync,
    pub persist: Persist,
    /// Events a worker buffers before one write (log) or one transaction (SQLite).
    pub batch: u32,
    /// For tests: every worker's first update waits, before it persists, until every worker
    /// has made its first update; then they persist newest first. Scripts the out-of-order
    /// persistence that rolls a blind `UPDATE` back, on every run (atomic or cas, one slot).
    pub hold_before_persist: bool,
}

impl StoreConfig {
    /// Empties (or creates) the store. Called once per invocation, before any run: a store
    /// that cannot be made is bad input (`--store`), exit 2.
    pub fn prepare(&self) -> Result<(), Error> {
        let fail = |e: String| {
            Error::Usage(format!(
                "--store: cannot create {}: {e}",
                self.spec.path().display()
            ))
        };
        match &self.spec {
            StoreSpec::Log(p) => log::LogWriter::create(p, self.fsync)
                .map(drop)
                .map_err(|e| fail(e.to_string())),
            StoreSpec::Sqlite(p) => sqlite::create(p).map_err(fail),
        }
    }

    /// Closes the store after the invocation's last run: a store without this record was not
    /// finished (a crash, a cut), and a run cut off whole shows only there.
    pub fn close(&self, runs: u64) -> Result<(), Error> {
        let fail = |e: String| Error::Store(format!("closing {}: {e}", self.spec.path().display()));
        match &self.spec {
            StoreSpec::Log(p) => {
                let mut w =
                    log::LogWriter::open(p, self.fsync, 1).map_err(|e| fail(e.to_string()))?;
                w.append(&Record::Close(crate::history::Close { runs }))
                    .and_then(|_| w.finish())
                    .map_err(|e| fail(e.to_string()))
            }
            StoreSpec::Sqlite(p) => sqlite::close(p, runs).map_err(fail),
        }
    }

    fn persist_name(&self) -> &'static str {
        match self.spec {
            StoreSpec::Log(_) => "events",
            StoreSpec::Sqlite(_) => self.persist.name(),
        }
    }
}

/// The store's state shared by the parent and every worker of one run (a mapping of its own,
/// created before the first fork).
#[repr(C)]
pub struct StoreBlock {
    /// 0 until a worker's write fails; the first to set it (by CAS) writes `message`.
    failed: AtomicU32,
    /// Workers whose writes failed.
    failed_workers: AtomicU32,
    /// `hold_before_persist`: first updates made so far.
    first_made: AtomicU32,
    /// `hold_before_persist`: the value whose turn it is to be persisted (newest first).
    turn: AtomicU32,
    /// The first failure, in words ("worker 3: short write: …").
    message: Note<MESSAGE_BYTES>,
}

/// Bytes of the first failure's message.
const MESSAGE_BYTES: usize = 1020;

const _: () = assert!(std::mem::size_of::<StoreBlock>() == 16 + 4 + MESSAGE_BYTES);
const _: () = assert!(std::mem::align_of::<StoreBlock>() == 4);

// SAFETY: atomics and a `Note` only; zeroed, they say "nothing failed, nothing made yet, turn
// 0" (`begin` sets the turn before any worker exists), and each is used by its contract.
unsafe impl Shareable for StoreBlock {}

/// One run's store, shared by the parent and (inherited through fork) every worker.
pub struct RunStore {
    pub config: StoreConfig,
    pub info: RunInfo,
    block: SharedBlock<StoreBlock>,
}

impl std::fmt::Debug for RunStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunStore")
            .field("config", &self.config)
            .field("run", &self.info.run)
            .finish()
    }
}

impl RunStore {
    /// A fresh run id of 53 bits: SQLite's signed INTEGER holds it, and so does a JSON
    /// decoder that reads numbers as doubles (jq, JavaScript). The first of a process mixes
    /// the clock with the pid (at most 22 bits, into bits 31 and up); later ones count up
    /// from it, so one invocation's runs stay in order (SQLite lists them by id).
    pub fn new_run_id() -> u64 {
        const MASK: u64 = (1 << 53) - 1;
        static BASE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
        static COUNT: AtomicU64 = AtomicU64::new(0);
        let base = *BASE.get_or_init(|| (now_ns() ^ (u64::from(std::process::id()) << 31)) & MASK);
        // Relaxed: each fetch_add returns a distinct count; nothing else is published.
        (base + COUNT.fetch_add(1, Relaxed)) & MASK
    }

    /// Writes the run's header record. Before the first fork.
    pub fn begin(config: &StoreConfig, mut info: RunInfo) -> Result<RunStore, Error> {
        info.persist = config.persist_name().into();
        let block = SharedBlock::<StoreBlock>::new()?;
        // Newest first: the first updates wrote initial+1 ..= initial+workers.
        // Relaxed: no worker exists yet; fork orders it.
        block
            .turn
            .store(info.initial.wrapping_add(info.workers), Relaxed);
        let fail =
            |e: String| Error::Store(format!("writing to {}: {e}", config.spec.path().display()));
        match &config.spec {
            StoreSpec::Log(p) => {
                let mut w =
                    log::LogWriter::open(p, config.fsync, 1).map_err(|e| fail(e.to_string()))?;
                w.append(&Record::Run(info.clone()))
                    .and_then(|_| w.finish())
                    .map_err(|e| fail(e.to_string()))?;
            }
            StoreSpec::Sqlite(p) => sqlite::begin_run(p, &info).map_err(fail)?,
        }
        Ok(RunStore {
            config: config.clone(),
            info,
            block,
        })
    }

    /// Called by a worker whose store failed: the first one leaves its message.
    fn fail(&self, worker: usize, message: &str) {
        // Relaxed: a counter read by the parent after reaping (waitpid orders it).
        self.block.failed_workers.fetch_add(1, Relaxed);
        // Relaxed: only decides who writes the message; the message is published by the
        // Release store of its length inside `Note::publish`.
        if self
            .block
            .failed
            .compare_exchange(0, 1, Relaxed, Relaxed)
            .is_ok()
        {
            let mut text = format!("worker {worker}: {message}");
            if text.len() > MESSAGE_BYTES {
                let mut cut = MESSAGE_BYTES;
                while !text.is_char_boundary(cut) {
                    cut -= 1;
                }
                text.truncate(cut);
            }
            self.block.message.publish(text.as_bytes());
        }
    }

    /// The `hold_before_persist` script, around the persisting of a worker's first update.
    #[cold]
    fn persist_in_turn(&self, written: u32, persist: impl FnOnce()) {
        use crate::futex::{Scope, Shared};
        use std::time::Duration;
        let (made, turn) = (&self.block.first_made, &self.block.turn);
        let workers = self.info.workers;
        // SeqCst: test-only script; the simplest reasoning is worth more than speed here.
        if made.fetch_add(1, SeqCst) + 1 == workers {
            Shared::wake_all(made);
        }
        // A failed worker never takes its turn: give up the script rather than hang.
        let failed = || self.block.failed.load(SeqCst) != 0;
        loop {
            let n = made.load(SeqCst);
            if n >= workers || failed() {
                break;
            }
            crate::futex::shared_wait_for(made, n, Duration::from_millis(100));
        }
        loop {
            let t = turn.load(SeqCst);
            if t == written || failed() {
                break;
            }
            crate::futex::shared_wait_for(turn, t, Duration::from_millis(100));
        }
        persist();
        turn.store(written.wrapping_sub(1), SeqCst);
        Shared::wake_all(turn);
    }

    /// The first failure any worker reported, with how many failed.
    pub fn failure(&self) -> Option<String> {
        // Acquire: pairs with nothing stronger than the workers' exit (reaped before this);
        // the message itself is read with the Acquire inside `Note::read`.
        if self.block.failed.load(Acquire) == 0 {
            return None;
        }
        let n = self.block.failed_workers.load(Relaxed);
        let text = String::from_utf8_lossy(self.block.message.read()).into_owned();
        Some(format!(
            "{n} worker(s) could not persist to {}; first, {text}",
            self.config.spec.path().display()
        ))
    }

    /// Writes the run's end: the region's final values, their fingerprint and each worker's
    /// acknowledged updates. After every worker has been reaped.
    pub fn end(&self, end: &RunEnd) -> Result<(), Error> {
        let fail = |e: String| {
            Error::Store(format!(
                "writing to {}: {e}",
                self.config.spec.path().display()
            ))
        };
        match &self.config.spec {
            StoreSpec::Log(p) => {
                let mut w = log::LogWriter::open(p, self.config.fsync, 1)
                    .map_err(|e| fail(e.to_string()))?;
                // One fsync covers every worker's writes (one page cache), then the end record.
                w.sync()
                    .and_then(|_| w.append(&Record::End(end.clone())))
                    .and_then(|_| w.finish())
                    .map_err(|e| fail(e.to_string()))
            }
            StoreSpec::Sqlite(p) => sqlite::end_run(p, end).map_err(fail),
        }
    }
}

/// Where a worker's winning updates go, chosen once per run: nowhere ([`NoStore`], whose calls
/// compile to nothing) or the worker's [`Recorder`].
pub trait Persistence {
    /// Marks the start of the next update (its invoke time).
    fn begin(&self);
    /// Persists one winning update (see `Hooks::won`).
    fn won(&self, slot: usize, read: u32, written: u32, retries: u32);
    /// Persists one ledger transfer.
    fn transfer(&self, t: Transfer);
    /// Notes one cache read.
    fn read(&self, seen: Seen);
    /// True once a write failed: the worker stops updating.
    fn failed(&self) -> bool;
}

/// No store: nothing is persisted, and nothing of persisting is in the loop.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoStore;

impl Persistence for NoStore {
    #[inline(always)]
    fn begin(&self) {}
    #[inline(always)]
    fn won(&self, _: usize, _: u32, _: u32, _: u32) {}
    #[inline(always)]
    fn transfer(&self, _: Transfer) {}
    #[inline(always)]
    fn read(&self, _: Seen) {}
    #[inline(always)]
    fn failed(&self) -> bool {
        false
    }
}

impl Persistence for Recorder<'_> {
    #[inline]
    fn begin(&self) {
        self.invoke_ns.set(now_ns());
    }
    #[inline]
    fn won(&self, slot: usize, read: u32, written: u32, retries: u32) {
        Recorder::won(self, slot, read, written, retries)
    }
    #[inline]
    fn transfer(&self, t: Transfer) {
        Recorder::transfer(self, t)
    }
    #[inline]
    fn read(&self, seen: Seen) {
        Recorder::read(self, seen)
    }
    #[inline]
    fn failed(&self) -> bool {
        self.failed.get()
    }
}

enum Writer {
    Log(log::LogWriter),
    Sqlite(sqlite::SqliteWriter),
}

/// A worker's end of the store: opened after the fork, fed through [`Persistence`].
pub struct Recorder<'a> {
    store: &'a RunStore,
    worker: usize,
    writer: RefCell<Option<Writer>>,
    /// The run's hash chain, its run id hashed once.
    chain: ChainKey,
    seq: Cell<u64>,
    invoke_ns: Cell<u64>,
    /// A cache reader's reads not yet in a `Reads` record, and how many came before them.
    reads: RefCell<Reads>,
    failed: Cell<bool>,
}

/// Reads per `Reads` record: a read costs ~4 bytes, a frame 24.
const READS_PER_RECORD: usize = 256;

impl<'a> Recorder<'a> {
    /// Opens worker `worker`'s own file or connection. A failure is reported and the recorder
    /// is born failed (the worker then makes no update).
    pub fn open(store: &'a RunStore, worker: usize) -> Recorder<'a> {
        let c = &store.config;
        let batch = c.batch.max(1) as usize;
        let opened = match &c.spec {
            StoreSpec::Log(p) => log::LogWriter::open(p, c.fsync, batch)
                .map(Writer::Log)
                .map_err(|e| e.to_string()),
            StoreSpec::Sqlite(p) => {
                sqlite::SqliteWriter::open(p, store.info.run, c.persist, c.fsync, batch)
                    .map(Writer::Sqlite)
            }
        };
        let r = Recorder {
            store,
            worker,
            writer: RefCell::new(None),
            chain: ChainKey::of(store.info.run),
            seq: Cell::new(0),
            invoke_ns: Cell::new(0),
            reads: RefCell::new(Reads {
                worker: worker as u32,
                first: 0,
                seen: Vec::new(),
            }),
            failed: Cell::new(false),
        };
        match opened {
            Ok(w) => *r.writer.borrow_mut() = Some(w),
            Err(e) => r.fail(&format!("opening the store: {e}")),
        }
        r
    }

    fn fail(&self, message: &str) {
        if !self.failed.replace(true) {
            self.store.fail(self.worker, message);
        }
    }

    /// Persists one winning update (see `Probe::won`).
    #[inline]
    pub fn won(&self, slot: usize, read: u32, written: u32, retries: u32) {
        if self.failed.get() {
            return;
        }
        let run = self.store.info.run;
        let seq = self.seq.get();
        self.seq.set(seq + 1);
        let complete_ns = now_ns();
        let event = Event {
            run,
            worker: self.worker as u32,
            seq,
            slot: slot as u32,
            read,
            written,
            retries,
            invoke_ns: self.invoke_ns.get(),
            complete_ns,
            hash: self.chain.link(slot as u32, read, written),
        };
        let persist = || {
            let mut writer = self.writer.borrow_mut();
            let result = match writer.as_mut() {
                Some(Writer::Log(w)) => w.append(&Record::Event(event)).map_err(|e| e.to_string()),
                Some(Writer::Sqlite(w)) => w.append(event),
                None => Err("no store open".into()),
            };
            if let Err(e) = result {
                drop(writer);
                self.fail(&e);
            }
        };
        if seq == 0 && self.store.config.hold_before_persist {
            self.store.persist_in_turn(written, || {
                persist();
                // The script is about the order things reach the store: send it now.
                if let Err(e) = self.flush() {
                    self.fail(&e);
                }
            });
        } else {
            persist();
        }
    }

    /// Persists one ledger transfer (inside the transfer's locks for the lock fixes); its
    /// worker, sequence, invoke and completion times are the recorder's.
    #[inline]
    pub fn transfer(&self, mut t: Transfer) {
        if self.failed.get() {
            return;
        }
        t.worker = self.worker as u32;
        t.seq = self.seq.get();
        self.seq.set(t.seq + 1);
        t.invoke_ns = self.invoke_ns.get();
        t.complete_ns = now_ns();
        self.append(Record::Transfer(t));
    }

    /// Notes one cache read; a full batch becomes one `Reads` record.
    #[inline]
    pub fn read(&self, seen: Seen) {
        if self.failed.get() {
            return;
        }
        let mut reads = self.reads.borrow_mut();
        reads.seen.push(seen);
        if reads.seen.len() >= READS_PER_RECORD {
            let batch = Self::take_reads(&mut reads);
            drop(reads);
            self.append(Record::Reads(batch));
        }
    }

    fn take_reads(reads: &mut Reads) -> Reads {
        let seen = std::mem::replace(&mut reads.seen, Vec::with_capacity(READS_PER_RECORD));
        let batch = Reads {
            worker: reads.worker,
            first: reads.first,
            seen,
        };
        reads.first += batch.seen.len() as u64;
        batch
    }

    fn append(&self, record: Record) {
        let mut writer = self.writer.borrow_mut();
        let result = match writer.as_mut() {
            Some(Writer::Log(w)) => w.append(&record).map_err(|e| e.to_string()),
            Some(Writer::Sqlite(w)) => w.append_record(record),
            None => Err("no store open".into()),
        };
        if let Err(e) = result {
            drop(writer);
            self.fail(&e);
        }
    }

    fn flush(&self) -> Result<(), String> {
        match self.writer.borrow_mut().as_mut() {
            Some(Writer::Log(w)) => w.flush().map_err(|e| e.to_string()),
            Some(Writer::Sqlite(w)) => w.flush(),
            None => Ok(()),
        }
    }

    /// Writes what is still buffered. Called once, after the worker's last update.
    pub fn finish(&self) {
        if self.failed.get() {
            return;
        }
        let mut reads = self.reads.borrow_mut();
        if !reads.seen.is_empty() {
            let batch = Self::take_reads(&mut reads);
            drop(reads);
            self.append(Record::Reads(batch));
            if self.failed.get() {
                return;
            }
        } else {
            drop(reads);
        }
        let result = match self.writer.borrow_mut().as_mut() {
            // `end` durability is the parent's single fsync; `every` already synced each record.
            Some(Writer::Log(w)) => w.flush().map_err(|e| e.to_string()),
            Some(Writer::Sqlite(w)) => w.finish(),
            None => Ok(()),
        };
        if let Err(e) = result {
            self.fail(&e);
        }
    }
}
