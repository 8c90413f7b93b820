//! The two file locks around a read-modify-write: `flock(LOCK_EX)` and an open-file-description
//! lock (`F_OFD_SETLKW`, whole file, write). Both belong to the open file description, not to
//! the process: two workers (processes or threads) each opening the file exclude each other,
//! and the kernel releases a lock when its description is closed, which a dead worker's exit
//! does. (A classic POSIX `F_SETLKW` lock is the process's: threads of one process would all
//! hold it at once, and closing any descriptor of the file drops it.)
//!
//! Each is tried without waiting first, so a contended acquisition shows as one retry and one
//! wait in the summary.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, Flock, FlockArg};

/// Which lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileLock {
    Flock,
    Ofd,
}

/// A file with its lock held (or none taken: the bug's rewrite).
pub enum Held {
    Unlocked(File),
    Flock(Flock<File>),
    Ofd(File),
}

impl Held {
    pub fn file(&self) -> &File {
        match self {
            Held::Flock(guard) => guard,
            Held::Unlocked(file) | Held::Ofd(file) => file,
        }
    }

    /// Releases the lock and hands the file back (closing it would release it too).
    pub fn release(self) -> io::Result<File> {
        match self {
            Held::Unlocked(file) => Ok(file),
            Held::Flock(guard) => guard.unlock().map_err(|(_, e)| e.into()),
            Held::Ofd(file) => ofd(&file, libc::F_UNLCK, Wait::No).map(|_| file),
        }
    }
}

/// Takes `lock` on `file` (none: hands it back as it is); says whether another holder made it
/// wait.
pub fn take(file: File, lock: Option<FileLock>) -> io::Result<(Held, bool)> {
    match lock {
        None => Ok((Held::Unlocked(file), false)),
        Some(FileLock::Flock) => match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(guard) => Ok((Held::Flock(guard), false)),
            Err((file, Errno::EWOULDBLOCK)) => Flock::lock(file, FlockArg::LockExclusive)
                .map(|guard| (Held::Flock(guard), true))
                .map_err(|(_, e)| e.into()),
            Err((_, e)) => Err(e.into()),
        },
        Some(FileLock::Ofd) => {
            let contended = !ofd(&file, libc::F_WRLCK, Wait::No)?;
            if contended {
                ofd(&file, libc::F_WRLCK, Wait::Yes)?;
            }
            Ok((Held::Ofd(file), contended))
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Wait {
    No,
    Yes,
}

/// Sets (or clears, `F_UNLCK`) an OFD lock over the whole file. Without waiting, false when
/// another description holds a conflicting lock.
fn ofd(file: &File, kind: libc::c_int, wait: Wait) -> io::Result<bool> {
    let whole = libc::flock {
        l_type: kind as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: 0,
        // 0: to the end of the file, however long it grows.
        l_len: 0,
        // Must be 0 for OFD locks.
        l_pid: 0,
    };
    loop {
        let arg = match wait {
            Wait::No => FcntlArg::F_OFD_SETLK(&whole),
            Wait::Yes => FcntlArg::F_OFD_SETLKW(&whole),
        };
        match fcntl(file.as_raw_fd(), arg) {
            Ok(_) => return Ok(true),
            Err(Errno::EAGAIN | Errno::EACCES) if wait == Wait::No => return Ok(false),
            // A signal arrived while it waited: wait again.
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}
