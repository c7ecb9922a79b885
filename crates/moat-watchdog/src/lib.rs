//! moat watchdog: a drop-in replacement for the OpenFaaS classic watchdog that runs every
//! function call in its own Landlock sandbox.
//!
//! The classic contract (environment variables, HTTP status codes, `Http_*` variables, the
//! lock file, metrics) is kept; what changes is what one call can see of another. Each call
//! gets a private temporary directory, a fresh Landlock domain (the function's code and
//! runtime read-only, its private directory read-write, nothing of other calls, signal and
//! abstract-socket scopes on, the network as configured) and the seccomp socket filter of
//! `moat run`; its whole process tree is killed when it ends.
//!
//! Modules, in the order a call meets them: [`config`] (environment variables, with
//! [`duration`]), `http` (the servers, with the pure rules of [`contract`]; connections
//! are accepted and shed by `moat_serve`), `call` (one call's life, using moat-sandbox's
//! `tmpdir`, `cgroup`, `sandbox` and `reaper`), `health` and `metrics`. `guardian` kills
//! what calls left if the watchdog dies. `ballast` is a benchmark aid.
//!
//! The public surface: the pure layers ([`config`], [`duration`], [`contract`], which the
//! fuzz targets drive), [`prepare`] and [`Prepared::serve`], and the few pieces the
//! `moat-watchdog` binary, its tests and its load example need. Everything else is private.

#![deny(missing_docs)]

mod ballast;
mod call;
mod cgroup;
pub mod config;
pub mod contract;
pub mod duration;
mod guardian;
mod health;
mod http;
mod metrics;
mod reaper;
mod sandbox;
use moat_sandbox::tmpdir;

pub use ballast::allocate as allocate_ballast;
pub use call::SPARE_SLOTS;
pub use health::lock_path;
pub use reaper::block_sigchld;
pub use sandbox::{Sandbox, SandboxError};

use crate::call::{CallStats, OutputRules, Runner};
use crate::cgroup::{Cgroups, Wanted};
use crate::config::{CallLimits, Config, ConfigError, SandboxMode};
use crate::guardian::Guardian;
use crate::health::Health;
use crate::http::{App, WriteStall};
use crate::metrics::Metrics;
use crate::reaper::{Reaper, ReaperError};
use crate::tmpdir::{CallFs, TmpError, TmpRoot};
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use moat_sandbox::exec::{ExecError, Target};
use moat_sandbox::spawn::{Command, SpawnError};
use moat_serve::{Acceptor, Connections, Tracked};
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// How long calls in progress get to finish after the listener closes, when there is no
/// `write_timeout`.
pub(crate) const DEFAULT_GRACE: Duration = Duration::from_secs(30);

/// After the grace period, how long calls that were stopped get to be answered (503).
const CUT_FLUSH: Duration = Duration::from_secs(10);

/// Why the watchdog could not start (exit status 125).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A configuration variable is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The function's program cannot be found.
    #[error("fprocess: {}", moat_sandbox::remedy::Advised::advise(.0, &sandbox::remedy_words))]
    Program(#[from] ExecError),
    /// `MOAT_MAX_ABI` is malformed.
    #[error(transparent)]
    Abi(#[from] moat_sandbox::abi::AbiCapError),
    /// The sandbox cannot be prepared, or strict mode refuses this kernel.
    #[error("sandbox={mode}: {source}")]
    Sandbox {
        /// The mode.
        mode: &'static str,
        /// Why.
        source: SandboxError,
    },
    /// The seccomp filter cannot be installed.
    #[error("sandbox=required: {0}")]
    Filter(moat_sandbox::seccomp::SeccompError),
    /// The function's command cannot be prepared.
    #[error("fprocess: {0}")]
    Command(#[from] SpawnError),
    /// The directory of private temporary directories.
    #[error("{0} (set sandbox_tmp to a writable directory)")]
    Tmp(#[from] TmpError),
    /// The reaper.
    #[error(transparent)]
    Reaper(#[from] ReaperError),
    /// The working directory cannot be read.
    #[error("cannot read the working directory: {0}")]
    Cwd(std::io::Error),
    /// A port cannot be listened on.
    #[error("{var}: cannot listen on port {port}: {source}")]
    Listen {
        /// `port` or `metrics_port`.
        var: &'static str,
        /// The port.
        port: u16,
        /// The error.
        source: std::io::Error,
    },
    /// The lock file cannot be written.
    #[error("cannot write the lock file {}: {source} (set suppress_lock=true to run without it)", path.display())]
    Lock {
        /// Its path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The async runtime cannot start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    /// A per-call limit asked for cannot be enforced on this node.
    #[error("{var} cannot be enforced here: {why} (unset it, set it to 0, or use sandbox=best_effort to run without it)")]
    Limit {
        /// The variable.
        var: &'static str,
        /// Why.
        why: String,
    },
    /// The guardian process cannot be started.
    #[error("cannot start the guardian process: {0}")]
    Guardian(std::io::Error),
}

/// Everything prepared before serving: checked configuration, resolved program, planned
/// sandbox.
pub struct Prepared {
    app: Arc<App>,
    tmp: Option<Arc<TmpRoot>>,
    listener: std::net::TcpListener,
    metrics_listener: std::net::TcpListener,
    cgroups: Option<Arc<Cgroups>>,
    guardian: Option<Guardian>,
}

/// Checks and prepares everything that can fail before the first request: the program is
/// resolved on PATH, the sandbox is planned (and strict mode refuses a kernel that cannot
/// enforce it), the private directories' parent is made, the reaper starts. Must run in
/// the main thread before any other thread exists (see [`block_sigchld`]).
pub fn prepare(config: Config) -> Result<Prepared, StartError> {
    let (cmd, args) = match config.fprocess.split_first() {
        Some((c, a)) => (OsString::from(c), a.iter().map(OsString::from).collect()),
        None => {
            return Err(ConfigError::Missing {
                var: "fprocess",
                why: "set it to the function's command",
            }
            .into())
        }
    };
    let mut target = Target::resolve(&cmd, args, std::env::var_os("PATH").as_deref())?;
    let function_dir = std::env::current_dir().map_err(StartError::Cwd)?;
    // A relative fprocess (`./handler`) is relative to the function's directory, which is
    // also every call's working directory; the sandbox names paths absolutely.
    if target.program.is_relative() {
        let relative: PathBuf = target
            .program
            .components()
            .filter(|c| *c != std::path::Component::CurDir)
            .collect();
        target.program = function_dir.join(relative);
    }
    target.check_exists()?;
    let abi = moat_sandbox::abi::detect()?;
    let mut sandbox =
        Sandbox::prepare(&config, &target.program, &function_dir, abi).map_err(|source| {
            StartError::Sandbox {
                mode: config.sandbox.mode.name(),
                source,
            }
        })?;
    log_sandbox(&sandbox, &config);
    // The listening sockets come before the filter, which refuses listen() to the calls
    // (and so to the watchdog once it is installed on it).
    let listener = bind("port", config.port)?;
    let metrics_listener = bind("metrics_port", config.metrics_port)?;
    // Before any thread exists (the reaper's below, the runtime's later).
    let ipc = config.sandbox.mode != SandboxMode::Off && !config.sandbox.allow_ipc;
    match sandbox.install_inherited_filter(ipc) {
        Ok(Some(seal)) => {
            tracing::info!(
                "  seccomp, installed on the watchdog itself and inherited by every call:"
            );
            for line in seal.describe() {
                tracing::info!("    {line}");
            }
        }
        Ok(None) => {}
        Err(e) if config.sandbox.mode == SandboxMode::Required => {
            return Err(StartError::Filter(e))
        }
        Err(e) => tracing::warn!("best-effort: not enforced: the seccomp filter: {e}"),
    }
    if config.sandbox.mode != SandboxMode::Off && config.sandbox.allow_ipc {
        tracing::warn!(
            "sandbox_allow_ipc=true: calls can leave SysV IPC objects, message queues and keys for later calls"
        );
    }

    let mut command = Command::new(&target.program, &target.argv0)?;
    for a in &target.args {
        command.arg(a)?;
    }
    command.new_session(true).child_subreaper(true);

    match moat_serve::nofile::raise() {
        Ok((soft, _)) => tracing::info!("file descriptors: {soft}"),
        Err(e) => tracing::warn!("cannot read the descriptor limit: {e}"),
    }
    let mut missing: Vec<(&'static str, String)> = Vec::new();
    let tmp = match config.sandbox.mode {
        SandboxMode::Off => None,
        _ => {
            let base = tmpdir::choose_root(config.sandbox.tmp_root.as_deref());
            // A tmpfs per call needs a mount namespace of the watchdog's own, made before
            // any thread exists; only where the private directories are in memory anyway.
            let call_fs = match config.limits.tmp_bytes {
                Some(bytes) if tmpdir::is_tmpfs(&base) => match tmpdir::private_mounts() {
                    Ok(()) => Some(CallFs::of(bytes)),
                    Err(e) => {
                        missing.push((
                            "max_call_tmp_bytes",
                            format!("a tmpfs per call needs a mount namespace of the watchdog's own (CAP_SYS_ADMIN): {e}"),
                        ));
                        None
                    }
                },
                Some(_) => {
                    missing.push((
                        "max_call_tmp_bytes",
                        format!("the private directories are not on a tmpfs ({}), and a tmpfs per call would move them into memory", base.display()),
                    ));
                    None
                }
                None => None,
            };
            let mut root = TmpRoot::create(&base, "moat-watchdog")?;
            if let Some(fs) = call_fs {
                if let Err(e) = root.use_call_tmpfs(fs) {
                    missing.push(("max_call_tmp_bytes", e.to_string()));
                }
            }
            tracing::info!("private temporary directories in {}", root.path().display());
            for stale in &root.stale_removed {
                tracing::info!(
                    "removed {stale} in {}, left by a watchdog that is gone",
                    base.display()
                );
            }
            if !root.is_tmpfs() {
                tracing::warn!(
                    "private temporary directories are in {}, which is not a tmpfs: \
                     creating and removing them is slower and their files may reach a disk",
                    root.path().display()
                );
            }
            Some(Arc::new(root))
        }
    };
    if config.sandbox.mode == SandboxMode::Off && config.limits.tmp_bytes.is_some() {
        missing.push((
            "max_call_tmp_bytes",
            "sandbox=off: calls have no private directory".to_string(),
        ));
    }
    let stem = tmp
        .as_ref()
        .and_then(|t| {
            t.path()
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| {
            format!(
                "moat-watchdog.{}.{:08x}",
                std::process::id(),
                tmpdir::random_u32()
            )
        });
    let (cgroups, report) = Cgroups::setup(
        Wanted {
            max_processes: config.limits.processes,
            cpu: config.limits.cpu.is_some(),
        },
        &stem,
    );
    for line in &report.stale_removed {
        tracing::info!("removed the control groups {line}, left by a watchdog that is gone");
    }
    for line in &report.enforced {
        tracing::info!("per-call control groups in {line}");
    }
    let cgroups = cgroups.map(Arc::new);
    let can = |f: fn(&Cgroups) -> bool| cgroups.as_deref().is_some_and(f);
    if config.limits.processes.is_some() && !can(Cgroups::limits_processes) {
        missing.push(("max_call_processes", report.missing.join("; ")));
    }
    if config.limits.cpu.is_some() && !can(Cgroups::counts_cpu) {
        missing.push(("max_call_cpu", report.missing.join("; ")));
    }
    if cgroups.is_none() {
        tracing::warn!(
            "no per-call control group ({}): if the watchdog is killed (SIGKILL), the processes of the calls running then are not",
            report.missing.join("; ")
        );
    }
    // Until the guardian runs, a refusal removes what was made.
    let undo = || {
        if let Some(cg) = &cgroups {
            cg.kill_and_remove_all(Duration::ZERO);
        }
        if let Some(t) = &tmp {
            let _ = t.remove_all();
        }
    };
    for (var, why) in &missing {
        if config.sandbox.mode == SandboxMode::Required && config.limits.explicit.contains(var) {
            undo();
            return Err(StartError::Limit {
                var,
                why: why.clone(),
            });
        }
        tracing::warn!("not enforced: {var}: {why}");
    }
    let limits = CallLimits {
        processes: config
            .limits
            .processes
            .filter(|_| can(Cgroups::limits_processes)),
        tmp_bytes: tmp.as_ref().and_then(|t| t.call_fs()).map(|fs| fs.bytes),
        cpu: config.limits.cpu.filter(|_| can(Cgroups::counts_cpu)),
        explicit: config.limits.explicit.clone(),
    };
    if let Some(n) = limits.processes {
        tracing::info!("  each call: at most {n} processes and threads (max_call_processes)");
    }
    if let Some(b) = limits.tmp_bytes {
        tracing::info!(
            "  each call: a private directory of its own tmpfs, {b} bytes (max_call_tmp_bytes)"
        );
    }
    if let Some(d) = limits.cpu {
        tracing::info!("  each call: at most {d:?} of CPU time (max_call_cpu)");
    }
    // Before any thread exists: the guardian is a plain copy of this process.
    let guardian = match &cgroups {
        Some(cg) => {
            let (cg, tmp) = (Arc::clone(cg), tmp.clone());
            let g = Guardian::start(move || {
                cg.kill_and_remove_all(Duration::from_secs(5));
                if let Some(t) = tmp {
                    let _ = t.remove_all();
                }
            })
            .map_err(|e| {
                undo();
                StartError::Guardian(e)
            })?;
            tracing::info!(
                "guardian process {}: kills every process of the calls if the watchdog dies",
                g.pid()
            );
            Some(g)
        }
        None => None,
    };
    let reaper = Reaper::start()?;
    if let Some(g) = &guardian {
        reaper.keep(g.pid());
    }
    let max_connections = config
        .max_connections
        .unwrap_or_else(|| moat_serve::nofile::default_max_connections(moat_serve::nofile::soft()));
    tracing::info!("at most {max_connections} connections at once (max_connections)");
    let connections = Connections::new(moat_serve::Settings {
        max_connections,
        log: Box::new(|line| tracing::warn!("{line}")),
        on_calm: Some(Box::new(give_back_memory)),
    });
    let lock = (!config.suppress_lock).then(health::lock_path);
    let base_env = std::env::vars_os()
        .map(|(k, v)| (k.into_vec(), v.into_vec()))
        .collect();
    let runner = Runner {
        command,
        sandbox,
        tmp: tmp.clone(),
        cgroups: cgroups.clone(),
        limits,
        reaper: reaper.clone(),
        combine_output: config.combine_output,
        exec_timeout: config.exec_timeout,
        output: OutputRules {
            max: config.max_response_bytes,
            buffer: config.response_buffer_bytes,
            stream: config.stream_response,
        },
        connections: Some(Arc::clone(&connections)),
        cut: tokio::sync::watch::channel(false).0,
        stats: CallStats::default(),
        spare: std::sync::Mutex::new(Vec::new()),
    };
    let app = Arc::new(App {
        config,
        runner: Arc::new(runner),
        health: Health::new(lock),
        metrics: Metrics::default(),
        reaper,
        base_env,
        calls: AtomicUsize::new(0),
        abandoned: AtomicU64::new(0),
        connections,
    });
    Ok(Prepared {
        app,
        tmp,
        listener,
        metrics_listener,
        cgroups,
        guardian,
    })
}

/// Gives memory freed by closed connections back to the system: glibc's allocator keeps
/// freed memory in its arenas, and a few thousand idle connections closing at once leave
/// tens of megabytes there (measured in docs/PERFORMANCE.md).
fn give_back_memory() {
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe { libc::malloc_trim(0) };
}

fn log_sandbox(sandbox: &Sandbox, config: &Config) {
    let Some(report) = sandbox.report() else {
        tracing::warn!("sandbox=off: calls run without a sandbox and share /tmp");
        return;
    };
    tracing::info!(
        "sandbox={}: each call in its own sandbox ({})",
        config.sandbox.mode.name(),
        report.abi.describe()
    );
    for line in &report.enforced {
        tracing::info!("  {line}");
    }
    for w in report.warnings() {
        tracing::warn!("best-effort: {w}");
    }
    for g in &report.limits {
        tracing::info!("  not restricted by this kernel: {g}");
    }
}

fn bind(var: &'static str, port: u16) -> Result<std::net::TcpListener, StartError> {
    // All interfaces, as the classic watchdog's ":port": IPv6 and IPv4 where the host has
    // IPv6, IPv4 alone otherwise. Non-blocking, for the async runtime that serves it.
    let listener = match std::net::TcpListener::bind(("::", port)) {
        Ok(l) => Ok(l),
        Err(_) => std::net::TcpListener::bind(("0.0.0.0", port)),
    };
    listener
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|source| StartError::Listen { var, port, source })
}

/// A listener bound in [`prepare`], handed to the async runtime.
fn into_async(var: &'static str, l: std::net::TcpListener) -> Result<TcpListener, StartError> {
    let port = l.local_addr().map(|a| a.port()).unwrap_or(0);
    TcpListener::from_std(l).map_err(|source| StartError::Listen { var, port, source })
}

impl Prepared {
    /// Serves until SIGTERM or SIGINT, then shuts down gracefully: `/_/health` answers 503
    /// and the lock file goes, calls are still accepted for `healthcheck_interval`, then
    /// the listener closes and calls in progress get `write_timeout` (30 s if none) to
    /// finish; what is left is killed, and the private directories are removed.
    pub async fn serve(self) -> Result<(), StartError> {
        let app = self.app;
        let c = &app.config;
        let listener = Acceptor::new(
            into_async("port", self.listener)?,
            Arc::clone(&app.connections),
            refusal(),
        );
        let metrics_listener = Acceptor::new(
            into_async("metrics_port", self.metrics_listener)?,
            Arc::clone(&app.connections),
            refusal(),
        );
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(c.port);
        let mport = metrics_listener
            .local_addr()
            .map(|a| a.port())
            .unwrap_or(c.metrics_port);
        tracing::info!(
            "Timeouts: read: {} write: {} hard: {} health: {}.",
            show(c.read_timeout),
            show(c.write_timeout),
            show(c.exec_timeout),
            show(Some(c.healthcheck_interval))
        );
        tracing::info!("Listening on port: {port}");
        tracing::info!("Metrics listening on port: {mport}");
        if let Err(source) = app.health.mark_healthy() {
            return Err(StartError::Lock {
                path: app.health.lock().map(PathBuf::from).unwrap_or_default(),
                source,
            });
        }
        if let Some(lock) = app.health.lock() {
            tracing::info!("Writing lock-file to: {}", lock.display());
        } else {
            tracing::warn!(
                "suppress_lock is enabled: no lock file for exec health checks (/_/health still answers)"
            );
        }

        let graceful = Arc::new(hyper_util::server::graceful::GracefulShutdown::new());
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let functions = tokio::spawn(accept_loop(
            listener,
            Arc::clone(&app),
            stop_rx.clone(),
            Some(Arc::clone(&graceful)),
            false,
        ));
        let metrics = tokio::spawn(accept_loop(
            metrics_listener,
            Arc::clone(&app),
            stop_rx,
            None,
            true,
        ));

        let which = wait_for_signal().await;
        tracing::info!(
            "{which}: no new connections in {}",
            show(Some(c.healthcheck_interval))
        );
        if let Err(e) = app.health.mark_unhealthy() {
            tracing::warn!("cannot remove the lock file: {e}");
        }
        tokio::time::sleep(c.healthcheck_interval).await;
        let _ = stop_tx.send(true);
        let _ = functions.await;
        let in_flight = app.calls.load(std::sync::atomic::Ordering::SeqCst);
        tracing::info!("No new connections allowed, draining: {in_flight} requests");
        let grace = c.write_timeout.unwrap_or(DEFAULT_GRACE);
        // The accept loop has ended and dropped its reference.
        if let Ok(graceful) = Arc::try_unwrap(graceful) {
            let mut draining = tokio::spawn(graceful.shutdown());
            if tokio::time::timeout(grace, &mut draining).await.is_err() {
                tracing::warn!(
                    "calls still running after {grace:?}: stopping them; their clients get 503"
                );
                app.runner.cut_off();
                if tokio::time::timeout(CUT_FLUSH, draining).await.is_err() {
                    tracing::warn!("connections still open after {CUT_FLUSH:?}: closing them");
                }
            }
        }
        let _ = metrics.await;
        app.runner.reaper.kill_all().await;
        app.runner.drain_spare();
        if let Some(cg) = &self.cgroups {
            cg.kill_and_remove_all(Duration::from_secs(5));
        }
        if let Some(tmp) = &self.tmp {
            if let Err(e) = tmp.remove_all() {
                tracing::warn!("{e}");
            }
        }
        if let Some(g) = &self.guardian {
            g.stop();
        }
        tracing::info!("Exiting.");
        Ok(())
    }
}

/// What a client gets when the watchdog has no room for its connection (out of descriptors,
/// or at `max_connections` with every connection busy).
fn refusal() -> Vec<u8> {
    let body = "the watchdog has no room for another connection now (out of file descriptors, \
                or at max_connections with every connection busy); try again\n";
    format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\nRetry-After: 1\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A duration for logs and messages (`none` for zero or unset).
pub(crate) fn show(d: Option<Duration>) -> String {
    match d {
        Some(d) if !d.is_zero() => format!("{d:?}"),
        _ => "none".to_string(),
    }
}

async fn wait_for_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut term), Ok(mut int)) => tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        },
        _ => {
            tracing::error!("cannot handle SIGTERM; stop the watchdog with SIGKILL");
            std::future::pending().await
        }
    }
}

async fn accept_loop(
    mut listener: Acceptor,
    app: Arc<App>,
    mut stop: tokio::sync::watch::Receiver<bool>,
    graceful: Option<Arc<hyper_util::server::graceful::GracefulShutdown>>,
    metrics: bool,
) {
    loop {
        // Out of descriptors or at the cap, the acceptor sheds idle connections (each
        // connection's task below drops it when told) and answers 503 when none is idle.
        let (stream, conn) = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => return,
        };
        let conn = Arc::new(conn);
        let _ = stream.set_nodelay(true);
        let app = Arc::clone(&app);
        let c = &app.config;
        let (read_timeout, write_timeout) = if metrics {
            // The classic watchdog's metrics server: 500 ms each way.
            (
                Some(Duration::from_millis(500)),
                Some(Duration::from_millis(500)),
            )
        } else {
            (c.read_timeout, c.write_timeout)
        };
        let io = TokioIo::new(WriteStall::new(stream, write_timeout));
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder.timer(TokioTimer::new()).keep_alive(true);
        builder.header_read_timeout(read_timeout);
        let requests = Arc::clone(&conn);
        let service = service_fn(move |req| {
            let app = Arc::clone(&app);
            // Busy from the request's head until its response's last byte.
            let request = requests.request();
            async move {
                let resp = if metrics {
                    Ok(http::metrics(&app, &req))
                } else {
                    http::handle(app, req).await
                };
                resp.map(|r| r.map(|body| Tracked::new(body, request)))
            }
        });
        let served = builder.serve_connection(io, service);
        match &graceful {
            Some(w) => {
                tokio::spawn(drive(w.watch(served), conn));
            }
            None => {
                tokio::spawn(drive(served, conn));
            }
        }
    }
}

/// Serves a connection until it ends, or drops it when it is shed (idle, under pressure).
async fn drive<E: std::fmt::Display>(
    served: impl std::future::Future<Output = Result<(), E>>,
    conn: Arc<moat_serve::Conn>,
) {
    tokio::select! {
        r = served => {
            if let Err(e) = r {
                tracing::debug!("connection: {e}");
            }
        }
        () = conn.shed() => {}
    }
}
