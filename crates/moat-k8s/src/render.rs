//! `moat-k8s render`: the policy the cluster would enforce, container by container, for
//! Pod and workload manifests, without a cluster.
//!
//! Each document's pod (a Pod, or the pod template of a Deployment, StatefulSet,
//! DaemonSet, ReplicaSet, Job or CronJob) goes through the same decision as the webhook
//! ([`admission::admit_pod`]), so what `render` prints is what the webhook writes.
//! Namespace labels are not in a manifest: `--namespace-enforced` renders as if the
//! namespace opted in.

use crate::admission::{self, Admitted};
use crate::floors::Floor;
use crate::opt_in::Scope;
use crate::pod::PodView;
use crate::pod_policy::PodPlan;
use serde::Deserialize;
use serde_json::{json, Value};

/// The rendering of one document of the input.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// 1-based position of the document in the input (within a `List`, the list's).
    pub document: usize,
    /// The object's `kind`.
    pub kind: String,
    /// The object's `metadata.name`.
    pub name: String,
    /// What the webhook would do with its pods.
    pub outcome: Outcome,
}

/// What the webhook would do with one document's pods.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Not a pod or workload: nothing to render.
    Skipped,
    /// The pods do not opt in.
    NotOptedIn,
    /// The pods are confined.
    Confined {
        /// Every container's policy and the pod-wide fallback.
        plan: PodPlan,
        /// The warnings the author would see.
        warnings: Vec<String>,
    },
    /// The webhook would refuse the pods, or the document cannot be read.
    Refused(String),
}

/// An input that is not YAML or JSON at all.
#[derive(Debug, thiserror::Error)]
#[error("{file}: document {document}: {message}")]
pub struct RenderError {
    /// The file name (`-` for standard input).
    pub file: String,
    /// 1-based document position.
    pub document: usize,
    /// The parser's message.
    pub message: String,
}

/// Renders every document of `text` (YAML, one or more documents, or JSON), for a
/// namespace without a floors file.
#[cfg(test)]
pub fn render(file: &str, text: &str, scope: Scope) -> Result<Vec<Rendered>, RenderError> {
    render_with(file, text, scope, &Floor::default())
}

/// `render` with the namespace's floor, which applies when the namespace enforces moat
/// ([`Scope::Namespace`]), as the webhook applies it.
pub fn render_with(
    file: &str,
    text: &str,
    scope: Scope,
    floor: &Floor,
) -> Result<Vec<Rendered>, RenderError> {
    let mut out = Vec::new();
    for (i, doc) in serde_norway::Deserializer::from_str(text).enumerate() {
        let document = i + 1;
        let value = Value::deserialize(doc).map_err(|e| RenderError {
            file: file.to_string(),
            document,
            message: e.to_string(),
        })?;
        match value.get("kind").and_then(Value::as_str) {
            Some("List") => {
                let items = value.get("items").and_then(Value::as_array);
                for item in items.into_iter().flatten() {
                    out.push(render_object(document, item, scope, floor));
                }
            }
            _ if value.is_null() => {} // an empty document, as after a trailing `---`
            _ => out.push(render_object(document, &value, scope, floor)),
        }
    }
    Ok(out)
}

/// Where a kind keeps its pod template.
fn template_path(kind: &str) -> Option<&'static str> {
    match kind {
        "Pod" => Some(""),
        "Deployment"
        | "StatefulSet"
        | "DaemonSet"
        | "ReplicaSet"
        | "Job"
        | "ReplicationController" => Some("/spec/template"),
        "CronJob" => Some("/spec/jobTemplate/spec/template"),
        _ => None,
    }
}

fn render_object(document: usize, value: &Value, scope: Scope, floor: &Floor) -> Rendered {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("").to_string();
    let kind = text(value.get("kind"));
    let name = text(value.pointer("/metadata/name"));
    let outcome = match template_path(&kind) {
        None => Outcome::Skipped,
        Some(path) => match value.pointer(path) {
            None => Outcome::Refused(format!("no pod template at {path}")),
            Some(template) => match PodView::deserialize(template) {
                Err(e) => Outcome::Refused(format!("cannot read the pod: {e}")),
                Ok(mut pod) => {
                    // A template has no name of its own: messages name the workload.
                    if pod.metadata.name.is_none() {
                        pod.metadata.name = Some(name.clone());
                    }
                    match admission::admit_pod_with(&pod, scope, Some(floor)) {
                        Ok(Admitted::NotOptedIn) => Outcome::NotOptedIn,
                        Ok(Admitted::Confined { plan, warnings }) => {
                            Outcome::Confined { plan, warnings }
                        }
                        Err(m) => Outcome::Refused(m),
                    }
                }
            },
        },
    };
    Rendered {
        document,
        kind,
        name,
        outcome,
    }
}

impl Rendered {
    /// Whether the webhook would refuse this document's pods.
    pub fn is_refused(&self) -> bool {
        matches!(self.outcome, Outcome::Refused(_))
    }
}

/// A policy as moat TOML, for people; the annotation's own text (moat JSON) only if TOML
/// cannot be written, which the serialiser never refuses for moat's document.
fn readable(policy: &moat_policy::Policy, annotation: &str) -> String {
    moat_policy::write::to_moat_toml(policy).map_or_else(|_| annotation.to_string(), |w| w.text)
}

/// Human-readable output: a comment line per container, then its policy as moat TOML (the
/// annotations themselves hold it as moat JSON, the Kubernetes trip's canonical form).
pub fn to_text(file: &str, rendered: &[Rendered]) -> String {
    let mut s = String::new();
    for r in rendered {
        let head = format!("# {file}, document {}: {} {}", r.document, r.kind, r.name);
        match &r.outcome {
            Outcome::Skipped => s.push_str(&format!("{head}: not a pod or workload, skipped\n\n")),
            Outcome::NotOptedIn => s.push_str(&format!(
                "{head}: not opted in, moat does not confine it (annotate the pod template \
                 moat.dev/enforce: \"true\", or label the namespace and render with \
                 --namespace-enforced)\n\n"
            )),
            Outcome::Refused(m) => {
                s.push_str(&format!("{head}: the webhook would refuse it: {m}\n\n"))
            }
            Outcome::Confined { plan, warnings } => {
                s.push_str(&format!("{head}: runtimeClassName moat\n"));
                for w in warnings {
                    s.push_str(&format!("# warning: {w}\n"));
                }
                s.push('\n');
                for c in &plan.containers {
                    let kind = c.kind.map_or("container to come", |k| k.name());
                    let ports = if c.ports.is_empty() {
                        String::new()
                    } else {
                        let list: Vec<String> = c.ports.iter().map(u16::to_string).collect();
                        format!(", may bind TCP {} (containerPort)", list.join(", "))
                    };
                    let floored = if c.floored {
                        ", with the namespace's floor (the effective policy)"
                    } else {
                        ""
                    };
                    s.push_str(&format!(
                        "## {kind} {}: {}{ports}{floored}\n{}\n",
                        c.name,
                        c.source.describe(&c.name),
                        readable(&c.policy, &c.text)
                    ));
                }
                if let Some(f) = &plan.fallback {
                    s.push_str(&format!(
                        "## containers added later (ephemeral), annotation moat.dev/policy\n{}\n",
                        readable(&f.policy, &f.text)
                    ));
                }
            }
        }
    }
    s
}

/// Machine-readable output: one JSON object per document.
pub fn to_json(file: &str, rendered: &[Rendered]) -> Value {
    let docs: Vec<Value> = rendered
        .iter()
        .map(|r| {
            let mut o =
                json!({"file": file, "document": r.document, "kind": r.kind, "name": r.name});
            let extra = match &r.outcome {
                Outcome::Skipped => json!({"outcome": "skipped"}),
                Outcome::NotOptedIn => json!({"outcome": "not-opted-in"}),
                Outcome::Refused(m) => json!({"outcome": "refused", "message": m}),
                Outcome::Confined { plan, warnings } => json!({
                    "outcome": "confined",
                    "runtimeClassName": crate::annotations::RUNTIME_CLASS,
                    "warnings": warnings,
                    "containers": plan.containers.iter().map(|c| json!({
                        "name": c.name,
                        "kind": c.kind.map(|k| k.name()),
                        "source": c.source.describe(&c.name),
                        "ports": c.ports,
                        "floor": c.floored,
                        "policy": c.text,
                    })).collect::<Vec<_>>(),
                    "podPolicy": plan.fallback.as_ref().map(|f| &f.text),
                }),
            };
            if let (Some(o), Value::Object(extra)) = (o.as_object_mut(), extra) {
                o.extend(extra);
            }
            o
        })
        .collect();
    Value::Array(docs)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFESTS: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    metadata:
      annotations: {moat.dev/enforce: "true"}
    spec:
      containers:
        - name: web
          image: nginx
          ports: [{containerPort: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly}
spec:
  jobTemplate:
    spec:
      template:
        metadata:
          annotations: {moat.dev/preset: nope}
        spec:
          containers: [{name: job}]
---
"#;

    #[test]
    fn renders_each_document() {
        let r = render("m.yaml", MANIFESTS, Scope::Pod).unwrap();
        assert_eq!(r.len(), 3);
        let Outcome::Confined { plan, .. } = &r[0].outcome else {
            panic!("{:?}", r[0].outcome)
        };
        assert!(plan.containers[0].text.contains("\"bind_tcp\":[80]"));
        assert!(to_text("m.yaml", &r).contains("bind_tcp = [80]"));
        assert!(matches!(r[1].outcome, Outcome::Skipped));
        assert!(matches!(r[2].outcome, Outcome::NotOptedIn));
        let r = render("m.yaml", MANIFESTS, Scope::Namespace).unwrap();
        assert!(
            matches!(&r[2].outcome, Outcome::Refused(m) if m.contains("pod nightly") && m.contains("nope"))
        );
        let text = to_text("m.yaml", &r);
        assert!(
            text.contains("# m.yaml, document 3: CronJob nightly: the webhook would refuse it"),
            "{text}"
        );
        assert_eq!(
            to_json("m.yaml", &r)[0]["containers"][0]["ports"],
            json!([80])
        );
    }

    #[test]
    fn unreadable_yaml_names_file_and_document() {
        let e = render("bad.yaml", "kind: Pod\n---\nkind: [\n", Scope::Pod).unwrap_err();
        assert!(e.to_string().starts_with("bad.yaml: document 2: "), "{e}");
    }
}
