//! Every manifest under deploy/ parses as its k8s-openapi type, with no field the type does
//! not know (a misspelt field is silently dropped by the API server); the kustomizations
//! and cert-manager objects hold together; the containerd and CRI-O drop-ins the node
//! installer writes are valid TOML with the keys moat-runtime needs; and the installer
//! script does its job on a directory standing in for a node.

use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service, ServiceAccount};
use k8s_openapi::api::node::v1::RuntimeClass;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
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
    installer: Option<DaemonSet>,
    installer_config: Option<ConfigMap>,
    pdb: Option<PodDisruptionBudget>,
    namespaces: Vec<Namespace>,
    kustomizations: Vec<PathBuf>,
    certificates: Vec<Value>,
    issuers: Vec<String>,
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
            "RuntimeClass" => seen.runtime_class = Some(typed(&file, &doc)),
            "ConfigMap" => seen.installer_config = Some(typed(&file, &doc)),
            "DaemonSet" => seen.installer = Some(typed(&file, &doc)),
            "Deployment" => seen.webhook = Some(typed(&file, &doc)),
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
    assert_eq!(
        rc.metadata.name.as_deref(),
        Some(moat_k8s::annotations::RUNTIME_CLASS)
    );
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
                (vec!["CREATE".to_string()], vec!["pods".to_string()]),
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

    assert!(seen.installer.is_some());
    check_node_config(&seen.installer_config.expect("installer ConfigMap"));
}

fn toml_of(data: &BTreeMap<String, String>, key: &str) -> toml::Table {
    let text = data
        .get(key)
        .unwrap_or_else(|| panic!("ConfigMap has no {key}"));
    toml::from_str(text).unwrap_or_else(|e| panic!("{key}: {e}"))
}

/// The containerd, CRI-O and moat-runtime configuration the installer writes.
fn check_node_config(cm: &ConfigMap) {
    let data = cm.data.as_ref().unwrap();
    for (key, version, plugin) in [
        ("containerd-v2.toml", 2, "io.containerd.grpc.v1.cri"),
        ("containerd-v3.toml", 3, "io.containerd.cri.v1.runtime"),
    ] {
        let t = toml_of(data, key);
        assert_eq!(t["version"].as_integer(), Some(version), "{key}");
        let moat = &t["plugins"][plugin]["containerd"]["runtimes"]["moat"];
        assert_eq!(
            moat["runtime_type"].as_str(),
            Some("io.containerd.runc.v2"),
            "{key}"
        );
        assert_eq!(
            moat["options"]["BinaryName"].as_str(),
            Some("/opt/moat/bin/moat-runtime"),
            "{key}"
        );
        assert!(moat["options"]["SystemdCgroup"].is_bool(), "{key}");
        let list = |k: &str| -> Vec<&str> {
            moat[k]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap())
                .collect()
        };
        assert_eq!(
            list("pod_annotations"),
            ["moat.dev/*", "container.moat.dev/*"],
            "{key}"
        );
        assert_eq!(
            list("container_annotations"),
            ["io.kubernetes.container.ports"],
            "{key}"
        );
    }
    let crio = toml_of(data, "crio.conf");
    let moat = &crio["crio"]["runtime"]["runtimes"]["moat"];
    assert_eq!(
        moat["runtime_path"].as_str(),
        Some("/opt/moat/bin/moat-runtime")
    );
    assert_eq!(moat["runtime_type"].as_str(), Some("oci"));
    let rt = toml_of(data, "runtime.toml");
    assert_eq!(rt["launcher"].as_str(), Some("/opt/moat/bin/moat"));
    assert!(rt.contains_key("runtime"));
    assert!(data["install.sh"].starts_with("#!/bin/sh"));
}

/// Runs install.sh against a directory laid out like a node with containerd 1.7.
#[test]
fn installer_script_sets_up_a_containerd_node() {
    let docs = documents();
    let (_, cm) = docs.iter().find(|(_, d)| d["kind"] == "ConfigMap").unwrap();
    let cfg = tempfile::tempdir().unwrap();
    for (k, v) in cm["data"].as_object().unwrap() {
        std::fs::write(cfg.path().join(k), v.as_str().unwrap()).unwrap();
    }
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("moat"), "launcher").unwrap();
    std::fs::write(src.path().join("moat-runtime"), "runtime").unwrap();
    let host = tempfile::tempdir().unwrap();
    let h = host.path();
    std::fs::create_dir_all(h.join("etc/containerd")).unwrap();
    std::fs::create_dir_all(h.join("usr/sbin")).unwrap();
    std::fs::write(h.join("usr/sbin/runc"), "").unwrap();
    std::fs::set_permissions(
        h.join("usr/sbin/runc"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let main = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]\n  SystemdCgroup = true\n";
    std::fs::write(h.join("etc/containerd/config.toml"), main).unwrap();
    std::fs::create_dir_all(h.join("etc/crio")).unwrap();
    let tmp = tempfile::tempdir().unwrap();

    let run = || {
        let out = std::process::Command::new("sh")
            .arg(cfg.path().join("install.sh"))
            .env("MOAT_HOST_ROOT", h)
            .env("MOAT_INSTALLER_CONFIG", cfg.path())
            .env("MOAT_BIN_SOURCE", src.path())
            .env("MOAT_RESTART_RUNTIME", "false")
            .env("TMPDIR", tmp.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let first = run();
    assert!(first.contains("restart containerd crio"), "{first}");
    assert_eq!(
        std::fs::read_to_string(h.join("opt/moat/bin/moat-runtime")).unwrap(),
        "runtime"
    );
    let drop_in: toml::Table = toml::from_str(
        &std::fs::read_to_string(h.join("etc/containerd/conf.d/99-moat.toml")).unwrap(),
    )
    .unwrap();
    let moat = &drop_in["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"]["moat"];
    assert_eq!(
        moat["options"]["SystemdCgroup"].as_bool(),
        Some(true),
        "follows the node's runc"
    );
    let new_main = std::fs::read_to_string(h.join("etc/containerd/config.toml")).unwrap();
    assert!(
        new_main.starts_with("imports = [\"/etc/containerd/conf.d/*.toml\"]\n"),
        "{new_main}"
    );
    toml::from_str::<toml::Table>(&new_main).unwrap();
    let rt = std::fs::read_to_string(h.join("etc/moat/runtime.toml")).unwrap();
    assert!(rt.contains("runtime = \"/usr/sbin/runc\""), "{rt}");
    assert!(h.join("etc/crio/crio.conf.d/99-moat.conf").is_file());
    // A second run (the pod restarted) changes nothing and restarts nothing.
    assert!(run().contains("already installed, nothing changed"));
}
