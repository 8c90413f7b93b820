//! The futex lock's word without the futex: waiters never sleep. Under oversubscription the
//! holder is preempted and every waiter burns its time slice, which is what this shows.

use super::{Applied, Strategy};
use crate::fault::Point;
use crate::probe::Probe;
use crate::region::Slot;
use crate::step;

pub struct SpinLock;

impl Strategy for SpinLock {
    #[inline]
    fn apply(&self, slot: Slot<'_>, probe: &Probe<'_>) -> Applied {
        probe.waiting(Some(slot.index));
        let retries = step::spin_lock(slot.lock, probe.owner_id());
        probe.holding(Some(slot.index));
        probe.point(Point::HoldingLock);
        let read = step::read(slot.value);
        probe.intent(read, read.wrapping_add(1));
        probe.point(Point::AfterRead);
        let written = step::write_successor(slot.value, read);
        probe.won(slot, read, written, retries);
        probe.point(Point::AfterWrite);
        probe.holding(None);
        step::spin_unlock(slot.lock);
        Applied {
            read,
            written,
            retries,
            ..Applied::default()
        }
    }
}
