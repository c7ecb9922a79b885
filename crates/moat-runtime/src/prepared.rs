//! What moat-runtime keeps about a container it confined, and the only thing it trusts to
//! say that a container is confined.
//!
//! The record is `<bundle>/moat/state.json`, in the bundle directory beside config.json and
//! outside the rootfs: the engine creates that directory, and nothing in the pod spec, the
//! image or the running container can write there. It holds the launcher's arguments (the
//! policy and the ABI cap) and the identity of the config.json moat-runtime wrote (device,
//! inode, size, modification time). A config.json is "already prepared" (a second
//! `create` on a bundle an engine reuses, which moat-runtime prepares again from the
//! original) only when it is that very file; `exec` confines a
//! new process when the container's bundle has a record, with the policy from the record.
//! Nothing a pod writes decides either: not an annotation (`moat.dev/confined` is only
//! informative), not `process.args`, not a path inside the image.

use crate::error::RuntimeError;
use crate::inject::{BUNDLE_DIR, POLICY_FILE_FLAG, POLICY_TEXT_FLAG};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The record's name in [`BUNDLE_DIR`].
pub const STATE_FILE: &str = "state.json";

/// How the launcher is started: what moat-runtime puts on its command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    /// [`POLICY_TEXT_FLAG`], or [`POLICY_FILE_FLAG`] for a policy too long for one
    /// argument (mounted from the bundle).
    pub flag: String,
    /// The policy document, or the file's path in the container.
    pub value: String,
    /// The Landlock ABI cap from moat-runtime's configuration (`max_abi`), if any.
    pub max_abi: Option<u32>,
}

/// The identity of a file, enough to tell the file moat-runtime wrote from any other an
/// engine puts in its place (a new file has a new inode; one rewritten in place has a new
/// modification time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileId {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: i64,
    mtime_nsec: i64,
}

impl FileId {
    /// The identity of the file at `path`.
    pub fn of(path: &Path) -> std::io::Result<FileId> {
        let m = std::fs::metadata(path)?;
        Ok(FileId {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: m.mtime(),
            mtime_nsec: m.mtime_nsec(),
        })
    }

    fn to_json(self) -> serde_json::Value {
        serde_json::json!([self.dev, self.ino, self.size, self.mtime, self.mtime_nsec])
    }

    fn from_json(v: &serde_json::Value) -> Option<FileId> {
        let a = v.as_array()?;
        let u = |i: usize| a.get(i)?.as_u64();
        let i = |i: usize| a.get(i)?.as_i64();
        (a.len() == 5).then_some(())?;
        Some(FileId {
            dev: u(0)?,
            ino: u(1)?,
            size: u(2)?,
            mtime: i(3)?,
            mtime_nsec: i(4)?,
        })
    }
}

/// The record of a confined container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    /// The launcher's arguments.
    pub launch: Launch,
    /// The config.json moat-runtime wrote.
    pub config: FileId,
}

/// The record's path for `bundle`.
pub fn path(bundle: &Path) -> PathBuf {
    bundle.join(BUNDLE_DIR).join(STATE_FILE)
}

impl Prepared {
    /// The record as JSON text.
    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::json!({
            "version": 1,
            "config": self.config.to_json(),
            "policy_flag": self.launch.flag,
            "policy": self.launch.value,
        });
        if let Some(n) = self.launch.max_abi {
            v["max_abi"] = n.into();
        }
        serde_json::to_vec(&v).unwrap_or_default()
    }

    /// Reads `bundle`'s record: `None` when there is none (moat-runtime did not confine
    /// this container). A record that exists but cannot be read or understood is an error:
    /// the container is confined and its policy must not be guessed.
    pub fn read(bundle: &Path) -> Result<Option<Prepared>, RuntimeError> {
        let path = path(bundle);
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(bad(&path, &e.to_string())),
        };
        let v: serde_json::Value =
            serde_json::from_slice(&text).map_err(|e| bad(&path, &e.to_string()))?;
        let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
        let flag = s("policy_flag").filter(|f| f == POLICY_TEXT_FLAG || f == POLICY_FILE_FLAG);
        let (Some(1), Some(flag), Some(value), Some(config)) = (
            v.get("version").and_then(|x| x.as_u64()),
            flag,
            s("policy"),
            v.get("config").and_then(FileId::from_json),
        ) else {
            return Err(bad(&path, "not a record moat-runtime wrote"));
        };
        let max_abi = match v.get("max_abi") {
            None => None,
            Some(n) => Some(
                n.as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| bad(&path, "`max_abi` is not an ABI number"))?,
            ),
        };
        Ok(Some(Prepared {
            launch: Launch {
                flag,
                value,
                max_abi,
            },
            config,
        }))
    }

    /// Whether `bundle`'s config.json is the one this record describes.
    pub fn describes_config_of(&self, bundle: &Path) -> bool {
        FileId::of(&bundle.join("config.json")).is_ok_and(|id| id == self.config)
    }
}

/// Whether `bundle`'s config.json is one moat-runtime already prepared (an engine starting
/// the same bundle again): there is a record, and config.json is the file it describes.
/// A record that cannot be read counts as "not prepared": the container is prepared
/// again, never passed through.
pub fn already_prepared(bundle: &Path) -> bool {
    matches!(Prepared::read(bundle), Ok(Some(p)) if p.describes_config_of(bundle))
}

fn bad(path: &Path, message: &str) -> RuntimeError {
    RuntimeError::State {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn launch() -> Launch {
        Launch {
            flag: POLICY_TEXT_FLAG.into(),
            value: "{\"a\":\"\u{e9}\\n\"}".into(),
            max_abi: Some(3),
        }
    }

    #[test]
    fn the_record_reads_back() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join(BUNDLE_DIR)).unwrap();
        std::fs::write(d.path().join("config.json"), "{}").unwrap();
        assert_eq!(Prepared::read(d.path()).unwrap(), None);
        assert!(!already_prepared(d.path()));
        let p = Prepared {
            launch: launch(),
            config: FileId::of(&d.path().join("config.json")).unwrap(),
        };
        std::fs::write(path(d.path()), p.to_json()).unwrap();
        assert_eq!(Prepared::read(d.path()).unwrap(), Some(p));
        assert!(already_prepared(d.path()));
        // Another config.json in its place (as an engine writes a new one): not prepared.
        std::fs::remove_file(d.path().join("config.json")).unwrap();
        std::fs::write(d.path().join("config.json"), "{}").unwrap();
        assert!(!already_prepared(d.path()));
    }

    #[test]
    fn a_damaged_record_is_an_error_not_a_pass() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join(BUNDLE_DIR)).unwrap();
        for text in [
            "",
            "{",
            "[]",
            r#"{"version":2,"config":[1,2,3,4,5],"policy_flag":"--policy-text","policy":"{}"}"#,
            r#"{"version":1,"config":[1,2,3,4,5],"policy_flag":"--allow-all","policy":"{}"}"#,
            r#"{"version":1,"config":[1,2],"policy_flag":"--policy-text","policy":"{}"}"#,
            r#"{"version":1,"config":[1,2,3,4,5],"policy_flag":"--policy-text"}"#,
            r#"{"version":1,"config":[1,2,3,4,5],"policy_flag":"--policy-text","policy":"{}","max_abi":-1}"#,
        ] {
            std::fs::write(path(d.path()), text).unwrap();
            assert!(Prepared::read(d.path()).is_err(), "{text}");
            assert!(!already_prepared(d.path()), "{text}");
        }
    }
}
