//! Watching what a program does, without root: seccomp user notification.
//!
//! moat forks; the child installs a seccomp filter that turns the system calls needing a
//! Landlock right (and signals and sockets) into notifications, hands the filter's listener
//! to the parent over a socket pair, and execs the program. The filter is inherited by
//! every process and thread the program starts, so the whole tree is followed. The parent
//! reads each call's arguments (paths from the caller's memory, its working directory and
//! descriptors from /proc), reports it, and lets the call continue unchanged. Nothing is
//! denied or altered: this is observation for `moat record` and `moat run --explain`.
//!
//! Chosen over ptrace because it needs no per-thread state machine and no register
//! decoding, stops only the calls of interest, and follows forks by inheritance. It needs
//! no_new_privs (set anyway) and Linux 5.5 (`SECCOMP_USER_NOTIF_FLAG_CONTINUE`).

mod decode;
mod memory;
mod notify;

pub use decode::{Decoder, Event};

use crate::exec::{ExecError, Target};
use crate::supervise::{Rules, Server};
use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;

/// The tracer could not start or went wrong.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// A system call of the tracer itself failed.
    #[error("tracing: {what}: {source}")]
    Os {
        /// What was being done.
        what: &'static str,
        /// The error.
        source: io::Error,
    },
}

fn os(what: &'static str) -> impl FnOnce(io::Error) -> TraceError {
    move |source| TraceError::Os { what, source }
}

/// A traced program, started and running.
pub struct Session {
    child: libc::pid_t,
    listener: Option<Arc<OwnedFd>>,
    /// The sandbox's supervisor, when the traced program's policy needs one: the kernel
    /// allows one listener per process, so the tracer's serves it too.
    supervisor: Option<Server>,
}

/// How a traced program ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this status.
    Code(i32),
    /// A signal killed it.
    Signal(i32),
}

impl Exit {
    /// The status a shell would report: the code, or 128 + the signal.
    pub fn status(self) -> i32 {
        match self {
            Exit::Code(c) => c,
            Exit::Signal(s) => 128 + s,
        }
    }
}

/// Starts `target` traced. In the child, before the filter is installed, `prepare` runs
/// (`--explain` applies the sandbox there); if it fails, the child prints the message and
/// exits 125. The environment is `env`, or moat's own when `None`.
///
/// Must be called while the process is single-threaded (the child allocates after fork).
pub fn spawn(
    target: &Target,
    env: Option<&[(OsString, OsString)]>,
    prepare: impl FnOnce() -> Result<(), String>,
) -> Result<Session, TraceError> {
    start(target, env, prepare, true)
}

/// Starts `target` like [`spawn`] but without the tracing filter: the caller only waits
/// for it ([`Session::try_wait`]), for example while it reads the audit log.
pub fn spawn_untraced(
    target: &Target,
    env: Option<&[(OsString, OsString)]>,
    prepare: impl FnOnce() -> Result<(), String>,
) -> Result<Session, TraceError> {
    start(target, env, prepare, false)
}

fn start(
    target: &Target,
    env: Option<&[(OsString, OsString)]>,
    prepare: impl FnOnce() -> Result<(), String>,
    traced: bool,
) -> Result<Session, TraceError> {
    // The channel the child hands the listener over; none is needed untraced.
    let pair = if traced { Some(socket_pair()?) } else { None };
    // SAFETY: moat is single-threaded here (documented precondition), so the child may
    // allocate and use std until it execs.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(os("fork")(io::Error::last_os_error()));
    }
    if pid == 0 {
        let code = child(target, env, prepare, pair.map(|(_, theirs)| theirs));
        // SAFETY: leaving the forked child without running the parent's destructors.
        unsafe { libc::_exit(code) };
    }
    let listener = match pair {
        Some((ours, theirs)) => {
            drop(theirs);
            receive_fd(&ours).map_err(os("receiving the notification listener"))?
        }
        None => None,
    };
    Ok(Session {
        child: pid,
        listener: listener.map(Arc::new),
        supervisor: None,
    })
}

fn socket_pair() -> Result<(OwnedFd, OwnedFd), TraceError> {
    let mut pair = [0; 2];
    // SAFETY: `pair` is a valid out-array of two ints.
    let r = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            pair.as_mut_ptr(),
        )
    };
    if r != 0 {
        return Err(os("socketpair")(io::Error::last_os_error()));
    }
    // SAFETY: both descriptors were just created and are owned here.
    Ok(unsafe { (OwnedFd::from_raw_fd(pair[0]), OwnedFd::from_raw_fd(pair[1])) })
}

/// The child's side: prepare, install the filter and hand the listener over (when
/// traced), exec.
fn child(
    target: &Target,
    env: Option<&[(OsString, OsString)]>,
    prepare: impl FnOnce() -> Result<(), String>,
    sock: Option<OwnedFd>,
) -> i32 {
    if let Err(m) = prepare() {
        eprintln!("moat: {m}");
        return 125;
    }
    let Some(sock) = sock else {
        let err: ExecError = crate::exec::exec(target, env, None);
        eprintln!("moat: {err}");
        return err.exit_code();
    };
    // SAFETY: PR_SET_NO_NEW_PRIVS takes plain integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        eprintln!("moat: no_new_privs: {}", io::Error::last_os_error());
        return 125;
    }
    let listener = match notify::install() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("moat: cannot install the tracing filter (seccomp user notification): {e}");
            return 125;
        }
    };
    if let Err(e) = send_fd(&sock, &listener) {
        eprintln!("moat: cannot hand the tracing filter over: {e}");
        return 125;
    }
    drop(listener);
    drop(sock);
    let err: ExecError = crate::exec::exec(target, env, None);
    eprintln!("moat: {err}");
    err.exit_code()
}

/// Calls `f` with a message of one byte and room for one descriptor (SCM_RIGHTS).
fn one_fd_message<R>(f: impl FnOnce(&mut libc::msghdr) -> R) -> R {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    // SAFETY: CMSG_SPACE is a pure computation.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<libc::c_int>() as u32) } as usize;
    // The control buffer holds a `cmsghdr`, so it must be aligned as one: a byte vector is
    // only as aligned as the allocator happens to make it (moat's bump arena does not pad
    // a block of bytes), and a misaligned header is undefined behaviour.
    let mut control = [0u64; 8];
    debug_assert!(space <= std::mem::size_of_val(&control));
    // SAFETY: zeroed msghdr is a valid starting point; fields are set below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    f(&mut msg)
}

fn send_fd(sock: &OwnedFd, fd: &OwnedFd) -> io::Result<()> {
    one_fd_message(|msg| {
        // SAFETY: `msg` has a control buffer of CMSG_SPACE(int) bytes, so the first header
        // exists and has room for one descriptor.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<libc::c_int>() as u32) as _;
            std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>(), fd.as_raw_fd());
        }
        // SAFETY: `msg` and everything it points to are valid for the call.
        if unsafe { libc::sendmsg(sock.as_raw_fd(), msg, 0) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    })
}

/// The listener, or `None` when the child ended before sending it (it failed to prepare
/// or install the filter and said why).
fn receive_fd(sock: &OwnedFd) -> io::Result<Option<OwnedFd>> {
    one_fd_message(|msg| {
        // SAFETY: `msg` and its buffers are valid for the call.
        let n = unsafe { libc::recvmsg(sock.as_raw_fd(), msg, libc::MSG_CMSG_CLOEXEC) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if n == 0 {
            return Ok(None);
        }
        // SAFETY: the kernel filled `msg`; the header, when present, is within the control
        // buffer.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(msg);
            if cmsg.is_null()
                || (*cmsg).cmsg_level != libc::SOL_SOCKET
                || (*cmsg).cmsg_type != libc::SCM_RIGHTS
            {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "no descriptor in the message",
                ));
            }
            let fd = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>());
            Ok(Some(OwnedFd::from_raw_fd(fd)))
        }
    })
}

impl Session {
    /// The traced child's pid.
    pub fn pid(&self) -> libc::pid_t {
        self.child
    }

    /// Serves the sandbox's supervised calls (listen, connect) by `rules` on the tracing
    /// listener: the child's restrictions must have been applied with
    /// [`crate::enforce::SupervisorHost::Tracer`], which installs the supervised filter
    /// without a listener of its own. The calls are decided and performed, never let
    /// through.
    pub fn supervise(&mut self, rules: Arc<Rules>) {
        if let Some(l) = &self.listener {
            self.supervisor = Some(Server::new(Arc::clone(l), rules));
        }
    }

    /// Serves notifications, calling `on_event` for each, until the child has exited and
    /// its descendants are done or gone quiet; returns how the child ended. Descendants
    /// still running afterwards keep running untraced (their traced calls fail with
    /// ENOSYS once the listener is closed).
    pub fn run(mut self, mut on_event: impl FnMut(&Event)) -> Result<Exit, TraceError> {
        let mut decoder = Decoder::new(self.child);
        let mut exit = None;
        // After the child exits, wait this long for a straggler's next call.
        const GRACE_MS: i32 = 100;
        loop {
            if exit.is_none() {
                exit = self.reap(libc::WNOHANG)?;
            }
            let Some(listener) = self.listener.as_ref() else {
                break;
            };
            let mut pfd = libc::pollfd {
                fd: listener.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let timeout = if exit.is_some() { GRACE_MS } else { 50 };
            // SAFETY: one valid pollfd.
            let r = unsafe { libc::poll(&mut pfd, 1, timeout) };
            if r < 0 {
                let e = io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                return Err(os("poll")(e));
            }
            if r == 0 {
                if exit.is_some() {
                    break;
                }
                continue;
            }
            if pfd.revents & libc::POLLIN != 0 {
                let Some(n) = notify::receive(listener).map_err(os("receiving a notification"))?
                else {
                    continue;
                };
                let event = decoder.decode(&n);
                // Reported while the call is still held, so the callback can read the
                // caller's /proc entries.
                if notify::still_valid(listener, n.id) {
                    on_event(&event);
                }
                match &self.supervisor {
                    Some(s) if s.decides(&n) => s.handle(&n),
                    _ => notify::resume(listener, n.id),
                }
            } else if pfd.revents & (libc::POLLHUP | libc::POLLERR) != 0 {
                // Every process that had the filter is gone.
                self.listener = None;
            }
        }
        self.listener = None;
        match exit {
            Some(e) => Ok(e),
            None => Ok(self.reap(0)?.unwrap_or(Exit::Code(125))),
        }
    }

    /// How the child ended, if it has; does not wait.
    pub fn try_wait(&self) -> Result<Option<Exit>, TraceError> {
        self.reap(libc::WNOHANG)
    }

    fn reap(&self, flags: i32) -> Result<Option<Exit>, TraceError> {
        let mut status = 0;
        // SAFETY: `status` is a valid out-parameter.
        let r = unsafe { libc::waitpid(self.child, &mut status, flags) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                return Ok(None);
            }
            return Err(os("waitpid")(e));
        }
        if r == 0 {
            return Ok(None);
        }
        Ok(Some(if libc::WIFSIGNALED(status) {
            Exit::Signal(libc::WTERMSIG(status))
        } else {
            Exit::Code(libc::WEXITSTATUS(status))
        }))
    }
}
