//! The node side of Kubernetes with the real runc: a config.json shaped the way containerd
//! and CRI-O build it for a pod's container (their annotations included) runs through
//! moat-runtime. A web server binds the port its Pod declares and keeps answering while
//! a "malicious dependency" in the same container is refused another port by the kernel.
//!
//! The container shares the host network, so these tests need TCP ports 80 and 100 free on
//! this machine; they fail (not skip) when they are not, saying so.

#[macro_use]
mod common;

use common::*;
use moat_policy::{write, Policy};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// What the kubelet sends for `containerPort: 80` (and a UDP port, which binds nothing).
const PORTS: &str = r#"[{"name":"http","containerPort":80,"protocol":"TCP"},{"name":"dns","containerPort":53,"protocol":"UDP"}]"#;

/// The annotations containerd's CRI plugin writes into a pod container's config.json, plus
/// the pod annotations (`pod_annotations = ["moat.dev/*", "container.moat.dev/*"]`) and the
/// container annotation (`container_annotations = ["io.kubernetes.container.ports"]`) the
/// moat runtime handler passes on.
fn containerd_annotations(pod: &[(&str, &str)]) -> serde_json::Value {
    let mut a = serde_json::json!({
        "io.kubernetes.cri.container-type": "container",
        "io.kubernetes.cri.container-name": "web",
        "io.kubernetes.cri.image-name": "docker.io/library/busybox:1.36",
        "io.kubernetes.cri.sandbox-id": "5f1c6a0a52b5c8e4b0e6f2f8a4f3c7d1e2b9a8c7d6e5f4a3b2c1d0e9f8a7b6c5",
        "io.kubernetes.cri.sandbox-name": "web-7d4b9c8f6-x2k9p",
        "io.kubernetes.cri.sandbox-namespace": "shop",
        "io.kubernetes.cri.sandbox-uid": "0b6f1a52-3c1e-4b8e-9d2a-6f0c2b7e9a11",
        "io.kubernetes.container.ports": PORTS,
    });
    for (k, v) in pod {
        a[*k] = (*v).into();
    }
    a
}

/// The annotations CRI-O writes: its own names, and every pod and container annotation.
fn crio_annotations(pod: &[(&str, &str)]) -> serde_json::Value {
    let mut a = serde_json::json!({
        "io.kubernetes.cri-o.ContainerType": "container",
        "io.kubernetes.container.name": "web",
        "io.kubernetes.pod.name": "web-7d4b9c8f6-x2k9p",
        "io.kubernetes.pod.namespace": "shop",
        "io.kubernetes.pod.uid": "0b6f1a52-3c1e-4b8e-9d2a-6f0c2b7e9a11",
        "io.kubernetes.cri-o.SandboxID": "5f1c6a0a52b5c8e4b0e6f2f8a4f3c7d1e2b9a8c7d6e5f4a3b2c1d0e9f8a7b6c5",
        "io.kubernetes.cri-o.ImageName": "docker.io/library/busybox:1.36",
        "io.kubernetes.container.ports": PORTS,
        "io.kubernetes.container.restartCount": "0",
    });
    let mut pod_json = serde_json::Map::new();
    for (k, v) in pod {
        a[*k] = (*v).into();
        pod_json.insert((*k).to_string(), (*v).into());
    }
    a["io.kubernetes.cri-o.Annotations"] = serde_json::Value::Object(pod_json).to_string().into();
    a
}

/// The policy moat's admission webhook writes for this container: bind limited to the
/// declared TCP port, nothing else restricted.
fn webhook_policy() -> String {
    write::to_moat_toml(&Policy::bind_tcp_only([80], "containerPorts"))
        .unwrap()
        .text
}

/// The entrypoint: a web server on the declared port, then the dependency's bind on port
/// 100, then waiting (at most 20 s) for the test to say it has finished.
const ENTRYPOINT: &str = "/bin/busybox httpd -f -p 80 -h /www & server=$!; \
    i=0; while ! /bin/busybox wget -q -O /dev/null http://127.0.0.1:80/ 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done; \
    echo ready; /bin/moat-probe bind-tcp 100; \
    i=0; while [ ! -e /tmp/done ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done; \
    kill $server";

fn port_is_free(port: u16) -> bool {
    std::net::TcpListener::bind(("0.0.0.0", port)).is_ok()
}

/// One HTTP GET from the host, as a client of the pod would make it.
fn http_get(port: u16) -> Result<String, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: web\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

struct Running {
    child: Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

/// Starts the pod's container through `runtime` (moat-runtime, or runc for a control)
/// with `annotations`; `node_config` is the text of moat-runtime's configuration file on
/// this node.
fn start(
    b: &Bundle,
    runtime: &std::path::Path,
    annotations: serde_json::Value,
    node_config: &str,
) -> Running {
    for port in [80, 100] {
        assert!(
            port_is_free(port),
            "TCP port {port} is in use on this machine; the Kubernetes node tests need it free"
        );
    }
    let www = b.path().join("rootfs/www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), "served by web\n").unwrap();
    b.edit(|c| {
        c["process"]["args"] = serde_json::json!(["/bin/sh", "-c", ENTRYPOINT]);
        c["annotations"] = annotations;
    });
    let conf = b.path().join("runtime.toml");
    std::fs::write(&conf, node_config).unwrap();
    let mut child = b
        .cmd(runtime)
        .env("MOAT_RUNTIME_CONFIG", &conf)
        .args(["run", "--bundle"])
        .arg(b.path())
        .arg(&b.id)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    Running {
        child,
        lines: BufReader::new(stdout).lines(),
    }
}

/// Runs the scenario and returns what the dependency's bind on port 100 got, after
/// checking that the server answered before and after it.
fn serve_and_probe(b: &Bundle, annotations: serde_json::Value, node_config: &str) -> String {
    serve_and_probe_with(b, &moat_runtime(), annotations, node_config)
}

/// [`serve_and_probe`] through `runtime`.
fn serve_and_probe_with(
    b: &Bundle,
    runtime: &std::path::Path,
    annotations: serde_json::Value,
    node_config: &str,
) -> String {
    let mut r = start(b, runtime, annotations, node_config);
    let mut next = || {
        r.lines
            .next()
            .map(|l| l.unwrap())
            .unwrap_or_else(|| format!("(container ended; log: {})", b.log()))
    };
    assert_eq!(next(), "ready");
    let probe = next();
    let deadline = Instant::now() + Duration::from_secs(5);
    let page = loop {
        match http_get(80) {
            Ok(p) => break p,
            Err(e) if Instant::now() > deadline => panic!("port 80 stopped answering: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    assert!(
        page.starts_with("HTTP/1.") && page.ends_with("served by web\n"),
        "{page}"
    );
    std::fs::write(b.path().join("rootfs/tmp/done"), "").unwrap();
    let st = r.child.wait().unwrap();
    assert!(st.success(), "container: {st}; log: {}", b.log());
    probe
}

/// The scenarios share the host's ports 80 and 100: one at a time.
static HOST_PORTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn kubernetes_test(runtime_flavour: fn(&[(&str, &str)]) -> serde_json::Value, tag: &str) {
    let _ports = HOST_PORTS.lock().unwrap_or_else(|e| e.into_inner());
    // With the admission webhook: its per-container annotation.
    let policy = webhook_policy();
    let b = Bundle::new(&format!("{tag}-webhook"));
    let ann = runtime_flavour(&[
        ("moat.dev/enforce", "true"),
        ("container.moat.dev/web", &policy),
    ]);
    assert_eq!(serve_and_probe(&b, ann, ""), "EACCES");
    assert_eq!(
        b.config()["annotations"]["moat.dev/confined"],
        "true",
        "moat-runtime marks the container it confined"
    );
    drop(b);

    // Without the webhook: the node derives the rules from the declared ports, whether
    // its configuration says so (an older installer's key) or says nothing.
    for (n, conf) in ["ports_from_spec = true\n", ""].into_iter().enumerate() {
        let b = Bundle::new(&format!("{tag}-ports{n}"));
        assert_eq!(serve_and_probe(&b, runtime_flavour(&[]), conf), "EACCES");
        drop(b);
    }

    // Control: the same container under plain runc is not confined, and the same bind
    // succeeds: the refusal above is moat's.
    let b = Bundle::new(&format!("{tag}-open"));
    let runc = std::path::Path::new("runc");
    assert_eq!(
        serve_and_probe_with(&b, runc, runtime_flavour(&[]), ""),
        "ok"
    );
    drop(b);

    // The pod cannot turn the node's default off.
    let b = Bundle::new(&format!("{tag}-optout"));
    let ann = runtime_flavour(&[("moat.dev/ports-from-spec", "false")]);
    assert_eq!(serve_and_probe(&b, ann, ""), "EACCES");
}

#[test]
fn containerd_pod_container_binds_only_its_declared_port() {
    need_runc!();
    kubernetes_test(containerd_annotations, "containerd");
}

#[test]
fn crio_pod_container_binds_only_its_declared_port() {
    need_runc!();
    kubernetes_test(crio_annotations, "crio");
}

#[test]
fn a_broken_container_policy_starts_nothing() {
    need_runc!();
    let b = Bundle::new("k8s-broken");
    b.edit(|c| {
        c["annotations"] = containerd_annotations(&[("container.moat.dev/web", "[network\n")]);
    });
    let o = b.run(&moat_runtime());
    assert!(!o.status.success());
    assert!(!b.exists(), "no container may be left behind");
    assert!(
        b.log().contains("annotation container.moat.dev/web"),
        "runc's log names the annotation: {}",
        b.log()
    );
    // A pause container is never wrapped, whatever the pod's annotations say.
    let p = Bundle::new("k8s-pause");
    p.edit(|c| {
        let mut a = containerd_annotations(&[("container.moat.dev/web", "[network\n")]);
        a["io.kubernetes.cri.container-type"] = "sandbox".into();
        c["annotations"] = a;
        c["process"]["args"] = serde_json::json!(["/bin/true"]);
    });
    let o = p.run(&moat_runtime());
    assert!(o.status.success(), "{}", p.log());
    assert!(!p.path().join("moat").exists());
}
