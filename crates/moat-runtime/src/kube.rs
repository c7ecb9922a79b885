//! What Kubernetes hands a container's config.json through the CRI runtime: the
//! container's name, the pod annotations the runtime passes on, and the ports the Pod
//! declares.
//!
//! containerd names the container in `io.kubernetes.cri.container-name` and passes the pod
//! annotations listed in its runtime handler's `pod_annotations` (and the container
//! annotations in `container_annotations`); CRI-O names it in `io.kubernetes.container.name`
//! and passes every annotation. Which engine wrote a config.json is decided by the key it
//! always writes itself ([`Engine`]), and only that engine's keys are read. containerPorts never reach config.json as such: the kubelet
//! sends them as the container annotation `io.kubernetes.container.ports`, a JSON list of
//! `{"containerPort": N, "protocol": "TCP"}` objects (the `v1.ContainerPort` JSON).

use std::collections::BTreeSet;

/// The kubelet's container annotation with the declared ports.
pub const PORTS_ANNOTATION: &str = "io.kubernetes.container.ports";
/// containerd's container type (`sandbox` or `container`), written for every container its
/// CRI plugin creates.
pub const CONTAINERD_TYPE: &str = "io.kubernetes.cri.container-type";
/// containerd's container name.
pub const CONTAINERD_NAME: &str = "io.kubernetes.cri.container-name";
/// CRI-O's container type (`sandbox` or `container`), written for every container it
/// creates.
pub const CRIO_TYPE: &str = "io.kubernetes.cri-o.ContainerType";
/// The container name in a CRI-O container's config.json.
pub const CRIO_NAME: &str = "io.kubernetes.container.name";
/// The type value of a pod's sandbox (pause) container, for both engines.
pub const SANDBOX_TYPE: &str = "sandbox";

/// Which engine built the config.json, told apart by the key each one always writes
/// itself, so that a pod cannot pass for the other engine.
///
/// CRI-O copies every pod annotation into every container, so under CRI-O a pod can
/// supply containerd's keys (`io.kubernetes.cri.container-type: sandbox` would make the
/// container look like a pause container): CRI-O's own type key decides first, and then
/// only CRI-O's keys are read. containerd passes pod annotations only as its runtime
/// handler's `pod_annotations` allow (`moat.dev/*` and `container.moat.dev/*` as moat-node
/// installs it), so under containerd a pod cannot supply CRI-O's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// containerd's CRI plugin (Kubernetes).
    Containerd,
    /// CRI-O (Kubernetes).
    CriO,
    /// Neither: runc or podman used directly.
    Standalone,
}

impl Engine {
    /// The engine that wrote `annotations`.
    pub fn of(annotations: &[(&str, &str)]) -> Engine {
        let has = |key: &str| annotations.iter().any(|(k, _)| *k == key);
        if has(CRIO_TYPE) {
            Engine::CriO
        } else if has(CONTAINERD_TYPE) {
            Engine::Containerd
        } else {
            Engine::Standalone
        }
    }

    /// Whether the container is a Kubernetes one (created through the CRI).
    pub fn is_kubernetes(self) -> bool {
        self != Engine::Standalone
    }

    fn keys(self) -> Option<(&'static str, &'static str)> {
        match self {
            Engine::Containerd => Some((CONTAINERD_TYPE, CONTAINERD_NAME)),
            Engine::CriO => Some((CRIO_TYPE, CRIO_NAME)),
            Engine::Standalone => None,
        }
    }

    /// Whether this engine marked the container as a pod's sandbox (pause) container, read
    /// from this engine's own key. The other engine's type key, when present, is a pod's
    /// annotation (CRI-O copies them all; containerd only if its handler's
    /// `pod_annotations` were widened to let it through): it cannot make a container a
    /// sandbox, and when it says otherwise the container is not taken for one either (a
    /// pause container wrapped by mistake fails closed; a workload passed through would not).
    pub fn is_sandbox(self, annotations: &[(&str, &str)]) -> bool {
        let Some((own, _)) = self.keys() else {
            return false;
        };
        let says = |key: &str| annotations.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
        says(own) == Some(SANDBOX_TYPE)
            && [CONTAINERD_TYPE, CRIO_TYPE]
                .iter()
                .all(|k| says(k).is_none_or(|v| v == SANDBOX_TYPE))
    }

    /// The container's name as this engine recorded it (its own key only); `None` for a
    /// standalone container.
    pub fn container_name<'a>(self, annotations: &[(&'a str, &'a str)]) -> Option<&'a str> {
        let (_, name) = self.keys()?;
        annotations
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| *v)
            .filter(|v| !v.is_empty())
    }
}

/// A Kubernetes annotation that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KubeError {
    /// `io.kubernetes.container.ports` is not the kubelet's JSON list of ports.
    #[error("annotation {PORTS_ANNOTATION}: {0}")]
    Ports(String),
}

/// The TCP ports the container declares (protocol `TCP` or unset, as in the API), sorted
/// and without duplicates; `None` when the annotation is absent. Malformed input is an
/// error: a container must not start with a policy built from a misread port list.
pub fn declared_tcp_ports(
    annotations: &[(&str, &str)],
) -> Result<Option<BTreeSet<u16>>, KubeError> {
    let Some((_, text)) = annotations.iter().find(|(k, _)| *k == PORTS_ANNOTATION) else {
        return Ok(None);
    };
    let list: serde_json::Value =
        serde_json::from_str(text).map_err(|e| KubeError::Ports(format!("not JSON: {e}")))?;
    let entries = match &list {
        serde_json::Value::Array(a) => a.as_slice(),
        // The kubelet writes `null` for a container without ports.
        serde_json::Value::Null => &[],
        _ => return Err(KubeError::Ports("not a JSON list".into())),
    };
    let mut ports = BTreeSet::new();
    for (i, entry) in entries.iter().enumerate() {
        let obj = entry
            .as_object()
            .ok_or_else(|| KubeError::Ports(format!("entry {i} is not an object")))?;
        let protocol = match obj.get("protocol") {
            None | Some(serde_json::Value::Null) => "TCP",
            Some(serde_json::Value::String(p)) => p.as_str(),
            Some(_) => {
                return Err(KubeError::Ports(format!(
                    "entry {i}: `protocol` is not a string"
                )))
            }
        };
        let port = obj
            .get("containerPort")
            .and_then(|p| p.as_u64())
            .ok_or_else(|| {
                KubeError::Ports(format!("entry {i}: `containerPort` is not a number"))
            })?;
        let port = u16::try_from(port)
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| {
                KubeError::Ports(format!("entry {i}: containerPort {port} is not 1..=65535"))
            })?;
        match protocol {
            "TCP" => {
                ports.insert(port);
            }
            "UDP" | "SCTP" => {}
            other => {
                return Err(KubeError::Ports(format!(
                    "entry {i}: unknown protocol `{other}` (TCP, UDP, SCTP)"
                )))
            }
        }
    }
    Ok(Some(ports))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_engine_is_read_through_its_own_keys_only() {
        // CRI-O copies a pod's annotations: containerd's keys in a CRI-O container are
        // the pod's, not an engine's.
        let crio = [
            (CRIO_TYPE, "container"),
            (CRIO_NAME, "web"),
            (CONTAINERD_TYPE, "sandbox"),
            (CONTAINERD_NAME, "admin"),
        ];
        assert_eq!(Engine::of(&crio), Engine::CriO);
        assert!(!Engine::CriO.is_sandbox(&crio));
        assert_eq!(Engine::CriO.container_name(&crio), Some("web"));
        let containerd = [
            (CONTAINERD_TYPE, "container"),
            (CONTAINERD_NAME, "web"),
            (CRIO_NAME, "admin"),
        ];
        assert_eq!(Engine::of(&containerd), Engine::Containerd);
        assert_eq!(Engine::Containerd.container_name(&containerd), Some("web"));
        assert!(Engine::Containerd.is_sandbox(&[(CONTAINERD_TYPE, "sandbox")]));
        assert!(Engine::CriO.is_sandbox(&[(CRIO_TYPE, "sandbox")]));
        // The other engine's key, from the pod, disagreeing: not a sandbox.
        let mixed = [(CRIO_TYPE, "sandbox"), (CONTAINERD_TYPE, "container")];
        assert!(!Engine::of(&mixed).is_sandbox(&mixed));
        // Without either engine's key: standalone, no name, no sandbox.
        let alone = [(CONTAINERD_NAME, "web"), (CRIO_NAME, "web")];
        assert_eq!(Engine::of(&alone), Engine::Standalone);
        assert_eq!(Engine::Standalone.container_name(&alone), None);
        assert!(!Engine::Standalone.is_sandbox(&alone));
        assert_eq!(
            Engine::Containerd.container_name(&[(CONTAINERD_NAME, "")]),
            None
        );
    }

    #[test]
    fn ports_as_the_kubelet_writes_them() {
        let a = [(
            PORTS_ANNOTATION,
            r#"[{"name":"http","containerPort":80,"protocol":"TCP"},{"containerPort":8443},{"containerPort":53,"protocol":"UDP"},{"containerPort":80,"protocol":"TCP"}]"#,
        )];
        let p = declared_tcp_ports(&a).unwrap().unwrap();
        assert_eq!(p.into_iter().collect::<Vec<_>>(), [80, 8443]);
        assert_eq!(declared_tcp_ports(&[]).unwrap(), None);
        assert_eq!(
            declared_tcp_ports(&[(PORTS_ANNOTATION, "null")]).unwrap(),
            Some(BTreeSet::new())
        );
    }

    #[test]
    fn bad_ports_are_errors() {
        for text in [
            "",
            "{}",
            "[1]",
            r#"[{"containerPort":"80"}]"#,
            r#"[{"containerPort":70000}]"#,
            r#"[{"containerPort":0}]"#,
            r#"[{"containerPort":-1}]"#,
            r#"[{"containerPort":80,"protocol":"QUIC"}]"#,
            r#"[{"containerPort":80,"protocol":6}]"#,
        ] {
            assert!(
                declared_tcp_ports(&[(PORTS_ANNOTATION, text)]).is_err(),
                "{text} should be refused"
            );
        }
    }
}
