//! A pod author against moat-runtime: what someone who may create and patch pods in an
//! enforced namespace can put into a container's config.json, on bundles shaped the way
//! containerd and CRI-O build them, with the real runc. Each attack runs the probe through
//! moat-runtime (it must stay confined, or be refused) and, as the control, the same
//! bundle under plain runc (where the same probe succeeds).
//!
//! - a forged "already prepared" container: the internal annotation `moat.dev/confined`
//!   and an entrypoint starting with `/.moat/moat` from the image, for create and exec;
//! - the workload's own environment (`MOAT_MAX_ABI=0`, `LISTEN_FDS`) with best-effort;
//! - a container under the moat handler that names no policy;
//! - containerd's keys supplied as pod annotations under CRI-O (a fake pause container,
//!   another container's name);
//! - a bundle moat-runtime prepared once, given a new pod-written config.json.
//!
//! These tests need root, runc and busybox-static (scripts/test.sh installs them).

#[macro_use]
mod common;

use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// An allow-all policy in moat's JSON dialect, what the author would like to run under.
const ALLOW_ALL: &str = r#"{"filesystem":{"unrestricted":true},"network":{"unrestricted":true}}"#;

/// What the probe answers under the node's default (bind only the declared port 80):
/// files open, the bind of port 0 refused.
const PORTS_ONLY: &str = "ok\nok\nok\nok\nEACCES\n";

/// The declared ports, as the kubelet sends them.
const PORTS: &str = r#"[{"containerPort":80,"protocol":"TCP"}]"#;

/// containerd's annotations for container `web`, plus the pod's `moat.dev/*` ones (the
/// only pod annotations moat's runtime handler passes).
fn containerd(pod: &[(&str, &str)]) -> serde_json::Value {
    let mut a = serde_json::json!({
        "io.kubernetes.cri.container-type": "container",
        "io.kubernetes.cri.container-name": "web",
        "io.kubernetes.cri.sandbox-id": "0f3c",
        "io.kubernetes.cri.sandbox-namespace": "shop",
        "io.kubernetes.container.ports": PORTS,
    });
    for (k, v) in pod {
        a[*k] = (*v).into();
    }
    a
}

/// CRI-O's annotations for container `web`, plus every pod annotation (CRI-O copies them
/// all, whatever their key).
fn crio(pod: &[(&str, &str)]) -> serde_json::Value {
    let mut a = serde_json::json!({
        "io.kubernetes.cri-o.ContainerType": "container",
        "io.kubernetes.container.name": "web",
        "io.kubernetes.cri-o.SandboxID": "0f3c",
        "io.kubernetes.pod.namespace": "shop",
        "io.kubernetes.container.ports": PORTS,
    });
    for (k, v) in pod {
        a[*k] = (*v).into();
    }
    a
}

type Flavour = fn(&[(&str, &str)]) -> serde_json::Value;
const FLAVOURS: [(&str, Flavour); 2] = [("containerd", containerd), ("crio", crio)];

/// A node configuration file for one test (never the machine's own).
fn node_conf(b: &Bundle, text: &str) -> std::path::PathBuf {
    let p = b.path().join("node-runtime.toml");
    std::fs::write(&p, text).unwrap();
    p
}

/// A command of `runtime` on `b` with the node configuration `conf`.
fn cmd(b: &Bundle, runtime: &Path, conf: &str) -> Command {
    let mut c = b.cmd(runtime);
    c.env("MOAT_RUNTIME_CONFIG", node_conf(b, conf));
    c
}

/// Runs the bundle to completion through `runtime`.
fn run(b: &Bundle, runtime: &Path, conf: &str) -> Output {
    let o = cmd(b, runtime, conf)
        .args(["run", "--bundle"])
        .arg(b.path())
        .arg(&b.id)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    b.delete();
    // The probe's file, so that the bundle can run again.
    let _ = std::fs::remove_file(b.path().join("rootfs/tmp/x"));
    o
}

/// A launcher of the author's own in the image at `/.moat/moat`: it skips to `--` and
/// runs the rest, unconfined.
fn plant_fake_launcher(b: &Bundle) {
    let dir = b.path().join("rootfs/.moat");
    std::fs::create_dir_all(&dir).unwrap();
    let fake = dir.join("moat");
    std::fs::write(
        &fake,
        "#!/bin/sh\nwhile [ \"$1\" != -- ]; do shift; done; shift; exec \"$@\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// `args` behind the author's fake launcher line with an allow-all policy.
fn forged_args(args: &[&str]) -> serde_json::Value {
    let mut v = vec!["/.moat/moat", "run", "--policy-text", ALLOW_ALL, "--"];
    v.extend_from_slice(args);
    serde_json::json!(v)
}

/// A bundle of `flavour` with the pod annotations `pod` and entrypoint `args`.
fn pod_bundle(
    tag: &str,
    flavour: Flavour,
    pod: &[(&str, &str)],
    args: serde_json::Value,
) -> Bundle {
    let b = Bundle::new(tag);
    b.edit(|c| {
        c["annotations"] = flavour(pod);
        c["process"]["args"] = args;
    });
    b
}

/// Creates and starts the bundle through `runtime` (detached), with an empty node
/// configuration.
fn start(b: &Bundle, runtime: &Path) {
    let err = b.path().join("create.err");
    let st = cmd(b, runtime, "")
        .args(["create", &b.id])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err).unwrap())
        .status()
        .unwrap();
    assert!(
        st.success(),
        "create: {}",
        std::fs::read_to_string(&err).unwrap_or_default()
    );
    let o = cmd(b, runtime, "").args(["start", &b.id]).output().unwrap();
    assert!(o.status.success(), "start: {}", stderr(&o));
}

/// The probe's answers; what went wrong is printed for a failing assertion to show.
fn probe_out(o: &Output, b: &Bundle) -> String {
    eprintln!("stderr: {}\nlog: {}", stderr(o), b.log());
    stdout(o)
}

/// [`POLICY_TOML`] with the launcher's directory executable, so that the author's launcher
/// line runs (under moat's launcher, inside its sandbox).
const FORGE_POLICY: &str = "[filesystem]\nread_exec = [\"/bin\", \"/.moat\"]\nread = [\"/etc\"]\nread_write = [\"/tmp\"]\n";

#[test]
fn a_forged_prepared_marker_does_not_skip_confinement() {
    need_runc!();
    for (name, flavour) in FLAVOURS {
        let pod = [
            ("moat.dev/confined", "true"),
            ("container.moat.dev/web", FORGE_POLICY),
        ];
        for (runtime, expected) in [(moat_runtime(), CONFINED), ("runc".into(), OPEN)] {
            let b = pod_bundle(&format!("forge-{name}"), flavour, &pod, forged_args(PROBE));
            plant_fake_launcher(&b);
            let o = run(&b, &runtime, "");
            assert_eq!(probe_out(&o, &b), expected, "{name} {}", runtime.display());
        }
    }
}

#[test]
fn exec_into_a_forged_container_uses_moats_record() {
    need_runc!();
    for (name, flavour) in FLAVOURS {
        let pod = [
            ("moat.dev/confined", "true"),
            ("container.moat.dev/web", FORGE_POLICY),
        ];
        for (runtime, expected) in [(moat_runtime(), CONFINED), ("runc".into(), OPEN)] {
            let b = pod_bundle(
                &format!("forge-exec-{name}"),
                flavour,
                &pod,
                forged_args(&["/bin/sleep", "30"]),
            );
            plant_fake_launcher(&b);
            start(&b, &runtime);
            let o = cmd(&b, &runtime, "")
                .arg("exec")
                .arg(&b.id)
                .args(PROBE)
                .output()
                .unwrap();
            b.delete();
            assert_eq!(
                stdout(&o),
                expected,
                "{name} {}: {}",
                runtime.display(),
                stderr(&o)
            );
        }
    }
}

#[test]
fn the_workloads_environment_does_not_configure_the_launcher() {
    need_runc!();
    for (name, flavour) in FLAVOURS {
        let pod = [
            ("container.moat.dev/web", POLICY_TOML),
            ("moat.dev/compat", "best-effort"),
        ];
        for (runtime, expected) in [(moat_runtime(), CONFINED), ("runc".into(), OPEN)] {
            let b = pod_bundle(
                &format!("env-{name}"),
                flavour,
                &pod,
                serde_json::json!(PROBE),
            );
            b.edit(|c| {
                let env = c["process"]["env"].as_array_mut().unwrap();
                env.push("MOAT_MAX_ABI=0".into());
                env.push("LISTEN_PID=1".into());
                env.push("LISTEN_FDS=64".into());
            });
            let o = run(&b, &runtime, "");
            assert_eq!(probe_out(&o, &b), expected, "{name} {}", runtime.display());
            assert!(
                !stderr(&o).contains("not enforced"),
                "nothing may be dropped: {}",
                stderr(&o)
            );
        }
    }
}

#[test]
fn a_pod_container_without_policy_gets_the_node_default_or_is_refused() {
    need_runc!();
    for (name, flavour) in FLAVOURS {
        // The node's default: bind only the declared port (here 80; the probe binds 0).
        let b = pod_bundle(
            &format!("nopol-{name}"),
            flavour,
            &[],
            serde_json::json!(PROBE),
        );
        let o = run(&b, &moat_runtime(), "");
        assert_eq!(probe_out(&o, &b), PORTS_ONLY, "{name}");
        // A node configured to refuse such containers starts nothing, and says why.
        let b = pod_bundle(
            &format!("nopol-r-{name}"),
            flavour,
            &[],
            serde_json::json!(PROBE),
        );
        let o = run(&b, &moat_runtime(), "without_policy = \"refuse\"\n");
        assert!(!o.status.success(), "{name}: {}", stdout(&o));
        assert_eq!(stdout(&o), "", "nothing may run");
        assert!(!b.exists());
        assert!(
            b.log().contains("container `web` names no moat policy"),
            "{}",
            b.log()
        );
        // Control: plain runc runs it open.
        let b = pod_bundle(
            &format!("nopol-c-{name}"),
            flavour,
            &[],
            serde_json::json!(PROBE),
        );
        assert_eq!(probe_out(&run(&b, Path::new("runc"), ""), &b), OPEN);
    }
}

#[test]
fn containerds_keys_from_a_pod_under_crio_are_not_believed() {
    need_runc!();
    let attacks: [&[(&str, &str)]; 2] = [
        // A fake pause container.
        &[
            ("io.kubernetes.cri.container-type", "sandbox"),
            ("container.moat.dev/web", POLICY_TOML),
        ],
        // Another container's name, whose policy allows everything.
        &[
            ("io.kubernetes.cri.container-name", "admin"),
            ("container.moat.dev/admin", ALLOW_ALL),
            ("container.moat.dev/web", POLICY_TOML),
        ],
    ];
    for (i, pod) in attacks.iter().enumerate() {
        for (runtime, expected) in [(moat_runtime(), CONFINED), ("runc".into(), OPEN)] {
            let b = pod_bundle(
                &format!("crio-keys{i}"),
                crio,
                pod,
                serde_json::json!(PROBE),
            );
            let o = run(&b, &runtime, "");
            assert_eq!(probe_out(&o, &b), expected, "{i} {}", runtime.display());
        }
    }
    // containerd's own pause container is still passed through untouched.
    let b = pod_bundle("pause", containerd, &[], serde_json::json!(PROBE));
    b.edit(|c| c["annotations"]["io.kubernetes.cri.container-type"] = "sandbox".into());
    assert_eq!(probe_out(&run(&b, &moat_runtime(), ""), &b), OPEN);
    assert!(!b.path().join("moat").exists());
}

#[test]
fn a_new_config_in_a_prepared_bundle_is_prepared_again() {
    need_runc!();
    let pod = [
        ("moat.dev/confined", "true"),
        ("container.moat.dev/web", FORGE_POLICY),
    ];
    let b = pod_bundle("reuse", containerd, &pod, forged_args(PROBE));
    plant_fake_launcher(&b);
    let fresh = std::fs::read(b.path().join("config.json")).unwrap();
    assert_eq!(probe_out(&run(&b, &moat_runtime(), ""), &b), CONFINED);
    // The same prepared config.json again (an engine restarting the bundle): used as it
    // is, the launcher not put in front twice.
    let prepared = b.config();
    assert_eq!(probe_out(&run(&b, &moat_runtime(), ""), &b), CONFINED);
    assert_eq!(b.config(), prepared);
    // A config.json written anew by the engine from the pod: moat's record describes
    // another file, so it is prepared again.
    std::fs::remove_file(b.path().join("config.json")).unwrap();
    std::fs::write(b.path().join("config.json"), &fresh).unwrap();
    assert_eq!(probe_out(&run(&b, &moat_runtime(), ""), &b), CONFINED);
}

/// A namespace's floor and the author's policy, intersected as the webhook does: a rule the
/// author nests in the floor's `/data` through a link of the image (`/data/link` to
/// `/root`) grants nothing, while one that stays inside `/data` holds.
#[test]
fn a_floor_cannot_be_left_through_a_link_in_the_image() {
    need_runc!();
    let floor = moat_policy::parse_str(
        "floor.toml",
        "[filesystem]\nread_exec = [\"/bin\"]\nread = [\"/data\", \"/etc\"]\n\n[network]\nunrestricted = true\n",
    )
    .unwrap();
    let author = moat_policy::parse_str(
        "author.toml",
        "[filesystem]\nread_exec = [\"/bin\"]\nread = [\"/data/inside\", \"/data/link\", \"/etc\"]\n\n[network]\nunrestricted = true\n",
    )
    .unwrap();
    let effective = author.intersect(floor);
    let text = moat_policy::write::to_moat_toml(&effective).unwrap().text;
    assert!(text.contains("within = \"/data\""), "{text}");
    let probe = serde_json::json!([
        "/bin/moat-probe",
        "read",
        "/data/inside/f",
        ";",
        "read",
        "/data/link/secret",
        ";",
        "read",
        "/root/secret"
    ]);
    for (runtime, expected) in [
        (moat_runtime(), "ok\nEACCES\nEACCES\n"),
        ("runc".into(), "ok\nok\nok\n"),
    ] {
        let b = pod_bundle(
            "floor-link",
            containerd,
            &[("container.moat.dev/web", &text)],
            probe.clone(),
        );
        let data = b.path().join("rootfs/data");
        std::fs::create_dir_all(data.join("inside")).unwrap();
        std::fs::write(data.join("inside/f"), "in\n").unwrap();
        std::os::unix::fs::symlink("/root", data.join("link")).unwrap();
        let o = run(&b, &runtime, "");
        assert_eq!(probe_out(&o, &b), expected, "{}", runtime.display());
    }
}
