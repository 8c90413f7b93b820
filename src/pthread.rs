//! A glibc `pthread_mutex_t` living in shared memory, initialised `PTHREAD_PROCESS_SHARED`:
//! the baseline a C programmer would reach for.

use std::cell::UnsafeCell;

use crate::error::Error;

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
            let init = libc::pthread_mutex_init(self.0.get(), attr.as_ptr());
            libc::pthread_mutexattr_destroy(attr.as_mut_ptr());
            check("pthread_mutexattr_setpshared", shared)?;
            check("pthread_mutex_init", init)
        }
    }

    #[inline]
    pub fn lock(&self) {
        // SAFETY: the mutex was initialised by `init` before any worker could reach it.
        let rc = unsafe { libc::pthread_mutex_lock(self.0.get()) };
        assert_eq!(rc, 0, "pthread_mutex_lock failed: {rc}");
    }

    #[inline]
    pub fn unlock(&self) {
        // SAFETY: initialised; the caller holds the lock (only called after `lock`).
        let rc = unsafe { libc::pthread_mutex_unlock(self.0.get()) };
        assert_eq!(rc, 0, "pthread_mutex_unlock failed: {rc}");
    }
}
