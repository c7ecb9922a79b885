//! The kernel side of seccomp user notification: the filter that turns the traced system
//! calls into notifications, and the listener's ioctls.
//!
//! Written against the UAPI directly: `seccompiler` has no user-notification support, and
//! the `libc` crate lacks the notification structs' ioctl numbers. The structures below are
//! `struct seccomp_notif`, `struct seccomp_notif_resp` and `struct seccomp_data` from
//! `<linux/seccomp.h>`.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

pub use crate::notify::{receive, resume, still_valid, Notification};
use crate::notify::{SECCOMP_FILTER_FLAG_NEW_LISTENER, SECCOMP_RET_USER_NOTIF};
#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xc000_003e;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xc000_00b7;

/// The system calls the tracer looks at: everything that needs a Landlock right or leaves
/// the process tree (signals), and socket creation for the socket seal.
pub(crate) const TRACED: &[libc::c_long] = &[
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
    libc::SYS_listen,
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

#[cfg(test)]
mod tests {
    use super::*;

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
