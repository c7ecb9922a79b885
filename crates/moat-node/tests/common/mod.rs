//! A node for the installer's tests: the machine's own containerd binary (Debian's
//! 1.6.20, installed by scripts/test.sh), run by hand (there is no systemd here) with its
//! configuration, root, state and socket in a temporary directory, and a restart script
//! the installer calls as its restart hook.
#![allow(dead_code)]

pub mod cri;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Why these tests cannot run here, if they cannot.
pub fn skip_reason() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root (containerd needs it)".into());
    }
    for (bin, pkg) in [
        ("containerd", "containerd"),
        ("ctr", "containerd"),
        ("runc", "runc"),
    ] {
        if which(bin).is_none() {
            return Some(format!("{bin} not installed (apt-get install {pkg})"));
        }
    }
    None
}

macro_rules! need_containerd {
    () => {
        if let Some(why) = $crate::common::skip_reason() {
            eprintln!("SKIP: {why}");
            return;
        }
    };
}

pub fn which(cmd: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(cmd))
            .find(|c| c.is_file())
    })
}

/// The configuration file Debian 12's containerd package ships (/etc/containerd/config.toml).
pub const DEBIAN: &str = r#"version = 2

[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/usr/lib/cni"
      conf_dir = "/etc/cni/net.d"
  [plugins."io.containerd.internal.v1.opt"]
    path = "/var/lib/containerd/opt"
"#;

/// What kubeadm's set-up guide has one write: the systemd cgroup driver on runc, and the
/// cluster's own sandbox image.
pub const KUBEADM: &str = r#"version = 2

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.9"

  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = true

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/opt/cni/bin"
    conf_dir = "/etc/cni/net.d"

  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "/etc/containerd/certs.d"
"#;

/// `containerd config default`, as this containerd writes it (it holds `imports = []`).
pub fn containerd_default() -> String {
    let o = Command::new("containerd")
        .args(["config", "default"])
        .output()
        .unwrap();
    assert!(o.status.success());
    String::from_utf8(o.stdout).unwrap()
}

/// A node: a directory holding containerd's configuration, root, state and socket.
pub struct Node {
    pub dir: tempfile::TempDir,
}

impl Node {
    /// A node whose containerd configuration is `config` with its root, state and socket
    /// moved under the node's directory (every other line as given).
    pub fn new(config: &str) -> Node {
        let dir = tempfile::Builder::new()
            .prefix("moat-node-")
            .tempdir()
            .unwrap();
        let n = Node { dir };
        let d = n.path().display().to_string();
        let text = if config.contains("root = \"/var/lib/containerd\"") {
            config
                .replace(
                    "root = \"/var/lib/containerd\"",
                    &format!("root = \"{d}/root\""),
                )
                .replace(
                    "state = \"/run/containerd\"",
                    &format!("state = \"{d}/state\""),
                )
                .replace(
                    "address = \"/run/containerd/containerd.sock\"",
                    &format!("address = \"{d}/containerd.sock\""),
                )
        } else {
            format!(
                "root = \"{d}/root\"\nstate = \"{d}/state\"\n{config}\n[grpc]\n  address = \"{d}/containerd.sock\"\n"
            )
        };
        std::fs::create_dir_all(n.path().join("etc")).unwrap();
        std::fs::write(n.config(), text).unwrap();
        std::fs::write(
            n.restart_script(),
            format!(
                r#"#!/bin/sh
# Restarts this node's containerd: stop the running one, start one on the configuration.
pidfile={d}/containerd.pid
if [ -s "$pidfile" ]; then
  pid=$(cat "$pidfile")
  kill "$pid" 2>/dev/null
  while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
fi
echo "restart $MOAT_RESTART_SERVICE" >> {d}/restarts
# moat-runtime (run by containerd's shims, which pass this on) reads the node's
# configuration here instead of the machine's /etc/moat/runtime.toml.
export MOAT_RUNTIME_CONFIG={d}/etc/moat/runtime.toml
cd /
setsid containerd --config {d}/etc/config.toml >> {d}/containerd.log 2>&1 < /dev/null &
echo $! > "$pidfile"
"#
            ),
        )
        .unwrap();
        n
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn config(&self) -> PathBuf {
        self.path().join("etc/config.toml")
    }

    pub fn socket(&self) -> PathBuf {
        self.path().join("containerd.sock")
    }

    pub fn restart_script(&self) -> PathBuf {
        self.path().join("restart.sh")
    }

    /// How many times the installer restarted containerd.
    pub fn restarts(&self) -> usize {
        std::fs::read_to_string(self.path().join("restarts"))
            .unwrap_or_default()
            .lines()
            .count()
    }

    /// Starts (or restarts) the node's containerd and waits until it answers.
    pub fn start(&self) {
        let st = Command::new("sh")
            .arg(self.restart_script())
            .status()
            .unwrap();
        assert!(st.success());
        self.wait_answering();
    }

    pub fn wait_answering(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.ctr(&["version"]).status.success() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("containerd did not answer: {}", self.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path().join("containerd.log")).unwrap_or_default()
    }

    pub fn pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.path().join("containerd.pid"))
            .ok()
            .and_then(|p| p.trim().parse().ok())
    }

    /// `ctr --address <socket> ARGS`.
    pub fn ctr(&self, args: &[&str]) -> Output {
        Command::new("ctr")
            .arg("--address")
            .arg(self.socket())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// The status of the CRI plugin, as `ctr plugins ls` shows it.
    pub fn cri_status(&self) -> String {
        let o = self.ctr(&["plugins", "ls"]);
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .find(|l| {
                l.starts_with("io.containerd.grpc.v1 ")
                    && l.split_whitespace().nth(1) == Some("cri")
            })
            .and_then(|l| l.split_whitespace().last())
            .unwrap_or("absent")
            .to_string()
    }

    /// `containerd config dump` of the node's configuration.
    pub fn dump(&self) -> toml::Table {
        let o = Command::new("containerd")
            .arg("--config")
            .arg(self.config())
            .args(["config", "dump"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        toml::from_str(&String::from_utf8_lossy(&o.stdout)).unwrap()
    }

    /// Runs the installer (`install` or `uninstall`) against this node, the restart
    /// script as its hook, binaries from `from`, and extra arguments.
    pub fn installer(&self, command: &str, from: &Path, extra: &[&str]) -> Output {
        let d = self.path();
        let mut c = Command::new(env!("CARGO_BIN_EXE_moat-node"));
        c.arg(command)
            .args(["--host-root", "/", "--runtime", "containerd"])
            .arg("--containerd-config")
            .arg(self.config())
            .arg("--bin-dir")
            .arg(d.join("opt/moat/bin"))
            .arg("--moat-config")
            .arg(d.join("etc/moat/runtime.toml"))
            .arg("--work-dir")
            .arg(d.join("work"))
            .arg("--from")
            .arg(from)
            .args(["--timeout", "30"])
            .args(extra);
        if !extra.contains(&"--restart-command") {
            c.arg("--restart-command")
                .arg(format!("sh {}", self.restart_script().display()));
        }
        c.stdin(Stdio::null()).output().unwrap()
    }

    /// Stops the node's containerd.
    pub fn stop(&self) {
        if let Some(pid) = self.pid() {
            // SAFETY: signalling the containerd this node started.
            unsafe { libc::kill(pid, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            // SAFETY: as above; it did not stop in time.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            let _ = std::fs::remove_file(self.path().join("containerd.pid"));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn out(o: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Stand-ins for the binaries (the installer copies them; their content does not matter
/// to containerd's configuration).
pub fn fake_binaries() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for b in ["moat", "moat-runtime"] {
        std::fs::write(d.path().join(b), format!("#!/bin/sh\n# {b}\n")).unwrap();
    }
    d
}

/// A value at a dotted path of a dump.
pub fn at<'a>(t: &'a toml::Table, path: &[&str]) -> Option<&'a toml::Value> {
    let (first, rest) = path.split_first()?;
    let v = t.get(*first)?;
    if rest.is_empty() {
        Some(v)
    } else {
        at(v.as_table()?, rest)
    }
}

pub const CRI: &str = "io.containerd.grpc.v1.cri";
