//! `link-cas`: `link(2)` as a compare-and-set on a file system.
//!
//! A *chain* is a numbered sequence of immutable files: version `n` of a counter slot is the
//! file `slot-S-vN` (its number is the slot's value; the slot file itself stands for version
//! `initial`), version `n` of the record is `record-vN` (the record file is version 0). A
//! version's file is written in full under a temporary name first, and only then given its
//! version's name, by `link(2)`, which fails with EEXIST when the name exists: of all the
//! workers that try to make version n+1, exactly one succeeds. The chain's value is its
//! *head*, the highest version present.
//!
//! A slot's version is an empty file: its name is its value, so it costs an inode and a
//! directory entry, never a data block (a run makes one per update, see below). A record's
//! version holds every field.
//!
//! | name `…-vN` (N above the base) | meaning                                                 |
//! | ------------------------------ | ------------------------------------------------------- |
//! | absent                         | version N is not made yet (N > head)                    |
//! | present                        | version N was made, once, by the worker it names; it never changes again |
//!
//! A worker's own state, per chain: `proven`, the highest version it has seen exist (by its
//! own link, by an EEXIST, or by a lookup).
//!
//! One update, by worker w:
//!
//! 1. **base**: n = `proven`, raised to the chain's hint h when version h exists. The hint (the
//!    slot file's value line; `record-head`) is written by each winner after its link, without
//!    a lock: it may lag, go back, or even be read half-written (a read is not atomic with a
//!    concurrent write on Linux), so it is trusted only once its version is looked up.
//! 2. **write**: the temporary file `tmp-W` (created O_EXCL) gets the next version's content:
//!    for a slot, nothing, whatever n is, so one file serves every attempt; for the record,
//!    version n's fields with w's field plus 1, rewritten in place at every attempt.
//!    `--fsync every`: the record's is fdatasync'd, so that a name is never durable before its
//!    content.
//! 3. **claim**: `link(tmp-W, v(n+1))`.
//!    - *made*: w made version n+1: it read n and wrote n+1. `proven` = n+1; `every`: fsync
//!      the directory (the new name) before the update is acknowledged; then the hint.
//!    - *EEXIST*: another worker made n+1 first, which proves it exists: n = n+1 (the record:
//!      and on to the head by lookups, then its fields are read again), count a retry, go to 2
//!      (the slot: straight to 3).
//! 4. **release**: unlink `tmp-W` (the version keeps the inode).
//!
//! **Invariant**: the versions present are exactly base+1 ..= head, each made by one worker
//! from the version below it. *Once*: link refuses an existing name (`rename(2)` would not:
//! it replaces its target, and the last writer would win, which is the bug). *Contiguous*: a
//! worker links n+1 only when it has proven that n exists, so no number is skipped. Hence the
//! head minus the base is the number of updates made, and the update that made n+1 saw n: no
//! update is lost.
//!
//! **Versions are kept until the run ends.** A name, once used, must never be free again
//! while any worker runs: a worker whose `proven` is old (preempted, stopped) would link a
//! freed name and make one version twice, which is a lost update. So no version is pruned
//! during the run; after every worker is reaped, `Dir::settle` folds each chain (writes the
//! head into the slot or record file, syncs it, unlinks the versions). A run's directory holds
//! one version file per update until then.
//!
//! **A dead worker** leaves `tmp-W` (and, if it died between 3 and 4, the version it made,
//! which counts as its update in flight). `settle` removes every `tmp-*` of the run after the
//! reap; nothing else cleans a temporary file, since only the reap proves its owner gone.
//!
//! **What each step relies on.** `link(2)` creating a name atomically or failing with EEXIST,
//! which a local file system guarantees (the directory's lock is held across the lookup and
//! the insertion). The content reaching the page cache before the link: a reader who finds
//! the name finds the whole file. Nothing relies on the hint, on timing or on the directory's
//! listing order.
//!
//! **What NFS would break.** NFSv2/v3's LINK is not idempotent: when a reply is lost, the
//! client's retransmission can answer EEXIST for the client's own success; a worker would then
//! believe n+1 someone else's and link the same inode as n+2, counting one update twice. The
//! recipe open(2) gives for O_EXCL over NFS covers it, and [`Temp::claim`] follows it: on any
//! failure, the temporary file's link count says whether the link happened after all (2: it
//! did). What it does not cover: attribute and lookup caching (a cached "no such file" makes
//! the hint's lookup, `settle`'s walk and `finals` miss a version that exists, and the head
//! read too low), and several clients' caches of the hint and the record's contents, which
//! close-to-open consistency refreshes only at open. Run it on NFS and expect `finals` to be
//! wrong, not the claim.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::files::{fatal, Name, RunFiles};
use super::format::{self, VALUE};
use crate::strategy::Applied;
use crate::target::UpdateError;

/// One chain of versions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Chain {
    /// Slot S's versions, numbered by value; the slot file stands for version `initial`.
    Slot(u32),
    /// The record's versions, numbered from 1; the record file stands for version 0.
    Record,
}

impl Chain {
    /// The version the chain starts at, which its base file stands for.
    pub fn base(self, initial: u32) -> u32 {
        match self {
            Chain::Slot(_) => initial,
            Chain::Record => 0,
        }
    }

    /// The file of version `n` (the base file for the base).
    pub fn version(self, files: &RunFiles, initial: u32, n: u32) -> PathBuf {
        match self {
            _ if n == self.base(initial) => files.path(self.base_name()),
            Chain::Slot(s) => files.path(Name::SlotVersion(s, n)),
            Chain::Record => files.path(Name::RecordVersion(n)),
        }
    }

    fn base_name(self) -> Name {
        match self {
            Chain::Slot(s) => Name::Slot(s),
            Chain::Record => Name::Record,
        }
    }

    /// The head at or above `n`, a version known to exist: looks up n+1, n+2, … until one is
    /// missing (the versions are contiguous).
    pub fn head_from(self, files: &RunFiles, initial: u32, mut n: u32) -> io::Result<u32> {
        while exists(&self.version(files, initial, n + 1))? {
            n += 1;
        }
        Ok(n)
    }

    /// Whether the chain has any version above its base (the first would be base+1).
    pub fn has_versions(self, files: &RunFiles, initial: u32) -> io::Result<bool> {
        let base = self.base(initial);
        exists(&self.version(files, initial, base + 1))
    }
}

/// Whether `path` exists (as anything: a version is never a link of another kind).
pub fn exists(path: &Path) -> io::Result<bool> {
    match std::fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// How a claim ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// The version's name is now ours.
    Made,
    /// Another worker made that version first.
    Taken,
}

/// A worker's next version, under its temporary name `tmp-W` until a claim gives it its own.
pub struct Temp {
    path: PathBuf,
    file: File,
}

impl Temp {
    /// Creates the temporary file; it must not exist (only a reaped worker's can be left, and
    /// `settle` removes those).
    pub fn create(path: PathBuf) -> io::Result<Temp> {
        let file = File::options().write(true).create_new(true).open(&path)?;
        Ok(Temp { path, file })
    }

    /// Writes `content` from the start; every attempt of one update writes the same length.
    pub fn write(&self, content: &[u8], sync: bool) -> io::Result<()> {
        self.file.write_all_at(content, 0)?;
        if sync {
            self.file.sync_data()?;
        }
        Ok(())
    }

    /// Links the file to `version`'s name: the compare-and-set. On any failure its link count
    /// says whether the link happened after all (a lost NFS reply answered by EEXIST).
    pub fn claim(&self, version: &Path) -> io::Result<Claim> {
        match std::fs::hard_link(&self.path, version) {
            Ok(()) => Ok(Claim::Made),
            Err(e) => {
                if self.file.metadata()?.nlink() == 2 {
                    return Ok(Claim::Made);
                }
                match e.kind() {
                    io::ErrorKind::AlreadyExists => Ok(Claim::Taken),
                    _ => Err(e),
                }
            }
        }
    }

    /// Removes the temporary name (a made version keeps the inode).
    pub fn remove(self) -> io::Result<()> {
        std::fs::remove_file(&self.path)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A worker's link-cas state: what it has proven of each chain, and its directory handle for
/// `--fsync every`.
pub struct LinkCas {
    files: RunFiles,
    worker: usize,
    initial: u32,
    /// Per chain, the highest version this worker has seen exist.
    proven: std::collections::HashMap<Chain, u32>,
    /// `--fsync every`: the directory, synced after each made version.
    dir: Option<File>,
    /// `--fsync every`: fdatasync a record version's content before its link.
    sync: bool,
}

impl LinkCas {
    pub fn new(files: RunFiles, worker: usize, initial: u32, dir: Option<File>) -> LinkCas {
        LinkCas {
            files,
            worker,
            initial,
            proven: Default::default(),
            sync: dir.is_some(),
            dir,
        }
    }

    /// Step 1: the base, `proven` raised to the hint when the hint's version exists.
    fn base(&self, chain: Chain, hint: Option<u32>) -> Result<u32, UpdateError> {
        let proven = self
            .proven
            .get(&chain)
            .copied()
            .unwrap_or(chain.base(self.initial));
        match hint {
            Some(h) if h > proven => {
                let path = chain.version(&self.files, self.initial, h);
                match exists(&path) {
                    Ok(true) => Ok(h),
                    Ok(false) => Ok(proven),
                    Err(e) => Err(fatal("looking up", &path, e)),
                }
            }
            _ => Ok(proven),
        }
    }

    /// Step 3's *made* and step 4: the new name durable (`every`), proven, the temp gone.
    fn made(&mut self, chain: Chain, n: u32, temp: Temp) -> Result<(), UpdateError> {
        if let Some(dir) = &self.dir {
            dir.sync_all()
                .map_err(|e| fatal("syncing", &self.files.dir, e))?;
        }
        self.proven.insert(chain, n);
        let path = temp.path().to_owned();
        temp.remove().map_err(|e| fatal("removing", &path, e))
    }

    fn temp(&self) -> Result<Temp, UpdateError> {
        let path = self.files.path(Name::Temp(self.worker as u32));
        Temp::create(path.clone()).map_err(|e| fatal("creating", &path, e))
    }

    /// Adds 1 to slot `slot`, whose file `slot_file` holds the hint.
    pub fn add_to_slot(&mut self, slot: u32, slot_file: &File) -> Result<Applied, UpdateError> {
        let chain = Chain::Slot(slot);
        let mut n = self.base(chain, read_hint(slot_file))?;
        // Empty: the version's name is its value (see the module doc).
        let temp = self.temp()?;
        let mut retries = 0;
        loop {
            let version = chain.version(&self.files, self.initial, n + 1);
            match temp.claim(&version) {
                Ok(Claim::Made) => break,
                // n+1 exists: it is the next base (the content names no value: claim again).
                Ok(Claim::Taken) => {
                    n += 1;
                    retries += 1;
                }
                Err(e) => return Err(fatal("linking", &version, e)),
            }
        }
        self.made(chain, n + 1, temp)?;
        // The hint: a write of a line in place, never a growth.
        let hint = self.files.path(Name::Slot(slot));
        slot_file
            .write_all_at(&format::value_line(n + 1), 0)
            .map_err(|e| fatal("writing", &hint, e))?;
        Ok(Applied {
            read: n,
            written: n + 1,
            retries,
            ..Applied::default()
        })
    }

    /// Adds 1 to field `field` of the record of `fields` fields: a new version of the whole
    /// record.
    pub fn add_to_field(&mut self, field: usize, fields: usize) -> Result<Applied, UpdateError> {
        let chain = Chain::Record;
        let head_path = self.files.path(Name::RecordHead);
        let hint = match File::open(&head_path) {
            Ok(f) => read_hint(&f),
            Err(_) => None,
        };
        let walk = |n| {
            chain
                .head_from(&self.files, self.initial, n)
                .map_err(|e| fatal("looking up versions of", &self.files.path(Name::Record), e))
        };
        let mut n = walk(self.base(chain, hint)?)?;
        let temp = self.temp()?;
        let mut values = vec![0u32; fields];
        let mut retries = 0;
        loop {
            let from = chain.version(&self.files, self.initial, n);
            File::open(&from)
                .map_err(format::Unreadable::Io)
                .and_then(|f| format::read_values(&f, &mut values))
                .map_err(|e| fatal("reading", &from, e))?;
            values[field] = values[field].wrapping_add(1);
            temp.write(&format::value_lines(&values), self.sync)
                .map_err(|e| fatal("writing", temp.path(), e))?;
            let version = chain.version(&self.files, self.initial, n + 1);
            match temp.claim(&version) {
                Ok(Claim::Made) => break,
                // n+1 exists: read the head's fields again and write them anew.
                Ok(Claim::Taken) => {
                    n = walk(n + 1)?;
                    retries += 1;
                }
                Err(e) => return Err(fatal("linking", &version, e)),
            }
        }
        self.made(chain, n + 1, temp)?;
        File::options()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&head_path)
            .and_then(|f| f.write_all_at(&format::value_line(n + 1), 0))
            .map_err(|e| fatal("writing", &head_path, e))?;
        Ok(Applied {
            read: values[field].wrapping_sub(1),
            written: values[field],
            retries,
            ..Applied::default()
        })
    }
}

/// A hint's value line, if it reads as one (a half-written one may not, or may read as any
/// number: `LinkCas::base` checks it).
pub fn read_hint(file: &File) -> Option<u32> {
    let mut line = [0u8; VALUE];
    file.read_exact_at(&mut line, 0).ok()?;
    format::parse_value(&line)
}
