//! One indivisible read-modify-write: the hardware's `UPDATE … SET v = v + 1 RETURNING v`.

use super::{Applied, Strategy};
use crate::fault::Point;
use crate::probe::Probe;
use crate::region::Slot;
use crate::step;

pub struct Atomic;

impl Strategy for Atomic {
    #[inline]
    fn apply(&self, slot: Slot<'_>, probe: &Probe<'_>) -> Applied {
        let read = step::atomic_add(slot.value);
        probe.won(slot, read, read.wrapping_add(1), 0);
        probe.point(Point::AfterCas);
        Applied {
            read,
            written: read.wrapping_add(1),
            ..Applied::default()
        }
    }
}
