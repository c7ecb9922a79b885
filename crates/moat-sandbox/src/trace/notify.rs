//! The kernel side of seccomp user notification: the filter that turns the traced system
//! calls into notifications, and the listener's ioctls.
//!
//! Written against the UAPI directly: `seccompiler` has no user-notification support, and
//! the `libc` crate lacks the notification structs' ioctl numbers. The structures below are
//! `struct seccomp_notif`, `struct seccomp_notif_resp` and `struct seccomp_data` from
//! `<linux/seccomp.h>`.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

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
struct Response {
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
const SECCOMP_FILTER_FLAG_NEW_LISTENER: libc::c_ulong = 1 << 3;
const SECCOMP_RET_USER_NOTIF: u32 = 0x7fc0_0000;
const SECCOMP_USER_NOTIF_FLAG_CONTINUE: u32 = 1;
#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xc000_003e;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xc000_00b7;

/// The system calls the tracer looks at: everything that needs a Landlock right or leaves
/// the process tree (signals), and socket creation for the socket seal.
pub const TRACED: &[libc::c_long] = &[
    #[cfg(target_arch = "x86_64")]
    libc::SYS_open,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_creat,
    libc::SYS_openat,
    libc::SYS_openat2,
    libc::SYS_execve,
    libc::SYS_execveat,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_mkdir,
    libc::SYS_mkdirat,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_rmdir,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_unlink,
    libc::SYS_unlinkat,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_rename,
    libc::SYS_renameat,
    libc::SYS_renameat2,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_link,
    libc::SYS_linkat,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_symlink,
    libc::SYS_symlinkat,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_mknod,
    libc::SYS_mknodat,
    libc::SYS_truncate,
    libc::SYS_ftruncate,
    libc::SYS_socket,
    libc::SYS_bind,
    libc::SYS_connect,
    libc::SYS_kill,
    libc::SYS_tkill,
    libc::SYS_tgkill,
    libc::SYS_rt_sigqueueinfo,
    libc::SYS_rt_tgsigqueueinfo,
    libc::SYS_ioctl,
];

fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jeq(k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter {
        code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
        jt,
        jf,
        k,
    }
}

/// The notification filter: the traced calls of the native ABI notify, everything else
/// runs. Built at run time: it is installed only by `moat record` and `--explain`, where a
/// microsecond does not matter.
pub fn program() -> Vec<libc::sock_filter> {
    let ld = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    let ret = (libc::BPF_RET | libc::BPF_K) as u16;
    let n = TRACED.len();
    let mut p = Vec::with_capacity(n + 5);
    p.push(stmt(ld, 4)); // arch
                         // Not the native ABI: allow (the socket seal, when installed, deals with it).
    p.push(jeq(AUDIT_ARCH, 0, (n + 1) as u8));
    p.push(stmt(ld, 0)); // nr
    for (i, nr) in TRACED.iter().enumerate() {
        // Hit: jump to the notify return just after the allow return.
        let to_notify = (n - i) as u8;
        p.push(jeq(*nr as u32, to_notify, 0));
    }
    p.push(stmt(ret, libc::SECCOMP_RET_ALLOW));
    p.push(stmt(ret, SECCOMP_RET_USER_NOTIF));
    p
}

/// Installs the notification filter on the calling thread and returns the listener. The
/// caller must have set no_new_privs.
pub fn install() -> io::Result<OwnedFd> {
    let filter = program();
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `prog` points at `filter`, alive for the call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            SECCOMP_FILTER_FLAG_NEW_LISTENER,
            &prog as *const libc::sock_fprog,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new descriptor that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Receives the next notification. `Ok(None)`: the caller went away before it could be
/// read (ENOENT), try again.
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

/// Whether notification `id` is still pending (its thread has not died and been replaced
/// by another with the same pid while its memory was read).
pub fn still_valid(listener: &OwnedFd, id: u64) -> bool {
    // SAFETY: the argument is a pointer to a u64 for the call.
    unsafe { libc::ioctl(listener.as_raw_fd(), NOTIF_ID_VALID as _, &id) == 0 }
}

/// Lets the call run as if no filter had stopped it.
pub fn resume(listener: &OwnedFd, id: u64) {
    let resp = Response {
        id,
        val: 0,
        error: 0,
        flags: SECCOMP_USER_NOTIF_FLAG_CONTINUE,
    };
    // SAFETY: `resp` is a valid `struct seccomp_notif_resp`. A failure (the thread died)
    // needs no answer.
    unsafe { libc::ioctl(listener.as_raw_fd(), NOTIF_SEND as _, &resp) };
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

    #[test]
    fn every_traced_call_jumps_to_the_notify_return() {
        let p = program();
        let notify = p.len() - 1;
        for (i, nr) in TRACED.iter().enumerate() {
            let at = 3 + i;
            assert_eq!(p[at].k, *nr as u32);
            assert_eq!(at + 1 + p[at].jt as usize, notify, "syscall {nr}");
        }
        assert_eq!(1 + 1 + p[1].jf as usize, notify - 1, "foreign ABI allowed");
    }
}
