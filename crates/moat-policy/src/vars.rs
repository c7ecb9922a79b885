//! `${NAME}` variables in policy paths.

use crate::error::PolicyError;
use std::collections::BTreeMap;

/// Values for the variables a policy path may use. A variable may stand for several values
/// (landlockconfig allows this); a path using it then becomes one rule per value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Vars {
    values: BTreeMap<String, Vec<String>>,
    /// Built-ins are read from the process when first used, not up front: most launches
    /// use one or none of them, and each costs a syscall or an environment scan.
    process: bool,
}

/// Whether a policy path is anchored: absolute, or starting with a `${VARIABLE}` that moat
/// expands to an absolute path. A path that is not is relative: policy documents refuse it,
/// and the places that accept one resolve it in
/// one of two different ways, named apart on purpose: [`under_cwd`] keeps it symbolic
/// (landlockconfig documents), while `moat run`'s path flags resolve it at once against the
/// process's working directory and normalise `.` and `..` away. (moat-runtime's bundle
/// directory is a third thing again: a real path, canonicalised on the host.)
pub fn is_anchored(path: &str) -> bool {
    path.starts_with('/') || path.starts_with("${")
}

/// A path relative to the working directory, written against `${CWD}`: `.` becomes
/// `${CWD}`, `x` and `./x` become `${CWD}/x`; an anchored path ([`is_anchored`]) is
/// returned as it is. No I/O and no normalisation: moat expands `${CWD}` when it plans the
/// sandbox, in the process that enforces it.
pub fn under_cwd(path: &str) -> String {
    if is_anchored(path) {
        return path.to_string();
    }
    let rest = path.strip_prefix("./").unwrap_or(path);
    if rest == "." || rest.is_empty() {
        "${CWD}".to_string()
    } else {
        format!("${{CWD}}/{rest}")
    }
}

/// The names of moat's built-in variables.
pub const BUILTINS: [&str; 6] = ["HOME", "CWD", "TMPDIR", "USER", "UID", "GID"];

/// One built-in variable's value for this process, if it has one.
fn builtin(name: &str) -> Option<String> {
    match name {
        "HOME" => std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(|h| h.to_string_lossy().into_owned()),
        "CWD" => std::env::current_dir()
            .ok()
            .map(|c| c.to_string_lossy().into_owned()),
        "TMPDIR" => Some(
            std::env::var("TMPDIR")
                .ok()
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| "/tmp".to_string()),
        ),
        "USER" => std::env::var("USER").ok(),
        "UID" => proc_ids().map(|(uid, _)| uid),
        "GID" => proc_ids().map(|(_, gid)| gid),
        _ => None,
    }
}

impl Vars {
    /// No variables.
    pub fn new() -> Self {
        Vars::default()
    }

    /// moat's built-in variables, read from this process: `HOME`, `CWD`, `TMPDIR` (default
    /// `/tmp`), `USER`, `UID` and `GID`. A built-in that has no value here is left undefined
    /// so that a policy using it fails with a clear error instead of meaning `/`.
    pub fn from_process() -> Self {
        Vars {
            values: BTreeMap::new(),
            process: true,
        }
    }

    /// Sets a variable to one value.
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        self.values.insert(name.to_string(), vec![value.into()]);
    }

    /// Sets a variable to several values.
    pub fn set_many(&mut self, name: &str, values: Vec<String>) {
        self.values.insert(name.to_string(), values);
    }

    /// The names defined, comma separated, for messages.
    pub fn known(&self) -> String {
        let mut names: Vec<String> = self.values.keys().cloned().collect();
        if self.process {
            names.extend(
                BUILTINS
                    .iter()
                    .filter(|b| builtin(b).is_some())
                    .map(|b| b.to_string()),
            );
            names.sort();
            names.dedup();
        }
        if names.is_empty() {
            return "none".to_string();
        }
        names.join(", ")
    }

    /// Expands every `${NAME}` in `path`; a multi-valued variable multiplies the result.
    pub fn expand(&self, path: &str, origin: &str) -> Result<Vec<String>, PolicyError> {
        if !path.as_bytes().contains(&b'$') {
            // Most paths name no variable: no search for `${` (on the launch path).
            return Ok(vec![path.to_string()]);
        }
        let mut results = vec![String::new()];
        let mut rest = path;
        while let Some(start) = rest.find("${") {
            let Some(len) = rest[start + 2..].find('}') else {
                return Err(PolicyError::Invalid {
                    origin: origin.to_string(),
                    message: format!("unterminated `${{` in `{path}`"),
                });
            };
            let name = &rest[start + 2..start + 2 + len];
            let literal = &rest[..start];
            let from_process;
            let values = match self.values.get(name) {
                Some(v) => v,
                None => {
                    from_process = self.process.then(|| builtin(name)).flatten();
                    match &from_process {
                        Some(v) => std::slice::from_ref(v),
                        None => {
                            return Err(PolicyError::UndefinedVariable {
                                origin: origin.to_string(),
                                path: path.to_string(),
                                name: name.to_string(),
                                known: self.known(),
                            })
                        }
                    }
                }
            };
            let mut next = Vec::with_capacity(results.len() * values.len());
            for r in &results {
                for v in values {
                    next.push(format!("{r}{literal}{v}"));
                }
            }
            results = next;
            rest = &rest[start + 2 + len + 1..];
        }
        for r in &mut results {
            r.push_str(rest);
        }
        Ok(results)
    }
}

/// The process's uid and gid: `/proc/self` is owned by them. One `stat`, and no libc
/// dependency in this pure crate.
fn proc_ids() -> Option<(String, String)> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata("/proc/self").ok()?;
    Some((meta.uid().to_string(), meta.gid().to_string()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn relative_paths_are_written_under_cwd() {
        assert_eq!(under_cwd("."), "${CWD}");
        assert_eq!(under_cwd("./"), "${CWD}");
        assert_eq!(under_cwd("a/b"), "${CWD}/a/b");
        assert_eq!(under_cwd("./a"), "${CWD}/a");
        assert_eq!(under_cwd("/etc"), "/etc");
        assert_eq!(under_cwd("${HOME}/x"), "${HOME}/x");
        assert!(is_anchored("/") && is_anchored("${TMPDIR}") && !is_anchored("x/${HOME}"));
    }

    use super::*;

    #[test]
    fn builtins_come_from_the_process_on_demand() {
        let v = Vars::from_process();
        let cwd = std::env::current_dir()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert_eq!(
            v.expand("${CWD}/x", "t").ok(),
            Some(vec![format!("{cwd}/x")])
        );
        assert!(v.expand("${UID}", "t").is_ok());
        assert!(v.known().contains("CWD"));
        assert!(matches!(
            v.expand("${NOPE}", "t"),
            Err(PolicyError::UndefinedVariable { .. })
        ));
        assert!(matches!(
            Vars::new().expand("${CWD}", "t"),
            Err(PolicyError::UndefinedVariable { .. })
        ));
    }

    #[test]
    fn expands_and_multiplies() {
        let mut v = Vars::new();
        v.set("HOME", "/home/a");
        v.set_many("D", vec!["/x".into(), "/y".into()]);
        assert_eq!(
            v.expand("${HOME}/.cache", "t").ok(),
            Some(vec!["/home/a/.cache".into()])
        );
        assert_eq!(
            v.expand("${D}/z", "t").ok(),
            Some(vec!["/x/z".into(), "/y/z".into()])
        );
        assert_eq!(v.expand("/plain", "t").ok(), Some(vec!["/plain".into()]));
        assert!(matches!(
            v.expand("${NOPE}/a", "t"),
            Err(PolicyError::UndefinedVariable { .. })
        ));
        assert!(matches!(
            v.expand("${HOME", "t"),
            Err(PolicyError::Invalid { .. })
        ));
    }
}
