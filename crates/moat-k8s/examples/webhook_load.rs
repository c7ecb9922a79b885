//! Load test of the admission webhook: this process sends AdmissionReviews over HTTPS to a
//! `moat-k8s webhook` it starts on loopback, from many keep-alive connections at once, and
//! reports throughput and latency percentiles. Bounded in count and time.
//!
//! ```sh
//! cargo build --release -p moat-k8s --bins --examples
//! target/x86_64-unknown-linux-gnu/release/examples/webhook_load --concurrency 100 --requests 50000
//! ```
//!
//! Options: `--concurrency N` (connections, each with one request in flight; default 100),
//! `--requests N` (total, default 50000), `--max-seconds S` (stop sending after S seconds,
//! default 60), `--webhook PATH` (the binary; default `moat-k8s` beside this example's
//! directory).

#[path = "../tests/common/client.rs"]
mod client;

use moat_k8s::certs::{self, CertRequest};
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Options {
    concurrency: usize,
    requests: usize,
    max_seconds: u64,
    webhook: PathBuf,
}

fn options() -> Options {
    let exe = std::env::current_exe().expect("own path");
    let mut o = Options {
        concurrency: 100,
        requests: 50_000,
        max_seconds: 60,
        webhook: exe
            .parent()
            .and_then(|examples| examples.parent())
            .map(|dir| dir.join("moat-k8s"))
            .expect("target directory"),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--concurrency" => o.concurrency = value.parse().expect("--concurrency N"),
            "--requests" => o.requests = value.parse().expect("--requests N"),
            "--max-seconds" => o.max_seconds = value.parse().expect("--max-seconds S"),
            "--webhook" => o.webhook = value.into(),
            other => panic!("unknown option {other}"),
        }
    }
    o
}

/// Realistic requests, in the proportions a cluster sends them: most pods are created by
/// controllers in an opted-in namespace (patched), some name a preset or a policy, some
/// did not opt in.
fn bodies() -> Vec<Vec<u8>> {
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
        serde_json::to_vec(&json!({
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
        }))
        .expect("json")
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

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("--decision-only") {
        // The pure decision, without TLS or HTTP: what each request costs the server's CPU
        // before any I/O.
        for (i, body) in bodies().iter().enumerate() {
            let n = 5000;
            let t = Instant::now();
            for _ in 0..n {
                let out = moat_k8s::admission::review(body, moat_k8s::opt_in::Scope::Namespace);
                std::hint::black_box(out.expect("answer"));
            }
            println!(
                "body {i} ({} bytes): {:.1} us per decision",
                body.len(),
                t.elapsed().as_secs_f64() * 1e6 / n as f64
            );
        }
        return;
    }
    let o = options();
    let dir = tempfile::tempdir().expect("tempdir");
    let generated = certs::generate(&CertRequest {
        service: "moat-webhook".into(),
        namespace: "moat-system".into(),
        days: 1,
        extra_names: vec![],
    })
    .expect("certificates");
    certs::write(dir.path(), &generated).expect("write certificates");
    let mut server = Command::new(&o.webhook)
        .args(["webhook", "--addr", "127.0.0.1:0", "--tls-cert"])
        .arg(dir.path().join("tls.crt"))
        .arg("--tls-key")
        .arg(dir.path().join("tls.key"))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", o.webhook.display()));
    let mut lines = BufReader::new(server.stderr.take().expect("stderr")).lines();
    let addr: SocketAddr = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| {
            l.strip_prefix("moat-k8s: webhook listening on https://")
                .map(str::to_string)
        })
        .expect("the webhook starts")
        .parse()
        .expect("address");
    std::thread::spawn(move || lines.for_each(drop));

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let bodies = Arc::new(bodies());
    let connector = client::connector(&generated.ca_pem);
    let (latencies, elapsed, errors) = runtime.block_on(async {
        // Connections first (TLS handshakes are not what is measured), then a warm-up.
        let mut conns = Vec::new();
        for _ in 0..o.concurrency {
            conns.push(
                client::Connection::open(&connector, addr)
                    .await
                    .expect("connect"),
            );
        }
        for c in conns.iter_mut() {
            let (status, _) = c
                .send("POST", "/mutate/namespace", bodies[0].clone())
                .await
                .expect("warm-up");
            assert_eq!(status, 200);
        }
        let next = Arc::new(AtomicUsize::new(0));
        let deadline = Instant::now() + Duration::from_secs(o.max_seconds);
        let start = Instant::now();
        let mut tasks = Vec::new();
        for mut c in conns {
            let (next, bodies, total) = (next.clone(), bodies.clone(), o.requests);
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut errors = 0usize;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total || Instant::now() > deadline {
                        break;
                    }
                    let body = bodies[i % bodies.len()].clone();
                    let t = Instant::now();
                    match c.send("POST", "/mutate/namespace", body).await {
                        Ok((status, _)) if status == 200 => lat.push(t.elapsed()),
                        _ => errors += 1,
                    }
                }
                (lat, errors)
            }));
        }
        let mut all = Vec::new();
        let mut errors = 0;
        for t in tasks {
            let (lat, e) = t.await.expect("task");
            all.extend(lat);
            errors += e;
        }
        (all, start.elapsed(), errors)
    });
    let _ = server.kill();
    let _ = server.wait();

    let mut sorted = latencies;
    sorted.sort();
    assert!(!sorted.is_empty(), "no request succeeded");
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "requests: {} ok, {errors} failed, {} concurrent keep-alive connections, {:.2} s",
        sorted.len(),
        o.concurrency,
        elapsed.as_secs_f64()
    );
    println!(
        "throughput: {:.0} requests/s",
        sorted.len() as f64 / elapsed.as_secs_f64()
    );
    println!(
        "latency: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(percentile(&sorted, 0.50)),
        ms(percentile(&sorted, 0.90)),
        ms(percentile(&sorted, 0.99)),
        ms(sorted[sorted.len() - 1])
    );
}
