//! moat's own policy format (TOML, or the same model in JSON and YAML).
//!
//! ```toml
//! compat = "strict"              # or "best-effort"
//! presets = ["default"]          # built-in presets to start from
//!
//! [filesystem]
//! read = ["/etc", "${CWD}"]
//! read_exec = ["/usr", { path = "/lib64", optional = true }]
//! write = ["${TMPDIR}"]
//! [[filesystem.rule]]
//! paths = ["/dev/null"]
//! rights = ["read_file", "write_file", "truncate"]
//!
//! [network]
//! bind_tcp = [8080]
//! connect_tcp = [443, "8000-8010"]
//!
//! [scopes]
//! signal = true                  # true: the scope is in force (the default)
//!
//! [capabilities]
//! keep = ["NET_BIND_SERVICE"]    # every other capability is dropped before exec
//! ```
//!
//! `[filesystem] unix = [...]` lists the pathname unix sockets (or directories holding
//! them) the program may connect and send to; `[filesystem] except = [...]` names paths
//! that the grants of enclosing directories do not reach ("read /etc except
//! /etc/shadow").
//!
//! Everything the policy does not allow is denied, network included.
//!
//! A policy converted from a dialect that restricts only some rights (landlockconfig, OCI)
//! says which with `handled`: `[filesystem] handled = [...]` denies only those filesystem
//! rights (and strict mode requires all of them); `[network] handled = [...]` denies only
//! those network rights, and then moat does not add its seccomp seal of the sockets
//! Landlock cannot see.

mod doc;
mod write;

pub use write::{to_moat_json, to_moat_toml, to_moat_yaml};

use super::common::Table;
use super::Document;
use crate::error::PolicyError;
use crate::model::{AuditFlags, Policy};
use crate::rights::{FsAccess, FsRight, NetAccess, Scope};
use doc::{Enforcer, MoatDoc};

/// The format version this parser reads (and the writer writes).
pub const VERSION: u32 = 1;

/// How deep presets may include presets.
const MAX_PRESET_DEPTH: usize = 8;

/// Parses a moat policy document.
pub fn parse(doc: &Document<'_>) -> Result<Policy, PolicyError> {
    parse_at_depth(doc, 0)
}

fn parse_at_depth(doc: &Document<'_>, depth: usize) -> Result<Policy, PolicyError> {
    let Table(raw) = doc.deserialize::<Table<MoatDoc>>()?;
    let _ = (raw.version, raw.description);
    let name = doc.name;
    let mut policy = Policy::deny_all();
    policy.compat = raw.compat.map(|c| c.0);

    if let Some(Table(mut fs)) = raw.filesystem {
        if fs.unrestricted && fs.handled.is_some() {
            return Err(contradiction(doc, "filesystem"));
        }
        if fs.unrestricted {
            policy.lift_filesystem();
        } else {
            if let Some(handled) = &fs.handled {
                policy.fs.handled = handled.0;
                policy.fs.required = handled.0;
            }
            for (key, access, entries) in fs.lists_mut() {
                let origin = format!("{name}: filesystem.{key}");
                for e in std::mem::take(entries) {
                    policy.grant_paths([e.path], access, e.optional, &origin);
                    set_within(&mut policy, e.within);
                }
            }
            let origin = format!("{name}: filesystem.except");
            policy.except_paths(fs.except.into_iter().map(|e| e.path), &origin);
            policy.fs.private_tmp = fs.private_tmp;
            for (i, Table(rule)) in fs.rules.into_iter().enumerate() {
                let origin = format!("{name}: filesystem.rule[{i}]");
                for e in rule.paths.0 {
                    policy.grant_paths(
                        [e.path],
                        rule.rights.0,
                        e.optional || rule.optional,
                        &origin,
                    );
                    set_within(&mut policy, e.within);
                }
            }
        }
    }

    if let Some(Table(mut net)) = raw.network {
        if net.unrestricted && net.handled.is_some() {
            return Err(contradiction(doc, "network"));
        }
        if net.unrestricted {
            policy.lift_network();
        } else {
            if let Some(handled) = &net.handled {
                policy.net.handled = handled.0;
                policy.net.seal_sockets = false;
            }
            policy.net.allow_udp = net.allow_udp;
            policy.net.udp_ports_by_cgroup = net.udp_ports_enforced_by == Some(Enforcer::CgroupBpf);
            for (key, right, ports) in net.ports_mut() {
                let origin = format!("{name}: network.{key}");
                policy.grant_ports(
                    std::mem::take(ports).into_iter().map(|p| p.0),
                    NetAccess::of(&[right]),
                    &origin,
                );
            }
        }
    }

    if let Some(Table(scopes)) = raw.scopes {
        if scopes.signal == Some(false) {
            policy.scopes = policy
                .scopes
                .minus(crate::rights::ScopeSet::of(&[Scope::Signal]));
        }
        if scopes.abstract_unix_socket == Some(false) {
            policy.scopes = policy
                .scopes
                .minus(crate::rights::ScopeSet::of(&[Scope::AbstractUnixSocket]));
        }
    }

    if let Some(Table(audit)) = raw.audit {
        let d = AuditFlags::default();
        policy.audit = AuditFlags {
            log_same_exec: audit.log_same_exec.unwrap_or(d.log_same_exec),
            log_new_exec: audit.log_new_exec.unwrap_or(d.log_new_exec),
            log_subdomains: audit.log_subdomains.unwrap_or(d.log_subdomains),
        };
    }

    if let Some(Table(env)) = raw.env {
        policy.env.clear = env.clear;
        policy.env.pass = env.pass;
        policy.env.set = env.set.into_iter().collect();
    }

    if let Some(Table(caps)) = raw.capabilities {
        policy.caps = Some(caps.keep.0);
    }

    for preset in raw.presets {
        if depth >= MAX_PRESET_DEPTH {
            return Err(PolicyError::parse(
                name,
                "presets",
                format!("presets nest deeper than {MAX_PRESET_DEPTH} levels"),
            ));
        }
        let text = crate::presets::json(&preset)?;
        let label = format!("preset {preset}");
        let doc = Document::with_format(&label, text, super::Format::Json);
        policy = policy.merge(parse_at_depth(&doc, depth + 1)?);
    }
    Ok(policy)
}

/// The error for a domain that is both lifted and restricted.
fn contradiction(doc: &Document<'_>, domain: &str) -> PolicyError {
    super::common::error_near(
        doc,
        &format!("{domain}.handled"),
        &[(domain, 0), ("handled", 0)],
        format!(
            "`{domain}.handled` restricts rights while `{domain}.unrestricted = true` lifts \
             them all; keep one of the two"
        ),
    )
}

/// What the `unix` list grants: connecting and sending to pathname unix sockets.
pub fn unix_access() -> FsAccess {
    FsAccess::of(&[FsRight::ResolveUnix])
}

/// Sets `within` on the rule just granted.
fn set_within(policy: &mut Policy, within: Option<String>) {
    if let Some(rule) = policy.fs.rules.last_mut() {
        rule.within = within;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialect::{parse_str, Format};
    use crate::model::Compat;
    use crate::ports::PortRange;
    use crate::rights::{FsGroup, NetRight};

    fn err(name: &str, text: &str) -> String {
        match parse_str(name, text) {
            Ok(p) => panic!("expected an error, got {p:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn full_document() {
        let p = parse_str(
            "p.toml",
            r#"
compat = "best-effort"
[filesystem]
read = ["/etc"]
read_exec = ["/usr", { path = "/lib64", optional = true }]
write = ["/tmp"]
[[filesystem.rule]]
paths = "/dev/null"
rights = ["read_file", "write_file", 16384]
[network]
bind_tcp = [8080, "9000-9001"]
connect_tcp = [443]
[scopes]
signal = false
[audit]
log_new_exec = true
[env]
clear = true
pass = ["PATH"]
set = { LANG = "C" }
"#,
        )
        .unwrap();
        assert_eq!(p.compat, Some(Compat::BestEffort));
        assert_eq!(p.fs.rules.len(), 5);
        assert!(p.fs.rules[2].optional);
        assert!(p.fs.rules[4].access.contains(FsRight::Truncate));
        assert_eq!(
            p.net.rules[1].ports,
            PortRange {
                start: 9000,
                end: 9001
            }
        );
        assert!(!p.scopes.contains(Scope::Signal));
        assert!(p.scopes.contains(Scope::AbstractUnixSocket));
        assert!(p.audit.log_new_exec);
        assert!(p.env.clear);
        assert!(p.net.seal_sockets);
    }

    #[test]
    fn json_and_yaml_equivalents() {
        let t = parse_str(
            "p.toml",
            "[filesystem]\nread = [\"/etc\"]\n[network]\nconnect_tcp = [80]\n",
        )
        .unwrap();
        let j = parse_str(
            "p.json",
            r#"{"filesystem":{"read":["/etc"]},"network":{"connect_tcp":[80]}}"#,
        )
        .unwrap();
        let y = parse_str(
            "p.yaml",
            "filesystem:\n  read: [/etc]\nnetwork:\n  connect_tcp: [80]\n",
        )
        .unwrap();
        assert_eq!(t.fs.rules.len(), 1);
        assert_eq!(t.fs.rules[0].access, j.fs.rules[0].access);
        assert_eq!(t.net.rules[0].ports, y.net.rules[0].ports);
        assert_eq!(y.fs.rules[0].path, "/etc");
        assert_eq!(
            super::super::Format::sniff("filesystem:\n  read: [/etc]\n"),
            Format::Yaml
        );
    }

    #[test]
    fn errors_name_file_line_column_and_key() {
        let e = err("p.toml", "[filesystem]\nread = [\"/etc\"]\n[[filesystem.rule]]\npaths = [\"/x\"]\nrights = [\"read_fil\"]\n");
        assert!(e.starts_with("p.toml:5:"), "{e}");
        assert!(e.contains("`filesystem.rule[0].rights"), "{e}");
        assert!(e.contains("unknown filesystem right `read_fil`"), "{e}");

        let e = err("p.toml", "[network]\nbind_tcp = [70000]\n");
        assert!(e.starts_with("p.toml:2:"), "{e}");
        assert!(e.contains("network.bind_tcp"), "{e}");
        assert!(e.contains("port 70000 is outside 0..=65535"), "{e}");

        let e = err("p.json", "{\"filesystem\": {\"reed\": []}}");
        assert!(e.starts_with("p.json:1:"), "{e}");
        assert!(e.contains("unknown field `reed`"), "{e}");

        let e = err("p.yaml", "network:\n  connect_tcp: [\"1-x\"]\n");
        assert!(e.starts_with("p.yaml:2:"), "{e}");
        assert!(e.contains("network.connect_tcp"), "{e}");

        let e = err("p.toml", "compat = \"lenient\"\n");
        assert!(e.contains("unknown compat mode `lenient`"), "{e}");

        let e = err("p.toml", "[filesystem]\nread = [\"relative/dir\"]\n");
        assert!(e.contains("is relative"), "{e}");

        let e = err("p.toml", "version = 2\n");
        assert!(e.contains("version 2 is not supported"), "{e}");

        let e = err("p.toml", "presets = [\"nope\"]\n");
        assert!(e.contains("unknown preset `nope`"), "{e}");

        let e = err("p.toml", "[filesystem\n");
        assert!(e.starts_with("p.toml:1:"), "{e}");

        let e = err(
            "p.toml",
            "[[filesystem.rule]]\npaths = [\"/x\"]\nrights = [1048576]\n",
        );
        assert!(e.contains("unknown to moat"), "{e}");
    }

    #[test]
    fn unrestricted_domains() {
        let p = parse_str(
            "p.toml",
            "[filesystem]\nunrestricted = true\n[network]\nunrestricted = true\n",
        )
        .unwrap();
        assert!(p.fs.unrestricted);
        assert!(p.net.unrestricted);
        assert!(!p.restricts_tcp());
    }

    #[test]
    fn handled_lists_narrow_the_restriction() {
        let p = parse_str(
            "p.toml",
            "[filesystem]\nhandled = [\"read_file\", \"write_file\"]\nread = [\"/etc\"]\n\
             [network]\nhandled = [\"bind_tcp\"]\nbind_tcp = [80]\n",
        )
        .unwrap();
        assert_eq!(
            p.fs.handled,
            FsAccess::of(&[FsRight::ReadFile, FsRight::WriteFile])
        );
        assert_eq!(p.fs.required, p.fs.handled);
        assert_eq!(p.net.handled, NetAccess::of(&[NetRight::BindTcp]));
        assert!(!p.net.seal_sockets);

        let e = err(
            "p.toml",
            "[network]\nunrestricted = true\nhandled = [\"bind_tcp\"]\n",
        );
        assert!(e.starts_with("p.toml:3:1:"), "{e}");
        assert!(e.contains("`network.handled`"), "{e}");
    }

    #[test]
    fn unix_sockets_exceptions_and_capabilities() {
        let p = parse_str(
            "p.toml",
            "[filesystem]\nread = [\"/etc\"]\nunix = [\"/run/a.sock\", { path = \"/run/b\", optional = true }]\n\
             except = [\"/etc/shadow\", \"${HOME}/.ssh\"]\n[capabilities]\nkeep = [\"CHOWN\", \"cap_net_raw\"]\n",
        )
        .unwrap();
        let unix: Vec<_> =
            p.fs.rules
                .iter()
                .filter(|r| r.access == unix_access())
                .collect();
        assert_eq!(unix.len(), 2);
        assert!(unix[1].optional);
        assert_eq!(p.fs.except.len(), 2);
        assert_eq!(p.fs.except[1].path, "${HOME}/.ssh");
        assert!(p.fs.except[0].origin.0.contains("filesystem.except"));
        let keep = p.caps.unwrap();
        assert!(!keep.all);
        assert_eq!(keep.names(), vec!["CHOWN", "NET_RAW"]);
        // `write` no longer reaches unix sockets.
        assert!(!FsGroup::ReadWrite.access().contains(FsRight::ResolveUnix));
        // Without the table, nothing is said: the enforcement point decides.
        assert_eq!(
            parse_str("p.toml", "[filesystem]\nread = [\"/etc\"]\n")
                .unwrap()
                .caps,
            None
        );
        assert!(
            parse_str("p.toml", "[capabilities]\nkeep = [\"all\"]\n")
                .unwrap()
                .caps
                .unwrap()
                .all
        );
        let e = err("p.toml", "[capabilities]\nkeep = [\"CHOWN\", \"chwon\"]\n");
        assert!(e.starts_with("p.toml:2:"), "{e}");
        assert!(
            e.contains("capabilities.keep") && e.contains("unknown capability `chwon`"),
            "{e}"
        );
        let e = err("p.toml", "[filesystem]\nexcept = [\"etc/shadow\"]\n");
        assert!(e.contains("is relative"), "{e}");
        let e = err("p.toml", "[capabilities]\ndrop = [\"CHOWN\"]\n");
        assert!(e.contains("unknown field `drop`"), "{e}");
    }

    #[test]
    fn presets_are_included() {
        let p = parse_str(
            "p.toml",
            "presets = [\"default\"]\n[network]\nconnect_tcp = [443]\n",
        )
        .unwrap();
        assert!(p.fs.rules.iter().any(|r| r.path == "/usr"));
        assert_eq!(p.net.rules.len(), 1);
    }
}
