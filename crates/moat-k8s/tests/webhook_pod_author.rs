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
