//! Optimistic concurrency: read, compute, and write only if nobody wrote in between
//! (`UPDATE … WHERE version = $seen`); otherwise retry from what the failed CAS saw.

use std::sync::atomic::Ordering::Relaxed;

use super::{Applied, Strategy};
use crate::probe::Probe;
use crate::region::Slot;

pub struct Cas;

impl Strategy for Cas {
    #[inline]
    fn apply(&self, slot: Slot<'_>, probe: &Probe<'_>) -> Applied {
        // Relaxed everywhere: the slot is the only data (see `atomic`); the CAS itself is what
        // makes read and write indivisible.
        let mut seen = slot.value.load(Relaxed);
        probe.after_read(slot, None);
        let mut retries = 0;
        loop {
            let next = seen.wrapping_add(1);
            // Strong CAS: a failure always means another worker won, so `retries` counts
            // real contention, never a spurious failure.
            match slot.value.compare_exchange(seen, next, Relaxed, Relaxed) {
                Ok(_) => {
                    probe.won(slot, seen, next, retries);
                    return Applied {
                        read: seen,
                        written: next,
                        retries,
                        ..Applied::default()
                    };
                }
                Err(current) => {
                    // Reuse what the failed CAS saw instead of loading again.
                    seen = current;
                    retries += 1;
                }
            }
        }
    }
}
