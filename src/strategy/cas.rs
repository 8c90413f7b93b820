//! Optimistic concurrency: read, compute, and write only if nobody wrote in between
//! (`UPDATE … WHERE version = $seen`); otherwise retry from what the failed CAS saw.

use super::{Applied, Strategy};
use crate::fault::Point;
use crate::probe::Probe;
use crate::region::Slot;
use crate::step;

pub struct Cas;

impl Strategy for Cas {
    #[inline]
    fn apply(&self, slot: Slot<'_>, probe: &Probe<'_>) -> Applied {
        let seen = step::read(slot.value);
        probe.intent(seen, seen.wrapping_add(1));
        probe.after_read(None);
        probe.point(Point::AfterRead);
        let (read, retries) = step::cas_add(slot.value, seen);
        probe.won(slot, read, read.wrapping_add(1), retries);
        probe.point(Point::AfterCas);
        Applied {
            read,
            written: read.wrapping_add(1),
            retries,
            ..Applied::default()
        }
    }
}
