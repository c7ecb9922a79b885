//! The moat document as written: the one type both the reader deserialises and the
//! writer serialises, in TOML, JSON and YAML alike.
//!
//! Each field's `Deserialize` checks its value as it is read, so that a mistake is reported
//! at its own position; `Serialize` writes what reads back as the same value, leaving out
//! what is at its default.

use super::VERSION;
use crate::caps::KeepCaps;
use crate::dialect::common::{
    checked_str, HandledNames, OneOrMany, PathEntry, PortSpec, Rights, Table, WithGroups,
};
use crate::model::Compat;
use crate::rights::{FsAccess, FsGroup, FsRight, NetRight};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;

/// The document as written.
#[derive(Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
#[serde(expecting = "a moat policy (a table)")]
pub(crate) struct MoatDoc {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) version: Option<FormatVersion>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) compat: Option<CompatName>,
    #[serde(
        default,
        deserialize_with = "preset_names",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub(super) presets: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) filesystem: Option<Table<FsDoc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) network: Option<Table<NetDoc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) scopes: Option<Table<ScopesDoc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) audit: Option<Table<AuditDoc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) env: Option<Table<EnvDoc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) capabilities: Option<Table<CapsDoc>>,
}

#[derive(Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
#[serde(expecting = "a table of capability settings")]
pub(super) struct CapsDoc {
    #[serde(default)]
    pub(super) keep: KeepList,
}

/// The `capabilities.keep` list, read one name at a time so that a typo is reported at
/// its own position, and written as [`KeepCaps::names`].
#[derive(Default)]
pub(super) struct KeepList(pub(super) KeepCaps);

impl<'de> Deserialize<'de> for KeepList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct CapName(KeepCaps);
        impl<'de> Deserialize<'de> for CapName {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                checked_str(d, |s| KeepCaps::parse([s]).map(CapName))
            }
        }
        Ok(KeepList(
            Vec::<CapName>::deserialize(d)?
                .into_iter()
                .fold(KeepCaps::default(), |k, c| k.union(c.0)),
        ))
    }
}

impl Serialize for KeepList {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.names().serialize(s)
    }
}

#[derive(Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
#[serde(expecting = "a table of filesystem settings")]
pub(super) struct FsDoc {
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(super) unrestricted: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) handled: Option<Rights<FsRight, HandledNames>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) read: Vec<PathEntry>,
    #[serde(default, alias = "read_execute", skip_serializing_if = "Vec::is_empty")]
    pub(super) read_exec: Vec<PathEntry>,
    #[serde(default, alias = "read_write", skip_serializing_if = "Vec::is_empty")]
    pub(super) write: Vec<PathEntry>,
    #[serde(
        default,
        alias = "read_write_exec",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub(super) write_exec: Vec<PathEntry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) unix: Vec<PathEntry>,
    #[serde(default, alias = "exceptions", skip_serializing_if = "Vec::is_empty")]
    pub(super) except: Vec<PathEntry>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(super) private_tmp: bool,
    #[serde(
        default,
        rename = "rule",
        alias = "rules",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub(super) rules: Vec<Table<FsRuleDoc>>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[serde(expecting = "a filesystem rule (a table with `paths` and `rights`)")]
pub(super) struct FsRuleDoc {
    #[serde(alias = "path")]
    pub(super) paths: OneOrMany<PathEntry>,
    #[serde(alias = "access")]
    pub(super) rights: Rights<FsRight, WithGroups>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(super) optional: bool,
}

#[derive(Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
#[serde(expecting = "a table of network settings")]
pub(super) struct NetDoc {
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(super) unrestricted: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) handled: Option<Rights<NetRight, HandledNames>>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(super) allow_udp: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) bind_tcp: Vec<PortSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) connect_tcp: Vec<PortSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) bind_udp: Vec<PortSpec>,
    #[serde(
        default,
        alias = "connect_send_udp",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub(super) connect_udp: Vec<PortSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) udp_ports_enforced_by: Option<Enforcer>,
}

impl FsDoc {
    /// The path lists the format names by intent: each key, the rights it grants, and its
    /// entries. The reader grants from them and the writer files rules into them.
    pub(super) fn lists_mut(&mut self) -> [(&'static str, FsAccess, &mut Vec<PathEntry>); 5] {
        [
            ("read", FsGroup::Read.access(), &mut self.read),
            ("read_exec", FsGroup::ReadExec.access(), &mut self.read_exec),
            ("write", FsGroup::ReadWrite.access(), &mut self.write),
            (
                "write_exec",
                FsGroup::ReadWriteExec.access(),
                &mut self.write_exec,
            ),
            ("unix", super::unix_access(), &mut self.unix),
        ]
    }
}

impl NetDoc {
    /// The port lists: each key, the right it grants, and its ports.
    pub(super) fn ports_mut(&mut self) -> [(&'static str, NetRight, &mut Vec<PortSpec>); 4] {
        [
            ("bind_tcp", NetRight::BindTcp, &mut self.bind_tcp),
            ("connect_tcp", NetRight::ConnectTcp, &mut self.connect_tcp),
            ("bind_udp", NetRight::BindUdp, &mut self.bind_udp),
            (
                "connect_udp",
                NetRight::ConnectSendUdp,
                &mut self.connect_udp,
            ),
        ]
    }
}

/// Who enforces a control outside the sandbox.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(expecting = "\"cgroup-bpf\"")]
pub(super) enum Enforcer {
    /// moat-runtime's cgroup BPF program.
    #[serde(rename = "cgroup-bpf")]
    CgroupBpf,
}

#[derive(Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
#[serde(expecting = "a table of scopes")]
pub(super) struct ScopesDoc {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) signal: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) abstract_unix_socket: Option<bool>,
}

#[derive(Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
#[serde(expecting = "a table of audit flags")]
pub(super) struct AuditDoc {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) log_same_exec: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) log_new_exec: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) log_subdomains: Option<bool>,
}

#[derive(Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
#[serde(expecting = "a table of environment settings")]
pub(super) struct EnvDoc {
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(super) clear: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) pass: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(super) set: BTreeMap<String, String>,
}

/// The `compat` key, by its name.
pub(super) struct CompatName(pub(super) Compat);

impl Serialize for CompatName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.name())
    }
}

/// The `version` key: checked as it is read, so that the error points at the number.
pub(super) struct FormatVersion;

impl Serialize for FormatVersion {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(VERSION)
    }
}

impl<'de> Deserialize<'de> for FormatVersion {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        fn check<E: de::Error>(ok: bool, v: impl fmt::Display) -> Result<FormatVersion, E> {
            if ok {
                return Ok(FormatVersion);
            }
            Err(E::custom(format!(
                "policy format version {v} is not supported (this moat reads version {VERSION})"
            )))
        }
        struct V;
        impl Visitor<'_> for V {
            type Value = FormatVersion;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "a format version number ({VERSION})")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<FormatVersion, E> {
                check(v == i64::from(VERSION), v)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<FormatVersion, E> {
                check(v == u64::from(VERSION), v)
            }
        }
        d.deserialize_any(V)
    }
}

/// The `presets` list: each name is checked as it is read, so that an unknown preset is
/// reported at its place in the document.
fn preset_names<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    struct Name(String);
    impl<'de> Deserialize<'de> for Name {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            checked_str(d, |s| match crate::presets::text(s) {
                Ok(_) => Ok(Name(s.to_string())),
                Err(e) => Err(e.to_string()),
            })
        }
    }
    Ok(Vec::<Name>::deserialize(d)?
        .into_iter()
        .map(|n| n.0)
        .collect())
}

impl<'de> Deserialize<'de> for CompatName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        checked_str(d, |s| {
            Compat::by_name(s).map(CompatName).ok_or_else(|| {
                format!("unknown compat mode `{s}` (write \"strict\" or \"best-effort\")")
            })
        })
    }
}
