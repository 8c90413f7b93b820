//! A lock word taken by CAS that sleeps on a futex when contended: `SELECT … FOR UPDATE`.
//!
//! The protocol (std's futex mutex, with the owner's identity in the word) lives in
//! `step::LockWord`, where `tests/loom.rs` model-checks it; this file wraps it around a slot
//! and reports to its hooks: what the worker waits for and holds, its intent record, and the
//! named points (`holding-lock`, `after-read`, `after-write`, `before-wake`).
//!
//! The scope decides where a wake can reach: `Shared` across processes, with every sleep
//! bounded so a lost wake (its sender died between release and wake) costs a bounded delay,
//! or `Private` for threads. A dead owner's lock is freed by the parent (`LockWord::repair`).

use std::marker::PhantomData;

use super::{Applied, Strategy};
use crate::fault::Point;
use crate::futex::Scope;
use crate::probe::Hooks;
use crate::region::Slot;
use crate::step;

pub use crate::step::LockWord;
use crate::step::CONTENDED;

/// Updates the slot inside the lock.
pub struct FutexLock<S>(PhantomData<S>);

impl<S> FutexLock<S> {
    pub fn new() -> Self {
        FutexLock(PhantomData)
    }
}

impl<S> Default for FutexLock<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: Scope> Strategy for FutexLock<S> {
    #[inline]
    fn apply<H: Hooks>(&self, slot: Slot<'_>, hooks: &H) -> Applied {
        let me = hooks.owner_id();
        hooks.waiting(Some(slot.index));
        let (retries, waits) = LockWord::<S>::lock(slot.lock, me);
        hooks.holding(Some(slot.index));
        hooks.point(Point::HoldingLock);
        let read = step::read(slot.value);
        hooks.intent(read, read.wrapping_add(1));
        // A held worker waits until someone is queued: our identity with CONTENDED set.
        hooks.after_read(Some((slot, me | CONTENDED)));
        hooks.point(Point::AfterRead);
        let written = step::write_successor(slot.value, read);
        hooks.won(slot.index, read, written, retries);
        hooks.point(Point::AfterWrite);
        hooks.holding(None);
        let was = LockWord::<S>::release_word(slot.lock);
        if step::identity(was) != me {
            // A recovery freed our lock while we lived: the failure `lock_steals` counts.
            hooks.robbed();
        }
        let contended = step::is_contended(was);
        hooks.point(Point::BeforeWake);
        if contended {
            LockWord::<S>::wake(slot.lock);
        }
        Applied {
            read,
            written,
            retries,
            waits,
            wakes: contended as u32,
        }
    }
}
