//! What Kubernetes hands a container's config.json through the CRI runtime: the
//! container's name, the pod annotations the runtime passes on, and the ports the Pod
//! declares.
//!
//! containerd names the container in `io.kubernetes.cri.container-name` and passes the pod
//! annotations listed in its runtime handler's `pod_annotations` (and the container
//! annotations in `container_annotations`); CRI-O names it in `io.kubernetes.container.name`
//! and passes every annotation. containerPorts never reach config.json as such: the kubelet
//! sends them as the container annotation `io.kubernetes.container.ports`, a JSON list of
//! `{"containerPort": N, "protocol": "TCP"}` objects (the `v1.ContainerPort` JSON).

use std::collections::BTreeSet;

/// The kubelet's container annotation with the declared ports.
pub const PORTS_ANNOTATION: &str = "io.kubernetes.container.ports";
/// Annotations naming the container: containerd's, then CRI-O's.
pub const NAME_ANNOTATIONS: [&str; 2] = [
    "io.kubernetes.cri.container-name",
    "io.kubernetes.container.name",
];

/// A Kubernetes annotation that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KubeError {
    /// `io.kubernetes.container.ports` is not the kubelet's JSON list of ports.
    #[error("annotation {PORTS_ANNOTATION}: {0}")]
    Ports(String),
}

/// The container's name as the CRI runtime recorded it.
pub fn container_name<'a>(annotations: &[(&'a str, &'a str)]) -> Option<&'a str> {
    NAME_ANNOTATIONS.iter().find_map(|key| {
        annotations
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| *v)
            .filter(|v| !v.is_empty())
    })
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
    fn names_containerd_first() {
        let a = [
            ("io.kubernetes.container.name", "crio-name"),
            ("io.kubernetes.cri.container-name", "web"),
        ];
        assert_eq!(container_name(&a), Some("web"));
        assert_eq!(container_name(&a[..1]), Some("crio-name"));
        assert_eq!(container_name(&[]), None);
        assert_eq!(
            container_name(&[("io.kubernetes.cri.container-name", "")]),
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
