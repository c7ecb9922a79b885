//! OCI `process.landlock`, as proposed for the runtime-spec in pull requests #1241 and
//! #1111 (neither is merged; moat reads both shapes).
//!
//! #1241:
//!
//! ```json
//! {
//!   "handledAccess": {
//!     "handledAccessFS": ["execute", "read_file", "read_dir", "write_file"],
//!     "handledAccessNetwork": ["bind", "connect"]
//!   },
//!   "rules": {
//!     "pathBeneath": [{ "allowedAccess": ["execute", "read_file", "read_dir"], "paths": ["/usr"] }],
//!     "networkPort": [{ "allowedAccess": ["bind"], "ports": [8080] }]
//!   },
//!   "enableBestEffort": false
//! }
//! ```
//!
//! #1111 (filesystem only):
//!
//! ```json
//! {
//!   "ruleset": { "handledAccessFS": ["execute", "read_file", "write_file"] },
//!   "rules": { "pathBeneath": [{ "allowedAccess": ["read_file"], "paths": ["/etc"] }] },
//!   "disableBestEffort": true
//! }
//! ```
//!
//! The document is either that object or a whole `config.json`, whose other fields are
//! ignored. Filesystem rights are the kernel names (`execute`, `write_file`, `make_char`,
//! ...); network rights are `bind` and `connect` (TCP), or the kernel names. A raw UAPI
//! number is accepted wherever a right name is, as the reviewers of both proposals asked.
//!
//! Meaning: only the handled rights are restricted; a rule may only grant handled rights
//! (the kernel refuses anything else). Compatibility: #1241 is strict unless
//! `enableBestEffort` is true; #1111 is best-effort unless `disableBestEffort` is true (its
//! text: "Default is false, i.e., following a best-effort security approach").

mod wire;
mod write;

pub use wire::{is_config_json, net_name, OciFsNames, OciNetNames};
pub use write::{to_oci_1111_json, to_oci_json};

use super::common::{error_near, right_from_name, Table};
use super::{Dialect, Document};
use crate::error::PolicyError;
use crate::model::{Compat, Policy};
use crate::rights::{FsAccess, FsRight, NetAccess, NetRight, Right};
use wire::{ConfigJson, Landlock1111, Landlock1241, NetworkPort, PathBeneath};

/// The dialect-neutral content of either proposal.
struct Landlock {
    handled_fs: FsAccess,
    handled_net: NetAccess,
    path_beneath: Vec<Table<PathBeneath>>,
    network_port: Vec<Table<NetworkPort>>,
    compat: Option<Compat>,
}

impl From<Landlock1241> for Landlock {
    fn from(l: Landlock1241) -> Landlock {
        let (fs, net) = l
            .handled_access
            .map_or((None, None), |Table(h)| (h.fs, h.net));
        let (pb, np) = l.rules.map_or((Vec::new(), Vec::new()), |Table(r)| {
            (r.path_beneath, r.network_port)
        });
        Landlock {
            handled_fs: fs.map(|r| r.0).unwrap_or_default(),
            handled_net: net.map(|r| r.0).unwrap_or_default(),
            path_beneath: pb,
            network_port: np,
            compat: l.enable_best_effort.map(|b| {
                if b {
                    Compat::BestEffort
                } else {
                    Compat::Strict
                }
            }),
        }
    }
}

impl From<Landlock1111> for Landlock {
    fn from(l: Landlock1111) -> Landlock {
        Landlock {
            handled_fs: l
                .ruleset
                .and_then(|Table(r)| r.fs)
                .map(|r| r.0)
                .unwrap_or_default(),
            handled_net: NetAccess::EMPTY,
            path_beneath: l.rules.map(|Table(r)| r.path_beneath).unwrap_or_default(),
            network_port: Vec::new(),
            compat: Some(if l.disable_best_effort == Some(true) {
                Compat::Strict
            } else {
                Compat::BestEffort
            }),
        }
    }
}

fn read<L>(doc: &Document<'_>, whole: bool) -> Result<Option<L>, PolicyError>
where
    L: serde::de::DeserializeOwned,
{
    if whole {
        let Table(c) = doc.deserialize::<Table<ConfigJson<L>>>()?;
        Ok(c.process.and_then(|Table(p)| p.landlock).map(|Table(l)| l))
    } else {
        doc.deserialize().map(|Table(l)| Some(l))
    }
}

/// Parses an OCI `process.landlock` document of the given proposal (a whole `config.json`
/// or the landlock object alone).
pub fn parse(doc: &Document<'_>, dialect: Dialect) -> Result<Policy, PolicyError> {
    let whole = is_config_json(&doc.value()?);
    let landlock: Option<Landlock> = match dialect {
        Dialect::OciPr1111 => read::<Landlock1111>(doc, whole)?.map(Landlock::from),
        Dialect::OciPr1241 | Dialect::Moat | Dialect::LandlockConfig => {
            read::<Landlock1241>(doc, whole)?.map(Landlock::from)
        }
    };
    let Some(l) = landlock else {
        return Err(error_near(
            doc,
            "process.landlock",
            &[("\"process\"", 0)],
            "this config.json has no `process.landlock` object, so it holds no Landlock policy",
        ));
    };
    let prefix = if whole { "process.landlock." } else { "" };
    let handled_key = match dialect {
        Dialect::OciPr1111 => "ruleset.handledAccessFS",
        Dialect::OciPr1241 | Dialect::Moat | Dialect::LandlockConfig => {
            "handledAccess.handledAccessFS"
        }
    };

    let mut policy = Policy {
        compat: l.compat,
        ..Policy::default()
    };
    policy.fs.handled = l.handled_fs;
    policy.fs.required = l.handled_fs;
    policy.net.handled = l.handled_net;

    for (i, Table(pb)) in l.path_beneath.into_iter().enumerate() {
        let access = pb.allowed_access.map(|r| r.0).unwrap_or_default();
        let key = format!("{prefix}rules.pathBeneath[{i}].allowedAccess");
        check_handled(doc, &key, i, access, l.handled_fs, handled_key)?;
        if access.is_empty() {
            continue;
        }
        let origin = format!("{}: {prefix}rules.pathBeneath[{i}]", doc.name);
        policy.grant_paths(pb.paths.into_iter().map(|p| p.0), access, false, &origin);
    }
    for (i, Table(np)) in l.network_port.into_iter().enumerate() {
        let access = np.allowed_access.map(|r| r.0).unwrap_or_default();
        let key = format!("{prefix}rules.networkPort[{i}].allowedAccess");
        check_handled(
            doc,
            &key,
            i,
            access,
            l.handled_net,
            "handledAccess.handledAccessNetwork",
        )?;
        if access.is_empty() {
            continue;
        }
        let origin = format!("{}: {prefix}rules.networkPort[{i}]", doc.name);
        let ranges =
            crate::dialect::landlockconfig::coalesce(np.ports.into_iter().map(|p| p.0).collect());
        policy.grant_ports(ranges, access, &origin);
    }
    Ok(policy)
}

/// Refuses a rule that grants rights the ruleset does not handle, as the kernel would.
fn check_handled<R: Right>(
    doc: &Document<'_>,
    key: &str,
    nth: usize,
    access: crate::rights::AccessSet<R>,
    handled: crate::rights::AccessSet<R>,
    handled_key: &str,
) -> Result<(), PolicyError> {
    let extra = access.minus(handled);
    let Some(first) = extra.iter().next() else {
        return Ok(());
    };
    let section = if R::KIND == FsRight::KIND {
        "\"pathBeneath\""
    } else {
        "\"networkPort\""
    };
    Err(error_near(
        doc,
        key,
        &[
            ("\"rules\"", 0),
            (section, 0),
            ("\"allowedAccess\"", nth),
            (first.name(), 0),
        ],
        format!(
            "grants {extra}, which `{handled_key}` does not handle; the kernel refuses a rule \
             for unhandled rights (add them to `{handled_key}` or remove them here)"
        ),
    ))
}

/// Checks that a name is one this dialect reads (for writers and tests).
pub fn knows_net_name(name: &str) -> bool {
    right_from_name::<NetRight, OciNetNames>(name).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialect::parse_document;
    use crate::ports::PortRange;

    fn parse_oci(name: &str, text: &str) -> Result<(Policy, Dialect), PolicyError> {
        parse_document(&Document::new(name, text))
    }

    fn err(text: &str) -> String {
        match parse_oci("c.json", text) {
            Ok(p) => panic!("expected an error, got {p:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn pr1241_object() {
        let (p, d) = parse_oci(
            "l.json",
            r#"{
  "handledAccess": {
    "handledAccessFS": ["execute", "read_file", "read_dir", "write_file", 16384],
    "handledAccessNetwork": ["bind", "connect"]
  },
  "rules": {
    "pathBeneath": [{ "allowedAccess": ["execute", "read_file", "read_dir"], "paths": ["/usr", "/bin"] }],
    "networkPort": [{ "allowedAccess": ["bind"], "ports": [8080, 8081] }]
  },
  "enableBestEffort": true
}"#,
        )
        .unwrap();
        assert_eq!(d, Dialect::OciPr1241);
        assert_eq!(p.compat, Some(Compat::BestEffort));
        assert!(p.fs.handled.contains(FsRight::Truncate));
        assert_eq!(p.fs.required, p.fs.handled);
        assert_eq!(p.fs.rules.len(), 2);
        assert_eq!(
            p.net.handled,
            NetAccess::of(&[NetRight::BindTcp, NetRight::ConnectTcp])
        );
        assert_eq!(
            p.net.rules[0].ports,
            PortRange {
                start: 8080,
                end: 8081
            }
        );
        assert!(!p.net.seal_sockets);
        assert!(p.scopes.is_empty());
    }

    #[test]
    fn pr1111_in_config_json() {
        let (p, d) = parse_oci(
            "config.json",
            r#"{"ociVersion": "1.2.0", "root": {"path": "rootfs"},
                "process": {"args": ["sh"], "cwd": "/",
                  "landlock": {
                    "ruleset": {"handledAccessFS": ["read_file", "write_file"]},
                    "rules": {"pathBeneath": [{"allowedAccess": ["read_file"], "paths": ["/etc"]}]}
                  }}}"#,
        )
        .unwrap();
        assert_eq!(d, Dialect::OciPr1111);
        assert_eq!(p.compat, Some(Compat::BestEffort));
        assert_eq!(p.fs.rules[0].path, "/etc");
        assert!(p.net.handled.is_empty());

        let (p, _) = parse_oci(
            "l.json",
            r#"{"ruleset": {"handledAccessFS": ["read_file"]}, "disableBestEffort": true}"#,
        )
        .unwrap();
        assert_eq!(p.compat, Some(Compat::Strict));
    }

    #[test]
    fn compat_defaults() {
        let (p, _) = parse_oci("l.json", r#"{"handledAccess": {}}"#).unwrap();
        assert_eq!(p.compat, None);
        assert!(p.fs.handled.is_empty());
        let (p, _) = parse_oci(
            "l.json",
            r#"{"handledAccess": {}, "enableBestEffort": false}"#,
        )
        .unwrap();
        assert_eq!(p.compat, Some(Compat::Strict));
    }

    #[test]
    fn errors() {
        let e = err(r#"{"handledAccess": {"handledAccessFS": ["read_file", "mke_dir"]}}"#);
        assert!(e.starts_with("c.json:1:"), "{e}");
        assert!(e.contains("`handledAccess.handledAccessFS[1]`"), "{e}");
        assert!(e.contains("unknown filesystem right `mke_dir`"), "{e}");

        let e = err(
            "{\"handledAccess\": {\"handledAccessFS\": [\"read_file\"]},\n \"rules\": {\"pathBeneath\": [{\"allowedAccess\": [\"read_file\", \"make_dir\"], \"paths\": [\"/x\"]}]}}",
        );
        assert!(e.starts_with("c.json:2:"), "{e}");
        assert!(e.contains("`rules.pathBeneath[0].allowedAccess`"), "{e}");
        assert!(e.contains("grants make_dir"), "{e}");

        let e = err(
            r#"{"handledAccess": {"handledAccessNetwork": ["bind"]}, "rules": {"networkPort": [{"allowedAccess": ["bind"], "ports": [65536]}]}}"#,
        );
        assert!(e.contains("`rules.networkPort[0].ports[0]`"), "{e}");
        assert!(e.contains("port 65536 is outside"), "{e}");

        let e = err(
            r#"{"ociVersion": "1.0.0", "process": {"landlock": {"handledAccess": {"bogus": 1}}}}"#,
        );
        assert!(e.contains("`process.landlock.handledAccess.bogus`"), "{e}");
        assert!(e.contains("unknown field `bogus`"), "{e}");

        let e = err(r#"{"ociVersion": "1.0.0", "process": {"args": ["sh"]}}"#);
        assert!(e.starts_with("c.json:1:"), "{e}");
        assert!(e.contains("no `process.landlock`"), "{e}");

        let e = err(
            r#"{"handledAccess": {"handledAccessFS": "read_file"}, "enableBestEffort": "yes"}"#,
        );
        assert!(e.contains("`enableBestEffort`"), "{e}");
        assert!(e.contains("invalid type"), "{e}");
    }

    #[test]
    fn names() {
        assert!(knows_net_name("bind"));
        assert!(knows_net_name("connect_tcp"));
        assert!(knows_net_name("2"));
        assert!(!knows_net_name("listen"));
        assert_eq!(net_name(NetRight::ConnectTcp), Some("connect"));
    }
}
