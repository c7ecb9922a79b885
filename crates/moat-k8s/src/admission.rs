//! AdmissionReview v1: from the request body the API server sends to the body of the
//! answer, as one pure function ([`review`]).
//!
//! What it handles:
//!
//! - **Pod CREATE.** An opted-in pod (see [`crate::opt_in`]) gets `runtimeClassName: moat`
//!   and, for every container, init container and ephemeral container, its final policy in
//!   `container.moat.dev/<name>` (see [`crate::pod_policy`]), as a JSON Patch. A pod whose
//!   policy does not parse, or that asks for another runtimeClassName, is refused with a
//!   message naming the container and the problem.
//! - **UPDATE of the `pods/ephemeralcontainers` subresource** (`kubectl debug`). The API
//!   server keeps only `spec.ephemeralContainers` of such an update and drops any change to
//!   the pod's annotations, a patch included, and the node only ever sees the annotations
//!   the pod was created with. So nothing is patched here: a new ephemeral container gets
//!   its `container.moat.dev/<name>` written at creation (when the author named it in
//!   advance), else the pod-wide policy that creation wrote. The webhook checks that the
//!   node will find a policy that parses, and refuses the container otherwise, so that no
//!   container runs unconfined in an opted-in pod.
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

use crate::annotations::{self, RUNTIME_CLASS};
use crate::opt_in::{self, Scope};
use crate::patch::{self, Op};
use crate::pod::PodView;
use crate::pod_policy;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

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

#[derive(Deserialize)]
struct ReviewIn<'a> {
    #[serde(rename = "apiVersion")]
    api_version: Option<String>,
    kind: Option<String>,
    #[serde(borrow)]
    request: Option<RequestIn<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RequestIn<'a> {
    uid: String,
    kind: GroupVersionKind,
    #[serde(default)]
    sub_resource: Option<String>,
    operation: String,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default, borrow)]
    object: Option<&'a RawValue>,
    #[serde(default, borrow)]
    old_object: Option<&'a RawValue>,
    #[serde(default)]
    dry_run: Option<bool>,
}

#[derive(Deserialize)]
struct GroupVersionKind {
    #[serde(default)]
    group: String,
    #[serde(default)]
    kind: String,
}

#[derive(Serialize)]
struct ReviewOut<'a> {
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    kind: &'static str,
    response: ResponseOut<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResponseOut<'a> {
    uid: &'a str,
    allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<StatusOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<String>,
}

#[derive(Serialize)]
struct StatusOut<'a> {
    code: u16,
    message: &'a str,
}

/// The result of handling one request, before it is serialised.
struct Verdict {
    ops: Vec<Op>,
    denied: Option<String>,
    warnings: Vec<String>,
}

impl Verdict {
    fn allow() -> Verdict {
        Verdict {
            ops: Vec::new(),
            denied: None,
            warnings: Vec::new(),
        }
    }

    fn deny(message: impl Into<String>) -> Verdict {
        Verdict {
            denied: Some(message.into()),
            ..Verdict::allow()
        }
    }
}

/// Answers one AdmissionReview body, received on the endpoint for `scope`.
pub fn review(body: &[u8], scope: Scope) -> Result<Outcome, BadRequest> {
    let review: ReviewIn<'_> =
        serde_json::from_slice(body).map_err(|e| BadRequest(e.to_string()))?;
    if review.api_version.as_deref() != Some(API_VERSION)
        || review.kind.as_deref() != Some("AdmissionReview")
    {
        return Err(BadRequest(format!(
            "expected apiVersion {API_VERSION} and kind AdmissionReview, got {} {}",
            review.api_version.as_deref().unwrap_or("(none)"),
            review.kind.as_deref().unwrap_or("(none)")
        )));
    }
    let req = review
        .request
        .ok_or_else(|| BadRequest("no `request`".to_string()))?;
    if req.uid.is_empty() {
        return Err(BadRequest("empty `request.uid`".to_string()));
    }

    let is_pod = req.kind.group.is_empty() && req.kind.kind == "Pod";
    let verdict = match (
        is_pod,
        req.operation.as_str(),
        req.sub_resource.as_deref().unwrap_or(""),
    ) {
        (true, "CREATE", "") => create(&req, scope),
        (true, "UPDATE", "ephemeralcontainers") => add_ephemeral(&req, scope),
        _ => Verdict::allow(),
    };

    let decision = match (&verdict.denied, verdict.ops.len()) {
        (Some(m), _) => Decision::Denied(m.clone()),
        (None, 0) => Decision::Unchanged,
        (None, n) => Decision::Patched(n),
    };
    let patch = if verdict.ops.is_empty() {
        None
    } else {
        // Serialising a Vec of plain structs cannot fail.
        let json = serde_json::to_vec(&verdict.ops).unwrap_or_default();
        Some(base64::engine::general_purpose::STANDARD.encode(json))
    };
    let out = ReviewOut {
        api_version: API_VERSION,
        kind: "AdmissionReview",
        response: ResponseOut {
            uid: &req.uid,
            allowed: verdict.denied.is_none(),
            status: verdict
                .denied
                .as_deref()
                .map(|message| StatusOut { code: 403, message }),
            patch_type: patch.as_ref().map(|_| "JSONPatch"),
            patch,
            warnings: verdict.warnings,
        },
    };
    let body = serde_json::to_vec(&out).map_err(|e| BadRequest(e.to_string()))?;
    let object = format!(
        "{}/{}",
        req.namespace.as_deref().unwrap_or(""),
        req.name.as_deref().unwrap_or("")
    );
    Ok(Outcome {
        body,
        decision,
        object,
        dry_run: req.dry_run.unwrap_or(false),
    })
}

/// Reads a Pod from the request's `object` or `oldObject`.
fn read_pod(raw: Option<&RawValue>, field: &str) -> Result<PodView, String> {
    let raw = raw.ok_or_else(|| format!("the request carries no {field}"))?;
    serde_json::from_str(raw.get()).map_err(|e| format!("cannot read the Pod in {field}: {e}"))
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
    let named = |e: &dyn std::fmt::Display| format!("pod {}: {e}", pod.display_name());
    let ann = pod.annotations();
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
    let mut plan = pod_policy::plan(pod).map_err(|e| named(&e))?;
    let warnings = opt
        .warning
        .into_iter()
        .chain(std::mem::take(&mut plan.warnings))
        .collect();
    Ok(Admitted::Confined { plan, warnings })
}

fn create(req: &RequestIn<'_>, scope: Scope) -> Verdict {
    let pod = match read_pod(req.object, "object") {
        Ok(p) => p,
        Err(m) => return Verdict::deny(m),
    };
    let (plan, warnings) = match admit_pod(&pod, scope) {
        Ok(Admitted::NotOptedIn) => return Verdict::allow(),
        Ok(Admitted::Confined { plan, warnings }) => (plan, warnings),
        Err(m) => return Verdict::deny(m),
    };
    let mut set: Vec<(String, String)> = plan
        .containers
        .into_iter()
        .map(|c| (annotations::container_key(&c.name), c.text))
        .collect();
    if let Some(f) = plan.fallback {
        set.push((annotations::POLICY.to_string(), f));
    }
    let mut ops = patch::set_annotations(pod.metadata.annotations.as_ref(), &set);
    if pod.spec.runtime_class_name.is_none() {
        ops.push(Op::add("/spec/runtimeClassName", RUNTIME_CLASS.into()));
    }
    Verdict {
        ops,
        denied: None,
        warnings,
    }
}

fn add_ephemeral(req: &RequestIn<'_>, scope: Scope) -> Verdict {
    let pod = match read_pod(req.object, "object") {
        Ok(p) => p,
        Err(m) => return Verdict::deny(m),
    };
    // What the API server stores (and the node saw) is the old object's metadata.
    let old = match req
        .old_object
        .map(|_| read_pod(req.old_object, "oldObject"))
    {
        Some(Ok(p)) => Some(p),
        Some(Err(m)) => return Verdict::deny(m),
        None => None,
    };
    let stored = old.as_ref().unwrap_or(&pod);
    let ann = stored.annotations();
    let opt = match opt_in::decide(scope, ann) {
        Ok(o) => o,
        Err(e) => return Verdict::deny(format!("pod {}: {e}", pod.display_name())),
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
        return Verdict::allow();
    }
    if stored.spec.runtime_class_name.as_deref() != Some(RUNTIME_CLASS) {
        // Created before the pod opted in: nothing moat can do now, but say so.
        let mut v = Verdict::allow();
        v.warnings.push(format!(
            "pod {} does not run with runtimeClassName `{RUNTIME_CLASS}`: moat does not confine \
             ephemeral container {}",
            pod.display_name(),
            new.join(", ")
        ));
        return v;
    }
    for name in new {
        let subject = format!("ephemeral container `{name}`");
        match pod_policy::node_policy(ann, name, &subject) {
            Ok(Some(_)) => {}
            Ok(None) => {
                return Verdict::deny(format!(
                    "pod {}: {subject}: the pod carries no moat policy for it ({} or {}), so \
                     it would run unconfined; recreate the pod through the webhook, or with a \
                     {} annotation",
                    pod.display_name(),
                    annotations::container_key(name),
                    annotations::POLICY,
                    annotations::container_key(name)
                ))
            }
            Err(e) => return Verdict::deny(format!("pod {}: {e}", pod.display_name())),
        }
    }
    Verdict::allow()
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
