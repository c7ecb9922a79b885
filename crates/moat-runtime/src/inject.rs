//! Putting the launcher in front of a container's entrypoint.
//!
//! The launcher (the static `moat` binary) and the normalised policy are bind-mounted
//! read-only into the container at [`LAUNCHER_DEST`] and [`POLICY_DEST`], and
//! `process.args` becomes `/.moat/moat run --policy /.moat/policy.json [--preserve-fd N]...
//! -- <original args>`. The environment, working directory, user and everything else in
//! config.json stay as they were, so the launcher runs exactly where the entrypoint would
//! have, after pivot_root, and builds its rules from the container's own paths.

use crate::config::Config;
use crate::error::RuntimeError;
use crate::policy_source::CONFINED_ANNOTATION;
use std::path::{Path, PathBuf};

/// Where the launcher appears inside the container.
pub const LAUNCHER_DEST: &str = "/.moat/moat";
/// The policy's file name in the bundle's moat directory: moat's own dialect as JSON
/// (`moat_policy::write::to_moat_json`), which the launcher parses faster than TOML.
pub const POLICY_FILE: &str = "policy.json";
/// Where the policy appears inside the container.
pub const POLICY_DEST: &str = "/.moat/policy.json";
/// The bundle subdirectory moat-runtime writes to.
pub const BUNDLE_DIR: &str = "moat";
/// Mount options: read-only, no setuid, no devices; executable on purpose.
pub const MOUNT_OPTIONS: [&str; 4] = ["bind", "ro", "nosuid", "nodev"];

/// The arguments put in front of the entrypoint. `extra_fds` is how many descriptors after
/// stdio the runtime hands the process (LISTEN_FDS plus `--preserve-fds`); the launcher
/// keeps exactly those open. `explain` (annotation `moat.dev/explain`) makes the launcher
/// report denials on the container's stderr when the entrypoint ends.
pub fn launcher_prefix(extra_fds: u32, explain: bool) -> Vec<String> {
    let mut v: Vec<String> = vec![
        LAUNCHER_DEST.into(),
        "run".into(),
        "--policy".into(),
        POLICY_DEST.into(),
    ];
    if explain {
        v.push("--explain".into());
    }
    for fd in 3..3u64 + u64::from(extra_fds) {
        v.push("--preserve-fd".into());
        v.push(fd.to_string());
    }
    v.push("--".into());
    v
}

/// Whether config.json was already prepared by moat-runtime (a second `create` on the
/// same bundle).
pub fn already_prepared(cfg: &Config) -> bool {
    let first = cfg
        .value
        .get("process")
        .and_then(|p| p.get("args"))
        .and_then(|a| a.get(0))
        .and_then(|a| a.as_str());
    first == Some(LAUNCHER_DEST) && matches!(cfg.annotation(CONFINED_ANNOTATION), Ok(Some("true")))
}

/// A bind mount of `source` at `destination`, read-only.
fn bind(source: &Path, destination: &str) -> serde_json::Value {
    serde_json::json!({
        "destination": destination,
        "type": "bind",
        "source": source.to_string_lossy(),
        "options": MOUNT_OPTIONS,
    })
}

fn write_error(path: &Path) -> impl FnOnce(std::io::Error) -> RuntimeError + '_ {
    move |source| RuntimeError::WriteFile {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `bytes` to a new file at `path`, removing whatever was there first.
///
/// Never truncates or renames over an existing file: on ext4 (`auto_da_alloc`, the default)
/// both make the kernel start writing the new data out at once, which costs a few hundred
/// microseconds per file on the path of every container start. A new inode is just
/// written to the page cache, like runc's own state files. Nothing is fsynced (runc does
/// not fsync config.json either): an engine regenerates the bundle after a crash.
fn write_new(path: &Path, bytes: &[u8]) -> Result<(), RuntimeError> {
    use std::io::Write;
    let create = || {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
    };
    let mut f = match create() {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            remove(path)?;
            create()
        }
        r => r,
    }
    .map_err(write_error(path))?;
    f.write_all(bytes).map_err(write_error(path))
}

/// Removes `path` if it exists.
fn remove(path: &Path) -> Result<(), RuntimeError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(write_error(path)(e)),
        _ => Ok(()),
    }
}

/// Writes the policy and rewrites `<bundle>/config.json` so the container starts under the
/// launcher; the original configuration is kept as `<bundle>/moat/config.json.orig`.
/// `bundle` must be absolute.
pub fn prepare(
    bundle: &Path,
    cfg: &mut Config,
    policy_json: &str,
    launcher: &Path,
    extra_fds: u32,
    explain: bool,
) -> Result<PathBuf, RuntimeError> {
    let dir = bundle.join(BUNDLE_DIR);
    std::fs::create_dir_all(&dir).map_err(write_error(&dir))?;
    let policy_path = dir.join(POLICY_FILE);
    write_new(&policy_path, policy_json.as_bytes())?;

    cfg.prefix_args(&launcher_prefix(extra_fds, explain))?;
    cfg.add_mount(bind(launcher, LAUNCHER_DEST))?;
    cfg.add_mount(bind(&policy_path, POLICY_DEST))?;
    cfg.set_annotation(CONFINED_ANNOTATION, "true")?;

    // The new config.json is written beside, the original is moved aside (no copy), and
    // the new one moved in, so config.json is never half written. In between, config.json
    // is missing: a crash there makes the runtime refuse to start, never start unconfined.
    let tmp = dir.join("config.json.new");
    write_new(&tmp, &cfg.to_json())?;
    let orig = dir.join("config.json.orig");
    remove(&orig)?;
    std::fs::rename(&cfg.path, &orig).map_err(write_error(&orig))?;
    if let Err(source) = std::fs::rename(&tmp, &cfg.path) {
        // Put the original back; the error is what matters.
        let _ = std::fs::rename(&orig, &cfg.path);
        return Err(RuntimeError::WriteFile {
            path: cfg.path.clone(),
            source,
        });
    }
    Ok(policy_path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_keeps_the_runtimes_descriptors() {
        assert_eq!(
            launcher_prefix(0, false),
            ["/.moat/moat", "run", "--policy", "/.moat/policy.json", "--"]
        );
        let p = launcher_prefix(2, false);
        assert_eq!(&p[4..], ["--preserve-fd", "3", "--preserve-fd", "4", "--"]);
    }

    #[test]
    fn prepare_rewrites_the_bundle() {
        let d = tempfile::tempdir().unwrap();
        let text = r#"{"process":{"args":["/bin/sh","-c","x"],"env":["A=1"],"cwd":"/w"},"mounts":[{"destination":"/proc"}],"z":1}"#;
        std::fs::write(d.path().join("config.json"), text).unwrap();
        let mut cfg = Config::read(d.path()).unwrap();
        prepare(
            d.path(),
            &mut cfg,
            "version = 1\n",
            Path::new("/usr/bin/moat"),
            0,
            true,
        )
        .unwrap();
        let back = Config::read(d.path()).unwrap();
        let v = &back.value;
        assert_eq!(v["process"]["args"][0], LAUNCHER_DEST);
        assert_eq!(v["process"]["args"][4], "--explain");
        assert_eq!(v["process"]["args"][6], "/bin/sh");
        assert_eq!(v["process"]["env"], serde_json::json!(["A=1"]));
        assert_eq!(v["process"]["cwd"], "/w");
        assert_eq!(v["z"], 1);
        assert_eq!(v["mounts"][1]["source"], "/usr/bin/moat");
        assert_eq!(v["mounts"][2]["destination"], POLICY_DEST);
        assert!(already_prepared(&back));
        let orig = std::fs::read(d.path().join("moat/config.json.orig")).unwrap();
        assert_eq!(orig, text.as_bytes());
        assert!(!d.path().join("moat/config.json.new").exists());
    }

    #[test]
    fn prepare_again_on_a_used_bundle_replaces_everything() {
        let d = tempfile::tempdir().unwrap();
        let moat = d.path().join(BUNDLE_DIR);
        std::fs::create_dir(&moat).unwrap();
        // Left over from an earlier container on this bundle (and a crash).
        for (name, text) in [
            ("policy.json", "old policy, much longer than the new one\n"),
            ("config.json.orig", "{\"old\":true}"),
            ("config.json.new", "{\"half"),
        ] {
            std::fs::write(moat.join(name), text).unwrap();
        }
        let text = r#"{"process":{"args":["/bin/true"]}}"#;
        std::fs::write(d.path().join("config.json"), text).unwrap();
        let mut cfg = Config::read(d.path()).unwrap();
        let policy = prepare(
            d.path(),
            &mut cfg,
            "version = 1\n",
            Path::new("/m"),
            0,
            false,
        )
        .unwrap();
        assert_eq!(std::fs::read_to_string(policy).unwrap(), "version = 1\n");
        assert_eq!(
            std::fs::read(moat.join("config.json.orig")).unwrap(),
            text.as_bytes()
        );
        assert!(!moat.join("config.json.new").exists());
        assert!(already_prepared(&Config::read(d.path()).unwrap()));
    }

    #[test]
    fn a_failed_rewrite_leaves_the_original_config() {
        let d = tempfile::tempdir().unwrap();
        let text = r#"{"process":{"args":["/bin/true"]}}"#;
        std::fs::write(d.path().join("config.json"), text).unwrap();
        // moat/config.json.orig is a non-empty directory: the original cannot be moved
        // there.
        std::fs::create_dir_all(d.path().join("moat/config.json.orig/x")).unwrap();
        let mut cfg = Config::read(d.path()).unwrap();
        assert!(prepare(
            d.path(),
            &mut cfg,
            "version = 1\n",
            Path::new("/m"),
            0,
            false
        )
        .is_err());
        assert_eq!(
            std::fs::read(d.path().join("config.json")).unwrap(),
            text.as_bytes()
        );
    }
}
