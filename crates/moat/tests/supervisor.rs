//! moat's supervisor on the real kernel: listen() only on allowed ports, an allowlist of
//! pathname unix sockets before Landlock ABI 9, races against its checks, and the
//! supervisor process itself (detached, out of the program's reach, gone with it, and the
//! calls it decides refused when it is killed). Each attack has its control without moat.

mod common;
use common::*;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A tight explicit policy: system programs and /etc, nothing else.
const TIGHT: &[&str] = &["--rox", "/usr,/lib,/lib64,/bin", "--ro", "/etc"];

fn flags(extra: &[&str]) -> Vec<String> {
    TIGHT.iter().chain(extra).map(|s| s.to_string()).collect()
}

fn run_probe(s: &Scratch, extra: &[&str], ops: &[&str]) -> Run {
    let f = flags(extra);
    probe(s, &f.iter().map(String::as_str).collect::<Vec<_>>(), ops)
}

fn control(ops: &[&str]) -> Run {
    let mut c = Command::new(probe_bin());
    c.args(ops);
    output(c)
}

/// What a unix server answers each connection with.
#[derive(Clone, Copy)]
enum Greeting {
    /// Its name.
    Name,
    /// The pid of the process that connected (`SO_PEERCRED`).
    PeerPid,
    /// The peer pid, and then it kills that process (for the supervisor-killed test).
    KillPeer,
}

/// A unix stream server in a thread; each connection gets the greeting.
struct UnixServer {
    path: PathBuf,
    peers: Arc<std::sync::Mutex<Vec<i32>>>,
    stop: Arc<AtomicBool>,
}

impl UnixServer {
    fn new(path: &Path, greeting: Greeting) -> UnixServer {
        let listener = UnixListener::bind(path).unwrap();
        listener.set_nonblocking(true).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let peers = Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        {
            let (peers, stop) = (Arc::clone(&peers), Arc::clone(&stop));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let Ok((mut c, _)) = listener.accept() else {
                        std::thread::sleep(Duration::from_millis(2));
                        continue;
                    };
                    let pid = peer_pid(&c);
                    peers.lock().unwrap().push(pid);
                    let text = match greeting {
                        Greeting::Name => name.clone(),
                        Greeting::PeerPid | Greeting::KillPeer => pid.to_string(),
                    };
                    let _ = c.set_nonblocking(false);
                    let _ = c.write_all(text.as_bytes());
                    drop(c);
                    if let Greeting::KillPeer = greeting {
                        // SAFETY: plain integers.
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                    }
                }
            });
        }
        UnixServer {
            path: path.to_path_buf(),
            peers,
            stop,
        }
    }

    fn p(&self) -> &str {
        self.path.to_str().unwrap()
    }

    fn peers(&self) -> Vec<i32> {
        self.peers.lock().unwrap().clone()
    }
}

impl Drop for UnixServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn peer_pid(c: &UnixStream) -> i32 {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: a ucred-sized buffer.
    unsafe {
        libc::getsockopt(
            c.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    cred.pid
}

/// `/proc/PID/stat`: (state, ppid, session), or `None` when the process is gone.
fn stat(pid: i32) -> Option<(char, i32, i32)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some((f[0].chars().next()?, f[1].parse().ok()?, f[3].parse().ok()?))
}

fn comm(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Whether `pid` is gone (or a zombie nobody reaped yet) within five seconds.
fn ends(pid: i32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        match stat(pid) {
            None | Some(('Z', _, _)) => return true,
            _ => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    false
}

/// A socket bound to `port` outside the sandbox, as descriptor 3 of the command.
fn with_bound_fd3(cmd: &mut Command, port: u16) -> std::net::TcpListener {
    let l = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    // TcpListener listens already; a fresh socket bound but not listening is what a
    // program would call listen() on, so make one with socket2-free libc.
    drop(l);
    // SAFETY: plain integers.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
    assert!(fd >= 0);
    // SAFETY: sockaddr_in is plain data; all zeroes is a valid value.
    let mut a: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    a.sin_family = libc::AF_INET as libc::sa_family_t;
    a.sin_port = port.to_be();
    a.sin_addr.s_addr = u32::from_be_bytes([127, 0, 0, 1]).to_be();
    // SAFETY: a valid address.
    let r = unsafe {
        libc::bind(
            fd,
            (&a as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as u32,
        )
    };
    assert_eq!(r, 0, "{}", std::io::Error::last_os_error());
    // SAFETY: moves the socket to descriptor 3 in the child only.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(move || {
            if libc::dup2(fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    // SAFETY: the descriptor is ours; the child got its copy at fork.
    unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) }
}

/// `--bind-tcp PORT`: the server binds and listens on PORT and serves; listen() on a socket
/// never bound (the kernel would pick the port) and on a socket bound to another port (an
/// inherited one) fails with EACCES. Without moat all three listen.
#[test]
fn listen_only_on_allowed_ports() {
    let s = Scratch::new();
    let (port, other) = (free_port(), free_port());
    let port_s = port.to_string();

    // Control.
    let r = control(&["bind-listen", &port_s, ";", "listen-unbound", "0"]);
    assert_eq!(r.lines()[0], "ok", "{}", r.stderr);
    assert!(r.lines()[1].starts_with("listening "), "{:?}", r.lines());
    let mut c = Command::new(probe_bin());
    c.args(["listen-fd", "3"]);
    let _fd = with_bound_fd3(&mut c, other);
    assert_eq!(output(c).lines(), ["ok"]);

    // Under moat, from the same probe.
    let r = run_probe(
        &s,
        &["--bind-tcp", &port_s],
        &["bind-listen", &port_s, ";", "listen-unbound", "0"],
    );
    assert_eq!(r.lines(), ["ok", "EACCES"], "{}", r.stderr);
    assert!(!r.stderr.contains("not enforced"), "{}", r.stderr);
    let f = flags(&["--bind-tcp", &port_s, "--preserve-fd", "3"]);
    let mut c = s.moat();
    c.arg("run")
        .args(&f)
        .args(["--add-exec", "--ldd", "--"])
        .arg(probe_bin())
        .args(["listen-fd", "3"]);
    let _fd = with_bound_fd3(&mut c, free_port());
    let r = output(c);
    assert_eq!(r.lines(), ["EACCES"], "{}", r.stderr);

    // The allowed server really serves.
    let mut c = s.moat();
    c.arg("run")
        .args(flags(&["--bind-tcp", &port_s]))
        .args(["--add-exec", "--ldd", "--"])
        .arg(probe_bin())
        .args(["listen-tcp", &port_s, "3"])
        .stdout(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut first = [0u8; 10];
    out.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"listening\n");
    let mut got = String::new();
    std::net::TcpStream::connect(("127.0.0.1", port))
        .unwrap()
        .read_to_string(&mut got)
        .unwrap();
    assert_eq!(got, "moat-probe\n");
    child.wait().unwrap();

    // The issue's reproducer, in Python: a server allowed port P cannot serve elsewhere.
    let py = "import socket; s=socket.socket(); s.listen(); print(s.getsockname())";
    let r = s.run(
        &[
            &["run"][..],
            TIGHT,
            &["--bind-tcp", &port_s, "--", "/usr/bin/python3", "-c", py],
        ]
        .concat(),
    );
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("PermissionError"), "{}", r.stderr);
}

/// `--unix PATH` before Landlock ABI 9: the named socket is reached, by absolute and
/// relative path; a socket beside it, a link in an allowed directory to a socket elsewhere,
/// a datagram from a socket or a socket pair, and (under the default abstract scope) an abstract
/// socket are refused. A directory grants the sockets beneath it. Connect ports still hold
/// when the supervisor makes the connects.
#[test]
fn unix_allowlist_reaches_named_sockets_only() {
    let s = Scratch::new();
    let dir = s.mkdir("run");
    let app = UnixServer::new(&s.path("run/app.sock"), Greeting::Name);
    let _other = UnixServer::new(&s.path("run/other.sock"), Greeting::Name);
    let sub = s.mkdir("run/sub");
    let _inner = UnixServer::new(&s.path("run/sub/inner.sock"), Greeting::Name);
    let dgram = s.path("run/d.dgram");
    let _d = std::os::unix::net::UnixDatagram::bind(&dgram).unwrap();
    let dgram = dgram.to_str().unwrap();
    std::os::unix::fs::symlink(s.path("run/other.sock"), s.path("run/sub/link.sock")).unwrap();
    let (allowed_port, other_port) = (listener(), listener());
    let ap = allowed_port.1.to_string();
    let op = other_port.1.to_string();
    let other = format!("{dir}/other.sock");
    let link = format!("{sub}/link.sock");
    let abstract_name = format!("moat-test-listen-{}", std::process::id());
    let ops = [
        "unix-read",
        app.p(),
        ";", // named
        "unix-read",
        &other,
        ";", // beside it
        "unix-read",
        "run/app.sock",
        ";", // relative to the working directory
        "unix-read",
        &link,
        ";", // a link to the other one
        "unix-send",
        dgram,
        ";", // datagram socket
        "unix-pair-send",
        dgram,
        ";", // datagram socket pair
        "abstract-connect",
        "moat-test-nothing",
        ";", // abstract (scope)
        "connect-tcp",
        &ap,
        ";",
        "connect-tcp",
        &op,
        ";", // serving on an abstract socket, as Landlock allows beside the scope
        "abstract-listen",
        &abstract_name,
        "0",
    ];
    let mut c = Command::new(probe_bin());
    c.args(ops).current_dir(s.dir.path());
    let r = output(c);
    assert_eq!(
        r.lines(),
        [
            "ok app.sock",
            "ok other.sock",
            "ok app.sock",
            "ok other.sock",
            "ok",
            "ok",
            "ECONNREFUSED",
            "ok",
            "ok",
            "listening",
            "ok"
        ],
        "control: {}",
        r.stderr
    );
    let r = run_probe(
        &s,
        &["--unix", app.p(), "--unix", &sub, "--connect-tcp", &ap],
        &ops,
    );
    assert_eq!(
        r.lines(),
        [
            "ok app.sock",
            "EACCES",
            "ok app.sock",
            "EACCES",
            "EACCES",
            "EACCES",
            "EACCES",
            "ok",
            "EACCES",
            "listening",
            "ok"
        ],
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("not enforced"), "{}", r.stderr);
    // A directory: every socket beneath it, none beside it; a link beneath it to a socket
    // elsewhere reaches nothing.
    let r = run_probe(
        &s,
        &["--unix", &sub],
        &[
            "unix-read",
            &format!("{sub}/inner.sock"),
            ";",
            "unix-read",
            app.p(),
            ";",
            "unix-read",
            &link,
        ],
    );
    assert_eq!(
        r.lines(),
        ["ok inner.sock", "EACCES", "EACCES"],
        "{}",
        r.stderr
    );
    // moat check says it is enforced, and by what.
    let r = s.run(&[&["check"][..], TIGHT, &["--unix", app.p()]].concat());
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("moat's supervisor"), "{}", r.stdout);
}

/// Threads racing the supervisor's checks: swapping the descriptor between an allowed and
/// an unbound socket during listen(), rewriting the address between an allowed and another
/// socket during connect(). Without moat both get through many times; with it, never.
#[test]
fn races_against_the_checks_never_get_through() {
    let s = Scratch::new();
    s.mkdir("r");
    let _good = UnixServer::new(&s.path("r/good.sock"), Greeting::Name);
    let _bad = UnixServer::new(&s.path("r/bad0.sock"), Greeting::Name);
    let (good, bad) = (s.p("r/good.sock"), s.p("r/bad0.sock"));
    let port = free_port().to_string();
    let ops = [
        "race-listen",
        &port,
        "1000",
        ";",
        "race-unix",
        &good,
        &bad,
        "3000",
    ];
    let escapes = |line: &str| -> u32 {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix("escapes="))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no count in {line:?}"))
    };
    let r = control(&ops);
    assert_eq!(r.lines().len(), 2, "{}", r.stderr);
    assert!(escapes(r.lines()[0]) > 0, "control: {:?}", r.lines());
    assert!(escapes(r.lines()[1]) > 0, "control: {:?}", r.lines());
    let r = run_probe(&s, &["--bind-tcp", &port, "--unix", &good], &ops);
    assert_eq!(r.lines().len(), 2, "{}", r.stderr);
    for line in r.lines() {
        assert_eq!(escapes(line), 0, "{:?}", r.lines());
    }
    // The allowed halves went through: the checks did not just refuse everything.
    assert!(!r.lines()[0].contains("listened=0 "), "{:?}", r.lines());
    assert!(!r.lines()[1].contains("good=0 "), "{:?}", r.lines());
}

/// The supervisor (whose pid a unix server sees through SO_PEERCRED) is not the program's
/// child, leads its own session, is out of the program's reach (no pidfd_getfd of its
/// listener, no ptrace, no signal), and is gone when the program is. The program is moat's
/// own process (exec), holding no listener.
#[test]
fn the_supervisor_is_detached_out_of_reach_and_ends_with_the_sandbox() {
    let s = Scratch::new();
    s.mkdir("p");
    let server = UnixServer::new(&s.path("p/peer.sock"), Greeting::PeerPid);
    let probe_path = probe_bin();
    let probe_path = probe_path.to_str().unwrap();
    let probe_dir = Path::new(probe_path).parent().unwrap().to_str().unwrap();
    // Inside: ask the server who connected, then go after that process.
    let script = format!(
        "sup=$({probe_path} unix-read {sock} | cut -d' ' -f2); echo sup=$sup; \
         {probe_path} steal-fds $sup \\; ptrace $sup \\; signal $sup 0 \\; fds \\; getpid",
        sock = server.p()
    );
    let mut c = s.moat();
    c.arg("run")
        .args(flags(&["--unix", server.p()]))
        .args(["--add-exec", "--ldd", "--rox", probe_dir, "--"])
        .args(["/bin/sh", "-c", &script]);
    let r = output(c);
    let lines = r.lines();
    assert_eq!(lines.len(), 6, "{}\n{}", r.stdout, r.stderr);
    let sup: i32 = lines[0].strip_prefix("sup=").unwrap().parse().unwrap();
    assert_eq!(lines[1..4], ["EPERM", "EPERM", "EPERM"], "{}", r.stderr);
    assert!(
        !lines[4].contains("seccomp"),
        "the program holds a listener: {}",
        lines[4]
    );
    assert!(
        ends(sup),
        "supervisor {sup} outlived the sandbox: {:?}",
        stat(sup)
    );
    assert_eq!(server.peers(), [sup]);

    // Control: the same attempts on a process of the same user outside any sandbox.
    let mut victim = Command::new("sleep").arg("5").spawn().unwrap();
    let v = victim.id().to_string();
    let r = control(&["steal-fds", &v, ";", "signal", &v, "0"]);
    assert!(r.lines()[0].starts_with("ok got="), "{:?}", r.lines());
    assert_eq!(r.lines()[1], "ok");
    let _ = victim.kill();
    let _ = victim.wait();

    // While it runs: named, in its own session, not the program's child; the program is
    // moat's pid.
    let mut c = s.moat();
    c.arg("run")
        .args(flags(&["--unix", server.p()]))
        .args(["--add-exec", "--ldd", "--"])
        .arg(probe_bin())
        .args(["unix-read", server.p(), ";", "sleep", "1", ";", "getpid"])
        .stdout(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let moat_pid = child.id() as i32;
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.peers().len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let sup = *server.peers().last().unwrap();
    assert_eq!(comm(sup), "moat-supervise");
    let (_, ppid, session) = stat(sup).unwrap();
    assert_ne!(ppid, moat_pid);
    assert_eq!(session, sup);
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(out.lines().last(), Some(format!("ok {moat_pid}").as_str()));
    assert!(ends(sup));
}

/// Killing the supervisor leaves the calls it decided refused (ENOSYS), never open. The
/// control is the same sequence with the supervisor alive.
#[test]
fn a_killed_supervisor_leaves_its_calls_refused() {
    let s = Scratch::new();
    s.mkdir("k");
    let killer = UnixServer::new(&s.path("k/kill.sock"), Greeting::KillPeer);
    let named = UnixServer::new(&s.path("k/name.sock"), Greeting::Name);
    let port = free_port().to_string();
    let ops = [
        "unix-read",
        named.p(),
        ";",
        "unix-read",
        killer.p(),
        ";",
        "sleep",
        "1",
        ";",
        "unix-read",
        named.p(),
        ";",
        "bind-listen",
        &port,
        ";",
        "listen-unbound",
        "0",
    ];
    let f = [
        "--unix",
        named.p(),
        "--unix",
        killer.p(),
        "--bind-tcp",
        &port,
    ];
    let r = run_probe(&s, &f, &ops);
    assert_eq!(
        r.lines(),
        [
            "ok name.sock",
            &format!("ok {}", killer.peers()[0]),
            "ok",
            "ENOSYS",
            "ENOSYS",
            "ENOSYS"
        ],
        "{}",
        r.stderr
    );
    let sup = killer.peers()[0];
    assert!(ends(sup));
    // Control: with the supervisor alive, the same calls after the first ones.
    let alive = UnixServer::new(&s.path("k/alive.sock"), Greeting::PeerPid);
    let ops = [
        "unix-read",
        alive.p(),
        ";",
        "sleep",
        "1",
        ";",
        "unix-read",
        named.p(),
        ";",
        "bind-listen",
        &port,
    ];
    let f = [
        "--unix",
        named.p(),
        "--unix",
        alive.p(),
        "--bind-tcp",
        &port,
    ];
    let r = run_probe(&s, &f, &ops);
    assert_eq!(r.lines()[1..], ["ok", "ok name.sock", "ok"], "{}", r.stderr);
}

/// A supervised sandbox inside another: the kernel allows one supervisor per process, so
/// the inner one refuses to run and says why (exit 125), rather than run unsupervised.
#[test]
fn a_supervised_sandbox_inside_another_refuses_clearly() {
    let s = Scratch::new();
    let port = free_port().to_string();
    let moat = moat_bin();
    let moat = moat.to_str().unwrap();
    let inner = [
        "run",
        "--rox",
        "/usr,/lib,/lib64,/bin",
        "--ro",
        "/etc",
        "--bind-tcp",
        &port,
        "--",
        "/bin/true",
    ];
    let mut c = s.moat();
    c.arg("run")
        .args(flags(&["--bind-tcp", &port, "--add-exec", "--ldd", "--"]))
        .arg(moat)
        .args(inner);
    let r = output(c);
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("already under a seccomp filter with a supervisor"),
        "{}",
        r.stderr
    );
    // Control: the inner sandbox alone runs.
    let r = s.run(&inner);
    assert_eq!(r.code, 0, "{}", r.stderr);
}
