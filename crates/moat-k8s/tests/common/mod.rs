//! Runs the real `moat-k8s webhook` binary on loopback with freshly generated certificates.

#![allow(dead_code)] // each test binary uses part of this

pub mod client;

use moat_k8s::certs::{self, CertRequest, Generated};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_moat-k8s");

/// A CA and serving pair for the test Service names.
pub fn generate() -> Generated {
    certs::generate(&CertRequest {
        service: "moat-webhook".into(),
        namespace: "moat-system".into(),
        days: 2,
        extra_names: vec![],
    })
    .expect("certificates")
}

/// A running webhook process.
pub struct Webhook {
    pub child: Child,
    pub addr: SocketAddr,
    pub ca_pem: String,
    pub dir: tempfile::TempDir,
    log: Arc<Mutex<String>>,
}

impl Webhook {
    /// Starts the webhook with `extra` arguments, and waits until it listens.
    pub fn start(extra: &[&str]) -> Webhook {
        Webhook::start_with(extra, None)
    }

    /// Starts the webhook with its descriptor limit (soft and hard) at `nofile`.
    pub fn start_with_nofile(extra: &[&str], nofile: u64) -> Webhook {
        Webhook::start_with(extra, Some(nofile))
    }

    fn start_with(extra: &[&str], nofile: Option<u64>) -> Webhook {
        let dir = tempfile::tempdir().expect("tempdir");
        let generated = generate();
        certs::write(dir.path(), &generated).expect("write certs");
        let mut cmd = Command::new(BIN);
        // SAFETY: prctl only, between fork and exec. The webhook dies with the thread that
        // started it, so no test leaves a server behind, whatever happens to the test.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        if let Some(n) = nofile {
            moat_serve::nofile::limit_child(&mut cmd, n);
        }
        let mut child = cmd
            .args(["webhook", "--addr", "127.0.0.1:0", "--tls-cert"])
            .arg(dir.path().join("tls.crt"))
            .arg("--tls-key")
            .arg(dir.path().join("tls.key"))
            .args(extra)
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn moat-k8s webhook");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("moat-k8s: webhook listening on https://") {
                    let _ = tx.send(addr.parse::<SocketAddr>().expect("address"));
                }
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("webhook did not start: {}", log.lock().unwrap()));
        Webhook {
            child,
            addr,
            ca_pem: generated.ca_pem,
            dir,
            log,
        }
    }

    pub fn cert_dir(&self) -> &Path {
        self.dir.path()
    }

    /// What the webhook printed so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits until the log contains `needle`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if self.log().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// A field of its `/proc/<pid>/status` in kB (`VmRSS`).
    pub fn status_kb(&self, field: &str) -> u64 {
        moat_serve::process::status_kb(self.child.id(), field)
    }

    /// How many descriptors it has open.
    pub fn fd_count(&self) -> usize {
        moat_serve::process::descriptors(self.child.id())
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        // SAFETY: kill(2) on our own child's pid, which we have not reaped yet.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The directory holding this test's binaries (and `moat`, once `cargo build -p moat` ran).
pub fn bin_dir() -> PathBuf {
    Path::new(BIN).parent().expect("bin dir").to_path_buf()
}
