//! Which real runtime to hand commands to, and where the in-container launcher is.
//!
//! The real runtime comes from, first found: the `--moat-runtime PATH` global flag, the
//! `MOAT_RUNTIME` environment variable, `runtime = "..."` in the configuration file, and
//! finally `runc` on `PATH` (a name without a slash is looked up on `PATH` once, see
//! [`resolve_in_path`]). The launcher comes from `MOAT_LAUNCHER`, `launcher = "..."` in
//! the configuration file, or the `moat` binary next to moat-runtime's own. The
//! configuration file is `/etc/moat/runtime.toml`, or the file `MOAT_RUNTIME_CONFIG` names.

use crate::early::{self, Probe};
use crate::policy_source::WithoutPolicy;
use std::ffi::{CStr, OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
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
    /// `without_policy = "ports"` (the default) or `"refuse"`: what a Kubernetes container
    /// that names no policy gets (TCP bind limited to the containerPorts its Pod declares,
    /// or a refusal). The older key `ports_from_spec` is still accepted and changes
    /// nothing: a node never runs a Kubernetes container unconfined.
    pub without_policy: WithoutPolicy,
    /// `max_abi = N`: the launcher uses at most Landlock ABI N, as if the kernel were older
    /// (testing). moat-runtime passes it on the launcher's command line: the container's
    /// environment never sets it.
    pub max_abi: Option<u32>,
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
                    v.as_bool()
                        .ok_or_else(|| bad(format!("`{k}` must be true or false")))?;
                }
                "without_policy" => {
                    c.without_policy = v.as_str().and_then(WithoutPolicy::parse).ok_or_else(|| {
                        bad(format!(
                            "`{k}` must be one of {}",
                            WithoutPolicy::NAMES.map(|n| format!("\"{n}\"")).join(", ")
                        ))
                    })?
                }
                "max_abi" => {
                    c.max_abi = Some(
                        v.as_integer()
                            .and_then(|n| u32::try_from(n).ok())
                            .ok_or_else(|| bad(format!("`{k}` must be an ABI number (0 or more)")))?,
                    )
                }
                other => {
                    return Err(bad(format!(
                        "unknown key `{other}` (runtime, launcher, without_policy, max_abi, ports_from_spec)"
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
    OsStr::from_bytes(DEFAULT_RUNTIME.to_bytes()).into()
}

/// The real runtime when nothing names another (a C string: the early pass-through hands
/// it to `execve` as `argv[0]`).
pub const DEFAULT_RUNTIME: &CStr = c"runc";

/// `program` as `execvp` would find it on `path` (normally `PATH`), so that it is executed
/// once instead of `execvp` trying `execve` in each directory before it: a failed execve
/// costs far more than a failed stat. The directories are searched in the same order with
/// the same outcome: the first regular file this process may execute wins (a directory, a
/// file without execute permission or on a `noexec` mount is passed over, as execvp passes
/// over EACCES), and an empty entry is the current directory. A name with a slash, an unset
/// `PATH`, no match, or any doubt (a lookup error execvp would stop at) leave `program` as
/// it is, for execvp to search and report exactly as before.
pub fn resolve_in_path(program: OsString, path: Option<&OsStr>) -> OsString {
    use std::os::unix::ffi::OsStringExt;
    let Some(path) = path else {
        return program;
    };
    let mut buf = vec![0u8; early::MAX_PATH];
    match early::search(program.as_bytes(), path.as_bytes(), &mut buf, probe) {
        Some(len) => {
            buf.truncate(len);
            OsString::from_vec(buf)
        }
        None => program,
    }
}

/// What one candidate of the search is, by `stat` and `faccessat` with the effective ids
/// as execve checks them (`c` ends in its NUL).
fn probe(c: &[u8]) -> Probe {
    let Ok(c) = CStr::from_bytes_with_nul(c) else {
        return Probe::Stop;
    };
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: c is NUL-terminated; st has room for a struct stat.
    if unsafe { libc::stat(c.as_ptr(), st.as_mut_ptr()) } != 0 {
        return early::after_error(std::io::Error::last_os_error().raw_os_error().unwrap_or(0));
    }
    // SAFETY: stat succeeded and filled st.
    let mode = unsafe { st.assume_init() }.st_mode;
    // SAFETY: c is NUL-terminated; the other arguments are plain integers.
    let x = unsafe { libc::faccessat(libc::AT_FDCWD, c.as_ptr(), libc::X_OK, libc::AT_EACCESS) };
    if mode & libc::S_IFMT == libc::S_IFREG && x == 0 {
        Probe::Executable
    } else {
        Probe::Skip
    }
}

/// The launcher binary, checked to be a regular file, as an absolute canonical path.
pub fn launcher(file: &FileConfig) -> Result<PathBuf, SetupError> {
    let (path, sibling) = if let Some(e) = std::env::var_os(LAUNCHER_ENV).filter(|v| !v.is_empty())
    {
        (PathBuf::from(e), false)
    } else if let Some(l) = &file.launcher {
        (PathBuf::from(l), false)
    } else {
        let exe = std::env::current_exe().map_err(|e| SetupError::Launcher {
            path: PathBuf::from("moat"),
            message: format!("cannot find moat-runtime's own path: {e}"),
        })?;
        (exe.with_file_name("moat"), true)
    };
    let fail = |message: String| SetupError::Launcher {
        path: path.clone(),
        message,
    };
    if sibling {
        // The kernel's /proc/self/exe names a canonical directory: a regular file in it
        // (not a symbolic link) is canonical as it is. One `statx` instead of resolving
        // every component again, on the path of every confined start.
        let meta = std::fs::symlink_metadata(&path).map_err(|e| fail(e.to_string()))?;
        if meta.is_file() {
            return Ok(path);
        }
    }
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
        assert_eq!(c.without_policy, WithoutPolicy::Ports);
        assert_eq!(FileConfig::default().without_policy, WithoutPolicy::Ports);
        assert!(FileConfig::parse(p, "ports_from_spec = \"yes\"").is_err());
        let c = FileConfig::parse(p, "without_policy = \"refuse\"\nmax_abi = 3\n").unwrap();
        assert_eq!(c.without_policy, WithoutPolicy::Refuse);
        assert_eq!(c.max_abi, Some(3));
        for bad in [
            "without_policy = \"pass\"",
            "without_policy = true",
            "max_abi = -1",
            "max_abi = \"3\"",
        ] {
            let e = FileConfig::parse(p, bad).unwrap_err().to_string();
            assert!(e.contains('`'), "{bad}: {e}");
        }
    }

    #[test]
    fn path_lookup_finds_what_execvp_would() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let dir = |n: &str| {
            let p = d.path().join(n);
            std::fs::create_dir_all(&p).unwrap();
            p
        };
        let (a, b, c, e) = (dir("a"), dir("b"), dir("c"), dir("e"));
        // a: a directory named rt; b: rt not executable; c: the executable one; e: another.
        std::fs::create_dir(a.join("rt")).unwrap();
        for (at, mode) in [(&b, 0o644), (&c, 0o755), (&e, 0o755)] {
            std::fs::write(at.join("rt"), "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(at.join("rt"), std::fs::Permissions::from_mode(mode)).unwrap();
        }
        let path =
            std::env::join_paths([d.path().join("none"), a, b, c.clone(), e.clone()]).unwrap();
        let found = resolve_in_path("rt".into(), Some(&path));
        assert_eq!(found, c.join("rt").into_os_string());
        // The user's order wins.
        let path = std::env::join_paths([e.clone(), c]).unwrap();
        assert_eq!(
            resolve_in_path("rt".into(), Some(&path)),
            e.join("rt").into_os_string()
        );
        // Not found, a slash, no PATH: left to execvp.
        assert_eq!(resolve_in_path("nope".into(), Some(&path)), "nope");
        assert_eq!(resolve_in_path("./rt".into(), Some(&path)), "./rt");
        assert_eq!(resolve_in_path("rt".into(), None), "rt");
        // An empty entry is the current directory, kept relative with a slash.
        let cwd_path = OsString::from(format!(":{}", e.display()));
        let here = std::env::current_dir().unwrap();
        let expected = if here.join("rt").is_file() {
            OsString::from("./rt")
        } else {
            e.join("rt").into_os_string()
        };
        assert_eq!(resolve_in_path("rt".into(), Some(&cwd_path)), expected);
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
