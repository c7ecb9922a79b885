//! A control group per call: its process limit, its CPU time, and a way to kill every
//! process it started, wherever they went.
//!
//! The watchdog makes one directory of its own, `moat-watchdog.<pid>.<random>`, beneath its
//! own group in each hierarchy it uses, and one group per call beneath that
//! (`call-<n>`). The call's process joins them before its first instruction
//! ([`moat_sandbox::spawn::Command::spawn_into`]), and every process it starts inherits
//! them: a daemon that leaves the call's session and process group does not leave its
//! group.
//!
//! Which hierarchy does what depends on the node:
//!
//! | role | cgroup v2 (the unified hierarchy) | cgroup v1 |
//! |---|---|---|
//! | membership and `kill` | `cgroup.kill` (Linux 5.14), atomic | `cgroup.procs` of the `pids` hierarchy, killed one by one until empty |
//! | processes (`max_call_processes`) | `pids.max`, when the `pids` controller can be enabled there | `pids.max` of the `pids` hierarchy |
//! | CPU time (`max_call_cpu`) | `cpu.stat` `usage_usec`, kept for every group | `cpuacct.usage` |
//!
//! Where cgroup v1 has what is wanted (the `pids` and `cpuacct` hierarchies), it is used
//! alone: a call's process joins a v1 group through its `tasks` file, which moves the one
//! thread that writes, without the global lock that a v2 `cgroup.procs` write takes (the
//! first such write after a quiet moment waits for an RCU grace period, milliseconds on a
//! busy machine, while the call's process is being started). So on a hybrid node, such as
//! the development machines (cgroup v1 controllers, with a cgroup2 mount at
//! `/sys/fs/cgroup/unified` holding no controller but `hugetlb`), calls join a v1 `pids`
//! group and a v1 `cpuacct` group. On a cgroup v2 node they join one v2 group.
//! `RLIMIT_NPROC` is no substitute: it counts every process of the user, and does not
//! apply to root at all.
//!
//! Groups are reused: once a call's processes are all reaped its group is empty, and the
//! next call takes it with its counters read at the start (creating and removing a group
//! costs 70-90 us per hierarchy here, joining one a few). Each directory of the watchdog's
//! is `flock`ed for its life, so a watchdog that starts later can tell the directories of
//! a watchdog that is gone (killed with SIGKILL, say) from the live ones, kill what is
//! left in them and remove them.

use rustix::fs::{flock, AtFlags, FlockOperation, Mode, OFlags};
use rustix::io::Errno;
use rustix::process::{pidfd_open, pidfd_send_signal, Pid, PidfdFlags, Signal};
use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// How many empty groups are kept for the next calls (each holds a few descriptors; more
/// are made in the background when needed).
const POOL: usize = 4;

/// Why the per-call groups cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// A directory or file of a hierarchy cannot be used.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// What the watchdog wants from per-call groups.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Wanted {
    /// `pids.max` of each call.
    pub max_processes: Option<u64>,
    /// CPU time accounting.
    pub cpu: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Unified,
    Pids,
    Cpuacct,
}

impl Kind {
    fn describe(self) -> &'static str {
        match self {
            Kind::Unified => "cgroup v2",
            Kind::Pids => "the cgroup v1 pids hierarchy",
            Kind::Cpuacct => "the cgroup v1 cpuacct hierarchy",
        }
    }
}

/// The watchdog's directory in one hierarchy.
#[derive(Debug)]
struct Hierarchy {
    kind: Kind,
    /// `<own group>/moat-watchdog.<pid>.<random>`.
    path: PathBuf,
    /// A descriptor on it, `flock`ed for the watchdog's life.
    dir: OwnedFd,
    /// Whether call groups here get `pids.max`.
    pids: bool,
    /// Whether call groups here are read for CPU time.
    cpu: bool,
}

/// What the per-call groups do on this node, and what they cannot.
#[derive(Debug, Default)]
pub struct Report {
    /// One line per role enforced, naming the hierarchy.
    pub enforced: Vec<String>,
    /// One line per role wanted but not available, with the reason.
    pub missing: Vec<String>,
    /// Directories of watchdogs that are gone, removed (with what was left running in
    /// them killed).
    pub stale_removed: Vec<String>,
}

/// The watchdog's per-call groups; see the module documentation.
#[derive(Debug)]
pub struct Cgroups {
    hierarchies: Vec<Hierarchy>,
    max_processes: Option<u64>,
    next: AtomicU64,
    pool: Mutex<Vec<CallCgroup>>,
    /// Groups whose processes were not all gone when their call ended, removed later.
    draining: Mutex<Vec<CallCgroup>>,
}

/// One call's groups.
#[derive(Debug)]
pub struct CallCgroup {
    name: CString,
    parts: Vec<Part>,
    /// `pids.events` `max` when the call started.
    refused_before: u64,
    /// CPU time used when the call started.
    cpu_before: Duration,
}

#[derive(Debug)]
struct Part {
    kind: Kind,
    /// Index of its hierarchy.
    hierarchy: usize,
    dir: OwnedFd,
    procs: OwnedFd,
    /// `pids.current` and `pids.events`, where the group limits processes.
    pids: Option<(OwnedFd, OwnedFd)>,
    /// `cpu.stat` (v2) or `cpuacct.usage` (v1), where the group counts CPU time.
    cpu: Option<OwnedFd>,
}

// The counters are read at the start and the end of every call: kept open and read with
// `pread` at offset 0 (the kernel renders a control file again from its start), one system
// call each instead of an open, reads and a close.

/// A mount of a cgroup filesystem.
#[derive(Debug, Clone)]
struct Mount {
    /// The mounted group, relative to the hierarchy's root.
    root: String,
    point: PathBuf,
    v2: bool,
    options: Vec<String>,
}

impl Cgroups {
    /// Finds the hierarchies, removes the directories of watchdogs that are gone, and makes
    /// this watchdog's. Returns `None` when no hierarchy can be used (the report says why).
    pub fn setup(wanted: Wanted, stem: &str) -> (Option<Cgroups>, Report) {
        let mut report = Report::default();
        let mounts = mounts();
        let own = own_groups();
        let mut hierarchies = Vec::new();
        let make = |kind: Kind, mount: &Mount, report: &mut Report| -> Option<Hierarchy> {
            let rel = match kind {
                Kind::Unified => own.iter().find(|(id, _, _)| id == "0").map(|g| &g.2),
                Kind::Pids => own
                    .iter()
                    .find(|(_, c, _)| c.split(',').any(|c| c == "pids"))
                    .map(|g| &g.2),
                Kind::Cpuacct => own
                    .iter()
                    .find(|(_, c, _)| c.split(',').any(|c| c == "cpuacct"))
                    .map(|g| &g.2),
            }?;
            let inside = rel.strip_prefix(mount.root.trim_end_matches('/'))?;
            let parent = mount.point.join(inside.trim_start_matches('/'));
            report.stale_removed.extend(
                remove_stale(&parent)
                    .into_iter()
                    .map(|n| format!("{} in {}", n, parent.display())),
            );
            match create_locked(&parent, stem) {
                Ok(dir) => Some(Hierarchy {
                    kind,
                    path: parent.join(stem),
                    dir,
                    pids: false,
                    cpu: false,
                }),
                Err(e) => {
                    report.missing.push(format!("{}: {e}", kind.describe()));
                    None
                }
            }
        };
        let v1 = |controller: &str| {
            mounts
                .iter()
                .find(|m| !m.v2 && m.options.iter().any(|o| o == controller))
        };
        let want_pids = wanted.max_processes.is_some();
        let covered = |hs: &[Hierarchy]| {
            !hs.is_empty()
                && (!want_pids || hs.iter().any(|h| h.pids))
                && (!wanted.cpu || hs.iter().any(|h| h.cpu))
        };
        // cgroup v1 first, where it covers everything wanted: a process joins a v1 group by
        // writing to its `tasks` file, which moves the one thread that writes (the call's
        // process, single-threaded then) without the global lock that a cgroup v2
        // `cgroup.procs` write takes; the first such write after a quiet moment waits for
        // an RCU grace period, milliseconds on a busy machine, on the path of every call.
        let (pids_v1, cpu_v1) = (v1("pids"), v1("cpuacct"));
        if ((want_pids || !wanted.cpu) && pids_v1.is_some()) || (wanted.cpu && cpu_v1.is_some()) {
            if let Some(m) = pids_v1.filter(|_| want_pids || !wanted.cpu || cpu_v1.is_none()) {
                if let Some(mut h) = make(Kind::Pids, m, &mut report) {
                    h.pids = want_pids;
                    hierarchies.push(h);
                }
            }
            if let Some(m) = cpu_v1.filter(|_| wanted.cpu) {
                if let Some(mut h) = make(Kind::Cpuacct, m, &mut report) {
                    h.cpu = true;
                    hierarchies.push(h);
                }
            }
            if !covered(&hierarchies) {
                for h in hierarchies.drain(..) {
                    let _ = std::fs::remove_dir(&h.path);
                }
            }
        }
        if !covered(&hierarchies) {
            if let Some(m) = mounts.iter().find(|m| m.v2) {
                if let Some(mut h) = make(Kind::Unified, m, &mut report) {
                    h.cpu = wanted.cpu;
                    if want_pids {
                        h.pids = enable_v2_pids(&h);
                    }
                    hierarchies.push(h);
                }
            }
            if want_pids && !hierarchies.iter().any(|h| h.pids) {
                if let Some(m) = pids_v1 {
                    if let Some(mut h) = make(Kind::Pids, m, &mut report) {
                        h.pids = true;
                        hierarchies.push(h);
                    }
                }
            }
            if wanted.cpu && !hierarchies.iter().any(|h| h.cpu) {
                if let Some(m) = cpu_v1 {
                    if let Some(mut h) = make(Kind::Cpuacct, m, &mut report) {
                        h.cpu = true;
                        hierarchies.push(h);
                    }
                }
            }
        }
        if hierarchies.is_empty() {
            if mounts.is_empty() {
                report
                    .missing
                    .push("no cgroup filesystem is mounted".to_string());
            }
            return (None, report);
        }
        for (i, h) in hierarchies.iter().enumerate() {
            let mut roles = Vec::new();
            if i == 0 {
                roles.push("each call's processes, to kill them all");
            }
            if h.pids {
                roles.push("max_call_processes");
            }
            if h.cpu {
                roles.push("max_call_cpu");
            }
            if !roles.is_empty() {
                report.enforced.push(format!(
                    "{} ({}): {}",
                    h.kind.describe(),
                    h.path.display(),
                    roles.join(", ")
                ));
            }
        }
        if wanted.max_processes.is_some() && !hierarchies.iter().any(|h| h.pids) {
            report.missing.push(
                "max_call_processes: no pids controller this watchdog can use (cgroup v2 \
                 with pids delegated, or a writable cgroup v1 pids hierarchy)"
                    .to_string(),
            );
        }
        if wanted.cpu && !hierarchies.iter().any(|h| h.cpu) {
            report.missing.push(
                "max_call_cpu: no writable cgroup v2 or cgroup v1 cpuacct hierarchy".to_string(),
            );
        }
        let cgroups = Cgroups {
            max_processes: wanted.max_processes,
            hierarchies,
            next: AtomicU64::new(1),
            pool: Mutex::new(Vec::new()),
            draining: Mutex::new(Vec::new()),
        };
        (Some(cgroups), report)
    }

    /// Whether call groups limit processes.
    pub fn limits_processes(&self) -> bool {
        self.hierarchies.iter().any(|h| h.pids)
    }

    /// Whether call groups count CPU time.
    pub fn counts_cpu(&self) -> bool {
        self.hierarchies.iter().any(|h| h.cpu)
    }

    /// A group for a new call: an empty one kept from an earlier call, or a new one. Its
    /// counters start now.
    pub fn take(&self) -> Result<CallCgroup, CgroupError> {
        let kept = self.pool.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let mut cg = match kept {
            Some(cg) => cg,
            None => self.create()?,
        };
        cg.refused_before = cg.refused_total();
        cg.cpu_before = cg.cpu_total().unwrap_or_default();
        Ok(cg)
    }

    fn create(&self) -> Result<CallCgroup, CgroupError> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let name = CString::new(format!("call-{n}")).unwrap_or_default();
        let mut parts = Vec::with_capacity(self.hierarchies.len());
        for (i, h) in self.hierarchies.iter().enumerate() {
            let err = |source| CgroupError::Io {
                path: h
                    .path
                    .join(OsStrExt::from_bytes(name.as_bytes()) as &std::ffi::OsStr),
                source,
            };
            match rustix::fs::mkdirat(&h.dir, name.as_c_str(), Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => {
                    self.remove_parts(&name, &parts);
                    return Err(err(e.into()));
                }
            }
            // See `setup` for why cgroup v1 groups are joined through `tasks`.
            let join = match h.kind {
                Kind::Unified => c"cgroup.procs",
                Kind::Pids | Kind::Cpuacct => c"tasks",
            };
            let opened = open_at(h.dir.as_fd(), &name, OFlags::RDONLY | OFlags::DIRECTORY)
                .and_then(|dir| {
                    let procs = open_at(dir.as_fd(), join, OFlags::WRONLY)?;
                    let pids = match (h.pids, self.max_processes) {
                        (true, Some(max)) => {
                            write_at(dir.as_fd(), c"pids.max", max.to_string().as_bytes())?;
                            Some((
                                open_at(dir.as_fd(), c"pids.current", OFlags::RDONLY)?,
                                open_at(dir.as_fd(), c"pids.events", OFlags::RDONLY)?,
                            ))
                        }
                        _ => None,
                    };
                    let cpu = match (h.cpu, h.kind) {
                        (true, Kind::Unified) => {
                            Some(open_at(dir.as_fd(), c"cpu.stat", OFlags::RDONLY)?)
                        }
                        (true, Kind::Cpuacct) => {
                            Some(open_at(dir.as_fd(), c"cpuacct.usage", OFlags::RDONLY)?)
                        }
                        _ => None,
                    };
                    Ok((dir, procs, pids, cpu))
                });
            match opened {
                Ok((dir, procs, pids, cpu)) => parts.push(Part {
                    kind: h.kind,
                    hierarchy: i,
                    dir,
                    procs,
                    pids,
                    cpu,
                }),
                Err(e) => {
                    let _ = rustix::fs::unlinkat(&h.dir, name.as_c_str(), AtFlags::REMOVEDIR);
                    self.remove_parts(&name, &parts);
                    return Err(err(e));
                }
            }
        }
        Ok(CallCgroup {
            name,
            parts,
            refused_before: 0,
            cpu_before: Duration::ZERO,
        })
    }

    /// Gives back a call's group once its call is over and its processes reaped: kept for
    /// the next call when empty; otherwise what is left is killed and the group removed
    /// once empty (later, if need be).
    pub fn give_back(&self, cg: CallCgroup) {
        if cg.is_empty() {
            let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
            if pool.len() < POOL {
                pool.push(cg);
                return;
            }
            drop(pool);
            self.remove(cg);
            return;
        }
        cg.kill(None);
        self.draining
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(cg);
        self.retry_draining();
    }

    /// Removes the groups left by earlier calls whose processes have died since.
    pub fn retry_draining(&self) {
        let left: Vec<CallCgroup> =
            std::mem::take(&mut *self.draining.lock().unwrap_or_else(|p| p.into_inner()));
        let mut still = Vec::new();
        for cg in left {
            if cg.is_empty() {
                self.remove(cg);
            } else {
                cg.kill(None);
                still.push(cg);
            }
        }
        self.draining
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(still);
    }

    fn remove(&self, cg: CallCgroup) {
        let CallCgroup { name, parts, .. } = cg;
        self.remove_parts(&name, &parts);
    }

    fn remove_parts(&self, name: &CStr, parts: &[Part]) {
        for p in parts {
            if let Some(h) = self.hierarchies.get(p.hierarchy) {
                let _ = rustix::fs::unlinkat(&h.dir, name, AtFlags::REMOVEDIR);
            }
        }
    }

    /// Kills every process in every call group of this watchdog, waits (up to `within`)
    /// until they are gone, and removes the groups and the watchdog's directories. At
    /// shutdown, and in the guardian when the watchdog is gone.
    pub fn kill_and_remove_all(&self, within: Duration) {
        for h in &self.hierarchies {
            kill_tree(h);
        }
        let deadline = std::time::Instant::now() + within;
        loop {
            let busy = self.hierarchies.iter().any(|h| {
                children_of(&h.path)
                    .iter()
                    .any(|c| !read_procs(&h.path.join(c)).is_empty())
            });
            if !busy || std::time::Instant::now() > deadline {
                break;
            }
            for h in &self.hierarchies {
                kill_tree(h);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        for h in &self.hierarchies {
            for c in children_of(&h.path) {
                let _ = std::fs::remove_dir(h.path.join(c));
            }
            let _ = std::fs::remove_dir(&h.path);
        }
        self.pool.lock().unwrap_or_else(|p| p.into_inner()).clear();
        self.draining
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

impl CallCgroup {
    /// Descriptors on the files through which the call's process joins its groups
    /// (`cgroup.procs`, or `tasks` for cgroup v1).
    pub fn procs(&self) -> Vec<BorrowedFd<'_>> {
        self.parts.iter().map(|p| p.procs.as_fd()).collect()
    }

    /// How many times the kernel refused this call a new process or thread for its
    /// process limit.
    pub fn refused(&self) -> u64 {
        self.refused_total().saturating_sub(self.refused_before)
    }

    /// The CPU time this call's processes used (user and system), if counted.
    pub fn cpu_used(&self) -> Option<Duration> {
        self.cpu_total().map(|t| t.saturating_sub(self.cpu_before))
    }

    /// Kills every process in the call's groups: at once with `cgroup.kill` where there is
    /// one, else one by one (they cannot escape: the groups are theirs). Returns how many
    /// there were, not counting `except` (the call's own process, killed on purpose).
    pub fn kill(&self, except: Option<libc::pid_t>) -> usize {
        // Most calls leave nothing: one short read says so where the group counts its tasks.
        if self.tasks() == Some(0) {
            return 0;
        }
        let members = self
            .parts
            .first()
            .map(|p| read_procs_at(p.dir.as_fd()))
            .unwrap_or_default();
        // A cgroup v2 group lists its zombies too: they are dead already.
        let n = members
            .iter()
            .filter(|&&p| Some(p) != except && !is_zombie(p))
            .count();
        if members.is_empty() {
            return 0;
        }
        if let Some(p) = self.parts.iter().find(|p| p.kind == Kind::Unified) {
            if write_at(p.dir.as_fd(), c"cgroup.kill", b"1").is_ok() {
                return n;
            }
        }
        // Every process of the call is in every part: the first lists them all.
        if let Some(p) = self.parts.first() {
            kill_members(p.dir.as_fd());
        }
        n
    }

    /// Whether no process is left in any of the call's groups.
    pub fn is_empty(&self) -> bool {
        match self.tasks() {
            Some(n) => n == 0,
            None => self
                .parts
                .iter()
                .all(|p| read_procs_at(p.dir.as_fd()).is_empty()),
        }
    }

    /// How many tasks (threads, zombies until reaped) the group holds, where it counts them.
    fn tasks(&self) -> Option<u64> {
        let (current, _) = self.parts.iter().find_map(|p| p.pids.as_ref())?;
        pread_text(current.as_fd()).ok()?.trim().parse().ok()
    }

    fn refused_total(&self) -> u64 {
        self.parts
            .iter()
            .filter_map(|p| p.pids.as_ref())
            .filter_map(|(_, events)| pread_text(events.as_fd()).ok())
            .filter_map(|text| {
                text.lines()
                    .find_map(|l| l.strip_prefix("max "))
                    .and_then(|v| v.trim().parse::<u64>().ok())
            })
            .max()
            .unwrap_or(0)
    }

    fn cpu_total(&self) -> Option<Duration> {
        let p = self.parts.iter().find(|p| p.cpu.is_some())?;
        let text = pread_text(p.cpu.as_ref()?.as_fd()).ok()?;
        match p.kind {
            Kind::Unified => text
                .lines()
                .find_map(|l| l.strip_prefix("usage_usec "))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_micros),
            _ => text.trim().parse::<u64>().ok().map(Duration::from_nanos),
        }
    }
}

/// Kills every process beneath a watchdog's directory.
fn kill_tree(h: &Hierarchy) {
    if h.kind == Kind::Unified && write_path(&h.path.join("cgroup.kill"), b"1").is_ok() {
        return;
    }
    for c in children_of(&h.path) {
        let Ok(name) = CString::new(c) else { continue };
        if let Ok(dir) = open_at(h.dir.as_fd(), &name, OFlags::RDONLY | OFlags::DIRECTORY) {
            kill_members(dir.as_fd());
        }
    }
}

/// Sends SIGKILL to every process of a group, one by one (cgroup v1 has no `cgroup.kill`).
/// Each process is pinned with a pidfd first and signalled only if it is still listed in
/// the group: a process that exited after the list was read, and whose id went to a new
/// process elsewhere, is not signalled.
fn kill_members(dir: BorrowedFd<'_>) {
    for pid in read_procs_at(dir) {
        let Some(p) = Pid::from_raw(pid.max(0)) else {
            continue;
        };
        let Ok(pidfd) = pidfd_open(p, PidfdFlags::empty()) else {
            continue;
        };
        if read_procs_at(dir).contains(&pid) {
            let _ = pidfd_send_signal(&pidfd, Signal::KILL);
        }
    }
}

/// Enables the pids controller for the call groups in a v2 hierarchy: in the watchdog's
/// own group (possible when it is the root, or holds no process) and in its directory.
fn enable_v2_pids(h: &Hierarchy) -> bool {
    let Some(own) = h.path.parent() else {
        return false;
    };
    let available = std::fs::read_to_string(own.join("cgroup.controllers"))
        .is_ok_and(|c| c.split_whitespace().any(|c| c == "pids"));
    if !available {
        return false;
    }
    let enabled_in_own = std::fs::read_to_string(own.join("cgroup.subtree_control"))
        .is_ok_and(|c| c.split_whitespace().any(|c| c == "pids"));
    if !enabled_in_own && write_path(&own.join("cgroup.subtree_control"), b"+pids").is_err() {
        return false;
    }
    write_at(h.dir.as_fd(), c"cgroup.subtree_control", b"+pids").is_ok()
}

/// Makes `<parent>/<name>` and locks it.
fn create_locked(parent: &Path, name: &str) -> std::io::Result<OwnedFd> {
    let path = parent.join(name);
    std::fs::create_dir(&path)?;
    let dir = open_dir(&path)?;
    if let Err(e) = flock(&dir, FlockOperation::NonBlockingLockExclusive) {
        let _ = std::fs::remove_dir(&path);
        return Err(e.into());
    }
    Ok(dir)
}

/// Removes the directories in `parent` of watchdogs that are gone (their lock is free) and
/// that are more than a minute old (not one being made right now): kills what is left in
/// their groups, then removes them. Returns their names.
fn remove_stale(parent: &Path) -> Vec<String> {
    let mut removed = Vec::new();
    for name in children_of(parent) {
        if !name.starts_with("moat-watchdog.") {
            continue;
        }
        let path = parent.join(&name);
        let young = std::fs::metadata(&path)
            .ok()
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.elapsed().ok())
            .is_none_or(|age| age < Duration::from_secs(60));
        if young {
            continue;
        }
        let Ok(dir) = open_dir(&path) else {
            continue;
        };
        if flock(&dir, FlockOperation::NonBlockingLockExclusive).is_err() {
            continue;
        }
        let h = Hierarchy {
            kind: if std::fs::metadata(path.join("cgroup.kill")).is_ok() {
                Kind::Unified
            } else {
                Kind::Pids
            },
            path: path.clone(),
            dir,
            pids: false,
            cpu: false,
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            kill_tree(&h);
            let busy = children_of(&path)
                .iter()
                .any(|c| !read_procs(&path.join(c)).is_empty());
            if !busy || std::time::Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        for c in children_of(&path) {
            let _ = std::fs::remove_dir(path.join(c));
        }
        if std::fs::remove_dir(&path).is_ok() {
            removed.push(name);
        }
    }
    removed
}

/// The subdirectories of `dir`.
fn children_of(dir: &Path) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

fn is_zombie(pid: libc::pid_t) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next())
            .is_some_and(|state| state == "Z" || state == "X")
    })
}

fn read_procs(dir: &Path) -> Vec<libc::pid_t> {
    parse_pids(&std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default())
}

fn read_procs_at(dir: BorrowedFd<'_>) -> Vec<libc::pid_t> {
    parse_pids(&read_at(dir, c"cgroup.procs").unwrap_or_default())
}

fn parse_pids(text: &str) -> Vec<libc::pid_t> {
    text.split_whitespace()
        .filter_map(|p| p.parse::<libc::pid_t>().ok())
        .collect()
}

/// The cgroup filesystems mounted, from `/proc/self/mountinfo`.
fn mounts() -> Vec<Mount> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut out = Vec::new();
    for line in text.lines() {
        // id parent major:minor root point options [optional...] - fstype source superoptions
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let left: Vec<&str> = left.split(' ').collect();
        let right: Vec<&str> = right.split(' ').collect();
        let (Some(root), Some(point), Some(fstype)) = (left.get(3), left.get(4), right.first())
        else {
            continue;
        };
        let v2 = *fstype == "cgroup2";
        if !v2 && *fstype != "cgroup" {
            continue;
        }
        out.push(Mount {
            root: unescape(root),
            point: PathBuf::from(unescape(point)),
            v2,
            options: right
                .get(2)
                .map(|o| o.split(',').map(String::from).collect())
                .unwrap_or_default(),
        });
    }
    out
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() && b[i + 1..i + 4].iter().all(u8::is_ascii_digit) {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// This process's groups, from `/proc/self/cgroup`: (hierarchy id, controllers, path).
fn own_groups() -> Vec<(String, String, String)> {
    std::fs::read_to_string("/proc/self/cgroup")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            Some((
                it.next()?.to_string(),
                it.next()?.to_string(),
                it.next()?.to_string(),
            ))
        })
        .collect()
}

fn open_dir(path: &Path) -> std::io::Result<OwnedFd> {
    Ok(rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

fn open_at(dir: BorrowedFd<'_>, name: &CStr, flags: OFlags) -> std::io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        dir,
        name,
        flags | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::empty(),
    )?)
}

/// Reads a control file kept open, from its start.
fn pread_text(fd: BorrowedFd<'_>) -> std::io::Result<String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match rustix::io::pread(fd, &mut buf, out.len() as u64)? {
            0 => return Ok(String::from_utf8_lossy(&out).into_owned()),
            n => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// Reads a (small) control file. Plain reads until the end: `read_to_string` would also
/// ask for the file's size and position, two system calls more on the path of every call.
fn read_at(dir: BorrowedFd<'_>, name: &CStr) -> std::io::Result<String> {
    let mut f = std::fs::File::from(open_at(dir, name, OFlags::RDONLY)?);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match std::io::Read::read(&mut f, &mut buf)? {
            0 => return Ok(String::from_utf8_lossy(&out).into_owned()),
            n => out.extend_from_slice(&buf[..n]),
        }
    }
}

fn write_at(dir: BorrowedFd<'_>, name: &CStr, value: &[u8]) -> std::io::Result<()> {
    let fd = open_at(dir, name, OFlags::WRONLY)?;
    std::io::Write::write_all(&mut std::fs::File::from(fd), value)
}

fn write_path(path: &Path, value: &[u8]) -> std::io::Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(unescape(r"/a\040b"), "/a b");
        assert_eq!(unescape(r"/plain"), "/plain");
        assert_eq!(unescape(r"/end\04"), r"/end\04");
    }
}
