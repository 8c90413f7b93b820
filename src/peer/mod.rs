//! Peers: other tools run on the same system with the same statements or commands, so
//! racepool's figures can be given as ratios to theirs.

pub mod pgbench;
pub mod redis_benchmark;
