//! The atomics the strategies' core steps use: std's in every build, loom's under `cfg(loom)`,
//! so `tests/loom.rs` model-checks the very functions the workers run (see `step`).

#[cfg(not(loom))]
pub use std::sync::atomic::{AtomicU32, Ordering};

#[cfg(loom)]
pub use loom::sync::atomic::{AtomicU32, Ordering};

#[cfg(loom)]
pub use loom::hint::spin_loop;
/// A spin-wait hint; under loom, a yield so the model can run the thread being waited for.
#[cfg(not(loom))]
pub use std::hint::spin_loop;

#[cfg(loom)]
pub use loom::thread::yield_now;
/// Gives up the CPU; under loom, lets the model schedule another thread.
#[cfg(not(loom))]
pub use std::thread::yield_now;
