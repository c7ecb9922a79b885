//! The IPC seal: the kernel objects a call could leave behind for a later call, or use to
//! reach another call, that Landlock does not see.
//!
//! Every call runs as the same user. Landlock confines files, TCP, signals and abstract
//! unix sockets, but not SysV IPC (shared memory segments, semaphores and message queues
//! live until removed, and any process of the user can find them by key), POSIX message
//! queues (`mq_open` goes through the mqueue filesystem without a Landlock check) or the
//! kernel keyrings (the user keyring is shared by every process of the user). A call could
//! store a secret in any of them and the next call read it. So, when calls are sandboxed,
//! the watchdog refuses those system calls with `EACCES` through a seccomp filter that it
//! installs on itself at start and every call inherits, at no cost per call (the watchdog
//! uses none of them). `sandbox_allow_ipc=true` lifts it, for functions that need SysV IPC
//! and can accept that calls share it.

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};
use std::collections::BTreeMap;

/// Why the seal could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// No seccomp support for this CPU architecture.
    #[error("the IPC seal: unsupported architecture {0}")]
    Arch(&'static str),
    /// Building or installing the filter failed.
    #[error("the IPC seal: {0}")]
    Seccomp(#[from] seccompiler::Error),
    /// Building the filter failed.
    #[error("the IPC seal: {0}")]
    Backend(#[from] seccompiler::BackendError),
}

/// The system calls refused, by name and number (native ABI).
pub const SEALED: &[(&str, i64)] = &[
    ("shmget", libc::SYS_shmget),
    ("shmat", libc::SYS_shmat),
    ("shmctl", libc::SYS_shmctl),
    ("shmdt", libc::SYS_shmdt),
    ("semget", libc::SYS_semget),
    ("semop", libc::SYS_semop),
    ("semctl", libc::SYS_semctl),
    ("semtimedop", libc::SYS_semtimedop),
    ("msgget", libc::SYS_msgget),
    ("msgsnd", libc::SYS_msgsnd),
    ("msgrcv", libc::SYS_msgrcv),
    ("msgctl", libc::SYS_msgctl),
    ("mq_open", libc::SYS_mq_open),
    ("mq_unlink", libc::SYS_mq_unlink),
    ("mq_timedsend", libc::SYS_mq_timedsend),
    ("mq_timedreceive", libc::SYS_mq_timedreceive),
    ("mq_notify", libc::SYS_mq_notify),
    ("mq_getsetattr", libc::SYS_mq_getsetattr),
    ("add_key", libc::SYS_add_key),
    ("request_key", libc::SYS_request_key),
    ("keyctl", libc::SYS_keyctl),
];

/// One line for the start-up report.
pub const DESCRIPTION: &str = "IPC seal (seccomp): SysV shared memory, semaphores and \
     message queues, POSIX message queues, keyrings and sock_diag netlink sockets refused \
     with EACCES";

/// `NETLINK_SOCK_DIAG`: lists every socket of the network namespace, with the path a unix
/// socket is bound to. On kernels without Landlock's `resolve_unix` (ABI 9), knowing the
/// path of another call's unix socket is enough to connect to it, so a call may not ask.
const NETLINK_SOCK_DIAG: u64 = 4;

/// The x32 aliases of the sealed calls (the x86_64 numbers with `__X32_SYSCALL_BIT`, except
/// `mq_notify`, which x32 numbers 527): x32 processes report the x86_64 audit architecture.
#[cfg(target_arch = "x86_64")]
fn x32_aliases() -> Vec<i64> {
    const X32: i64 = 0x4000_0000;
    SEALED
        .iter()
        .map(|&(name, nr)| {
            if name == "mq_notify" {
                X32 + 527
            } else {
                X32 | nr
            }
        })
        .collect()
}

#[cfg(not(target_arch = "x86_64"))]
fn x32_aliases() -> Vec<i64> {
    Vec::new()
}

/// The seal's BPF program for the native architecture.
pub fn program() -> Result<BpfProgram, SealError> {
    let arch = TargetArch::try_from(std::env::consts::ARCH)
        .map_err(|_| SealError::Arch(std::env::consts::ARCH))?;
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = SEALED
        .iter()
        .map(|&(_, nr)| nr)
        .chain(x32_aliases())
        .map(|nr| (nr, Vec::new()))
        .collect();
    let sock_diag = SeccompRule::new(vec![
        SeccompCondition::new(
            0,
            SeccompCmpArgLen::Dword,
            SeccompCmpOp::Eq,
            libc::AF_NETLINK as u64,
        )?,
        SeccompCondition::new(
            2,
            SeccompCmpArgLen::Dword,
            SeccompCmpOp::Eq,
            NETLINK_SOCK_DIAG,
        )?,
    ])?;
    rules.insert(libc::SYS_socket, vec![sock_diag]);
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EACCES as u32),
        arch,
    )?;
    Ok(BpfProgram::try_from(filter)?)
}

/// Installs the seal on the calling thread, inherited by every thread and process it starts
/// afterwards. Sets no_new_privs.
pub fn install() -> Result<(), SealError> {
    let prog = program()?;
    seccompiler::apply_filter(&prog)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_program_builds_and_lists_every_call() {
        let p = program().unwrap();
        assert!(!p.is_empty());
        assert_eq!(SEALED.len(), 21);
    }

    #[test]
    fn a_sealed_child_cannot_create_ipc_objects() {
        // In a child process, so the test process stays unsealed.
        let out = std::process::Command::new("/usr/bin/python3")
            .arg("-c")
            .arg(
                "import ctypes, os\n\
                 libc = ctypes.CDLL(None, use_errno=True)\n\
                 print(libc.msgget(0, 0o1600), ctypes.get_errno())",
            )
            .output();
        let Ok(before) = out else {
            eprintln!("skipped: no /usr/bin/python3");
            return;
        };
        let before = String::from_utf8_lossy(&before.stdout).into_owned();
        let id: i64 = before.split_whitespace().next().unwrap().parse().unwrap();
        assert!(id >= 0, "unsealed msgget failed: {before}");
        // SAFETY: removing the queue just created.
        unsafe { libc::msgctl(id as i32, libc::IPC_RMID, std::ptr::null_mut()) };
        let mut cmd = std::process::Command::new("/usr/bin/python3");
        cmd.arg("-c").arg(
            "import ctypes\n\
             libc = ctypes.CDLL(None, use_errno=True)\n\
             print(libc.msgget(0, 0o1600), ctypes.get_errno())\n\
             import socket\n\
             try:\n socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 4)\n print('diag')\n\
             except OSError as e:\n print(e.errno)\n\
             socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0).close()\n\
             print('route')",
        );
        // SAFETY: install only makes system calls (no allocation after fork matters here:
        // the program is built before).
        let prog = program().unwrap();
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(move || {
                seccompiler::apply_filter(&prog).map_err(|_| std::io::Error::last_os_error())
            });
        }
        let after = String::from_utf8_lossy(&cmd.output().unwrap().stdout).into_owned();
        assert_eq!(
            after,
            format!("-1 {0}\n{0}\nroute\n", libc::EACCES),
            "msgget and sock_diag refused, other netlink sockets allowed"
        );
    }
}
