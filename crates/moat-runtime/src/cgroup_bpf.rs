//! cgroup-bpf on the container's cgroup (crate `moat_cgroup`): network counters for every
//! confined container and every container annotated `moat.dev/observe: "true"`, and the
//! policy's UDP port rules when Landlock cannot enforce them (below ABI 10).
//!
//! The programs are attached before the real runtime runs: moat-runtime creates the
//! container's cgroup v2 directory where runc's cgroupfs driver will put it, attaches, and
//! then execs runc, which uses the existing directory. So the programs are in place
//! before the container's first process exists (for `run` as well as `create`), and no
//! process of the container ever runs without them. At `delete` the pins go; the programs
//! themselves go with the cgroup, which the runtime removes.

use crate::config::Config;
use crate::kube;
use moat_cgroup::{Info, Setup, UdpRules};
use moat_policy::{Abi, NetRight, Policy};
use std::path::{Path, PathBuf};

/// Why cgroup-bpf could not be set up for a container.
#[derive(Debug, thiserror::Error)]
pub enum CgroupBpfError {
    /// The kernel side failed.
    #[error("{what} for container `{id}`: {source}")]
    Attach {
        /// What was being set up.
        what: &'static str,
        /// The container.
        id: String,
        /// The error.
        source: moat_cgroup::Error,
    },
}

/// Whether the container asks to be observed (`moat.dev/observe: "true"`).
pub fn observed(cfg: &Config) -> Result<bool, crate::error::RuntimeError> {
    let ann = cfg.annotations()?;
    let flag = moat_policy::annotations::flag(ann.as_slice(), moat_policy::annotations::OBSERVE)
        .map_err(crate::policy_source::SourceError::from)?;
    Ok(flag == Some(true))
}

/// The UDP rules the cgroup must enforce for `policy` on a kernel at `abi`: `None` when
/// Landlock enforces them, or the policy has none (no UDP at all is the seccomp seal's).
pub fn udp_rules(policy: &Policy, abi: Abi) -> Option<UdpRules> {
    if abi >= Abi::V10 || policy.net.unrestricted || !policy.has_udp_port_rules() {
        return None;
    }
    let ports = |right| {
        policy
            .net
            .rules
            .iter()
            .filter(|r| r.access.contains(right))
            .map(|r| r.ports)
            .collect()
    };
    Some(UdpRules {
        bind: ports(NetRight::BindUdp),
        connect: ports(NetRight::ConnectSendUdp),
    })
}

/// The container's description: its cgroup as runc will place it, and the names the
/// CRI annotations give it.
pub fn info(cfg: &Config, id: &str, systemd_driver: bool) -> Result<Info, CgroupBpfError> {
    let fail = |source| CgroupBpfError::Attach {
        what: "finding the cgroup",
        id: id.to_string(),
        source,
    };
    if systemd_driver {
        return Err(fail(moat_cgroup::Error::SystemdDriver));
    }
    let mount = moat_cgroup::cgroup2_mount().map_err(fail)?;
    let path = cfg.value["linux"]["cgroupsPath"].as_str();
    // Only a relative path (or none) is placed below our own cgroup: an engine's absolute
    // one (containerd's, CRI-O's) spares reading /proc/self/cgroup.
    let own = match path {
        Some(p) if p.starts_with('/') => String::new(),
        _ => moat_cgroup::own_cgroup().map_err(fail)?,
    };
    let cgroup = moat_cgroup::container_dir(&mount, &own, path, id).map_err(fail)?;
    let ann = cfg.annotations().unwrap_or_default();
    let find = |keys: &[&str]| {
        keys.iter().find_map(|k| {
            ann.iter()
                .find(|(a, v)| a == k && !v.is_empty())
                .map(|(_, v)| v.to_string())
        })
    };
    Ok(Info {
        container_id: id.to_string(),
        cgroup,
        cgroup_id: 0,
        namespace: find(&[
            "io.kubernetes.cri.sandbox-namespace",
            "io.kubernetes.pod.namespace",
        ]),
        pod: find(&["io.kubernetes.cri.sandbox-name", "io.kubernetes.pod.name"]),
        // Labels of a metric, not a decision: either engine's key will do (the decisions
        // read only the running engine's, see `kube::Engine`).
        container: find(&[kube::CONTAINERD_NAME, kube::CRIO_NAME]),
    })
}

/// What was attached.
#[derive(Debug, Default)]
pub struct Attached {
    /// The counters, or why not.
    pub counters: Option<Result<(), CgroupBpfError>>,
    /// The UDP rules, or why not.
    pub udp: Option<Result<(), CgroupBpfError>>,
}

/// Attaches the counters and, when given, the UDP rules to the container's cgroup. An
/// error here is about the container as a whole (no cgroup, no bpffs); each part's own
/// failure is in [`Attached`] for the caller to weigh against the compatibility mode.
pub fn attach(
    info: &Info,
    counters: bool,
    udp: Option<UdpRules>,
) -> Result<Attached, CgroupBpfError> {
    let id = info.container_id.clone();
    let fail = |what| {
        let id = id.clone();
        move |source| CgroupBpfError::Attach { what, id, source }
    };
    moat_cgroup::ensure_bpffs().map_err(fail("mounting bpffs"))?;
    let setup = Setup::begin(Path::new(moat_cgroup::DEFAULT_ROOT), info)
        .map_err(fail("preparing cgroup-bpf"))?;
    Ok(Attached {
        counters: counters.then(|| setup.counters().map_err(fail("network counters"))),
        udp: udp.map(|r| setup.udp(r).map_err(fail("UDP port rules"))),
    })
}

/// What became of cgroup-bpf for a confined container.
#[derive(Debug, Default)]
pub struct Applied {
    /// The UDP port rules are attached (false too when there were none to attach).
    pub udp_enforced: bool,
    /// Best-effort mode: what is not enforced, and why, one sentence each.
    pub dropped: Vec<String>,
}

/// Attaches the counters and `udp` for a confined container (`info`: its description, or
/// why there is none) and weighs each failure against the compatibility mode: strict
/// mode refuses the container (after taking back what was made for it); best-effort
/// starts it and says what is not enforced.
pub fn apply(
    info: Result<Info, CgroupBpfError>,
    udp: Option<UdpRules>,
    best_effort: bool,
) -> Result<Applied, CgroupBpfError> {
    let wanted_udp = udp.is_some();
    let id = info.as_ref().ok().map(|i| i.container_id.clone());
    let attached = info.and_then(|info| attach(&info, true, udp));
    let mut out = Applied::default();
    let mut fail = |e: CgroupBpfError, what: &str, id: Option<&str>| {
        if !best_effort {
            if let Some(id) = id {
                abandon(id);
            }
            return Err(e);
        }
        out.dropped.push(format!("{what} not enforced: {e}"));
        Ok(())
    };
    match attached {
        Ok(a) => {
            if let Some(Err(e)) = a.counters {
                fail(e, "network counters", id.as_deref())?;
            }
            match a.udp {
                Some(Err(e)) => fail(e, "UDP port rules", id.as_deref())?,
                Some(Ok(())) => out.udp_enforced = true,
                None => {}
            }
        }
        Err(e) => {
            let what = if wanted_udp {
                "network counters and UDP port rules"
            } else {
                "network counters"
            };
            fail(e, what, id.as_deref())?;
        }
    }
    Ok(out)
}

/// A container's pin directory, found with its description read once.
pub struct Pinned {
    id: String,
    dir: PathBuf,
    /// The pinned description, when it can be read.
    info: Option<Info>,
}

/// The pins of container `id`, when it has any.
pub fn pinned(id: &str) -> Option<Pinned> {
    let dir = moat_cgroup::pin_dir(Path::new(moat_cgroup::DEFAULT_ROOT), id).ok()?;
    if !dir.exists() {
        return None;
    }
    let info = moat_cgroup::read_info(&dir).ok();
    Some(Pinned {
        id: id.to_string(),
        dir,
        info,
    })
}

impl Pinned {
    /// Whether the container still has processes in its cgroup or below (`populated` in
    /// cgroup.events). A cgroup that cannot be read, or pins without a description,
    /// count as running: the pins stay.
    pub fn running(&self) -> bool {
        let Some(info) = &self.info else {
            return true;
        };
        match moat_cgroup::sys::read_small(&info.cgroup.join("cgroup.events"), 256) {
            Ok(events) => !events.lines().any(|l| l.trim() == "populated 0"),
            Err(e) => e.kind() != std::io::ErrorKind::NotFound,
        }
    }

    /// Removes the pins and the container's entry in the node's map.
    pub fn forget(self) -> Result<(), CgroupBpfError> {
        moat_cgroup::remove_read(&self.dir, self.info.as_ref()).map_err(|source| {
            CgroupBpfError::Attach {
                what: "removing the pins",
                id: self.id,
                source,
            }
        })
    }
}

/// Undoes [`attach`] for a container that will not be created: its pins go, and its
/// cgroup directory when it is still empty (it was made for the container, and runc never
/// used it). Best effort: this runs on the way to reporting another error.
pub fn abandon(id: &str) {
    let Some(pins) = pinned(id) else {
        return;
    };
    if let Some(info) = &pins.info {
        let _ = std::fs::remove_dir(&info.cgroup);
    }
    let _ = pins.forget();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(text: &str) -> Config {
        Config::from_bytes("/x/config.json".into(), text.as_bytes().to_vec()).unwrap()
    }

    #[test]
    fn a_failure_refuses_strict_and_is_reported_in_best_effort() {
        let no_cgroup = || {
            Err(CgroupBpfError::Attach {
                what: "finding the cgroup",
                id: "c".into(),
                source: moat_cgroup::Error::SystemdDriver,
            })
        };
        let rules = || Some(UdpRules::default());
        assert!(apply(no_cgroup(), rules(), false).is_err());
        let a = apply(no_cgroup(), rules(), true).unwrap();
        assert!(!a.udp_enforced);
        assert_eq!(a.dropped.len(), 1);
        assert!(
            a.dropped[0].starts_with("network counters and UDP port rules not enforced: "),
            "{}",
            a.dropped[0]
        );
        let a = apply(no_cgroup(), None, true).unwrap();
        assert!(a.dropped[0].starts_with("network counters not enforced: "));
    }

    #[test]
    fn observe_annotation() {
        assert!(!observed(&cfg("{}")).unwrap());
        assert!(observed(&cfg(r#"{"annotations":{"moat.dev/observe":"true"}}"#)).unwrap());
        assert!(observed(&cfg(r#"{"annotations":{"moat.dev/observe":"yes"}}"#)).is_err());
    }

    #[test]
    fn udp_rules_only_below_abi_10() {
        let p = moat_policy::parse_str(
            "p.toml",
            "version = 1\n[network]\nconnect_udp = [53]\nbind_udp = [0, \"5000-5001\"]\n",
        )
        .unwrap();
        let r = udp_rules(&p, Abi::V7).unwrap();
        assert_eq!(r.connect.len(), 1);
        assert_eq!(r.bind.len(), 2);
        assert!(udp_rules(&p, Abi::V10).is_none());
    }
}
