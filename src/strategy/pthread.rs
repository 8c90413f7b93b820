//! glibc's process-shared mutex: what a C program would use. Its own futex protocol decides
//! when to sleep and wake; we only count the update.

use std::sync::atomic::Ordering::Relaxed;

use super::{Applied, Strategy};
use crate::probe::Probe;
use crate::region::Slot;

pub struct Pthread;

impl Strategy for Pthread {
    #[inline]
    fn apply(&self, slot: Slot<'_>, probe: &Probe<'_>) -> Applied {
        slot.mutex.lock();
        // Relaxed: the mutex's lock/unlock order these accesses.
        let read = slot.value.load(Relaxed);
        let written = read.wrapping_add(1);
        slot.value.store(written, Relaxed);
        probe.won(slot, read, written, 0);
        slot.mutex.unlock();
        Applied {
            read,
            written,
            ..Applied::default()
        }
    }
}
