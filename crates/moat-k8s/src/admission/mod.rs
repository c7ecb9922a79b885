//! AdmissionReview v1: from the request body the API server sends to the body of the
//! answer, as one pure function ([`review`]).
//!
//! What it handles:
//!
//! - **Pod CREATE.** An opted-in pod (see [`crate::opt_in`]) gets `runtimeClassName: moat`
//!   and, for every container, init container and ephemeral container, its final policy in
//!   `container.moat.dev/<name>` (see `pod_policy`), as a JSON Patch. A pod whose
//!   policy does not parse, or that asks for another runtimeClassName, is refused with a
//!   message naming the container and the problem.
//!   A pod carrying one of moat's internal annotations (`guard::INTERNAL`) is refused,
//!   whether it opted in or not; so is a confined pod Landlock cannot hold (privileged
//!   containers, dangerous capabilities, `hostPID`) unless the operator lets its
//!   namespace have them (`floors::Rules`).
//! - **Pod UPDATE.** The kubelet rebuilds a container's configuration from the *current*
//!   pod, and containerd copies the pod's annotations into every new container's
//!   config.json: an annotation changed after admission would reach the node at the next
//!   container start. So for a pod that opted in (or runs with runtimeClassName `moat`),
//!   an update that adds, changes or removes a `moat.dev/` or `container.moat.dev/`
//!   annotation is refused, naming each; adding an internal annotation is refused on any
//!   pod. Everything else in an update is allowed unchanged.
//! - **UPDATE of the `pods/ephemeralcontainers` subresource** (`kubectl debug`). The API
//!   server keeps only `spec.ephemeralContainers` of such an update and drops any change to
//!   the pod's annotations, a patch included. So nothing is patched here: a new ephemeral
//!   container gets its `container.moat.dev/<name>` written at creation (when the author
//!   named it in advance), else the pod-wide policy that creation wrote. Those are the
//!   annotations stored at creation, since an update cannot change them (above). The
//!   webhook checks that the node will find a policy that parses, and that the container
//!   is one Landlock can hold, and refuses it otherwise.
//! - Anything else (other kinds, other operations, other subresources, pods that did not
//!   opt in) is allowed unchanged. A `moat.dev/` annotation moat does not know is refused on
//!   any pod, because a misspelt opt-in would otherwise go unnoticed.
//!
//! `dryRun` needs nothing special: the webhook has no side effects (it says so with
//! `sideEffects: None`), and a dry run must get the same answer, patch included, so that
//! it shows what a real request would create. The decision reports whether it was a dry
//! run, for the log.
//!
//! A body that is not an AdmissionReview v1 with a request and a uid is a [`BadRequest`]
//! (HTTP 400): there is no uid to answer to.
//!
//! The request is read by `wire`, and a pod whose template (endpoint, annotations, spec)
//! was allowed before gets the answer kept by `template`: a controller sends the same
//! template for every replica, and working it out again is most of a request's cost.

mod template;
mod wire;

use crate::annotations::{self, RUNTIME_CLASS};
use crate::floors::Rules;
use crate::guard;
use crate::opt_in::{self, Scope};
use crate::patch::{self, Op};
use crate::pod::PodView;
use crate::pod_policy;
use base64::Engine;
use serde_json::value::RawValue;
use std::sync::{Arc, LazyLock};
use wire::Request;

/// The only AdmissionReview version moat speaks (the webhook configuration asks for it).
pub const API_VERSION: &str = "admission.k8s.io/v1";

/// A body that is not an AdmissionReview moat can answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an AdmissionReview: {0}")]
pub struct BadRequest(pub String);

/// The answer to one AdmissionReview.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The AdmissionReview response, serialised.
    pub body: Vec<u8>,
    /// What was decided, for the log.
    pub decision: Decision,
    /// `namespace/name` of the object, for the log.
    pub object: String,
    /// Whether the request was a dry run.
    pub dry_run: bool,
}

/// What the webhook decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Allowed without a patch (not handled, not opted in, or nothing to change).
    Unchanged,
    /// Allowed with a patch of this many operations.
    Patched(usize),
    /// Refused, with the message the author sees.
    Denied(String),
}

/// An allowed request's answer: the patch, if any, and the warnings.
#[derive(Debug, Default)]
struct Allowed {
    patch: Option<Patch>,
    warnings: Vec<String>,
}

/// A JSON Patch as the response carries it.
#[derive(Debug)]
struct Patch {
    /// The operations as JSON, base64-encoded, as a JSON string literal: kept with its
    /// answer, it is copied into each response as it is instead of being escaped again.
    encoded: Box<RawValue>,
    /// How many operations.
    ops: usize,
}

impl Allowed {
    /// Allowed with nothing to say; shared, since most requests get it.
    fn unchanged() -> Arc<Allowed> {
        static UNCHANGED: LazyLock<Arc<Allowed>> = LazyLock::new(|| Arc::new(Allowed::default()));
        UNCHANGED.clone()
    }

    fn warning(message: String) -> Arc<Allowed> {
        Arc::new(Allowed {
            patch: None,
            warnings: vec![message],
        })
    }

    /// Roughly what the answer takes in memory.
    fn size(&self) -> usize {
        let patch = self.patch.as_ref().map_or(0, |p| p.encoded.get().len());
        patch + self.warnings.iter().map(String::len).sum::<usize>()
    }
}

/// The result of handling one request, before it is serialised.
enum Verdict {
    Allowed(Arc<Allowed>),
    Denied(String),
}

/// Answers one AdmissionReview body, received on the endpoint for `scope`, with no
/// operator exceptions.
pub fn review(body: &[u8], scope: Scope) -> Result<Outcome, BadRequest> {
    review_with(body, scope, &Rules::default())
}

/// Answers one AdmissionReview body, received on the endpoint for `scope`, with the
/// operator's exceptions `rules`.
pub fn review_with(body: &[u8], scope: Scope, rules: &Rules) -> Result<Outcome, BadRequest> {
    let req = wire::read(body)?;
    let verdict = match (
        req.is_pod,
        req.operation.as_str(),
        req.sub_resource.as_deref().unwrap_or(""),
    ) {
        (true, "CREATE", "") => create(&req, scope, rules),
        (true, "UPDATE", "") => update(&req, scope),
        (true, "UPDATE", "ephemeralcontainers") => add_ephemeral(&req, scope, rules),
        _ => Verdict::Allowed(Allowed::unchanged()),
    };
    let (body, decision) = match &verdict {
        Verdict::Denied(message) => (
            wire::write(&req.uid, Some(message), None, &[])?,
            Decision::Denied(message.clone()),
        ),
        Verdict::Allowed(a) => (
            wire::write(
                &req.uid,
                None,
                a.patch.as_ref().map(|p| &*p.encoded),
                &a.warnings,
            )?,
            match &a.patch {
                Some(p) => Decision::Patched(p.ops),
                None => Decision::Unchanged,
            },
        ),
    };
    let object = format!(
        "{}/{}",
        req.namespace.as_deref().unwrap_or(""),
        req.name.as_deref().unwrap_or("")
    );
    Ok(Outcome {
        body,
        decision,
        object,
        dry_run: req.dry_run,
    })
}

/// What becomes of a pod at creation.
#[derive(Debug, Clone)]
pub enum Admitted {
    /// The pod did not opt in: it runs as it is.
    NotOptedIn,
    /// The pod is confined: its plan, and the warnings for its author.
    Confined {
        /// Every container's policy and the pod-wide fallback.
        plan: pod_policy::PodPlan,
        /// What the author should know.
        warnings: Vec<String>,
    },
}

/// Decides a pod at creation: whether it opted in, and then every container's policy. The
/// error is the message a refused pod's author sees. `render` shows the same decision.
pub fn admit_pod(pod: &PodView, scope: Scope) -> Result<Admitted, String> {
    admit_pod_with(pod, scope, None)
}

/// [`admit_pod`] with the namespace's floor, which applies to pods of an enforced
/// namespace ([`Scope::Namespace`]) only.
pub fn admit_pod_with(
    pod: &PodView,
    scope: Scope,
    floor: Option<&crate::floors::Floor>,
) -> Result<Admitted, String> {
    let named = |e: &dyn std::fmt::Display| format!("pod {}: {e}", pod.display_name());
    let ann = pod.annotations();
    if let Some(key) = guard::internal_annotation(ann) {
        return Err(guard::internal_message(pod, key));
    }
    let opt = annotations::check_keys(ann)
        .and_then(|()| opt_in::decide(scope, ann))
        .map_err(|e| named(&e))?;
    if !opt.enforced {
        return Ok(Admitted::NotOptedIn);
    }
    if let Some(other) = pod
        .spec
        .runtime_class_name
        .as_deref()
        .filter(|rc| *rc != RUNTIME_CLASS)
    {
        return Err(named(&format_args!(
            "runtimeClassName `{other}`: moat confines this pod's containers through \
             runtimeClassName `{RUNTIME_CLASS}`; remove runtimeClassName or set it to `{RUNTIME_CLASS}`"
        )));
    }
    let floor = floor.filter(|_| scope == Scope::Namespace);
    let mut plan = pod_policy::plan_with(pod, floor).map_err(|e| named(&e))?;
    let warnings = opt
        .warning
        .into_iter()
        .chain(std::mem::take(&mut plan.warnings))
        .collect();
    Ok(Admitted::Confined { plan, warnings })
}

fn create(req: &Request, scope: Scope, rules: &Rules) -> Verdict {
    let pod = match req.object.pod("object") {
        Ok(p) => p,
        Err(m) => return Verdict::Denied(m),
    };
    if let Some(m) = beyond_landlock(pod, scope, req.namespace.as_deref(), rules) {
        return Verdict::Denied(m);
    }
    let floor = (scope == Scope::Namespace).then(|| {
        rules
            .floors
            .for_namespace(req.namespace.as_deref().unwrap_or(""))
    });
    let fingerprint = floor.map(|f| &*f.fingerprint).unwrap_or("");
    match template::allowed(scope, fingerprint, pod, || confine(pod, scope, floor)) {
        Ok(a) => Verdict::Allowed(a),
        Err(m) => Verdict::Denied(m),
    }
}

/// The answer for a pod at creation, worked out: the patch that writes its policies.
fn confine(
    pod: &PodView,
    scope: Scope,
    floor: Option<&crate::floors::Floor>,
) -> Result<Allowed, String> {
    let (plan, warnings) = match admit_pod_with(pod, scope, floor)? {
        Admitted::NotOptedIn => return Ok(Allowed::default()),
        Admitted::Confined { plan, warnings } => (plan, warnings),
    };
    let mut set: Vec<(String, String)> = plan
        .containers
        .into_iter()
        .map(|c| (annotations::container_key(&c.name), c.text))
        .collect();
    if let Some(f) = plan.fallback {
        set.push((annotations::POLICY.to_string(), f.text));
    }
    let mut ops = patch::set_annotations(pod.metadata.annotations.as_ref(), &set);
    if pod.spec.runtime_class_name.is_none() {
        ops.push(Op::add("/spec/runtimeClassName", RUNTIME_CLASS.into()));
    }
    let patch = if ops.is_empty() {
        None
    } else {
        let failed = |e: serde_json::Error| {
            format!("pod {}: cannot write the patch: {e}", pod.display_name())
        };
        let json = serde_json::to_vec(&ops).map_err(failed)?;
        let encoded = base64::engine::general_purpose::STANDARD.encode(json);
        let literal = serde_json::to_string(&encoded).map_err(failed)?;
        Some(Patch {
            encoded: RawValue::from_string(literal).map_err(failed)?,
            ops: ops.len(),
        })
    };
    Ok(Allowed { patch, warnings })
}

/// Whether the pod is confined by moat: it opted in (a malformed opt-in counts as in: it
/// was admitted, so it is read the strict way) or already runs under moat's RuntimeClass.
fn confined(pod: &PodView, scope: Scope) -> bool {
    pod.spec.runtime_class_name.as_deref() == Some(RUNTIME_CLASS)
        || opt_in::decide(scope, pod.annotations()).map_or(true, |o| o.enforced)
}

/// The refusal for a confined pod Landlock cannot hold, unless its namespace may have it.
fn beyond_landlock(
    pod: &PodView,
    scope: Scope,
    namespace: Option<&str>,
    rules: &Rules,
) -> Option<String> {
    let namespace = namespace.unwrap_or("");
    if rules.allows_privileged(namespace) || !confined(pod, scope) {
        return None;
    }
    let found = guard::beyond_landlock(pod);
    (!found.is_empty()).then(|| guard::beyond_landlock_message(pod, namespace, &found))
}

/// A pod UPDATE: moat's annotations are fixed at creation on a confined pod, and internal
/// ones are never added.
fn update(req: &Request, scope: Scope) -> Verdict {
    let pod = match req.object.pod("object") {
        Ok(p) => p,
        Err(m) => return Verdict::Denied(m),
    };
    let old = match req.old_object.pod("oldObject") {
        Ok(p) => p,
        Err(m) => return Verdict::Denied(m),
    };
    let (before, after) = (old.annotations(), pod.annotations());
    if let Some(key) = guard::internal_annotation(after) {
        if before.get(key) != after.get(key) {
            return Verdict::Denied(guard::internal_message(pod, key));
        }
    }
    if !confined(old, scope) {
        return Verdict::Allowed(Allowed::unchanged());
    }
    let changes = guard::moat_changes(before, after);
    if changes.is_empty() {
        return Verdict::Allowed(Allowed::unchanged());
    }
    Verdict::Denied(format!(
        "pod {}: moat's annotations are fixed when a confined pod is created, and the node          would apply the new ones to the next container it starts: {}; to change the          policy, create the pod again (a Deployment's rollout does)",
        pod.display_name(),
        changes.join(", ")
    ))
}

fn add_ephemeral(req: &Request, scope: Scope, rules: &Rules) -> Verdict {
    let pod = match req.object.pod("object") {
        Ok(p) => p,
        Err(m) => return Verdict::Denied(m),
    };
    // What the API server stores (and the node saw) is the old object's metadata.
    let stored = match &req.old_object {
        wire::PodIn::Absent => pod,
        old => match old.pod("oldObject") {
            Ok(p) => p,
            Err(m) => return Verdict::Denied(m),
        },
    };
    let ann = stored.annotations();
    let opt = match opt_in::decide(scope, ann) {
        Ok(o) => o,
        Err(e) => return Verdict::Denied(format!("pod {}: {e}", pod.display_name())),
    };
    let new: Vec<&str> = pod
        .spec
        .ephemeral_containers
        .iter()
        .map(|c| c.name.as_str())
        .filter(|n| {
            !stored
                .spec
                .ephemeral_containers
                .iter()
                .any(|o| o.name == *n)
        })
        .collect();
    if !opt.enforced || new.is_empty() {
        return Verdict::Allowed(Allowed::unchanged());
    }
    if !rules.allows_privileged(req.namespace.as_deref().unwrap_or("")) {
        let added = PodView {
            metadata: pod.metadata.clone(),
            spec: crate::pod::Spec {
                ephemeral_containers: pod
                    .spec
                    .ephemeral_containers
                    .iter()
                    .filter(|c| new.contains(&c.name.as_str()))
                    .cloned()
                    .collect(),
                ..Default::default()
            },
        };
        let found = guard::beyond_landlock(&added);
        if !found.is_empty() {
            return Verdict::Denied(guard::beyond_landlock_message(
                pod,
                req.namespace.as_deref().unwrap_or(""),
                &found,
            ));
        }
    }
    if stored.spec.runtime_class_name.as_deref() != Some(RUNTIME_CLASS) {
        // Created before the pod opted in: nothing moat can do now, but say so.
        return Verdict::Allowed(Allowed::warning(format!(
            "pod {} does not run with runtimeClassName `{RUNTIME_CLASS}`: moat does not confine \
             ephemeral container {}",
            pod.display_name(),
            new.join(", ")
        )));
    }
    for name in new {
        let subject = format!("ephemeral container `{name}`");
        match pod_policy::node_policy(ann, name, &subject) {
            Ok(Some(_)) => {}
            Ok(None) => {
                return Verdict::Denied(format!(
                    "pod {}: {subject}: the pod carries no moat policy for it ({} or {}), so \
                     it would run unconfined; recreate the pod through the webhook, or with a \
                     {} annotation",
                    pod.display_name(),
                    annotations::container_key(name),
                    annotations::POLICY,
                    annotations::container_key(name)
                ))
            }
            Err(e) => return Verdict::Denied(format!("pod {}: {e}", pod.display_name())),
        }
    }
    Verdict::Allowed(Allowed::unchanged())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn request(operation: &str, sub: Option<&str>, object: Value, old: Option<Value>) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "apiVersion": API_VERSION, "kind": "AdmissionReview",
            "request": {"uid": "u-1", "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "subResource": sub, "operation": operation, "namespace": "ns", "name": "p",
                "object": object, "oldObject": old, "dryRun": false}
        }))
        .unwrap()
    }

    fn response(o: &Outcome) -> Value {
        serde_json::from_slice::<Value>(&o.body).unwrap()["response"].clone()
    }

    #[test]
    fn garbage_is_a_bad_request() {
        for body in [&b""[..], b"{", b"[]", b"null", b"{\"apiVersion\":\"admission.k8s.io/v1beta1\",\"kind\":\"AdmissionReview\"}",
            b"{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\"}",
            b"{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":{\"uid\":\"\",\"kind\":{},\"operation\":\"CREATE\"}}"] {
            assert!(review(body, Scope::Pod).is_err(), "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn unreadable_pod_is_denied_not_a_crash() {
        let body = request(
            "CREATE",
            None,
            json!({"spec": {"containers": "nope"}}),
            None,
        );
        let o = review(&body, Scope::Namespace).unwrap();
        assert!(matches!(o.decision, Decision::Denied(_)));
        assert_eq!(response(&o)["uid"], "u-1");
    }

    #[test]
    fn pod_without_object_is_denied() {
        let mut body: Value =
            serde_json::from_slice(&request("CREATE", None, Value::Null, None)).unwrap();
        body["request"].as_object_mut().unwrap().remove("object");
        let o = review(&serde_json::to_vec(&body).unwrap(), Scope::Namespace).unwrap();
        assert!(
            matches!(&o.decision, Decision::Denied(m) if m.contains("carries no object")),
            "{:?}",
            o.decision
        );
    }

    #[test]
    fn one_template_gets_one_answer_and_refusals_name_their_pod() {
        let pod = |name: &str, port: u16, policy: &str| {
            json!({"metadata": {"name": name, "annotations": {"moat.dev/policy": policy}},
                "spec": {"containers": [{"name": "c", "ports": [{"containerPort": port}]}]}})
        };
        let ok = "[network]\nconnect_tcp = [443]\n";
        let answer =
            |pod: Value| review(&request("CREATE", None, pod, None), Scope::Namespace).unwrap();
        let (a, b) = (answer(pod("a", 80, ok)), answer(pod("b", 80, ok)));
        assert!(
            matches!(a.decision, Decision::Patched(_)),
            "{:?}",
            a.decision
        );
        assert_eq!(
            a.body, b.body,
            "replicas of one template get the same answer"
        );
        // Another port is another template.
        let c = answer(pod("c", 81, ok));
        assert_ne!(response(&c)["patch"], response(&a)["patch"]);
        // The same bad template, twice: each refusal is worded for its own pod.
        let bad = "[network]\nconnect_tcp = 443\n";
        for name in ["d", "e"] {
            let o = answer(pod(name, 80, bad));
            assert!(
                matches!(&o.decision, Decision::Denied(m) if m.starts_with(&format!("pod {name}:"))),
                "{:?}",
                o.decision
            );
        }
    }

    #[test]
    fn pod_not_opted_in_is_unchanged() {
        let body = request(
            "CREATE",
            None,
            json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}}),
            None,
        );
        let o = review(&body, Scope::Pod).unwrap();
        assert_eq!(o.decision, Decision::Unchanged);
        assert_eq!(response(&o), json!({"uid": "u-1", "allowed": true}));
    }

    #[test]
    fn ephemeral_container_needs_a_policy_the_node_finds() {
        let old = json!({"metadata": {"name": "p", "annotations": {"moat.dev/enforce": "true"}},
            "spec": {"runtimeClassName": "moat", "containers": [{"name": "c"}]}});
        let mut new = old.clone();
        new["spec"]["ephemeralContainers"] = json!([{"name": "debugger"}]);
        let o = review(
            &request(
                "UPDATE",
                Some("ephemeralcontainers"),
                new.clone(),
                Some(old.clone()),
            ),
            Scope::Pod,
        )
        .unwrap();
        assert!(
            matches!(&o.decision, Decision::Denied(m) if m.contains("ephemeral container `debugger`")),
            "{:?}",
            o.decision
        );
        let mut old_ok = old.clone();
        old_ok["metadata"]["annotations"]["moat.dev/policy"] =
            json!("[network]\nhandled = [\"bind_tcp\"]\n");
        let o = review(
            &request("UPDATE", Some("ephemeralcontainers"), new, Some(old_ok)),
            Scope::Pod,
        )
        .unwrap();
        assert_eq!(o.decision, Decision::Unchanged);
    }
}
