//! Starting a sandboxed program in a new process without `fork`.
//!
//! `moat run` restricts itself and then execs, so it never needs a child. A server that
//! starts one sandboxed process per request (the function watchdog) does: it must create a
//! child, restrict the child and exec the program in it, while the server itself stays
//! unrestricted. The obvious ways to do that fork: `std::process::Command` with a
//! `pre_exec` closure falls back from `posix_spawn` to `fork`, and `fork` copies the
//! parent's page tables, so its cost grows with the server's memory (see
//! docs/PERFORMANCE.md). This module starts the child with `clone(CLONE_VM | CLONE_VFORK)`
//! instead, as glibc's `posix_spawn` does: the child borrows the parent's memory until it
//! execs, and the calling thread waits until then, so no page table is copied whatever the
//! parent's size.
//!
//! Work is split so that the child does as little as possible:
//!
//! * In the parent, before the clone: the Landlock ruleset of a [`Plan`] is created and
//!   its rules added ([`Restrictions::from_plan`]), the seccomp socket filter is taken from
//!   its compile-time `static` ([`crate::seccomp::SocketFilter::program`]), and argv and
//!   envp are built as NUL-terminated arrays. Everything that allocates or can fail in
//!   interesting ways happens here.
//! * In the child, between clone and exec, only raw, async-signal-safe system calls on
//!   memory prepared by the parent, in this order: reset signal dispositions, joining
//!   the caller's control groups ([`Command::spawn_into`]), `setsid`,
//!   `PR_SET_CHILD_SUBREAPER`, `dup2` of the standard streams, `chdir`,
//!   `PR_SET_NO_NEW_PRIVS`, an optional Landlock rule for the child's own `/proc/<pid>`,
//!   `landlock_restrict_self`, `seccomp(SECCOMP_SET_MODE_FILTER)`, `close_range(3, ~0)`,
//!   unblock signals, `execve`. No allocation, no lock, no Rust standard library call: the
//!   child shares the parent's heap and locks, and another thread of the parent may hold
//!   them.
//!
//! # Why the ruleset is created with raw system calls
//!
//! `moat run` builds its ruleset with the `landlock` crate ([`crate::landlock::apply`]),
//! whose `RulesetCreated` would also hand over its descriptor. Here a ruleset is created
//! for every spawn, and the crate's compatibility machinery, which the plan has already
//! done once, costs two thirds of it: it asks the kernel for its ABI and errata and
//! `fstat`s every rule's descriptor to tell files from directories. For the watchdog's
//! 14-rule policy on the development machine, 28-30 us with the crate against 9.6 us with
//! the plain system calls (medians of 2000, `load setup` in crates/moat-watchdog). The
//! plan is already limited to the effective ABI and its rights already fit each object
//! ([`crate::plan::OpenedRule`]), so the three system calls are all that is left:
//! `landlock_create_ruleset`, `landlock_add_rule` per rule, and, in the child,
//! `landlock_restrict_self`.
//!
//! The child reports a failed step through a small structure in the shared memory, which
//! the parent reads when it resumes (after the exec or the child's exit). A step that
//! restricts the child fails the spawn under [`Enforcement::Required`]; under
//! [`Enforcement::BestEffort`] the child goes on and the parent returns what was not
//! enforced in [`Child::not_enforced`].

use crate::plan::{LandlockPlan, Plan};
use crate::seccomp::{SeccompError, SocketFilter};
use moat_policy::{AuditFlags, FsAccess};
use seccompiler::sock_filter;
use std::cell::RefCell;
use std::ffi::{c_char, c_int, c_void, CString, OsStr};
use std::fmt;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};

/// What to do when the child cannot apply a restriction.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Enforcement {
    /// The spawn fails and the program never runs (moat's default: fail closed).
    Required,
    /// The child goes on without it; [`Child::not_enforced`] says what is missing.
    BestEffort,
}

/// One step of the child's work between clone and exec, for error messages.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Step {
    /// `setsid`: the child leads a new session and process group.
    Session = 1,
    /// `prctl(PR_SET_CHILD_SUBREAPER)`.
    Subreaper,
    /// `dup2` of the standard streams.
    Stdio,
    /// `chdir` into the working directory.
    Chdir,
    /// `prctl(PR_SET_NO_NEW_PRIVS)`.
    NoNewPrivs,
    /// The Landlock rule on the child's own `/proc/<pid>` (a grant, never fatal).
    ProcSelf,
    /// `landlock_restrict_self`.
    Landlock,
    /// Installing the seccomp socket filter.
    Seccomp,
    /// `close_range`: closing every descriptor above 2.
    CloseFds,
    /// `execve`.
    Exec,
    /// Joining a control group (a write to its `cgroup.procs`).
    Cgroup,
}

const STEPS: [Step; 11] = [
    Step::Session,
    Step::Subreaper,
    Step::Stdio,
    Step::Chdir,
    Step::NoNewPrivs,
    Step::ProcSelf,
    Step::Landlock,
    Step::Seccomp,
    Step::CloseFds,
    Step::Exec,
    Step::Cgroup,
];

impl Step {
    /// What the step does, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            Step::Session => "setsid",
            Step::Subreaper => "prctl(PR_SET_CHILD_SUBREAPER)",
            Step::Stdio => "dup2 of the standard streams",
            Step::Chdir => "chdir into the working directory",
            Step::NoNewPrivs => "prctl(PR_SET_NO_NEW_PRIVS)",
            Step::ProcSelf => "the Landlock rule on the process's own /proc/<pid>",
            Step::Landlock => "landlock_restrict_self",
            Step::Seccomp => "installing the seccomp socket filter",
            Step::CloseFds => "close_range of inherited descriptors",
            Step::Exec => "execve",
            Step::Cgroup => "joining a control group (cgroup.procs)",
        }
    }

    fn from_number(n: u32) -> Option<Step> {
        STEPS.iter().copied().find(|s| *s as u32 == n)
    }

    /// Whether the step restricts the child (and so may be skipped in best-effort mode).
    fn restricts(self) -> bool {
        matches!(
            self,
            Step::NoNewPrivs | Step::Landlock | Step::Seccomp | Step::Cgroup
        )
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// A restriction the child could not apply and went on without (best-effort mode), or a
/// grant it could not add.
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

/// Why a child could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// A program path, argument or environment entry holds a NUL byte.
    #[error("{what} contains a NUL byte")]
    Nul {
        /// Which string.
        what: &'static str,
    },
    /// An environment variable name that cannot be passed (empty, or holding `=`).
    #[error("environment variable name `{name}` is empty or contains `=`")]
    EnvName {
        /// The name, lossily decoded.
        name: String,
    },
    /// A standard stream source in 0..=2 other than its own number: `dup2` in order would
    /// overwrite it before it is used.
    #[error("descriptor {fd} cannot become descriptor {target}: sources must be above 2 or equal to their target")]
    StdioLayout {
        /// The source descriptor.
        fd: RawFd,
        /// The standard stream it should become.
        target: RawFd,
    },
    /// The Landlock ruleset could not be created.
    #[error("Landlock: {call}{}: {source}", path.as_ref().map(|p| format!(" (rule on `{}`)", p.display())).unwrap_or_default())]
    Ruleset {
        /// The system call that failed.
        call: &'static str,
        /// The rule's path, when adding a path rule failed.
        path: Option<PathBuf>,
        /// The kernel's answer.
        source: std::io::Error,
    },
    /// The seccomp filter is not available.
    #[error(transparent)]
    Filter(#[from] SeccompError),
    /// The child's stack could not be mapped.
    #[error("cannot map a stack for the child: {0}")]
    Stack(std::io::Error),
    /// `clone` failed.
    #[error("clone: {0}")]
    Clone(std::io::Error),
    /// The program could not be executed.
    #[error("cannot execute {program}: {source}")]
    Exec {
        /// The program.
        program: String,
        /// The error.
        source: std::io::Error,
    },
    /// A step before exec failed in the child, which then exited.
    #[error("{step}: {source}")]
    Child {
        /// The step.
        step: Step,
        /// The error.
        source: std::io::Error,
    },
}

/// The restrictions a child applies to itself before exec.
#[derive(Debug)]
pub struct Restrictions {
    ruleset: Option<OwnedFd>,
    restrict_flags: u32,
    filter: Option<&'static [sock_filter]>,
    no_new_privs: bool,
    proc_self: FsAccess,
    enforcement: Enforcement,
}

impl Restrictions {
    /// No restriction: the child runs as the parent would (the watchdog's `sandbox=off`).
    /// The spawn path is the same, so the cost of the restrictions can be compared.
    pub fn none() -> Restrictions {
        Restrictions {
            ruleset: None,
            restrict_flags: 0,
            filter: None,
            no_new_privs: false,
            proc_self: FsAccess::EMPTY,
            enforcement: Enforcement::Required,
        }
    }

    /// The restrictions of `plan`, with `extra` path rules added to its Landlock ruleset
    /// (rights outside what the plan handles are dropped, as the plan does for its own
    /// rules). Creates the ruleset now, in the calling process; the child only enforces
    /// it. `no_new_privs` is always set, as by `moat run`.
    pub fn from_plan(
        plan: &Plan,
        extra: &[ExtraRule<'_>],
        enforcement: Enforcement,
    ) -> Result<Restrictions, SpawnError> {
        let (ruleset, restrict_flags) = match &plan.landlock {
            Some(l) => (Some(create_ruleset(l, extra)?), restrict_flags(l.audit)),
            None => (None, 0),
        };
        let filter = match plan.sockets {
            Some(s) => Some(
                SocketFilter {
                    allow_udp: s.allow_udp,
                }
                .program()?,
            ),
            None => None,
        };
        Ok(Restrictions {
            ruleset,
            restrict_flags,
            filter,
            no_new_privs: true,
            proc_self: FsAccess::EMPTY,
            enforcement,
        })
    }

    /// Lets the child read its own `/proc/<pid>` (what `/proc/self` is for the program it
    /// execs), which the parent cannot name before the child exists. The child adds the
    /// rule to the ruleset just before enforcing it; without a ruleset this does nothing.
    /// Processes the program starts later get no such rule.
    pub fn with_own_proc(mut self, access: FsAccess) -> Restrictions {
        self.proc_self = access;
        self
    }

    /// Without the seccomp socket filter, for callers that apply what is left of a
    /// restriction in best-effort mode.
    pub fn without_filter(mut self) -> Restrictions {
        self.filter = None;
        self
    }

    /// Whether a Landlock ruleset will be enforced.
    pub fn has_landlock(&self) -> bool {
        self.ruleset.is_some()
    }

    /// Whether the seccomp socket filter will be installed.
    pub fn has_filter(&self) -> bool {
        self.filter.is_some()
    }
}

/// A path rule added to a planned ruleset by the caller: a directory or file that exists
/// for one child only (the watchdog's per-call private directory).
#[derive(Clone, Copy, Debug)]
pub struct ExtraRule<'a> {
    /// A descriptor on the path (any open mode; `O_PATH` is enough).
    pub fd: BorrowedFd<'a>,
    /// The rights granted beneath it. Rights the plan does not handle are dropped, and on a
    /// file only the rights that apply to files are kept, as the plan does for its own rules.
    pub access: FsAccess,
}

/// `struct landlock_ruleset_attr` (ABI 6 layout; an older kernel accepts the larger struct
/// as long as the fields it does not know are zero, which the plan guarantees).
#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
    handled_access_net: u64,
    scoped: u64,
}

/// `struct landlock_net_port_attr`.
#[repr(C)]
struct NetPortAttr {
    allowed_access: u64,
    port: u64,
}

const LANDLOCK_RULE_NET_PORT: c_int = 2;

/// Creates the ruleset of `plan` plus `extra`, unenforced, close-on-exec.
fn create_ruleset(plan: &LandlockPlan, extra: &[ExtraRule<'_>]) -> Result<OwnedFd, SpawnError> {
    let fail = |call, path: Option<&Path>| SpawnError::Ruleset {
        call,
        path: path.map(Path::to_path_buf),
        source: std::io::Error::last_os_error(),
    };
    let attr = RulesetAttr {
        handled_access_fs: plan.fs_handled.bits(),
        handled_access_net: plan.net_handled.bits(),
        scoped: plan.scopes.bits(),
    };
    // SAFETY: a valid attribute struct and its size; the kernel returns a new descriptor
    // (close-on-exec) or -1.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            &attr as *const RulesetAttr,
            std::mem::size_of::<RulesetAttr>(),
            0u32,
        )
    };
    if fd < 0 {
        return Err(fail("landlock_create_ruleset", None));
    }
    // SAFETY: a new descriptor owned by nobody else.
    let ruleset = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
    let add_path = |fd: RawFd, access: FsAccess| -> bool {
        let attr = PathBeneathAttr {
            allowed_access: access.bits(),
            parent_fd: fd,
        };
        // SAFETY: a valid ruleset descriptor and attribute struct.
        unsafe {
            libc::syscall(
                libc::SYS_landlock_add_rule,
                ruleset.as_raw_fd(),
                LANDLOCK_RULE_PATH_BENEATH,
                &attr as *const PathBeneathAttr,
                0u32,
            ) == 0
        }
    };
    for rule in &plan.path_rules {
        if !add_path(rule.fd.as_raw_fd(), rule.access) {
            return Err(fail("landlock_add_rule", Some(&rule.path)));
        }
    }
    for rule in extra {
        let mut access = rule.access.intersect(plan.fs_handled);
        if !is_directory(rule.fd) {
            // Directory rights on a file make the kernel refuse the whole rule.
            access = access.intersect(FsAccess::file_rights());
        }
        if !access.is_empty() && !add_path(rule.fd.as_raw_fd(), access) {
            return Err(fail("landlock_add_rule", None));
        }
    }
    for (port, access) in &plan.port_rules {
        let attr = NetPortAttr {
            allowed_access: access.bits(),
            port: u64::from(*port),
        };
        // SAFETY: a valid ruleset descriptor and attribute struct.
        let r = unsafe {
            libc::syscall(
                libc::SYS_landlock_add_rule,
                ruleset.as_raw_fd(),
                LANDLOCK_RULE_NET_PORT,
                &attr as *const NetPortAttr,
                0u32,
            )
        };
        if r != 0 {
            return Err(fail("landlock_add_rule", None));
        }
    }
    Ok(ruleset)
}

fn is_directory(fd: BorrowedFd<'_>) -> bool {
    // SAFETY: zeroed stat is a valid out-buffer for fstat on a valid descriptor.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe {
        libc::fstat(fd.as_raw_fd(), &mut st) == 0 && st.st_mode & libc::S_IFMT == libc::S_IFDIR
    }
}

/// The `landlock_restrict_self` flags for `audit` (ABI 7): only the flags that move a
/// setting off the kernel's default.
fn restrict_flags(audit: AuditFlags) -> u32 {
    let mut flags = 0;
    if !audit.log_same_exec {
        flags |= 1; // LANDLOCK_RESTRICT_SELF_LOG_SAME_EXEC_OFF
    }
    if audit.log_new_exec {
        flags |= 2; // LANDLOCK_RESTRICT_SELF_LOG_NEW_EXEC_ON
    }
    if !audit.log_subdomains {
        flags |= 4; // LANDLOCK_RESTRICT_SELF_LOG_SUBDOMAINS_OFF
    }
    flags
}

/// An environment for the child: `NAME=value` strings, built in the parent.
#[derive(Clone, Debug, Default)]
pub struct Env {
    entries: Vec<CString>,
}

impl Env {
    /// An empty environment.
    pub fn new() -> Env {
        Env::default()
    }

    /// An environment with room for `n` entries.
    pub fn with_capacity(n: usize) -> Env {
        Env {
            entries: Vec::with_capacity(n),
        }
    }

    /// Adds `name=value`. A later entry with the same name does not replace an earlier one:
    /// callers that may repeat a name should deduplicate first.
    pub fn push(&mut self, name: &OsStr, value: &OsStr) -> Result<(), SpawnError> {
        let n = name.as_bytes();
        if n.is_empty() || n.contains(&b'=') {
            return Err(SpawnError::EnvName {
                name: name.to_string_lossy().into_owned(),
            });
        }
        let mut entry = Vec::with_capacity(n.len() + 1 + value.len() + 1);
        entry.extend_from_slice(n);
        entry.push(b'=');
        entry.extend_from_slice(value.as_bytes());
        let entry = CString::new(entry).map_err(|_| SpawnError::Nul {
            what: "an environment entry",
        })?;
        self.entries.push(entry);
        Ok(())
    }

    /// How many entries there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there is no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The child's standard streams (descriptors of the parent, duplicated onto 0, 1 and 2).
/// Each must be above 2 or equal to its target.
#[derive(Copy, Clone, Debug)]
pub struct Stdio<'a> {
    /// Becomes descriptor 0.
    pub stdin: BorrowedFd<'a>,
    /// Becomes descriptor 1.
    pub stdout: BorrowedFd<'a>,
    /// Becomes descriptor 2.
    pub stderr: BorrowedFd<'a>,
}

/// A program and its arguments, prepared once and spawned any number of times.
#[derive(Clone, Debug)]
pub struct Command {
    program: CString,
    args: Vec<CString>,
    cwd: Option<CString>,
    new_session: bool,
    child_subreaper: bool,
}

impl Command {
    /// Runs `program` (a path: there is no PATH search in the child) with `argv0` as
    /// `argv[0]`.
    pub fn new(program: &Path, argv0: &OsStr) -> Result<Command, SpawnError> {
        Ok(Command {
            program: cstring(program.as_os_str(), "the program path")?,
            args: vec![cstring(argv0, "argv[0]")?],
            cwd: None,
            new_session: false,
            child_subreaper: false,
        })
    }

    /// Adds an argument.
    pub fn arg(&mut self, arg: &OsStr) -> Result<&mut Command, SpawnError> {
        self.args.push(cstring(arg, "an argument")?);
        Ok(self)
    }

    /// Changes into `dir` before exec (otherwise the parent's working directory is kept).
    pub fn cwd(&mut self, dir: &Path) -> Result<&mut Command, SpawnError> {
        self.cwd = Some(cstring(dir.as_os_str(), "the working directory")?);
        Ok(self)
    }

    /// Makes the child lead a new session and process group (`setsid`), so that its
    /// process group can be signalled as a whole and no terminal signal reaches it.
    pub fn new_session(&mut self, on: bool) -> &mut Command {
        self.new_session = on;
        self
    }

    /// Makes the child a child subreaper (`PR_SET_CHILD_SUBREAPER`, kept across `execve`):
    /// its descendants that lose their parent are re-parented to it instead of to the
    /// caller, so they stay attributable to it while it lives.
    pub fn child_subreaper(&mut self, on: bool) -> &mut Command {
        self.child_subreaper = on;
        self
    }

    /// The program path.
    pub fn program(&self) -> &Path {
        Path::new(OsStr::from_bytes(self.program.as_bytes()))
    }

    /// Starts the program in a new process with `env`, `stdio` and `restrictions`.
    ///
    /// Returns when the child has executed the program, or failed to. The child is not
    /// waited for: the caller reaps it (`waitpid`) like any child. On failure the child has
    /// already exited and is reaped here, unless someone else reaped it first.
    pub fn spawn(
        &self,
        env: &Env,
        stdio: Stdio<'_>,
        restrictions: &Restrictions,
    ) -> Result<Child, SpawnError> {
        self.spawn_into(env, stdio, restrictions, &[])
    }

    /// [`Command::spawn`], with the child joining control groups first thing, before any
    /// other step: `cgroups` are descriptors on their `cgroup.procs` files (or, for cgroup
    /// v1, their `tasks` files), opened for writing, and the child writes `0` (itself) into
    /// each. So everything the child and
    /// the program do, from their first instruction, counts against those groups' limits,
    /// and a group's `cgroup.kill` reaches every process the program starts. A failed join
    /// is a restriction that failed ([`Step::Cgroup`]): it fails the spawn under
    /// [`Enforcement::Required`].
    pub fn spawn_into(
        &self,
        env: &Env,
        stdio: Stdio<'_>,
        restrictions: &Restrictions,
        cgroups: &[BorrowedFd<'_>],
    ) -> Result<Child, SpawnError> {
        let cgroups: Vec<RawFd> = cgroups.iter().map(|f| f.as_raw_fd()).collect();
        let stdio = [stdio.stdin, stdio.stdout, stdio.stderr].map(|f| f.as_raw_fd());
        for (target, &fd) in stdio.iter().enumerate() {
            let target = target as RawFd;
            if fd != target && (0..=2).contains(&fd) {
                return Err(SpawnError::StdioLayout { fd, target });
            }
        }
        let argv: Vec<*const c_char> = self
            .args
            .iter()
            .map(|a| a.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect();
        let envp: Vec<*const c_char> = env
            .entries
            .iter()
            .map(|e| e.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect();
        let fprog = restrictions.filter.map(|p| libc::sock_fprog {
            len: p.len() as u16,
            // The kernel only reads the program; the pointer type is the UAPI's.
            filter: p.as_ptr() as *mut libc::sock_filter,
        });
        let report = ChildReport::new();
        let args = ChildArgs {
            program: self.program.as_ptr(),
            argv: argv.as_ptr(),
            envp: envp.as_ptr(),
            cwd: self.cwd.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
            cgroups: cgroups.as_ptr(),
            cgroups_len: cgroups.len(),
            stdio,
            new_session: self.new_session,
            subreaper: self.child_subreaper,
            no_new_privs: restrictions.no_new_privs,
            ruleset: restrictions.ruleset.as_ref().map_or(-1, |f| f.as_raw_fd()),
            restrict_flags: restrictions.restrict_flags,
            proc_self: restrictions.proc_self.bits(),
            filter: fprog
                .as_ref()
                .map_or(std::ptr::null(), |f| f as *const libc::sock_fprog),
            best_effort: restrictions.enforcement == Enforcement::BestEffort,
            report: &report,
        };

        let pid = STACK.with(|cell| -> Result<c_int, SpawnError> {
            let mut slot = cell.borrow_mut();
            if slot.is_none() {
                *slot = Some(ChildStack::new().map_err(SpawnError::Stack)?);
            }
            let top = slot.as_ref().map_or(std::ptr::null_mut(), |s| s.top());
            // Signals stay blocked from before the clone until the child has reset their
            // dispositions: a handler of the parent (tokio's, say) running in the child
            // would act on the parent's behalf, through the shared memory and a copy of
            // its descriptors.
            let blocked = block_all_signals();
            // SAFETY: `child_main` only makes raw system calls on `args`, which lives on
            // this frame until clone returns; with CLONE_VFORK this thread is suspended
            // until the child has exec'd or exited, so `args`, `argv`, `envp` and the
            // stack stay valid and unused by anyone else while the child runs on them.
            let pid = unsafe {
                libc::clone(
                    child_main,
                    top,
                    libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
                    &args as *const ChildArgs as *mut c_void,
                )
            };
            let err = std::io::Error::last_os_error();
            restore_signals(&blocked);
            if pid < 0 {
                return Err(SpawnError::Clone(err));
            }
            Ok(pid)
        })?;

        if let Some((step, errno)) = report.failure() {
            // The child has exited (CLONE_VFORK returned without an exec).
            let mut status = 0;
            // SAFETY: waitpid on our own child with a valid status pointer.
            unsafe { libc::waitpid(pid, &mut status, 0) };
            let source = std::io::Error::from_raw_os_error(errno);
            return Err(match step {
                Step::Exec => SpawnError::Exec {
                    program: self.program.to_string_lossy().into_owned(),
                    source,
                },
                step => SpawnError::Child { step, source },
            });
        }
        Ok(Child {
            pid,
            not_enforced: report.skipped(),
        })
    }
}

/// A started child.
#[derive(Debug)]
pub struct Child {
    /// Its process id (and, with [`Command::new_session`], its process group and session).
    pub pid: libc::pid_t,
    /// What it runs without (best-effort mode), and grants it could not add.
    pub not_enforced: Vec<NotEnforced>,
}

fn cstring(s: &OsStr, what: &'static str) -> Result<CString, SpawnError> {
    CString::new(s.as_bytes()).map_err(|_| SpawnError::Nul { what })
}

/// Everything the child reads, prepared by the parent. Raw pointers only: the child must
/// not run any code that could allocate or lock.
struct ChildArgs {
    program: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
    cwd: *const c_char,
    cgroups: *const RawFd,
    cgroups_len: usize,
    stdio: [RawFd; 3],
    new_session: bool,
    subreaper: bool,
    no_new_privs: bool,
    ruleset: RawFd,
    restrict_flags: u32,
    proc_self: u64,
    filter: *const libc::sock_fprog,
    best_effort: bool,
    report: *const ChildReport,
}

/// What the child tells the parent, through the memory they share until the exec.
struct ChildReport {
    /// The step that failed (its number), 0 if none.
    failed: AtomicU32,
    /// Its errno.
    errno: AtomicI32,
    /// The errno of each step that failed without stopping the child, by step number.
    skipped: [AtomicI32; STEPS.len() + 1],
}

impl ChildReport {
    fn new() -> ChildReport {
        ChildReport {
            failed: AtomicU32::new(0),
            errno: AtomicI32::new(0),
            skipped: std::array::from_fn(|_| AtomicI32::new(0)),
        }
    }

    fn failure(&self) -> Option<(Step, i32)> {
        let step = Step::from_number(self.failed.load(Ordering::SeqCst))?;
        Some((step, self.errno.load(Ordering::SeqCst)))
    }

    fn skipped(&self) -> Vec<NotEnforced> {
        STEPS
            .iter()
            .filter_map(|&step| {
                let errno = self.skipped[step as usize].load(Ordering::SeqCst);
                (errno != 0).then(|| NotEnforced {
                    step,
                    error: std::io::Error::from_raw_os_error(errno),
                })
            })
            .collect()
    }
}

/// The child's stack: 64 KiB with a guard page below it, mapped once per thread and reused.
/// Reuse is safe because the thread that spawns is suspended until the child has exec'd
/// (and so left this memory) or exited.
struct ChildStack {
    base: *mut c_void,
    len: usize,
}

const STACK_SIZE: usize = 64 * 1024;

impl ChildStack {
    fn new() -> std::io::Result<ChildStack> {
        // SAFETY: sysconf has no preconditions.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
        let len = STACK_SIZE + page;
        // SAFETY: an anonymous private mapping at an address of the kernel's choice.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let stack = ChildStack { base, len };
        // The lowest page traps an overflow instead of letting it write into other memory.
        // SAFETY: the first page of the mapping just made.
        if unsafe { libc::mprotect(base, page, libc::PROT_NONE) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(stack)
    }

    /// The highest address, 16-byte aligned (stacks grow down on every supported target).
    fn top(&self) -> *mut c_void {
        let end = self.base as usize + self.len;
        (end & !15) as *mut c_void
    }
}

impl Drop for ChildStack {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, no longer used by any child (see above).
        unsafe { libc::munmap(self.base, self.len) };
    }
}

thread_local! {
    static STACK: RefCell<Option<ChildStack>> = const { RefCell::new(None) };
}

fn block_all_signals() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigfillset initialises it; pthread_sigmask only
    // changes this thread's mask and writes the old one into `old`.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        old
    }
}

fn restore_signals(old: &libc::sigset_t) {
    // SAFETY: `old` is the mask saved by `block_all_signals`.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, old, std::ptr::null_mut()) };
}

/// `struct landlock_path_beneath_attr` (packed in the UAPI).
#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

const LANDLOCK_RULE_PATH_BENEATH: c_int = 1;

/// The child, between clone and exec. Runs on the parent's memory with the parent's thread
/// suspended: raw system calls only, no allocation, no panic, nothing that takes a lock.
extern "C" fn child_main(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `ChildArgs` of `Command::spawn`, valid until the exec (see
    // there); every pointer in it is either null or points into memory the parent keeps
    // alive for as long.
    let a = unsafe { &*(arg as *const ChildArgs) };
    // SAFETY: as above.
    let report = unsafe { &*a.report };
    let fail = |step: Step| -> c_int {
        report.errno.store(errno(), Ordering::SeqCst);
        report.failed.store(step as u32, Ordering::SeqCst);
        127
    };
    // A restriction that fails stops the child unless the caller accepts less.
    let restriction_failed = |step: Step| -> bool {
        if a.best_effort && step.restricts() {
            report.skipped[step as usize].store(errno(), Ordering::SeqCst);
            false
        } else {
            true
        }
    };

    // SAFETY (for every system call below): plain integer arguments or pointers to memory
    // prepared by the parent that outlives the child's use of it.
    unsafe {
        // Default dispositions for every signal: exec keeps ignored signals ignored (Rust
        // ignores SIGPIPE), and a handler of the parent must not run here. The raw system
        // call, because glibc's wrapper refuses its internal signals 32 and 33. An
        // all-zero kernel `struct sigaction` is SIG_DFL with no flags and an empty mask
        // whatever the architecture's layout. SIGKILL and SIGSTOP fail, harmlessly.
        let dfl = [0u64; 4];
        for sig in 1..=64 {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                dfl.as_ptr(),
                std::ptr::null_mut::<u64>(),
                std::mem::size_of::<u64>(),
            );
        }
        for i in 0..a.cgroups_len {
            let fd = *a.cgroups.add(i);
            if libc::syscall(libc::SYS_write, fd, c"0".as_ptr(), 1usize) != 1
                && restriction_failed(Step::Cgroup)
            {
                return fail(Step::Cgroup);
            }
        }
        if a.new_session && libc::syscall(libc::SYS_setsid) < 0 {
            return fail(Step::Session);
        }
        if a.subreaper && !prctl_on(libc::PR_SET_CHILD_SUBREAPER) {
            return fail(Step::Subreaper);
        }
        for (target, &fd) in a.stdio.iter().enumerate() {
            let r = if fd == target as RawFd {
                // Already in place: only drop close-on-exec.
                libc::syscall(libc::SYS_fcntl, fd, libc::F_SETFD, 0)
            } else {
                libc::syscall(libc::SYS_dup3, fd, target as c_int, 0)
            };
            if r < 0 {
                return fail(Step::Stdio);
            }
        }
        if !a.cwd.is_null() && libc::syscall(libc::SYS_chdir, a.cwd) < 0 {
            return fail(Step::Chdir);
        }
        if a.no_new_privs
            && !prctl_on(libc::PR_SET_NO_NEW_PRIVS)
            && restriction_failed(Step::NoNewPrivs)
        {
            return fail(Step::NoNewPrivs);
        }
        if a.ruleset >= 0 {
            if a.proc_self != 0 {
                let fd = libc::syscall(
                    libc::SYS_openat,
                    libc::AT_FDCWD,
                    c"/proc/self".as_ptr(),
                    libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
                ) as c_int;
                let ok = fd >= 0 && {
                    let attr = PathBeneathAttr {
                        allowed_access: a.proc_self,
                        parent_fd: fd,
                    };
                    libc::syscall(
                        libc::SYS_landlock_add_rule,
                        a.ruleset,
                        LANDLOCK_RULE_PATH_BENEATH,
                        &attr as *const PathBeneathAttr,
                        0u32,
                    ) == 0
                };
                if !ok {
                    // A grant the program may do without: reported, never fatal.
                    report.skipped[Step::ProcSelf as usize].store(errno(), Ordering::SeqCst);
                }
                if fd >= 0 {
                    libc::syscall(libc::SYS_close, fd);
                }
            }
            if libc::syscall(
                libc::SYS_landlock_restrict_self,
                a.ruleset,
                a.restrict_flags,
            ) < 0
                && restriction_failed(Step::Landlock)
            {
                return fail(Step::Landlock);
            }
        }
        if !a.filter.is_null()
            && libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                0 as libc::c_uint,
                a.filter,
            ) < 0
            && restriction_failed(Step::Seccomp)
        {
            return fail(Step::Seccomp);
        }
        // Landlock does not restrict descriptors opened before it: the program gets 0-2
        // and nothing else, whether or not the parent marked its own close-on-exec.
        if libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) < 0 {
            if errno() != libc::ENOSYS {
                return fail(Step::CloseFds);
            }
            close_each_from_3();
        }
        let none: u64 = 0;
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &none as *const u64,
            std::ptr::null_mut::<u64>(),
            std::mem::size_of::<u64>(),
        );
        libc::syscall(libc::SYS_execve, a.program, a.argv, a.envp);
    }
    fail(Step::Exec)
}

/// `prctl(option, 1, 0, 0, 0)` as a raw system call (for the child): turns a flag on.
///
/// # Safety
/// `option` must be a prctl option whose arguments are plain integers.
unsafe fn prctl_on(option: c_int) -> bool {
    let zero: libc::c_ulong = 0;
    libc::syscall(
        libc::SYS_prctl,
        option,
        1 as libc::c_ulong,
        zero,
        zero,
        zero,
    ) == 0
}

/// close_range's fallback for kernels before 5.9: close every descriptor below the limit.
///
/// # Safety
/// Only for the child of `Command::spawn` (closes descriptors without owning them).
unsafe fn close_each_from_3() {
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
        lim.rlim_cur.min(1 << 20) as c_int
    } else {
        1024
    };
    for fd in 3..max {
        libc::syscall(libc::SYS_close, fd);
    }
}

fn errno() -> i32 {
    // SAFETY: errno is thread-local; in the child it is the suspended parent thread's,
    // which nothing else reads until the child is gone.
    unsafe { *libc::__errno_location() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::detect_with_cap;
    use crate::abi::Availability;
    use moat_policy::{Compat, FsGroup, Policy, Vars};
    use std::io::Read;
    use std::os::fd::AsFd;

    fn pipe() -> (OwnedFd, OwnedFd) {
        let mut fds = [0; 2];
        // SAFETY: pipe2 writes two descriptors into `fds`.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        // SAFETY: both were just created and are owned by nobody else.
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
    }

    fn wait(pid: libc::pid_t) -> i32 {
        let mut status = 0;
        // SAFETY: waiting for our own child.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        status
    }

    /// Runs `argv` with the environment `env`, returns (exit status, stdout+stderr).
    fn run(
        program: &str,
        args: &[&str],
        env: &[(&str, &str)],
        r: &Restrictions,
    ) -> Result<(i32, String), SpawnError> {
        let mut cmd = Command::new(Path::new(program), OsStr::new(program))?;
        for a in args {
            cmd.arg(OsStr::new(a))?;
        }
        cmd.new_session(true).child_subreaper(true);
        let mut e = Env::new();
        for (k, v) in env {
            e.push(OsStr::new(k), OsStr::new(v))?;
        }
        let (in_r, in_w) = pipe();
        let (out_r, out_w) = pipe();
        drop(in_w);
        let child = cmd.spawn(
            &e,
            Stdio {
                stdin: in_r.as_fd(),
                stdout: out_w.as_fd(),
                stderr: out_w.as_fd(),
            },
            r,
        )?;
        drop(out_w);
        let mut out = String::new();
        std::fs::File::from(out_r).read_to_string(&mut out).unwrap();
        let status = wait(child.pid);
        Ok((libc::WEXITSTATUS(status), out))
    }

    fn plan_for(paths_rx: &[&str], paths_rw: &[&str]) -> Option<Plan> {
        let abi = detect_with_cap(None);
        if abi.availability != Availability::Available {
            eprintln!("skipped: no Landlock on this kernel");
            return None;
        }
        let mut p = Policy::deny_all();
        p.grant_paths(
            paths_rx.iter().copied(),
            FsGroup::ReadExec.access(),
            true,
            "t",
        );
        p.grant_paths(
            paths_rw.iter().copied(),
            FsGroup::ReadWrite.access(),
            false,
            "t",
        );
        p.grant_paths(
            ["/dev/null"],
            FsGroup::ReadWrite
                .access()
                .intersect(FsAccess::file_rights()),
            false,
            "t",
        );
        Some(crate::plan::plan(&p, abi, Compat::BestEffort, &Vars::new()).unwrap())
    }

    const SYSTEM: [&str; 5] = ["/usr", "/bin", "/lib", "/lib64", "/etc/ld.so.cache"];

    #[test]
    fn runs_a_program_with_its_arguments_environment_and_streams() {
        let (status, out) = run(
            "/bin/sh",
            &[
                "-c",
                "echo \"$1 $GREETING\"; echo err >&2; exit 3",
                "sh",
                "hello",
            ],
            &[("GREETING", "world")],
            &Restrictions::none(),
        )
        .unwrap();
        assert_eq!(status, 3);
        assert_eq!(out, "hello world\nerr\n");
    }

    #[test]
    fn child_leads_a_session_and_is_a_subreaper_with_only_three_descriptors() {
        let script = "set -- $(cut -d' ' -f5,6 /proc/$$/stat); echo \"pgrp=$1 sid=$2 pid=$$\"; \
                      ls /proc/$$/fd | tr '\\n' ' '; echo; \
                      o=$(sh -c 'sleep 2 >/dev/null 2>&1 & echo $!'); sleep 0.1; \
                      set -- $(cut -d' ' -f4 /proc/$o/stat); kill $o; echo \"orphan-parent=$1\"";
        let (status, out) = run("/bin/sh", &["-c", script], &[], &Restrictions::none()).unwrap();
        assert_eq!(status, 0, "{out}");
        let mut lines = out.lines();
        let ids = lines.next().unwrap();
        let pid = ids.rsplit("pid=").next().unwrap();
        assert_eq!(ids, format!("pgrp={pid} sid={pid} pid={pid}"));
        // 0-2, plus the descriptor `ls` holds on the directory it lists.
        let fds: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
        assert!(
            fds.len() <= 4 && fds.starts_with(&["0", "1", "2"]),
            "{fds:?}"
        );
        // An orphaned grandchild is re-parented to the child, not to this process or init.
        assert_eq!(lines.next().unwrap(), format!("orphan-parent={pid}"));
        // The spawned program itself (not a shell, which blocks signals while it waits):
        // no signal ignored (SIGPIPE is reset) and none blocked, although this thread
        // blocks them all around the clone.
        let (status, out) = run(
            "/bin/grep",
            &["-E", "^(SigIgn|SigBlk)", "/proc/self/status"],
            &[],
            &Restrictions::none(),
        )
        .unwrap();
        assert_eq!(status, 0, "{out}");
        assert_eq!(out.lines().count(), 2, "{out}");
        for line in out.lines() {
            assert!(line.ends_with("0000000000000000"), "{line}");
        }
    }

    #[test]
    fn exec_failures_are_reported_and_the_child_reaped() {
        let err = run("/no/such/program", &[], &[], &Restrictions::none()).unwrap_err();
        match err {
            SpawnError::Exec { source, .. } => {
                assert_eq!(source.raw_os_error(), Some(libc::ENOENT))
            }
            other => panic!("{other}"),
        }
        // Reaped: no child is left to wait for.
        // SAFETY: non-blocking wait for any child of this test process.
        let r = unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) };
        assert!(r <= 0);
    }

    #[test]
    fn bad_stdio_layouts_and_names_are_refused() {
        let cmd = Command::new(Path::new("/bin/true"), OsStr::new("true")).unwrap();
        let (r, w) = pipe();
        // SAFETY: descriptor 1 stays open for the whole test process.
        let one = unsafe { BorrowedFd::borrow_raw(1) };
        let err = cmd
            .spawn(
                &Env::new(),
                Stdio {
                    stdin: one,
                    stdout: w.as_fd(),
                    stderr: w.as_fd(),
                },
                &Restrictions::none(),
            )
            .unwrap_err();
        assert!(matches!(err, SpawnError::StdioLayout { fd: 1, target: 0 }));
        drop(r);
        let mut env = Env::new();
        assert!(env.push(OsStr::new("A=B"), OsStr::new("c")).is_err());
        assert!(env.push(OsStr::new(""), OsStr::new("c")).is_err());
        assert!(env
            .push(OsStr::new("A"), OsStr::from_bytes(b"c\0d"))
            .is_err());
        assert!(Command::new(Path::new("/bin/tr\0ue"), OsStr::new("x")).is_err());
    }

    #[test]
    fn landlock_from_the_plan_and_an_extra_rule_are_enforced() {
        let Some(plan) = plan_for(&SYSTEM, &[]) else {
            return;
        };
        let dir = std::env::temp_dir().join(format!("moat-spawn-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let dir_fd = std::fs::File::open(&dir).unwrap();
        let r = Restrictions::from_plan(
            &plan,
            &[ExtraRule {
                fd: dir_fd.as_fd(),
                access: FsGroup::ReadWrite.access(),
            }],
            Enforcement::Required,
        )
        .unwrap()
        .with_own_proc(FsGroup::Read.access());
        assert!(r.has_landlock() && r.has_filter());
        let script = format!(
            "echo secret > {d}/f && cat {d}/f; \
             cat /etc/hostname >/dev/null 2>&1 && echo etc-readable; \
             head -c 4 /proc/self/status >/dev/null 2>&1 && echo proc-of-cat; \
             head -c 4 /proc/$$/status; echo",
            d = dir.display()
        );
        let (status, out) = run("/bin/sh", &["-c", &script], &[], &r).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(status, 0, "{out}");
        // The extra rule allows the directory, /etc is denied, and only the first
        // process's own /proc entry is readable.
        assert_eq!(out, "secret\nName\n");
    }

    #[test]
    fn port_rules_and_audit_flags_reach_the_kernel() {
        let Some(mut plan) = plan_for(&SYSTEM, &[]) else {
            return;
        };
        if let Some(ll) = plan.landlock.as_mut() {
            if ll.net_handled.is_empty() {
                eprintln!("skipped: no TCP rules on this kernel (ABI < 4)");
                return;
            }
            let allowed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let denied = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let (a, d) = (
                allowed.local_addr().unwrap().port(),
                denied.local_addr().unwrap().port(),
            );
            ll.port_rules.push((
                a,
                moat_policy::NetAccess::of(&[moat_policy::NetRight::ConnectTcp]),
            ));
            ll.audit.log_new_exec = true;
            let r = Restrictions::from_plan(&plan, &[], Enforcement::Required).unwrap();
            assert_eq!(r.restrict_flags, 2);
            let script = format!(
                "import socket\nfor p in ({a}, {d}):\n try:\n  socket.create_connection(('127.0.0.1', p)).close()\n  print('ok')\n except OSError as e:\n  print(e.errno)"
            );
            let (status, out) = run("/usr/bin/python3", &["-c", &script], &[], &r).unwrap();
            assert_eq!(status, 0, "{out}");
            assert_eq!(out, format!("ok\n{}\n", libc::EACCES));
        }
    }

    #[test]
    fn the_socket_filter_is_installed() {
        let Some(plan) = plan_for(&SYSTEM, &[]) else {
            return;
        };
        let r = Restrictions::from_plan(&plan, &[], Enforcement::Required).unwrap();
        let (status, out) = run(
            "/usr/bin/python3",
            &[
                "-c",
                "import socket\ntry:\n socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n print('udp')\nexcept OSError as e:\n print(e.errno)",
            ],
            &[],
            &r,
        )
        .unwrap();
        assert_eq!(status, 0, "{out}");
        assert_eq!(out.trim(), libc::EACCES.to_string());
    }

    #[test]
    fn a_failed_restriction_stops_the_child_unless_best_effort() {
        let Some(plan) = plan_for(&SYSTEM, &[]) else {
            return;
        };
        // A descriptor that is not a ruleset makes landlock_restrict_self fail (EBADFD or
        // EINVAL), standing in for a kernel that refuses.
        let bogus = std::fs::File::open("/dev/null").unwrap();
        for (enforcement, expect_run) in [
            (Enforcement::Required, false),
            (Enforcement::BestEffort, true),
        ] {
            let mut r = Restrictions::from_plan(&plan, &[], enforcement).unwrap();
            r.ruleset = Some(OwnedFd::from(bogus.try_clone().unwrap()));
            let mut cmd = Command::new(Path::new("/bin/true"), OsStr::new("true")).unwrap();
            cmd.new_session(true);
            let null = std::fs::File::open("/dev/null").unwrap();
            let res = cmd.spawn(
                &Env::new(),
                Stdio {
                    stdin: null.as_fd(),
                    stdout: null.as_fd(),
                    stderr: null.as_fd(),
                },
                &r,
            );
            match (res, expect_run) {
                (Ok(child), true) => {
                    assert_eq!(wait(child.pid), 0);
                    assert_eq!(child.not_enforced.len(), 1);
                    assert_eq!(child.not_enforced[0].step, Step::Landlock);
                }
                (Err(SpawnError::Child { step, .. }), false) => assert_eq!(step, Step::Landlock),
                (other, _) => panic!("{enforcement:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn the_child_joins_the_given_control_groups_before_exec() {
        // Any writable cgroup2 mount (a new group in it needs no controller).
        let Some(mount) = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .find(|l| l.contains(" - cgroup2 "))
            .and_then(|l| l.split(' ').nth(4).map(PathBuf::from))
        else {
            eprintln!("skipped: no cgroup2 mount");
            return;
        };
        let name = format!(
            "moat-spawn-test-{}-{:?}",
            std::process::id(),
            std::time::Instant::now()
        )
        .replace([' ', '{', '}', ':', ','], "");
        let group = mount.join(&name);
        if let Err(e) = std::fs::create_dir(&group) {
            eprintln!(
                "skipped: cannot create a control group in {}: {e}",
                mount.display()
            );
            return;
        }
        let procs = std::fs::OpenOptions::new()
            .write(true)
            .open(group.join("cgroup.procs"))
            .unwrap();
        let mut cmd = Command::new(Path::new("/bin/cat"), OsStr::new("cat")).unwrap();
        cmd.arg(OsStr::new("/proc/self/cgroup")).unwrap();
        let (in_r, in_w) = pipe();
        let (out_r, out_w) = pipe();
        drop(in_w);
        let child = cmd
            .spawn_into(
                &Env::new(),
                Stdio {
                    stdin: in_r.as_fd(),
                    stdout: out_w.as_fd(),
                    stderr: out_w.as_fd(),
                },
                &Restrictions::none(),
                &[procs.as_fd()],
            )
            .unwrap();
        drop(out_w);
        let mut out = String::new();
        std::fs::File::from(out_r).read_to_string(&mut out).unwrap();
        assert_eq!(wait(child.pid), 0);
        std::fs::remove_dir(&group).unwrap();
        assert!(out.lines().any(|l| l == format!("0::/{name}")), "{out}");
        // A descriptor that is not a cgroup.procs file fails the spawn.
        let null = std::fs::File::open("/dev/null").unwrap();
        let err = cmd
            .spawn_into(
                &Env::new(),
                Stdio {
                    stdin: null.as_fd(),
                    stdout: null.as_fd(),
                    stderr: null.as_fd(),
                },
                &Restrictions::none(),
                &[null.as_fd()],
            )
            .unwrap_err();
        assert!(
            matches!(
                err,
                SpawnError::Child {
                    step: Step::Cgroup,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn spawning_does_not_disturb_the_parents_signal_mask_or_errno_users() {
        let before = block_all_signals();
        restore_signals(&before);
        run("/bin/true", &[], &[], &Restrictions::none()).unwrap();
        let after = block_all_signals();
        restore_signals(&after);
        // SAFETY: comparing two initialised sigset_t values byte by byte.
        let same = unsafe {
            libc::memcmp(
                &before as *const _ as *const c_void,
                &after as *const _ as *const c_void,
                std::mem::size_of::<libc::sigset_t>(),
            )
        };
        assert_eq!(same, 0);
    }
}
