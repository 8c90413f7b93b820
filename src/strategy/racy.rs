//! The bug: read, then write what was read plus one. Two workers that read the same value
//! both write the same successor, and one update vanishes.

use super::{Applied, Strategy};
use crate::fault::Point;
use crate::probe::Hooks;
use crate::region::Slot;
use crate::step;

pub struct Racy {
    /// Spin iterations between the read and the write, to widen the race on purpose.
    pub window: u32,
}

impl Strategy for Racy {
    #[inline]
    fn apply<H: Hooks>(&self, slot: Slot<'_>, hooks: &H) -> Applied {
        let read = step::read(slot.value);
        hooks.intent(read, read.wrapping_add(1));
        hooks.after_read(None);
        hooks.point(Point::AfterRead);
        for _ in 0..self.window {
            std::hint::spin_loop();
        }
        let written = step::write_successor(slot.value, read);
        hooks.won(slot.index, read, written, 0);
        hooks.point(Point::AfterWrite);
        Applied {
            read,
            written,
            ..Applied::default()
        }
    }
}
