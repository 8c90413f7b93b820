//! The parent's watcher thread during the measured window: a progress bar on stderr (only when
//! stderr is a terminal) and a watchdog that ends a run which stops making progress.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::pool;
use crate::region::Region;

const TICK: Duration = Duration::from_millis(100);

/// How a run is watched.
#[derive(Clone, Debug)]
pub struct Watcher {
    pub label: String,
    pub total: u64,
    /// No update completed anywhere for this long: the run is declared stalled.
    pub stall_timeout: Duration,
    /// Says what the stalled workers wait for (the ledger names a lock cycle), if it can.
    pub explain_stall: Option<fn(&Region) -> Option<String>>,
}

impl Watcher {
    /// Runs `body` on this thread while a watcher thread shows progress and guards against a
    /// stall. On a stall in process mode it kills the workers (so `body`'s reaping returns) and
    /// reports why; in thread mode it cannot stop threads, so it ends the process.
    pub fn watch<T>(
        &self,
        region: &Region,
        pids: Option<&[Pid]>,
        body: impl FnOnce() -> T,
    ) -> (T, Option<String>) {
        let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(1);
        std::thread::scope(|scope| {
            let watcher = scope.spawn(move || {
                let bar = if std::io::stderr().is_terminal() {
                    ProgressBar::with_draw_target(Some(self.total), ProgressDrawTarget::stderr())
                } else {
                    ProgressBar::hidden()
                };
                bar.set_style(
                    ProgressStyle::with_template("{prefix:>12} [{bar:30}] {pos}/{len} updates {per_sec}")
                        .expect("static template")
                        .progress_chars("=> "),
                );
                bar.set_prefix(self.label.clone());
                let mut last = (0u64, Instant::now());
                let mut stalled = None;
                while stop_rx.recv_timeout(TICK).is_err() {
                    let done = pool::completed(region);
                    bar.set_position(done);
                    if done != last.0 {
                        last = (done, Instant::now());
                    } else if stalled.is_none() && last.1.elapsed() >= self.stall_timeout {
                        let why = match self.explain_stall.and_then(|f| f(region)) {
                            Some(cause) => format!(
                                "{cause}; no update completed for {:?} ({done} of {} done); workers stopped",
                                self.stall_timeout, self.total
                            ),
                            None => format!(
                                "stalled: no update completed for {:?} ({done} of {} done); workers stopped",
                                self.stall_timeout, self.total
                            ),
                        };
                        match pids {
                            Some(pids) => {
                                for &p in pids {
                                    let _ = kill(p, Signal::SIGKILL);
                                }
                            }
                            None => {
                                eprintln!("torture: {why}");
                                std::process::exit(2);
                            }
                        }
                        stalled = Some(why);
                    }
                }
                bar.finish_and_clear();
                stalled
            });
            let out = body();
            let _ = stop_tx.send(());
            let stalled = watcher.join().expect("the watcher thread does not panic");
            (out, stalled)
        })
    }
}
