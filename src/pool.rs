//! Runs N workers against one region: forked processes (the default) or threads.
//!
//! Process mode, in order: fork every worker while the parent is still single-threaded (a
//! child forked from a multi-threaded parent may inherit a lock held by a thread that does not
//! exist in it); wait for all to arrive at the start barrier; release them; only then start the
//! watcher thread; reap every child; read each report from its area in the region (no fd per
//! worker). Children die with the parent (PR_SET_PDEATHSIG, plus a ppid check for a parent that
//! died before the prctl) and leave with `_exit`, so no destructor or buffered output of the
//! parent runs twice.

use std::collections::HashMap;
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use nix::sys::prctl;
use nix::sys::resource::{getrusage, UsageWho};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitid, waitpid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, getpid, getppid, ForkResult, Pid};

use crate::barrier;
use crate::clock::now_ns;
use crate::error::Error;
use crate::futex::{Private, Shared};
use crate::progress::Watcher;
use crate::region::Region;
use crate::worker::{self, Plan, WorkerReport};

/// For tests: `RACEPOOL_FAIL_FORK_AT=N` makes the N-th fork (from 0) fail as if the kernel
/// refused it (EAGAIN), to exercise the clean-up of a pool that is only partly started. As
/// root, RLIMIT_NPROC is not enforced, so a real refusal cannot be provoked portably.
const FAIL_FORK_AT: &str = "RACEPOOL_FAIL_FORK_AT";

/// How long workers may take to reach the start barrier before the run is abandoned.
const START_LIMIT: Duration = Duration::from_secs(60);

/// What the pool measured around the workers.
#[derive(Debug)]
pub struct PoolOutcome {
    pub reports: Vec<WorkerReport>,
    /// From the first fork (or thread spawn) until every worker was at the barrier.
    pub spawn_ns: u64,
    /// When the parent released the barrier.
    pub go_ns: u64,
    /// Context switches of the workers during the run: involuntary ones are preemptions.
    pub preemptions: u64,
    pub voluntary_switches: u64,
}

/// Runs `plan` with one forked process per worker.
pub fn run_processes(
    region: &Region,
    plan: &Plan,
    watcher: &Watcher,
) -> Result<PoolOutcome, Error> {
    let workers = region.worker_count();
    let parent = getpid();
    // Nothing buffered may be flushed twice (children `_exit`, but be sure).
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    let before = children_switches();

    let fail_at: Option<usize> = std::env::var(FAIL_FORK_AT)
        .ok()
        .and_then(|v| v.parse().ok());
    let t0 = now_ns();
    let mut pids: Vec<Pid> = Vec::with_capacity(workers);
    for w in 0..workers {
        let forked = if fail_at == Some(w) {
            Err(nix::errno::Errno::EAGAIN)
        } else {
            // SAFETY: the parent is single-threaded here (no thread is started before every
            // fork of this run is done, and every earlier thread was joined), so the child
            // inherits no lock held by a vanished thread; it runs `child_main`, then `_exit`.
            unsafe { fork() }
        };
        match forked {
            Ok(ForkResult::Child) => child_main(region, w, parent, plan),
            Ok(ForkResult::Parent { child }) => pids.push(child),
            Err(e) => {
                kill_and_reap(&pids);
                return Err(Error::System(format!(
                    "fork failed after {} of {workers} workers: {e}; every started worker was stopped",
                    pids.len()
                )));
            }
        }
    }

    let deadline = Instant::now() + START_LIMIT;
    while barrier::arrivals(region.header(), Duration::from_millis(20)) < workers as u32 {
        if let Some(early) = first_exit(&pids) {
            kill_and_reap(&pids);
            return Err(Error::Worker(format!(
                "a worker exited before the start barrier: {early}"
            )));
        }
        if Instant::now() > deadline {
            kill_and_reap(&pids);
            return Err(Error::Worker(format!(
                "workers did not reach the start barrier within {START_LIMIT:?}"
            )));
        }
    }
    let go_ns = now_ns();
    barrier::release::<Shared>(region.header());

    // Every fork is done: threads are allowed from here on.
    let (reaped, stalled) = watcher.watch(region, Some(&pids), || reap(&pids));
    let after = children_switches();

    let failures: Vec<String> = reaped
        .iter()
        .filter(|(_, st)| !matches!(st, WaitStatus::Exited(_, 0)))
        .map(|(w, st)| format!("worker {w}: {}", describe(st)))
        .collect();
    if let Some(stopped) = stalled {
        return Err(stopped);
    }
    if !failures.is_empty() {
        return Err(Error::Worker(format!(
            "{} worker(s) failed, first {}",
            failures.len(),
            failures[0]
        )));
    }
    let reports = (0..workers)
        .map(|w| WorkerReport::read_back(region.worker(w), w))
        .collect::<Result<Vec<_>, _>>()
        .map_err(Error::Worker)?;
    Ok(PoolOutcome {
        reports,
        spawn_ns: go_ns - t0,
        go_ns,
        preemptions: after.0 - before.0,
        voluntary_switches: after.1 - before.1,
    })
}

/// Runs `plan` with one thread per worker in this process (private futexes).
pub fn run_threads(region: &Region, plan: &Plan, watcher: &Watcher) -> Result<PoolOutcome, Error> {
    let workers = region.worker_count();
    let before = self_switches();
    let (tx, rx) = crossbeam_channel::unbounded::<WorkerReport>();
    let t0 = now_ns();
    let mut outcome = std::thread::scope(|scope| -> Result<PoolOutcome, Error> {
        for w in 0..workers {
            let tx = tx.clone();
            std::thread::Builder::new()
                .name(format!("worker-{w}"))
                .stack_size(256 * 1024)
                .spawn_scoped(scope, move || {
                    barrier::arrive(region.header());
                    barrier::wait_go::<Private>(region.header(), || true);
                    let report = worker::run(region, w, plan);
                    // The receiver outlives every worker (it is drained below).
                    let _ = tx.send(report);
                })
                .map_err(|e| {
                    // Release the workers already waiting so the scope can join them.
                    barrier::release::<Private>(region.header());
                    Error::System(format!("spawning worker thread {w} of {workers}: {e}"))
                })?;
        }
        drop(tx);
        while barrier::arrivals(region.header(), Duration::from_millis(20)) < workers as u32 {}
        let go_ns = now_ns();
        barrier::release::<Private>(region.header());
        let (mut reports, _) = watcher.watch(region, None, || rx.iter().collect::<Vec<_>>());
        reports.sort_by_key(|r| r.worker);
        if reports.len() != workers {
            return Err(Error::Worker(format!(
                "{} of {workers} worker threads reported",
                reports.len()
            )));
        }
        Ok(PoolOutcome {
            reports,
            spawn_ns: go_ns - t0,
            go_ns,
            preemptions: 0,
            voluntary_switches: 0,
        })
    })?;
    let after = self_switches();
    outcome.preemptions = after.0 - before.0;
    outcome.voluntary_switches = after.1 - before.1;
    Ok(outcome)
}

fn child_main(region: &Region, w: usize, parent: Pid, plan: &Plan) -> ! {
    // Die with the parent. The ppid check covers a parent that died before the prctl.
    let _ = prctl::set_pdeathsig(Signal::SIGKILL);
    let parent_alive = || getppid() == parent;
    let code = if !parent_alive() {
        3
    } else {
        let ran = catch_unwind(AssertUnwindSafe(|| {
            barrier::arrive(region.header());
            if !barrier::wait_go::<Shared>(region.header(), parent_alive) {
                return 3;
            }
            let report = worker::run(region, w, plan);
            if report.publish(region.worker(w)) {
                0
            } else {
                4
            }
        }));
        ran.unwrap_or(101)
    };
    // SAFETY: `_exit` ends the child at once without running the parent's atexit handlers or
    // destructors and without flushing inherited stdio buffers, none of which are the child's.
    unsafe { libc::_exit(code) }
}

/// Reaps every child, blocking; returns (worker, status) for each.
fn reap(pids: &[Pid]) -> Vec<(usize, WaitStatus)> {
    let index: HashMap<Pid, usize> = pids.iter().enumerate().map(|(w, &p)| (p, w)).collect();
    let mut out = Vec::with_capacity(pids.len());
    while out.len() < pids.len() {
        match waitpid(None, None) {
            Ok(st) => {
                if let Some(pid) = st.pid() {
                    if let Some(&w) = index.get(&pid) {
                        out.push((w, st));
                    }
                }
            }
            Err(nix::errno::Errno::EINTR) => continue,
            // ECHILD: nothing left to reap.
            Err(_) => break,
        }
    }
    out
}

/// A child that already exited, without reaping it.
fn first_exit(pids: &[Pid]) -> Option<String> {
    // WNOWAIT leaves it to be reaped with the others (waitpid does not take WNOWAIT).
    match waitid(
        Id::All,
        WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT,
    ) {
        Ok(WaitStatus::StillAlive) | Err(_) => None,
        Ok(st) => {
            let w = st.pid().and_then(|p| pids.iter().position(|&q| q == p));
            Some(format!(
                "worker {} {}",
                w.map_or("?".into(), |w| w.to_string()),
                describe(&st)
            ))
        }
    }
}

/// Kills every listed child and reaps them all, so nothing is left behind.
pub fn kill_and_reap(pids: &[Pid]) {
    for &p in pids {
        let _ = kill(p, Signal::SIGKILL);
    }
    reap(pids);
}

fn describe(st: &WaitStatus) -> String {
    match st {
        WaitStatus::Exited(_, 3) => "exited: its parent vanished".into(),
        WaitStatus::Exited(_, 4) => "exited: its histogram did not fit its area".into(),
        WaitStatus::Exited(_, 101) => "panicked".into(),
        WaitStatus::Exited(_, c) => format!("exited with status {c}"),
        WaitStatus::Signaled(_, sig, _) => format!("was killed by {sig}"),
        other => format!("{other:?}"),
    }
}

fn children_switches() -> (u64, u64) {
    getrusage(UsageWho::RUSAGE_CHILDREN)
        .map(|u| {
            (
                u.involuntary_context_switches() as u64,
                u.voluntary_context_switches() as u64,
            )
        })
        .unwrap_or((0, 0))
}

fn self_switches() -> (u64, u64) {
    getrusage(UsageWho::RUSAGE_SELF)
        .map(|u| {
            (
                u.involuntary_context_switches() as u64,
                u.voluntary_context_switches() as u64,
            )
        })
        .unwrap_or((0, 0))
}

/// Total updates the workers have completed so far (progress; the watchdog's heartbeat).
pub fn completed(region: &Region) -> u64 {
    (0..region.worker_count())
        .map(|w| region.worker(w).completed.load(Relaxed))
        .sum()
}
