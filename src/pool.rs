//! Runs N workers against one region: forked processes (the default) or threads. The pool
//! knows processes, the barriers and exits; what a worker does is a function it is handed, who
//! watches is a [`Watch`] it is handed, and what a death means is its caller's (`fault`).
//!
//! Process mode, in order: fork every worker while the parent is still single-threaded (a
//! child forked from a multi-threaded parent may inherit a lock held by a thread that does not
//! exist in it); wait for all to arrive at the start barrier; release them; only then start the
//! watcher thread; reap every child, counting out at the done barrier (`barrier`) each that
//! ended without reaching it, so the workers waiting there go on. Each worker leaves its
//! report in its area in the region (no fd per worker). Children die with the parent
//! (PR_SET_PDEATHSIG, plus a ppid check for a parent that died before the prctl) and leave
//! with `_exit`, so no destructor or buffered output of the parent runs twice.
//!
//! Deaths are data, whoever caused them: the reaper sees each exit with
//! `waitid(WEXITED | WNOWAIT)` first, while the zombie still pins its PID, hands a death to its
//! caller (which recovers what the dead worker held and records it), and only then reaps it.
//! The watcher thread, which sends `--kill` and `--pause` signals, signals a worker only while
//! it is not reaped (under the same mutex as the reaping), so a signal can never reach a
//! recycled PID.
//!
//! SIGINT: the parent's handler only sets a flag; the watcher asks the workers to stop (the
//! header's `stop` word), they finish their current update and report, and the run ends as
//! interrupted with a partial summary. Workers ignore SIGINT themselves (the terminal sends it
//! to the whole process group): the parent decides.

use std::collections::HashMap;
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::prctl;
use nix::sys::resource::{getrusage, UsageWho};
use nix::sys::signal::{kill, sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::sys::wait::{waitid, waitpid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, getpid, getppid, ForkResult, Pid};

use crate::barrier::{self, Gate};
use crate::clock::now_ns;
use crate::error::Error;
use crate::futex::{Private, Shared};
use crate::region::{status, Region};

/// For tests: `RACEPOOL_FAIL_FORK_AT=N` makes the N-th fork (from 0) fail as if the kernel
/// refused it (EAGAIN), to exercise the clean-up of a pool that is only partly started. As
/// root, RLIMIT_NPROC is not enforced, so a real refusal cannot be provoked portably.
const FAIL_FORK_AT: &str = "RACEPOOL_FAIL_FORK_AT";

/// How long workers may take to reach the start barrier before the run is abandoned.
const START_LIMIT: Duration = Duration::from_secs(60);

/// How a worker process ends, as its exit status says.
pub mod child_exit {
    /// It ran and published its report.
    pub const OK: i32 = 0;
    /// Its parent vanished before the start barrier's release.
    pub const PARENT_GONE: i32 = 3;
    /// Its histogram did not fit its area.
    pub const HISTOGRAM_TOO_LARGE: i32 = 4;
    /// It panicked.
    pub const PANICKED: i32 = 101;
}

/// How one worker ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this code (`child_exit`).
    Code(i32),
    /// A signal killed it: a death, which the caller was told of before the reap.
    Signal(Signal),
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Exit::Code(child_exit::PARENT_GONE) => f.write_str("exited: its parent vanished"),
            Exit::Code(child_exit::HISTOGRAM_TOO_LARGE) => {
                f.write_str("exited: its histogram did not fit its area")
            }
            Exit::Code(child_exit::PANICKED) => f.write_str("panicked"),
            Exit::Code(c) => write!(f, "exited with status {c}"),
            Exit::Signal(sig) => write!(f, "was killed by {sig}"),
        }
    }
}

/// What the pool measured around the workers.
#[derive(Debug)]
pub struct PoolOutcome {
    /// How each worker ended, by worker index.
    pub exits: Vec<Exit>,
    /// Their PIDs (process mode), by worker index.
    pub pids: Vec<i32>,
    /// From the first fork (or thread spawn) until every worker was at the barrier.
    pub spawn_ns: u64,
    /// When the parent released the barrier.
    pub go_ns: u64,
    /// Context switches of the workers during the run: involuntary ones are preemptions.
    pub preemptions: u64,
    pub voluntary_switches: u64,
}

/// A worker seen dead (by a signal), before it is reaped: its PID is still pinned.
#[derive(Clone, Copy, Debug)]
pub struct Dead {
    pub worker: usize,
    pub pid: Pid,
    pub signal: Signal,
    /// Whether we signalled it ourselves, and why.
    pub by: Signalled,
    /// When the death was seen, and when the barrier was released (CLOCK_MONOTONIC ns).
    pub seen_ns: u64,
    pub go_ns: u64,
}

/// Who on our side signalled a worker before it died.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signalled {
    /// Nobody: a death by anyone else is unplanned.
    Nobody,
    /// The watcher, for `--kill`.
    Kill,
    /// torture, to end the run (a stall, a time cap, SIGINT's grace run out).
    Stop,
}

/// Whoever watches a run while the pool reaps it (the progress bar, the faults, the
/// watchdog): runs `body`, which releases the workers and waits for them, while watching.
pub trait Watch {
    /// What the watcher saw and did.
    type Seen;
    fn watch<T>(
        &self,
        region: &Region,
        live: Option<&Live>,
        body: impl FnOnce() -> T,
    ) -> (T, Self::Seen);
}

/// Set by the SIGINT handler; read by the watcher and by the run loop.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

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

/// The generation stamped into lock words (see `step::owner_id`): one per run.
static GENERATION: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

fn next_generation(region: &Region) {
    let generation = GENERATION.fetch_add(1, Relaxed);
    // Relaxed: no worker exists yet; fork (or spawning) publishes the whole region to each.
    region.header().generation.store(generation, Relaxed);
}

/// The workers' PIDs and which are reaped, shared by the reaper and the watcher: a worker is
/// signalled only while it is not reaped, under the lock its reaping takes, so a signal never
/// reaches a recycled PID.
pub struct Live {
    pids: Vec<Pid>,
    state: Mutex<LiveState>,
}

struct LiveState {
    reaped: Vec<bool>,
    /// Who on our side SIGKILLed each worker, if anyone.
    killed: Vec<Signalled>,
}

impl Live {
    fn new(pids: Vec<Pid>) -> Live {
        let n = pids.len();
        Live {
            pids,
            state: Mutex::new(LiveState {
                reaped: vec![false; n],
                killed: vec![Signalled::Nobody; n],
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, LiveState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
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

    /// Sends `sig` (a pause's SIGSTOP or SIGCONT) to worker `w` unless it is already reaped;
    /// true if sent.
    pub fn signal(&self, w: usize, sig: Signal) -> bool {
        let st = self.state();
        !st.reaped[w] && kill(self.pids[w], sig).is_ok()
    }

    /// SIGKILLs worker `w` for `--kill` unless it is already reaped; true if sent.
    pub fn kill(&self, w: usize) -> bool {
        self.kill_for(w, Signalled::Kill)
    }

    fn kill_for(&self, w: usize, why: Signalled) -> bool {
        let mut st = self.state();
        if st.reaped[w] {
            return false;
        }
        if st.killed[w] == Signalled::Nobody {
            st.killed[w] = why;
        }
        kill(self.pids[w], Signal::SIGKILL).is_ok()
    }

    /// Whether worker `w` is reaped.
    pub fn is_reaped(&self, w: usize) -> bool {
        self.state().reaped[w]
    }

    /// Whether worker `w` is neither reaped nor already SIGKILLed (a killed worker still
    /// waiting for a CPU to die on is not a new victim).
    pub fn may_signal(&self, w: usize) -> bool {
        let st = self.state();
        !st.reaped[w] && st.killed[w] == Signalled::Nobody
    }

    /// SIGKILLs every worker not yet reaped, to end the run.
    pub fn kill_all(&self) {
        for w in 0..self.pids.len() {
            self.kill_for(w, Signalled::Stop);
        }
    }

    fn signalled(&self, w: usize) -> Signalled {
        self.state().killed[w]
    }

    /// Reaps worker `w`, which has exited (seen with WNOWAIT).
    fn reap(&self, w: usize) {
        let mut st = self.state();
        while let Err(nix::errno::Errno::EINTR) = waitpid(self.pids[w], None) {}
        st.reaped[w] = true;
    }
}

/// What worker `w` runs: `worker(w, gate)`, its exit code back. `gate` holds its two barriers
/// (`barrier::Gate`): the start barrier returns false when the parent is gone, and the worker
/// returns `child_exit::PARENT_GONE` without starting. A worker passes it once, when it is
/// ready to start: after building its loop, or after connecting to its target (a joined run's
/// workers connect first, so that the release starts updates, not connections); then the done
/// barrier once its loop has ended.
pub type Body<'a> = dyn Fn(usize, &dyn Gate) -> i32 + Sync + 'a;

/// A worker process's barriers: shared futexes, and every wait gives up if the parent dies.
struct ProcessGate<'a> {
    region: &'a Region,
    w: usize,
    parent: Pid,
}

impl ProcessGate<'_> {
    fn parent_alive(&self) -> bool {
        getppid() == self.parent
    }
}

impl Gate for ProcessGate<'_> {
    fn start(&self) -> bool {
        barrier::arrive(self.region.header());
        if !barrier::wait_go::<Shared>(self.region.header(), || self.parent_alive()) {
            return false;
        }
        running(self.region, self.w);
        true
    }
    fn done(&self) {
        barrier::finish(self.region.header(), self.region.worker(self.w), || {
            self.parent_alive()
        });
    }
}

/// A worker thread's barriers: private futexes at the start (no other process waits there).
struct ThreadGate<'a> {
    region: &'a Region,
    w: usize,
}

impl Gate for ThreadGate<'_> {
    fn start(&self) -> bool {
        barrier::arrive(self.region.header());
        barrier::wait_go::<Private>(self.region.header(), || true);
        running(self.region, self.w);
        true
    }
    fn done(&self) {
        barrier::finish(self.region.header(), self.region.worker(self.w), || true);
    }
}

/// Counts worker `w` out at the done barrier when it drops, however its thread ends (a panic
/// too): the others wait there for it.
struct CountOut<'a>(&'a Region, usize);

impl Drop for CountOut<'_> {
    fn drop(&mut self) {
        barrier::count_out(self.0.header(), self.0.worker(self.1));
    }
}

/// Runs `worker(w, gate)` in one forked process per worker while `watch` watches; tells
/// `on_death` of every worker a signal killed, before reaping it.
pub fn run_processes<W: Watch>(
    region: &Region,
    worker: &Body<'_>,
    watch: &W,
    on_death: &mut dyn FnMut(Dead),
) -> Result<(PoolOutcome, W::Seen), Error> {
    let workers = region.worker_count();
    let parent = getpid();
    catch_sigint();
    next_generation(region);
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
            Ok(ForkResult::Child) => child_main(region, w, parent, worker),
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
    let (exits, seen) = watch.watch(region, Some(&live), || {
        go_ns = now_ns();
        barrier::release::<Shared>(region.header());
        reap_all(region, &live, go_ns, on_death)
    });
    let after = children_switches();
    Ok((
        PoolOutcome {
            exits,
            pids: live.pids.iter().map(|p| p.as_raw()).collect(),
            spawn_ns: go_ns - t0,
            go_ns,
            preemptions: after.0 - before.0,
            voluntary_switches: after.1 - before.1,
        },
        seen,
    ))
}

/// Reaps every worker. Each exit is first seen with WNOWAIT (the zombie keeps its PID, so the
/// watcher cannot signal a stranger), then a death is handed to `on_death`, then the worker is
/// reaped. A worker that ended without reaching the done barrier (a death) is counted out
/// there, so the others waiting at it go on. Returns how each worker ended, by index.
fn reap_all(region: &Region, live: &Live, go_ns: u64, on_death: &mut dyn FnMut(Dead)) -> Vec<Exit> {
    let index: HashMap<Pid, usize> = (0..live.len()).map(|w| (live.pid(w), w)).collect();
    let mut exits = vec![None; live.len()];
    let mut left = live.len();
    while left > 0 {
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
        let exit = match st {
            WaitStatus::Signaled(_, signal, _) => {
                on_death(Dead {
                    worker: w,
                    pid,
                    signal,
                    by: live.signalled(w),
                    seen_ns: now_ns(),
                    go_ns,
                });
                Exit::Signal(signal)
            }
            WaitStatus::Exited(_, code) => Exit::Code(code),
            _ => continue,
        };
        barrier::count_out(region.header(), region.worker(w));
        live.reap(w);
        exits[w] = Some(exit);
        left -= 1;
    }
    // A worker never seen (ECHILD early: cannot happen for our own children) counts as lost.
    exits
        .into_iter()
        .map(|e| e.unwrap_or(Exit::Signal(Signal::SIGKILL)))
        .collect()
}

/// Runs `worker(w, gate)` on one thread per worker in this process (private futexes) while `watch`
/// watches. No worker can die alone here: every exit is `child_exit::OK` or its failure code.
pub fn run_threads<W: Watch>(
    region: &Region,
    worker: &Body<'_>,
    watch: &W,
) -> Result<(PoolOutcome, W::Seen), Error> {
    let workers = region.worker_count();
    catch_sigint();
    next_generation(region);
    let before = self_switches();
    let t0 = now_ns();
    let (mut outcome, seen) = std::thread::scope(|scope| -> Result<_, Error> {
        let mut handles = Vec::with_capacity(workers);
        for w in 0..workers {
            let handle = std::thread::Builder::new()
                .name(format!("worker-{w}"))
                .stack_size(256 * 1024)
                .spawn_scoped(scope, move || {
                    let _out = CountOut(region, w);
                    worker(w, &ThreadGate { region, w })
                })
                .map_err(|e| {
                    // Release the workers already waiting so the scope can join them.
                    barrier::release::<Private>(region.header());
                    Error::System(format!("spawning worker thread {w} of {workers}: {e}"))
                })?;
            handles.push(handle);
        }
        while barrier::arrivals(region.header(), Duration::from_millis(20)) < workers as u32 {}
        // The watcher starts before the release, as in process mode: started after it, it
        // would wait for a CPU behind the released workers (seconds, with a thousand) and a run
        // by time would stop that late.
        let mut go_ns = 0;
        let (exits, seen) = watch.watch(region, None, || {
            go_ns = now_ns();
            barrier::release::<Private>(region.header());
            handles
                .into_iter()
                .map(|h| Exit::Code(h.join().unwrap_or(child_exit::PANICKED)))
                .collect::<Vec<_>>()
        });
        Ok((
            PoolOutcome {
                exits,
                pids: Vec::new(),
                spawn_ns: go_ns - t0,
                go_ns,
                preemptions: 0,
                voluntary_switches: 0,
            },
            seen,
        ))
    })?;
    let after = self_switches();
    outcome.preemptions = after.0 - before.0;
    outcome.voluntary_switches = after.1 - before.1;
    Ok((outcome, seen))
}

/// Marks worker `w` past the start barrier: its measured window is open.
fn running(region: &Region, w: usize) {
    // Relaxed: a state for observers (the watcher, a test polling the region); the updates
    // that follow publish nothing through it.
    region.worker(w).status.store(status::RUNNING, Relaxed);
}

fn child_main(region: &Region, w: usize, parent: Pid, worker: &Body<'_>) -> ! {
    // Die with the parent. The ppid check covers a parent that died before the prctl.
    let _ = prctl::set_pdeathsig(Signal::SIGKILL);
    // SIGINT is the parent's to handle (the terminal sends it to the whole group).
    // SAFETY: SIG_IGN installs no handler, so no code runs in signal context.
    let _ = unsafe { nix::sys::signal::signal(Signal::SIGINT, SigHandler::SigIgn) };
    let gate = ProcessGate { region, w, parent };
    let code = if !gate.parent_alive() {
        child_exit::PARENT_GONE
    } else {
        // Relaxed: for observers only; the barrier's SeqCst arrival follows it.
        region
            .worker(w)
            .pid
            .store(getpid().as_raw() as u32, Relaxed);
        let ran = catch_unwind(AssertUnwindSafe(|| worker(w, &gate)));
        // A worker that panicked never reached the done barrier: the others wait for it.
        barrier::count_out(region.header(), region.worker(w));
        ran.unwrap_or(child_exit::PANICKED)
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
    match *st {
        WaitStatus::Exited(_, c) => Exit::Code(c).to_string(),
        WaitStatus::Signaled(_, sig, _) => Exit::Signal(sig).to_string(),
        ref other => format!("{other:?}"),
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
