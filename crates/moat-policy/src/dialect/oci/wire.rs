//! The wire structs of both proposals, read and written through the same types.

use crate::dialect::common::{
    check_path, checked_str, PortSpec, RightNames, Rights, Spelled, Table,
};
use crate::rights::{FsAccess, FsRight, NetAccess, NetRight, Right};
use serde::de::Deserializer;
use serde::{Deserialize, Serialize, Serializer};

/// Network right names of #1241: `bind` and `connect` (TCP), besides kernel names.
pub struct OciNetNames;

impl RightNames<NetRight> for OciNetNames {
    fn extra(name: &str) -> Option<NetAccess> {
        match crate::rights::normalise_name(name).as_str() {
            "bind" => Some(NetAccess::of(&[NetRight::BindTcp])),
            "connect" => Some(NetAccess::of(&[NetRight::ConnectTcp])),
            _ => None,
        }
    }
    fn extra_names() -> Vec<&'static str> {
        vec!["bind", "connect"]
    }
    /// `bind` and `connect` for TCP; UDP rights as UAPI numbers.
    fn spell(set: NetAccess) -> Vec<Spelled> {
        set.iter()
            .map(|r| match net_name(r) {
                Some(n) => Spelled::Name(n),
                None => Spelled::Number(r.bit()),
            })
            .collect()
    }
}

/// Filesystem rights: read by their kernel names; written by name when the proposals' text
/// names them (ABI 1 to 3), as UAPI numbers otherwise, which both proposals' reviewers
/// asked runtimes to accept.
pub struct OciFsNames;

impl RightNames<FsRight> for OciFsNames {
    fn extra(_: &str) -> Option<FsAccess> {
        None
    }
    fn extra_names() -> Vec<&'static str> {
        Vec::new()
    }
    fn spell(set: FsAccess) -> Vec<Spelled> {
        use FsRight::*;
        set.iter()
            .map(|r| match r {
                Execute | WriteFile | ReadFile | ReadDir | RemoveDir | RemoveFile | MakeChar
                | MakeDir | MakeReg | MakeSock | MakeFifo | MakeBlock | MakeSym | Refer
                | Truncate => Spelled::Name(r.name()),
                IoctlDev | ResolveUnix => Spelled::Number(r.bit()),
            })
            .collect()
    }
}

/// The #1241 name of a network right, when it has one.
pub fn net_name(r: NetRight) -> Option<&'static str> {
    match r {
        NetRight::BindTcp => Some("bind"),
        NetRight::ConnectTcp => Some("connect"),
        NetRight::BindUdp | NetRight::ConnectSendUdp => None,
    }
}

/// A path of a rule: absolute (moat also expands its `${VARIABLE}`s here).
pub(super) struct OciPath(pub(super) String);

impl Serialize for OciPath {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for OciPath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        checked_str(d, |s| check_path(s).map(|()| OciPath(s.to_string())))
    }
}

pub(super) type FsRights = Rights<FsRight, OciFsNames>;
pub(super) type NetRights = Rights<NetRight, OciNetNames>;

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[serde(expecting = "a path rule (a table with `allowedAccess` and `paths`)")]
pub(super) struct PathBeneath {
    #[serde(
        default,
        rename = "allowedAccess",
        skip_serializing_if = "Option::is_none"
    )]
    pub(super) allowed_access: Option<FsRights>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) paths: Vec<OciPath>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[serde(expecting = "a port rule (a table with `allowedAccess` and `ports`)")]
pub(super) struct NetworkPort {
    #[serde(
        default,
        rename = "allowedAccess",
        skip_serializing_if = "Option::is_none"
    )]
    pub(super) allowed_access: Option<NetRights>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) ports: Vec<PortSpec>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[serde(expecting = "a table of handled rights")]
pub(super) struct Handled1241 {
    #[serde(
        default,
        rename = "handledAccessFS",
        skip_serializing_if = "Option::is_none"
    )]
    pub(super) fs: Option<FsRights>,
    #[serde(
        default,
        rename = "handledAccessNetwork",
        skip_serializing_if = "Option::is_none"
    )]
    pub(super) net: Option<NetRights>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[serde(expecting = "a table of rules")]
pub(super) struct Rules1241 {
    #[serde(default, rename = "pathBeneath", skip_serializing_if = "Vec::is_empty")]
    pub(super) path_beneath: Vec<Table<PathBeneath>>,
    #[serde(default, rename = "networkPort", skip_serializing_if = "Vec::is_empty")]
    pub(super) network_port: Vec<Table<NetworkPort>>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[serde(expecting = "a Landlock policy (a table)")]
pub(super) struct Landlock1241 {
    #[serde(
        default,
        rename = "handledAccess",
        skip_serializing_if = "Option::is_none"
    )]
    pub(super) handled_access: Option<Table<Handled1241>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) rules: Option<Table<Rules1241>>,
    #[serde(
        default,
        rename = "enableBestEffort",
        skip_serializing_if = "Option::is_none"
    )]
    pub(super) enable_best_effort: Option<bool>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[serde(expecting = "a ruleset (a table of handled rights)")]
pub(super) struct Ruleset1111 {
    #[serde(
        default,
        rename = "handledAccessFS",
        skip_serializing_if = "Option::is_none"
    )]
    pub(super) fs: Option<FsRights>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[serde(expecting = "a table of rules")]
pub(super) struct Rules1111 {
    #[serde(default, rename = "pathBeneath", skip_serializing_if = "Vec::is_empty")]
    pub(super) path_beneath: Vec<Table<PathBeneath>>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[serde(expecting = "a Landlock policy (a table)")]
pub(super) struct Landlock1111 {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) ruleset: Option<Table<Ruleset1111>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) rules: Option<Table<Rules1111>>,
    #[serde(
        default,
        rename = "disableBestEffort",
        skip_serializing_if = "Option::is_none"
    )]
    pub(super) disable_best_effort: Option<bool>,
}

/// A whole `config.json`: everything but `process.landlock` is ignored.
#[derive(Deserialize)]
#[serde(expecting = "an OCI config.json (a table)")]
pub(super) struct ConfigJson<L> {
    pub(super) process: Option<Table<Process<L>>>,
}

#[derive(Deserialize)]
#[serde(expecting = "an OCI process (a table)")]
pub(super) struct Process<L> {
    pub(super) landlock: Option<Table<L>>,
}

/// Whether a parsed document is a whole `config.json` rather than the landlock object.
pub fn is_config_json(value: &serde_json::Value) -> bool {
    value
        .as_object()
        .is_some_and(|o| o.contains_key("ociVersion") || o.contains_key("process"))
}
