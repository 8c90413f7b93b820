//! glibc's process-shared robust mutex: what a C program would use. Its own futex protocol
//! decides when to sleep and wake. When its owner died holding it, the kernel's robust list
//! hands it to the next locker with EOWNERDEAD: that locker repairs what it guards (a single
//! word here, written in one store, so it is whole either way) and marks it consistent.

use super::{Applied, Strategy};
use crate::fault::Point;
use crate::probe::Probe;
use crate::region::Slot;
use crate::step;

pub struct Pthread;

impl Strategy for Pthread {
    #[inline]
    fn apply(&self, slot: Slot<'_>, probe: &Probe<'_>) -> Applied {
        probe.waiting(Some(slot.index));
        if slot.mutex.lock().owner_died {
            // The slot's value is one aligned word, stored once by the dead owner or not at
            // all: consistent either way. Nothing to roll back; say it is whole again.
            slot.mutex.make_consistent();
            probe.repaired();
        }
        probe.holding(Some(slot.index));
        probe.point(Point::HoldingLock);
        let read = step::read(slot.value);
        probe.intent(read, read.wrapping_add(1));
        probe.point(Point::AfterRead);
        let written = step::write_successor(slot.value, read);
        probe.won(slot, read, written, 0);
        probe.point(Point::AfterWrite);
        probe.holding(None);
        slot.mutex.unlock();
        Applied {
            read,
            written,
            ..Applied::default()
        }
    }
}
