//! The kubelet's side of a node, for the end-to-end test and the pod start benchmark: a
//! containerd set up as a node (Debian's configuration, a CNI bridge, the cgroup and
//! OOM-score quirks of these VMs), moat installed on it by the real installer, images
//! built locally from busybox-static, and the CRI gRPC API driven with the `k8s-cri`
//! client exactly as the kubelet calls it.
#![allow(dead_code)]

use super::Node;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::{
    ContainerConfig, ContainerMetadata, CreateContainerRequest, ExecSyncRequest, ImageSpec,
    KeyValue, LinuxContainerConfig, LinuxContainerSecurityContext, LinuxPodSandboxConfig,
    LinuxSandboxSecurityContext, NamespaceMode, NamespaceOption, PodSandboxConfig,
    PodSandboxMetadata, PodSandboxStatusRequest, RemoveContainerRequest, RemovePodSandboxRequest,
    RunPodSandboxRequest, StartContainerRequest, StopContainerRequest, StopPodSandboxRequest,
};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use tonic::transport::{Channel, Endpoint, Uri};

/// The images, named as the node's configuration names them.
pub const PAUSE_IMAGE: &str = "moat.test/pause:1";
pub const BUSYBOX_IMAGE: &str = "moat.test/busybox:1";

/// The busybox applets the test containers use.
const APPLETS: &[&str] = &[
    "sh", "httpd", "killall", "cat", "echo", "sleep", "ls", "true", "wget", "id",
];

/// Builds moat, moat-runtime (the installer copies them) once.
pub fn ensure_built() -> PathBuf {
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        // The profile this binary was built with: the benchmark copies release builds.
        let release = env!("CARGO_BIN_EXE_moat-node").contains("/release/");
        let st = Command::new(cargo)
            .args(["build", "--quiet", "-p", "moat", "-p", "moat-runtime"])
            .args(release.then_some("--release"))
            .status()
            .expect("cargo build");
        assert!(st.success(), "building moat and moat-runtime failed");
    });
    Path::new(env!("CARGO_BIN_EXE_moat-node"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A random tag, for names that live outside the node's directory (the bridge).
pub fn unique() -> String {
    let mut b = [0u8; 4];
    // SAFETY: getrandom writes at most b.len() bytes into b.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    assert_eq!(n, 4);
    format!("{:08x}", u32::from_ne_bytes(b))
}

/// A node running containerd with moat installed, its CNI bridge, and a CRI client.
pub struct CriNode {
    pub node: Node,
    pub bridge: String,
    pub subnet: String,
    pub client: RuntimeServiceClient<Channel>,
    pub rt: tokio::runtime::Runtime,
    pub installer_output: String,
}

impl CriNode {
    /// Sets up the node: configuration, containerd started by hand, `moat-node install`
    /// (which restarts it through its hook), the images imported.
    pub fn new() -> CriNode {
        let from = ensure_built();
        let tag = unique();
        let bridge = format!("moat{tag}");
        // A /24 in 10.0.0.0/8 nothing on this machine routes yet.
        let routes = String::from_utf8(
            Command::new("ip")
                .args(["-4", "route"])
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap();
        let seed = u32::from_str_radix(&tag, 16).unwrap();
        let subnet = (0..64)
            .map(|i| {
                let x = seed.wrapping_add(i * 7919);
                format!("10.{}.{}", 128 + (x >> 8) % 120, x % 256)
            })
            .find(|s| !routes.contains(&format!("{s}.")))
            .expect("a free subnet");

        let node_config = |d: &str| {
            format!(
                r#"version = 2

[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "{PAUSE_IMAGE}"
    # This VM withholds CAP_SYS_RESOURCE: runc cannot lower oom_score_adj below ours.
    restrict_oom_score_adj = true
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/usr/lib/cni"
      conf_dir = "{d}/cni"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        Root = "{d}/runc"
  [plugins."io.containerd.internal.v1.opt"]
    path = "{d}/opt"
"#
            )
        };
        // The node's directory is only known once made: write the configuration after.
        let node = Node::new("version = 2\n");
        let d = node.path().display().to_string();
        let text = std::fs::read_to_string(node.config())
            .unwrap()
            .replace("version = 2\n", &node_config(&d));
        std::fs::write(node.config(), text).unwrap();
        std::fs::create_dir_all(node.path().join("cni")).unwrap();
        std::fs::write(
            node.path().join("cni/10-moat-test.conflist"),
            serde_json::json!({
                "cniVersion": "1.0.0",
                "name": format!("moat-test-{tag}"),
                "plugins": [{
                    "type": "bridge",
                    "bridge": bridge,
                    "isGateway": true,
                    "ipMasq": false,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": format!("{subnet}.0/24")}]],
                        "dataDir": format!("{d}/cni-ipam"),
                    }
                }]
            })
            .to_string(),
        )
        .unwrap();
        node.start();

        let o = node.installer("install", &from, &[]);
        let installer_output = super::out(&o);
        assert!(o.status.success(), "{installer_output}");

        import(
            &node,
            "pause",
            PAUSE_IMAGE,
            &[
                "/bin/sh",
                "-c",
                "trap 'exit 0' TERM; while :; do sleep 3600 & wait; done",
            ],
        );
        import(&node, "busybox", BUSYBOX_IMAGE, &["/bin/sh"]);

        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let socket = node.socket();
        let channel = rt
            .block_on(
                Endpoint::try_from("http://[::]")
                    .unwrap()
                    .connect_with_connector(tower::service_fn(move |_: Uri| {
                        let socket = socket.clone();
                        async move {
                            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                                tokio::net::UnixStream::connect(socket).await?,
                            ))
                        }
                    })),
            )
            .unwrap();
        CriNode {
            node,
            bridge,
            subnet,
            client: RuntimeServiceClient::new(channel),
            rt,
            installer_output,
        }
    }

    pub fn path(&self) -> &Path {
        self.node.path()
    }
}

impl Drop for CriNode {
    fn drop(&mut self) {
        self.node.stop();
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .status();
    }
}

/// Builds an image from busybox-static (`/bin/busybox`, applets as links, `/www`, `/tmp`,
/// `/etc`; no `/usr`) as an OCI layout and imports it into the node's `k8s.io` namespace
/// under `name`, with `cmd` as its command.
pub fn import(node: &Node, what: &str, name: &str, cmd: &[&str]) {
    let mut layer = tar::Builder::new(Vec::new());
    let dir = |b: &mut tar::Builder<Vec<u8>>, p: &str| {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        b.append_data(&mut h, p, std::io::empty()).unwrap();
    };
    for d in ["bin/", "etc/", "www/", "tmp/", "proc/", "dev/", "sys/"] {
        dir(&mut layer, d);
    }
    let busybox = std::fs::read("/bin/busybox").unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_mode(0o755);
    h.set_size(busybox.len() as u64);
    layer
        .append_data(&mut h, "bin/busybox", &busybox[..])
        .unwrap();
    for a in APPLETS {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_mode(0o777);
        h.set_size(0);
        layer
            .append_link(&mut h, format!("bin/{a}"), "busybox")
            .unwrap();
    }
    let index = b"<h1>moat</h1>\n";
    let mut h = tar::Header::new_ustar();
    h.set_mode(0o644);
    h.set_size(index.len() as u64);
    layer
        .append_data(&mut h, "www/index.html", &index[..])
        .unwrap();
    let layer = layer.into_inner().unwrap();

    let digest = |b: &[u8]| format!("sha256:{:x}", Sha256::digest(b));
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": cmd, "Env": ["PATH=/bin"], "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [digest(&layer)]},
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest(&layer), "size": layer.len()}],
    }))
    .unwrap();
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest(&manifest),
            "size": manifest.len(),
            "platform": {"architecture": "amd64", "os": "linux"},
            "annotations": {"io.containerd.image.name": name},
        }],
    }))
    .unwrap();
    let mut archive = tar::Builder::new(Vec::new());
    let mut add = |path: &str, data: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        archive.append_data(&mut h, path, data).unwrap();
    };
    add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    add("index.json", &index);
    for blob in [&layer, &config, &manifest] {
        let d = digest(blob);
        add(&format!("blobs/sha256/{}", &d[7..]), blob);
    }
    let file = node.path().join(format!("{what}.tar"));
    std::fs::write(&file, archive.into_inner().unwrap()).unwrap();
    let o = node.ctr(&["-n", "k8s.io", "images", "import", file.to_str().unwrap()]);
    assert!(o.status.success(), "import {what}: {}", super::out(&o));
}

/// The pod a kubelet would run: its sandbox configuration.
pub struct Pod {
    pub name: String,
    pub uid: String,
    pub annotations: HashMap<String, String>,
    pub log_dir: PathBuf,
}

impl Pod {
    pub fn new(node: &CriNode, name: &str, annotations: HashMap<String, String>) -> Pod {
        let uid = format!("{}-{}", name, unique());
        let log_dir = node.path().join("pods").join(&uid);
        std::fs::create_dir_all(&log_dir).unwrap();
        Pod {
            name: name.to_string(),
            uid,
            annotations,
            log_dir,
        }
    }

    pub fn sandbox_config(&self) -> PodSandboxConfig {
        PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: self.name.clone(),
                uid: self.uid.clone(),
                namespace: "shop".into(),
                attempt: 0,
            }),
            log_directory: self.log_dir.display().to_string(),
            labels: HashMap::from([
                ("io.kubernetes.pod.name".into(), self.name.clone()),
                ("io.kubernetes.pod.namespace".into(), "shop".into()),
                ("io.kubernetes.pod.uid".into(), self.uid.clone()),
            ]),
            annotations: self.annotations.clone(),
            linux: Some(LinuxPodSandboxConfig {
                security_context: Some(LinuxSandboxSecurityContext {
                    namespace_options: Some(NamespaceOption {
                        network: NamespaceMode::Pod as i32,
                        pid: NamespaceMode::Container as i32,
                        ipc: NamespaceMode::Pod as i32,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// The container configuration the kubelet sends for container `name` running
    /// `command`, with the annotations it adds (the declared ports among them).
    pub fn container_config(
        &self,
        name: &str,
        command: &[&str],
        ports_json: &str,
    ) -> ContainerConfig {
        ContainerConfig {
            metadata: Some(ContainerMetadata {
                name: name.into(),
                attempt: 0,
            }),
            image: Some(ImageSpec {
                image: BUSYBOX_IMAGE.into(),
                ..Default::default()
            }),
            command: command.iter().map(|s| s.to_string()).collect(),
            working_dir: "/".into(),
            envs: vec![KeyValue {
                key: "PATH".into(),
                value: "/bin".into(),
            }],
            log_path: format!("{name}/0.log"),
            labels: HashMap::from([
                ("io.kubernetes.container.name".into(), name.into()),
                ("io.kubernetes.pod.name".into(), self.name.clone()),
                ("io.kubernetes.pod.namespace".into(), "shop".into()),
                ("io.kubernetes.pod.uid".into(), self.uid.clone()),
            ]),
            annotations: HashMap::from([
                ("io.kubernetes.container.hash".into(), "6f1a2b3c".into()),
                ("io.kubernetes.container.restartCount".into(), "0".into()),
                (
                    "io.kubernetes.container.terminationMessagePath".into(),
                    "/dev/termination-log".into(),
                ),
                (
                    "io.kubernetes.container.terminationMessagePolicy".into(),
                    "File".into(),
                ),
                (
                    "io.kubernetes.pod.terminationGracePeriod".into(),
                    "30".into(),
                ),
                ("io.kubernetes.container.ports".into(), ports_json.into()),
            ]),
            linux: Some(LinuxContainerConfig {
                security_context: Some(LinuxContainerSecurityContext {
                    namespace_options: Some(NamespaceOption {
                        network: NamespaceMode::Pod as i32,
                        pid: NamespaceMode::Container as i32,
                        ipc: NamespaceMode::Pod as i32,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// The container's log as containerd writes it (CRI format), message parts only.
    pub fn log(&self, container: &str) -> String {
        std::fs::read_to_string(self.log_dir.join(container).join("0.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.splitn(4, ' ').nth(3))
            .map(|m| format!("{m}\n"))
            .collect()
    }
}

/// What the kubelet sends for `containerPort: 80`.
pub const PORTS: &str = r#"[{"name":"http","containerPort":80,"protocol":"TCP"}]"#;

/// The pod's annotations after moat's admission webhook: an AdmissionReview for a pod
/// with `moat.dev/enforce: "true"` and `containerPort: 80`, answered by the webhook's own
/// code, its JSON Patch applied.
pub fn webhook_annotations(extra: &[(&str, &str)]) -> HashMap<String, String> {
    let mut annotations = serde_json::json!({"moat.dev/enforce": "true"});
    for (k, v) in extra {
        annotations[*k] = (*v).into();
    }
    let mut pod = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "namespace": "shop", "annotations": annotations},
        "spec": {"containers": [{
            "name": "web",
            "image": BUSYBOX_IMAGE,
            "ports": [{"name": "http", "containerPort": 80, "protocol": "TCP"}],
        }]},
    });
    let review = serde_json::json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "e2e",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "operation": "CREATE",
            "namespace": "shop",
            "object": pod,
        },
    });
    let out = moat_k8s::admission::review(
        &serde_json::to_vec(&review).unwrap(),
        moat_k8s::opt_in::Scope::Pod,
    )
    .unwrap();
    let answer: serde_json::Value = serde_json::from_slice(&out.body).unwrap();
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
    use base64::Engine;
    let patch = base64::engine::general_purpose::STANDARD
        .decode(answer["response"]["patch"].as_str().unwrap())
        .unwrap();
    let patch: json_patch::Patch = serde_json::from_slice(&patch).unwrap();
    json_patch::patch(&mut pod, &patch).unwrap();
    assert_eq!(pod["spec"]["runtimeClassName"], "moat");
    pod["metadata"]["annotations"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect()
}

/// A CRI call's error, with its message.
pub type CriResult<T> = Result<T, tonic::Status>;

impl CriNode {
    pub fn run_pod(&mut self, pod: &Pod, handler: &str) -> CriResult<String> {
        let req = RunPodSandboxRequest {
            config: Some(pod.sandbox_config()),
            runtime_handler: handler.into(),
        };
        let r = self.rt.block_on(self.client.run_pod_sandbox(req))?;
        Ok(r.into_inner().pod_sandbox_id)
    }

    pub fn pod_ip(&mut self, id: &str) -> String {
        let r = self
            .rt
            .block_on(self.client.pod_sandbox_status(PodSandboxStatusRequest {
                pod_sandbox_id: id.into(),
                verbose: false,
            }))
            .unwrap()
            .into_inner();
        r.status.unwrap().network.unwrap().ip
    }

    pub fn create(
        &mut self,
        pod: &Pod,
        sandbox: &str,
        config: ContainerConfig,
    ) -> CriResult<String> {
        let req = CreateContainerRequest {
            pod_sandbox_id: sandbox.into(),
            config: Some(config),
            sandbox_config: Some(pod.sandbox_config()),
        };
        Ok(self
            .rt
            .block_on(self.client.create_container(req))?
            .into_inner()
            .container_id)
    }

    pub fn start(&mut self, id: &str) -> CriResult<()> {
        self.rt
            .block_on(self.client.start_container(StartContainerRequest {
                container_id: id.into(),
            }))?;
        Ok(())
    }

    /// `ExecSync`: (exit code, stdout, stderr).
    pub fn exec_sync(&mut self, id: &str, cmd: &[&str]) -> CriResult<(i32, String, String)> {
        let r = self
            .rt
            .block_on(self.client.exec_sync(ExecSyncRequest {
                container_id: id.into(),
                cmd: cmd.iter().map(|s| s.to_string()).collect(),
                timeout: 20,
            }))?
            .into_inner();
        Ok((
            r.exit_code,
            String::from_utf8_lossy(&r.stdout).into_owned(),
            String::from_utf8_lossy(&r.stderr).into_owned(),
        ))
    }

    /// Stops and removes a pod and its containers, as the kubelet does.
    pub fn remove_pod(&mut self, sandbox: &str, containers: &[&str]) {
        for c in containers {
            self.rt
                .block_on(self.client.stop_container(StopContainerRequest {
                    container_id: c.to_string(),
                    timeout: 0,
                }))
                .unwrap();
            self.rt
                .block_on(self.client.remove_container(RemoveContainerRequest {
                    container_id: c.to_string(),
                }))
                .unwrap();
        }
        self.rt
            .block_on(self.client.stop_pod_sandbox(StopPodSandboxRequest {
                pod_sandbox_id: sandbox.into(),
            }))
            .unwrap();
        self.rt
            .block_on(self.client.remove_pod_sandbox(RemovePodSandboxRequest {
                pod_sandbox_id: sandbox.into(),
            }))
            .unwrap();
    }
}

/// `GET /` on `ip:port`: the status line, or the error.
pub fn http_get(ip: &str, port: u16) -> Result<String, String> {
    use std::io::{Read, Write};
    let addr: std::net::SocketAddr = format!("{ip}:{port}").parse().map_err(|e| format!("{e}"))?;
    let mut s = std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(5))
        .map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .ok();
    s.write_all(format!("GET / HTTP/1.0\r\nHost: {ip}\r\n\r\n").as_bytes())
        .map_err(|e| e.to_string())?;
    let mut body = String::new();
    s.read_to_string(&mut body).map_err(|e| e.to_string())?;
    Ok(body.lines().next().unwrap_or_default().to_string())
}
