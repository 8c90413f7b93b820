//! Everything one torture run needs, validated once before any worker exists.

use std::time::Duration;

use serde::Serialize;

use crate::error::Error;
use crate::fault::Faults;
use crate::latency::LatencyMode;
use crate::region::{Layout, Region, MAX_REGION_BYTES};
use crate::scenario::ScenarioKind;
use crate::store::StoreConfig;
use crate::strategy::StrategyKind;
use crate::workload::Pick;

/// Processes sharing a memfd mapping, or threads sharing one address space.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    Processes,
    Threads,
}

#[derive(Clone, Debug, Serialize)]
pub struct Config {
    pub strategies: Vec<StrategyKind>,
    pub workers: usize,
    pub ops: u64,
    pub slots: usize,
    pub mode: Mode,
    pub layout: Layout,
    pub seed: u64,
    pub pick: Pick,
    pub initial: u32,
    pub race_window: u32,
    pub latency: LatencyMode,
    pub repeat: u32,
    pub hold_after_read: bool,
    /// The incident replayed (`--scenario`); `None` is the plain counter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scenario: Option<crate::scenario::ScenarioConfig>,
    /// Where every winning update is persisted and then verified; none: memory only.
    pub store: Option<StoreConfig>,
    /// Writes the stored history as Jepsen-style JSON Lines here after the runs.
    pub history: Option<std::path::PathBuf>,
    #[serde(skip)]
    pub stall_timeout: Duration,
    /// Run by time: after this long the workers are told to stop (each finishes its update in
    /// flight), and a run still going at `CAP_FACTOR` times it is killed (`Error::TimeLimit`).
    /// `ops` is then only an upper bound. None: every worker makes all its `ops`.
    #[serde(skip)]
    pub time_limit: Option<Duration>,
    /// Draw the per-run progress bar on stderr (when it is a terminal).
    #[serde(skip)]
    pub progress: bool,
    /// `--kill`, `--pause`, `--crash-at`, `--stop-at` (process mode only).
    pub faults: Faults,
}

/// A timed run still going at this many times its time limit has collapsed and is stopped.
pub const CAP_FACTOR: u32 = 10;

impl Config {
    /// Checks every number against itself and this machine; the message names the flag.
    pub fn validate(&self) -> Result<(), Error> {
        let usage = |m: String| Err(Error::Usage(m));
        if self.strategies.is_empty() {
            return usage("--strategy: name at least one strategy".into());
        }
        if let Some(s) = self
            .strategies
            .iter()
            .find(|s| !StrategyKind::ALL.contains(s))
        {
            return usage(format!(
                "--strategy {} needs a --target that implements it; memory runs {}",
                s.name(),
                StrategyKind::ALL.map(|k| k.name()).join(", ")
            ));
        }
        if self.workers == 0 {
            return usage("--workers must be at least 1".into());
        }
        if self.slots == 0 {
            return usage("--slots must be at least 1".into());
        }
        if self.ops == 0 {
            return usage("--ops must be at least 1".into());
        }
        if self.repeat == 0 {
            return usage("--repeat must be at least 1".into());
        }
        if self.slots > u32::MAX as usize {
            return usage(format!(
                "--slots {} is more than a 32-bit slot index can address",
                self.slots
            ));
        }
        let limit = worker_limit(self.mode);
        if self.workers > limit.0 {
            return usage(format!(
                "--workers {} is more than this machine can {} ({})",
                self.workers,
                if self.mode == Mode::Processes {
                    "fork"
                } else {
                    "spawn"
                },
                limit.1
            ));
        }
        let total = (self.workers as u128) * (self.ops as u128) + self.initial as u128;
        if total > u32::MAX as u128 {
            return usage(format!(
                "--ops {} with {} workers and --initial {} could push a slot past 2^32-1",
                self.ops, self.workers, self.initial
            ));
        }
        let bytes =
            Region::bytes_needed(self.slots, self.workers, self.layout).unwrap_or(usize::MAX);
        let available = memory_available().unwrap_or(MAX_REGION_BYTES as u64);
        if bytes > MAX_REGION_BYTES || bytes as u64 > available / 2 {
            return usage(format!(
                "--slots {} and --workers {} need {} MiB of shared memory; this machine can spare {} MiB",
                self.slots,
                self.workers,
                bytes >> 20,
                (available / 2).min(MAX_REGION_BYTES as u64) >> 20
            ));
        }
        if self.workers > crate::step::MAX_OWNERS {
            return usage(format!(
                "--workers {} is more than a lock word can name ({})",
                self.workers,
                crate::step::MAX_OWNERS
            ));
        }
        self.validate_faults()?;
        if self.history.is_some() && self.store.is_none() {
            return usage("--history exports what a store recorded: give --store too".into());
        }
        if self.faults.deaths_expected()
            && self
                .store
                .as_ref()
                .is_some_and(|s| matches!(s.spec, crate::store::StoreSpec::Sqlite(_)))
        {
            // The slots table of a killed worker's uncommitted batch lags by up to a batch
            // per death; verify bounds that for the log only (see docs/history.md).
            return usage(
                "--store sqlite with --kill or --crash-at is not supported yet: use --store log"
                    .into(),
            );
        }
        if self.store.as_ref().is_some_and(|s| s.batch == 0) {
            return usage("--batch must be at least 1".into());
        }
        if let Some(store) = self.store.as_ref().filter(|s| s.hold_before_persist) {
            let ok = self.slots == 1
                && self.mode == Mode::Processes
                && self
                    .strategies
                    .iter()
                    .all(|s| matches!(s, StrategyKind::Atomic | StrategyKind::Cas));
            if !ok || store.batch == 0 {
                return usage(
                    "--hold-before-persist needs --slots 1, process mode and atomic or cas (a lock holder cannot wait for the others)".into(),
                );
            }
        }
        if let Some(scenario) = &self.scenario {
            if let Some(store) = &self.store {
                let counter = matches!(scenario.kind, ScenarioKind::Votes | ScenarioKind::Record);
                if self.history.is_some() && !counter {
                    return usage(format!(
                        "--history exports counter events (Jepsen's counter model); --scenario {}'s transfers and reads are checked by torture verify only",
                        scenario.kind.name()
                    ));
                }
                if store.hold_before_persist {
                    return usage(
                        "--hold-before-persist scripts the plain counter, not --scenario".into(),
                    );
                }
            }
            scenario.validate(self)?;
        } else if self.hold_after_read {
            if let Some(s) = self.strategies.iter().find(|s| !s.can_hold_after_read()) {
                return usage(format!(
                    "--hold-after-read applies to racy, cas and futex-lock, not {}",
                    s.name()
                ));
            }
        }
        Ok(())
    }
}

impl Config {
    fn validate_faults(&self) -> Result<(), Error> {
        let f = &self.faults;
        if !f.any() {
            return Ok(());
        }
        if self.scenario.is_some() {
            return Err(Error::Usage(
                "--kill, --pause, --crash-at and --stop-at do not apply to --scenario yet".into(),
            ));
        }
        if self.mode != Mode::Processes {
            return Err(Error::Usage(
                "--kill, --pause, --crash-at and --stop-at need --mode processes: a thread cannot be killed or stopped alone"
                    .into(),
            ));
        }
        if f.kill as usize > self.workers {
            return Err(Error::Usage(format!(
                "--kill {} is more than the {} workers",
                f.kill, self.workers
            )));
        }
        if let Some(p) = f.pause {
            if p.count as usize > self.workers {
                return Err(Error::Usage(format!(
                    "--pause {p}: more than the {} workers",
                    self.workers
                )));
            }
        }
        if let Some(s) = f.strike {
            if let Some(k) = self.strategies.iter().find(|k| !s.point.applies_to(**k)) {
                let fit: Vec<&str> = crate::strategy::StrategyKind::ALL
                    .iter()
                    .filter(|k| s.point.applies_to(**k))
                    .map(|k| k.name())
                    .collect();
                return Err(Error::Usage(format!(
                    "{} {s}: {} never reaches {}; it applies to {}",
                    match s.strike {
                        crate::fault::Strike::Kill => "--crash-at",
                        crate::fault::Strike::Stop => "--stop-at",
                    },
                    k.name(),
                    s.point,
                    fit.join(", ")
                )));
            }
        }
        Ok(())
    }
}

/// The most workers we agree to start, and why that number.
fn worker_limit(mode: Mode) -> (usize, String) {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
    };
    let running = std::fs::read_dir("/proc")
        .map(|d| {
            d.filter(|e| {
                e.as_ref().is_ok_and(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .bytes()
                        .all(|b| b.is_ascii_digit())
                })
            })
            .count()
        })
        .unwrap_or(0);
    let headroom = 256;
    match mode {
        Mode::Processes => {
            let pid_max = read("/proc/sys/kernel/pid_max").unwrap_or(32768);
            let nproc = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NPROC)
                .map(|(soft, _)| soft as usize)
                .unwrap_or(usize::MAX);
            let limit = pid_max.min(nproc).saturating_sub(running + headroom);
            (
                limit,
                format!("pid_max {pid_max}, RLIMIT_NPROC {nproc}, {running} processes running"),
            )
        }
        Mode::Threads => {
            let max = read("/proc/sys/kernel/threads-max").unwrap_or(10_000);
            (
                max.saturating_sub(running + headroom),
                format!("threads-max {max}"),
            )
        }
    }
}

fn memory_available() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
