//! moat-runtime: an OCI runtime with runc's command line that confines containers with
//! Landlock and hands everything else to the real runtime (runc by default).
//!
//! One straight line per command. `create`/`run`: read the bundle's config.json, decide
//! (`policy_source`): a sandbox container, or a standalone one without a policy: exec the
//! real runtime untouched; a Kubernetes container without a policy gets the node's default.
//! Otherwise parse and check the policy against this kernel (fail closed), and rewrite
//! config.json so the in-container launcher runs first with the policy on its command line
//! (`inject`), keeping a record in the bundle (`prepared`), then exec the real runtime
//! with the same arguments. `exec`: ask the runtime for the container's state and, when its
//! bundle holds moat-runtime's record, put the launcher with the same policy in front of
//! the new process (`exec_process`).
//! `features`: the runtime's answer plus moat's annotations (`features`). Every other
//! command is passed through as it came. Errors also go to runc's `--log` file (`log`).

#![deny(missing_docs)]

mod cgroup_bpf;
mod cli;
mod config;
mod early;
mod error;
mod exec_process;
mod features;
mod inject;
mod kube;
mod log;
mod pinned;
mod policy_source;
mod prepared;
mod runtime_config;

// The library is the `moat-runtime` binary's: [`main`] and the ELF entry's [`pass_through`],
// plus the two configuration readers the fuzz target holds to each other.
pub use early::{config_runtime, pass_through, FileRuntime};
pub use runtime_config::FileConfig;

use cli::CommandLine;
use config::Config;
use error::RuntimeError;
use moat_policy::{Compat, Policy};
use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What moat-runtime does once it has decided.
#[derive(Debug)]
enum Outcome {
    /// Replace this process with the real runtime and these arguments.
    Exec(Vec<OsString>),
    /// Exit with this status (output already written).
    Exit(i32),
}

/// Runs moat-runtime on its arguments (without the program name) and returns the exit
/// status; on success it does not return, the real runtime replaces it.
pub fn main(args: Vec<OsString>) -> i32 {
    let line = match cli::parse(args.clone()) {
        Ok(l) => l,
        Err(e) => {
            // Find the log file as best we can to report it.
            let (log, fmt) = rough_log(&args);
            log::error(log.as_deref(), fmt.as_deref(), &e.to_string());
            return 1;
        }
    };
    let log = |e: &RuntimeError| {
        log::error(
            line.globals.log.as_deref(),
            line.globals.log_format.as_deref(),
            &e.to_string(),
        )
    };
    let mut file = LazyFile::default();
    let runtime = match line.globals.runtime.clone() {
        Some(r) => r,
        None if std::env::var_os(runtime_config::RUNTIME_ENV).is_some_and(|v| !v.is_empty()) => {
            runtime_config::runtime(None, &FileConfig::default())
        }
        None => match file.get() {
            Ok(f) => runtime_config::runtime(None, f),
            Err(e) => {
                log(&e);
                return 1;
            }
        },
    };
    let runtime = Runtime::new(runtime);
    // runc's `exec` exits 255 when it cannot run the process (1 is the process's own).
    let failed = if line.command.as_deref() == Some("exec") {
        255
    } else {
        1
    };
    let outcome = match line.command.as_deref() {
        Some("create") | Some("run") => create(&line, &mut file),
        Some("exec") => exec(&line, &runtime),
        Some("features") => features(&line, &runtime),
        Some("restore") => restore(&line, &mut file),
        Some("delete") => delete(&line),
        _ => Ok(Outcome::Exec(line.to_args())),
    };
    match outcome {
        Ok(Outcome::Exec(argv)) => {
            let err = runtime.command().args(argv).exec();
            let e = RuntimeError::Runtime {
                runtime: runtime.name,
                source: err,
            };
            log(&e);
            failed
        }
        Ok(Outcome::Exit(code)) => code,
        Err(e) => {
            log(&e);
            failed
        }
    }
}

/// The real runtime: its name as configured (its `argv[0]`, and what messages call it),
/// and the program to execute, looked up on `PATH` once
/// ([`runtime_config::resolve_in_path`]) instead of by a failed execve per directory.
struct Runtime {
    name: OsString,
    program: OsString,
}

impl Runtime {
    fn new(name: OsString) -> Runtime {
        let program =
            runtime_config::resolve_in_path(name.clone(), std::env::var_os("PATH").as_deref());
        Runtime { name, program }
    }

    /// A command running the runtime, with `argv[0]` as execvp would have given it.
    fn command(&self) -> Command {
        let mut c = Command::new(&self.program);
        c.arg0(&self.name);
        c
    }
}

/// The configuration file, read at most once and only when needed.
#[derive(Default)]
struct LazyFile(Option<FileConfig>);

impl LazyFile {
    fn get(&mut self) -> Result<&FileConfig, RuntimeError> {
        if self.0.is_none() {
            self.0 = Some(FileConfig::load()?);
        }
        Ok(self.0.get_or_insert_with(FileConfig::default))
    }
}

/// What the node's configuration file adds to a container's annotations.
fn node_options(file: &mut LazyFile) -> Result<policy_source::NodeOptions, RuntimeError> {
    Ok(policy_source::NodeOptions {
        without_policy: file.get()?.without_policy,
    })
}

/// `--log`/`--log-format` from a line that did not parse, to report why.
fn rough_log(args: &[OsString]) -> (Option<PathBuf>, Option<String>) {
    let mut log = None;
    let mut fmt = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let s = a.to_string_lossy();
        let s = s.trim_start_matches('-');
        match s.split_once('=') {
            Some(("log", v)) => log = Some(PathBuf::from(v)),
            Some(("log-format", v)) => fmt = Some(v.to_string()),
            _ if s == "log" => log = it.next().map(PathBuf::from),
            _ if s == "log-format" => fmt = it.next().map(|v| v.to_string_lossy().into_owned()),
            _ => {}
        }
    }
    (log, fmt)
}

/// How many descriptors after stdio the real runtime will hand the container process:
/// systemd's LISTEN_FDS when they are meant for this process (runc checks LISTEN_PID
/// against its own pid, which is ours since we exec it), plus `--preserve-fds`.
fn extra_fds(preserve_fds: u32) -> u32 {
    let listen = moat_sandbox::fds::listen_fds().len() as u32;
    listen.saturating_add(preserve_fds)
}

/// `create` and `run`.
fn create(line: &CommandLine, file: &mut LazyFile) -> Result<Outcome, RuntimeError> {
    let command = line.command.as_deref().unwrap_or("create");
    let Some(opts) = options_to_act_on(command, &line.rest)? else {
        return Ok(Outcome::Exec(line.to_args()));
    };
    let bundle = canonical_or_joined(opts.bundle.as_deref().unwrap_or(Path::new(".")));
    let Some(mut cfg) = read_bundle(&bundle)? else {
        return Ok(Outcome::Exec(line.to_args()));
    };
    if prepared::already_prepared(&bundle) {
        // An engine creating a container again from a bundle it reuses. What the first
        // `create` attached to the first container's cgroup (the counters, and UDP rules
        // the launcher's policy leaves to the cgroup) went with that cgroup: passing the
        // prepared config.json through would start the launcher trusting rules nobody
        // enforces. Prepared again from the original instead, as the first time.
        inject::restore_original(&bundle, &cfg)?;
        cfg = match read_bundle(&bundle)? {
            Some(c) => c,
            None => return Ok(Outcome::Exec(line.to_args())),
        };
    }
    let id = opts
        .id
        .as_ref()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let systemd = line.global_args.iter().any(|a| a == "--systemd-cgroup");
    let observed = cgroup_bpf::observed(&cfg)?;
    let mut resolved = match policy_source::decide(&cfg, node_options(file)?)? {
        policy_source::Decision::PassThrough => {
            if observed {
                // Counters only; asked for by name, so a failure refuses the container.
                let info = cgroup_bpf::info(&cfg, &id, systemd)?;
                if let Some(Err(e)) = cgroup_bpf::attach(&info, true, None)?.counters {
                    return Err(e.into());
                }
            }
            return Ok(Outcome::Exec(line.to_args()));
        }
        policy_source::Decision::Confine(r) => r,
    };
    pinned::check(&bundle, &cfg)?;
    let max_abi = file.get()?.max_abi;
    // Whatever the policy said, only an attach below may claim the UDP rules are enforced
    // outside the sandbox. Assume it will succeed for the host check, which must refuse
    // everything else first (nothing is attached for a container that cannot start). The
    // launcher's ABI is the kernel's, capped by moat-runtime's own `max_abi`.
    let abi = moat_sandbox::abi::detect_with_cap(
        max_abi.map(|n| moat_policy::Abi::from_number(i64::from(n))),
    );
    let udp = cgroup_bpf::udp_rules(&resolved.policy, abi.effective);
    resolved.policy.net.udp_ports_by_cgroup = udp.is_some();
    check_host(&resolved.policy, resolved.compat, abi)?;
    let best_effort = resolved.compat == Compat::BestEffort;
    let applied = cgroup_bpf::apply(cgroup_bpf::info(&cfg, &id, systemd), udp, best_effort)?;
    // When the UDP rules could not be attached (best-effort), the launcher reports them
    // as dropped.
    resolved.policy.net.udp_ports_by_cgroup = applied.udp_enforced;
    for dropped in &applied.dropped {
        log::error(
            line.globals.log.as_deref(),
            line.globals.log_format.as_deref(),
            &format!("best-effort: {dropped}"),
        );
    }
    let mut prepare = || -> Result<(), RuntimeError> {
        let (text, warnings) = moat_policy::write::to_moat_json(&resolved.policy)?.into_parts();
        if !warnings.is_empty() && resolved.compat == Compat::Strict {
            return Err(RuntimeError::Lossy(warnings.join("; ")));
        }
        let launcher = runtime_config::launcher(file.get()?)?;
        inject::prepare(
            &bundle,
            &mut cfg,
            &text,
            max_abi,
            &launcher,
            extra_fds(opts.preserve_fds),
            resolved.explain,
        )
    };
    if let Err(e) = prepare() {
        // Nothing will run: take back the cgroup and the pins made for it.
        cgroup_bpf::abandon(&id);
        return Err(e);
    }
    Ok(Outcome::Exec(line.to_args()))
}

/// The options of a `create`, `run` or `restore` line, or `None` when the real runtime will
/// refuse the line or only print its usage before it looks at any bundle: a value flag
/// without its value, `--help`, or not exactly one container id. moat-runtime then passes
/// the line through, so that the answer (text and exit status) is the runtime's own.
fn options_to_act_on(
    command: &str,
    rest: &[OsString],
) -> Result<Option<cli::CommandOptions>, RuntimeError> {
    match cli::parse_options(command, rest) {
        Err(cli::CliError::MissingValue(_)) => Ok(None),
        Err(e) => Err(e.into()),
        Ok(o) if o.help || o.positionals != 1 => Ok(None),
        Ok(o) => Ok(Some(o)),
    }
}

/// The bundle's config.json, or `None` when there is none: the real runtime then fails on
/// its own terms ("config.json not found"), and nothing can start. Any other error (a
/// file that cannot be read or parsed) is moat-runtime's refusal: a parser that reads the
/// file differently from ours could otherwise start a container we did not look into.
fn read_bundle(bundle: &Path) -> Result<Option<Config>, RuntimeError> {
    match Config::read(bundle) {
        Ok(c) => Ok(Some(c)),
        Err(config::ConfigError::Read { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// `restore`: fail closed for confined containers (see [`RuntimeError::RestoreConfined`]);
/// everything else goes to the real runtime unchanged. `checkpoint` needs no such check:
/// dumping does not weaken the running container.
fn restore(line: &CommandLine, file: &mut LazyFile) -> Result<Outcome, RuntimeError> {
    let Some(opts) = options_to_act_on("restore", &line.rest)? else {
        return Ok(Outcome::Exec(line.to_args()));
    };
    let bundle = canonical_or_joined(opts.bundle.as_deref().unwrap_or(Path::new(".")));
    let Some(cfg) = read_bundle(&bundle)? else {
        return Ok(Outcome::Exec(line.to_args()));
    };
    let confined = prepared::Prepared::read(&bundle)?.is_some()
        || matches!(
            policy_source::decide(&cfg, node_options(file)?)?,
            policy_source::Decision::Confine(_)
        );
    if confined {
        return Err(RuntimeError::RestoreConfined { bundle });
    }
    Ok(Outcome::Exec(line.to_args()))
}

/// Checks what does not depend on the container's paths against this kernel (`abi`,
/// capped at moat-runtime's configured `max_abi`): handled rights, ports, scopes and audit
/// flags. Paths are the container's and are checked by the launcher inside it.
fn check_host(
    policy: &Policy,
    compat: Compat,
    abi: moat_sandbox::abi::AbiInfo,
) -> Result<(), RuntimeError> {
    let mut p = policy.clone();
    p.fs.rules.clear();
    moat_sandbox::plan::plan(&p, abi, compat, &moat_policy::Vars::new())?.require()?;
    Ok(())
}

/// The bundle directory as a real path on the host: canonicalised (symbolic links resolved),
/// or joined to the working directory when it cannot be. Unlike the policy paths of
/// `moat_policy::vars` (`is_anchored`, `under_cwd`), this is a host path, never a policy's.
fn canonical_or_joined(p: &Path) -> PathBuf {
    if let Ok(c) = std::fs::canonicalize(p) {
        return c;
    }
    match std::env::current_dir() {
        Ok(cwd) => cwd.join(p),
        Err(_) => p.to_path_buf(),
    }
}

/// Global flags that only decide where and how the runtime logs.
const LOG_FLAGS: &[&str] = &["log", "log-format", "log-level", "debug"];

/// The container's state as the runtime reports it, or `None` when `state` fails (the
/// container does not exist). The question is asked quietly: without the logging flags
/// and with its stderr kept, so that the runtime's log and stderr show only what the
/// command the engine asked for did, as they would without moat-runtime.
fn container_state(
    line: &CommandLine,
    runtime: &Runtime,
    id: &str,
) -> Result<Option<Vec<u8>>, RuntimeError> {
    let out = runtime
        .command()
        .args(cli::without_globals(&line.global_args, LOG_FLAGS))
        .args(["state", id])
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|source| RuntimeError::Runtime {
            runtime: runtime.name.clone(),
            source,
        })?;
    Ok(out.status.success().then_some(out.stdout))
}

/// Runs the real runtime with the global flags and `args`, and returns its stdout.
fn capture(line: &CommandLine, runtime: &Runtime, args: &[&str]) -> Result<Vec<u8>, RuntimeError> {
    let out = runtime
        .command()
        .args(&line.global_args)
        .args(args)
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|source| RuntimeError::Runtime {
            runtime: runtime.name.clone(),
            source,
        })?;
    if !out.status.success() {
        return Err(RuntimeError::RuntimeOutput {
            command: args.join(" "),
            message: format!("exited with {}", out.status),
        });
    }
    Ok(out.stdout)
}

/// `delete`: the container's cgroup-bpf pins go, then the runtime replaces moat-runtime as
/// for any command. Only the pins: the programs stay attached to the cgroup, which holds
/// them, so whatever happens to the delete, nothing the container does goes unenforced.
/// The pins stay when the delete will fail because the container still runs (no
/// `--force` and processes left in its cgroup), so its counters stay readable.
///
/// Removing them first instead of after the runtime's delete keeps the runtime's exit
/// status and output its own without a child process (measured: a child `runc delete` and
/// waiting for it added about 3 ms to every delete; docs/PERFORMANCE.md).
fn delete(line: &CommandLine) -> Result<Outcome, RuntimeError> {
    let Some(id) = line
        .rest
        .iter()
        .rev()
        .find(|a| !a.to_string_lossy().starts_with('-'))
        .map(|a| a.to_string_lossy().into_owned())
    else {
        return Ok(Outcome::Exec(line.to_args()));
    };
    let force = cli::delete_forced(&line.rest);
    if let Some(pins) = cgroup_bpf::pinned(&id) {
        if force || !pins.running() {
            pins.forget()?;
        }
    }
    Ok(Outcome::Exec(line.to_args()))
}

/// `exec`: confine the new process when the container is confined.
fn exec(line: &CommandLine, runtime: &Runtime) -> Result<Outcome, RuntimeError> {
    let opts = match cli::parse_options("exec", &line.rest) {
        // The runtime prints its usage error.
        Err(cli::CliError::MissingValue(_)) => return Ok(Outcome::Exec(line.to_args())),
        r => r?,
    };
    let (false, Some(id_at)) = (opts.help, opts.first_positional) else {
        // Help, or no container id: the runtime prints its usage.
        return Ok(Outcome::Exec(line.to_args()));
    };
    let id = line.rest[id_at].to_string_lossy().into_owned();
    let Some(state) = container_state(line, runtime, &id)? else {
        // No such container (or no state to read): nothing runs, and the runtime's own
        // `exec` says so in its words and with its exit status (255).
        return Ok(Outcome::Exec(line.to_args()));
    };
    let state: serde_json::Value =
        serde_json::from_slice(&state).map_err(|e| RuntimeError::RuntimeOutput {
            command: format!("state {id}"),
            message: format!("not JSON: {e}"),
        })?;
    let Some(policy) = exec_process::container_policy(&state)? else {
        return Ok(Outcome::Exec(line.to_args()));
    };
    let extra = extra_fds(opts.preserve_fds);
    let new_process = match &opts.process {
        Some((path, _)) => {
            let text = std::fs::read(path).map_err(|e| {
                RuntimeError::Exec(format!("cannot read `{}`: {e}", path.display()))
            })?;
            let rewritten = exec_process::rewrite_process_json(&text, &policy, extra)?;
            let min_fd = 3 + extra as i32 + 16;
            let fd = exec_process::memfd(&rewritten, min_fd)
                .map_err(|e| RuntimeError::Exec(format!("cannot hold the process file: {e}")))?;
            Some(PathBuf::from(format!("/proc/self/fd/{fd}")))
        }
        None => None,
    };
    let rest =
        exec_process::rewrite_args(&line.rest, &opts, new_process.as_deref(), &policy, extra)?;
    let mut argv = line.global_args.clone();
    argv.push("exec".into());
    argv.extend(rest);
    Ok(Outcome::Exec(argv))
}

/// `features`: the runtime's document with moat's annotations added.
fn features(line: &CommandLine, runtime: &Runtime) -> Result<Outcome, RuntimeError> {
    if line.rest.iter().any(|a| a == "--help" || a == "-h") {
        return Ok(Outcome::Exec(line.to_args()));
    }
    let mut args: Vec<String> = vec!["features".into()];
    args.extend(line.rest.iter().map(|a| a.to_string_lossy().into_owned()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = capture(line, runtime, &refs)?;
    let bad = |message: String| RuntimeError::RuntimeOutput {
        command: "features".into(),
        message,
    };
    let mut v: serde_json::Value =
        serde_json::from_slice(&out).map_err(|e| bad(format!("not JSON: {e}")))?;
    features::extend(&mut v).map_err(|m| bad(m.to_string()))?;
    let text = serde_json::to_string_pretty(&v).map_err(|e| bad(e.to_string()))?;
    println!("{text}");
    Ok(Outcome::Exit(0))
}
