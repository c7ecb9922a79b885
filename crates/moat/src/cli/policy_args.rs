//! The policy flags `run` and `check` share, and how they compose into one policy.

use super::Failure;
use moat_policy::{
    presets, AuditFlags, Compat, FsAccess, FsGroup, FsRight, KeepCaps, NetAccess, NetRight, Policy,
    PortRange, Scope, ScopeSet,
};
use moat_sandbox::exec::Target;
use std::path::PathBuf;

/// The name a `--policy-text` document goes by in error messages (it has no extension, so
/// its format is told from its content, as for a file without one).
const POLICY_TEXT_ORIGIN: &str = "--policy-text";

/// Policy flags. landrun's flags keep their names and meaning.
#[derive(clap::Args, Debug, Default)]
pub struct PolicyArgs {
    /// Policy file (moat TOML/JSON/YAML, landlockconfig, OCI process.landlock); repeatable.
    #[arg(long = "policy", value_name = "FILE")]
    pub policies: Vec<PathBuf>,
    /// Policy document given as text, in any format and dialect --policy reads (named
    /// `--policy-text` in error messages); repeatable, combines like --policy.
    #[arg(long = "policy-text", value_name = "TEXT", allow_hyphen_values = true)]
    pub policy_texts: Vec<String>,
    /// Built-in preset (see `moat presets`); repeatable, comma lists accepted.
    #[arg(long = "preset", value_name = "NAME", value_delimiter = ',')]
    pub presets: Vec<String>,
    /// Allow reading PATH (files and directories beneath it); repeatable, comma lists
    /// accepted (--ro /etc,/usr/share); relative paths are taken from the current directory.
    #[arg(long, value_name = "PATH", value_delimiter = ',')]
    pub ro: Vec<String>,
    /// Allow reading and executing PATH (repeatable, comma lists).
    #[arg(long, value_name = "PATH", value_delimiter = ',')]
    pub rox: Vec<String>,
    /// Allow reading and writing PATH: create, remove, rename, truncate (repeatable, comma
    /// lists).
    #[arg(long, value_name = "PATH", value_delimiter = ',')]
    pub rw: Vec<String>,
    /// Allow reading, writing and executing PATH (repeatable, comma lists).
    #[arg(long, value_name = "PATH", value_delimiter = ',')]
    pub rwx: Vec<String>,
    /// Allow connecting and sending to the pathname unix socket PATH, or to any socket
    /// beneath the directory PATH (otherwise none is reachable).
    #[arg(long, value_name = "PATH", value_delimiter = ',')]
    pub unix: Vec<String>,
    /// Keep PATH out of reach of the rules on the directories above it ("--ro /etc
    /// --except /etc/shadow"); see docs/policy.md for what an exception costs.
    #[arg(long, value_name = "PATH", value_delimiter = ',')]
    pub except: Vec<String>,
    /// Keep capability NAME (CHOWN, NET_BIND_SERVICE, ...; comma lists; `all` keeps every
    /// one moat starts with). Every other capability is dropped before the command runs.
    #[arg(long = "keep-cap", value_name = "NAME", value_delimiter = ',', value_parser = parse_cap)]
    pub keep_cap: Vec<KeepCaps>,
    /// Allow binding TCP ports (8080, 8000-8010, comma lists).
    #[arg(long = "bind-tcp", value_name = "PORTS", value_delimiter = ',', value_parser = parse_port)]
    pub bind_tcp: Vec<PortRange>,
    /// Allow connecting to TCP ports (443, 8000-8010, comma lists).
    #[arg(long = "connect-tcp", value_name = "PORTS", value_delimiter = ',', value_parser = parse_port)]
    pub connect_tcp: Vec<PortRange>,
    /// Allow binding UDP ports (enforced by Landlock ABI 10).
    #[arg(long = "bind-udp", value_name = "PORTS", value_delimiter = ',', value_parser = parse_port)]
    pub bind_udp: Vec<PortRange>,
    /// Allow sending to and connecting UDP ports (enforced by Landlock ABI 10).
    #[arg(long = "connect-udp", value_name = "PORTS", value_delimiter = ',', value_parser = parse_port)]
    pub connect_udp: Vec<PortRange>,
    /// Allow all UDP (otherwise a restricted network refuses UDP sockets).
    #[arg(long = "allow-udp")]
    pub allow_udp: bool,
    /// Give the command a private temporary directory (policy key `[filesystem]
    /// private_tmp`): a fresh directory (on /dev/shm when it is a tmpfs, else in $TMPDIR
    /// or /tmp), readable and writable by the sandbox and named by TMPDIR, TMP and TEMP,
    /// removed when the sandbox's last process has ended. Grants nothing else of /tmp.
    #[arg(long = "private-tmp")]
    pub private_tmp: bool,
    /// Lift every filesystem restriction.
    #[arg(long = "unrestricted-filesystem")]
    pub unrestricted_filesystem: bool,
    /// Lift every network restriction (TCP, UDP and the socket filter).
    #[arg(long = "unrestricted-network")]
    pub unrestricted_network: bool,
    /// Turn a scope off: `signal` or `abstract-unix-socket` (comma lists).
    #[arg(long, value_name = "SCOPE", value_delimiter = ',', value_parser = parse_scope)]
    pub unscoped: Vec<Scope>,
    /// Turn both scopes off (landrun's spelling of `--unscoped signal,abstract-unix-socket`).
    #[arg(long = "unrestricted-scoped")]
    pub unrestricted_scoped: bool,
    /// Run with what this kernel can enforce, printing every dropped control.
    #[arg(long = "best-effort", conflicts_with = "strict")]
    pub best_effort: bool,
    /// Refuse to run unless everything is enforced (the default; overrides a policy file).
    #[arg(long)]
    pub strict: bool,
    /// Skip rule paths that do not exist instead of failing.
    #[arg(long = "ignore-missing")]
    pub ignore_missing: bool,
    /// Add the target's ELF interpreter (read+execute) and libraries (read).
    #[arg(long)]
    pub ldd: bool,
    /// Add the target program itself (read+execute).
    #[arg(long = "add-exec")]
    pub add_exec: bool,
    /// Audit: do not log denials of the sandboxed program itself (ABI 7; landrun's
    /// --log-disable-originating is the same flag).
    #[arg(long = "log-same-exec-off", alias = "log-disable-originating")]
    pub log_same_exec_off: bool,
    /// Audit: log denials after the program execs another one (ABI 7; landrun's
    /// --log-enable-subprocesses is the same flag).
    #[arg(long = "log-new-exec-on", alias = "log-enable-subprocesses")]
    pub log_new_exec_on: bool,
    /// Audit: do not log denials of nested sandboxes (ABI 7; landrun's
    /// --log-disable-subdomains is the same flag).
    #[arg(long = "log-subdomains-off", alias = "log-disable-subdomains")]
    pub log_subdomains_off: bool,
    /// Accepted for landrun's scripts (error, info, debug); changes nothing: moat prints
    /// only errors and, under --best-effort, every control it cannot enforce, at any level.
    #[arg(long = "log-level", value_name = "LEVEL", value_parser = parse_log_level)]
    pub log_level: Option<String>,
    /// No path or port flag means deny everything (landrun's default) rather than the
    /// `default` preset. Set by the landrun personality, never from moat's command line.
    #[arg(skip)]
    pub deny_by_default: bool,
    /// Set KEY=VALUE, or pass KEY from moat's environment; repeatable.
    #[arg(long = "env", value_name = "KEY[=VALUE]")]
    pub env: Vec<String>,
    /// Start the program with an empty environment (plus --env).
    #[arg(long = "clear-env")]
    pub clear_env: bool,
}

fn parse_port(s: &str) -> Result<PortRange, String> {
    PortRange::parse(s).map_err(|e| e.to_string())
}

fn parse_cap(s: &str) -> Result<KeepCaps, String> {
    KeepCaps::parse([s])
}

/// The levels landrun's `--log-level` takes, in any case.
pub(crate) fn parse_log_level(s: &str) -> Result<String, String> {
    let level = s.to_ascii_lowercase();
    match level.as_str() {
        "error" | "info" | "debug" => Ok(level),
        _ => Err(format!("unknown log level `{s}` (error, info, debug)")),
    }
}

fn parse_scope(s: &str) -> Result<Scope, String> {
    match s.trim().replace('_', "-").as_str() {
        "signal" | "signals" => Ok(Scope::Signal),
        "abstract-unix-socket" | "abstract" => Ok(Scope::AbstractUnixSocket),
        "all" => Err("name scopes one by one: signal, abstract-unix-socket".to_string()),
        other => Err(format!(
            "unknown scope `{other}` (signal, abstract-unix-socket)"
        )),
    }
}

impl PolicyArgs {
    /// Whether any flag grants paths or ports (then the default preset is not added).
    fn has_grants(&self) -> bool {
        !(self.ro.is_empty()
            && self.rox.is_empty()
            && self.rw.is_empty()
            && self.rwx.is_empty()
            && self.unix.is_empty()
            && self.bind_tcp.is_empty()
            && self.connect_tcp.is_empty()
            && self.bind_udp.is_empty()
            && self.connect_udp.is_empty())
            || self.ldd
            || self.add_exec
    }

    /// Whether flags replaced the default preset: no preset or policy named, but some
    /// path or port flag given.
    pub fn replaced_default(&self) -> bool {
        !self.deny_by_default
            && self.presets.is_empty()
            && self.policies.is_empty()
            && self.policy_texts.is_empty()
            && self.has_grants()
    }

    /// Composes presets, files and flags into one policy. `target` is needed for `--ldd`
    /// and `--add-exec`.
    pub fn build(&self, target: Option<&Target>) -> Result<Policy, Failure> {
        let mut parts: Vec<Policy> = Vec::new();
        let mut presets_named = self.presets.clone();
        if presets_named.is_empty()
            && self.policies.is_empty()
            && self.policy_texts.is_empty()
            && !self.has_grants()
        {
            if self.deny_by_default {
                parts.push(Policy::deny_all());
            } else {
                presets_named.push("default".to_string());
            }
        }
        for name in &presets_named {
            parts.push(presets::load(name.trim()).map_err(Failure::moat)?);
        }
        for file in &self.policies {
            parts.push(moat_policy::load_file(file).map_err(Failure::moat)?);
        }
        for text in &self.policy_texts {
            parts.push(moat_policy::parse_str(POLICY_TEXT_ORIGIN, text).map_err(Failure::moat)?);
        }
        let flags = if self.has_grants() {
            Some(self.flag_policy(target)?)
        } else {
            None
        };
        // Flags beside a policy file or preset add their grants and nothing else: the
        // file's scopes, compatibility and handled rights stay as written (a flag that
        // names such a setting, below, changes it). Alone, they are the whole policy.
        let mut policy = match (parts.into_iter().reduce(Policy::merge), flags) {
            (Some(mut base), Some(flags)) => {
                base.add_grants(flags);
                base
            }
            (Some(base), None) => base,
            (None, Some(flags)) => flags,
            (None, None) => Policy::allow_all(),
        };

        if self.unrestricted_filesystem {
            policy.lift_filesystem();
        }
        if self.unrestricted_network {
            policy.lift_network();
        } else if self.allow_udp {
            policy.net.allow_udp = true;
        }
        for s in &self.unscoped {
            policy.scopes = policy.scopes.minus(ScopeSet::of(&[*s]));
        }
        if self.unrestricted_scoped {
            policy.scopes = policy
                .scopes
                .minus(ScopeSet::of(&[Scope::Signal, Scope::AbstractUnixSocket]));
        }
        let d = AuditFlags::default();
        policy.audit = policy.audit.merge(AuditFlags {
            log_same_exec: !self.log_same_exec_off && d.log_same_exec,
            log_new_exec: self.log_new_exec_on || d.log_new_exec,
            log_subdomains: !self.log_subdomains_off && d.log_subdomains,
        });
        for path in self.except.iter().filter(|s| !s.is_empty()) {
            let path = resolve_against_cwd(path)
                .map_err(|e| Failure::moat(format!("--except {path}: {e}")))?;
            policy.except_paths([path], "--except");
        }
        if !self.keep_cap.is_empty() {
            let keep = self
                .keep_cap
                .iter()
                .fold(KeepCaps::default(), |k, c| k.union(*c));
            policy.caps = Some(policy.caps.unwrap_or_default().union(keep));
        }
        if self.ignore_missing {
            for r in &mut policy.fs.rules {
                r.optional = true;
            }
        }
        policy.env.clear |= self.clear_env;
        policy.fs.private_tmp |= self.private_tmp;
        for kv in &self.env {
            match kv.split_once('=') {
                Some((k, v)) if !k.is_empty() => policy.env.set.push((k.into(), v.into())),
                None if !kv.is_empty() => policy.env.pass.push(kv.clone()),
                _ => {
                    return Err(Failure::moat(format!(
                        "--env `{kv}`: write KEY=VALUE or KEY"
                    )))
                }
            }
        }
        if self.strict {
            policy.compat = Some(Compat::Strict);
        } else if self.best_effort {
            policy.compat = Some(Compat::BestEffort);
        }
        Ok(policy)
    }

    /// The policy the path and port flags describe: deny everything, allow what is named.
    fn flag_policy(&self, target: Option<&Target>) -> Result<Policy, Failure> {
        let mut p = Policy::deny_all();
        let groups = [
            ("--ro", &self.ro, FsGroup::Read.access()),
            ("--rox", &self.rox, FsGroup::ReadExec.access()),
            ("--rw", &self.rw, FsGroup::ReadWrite.access()),
            ("--rwx", &self.rwx, FsGroup::ReadWriteExec.access()),
            (
                "--unix",
                &self.unix,
                moat_policy::dialect::moat::unix_access(),
            ),
        ];
        for (flag, paths, access) in groups {
            for path in paths.iter().filter(|s| !s.is_empty()) {
                let path = resolve_against_cwd(path)
                    .map_err(|e| Failure::moat(format!("{flag} {path}: {e}")))?;
                p.grant_paths([path], access, false, flag);
            }
        }
        let ports = [
            ("--bind-tcp", &self.bind_tcp, NetRight::BindTcp),
            ("--connect-tcp", &self.connect_tcp, NetRight::ConnectTcp),
            ("--bind-udp", &self.bind_udp, NetRight::BindUdp),
            ("--connect-udp", &self.connect_udp, NetRight::ConnectSendUdp),
        ];
        for (flag, ranges, right) in ports {
            p.grant_ports(ranges.iter().copied(), NetAccess::of(&[right]), flag);
        }
        let read_exec = FsAccess::of(&[FsRight::ReadFile, FsRight::Execute]);
        if self.add_exec || self.ldd {
            let Some(target) = target else {
                return Err(Failure::moat(
                    "--ldd and --add-exec need a command after --",
                ));
            };
            if self.add_exec {
                // `moat run -- ./app` runs ./app: the rule names the same file, absolute.
                let program = target.program.to_string_lossy();
                let program = resolve_against_cwd(&program)
                    .map_err(|e| Failure::moat(format!("--add-exec {program}: {e}")))?;
                p.grant_paths([program], read_exec, false, "--add-exec");
            }
            if self.ldd {
                let opts = moat_sandbox::ldd::LddOptions {
                    library_path: std::env::var_os("LD_LIBRARY_PATH")
                        .map(|v| std::env::split_paths(&v).collect())
                        .unwrap_or_default(),
                    ..Default::default()
                };
                let deps = moat_sandbox::ldd::dependencies(&target.program, &opts)
                    .map_err(|e| Failure::moat(format!("--ldd: {e}")))?;
                for i in &deps.interpreters {
                    p.grant_paths([i.to_string_lossy()], read_exec, false, "--ldd");
                }
                for l in &deps.libraries {
                    p.grant_paths(
                        [l.to_string_lossy()],
                        FsAccess::of(&[FsRight::ReadFile]),
                        false,
                        "--ldd",
                    );
                }
            }
        }
        Ok(p)
    }
}

/// Makes a flag path absolute against the current directory now, normalising `.` and `..`
/// lexically (landrun accepts relative paths on the command line; policy files must be
/// explicit). Not [`moat_policy::vars::under_cwd`], which keeps the path symbolic: a flag
/// names the directory moat was started in, shown as such in messages.
fn resolve_against_cwd(path: &str) -> Result<String, String> {
    if moat_policy::vars::is_anchored(path) {
        return Ok(path.to_string());
    }
    let cwd = std::env::current_dir().map_err(|e| format!("cannot resolve relative path: {e}"))?;
    let joined = cwd.join(path);
    // Normalise "." and ".." lexically so the sandbox planner sees a clean absolute path.
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    Ok(out.to_string_lossy().into_owned())
}
