//! The webhook's HTTPS server: `/mutate`, `/mutate/namespace` and `/healthz`.
//!
//! The handlers only read the body and wrap [`admission::review`], which decides. Limits
//! keep one client from holding the server: request bodies are capped (413 beyond, at once
//! when the declared length is over the cap, over HTTP/1.1 and HTTP/2 alike), a body must
//! arrive within [`BODY_TIMEOUT`] (408), request headers within [`HEADER_TIMEOUT`], a TLS
//! handshake within [`HANDSHAKE_TIMEOUT`]. Connections are accepted through
//! `moat_serve`: at most `max_connections` at once, idle ones (unfinished handshakes
//! first among them, as the longest idle) shed when the cap is reached or descriptors run
//! out, one log line per such episode. On SIGTERM the server stops accepting, lets
//! requests in flight finish for a grace period, answers 503 to those still waiting for
//! their body, and exits.

use crate::admission::{self, Decision};
use crate::opt_in::Scope;
use crate::tls::{self, ReloadingCert, TlsError};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use moat_serve::{Acceptor, Connections, Tracked};
use std::cell::Cell;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

/// How long a client may take to send a request's headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to send a request's body.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to complete the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The default cap on a request body. An AdmissionReview for a pod update carries the pod
/// twice (object and oldObject), and etcd stores objects up to 1.5 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 3 << 20;
/// After the grace period, how long requests answered 503 get to be written.
const CUT_FLUSH: Duration = Duration::from_secs(2);

/// How the server runs.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Where to listen.
    pub addr: SocketAddr,
    /// The PEM certificate chain.
    pub cert: PathBuf,
    /// The PEM private key.
    pub key: PathBuf,
    /// Bodies larger than this are answered 413.
    pub max_body_bytes: usize,
    /// How often the certificate files are checked for changes.
    pub reload_every: Duration,
    /// How long requests in flight may take to finish after SIGTERM.
    pub shutdown_grace: Duration,
    /// Connections open at once; `None` derives it from the descriptor limit.
    pub max_connections: Option<usize>,
    /// Gives the calling thread's freed memory back to the system (the binary's allocator
    /// knows how); see [`on_park`].
    pub give_back: Option<fn()>,
    /// The operator's rules (floors, namespaces allowed privileged pods), read again from
    /// the floors file when it changes.
    pub rules: Arc<crate::floors::Live>,
}

/// Bumped when many connections have closed: each worker thread gives its freed memory
/// back the next time it parks ([`on_park`]).
static GIVE_BACK: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static GIVEN_BACK: Cell<u64> = const { Cell::new(0) };
}

/// The runtime's `on_thread_park` hook: after many connections closed, each worker gives
/// the memory they held back with `give_back`, once. mimalloc (the binary's allocator)
/// keeps freed pages in the heap of the thread that allocated them until that thread
/// collects, and a few thousand idle TLS connections closing left 50-80 MB there
/// (docs/PERFORMANCE.md); the check costs one atomic load per park.
pub fn on_park(give_back: fn()) -> impl Fn() + Send + Sync + 'static {
    move || {
        let wanted = GIVE_BACK.load(Ordering::Relaxed);
        GIVEN_BACK.with(|g| {
            if g.get() != wanted {
                g.set(wanted);
                give_back();
            }
        });
    }
}

/// Asks every worker to give memory back (see [`on_park`]), and wakes them to do it: now,
/// and once more a moment later for connections that were still closing.
fn ask_to_give_back(give_back: fn()) {
    GIVE_BACK.fetch_add(1, Ordering::Relaxed);
    give_back();
    let handle = tokio::runtime::Handle::current();
    // From a blocking-pool thread, spawned tasks go to the shared queue and each wakes a
    // parked worker; spawned from a worker they may all run on that one worker, leaving
    // another parked with its freed pages (seen under load: half the memory kept).
    tokio::task::spawn_blocking(move || {
        for delay in [Duration::ZERO, Duration::from_millis(500)] {
            std::thread::sleep(delay);
            GIVE_BACK.fetch_add(1, Ordering::Relaxed);
            for _ in 0..std::thread::available_parallelism().map_or(2, |n| n.get()) * 2 {
                handle.spawn(tokio::task::yield_now());
            }
        }
    });
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The certificate or key does not load.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    /// The address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The signal handler cannot be installed.
    #[error("cannot install the SIGTERM handler: {0}")]
    Signal(std::io::Error),
}

/// The answer to one request: the routes, without a socket.
///
/// The three routes are matched here directly rather than through a router: a request
/// costs the webhook a few tens of microseconds, and a router's boxed futures and
/// extractors were a visible part of it.
///
/// `stopping` turns true when the shutdown grace period is over: a request still waiting
/// for its body is answered 503 then.
pub async fn handle(
    req: Request<Incoming>,
    max_body_bytes: usize,
    stopping: watch::Receiver<bool>,
    rules: &crate::floors::Rules,
) -> Response<Full<Bytes>> {
    let (allow, scope) = match req.uri().path() {
        "/mutate" => ("POST", Some(Scope::Pod)),
        "/mutate/namespace" => ("POST", Some(Scope::Namespace)),
        "/healthz" => ("GET,HEAD", None),
        _ => return respond(StatusCode::NOT_FOUND, None, Bytes::new()),
    };
    match (scope, req.method()) {
        (Some(scope), &Method::POST) => {
            let http1 = req.version() <= hyper::Version::HTTP_11;
            let mut r = mutate(scope, max_body_bytes, req.into_body(), stopping, rules).await;
            // The body was not read to its end: the connection cannot carry another
            // request. (HTTP/2 ends the stream instead, and has no such header.)
            if http1
                && matches!(
                    r.status(),
                    StatusCode::PAYLOAD_TOO_LARGE | StatusCode::SERVICE_UNAVAILABLE
                )
            {
                r.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            r
        }
        (None, &Method::GET | &Method::HEAD) => {
            respond(StatusCode::OK, Some(TEXT), Bytes::from_static(b"ok\n"))
        }
        _ => {
            let mut r = respond(StatusCode::METHOD_NOT_ALLOWED, None, Bytes::new());
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
            r
        }
    }
}

const TEXT: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");
const JSON: HeaderValue = HeaderValue::from_static("application/json");

fn respond(
    status: StatusCode,
    content_type: Option<HeaderValue>,
    body: Bytes,
) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    if let Some(t) = content_type {
        r.headers_mut().insert(header::CONTENT_TYPE, t);
    }
    r
}

async fn mutate(
    scope: Scope,
    limit: usize,
    body: Incoming,
    mut stopping: watch::Receiver<bool>,
    rules: &crate::floors::Rules,
) -> Response<Full<Bytes>> {
    // A declared length over the cap is refused before a byte of the body is read.
    let declared = body.size_hint().lower();
    if declared > limit as u64 {
        return refuse_body(body, limit, declared);
    }
    let collected = tokio::select! {
        c = tokio::time::timeout(BODY_TIMEOUT, read_limited(body, limit)) => c,
        _ = stopping.wait_for(|s| *s) => {
            return plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "the webhook is shutting down and the request body did not arrive within its grace period",
            )
        }
    };
    let bytes = match collected {
        Err(_) => {
            return plain(
                StatusCode::REQUEST_TIMEOUT,
                "request body not received in time",
            )
        }
        Ok(Err(BodyError::TooLarge(rest))) => return refuse_body(rest, limit, 0),
        Ok(Err(BodyError::Malformed(e))) => {
            return plain(
                StatusCode::BAD_REQUEST,
                &format!("cannot read the body: {e}"),
            )
        }
        Ok(Ok(b)) => b,
    };
    match admission::review_with(&bytes, scope, rules) {
        Ok(outcome) => {
            if let Decision::Denied(why) = &outcome.decision {
                let dry = if outcome.dry_run { " (dry run)" } else { "" };
                eprintln!("moat-k8s: denied {}{dry}: {why}", outcome.object);
            }
            respond(StatusCode::OK, Some(JSON), outcome.body.into())
        }
        Err(e) => plain(StatusCode::BAD_REQUEST, &e.to_string()),
    }
}

enum BodyError {
    /// Over the cap: the rest of the body, unread.
    TooLarge(Incoming),
    Malformed(hyper::Error),
}

/// Reads a body of at most `limit` bytes.
async fn read_limited(mut body: Incoming, limit: usize) -> Result<Bytes, BodyError> {
    let mut buf = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(BodyError::Malformed)?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                return Err(BodyError::TooLarge(body));
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(Bytes::from(buf))
}

/// Answers 413 at once. The rest of the body (`declared` bytes, 0 if unknown) is read and
/// thrown away in the background when it is not too much (at most [`DRAIN_FACTOR`] times
/// the cap, within [`BODY_TIMEOUT`]): a client that writes its whole request before it
/// reads (HTTP/1.1 clients do) then reads the 413, and an HTTP/2 stream ends without a
/// reset (which some clients, curl 7.88 among them, report as an error instead of the
/// answer). A larger body is not read at all: the connection or stream is closed after the
/// answer.
fn refuse_body(body: Incoming, limit: usize, declared: u64) -> Response<Full<Bytes>> {
    let most = (limit as u64).saturating_mul(DRAIN_FACTOR).max(64 * 1024);
    if declared <= most {
        tokio::spawn(async move {
            let _ = tokio::time::timeout(BODY_TIMEOUT, drain(body, most)).await;
        });
    }
    too_large(limit)
}

/// How many times `--max-request-bytes` an oversized body may be read to be thrown away.
const DRAIN_FACTOR: u64 = 4;

async fn drain(mut body: Incoming, mut left: u64) {
    while let Some(Ok(frame)) = body.frame().await {
        if let Ok(data) = frame.into_data() {
            match left.checked_sub(data.len() as u64) {
                Some(l) => left = l,
                None => return,
            }
        }
    }
}

fn too_large(limit: usize) -> Response<Full<Bytes>> {
    plain(
        StatusCode::PAYLOAD_TOO_LARGE,
        &format!("request body over {limit} bytes (--max-request-bytes)"),
    )
}

fn plain(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    respond(status, Some(TEXT), format!("{message}\n").into())
}

/// A bound listener with its certificate, ready to serve.
pub struct Bound {
    listener: TcpListener,
    cert: Arc<ReloadingCert>,
    acceptor: TlsAcceptor,
    settings: Settings,
}

impl Bound {
    /// Loads the certificate and binds the address: everything that can fail at start.
    pub async fn new(settings: Settings) -> Result<Bound, ServerError> {
        let cert = Arc::new(ReloadingCert::new(&settings.cert, &settings.key)?);
        let acceptor = TlsAcceptor::from(Arc::new(tls::server_config(cert.clone())?));
        let listener =
            TcpListener::bind(settings.addr)
                .await
                .map_err(|source| ServerError::Bind {
                    addr: settings.addr,
                    source,
                })?;
        Ok(Bound {
            listener,
            cert,
            acceptor,
            settings,
        })
    }

    /// The address actually bound (port 0 picks a free one).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes, then lets requests in flight finish (up to the
    /// grace period).
    pub async fn serve(self, shutdown: impl Future<Output = ()>) {
        let Bound {
            listener,
            cert,
            acceptor,
            settings,
        } = self;
        let reloader = tokio::spawn(reload_loop(
            cert,
            Arc::clone(&settings.rules),
            settings.reload_every,
        ));
        // HTTP/1.1 (what the API server speaks when it offers both) gets hyper's HTTP/1
        // server directly; h2 by ALPN gets the HTTP/2 one. Only a client that negotiated
        // nothing goes through the builder that tells the two apart by their first bytes.
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT);
        builder.http2().timer(TokioTimer::new());
        let mut http1 = hyper::server::conn::http1::Builder::new();
        http1
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT);
        let mut http2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
        http2.timer(TokioTimer::new());
        let limit = settings.max_body_bytes;
        let rules = Arc::clone(&settings.rules);
        let (stop_tx, stopping) = watch::channel(false);
        let graceful = GracefulShutdown::new();
        let max_connections = settings.max_connections.unwrap_or_else(|| {
            moat_serve::nofile::default_max_connections(moat_serve::nofile::soft())
        });
        let connections = Connections::new(moat_serve::Settings {
            max_connections,
            log: Box::new(|line| eprintln!("moat-k8s: {line}")),
            on_calm: settings
                .give_back
                .map(|f| Box::new(move || ask_to_give_back(f)) as Box<dyn Fn() + Send + Sync>),
        });
        // A TLS server cannot answer a client it has no room for with HTTP: it closes.
        let mut listener = Acceptor::new(listener, connections, Vec::new());
        tokio::pin!(shutdown);
        loop {
            let (tcp, conn) = tokio::select! {
                accepted = listener.accept() => accepted,
                () = &mut shutdown => break,
            };
            // Admission requests are small and latency-bound.
            let _ = tcp.set_nodelay(true);
            let conn = Arc::new(conn);
            let acceptor = acceptor.clone();
            let (builder, http1, http2) = (builder.clone(), http1.clone(), http2.clone());
            let watcher = graceful.watcher();
            let stopping = stopping.clone();
            let rules = Arc::clone(&rules);
            tokio::spawn(async move {
                // Idle until its first request: an unfinished handshake is shed first.
                let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp));
                let tls = tokio::select! {
                    r = handshake => match r {
                        Ok(Ok(tls)) => tls,
                        // A failed or slow handshake concerns that client only.
                        _ => return,
                    },
                    () = conn.shed() => return,
                };
                let requests = Arc::clone(&conn);
                let service = service_fn(move |req| {
                    // Busy from the request's head until its response's last byte.
                    let request = requests.request();
                    let stopping = stopping.clone();
                    let rules = rules.current();
                    async move {
                        let r = handle(req, limit, stopping, &rules).await;
                        Ok::<_, Infallible>(r.map(|body| Tracked::new(body, request)))
                    }
                });
                let io = TokioIo::new(tls);
                match io.inner().get_ref().1.alpn_protocol() {
                    Some(b"http/1.1") => {
                        let served = watcher.watch(http1.serve_connection(io, service));
                        drive(served, &conn).await;
                    }
                    Some(b"h2") => {
                        let served = watcher.watch(http2.serve_connection(io, service));
                        drive(served, &conn).await;
                    }
                    _ => {
                        let served =
                            watcher.watch(builder.serve_connection(io, service).into_owned());
                        drive(served, &conn).await;
                    }
                }
            });
        }
        drop(listener);
        let mut draining = tokio::spawn(graceful.shutdown());
        if tokio::time::timeout(settings.shutdown_grace, &mut draining)
            .await
            .is_err()
        {
            eprintln!(
                "moat-k8s: requests still in flight after {:?}: answering them 503 and closing",
                settings.shutdown_grace
            );
            let _ = stop_tx.send(true);
            let _ = tokio::time::timeout(CUT_FLUSH, draining).await;
        }
        reloader.abort();
    }
}

/// Serves a connection until it ends, or drops it when it is shed (idle, under pressure).
async fn drive<E>(served: impl Future<Output = Result<(), E>>, conn: &moat_serve::Conn) {
    tokio::select! {
        _ = served => {}
        () = conn.shed() => {}
    }
}

async fn reload_loop(cert: Arc<ReloadingCert>, rules: Arc<crate::floors::Live>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match cert.reload_if_changed() {
            Ok(true) => eprintln!("moat-k8s: loaded the renewed certificate"),
            Ok(false) => {}
            Err(e) => eprintln!("moat-k8s: certificate files changed but do not load, keeping the previous one: {e}"),
        }
        match rules.reload_if_changed() {
            Ok(true) => eprintln!(
                "moat-k8s: loaded the changed floors from {}",
                rules.file().map(|f| f.display().to_string()).unwrap_or_default()
            ),
            Ok(false) => {}
            Err(e) => eprintln!("moat-k8s: the floors file changed but does not load, keeping the floors in force: {e}"),
        }
    }
}

/// Completes on SIGTERM (what the kubelet sends) or SIGINT.
pub fn termination() -> Result<impl Future<Output = ()>, ServerError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(ServerError::Signal)?;
    let mut int = signal(SignalKind::interrupt()).map_err(ServerError::Signal)?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}
