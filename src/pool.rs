//! Runs N workers against one region: forked processes (the default) or threads.
//!
//! Process mode, in order: fork every worker while the parent is still single-threaded (a
//! child forked from a multi-threaded parent may inherit a lock held by a thread that does not
//! exist in it); wait for all to arrive at the start barrier; release them; only then start the
//! watcher thread; reap every child; read each report from its area in the region (no fd per
//! worker). Children die with the parent (PR_SET_PDEATHSIG, plus a ppid check for a parent that
//! died before the prctl) and leave with `_exit`, so no destructor or buffered output of the
//! parent runs twice.
//!
//! Deaths are data when faults were asked for (`fault`): the reaper sees each exit with
//! `waitid(WEXITED | WNOWAIT)` first, while the zombie still pins its PID, recovers what the
//! dead worker held (its lock, from the identity in the lock word, and the wakes it may have
//! owed), records it, and only then reaps it. The watcher thread, which sends `--kill` and
//! `--pause` signals, signals a worker only while it is not reaped (under the same mutex as
//! the reaping), so a signal can never reach a recycled PID.
//!
//! SIGINT: the parent's handler only sets a flag; the watcher asks the workers to stop (the
//! header's `stop` word), they finish their current update and report, and the run ends as
//! interrupted with a partial summary. Workers ignore SIGINT themselves (the terminal sends it
//! to the whole process group): the parent decides.

use std::collections::HashMap;
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering::{Acquire, Relaxed};
use std::sync::atomic::{AtomicBool, AtomicU32};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::prctl;
use nix::sys::resource::{getrusage, UsageWho};
use nix::sys::signal::{kill, sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::sys::wait::{waitid, waitpid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, getpid, getppid, ForkResult, Pid};

use crate::barrier;
use crate::clock::now_ns;
use crate::error::Error;
use crate::fault::{Death, FaultReport, Faults, InFlight, Strike};
use crate::futex::{Private, Scope, Shared};
use crate::progress::Watcher;
use crate::region::{intent, status, Region};
use crate::step::{self, LockWord};
use crate::strategy::StrategyKind;
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
    /// The run was stopped by SIGINT: the reports are partial.
    pub interrupted: bool,
    /// What injected faults did (empty when none were asked and nobody died).
    pub faults: FaultReport,
}

/// Set by the SIGINT handler; read by the watcher and by the run loop.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Bumped per run: the generation stamped into lock words (see `step::owner_id`).
static GENERATION: AtomicU32 = AtomicU32::new(0);

/// The PIDs earlier runs of this invocation gave their workers, each with whether its worker
/// died holding a lock: to show PIDs being recycled across runs (`FaultReport::pids_reused`).
static EARLIER_PIDS: Mutex<Option<HashMap<Pid, bool>>> = Mutex::new(None);

/// Counts this run's workers whose PID an earlier run's worker had (and, of those, whose
/// earlier worker died holding a lock), then remembers this run's PIDs for the next runs.
fn note_pid_reuse(pids: &[Pid], report: &mut FaultReport) {
    let mut earlier = EARLIER_PIDS.lock().unwrap_or_else(|e| e.into_inner());
    let earlier = earlier.get_or_insert_with(HashMap::new);
    for p in pids {
        if let Some(&held) = earlier.get(p) {
            report.pids_reused += 1;
            report.holder_pids_reused += held as u32;
        }
    }
    for (w, &p) in pids.iter().enumerate() {
        let held = report
            .deaths
            .iter()
            .any(|d| d.worker == w && d.holding.is_some());
        earlier.insert(p, held);
    }
}

extern "C" fn on_sigint(_: libc::c_int) {
    // Async-signal-safe: one atomic store. Relaxed: a flag, polled; it publishes nothing.
    INTERRUPTED.store(true, Relaxed);
}

/// Makes SIGINT set a flag instead of killing the parent (idempotent).
pub fn catch_sigint() {
    let action = SigAction::new(
        SigHandler::Handler(on_sigint),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe, and touches
    // nothing else that the interrupted code could hold.
    let _ = unsafe { sigaction(Signal::SIGINT, &action) };
}

/// Whether SIGINT arrived.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Relaxed)
}

/// The workers' PIDs and which are reaped, shared by the reaper and the watcher: a worker is
/// signalled only while it is not reaped, under the lock its reaping takes, so a signal never
/// reaches a recycled PID.
pub struct Live {
    pids: Vec<Pid>,
    state: Mutex<LiveState>,
}

#[derive(Default)]
struct LiveState {
    reaped: Vec<bool>,
    /// Workers the watcher SIGKILLed (their deaths are expected).
    killed: Vec<bool>,
}

impl Live {
    fn new(pids: Vec<Pid>) -> Live {
        let n = pids.len();
        Live {
            pids,
            state: Mutex::new(LiveState {
                reaped: vec![false; n],
                killed: vec![false; n],
            }),
        }
    }

    pub fn len(&self) -> usize {
        self.pids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pids.is_empty()
    }

    pub fn pid(&self, w: usize) -> Pid {
        self.pids[w]
    }

    /// Sends `sig` to worker `w` unless it is already reaped; true if sent.
    pub fn signal(&self, w: usize, sig: Signal) -> bool {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.reaped[w] {
            return false;
        }
        if sig == Signal::SIGKILL {
            st.killed[w] = true;
        }
        kill(self.pids[w], sig).is_ok()
    }

    /// Whether worker `w` is reaped.
    pub fn is_reaped(&self, w: usize) -> bool {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).reaped[w]
    }

    /// Whether worker `w` is neither reaped nor already SIGKILLed (a killed worker still
    /// waiting for a CPU to die on is not a new victim).
    pub fn may_signal(&self, w: usize) -> bool {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        !st.reaped[w] && !st.killed[w]
    }

    fn was_killed(&self, w: usize) -> bool {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).killed[w]
    }

    /// SIGKILLs every worker not yet reaped.
    pub fn kill_all(&self) {
        for w in 0..self.pids.len() {
            self.signal(w, Signal::SIGKILL);
        }
    }

    /// Reaps worker `w`, which has exited (seen with WNOWAIT).
    fn reap(&self, w: usize) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        while let Err(nix::errno::Errno::EINTR) = waitpid(self.pids[w], None) {}
        st.reaped[w] = true;
    }
}

/// Runs `plan` with one forked process per worker.
pub fn run_processes(
    region: &Region,
    plan: &Plan,
    watcher: &Watcher,
) -> Result<PoolOutcome, Error> {
    let workers = region.worker_count();
    let parent = getpid();
    catch_sigint();
    let generation = GENERATION.fetch_add(1, Relaxed);
    // Relaxed: no worker exists yet; fork publishes the whole region to every child.
    region.header().generation.store(generation, Relaxed);
    // Nothing buffered may be flushed twice (children `_exit`, but be sure).
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    let before = children_switches();
    // Give the heap an earlier run freed back to the kernel: every fork copies the page
    // table entries of every resident page of ours, so after a run of a thousand workers
    // (whose reports and histograms were freed but stay resident) each fork costs ~7x more.
    // SAFETY: malloc_trim has no preconditions; no other thread allocates meanwhile (the
    // parent is single-threaded here).
    unsafe { libc::malloc_trim(0) };

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
        if interrupted() {
            kill_and_reap(&pids);
            return Err(Error::Interrupted(
                "interrupted before the workers started; every worker was stopped".into(),
            ));
        }
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
    // Every fork is done: threads are allowed from here on. The watcher starts before the
    // release: started after it, it would wait for a CPU behind a thousand released workers
    // and look first when most of them are done.
    let live = Live::new(pids);
    let mut go_ns = 0;
    let (reaped, watched) = watcher.watch(region, Some(&live), || {
        go_ns = now_ns();
        barrier::release::<Shared>(region.header());
        reap_recovering(region, &live, plan, go_ns)
    });
    let after = children_switches();
    let (statuses, mut faults) = reaped;
    faults.kills_sent = watched.kills_sent;
    faults.pauses = watched.pauses;
    faults.asked = watcher.faults.clone();
    note_pid_reuse(&live.pids, &mut faults);

    if let Some(stall) = watched.stalled {
        return Err(stall);
    }
    let failures: Vec<String> = statuses
        .iter()
        .filter(|(w, st)| {
            !matches!(st, WaitStatus::Exited(_, 0))
                && !faults
                    .deaths
                    .iter()
                    .any(|d| d.worker == *w && d.cause != "unexpected")
        })
        .map(|(w, st)| format!("worker {w}: {}", describe(st)))
        .collect();
    if !failures.is_empty() {
        return Err(Error::Worker(format!(
            "{} worker(s) failed, first {}",
            failures.len(),
            failures[0]
        )));
    }
    let mut reports = Vec::with_capacity(workers);
    for w in 0..workers {
        let area = region.worker(w);
        // Relaxed: every worker is reaped; a dead process's stores are all in the region.
        faults.robust_repairs += area.repairs.load(Relaxed) as u64;
        faults.lock_steals += area.robbed.load(Relaxed);
        // Acquire: pairs with the Release of DONE in `WorkerReport::publish`.
        let report = if area.status.load(Acquire) == status::DONE {
            WorkerReport::read_back(area, w).map_err(Error::Worker)?
        } else {
            // Died before it published: its acknowledgements are its `completed` counter.
            let end = faults
                .deaths
                .iter()
                .find(|d| d.worker == w)
                .map_or(go_ns, |d| go_ns + (d.at_ms * 1e6) as u64);
            WorkerReport {
                worker: w,
                completed: area.completed.load(Relaxed),
                retries: area.retries.load(Relaxed),
                waits: area.waits.load(Relaxed),
                wakes: area.wakes.load(Relaxed),
                start_ns: go_ns,
                end_ns: end,
                histogram: crate::latency::new_histogram(),
            }
        };
        reports.push(report);
    }
    Ok(PoolOutcome {
        reports,
        spawn_ns: go_ns - t0,
        go_ns,
        preemptions: after.0 - before.0,
        voluntary_switches: after.1 - before.1,
        interrupted: watched.interrupted,
        faults,
    })
}

/// Reaps every worker. Each exit is first seen with WNOWAIT (the zombie keeps its PID, so the
/// watcher cannot signal a stranger), then a death is recovered and recorded, then the worker
/// is reaped. Returns (worker, status) for each, and the deaths.
fn reap_recovering(
    region: &Region,
    live: &Live,
    plan: &Plan,
    go_ns: u64,
) -> (Vec<(usize, WaitStatus)>, FaultReport) {
    let index: HashMap<Pid, usize> = (0..live.len()).map(|w| (live.pid(w), w)).collect();
    let mut out = Vec::with_capacity(live.len());
    let mut report = FaultReport::default();
    while out.len() < live.len() {
        let st = match waitid(Id::All, WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT) {
            Ok(st) => st,
            Err(nix::errno::Errno::EINTR) => continue,
            // ECHILD: nothing left to reap.
            Err(_) => break,
        };
        let Some(pid) = st.pid() else { continue };
        let Some(&w) = index.get(&pid) else {
            // Not a worker of this run: reap it so it does not come back forever.
            let _ = waitpid(pid, None);
            continue;
        };
        if let WaitStatus::Signaled(_, sig, _) = st {
            let seen_ns = now_ns();
            // Relaxed: the worker is dead; everything it stored is in the region.
            let struck = region.worker(w).struck.load(Relaxed) != 0;
            let cause = if let Some(s) = plan.strike.filter(|s| {
                struck
                    && s.strike == Strike::Kill
                    && sig == Signal::SIGKILL
                    && w == Faults::struck_worker(plan.seed, live.len())
            }) {
                format!("--crash-at {s}")
            } else if live.was_killed(w) {
                "--kill".to_string()
            } else {
                "unexpected".to_string()
            };
            let death = Death {
                pid: pid.as_raw(),
                ..recover(region, w, plan, sig, cause, seen_ns, go_ns)
            };
            report.in_flight += death.in_flight.is_some() as u64;
            if death.recovery.starts_with("freed") {
                report.lock_recoveries += 1;
            }
            if death.recovery.contains("rolled forward") {
                report.rolled_forward += 1;
            } else if death.recovery.contains("rolled back") {
                report.rolled_back += 1;
            }
            if let Some(h) = death.handover_ms {
                report.max_handover_ms = Some(report.max_handover_ms.map_or(h, |m: f64| m.max(h)));
            }
            report.deaths.push(death);
        }
        live.reap(w);
        out.push((w, st));
    }
    (out, report)
}

/// Recovers what worker `w`, dead by `sig` but not yet reaped, left behind: frees a lock word
/// that names it (waking every waiter), wakes the waiters of the slot it was updating (a wake
/// it may have owed between its release and its wake), and says what happened to the update
/// it had in flight.
fn recover(
    region: &Region,
    w: usize,
    plan: &Plan,
    sig: Signal,
    cause: String,
    seen_ns: u64,
    go_ns: u64,
) -> Death {
    let area = region.worker(w);
    // Relaxed: the worker is dead; everything it stored is in the region.
    let acknowledged = area.completed.load(Relaxed);
    let op = area.intent_op.load(Relaxed);
    let in_flight = (op > acknowledged).then(|| {
        let read = area.intent_stage.load(Relaxed) == intent::READ;
        InFlight {
            op,
            slot: area.intent_slot.load(Relaxed) as usize,
            old: read.then(|| area.intent_old.load(Relaxed)),
            new: read.then(|| area.intent_new.load(Relaxed)),
        }
    });
    let holding_field = match area.holding.load(Relaxed) {
        0 => None,
        s => Some(s as usize - 1),
    };
    let me = step::owner_id(w, region.header().generation.load(Relaxed));
    let mut holding = None;
    let mut waiters = None;
    let mut handover_ms = None;
    let recovery = match (plan.strategy, &in_flight) {
        (StrategyKind::FutexLock | StrategyKind::SpinLock, Some(f)) => {
            let slot = region.slot(f.slot);
            // Read the value while the dead owner's lock still keeps everyone out.
            let value = slot.value.load(Relaxed);
            // Relaxed: a count for the report. A queued worker names the slot from before its
            // first attempt until it holds the lock.
            let queued = (0..region.worker_count())
                .filter(|&o| {
                    o != w && region.worker(o).waiting_on.load(Relaxed) == f.slot as u32 + 1
                })
                .count() as u32;
            match LockWord::<Shared>::repair(slot.lock, me) {
                Some(word) => {
                    holding = Some(f.slot);
                    waiters = Some(queued);
                    let fate = match (f.old, f.new) {
                        (Some(_), Some(n)) if value == n => {
                            "rolled forward (its write is in: counted in flight)"
                        }
                        (Some(_), Some(_)) => "rolled back (its write never happened)",
                        _ => "rolled back (it had not read yet)",
                    };
                    if queued > 0 {
                        handover_ms = handover(slot.lock, slot.value, value, seen_ns);
                    }
                    format!(
                        "freed the lock of slot {} (word {word:#010x}), woke its waiters; {fate}",
                        f.slot
                    )
                }
                None => {
                    // It may have released and died before its wake: wake for it.
                    Shared::wake_all(slot.lock);
                    format!(
                        "lock of slot {} not held by it; woke its waiters (a wake it may have owed)",
                        f.slot
                    )
                }
            }
        }
        (StrategyKind::Pthread, _) => {
            holding = holding_field;
            "the kernel's robust list: the next locker gets EOWNERDEAD and repairs".to_string()
        }
        (_, Some(_)) => "lock-free: nothing held; the update in flight is within the bounds".into(),
        (_, None) => "nothing in flight, nothing held".into(),
    };
    Death {
        worker: w,
        pid: 0, // the caller knows it
        at_ms: seen_ns.saturating_sub(go_ns) as f64 / 1e6,
        signal: format!("{sig}"),
        cause,
        acknowledged,
        in_flight,
        holding,
        recovery,
        waiters,
        handover_ms,
    }
}

/// After a repair with waiters queued: how long until a live worker owned the lock, in ms from
/// the death being seen (None if nobody took it within the bound). Owned: the word is held
/// again, or the slot no longer holds `value` (read under the dead owner's lock), for a new
/// owner may take, update and release it between two looks. It polls without sleeping on the
/// word: the new owner's CAS wakes nobody.
fn handover(
    word: &std::sync::atomic::AtomicU32,
    slot: &std::sync::atomic::AtomicU32,
    value: u32,
    seen_ns: u64,
) -> Option<f64> {
    const BOUND: Duration = Duration::from_secs(2);
    let start = Instant::now();
    while start.elapsed() < BOUND {
        // Relaxed: readings for the report; they order nothing.
        if !step::is_unlocked(word.load(Relaxed)) || slot.load(Relaxed) != value {
            return Some(now_ns().saturating_sub(seen_ns) as f64 / 1e6);
        }
        std::thread::yield_now();
    }
    None
}

/// Runs `plan` with one thread per worker in this process (private futexes).
pub fn run_threads(region: &Region, plan: &Plan, watcher: &Watcher) -> Result<PoolOutcome, Error> {
    let workers = region.worker_count();
    catch_sigint();
    let generation = GENERATION.fetch_add(1, Relaxed);
    // Relaxed: no worker thread exists yet; spawning publishes it.
    region.header().generation.store(generation, Relaxed);
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
        // The watcher starts before the release, as in process mode: started after it, it
        // would wait for a CPU behind the released workers (seconds, with a thousand) and a run
        // by time would stop that late.
        let mut go_ns = 0;
        let (mut reports, watched) = watcher.watch(region, None, || {
            go_ns = now_ns();
            barrier::release::<Private>(region.header());
            rx.iter().collect::<Vec<_>>()
        });
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
            interrupted: watched.interrupted,
            faults: FaultReport::default(),
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
    // SIGINT is the parent's to handle (the terminal sends it to the whole group).
    // SAFETY: SIG_IGN installs no handler, so no code runs in signal context.
    let _ = unsafe { nix::sys::signal::signal(Signal::SIGINT, SigHandler::SigIgn) };
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
