//! The annotations moat reads and writes on a Pod: the contract between the webhook, the
//! pod's author and moat-runtime on the node.
//!
//! | key | written by | meaning |
//! |---|---|---|
//! | `moat.dev/enforce` | the author | `"true"` opts the pod in |
//! | `moat.dev/policy` | the author (or the webhook, see `pod_policy`) | a policy document, any dialect |
//! | `moat.dev/preset` | the author | a built-in preset's name |
//! | `moat.dev/compat` | the author | `strict` or `best-effort` |
//! | `moat.dev/ports-from-spec` | the author | `"false"`: add no bind rules from containerPorts |
//! | `container.moat.dev/<name>` | the webhook (or the author, as input) | the final policy of one container |

use moat_policy::Compat;
use std::collections::BTreeMap;

/// `"true"` opts a pod in (outside namespaces that opted in as a whole).
pub const ENFORCE: &str = "moat.dev/enforce";
/// A policy document for every container of the pod.
pub const POLICY: &str = "moat.dev/policy";
/// A built-in preset for every container of the pod.
pub const PRESET: &str = "moat.dev/preset";
/// `strict` or `best-effort`, when the policy does not say itself.
pub const COMPAT: &str = "moat.dev/compat";
/// `"false"` stops the webhook from adding bind rules for declared containerPorts.
pub const PORTS_FROM_SPEC: &str = "moat.dev/ports-from-spec";
/// Set by moat-runtime in a confined container's config.json; accepted, never written here.
pub const CONFINED: &str = "moat.dev/confined";
/// Prefix of the per-container policy annotations; the container's name follows.
pub const CONTAINER_PREFIX: &str = "container.moat.dev/";
/// The RuntimeClass (and runtime handler) that runs containers through moat-runtime.
pub const RUNTIME_CLASS: &str = "moat";

/// The `moat.dev/` keys moat knows; any other is refused, because a misspelt opt-in or
/// policy key would leave a container open without anyone noticing.
const KNOWN: [&str; 6] = [ENFORCE, POLICY, PRESET, COMPAT, PORTS_FROM_SPEC, CONFINED];
const PREFIX: &str = "moat.dev/";

/// An annotation moat cannot accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnnotationError {
    /// A `moat.dev/` key moat does not know.
    #[error("unknown annotation `{0}` (moat reads {ENFORCE}, {POLICY}, {PRESET}, {COMPAT}, {PORTS_FROM_SPEC} and {CONTAINER_PREFIX}<container>)")]
    Unknown(String),
    /// A yes/no annotation with another value.
    #[error("annotation {key}: `{value}` is neither \"true\" nor \"false\"")]
    NotABool {
        /// The annotation.
        key: &'static str,
        /// Its value.
        value: String,
    },
    /// `moat.dev/compat` with another value than `strict` or `best-effort`.
    #[error("annotation {COMPAT}: `{0}` is neither `strict` nor `best-effort`")]
    BadCompat(String),
}

/// The annotation key holding the policy of container `name`.
pub fn container_key(name: &str) -> String {
    format!("{CONTAINER_PREFIX}{name}")
}

/// Refuses `moat.dev/` keys moat does not know.
pub fn check_keys(annotations: &BTreeMap<String, String>) -> Result<(), AnnotationError> {
    // BTreeMap: the `moat.dev/` keys are one contiguous run, found without a full scan.
    match annotations
        .range::<str, _>((
            std::ops::Bound::Included(PREFIX),
            std::ops::Bound::Unbounded,
        ))
        .take_while(|(k, _)| k.starts_with(PREFIX))
        .find(|(k, _)| !KNOWN.contains(&k.as_str()))
    {
        Some((k, _)) => Err(AnnotationError::Unknown(k.clone())),
        None => Ok(()),
    }
}

/// A yes/no annotation: `None` when absent. Only the exact strings `"true"` and `"false"`
/// are accepted, as everywhere in Kubernetes; `"yes"` or `"True"` are refused rather than
/// guessed.
pub fn flag(
    annotations: &BTreeMap<String, String>,
    key: &'static str,
) -> Result<Option<bool>, AnnotationError> {
    match annotations.get(key).map(String::as_str) {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(other) => Err(AnnotationError::NotABool {
            key,
            value: other.to_string(),
        }),
    }
}

/// `moat.dev/compat`, read as moat-runtime reads it (surrounding blanks ignored).
pub fn compat(annotations: &BTreeMap<String, String>) -> Result<Option<Compat>, AnnotationError> {
    match annotations.get(COMPAT).map(|v| v.trim()) {
        None => Ok(None),
        Some("strict") => Ok(Some(Compat::Strict)),
        Some("best-effort") => Ok(Some(Compat::BestEffort)),
        Some(other) => Err(AnnotationError::BadCompat(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ann(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn unknown_moat_keys_are_refused_others_ignored() {
        assert!(check_keys(&ann(&[
            (ENFORCE, "true"),
            ("example.com/x", "1"),
            ("container.moat.dev/web", "")
        ]))
        .is_ok());
        assert_eq!(
            check_keys(&ann(&[("moat.dev/enforse", "true")])),
            Err(AnnotationError::Unknown("moat.dev/enforse".into()))
        );
        // A key sorting before the prefix run, and one after it.
        assert!(check_keys(&ann(&[("moat.dev", "x"), ("moat.devz/a", "x")])).is_ok());
    }

    #[test]
    fn flags_are_exact() {
        let a = ann(&[(ENFORCE, "true"), (PORTS_FROM_SPEC, "True")]);
        assert_eq!(flag(&a, ENFORCE), Ok(Some(true)));
        assert!(flag(&a, PORTS_FROM_SPEC).is_err());
        assert_eq!(flag(&a, COMPAT), Ok(None));
        assert_eq!(
            compat(&ann(&[(COMPAT, " best-effort ")])),
            Ok(Some(Compat::BestEffort))
        );
        assert!(compat(&ann(&[(COMPAT, "lenient")])).is_err());
    }
}
