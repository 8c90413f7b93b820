//! The parent's watcher thread during the measured window: a progress bar on stderr (only when
//! stderr is a terminal), the faults `--kill` and `--pause` ask for, SIGINT, and a watchdog
//! that ends a run which stops making progress, saying who holds which lock and who waits.

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use nix::sys::signal::Signal;

use crate::clock::now_ns;
use crate::error::Error;
use crate::fault::{watcher_rng, Faults, KillPlan, Pause, Victim};
use crate::pick::SplitMix64;
use crate::pool::{self, Live, Watch};
use crate::region::{status, Region};
use crate::report::units::{count, rate, time_left};
use crate::step;

/// A timed run still going at this many times its time limit has collapsed and is stopped.
pub const CAP_FACTOR: u32 = 10;

/// How often the watcher looks, without faults to time.
const TICK: Duration = Duration::from_millis(100);
/// How often it looks when faults must strike at chosen moments of a short window.
const FAULT_TICK: Duration = Duration::from_millis(2);
/// After SIGINT, how long workers get to finish their update and report before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// How a run is watched.
#[derive(Clone, Debug)]
pub struct Watcher {
    pub label: String,
    /// Where this run stands in the invocation, for the bar: `strategy 2 of 3, run 1 of 5`.
    pub position: String,
    pub total: u64,
    /// No update completed anywhere for this long: the run is declared stalled. Time while a
    /// worker is paused by `--pause` does not count (a paused worker is alive).
    pub stall_timeout: Duration,
    /// `--kill` and `--pause` (the strikes are the workers' own business).
    pub faults: Faults,
    /// `--kill`'s victims and when each is killed.
    pub kills: KillPlan,
    /// Seeds the choice of victims and moments.
    pub seed: u64,
    /// Says what the stalled workers wait for (the ledger names a lock cycle), if it can.
    pub explain_stall: Option<fn(&Region) -> Option<String>>,
    /// Run by time: tell the workers to stop after this long, kill them at `CAP_FACTOR` times it.
    pub time_limit: Option<Duration>,
    /// Draw the bar when stderr is a terminal (the bench draws its own progress instead).
    pub show: bool,
}

/// What the watcher saw and did.
#[derive(Debug, Default)]
pub struct WatchOutcome {
    /// Why the run was stopped: stalled (`Error::Worker`, with the lock dump) or still running
    /// at `CAP_FACTOR` times its time limit (`Error::TimeLimit`).
    pub stalled: Option<Error>,
    /// SIGINT arrived: the workers were asked to stop.
    pub interrupted: bool,
    pub kills_sent: u32,
    pub pauses: Vec<Pause>,
}

/// A worker stopped by `--pause`, to be resumed.
struct Paused {
    worker: usize,
    until: Instant,
    record: Pause,
    others_cpu_before: u64,
}

impl Watch for Watcher {
    type Seen = WatchOutcome;

    /// Runs `body` on this thread while a watcher thread shows progress, injects faults and
    /// guards against a stall. `body` starts once the watcher runs (with its priority raised
    /// when it has faults to inject), so it may release the workers itself. On a stall in
    /// process mode it kills the workers (so `body`'s reaping returns) and reports why; in
    /// thread mode it cannot stop threads, so it ends the process. With a time limit it raises the region's stop flag when the limit is spent,
    /// and in process mode kills the workers still running at `CAP_FACTOR` times the limit
    /// (threads cannot be killed: they stop by themselves at their next update).
    fn watch<T>(
        &self,
        region: &Region,
        live: Option<&Live>,
        body: impl FnOnce() -> T,
    ) -> (T, WatchOutcome) {
        let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(1);
        let (ready_tx, ready_rx) = crossbeam_channel::bounded::<()>(1);
        std::thread::scope(|scope| {
            let watcher = scope.spawn(move || {
                // Faults must land mid-run, and a run by time must stop on time: with a
                // thousand runnable workers (threads of this very process, too) the watcher
                // would otherwise look once per scheduler round.
                if (self.faults.any() && live.is_some()) || self.time_limit.is_some() {
                    raise_priority();
                }
                let _ = ready_tx.send(());
                self.watch_loop(region, live, stop_rx)
            });
            // An error here means the watcher ended before it was ready: its join says why.
            let _ = ready_rx.recv();
            let out = body();
            let _ = stop_tx.send(());
            let watched = watcher.join().expect("the watcher thread does not panic");
            (out, watched)
        })
    }
}

impl Watcher {
    fn watch_loop(
        &self,
        region: &Region,
        live: Option<&Live>,
        stop_rx: crossbeam_channel::Receiver<()>,
    ) -> WatchOutcome {
        let bar = if self.show && std::io::stderr().is_terminal() {
            ProgressBar::with_draw_target(Some(self.total), ProgressDrawTarget::stderr())
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(run_style(self.time_limit));
        bar.set_prefix(prefix(&self.position, &self.label));
        let go_ns = now_ns();
        let mut out = WatchOutcome::default();
        let mut rng = watcher_rng(self.seed);
        // Moments, as numbers of completed updates, spread over 5%..90% of the run.
        let mut moments = |n: u32| {
            let lo = self.total / 20;
            let span = (self.total * 17 / 20).max(1);
            let mut m: Vec<u64> = (0..n).map(|_| lo + rng.below(span)).collect();
            m.sort_unstable();
            m.reverse(); // pop() takes the earliest
            m
        };
        // Victims not yet killed; each is killed once it has acknowledged its number of updates
        // (or waits, parked, at its last one).
        let mut victims: Vec<Victim> = match live {
            Some(_) => self.kills.victims.clone(),
            None => Vec::new(),
        };
        let mut pause_at = match (live, self.faults.pause) {
            (Some(_), Some(p)) => moments(p.count),
            _ => Vec::new(),
        };
        let mut rng = watcher_rng(self.seed.rotate_left(17));
        let mut paused: Vec<Paused> = Vec::new();
        let tick = if self.faults.any() { FAULT_TICK } else { TICK };
        let started = Instant::now();
        let mut last = (0u64, started);
        let mut stop_asked: Option<Instant> = None;
        let mut force_killed = false;
        let mut limit_stop_sent = false;
        loop {
            // Wake at the time limit itself, not at the next tick after it.
            let wait = match self.time_limit {
                Some(limit) if !limit_stop_sent => {
                    tick.min(limit.saturating_sub(started.elapsed()))
                }
                _ => tick,
            };
            if stop_rx.recv_timeout(wait).is_ok() {
                break;
            }
            let done = completed(region);
            // Drawn from the parent's samples of the workers' counters: nothing per update.
            bar.set_position(done);

            if let Some(limit) = self.time_limit {
                let elapsed = started.elapsed();
                if !limit_stop_sent && elapsed >= limit {
                    // Relaxed: a request the workers poll; their figures travel by `publish`.
                    region.header().stop.store(1, Relaxed);
                    limit_stop_sent = true;
                }
                if out.stalled.is_none() && elapsed >= limit * CAP_FACTOR {
                    if let Some(live) = live {
                        live.kill_all();
                        out.stalled = Some(Error::TimeLimit(format!(
                            "collapsed: still running at {CAP_FACTOR}x its time limit of {limit:?}; workers stopped"
                        )));
                    }
                }
            }

            if pool::interrupted() && stop_asked.is_none() {
                // Relaxed: a request the workers poll; it publishes nothing.
                region.header().stop.store(1, Relaxed);
                stop_asked = Some(Instant::now());
                out.interrupted = true;
                victims.clear();
                pause_at.clear();
                for p in paused.drain(..) {
                    if let Some(live) = live {
                        live.signal(p.worker, Signal::SIGCONT);
                    }
                }
            }
            if let (Some(t), Some(live)) = (stop_asked, live) {
                if !force_killed && t.elapsed() >= STOP_GRACE {
                    live.kill_all();
                    force_killed = true;
                }
            }

            if let Some(live) = live {
                victims.retain(|v| {
                    let area = region.worker(v.worker);
                    // Relaxed: progress readings; a stale one only kills at the next look.
                    let due =
                        area.completed.load(Relaxed) >= v.at || area.parked.load(Relaxed) != 0;
                    if due && live.kill(v.worker) {
                        out.kills_sent += 1;
                    }
                    !due
                });
                while pause_at.last().is_some_and(|&m| m <= done) {
                    pause_at.pop();
                    let ms = self.faults.pause.map_or(0, |p| p.ms);
                    if let Some(p) = pause_one(region, live, &paused, &mut rng, ms, go_ns) {
                        paused.push(p);
                    }
                }
                let now = Instant::now();
                let mut i = 0;
                while i < paused.len() {
                    if paused[i].until <= now {
                        let mut p = paused.swap_remove(i);
                        live.signal(p.worker, Signal::SIGCONT);
                        let cpu = others_cpu_ticks(live, p.worker);
                        p.record.others_cpu_ms =
                            cpu.saturating_sub(p.others_cpu_before) as f64 * 1000.0 / clk_tck();
                        out.pauses.push(p.record);
                    } else {
                        i += 1;
                    }
                }
            }

            if done != last.0 || !paused.is_empty() || stop_asked.is_some() {
                // Progress, or a pause we made (a stopped worker is alive, not stalled).
                last = (done, Instant::now());
            // With every update done the workers are only reporting and exiting: under a heavy
            // load that can take long, but nothing waits on anything, so it is never a stall.
            } else if out.stalled.is_none()
                && done < self.total
                && last.1.elapsed() >= self.stall_timeout
            {
                // A scenario that explains its stall names its own locks; the strategies'
                // lock dump would only add "no worker holds or waits for a lock" beside it.
                let (head, dump) = match self.explain_stall.and_then(|f| f(region)) {
                    Some(cause) => (format!("{cause};"), String::new()),
                    None => ("stalled:".to_string(), format!("\n{}", lock_dump(region))),
                };
                let why = format!(
                    "{head} no update completed for {:?} ({done} of {} done); workers stopped{dump}",
                    self.stall_timeout,
                    self.total,
                );
                match live {
                    Some(live) => live.kill_all(),
                    None => {
                        // Threads cannot be killed alone: the process ends, with the code a
                        // stalled run has (it could not finish).
                        let stalled = Error::Worker(why);
                        eprintln!("torture: {stalled}");
                        std::process::exit(stalled.exit_code());
                    }
                }
                out.stalled = Some(Error::Worker(why));
            }
        }
        // The run ended with pauses still pending (workers were killed): resume, account.
        if let Some(live) = live {
            for p in paused.drain(..) {
                live.signal(p.worker, Signal::SIGCONT);
                out.pauses.push(p.record);
            }
        }
        bar.finish_and_clear();
        out
    }
}

/// The one progress style of `torture run` and `torture bench`: where the invocation stands
/// and what runs, a bar, then the figures and the ETA (`msg`). Drawn on stderr only.
pub fn style() -> ProgressStyle {
    ProgressStyle::with_template("{prefix} [{bar:20}] {msg}")
        .expect("static template")
        .progress_chars("=> ")
}

/// [`style`] for one run: its message is [`run_message`] of the bar's own position, length and
/// time, so each look draws once.
pub fn run_style(time_limit: Option<Duration>) -> ProgressStyle {
    style().with_key(
        "msg",
        move |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
            let total = state.len().unwrap_or(0);
            let _ = w.write_str(&run_message(
                state.pos(),
                total,
                state.elapsed(),
                time_limit,
            ));
        },
    )
}

/// `i` (from 0) of `n` as a person counts: `strategy 2 of 3`.
pub fn position(what: &str, i: usize, n: usize) -> String {
    format!("{what} {} of {}", count(i as u64 + 1), count(n as u64))
}

/// The bar's prefix: `strategy 2 of 3: cas`.
pub fn prefix(position: &str, label: &str) -> String {
    if position.is_empty() {
        label.to_string()
    } else {
        format!("{position}: {label}")
    }
}

/// `ETA 1m05s`, or `ETA –` before there is anything to go by.
pub fn eta(secs: Option<f64>) -> String {
    format!("ETA {}", secs.map_or("–".into(), time_left))
}

/// The run's figures beside its bar: `1,234,567/4,000,000 updates  6.72M/s  ETA 1s`. The ETA
/// goes by the rate so far, or by the time limit when that comes first.
pub fn run_message(
    done: u64,
    total: u64,
    elapsed: Duration,
    time_limit: Option<Duration>,
) -> String {
    let secs = elapsed.as_secs_f64();
    let per_sec = if secs > 0.0 { done as f64 / secs } else { 0.0 };
    let by_rate = (per_sec > 0.0).then(|| total.saturating_sub(done) as f64 / per_sec);
    let by_limit = time_limit.map(|l| l.saturating_sub(elapsed).as_secs_f64());
    let left = match (by_rate, by_limit) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    format!(
        "{}/{} updates  {}/s  {}",
        count(done),
        count(total),
        rate(per_sec),
        eta(left)
    )
}

/// Raises this (watcher) thread's priority where allowed, so that with a thousand runnable
/// workers it still looks every `FAULT_TICK` instead of once per scheduler round (tens of ms
/// late under CFS even at nice -10, by when a cas worker has long finished). SCHED_FIFO at the
/// lowest real-time priority: the thread sleeps between looks and does microseconds of work
/// in each, and the kernel's real-time throttling bounds it anyway. Best effort: without
/// CAP_SYS_NICE it falls back to nice -10, then stays as it is.
fn raise_priority() {
    let param = libc::sched_param { sched_priority: 1 };
    // SAFETY: gettid, sched_setscheduler and setpriority have no memory preconditions; `param`
    // is a valid sched_param for the call's duration; pid = this thread's TID addresses this
    // thread alone on Linux (the workers are separate processes and keep their policy).
    unsafe {
        let tid = libc::gettid();
        if libc::sched_setscheduler(tid, libc::SCHED_FIFO, &param) != 0 {
            libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, -10);
        }
    }
}

/// Total updates the workers have completed so far (progress; the watchdog's heartbeat).
pub fn completed(region: &Region) -> u64 {
    (0..region.worker_count())
        .map(|w| region.worker(w).completed.load(Relaxed))
        .sum()
}

/// A random worker still running, not killed, not paused: one to pause when no lock holder
/// claimed the request.
fn pick_victim(
    region: &Region,
    live: &Live,
    paused: &[Paused],
    rng: &mut SplitMix64,
) -> Option<usize> {
    let n = live.len();
    let start = rng.below(n as u64) as usize;
    (0..n).map(|i| (start + i) % n).find(|&w| {
        let area = region.worker(w);
        // Relaxed: a choice of worker; a stale reading only picks another one (or one that
        // finishes first: that pause is sent but does not land).
        let running = area.status.load(Relaxed) == status::RUNNING;
        running && live.may_signal(w) && !paused.iter().any(|p| p.worker == w)
    })
}

/// Stops one worker (a lock holder when one can be caught), waits until it is stopped, and
/// notes what it holds.
fn pause_one(
    region: &Region,
    live: &Live,
    paused: &[Paused],
    rng: &mut SplitMix64,
    ms: u64,
    go_ns: u64,
) -> Option<Paused> {
    // Catch a lock holder: ask the next worker that takes a lock to stop itself there (it
    // claims the request with its index + 2); if none does soon (no lock strategy, or the
    // run is ending), stop any running worker.
    let request = &region.header().pause_request;
    // SeqCst: rare; pairs with the claiming CAS in `Probe::point`.
    request.store(1, SeqCst);
    let deadline = Instant::now() + Duration::from_millis(500);
    let claimed = loop {
        match request.load(SeqCst) {
            1 if Instant::now() < deadline => std::thread::sleep(Duration::from_micros(100)),
            1 => match request.compare_exchange(1, 0, SeqCst, SeqCst) {
                Ok(_) => break None,
                Err(v) => break Some(v as usize - 2),
            },
            v => break Some(v as usize - 2),
        }
    };
    request.store(0, SeqCst);
    let w = match claimed {
        Some(w) => w,
        None => {
            let w = pick_victim(region, live, paused, rng)?;
            if !live.signal(w, Signal::SIGSTOP) {
                return None;
            }
            w
        }
    };
    // SIGSTOP is asynchronous: look until the kernel shows it stopped (bounded; a worker that
    // exits meanwhile never shows it).
    let deadline = Instant::now() + Duration::from_secs(2);
    while proc_state(live.pid(w)) != Some('T') && Instant::now() < deadline {
        std::thread::sleep(Duration::from_micros(200));
    }
    // Relaxed: the worker is stopped; what it stored is visible to us after the stop.
    let holding = match region.worker(w).holding.load(Relaxed) {
        0 => None,
        s => {
            let slot = s as usize - 1;
            if slot < region.slot_count() {
                let word = region.slot(slot).lock.load(Relaxed);
                (step::owner_worker(word) == Some(w)).then_some(slot)
            } else {
                // A target's lock (Redis): its holder said so itself before it stopped.
                Some(slot)
            }
        }
    };
    let at = now_ns();
    Some(Paused {
        worker: w,
        until: Instant::now() + Duration::from_millis(ms),
        others_cpu_before: others_cpu_ticks(live, w),
        record: Pause {
            worker: w,
            at_ms: at.saturating_sub(go_ns) as f64 / 1e6,
            ms,
            holding,
            others_cpu_ms: 0.0,
        },
    })
}

/// Who holds which lock and who waits for it, from the lock words and the workers' areas.
pub fn lock_dump(region: &Region) -> String {
    let mut out = String::new();
    let mut slots: Vec<usize> = Vec::new();
    let mut waiting: Vec<(usize, usize)> = Vec::new();
    for w in 0..region.worker_count() {
        let area = region.worker(w);
        // Relaxed: a snapshot for a human; the run is stuck anyway.
        if let Some(s) = area.waiting_on.load(Relaxed).checked_sub(1) {
            waiting.push((s as usize, w));
            slots.push(s as usize);
        }
        if let Some(s) = area.holding.load(Relaxed).checked_sub(1) {
            slots.push(s as usize);
        }
    }
    if slots.is_empty() {
        // Unarmed workers announce nothing: the lock words still name their holders.
        let table = region.slots();
        slots.extend(
            (0..table.len().min(4096))
                .filter(|&s| !step::is_unlocked(table.get(s).lock.load(Relaxed))),
        );
    }
    slots.sort_unstable();
    slots.dedup();
    if slots.is_empty() {
        out.push_str("  no worker holds or waits for a lock");
    }
    for s in slots.iter().take(16) {
        let word = region.slot(*s).lock.load(Relaxed);
        let holder = match step::owner_worker(word) {
            Some(w) => format!(
                "held by worker {w}{}",
                if step::is_contended(word) {
                    " (contended)"
                } else {
                    ""
                }
            ),
            None => "free".into(),
        };
        let mut who: Vec<String> = waiting
            .iter()
            .filter(|(slot, _)| slot == s)
            .map(|(_, w)| w.to_string())
            .collect();
        let more = who.len().saturating_sub(20);
        who.truncate(20);
        if more > 0 {
            who.push(format!("… {more} more"));
        }
        let _ = writeln!(
            out,
            "  slot {s}: lock word {word:#010x} {holder}; waiting: {}",
            if who.is_empty() {
                "nobody".into()
            } else {
                format!("workers {}", who.join(", "))
            }
        );
    }
    out.trim_end().to_string()
}

/// The state letter of a process in /proc (`T` when stopped).
fn proc_state(pid: nix::unistd::Pid) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command is in parentheses and may hold spaces: the state follows the last ')'.
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: nix::unistd::Pid) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0;
    };
    // After ')': state is field 3; utime and stime are fields 14 and 15.
    let f: Vec<&str> = rest.split_whitespace().collect();
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    num(11) + num(12)
}

/// CPU ticks used so far by every live worker but `except`.
fn others_cpu_ticks(live: &Live, except: usize) -> u64 {
    (0..live.len())
        .filter(|&w| w != except && !live.is_reaped(w))
        .map(|w| cpu_ticks(live.pid(w)))
        .sum()
}

fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_says_which_strategy_of_how_many() {
        assert_eq!(position("strategy", 1, 3), "strategy 2 of 3");
        assert_eq!(position("point", 1_233, 2_000), "point 1,234 of 2,000");
        assert_eq!(
            prefix(
                &format!("{}, {}", position("strategy", 0, 2), position("run", 4, 5)),
                "cas"
            ),
            "strategy 1 of 2, run 5 of 5: cas"
        );
        assert_eq!(prefix("", "cas"), "cas");
    }

    #[test]
    fn the_figures_are_human_and_the_eta_follows_the_rate() {
        // 1,234,567 in 0.2 s: 6.17M/s; 2,765,433 left at that rate take 0.448 s.
        assert_eq!(
            run_message(1_234_567, 4_000_000, Duration::from_millis(200), None),
            "1,234,567/4,000,000 updates  6.17M/s  ETA 0s"
        );
        // 1M of 40M in 10 s: 39M left at 100k/s, 390 s.
        assert_eq!(
            run_message(1_000_000, 40_000_000, Duration::from_secs(10), None),
            "1,000,000/40,000,000 updates  100k/s  ETA 6m30s"
        );
        // Nothing done yet: no rate to go by.
        assert_eq!(
            run_message(0, 1_000, Duration::ZERO, None),
            "0/1,000 updates  0/s  ETA –"
        );
    }

    #[test]
    fn a_run_by_time_ends_at_its_limit() {
        // At this rate the updates would take 390 s, but the limit ends the run in 50 s.
        assert_eq!(
            run_message(
                100_000,
                4_000_000,
                Duration::from_secs(10),
                Some(Duration::from_secs(60))
            ),
            "100,000/4,000,000 updates  10k/s  ETA 50s"
        );
        assert!(eta(Some(125.0)).ends_with("2m05s"), "{}", eta(Some(125.0)));
    }
}
