//! Deciding what will be enforced: a policy, the effective ABI and the compatibility mode
//! become a [`Plan`] and its [`Report`]. Nothing here restricts the process; the only
//! side effect is opening the rule paths (`O_PATH`), which is how Landlock names them.

use crate::abi::{AbiInfo, Availability};
use crate::caps::{CapsPlan, Held};
use crate::except::Id;
use crate::remedy::{Advised, Frame, Remedy};
use crate::report::{Gap, Needs, Report};
use crate::seccomp::Seal;
use crate::supervise::{ConnectRules, ListenRules, Ports, Rules};
use moat_policy::{
    Abi, AuditFlags, Compat, FsAccess, FsRight, NetAccess, NetRight, Origin, Policy, PolicyError,
    Right, Scope, ScopeSet, Vars,
};
use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A path rule whose path is open and whose rights fit the object.
#[derive(Debug)]
pub struct OpenedRule {
    /// The path, after variable expansion.
    pub path: PathBuf,
    /// An `O_PATH` descriptor on it.
    pub fd: OwnedFd,
    /// Whether it is a directory.
    pub is_dir: bool,
    /// Its device and inode, when the plan needed them (path exceptions).
    pub id: Option<Id>,
    /// The rights granted, limited to what the ruleset handles and what applies to the
    /// object (file rights only on a non-directory).
    pub access: FsAccess,
    /// Where the rule was written.
    pub origins: Vec<Origin>,
    /// For a rule made by expanding a directory around a path exception, that directory
    /// (shared by all the rules it expanded into).
    pub expanded_from: Option<std::sync::Arc<Path>>,
}

/// The Landlock part of a plan, limited to the effective ABI.
#[derive(Debug)]
pub struct LandlockPlan {
    /// The effective ABI the sets were limited to.
    pub abi: Abi,
    /// Filesystem rights denied outside the rules.
    pub fs_handled: FsAccess,
    /// Network rights denied outside the rules.
    pub net_handled: NetAccess,
    /// Scopes in force.
    pub scopes: ScopeSet,
    /// Path rules.
    pub path_rules: Vec<OpenedRule>,
    /// Port rules, one per port.
    pub port_rules: Vec<(u16, NetAccess)>,
    /// Audit flags (only non-default ones need ABI 7).
    pub audit: AuditFlags,
}

/// Everything the enforcement step will do.
#[derive(Debug)]
pub struct Plan {
    /// The Landlock ruleset, or `None` when there is nothing Landlock can enforce.
    pub landlock: Option<LandlockPlan>,
    /// The rows of the seccomp table in force (the filter is installed in every sandbox).
    pub seal: Seal,
    /// The capability step, or `None` when the process holds nothing to drop (or the
    /// policy keeps everything).
    pub caps: Option<CapsPlan>,
    /// What the supervisor decides, when the seal sends calls to one
    /// ([`Seal::supervised`]).
    pub supervision: Option<Arc<Rules>>,
    /// Controls enforced outside this sandbox, and by what (one line each).
    pub outside: Vec<String>,
    /// What is and is not enforced.
    pub report: Report,
}

/// Why a plan could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// A path variable that does not resolve.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// A rule path that does not exist and is not optional.
    #[error("{origin}: path `{}` does not exist", path.display())]
    MissingPath {
        /// The path.
        path: PathBuf,
        /// Where the rule was written.
        origin: Origin,
    },
    /// A rule path that cannot be opened.
    #[error("{origin}: cannot open `{}`: {source}", path.display())]
    OpenPath {
        /// The path.
        path: PathBuf,
        /// Where the rule was written.
        origin: Origin,
        /// The error.
        source: std::io::Error,
    },
    /// A rule path that is not absolute or contains `..`.
    #[error("{origin}: path `{path}` must be absolute and free of `..` components")]
    BadPath {
        /// The path.
        path: String,
        /// Where the rule was written.
        origin: Origin,
    },
    /// Strict mode and a control the kernel cannot enforce.
    #[error("{}", .0.refusal())]
    Unenforceable(Box<Report>),
    /// The process's capabilities cannot be read.
    #[error("cannot read this process's capabilities: {0}")]
    Capabilities(std::io::Error),
}

impl Advised for PlanError {
    fn remedies(&self) -> Vec<Remedy> {
        match self {
            PlanError::MissingPath { .. } => vec![Remedy::MarkOptional, Remedy::IgnoreMissing],
            PlanError::Unenforceable(report) => report.refusal().remedies(),
            PlanError::Policy(_)
            | PlanError::OpenPath { .. }
            | PlanError::BadPath { .. }
            | PlanError::Capabilities(_) => Vec::new(),
        }
    }

    fn advice_frame(&self) -> Option<Frame> {
        match self {
            PlanError::MissingPath { .. } => Some(Frame {
                before: " (",
                between: " or ",
                after: ")",
            }),
            PlanError::Unenforceable(report) => report.refusal().advice_frame(),
            PlanError::Policy(_)
            | PlanError::OpenPath { .. }
            | PlanError::BadPath { .. }
            | PlanError::Capabilities(_) => None,
        }
    }
}

/// Plans the sandbox for `policy` at the effective ABI of `abi`.
///
/// The plan is made whatever the compatibility mode; call [`Plan::require`] to apply strict
/// mode's refusal. `moat check` shows the report of a plan that strict mode would refuse.
pub fn plan(policy: &Policy, abi: AbiInfo, compat: Compat, vars: &Vars) -> Result<Plan, PlanError> {
    let eff = match abi.availability {
        Availability::Available => abi.effective,
        Availability::Disabled | Availability::Missing => Abi::V0,
    };
    let mut report = Report::new(abi, compat);
    let mut seal = Seal::default();
    let mut outside = Vec::new();

    // Filesystem: rights the kernel cannot deny are dropped when the policy requires them
    // and shown as kernel limits otherwise. resolve_unix is decided with the unix sockets
    // below: seccomp can stand in for it.
    let fs_supported = FsAccess::supported_by(eff);
    let fs_handled = if policy.fs.unrestricted {
        FsAccess::EMPTY
    } else {
        policy.fs.handled
    };
    let resolve_unix = FsAccess::of(&[FsRight::ResolveUnix]);
    for r in fs_handled.minus(fs_supported).minus(resolve_unix).iter() {
        let gap = Gap {
            what: format!("deny filesystem right `{}` outside the rules", r.name()),
            needs: Needs::Abi(r.since()),
        };
        if policy.fs.required.contains(r) {
            report.dropped.push(gap);
        } else {
            report.limits.push(gap);
        }
    }
    let fs_eff = fs_handled.intersect(fs_supported);

    // Network.
    let net = &policy.net;
    let net_supported = NetAccess::supported_by(eff);
    let mut net_handled = if net.unrestricted {
        NetAccess::EMPTY
    } else {
        net.handled
    };
    let udp = NetAccess::of(&[NetRight::BindUdp, NetRight::ConnectSendUdp]);
    if !net.unrestricted {
        if net.allow_udp {
            net_handled = net_handled.minus(udp);
        }
        let tcp = net_handled.minus(udp);
        for r in tcp.minus(net_supported).iter() {
            report.dropped.push(Gap {
                what: format!("restrict `{}` to the allowed ports", r.name()),
                needs: Needs::Abi(r.since()),
            });
        }
        let udp_handled = net_handled.intersect(udp);
        let udp_by_landlock = !udp_handled.is_empty() && net_supported.contains_all(udp_handled);
        let mut allow_udp = net.allow_udp || udp_by_landlock;
        if !udp_handled.is_empty() && !udp_by_landlock {
            if policy.has_udp_port_rules() && net.udp_ports_by_cgroup {
                // Port-level UDP is decided by moat-runtime's cgroup sock_addr programs on
                // the container's cgroup; the seal lets UDP sockets be created.
                outside.push(format!(
                    "UDP ports (bind {}; connect/send {}): cgroup-bpf sock_addr programs on \
                     the container's cgroup, attached by moat-runtime",
                    ports_with(policy, NetRight::BindUdp),
                    ports_with(policy, NetRight::ConnectSendUdp)
                ));
                allow_udp = true;
            } else if policy.has_udp_port_rules() {
                // Port-level UDP needs Landlock; seccomp can only allow or refuse it whole.
                report.dropped.push(Gap {
                    what: "limit UDP to the allowed ports (UDP stays fully open)".to_string(),
                    needs: Needs::Abi(Abi::V10),
                });
                allow_udp = true;
            } else if !net.seal_sockets {
                report.dropped.push(Gap {
                    what: format!("deny UDP ({})", udp_handled),
                    needs: Needs::Abi(Abi::V10),
                });
            }
            // Otherwise the seccomp layer refuses UDP sockets whole: enforced.
        }
        if net.seal_sockets {
            seal.network = true;
            seal.allow_udp = allow_udp;
        }
    }
    let net_eff = net_handled.intersect(net_supported);

    // Pathname unix sockets: Landlock's resolve_unix from ABI 9; before, a policy that
    // allows none has socket(AF_UNIX) refused, and one that allows some has its connects
    // decided by the supervisor.
    let unix_restricted = fs_handled.contains(FsRight::ResolveUnix);
    let unix = unix_grants(policy, vars)?;
    let unix_everywhere = unix.iter().any(|p| p == "/");
    // Abstract unix sockets the supervisor may reach: it cannot apply the scope, so under
    // it, none. It may listen on one as Landlock lets the program: when the policy allows
    // unix sockets at all (the scope still keeps the program from reaching out, and a
    // listening socket stays the program's, so the scope judges connects to it as before).
    let abstract_unix = !policy.scopes.contains(Scope::AbstractUnixSocket);
    let abstract_listen = !unix_restricted || !unix.is_empty();
    let mut supervisor: Option<bool> = None;
    let mut can_supervise = || *supervisor.get_or_insert_with(crate::supervise::available);
    let mut rules = Rules::default();
    if unix_restricted && eff < Abi::V9 {
        if unix.is_empty() {
            seal.unix = true;
        } else if unix_everywhere {
            // Every socket may be reached: nothing to decide.
        } else if can_supervise() {
            seal.supervise_connect = true;
            let restricted = |r: NetRight| !net.unrestricted && net.handled.contains(r);
            rules.connect = Some(ConnectRules {
                tcp_ports: restricted(NetRight::ConnectTcp)
                    .then(|| ports_with(policy, NetRight::ConnectTcp)),
                udp_ports: (restricted(NetRight::ConnectSendUdp) && !net.allow_udp)
                    .then(|| ports_with(policy, NetRight::ConnectSendUdp)),
                unix_paths: unix.iter().map(|p| canonical(Path::new(p))).collect(),
                abstract_unix,
            });
        } else {
            report.dropped.push(Gap {
                what: format!(
                    "allow only the listed pathname unix sockets ({}): every other one stays \
                     reachable",
                    unix.join(", ")
                ),
                needs: Needs::AbiOrSupervisor(Abi::V9),
            });
        }
    }

    // listen(): no Landlock ABI has a listen right, and listen() on an unbound socket picks
    // a port without the bind check. Refused outright when nothing may legitimately listen;
    // decided by the supervisor when something may.
    let bind_restricted = !net.unrestricted && net.handled.contains(NetRight::BindTcp);
    if bind_restricted {
        let bind_ports = ports_with(policy, NetRight::BindTcp);
        if bind_ports.is_empty() && unix_restricted && unix.is_empty() {
            seal.listen = true;
        } else if can_supervise() {
            seal.supervise_listen = true;
            rules.listen = Some(ListenRules {
                tcp_ports: bind_ports,
                abstract_unix: abstract_listen,
            });
        } else {
            report.warned.push(Gap {
                what: "accept TCP connections only on the allowed bind ports: listen() on a \
                       socket that was never bound serves on a port the kernel picks"
                    .to_string(),
                needs: Needs::Supervisor,
            });
        }
    }

    // Scopes and audit flags.
    let scopes_supported = ScopeSet::supported_by(eff);
    for s in policy.scopes.minus(scopes_supported).iter() {
        report.dropped.push(Gap {
            what: match s {
                Scope::Signal => "refuse signals to processes outside the sandbox".to_string(),
                Scope::AbstractUnixSocket => {
                    "refuse abstract unix sockets of processes outside the sandbox".to_string()
                }
            },
            needs: Needs::Abi(s.since()),
        });
    }
    let scopes_eff = policy.scopes.intersect(scopes_supported);
    let mut audit = policy.audit;
    if !audit.is_default() && eff < Abi::V7 {
        report.dropped.push(Gap {
            what: "audit log flags (log_same_exec, log_new_exec, log_subdomains)".to_string(),
            needs: Needs::Abi(Abi::V7),
        });
        audit = AuditFlags::default();
    }

    // Capabilities: whatever the process holds goes, but what the policy keeps.
    let held = Held::current().map_err(PlanError::Capabilities)?;
    let caps = CapsPlan::new(policy.caps.unwrap_or_default(), held);

    // Rules, limited to what the ruleset handles.
    let mut path_rules = if fs_eff.is_empty() {
        Vec::new()
    } else {
        open_rules(policy, fs_eff, vars, &mut report)?
    };
    crate::except::apply(&mut path_rules, policy, fs_eff, vars, &held, &mut report)?;
    let port_rules = if net_eff.is_empty() {
        Vec::new()
    } else {
        port_rules(policy, net_eff)
    };

    let landlock =
        if fs_eff.is_empty() && net_eff.is_empty() && scopes_eff.is_empty() && audit.is_default() {
            None
        } else {
            Some(LandlockPlan {
                abi: eff,
                fs_handled: fs_eff,
                net_handled: net_eff,
                scopes: scopes_eff,
                path_rules,
                port_rules,
                audit,
            })
        };
    let supervision = (rules.listen.is_some() || rules.connect.is_some()).then(|| Arc::new(rules));
    Ok(Plan {
        landlock,
        seal,
        caps,
        supervision,
        outside,
        report,
    })
}

/// The ports the policy grants `right` on.
fn ports_with(policy: &Policy, right: NetRight) -> Ports {
    Ports::new(
        policy
            .net
            .rules
            .iter()
            .filter(|r| r.access.contains(right))
            .flat_map(|r| r.ports.ports())
            .collect(),
    )
}

/// `path` with its links resolved, for comparing with where a socket really is; a path
/// that does not exist yet (a socket its server has not created) is resolved up to its
/// parent.
fn canonical(path: &Path) -> PathBuf {
    if let Ok(p) = std::fs::canonicalize(path) {
        return p;
    }
    match (path.parent(), path.file_name()) {
        (Some(dir), Some(name)) => std::fs::canonicalize(dir)
            .map(|d| d.join(name))
            .unwrap_or_else(|_| path.to_path_buf()),
        _ => path.to_path_buf(),
    }
}

/// A rule's paths with its variables expanded. An optional rule whose variable this
/// process does not have (`${HOME}` without HOME) names nothing, like a missing path.
fn expand_rule(rule: &moat_policy::PathRule, vars: &Vars) -> Result<Vec<String>, PlanError> {
    match vars.expand(&rule.path, &rule.origin.0) {
        Err(moat_policy::PolicyError::UndefinedVariable { .. }) if rule.optional => Ok(Vec::new()),
        other => Ok(other?),
    }
}

/// The paths the policy lets the program connect and send to as pathname unix sockets
/// (rules granting `resolve_unix`), expanded, without optional ones that do not exist.
fn unix_grants(policy: &Policy, vars: &Vars) -> Result<Vec<String>, PlanError> {
    let mut out = Vec::new();
    if policy.fs.unrestricted {
        return Ok(out);
    }
    for rule in &policy.fs.rules {
        if !rule.access.contains(FsRight::ResolveUnix) {
            continue;
        }
        for path in expand_rule(rule, vars)? {
            if rule.optional && !Path::new(&path).exists() {
                continue;
            }
            if !out.contains(&path) {
                out.push(path);
            }
        }
    }
    Ok(out)
}

impl Plan {
    /// Fills `report.enforced` with one line per enforced control. Not done by [`plan`]
    /// itself because `moat run` never shows it and every launch would pay for the text.
    pub fn describe(&mut self) {
        let mut e =
            vec!["no_new_privs: set (setuid and file capabilities do not elevate)".to_string()];
        match &self.caps {
            Some(c) => e.push(c.to_string()),
            None => e.push(
                "capabilities: none to drop (the process holds none, or the policy keeps them all)"
                    .to_string(),
            ),
        }
        match &self.landlock {
            Some(ll) => describe_landlock(&mut e, ll),
            None => e.push("Landlock: nothing to enforce".to_string()),
        }
        e.push("seccomp, in this sandbox:".to_string());
        for line in self.seal.describe() {
            e.push(format!("  {line}"));
        }
        if let Some(rules) = &self.supervision {
            e.push("moat's supervisor (a process outside the sandbox) performs:".to_string());
            for line in rules.describe() {
                e.push(format!("  {line}"));
            }
        }
        if !self.outside.is_empty() {
            e.push("outside this sandbox:".to_string());
            for line in &self.outside {
                e.push(format!("  {line}"));
            }
        }
        self.report.enforced = e;
    }

    /// Applies strict mode: refuses when a requested control cannot be enforced.
    pub fn require(self) -> Result<Plan, PlanError> {
        if self.report.refused() {
            Err(PlanError::Unenforceable(Box::new(self.report)))
        } else {
            Ok(self)
        }
    }

    /// Whether the rules grant `right` on the canonical `path` (or a directory above it).
    /// Rule paths are canonicalised here (symlinks such as /bin -> /usr/bin) because this
    /// only runs to explain a failure, never on the launch path.
    pub fn grants(&self, path: &Path, right: FsRight) -> bool {
        let Some(ll) = &self.landlock else {
            return true;
        };
        if !ll.fs_handled.contains(right) {
            return true;
        }
        ll.path_rules.iter().any(|r| {
            let rule_path = std::fs::canonicalize(&r.path).unwrap_or_else(|_| r.path.clone());
            r.access.contains(right) && path.starts_with(rule_path)
        })
    }
}

/// Expands, deduplicates and opens the path rules.
fn open_rules(
    policy: &Policy,
    handled: FsAccess,
    vars: &Vars,
    report: &mut Report,
) -> Result<Vec<OpenedRule>, PlanError> {
    // Path exceptions match rules to directories by device and inode.
    let need_ids = !policy.fs.except.is_empty();
    // Several sources often name the same path (presets, flags): one rule per path keeps
    // the ruleset small and the report readable.
    // Keyed by path and `within`: a rule granted only beneath another path must not lend
    // its rights to an unconditional one on the same path, nor the other way round.
    type Key = (String, Option<String>);
    let mut merged: BTreeMap<Key, (FsAccess, bool, Vec<Origin>)> = BTreeMap::new();
    for rule in &policy.fs.rules {
        let within = match &rule.within {
            None => None,
            Some(w) if !w.as_bytes().contains(&b'$') => Some(w.clone()),
            Some(w) => match vars.expand(w, &rule.origin.0)?.as_slice() {
                [one] => Some(one.clone()),
                _ => {
                    report.skipped.push(format!(
                        "{} ({}): `within` {w} names several paths; not granted",
                        rule.path, rule.origin
                    ));
                    continue;
                }
            },
        };
        let expanded;
        let paths: &[String] = if rule.path.as_bytes().contains(&b'$') {
            expanded = expand_rule(rule, vars)?;
            &expanded
        } else {
            // No variable: no vector for the one path (most rules, on the launch path).
            std::slice::from_ref(&rule.path)
        };
        for path in paths {
            let path = path.clone();
            if path == "/" && rule.path.contains("${CWD}") {
                // A working directory of `/` (common in containers) would make a rule meant
                // for a project directory grant the whole filesystem.
                report.skipped.push(format!(
                    "{} ({}): the working directory is /, and granting it would grant the \
                     whole filesystem",
                    rule.path, rule.origin
                ));
                continue;
            }
            let entry =
                merged
                    .entry((path, within.clone()))
                    .or_insert((FsAccess::EMPTY, true, Vec::new()));
            entry.0 = entry.0.union(rule.access);
            entry.1 &= rule.optional;
            entry.2.push(rule.origin.clone());
        }
    }
    let mut opened = Vec::with_capacity(merged.len());
    for ((path, within), (access, optional, origins)) in merged {
        let origin = origins.first().cloned().unwrap_or_default();
        let p = PathBuf::from(&path);
        if !is_clean_absolute(&path) {
            return Err(PlanError::BadPath { path, origin });
        }
        let opened_rule = if need_ids {
            open_path(&p, 0).and_then(|fd| {
                let (is_dir, id) = is_directory(fd.as_fd())?;
                Ok((fd, is_dir, Some(id)))
            })
        } else {
            // Most rules name directories: `O_DIRECTORY` tells one from a file in the same
            // system call, instead of an `fstat` per rule on the launch path.
            match open_path(&p, libc::O_DIRECTORY) {
                Ok(fd) => Ok((fd, true, None)),
                Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => {
                    open_path(&p, 0).map(|fd| (fd, false, None))
                }
                Err(e) => Err(e),
            }
        };
        let (fd, is_dir, id) = match opened_rule {
            Ok(opened) => opened,
            // Optional and out of reach (missing, or this user may not even look: another
            // user's home): the program could not use a rule on it either.
            Err(e)
                if optional
                    && matches!(
                        e.kind(),
                        std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
                    ) =>
            {
                report.skipped.push(format!("{path} ({origin})"));
                continue;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(PlanError::MissingPath { path: p, origin });
            }
            Err(source) => {
                return Err(PlanError::OpenPath {
                    path: p,
                    origin,
                    source,
                })
            }
        };
        if let Some(w) = &within {
            if !resolves_beneath(fd.as_fd(), w) {
                report.skipped.push(format!(
                    "{path} ({origin}): it does not resolve beneath {w}, where the rule it \
                     comes from applies, so it grants nothing"
                ));
                continue;
            }
        }
        let mut access = access.intersect(handled);
        if !is_dir {
            // Directory rights on a file rule make the kernel refuse the whole rule.
            access = access.intersect(FsAccess::file_rights());
        }
        if access.is_empty() {
            continue;
        }
        opened.push(OpenedRule {
            path: p,
            fd,
            is_dir,
            id,
            access,
            origins,
            expanded_from: None,
        });
    }
    Ok(opened)
}

/// Whether the object open at `fd` is `within` (resolved: symbolic links and mounts
/// followed, as the kernel follows them for a rule on `within`) or beneath it. The object's
/// path comes from `/proc/self/fd`, as the process sees it; anything that cannot be read
/// is "not beneath", so the rule grants nothing.
fn resolves_beneath(fd: BorrowedFd<'_>, within: &str) -> bool {
    let Ok(outer) = std::fs::canonicalize(within) else {
        return false;
    };
    let Ok(inner) = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())) else {
        return false;
    };
    inner.starts_with(&outer)
}

/// Whether `path` is absolute and has no `..` component: a byte scan, on the launch path of
/// every rule (what `Path::components` does costs several times more).
pub(crate) fn is_clean_absolute(path: &str) -> bool {
    let b = path.as_bytes();
    if b.first() != Some(&b'/') {
        return false;
    }
    // A `..` component: two dots after a slash, followed by a slash or the end.
    b.windows(3)
        .enumerate()
        .all(|(i, w)| !(w == b"/.." && b.get(i + 3).is_none_or(|c| *c == b'/')))
}

/// Expands port ranges into the kernel's one-port rules, merging rights per port.
fn port_rules(policy: &Policy, handled: NetAccess) -> Vec<(u16, NetAccess)> {
    let mut ports: BTreeMap<u16, NetAccess> = BTreeMap::new();
    for rule in &policy.net.rules {
        let access = rule.access.intersect(handled);
        if access.is_empty() {
            continue;
        }
        for port in rule.ports.ports() {
            let e = ports.entry(port).or_default();
            *e = e.union(access);
        }
    }
    ports.into_iter().collect()
}

/// Opens `path` with `O_PATH | O_CLOEXEC | flags`: how Landlock names a rule's object.
pub(crate) fn open_path(path: &Path, flags: libc::c_int) -> std::io::Result<OwnedFd> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_PATH | libc::O_CLOEXEC | flags) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by open and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Whether `fd` is a directory, and its device and inode.
pub(crate) fn is_directory(fd: BorrowedFd<'_>) -> std::io::Result<(bool, Id)> {
    // SAFETY: zeroed stat is a valid out-buffer for fstat.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is a valid open descriptor and `st` a valid buffer.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((
        st.st_mode & libc::S_IFMT == libc::S_IFDIR,
        (st.st_dev, st.st_ino),
    ))
}

fn describe_landlock(e: &mut Vec<String>, ll: &LandlockPlan) {
    if ll.fs_handled.is_empty() {
        e.push("filesystem: not restricted".to_string());
    } else {
        e.push(format!(
            "filesystem: denied outside the rules: {}",
            ll.fs_handled
        ));
        // Rules made by expanding a directory around an exception are shown as one line
        // per directory.
        let mut expanded: BTreeMap<&Path, (usize, FsAccess)> = BTreeMap::new();
        for r in &ll.path_rules {
            if let Some(dir) = &r.expanded_from {
                let entry = expanded.entry(dir).or_insert((0, FsAccess::EMPTY));
                entry.0 += 1;
                entry.1 = entry.1.union(r.access);
                continue;
            }
            let kind = if r.is_dir { "" } else { " (file)" };
            e.push(format!("  allow {}{kind}: {}", r.path.display(), r.access));
        }
        for (dir, (n, access)) in expanded {
            e.push(format!(
                "  allow each of the {n} entries of {} but the excepted: {access}",
                dir.display()
            ));
        }
    }
    if ll.net_handled.is_empty() {
        e.push("network (Landlock): not restricted".to_string());
    } else {
        e.push(format!(
            "network: denied outside the rules: {}",
            ll.net_handled
        ));
        for (access, ports) in group_ports(&ll.port_rules) {
            e.push(format!("  allow {access}: {ports}"));
        }
    }
    if ll.scopes.is_empty() {
        e.push("scopes: none".to_string());
    } else {
        e.push(format!(
            "scopes: {} (no reach outside the sandbox)",
            ll.scopes
        ));
    }
    if !ll.audit.is_default() {
        e.push(format!(
            "audit: log_same_exec={} log_new_exec={} log_subdomains={}",
            ll.audit.log_same_exec, ll.audit.log_new_exec, ll.audit.log_subdomains
        ));
    }
}

/// Folds consecutive ports with the same rights back into ranges for display.
fn group_ports(ports: &[(u16, NetAccess)]) -> Vec<(NetAccess, String)> {
    let mut out: Vec<(NetAccess, Vec<(u16, u16)>)> = Vec::new();
    for &(port, access) in ports {
        match out.iter_mut().find(|(a, _)| *a == access) {
            Some((_, ranges)) => match ranges.last_mut() {
                Some(last) if u32::from(last.1) + 1 == u32::from(port) => last.1 = port,
                _ => ranges.push((port, port)),
            },
            None => out.push((access, vec![(port, port)])),
        }
    }
    out.into_iter()
        .map(|(a, ranges)| {
            let text = ranges
                .iter()
                .map(|(s, e)| {
                    if s == e {
                        s.to_string()
                    } else {
                        format!("{s}-{e}")
                    }
                })
                .collect::<Vec<_>>()
                .join(",");
            (a, text)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::detect_with_cap;
    use moat_policy::FsGroup;

    fn policy() -> Policy {
        let mut p = Policy::deny_all();
        p.grant_paths(
            ["/usr", "/etc/hostname"],
            FsGroup::ReadWriteExec.access(),
            false,
            "t",
        );
        p
    }

    #[test]
    fn file_rules_get_file_rights_only() {
        let plan = plan(
            &policy(),
            detect_with_cap(None),
            Compat::Strict,
            &Vars::new(),
        )
        .unwrap();
        let ll = plan.landlock.unwrap();
        let file = ll.path_rules.iter().find(|r| !r.is_dir).unwrap();
        assert!(file.access.iter().all(FsRight::applies_to_files));
        assert!(!file.access.contains(FsRight::ReadDir));
    }

    #[test]
    fn missing_paths_are_errors_unless_optional() {
        let mut p = Policy::deny_all();
        p.grant_paths(
            ["/nonexistent/moat"],
            FsGroup::Read.access(),
            false,
            "flag --ro",
        );
        let err = plan(&p, detect_with_cap(None), Compat::Strict, &Vars::new()).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/moat"), "{err}");
        assert!(err.to_string().contains("flag --ro"), "{err}");
        let mut p = Policy::deny_all();
        p.grant_paths(["/nonexistent/moat"], FsGroup::Read.access(), true, "t");
        let plan = plan(&p, detect_with_cap(None), Compat::Strict, &Vars::new()).unwrap();
        assert_eq!(plan.report.skipped.len(), 1);
    }

    #[test]
    fn a_rule_within_another_path_is_granted_only_when_it_resolves_beneath_it() {
        // /tmp/<d>/data/inside is a directory; /tmp/<d>/data/link leads out of data.
        let d = std::env::temp_dir().join(format!("moat-within-{}", std::process::id()));
        let data = d.join("data");
        std::fs::create_dir_all(data.join("inside")).unwrap();
        std::fs::create_dir_all(d.join("outside")).unwrap();
        let _ = std::fs::remove_file(data.join("link"));
        std::os::unix::fs::symlink(d.join("outside"), data.join("link")).unwrap();
        let mut p = Policy::deny_all();
        for leaf in ["inside", "link"] {
            p.grant_paths(
                [data.join(leaf).display().to_string()],
                FsGroup::Read.access(),
                false,
                "t",
            );
            p.fs.rules.last_mut().unwrap().within = Some(data.display().to_string());
        }
        let plan = plan(&p, detect_with_cap(None), Compat::Strict, &Vars::new()).unwrap();
        let granted: Vec<&Path> = plan
            .landlock
            .as_ref()
            .unwrap()
            .path_rules
            .iter()
            .map(|r| r.path.as_path())
            .collect();
        assert_eq!(granted, [data.join("inside").as_path()]);
        assert!(
            plan.report.skipped[0].contains("does not resolve beneath"),
            "{:?}",
            plan.report.skipped
        );
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn refuses_dotdot() {
        let mut p = Policy::deny_all();
        p.grant_paths(["/usr/../etc"], FsGroup::Read.access(), false, "t");
        assert!(matches!(
            plan(&p, detect_with_cap(None), Compat::Strict, &Vars::new()),
            Err(PlanError::BadPath { .. })
        ));
    }

    #[test]
    fn strict_refuses_below_the_needed_abi_best_effort_reports() {
        let p = policy();
        for cap in Abi::ALL {
            let info = detect_with_cap(Some(cap));
            if info.availability != Availability::Available {
                return;
            }
            let strict = plan(&p, info, Compat::Strict, &Vars::new()).unwrap();
            // The deny-all policy needs scopes (ABI 6).
            assert_eq!(
                strict.report.refused(),
                info.effective < Abi::V6,
                "cap {cap}"
            );
            let be = plan(&p, info, Compat::BestEffort, &Vars::new()).unwrap();
            assert!(!be.report.refused());
            assert_eq!(
                be.report.dropped.is_empty(),
                info.effective >= Abi::V6,
                "cap {cap}"
            );
        }
    }

    fn at(abi: Abi) -> AbiInfo {
        AbiInfo {
            availability: Availability::Available,
            kernel_number: abi.number().into(),
            kernel: abi,
            cap: None,
            effective: abi,
        }
    }

    /// UDP port rules below ABI 10: dropped (strict refuses) unless moat-runtime says its
    /// cgroup-bpf programs enforce them, in which case UDP sockets stay allowed and the
    /// report says by what the ports are enforced.
    #[test]
    fn udp_ports_enforced_outside_by_cgroup_bpf() {
        let mut dns = policy();
        dns.grant_ports(
            [moat_policy::PortRange::single(53)],
            NetAccess::of(&[NetRight::ConnectSendUdp]),
            "t",
        );
        let refused = plan(&dns, at(Abi::V7), Compat::Strict, &Vars::new()).unwrap();
        assert!(refused.report.refused());
        assert!(refused.outside.is_empty());
        dns.net.udp_ports_by_cgroup = true;
        let mut p = plan(&dns, at(Abi::V7), Compat::Strict, &Vars::new()).unwrap();
        assert!(!p.report.refused(), "{:?}", p.report.dropped);
        assert!(p.seal.network && p.seal.allow_udp);
        p.describe();
        let text = p.report.enforced.join("\n");
        assert!(text.contains("outside this sandbox:"), "{text}");
        assert!(text.contains("connect/send 53): cgroup-bpf"), "{text}");
        // ABI 10: Landlock decides; nothing is said to be outside.
        let p = plan(&dns, at(Abi::V10), Compat::Strict, &Vars::new()).unwrap();
        assert!(p.outside.is_empty());
    }

    /// Which seccomp rows and which reported gaps a policy gets, decided from the policy
    /// and the ABI alone (the kernel is not asked: `at` stands for any kernel).
    #[test]
    fn unix_sockets_and_listen_by_policy_and_abi() {
        let tight = policy();
        let mut web = policy();
        web.grant_ports(
            [moat_policy::PortRange::single(80)],
            NetAccess::of(&[NetRight::BindTcp]),
            "t",
        );
        let mut named = policy();
        named.grant_paths(
            ["/etc/hostname"],
            FsAccess::of(&[FsRight::ResolveUnix]),
            false,
            "t",
        );
        let mut everywhere = policy();
        everywhere.grant_paths(["/"], FsAccess::of(&[FsRight::ResolveUnix]), false, "t");
        let mut open_fs = policy();
        open_fs.lift_filesystem();
        let mut open_net = policy();
        open_net.lift_network();

        let p = plan(&tight, at(Abi::V7), Compat::Strict, &Vars::new()).unwrap();
        assert!(p.seal.network && p.seal.unix && p.seal.listen && !p.seal.allow_udp);
        assert!(p.report.fully_enforced(), "{:?}", p.report);
        // ABI 9: Landlock's resolve_unix takes over, listen is still refused.
        let p = plan(&tight, at(Abi::V9), Compat::Strict, &Vars::new()).unwrap();
        assert!(!p.seal.unix && p.seal.listen);
        assert!(p
            .landlock
            .unwrap()
            .fs_handled
            .contains(FsRight::ResolveUnix));

        // The supervisor runs on the kernels moat's tests run on.
        assert!(crate::supervise::available());
        // A bind port: the supervisor decides listen(), on port 80 only.
        let p = plan(&web, at(Abi::V7), Compat::Strict, &Vars::new()).unwrap();
        assert!(!p.seal.listen && p.seal.unix && p.seal.supervise_listen);
        assert!(!p.seal.supervise_connect && p.seal.supervised());
        let rules = p.supervision.as_deref().unwrap();
        let listen = rules.listen.as_ref().unwrap();
        assert!(listen.tcp_ports.contains(80) && !listen.tcp_ports.contains(81));
        // No unix socket allowed: none in the abstract namespace may serve either.
        assert!(!listen.abstract_unix);
        assert!(rules.connect.is_none());
        assert!(p.report.fully_enforced(), "{:?}", p.report);

        // Named sockets below ABI 9: the supervisor decides connect(), and listen() (a
        // unix server may listen, no TCP one); from ABI 9 Landlock decides connect().
        let p = plan(&named, at(Abi::V7), Compat::Strict, &Vars::new()).unwrap();
        assert!(!p.seal.unix && !p.seal.listen && p.seal.supervise_connect);
        let rules = p.supervision.as_deref().unwrap();
        let connect = rules.connect.as_ref().unwrap();
        assert_eq!(connect.unix_paths, [PathBuf::from("/etc/hostname")]);
        assert!(rules.listen.as_ref().unwrap().tcp_ports.is_empty());
        // Unix sockets allowed: an abstract one may serve, as Landlock lets it; under the
        // scope none may be reached through the supervisor.
        assert!(rules.listen.as_ref().unwrap().abstract_unix && !connect.abstract_unix);
        assert!(p.report.fully_enforced(), "{:?}", p.report);
        let p = plan(&named, at(Abi::V9), Compat::Strict, &Vars::new()).unwrap();
        assert!(p.report.dropped.is_empty() && !p.seal.supervise_connect);
        assert!(p.supervision.unwrap().connect.is_none());
        // Every socket allowed: nothing to refuse, nothing missing.
        let p = plan(&everywhere, at(Abi::V7), Compat::Strict, &Vars::new()).unwrap();
        assert!(!p.seal.unix && p.report.dropped.is_empty());

        // An unrestricted filesystem leaves unix sockets alone (and so listen, which a
        // unix server needs); an unrestricted network leaves listen alone.
        let p = plan(&open_fs, at(Abi::V7), Compat::Strict, &Vars::new()).unwrap();
        assert!(!p.seal.unix && !p.seal.listen && p.seal.network);
        let p = plan(&open_net, at(Abi::V7), Compat::Strict, &Vars::new()).unwrap();
        assert!(p.seal.unix && !p.seal.listen && !p.seal.network);
        assert!(p.report.warned.is_empty());
    }

    #[test]
    fn the_working_directory_at_root_is_not_granted() {
        let mut p = Policy::deny_all();
        p.grant_paths(["${CWD}", "/etc"], FsGroup::Read.access(), false, "preset");
        let mut vars = Vars::new();
        vars.set("CWD", "/");
        let plan = plan(&p, at(Abi::V7), Compat::Strict, &vars).unwrap();
        let rules: Vec<_> = plan
            .landlock
            .unwrap()
            .path_rules
            .iter()
            .map(|r| r.path.clone())
            .collect();
        assert_eq!(rules, [PathBuf::from("/etc")]);
        assert!(plan.report.skipped[0].contains("the working directory is /"));
    }

    #[test]
    fn clean_absolute_paths() {
        for ok in ["/", "/usr", "/a/..b", "/a/b..", "/a/.../b", "/a/.b"] {
            assert!(is_clean_absolute(ok), "{ok}");
        }
        for bad in ["", "usr", "/..", "/a/..", "/a/../b", "../a", "/a/b/../"] {
            assert!(!is_clean_absolute(bad), "{bad}");
        }
    }

    #[test]
    fn ports_group_back() {
        let a = NetAccess::of(&[NetRight::BindTcp]);
        let g = group_ports(&[(80, a), (8000, a), (8001, a), (8002, a)]);
        assert_eq!(g[0].1, "80,8000-8002");
    }
}
