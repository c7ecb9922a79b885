//! The seccomp layer: closes the gaps Landlock leaves open.
//!
//! Landlock (up to ABI 10) does not see every way out of a sandbox. Its network rules see
//! TCP `bind` and `connect` only; `listen` on an unbound socket picks a port without a bind
//! check; connecting to a pathname unix socket is checked only from ABI 9; a descriptor of
//! the terminal inherited from the caller can push keystrokes into the caller's shell
//! (`TIOCSTI`); io_uring creates sockets without the socket system call. moat therefore
//! installs a seccomp filter in every sandbox, built from one table ([`table::TABLE`]) of
//! what it refuses and when. Which conditional rows are in force is a [`Seal`], decided by
//! the planner from the policy and the kernel (`crate::plan`).
//!
//! Everything the table does not name is allowed: this is a gap filler next to Landlock,
//! not a general system-call sandbox. Refused calls fail with `EACCES`
//! (`REFUSAL_ERRNO`); a call through another ABI than the native one (i386 `int 0x80`
//! and its `socketcall`, x32, AArch32) kills the process, because the table's numbers are
//! the native ABI's and `socketcall` would reopen every socket gap.

mod bpf;
pub mod table;

pub use bpf::Insn;
pub(crate) use table::decide_socket;
pub use table::{decide, Call, Decision, Entry, Seal, Target, When, TABLE};

/// The errno every refused call returns.
///
/// `EACCES` is what Landlock returns for a denied TCP bind/connect, so a program sees the
/// same error whichever layer refused it. For io_uring it is also what an LSM (SELinux's
/// `io_uring` permissions) returns when it denies `io_uring_setup`, so programs that probe
/// for io_uring take their fallback path on it. One errno also keeps one refusal `ret`.
pub(crate) const REFUSAL_ERRNO: i32 = libc::EACCES;

/// The x32 ABI marks its system call numbers with this bit (`__X32_SYSCALL_BIT`); x32
/// calls report the x86_64 audit architecture, so the bit is what tells them apart.
#[cfg(target_arch = "x86_64")]
pub(crate) const X32_SYSCALL_BIT: u32 = 0x4000_0000;
#[cfg(not(target_arch = "x86_64"))]
pub(crate) const X32_SYSCALL_BIT: u32 = 0;

/// The `AUDIT_ARCH_*` value (`linux/audit.h`) of the native ABI: the ELF machine, with
/// `__AUDIT_ARCH_64BIT` and `__AUDIT_ARCH_LE`; `None` where moat has no program.
pub(crate) const NATIVE_AUDIT_ARCH: Option<u32> = {
    const LE64: u32 = 0x8000_0000 | 0x4000_0000;
    if cfg!(target_arch = "x86_64") {
        Some(62 | LE64) // EM_X86_64
    } else if cfg!(target_arch = "aarch64") {
        Some(183 | LE64) // EM_AARCH64
    } else if cfg!(target_arch = "riscv64") {
        Some(243 | LE64) // EM_RISCV
    } else {
        None
    }
};

/// Errors from installing the filter.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// No BPF program is written for this CPU architecture.
    #[error(
        "cannot build the seccomp filter on {arch}: moat supports x86_64, aarch64 and riscv64"
    )]
    UnsupportedArch {
        /// The architecture moat was built for.
        arch: &'static str,
    },
    /// `prctl(PR_SET_NO_NEW_PRIVS)` failed.
    #[error("cannot set no_new_privs before installing the seccomp filter: {source}")]
    NoNewPrivs {
        /// The OS error.
        source: std::io::Error,
    },
    /// The `seccomp(2)` call failed (for instance a kernel built without
    /// `CONFIG_SECCOMP_FILTER`).
    #[error("the kernel refused the seccomp filter: {source}")]
    Install {
        /// The OS error.
        source: std::io::Error,
    },
}

impl Seal {
    /// The program of this seal for the native architecture: a `static` assembled at
    /// compile time, so that a process installing it after `clone(CLONE_VM)`
    /// ([`crate::spawn`]) needs no allocation.
    pub fn program(self) -> Result<&'static [Insn], SeccompError> {
        if NATIVE_AUDIT_ARCH.is_none() {
            return Err(SeccompError::UnsupportedArch {
                arch: std::env::consts::ARCH,
            });
        }
        Ok(bpf::program(self).instructions())
    }

    /// Installs the filter on the calling thread, after setting no_new_privs (seccomp needs
    /// it without `CAP_SYS_ADMIN`). The filter applies to the calling thread and whatever it
    /// starts afterwards, is kept across `execve` and cannot be removed. Enforcement points
    /// install it through [`crate::enforce`]; this is for callers that need the filter
    /// alone (the watchdog on itself, tests).
    pub fn install(self) -> Result<(), SeccompError> {
        let program = self.program()?;
        // SAFETY: PR_SET_NO_NEW_PRIVS takes plain integer arguments.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            return Err(SeccompError::NoNewPrivs {
                source: std::io::Error::last_os_error(),
            });
        }
        // SAFETY: the program lives in a static; the kernel copies it.
        if unsafe { install_program(program, 0) } != 0 {
            return Err(SeccompError::Install {
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(())
    }
}

/// `seccomp(SECCOMP_SET_MODE_FILTER, flags, program)` as a raw system call:
/// async-signal-safe, no allocation. Returns the system call's result (0, the listener
/// with `SECCOMP_FILTER_FLAG_NEW_LISTENER`, or -1 with errno set).
///
/// # Safety
/// The caller must have set no_new_privs (or hold `CAP_SYS_ADMIN`); the filter binds the
/// calling thread for good.
pub(crate) unsafe fn install_program(
    program: &'static [Insn],
    flags: libc::c_uint,
) -> libc::c_long {
    let prog = libc::sock_fprog {
        len: program.len() as u16,
        // The kernel only reads the program; the pointer type is the UAPI's.
        filter: program.as_ptr() as *mut libc::sock_filter,
    };
    libc::syscall(
        libc::SYS_seccomp,
        libc::SECCOMP_SET_MODE_FILTER,
        flags,
        &prog as *const libc::sock_fprog,
    )
}

#[cfg(test)]
mod tests;
