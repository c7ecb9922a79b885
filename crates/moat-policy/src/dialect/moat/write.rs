//! Writing the model as a moat document: the policy becomes a [`MoatDoc`], which serde
//! writes in TOML, JSON or YAML. The reader deserialises the same type, so the formats
//! cannot drift apart from each other or from what moat reads.

use super::doc::{
    AuditDoc, CapsDoc, CompatName, Enforcer, EnvDoc, FormatVersion, FsDoc, FsRuleDoc, KeepList,
    MoatDoc, NetDoc, ScopesDoc,
};
use crate::dialect::common::{OneOrMany, PathEntry, PortSpec, Rights, Table};
use crate::model::{fs_baseline, Policy};
use crate::rights::{FsAccess, NetAccess, Scope, ScopeSet};
use crate::write::{WriteError, Written};
use std::collections::BTreeMap;

/// Writes a policy in moat's own TOML format.
///
/// Everything in the model has a moat spelling; the warnings are for a filesystem whose
/// strict-mode requirement is neither moat's ABI-3 baseline nor everything handled, and for
/// a network restricted to some rights with the socket seal on (moat writes either its
/// default, everything handled and sealed, or `handled = [...]`, which does not seal).
pub fn to_moat_toml(policy: &Policy) -> Result<Written, WriteError> {
    let (doc, warnings) = document(policy);
    let text = toml_text(&doc).map_err(|e| internal("moat TOML", e))?;
    Ok(Written { text, warnings })
}

/// The document as TOML, laid out as people write it: each domain a `[table]`, each
/// `[[filesystem.rule]]` a table of its own, and everything inside them inline, so that a
/// path with options stays in its list as `{ path = "...", optional = true }` (a TOML
/// serialiser left to itself turns a list of such tables into `[[...]]` sections).
fn toml_text(doc: &MoatDoc) -> Result<String, toml_edit::ser::Error> {
    use toml_edit::{ArrayOfTables, Item, Value};
    let mut out = toml_edit::ser::to_document(doc)?;
    for (key, item) in out.as_table_mut().iter_mut() {
        let Some(inline) = item.as_inline_table_mut() else {
            continue;
        };
        let mut table = std::mem::take(inline).into_table();
        if key == "filesystem" {
            if let Some(Item::Value(Value::Array(rules))) = table.get_mut("rule") {
                if rules.iter().all(Value::is_inline_table) {
                    let rules = std::mem::take(rules)
                        .into_iter()
                        .filter_map(|rule| match rule {
                            Value::InlineTable(t) => Some(t.into_table()),
                            // Not reached: every rule was just seen to be a table.
                            other => {
                                debug_assert!(other.is_inline_table());
                                None
                            }
                        });
                    table.insert("rule", Item::ArrayOfTables(ArrayOfTables::from_iter(rules)));
                }
            }
        }
        wrap_long_lists(&mut table);
        if let Some(rules) = table.get_mut("rule").and_then(Item::as_array_of_tables_mut) {
            rules.iter_mut().for_each(wrap_long_lists);
        }
        *item = Item::Table(table);
    }
    Ok(out.to_string())
}

/// Writes each list longer than a line (80 characters) one item a line.
fn wrap_long_lists(table: &mut toml_edit::Table) {
    for (_, item) in table.iter_mut() {
        let Some(list) = item.as_array_mut() else {
            continue;
        };
        if list.to_string().trim().len() <= 80 {
            continue;
        }
        for value in list.iter_mut() {
            value.decor_mut().set_prefix("\n  ");
            value.decor_mut().set_suffix("");
        }
        list.set_trailing_comma(true);
        list.set_trailing("\n");
    }
}

/// Writes a policy in moat's own format as compact JSON, on one line: the same document as
/// [`to_moat_toml`], for machines (the form that carries a policy from the webhook through
/// moat-runtime to the in-container launcher, docs/kubernetes.md).
pub fn to_moat_json(policy: &Policy) -> Result<Written, WriteError> {
    let (doc, warnings) = document(policy);
    let mut text = serde_json::to_string(&doc).map_err(|e| internal("moat JSON", e))?;
    text.push('\n');
    Ok(Written { text, warnings })
}

/// Writes a policy in moat's own format as YAML: the same document as [`to_moat_toml`].
pub fn to_moat_yaml(policy: &Policy) -> Result<Written, WriteError> {
    let (doc, warnings) = document(policy);
    let text = serde_norway::to_string(&doc).map_err(|e| internal("moat YAML", e))?;
    Ok(Written { text, warnings })
}

/// A serialiser that refuses the document: a bug in the document type, never the policy's.
fn internal(dialect: &'static str, e: impl std::fmt::Display) -> WriteError {
    WriteError::Inexpressible {
        dialect,
        reason: format!("internal: the document could not be serialised: {e}"),
    }
}

/// The document for `policy`, and what it does not say.
fn document(policy: &Policy) -> (MoatDoc, Vec<String>) {
    let mut warnings = Vec::new();
    let doc = MoatDoc {
        version: Some(FormatVersion),
        description: None,
        compat: policy.compat.map(CompatName),
        presets: Vec::new(),
        filesystem: filesystem(policy, &mut warnings).map(Table),
        network: network(policy, &mut warnings).map(Table),
        scopes: (policy.scopes != ScopeSet::all()).then(|| {
            Table(ScopesDoc {
                signal: Some(policy.scopes.contains(Scope::Signal)),
                abstract_unix_socket: Some(policy.scopes.contains(Scope::AbstractUnixSocket)),
            })
        }),
        audit: (!policy.audit.is_default()).then(|| {
            let a = policy.audit;
            Table(AuditDoc {
                log_same_exec: Some(a.log_same_exec),
                log_new_exec: Some(a.log_new_exec),
                log_subdomains: Some(a.log_subdomains),
            })
        }),
        env: env(policy, &mut warnings).map(Table),
        capabilities: policy.caps.map(|keep| {
            Table(CapsDoc {
                keep: KeepList(keep),
            })
        }),
    };
    (doc, warnings)
}

/// The `[filesystem]` table, when the policy differs from moat's default there.
fn filesystem(policy: &Policy, warnings: &mut Vec<String>) -> Option<FsDoc> {
    let fs = &policy.fs;
    let mut doc = FsDoc::default();
    if fs.unrestricted {
        doc.unrestricted = true;
        if !fs.rules.is_empty() {
            warnings.push(format!(
                "filesystem: the policy lifts every filesystem restriction, so its {} rule(s) \
                 mean nothing and are left out",
                fs.rules.len()
            ));
        }
        return Some(doc);
    }
    if fs.handled != FsAccess::all() || fs.required != fs_baseline() {
        doc.handled = Some(Rights::new(fs.handled));
        if fs.required != fs.handled {
            warnings.push(format!(
                "filesystem: strict mode required {} of the handled rights; with an explicit \
                 `handled` list it requires all of them ({})",
                fs.required, fs.handled
            ));
        }
    }
    let mut groups: Vec<(FsAccess, Vec<PathEntry>)> = Vec::new();
    {
        // A rule whose access is one of the format's lists goes there; any other access
        // gets a `[[filesystem.rule]]` of its own.
        let mut lists = doc.lists_mut();
        for rule in &fs.rules {
            let entry = PathEntry {
                path: rule.path.clone(),
                optional: rule.optional,
                within: rule.within.clone(),
            };
            match lists.iter_mut().find(|(_, a, _)| *a == rule.access) {
                Some((_, _, list)) => list.push(entry),
                None => match groups.iter_mut().find(|(a, _)| *a == rule.access) {
                    Some((_, paths)) => paths.push(entry),
                    None => groups.push((rule.access, vec![entry])),
                },
            }
        }
    }
    doc.except = fs
        .except
        .iter()
        .map(|e| PathEntry {
            path: e.path.clone(),
            optional: false,
            within: None,
        })
        .collect();
    doc.private_tmp = fs.private_tmp;
    doc.rules = groups
        .into_iter()
        .map(|(access, paths)| {
            Table(FsRuleDoc {
                paths: OneOrMany(paths),
                rights: Rights::new(access),
                optional: false,
            })
        })
        .collect();
    let default = doc.handled.is_none()
        && [
            &doc.read,
            &doc.read_exec,
            &doc.write,
            &doc.write_exec,
            &doc.unix,
            &doc.except,
        ]
        .iter()
        .all(|l| l.is_empty())
        && !doc.private_tmp
        && doc.rules.is_empty();
    (!default).then_some(doc)
}

/// The `[network]` table, when the policy differs from moat's default there.
fn network(policy: &Policy, warnings: &mut Vec<String>) -> Option<NetDoc> {
    let net = &policy.net;
    let mut doc = NetDoc::default();
    if net.unrestricted {
        doc.unrestricted = true;
        if !net.rules.is_empty() {
            warnings.push(format!(
                "network: the policy lifts every network restriction, so its {} port rule(s) \
                 mean nothing and are left out",
                net.rules.len()
            ));
        }
        return Some(doc);
    }
    if net.handled != NetAccess::all() || !net.seal_sockets {
        doc.handled = Some(Rights::new(net.handled));
        if net.seal_sockets {
            warnings.push(
                "network: the seccomp seal of sockets Landlock cannot see (raw, packet, SCTP, \
                 MPTCP, UDP before ABI 10) is not written: moat adds it only when the network \
                 is restricted without a `handled` list"
                    .to_string(),
            );
        }
    }
    doc.allow_udp = net.allow_udp;
    doc.udp_ports_enforced_by = net.udp_ports_by_cgroup.then_some(Enforcer::CgroupBpf);
    for (_, right, list) in doc.ports_mut() {
        *list = net
            .rules
            .iter()
            .filter(|r| r.access.contains(right))
            .map(|r| PortSpec(r.ports))
            .collect();
    }
    let default = doc.handled.is_none()
        && !doc.allow_udp
        && doc.udp_ports_enforced_by.is_none()
        && [
            &doc.bind_tcp,
            &doc.connect_tcp,
            &doc.bind_udp,
            &doc.connect_udp,
        ]
        .iter()
        .all(|l| l.is_empty());
    (!default).then_some(doc)
}

/// The `[env]` table, when the policy says anything about the environment. A variable set
/// twice keeps its last value, as the model does, with a warning.
fn env(policy: &Policy, warnings: &mut Vec<String>) -> Option<EnvDoc> {
    let env = &policy.env;
    if !env.clear && env.pass.is_empty() && env.set.is_empty() {
        return None;
    }
    let mut set = BTreeMap::new();
    for (k, v) in &env.set {
        if set.insert(k.clone(), v.clone()).is_some() {
            warnings.push(format!(
                "env: `{k}` is set twice; the last value (`{v}`) is kept"
            ));
        }
    }
    Some(EnvDoc {
        clear: env.clear,
        pass: env.pass.clone(),
        set,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rights::{FsGroup, FsRight, Right};

    #[test]
    fn toml_is_laid_out_as_people_write_it() {
        let mut p = Policy::deny_all();
        p.grant_paths(["/lib64"], FsGroup::ReadExec.access(), true, "t");
        p.grant_paths(["/dev/tty"], FsAccess::all(), true, "t");
        p.fs.handled = FsAccess::all();
        p.fs.required = FsAccess::all();
        let text = to_moat_toml(&p).unwrap().text;
        // A path with options stays in its list; a rule is a section of its own.
        assert!(
            text.contains("read_exec = [{ path = \"/lib64\", optional = true }]\n"),
            "{text}"
        );
        assert!(
            text.contains("[[filesystem.rule]]\npaths = [{ path = \"/dev/tty\", optional = true }]\nrights = [\n  \"execute\",\n"),
            "{text}"
        );
        // Handled lists may say "all"; granting lists name each right.
        assert!(text.contains("handled = [\"all\"]\n"), "{text}");
        assert!(
            text.contains(&format!("  \"{}\",\n]", FsRight::ResolveUnix.name())),
            "{text}"
        );
        let back = crate::parse_str("p.toml", &text).unwrap();
        assert_eq!(back.fs.rules.len(), 2);
        assert_eq!(back.fs.rules[1].access, FsAccess::all());
    }
}
