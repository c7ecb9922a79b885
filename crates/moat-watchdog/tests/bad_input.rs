//! Bad input: oversized bodies, slow clients, broken chunked encoding, malformed paths.
//! Each gets a clear status (or a closed connection where HTTP has no status to give), runs
//! no function, and leaves nothing behind.

mod common;

use common::*;
use std::time::{Duration, Instant};

/// A function that records each run, so a test can tell whether one happened.
fn counting_dir(name: &str) -> TestDir {
    let dir = TestDir::new(name);
    dir.script(
        "count.sh",
        &format!(
            "#!/bin/sh\necho run >> {}/runs\ncat\n",
            dir.shared().display()
        ),
    );
    dir
}

fn runs(dir: &TestDir) -> usize {
    std::fs::read_to_string(dir.shared().join("runs"))
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

fn start_counting(dir: &TestDir, extra: &[(&str, &str)]) -> Watchdog {
    let shared = dir.shared();
    let mut env = vec![
        ("fprocess", "./count.sh"),
        ("sandbox_rw", shared.to_str().unwrap()),
    ];
    env.extend_from_slice(extra);
    start(dir, &env)
}

fn assert_clean(w: &Watchdog) {
    assert!(w.children().is_empty(), "children left: {:?}", w.children());
    let left = w.leftover_call_dirs();
    assert!(left.is_empty(), "directories left: {left:?}");
}

#[test]
fn an_oversized_body_is_413_without_running_the_function() {
    let dir = counting_dir("oversized");
    let w = start_counting(&dir, &[("max_request_bytes", "1000")]);
    // Declared too large: refused before the body is read.
    let big = vec![b'x'; 5000];
    let r = w.curl("POST", "/", &[], Some(&big)).unwrap();
    assert_eq!(r.status, 413);
    assert!(
        r.text().contains("max_request_bytes (1000 bytes)"),
        "{}",
        r.text()
    );
    assert_eq!(r.header("connection"), Some("close"));
    // Chunked, so only known while reading.
    let r = w
        .curl("POST", "/", &["Transfer-Encoding: chunked"], Some(&big))
        .unwrap();
    assert_eq!(r.status, 413);
    // At the limit: fine.
    let ok = vec![b'y'; 1000];
    let r = w.curl("POST", "/", &[], Some(&ok)).unwrap();
    assert_eq!((r.status, r.body.len()), (200, 1000));
    assert_eq!(runs(&dir), 1);
    assert_clean(&w);
}

#[test]
fn a_slow_body_is_408_and_slow_headers_close_the_connection() {
    let dir = counting_dir("slow");
    let w = start_counting(&dir, &[("read_timeout", "1")]);
    // Headers complete, body never finishes.
    let (out, closed) = raw_exchange(
        w.port,
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
        Duration::from_secs(10),
    );
    let r = parse_response(&out);
    assert_eq!(r.status, 408);
    assert!(r.text().contains("read_timeout"), "{}", r.text());
    assert!(closed);
    // Headers never finish: the connection is closed, with nothing to answer.
    let t = Instant::now();
    let (out, closed) = raw_exchange(
        w.port,
        b"POST / HTTP/1.1\r\nHost: x\r\nX-Slow",
        Duration::from_secs(10),
    );
    assert!(closed, "connection still open after {:?}", t.elapsed());
    assert!(t.elapsed() < Duration::from_secs(5));
    assert!(
        out.is_empty() || String::from_utf8_lossy(&out).starts_with("HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    // An idle kept-alive connection is closed too.
    let t = Instant::now();
    let (_, closed) = raw_exchange(w.port, b"", Duration::from_secs(10));
    assert!(closed && t.elapsed() < Duration::from_secs(5));
    assert_eq!(runs(&dir), 0);
    assert_clean(&w);
}

#[test]
fn broken_chunked_encoding_is_400() {
    let dir = counting_dir("chunked");
    let w = start_counting(&dir, &[]);
    for bad in [
        &b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n"[..],
        &b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcdef\r\n0\r\n\r\n"[..],
        &b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n"[..],
    ] {
        let (out, closed) = raw_exchange(w.port, bad, Duration::from_secs(10));
        let text = String::from_utf8_lossy(&out);
        let r = parse_response(&out);
        assert_eq!(r.status, 400, "{text}");
        assert!(r.text().contains("malformed request body"), "{text}");
        assert!(closed);
    }
    // The connection after a good chunked request stays usable.
    let (out, _) = raw_exchange(
        w.port,
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        Duration::from_secs(10),
    );
    let r = parse_response(&out);
    assert_eq!((r.status, r.text()), (200, "abc".to_string()));
    assert_eq!(runs(&dir), 1);
    assert_clean(&w);
}

#[test]
fn malformed_requests_get_400_and_nothing_runs() {
    let dir = counting_dir("malformed");
    let w = start_counting(&dir, &[]);
    for (req, why) in [
        (
            &b"GET /%zz HTTP/1.1\r\nHost: x\r\n\r\n"[..],
            "percent-encoding",
        ),
        (&b"GET /a%00b HTTP/1.1\r\nHost: x\r\n\r\n"[..], "NUL"),
        (
            &b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n"[..],
            "",
        ),
        (&b"GARBAGE\r\n\r\n"[..], ""),
        (
            &b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n"[..],
            "",
        ),
    ] {
        let (out, _) = raw_exchange(w.port, req, Duration::from_secs(10));
        let text = String::from_utf8_lossy(&out).into_owned();
        assert!(text.starts_with("HTTP/1.1 400"), "{req:?}: {text}");
        assert!(text.contains(why), "{text}");
    }
    assert_eq!(runs(&dir), 0);
    assert_clean(&w);
}

#[test]
fn a_client_that_does_not_read_its_response_is_dropped() {
    let dir = TestDir::new("no-read");
    dir.script("big.sh", "#!/bin/sh\nhead -c 20000000 /dev/zero\n");
    let w = start(&dir, &[("fprocess", "./big.sh"), ("write_timeout", "1")]);
    let mut s = std::net::TcpStream::connect(("127.0.0.1", w.port)).unwrap();
    use std::io::{Read, Write};
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    // Never read; the watchdog gives up once its writes are stuck for write_timeout.
    std::thread::sleep(Duration::from_secs(4));
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut total = 0;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => total += n,
        }
    }
    assert!(total < 20_000_000, "the whole response arrived");
    // Still serving others.
    let r = w.curl("GET", "/_/health", &[], None).unwrap();
    assert_eq!(r.status, 200);
    assert_clean(&w);
}
