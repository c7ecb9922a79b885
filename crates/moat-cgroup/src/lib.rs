//! cgroup-bpf for containers.
//!
//! moat-runtime runs as root at every container start; this crate gives it eBPF programs
//! on the container's cgroup for what Landlock cannot do on this kernel:
//! - per-container network counters (bytes and packets per direction and local port),
//!   pinned in bpffs under `/sys/fs/bpf/moat/<container id>/` and served to Prometheus by
//!   the `moat-exporter` binary ([`exporter`]);
//! - UDP port rules below Landlock ABI 10, deciding as ABI 10 would ([`UdpRules`]).
//!
//! The facade: [`Setup`] attaches to one container's cgroup, [`read`], [`scan`] and
//! [`remove`] work on what it pinned, and the `cgroup` functions find a container's
//! cgroup as runc places it. Below it, the programs are emitted by [`insn`] (see there
//! why) and loaded, attached and read with the raw `bpf(2)` calls of [`sys`]: both stay
//! public for the kernel tests and the per-packet cost example, which work with maps and
//! programs directly.

#![deny(missing_docs)]

mod cgroup;
#[cfg(feature = "exporter")]
pub mod exporter;
pub mod insn;
mod pins;
mod programs;
pub mod sys;

pub use cgroup::{cgroup2_mount, container_dir, own_cgroup};
pub use pins::{
    dir as pin_dir, ensure_bpffs, read, read_info, remove, remove_read, scan, Count, Info, Node,
    Setup, Snapshot, BPFFS, DEFAULT_ROOT, REGISTRY_PIN,
};
pub use programs::{
    counter, Direction, UdpRules, COUNTER_SIZE, MAX_RANGES, PORT_ENTRIES, TRAFFIC_ENTRIES,
    TRAFFIC_KEY_SIZE,
};

use std::path::PathBuf;

/// Why cgroup-bpf could not be set up or read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory operation failed.
    #[error("cgroup-bpf: cannot {what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// No cgroup v2 hierarchy is mounted, or this process has no place in it.
    #[error("cgroup-bpf needs a cgroup v2 hierarchy (mount cgroup2, e.g. at /sys/fs/cgroup/unified on a hybrid host); none is mounted")]
    NoCgroup2,
    /// A cgroupsPath moat cannot place.
    #[error("cgroup-bpf: linux.cgroupsPath `{0}` does not name a cgroup below the cgroup v2 root (`..` or the root itself)")]
    CgroupsPath(String),
    /// The systemd cgroup driver (`slice:prefix:name` paths).
    #[error("cgroup-bpf: the systemd cgroup driver (--systemd-cgroup) is not supported: moat finds the container's cgroup as runc's cgroupfs driver places it")]
    SystemdDriver,
    /// A container id that cannot name a directory.
    #[error("cgroup-bpf: container id `{0}` cannot name a pin directory (use letters, digits, `_`, `+`, `-`, `.`)")]
    BadId(String),
    /// bpffs is missing and could not be mounted.
    #[error("cgroup-bpf: `{}` is not a bpffs and mounting one there failed: {source} (mount it: `mount -t bpf bpf {}`)", path.display(), path.display())]
    Bpffs {
        /// The mount point.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A map could not be created or used.
    #[error("cgroup-bpf: map `{what}`: {source}")]
    Map {
        /// Which map.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// The kernel refused a program.
    #[error("cgroup-bpf: the kernel refused program `{what}`: {source}{}", if log.is_empty() { String::new() } else { format!("\nverifier: {log}") })]
    Load {
        /// Which program.
        what: String,
        /// The error.
        source: std::io::Error,
        /// The verifier's log.
        log: String,
    },
    /// A program could not be attached to the cgroup.
    #[error("cgroup-bpf: cannot attach `{what}` to cgroup `{}`: {source}", cgroup.display())]
    Attach {
        /// Which program.
        what: String,
        /// The cgroup directory.
        cgroup: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A pin could not be made, read or removed.
    #[error("cgroup-bpf: pin `{}`: {source}", path.display())]
    Pin {
        /// The pin.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// More UDP port ranges than one program can test.
    #[error(
        "cgroup-bpf: more than {} separate UDP port ranges",
        programs::MAX_RANGES
    )]
    TooManyRanges,
    /// The container's description stored with its pins is not readable.
    #[error("cgroup-bpf: `{}` does not describe a container: {message}", path.display())]
    Info {
        /// The pin.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}
