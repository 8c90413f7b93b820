//! Other programs that do what racepool measures, run beside it so the bench can report
//! racepool's rate as a ratio to theirs.

pub mod redis_benchmark;
