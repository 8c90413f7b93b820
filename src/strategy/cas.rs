//! Optimistic concurrency: read, compute, and write only if nobody wrote in between
//! (`UPDATE … WHERE version = $seen`); otherwise retry from what the failed CAS saw.

use super::{Applied, Strategy};
use crate::fault::Point;
use crate::probe::Hooks;
use crate::region::Slot;
use crate::step;

pub struct Cas;

impl Strategy for Cas {
    #[inline]
    fn apply<H: Hooks>(&self, slot: Slot<'_>, hooks: &H) -> Applied {
        let seen = step::read(slot.value);
        hooks.intent(seen, seen.wrapping_add(1));
        hooks.after_read(None);
        hooks.point(Point::AfterRead);
        let (read, retries) = step::cas_add(slot.value, seen);
        hooks.won(slot.index, read, read.wrapping_add(1), retries);
        hooks.point(Point::AfterCas);
        Applied {
            read,
            written: read.wrapping_add(1),
            retries,
            ..Applied::default()
        }
    }
}
