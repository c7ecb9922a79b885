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
//! The restrictions are prepared in the parent ([`Restrictions::from_plan`], the one
//! enforcement entry point of [`crate::enforce`]), and argv and envp are built as
//! NUL-terminated arrays there too. The child, between clone and exec, makes only raw,
//! async-signal-safe system calls on memory prepared by the parent: it resets signal
//! dispositions, joins the caller's control groups ([`Command::spawn_into`]), runs
//! `setsid`, `PR_SET_CHILD_SUBREAPER`, `dup2` of the standard streams and `chdir`, applies
//! the restrictions (`Restrictions::apply_steps`, closing every
//! descriptor above 2 last), unblocks signals and execs. No allocation, no lock, no Rust
//! standard library call: the child shares the parent's heap and locks, and another
//! thread of the parent may hold them.
//!
//! The child reports a failed step through a small structure in the shared memory, which
//! the parent reads when it resumes (after the exec or the child's exit). A step that
//! restricts the child fails the spawn under [`Enforcement::Required`]; under
//! [`Enforcement::BestEffort`] the child goes on and the parent returns what was not
//! enforced in [`Child::not_enforced`].

mod child;

use crate::enforce::{EnforceError, StepReport};
pub use crate::enforce::{Enforcement, NotEnforced, Restrictions, Step};
use child::{child_main, ChildArgs};
use std::cell::RefCell;
use std::ffi::{c_char, c_int, c_void, CString, OsStr};
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
#[cfg(test)]
use std::path::PathBuf;

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
    /// The restrictions could not be prepared.
    #[error(transparent)]
    Restrictions(#[from] EnforceError),
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
    /// each. So everything the child and the program do, from their first instruction,
    /// counts against those groups' limits, and a group's `cgroup.kill` reaches every
    /// process the program starts. A failed join is a restriction that failed
    /// ([`Step::Cgroup`]): it fails the spawn under [`Enforcement::Required`].
    pub fn spawn_into(
        &self,
        env: &Env,
        stdio: Stdio<'_>,
        restrictions: &Restrictions,
        cgroups: &[BorrowedFd<'_>],
    ) -> Result<Child, SpawnError> {
        if restrictions.supervisor_host() == Some(crate::enforce::SupervisorHost::Fork) {
            // The child borrows this process's memory until it execs: it cannot fork.
            return Err(SpawnError::Restrictions(EnforceError::Step {
                step: Step::Supervisor,
                source: std::io::Error::other(
                    "a spawned child cannot fork a supervisor: serve it from the caller \
                     (Restrictions::served_by_caller)",
                ),
            }));
        }
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
        let report = StepReport::new();
        let args = ChildArgs {
            program: self.program.as_ptr(),
            argv: argv.as_ptr(),
            envp: envp.as_ptr(),
            cwd: self.cwd.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
            stdio,
            new_session: self.new_session,
            subreaper: self.child_subreaper,
            cgroups: cgroups.as_ptr(),
            cgroups_len: cgroups.len(),
            restrictions,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::detect_with_cap;
    use crate::abi::Availability;
    use crate::landlock::ExtraRule;
    use crate::plan::Plan;
    use moat_policy::{Compat, FsAccess, FsGroup, Policy, Vars};
    use std::io::Read;
    use std::os::fd::AsFd;
    use std::os::fd::{FromRawFd, OwnedFd};

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
            assert_eq!(crate::landlock::restrict_flags(ll_audit(&plan)), 2);
            let script = format!(
                "import socket\nfor p in ({a}, {d}):\n try:\n  socket.create_connection(('127.0.0.1', p)).close()\n  print('ok')\n except OSError as e:\n  print(e.errno)"
            );
            let (status, out) = run("/usr/bin/python3", &["-c", &script], &[], &r).unwrap();
            assert_eq!(status, 0, "{out}");
            assert_eq!(out, format!("ok\n{}\n", libc::EACCES));
        }
    }

    fn ll_audit(plan: &Plan) -> moat_policy::AuditFlags {
        plan.landlock.as_ref().map(|l| l.audit).unwrap_or_default()
    }

    /// A terminal's slave side, opened twice: for the child's stderr, and non-blocking for
    /// the test to read what was pushed into its input.
    fn pty() -> (OwnedFd, OwnedFd, OwnedFd) {
        // SAFETY: plain pty calls; every descriptor is owned by the returned values.
        unsafe {
            let master = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
            assert!(master >= 0);
            assert_eq!(libc::grantpt(master), 0);
            assert_eq!(libc::unlockpt(master), 0);
            let mut name = [0 as libc::c_char; 64];
            assert_eq!(libc::ptsname_r(master, name.as_mut_ptr(), name.len()), 0);
            let open = |flags| libc::open(name.as_ptr(), libc::O_RDWR | libc::O_NOCTTY | flags);
            let (slave, reader) = (
                open(libc::O_CLOEXEC),
                open(libc::O_NONBLOCK | libc::O_CLOEXEC),
            );
            assert!(slave >= 0 && reader >= 0);
            (
                OwnedFd::from_raw_fd(master),
                OwnedFd::from_raw_fd(slave),
                OwnedFd::from_raw_fd(reader),
            )
        }
    }

    /// A watchdog call's stderr is the watchdog's, which may be a terminal: the call must not
    /// push keystrokes into it (TIOCSTI), whatever capabilities the watchdog has. Without
    /// restrictions, root (CAP_SYS_ADMIN) can, even from another session.
    #[test]
    fn a_child_cannot_type_into_a_terminal_it_inherited() {
        let Some(plan) = plan_for(&SYSTEM, &[]) else {
            return;
        };
        // SAFETY: geteuid cannot fail.
        let root = unsafe { libc::geteuid() } == 0;
        let script = "import fcntl, termios\ntry:\n for c in b'pwned\\n':\n  fcntl.ioctl(2, termios.TIOCSTI, bytes([c]))\n print('ok')\nexcept OSError as e:\n print(e.errno)";
        let restricted = Restrictions::from_plan(&plan, &[], Enforcement::Required).unwrap();
        for (r, want) in [
            (&restricted, Some(libc::EACCES.to_string())),
            (&Restrictions::none(), root.then(|| "ok".to_string())),
        ] {
            let (_master, slave, reader) = pty();
            let mut cmd =
                Command::new(Path::new("/usr/bin/python3"), OsStr::new("python3")).unwrap();
            cmd.arg(OsStr::new("-c"))
                .unwrap()
                .arg(OsStr::new(script))
                .unwrap();
            cmd.new_session(true);
            let null = std::fs::File::open("/dev/null").unwrap();
            let (out_r, out_w) = pipe();
            let child = cmd
                .spawn(
                    &Env::new(),
                    Stdio {
                        stdin: null.as_fd(),
                        stdout: out_w.as_fd(),
                        stderr: slave.as_fd(),
                    },
                    r,
                )
                .unwrap();
            drop(out_w);
            let mut out = String::new();
            std::fs::File::from(out_r).read_to_string(&mut out).unwrap();
            wait(child.pid);
            let mut typed = [0u8; 64];
            // SAFETY: a valid buffer; the reader is non-blocking.
            let n =
                unsafe { libc::read(reader.as_raw_fd(), typed.as_mut_ptr().cast(), typed.len()) };
            let typed = if n > 0 {
                String::from_utf8_lossy(&typed[..n as usize]).into_owned()
            } else {
                String::new()
            };
            match &want {
                Some(w) => assert_eq!(out.trim(), w),
                None => {
                    eprintln!("control skipped: not root, TIOCSTI on a terminal of another session needs CAP_SYS_ADMIN");
                    continue;
                }
            }
            assert_eq!(typed, if r.has_filter() { "" } else { "pwned\n" });
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
            let r = Restrictions::from_plan(&plan, &[], enforcement)
                .unwrap()
                .with_ruleset(OwnedFd::from(bogus.try_clone().unwrap()));
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
}
