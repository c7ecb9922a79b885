//! The `moat-node` command line.

use crate::host::Host;
use crate::install::{self, Restart, Runtimes, Settings};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// moat's node installer: puts moat-runtime and the moat launcher on this node and
/// registers the runtime handler `moat` with containerd (1.6, 1.7, 2.x) or CRI-O, keeping
/// every setting the node has. The new containerd configuration is proven before the
/// runtime is restarted (`containerd config dump` shows every old setting plus `moat`, and
/// a second containerd with its own root, state and sockets loads the CRI plugin from it);
/// on any failure every file is put back. Running it again changes nothing. See
/// docs/kubernetes.md.
#[derive(Parser, Debug)]
#[command(name = "moat-node", version)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Install moat on the node (or bring an installation up to date).
    Install(Options),
    /// Remove what `install` added: the handler, moat-runtime's configuration, the binaries.
    Uninstall(UninstallOptions),
}

/// Options of both subcommands. Paths are the node's own; the installer reaches them under
/// `--host-root`.
#[derive(Args, Debug, Clone)]
pub struct Options {
    /// Where the node's root directory is mounted (`/` when run on the node itself).
    #[arg(long, value_name = "DIR", default_value = "/host")]
    pub host_root: PathBuf,
    /// Which container runtime to configure.
    #[arg(long, value_enum, default_value_t = RuntimeArg::Auto)]
    pub runtime: RuntimeArg,
    /// containerd's main configuration file.
    #[arg(
        long,
        value_name = "FILE",
        default_value = "/etc/containerd/config.toml"
    )]
    pub containerd_config: PathBuf,
    /// The CRI-O drop-in moat-node writes.
    #[arg(
        long,
        value_name = "FILE",
        default_value = "/etc/crio/crio.conf.d/99-moat.conf"
    )]
    pub crio_dropin: PathBuf,
    /// Where moat and moat-runtime go on the node.
    #[arg(long, value_name = "DIR", default_value = "/opt/moat/bin")]
    pub bin_dir: PathBuf,
    /// Where to copy moat and moat-runtime from (in this container); default: the
    /// directory of moat-node itself.
    #[arg(long, value_name = "DIR")]
    pub from: Option<PathBuf>,
    /// moat-runtime's configuration file on the node. moat-runtime reads
    /// /etc/moat/runtime.toml unless MOAT_RUNTIME_CONFIG names another.
    #[arg(long, value_name = "FILE", default_value = "/etc/moat/runtime.toml")]
    pub moat_config: PathBuf,
    /// The runtime moat-runtime hands containers to; default: the binary the node's runc
    /// handler names, else runc on the node's PATH.
    #[arg(long, value_name = "PATH")]
    pub runc: Option<PathBuf>,
    /// What a pod container under the moat handler that names no policy gets: `ports`
    /// (bind only the TCP ports its Pod declares; nothing else restricted) or `refuse`
    /// (it does not start). Never unconfined.
    #[arg(long, value_enum, value_name = "WHAT", default_value = "ports")]
    pub without_policy: crate::runtime_file::WithoutPolicy,
    /// Accepted for older manifests; the same as `--without-policy ports`, the default.
    #[arg(long, hide = true)]
    pub ports_from_spec: bool,
    /// moat-node's own directory on the node: lock, journal, trial runs.
    #[arg(long, value_name = "DIR", default_value = "/var/lib/moat-node")]
    pub work_dir: PathBuf,
    /// Restart the runtime with this shell command instead of `systemctl restart
    /// <service>`; MOAT_RESTART_SERVICE names the service (containerd or crio).
    #[arg(long, value_name = "COMMAND", conflicts_with = "no_restart")]
    pub restart_command: Option<String>,
    /// Do not restart the runtime; the change takes effect at its next restart.
    #[arg(long)]
    pub no_restart: bool,
    /// How long a restarted runtime has to serve the CRI plugin again before the change
    /// is rolled back, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub timeout: u64,
}

/// `uninstall`.
#[derive(Args, Debug, Clone)]
pub struct UninstallOptions {
    /// The same options as `install`.
    #[command(flatten)]
    pub options: Options,
    /// Leave moat and moat-runtime in place: the shims of containers still running under
    /// the handler call moat-runtime to stop them. Drain moat pods first, or keep them.
    #[arg(long)]
    pub keep_binaries: bool,
}

/// `--runtime`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum RuntimeArg {
    /// Every runtime found on the node.
    Auto,
    /// containerd.
    Containerd,
    /// CRI-O.
    Crio,
}

impl Options {
    fn settings(self, keep_binaries: bool) -> Result<Settings, String> {
        let from = match self.from {
            Some(f) => f,
            None => std::env::current_exe()
                .map_err(|e| format!("cannot find moat-node's own path: {e}"))?
                .parent()
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(".")),
        };
        for (flag, p) in [
            ("--containerd-config", &self.containerd_config),
            ("--crio-dropin", &self.crio_dropin),
            ("--bin-dir", &self.bin_dir),
            ("--moat-config", &self.moat_config),
            ("--work-dir", &self.work_dir),
        ] {
            if !p.is_absolute() {
                return Err(format!(
                    "{flag} must be an absolute path on the node, not `{}`",
                    p.display()
                ));
            }
        }
        Ok(Settings {
            host: Host::new(self.host_root),
            runtimes: match self.runtime {
                RuntimeArg::Auto => Runtimes::Auto,
                RuntimeArg::Containerd => Runtimes::Containerd,
                RuntimeArg::Crio => Runtimes::Crio,
            },
            containerd_config: self.containerd_config,
            crio_dropin: self.crio_dropin,
            bin_dir: self.bin_dir,
            from,
            moat_config: self.moat_config,
            runc: self.runc,
            without_policy: self.without_policy,
            work_dir: self.work_dir,
            restart: match (self.restart_command, self.no_restart) {
                (_, true) => Restart::Skip,
                (Some(c), false) => Restart::Command(c),
                (None, false) => Restart::Systemd,
            },
            timeout: Duration::from_secs(self.timeout),
            keep_binaries,
        })
    }
}

/// Runs the command line; returns the exit status (0 done or nothing to do, 1 failed and
/// rolled back, 2 usage).
pub fn run<I, T>(args: I) -> ExitCode
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
    let (settings, install) = match cli.command {
        Command::Install(o) => (o.settings(false), true),
        Command::Uninstall(u) => (u.options.settings(u.keep_binaries), false),
    };
    let settings = match settings {
        Ok(s) => s,
        Err(e) => {
            eprintln!("moat-node: {e}");
            return ExitCode::from(2);
        }
    };
    match install::run(&settings, install) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("moat-node: {e}");
            ExitCode::FAILURE
        }
    }
}
