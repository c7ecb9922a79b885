//! Isolation between calls, each point with a real function (Python and shell), and each
//! with a control run under `sandbox=off` that shows the test would see the leak.

mod common;

use common::*;

/// A function that does what its input says, one command per line, and prints one result
/// line per command: `ok <detail>` or `err <errno name>`.
const PROBE: &str = r#"#!/usr/bin/python3
import errno, json, os, signal, socket, sys, time

def attempt(f):
    try:
        r = f()
        return "ok" if r is None else "ok " + str(r)
    except OSError as e:
        return "err " + (errno.errorcode.get(e.errno, str(e.errno)))

def write(path, text):
    with open(path, "w") as f:
        f.write(text)

def read(path):
    with open(path, "rb") as f:
        return f.read().decode(errors="replace").replace("\0", " ").strip()

def connect_abstract(name):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect("\0" + name)
    s.close()

for line in sys.stdin.read().splitlines():
    cmd, _, arg = line.partition(" ")
    if cmd == "tmpdir":
        print("ok " + os.environ.get("TMPDIR", ""))
    elif cmd == "write":
        path, _, text = arg.partition(" ")
        path = path.replace("$TMPDIR", os.environ.get("TMPDIR", "/tmp"))
        print(attempt(lambda: write(path, text)))
    elif cmd == "read":
        print(attempt(lambda: read(arg)))
    elif cmd == "list":
        print(attempt(lambda: ",".join(sorted(os.listdir(arg)))))
    elif cmd == "signal":
        print(attempt(lambda: os.kill(int(arg), signal.SIGCONT)))
    elif cmd == "connect":
        print(attempt(lambda: connect_abstract(arg)))
    elif cmd == "listen":
        # A TCP server without bind(): the kernel picks the port (autobind).
        def serve():
            s = socket.socket()
            s.listen()
            port = s.getsockname()[1]
            s.close()
            return port
        print(attempt(serve))
    elif cmd == "serve":
        # A TCP server on the given port, bound first.
        def serve_on():
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", int(arg)))
            s.listen()
            s.close()
        print(attempt(serve_on))
    elif cmd == "unix":
        def unix_connect():
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(arg)
            s.close()
        print(attempt(unix_connect))
    elif cmd == "caps":
        # Effective and bounding sets, from the call's own /proc entry.
        def caps():
            lines = read("/proc/self/status").split("\n")
            want = ("CapEff:", "CapBnd:")
            return " ".join(l.split()[1] for l in lines if l.startswith(want))
        print(attempt(caps))
    elif cmd == "chown":
        print(attempt(lambda: os.chown(arg, 65534, -1)))
    elif cmd == "udp":
        print(attempt(lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).close()))
    elif cmd == "tcp":
        print(attempt(lambda: socket.create_connection(("127.0.0.1", int(arg)), timeout=5).close()))
    elif cmd in ("msg-put", "msg-get", "key-put", "key-get"):
        import ctypes, struct
        libc = ctypes.CDLL(None, use_errno=True)
        def check(r, what):
            if r < 0:
                e = ctypes.get_errno()
                raise OSError(e, what)
            return r
        def msg_put():
            q = check(libc.msgget(int(arg), 0o1600), "msgget")
            check(libc.msgsnd(q, struct.pack("l", 1) + b"s3cret", 6, 0), "msgsnd")
        def msg_get():
            q = check(libc.msgget(int(arg), 0), "msgget")
            buf = ctypes.create_string_buffer(64)
            n = check(libc.msgrcv(q, buf, 56, 0, 0o4000), "msgrcv")
            libc.msgctl(q, 0, None)
            return buf.raw[8:8 + n].decode()
        # add_key, request_key, keyctl on x86_64; the user keyring is -4.
        def key_put():
            check(libc.syscall(248, b"user", arg.encode(), b"s3cret", 6, -4), "add_key")
        def key_get():
            k = check(libc.syscall(249, b"user", arg.encode(), None, 0), "request_key")
            buf = ctypes.create_string_buffer(64)
            n = check(libc.syscall(250, 11, k, buf, 64), "keyctl read")
            libc.syscall(250, 9, k, -4)
            return buf.raw[:n].decode()
        f = {"msg-put": msg_put, "msg-get": msg_get, "key-put": key_put, "key-get": key_get}[cmd]
        print(attempt(f))
    elif cmd == "hold":
        # Publish who we are, with a secret in our TMPDIR and an abstract socket, then wait.
        shared, name, seconds = arg.split(" ")
        tmp = os.environ.get("TMPDIR", "/tmp")
        write(os.path.join(tmp, "secret"), "hold-secret")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind("\0" + name)
        s.listen(8)
        write(os.path.join(shared, name + ".json"), json.dumps({"pid": os.getpid(), "tmpdir": tmp}) + "\n")
        time.sleep(float(seconds))
        print("ok held")
    sys.stdout.flush()
"#;

fn probe_dir(name: &str) -> TestDir {
    let dir = TestDir::new(name);
    dir.script("probe.py", PROBE);
    dir
}

fn start_probe(dir: &TestDir, sandbox: &str) -> Watchdog {
    start_probe_with(dir, sandbox, &[])
}

fn start_probe_with(dir: &TestDir, sandbox: &str, extra: &[(&str, &str)]) -> Watchdog {
    let shared = dir.shared();
    let mut vars = vec![
        ("fprocess", "./probe.py"),
        ("sandbox", sandbox),
        ("sandbox_rw", shared.to_str().unwrap()),
        ("exec_timeout", "20s"),
    ];
    vars.extend_from_slice(extra);
    start(dir, &vars)
}

fn results(r: &Resp) -> Vec<String> {
    assert_eq!(r.status, 200, "{}", r.text());
    r.text().lines().map(String::from).collect()
}

/// Call 1 writes a secret to its TMPDIR and to /tmp; call 2 tries to read both.
fn secret_then_read(sandbox: &str) -> (Vec<String>, Vec<String>, String) {
    let dir = probe_dir(&format!("secret-{sandbox}"));
    let w = start_probe(&dir, sandbox);
    let tmp_file = format!("/tmp/moat-watchdog-secret-{}", std::process::id());
    let _ = std::fs::remove_file(&tmp_file);
    let first = results(&w.post(&format!(
        "tmpdir\nwrite $TMPDIR/secret s3cret\nwrite {tmp_file} s3cret\n"
    )));
    let tmpdir = first[0].trim_start_matches("ok ").to_string();
    let first = first[1..].to_vec();
    let second = results(&w.post(&format!(
        "read {tmpdir}/secret\nread {tmp_file}\nlist {tmpdir}\n"
    )));
    let _ = std::fs::remove_file(&tmp_file);
    (first, second, tmpdir)
}

#[test]
fn a_secret_in_tmpdir_or_tmp_is_not_readable_by_the_next_call() {
    let (first, second, tmpdir) = secret_then_read("required");
    assert!(tmpdir.starts_with("/dev/shm/moat-watchdog."), "{tmpdir}");
    // The private directory is writable; /tmp is not writable at all.
    assert_eq!(first[0], "ok");
    assert_eq!(first[1], "err EACCES");
    // The next call reads neither: the directory is gone and would be denied anyway.
    assert!(second.iter().all(|l| l.starts_with("err ")), "{second:?}");
    // Removed once the call is over (in the background, right after the answer).
    assert!(
        eventually(std::time::Duration::from_secs(2), || !std::path::Path::new(
            &tmpdir
        )
        .exists()),
        "{tmpdir} was not removed"
    );

    // Control: without the sandbox, the second call reads both secrets.
    let (first, second, _) = secret_then_read("off");
    assert_eq!(first, ["ok", "ok"]);
    assert_eq!(second[0], "ok s3cret");
    assert_eq!(second[1], "ok s3cret");
}

/// A holding call publishes its pid, TMPDIR and abstract socket; a second call, running at
/// the same time, tries to reach each. The calls may use unix sockets (a policy file with
/// `unix = ["/"]`), so that the abstract socket exists and the scope alone keeps the
/// second call out; without it, no call can create a unix socket at all (below).
fn probe_running_call(sandbox: &str) -> Vec<String> {
    let dir = probe_dir(&format!("running-{sandbox}"));
    let policy = dir.shared().join("unix.toml");
    std::fs::write(&policy, "[filesystem]\nunix = [\"/\"]\n").unwrap();
    let w = start_probe_with(
        &dir,
        sandbox,
        &[("sandbox_policy", policy.to_str().unwrap())],
    );
    let shared = dir.shared();
    let name = format!("moat-test-{}-{sandbox}", std::process::id());
    let port = w.port;
    let hold_cmd = format!("hold {} {name} 3\n", shared.display());
    let holder =
        std::thread::spawn(move || curl(port, "POST", "/", &[], Some(hold_cmd.as_bytes())));
    let info = wait_file(&shared.join(format!("{name}.json")));
    let pid = info
        .split("\"pid\": ")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .trim()
        .to_string();
    let tmpdir = info
        .split("\"tmpdir\": \"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let parent = std::path::Path::new(&tmpdir)
        .parent()
        .unwrap()
        .display()
        .to_string();
    let out = results(&w.post(&format!(
        "list {tmpdir}\nread {tmpdir}/secret\nread /proc/{pid}/environ\nsignal {pid}\nsignal {wd}\nconnect {name}\nlist {parent}\n",
        wd = w.pid()
    )));
    let held = holder.join().unwrap().unwrap();
    assert_eq!(held.text(), "ok held\n");
    out
}

#[test]
fn a_call_cannot_reach_another_running_call_or_the_watchdog() {
    let out = probe_running_call("required");
    let what = [
        "list its dir",
        "read its secret",
        "read its environ",
        "signal it",
        "signal the watchdog",
        "connect to its abstract socket",
        "list the private directories' parent (to learn other calls' directory names)",
    ];
    for (line, what) in out.iter().zip(what) {
        assert!(line.starts_with("err "), "could {what}: {line}");
    }
    assert_eq!(out.len(), what.len());
    // Signals and abstract sockets are refused by Landlock's scopes (EPERM).
    assert_eq!(out[3], "err EPERM");
    assert_eq!(out[4], "err EPERM");
    assert_eq!(out[5], "err EPERM");

    // Control: without the sandbox every one of them succeeds.
    let out = probe_running_call("off");
    for (line, what) in out.iter().zip(what) {
        assert!(line.starts_with("ok"), "control could not {what}: {line}");
    }
}

/// A watchdog running as root (PID 1 of a container, typically) gives its calls none of
/// root's capabilities: no chown of a file the call may write, nothing in the effective or
/// bounding set. Without the sandbox the same call has them all.
#[test]
fn calls_run_without_capabilities() {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root (a call can only lose capabilities the watchdog has)");
        return;
    }
    let dir = probe_dir("caps");
    let file = dir.shared().join("owned");
    std::fs::write(&file, "x").unwrap();
    let ops = format!("caps\nchown {}\n", file.display());
    let w = start_probe(&dir, "required");
    let out = results(&w.post(&ops));
    assert_eq!(out, ["ok 0000000000000000 0000000000000000", "err EPERM"]);
    drop(w);
    let w = start_probe(&dir, "off");
    let out = results(&w.post(&ops));
    assert!(
        out[0].starts_with("ok ") && !out[0].contains("0000000000000000"),
        "{out:?}"
    );
    assert_eq!(out[1], "ok");
}

/// Under the default call policy (no unix socket allowed, no port to bind), a call can
/// neither serve nor reach a unix socket: socket(AF_UNIX) and listen() are refused (this
/// kernel has no Landlock resolve_unix); without the sandbox both work.
#[test]
fn a_call_can_neither_serve_nor_reach_unix_sockets() {
    let dir = probe_dir("no-unix");
    let w = start_probe(&dir, "required");
    let name = format!("moat-test-{}-none", std::process::id());
    let out = results(&w.post(&format!("connect {name}\nlisten\n")));
    assert_eq!(out, ["err EACCES", "err EACCES"]);
    drop(w);
    let w = start_probe(&dir, "off");
    let out = results(&w.post(&format!("connect {name}\nlisten\n")));
    assert_eq!(out[0], "err ECONNREFUSED", "{out:?}");
    assert!(out[1].starts_with("ok "), "{out:?}");
}

/// A call whose policy allows one bind port and one unix socket: it serves on that port and
/// reaches that socket, while listen() without bind and a socket beside the allowed one are
/// refused (the watchdog is the call's supervisor: this kernel has no Landlock listen
/// right nor resolve_unix). Control: the same calls without the sandbox.
#[test]
fn a_call_listens_and_connects_only_where_its_policy_says() {
    let dir = probe_dir("supervised");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let sockets = dir.root.join("sockets");
    std::fs::create_dir_all(&sockets).unwrap();
    let (ok, other) = (sockets.join("ok.sock"), sockets.join("other.sock"));
    let _servers = [
        std::os::unix::net::UnixListener::bind(&ok).unwrap(),
        std::os::unix::net::UnixListener::bind(&other).unwrap(),
    ];
    let policy = dir.shared().join("policy.toml");
    std::fs::write(
        &policy,
        format!(
            "[network]\nbind_tcp = [{port}]\n[filesystem]\nunix = [\"{}\"]\n",
            ok.display()
        ),
    )
    .unwrap();
    let ops = format!(
        "serve {port}\nlisten\nunix {}\nunix {}\n",
        ok.display(),
        other.display()
    );
    let extra = [("sandbox_policy", policy.to_str().unwrap())];
    let w = start_probe_with(&dir, "required", &extra);
    for _ in 0..3 {
        let out = results(&w.post(&ops));
        assert_eq!(out, ["ok", "err EACCES", "ok", "err EACCES"], "{}", w.log());
    }
    drop(w);
    let w = start_probe_with(&dir, "off", &extra);
    let out = results(&w.post(&ops));
    assert_eq!(out[0], "ok");
    assert!(out[1].starts_with("ok "), "{out:?}");
    assert_eq!(out[2..], ["ok", "ok"]);
}

const DAEMON: &str = r#"#!/bin/sh
# Daemonize the classic way: a subshell forks a new session and exits (double fork),
# stdio detached; wait only until the daemon has written its pid.
( setsid sh -c 'echo $$ > SHARED/daemon.pid; sleep 300; : MARKER' </dev/null >/dev/null 2>&1 & )
while [ ! -s SHARED/daemon.pid ]; do sleep 0.01; done
echo started
"#;

/// A function directory with `daemon.sh`, and the marker in its daemon's command line.
fn daemon_dir(name: &str) -> (TestDir, String) {
    let dir = TestDir::new(name);
    let marker = format!("moat-{name}-{}", std::process::id());
    dir.script(
        "daemon.sh",
        &DAEMON
            .replace("SHARED", dir.shared().to_str().unwrap())
            .replace("MARKER", &marker),
    );
    (dir, marker)
}

#[test]
fn a_daemon_is_killed_when_its_call_ends() {
    let (dir, marker) = daemon_dir("daemon");
    let shared = dir.shared();
    let w = start(
        &dir,
        &[
            ("fprocess", "./daemon.sh"),
            ("sandbox_rw", shared.to_str().unwrap()),
        ],
    );
    let r = w.post("");
    assert_eq!((r.status, r.text()), (200, "started\n".to_string()));
    let pid: i32 = wait_file(&shared.join("daemon.pid"))
        .trim()
        .parse()
        .unwrap();
    // Dead by the time the response arrives: the call ends with its tree.
    assert!(!alive(pid), "daemon {pid} outlived its call");
    assert!(processes_with(&marker).is_empty());
    assert!(w.children().is_empty(), "{:?}", w.children());
    // The daemon's shell and its sleep, one generation per sweep round.
    let killed: u64 = w
        .metrics()
        .lines()
        .find_map(|l| l.strip_prefix("moat_watchdog_leftovers_killed_total "))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert_eq!(killed, 2);
}

#[test]
fn nothing_is_left_after_many_calls_killed_crashed_or_daemonizing() {
    let dir = TestDir::new("many");
    let shared = dir.shared();
    let marker = format!("moat-many-{}", std::process::id());
    dir.script(
        "mixed.sh",
        &format!(
            r#"#!/bin/sh
read what
case "$what" in
  ok) echo fine ;;
  fail) exit 7 ;;
  crash) kill -SEGV $$ ;;
  slow) sleep 300 ;;
  orphan) sh -c 'sleep 300; : {m}' & echo left ;;
  daemon) ( setsid sh -c 'sleep 300; : {m}' </dev/null >/dev/null 2>&1 & ) ; echo gone ;;
  fill) mkdir -p $TMPDIR/a/b/c && echo x > $TMPDIR/a/b/c/f && ln -s /etc $TMPDIR/link && ln -s {shared} $TMPDIR/shared && echo filled ;;
  stdin) cat >/dev/null; echo read ;;
esac
"#,
            m = marker,
            shared = shared.display()
        ),
    );
    let w = start(&dir, &[("fprocess", "./mixed.sh"), ("exec_timeout", "1s")]);
    let port = w.port;
    let kinds = [
        "ok", "fail", "crash", "slow", "orphan", "daemon", "fill", "stdin",
    ];
    let mut threads = Vec::new();
    for round in 0..3 {
        for k in kinds {
            let body = if k == "stdin" {
                format!("{k}\n{}", "x".repeat(200_000))
            } else {
                format!("{k}\n")
            };
            threads.push(std::thread::spawn(move || {
                let r = curl(port, "POST", "/", &[], Some(body.as_bytes())).unwrap();
                (k, round, r.status)
            }));
        }
    }
    for t in threads {
        let (k, round, status) = t.join().unwrap();
        let expect = match k {
            "fail" | "crash" => 500,
            "slow" => 408,
            _ => 200,
        };
        assert_eq!(status, expect, "{k} in round {round}");
    }
    assert!(
        processes_with(&marker).is_empty(),
        "{:?}",
        processes_with(&marker)
    );
    assert!(w.children().is_empty(), "children left: {:?}", w.children());
    let left = w.leftover_call_dirs();
    assert!(left.is_empty(), "directories left: {left:?}");
    // The link a call planted was removed, not followed.
    assert!(shared.exists());
    let root = w.tmp_root();
    assert_eq!(w.stop(), Some(0));
    assert!(!root.exists());
}

#[test]
fn the_network_is_closed_unless_configured() {
    let dir = probe_dir("network");
    let open = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (o, c) = (
        open.local_addr().unwrap().port(),
        closed.local_addr().unwrap().port(),
    );
    let probe = format!("udp\ntcp {o}\ntcp {c}\n");
    let w = start(&dir, &[("fprocess", "./probe.py")]);
    assert_eq!(
        results(&w.post(&probe)),
        ["err EACCES", "err EACCES", "err EACCES"]
    );
    drop(w);
    let ports = o.to_string();
    let w = start(
        &dir,
        &[
            ("fprocess", "./probe.py"),
            ("sandbox_connect_tcp", &ports),
            ("sandbox_allow_udp", "true"),
        ],
    );
    assert_eq!(results(&w.post(&probe)), ["ok", "ok", "err EACCES"]);
    drop(w);
    let w = start(&dir, &[("fprocess", "./probe.py"), ("sandbox", "off")]);
    assert_eq!(results(&w.post(&probe)), ["ok", "ok", "ok"]);
}

#[test]
fn as_pid_1_it_reaps_everything_and_stops_on_sigterm() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 || !std::path::Path::new("/usr/bin/unshare").exists() {
        eprintln!(
            "skipped: needs root and unshare(1) to start the watchdog as PID 1 of a PID namespace"
        );
        return;
    }
    let (dir, marker) = daemon_dir("pid1");
    let shared = dir.shared();
    let w = match try_start_in(
        &dir,
        &[
            ("fprocess", "./daemon.sh"),
            ("sandbox_rw", shared.to_str().unwrap()),
        ],
        &[
            "/usr/bin/unshare",
            "--pid",
            "--fork",
            "--mount-proc",
            "--kill-child",
        ],
    ) {
        Ok(w) => w,
        Err((code, log)) => panic!("did not start as PID 1 (exit {code:?}):\n{log}"),
    };
    let status = std::fs::read_to_string(format!("/proc/{}/status", w.pid())).unwrap();
    let nspid = status.lines().find(|l| l.starts_with("NSpid:")).unwrap();
    assert!(
        nspid.ends_with("\t1"),
        "not PID 1 in its namespace: {nspid}"
    );
    for _ in 0..5 {
        let _ = std::fs::remove_file(shared.join("daemon.pid"));
        let r = w.post("");
        assert_eq!((r.status, r.text()), (200, "started\n".to_string()));
        // The pid it wrote is its pid in the namespace: look for it by its command line.
        wait_file(&shared.join("daemon.pid"));
        assert!(
            processes_with(&marker).is_empty(),
            "daemon outlived its call: {:?}",
            processes_with(&marker)
        );
    }
    assert!(w.children().is_empty(), "{:?}", w.children());
    let root = w.tmp_root();
    // PID 1 ignores signals it has no handler for: SIGTERM must still stop it.
    assert_eq!(w.stop(), Some(0));
    assert!(!root.exists());
}

/// Call 1 leaves a secret in a SysV message queue and in the user keyring; call 2 looks.
fn ipc_then_read(sandbox: &str) -> (Vec<String>, Vec<String>) {
    let dir = probe_dir(&format!("ipc-{sandbox}"));
    let w = start_probe(&dir, sandbox);
    let key = 0x6d6f_0000 + (std::process::id() & 0xffff);
    let name = format!("moat-test-{}", std::process::id());
    let first = results(&w.post(&format!("msg-put {key}\nkey-put {name}\n")));
    let second = results(&w.post(&format!("msg-get {key}\nkey-get {name}\n")));
    (first, second)
}

#[test]
fn sysv_ipc_and_keyrings_cannot_carry_data_to_the_next_call() {
    if std::env::consts::ARCH != "x86_64" {
        eprintln!("skipped: the probe uses x86_64 system call numbers for keyrings");
        return;
    }
    let (first, second) = ipc_then_read("required");
    assert_eq!(first, ["err EACCES", "err EACCES"]);
    assert!(second.iter().all(|l| l.starts_with("err ")), "{second:?}");
    // Control: without the sandbox both carry the secret (and the second call removes it).
    let (first, second) = ipc_then_read("off");
    assert_eq!(first, ["ok", "ok"]);
    assert_eq!(second, ["ok s3cret", "ok s3cret"]);
}
