//! The installer against the real containerd (Debian 12's 1.6.20), run by hand on three
//! configurations a node really has: Debian's shipped config.toml, `containerd config
//! default` (with `imports = []`), and a kubeadm-style one (systemd cgroup driver, its
//! own sandbox image). Each time: the node's containerd is running, the installer
//! registers `moat`, proves it and restarts containerd through its hook; then the test
//! checks with `containerd config dump` that every setting survived and with `ctr plugins
//! ls` that the restarted containerd loaded the CRI plugin; a second run changes and
//! restarts nothing; `uninstall` gives back the exact file. Failures roll back.

#[macro_use]
mod common;

use common::*;

fn runtimes(dump: &toml::Table) -> &toml::Table {
    at(dump, &["plugins", CRI, "containerd", "runtimes"])
        .and_then(toml::Value::as_table)
        .expect("runtimes")
}

/// Every leaf of `old` has the same value in `new`, except the runtimes added.
fn assert_kept(old: &toml::Table, new: &toml::Table, path: &str) {
    for (k, v) in old {
        let p = format!("{path}.{k}");
        if k == "imports" || p.ends_with(".runtimes.moat") {
            continue;
        }
        match (v, new.get(k)) {
            (toml::Value::Table(a), Some(toml::Value::Table(b))) => assert_kept(a, b, &p),
            (a, b) => assert_eq!(Some(a), b, "{p}"),
        }
    }
}

fn install_on(config: &str, check: impl Fn(&toml::Table)) {
    let node = Node::new(config);
    let original = std::fs::read_to_string(node.config()).unwrap();
    let before = node.dump();
    node.start();
    assert_eq!(node.cri_status(), "ok", "{}", node.log());
    let bins = fake_binaries();

    let o = node.installer("install", bins.path(), &[]);
    assert!(o.status.success(), "{}", out(&o));
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(said.contains("every setting of the node kept"), "{said}");
    assert!(said.contains("trial containerd"), "{said}");
    assert_eq!(
        node.restarts(),
        2,
        "started once by the test, restarted once: {said}"
    );
    assert_eq!(
        node.cri_status(),
        "ok",
        "the restarted containerd: {}",
        node.log()
    );

    let after = node.dump();
    assert_kept(&before, &after, "");
    let r = runtimes(&after);
    let moat = r["moat"].as_table().unwrap();
    let binary = node.path().join("opt/moat/bin/moat-runtime");
    assert_eq!(moat["options"]["BinaryName"].as_str(), binary.to_str());
    assert_eq!(moat["runtime_type"].as_str(), Some("io.containerd.runc.v2"));
    assert!(r.contains_key("runc"), "runc survives");
    check(&after);
    assert!(binary.is_file());
    let rt = std::fs::read_to_string(node.path().join("etc/moat/runtime.toml")).unwrap();
    assert!(rt.contains("runtime = \"/usr/sbin/runc\""), "{rt}");
    assert!(rt.contains("without_policy = \"ports\""), "{rt}");

    // Again: nothing to do, nothing restarted.
    let pid = node.pid();
    let o = node.installer("install", bins.path(), &[]);
    assert!(o.status.success(), "{}", out(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("nothing changed"),
        "{}",
        out(&o)
    );
    assert_eq!(node.restarts(), 2);
    assert_eq!(node.pid(), pid);

    // Uninstall gives the node back.
    let o = node.installer("uninstall", bins.path(), &[]);
    assert!(o.status.success(), "{}", out(&o));
    assert_eq!(std::fs::read_to_string(node.config()).unwrap(), original);
    assert_eq!(node.restarts(), 3);
    assert_eq!(node.cri_status(), "ok", "{}", node.log());
    assert!(!binary.exists());
    assert!(!node.path().join("etc/moat/runtime.toml").exists());
    assert_eq!(
        std::fs::read_dir(node.path().join("work"))
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name())
            .collect::<Vec<_>>(),
        ["lock"],
        "no journal, no trial left"
    );
}

#[test]
fn debians_shipped_configuration() {
    need_containerd!();
    install_on(DEBIAN, |dump| {
        assert_eq!(
            at(dump, &["plugins", CRI, "cni", "bin_dir"]).and_then(|v| v.as_str()),
            Some("/usr/lib/cni")
        );
    });
}

#[test]
fn containerd_config_default_with_empty_imports() {
    need_containerd!();
    let default = containerd_default();
    assert!(default.contains("imports = []"));
    install_on(&default, |_| {});
}

#[test]
fn kubeadm_style_systemd_cgroups_and_own_sandbox_image() {
    need_containerd!();
    install_on(KUBEADM, |dump| {
        assert_eq!(
            at(dump, &["plugins", CRI, "sandbox_image"]).and_then(|v| v.as_str()),
            Some("registry.k8s.io/pause:3.9")
        );
        let r = runtimes(dump);
        for name in ["runc", "moat"] {
            assert_eq!(
                r[name]["options"]["SystemdCgroup"].as_bool(),
                Some(true),
                "{name} on the node's cgroup driver"
            );
        }
    });
}

/// containerd 1.x: an import that defines the CRI section replaces the main file's, so
/// the installer edits that import and leaves the main file alone.
#[test]
fn an_import_that_owns_the_cri_section_is_the_file_edited() {
    need_containerd!();
    let node = Node::new("version = 2\nimports = [\"conf.d/*.toml\"]\n");
    let dropin = node.path().join("etc/conf.d/10-cri.toml");
    // A pattern as most nodes write it: absolute (a relative one is matched against
    // containerd's working directory before 1.7.16, the importing file's after).
    let main = std::fs::read_to_string(node.config()).unwrap().replace(
        "conf.d/*.toml",
        &format!("{}/etc/conf.d/*.toml", node.path().display()),
    );
    std::fs::write(node.config(), main).unwrap();
    std::fs::create_dir_all(dropin.parent().unwrap()).unwrap();
    std::fs::write(
        &dropin,
        "[plugins.\"io.containerd.grpc.v1.cri\"]\n  sandbox_image = \"example/pause:1\"\n",
    )
    .unwrap();
    let main = std::fs::read_to_string(node.config()).unwrap();
    node.start();
    let bins = fake_binaries();
    let o = node.installer("install", bins.path(), &[]);
    assert!(o.status.success(), "{}", out(&o));
    assert_eq!(std::fs::read_to_string(node.config()).unwrap(), main);
    assert!(std::fs::read_to_string(&dropin)
        .unwrap()
        .contains("runtimes.moat"));
    let dump = node.dump();
    assert_eq!(
        at(&dump, &["plugins", CRI, "sandbox_image"]).and_then(|v| v.as_str()),
        Some("example/pause:1")
    );
    assert!(runtimes(&dump).contains_key("moat"));
    assert_eq!(node.cri_status(), "ok");
}

/// A configuration the CRI plugin cannot load is refused, every file goes back as it was
/// and containerd is not restarted: a default runtime that does not exist (the check of
/// the dump sees it), and a registry with both `config_path` and `mirrors` (only the CRI
/// plugin's own start sees it: the trial containerd).
#[test]
fn a_configuration_that_does_not_load_is_rolled_back_before_any_restart() {
    need_containerd!();
    for (config, expect) in [
        (
            "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd]\n  default_runtime_name = \"nope\"\n",
            "the default runtime `nope` is not among the runtimes",
        ),
        (
            "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"/etc/containerd/certs.d\"\n[plugins.\"io.containerd.grpc.v1.cri\".registry.mirrors.\"docker.io\"]\n  endpoint = [\"https://mirror.invalid\"]\n",
            "a trial containerd on the new configuration failed",
        ),
    ] {
        let node = Node::new(config);
        let original = std::fs::read_to_string(node.config()).unwrap();
        let bins = fake_binaries();
        let o = node.installer("install", bins.path(), &[]);
        assert_eq!(o.status.code(), Some(1), "{}", out(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(expect), "{err}");
        assert_eq!(std::fs::read_to_string(node.config()).unwrap(), original);
        assert!(!node.path().join("opt/moat/bin/moat-runtime").exists());
        assert!(!node.path().join("etc/moat/runtime.toml").exists());
        assert_eq!(node.restarts(), 0);
    }
}

/// The restart hook fails (or containerd does not come back): the files go back and
/// containerd is restarted on them again.
#[test]
fn a_failed_restart_rolls_back_and_restarts_on_the_old_files() {
    need_containerd!();
    let node = Node::new(DEBIAN);
    let original = std::fs::read_to_string(node.config()).unwrap();
    node.start();
    let bins = fake_binaries();
    let script = node.path().join("restart-fails-once.sh");
    std::fs::write(
        &script,
        format!(
            "if [ ! -e {d}/failed ]; then touch {d}/failed; exit 3; fi\nexec sh {r}\n",
            d = node.path().display(),
            r = node.restart_script().display()
        ),
    )
    .unwrap();
    let o = node.installer(
        "install",
        bins.path(),
        &["--restart-command", &format!("sh {}", script.display())],
    );
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("restarting containerd"),
        "{}",
        out(&o)
    );
    assert_eq!(std::fs::read_to_string(node.config()).unwrap(), original);
    node.wait_answering();
    assert_eq!(node.cri_status(), "ok");
    assert!(!runtimes(&node.dump()).contains_key("moat"));
}

#[test]
fn usage_errors_change_nothing() {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_moat-node"))
        .args(["install", "--bin-dir", "relative/bin"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--bin-dir must be an absolute path"));
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_moat-node"))
        .args(["install", "--restart-command", "x", "--no-restart"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
}

/// CRI-O (not installable here: a directory standing in for a node with /etc/crio and a
/// runc): the drop-in names moat-runtime, moat-runtime's configuration names the node's
/// runc, paths are the node's (under --host-root), and uninstall removes both.
#[test]
fn a_crio_node_gets_a_dropin() {
    let host = tempfile::tempdir().unwrap();
    let h = host.path();
    std::fs::create_dir_all(h.join("etc/crio/crio.conf.d")).unwrap();
    std::fs::create_dir_all(h.join("usr/sbin")).unwrap();
    std::fs::write(h.join("usr/sbin/runc"), "#!/bin/sh\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        h.join("usr/sbin/runc"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let bins = fake_binaries();
    let run = |cmd: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_moat-node"))
            .args([cmd, "--runtime", "crio", "--no-restart", "--host-root"])
            .arg(h)
            .arg("--from")
            .arg(bins.path())
            .output()
            .unwrap()
    };
    let o = run("install");
    assert!(o.status.success(), "{}", out(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("restart crio"),
        "{}",
        out(&o)
    );
    let dropin = std::fs::read_to_string(h.join("etc/crio/crio.conf.d/99-moat.conf")).unwrap();
    let t: toml::Table = toml::from_str(&dropin).unwrap();
    let moat = at(&t, &["crio", "runtime", "runtimes", "moat"]).unwrap();
    assert_eq!(
        moat["runtime_path"].as_str(),
        Some("/opt/moat/bin/moat-runtime")
    );
    assert_eq!(moat["runtime_type"].as_str(), Some("oci"));
    assert!(h.join("opt/moat/bin/moat-runtime").is_file());
    let rt = std::fs::read_to_string(h.join("etc/moat/runtime.toml")).unwrap();
    assert!(rt.contains("runtime = \"/usr/sbin/runc\""), "{rt}");
    assert!(rt.contains("launcher = \"/opt/moat/bin/moat\""), "{rt}");
    let o = run("install");
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("nothing changed"),
        "{}",
        out(&o)
    );
    let o = run("uninstall");
    assert!(o.status.success(), "{}", out(&o));
    assert!(!h.join("etc/crio/crio.conf.d/99-moat.conf").exists());
    assert!(!h.join("etc/moat/runtime.toml").exists());
    assert!(!h.join("opt/moat/bin/moat").exists());
}
