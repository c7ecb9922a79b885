//! The node as the installer sees it: the host's root directory mounted somewhere (`/host`
//! in the DaemonSet, `/` when run on the node itself), host paths mapped under it, and
//! host programs (containerd, ctr, systemctl) run inside it with `chroot`, so that they
//! find their own libraries and configuration.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The `PATH` host programs are looked up on and run with: systemd's default, which is
/// what the node's containerd and its shims see.
pub const HOST_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The node's root directory.
#[derive(Debug, Clone)]
pub struct Host {
    root: PathBuf,
}

impl Host {
    /// The host whose `/` is at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Host {
        Host { root: root.into() }
    }

    /// Where the host's root is mounted.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether the installer runs in the host's own root.
    fn is_own_root(&self) -> bool {
        self.root == Path::new("/")
    }

    /// Where host path `p` (absolute, as the node names it) is for this process.
    pub fn path(&self, p: &Path) -> PathBuf {
        match p.strip_prefix("/") {
            Ok(rel) => self.root.join(rel),
            Err(_) => self.root.join(p),
        }
    }

    /// A command running host program `program` inside the host's root, with the host's
    /// `PATH`.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        // systemd starts services in `/`: relative paths (containerd's glob imports
        // before 1.7.16) mean what they mean to the node's own daemon.
        c.env("PATH", HOST_PATH).current_dir("/");
        if !self.is_own_root() {
            // Built before the fork: only async-signal-safe calls run in the child.
            let root = CString::new(self.root.as_os_str().as_bytes()).ok();
            // SAFETY: the closure runs in the forked child before exec and calls only
            // chroot(2) and chdir(2) on C strings built beforehand.
            unsafe {
                c.pre_exec(move || {
                    let Some(root) = &root else {
                        return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
                    };
                    if libc::chroot(root.as_ptr()) != 0 || libc::chdir(c"/".as_ptr()) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        c
    }

    /// The first executable file named `name` on the host's `PATH`, as a host path.
    pub fn find_program(&self, name: &str) -> Option<PathBuf> {
        HOST_PATH
            .split(':')
            .map(|d| Path::new(d).join(name))
            .find(|p| is_executable(&self.path(p)))
    }
}

/// Whether `p` is a regular file with an execute bit.
pub fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
