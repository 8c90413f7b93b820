//! The few ways a run can fail, each with its exit code (the contract, in one place):
//!
//! | code | meaning |
//! | --- | --- |
//! | 0 | everything promised held |
//! | 1 | a check failed (decided by the caller from the summary, not an `Error`) |
//! | 2 | bad input: a flag, a file, a target that cannot be reached or cannot take the run |
//! | 3 | completed, bounds held, but workers died that nobody asked to kill (the caller) |
//! | 4 | the run could not finish: fork/mmap refused, a worker failed, the store or the target failed mid-run, a timed run collapsed, the output could not be written |
//! | 130 | interrupted by SIGINT |

use std::fmt;

/// Why `torture` stops early. `exit_code` is the one place errors become exit codes
/// (docs/exit-codes.md lists them all).
#[derive(Debug)]
pub enum Error {
    /// Bad input: a flag out of range, a size the machine cannot hold, a file that cannot be
    /// read or created. Exit 2.
    Usage(String),
    /// A `--target` did not answer, or refused what the run needs, before anything forked.
    /// Exit 2.
    Target(String),
    /// The system refused something we needed mid-run (fork, mmap, futex). Exit 4.
    System(String),
    /// A worker failed in a way that is not data (it panicked, exited without a report), or a
    /// run stalled, so its counts cannot be trusted. Exit 4.
    Worker(String),
    /// The store could not be written (disk full, file size limit): the run proves nothing.
    /// Exit 4.
    Store(String),
    /// The target failed mid-run (`UpdateError::Fatal`): the run proves nothing. Exit 4.
    TargetFailed(String),
    /// A timed run did not end within `CAP_FACTOR` times its time limit; its workers were
    /// killed. The bench marks such a point "collapsed". Exit 4.
    TimeLimit(String),
    /// A joined run (`--join`) could not go on: a host missing at the start barrier, or one
    /// that gave up; every host of the run fails with it. Exit 4.
    Join(String),
    /// SIGINT arrived before anything could be reported. Exit 130 (128 + SIGINT).
    Interrupted(String),
    /// The results could not be written: stdout (or a history file) is full or closed. Exit 4.
    Output(String),
}

/// Exit codes the caller decides from a finished run's summary.
pub mod exit {
    /// A check failed: an exact strategy lost updates or broke its invariant.
    pub const CHECK_FAILED: u8 = 1;
    /// The run completed and its bounds held, but workers died that nobody asked to kill.
    pub const UNPLANNED_DEATHS: u8 = 3;
    /// Interrupted by SIGINT (128 + SIGINT, as a shell reports Ctrl-C).
    pub const INTERRUPTED: u8 = 130;
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) | Error::Target(_) => 2,
            Error::System(_)
            | Error::Worker(_)
            | Error::Store(_)
            | Error::TargetFailed(_)
            | Error::TimeLimit(_)
            | Error::Output(_)
            | Error::Join(_) => 4,
            Error::Interrupted(_) => exit::INTERRUPTED as i32,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(m)
            | Error::System(m)
            | Error::Worker(m)
            | Error::Store(m)
            | Error::TargetFailed(m)
            | Error::TimeLimit(m)
            | Error::Interrupted(m)
            | Error::Target(m)
            | Error::Join(m)
            | Error::Output(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {}
