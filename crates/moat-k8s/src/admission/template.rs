//! Answers for pod templates admitted before.
//!
//! Whether a pod is allowed at creation, and with which patch and warnings, depends on the
//! endpoint it came through, its annotations and its spec (`runtimeClassName` and the
//! containers' names and ports), and on nothing else: not on its name, which only a
//! refusal mentions. The replicas of a Deployment, the pods of a Job, the pods a
//! DaemonSet puts on each node are all the same template under different names, so the
//! answer is kept per (endpoint, annotations, spec) in a [`Memo`], and a pod of a known
//! template costs a hash of those fields instead of a plan, a patch and its encoding.
//! Refusals are not kept: each is worded for its own pod.

use super::Allowed;
use crate::memo::Memo;
use crate::opt_in::Scope;
use crate::pod::{PodView, Spec};
use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

/// How many templates are kept.
const ENTRIES: usize = 256;
/// How many bytes of annotations and patches are kept at most.
const BYTES: usize = 16 << 20;

/// What the answer depends on, owned: the endpoint, the namespace's floor (as written),
/// the annotations and the spec.
type Template = (Scope, Arc<str>, Option<BTreeMap<String, String>>, Spec);

/// The answer for `pod` from the cache, else from `decide`, which is then kept if it
/// allows the pod.
pub(super) fn allowed(
    scope: Scope,
    floor: &str,
    pod: &PodView,
    decide: impl FnOnce() -> Result<Allowed, String>,
) -> Result<Arc<Allowed>, String> {
    static KNOWN: LazyLock<Memo<Template, Allowed>> = LazyLock::new(|| Memo::new(ENTRIES, BYTES));
    let annotations = pod.metadata.annotations.as_ref();
    let hash = KNOWN.hash_of(&(scope, floor, annotations, &pod.spec));
    let same = |(s, f, a, spec): &Template| {
        *s == scope && &**f == floor && a.as_ref() == annotations && *spec == pod.spec
    };
    if let Some(known) = KNOWN.get(hash, same) {
        return Ok(known);
    }
    let answer = Arc::new(decide()?);
    let bytes = size(pod) + answer.size();
    let template = (
        scope,
        Arc::from(floor),
        pod.metadata.annotations.clone(),
        pod.spec.clone(),
    );
    KNOWN.insert(hash, template, answer.clone(), bytes);
    Ok(answer)
}

/// Roughly what the template takes in memory.
fn size(pod: &PodView) -> usize {
    let annotations: usize = pod
        .annotations()
        .iter()
        .map(|(k, v)| k.len() + v.len())
        .sum();
    let containers: usize = pod
        .all_containers()
        .map(|(_, c)| c.name.len() + 32 * (1 + c.ports.len()))
        .sum();
    annotations + containers
}
