//! One indivisible read-modify-write: the hardware's `UPDATE … SET v = v + 1 RETURNING v`.

use std::sync::atomic::Ordering::Relaxed;

use super::{Applied, Strategy};
use crate::probe::Probe;
use crate::region::Slot;

pub struct Atomic;

impl Strategy for Atomic {
    #[inline]
    fn apply(&self, slot: Slot<'_>, probe: &Probe<'_>) -> Applied {
        // Relaxed: the slot is the only data; all RMWs on one atomic form a single
        // modification order, which is all an exact count needs.
        let read = slot.value.fetch_add(1, Relaxed);
        probe.won(slot, read, read.wrapping_add(1), 0);
        Applied {
            read,
            written: read.wrapping_add(1),
            ..Applied::default()
        }
    }
}
