//! The webhook's HTTPS server: `/mutate`, `/mutate/namespace` and `/healthz`.
//!
//! The handlers only read the body and wrap [`admission::review`], which decides. Limits
//! keep one client from holding the server: request bodies are capped (413 beyond), a
//! body must arrive within [`BODY_TIMEOUT`] (408), request headers within
//! [`HEADER_TIMEOUT`], a TLS handshake within [`HANDSHAKE_TIMEOUT`]. On SIGTERM the server
//! stops accepting, lets requests in flight finish for a grace period, and exits.

use crate::admission::{self, Decision};
use crate::opt_in::Scope;
use crate::tls::{self, ReloadingCert, TlsError};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
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
pub async fn handle(req: Request<Incoming>, max_body_bytes: usize) -> Response<Full<Bytes>> {
    let (allow, scope) = match req.uri().path() {
        "/mutate" => ("POST", Some(Scope::Pod)),
        "/mutate/namespace" => ("POST", Some(Scope::Namespace)),
        "/healthz" => ("GET,HEAD", None),
        _ => return respond(StatusCode::NOT_FOUND, None, Bytes::new()),
    };
    match (scope, req.method()) {
        (Some(scope), &Method::POST) => mutate(scope, max_body_bytes, req.into_body()).await,
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

async fn mutate(scope: Scope, limit: usize, body: Incoming) -> Response<Full<Bytes>> {
    let collected = tokio::time::timeout(BODY_TIMEOUT, Limited::new(body, limit).collect()).await;
    let bytes = match collected {
        Err(_) => {
            return plain(
                StatusCode::REQUEST_TIMEOUT,
                "request body not received in time",
            )
        }
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            return plain(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("request body over {limit} bytes"),
            )
        }
        Ok(Err(e)) => {
            return plain(
                StatusCode::BAD_REQUEST,
                &format!("cannot read the body: {e}"),
            )
        }
        Ok(Ok(c)) => c.to_bytes(),
    };
    match admission::review(&bytes, scope) {
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
        let reloader = tokio::spawn(reload_loop(cert, settings.reload_every));
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
        let service =
            service_fn(move |req| async move { Ok::<_, Infallible>(handle(req, limit).await) });
        let graceful = GracefulShutdown::new();
        tokio::pin!(shutdown);
        loop {
            let (tcp, _peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of descriptors, typically: wait instead of spinning.
                        eprintln!("moat-k8s: accept: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            // Admission requests are small and latency-bound.
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let (builder, http1, http2) = (builder.clone(), http1.clone(), http2.clone());
            let watcher = graceful.watcher();
            tokio::spawn(async move {
                let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
                {
                    Ok(Ok(tls)) => tls,
                    // A failed or slow handshake concerns that client only.
                    _ => return,
                };
                match tls.get_ref().1.alpn_protocol() {
                    Some(b"http/1.1") => {
                        let conn = http1.serve_connection(TokioIo::new(tls), service);
                        let _ = watcher.watch(conn).await;
                    }
                    Some(b"h2") => {
                        let conn = http2.serve_connection(TokioIo::new(tls), service);
                        let _ = watcher.watch(conn).await;
                    }
                    _ => {
                        let conn = builder
                            .serve_connection(TokioIo::new(tls), service)
                            .into_owned();
                        let _ = watcher.watch(conn).await;
                    }
                }
            });
        }
        drop(listener);
        if tokio::time::timeout(settings.shutdown_grace, graceful.shutdown())
            .await
            .is_err()
        {
            eprintln!(
                "moat-k8s: connections still open after {:?}; closing them",
                settings.shutdown_grace
            );
        }
        reloader.abort();
    }
}

async fn reload_loop(cert: Arc<ReloadingCert>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match cert.reload_if_changed() {
            Ok(true) => eprintln!("moat-k8s: loaded the renewed certificate"),
            Ok(false) => {}
            Err(e) => eprintln!("moat-k8s: certificate files changed but do not load, keeping the previous one: {e}"),
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
