//! The one place a process restricts itself, in one order.
//!
//! Every enforcement point ends here: `moat run` (and the container launcher, which is
//! `moat run` inside the container) applies a plan to itself and execs; `moat run --explain`
//! applies it in the child it traces; the watchdog applies it in each call's
//! `clone(CLONE_VM)` child ([`crate::spawn`]). The work is split in two:
//!
//! * [`Restrictions::from_plan`], in the process that planned, before anything is
//!   restricted: the Landlock ruleset is created and its rules added, the seccomp program
//!   is taken from its compile-time `static`, the capability sets are computed. Everything
//!   that allocates or can fail in interesting ways happens here.
//! * [`Restrictions::apply`] (or, in a `clone(CLONE_VM)` child, `apply_steps`): raw,
//!   async-signal-safe system calls on memory prepared before, in this order, each for a
//!   reason:
//!   1. `no_new_privs`: Landlock and seccomp need it from a process without
//!      `CAP_SYS_ADMIN`, which the next step takes away; and setuid programs stop
//!      elevating.
//!   2. capabilities ([`crate::caps`]): emptying the bounding set needs `CAP_SETPCAP`, so it
//!      comes before anything could lose it, and nothing after needs a capability.
//!   3. the supervisor, when the seal sends calls to one (`crate::supervise`): forked
//!      here (`moat run`), after the capabilities are gone, so that it holds no more than
//!      the program, and before Landlock and seccomp, so that it is under neither.
//!   4. the Landlock rule on the process's own `/proc/<pid>` (spawn only: the pid exists
//!      only now), then `landlock_restrict_self`.
//!   5. the seccomp filter: last of the restrictions, so that the calls above are not
//!      subject to it, and because seccomp filters cannot be removed either. Under a
//!      supervised seal it is installed with a listener, which goes to the supervisor at
//!      once and is closed here: the program never holds it.
//!   6. closing every descriptor above 2, where the front end needs it (spawn: the child
//!      shares the parent's descriptor table until now). `moat run` closes inherited
//!      descriptors first thing instead ([`crate::fds`]), before it opens anything of its
//!      own, and opens everything close-on-exec.
//!
//! A step that restricts fails the whole application under [`Enforcement::Required`];
//! under [`Enforcement::BestEffort`] it is skipped and reported.

use crate::caps::CapsPlan;
use crate::landlock::{self, ExtraRule, LandlockError};
use crate::notify::SECCOMP_FILTER_FLAG_NEW_LISTENER;
use crate::plan::Plan;
use crate::seccomp::{Insn, Seal, SeccompError};
use crate::supervise::launch::Channel;
use crate::supervise::Rules;
use moat_policy::FsAccess;
use std::fmt;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};
use std::sync::Arc;

/// What to do when a restriction cannot be applied.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Enforcement {
    /// Fail, and the program never runs (moat's default: fail closed).
    Required,
    /// Go on without it; the outcome says what is missing.
    BestEffort,
}

/// One step between planning and exec, for error messages. The numbering is also the
/// order; the steps of [`crate::spawn`]'s child before the restrictions come first.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Step {
    /// Joining a control group: a write to its `cgroup.procs` or `tasks` (spawn).
    Cgroup = 1,
    /// `setsid`: the child leads a new session and process group (spawn).
    Session,
    /// `prctl(PR_SET_CHILD_SUBREAPER)` (spawn).
    Subreaper,
    /// `dup2` of the standard streams (spawn).
    Stdio,
    /// `chdir` into the working directory (spawn).
    Chdir,
    /// `prctl(PR_SET_NO_NEW_PRIVS)`.
    NoNewPrivs,
    /// Dropping capabilities.
    Capabilities,
    /// Starting the supervisor and handing it the filter's listener.
    Supervisor,
    /// The Landlock rule on the process's own `/proc/<pid>` (a grant, never fatal).
    ProcSelf,
    /// `landlock_restrict_self`.
    Landlock,
    /// Installing the seccomp filter.
    Seccomp,
    /// `close_range`: closing every descriptor above 2.
    CloseFds,
    /// `execve`.
    Exec,
}

/// Every step, in order.
pub(crate) const STEPS: [Step; 13] = [
    Step::Cgroup,
    Step::Session,
    Step::Subreaper,
    Step::Stdio,
    Step::Chdir,
    Step::NoNewPrivs,
    Step::Capabilities,
    Step::Supervisor,
    Step::ProcSelf,
    Step::Landlock,
    Step::Seccomp,
    Step::CloseFds,
    Step::Exec,
];

impl Step {
    /// What the step does, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            Step::Cgroup => "joining a control group (cgroup.procs)",
            Step::Session => "setsid",
            Step::Subreaper => "prctl(PR_SET_CHILD_SUBREAPER)",
            Step::Stdio => "dup2 of the standard streams",
            Step::Chdir => "chdir into the working directory",
            Step::NoNewPrivs => "prctl(PR_SET_NO_NEW_PRIVS)",
            Step::Capabilities => "dropping capabilities",
            Step::Supervisor => "starting moat's supervisor (seccomp user notification)",
            Step::ProcSelf => "the Landlock rule on the process's own /proc/<pid>",
            Step::Landlock => "landlock_restrict_self",
            Step::Seccomp => "installing the seccomp filter",
            Step::CloseFds => "close_range of inherited descriptors",
            Step::Exec => "execve",
        }
    }

    fn from_number(n: u32) -> Option<Step> {
        STEPS.iter().copied().find(|s| *s as u32 == n)
    }

    /// Whether the step restricts the process (and so may be skipped in best-effort mode).
    pub fn restricts(self) -> bool {
        matches!(
            self,
            Step::Cgroup
                | Step::NoNewPrivs
                | Step::Capabilities
                | Step::Supervisor
                | Step::Landlock
                | Step::Seccomp
        )
    }

    /// The error of this step failing with `errno`, explained where the bare errno would
    /// mislead.
    pub fn error(self, errno: i32) -> std::io::Error {
        if self == Step::Supervisor && errno == libc::EBUSY {
            return std::io::Error::other(
                "this process is already under a seccomp filter with a supervisor (a \
                 supervised sandbox inside another, or moat --explain's tracer), and the \
                 kernel allows one per process: run this sandbox outside the other, or \
                 with a policy that needs no supervisor",
            );
        }
        std::io::Error::from_raw_os_error(errno)
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// A restriction that was skipped (best-effort mode), or a grant that could not be added.
#[derive(Debug)]
pub struct NotEnforced {
    /// The step.
    pub step: Step,
    /// The kernel's answer.
    pub error: std::io::Error,
}

impl fmt::Display for NotEnforced {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.step, self.error)
    }
}

/// Why restrictions could not be prepared or applied.
#[derive(Debug, thiserror::Error)]
pub enum EnforceError {
    /// The Landlock ruleset could not be created.
    #[error(transparent)]
    Landlock(#[from] LandlockError),
    /// The seccomp program is not available.
    #[error(transparent)]
    Seccomp(#[from] SeccompError),
    /// A step failed.
    #[error("{step}: {source}")]
    Step {
        /// The step.
        step: Step,
        /// The kernel's answer.
        source: std::io::Error,
    },
}

/// What a process applying restrictions records, through memory the parent can read even
/// when the process is a `clone(CLONE_VM)` child that then execs or exits.
pub(crate) struct StepReport {
    /// The step that failed (its number), 0 if none.
    failed: AtomicU32,
    /// Its errno.
    errno: AtomicI32,
    /// The errno of each step that failed without stopping, by step number.
    skipped: [AtomicI32; STEPS.len() + 1],
}

impl StepReport {
    pub(crate) fn new() -> StepReport {
        StepReport {
            failed: AtomicU32::new(0),
            errno: AtomicI32::new(0),
            skipped: std::array::from_fn(|_| AtomicI32::new(0)),
        }
    }

    /// Records that `step` failed with `errno` and the process must stop.
    pub(crate) fn fail(&self, step: Step, errno: i32) {
        self.errno.store(errno, Ordering::SeqCst);
        self.failed.store(step as u32, Ordering::SeqCst);
    }

    /// Records that `step` failed with `errno` and the process went on.
    pub(crate) fn skip(&self, step: Step, errno: i32) {
        self.skipped[step as usize].store(errno, Ordering::SeqCst);
    }

    pub(crate) fn failure(&self) -> Option<(Step, i32)> {
        let step = Step::from_number(self.failed.load(Ordering::SeqCst))?;
        Some((step, self.errno.load(Ordering::SeqCst)))
    }

    pub(crate) fn skipped(&self) -> Vec<NotEnforced> {
        STEPS
            .iter()
            .filter_map(|&step| {
                let errno = self.skipped[step as usize].load(Ordering::SeqCst);
                (errno != 0).then(|| NotEnforced {
                    step,
                    error: step.error(errno),
                })
            })
            .collect()
    }
}

/// Who serves a supervised sandbox's listener.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SupervisorHost {
    /// A supervisor process forked by the process applying the restrictions (`moat run`).
    Fork,
    /// The caller, which takes the listener with [`Restrictions::serve_supervisor`] after
    /// the sandboxed process has started (the watchdog, for its `clone(CLONE_VM)` children,
    /// which cannot fork).
    Caller,
    /// A tracer's filter, installed after the restrictions with a listener of its own: the
    /// supervised filter goes in without one, and the kernel sends the supervised calls to
    /// the newest filter's listener, the tracer's ([`crate::diagnose::trace::Session::supervise`]).
    Tracer,
}

/// The supervisor part of the restrictions.
#[derive(Debug)]
struct Supervision {
    rules: Arc<Rules>,
    channel: Channel,
    host: SupervisorHost,
    /// The filter without the supervised rows: what best-effort mode installs when the
    /// supervisor cannot start.
    unsupervised: &'static [Insn],
    /// A private temporary directory the supervisor removes when the sandbox has ended.
    cleanup: Option<crate::tmpdir::TmpRoot>,
}

/// The restrictions a process applies to itself before exec, prepared in advance.
#[derive(Debug)]
pub struct Restrictions {
    no_new_privs: bool,
    caps: Option<CapsPlan>,
    ruleset: Option<OwnedFd>,
    restrict_flags: u32,
    proc_self: FsAccess,
    filter: Option<&'static [Insn]>,
    supervision: Option<Supervision>,
    enforcement: Enforcement,
}

impl Restrictions {
    /// No restriction: the process runs as its parent would (the watchdog's
    /// `sandbox=off`), on the same path, so that the cost of the restrictions can be
    /// compared.
    pub fn none() -> Restrictions {
        Restrictions {
            no_new_privs: false,
            caps: None,
            ruleset: None,
            restrict_flags: 0,
            proc_self: FsAccess::EMPTY,
            filter: None,
            supervision: None,
            enforcement: Enforcement::Required,
        }
    }

    /// The restrictions of `plan`, with `extra` path rules added to its Landlock ruleset
    /// (rights outside what the plan handles are dropped, as the plan does for its own
    /// rules). Creates the ruleset now, in the calling process.
    pub fn from_plan(
        plan: &Plan,
        extra: &[ExtraRule<'_>],
        enforcement: Enforcement,
    ) -> Result<Restrictions, EnforceError> {
        let (ruleset, restrict_flags) = match &plan.landlock {
            Some(l) => (
                Some(landlock::create_ruleset(l, extra)?),
                landlock::restrict_flags(l.audit),
            ),
            None => (None, 0),
        };
        let supervision = match &plan.supervision {
            Some(rules) if plan.seal.supervised() => Some(Supervision {
                rules: Arc::clone(rules),
                channel: Channel::new().map_err(|source| EnforceError::Step {
                    step: Step::Supervisor,
                    source,
                })?,
                host: SupervisorHost::Fork,
                unsupervised: Seal {
                    supervise_listen: false,
                    supervise_connect: false,
                    ..plan.seal
                }
                .program()?,
                cleanup: None,
            }),
            _ => None,
        };
        Ok(Restrictions {
            no_new_privs: true,
            caps: plan.caps,
            ruleset,
            restrict_flags,
            proc_self: FsAccess::EMPTY,
            filter: Some(plan.seal.program()?),
            supervision,
            enforcement,
        })
    }

    /// Has the sandbox's supervisor remove `root` (a private temporary directory) once the
    /// last process under the sandbox's filter has ended; a sandbox that needs no
    /// supervised call gets a supervisor for that alone (its listener only ever reports
    /// that the sandbox is gone). Only a forked supervisor removes it: other hosts end
    /// with the program and remove it themselves.
    pub fn remove_when_done(
        mut self,
        root: crate::tmpdir::TmpRoot,
    ) -> Result<Restrictions, EnforceError> {
        if self.supervision.is_none() {
            let filter = self.filter.ok_or(EnforceError::Step {
                step: Step::Supervisor,
                source: std::io::Error::from_raw_os_error(libc::EINVAL),
            })?;
            self.supervision = Some(Supervision {
                rules: Arc::new(Rules::default()),
                channel: Channel::new().map_err(|source| EnforceError::Step {
                    step: Step::Supervisor,
                    source,
                })?,
                host: SupervisorHost::Fork,
                unsupervised: filter,
                cleanup: None,
            });
        }
        if let Some(s) = self.supervision.as_mut() {
            s.cleanup = Some(root);
        }
        Ok(self)
    }

    /// Makes the caller the supervisor ([`SupervisorHost::Caller`]).
    pub fn served_by_caller(self) -> Restrictions {
        self.served_by(SupervisorHost::Caller)
    }

    /// Sets who serves the listener.
    pub fn served_by(mut self, host: SupervisorHost) -> Restrictions {
        if let Some(s) = self.supervision.as_mut() {
            s.host = host;
        }
        self
    }

    /// The rules the supervisor decides by, when there is one.
    pub fn supervisor_rules(&self) -> Option<&Arc<Rules>> {
        self.supervision.as_ref().map(|s| &s.rules)
    }

    /// Drops the calling thread's capabilities as the plan drops the program's, for a
    /// process that serves the program's supervised calls itself (a tracer).
    pub fn drop_capabilities_here(&self) -> std::io::Result<()> {
        match &self.caps {
            // SAFETY: changes the calling thread's credentials, which is the point.
            Some(c) => unsafe { c.apply() }.map_err(std::io::Error::from_raw_os_error),
            None => Ok(()),
        }
    }

    /// Who serves the listener, when the restrictions need a supervisor.
    pub fn supervisor_host(&self) -> Option<SupervisorHost> {
        self.supervision.as_ref().map(|s| s.host)
    }

    /// For a [`SupervisorHost::Caller`], once the sandboxed process has started: takes the
    /// listener it sent and serves it from a new thread with the program's capabilities
    /// (`crate::supervise::launch::serve_from_thread`). `Ok(false)` when there is
    /// nothing to serve (no supervision, or a best-effort start without it).
    pub fn serve_supervisor(&self) -> std::io::Result<bool> {
        let Some(s) = self.supervision.as_ref() else {
            return Ok(false);
        };
        let Some(listener) = s.channel.receive_listener()? else {
            return Ok(false);
        };
        crate::supervise::launch::serve_from_thread(listener, Arc::clone(&s.rules), self.caps)?;
        Ok(true)
    }

    /// Lets the process read its own `/proc/<pid>` (what `/proc/self` is for the program it
    /// execs), which cannot be named before the process exists. The rule is added just
    /// before the ruleset is enforced; without a ruleset this does nothing. Processes the
    /// program starts later get no such rule.
    pub fn with_own_proc(mut self, access: FsAccess) -> Restrictions {
        self.proc_self = access;
        self
    }

    /// Without the seccomp filter, for a caller whose process already has it installed
    /// and passes it on (the watchdog installs it on itself once). A supervised filter
    /// stays: its listener is per process.
    pub fn without_filter(mut self) -> Restrictions {
        if self.supervision.is_none() {
            self.filter = None;
        }
        self
    }

    /// The same restrictions with another ruleset descriptor: tests use a descriptor that
    /// is not a ruleset to stand in for a kernel that refuses.
    #[cfg(test)]
    pub(crate) fn with_ruleset(mut self, fd: OwnedFd) -> Restrictions {
        self.ruleset = Some(fd);
        self
    }

    /// Whether a restriction that fails is skipped rather than fatal.
    pub(crate) fn best_effort(&self) -> bool {
        self.enforcement == Enforcement::BestEffort
    }

    /// Whether a Landlock ruleset will be enforced.
    pub fn has_landlock(&self) -> bool {
        self.ruleset.is_some()
    }

    /// Whether a seccomp filter will be installed.
    pub fn has_filter(&self) -> bool {
        self.filter.is_some()
    }

    /// Applies the restrictions to the calling thread. The caller must be single-threaded
    /// (`moat run` before exec, a forked child): the restrictions bind the calling thread
    /// and what it starts afterwards, not its siblings. Returns what was skipped in
    /// best-effort mode.
    pub fn apply(&self) -> Result<Vec<NotEnforced>, EnforceError> {
        let report = StepReport::new();
        // SAFETY: the steps only make system calls on `self` and the stack; the caller is
        // single-threaded, as documented.
        let ok = unsafe { self.apply_steps(&report, false) };
        match (ok, report.failure()) {
            (true, _) => Ok(report.skipped()),
            (false, Some((step, errno))) => Err(EnforceError::Step {
                step,
                source: step.error(errno),
            }),
            (false, None) => Err(EnforceError::Step {
                step: Step::Landlock,
                source: std::io::Error::other("a step failed without saying which"),
            }),
        }
    }

    /// The steps, with raw system calls: no allocation, no lock, no panic; `close_fds`
    /// closes every descriptor above 2 last. Returns false after recording the failed step
    /// in `report`.
    ///
    /// # Safety
    /// Changes the calling thread for good. May run in a `clone(CLONE_VM)` child on the
    /// parent's memory: `self` and `report` must stay valid until the child has exec'd.
    pub(crate) unsafe fn apply_steps(&self, report: &StepReport, close_fds: bool) -> bool {
        let errno = || *libc::__errno_location();
        // A restriction that fails stops the process unless the caller accepts less.
        let failed = |step: Step, e: i32| -> bool {
            if self.enforcement == Enforcement::BestEffort && step.restricts() {
                report.skip(step, e);
                false
            } else {
                report.fail(step, e);
                true
            }
        };
        if self.no_new_privs
            && libc::syscall(
                libc::SYS_prctl,
                libc::PR_SET_NO_NEW_PRIVS,
                1u64,
                0u64,
                0u64,
                0u64,
            ) < 0
            && failed(Step::NoNewPrivs, errno())
        {
            return false;
        }
        if let Some(caps) = &self.caps {
            if let Err(e) = caps.apply() {
                if failed(Step::Capabilities, e) {
                    return false;
                }
            }
        }
        // Whether a supervisor will take the listener.
        let supervised = match &self.supervision {
            Some(s) if s.host == SupervisorHost::Fork => {
                match crate::supervise::launch::fork(&s.channel, &s.rules, s.cleanup.as_ref()) {
                    Ok(_) => true,
                    Err(e) => {
                        if failed(Step::Supervisor, e) {
                            return false;
                        }
                        false
                    }
                }
            }
            Some(s) => s.host == SupervisorHost::Caller,
            None => false,
        };
        if let Some(ruleset) = &self.ruleset {
            let ruleset = ruleset.as_raw_fd();
            if !self.proc_self.is_empty() {
                self.add_own_proc(ruleset, report);
            }
            if landlock::restrict_self(ruleset, self.restrict_flags) < 0
                && failed(Step::Landlock, errno())
            {
                return false;
            }
        }
        if let Some(program) = self.filter {
            if !self.install_filter(program, supervised, report, &failed) {
                return false;
            }
        }
        if close_fds && !close_from_3() {
            report.fail(Step::CloseFds, errno());
            return false;
        }
        true
    }

    /// Installs the filter; under a supervised seal, with a listener that goes to the
    /// supervisor and is closed here. False when the process must stop.
    unsafe fn install_filter(
        &self,
        program: &'static [Insn],
        supervised: bool,
        report: &StepReport,
        failed: &dyn Fn(Step, i32) -> bool,
    ) -> bool {
        let errno = || *libc::__errno_location();
        let plain = |program| {
            !(crate::seccomp::install_program(program, 0) < 0 && failed(Step::Seccomp, errno()))
        };
        let Some(s) = &self.supervision else {
            return plain(program);
        };
        if s.host == SupervisorHost::Tracer {
            return plain(program);
        }
        if supervised {
            let listener =
                crate::seccomp::install_program(program, SECCOMP_FILTER_FLAG_NEW_LISTENER);
            if listener >= 0 {
                let sent = s.channel.send_listener(listener as RawFd);
                let e = errno();
                libc::syscall(libc::SYS_close, listener);
                if !sent {
                    // The filter is in place and its supervised calls would fail with
                    // ENOSYS: closed, but not what was asked, in either mode.
                    report.fail(Step::Supervisor, e);
                    return false;
                }
                return true;
            }
            if failed(Step::Supervisor, errno()) {
                return false;
            }
        }
        // Best effort without a supervisor: the filter without the supervised rows.
        plain(s.unsupervised)
    }

    /// Adds the rule on `/proc/self` to the ruleset; a grant the program may do without,
    /// so a failure is recorded, never fatal.
    unsafe fn add_own_proc(&self, ruleset: RawFd, report: &StepReport) {
        let fd = libc::syscall(
            libc::SYS_openat,
            libc::AT_FDCWD,
            c"/proc/self".as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        ) as RawFd;
        let ok = fd >= 0 && landlock::add_path_rule(ruleset, fd, self.proc_self.bits()) == 0;
        if !ok {
            report.skip(Step::ProcSelf, *libc::__errno_location());
        }
        if fd >= 0 {
            libc::syscall(libc::SYS_close, fd);
        }
    }
}

/// Closes every descriptor above 2 with raw system calls; false on failure.
unsafe fn close_from_3() -> bool {
    if libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) == 0 {
        return true;
    }
    if *libc::__errno_location() != libc::ENOSYS {
        return false;
    }
    // Kernels before 5.9 lack close_range: close every descriptor below the limit.
    let mut lim = libc::rlimit64 {
        rlim_cur: 0,
        rlim_max: 0,
    };
    let max = if libc::syscall(
        libc::SYS_prlimit64,
        0,
        libc::RLIMIT_NOFILE,
        std::ptr::null::<libc::rlimit64>(),
        &mut lim as *mut libc::rlimit64,
    ) == 0
    {
        lim.rlim_cur.min(1 << 20) as libc::c_int
    } else {
        1024
    };
    for fd in 3..max {
        libc::syscall(libc::SYS_close, fd);
    }
    true
}
