//! Landlock's three system calls: the ABI query, and the ruleset of a [`LandlockPlan`]
//! built and enforced.
//!
//! # Why the system calls are made directly rather than through the `landlock` crate
//!
//! The plan has already done what the crate's compatibility machinery does: it limited
//! every right to the effective ABI and dropped directory rights on file rules
//! ([`crate::plan::OpenedRule`]), so what is left is three system calls. The crate does the
//! same work again on every launch: it asks the kernel for its ABI and errata and `fstat`s
//! every rule's descriptor to tell files from directories. For the watchdog's 14-rule
//! policy on the development machine that was 28-30 us with the crate against 9.6 us with
//! the plain system calls (medians of 2000, `load setup` in crates/moat-watchdog), paid on
//! every `moat run`, container start and function call. The ruleset is also enforced in
//! a `clone(CLONE_VM)` child that may not allocate ([`crate::enforce`]), which the crate's
//! builder cannot promise.

use crate::plan::LandlockPlan;
use moat_policy::{AuditFlags, FsAccess};
use std::ffi::c_int;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

/// Why the ruleset could not be created.
#[derive(Debug, thiserror::Error)]
#[error("Landlock: {call}{}: {source}", path.as_ref().map(|p| format!(" (rule on `{}`)", p.display())).unwrap_or_default())]
pub struct LandlockError {
    /// The system call that failed.
    pub call: &'static str,
    /// The rule's path, when adding a path rule failed.
    pub path: Option<PathBuf>,
    /// The kernel's answer.
    pub source: std::io::Error,
}

/// A path rule added to a planned ruleset by the caller: a directory or file that exists
/// for one process only (the watchdog's per-call private directory).
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

/// `struct landlock_path_beneath_attr` (packed in the UAPI).
#[repr(C, packed)]
pub(crate) struct PathBeneathAttr {
    pub(crate) allowed_access: u64,
    pub(crate) parent_fd: i32,
}

/// `struct landlock_net_port_attr`.
#[repr(C)]
struct NetPortAttr {
    allowed_access: u64,
    port: u64,
}

pub(crate) const LANDLOCK_RULE_PATH_BENEATH: c_int = 1;
const LANDLOCK_RULE_NET_PORT: c_int = 2;

/// The kernel's Landlock ABI version (`EOPNOTSUPP`: Landlock is built in but disabled).
pub(crate) fn abi_version() -> std::io::Result<i64> {
    // SAFETY: LANDLOCK_CREATE_RULESET_VERSION with a null attribute and size 0 only
    // queries the ABI version; no memory is read or written.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            1u32, // LANDLOCK_CREATE_RULESET_VERSION
        )
    };
    match v {
        v if v >= 0 => Ok(v),
        _ => Err(std::io::Error::last_os_error()),
    }
}

/// Creates the ruleset of `plan` plus `extra`, unenforced, close-on-exec.
pub fn create_ruleset(
    plan: &LandlockPlan,
    extra: &[ExtraRule<'_>],
) -> Result<OwnedFd, LandlockError> {
    let fail = |call, path: Option<&Path>| LandlockError {
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
    for rule in &plan.path_rules {
        // SAFETY: a valid ruleset descriptor and an open rule descriptor.
        if unsafe { add_path_rule(ruleset.as_raw_fd(), rule.fd.as_raw_fd(), rule.access.bits()) }
            != 0
        {
            return Err(fail("landlock_add_rule", Some(&rule.path)));
        }
    }
    for rule in extra {
        let mut access = rule.access.intersect(plan.fs_handled);
        if !crate::plan::is_directory(rule.fd).is_ok_and(|(dir, _)| dir) {
            // Directory rights on a file make the kernel refuse the whole rule.
            access = access.intersect(FsAccess::file_rights());
        }
        if access.is_empty() {
            continue;
        }
        // SAFETY: as above.
        if unsafe { add_path_rule(ruleset.as_raw_fd(), rule.fd.as_raw_fd(), access.bits()) } != 0 {
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

/// `landlock_add_rule` for one path: async-signal-safe, no allocation. Returns the system
/// call's result (0, or -1 with errno set).
///
/// # Safety
/// `ruleset` and `fd` must be open descriptors (any values are memory-safe: the kernel
/// checks them; the contract is about meaning).
pub(crate) unsafe fn add_path_rule(ruleset: RawFd, fd: RawFd, access: u64) -> libc::c_long {
    let attr = PathBeneathAttr {
        allowed_access: access,
        parent_fd: fd,
    };
    libc::syscall(
        libc::SYS_landlock_add_rule,
        ruleset,
        LANDLOCK_RULE_PATH_BENEATH,
        &attr as *const PathBeneathAttr,
        0u32,
    )
}

/// `landlock_restrict_self`: enforces `ruleset` on the calling thread (and what it starts
/// afterwards). Async-signal-safe, no allocation. Returns the system call's result (0, or
/// -1 with errno set).
pub(crate) fn restrict_self(ruleset: RawFd, flags: u32) -> libc::c_long {
    // SAFETY: integer arguments only; the kernel checks the descriptor and the flags.
    unsafe { libc::syscall(libc::SYS_landlock_restrict_self, ruleset, flags) }
}

/// The `landlock_restrict_self` flags for `audit` (ABI 7): only the flags that move a
/// setting off the kernel's default.
pub fn restrict_flags(audit: AuditFlags) -> u32 {
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
