//! The escapes Landlock alone leaves open, tried from inside a container confined through
//! moat-runtime and the real runc, in the entrypoint and in `exec`, each with the same
//! bundle under plain runc as the control: a TCP server without bind(), keystrokes pushed
//! into the terminal the container inherited, a host unix socket mounted into the
//! container, and capabilities.
//!
//! These tests need root, runc and busybox-static (scripts/test.sh installs them); without
//! them each test prints why it skips.

#[macro_use]
mod common;

use common::*;
use std::path::Path;
use std::process::{Command, Stdio};

/// Runs the bundle to completion with `args` as its entrypoint, through `runtime`.
fn run_with(b: &Bundle, runtime: &Path, args: &[&str]) -> String {
    b.edit(|c| c["process"]["args"] = serde_json::json!(args));
    let o = b.run(runtime);
    b.delete();
    format!("{}{}", stdout(&o), stderr(&o))
}

/// `exec` of `args` into the running container through `runtime`, then the container is
/// killed and deleted.
fn exec_then_delete(b: &Bundle, runtime: &Path, args: &[&str]) -> String {
    let o = b
        .cmd(runtime)
        .arg("exec")
        .arg(&b.id)
        .args(args)
        .output()
        .unwrap();
    let _ = Command::new("runc")
        .arg("--root")
        .arg(b.root())
        .args(["delete", "-f", &b.id])
        .stderr(Stdio::null())
        .status();
    format!("{}{}", stdout(&o), stderr(&o))
}

/// What `args` answers in the entrypoint and in `exec`, confined by `policy` (moat-runtime)
/// and unconfined (plain runc, the control).
fn both_ways(tag: &str, policy: &str, args: &[&str], setup: impl Fn(&Bundle)) -> [String; 4] {
    let mut out: Vec<String> = Vec::new();
    for (runtime, confined) in [
        (moat_runtime(), true),
        (Path::new("runc").to_path_buf(), false),
    ] {
        let b = Bundle::new(&format!("{tag}-{confined}"));
        setup(&b);
        if confined {
            b.annotate("moat.dev/policy", policy);
        }
        out.push(run_with(&b, &runtime, args));
        let b = Bundle::new(&format!("{tag}-exec-{confined}"));
        setup(&b);
        if confined {
            b.annotate("moat.dev/policy", policy);
        }
        b.start_sleeping(&runtime);
        out.push(exec_then_delete(&b, &runtime, args));
    }
    [
        out[0].clone(),
        out[1].clone(),
        out[2].clone(),
        out[3].clone(),
    ]
}

#[test]
fn a_confined_container_cannot_serve_without_bind() {
    need_runc!();
    let [entry, exec, plain_entry, plain_exec] = both_ways(
        "listen",
        POLICY_TOML,
        &["/bin/moat-probe", "listen-unbound", "0"],
        |_| {},
    );
    assert_eq!(entry, "EACCES\n");
    assert_eq!(exec, "EACCES\n");
    for control in [plain_entry, plain_exec] {
        assert!(
            control.starts_with("listening ") && control.ends_with("\nok\n"),
            "{control}"
        );
    }
}

/// A web server allowed port 80 (Kubernetes' "bind only the declared ports"): busybox
/// httpd serves on 80, while socket().listen() without bind fails with EACCES in the
/// entrypoint and in `exec` (moat's supervisor, inside the container, decides listen()).
/// Under plain runc, the control, the unbound socket serves.
#[test]
fn a_confined_web_server_serves_its_port_and_nothing_else() {
    need_runc!();
    let policy = "[network]\nbind_tcp = [80]\n[filesystem]\nread_exec = [\"/bin\"]\n\
                  read = [\"/www\"]\nread_write = [\"/tmp\", \"/dev/null\"]\n";
    for (runtime, confined) in [
        (moat_runtime(), true),
        (Path::new("runc").to_path_buf(), false),
    ] {
        let b = Bundle::new(&format!("httpd-{confined}"));
        let www = b.path().join("rootfs/www");
        std::fs::create_dir_all(&www).unwrap();
        std::fs::write(www.join("index.html"), "served by busybox\n").unwrap();
        if confined {
            b.annotate("moat.dev/policy", policy);
        }
        // httpd in the background; then the entrypoint tries a server of its own.
        let script = "/bin/busybox httpd -f -p 80 -h /www & \
                      /bin/moat-probe listen-unbound 0 > /tmp/entry.out 2>&1; wait";
        b.start_with(&runtime, &["/bin/sh", "-c", script]);
        let page = http_get(80);
        let entry = wait_for_file(&b.path().join("rootfs/tmp/entry.out"));
        let exec = exec_then_delete(&b, &runtime, &["/bin/moat-probe", "listen-unbound", "0"]);
        assert!(page.contains("served by busybox"), "{confined}: {page}");
        for (what, out) in [("entrypoint", entry), ("exec", exec)] {
            if confined {
                assert_eq!(out, "EACCES\n", "{what}");
            } else {
                assert!(out.starts_with("listening "), "control {what}: {out}");
            }
        }
    }
}

/// `GET /` on the loopback port, retried for five seconds while the server starts.
fn http_get(port: u16) -> String {
    use std::io::{Read, Write};
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n");
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            return out;
        }
        if std::time::Instant::now() > deadline {
            return format!("nothing listens on port {port}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The file's content once it has some, within five seconds.
fn wait_for_file(path: &Path) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let s = std::fs::read_to_string(path).unwrap_or_default();
        if s.ends_with('\n') || std::time::Instant::now() > deadline {
            return s;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A container that holds CAP_SYS_ADMIN (a privileged container) and inherited the
/// caller's terminal (`runc create` from a shell, terminal: false) can push keystrokes
/// into the shell that started it; confined, it cannot.
#[test]
fn a_confined_container_cannot_type_into_the_callers_terminal() {
    need_runc!();
    if which("script").is_none() {
        eprintln!("SKIP: script (util-linux) is not installed");
        return;
    }
    for (runtime, confined) in [
        (moat_runtime(), true),
        (Path::new("runc").to_path_buf(), false),
    ] {
        let b = Bundle::new(&format!("tty-{confined}"));
        b.edit(|c| {
            let caps = serde_json::json!(["CAP_SYS_ADMIN", "CAP_KILL", "CAP_AUDIT_WRITE"]);
            for set in ["bounding", "effective", "permitted"] {
                c["process"]["capabilities"][set] = caps.clone();
            }
            c["process"]["args"] = serde_json::json!([
                "/bin/sh",
                "-c",
                "/bin/moat-probe tiocsti 0 'echo pwned\n' > /tmp/answer"
            ]);
        });
        if confined {
            b.annotate("moat.dev/policy", POLICY_TOML);
        }
        let typed = b.path().join("typed");
        let rt = runtime.display().to_string();
        let root = b.root().display().to_string();
        let line = format!(
            "{rt} --root {root} create -b {bundle} {id} && {rt} --root {root} start {id}; \
             for i in $(seq 50); do [ -e {bundle}/rootfs/tmp/answer ] && break; sleep 0.1; done; \
             sleep 0.2; runc --root {root} delete -f {id}; \
             read -t 1 -r line; printf '%s' \"$line\" > {typed}",
            bundle = b.path().display(),
            id = b.id,
            typed = typed.display()
        );
        let mut child = Command::new("script")
            .args(["-q", "-e", "-c"])
            .arg(format!("bash -c '{}'", line.replace('\'', "'\\''")))
            .arg("/dev/null")
            .current_dir(b.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let input = child.stdin.take();
        let _ = child.wait();
        drop(input);
        let answer =
            std::fs::read_to_string(b.path().join("rootfs/tmp/answer")).unwrap_or_default();
        let typed = std::fs::read_to_string(&typed).unwrap_or_default();
        if confined {
            assert_eq!(answer, "EACCES\n", "log: {}", b.log());
            assert_eq!(typed, "");
        } else {
            assert_eq!(answer, "ok\n");
            assert_eq!(typed, "echo pwned", "the control could not type");
        }
    }
}

/// A host daemon's socket mounted into the container (docker.sock, a database's socket):
/// confined, the container reaches it only if the policy names it.
#[test]
fn a_confined_container_cannot_reach_a_mounted_host_socket() {
    need_runc!();
    let host = tempfile::tempdir().unwrap();
    let sock = host.path().join("daemon.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let mount = host.path().to_str().unwrap().to_string();
    let setup = |b: &Bundle| {
        b.edit(|c| {
            c["mounts"].as_array_mut().unwrap().push(serde_json::json!({
                "destination": "/run/host", "type": "bind", "source": mount,
                "options": ["bind", "rw"]
            }));
        });
        std::fs::create_dir_all(b.path().join("rootfs/run/host")).unwrap();
    };
    let [entry, exec, plain_entry, plain_exec] = both_ways(
        "unix",
        POLICY_TOML,
        &["/bin/moat-probe", "unix-connect", "/run/host/daemon.sock"],
        setup,
    );
    assert_eq!(entry, "EACCES\n");
    assert_eq!(exec, "EACCES\n");
    assert_eq!(plain_entry, "ok\n");
    assert_eq!(plain_exec, "ok\n");
}

/// The launcher keeps the capabilities the container's configuration grants (runc applied
/// them) unless the policy names a set; then only those stay.
#[test]
fn capabilities_follow_the_container_unless_the_policy_names_a_set() {
    need_runc!();
    let with_chown = |b: &Bundle| {
        b.edit(|c| {
            let caps = serde_json::json!(["CAP_CHOWN", "CAP_NET_BIND_SERVICE", "CAP_KILL"]);
            for set in ["bounding", "effective", "permitted"] {
                c["process"]["capabilities"][set] = caps.clone();
            }
        });
        std::fs::write(b.path().join("rootfs/tmp/f"), "x").unwrap();
    };
    let probe = ["/bin/moat-probe", "caps", ";", "chown", "/tmp/f", "65534"];
    let [entry, exec, plain_entry, plain_exec] = both_ways("caps", POLICY_TOML, &probe, with_chown);
    // CHOWN (0), KILL (5), NET_BIND_SERVICE (10): 0x421.
    let want = "ok eff=421 prm=421 inh=0 bnd=421 amb=0\nok\n";
    assert_eq!(plain_entry, want);
    assert_eq!(plain_exec, want);
    assert_eq!(entry, want);
    assert_eq!(exec, want);

    let named = format!("{POLICY_TOML}[capabilities]\nkeep = [\"NET_BIND_SERVICE\"]\n");
    let [entry, exec, ..] = both_ways("capsnamed", &named, &probe, with_chown);
    // The bounding set stays as runc left it: shrinking it needs CAP_SETPCAP, which this
    // container does not have. no_new_privs keeps what an exec grants within the permitted
    // set, which is what the policy named.
    let want = "ok eff=400 prm=400 inh=400 bnd=421 amb=0\nEPERM\n";
    assert_eq!(entry, want);
    assert_eq!(exec, want);
}
