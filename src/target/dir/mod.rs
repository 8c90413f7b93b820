//! `dir:PATH`: a directory on a real file system, each slot (or the record) a file.
//!
//! A run's files (see `files` for their names, `format` for what they hold):
//!
//! | file            | holds                                                            |
//! | --------------- | ---------------------------------------------------------------- |
//! | `slot-S`        | slot S's value line; with `append`, then one increment per update |
//! | `slot-S-vV`     | `link-cas`: version V of slot S, an empty file ([`link_cas`])    |
//! | `record`        | `--scenario record`: one value line per field                    |
//! | `record-vN`     | record `link-cas`: the record's N-th version, every field        |
//! | `record-head`   | record `link-cas`: the newest version a winner wrote (a hint)    |
//! | `field-J`       | record `field-files`: field J's increments                       |
//! | `tmp-W`         | `link-cas`: worker W's next version, before it is claimed        |
//!
//! A counter slot's value is its value line, plus its increments, raised to its highest
//! version; a record field's is its value in the newest record version plus its own file's
//! increments. Each strategy writes one of these only, so the sum is the one it changed.
//!
//! The counter's strategies, one per way an application adds 1 to a number in a file:
//!
//! | strategy   | one update                                                            |
//! | ---------- | --------------------------------------------------------------------- |
//! | `racy`     | read the value, close, open, write value+1 (after `--race-window` spins): the bug |
//! | `flock`    | the same inside `flock(LOCK_EX)` on the slot's file                    |
//! | `fcntl`    | the same inside an OFD lock (`F_OFD_SETLKW`) on it (`lock`)          |
//! | `link-cas` | a new version of the slot, claimed by `link(2)` ([`link_cas`])         |
//! | `append`   | one `O_APPEND` increment record; the value is the line plus the records |
//!
//! `--scenario record` (the file-store incident: API workers each changing one field of a
//! user's record file) keeps the record in one file, and worker w changes field w mod F:
//!
//! | fix            | one update                                                        |
//! | -------------- | ----------------------------------------------------------------- |
//! | `whole-record` | read every field, close, change one, open, write every field back: the bug |
//! | `flock`        | the same inside `flock(LOCK_EX)` on the record file               |
//! | `link-cas`     | a new version of the whole record, claimed by `link(2)`           |
//! | `field-files`  | one `O_APPEND` increment to the field's own file: nothing shared  |
//!
//! Value lines are rewritten in place (`pwrite` at their offset): a file that never grows
//! never fails on a full disk. What grows is an append, a version and a temporary file; when
//! it cannot (ENOSPC, or EFBIG past `RLIMIT_FSIZE`: a worker blocks SIGXFSZ so the write fails
//! instead of killing it), the session fails the run (`UpdateError::Fatal`, exit 4), never a
//! verdict. A local file system answers every call, so no outcome is ever unknown.
//!
//! `--fsync`, what each promises once the run reports:
//!
//! - `every`: each update is on disk before it is acknowledged: the file fdatasync'd after its
//!   write (inside the lock, for the locks); a `link-cas` version's content (a record's) before
//!   its link and the directory after it; a new file's directory entry after its creation.
//! - `end` (the default): the parent, after reaping every worker ([`Target::settle`]), fdatasyncs
//!   every file of the run and fsyncs the directory once. A crash during the run may lose any
//!   of it; a crash after the summary loses nothing.
//! - `never`: the page cache decides (the kernel writes back within its dirty expiry, about
//!   30 s by default); a crash of the machine may lose any of it, a crash of racepool nothing.
//!
//! What a run leaves is its record: one file per slot (the record file, and with
//! `field-files` one per field), holding the final values for the user to inspect, until
//! [`Target::clean`] (`torture clean dir:PATH [--run ID]`) removes it. `settle` removes every
//! temporary file and folds every version chain into its base file after the reap.

mod files;
mod format;
pub mod link_cas;
mod lock;

use std::fs::File;
use std::io::{self, Seek, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use nix::sys::signal::{SigSet, Signal};

use self::files::{fatal, Name, RunFiles};
use self::format::{Unreadable, INCREMENT, VALUE};
use self::link_cas::{Chain, LinkCas};
use self::lock::FileLock;
use super::{EventDraft, Holds, RunShape, Session, Target, TargetKind, UpdateError};
use crate::error::Error;
use crate::store::Fsync;
use crate::strategy::{Applied, StrategyKind};

/// The counter's strategies, the bug first.
const COUNTER: [StrategyKind; 5] = [
    StrategyKind::Racy,
    StrategyKind::Flock,
    StrategyKind::Fcntl,
    StrategyKind::LinkCas,
    StrategyKind::Append,
];

/// The mechanisms of the record's variants (whole-record, flock, link-cas, field-files).
const RECORD: [StrategyKind; 4] = [
    StrategyKind::Racy,
    StrategyKind::Flock,
    StrategyKind::LinkCas,
    StrategyKind::Append,
];

/// A directory of slot files.
#[derive(Clone, Debug)]
pub struct Dir {
    path: PathBuf,
}

impl Dir {
    pub fn new(path: PathBuf) -> Dir {
        Dir { path }
    }

    fn files(&self, run: u64) -> RunFiles {
        RunFiles {
            dir: self.path.clone(),
            run,
        }
    }

    fn unusable(&self, why: impl std::fmt::Display) -> Error {
        Error::Usage(format!("--target dir:{}: {why}", self.path.display()))
    }

    fn failed(doing: &str, path: &Path, e: impl std::fmt::Display) -> Error {
        Error::TargetFailed(format!("{doing} {}: {e}", path.display()))
    }

    /// What `create` makes: each file with its content.
    fn made(&self, shape: &RunShape) -> Vec<(PathBuf, Vec<u8>)> {
        let files = self.files(shape.run);
        match shape.holds {
            Holds::Counters | Holds::Poll | Holds::Cache => (0..shape.slots as u32)
                .map(|s| {
                    let line = format::value_line(shape.initial).to_vec();
                    (files.path(Name::Slot(s)), line)
                })
                .collect(),
            Holds::Record => vec![(
                files.path(Name::Record),
                format::value_lines(&vec![shape.initial; shape.slots]),
            )],
        }
    }

    /// Folds `chain` into its base file: the head's value (or fields) written there and
    /// synced, then every version unlinked. Only after the reap (see `link_cas`).
    fn fold(files: &RunFiles, chain: Chain, shape: &RunShape) -> Result<bool, Error> {
        let initial = shape.initial;
        let base_path = chain.version(files, initial, chain.base(initial));
        let lookup = |e| Dir::failed("looking up versions of", &base_path, e);
        if !chain.has_versions(files, initial).map_err(lookup)? {
            return Ok(false);
        }
        let hint_path = match chain {
            Chain::Slot(s) => files.path(Name::Slot(s)),
            Chain::Record => files.path(Name::RecordHead),
        };
        // Every writer is gone: the hint is whole, and it names a version a winner made; it
        // is checked all the same, since the walk must start at a version that exists.
        let first = chain.base(initial) + 1;
        let hint = File::open(&hint_path)
            .ok()
            .and_then(|f| link_cas::read_hint(&f))
            .filter(|&h| h > first);
        let start = match hint {
            Some(h) if link_cas::exists(&chain.version(files, initial, h)).map_err(lookup)? => h,
            _ => first,
        };
        let head = chain.head_from(files, initial, start).map_err(lookup)?;
        let content = match chain {
            Chain::Slot(_) => format::value_line(head).to_vec(),
            Chain::Record => {
                let path = chain.version(files, initial, head);
                let mut values = vec![0u32; shape.slots];
                File::open(&path)
                    .map_err(Unreadable::Io)
                    .and_then(|f| format::read_values(&f, &mut values))
                    .map_err(|e| Dir::failed("reading", &path, e))?;
                format::value_lines(&values)
            }
        };
        File::options()
            .write(true)
            .open(&base_path)
            .and_then(|f| {
                f.write_all_at(&content, 0)?;
                if shape.fsync != Fsync::Never {
                    f.sync_data()?;
                }
                Ok(())
            })
            .map_err(|e| Dir::failed("writing", &base_path, e))?;
        for n in chain.base(initial) + 1..=head {
            let path = chain.version(files, initial, n);
            remove_if_there(&path).map_err(|e| Dir::failed("removing", &path, e))?;
        }
        Ok(true)
    }

    /// Every file a settled run has, for `--fsync end`.
    fn settled_files(&self, shape: &RunShape) -> Vec<PathBuf> {
        let files = self.files(shape.run);
        match shape.holds {
            Holds::Counters | Holds::Poll | Holds::Cache => (0..shape.slots as u32)
                .map(|s| files.path(Name::Slot(s)))
                .collect(),
            Holds::Record => std::iter::once(files.path(Name::Record))
                .chain((0..shape.slots as u32).map(|j| files.path(Name::Field(j))))
                .collect(),
        }
    }
}

fn remove_if_there(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

impl Target for Dir {
    type Session = DirSession;

    fn kind(&self) -> TargetKind {
        TargetKind::Dir
    }

    fn strategies(&self) -> &'static [StrategyKind] {
        &COUNTER
    }

    fn strategies_for(&self, holds: Holds) -> &'static [StrategyKind] {
        match holds {
            Holds::Counters => &COUNTER,
            Holds::Poll | Holds::Cache => &[],
            Holds::Record => &RECORD,
        }
    }

    fn preflight(&self, shape: &RunShape, strategies: &[StrategyKind]) -> Result<(), Error> {
        let implemented = self.strategies_for(shape.holds);
        if let Some(s) = strategies.iter().find(|s| !implemented.contains(s)) {
            return Err(self.unusable(format!("it has no strategy {}", s.name())));
        }
        let meta = std::fs::metadata(&self.path).map_err(|e| self.unusable(e))?;
        if !meta.is_dir() {
            return Err(self.unusable("not a directory"));
        }
        // Write access is what the run needs; `access(2)` says yes to root on a read-only
        // mount, so try it: create and remove a file of our own.
        let probe = self
            .path
            .join(format!("racepool-probe-{}", std::process::id()));
        File::options()
            .write(true)
            .create_new(true)
            .open(&probe)
            .map_err(|e| self.unusable(format!("not writable: {e}")))?;
        std::fs::remove_file(&probe).map_err(|e| self.unusable(format!("not writable: {e}")))
    }

    fn create(&self, shape: &RunShape) -> Result<(), Error> {
        let made = self.made(shape);
        for (i, (path, content)) in made.iter().enumerate() {
            let done = File::options()
                .write(true)
                .create_new(true)
                .open(path)
                .and_then(|f| {
                    f.write_all_at(content, 0)?;
                    if shape.fsync == Fsync::Every {
                        f.sync_data()?;
                    }
                    Ok(())
                });
            if let Err(e) = done {
                // Leave nothing half made.
                for (p, _) in &made[..=i] {
                    let _ = std::fs::remove_file(p);
                }
                return Err(self.unusable(format!("creating {}: {e}", path.display())));
            }
        }
        if shape.fsync == Fsync::Every {
            self.files(shape.run)
                .sync_dir()
                .map_err(|e| self.unusable(format!("syncing the directory: {e}")))?;
        }
        Ok(())
    }

    fn connect(
        &self,
        shape: &RunShape,
        worker: usize,
        strategy: StrategyKind,
    ) -> Result<DirSession, UpdateError> {
        if !self.strategies_for(shape.holds).contains(&strategy) {
            return Err(UpdateError::Fatal(format!(
                "dir has no strategy {}",
                strategy.name()
            )));
        }
        // A file that cannot grow past RLIMIT_FSIZE is an error the session reports (EFBIG),
        // not a SIGXFSZ that kills the worker.
        let mut xfsz = SigSet::empty();
        xfsz.add(Signal::SIGXFSZ);
        xfsz.thread_block()
            .map_err(|e| UpdateError::Fatal(format!("blocking SIGXFSZ: {e}")))?;
        DirSession::new(self.files(shape.run), shape, worker, strategy)
    }

    fn settle(&self, shape: &RunShape) -> Result<(), Error> {
        let files = self.files(shape.run);
        // Every worker is reaped: a temporary file left is a dead (or failed) worker's.
        for w in 0..shape.workers as u32 {
            let path = files.path(Name::Temp(w));
            remove_if_there(&path).map_err(|e| Dir::failed("removing", &path, e))?;
        }
        let chains: Vec<Chain> = match shape.holds {
            Holds::Counters | Holds::Poll | Holds::Cache => {
                (0..shape.slots as u32).map(Chain::Slot).collect()
            }
            Holds::Record => vec![Chain::Record],
        };
        let mut folded = false;
        for chain in chains {
            folded |= Dir::fold(&files, chain, shape)?;
        }
        if shape.holds == Holds::Record {
            let head = files.path(Name::RecordHead);
            remove_if_there(&head).map_err(|e| Dir::failed("removing", &head, e))?;
        }
        let dir_synced = match shape.fsync {
            Fsync::Never => false,
            Fsync::Every => folded,
            Fsync::End => {
                for path in self.settled_files(shape) {
                    match File::open(&path) {
                        Ok(f) => f
                            .sync_data()
                            .map_err(|e| Dir::failed("syncing", &path, e))?,
                        // A field file the run never made.
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => return Err(Dir::failed("opening", &path, e)),
                    }
                }
                true
            }
        };
        if dir_synced {
            files
                .sync_dir()
                .map_err(|e| Dir::failed("syncing", &self.path, e))?;
        }
        Ok(())
    }

    fn finals(&self, shape: &RunShape) -> Result<Vec<u32>, Error> {
        let files = self.files(shape.run);
        let initial = shape.initial;
        match shape.holds {
            Holds::Counters | Holds::Poll | Holds::Cache => (0..shape.slots as u32)
                .map(|s| {
                    let path = files.path(Name::Slot(s));
                    let value = slot_value(&path).map_err(|e| Dir::failed("reading", &path, e))?;
                    Chain::Slot(s)
                        .head_from(&files, initial, value)
                        .map_err(|e| Dir::failed("looking up versions of", &path, e))
                })
                .collect(),
            Holds::Record => {
                let chain = Chain::Record;
                let head = chain
                    .head_from(&files, initial, 0)
                    .map_err(|e| Dir::failed("looking up versions of", &files.dir, e))?;
                let path = chain.version(&files, initial, head);
                let mut values = vec![0u32; shape.slots];
                File::open(&path)
                    .map_err(Unreadable::Io)
                    .and_then(|f| format::read_values(&f, &mut values))
                    .map_err(|e| Dir::failed("reading", &path, e))?;
                for (j, v) in values.iter_mut().enumerate() {
                    let path = files.path(Name::Field(j as u32));
                    let added = match std::fs::metadata(&path) {
                        Ok(m) => format::increments(m.len(), 0)
                            .map_err(|e| Dir::failed("reading", &path, e))?,
                        Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
                        Err(e) => return Err(Dir::failed("reading", &path, e)),
                    };
                    *v = v.wrapping_add(added as u32);
                }
                Ok(values)
            }
        }
    }

    fn clean(&self, run: Option<u64>) -> Result<u64, Error> {
        let mut runs = std::collections::BTreeSet::new();
        let entries = std::fs::read_dir(&self.path).map_err(|e| self.unusable(e))?;
        for entry in entries {
            let entry = entry.map_err(|e| self.unusable(e))?;
            let name = entry.file_name();
            let Some((found, _)) = files::parse(&name.to_string_lossy()) else {
                continue;
            };
            if run.is_none_or(|r| r == found) {
                remove_if_there(&entry.path()).map_err(|e| {
                    self.unusable(format!("removing {}: {e}", name.to_string_lossy()))
                })?;
                runs.insert(found);
            }
        }
        Ok(runs.len() as u64)
    }
}

/// A counter slot's value line plus its increments.
fn slot_value(path: &Path) -> Result<u32, Unreadable> {
    let file = File::open(path)?;
    let mut value = [0u32];
    format::read_values(&file, &mut value)?;
    let added = format::increments(file.metadata()?.len(), VALUE)?;
    Ok(value[0].wrapping_add(added as u32))
}

/// How one session updates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum How {
    /// Read the value line(s), write them back with one changed: unlocked (the bug) or under
    /// a lock.
    Rewrite(Option<FileLock>),
    /// A new version, claimed by `link(2)` (the session's `chains`).
    LinkCas,
    Append,
}

/// How a session opens the file it keeps.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Open {
    ReadWrite,
    /// `O_APPEND`, creating the file when `create` (a field file, made by its first update).
    Append {
        create: bool,
    },
}

/// A worker's session: the run's files, the strategy, and the file of its last update kept
/// open (one: a thousand workers of a thousand slots never hold a million descriptors).
pub struct DirSession {
    files: RunFiles,
    worker: usize,
    how: How,
    holds: Holds,
    /// Value lines of the file a rewrite rewrites: 1 for a slot, F for the record.
    lines: usize,
    initial: u32,
    /// Spins between the read and the write of an unlocked rewrite (`--race-window`).
    window: u32,
    /// `--fsync every`.
    sync: bool,
    kept: Option<(Name, File)>,
    /// `link-cas`: what this worker has proven of each chain.
    chains: LinkCas,
    /// This session's updates so far: the number its next increment record names.
    updates: u64,
    values: Vec<u32>,
}

impl DirSession {
    fn new(
        files: RunFiles,
        shape: &RunShape,
        worker: usize,
        strategy: StrategyKind,
    ) -> Result<DirSession, UpdateError> {
        let sync = shape.fsync == Fsync::Every;
        let how = match strategy {
            StrategyKind::Racy => How::Rewrite(None),
            StrategyKind::Flock => How::Rewrite(Some(FileLock::Flock)),
            StrategyKind::Fcntl => How::Rewrite(Some(FileLock::Ofd)),
            StrategyKind::Append => How::Append,
            StrategyKind::LinkCas => How::LinkCas,
            other => unreachable!("checked by connect: dir has no {}", other.name()),
        };
        // `every`: the directory, synced after each version a link makes.
        let dir = if sync && how == How::LinkCas {
            Some(File::open(&files.dir).map_err(|e| fatal("opening", &files.dir, e))?)
        } else {
            None
        };
        let lines = match shape.holds {
            Holds::Counters | Holds::Poll | Holds::Cache => 1,
            Holds::Record => shape.slots,
        };
        let chains = LinkCas::new(files.clone(), worker, shape.initial, dir);
        Ok(DirSession {
            files,
            worker,
            how,
            holds: shape.holds,
            lines,
            initial: shape.initial,
            window: shape.race_window,
            sync,
            kept: None,
            chains,
            updates: 0,
            values: vec![0; lines],
        })
    }

    /// The file `name`, the kept one if it is that, else opened now.
    fn take(&mut self, name: Name, open: Open) -> Result<File, UpdateError> {
        if let Some((kept, file)) = self.kept.take() {
            if kept == name {
                return Ok(file);
            }
        }
        let path = self.files.path(name);
        let mut options = File::options();
        match open {
            Open::ReadWrite => options.read(true).write(true),
            Open::Append { create } => options.append(true).create(create),
        };
        let file = options
            .open(&path)
            .map_err(|e| fatal("opening", &path, e))?;
        if matches!(open, Open::Append { create: true }) && self.sync {
            // The entry of a file this update may have created.
            self.files
                .sync_dir()
                .map_err(|e| fatal("syncing", &self.files.dir, e))?;
        }
        Ok(file)
    }

    fn keep(&mut self, name: Name, file: File) {
        self.kept = Some((name, file));
    }

    /// A read-modify-write of value line `index` of `name`, under `lock` or not; `won` is
    /// called before the lock is released.
    fn rewrite(
        &mut self,
        name: Name,
        index: usize,
        lock: Option<FileLock>,
        won: &mut impl FnMut(&Applied),
    ) -> Result<Applied, UpdateError> {
        let path = self.files.path(name);
        let file = self.take(name, Open::ReadWrite)?;
        let (held, contended) = lock::take(file, lock).map_err(|e| fatal("locking", &path, e))?;
        format::read_values(held.file(), &mut self.values)
            .map_err(|e| fatal("reading", &path, e))?;
        let read = self.values[index];
        let held = match held {
            // The bug as an application writes it: it reads the file, closes it, and opens it
            // again to write; nothing holds the file between the read and the write.
            lock::Held::Unlocked(file) => {
                drop(file);
                for _ in 0..self.window {
                    std::hint::spin_loop();
                }
                lock::Held::Unlocked(self.take(name, Open::ReadWrite)?)
            }
            locked => locked,
        };
        self.values[index] = read.wrapping_add(1);
        let lines = format::value_lines(&self.values);
        held.file()
            .write_all_at(&lines, 0)
            .and_then(|()| {
                if self.sync {
                    held.file().sync_data()
                } else {
                    Ok(())
                }
            })
            .map_err(|e| fatal("writing", &path, e))?;
        let applied = Applied {
            read,
            written: read.wrapping_add(1),
            retries: contended as u32,
            waits: contended as u32,
            wakes: 0,
        };
        won(&applied);
        let file = held.release().map_err(|e| fatal("unlocking", &path, e))?;
        self.keep(name, file);
        Ok(applied)
    }

    /// One increment record appended to `name`, whose first `header` bytes are not records.
    fn append(&mut self, name: Name, header: usize) -> Result<Applied, UpdateError> {
        let path = self.files.path(name);
        let create = matches!(name, Name::Field(_));
        let mut file = self.take(name, Open::Append { create })?;
        let record = format::increment(self.worker, self.updates);
        // One write(2): with O_APPEND the kernel places it at the end, whole, under the
        // inode's lock; a short one is a file that could not grow, never retried.
        let wrote = file
            .write(&record)
            .map_err(|e| fatal("appending to", &path, e))?;
        if wrote != INCREMENT {
            return Err(fatal(
                "appending to",
                &path,
                format!("a short write ({wrote} of {INCREMENT} bytes): the file cannot grow"),
            ));
        }
        // The description's offset is the end of this record, whatever others appended since.
        let end = file
            .stream_position()
            .map_err(|e| fatal("appending to", &path, e))?;
        if self.sync {
            file.sync_data().map_err(|e| fatal("syncing", &path, e))?;
        }
        let count = format::increments(end, header).map_err(|e| fatal("reading", &path, e))?;
        self.keep(name, file);
        // Nothing rewrites the value line below an append (one strategy per run): initial.
        let written = self.initial.wrapping_add(count as u32);
        Ok(Applied {
            read: written.wrapping_sub(1),
            written,
            ..Applied::default()
        })
    }
}

impl Session for DirSession {
    fn update(&mut self, slot: u32, event: Option<EventDraft>) -> Result<Applied, UpdateError> {
        self.update_then(slot, event, |_| {})
    }

    fn update_then<F: FnOnce(&Applied)>(
        &mut self,
        slot: u32,
        _event: Option<EventDraft>,
        won: F,
    ) -> Result<Applied, UpdateError> {
        // A lock's rewrite calls it inside the lock; every other update once it is made.
        let mut won = Some(won);
        let mut inside = |a: &Applied| {
            if let Some(w) = won.take() {
                w(a)
            }
        };
        let applied = match (self.how, self.holds) {
            (How::Rewrite(lock), Holds::Counters | Holds::Poll | Holds::Cache) => {
                self.rewrite(Name::Slot(slot), 0, lock, &mut inside)?
            }
            (How::Rewrite(lock), Holds::Record) => {
                self.rewrite(Name::Record, slot as usize, lock, &mut inside)?
            }
            (How::Append, Holds::Counters | Holds::Poll | Holds::Cache) => {
                self.append(Name::Slot(slot), VALUE)?
            }
            (How::Append, Holds::Record) => self.append(Name::Field(slot), 0)?,
            (How::LinkCas, Holds::Counters | Holds::Poll | Holds::Cache) => {
                let file = self.take(Name::Slot(slot), Open::ReadWrite)?;
                let applied = self.chains.add_to_slot(slot, &file);
                self.keep(Name::Slot(slot), file);
                applied?
            }
            (How::LinkCas, Holds::Record) => self.chains.add_to_field(slot as usize, self.lines)?,
        };
        self.updates += 1;
        inside(&applied);
        Ok(applied)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory under the system's temp dir, removed when dropped.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Scratch {
            let path =
                std::env::temp_dir().join(format!("racepool-unit-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).unwrap();
            Scratch(path)
        }
        fn names(&self) -> Vec<String> {
            let mut names: Vec<String> = std::fs::read_dir(&self.0)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn shape(run: u64, slots: usize, holds: Holds) -> RunShape {
        RunShape {
            run,
            slots,
            workers: 3,
            initial: 10,
            holds,
            fsync: Fsync::Never,
            ..RunShape::default()
        }
    }

    #[test]
    fn settle_removes_dead_workers_temporary_files_and_folds_each_chain() {
        let scratch = Scratch::new("settle");
        let dir = Dir::new(scratch.0.clone());
        let sh = shape(7, 2, Holds::Counters);
        dir.create(&sh).unwrap();
        let mut session = dir.connect(&sh, 0, StrategyKind::LinkCas).unwrap();
        for slot in [0, 1, 1] {
            session.update(slot, None).unwrap();
        }
        drop(session);
        let files = dir.files(7);
        // A worker that died holding its next version, another that died after its link.
        std::fs::write(files.path(Name::Temp(1)), format::increment(1, 0)).unwrap();
        std::fs::hard_link(
            files.path(Name::SlotVersion(1, 12)),
            files.path(Name::Temp(2)),
        )
        .unwrap();
        assert_eq!(dir.finals(&sh).unwrap(), vec![11, 12]);
        assert_eq!(scratch.names().len(), 2 + 3 + 2, "{:?}", scratch.names());
        dir.settle(&sh).unwrap();
        assert_eq!(
            scratch.names(),
            vec!["racepool-7-slot-0", "racepool-7-slot-1"],
            "only the slots are left"
        );
        assert_eq!(dir.finals(&sh).unwrap(), vec![11, 12], "folded, not lost");
    }

    #[test]
    fn a_stale_hint_costs_retries_and_a_torn_one_is_never_trusted() {
        let scratch = Scratch::new("hint");
        let dir = Dir::new(scratch.0.clone());
        let sh = shape(8, 1, Holds::Counters);
        dir.create(&sh).unwrap();
        let mut a = dir.connect(&sh, 0, StrategyKind::LinkCas).unwrap();
        let mut b = dir.connect(&sh, 1, StrategyKind::LinkCas).unwrap();
        assert_eq!(a.update(0, None).unwrap().written, 11);
        assert_eq!(a.update(0, None).unwrap().written, 12);
        let files = dir.files(8);
        let slot = files.path(Name::Slot(0));
        // A hint behind the head: b learns the head by EEXIST, one retry per version.
        std::fs::write(&slot, format::value_line(10)).unwrap();
        let applied = b.update(0, None).unwrap();
        assert_eq!(
            (applied.read, applied.written, applied.retries),
            (12, 13, 2)
        );
        // A hint read half-written, naming a version nobody made: a looks it up and keeps
        // what it proved (12), so it never links 100 over a gap.
        std::fs::write(&slot, format::value_line(99)).unwrap();
        let applied = a.update(0, None).unwrap();
        assert_eq!(
            (applied.read, applied.written, applied.retries),
            (13, 14, 1)
        );
        dir.settle(&sh).unwrap();
        assert_eq!(dir.finals(&sh).unwrap(), vec![14]);
    }

    #[test]
    fn each_record_fix_adds_to_its_own_field_and_leaves_only_its_files() {
        let scratch = Scratch::new("record");
        let dir = Dir::new(scratch.0.clone());
        for (run, strategy) in [
            (1, StrategyKind::Racy),
            (2, StrategyKind::Flock),
            (3, StrategyKind::LinkCas),
            (4, StrategyKind::Append),
        ] {
            let sh = shape(run, 3, Holds::Record);
            dir.create(&sh).unwrap();
            for w in 0..3 {
                let mut s = dir.connect(&sh, w, strategy).unwrap();
                for _ in 0..=w {
                    let a = s.update(w as u32, None).unwrap();
                    assert_eq!(a.written, a.read + 1, "{strategy:?}");
                }
            }
            dir.settle(&sh).unwrap();
            assert_eq!(dir.finals(&sh).unwrap(), vec![11, 12, 13], "{strategy:?}");
        }
        let left = scratch.names();
        let expected: Vec<String> = ["1-record", "2-record", "3-record"]
            .iter()
            .map(|n| format!("racepool-{n}"))
            .chain((0..3).map(|j| format!("racepool-4-field-{j}")))
            .chain(["racepool-4-record".to_string()])
            .collect();
        let mut expected = expected;
        expected.sort();
        assert_eq!(left, expected);
        assert_eq!(dir.clean(Some(3)).unwrap(), 1);
        assert_eq!(dir.clean(None).unwrap(), 3);
        assert!(scratch.names().is_empty());
    }

    #[test]
    fn clean_removes_ours_only() {
        let scratch = Scratch::new("clean");
        let dir = Dir::new(scratch.0.clone());
        for name in ["notes.txt", "racepool-probe-1", "racepool-01-slot-0"] {
            std::fs::write(scratch.0.join(name), "not ours").unwrap();
        }
        dir.create(&shape(5, 2, Holds::Counters)).unwrap();
        dir.create(&shape(6, 1, Holds::Record)).unwrap();
        assert_eq!(dir.clean(None).unwrap(), 2);
        assert_eq!(
            scratch.names(),
            vec!["notes.txt", "racepool-01-slot-0", "racepool-probe-1"]
        );
    }
}
