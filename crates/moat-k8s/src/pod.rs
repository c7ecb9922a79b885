//! The parts of a Pod that decide its policy: annotations, `runtimeClassName`, and each
//! container's name and declared ports.
//!
//! Only these fields are read; everything else in the object is skipped unparsed. That
//! keeps admission fast (a Pod with a large spec costs little more than a small one) and
//! means a field this crate does not know can never make a valid Pod unreadable.

use serde::Deserialize;
use std::collections::BTreeMap;

/// A Pod, or a workload's pod template, reduced to what moat reads.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct PodView {
    /// `metadata`.
    #[serde(default)]
    pub metadata: Metadata,
    /// `spec`.
    #[serde(default)]
    pub spec: Spec,
}

/// `metadata` of a Pod or pod template.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Metadata {
    /// `metadata.name` (empty for templates and `generateName` pods).
    #[serde(default)]
    pub name: Option<String>,
    /// `metadata.generateName`, used in messages when there is no name yet.
    #[serde(default, rename = "generateName")]
    pub generate_name: Option<String>,
    /// `metadata.annotations`; `None` when the key is absent (the patch must then create
    /// the map rather than add to it).
    #[serde(default)]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// `spec` of a Pod.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct Spec {
    /// `spec.runtimeClassName`.
    #[serde(default)]
    pub runtime_class_name: Option<String>,
    /// `spec.containers`.
    #[serde(default)]
    pub containers: Vec<Container>,
    /// `spec.initContainers`.
    #[serde(default)]
    pub init_containers: Vec<Container>,
    /// `spec.ephemeralContainers`.
    #[serde(default)]
    pub ephemeral_containers: Vec<Container>,
    /// `spec.hostPID`: the pod sees (and can signal and trace) every process of the node.
    #[serde(default, rename = "hostPID")]
    pub host_pid: bool,
}

/// A container, an init container or an ephemeral container.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq, Hash)]
pub struct Container {
    /// `name`, unique across all three lists.
    #[serde(default)]
    pub name: String,
    /// `ports`.
    #[serde(default)]
    pub ports: Vec<ContainerPort>,
    /// `securityContext`: what decides whether Landlock can hold the container.
    #[serde(default, rename = "securityContext")]
    pub security_context: Option<SecurityContext>,
}

/// The parts of a container's `securityContext` moat looks at.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq, Hash)]
pub struct SecurityContext {
    /// `privileged`.
    #[serde(default)]
    pub privileged: Option<bool>,
    /// `capabilities`.
    #[serde(default)]
    pub capabilities: Option<Capabilities>,
}

/// `securityContext.capabilities`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq, Hash)]
pub struct Capabilities {
    /// `add`: capability names, `SYS_ADMIN` or `CAP_SYS_ADMIN`, or `ALL`.
    #[serde(default)]
    pub add: Vec<String>,
}

/// One entry of a container's `ports`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct ContainerPort {
    /// `containerPort`. Read as a wide integer so that an out-of-range value is reported
    /// by moat, with the container's name, rather than failing the whole document.
    pub container_port: i64,
    /// `protocol`: `TCP` (the default), `UDP` or `SCTP`.
    #[serde(default)]
    pub protocol: Option<String>,
}

/// Which of the pod's container lists a container is in.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ContainerKind {
    /// `spec.containers`.
    Container,
    /// `spec.initContainers`.
    Init,
    /// `spec.ephemeralContainers`.
    Ephemeral,
}

impl ContainerKind {
    /// How messages and `render` name the kind.
    pub fn name(self) -> &'static str {
        match self {
            ContainerKind::Container => "container",
            ContainerKind::Init => "init container",
            ContainerKind::Ephemeral => "ephemeral container",
        }
    }
}

impl PodView {
    /// The pod's annotations (empty when it has none).
    pub fn annotations(&self) -> &BTreeMap<String, String> {
        static EMPTY: BTreeMap<String, String> = BTreeMap::new();
        self.metadata.annotations.as_ref().unwrap_or(&EMPTY)
    }

    /// One annotation's value.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations().get(key).map(String::as_str)
    }

    /// Every container of the pod with its kind, in the order the kubelet starts them:
    /// init containers, containers, ephemeral containers.
    pub fn all_containers(&self) -> impl Iterator<Item = (ContainerKind, &Container)> {
        let s = &self.spec;
        s.init_containers
            .iter()
            .map(|c| (ContainerKind::Init, c))
            .chain(s.containers.iter().map(|c| (ContainerKind::Container, c)))
            .chain(
                s.ephemeral_containers
                    .iter()
                    .map(|c| (ContainerKind::Ephemeral, c)),
            )
    }

    /// How messages name the pod: its name, else its `generateName` prefix, else `(unnamed)`.
    pub fn display_name(&self) -> String {
        match (&self.metadata.name, &self.metadata.generate_name) {
            (Some(n), _) if !n.is_empty() => n.clone(),
            (_, Some(g)) if !g.is_empty() => format!("{g}*"),
            _ => "(unnamed)".to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_only_what_it_needs() {
        let pod: PodView = serde_json::from_value(serde_json::json!({
            "metadata": {"generateName": "web-", "labels": {"a": "b"}},
            "spec": {
                "containers": [{"name": "web", "image": "nginx",
                    "ports": [{"containerPort": 80}, {"containerPort": 53, "protocol": "UDP"}],
                    "futureField": {"x": [1, 2]}}],
                "initContainers": [{"name": "setup"}],
                "volumes": [{"name": "v", "emptyDir": {}}]
            },
            "status": {"phase": "Pending"}
        }))
        .unwrap();
        assert_eq!(pod.display_name(), "web-*");
        assert!(pod.metadata.annotations.is_none());
        let names: Vec<_> = pod.all_containers().map(|(k, c)| (k, &*c.name)).collect();
        assert_eq!(
            names,
            [
                (ContainerKind::Init, "setup"),
                (ContainerKind::Container, "web")
            ]
        );
        assert_eq!(
            pod.spec.containers[0].ports[1].protocol.as_deref(),
            Some("UDP")
        );
    }
}
