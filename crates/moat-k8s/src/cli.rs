//! The `moat-k8s` command line (also reached as `moat webhook ...` and `moat k8s ...`).

use crate::certs::{self, CertRequest};
use crate::opt_in::Scope;
use crate::render;
use crate::server::{self, Bound, Settings, DEFAULT_MAX_BODY_BYTES};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// moat for Kubernetes: the admission webhook that turns what a Pod declares into the
/// Landlock policy moat-runtime enforces on the node, and `render` to see that policy
/// without a cluster. See docs/kubernetes.md.
#[derive(Parser, Debug)]
#[command(name = "moat-k8s", version)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve the mutating admission webhook over HTTPS (`/mutate`, `/mutate/namespace`,
    /// `/healthz`), or make its certificates (`webhook gen-certs`).
    Webhook(Box<WebhookArgs>),
    /// Print, container by container, the policy the cluster would enforce for the pods of
    /// a manifest (Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob).
    Render(RenderArgs),
}

/// `webhook`.
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct WebhookArgs {
    /// Make a certificate instead of serving.
    #[command(subcommand)]
    pub command: Option<WebhookCommand>,
    /// Address to listen on (`[::]:8443` for IPv6).
    #[arg(long, value_name = "HOST:PORT", default_value = "0.0.0.0:8443")]
    pub addr: SocketAddr,
    /// PEM certificate chain; reloaded when the file changes.
    #[arg(long, value_name = "FILE", required = true)]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of the certificate; reloaded when the file changes.
    #[arg(long, value_name = "FILE", required = true)]
    pub tls_key: Option<PathBuf>,
    /// Let confined pods of this namespace run privileged containers, add dangerous
    /// capabilities (SYS_ADMIN, SYS_MODULE, SYS_PTRACE, BPF, ...) or use hostPID, which
    /// Landlock cannot hold; refused everywhere else (repeatable).
    #[arg(long, value_name = "NAMESPACE")]
    pub allow_privileged: Vec<String>,
    /// The namespace floors: what every pod of an enforced namespace gets at least (a TOML
    /// file, typically mounted from a ConfigMap; read again when it changes, checked as
    /// often as the certificate). Without it every enforced namespace binds only declared
    /// ports and refuses best-effort (docs/kubernetes.md).
    #[arg(long, value_name = "FILE")]
    pub floors: Option<PathBuf>,
    /// Largest request body accepted; larger ones get 413.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_BODY_BYTES)]
    pub max_request_bytes: usize,
    /// How often to check the certificate files for changes, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    pub cert_check_interval: u64,
    /// After SIGTERM, how long requests in flight may take to finish, in seconds; those
    /// still waiting for their body then are answered 503.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    pub shutdown_grace: u64,
    /// Connections open at once; beyond, the longest idle one is closed (or the new one, if
    /// none is idle). 0: three quarters of the descriptor limit (raised to its hard limit at
    /// start) less 64.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub max_connections: usize,
}

/// `webhook gen-certs`.
#[derive(Subcommand, Debug)]
pub enum WebhookCommand {
    /// Make a self-signed CA and a serving certificate for the webhook Service, write
    /// `ca.crt`, `tls.crt` and `tls.key`, and print the `caBundle` (base64 of `ca.crt`).
    GenCerts(GenCertsArgs),
}

/// `webhook gen-certs`.
#[derive(Args, Debug)]
pub struct GenCertsArgs {
    /// The webhook Service's name.
    #[arg(long, default_value = "moat-webhook")]
    pub service: String,
    /// The webhook's namespace.
    #[arg(long, default_value = "moat-system")]
    pub namespace: String,
    /// Validity of both certificates, in days.
    #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..=36500))]
    pub days: u32,
    /// Where to write the files.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub out_dir: PathBuf,
    /// Another DNS name or IP address for the serving certificate (repeatable).
    #[arg(long = "name", value_name = "NAME")]
    pub extra_names: Vec<String>,
}

/// `render`.
#[derive(Args, Debug)]
pub struct RenderArgs {
    /// The manifest: YAML (several documents allowed) or JSON; `-` reads standard input.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Render as if the namespace carried the label `moat.dev/enforce: "true"` (without
    /// it, only pods annotated `moat.dev/enforce: "true"` opt in).
    #[arg(long)]
    pub namespace_enforced: bool,
    /// With --namespace-enforced: the webhook's floors file, to show the effective policy
    /// (the pod's own and the namespace's floor in one) as the webhook writes it. Without
    /// it, the default floor: bind only the declared ports, best-effort refused.
    #[arg(long, value_name = "FILE")]
    pub floors: Option<PathBuf>,
    /// With --floors: the namespace whose floor applies (its [namespace.NAME] table, else
    /// [default]).
    #[arg(long, value_name = "NAME", requires = "floors")]
    pub namespace: Option<String>,
}

/// `render --format`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Comments and moat TOML, one block per container.
    Text,
    /// One JSON object per document.
    Json,
}

/// Runs the command line; returns the exit status.
pub fn run<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    run_with(args, None)
}

/// [`run`], with `give_back`: how the binary's allocator gives a thread's freed memory back
/// to the system (see `server::on_park`).
pub fn run_with<I, T>(args: I, give_back: Option<fn()>) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let result = match cli.command {
        Command::Webhook(w) => match *w {
            WebhookArgs {
                command: Some(WebhookCommand::GenCerts(g)),
                ..
            } => gen_certs(g),
            w => webhook(w, give_back),
        },
        Command::Render(r) => render_cmd(r),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("moat-k8s: {message}");
            ExitCode::FAILURE
        }
    }
}

fn webhook(w: WebhookArgs, give_back: Option<fn()>) -> Result<ExitCode, String> {
    // clap requires both unless a subcommand is given.
    let (Some(cert), Some(key)) = (w.tls_cert, w.tls_key) else {
        return Err("--tls-cert and --tls-key are required".to_string());
    };
    let settings = Settings {
        addr: w.addr,
        cert,
        key,
        max_body_bytes: w.max_request_bytes,
        reload_every: Duration::from_secs(w.cert_check_interval.max(1)),
        shutdown_grace: Duration::from_secs(w.shutdown_grace),
        max_connections: (w.max_connections > 0).then_some(w.max_connections),
        give_back,
        rules: std::sync::Arc::new(
            crate::floors::Live::load(w.floors, w.allow_privileged.into_iter().collect())
                .map_err(|e| e.to_string())?,
        ),
    };
    // The soft limit is often 1024; the webhook uses no select(2).
    let _ = moat_serve::nofile::raise();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Some(f) = give_back {
        builder.on_thread_park(server::on_park(f));
    }
    let runtime = builder
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(async {
        let shutdown = server::termination().map_err(|e| e.to_string())?;
        let bound = Bound::new(settings).await.map_err(|e| e.to_string())?;
        let addr = bound.local_addr().map_err(|e| e.to_string())?;
        // Tests and operators read the actual port from this line.
        eprintln!("moat-k8s: webhook listening on https://{addr}");
        bound.serve(shutdown).await;
        eprintln!("moat-k8s: stopped");
        Ok(ExitCode::SUCCESS)
    })
}

fn gen_certs(g: GenCertsArgs) -> Result<ExitCode, String> {
    let req = CertRequest {
        service: g.service,
        namespace: g.namespace,
        days: g.days,
        extra_names: g.extra_names,
    };
    let generated = certs::generate(&req).map_err(|e| e.to_string())?;
    certs::write(&g.out_dir, &generated).map_err(|e| e.to_string())?;
    eprintln!(
        "moat-k8s: wrote ca.crt, tls.crt and tls.key in {} for {}; caBundle:",
        g.out_dir.display(),
        certs::service_names(&req.service, &req.namespace).join(", ")
    );
    println!("{}", generated.ca_bundle());
    Ok(ExitCode::SUCCESS)
}

fn render_cmd(r: RenderArgs) -> Result<ExitCode, String> {
    let (name, text) = if r.file.as_os_str() == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .map_err(|e| format!("standard input: {e}"))?;
        ("-".to_string(), text)
    } else {
        let name = r.file.display().to_string();
        let text = std::fs::read_to_string(&r.file).map_err(|e| format!("{name}: {e}"))?;
        (name, text)
    };
    let scope = if r.namespace_enforced {
        Scope::Namespace
    } else {
        Scope::Pod
    };
    let floors = match &r.floors {
        Some(f) => crate::floors::Floors::load(f).map_err(|e| e.to_string())?,
        None => crate::floors::Floors::default(),
    };
    let floor = floors.for_namespace(r.namespace.as_deref().unwrap_or(""));
    let rendered = render::render_with(&name, &text, scope, floor).map_err(|e| e.to_string())?;
    match r.format {
        Format::Text => print!("{}", render::to_text(&name, &rendered)),
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&render::to_json(&name, &rendered)).unwrap_or_default()
        ),
    }
    // A manifest the webhook would refuse fails, so `render` can gate a CI pipeline.
    Ok(if rendered.iter().any(render::Rendered::is_refused) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
