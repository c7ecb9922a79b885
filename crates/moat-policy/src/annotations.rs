//! The annotations that carry policies on containers and Pods: the one contract between the
//! pod's author, the admission webhook (`moat-k8s`) and moat-runtime on the node.
//!
//! | key | written by | meaning |
//! |---|---|---|
//! | `moat.dev/enforce` | the author | `"true"` opts the pod in (webhook) |
//! | `moat.dev/policy` | the author (or the webhook, for containers added later) | a policy document, any dialect |
//! | `moat.dev/preset` | the author | a built-in preset's name |
//! | `moat.dev/compat` | the author | `strict` or `best-effort` |
//! | `moat.dev/ports-from-spec` | the author | `"false"`: no bind rules from containerPorts |
//! | `moat.dev/explain` | the author | `"true"`: the launcher reports denials (`moat run --explain`) |
//! | `moat.dev/observe` | the author | `"true"`: network counters (cgroup-bpf) even without a policy |
//! | `moat.dev/confined` | moat-runtime | set on a container it confined |
//! | `container.moat.dev/<name>` | the webhook (or the author, as input) | the final policy of one container |

use crate::model::Compat;
use std::collections::BTreeMap;

/// `"true"` opts a pod in (outside namespaces that opted in as a whole).
pub const ENFORCE: &str = "moat.dev/enforce";
/// A policy document for every container of the pod.
pub const POLICY: &str = "moat.dev/policy";
/// A built-in preset for every container of the pod.
pub const PRESET: &str = "moat.dev/preset";
/// `strict` or `best-effort`, when the policy does not say itself.
pub const COMPAT: &str = "moat.dev/compat";
/// `"false"` stops bind rules being derived from declared containerPorts.
pub const PORTS_FROM_SPEC: &str = "moat.dev/ports-from-spec";
/// `"true"` makes the launcher explain denials when the entrypoint ends.
pub const EXPLAIN: &str = "moat.dev/explain";
/// `"true"` makes moat-runtime count the container's network traffic (cgroup-bpf) even
/// when it has no policy; confined containers are always counted.
pub const OBSERVE: &str = "moat.dev/observe";
/// Set by moat-runtime in a confined container's config.json.
pub const CONFINED: &str = "moat.dev/confined";
/// Prefix of the per-container policy annotations; the container's name follows.
pub const CONTAINER_PREFIX: &str = "container.moat.dev/";

/// The `moat.dev/` keys moat knows; any other is refused, because a misspelt opt-in or
/// policy key would leave a container open without anyone noticing.
pub const KNOWN: [&str; 8] = [
    ENFORCE,
    POLICY,
    PRESET,
    COMPAT,
    PORTS_FROM_SPEC,
    EXPLAIN,
    OBSERVE,
    CONFINED,
];
const PREFIX: &str = "moat.dev/";

/// One annotation of the contract: its key, who writes it, what it means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Annotation {
    /// The key (`container.moat.dev/<container>` for the per-container ones).
    pub key: &'static str,
    /// Who writes it.
    pub written_by: &'static str,
    /// What it means.
    pub meaning: &'static str,
}

/// Every annotation moat reads or writes: the table above, for what reports them
/// (moat-runtime's `features`). A test holds it to [`KNOWN`].
pub const TABLE: [Annotation; 9] = [
    Annotation {
        key: ENFORCE,
        written_by: "the author",
        meaning: "\"true\" opts the pod in (webhook)",
    },
    Annotation {
        key: POLICY,
        written_by: "the author (or the webhook, for containers added later)",
        meaning: "Landlock policy document (moat TOML/JSON/YAML, landlockconfig, OCI process.landlock) enforced inside the container",
    },
    Annotation {
        key: PRESET,
        written_by: "the author",
        meaning: "name of a built-in moat policy preset enforced inside the container",
    },
    Annotation {
        key: COMPAT,
        written_by: "the author",
        meaning: "strict (default) or best-effort",
    },
    Annotation {
        key: PORTS_FROM_SPEC,
        written_by: "the author",
        meaning: "\"false\": no bind rules from the declared containerPorts",
    },
    Annotation {
        key: EXPLAIN,
        written_by: "the author",
        meaning: "\"true\": the launcher reports denials (moat run --explain)",
    },
    Annotation {
        key: OBSERVE,
        written_by: "the author",
        meaning: "\"true\": network counters (cgroup-bpf) even without a policy",
    },
    Annotation {
        key: CONFINED,
        written_by: "moat-runtime",
        meaning: "set on a container it confined (informative; refused on a pod)",
    },
    Annotation {
        key: "container.moat.dev/<container>",
        written_by: "the webhook (or the author, as input)",
        meaning: "the final policy of one container",
    },
];

/// The keys an author may write, for messages: every key of [`TABLE`] but what only
/// moat-runtime writes.
fn readable_keys() -> String {
    let keys: Vec<&str> = TABLE
        .iter()
        .filter(|a| a.written_by != "moat-runtime")
        .map(|a| a.key)
        .collect();
    keys.join(", ")
}

/// An annotation moat cannot accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnnotationError {
    /// A `moat.dev/` key moat does not know.
    #[error("unknown annotation `{0}` (moat reads {keys})", keys = readable_keys())]
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

/// A set of annotations, however the caller holds them (a Pod's map, config.json's
/// object read as pairs).
pub trait Annotations {
    /// The value of `key`.
    fn value(&self, key: &str) -> Option<&str>;
    /// Every key.
    fn keys(&self) -> impl Iterator<Item = &str>;
}

impl Annotations for BTreeMap<String, String> {
    fn value(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
    fn keys(&self) -> impl Iterator<Item = &str> {
        BTreeMap::keys(self).map(String::as_str)
    }
}

impl Annotations for [(&str, &str)] {
    fn value(&self, key: &str) -> Option<&str> {
        self.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }
    fn keys(&self) -> impl Iterator<Item = &str> {
        self.iter().map(|(k, _)| *k)
    }
}

/// The annotation key holding the policy of container `name`.
pub fn container_key(name: &str) -> String {
    format!("{CONTAINER_PREFIX}{name}")
}

/// Refuses `moat.dev/` keys moat does not know.
pub fn check_keys<A: Annotations + ?Sized>(annotations: &A) -> Result<(), AnnotationError> {
    match annotations
        .keys()
        .find(|k| k.starts_with(PREFIX) && !KNOWN.contains(k))
    {
        Some(k) => Err(AnnotationError::Unknown(k.to_string())),
        None => Ok(()),
    }
}

/// A yes/no annotation: `None` when absent. Only the exact strings `"true"` and `"false"`
/// are accepted, as everywhere in Kubernetes; `"yes"` or `"True"` are refused rather than
/// guessed.
pub fn flag<A: Annotations + ?Sized>(
    annotations: &A,
    key: &'static str,
) -> Result<Option<bool>, AnnotationError> {
    match annotations.value(key) {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(other) => Err(AnnotationError::NotABool {
            key,
            value: other.to_string(),
        }),
    }
}

/// `moat.dev/compat` (surrounding blanks ignored).
pub fn compat<A: Annotations + ?Sized>(annotations: &A) -> Result<Option<Compat>, AnnotationError> {
    match annotations.value(COMPAT).map(str::trim) {
        None => Ok(None),
        Some("strict") => Ok(Some(Compat::Strict)),
        Some("best-effort") => Ok(Some(Compat::BestEffort)),
        Some(other) => Err(AnnotationError::BadCompat(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_names_every_known_key_and_the_container_prefix() {
        let keys: Vec<&str> = TABLE.iter().map(|a| a.key).collect();
        for k in KNOWN {
            assert!(keys.contains(&k), "{k} missing from TABLE");
        }
        assert_eq!(keys.len(), KNOWN.len() + 1);
        assert!(keys.iter().any(|k| k.starts_with(CONTAINER_PREFIX)));
    }

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
        assert!(check_keys(&ann(&[("moat.dev", "x"), ("moat.devz/a", "x")])).is_ok());
        // The same through pairs, as moat-runtime reads config.json.
        let pairs: &[(&str, &str)] = &[(EXPLAIN, "true"), ("moat.dev/polcy", "x")];
        assert_eq!(
            check_keys(pairs),
            Err(AnnotationError::Unknown("moat.dev/polcy".into()))
        );
        assert_eq!(flag(pairs, EXPLAIN), Ok(Some(true)));
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
