//! Finding the target program and replacing moat with it.

use crate::plan::Plan;
use crate::remedy::{Advised, Frame, Remedy};
use moat_policy::{EnvPolicy, FsRight};
use std::ffi::{c_char, CString, OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Why the target did not start. `exec` only ever returns this.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// No such program (exit 127).
    #[error("{cmd}: command not found")]
    NotFound {
        /// The command as given.
        cmd: String,
    },
    /// The sandbox's policy denied execute (exit 126).
    #[error("cannot execute {}: the sandbox policy denies `execute` on {}{}", program.display(), lacking.display(), .which.suffix())]
    PolicyDenied {
        /// The program.
        program: PathBuf,
        /// The file that lacks execute: the program or its interpreter.
        lacking: PathBuf,
        /// Which of the two it is.
        which: Lacking,
    },
    /// Any other exec failure (exit 126, or 127 for ENOENT of an interpreter).
    #[error("cannot execute {}: {source}", program.display())]
    Failed {
        /// The program.
        program: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// Which file of a program lacks `execute`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lacking {
    /// The program itself.
    Program,
    /// Its interpreter (`#!` line or ELF `PT_INTERP`).
    Interpreter,
}

impl Lacking {
    fn suffix(self) -> &'static str {
        match self {
            Lacking::Program => "",
            Lacking::Interpreter => " (its interpreter)",
        }
    }

    /// The narrower remedy, after a grant on a directory above the file: execute on the
    /// program alone, or the program's ELF dependencies.
    fn narrower(self) -> Remedy {
        match self {
            Lacking::Program => Remedy::GrantProgram,
            Lacking::Interpreter => Remedy::GrantDependencies,
        }
    }
}

impl Advised for ExecError {
    fn remedies(&self) -> Vec<Remedy> {
        match self {
            ExecError::PolicyDenied { lacking, which, .. } => vec![
                Remedy::GrantExecAbove {
                    path: lacking.clone(),
                },
                which.narrower(),
            ],
            ExecError::NotFound { .. } | ExecError::Failed { .. } => Vec::new(),
        }
    }

    fn advice_frame(&self) -> Option<Frame> {
        match self {
            ExecError::PolicyDenied { .. } => Some(Frame {
                before: "; ",
                between: " or ",
                after: "",
            }),
            ExecError::NotFound { .. } | ExecError::Failed { .. } => None,
        }
    }
}

impl ExecError {
    /// The exit status a launcher reports: 127 for not found, 126 for not executable.
    pub fn exit_code(&self) -> i32 {
        match self {
            ExecError::NotFound { .. } => 127,
            ExecError::PolicyDenied { .. } => 126,
            ExecError::Failed { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                127
            }
            ExecError::Failed { .. } => 126,
        }
    }
}

/// The program to run, resolved before the sandbox closes (a restricted PATH search
/// could fail in confusing ways).
#[derive(Clone, Debug)]
pub struct Target {
    /// The resolved path.
    pub program: PathBuf,
    /// `argv[0]`, as the user wrote the command.
    pub argv0: OsString,
    /// The other arguments.
    pub args: Vec<OsString>,
}

impl Target {
    /// Resolves `cmd` like a shell does: a name with a slash is a path, anything else is
    /// looked up in `path_var` (the target's PATH).
    pub fn resolve(
        cmd: &OsStr,
        args: Vec<OsString>,
        path_var: Option<&OsStr>,
    ) -> Result<Target, ExecError> {
        let program = if cmd.as_bytes().contains(&b'/') {
            PathBuf::from(cmd)
        } else {
            search_path(cmd, path_var).ok_or_else(|| ExecError::NotFound {
                cmd: cmd.to_string_lossy().into_owned(),
            })?
        };
        if cmd.is_empty() {
            return Err(ExecError::NotFound { cmd: String::new() });
        }
        // A path is not checked here: `execve` says whether it exists (and `exec` then
        // reports "command not found" as here), and a check on the launch path of every
        // command would cost a system call for an answer the exec gives anyway.
        Ok(Target {
            program,
            argv0: cmd.to_os_string(),
            args,
        })
    }
}

impl Target {
    /// Checks that the program exists, for callers that resolve it long before they run it
    /// (the watchdog refuses to start without its function).
    pub fn check_exists(&self) -> Result<(), ExecError> {
        match std::fs::metadata(&self.program) {
            Ok(_) => Ok(()),
            Err(_) => Err(ExecError::NotFound {
                cmd: self.argv0.to_string_lossy().into_owned(),
            }),
        }
    }
}

fn search_path(cmd: &OsStr, path_var: Option<&OsStr>) -> Option<PathBuf> {
    let default = OsStr::new("/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin");
    let path_var = path_var.unwrap_or(default);
    let mut first_existing = None;
    for dir in path_var.as_bytes().split(|&b| b == b':') {
        let dir = if dir.is_empty() {
            Path::new(".")
        } else {
            Path::new(OsStr::from_bytes(dir))
        };
        let candidate = dir.join(cmd);
        if candidate.is_file() {
            if is_executable(&candidate) {
                return Some(candidate);
            }
            first_existing.get_or_insert(candidate);
        }
    }
    first_existing
}

fn is_executable(path: &Path) -> bool {
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `c` is a valid NUL-terminated string.
    unsafe { libc::access(c.as_ptr(), libc::X_OK) == 0 }
}

/// The environment the target gets under `env`, or `None` when it inherits moat's own
/// unchanged (then exec passes `environ` through without copying it).
pub fn environment(env: &EnvPolicy) -> Option<Vec<(OsString, OsString)>> {
    if !env.clear && env.set.is_empty() {
        return None;
    }
    let mut out: Vec<(OsString, OsString)> = if env.clear {
        env.pass
            .iter()
            .filter_map(|k| std::env::var_os(k).map(|v| (OsString::from(k), v)))
            .collect()
    } else {
        std::env::vars_os().collect()
    };
    for (k, v) in &env.set {
        out.retain(|(key, _)| key != OsStr::new(k));
        out.push((k.into(), v.into()));
    }
    Some(out)
}

extern "C" {
    /// The process's environment, as `execve` takes it.
    static environ: *const *const c_char;
}

/// Replaces this process with the target. Returns only on failure.
///
/// A plain `execve`, like env(1) and a shell's `exec`: the program gets moat's signal mask
/// and dispositions as moat got them, and moat's own environment untouched unless `env`
/// says otherwise. (`std::process::Command::exec` would unblock every signal, reset
/// SIGPIPE and copy the environment on the way; it also cost moat a few thousand
/// instructions per launch, measured with bench/peers/icount.)
pub fn exec(
    target: &Target,
    env: Option<&[(OsString, OsString)]>,
    plan: Option<&Plan>,
) -> ExecError {
    let nul = || std::io::Error::from_raw_os_error(libc::EINVAL);
    let cstr = |s: &OsStr| CString::new(s.as_bytes()).map_err(|_| nul());
    let prepared = (|| -> std::io::Result<(CString, Vec<CString>, Option<Vec<CString>>)> {
        let program = cstr(target.program.as_os_str())?;
        let mut argv = Vec::with_capacity(target.args.len() + 1);
        argv.push(cstr(&target.argv0)?);
        for a in &target.args {
            argv.push(cstr(a)?);
        }
        let envp = match env {
            Some(env) => Some(
                env.iter()
                    .map(|(k, v)| {
                        let mut kv = Vec::with_capacity(k.len() + v.len() + 1);
                        kv.extend_from_slice(k.as_bytes());
                        kv.push(b'=');
                        kv.extend_from_slice(v.as_bytes());
                        CString::new(kv).map_err(|_| nul())
                    })
                    .collect::<std::io::Result<Vec<CString>>>()?,
            ),
            None => None,
        };
        Ok((program, argv, envp))
    })();
    let (program, argv, envp) = match prepared {
        Ok(p) => p,
        Err(e) => return explain(target, e, plan),
    };
    let pointers = |v: &[CString]| -> Vec<*const c_char> {
        v.iter()
            .map(|c| c.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect()
    };
    let argv_p = pointers(&argv);
    let envp_p = envp.as_deref().map(pointers);
    // SAFETY: NUL-terminated strings and NULL-terminated pointer arrays that outlive the
    // call; `environ` is the C library's own, valid for the process's life.
    unsafe {
        let envp = envp_p.as_ref().map_or(environ, |e| e.as_ptr());
        libc::execve(program.as_ptr(), argv_p.as_ptr(), envp);
    }
    explain(target, std::io::Error::last_os_error(), plan)
}

/// Turns an exec failure into a message that says whether the policy was the cause.
///
/// Runs after the sandbox is applied, which does not change these answers: Landlock checks
/// neither `stat` nor `access`, so `access(X_OK)` still tells a file mode problem from a
/// denied `execute` right.
fn explain(target: &Target, err: std::io::Error, plan: Option<&Plan>) -> ExecError {
    let program = target.program.clone();
    if err.raw_os_error() == Some(libc::ENOENT) && std::fs::symlink_metadata(&program).is_err() {
        return ExecError::NotFound {
            cmd: target.argv0.to_string_lossy().into_owned(),
        };
    }
    if err.raw_os_error() == Some(libc::EACCES) && is_executable(&program) {
        if let Some(plan) = plan {
            let canonical = std::fs::canonicalize(&program).unwrap_or_else(|_| program.clone());
            if !plan.grants(&canonical, FsRight::Execute) {
                return ExecError::PolicyDenied {
                    lacking: canonical,
                    program,
                    which: Lacking::Program,
                };
            }
            if let Some(interp) = crate::ldd::interpreter_of(&canonical) {
                let interp_c = std::fs::canonicalize(&interp).unwrap_or(interp);
                if !plan.grants(&interp_c, FsRight::Execute) {
                    return ExecError::PolicyDenied {
                        program,
                        lacking: interp_c,
                        which: Lacking::Interpreter,
                    };
                }
            }
        }
    }
    ExecError::Failed {
        program,
        source: err,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_and_reports_not_found() {
        let t = Target::resolve(
            OsStr::new("true"),
            vec![],
            Some(OsStr::new("/usr/bin:/bin")),
        )
        .unwrap();
        assert!(t.program.ends_with("true"));
        let e = Target::resolve(OsStr::new("no-such-moat-cmd"), vec![], None).unwrap_err();
        assert_eq!(e.exit_code(), 127);
        // A path is found out by the exec itself.
        let t = Target::resolve(OsStr::new("/no/such"), vec![], None).unwrap();
        let e = exec(&t, None, None);
        assert_eq!(e.exit_code(), 127);
        assert!(e.to_string().contains("command not found"), "{e}");
    }

    #[test]
    fn environment_clear_pass_set() {
        let env = environment(&EnvPolicy {
            clear: true,
            pass: vec!["PATH".into()],
            set: vec![("A".into(), "1".into())],
        })
        .unwrap();
        assert!(environment(&EnvPolicy::default()).is_none());
        assert!(env.iter().any(|(k, _)| k == "PATH"));
        assert!(env.iter().any(|(k, v)| k == "A" && v == "1"));
        assert!(!env.iter().any(|(k, _)| k == "HOME"));
    }
}
