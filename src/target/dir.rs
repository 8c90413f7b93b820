//! `dir:PATH`: one file per slot in a directory on a real file system.
//!
//! A slot is the file `racepool-RUN-slot-S` holding its value as ten decimal digits and a
//! newline: every write is the whole record at offset 0 (`pwrite`), so no write ever has to
//! truncate. A session opens the slot's file for each update (so a thousand workers of a
//! thousand slots never need a million descriptors at once) and
//!
//! - `racy`: reads the value, writes value+1 (after `--race-window` spins): two workers that
//!   read the same value both write its successor, and one update vanishes (the bug, as an
//!   application writes it);
//! - `flock`: the same, inside `flock(LOCK_EX)` on the file (a lock on the open file
//!   description, released at close and by the kernel when its holder dies).
//!
//! What the run leaves is its own files: its record, for the user to inspect, removed by
//! [`Target::clean`].

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use super::{RunShape, Session, Target, TargetKind, UpdateError};
use crate::error::Error;
use crate::strategy::{Applied, StrategyKind};

/// Bytes of a slot's file: ten digits (a u32 at most) and a newline.
const RECORD: usize = 11;

/// The strategies `dir` implements, the bug first.
const STRATEGIES: [StrategyKind; 2] = [StrategyKind::Racy, StrategyKind::Flock];

/// A directory of slot files.
#[derive(Clone, Debug)]
pub struct Dir {
    path: PathBuf,
}

impl Dir {
    pub fn new(path: PathBuf) -> Dir {
        Dir { path }
    }

    fn slot_path(&self, run: u64, slot: usize) -> PathBuf {
        self.path.join(format!("racepool-{run:016x}-slot-{slot}"))
    }

    /// The run id a file of ours names, if it is one of ours.
    fn run_of(name: &str) -> Option<u64> {
        let rest = name.strip_prefix("racepool-")?;
        let (run, slot) = rest.split_once("-slot-")?;
        slot.parse::<usize>().ok()?;
        u64::from_str_radix(run, 16).ok()
    }

    fn unusable(&self, why: impl std::fmt::Display) -> Error {
        Error::Usage(format!("--target dir:{}: {why}", self.path.display()))
    }
}

fn encode(value: u32) -> [u8; RECORD] {
    let mut out = [b'\n'; RECORD];
    let digits = format!("{value:010}");
    out[..10].copy_from_slice(digits.as_bytes());
    out
}

fn decode(bytes: &[u8; RECORD]) -> Option<u32> {
    std::str::from_utf8(&bytes[..10]).ok()?.parse().ok()
}

fn read_value(file: &File, path: &Path) -> Result<u32, String> {
    let mut bytes = [0u8; RECORD];
    file.read_exact_at(&mut bytes, 0)
        .map_err(|e| format!("reading {}: {e}", path.display()))?;
    decode(&bytes).ok_or_else(|| format!("{} does not hold a slot value", path.display()))
}

impl Target for Dir {
    type Session = DirSession;

    fn kind(&self) -> TargetKind {
        TargetKind::Dir
    }

    fn strategies(&self) -> &'static [StrategyKind] {
        &STRATEGIES
    }

    fn preflight(&self, _: &RunShape, strategies: &[StrategyKind]) -> Result<(), Error> {
        if let Some(s) = strategies.iter().find(|s| !STRATEGIES.contains(s)) {
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
        for slot in 0..shape.slots {
            let path = self.slot_path(shape.run, slot);
            let made = File::options()
                .write(true)
                .create_new(true)
                .open(&path)
                .and_then(|f| f.write_all_at(&encode(shape.initial), 0));
            if let Err(e) = made {
                // Leave nothing half made.
                for s in 0..=slot {
                    let _ = std::fs::remove_file(self.slot_path(shape.run, s));
                }
                return Err(self.unusable(format!("creating {}: {e}", path.display())));
            }
        }
        Ok(())
    }

    fn connect(
        &self,
        shape: &RunShape,
        _worker: usize,
        strategy: StrategyKind,
    ) -> Result<DirSession, UpdateError> {
        if !STRATEGIES.contains(&strategy) {
            return Err(UpdateError::Fatal(format!(
                "dir has no strategy {}",
                strategy.name()
            )));
        }
        Ok(DirSession {
            dir: self.clone(),
            run: shape.run,
            locked: strategy == StrategyKind::Flock,
            window: shape.race_window,
        })
    }

    fn finals(&self, shape: &RunShape) -> Result<Vec<u32>, Error> {
        (0..shape.slots)
            .map(|slot| {
                let path = self.slot_path(shape.run, slot);
                File::open(&path)
                    .map_err(|e| format!("opening {}: {e}", path.display()))
                    .and_then(|f| read_value(&f, &path))
                    .map_err(Error::TargetFailed)
            })
            .collect()
    }

    fn clean(&self, run: Option<u64>) -> Result<u64, Error> {
        let mut runs = std::collections::BTreeSet::new();
        let entries = std::fs::read_dir(&self.path).map_err(|e| self.unusable(e))?;
        for entry in entries {
            let entry = entry.map_err(|e| self.unusable(e))?;
            let name = entry.file_name();
            let Some(found) = Dir::run_of(&name.to_string_lossy()) else {
                continue;
            };
            if run.is_none_or(|r| r == found) {
                std::fs::remove_file(entry.path()).map_err(|e| {
                    self.unusable(format!("removing {}: {e}", name.to_string_lossy()))
                })?;
                runs.insert(found);
            }
        }
        Ok(runs.len() as u64)
    }
}

/// A worker's session: the directory and the run; a file is opened per update.
pub struct DirSession {
    dir: Dir,
    run: u64,
    /// `flock`: the read-modify-write happens inside `flock(LOCK_EX)`.
    locked: bool,
    /// Spins between the read and the write (`--race-window`).
    window: u32,
}

impl DirSession {
    /// The read-modify-write itself. An I/O error before the write changed nothing; one in
    /// the write of 11 bytes at offset 0 is a failing file system: either way the run cannot
    /// go on meaningfully (Fatal), never a lost outcome.
    fn add_one(&self, file: &File, path: &Path) -> Result<(u32, u32), UpdateError> {
        let read = read_value(file, path).map_err(UpdateError::Fatal)?;
        for _ in 0..self.window {
            std::hint::spin_loop();
        }
        let written = read.wrapping_add(1);
        file.write_all_at(&encode(written), 0)
            .map_err(|e| UpdateError::Fatal(format!("writing {}: {e}", path.display())))?;
        Ok((read, written))
    }
}

impl Session for DirSession {
    fn update(
        &mut self,
        slot: u32,
        _event: Option<super::EventDraft>,
    ) -> Result<Applied, UpdateError> {
        let path = self.dir.slot_path(self.run, slot as usize);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| UpdateError::Fatal(format!("opening {}: {e}", path.display())))?;
        if !self.locked {
            let (read, written) = self.add_one(&file, &path)?;
            return Ok(Applied {
                read,
                written,
                ..Applied::default()
            });
        }
        // Try without waiting first, so contention shows as a retry and a wait.
        let (guard, contended) = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(g) => (g, false),
            Err((file, nix::errno::Errno::EWOULDBLOCK)) => {
                let g = Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| {
                    UpdateError::Fatal(format!("flock {}: {e}", path.display()))
                })?;
                (g, true)
            }
            Err((_, e)) => {
                return Err(UpdateError::Fatal(format!("flock {}: {e}", path.display())))
            }
        };
        let done = self.add_one(&guard, &path);
        // Unlocked explicitly (and again at close, which is when a failed unlock lets go).
        drop(guard.unlock());
        let (read, written) = done?;
        Ok(Applied {
            read,
            written,
            retries: contended as u32,
            waits: contended as u32,
            wakes: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_record_round_trips_at_its_fixed_width() {
        for v in [0, 7, 1_000_000, u32::MAX] {
            let r = encode(v);
            assert_eq!(r.len(), RECORD);
            assert_eq!(decode(&r), Some(v));
        }
        assert_eq!(decode(b"12345x7890\n"), None);
    }

    #[test]
    fn only_our_files_are_ours() {
        assert_eq!(Dir::run_of("racepool-00000000000000ff-slot-3"), Some(255));
        assert_eq!(Dir::run_of("racepool-probe-12"), None);
        assert_eq!(Dir::run_of("racepool-00ff-slot-x"), None);
        assert_eq!(Dir::run_of("notes.txt"), None);
    }
}
