//! racepool: tortures concurrent update strategies on a shared-memory region across forked
//! worker processes (or threads) and proves, with exact counts, whether any update was lost.
//!
//! Linux only: it relies on memfd, shared futexes and `fork`.

#![deny(unsafe_op_in_unsafe_fn)]

// Under `cfg(loom)` only the shim, the futex trait and the core steps build (`tests/loom.rs`):
// everything else lives in mmap memory or forks, where loom's atomics cannot go.
pub mod futex;
pub mod step;
pub mod sync;

#[cfg(not(loom))]
pub mod barrier;
#[cfg(not(loom))]
pub mod bench;
#[cfg(not(loom))]
pub mod check;
#[cfg(not(loom))]
pub mod clock;
#[cfg(not(loom))]
pub mod error;
#[cfg(not(loom))]
pub mod fault;
#[cfg(not(loom))]
pub mod history;
#[cfg(not(loom))]
pub mod join;
#[cfg(not(loom))]
pub mod latency;
#[cfg(not(loom))]
pub mod options;
#[cfg(not(loom))]
pub mod peer;
#[cfg(not(loom))]
pub mod pick;
#[cfg(not(loom))]
pub mod pool;
#[cfg(not(loom))]
pub mod probe;
#[cfg(not(loom))]
pub mod progress;
#[cfg(not(loom))]
pub mod pthread;
#[cfg(not(loom))]
pub mod region;
#[cfg(not(loom))]
pub mod report;
#[cfg(not(loom))]
pub mod run;
#[cfg(not(loom))]
pub mod selftest;
#[cfg(not(loom))]
pub mod store;
#[cfg(not(loom))]
pub mod strategy;
#[cfg(not(loom))]
pub mod target;
#[cfg(not(loom))]
pub mod timing;
#[cfg(not(loom))]
pub mod verify;
#[cfg(not(loom))]
pub mod worker;
#[cfg(not(loom))]
pub mod workload;
