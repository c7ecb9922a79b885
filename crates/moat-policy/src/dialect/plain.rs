//! What landlockconfig and OCI can say: handled rights and rules, nothing else. Their
//! writers share the reduction of a policy to that, with a warning for each part lost, and
//! the JSON layout.

use crate::model::Policy;
use crate::ports::PortRange;
use crate::rights::{FsAccess, NetAccess, NetRight};
use serde::Serialize;

/// The Landlock-only content of a policy, with rules grouped by their access.
pub(crate) struct Plain {
    pub(crate) handled_fs: FsAccess,
    pub(crate) handled_net: NetAccess,
    pub(crate) fs_rules: Vec<(FsAccess, Vec<String>)>,
    pub(crate) net_rules: Vec<(NetAccess, Vec<PortRange>)>,
}

/// Reduces a policy to handled rights and rules, warning about what `dialect` loses.
/// `names_scopes` says whether the target can hold scopes.
pub(crate) fn plain(
    policy: &Policy,
    dialect: &str,
    names_scopes: bool,
    warnings: &mut Vec<String>,
) -> Plain {
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
pub(crate) fn variable_warning<'a>(
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
pub(crate) fn each_port(ranges: &[PortRange]) -> Vec<u16> {
    ranges.iter().flat_map(|r| r.ports()).collect()
}

pub(crate) fn pretty<T: Serialize>(value: &T) -> String {
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
