//! The plain counter: every update adds 1 to a slot its worker picks (seeded, so the parent
//! replays each worker's choices), with the run's strategy. Nothing is lost when, per slot,
//! initial + acknowledged ≤ final ≤ initial + acknowledged + in flight (exact without deaths).
//!
//! On the memory target the strategy is monomorphized into the step; with one slot the slot's
//! address is computed once, with many the choice is one multiply-shift (`pick::reduce`). On
//! any other target the step drives the worker's `target::Session`, one call per update.

use super::{Judgement, Plan, WithHooks};
use crate::check;
use crate::pick::SlotPicker;
use crate::probe::Hooks;
use crate::region::{Region, Slot, SlotTable};
use crate::strategy::{self, Strategy, WithStrategy};
use crate::target::{Session, UpdateError};
use crate::worker::{self, Control, Halt, Outcome, Step, WorkerReport};

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

/// The counter on the memory target, waiting for its hooks, then its strategy.
pub struct Memory<'a> {
    pub region: &'a Region,
    pub plan: &'a Plan,
    pub ctl: Control<'a>,
}

impl WithHooks for Memory<'_> {
    type Out = WorkerReport;
    fn with<H: Hooks>(self, hooks: H) -> WorkerReport {
        let plan = self.plan;
        strategy::dispatch(
            plan.variant.mechanism(),
            plan.mode,
            plan.race_window,
            WithHooksAndStrategy { on: self, hooks },
        )
    }
}

struct WithHooksAndStrategy<'a, H> {
    on: Memory<'a>,
    hooks: H,
}

impl<H: Hooks> WithStrategy for WithHooksAndStrategy<'_, H> {
    type Out = WorkerReport;
    fn with<S: Strategy>(self, strategy: &S) -> WorkerReport {
        let Memory { region, plan, ctl } = self.on;
        let hooks = self.hooks;
        if region.slot_count() == 1 {
            let mut step = Counter {
                strategy,
                hooks,
                slots: OneSlot(region.slot(0)),
            };
            worker::run(&mut step, ctl, plan.ops, plan.latency)
        } else {
            let mut step = Counter {
                strategy,
                hooks,
                slots: Picked {
                    table: region.slots(),
                    picker: SlotPicker::new(plan.seed, ctl.worker, plan.slots, plan.pick),
                },
            };
            worker::run(&mut step, ctl, plan.ops, plan.latency)
        }
    }
}

/// One counter update on another target, through the worker's session. The picker moves on
/// only when an update happened: a refused one is tried again on the same slot as the next
/// update, so the parent's replay of `completed` choices stays exact.
pub struct Remote<Se> {
    session: Se,
    picker: SlotPicker,
    slots: usize,
    /// The slot of the next update, chosen but not yet applied.
    next: Option<usize>,
}

impl<Se: Session> Remote<Se> {
    pub fn new(session: Se, plan: &Plan, worker: usize) -> Self {
        Remote {
            session,
            picker: SlotPicker::new(plan.seed, worker, plan.slots, plan.pick),
            slots: plan.slots,
            next: None,
        }
    }
}

impl<Se: Session> Step for Remote<Se> {
    #[inline]
    fn update(&mut self, _: u64) -> Result<Outcome, Halt> {
        let slot = match self.next {
            Some(s) => s,
            None if self.slots == 1 => 0,
            None => self.picker.next_slot(),
        };
        self.next = Some(slot);
        match self.session.update(slot as u32, None) {
            Ok(applied) => {
                self.next = None;
                Ok(Outcome::Applied(applied))
            }
            Err(UpdateError::Rejected(_)) => Ok(Outcome::Rejected),
            Err(UpdateError::Unknown(m)) => Err(Halt::Unknown(m)),
            Err(UpdateError::Fatal(m)) => Err(Halt::Fatal(m)),
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
