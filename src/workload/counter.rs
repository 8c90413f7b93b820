//! The plain counter: every update adds 1 to a slot its worker picks (seeded, so the parent
//! replays each worker's choices), with the run's strategy. Nothing is lost when, per slot,
//! initial + acknowledged ≤ final ≤ initial + acknowledged + in flight (exact without deaths).
//!
//! On the memory target the strategy is monomorphized into the step; with one slot the slot's
//! address is computed once, with many the choice is one multiply-shift (`pick::reduce`). On
//! any other target the step drives the worker's `target::Session`, one call per update.

use super::{Judgement, Plan, StrategyWorker, Worker};
use std::sync::atomic::Ordering::{Relaxed, SeqCst};

use crate::check;
use crate::fault::Point;
use crate::pick::SlotPicker;
use crate::probe::Hooks;
use crate::region::{Header, WorkerArea};
use crate::region::{Slot, SlotTable};
use crate::strategy::Strategy;
use crate::target::{EventDraft, Session, UpdateError};
use crate::worker::{self, Halt, Outcome, Step, WorkerReport};

/// Where each update's slot comes from.
pub trait Slots<'a> {
    fn next(&mut self) -> Slot<'a>;
}

/// One slot: its address, computed once.
pub struct OneSlot<'a>(Slot<'a>);

impl<'a> Slots<'a> for OneSlot<'a> {
    #[inline(always)]
    fn next(&mut self) -> Slot<'a> {
        self.0
    }
}

/// Many slots: the worker's seeded choices, addressed through the slot table.
pub struct Picked<'a> {
    table: SlotTable<'a>,
    picker: SlotPicker,
}

impl<'a> Slots<'a> for Picked<'a> {
    #[inline(always)]
    fn next(&mut self) -> Slot<'a> {
        self.table.get(self.picker.next_slot())
    }
}

/// One counter update on the region: pick a slot, apply the strategy.
pub struct Counter<'s, S, H, P> {
    strategy: &'s S,
    hooks: H,
    slots: P,
}

impl<'a, S: Strategy, H: Hooks, P: Slots<'a>> Step for Counter<'_, S, H, P> {
    /// A memory update takes nanoseconds (or, under a contended lock, microseconds): 16 of
    /// them between looks at the stop word delay a stop by nothing anyone can see.
    const STOP_EVERY: u64 = 16;
    #[inline(always)]
    fn update(&mut self, i: u64) -> Result<Outcome, Halt> {
        if self.hooks.store_failed() {
            return Err(Halt::Store);
        }
        let slot = self.slots.next();
        self.hooks.begin(slot.index, i + 1);
        Ok(Outcome::Applied(self.strategy.apply(slot, &self.hooks)))
    }
}

/// The counter on the memory target, once its hooks and strategy are chosen.
pub struct Memory;

impl StrategyWorker for Memory {
    fn run<S: Strategy, H: Hooks>(
        self,
        on: Worker<'_>,
        strategy: &S,
        hooks: H,
    ) -> Option<WorkerReport> {
        let Worker { region, plan, ctl } = on;
        if region.slot_count() == 1 {
            let mut step = Counter {
                strategy,
                hooks,
                slots: OneSlot(region.slot(0)),
            };
            worker::run(&mut step, ctl, plan.ops, plan.latency, plan.clock)
        } else {
            let mut step = Counter {
                strategy,
                hooks,
                slots: Picked {
                    table: region.slots(),
                    picker: SlotPicker::new(plan.seed, ctl.worker, plan.slots, plan.pick),
                },
            };
            worker::run(&mut step, ctl, plan.ops, plan.latency, plan.clock)
        }
    }
}

/// One counter update on another target, through the worker's session. The picker moves on
/// only when an update happened: a refused one is tried again on the same slot as the next
/// update, so the parent's replay of `completed` choices stays exact.
pub struct Remote<'h, Se> {
    session: Se,
    picker: SlotPicker,
    slots: usize,
    /// The slot of the next update, chosen but not yet applied.
    next: Option<usize>,
    worker: usize,
    /// `--store target`: each update carries its event, numbered from 0 by `seq`.
    events: bool,
    seq: u64,
    /// The worker's area, where `finish` reports the session's robbed releases.
    area: Option<&'h WorkerArea>,
    /// `--pause`: the region's header, whose pause request a lock holder claims, and the
    /// worker's area, where it says which slot's lock it holds while stopped.
    pause: Option<(&'h Header, &'h WorkerArea)>,
}

impl<'h, Se: Session> Remote<'h, Se> {
    pub fn new(session: Se, plan: &Plan, worker: usize) -> Self {
        Remote {
            session,
            picker: SlotPicker::new(plan.seed, worker, plan.slots, plan.pick),
            slots: plan.slots,
            next: None,
            worker,
            events: plan.events,
            seq: 0,
            area: None,
            pause: None,
        }
    }

    /// Reports the session's robbed releases (a lock that expired under its holder) into
    /// `area` at the end, where the run's fault report counts lock steals.
    pub fn reporting(mut self, area: &'h WorkerArea) -> Self {
        self.area = Some(area);
        self
    }

    /// With `Some(header)`, the session stops itself holding a lock when the watcher asks
    /// (`--pause`), as a memory worker's probe does.
    pub fn pausing(mut self, pause: Option<(&'h Header, &'h WorkerArea)>) -> Self {
        self.pause = pause;
        self
    }
}

/// Claims the watcher's pause request at a lock holder's point and stops there (SIGSTOP): the
/// watcher resumes it after `--pause`'s MS. It claims with its index + 2, as `probe` does.
fn pause_holding(header: &Header, area: &WorkerArea, worker: usize, slot: usize, point: Point) {
    // Relaxed: a request polled here; the claim below is the CAS that decides.
    if point != Point::HoldingLock || header.pause_request.load(Relaxed) != 1 {
        return;
    }
    // SeqCst: rare; pairs with the watcher's SeqCst request and read in `progress::pause_one`.
    if header
        .pause_request
        .compare_exchange(1, worker as u32 + 2, SeqCst, SeqCst)
        .is_ok()
    {
        // Relaxed: read by the watcher once it sees this process stopped.
        area.holding.store(slot as u32 + 1, Relaxed);
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGSTOP);
        area.holding.store(0, Relaxed);
    }
}

impl<Se: Session> Step for Remote<'_, Se> {
    #[inline]
    fn update(&mut self, _: u64) -> Result<Outcome, Halt> {
        let slot = match self.next {
            Some(s) => s,
            None if self.slots == 1 => 0,
            None => self.picker.next_slot(),
        };
        self.next = Some(slot);
        let event = self.events.then(|| EventDraft {
            worker: self.worker as u32,
            seq: self.seq,
            invoke_ns: crate::clock::now_ns(),
        });
        let result = match self.pause {
            None => self.session.update(slot as u32, event),
            Some((header, area)) => {
                let w = self.worker;
                self.session.update_at(slot as u32, event, &mut |p| {
                    pause_holding(header, area, w, slot, p)
                })
            }
        };
        match result {
            Ok(applied) => {
                self.next = None;
                self.seq += u64::from(self.events);
                Ok(Outcome::Applied(applied))
            }
            Err(UpdateError::Rejected(_)) => Ok(Outcome::Rejected),
            Err(UpdateError::Unknown(m)) => Err(Halt::Unknown(m)),
            Err(UpdateError::Fatal(m)) => Err(Halt::Fatal(m)),
        }
    }

    fn finish(&mut self) {
        if let Some(area) = self.area {
            let robbed = u32::try_from(self.session.robbed()).unwrap_or(u32::MAX);
            // Relaxed: a counter the parent reads after the worker is done (its Release store
            // of DONE publishes it).
            area.robbed.fetch_add(robbed, Relaxed);
        }
    }
}

/// Per slot: the initial value plus every acknowledged update at least, plus the updates in
/// flight at most.
pub fn check(
    plan: &Plan,
    finals: &[u32],
    reports: &[WorkerReport],
    in_flight: &[u64],
) -> Judgement {
    let mut applied = vec![0u64; finals.len()];
    for r in reports {
        SlotPicker::new(plan.seed, r.worker, finals.len(), plan.pick)
            .replay(r.completed, &mut applied);
    }
    let (count, mut wrong_slots) = check::bounded_count(plan.initial, &applied, in_flight, finals);
    wrong_slots.truncate(16);
    Judgement {
        count,
        wrong_slots,
        check: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::latency::LatencyMode;
    use crate::pick::Pick;
    use crate::strategy::{Applied, Mode};
    use crate::workload::{Variant, Work};

    /// A session that answers from a script, and notes which slot each call named.
    struct Scripted {
        answers: Vec<Result<Applied, UpdateError>>,
        slots: Vec<u32>,
    }

    impl Session for Scripted {
        fn update(
            &mut self,
            slot: u32,
            _: Option<crate::target::EventDraft>,
        ) -> Result<Applied, UpdateError> {
            self.slots.push(slot);
            self.answers.remove(0)
        }
    }

    fn plan(slots: usize) -> Plan {
        Plan {
            work: Work::Counter,
            variant: Variant::Strategy(crate::strategy::StrategyKind::Racy),
            mode: Mode::Processes,
            workers: 1,
            slots,
            ops: 10,
            seed: 3,
            pick: Pick::Uniform,
            initial: 0,
            latency: LatencyMode::Off,
            clock: crate::clock::Clock::monotonic(),
            race_window: 0,
            hold_after_read: false,
            store: None,
            events: false,
            strike: None,
            kills: Default::default(),
            armed: false,
        }
    }

    #[test]
    fn a_refused_update_is_counted_and_retried_on_the_same_slot() {
        let ok = || Ok(Applied::default());
        let session = Scripted {
            answers: vec![
                ok(),
                Err(UpdateError::Rejected("no such option")),
                ok(),
                ok(),
            ],
            slots: Vec::new(),
        };
        let plan = plan(64);
        let mut step = Remote::new(session, &plan, 0);
        let outcomes: Vec<_> = (0..4).map(|i| step.update(i)).collect();
        assert_eq!(outcomes[1], Ok(Outcome::Rejected));
        assert!(outcomes
            .iter()
            .filter(|o| **o != Ok(Outcome::Rejected))
            .all(|o| o.is_ok()));
        // The slots asked for are the worker's first three choices, the refused one twice:
        // the parent's replay of three acknowledged updates names the same three.
        let mut picker = SlotPicker::new(3, 0, 64, Pick::Uniform);
        let (a, b, c) = (picker.next_slot(), picker.next_slot(), picker.next_slot());
        assert_eq!(
            step.session.slots,
            vec![a as u32, b as u32, b as u32, c as u32]
        );
    }

    #[test]
    fn a_lost_outcome_halts_in_flight_and_a_fatal_error_halts_the_run() {
        let plan = plan(1);
        for (answer, halt) in [
            (
                UpdateError::Unknown("connection reset".into()),
                Halt::Unknown("connection reset".into()),
            ),
            (
                UpdateError::Fatal("disk full".into()),
                Halt::Fatal("disk full".into()),
            ),
        ] {
            let session = Scripted {
                answers: vec![Err(answer)],
                slots: Vec::new(),
            };
            let mut step = Remote::new(session, &plan, 0);
            assert_eq!(step.update(0), Err(halt));
            assert_eq!(step.session.slots, vec![0]);
        }
    }
}
