//! Shared by the integration tests: a real `moat-watchdog` on free loopback ports, real
//! functions (shell and Python scripts in a fresh function directory), curl as the HTTP
//! client, and a raw TCP client for requests curl will not send.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A fresh directory for one test: the function's directory (`fn`), a directory calls may
/// write to when a test grants it (`shared`), and the watchdog's own TMPDIR (`wdtmp`, where
/// its lock file goes).
pub struct TestDir {
    pub root: PathBuf,
}

impl TestDir {
    pub fn new(name: &str) -> TestDir {
        let root =
            std::env::temp_dir().join(format!("moat-watchdog-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for d in ["fn", "shared", "wdtmp"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        TestDir { root }
    }

    pub fn function_dir(&self) -> PathBuf {
        self.root.join("fn")
    }

    pub fn shared(&self) -> PathBuf {
        self.root.join("shared")
    }

    pub fn wdtmp(&self) -> PathBuf {
        self.root.join("wdtmp")
    }

    /// Writes an executable script into the function directory.
    pub fn script(&self, name: &str, text: &str) -> PathBuf {
        let p = self.function_dir().join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// A running watchdog.
pub struct Watchdog {
    pub child: Child,
    /// The watchdog's pid when `child` is a wrapper around it.
    pub inner: Option<i32>,
    pub port: u16,
    pub metrics_port: u16,
    pub log: Arc<Mutex<Vec<String>>>,
}

/// Starts the watchdog in `dir`'s function directory with `env` (on top of PATH, free
/// ports, `healthcheck_interval=0` and the test's own TMPDIR) and waits until it listens.
pub fn start(dir: &TestDir, env: &[(&str, &str)]) -> Watchdog {
    match try_start(dir, env) {
        Ok(w) => w,
        Err((code, log)) => panic!("watchdog did not start (exit {code:?}):\n{log}"),
    }
}

/// Starts the watchdog; on failure returns its exit status and output.
pub fn try_start(dir: &TestDir, env: &[(&str, &str)]) -> Result<Watchdog, (Option<i32>, String)> {
    try_start_in(dir, env, &[])
}

/// Starts the watchdog under `wrapper` (a command that runs its arguments as a child, such
/// as `unshare --pid --fork`); the watchdog is then the wrapper's only child.
pub fn try_start_in(
    dir: &TestDir,
    env: &[(&str, &str)],
    wrapper: &[&str],
) -> Result<Watchdog, (Option<i32>, String)> {
    try_start_with(dir, env, wrapper, None)
}

/// Starts the watchdog with its descriptor limit (soft and hard) at `nofile`.
pub fn start_with_nofile(dir: &TestDir, env: &[(&str, &str)], nofile: u64) -> Watchdog {
    match try_start_with(dir, env, &[], Some(nofile)) {
        Ok(w) => w,
        Err((code, log)) => panic!("watchdog did not start (exit {code:?}):\n{log}"),
    }
}

fn try_start_with(
    dir: &TestDir,
    env: &[(&str, &str)],
    wrapper: &[&str],
    nofile: Option<u64>,
) -> Result<Watchdog, (Option<i32>, String)> {
    let bin = env!("CARGO_BIN_EXE_moat-watchdog");
    let mut cmd = match wrapper.split_first() {
        Some((w, args)) => {
            let mut c = Command::new(w);
            c.args(args).arg(bin);
            c
        }
        None => Command::new(bin),
    };
    cmd.current_dir(dir.function_dir())
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("TMPDIR", dir.wdtmp())
        .env("port", "0")
        .env("metrics_port", "0")
        .env("healthcheck_interval", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    if let Some(n) = nofile {
        moat_serve::nofile::limit_child(&mut cmd, n);
    }
    let mut child = cmd.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    {
        let log = Arc::clone(&log);
        std::thread::spawn(move || {
            let mut ports = (None, None);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(p) = line.split("Metrics listening on port: ").nth(1) {
                    ports.1 = p.trim().parse::<u16>().ok();
                } else if let Some(p) = line.split("Listening on port: ").nth(1) {
                    ports.0 = p.trim().parse::<u16>().ok();
                }
                if let (Some(a), Some(b)) = ports {
                    let _ = tx.send((a, b));
                    ports = (None, None);
                }
                log.lock().unwrap().push(line);
            }
        });
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok((port, metrics_port)) = rx.try_recv() {
            // The lock file is written right after the ports are logged.
            std::thread::sleep(Duration::from_millis(20));
            let inner = if wrapper.is_empty() {
                None
            } else {
                children_of(child.id() as i32).first().copied()
            };
            return Ok(Watchdog {
                child,
                inner,
                port,
                metrics_port,
                log,
            });
        }
        if let Some(status) = child.try_wait().unwrap() {
            std::thread::sleep(Duration::from_millis(100));
            let text = log.lock().unwrap().join("\n");
            return Err((status.code(), text));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("watchdog did not listen within 20 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

impl Watchdog {
    pub fn pid(&self) -> i32 {
        self.inner.unwrap_or(self.child.id() as i32)
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Waits until the log contains `needle`.
    pub fn wait_log(&self, needle: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.log().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    /// Where its calls' private directories are (from its log).
    pub fn tmp_root(&self) -> PathBuf {
        let log = self.log();
        let path = log
            .lines()
            .find_map(|l| l.split("private temporary directories in ").nth(1))
            .expect("the watchdog logs where private directories go");
        PathBuf::from(path.trim())
    }

    /// The call directories that exist now.
    pub fn call_dirs(&self) -> Vec<String> {
        match std::fs::read_dir(self.tmp_root()) {
            Ok(rd) => rd
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Call directories that should not exist: any beyond the ones the watchdog keeps ready
    /// for the next calls, and any that is not empty (a used one). Empty when none.
    pub fn leftover_call_dirs(&self) -> Vec<String> {
        let mut left = Vec::new();
        // Spare directories are made in the background after each answer.
        eventually(Duration::from_secs(2), || {
            let dirs = self.call_dirs();
            left = dirs
                .iter()
                .filter(|d| {
                    std::fs::read_dir(self.tmp_root().join(d))
                        .map(|mut e| e.next().is_some())
                        .unwrap_or(true)
                })
                .cloned()
                .collect();
            if dirs.len() > moat_watchdog::SPARE_SLOTS {
                left = dirs;
            }
            left.is_empty()
        });
        left
    }

    /// Its children (any state), from /proc, but its guardian (a child that belongs to no
    /// call, see guardian.rs).
    pub fn children(&self) -> Vec<i32> {
        children_of(self.pid())
            .into_iter()
            .filter(|&p| !is_guardian(p))
            .collect()
    }

    /// Its guardian's pid, when it has one.
    pub fn guardian(&self) -> Option<i32> {
        children_of(self.pid())
            .into_iter()
            .find(|&p| is_guardian(p))
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn stop(mut self) -> Option<i32> {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.pid(), libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("watchdog did not stop within 20 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// A request with curl.
    pub fn curl(
        &self,
        method: &str,
        path: &str,
        headers: &[&str],
        body: Option<&[u8]>,
    ) -> Result<Resp, String> {
        curl(self.port, method, path, headers, body)
    }

    /// POST `body` to `/`.
    pub fn post(&self, body: &str) -> Resp {
        self.curl("POST", "/", &[], Some(body.as_bytes())).unwrap()
    }

    /// POST `body` to `/`, expecting no response.
    pub fn post_err(&self, body: &str) -> String {
        match self.curl("POST", "/", &[], Some(body.as_bytes())) {
            Ok(r) => panic!("expected no response, got {} {}", r.status, r.text()),
            Err(e) => e,
        }
    }

    /// The metrics text.
    pub fn metrics(&self) -> String {
        let r = curl(self.metrics_port, "GET", "/metrics", &[], None).unwrap();
        assert_eq!(r.status, 200);
        String::from_utf8(r.body).unwrap()
    }
}

impl Drop for Watchdog {
    /// SIGTERM first, so that it removes its directories (healthcheck_interval is 0 here),
    /// then SIGKILL if it has not gone within 5 s.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: signalling our own child (or the watchdog inside a wrapper).
            unsafe { libc::kill(self.pid(), libc::SIGTERM) };
            let gone = eventually(Duration::from_secs(5), || {
                matches!(self.child.try_wait(), Ok(Some(_)))
            });
            if !gone {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
    }
}

/// A response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends a request with curl; an empty reply or a connection error is `Err` with curl's
/// message.
pub fn curl(
    port: u16,
    method: &str,
    path: &str,
    headers: &[&str],
    body: Option<&[u8]>,
) -> Result<Resp, String> {
    let mut cmd = Command::new("curl");
    cmd.args([
        "-sS",
        "-i",
        "--max-time",
        "60",
        "-H",
        "Expect:",
        "-X",
        method,
    ]);
    if method == "HEAD" {
        cmd.arg("--head");
    }
    for h in headers {
        cmd.args(["-H", h]);
    }
    if body.is_some() {
        cmd.args(["--data-binary", "@-"]);
    }
    cmd.arg(format!("http://127.0.0.1:{port}{path}"));
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .expect("curl is installed (scripts/test.sh installs it)");
    {
        let mut stdin = child.stdin.take().unwrap();
        if let Some(b) = body {
            let b = b.to_vec();
            std::thread::spawn(move || {
                let _ = stdin.write_all(&b);
            });
        }
    }
    let out = child.wait_with_output().unwrap();
    if !out.status.success() {
        return Err(format!(
            "curl exit {:?}: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(parse_response(&out.stdout))
}

/// Parses `HTTP/1.1 ...` head and body (skipping 1xx heads).
pub fn parse_response(mut raw: &[u8]) -> Resp {
    loop {
        let end = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a response head");
        let head = String::from_utf8_lossy(&raw[..end]).into_owned();
        raw = &raw[end + 4..];
        let mut lines = head.split("\r\n");
        let status: u16 = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .expect("a status code");
        if (100..200).contains(&status) {
            continue;
        }
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        return Resp {
            status,
            headers,
            body: raw.to_vec(),
        };
    }
}

/// Sends raw bytes and reads until the server closes or `timeout` passes; returns what was
/// read and whether the server closed the connection.
pub fn raw_exchange(port: u16, request: &[u8], timeout: Duration) -> (Vec<u8>, bool) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(timeout)).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (out, true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return (out, false)
            }
            Err(_) => return (out, true),
        }
    }
}

/// The children of `pid` (all threads), any state.
pub fn children_of(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            if let Ok(text) = std::fs::read_to_string(t.path().join("children")) {
                out.extend(
                    text.split_whitespace()
                        .filter_map(|p| p.parse::<i32>().ok()),
                );
            }
        }
    }
    out
}

/// Whether `pid` is a watchdog's guardian process.
pub fn is_guardian(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "moat-guardian")
}

/// Whether a process exists (and is not a zombie).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rfind(')')
                .and_then(|i| stat[i + 1..].split_whitespace().next());
            state != Some("Z") && state != Some("X")
        }
        Err(_) => false,
    }
}

/// A field of `/proc/<pid>/status` in kB (`VmRSS`, `VmHWM`).
pub fn status_kb(pid: i32, field: &str) -> u64 {
    moat_serve::process::status_kb(pid as u32, field)
}

/// How many descriptors `pid` has open.
pub fn fd_count(pid: i32) -> usize {
    moat_serve::process::descriptors(pid as u32)
}

/// A keep-alive HTTP/1.1 connection that sends POSTs and reads whole answers (with a
/// Content-Length or chunked), for soaks where starting curl each time would dominate.
pub struct KeepAlive {
    stream: BufReader<TcpStream>,
}

impl KeepAlive {
    pub fn open(port: u16) -> KeepAlive {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        s.set_nodelay(true).unwrap();
        KeepAlive {
            stream: BufReader::new(s),
        }
    }

    /// POSTs `body` to `path`; returns the status and the body.
    pub fn post(&mut self, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        // One write: a second small one would wait for the first's delayed ACK (Nagle).
        let mut request = head.into_bytes();
        request.extend_from_slice(body);
        self.stream.get_mut().write_all(&request).unwrap();
        read_answer(&mut self.stream)
    }
}

/// Reads one HTTP/1.1 answer (head, then a body by Content-Length or chunked).
pub fn read_answer(r: &mut impl BufRead) -> (u16, Vec<u8>) {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let status: u16 = line.split(' ').nth(1).unwrap().parse().unwrap();
    let (mut length, mut chunked) = (None, false);
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(':').unwrap();
        if k.eq_ignore_ascii_case("content-length") {
            length = v.trim().parse::<usize>().ok();
        }
        if k.eq_ignore_ascii_case("transfer-encoding") && v.trim() == "chunked" {
            chunked = true;
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            line.clear();
            r.read_line(&mut line).unwrap();
            let n = usize::from_str_radix(line.trim(), 16).unwrap();
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk).unwrap();
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else if let Some(n) = length {
        body.resize(n, 0);
        r.read_exact(&mut body).unwrap();
    }
    (status, body)
}

/// Processes whose command line contains `marker`.
pub fn processes_with(marker: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        if let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) {
            if String::from_utf8_lossy(&cmdline).contains(marker) && alive(pid) {
                out.push(pid);
            }
        }
    }
    out
}

/// Polls `f` until it holds or `within` passes.
pub fn eventually(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Reads a file written by a call, waiting for it to appear.
pub fn wait_file(path: &Path) -> String {
    assert!(
        eventually(Duration::from_secs(10), || std::fs::read_to_string(path)
            .map(|t| t.ends_with('\n'))
            .unwrap_or(false)),
        "{} never appeared",
        path.display()
    );
    std::fs::read_to_string(path).unwrap()
}
