//! The descriptor limit (`RLIMIT_NOFILE`).

/// Descriptors kept out of the connection cap for everything else a server opens: its
/// listeners, log, certificates, and (for the watchdog) each call's pipes and directories.
pub const RESERVED: u64 = 64;

/// The soft and hard `RLIMIT_NOFILE` after raising the soft limit to the hard one, as Go's
/// runtime does for every Go server (the OpenFaaS classic watchdog included): the soft
/// limit is often 1024 for compatibility with `select`, which neither server uses.
pub fn raise() -> std::io::Result<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into `lim`.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads `raised`.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim.rlim_cur = lim.rlim_max;
        }
    }
    Ok((lim.rlim_cur, lim.rlim_max))
}

/// The current soft limit (1024 if it cannot be read).
pub fn soft() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 1024,
        rlim_max: 1024,
    };
    // SAFETY: getrlimit writes into `lim`.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    lim.rlim_cur
}

/// The default connection cap for a soft limit of `limit` descriptors: three quarters of
/// what is left after [`RESERVED`], at least 16. A server at its cap sheds its longest idle
/// connection for each new one, so the cap is reached long before the descriptors run out
/// and what is left stays free for the work the connections ask for.
pub fn default_max_connections(limit: u64) -> usize {
    let usable = limit.saturating_sub(RESERVED) / 4 * 3;
    usize::try_from(usable.max(16)).unwrap_or(usize::MAX)
}

/// Makes `cmd`'s process start with `RLIMIT_NOFILE` at `n` (soft and hard): how the tests
/// and benchmarks put a server under the limit an operator might give it.
pub fn limit_child(cmd: &mut std::process::Command, n: u64) {
    // SAFETY: setrlimit only, between fork and exec: async-signal-safe, no allocation.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(cmd, move || {
            let lim = libc::rlimit {
                rlim_cur: n,
                rlim_max: n,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// How many descriptors this process has open now (from `/proc/self/fd`, not counting the
/// one that reads it).
pub fn open_count() -> std::io::Result<usize> {
    std::fs::read_dir("/proc/self/fd").map(|d| d.count().saturating_sub(1))
}

/// Whether nine tenths of the soft limit or more are in use (or not even one descriptor is
/// left to count them with).
pub fn nearly_out() -> bool {
    let limit = soft();
    match open_count() {
        Ok(n) => n as u64 >= limit / 10 * 9,
        Err(e) => matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_room_and_has_a_floor() {
        assert_eq!(default_max_connections(256), 144);
        assert_eq!(default_max_connections(1024), 720);
        assert_eq!(default_max_connections(10), 16);
        let (soft, hard) = raise().unwrap();
        assert_eq!(soft, hard);
        assert_eq!(super::soft(), soft);
        assert!(open_count().unwrap() >= 3);
        assert!(!nearly_out());
    }
}
