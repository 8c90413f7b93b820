//! glibc's process-shared robust mutex: what a C program would use. Its own futex protocol
//! decides when to sleep and wake. When its owner died holding it, the kernel's robust list
//! hands it to the next locker with EOWNERDEAD: that locker repairs what it guards (a single
//! word here, written in one store, so it is whole either way) and marks it consistent.

use super::{Applied, Strategy};
use crate::fault::Point;
use crate::probe::Hooks;
use crate::region::Slot;
use crate::step;

pub struct Pthread;

impl Strategy for Pthread {
    #[inline]
    fn apply<H: Hooks>(&self, slot: Slot<'_>, hooks: &H) -> Applied {
        hooks.waiting(Some(slot.index));
        if slot.mutex.lock().owner_died {
            // The slot's value is one aligned word, stored once by the dead owner or not at
            // all: consistent either way. Nothing to roll back; say it is whole again.
            slot.mutex.make_consistent();
            hooks.repaired();
        }
        hooks.holding(Some(slot.index));
        hooks.point(Point::HoldingLock);
        let read = step::read(slot.value);
        hooks.intent(read, read.wrapping_add(1));
        hooks.point(Point::AfterRead);
        let written = step::write_successor(slot.value, read);
        hooks.won(slot.index, read, written, 0);
        hooks.point(Point::AfterWrite);
        hooks.holding(None);
        slot.mutex.unlock();
        Applied {
            read,
            written,
            ..Applied::default()
        }
    }
}
