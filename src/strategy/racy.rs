//! The bug: read, then write what was read plus one. Two workers that read the same value
//! both write the same successor, and one update vanishes.

use super::{Applied, Strategy};
use crate::fault::Point;
use crate::probe::Probe;
use crate::region::Slot;
use crate::step;

pub struct Racy {
    /// Spin iterations between the read and the write, to widen the race on purpose.
    pub window: u32,
}

impl Strategy for Racy {
    #[inline]
    fn apply(&self, slot: Slot<'_>, probe: &Probe<'_>) -> Applied {
        let read = step::read(slot.value);
        probe.intent(read, read.wrapping_add(1));
        probe.after_read(None);
        probe.point(Point::AfterRead);
        for _ in 0..self.window {
            std::hint::spin_loop();
        }
        let written = step::write_successor(slot.value, read);
        probe.won(slot, read, written, 0);
        probe.point(Point::AfterWrite);
        Applied {
            read,
            written,
            ..Applied::default()
        }
    }
}
