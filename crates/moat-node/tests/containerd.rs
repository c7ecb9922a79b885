//! End to end, the kubelet's path on a real node: Debian's containerd 1.6.20 started by
//! hand (own root, state and socket in a temporary directory; there is no systemd), moat
//! installed on it by the real installer (`moat-node install`, which restarts containerd
//! through its hook), images built locally from busybox-static, and then the CRI gRPC API
//! driven as the kubelet drives it (the `k8s-cri` client):
//!
//! - a pod on the handler `moat` with the annotations moat's admission webhook returns for
//!   `containerPort: 80` and `moat.dev/enforce: "true"`: its busybox `httpd` serves port
//!   80, while binding port 100 fails with EACCES in the entrypoint and in ExecSync;
//! - then the pod's moat annotations changed in the PodSandboxConfig as the kubelet sends
//!   it after `kubectl annotate` (the policy removed, or rewritten to allow everything): a
//!   new container in the same sandbox does not start, with moat-runtime's reason;
//! - the same pod on the handler `runc` (the control): the same binds succeed;
//! - a pod whose policy annotation does not parse: StartContainer fails, and the CRI error
//!   carries moat-runtime's message;
//! - a pod with `moat.dev/preset: web-server` starts in the busybox image (no `/usr`);
//! - Stop/Remove of everything leaves no task, container, bundle, runc state, shim or
//!   mount behind.

#[macro_use]
mod common;

use common::cri::{http_get, webhook_annotations, CriNode, Pod, PORTS};
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// The entrypoint: try the bind a malicious dependency would (port 100), report it, then
/// serve the declared port.
const ENTRYPOINT: &[&str] = &[
    "/bin/sh",
    "-c",
    "if httpd -p 100 -h /www 2>/tmp/bind.err; then echo bind100=ok; killall httpd; \
     else echo \"bind100=$(cat /tmp/bind.err)\"; fi; exec httpd -f -p 80 -h /www",
];

/// Waits until `ip:80` answers (the server starts after the entrypoint's bind test).
fn wait_serving(ip: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match http_get(ip, 80) {
            Ok(status) => return status,
            Err(e) if Instant::now() > deadline => panic!("{ip}:80 never answered: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// Waits for the entrypoint's report in the container's log.
fn bind_report(pod: &Pod) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let log = pod.log("web");
        if let Some(l) = log.lines().find(|l| l.starts_with("bind100=")) {
            return l.to_string();
        }
        assert!(Instant::now() < deadline, "no report in the log: {log:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Names in `dir` (empty when it does not exist).
fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|r| {
            r.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_kubelets_path_on_a_real_containerd() {
    need_containerd!();
    let mut node = CriNode::new();
    assert!(
        node.installer_output.contains("trial containerd"),
        "{}",
        node.installer_output
    );
    assert_eq!(
        node.node.restarts(),
        2,
        "started, then restarted by the installer"
    );

    // The confined pod.
    let annotations = webhook_annotations(&[]);
    assert!(
        annotations.contains_key("container.moat.dev/web"),
        "{annotations:?}"
    );
    let pod = Pod::new(&node, "web", annotations);
    let sandbox = node.run_pod(&pod, "moat").expect("RunPodSandbox");
    let ip = node.pod_ip(&sandbox);
    let web = node
        .create(
            &pod,
            &sandbox,
            pod.container_config("web", ENTRYPOINT, PORTS),
        )
        .expect("CreateContainer");
    node.start(&web).expect("StartContainer");
    assert!(wait_serving(&ip).contains("200"), "port 80 serves");
    let report = bind_report(&pod);
    assert!(
        report.contains("Permission denied"),
        "entrypoint bind of 100: {report}"
    );
    let (code, _, err) = node
        .exec_sync(&web, &["httpd", "-p", "100", "-h", "/www"])
        .expect("ExecSync");
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("Permission denied"),
        "ExecSync bind of 100: {err}"
    );
    let (code, out, _) = node.exec_sync(&web, &["cat", "/www/index.html"]).unwrap();
    assert_eq!(
        (code, out.as_str()),
        (0, "<h1>moat</h1>\n"),
        "exec otherwise works"
    );
    assert!(
        http_get(&ip, 80).unwrap().contains("200"),
        "port 80 keeps serving"
    );
    assert!(http_get(&ip, 100).is_err(), "nothing listens on 100");

    // `kubectl annotate pod web container.moat.dev/web- moat.dev/policy-`, or an allow-all
    // rewrite (were the webhook not there to refuse the update): the kubelet sends the
    // current pod's annotations with the next container it creates in the sandbox, and
    // containerd copies them into its config.json. moat-runtime compares them with those
    // the sandbox was created with, and starts nothing.
    let allow_all = "[filesystem]\nunrestricted = true\n\n[network]\nunrestricted = true\n";
    let mut started_again = Vec::new();
    for (attempt, rewrite) in [(1u32, None), (2, Some(allow_all))] {
        let mut rewritten = Pod::new(&node, "web-annotated", HashMap::new());
        rewritten.name = pod.name.clone();
        rewritten.uid = pod.uid.clone();
        rewritten.log_dir = pod.log_dir.clone();
        rewritten.annotations = pod
            .annotations
            .iter()
            .filter(|(k, _)| !k.starts_with("container.moat.dev/") && *k != "moat.dev/policy")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if let Some(text) = rewrite {
            rewritten
                .annotations
                .insert("container.moat.dev/web".into(), text.into());
        }
        assert_ne!(rewritten.annotations, pod.annotations);
        let mut again = rewritten.container_config(
            "web",
            &[
                "/bin/sh",
                "-c",
                "if httpd -p 100 -h /www 2>/tmp/bind.err; then echo bind100=ok; killall httpd; \
                 else echo \"bind100=$(cat /tmp/bind.err)\"; fi; exec sleep 30",
            ],
            PORTS,
        );
        if let Some(m) = again.metadata.as_mut() {
            m.attempt = attempt;
        }
        again.log_path = format!("web/{attempt}.log");
        let id = node
            .create(&rewritten, &sandbox, again)
            .expect("CreateContainer after the annotation change");
        let e = node
            .start(&id)
            .expect_err("a container whose moat annotations changed must not start");
        assert!(
            e.message()
                .contains("moat annotations changed after the pod was created")
                && e.message().contains("container.moat.dev/web"),
            "{}",
            e.message()
        );
        assert!(
            std::fs::read_to_string(pod.log_dir.join(format!("web/{attempt}.log")))
                .unwrap_or_default()
                .is_empty(),
            "nothing ran"
        );
        started_again.push(id);
    }

    // The control: the same pod on runc binds what it likes.
    let control = Pod::new(&node, "control", webhook_annotations(&[]));
    let control_sandbox = node.run_pod(&control, "runc").unwrap();
    let control_ip = node.pod_ip(&control_sandbox);
    let c = node
        .create(
            &control,
            &control_sandbox,
            control.container_config("web", ENTRYPOINT, PORTS),
        )
        .unwrap();
    node.start(&c).unwrap();
    assert!(wait_serving(&control_ip).contains("200"));
    assert_eq!(bind_report(&control), "bind100=ok");
    let (code, _, err) = node
        .exec_sync(&c, &["httpd", "-p", "100", "-h", "/www"])
        .unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(
        http_get(&control_ip, 100).unwrap().contains("200"),
        "the control serves 100"
    );

    // A preset in the minimal image (no /usr): it starts and serves.
    let preset = Pod::new(
        &node,
        "preset",
        webhook_annotations(&[("moat.dev/preset", "web-server")]),
    );
    let preset_sandbox = node.run_pod(&preset, "moat").unwrap();
    let preset_ip = node.pod_ip(&preset_sandbox);
    // The preset reads the working directory (${CWD}), so the content directory is the
    // container's working directory: a working directory of `/` is not granted (it would
    // grant everything).
    let mut preset_web =
        preset.container_config("web", &["httpd", "-f", "-p", "80", "-h", "/www"], PORTS);
    preset_web.working_dir = "/www".into();
    let p = node.create(&preset, &preset_sandbox, preset_web).unwrap();
    node.start(&p).unwrap();
    assert!(
        wait_serving(&preset_ip).contains("200"),
        "{}",
        preset.log("web")
    );

    // A policy that does not parse: the CRI error says why.
    let bad_annotations = HashMap::from([
        ("moat.dev/enforce".to_string(), "true".to_string()),
        (
            "container.moat.dev/web".to_string(),
            "[filesystem\nread = 3".to_string(),
        ),
    ]);
    let bad = Pod::new(&node, "bad", bad_annotations);
    let bad_sandbox = node
        .run_pod(&bad, "moat")
        .expect("the pause container is not wrapped");
    let b = node
        .create(
            &bad,
            &bad_sandbox,
            bad.container_config("web", ENTRYPOINT, PORTS),
        )
        .unwrap();
    let e = node.start(&b).expect_err("a broken policy must not start");
    assert!(
        e.message().contains("moat-runtime:") && e.message().contains("container.moat.dev/web"),
        "{}",
        e.message()
    );

    // Teardown leaves nothing.
    let mut web_containers: Vec<&str> = vec![&web];
    web_containers.extend(started_again.iter().map(String::as_str));
    node.remove_pod(&sandbox, &web_containers);
    node.remove_pod(&control_sandbox, &[&c]);
    node.remove_pod(&preset_sandbox, &[&p]);
    node.remove_pod(&bad_sandbox, &[&b]);
    let tasks = node.node.ctr(&["-n", "k8s.io", "tasks", "ls", "-q"]);
    assert_eq!(String::from_utf8_lossy(&tasks.stdout).trim(), "", "no task");
    let containers = node.node.ctr(&["-n", "k8s.io", "containers", "ls", "-q"]);
    assert_eq!(
        String::from_utf8_lossy(&containers.stdout).trim(),
        "",
        "no container"
    );
    let d = node.path().to_path_buf();
    for dir in [
        "state/io.containerd.runtime.v2.task/k8s.io",
        "runc/k8s.io",
        "state/io.containerd.grpc.v1.cri/sandboxes",
        "root/io.containerd.grpc.v1.cri/sandboxes",
        "root/io.containerd.grpc.v1.cri/containers",
    ] {
        assert_eq!(entries(&d.join(dir)), Vec::<String>::new(), "{dir}");
    }
    let ours = d.display().to_string();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let left: Vec<&str> = mounts
        .lines()
        .filter(|l| l.contains(&ours) && !l.contains("/snapshots/"))
        .collect();
    assert!(left.is_empty(), "mounts left: {left:#?}");
    let shims: Vec<String> = entries(Path::new("/proc"))
        .into_iter()
        .filter(|p| p.chars().all(|c| c.is_ascii_digit()))
        .filter_map(|p| std::fs::read(format!("/proc/{p}/cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains("containerd-shim") && c.contains(&ours))
        .collect();
    assert!(shims.is_empty(), "shims left: {shims:?}");
}
