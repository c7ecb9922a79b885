//! The one internal policy model every dialect parses into and every enforcement point
//! reads from.

use crate::abi::Abi;
use crate::caps::KeepCaps;
use crate::ports::PortRange;
use crate::rights::{FsAccess, NetAccess, NetRight, ScopeSet};
use std::fmt;

/// What to do when the kernel cannot enforce part of a policy.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum Compat {
    /// Refuse to run (exit 125) and say what is missing.
    #[default]
    Strict,
    /// Run with what the kernel can enforce and print every dropped control.
    BestEffort,
}

impl Compat {
    /// The name used in policies and messages.
    pub fn name(self) -> &'static str {
        match self {
            Compat::Strict => "strict",
            Compat::BestEffort => "best-effort",
        }
    }

    /// Parses `strict`, `best-effort` (or `best_effort`, `besteffort`).
    pub fn by_name(name: &str) -> Option<Compat> {
        match name.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "strict" | "hard" | "hard-requirement" => Some(Compat::Strict),
            "best-effort" | "besteffort" => Some(Compat::BestEffort),
            _ => None,
        }
    }
}

/// Where a rule came from, so reports and errors can point back at it. Shared, not copied:
/// every rule of a list, and every rule an exception expands into, carries the same one.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Origin(pub std::sync::Arc<str>);

impl Origin {
    /// An origin from any description ("policy.toml: filesystem.read", "--ro", ...).
    pub fn new(text: impl AsRef<str>) -> Self {
        Origin(text.as_ref().into())
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Rights granted beneath one path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathRule {
    /// The path as written; may hold `${VARIABLE}` references until resolved.
    pub path: String,
    /// The rights granted beneath the path.
    pub access: FsAccess,
    /// A missing path is skipped instead of being an error.
    pub optional: bool,
    /// Where the rule was written.
    pub origin: Origin,
    /// Granted only when `path`, resolved (symbolic links and mounts followed), is this
    /// path or beneath it; otherwise the rule grants nothing. Written by
    /// [`Policy::intersect`] for a rule that comes from two nested paths.
    pub within: Option<String>,
}

/// A path beneath which no rule of an enclosing directory applies: "read /etc except
/// /etc/shadow". Landlock only allows, so the planner grants the enclosing rules' rights on
/// the siblings along the way down instead (see `moat_sandbox::plan`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathException {
    /// The path as written; may hold `${VARIABLE}` references until resolved.
    pub path: String,
    /// Where the exception was written.
    pub origin: Origin,
}

/// Network rights granted on a range of ports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortRule {
    /// The ports.
    pub ports: PortRange,
    /// The rights granted on them.
    pub access: NetAccess,
    /// Where the rule was written.
    pub origin: Origin,
}

/// The filesystem part of a policy.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct FsPolicy {
    /// The policy lifts all filesystem restrictions.
    pub unrestricted: bool,
    /// Rights denied everywhere a rule does not grant them.
    pub handled: FsAccess,
    /// The handled rights that strict mode insists the kernel can deny. Handled rights
    /// outside this set are still denied wherever the kernel can and are reported as kernel
    /// limits where it cannot.
    pub required: FsAccess,
    /// The grants.
    pub rules: Vec<PathRule>,
    /// Paths the grants of enclosing directories do not reach.
    pub except: Vec<PathException>,
    /// The sandbox gets a temporary directory of its own (TMPDIR, TMP, TEMP), removed when
    /// it ends: the grant of temporary files without a right on a shared /tmp.
    pub private_tmp: bool,
}

/// The network part of a policy.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct NetPolicy {
    /// The policy lifts all network restrictions.
    pub unrestricted: bool,
    /// Rights denied on every port a rule does not grant them on.
    pub handled: NetAccess,
    /// The grants.
    pub rules: Vec<PortRule>,
    /// All UDP is allowed explicitly (no UDP restriction at all).
    pub allow_udp: bool,
    /// Refuse the sockets Landlock cannot see (UDP unless allowed, raw, packet, SCTP, MPTCP
    /// and unusual families) with a seccomp filter. Set by moat's own dialect whenever it
    /// restricts the network, because there "no network" means no network.
    pub seal_sockets: bool,
    /// The UDP port rules are enforced outside the sandbox, by cgroup-bpf programs on the
    /// container's cgroup (`udp_ports_enforced_by = "cgroup-bpf"`). Set by moat-runtime,
    /// and only after it attached them: the launcher inside the container cannot check it,
    /// and below Landlock ABI 10 it then lets UDP sockets be created.
    pub udp_ports_by_cgroup: bool,
}

/// The audit flags of `landlock_restrict_self` (ABI 7), with the kernel's defaults.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct AuditFlags {
    /// Log denials of the sandboxed program before it execs again (kernel default: on).
    pub log_same_exec: bool,
    /// Log denials after the next exec (kernel default: off).
    pub log_new_exec: bool,
    /// Log denials of nested domains (kernel default: on).
    pub log_subdomains: bool,
}

impl Default for AuditFlags {
    fn default() -> Self {
        AuditFlags {
            log_same_exec: true,
            log_new_exec: false,
            log_subdomains: true,
        }
    }
}

impl AuditFlags {
    /// Whether any flag differs from the kernel's default (and so needs ABI 7).
    pub fn is_default(&self) -> bool {
        *self == AuditFlags::default()
    }

    /// Combines two settings: a flag moved off its default by either side stays moved.
    pub fn merge(self, other: AuditFlags) -> AuditFlags {
        let d = AuditFlags::default();
        let pick = |a: bool, b: bool, def: bool| if a != def { a } else { b };
        AuditFlags {
            log_same_exec: pick(self.log_same_exec, other.log_same_exec, d.log_same_exec),
            log_new_exec: pick(self.log_new_exec, other.log_new_exec, d.log_new_exec),
            log_subdomains: pick(self.log_subdomains, other.log_subdomains, d.log_subdomains),
        }
    }
}

/// What environment the sandboxed program gets.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct EnvPolicy {
    /// Start from an empty environment instead of moat's own.
    pub clear: bool,
    /// Variables passed through from moat's environment (useful with `clear`).
    pub pass: Vec<String>,
    /// Variables set to a value.
    pub set: Vec<(String, String)>,
}

/// A complete policy: what one sandbox allows.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Policy {
    /// Strict or best-effort, when the policy says so.
    pub compat: Option<Compat>,
    /// Filesystem access.
    pub fs: FsPolicy,
    /// Network access.
    pub net: NetPolicy,
    /// IPC scopes in force.
    pub scopes: ScopeSet,
    /// Audit flags.
    pub audit: AuditFlags,
    /// Environment handling.
    pub env: EnvPolicy,
    /// The capabilities kept across exec; `None` when the policy does not say, which
    /// `moat run` and the watchdog take as "drop them all" and the container launcher as
    /// "keep what the container's own configuration gave".
    pub caps: Option<KeepCaps>,
}

/// The filesystem rights strict mode insists on for moat's own dialect: those of ABI 3,
/// the first ABI where a read-only path is really read-only (no write, remove, reparent or
/// truncate). Newer rights are denied where the kernel can and reported where it cannot.
pub fn fs_baseline() -> FsAccess {
    FsAccess::supported_by(Abi::V3)
}

impl Policy {
    /// The deny-everything starting point of moat's own dialect and flags: every right is
    /// handled, the network is closed (TCP by Landlock, other sockets by seccomp) and both
    /// scopes are on. Rules then grant what the program needs.
    pub fn deny_all() -> Policy {
        Policy {
            compat: None,
            fs: FsPolicy {
                unrestricted: false,
                handled: FsAccess::all(),
                required: fs_baseline(),
                rules: Vec::new(),
                except: Vec::new(),
                private_tmp: false,
            },
            net: NetPolicy {
                unrestricted: false,
                handled: NetAccess::all(),
                rules: Vec::new(),
                allow_udp: false,
                seal_sockets: true,
                udp_ports_by_cgroup: false,
            },
            scopes: ScopeSet::all(),
            audit: AuditFlags::default(),
            env: EnvPolicy::default(),
            caps: None,
        }
    }

    /// A policy that restricts nothing: the neutral element of [`Policy::merge`].
    pub fn allow_all() -> Policy {
        Policy::default()
    }

    /// A policy that restricts only TCP `bind`, to `ports`, and leaves everything else
    /// (filesystem, connect, UDP, scopes) unrestricted: Kubernetes' "a container may bind
    /// only the ports it declares", which never breaks a container that keeps to its spec.
    pub fn bind_tcp_only(ports: impl IntoIterator<Item = u16>, origin: &str) -> Policy {
        let bind = NetAccess::of(&[NetRight::BindTcp]);
        let mut p = Policy::allow_all();
        p.net.handled = bind;
        p.net.rules = ports
            .into_iter()
            .map(|port| PortRule {
                ports: PortRange::single(port),
                access: bind,
                origin: Origin::new(origin),
            })
            .collect();
        p
    }

    /// Lifts every filesystem restriction.
    pub fn lift_filesystem(&mut self) {
        self.fs = FsPolicy {
            unrestricted: true,
            ..FsPolicy::default()
        };
    }

    /// Lifts every network restriction.
    pub fn lift_network(&mut self) {
        self.net = NetPolicy {
            unrestricted: true,
            ..NetPolicy::default()
        };
    }

    /// Adds `other`'s path and port rules to this policy and takes nothing else from it:
    /// how `moat run` composes path and port flags with a policy file, whose scopes,
    /// compatibility and handled rights stay as the file says. A grant of a right the
    /// policy does not restrict changes nothing.
    pub fn add_grants(&mut self, other: Policy) {
        if !self.fs.unrestricted {
            self.fs.rules.extend(other.fs.rules);
        }
        if !self.net.unrestricted {
            self.net.rules.extend(other.net.rules);
        }
    }

    /// Combines two policies into one ruleset: grants add up, and so do restrictions, so
    /// that no source's denial is lost; a source that lifts a whole domain lifts it.
    pub fn merge(mut self, other: Policy) -> Policy {
        self.compat = match (self.compat, other.compat) {
            (Some(Compat::Strict), _) | (_, Some(Compat::Strict)) => Some(Compat::Strict),
            (a, b) => a.or(b),
        };
        if self.fs.unrestricted || other.fs.unrestricted {
            self.lift_filesystem();
        } else {
            self.fs.handled = self.fs.handled.union(other.fs.handled);
            self.fs.required = self.fs.required.union(other.fs.required);
            self.fs.rules.extend(other.fs.rules);
            self.fs.except.extend(other.fs.except);
            self.fs.private_tmp |= other.fs.private_tmp;
        }
        if self.net.unrestricted || other.net.unrestricted {
            self.lift_network();
        } else {
            self.net.handled = self.net.handled.union(other.net.handled);
            self.net.rules.extend(other.net.rules);
            self.net.allow_udp |= other.net.allow_udp;
            self.net.seal_sockets |= other.net.seal_sockets;
            // Only moat-runtime sets it, on the policy it hands to the launcher: a merge
            // with anything that does not say so does not inherit it.
            self.net.udp_ports_by_cgroup &= other.net.udp_ports_by_cgroup;
        }
        self.scopes = self.scopes.union(other.scopes);
        self.audit = self.audit.merge(other.audit);
        self.env.clear |= other.env.clear;
        self.env.pass.extend(other.env.pass);
        self.env.set.extend(other.env.set);
        self.caps = match (self.caps, other.caps) {
            (Some(a), Some(b)) => Some(a.union(b)),
            (a, b) => a.or(b),
        };
        self
    }

    /// Whether the policy restricts TCP (handles bind or connect).
    pub fn restricts_tcp(&self) -> bool {
        !self.net.unrestricted
            && (self.net.handled.contains(NetRight::BindTcp)
                || self.net.handled.contains(NetRight::ConnectTcp))
    }

    /// Whether the policy allows UDP on specific ports only.
    pub fn has_udp_port_rules(&self) -> bool {
        !self.net.allow_udp
            && self
                .net
                .rules
                .iter()
                .any(|r| r.access.iter().any(NetRight::is_udp))
    }

    /// Grants `access` on each path, all from one origin.
    pub fn grant_paths<I, S>(&mut self, paths: I, access: FsAccess, optional: bool, origin: &str)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let origin = Origin::new(origin);
        for p in paths {
            self.fs.rules.push(PathRule {
                path: p.into(),
                access,
                optional,
                origin: origin.clone(),
                within: None,
            });
        }
    }

    /// Excepts each path from the grants of enclosing directories, all from one origin.
    pub fn except_paths<I, S>(&mut self, paths: I, origin: &str)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        for p in paths {
            self.fs.except.push(PathException {
                path: p.into(),
                origin: Origin::new(origin),
            });
        }
    }

    /// Grants `access` on each port range, all from one origin.
    pub fn grant_ports<I>(&mut self, ports: I, access: NetAccess, origin: &str)
    where
        I: IntoIterator<Item = PortRange>,
    {
        for ports in ports {
            self.net.rules.push(PortRule {
                ports,
                access,
                origin: Origin::new(origin),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rights::{FsGroup, FsRight, Scope};

    #[test]
    fn merge_adds_grants_and_keeps_restrictions() {
        let mut a = Policy::deny_all();
        a.grant_paths(["/usr"], FsGroup::ReadExec.access(), false, "a");
        let mut b = Policy::default();
        b.fs.handled = FsAccess::of(&[FsRight::ReadFile]);
        b.grant_paths(["/etc"], FsGroup::Read.access(), false, "b");
        let m = a.merge(b);
        assert_eq!(m.fs.rules.len(), 2);
        assert_eq!(m.fs.handled, FsAccess::all());
        assert!(m.scopes.contains(Scope::Signal));
        assert!(m.restricts_tcp());
    }

    #[test]
    fn lifting_a_domain_wins() {
        let mut open = Policy::default();
        open.lift_network();
        let m = Policy::deny_all().merge(open);
        assert!(m.net.unrestricted);
        assert!(!m.restricts_tcp());
        assert!(!m.net.seal_sockets);
        assert!(!m.fs.unrestricted);
    }

    #[test]
    fn audit_merge_keeps_non_defaults() {
        let a = AuditFlags {
            log_new_exec: true,
            ..AuditFlags::default()
        };
        let m = AuditFlags::default().merge(a);
        assert!(m.log_new_exec);
        assert!(!m.is_default());
    }
}
