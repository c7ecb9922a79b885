//! Writing the model as either proposal's `process.landlock` object, through the wire
//! structs the reader uses.

use super::wire::{
    Handled1241, Landlock1111, Landlock1241, NetworkPort, OciPath, PathBeneath, Rules1111,
    Rules1241, Ruleset1111,
};
use crate::dialect::common::{PortSpec, Rights, Table};
use crate::dialect::plain::{each_port, plain, pretty, variable_warning};
use crate::model::{Compat, Policy};
use crate::ports::PortRange;
use crate::rights::FsAccess;
use crate::write::{WriteError, Written};

/// The path rules, one per access.
fn path_rules(rules: &[(FsAccess, Vec<String>)]) -> Vec<Table<PathBeneath>> {
    rules
        .iter()
        .map(|(access, paths)| {
            Table(PathBeneath {
                allowed_access: Some(Rights::new(*access)),
                paths: paths.iter().map(|p| OciPath(p.clone())).collect(),
            })
        })
        .collect()
}

/// Each port of the ranges, as #1241 lists single ports.
fn single_ports(ranges: &[PortRange]) -> Vec<PortSpec> {
    each_port(ranges)
        .into_iter()
        .map(|p| PortSpec(PortRange::single(p)))
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
    let rules = Rules1241 {
        path_beneath: path_rules(&p.fs_rules),
        network_port: p
            .net_rules
            .iter()
            .map(|(access, ports)| {
                Table(NetworkPort {
                    allowed_access: Some(Rights::new(*access)),
                    ports: single_ports(ports),
                })
            })
            .collect(),
    };
    let doc = Landlock1241 {
        handled_access: Some(Table(Handled1241 {
            fs: (!p.handled_fs.is_empty()).then(|| Rights::new(p.handled_fs)),
            net: (!p.handled_net.is_empty()).then(|| Rights::new(p.handled_net)),
        })),
        rules: (!rules.path_beneath.is_empty() || !rules.network_port.is_empty())
            .then_some(Table(rules)),
        enable_best_effort: policy.compat.map(|c| c == Compat::BestEffort),
    };
    Ok(Written {
        text: pretty(&doc),
        warnings,
    })
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
    let doc = Landlock1111 {
        // Written even when empty, so that the text reads back as #1111.
        ruleset: Some(Table(Ruleset1111 {
            fs: Some(Rights::new(p.handled_fs)),
        })),
        rules: (!p.fs_rules.is_empty()).then(|| {
            Table(Rules1111 {
                path_beneath: path_rules(&p.fs_rules),
            })
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
