//! The thread a notification came from, pinned so that nothing read or taken from it can
//! belong to another process.
//!
//! A notification names its thread by id, which the thread's death can free for reuse. The
//! pattern the kernel documents for that race: take a handle (a pidfd, a `/proc` directory)
//! or read memory first, then check that the notification is still pending
//! (`SECCOMP_IOCTL_NOTIF_ID_VALID`); a pending notification means its thread is alive, so
//! the id named it when the handle was taken.

use crate::notify::{still_valid, Notification};
use rustix::process::{pidfd_getfd, pidfd_open, Pid, PidfdFlags, PidfdGetfdFlags};
use std::ffi::CStr;
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};

/// An errno to answer a call with.
pub(super) type Errno = i32;

/// `PIDFD_THREAD` (Linux 6.9): a pidfd for a thread rather than a thread-group leader. The
/// value is `O_EXCL`, as in `<linux/pidfd.h>`.
const PIDFD_THREAD: u32 = libc::O_EXCL as u32;

/// The calling thread of one notification.
pub(super) struct Caller<'a> {
    listener: &'a OwnedFd,
    id: u64,
    tid: libc::pid_t,
    pidfd: OwnedFd,
}

/// Why a caller could not be pinned.
pub(super) enum Unpinned {
    /// The call is gone (its thread died or was interrupted): nothing to answer.
    Gone,
    /// The caller could not be reached (another user's process, a kernel without pidfds):
    /// the call is refused.
    Refused(Errno),
}

impl<'a> Caller<'a> {
    /// Pins the thread of `n`.
    pub(super) fn pin(listener: &'a OwnedFd, n: &Notification) -> Result<Caller<'a>, Unpinned> {
        let tid = n.pid as libc::pid_t;
        let pid = Pid::from_raw(tid).ok_or(Unpinned::Gone)?;
        let pidfd = match pidfd_open(pid, PidfdFlags::from_bits_retain(PIDFD_THREAD)) {
            Ok(fd) => fd,
            // Before 6.9 a pidfd names a thread-group leader: take the caller's. A thread
            // that is not the leader shares the leader's descriptors, memory and root.
            Err(e) if e == rustix::io::Errno::INVAL => {
                let leader = thread_group(tid).ok_or(Unpinned::Gone)?;
                pidfd_open(leader, PidfdFlags::empty()).map_err(|e| gone_or(e.raw_os_error()))?
            }
            Err(e) => return Err(gone_or(e.raw_os_error())),
        };
        if !still_valid(listener, n.id) {
            return Err(Unpinned::Gone);
        }
        Ok(Caller {
            listener,
            id: n.id,
            tid,
            pidfd,
        })
    }

    /// A duplicate of the caller's descriptor `fd` (the low 32 bits of the argument, as
    /// the kernel reads an `int`).
    pub(super) fn descriptor(&self, fd: u64) -> Result<OwnedFd, Errno> {
        pidfd_getfd(&self.pidfd, fd as i32, PidfdGetfdFlags::empty()).map_err(|e| {
            match e.raw_os_error() {
                // Not ours to take (a non-dumpable program, a change of user): refused,
                // never performed unchecked.
                libc::EPERM => libc::EACCES,
                other => other,
            }
        })
    }

    /// Reads `buf.len()` bytes of the caller's memory at `addr`, once.
    pub(super) fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), Errno> {
        if buf.is_empty() {
            return Ok(());
        }
        let local = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        let remote = libc::iovec {
            iov_base: addr as usize as *mut libc::c_void,
            iov_len: buf.len(),
        };
        // SAFETY: `local` covers `buf`, which is writable for its length; `remote` is only
        // read by the kernel, in the caller's address space.
        let n = unsafe { libc::process_vm_readv(self.tid, &local, 1, &remote, 1, 0) };
        if n < 0 {
            let e = std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EFAULT);
            return Err(if e == libc::EPERM { libc::EACCES } else { e });
        }
        if n as usize != buf.len() {
            return Err(libc::EFAULT);
        }
        // The memory read was the caller's only if its thread was still the one named.
        self.check()?;
        Ok(())
    }

    /// The caller's root or working directory (`which` is `root` or `cwd`), `O_PATH`.
    pub(super) fn directory(&self, which: &CStr) -> Result<OwnedFd, Errno> {
        let mut path = [0u8; 40];
        let mut w = Writer(&mut path, 0);
        use std::fmt::Write;
        // Cannot fail: 40 bytes hold "/proc/" with any pid and "/root" or "/cwd".
        let _ = write!(w, "/proc/{}/{}\0", self.tid, which.to_string_lossy());
        let c = CStr::from_bytes_until_nul(&path).map_err(|_| libc::EINVAL)?;
        // SAFETY: `c` is NUL-terminated; the flags make open return a new descriptor only.
        let fd = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EACCES));
        }
        // SAFETY: a descriptor open just returned, owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        self.check()?;
        Ok(fd)
    }

    /// Whether the notification is still pending; `ESRCH` if not (the answer then goes
    /// nowhere).
    fn check(&self) -> Result<(), Errno> {
        if still_valid(self.listener, self.id) {
            Ok(())
        } else {
            Err(libc::ESRCH)
        }
    }
}

fn gone_or(errno: i32) -> Unpinned {
    if errno == libc::ESRCH {
        Unpinned::Gone
    } else {
        Unpinned::Refused(libc::EACCES)
    }
}

/// The thread group of thread `tid`, from `/proc/<tid>/status`.
fn thread_group(tid: libc::pid_t) -> Option<Pid> {
    let mut s = String::new();
    std::fs::File::open(format!("/proc/{tid}/status"))
        .ok()?
        .read_to_string(&mut s)
        .ok()?;
    let tgid = s.lines().find_map(|l| l.strip_prefix("Tgid:"))?.trim();
    Pid::from_raw(tgid.parse().ok()?)
}

/// A `fmt::Write` into a byte buffer, for building paths without allocating.
pub(super) struct Writer<'b>(pub(super) &'b mut [u8], pub(super) usize);

impl std::fmt::Write for Writer<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.1 + s.len();
        if end > self.0.len() {
            return Err(std::fmt::Error);
        }
        self.0[self.1..end].copy_from_slice(s.as_bytes());
        self.1 = end;
        Ok(())
    }
}
