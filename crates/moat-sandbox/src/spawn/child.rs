//! The child, between `clone` and `execve`.
//!
//! It runs on the parent's memory with the parent's thread suspended (`CLONE_VM |
//! CLONE_VFORK`), so it makes raw system calls only: no allocation, no panic, nothing that
//! takes a lock (another thread of the parent may hold it). Each system call is a small
//! wrapper below that says why it is sound; [`child_main`] is the straight line of steps.

use crate::enforce::{Restrictions, Step, StepReport};
use std::ffi::{c_char, c_int, c_void};
use std::os::fd::RawFd;

/// Everything the child reads, prepared by the parent. Raw pointers only: the child must
/// not run any code that could allocate or lock.
pub(super) struct ChildArgs {
    pub(super) program: *const c_char,
    pub(super) argv: *const *const c_char,
    pub(super) envp: *const *const c_char,
    /// Null, or the directory to change into.
    pub(super) cwd: *const c_char,
    pub(super) stdio: [RawFd; 3],
    pub(super) new_session: bool,
    pub(super) subreaper: bool,
    /// `cgroups_len` descriptors (a vector's pointer: never null, even when empty).
    pub(super) cgroups: *const RawFd,
    pub(super) cgroups_len: usize,
    pub(super) restrictions: *const Restrictions,
    pub(super) report: *const StepReport,
}

/// The child's steps, in order; returns only on failure (the exit status, after recording
/// the failed step in the report).
pub(super) extern "C" fn child_main(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `ChildArgs` of `Command::spawn_into`, valid until the exec (see
    // there); every pointer in it (the restrictions and the report included) is either
    // null or points into memory the parent keeps alive for as long.
    let a = unsafe { &*(arg as *const ChildArgs) };
    // SAFETY: as above.
    let report = unsafe { &*a.report };
    // SAFETY: as above.
    let restrictions = unsafe { &*a.restrictions };
    // SAFETY: as above; `cgroups` is a vector's pointer, aligned and non-null even for an
    // empty vector.
    let cgroups = unsafe { std::slice::from_raw_parts(a.cgroups, a.cgroups_len) };
    let fail = |step: Step| -> c_int {
        report.fail(step, errno());
        127
    };

    // Default dispositions first: a handler of the parent must not run here.
    reset_signal_dispositions();
    for &fd in cgroups {
        if !join_cgroup(fd) {
            if restrictions.best_effort() {
                report.skip(Step::Cgroup, errno());
            } else {
                return fail(Step::Cgroup);
            }
        }
    }
    if a.new_session && !setsid() {
        return fail(Step::Session);
    }
    if a.subreaper && !set_child_subreaper() {
        return fail(Step::Subreaper);
    }
    for (target, &fd) in a.stdio.iter().enumerate() {
        if !place_stdio(fd, target as RawFd) {
            return fail(Step::Stdio);
        }
    }
    // SAFETY: `cwd` is null or the parent's NUL-terminated string (see `ChildArgs`).
    if !a.cwd.is_null() && !unsafe { chdir(a.cwd) } {
        return fail(Step::Chdir);
    }
    // The one enforcement order, then every descriptor above 2 closed: Landlock does not
    // restrict descriptors opened before it, and the child shares the parent's table until
    // now, so the program gets 0-2 and nothing else.
    // SAFETY: this child is about to exec and may be changed for good; `restrictions` and
    // `report` stay valid until then (see `ChildArgs`).
    if !unsafe { restrictions.apply_steps(report, true) } {
        return 127;
    }
    unblock_signals();
    // SAFETY: the parent's NUL-terminated program path and NULL-terminated argv and envp
    // arrays (see `ChildArgs`).
    unsafe { execve(a.program, a.argv, a.envp) };
    fail(Step::Exec)
}

/// Sets every signal's disposition to the default: exec keeps ignored signals ignored
/// (Rust ignores SIGPIPE), and a handler of the parent must not run in the child. The raw
/// system call, because glibc's wrapper refuses its internal signals 32 and 33. SIGKILL
/// and SIGSTOP fail, harmlessly.
fn reset_signal_dispositions() {
    // An all-zero kernel `struct sigaction` is SIG_DFL with no flags and an empty mask
    // whatever the architecture's layout.
    let dfl = [0u64; 4];
    for sig in 1..=64 {
        // SAFETY: `dfl` is a zeroed kernel `struct sigaction` on this stack, at least as
        // large as the kernel reads; the old action is not asked for (null).
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                dfl.as_ptr(),
                std::ptr::null_mut::<u64>(),
                std::mem::size_of::<u64>(),
            )
        };
    }
}

/// Writes `0` (this process) into a `cgroup.procs` or `tasks` descriptor.
fn join_cgroup(fd: RawFd) -> bool {
    // SAFETY: a one-byte write from a static string; the descriptor is the kernel's to
    // check.
    unsafe { libc::syscall(libc::SYS_write, fd, c"0".as_ptr(), 1usize) == 1 }
}

/// Leads a new session and process group.
fn setsid() -> bool {
    // SAFETY: no arguments.
    unsafe { libc::syscall(libc::SYS_setsid) >= 0 }
}

/// `PR_SET_CHILD_SUBREAPER` (kept across `execve`).
fn set_child_subreaper() -> bool {
    let zero: libc::c_ulong = 0;
    // SAFETY: this prctl option takes integers only.
    unsafe {
        libc::syscall(
            libc::SYS_prctl,
            libc::PR_SET_CHILD_SUBREAPER,
            1 as libc::c_ulong,
            zero,
            zero,
            zero,
        ) == 0
    }
}

/// Makes `fd` the standard stream `target`: a `dup3`, or, when it already is, only drops
/// close-on-exec.
fn place_stdio(fd: RawFd, target: RawFd) -> bool {
    // SAFETY: integer arguments only; the descriptors are the kernel's to check.
    let r = unsafe {
        if fd == target {
            libc::syscall(libc::SYS_fcntl, fd, libc::F_SETFD, 0)
        } else {
            libc::syscall(libc::SYS_dup3, fd, target as c_int, 0)
        }
    };
    r >= 0
}

/// Changes into `dir`.
///
/// # Safety
/// `dir` must be a NUL-terminated string that stays valid during the call.
unsafe fn chdir(dir: *const c_char) -> bool {
    libc::syscall(libc::SYS_chdir, dir) >= 0
}

/// Unblocks every signal: the parent blocked them all around the clone, and the program
/// must start with an empty mask.
fn unblock_signals() {
    let none: u64 = 0;
    // SAFETY: an empty kernel signal set on this stack, of the size passed; the old mask
    // is not asked for (null).
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &none as *const u64,
            std::ptr::null_mut::<u64>(),
            std::mem::size_of::<u64>(),
        )
    };
}

/// `execve`; returns only on failure, with errno set.
///
/// # Safety
/// `program` must be a NUL-terminated string, `argv` and `envp` NULL-terminated arrays of
/// NUL-terminated strings, all valid during the call.
unsafe fn execve(program: *const c_char, argv: *const *const c_char, envp: *const *const c_char) {
    libc::syscall(libc::SYS_execve, program, argv, envp);
}

/// This thread's errno.
fn errno() -> i32 {
    // SAFETY: errno is thread-local; in the child it is the suspended parent thread's,
    // which nothing else reads until the child is gone.
    unsafe { *libc::__errno_location() }
}
