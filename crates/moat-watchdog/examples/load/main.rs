//! A bounded load generator for `moat-watchdog`, and the benchmarks of docs/PERFORMANCE.md.
//!
//! ```sh
//! cargo build --release -p moat-watchdog --examples
//! L=target/x86_64-unknown-linux-gnu/release/examples/load
//! W=target/x86_64-unknown-linux-gnu/release/moat-watchdog
//! $L run --port 8080 --connections 2 --requests 5000 --seconds 20   # against a running watchdog
//! $L compare --watchdog $W --rounds 5 --requests 3000               # sandbox=required vs off
//! $L spawn --watchdog $W --rounds 5 --requests 2000                 # spawn cost, 0 vs 512 MiB
//! $L fork --runs 1000                                               # fork vs clone(CLONE_VM) spawn
//! $L big-output --watchdog $W --mb 100                              # RSS while a slow client reads 100 MB
//! $L exhaust --watchdog $W --nofile 256 --idle 400                  # probes while idle connections exhaust descriptors
//! $L soak --watchdog $W --calls 50000                               # RSS and descriptors before and after
//! ```
//!
//! The load is HTTP/1.1 keep-alive over loopback from this process (never the watchdog's),
//! one thread per connection, each sending the next request when the previous answer is
//! in; it stops after `--requests` answers or `--seconds`, whichever comes first.
//! `compare` and `spawn` start a fresh watchdog per variant and round, in shuffled order,
//! warm it up, and report medians over rounds.

mod hostile;

use clap::{Parser, Subcommand};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(Subcommand)]
enum What {
    /// Load a running watchdog.
    Run {
        #[arg(long)]
        port: u16,
        #[command(flatten)]
        load: Load,
    },
    /// Throughput and latency, sandbox=required against sandbox=off.
    Compare {
        #[arg(long)]
        watchdog: String,
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        /// The function.
        #[arg(long, default_value = "cat")]
        function: String,
        #[command(flatten)]
        load: Load,
    },
    /// Latency, sandbox=required against sandbox=off, both running at once and one client
    /// alternating requests between them, so that machine load hits both alike.
    ///
    /// `--a` and `--b` change what is compared: each is a comma-separated list of
    /// `name=value` settings for that watchdog (`max_call_processes=0,max_call_cpu=0`), and
    /// `--watchdog-b` runs another binary as the second (an older build, say).
    Latency {
        #[arg(long)]
        watchdog: String,
        /// Requests to each.
        #[arg(long, default_value_t = 5000)]
        requests: usize,
        #[arg(long, default_value = "cat")]
        function: String,
        #[arg(long, default_value = "hello")]
        body: String,
        #[arg(long, default_value = "sandbox=required")]
        a: String,
        #[arg(long, default_value = "sandbox=off")]
        b: String,
        #[arg(long)]
        watchdog_b: Option<String>,
    },
    /// Spawn cost with the watchdog holding 0 and 512 MiB of touched memory.
    Spawn {
        #[arg(long)]
        watchdog: String,
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        #[arg(long, default_value_t = 512)]
        ballast_mb: usize,
        #[command(flatten)]
        load: Load,
    },
    /// In this process: what a sandboxed call adds, piece by piece (private directory,
    /// ruleset, spawn with and without the restrictions), for /bin/true.
    Setup {
        #[arg(long, default_value_t = 2000)]
        runs: usize,
    },
    /// In this process: spawning /bin/true with fork (std's Command with pre_exec) against
    /// moat_sandbox::spawn, without and with 512 MiB of touched memory.
    Fork {
        #[arg(long, default_value_t = 1000)]
        runs: usize,
        #[arg(long, default_value_t = 512)]
        ballast_mb: usize,
    },
    /// The watchdog's memory while one slow client reads a function's large output.
    BigOutput {
        #[arg(long)]
        watchdog: String,
        /// The output's size, in MiB.
        #[arg(long, default_value_t = 100)]
        mb: usize,
        /// The client reads this many KiB at a time...
        #[arg(long, default_value_t = 16)]
        read_kib: usize,
        /// ...and pauses this long between reads.
        #[arg(long, default_value_t = 200)]
        pause_us: u64,
    },
    /// Probes (a health check and a call, each on a fresh connection) while an attacker
    /// keeps idle connections open beyond the watchdog's descriptor limit.
    Exhaust {
        #[arg(long)]
        watchdog: String,
        /// The watchdog's RLIMIT_NOFILE.
        #[arg(long, default_value_t = 256)]
        nofile: u64,
        /// Idle connections the attacker keeps open (reopening those the watchdog closes).
        #[arg(long, default_value_t = 400)]
        idle: usize,
        #[arg(long, default_value_t = 20)]
        seconds: u64,
        #[arg(long, default_value_t = 200)]
        probe_every_ms: u64,
        /// `max_connections` (0: the default, three quarters of the limit less 64).
        #[arg(long, default_value_t = 0)]
        max_connections: usize,
    },
    /// RSS and descriptors of the watchdog before and after many calls.
    Soak {
        #[arg(long)]
        watchdog: String,
        #[arg(long, default_value_t = 50_000)]
        calls: usize,
        #[arg(long, default_value_t = 2)]
        connections: usize,
        #[arg(long, default_value = "cat")]
        function: String,
    },
}

#[derive(clap::Args, Clone)]
struct Load {
    #[arg(long, default_value_t = 2)]
    connections: usize,
    #[arg(long, default_value_t = 3000)]
    requests: usize,
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    #[arg(long, default_value = "hello")]
    body: String,
}

struct Stats {
    ok: usize,
    errors: usize,
    elapsed: Duration,
    latencies_us: Vec<f64>,
}

impl Stats {
    fn rps(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }
    fn pct(&self, p: f64) -> f64 {
        percentile(&self.latencies_us, p)
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    percentile(&v, 0.5)
}

/// Sends requests on `connections` keep-alive connections until `requests` answers or
/// `seconds` have passed.
fn load(port: u16, l: &Load) -> Stats {
    let remaining = Arc::new(AtomicUsize::new(l.requests));
    let deadline = Instant::now() + Duration::from_secs(l.seconds);
    let request = Arc::new(
        format!(
            "POST / HTTP/1.1\r\nHost: load\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{}",
            l.body.len(),
            l.body
        )
        .into_bytes(),
    );
    let start = Instant::now();
    let threads: Vec<_> = (0..l.connections)
        .map(|_| {
            let remaining = Arc::clone(&remaining);
            let request = Arc::clone(&request);
            std::thread::spawn(move || {
                let mut lat = Vec::new();
                let mut errors = 0;
                let mut conn: Option<BufReader<TcpStream>> = None;
                while Instant::now() < deadline
                    && remaining
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                        .is_ok()
                {
                    let c = match conn.take() {
                        Some(c) => c,
                        None => match TcpStream::connect(("127.0.0.1", port)) {
                            Ok(s) => {
                                let _ = s.set_nodelay(true);
                                let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
                                BufReader::new(s)
                            }
                            Err(_) => {
                                errors += 1;
                                continue;
                            }
                        },
                    };
                    let t = Instant::now();
                    match exchange(c, &request) {
                        Some((200, c)) => {
                            lat.push(t.elapsed().as_secs_f64() * 1e6);
                            conn = Some(c);
                        }
                        Some((_, c)) => {
                            errors += 1;
                            conn = Some(c);
                        }
                        None => errors += 1,
                    }
                }
                (lat, errors)
            })
        })
        .collect();
    let mut latencies_us = Vec::new();
    let mut errors = 0;
    for t in threads {
        if let Ok((lat, e)) = t.join() {
            latencies_us.extend(lat);
            errors += e;
        }
    }
    let elapsed = start.elapsed();
    latencies_us.sort_by(|a, b| a.total_cmp(b));
    Stats {
        ok: latencies_us.len(),
        errors,
        elapsed,
        latencies_us,
    }
}

/// One request and its response on a kept-alive connection.
fn exchange(mut c: BufReader<TcpStream>, request: &[u8]) -> Option<(u16, BufReader<TcpStream>)> {
    c.get_mut().write_all(request).ok()?;
    let mut line = String::new();
    c.read_line(&mut line).ok()?;
    let status: u16 = line.split(' ').nth(1)?.parse().ok()?;
    let mut length = 0usize;
    loop {
        line.clear();
        c.read_line(&mut line).ok()?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0u8; length];
    c.read_exact(&mut body).ok()?;
    Some((status, c))
}

struct Watchdog {
    child: Child,
    port: u16,
    metrics_port: u16,
    /// Its warnings and errors.
    warnings: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Watchdog {
    fn start(bin: &str, env: &[(&str, String)]) -> Watchdog {
        Watchdog::start_with(bin, env, None)
    }

    /// Starts a watchdog with `env`, and its descriptor limit at `nofile` when given.
    fn start_with(bin: &str, env: &[(&str, String)], nofile: Option<u64>) -> Watchdog {
        let mut cmd = Command::new(bin);
        if let Some(n) = nofile {
            moat_serve::nofile::limit_child(&mut cmd, n);
        }
        cmd.env("port", "0")
            .env("metrics_port", "0")
            .env("healthcheck_interval", "0")
            .env("suppress_lock", "true")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start the watchdog");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        let warnings = Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = Arc::clone(&warnings);
        std::thread::spawn(move || {
            let mut ports = (None, None);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(p) = line.split("Metrics listening on port: ").nth(1) {
                    ports.1 = p.trim().parse::<u16>().ok();
                } else if let Some(p) = line.split("Listening on port: ").nth(1) {
                    ports.0 = p.trim().parse::<u16>().ok();
                } else if line.contains("ERROR") {
                    eprintln!("watchdog: {line}");
                }
                if line.contains(" WARN ") || line.contains(" ERROR ") {
                    kept.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(line.clone());
                }
                if let (Some(a), Some(b)) = ports {
                    let _ = tx.send((a, b));
                    ports = (None, None);
                }
            }
        });
        let (port, metrics_port) = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the watchdog listens");
        Watchdog {
            child,
            port,
            metrics_port,
            warnings,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU seconds used so far by the watchdog and the calls it has reaped (utime, stime,
    /// cutime and cstime of /proc/<pid>/stat).
    fn cpu_seconds(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        let after = stat.rfind(')').map_or("", |i| &stat[i + 2..]);
        let f: Vec<f64> = after
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(0.0))
            .collect();
        // Fields 14-17 of stat; `after` starts at field 3.
        let ticks: f64 = f.get(11..15).map_or(0.0, |v| v.iter().sum());
        // SAFETY: sysconf has no preconditions.
        ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
    }

    /// (spawns, seconds spent spawning) from /metrics.
    fn spawn_stats(&self) -> (f64, f64) {
        let mut s = TcpStream::connect(("127.0.0.1", self.metrics_port)).expect("metrics");
        let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: m\r\nConnection: close\r\n\r\n");
        let mut text = String::new();
        let _ = s.read_to_string(&mut text);
        let get = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .unwrap_or(f64::NAN)
        };
        (
            get("moat_watchdog_spawn_seconds_count "),
            get("moat_watchdog_spawn_seconds_sum "),
        )
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

/// A deterministic shuffle (rounds are interleaved so that machine load hits every variant).
fn shuffled<T: Clone>(items: &[T], seed: usize) -> Vec<T> {
    let mut v = items.to_vec();
    let mut x = seed.wrapping_mul(2654435761).wrapping_add(1);
    for i in (1..v.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.swap(i, x % (i + 1));
    }
    v
}

fn warm(port: u16, l: &Load) {
    let warm = Load {
        requests: 200,
        ..l.clone()
    };
    let _ = load(port, &warm);
}

fn compare(bin: &str, rounds: usize, function: &str, l: &Load) {
    let variants = ["required", "off"];
    let mut results: Vec<Vec<Stats>> = vec![Vec::new(), Vec::new()];
    let mut cpu_per_call: Vec<Vec<f64>> = vec![Vec::new(), Vec::new()];
    for round in 0..rounds {
        for v in shuffled(&variants, round) {
            let idx = variants.iter().position(|x| *x == v).unwrap_or(0);
            let w = Watchdog::start(
                bin,
                &[
                    ("fprocess", function.to_string()),
                    ("sandbox", v.to_string()),
                ],
            );
            warm(w.port, l);
            let cpu = w.cpu_seconds();
            let s = load(w.port, l);
            // Settle: the last calls' processes are reaped and counted.
            std::thread::sleep(Duration::from_millis(100));
            let cpu_us = (w.cpu_seconds() - cpu) / s.ok.max(1) as f64 * 1e6;
            eprintln!(
                "round {round} sandbox={v}: {} ok, {} errors, {:.0} req/s, p50 {:.0} us, p99 {:.0} us, CPU {cpu_us:.0} us per call",
                s.ok,
                s.errors,
                s.rps(),
                s.pct(0.5),
                s.pct(0.99)
            );
            cpu_per_call[idx].push(cpu_us);
            results[idx].push(s);
        }
    }
    println!(
        "| sandbox | req/s (median of {rounds}) | p50 us | p90 us | p99 us | CPU us per call | errors |\n|---|---:|---:|---:|---:|---:|---:|"
    );
    let mut summary = Vec::new();
    for ((v, rs), cpu) in variants.iter().zip(&results).zip(&cpu_per_call) {
        let rps = median(rs.iter().map(Stats::rps).collect());
        let p50 = median(rs.iter().map(|s| s.pct(0.5)).collect());
        let p90 = median(rs.iter().map(|s| s.pct(0.9)).collect());
        let p99 = median(rs.iter().map(|s| s.pct(0.99)).collect());
        let errors: usize = rs.iter().map(|s| s.errors).sum();
        let cpu = median(cpu.clone());
        println!("| {v} | {rps:.0} | {p50:.0} | {p90:.0} | {p99:.0} | {cpu:.0} | {errors} |");
        summary.push((rps, p50));
    }
    // Paired per round: the same round's two runs saw the same machine load.
    let ratio = median(
        results[0]
            .iter()
            .zip(&results[1])
            .map(|(a, b)| a.rps() / b.rps())
            .collect(),
    );
    let added = median(
        results[0]
            .iter()
            .zip(&results[1])
            .map(|(a, b)| a.pct(0.5) - b.pct(0.5))
            .collect(),
    );
    println!(
        "\nrequired/off throughput: {:.3} (medians), {ratio:.3} (paired median), {:.3} (all requests over all time); p50 added: {:.0} us (medians), {added:.0} us (paired median); CPU per call off/required: {:.3}",
        summary[0].0 / summary[1].0,
        overall_rps(&results[0]) / overall_rps(&results[1]),
        summary[0].1 - summary[1].1,
        median(cpu_per_call[1].clone()) / median(cpu_per_call[0].clone())
    );
    let (lo, hi) = bootstrap_ratio(&results[0], &results[1], 2000);
    println!(
        "95% interval of the throughput ratio of medians (2000 bootstrap resamples of whole rounds): {lo:.3} .. {hi:.3}"
    );
}

/// Requests answered over the time spent answering them, across rounds.
fn overall_rps(rounds: &[Stats]) -> f64 {
    let ok: usize = rounds.iter().map(|s| s.ok).sum();
    let secs: f64 = rounds.iter().map(|s| s.elapsed.as_secs_f64()).sum();
    ok as f64 / secs
}

/// A 95% interval of median(a's req/s) / median(b's req/s), resampling whole rounds (a
/// round's two runs stay together). A small xorshift generator with a fixed seed keeps the
/// load generator free of a random-number dependency and its output reproducible.
fn bootstrap_ratio(a: &[Stats], b: &[Stats], resamples: usize) -> (f64, f64) {
    let n = a.len().min(b.len());
    if n == 0 {
        return (f64::NAN, f64::NAN);
    }
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    let mut ratios: Vec<f64> = (0..resamples)
        .map(|_| {
            let idx: Vec<usize> = (0..n).map(|_| next()).collect();
            median(idx.iter().map(|&i| a[i].rps()).collect())
                / median(idx.iter().map(|&i| b[i].rps()).collect())
        })
        .collect();
    ratios.sort_by(|x, y| x.total_cmp(y));
    (
        ratios[resamples * 25 / 1000],
        ratios[(resamples * 975 / 1000).saturating_sub(1)],
    )
}

fn latency(variants: [(&str, &str); 2], requests: usize, function: &str, body: &str) {
    let ws: Vec<Watchdog> = variants
        .iter()
        .map(|(bin, settings)| {
            let mut env = vec![("fprocess", function.to_string())];
            for kv in settings.split(',').filter(|kv| !kv.is_empty()) {
                let (k, v) = kv
                    .split_once('=')
                    .expect("--a and --b take name=value lists");
                env.push((k, v.to_string()));
            }
            Watchdog::start(bin, &env)
        })
        .collect();
    let request = format!(
        "POST / HTTP/1.1\r\nHost: load\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes();
    let connect = |port: u16| {
        let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let _ = s.set_nodelay(true);
        BufReader::new(s)
    };
    let mut conns: Vec<Option<BufReader<TcpStream>>> =
        ws.iter().map(|w| Some(connect(w.port))).collect();
    let mut lat: Vec<Vec<f64>> = vec![Vec::new(), Vec::new()];
    let mut diffs = Vec::new();
    for i in 0..requests + 200 {
        // Alternate which goes first, so neither always follows the other.
        let order = if i % 2 == 0 { [0, 1] } else { [1, 0] };
        let mut pair = [0.0; 2];
        for v in order {
            let c = conns[v].take().unwrap_or_else(|| connect(ws[v].port));
            let t = Instant::now();
            match exchange(c, &request) {
                Some((200, c)) => {
                    pair[v] = t.elapsed().as_secs_f64() * 1e6;
                    conns[v] = Some(c);
                }
                _ => pair[v] = f64::NAN,
            }
        }
        // The first 200 pairs warm both up.
        if i >= 200 && pair.iter().all(|x| x.is_finite()) {
            lat[0].push(pair[0]);
            lat[1].push(pair[1]);
            diffs.push(pair[0] - pair[1]);
        }
    }
    println!(
        "| watchdog ({} alternating requests each) | p50 us | p90 us | p99 us |\n|---|---:|---:|---:|",
        lat[0].len()
    );
    let names = variants.map(|(bin, settings)| {
        if variants[0].0 == variants[1].0 {
            settings.to_string()
        } else {
            format!("{bin} {settings}")
        }
    });
    for (v, l) in names.iter().zip(lat.iter_mut()) {
        l.sort_by(|a, b| a.total_cmp(b));
        println!(
            "| {v} | {:.0} | {:.0} | {:.0} |",
            percentile(l, 0.5),
            percentile(l, 0.9),
            percentile(l, 0.99)
        );
    }
    let p50_added = percentile(&lat[0], 0.5) - percentile(&lat[1], 0.5);
    println!(
        "\np50 added by the first: {p50_added:.0} us; median of the paired differences: {:.0} us",
        median(diffs)
    );
}

fn spawn_cost(bin: &str, rounds: usize, ballast_mb: usize, l: &Load) {
    let sizes = [0usize, ballast_mb];
    let mut per_size: Vec<Vec<(f64, f64)>> = vec![Vec::new(), Vec::new()];
    for round in 0..rounds {
        for mb in shuffled(&sizes, round) {
            let idx = if mb == 0 { 0 } else { 1 };
            let w = Watchdog::start(
                bin,
                &[
                    ("fprocess", "/bin/true".to_string()),
                    ("MOAT_WATCHDOG_BALLAST_MB", mb.to_string()),
                ],
            );
            warm(w.port, l);
            let before = w.spawn_stats();
            let s = load(w.port, l);
            let after = w.spawn_stats();
            let spawn_us = (after.1 - before.1) / (after.0 - before.0) * 1e6;
            eprintln!(
                "round {round} ballast {mb} MiB: spawn {spawn_us:.1} us, p50 {:.0} us, {:.0} req/s",
                s.pct(0.5),
                s.rps()
            );
            per_size[idx].push((spawn_us, s.pct(0.5)));
        }
    }
    println!(
        "| watchdog ballast | spawn us (mean per call, median of {rounds}) | call p50 us |\n|---|---:|---:|"
    );
    let mut spawn = Vec::new();
    for (mb, r) in sizes.iter().zip(&per_size) {
        let s = median(r.iter().map(|x| x.0).collect());
        let p = median(r.iter().map(|x| x.1).collect());
        println!("| {mb} MiB | {s:.1} | {p:.0} |");
        spawn.push(s);
    }
    println!(
        "\n{ballast_mb} MiB / 0 MiB spawn cost: {:.3}",
        spawn[1] / spawn[0]
    );
}

fn fork_vs_spawn(runs: usize, ballast_mb: usize) {
    use moat_sandbox::spawn::{Command as Spawn, Env, Restrictions, Stdio as SpawnStdio};
    use std::os::fd::AsFd;
    use std::os::unix::process::CommandExt;
    let null = std::fs::File::options()
        .read(true)
        .write(true)
        .open("/dev/null")
        .expect("/dev/null");
    let time_fork = || {
        let t = Instant::now();
        let mut cmd = Command::new("/bin/true");
        // SAFETY: an empty pre_exec hook; its only effect is that std forks.
        unsafe { cmd.pre_exec(|| Ok(())) };
        let _ = cmd.status();
        t.elapsed().as_secs_f64() * 1e6
    };
    let spawn_cmd = Spawn::new(
        std::path::Path::new("/bin/true"),
        std::ffi::OsStr::new("true"),
    )
    .expect("command");
    let time_spawn = || {
        let t = Instant::now();
        if let Ok(c) = spawn_cmd.spawn(
            &Env::new(),
            SpawnStdio {
                stdin: null.as_fd(),
                stdout: null.as_fd(),
                stderr: null.as_fd(),
            },
            &Restrictions::none(),
        ) {
            let mut st = 0;
            // SAFETY: waiting for our own child.
            unsafe { libc::waitpid(c.pid, &mut st, 0) };
        }
        t.elapsed().as_secs_f64() * 1e6
    };
    let measure = |label: &str| {
        let mut f = Vec::new();
        let mut s = Vec::new();
        // Spawns first: a fork leaves the parent's pages copy-on-write, and the faults that
        // follow would land on whatever is measured next.
        for _ in 0..runs {
            s.push(time_spawn());
        }
        for _ in 0..runs {
            f.push(time_fork());
        }
        println!(
            "| {label} | {:.0} | {:.0} |",
            median(f.clone()),
            median(s.clone())
        );
    };
    println!("| parent memory | fork+exec+wait us (median) | clone(CLONE_VM) spawn+exec+wait us (median) |\n|---|---:|---:|");
    measure("0 MiB");
    let ballast: Vec<u8> = {
        let mut v = vec![0u8; ballast_mb << 20];
        for i in (0..v.len()).step_by(4096) {
            v[i] = 1;
        }
        v
    };
    measure(&format!("{ballast_mb} MiB touched"));
    std::hint::black_box(&ballast);
}

fn setup_cost(runs: usize) {
    use moat_sandbox::spawn::{Command as Spawn, Env, Restrictions, Stdio as SpawnStdio};
    use moat_sandbox::tmpdir::{choose_root, TmpRoot};
    use moat_watchdog::config::Config;
    use moat_watchdog::Sandbox;
    use std::os::fd::AsFd;
    let config = Config::from_lookup(&|k: &str| (k == "fprocess").then(|| "true".to_string()))
        .expect("config");
    let abi = moat_sandbox::abi::detect().expect("abi");
    let cwd = std::env::current_dir().expect("cwd");
    let mut sandbox =
        Sandbox::prepare(&config, std::path::Path::new("/usr/bin/true"), &cwd, abi).expect("plan");
    let root = TmpRoot::create(&choose_root(None), "moat-watchdog").expect("tmp root");
    let null = std::fs::File::options()
        .read(true)
        .write(true)
        .open("/dev/null")
        .expect("/dev/null");
    let cmd = Spawn::new(
        std::path::Path::new("/usr/bin/true"),
        std::ffi::OsStr::new("true"),
    )
    .expect("command");
    let run = |r: &Restrictions| {
        let t = Instant::now();
        let stdio = SpawnStdio {
            stdin: null.as_fd(),
            stdout: null.as_fd(),
            stderr: null.as_fd(),
        };
        let c = cmd.spawn(&Env::new(), stdio, r).expect("spawn");
        let spawned = t.elapsed();
        let mut st = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(c.pid, &mut st, 0) };
        (spawned.as_secs_f64() * 1e6, t.elapsed().as_secs_f64() * 1e6)
    };
    // One round: a call's pieces, sandboxed, then the same spawn without restrictions.
    let measure = |sandbox: &Sandbox| {
        let mut m: Vec<Vec<f64>> = vec![Vec::new(); 7];
        let none = Restrictions::none();
        for _ in 0..runs {
            let t = Instant::now();
            let dir = root.create_call().expect("dir");
            m[0].push(t.elapsed().as_secs_f64() * 1e6);
            let t = Instant::now();
            let r = sandbox.restrictions(Some(&dir)).expect("ruleset");
            m[1].push(t.elapsed().as_secs_f64() * 1e6);
            let (s, tot) = run(&r);
            m[2].push(s);
            m[3].push(tot);
            drop(r);
            let t = Instant::now();
            root.remove(dir).expect("remove");
            m[4].push(t.elapsed().as_secs_f64() * 1e6);
            let (s, tot) = run(&none);
            m[5].push(s);
            m[6].push(tot);
        }
        m.into_iter().map(median).collect::<Vec<f64>>()
    };
    let per_call = measure(&sandbox);
    // The watchdog installs the socket filter on itself; calls inherit it.
    sandbox.install_inherited_filter(true).expect("filter");
    let inherited = measure(&sandbox);
    let _ = root.remove_all();
    println!("| step ({runs} runs, medians, us) | filter attached per call | filter inherited |\n|---|---:|---:|");
    let rows = [
        (0, "private directory: mkdirat + open"),
        (1, "the call's Landlock ruleset (create + rules)"),
        (4, "private directory: rmdir"),
        (2, "spawn, sandboxed (clone to exec)"),
        (5, "spawn, no restrictions (clone to exec)"),
        (3, "spawn + run + reap /bin/true, sandboxed"),
        (6, "spawn + run + reap /bin/true, no restrictions"),
    ];
    for (i, label) in rows {
        println!("| {label} | {:.1} | {:.1} |", per_call[i], inherited[i]);
    }
    let added = |m: &[f64]| m[0] + m[1] + m[4] + m[3] - m[6];
    println!(
        "| **added by the sandbox** (directory + ruleset + rmdir + sandboxed run - plain run) | {:.1} | {:.1} |",
        added(&per_call),
        added(&inherited)
    );
}

fn main() {
    let args = Args::parse();
    match args.what {
        What::Run { port, load: l } => {
            let s = load(port, &l);
            println!(
                "{} ok, {} errors in {:.2} s: {:.0} req/s, p50 {:.0} us, p90 {:.0} us, p99 {:.0} us",
                s.ok,
                s.errors,
                s.elapsed.as_secs_f64(),
                s.rps(),
                s.pct(0.5),
                s.pct(0.9),
                s.pct(0.99)
            );
        }
        What::Compare {
            watchdog,
            rounds,
            function,
            load: l,
        } => compare(&watchdog, rounds, &function, &l),
        What::Latency {
            watchdog,
            requests,
            function,
            body,
            a,
            b,
            watchdog_b,
        } => {
            let second = watchdog_b.as_deref().unwrap_or(&watchdog);
            latency(
                [(&watchdog, a.as_str()), (second, b.as_str())],
                requests,
                &function,
                &body,
            )
        }
        What::Spawn {
            watchdog,
            rounds,
            ballast_mb,
            load: l,
        } => spawn_cost(&watchdog, rounds, ballast_mb, &l),
        What::Fork { runs, ballast_mb } => fork_vs_spawn(runs, ballast_mb),
        What::BigOutput {
            watchdog,
            mb,
            read_kib,
            pause_us,
        } => hostile::big_output(&watchdog, mb, read_kib, pause_us),
        What::Exhaust {
            watchdog,
            nofile,
            idle,
            seconds,
            probe_every_ms,
            max_connections,
        } => hostile::exhaust(
            &watchdog,
            nofile,
            idle,
            seconds,
            probe_every_ms,
            max_connections,
        ),
        What::Soak {
            watchdog,
            calls,
            connections,
            function,
        } => hostile::soak(&watchdog, calls, connections, &function),
        What::Setup { runs } => setup_cost(runs),
    }
}
