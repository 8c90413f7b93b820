//! A glibc `pthread_mutex_t` living in shared memory, initialised `PTHREAD_PROCESS_SHARED`:
//! the baseline a C programmer would reach for. It is also robust (`PTHREAD_MUTEX_ROBUST`):
//! glibc registers it on the thread's robust list (`set_robust_list`), so when its owner dies
//! the kernel marks it FUTEX_OWNER_DIED and wakes a waiter, whose lock returns EOWNERDEAD.

use std::cell::UnsafeCell;

use crate::error::Error;

/// What `lock` found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub struct Locked {
    pub owner_died: bool,
}

/// A process-shared pthread mutex. It never moves: it lives at a fixed offset of the region.
#[repr(transparent)]
pub struct PthreadMutex(UnsafeCell<libc::pthread_mutex_t>);

// SAFETY: a process-shared pthread mutex is designed to be used from many threads and processes
// at once; every access goes through the pthread functions, which synchronise internally.
unsafe impl Sync for PthreadMutex {}

fn check(what: &str, rc: libc::c_int) -> Result<(), Error> {
    if rc == 0 {
        Ok(())
    } else {
        Err(Error::System(format!(
            "{what}: {}",
            std::io::Error::from_raw_os_error(rc)
        )))
    }
}

impl PthreadMutex {
    /// Initialises the mutex in place as process-shared. Call once, before any worker exists.
    pub fn init(&self) -> Result<(), Error> {
        let mut attr = std::mem::MaybeUninit::<libc::pthread_mutexattr_t>::uninit();
        // SAFETY: `attr` is a valid out-pointer; it is initialised by pthread_mutexattr_init
        // before the other attr calls, and destroyed once the mutex is initialised. The mutex
        // pointer is valid, aligned and not yet in use by anyone (called before any fork).
        unsafe {
            check(
                "pthread_mutexattr_init",
                libc::pthread_mutexattr_init(attr.as_mut_ptr()),
            )?;
            let shared =
                libc::pthread_mutexattr_setpshared(attr.as_mut_ptr(), libc::PTHREAD_PROCESS_SHARED);
            let robust =
                libc::pthread_mutexattr_setrobust(attr.as_mut_ptr(), libc::PTHREAD_MUTEX_ROBUST);
            let init = libc::pthread_mutex_init(self.0.get(), attr.as_ptr());
            libc::pthread_mutexattr_destroy(attr.as_mut_ptr());
            check("pthread_mutexattr_setpshared", shared)?;
            check("pthread_mutexattr_setrobust", robust)?;
            check("pthread_mutex_init", init)
        }
    }

    /// Takes the mutex. `owner_died`: its previous owner died holding it; the caller now
    /// holds it, repairs what it guards, then calls `make_consistent` before `unlock`.
    #[inline]
    pub fn lock(&self) -> Locked {
        // SAFETY: the mutex was initialised by `init` before any worker could reach it.
        let rc = unsafe { libc::pthread_mutex_lock(self.0.get()) };
        match rc {
            0 => Locked { owner_died: false },
            libc::EOWNERDEAD => Locked { owner_died: true },
            _ => panic!("pthread_mutex_lock failed: {rc}"),
        }
    }

    /// Marks a mutex taken with `owner_died` consistent again (else its unlock makes it
    /// unusable: ENOTRECOVERABLE for everyone after).
    pub fn make_consistent(&self) {
        // SAFETY: initialised, and the caller holds it after an EOWNERDEAD lock.
        let rc = unsafe { libc::pthread_mutex_consistent(self.0.get()) };
        assert_eq!(rc, 0, "pthread_mutex_consistent failed: {rc}");
    }

    #[inline]
    pub fn unlock(&self) {
        // SAFETY: initialised; the caller holds the lock (only called after `lock`).
        let rc = unsafe { libc::pthread_mutex_unlock(self.0.get()) };
        assert_eq!(rc, 0, "pthread_mutex_unlock failed: {rc}");
    }
}
