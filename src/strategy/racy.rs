//! The bug: read, then write what was read plus one. Two workers that read the same value
//! both write the same successor, and one update vanishes.

use std::sync::atomic::Ordering::Relaxed;

use super::{Applied, Strategy};
use crate::probe::Probe;
use crate::region::Slot;

pub struct Racy {
    /// Spin iterations between the read and the write, to widen the race on purpose.
    pub window: u32,
}

impl Strategy for Racy {
    #[inline]
    fn apply(&self, slot: Slot<'_>, probe: &Probe<'_>) -> Applied {
        // Relaxed: racy by design; atomics only keep the race defined behaviour.
        let read = slot.value.load(Relaxed);
        probe.after_read(slot, None);
        for _ in 0..self.window {
            std::hint::spin_loop();
        }
        let written = read.wrapping_add(1);
        slot.value.store(written, Relaxed);
        probe.won(slot, read, written, 0);
        Applied {
            read,
            written,
            ..Applied::default()
        }
    }
}
