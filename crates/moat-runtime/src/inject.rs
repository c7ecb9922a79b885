//! Putting the launcher in front of a container's entrypoint.
//!
//! The launcher (the static `moat` binary) is bind-mounted read-only into the container at
//! [`LAUNCHER_DEST`], and `process.args` becomes `/.moat/moat run --from-runtime
//! [--max-abi N] --policy-text POLICY [--preserve-fd N]... -- <original args>`
//! (`--from-runtime`: the launcher takes nothing from the container's environment, which
//! is the workload's), where POLICY is the normalised policy in
//! moat's own dialect as JSON (`moat_policy::write::to_moat_json`), one argument however
//! it is written: config.json holds it as a JSON string. No policy file is written or
//! mounted: one mount less on every container start. Only a policy too long for one
//! argument (over [`MAX_POLICY_ARG`], thousands of rules) still goes the older way: written to
//! `<bundle>/moat/policy.json`, bind-mounted read-only at [`POLICY_DEST`] and named with
//! `--policy`. The environment, working directory,
//! user and everything else in config.json stay as they were, so the launcher runs exactly
//! where the entrypoint would have, after pivot_root, and builds its rules from the
//! container's own paths.

use crate::config::Config;
use crate::error::RuntimeError;
use crate::policy_source::CONFINED_ANNOTATION;
use crate::prepared::{FileId, Launch, Prepared};
use std::path::Path;

/// Where the launcher appears inside the container.
pub const LAUNCHER_DEST: &str = "/.moat/moat";
/// The launcher's flag that carries the policy document itself.
pub const POLICY_TEXT_FLAG: &str = "--policy-text";
/// The launcher's flag that names a policy file, for policies too long for one argument.
pub const POLICY_FILE_FLAG: &str = "--policy";
/// The policy file's name in [`BUNDLE_DIR`], when there is one.
pub const POLICY_FILE: &str = "policy.json";
/// Where the policy file appears inside the container, when there is one.
pub const POLICY_DEST: &str = "/.moat/policy.json";
/// The longest policy that fits in one argument: Linux's `MAX_ARG_STRLEN` (32 pages of
/// 4 KiB, the smallest page size) less the terminating NUL.
pub const MAX_POLICY_ARG: usize = 32 * 4096 - 1;
/// The bundle subdirectory moat-runtime writes to (the original config.json).
pub const BUNDLE_DIR: &str = "moat";
/// The original config.json's name in [`BUNDLE_DIR`].
pub const ORIGINAL_CONFIG: &str = "config.json.orig";
/// Mount options: read-only, no setuid, no devices; executable on purpose.
pub const MOUNT_OPTIONS: [&str; 4] = ["bind", "ro", "nosuid", "nodev"];

/// The launcher's flag saying it was started by moat-runtime: it then reads no setting
/// from the environment.
pub const FROM_RUNTIME_FLAG: &str = "--from-runtime";

/// The arguments put in front of the entrypoint. `launch` tells the launcher its policy
/// ([`POLICY_TEXT_FLAG`] and the document) and ABI cap. `extra_fds` is how many
/// descriptors after stdio the runtime hands the process (LISTEN_FDS plus
/// `--preserve-fds`); the launcher keeps exactly those open. `explain` (annotation
/// `moat.dev/explain`) makes the launcher report denials on the container's stderr when the
/// entrypoint ends.
pub fn launcher_prefix(launch: &Launch, extra_fds: u32, explain: bool) -> Vec<String> {
    let mut v: Vec<String> = vec![LAUNCHER_DEST.into(), "run".into(), FROM_RUNTIME_FLAG.into()];
    if let Some(n) = launch.max_abi {
        v.push("--max-abi".into());
        v.push(n.to_string());
    }
    v.push(launch.flag.clone());
    v.push(launch.value.clone());
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

/// Puts back the original config.json of a bundle moat-runtime prepared before (`cfg` is
/// the prepared one): `<bundle>/moat/config.json.orig` moved over it. Without the original
/// the bundle cannot be prepared again, and the container is refused rather than started
/// on the first preparation's word.
pub fn restore_original(bundle: &Path, cfg: &Config) -> Result<(), RuntimeError> {
    let orig = bundle.join(BUNDLE_DIR).join(ORIGINAL_CONFIG);
    std::fs::rename(&orig, &cfg.path).map_err(|e| RuntimeError::State {
        path: crate::prepared::path(bundle),
        message: format!(
            "the bundle was prepared before and its original configuration `{}` cannot be put back: {e}",
            orig.display()
        ),
    })
}

/// Rewrites `<bundle>/config.json` so the container starts under the launcher with
/// `policy_json` on its command line (and `max_abi`, moat-runtime's configured ABI cap);
/// the original configuration is kept as `<bundle>/moat/config.json.orig`, and the record
/// of what was done as `<bundle>/moat/state.json` ([`crate::prepared`]). `bundle` must be
/// absolute.
pub fn prepare(
    bundle: &Path,
    cfg: &mut Config,
    policy_json: &str,
    max_abi: Option<u32>,
    launcher: &Path,
    extra_fds: u32,
    explain: bool,
) -> Result<(), RuntimeError> {
    let dir = bundle.join(BUNDLE_DIR);
    // A fresh bundle (engines give every container one) holds nothing of ours to replace.
    let fresh = match std::fs::create_dir(&dir) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
        Err(_) => {
            std::fs::create_dir_all(&dir).map_err(write_error(&dir))?;
            false
        }
    };
    let (flag, value) = if policy_json.len() > MAX_POLICY_ARG {
        let file = dir.join(POLICY_FILE);
        write_new(&file, policy_json.as_bytes())?;
        cfg.add_mount(bind(&file, POLICY_DEST))?;
        (POLICY_FILE_FLAG, POLICY_DEST)
    } else {
        (POLICY_TEXT_FLAG, policy_json)
    };
    let launch = Launch {
        flag: flag.into(),
        value: value.into(),
        max_abi,
    };
    cfg.prefix_args(&launcher_prefix(&launch, extra_fds, explain))?;
    cfg.add_mount(bind(launcher, LAUNCHER_DEST))?;
    // Informative only (`runc state`, `crictl inspect`): nothing reads it back.
    cfg.set_annotation(CONFINED_ANNOTATION, "true")?;

    // The new config.json is written beside, the original is moved aside (no copy), and
    // the new one moved in, so config.json is never half written. In between, config.json
    // is missing: a crash there makes the runtime refuse to start, never start unconfined.
    // The record names the new file (its inode and modification time survive the rename)
    // and is written first: a crash before the rename leaves a record that describes no
    // config.json, and the next `create` prepares the bundle again.
    let tmp = dir.join("config.json.new");
    write_new(&tmp, &cfg.to_json())?;
    let record = Prepared {
        launch,
        config: FileId::of(&tmp).map_err(write_error(&tmp))?,
    };
    let state = crate::prepared::path(bundle);
    write_new(&state, &record.to_json())?;
    let orig = dir.join(ORIGINAL_CONFIG);
    if !fresh {
        remove(&orig)?;
    }
    std::fs::rename(&cfg.path, &orig).map_err(write_error(&orig))?;
    if let Err(source) = std::fs::rename(&tmp, &cfg.path) {
        // Put the original back; the error is what matters.
        let _ = std::fs::rename(&orig, &cfg.path);
        return Err(RuntimeError::WriteFile {
            path: cfg.path.clone(),
            source,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_keeps_the_runtimes_descriptors() {
        let mut launch = Launch {
            flag: POLICY_TEXT_FLAG.into(),
            value: "{}".into(),
            max_abi: None,
        };
        assert_eq!(
            launcher_prefix(&launch, 0, false),
            [
                "/.moat/moat",
                "run",
                "--from-runtime",
                "--policy-text",
                "{}",
                "--"
            ]
        );
        let p = launcher_prefix(&launch, 2, false);
        assert_eq!(&p[5..], ["--preserve-fd", "3", "--preserve-fd", "4", "--"]);
        launch.max_abi = Some(3);
        assert_eq!(
            launcher_prefix(&launch, 0, false)[2..5],
            ["--from-runtime", "--max-abi", "3"]
        );
    }

    #[test]
    fn prepare_rewrites_the_bundle() {
        let d = tempfile::tempdir().unwrap();
        let text = r#"{"process":{"args":["/bin/sh","-c","x"],"env":["A=1"],"cwd":"/w"},"mounts":[{"destination":"/proc"}],"z":1}"#;
        std::fs::write(d.path().join("config.json"), text).unwrap();
        let mut cfg = Config::read(d.path()).unwrap();
        let policy = r#"{"filesystem":{"read":["/etc"]}}"#;
        prepare(
            d.path(),
            &mut cfg,
            policy,
            None,
            Path::new("/usr/bin/moat"),
            0,
            true,
        )
        .unwrap();
        let back = Config::read(d.path()).unwrap();
        let v = &back.value;
        assert_eq!(v["process"]["args"][0], LAUNCHER_DEST);
        assert_eq!(v["process"]["args"][2], "--from-runtime");
        assert_eq!(v["process"]["args"][3], "--policy-text");
        assert_eq!(v["process"]["args"][4], policy);
        assert_eq!(v["process"]["args"][5], "--explain");
        assert_eq!(v["process"]["args"][7], "/bin/sh");
        assert_eq!(v["process"]["env"], serde_json::json!(["A=1"]));
        assert_eq!(v["process"]["cwd"], "/w");
        assert_eq!(v["z"], 1);
        // One mount added: the launcher. No policy file.
        assert_eq!(v["mounts"].as_array().unwrap().len(), 2);
        assert_eq!(v["mounts"][1]["source"], "/usr/bin/moat");
        assert_eq!(v["mounts"][1]["destination"], LAUNCHER_DEST);
        assert!(crate::prepared::already_prepared(d.path()));
        let record = Prepared::read(d.path()).unwrap().unwrap();
        assert_eq!(record.launch.value, policy);
        let orig = std::fs::read(d.path().join("moat/config.json.orig")).unwrap();
        assert_eq!(orig, text.as_bytes());
        let mut left: Vec<_> = std::fs::read_dir(d.path().join(BUNDLE_DIR))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        left.sort();
        assert_eq!(left, [ORIGINAL_CONFIG, crate::prepared::STATE_FILE]);
    }

    #[test]
    fn any_policy_text_survives_as_one_argument() {
        // A real policy whose path has quotes, a backslash, a newline, a tab, non-ASCII
        // letters and an emoji, normalised the way `create` does it.
        let path = "/data/\"quoted\" \\ back\nslash\tété 🦀";
        let toml = format!("[filesystem]\nread = [{}]\n", serde_json::Value::from(path));
        let policy = moat_policy::parse_str("p.toml", &toml).unwrap();
        let (json, _) = moat_policy::write::to_moat_json(&policy)
            .unwrap()
            .into_parts();
        assert!(json.contains('\u{e9}'));
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("config.json"),
            r#"{"process":{"args":["/bin/true"]}}"#,
        )
        .unwrap();
        let mut cfg = Config::read(d.path()).unwrap();
        prepare(d.path(), &mut cfg, &json, None, Path::new("/m"), 0, false).unwrap();
        let back = Config::read(d.path()).unwrap();
        let args = back.value["process"]["args"].as_array().unwrap();
        assert_eq!(args.len(), 7);
        assert_eq!(args[4], json.as_str());
        assert_eq!(args[5], "--");
        assert_eq!(args[6], "/bin/true");
        // And the launcher reads back the same policy, path intact.
        let again = moat_policy::parse_str("--policy-text", args[4].as_str().unwrap()).unwrap();
        assert_eq!(again.fs.rules.len(), 1);
        assert_eq!(again.fs.rules[0].path, path);
        assert_eq!(again.fs.rules[0].access, policy.fs.rules[0].access);
    }

    #[test]
    fn a_policy_too_long_for_one_argument_goes_in_a_mounted_file() {
        let d = tempfile::tempdir().unwrap();
        let text = r#"{"process":{"args":["/bin/true"]}}"#;
        std::fs::write(d.path().join("config.json"), text).unwrap();
        let mut cfg = Config::read(d.path()).unwrap();
        let long = format!("{{\"x\":\"{}\"}}", "a".repeat(MAX_POLICY_ARG));
        prepare(d.path(), &mut cfg, &long, None, Path::new("/m"), 0, false).unwrap();
        let back = Config::read(d.path()).unwrap();
        let args = back.value["process"]["args"].as_array().unwrap();
        assert_eq!(args[3], POLICY_FILE_FLAG);
        assert_eq!(args[4], POLICY_DEST);
        assert_eq!(
            std::fs::read_to_string(d.path().join(BUNDLE_DIR).join(POLICY_FILE)).unwrap(),
            long
        );
        let mounts = back.value["mounts"].as_array().unwrap();
        let dests: Vec<&str> = mounts
            .iter()
            .filter_map(|m| m["destination"].as_str())
            .collect();
        assert_eq!(dests, [POLICY_DEST, LAUNCHER_DEST]);
    }

    #[test]
    fn prepare_again_on_a_used_bundle_replaces_everything() {
        let d = tempfile::tempdir().unwrap();
        let moat = d.path().join(BUNDLE_DIR);
        std::fs::create_dir(&moat).unwrap();
        // Left over from an earlier container on this bundle (and a crash).
        for (name, text) in [
            ("config.json.orig", "{\"old\":true}"),
            ("config.json.new", "{\"half"),
        ] {
            std::fs::write(moat.join(name), text).unwrap();
        }
        let text = r#"{"process":{"args":["/bin/true"]}}"#;
        std::fs::write(d.path().join("config.json"), text).unwrap();
        let mut cfg = Config::read(d.path()).unwrap();
        prepare(d.path(), &mut cfg, "{}", None, Path::new("/m"), 0, false).unwrap();
        assert_eq!(
            std::fs::read(moat.join("config.json.orig")).unwrap(),
            text.as_bytes()
        );
        assert!(!moat.join("config.json.new").exists());
        assert!(crate::prepared::already_prepared(d.path()));
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
        assert!(prepare(d.path(), &mut cfg, "{}", None, Path::new("/m"), 0, false).is_err());
        assert_eq!(
            std::fs::read(d.path().join("config.json")).unwrap(),
            text.as_bytes()
        );
    }
}
