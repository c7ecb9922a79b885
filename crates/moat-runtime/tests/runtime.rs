//! moat-runtime with the real runc (and podman), on a busybox-static bundle. No mocks: the
//! kernel answers every probe inside the container.
//!
//! These tests need root, runc and busybox-static (scripts/test.sh installs them); without
//! them each test prints why it skips.

#[macro_use]
mod common;

use common::*;
use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Output, Stdio};

#[test]
fn policy_annotation_confines_the_container() {
    need_runc!();
    let b = Bundle::new("ann");
    b.annotate("moat.dev/policy", POLICY_TOML);
    assert_confined(&b);
    let c = b.config();
    assert_eq!(c["annotations"]["moat.dev/confined"], "true");
    assert_eq!(c["process"]["args"][0], "/.moat/moat");
    // The policy travels inline, as moat JSON; only the launcher is mounted.
    assert_eq!(c["process"]["args"][2], "--from-runtime");
    assert_eq!(c["process"]["args"][3], "--policy-text");
    let policy: serde_json::Value =
        serde_json::from_str(c["process"]["args"][4].as_str().unwrap()).unwrap();
    assert!(policy.is_object(), "{policy}");
    let orig: serde_json::Value =
        serde_json::from_slice(&std::fs::read(b.path().join("moat/config.json.orig")).unwrap())
            .unwrap();
    let mounts = c["mounts"].as_array().unwrap();
    assert_eq!(mounts.len(), orig["mounts"].as_array().unwrap().len() + 1);
    assert_eq!(mounts.last().unwrap()["destination"], "/.moat/moat");
    assert!(!b.path().join("moat/policy.json").exists());
}

/// runc reads options after the container id too (`run ID --bundle DIR`): moat-runtime
/// must look into that bundle, not the current directory's.
#[test]
fn a_bundle_named_after_the_container_id_is_the_one_confined() {
    need_runc!();
    let b = Bundle::new("bundle-after-id");
    b.annotate("moat.dev/policy", POLICY_TOML);
    // The current directory holds a bundle without a policy: the decoy.
    let decoy = Bundle::new("decoy");
    let o = b
        .cmd(&moat_runtime())
        .current_dir(decoy.path())
        .args(["run", &b.id, "--bundle"])
        .arg(b.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        stdout(&o),
        CONFINED,
        "stderr: {}\nlog: {}",
        stderr(&o),
        b.log()
    );
}

#[test]
fn a_policy_with_any_characters_reaches_the_launcher_intact() {
    need_runc!();
    // Quotes, a backslash, a newline and non-ASCII letters in a directory's name: the
    // launcher refuses a path that does not exist, so the read below works only if the
    // policy arrived as one intact argument.
    let odd = "/etc/a \"b\" \\ c\nd \u{e9}\u{2603}";
    let b = Bundle::new("chars");
    let dir = b.path().join("rootfs").join(&odd[1..]);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("f"), "x").unwrap();
    let file = format!("{odd}/f");
    b.edit(|c| {
        c["process"]["args"] =
            serde_json::json!(["/bin/moat-probe", "read", file, ";", "read", "/root/secret"])
    });
    let policy = serde_json::json!({"filesystem": {"read_exec": ["/bin"], "read": [odd]}});
    b.annotate("moat.dev/policy", &policy.to_string());
    let o = b.run(&moat_runtime());
    assert_eq!(
        stdout(&o),
        "ok\nEACCES\n",
        "stderr: {}\nlog: {}",
        stderr(&o),
        b.log()
    );
    // A policy naming a path missing in the container stops it at the launcher.
    let b = Bundle::new("chars-missing");
    let policy = serde_json::json!({"filesystem": {
        "read_exec": ["/bin"], "read": [format!("{odd}-missing")]
    }});
    b.annotate("moat.dev/policy", &policy.to_string());
    let o = b.run(&moat_runtime());
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert!(stderr(&o).contains("-missing"), "{}", stderr(&o));
}

#[test]
fn an_entrypoint_the_policy_cannot_execute_is_advised_in_the_containers_terms() {
    need_runc!();
    let b = Bundle::new("noexec");
    // /bin readable, not executable: the launcher cannot exec the entrypoint.
    b.annotate(
        "moat.dev/policy",
        "[filesystem]\nread = [\"/bin\", \"/etc\"]\n",
    );
    let o = b.run(&moat_runtime());
    assert_ne!(o.status.code(), Some(0));
    assert_eq!(stdout(&o), "", "nothing may run");
    let e = stderr(&o);
    assert!(e.contains("in the container's policy"), "{e}");
    assert!(e.contains("moat.dev/explain=true"), "{e}");
    // No advice its user cannot follow: `moat run` flags.
    assert!(
        !e.contains("`--r") && !e.contains("moat run --explain"),
        "{e}"
    );
}

#[test]
fn explain_annotation_reports_denials_on_the_containers_stderr() {
    need_runc!();
    let b = Bundle::new("explain");
    b.annotate("moat.dev/policy", POLICY_TOML);
    b.annotate("moat.dev/explain", "true");
    let o = b.run(&moat_runtime());
    assert_eq!(stdout(&o), CONFINED, "{}", stderr(&o));
    let e = stderr(&o);
    for expected in [
        "denied read_file on /root/secret",
        "to allow it, add `[filesystem] read = [\"/root/secret\"]` to the container's policy",
        "denied write_file on /etc/hostname",
        "to allow it, add `[filesystem] write = [\"/etc/hostname\"]` to the container's policy",
        "denied bind_tcp on port 0",
    ] {
        assert!(e.contains(expected), "missing `{expected}` in:\n{e}");
    }
    // Advice in the container's terms: no `moat run` flag its user does not have.
    assert!(!e.contains("`--r"), "{e}");
    assert_eq!(b.config()["process"]["args"][5], "--explain");
    // Anything but "true"/"false" is refused.
    let b = Bundle::new("explain-bad");
    b.annotate("moat.dev/policy", POLICY_TOML);
    b.annotate("moat.dev/explain", "yes");
    let o = b.run(&moat_runtime());
    assert!(!o.status.success());
    assert!(b.log().contains("moat.dev/explain"), "{}", b.log());
}

#[test]
fn policy_annotation_in_json_confines_the_container() {
    need_runc!();
    let b = Bundle::new("annjson");
    b.annotate(
        "moat.dev/policy",
        r#"{"filesystem":{"read_exec":["/bin"],"read":["/etc"],"read_write":["/tmp"]}}"#,
    );
    assert_confined(&b);
}

#[test]
fn process_landlock_1241_confines_the_container() {
    need_runc!();
    let b = Bundle::new("oci1241");
    b.edit(|c| {
        c["process"]["landlock"] = serde_json::json!({
            "handledAccess": {
                "handledAccessFS": ["execute", "read_file", "read_dir", "write_file", "make_reg", "truncate", "remove_file"],
                "handledAccessNetwork": ["bind", "connect"]
            },
            "rules": {
                "pathBeneath": [
                    {"allowedAccess": ["execute", "read_file", "read_dir"], "paths": ["/bin"]},
                    {"allowedAccess": ["read_file", "read_dir"], "paths": ["/etc"]},
                    {"allowedAccess": ["read_file", "read_dir", "write_file", "make_reg", "truncate", "remove_file"], "paths": ["/tmp"]}
                ]
            },
            "enableBestEffort": false
        });
    });
    assert_confined(&b);
}

#[test]
fn process_landlock_1111_confines_the_filesystem() {
    need_runc!();
    let b = Bundle::new("oci1111");
    b.edit(|c| {
        c["process"]["landlock"] = serde_json::json!({
            "ruleset": {"handledAccessFS": ["execute", "read_file", "read_dir", "write_file", "make_reg", "truncate"]},
            "rules": {"pathBeneath": [
                {"allowedAccess": ["execute", "read_file", "read_dir"], "paths": ["/bin"]},
                {"allowedAccess": ["read_file", "read_dir"], "paths": ["/etc"]},
                {"allowedAccess": ["read_file", "read_dir", "write_file", "make_reg", "truncate"], "paths": ["/tmp"]}
            ]},
            "disableBestEffort": true
        });
    });
    // #1111 has no network rules: the network stays as it is.
    let o = b.run(&moat_runtime());
    assert_eq!(stdout(&o), "ok\nok\nEACCES\nEACCES\nok\n", "{}", stderr(&o));
}

#[test]
fn process_landlock_landlockconfig_body_confines_the_container() {
    need_runc!();
    let b = Bundle::new("llcfg");
    b.edit(|c| {
        c["process"]["landlock"] = serde_json::json!({
            "abi": 4,
            "ruleset": [{"handledAccessFs": ["abi.all"], "handledAccessNet": ["bind_tcp", "connect_tcp"]}],
            "pathBeneath": [
                {"allowedAccess": ["abi.read_execute"], "parent": ["/bin", "/etc"]},
                {"allowedAccess": ["abi.read_write"], "parent": ["/tmp"]}
            ]
        });
    });
    assert_confined(&b);
}

#[test]
fn preset_annotation_confines_the_container() {
    need_runc!();
    let b = Bundle::new("preset");
    b.annotate("moat.dev/preset", "default");
    // The default preset reads the working directory: put it somewhere harmless.
    b.edit(|c| c["process"]["cwd"] = "/tmp".into());
    let o = b.run(&moat_runtime());
    // Default: system files readable, no writes, no network.
    assert_eq!(
        stdout(&o),
        "ok\nEACCES\nEACCES\nEACCES\nEACCES\n",
        "{}",
        stderr(&o)
    );
}

/// Every preset runs in a minimal image: busybox alone, without /usr, /etc, /root or /tmp.
/// What the image lacks gets no rule (so stays denied) instead of failing the start.
#[test]
fn presets_work_in_an_image_without_system_directories() {
    need_runc!();
    for preset in moat_policy::presets::PRESETS {
        let b = Bundle::new(&format!("bare-{}", preset.name));
        for d in ["usr", "etc", "root", "tmp"] {
            std::fs::remove_dir_all(b.path().join("rootfs").join(d)).unwrap();
        }
        b.annotate("moat.dev/preset", preset.name);
        b.edit(|c| {
            c["process"]["cwd"] = "/".into();
            c["process"]["args"] = serde_json::json!([
                "/bin/moat-probe",
                "read",
                "/bin/busybox",
                ";",
                "bind-tcp",
                "0"
            ]);
        });
        let o = b.run(&moat_runtime());
        assert_eq!(
            stdout(&o),
            "ok\nEACCES\n",
            "{}: {}",
            preset.name,
            stderr(&o)
        );
    }
}

/// moat-runtime's configuration file for one test, with `text` in it.
fn node_config(b: &Bundle, text: &str) -> std::path::PathBuf {
    let conf = b.path().join("runtime.toml");
    std::fs::write(&conf, text).unwrap();
    conf
}

#[test]
fn compat_annotation_decides_what_an_old_kernel_does() {
    need_runc!();
    // `max_abi = 3` in moat-runtime's configuration: a kernel without TCP rules, for
    // moat-runtime's own check and for the launcher it starts.
    let b = Bundle::new("compat");
    b.annotate("moat.dev/policy", POLICY_TOML);
    let o = b
        .cmd(&moat_runtime())
        .env("MOAT_RUNTIME_CONFIG", node_config(&b, "max_abi = 3\n"))
        .args(["run", &b.id])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stdout(&o), "", "nothing may run");
    assert!(stderr(&o).contains("cannot be applied"), "{}", stderr(&o));
    // The advice is the container's annotation, not a flag of `moat run`.
    assert!(
        stderr(&o).contains("set the annotation moat.dev/compat=best-effort"),
        "{}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains("--best-effort"), "{}", stderr(&o));
    assert!(!b.exists());
    // The error is in runc's log, in its JSON format.
    let line = b.log().lines().last().unwrap_or_default().to_string();
    let v: serde_json::Value = serde_json::from_str(&line).expect("a JSON log line");
    assert_eq!(v["level"], "error");
    assert!(v["msg"].as_str().unwrap().contains("bind_tcp"), "{line}");
    assert!(v["time"].as_str().unwrap().ends_with('Z'));

    let b = Bundle::new("compat2");
    b.annotate("moat.dev/policy", POLICY_TOML);
    b.annotate("moat.dev/compat", "best-effort");
    let o = b
        .cmd(&moat_runtime())
        .env("MOAT_RUNTIME_CONFIG", node_config(&b, "max_abi = 3\n"))
        .args(["run", &b.id])
        .output()
        .unwrap();
    // The launcher inside got the same cap from moat-runtime: the filesystem rules hold,
    // the TCP rule is what an ABI 3 kernel cannot enforce, and it says so.
    assert_eq!(stdout(&o), "ok\nok\nEACCES\nEACCES\nok\n", "{}", stderr(&o));
    assert!(stderr(&o).contains("bind_tcp"), "{}", stderr(&o));
    // Setting `MOAT_MAX_ABI` for moat-runtime itself changes nothing any more: the cap is
    // configuration, and the test knob of `moat run` is not read by moat-runtime.
    let b = Bundle::new("compat3");
    b.annotate("moat.dev/policy", POLICY_TOML);
    let o = b
        .cmd(&moat_runtime())
        .env("MOAT_MAX_ABI", "3")
        .args(["run", &b.id])
        .output()
        .unwrap();
    assert_eq!(stdout(&o), CONFINED, "{}", stderr(&o));
}

#[test]
fn no_policy_passes_through_untouched() {
    need_runc!();
    let b = Bundle::new("plain");
    let before = std::fs::read(b.path().join("config.json")).unwrap();
    let o = b.run(&moat_runtime());
    assert_eq!(stdout(&o), OPEN, "{}", stderr(&o));
    let after = std::fs::read(b.path().join("config.json")).unwrap();
    assert_eq!(before, after, "config.json must stay byte for byte");
    assert!(!b.path().join("moat").exists());
    // And runc alone says the same.
    let b2 = Bundle::new("plain-runc");
    assert_eq!(stdout(&b2.run(Path::new("runc"))), OPEN);
}

#[test]
fn sandbox_containers_are_never_wrapped() {
    need_runc!();
    let b = Bundle::new("pause");
    b.annotate("moat.dev/policy", POLICY_TOML);
    b.annotate("io.kubernetes.cri.container-type", "sandbox");
    let before = std::fs::read(b.path().join("config.json")).unwrap();
    let o = b.run(&moat_runtime());
    assert_eq!(stdout(&o), OPEN, "{}", stderr(&o));
    assert_eq!(before, std::fs::read(b.path().join("config.json")).unwrap());
}

/// Starts `sleep` in a confined container (create + start, detached).
fn start_sleeping(b: &Bundle) {
    b.start_sleeping(&moat_runtime());
}

/// `moat-runtime exec` of the probe line into `b`'s running container.
fn exec_probe(b: &Bundle) -> Output {
    b.cmd(&moat_runtime())
        .arg("exec")
        .arg(&b.id)
        .args(PROBE)
        .output()
        .unwrap()
}

/// Kills `b`'s running container through moat-runtime.
fn kill(b: &Bundle) {
    let o = b
        .cmd(&moat_runtime())
        .args(["kill", &b.id, "KILL"])
        .output()
        .unwrap();
    assert!(o.status.success(), "kill: {}", stderr(&o));
}

#[test]
fn exec_into_a_confined_container_is_confined() {
    need_runc!();
    let b = Bundle::new("exec");
    b.annotate("moat.dev/policy", POLICY_TOML);
    start_sleeping(&b);

    // Trailing arguments.
    let o = exec_probe(&b);
    assert_eq!(stdout(&o), CONFINED, "{}", stderr(&o));

    // A --process file, as podman and containerd pass it.
    // The first probe created /tmp/x: this one creates /tmp/y.
    let args = probe_creating("/tmp/y");
    let process = serde_json::json!({
        "terminal": false, "user": {"uid": 0, "gid": 0}, "args": args,
        "env": ["PATH=/bin"], "cwd": "/"
    });
    let pfile = b.path().join("process.json");
    std::fs::write(&pfile, serde_json::to_vec(&process).unwrap()).unwrap();
    let o = b
        .cmd(&moat_runtime())
        .arg("exec")
        .arg("--process")
        .arg(&pfile)
        .arg(&b.id)
        .output()
        .unwrap();
    assert_eq!(stdout(&o), CONFINED, "{}\nlog: {}", stderr(&o), b.log());

    // Pass-through commands answer as runc's do.
    let ours = b
        .cmd(&moat_runtime())
        .args(["state", &b.id])
        .output()
        .unwrap();
    let theirs = b
        .cmd(Path::new("runc"))
        .args(["state", &b.id])
        .output()
        .unwrap();
    assert_eq!(ours.stdout, theirs.stdout);
    let ps = b.cmd(&moat_runtime()).args(["ps", &b.id]).output().unwrap();
    assert!(
        ps.status.success() && stdout(&ps).contains("PID"),
        "{}",
        stderr(&ps)
    );
    for cmd in [["pause"], ["resume"]] {
        let o = b
            .cmd(&moat_runtime())
            .args(cmd)
            .arg(&b.id)
            .output()
            .unwrap();
        assert!(o.status.success(), "{cmd:?}: {}", stderr(&o));
    }
    kill(&b);
}

#[test]
fn a_policy_too_long_for_one_argument_goes_in_a_mounted_file() {
    need_runc!();
    // Thousands of optional rules on paths the container does not have: over the 128 KiB
    // one argument may hold once written as JSON, with the same meaning as POLICY_TOML.
    let mut read: Vec<serde_json::Value> = (0..3000)
        .map(|i| {
            let path = format!("/opt/not-here/{i:05}/some/longer/name");
            serde_json::json!({"path": path, "optional": true})
        })
        .collect();
    read.push("/etc".into());
    let policy = serde_json::json!({"filesystem": {
        "read_exec": ["/bin"], "read": read, "read_write": ["/tmp"]
    }});
    let b = Bundle::new("long");
    b.annotate("moat.dev/policy", &policy.to_string());
    start_sleeping(&b);
    let c = b.config();
    assert_eq!(c["process"]["args"][3], "--policy");
    assert_eq!(c["process"]["args"][4], "/.moat/policy.json");
    assert!(
        std::fs::metadata(b.path().join("moat/policy.json"))
            .unwrap()
            .len()
            > 128 * 1024,
        "the policy should not fit in one argument"
    );
    // Exec gets the same policy file, and is confined by it.
    let o = exec_probe(&b);
    assert_eq!(stdout(&o), CONFINED, "{}\nlog: {}", stderr(&o), b.log());
    kill(&b);
}

#[test]
fn exec_into_a_plain_container_is_not_wrapped() {
    need_runc!();
    let b = Bundle::new("execplain");
    start_sleeping(&b);
    let o = exec_probe(&b);
    assert_eq!(stdout(&o), OPEN, "{}", stderr(&o));
}

#[test]
fn preserved_fds_reach_the_entrypoint() {
    need_runc!();
    let b = Bundle::new("fds");
    b.annotate("moat.dev/policy", POLICY_TOML);
    b.edit(|c| {
        c["process"]["args"] = serde_json::json!(["/bin/sh", "-c", "read l <&3; echo got $l"])
    });
    let host = b.path().join("fd-input");
    std::fs::write(&host, "hello\n").unwrap();
    let script = format!(
        "exec 3<'{}'; exec '{}' --root '{}' run --preserve-fds 1 --bundle '{}' '{}'",
        host.display(),
        moat_runtime().display(),
        b.root().display(),
        b.path().display(),
        b.id
    );
    let o = Command::new("sh").arg("-c").arg(script).output().unwrap();
    assert_eq!(stdout(&o), "got hello\n", "{}", stderr(&o));
}

/// A bad input refuses to start anything and says why.
fn assert_refused(b: &Bundle, env: &[(&str, &str)], expect: &str) {
    let mut c = b.cmd(&moat_runtime());
    for (k, v) in env {
        c.env(k, v);
    }
    let o = c.args(["run", &b.id]).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(stdout(&o), "", "nothing may run");
    assert!(
        stderr(&o).contains(expect),
        "want `{expect}` in: {}",
        stderr(&o)
    );
    assert!(
        b.log().contains(expect),
        "want `{expect}` in the log: {}",
        b.log()
    );
    assert!(!b.exists(), "no container may exist");
}

#[test]
fn bad_inputs_are_refused_and_nothing_runs() {
    need_runc!();
    let cases: &[(&str, &str, &str)] = &[
        ("moat.dev/policy", "{\"filesystem\": ", "moat.dev/policy"),
        (
            "moat.dev/policy",
            "[[filesystem.rule]]\npaths = [\"/tmp\"]\nrights = [\"teleport\"]\n",
            "teleport",
        ),
        ("moat.dev/preset", "no-such-preset", "no-such-preset"),
        ("moat.dev/compat", "sometimes", "sometimes"),
        ("moat.dev/polcy", "x", "unknown annotation"),
    ];
    for (i, (k, v, expect)) in cases.iter().enumerate() {
        let b = Bundle::new(&format!("bad{i}"));
        if *k == "moat.dev/compat" {
            b.annotate("moat.dev/preset", "default");
        }
        b.annotate(k, v);
        let before = std::fs::read(b.path().join("config.json")).unwrap();
        assert_refused(&b, &[], expect);
        assert_eq!(before, std::fs::read(b.path().join("config.json")).unwrap());
    }
    // Unknown rights in process.landlock.
    let b = Bundle::new("badoci");
    b.edit(|c| {
        c["process"]["landlock"] = serde_json::json!({
            "handledAccess": {"handledAccessFS": ["read_file", "fly"]},
            "rules": {"pathBeneath": []}
        })
    });
    assert_refused(&b, &[], "fly");
    // A malformed config.json.
    let b = Bundle::new("badjson");
    std::fs::write(b.path().join("config.json"), "{\"process\": ").unwrap();
    assert_refused(&b, &[], "not valid JSON");
    // A launcher that cannot be mounted.
    let b = Bundle::new("nolauncher");
    b.annotate("moat.dev/policy", POLICY_TOML);
    assert_refused(&b, &[("MOAT_LAUNCHER", "/nonexistent/moat")], "launcher");
    let b = Bundle::new("dirlauncher");
    b.annotate("moat.dev/policy", POLICY_TOML);
    assert_refused(&b, &[("MOAT_LAUNCHER", "/tmp")], "not a regular file");
}

#[test]
fn a_missing_policy_path_inside_the_container_fails_the_start() {
    need_runc!();
    let b = Bundle::new("missingpath");
    b.annotate(
        "moat.dev/policy",
        "[filesystem]\nread_exec = [\"/bin\"]\nread = [\"/nowhere\"]\n",
    );
    let o = b.run(&moat_runtime());
    assert_ne!(o.status.code(), Some(0));
    assert_eq!(stdout(&o), "");
    assert!(stderr(&o).contains("/nowhere"), "{}", stderr(&o));
}

#[test]
fn features_adds_moat_annotations() {
    need_runc!();
    let o = Command::new(moat_runtime())
        .arg("features")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let ours: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let theirs: serde_json::Value = serde_json::from_slice(
        &Command::new("runc")
            .arg("features")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    for k in ["moat.dev/policy", "moat.dev/preset", "moat.dev/compat"] {
        assert!(ours["annotations"][k].is_string(), "{k}");
    }
    assert_eq!(ours["mountOptions"], theirs["mountOptions"]);
    assert_eq!(ours["ociVersionMax"], theirs["ociVersionMax"]);
}

#[test]
fn pass_through_commands_match_runc() {
    need_runc!();
    let d = tempfile::tempdir().unwrap();
    let ours = d.path().join("ours");
    let theirs = d.path().join("theirs");
    std::fs::create_dir_all(&ours).unwrap();
    std::fs::create_dir_all(&theirs).unwrap();
    let run = |rt: &OsStr, dir: &Path, args: &[&str]| {
        Command::new(rt)
            .current_dir(dir)
            .args(args)
            .output()
            .unwrap()
    };
    let mr = moat_runtime();
    let (a, b) = (
        run(mr.as_os_str(), &ours, &["spec"]),
        run(OsStr::new("runc"), &theirs, &["spec"]),
    );
    assert!(a.status.success() && b.status.success());
    assert_eq!(
        std::fs::read(ours.join("config.json")).unwrap(),
        std::fs::read(theirs.join("config.json")).unwrap()
    );
    let root = d.path().join("root");
    let root = root.to_str().unwrap();
    for args in [
        vec!["--root", root, "list"],
        vec!["--version"],
        vec!["--root", root, "state", "nope"],
        vec!["--root", root, "delete", "nope"],
    ] {
        let a = run(mr.as_os_str(), d.path(), &args);
        let b = run(OsStr::new("runc"), d.path(), &args);
        assert_eq!(a.status.code(), b.status.code(), "{args:?}");
        assert_eq!(a.stdout, b.stdout, "{args:?}");
    }
    // The real runtime can be named by flag or environment.
    let a = Command::new(&mr)
        .args(["--moat-runtime", "/nonexistent/runtime", "list"])
        .output()
        .unwrap();
    assert!(!a.status.success() && stderr(&a).contains("/nonexistent/runtime"));
    let a = Command::new(&mr)
        .env("MOAT_RUNTIME", "/nonexistent/rt2")
        .arg("list")
        .output()
        .unwrap();
    assert!(!a.status.success() && stderr(&a).contains("/nonexistent/rt2"));
}

/// runc's stderr without the time of each log line.
fn untimed(o: &Output) -> String {
    stderr(o)
        .lines()
        .map(|l| match l.split_once("level=") {
            Some((_, rest)) => format!("level={rest}"),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Where moat-runtime has nothing to confine, its answer is runc's: the same exit status,
/// output and error text (exec on a missing container, help without a bundle, a bundle
/// without config.json, a usage error), and the log file gets runc's lines only.
#[test]
fn refusals_and_help_are_runcs_own() {
    need_runc!();
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("root");
    let root = root.to_str().unwrap();
    let mr = moat_runtime();
    let log = |who: &str| d.path().join(format!("{who}.log"));
    for args in [
        &["exec", "nope", "true"][..],
        &["exec", "-h"],
        &["exec", "--tty", "nope", "sh"],
        &["exec", "--process"],
        &["create", "-h"],
        &["run", "--help"],
        &["restore", "-h"],
        &["create", "nope", "-h"],
        &["create", "nope"],
        &["run", "--bundle", "/nonexistent", "nope"],
        &["create"],
        &["create", "a", "b"],
        &["create", "--pid-file"],
        &["restore", "nope"],
    ] {
        let run = |rt: &OsStr, who: &str| {
            Command::new(rt)
                .current_dir(d.path())
                .arg("--root")
                .arg(root)
                .arg("--log")
                .arg(log(who))
                .args(args)
                .stdin(Stdio::null())
                .output()
                .unwrap()
        };
        let ours = run(mr.as_os_str(), "ours");
        let theirs = run(OsStr::new("runc"), "theirs");
        assert_eq!(
            ours.status.code(),
            theirs.status.code(),
            "{args:?}: {}",
            stderr(&ours)
        );
        assert_eq!(stdout(&ours), stdout(&theirs), "{args:?}");
        assert_eq!(untimed(&ours), untimed(&theirs), "{args:?}");
        let lines = |who: &str| {
            std::fs::read_to_string(log(who))
                .unwrap_or_default()
                .lines()
                .map(|l| l.split_once("level=").map(|(_, r)| r.to_string()))
                .collect::<Vec<_>>()
        };
        assert_eq!(lines("ours"), lines("theirs"), "{args:?}: log");
        let _ = std::fs::remove_file(log("ours"));
        let _ = std::fs::remove_file(log("theirs"));
    }
    assert_eq!(
        Command::new(&mr)
            .args(["--root", root, "exec", "nope", "true"])
            .output()
            .unwrap()
            .status
            .code(),
        Some(255)
    );
}

/// `sh -c` a script, with stdin closed.
fn sh(script: &str) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn listen_fds_reach_the_confined_entrypoint() {
    need_runc!();
    let b = Bundle::new("listen");
    b.annotate("moat.dev/policy", POLICY_TOML);
    b.edit(|c| {
        c["process"]["args"] = serde_json::json!([
            "/bin/sh",
            "-c",
            "read l <&3; echo got $l; echo LISTEN_FDS=$LISTEN_FDS LISTEN_PID=$LISTEN_PID; \
             cat /root/secret 2>/dev/null || echo denied"
        ])
    });
    let host = b.path().join("listen-input");
    std::fs::write(&host, "socket\n").unwrap();
    // runc hands LISTEN_FDS on only when LISTEN_PID is its own pid: moat-runtime execs
    // runc, so the shell's pid ($$, kept by both execs) is the one to name.
    let script = format!(
        "exec 3<'{}'; LISTEN_PID=$$ LISTEN_FDS=1 exec '{}' --root '{}' run --bundle '{}' '{}'",
        host.display(),
        moat_runtime().display(),
        b.root().display(),
        b.path().display(),
        b.id
    );
    let o = sh(&script);
    assert_eq!(
        stdout(&o),
        "got socket\nLISTEN_FDS=1 LISTEN_PID=1\ndenied\n",
        "{}",
        stderr(&o)
    );
    // The launcher was told to keep fd 3.
    let args = b.config()["process"]["args"].clone();
    let args: Vec<&str> = args
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(
        args.windows(2).any(|w| w == ["--preserve-fd", "3"]),
        "{args:?}"
    );
    // The same through `create` and `start`, on the bundle as `run` left it (prepared
    // again from its original).
    b.delete();
    let out = b.path().join("listen-out");
    let script = format!(
        "exec 3<'{}' >'{}' 2>'{}.err'; LISTEN_PID=$$ LISTEN_FDS=1 exec '{}' --root '{}' create --bundle '{}' '{}'",
        host.display(),
        out.display(),
        out.display(),
        moat_runtime().display(),
        b.root().display(),
        b.path().display(),
        b.id
    );
    let o = sh(&script);
    assert!(
        o.status.success(),
        "{}",
        std::fs::read_to_string(out.with_extension("err")).unwrap_or_default()
    );
    let o = b
        .cmd(&moat_runtime())
        .args(["start", &b.id])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !std::fs::read_to_string(&out)
        .unwrap_or_default()
        .contains("denied")
    {
        assert!(std::time::Instant::now() < deadline, "no output");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "got socket\nLISTEN_FDS=1 LISTEN_PID=1\ndenied\n"
    );
}

#[test]
fn exec_with_preserved_fds_is_confined_and_keeps_them() {
    need_runc!();
    let b = Bundle::new("execfds");
    b.annotate("moat.dev/policy", POLICY_TOML);
    start_sleeping(&b);
    let host = b.path().join("exec-input");
    std::fs::write(&host, "hello\n").unwrap();
    let body = "read l <&3; echo got $l; cat /root/secret 2>/dev/null || echo denied";
    let exec = |args: &str| {
        sh(&format!(
            "exec 3<'{}'; exec '{}' --root '{}' exec --preserve-fds 1 {args}",
            host.display(),
            moat_runtime().display(),
            b.root().display(),
        ))
    };

    // Trailing arguments.
    let o = exec(&format!("'{}' /bin/sh -c '{body}'", b.id));
    assert_eq!(stdout(&o), "got hello\ndenied\n", "{}", stderr(&o));

    // A --process file (moat-runtime's rewritten copy sits above the preserved fds).
    let process = serde_json::json!({
        "terminal": false, "user": {"uid": 0, "gid": 0},
        "args": ["/bin/sh", "-c", body], "env": ["PATH=/bin"], "cwd": "/"
    });
    let pfile = b.path().join("process.json");
    std::fs::write(&pfile, serde_json::to_vec(&process).unwrap()).unwrap();
    let o = exec(&format!("--process '{}' '{}'", pfile.display(), b.id));
    assert_eq!(stdout(&o), "got hello\ndenied\n", "{}", stderr(&o));

    // runc alone keeps the fd too, and does not confine.
    let o = sh(&format!(
        "exec 3<'{}'; exec runc --root '{}' exec --preserve-fds 1 '{}' /bin/sh -c '{body}'",
        host.display(),
        b.root().display(),
        b.id
    ));
    assert_eq!(stdout(&o), "got hello\nsecret\n", "{}", stderr(&o));
}

#[test]
fn text_log_format_gets_a_readable_line() {
    need_runc!();
    let b = Bundle::new("textlog");
    b.annotate("moat.dev/preset", "no-such-preset");
    let log = b.path().join("text.log");
    // No --log-format: runc's default, text.
    let o = Command::new(moat_runtime())
        .current_dir(b.path())
        .arg("--root")
        .arg(b.root())
        .arg("--log")
        .arg(&log)
        .args(["create", &b.id])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(!b.exists(), "no container may exist");
    let text = std::fs::read_to_string(&log).unwrap();
    let line = text.lines().last().unwrap_or_default();
    // logrus' text format, as runc writes its own errors.
    assert!(line.starts_with("time=\""), "{line}");
    assert!(
        line.contains("Z\" level=error msg=\"moat-runtime: "),
        "{line}"
    );
    assert!(line.contains("no-such-preset"), "{line}");
    assert!(!line.starts_with('{'), "not JSON: {line}");

    // Same shape as runc's own text line, in the same file.
    let st = Command::new("runc")
        .arg("--root")
        .arg(b.root())
        .arg("--log")
        .arg(&log)
        .args(["state", &b.id])
        .stderr(Stdio::null())
        .output()
        .unwrap();
    assert!(!st.status.success());
    let text = std::fs::read_to_string(&log).unwrap();
    let shape = |l: &str| {
        let l = l.split_once("level=").map(|(_, r)| r).unwrap_or("");
        l.split_once(" msg=\"").map(|(lvl, _)| lvl.to_string())
    };
    let runc_line = text.lines().last().unwrap();
    assert_ne!(runc_line, line, "runc appended its own line");
    assert_eq!(shape(runc_line), shape(line), "{runc_line}\n{line}");
}

/// Whether CRIU can checkpoint on this machine (`criu check`).
fn criu_works() -> bool {
    which("criu").is_some()
        && Command::new("criu")
            .arg("check")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

#[test]
fn checkpoint_passes_through_and_restore_of_a_confined_container_is_refused() {
    need_runc!();
    if criu_works() {
        // A working CRIU would really checkpoint: this test only covers the hand-over.
        eprintln!("SKIP: criu works here; checkpoint/restore are not exercised");
        return;
    }
    let b = Bundle::new("ckpt");
    b.annotate("moat.dev/policy", POLICY_TOML);
    start_sleeping(&b);
    let images = b.path().join("images");
    std::fs::create_dir_all(&images).unwrap();
    let images = images.to_str().unwrap().to_string();
    // Without --log runc writes its errors to stderr, where they can be compared.
    let call = |rt: &Path, args: &[&str]| {
        Command::new(rt)
            .current_dir(b.path())
            .arg("--root")
            .arg(b.root())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let strip_time = |o: &Output| {
        stderr(o)
            .lines()
            .map(|l| l.split_once(" level=").map_or(l, |(_, r)| r).to_string())
            .collect::<Vec<_>>()
    };
    let checkpoint = [
        "checkpoint",
        "--leave-running",
        "--image-path",
        &images,
        &b.id,
    ];
    let restore_id = format!("{}-restored", b.id);
    let restore = [
        "restore",
        "--detach",
        "--image-path",
        &images,
        "--bundle",
        b.path().to_str().unwrap(),
        &restore_id,
    ];
    // Restoring a confined container would bring it back without its sandbox: refused
    // before runc runs, with the reason, and nothing is restored.
    let ours = call(&moat_runtime(), &restore);
    assert_eq!(ours.status.code(), Some(1), "{}", stderr(&ours));
    assert!(
        stderr(&ours).contains("refusing to restore") && stderr(&ours).contains("Landlock"),
        "{}",
        stderr(&ours)
    );
    let listed = call(Path::new("runc"), &["state", &restore_id]);
    assert!(!listed.status.success(), "a restored container exists");
    // checkpoint: runc's own answer (CRIU cannot run here), not one of moat-runtime's.
    let args = &checkpoint[..];
    let ours = call(&moat_runtime(), args);
    let theirs = call(Path::new("runc"), args);
    assert!(!ours.status.success(), "{args:?} cannot work without CRIU");
    assert_eq!(ours.status.code(), theirs.status.code(), "{args:?}");
    assert_eq!(ours.stdout, theirs.stdout, "{args:?}");
    assert_eq!(strip_time(&ours), strip_time(&theirs), "{args:?}");
    assert!(!stderr(&ours).contains("moat-runtime"), "{}", stderr(&ours));
    assert!(stderr(&ours).contains("criu"), "{}", stderr(&ours));
    // The confined container is still there and still confined.
    assert!(b.exists());
    let o = exec_probe(&b);
    assert_eq!(stdout(&o), CONFINED, "{}", stderr(&o));
}
