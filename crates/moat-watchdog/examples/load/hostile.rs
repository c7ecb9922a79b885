//! The figures of docs/PERFORMANCE.md for the watchdog under hostile load: its memory while
//! a slow client reads a large output, probes answered while an attacker exhausts its
//! descriptors with idle connections, and a soak's memory and descriptors.

use super::{load, warm, Load, Watchdog};
use moat_serve::process::{descriptors as fd_count, status_kb};
use moat_serve::siege::Siege;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Descriptors and RSS once background work after the last answer is done (two readings
/// 200 ms apart alike, at most 10 s).
fn settled(pid: u32) -> (usize, u64) {
    let mut last = (fd_count(pid), status_kb(pid, "VmRSS"));
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(200));
        let now = (fd_count(pid), status_kb(pid, "VmRSS"));
        if now.0 == last.0 {
            return now;
        }
        last = now;
    }
    last
}

/// Samples the RSS of `pid` every 20 ms until dropped; the peak is kept.
struct Sampler {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sampler {
    fn start(pid: u32) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(0));
        let (s, p) = (Arc::clone(&stop), Arc::clone(&peak));
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                p.fetch_max(status_kb(pid, "VmRSS"), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Sampler {
            stop,
            peak,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.peak.load(Ordering::Relaxed)
    }
}

/// POSTs an empty body and reads the chunked (or sized) answer `read` bytes at a time,
/// pausing `pause` between reads. Returns the status and the body's length.
fn read_slowly(port: u16, read: usize, pause: Duration) -> (u16, usize) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(600))).ok();
    s.write_all(b"POST / HTTP/1.1\r\nHost: load\r\nContent-Length: 0\r\n\r\n")
        .expect("request");
    let mut r = BufReader::with_capacity(read.max(4096), s);
    let mut line = String::new();
    r.read_line(&mut line).expect("status line");
    let status: u16 = line
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let (mut chunked, mut length) = (false, 0usize);
    loop {
        line.clear();
        r.read_line(&mut line).expect("header");
        let l = line.trim_end().to_ascii_lowercase();
        if l.is_empty() {
            break;
        }
        if l == "transfer-encoding: chunked" {
            chunked = true;
        }
        if let Some(v) = l.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut buf = vec![0u8; read];
    let mut consume = |r: &mut BufReader<TcpStream>, mut n: usize| {
        while n > 0 {
            let k = n.min(read);
            r.read_exact(&mut buf[..k]).expect("body");
            n -= k;
            if !pause.is_zero() {
                std::thread::sleep(pause);
            }
        }
    };
    if !chunked {
        consume(&mut r, length);
        return (status, length);
    }
    let mut total = 0;
    loop {
        line.clear();
        r.read_line(&mut line).expect("chunk size");
        let n = usize::from_str_radix(line.trim(), 16).unwrap_or(0);
        consume(&mut r, n + 2);
        total += n;
        if n == 0 {
            return (status, total);
        }
    }
}

/// RSS while a fast, then a slow, client reads a function's `mb` MiB output.
pub fn big_output(bin: &str, mb: usize, read_kib: usize, pause_us: u64) {
    let bytes = mb << 20;
    let w = Watchdog::start(
        bin,
        &[
            ("fprocess", format!("head -c {bytes} /dev/zero")),
            ("write_timeout", "0".to_string()),
        ],
    );
    let idle = status_kb(w.pid(), "VmRSS");
    for (what, read, pause) in [
        ("fast reader (64 KiB reads)", 64 * 1024, Duration::ZERO),
        (
            "slow reader",
            read_kib * 1024,
            Duration::from_micros(pause_us),
        ),
    ] {
        let sampler = Sampler::start(w.pid());
        let t = Instant::now();
        let (status, got) = read_slowly(w.port, read, pause);
        let took = t.elapsed();
        let peak = sampler.finish();
        println!(
            "{what}: {status}, {got} bytes in {:.1} s ({:.0} MB/s); watchdog RSS idle {idle} kB, peak {peak} kB (sampled every 20 ms), high-water mark {} kB",
            took.as_secs_f64(),
            got as f64 / took.as_secs_f64() / 1e6,
            status_kb(w.pid(), "VmHWM")
        );
    }
}

/// One probe on a fresh connection: (latency, status or 0 when there was no answer).
fn probe(port: u16, request: &[u8]) -> (Duration, u16) {
    let t = Instant::now();
    let status = (|| {
        let s = TcpStream::connect(("127.0.0.1", port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
        let _ = s.set_nodelay(true);
        let mut r = BufReader::new(s);
        r.get_mut().write_all(request).ok()?;
        let mut line = String::new();
        r.read_line(&mut line).ok()?;
        line.split(' ').nth(1)?.parse().ok()
    })()
    .unwrap_or(0);
    (t.elapsed(), status)
}

/// Probes while an attacker holds `idle` idle connections (half of them in the middle of a
/// request head) against a watchdog limited to `nofile` descriptors.
pub fn exhaust(
    bin: &str,
    nofile: u64,
    idle: usize,
    seconds: u64,
    every_ms: u64,
    max_connections: usize,
) {
    let mut env = vec![("fprocess", "cat".to_string())];
    if max_connections > 0 {
        env.push(("max_connections", max_connections.to_string()));
    }
    let w = Watchdog::start_with(bin, &env, Some(nofile));
    let port = w.port;
    let siege = Siege::start(
        std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        idle,
        b"POST / HTTP/1.1\r\nHo",
    );
    // Let the attack take hold first.
    std::thread::sleep(Duration::from_secs(2));
    let health = b"GET /_/health HTTP/1.1\r\nHost: probe\r\n\r\n".to_vec();
    let call = b"POST / HTTP/1.1\r\nHost: probe\r\nContent-Length: 5\r\n\r\nprobe".to_vec();
    let mut results: Vec<(&str, Duration, u16)> = Vec::new();
    let end = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < end {
        let tick = Instant::now();
        let (d, s) = probe(port, &health);
        results.push(("health", d, s));
        let (d, s) = probe(port, &call);
        results.push(("call", d, s));
        if let Some(rest) = Duration::from_millis(every_ms).checked_sub(tick.elapsed()) {
            std::thread::sleep(rest);
        }
    }
    let opened = siege.opened();
    drop(siege);
    println!(
        "attack: {idle} idle connections held against nofile={nofile}; {opened} opened in all ({} reopened after the watchdog closed them)",
        opened.saturating_sub(idle as u64)
    );
    for kind in ["health", "call"] {
        let mine: Vec<&(&str, Duration, u16)> = results.iter().filter(|r| r.0 == kind).collect();
        let ok = mine.iter().filter(|r| r.2 == 200).count();
        let refused = mine.iter().filter(|r| r.2 == 503).count();
        let mut ms: Vec<f64> = mine.iter().map(|r| r.1.as_secs_f64() * 1e3).collect();
        ms.sort_by(|a, b| a.total_cmp(b));
        println!(
            "{kind} probes: {} sent, {ok} answered 200, {refused} answered 503, {} unanswered; latency p50 {:.2} ms, p90 {:.2} ms, max {:.2} ms",
            mine.len(),
            mine.len() - ok - refused,
            super::percentile(&ms, 0.5),
            super::percentile(&ms, 0.9),
            super::percentile(&ms, 1.0)
        );
    }
    // Let the episode end (one second of calm once the attack is gone).
    std::thread::sleep(Duration::from_secs(3));
    let warnings = w.warnings.lock().unwrap_or_else(|p| p.into_inner()).clone();
    println!("watchdog warnings: {} lines", warnings.len());
    for l in warnings {
        println!("  {l}");
    }
}

/// RSS and descriptors before and after `calls` calls.
pub fn soak(bin: &str, calls: usize, connections: usize, function: &str) {
    let w = Watchdog::start(bin, &[("fprocess", function.to_string())]);
    let l = Load {
        connections,
        requests: calls,
        seconds: 3600,
        body: "hello".to_string(),
    };
    warm(w.port, &l);
    let (fds, rss) = settled(w.pid());
    let s = load(w.port, &l);
    let (fds_after, rss_after) = settled(w.pid());
    // The guardian (guardian.rs) is a child that belongs to no call.
    let leftover = std::fs::read_to_string(format!("/proc/{}/task/{}/children", w.pid(), w.pid()))
        .unwrap_or_default()
        .split_whitespace()
        .filter(|c| {
            std::fs::read_to_string(format!("/proc/{c}/comm"))
                .is_ok_and(|comm| comm.trim() != "moat-guardian")
        })
        .count();
    println!(
        "{} calls answered, {} errors, in {:.1} s ({:.0} calls/s, p50 {:.0} us, p99 {:.0} us)",
        s.ok,
        s.errors,
        s.elapsed.as_secs_f64(),
        s.rps(),
        s.pct(0.5),
        s.pct(0.99)
    );
    println!(
        "watchdog: RSS {rss} kB before, {rss_after} kB after (high-water mark {} kB); descriptors {fds} before, {fds_after} after; {leftover} children left besides its guardian",
        status_kb(w.pid(), "VmHWM"),
    );
}
