//! The landlockconfig format: the Landlock maintainers' configuration format
//! (<https://github.com/landlock-lsm/landlockconfig>), in JSON (camelCase keys) or TOML
//! (snake_case keys).
//!
//! ```toml
//! abi = 5
//!
//! [[variable]]
//! name = "tmp"
//! literal = ["/tmp", "/var/tmp"]
//!
//! [[ruleset]]
//! handled_access_fs = ["abi.all"]
//! handled_access_net = ["bind_tcp"]
//! scoped = ["signal"]
//!
//! [[path_beneath]]
//! allowed_access = ["abi.read_execute"]
//! parent = ["/usr", "/etc"]
//!
//! [[path_beneath]]
//! allowed_access = ["abi.read_write"]
//! parent = ["${tmp}"]
//!
//! [[net_port]]
//! allowed_access = ["bind_tcp"]
//! port = [8080]
//! ```
//!
//! Meaning, as in the reference implementation:
//! - only what the file handles is restricted: the handled rights are the union of every
//!   `ruleset` entry plus every right a `path_beneath` or `net_port` rule names (the
//!   reference implementation completes the handled set from the rules);
//! - `abi.all`, `abi.read_execute` and `abi.read_write` are the rights of the declared `abi`
//!   (`all`: every right of that ABI; `read_execute`: execute, read_file, read_dir and, from
//!   ABI 2, refer; `read_write`: every right of that ABI but execute). Older files write
//!   `v5.all`, `v5.read_execute`, ... with the ABI in the name; moat reads those too;
//! - a variable stands for a set of strings; a path using it becomes one rule per value;
//!   `$$` writes a literal `$`;
//! - a relative path is relative to the launcher's working directory (moat writes it as
//!   `${CWD}/...`).
//!
//! moat's additions: raw numeric UAPI values wherever a right name is, port ranges written
//! as `"8000-8010"`, and moat's built-in variables (`${HOME}`, `${CWD}`, `${TMPDIR}`,
//! `${USER}`, `${UID}`, `${GID}`) when the file does not define a variable of that name.
//!
//! The resulting policy handles exactly what the file handles, requires (in strict mode)
//! everything it handles, does not seal the sockets Landlock cannot see, and leaves the
//! compatibility mode to the command line.

mod wire;
mod write;

use wire::{Config, Ruleset, Template, Token};

pub use write::to_landlockconfig_json;

use super::common::{error_near, Table};
use super::{Document, Format};
use crate::abi::Abi;
use crate::error::PolicyError;
use crate::model::Policy;
use crate::ports::PortRange;
use crate::rights::{AccessSet, FsAccess, FsRight, NetAccess, NetRight, Right, Scope, ScopeSet};
use std::collections::{BTreeMap, BTreeSet};

/// The built-in variables moat resolves itself; a landlockconfig file may use them without
/// defining them.
pub const MOAT_VARIABLES: [&str; 6] = ["HOME", "CWD", "TMPDIR", "USER", "UID", "GID"];

/// A named group of rights whose content depends on an ABI version.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum AbiGroup {
    /// Every right of the ABI.
    All,
    /// Execute, read files and directories, and (from ABI 2) refer.
    ReadExecute,
    /// Every filesystem right of the ABI except execute.
    ReadWrite,
}

impl AbiGroup {
    /// The group's name after the `abi.` or `vN.` prefix.
    pub fn name(self) -> &'static str {
        match self {
            AbiGroup::All => "all",
            AbiGroup::ReadExecute => "read_execute",
            AbiGroup::ReadWrite => "read_write",
        }
    }

    fn by_name(name: &str) -> Option<AbiGroup> {
        [AbiGroup::All, AbiGroup::ReadExecute, AbiGroup::ReadWrite]
            .into_iter()
            .find(|g| g.name() == name)
    }
}

/// Rights that landlockconfig can name by ABI group.
pub trait GroupedRight: Right {
    /// The rights of group `g` for `abi`, or `None` when the group does not exist for this
    /// kind of right.
    fn group(g: AbiGroup, abi: Abi) -> Option<AccessSet<Self>>;
}

impl GroupedRight for FsRight {
    fn group(g: AbiGroup, abi: Abi) -> Option<FsAccess> {
        let all = FsAccess::supported_by(abi);
        Some(match g {
            AbiGroup::All => all,
            AbiGroup::ReadExecute => all.intersect(FsAccess::of(&[
                FsRight::Execute,
                FsRight::ReadFile,
                FsRight::ReadDir,
                FsRight::Refer,
            ])),
            AbiGroup::ReadWrite => all.minus(FsAccess::of(&[FsRight::Execute])),
        })
    }
}

impl GroupedRight for NetRight {
    fn group(g: AbiGroup, abi: Abi) -> Option<NetAccess> {
        (g == AbiGroup::All).then(|| NetAccess::supported_by(abi))
    }
}

impl GroupedRight for Scope {
    fn group(g: AbiGroup, abi: Abi) -> Option<ScopeSet> {
        (g == AbiGroup::All).then(|| ScopeSet::supported_by(abi))
    }
}

pub(super) fn group_names<R: GroupedRight>() -> Vec<&'static str> {
    [AbiGroup::All, AbiGroup::ReadExecute, AbiGroup::ReadWrite]
        .into_iter()
        .filter(|g| R::group(*g, Abi::LATEST).is_some())
        .map(AbiGroup::name)
        .collect()
}

/// Key spellings of the document's syntax, for messages.
struct Keys {
    path_beneath: &'static str,
    net_port: &'static str,
    allowed: &'static str,
    fs: &'static str,
    net: &'static str,
}

impl Keys {
    fn of(format: Format) -> Keys {
        match format {
            Format::Toml => Keys {
                path_beneath: "path_beneath",
                net_port: "net_port",
                allowed: "allowed_access",
                fs: "handled_access_fs",
                net: "handled_access_net",
            },
            Format::Json | Format::Yaml => Keys {
                path_beneath: "pathBeneath",
                net_port: "netPort",
                allowed: "allowedAccess",
                fs: "handledAccessFs",
                net: "handledAccessNet",
            },
        }
    }
}

/// Parses a landlockconfig document.
pub fn parse(doc: &Document<'_>) -> Result<Policy, PolicyError> {
    let Table(raw) = doc.deserialize::<Table<Config>>()?;
    if raw.variable.is_none()
        && raw.ruleset.is_none()
        && raw.path_beneath.is_none()
        && raw.net_port.is_none()
    {
        return Err(error_near(
            doc,
            "",
            &[],
            "empty configuration: give at least one of `variable`, `ruleset`, \
             `pathBeneath` or `netPort`",
        ));
    }
    let keys = Keys::of(doc.format);
    let abi = raw.abi.map(|a| a.0);
    let missing_abi = |key: String, section: &str, nth: usize, written: &str| {
        error_near(
            doc,
            &key,
            &[(section, 0), (keys.allowed, nth), (written, 0)],
            format!(
                "`{written}` depends on the ABI version, but the document declares no `abi` \
                 (add `abi = {}` at the top, or write `v{}.{}`)",
                Abi::LATEST,
                Abi::LATEST,
                written.split_once('.').map_or("all", |(_, g)| g)
            ),
        )
    };

    let mut vars: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for Table(v) in raw.variable.map(|v| v.0).unwrap_or_default() {
        let values = vars.entry(v.name.0).or_default();
        for lit in v.literal.map(|l| l.0).unwrap_or_default() {
            values.insert(lit.0);
        }
    }

    let mut policy = Policy::default();
    for (i, Ruleset(rs)) in raw
        .ruleset
        .map(|r| r.0)
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let fail = |field: &str, written: String| {
            error_near(
                doc,
                &format!("ruleset[{i}].{field}"),
                &[("ruleset", 0), (field, i), (&written, 0)],
                format!(
                    "`{written}` depends on the ABI version, but the document declares no \
                     `abi` (add `abi = {}` at the top)",
                    Abi::LATEST
                ),
            )
        };
        if let Some(a) = rs.handled_access_fs {
            let set = a.resolve(abi).map_err(|w| fail(keys.fs, w))?;
            policy.fs.handled = policy.fs.handled.union(set);
        }
        if let Some(a) = rs.handled_access_net {
            let set = a.resolve(abi).map_err(|w| fail(keys.net, w))?;
            policy.net.handled = policy.net.handled.union(set);
        }
        if let Some(a) = rs.scoped {
            let set = a.resolve(abi).map_err(|w| fail("scoped", w))?;
            policy.scopes = policy.scopes.union(set);
        }
    }

    for (i, Table(pb)) in raw
        .path_beneath
        .map(|p| p.0)
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let key = format!("{}[{i}].{}", keys.path_beneath, keys.allowed);
        let access = pb
            .allowed_access
            .resolve(abi)
            .map_err(|w| missing_abi(key, keys.path_beneath, i, &w))?;
        policy.fs.handled = policy.fs.handled.union(access);
        let origin = format!("{}: {}[{i}]", doc.name, keys.path_beneath);
        for (j, template) in pb.parent.0.iter().enumerate() {
            let key = format!("{}[{i}].parent[{j}]", keys.path_beneath);
            let paths = expand(template, &vars).map_err(|name| {
                error_near(
                    doc,
                    &key,
                    &[(&format!("${{{name}}}"), 0)],
                    format!(
                        "variable `{name}` is not defined (define it in a `variable` entry; \
                         moat also provides {})",
                        MOAT_VARIABLES.join(", ")
                    ),
                )
            })?;
            if access.is_empty() {
                continue;
            }
            policy.grant_paths(paths, access, false, &origin);
        }
    }

    for (i, Table(np)) in raw
        .net_port
        .map(|p| p.0)
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let key = format!("{}[{i}].{}", keys.net_port, keys.allowed);
        let access = np
            .allowed_access
            .resolve(abi)
            .map_err(|w| missing_abi(key, keys.net_port, i, &w))?;
        policy.net.handled = policy.net.handled.union(access);
        if access.is_empty() {
            continue;
        }
        let origin = format!("{}: {}[{i}]", doc.name, keys.net_port);
        let ranges = coalesce(np.port.0.into_iter().map(|p| p.0).collect());
        policy.grant_ports(ranges, access, &origin);
    }

    policy.fs.required = policy.fs.handled;
    Ok(policy)
}

/// Expands a template with the file's variables (each a set of values, taken in sorted
/// order) and keeps moat's own variables for later. A relative result is made relative to
/// `${CWD}`. `Err` names an undefined variable.
fn expand(
    template: &Template,
    vars: &BTreeMap<String, BTreeSet<String>>,
) -> Result<Vec<String>, String> {
    let mut results = vec![String::new()];
    for token in &template.0 {
        match token {
            Token::Text(t) => results.iter_mut().for_each(|r| r.push_str(t)),
            Token::Var(name) => match vars.get(name) {
                Some(values) => {
                    let mut next = Vec::with_capacity(results.len() * values.len());
                    for r in &results {
                        for v in values {
                            next.push(format!("{r}{v}"));
                        }
                    }
                    results = next;
                }
                None if MOAT_VARIABLES.contains(&name.as_str()) => {
                    results
                        .iter_mut()
                        .for_each(|r| r.push_str(&format!("${{{name}}}")));
                }
                None => return Err(name.clone()),
            },
        }
    }
    Ok(results
        .into_iter()
        .map(|p| crate::vars::under_cwd(&p))
        .collect())
}

/// Sorts ranges and merges those that overlap or touch.
pub(crate) fn coalesce(mut ranges: Vec<PortRange>) -> Vec<PortRange> {
    ranges.sort();
    let mut out: Vec<PortRange> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match out.last_mut() {
            Some(last) if u32::from(r.start) <= u32::from(last.end) + 1 => {
                last.end = last.end.max(r.end);
            }
            _ => out.push(r),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialect::{parse_document, Dialect};

    fn parse_lc(name: &str, text: &str) -> Result<Policy, PolicyError> {
        let (p, d) = parse_document(&Document::new(name, text))?;
        assert_eq!(d, Dialect::LandlockConfig);
        Ok(p)
    }

    fn err(name: &str, text: &str) -> String {
        match parse_lc(name, text) {
            Ok(p) => panic!("expected an error, got {p:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn groups_follow_the_abi() {
        let rx = |abi| FsRight::group(AbiGroup::ReadExecute, abi).unwrap_or_default();
        assert_eq!(
            rx(Abi::V1),
            FsAccess::of(&[FsRight::Execute, FsRight::ReadFile, FsRight::ReadDir])
        );
        assert!(rx(Abi::V2).contains(FsRight::Refer));
        let rw = FsRight::group(AbiGroup::ReadWrite, Abi::V1).unwrap_or_default();
        assert_eq!(rw.iter().count(), 12);
        assert!(!rw.contains(FsRight::Execute));
        assert!(NetRight::group(AbiGroup::ReadWrite, Abi::V4).is_none());
        assert!(NetRight::group(AbiGroup::All, Abi::V3)
            .unwrap_or_default()
            .is_empty());
        assert_eq!(Scope::group(AbiGroup::All, Abi::V6), Some(ScopeSet::all()));
    }

    #[test]
    fn json_example() {
        let p = parse_lc(
            "lc.json",
            r#"{
  "abi": 5,
  "ruleset": [{ "handledAccessFs": ["abi.all"], "handledAccessNet": ["bind_tcp"] }],
  "pathBeneath": [
    { "allowedAccess": ["abi.read_execute"], "parent": [".", "/usr"] },
    { "allowedAccess": ["abi.read_write"], "parent": ["/tmp"] }
  ],
  "netPort": [{ "allowedAccess": ["bind_tcp"], "port": [80, 443, 81] }]
}"#,
        )
        .unwrap();
        assert_eq!(p.fs.handled, FsAccess::supported_by(Abi::V5));
        assert_eq!(p.fs.required, p.fs.handled);
        assert_eq!(p.net.handled, NetAccess::of(&[NetRight::BindTcp]));
        assert!(p.scopes.is_empty());
        assert!(!p.net.seal_sockets);
        assert_eq!(p.compat, None);
        assert_eq!(p.fs.rules[0].path, "${CWD}");
        assert_eq!(p.fs.rules[1].path, "/usr");
        assert!(p.fs.rules[2].access.contains(FsRight::IoctlDev));
        assert!(!p.fs.rules[2].access.contains(FsRight::Execute));
        let ports: Vec<String> = p.net.rules.iter().map(|r| r.ports.to_string()).collect();
        assert_eq!(ports, ["80-81", "443"]);
    }

    #[test]
    fn toml_variables_and_legacy_groups() {
        let p = parse_lc(
            "lc.toml",
            r#"
[[variable]]
name = "tmp"
literal = ["/var/tmp", "/tmp"]

[[variable]]
name = "tmp"
literal = ["/run/tmp"]

[[path_beneath]]
allowed_access = ["v2.read_write"]
parent = ["${tmp}/x", "${HOME}/.cache", "price$$"]
"#,
        )
        .unwrap();
        let paths: Vec<&str> = p.fs.rules.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "/run/tmp/x",
                "/tmp/x",
                "/var/tmp/x",
                "${HOME}/.cache",
                "${CWD}/price$"
            ]
        );
        // Rules complete the handled set.
        assert_eq!(
            p.fs.handled,
            FsRight::group(AbiGroup::ReadWrite, Abi::V2).unwrap_or_default()
        );
    }

    #[test]
    fn raw_numbers_and_scopes() {
        let p = parse_lc(
            "lc.json",
            r#"{"ruleset": [{"handledAccessFs": [5, "truncate"], "scoped": ["signal"]}],
                "netPort": [{"allowedAccess": [2], "port": ["8000-8002"]}]}"#,
        )
        .unwrap();
        assert_eq!(
            p.fs.handled,
            FsAccess::of(&[FsRight::Execute, FsRight::ReadFile, FsRight::Truncate])
        );
        assert_eq!(p.scopes, ScopeSet::of(&[Scope::Signal]));
        assert_eq!(p.net.handled, NetAccess::of(&[NetRight::ConnectTcp]));
        assert_eq!(p.net.rules[0].ports.len(), 3);
    }

    #[test]
    fn errors_are_positioned() {
        let e = err(
            "lc.json",
            "{\n \"ruleset\": [{\"handledAccessFs\": [\"execute\", \"read_fil\"]}]\n}",
        );
        assert!(e.starts_with("lc.json:2:"), "{e}");
        assert!(e.contains("`ruleset[0].handledAccessFs[1]`"), "{e}");
        assert!(e.contains("unknown filesystem right `read_fil`"), "{e}");

        let e = err(
            "lc.toml",
            "[[path_beneath]]\nallowed_access = [\"abi.all\"]\nparent = [\"/usr\"]\n",
        );
        assert!(e.starts_with("lc.toml:2:20:"), "{e}");
        assert!(e.contains("`path_beneath[0].allowed_access`"), "{e}");
        assert!(e.contains("declares no `abi`"), "{e}");

        let e = err(
            "lc.toml",
            "[[path_beneath]]\nallowed_access = [\"execute\"]\nparent = [\"${nope}/x\"]\n",
        );
        assert!(e.starts_with("lc.toml:3:12:"), "{e}");
        assert!(e.contains("`path_beneath[0].parent[0]`"), "{e}");
        assert!(e.contains("variable `nope` is not defined"), "{e}");

        let e = err(
            "lc.json",
            "{\"abi\": 0, \"ruleset\": [{\"scoped\": [\"signal\"]}]}",
        );
        assert!(
            e.contains("`abi`") && e.contains("outside 1..=2147483647"),
            "{e}"
        );

        let e = err("lc.json", "{\"abi\": 1, \"ruleset\": [{}]}");
        assert!(e.contains("empty ruleset"), "{e}");

        let e = err(
            "lc.json",
            "{\"ruleset\": [{\"handledAccessFs\": [\"v11.all\"]}]}",
        );
        assert!(e.contains("moat knows ABI 1 to 10"), "{e}");

        let e = err(
            "lc.json",
            "{\"ruleset\": [{\"handledAccessNet\": [\"abi.read_write\"]}]}",
        );
        assert!(e.contains("unknown network right group"), "{e}");

        let e = err(
            "lc.json",
            "{\"variable\": [{\"name\": \"9x\", \"literal\": [\"/a\"]}]}",
        );
        assert!(e.contains("`variable[0].name`"), "{e}");
        assert!(e.contains("must start with an ASCII letter"), "{e}");
    }
}
