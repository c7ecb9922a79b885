//! The watchdog under an operator's worst day, each case with the real binary, real
//! functions and real clients: outputs far larger than memory should hold, clients that
//! read slowly or not at all, descriptors exhausted by idle connections, calls that fork
//! without end, fill their directory or spin, the watchdog killed with SIGKILL mid-call,
//! and calls cut off by a shutdown. Bounded soaks, no timed assertions.

mod common;

use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Whether this machine lets a root watchdog make per-call control groups and tmpfs
/// mounts; the tests of limits and of SIGKILL need them (CI runs as root).
fn privileged(what: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let cgroups = std::fs::read_to_string("/proc/self/mountinfo")
        .is_ok_and(|m| m.contains(" - cgroup2 ") || m.contains(" - cgroup "));
    if !(root && cgroups) {
        eprintln!("skipped {what}: needs root and a cgroup filesystem (per-call control groups)");
    }
    root && cgroups
}

#[test]
fn a_100_mb_output_reaches_a_slow_reader_in_bounded_memory() {
    let dir = TestDir::new("stream");
    dir.script("big.sh", "#!/bin/sh\nhead -c 104857600 /dev/zero\n");
    let w = start(&dir, &[("fprocess", "./big.sh"), ("write_timeout", "600s")]);
    // Warm up, then measure from here.
    assert_eq!(w.post("").body.len(), 104_857_600);
    let before = status_kb(w.pid(), "VmRSS");
    let mut s = TcpStream::connect(("127.0.0.1", w.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    s.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        .unwrap();
    let mut r = BufReader::with_capacity(16 * 1024, s);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{head}"
    );
    // A slow reader: 16 KiB at a time with a pause, so the function waits on its pipe.
    let mut total = 0usize;
    let mut peak = 0;
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        let n = usize::from_str_radix(line.trim(), 16).unwrap();
        let mut left = n + 2;
        while left > 0 {
            let mut buf = vec![0u8; left.min(16 * 1024)];
            r.read_exact(&mut buf).unwrap();
            left -= buf.len();
            std::thread::sleep(Duration::from_micros(200));
        }
        total += n;
        if total % (8 << 20) < n {
            peak = peak.max(status_kb(w.pid(), "VmRSS"));
        }
        if n == 0 {
            break;
        }
    }
    assert_eq!(total, 104_857_600);
    let hwm = status_kb(w.pid(), "VmHWM");
    eprintln!("RSS before {before} kB, sampled peak {peak} kB, high-water mark {hwm} kB");
    // The output is 100 MB; the watchdog held all of it before (135-182 MB).
    assert!(
        peak < before + 16 * 1024,
        "RSS grew from {before} to {peak} kB"
    );
    assert!(hwm < before + 24 * 1024, "high-water mark {hwm} kB");
}

#[test]
fn a_call_that_fails_after_its_output_started_is_cut_off_or_capped() {
    let dir = TestDir::new("cut");
    dir.script("fail.sh", "#!/bin/sh\nhead -c 3000000 /dev/zero\nexit 3\n");
    let w = start(&dir, &[("fprocess", "./fail.sh")]);
    // Past the buffer (1 MiB) the answer started as 200: it must not end as if complete.
    let err = w
        .curl("POST", "/", &[], Some(b""))
        .expect_err("a complete answer");
    assert!(err.contains("exit Some(18)"), "{err}");
    assert!(w.wait_log("cut off before its end"), "{}", w.log());
    assert!(w.metrics().contains("moat_watchdog_streams_cut_total 1\n"));
    drop(w);
    // Within a larger buffer: the classic answer.
    let w = start(
        &dir,
        &[
            ("fprocess", "./fail.sh"),
            ("response_buffer_bytes", "4000000"),
        ],
    );
    let r = w.post("");
    assert_eq!(r.status, 500);
    assert!(r.text().starts_with("exit status 3\n"));
    assert_eq!(r.body.len(), "exit status 3\n".len() + 3_000_000);
    drop(w);
    // Streaming off: capped with a clear error.
    let w = start(
        &dir,
        &[("fprocess", "./fail.sh"), ("stream_response", "false")],
    );
    let r = w.post("");
    assert_eq!(r.status, 500);
    assert!(
        r.text()
            .contains("passed response_buffer_bytes (1048576 bytes)"),
        "{}",
        r.text()
    );
}

/// Opens `n` connections that stay idle; every other one has sent half a request head.
fn idle_connections(port: u16, n: usize) -> Vec<TcpStream> {
    (0..n)
        .map(|i| {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            if i % 2 == 0 {
                s.write_all(b"POST / HTTP/1.1\r\nHo").unwrap();
            }
            s
        })
        .collect()
}

fn lines_with(log: &str, needle: &str) -> usize {
    log.lines().filter(|l| l.contains(needle)).count()
}

#[test]
fn out_of_descriptors_every_probe_is_answered_and_the_log_says_so_once() {
    let dir = TestDir::new("fds");
    for (case, extra) in [
        // The connection cap (144 for 256 descriptors) is reached first.
        ("cap", None),
        // No cap below the limit: accept itself runs out of descriptors.
        ("emfile", Some("5000")),
    ] {
        let mut env = vec![("fprocess", "cat")];
        if let Some(max) = extra {
            env.push(("max_connections", max));
        }
        let w = start_with_nofile(&dir, &env, 256);
        let idle = idle_connections(w.port, 400);
        for i in 0..10 {
            let h = w.curl("GET", "/_/health", &[], None).unwrap();
            assert_eq!(h.status, 200, "{case}: probe {i}");
            let r = w.post(&format!("probe {i}"));
            assert_eq!(
                (r.status, r.text()),
                (200, format!("probe {i}")),
                "{case}: call {i}"
            );
        }
        drop(idle);
        assert!(w.wait_log("pressure over"), "{case}: {}", w.log());
        let log = w.log();
        assert_eq!(
            lines_with(&log, "shedding idle connections"),
            1,
            "{case}: {log}"
        );
        assert_eq!(lines_with(&log, "pressure over"), 1, "{case}: {log}");
        if case == "emfile" {
            assert!(log.contains("out of file descriptors"), "{log}");
        }
        // Still serving.
        assert_eq!(w.post("after").text(), "after");
    }
}

#[test]
fn with_every_connection_busy_a_new_client_gets_503_at_once() {
    let dir = TestDir::new("busy");
    dir.script("slow.sh", "#!/bin/sh\nsleep 2\necho done\n");
    let w = start(&dir, &[("fprocess", "./slow.sh"), ("max_connections", "2")]);
    let port = w.port;
    let busy: Vec<_> = (0..2)
        .map(|_| std::thread::spawn(move || curl(port, "POST", "/", &[], Some(b"")).unwrap()))
        .collect();
    // Both calls running (their processes are the watchdog's children).
    assert!(eventually(Duration::from_secs(10), || w.children().len() >= 2));
    let r = w.curl("GET", "/_/health", &[], None).unwrap();
    assert_eq!(r.status, 503);
    assert!(
        r.text().contains("no room for another connection"),
        "{}",
        r.text()
    );
    for b in busy {
        assert_eq!(b.join().unwrap().text(), "done\n");
    }
    assert_eq!(w.curl("GET", "/_/health", &[], None).unwrap().status, 200);
}

#[test]
fn memory_of_idle_connections_is_given_back_when_they_close() {
    let dir = TestDir::new("idle-mem");
    let w = start(&dir, &[("fprocess", "cat")]);
    for i in 0..20 {
        assert_eq!(w.post(&i.to_string()).status, 200);
    }
    let before = status_kb(w.pid(), "VmRSS");
    let idle = idle_connections(w.port, 2000);
    // Each has been accepted and served a read once it holds a descriptor there.
    assert!(eventually(Duration::from_secs(20), || fd_count(w.pid()) >= 2000));
    std::thread::sleep(Duration::from_millis(500));
    let with = status_kb(w.pid(), "VmRSS");
    drop(idle);
    assert!(eventually(Duration::from_secs(20), || fd_count(w.pid()) < 100));
    let mut after = 0;
    eventually(Duration::from_secs(5), || {
        after = status_kb(w.pid(), "VmRSS");
        after < before + (with - before) / 4
    });
    eprintln!("RSS: {before} kB, {with} kB with 2000 idle connections, {after} kB after");
    assert!(
        after < before + (with.saturating_sub(before)) / 4,
        "RSS {before} -> {with} -> {after} kB"
    );
    assert_eq!(w.post("still").text(), "still");
}

#[test]
fn a_bounded_soak_leaves_descriptors_and_memory_where_they_were() {
    let dir = TestDir::new("soak");
    let w = start(&dir, &[("fprocess", "cat")]);
    let mut c = KeepAlive::open(w.port);
    for i in 0..200 {
        assert_eq!(c.post("/", i.to_string().as_bytes()).0, 200);
    }
    let (fds, rss) = settled(w.pid());
    for i in 0..2000 {
        let (status, body) = c.post("/", i.to_string().as_bytes());
        assert_eq!((status, body), (200, i.to_string().into_bytes()));
    }
    let now = settled(w.pid());
    for i in 0..2000 {
        let (status, body) = c.post("/", i.to_string().as_bytes());
        assert_eq!((status, body), (200, i.to_string().into_bytes()));
    }
    let later = settled(w.pid());
    eprintln!(
        "after 2000 and 4000 calls: fds {fds} -> {} -> {}, RSS {rss} -> {} -> {} kB",
        now.0, later.0, now.1, later.1
    );
    // The pool of empty control groups kept for the next calls holds up to four groups of
    // seven descriptors (directories and control files), as many as calls happened to
    // leave: the count moves within that, and must not grow with the number of calls.
    const POOL_FDS: usize = 4 * 7;
    assert!(now.0 <= fds + POOL_FDS, "descriptors {fds} -> {}", now.0);
    assert!(
        later.0 <= fds + POOL_FDS,
        "descriptors {fds} -> {} -> {}",
        now.0,
        later.0
    );
    assert!(now.1 < rss + 2048, "RSS {rss} -> {} kB", now.1);
    assert!(
        later.1 < rss + 2048,
        "RSS {rss} -> {} -> {} kB",
        now.1,
        later.1
    );
    assert!(w.children().is_empty());
    assert!(w.leftover_call_dirs().is_empty());
}

/// Descriptors and RSS once the background work after the last answer (spare slots) is
/// done: two readings in a row alike.
fn settled(pid: i32) -> (usize, u64) {
    let mut last = (fd_count(pid), status_kb(pid, "VmRSS"));
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(100));
        let now = (fd_count(pid), status_kb(pid, "VmRSS"));
        if now.0 == last.0 {
            return now;
        }
        last = now;
    }
    last
}

const SPREAD: &str = r#"#!/bin/sh
# Leaves a background child, a grandchild and a daemon (new session, double fork, stdio
# detached), publishes their pids, then keeps the call running.
sleep 301 &
echo $! > SHARED/child.pid
sh -c 'sleep 302 & echo $! > SHARED/grandchild.pid; wait' &
( setsid sh -c 'echo $$ > SHARED/daemon.pid; sleep 303; : MARKER' </dev/null >/dev/null 2>&1 & )
while [ ! -s SHARED/daemon.pid ] || [ ! -s SHARED/grandchild.pid ]; do sleep 0.01; done
echo ready > SHARED/ready
sleep 300
"#;

fn spread_pids(shared: &std::path::Path) -> Vec<i32> {
    ["child.pid", "grandchild.pid", "daemon.pid"]
        .iter()
        .map(|f| wait_file(&shared.join(f)).trim().parse().unwrap())
        .collect()
}

#[test]
fn kill_9_of_the_watchdog_kills_every_process_of_its_calls() {
    if !privileged("kill -9") {
        return;
    }
    let dir = TestDir::new("kill9");
    let shared = dir.shared();
    let marker = format!("moat-kill9-{}", std::process::id());
    let script = SPREAD
        .replace("SHARED", shared.to_str().unwrap())
        .replace("MARKER", &marker);
    dir.script("spread.sh", &script);

    // Control: the same function under a plain parent killed with SIGKILL leaves all three.
    let mut plain = std::process::Command::new(dir.function_dir().join("spread.sh"))
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_file(&shared.join("ready"));
    let pids = spread_pids(&shared);
    plain.kill().unwrap();
    plain.wait().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert!(pids.iter().all(|&p| alive(p)), "the control lost a process");
    for p in pids {
        // SAFETY: killing the control's leftovers.
        unsafe { libc::kill(p, libc::SIGKILL) };
    }
    for f in ["child.pid", "grandchild.pid", "daemon.pid", "ready"] {
        std::fs::remove_file(shared.join(f)).unwrap();
    }

    let w = start(
        &dir,
        &[
            ("fprocess", "./spread.sh"),
            ("sandbox_rw", shared.to_str().unwrap()),
        ],
    );
    let root = w.tmp_root();
    let guardian = w.guardian().expect("a guardian process");
    let port = w.port;
    let call = std::thread::spawn(move || curl(port, "POST", "/", &[], Some(b"")));
    wait_file(&shared.join("ready"));
    let pids = spread_pids(&shared);
    assert!(pids.iter().all(|&p| alive(p)));
    let cgroups: Vec<std::path::PathBuf> = w
        .log()
        .lines()
        .filter_map(|l| l.split("per-call control groups in ").nth(1))
        .filter_map(|l| l.split(" (").nth(1)?.split(')').next().map(Into::into))
        .collect();
    assert!(!cgroups.is_empty(), "{}", w.log());
    // SAFETY: SIGKILL to the watchdog, our child.
    unsafe { libc::kill(w.pid(), libc::SIGKILL) };
    assert!(call.join().unwrap().is_err());
    assert!(
        eventually(Duration::from_secs(15), || pids.iter().all(|&p| !alive(p))),
        "survived the watchdog: {:?}",
        pids.iter().filter(|&&p| alive(p)).collect::<Vec<_>>()
    );
    assert!(processes_with(&marker).is_empty());
    // The guardian removed the groups and the private directories, and is gone.
    assert!(
        eventually(Duration::from_secs(15), || !alive(guardian)
            && cgroups.iter().all(|c| !c.exists())
            && !root.exists()),
        "left: {:?} {}",
        cgroups.iter().filter(|c| c.exists()).collect::<Vec<_>>(),
        root.display()
    );
}

#[test]
fn a_call_that_forks_without_end_reaches_its_process_limit_and_the_next_call_does_not() {
    if !privileged("the process limit") {
        return;
    }
    let dir = TestDir::new("nproc");
    let marker = format!("moat-nproc-{}", std::process::id());
    dir.script(
        "fork.sh",
        &format!(
            "#!/bin/sh\nread what\n[ \"$what\" = one ] && {{ echo one; exit 0; }}\n\
             # Trying to leave its group first: denied (Landlock, no /sys).\n\
             (echo $$ > /sys/fs/cgroup/pids/cgroup.procs) 2>/dev/null && echo escaped\n\
             i=0; while [ $i -lt 100 ]; do sh -c 'sleep 30; : {marker}' & i=$((i+1)); done\n\
             echo spawned $i\n"
        ),
    );
    // Control: without the limit all 100 start.
    let w = start(
        &dir,
        &[("fprocess", "./fork.sh"), ("max_call_processes", "0")],
    );
    let r = w.post("many\n");
    assert_eq!((r.status, r.text()), (200, "spawned 100\n".to_string()));
    drop(w);
    let w = start(
        &dir,
        &[("fprocess", "./fork.sh"), ("max_call_processes", "20")],
    );
    let r = w.post("many\n");
    assert_eq!(r.status, 500, "{}", r.text());
    assert_eq!(r.header("x-moat-limit"), Some("processes"));
    assert!(
        r.text()
            .starts_with("the call reached max_call_processes (20 "),
        "{}",
        r.text()
    );
    assert!(!r.text().contains("escaped"));
    assert!(processes_with(&marker).is_empty());
    let r = w.post("one\n");
    assert_eq!((r.status, r.text()), (200, "one\n".to_string()));
    assert!(w
        .metrics()
        .contains("moat_watchdog_limit_processes_total 1\n"));
}

#[test]
fn a_call_that_fills_its_directory_gets_a_clear_status_and_takes_nothing_from_the_next() {
    if !privileged("the private directory's size") {
        return;
    }
    let dir = TestDir::new("fill");
    dir.script(
        "fill.sh",
        "#!/bin/sh\nread size\n\
         # A root call cannot unmount its tmpfs to write past it (Landlock denies it).\n\
         umount \"$TMPDIR\" 2>/dev/null && echo unmounted\n\
         head -c \"$size\" /dev/zero > \"$TMPDIR/f\" 2>/dev/null && echo wrote || echo full\n",
    );
    let w = start(
        &dir,
        &[("fprocess", "./fill.sh"), ("max_call_tmp_bytes", "1048576")],
    );
    let r = w.post("4000000\n");
    assert_eq!(r.status, 500, "{}", r.text());
    assert_eq!(r.header("x-moat-limit"), Some("tmp"));
    assert_eq!(
        r.text(),
        "the call filled its private temporary directory (max_call_tmp_bytes, 1048576 bytes)\nexit status 0\nfull\n"
    );
    // The next call has the whole size again.
    let r = w.post("900000\n");
    assert_eq!((r.status, r.text()), (200, "wrote\n".to_string()));
    drop(w);
    // Control: unlimited, the same write succeeds.
    let w = start(
        &dir,
        &[("fprocess", "./fill.sh"), ("max_call_tmp_bytes", "0")],
    );
    let r = w.post("4000000\n");
    assert_eq!((r.status, r.text()), (200, "wrote\n".to_string()));
}

#[test]
fn a_call_that_spins_is_killed_at_its_cpu_limit_and_the_next_call_runs() {
    if !privileged("the CPU limit") {
        return;
    }
    let dir = TestDir::new("cpu");
    dir.script(
        "spin.sh",
        "#!/bin/sh\nread what\n[ \"$what\" = spin ] && while :; do :; done\necho fine\n",
    );
    let w = start(
        &dir,
        &[("fprocess", "./spin.sh"), ("max_call_cpu", "500ms")],
    );
    let r = w.post("spin\n");
    assert_eq!(r.status, 500, "{}", r.text());
    assert_eq!(r.header("x-moat-limit"), Some("cpu"));
    assert_eq!(
        r.text(),
        "the call used max_call_cpu (500ms of CPU time) and was killed\n"
    );
    let r = w.post("rest\n");
    assert_eq!((r.status, r.text()), (200, "fine\n".to_string()));
    assert!(w.children().is_empty());
}

#[test]
fn a_limit_asked_for_that_cannot_be_enforced_refuses_to_start() {
    // A tmpfs per call only where the private directories are on a tmpfs: a disk is not.
    let dir = TestDir::new("limit-refused");
    let disk = dir.root.join("disk");
    std::fs::create_dir_all(&disk).unwrap();
    if tmpfs(&disk) {
        eprintln!("skipped: the test directory is on a tmpfs");
        return;
    }
    let disk = disk.to_str().unwrap();
    let env = [
        ("fprocess", "cat"),
        ("sandbox_tmp", disk),
        ("max_call_tmp_bytes", "1048576"),
    ];
    let (code, log) = match try_start(&dir, &env) {
        Ok(_) => panic!("started"),
        Err(e) => e,
    };
    assert_eq!(code, Some(125), "{log}");
    assert!(
        log.contains("max_call_tmp_bytes cannot be enforced here"),
        "{log}"
    );
    // Nothing it made is left: its control groups and private directories are gone.
    for line in log.lines() {
        let groups = line
            .split("per-call control groups in ")
            .nth(1)
            .and_then(|l| l.split(" (").nth(1)?.split(')').next());
        let dirs = line.split("private temporary directories in ").nth(1);
        for made in [groups, dirs].into_iter().flatten() {
            assert!(
                !std::path::Path::new(made.trim()).exists(),
                "{made} left behind"
            );
        }
    }
    // Left at its default, it is a warning.
    let w = start(&dir, &[("fprocess", "cat"), ("sandbox_tmp", disk)]);
    assert!(
        w.log().contains("not enforced: max_call_tmp_bytes"),
        "{}",
        w.log()
    );
    assert_eq!(w.post("x").text(), "x");
}

fn tmpfs(path: &std::path::Path) -> bool {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: zeroed statfs is a valid out-buffer; `c` is NUL-terminated.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe { libc::statfs(c.as_ptr(), &mut st) == 0 && st.f_type == 0x0102_1994 }
}

/// Starts a call of `slow.sh` (which publishes its pid and sleeps), sends SIGTERM, and
/// returns the call's answer once the watchdog stops it, and the function's pid.
fn call_cut_by_shutdown(write_timeout: &str) -> (Result<Resp, String>, i32, Option<i32>) {
    let dir = TestDir::new(&format!("grace-{write_timeout}"));
    let shared = dir.shared();
    dir.script(
        "slow.sh",
        &format!("#!/bin/sh\necho $$ > {}/pid\nsleep 300\n", shared.display()),
    );
    let w = start(
        &dir,
        &[
            ("fprocess", "./slow.sh"),
            ("write_timeout", write_timeout),
            ("sandbox_rw", shared.to_str().unwrap()),
        ],
    );
    let port = w.port;
    let call = std::thread::spawn(move || curl(port, "POST", "/", &[], Some(b"")));
    let pid: i32 = wait_file(&shared.join("pid")).trim().parse().unwrap();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(w.pid(), libc::SIGTERM) };
    let answer = call.join().unwrap();
    (answer, pid, w.stop())
}

#[test]
fn calls_cut_off_by_a_shutdown_get_a_status_not_an_empty_reply() {
    // write_timeout passes during the shutdown: 504.
    let (answer, pid, code) = call_cut_by_shutdown("2s");
    let r = answer.expect("an answer, not an empty reply");
    assert_eq!(r.status, 504, "{}", r.text());
    assert!(r.text().contains("shutting down"), "{}", r.text());
    assert!(!alive(pid));
    assert_eq!(code, Some(0));
    // No write_timeout: the grace period (30 s) ends first: 503.
    let (answer, pid, code) = call_cut_by_shutdown("0");
    let r = answer.expect("an answer, not an empty reply");
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.text().contains("shutting down"), "{}", r.text());
    assert!(!alive(pid));
    assert_eq!(code, Some(0));
}
