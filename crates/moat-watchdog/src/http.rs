//! The HTTP side: the function server (`/_/health` and everything else) and the metrics
//! server, with the classic watchdog's status codes, and limits that keep one client from
//! holding the watchdog.
//!
//! The handlers only gather the request's parts, call the pure rules of
//! [`crate::contract`] and [`crate::call::Runner::run`], and map the outcome to a response:
//!
//! | outcome | status | body |
//! |---|---|---|
//! | exit 0 | 200, `X-Duration-Seconds` | the output |
//! | exit N | 500 | `exit status N` and the output |
//! | output past `response_buffer_bytes` | 200, chunked | streamed; cut off if the call then fails |
//! | a per-call limit reached | 500, `X-Moat-Limit` | which limit, then the exit status and output |
//! | `exec_timeout` | 408 | `Killed process.` |
//! | over `max_inflight` | 429 | `Concurrent request limit exceeded. ...` |
//! | other method | 405, `Allow` | |
//! | body over `max_request_bytes` | 413 | why |
//! | body not in within `read_timeout` | 408 | why |
//! | malformed body or path | 400 | why |
//! | sandbox not applicable | 500 | why |
//! | `write_timeout` | connection closed | |
//! | shutdown grace period over | 503 | why |
//!
//! Requests are limited in time: their headers must arrive within `read_timeout` (also the
//! idle limit of a kept-alive connection), their body within `read_timeout` of the headers,
//! and a response the client does not read within `write_timeout` closes the connection.

use crate::call::{Alive, Chunk, Head, LimitHit, Outcome, Runner};
use crate::config::Config;
use crate::contract::{self, RequestInfo};
use crate::health::Health;
use crate::metrics::{self, Metrics};
use crate::reaper::Reaper;
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{HeaderValue, ALLOW, CONNECTION, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;
use tokio::time::{Instant, Sleep};

/// The response type of every handler.
pub type Resp = Response<Output>;

/// A response body: whole, or a function's output streamed as it comes.
pub enum Output {
    /// All of it (taken when sent).
    Whole(Option<Bytes>),
    /// A streamed output.
    Streamed(Streamed),
}

/// A function's output streamed to the client (see [`crate::call`]).
pub struct Streamed {
    first: Option<Bytes>,
    rest: mpsc::Receiver<Chunk>,
    ended: bool,
    /// Keeps the call alive while the body is being sent: dropped with the body.
    _alive: Alive,
    /// Guards that count the request until its response is sent.
    held: Vec<Box<dyn Send + Sync>>,
}

/// Why a streamed response was cut off.
#[derive(Debug, thiserror::Error)]
#[error("the call failed after its response had started; the response was cut off")]
pub struct StreamCut;

impl Body for Output {
    type Data = Bytes;
    type Error = StreamCut;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, StreamCut>>> {
        match &mut *self {
            Output::Whole(b) => Poll::Ready(
                b.take()
                    .filter(|b| !b.is_empty())
                    .map(|b| Ok(Frame::data(b))),
            ),
            Output::Streamed(s) => {
                if let Some(first) = s.first.take() {
                    return Poll::Ready(Some(Ok(Frame::data(first))));
                }
                if s.ended {
                    return Poll::Ready(None);
                }
                match s.rest.poll_recv(cx) {
                    Poll::Ready(Some(Chunk::Data(b))) => Poll::Ready(Some(Ok(Frame::data(b)))),
                    Poll::Ready(Some(Chunk::End)) => {
                        s.ended = true;
                        Poll::Ready(None)
                    }
                    // Closed without its end: the call failed.
                    Poll::Ready(None) => {
                        s.ended = true;
                        Poll::Ready(Some(Err(StreamCut)))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Output::Whole(b) => b.as_ref().is_none_or(Bytes::is_empty),
            Output::Streamed(s) => s.ended,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Output::Whole(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Output::Streamed(_) => SizeHint::default(),
        }
    }
}

/// Returned by a handler to close the connection without a response (the call passed
/// `write_timeout`, as a client of the classic watchdog sees it).
#[derive(Debug, thiserror::Error)]
#[error("write_timeout passed before the function finished; connection closed without a response")]
pub struct Abandon;

/// Everything the handlers share.
pub struct App {
    /// The configuration.
    pub config: Config,
    /// Runs calls.
    pub runner: Arc<Runner>,
    /// Health state.
    pub health: Health,
    /// Metrics.
    pub metrics: Metrics,
    /// The reaper (for its counters).
    pub reaper: Reaper,
    /// The watchdog's environment, given to every call.
    pub base_env: Vec<(Vec<u8>, Vec<u8>)>,
    /// Calls in progress (for `max_inflight`).
    pub calls: AtomicUsize,
    /// Calls abandoned at `write_timeout`.
    pub abandoned: AtomicU64,
    /// Every open connection, on both ports.
    pub connections: Arc<moat_serve::Connections>,
}

/// Routes a request of the function server.
pub async fn handle(app: Arc<App>, req: Request<Incoming>) -> Result<Resp, Abandon> {
    if req.uri().path() == "/_/health" {
        return Ok(health(&app, req.method()));
    }
    let label = contract::method_label(req.method().as_str());
    let mut tracking = Tracking::enter(Arc::clone(&app), label);
    let result = function(&app, req, tracking.started).await;
    match result {
        Ok(mut resp) => {
            tracking.code = Some(resp.status().as_u16());
            match resp.body_mut() {
                // Counted until the last byte is sent.
                Output::Streamed(s) => s.held.push(Box::new(tracking)),
                Output::Whole(_) => drop(tracking),
            }
            Ok(resp)
        }
        Err(Abandon) => {
            app.abandoned.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("{Abandon}");
            Err(Abandon)
        }
    }
}

/// A function request in flight, from its head until its response is sent (or dropped):
/// observed in the metrics when it ends, with its status code when it got one.
struct Tracking {
    app: Arc<App>,
    label: &'static str,
    started: Instant,
    code: Option<u16>,
}

impl Tracking {
    fn enter(app: Arc<App>, label: &'static str) -> Tracking {
        app.metrics.enter();
        Tracking {
            app,
            label,
            started: Instant::now(),
            code: None,
        }
    }
}

impl Drop for Tracking {
    fn drop(&mut self) {
        self.app.metrics.leave();
        if let Some(code) = self.code {
            self.app
                .metrics
                .observe(code, self.label, self.started.elapsed());
        }
    }
}

fn health(app: &App, method: &Method) -> Resp {
    if method != Method::GET {
        return plain(StatusCode::METHOD_NOT_ALLOWED, Bytes::new());
    }
    if app.health.is_healthy() {
        plain(StatusCode::OK, Bytes::from_static(b"OK"))
    } else {
        plain(StatusCode::SERVICE_UNAVAILABLE, Bytes::new())
    }
}

/// Counts a call against `max_inflight` until dropped (with its response, when streamed).
struct CallSlot(Arc<App>);

impl Drop for CallSlot {
    fn drop(&mut self) {
        self.0.calls.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn function(
    app: &Arc<App>,
    req: Request<Incoming>,
    started: Instant,
) -> Result<Resp, Abandon> {
    let c = &app.config;
    if !contract::method_allowed(req.method().as_str()) {
        let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, Bytes::new());
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static(contract::ALLOW));
        return Ok(r);
    }
    let now = app.calls.fetch_add(1, Ordering::SeqCst) + 1;
    let slot = CallSlot(Arc::clone(app));
    if let Some(max) = c.max_inflight {
        if now > max {
            return Ok(plain(
                StatusCode::TOO_MANY_REQUESTS,
                Bytes::from(format!(
                    "Concurrent request limit exceeded. Max concurrent requests: {max}\n"
                )),
            ));
        }
    }
    let (parts, body) = req.into_parts();
    let path = match contract::decode_path(parts.uri.path()) {
        Ok(p) => p,
        Err(e) => {
            return Ok(closing(plain(
                StatusCode::BAD_REQUEST,
                Bytes::from(format!("{e}\n")),
            )))
        }
    };
    let declared_len = body.size_hint().exact();
    let chunked = parts
        .headers
        .get_all(hyper::header::TRANSFER_ENCODING)
        .iter()
        .any(|v| v.as_bytes().eq_ignore_ascii_case(b"chunked"));
    if let (Some(limit), Some(len)) = (c.max_request_bytes, declared_len) {
        if len > limit {
            return Ok(too_large(limit));
        }
    }
    let body = match read_body(
        body,
        c.max_request_bytes,
        c.read_timeout.map(|t| started + t),
    )
    .await
    {
        Ok(b) => b,
        Err(BodyError::TooLarge) => return Ok(too_large(c.max_request_bytes.unwrap_or(0))),
        Err(BodyError::TimedOut) => {
            return Ok(closing(plain(
                StatusCode::REQUEST_TIMEOUT,
                Bytes::from("the request body did not arrive within read_timeout\n"),
            )))
        }
        Err(BodyError::Malformed(e)) => {
            return Ok(closing(plain(
                StatusCode::BAD_REQUEST,
                Bytes::from(format!("malformed request body: {e}\n")),
            )))
        }
    };

    let headers: Vec<(&str, &[u8])> = parts
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_bytes()))
        .collect();
    if c.debug_headers {
        for (k, v) in &headers {
            tracing::info!(
                "[in] {}={}",
                contract::canonical_header_name(k),
                String::from_utf8_lossy(v)
            );
        }
    }
    let host: &[u8] = match parts.uri.authority() {
        Some(a) => a.as_str().as_bytes(),
        None => parts
            .headers
            .get(hyper::header::HOST)
            .map_or(&[], |h| h.as_bytes()),
    };
    let query = parts.uri.query().unwrap_or("");
    if c.write_debug {
        tracing::info!(
            "Forking fprocess. Path {} Query {query}",
            String::from_utf8_lossy(&path)
        );
    }
    let mut env = app.base_env.clone();
    if c.cgi_headers {
        env.extend(
            contract::cgi_env(&RequestInfo {
                method: parts.method.as_str(),
                path: &path,
                query,
                host,
                content_length: if chunked {
                    None
                } else {
                    Some(declared_len.unwrap_or(body.len() as u64))
                },
                chunked,
                headers: &headers,
            })
            .into_iter()
            .map(|(k, v)| (k.into_bytes(), v)),
        );
    }
    let input = if c.marshal_request {
        Bytes::from(contract::marshal_request(&headers, &body))
    } else {
        body
    };

    let write_deadline = c.write_timeout.map(|t| started + t);
    let call = app.runner.start(env, input, write_deadline);
    let (head, notes) = match call.head.await {
        Ok(h) => h,
        Err(_) => (
            Head::Done(Outcome::Failed(
                "the call ended without an answer".to_string(),
            )),
            Default::default(),
        ),
    };
    if !notes.not_enforced.is_empty() {
        app.metrics.sandbox_degraded.fetch_add(1, Ordering::Relaxed);
        for n in &notes.not_enforced {
            tracing::warn!("best-effort: not enforced for this call: {n}");
        }
    }
    let content_type = |output: &[u8]| match (&c.content_type, parts.headers.get(CONTENT_TYPE)) {
        (Some(forced), _) => HeaderValue::from_str(forced).ok(),
        (None, Some(requested)) => Some(requested.clone()),
        (None, None) => Some(HeaderValue::from_static(contract::sniff_content_type(
            output,
        ))),
    };
    let outcome = match head {
        Head::Done(outcome) => outcome,
        Head::Streaming { first, rest } => {
            tracing::info!(
                "the output passed response_buffer_bytes ({} bytes): streaming it",
                c.response_buffer_bytes
            );
            let ct = content_type(&first);
            let mut r = Response::new(Output::Streamed(Streamed {
                first: Some(first),
                rest,
                ended: false,
                _alive: call.alive,
                held: vec![Box::new(slot)],
            }));
            if let Some(ct) = ct {
                r.headers_mut().insert(CONTENT_TYPE, ct);
            }
            return Ok(r);
        }
    };
    drop(call.alive);
    let resp = match outcome {
        Outcome::Exited { status, output } => {
            if c.write_debug {
                tracing::info!("{}", String::from_utf8_lossy(&output));
            }
            if status == 0 {
                let took = started.elapsed();
                tracing::info!(
                    "Wrote {} Bytes - Duration: {:.6}s",
                    output.len(),
                    took.as_secs_f64()
                );
                let ct = content_type(&output);
                let mut r = Response::new(Output::Whole(Some(output)));
                if let Some(ct) = ct {
                    r.headers_mut().insert(CONTENT_TYPE, ct);
                }
                if let Ok(v) = HeaderValue::from_str(&contract::duration_header(took)) {
                    r.headers_mut().insert("X-Duration-Seconds", v);
                }
                r
            } else {
                let text = contract::exit_text(status);
                tracing::info!("function failed: {text}");
                let mut body = BytesMut::with_capacity(text.len() + 1 + output.len());
                body.extend_from_slice(text.as_bytes());
                body.extend_from_slice(b"\n");
                body.extend_from_slice(&output);
                plain(StatusCode::INTERNAL_SERVER_ERROR, body.freeze())
            }
        }
        Outcome::TimedOut => {
            tracing::info!("Killed process: exec_timeout passed");
            plain(
                StatusCode::REQUEST_TIMEOUT,
                Bytes::from_static(b"Killed process.\n"),
            )
        }
        // Shutting down, a client gets a status rather than an empty reply: the watchdog
        // is going away, not the client's request failing on its own.
        Outcome::Abandoned if app.health.stopping() => {
            app.abandoned.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("write_timeout passed during the shutdown: the call was stopped (504)");
            closing(plain(
                StatusCode::GATEWAY_TIMEOUT,
                Bytes::from(format!(
                    "the watchdog is shutting down and the call did not finish within write_timeout ({}); it was stopped\n",
                    crate::show(c.write_timeout)
                )),
            ))
        }
        Outcome::Abandoned => return Err(Abandon),
        Outcome::Limit {
            hit,
            status,
            output,
        } => {
            tracing::warn!("{hit}");
            limit_response(hit, status, &output)
        }
        Outcome::ShutDown => {
            tracing::warn!("the call was stopped: the watchdog is shutting down");
            closing(plain(
                StatusCode::SERVICE_UNAVAILABLE,
                Bytes::from(format!(
                    "the watchdog is shutting down and the call did not finish within the grace period ({}); it was stopped\n",
                    crate::show(Some(c.write_timeout.unwrap_or(crate::DEFAULT_GRACE)))
                )),
            ))
        }
        Outcome::BufferFull { limit } => {
            tracing::warn!("function output passed response_buffer_bytes ({limit}) with stream_response=false; killed");
            plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                Bytes::from(format!(
                    "the function's output passed response_buffer_bytes ({limit} bytes) and stream_response is false; the call was killed\n"
                )),
            )
        }
        Outcome::ClientGone => plain(StatusCode::INTERNAL_SERVER_ERROR, Bytes::new()),
        Outcome::OutputTooLarge { limit } => {
            tracing::warn!("function output passed max_response_bytes ({limit}); killed");
            plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                Bytes::from(format!(
                    "the function's output passed max_response_bytes ({limit} bytes); the call was killed\n"
                )),
            )
        }
        Outcome::Refused(why) => {
            app.metrics.sandbox_refusals.fetch_add(1, Ordering::Relaxed);
            tracing::error!("call refused: its sandbox cannot be applied: {why}");
            plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                Bytes::from(format!(
                    "the call's sandbox cannot be applied (sandbox=required): {why}\n"
                )),
            )
        }
        Outcome::Failed(why) => {
            tracing::error!("{why}");
            plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                Bytes::from(format!("{why}\n")),
            )
        }
    };
    if c.debug_headers {
        for (k, v) in resp.headers() {
            tracing::info!(
                "[out] {}={}",
                contract::canonical_header_name(k.as_str()),
                String::from_utf8_lossy(v.as_bytes())
            );
        }
    }
    Ok(resp)
}

/// 500 for a call that reached a limit: which, then the exit status when the function
/// exited by itself, then its output.
fn limit_response(hit: LimitHit, status: Option<i32>, output: &[u8]) -> Resp {
    let mut body = BytesMut::with_capacity(128 + output.len());
    body.extend_from_slice(hit.to_string().as_bytes());
    body.extend_from_slice(b"\n");
    if let Some(status) = status {
        body.extend_from_slice(contract::exit_text(status).as_bytes());
        body.extend_from_slice(b"\n");
    }
    body.extend_from_slice(output);
    let mut r = plain(StatusCode::INTERNAL_SERVER_ERROR, body.freeze());
    r.headers_mut()
        .insert("X-Moat-Limit", HeaderValue::from_static(hit.name()));
    r
}

fn plain(status: StatusCode, body: Bytes) -> Resp {
    let empty = body.is_empty();
    let mut r = Response::new(Output::Whole(Some(body)));
    *r.status_mut() = status;
    if !empty {
        r.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
    }
    r
}

/// Marks a response as the last on its connection (its request body was not read to the
/// end, so the connection cannot carry another request).
fn closing(mut r: Resp) -> Resp {
    r.headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    r
}

fn too_large(limit: u64) -> Resp {
    closing(plain(
        StatusCode::PAYLOAD_TOO_LARGE,
        Bytes::from(format!(
            "the request body is larger than max_request_bytes ({limit} bytes)\n"
        )),
    ))
}

enum BodyError {
    TooLarge,
    TimedOut,
    Malformed(hyper::Error),
}

/// Reads a request body, at most `limit` bytes, by `deadline`.
async fn read_body(
    mut body: Incoming,
    limit: Option<u64>,
    deadline: Option<Instant>,
) -> Result<Bytes, BodyError> {
    let read = async {
        let mut buf = BytesMut::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(BodyError::Malformed)?;
            if let Ok(data) = frame.into_data() {
                if limit.is_some_and(|l| (buf.len() + data.len()) as u64 > l) {
                    return Err(BodyError::TooLarge);
                }
                buf.extend_from_slice(&data);
            }
        }
        Ok(buf.freeze())
    };
    match deadline {
        Some(d) => tokio::time::timeout_at(d, read)
            .await
            .unwrap_or(Err(BodyError::TimedOut)),
        None => read.await,
    }
}

/// Serves `/metrics` on the metrics server.
pub fn metrics(app: &App, req: &Request<Incoming>) -> Resp {
    if req.uri().path() != "/metrics" {
        return plain(
            StatusCode::NOT_FOUND,
            Bytes::from_static(b"404 page not found\n"),
        );
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return plain(StatusCode::METHOD_NOT_ALLOWED, Bytes::new());
    }
    let stats = app.reaper.stats();
    let calls = &app.runner.stats;
    let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let counters = [
        (
            "moat_watchdog_sandbox_refusals_total",
            "calls refused because their sandbox could not be applied",
            load(&app.metrics.sandbox_refusals),
        ),
        (
            "moat_watchdog_sandbox_degraded_total",
            "calls run with part of their sandbox not enforced (sandbox=best_effort)",
            load(&app.metrics.sandbox_degraded),
        ),
        (
            "moat_watchdog_leftovers_killed_total",
            "processes killed because the call that started them was over",
            load(&stats.leftovers_killed),
        ),
        (
            "moat_watchdog_orphans_reaped_total",
            "processes reaped that were not a call's own process",
            load(&stats.orphans_reaped),
        ),
        (
            "moat_watchdog_calls_abandoned_total",
            "calls killed at write_timeout, their connection closed without a response",
            load(&app.abandoned),
        ),
        (
            "moat_watchdog_streams_cut_total",
            "streamed responses cut off before their end because the call failed after they started",
            load(&calls.streams_cut),
        ),
        (
            "moat_watchdog_limit_processes_total",
            "calls that reached max_call_processes",
            load(&calls.limit_processes),
        ),
        (
            "moat_watchdog_limit_tmp_total",
            "calls that filled their private temporary directory (max_call_tmp_bytes)",
            load(&calls.limit_tmp),
        ),
        (
            "moat_watchdog_limit_cpu_total",
            "calls killed for max_call_cpu",
            load(&calls.limit_cpu),
        ),
        (
            "moat_watchdog_calls_stopped_at_shutdown_total",
            "calls stopped because the shutdown grace period was over (answered 503)",
            load(&calls.shut_down),
        ),
        (
            "moat_watchdog_connections_shed_total",
            "idle connections closed to make room (connection cap or descriptors exhausted)",
            app.connections.shed_total(),
        ),
        (
            "moat_watchdog_connections_refused_total",
            "clients refused with 503 for want of room, no idle connection to shed",
            app.connections.refused_total(),
        ),
    ];
    let text = app
        .metrics
        .render(&counters, (load(&stats.spawns), load(&stats.spawn_nanos)));
    let mut r = Response::new(Output::Whole(Some(Bytes::from(text))));
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static(metrics::CONTENT_TYPE),
    );
    r
}

/// A connection whose writes fail once they have been stuck for `limit`: a client that does
/// not read its response cannot hold the connection (and its buffered response) forever.
pub struct WriteStall<S> {
    inner: S,
    limit: Option<Duration>,
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<S> WriteStall<S> {
    /// Wraps `inner`; `None` never times out.
    pub fn new(inner: S, limit: Option<Duration>) -> Self {
        WriteStall {
            inner,
            limit,
            stalled: None,
        }
    }

    /// Called when the inner write is pending: starts the stall timer, or fails once it
    /// has run out.
    fn stalled(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let Some(limit) = self.limit else {
            return Poll::Pending;
        };
        let sleep = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client did not read its response within write_timeout",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteStall<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteStall<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, buf) {
            Poll::Ready(r) => {
                self.stalled = None;
                Poll::Ready(r)
            }
            Poll::Pending => match self.stalled(cx) {
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                _ => Poll::Pending,
            },
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match Pin::new(&mut self.inner).poll_flush(cx) {
            Poll::Ready(r) => {
                self.stalled = None;
                Poll::Ready(r)
            }
            Poll::Pending => self.stalled(cx),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
