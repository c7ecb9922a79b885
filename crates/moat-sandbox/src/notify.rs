//! seccomp user notification, the kernel side: the listener's ioctls and their structures
//! (`struct seccomp_notif`, `struct seccomp_notif_resp` and `struct seccomp_data` from
//! `<linux/seccomp.h>`), shared by the tracer ([`crate::diagnose::trace`]) and the supervisor
//! ([`crate::supervise`]).
//!
//! Written against the UAPI directly: `seccompiler` has no user-notification support, and
//! the `libc` crate lacks the structures' ioctl numbers.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

/// `struct seccomp_data`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SeccompData {
    /// The system call number.
    pub nr: i32,
    /// `AUDIT_ARCH_*`.
    pub arch: u32,
    /// The instruction pointer.
    pub instruction_pointer: u64,
    /// The six arguments.
    pub args: [u64; 6],
}

/// `struct seccomp_notif`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Notification {
    /// The cookie to answer with.
    pub id: u64,
    /// The calling thread, in the listener's pid namespace.
    pub pid: u32,
    /// Unused by the kernel so far.
    pub flags: u32,
    /// The call.
    pub data: SeccompData,
}

#[repr(C)]
pub(crate) struct Response {
    id: u64,
    val: i64,
    error: i32,
    flags: u32,
}

const _: () = assert!(std::mem::size_of::<Notification>() == 80);
const _: () = assert!(std::mem::size_of::<Response>() == 24);

/// `_IOWR('!', nr, size)` as the kernel computes ioctl numbers.
const fn iowr(nr: u64, size: usize) -> u64 {
    (3 << 30) | ((size as u64) << 16) | ((b'!' as u64) << 8) | nr
}
const NOTIF_RECV: u64 = iowr(0, std::mem::size_of::<Notification>());
const NOTIF_SEND: u64 = iowr(1, std::mem::size_of::<Response>());
/// `_IOW('!', 2, __u64)`.
const NOTIF_ID_VALID: u64 = (1 << 30) | (8 << 16) | ((b'!' as u64) << 8) | 2;
/// `SECCOMP_FILTER_FLAG_NEW_LISTENER`: `seccomp(2)` returns the listener.
pub(crate) const SECCOMP_FILTER_FLAG_NEW_LISTENER: libc::c_uint = 1 << 3;
/// `SECCOMP_RET_USER_NOTIF`.
pub(crate) const SECCOMP_RET_USER_NOTIF: u32 = 0x7fc0_0000;
const SECCOMP_USER_NOTIF_FLAG_CONTINUE: u32 = 1;

/// Receives the next notification. `Ok(None)`: the caller went away before it could be
/// read (ENOENT), or a signal interrupted the wait; try again.
pub fn receive(listener: &OwnedFd) -> io::Result<Option<Notification>> {
    let mut n = Notification::default();
    // SAFETY: `n` is a zeroed `struct seccomp_notif`, as the kernel requires.
    let r = unsafe { libc::ioctl(listener.as_raw_fd(), NOTIF_RECV as _, &mut n) };
    if r == 0 {
        return Ok(Some(n));
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::EINTR) => Ok(None),
        _ => Err(e),
    }
}

/// Whether notification `id` is still pending: its thread has not died (and its pid been
/// reused) since the notification was received.
pub fn still_valid(listener: &OwnedFd, id: u64) -> bool {
    // SAFETY: the argument is a pointer to a u64 for the call.
    unsafe { libc::ioctl(listener.as_raw_fd(), NOTIF_ID_VALID as _, &id) == 0 }
}

/// Lets the call run as if no filter had stopped it. Only for observing (the tracer):
/// a decision must never answer this way, because another thread of the caller can change
/// the call's arguments between the check and the continuation.
pub fn resume(listener: &OwnedFd, id: u64) {
    send(
        listener,
        &Response {
            id,
            val: 0,
            error: 0,
            flags: SECCOMP_USER_NOTIF_FLAG_CONTINUE,
        },
    );
}

/// Answers the call with its result: `Ok(value)` is what the system call returns, `Err(e)`
/// makes it fail with errno `e`. The call is not run by the kernel.
pub fn respond(listener: &OwnedFd, id: u64, result: Result<i64, i32>) {
    let (val, error) = match result {
        Ok(v) => (v, 0),
        Err(e) => (0, -e),
    };
    send(
        listener,
        &Response {
            id,
            val,
            error,
            flags: 0,
        },
    );
}

fn send(listener: &OwnedFd, resp: &Response) {
    // SAFETY: `resp` is a valid `struct seccomp_notif_resp`. A failure (the thread died or
    // was interrupted: ENOENT) needs no answer.
    unsafe { libc::ioctl(listener.as_raw_fd(), NOTIF_SEND as _, resp) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers_match_the_uapi() {
        assert_eq!(NOTIF_RECV, 0xc050_2100);
        assert_eq!(NOTIF_SEND, 0xc018_2101);
        assert_eq!(NOTIF_ID_VALID, 0x4008_2102);
    }
}
