//! The supervisor: decides the calls Landlock cannot judge yet, and performs them.
//!
//! Two controls need to see something at the moment of a call that no Landlock ABI up to
//! this kernel's does: `listen()` (no Landlock right covers it, and on a socket that was
//! never bound the kernel picks a port without the bind check), and, before ABI 9, which
//! pathname unix socket a `connect()` reaches. Seccomp sees neither the socket behind a
//! descriptor nor the address behind a pointer, so under a policy that needs them every
//! `listen()`, and every `connect()`, goes to this supervisor through seccomp user
//! notification (the `Supervise` rows of [`crate::seccomp::TABLE`]).
//!
//! For each call the supervisor pins the calling thread ([`caller`]), reads what it needs
//! from it once (the address), takes a duplicate of the caller's descriptor
//! (`pidfd_getfd`), decides on what it read, and performs the call itself on the duplicate
//! with its own copy of the address ([`calls`]), answering with the result. It never lets
//! the caller's call go on (`SECCOMP_USER_NOTIF_FLAG_CONTINUE`): another thread of the
//! caller could change the descriptor or the address between the decision and the call.
//! A pathname unix address is resolved once, from the caller's root or working directory,
//! to the socket file, which is checked against the policy and then connected to through
//! `/proc/self/fd`, so the connection reaches exactly the file that was checked.
//!
//! Because the supervisor runs outside the sandbox's Landlock domain, Landlock does not
//! judge what it performs: it applies the policy's connect ports and the abstract-socket
//! scope itself ([`Rules`]). It runs with the sandboxed program's user, groups and
//! capabilities: `moat run` starts it after dropping capabilities ([`launch`]); the
//! watchdog serves each call's notifications from a thread that has dropped them.
//!
//! If the supervisor dies, the kernel fails every supervised call with `ENOSYS`: the
//! sandbox stays closed. It ends when the last process under the filter has.

mod caller;
mod calls;
pub mod launch;
mod pool;
mod rules;

pub use rules::{ConnectRules, ListenRules, Ports, Rules};

use crate::notify::{receive, respond, Notification};
use caller::{Caller, Unpinned};
use calls::Connect;
use pool::Pool;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

/// Whether this kernel can run the supervisor: `pidfd_getfd` (Linux 5.6), the newest call
/// it needs, exists. One system call, made only for policies that need a supervisor.
pub fn available() -> bool {
    // SAFETY: no pointer; an invalid pidfd, which a kernel that knows the call answers
    // with EBADF.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_getfd, -1, 0, 0) };
    r < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EBADF)
}

/// Answers the notifications of `listener` by `rules` until no process is left under its
/// filter.
pub fn serve(listener: OwnedFd, rules: &Rules) -> io::Result<()> {
    let listener = Arc::new(listener);
    let server = Server::new(Arc::clone(&listener), Arc::new(rules.clone()));
    loop {
        let mut p = libc::pollfd {
            fd: listener.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut p, 1, -1) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if p.revents & libc::POLLIN != 0 {
            if let Some(n) = receive(&listener)? {
                server.handle(&n);
            }
        } else if p.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
            // Every process under the filter is gone.
            return Ok(());
        }
    }
}

/// Decides and answers the supervised calls of one listener. [`serve`] runs one on its
/// own listener; `moat run --explain`'s tracer, whose listener also carries the calls it
/// only observes, hands it those [`Server::decides`].
pub struct Server {
    listener: Arc<OwnedFd>,
    rules: Arc<Rules>,
    pool: Pool,
}

impl Server {
    /// A server answering on `listener` by `rules`.
    pub fn new(listener: Arc<OwnedFd>, rules: Arc<Rules>) -> Server {
        Server {
            pool: Pool::new(Arc::clone(&listener)),
            listener,
            rules,
        }
    }

    /// Whether `n` is a call the rules decide (`listen` or `connect`, when supervised).
    pub fn decides(&self, n: &Notification) -> bool {
        let nr = i64::from(n.data.nr);
        (nr == libc::SYS_listen && self.rules.listen.is_some())
            || (nr == libc::SYS_connect && self.rules.connect.is_some())
    }

    /// Decides `n`, performs it if allowed, and answers it (a blocking connect from a
    /// worker thread, later).
    pub fn handle(&self, n: &Notification) {
        let listener = &*self.listener;
        let caller = match Caller::pin(listener, n) {
            Ok(c) => c,
            Err(Unpinned::Gone) => return,
            Err(Unpinned::Refused(e)) => return respond(listener, n.id, Err(e)),
        };
        let args = n.data.args;
        let nr = i64::from(n.data.nr);
        let answer = match (&self.rules.listen, &self.rules.connect) {
            (Some(l), _) if nr == libc::SYS_listen => calls::listen(&caller, l, args),
            (_, Some(c)) if nr == libc::SYS_connect => match calls::connect(&caller, c, args) {
                Connect::Done(r) => r,
                Connect::Blocking(pending) => return self.pool.submit(n.id, pending),
            },
            // A call the rules do not cover (a filter and rules out of step): refused.
            _ => Err(libc::EACCES),
        };
        respond(listener, n.id, answer);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.pool.close();
    }
}
