//! The node's containerd: its version, its effective configuration (`containerd config
//! dump`), the file that owns the CRI plugin's section, the edit that registers `moat`,
//! and the proof that the edited configuration loads the CRI plugin: a second containerd,
//! with its own root, state and sockets, started on it.

use crate::containerd_config::{self as cfg, ConfigError, Effective, Layout, TrialDirs, HANDLER};
use crate::host::Host;
use crate::NodeError;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use toml_edit::DocumentMut;

/// How long a trial containerd may take to come up and answer.
const TRIAL_TIMEOUT: Duration = Duration::from_secs(30);

/// containerd on the node.
#[derive(Debug)]
pub struct Containerd<'h> {
    host: &'h Host,
    /// The main configuration file (host path).
    pub config: PathBuf,
    /// containerd's major version.
    pub major: u32,
    /// The version string, as `containerd --version` prints it.
    pub version: String,
    /// Whether a relative glob in `imports` is relative to the importing file (1.7.16 and
    /// later) rather than to containerd's working directory.
    globs_relative_to_file: bool,
}

/// A configuration file containerd loads, parsed for editing.
#[derive(Debug)]
pub struct Loaded {
    /// Host path.
    pub path: PathBuf,
    /// Its document (empty when the file does not exist).
    pub doc: DocumentMut,
    /// Whether the file exists.
    pub exists: bool,
}

/// Which file to edit, and how its keys are laid out.
#[derive(Debug)]
pub struct Owner {
    /// The file (host path) and its document.
    pub file: Loaded,
    /// Its layout.
    pub layout: Layout,
}

impl<'h> Containerd<'h> {
    /// Finds containerd on the host and its version.
    pub fn detect(host: &'h Host, config: PathBuf) -> Result<Containerd<'h>, NodeError> {
        let out = host
            .command("containerd")
            .arg("--version")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| NodeError::Command {
                what: "containerd --version".into(),
                message: e.to_string(),
            })?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (major, version) = parse_version(&text).ok_or_else(|| NodeError::Command {
            what: "containerd --version".into(),
            message: format!("cannot read a version in `{}`", text.trim()),
        })?;
        if !(1..=2).contains(&major) {
            return Err(NodeError::Refused(format!(
                "containerd {version}: moat-node knows containerd 1.x and 2.x"
            )));
        }
        Ok(Containerd {
            host,
            config,
            major,
            globs_relative_to_file: at_least(&version, (1, 7, 16)),
            version,
        })
    }

    /// `containerd --config FILE config dump`: the effective configuration, imports
    /// merged, every plugin's settings decoded onto its defaults.
    pub fn dump(&self) -> Result<(String, toml::Table), NodeError> {
        let out = self
            .host
            .command("containerd")
            .arg("--config")
            .arg(&self.config)
            .args(["config", "dump"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| NodeError::Command {
                what: "containerd config dump".into(),
                message: e.to_string(),
            })?;
        if !out.status.success() {
            return Err(NodeError::Command {
                what: format!("containerd --config {} config dump", self.config.display()),
                message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let data = cfg::parse_data(Path::new("containerd config dump"), &text)?;
        Ok((text, data))
    }

    /// The files containerd loads, in its order: the main file, then its imports
    /// breadth-first (globs expanded in sorted order, relative paths against the importing
    /// file's directory), each once.
    pub fn load_order(&self) -> Result<Vec<Loaded>, NodeError> {
        let mut out: Vec<Loaded> = Vec::new();
        let mut pending = vec![self.config.clone()];
        while !pending.is_empty() {
            let path = pending.remove(0);
            if out.iter().any(|l| l.path == path) {
                continue;
            }
            let local = self.host.path(&path);
            let (text, exists) = match std::fs::read_to_string(&local) {
                Ok(t) => (t, true),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && out.is_empty() => {
                    (String::new(), false)
                }
                Err(e) => {
                    return Err(NodeError::File(crate::files::FileError {
                        path: local,
                        source: e,
                    }))
                }
            };
            let doc = cfg::parse(&path, &text)?;
            let dir = path.parent().unwrap_or(Path::new("/")).to_path_buf();
            for import in doc
                .get("imports")
                .and_then(toml_edit::Item::as_array)
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str())
            {
                if import.contains('*') {
                    // Before 1.7.16 a relative pattern is matched against containerd's
                    // working directory, `/` under systemd (and for moat-node's commands).
                    let base = if self.globs_relative_to_file {
                        dir.as_path()
                    } else {
                        Path::new("/")
                    };
                    pending.extend(self.glob(&base.join(import)));
                } else {
                    pending.push(dir.join(import));
                }
            }
            out.push(Loaded { path, doc, exists });
        }
        Ok(out)
    }

    fn glob(&self, pattern: &Path) -> Vec<PathBuf> {
        let local = self.host.path(pattern);
        let mut found: Vec<PathBuf> = glob::glob(&local.to_string_lossy())
            .map(|paths| {
                paths
                    .flatten()
                    .filter_map(|p| {
                        p.strip_prefix(self.host.root())
                            .ok()
                            .map(|r| Path::new("/").join(r))
                    })
                    .collect()
            })
            .unwrap_or_default();
        found.sort();
        found
    }

    /// The file whose edit decides the CRI plugin's runtimes, and its layout. containerd
    /// 1.x: the last file in load order that defines the CRI plugin's section (each one
    /// replaces the section of those before), else the main file; the layout is the
    /// merged version's (the last file that sets one). containerd 2.x merges deeply: the
    /// main file, in its own version.
    pub fn owner(&self, files: Vec<Loaded>) -> Result<Owner, NodeError> {
        let fresh = if self.major >= 2 { 3 } else { 2 };
        let main_version = files.first().map(|f| {
            if f.exists {
                cfg::version_of(&f.doc)
            } else {
                fresh
            }
        });
        if self.major >= 2 {
            let file = files.into_iter().next().ok_or_else(no_main)?;
            let layout = Layout::from_version(main_version.unwrap_or(fresh), &file.path)?;
            return Ok(Owner { file, layout });
        }
        let merged = files
            .iter()
            .map(|f| {
                if f.exists {
                    cfg::version_of(&f.doc)
                } else {
                    fresh
                }
            })
            .rfind(|v| *v != 0)
            .unwrap_or(1);
        let layout = Layout::from_version(merged, &self.config)?;
        let at = files
            .iter()
            .rposition(|f| cfg::defines_cri(&f.doc, layout))
            .unwrap_or(0);
        let file = files.into_iter().nth(at).ok_or_else(no_main)?;
        Ok(Owner { file, layout })
    }

    /// The loaded file that registers `moat`, for `uninstall`.
    pub fn moat_owner(&self, files: Vec<Loaded>) -> Option<Owner> {
        files.into_iter().rev().find_map(|file| {
            [Layout::V1, Layout::V2, Layout::V3]
                .into_iter()
                .find(|l| cfg::runtimes(&file.doc, *l).is_some_and(|r| r.contains_key(HANDLER)))
                .map(|layout| Owner { file, layout })
        })
    }

    /// Starts a second containerd on the configuration `dump` (the node's effective one),
    /// with its own root, state and sockets under `work`, and checks that it loads the
    /// CRI plugin: `config dump` decodes the settings, but only the plugin's own start
    /// validates them (a default runtime that does not exist, for one). Stops it and
    /// removes everything it made.
    pub fn trial(&self, dump: &str, work: &Path) -> Result<(), NodeError> {
        let base = work.join(format!("trial-{}", std::process::id()));
        let local = self.host.path(&base);
        remove_tree(&local);
        std::fs::create_dir_all(&local).map_err(|source| crate::files::FileError {
            path: local.clone(),
            source,
        })?;
        let dirs = TrialDirs { base: base.clone() };
        let result = self.run_trial(dump, &dirs, &local);
        remove_tree(&local);
        result
    }

    fn run_trial(&self, dump: &str, dirs: &TrialDirs, local: &Path) -> Result<(), NodeError> {
        let config = cfg::trial_config(dump, dirs)?;
        crate::files::write_atomic(&local.join("config.toml"), config.as_bytes(), 0o600)?;
        let log_path = local.join("containerd.log");
        let log = std::fs::File::create(&log_path).map_err(|source| crate::files::FileError {
            path: log_path.clone(),
            source,
        })?;
        let log2 = log.try_clone().map_err(|source| crate::files::FileError {
            path: log_path.clone(),
            source,
        })?;
        let mut child = self
            .host
            .command("containerd")
            .arg("--config")
            .arg(dirs.base.join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| NodeError::Command {
                what: "containerd (trial)".into(),
                message: e.to_string(),
            })?;
        let socket = dirs.socket();
        let deadline = Instant::now() + TRIAL_TIMEOUT;
        let verdict = loop {
            if let Ok(Some(status)) = child.try_wait() {
                break Err(format!("it exited ({status})"));
            }
            if self.host.path(&socket).exists() {
                if let Ok(plugins) = self.plugins(&socket) {
                    break cri_verdict(&plugins);
                }
            }
            if Instant::now() > deadline {
                break Err(format!("it did not answer within {TRIAL_TIMEOUT:?}"));
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        stop(&mut child);
        verdict.map_err(|why| {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            NodeError::Trial {
                why,
                log: plugin_errors(&log),
            }
        })
    }

    /// `ctr plugins ls` against `socket` (host path): (type, id, status) of each plugin.
    pub fn plugins(&self, socket: &Path) -> Result<Vec<(String, String, String)>, String> {
        let out = self
            .host
            .command("ctr")
            .arg("--address")
            .arg(socket)
            .args(["plugins", "ls"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("ctr: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .skip(1)
            .filter_map(|l| {
                let cols: Vec<&str> = l.split_whitespace().collect();
                Some((
                    cols.first()?.to_string(),
                    cols.get(1)?.to_string(),
                    cols.last()?.to_string(),
                ))
            })
            .collect())
    }

    /// Waits until the node's containerd answers on `socket` with its CRI plugin loaded.
    pub fn wait_ready(&self, socket: &Path, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let mut last = String::from("no answer");
        while Instant::now() < deadline {
            match self.plugins(socket) {
                Ok(p) => match cri_verdict(&p) {
                    Ok(()) => return Ok(()),
                    Err(e) => return Err(e),
                },
                Err(e) => last = e,
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Err(format!(
            "containerd did not answer on {} within {timeout:?}: {last}",
            socket.display()
        ))
    }
}

fn no_main() -> NodeError {
    NodeError::Config(ConfigError::Node("no configuration file to edit".into()))
}

/// Reads containerd's version (`v1.7.0`, `1.6.20~ds1`, `2.0.0`) from `--version` output.
pub fn parse_version(text: &str) -> Option<(u32, String)> {
    text.split_whitespace().find_map(|w| {
        let v = w.strip_prefix('v').unwrap_or(w);
        let mut parts = v.split('.');
        let major: u32 = parts.next()?.parse().ok()?;
        let minor = parts.next()?;
        minor
            .chars()
            .next()
            .filter(char::is_ascii_digit)
            .map(|_| (major, v.to_string()))
    })
}

/// Whether version `v` (`1.7.16`, `1.6.20~ds1`) is `min` or later.
pub fn at_least(v: &str, min: (u32, u32, u32)) -> bool {
    let mut n = v.split(['.', '~', '-', '+']).map(|p| {
        p.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse::<u32>()
            .unwrap_or(0)
    });
    let got = (
        n.next().unwrap_or(0),
        n.next().unwrap_or(0),
        n.next().unwrap_or(0),
    );
    got >= min
}

/// The CRI plugin (1.x: `io.containerd.grpc.v1 cri`; 2.x also `io.containerd.cri.v1
/// runtime` and `images`) is listed and every part of it is `ok`.
pub fn cri_verdict(plugins: &[(String, String, String)]) -> Result<(), String> {
    let cri: Vec<_> = plugins
        .iter()
        .filter(|(t, id, _)| {
            (t == "io.containerd.grpc.v1" && id == "cri") || t.starts_with("io.containerd.cri.")
        })
        .collect();
    if !cri
        .iter()
        .any(|(t, id, _)| t == "io.containerd.grpc.v1" && id == "cri")
    {
        return Err("the CRI plugin (io.containerd.grpc.v1.cri) is not listed".into());
    }
    let bad: Vec<String> = cri
        .iter()
        .filter(|(_, _, s)| s != "ok")
        .map(|(t, id, s)| format!("{t}.{id}: {s}"))
        .collect();
    if bad.is_empty() {
        Ok(())
    } else {
        Err(format!("the CRI plugin did not load ({})", bad.join(", ")))
    }
}

/// containerd's own lines about plugins that failed to load.
fn plugin_errors(log: &str) -> String {
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("failed to load plugin") || l.contains("level=fatal"))
        .collect();
    if lines.is_empty() {
        log.lines().rev().take(5).collect::<Vec<_>>().join("\n")
    } else {
        lines.join("\n")
    }
}

/// SIGTERM, up to 10 s, then SIGKILL.
fn stop(child: &mut std::process::Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: signalling our own child, which has not been reaped yet.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Removes a trial directory: mounts under it first (lazily), so that nothing of the
/// node's is ever deleted through one.
fn remove_tree(dir: &Path) {
    if !dir.exists() {
        return;
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut under: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| Path::new(m).starts_with(dir))
        .collect();
    under.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for m in &under {
        if let Ok(c) = std::ffi::CString::new(*m) {
            // SAFETY: a NUL-terminated path; MNT_DETACH has no other requirement.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    }
    let still: bool = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|m| Path::new(m).starts_with(dir));
    if !still {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// What the effective configuration says, with a clear error when the CRI plugin is off.
pub fn effective(dump: &toml::Table) -> Result<Effective, NodeError> {
    let eff = Effective::from_dump(dump)?;
    if eff.cri_disabled {
        return Err(NodeError::Refused(
            "the CRI plugin is in containerd's disabled_plugins: Kubernetes does not use this containerd".into(),
        ));
    }
    Ok(eff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        let v = parse_version;
        assert_eq!(
            v("containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+deb12u3\n"),
            Some((1, "1.6.20~ds1".into()))
        );
        assert_eq!(
            v("containerd containerd.io v1.7.0 1fbd70374134b891f97ce19c70b6e50c7b9f4e0d\n"),
            Some((1, "1.7.0".into()))
        );
        assert_eq!(
            v("containerd github.com/containerd/containerd/v2 v2.0.0 207ad71\n"),
            Some((2, "2.0.0".into()))
        );
        assert_eq!(v("nothing here"), None);
    }

    #[test]
    fn version_order() {
        assert!(!at_least("1.6.20~ds1", (1, 7, 16)));
        assert!(!at_least("1.7.15", (1, 7, 16)));
        assert!(at_least("1.7.16", (1, 7, 16)));
        assert!(at_least("2.0.0", (1, 7, 16)));
    }

    #[test]
    fn the_cri_plugin_must_be_listed_and_ok() {
        let p = |rows: &[(&str, &str, &str)]| -> Vec<(String, String, String)> {
            rows.iter()
                .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
                .collect()
        };
        assert!(cri_verdict(&p(&[("io.containerd.grpc.v1", "cri", "ok")])).is_ok());
        assert!(
            cri_verdict(&p(&[("io.containerd.grpc.v1", "cri", "error")]))
                .unwrap_err()
                .contains("did not load")
        );
        assert!(cri_verdict(&p(&[
            ("io.containerd.cri.v1", "runtime", "error"),
            ("io.containerd.grpc.v1", "cri", "ok")
        ]))
        .is_err());
        assert!(cri_verdict(&p(&[("io.containerd.grpc.v1", "tasks", "ok")])).is_err());
    }
}
