//! The futex lock's word without the futex: waiters never sleep. Under oversubscription the
//! holder is preempted and every waiter burns its time slice, which is what this shows.

use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};

use super::futex_lock::{LOCKED, UNLOCKED};
use super::{Applied, Strategy};
use crate::probe::Probe;
use crate::region::Slot;

/// Backoff doubles up to this many spins; after that every wait yields the CPU instead.
const MAX_SPINS: u32 = 64;

pub struct SpinLock;

impl Strategy for SpinLock {
    #[inline]
    fn apply(&self, slot: Slot<'_>, probe: &Probe<'_>) -> Applied {
        let mut retries = 0;
        let mut spins = 1;
        // Acquire: pairs with the Release store below, made by the previous holder.
        while slot
            .lock
            .compare_exchange_weak(UNLOCKED, LOCKED, Acquire, Relaxed)
            .is_err()
        {
            retries += 1;
            // Wait until it looks free (load only), backing off; past the bound, yield: the
            // holder is most likely preempted and needs our CPU more than we do.
            loop {
                if spins <= MAX_SPINS {
                    for _ in 0..spins {
                        std::hint::spin_loop();
                    }
                    spins *= 2;
                } else {
                    std::thread::yield_now();
                }
                if slot.lock.load(Relaxed) == UNLOCKED {
                    break;
                }
            }
        }
        // Relaxed: ordered by the lock's Acquire/Release.
        let read = slot.value.load(Relaxed);
        let written = read.wrapping_add(1);
        slot.value.store(written, Relaxed);
        probe.won(slot, read, written, retries);
        // Release: publishes the critical section to the next Acquire.
        slot.lock.store(UNLOCKED, Release);
        Applied {
            read,
            written,
            retries,
            ..Applied::default()
        }
    }
}
