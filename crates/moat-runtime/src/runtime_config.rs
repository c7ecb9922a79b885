//! Which real runtime to hand commands to, and where the in-container launcher is.
//!
//! The real runtime comes from, first found: the `--moat-runtime PATH` global flag, the
//! `MOAT_RUNTIME` environment variable, `runtime = "..."` in the configuration file, and
//! finally `runc` on `PATH`. The launcher comes from `MOAT_LAUNCHER`, `launcher = "..."` in
//! the configuration file, or the `moat` binary next to moat-runtime's own. The
//! configuration file is `/etc/moat/runtime.toml`, or the file `MOAT_RUNTIME_CONFIG` names.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The default configuration file.
pub const CONFIG_FILE: &str = "/etc/moat/runtime.toml";
/// Environment variable naming the real runtime.
pub const RUNTIME_ENV: &str = "MOAT_RUNTIME";
/// Environment variable naming the launcher.
pub const LAUNCHER_ENV: &str = "MOAT_LAUNCHER";
/// Environment variable naming another configuration file.
pub const CONFIG_ENV: &str = "MOAT_RUNTIME_CONFIG";

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The configuration file exists but cannot be read or parsed.
    #[error("{}: {message}", path.display())]
    ConfigFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The launcher is missing or not a regular file.
    #[error("launcher `{}` cannot be used: {message} (install the static `moat` binary next to moat-runtime, or set {LAUNCHER_ENV} or `launcher` in {CONFIG_FILE})", path.display())]
    Launcher {
        /// The path tried.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// moat-runtime's configuration file.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FileConfig {
    /// `runtime = "/usr/bin/runc"`.
    pub runtime: Option<String>,
    /// `launcher = "/usr/local/bin/moat"`.
    pub launcher: Option<String>,
    /// `ports_from_spec = true`: a Kubernetes container that names no policy gets TCP bind
    /// limited to the containerPorts its Pod declares (for clusters without moat's
    /// admission webhook, which does the same at admission).
    pub ports_from_spec: bool,
}

impl FileConfig {
    /// Reads the configuration file; a missing file is an empty configuration.
    pub fn load() -> Result<FileConfig, SetupError> {
        let path = std::env::var_os(CONFIG_ENV)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(CONFIG_FILE));
        match std::fs::read_to_string(&path) {
            Ok(text) => FileConfig::parse(&path, &text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(FileConfig::default()),
            Err(e) => Err(SetupError::ConfigFile {
                path,
                message: e.to_string(),
            }),
        }
    }

    /// Parses the file's text.
    pub fn parse(path: &Path, text: &str) -> Result<FileConfig, SetupError> {
        let bad = |message: String| SetupError::ConfigFile {
            path: path.to_path_buf(),
            message,
        };
        let table: toml::Table = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        let mut c = FileConfig::default();
        for (k, v) in table {
            let string = || {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| bad(format!("`{k}` must be a string")))
            };
            match k.as_str() {
                "runtime" => c.runtime = Some(string()?),
                "launcher" => c.launcher = Some(string()?),
                "ports_from_spec" => {
                    c.ports_from_spec = v
                        .as_bool()
                        .ok_or_else(|| bad(format!("`{k}` must be true or false")))?
                }
                other => {
                    return Err(bad(format!(
                        "unknown key `{other}` (runtime, launcher, ports_from_spec)"
                    )))
                }
            }
        }
        Ok(c)
    }
}

/// The real runtime: flag, then environment, then file, then `runc`.
pub fn runtime(flag: Option<&OsString>, file: &FileConfig) -> OsString {
    if let Some(f) = flag {
        return f.clone();
    }
    if let Some(e) = std::env::var_os(RUNTIME_ENV).filter(|v| !v.is_empty()) {
        return e;
    }
    if let Some(r) = &file.runtime {
        return r.into();
    }
    "runc".into()
}

/// The launcher binary, checked to be a regular file, as an absolute canonical path.
pub fn launcher(file: &FileConfig) -> Result<PathBuf, SetupError> {
    let path = if let Some(e) = std::env::var_os(LAUNCHER_ENV).filter(|v| !v.is_empty()) {
        PathBuf::from(e)
    } else if let Some(l) = &file.launcher {
        PathBuf::from(l)
    } else {
        let exe = std::env::current_exe().map_err(|e| SetupError::Launcher {
            path: PathBuf::from("moat"),
            message: format!("cannot find moat-runtime's own path: {e}"),
        })?;
        exe.with_file_name("moat")
    };
    let fail = |message: String| SetupError::Launcher {
        path: path.clone(),
        message,
    };
    let canonical = std::fs::canonicalize(&path).map_err(|e| fail(e.to_string()))?;
    let meta = std::fs::metadata(&canonical).map_err(|e| fail(e.to_string()))?;
    if !meta.is_file() {
        return Err(fail("not a regular file".into()));
    }
    Ok(canonical)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_file_keys() {
        let p = Path::new("/etc/moat/runtime.toml");
        let c = FileConfig::parse(p, "runtime = \"/usr/bin/crun\"\n").unwrap();
        assert_eq!(c.runtime.as_deref(), Some("/usr/bin/crun"));
        assert!(FileConfig::parse(p, "runtim = \"x\"").is_err());
        assert!(FileConfig::parse(p, "runtime = 3").is_err());
        assert!(FileConfig::parse(p, "runtime = ").is_err());
        let c = FileConfig::parse(p, "ports_from_spec = true\n").unwrap();
        assert!(c.ports_from_spec);
        assert!(!FileConfig::default().ports_from_spec);
        assert!(FileConfig::parse(p, "ports_from_spec = \"yes\"").is_err());
    }

    #[test]
    fn flag_beats_file() {
        let file = FileConfig {
            runtime: Some("/file/runc".into()),
            ..FileConfig::default()
        };
        let flag = OsString::from("/flag/runc");
        assert_eq!(runtime(Some(&flag), &file), flag);
    }
}
