//! Shared helpers for moat's integration tests: every test gets a fresh directory, runs the
//! real `moat` binary on the real kernel, and reads what `moat-probe` reports from inside.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// The `moat` binary under test.
/// Whether the tests run as root (some attacks and controls need it).
pub fn is_root() -> bool {
    // SAFETY: no preconditions.
    unsafe { libc::geteuid() == 0 }
}

pub fn moat_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_moat"))
}

/// The probe, built next to `moat` by the workspace build.
pub fn probe_bin() -> PathBuf {
    let p = moat_bin().with_file_name("moat-probe");
    assert!(
        p.exists(),
        "{} is missing: build the workspace first (cargo build --workspace)",
        p.display()
    );
    p
}

/// A scratch directory with a `moat` command factory.
pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Self {
        Scratch {
            dir: tempfile::Builder::new()
                .prefix("moat-test-")
                .tempdir_in(std::env::temp_dir())
                .expect("create temp dir"),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn p(&self, rel: &str) -> String {
        self.path(rel).to_string_lossy().into_owned()
    }

    pub fn mkdir(&self, rel: &str) -> String {
        std::fs::create_dir_all(self.path(rel)).expect("mkdir");
        self.p(rel)
    }

    pub fn write(&self, rel: &str, content: &str) -> String {
        let p = self.path(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&p, content).expect("write");
        self.p(rel)
    }

    /// Runs `moat ARGS` here.
    pub fn run(&self, args: &[&str]) -> Run {
        let mut c = self.moat();
        c.args(args);
        output(c)
    }

    /// Runs a shell script here (for tests that need the shell's fd juggling).
    pub fn shell(&self, script: &str) -> Run {
        let mut c = Command::new("/bin/sh");
        c.args(["-c", script]).current_dir(self.dir.path());
        output(c)
    }

    /// `moat` with this directory as working directory and no ABI cap inherited.
    pub fn moat(&self) -> Command {
        let mut c = Command::new(moat_bin());
        c.current_dir(self.dir.path())
            .env_remove("MOAT_MAX_ABI")
            .env("HOME", self.dir.path().join("home"))
            .stdin(Stdio::null());
        c
    }
}

/// The outcome of one moat run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }
}

pub fn output(mut cmd: Command) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("spawn moat");
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// Runs `moat run FLAGS --add-exec --ldd -- moat-probe OPS`, so the probe can start under
/// any policy; returns the probe's answers, one per operation.
pub fn probe(s: &Scratch, flags: &[&str], ops: &[&str]) -> Run {
    let mut c = s.moat();
    c.arg("run").args(flags).args(["--add-exec", "--ldd", "--"]);
    c.arg(probe_bin()).args(ops);
    output(c)
}

/// Asserts the probe printed exactly `expected`, with context on failure.
pub fn assert_answers(run: &Run, expected: &[&str]) {
    assert_eq!(
        run.lines(),
        expected,
        "probe answers differ\nexit: {}\nstderr:\n{}",
        run.code,
        run.stderr
    );
}

/// The kernel's Landlock ABI, straight from the syscall (not from moat).
pub fn kernel_abi() -> i64 {
    // SAFETY: LANDLOCK_CREATE_RULESET_VERSION with a null attribute only queries.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            1u32,
        )
    };
    v.max(0)
}

/// Skips (with a reason printed) when the kernel lacks the ABI a test needs. On the
/// project's machines (ABI 7) nothing skips.
pub fn require_abi(abi: i64) -> bool {
    let k = kernel_abi();
    if k < abi {
        eprintln!("SKIP: this test needs Landlock ABI {abi}; the kernel has {k}");
        return false;
    }
    true
}

/// A TCP listener outside the sandbox, on a free loopback port.
pub fn listener() -> (std::net::TcpListener, u16) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    (l, port)
}

/// A free loopback port (bound and released).
pub fn free_port() -> u16 {
    listener().1
}
