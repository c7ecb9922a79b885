//! podman end to end: `podman --runtime moat-runtime` confines `run` and `exec`.
//!
//! Needs root, podman, runc and busybox-static (scripts/test.sh installs them). The image
//! is imported from a local rootfs tarball: no network. podman's storage is vfs and its
//! cgroup manager cgroupfs so the test runs on any host, in a VM or a container.

#[allow(unused_macros)]
#[macro_use]
mod common;

use common::{bin, probe_creating as probe};
use std::path::Path;
use std::process::{Command, Output};

const IMAGE: &str = "localhost/moat-test-busybox:latest";

fn have(cmd: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {cmd}"))
        .output()
        .is_ok_and(|o| o.status.success())
}

fn podman() -> Command {
    let mut c = Command::new("podman");
    c.args(["--cgroup-manager=cgroupfs", "--storage-driver=vfs"]);
    c
}

/// Builds the launcher and probe, and imports the test image.
fn setup() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("not root".into());
    }
    for (cmd, pkg) in [("podman", "podman"), ("runc", "runc")] {
        if !have(cmd) {
            return Err(format!("{cmd} not installed (apt-get install {pkg})"));
        }
    }
    if !Path::new("/bin/busybox").exists() {
        return Err("busybox-static not installed (apt-get install busybox-static)".into());
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let st = Command::new(cargo)
        .args(["build", "--quiet", "-p", "moat", "-p", "moat-probe"])
        .status()
        .map_err(|e| e.to_string())?;
    assert!(st.success());
    let d = tempfile::tempdir().map_err(|e| e.to_string())?;
    let root = d.path().join("rootfs");
    for dir in ["bin", "etc", "root", "tmp", "usr"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    for l in ["sh", "sleep", "true", "cat"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(l)).unwrap();
    }
    std::fs::copy(bin("moat-probe"), root.join("bin/moat-probe")).unwrap();
    std::fs::write(root.join("etc/hostname"), "c\n").unwrap();
    std::fs::write(root.join("root/secret"), "s\n").unwrap();
    let tar = d.path().join("rootfs.tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    let o = podman()
        .arg("import")
        .arg(&tar)
        .arg(IMAGE)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    Ok(())
}

/// A policy annotation as podman's `--annotation` wants it: podman reads the flag as CSV
/// and cuts values at newlines, so the document is one-line JSON in a quoted CSV field.
fn annotation(key: &str, value: &str) -> String {
    format!("\"{key}={}\"", value.replace('"', "\"\""))
}

const POLICY: &str =
    r#"{"filesystem":{"read_exec":["/bin"],"read":["/etc"],"read_write":["/tmp"]}}"#;

fn run_args() -> Vec<String> {
    let rt = env!("CARGO_BIN_EXE_moat-runtime");
    [
        "--runtime",
        rt,
        "run",
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=4096:4096",
        "--network=host",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = podman().args(["rm", "-f", "-t", "0", &self.0]).output();
    }
}

#[test]
fn podman_run_and_exec_are_confined() {
    if let Err(why) = setup() {
        eprintln!("SKIP: {why}");
        return;
    }
    // run --rm with a policy annotation.
    let o = podman()
        .args(run_args())
        .args([
            "--rm",
            "--annotation",
            &annotation("moat.dev/policy", POLICY),
            IMAGE,
        ])
        .args(probe("/tmp/x"))
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert_eq!(out, "ok\nok\nEACCES\nEACCES\nEACCES\n", "{err}");

    // Without a policy, podman through moat-runtime behaves as with runc.
    let o = podman()
        .args(run_args())
        .args(["--rm", IMAGE])
        .args(probe("/tmp/x"))
        .output()
        .unwrap();
    assert_eq!(text(&o).0, "ok\nok\nok\nok\nok\n", "{}", text(&o).1);

    // exec into a confined container.
    let name = format!("moat-podman-{}", std::process::id());
    let _guard = Container(name.clone());
    let o = podman()
        .args(run_args())
        .args(["-d", "--name", &name, "--workdir", "/tmp"])
        .args(["--annotation", &annotation("moat.dev/preset", "default")])
        .args([IMAGE, "/bin/sleep", "60"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o).1);
    let o = podman()
        .args([
            "--runtime",
            env!("CARGO_BIN_EXE_moat-runtime"),
            "exec",
            &name,
        ])
        .args(probe("/tmp/y"))
        .output()
        .unwrap();
    // The default preset: read system files, no writes, no network.
    assert_eq!(
        text(&o).0,
        "ok\nEACCES\nEACCES\nEACCES\nEACCES\n",
        "{}",
        text(&o).1
    );

    // A bad policy: podman shows moat-runtime's message and nothing runs.
    let o = podman()
        .args(run_args())
        .args([
            "--rm",
            "--annotation",
            "moat.dev/preset=no-such-preset",
            IMAGE,
        ])
        .args(probe("/tmp/z"))
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert!(!o.status.success());
    assert_eq!(out, "");
    assert!(err.contains("unknown preset `no-such-preset`"), "{err}");
}
