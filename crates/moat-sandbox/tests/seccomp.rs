//! The seccomp filter against the real kernel, one row of its table at a time.
//!
//! A filter cannot be removed once installed, so every check runs in a forked child: the child
//! installs the filter, makes the calls and writes one `i32` per call into a pipe (0 for
//! success, otherwise the errno); the parent asserts. The child only uses libc calls and the
//! filter itself (glibc's malloc is safe after fork), and leaves with `_exit`, so the test
//! harness is never run twice.
//!
//! The tests run as root: without the filter, raw and packet sockets would succeed, so an
//! `EACCES` can only come from the filter (`baseline_*` checks exactly that).

use std::ffi::CString;
use std::fs::File;
use std::io::Read;
use std::os::fd::FromRawFd;

use libc::c_int;
use moat_sandbox::seccomp::Seal;

const EACCES: i32 = libc::EACCES;
const OK: i32 = 0;

// Socket types libc does not export for every Linux target (values from linux/net.h).
const SOCK_RDM: c_int = 4;
const SOCK_SEQPACKET: c_int = 5;
const SOCK_DCCP: c_int = 6;
const SOCK_PACKET: c_int = 10;
const FLAGS: c_int = libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;

/// One call the child makes.
#[derive(Debug, Clone, Copy)]
enum Probe {
    /// `socket(domain, type, protocol)`.
    Socket(c_int, c_int, c_int),
    /// `socketpair(AF_UNIX, SOCK_STREAM, 0)`.
    UnixPair,
    /// The x32 ABI alias of `socket` (`0x4000_0000 | SYS_socket`).
    #[cfg(target_arch = "x86_64")]
    X32Socket(c_int, c_int, c_int),
    /// The x32 ABI alias of another syscall, with arguments no kernel accepts (-1, 0, ...),
    /// so that it cannot succeed even where x32 exists.
    #[cfg(target_arch = "x86_64")]
    X32Other(libc::c_long),
    /// `io_uring_setup(4, &params)`.
    IoUringSetup,
    /// `io_uring_enter(-1, ...)`: EBADF unless refused.
    IoUringEnter,
    /// `io_uring_register(-1, 0, NULL, 0)`: EINVAL or EBADF unless refused.
    IoUringRegister,
    /// `prctl(PR_GET_NO_NEW_PRIVS)`: 0 when set, -1 when not.
    NoNewPrivs,
    /// `socket(AF_INET, SOCK_STREAM)` then `listen()` without `bind()` (autobind).
    ListenUnbound,
    /// `ioctl(TIOCSTI)` on the slave of a new pseudo-terminal (root may push into any
    /// terminal; the pty is private to the probe, so nothing reaches a real shell).
    TiocSti,
    /// `ioctl(TIOCGWINSZ)` on the same kind of pty: an ordinary terminal ioctl.
    TiocGwinsz,
    /// `msgget(IPC_PRIVATE)`: a SysV message queue (removed again when created).
    MsgGet,
    /// `socket(AF_NETLINK, SOCK_RAW, NETLINK_SOCK_DIAG)`.
    SockDiag,
}

/// A new pty pair's slave, or the errno of the step that failed.
///
/// # Safety
/// Plain system calls; the master is leaked into the probe child, which exits soon.
unsafe fn pty_slave() -> Result<c_int, i32> {
    let master = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY);
    if master < 0 || libc::grantpt(master) != 0 || libc::unlockpt(master) != 0 {
        return Err(*libc::__errno_location());
    }
    let mut name = [0 as libc::c_char; 64];
    if libc::ptsname_r(master, name.as_mut_ptr(), name.len()) != 0 {
        return Err(*libc::__errno_location());
    }
    let slave = libc::open(name.as_ptr(), libc::O_RDWR | libc::O_NOCTTY);
    if slave < 0 {
        return Err(*libc::__errno_location());
    }
    Ok(slave)
}

impl Probe {
    /// Makes the call; 0 on success, the errno otherwise. Async-signal-safe.
    fn run(self) -> i32 {
        // SAFETY: plain syscalls on valid arguments; every descriptor created is closed.
        unsafe {
            let fd: libc::c_long = match self {
                Probe::Socket(d, t, p) => libc::socket(d, t, p).into(),
                Probe::UnixPair => {
                    let mut fds = [-1; 2];
                    let rc =
                        libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, fds.as_mut_ptr());
                    if rc == 0 {
                        libc::close(fds[1]);
                    }
                    let fd = if rc == 0 { fds[0] } else { -1 };
                    fd.into()
                }
                #[cfg(target_arch = "x86_64")]
                Probe::X32Socket(d, t, p) => libc::syscall(0x4000_0000 | libc::SYS_socket, d, t, p),
                #[cfg(target_arch = "x86_64")]
                Probe::X32Other(nr) => libc::syscall(0x4000_0000 | nr, -1, 0, 0, 0, 0, 0),
                Probe::IoUringSetup => {
                    // struct io_uring_params is 120 bytes; all zero asks for defaults.
                    let mut params = [0u64; 15];
                    libc::syscall(libc::SYS_io_uring_setup, 4u32, params.as_mut_ptr())
                }
                Probe::IoUringEnter => libc::syscall(libc::SYS_io_uring_enter, -1, 0, 0, 0, 0, 0),
                Probe::IoUringRegister => libc::syscall(libc::SYS_io_uring_register, -1, 0, 0, 0),
                Probe::NoNewPrivs => {
                    let set = libc::prctl(libc::PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1;
                    return if set { OK } else { -1 };
                }
                Probe::ListenUnbound => {
                    let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
                    if fd < 0 {
                        return *libc::__errno_location();
                    }
                    let r = libc::listen(fd, 1);
                    let e = *libc::__errno_location();
                    libc::close(fd);
                    return if r == 0 { OK } else { e };
                }
                Probe::TiocSti | Probe::TiocGwinsz => {
                    let slave = match pty_slave() {
                        Ok(fd) => fd,
                        Err(e) => return e,
                    };
                    let c: libc::c_char = b'x' as libc::c_char;
                    let mut ws: libc::winsize = std::mem::zeroed();
                    let r = if matches!(self, Probe::TiocSti) {
                        libc::ioctl(slave, libc::TIOCSTI, &c)
                    } else {
                        libc::ioctl(slave, libc::TIOCGWINSZ, &mut ws)
                    };
                    let e = *libc::__errno_location();
                    libc::close(slave);
                    return if r == 0 { OK } else { e };
                }
                Probe::MsgGet => {
                    let id = libc::msgget(libc::IPC_PRIVATE, libc::IPC_CREAT | 0o600);
                    if id < 0 {
                        return *libc::__errno_location();
                    }
                    libc::msgctl(id, libc::IPC_RMID, std::ptr::null_mut());
                    return OK;
                }
                Probe::SockDiag => libc::socket(libc::AF_NETLINK, libc::SOCK_RAW, 4).into(),
            };
            if fd < 0 {
                return *libc::__errno_location();
            }
            if !matches!(self, Probe::IoUringEnter | Probe::IoUringRegister) {
                libc::close(fd as c_int);
            }
            OK
        }
    }
}

/// How a forked child ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    Exited(i32),
    Signaled(i32),
}

fn fork_or_panic() -> libc::pid_t {
    // SAFETY: the child only runs async-signal-safe code (plus glibc malloc, fork-safe) and
    // leaves with _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    pid
}

fn wait(pid: libc::pid_t) -> End {
    let mut status = 0;
    // SAFETY: waiting for our own child.
    let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(rc, pid, "waitpid: {}", std::io::Error::last_os_error());
    if libc::WIFEXITED(status) {
        End::Exited(libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        End::Signaled(libc::WTERMSIG(status))
    } else {
        panic!("unexpected wait status {status:#x}")
    }
}

/// A pipe as (read end as a File, raw write end).
fn pipe() -> (File, c_int) {
    let mut fds = [-1; 2];
    // SAFETY: fds has room for two descriptors.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "pipe2: {}", std::io::Error::last_os_error());
    // SAFETY: fds[0] was just created and is owned by nobody else.
    (unsafe { File::from_raw_fd(fds[0]) }, fds[1])
}

fn write_all(fd: c_int, bytes: &[u8]) {
    let mut done = 0;
    while done < bytes.len() {
        // SAFETY: the slice is valid for its length.
        let n = unsafe { libc::write(fd, bytes[done..].as_ptr().cast(), bytes.len() - done) };
        if n <= 0 {
            // SAFETY: leaving the child; the parent sees a short read.
            unsafe { libc::_exit(101) };
        }
        done += n as usize;
    }
}

/// Child exit code when installing the filter failed.
const INSTALL_FAILED: i32 = 100;

/// Runs `probes` in a forked child, after installing `filter` if given.
fn probe(filter: Option<Seal>, probes: &[Probe]) -> Vec<i32> {
    let (mut read_end, write_end) = pipe();
    let pid = fork_or_panic();
    if pid == 0 {
        if let Some(filter) = filter {
            if filter.install().is_err() {
                // SAFETY: leaving the child.
                unsafe { libc::_exit(INSTALL_FAILED) };
            }
        }
        for probe in probes {
            write_all(write_end, &probe.run().to_ne_bytes());
        }
        // SAFETY: leaving the child without running the harness's destructors.
        unsafe { libc::_exit(0) };
    }
    // SAFETY: the parent's copy of the write end is ours to close.
    unsafe { libc::close(write_end) };
    let mut bytes = Vec::new();
    read_end.read_to_end(&mut bytes).expect("read from child");
    assert_eq!(wait(pid), End::Exited(0), "child with {filter:?} failed");
    let results: Vec<i32> = bytes
        .chunks_exact(4)
        .map(|chunk| i32::from_ne_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]))
        .collect();
    assert_eq!(results.len(), probes.len(), "short report from child");
    results
}

fn describe(code: i32) -> String {
    match code {
        OK => "ok".into(),
        -1 => "not set".into(),
        errno => format!("{} ({errno})", std::io::Error::from_raw_os_error(errno)),
    }
}

/// Runs the probes under `filter` and asserts each result, listing every mismatch.
fn check(filter: Seal, cases: &[(Probe, i32)]) {
    let probes: Vec<Probe> = cases.iter().map(|(p, _)| *p).collect();
    let got = probe(Some(filter), &probes);
    let mismatches: Vec<String> = cases
        .iter()
        .zip(&got)
        .filter(|((_, want), got)| want != *got)
        .map(|((p, want), got)| format!("{p:?}: got {}, want {}", describe(*got), describe(*want)))
        .collect();
    assert!(
        mismatches.is_empty(),
        "{filter:?}:\n  {}",
        mismatches.join("\n  ")
    );
}

/// The network sealed, UDP refused: what `moat run --ro ...` installs for sockets.
const NO_UDP: Seal = Seal {
    network: true,
    allow_udp: false,
    unix: false,
    listen: false,
    ipc: false,
    supervise_listen: false,
    supervise_connect: false,
};
/// The network sealed, UDP allowed.
const UDP: Seal = Seal {
    allow_udp: true,
    ..NO_UDP
};
/// No conditional row: what every sandbox installs.
const ALWAYS: Seal = Seal {
    network: false,
    allow_udp: false,
    unix: false,
    listen: false,
    ipc: false,
    supervise_listen: false,
    supervise_connect: false,
};

fn udp_cases(want: i32) -> Vec<(Probe, i32)> {
    use libc::{AF_INET, AF_INET6, IPPROTO_UDP, SOCK_DGRAM};
    vec![
        (Probe::Socket(AF_INET, SOCK_DGRAM, 0), want),
        (Probe::Socket(AF_INET, SOCK_DGRAM, IPPROTO_UDP), want),
        (Probe::Socket(AF_INET6, SOCK_DGRAM, 0), want),
        (Probe::Socket(AF_INET6, SOCK_DGRAM, IPPROTO_UDP), want),
        (Probe::Socket(AF_INET, SOCK_DGRAM | FLAGS, 0), want),
        (
            Probe::Socket(AF_INET6, SOCK_DGRAM | libc::SOCK_NONBLOCK, 0),
            want,
        ),
        (
            Probe::Socket(AF_INET, SOCK_DGRAM | libc::SOCK_CLOEXEC, IPPROTO_UDP),
            want,
        ),
    ]
}

#[test]
fn udp_refused_with_eacces_when_not_allowed() {
    check(NO_UDP, &udp_cases(EACCES));
}

#[test]
fn udp_allowed_when_allowed_but_not_other_datagram_protocols() {
    use libc::{AF_INET, AF_INET6, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_UDPLITE, SOCK_DGRAM};
    let mut cases = udp_cases(OK);
    cases.extend([
        (Probe::Socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP), EACCES),
        (Probe::Socket(AF_INET6, SOCK_DGRAM, IPPROTO_ICMPV6), EACCES),
        (Probe::Socket(AF_INET, SOCK_DGRAM, IPPROTO_UDPLITE), EACCES),
        (
            Probe::Socket(AF_INET6, SOCK_DGRAM | FLAGS, IPPROTO_UDPLITE),
            EACCES,
        ),
    ]);
    check(UDP, &cases);
}

#[test]
fn tcp_unix_and_netlink_work() {
    use libc::{AF_INET, AF_INET6, AF_NETLINK, AF_UNIX, IPPROTO_TCP, SOCK_DGRAM, SOCK_STREAM};
    let cases = [
        (Probe::Socket(AF_INET, SOCK_STREAM, 0), OK),
        (Probe::Socket(AF_INET, SOCK_STREAM, IPPROTO_TCP), OK),
        (Probe::Socket(AF_INET6, SOCK_STREAM, 0), OK),
        (Probe::Socket(AF_INET6, SOCK_STREAM, IPPROTO_TCP), OK),
        (Probe::Socket(AF_INET, SOCK_STREAM | FLAGS, 0), OK),
        (
            Probe::Socket(AF_INET6, SOCK_STREAM | FLAGS, IPPROTO_TCP),
            OK,
        ),
        (Probe::Socket(AF_UNIX, SOCK_STREAM, 0), OK),
        (Probe::Socket(AF_UNIX, SOCK_DGRAM | FLAGS, 0), OK),
        (Probe::Socket(AF_UNIX, SOCK_SEQPACKET, 0), OK),
        (
            Probe::Socket(AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_ROUTE),
            OK,
        ),
        (
            Probe::Socket(AF_NETLINK, SOCK_DGRAM | FLAGS, libc::NETLINK_ROUTE),
            OK,
        ),
        (Probe::UnixPair, OK),
        (Probe::NoNewPrivs, OK),
    ];
    check(NO_UDP, &cases);
    check(UDP, &cases);
}

/// Everything the filter refuses whatever the UDP setting.
fn always_refused() -> Vec<Probe> {
    use libc::{AF_INET, AF_INET6, SOCK_DGRAM, SOCK_RAW, SOCK_STREAM};
    let probes = vec![
        // Stream protocols Landlock's TCP rules do not see.
        Probe::Socket(AF_INET, SOCK_STREAM, libc::IPPROTO_MPTCP),
        Probe::Socket(AF_INET6, SOCK_STREAM, libc::IPPROTO_MPTCP),
        Probe::Socket(AF_INET, SOCK_STREAM | FLAGS, libc::IPPROTO_MPTCP),
        Probe::Socket(AF_INET, SOCK_STREAM, libc::IPPROTO_SCTP),
        Probe::Socket(AF_INET6, SOCK_STREAM, libc::IPPROTO_SCTP),
        Probe::Socket(AF_INET, SOCK_STREAM, libc::IPPROTO_UDP),
        // Non-stream IP types.
        Probe::Socket(AF_INET, SOCK_RAW, libc::IPPROTO_ICMP),
        Probe::Socket(AF_INET, SOCK_RAW | FLAGS, libc::IPPROTO_RAW),
        Probe::Socket(AF_INET6, SOCK_RAW, libc::IPPROTO_ICMPV6),
        Probe::Socket(AF_INET, SOCK_SEQPACKET, libc::IPPROTO_SCTP),
        Probe::Socket(AF_INET, SOCK_RDM, 0),
        Probe::Socket(AF_INET, SOCK_DCCP, 0),
        Probe::Socket(AF_INET, SOCK_PACKET, 0x0300), // htons(ETH_P_ALL)
        Probe::Socket(AF_INET6, SOCK_PACKET, 0),
        // Families outside Landlock's view.
        Probe::Socket(libc::AF_PACKET, SOCK_RAW, 0x0300),
        Probe::Socket(libc::AF_PACKET, SOCK_DGRAM | FLAGS, 0x0300),
        Probe::Socket(libc::AF_VSOCK, SOCK_STREAM, 0),
        Probe::Socket(libc::AF_XDP, SOCK_RAW, 0),
        Probe::Socket(libc::AF_ALG, libc::SOCK_SEQPACKET, 0),
        Probe::Socket(libc::AF_UNSPEC, SOCK_STREAM, 0),
        Probe::IoUringSetup,
        Probe::IoUringEnter,
        Probe::IoUringRegister,
        Probe::TiocSti,
    ];
    probes
}

#[test]
fn mptcp_sctp_raw_packet_other_families_io_uring_refused_with_eacces() {
    let cases: Vec<(Probe, i32)> = always_refused().into_iter().map(|p| (p, EACCES)).collect();
    check(NO_UDP, &cases);
    check(UDP, &cases);
}

/// The rows every sandbox has, the conditional ones, and their controls: io_uring and
/// TIOCSTI always; listen() and socket(AF_UNIX) only when their row is in force; the IPC
/// rows only under the watchdog's seal. Ordinary terminal ioctls, socketpair, TCP and unix
/// sockets stay usable where nothing says otherwise.
#[test]
fn conditional_rows_refuse_only_when_in_force() {
    use libc::{AF_INET, AF_UNIX, SOCK_STREAM};
    let always = [
        (Probe::IoUringSetup, EACCES),
        (Probe::TiocSti, EACCES),
        (Probe::TiocGwinsz, OK),
        (Probe::ListenUnbound, OK),
        (Probe::Socket(AF_UNIX, SOCK_STREAM, 0), OK),
        (Probe::Socket(libc::AF_PACKET, libc::SOCK_DGRAM, 0x0300), OK),
        (Probe::MsgGet, OK),
        (Probe::SockDiag, OK),
        (Probe::UnixPair, OK),
    ];
    check(ALWAYS, &always);
    check(
        Seal {
            listen: true,
            ..ALWAYS
        },
        &[
            (Probe::ListenUnbound, EACCES),
            (Probe::Socket(AF_INET, SOCK_STREAM, 0), OK),
            (Probe::Socket(AF_UNIX, SOCK_STREAM, 0), OK),
        ],
    );
    check(
        Seal {
            unix: true,
            ..ALWAYS
        },
        &[
            (Probe::Socket(AF_UNIX, SOCK_STREAM, 0), EACCES),
            (Probe::Socket(AF_UNIX, libc::SOCK_DGRAM | FLAGS, 0), EACCES),
            (Probe::Socket(AF_UNIX, SOCK_SEQPACKET, 0), EACCES),
            (Probe::UnixPair, OK),
            (Probe::ListenUnbound, OK),
        ],
    );
    check(
        Seal {
            ipc: true,
            ..ALWAYS
        },
        &[
            (Probe::MsgGet, EACCES),
            (Probe::SockDiag, EACCES),
            (
                Probe::Socket(libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_ROUTE),
                OK,
            ),
        ],
    );
}

/// x32 system calls kill the process, like the i386 ones: they report the x86_64 audit
/// architecture, so the filter tells them apart by their number's bit. Without the
/// filter, the same calls come back (ENOSYS on a kernel without x32).
#[cfg(target_arch = "x86_64")]
#[test]
fn x32_syscalls_kill_the_process() {
    use libc::{AF_INET, SOCK_DGRAM};
    for p in [
        Probe::X32Socket(AF_INET, SOCK_DGRAM, 0),
        Probe::X32Other(libc::SYS_getpid),
        Probe::X32Other(libc::SYS_io_uring_setup),
    ] {
        let without = probe(None, &[p]);
        assert_ne!(without[0], EACCES, "{p:?} without the filter");
        let pid = fork_or_panic();
        if pid == 0 {
            if ALWAYS.install().is_err() {
                // SAFETY: leaving the child.
                unsafe { libc::_exit(INSTALL_FAILED) };
            }
            p.run();
            // SAFETY: leaving the child; reaching this line means the call ran.
            unsafe { libc::_exit(0) };
        }
        assert_eq!(wait(pid), End::Signaled(libc::SIGSYS), "{p:?}");
    }
}

/// Without the filter, nothing above fails with EACCES (so the filter is what refuses), and
/// the gaps really are open on this kernel: UDP, MPTCP, raw, AF_INET/SOCK_PACKET and
/// AF_PACKET sockets and io_uring all work for root.
#[test]
fn baseline_without_filter() {
    use libc::{AF_INET, AF_INET6, SOCK_DGRAM, SOCK_RAW, SOCK_STREAM};
    let mut probes = always_refused();
    probes.extend(udp_cases(OK).into_iter().map(|(p, _)| p));
    let got = probe(None, &probes);
    let report: Vec<String> = probes
        .iter()
        .zip(&got)
        .map(|(p, got)| format!("{p:?}: {}", describe(*got)))
        .collect();
    println!("without the filter:\n  {}", report.join("\n  "));
    for (p, got) in probes.iter().zip(&got) {
        assert_ne!(
            *got, EACCES,
            "{p:?} fails with EACCES even without the filter"
        );
    }
    let open = [
        Probe::TiocSti,
        Probe::Socket(AF_INET, SOCK_DGRAM, 0),
        Probe::Socket(AF_INET6, SOCK_DGRAM, 0),
        Probe::Socket(AF_INET, SOCK_STREAM, libc::IPPROTO_MPTCP),
        Probe::Socket(AF_INET, SOCK_RAW, libc::IPPROTO_ICMP),
        Probe::Socket(AF_INET, SOCK_PACKET, 0x0300),
        Probe::Socket(libc::AF_PACKET, SOCK_RAW, 0x0300),
        Probe::IoUringSetup,
        Probe::ListenUnbound,
        Probe::MsgGet,
        Probe::SockDiag,
    ];
    // SAFETY: geteuid cannot fail.
    let is_root = unsafe { libc::geteuid() } == 0;
    for (p, got) in open.iter().zip(probe(None, &open)) {
        let needs_root = matches!(
            p,
            Probe::Socket(_, SOCK_RAW | SOCK_PACKET, _) | Probe::TiocSti
        );
        if needs_root && !is_root {
            continue;
        }
        assert_eq!(got, OK, "{p:?} without the filter: {}", describe(got));
    }
}

/// i386 syscalls (int 0x80, including socketcall) fail the filter's architecture check, which
/// kills the whole process with SIGSYS before any row is looked at.
#[cfg(target_arch = "x86_64")]
#[test]
fn i386_syscalls_kill_the_process() {
    /// Makes an i386 syscall with number `nr` and no arguments from this 64-bit process.
    fn int80(nr: i32) -> i32 {
        let ret: i32;
        // SAFETY: int 0x80 only reads eax (and ebx..ebp as arguments, which the calls used
        // here ignore or never reach); the compat entry may clear r8-r11.
        unsafe {
            std::arch::asm!(
                "int 0x80",
                inlateout("eax") nr => ret,
                lateout("r8") _, lateout("r9") _, lateout("r10") _, lateout("r11") _,
                options(nostack),
            );
        }
        ret
    }
    const I386_GETPID: i32 = 20;
    const I386_SOCKETCALL: i32 = 102;

    // Is IA32 emulation on? Without it int 0x80 raises SIGSEGV and never reaches seccomp.
    let pid = fork_or_panic();
    if pid == 0 {
        // SAFETY: getpid and _exit are async-signal-safe.
        let same = int80(I386_GETPID) == unsafe { libc::getpid() };
        // SAFETY: _exit in the forked child, as above.
        unsafe { libc::_exit(if same { 0 } else { 1 }) };
    }
    let emulated = wait(pid) == End::Exited(0);

    let pid = fork_or_panic();
    if pid == 0 {
        if NO_UDP.install().is_err() {
            // SAFETY: leaving the child.
            unsafe { libc::_exit(INSTALL_FAILED) };
        }
        int80(I386_SOCKETCALL);
        // SAFETY: leaving the child; reaching this line means the call ran.
        unsafe { libc::_exit(0) };
    }
    let end = wait(pid);
    if emulated {
        assert_eq!(
            end,
            End::Signaled(libc::SIGSYS),
            "i386 socketcall under the filter"
        );
    } else {
        println!("IA32 emulation is off: int 0x80 cannot make syscalls at all ({end:?})");
        assert_eq!(end, End::Signaled(libc::SIGSEGV));
    }
}

/// The filter is kept across execve: a Python started after it cannot open a UDP socket
/// (PermissionError, errno 13) but can open a TCP one.
#[test]
fn filter_survives_execve() {
    let Some(python) = ["/usr/bin/python3", "/usr/local/bin/python3", "/bin/python3"]
        .into_iter()
        .find(|path| std::path::Path::new(path).exists())
    else {
        println!("no python3: covered by filter_survives_execve_of_self only");
        return;
    };
    let script = "import socket, sys\n\
                  socket.socket(socket.AF_INET, socket.SOCK_STREAM).close()\n\
                  try:\n    socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
                  except PermissionError as e:\n    sys.exit(0 if e.errno == 13 else 4)\n\
                  sys.exit(3)\n";
    let program = CString::new(python).expect("path without NUL");
    let args = [
        program.clone(),
        CString::new("-c").expect("no NUL"),
        CString::new(script).expect("no NUL"),
    ];
    let argv: Vec<*const libc::c_char> = args
        .iter()
        .map(|a| a.as_ptr())
        .chain([std::ptr::null()])
        .collect();
    for (filter, want) in [(NO_UDP, 0), (UDP, 3)] {
        let pid = fork_or_panic();
        if pid == 0 {
            if filter.install().is_err() {
                // SAFETY: leaving the child.
                unsafe { libc::_exit(INSTALL_FAILED) };
            }
            // SAFETY: argv is NUL-terminated and its strings outlive the call.
            unsafe { libc::execv(program.as_ptr(), argv.as_ptr()) };
            // SAFETY: leaving the child after a failed exec.
            unsafe { libc::_exit(127) };
        }
        assert_eq!(
            wait(pid),
            End::Exited(want),
            "{python} under {filter:?} (0: UDP refused with EACCES, 3: UDP worked, 4: other \
             errno, 1: TCP failed)"
        );
    }
}

/// Environment variable telling the re-executed test binary to act as a probe.
const SELF_PROBE: &str = "MOAT_SECCOMP_SELF_PROBE";

/// The same check without Python: re-executes this test binary, whose `self_probe` test
/// tries a UDP socket and exits with the outcome.
#[test]
fn filter_survives_execve_of_self() {
    let exe = std::env::current_exe().expect("current_exe");
    let prepared = |filter: Seal| {
        let mut command = std::process::Command::new(&exe);
        command
            .args(["--exact", "self_probe", "--nocapture", "--test-threads=1"])
            .env(SELF_PROBE, "1");
        // SAFETY: the closure runs in the forked child before exec; install only makes
        // syscalls and allocates (glibc malloc is fork-safe).
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut command, move || {
                filter.install().map_err(std::io::Error::other)
            });
        }
        command
    };
    for (filter, want) in [(NO_UDP, Some(10)), (UDP, Some(11))] {
        let status = prepared(filter).status().expect("re-exec the test binary");
        assert_eq!(
            status.code(),
            want,
            "self probe under {filter:?} (10: UDP refused with EACCES, 11: UDP worked)"
        );
    }
}

/// Helper for `filter_survives_execve_of_self`; does nothing in a normal run.
#[test]
fn self_probe() {
    if std::env::var_os(SELF_PROBE).is_none() {
        return;
    }
    let code = match std::net::UdpSocket::bind("127.0.0.1:0") {
        Ok(_) => 11,
        Err(e) if e.raw_os_error() == Some(EACCES) => 10,
        Err(_) => 12,
    };
    std::process::exit(code);
}
