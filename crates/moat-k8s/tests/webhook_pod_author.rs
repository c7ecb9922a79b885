//! A pod author against the webhook, with the real binary over HTTPS: AdmissionReviews for
//! pod CREATE, pod UPDATE and the ephemeralcontainers subresource, as the API server sends
//! them when someone with the `edit` role creates, annotates or debugs a pod. Each refusal
//! has its control: the same request where moat does not confine the pod (or where the
//! operator allowed it) goes through.

mod common;

use common::client::{connector, Connection};
use common::Webhook;
use serde_json::{json, Value};

fn send(w: &Webhook, path: &str, body: Vec<u8>) -> Value {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (status, bytes) = rt.block_on(async {
        let mut c = Connection::open(&connector(&w.ca_pem), w.addr)
            .await
            .expect("connect");
        c.send("POST", path, body).await.expect("request")
    });
    assert_eq!(status.as_u16(), 200, "{}", String::from_utf8_lossy(&bytes));
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    v["response"].clone()
}

fn review(
    operation: &str,
    sub: Option<&str>,
    ns: &str,
    object: &Value,
    old: Option<&Value>,
) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "9d1c", "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "subResource": sub, "name": "web", "namespace": ns, "operation": operation,
            "userInfo": {"username": "author"}, "object": object, "oldObject": old,
            "dryRun": false
        }
    }))
    .unwrap()
}

/// The refusal's message, or `None` when the request was allowed.
fn denied(r: &Value) -> Option<String> {
    if r["allowed"] == true {
        None
    } else {
        Some(r["status"]["message"].as_str().unwrap_or("").to_string())
    }
}

/// The pod `web` as the API server stores it after moat's webhook: runtimeClassName moat
/// and its container's policy.
fn stored_pod(extra: &[(&str, &str)]) -> Value {
    let mut ann = json!({
        "moat.dev/enforce": "true",
        "container.moat.dev/web": "[network]\nhandled = [\"bind_tcp\"]\nbind_tcp = [80]\n",
    });
    for (k, v) in extra {
        ann[*k] = (*v).into();
    }
    json!({
        "metadata": {"name": "web", "annotations": ann},
        "spec": {"runtimeClassName": "moat", "containers": [
            {"name": "web", "image": "nginx", "ports": [{"containerPort": 80}]}]}
    })
}

fn new_pod(annotations: Value, container: Value) -> Value {
    json!({"metadata": {"name": "web", "annotations": annotations},
        "spec": {"containers": [container]}})
}

#[test]
fn moats_internal_annotation_is_refused_on_any_pod() {
    let w = Webhook::start(&[]);
    let spoof = new_pod(
        json!({"moat.dev/confined": "true"}),
        json!({"name": "web", "command": ["/.moat/moat", "run", "--", "sh"]}),
    );
    for path in ["/mutate/namespace", "/mutate"] {
        let m = denied(&send(
            &w,
            path,
            review("CREATE", None, "shop", &spoof, None),
        ))
        .unwrap_or_else(|| panic!("{path}: allowed"));
        assert!(
            m.contains("moat.dev/confined") && m.contains("moat-runtime"),
            "{m}"
        );
    }
    // Control: the same pod without it is admitted (and confined) in the enforced namespace.
    let plain = new_pod(json!({}), json!({"name": "web"}));
    let r = send(
        &w,
        "/mutate/namespace",
        review("CREATE", None, "shop", &plain, None),
    );
    assert_eq!(denied(&r), None);
    assert!(r["patch"].is_string());
    // Added by an update, on any pod: refused too.
    let before = new_pod(json!({"team": "a"}), json!({"name": "web"}));
    let after = new_pod(
        json!({"team": "a", "moat.dev/confined": "true"}),
        json!({"name": "web"}),
    );
    let r = send(
        &w,
        "/mutate",
        review("UPDATE", None, "other", &after, Some(&before)),
    );
    assert!(
        denied(&r).is_some_and(|m| m.contains("moat.dev/confined")),
        "{r}"
    );
}

#[test]
fn moat_annotations_cannot_change_after_creation() {
    let w = Webhook::start(&[]);
    let old = stored_pod(&[]);
    let allow_all = "[filesystem]\nunrestricted = true\n[network]\nunrestricted = true\n";
    let mut removed = old.clone();
    removed["metadata"]["annotations"]
        .as_object_mut()
        .unwrap()
        .remove("container.moat.dev/web");
    let mut rewritten = old.clone();
    rewritten["metadata"]["annotations"]["container.moat.dev/web"] = allow_all.into();
    let mut no_ports = old.clone();
    no_ports["metadata"]["annotations"]["moat.dev/ports-from-spec"] = "false".into();
    for (what, new) in [
        ("container.moat.dev/web removed", &removed),
        ("container.moat.dev/web changed", &rewritten),
        ("moat.dev/ports-from-spec added", &no_ports),
    ] {
        for path in ["/mutate/namespace", "/mutate"] {
            let r = send(&w, path, review("UPDATE", None, "shop", new, Some(&old)));
            let m = denied(&r).unwrap_or_else(|| panic!("{what} on {path}: allowed"));
            assert!(
                m.contains(what) && m.contains("create the pod again"),
                "{m}"
            );
        }
    }
    // Control: other annotations and labels of a confined pod still change.
    let mut labelled = old.clone();
    labelled["metadata"]["annotations"]["team"] = "b".into();
    labelled["metadata"]["labels"] = json!({"version": "2"});
    let r = send(
        &w,
        "/mutate/namespace",
        review("UPDATE", None, "shop", &labelled, Some(&old)),
    );
    assert_eq!(denied(&r), None);
    // Control: a pod moat does not confine may change moat's annotations as it likes
    // (they do nothing there: its runtimeClassName cannot change).
    let free = new_pod(json!({"team": "a"}), json!({"name": "web"}));
    let mut free_new = free.clone();
    free_new["metadata"]["annotations"]["container.moat.dev/web"] = allow_all.into();
    let r = send(
        &w,
        "/mutate",
        review("UPDATE", None, "other", &free_new, Some(&free)),
    );
    assert_eq!(denied(&r), None);
}

#[test]
fn privileged_pods_are_refused_where_moat_enforces_unless_the_operator_allows() {
    let w = Webhook::start(&["--allow-privileged", "ops"]);
    let cases = [
        (
            "privileged",
            json!({"name": "web", "securityContext": {"privileged": true}}),
        ),
        (
            "SYS_ADMIN",
            json!({"name": "web", "securityContext": {"capabilities": {"add": ["SYS_ADMIN"]}}}),
        ),
        (
            "CAP_SYS_MODULE",
            json!({"name": "web", "securityContext": {"capabilities": {"add": ["CAP_SYS_MODULE"]}}}),
        ),
    ];
    for (what, container) in &cases {
        let pod = new_pod(json!({}), container.clone());
        let m = denied(&send(
            &w,
            "/mutate/namespace",
            review("CREATE", None, "shop", &pod, None),
        ))
        .unwrap_or_else(|| panic!("{what}: allowed"));
        assert!(
            m.contains(what) && m.contains("--allow-privileged shop"),
            "{m}"
        );
        // A pod that opted itself in gets the same answer.
        let opted = new_pod(json!({"moat.dev/enforce": "true"}), container.clone());
        assert!(denied(&send(
            &w,
            "/mutate",
            review("CREATE", None, "dev", &opted, None)
        ))
        .is_some());
        // Controls: the operator's namespace, and a pod moat does not confine.
        let r = send(
            &w,
            "/mutate/namespace",
            review("CREATE", None, "ops", &pod, None),
        );
        assert_eq!(denied(&r), None, "{what} in ops");
        let r = send(&w, "/mutate", review("CREATE", None, "dev", &pod, None));
        assert_eq!(denied(&r), None, "{what} not opted in");
    }
    let mut host = new_pod(json!({}), json!({"name": "web"}));
    host["spec"]["hostPID"] = true.into();
    let m = denied(&send(
        &w,
        "/mutate/namespace",
        review("CREATE", None, "shop", &host, None),
    ));
    assert!(m.is_some_and(|m| m.contains("hostPID")));
}

#[test]
fn ephemeral_containers_are_checked_against_the_stored_policy() {
    let w = Webhook::start(&[]);
    let old = stored_pod(&[("moat.dev/policy", "[network]\nhandled = [\"bind_tcp\"]\n")]);
    let debug = |container: Value| {
        let mut p = old.clone();
        p["spec"]["ephemeralContainers"] = json!([container]);
        p
    };
    // A plain debug container: the stored pod-wide policy applies; allowed.
    let ok = debug(json!({"name": "dbg", "image": "busybox"}));
    let r = send(
        &w,
        "/mutate/namespace",
        review(
            "UPDATE",
            Some("ephemeralcontainers"),
            "shop",
            &ok,
            Some(&old),
        ),
    );
    assert_eq!(denied(&r), None);
    // A privileged one: refused.
    let bad = debug(json!({"name": "dbg", "securityContext": {"privileged": true}}));
    let r = send(
        &w,
        "/mutate/namespace",
        review(
            "UPDATE",
            Some("ephemeralcontainers"),
            "shop",
            &bad,
            Some(&old),
        ),
    );
    assert!(
        denied(&r).is_some_and(|m| m.contains("ephemeral container `dbg`: privileged")),
        "{r}"
    );
    // After an attempt to remove the pod-wide policy (refused as an UPDATE), the stored
    // pod still has it: the debug container is checked against that.
    let mut stripped = old.clone();
    stripped["metadata"]["annotations"]
        .as_object_mut()
        .unwrap()
        .remove("moat.dev/policy");
    let r = send(
        &w,
        "/mutate/namespace",
        review("UPDATE", None, "shop", &stripped, Some(&old)),
    );
    assert!(denied(&r).is_some());
    // Control: a pod that lost its policies before it reached the webhook (no policy for
    // the new container) is refused, so the check does look at the stored annotations.
    let r = send(
        &w,
        "/mutate/namespace",
        review(
            "UPDATE",
            Some("ephemeralcontainers"),
            "shop",
            &{
                let mut p = stripped.clone();
                p["spec"]["ephemeralContainers"] = json!([{"name": "dbg"}]);
                p
            },
            Some(&stripped),
        ),
    );
    assert!(denied(&r).is_some_and(|m| m.contains("unconfined")), "{r}");
}

/// The policy the webhook wrote for container `c` (the patch's value for
/// `container.moat.dev/c`), parsed as the node parses it.
fn written_policy(r: &Value, c: &str) -> moat_policy::Policy {
    use base64::Engine;
    let patch = base64::engine::general_purpose::STANDARD
        .decode(r["patch"].as_str().expect("a patch"))
        .unwrap();
    let ops: Value = serde_json::from_slice(&patch).unwrap();
    let key = format!("container.moat.dev/{c}");
    let escaped = key.replace('/', "~1");
    let text = ops
        .as_array()
        .unwrap()
        .iter()
        .find_map(|op| {
            let path = op["path"].as_str()?;
            if path.ends_with(&escaped) {
                op["value"].as_str().map(str::to_string)
            } else if path == "/metadata/annotations" {
                op["value"][&key].as_str().map(str::to_string)
            } else {
                None
            }
        })
        .unwrap_or_else(|| panic!("no {key} in {ops}"));
    moat_policy::parse_str(&key, &text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn bind_ports(p: &moat_policy::Policy) -> Option<Vec<u16>> {
    use moat_policy::NetRight;
    if p.net.unrestricted || !p.net.handled.contains(NetRight::BindTcp) {
        return None;
    }
    let mut v: Vec<u16> = p
        .net
        .rules
        .iter()
        .filter(|r| r.access.contains(NetRight::BindTcp))
        .flat_map(|r| r.ports.ports())
        .collect();
    v.sort_unstable();
    v.dedup();
    Some(v)
}

/// A pod declaring port 80 with these annotations.
fn web_pod(annotations: Value) -> Value {
    new_pod(
        annotations,
        json!({"name": "web", "ports": [{"containerPort": 80}]}),
    )
}

#[test]
fn an_enforced_namespace_has_a_floor_the_author_can_only_narrow() {
    let w = Webhook::start(&[]);
    let wide = "[filesystem]\nunrestricted = true\n\n[network]\nbind_tcp = [\"1-65535\"]\nconnect_tcp = [\"1-65535\"]\n";
    let open = "[filesystem]\nunrestricted = true\n\n[network]\nunrestricted = true\n";
    let cases = [
        json!({"container.moat.dev/web": wide}),
        json!({"container.moat.dev/web": open, "moat.dev/ports-from-spec": "false"}),
        json!({"moat.dev/policy": open, "moat.dev/ports-from-spec": "false"}),
    ];
    for ann in &cases {
        // Enforced namespace: the floor binds only the declared port.
        let r = send(
            &w,
            "/mutate/namespace",
            review("CREATE", None, "shop", &web_pod(ann.clone()), None),
        );
        assert_eq!(denied(&r), None, "{ann}");
        assert_eq!(
            bind_ports(&written_policy(&r, "web")),
            Some(vec![80]),
            "{ann}"
        );
        // Control: the same pod opting itself in elsewhere gets what its author wrote.
        let mut own = ann.clone();
        own["moat.dev/enforce"] = "true".into();
        let r = send(
            &w,
            "/mutate",
            review("CREATE", None, "dev", &web_pod(own), None),
        );
        assert_ne!(
            bind_ports(&written_policy(&r, "web")),
            Some(vec![80]),
            "{ann}"
        );
    }
    // The pod's request to drop the declared ports is answered with a warning.
    let r = send(
        &w,
        "/mutate/namespace",
        review("CREATE", None, "shop", &web_pod(cases[1].clone()), None),
    );
    let warnings = r["warnings"].to_string();
    assert!(
        warnings.contains("ports-from-spec") && warnings.contains("ignored"),
        "{warnings}"
    );
    // The author's own narrower rules still hold: connect to 443 only.
    let narrow = json!({"container.moat.dev/web": "[filesystem]\nunrestricted = true\n\n[network]\nhandled = [\"connect_tcp\"]\nconnect_tcp = [443]\n"});
    let r = send(
        &w,
        "/mutate/namespace",
        review("CREATE", None, "shop", &web_pod(narrow), None),
    );
    let p = written_policy(&r, "web");
    assert_eq!(bind_ports(&p), Some(vec![80]));
    assert!(p.net.handled.contains(moat_policy::NetRight::ConnectTcp));
    // Best-effort is refused under the default floor.
    let be = json!({"moat.dev/compat": "best-effort"});
    let m = denied(&send(
        &w,
        "/mutate/namespace",
        review("CREATE", None, "shop", &web_pod(be.clone()), None),
    ));
    assert!(m.is_some_and(|m| m.contains("best-effort") && m.contains("not allowed")));
    // Control: allowed for a pod that opted itself in.
    let mut be_own = be;
    be_own["moat.dev/enforce"] = "true".into();
    assert_eq!(
        denied(&send(
            &w,
            "/mutate",
            review("CREATE", None, "dev", &web_pod(be_own), None)
        )),
        None
    );
}

#[test]
fn the_floors_file_sets_each_namespaces_policy_and_is_read_again_when_it_changes() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("floors.toml");
    std::fs::write(
        &file,
        "[namespace.shop]\npolicy = '''\n[filesystem]\nread_exec = [\"/bin\", \"/usr\"]\nread = [\"/etc\"]\n\n[network]\nunrestricted = true\n'''\n\n[namespace.lab]\nbest_effort = true\n",
    )
    .unwrap();
    let w = Webhook::start(&[
        "--floors",
        file.to_str().unwrap(),
        "--cert-check-interval",
        "1",
    ]);
    let allow_all = json!({"container.moat.dev/web": "[filesystem]\nunrestricted = true\n\n[network]\nunrestricted = true\n"});
    let r = send(
        &w,
        "/mutate/namespace",
        review("CREATE", None, "shop", &web_pod(allow_all.clone()), None),
    );
    let p = written_policy(&r, "web");
    assert!(
        !p.fs.unrestricted && !p.fs.handled.is_empty(),
        "the floor's filesystem part"
    );
    let paths: Vec<&str> = p.fs.rules.iter().map(|r| r.path.as_str()).collect();
    assert!(
        paths.contains(&"/etc") && paths.contains(&"/bin"),
        "{paths:?}"
    );
    assert_eq!(bind_ports(&p), Some(vec![80]));
    // Another namespace: the default floor; `lab` allows best-effort.
    let r = send(
        &w,
        "/mutate/namespace",
        review("CREATE", None, "other", &web_pod(allow_all.clone()), None),
    );
    assert!(written_policy(&r, "web").fs.handled.is_empty());
    let be = json!({"moat.dev/compat": "best-effort"});
    assert_eq!(
        denied(&send(
            &w,
            "/mutate/namespace",
            review("CREATE", None, "lab", &web_pod(be), None)
        )),
        None
    );
    // The operator changes the floors (as a ConfigMap update does: a new file renamed in).
    let new = dir.path().join("floors.new");
    std::fs::write(
        &new,
        "[default]\npolicy = '''\n[filesystem]\nread = [\"/srv\"]\n'''\n",
    )
    .unwrap();
    std::fs::rename(&new, &file).unwrap();
    assert!(
        w.wait_for_log(
            "loaded the changed floors",
            std::time::Duration::from_secs(20)
        ),
        "{}",
        w.log()
    );
    let r = send(
        &w,
        "/mutate/namespace",
        review("CREATE", None, "shop", &web_pod(allow_all.clone()), None),
    );
    let paths: Vec<String> = written_policy(&r, "web")
        .fs
        .rules
        .iter()
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(paths, ["/srv"]);
    // A broken file is reported and the floors in force stay.
    std::fs::write(&new, "[default]\npolicy = '''[filesystem'''\n").unwrap();
    std::fs::rename(&new, &file).unwrap();
    assert!(
        w.wait_for_log(
            "keeping the floors in force",
            std::time::Duration::from_secs(20)
        ),
        "{}",
        w.log()
    );
    let r = send(
        &w,
        "/mutate/namespace",
        review("CREATE", None, "shop", &web_pod(allow_all), None),
    );
    let paths: Vec<String> = written_policy(&r, "web")
        .fs
        .rules
        .iter()
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(paths, ["/srv"]);
}

#[test]
fn a_broken_floors_file_stops_the_webhook_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("floors.toml");
    std::fs::write(&file, "[namespace.shop]\nbest_effort = \"yes\"\n").unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_moat-k8s"))
        .args([
            "webhook",
            "--addr",
            "127.0.0.1:0",
            "--tls-cert",
            "/nonexistent",
            "--tls-key",
            "/nonexistent",
            "--floors",
        ])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("namespace.shop.best_effort"), "{e}");
}
