//! Shared by the container tests: a busybox-static bundle driven through moat-runtime and
//! the real runc, the binaries under test, and the probe every confinement test runs.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// moat-runtime, and the static `moat` launcher and `moat-probe` built next to it.
pub fn bin(name: &str) -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_moat-runtime")).with_file_name(name)
}

/// Builds the launcher and the probe once (cheap when they are up to date), so the tests
/// never run a stale launcher.
pub fn ensure_built() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let st = Command::new(cargo)
            .args(["build", "--quiet", "-p", "moat", "-p", "moat-probe"])
            .status()
            .expect("cargo build");
        assert!(st.success(), "building moat and moat-probe failed");
    });
}

pub fn which(cmd: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(cmd))
            .find(|c| c.is_file())
    })
}

/// Why the container tests cannot run here, if they cannot.
pub fn skip_reason() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root".into());
    }
    if which("runc").is_none() {
        return Some("runc not installed (apt-get install runc)".into());
    }
    if !Path::new("/bin/busybox").exists() {
        return Some("busybox-static not installed (apt-get install busybox-static)".into());
    }
    None
}

macro_rules! need_runc {
    () => {
        if let Some(why) = $crate::common::skip_reason() {
            eprintln!("SKIP: {why}");
            return;
        }
        $crate::common::ensure_built();
    };
}

pub const POLICY_TOML: &str =
    "[filesystem]\nread_exec = [\"/bin\"]\nread = [\"/etc\"]\nread_write = [\"/tmp\"]\n";

/// The probe line every confinement test runs, and what the policy above must answer.
pub const PROBE: &[&str] = &[
    "/bin/moat-probe",
    "read",
    "/etc/hostname",
    ";",
    "create",
    "/tmp/x",
    ";",
    "read",
    "/root/secret",
    ";",
    "write",
    "/etc/hostname",
    ";",
    "bind-tcp",
    "0",
];
pub const CONFINED: &str = "ok\nok\nEACCES\nEACCES\nEACCES\n";

/// [`PROBE`] creating `tmp` instead of `/tmp/x`, for a second probe in the same container.
pub fn probe_creating(tmp: &str) -> Vec<String> {
    PROBE
        .iter()
        .map(|a| if *a == "/tmp/x" { tmp } else { a }.to_string())
        .collect()
}
pub const OPEN: &str = "ok\nok\nok\nok\nok\n";

/// A bundle in a temporary directory with its own runc state root, deleted (container
/// included) when dropped.
pub struct Bundle {
    pub dir: tempfile::TempDir,
    pub id: String,
}

impl Bundle {
    pub fn new(tag: &str) -> Bundle {
        let dir = tempfile::tempdir().unwrap();
        let rootfs = dir.path().join("rootfs");
        for d in ["bin", "etc", "root", "tmp", "proc", "dev", "sys", "usr"] {
            std::fs::create_dir_all(rootfs.join(d)).unwrap();
        }
        std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
        for l in ["sh", "cat", "ls", "echo", "nc", "true", "sleep", "id"] {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(l)).unwrap();
        }
        std::fs::copy(bin("moat-probe"), rootfs.join("bin/moat-probe")).unwrap();
        std::fs::write(rootfs.join("etc/hostname"), "container\n").unwrap();
        std::fs::write(rootfs.join("root/secret"), "secret\n").unwrap();
        let st = Command::new("runc")
            .arg("spec")
            .current_dir(dir.path())
            .status()
            .unwrap();
        assert!(st.success());
        let b = Bundle {
            dir,
            id: format!("moat-{tag}-{}", std::process::id()),
        };
        b.edit(|c| {
            c["process"]["terminal"] = false.into();
            c["process"]["args"] = serde_json::json!(PROBE);
            c["root"]["readonly"] = false.into();
            // Share the host network: a fresh netns has loopback down.
            let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
            ns.retain(|n| n["type"] != "network");
        });
        b
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("runc-root")
    }

    pub fn config(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(self.path().join("config.json")).unwrap()).unwrap()
    }

    pub fn edit(&self, f: impl FnOnce(&mut serde_json::Value)) {
        let mut c = self.config();
        f(&mut c);
        std::fs::write(
            self.path().join("config.json"),
            serde_json::to_vec_pretty(&c).unwrap(),
        )
        .unwrap();
    }

    pub fn annotate(&self, key: &str, value: &str) {
        self.edit(|c| {
            if c.get("annotations").is_none() {
                c["annotations"] = serde_json::json!({});
            }
            c["annotations"][key] = value.into();
        });
    }

    /// A runtime command with this bundle's root and log, in the bundle directory.
    pub fn cmd(&self, runtime: &Path) -> Command {
        let mut c = Command::new(runtime);
        c.current_dir(self.path())
            .arg("--root")
            .arg(self.root())
            .arg("--log")
            .arg(self.path().join("runc.log"))
            .arg("--log-format")
            .arg("json");
        c
    }

    /// `run` to completion through `runtime`.
    pub fn run(&self, runtime: &Path) -> Output {
        self.cmd(runtime)
            .args(["run", "--bundle"])
            .arg(self.path())
            .arg(&self.id)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path().join("runc.log")).unwrap_or_default()
    }

    /// Deletes the container (killing it first), whatever state it is in, and the
    /// cgroup-bpf pins moat-runtime made for it (runc alone leaves them).
    pub fn delete(&self) {
        let _ = std::fs::remove_dir_all(Path::new("/sys/fs/bpf/moat").join(&self.id));
        let _ = Command::new("runc")
            .arg("--root")
            .arg(self.root())
            .args(["delete", "-f", &self.id])
            .stderr(Stdio::null())
            .status();
    }

    /// Starts `sleep` in the container through `runtime` (create + start, detached). The
    /// container keeps create's stdio: it gets a file, not a pipe nobody closes.
    pub fn start_sleeping(&self, runtime: &Path) {
        self.start_with(runtime, &["/bin/sleep", "30"]);
    }

    /// Starts `args` in the container through `runtime` (create + start, detached).
    pub fn start_with(&self, runtime: &Path, args: &[&str]) {
        self.edit(|c| c["process"]["args"] = serde_json::json!(args));
        let err = self.path().join("create.err");
        let st = self
            .cmd(runtime)
            .args(["create", &self.id])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&err).unwrap())
            .status()
            .unwrap();
        assert!(
            st.success(),
            "create: {}",
            std::fs::read_to_string(&err).unwrap_or_default()
        );
        let o = self
            .cmd(runtime)
            .args(["start", &self.id])
            .output()
            .unwrap();
        assert!(o.status.success(), "start: {}", stderr(&o));
    }

    /// Whether runc knows the container.
    pub fn exists(&self) -> bool {
        Command::new("runc")
            .arg("--root")
            .arg(self.root())
            .args(["state", &self.id])
            .stderr(Stdio::null())
            .output()
            .unwrap()
            .status
            .success()
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        self.delete();
    }
}

/// moat-runtime, for tests: the first call points `MOAT_RUNTIME_CONFIG` (inherited by
/// every moat-runtime a test starts, directly or through podman) at an empty file, so that
/// the machine's own /etc/moat/runtime.toml decides nothing. A test that wants a
/// configuration sets the variable on its command.
pub fn moat_runtime() -> PathBuf {
    static NO_CONFIG: std::sync::Once = std::sync::Once::new();
    NO_CONFIG.call_once(|| {
        if std::env::var_os("MOAT_RUNTIME_CONFIG").is_none() {
            let empty = Path::new(env!("CARGO_TARGET_TMPDIR")).join("moat-runtime-empty.toml");
            std::fs::write(&empty, "").expect("empty configuration file");
            // Rust's own environment lock orders this against every Command spawn.
            std::env::set_var("MOAT_RUNTIME_CONFIG", &empty);
        }
    });
    PathBuf::from(env!("CARGO_BIN_EXE_moat-runtime"))
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn assert_confined(b: &Bundle) {
    let o = b.run(&moat_runtime());
    assert_eq!(
        stdout(&o),
        CONFINED,
        "stderr: {}\nlog: {}",
        stderr(&o),
        b.log()
    );
}
