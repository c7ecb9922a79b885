//! Where a container's policy comes from, first found: `process.landlock` in config.json
//! (any dialect `moat run` reads); in Kubernetes, the annotation
//! `container.moat.dev/<container-name>` (written by the admission webhook, or by the pod
//! author for one container); the annotation `moat.dev/policy` (a policy document); the
//! annotation `moat.dev/preset` (a preset name); and, when the node is configured with
//! `ports_from_spec = true`, TCP bind limited to the Pod's declared containerPorts.
//! `moat.dev/compat` sets strict or best-effort when the policy itself does not say.
//! Sandbox (pause) containers are never confined.

use crate::config::{Config, ConfigError};
use crate::kube::{self, KubeError};
use moat_policy::annotations::{self, AnnotationError};
use moat_policy::{presets, Compat, Policy, PolicyError};

// The keys are the contract shared with the admission webhook (moat_policy::annotations).
pub use moat_policy::annotations::{
    COMPAT as COMPAT_ANNOTATION, CONFINED as CONFINED_ANNOTATION, EXPLAIN as EXPLAIN_ANNOTATION,
    POLICY as POLICY_ANNOTATION, PRESET as PRESET_ANNOTATION,
};

/// Annotations that mark a pod's sandbox (pause) container: containerd's and CRI-O's.
const SANDBOX_MARKERS: &[(&str, &str)] = &[
    ("io.kubernetes.cri.container-type", "sandbox"),
    ("io.kubernetes.cri-o.ContainerType", "sandbox"),
];

/// A policy that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// config.json is malformed.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The policy document is malformed or names something unknown.
    #[error("{origin}: {source}")]
    Policy {
        /// Where the policy came from.
        origin: &'static str,
        /// The parser's diagnostic.
        source: PolicyError,
    },
    /// A Kubernetes annotation is malformed.
    #[error(transparent)]
    Kube(#[from] KubeError),
    /// The per-container policy annotation does not parse.
    #[error("annotation {key}: {source}")]
    ContainerPolicy {
        /// `container.moat.dev/<name>`.
        key: String,
        /// The parser's diagnostic.
        source: PolicyError,
    },
    /// A `moat.dev/` annotation is unknown (a typo would leave a container open) or has a
    /// value moat does not accept.
    #[error(transparent)]
    Annotation(#[from] AnnotationError),
    /// `moat.dev/compat` without a policy to apply it to.
    #[error("annotation {COMPAT_ANNOTATION} is set but the container has no policy ({POLICY_ANNOTATION}, {PRESET_ANNOTATION} or process.landlock)")]
    CompatWithoutPolicy,
}

/// A container's policy and how strictly to enforce it.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The policy, with `compat` set.
    pub policy: Policy,
    /// Strict or best-effort.
    pub compat: Compat,
    /// Where it came from, for messages.
    pub origin: String,
    /// Report denials when the entrypoint ends (`moat.dev/explain: "true"`).
    pub explain: bool,
}

/// What the node's configuration adds to the annotations (see
/// [`crate::runtime_config::FileConfig`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeOptions {
    /// Derive TCP bind rules from `io.kubernetes.container.ports` for a Kubernetes
    /// container that names no policy.
    pub ports_from_spec: bool,
}

/// Whether the container is a pod's sandbox (pause) container.
pub fn is_sandbox(cfg: &Config) -> Result<bool, ConfigError> {
    let ann = cfg.annotations()?;
    Ok(SANDBOX_MARKERS
        .iter()
        .any(|(k, v)| ann.iter().any(|(ak, av)| ak == k && av == v)))
}

/// The container's policy, or `None` when it has none.
pub fn resolve(cfg: &Config, node: NodeOptions) -> Result<Option<Resolved>, SourceError> {
    let ann = cfg.annotations()?;
    let get = |key: &str| ann.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
    let pairs = ann.as_slice();
    annotations::check_keys(pairs)?;
    let compat_override = annotations::compat(pairs)?;

    // Both checked up front so a malformed value is refused whichever policy applies.
    annotations::flag(pairs, annotations::ENFORCE)?;
    let explain = annotations::flag(pairs, annotations::EXPLAIN)?.unwrap_or(false);
    let ports_from_spec = annotations::flag(pairs, annotations::PORTS_FROM_SPEC)?;
    let container_key = kube::container_name(&ann).map(annotations::container_key);

    let (policy, origin) = if let Some(landlock) = cfg.process_landlock() {
        const ORIGIN: &str = "config.json process.landlock";
        // The object is its own document: every dialect parses it, and messages point
        // into it.
        let text = serde_json::to_string_pretty(landlock).unwrap_or_default();
        let p = moat_policy::parse_str("process.landlock.json", &text).map_err(|source| {
            SourceError::Policy {
                origin: ORIGIN,
                source,
            }
        })?;
        (p, ORIGIN.to_string())
    } else if let Some((key, text)) = container_key
        .as_deref()
        .and_then(|key| get(key).map(|text| (key, text)))
    {
        let p =
            moat_policy::parse_str(key, text).map_err(|source| SourceError::ContainerPolicy {
                key: key.to_string(),
                source,
            })?;
        (p, format!("annotation {key}"))
    } else if let Some(text) = get(POLICY_ANNOTATION) {
        const ORIGIN: &str = "annotation moat.dev/policy";
        let p = moat_policy::parse_str(POLICY_ANNOTATION, text).map_err(|source| {
            SourceError::Policy {
                origin: ORIGIN,
                source,
            }
        })?;
        (p, ORIGIN.to_string())
    } else if let Some(name) = get(PRESET_ANNOTATION) {
        const ORIGIN: &str = "annotation moat.dev/preset";
        let p = presets::load(name.trim()).map_err(|source| SourceError::Policy {
            origin: ORIGIN,
            source,
        })?;
        (p, ORIGIN.to_string())
    } else if let Some(ports) = (node.ports_from_spec && ports_from_spec != Some(false))
        .then(|| kube::declared_tcp_ports(&ann))
        .transpose()?
        .flatten()
    {
        const ORIGIN: &str = "containerPorts (io.kubernetes.container.ports)";
        (Policy::bind_tcp_only(ports, ORIGIN), ORIGIN.to_string())
    } else if compat_override.is_some() {
        return Err(SourceError::CompatWithoutPolicy);
    } else {
        return Ok(None);
    };
    let mut policy = policy;
    let compat = policy.compat.or(compat_override).unwrap_or_default();
    policy.compat = Some(compat);
    // The runtime has applied the container's own capability set (config.json's
    // `process.capabilities`) by the time the launcher runs: a policy that names no set
    // leaves it as it is, one that names a set narrows it.
    if policy.caps.is_none() {
        policy.caps = Some(moat_policy::KeepCaps::ALL);
    }
    Ok(Some(Resolved {
        policy,
        compat,
        origin,
        explain,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(v: serde_json::Value) -> Config {
        Config::from_bytes("config.json".into(), serde_json::to_vec(&v).unwrap()).unwrap()
    }

    #[test]
    fn no_policy_is_none() {
        let c = cfg(serde_json::json!({"process":{"args":["sh"]},"annotations":{"x":"y"}}));
        assert!(resolve(&c, NodeOptions::default()).unwrap().is_none());
    }

    #[test]
    fn process_landlock_wins_over_annotations() {
        let c = cfg(serde_json::json!({
            "process":{"args":["sh"],"landlock":{
                "handledAccess":{"handledAccessFS":["read_file"]},
                "rules":{"pathBeneath":[{"allowedAccess":["read_file"],"paths":["/etc"]}]}}},
            "annotations":{"moat.dev/preset":"default"}}));
        let r = resolve(&c, NodeOptions::default()).unwrap().unwrap();
        assert_eq!(r.origin, "config.json process.landlock");
        assert_eq!(r.policy.fs.rules.len(), 1);
    }

    #[test]
    fn annotations_in_order_and_compat() {
        let c = cfg(serde_json::json!({"annotations":{
            "moat.dev/policy":"[filesystem]\nread = [\"/etc\"]\n",
            "moat.dev/preset":"nope",
            "moat.dev/compat":"best-effort"}}));
        let r = resolve(&c, NodeOptions::default()).unwrap().unwrap();
        assert_eq!(r.origin, "annotation moat.dev/policy");
        assert_eq!(r.compat, Compat::BestEffort);
        let c = cfg(serde_json::json!({"annotations":{"moat.dev/preset":"default"}}));
        assert_eq!(
            resolve(&c, NodeOptions::default()).unwrap().unwrap().compat,
            Compat::Strict
        );
    }

    #[test]
    fn bad_inputs_are_errors() {
        for ann in [
            serde_json::json!({"moat.dev/preset":"no-such-preset"}),
            serde_json::json!({"moat.dev/policy":"{not json"}),
            serde_json::json!({"moat.dev/policy":"[filesystem]\nrule = [{paths=[\"/x\"], rights=[\"fly\"]}]\n"}),
            serde_json::json!({"moat.dev/preset":"default","moat.dev/compat":"lenient"}),
            serde_json::json!({"moat.dev/polcy":"x"}),
            serde_json::json!({"moat.dev/compat":"strict"}),
        ] {
            let c = cfg(serde_json::json!({ "annotations": ann }));
            assert!(
                resolve(&c, NodeOptions::default()).is_err(),
                "{ann} should be refused"
            );
        }
    }

    fn pod_container(extra: serde_json::Value) -> Config {
        let mut ann = serde_json::json!({
            "io.kubernetes.cri.container-name": "web",
            "io.kubernetes.container.ports": r#"[{"containerPort":80,"protocol":"TCP"}]"#,
            "moat.dev/enforce": "true",
        });
        for (k, v) in extra.as_object().unwrap() {
            ann[k] = v.clone();
        }
        cfg(serde_json::json!({ "annotations": ann }))
    }

    const PORTS_ON: NodeOptions = NodeOptions {
        ports_from_spec: true,
    };

    #[test]
    fn kubernetes_container_policy_wins_over_pod_policy() {
        let c = pod_container(serde_json::json!({
            "container.moat.dev/web": "[network]\nbind_tcp = [80]\n",
            "container.moat.dev/sidecar": "not a policy [",
            "moat.dev/policy": "[filesystem]\nread = [\"/etc\"]\n",
        }));
        let r = resolve(&c, PORTS_ON).unwrap().unwrap();
        assert_eq!(r.origin, "annotation container.moat.dev/web");
        assert_eq!(r.policy.net.rules.len(), 1);
        // CRI-O's name annotation works the same.
        let c = cfg(serde_json::json!({"annotations":{
            "io.kubernetes.container.name": "web",
            "container.moat.dev/web": "[network]\nbind_tcp = [80]\n"}}));
        let r = resolve(&c, NodeOptions::default()).unwrap().unwrap();
        assert_eq!(r.origin, "annotation container.moat.dev/web");
        // A broken policy for this container is refused, naming the annotation.
        let c = pod_container(serde_json::json!({"container.moat.dev/web": "[network\n"}));
        let e = resolve(&c, PORTS_ON).unwrap_err().to_string();
        assert!(e.starts_with("annotation container.moat.dev/web: "), "{e}");
    }

    #[test]
    fn ports_from_spec_only_when_the_node_says_so() {
        let c = pod_container(serde_json::json!({}));
        assert!(resolve(&c, NodeOptions::default()).unwrap().is_none());
        let r = resolve(&c, PORTS_ON).unwrap().unwrap();
        assert_eq!(r.origin, "containerPorts (io.kubernetes.container.ports)");
        let bind = moat_policy::NetAccess::of(&[moat_policy::NetRight::BindTcp]);
        assert_eq!(r.policy.net.handled, bind);
        assert!(!r.policy.net.seal_sockets);
        assert!(r.policy.fs.handled.is_empty() && r.policy.scopes.is_empty());
        let ports: Vec<u16> = r
            .policy
            .net
            .rules
            .iter()
            .flat_map(|r| r.ports.ports())
            .collect();
        assert_eq!(ports, [80]);
        // The pod can turn it off; a malformed port list or flag is refused.
        let c = pod_container(serde_json::json!({"moat.dev/ports-from-spec": "false"}));
        assert!(resolve(&c, PORTS_ON).unwrap().is_none());
        for bad in [
            serde_json::json!({"moat.dev/ports-from-spec": "no"}),
            serde_json::json!({"moat.dev/enforce": "1"}),
            serde_json::json!({"io.kubernetes.container.ports": "[{\"containerPort\":99999}]"}),
        ] {
            assert!(
                resolve(&pod_container(bad.clone()), PORTS_ON).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn sandbox_containers() {
        let c =
            cfg(serde_json::json!({"annotations":{"io.kubernetes.cri.container-type":"sandbox"}}));
        assert!(is_sandbox(&c).unwrap());
        let c = cfg(
            serde_json::json!({"annotations":{"io.kubernetes.cri-o.ContainerType":"container"}}),
        );
        assert!(!is_sandbox(&c).unwrap());
    }
}
