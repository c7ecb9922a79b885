//! Load test of the admission webhook: this process starts a `moat-k8s webhook` on
//! loopback with a fresh certificate, opens keep-alive HTTPS connections to it (handshakes
//! are not measured), warms them up, then sends AdmissionReviews and reports throughput,
//! latency percentiles and each side's CPU time per request. Bounded in count and time.
//!
//! ```sh
//! cargo build --release -p moat-k8s --bins --examples
//! L=target/x86_64-unknown-linux-gnu/release/examples/webhook_load
//! $L --concurrency 100 --requests 100000              # closed loop, 100 in flight
//! $L --concurrency 100 --requests 20000 --rate 5000   # open loop, 5,000 requests/s
//! $L --concurrency 100 --requests 20000 --burst-every-ms 50  # 100 at once, every 50 ms
//! $L --decision-only                                  # the decision alone, no TLS/HTTP
//! $L --concurrency 100 --requests 200000 --max-seconds 600   # soak: RSS and descriptors
//! $L --exhaust 400 --nofile 256 --max-seconds 20      # probes while idle connections exhaust descriptors
//! ```
//!
//! Options: `--concurrency N` (connections, each with at most one request in flight;
//! default 100), `--requests N` (total, default 50000), `--max-seconds S` (stop sending
//! after S seconds, default 60), `--rate R` (open loop, R requests per second) or
//! `--burst-every-ms T` (N requests at once every T ms), else a closed loop; `--webhook
//! PATH` (the binary; default `moat-k8s` beside this example's directory); `--dump FILE`
//! (each request's due time and latency in µs, one per line); `--nofile N` (the webhook's
//! descriptor limit); `--exhaust N` (instead of the load: N idle connections held open,
//! half of them in the middle of a TLS handshake, while a probe on a fresh connection
//! checks `/healthz` every 200 ms for `--max-seconds`; see [`exhaust`]). Every run reports
//! the webhook's RSS and descriptors before and after. See [`arrivals`] for what each load
//! model measures.

mod arrivals;
mod bodies;
mod exhaust;
mod http;
mod stats;

use arrivals::Arrivals;
use moat_k8s::certs::{self, CertRequest};
use stats::{cpu_use, percentile, CpuSample};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Mutex};

/// The endpoint of namespaces that opted in, where every pod is decided.
const PATH: &str = "/mutate/namespace";

struct Options {
    concurrency: usize,
    requests: usize,
    max_seconds: u64,
    arrivals: Arrivals,
    webhook: PathBuf,
    dump: Option<PathBuf>,
    nofile: Option<u64>,
    exhaust: Option<usize>,
}

fn options() -> Result<Options, String> {
    let exe = std::env::current_exe().map_err(|e| format!("own path: {e}"))?;
    let mut o = Options {
        concurrency: 100,
        requests: 50_000,
        max_seconds: 60,
        arrivals: Arrivals::Closed,
        dump: None,
        nofile: None,
        exhaust: None,
        webhook: exe
            .parent()
            .and_then(|examples| examples.parent())
            .map(|dir| dir.join("moat-k8s"))
            .ok_or("cannot find the target directory; pass --webhook")?,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let bad = |what: &str| format!("{flag} {value}: expected {what}");
        match flag.as_str() {
            "--concurrency" => o.concurrency = value.parse().map_err(|_| bad("a count"))?,
            "--requests" => o.requests = value.parse().map_err(|_| bad("a count"))?,
            "--max-seconds" => o.max_seconds = value.parse().map_err(|_| bad("seconds"))?,
            "--rate" => match value.parse::<f64>() {
                Ok(r) if r > 0.0 => o.arrivals = Arrivals::Rate(r),
                _ => return Err(bad("requests per second")),
            },
            "--burst-every-ms" => {
                let ms = value.parse().map_err(|_| bad("milliseconds"))?;
                o.arrivals = Arrivals::Bursts(Duration::from_millis(ms));
            }
            "--webhook" => o.webhook = value.into(),
            "--dump" => o.dump = Some(value.into()),
            "--nofile" => o.nofile = Some(value.parse().map_err(|_| bad("a count"))?),
            "--exhaust" => o.exhaust = Some(value.parse().map_err(|_| bad("a count"))?),
            other => return Err(format!("unknown option {other}")),
        }
    }
    if o.concurrency == 0 || o.requests == 0 {
        return Err("--concurrency and --requests must be positive".into());
    }
    Ok(o)
}

/// The pure decision, without TLS or HTTP: what each request costs the server's CPU
/// before any I/O, with the caches warm (the same template again and again).
fn decision_only() -> Result<(), String> {
    for (i, body) in bodies::bodies().iter().enumerate() {
        let n = 20_000;
        let t = Instant::now();
        for _ in 0..n {
            let out = moat_k8s::admission::review(body, moat_k8s::opt_in::Scope::Namespace)
                .map_err(|e| e.to_string())?;
            std::hint::black_box(out);
        }
        println!(
            "body {i} ({} bytes): {:.1} us per decision",
            body.len(),
            t.elapsed().as_secs_f64() * 1e6 / n as f64
        );
    }
    Ok(())
}

/// The webhook, killed when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the webhook with a fresh certificate (and its descriptor limit at `nofile`);
/// returns it, its address and the CA.
fn start(
    webhook: &PathBuf,
    dir: &std::path::Path,
    nofile: Option<u64>,
) -> Result<(Server, SocketAddr, String), String> {
    let generated = certs::generate(&CertRequest {
        service: "moat-webhook".into(),
        namespace: "moat-system".into(),
        days: 1,
        extra_names: vec![],
    })
    .map_err(|e| format!("certificates: {e}"))?;
    certs::write(dir, &generated).map_err(|e| format!("certificates: {e}"))?;
    let mut cmd = Command::new(webhook);
    // SAFETY: prctl only, between fork and exec: the webhook dies with this process.
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
        .arg(dir.join("tls.crt"))
        .arg("--tls-key")
        .arg(dir.join("tls.key"))
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{}: {e}", webhook.display()))?;
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let server = Server(child);
    let mut lines = BufReader::new(stderr).lines();
    let addr = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| {
            l.strip_prefix("moat-k8s: webhook listening on https://")
                .map(str::to_string)
        })
        .ok_or("the webhook did not start")?
        .parse()
        .map_err(|e| format!("webhook address: {e}"))?;
    // Keep reading its log so that it never blocks on a full pipe; print what it says
    // about connections (shedding episodes).
    std::thread::spawn(move || {
        for l in lines.map_while(Result::ok) {
            if l.contains("connection") || l.contains("descriptor") {
                eprintln!("webhook: {l}");
            }
        }
    });
    Ok((server, addr, generated.ca_pem))
}

/// What the measured phase gave.
struct Run {
    /// For each answered request: when it was due (after the start) and its latency.
    latencies: Vec<(Duration, Duration)>,
    errors: usize,
    elapsed: Duration,
}

/// Sends the requests over `conns` as `o.arrivals` says, and times each.
async fn drive(o: &Options, conns: Vec<http::Connection>, requests: Arc<Vec<Vec<u8>>>) -> Run {
    let start = Instant::now();
    let deadline = start + Duration::from_secs(o.max_seconds);
    // Open loop: a pacing thread releases each request at its due time into a queue that
    // every connection takes from when it is free.
    let queue = match o.arrivals {
        Arrivals::Closed => None,
        arrivals => {
            let (tx, rx) = mpsc::unbounded_channel();
            let (c, n) = (o.concurrency, o.requests);
            std::thread::spawn(move || arrivals::pace(arrivals, c, n, start, deadline, tx));
            Some(Arc::new(Mutex::new(rx)))
        }
    };
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for mut c in conns {
        let (next, queue, requests, total) =
            (next.clone(), queue.clone(), requests.clone(), o.requests);
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(total / 64);
            let mut errors = 0usize;
            loop {
                let (i, since) = match &queue {
                    None => {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= total || Instant::now() > deadline {
                            break;
                        }
                        (i, Instant::now())
                    }
                    Some(q) => match q.lock().await.recv().await {
                        Some(job) => job,
                        None => break,
                    },
                };
                match c.exchange(&requests[i % requests.len()]).await {
                    Ok((200, _)) => latencies.push((since - start, since.elapsed())),
                    _ => errors += 1,
                }
            }
            (latencies, errors)
        }));
    }
    let mut run = Run {
        latencies: Vec::with_capacity(o.requests),
        errors: 0,
        elapsed: Duration::ZERO,
    };
    for t in tasks {
        match t.await {
            Ok((lat, e)) => {
                run.latencies.extend(lat);
                run.errors += e;
            }
            Err(_) => run.errors += 1,
        }
    }
    run.elapsed = start.elapsed();
    run
}

/// Writes one line per answered request (grouped by connection): when it was due and its
/// latency, in microseconds; to see whether slow requests cluster in time (a stall) or
/// not.
fn dump(path: &std::path::Path, latencies: &[(Duration, Duration)]) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for (due, latency) in latencies {
        writeln!(out, "{} {}", due.as_micros(), latency.as_micros())?;
    }
    out.flush()
}

fn describe(o: &Options) -> String {
    match o.arrivals {
        Arrivals::Closed => format!(
            "closed loop, {} keep-alive connections, one request in flight on each",
            o.concurrency
        ),
        Arrivals::Rate(r) => format!(
            "open loop at {r:.0} requests/s over {} keep-alive connections",
            o.concurrency
        ),
        Arrivals::Bursts(every) => format!(
            "bursts of {} requests at once every {} ms, one per keep-alive connection",
            o.concurrency,
            every.as_millis()
        ),
    }
}

fn run() -> Result<(), String> {
    if std::env::args().nth(1).as_deref() == Some("--decision-only") {
        return decision_only();
    }
    let o = options()?;
    let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
    let (server, addr, ca_pem) = start(&o.webhook, dir.path(), o.nofile)?;
    let connector = http::connector(&ca_pem)?;
    if let Some(idle) = o.exhaust {
        return exhaust::run(&server.0, addr, &connector, idle, o.max_seconds);
    }
    let requests: Arc<Vec<Vec<u8>>> = Arc::new(
        bodies::bodies()
            .iter()
            .map(|b| http::post(PATH, b))
            .collect(),
    );
    // One thread: the load generator should take as little of the shared cores as it can.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    let (run, cpu) = runtime.block_on(async {
        let mut conns = Vec::new();
        for _ in 0..o.concurrency {
            let c = http::Connection::open(&connector, addr)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            conns.push(c);
        }
        // Warm-up: every connection sends every kind of request once, so that buffers
        // are sized and the webhook's caches hold the templates, as in a running cluster.
        for c in conns.iter_mut() {
            for r in requests.iter() {
                match c.exchange(r).await {
                    Ok((200, _)) => {}
                    other => return Err(format!("warm-up: {other:?}")),
                }
            }
        }
        let resources = stats::Resources::now(server.0.id());
        let before = CpuSample::now(server.0.id());
        let run = drive(&o, conns, requests.clone()).await;
        let after = CpuSample::now(server.0.id());
        let cpu = cpu_use(before, after, run.latencies.len());
        println!(
            "webhook: {} before, {} after the load",
            resources,
            stats::Resources::now(server.0.id())
        );
        Ok((run, cpu))
    })?;
    // Once the connections are closed.
    std::thread::sleep(Duration::from_secs(2));
    println!(
        "webhook: {} once the connections are closed",
        stats::Resources::now(server.0.id())
    );
    drop(server);

    if let Some(path) = &o.dump {
        dump(path, &run.latencies).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let mut sorted: Vec<Duration> = run.latencies.iter().map(|&(_, l)| l).collect();
    sorted.sort_unstable();
    if sorted.is_empty() {
        return Err("no request succeeded".into());
    }
    let ms = |q: f64| percentile(&sorted, q).as_secs_f64() * 1000.0;
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!("load: {}", describe(&o));
    println!(
        "requests: {} ok, {} failed, in {:.2} s: {:.0} requests/s",
        sorted.len(),
        run.errors,
        run.elapsed.as_secs_f64(),
        sorted.len() as f64 / run.elapsed.as_secs_f64()
    );
    println!(
        "latency: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
        ms(0.50),
        ms(0.90),
        ms(0.99),
        ms(0.999),
        ms(1.0)
    );
    println!(
        "cpu per request: webhook {:.1} us, load generator {:.1} us; cores busy {:.0}%, of \
         which other processes {:.0}%",
        us(cpu.server_per_request),
        us(cpu.client_per_request),
        cpu.busy * 100.0,
        cpu.others * 100.0
    );
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("webhook_load: {e}");
            ExitCode::FAILURE
        }
    }
}
