//! Each call's sandbox: a moat [`Policy`], planned with moat's planner, enforced in the
//! call's own process by [`moat_sandbox::spawn`].
//!
//! The policy of a call (see [`function_policy`]) denies everything and then grants the
//! function's code and runtime read-only (the function's directory, the system's binaries
//! and libraries, the program and its ELF dependencies, `/etc`), the usual `/dev` nodes,
//! the call's private temporary directory read-write, the extra paths and TCP ports of
//! the configuration, merged with a moat policy file if one is given. Signal and
//! abstract-socket scopes are on, so a call reaches no process outside its own domain:
//! not another call, not the watchdog.
//!
//! The policy is planned once, at start, with [`moat_sandbox::plan::plan`], exactly as
//! `moat run` plans: `sandbox=required` is strict mode (a kernel that cannot enforce the
//! policy refuses to start) and `sandbox=best_effort` is best-effort mode (what is dropped
//! is logged). Only one rule differs from call to call, the private directory, and it
//! cannot change what the kernel can enforce; it is added to each call's ruleset when the
//! ruleset is created ([`Sandbox::restrictions`]), with the rules the plan opened once.

use crate::config::{Config, SandboxMode};
use crate::tmpdir::CallDir;
use moat_policy::{
    load_file, Compat, FsAccess, FsGroup, FsRight, NetAccess, NetRight, Policy, PolicyError, Vars,
};
use moat_sandbox::enforce::{EnforceError, Enforcement, Restrictions};
use moat_sandbox::remedy::{Advised, Remedy};
use moat_sandbox::seccomp::{Seal, SeccompError};
use moat_sandbox::ExtraRule;
use moat_sandbox::{plan, AbiInfo, Plan, PlanError, Report};
use std::path::{Path, PathBuf};

/// Why the sandbox cannot be prepared.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The policy file does not load.
    #[error("sandbox_policy: {0}")]
    Policy(#[from] PolicyError),
    /// The program's dependencies cannot be read.
    #[error("cannot find what {} needs to run: {source}", program.display())]
    Ldd {
        /// The program.
        program: PathBuf,
        /// The error.
        source: moat_sandbox::ldd::LddError,
    },
    /// Planning failed, or strict mode refuses.
    #[error("{}", .0.advise(&remedy_words))]
    Plan(#[from] PlanError),
}

/// A remedy of moat-sandbox in the watchdog's words: its configuration variables, or a
/// line of the `sandbox_policy` file where no variable applies it.
pub(crate) fn remedy_words(remedy: &Remedy) -> Option<String> {
    let in_policy_file = || {
        remedy
            .policy_line()
            .map(|l| format!("add `{l}` to the sandbox_policy file"))
    };
    let add_to = |what: String, var: &str| Some(format!("add {what} to {var}"));
    match remedy {
        Remedy::Grant { path, group } => {
            let path = path.display().to_string();
            match group {
                FsGroup::Read => add_to(path, "sandbox_ro"),
                FsGroup::Execute | FsGroup::ReadExec => add_to(path, "sandbox_rox"),
                FsGroup::Write | FsGroup::ReadWrite => add_to(path, "sandbox_rw"),
                FsGroup::ReadWriteExec | FsGroup::Devices | FsGroup::All => in_policy_file(),
            }
        }
        Remedy::AllowPort {
            right: NetRight::ConnectTcp,
            port,
        } => add_to(port.to_string(), "sandbox_connect_tcp"),
        Remedy::AllowPort { .. } | Remedy::Unscope(_) => in_policy_file(),
        Remedy::GrantExecAbove { .. } => add_to("a directory above it".into(), "sandbox_rox"),
        Remedy::GrantProgram => add_to("the program".into(), "sandbox_rox"),
        Remedy::GrantDependencies => add_to("its libraries".into(), "sandbox_rox"),
        Remedy::MarkOptional => Some(
            "create it, remove it from the configuration, or mark it optional in the \
             sandbox_policy file"
                .into(),
        ),
        // The watchdog has no variable that skips every missing path.
        Remedy::IgnoreMissing => None,
        Remedy::BestEffort => {
            Some("set sandbox=best_effort to run with what this kernel enforces".into())
        }
    }
}

impl SandboxError {
    /// Whether the kernel, not the configuration, is what is missing.
    pub fn is_kernel_refusal(&self) -> bool {
        matches!(self, SandboxError::Plan(PlanError::Unenforceable(_)))
    }
}

/// Directories of the system's programs and libraries, read and executable by every call.
const SYSTEM_EXEC: [&str; 7] = [
    "/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32",
];

/// Devices every call may read and write (as moat's `default` preset).
const DEVICES: [&str; 5] = [
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
];

/// The sandbox of every call, prepared once.
#[derive(Debug)]
pub struct Sandbox {
    mode: SandboxMode,
    plan: Option<Plan>,
    /// Whether the socket filter is installed on the watchdog itself, and so inherited.
    filter_inherited: bool,
}

impl Sandbox {
    /// No sandbox (`sandbox=off`).
    pub fn off() -> Sandbox {
        Sandbox {
            mode: SandboxMode::Off,
            plan: None,
            filter_inherited: false,
        }
    }

    /// Builds and plans the call policy for `program` run from `function_dir`. Strict mode
    /// refuses here when the kernel cannot enforce the policy.
    pub fn prepare(
        config: &Config,
        program: &Path,
        function_dir: &Path,
        abi: AbiInfo,
    ) -> Result<Sandbox, SandboxError> {
        let compat = match config.sandbox.mode {
            SandboxMode::Off => return Ok(Sandbox::off()),
            SandboxMode::Required => Compat::Strict,
            SandboxMode::BestEffort => Compat::BestEffort,
        };
        let policy = function_policy(config, program, function_dir)?;
        let mut plan = plan::plan(&policy, abi, compat, &variables(function_dir))?;
        // Calls run with no capability. The bounding set is emptied once, here, rather than
        // in every call (one prctl per capability, 41 system calls, on every call of a
        // watchdog running as root); the watchdog keeps its own effective set.
        if let Some(caps) = plan.caps.as_mut() {
            if caps.bounding && moat_sandbox::caps::drop_bounding_set(caps.keep).is_ok() {
                caps.bounding = false;
            }
        }
        plan.describe();
        let plan = match compat {
            Compat::Strict => plan.require()?,
            Compat::BestEffort => plan,
        };
        Ok(Sandbox {
            mode: config.sandbox.mode,
            plan: Some(plan),
            filter_inherited: false,
        })
    }

    /// Installs the plan's seccomp filter on the watchdog itself, with the IPC rows when
    /// `ipc`, so that every call inherits it instead of attaching its own: attaching costs
    /// 45 us per process here (the kernel checks, converts and JIT-compiles the program,
    /// and frees it at exit), inheriting costs nothing. The filter is the same for every
    /// call, and the watchdog needs none of what it refuses once its listening sockets are
    /// bound (it uses TCP, no unix socket, no io_uring, no SysV IPC). Sets no_new_privs on
    /// the watchdog, as seccomp requires.
    ///
    /// Must run before the watchdog starts any thread (the filter applies to the calling
    /// thread and the threads and processes it creates afterwards). Returns the seal
    /// installed, if any.
    pub fn install_inherited_filter(&mut self, ipc: bool) -> Result<Option<Seal>, SeccompError> {
        let Some(plan) = self.plan.as_ref() else {
            return Ok(None);
        };
        // A supervised seal's listener is per process: each call installs that filter
        // itself, and the watchdog takes its listener; what is inherited is the rest.
        let seal = Seal {
            ipc,
            supervise_listen: false,
            supervise_connect: false,
            ..plan.seal
        };
        seal.install()?;
        self.filter_inherited = true;
        Ok(Some(seal))
    }

    /// The mode.
    pub fn mode(&self) -> SandboxMode {
        self.mode
    }

    /// What is enforced and what is not, when there is a sandbox.
    pub fn report(&self) -> Option<&Report> {
        self.plan.as_ref().map(|p| &p.report)
    }

    /// The restrictions of one call: the planned ruleset plus `dir` read-write, and the
    /// call's own `/proc/<pid>` readable. Creates the call's Landlock ruleset.
    pub fn restrictions(&self, dir: Option<&CallDir>) -> Result<Restrictions, EnforceError> {
        let Some(plan) = &self.plan else {
            return Ok(Restrictions::none());
        };
        let enforcement = match self.mode {
            SandboxMode::BestEffort => Enforcement::BestEffort,
            SandboxMode::Required | SandboxMode::Off => Enforcement::Required,
        };
        let extra: Vec<ExtraRule<'_>> = dir
            .map(|d| ExtraRule {
                fd: std::os::fd::AsFd::as_fd(&d.fd),
                access: FsGroup::ReadWrite.access(),
            })
            .into_iter()
            .collect();
        let r = Restrictions::from_plan(plan, &extra, enforcement)?
            .with_own_proc(own_proc_access())
            .served_by_caller();
        Ok(if self.filter_inherited {
            r.without_filter()
        } else {
            r
        })
    }
}

/// What a call may do with its own `/proc/<pid>`: what `moat run`'s default preset grants on
/// `/proc/self`.
fn own_proc_access() -> FsAccess {
    FsGroup::Read.access()
}

/// The variables a policy file may use. `${TMPDIR}` is left undefined on purpose: the
/// watchdog's own temporary directory is shared by nothing a call should see, and each
/// call's private directory is granted without being named.
fn variables(function_dir: &Path) -> Vars {
    let mut vars = Vars::new();
    vars.set("CWD", function_dir.to_string_lossy());
    if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        vars.set("HOME", home.to_string_lossy());
    }
    if let Ok(user) = std::env::var("USER") {
        vars.set("USER", user);
    }
    // SAFETY: getuid and getgid cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    vars.set("UID", uid.to_string());
    vars.set("GID", gid.to_string());
    vars
}

/// The system directories to grant, without those that are links into another one
/// (`/bin` -> `/usr/bin` on a merged-/usr system): the ruleset is created for every call,
/// and a rule on `/usr/bin` adds nothing to the rule on `/usr`.
fn system_dirs() -> Vec<&'static str> {
    SYSTEM_EXEC
        .iter()
        .copied()
        .filter(|d| match std::fs::canonicalize(d) {
            Ok(real) => {
                real == Path::new(d)
                    || !SYSTEM_EXEC
                        .iter()
                        .any(|other| other != d && real.starts_with(other))
            }
            // Missing: the rule is optional, the planner skips and reports it.
            Err(_) => true,
        })
        .collect()
}

/// The policy of every call (without its private directory, added per call).
pub fn function_policy(
    config: &Config,
    program: &Path,
    function_dir: &Path,
) -> Result<Policy, SandboxError> {
    let read = FsGroup::Read.access();
    let read_exec = FsGroup::ReadExec.access();
    let mut p = Policy::deny_all();
    p.grant_paths(
        system_dirs(),
        read_exec,
        true,
        "the system's programs and libraries",
    );
    p.grant_paths(["/etc"], read, false, "system configuration");
    p.grant_paths(
        DEVICES,
        FsAccess::of(&[FsRight::ReadFile, FsRight::WriteFile, FsRight::Truncate]),
        true,
        "standard devices",
    );
    p.grant_paths(
        [function_dir.to_string_lossy()],
        read_exec,
        false,
        "the function's directory",
    );
    if !SYSTEM_EXEC
        .iter()
        .chain(std::iter::once(&function_dir.to_string_lossy().as_ref()))
        .any(|d| program.starts_with(d))
    {
        add_program(&mut p, program)?;
    }
    let s = &config.sandbox;
    p.grant_paths(s.ro.iter().cloned(), read, false, "sandbox_ro");
    p.grant_paths(s.rox.iter().cloned(), read_exec, false, "sandbox_rox");
    p.grant_paths(
        s.rw.iter().cloned(),
        FsGroup::ReadWrite.access(),
        false,
        "sandbox_rw",
    );
    p.grant_ports(
        s.connect_tcp.iter().copied(),
        NetAccess::of(&[NetRight::ConnectTcp]),
        "sandbox_connect_tcp",
    );
    if s.allow_udp {
        p.net.allow_udp = true;
    }
    if let Some(file) = &s.policy {
        p = p.merge(load_file(file)?);
    }
    Ok(p)
}

/// Grants a program outside the system directories, its interpreters and its libraries.
fn add_program(p: &mut Policy, program: &Path) -> Result<(), SandboxError> {
    let read_exec = FsAccess::of(&[FsRight::ReadFile, FsRight::Execute]);
    p.grant_paths(
        [program.to_string_lossy()],
        read_exec,
        false,
        "the function's program",
    );
    let opts = moat_sandbox::ldd::LddOptions {
        library_path: std::env::var_os("LD_LIBRARY_PATH")
            .map(|v| std::env::split_paths(&v).collect())
            .unwrap_or_default(),
        ..Default::default()
    };
    let deps =
        moat_sandbox::ldd::dependencies(program, &opts).map_err(|source| SandboxError::Ldd {
            program: program.to_path_buf(),
            source,
        })?;
    for i in &deps.interpreters {
        p.grant_paths(
            [i.to_string_lossy()],
            read_exec,
            false,
            "the program's interpreter",
        );
    }
    for l in &deps.libraries {
        p.grant_paths(
            [l.to_string_lossy()],
            FsAccess::of(&[FsRight::ReadFile]),
            false,
            "the program's libraries",
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use moat_policy::Scope;
    use std::collections::HashMap;

    #[test]
    fn remedies_name_the_watchdogs_variables() {
        let missing = SandboxError::Plan(PlanError::MissingPath {
            path: "/no/such".into(),
            origin: moat_policy::Origin::new("sandbox_ro"),
        });
        assert_eq!(
            missing.to_string(),
            "sandbox_ro: path `/no/such` does not exist (create it, remove it from the \
             configuration, or mark it optional in the sandbox_policy file)"
        );
        let words = |r: Remedy| remedy_words(&r).unwrap_or_default();
        assert_eq!(
            words(Remedy::BestEffort),
            "set sandbox=best_effort to run with what this kernel enforces"
        );
        assert_eq!(
            words(Remedy::Grant {
                path: "/srv".into(),
                group: FsGroup::ReadWrite
            }),
            "add /srv to sandbox_rw"
        );
        assert_eq!(
            words(Remedy::AllowPort {
                right: NetRight::ConnectTcp,
                port: 5432
            }),
            "add 5432 to sandbox_connect_tcp"
        );
        assert_eq!(
            words(Remedy::AllowPort {
                right: NetRight::BindTcp,
                port: 80
            }),
            "add `[network] bind_tcp = [80]` to the sandbox_policy file"
        );
        assert_eq!(remedy_words(&Remedy::IgnoreMissing), None);
        for r in [
            Remedy::IgnoreMissing,
            Remedy::BestEffort,
            Remedy::GrantProgram,
        ] {
            assert!(!words(r).contains("--"));
        }
    }

    fn config(pairs: &[(&str, &str)]) -> Config {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(&move |k: &str| map.get(k).cloned()).unwrap()
    }

    #[test]
    fn the_policy_grants_code_runtime_and_config_and_closes_the_rest() {
        let c = config(&[
            ("fprocess", "cat"),
            ("sandbox_ro", "/srv"),
            ("sandbox_connect_tcp", "443"),
        ]);
        let p = function_policy(&c, Path::new("/usr/bin/cat"), Path::new("/home/app")).unwrap();
        let paths: Vec<&str> = p.fs.rules.iter().map(|r| r.path.as_str()).collect();
        for expect in ["/usr", "/etc", "/dev/null", "/home/app", "/srv"] {
            assert!(paths.contains(&expect), "{expect}: {paths:?}");
        }
        // A link into /usr adds nothing to the rule on /usr.
        for linked in ["/bin", "/lib", "/sbin"] {
            let merged = std::fs::canonicalize(linked).is_ok_and(|r| r.starts_with("/usr"));
            assert_eq!(!paths.contains(&linked), merged, "{linked}");
        }
        assert!(!paths
            .iter()
            .any(|p| p.starts_with("/tmp") || p.starts_with("/proc")));
        let app = p.fs.rules.iter().find(|r| r.path == "/home/app").unwrap();
        assert!(!app.access.contains(FsRight::WriteFile));
        assert!(p.scopes.contains(Scope::Signal) && p.scopes.contains(Scope::AbstractUnixSocket));
        assert!(p.restricts_tcp() && p.net.seal_sockets && !p.net.allow_udp);
        assert_eq!(p.net.rules.len(), 1);
    }

    #[test]
    fn a_program_outside_the_system_gets_its_dependencies() {
        let c = config(&[("fprocess", "x")]);
        let dir = std::env::temp_dir().join(format!("moat-sbx-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let copy = dir.join("ls");
        std::fs::copy("/bin/ls", &copy).unwrap();
        let p = function_policy(&c, &copy, Path::new("/nonexistent-fn-dir")).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let origins: Vec<&str> = p.fs.rules.iter().map(|r| &*r.origin.0).collect();
        assert!(origins.contains(&"the function's program"));
        assert!(
            origins.contains(&"the program's interpreter"),
            "{origins:?}"
        );
        assert!(origins.contains(&"the program's libraries"));
    }

    #[test]
    fn a_policy_file_is_merged_and_tmpdir_is_not_a_variable() {
        let dir = std::env::temp_dir().join(format!("moat-sbx-pol-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("p.toml");
        std::fs::write(&file, "[network]\nconnect_tcp = [5432]\n").unwrap();
        let c = config(&[
            ("fprocess", "cat"),
            ("sandbox_policy", file.to_str().unwrap()),
        ]);
        let p = function_policy(&c, Path::new("/usr/bin/cat"), Path::new("/")).unwrap();
        assert_eq!(p.net.rules.len(), 1);
        std::fs::write(&file, "[filesystem]\nwrite = [\"${TMPDIR}\"]\n").unwrap();
        let p = function_policy(&c, Path::new("/usr/bin/cat"), Path::new("/")).unwrap();
        let abi = moat_sandbox::abi::detect_with_cap(None);
        let err = plan::plan(&p, abi, Compat::BestEffort, &variables(Path::new("/"))).unwrap_err();
        assert!(err.to_string().contains("TMPDIR"), "{err}");
        std::fs::write(&file, "[filesystem]\nbogus = 1\n").unwrap();
        assert!(function_policy(&c, Path::new("/usr/bin/cat"), Path::new("/")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
