//! The AdmissionReview v1 wire format: the fields of a request moat reads, and the
//! response it writes.
//!
//! A request is read in one pass, the Pod included, when it can be: reading the object as
//! raw JSON first and the Pod from that text after would scan every byte of it twice. When
//! the one pass fails, the request is read again in two steps, so that the two failures
//! keep their different answers: a body that is no AdmissionReview gets HTTP 400 (there is
//! no uid to answer to), while an AdmissionReview whose Pod cannot be read is answered
//! with a refusal that names the problem.

use super::{BadRequest, API_VERSION};
use crate::pod::PodView;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// A request's `object` or `oldObject`.
pub(super) enum PodIn {
    /// The field is absent or null.
    Absent,
    /// The Pod, reduced to what moat reads.
    Read(PodView),
    /// The field does not hold a Pod: why.
    Unreadable(String),
}

impl PodIn {
    /// The Pod, or the refusal for a request that carries none.
    pub(super) fn pod(&self, field: &str) -> Result<&PodView, String> {
        match self {
            PodIn::Read(pod) => Ok(pod),
            PodIn::Absent => Err(format!("the request carries no {field}")),
            PodIn::Unreadable(why) => Err(format!("cannot read the Pod in {field}: {why}")),
        }
    }
}

/// The parts of an AdmissionReview request moat reads.
pub(super) struct Request {
    pub uid: String,
    /// `kind.group` is empty and `kind.kind` is `Pod`.
    pub is_pod: bool,
    pub operation: String,
    pub sub_resource: Option<String>,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub object: PodIn,
    pub old_object: PodIn,
    pub dry_run: bool,
}

#[derive(Deserialize)]
struct ReviewIn<O> {
    #[serde(rename = "apiVersion")]
    api_version: Option<String>,
    kind: Option<String>,
    request: Option<RequestIn<O>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RequestIn<O> {
    uid: String,
    kind: GroupVersionKind,
    #[serde(default)]
    sub_resource: Option<String>,
    operation: String,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    name: Option<String>,
    // Absent reads as `None` without `default`, which would ask `O: Default`.
    object: Option<O>,
    old_object: Option<O>,
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

/// Reads an AdmissionReview v1 request.
pub(super) fn read(body: &[u8]) -> Result<Request, BadRequest> {
    if let Ok(review) = serde_json::from_slice::<ReviewIn<PodView>>(body) {
        return review_fields(review, PodIn::Read);
    }
    let review: ReviewIn<&RawValue> =
        serde_json::from_slice(body).map_err(|e| BadRequest(e.to_string()))?;
    review_fields(review, |raw| match serde_json::from_str(raw.get()) {
        Ok(pod) => PodIn::Read(pod),
        Err(e) => PodIn::Unreadable(e.to_string()),
    })
}

fn review_fields<O>(review: ReviewIn<O>, pod: impl Fn(O) -> PodIn) -> Result<Request, BadRequest> {
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
    let read = |o: Option<O>| o.map_or(PodIn::Absent, &pod);
    Ok(Request {
        uid: req.uid,
        is_pod: req.kind.group.is_empty() && req.kind.kind == "Pod",
        operation: req.operation,
        sub_resource: req.sub_resource,
        namespace: req.namespace,
        name: req.name,
        object: read(req.object),
        old_object: read(req.old_object),
        dry_run: req.dry_run.unwrap_or(false),
    })
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
    patch: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    warnings: &'a [String],
}

#[derive(Serialize)]
struct StatusOut<'a> {
    code: u16,
    message: &'a str,
}

/// The AdmissionReview response for `uid`: refused with `denied`'s message, else allowed
/// with `patch` (a JSON string holding the base64 JSON Patch) if any, and the warnings in
/// either case.
pub(super) fn write(
    uid: &str,
    denied: Option<&str>,
    patch: Option<&RawValue>,
    warnings: &[String],
) -> Result<Vec<u8>, BadRequest> {
    let out = ReviewOut {
        api_version: API_VERSION,
        kind: "AdmissionReview",
        response: ResponseOut {
            uid,
            allowed: denied.is_none(),
            status: denied.map(|message| StatusOut { code: 403, message }),
            patch_type: patch.map(|_| "JSONPatch"),
            patch,
            warnings,
        },
    };
    serde_json::to_vec(&out).map_err(|e| BadRequest(e.to_string()))
}
