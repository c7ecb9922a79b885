//! What keeps an enforced pod enforced after the webhook wrote its policies: moat's
//! internal annotations are moat's alone, moat's annotations do not change after creation,
//! and containers Landlock cannot hold (privileged, dangerous capabilities, the node's PID
//! namespace) are refused unless the operator lets a namespace have them
//! ([`crate::floors::Rules`]).

use crate::annotations::{self, CONTAINER_PREFIX};
use crate::pod::PodView;
use std::collections::{BTreeMap, BTreeSet};

/// Annotations only moat writes (on the node, into config.json); a pod never carries them.
pub const INTERNAL: &[&str] = &[annotations::CONFINED];

/// Capabilities that let a process undo or step around a Landlock sandbox: mount and
/// namespace tricks, kernel modules, raw device and memory access, tracing other
/// processes, BPF, reading any file by handle, changing the network, LSM administration.
pub const DANGEROUS_CAPS: &[&str] = &[
    "ALL",
    "SYS_ADMIN",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_PTRACE",
    "SYS_BOOT",
    "BPF",
    "PERFMON",
    "DAC_READ_SEARCH",
    "NET_ADMIN",
    "MAC_ADMIN",
    "MAC_OVERRIDE",
];

/// The first internal annotation the pod carries.
pub fn internal_annotation(ann: &BTreeMap<String, String>) -> Option<&'static str> {
    INTERNAL.iter().copied().find(|k| ann.contains_key(*k))
}

/// The message for a pod carrying an internal annotation.
pub fn internal_message(pod: &PodView, key: &str) -> String {
    format!(
        "pod {}: annotation {key} is written by moat-runtime on the node, never by a pod; remove it",
        pod.display_name()
    )
}

/// Whether an annotation key is moat's (`moat.dev/...` or `container.moat.dev/...`).
pub fn is_moat_key(key: &str) -> bool {
    key.starts_with("moat.dev/") || key.starts_with(CONTAINER_PREFIX)
}

/// How moat's annotations differ between `old` and `new`: one entry per key added,
/// removed or changed, in key order.
pub fn moat_changes(old: &BTreeMap<String, String>, new: &BTreeMap<String, String>) -> Vec<String> {
    let keys: BTreeSet<&String> = old
        .keys()
        .chain(new.keys())
        .filter(|k| is_moat_key(k))
        .collect();
    keys.into_iter()
        .filter_map(|k| match (old.get(k), new.get(k)) {
            (Some(a), Some(b)) if a == b => None,
            (Some(_), Some(_)) => Some(format!("{k} changed")),
            (Some(_), None) => Some(format!("{k} removed")),
            (None, _) => Some(format!("{k} added")),
        })
        .collect()
}

/// What in the pod Landlock cannot hold, one entry per finding, in spec order.
pub fn beyond_landlock(pod: &PodView) -> Vec<String> {
    let mut out = Vec::new();
    if pod.spec.host_pid {
        out.push("hostPID: true (the node's processes are visible and reachable)".to_string());
    }
    for (kind, c) in pod.all_containers() {
        let Some(sc) = &c.security_context else {
            continue;
        };
        let subject = format!("{} `{}`", kind.name(), c.name);
        if sc.privileged == Some(true) {
            out.push(format!("{subject}: privileged: true"));
        }
        let added = sc.capabilities.iter().flat_map(|caps| caps.add.iter());
        for cap in added {
            let name = cap.trim().to_ascii_uppercase();
            let name = name.strip_prefix("CAP_").unwrap_or(&name);
            if DANGEROUS_CAPS.contains(&name) {
                out.push(format!("{subject}: capability {cap} added"));
            }
        }
    }
    out
}

/// The message for a pod Landlock cannot hold.
pub fn beyond_landlock_message(pod: &PodView, namespace: &str, found: &[String]) -> String {
    format!(
        "pod {}: moat confines this pod with Landlock, which cannot hold {}; remove it, or \
         let namespace `{namespace}` run such pods (the webhook's --allow-privileged {namespace}, \
         or allow_privileged = true in its floors file)",
        pod.display_name(),
        found.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(v: serde_json::Value) -> PodView {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn changes_to_moat_keys_only() {
        let old: BTreeMap<String, String> = [
            ("moat.dev/enforce", "true"),
            ("container.moat.dev/web", "p"),
            ("team", "a"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let mut new = old.clone();
        new.insert("team".into(), "b".into());
        assert!(moat_changes(&old, &new).is_empty());
        new.remove("container.moat.dev/web");
        new.insert("moat.dev/policy".into(), "x".into());
        new.insert("moat.dev/enforce".into(), "false".into());
        assert_eq!(
            moat_changes(&old, &new),
            [
                "container.moat.dev/web removed",
                "moat.dev/enforce changed",
                "moat.dev/policy added"
            ]
        );
    }

    #[test]
    fn what_landlock_cannot_hold() {
        let p = pod(serde_json::json!({"spec": {"hostPID": true, "containers": [
            {"name": "a", "securityContext": {"privileged": true}},
            {"name": "b", "securityContext": {"capabilities": {"add": ["NET_BIND_SERVICE", "cap_sys_admin", "SYS_MODULE"]}}},
            {"name": "c", "securityContext": {"privileged": false, "capabilities": {"add": ["CHOWN"]}}},
        ]}}));
        let found = beyond_landlock(&p);
        assert_eq!(found.len(), 4, "{found:?}");
        assert!(found[0].starts_with("hostPID"));
        assert!(found[1].contains("`a`: privileged"));
        assert!(found[2].contains("cap_sys_admin"));
        assert!(found[3].contains("SYS_MODULE"));
        assert!(beyond_landlock(&pod(
            serde_json::json!({"spec": {"containers": [{"name": "x"}]}})
        ))
        .is_empty());
    }
}
