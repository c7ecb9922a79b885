//! `moat-probe`: tries operations and prints the kernel's answer, one line per operation.
//!
//! Used by moat's tests at every enforcement point (process, container, function call):
//! the probe runs inside the sandbox and the test asserts what it printed.
//!
//! ```text
//! moat-probe read /etc/hostname \; write /etc/passwd \; bind-tcp 8080
//! ok
//! EACCES
//! EACCES
//! ```
//! Operations are separated by a lone `;` argument. The exit status is 0 when every
//! operation succeeded and 1 otherwise; usage errors exit 2.

mod sockets;
mod udp;

use std::ffi::CString;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;

const USAGE: &str = "usage: moat-probe OP ARGS... [; OP ARGS...]
ops: read PATH | list DIR | write PATH | create PATH | mkdir PATH | remove PATH | rmdir PATH
     rename FROM TO | link FROM TO | symlink TARGET PATH | mkfifo PATH | truncate PATH
     exec PATH [ARGS...] (runs it, waits, prints its exit status)
     bind-tcp PORT | connect-tcp PORT | listen-tcp PORT SECONDS | bind-udp PORT
     socket-udp | socket-raw | socket-packet | socket-mptcp | socket-sctp | socket-tcp
     listen-unbound SECONDS (listen() without bind(): prints `listening PORT`, serves)
     signal PID [SIGNAL] | abstract-connect NAME | abstract-listen NAME SECONDS
     unix-connect PATH | unix-send PATH (a datagram) | ioctl-tty PATH | sleep SECONDS | getpid
     tiocsti FD TEXT (pushes TEXT into the terminal on FD) | caps (the five sets, in hex)
     chown PATH UID | perf-event PID | bpf-map | sethostname NAME
     bind-listen PORT | listen-fd FD | unix-listen PATH | unix-read PATH (prints what the
     server says) | unix-pair-send PATH (from a datagram socketpair) | fds
     race-listen PORT ROUNDS | race-unix GOOD BAD ROUNDS (threads racing the checks)
     steal-fds PID (pidfd_getfd) | ptrace PID";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        eprintln!("{USAGE}");
        std::process::exit(2);
    }
    let mut all_ok = true;
    for op in args.split(|a| a == ";") {
        if op.is_empty() {
            continue;
        }
        let result = run(op);
        let line = match &result {
            Ok(extra) if extra.is_empty() => "ok".to_string(),
            Ok(extra) => format!("ok {extra}"),
            Err(Outcome::Errno(e)) => errno_name(*e),
            Err(Outcome::Usage(m)) => {
                eprintln!("moat-probe: {m}\n{USAGE}");
                std::process::exit(2);
            }
        };
        all_ok &= result.is_ok();
        println!("{line}");
        let _ = std::io::stdout().flush();
    }
    std::process::exit(if all_ok { 0 } else { 1 });
}

enum Outcome {
    Errno(i32),
    Usage(String),
}

type R = Result<String, Outcome>;

fn last() -> Outcome {
    Outcome::Errno(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
}

fn io(e: std::io::Error) -> Outcome {
    Outcome::Errno(e.raw_os_error().unwrap_or(0))
}

fn cstr(s: &str) -> Result<CString, Outcome> {
    CString::new(s).map_err(|_| Outcome::Usage(format!("NUL in {s:?}")))
}

fn arg(op: &[String], i: usize) -> Result<&str, Outcome> {
    op.get(i)
        .map(String::as_str)
        .ok_or_else(|| Outcome::Usage(format!("{} needs more arguments", op[0])))
}

fn num<T: std::str::FromStr>(op: &[String], i: usize) -> Result<T, Outcome> {
    arg(op, i)?
        .parse()
        .map_err(|_| Outcome::Usage(format!("{}: bad number", op[0])))
}

fn check(r: libc::c_int) -> R {
    if r < 0 {
        Err(last())
    } else {
        Ok(String::new())
    }
}

fn run(op: &[String]) -> R {
    if let Some(r) = sockets::run(op) {
        return r;
    }
    if let Some(r) = udp::run(op) {
        return r;
    }
    match op[0].as_str() {
        "read" => {
            let mut f = std::fs::File::open(arg(op, 1)?).map_err(io)?;
            let mut buf = [0u8; 1];
            f.read(&mut buf).map_err(io)?;
            Ok(String::new())
        }
        "list" => {
            let n = std::fs::read_dir(arg(op, 1)?).map_err(io)?.count();
            Ok(n.to_string())
        }
        "write" => {
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(arg(op, 1)?)
                .map_err(io)?;
            f.write_all(b"x").map_err(io)?;
            Ok(String::new())
        }
        "create" => {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(arg(op, 1)?)
                .map_err(io)?;
            Ok(String::new())
        }
        "mkdir" => std::fs::create_dir(arg(op, 1)?)
            .map(|_| String::new())
            .map_err(io),
        "remove" => std::fs::remove_file(arg(op, 1)?)
            .map(|_| String::new())
            .map_err(io),
        "rmdir" => std::fs::remove_dir(arg(op, 1)?)
            .map(|_| String::new())
            .map_err(io),
        "rename" => std::fs::rename(arg(op, 1)?, arg(op, 2)?)
            .map(|_| String::new())
            .map_err(io),
        "link" => std::fs::hard_link(arg(op, 1)?, arg(op, 2)?)
            .map(|_| String::new())
            .map_err(io),
        "symlink" => std::os::unix::fs::symlink(arg(op, 1)?, arg(op, 2)?)
            .map(|_| String::new())
            .map_err(io),
        "mkfifo" => {
            let p = cstr(arg(op, 1)?)?;
            // SAFETY: valid C string.
            check(unsafe { libc::mkfifo(p.as_ptr(), 0o600) })
        }
        "truncate" => {
            let p = cstr(arg(op, 1)?)?;
            // SAFETY: valid C string.
            check(unsafe { libc::truncate(p.as_ptr(), 0) })
        }
        "exec" => {
            let status = std::process::Command::new(arg(op, 1)?)
                .args(&op[2..])
                .status()
                .map_err(io)?;
            Ok(format!("status={}", status.code().unwrap_or(-1)))
        }
        "bind-tcp" => bind(libc::SOCK_STREAM, 0, num(op, 1)?).map(|_| String::new()),
        "bind-udp" => bind(libc::SOCK_DGRAM, 0, num(op, 1)?).map(|_| String::new()),
        "listen-tcp" => {
            let fd = bind(libc::SOCK_STREAM, 0, num(op, 1)?)?;
            // SAFETY: fd is a bound socket.
            check(unsafe { libc::listen(fd, 16) })?;
            println!("listening");
            let _ = std::io::stdout().flush();
            serve(fd, num(op, 2)?);
            Ok(String::new())
        }
        "listen-unbound" => {
            // SAFETY: plain integers.
            let fd =
                unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
            if fd < 0 {
                return Err(last());
            }
            // SAFETY: an unbound socket: the kernel picks the port (autobind).
            check(unsafe { libc::listen(fd, 16) })?;
            // SAFETY: zeroed sockaddr_in is a valid out-buffer.
            let mut a: libc::sockaddr_in = unsafe { std::mem::zeroed() };
            let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            // SAFETY: valid buffer and length.
            check(unsafe {
                libc::getsockname(fd, &mut a as *mut _ as *mut libc::sockaddr, &mut len)
            })?;
            println!("listening {}", u16::from_be(a.sin_port));
            let _ = std::io::stdout().flush();
            serve(fd, num(op, 1)?);
            Ok(String::new())
        }
        "connect-tcp" => connect_tcp(num(op, 1)?),
        "socket-udp" => socket(libc::AF_INET, libc::SOCK_DGRAM, 0),
        "socket-tcp" => socket(libc::AF_INET, libc::SOCK_STREAM, 0),
        "socket-raw" => socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP),
        "socket-packet" => socket(libc::AF_PACKET, libc::SOCK_RAW, 0),
        "socket-mptcp" => socket(libc::AF_INET, libc::SOCK_STREAM, 262),
        "socket-sctp" => socket(libc::AF_INET, libc::SOCK_STREAM, libc::IPPROTO_SCTP),
        "signal" => {
            let pid: i32 = num(op, 1)?;
            let sig: i32 = if op.len() > 2 { num(op, 2)? } else { 0 };
            // SAFETY: kill takes plain integers.
            check(unsafe { libc::kill(pid, sig) })
        }
        "abstract-connect" => {
            let fd = unix_socket()?;
            let (addr, len) = abstract_addr(arg(op, 1)?);
            // SAFETY: addr is a valid sockaddr_un of length len.
            check(unsafe { libc::connect(fd, &addr as *const _ as *const libc::sockaddr, len) })
        }
        "abstract-listen" => {
            let fd = unix_socket()?;
            let (addr, len) = abstract_addr(arg(op, 1)?);
            // SAFETY: as above.
            check(unsafe { libc::bind(fd, &addr as *const _ as *const libc::sockaddr, len) })?;
            // SAFETY: bound socket.
            check(unsafe { libc::listen(fd, 16) })?;
            println!("listening");
            let _ = std::io::stdout().flush();
            std::thread::sleep(std::time::Duration::from_secs(num(op, 2)?));
            Ok(String::new())
        }
        "unix-connect" => {
            let fd = unix_socket()?;
            let (addr, len) = path_addr(arg(op, 1)?)?;
            // SAFETY: valid address.
            check(unsafe { libc::connect(fd, &addr as *const _ as *const libc::sockaddr, len) })
        }
        "unix-send" => {
            // SAFETY: plain integers.
            let fd =
                unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
            if fd < 0 {
                return Err(last());
            }
            let (addr, len) = path_addr(arg(op, 1)?)?;
            let msg = b"moat-probe";
            // SAFETY: valid buffer and address.
            let n = unsafe {
                libc::sendto(
                    fd,
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
        "tiocsti" => {
            let fd: i32 = num(op, 1)?;
            for b in arg(op, 2)?.bytes() {
                let c = b as libc::c_char;
                // SAFETY: TIOCSTI reads one char from a valid pointer.
                check(unsafe { libc::ioctl(fd, libc::TIOCSTI, &c) })?;
            }
            Ok(String::new())
        }
        "caps" => {
            let mut header = [0x2008_0522u32, 0];
            let mut data = [0u32; 6];
            // SAFETY: version 3 header and room for its two words of three sets.
            let r =
                unsafe { libc::syscall(libc::SYS_capget, header.as_mut_ptr(), data.as_mut_ptr()) };
            check(r as i32)?;
            let set = |i: usize| u64::from(data[i]) | u64::from(data[i + 3]) << 32;
            let (mut bounding, mut ambient) = (0u64, 0u64);
            for cap in 0..64u64 {
                // SAFETY: plain integers; EINVAL past the last capability.
                if unsafe { libc::prctl(libc::PR_CAPBSET_READ, cap, 0, 0, 0) } == 1 {
                    bounding |= 1 << cap;
                }
                // SAFETY: as above.
                let a = unsafe {
                    libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_IS_SET, cap, 0, 0)
                };
                if a == 1 {
                    ambient |= 1 << cap;
                }
            }
            Ok(format!(
                "eff={:x} prm={:x} inh={:x} bnd={bounding:x} amb={ambient:x}",
                set(0),
                set(1),
                set(2)
            ))
        }
        "chown" => {
            let path = cstr(arg(op, 1)?)?;
            let uid: u32 = num(op, 2)?;
            // SAFETY: valid C string; -1 leaves the group.
            check(unsafe { libc::chown(path.as_ptr(), uid, u32::MAX) })
        }
        "perf-event" => {
            let pid: i32 = num(op, 1)?;
            // struct perf_event_attr, ABI version 0 (64 bytes): a software CPU-clock counter
            // (this VM has no hardware PMU).
            let mut attr = [0u8; 64];
            attr[0..4].copy_from_slice(&1u32.to_ne_bytes()); // PERF_TYPE_SOFTWARE
            attr[4..8].copy_from_slice(&64u32.to_ne_bytes()); // size
                                                              // config 0 = PERF_COUNT_SW_CPU_CLOCK; flags 0: enabled, kernel and user.
                                                              // SAFETY: a valid attribute buffer; the result is a descriptor or -1.
            let fd = unsafe {
                libc::syscall(libc::SYS_perf_event_open, attr.as_ptr(), pid, -1, -1, 0u64)
            };
            if fd < 0 {
                return Err(last());
            }
            Ok(String::new())
        }
        "bpf-map" => {
            // union bpf_attr for BPF_MAP_CREATE: map_type, key_size, value_size, max_entries.
            let mut attr = [0u32; 32];
            attr[0] = 2; // BPF_MAP_TYPE_ARRAY
            attr[1] = 4;
            attr[2] = 8;
            attr[3] = 1;
            // SAFETY: a valid attribute buffer of the size given.
            let fd = unsafe {
                libc::syscall(
                    libc::SYS_bpf,
                    0,
                    attr.as_ptr(),
                    std::mem::size_of_val(&attr),
                )
            };
            if fd < 0 {
                return Err(last());
            }
            Ok(String::new())
        }
        "sethostname" => {
            let name = arg(op, 1)?;
            // SAFETY: a valid buffer and its length.
            check(unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) })
        }
        "ioctl-tty" => {
            let f = std::fs::OpenOptions::new()
                .read(true)
                .open(arg(op, 1)?)
                .map_err(io)?;
            use std::os::fd::AsRawFd;
            // SAFETY: zeroed winsize is a valid out-buffer for TIOCGWINSZ.
            let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
            // SAFETY: valid fd and buffer.
            check(unsafe { libc::ioctl(f.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) })
        }
        "sleep" => {
            std::thread::sleep(std::time::Duration::from_millis(num::<u64>(op, 1)? * 1000));
            Ok(String::new())
        }
        "getpid" => Ok(std::process::id().to_string()),
        other => Err(Outcome::Usage(format!("unknown operation `{other}`"))),
    }
}

fn socket(domain: i32, ty: i32, proto: i32) -> R {
    // SAFETY: socket takes plain integers.
    let fd = unsafe { libc::socket(domain, ty, proto) };
    if fd < 0 {
        return Err(last());
    }
    // SAFETY: fd was just created.
    unsafe { libc::close(fd) };
    Ok(String::new())
}

fn loopback(port: u16) -> libc::sockaddr_in {
    // SAFETY: zeroed sockaddr_in is valid.
    let mut a: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    a.sin_family = libc::AF_INET as libc::sa_family_t;
    a.sin_port = port.to_be();
    a.sin_addr.s_addr = u32::from_be_bytes([127, 0, 0, 1]).to_be();
    a
}

fn bind(ty: i32, proto: i32, port: u16) -> Result<i32, Outcome> {
    // SAFETY: plain integers.
    let fd = unsafe { libc::socket(libc::AF_INET, ty | libc::SOCK_CLOEXEC, proto) };
    if fd < 0 {
        return Err(last());
    }
    let one: libc::c_int = 1;
    // SAFETY: valid option buffer.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_REUSEADDR,
            &one as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    let a = loopback(port);
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: valid address.
    if unsafe { libc::bind(fd, &a as *const _ as *const libc::sockaddr, len) } < 0 {
        return Err(last());
    }
    Ok(fd)
}

fn connect_tcp(port: u16) -> R {
    // SAFETY: plain integers.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(last());
    }
    let a = loopback(port);
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: valid address.
    check(unsafe { libc::connect(fd, &a as *const _ as *const libc::sockaddr, len) })
}

/// Accepts connections for `seconds`, answering each with "moat-probe\n".
fn serve(fd: i32, seconds: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    // SAFETY: fd is a listening socket; make accept non-blocking so the deadline holds.
    unsafe { libc::fcntl(fd, libc::F_SETFL, libc::O_NONBLOCK) };
    while std::time::Instant::now() < deadline {
        // SAFETY: plain accept with null address.
        let c = unsafe { libc::accept(fd, std::ptr::null_mut(), std::ptr::null_mut()) };
        if c >= 0 {
            let msg = b"moat-probe\n";
            // SAFETY: valid buffer.
            unsafe {
                libc::write(c, msg.as_ptr() as *const libc::c_void, msg.len());
                libc::close(c);
            }
        } else {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}

fn unix_socket() -> Result<i32, Outcome> {
    // SAFETY: plain integers.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        Err(last())
    } else {
        Ok(fd)
    }
}

fn path_addr(path: &str) -> Result<(libc::sockaddr_un, libc::socklen_t), Outcome> {
    // SAFETY: zeroed sockaddr_un is valid.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = std::ffi::OsStr::new(path).as_bytes();
    if bytes.len() >= addr.sun_path.len() {
        return Err(Outcome::Usage("path too long".into()));
    }
    for (d, s) in addr.sun_path.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    Ok((
        addr,
        std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t,
    ))
}

fn abstract_addr(name: &str) -> (libc::sockaddr_un, libc::socklen_t) {
    // SAFETY: zeroed sockaddr_un is valid.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = name.as_bytes();
    let n = bytes.len().min(addr.sun_path.len() - 1);
    for (d, s) in addr.sun_path[1..=n].iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    let len = (std::mem::size_of::<libc::sa_family_t>() + 1 + n) as libc::socklen_t;
    (addr, len)
}

fn errno_name(e: i32) -> String {
    let name = match e {
        libc::EACCES => "EACCES",
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EXDEV => "EXDEV",
        libc::EINVAL => "EINVAL",
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::EADDRINUSE => "EADDRINUSE",
        libc::ESRCH => "ESRCH",
        libc::ENOSYS => "ENOSYS",
        libc::EAFNOSUPPORT => "EAFNOSUPPORT",
        libc::EPROTONOSUPPORT => "EPROTONOSUPPORT",
        libc::EEXIST => "EEXIST",
        libc::ENOTTY => "ENOTTY",
        libc::EISDIR => "EISDIR",
        libc::ENOTDIR => "ENOTDIR",
        libc::EBADF => "EBADF",
        libc::ENOTSOCK => "ENOTSOCK",
        _ => return format!("errno {e}"),
    };
    name.to_string()
}
