//! One call's life: private directory, control group, sandbox, spawn, input and output,
//! exit, limit or timeout, killing what is left, removing the directory.
//!
//! The order matters and never changes: the process tree is dead (the root reaped, its
//! group killed, its leftovers swept, see [`crate::reaper`]) before the private directory is
//! removed, so no process of the call can write into it while it is removed, and none
//! outlives the call. A call ends when its root process exits: whatever it started and left
//! running is killed then, even if it still holds the output pipe (the classic watchdog
//! would wait for it, or leave it running forever when it redirected its output).
//!
//! Each call runs in a task of its own ([`Runner::start`]), which always finishes the
//! call's life whatever happens to the request: the handler waits for the call's [`Head`],
//! and a client that goes away (its handler or response body dropped) gets its call killed.
//!
//! **Output.** The classic contract answers with the function's exit status, so it needs
//! the whole output before it answers. Here the output is held up to
//! `response_buffer_bytes`: a function that ends within it gets exactly the classic
//! answer. Past it, the response starts (200) and the rest is streamed as it comes, so a
//! call holds at most the buffer and a few pipe reads in memory whatever its output size,
//! and a slow client slows the function down (the pipe fills) rather than growing the
//! watchdog. A call that fails after its response has started (non-zero exit, a limit,
//! a timeout) gets its response cut off without the end of its chunked encoding, which
//! every HTTP client reports as an error, never as a complete answer. With
//! `stream_response=false` an output past the buffer kills the call instead (500).

use crate::cgroup::{CallCgroup, Cgroups};
use crate::config::{CallLimits, SandboxMode};
use crate::reaper::{Reaper, WaitStatus};
use crate::sandbox::Sandbox;
use crate::tmpdir::{CallDir, TmpRoot};
use bytes::{Bytes, BytesMut};
use moat_sandbox::spawn::{Command, Env, NotEnforced, Restrictions, Stdio};
use moat_serve::Connections;
use std::collections::HashSet;
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

/// How long a killed call may take to be reaped before the watchdog gives up waiting (a
/// process in uninterruptible sleep dies only when it wakes).
const KILL_GRACE: Duration = Duration::from_secs(5);

/// How much output is read from the function at once (a pipe holds 64 KiB).
const CHUNK: usize = 64 * 1024;

/// The longest stderr line logged whole; longer ones are logged in pieces of this size.
const STDERR_LINE: usize = 16 * 1024;

/// How a call ended.
#[derive(Debug)]
pub enum Outcome {
    /// The function's process exited (or was killed by a signal of its own).
    Exited {
        /// Its wait status.
        status: WaitStatus,
        /// Its output (stdout, with stderr when combined), when it was not streamed.
        output: Bytes,
    },
    /// `exec_timeout` passed: the tree was killed.
    TimedOut,
    /// `write_timeout` passed: the tree was killed and no response can be written.
    Abandoned,
    /// The watchdog is shutting down and the call did not finish in the grace period: the
    /// tree was killed.
    ShutDown,
    /// The output passed `max_response_bytes`: the tree was killed.
    OutputTooLarge {
        /// The limit.
        limit: u64,
    },
    /// The output passed `response_buffer_bytes` with `stream_response=false`: the tree was
    /// killed.
    BufferFull {
        /// The buffer's size.
        limit: usize,
    },
    /// The call reached one of its limits.
    Limit {
        /// Which.
        hit: LimitHit,
        /// The function's wait status when it exited by itself (not killed for the limit).
        status: Option<WaitStatus>,
        /// Its output, when it was not streamed.
        output: Bytes,
    },
    /// The client went away (its request or response dropped): the tree was killed.
    ClientGone,
    /// The sandbox could not be applied as required: the function did not run.
    Refused(String),
    /// The function could not be started.
    Failed(String),
}

/// A per-call limit a call reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitHit {
    /// `max_call_processes`: the kernel refused it a process or thread.
    Processes(u64),
    /// `max_call_tmp_bytes`: its private directory is full.
    TmpBytes(u64),
    /// `max_call_cpu`: it used that much CPU time and was killed.
    Cpu(Duration),
}

impl LimitHit {
    /// A short name, for the `X-Moat-Limit` header and the metrics.
    pub fn name(self) -> &'static str {
        match self {
            LimitHit::Processes(_) => "processes",
            LimitHit::TmpBytes(_) => "tmp",
            LimitHit::Cpu(_) => "cpu",
        }
    }
}

impl std::fmt::Display for LimitHit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LimitHit::Processes(n) => write!(
                f,
                "the call reached max_call_processes ({n} processes and threads): the kernel refused it more"
            ),
            LimitHit::TmpBytes(n) => write!(
                f,
                "the call filled its private temporary directory (max_call_tmp_bytes, {n} bytes)"
            ),
            LimitHit::Cpu(d) => write!(
                f,
                "the call used max_call_cpu ({d:?} of CPU time) and was killed"
            ),
        }
    }
}

/// What the handler gets first from a call: the whole outcome, or the start of a streamed
/// output.
#[derive(Debug)]
pub enum Head {
    /// The call is over.
    Done(Outcome),
    /// The output passed the buffer and is streamed: `first` is what was held, `rest`
    /// brings the remainder; a channel that closes without [`Chunk::End`] means the call
    /// failed after all, and the response must be cut off.
    Streaming {
        /// The output held so far.
        first: Bytes,
        /// The rest.
        rest: mpsc::Receiver<Chunk>,
    },
}

/// A piece of a streamed output.
#[derive(Debug)]
pub enum Chunk {
    /// More output.
    Data(Bytes),
    /// The function succeeded: the output is complete.
    End,
}

/// A started call, as the handler holds it.
pub struct Started {
    /// The call's [`Head`] and notes, once known.
    pub head: oneshot::Receiver<(Head, Notes)>,
    /// Keeps the call alive: dropping it (the handler or the streamed body going away)
    /// kills the call.
    pub alive: Alive,
}

/// See [`Started::alive`]: held only to be dropped.
#[derive(Debug)]
pub struct Alive {
    _call: oneshot::Sender<()>,
}

/// Counters of what happened to calls, for the metrics.
#[derive(Debug, Default)]
pub struct CallStats {
    /// Streamed responses cut off because the call failed after they started.
    pub streams_cut: AtomicU64,
    /// Calls that reached `max_call_processes`.
    pub limit_processes: AtomicU64,
    /// Calls that filled their private directory.
    pub limit_tmp: AtomicU64,
    /// Calls killed for `max_call_cpu`.
    pub limit_cpu: AtomicU64,
    /// Calls stopped at shutdown.
    pub shut_down: AtomicU64,
}

/// How the function's output is handled.
#[derive(Clone, Copy, Debug)]
pub struct OutputRules {
    /// `max_response_bytes`.
    pub max: Option<u64>,
    /// `response_buffer_bytes`.
    pub buffer: usize,
    /// `stream_response`.
    pub stream: bool,
}

/// What every call shares.
pub struct Runner {
    /// The function's command.
    pub command: Command,
    /// The per-call sandbox.
    pub sandbox: Sandbox,
    /// Where private directories go (`None` with `sandbox=off`).
    pub tmp: Option<Arc<TmpRoot>>,
    /// Per-call control groups, when the node lets the watchdog make them.
    pub cgroups: Option<Arc<Cgroups>>,
    /// The limits enforced (those the node cannot enforce are `None` here).
    pub limits: CallLimits,
    /// The reaper.
    pub reaper: Reaper,
    /// stderr into the output.
    pub combine_output: bool,
    /// `exec_timeout`.
    pub exec_timeout: Option<Duration>,
    /// The output rules.
    pub output: OutputRules,
    /// The connections, to shed idle ones when a call cannot get a descriptor.
    pub connections: Option<Arc<Connections>>,
    /// Set at shutdown once the grace period is over: calls still running are stopped.
    pub cut: watch::Sender<bool>,
    /// Counters.
    pub stats: CallStats,
    /// Slots prepared ahead of calls.
    pub spare: Mutex<Vec<Slot>>,
}

/// How many calls' directories and rulesets are kept ready.
pub const SPARE_SLOTS: usize = 2;

/// What a call needs before its process starts: its private directory, its control group
/// and the ruleset that grants the directory.
pub struct Slot {
    dir: Option<CallDir>,
    cgroup: Option<CallCgroup>,
    restrictions: Restrictions,
}

/// What the caller learns besides the outcome.
#[derive(Debug, Default)]
pub struct Notes {
    /// Parts of the sandbox not enforced for this call (best effort).
    pub not_enforced: Vec<String>,
}

#[derive(Debug)]
enum IoError {
    TooLarge,
    BufferFull,
    ClientGone,
    Io(std::io::Error),
}

/// Why a call was stopped before its end.
enum Stop {
    Deadline,
    ShutDown,
    ClientGone,
    Cpu,
}

/// The output as collected.
enum Collected {
    /// All of it, within the buffer.
    Whole(Bytes),
    /// Streamed: the channel to end the stream with, and how many bytes went.
    Streamed(mpsc::Sender<Chunk>, u64),
}

/// Sends the call's head once.
struct Answer {
    tx: Option<oneshot::Sender<(Head, Notes)>>,
    notes: Notes,
}

impl Answer {
    /// Starts the stream with `first`; `None` if the handler is gone.
    fn stream(&mut self, first: Bytes) -> Option<mpsc::Sender<Chunk>> {
        // Two places: the chunk being sent and the end, so that ending never waits.
        let (tx, rx) = mpsc::channel(2);
        let notes = std::mem::take(&mut self.notes);
        self.tx
            .take()?
            .send((Head::Streaming { first, rest: rx }, notes))
            .ok()?;
        Some(tx)
    }

    /// Sends the outcome as the head, unless the stream started already: then returns it.
    fn done(&mut self, outcome: Outcome) -> Option<Outcome> {
        match self.tx.take() {
            Some(tx) => {
                let _ = tx.send((Head::Done(outcome), std::mem::take(&mut self.notes)));
                None
            }
            None => Some(outcome),
        }
    }
}

impl Runner {
    /// Starts one call with environment `env` (later entries win) and `input` on stdin, in
    /// a task of its own. `write_deadline` is when the response must be written by.
    pub fn start(
        self: &Arc<Self>,
        env: Vec<(Vec<u8>, Vec<u8>)>,
        input: Bytes,
        write_deadline: Option<Instant>,
    ) -> Started {
        let (head_tx, head_rx) = oneshot::channel();
        let (alive_tx, alive_rx) = oneshot::channel();
        let me = Arc::clone(self);
        tokio::spawn(async move {
            let mut answer = Answer {
                tx: Some(head_tx),
                notes: Notes::default(),
            };
            let slot = match me.take_slot(&mut answer.notes) {
                Ok(s) => s,
                Err(why) => {
                    answer.done(Outcome::Refused(why));
                    return;
                }
            };
            let Slot {
                dir,
                cgroup,
                restrictions,
            } = slot;
            let started = Instant::now();
            let outcome = me
                .run_in(
                    dir.as_ref(),
                    cgroup.as_ref(),
                    restrictions,
                    env,
                    input,
                    write_deadline,
                    &mut answer,
                    alive_rx,
                )
                .await;
            me.count(&outcome);
            if let Some(outcome) = answer.done(outcome) {
                me.log_streamed(&outcome, started.elapsed());
            }
            // The tree is dead (run_in returns after the sweep): nothing can use the
            // directory or the group any more, and tidying can wait until the answer is on
            // its way.
            me.tidy_later(dir, cgroup);
        });
        Started {
            head: head_rx,
            alive: Alive { _call: alive_tx },
        }
    }

    fn count(&self, outcome: &Outcome) {
        let s = &self.stats;
        match outcome {
            Outcome::Limit { hit, .. } => match hit {
                LimitHit::Processes(_) => &s.limit_processes,
                LimitHit::TmpBytes(_) => &s.limit_tmp,
                LimitHit::Cpu(_) => &s.limit_cpu,
            }
            .fetch_add(1, Ordering::Relaxed),
            Outcome::ShutDown => s.shut_down.fetch_add(1, Ordering::Relaxed),
            _ => 0,
        };
    }

    /// Logs how a call whose output was streamed ended (its handler is gone by then).
    fn log_streamed(&self, outcome: &Outcome, took: Duration) {
        let why = match outcome {
            Outcome::Exited { status: 0, .. } => {
                tracing::info!("Streamed the output - Duration: {:.6}s", took.as_secs_f64());
                return;
            }
            Outcome::ClientGone => {
                tracing::info!("the client went away during the streamed output; call killed");
                return;
            }
            Outcome::Exited { status, .. } => crate::contract::exit_text(*status),
            Outcome::Limit { hit, .. } => hit.to_string(),
            Outcome::TimedOut => "exec_timeout passed".to_string(),
            Outcome::Abandoned => "write_timeout passed".to_string(),
            Outcome::ShutDown => "the watchdog is shutting down".to_string(),
            Outcome::OutputTooLarge { limit } => {
                format!("the output passed max_response_bytes ({limit})")
            }
            Outcome::BufferFull { .. } | Outcome::Refused(_) => String::new(),
            Outcome::Failed(why) => why.clone(),
        };
        self.stats.streams_cut.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            "the call failed after its output had started streaming ({why}): the response was cut off before its end"
        );
    }

    /// A prepared slot, or a new one.
    fn take_slot(&self, notes: &mut Notes) -> Result<Slot, String> {
        let spare = self.spare.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match spare {
            Some(s) => Ok(s),
            None => self.make_slot(notes),
        }
    }

    /// Makes a call's private directory, its control group and its sandbox's ruleset. Under
    /// `sandbox=required` a failure refuses the call; under `best_effort` it is noted and the
    /// call runs with less.
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
        let cgroup = match &self.cgroups {
            Some(c) => match c.take() {
                Ok(cg) => Some(cg),
                Err(e) if required => {
                    self.discard(dir, None);
                    return Err(format!("the call's control group: {e}"));
                }
                Err(e) => {
                    notes
                        .not_enforced
                        .push(format!("the call's control group: {e}"));
                    None
                }
            },
            None => None,
        };
        let restrictions = match self.sandbox.restrictions(dir.as_ref()) {
            Ok(r) => r,
            Err(e) if required => {
                self.discard(dir, cgroup);
                return Err(e.to_string());
            }
            Err(e) => {
                notes.not_enforced.push(format!("the call's sandbox: {e}"));
                Restrictions::none()
            }
        };
        Ok(Slot {
            dir,
            cgroup,
            restrictions,
        })
    }

    fn discard(&self, dir: Option<CallDir>, cgroup: Option<CallCgroup>) {
        if let (Some(root), Some(dir)) = (&self.tmp, dir) {
            if let Err(e) = root.remove(dir) {
                tracing::error!("{e}");
            }
        }
        if let (Some(c), Some(cg)) = (&self.cgroups, cgroup) {
            c.give_back(cg);
        }
    }

    /// After a call, in the background (once its answer is on its way): removes its
    /// directory, gives its group back, and prepares the next calls' slots. Making and
    /// removing a directory and making a ruleset are most of what a sandbox adds to a call,
    /// and this takes them off the path of the request. Only complete slots are kept; a
    /// slot that cannot be made fully is left for the call that needs it, which reports why.
    fn tidy_later(self: &Arc<Self>, dir: Option<CallDir>, cgroup: Option<CallCgroup>) {
        let me = Arc::clone(self);
        tokio::spawn(async move {
            me.discard(dir, cgroup);
            if let Some(c) = &me.cgroups {
                c.retry_draining();
            }
            if me.tmp.is_none() && me.cgroups.is_none() {
                return;
            }
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
                        me.discard(slot.dir, slot.cgroup);
                    }
                    Ok(slot) => me.discard(slot.dir, slot.cgroup),
                    Err(_) => {}
                }
                break;
            }
        });
    }

    /// Removes the prepared slots (at shutdown).
    pub fn drain_spare(&self) {
        let slots: Vec<Slot> =
            std::mem::take(&mut *self.spare.lock().unwrap_or_else(|p| p.into_inner()));
        for s in slots {
            self.discard(s.dir, s.cgroup);
        }
    }

    /// Stops every call still running (at shutdown, once the grace period is over): each is
    /// killed and answered 503, or its streamed response cut off.
    pub fn cut_off(&self) {
        let _ = self.cut.send(true);
    }

    /// Two pipes' worth of descriptors, shedding idle connections once if there are none.
    async fn pipes(&self) -> std::io::Result<Pipes> {
        match Pipes::new(self.combine_output) {
            Err(e) if e.raw_os_error() == Some(libc::EMFILE) => {
                if let Some(c) = &self.connections {
                    if c.relieve(&format!("out of file descriptors (pipe: {e})")) > 0 {
                        c.closed_within(Duration::from_millis(100)).await;
                    }
                }
                Pipes::new(self.combine_output)
            }
            r => r,
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_in(
        &self,
        dir: Option<&CallDir>,
        cgroup: Option<&CallCgroup>,
        restrictions: Restrictions,
        env: Vec<(Vec<u8>, Vec<u8>)>,
        input: Bytes,
        write_deadline: Option<Instant>,
        answer: &mut Answer,
        mut alive: oneshot::Receiver<()>,
    ) -> Outcome {
        let env = match build_env(env, dir) {
            Ok(e) => e,
            Err(e) => return Outcome::Failed(e.to_string()),
        };
        let Pipes {
            stdin: (stdin_r, stdin_w),
            out: (out_r, out_w),
            err,
        } = match self.pipes().await {
            Ok(p) => p,
            Err(e) => return Outcome::Failed(format!("cannot create pipes: {e}")),
        };
        let (err_r, err_w) = match err {
            Some((r, w)) => (Some(r), Some(w)),
            None => (None, None),
        };
        let start = Instant::now();
        let procs = cgroup.map(CallCgroup::procs).unwrap_or_default();
        let spawned = self.reaper.spawn(
            &self.command,
            &env,
            Stdio {
                stdin: stdin_r.as_fd(),
                stdout: out_w.as_fd(),
                stderr: err_w.as_ref().map_or(out_w.as_fd(), |w| w.as_fd()),
            },
            &restrictions,
            &procs,
        );
        // The watchdog serves a supervised call's listener (it cannot come from a forked
        // supervisor: the call is a clone(CLONE_VM) child). Without it the call's
        // supervised calls fail (ENOSYS): closed, and said.
        if spawned.is_ok() {
            if let Err(e) = restrictions.serve_supervisor() {
                answer
                    .notes
                    .not_enforced
                    .push(format!("moat's supervisor: {e}"));
            }
        }
        // The child's ends and the ruleset belong to the child now.
        drop((stdin_r, out_w, err_w, restrictions, procs));
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
        answer.notes.not_enforced.extend(
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
        let mut cut = self.cut.subscribe();
        let rules = self.output;
        let stopped = {
            let io = async {
                let stdin = pipe::Sender::from_owned_fd(stdin_w).map_err(IoError::Io)?;
                let out = pipe::Receiver::from_owned_fd(out_r).map_err(IoError::Io)?;
                let err = match err_r {
                    Some(r) => Some(pipe::Receiver::from_owned_fd(r).map_err(IoError::Io)?),
                    None => None,
                };
                let (_, collected, _) = tokio::try_join!(
                    write_input(stdin, input),
                    read_output(out, rules, answer),
                    log_stderr(err)
                )?;
                Ok(collected)
            };
            let waiting = async {
                let status = (&mut exit).await;
                // What the root left running dies now, wherever it went.
                match cgroup {
                    Some(cg) => {
                        self.reaper.count_leftovers(cg.kill(None));
                        self.reaper.sweep_uncounted().await;
                    }
                    None => {
                        self.reaper.sweep().await;
                    }
                }
                Ok::<_, IoError>(status)
            };
            let work = async { tokio::try_join!(io, waiting) };
            tokio::select! {
                r = work => Ok(r),
                () = sleep_until(deadline) => Err(Stop::Deadline),
                _ = cut.wait_for(|c| *c) => Err(Stop::ShutDown),
                _ = &mut alive => Err(Stop::ClientGone),
                () = cpu_watch(cgroup, self.limits.cpu) => Err(Stop::Cpu),
            }
        };
        let killed = match stopped {
            Ok(Ok((collected, Ok(status)))) => {
                let hit = self.limit_hit(dir, cgroup, start.elapsed());
                return match collected {
                    Collected::Whole(output) => match hit {
                        Some(hit) => Outcome::Limit {
                            hit,
                            status: Some(status),
                            output,
                        },
                        None => Outcome::Exited { status, output },
                    },
                    Collected::Streamed(tx, bytes) => {
                        if status == 0 && hit.is_none() {
                            // Never full: the reader waited for its last chunk to go.
                            let _ = tx.try_send(Chunk::End);
                            tracing::debug!("streamed {bytes} bytes");
                        }
                        match hit {
                            Some(hit) => Outcome::Limit {
                                hit,
                                status: Some(status),
                                output: Bytes::new(),
                            },
                            None => Outcome::Exited {
                                status,
                                output: Bytes::new(),
                            },
                        }
                    }
                };
            }
            Ok(Ok((_, Err(_)))) => {
                Outcome::Failed("the function's process was lost (reaped elsewhere)".into())
            }
            Ok(Err(IoError::TooLarge)) => Outcome::OutputTooLarge {
                limit: rules.max.unwrap_or(0),
            },
            Ok(Err(IoError::BufferFull)) => Outcome::BufferFull {
                limit: rules.buffer,
            },
            Ok(Err(IoError::ClientGone)) | Err(Stop::ClientGone) => Outcome::ClientGone,
            Ok(Err(IoError::Io(e))) => {
                Outcome::Failed(format!("cannot exchange data with the function: {e}"))
            }
            Err(Stop::Deadline) if deadline == exec_deadline => Outcome::TimedOut,
            Err(Stop::Deadline) => Outcome::Abandoned,
            Err(Stop::ShutDown) => Outcome::ShutDown,
            Err(Stop::Cpu) => Outcome::Limit {
                hit: LimitHit::Cpu(self.limits.cpu.unwrap_or_default()),
                status: None,
                output: Bytes::new(),
            },
        };
        self.finish_killed(pid, &mut exit, cgroup).await;
        killed
    }

    /// Which limit a call that ended by itself reached, if any.
    fn limit_hit(
        &self,
        dir: Option<&CallDir>,
        cgroup: Option<&CallCgroup>,
        took: Duration,
    ) -> Option<LimitHit> {
        if let (Some(max), Some(cg)) = (self.limits.processes, cgroup) {
            if cg.refused() > 0 {
                return Some(LimitHit::Processes(max));
            }
        }
        if let (Some(bytes), Some(dir)) = (self.limits.tmp_bytes, dir) {
            if dir.is_full() {
                return Some(LimitHit::TmpBytes(bytes));
            }
        }
        // A call shorter than its limit spread over every CPU cannot have reached it: most
        // calls are, and skip reading the group.
        if let (Some(cpu), Some(cg)) = (self.limits.cpu, cgroup) {
            if took * online_cpus() >= cpu && cg.cpu_used().is_some_and(|used| used >= cpu) {
                return Some(LimitHit::Cpu(cpu));
            }
        }
        None
    }

    /// Kills a call's tree and waits until it is gone.
    async fn finish_killed(
        &self,
        pid: libc::pid_t,
        exit: &mut oneshot::Receiver<WaitStatus>,
        cgroup: Option<&CallCgroup>,
    ) {
        if let Some(cg) = cgroup {
            self.reaper.count_leftovers(cg.kill(Some(pid)));
        }
        self.reaper.kill_root(pid);
        if tokio::time::timeout(KILL_GRACE, exit).await.is_err() {
            tracing::error!(
                "process {pid} did not die within {KILL_GRACE:?} of SIGKILL; its private directory is removed anyway"
            );
        }
        if cgroup.is_some() {
            self.reaper.sweep_uncounted().await;
        } else {
            self.reaper.sweep().await;
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Completes when the call has used `limit` of CPU time. The group is read again when the
/// limit could at the earliest be reached if every CPU ran the call meanwhile, so a call far
/// from its limit costs a handful of reads.
async fn cpu_watch(cgroup: Option<&CallCgroup>, limit: Option<Duration>) {
    let (Some(cg), Some(limit)) = (cgroup, limit) else {
        return std::future::pending().await;
    };
    let cpus = online_cpus();
    // Nothing used yet: the first read can wait until the limit could be reached.
    let mut used = Duration::ZERO;
    loop {
        let wait = ((limit - used) / cpus).max(Duration::from_millis(10));
        tokio::time::sleep(wait).await;
        match cg.cpu_used() {
            Some(u) if u >= limit => return,
            Some(u) => used = u,
            None => return std::future::pending().await,
        }
    }
}

/// The CPUs a call could use at once: the most CPU time it can use per second of wall time.
fn online_cpus() -> u32 {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.clamp(1, 4096) as u32
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
                | Step::CloseFds
                | Step::Cgroup,
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

/// The pipes of one call: stdin, stdout, and stderr when not combined (read end, write end).
struct Pipes {
    stdin: (OwnedFd, OwnedFd),
    out: (OwnedFd, OwnedFd),
    err: Option<(OwnedFd, OwnedFd)>,
}

impl Pipes {
    fn new(combine_output: bool) -> std::io::Result<Pipes> {
        Ok(Pipes {
            stdin: pipe_pair()?,
            out: pipe_pair()?,
            err: if combine_output {
                None
            } else {
                Some(pipe_pair()?)
            },
        })
    }
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

/// Reads the output until every writer has closed the pipe: held while it fits the buffer,
/// then streamed (see the module documentation), at most `rules.max` bytes in all.
async fn read_output(
    mut r: pipe::Receiver,
    rules: OutputRules,
    answer: &mut Answer,
) -> Result<Collected, IoError> {
    let mut held = BytesMut::new();
    let mut total: u64 = 0;
    let over = |total: u64| rules.max.is_some_and(|m| total > m);
    // Held until it passes the buffer.
    let tx = loop {
        held.reserve(CHUNK);
        let n = r.read_buf(&mut held).await.map_err(IoError::Io)?;
        if n == 0 {
            return Ok(Collected::Whole(held.freeze()));
        }
        total += n as u64;
        if over(total) {
            return Err(IoError::TooLarge);
        }
        if held.len() > rules.buffer {
            if !rules.stream {
                return Err(IoError::BufferFull);
            }
            break answer
                .stream(held.split().freeze())
                .ok_or(IoError::ClientGone)?;
        }
    };
    drop(held);
    // Streamed: each chunk waits until the previous one is taken, so a slow client holds
    // the function back instead of filling memory.
    loop {
        let mut chunk = BytesMut::with_capacity(CHUNK);
        let n = r.read_buf(&mut chunk).await.map_err(IoError::Io)?;
        if n == 0 {
            return Ok(Collected::Streamed(tx, total));
        }
        total += n as u64;
        if over(total) {
            return Err(IoError::TooLarge);
        }
        // Both places at once, that is the previous chunk taken: one goes to this chunk
        // and the other is left for `Chunk::End`, so that ending never waits (with one
        // place asked for, two chunks could sit in the channel when the function ends, the
        // end would not fit, and the client would see the output cut off).
        let mut permits = tx.reserve_many(2).await.map_err(|_| IoError::ClientGone)?;
        if let Some(permit) = permits.next() {
            permit.send(Chunk::Data(chunk.freeze()));
        }
    }
}

/// Logs the function's stderr (when it is not combined with the output) line by line as it
/// comes, so that it takes no more memory than a line, whatever its length.
async fn log_stderr(r: Option<pipe::Receiver>) -> Result<(), IoError> {
    let Some(mut r) = r else {
        return Ok(());
    };
    let mut pending = BytesMut::new();
    loop {
        pending.reserve(4096);
        let n = r.read_buf(&mut pending).await.map_err(IoError::Io)?;
        while let Some(i) = pending.iter().position(|&b| b == b'\n') {
            let line = pending.split_to(i + 1);
            tracing::info!("stderr: {}", String::from_utf8_lossy(&line[..i]));
        }
        if pending.len() >= STDERR_LINE || (n == 0 && !pending.is_empty()) {
            let part = pending.split();
            tracing::info!("stderr: {}", String::from_utf8_lossy(&part));
        }
        if n == 0 {
            return Ok(());
        }
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
