//! Every manifest under deploy/ parses as its k8s-openapi type, with no field the type does
//! not know (a misspelt field is silently dropped by the API server); the kustomizations
//! and cert-manager objects hold together; the node installer's DaemonSet runs the
//! installer as root and nothing else privileged; and `kubectl kustomize` renders the base
//! and every overlay. (The installer itself is tested in crates/moat-node.)

use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service, ServiceAccount};
use k8s_openapi::api::node::v1::RuntimeClass;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            yaml_files(&path, out);
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            out.push(path);
        }
    }
}

/// Every document of every manifest, with its file.
fn documents() -> Vec<(PathBuf, Value)> {
    let mut files = Vec::new();
    yaml_files(&deploy_dir(), &mut files);
    files.sort();
    assert!(files.len() >= 8, "{files:?}");
    let mut docs = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (i, doc) in serde_norway::Deserializer::from_str(&text).enumerate() {
            let v = <Value as serde::Deserialize>::deserialize(doc)
                .unwrap_or_else(|e| panic!("{}: document {}: {e}", file.display(), i + 1));
            if !v.is_null() {
                docs.push((file.clone(), v));
            }
        }
    }
    docs
}

/// Drops nulls and empty maps, the way a serialiser that skips defaults would.
fn normalise(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), normalise(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(normalise).collect()),
        other => other.clone(),
    }
}

/// Parses `doc` as `T` and checks that nothing was lost on the way (an unknown or
/// misspelt field would be).
fn typed<T: DeserializeOwned + Serialize>(file: &Path, doc: &Value) -> T {
    let t: T = serde_json::from_value(doc.clone())
        .unwrap_or_else(|e| panic!("{}: {}: {e}", file.display(), doc["kind"]));
    let back = serde_json::to_value(&t).unwrap();
    if let Some(path) = first_difference(&normalise(doc), &normalise(&back), String::new()) {
        panic!(
            "{}: {} {}: `{path}` is not a field of its type (or not as written)",
            file.display(),
            doc["kind"],
            doc["metadata"]["name"]
        );
    }
    t
}

/// The first place where `written` and `read` differ, as a key path.
fn first_difference(written: &Value, read: &Value, path: String) -> Option<String> {
    match (written, read) {
        (Value::Object(w), Value::Object(r)) => w.iter().find_map(|(k, v)| match r.get(k) {
            None => Some(format!("{path}.{k}")),
            Some(rv) => first_difference(v, rv, format!("{path}.{k}")),
        }),
        (Value::Array(w), Value::Array(r)) if w.len() == r.len() => w
            .iter()
            .zip(r)
            .enumerate()
            .find_map(|(i, (a, b))| first_difference(a, b, format!("{path}[{i}]"))),
        (w, r) => (w != r).then_some(path),
    }
}

#[derive(Default)]
struct Seen {
    runtime_class: Option<RuntimeClass>,
    webhook_config: Option<MutatingWebhookConfiguration>,
    webhook: Option<Deployment>,
    service: Option<Service>,
    exporter_service: Option<Service>,
    installer: Option<DaemonSet>,
    pdb: Option<PodDisruptionBudget>,
    namespaces: Vec<Namespace>,
    kustomizations: Vec<PathBuf>,
    certificates: Vec<Value>,
    issuers: Vec<String>,
    floors: bool,
}

fn check_kustomization(file: &Path, doc: &Value) {
    assert_eq!(
        doc["apiVersion"],
        "kustomize.config.k8s.io/v1beta1",
        "{}",
        file.display()
    );
    let dir = file.parent().unwrap();
    const KNOWN: [&str; 10] = [
        "apiVersion",
        "kind",
        "namespace",
        "labels",
        "resources",
        "images",
        "patches",
        "generatorOptions",
        "secretGenerator",
        "replacements",
    ];
    for key in doc.as_object().unwrap().keys() {
        assert!(
            KNOWN.contains(&key.as_str()),
            "{}: unexpected key {key}",
            file.display()
        );
    }
    for r in doc["resources"].as_array().unwrap() {
        let p = dir.join(r.as_str().unwrap());
        assert!(
            p.is_file() || p.join("kustomization.yaml").is_file(),
            "{}: missing resource {}",
            file.display(),
            p.display()
        );
    }
    for g in doc["secretGenerator"].as_array().into_iter().flatten() {
        for f in g["files"].as_array().unwrap() {
            let (_, path) = f.as_str().unwrap().split_once('=').unwrap();
            // Files under certs/ are what `moat webhook gen-certs` writes before install.
            assert!(
                path.starts_with("certs/") || dir.join(path).is_file(),
                "{}: {path}",
                file.display()
            );
        }
    }
    for p in doc["patches"].as_array().into_iter().flatten() {
        let patch: Value = serde_norway::from_str(p["patch"].as_str().unwrap()).unwrap();
        assert_eq!(patch["kind"], p["target"]["kind"], "{}", file.display());
    }
    for r in doc["replacements"].as_array().into_iter().flatten() {
        assert_eq!(r["source"]["kind"], "Secret");
        assert_eq!(
            r["targets"][0]["fieldPaths"][0],
            "webhooks.*.clientConfig.caBundle"
        );
    }
}

#[test]
fn every_manifest_parses_as_its_type() {
    let mut seen = Seen::default();
    for (file, doc) in documents() {
        let kind = doc["kind"]
            .as_str()
            .unwrap_or_else(|| panic!("{}: no kind", file.display()));
        match kind {
            "Namespace" => seen.namespaces.push(typed(&file, &doc)),
            "ServiceAccount" => drop(typed::<ServiceAccount>(&file, &doc)),
            "ConfigMap" => {
                let cm: ConfigMap = typed(&file, &doc);
                assert_eq!(cm.metadata.name.as_deref(), Some("moat-floors"));
                let text = &cm.data.as_ref().expect("data")["floors.toml"];
                // The webhook reads it as its floors file.
                let floors = moat_k8s::Floors::parse(Path::new("floors.toml"), text).unwrap();
                assert!(!floors.default.best_effort && !floors.default.allow_privileged);
                seen.floors = true;
            }
            "RuntimeClass" => seen.runtime_class = Some(typed(&file, &doc)),
            "DaemonSet" => seen.installer = Some(typed(&file, &doc)),
            "Deployment" => seen.webhook = Some(typed(&file, &doc)),
            "Service" if doc["metadata"]["name"] == "moat-exporter" => {
                seen.exporter_service = Some(typed(&file, &doc))
            }
            "Service" => seen.service = Some(typed(&file, &doc)),
            "PodDisruptionBudget" => seen.pdb = Some(typed(&file, &doc)),
            "MutatingWebhookConfiguration" => seen.webhook_config = Some(typed(&file, &doc)),
            "Kustomization" => {
                check_kustomization(&file, &doc);
                seen.kustomizations.push(file);
            }
            "Issuer" => {
                assert_eq!(doc["apiVersion"], "cert-manager.io/v1");
                assert!(doc["spec"]["selfSigned"].is_object());
                seen.issuers
                    .push(doc["metadata"]["name"].as_str().unwrap().to_string());
            }
            "Certificate" => {
                assert_eq!(doc["apiVersion"], "cert-manager.io/v1");
                seen.certificates.push(doc);
            }
            other => panic!("{}: unknown kind {other}", file.display()),
        }
    }

    assert_eq!(seen.kustomizations.len(), 3);
    assert_eq!(
        seen.namespaces[0].metadata.name.as_deref(),
        Some("moat-system")
    );
    let rc = seen.runtime_class.expect("RuntimeClass");
    assert_eq!(rc.metadata.name.as_deref(), Some(moat_k8s::RUNTIME_CLASS));
    assert_eq!(rc.handler, "moat");

    // The webhook configuration points at the Service, on the paths the server serves.
    let service = seen.service.expect("Service");
    let config = seen.webhook_config.expect("MutatingWebhookConfiguration");
    let hooks = config.webhooks.expect("webhooks");
    assert_eq!(hooks.len(), 2);
    for (hook, path, failure) in [
        (&hooks[0], "/mutate/namespace", "Fail"),
        (&hooks[1], "/mutate", "Ignore"),
    ] {
        let svc = hook.client_config.service.as_ref().expect("service");
        assert_eq!(Some(&svc.name), service.metadata.name.as_ref());
        assert_eq!(svc.namespace, "moat-system");
        assert_eq!(svc.path.as_deref(), Some(path));
        assert_eq!(hook.failure_policy.as_deref(), Some(failure));
        assert_eq!(hook.side_effects, "None");
        assert_eq!(hook.admission_review_versions, ["v1"]);
        let rules = hook.rules.as_ref().unwrap();
        let resources: Vec<_> = rules
            .iter()
            .map(|r| (r.operations.clone().unwrap(), r.resources.clone().unwrap()))
            .collect();
        assert_eq!(
            resources,
            [
                (
                    vec!["CREATE".to_string(), "UPDATE".to_string()],
                    vec!["pods".to_string()]
                ),
                (
                    vec!["UPDATE".to_string()],
                    vec!["pods/ephemeralcontainers".to_string()]
                )
            ]
        );
        let selector = hook
            .namespace_selector
            .as_ref()
            .unwrap()
            .match_expressions
            .as_ref()
            .unwrap();
        assert_eq!(selector[0].key, "moat.dev/enforce");
        assert_eq!(
            selector[0].operator,
            if failure == "Fail" { "In" } else { "NotIn" }
        );
        assert!(selector[1]
            .values
            .as_ref()
            .unwrap()
            .contains(&"moat-system".to_string()));
    }

    // The webhook Deployment: two replicas, hardened, probes on /healthz, the Secret mounted
    // where its arguments look.
    let web = seen.webhook.expect("Deployment");
    assert_eq!(web.spec.replicas, Some(2));
    let pod = web.spec.template.spec.unwrap();
    let c = &pod.containers[0];
    let args = c.command.clone().unwrap();
    assert_eq!(&args[..2], ["/usr/local/bin/moat-k8s", "webhook"]);
    let mount = &c.volume_mounts.as_ref().unwrap()[0].mount_path;
    assert!(args
        .iter()
        .any(|a| a == &format!("--tls-cert={mount}/tls.crt")));
    // The floors ConfigMap is mounted where --floors looks.
    assert!(seen.floors, "the moat-floors ConfigMap");
    let floors_mount = &c.volume_mounts.as_ref().unwrap()[1].mount_path;
    assert!(args
        .iter()
        .any(|a| a == &format!("--floors={floors_mount}/floors.toml")));
    let sc = c.security_context.as_ref().unwrap();
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(pod.security_context.unwrap().run_as_non_root, Some(true));
    assert_eq!(
        c.readiness_probe
            .as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap()
            .path
            .as_deref(),
        Some("/healthz")
    );
    assert_eq!(
        pod.volumes.unwrap()[0]
            .secret
            .as_ref()
            .unwrap()
            .secret_name
            .as_deref(),
        Some("moat-webhook-tls")
    );
    assert!(seen.pdb.is_some());

    // cert-manager writes the Secret the Deployment mounts, for the Service's names.
    let cert = &seen.certificates[0];
    assert_eq!(cert["spec"]["secretName"], "moat-webhook-tls");
    assert!(seen.issuers.contains(
        &cert["spec"]["issuerRef"]["name"]
            .as_str()
            .unwrap()
            .to_string()
    ));
    assert!(cert["spec"]["dnsNames"]
        .as_array()
        .unwrap()
        .contains(&"moat-webhook.moat-system.svc".into()));

    let installer = seen.installer.expect("installer DaemonSet");
    check_installer(&installer);

    // The exporter's Service selects the DaemonSet's pods, on the exporter's port, with
    // the scrape annotations.
    let svc = seen.exporter_service.expect("moat-exporter Service");
    let spec = svc.spec.unwrap();
    let pod_labels = installer.spec.template.metadata.unwrap().labels.unwrap();
    for (k, v) in spec.selector.unwrap() {
        assert_eq!(pod_labels.get(&k), Some(&v));
    }
    assert_eq!(spec.ports.unwrap()[0].port, 9477);
    let ann = svc.metadata.annotations.unwrap();
    assert_eq!(ann["prometheus.io/scrape"], "true");
    assert_eq!(ann["prometheus.io/port"], "9477");
}

/// The init container runs `moat-node install` as root (the image's user is not), with
/// the host's root mounted where it looks; the container that stays is unprivileged.
fn check_installer(ds: &DaemonSet) {
    let pod = ds.spec.template.spec.as_ref().unwrap();
    let init = &pod.init_containers.as_ref().unwrap()[0];
    let mut line = init.command.clone().unwrap();
    line.extend(init.args.clone().unwrap_or_default());
    assert_eq!(line[0], "/usr/local/bin/moat-node");
    assert_eq!(line[1], "install");
    let host_root = line
        .iter()
        .find_map(|a| a.strip_prefix("--host-root="))
        .expect("--host-root");
    let sc = init.security_context.as_ref().unwrap();
    assert_eq!(
        sc.run_as_user,
        Some(0),
        "the installer writes to the host as root"
    );
    assert_eq!(sc.run_as_non_root, Some(false));
    assert_eq!(sc.privileged, Some(true));
    let mounts = init.volume_mounts.as_ref().unwrap();
    let host = mounts.iter().find(|m| m.mount_path == host_root).unwrap();
    let vol = pod
        .volumes
        .as_ref()
        .unwrap()
        .iter()
        .find(|v| v.name == host.name)
        .unwrap();
    assert_eq!(vol.host_path.as_ref().unwrap().path, "/");
    for c in &pod.containers {
        if c.name == "exporter" {
            check_exporter(pod, c);
            continue;
        }
        let sc = c.security_context.as_ref().unwrap();
        assert_eq!(sc.run_as_non_root, Some(true), "{}", c.name);
        assert_ne!(sc.run_as_user, Some(0), "{}", c.name);
        assert_eq!(sc.allow_privilege_escalation, Some(false), "{}", c.name);
        assert_ne!(sc.privileged, Some(true), "{}", c.name);
        assert!(c.volume_mounts.is_none(), "{}: no host mount", c.name);
    }
}

/// The exporter: root with CAP_BPF alone (owning the pins is what opens them), no
/// privilege, read-only root; bpffs and the host's cgroups are its only host mounts, the
/// cgroups read-only.
fn check_exporter(
    pod: &k8s_openapi::api::core::v1::PodSpec,
    c: &k8s_openapi::api::core::v1::Container,
) {
    let line: Vec<String> = c
        .command
        .clone()
        .unwrap()
        .into_iter()
        .chain(c.args.clone().unwrap_or_default())
        .collect();
    assert_eq!(line[0], "/usr/local/bin/moat-exporter");
    assert!(line.contains(&"--listen=:9477".to_string()));
    let sc = c.security_context.as_ref().unwrap();
    assert_ne!(sc.privileged, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    let caps = sc.capabilities.as_ref().unwrap();
    assert_eq!(caps.drop.as_deref(), Some(&["ALL".to_string()][..]));
    assert_eq!(caps.add.as_deref(), Some(&["BPF".to_string()][..]));
    for m in c.volume_mounts.as_ref().unwrap() {
        let vol = pod
            .volumes
            .as_ref()
            .unwrap()
            .iter()
            .find(|v| v.name == m.name)
            .unwrap();
        let host = &vol.host_path.as_ref().unwrap().path;
        match host.as_str() {
            "/sys/fs/bpf" => assert_eq!(m.mount_path, "/sys/fs/bpf"),
            "/sys/fs/cgroup" => {
                assert_eq!(m.read_only, Some(true));
                assert_eq!(m.mount_path, "/host/sys/fs/cgroup");
            }
            other => panic!("exporter mounts the host's {other}"),
        }
    }
}

/// `kubectl kustomize` (kubectl's built-in kustomize) renders the base and each overlay;
/// gen-certs with certificates made by `moat-k8s webhook gen-certs` in a copy of the
/// tree, as its instructions say.
#[test]
fn kubectl_kustomize_renders_every_overlay() {
    let Some(kubectl) = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("kubectl"))
            .find(|c| c.is_file())
    }) else {
        eprintln!("SKIP: kubectl not installed");
        return;
    };
    let copy = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("cp")
        .arg("-r")
        .arg(deploy_dir().join("kustomize"))
        .arg(copy.path())
        .status()
        .unwrap();
    assert!(status.success());
    let root = copy.path().join("kustomize");
    let st = std::process::Command::new(env!("CARGO_BIN_EXE_moat-k8s"))
        .args(["webhook", "gen-certs", "--out-dir"])
        .arg(root.join("overlays/gen-certs/certs"))
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    for (dir, extra) in [
        ("base", None),
        ("overlays/cert-manager", Some("Certificate")),
        ("overlays/gen-certs", Some("Secret")),
    ] {
        let o = std::process::Command::new(&kubectl)
            .arg("kustomize")
            .arg(root.join(dir))
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{dir}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let text = String::from_utf8(o.stdout).unwrap();
        let kinds: Vec<String> = serde_norway::Deserializer::from_str(&text)
            .map(|d| {
                let v = <Value as serde::Deserialize>::deserialize(d).unwrap();
                assert_eq!(
                    v["metadata"]["labels"]["app.kubernetes.io/part-of"], "moat",
                    "{dir}"
                );
                v["kind"].as_str().unwrap().to_string()
            })
            .collect();
        for kind in [
            "Namespace",
            "RuntimeClass",
            "DaemonSet",
            "Deployment",
            "MutatingWebhookConfiguration",
        ] {
            assert!(
                kinds.iter().any(|k| k == kind),
                "{dir}: no {kind} in {kinds:?}"
            );
        }
        if let Some(k) = extra {
            assert!(kinds.iter().any(|x| x == k), "{dir}: no {k}");
        }
        if dir == "overlays/gen-certs" {
            assert!(
                text.contains("caBundle: "),
                "{dir}: the CA reaches the webhook configuration"
            );
        }
    }
}
