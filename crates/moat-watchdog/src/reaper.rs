//! Reaping every child and killing whatever a call leaves behind.
//!
//! The watchdog is a child subreaper (`PR_SET_CHILD_SUBREAPER`), and may be PID 1 of a
//! container: every process of every call that loses its parent ends up as its child, and
//! it must reap them all. A dedicated thread waits for `SIGCHLD` (blocked in every other
//! thread) and reaps with `waitpid(-1, WNOHANG | __WALL)`; a call's own process (its
//! *root*) is registered when it is spawned, and its exit status goes to the call.
//!
//! Which leftover process belongs to which call is the hard part: a function that
//! daemonizes (`setsid`, double fork) leaves its process group and session, so killing the
//! group is not enough. Each root is spawned as a child subreaper itself (the setting
//! survives `execve`): while the root lives, every orphan among its descendants is
//! re-parented to it, so the whole tree stays beneath it. When the root exits, its
//! remaining descendants are re-parented to the watchdog. So **any child of the watchdog
//! that is not a registered root comes from a call whose root has exited**, a call that is
//! over: [`Reaper::sweep`] kills all of them (and then their children, which land here in
//! turn) until none is left. A call that turns off its root's subreaper flag only gets its
//! own leftovers killed sooner. The same holds whatever the number of calls at once: a
//! sweep at the end of one call may kill the leftovers of another call that has also
//! ended, never a process of a call still running (that process is below that call's
//! live root).
//!
//! A process id can be reused once it is reaped, so signals are only sent under the
//! *gate*: spawning (clone and registration) holds it shared, and reaping, sweeping and
//! killing hold it exclusive. A child that is listed or registered cannot be reaped, and
//! its id not reused, until the gate is released.

use moat_sandbox::spawn::{Child, Command, Env, Restrictions, SpawnError, Stdio};
use std::collections::{HashMap, HashSet};
use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::oneshot;

/// Why the reaper could not start.
#[derive(Debug, thiserror::Error)]
pub enum ReaperError {
    /// `prctl(PR_SET_CHILD_SUBREAPER)` failed.
    #[error("cannot become a child subreaper: {0}")]
    Subreaper(std::io::Error),
    /// The reaping thread could not be started.
    #[error("cannot start the reaping thread: {0}")]
    Thread(std::io::Error),
}

/// The exit status of a call's root, as `waitpid` reports it.
pub type WaitStatus = i32;

/// Counters for the metrics.
#[derive(Debug, Default)]
pub struct ReaperStats {
    /// Processes reaped that were not a call's root.
    pub orphans_reaped: AtomicU64,
    /// Processes killed because their call was over.
    pub leftovers_killed: AtomicU64,
    /// Calls spawned.
    pub spawns: AtomicU64,
    /// Time spent spawning them (clone to exec), in nanoseconds.
    pub spawn_nanos: AtomicU64,
}

#[derive(Default)]
struct Inner {
    gate: RwLock<()>,
    roots: Mutex<HashMap<libc::pid_t, oneshot::Sender<WaitStatus>>>,
    /// Children that belong to no call and are never swept (the guardian).
    kept: Mutex<HashSet<libc::pid_t>>,
    stats: ReaperStats,
}

/// Reaps every child of the watchdog; see the module documentation.
#[derive(Clone)]
pub struct Reaper {
    inner: Arc<Inner>,
}

/// A spawned call root.
pub struct Spawned {
    /// The child.
    pub child: Child,
    /// Its exit status, sent when it is reaped.
    pub exit: oneshot::Receiver<WaitStatus>,
}

/// Blocks `SIGCHLD` in the calling thread, and so in every thread it starts afterwards.
/// Call first thing in `main`, before any other thread exists: the reaping thread takes
/// the signal with `sigtimedwait`, and no other thread may take it first.
pub fn block_sigchld() {
    // SAFETY: sigset_t is plain data initialised by sigemptyset; pthread_sigmask changes
    // this thread's mask only.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGCHLD);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

impl Reaper {
    /// Makes this process a child subreaper and starts the reaping thread. [`block_sigchld`]
    /// must have run in `main` before.
    pub fn start() -> Result<Reaper, ReaperError> {
        // SAFETY: PR_SET_CHILD_SUBREAPER takes integer arguments.
        if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
            return Err(ReaperError::Subreaper(std::io::Error::last_os_error()));
        }
        let inner = Arc::new(Inner::default());
        let thread_inner = Arc::clone(&inner);
        std::thread::Builder::new()
            .name("moat-reaper".into())
            .spawn(move || reap_forever(&thread_inner))
            .map_err(ReaperError::Thread)?;
        Ok(Reaper { inner })
    }

    /// Never sweeps `pid`, a child of the watchdog that belongs to no call (the guardian).
    pub fn keep(&self, pid: libc::pid_t) {
        self.inner
            .kept
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(pid);
    }

    /// Counts `n` processes killed because their call was over (by its control group).
    pub fn count_leftovers(&self, n: usize) {
        self.inner
            .stats
            .leftovers_killed
            .fetch_add(n as u64, Ordering::Relaxed);
    }

    /// The counters.
    pub fn stats(&self) -> &ReaperStats {
        &self.inner.stats
    }

    /// Spawns a call root in the control groups whose `cgroup.procs` are `cgroups` (see
    /// [`Command::spawn_into`]) and registers it, so that its exit status goes to
    /// [`Spawned::exit`].
    pub fn spawn(
        &self,
        cmd: &Command,
        env: &Env,
        stdio: Stdio<'_>,
        restrictions: &Restrictions,
        cgroups: &[BorrowedFd<'_>],
    ) -> Result<Spawned, SpawnError> {
        let _shared = self.inner.gate.read().unwrap_or_else(|p| p.into_inner());
        let started = std::time::Instant::now();
        let child = cmd.spawn_into(env, stdio, restrictions, cgroups);
        let took = started.elapsed().as_nanos().min(u128::from(u64::MAX)) as u64;
        let stats = &self.inner.stats;
        stats.spawns.fetch_add(1, Ordering::Relaxed);
        stats.spawn_nanos.fetch_add(took, Ordering::Relaxed);
        let child = child?;
        let (tx, rx) = oneshot::channel();
        self.roots().insert(child.pid, tx);
        Ok(Spawned { child, exit: rx })
    }

    /// Kills a root's process group and the root itself, if it has not been reaped yet
    /// (after that its id may belong to someone else). Its descendants outside the group
    /// are re-parented here when it dies, and [`Reaper::sweep`] kills them.
    pub fn kill_root(&self, pid: libc::pid_t) {
        let _exclusive = self.inner.gate.write().unwrap_or_else(|p| p.into_inner());
        if self.roots().contains_key(&pid) {
            // SAFETY: kill with integer arguments; the root is unreaped (registered), so
            // `pid` and its group id are its own.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }

    /// Kills every child of the watchdog that is not a registered root (processes of calls
    /// that are over), and their descendants as they are re-parented here, until there is
    /// none. Returns how many were killed, and counts them in the metrics.
    pub async fn sweep(&self) -> usize {
        let killed = self.sweep_uncounted().await;
        self.count_leftovers(killed);
        killed
    }

    /// [`Reaper::sweep`], for a call whose leftovers were counted when its control group
    /// killed them (the sweep then finds them dying, and reaps them).
    pub async fn sweep_uncounted(&self) -> usize {
        // Distinct processes: one that takes a moment to die is signalled again.
        let mut killed: HashSet<libc::pid_t> = HashSet::new();
        // A process killed here re-parents its children at its exit; each round takes the
        // next generation. A bounded number of rounds, because a sweep must end even if a
        // process cannot die (uninterruptible sleep): the next sweep will find it again.
        for round in 0..2000 {
            let pending = {
                let _exclusive = self.inner.gate.write().unwrap_or_else(|p| p.into_inner());
                reap_round(&self.inner);
                let unknown: Vec<libc::pid_t> = {
                    let roots = self.roots();
                    let kept = self.inner.kept.lock().unwrap_or_else(|p| p.into_inner());
                    children()
                        .into_iter()
                        .filter(|pid| !roots.contains_key(pid) && !kept.contains(pid))
                        .collect()
                };
                for &pid in &unknown {
                    // SAFETY: `pid` is an unreaped child of this process (the gate stops
                    // reaping), so the id is its own.
                    if unsafe { libc::kill(pid, libc::SIGKILL) } == 0 {
                        killed.insert(pid);
                    }
                }
                unknown.len()
            };
            if pending == 0 {
                break;
            }
            // Give the killed processes time to die (their exit re-parents their children).
            let pause = if round < 20 { 100 } else { 2000 };
            tokio::time::sleep(Duration::from_micros(pause)).await;
        }
        killed.len()
    }

    /// Kills every registered root (at shutdown), then sweeps.
    pub async fn kill_all(&self) {
        let pids: Vec<libc::pid_t> = self.roots().keys().copied().collect();
        for pid in pids {
            self.kill_root(pid);
        }
        self.sweep().await;
    }

    fn roots(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<libc::pid_t, oneshot::Sender<WaitStatus>>> {
        self.inner.roots.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The reaping thread: wakes on SIGCHLD (or every second, for children whose exit sends no
/// signal) and reaps.
fn reap_forever(inner: &Inner) {
    // SAFETY: plain data for sigtimedwait.
    let (set, timeout) = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGCHLD);
        (
            set,
            libc::timespec {
                tv_sec: 1,
                tv_nsec: 0,
            },
        )
    };
    loop {
        // SAFETY: valid set and timeout; the siginfo out-pointer may be null.
        unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &timeout) };
        let _exclusive = inner.gate.write().unwrap_or_else(|p| p.into_inner());
        reap_round(inner);
    }
}

/// Reaps every child that has exited. Caller holds the gate exclusively.
fn reap_round(inner: &Inner) {
    loop {
        let mut status = 0;
        // SAFETY: waitpid with a valid status pointer. __WALL also reaps children created
        // with an exit signal other than SIGCHLD (clone), which would otherwise stay.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG | libc::__WALL) };
        if pid <= 0 {
            break;
        }
        let root = inner
            .roots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&pid);
        match root {
            // The call may have given up waiting; nothing to do then.
            Some(tx) => drop(tx.send(status)),
            None => {
                // A kept process is gone: its id may come back as anyone's.
                let kept = inner
                    .kept
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&pid);
                if !kept {
                    inner.stats.orphans_reaped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

/// The children of this process: `/proc/self/task/<tid>/children` of every thread (a
/// process is the child of the thread that created it, and an orphan of whichever thread
/// the kernel picks), or, without `CONFIG_PROC_CHILDREN`, every process whose parent is
/// this one.
fn children() -> Vec<libc::pid_t> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    let mut any = false;
    for t in tasks.flatten() {
        let path = t.path().join("children");
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                any = true;
                out.extend(
                    text.split_whitespace()
                        .filter_map(|p| p.parse::<libc::pid_t>().ok()),
                );
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(_) => {}
        }
    }
    if !any {
        return children_by_scan();
    }
    out.sort_unstable();
    out.dedup();
    out
}

fn children_by_scan() -> Vec<libc::pid_t> {
    let me = std::process::id() as libc::pid_t;
    let mut out = Vec::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return out;
    };
    for p in procs.flatten() {
        let Some(pid) = p
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<libc::pid_t>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the command name, which is in parentheses and may hold spaces.
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let ppid = after
            .split_whitespace()
            .nth(1)
            .and_then(|f| f.parse::<libc::pid_t>().ok());
        if ppid == Some(me) {
            out.push(pid);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_children_scan_agrees_with_the_children_files() {
        let mut child = std::process::Command::new("/bin/sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let pid = child.id() as libc::pid_t;
        assert!(children().contains(&pid));
        assert!(children_by_scan().contains(&pid));
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(!children().contains(&pid));
    }
}
