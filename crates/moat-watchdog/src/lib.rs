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
//! [`duration`]), [`http`] (the servers, with the pure rules of [`contract`]), [`call`]
//! (one call's life, using [`tmpdir`], [`sandbox`] and [`reaper`]), [`health`] and
//! [`metrics`]. [`ballast`] is a benchmark aid.

#![deny(missing_docs)]

pub mod ballast;
pub mod call;
pub mod config;
pub mod contract;
pub mod duration;
pub mod health;
pub mod http;
pub mod metrics;
pub mod reaper;
pub mod sandbox;
pub mod tmpdir;

use crate::call::Runner;
use crate::config::{Config, ConfigError, SandboxMode};
use crate::health::Health;
use crate::http::{App, WriteStall};
use crate::metrics::Metrics;
use crate::reaper::{Reaper, ReaperError};
use crate::sandbox::{Sandbox, SandboxError};
use crate::tmpdir::{TmpError, TmpRoot};
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use moat_sandbox::exec::{ExecError, Target};
use moat_sandbox::spawn::{Command, SpawnError};
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Why the watchdog could not start (exit status 125).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A configuration variable is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The function's program cannot be found.
    #[error("fprocess: {0}")]
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
}

/// Everything prepared before serving: checked configuration, resolved program, planned
/// sandbox.
pub struct Prepared {
    app: Arc<App>,
    tmp: Option<Arc<TmpRoot>>,
    listener: std::net::TcpListener,
    metrics_listener: std::net::TcpListener,
}

/// Checks and prepares everything that can fail before the first request: the program is
/// resolved on PATH, the sandbox is planned (and strict mode refuses a kernel that cannot
/// enforce it), the private directories' parent is made, the reaper starts. Must run in
/// the main thread before any other thread exists (see [`reaper::block_sigchld`]).
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

    let tmp = match config.sandbox.mode {
        SandboxMode::Off => None,
        _ => {
            let base = tmpdir::choose_root(config.sandbox.tmp_root.as_deref());
            let root = TmpRoot::create(&base)?;
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
    let reaper = Reaper::start()?;
    let lock = (!config.suppress_lock).then(health::lock_path);
    let base_env = std::env::vars_os()
        .map(|(k, v)| (k.into_vec(), v.into_vec()))
        .collect();
    let runner = Runner {
        command,
        sandbox,
        tmp: tmp.clone(),
        reaper: reaper.clone(),
        combine_output: config.combine_output,
        exec_timeout: config.exec_timeout,
        max_output: config.max_response_bytes,
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
    });
    Ok(Prepared {
        app,
        tmp,
        listener,
        metrics_listener,
    })
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
        let listener = into_async("port", self.listener)?;
        let metrics_listener = into_async("metrics_port", self.metrics_listener)?;
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
        let grace = c.write_timeout.unwrap_or(Duration::from_secs(30));
        // The accept loop has ended and dropped its reference.
        if let Ok(graceful) = Arc::try_unwrap(graceful) {
            if tokio::time::timeout(grace, graceful.shutdown())
                .await
                .is_err()
            {
                tracing::warn!("calls still running after {grace:?}: killing them");
            }
        }
        let _ = metrics.await;
        app.runner.reaper.kill_all().await;
        app.runner.drain_spare();
        if let Some(tmp) = &self.tmp {
            if let Err(e) = tmp.remove_all() {
                tracing::warn!("{e}");
            }
        }
        tracing::info!("Exiting.");
        Ok(())
    }
}

fn show(d: Option<Duration>) -> String {
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
    listener: TcpListener,
    app: Arc<App>,
    mut stop: tokio::sync::watch::Receiver<bool>,
    graceful: Option<Arc<hyper_util::server::graceful::GracefulShutdown>>,
    metrics: bool,
) {
    loop {
        let (stream, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    // Out of descriptors, say: wait instead of spinning.
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
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
        let service = service_fn(move |req| {
            let app = Arc::clone(&app);
            async move {
                if metrics {
                    Ok(http::metrics(&app, &req))
                } else {
                    http::handle(app, req).await
                }
            }
        });
        let conn = builder.serve_connection(io, service);
        match &graceful {
            Some(w) => {
                let conn = w.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!("connection: {e}");
                    }
                });
            }
            None => {
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!("connection: {e}");
                    }
                });
            }
        }
    }
}
