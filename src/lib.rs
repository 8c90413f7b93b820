//! racepool: tortures concurrent update strategies on a shared-memory region across forked
//! worker processes (or threads) and proves, with exact counts, whether any update was lost.
//!
//! Linux only: it relies on memfd, shared futexes and `fork`.

#![deny(unsafe_op_in_unsafe_fn)]

pub mod barrier;
pub mod bench;
pub mod check;
pub mod clock;
pub mod config;
pub mod error;
pub mod futex;
pub mod history;
pub mod latency;
pub mod pool;
pub mod probe;
pub mod progress;
pub mod pthread;
pub mod region;
pub mod report;
pub mod run;
pub mod scenario;
pub mod selftest;
pub mod store;
pub mod strategy;
pub mod verify;
pub mod worker;
pub mod workload;
