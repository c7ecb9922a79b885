//! One call's life: private directory, sandbox, spawn, input and output, exit or timeout,
//! killing what is left, removing the directory.
//!
//! The order matters and never changes: the process tree is dead (the root reaped, its
//! leftovers swept, see [`crate::reaper`]) before the private directory is removed, so no
//! process of the call can write into it while it is removed, and none outlives the call.
//! A call ends when its root process exits: whatever it started and left running is killed
//! then, even if it still holds the output pipe (the classic watchdog would wait for it, or
//! leave it running forever when it redirected its output).

use crate::config::SandboxMode;
use crate::reaper::{Reaper, WaitStatus};
use crate::sandbox::Sandbox;
use crate::tmpdir::{CallDir, TmpRoot};
use bytes::Bytes;
use moat_sandbox::spawn::{Command, Env, NotEnforced, Restrictions, Stdio};
use std::collections::HashSet;
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::time::Instant;

/// How long a killed call may take to be reaped before the watchdog gives up waiting (a
/// process in uninterruptible sleep dies only when it wakes).
const KILL_GRACE: Duration = Duration::from_secs(5);

/// How a call ended.
#[derive(Debug)]
pub enum Outcome {
    /// The function's process exited (or was killed by a signal of its own).
    Exited {
        /// Its wait status.
        status: WaitStatus,
        /// Its output (stdout, with stderr when combined).
        output: Vec<u8>,
        /// Its stderr when not combined.
        stderr: Vec<u8>,
    },
    /// `exec_timeout` passed: the tree was killed.
    TimedOut,
    /// `write_timeout` passed: the tree was killed and no response can be written.
    Abandoned,
    /// The output passed `max_response_bytes`: the tree was killed.
    OutputTooLarge {
        /// The limit.
        limit: u64,
    },
    /// The sandbox could not be applied as required: the function did not run.
    Refused(String),
    /// The function could not be started.
    Failed(String),
}

/// What every call shares.
pub struct Runner {
    /// The function's command.
    pub command: Command,
    /// The per-call sandbox.
    pub sandbox: Sandbox,
    /// Where private directories go (`None` with `sandbox=off`).
    pub tmp: Option<Arc<TmpRoot>>,
    /// The reaper.
    pub reaper: Reaper,
    /// stderr into the output.
    pub combine_output: bool,
    /// `exec_timeout`.
    pub exec_timeout: Option<Duration>,
    /// `max_response_bytes`.
    pub max_output: Option<u64>,
    /// Slots prepared ahead of calls.
    pub spare: Mutex<Vec<Slot>>,
}

/// How many calls' directories and rulesets are kept ready.
pub const SPARE_SLOTS: usize = 2;

/// What a call needs before its process starts: its private directory and the ruleset that
/// grants it.
pub struct Slot {
    dir: Option<CallDir>,
    restrictions: Restrictions,
}

/// What the caller learns besides the outcome.
#[derive(Debug, Default)]
pub struct Notes {
    /// Parts of the sandbox not enforced for this call (best effort).
    pub not_enforced: Vec<String>,
}

enum IoError {
    TooLarge,
    Io(std::io::Error),
}

impl Runner {
    /// Runs one call with environment `env` (later entries win) and `input` on stdin.
    /// `write_deadline` is when the response must be written by.
    pub async fn run(
        self: &Arc<Self>,
        env: Vec<(Vec<u8>, Vec<u8>)>,
        input: Bytes,
        write_deadline: Option<Instant>,
    ) -> (Outcome, Notes) {
        let mut notes = Notes::default();
        let slot = match self.take_slot(&mut notes) {
            Ok(s) => s,
            Err(why) => return (Outcome::Refused(why), notes),
        };
        let Slot { dir, restrictions } = slot;
        let outcome = self
            .run_in(
                dir.as_ref(),
                restrictions,
                env,
                input,
                write_deadline,
                &mut notes,
            )
            .await;
        // The tree is dead (run_in returns after the sweep): nothing can use the directory
        // any more, and removing it can wait until the answer is on its way.
        self.tidy_later(dir);
        (outcome, notes)
    }

    /// A prepared slot, or a new one.
    fn take_slot(&self, notes: &mut Notes) -> Result<Slot, String> {
        let spare = self.spare.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match spare {
            Some(s) => Ok(s),
            None => self.make_slot(notes),
        }
    }

    /// Makes a call's private directory and its sandbox's ruleset. Under `sandbox=required`
    /// a failure refuses the call; under `best_effort` it is noted and the call runs with
    /// less.
    fn make_slot(&self, notes: &mut Notes) -> Result<Slot, String> {
        let required = self.sandbox.mode() == SandboxMode::Required;
        let dir = match &self.tmp {
            Some(root) => match root.create_call() {
                Ok(d) => Some(d),
                Err(e) if required => return Err(e.to_string()),
                Err(e) => {
                    notes
                        .not_enforced
                        .push(format!("private temporary directory: {e}"));
                    None
                }
            },
            None => None,
        };
        let restrictions = match self.sandbox.restrictions(dir.as_ref()) {
            Ok(r) => r,
            Err(e) if required => {
                self.discard(dir);
                return Err(e.to_string());
            }
            Err(e) => {
                notes.not_enforced.push(format!("the call's sandbox: {e}"));
                Restrictions::none()
            }
        };
        Ok(Slot { dir, restrictions })
    }

    fn discard(&self, dir: Option<CallDir>) {
        if let (Some(root), Some(dir)) = (&self.tmp, dir) {
            if let Err(e) = root.remove(dir) {
                tracing::error!("{e}");
            }
        }
    }

    /// After a call, in the background (once its answer is on its way): removes its
    /// directory and prepares the next calls' slots. Making and removing a directory and
    /// making a ruleset are most of what a sandbox adds to a call, and this takes them off
    /// the path of the request. Only complete slots are kept; a slot that cannot be made
    /// fully is left for the call that needs it, which reports why.
    fn tidy_later(self: &Arc<Self>, dir: Option<CallDir>) {
        if self.tmp.is_none() {
            return;
        }
        let me = Arc::clone(self);
        tokio::spawn(async move {
            me.discard(dir);
            let missing = SPARE_SLOTS
                .saturating_sub(me.spare.lock().unwrap_or_else(|p| p.into_inner()).len());
            for _ in 0..missing {
                let mut notes = Notes::default();
                match me.make_slot(&mut notes) {
                    Ok(slot) if notes.not_enforced.is_empty() => {
                        let mut spare = me.spare.lock().unwrap_or_else(|p| p.into_inner());
                        if spare.len() < SPARE_SLOTS {
                            spare.push(slot);
                            continue;
                        }
                        drop(spare);
                        me.discard(slot.dir);
                    }
                    Ok(slot) => me.discard(slot.dir),
                    Err(_) => {}
                }
                break;
            }
        });
    }

    /// Removes the prepared slots' directories (at shutdown).
    pub fn drain_spare(&self) {
        let slots: Vec<Slot> =
            std::mem::take(&mut *self.spare.lock().unwrap_or_else(|p| p.into_inner()));
        for s in slots {
            self.discard(s.dir);
        }
    }

    async fn run_in(
        &self,
        dir: Option<&CallDir>,
        restrictions: Restrictions,
        env: Vec<(Vec<u8>, Vec<u8>)>,
        input: Bytes,
        write_deadline: Option<Instant>,
        notes: &mut Notes,
    ) -> Outcome {
        let env = match build_env(env, dir) {
            Ok(e) => e,
            Err(e) => return Outcome::Failed(e.to_string()),
        };
        let pipes = (|| -> std::io::Result<_> {
            let stdin = pipe_pair()?;
            let out = pipe_pair()?;
            let err = if self.combine_output {
                None
            } else {
                Some(pipe_pair()?)
            };
            Ok((stdin, out, err))
        })();
        let ((stdin_r, stdin_w), (out_r, out_w), err) = match pipes {
            Ok(p) => p,
            Err(e) => return Outcome::Failed(format!("cannot create pipes: {e}")),
        };
        let (err_r, err_w) = match err {
            Some((r, w)) => (Some(r), Some(w)),
            None => (None, None),
        };
        let start = Instant::now();
        let spawned = self.reaper.spawn(
            &self.command,
            &env,
            Stdio {
                stdin: stdin_r.as_fd(),
                stdout: out_w.as_fd(),
                stderr: err_w.as_ref().map_or(out_w.as_fd(), |w| w.as_fd()),
            },
            &restrictions,
        );
        // The child's ends and the ruleset belong to the child now.
        drop((stdin_r, out_w, err_w, restrictions));
        let spawned = match spawned {
            Ok(s) => s,
            Err(e) => {
                return if is_sandbox_failure(&e) {
                    Outcome::Refused(e.to_string())
                } else {
                    Outcome::Failed(e.to_string())
                }
            }
        };
        notes.not_enforced.extend(
            spawned
                .child
                .not_enforced
                .iter()
                .map(NotEnforced::to_string),
        );
        let pid = spawned.child.pid;
        let mut exit = spawned.exit;

        let exec_deadline = self.exec_timeout.map(|t| start + t);
        let deadline = match (exec_deadline, write_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let limit = self.max_output;
        let result = {
            let io = async {
                let stdin = pipe::Sender::from_owned_fd(stdin_w).map_err(IoError::Io)?;
                let out = pipe::Receiver::from_owned_fd(out_r).map_err(IoError::Io)?;
                let err = match err_r {
                    Some(r) => Some(pipe::Receiver::from_owned_fd(r).map_err(IoError::Io)?),
                    None => None,
                };
                tokio::try_join!(write_input(stdin, input), read_all(out, limit), async {
                    match err {
                        Some(r) => read_all(r, limit).await,
                        None => Ok(Vec::new()),
                    }
                })
            };
            let waiting = async {
                let status = (&mut exit).await;
                self.reaper.sweep().await;
                Ok::<_, IoError>(status)
            };
            let work = async { tokio::try_join!(io, waiting) };
            match deadline {
                Some(d) => tokio::time::timeout_at(d, work).await.ok(),
                None => Some(work.await),
            }
        };
        match result {
            Some(Ok(((_, output, stderr), Ok(status)))) => Outcome::Exited {
                status,
                output,
                stderr,
            },
            Some(Ok((_, Err(_)))) => {
                Outcome::Failed("the function's process was lost (reaped elsewhere)".into())
            }
            Some(Err(IoError::TooLarge)) => {
                self.finish_killed(pid, &mut exit).await;
                Outcome::OutputTooLarge {
                    limit: limit.unwrap_or(0),
                }
            }
            Some(Err(IoError::Io(e))) => {
                self.finish_killed(pid, &mut exit).await;
                Outcome::Failed(format!("cannot exchange data with the function: {e}"))
            }
            None => {
                self.finish_killed(pid, &mut exit).await;
                if deadline == exec_deadline {
                    Outcome::TimedOut
                } else {
                    Outcome::Abandoned
                }
            }
        }
    }

    /// Kills a call's tree and waits until it is gone.
    async fn finish_killed(
        &self,
        pid: libc::pid_t,
        exit: &mut tokio::sync::oneshot::Receiver<WaitStatus>,
    ) {
        self.reaper.kill_root(pid);
        if tokio::time::timeout(KILL_GRACE, exit).await.is_err() {
            tracing::error!(
                "process {pid} did not die within {KILL_GRACE:?} of SIGKILL; its private directory is removed anyway"
            );
        }
        self.reaper.sweep().await;
    }
}

/// Whether a spawn failed because a restriction could not be applied.
fn is_sandbox_failure(e: &moat_sandbox::spawn::SpawnError) -> bool {
    use moat_sandbox::spawn::{SpawnError, Step};
    matches!(
        e,
        SpawnError::Child {
            step: Step::NoNewPrivs
                | Step::Capabilities
                | Step::Landlock
                | Step::Seccomp
                | Step::CloseFds,
            ..
        } | SpawnError::Restrictions(_)
    )
}

/// The call's environment: `env` with later names winning, plus TMPDIR, TMP and TEMP set to
/// the private directory. Entries that cannot be passed (a NUL byte, a name with `=`) are
/// left out.
fn build_env(
    env: Vec<(Vec<u8>, Vec<u8>)>,
    dir: Option<&CallDir>,
) -> Result<Env, moat_sandbox::spawn::SpawnError> {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let tmp: Vec<(Vec<u8>, Vec<u8>)> = match dir {
        Some(d) => ["TMPDIR", "TMP", "TEMP"]
            .iter()
            .map(|k| {
                (
                    k.as_bytes().to_vec(),
                    d.path.as_os_str().as_bytes().to_vec(),
                )
            })
            .collect(),
        None => Vec::new(),
    };
    let mut seen: HashSet<&[u8]> = HashSet::with_capacity(env.len() + 3);
    let mut keep: Vec<&(Vec<u8>, Vec<u8>)> = Vec::with_capacity(env.len() + 3);
    for entry in tmp.iter().rev().chain(env.iter().rev()) {
        if seen.insert(&entry.0) {
            keep.push(entry);
        }
    }
    let mut out = Env::with_capacity(keep.len());
    for (k, v) in keep.into_iter().rev() {
        if k.contains(&0) || v.contains(&0) || k.contains(&b'=') || k.is_empty() {
            tracing::warn!(
                "environment variable {:?} cannot be passed to the function; left out",
                String::from_utf8_lossy(k)
            );
            continue;
        }
        out.push(OsStr::from_bytes(k), OsStr::from_bytes(v))?;
    }
    Ok(out)
}

fn pipe_pair() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two new descriptors into `fds`.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Writes the input, then closes stdin. A function that exits without reading it all is
/// not an error (EPIPE), as with the classic watchdog.
async fn write_input(mut stdin: pipe::Sender, input: Bytes) -> Result<(), IoError> {
    match stdin.write_all(&input).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(IoError::Io(e)),
    }
}

/// Reads until every writer has closed the pipe, at most `limit` bytes.
async fn read_all(mut r: pipe::Receiver, limit: Option<u64>) -> Result<Vec<u8>, IoError> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = r.read(&mut buf).await.map_err(IoError::Io)?;
        if n == 0 {
            return Ok(out);
        }
        if limit.is_some_and(|l| (out.len() + n) as u64 > l) {
            return Err(IoError::TooLarge);
        }
        out.extend_from_slice(&buf[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_entries_win_and_tmp_overrides() {
        let env = vec![
            (b"A".to_vec(), b"1".to_vec()),
            (b"TMPDIR".to_vec(), b"/tmp".to_vec()),
            (b"A".to_vec(), b"2".to_vec()),
            (b"BAD".to_vec(), b"x\0y".to_vec()),
        ];
        let e = build_env(env, None).unwrap();
        assert_eq!(e.len(), 2);
    }
}
