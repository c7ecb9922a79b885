//! The command line: `render` on files and standard input, and the hand-over from the
//! `moat` launcher (`moat webhook ...` → `moat-k8s webhook ...`, `moat k8s ...` →
//! `moat-k8s ...`).

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

const MANIFEST: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata:
      labels: {app: web}
      annotations:
        moat.dev/enforce: "true"
    spec:
      containers:
        - name: web
          image: nginx
          ports:
            - containerPort: 80
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  ports: [{port: 80}]
"#;

fn manifest_file(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("web.yaml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

fn run(cmd: &mut Command, stdin: Option<&str>) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn render_prints_each_containers_policy() {
    let (_dir, path) = manifest_file(MANIFEST);
    let out = run(Command::new(common::BIN).arg("render").arg(&path), None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("document 1: Deployment web: runtimeClassName moat"),
        "{stdout}"
    );
    assert!(stdout.contains("## container web: no policy named: TCP bind restricted, nothing else, may bind TCP 80 (containerPort)"), "{stdout}");
    assert!(stdout.contains("bind_tcp = [80]"), "{stdout}");
    assert!(
        stdout.contains("document 2: Service web: not a pod or workload, skipped"),
        "{stdout}"
    );
}

#[test]
fn render_reads_standard_input_and_writes_json() {
    let pod = "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"p\"},\"spec\":{\"containers\":[{\"name\":\"c\",\"ports\":[{\"containerPort\":8080}]}]}}";
    let out = run(
        Command::new(common::BIN).args(["render", "-", "--format", "json", "--namespace-enforced"]),
        Some(pod),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["outcome"], "confined");
    assert_eq!(v[0]["file"], "-");
    assert_eq!(v[0]["containers"][0]["ports"], serde_json::json!([8080]));
    // Without the namespace label, the pod is not opted in.
    let out = run(
        Command::new(common::BIN).args(["render", "-", "--format", "json"]),
        Some(pod),
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["outcome"], "not-opted-in");
}

#[test]
fn render_fails_on_what_the_webhook_would_refuse() {
    let broken = MANIFEST.replace(
        "moat.dev/enforce: \"true\"",
        "moat.dev/enforce: \"true\"\n        moat.dev/preset: nope",
    );
    let (_dir, path) = manifest_file(&broken);
    let out = run(Command::new(common::BIN).arg("render").arg(&path), None);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("document 1: Deployment web: the webhook would refuse it: pod web:"),
        "{stdout}"
    );
    // Unreadable YAML: the file and the document are named.
    let (_dir, path) = manifest_file("kind: Pod\n---\nkind: [\n");
    let out = run(Command::new(common::BIN).arg("render").arg(&path), None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("web.yaml: document 2: "),
        "{}",
        text(&out.stderr)
    );
    let out = run(
        Command::new(common::BIN).args(["render", "/no/such/file.yaml"]),
        None,
    );
    assert!(
        text(&out.stderr).contains("/no/such/file.yaml: "),
        "{}",
        text(&out.stderr)
    );
    // Usage errors exit 2, as clap's.
    let out = run(
        Command::new(common::BIN).args(["render", "--format", "xml", "x"]),
        None,
    );
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn gen_certs_writes_the_pair_and_prints_the_ca_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        Command::new(common::BIN)
            .args([
                "webhook",
                "gen-certs",
                "--service",
                "hook",
                "--namespace",
                "sec",
                "--out-dir",
            ])
            .arg(dir.path()),
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let ca = std::fs::read_to_string(dir.path().join("ca.crt")).unwrap();
    use base64::Engine;
    let bundle = base64::engine::general_purpose::STANDARD
        .decode(text(&out.stdout).trim())
        .unwrap();
    assert_eq!(bundle, ca.as_bytes());
    assert!(text(&out.stderr).contains("hook.sec.svc"));
    moat_k8s::load_tls(&dir.path().join("tls.crt"), &dir.path().join("tls.key")).unwrap();
}

/// The `moat` launcher next to this crate's binary, built if it is not there yet.
fn moat_binary() -> PathBuf {
    let moat = common::bin_dir().join("moat");
    if !moat.is_file() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
        let status = Command::new(cargo)
            .args(["build", "-p", "moat"])
            .status()
            .expect("cargo build -p moat");
        assert!(status.success(), "cargo build -p moat failed");
    }
    assert!(
        moat.is_file(),
        "{} missing after cargo build -p moat",
        moat.display()
    );
    moat
}

#[test]
fn moat_hands_webhook_and_k8s_over_to_moat_k8s() {
    let moat = moat_binary();
    let out = run(Command::new(&moat).args(["webhook", "--help"]), None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let help = text(&out.stdout);
    assert!(
        help.contains("Usage: moat webhook") && help.contains("--tls-cert"),
        "{help}"
    );

    // Named as typed, through moat.
    let out = run(Command::new(&moat).args(["k8s", "--help"]), None);
    assert!(
        text(&out.stdout).contains("Usage: moat k8s"),
        "{}",
        text(&out.stdout)
    );

    let (_dir, path) = manifest_file(MANIFEST);
    let out = run(Command::new(&moat).args(["k8s", "render"]).arg(&path), None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("bind_tcp = [80]"));
    let out = run(
        Command::new(&moat).args(["k8s", "render", "-"]),
        Some(MANIFEST),
    );
    assert!(
        text(&out.stdout).contains("document 1: Deployment web"),
        "{}",
        text(&out.stderr)
    );
}

/// `render` with the webhook's floors shows the effective policy: the author's allow-all
/// policy binds only the declared port, and the namespace's filesystem floor is in it.
#[test]
fn render_shows_the_effective_policy_with_the_floor() {
    let manifest = MANIFEST.replace(
        "        moat.dev/enforce: \"true\"\n",
        "        container.moat.dev/web: \"[filesystem]\\nunrestricted = true\\n[network]\\nunrestricted = true\\n\"\n",
    );
    let (dir, path) = manifest_file(&manifest);
    let floors = dir.path().join("floors.toml");
    std::fs::write(
        &floors,
        "[namespace.shop]\npolicy = '''\n[filesystem]\nread = [\"/etc\"]\n[network]\nunrestricted = true\n'''\n",
    )
    .unwrap();
    let out = run(
        Command::new(common::BIN)
            .args(["render", "--namespace-enforced", "--floors"])
            .arg(&floors)
            .args(["--namespace", "shop"])
            .arg(&path),
        None,
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(stdout.contains("with the namespace's floor"), "{stdout}");
    assert!(stdout.contains("\"/etc\""), "{stdout}");
    assert!(stdout.contains("bind_tcp = [80]"), "{stdout}");
    assert!(stdout.contains("compat = \"strict\""), "{stdout}");
    // Without --namespace-enforced there is no floor: the author's policy as written.
    let out = run(Command::new(common::BIN).arg("render").arg(&path), None);
    assert!(!text(&out.stdout).contains("namespace's floor"));
}
