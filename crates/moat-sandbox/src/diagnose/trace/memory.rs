//! Reading a traced process: its memory (paths, socket addresses), its descriptors and
//! working directory, and its place in the process tree.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

/// Reads up to `buf.len()` bytes at `addr` in `pid`; returns how many were read.
fn read_some(pid: i32, addr: u64, buf: &mut [u8]) -> usize {
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let remote = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: `local` describes `buf`; the remote side is only read by the kernel.
    let n = unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) };
    usize::try_from(n).unwrap_or(0)
}

/// Reads exactly `len` bytes at `addr`, or `None`.
pub(crate) fn read_bytes(pid: i32, addr: u64, len: usize) -> Option<Vec<u8>> {
    if addr == 0 {
        return None;
    }
    let mut buf = vec![0u8; len];
    (read_some(pid, addr, &mut buf) == len).then_some(buf)
}

/// Reads a NUL-terminated string of at most PATH_MAX bytes at `addr`. Reads page by page:
/// a string near the end of a mapping must not make the read fail.
pub(crate) fn read_c_string(pid: i32, addr: u64) -> Option<OsString> {
    if addr == 0 {
        return None;
    }
    const PAGE: u64 = 4096;
    let mut out = Vec::new();
    let mut at = addr;
    while out.len() < libc::PATH_MAX as usize {
        let chunk = (PAGE - at % PAGE) as usize;
        let mut buf = vec![0u8; chunk];
        let n = read_some(pid, at, &mut buf);
        if n == 0 {
            return None;
        }
        if let Some(end) = buf[..n].iter().position(|&b| b == 0) {
            out.extend_from_slice(&buf[..end]);
            return Some(OsString::from_vec(out));
        }
        out.extend_from_slice(&buf[..n]);
        at += n as u64;
    }
    None
}

/// Where descriptor `fd` of `pid` points (`/proc/PID/fd/FD`), or its working directory for
/// `AT_FDCWD`.
pub(crate) fn fd_path(pid: i32, fd: i64) -> Option<PathBuf> {
    let link = if fd == i64::from(libc::AT_FDCWD) {
        format!("/proc/{pid}/cwd")
    } else {
        format!("/proc/{pid}/fd/{fd}")
    };
    std::fs::read_link(link).ok()
}

/// The metadata of what descriptor `fd` of `pid` refers to.
pub(crate) fn fd_metadata(pid: i32, fd: i64) -> Option<std::fs::Metadata> {
    std::fs::metadata(format!("/proc/{pid}/fd/{fd}")).ok()
}

/// The parent of `pid`, from `/proc/PID/stat`.
pub(crate) fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: parse after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// The thread group (process) of thread `tid`.
pub(crate) fn process_of(tid: i32) -> i32 {
    std::fs::read_to_string(format!("/proc/{tid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Tgid:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(tid)
}

/// Whether `pid` is `root` or one of its descendants.
pub(crate) fn in_tree(pid: i32, root: i32) -> bool {
    let mut p = process_of(pid);
    for _ in 0..4096 {
        if p == root {
            return true;
        }
        match parent_of(p) {
            Some(parent) if parent > 0 && parent != p => p = parent,
            _ => return false,
        }
    }
    false
}

/// The short command name of `pid`.
pub fn comm(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim_end().to_string())
        .unwrap_or_else(|_| "?".into())
}

/// Duplicates descriptor `fd` of `pid` into this process (pidfd_getfd), to ask a socket
/// for its type. Needs ptrace access to `pid`, which a parent has to its children.
pub(crate) fn steal_fd(pid: i32, fd: i64) -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: plain integer arguments.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if pidfd < 0 {
        return None;
    }
    // SAFETY: `pidfd` was just opened and is owned here.
    let pidfd = unsafe { std::os::fd::OwnedFd::from_raw_fd(pidfd as i32) };
    let fd = i32::try_from(fd).ok()?;
    // SAFETY: plain integer arguments.
    let got = unsafe {
        libc::syscall(
            libc::SYS_pidfd_getfd,
            std::os::fd::AsRawFd::as_raw_fd(&pidfd),
            fd,
            0,
        )
    };
    // SAFETY: on success the kernel returned a new descriptor owned by nobody else.
    (got >= 0).then(|| unsafe { std::os::fd::OwnedFd::from_raw_fd(got as i32) })
}

/// An integer socket option of a socket this process holds.
pub(crate) fn sockopt(fd: &std::os::fd::OwnedFd, opt: libc::c_int) -> Option<i32> {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `v` and `len` are valid out-parameters of the right size.
    let r = unsafe {
        libc::getsockopt(
            std::os::fd::AsRawFd::as_raw_fd(fd),
            libc::SOL_SOCKET,
            opt,
            (&mut v as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    (r == 0).then_some(v)
}
