//! The futex lock's word without the futex: waiters never sleep. Under oversubscription the
//! holder is preempted and every waiter burns its time slice, which is what this shows.

use super::{Applied, Strategy};
use crate::fault::Point;
use crate::probe::Hooks;
use crate::region::Slot;
use crate::step;

pub struct SpinLock;

impl Strategy for SpinLock {
    #[inline]
    fn apply<H: Hooks>(&self, slot: Slot<'_>, hooks: &H) -> Applied {
        hooks.waiting(Some(slot.index));
        let retries = step::spin_lock(slot.lock, hooks.owner_id());
        hooks.holding(Some(slot.index));
        hooks.point(Point::HoldingLock);
        let read = step::read(slot.value);
        hooks.intent(read, read.wrapping_add(1));
        hooks.point(Point::AfterRead);
        let written = step::write_successor(slot.value, read);
        hooks.won(slot.index, read, written, retries);
        hooks.point(Point::AfterWrite);
        hooks.holding(None);
        step::spin_unlock(slot.lock);
        Applied {
            read,
            written,
            retries,
            ..Applied::default()
        }
    }
}
