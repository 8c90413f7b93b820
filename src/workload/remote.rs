//! A workload on a target other than memory, in the worker (after the fork): its own session,
//! its winning updates persisted through its own recorder (`--store`), one step per update in
//! the one loop (`worker::run`).
//!
//! Which workloads run here: the plain counter, and each scenario whose slots the target can
//! hold (`ScenarioKind::holds`, `Target::strategies_for`): record, whose worker adds 1 to its
//! own field through the same `Session::update` as a counter worker to its slot, and votes,
//! whose worker sends each ballot as typed through `Session::vote` (a database's constraints
//! refuse the bad ones). Cache would join the same way: a step over a session of its own, one
//! arm in [`work`], and `holds` naming its slots.

use super::{counter, Fix, Plan, Variant, Work};
use crate::barrier::Started;
use crate::fault::Point;
use crate::region::Region;
use crate::store::{NoStore, Persistence, Recorder};
use crate::strategy::Applied;
use crate::target::{CacheFix, EventDraft, RunShape, Session, Target, UpdateError};
use crate::worker::{self, Control, Halt, Outcome, Step, WorkerReport};

/// Worker `w`'s whole run against `target`, in the worker: it connects, then passes its
/// gate's start barrier (false: the parent is gone, None), then runs the loop.
pub fn work<T: Target>(
    target: &T,
    region: &Region,
    ctl: Control<'_>,
    plan: &Plan,
    shape: &RunShape,
) -> Option<WorkerReport> {
    match plan.store.as_deref() {
        None => connected(target, region, ctl, plan, shape, &NoStore),
        Some(store) => {
            // Opened here, in the worker (after the fork): never a file of the parent's.
            let recorder = Recorder::open(store, ctl.worker);
            let report = connected(target, region, ctl, plan, shape, &recorder);
            recorder.finish();
            report
        }
    }
}

fn connected<T: Target, P: Persistence>(
    target: &T,
    region: &Region,
    ctl: Control<'_>,
    plan: &Plan,
    shape: &RunShape,
    persist: &P,
) -> Option<WorkerReport> {
    let w = ctl.worker;
    let gate = ctl.gate;
    // The loop finds the start barrier passed (here, once connected); its done barrier is
    // the gate's.
    let started = Started(gate);
    let ctl = Control {
        gate: &started,
        ..ctl
    };
    if let (Work::Cache { .. }, Variant::Fix(fix)) = (&plan.work, plan.variant) {
        // A cache session of its own (no counter session beside it): after the fork too.
        let connected = match fix {
            Fix::TwoStep => Ok(CacheFix::TwoStep),
            Fix::Multi => Ok(CacheFix::Multi),
            Fix::Script => Ok(CacheFix::Script),
            Fix::Watch => Ok(CacheFix::Watch),
            other => Err(UpdateError::Fatal(format!(
                "{} does not run --scenario cache --fix {}",
                target.kind().name(),
                other.name()
            ))),
        }
        .and_then(|fix| target.connect_cache(shape, w, fix));
        // A worker that could not connect still arrives: it halts at its first update.
        if !gate.start() {
            return None;
        }
        return match connected {
            Ok(ops) => {
                let mut step = super::cache::RemoteCache::new(ops, region, plan, w);
                worker::run(&mut step, ctl, plan.ops, plan.latency, plan.clock)
            }
            Err(e) => {
                let mut step = Unconnected(Some(format!("connecting: {e}")));
                worker::run(&mut step, ctl, plan.ops, plan.latency, plan.clock)
            }
        };
    }
    // Connected here, in the worker (after the fork): never a connection of the parent's.
    let connected = target.connect(shape, w, plan.variant.mechanism());
    // A worker that could not connect still arrives: it halts at its first update.
    if !gate.start() {
        return None;
    }
    let session = match connected {
        Ok(session) => Recorded { session, persist },
        Err(e) => {
            let mut step = Unconnected(Some(format!("connecting: {e}")));
            return worker::run(&mut step, ctl, plan.ops, plan.latency, plan.clock);
        }
    };
    match plan.work {
        Work::Counter => {
            // `--pause` asks, through the region, for the next lock holder to stop itself.
            let pause = plan.armed.then_some((ctl.header, ctl.area));
            let mut step = counter::Remote::new(session, plan, w)
                .pausing(pause)
                .reporting(ctl.area);
            worker::run(&mut step, ctl, plan.ops, plan.latency, plan.clock)
        }
        Work::Votes { .. } => {
            let mut step = super::votes::RemoteVote::new(session, region, plan, w);
            worker::run(&mut step, ctl, plan.ops, plan.latency, plan.clock)
        }
        Work::Record => {
            let mut step = Field {
                session,
                field: (w % plan.slots) as u32,
            };
            worker::run(&mut step, ctl, plan.ops, plan.latency, plan.clock)
        }
        _ => unreachable!("validated: {} runs on memory only", plan.label()),
    }
}

/// A session whose winning updates are persisted: each update's invoke time is taken before
/// it starts, and its event written when the session says it won (inside a lock's critical
/// section: `Session::update_then`). Without a store (`NoStore`) this is the session itself.
struct Recorded<'p, Se, P> {
    session: Se,
    persist: &'p P,
}

impl<Se: Session, P: Persistence> Session for Recorded<'_, Se, P> {
    #[inline]
    fn update(&mut self, slot: u32, event: Option<EventDraft>) -> Result<Applied, UpdateError> {
        if self.persist.failed() {
            // The parent reports the store's own failure, which explains this one.
            return Err(UpdateError::Fatal("stopped: the store failed".into()));
        }
        self.persist.begin();
        let persist = self.persist;
        self.session.update_then(slot, event, |a| {
            persist.won(slot as usize, a.read, a.written, a.retries)
        })
    }

    fn robbed(&self) -> u64 {
        self.session.robbed()
    }

    /// Ballots are recorded by the target itself (`--store target`) or not at all: a file
    /// store is refused for votes on a target (`Options::validate`).
    fn vote(&mut self, ballot: &str) -> Result<Applied, UpdateError> {
        self.session.vote(ballot)
    }

    fn update_at(
        &mut self,
        slot: u32,
        event: Option<EventDraft>,
        at: &mut dyn FnMut(Point),
    ) -> Result<Applied, UpdateError> {
        if self.persist.failed() {
            return Err(UpdateError::Fatal("stopped: the store failed".into()));
        }
        self.persist.begin();
        let a = self.session.update_at(slot, event, at)?;
        self.persist
            .won(slot as usize, a.read, a.written, a.retries);
        Ok(a)
    }
}

/// record: the worker changes its own field (worker w, field w mod F), the variant's way.
struct Field<Se> {
    session: Se,
    field: u32,
}

impl<Se: Session> Step for Field<Se> {
    #[inline]
    fn update(&mut self, _: u64) -> Result<Outcome, Halt> {
        match self.session.update(self.field, None) {
            Ok(applied) => Ok(Outcome::Applied(applied)),
            Err(UpdateError::Rejected(_)) => Ok(Outcome::Rejected),
            Err(UpdateError::Unknown(m)) => Err(Halt::Unknown(m)),
            Err(UpdateError::Fatal(m)) => Err(Halt::Fatal(m)),
        }
    }
}

/// A worker whose session could not be opened: it halts before its first update.
struct Unconnected(Option<String>);

impl Step for Unconnected {
    fn update(&mut self, _: u64) -> Result<Outcome, Halt> {
        Err(Halt::Fatal(self.0.take().unwrap_or_default()))
    }
}
