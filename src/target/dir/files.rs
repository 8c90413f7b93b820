//! A run's files and their names. Every name starts with `racepool-RUN-` (RUN the run id in
//! decimal, as `torture verify` and the Redis keys print it), so runs never collide and
//! [`parse`] knows ours from anything else in the directory, which we never touch.

use std::fmt::Display;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use crate::target::UpdateError;

/// Where one run's files are.
#[derive(Clone, Debug)]
pub struct RunFiles {
    pub dir: PathBuf,
    pub run: u64,
}

impl RunFiles {
    pub fn path(&self, name: Name) -> PathBuf {
        path(&self.dir, self.run, name)
    }

    /// Makes the directory's entries durable (after a file was created, linked or removed).
    pub fn sync_dir(&self) -> io::Result<()> {
        File::open(&self.dir)?.sync_all()
    }
}

/// What failed mid-run, where: the run cannot go on meaningfully (a full disk, a file size
/// limit, a file that is not what its name says), never an outcome left unknown: a local file
/// system answers every call.
pub fn fatal(doing: &str, path: &Path, e: impl Display) -> UpdateError {
    UpdateError::Fatal(format!("{doing} {}: {e}", path.display()))
}

/// One file of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Name {
    /// `slot-S`: slot S's value line (then, with `append`, its increments).
    Slot(u32),
    /// `slot-S-vV`: `link-cas`: version V of slot S (V > initial; see `link_cas`).
    SlotVersion(u32, u32),
    /// `tmp-W`: `link-cas`: worker W's next version, before it has a name of its own.
    Temp(u32),
    /// `record`: `--scenario record`: the record, one value line per field.
    Record,
    /// `record-vN`: record `link-cas`: the record's N-th version (N ≥ 1; the record file is 0).
    RecordVersion(u32),
    /// `record-head`: record `link-cas`: the newest version a winner wrote (a hint).
    RecordHead,
    /// `field-J`: record `field-files`: field J's increments.
    Field(u32),
}

const PREFIX: &str = "racepool-";

/// The file `name` of run `run` in `dir`.
pub fn path(dir: &Path, run: u64, name: Name) -> PathBuf {
    let rest = match name {
        Name::Slot(s) => format!("slot-{s}"),
        Name::SlotVersion(s, v) => format!("slot-{s}-v{v}"),
        Name::Temp(w) => format!("tmp-{w}"),
        Name::Record => "record".into(),
        Name::RecordVersion(n) => format!("record-v{n}"),
        Name::RecordHead => "record-head".into(),
        Name::Field(j) => format!("field-{j}"),
    };
    dir.join(format!("{PREFIX}{run}-{rest}"))
}

/// The run and the file a name stands for, if it is one of ours: exactly as [`path`] spells it
/// (no sign, no leading zero), so a file we did not make is never mistaken for ours.
pub fn parse(file_name: &str) -> Option<(u64, Name)> {
    let rest = file_name.strip_prefix(PREFIX)?;
    let (run, rest) = rest.split_once('-')?;
    let run = number(run)?;
    let name = match rest.split_once('-') {
        None if rest == "record" => Name::Record,
        None => return None,
        Some(("slot", s)) => match s.split_once("-v") {
            None => Name::Slot(number(s)?),
            Some((s, v)) => Name::SlotVersion(number(s)?, number(v)?),
        },
        Some(("tmp", w)) => Name::Temp(number(w)?),
        Some(("field", j)) => Name::Field(number(j)?),
        Some(("record", "head")) => Name::RecordHead,
        Some(("record", n)) => Name::RecordVersion(number(n.strip_prefix('v')?)?),
        Some(_) => return None,
    };
    Some((run, name))
}

/// A decimal number as we write them: digits only, no leading zero.
fn number<N: std::str::FromStr>(s: &str) -> Option<N> {
    let canonical = s == "0" || (!s.starts_with('0') && !s.is_empty());
    if canonical && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse().ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_reads_back_as_itself() {
        let dir = Path::new("d");
        for name in [
            Name::Slot(0),
            Name::Slot(17),
            Name::SlotVersion(3, 4_000_000_000),
            Name::Temp(999),
            Name::Record,
            Name::RecordVersion(12),
            Name::RecordHead,
            Name::Field(63),
        ] {
            let p = path(dir, 9_007_199_254_740_991, name);
            let file = p.file_name().unwrap().to_str().unwrap();
            assert_eq!(parse(file), Some((9_007_199_254_740_991, name)), "{file}");
        }
    }

    #[test]
    fn only_our_names_are_ours() {
        for other in [
            "notes.txt",
            "racepool-probe-12",
            "racepool-12",
            "racepool-012-slot-1",
            "racepool-12-slot-01",
            "racepool-12-slot-+1",
            "racepool-12-slot-",
            "racepool-12-slot-1-v",
            "racepool-12-slot-1-w3",
            "racepool-12-record-",
            "racepool-12-record-x",
            "racepool-12-records",
            "racepool-ff-slot-1",
            "racepool-12-tmp-1.bak",
        ] {
            assert_eq!(parse(other), None, "{other}");
        }
    }
}
