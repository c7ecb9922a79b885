//! A pod's moat annotations are the ones its sandbox was created with.
//!
//! Before it starts a container (a restart, an ephemeral container), the kubelet sends the
//! *current* pod's annotations, and containerd copies those its handler passes into the new
//! container's config.json. moat's admission webhook refuses an update that changes them on
//! a confined pod; this is the node's own check, for when the webhook was not asked (a
//! namespace with `failurePolicy: Ignore` while it was down, a cluster without it).
//! containerd created the pod's sandbox (pause) container from the annotations the pod had
//! then, in the bundle beside this one (`<bundle>/../<sandbox-id>`, the id from its own
//! `io.kubernetes.cri.sandbox-id`); a container whose `moat.dev/*` and
//! `container.moat.dev/*` annotations differ from the sandbox's is refused.
//!
//! Only containerd's layout is read: CRI-O keeps its bundles elsewhere, and there the
//! webhook's refusal is the check. Without a sandbox bundle to compare with (not found,
//! or not containerd's sandbox), nothing is refused here.

use crate::config::Config;
use crate::error::RuntimeError;
use crate::kube::{Engine, CONTAINERD_TYPE, SANDBOX_TYPE};
use std::collections::BTreeMap;
use std::path::Path;

/// containerd's key naming the pod's sandbox.
pub const CONTAINERD_SANDBOX_ID: &str = "io.kubernetes.cri.sandbox-id";

/// Whether an annotation key is moat's and comes from the pod (not moat-runtime's own
/// informative marker).
fn is_pod_moat_key(key: &str) -> bool {
    (key.starts_with("moat.dev/") || key.starts_with(moat_policy::annotations::CONTAINER_PREFIX))
        && key != moat_policy::annotations::CONFINED
}

fn moat_annotations<'a>(ann: &[(&'a str, &'a str)]) -> BTreeMap<&'a str, &'a str> {
    ann.iter()
        .filter(|(k, _)| is_pod_moat_key(k))
        .map(|(k, v)| (*k, *v))
        .collect()
}

/// Refuses a containerd pod container whose moat annotations differ from those its
/// sandbox was created with.
pub fn check(bundle: &Path, cfg: &Config) -> Result<(), RuntimeError> {
    let ann = cfg.annotations()?;
    if Engine::of(&ann) != Engine::Containerd {
        return Ok(());
    }
    let Some((_, id)) = ann.iter().find(|(k, _)| *k == CONTAINERD_SANDBOX_ID) else {
        return Ok(());
    };
    // containerd's ids are hex; anything else cannot name a sibling directory.
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Ok(());
    }
    let Some(parent) = bundle.parent() else {
        return Ok(());
    };
    let sandbox_dir = parent.join(id);
    if sandbox_dir == bundle {
        return Ok(());
    }
    let sandbox = match Config::read(&sandbox_dir) {
        Ok(c) => c,
        Err(crate::config::ConfigError::Read { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            return Ok(())
        }
        Err(e) => return Err(e.into()),
    };
    let sandbox_ann = sandbox.annotations()?;
    let is_sandbox = sandbox_ann
        .iter()
        .any(|(k, v)| *k == CONTAINERD_TYPE && *v == SANDBOX_TYPE);
    if !is_sandbox {
        return Ok(());
    }
    let then = moat_annotations(&sandbox_ann);
    let now = moat_annotations(&ann);
    if then == now {
        return Ok(());
    }
    let mut changed: Vec<String> = Vec::new();
    for k in then.keys().chain(now.keys()) {
        let entry = match (then.get(k), now.get(k)) {
            (Some(a), Some(b)) if a == b => continue,
            (Some(_), Some(_)) => format!("{k} changed"),
            (Some(_), None) => format!("{k} removed"),
            (None, _) => format!("{k} added"),
        };
        if !changed.contains(&entry) {
            changed.push(entry);
        }
    }
    Err(RuntimeError::PodChanged(changed.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, ann: serde_json::Value) {
        std::fs::create_dir_all(dir).unwrap();
        let c = serde_json::json!({"process": {"args": ["sh"]}, "annotations": ann});
        std::fs::write(dir.join("config.json"), c.to_string()).unwrap();
    }

    #[test]
    fn a_container_keeps_its_sandboxs_moat_annotations() {
        let d = tempfile::tempdir().unwrap();
        let sandbox = serde_json::json!({
            CONTAINERD_TYPE: "sandbox",
            "moat.dev/enforce": "true",
            "container.moat.dev/web": "[network]\nbind_tcp = [80]\n",
        });
        write(&d.path().join("abc123"), sandbox.clone());
        let container = |extra: &[(&str, Option<&str>)]| {
            let mut a = sandbox.clone();
            a[CONTAINERD_TYPE] = "container".into();
            a[CONTAINERD_SANDBOX_ID] = "abc123".into();
            for (k, v) in extra {
                match v {
                    Some(v) => a[*k] = (*v).into(),
                    None => {
                        a.as_object_mut().unwrap().remove(*k);
                    }
                }
            }
            write(&d.path().join("c1"), a);
            Config::read(&d.path().join("c1")).unwrap()
        };
        let bundle = d.path().join("c1");
        assert!(check(&bundle, &container(&[])).is_ok());
        // moat-runtime's own marker and other annotations do not count.
        assert!(check(
            &bundle,
            &container(&[("moat.dev/confined", Some("true")), ("team", Some("b"))])
        )
        .is_ok());
        for (extra, what) in [
            (
                vec![("container.moat.dev/web", None)],
                "container.moat.dev/web removed",
            ),
            (
                vec![(
                    "container.moat.dev/web",
                    Some("[filesystem]\nunrestricted = true\n"),
                )],
                "container.moat.dev/web changed",
            ),
            (
                vec![("moat.dev/policy", Some("x"))],
                "moat.dev/policy added",
            ),
        ] {
            let e = check(&bundle, &container(&extra)).unwrap_err().to_string();
            assert!(e.contains(what), "{e}");
        }
        // No sandbox bundle to compare with, or a CRI-O container: nothing refused here.
        let mut a = sandbox.clone();
        a[CONTAINERD_TYPE] = "container".into();
        a[CONTAINERD_SANDBOX_ID] = "fff".into();
        a["moat.dev/policy"] = "x".into();
        write(&d.path().join("c2"), a);
        let c2 = Config::read(&d.path().join("c2")).unwrap();
        assert!(check(&d.path().join("c2"), &c2).is_ok());
    }
}
