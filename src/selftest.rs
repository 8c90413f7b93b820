//! Direct checks of the two properties everything else relies on, with negative controls:
//! memory written by a forked child is seen by the parent only through a MAP_SHARED mapping, and
//! a futex wake reaches a waiter in another process only when both use the shared scope.
//! (`torture selftest …`; the integration tests drive these through the binary.)
//!
//! Each report says which property it checked and whether it `holds`; the binary exits 1 when
//! it does not. `wake --scope private` is a negative control: it holds when no wake landed.

use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicU32, AtomicU64};
use std::time::{Duration, Instant};

use linux_futex::{AsFutex, Scope as FutexScope};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult};
use serde::Serialize;

use crate::clock::now_ns;
use crate::error::Error;
use crate::region::{Layout, Region};

/// Outcome of `shared_write`.
#[derive(Debug, Serialize)]
pub struct WriteReport {
    pub property: &'static str,
    /// Every round saw the child's write through the shared map, none through map_anon.
    pub holds: bool,
    pub rounds: u32,
    /// Rounds in which the parent read the child's write through the memfd (MAP_SHARED) region.
    pub seen_through_shared_map: u32,
    /// Rounds in which it read it through `MmapMut::map_anon` (MAP_PRIVATE): must be 0.
    pub seen_through_anon_map: u32,
}

impl WriteReport {
    /// What was seen, in words.
    pub fn counts(&self) -> String {
        format!(
            "{} of {} rounds saw the write through the shared map, {} through map_anon",
            self.seen_through_shared_map, self.rounds, self.seen_through_anon_map
        )
    }
}

/// A child writes a round-specific value into each mapping; the parent looks after reaping it.
pub fn shared_write(rounds: u32) -> Result<WriteReport, Error> {
    let mut report = WriteReport {
        property: "a forked child's write is seen through the shared map, never through map_anon",
        holds: false,
        rounds,
        seen_through_shared_map: 0,
        seen_through_anon_map: 0,
    };
    for round in 0..rounds {
        let region = Region::create(1, 1, Layout::Packed, 0)?;
        let anon = memmap2::MmapMut::map_anon(4096)
            .map_err(|e| Error::System(format!("map_anon: {e}")))?;
        // SAFETY: the anonymous map is page-aligned and at least 4 bytes long; an AtomicU32
        // there is valid (zeroed) and lives as long as `anon`.
        let anon_word = unsafe { &*(anon.as_ptr() as *const AtomicU32) };
        let value = 0xC0FF_EE00 | round;
        match fork_child(|| {
            region.slot(0).value.store(value, SeqCst);
            anon_word.store(value, SeqCst);
            0
        })? {
            WaitStatus::Exited(_, 0) => {}
            other => return Err(Error::Worker(format!("selftest child: {other:?}"))),
        }
        report.seen_through_shared_map += (region.slot(0).value.load(SeqCst) == value) as u32;
        report.seen_through_anon_map += (anon_word.load(SeqCst) == value) as u32;
    }
    report.holds =
        rounds > 0 && report.seen_through_shared_map == rounds && report.seen_through_anon_map == 0;
    Ok(report)
}

/// Which futex flag the wake test uses, on both sides.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum WakeScope {
    Shared,
    Private,
}

impl WakeScope {
    /// Rounds by default: a private round always waits out its timeout (the wake never lands),
    /// so the negative control runs few, short rounds.
    pub fn default_rounds(self) -> u32 {
        match self {
            WakeScope::Shared => 100,
            WakeScope::Private => 5,
        }
    }

    /// How long the child sleeps at most by default: ~1.25 s in all for the private scope.
    pub fn default_timeout(self) -> Duration {
        match self {
            WakeScope::Shared => Duration::from_millis(1000),
            WakeScope::Private => Duration::from_millis(200),
        }
    }

    fn property(self) -> &'static str {
        match self {
            WakeScope::Shared => "a shared futex wake reaches a waiter in another process",
            WakeScope::Private => {
                "negative control: a private futex wake does not reach a waiter in another process"
            }
        }
    }
}

/// Outcome of `cross_process_wake`.
#[derive(Debug, Serialize)]
pub struct WakeReport {
    pub property: &'static str,
    /// shared: every wake landed; private: none did.
    pub holds: bool,
    pub scope: WakeScope,
    /// The futex flag both sides used: `scope`, unless a test swapped it to prove the check
    /// can fail.
    pub flag: WakeScope,
    pub rounds: u32,
    /// How long the child slept at most per round.
    pub timeout_ms: u64,
    /// Rounds in which the child's wait returned because of the parent's wake.
    pub woken: u32,
    /// Rounds in which the child slept until its timeout.
    pub timed_out: u32,
    /// Longest time from the parent's successful wake to the child running again, in ms.
    pub max_wake_latency_ms: f64,
}

impl WakeReport {
    /// What was seen, in words.
    pub fn counts(&self) -> String {
        format!("{} of {} wakes landed", self.woken, self.rounds)
    }
}

/// A child sleeps on a word of the shared region; the parent wakes it. With the shared scope
/// the wake must land every round; with the private scope it must never land (the kernel keys
/// private futexes by address space, and the child has its own). Both sides use `flag`'s futex
/// flag: `scope` itself, or for tests the other one, which must make the property fail.
pub fn cross_process_wake(
    scope: WakeScope,
    flag: WakeScope,
    rounds: u32,
    timeout: Duration,
) -> Result<WakeReport, Error> {
    let mut report = WakeReport {
        property: scope.property(),
        holds: false,
        scope,
        flag,
        rounds,
        timeout_ms: timeout.as_millis() as u64,
        woken: 0,
        timed_out: 0,
        max_wake_latency_ms: 0.0,
    };
    for _ in 0..rounds {
        let region = Region::create(1, 1, Layout::Packed, 0)?;
        let word = region.slot(0).value;
        let ready = region.slot(0).lock;
        let returned_at = &region.worker(0).end_ns;
        let child = move || {
            ready.store(1, SeqCst);
            let r = match flag {
                WakeScope::Shared => wait::<linux_futex::Shared>(word, timeout),
                WakeScope::Private => wait::<linux_futex::Private>(word, timeout),
            };
            returned_at.store(now_ns(), SeqCst);
            r
        };
        let woke_at = AtomicU64::new(0);
        let status = fork_child_then(child, || {
            while ready.load(SeqCst) == 0 {
                std::thread::yield_now();
            }
            // The child may not be asleep yet: wake until the kernel says a waiter was woken,
            // or until the child's own timeout has certainly passed.
            let deadline = Instant::now() + timeout + Duration::from_millis(50);
            while Instant::now() < deadline {
                let woken = match flag {
                    WakeScope::Shared => AsFutex::<linux_futex::Shared>::as_futex(word).wake(1),
                    WakeScope::Private => AsFutex::<linux_futex::Private>::as_futex(word).wake(1),
                };
                if woken > 0 {
                    woke_at.store(now_ns(), SeqCst);
                    break;
                }
                std::thread::yield_now();
            }
        })?;
        match status {
            WaitStatus::Exited(_, 0) => {
                report.woken += 1;
                let woke = woke_at.load(SeqCst);
                let latency = returned_at.load(SeqCst).saturating_sub(woke) as f64 / 1e6;
                report.max_wake_latency_ms = report.max_wake_latency_ms.max(latency);
            }
            WaitStatus::Exited(_, 1) => report.timed_out += 1,
            other => return Err(Error::Worker(format!("selftest child: {other:?}"))),
        }
    }
    report.holds = rounds > 0
        && match scope {
            WakeScope::Shared => report.woken == rounds,
            WakeScope::Private => report.woken == 0,
        };
    Ok(report)
}

/// 0 if woken, 1 if timed out, 2 otherwise.
fn wait<S: FutexScope>(word: &AtomicU32, timeout: Duration) -> i32 {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match AsFutex::<S>::as_futex(word).wait_for(0, left) {
            Ok(()) => return 0,
            Err(linux_futex::TimedWaitError::TimedOut) => return 1,
            Err(linux_futex::TimedWaitError::Interrupted) => continue,
            Err(linux_futex::TimedWaitError::WrongValue) => return 2,
        }
    }
}

fn fork_child(child: impl FnOnce() -> i32) -> Result<WaitStatus, Error> {
    fork_child_then(child, || {})
}

/// Forks a child running `child` (its return value is the exit code), runs `parent`, reaps.
fn fork_child_then(
    child: impl FnOnce() -> i32,
    parent: impl FnOnce(),
) -> Result<WaitStatus, Error> {
    // SAFETY: called from the single-threaded CLI before any thread exists; the child runs only
    // `child` and leaves with `_exit`.
    match unsafe { fork() }.map_err(|e| Error::System(format!("fork: {e}")))? {
        ForkResult::Child => {
            let code = child();
            // SAFETY: ends the child without running the parent's destructors or atexit hooks.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            parent();
            waitpid(child, None).map_err(|e| Error::System(format!("waitpid: {e}")))
        }
    }
}
