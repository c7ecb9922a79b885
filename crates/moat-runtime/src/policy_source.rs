//! Where a container's policy comes from, first found: `process.landlock` in config.json
//! (any dialect `moat run` reads); in Kubernetes, the annotation
//! `container.moat.dev/<container-name>` (written by the admission webhook, or by the pod
//! author for one container); the annotation `moat.dev/policy` (a policy document); the
//! annotation `moat.dev/preset` (a preset name). A Kubernetes container (one containerd or
//! CRI-O built, see [`Engine`]) that names none of these gets the node's default instead:
//! TCP bind limited to the Pod's declared containerPorts, or a refusal, as the node's
//! configuration says ([`WithoutPolicy`]); it never runs unconfined. A standalone container
//! (runc, podman) without a policy is passed through untouched.
//! `moat.dev/compat` sets strict or best-effort when the policy itself does not say.
//! Sandbox (pause) containers are never confined; they are recognised by the key of the
//! engine that actually built the config.json, never by the other engine's key, which a
//! pod can supply under CRI-O.

use crate::config::{Config, ConfigError};
use crate::kube::{self, Engine, KubeError};
use moat_policy::annotations::{self, AnnotationError};
use moat_policy::{presets, Compat, Policy, PolicyError};

// The keys are the contract shared with the admission webhook (moat_policy::annotations).
pub use moat_policy::annotations::{
    COMPAT as COMPAT_ANNOTATION, CONFINED as CONFINED_ANNOTATION, POLICY as POLICY_ANNOTATION,
    PRESET as PRESET_ANNOTATION,
};

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
    /// A Kubernetes container without a policy on a node that refuses those.
    #[error("container `{container}` names no moat policy, and this node refuses such containers under the moat runtime handler (`without_policy = \"refuse\"` in moat-runtime's configuration): give the pod a policy (moat's admission webhook writes one) or run it under another RuntimeClass")]
    Refused {
        /// The container's name, as its engine recorded it.
        container: String,
    },
}

/// What a node does with a Kubernetes container that names no policy (`without_policy` in
/// moat-runtime's configuration). Never "run it unconfined": that is what another
/// RuntimeClass is for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum WithoutPolicy {
    /// Confine it to binding the TCP ports its Pod declares (`io.kubernetes.container.ports`;
    /// none when the annotation is missing), nothing else restricted. The default.
    #[default]
    Ports,
    /// Refuse to start it.
    Refuse,
}

impl WithoutPolicy {
    /// The configuration file's names, in order.
    pub const NAMES: [&'static str; 2] = ["ports", "refuse"];

    /// Parses a configuration value.
    pub fn parse(s: &str) -> Option<WithoutPolicy> {
        match s {
            "ports" => Some(WithoutPolicy::Ports),
            "refuse" => Some(WithoutPolicy::Refuse),
            _ => None,
        }
    }
}

/// What moat-runtime does with a container.
#[derive(Debug, Clone)]
pub enum Decision {
    /// Hand it to the real runtime untouched: a pod's sandbox (pause) container, or a
    /// standalone container without a policy.
    PassThrough,
    /// Confine it.
    Confine(Box<Resolved>),
}

/// A container's policy and how strictly to enforce it.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The policy, with `compat` set.
    pub policy: Policy,
    /// Strict or best-effort.
    pub compat: Compat,
    /// Where it came from (the tests check it).
    #[cfg_attr(not(test), allow(dead_code))]
    pub origin: String,
    /// Report denials when the entrypoint ends (`moat.dev/explain: "true"`).
    pub explain: bool,
}

/// What the node's configuration adds to the annotations (see
/// [`crate::runtime_config::FileConfig`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeOptions {
    /// What a Kubernetes container that names no policy gets.
    pub without_policy: WithoutPolicy,
}

/// Whether the container is a pod's sandbox (pause) container, by its engine's own key.
#[cfg(test)]
fn is_sandbox(cfg: &Config) -> Result<bool, ConfigError> {
    let ann = cfg.annotations()?;
    Ok(Engine::of(&ann).is_sandbox(&ann))
}

/// What to do with the container: pass it through, or confine it with this policy. A
/// Kubernetes container without a policy gets the node's default ([`WithoutPolicy`]).
pub fn decide(cfg: &Config, node: NodeOptions) -> Result<Decision, SourceError> {
    let ann = cfg.annotations()?;
    let engine = Engine::of(&ann);
    if engine.is_sandbox(&ann) {
        return Ok(Decision::PassThrough);
    }
    if let Some(r) = resolve(cfg)? {
        return Ok(Decision::Confine(Box::new(r)));
    }
    if !engine.is_kubernetes() {
        return Ok(Decision::PassThrough);
    }
    match node.without_policy {
        WithoutPolicy::Refuse => Err(SourceError::Refused {
            container: engine.container_name(&ann).unwrap_or("?").to_string(),
        }),
        WithoutPolicy::Ports => {
            const ORIGIN: &str =
                "the node's default for containers without a policy: bind only the declared containerPorts (io.kubernetes.container.ports)";
            let ports = kube::declared_tcp_ports(&ann)?.unwrap_or_default();
            let mut policy = Policy::bind_tcp_only(ports, ORIGIN);
            // The node's own default: strict whatever the pod says.
            policy.compat = Some(Compat::Strict);
            policy.caps = Some(moat_policy::KeepCaps::ALL);
            let explain = annotations::flag(ann.as_slice(), annotations::EXPLAIN)
                .ok()
                .flatten()
                .unwrap_or(false);
            Ok(Decision::Confine(Box::new(Resolved {
                policy,
                compat: Compat::Strict,
                origin: ORIGIN.to_string(),
                explain,
            })))
        }
    }
}

/// The container's own policy (config.json or annotations), or `None` when it names none.
pub fn resolve(cfg: &Config) -> Result<Option<Resolved>, SourceError> {
    let ann = cfg.annotations()?;
    let get = |key: &str| ann.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
    let pairs = ann.as_slice();
    annotations::check_keys(pairs)?;
    let compat_override = annotations::compat(pairs)?;

    // Checked up front so a malformed value is refused whichever policy applies.
    annotations::flag(pairs, annotations::ENFORCE)?;
    annotations::flag(pairs, annotations::PORTS_FROM_SPEC)?;
    let explain = annotations::flag(pairs, annotations::EXPLAIN)?.unwrap_or(false);
    let container_key = Engine::of(&ann)
        .container_name(&ann)
        .map(annotations::container_key);

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
    } else if compat_override.is_some() && !Engine::of(&ann).is_kubernetes() {
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
        assert!(resolve(&c).unwrap().is_none());
    }

    #[test]
    fn process_landlock_wins_over_annotations() {
        let c = cfg(serde_json::json!({
            "process":{"args":["sh"],"landlock":{
                "handledAccess":{"handledAccessFS":["read_file"]},
                "rules":{"pathBeneath":[{"allowedAccess":["read_file"],"paths":["/etc"]}]}}},
            "annotations":{"moat.dev/preset":"default"}}));
        let r = resolve(&c).unwrap().unwrap();
        assert_eq!(r.origin, "config.json process.landlock");
        assert_eq!(r.policy.fs.rules.len(), 1);
    }

    #[test]
    fn annotations_in_order_and_compat() {
        let c = cfg(serde_json::json!({"annotations":{
            "moat.dev/policy":"[filesystem]\nread = [\"/etc\"]\n",
            "moat.dev/preset":"nope",
            "moat.dev/compat":"best-effort"}}));
        let r = resolve(&c).unwrap().unwrap();
        assert_eq!(r.origin, "annotation moat.dev/policy");
        assert_eq!(r.compat, Compat::BestEffort);
        let c = cfg(serde_json::json!({"annotations":{"moat.dev/preset":"default"}}));
        assert_eq!(resolve(&c).unwrap().unwrap().compat, Compat::Strict);
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
            assert!(resolve(&c).is_err(), "{ann} should be refused");
        }
    }

    fn pod_container(extra: serde_json::Value) -> Config {
        let mut ann = serde_json::json!({
            "io.kubernetes.cri.container-type": "container",
            "io.kubernetes.cri.container-name": "web",
            "io.kubernetes.container.ports": r#"[{"containerPort":80,"protocol":"TCP"}]"#,
            "moat.dev/enforce": "true",
        });
        for (k, v) in extra.as_object().unwrap() {
            ann[k] = v.clone();
        }
        cfg(serde_json::json!({ "annotations": ann }))
    }

    #[test]
    fn kubernetes_container_policy_wins_over_pod_policy() {
        let c = pod_container(serde_json::json!({
            "container.moat.dev/web": "[network]\nbind_tcp = [80]\n",
            "container.moat.dev/sidecar": "not a policy [",
            "moat.dev/policy": "[filesystem]\nread = [\"/etc\"]\n",
        }));
        let r = resolve(&c).unwrap().unwrap();
        assert_eq!(r.origin, "annotation container.moat.dev/web");
        assert_eq!(r.policy.net.rules.len(), 1);
        // CRI-O's name annotation works the same.
        let c = cfg(serde_json::json!({"annotations":{
            "io.kubernetes.cri-o.ContainerType": "container",
            "io.kubernetes.container.name": "web",
            "container.moat.dev/web": "[network]\nbind_tcp = [80]\n"}}));
        let r = resolve(&c).unwrap().unwrap();
        assert_eq!(r.origin, "annotation container.moat.dev/web");
        // A broken policy for this container is refused, naming the annotation.
        let c = pod_container(serde_json::json!({"container.moat.dev/web": "[network\n"}));
        let e = resolve(&c).unwrap_err().to_string();
        assert!(e.starts_with("annotation container.moat.dev/web: "), "{e}");
    }

    /// The webhook writes the canonical form (moat JSON); pods admitted before carry moat
    /// TOML. Both give the same policy.
    #[test]
    fn the_canonical_form_and_the_older_toml_annotation_read_alike() {
        let old =
            "version = 1\n\n[filesystem]\nhandled = []\n\n[network]\nhandled = [\"bind_tcp\"]\n\
                   bind_tcp = [80]\n\n[scopes]\nsignal = false\nabstract_unix_socket = false\n";
        let read = |text: &str| {
            let c = pod_container(serde_json::json!({ "container.moat.dev/web": text }));
            resolve(&c).unwrap().unwrap().policy
        };
        let from_toml = read(old);
        let canonical = moat_policy::write::to_moat_json(&from_toml).unwrap().text;
        assert!(canonical.starts_with("{\"version\":1,"), "{canonical}");
        let from_json = read(&canonical);
        assert_eq!(from_json.fs.handled, from_toml.fs.handled);
        assert_eq!(from_json.net.handled, from_toml.net.handled);
        assert_eq!(from_json.net.rules.len(), 1);
        assert_eq!(from_json.net.rules[0].ports, from_toml.net.rules[0].ports);
        assert_eq!(from_json.scopes, from_toml.scopes);
        assert_eq!(from_json.compat, from_toml.compat);
        assert_eq!(from_json.caps, from_toml.caps);
    }

    fn confined(d: Decision) -> Resolved {
        match d {
            Decision::Confine(r) => *r,
            Decision::PassThrough => panic!("passed through"),
        }
    }

    #[test]
    fn a_kubernetes_container_without_policy_gets_the_node_default() {
        let ports = NodeOptions::default();
        for extra in [
            serde_json::json!({}),
            // The pod cannot turn the node's default off, nor weaken it.
            serde_json::json!({"moat.dev/ports-from-spec": "false"}),
            serde_json::json!({"moat.dev/compat": "best-effort"}),
        ] {
            let c = pod_container(extra.clone());
            assert!(resolve(&c).unwrap().is_none(), "{extra}");
            let r = confined(decide(&c, ports).unwrap());
            assert!(
                r.origin.contains("io.kubernetes.container.ports"),
                "{}",
                r.origin
            );
            assert_eq!(r.compat, Compat::Strict);
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
        }
        // No ports annotation: nothing may be bound.
        let c = cfg(serde_json::json!({"annotations":{
            "io.kubernetes.cri-o.ContainerType": "container",
            "io.kubernetes.container.name": "web"}}));
        let r = confined(decide(&c, ports).unwrap());
        assert!(r.policy.net.rules.is_empty());
        // A node that refuses such containers says which and why.
        let refuse = NodeOptions {
            without_policy: WithoutPolicy::Refuse,
        };
        let e = decide(&pod_container(serde_json::json!({})), refuse).unwrap_err();
        assert!(e.to_string().contains("container `web`"), "{e}");
        // A standalone container without a policy is passed through, on any node.
        let c = cfg(serde_json::json!({"annotations":{"io.kubernetes.cri.container-name":"web"}}));
        assert!(matches!(decide(&c, refuse).unwrap(), Decision::PassThrough));
        // Malformed values are refused.
        for bad in [
            serde_json::json!({"moat.dev/ports-from-spec": "no"}),
            serde_json::json!({"moat.dev/enforce": "1"}),
            serde_json::json!({"io.kubernetes.container.ports": "[{\"containerPort\":99999}]"}),
        ] {
            assert!(decide(&pod_container(bad.clone()), ports).is_err(), "{bad}");
        }
    }

    #[test]
    fn sandbox_containers() {
        let c =
            cfg(serde_json::json!({"annotations":{"io.kubernetes.cri.container-type":"sandbox"}}));
        assert!(is_sandbox(&c).unwrap());
        assert!(matches!(
            decide(&c, NodeOptions::default()).unwrap(),
            Decision::PassThrough
        ));
        let c = cfg(
            serde_json::json!({"annotations":{"io.kubernetes.cri-o.ContainerType":"container"}}),
        );
        assert!(!is_sandbox(&c).unwrap());
        // Under CRI-O, containerd's key is a pod annotation CRI-O copied: not a sandbox,
        // and containerd's name key does not pick another container's policy.
        let c = cfg(serde_json::json!({"annotations":{
            "io.kubernetes.cri-o.ContainerType": "container",
            "io.kubernetes.container.name": "web",
            "io.kubernetes.container.ports": "[{\"containerPort\":80}]",
            "io.kubernetes.cri.container-type": "sandbox",
            "io.kubernetes.cri.container-name": "admin",
            "container.moat.dev/admin": "[filesystem]\nunrestricted = true\n",
        }}));
        assert!(!is_sandbox(&c).unwrap());
        let r = confined(decide(&c, NodeOptions::default()).unwrap());
        assert!(r.origin.contains("containerPorts"), "{}", r.origin);
    }
}
