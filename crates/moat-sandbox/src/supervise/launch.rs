//! Getting the listener to its supervisor.
//!
//! The listener is born in the sandboxed process, when it installs its filter
//! (`SECCOMP_FILTER_FLAG_NEW_LISTENER`), after Landlock; the supervisor must be outside
//! the Landlock domain and not under the filter, so it exists before both. The two talk
//! over a socket pair made while planning ([`Channel`]), and the sandboxed process sends
//! the listener over it (`SCM_RIGHTS`) right after installing the filter, then closes its
//! own copy: the program it execs never holds it.
//!
//! Who serves the listener:
//! * `moat run` (and the container launcher, which is `moat run`): a supervisor process
//!   forked after the capabilities are dropped and before Landlock ([`fork`]), through an
//!   intermediate child that exits at once, so that it is nobody's child in the program's
//!   tree (a container's pid 1 inherits it and may never reap it: it then stays a zombie
//!   that holds nothing, not a process). It leads its own session with its standard
//!   streams on `/dev/null`, ignores the terminal's signals, and ends when the last
//!   process under the filter has.
//! * the watchdog: the process that spawned the call, which takes the listener from the
//!   channel after the spawn ([`Channel::receive_listener`]) and serves it from a thread.

use super::Rules;
use crate::caps::CapsPlan;
use crate::tmpdir::TmpRoot;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;

/// A unix stream socket pair between the sandboxed process and its supervisor.
#[derive(Debug)]
pub struct Channel {
    /// The sandboxed process's end.
    sandboxed: OwnedFd,
    /// The supervisor's end.
    supervisor: OwnedFd,
}

impl Channel {
    /// A new pair, close-on-exec.
    pub fn new() -> io::Result<Channel> {
        let mut fds = [0 as RawFd; 2];
        // SAFETY: `fds` has room for the two descriptors.
        let r = unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
                0,
                fds.as_mut_ptr(),
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: two descriptors socketpair just returned, owned by nobody else.
        Ok(unsafe {
            Channel {
                sandboxed: OwnedFd::from_raw_fd(fds[0]),
                supervisor: OwnedFd::from_raw_fd(fds[1]),
            }
        })
    }

    /// Sends `listener` to the supervisor, from the sandboxed process; raw system calls on
    /// the stack only (it runs in a `clone(CLONE_VM)` child too). False on failure, errno
    /// set.
    ///
    /// # Safety
    /// `listener` must be an open descriptor.
    pub(crate) unsafe fn send_listener(&self, listener: RawFd) -> bool {
        send_fd(self.sandboxed.as_raw_fd(), listener)
    }

    /// The listener, in the process that spawned the sandboxed one (which has sent it, or
    /// failed to, by the time its spawn returns): `None` if it was never sent.
    pub fn receive_listener(&self) -> io::Result<Option<OwnedFd>> {
        receive_fd(self.supervisor.as_raw_fd(), libc::MSG_DONTWAIT)
    }
}

/// Serves `listener` from a new thread of the calling process (the watchdog), which first
/// drops to the capabilities of the sandboxed program (`caps`, applied to that thread
/// only: Linux credentials are per thread), so that what it performs is checked as the
/// program's own calls would be. The thread ends with the sandbox.
pub fn serve_from_thread(
    listener: OwnedFd,
    rules: Arc<Rules>,
    caps: Option<CapsPlan>,
) -> io::Result<()> {
    std::thread::Builder::new()
        .name("moat-supervise".into())
        .spawn(move || {
            if let Some(caps) = caps {
                // SAFETY: changes this thread's credentials only, for the rest of its
                // life, which is serving this listener.
                if unsafe { caps.apply() }.is_err() {
                    // Dropping the listener fails the supervised calls (ENOSYS): closed.
                    return;
                }
            }
            let _ = super::serve(listener, &rules);
        })
        .map(|_| ())
}

/// `sendmsg` of one byte with `fd` in an `SCM_RIGHTS` message.
unsafe fn send_fd(sock: RawFd, fd: RawFd) -> bool {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    // Aligned for cmsghdr, room for one descriptor.
    let mut control = [0u64; 4];
    let space = libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) as usize;
    let mut msg: libc::msghdr = std::mem::zeroed();
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space;
    let cmsg = libc::CMSG_FIRSTHDR(&msg);
    (*cmsg).cmsg_level = libc::SOL_SOCKET;
    (*cmsg).cmsg_type = libc::SCM_RIGHTS;
    (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as usize;
    std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>(), fd);
    libc::syscall(
        libc::SYS_sendmsg,
        sock,
        &msg as *const libc::msghdr,
        libc::MSG_NOSIGNAL,
    ) == 1
}

/// `recvmsg` of the one-byte message [`send_fd`] sends: its descriptor, close-on-exec, or
/// `None` at end of stream (or, with `MSG_DONTWAIT`, when nothing was sent).
fn receive_fd(sock: RawFd, flags: libc::c_int) -> io::Result<Option<OwnedFd>> {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut control = [0u64; 4];
    // SAFETY: a zeroed msghdr is valid; it is then pointed at live local buffers.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control);
    let n = loop {
        // SAFETY: `msg` points at buffers that live across the call.
        let n = unsafe { libc::recvmsg(sock, &mut msg, flags | libc::MSG_CMSG_CLOEXEC) };
        if n >= 0 {
            break n;
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::Interrupted => continue,
            io::ErrorKind::WouldBlock => return Ok(None),
            _ => return Err(e),
        }
    };
    if n == 0 {
        return Ok(None);
    }
    // SAFETY: the kernel filled `msg`; the macros walk the control buffer it describes.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if cmsg.is_null()
            || (*cmsg).cmsg_level != libc::SOL_SOCKET
            || (*cmsg).cmsg_type != libc::SCM_RIGHTS
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the supervisor channel carried no descriptor",
            ));
        }
        let fd = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>());
        Ok(Some(OwnedFd::from_raw_fd(fd)))
    }
}

/// Starts the supervisor process for `rules`, from the process about to be sandboxed
/// (single-threaded, capabilities already dropped). Returns its pid, or an errno.
///
/// The process is forked twice; the first child reports the supervisor's pid over the
/// channel and exits, and is reaped here. The sandboxed process then names the supervisor
/// its tracer (`PR_SET_PTRACER`), which Yama's restricted ptrace mode requires for the
/// supervisor's `pidfd_getfd` and `process_vm_readv` on a process that is not its
/// descendant.
///
/// # Safety
/// The caller must be single-threaded: the supervisor runs Rust code (it allocates) in a
/// forked copy of it.
pub(crate) unsafe fn fork(
    channel: &Channel,
    rules: &Rules,
    cleanup: Option<&TmpRoot>,
) -> Result<libc::pid_t, i32> {
    let errno = || *libc::__errno_location();
    let middle = libc::fork();
    if middle < 0 {
        return Err(errno());
    }
    if middle == 0 {
        let supervisor = libc::fork();
        if supervisor == 0 {
            supervisor_main(channel, rules, cleanup);
        }
        let ok = supervisor > 0
            && libc::write(
                channel.supervisor.as_raw_fd(),
                (&supervisor as *const libc::pid_t).cast(),
                std::mem::size_of::<libc::pid_t>(),
            ) == std::mem::size_of::<libc::pid_t>() as isize;
        libc::_exit(if ok { 0 } else { 1 });
    }
    let mut status = 0;
    let mut reaped = true;
    while libc::waitpid(middle, &mut status, 0) < 0 {
        match errno() {
            libc::EINTR => continue,
            // SIGCHLD ignored: the kernel reaps the child, perhaps before its report.
            libc::ECHILD => {
                reaped = false;
                break;
            }
            e => return Err(e),
        }
    }
    if !reaped {
        let mut p = libc::pollfd {
            fd: channel.sandboxed.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        libc::poll(&mut p, 1, 5000);
    }
    let mut pid: libc::pid_t = 0;
    let n = libc::recv(
        channel.sandboxed.as_raw_fd(),
        (&mut pid as *mut libc::pid_t).cast(),
        std::mem::size_of::<libc::pid_t>(),
        libc::MSG_DONTWAIT,
    );
    if n != std::mem::size_of::<libc::pid_t>() as isize || pid <= 0 {
        return Err(libc::EAGAIN);
    }
    // EINVAL without Yama: nothing to declare.
    libc::prctl(libc::PR_SET_PTRACER, pid as libc::c_ulong, 0, 0, 0);
    Ok(pid)
}

/// The supervisor process: detaches, waits for the listener, serves it, exits.
unsafe fn supervisor_main(channel: &Channel, rules: &Rules, cleanup: Option<&TmpRoot>) -> ! {
    libc::setsid();
    libc::prctl(libc::PR_SET_NAME, c"moat-supervise".as_ptr(), 0, 0, 0);
    // The terminal's signals are the program's; a stopped supervisor would stall it.
    for sig in [
        libc::SIGINT,
        libc::SIGQUIT,
        libc::SIGHUP,
        libc::SIGTSTP,
        libc::SIGTTIN,
        libc::SIGTTOU,
        libc::SIGPIPE,
    ] {
        libc::signal(sig, libc::SIG_IGN);
    }
    let none: libc::sigset_t = std::mem::zeroed();
    libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
    // Nothing of the launcher's stays open here: a pipe the program's reader waits on
    // must not be held by the supervisor.
    let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
    if null >= 0 {
        for fd in 0..=2 {
            libc::dup2(null, fd);
        }
    }
    // Everything but the channel and the private temporary directory's descriptors (its
    // lock above all, which tells other moats its sandbox lives) goes. The channel moves
    // above those, so that moving it closes none of them.
    let mut keep: Vec<u32> = cleanup.map_or_else(Vec::new, |c| {
        c.descriptors().iter().map(|&fd| fd as u32).collect()
    });
    let sock = keep.iter().copied().max().unwrap_or(2).max(2) + 1;
    if libc::dup2(channel.supervisor.as_raw_fd(), sock as i32) < 0 {
        libc::_exit(1);
    }
    keep.push(sock);
    keep.sort_unstable();
    let mut from = 3u32;
    for fd in keep.iter().copied().chain(std::iter::once(u32::MAX)) {
        if fd > from && libc::syscall(libc::SYS_close_range, from, fd - 1, 0u32) < 0 {
            libc::_exit(1);
        }
        from = fd.saturating_add(1);
    }
    let sock = sock as i32;
    let code = match receive_fd(sock, 0) {
        Ok(Some(listener)) => {
            libc::close(sock);
            let served = super::serve(listener, rules);
            // Every process under the filter is gone (or the listener failed, when the
            // sandbox's calls fail with ENOSYS from now on): its private directory goes.
            let removed = cleanup.map_or(Ok(()), TmpRoot::remove_all);
            match (served, removed) {
                (Ok(()), Ok(())) => 0,
                _ => 1,
            }
        }
        // The sandboxed process failed before installing its filter: nothing ran there.
        Ok(None) | Err(_) => match cleanup.map_or(Ok(()), TmpRoot::remove_all) {
            Ok(()) => 0,
            Err(_) => 1,
        },
    };
    libc::_exit(code)
}
