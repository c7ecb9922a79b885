//! `moat run --explain`: a denied read, write, exec and bind each produce a message naming
//! the operation, the object and the flag that allows it, from both sources: the tracer
//! (kernel audit off, the default here) and the kernel's Landlock audit records (audit
//! switched on for the test, then restored).

mod common;

use common::*;
use std::sync::Mutex;

/// The tests change the kernel's audit switch: one at a time.
static AUDIT: Mutex<()> = Mutex::new(());

/// Sets the kernel's audit switch (AUDIT_SET) and returns the previous value.
fn set_audit(enabled: bool) -> bool {
    // SAFETY: plain socket calls on buffers owned here.
    unsafe {
        let fd = libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 9);
        assert!(fd >= 0, "audit netlink socket");
        let ask = |kind: u16, body: &[u8]| -> Vec<u8> {
            let mut m = Vec::new();
            m.extend_from_slice(&(16 + body.len() as u32).to_ne_bytes());
            m.extend_from_slice(&kind.to_ne_bytes());
            m.extend_from_slice(&((libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16).to_ne_bytes());
            m.extend_from_slice(&[0; 8]);
            m.extend_from_slice(body);
            libc::send(fd, m.as_ptr().cast(), m.len(), 0);
            let mut buf = vec![0u8; 8192];
            let n = libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0);
            buf.truncate(n.max(0) as usize);
            buf
        };
        // AUDIT_GET: struct audit_status, `enabled` at offset 4 of the body.
        let mut before = false;
        for _ in 0..2 {
            let r = ask(1000, &[]);
            if r.len() >= 24 && u16::from_ne_bytes([r[4], r[5]]) == 1000 {
                before = u32::from_ne_bytes([r[20], r[21], r[22], r[23]]) != 0;
                break;
            }
        }
        // AUDIT_SET with mask AUDIT_STATUS_ENABLED.
        let mut body = [0u8; 44];
        body[0..4].copy_from_slice(&1u32.to_ne_bytes());
        body[4..8].copy_from_slice(&u32::from(enabled).to_ne_bytes());
        ask(1001, &body);
        libc::close(fd);
        before
    }
}

/// Four denials in one run: read, write (create), exec, bind.
fn denied_run(s: &Scratch) -> Run {
    s.write("secret", "s\n");
    let port = free_port();
    let copy = s.path("probe-copy");
    std::fs::copy(probe_bin(), &copy).unwrap();
    let script = format!(
        "{probe} read {secret}; {probe} create {new}; {copy} getpid; {probe} bind-tcp {port}; true",
        probe = probe_bin().display(),
        secret = s.p("secret"),
        new = s.p("new.txt"),
        copy = copy.display(),
    );
    // The probe may run, the scratch files may not be read, written or executed.
    let mut c = s.moat();
    c.args([
        "run",
        "--explain",
        "--rox",
        "/usr,/lib,/lib64,/bin",
        "--ro",
        "/etc,/dev",
    ])
    .arg("--rox")
    .arg(probe_bin())
    .args(["--", "/bin/sh", "-c", &script]);
    let r = output(c);
    std::fs::write(s.path("port"), port.to_string()).unwrap();
    r
}

fn assert_explained(s: &Scratch, r: &Run) {
    let port = std::fs::read_to_string(s.path("port")).unwrap();
    let dir = std::fs::canonicalize(s.dir.path()).unwrap();
    let dir = dir.display();
    let e = &r.stderr;
    for expected in [
        format!("denied read_file on {dir}/secret"),
        format!("allow it with `--ro {dir}/secret`"),
        format!("denied make_reg on {dir}\n"),
        format!("allow it with `--rw {dir}`"),
        format!("denied execute, read_file on {dir}/probe-copy"),
        format!("allow it with `--rox {dir}/probe-copy`"),
        format!("denied bind_tcp on port {port}"),
        format!("allow it with `--bind-tcp {port}`, or in a policy file `[network] bind_tcp = [{port}]`"),
    ] {
        assert!(e.contains(&expected), "missing `{expected}` in:\n{e}");
    }
    assert!(e.contains("moat: explain: the sandbox denied"), "{e}");
    assert_eq!(r.code, 0, "the command's own status");
}

#[test]
fn tracer_explains_read_write_exec_and_bind() {
    let _one = AUDIT.lock().unwrap_or_else(|e| e.into_inner());
    let was = is_root() && set_audit(false);
    let s = Scratch::new();
    let r = denied_run(&s);
    if was {
        set_audit(true);
    }
    assert!(
        r.stderr.contains("traced with seccomp user notification"),
        "{}",
        r.stderr
    );
    // Advice that works here: as root, how to switch audit on with what this machine has.
    if is_root() {
        let has_auditctl = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .any(|d| d.join("auditctl").is_file());
        let advice = if has_auditctl {
            "; `auditctl -e 1` enables it"
        } else {
            "auditctl, from the auditd package, enables it"
        };
        assert!(r.stderr.contains(advice), "{}", r.stderr);
    }
    assert_explained(&s, &r);
}

#[test]
fn audit_records_explain_read_write_exec_and_bind() {
    if !is_root() {
        eprintln!("SKIP: switching kernel audit on needs root");
        return;
    }
    if !require_abi(7) {
        return;
    }
    let _one = AUDIT.lock().unwrap_or_else(|e| e.into_inner());
    let was = set_audit(true);
    let s = Scratch::new();
    let r = denied_run(&s);
    if !was {
        set_audit(false);
    }
    assert!(
        r.stderr
            .contains("source: the kernel's Landlock audit records"),
        "{}",
        r.stderr
    );
    assert_explained(&s, &r);
}

#[test]
fn nothing_denied_says_so_and_keeps_the_status() {
    let _one = AUDIT.lock().unwrap_or_else(|e| e.into_inner());
    let s = Scratch::new();
    let r = s.run(&["run", "--explain", "--", "sh", "-c", "exit 4"]);
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert!(
        r.stderr.contains("the sandbox denied nothing"),
        "{}",
        r.stderr
    );
}

/// A listen() decided by moat's supervisor under --explain: from both sources, the allowed
/// port listens and an unbound socket is refused, as without --explain.
fn supervised_run(s: &Scratch) -> Run {
    let port = free_port();
    let p = port.to_string();
    let probe = probe_bin();
    let probe = probe.to_str().unwrap();
    s.run(&[
        "run",
        "--explain",
        "--rox",
        "/usr,/lib,/lib64,/bin",
        "--rox",
        probe,
        "--bind-tcp",
        &p,
        "--",
        probe,
        "bind-listen",
        &p,
        ";",
        "listen-unbound",
        "0",
    ])
}

#[test]
fn supervised_listen_is_decided_under_both_sources() {
    let _one = AUDIT.lock().unwrap_or_else(|e| e.into_inner());
    let s = Scratch::new();
    for audit in [false, true] {
        if audit && !(is_root() && require_abi(7)) {
            eprintln!("SKIP: the audit source needs root and Landlock ABI 7");
            continue;
        }
        let was = is_root() && set_audit(audit);
        let r = supervised_run(&s);
        if is_root() {
            set_audit(was);
        }
        // The probe exits 1 for the refused listen; moat keeps its status.
        assert_eq!(r.lines(), ["ok", "EACCES"], "audit {audit}: {}", r.stderr);
        assert_eq!(r.code, 1, "audit {audit}: {}", r.stderr);
    }
}

/// A terminal request on a device that is no terminal (`isatty` on /dev/null) would fail
/// with ENOTTY anyway: not reported. The same request on a terminal (/dev/ptmx) is.
#[test]
fn only_denials_that_can_matter_are_reported() {
    let _one = AUDIT.lock().unwrap_or_else(|e| e.into_inner());
    let s = Scratch::new();
    let probe = probe_bin();
    let probe = probe.to_str().unwrap();
    for audit in [false, true] {
        if audit && !(is_root() && require_abi(7)) {
            eprintln!("SKIP: the audit source needs root and Landlock ABI 7");
            continue;
        }
        let was = is_root() && set_audit(audit);
        let r = s.run(&[
            "run",
            "--explain",
            "--rox",
            "/usr,/lib,/lib64,/bin",
            "--rox",
            probe,
            "--ro",
            "/dev/null,/dev/ptmx",
            "--",
            probe,
            "ioctl-tty",
            "/dev/null",
            ";",
            "ioctl-tty",
            "/dev/ptmx",
        ]);
        if is_root() {
            set_audit(was);
        }
        // Both refused by Landlock (--ro has no ioctl_dev).
        assert_eq!(
            r.lines(),
            ["EACCES", "EACCES"],
            "audit {audit}: {}",
            r.stderr
        );
        assert!(
            r.stderr.contains("denied ioctl_dev on /dev/ptmx"),
            "audit {audit}: {}",
            r.stderr
        );
        assert!(
            !r.stderr.contains("on /dev/null"),
            "audit {audit}: {}",
            r.stderr
        );
    }
}
