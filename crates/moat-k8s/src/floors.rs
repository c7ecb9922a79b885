//! Namespace floors: what every confined pod of an enforced namespace gets at least,
//! whatever its author writes.
//!
//! An AdmissionReview carries no Namespace object and the webhook has no API client, so
//! the floors come from the webhook's own configuration: a TOML file (`--floors FILE`,
//! typically mounted from a ConfigMap), read again when it changes. A file that does not
//! parse at start stops the webhook; one that stops parsing later is reported and the
//! floors in force stay. Without a file every enforced namespace gets the default floor.
//!
//! ```toml
//! [default]                    # every enforced namespace not listed below
//! best_effort = false          # may a pod ask for moat.dev/compat: best-effort?
//! allow_privileged = false     # privileged containers, SYS_ADMIN & co, hostPID
//! # policy = '''...'''         # a policy (any dialect moat reads), or:
//! # preset = "minimal"
//!
//! [namespace.shop]
//! policy = '''
//! [filesystem]
//! read_exec = ["/usr", "/bin", "/lib"]
//! read = ["/etc"]
//! write = ["/tmp"]
//! '''
//! ```
//!
//! Every floor binds only the declared containerPorts (TCP); its `policy`, if any, is
//! intersected with that. A container's effective policy is its author's policy (as
//! [`crate::pod_policy`] finishes it) intersected with the floor, in one ruleset
//! ([`moat_policy::Policy::intersect`]): an allow-all author policy changes nothing, and the
//! author's own restrictions still hold. A pod that opted itself in from a namespace that
//! does not enforce moat has no floor: its author is the one who asked.

use moat_policy::{presets, Compat, Policy};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

/// A floors file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct FloorsError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong, naming the table and key.
    pub message: String,
}

/// One namespace's floor.
#[derive(Debug, Clone, Default)]
pub struct Floor {
    /// The mandatory policy besides "bind only the declared ports", if any.
    pub policy: Option<Arc<Policy>>,
    /// Whether a pod may ask for `moat.dev/compat: best-effort`.
    pub best_effort: bool,
    /// Whether confined pods may run what Landlock cannot hold.
    pub allow_privileged: bool,
    /// Everything above as written, for caches keyed on the floor.
    pub fingerprint: Arc<str>,
}

impl Floor {
    /// The floor for a container declaring `ports`: bind only those, and the policy.
    pub fn for_ports(&self, ports: &[u16]) -> Policy {
        let base = Policy::bind_tcp_only(
            ports.iter().copied(),
            "the namespace's floor: the declared containerPorts",
        );
        match &self.policy {
            Some(p) => base.intersect(Policy::clone(p)),
            None => base,
        }
    }

    /// `policy` (the author's, finished) with this floor: both in one ruleset, and strict
    /// unless the floor allows best-effort.
    pub fn apply(&self, policy: &Policy, ports: &[u16]) -> Policy {
        let mut p = Policy::clone(policy).intersect(self.for_ports(ports));
        if !self.best_effort {
            p.compat = Some(Compat::Strict);
        }
        p
    }
}

/// The floors of every enforced namespace.
#[derive(Debug, Clone, Default)]
pub struct Floors {
    /// For namespaces not listed.
    pub default: Floor,
    /// By namespace name.
    pub namespaces: BTreeMap<String, Floor>,
}

impl Floors {
    /// The floor of `namespace`.
    pub fn for_namespace(&self, namespace: &str) -> &Floor {
        self.namespaces.get(namespace).unwrap_or(&self.default)
    }

    /// Reads a floors file.
    pub fn load(path: &Path) -> Result<Floors, FloorsError> {
        let text = std::fs::read_to_string(path).map_err(|e| FloorsError {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Floors::parse(path, &text)
    }

    /// Parses a floors file's text.
    pub fn parse(path: &Path, text: &str) -> Result<Floors, FloorsError> {
        let bad = |message: String| FloorsError {
            path: path.to_path_buf(),
            message,
        };
        let table: toml::Table = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        let mut floors = Floors::default();
        for (key, value) in table {
            match key.as_str() {
                "default" => {
                    let t = value
                        .as_table()
                        .ok_or_else(|| bad("`default` must be a table".into()))?;
                    floors.default = floor(t, "default").map_err(bad)?;
                }
                "namespace" => {
                    let t = value.as_table().ok_or_else(|| {
                        bad("`namespace` must be a table of namespaces ([namespace.NAME])".into())
                    })?;
                    for (ns, v) in t {
                        let where_ = format!("namespace.{ns}");
                        let t = v
                            .as_table()
                            .ok_or_else(|| bad(format!("`{where_}` must be a table")))?;
                        floors
                            .namespaces
                            .insert(ns.clone(), floor(t, &where_).map_err(bad)?);
                    }
                }
                other => return Err(bad(format!("unknown key `{other}` (default, namespace)"))),
            }
        }
        Ok(floors)
    }
}

/// One `[default]` or `[namespace.NAME]` table.
fn floor(t: &toml::Table, at: &str) -> Result<Floor, String> {
    let mut f = Floor::default();
    let mut text: Option<(String, String)> = None;
    for (k, v) in t {
        let flag = || {
            v.as_bool()
                .ok_or_else(|| format!("`{at}.{k}` must be true or false"))
        };
        let string = || {
            v.as_str()
                .map(str::to_string)
                .ok_or_else(|| format!("`{at}.{k}` must be a string"))
        };
        match k.as_str() {
            "best_effort" => f.best_effort = flag()?,
            "allow_privileged" => f.allow_privileged = flag()?,
            "policy" | "preset" if text.is_some() => {
                return Err(format!("`{at}`: give `policy` or `preset`, not both"))
            }
            "policy" | "preset" => text = Some((k.clone(), string()?)),
            other => {
                return Err(format!(
                    "unknown key `{at}.{other}` (policy, preset, best_effort, allow_privileged)"
                ))
            }
        }
    }
    if let Some((kind, value)) = &text {
        let origin = format!("floors {at}.{kind}");
        let parsed = if kind == "preset" {
            presets::load(value.trim())
        } else {
            moat_policy::parse_str(&origin, value)
        }
        .map_err(|e| format!("`{at}.{kind}`: {e}"))?;
        // A variable is read in the container, from its environment and working directory,
        // which the pod's author sets: a floor built on one would be the author's to move.
        let with_var = parsed
            .fs
            .rules
            .iter()
            .map(|r| r.path.as_str())
            .chain(parsed.fs.except.iter().map(|e| e.path.as_str()))
            .find(|p| p.contains('$'));
        if let Some(p) = with_var {
            return Err(format!(
                "`{at}.{kind}`: `{p}`: a floor cannot use ${{VARIABLES}} (the pod sets them \
                 through its environment and working directory); name the paths"
            ));
        }
        f.policy = Some(Arc::new(parsed));
    }
    f.fingerprint = format!("{}|{}|{:?}", f.best_effort, f.allow_privileged, text).into();
    Ok(f)
}

/// What the webhook enforces beyond the pod's own annotations: the floors, and the
/// namespaces allowed privileged pods from the command line.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    /// The floors in force.
    pub floors: Floors,
    /// Namespaces from `--allow-privileged`.
    pub privileged_namespaces: BTreeSet<String>,
}

impl Rules {
    /// Whether confined pods of `namespace` may run what Landlock cannot hold.
    pub fn allows_privileged(&self, namespace: &str) -> bool {
        self.privileged_namespaces.contains(namespace)
            || self.floors.for_namespace(namespace).allow_privileged
    }
}

/// The rules in force, and the floors file they are read from again when it changes.
#[derive(Debug, Default)]
pub struct Live {
    current: RwLock<Arc<Rules>>,
    file: Option<PathBuf>,
    seen: Mutex<Option<Stamp>>,
}

/// What tells a changed file: ConfigMap updates replace a symbolic link, so the target's
/// identity and time are compared, not only the time.
type Stamp = (u64, u64, i64, i64, u64);

fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.dev(), m.ino(), m.mtime(), m.mtime_nsec(), m.size()))
}

impl Live {
    /// Rules from `file` (when given) and the privileged namespaces; an unusable file is an
    /// error.
    pub fn load(file: Option<PathBuf>, privileged: BTreeSet<String>) -> Result<Live, FloorsError> {
        let floors = match &file {
            Some(f) => Floors::load(f)?,
            None => Floors::default(),
        };
        let seen = file.as_deref().and_then(stamp);
        Ok(Live {
            current: RwLock::new(Arc::new(Rules {
                floors,
                privileged_namespaces: privileged,
            })),
            file,
            seen: Mutex::new(seen),
        })
    }

    /// The rules in force.
    pub fn current(&self) -> Arc<Rules> {
        match self.current.read() {
            Ok(r) => Arc::clone(&r),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Reads the floors file again if it changed. `Ok(true)`: new floors in force;
    /// `Ok(false)`: unchanged; `Err`: it changed and cannot be used, the old floors stay.
    pub fn reload_if_changed(&self) -> Result<bool, FloorsError> {
        let Some(file) = &self.file else {
            return Ok(false);
        };
        let now = stamp(file);
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if now == *seen {
            return Ok(false);
        }
        *seen = now;
        let floors = Floors::load(file)?;
        let privileged = self.current().privileged_namespaces.clone();
        let mut cur = self.current.write().unwrap_or_else(|p| p.into_inner());
        *cur = Arc::new(Rules {
            floors,
            privileged_namespaces: privileged,
        });
        Ok(true)
    }

    /// The floors file, if any.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use moat_policy::NetRight;

    #[test]
    fn a_file_with_a_default_and_namespaces() {
        let f = Floors::parse(
            Path::new("floors.toml"),
            "[default]\nbest_effort = true\n\n[namespace.shop]\npolicy = '''\n[filesystem]\nread = [\"/etc\"]\n'''\nallow_privileged = true\n\n[namespace.web]\npreset = \"minimal\"\n",
        )
        .unwrap();
        assert!(f.for_namespace("other").best_effort);
        assert!(f.for_namespace("other").policy.is_none());
        let shop = f.for_namespace("shop");
        assert!(!shop.best_effort && shop.allow_privileged);
        assert!(shop.policy.is_some());
        assert!(f.for_namespace("web").policy.is_some());
        assert_ne!(shop.fingerprint, f.default.fingerprint);
    }

    #[test]
    fn bad_files_name_the_key() {
        for (text, needle) in [
            ("[default]\nbest_effort = \"yes\"\n", "default.best_effort"),
            (
                "[namespace.shop]\npolicy = \"[filesystem\"\n",
                "namespace.shop.policy",
            ),
            (
                "[namespace.shop]\npreset = \"nope\"\n",
                "namespace.shop.preset",
            ),
            (
                "[namespace.shop]\npreset = \"web-server\"\npolicy = \"\"\n",
                "not both",
            ),
            ("[namespace.shop]\nbogus = 1\n", "namespace.shop.bogus"),
            (
                "[namespace.shop]\npreset = \"default\"\n",
                "cannot use ${VARIABLES}",
            ),
            (
                "[default]\npolicy = \"[filesystem]\\nread = [\\\"${HOME}\\\"]\\n\"\n",
                "`${HOME}`",
            ),
            ("floor = 1\n", "unknown key `floor`"),
            ("[default\n", "floors.toml"),
        ] {
            let e = Floors::parse(Path::new("floors.toml"), text)
                .unwrap_err()
                .to_string();
            assert!(e.contains(needle), "{text:?}: {e}");
        }
    }

    #[test]
    fn the_floor_applies_in_addition() {
        let floor = Floor::default();
        let mut allow_all = Policy::allow_all();
        allow_all.lift_filesystem();
        allow_all.lift_network();
        allow_all.compat = Some(Compat::BestEffort);
        let p = floor.apply(&allow_all, &[80]);
        assert_eq!(p.compat, Some(Compat::Strict));
        let bind: Vec<u16> = p
            .net
            .rules
            .iter()
            .filter(|r| r.access.contains(NetRight::BindTcp))
            .flat_map(|r| r.ports.ports())
            .collect();
        assert_eq!(bind, [80]);
        assert!(p.net.handled.contains(NetRight::BindTcp));
    }
}
