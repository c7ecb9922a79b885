//! Writing the model as landlockconfig JSON, through the wire structs the reader uses.

use super::wire::{
    check_name, Access, Config, NetPort, NonEmpty, PathBeneath, Ruleset, RulesetRaw, Template,
    Token,
};
use crate::dialect::common::{PortSpec, Table};
use crate::dialect::plain::{each_port, plain, pretty, variable_warning};
use crate::model::Policy;
use crate::ports::PortRange;
use crate::rights::{AccessSet, Right};
use crate::write::{WriteError, Written};

/// A moat path as a landlockconfig template: `${CWD}` becomes a relative path
/// (landlockconfig resolves those against the working directory), other `${NAME}`
/// references stay references, and every other `$` is text (written doubled).
fn template(path: &str) -> Template {
    let (mut tokens, rest) = if path == "${CWD}" {
        (vec![Token::Text(".".to_string())], "")
    } else if let Some(rest) = path.strip_prefix("${CWD}/") {
        (vec![Token::Text("./".to_string())], rest)
    } else {
        (Vec::new(), path)
    };
    let mut rest = rest;
    while !rest.is_empty() {
        let reference = rest.strip_prefix("${").and_then(|t| {
            let end = t.find('}')?;
            check_name(&t[..end]).ok()?;
            Some((&t[..end], &t[end + 1..]))
        });
        match reference {
            Some((name, tail)) => {
                tokens.push(Token::Var(name.to_string()));
                rest = tail;
            }
            None => {
                // Text up to the next `$` after this character.
                let next = rest[1..].find('$').map_or(rest.len(), |i| i + 1);
                match tokens.last_mut() {
                    Some(Token::Text(t)) => t.push_str(&rest[..next]),
                    Some(Token::Var(_)) | None => {
                        tokens.push(Token::Text(rest[..next].to_string()))
                    }
                }
                rest = &rest[next..];
            }
        }
    }
    Template(tokens)
}

/// The template's text, as written in the document.
#[cfg(test)]
fn lc_path(path: &str) -> String {
    template(path).to_string()
}

/// A set as written, or nothing when it is empty.
fn access<R: Right>(set: AccessSet<R>) -> Option<Access<R>> {
    (!set.is_empty()).then(|| Access::fixed(set))
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
    let ruleset = RulesetRaw {
        handled_access_fs: access(p.handled_fs),
        handled_access_net: access(p.handled_net),
        scoped: access(policy.scopes),
    };
    let handles = ruleset.handled_access_fs.is_some()
        || ruleset.handled_access_net.is_some()
        || ruleset.scoped.is_some();
    let path_beneath: Vec<Table<PathBeneath>> = p
        .fs_rules
        .iter()
        .map(|(access, paths)| {
            Table(PathBeneath {
                allowed_access: Access::fixed(*access),
                parent: NonEmpty(paths.iter().map(|p| template(p)).collect()),
            })
        })
        .collect();
    let net_port: Vec<Table<NetPort>> = p
        .net_rules
        .iter()
        .map(|(access, ports)| {
            Table(NetPort {
                allowed_access: Access::fixed(*access),
                port: NonEmpty(
                    each_port(ports)
                        .into_iter()
                        .map(|p| PortSpec(PortRange::single(p)))
                        .collect(),
                ),
            })
        })
        .collect();
    // Warned about as written: `${CWD}` became a relative path, which needs no variable.
    let parents: Vec<String> = path_beneath
        .iter()
        .flat_map(|Table(pb)| pb.parent.0.iter().map(Template::to_string))
        .collect();
    variable_warning(dialect, parents.iter(), &mut warnings);
    if !handles && path_beneath.is_empty() && net_port.is_empty() {
        return Err(WriteError::Inexpressible {
            dialect,
            reason: "the policy restricts nothing, and landlockconfig refuses an empty \
                     configuration"
                .to_string(),
        });
    }
    let config = Config {
        abi: None,
        variable: None,
        ruleset: handles.then(|| NonEmpty(vec![Ruleset(ruleset)])),
        path_beneath: (!path_beneath.is_empty()).then_some(NonEmpty(path_beneath)),
        net_port: (!net_port.is_empty()).then_some(NonEmpty(net_port)),
    };
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
