//! The few ways a run can fail, each with its exit code.

use std::fmt;

/// Why `torture` stops early. `exit_code` is the one place errors become exit codes
/// (docs/exit-codes.md lists them all).
#[derive(Debug)]
pub enum Error {
    /// Bad input: a flag out of range, a size the machine cannot hold, a file that cannot be
    /// read. Exit 2.
    Usage(String),
    /// The system refused something we needed (fork, mmap, futex): the run could not finish.
    /// Exit 4.
    System(String),
    /// A worker misbehaved, or the run stalled: the run could not finish. Exit 4.
    Worker(String),
    /// The store could not be written (disk full, file size limit): the run proves nothing.
    /// Exit 4.
    Store(String),
    /// A timed run did not end within `CAP_FACTOR` times its time limit; its workers were
    /// killed. The bench marks such a point "collapsed". Exit 4.
    TimeLimit(String),
    /// SIGINT arrived before anything could be reported. Exit 130 (128 + SIGINT).
    Interrupted(String),
    /// A `--target` did not answer, or refused what the run needs. Exit 2.
    Target(String),
    /// The results could not be written: stdout (or a history file) is full or closed. Exit 4.
    Output(String),
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) | Error::Target(_) => 2,
            Error::System(_)
            | Error::Worker(_)
            | Error::Store(_)
            | Error::TimeLimit(_)
            | Error::Output(_) => 4,
            Error::Interrupted(_) => 130,
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
            | Error::TimeLimit(m)
            | Error::Interrupted(m)
            | Error::Target(m)
            | Error::Output(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {}
