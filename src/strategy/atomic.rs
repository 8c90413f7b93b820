//! One indivisible read-modify-write: the hardware's `UPDATE … SET v = v + 1 RETURNING v`.

use super::{Applied, Strategy};
use crate::fault::Point;
use crate::probe::Hooks;
use crate::region::Slot;
use crate::step;

pub struct Atomic;

impl Strategy for Atomic {
    #[inline]
    fn apply<H: Hooks>(&self, slot: Slot<'_>, hooks: &H) -> Applied {
        let read = step::atomic_add(slot.value);
        hooks.won(slot.index, read, read.wrapping_add(1), 0);
        hooks.point(Point::AfterCas);
        Applied {
            read,
            written: read.wrapping_add(1),
            ..Applied::default()
        }
    }
}
