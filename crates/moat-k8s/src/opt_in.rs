//! Which pods moat confines.
//!
//! A pod opts in in one of two ways: its namespace carries the label `moat.dev/enforce:
//! "true"`, or the pod carries the annotation `moat.dev/enforce: "true"`. An AdmissionReview
//! does not carry the namespace's labels, so the MutatingWebhookConfiguration holds two
//! webhooks: one selects the opted-in namespaces and calls `/mutate/namespace`, the other
//! covers every other namespace and calls `/mutate`. The path tells which [`Scope`] applies.

use crate::annotations::{self, AnnotationError};
use std::collections::BTreeMap;

/// How the pod reached the webhook, and so how it can have opted in.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    /// From a namespace that opted in as a whole (`/mutate/namespace`): every pod is in.
    Namespace,
    /// From any other namespace (`/mutate`): only pods annotated `moat.dev/enforce: "true"`.
    Pod,
}

/// The decision for one pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OptIn {
    /// Whether moat confines the pod.
    pub enforced: bool,
    /// Something the pod's author should know about the decision.
    pub warning: Option<String>,
}

/// Decides whether a pod with these annotations is confined.
pub fn decide(
    scope: Scope,
    annotations: &BTreeMap<String, String>,
) -> Result<OptIn, AnnotationError> {
    let asked = annotations::flag(annotations, annotations::ENFORCE)?;
    Ok(match scope {
        // The namespace's owner decided; a pod cannot opt itself out of that, but it is
        // told so instead of being silently overruled.
        Scope::Namespace => OptIn {
            enforced: true,
            warning: (asked == Some(false)).then(|| {
                format!(
                    "{}: \"false\" is ignored: the namespace enforces moat for every pod",
                    annotations::ENFORCE
                )
            }),
        },
        Scope::Pod => OptIn {
            enforced: asked == Some(true),
            warning: None,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_wins_pod_annotation_opts_in() {
        let off: BTreeMap<_, _> = [(annotations::ENFORCE.to_string(), "false".to_string())].into();
        let on: BTreeMap<_, _> = [(annotations::ENFORCE.to_string(), "true".to_string())].into();
        let none = BTreeMap::new();
        assert!(decide(Scope::Namespace, &none).unwrap().enforced);
        let d = decide(Scope::Namespace, &off).unwrap();
        assert!(d.enforced && d.warning.is_some());
        assert!(!decide(Scope::Pod, &none).unwrap().enforced);
        assert!(!decide(Scope::Pod, &off).unwrap().enforced);
        assert!(decide(Scope::Pod, &on).unwrap().enforced);
        let typo: BTreeMap<_, _> = [(annotations::ENFORCE.to_string(), "yes".to_string())].into();
        assert!(decide(Scope::Pod, &typo).is_err());
    }
}
