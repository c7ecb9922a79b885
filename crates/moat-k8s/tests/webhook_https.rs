//! The webhook binary over real HTTPS with a real HTTP client: AdmissionReview v1 documents
//! in, JSON Patches out, each patch applied to the pod and the result read back as a
//! k8s-openapi Pod.

mod common;

use base64::Engine;
use common::client::{connector, Connection};
use common::Webhook;
use k8s_openapi::api::core::v1::Pod;
use serde_json::{json, Value};
use std::time::Duration;

thread_local! {
    /// The webhook process of the test running on this thread (libtest runs each test on
    /// a thread of its own, so each test gets one, stopped when it ends).
    static WEBHOOK: Webhook = Webhook::start(&[]);
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Sends `body` to `path` on the shared webhook.
fn send_to(w: &Webhook, method: &str, path: &str, body: Vec<u8>) -> (u16, Vec<u8>) {
    runtime().block_on(async {
        let mut c = Connection::open(&connector(&w.ca_pem), w.addr)
            .await
            .expect("connect");
        let (status, body) = c.send(method, path, body).await.expect("request");
        (status.as_u16(), body)
    })
}

fn review_of(
    operation: &str,
    sub: Option<&str>,
    kind: (&str, &str, &str),
    object: &Value,
    old: Option<&Value>,
    dry_run: bool,
) -> Vec<u8> {
    let (group, version, kind) = kind;
    let resource = if kind == "Pod" { "pods" } else { "others" };
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": group, "version": version, "kind": kind},
            "resource": {"group": group, "version": version, "resource": resource},
            "subResource": sub,
            "requestKind": {"group": group, "version": version, "kind": kind},
            "requestResource": {"group": group, "version": version, "resource": resource},
            "name": object.pointer("/metadata/name"),
            "namespace": "shop",
            "operation": operation,
            "userInfo": {"username": "admin", "uid": "014fbff9a07c", "groups": ["system:authenticated"]},
            "object": object,
            "oldObject": old,
            "dryRun": dry_run,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": if operation == "CREATE" { "CreateOptions" } else { "UpdateOptions" }}
        }
    }))
    .unwrap()
}

/// The response part of a 200 answer.
fn admit(path: &str, body: Vec<u8>) -> Value {
    let (status, bytes) = WEBHOOK.with(|w| send_to(w, "POST", path, body));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
    let review: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(review["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(review["kind"], "AdmissionReview");
    assert_eq!(
        review["response"]["uid"],
        "705ab4f5-6393-11e8-b7cc-42010a800002"
    );
    review["response"].clone()
}

fn create_pod(path: &str, pod: &Value) -> Value {
    admit(
        path,
        review_of("CREATE", None, ("", "v1", "Pod"), pod, None, false),
    )
}

/// Applies the response's patch to `pod` and reads the result as a k8s-openapi Pod.
fn patched(pod: &Value, response: &Value) -> Pod {
    assert_eq!(response["allowed"], true, "{response}");
    assert_eq!(response["patchType"], "JSONPatch");
    let raw = base64::engine::general_purpose::STANDARD
        .decode(response["patch"].as_str().expect("patch"))
        .unwrap();
    let patch: json_patch::Patch = serde_json::from_slice(&raw).expect("a JSON Patch");
    let mut doc = pod.clone();
    json_patch::patch(&mut doc, &patch).expect("the patch applies");
    serde_json::from_value(doc).expect("a valid Pod")
}

fn annotation<'a>(pod: &'a Pod, key: &str) -> &'a str {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .unwrap_or_else(|| panic!("no annotation {key}: {:?}", pod.metadata.annotations))
}

fn policy(text: &str) -> moat_policy::Policy {
    moat_policy::parse_str("annotation", text).expect("the written policy parses")
}

fn bind_ports(p: &moat_policy::Policy) -> Vec<String> {
    p.net
        .rules
        .iter()
        .filter(|r| r.access.contains(moat_policy::NetRight::BindTcp))
        .map(|r| r.ports.to_string())
        .collect()
}

fn web_pod(annotations: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "shop", "annotations": annotations},
        "spec": {"containers": [{"name": "web", "image": "nginx:1.27",
            "ports": [{"name": "http", "containerPort": 80, "protocol": "TCP"},
                      {"containerPort": 5353, "protocol": "UDP"}]}]}
    })
}

#[test]
fn pod_with_ports_gets_runtime_class_and_bind_rules() {
    let pod = web_pod(json!({"moat.dev/enforce": "true"}));
    let response = create_pod("/mutate", &pod);
    let p = patched(&pod, &response);
    let spec = p.spec.as_ref().unwrap();
    assert_eq!(spec.runtime_class_name.as_deref(), Some("moat"));
    let web = policy(annotation(&p, "container.moat.dev/web"));
    assert_eq!(bind_ports(&web), ["80"]);
    // Exactly the promise: bind restricted, the filesystem and everything else open.
    assert!(web.fs.handled.is_empty());
    assert_eq!(
        web.net.handled,
        moat_policy::NetAccess::of(&[moat_policy::NetRight::BindTcp])
    );
    assert!(web.scopes.is_empty());
    // The pod-wide policy for containers added later binds nothing.
    assert!(bind_ports(&policy(annotation(&p, "moat.dev/policy"))).is_empty());
    // The user's annotation and the container itself are untouched.
    assert_eq!(annotation(&p, "moat.dev/enforce"), "true");
    assert_eq!(spec.containers[0].image.as_deref(), Some("nginx:1.27"));
}

#[test]
fn namespace_scope_needs_no_annotation_and_creates_the_map() {
    let mut pod = web_pod(Value::Null);
    pod["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("annotations");
    // Outside an opted-in namespace the pod is left alone...
    let response = create_pod("/mutate", &pod);
    assert_eq!(
        response,
        json!({"uid": "705ab4f5-6393-11e8-b7cc-42010a800002", "allowed": true})
    );
    // ...inside one it is confined, and the patch creates metadata.annotations.
    let p = patched(&pod, &create_pod("/mutate/namespace", &pod));
    assert_eq!(
        bind_ports(&policy(annotation(&p, "container.moat.dev/web"))),
        ["80"]
    );
}

#[test]
fn init_and_ephemeral_containers_get_their_own_policies() {
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "app", "annotations": {"moat.dev/enforce": "true"}},
        "spec": {
            "initContainers": [
                {"name": "migrate", "image": "app"},
                {"name": "proxy", "image": "envoy", "restartPolicy": "Always", "ports": [{"containerPort": 15001}]}
            ],
            "containers": [{"name": "app", "image": "app", "ports": [{"containerPort": 8080}, {"containerPort": 9090}]}],
            "ephemeralContainers": [{"name": "debugger", "image": "busybox"}]
        }
    });
    let p = patched(&pod, &create_pod("/mutate", &pod));
    assert_eq!(
        bind_ports(&policy(annotation(&p, "container.moat.dev/migrate"))),
        Vec::<String>::new()
    );
    assert_eq!(
        bind_ports(&policy(annotation(&p, "container.moat.dev/proxy"))),
        ["15001"]
    );
    assert_eq!(
        bind_ports(&policy(annotation(&p, "container.moat.dev/app"))),
        ["8080", "9090"]
    );
    assert_eq!(
        bind_ports(&policy(annotation(&p, "container.moat.dev/debugger"))),
        Vec::<String>::new()
    );
    assert_eq!(
        p.spec.unwrap().ephemeral_containers.unwrap()[0].name,
        "debugger"
    );
}

#[test]
fn user_policy_is_kept_and_gets_the_declared_ports() {
    let user = "[filesystem]\nread_exec = [\"/usr\", \"/bin\"]\nread = [\"/etc\"]\n\n[network]\nconnect_tcp = [5432]\n";
    let pod = web_pod(
        json!({"moat.dev/enforce": "true", "moat.dev/policy": user, "moat.dev/compat": "best-effort"}),
    );
    let response = create_pod("/mutate", &pod);
    let p = patched(&pod, &response);
    let web = policy(annotation(&p, "container.moat.dev/web"));
    assert_eq!(bind_ports(&web), ["80"]);
    assert_eq!(web.fs.rules.len(), 3);
    assert!(web
        .net
        .rules
        .iter()
        .any(|r| r.access.contains(moat_policy::NetRight::ConnectTcp) && r.ports.contains(5432)));
    // The user's pod-wide policy already restricts bind: it stays as written.
    assert_eq!(annotation(&p, "moat.dev/policy"), user);
    assert!(response.get("warnings").is_none());

    // A per-container policy in another dialect (landlockconfig), and a preset for the rest.
    let lc = r#"{"ruleset": [{"handledAccessNet": ["bind_tcp"]}], "netPort": [{"allowedAccess": ["bind_tcp"], "port": [8081]}]}"#;
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "two", "annotations": {"moat.dev/enforce": "true", "moat.dev/preset": "default", "container.moat.dev/a": lc}},
        "spec": {"containers": [{"name": "a", "image": "x", "ports": [{"containerPort": 80}]}, {"name": "b", "image": "x", "ports": [{"containerPort": 81}]}]}
    });
    let p = patched(&pod, &create_pod("/mutate", &pod));
    assert_eq!(
        bind_ports(&policy(annotation(&p, "container.moat.dev/a"))),
        ["8081", "80"]
    );
    let b = policy(annotation(&p, "container.moat.dev/b"));
    assert_eq!(bind_ports(&b), ["81"]);
    assert!(!b.fs.rules.is_empty(), "the default preset's paths");
}

#[test]
fn unrestricted_user_network_is_narrowed_to_declared_ports_with_a_warning() {
    let pod = web_pod(
        json!({"moat.dev/enforce": "true", "moat.dev/policy": "network:\n  unrestricted: true\nfilesystem:\n  read_exec: [/]\n"}),
    );
    let response = create_pod("/mutate", &pod);
    let warnings = response["warnings"].as_array().expect("warnings");
    assert!(
        warnings[0].as_str().unwrap().contains("container `web`"),
        "{warnings:?}"
    );
    let p = patched(&pod, &response);
    assert_eq!(
        bind_ports(&policy(annotation(&p, "container.moat.dev/web"))),
        ["80"]
    );
    assert!(!policy(annotation(&p, "moat.dev/policy")).net.unrestricted);
}

#[test]
fn broken_policy_is_refused_naming_the_container() {
    let pod = web_pod(
        json!({"moat.dev/enforce": "true", "container.moat.dev/web": "[[filesystem.rule]]\npaths = [\"/srv\"]\nrights = [\"fly\"]\n"}),
    );
    let response = create_pod("/mutate", &pod);
    assert_eq!(response["allowed"], false);
    let message = response["status"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("pod web: container `web`: container.moat.dev/web:3:"),
        "{message}"
    );
    assert!(message.contains("`fly`"), "{message}");
    assert_eq!(response["status"]["code"], 403);
    assert!(response.get("patch").is_none());

    let pod = web_pod(json!({"moat.dev/enforce": "true", "moat.dev/preset": "webserver"}));
    let response = create_pod("/mutate", &pod);
    assert_eq!(response["allowed"], false);
    assert!(response["status"]["message"]
        .as_str()
        .unwrap()
        .contains("webserver"));

    // A misspelt moat annotation is refused even on a pod that did not opt in.
    let pod = web_pod(json!({"moat.dev/enforse": "true"}));
    let response = create_pod("/mutate", &pod);
    assert_eq!(response["allowed"], false);
    assert!(response["status"]["message"]
        .as_str()
        .unwrap()
        .contains("moat.dev/enforse"));
}

#[test]
fn other_runtime_class_is_refused_moat_is_kept() {
    let mut pod = web_pod(json!({"moat.dev/enforce": "true"}));
    pod["spec"]["runtimeClassName"] = json!("gvisor");
    let response = create_pod("/mutate", &pod);
    assert_eq!(response["allowed"], false);
    let message = response["status"]["message"].as_str().unwrap();
    assert!(message.contains("runtimeClassName `gvisor`"), "{message}");

    pod["spec"]["runtimeClassName"] = json!("moat");
    let response = create_pod("/mutate", &pod);
    let raw = base64::engine::general_purpose::STANDARD
        .decode(response["patch"].as_str().unwrap())
        .unwrap();
    let ops: Vec<Value> = serde_json::from_slice(&raw).unwrap();
    assert!(
        ops.iter().all(|op| op["path"] != "/spec/runtimeClassName"),
        "{ops:?}"
    );
    assert_eq!(
        patched(&pod, &response)
            .spec
            .unwrap()
            .runtime_class_name
            .as_deref(),
        Some("moat")
    );
}

#[test]
fn non_pod_objects_and_other_operations_are_allowed_unchanged() {
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web",
        "annotations": {"moat.dev/enforce": "true"}}, "spec": {"template": {"spec": {"containers": []}}}});
    let unchanged = json!({"uid": "705ab4f5-6393-11e8-b7cc-42010a800002", "allowed": true});
    let r = admit(
        "/mutate/namespace",
        review_of(
            "CREATE",
            None,
            ("apps", "v1", "Deployment"),
            &deployment,
            None,
            false,
        ),
    );
    assert_eq!(r, unchanged);
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "b"}});
    assert_eq!(
        admit(
            "/mutate/namespace",
            review_of("CREATE", None, ("", "v1", "ConfigMap"), &cm, None, false)
        ),
        unchanged
    );
    let pod = web_pod(json!({"moat.dev/enforce": "true"}));
    // A plain pod update, a status update and a delete are not moat's business.
    assert_eq!(
        admit(
            "/mutate",
            review_of("UPDATE", None, ("", "v1", "Pod"), &pod, Some(&pod), false)
        ),
        unchanged
    );
    assert_eq!(
        admit(
            "/mutate",
            review_of(
                "UPDATE",
                Some("status"),
                ("", "v1", "Pod"),
                &pod,
                Some(&pod),
                false
            )
        ),
        unchanged
    );
    assert_eq!(
        admit(
            "/mutate",
            review_of(
                "DELETE",
                None,
                ("", "v1", "Pod"),
                &Value::Null,
                Some(&pod),
                false
            )
        ),
        unchanged
    );
}

#[test]
fn dry_run_gets_the_same_answer() {
    let pod = web_pod(json!({"moat.dev/enforce": "true"}));
    let real = admit(
        "/mutate",
        review_of("CREATE", None, ("", "v1", "Pod"), &pod, None, false),
    );
    let dry = admit(
        "/mutate",
        review_of("CREATE", None, ("", "v1", "Pod"), &pod, None, true),
    );
    assert_eq!(real, dry);
    assert_eq!(
        patched(&pod, &dry)
            .spec
            .unwrap()
            .runtime_class_name
            .as_deref(),
        Some("moat")
    );
}

#[test]
fn ephemeral_container_update_is_checked_not_patched() {
    // A pod as the webhook left it at creation.
    let created = web_pod(json!({"moat.dev/enforce": "true"}));
    let stored = serde_json::to_value(patched(&created, &create_pod("/mutate", &created))).unwrap();
    let mut debug = stored.clone();
    debug["spec"]["ephemeralContainers"] =
        json!([{"name": "debugger", "image": "busybox", "targetContainerName": "web"}]);
    let r = admit(
        "/mutate",
        review_of(
            "UPDATE",
            Some("ephemeralcontainers"),
            ("", "v1", "Pod"),
            &debug,
            Some(&stored),
            false,
        ),
    );
    assert_eq!(
        r,
        json!({"uid": "705ab4f5-6393-11e8-b7cc-42010a800002", "allowed": true})
    );

    // A pod that runs under moat but carries no policy the node would find for it.
    let mut bare = web_pod(json!({"moat.dev/enforce": "true"}));
    bare["spec"]["runtimeClassName"] = json!("moat");
    let mut debug = bare.clone();
    debug["spec"]["ephemeralContainers"] = json!([{"name": "debugger", "image": "busybox"}]);
    let r = admit(
        "/mutate",
        review_of(
            "UPDATE",
            Some("ephemeralcontainers"),
            ("", "v1", "Pod"),
            &debug,
            Some(&bare),
            false,
        ),
    );
    assert_eq!(r["allowed"], false);
    assert!(r["status"]["message"]
        .as_str()
        .unwrap()
        .contains("ephemeral container `debugger`"));
}

#[test]
fn malformed_and_oversized_bodies_are_client_errors() {
    WEBHOOK.with(malformed_and_oversized)
}

fn malformed_and_oversized(w: &Webhook) {
    for body in [&b""[..], b"not json", b"{\"apiVersion\": 1}", b"[1,2,3]", b"{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":{\"uid\":7}}",
        &[0xff, 0xfe, 0x00][..]] {
        let (status, text) = send_to(w, "POST", "/mutate", body.to_vec());
        assert_eq!(status, 400, "{}", String::from_utf8_lossy(&text));
    }
    let (status, _) = send_to(w, "POST", "/mutate", vec![b' '; 3 * 1024 * 1024 + 1]);
    assert_eq!(status, 413);
    assert_eq!(send_to(w, "GET", "/mutate", Vec::new()).0, 405);
    assert_eq!(send_to(w, "POST", "/elsewhere", Vec::new()).0, 404);
    assert_eq!(
        send_to(w, "GET", "/healthz", Vec::new()),
        (200, b"ok\n".to_vec())
    );
    // Still serving after all of that.
    let pod = web_pod(json!({"moat.dev/enforce": "true"}));
    assert_eq!(create_pod("/mutate", &pod)["allowed"], true);
}

#[test]
fn curl_trusting_the_ca_gets_the_same_answer() {
    WEBHOOK.with(curl_answer)
}

/// POSTs `body` to `/mutate` with curl over HTTP/2, trusting the webhook's CA; `extra`
/// goes before the URL.
fn curl_h2(w: &Webhook, body: &[u8], extra: &[&str]) -> std::process::Output {
    let body_file = w.cert_dir().join("curl-body.json");
    std::fs::write(&body_file, body).unwrap();
    std::process::Command::new("curl")
        .args(["-sS", "--http2", "--cacert"])
        .arg(w.cert_dir().join("ca.crt"))
        .args([
            "--resolve",
            &format!("moat-webhook.moat-system.svc:{}:127.0.0.1", w.addr.port()),
        ])
        .args(["-H", "content-type: application/json", "--data-binary"])
        .arg(format!("@{}", body_file.display()))
        .args(extra)
        .arg(format!(
            "https://moat-webhook.moat-system.svc:{}/mutate",
            w.addr.port()
        ))
        .output()
        .expect("curl (scripts/test.sh installs it)")
}

fn curl_answer(w: &Webhook) {
    let pod = web_pod(json!({"moat.dev/enforce": "true"}));
    let body = review_of("CREATE", None, ("", "v1", "Pod"), &pod, None, false);
    let out = curl_h2(w, &body, &["--fail"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let review: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(review["response"], create_pod("/mutate", &pod));
}

#[test]
fn renewed_certificate_is_picked_up_without_restart() {
    let w = Webhook::start(&["--cert-check-interval", "1"]);
    let renewed = common::generate();
    // Write the new pair the way a Secret volume does: new files, then a rename.
    let dir = w.cert_dir();
    std::fs::write(dir.join("tls.crt.new"), &renewed.cert_pem).unwrap();
    std::fs::write(dir.join("tls.key.new"), &renewed.key_pem).unwrap();
    std::fs::rename(dir.join("tls.key.new"), dir.join("tls.key")).unwrap();
    std::fs::rename(dir.join("tls.crt.new"), dir.join("tls.crt")).unwrap();
    assert!(
        w.wait_for_log("loaded the renewed certificate", Duration::from_secs(10)),
        "{}",
        w.log()
    );
    runtime().block_on(async {
        let old = Connection::open(&connector(&w.ca_pem), w.addr).await;
        assert!(old.is_err(), "the old CA must no longer verify");
        let mut c = Connection::open(&connector(&renewed.ca_pem), w.addr)
            .await
            .expect("new CA verifies");
        assert_eq!(c.send("GET", "/healthz", Vec::new()).await.unwrap().0, 200);
    });
    // A broken renewal keeps the working certificate.
    std::fs::write(dir.join("tls.key"), "not a key").unwrap();
    assert!(
        w.wait_for_log(
            "do not load, keeping the previous one",
            Duration::from_secs(10)
        ),
        "{}",
        w.log()
    );
    runtime().block_on(async {
        assert!(Connection::open(&connector(&renewed.ca_pem), w.addr)
            .await
            .is_ok());
    });
}

#[test]
fn sigterm_finishes_requests_and_exits() {
    let mut w = Webhook::start(&[]);
    let rt = runtime();
    let mut c = rt
        .block_on(Connection::open(&connector(&w.ca_pem), w.addr))
        .unwrap();
    assert_eq!(
        rt.block_on(c.send("GET", "/healthz", Vec::new()))
            .unwrap()
            .0,
        200
    );
    w.terminate();
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(s) = w.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "still running after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}: {}", w.log());
    assert!(w.log().contains("moat-k8s: stopped"));
}

#[test]
fn bad_certificate_stops_start_with_the_file_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tls.crt"), "nothing").unwrap();
    std::fs::write(dir.path().join("tls.key"), "nothing").unwrap();
    let out = std::process::Command::new(common::BIN)
        .args(["webhook", "--addr", "127.0.0.1:0", "--tls-cert"])
        .arg(dir.path().join("tls.crt"))
        .arg("--tls-key")
        .arg(dir.path().join("tls.key"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("tls.crt: no CERTIFICATE block"), "{err}");
}

/// Sends `head` (a request's head, no body) over TLS and reads until the server closes.
async fn head_only(w: &Webhook, head: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tcp = tokio::net::TcpStream::connect(w.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from(common::client::SERVICE_NAME).unwrap();
    let mut tls = connector(&w.ca_pem).connect(name, tcp).await.unwrap();
    tls.write_all(head.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tls.read_to_end(&mut out).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn an_oversized_body_is_413_at_once_over_http1_and_http2() {
    let w = Webhook::start(&["--max-request-bytes", "1000"]);
    runtime().block_on(async {
        // A declared 10 GB body, none of it sent: answered 413 at once and closed, not
        // read for BODY_TIMEOUT and then answered 408.
        let answer = head_only(
            &w,
            "POST /mutate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10000000000\r\n\r\n",
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 413 "), "{answer}");
        assert!(answer.contains("over 1000 bytes"), "{answer}");
        // HTTP/2: declared and over, declared and under but sent over, and not declared.
        let mut h2 = common::client::Http2::open(&w.ca_pem, w.addr).await.unwrap();
        for (body, length) in [
            (vec![b' '; 4096], Some(4096)),
            (vec![b' '; 200_000], None),
        ] {
            let (status, text) = h2.post("/mutate", body, length).await.unwrap();
            assert_eq!(status, 413, "{}", String::from_utf8_lossy(&text));
        }
        // The connection still serves.
        let (status, _) = h2.post("/mutate", b"not json".to_vec(), None).await.unwrap();
        assert_eq!(status, 400);
    });
    // curl over HTTP/2 reports a stream reset instead of the answer it received before it:
    // the webhook reads the rest of a moderately oversized body so that none is needed.
    let out = curl_h2(
        &w,
        &[b' '; 3000],
        &["-o", "/dev/null", "-w", "%{http_code}"],
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "413",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
