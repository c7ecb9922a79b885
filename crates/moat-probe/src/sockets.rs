//! The probe's operations on what moat's supervisor decides: listen() on every kind of
//! socket, connects to pathname unix sockets, the races a hostile program would run against
//! a check, and attempts on the supervisor itself.

use crate::{arg, check, last, num, path_addr, unix_socket, Outcome, R};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The operations of this module, or `None` for another one.
pub fn run(op: &[String]) -> Option<R> {
    Some(match op[0].as_str() {
        "bind-listen" => num(op, 1).and_then(bind_listen),
        "listen-fd" => listen_fd(op),
        "unix-listen" => unix_listen(op),
        "unix-read" => unix_read(op),
        "unix-pair-send" => unix_pair_send(op),
        "race-listen" => race_listen(op),
        "race-unix" => race_unix(op),
        "steal-fds" => steal_fds(op),
        "ptrace" => ptrace(op),
        "fds" => fds(),
        _ => return None,
    })
}

fn bind_listen(port: u16) -> R {
    let fd = crate::bind(libc::SOCK_STREAM, 0, port)?;
    // SAFETY: a bound socket.
    check(unsafe { libc::listen(fd, 16) })
}

/// `listen(FD)` on a descriptor the probe inherited.
fn listen_fd(op: &[String]) -> R {
    let fd: i32 = num(op, 1)?;
    // SAFETY: plain integers.
    check(unsafe { libc::listen(fd, 16) })
}

fn unix_listen(op: &[String]) -> R {
    let fd = unix_socket()?;
    let (addr, len) = path_addr(arg(op, 1)?)?;
    // SAFETY: valid address.
    check(unsafe { libc::bind(fd, &addr as *const _ as *const libc::sockaddr, len) })?;
    // SAFETY: a bound socket.
    check(unsafe { libc::listen(fd, 16) })
}

/// Connects to a pathname unix socket and prints what the server says first.
fn unix_read(op: &[String]) -> R {
    let fd = connect_unix(arg(op, 1)?)?;
    Ok(read_some(fd))
}

fn connect_unix(path: &str) -> Result<i32, Outcome> {
    let fd = unix_socket()?;
    let (addr, len) = path_addr(path)?;
    // SAFETY: valid address.
    check(unsafe { libc::connect(fd, &addr as *const _ as *const libc::sockaddr, len) })?;
    Ok(fd)
}

fn read_some(fd: i32) -> String {
    let mut buf = [0u8; 64];
    // SAFETY: valid buffer.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    // SAFETY: our descriptor.
    unsafe { libc::close(fd) };
    String::from_utf8_lossy(&buf[..n.max(0) as usize])
        .trim()
        .to_string()
}

/// A datagram from one end of a unix datagram socket pair to a pathname socket.
fn unix_pair_send(op: &[String]) -> R {
    let mut sv = [0i32; 2];
    // SAFETY: room for two descriptors.
    check(unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_DGRAM, 0, sv.as_mut_ptr()) })?;
    let (addr, len) = path_addr(arg(op, 1)?)?;
    let msg = b"moat-probe";
    // SAFETY: valid buffer and address.
    let n = unsafe {
        libc::sendto(
            sv[0],
            msg.as_ptr().cast(),
            msg.len(),
            0,
            &addr as *const _ as *const libc::sockaddr,
            len,
        )
    };
    if n < 0 {
        return Err(last());
    }
    Ok(String::new())
}

/// `race-listen PORT ROUNDS`: one thread keeps swapping descriptor N between a socket
/// listening on the allowed PORT and a fresh unbound socket while the main thread calls
/// listen(N). An unbound socket that ends up listening is an escape (its port was picked
/// by the kernel).
fn race_listen(op: &[String]) -> R {
    let port: u16 = num(op, 1)?;
    let rounds: usize = num(op, 2)?;
    let allowed = crate::bind(libc::SOCK_STREAM, 0, port)?;
    // SAFETY: a bound socket.
    check(unsafe { libc::listen(allowed, 16) })?;
    let slot = new_tcp()?;
    let (mut listened, mut escapes) = (0, 0);
    for _ in 0..rounds {
        let unbound = new_tcp()?;
        // SAFETY: plain integers.
        unsafe { libc::dup2(unbound, slot) };
        let stop = Arc::new(AtomicBool::new(false));
        let started = Arc::new(AtomicBool::new(false));
        let swapper = {
            let stop = Arc::clone(&stop);
            let started = Arc::clone(&started);
            std::thread::spawn(move || {
                started.store(true, Ordering::Relaxed);
                while !stop.load(Ordering::Relaxed) {
                    // SAFETY: plain integers.
                    unsafe {
                        libc::dup2(allowed, slot);
                        libc::dup2(unbound, slot);
                    }
                }
            })
        };
        while !started.load(Ordering::Relaxed) {
            std::hint::spin_loop();
        }
        // SAFETY: plain integers.
        if unsafe { libc::listen(slot, 16) } == 0 {
            listened += 1;
        }
        stop.store(true, Ordering::Relaxed);
        let _ = swapper.join();
        if accepting(unbound) {
            escapes += 1;
        }
        // SAFETY: our descriptor.
        unsafe { libc::close(unbound) };
    }
    Ok(format!("listened={listened} escapes={escapes}"))
}

fn new_tcp() -> Result<i32, Outcome> {
    // SAFETY: plain integers.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        Err(last())
    } else {
        Ok(fd)
    }
}

/// Whether the socket is listening (`SO_ACCEPTCONN`).
fn accepting(fd: i32) -> bool {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: an int-sized option buffer.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ACCEPTCONN,
            (&mut v as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    r == 0 && v != 0
}

/// `race-unix GOOD BAD ROUNDS`: one thread keeps rewriting the address passed to connect
/// between GOOD (allowed) and BAD (not allowed, same length) while the main thread
/// connects. A connection whose server introduces itself as anything but GOOD's is an
/// escape. The servers write their name first thing.
fn race_unix(op: &[String]) -> R {
    let good = arg(op, 1)?;
    let bad = arg(op, 2)?;
    let rounds: usize = num(op, 3)?;
    if good.len() != bad.len() {
        return Err(Outcome::Usage("race-unix: paths of one length".into()));
    }
    let (good_addr, len) = path_addr(good)?;
    let (bad_addr, _) = path_addr(bad)?;
    let good_server = first_words(good)?;
    // The address the main thread passes: the thread writes through a raw pointer on
    // purpose, racing the kernel's (and the supervisor's) read.
    let shared = Box::into_raw(Box::new(good_addr)) as usize;
    let stop = Arc::new(AtomicBool::new(false));
    let flipper = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let p = shared as *mut libc::sockaddr_un;
            while !stop.load(Ordering::Relaxed) {
                // SAFETY: the box lives until after this thread is joined; the tearing of
                // concurrent reads is the point of the test.
                unsafe {
                    std::ptr::write_volatile(p, bad_addr);
                    std::ptr::write_volatile(p, good_addr);
                }
            }
        })
    };
    let (mut good_n, mut escapes, mut refused) = (0, 0, 0);
    for _ in 0..rounds {
        let fd = unix_socket()?;
        // SAFETY: the shared address stays valid; its content may change under us.
        let r = unsafe { libc::connect(fd, shared as *const libc::sockaddr, len) };
        if r == 0 {
            if read_some(fd) == good_server {
                good_n += 1;
            } else {
                escapes += 1;
            }
        } else {
            refused += 1;
            // SAFETY: our descriptor.
            unsafe { libc::close(fd) };
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _ = flipper.join();
    // SAFETY: the box from above, no longer shared.
    drop(unsafe { Box::from_raw(shared as *mut libc::sockaddr_un) });
    Ok(format!("good={good_n} escapes={escapes} refused={refused}"))
}

/// What the server at `path` writes first (outside any race), to recognise it.
fn first_words(path: &str) -> R {
    Ok(read_some(connect_unix(path)?))
}

/// `steal-fds PID`: pidfd_getfd of descriptors 0..32 of PID; prints how many it got.
fn steal_fds(op: &[String]) -> R {
    let pid: i32 = num(op, 1)?;
    // SAFETY: plain integers.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as i32;
    if pidfd < 0 {
        return Err(last());
    }
    let mut got = 0;
    let mut errno = 0;
    for fd in 0..32 {
        // SAFETY: plain integers.
        let r = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd, fd, 0) };
        if r >= 0 {
            got += 1;
        } else {
            errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
        }
    }
    if got == 0 {
        return Err(Outcome::Errno(errno));
    }
    Ok(format!("got={got}"))
}

/// `ptrace PID`: PTRACE_ATTACH (and detach when it worked).
fn ptrace(op: &[String]) -> R {
    let pid: i32 = num(op, 1)?;
    // SAFETY: plain integers.
    let r = unsafe { libc::ptrace(libc::PTRACE_SEIZE, pid, 0, 0) };
    if r < 0 {
        return Err(last());
    }
    // SAFETY: as above.
    unsafe { libc::ptrace(libc::PTRACE_DETACH, pid, 0, 0) };
    Ok(String::new())
}

/// The targets of the probe's open descriptors, comma-separated.
fn fds() -> R {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc/self/fd").map_err(crate::io)? {
        let e = e.map_err(crate::io)?;
        if let Ok(t) = std::fs::read_link(e.path()) {
            out.push(format!(
                "{}={}",
                e.file_name().to_string_lossy(),
                t.display()
            ));
        }
    }
    Ok(out.join(","))
}
