//! Which policy each container of an opted-in pod gets.
//!
//! For each container, the first found of:
//!
//! 1. the annotation `container.moat.dev/<name>` (a policy document, any dialect);
//! 2. the annotation `moat.dev/policy` (the same for every container);
//! 3. the annotation `moat.dev/preset` (a preset name);
//! 4. the opt-in default: TCP bind restricted, nothing else (filesystem, connect, UDP,
//!    scopes all as without moat), so opting in never takes away more than the promise.
//!
//! Then, unless `moat.dev/ports-from-spec: "false"`, the container may bind the TCP ports
//! it declares (`containerPort`, protocol TCP). When the policy left TCP bind unrestricted
//! (its network is `unrestricted`, or its `handled` list leaves `bind_tcp` out), bind is
//! restricted to exactly those ports and the author is warned: opting in promises "binds
//! only what it declares", and a policy must not be a way around that. The rest of the
//! policy's network part stays as written. With `ports-from-spec: "false"` the policy is
//! exactly what the pod names.
//!
//! The result is written as moat TOML, the form moat-runtime reads back unchanged. A policy
//! that cannot be written without changing its meaning is refused in strict mode and
//! written with warnings in best-effort mode, as moat-runtime does itself.

use crate::annotations::{self, AnnotationError};
use crate::floors::Floor;
use crate::memo::Memo;
use crate::pod::{ContainerKind, PodView};
use moat_policy::{
    presets, Compat, NetAccess, NetPolicy, NetRight, Policy, PolicyError, PortRange,
};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, LazyLock};

/// Kubernetes refuses an object whose annotations (keys and values) exceed this.
pub const MAX_ANNOTATIONS_BYTES: usize = 256 * 1024;

/// Where a container's policy came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// `container.moat.dev/<name>`.
    ContainerAnnotation,
    /// `moat.dev/policy`.
    PodPolicy,
    /// `moat.dev/preset`, with the preset's name.
    PodPreset(String),
    /// No policy named: the opt-in default.
    OptInDefault,
}

impl Source {
    /// A short description for messages and `render`.
    pub fn describe(&self, container: &str) -> String {
        match self {
            Source::ContainerAnnotation => {
                format!("annotation {}", annotations::container_key(container))
            }
            Source::PodPolicy => format!("annotation {}", annotations::POLICY),
            Source::PodPreset(name) => {
                format!("preset {name} (annotation {})", annotations::PRESET)
            }
            Source::OptInDefault => {
                "no policy named: TCP bind restricted, nothing else".to_string()
            }
        }
    }
}

/// The policy of one container.
#[derive(Clone, Debug)]
pub struct ContainerPolicy {
    /// The container's name.
    pub name: String,
    /// Its list in the pod, or `None` for a `container.moat.dev/<name>` annotation that
    /// names no container of the pod yet (an ephemeral container to be added later).
    pub kind: Option<ContainerKind>,
    /// Where the policy came from.
    pub source: Source,
    /// The declared TCP ports this container may bind, when taken from the spec.
    pub ports: Vec<u16>,
    /// Whether TCP bind was unrestricted in the named policy and moat restricted it.
    pub narrowed: bool,
    /// Whether the namespace's floor was applied (the final policy is the author's and the
    /// floor's intersection).
    pub floored: bool,
    /// The final policy (shared: the same template's pods get the same one).
    pub policy: Arc<Policy>,
    /// The final policy in the trip's canonical form, moat's dialect as JSON on one line
    /// (docs/kubernetes.md): the value of `container.moat.dev/<name>`.
    pub text: String,
}

/// A policy the webhook writes, and its text in the canonical form.
#[derive(Clone, Debug)]
pub struct WrittenPolicy {
    /// The policy.
    pub policy: Arc<Policy>,
    /// [`WrittenPolicy::policy`] as moat JSON: the annotation's value.
    pub text: String,
}

/// The policies of one opted-in pod.
#[derive(Clone, Debug, Default)]
pub struct PodPlan {
    /// One entry per container, init container, ephemeral container and per-container
    /// annotation naming no container yet.
    pub containers: Vec<ContainerPolicy>,
    /// The new value of `moat.dev/policy`, when it must change: the policy of containers
    /// added after the pod was created (ephemeral containers). Those can get no annotation
    /// of their own (see `admission`), so moat-runtime falls back to the pod-wide policy,
    /// which must then hold the same promise.
    pub fallback: Option<WrittenPolicy>,
    /// What the pod's author should know (shown by kubectl as warnings).
    pub warnings: Vec<String>,
}

/// A pod moat refuses, with the container and the problem.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// A `moat.dev/` annotation is unknown or has a bad value.
    #[error(transparent)]
    Annotation(#[from] AnnotationError),
    /// A policy annotation does not parse, or names an unknown preset.
    #[error("{subject}: {source}")]
    Policy {
        /// "container `web`", "init container `setup`", ...
        subject: String,
        /// The parser's diagnostic (it names the annotation, line and key).
        source: PolicyError,
    },
    /// A container without a name.
    #[error("{0} without a name")]
    Unnamed(&'static str),
    /// A declared containerPort outside 1..=65535.
    #[error("{subject}: containerPort {port} is not a port (1-65535)")]
    Port {
        /// The container.
        subject: String,
        /// The value.
        port: i64,
    },
    /// The policy cannot be written as moat TOML without changing its meaning, in strict
    /// mode.
    #[error("{subject}: the policy cannot be handed to the node unchanged: {reason} (annotation {compat}: best-effort accepts this)", compat = annotations::COMPAT)]
    Inexpressible {
        /// The container.
        subject: String,
        /// What would change.
        reason: String,
    },
    /// `moat.dev/compat: best-effort` where the namespace's floor does not allow it.
    #[error("annotation {compat}: \"best-effort\" is not allowed in this namespace: its floor must hold on every node (remove the annotation, or ask the operator for best_effort = true in the webhook's floors)", compat = annotations::COMPAT)]
    BestEffortRefused,
    /// The written annotations would exceed what Kubernetes stores.
    #[error("the pod's annotations would take {bytes} bytes with moat's policies, over Kubernetes' limit of {MAX_ANNOTATIONS_BYTES}; name a shorter policy or a preset")]
    TooLarge {
        /// Their size.
        bytes: usize,
    },
}

/// The opt-in default: only TCP bind is handled, so only listening is restricted; every
/// filesystem right, every other network right and both scopes stay as without moat.
pub fn opt_in_default() -> Policy {
    let mut p = Policy::allow_all();
    p.net.handled = NetAccess::of(&[NetRight::BindTcp]);
    p
}

/// The plan for an opted-in pod: every container's policy, and the pod-wide fallback.
///
/// Refusals keep a fixed order, whatever is cached: an unknown or malformed `moat.dev/`
/// annotation, then the pod-wide policy, then per container (in [`PodView::all_containers`]
/// order) its own annotation, its ports, and whether its policy can be written.
#[cfg(test)]
pub fn plan(pod: &PodView) -> Result<PodPlan, PlanError> {
    plan_with(pod, None)
}

/// `plan`, with the namespace's floor applied to every container's policy (see
/// [`crate::floors`]).
pub fn plan_with(pod: &PodView, floor: Option<&Floor>) -> Result<PodPlan, PlanError> {
    let ann = pod.annotations();
    annotations::check_keys(ann)?;
    let asked_ports_from_spec = annotations::flag(ann, annotations::PORTS_FROM_SPEC)?;
    // Under a floor the declared ports are the floor's: the pod cannot turn that off.
    let ports_from_spec = floor.is_some() || asked_ports_from_spec.unwrap_or(true);
    let compat = annotations::compat(ann)?;
    let mut out = PodPlan::default();
    if let Some(f) = floor {
        if compat == Some(Compat::BestEffort) && !f.best_effort {
            return Err(PlanError::BestEffortRefused);
        }
        if asked_ports_from_spec == Some(false) {
            out.warnings.push(format!(
                "{}: \"false\" is ignored: in this namespace every container binds only the \
                 containerPorts it declares",
                annotations::PORTS_FROM_SPEC
            ));
        }
    }

    // The pod-wide policy is parsed first (its errors come first) and shared by every
    // container without an annotation of its own.
    let fallback_subject = "containers added later (pod-wide policy)";
    let wide = pod_wide(ann, fallback_subject)?.unwrap_or_else(|| Resolved {
        origin: Origin::DEFAULT,
        policy: default_policy(),
        source: Source::OptInDefault,
    });

    let mut named: Vec<(Option<ContainerKind>, &str, Vec<i64>)> = Vec::new();
    for (kind, c) in pod.all_containers() {
        if c.name.is_empty() {
            return Err(PlanError::Unnamed(kind.name()));
        }
        let ports = c
            .ports
            .iter()
            .filter(|p| p.protocol.as_deref().unwrap_or("TCP") == "TCP")
            .map(|p| p.container_port)
            .collect();
        named.push((Some(kind), &c.name, ports));
    }
    // Per-container annotations for containers the pod does not have yet: an ephemeral
    // container can only get its own policy this way, at creation.
    for key in ann.keys() {
        if let Some(name) = key.strip_prefix(annotations::CONTAINER_PREFIX) {
            if !named.iter().any(|(_, n, _)| *n == name) {
                named.push((None, name, Vec::new()));
            }
        }
    }

    for (kind, name, declared) in named {
        let subject = match kind {
            Some(k) => format!("{} `{name}`", k.name()),
            None => format!("annotation {}", annotations::container_key(name)),
        };
        let own = ann
            .get_key_value(annotations::container_key(name).as_str())
            .map(|(key, text)| Origin { key, text });
        let (origin, source) = match own {
            Some(o) => (o, Source::ContainerAnnotation),
            None => (wide.origin, wide.source.clone()),
        };
        // The container's own policy parses (or its error is reported) before its ports
        // are looked at.
        let policy = || match own {
            Some(o) => parse_cached(o).map_err(policy_error(&subject)),
            None => Ok(wide.policy.clone()),
        };
        let ports = match declared_ports(&declared, &subject) {
            Ok(ports) => ports,
            Err(e) => {
                policy()?;
                return Err(e);
            }
        };
        let ports: Vec<u16> = if ports_from_spec { ports } else { Vec::new() };
        let done = finished(origin, policy, &ports, ports_from_spec, compat, &subject)?;
        if done.narrowed && floor.is_none() {
            out.warnings.push(narrowing_warning(&subject, &ports));
        }
        out.warnings
            .extend(done.lost.iter().map(|w| format!("{subject}: {w}")));
        let (policy, text) = match floor {
            None => (done.policy.clone(), done.text.clone()),
            Some(f) => floored(f, &done.policy, &ports, compat, &subject, &mut out.warnings)?,
        };
        out.containers.push(ContainerPolicy {
            name: name.to_string(),
            kind,
            source,
            ports,
            narrowed: done.narrowed,
            floored: floor.is_some(),
            policy,
            text,
        });
    }

    let fallback = finished(
        wide.origin,
        || Ok(wide.policy.clone()),
        &[],
        ports_from_spec,
        compat,
        fallback_subject,
    )?;
    match floor {
        Some(f) => {
            let (policy, text) = floored(
                f,
                &fallback.policy,
                &[],
                compat,
                fallback_subject,
                &mut out.warnings,
            )?;
            if ann.get(annotations::POLICY) != Some(&text) {
                out.fallback = Some(WrittenPolicy { policy, text });
            }
        }
        None if wide.source == Source::OptInDefault || fallback.narrowed => {
            out.fallback = Some(WrittenPolicy {
                policy: fallback.policy.clone(),
                text: fallback.text.clone(),
            });
        }
        None => {}
    }

    let bytes = annotation_bytes(pod, &out);
    if bytes > MAX_ANNOTATIONS_BYTES {
        return Err(PlanError::TooLarge { bytes });
    }
    Ok(out)
}

/// `policy` with the namespace's floor, written as moat JSON; what cannot be written is
/// refused in strict mode and reported in best-effort mode, as for the author's policy.
fn floored(
    floor: &Floor,
    policy: &Policy,
    ports: &[u16],
    compat: Option<Compat>,
    subject: &str,
    warnings: &mut Vec<String>,
) -> Result<(Arc<Policy>, String), PlanError> {
    let effective = floor.apply(policy, ports);
    let inexpressible = |reason: String| PlanError::Inexpressible {
        subject: subject.to_string(),
        reason,
    };
    let written =
        moat_policy::write::to_moat_json(&effective).map_err(|e| inexpressible(e.to_string()))?;
    let (text, lost) = written.into_parts();
    if !lost.is_empty() {
        if effective.compat.or(compat).unwrap_or_default() == Compat::Strict {
            return Err(inexpressible(lost.join("; ")));
        }
        warnings.extend(lost.iter().map(|w| format!("{subject}: {w}")));
    }
    Ok((Arc::new(effective), text))
}

/// The declared TCP ports, sorted and without repeats; a value that is not a port is
/// refused with the container's name.
fn declared_ports(declared: &[i64], subject: &str) -> Result<Vec<u16>, PlanError> {
    let mut ports = BTreeSet::new();
    for &port in declared {
        match u16::try_from(port) {
            Ok(p) if p > 0 => ports.insert(p),
            _ => {
                return Err(PlanError::Port {
                    subject: subject.to_string(),
                    port,
                })
            }
        };
    }
    Ok(ports.into_iter().collect())
}

/// What moat-runtime will enforce for container `name` from the pod's annotations as they
/// are (no ports added): `None` when it finds no policy and would run the container
/// unconfined. Used for containers that reach the node without passing through [`plan`].
pub fn node_policy(
    annotations: &BTreeMap<String, String>,
    name: &str,
    subject: &str,
) -> Result<Option<(Policy, Source)>, PlanError> {
    let own = annotations
        .get_key_value(annotations::container_key(name).as_str())
        .map(|(key, text)| Origin { key, text });
    let found = match own {
        Some(origin) => Some(Resolved {
            origin,
            policy: parse_cached(origin).map_err(policy_error(subject))?,
            source: Source::ContainerAnnotation,
        }),
        None => pod_wide(annotations, subject)?,
    };
    Ok(found.map(|r| (Policy::clone(&r.policy), r.source)))
}

/// A policy text as the caches know it: the annotation key it is read under (the parser
/// names it in diagnostics and rule origins) and the text. A preset is filed under
/// [`Origin::PRESET`] with its name, the opt-in default under [`Origin::DEFAULT`]; neither
/// key can be an annotation's, since both hold a NUL.
#[derive(Copy, Clone, Debug, Hash, PartialEq, Eq)]
struct Origin<'a> {
    key: &'a str,
    text: &'a str,
}

impl Origin<'static> {
    const PRESET: &'static str = "\0preset";
    const DEFAULT: Origin<'static> = Origin {
        key: "\0default",
        text: "",
    };
}

/// A pod-wide or per-container policy, parsed, with where it came from.
struct Resolved<'a> {
    origin: Origin<'a>,
    policy: Arc<Policy>,
    source: Source,
}

/// How many parsed policies, and how many written ones, are kept (see [`crate::memo`]).
const CACHE_ENTRIES: usize = 256;
/// How many bytes of policy text each cache holds at most.
const CACHE_BYTES: usize = 8 << 20;

type Owned = (String, String);

/// [`opt_in_default`], made once.
fn default_policy() -> Arc<Policy> {
    static DEFAULT: LazyLock<Arc<Policy>> = LazyLock::new(|| Arc::new(opt_in_default()));
    DEFAULT.clone()
}

/// Parses a policy annotation (or loads a preset), reusing the result for the same key and
/// text: a controller creates many pods with the same annotations, and parsing a policy
/// costs more than the rest of the admission. Errors are not kept (see [`crate::memo`]).
fn parse_cached(origin: Origin<'_>) -> Result<Arc<Policy>, PolicyError> {
    static PARSED: LazyLock<Memo<Owned, Policy>> =
        LazyLock::new(|| Memo::new(CACHE_ENTRIES, CACHE_BYTES));
    let hash = PARSED.hash_of(&origin);
    if let Some(p) = PARSED.get(hash, |(k, t)| {
        (k.as_str(), t.as_str()) == (origin.key, origin.text)
    }) {
        return Ok(p);
    }
    let parsed = Arc::new(if origin.key == Origin::PRESET {
        presets::load(origin.text)?
    } else {
        moat_policy::parse_str(origin.key, origin.text)?
    });
    // The parsed form is counted as large as its text.
    let bytes = origin.key.len() + 2 * origin.text.len();
    PARSED.insert(
        hash,
        (origin.key.to_string(), origin.text.to_string()),
        parsed.clone(),
        bytes,
    );
    Ok(parsed)
}

fn policy_error(subject: &str) -> impl FnOnce(PolicyError) -> PlanError + '_ {
    move |source| PlanError::Policy {
        subject: subject.to_string(),
        source,
    }
}

/// The pod-wide policy: `moat.dev/policy`, else `moat.dev/preset`, as moat-runtime reads them.
fn pod_wide<'a>(
    annotations: &'a BTreeMap<String, String>,
    subject: &str,
) -> Result<Option<Resolved<'a>>, PlanError> {
    let (origin, source) = if let Some(text) = annotations.get(annotations::POLICY) {
        (
            Origin {
                key: annotations::POLICY,
                text,
            },
            Source::PodPolicy,
        )
    } else if let Some(name) = annotations.get(annotations::PRESET) {
        let name = name.trim();
        (
            Origin {
                key: Origin::PRESET,
                text: name,
            },
            Source::PodPreset(name.to_string()),
        )
    } else {
        return Ok(None);
    };
    let policy = parse_cached(origin).map_err(policy_error(subject))?;
    Ok(Some(Resolved {
        origin,
        policy,
        source,
    }))
}

/// A policy with the declared ports added, and its TOML: what [`plan`] hands the node.
#[derive(Debug)]
struct Finished {
    policy: Arc<Policy>,
    text: String,
    /// Whether TCP bind was unrestricted and moat restricted it.
    narrowed: bool,
    /// What the TOML cannot express (best-effort mode only), without the subject.
    lost: Vec<String>,
}

/// Everything a [`Finished`] policy depends on, borrowed for lookups.
#[derive(Copy, Clone, Hash, PartialEq, Eq)]
struct Inputs<'a> {
    origin: Origin<'a>,
    ports: &'a [u16],
    ports_from_spec: bool,
    /// `moat.dev/compat`, as `Some(strict)`.
    strict: Option<bool>,
}

/// [`Inputs`], owned, as the cache keeps them.
struct OwnedInputs {
    key: String,
    text: String,
    ports: Vec<u16>,
    ports_from_spec: bool,
    strict: Option<bool>,
}

impl OwnedInputs {
    fn view(&self) -> Inputs<'_> {
        Inputs {
            origin: Origin {
                key: &self.key,
                text: &self.text,
            },
            ports: &self.ports,
            ports_from_spec: self.ports_from_spec,
            strict: self.strict,
        }
    }
}

/// The finished policy for a container, from the cache when the same policy text, ports
/// and flags were finished before: writing TOML is most of what admitting a pod costs,
/// and the replicas of one template all ask for the same texts. `policy` is only called
/// on a miss. Refusals are not kept, so each is reported with its own pod's subject.
fn finished(
    origin: Origin<'_>,
    policy: impl FnOnce() -> Result<Arc<Policy>, PlanError>,
    ports: &[u16],
    ports_from_spec: bool,
    compat: Option<Compat>,
    subject: &str,
) -> Result<Arc<Finished>, PlanError> {
    static FINISHED: LazyLock<Memo<OwnedInputs, Finished>> =
        LazyLock::new(|| Memo::new(CACHE_ENTRIES, CACHE_BYTES));
    let inputs = Inputs {
        origin,
        ports,
        ports_from_spec,
        strict: compat.map(|c| c == Compat::Strict),
    };
    let hash = FINISHED.hash_of(&inputs);
    if let Some(done) = FINISHED.get(hash, |stored| stored.view() == inputs) {
        return Ok(done);
    }
    let done = Arc::new(finish(
        Policy::clone(&*policy()?),
        ports,
        ports_from_spec,
        compat,
        subject,
    )?);
    let owned = OwnedInputs {
        key: origin.key.to_string(),
        text: origin.text.to_string(),
        ports: ports.to_vec(),
        ports_from_spec,
        strict: inputs.strict,
    };
    // The finished policy is counted as large as its text.
    let bytes = origin.key.len() + origin.text.len() + 2 * ports.len() + 2 * done.text.len();
    FINISHED.insert(hash, owned, done.clone(), bytes);
    Ok(done)
}

fn finish(
    mut policy: Policy,
    ports: &[u16],
    ports_from_spec: bool,
    compat: Option<Compat>,
    subject: &str,
) -> Result<Finished, PlanError> {
    let narrowed = ports_from_spec && add_bind_ports(&mut policy, ports);
    let inexpressible = |reason: String| PlanError::Inexpressible {
        subject: subject.to_string(),
        reason,
    };
    let written =
        moat_policy::write::to_moat_json(&policy).map_err(|e| inexpressible(e.to_string()))?;
    let (text, lost) = written.into_parts();
    if !lost.is_empty() && policy.compat.or(compat).unwrap_or_default() == Compat::Strict {
        return Err(inexpressible(lost.join("; ")));
    }
    Ok(Finished {
        policy: Arc::new(policy),
        text,
        narrowed,
        lost,
    })
}

/// Grants TCP bind on `ports`, restricting TCP bind first when the policy left it open.
/// Returns whether it had to restrict it. Ports the policy already grants get no second
/// rule, so that running the webhook again on its own output changes nothing.
fn add_bind_ports(policy: &mut Policy, ports: &[u16]) -> bool {
    let bind = NetAccess::of(&[NetRight::BindTcp]);
    let narrowed = if policy.net.unrestricted {
        policy.net = NetPolicy {
            handled: bind,
            ..NetPolicy::default()
        };
        true
    } else if !policy.net.handled.contains(NetRight::BindTcp) {
        policy.net.handled.insert(NetRight::BindTcp);
        true
    } else {
        false
    };
    for &port in ports {
        let granted = policy
            .net
            .rules
            .iter()
            .any(|r| r.access.contains(NetRight::BindTcp) && r.ports.contains(port));
        if !granted {
            policy.grant_ports([PortRange::single(port)], bind, "containerPort");
        }
    }
    narrowed
}

fn narrowing_warning(subject: &str, ports: &[u16]) -> String {
    let list = if ports.is_empty() {
        "no port".to_string()
    } else {
        ports
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "{subject}: the policy leaves TCP bind unrestricted; moat restricts it to the declared \
         containerPorts ({list}); annotate {}: \"false\" to keep the policy as written",
        annotations::PORTS_FROM_SPEC
    )
}

/// The size of the pod's annotations once the plan is written.
fn annotation_bytes(pod: &PodView, plan: &PodPlan) -> usize {
    let replaced = |key: &str| {
        key.strip_prefix(annotations::CONTAINER_PREFIX)
            .is_some_and(|name| plan.containers.iter().any(|c| c.name == name))
            || (plan.fallback.is_some() && key == annotations::POLICY)
    };
    let mut total: usize = pod
        .annotations()
        .iter()
        .filter(|(k, _)| !replaced(k))
        .map(|(k, v)| k.len() + v.len())
        .sum();
    for c in &plan.containers {
        total += annotations::CONTAINER_PREFIX.len() + c.name.len() + c.text.len();
    }
    if let Some(f) = &plan.fallback {
        total += annotations::POLICY.len() + f.text.len();
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> PodView {
        serde_json::from_value(v).unwrap()
    }

    fn web(annotations: serde_json::Value) -> PodView {
        pod(json!({
            "metadata": {"name": "web", "annotations": annotations},
            "spec": {"containers": [{"name": "web", "ports": [
                {"containerPort": 80}, {"containerPort": 8443, "protocol": "TCP"},
                {"containerPort": 53, "protocol": "UDP"}, {"containerPort": 80}]}]}
        }))
    }

    fn reparse(text: &str) -> Policy {
        moat_policy::parse_str("t", text).unwrap()
    }

    #[test]
    fn default_restricts_bind_to_declared_tcp_ports_only() {
        let plan = plan(&web(json!({}))).unwrap();
        let c = &plan.containers[0];
        assert_eq!(c.ports, [80, 8443]);
        assert_eq!(c.source, Source::OptInDefault);
        assert!(!c.narrowed);
        assert_eq!(
            c.text,
            "{\"version\":1,\"filesystem\":{\"handled\":[]},\"network\":{\"handled\":[\"bind_tcp\"],\
             \"bind_tcp\":[80,8443]},\"scopes\":{\"signal\":false,\"abstract_unix_socket\":false}}\n"
        );
        let back = reparse(&c.text);
        assert!(back.fs.handled.is_empty() && !back.fs.unrestricted);
        assert_eq!(back.net.handled, NetAccess::of(&[NetRight::BindTcp]));
        assert!(back.scopes.is_empty() && !back.net.seal_sockets && back.env.pass.is_empty());
        // The fallback for containers added later: bind restricted, no port.
        let f = reparse(&plan.fallback.as_ref().unwrap().text);
        assert!(f.net.rules.is_empty() && f.net.handled.contains(NetRight::BindTcp));
    }

    #[test]
    fn named_policy_gets_the_declared_ports_added() {
        let plan = plan(&web(json!({"moat.dev/preset": "default"}))).unwrap();
        let c = &plan.containers[0];
        assert_eq!(c.source, Source::PodPreset("default".into()));
        assert!(c.text.contains("\"bind_tcp\":[80,8443]"), "{}", c.text);
        assert!(plan.fallback.is_none() && plan.warnings.is_empty());
        // Ports the policy already grants (web-server: 80, 8443) are not added again.
        let plan = super::plan(&web(json!({"moat.dev/preset": "web-server"}))).unwrap();
        let preset = presets::load("web-server").unwrap();
        let as_is = moat_policy::write::to_moat_json(&preset).unwrap().text;
        assert_eq!(plan.containers[0].text, as_is);
    }

    #[test]
    fn unrestricted_bind_is_narrowed_with_a_warning() {
        let plan = plan(&web(json!({"moat.dev/policy": "[network]\nunrestricted = true\n[filesystem]\nread = [\"/\"]\n"}))).unwrap();
        let c = &plan.containers[0];
        assert!(c.narrowed);
        let p = reparse(&c.text);
        assert_eq!(p.net.handled, NetAccess::of(&[NetRight::BindTcp]));
        assert!(
            plan.warnings[0].contains("container `web`") && plan.warnings[0].contains("80, 8443")
        );
        // The pod-wide policy is rewritten too, so containers added later keep the promise.
        let f = reparse(&plan.fallback.as_ref().unwrap().text);
        assert!(f.net.rules.is_empty() && !f.net.unrestricted);
        // Unless the pod says to take its policy as written.
        let plan = super::plan(&web(json!({"moat.dev/ports-from-spec": "false",
            "moat.dev/policy": "[network]\nunrestricted = true\n"})))
        .unwrap();
        assert!(reparse(&plan.containers[0].text).net.unrestricted);
        assert!(plan.fallback.is_none() && plan.warnings.is_empty());
    }

    #[test]
    fn landlockconfig_handling_only_connect_gets_bind_handled_too() {
        let lc = r#"{"ruleset":[{"handledAccessNet":["connect_tcp"]}],"netPort":[{"allowedAccess":["connect_tcp"],"port":[443]}]}"#;
        let plan = plan(&web(json!({"container.moat.dev/web": lc}))).unwrap();
        let c = &plan.containers[0];
        assert_eq!(c.source, Source::ContainerAnnotation);
        let p = reparse(&c.text);
        assert_eq!(
            p.net.handled,
            NetAccess::of(&[NetRight::BindTcp, NetRight::ConnectTcp])
        );
        assert!(c.narrowed);
    }

    #[test]
    fn output_is_a_fixed_point() {
        for ann in [
            json!({}),
            json!({"moat.dev/preset": "shell"}),
            json!({"moat.dev/policy": "network:\n  unrestricted: true\n"}),
        ] {
            let first = plan(&web(ann.clone())).unwrap();
            let mut again = ann.as_object().unwrap().clone();
            for c in &first.containers {
                again.insert(annotations::container_key(&c.name), json!(c.text));
            }
            if let Some(f) = &first.fallback {
                again.insert(annotations::POLICY.into(), json!(f.text));
            }
            let second = plan(&web(serde_json::Value::Object(again))).unwrap();
            assert_eq!(first.containers[0].text, second.containers[0].text);
            assert!(second.fallback.is_none(), "{:?}", second.fallback);
            assert!(second.warnings.is_empty(), "{:?}", second.warnings);
        }
    }

    #[test]
    fn refusals_name_the_container_and_the_problem() {
        let e = plan(&web(
            json!({"container.moat.dev/web": "[filesystem]\nread = 3\n"}),
        ))
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("container `web`: container.moat.dev/web"),
            "{e}"
        );
        let e = plan(&web(json!({"moat.dev/preset": "nope"}))).unwrap_err();
        assert!(e.to_string().contains("nope"), "{e}");
        let bad_port = pod(
            json!({"spec": {"initContainers": [{"name": "i", "ports": [{"containerPort": 70000}]}]}}),
        );
        assert_eq!(
            plan(&bad_port).unwrap_err().to_string(),
            "init container `i`: containerPort 70000 is not a port (1-65535)"
        );
        let e = plan(&web(json!({"moat.dev/ports-from-spec": "no"}))).unwrap_err();
        assert!(e.to_string().contains("moat.dev/ports-from-spec"), "{e}");
        let huge = "#".repeat(MAX_ANNOTATIONS_BYTES) + "\n[network]\nbind_tcp = [1]\n";
        assert!(matches!(
            plan(&web(json!({"moat.dev/policy": huge}))),
            Err(PlanError::TooLarge { .. })
        ));
    }

    #[test]
    fn annotation_for_a_container_to_come_is_planned() {
        let plan = plan(&web(
            json!({"container.moat.dev/debugger": "{\"filesystem\": {\"read\": [\"/\"]}}"}),
        ))
        .unwrap();
        let d = plan
            .containers
            .iter()
            .find(|c| c.name == "debugger")
            .unwrap();
        assert_eq!(d.kind, None);
        assert!(d.ports.is_empty());
    }
}
