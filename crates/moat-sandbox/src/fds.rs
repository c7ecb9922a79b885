//! Closing inherited file descriptors before exec.
//!
//! Landlock does not restrict descriptors opened before the sandbox, so anything the target
//! should not inherit must be closed: only 0-2, explicitly preserved descriptors and
//! systemd's socket-activation range stay open.

use std::os::fd::RawFd;

/// Why descriptors could not be closed.
#[derive(Debug, thiserror::Error)]
#[error("cannot close inherited file descriptors: {0}")]
pub struct FdError(#[from] std::io::Error);

/// The descriptors systemd passes with socket activation (`LISTEN_FDS`), when `LISTEN_PID`
/// names this process: they start at 3.
pub fn listen_fds() -> Vec<RawFd> {
    let pid_matches = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.trim().parse::<u32>().ok())
        .is_some_and(|p| p == std::process::id());
    if !pid_matches {
        return Vec::new();
    }
    let n = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.trim().parse::<i32>().ok())
        .unwrap_or(0)
        .clamp(0, 4096);
    (3..3 + n).collect()
}

/// Closes every descriptor from 3 up, except those in `keep`.
pub fn close_inherited(keep: &[RawFd]) -> Result<(), FdError> {
    let mut keep: Vec<RawFd> = keep.iter().copied().filter(|&fd| fd > 2).collect();
    keep.sort_unstable();
    keep.dedup();
    let mut first: u32 = 3;
    for fd in keep {
        let fd = fd as u32;
        if fd > first {
            close_range(first, fd - 1)?;
        }
        first = fd.saturating_add(1);
    }
    close_range(first, u32::MAX)
}

fn close_range(first: u32, last: u32) -> Result<(), FdError> {
    // SAFETY: close_range only closes descriptors; nothing in this process uses the ones
    // closed here (moat opens its own descriptors after this runs).
    let r = unsafe { libc::syscall(libc::SYS_close_range, first, last, 0u32) };
    if r == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() != Some(libc::ENOSYS) {
        return Err(FdError(err));
    }
    // Kernels before 5.9 lack close_range: walk /proc/self/fd instead.
    let fds: Vec<u32> = std::fs::read_dir("/proc/self/fd")?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&fd| fd >= first && fd <= last)
        .collect();
    for fd in fds {
        // SAFETY: as above; EBADF for the directory's own fd is harmless.
        unsafe { libc::close(fd as i32) };
    }
    Ok(())
}
