//! The AdmissionReviews the load test sends.

use serde_json::json;

/// Realistic requests, in the proportions a cluster sends them: ~2 KB Pod CREATE reviews
/// as a ReplicaSet controller sends them (two containers with ports, an init container,
/// probes, projected token volume), in an opted-in namespace: 2 in 5 with no policy named,
/// 1 with a preset (`web-server`), 1 with a moat TOML policy, 1 with an unrelated
/// annotation. Every one is answered with a patch of 4-5 operations.
pub fn bodies() -> Vec<Vec<u8>> {
    let pod = |annotations: serde_json::Value| {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"generateName": "web-7d9f8c6b5d-", "namespace": "shop",
                "labels": {"app": "web", "pod-template-hash": "7d9f8c6b5d"},
                "annotations": annotations,
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d9f8c6b5d",
                    "uid": "b5e1d9d2-5c52-4b8e-9b1e-0f1f2d3c4b5a", "controller": true, "blockOwnerDeletion": true}]},
            "spec": {
                "containers": [
                    {"name": "web", "image": "nginx:1.27", "ports": [{"name": "http", "containerPort": 80, "protocol": "TCP"}],
                     "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
                     "readinessProbe": {"httpGet": {"path": "/", "port": 80}},
                     "volumeMounts": [{"name": "kube-api-access-x", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true}]},
                    {"name": "metrics", "image": "exporter:0.15", "ports": [{"containerPort": 9113}],
                     "env": [{"name": "SCRAPE_URI", "value": "http://localhost/stub_status"}]}
                ],
                "initContainers": [{"name": "config", "image": "busybox", "command": ["sh", "-c", "cp /src/* /dst"]}],
                "restartPolicy": "Always", "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
                "serviceAccountName": "default", "securityContext": {}, "schedulerName": "default-scheduler",
                "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}],
                "volumes": [{"name": "kube-api-access-x", "projected": {"sources": [{"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}}]}}]
            }
        })
    };
    let review = |object: serde_json::Value| {
        json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {"uid": "2f6a1c1e-8d4b-4c1e-9f1a-6b3c2d1e0f9a",
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
                "requestResource": {"group": "", "version": "v1", "resource": "pods"},
                "namespace": "shop", "operation": "CREATE",
                "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller",
                    "uid": "0f5c0b0a-0000-4000-8000-000000000000", "groups": ["system:serviceaccounts", "system:authenticated"]},
                "object": object, "oldObject": null, "dryRun": false,
                "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"}}
        })
        .to_string()
        .into_bytes()
    };
    vec![
        review(pod(json!({"moat.dev/enforce": "true"}))),
        review(pod(json!({"moat.dev/enforce": "true"}))),
        review(pod(
            json!({"moat.dev/enforce": "true", "moat.dev/preset": "web-server"}),
        )),
        review(pod(json!({"moat.dev/enforce": "true", "moat.dev/policy":
            "[filesystem]\nread_exec = [\"/usr\", \"/lib\", \"/bin\"]\nread = [\"/etc\"]\nwrite = [\"/tmp\"]\n\n[network]\nconnect_tcp = [5432]\n"}))),
        review(pod(json!({"prometheus.io/scrape": "true"}))),
    ]
}
