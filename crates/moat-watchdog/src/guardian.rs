//! The guardian: a small process that outlives the watchdog just long enough to kill what
//! its calls left.
//!
//! The watchdog kills every process of a call when the call ends ([`crate::reaper`]). If
//! the watchdog itself dies without a chance to clean up (SIGKILL, the OOM killer), nothing
//! would: `PR_SET_PDEATHSIG` on a call's first process reaches that process only, and with
//! the watchdog gone its descendants are re-parented to init. So at start the watchdog
//! forks the guardian, which does nothing but wait for the watchdog's death (its own
//! `PR_SET_PDEATHSIG`), then kills every process in the watchdog's per-call control groups
//! (`cgroup.kill`: grandchildren and daemons included, since nothing leaves its group),
//! waits until they are gone, removes the groups and the private directories, and exits.
//!
//! It is forked before any thread exists, so it is an ordinary copy of a small process;
//! calls cannot signal it (Landlock's signal scope) and it holds no listening socket. A
//! watchdog that shuts down gracefully cleans up itself and kills the guardian last.

/// The running guardian.
#[derive(Debug)]
pub struct Guardian {
    pid: libc::pid_t,
}

impl Guardian {
    /// Forks the guardian, which runs `cleanup` once this process is gone. Must run before
    /// the process starts any thread (the child is a copy of the calling thread only).
    pub fn start(cleanup: impl FnOnce()) -> std::io::Result<Guardian> {
        // SAFETY: getpid cannot fail.
        let parent = unsafe { libc::getpid() };
        // SAFETY: the process has a single thread (documented precondition), so the child
        // is a complete copy and may run ordinary code.
        match unsafe { libc::fork() } {
            -1 => Err(std::io::Error::last_os_error()),
            0 => {
                guard(parent, cleanup);
                // SAFETY: _exit ends the child without running the parent's atexit hooks
                // or flushing its buffers twice.
                unsafe { libc::_exit(0) }
            }
            pid => Ok(Guardian { pid }),
        }
    }

    /// Its process id (a child of the watchdog that is no call's).
    pub fn pid(&self) -> libc::pid_t {
        self.pid
    }

    /// Ends the guardian (at a graceful shutdown, once everything is clean). The reaper
    /// reaps it.
    pub fn stop(&self) {
        // SAFETY: kill with integer arguments; the guardian is an unreaped child (only the
        // reaper reaps, and it leaves the guardian alone until it dies).
        unsafe { libc::kill(self.pid, libc::SIGKILL) };
    }
}

/// The guardian's life: wait until `parent` is gone, then clean up.
fn guard(parent: libc::pid_t, cleanup: impl FnOnce()) {
    // SAFETY: plain prctl and signal-mask calls with valid arguments.
    unsafe {
        libc::prctl(libc::PR_SET_NAME, c"moat-guardian".as_ptr(), 0, 0, 0);
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGHUP, 0, 0, 0);
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, std::ptr::null_mut());
    }
    // Signals from elsewhere (a terminal's SIGINT to the whole process group, say) stay
    // blocked and change nothing: only the parent's death counts. The timed wait also
    // covers a parent that died before the death signal was armed.
    // SAFETY: plain data for sigtimedwait.
    let (set, timeout) = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGHUP);
        (
            set,
            libc::timespec {
                tv_sec: 1,
                tv_nsec: 0,
            },
        )
    };
    // SAFETY: getppid cannot fail.
    while unsafe { libc::getppid() } == parent {
        // SAFETY: valid set and timeout; the siginfo out-pointer may be null.
        unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &timeout) };
    }
    cleanup();
}
