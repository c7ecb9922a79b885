//! Where a runc container's cgroup v2 directory is.
//!
//! cgroup-bpf programs attach to cgroup v2 directories only. On a pure v2 host that is the
//! container's cgroup; on a hybrid host (v1 controllers with cgroup2 at
//! /sys/fs/cgroup/unified, as here) runc 1.1 also creates the container's path in the v2
//! tree and moves the process there (checked by the tests against /proc/PID/cgroup).
//! runc's cgroupfs driver places `linux.cgroupsPath` as follows: an absolute path is
//! taken from the hierarchy's root; a relative one (or the container id when the field is
//! absent) below the cgroup of the runtime process itself, which is moat-runtime's since
//! moat-runtime execs runc.

use crate::{sys, Error};
use std::path::{Path, PathBuf};

/// The cgroup v2 mount point: where runc looks for it (`/sys/fs/cgroup` on a v2 host,
/// `/sys/fs/cgroup/unified` on a hybrid one, each one `statfs`), else the first cgroup2
/// mount in /proc/self/mountinfo. runc's cgroupfs driver places containers under the
/// standard paths, so they come first; they also spare every container start a read of
/// mountinfo (about 60 us here).
pub fn cgroup2_mount() -> Result<PathBuf, Error> {
    for standard in ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"] {
        if sys::is_cgroup2(Path::new(standard)) {
            return Ok(PathBuf::from(standard));
        }
    }
    let text = sys::read_small(Path::new("/proc/self/mountinfo"), 16 * 1024).map_err(|source| {
        Error::Io {
            what: "read /proc/self/mountinfo".into(),
            source,
        }
    })?;
    mount_in(&text).ok_or(Error::NoCgroup2)
}

fn mount_in(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        let fstype = right.split(' ').next()?;
        let point = left.split(' ').nth(4)?;
        (fstype == "cgroup2").then(|| PathBuf::from(point))
    })
}

/// This process's cgroup v2 path (`0::` line of /proc/self/cgroup), from the v2 root.
pub fn own_cgroup() -> Result<String, Error> {
    let text =
        sys::read_small(Path::new("/proc/self/cgroup"), 4096).map_err(|source| Error::Io {
            what: "read /proc/self/cgroup".into(),
            source,
        })?;
    unified_line(&text).ok_or(Error::NoCgroup2)
}

/// The cgroup v2 path in a /proc/PID/cgroup text.
pub fn unified_line(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(str::to_string)
}

/// The container's cgroup v2 directory for `cgroups_path` (config.json's
/// `linux.cgroupsPath`), as runc's cgroupfs driver will create it.
pub fn container_dir(
    mount: &Path,
    own: &str,
    cgroups_path: Option<&str>,
    id: &str,
) -> Result<PathBuf, Error> {
    let inner = match cgroups_path {
        Some(p) if !p.is_empty() => p,
        _ => id,
    };
    let joined = if inner.starts_with('/') {
        inner.to_string()
    } else {
        format!("{}/{}", own.trim_end_matches('/'), inner)
    };
    let mut dir = mount.to_path_buf();
    for part in joined.split('/').filter(|p| !p.is_empty() && *p != ".") {
        if part == ".." {
            return Err(Error::CgroupsPath(inner.to_string()));
        }
        dir.push(part);
    }
    if dir == mount {
        return Err(Error::CgroupsPath(inner.to_string()));
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_cgroup2_mount() {
        let m = "25 1 0:22 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n\
                 26 25 0:23 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
        assert_eq!(mount_in(m), Some(PathBuf::from("/sys/fs/cgroup/unified")));
        assert_eq!(mount_in("1 0 0:1 / / rw - ext4 x rw\n"), None);
    }

    #[test]
    fn the_standard_paths_agree_with_mountinfo() {
        // Where cgroup2 is mounted at all, the statfs probe finds what mountinfo says.
        let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        match mount_in(&text) {
            Some(m) => assert_eq!(cgroup2_mount().unwrap(), m),
            None => assert!(cgroup2_mount().is_err()),
        }
    }

    #[test]
    fn the_cpu_bound_covers_every_possible_cpu() {
        let bound = sys::cpus_upper_bound().unwrap();
        assert!(
            bound >= sys::PossibleCpus::get().unwrap().count(),
            "{bound}"
        );
        assert_eq!(bound % 64, 0);
    }

    #[test]
    fn small_files_are_read_whole() {
        // Larger than the first buffer, and a file the kernel generates as it is read.
        let path = Path::new("/proc/self/mountinfo");
        let whole = std::fs::read_to_string(path).unwrap();
        assert!(whole.len() > 64);
        assert_eq!(sys::read_small(path, 1).unwrap(), whole);
        assert_eq!(sys::read_small(path, 1 << 20).unwrap(), whole);
        assert!(sys::read_small(Path::new("/nonexistent/x"), 16).is_err());
    }

    #[test]
    fn places_paths_as_runc_does() {
        let m = Path::new("/sys/fs/cgroup/unified");
        let d = |p, own| container_dir(m, own, p, "abc").unwrap();
        assert_eq!(
            d(Some("/kubepods/pod1/c1"), "/x"),
            m.join("kubepods/pod1/c1")
        );
        assert_eq!(d(None, "/"), m.join("abc"));
        assert_eq!(d(Some(""), "/user/1"), m.join("user/1/abc"));
        assert_eq!(d(Some("rel/c"), "/user/1/"), m.join("user/1/rel/c"));
        assert!(container_dir(m, "/", Some("/a/../../etc"), "x").is_err());
        assert!(container_dir(m, "/", Some("/"), "x").is_err());
    }
}
