//! Writing the model out in each dialect (`moat policy convert`).
//!
//! Every writer returns the text together with a list of warnings: one for each part of
//! the policy the target dialect cannot express, saying what changes. Nothing is dropped
//! without a warning; a caller that wants lossless conversions only refuses a result whose
//! `warnings` is not empty. A policy the target cannot express at all is a [`WriteError`].
//!
//! What reading the text back gives (`parse(write(p))`) is the same policy up to the rules'
//! origins, the order of rules, and how rules are grouped (one rule per path and right;
//! ports merged into ranges) — except for what a warning names. Rights a rule grants but
//! the policy does not handle mean nothing (nothing restricts them) and are left out of
//! landlockconfig and OCI output.

pub use crate::dialect::moat::{to_moat_json, to_moat_toml, to_moat_yaml};

use crate::dialect::oci::net_name;
use crate::dialect::Dialect;
use crate::model::{Compat, Policy};
use crate::ports::PortRange;
use crate::rights::{AccessSet, FsAccess, FsRight, NetAccess, NetRight, Right};
use serde::Serialize;
use serde_json::Value;

/// A converted policy: the text, and what the target dialect could not carry over.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Written {
    /// The policy in the target dialect, ending with a newline.
    pub text: String,
    /// One sentence per part of the policy that the text does not express, saying what
    /// changes. Empty when the conversion is exact.
    pub warnings: Vec<String>,
}

impl Written {
    /// The text and the warnings.
    pub fn into_parts(self) -> (String, Vec<String>) {
        (self.text, self.warnings)
    }
}

/// A policy the target dialect cannot express at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// The target has no way to say what the policy means.
    #[error("{dialect} cannot express this policy: {reason}")]
    Inexpressible {
        /// The target dialect.
        dialect: &'static str,
        /// Why.
        reason: String,
    },
}

/// Writes `policy` in `dialect` (OCI #1241, OCI #1111, landlockconfig JSON or moat TOML).
pub fn write(policy: &Policy, dialect: Dialect) -> Result<Written, WriteError> {
    match dialect {
        Dialect::Moat => to_moat_toml(policy),
        Dialect::LandlockConfig => to_landlockconfig_json(policy),
        Dialect::OciPr1241 => to_oci_json(policy),
        Dialect::OciPr1111 => to_oci_1111_json(policy),
    }
}

// ---------------------------------------------------------------------------------------
// What landlockconfig and OCI can say: handled rights and rules, nothing else.

/// The Landlock-only content of a policy, with rules grouped by their access.
struct Plain {
    handled_fs: FsAccess,
    handled_net: NetAccess,
    fs_rules: Vec<(FsAccess, Vec<String>)>,
    net_rules: Vec<(NetAccess, Vec<PortRange>)>,
}

/// Reduces a policy to handled rights and rules, warning about what `dialect` loses.
/// `names_scopes` says whether the target can hold scopes.
fn plain(policy: &Policy, dialect: &str, names_scopes: bool, warnings: &mut Vec<String>) -> Plain {
    let handled_fs = if policy.fs.unrestricted {
        FsAccess::EMPTY
    } else {
        policy.fs.handled
    };
    let mut handled_net = if policy.net.unrestricted {
        NetAccess::EMPTY
    } else {
        policy.net.handled
    };
    if policy.net.allow_udp {
        // All UDP allowed: the same as not handling the UDP rights.
        handled_net = handled_net.minus(NetAccess::of(&[
            NetRight::BindUdp,
            NetRight::ConnectSendUdp,
        ]));
    }

    let required_gap = handled_fs.minus(policy.fs.required);
    if !required_gap.is_empty() {
        warnings.push(format!(
            "{dialect} cannot say which handled rights strict mode requires: read back, \
             strict mode also requires {required_gap} (so it needs Landlock ABI {} instead \
             of {})",
            handled_fs.needs_abi(),
            policy.fs.required.intersect(handled_fs).needs_abi()
        ));
    }
    if !policy.net.unrestricted && policy.net.seal_sockets && !handled_net.is_empty() {
        warnings.push(format!(
            "{dialect} has no seccomp seal: sockets Landlock cannot see (raw, packet, SCTP, \
             MPTCP, UDP before ABI 10) are no longer refused"
        ));
    }
    if !names_scopes && !policy.scopes.is_empty() {
        warnings.push(format!(
            "{dialect} has no scopes: the {} scope(s) are dropped, so the program may signal \
             or reach abstract unix sockets outside the sandbox",
            policy.scopes
        ));
    }
    if !policy.audit.is_default() {
        warnings.push(format!(
            "{dialect} has no audit flags: the kernel's default logging applies"
        ));
    }
    if let Some(keep) = policy.caps {
        warnings.push(format!(
            "{dialect} has no capability settings: `keep = {:?}` is dropped, so moat drops \
             every capability",
            keep.names()
        ));
    }
    if policy.fs.private_tmp {
        warnings.push(format!(
            "{dialect} has no private temporary directory: `private_tmp = true` is dropped, \
             so the program finds no writable TMPDIR"
        ));
    }
    if !policy.fs.except.is_empty() {
        let paths: Vec<&str> = policy.fs.except.iter().map(|e| e.path.as_str()).collect();
        warnings.push(format!(
            "{dialect} has no path exceptions: {} become readable (or writable) again through \
             the rules on their directories",
            paths.join(", ")
        ));
    }
    let env = &policy.env;
    if env.clear || !env.pass.is_empty() || !env.set.is_empty() {
        warnings.push(format!(
            "{dialect} has no environment settings: clear/pass/set are dropped"
        ));
    }

    let mut fs_rules: Vec<(FsAccess, Vec<String>)> = Vec::new();
    let mut optional = Vec::new();
    if !handled_fs.is_empty() {
        for rule in &policy.fs.rules {
            let access = rule.access.intersect(handled_fs);
            if access.is_empty() {
                continue;
            }
            if let Some(within) = &rule.within {
                // Granting it unconditionally could grant more than the policy: left out.
                warnings.push(format!(
                    "{dialect} cannot grant a path only when it resolves beneath another: the \
                     rule on {} (within {within}) is left out",
                    rule.path
                ));
                continue;
            }
            if rule.optional {
                optional.push(rule.path.clone());
            }
            match fs_rules.iter_mut().find(|(a, _)| *a == access) {
                Some((_, paths)) => paths.push(rule.path.clone()),
                None => fs_rules.push((access, vec![rule.path.clone()])),
            }
        }
    }
    if !optional.is_empty() {
        warnings.push(format!(
            "{dialect} has no optional paths: {} become required ({})",
            optional.len(),
            optional.join(", ")
        ));
    }

    let mut net_rules: Vec<(NetAccess, Vec<PortRange>)> = Vec::new();
    if !handled_net.is_empty() {
        for rule in &policy.net.rules {
            let access = rule.access.intersect(handled_net);
            if access.is_empty() {
                continue;
            }
            match net_rules.iter_mut().find(|(a, _)| *a == access) {
                Some((_, ports)) => ports.push(rule.ports),
                None => net_rules.push((access, vec![rule.ports])),
            }
        }
    }
    for (_, ports) in &mut net_rules {
        *ports = crate::dialect::landlockconfig::coalesce(std::mem::take(ports));
    }
    Plain {
        handled_fs,
        handled_net,
        fs_rules,
        net_rules,
    }
}

/// Warns about paths that still hold `${VARIABLE}`s in the written text.
fn variable_warning<'a>(
    dialect: &str,
    paths: impl Iterator<Item = &'a String>,
    warnings: &mut Vec<String>,
) {
    let mut with_vars: Vec<&str> = paths
        .filter(|p| p.contains("${"))
        .map(String::as_str)
        .collect();
    with_vars.dedup();
    if !with_vars.is_empty() {
        warnings.push(format!(
            "paths use moat variables ({}); moat expands them when it reads the result, other \
             {dialect} readers do not",
            with_vars.join(", ")
        ));
    }
}

/// Every port of the ranges, for formats that list single ports.
fn each_port(ranges: &[PortRange]) -> Vec<u16> {
    ranges.iter().flat_map(|r| r.ports()).collect()
}

/// A right by kernel name.
fn names<R: Right>(set: AccessSet<R>) -> Vec<Value> {
    set.iter().map(|r| Value::from(r.name())).collect()
}

fn pretty<T: Serialize>(value: &T) -> String {
    // Serialising these plain structures cannot fail; an empty object is the fallback.
    let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| "{}".to_string());
    let mut s = compact_scalar_arrays(&text);
    s.push('\n');
    s
}

/// Puts each array that holds only scalars on one line of pretty-printed JSON. A line ends
/// with `[` only where an array opens (string values end with `"`), so this is safe.
fn compact_scalar_arrays(pretty: &str) -> String {
    let lines: Vec<&str> = pretty.lines().collect();
    let mut out: Vec<String> = Vec::with_capacity(lines.len());
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if line.ends_with('[') {
            let mut items = Vec::new();
            let mut j = i + 1;
            while j < lines.len() {
                let t = lines[j].trim();
                if t.starts_with(']') || t.ends_with('[') || t.ends_with('{') || t == "{" {
                    break;
                }
                items.push(t);
                j += 1;
            }
            if let Some(close) = lines
                .get(j)
                .map(|l| l.trim())
                .filter(|t| t.starts_with(']'))
            {
                out.push(format!("{line}{}{close}", items.join(" ")));
                i = j + 1;
                continue;
            }
        }
        out.push(line.to_string());
        i += 1;
    }
    out.join("\n")
}

// ---------------------------------------------------------------------------------------
// landlockconfig

/// A path for landlockconfig: `${CWD}` becomes a relative path (landlockconfig resolves
/// those against the working directory), `$` is escaped, `${NAME}` references are kept.
fn lc_path(path: &str) -> String {
    if path == "${CWD}" {
        return ".".to_string();
    }
    if let Some(rest) = path.strip_prefix("${CWD}/") {
        return format!("./{}", lc_escape(rest));
    }
    lc_escape(path)
}

/// Escapes `$` for landlockconfig, keeping `${NAME}` references.
fn lc_escape(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut rest = path;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        let reference = after.strip_prefix("${").and_then(|t| {
            let end = t.find('}')?;
            let name = &t[..end];
            let ok = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            ok.then_some(end + 3)
        });
        match reference {
            Some(len) => {
                out.push_str(&after[..len]);
                rest = &after[len..];
            }
            None => {
                out.push_str("$$");
                rest = &after[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[derive(Serialize)]
struct LcRuleset {
    #[serde(rename = "handledAccessFs", skip_serializing_if = "Vec::is_empty")]
    fs: Vec<Value>,
    #[serde(rename = "handledAccessNet", skip_serializing_if = "Vec::is_empty")]
    net: Vec<Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    scoped: Vec<Value>,
}

#[derive(Serialize)]
struct LcPathBeneath {
    #[serde(rename = "allowedAccess")]
    allowed_access: Vec<Value>,
    parent: Vec<String>,
}

#[derive(Serialize)]
struct LcNetPort {
    #[serde(rename = "allowedAccess")]
    allowed_access: Vec<Value>,
    port: Vec<u16>,
}

#[derive(Serialize)]
struct LcConfig {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ruleset: Vec<LcRuleset>,
    #[serde(rename = "pathBeneath", skip_serializing_if = "Vec::is_empty")]
    path_beneath: Vec<LcPathBeneath>,
    #[serde(rename = "netPort", skip_serializing_if = "Vec::is_empty")]
    net_port: Vec<LcNetPort>,
}

/// Writes a policy as landlockconfig JSON (kernel right names, no ABI groups, one port per
/// entry of `port`).
///
/// landlockconfig cannot express a compatibility mode, which rights strict mode requires,
/// the socket seal, audit flags, environment settings or optional paths: each present in
/// the policy gives a warning. A policy that restricts nothing is a [`WriteError`]
/// (landlockconfig refuses an empty configuration).
pub fn to_landlockconfig_json(policy: &Policy) -> Result<Written, WriteError> {
    let dialect = "landlockconfig";
    let mut warnings = Vec::new();
    if let Some(c) = policy.compat {
        warnings.push(format!(
            "landlockconfig has no compatibility mode: `{}` is dropped (moat's default, or \
             the command line, decides)",
            c.name()
        ));
    }
    let p = plain(policy, dialect, true, &mut warnings);
    let ruleset = LcRuleset {
        fs: names(p.handled_fs),
        net: names(p.handled_net),
        scoped: names(policy.scopes),
    };
    let config = LcConfig {
        ruleset: if ruleset.fs.is_empty() && ruleset.net.is_empty() && ruleset.scoped.is_empty() {
            Vec::new()
        } else {
            vec![ruleset]
        },
        path_beneath: p
            .fs_rules
            .iter()
            .map(|(access, paths)| LcPathBeneath {
                allowed_access: names(*access),
                parent: paths.iter().map(|p| lc_path(p)).collect(),
            })
            .collect(),
        net_port: p
            .net_rules
            .iter()
            .map(|(access, ports)| LcNetPort {
                allowed_access: names(*access),
                port: each_port(ports),
            })
            .collect(),
    };
    variable_warning(
        dialect,
        config.path_beneath.iter().flat_map(|p| p.parent.iter()),
        &mut warnings,
    );
    if config.ruleset.is_empty() && config.path_beneath.is_empty() && config.net_port.is_empty() {
        return Err(WriteError::Inexpressible {
            dialect,
            reason: "the policy restricts nothing, and landlockconfig refuses an empty \
                     configuration"
                .to_string(),
        });
    }
    Ok(Written {
        text: pretty(&config),
        warnings,
    })
}

// ---------------------------------------------------------------------------------------
// OCI

/// Filesystem rights named in the proposals' text (ABI 1 to 3); newer ones are written as
/// their UAPI numbers, which both proposals' reviewers asked runtimes to accept.
fn oci_fs(set: FsAccess) -> Vec<Value> {
    set.iter()
        .map(|r| match r {
            FsRight::IoctlDev | FsRight::ResolveUnix => Value::from(r.bit()),
            _ => Value::from(r.name()),
        })
        .collect()
}

/// `bind` and `connect` for TCP; UDP rights as UAPI numbers.
fn oci_net(set: NetAccess) -> Vec<Value> {
    set.iter()
        .map(|r| match net_name(r) {
            Some(n) => Value::from(n),
            None => Value::from(r.bit()),
        })
        .collect()
}

#[derive(Serialize)]
struct OciPathBeneath {
    #[serde(rename = "allowedAccess")]
    allowed_access: Vec<Value>,
    paths: Vec<String>,
}

#[derive(Serialize)]
struct OciNetworkPort {
    #[serde(rename = "allowedAccess")]
    allowed_access: Vec<Value>,
    ports: Vec<u16>,
}

#[derive(Serialize)]
struct Oci1241Handled {
    #[serde(rename = "handledAccessFS", skip_serializing_if = "Vec::is_empty")]
    fs: Vec<Value>,
    #[serde(rename = "handledAccessNetwork", skip_serializing_if = "Vec::is_empty")]
    net: Vec<Value>,
}

#[derive(Serialize)]
struct Oci1241Rules {
    #[serde(rename = "pathBeneath", skip_serializing_if = "Vec::is_empty")]
    path_beneath: Vec<OciPathBeneath>,
    #[serde(rename = "networkPort", skip_serializing_if = "Vec::is_empty")]
    network_port: Vec<OciNetworkPort>,
}

#[derive(Serialize)]
struct Oci1241 {
    #[serde(rename = "handledAccess")]
    handled_access: Oci1241Handled,
    #[serde(skip_serializing_if = "Option::is_none")]
    rules: Option<Oci1241Rules>,
    #[serde(rename = "enableBestEffort", skip_serializing_if = "Option::is_none")]
    enable_best_effort: Option<bool>,
}

fn oci_paths(rules: &[(FsAccess, Vec<String>)]) -> Vec<OciPathBeneath> {
    rules
        .iter()
        .map(|(access, paths)| OciPathBeneath {
            allowed_access: oci_fs(*access),
            paths: paths.clone(),
        })
        .collect()
}

/// Writes a policy as the `process.landlock` object of OCI runtime-spec PR #1241.
///
/// `enableBestEffort` is written when the policy sets a compatibility mode (absent means
/// strict, as in moat). #1241 cannot express scopes, the socket seal, audit flags,
/// environment settings, optional paths or which rights strict mode requires: each present
/// in the policy gives a warning. `handledAccess` is always written, so that even a policy
/// that restricts nothing reads back as #1241.
pub fn to_oci_json(policy: &Policy) -> Result<Written, WriteError> {
    let mut warnings = Vec::new();
    let p = plain(policy, "OCI #1241", false, &mut warnings);
    variable_warning(
        "OCI #1241",
        p.fs_rules.iter().flat_map(|(_, paths)| paths.iter()),
        &mut warnings,
    );
    let rules = Oci1241Rules {
        path_beneath: oci_paths(&p.fs_rules),
        network_port: p
            .net_rules
            .iter()
            .map(|(access, ports)| OciNetworkPort {
                allowed_access: oci_net(*access),
                ports: each_port(ports),
            })
            .collect(),
    };
    let doc = Oci1241 {
        handled_access: Oci1241Handled {
            fs: oci_fs(p.handled_fs),
            net: oci_net(p.handled_net),
        },
        rules: (!rules.path_beneath.is_empty() || !rules.network_port.is_empty()).then_some(rules),
        enable_best_effort: policy.compat.map(|c| c == Compat::BestEffort),
    };
    Ok(Written {
        text: pretty(&doc),
        warnings,
    })
}

#[derive(Serialize)]
struct Oci1111Ruleset {
    #[serde(rename = "handledAccessFS")]
    fs: Vec<Value>,
}

#[derive(Serialize)]
struct Oci1111Rules {
    #[serde(rename = "pathBeneath")]
    path_beneath: Vec<OciPathBeneath>,
}

#[derive(Serialize)]
struct Oci1111 {
    ruleset: Oci1111Ruleset,
    #[serde(skip_serializing_if = "Option::is_none")]
    rules: Option<Oci1111Rules>,
    #[serde(rename = "disableBestEffort", skip_serializing_if = "Option::is_none")]
    disable_best_effort: Option<bool>,
}

/// Writes a policy as the `process.landlock` object of OCI runtime-spec PR #1111, which
/// restricts the filesystem only.
///
/// #1111 is best-effort unless `disableBestEffort` is true, so a policy without a
/// compatibility mode (strict in moat) is written with `"disableBestEffort": true`. Network
/// restrictions give a warning, besides everything [`to_oci_json`] warns about.
pub fn to_oci_1111_json(policy: &Policy) -> Result<Written, WriteError> {
    let mut warnings = Vec::new();
    let p = plain(policy, "OCI #1111", false, &mut warnings);
    variable_warning(
        "OCI #1111",
        p.fs_rules.iter().flat_map(|(_, paths)| paths.iter()),
        &mut warnings,
    );
    if !p.handled_net.is_empty() {
        warnings.push(format!(
            "OCI #1111 has no network rules: {} stop being restricted ({} port rule(s) \
             dropped)",
            p.handled_net,
            p.net_rules.len()
        ));
    }
    let doc = Oci1111 {
        ruleset: Oci1111Ruleset {
            fs: oci_fs(p.handled_fs),
        },
        rules: (!p.fs_rules.is_empty()).then(|| Oci1111Rules {
            path_beneath: oci_paths(&p.fs_rules),
        }),
        disable_best_effort: match policy.compat {
            Some(Compat::BestEffort) => None,
            Some(Compat::Strict) | None => Some(true),
        },
    };
    Ok(Written {
        text: pretty(&doc),
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialect::{parse_document, Document};
    use crate::rights::FsGroup;

    fn read(name: &str, text: &str) -> (Policy, Dialect) {
        match parse_document(&Document::new(name, text)) {
            Ok(x) => x,
            Err(e) => panic!("{e}\n--- text:\n{text}"),
        }
    }

    #[test]
    fn moat_round_trip_of_unix_exceptions_and_capabilities() {
        let (p, _) = read(
            "p.toml",
            "[filesystem]\nread = [\"/etc\"]\nunix = [\"/run/a.sock\"]\nexcept = [\"/etc/shadow\"]\n\
             [capabilities]\nkeep = [\"all\", \"CHOWN\"]\n",
        );
        let w = to_moat_toml(&p).unwrap();
        assert!(w.warnings.is_empty(), "{:?}", w.warnings);
        let (back, _) = read("back.toml", &w.text);
        assert_eq!(back.fs.except.len(), 1);
        assert_eq!(back.caps, p.caps);
        assert!(back
            .fs
            .rules
            .iter()
            .any(|r| r.path == "/run/a.sock" && r.access == FsAccess::of(&[FsRight::ResolveUnix])));
        let json = to_moat_json(&p).unwrap();
        let (back, _) = read("back.json", &json.text);
        assert_eq!(back.caps, p.caps);
        // Dialects without these say what they lose.
        let lc = to_landlockconfig_json(&p).unwrap();
        assert!(
            lc.warnings.iter().any(|w| w.contains("no path exceptions")),
            "{:?}",
            lc.warnings
        );
        assert!(
            lc.warnings
                .iter()
                .any(|w| w.contains("no capability settings")),
            "{:?}",
            lc.warnings
        );
    }

    #[test]
    fn moat_round_trip_of_a_preset() {
        let p = crate::presets::load("shell").unwrap();
        let w = to_moat_toml(&p).unwrap();
        assert!(w.warnings.is_empty(), "{:?}", w.warnings);
        let (back, d) = read("back.toml", &w.text);
        assert_eq!(d, Dialect::Moat);
        assert_eq!(back.fs.handled, p.fs.handled);
        assert_eq!(back.fs.required, p.fs.required);
        assert_eq!(back.fs.rules.len(), p.fs.rules.len());
        assert!(back.net.seal_sockets);
        assert_eq!(back.scopes, p.scopes);
    }

    #[test]
    fn moat_writes_handled_for_partial_policies() {
        let mut p = Policy::default();
        p.fs.handled = FsAccess::of(&[FsRight::Execute, FsRight::WriteFile]);
        p.fs.required = p.fs.handled;
        p.grant_paths(["/usr"], FsAccess::of(&[FsRight::Execute]), false, "t");
        let w = to_moat_toml(&p).unwrap();
        assert!(
            w.text.contains("handled = [\"execute\", \"write_file\"]"),
            "{}",
            w.text
        );
        let (back, _) = read("b.toml", &w.text);
        assert_eq!(back.fs.handled, p.fs.handled);
        assert_eq!(back.fs.required, p.fs.handled);
        assert!(back.net.handled.is_empty());
        assert!(!back.net.seal_sockets);
        assert!(back.scopes.is_empty());
    }

    #[test]
    fn lc_escapes_dollars_and_keeps_references() {
        assert_eq!(lc_path("/a/${HOME}/b"), "/a/${HOME}/b");
        assert_eq!(lc_path("/price$/x$$"), "/price$$/x$$$$");
        assert_eq!(lc_path("/x/${bad-name}"), "/x/$${bad-name}");
        assert_eq!(lc_path("${CWD}"), ".");
        assert_eq!(lc_path("${CWD}/a$"), "./a$$");
    }

    #[test]
    fn lc_and_oci_refuse_or_warn() {
        assert!(matches!(
            to_landlockconfig_json(&Policy::default()),
            Err(WriteError::Inexpressible { .. })
        ));
        let w = to_oci_json(&Policy::default()).unwrap();
        assert!(w.warnings.is_empty());
        let (back, d) = read("o.json", &w.text);
        assert_eq!(d, Dialect::OciPr1241);
        assert!(back.fs.handled.is_empty());

        let mut p = Policy::deny_all();
        p.grant_paths(["/usr"], FsGroup::ReadExec.access(), true, "t");
        let w = to_oci_json(&p).unwrap();
        let all = w.warnings.join("\n");
        assert!(all.contains("no scopes"), "{all}");
        assert!(all.contains("seccomp seal"), "{all}");
        assert!(all.contains("optional"), "{all}");
        assert!(all.contains("strict mode"), "{all}");
    }
}
