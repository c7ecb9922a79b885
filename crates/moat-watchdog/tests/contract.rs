//! The classic watchdog's contract, point by point, against the real binary with curl.

mod common;

use common::*;
use std::time::Duration;

const ECHO_ENV: &str = "#!/bin/sh\nenv | grep '^Http_' | sort\n";

#[test]
fn body_goes_to_stdin_and_stdout_comes_back_with_200_and_duration() {
    let dir = TestDir::new("echo");
    let w = start(&dir, &[("fprocess", "cat")]);
    let r = w
        .curl(
            "POST",
            "/",
            &["Content-Type: application/json"],
            Some(b"{\"hello\":1}"),
        )
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"{\"hello\":1}");
    // The response takes the request's Content-Type when none is forced.
    assert_eq!(r.header("content-type"), Some("application/json"));
    let d = r.header("x-duration-seconds").expect("X-Duration-Seconds");
    let (secs, frac) = d.split_once('.').unwrap();
    assert!(secs.parse::<u64>().is_ok() && frac.len() == 6, "{d}");
    // A binary body goes through byte for byte.
    let bytes: Vec<u8> = (0..=255u8).cycle().take(300_000).collect();
    let r = w.curl("PUT", "/", &[], Some(&bytes)).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body, bytes);
    assert_eq!(w.stop(), Some(0));
}

#[test]
fn each_allowed_method_runs_the_function_and_others_get_405() {
    let dir = TestDir::new("methods");
    dir.script("m.sh", "#!/bin/sh\necho \"$Http_Method\"\n");
    let w = start(&dir, &[("fprocess", "./m.sh")]);
    for m in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
        let r = w.curl(m, "/any/path", &[], None).unwrap();
        assert_eq!((r.status, r.text()), (200, format!("{m}\n")), "{m}");
    }
    for m in ["OPTIONS", "TRACE", "BREW"] {
        let r = w.curl(m, "/", &[], None).unwrap();
        assert_eq!(r.status, 405, "{m}");
        assert_eq!(r.header("allow"), Some("GET, POST, PUT, PATCH, DELETE"));
    }
    let r = w.curl("HEAD", "/", &[], None).unwrap();
    assert_eq!(r.status, 405);
}

#[test]
fn a_non_zero_exit_is_500_with_the_exit_status_and_output() {
    let dir = TestDir::new("exit");
    dir.script(
        "fail.sh",
        "#!/bin/sh\necho partial\necho oops >&2\nexit 3\n",
    );
    dir.script("crash.sh", "#!/bin/sh\nkill -SEGV $$\n");
    let w = start(&dir, &[("fprocess", "./fail.sh")]);
    let r = w.post("x");
    assert_eq!(r.status, 500);
    assert_eq!(r.text(), "exit status 3\npartial\noops\n");
    assert!(r.header("x-duration-seconds").is_none());
    drop(w);
    let w = start(&dir, &[("fprocess", "./crash.sh")]);
    let r = w.post("x");
    assert_eq!(r.status, 500);
    assert!(
        r.text().starts_with("signal: segmentation fault"),
        "{}",
        r.text()
    );
}

#[test]
fn exec_timeout_is_408_and_kills_the_whole_tree() {
    let dir = TestDir::new("timeout");
    let shared = dir.shared();
    dir.script(
        "slow.sh",
        &format!(
            "#!/bin/sh\nsleep 300 &\necho $! > {s}/child.pid\nsh -c 'sleep 301 & echo $! > {s}/grandchild.pid; wait' &\nsleep 302\n",
            s = shared.display()
        ),
    );
    let w = start(
        &dir,
        &[
            ("fprocess", "./slow.sh"),
            ("exec_timeout", "1s"),
            ("sandbox_rw", shared.to_str().unwrap()),
        ],
    );
    let t = std::time::Instant::now();
    let r = w.post("");
    assert_eq!(r.status, 408);
    assert_eq!(r.text(), "Killed process.\n");
    assert!(t.elapsed() < Duration::from_secs(10));
    for f in ["child.pid", "grandchild.pid"] {
        let pid: i32 = wait_file(&shared.join(f)).trim().parse().unwrap();
        assert!(!alive(pid), "{f} {pid} survived the timeout");
    }
    assert!(w.children().is_empty(), "{:?}", w.children());
    assert!(w.leftover_call_dirs().is_empty());
}

#[test]
fn over_max_inflight_is_429() {
    let dir = TestDir::new("inflight");
    dir.script("slow.sh", "#!/bin/sh\nsleep 1\necho done\n");
    let w = start(&dir, &[("fprocess", "./slow.sh"), ("max_inflight", "1")]);
    let port = w.port;
    let first = std::thread::spawn(move || curl(port, "POST", "/", &[], Some(b"")).unwrap());
    assert!(eventually(Duration::from_secs(5), || w
        .metrics()
        .contains("http_requests_in_flight 1")));
    let r = w.post("");
    assert_eq!(r.status, 429);
    assert_eq!(
        r.text(),
        "Concurrent request limit exceeded. Max concurrent requests: 1\n"
    );
    let r = first.join().unwrap();
    assert_eq!((r.status, r.text()), (200, "done\n".to_string()));
    // The slot is free again.
    assert_eq!(w.post("").status, 200);
}

#[test]
fn cgi_headers_become_http_variables() {
    let dir = TestDir::new("cgi");
    dir.script("env.sh", ECHO_ENV);
    let w = start(&dir, &[("fprocess", "./env.sh")]);
    let r = w
        .curl(
            "POST",
            "/some/pa%20th?q=serverless&page=1",
            &[
                "X-Forwarded-By: http://my.vpn.com",
                "x-custom-thing: A b",
                "User-Agent: test",
            ],
            Some(b"hello"),
        )
        .unwrap();
    assert_eq!(r.status, 200);
    let text = r.text();
    let port = w.port;
    for expect in [
        "Http_X_Forwarded_By=http://my.vpn.com",
        "Http_X_Custom_Thing=A b",
        "Http_User_Agent=test",
        "Http_Method=POST",
        "Http_Query=q=serverless&page=1",
        "Http_Path=/some/pa th",
        &format!("Http_Host=127.0.0.1:{port}"),
        "Http_ContentLength=5",
        "Http_Content_Length=5",
    ] {
        assert!(
            text.lines().any(|l| l == expect),
            "{expect} missing:\n{text}"
        );
    }
    // No query: no Http_Query. A chunked body: length -1 and Http_Transfer_Encoding.
    let r = w
        .curl("POST", "/", &["Transfer-Encoding: chunked"], Some(b"abc"))
        .unwrap();
    let text = r.text();
    assert!(!text.contains("Http_Query"), "{text}");
    assert!(text.contains("Http_ContentLength=-1\n"), "{text}");
    assert!(text.contains("Http_Transfer_Encoding=chunked\n"), "{text}");
    drop(w);
    let w = start(&dir, &[("fprocess", "./env.sh"), ("cgi_headers", "false")]);
    let r = w.curl("GET", "/?a=b", &["X-A: 1"], None).unwrap();
    assert_eq!((r.status, r.text()), (200, String::new()));
}

#[test]
fn marshal_request_sends_the_json_envelope() {
    let dir = TestDir::new("marshal");
    let w = start(&dir, &[("fprocess", "cat"), ("marshal_request", "true")]);
    let r = w
        .curl(
            "POST",
            "/",
            &["X-B: <2>", "Content-Type: text/plain"],
            Some(b"hello"),
        )
        .unwrap();
    assert_eq!(r.status, 200);
    let text = r.text();
    assert!(text.starts_with("{\"header\":{"), "{text}");
    assert!(
        text.ends_with(",\"body\":{\"raw\":\"aGVsbG8=\"}}"),
        "{text}"
    );
    assert!(text.contains("\"Content-Type\":[\"text/plain\"]"), "{text}");
    assert!(text.contains("\"X-B\":[\"\\u003c2\\u003e\"]"), "{text}");
    assert!(!text.contains("\"Host\""), "{text}");
}

#[test]
fn combine_output_puts_stderr_in_the_body_or_in_the_log() {
    let dir = TestDir::new("combine");
    dir.script(
        "both.sh",
        "#!/bin/sh\necho out1\necho err1 >&2\necho out2\n",
    );
    let w = start(&dir, &[("fprocess", "./both.sh")]);
    assert_eq!(w.post("").text(), "out1\nerr1\nout2\n");
    drop(w);
    let w = start(
        &dir,
        &[("fprocess", "./both.sh"), ("combine_output", "false")],
    );
    assert_eq!(w.post("").text(), "out1\nout2\n");
    assert!(w.wait_log("stderr: err1"), "{}", w.log());
}

#[test]
fn content_type_is_forced_and_write_debug_logs_the_output() {
    let dir = TestDir::new("ctype");
    let w = start(
        &dir,
        &[
            ("fprocess", "cat"),
            ("content_type", "application/xml"),
            ("write_debug", "true"),
        ],
    );
    let r = w
        .curl(
            "POST",
            "/?k=v",
            &["Content-Type: text/plain"],
            Some(b"marker-for-debug"),
        )
        .unwrap();
    assert_eq!(r.header("content-type"), Some("application/xml"));
    assert!(w.wait_log("marker-for-debug"), "{}", w.log());
    assert!(w.wait_log("Query k=v"), "{}", w.log());
    drop(w);
    // Neither forced nor in the request: sniffed from the output, as Go does.
    let w = start(&dir, &[("fprocess", "cat")]);
    let r = w
        .curl("POST", "/", &["Content-Type:"], Some(b"<html><body>x"))
        .unwrap();
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
}

#[test]
fn health_follows_the_lock_file() {
    let dir = TestDir::new("health");
    let w = start(&dir, &[("fprocess", "cat")]);
    let lock = dir.wdtmp().join(".lock");
    assert!(lock.exists());
    let r = w.curl("GET", "/_/health", &[], None).unwrap();
    assert_eq!((r.status, r.text()), (200, "OK".to_string()));
    assert_eq!(w.curl("POST", "/_/health", &[], None).unwrap().status, 405);
    std::fs::remove_file(&lock).unwrap();
    assert_eq!(w.curl("GET", "/_/health", &[], None).unwrap().status, 503);
    // --run-healthcheck, the exec check.
    let check = std::process::Command::new(env!("CARGO_BIN_EXE_moat-watchdog"))
        .arg("--run-healthcheck")
        .env("TMPDIR", dir.wdtmp())
        .status()
        .unwrap();
    assert_eq!(check.code(), Some(1));
    drop(w);
    let w = start(&dir, &[("fprocess", "cat"), ("suppress_lock", "true")]);
    assert!(!lock.exists());
    assert_eq!(w.curl("GET", "/_/health", &[], None).unwrap().status, 200);
}

#[test]
fn metrics_count_requests_by_code_and_method() {
    let dir = TestDir::new("metrics");
    dir.script(
        "f.sh",
        "#!/bin/sh\n[ \"$Http_Method\" = GET ] || exit 1\necho ok\n",
    );
    let w = start(&dir, &[("fprocess", "./f.sh")]);
    for _ in 0..3 {
        assert_eq!(w.curl("GET", "/", &[], None).unwrap().status, 200);
    }
    assert_eq!(w.post("").status, 500);
    assert_eq!(w.curl("OPTIONS", "/", &[], None).unwrap().status, 405);
    w.curl("GET", "/_/health", &[], None).unwrap();
    let m = w.metrics();
    assert!(
        m.contains("http_requests_total{code=\"200\",method=\"get\"} 3\n"),
        "{m}"
    );
    assert!(
        m.contains("http_requests_total{code=\"500\",method=\"post\"} 1\n"),
        "{m}"
    );
    assert!(
        m.contains("http_requests_total{code=\"405\",method=\"options\"} 1\n"),
        "{m}"
    );
    assert!(
        m.contains("http_request_duration_seconds_count{code=\"200\",method=\"get\"} 3\n"),
        "{m}"
    );
    assert!(
        m.contains("# TYPE http_request_duration_seconds histogram"),
        "{m}"
    );
    assert!(m.contains("http_requests_in_flight 0\n"), "{m}");
    assert!(!m.contains("/_/health"));
    let r = curl(w.metrics_port, "GET", "/other", &[], None).unwrap();
    assert_eq!(r.status, 404);
}

#[test]
fn write_timeout_closes_the_connection_and_kills_the_call() {
    let dir = TestDir::new("write-timeout");
    let shared = dir.shared();
    dir.script(
        "slow.sh",
        &format!("#!/bin/sh\necho $$ > {}/pid\nsleep 300\n", shared.display()),
    );
    let w = start(
        &dir,
        &[
            ("fprocess", "./slow.sh"),
            ("write_timeout", "1"),
            ("sandbox_rw", shared.to_str().unwrap()),
        ],
    );
    let err = w.post_err("");
    assert!(err.contains("52") || err.contains("Empty reply"), "{err}");
    let pid: i32 = wait_file(&shared.join("pid")).trim().parse().unwrap();
    assert!(eventually(Duration::from_secs(5), || !alive(pid)));
    assert!(w
        .metrics()
        .contains("moat_watchdog_calls_abandoned_total 1"));
}

#[test]
fn read_timeout_and_durations_in_go_syntax() {
    let dir = TestDir::new("read-timeout");
    let w = start(&dir, &[("fprocess", "cat"), ("read_timeout", "1s500ms")]);
    assert!(w.wait_log("read: 1.5s"), "{}", w.log());
    // A body announced but never sent: 408 once read_timeout has passed.
    let t = std::time::Instant::now();
    let (out, closed) = raw_exchange(
        w.port,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc",
        Duration::from_secs(10),
    );
    let r = parse_response(&out);
    assert_eq!(r.status, 408, "{}", r.text());
    assert!(closed);
    assert!(
        t.elapsed() >= Duration::from_millis(1400),
        "{:?}",
        t.elapsed()
    );
}

#[test]
fn graceful_shutdown_lets_calls_finish_and_cleans_up() {
    let dir = TestDir::new("shutdown");
    dir.script("slow.sh", "#!/bin/sh\nsleep 1\necho finished\n");
    let w = start(
        &dir,
        &[("fprocess", "./slow.sh"), ("healthcheck_interval", "500ms")],
    );
    let lock = dir.wdtmp().join(".lock");
    let root = w.tmp_root();
    assert!(root.exists() && lock.exists());
    let port = w.port;
    let call = std::thread::spawn(move || curl(port, "POST", "/", &[], Some(b"")));
    std::thread::sleep(Duration::from_millis(200));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(w.pid(), libc::SIGTERM) };
    std::thread::sleep(Duration::from_millis(100));
    // During healthcheck_interval: unhealthy, lock file gone, still serving.
    assert_eq!(w.curl("GET", "/_/health", &[], None).unwrap().status, 503);
    assert!(!lock.exists());
    let r = call.join().unwrap().unwrap();
    assert_eq!((r.status, r.text()), (200, "finished\n".to_string()));
    assert_eq!(w.stop(), Some(0));
    assert!(!root.exists(), "private directories left behind");
}

#[test]
fn bad_configuration_refuses_to_start_with_125() {
    let dir = TestDir::new("badcfg");
    for (env, expect) in [
        (vec![], "fprocess is not set"),
        (
            vec![("fprocess", "cat"), ("exec_timeout", "10sec")],
            "exec_timeout=`10sec`",
        ),
        (
            vec![("fprocess", "cat"), ("combine_output", "yes")],
            "combine_output=`yes`",
        ),
        (
            vec![("fprocess", "cat"), ("sandbox", "maybe")],
            "sandbox=`maybe`",
        ),
        (
            vec![("fprocess", "no-such-program-xyz")],
            "command not found",
        ),
        (vec![("fprocess", "cat"), ("jwt_auth", "true")], "jwt_auth"),
        (
            vec![("fprocess", "cat"), ("sandbox_ro", "/no/such/dir")],
            "/no/such/dir",
        ),
    ] {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_moat-watchdog"));
        cmd.current_dir(dir.function_dir())
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("port", "0")
            .env("metrics_port", "0");
        for (k, v) in &env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(125), "{env:?}: {stderr}");
        assert!(stderr.contains(expect), "{env:?}: {stderr}");
        // Said once, not once in the log and once more as a plain line.
        assert_eq!(stderr.matches(expect).count(), 1, "{env:?}: {stderr}");
    }
}

#[test]
fn required_refuses_a_kernel_without_scopes_and_best_effort_runs() {
    let dir = TestDir::new("abi");
    dir.script("w.sh", "#!/bin/sh\necho x > $TMPDIR/f && cat $TMPDIR/f\n");
    // Landlock's scopes need ABI 6: capped at 5, strict mode must refuse to start.
    let err = try_start(&dir, &[("fprocess", "./w.sh"), ("MOAT_MAX_ABI", "5")])
        .err()
        .expect("sandbox=required started on ABI 5");
    assert_eq!(err.0, Some(125));
    assert!(err.1.contains("needs Landlock ABI 6"), "{}", err.1);
    // The advice is the watchdog's own variable, not a flag of `moat run`.
    assert!(err.1.contains("set sandbox=best_effort"), "{}", err.1);
    assert!(!err.1.contains("--best-effort"), "{}", err.1);
    let w = start(
        &dir,
        &[
            ("fprocess", "./w.sh"),
            ("MOAT_MAX_ABI", "5"),
            ("sandbox", "best_effort"),
        ],
    );
    assert!(w.log().contains("not enforced"), "{}", w.log());
    assert_eq!(w.post("").text(), "x\n");
}

#[test]
fn help_documents_every_variable() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_moat-watchdog"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for v in moat_watchdog::config::VARIABLES {
        assert!(
            help.contains(&format!("  {} (default:", v.name)),
            "{}",
            v.name
        );
    }
}
