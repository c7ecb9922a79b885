//! The two calls the supervisor performs: `listen` and `connect`, each decided on what was
//! read from the caller once and performed on a duplicate of the caller's descriptor, so
//! that what was checked is what is done.

use super::caller::{Caller, Errno, Writer};
use super::rules::{ConnectRules, ListenRules};
use std::ffi::CStr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

/// The refusal: what Landlock answers a denied bind or connect.
const REFUSED: Errno = libc::EACCES;

/// `sizeof(struct sockaddr_storage)`: the longest address the kernel accepts.
const ADDRESS_MAX: usize = std::mem::size_of::<libc::sockaddr_storage>();

/// Where `sun_path` starts in `struct sockaddr_un`.
const SUN_PATH: usize = std::mem::offset_of!(libc::sockaddr_un, sun_path);

/// A socket address, as the caller passed it or as the supervisor rewrote it.
#[derive(Clone, Copy)]
pub(super) struct Address {
    bytes: [u8; ADDRESS_MAX],
    len: usize,
}

impl Address {
    fn family(&self) -> Option<i32> {
        (self.len >= 2).then(|| i32::from(u16::from_ne_bytes([self.bytes[0], self.bytes[1]])))
    }

    /// The port of an internet address (same place in `sockaddr_in` and `sockaddr_in6`).
    fn port(&self) -> Option<u16> {
        (self.len >= 4).then(|| u16::from_be_bytes([self.bytes[2], self.bytes[3]]))
    }
}

/// `listen(fd, backlog)`: performed when the socket is bound where the policy allows.
pub(super) fn listen(
    caller: &Caller<'_>,
    rules: &ListenRules,
    args: [u64; 6],
) -> Result<i64, Errno> {
    let sock = caller.descriptor(args[0])?;
    let local = local_address(sock.as_fd())?;
    match local.family() {
        Some(libc::AF_INET) | Some(libc::AF_INET6) => {
            // Port 0: never bound, and listen would let the kernel pick a port.
            match local.port() {
                Some(p) if p != 0 && rules.tcp_ports.contains(p) => {}
                _ => return Err(REFUSED),
            }
        }
        Some(libc::AF_UNIX) => {
            let named = local.len > SUN_PATH && local.bytes[SUN_PATH] != 0;
            if !named && !rules.abstract_unix {
                return Err(REFUSED);
            }
        }
        _ => return Err(REFUSED),
    }
    // SAFETY: a descriptor we own; the backlog is the caller's `int`.
    let r = unsafe { libc::listen(sock.as_raw_fd(), args[1] as i32) };
    result(r)
}

/// What to do with a `connect`.
pub(super) enum Connect {
    /// The answer.
    Done(Result<i64, Errno>),
    /// A connect allowed on a blocking socket: it may take as long as the network does, so
    /// it is performed off the supervisor's main thread.
    Blocking(Pending),
}

/// An allowed connect, ready to perform.
pub(super) struct Pending {
    sock: OwnedFd,
    address: Address,
    /// The socket file the address now names through `/proc/self/fd`, kept open until
    /// the connect is done.
    _target: Option<OwnedFd>,
}

impl Pending {
    /// Performs the connect.
    pub(super) fn perform(self) -> Result<i64, Errno> {
        // SAFETY: the address is `len` initialised bytes of `bytes`.
        let r = unsafe {
            libc::connect(
                self.sock.as_raw_fd(),
                self.address.bytes.as_ptr().cast(),
                self.address.len as libc::socklen_t,
            )
        };
        result(r)
    }
}

/// `connect(fd, addr, addrlen)`: the address is read once, checked, and the connect is
/// made on the duplicate with the copy (a pathname unix address replaced by the socket
/// file the supervisor resolved and checked).
pub(super) fn connect(caller: &Caller<'_>, rules: &ConnectRules, args: [u64; 6]) -> Connect {
    match prepare_connect(caller, rules, args) {
        Ok(p) => {
            if blocking(p.sock.as_fd()) {
                Connect::Blocking(p)
            } else {
                Connect::Done(p.perform())
            }
        }
        Err(e) => Connect::Done(Err(e)),
    }
}

fn prepare_connect(
    caller: &Caller<'_>,
    rules: &ConnectRules,
    args: [u64; 6],
) -> Result<Pending, Errno> {
    let sock = caller.descriptor(args[0])?;
    // The kernel reads addrlen as an int and refuses more than a sockaddr_storage.
    let len = args[2] as u32 as i32;
    if len < 0 || len as usize > ADDRESS_MAX {
        return Err(libc::EINVAL);
    }
    let mut address = Address {
        bytes: [0; ADDRESS_MAX],
        len: len as usize,
    };
    caller.read(args[1], &mut address.bytes[..address.len])?;
    let mut target = None;
    match socket_option(sock.as_fd(), libc::SO_DOMAIN)? {
        libc::AF_UNIX if address.family() == Some(libc::AF_UNIX) && address.len > SUN_PATH => {
            if address.bytes[SUN_PATH] == 0 {
                if !rules.abstract_unix {
                    return Err(REFUSED);
                }
            } else {
                let (file, proc_path) = resolve_unix(caller, rules, &address)?;
                address = proc_path;
                target = Some(file);
            }
        }
        libc::AF_INET | libc::AF_INET6 if address.family() != Some(libc::AF_UNSPEC) => {
            let ports = match socket_option(sock.as_fd(), libc::SO_TYPE)? {
                libc::SOCK_STREAM => &rules.tcp_ports,
                libc::SOCK_DGRAM => &rules.udp_ports,
                _ => &None,
            };
            if let (Some(allowed), Some(port)) = (ports, address.port()) {
                if !allowed.contains(port) {
                    return Err(REFUSED);
                }
            }
        }
        // Anything else is performed as the caller asked: an address the kernel refuses
        // (too short, of another family) gets the kernel's own error.
        _ => {}
    }
    Ok(Pending {
        sock,
        address,
        _target: target,
    })
}

/// Resolves a pathname unix address once, from the caller's root or working directory,
/// checks the socket file against the policy, and returns it with the address that names
/// exactly it (`/proc/self/fd/N`).
fn resolve_unix(
    caller: &Caller<'_>,
    rules: &ConnectRules,
    address: &Address,
) -> Result<(OwnedFd, Address), Errno> {
    let raw = &address.bytes[SUN_PATH..address.len];
    let path = match raw.iter().position(|&b| b == 0) {
        Some(end) => &raw[..end],
        None => raw,
    };
    let mut c_path = [0u8; ADDRESS_MAX + 1];
    c_path[..path.len()].copy_from_slice(path);
    let c_path = CStr::from_bytes_until_nul(&c_path).map_err(|_| libc::EINVAL)?;
    let absolute = path.first() == Some(&b'/');
    let dir = caller.directory(if absolute { c"root" } else { c"cwd" })?;
    // The caller's root stays its root (`..` and absolute symlinks cannot leave it); no
    // magic link of /proc can jump elsewhere.
    let mut resolve = rustix::fs::ResolveFlags::NO_MAGICLINKS;
    if absolute {
        resolve |= rustix::fs::ResolveFlags::IN_ROOT;
    }
    let file = rustix::fs::openat2(
        &dir,
        c_path,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
        resolve,
    )
    .map_err(|e| e.raw_os_error())?;
    let st = rustix::fs::fstat(&file).map_err(|e| e.raw_os_error())?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::Socket {
        // What the kernel answers a connect to a file that is not a socket.
        return Err(libc::ECONNREFUSED);
    }
    let mut proc_path = Address {
        bytes: [0; ADDRESS_MAX],
        len: 0,
    };
    let mut w = Writer(&mut proc_path.bytes[SUN_PATH..], 0);
    use std::fmt::Write;
    write!(w, "/proc/self/fd/{}", file.as_raw_fd()).map_err(|_| libc::EINVAL)?;
    let written = w.1;
    // Where the socket is now, in the supervisor's view of the filesystem (the caller's
    // root is the supervisor's: both run in the same mount namespace and neither can
    // chroot).
    let real = std::fs::read_link(Path::new(
        std::str::from_utf8(&proc_path.bytes[SUN_PATH..SUN_PATH + written])
            .map_err(|_| libc::EINVAL)?,
    ))
    .map_err(|e| e.raw_os_error().unwrap_or(libc::EACCES))?;
    if !rules.allows_unix_path(&real) {
        return Err(REFUSED);
    }
    proc_path.bytes[..2].copy_from_slice(&(libc::AF_UNIX as u16).to_ne_bytes());
    proc_path.len = SUN_PATH + written + 1;
    Ok((file, proc_path))
}

/// The socket's local address.
fn local_address(sock: BorrowedFd<'_>) -> Result<Address, Errno> {
    let mut a = Address {
        bytes: [0; ADDRESS_MAX],
        len: 0,
    };
    let mut len = ADDRESS_MAX as libc::socklen_t;
    // SAFETY: `bytes` has room for `len` bytes, which the kernel updates.
    let r = unsafe { libc::getsockname(sock.as_raw_fd(), a.bytes.as_mut_ptr().cast(), &mut len) };
    result(r)?;
    a.len = (len as usize).min(ADDRESS_MAX);
    Ok(a)
}

/// An integer `SOL_SOCKET` option.
fn socket_option(sock: BorrowedFd<'_>, option: i32) -> Result<i32, Errno> {
    let mut v: i32 = 0;
    let mut len = std::mem::size_of::<i32>() as libc::socklen_t;
    // SAFETY: `v` is an int the kernel writes, `len` its size.
    let r = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            (&mut v as *mut i32).cast(),
            &mut len,
        )
    };
    result(r)?;
    Ok(v)
}

/// Whether the socket's file is in blocking mode (the flag is the open file's, shared
/// with the caller's descriptor).
fn blocking(sock: BorrowedFd<'_>) -> bool {
    // SAFETY: F_GETFL on a descriptor we own.
    let flags = unsafe { libc::fcntl(sock.as_raw_fd(), libc::F_GETFL) };
    flags >= 0 && flags & libc::O_NONBLOCK == 0
}

fn result(r: libc::c_int) -> Result<i64, Errno> {
    if r < 0 {
        Err(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO))
    } else {
        Ok(i64::from(r))
    }
}
