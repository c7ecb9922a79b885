//! Writing the model as landlockconfig JSON.

use crate::dialect::plain::{each_port, names, plain, pretty, variable_warning};
use crate::model::Policy;
use crate::write::{WriteError, Written};
use serde::Serialize;
use serde_json::Value;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lc_escapes_dollars_and_keeps_references() {
        assert_eq!(lc_path("/a/${HOME}/b"), "/a/${HOME}/b");
        assert_eq!(lc_path("/price$/x$$"), "/price$$/x$$$$");
        assert_eq!(lc_path("/x/${bad-name}"), "/x/$${bad-name}");
        assert_eq!(lc_path("${CWD}"), ".");
        assert_eq!(lc_path("${CWD}/a$"), "./a$$");
    }
}
