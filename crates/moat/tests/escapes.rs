//! The ways out of a `moat run` sandbox that Landlock alone leaves open, tried as a hostile
//! program would, each with a control that shows the same attempt succeeds without moat:
//! a TCP server without bind(), keystrokes pushed into the caller's terminal, pathname unix
//! sockets, root's capabilities, secrets readable through the default preset, a working
//! directory of `/`, and path exceptions.

mod common;
use common::*;
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::Duration;

/// A tight explicit policy: system programs and /etc, nothing else.
const TIGHT: &[&str] = &["--rox", "/usr,/lib,/lib64,/bin", "--ro", "/etc"];

/// Skips (with the reason) when not root: these attacks are about root's powers.
fn require_root(what: &str) -> bool {
    if !is_root() {
        eprintln!("skipped: {what} needs root (run the suite as root, as CI does)");
        return false;
    }
    true
}

fn tight(extra: &[&str]) -> Vec<String> {
    TIGHT.iter().chain(extra).map(|s| s.to_string()).collect()
}

/// Starts `cmd` (a probe doing `listen-unbound`), reads its `listening PORT` line and
/// returns what a client outside gets from that port.
fn serve_unbound(mut cmd: Command) -> Result<String, String> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().and_then(Result::ok).unwrap_or_default();
    let result = match first.strip_prefix("listening ") {
        Some(port) => {
            let port: u16 = port.trim().parse().map_err(|_| first.clone())?;
            let mut s = std::net::TcpStream::connect(("127.0.0.1", port))
                .map_err(|e| format!("connect to {port}: {e}"))?;
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut got = String::new();
            let _ = s.read_to_string(&mut got);
            Ok(got)
        }
        None => Err(first),
    };
    let _ = child.kill();
    let _ = child.wait();
    result
}

/// `socket(); listen()` without bind() makes the kernel pick a port without the bind hook
/// Landlock watches: under a policy that allows no bind port, listen() itself is refused.
#[test]
fn a_server_without_bind_cannot_serve() {
    let s = Scratch::new();
    let probe_path = probe_bin();
    // Control: without moat the probe serves on a port the kernel picked.
    let mut c = Command::new(&probe_path);
    c.args(["listen-unbound", "5"]);
    assert_eq!(serve_unbound(c), Ok("moat-probe\n".to_string()));

    for policy in [
        tight(&[]),
        vec!["--preset".to_string(), "default".to_string()],
    ] {
        let mut c = s.moat();
        c.arg("run")
            .args(&policy)
            .args(["--add-exec", "--ldd", "--"]);
        c.arg(&probe_path).args(["listen-unbound", "5"]);
        assert_eq!(serve_unbound(c), Err("EACCES".to_string()), "{policy:?}");
    }

    // The issue's own reproducer, in Python.
    let py = "import socket; s=socket.socket(); s.listen(); print(s.getsockname()); s.accept()";
    let mut args = vec!["run".to_string()];
    args.extend(tight(&["--", "/usr/bin/python3", "-c", py]));
    let r = s.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("PermissionError"), "{}", r.stderr);

    // With a bind port allowed, moat's supervisor decides listen() (tests/supervisor.rs):
    // the unbound server is still refused, and nothing is reported missing.
    let mut c = s.moat();
    c.arg("run")
        .args(tight(&["--bind-tcp", "18500"]))
        .args(["--add-exec", "--ldd", "--"]);
    c.arg(&probe_path).args(["listen-unbound", "5"]);
    assert_eq!(serve_unbound(c), Err("EACCES".to_string()));
}

/// Runs `command` (a shell line) on a fresh pseudo-terminal with `script`, the way a user's
/// shell runs a command it then reads input after; returns what the terminal's next reader
/// got within a second.
fn next_terminal_input(command: &str, dir: &std::path::Path, as_nobody: bool) -> String {
    let out = dir.join(format!("typed-{}", as_nobody));
    let _ = std::fs::remove_file(&out);
    let line = format!(
        "{command}; read -t 1 -r line; printf '%s' \"$line\" > {}",
        out.display()
    );
    let mut inner = vec!["bash".to_string(), "-c".to_string(), line];
    if as_nobody {
        let mut v: Vec<String> = [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.append(&mut inner);
        inner = v;
    }
    let quoted: Vec<String> = inner
        .iter()
        .map(|a| format!("'{}'", a.replace('\'', "'\\''")))
        .collect();
    // script's own input stays open (and empty) until the command ends: at end of input
    // script would send the terminal an end-of-file, which the shell's read would take first.
    let mut child = Command::new("script")
        .args(["-q", "-e", "-c", &quoted.join(" "), "/dev/null"])
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("script (util-linux) runs");
    let input = child.stdin.take();
    let _ = child.wait();
    drop(input);
    std::fs::read_to_string(&out).unwrap_or_default()
}

/// TIOCSTI on the inherited terminal pushes keystrokes into the input of whatever reads the
/// terminal next: the shell that started the sandbox. Refused in every sandbox, as root and
/// as an unprivileged user (this machine has dev.tty.legacy_tiocsti=1).
#[test]
fn a_sandbox_cannot_type_into_its_terminal() {
    let s = Scratch::new();
    std::fs::set_permissions(
        s.dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let probe = probe_bin();
    let moat = moat_bin();
    let inject = format!("{} tiocsti 0 'echo pwned'$'\\n'", probe.display());
    let legacy = std::fs::read_to_string("/proc/sys/dev/tty/legacy_tiocsti")
        .map(|v| v.trim() == "1")
        .unwrap_or(true);
    for as_nobody in [false, true] {
        if as_nobody && !(is_root() && legacy) {
            eprintln!(
                "skipped the unprivileged case: needs root to switch users and legacy_tiocsti=1"
            );
            continue;
        }
        if !as_nobody && !is_root() && !legacy {
            eprintln!("skipped: TIOCSTI needs root or dev.tty.legacy_tiocsti=1");
            continue;
        }
        // Control: the shell reads what the program typed.
        assert_eq!(
            next_terminal_input(&inject, s.dir.path(), as_nobody),
            "echo pwned",
            "control (as nobody: {as_nobody})"
        );
        let answer = s.path("answer");
        for policy in [
            "--preset default --add-exec --ldd",
            "--rox /usr,/lib,/lib64,/bin --ro /etc --add-exec --ldd",
            "--unrestricted-filesystem --unrestricted-network",
        ] {
            let _ = std::fs::remove_file(&answer);
            let cmd = format!(
                "{} run {policy} -- {} tiocsti 0 'echo pwned'$'\\n' > {}",
                moat.display(),
                probe.display(),
                answer.display()
            );
            assert_eq!(
                next_terminal_input(&cmd, s.dir.path(), as_nobody),
                "",
                "moat run {policy} (as nobody: {as_nobody})"
            );
            // The probe ran, and the kernel refused the ioctl.
            assert_eq!(
                std::fs::read_to_string(&answer).unwrap_or_default(),
                "EACCES\n",
                "moat run {policy} (as nobody: {as_nobody})"
            );
        }
    }
}

/// A unix socket server of another user, like docker.sock or the D-Bus system bus: a
/// root-owned socket in a 0700 directory.
struct UnixServer {
    dir: tempfile::TempDir,
    path: std::path::PathBuf,
    dgram: std::path::PathBuf,
    _stream: std::os::unix::net::UnixListener,
    _datagram: std::os::unix::net::UnixDatagram,
}

impl UnixServer {
    fn new() -> UnixServer {
        let dir = tempfile::Builder::new()
            .prefix("moat-unix-")
            .tempdir_in("/run")
            .or_else(|_| tempfile::tempdir())
            .unwrap();
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .unwrap();
        let path = dir.path().join("daemon.sock");
        let dgram = dir.path().join("daemon.dgram");
        UnixServer {
            _stream: std::os::unix::net::UnixListener::bind(&path).unwrap(),
            _datagram: std::os::unix::net::UnixDatagram::bind(&dgram).unwrap(),
            path,
            dgram,
            dir,
        }
    }
}

/// Connecting or sending to a pathname unix socket is denied unless the policy names it;
/// before Landlock ABI 9 that is socket(AF_UNIX) refused, and a policy that names sockets
/// has its connects decided by moat's supervisor.
#[test]
fn pathname_unix_sockets_are_denied_unless_named() {
    let s = Scratch::new();
    let server = UnixServer::new();
    let (sock, dgram) = (
        server.path.to_str().unwrap(),
        server.dgram.to_str().unwrap(),
    );
    let ops = ["unix-connect", sock, ";", "unix-send", dgram];
    // Control: the caller reaches both.
    let out = output({
        let mut c = Command::new(probe_bin());
        c.args(ops);
        c
    });
    assert_eq!(out.lines(), ["ok", "ok"]);

    for policy in [
        tight(&[]),
        vec!["--preset".to_string(), "default".to_string()],
        tight(&["--rw", "/tmp"]),
    ] {
        let flags: Vec<&str> = policy.iter().map(String::as_str).collect();
        let r = probe(&s, &flags, &ops);
        assert_eq!(r.lines(), ["EACCES", "EACCES"], "{policy:?}: {}", r.stderr);
    }
    let _ = &server.dir;

    // A policy that allows one socket: Landlock from ABI 9, moat's supervisor before
    // (tests/supervisor.rs has the rest). Datagrams stay refused: their address is per send.
    let flags = tight(&["--unix", sock]);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let r = probe(&s, &flags, &ops);
    assert_eq!(r.lines(), ["ok", "EACCES"], "{}", r.stderr);
    assert!(!r.stderr.contains("not enforced"), "{}", r.stderr);
}

/// As root, Landlock leaves every capability in place: chown of a file the policy denies,
/// perf events on another process, BPF maps, the hostname. moat drops them all; a kept
/// capability (`--keep-cap CHOWN`) goes through.
#[test]
fn root_keeps_no_capability() {
    if !require_root("dropping root's capabilities") {
        return;
    }
    let s = Scratch::new();
    let file = s.write("owned-by-nobody", "x");
    std::os::unix::fs::chown(&file, Some(65534), Some(65534)).unwrap();
    let mut sleeper = Command::new("sleep").arg("30").spawn().unwrap();
    let pid = sleeper.id().to_string();
    let ops = [
        "chown",
        &file,
        "0",
        ";",
        "perf-event",
        &pid,
        ";",
        "bpf-map",
        ";",
        "caps",
    ];
    // Control: root does all of it.
    let mut c = Command::new(probe_bin());
    c.args(ops);
    let control = output(c);
    assert_eq!(
        control.lines()[..3],
        ["ok", "ok", "ok"],
        "{}",
        control.stdout
    );
    std::os::unix::fs::chown(&file, Some(65534), Some(65534)).unwrap();

    for policy in [
        tight(&[]),
        vec!["--preset".to_string(), "default".to_string()],
    ] {
        let flags: Vec<&str> = policy.iter().map(String::as_str).collect();
        let r = probe(&s, &flags, &ops);
        let lines = r.lines();
        assert_eq!(lines[0], "EPERM", "chown under {policy:?}");
        assert!(
            lines[1] == "EACCES" || lines[1] == "EPERM",
            "perf under {policy:?}: {lines:?}"
        );
        assert_eq!(lines[2], "EPERM", "bpf under {policy:?}");
        assert_eq!(lines[3], "ok eff=0 prm=0 inh=0 bnd=0 amb=0", "{policy:?}");
    }
    let kept = tight(&["--keep-cap", "CHOWN"]);
    let flags: Vec<&str> = kept.iter().map(String::as_str).collect();
    let r = probe(
        &s,
        &flags,
        &["chown", &file, "0", ";", "bpf-map", ";", "caps"],
    );
    assert_eq!(
        r.lines(),
        ["ok", "EPERM", "ok eff=1 prm=1 inh=1 bnd=1 amb=0"]
    );
    let _ = sleeper.kill();
    let _ = sleeper.wait();

    // sethostname, each in a UTS namespace of its own so that the control renames nothing
    // but that namespace.
    let unshare = |args: &[&str]| {
        let mut c = Command::new("unshare");
        c.arg("-u").args(args);
        output(c)
    };
    let control = unshare(&[probe_bin().to_str().unwrap(), "sethostname", "moat-test"]);
    assert_eq!(control.lines(), ["ok"], "{}", control.stderr);
    let mut args = vec![moat_bin().to_str().unwrap().to_string(), "run".into()];
    args.extend(tight(&["--add-exec", "--ldd", "--"]));
    args.push(probe_bin().to_str().unwrap().into());
    args.extend(["sethostname".into(), "moat-test".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = unshare(&args);
    assert_eq!(r.lines(), ["EPERM"], "{}", r.stderr);

    // A capability kept by name survives the exec into a non-root program too (ambient).
    let r = output({
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=+chown",
            "--ambient-caps=+chown",
        ]);
        c.arg(moat_bin()).arg("run").args(tight(&[
            "--keep-cap",
            "chown",
            "--add-exec",
            "--ldd",
            "--",
        ]));
        c.arg(probe_bin()).arg("caps");
        c
    });
    let caps = r.lines().join("");
    assert!(
        caps.starts_with("ok eff=1 prm=1 inh=1 bnd=") && caps.ends_with(" amb=1"),
        "{caps} {}",
        r.stderr
    );
}

/// The default preset reads /etc, and as root that used to include password hashes and
/// private keys; and in a working directory of `/` its `${CWD}` rule granted everything.
#[test]
fn the_default_preset_keeps_secrets_and_the_root_directory_out() {
    if !require_root("reading root-only files") {
        return;
    }
    let s = Scratch::new();
    // Control: root reads /etc/shadow.
    let mut c = Command::new(probe_bin());
    c.args(["read", "/etc/shadow"]);
    assert_eq!(output(c).lines(), ["ok"]);
    let r = probe(
        &s,
        &["--preset", "default"],
        &[
            "read",
            "/etc/shadow",
            ";",
            "read",
            "/etc/passwd",
            ";",
            "list",
            "/etc",
        ],
    );
    assert_eq!(r.lines()[..2], ["EACCES", "ok"], "{}", r.stderr);
    assert!(r.lines()[2].starts_with("ok "), "{:?}", r.lines());

    // From `/`: the working directory is not granted (it would be everything).
    let secret = s.write("outside/file", "x");
    let run_in = |dir: &str| {
        let mut c = s.moat();
        c.current_dir(dir)
            .args(["run", "--add-exec", "--ldd", "--preset", "default", "--"])
            .arg(probe_bin())
            .args(["read", &secret]);
        output(c)
    };
    assert_eq!(run_in("/").lines(), ["EACCES"]);
    // Control: the same file from its own directory, which the preset grants.
    assert_eq!(run_in(&s.p("outside")).lines(), ["ok"]);
    let mut c = s.moat();
    c.current_dir("/").args(["check"]);
    let r = output(c);
    assert!(
        r.stdout.contains("the working directory is /"),
        "{}",
        r.stdout
    );
}

/// `--except`: the rest of a granted directory stays granted, the excepted path does not,
/// through another name (hard or symbolic link) neither, and a path that does not exist
/// yet stays out when it appears.
#[test]
fn path_exceptions_hold() {
    let s = Scratch::new();
    let home = s.mkdir("home");
    s.write("home/notes", "n");
    s.write("home/docs/a", "a");
    let secret = s.write("home/secret", "s");
    std::fs::hard_link(&secret, s.path("home/hard")).unwrap();
    std::os::unix::fs::symlink(&secret, s.path("home/soft")).unwrap();
    let later = format!("{home}/.ssh");
    let flags = tight(&["--rw", &home, "--except", &secret, "--except", &later]);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();

    let mut c = s.moat();
    c.arg("run")
        .args(&flags)
        .args(["--add-exec", "--ldd", "--"]);
    c.arg(probe_bin()).args([
        "read",
        &format!("{home}/notes"),
        ";",
        "read",
        &format!("{home}/docs/a"),
        ";",
        "create",
        &format!("{home}/docs/b"),
        ";",
        "read",
        &secret,
        ";",
        "read",
        &format!("{home}/hard"),
        ";",
        "read",
        &format!("{home}/soft"),
        ";",
        "mkdir",
        &later,
        ";",
        "sleep",
        "1",
        ";",
        "read",
        &format!("{later}/id_ed25519"),
    ]);
    let child = c.stdout(Stdio::piped()).spawn().unwrap();
    // While it sleeps, the user creates ~/.ssh and a key outside the sandbox.
    std::thread::sleep(Duration::from_millis(400));
    std::fs::create_dir_all(&later).unwrap();
    std::fs::write(format!("{later}/id_ed25519"), "key").unwrap();
    let out = child.wait_with_output().unwrap();
    let lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(
        lines,
        ["ok", "ok", "ok", "EACCES", "EACCES", "EACCES", "EACCES", "ok", "EACCES"]
    );
    // Control: without the exceptions every read works.
    let plain = tight(&["--rw", &home]);
    let plain: Vec<&str> = plain.iter().map(String::as_str).collect();
    let r = probe(
        &s,
        &plain,
        &["read", &secret, ";", "read", &format!("{later}/id_ed25519")],
    );
    assert_eq!(r.lines(), ["ok", "ok"]);
    let r = s.run(&["check", "--rw", &home, "--except", &secret]);
    assert!(
        r.stdout.contains("except") && r.stdout.contains("expanded"),
        "{}",
        r.stdout
    );
}
