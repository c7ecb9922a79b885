//! `moat run`: restrict this process, then exec the command.
//!
//! A straight line, in a fixed order: close inherited descriptors, resolve the command,
//! compose and plan the policy (no restriction yet, so errors can still be reported
//! fully), prepare the restrictions, apply them in moat's one order
//! (`moat_sandbox::enforce`: no_new_privs, capabilities, Landlock, seccomp), exec.

use super::policy_args::PolicyArgs;
use super::{remedy, Failure};
use moat_policy::Vars;
use moat_sandbox::enforce::{Enforcement, Restrictions};
use moat_sandbox::exec::{self, ExecError, Target};
use moat_sandbox::tmpdir::{self, TmpRoot};
use moat_sandbox::{abi, fds, plan};
use std::ffi::OsString;

/// Arguments of `moat run`.
#[derive(clap::Args, Debug)]
#[command(
    about = "Run a command in a sandbox",
    override_usage = "moat run [OPTIONS] [--] <COMMAND>...",
    long_about = "Run a command in a sandbox.\n\n\
With no policy, preset, path or port flag, the built-in `default` preset applies: system binaries \
and libraries readable and executable, /etc and the current directory readable, standard devices \
usable, no network, signal and abstract-socket scopes on. Once any of those flags is given, they \
are the whole policy: whatever they do not allow is denied, network included.\n\n\
A denial looks like an ordinary error to the command (\"Permission denied\", \"Couldn't \
connect\"): run it again with --explain to see what the sandbox denied and the flag that \
allows each.\n\n\
Exit status: the command's own; 125 when moat fails (bad policy, sandbox cannot be applied); 126 \
when the command cannot be executed (including a denied execve); 127 when it is not found.",
    after_help = "Examples:\n  moat run -- ls\n  moat run --rox /usr,/lib,/lib64,/bin --ro /etc -- /bin/true\n  moat run --preset default --rw /tmp --connect-tcp 443 -- curl https://example.org\n  moat run --ldd --add-exec --ro /etc -- /usr/bin/cat /etc/hostname\n  moat run --explain --rw /tmp -- touch /tmp/x      what was denied, and what allows it"
)]
pub struct RunArgs {
    #[command(flatten)]
    pub(crate) policy: PolicyArgs,
    /// Keep file descriptor N open for the command (repeatable); 0-2 and systemd's
    /// LISTEN_FDS are always kept.
    #[arg(long = "preserve-fd", value_name = "N")]
    pub(crate) preserve_fd: Vec<i32>,
    /// When the sandbox denies the command something, say what and which flag or policy
    /// line would allow it (from the kernel's Landlock audit records where readable, else
    /// by tracing the command). moat then stays as the command's parent until it ends.
    #[arg(long)]
    pub(crate) explain: bool,
    /// Use at most this Landlock ABI, as if the kernel were older (testing); overrides
    /// MOAT_MAX_ABI.
    #[arg(long, value_name = "N")]
    pub(crate) max_abi: Option<u32>,
    /// Set by moat-runtime for its in-container launcher: moat takes its own settings only
    /// from this command line, never from the environment, which belongs to the confined
    /// workload (MOAT_MAX_ABI, LISTEN_FDS and LISTEN_PID are ignored; moat-runtime passes
    /// --max-abi and --preserve-fd itself).
    #[arg(long)]
    pub(crate) from_runtime: bool,
    /// The command and its arguments (after `--`).
    #[arg(
        value_name = "COMMAND",
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub(crate) command: Vec<OsString>,
}

/// Runs `moat run`. Returns only when the command could not be started.
pub fn run(args: RunArgs) -> Result<i32, Failure> {
    // Descriptors first: nothing moat opens later may be mistaken for an inherited one.
    if let Some(bad) = args.preserve_fd.iter().find(|&&fd| fd < 0) {
        return Err(Failure::moat(format!(
            "--preserve-fd {bad}: not a file descriptor"
        )));
    }
    let mut keep = args.preserve_fd.clone();
    if args.from_runtime {
        remedy::speak_for_container();
    } else {
        keep.extend(fds::listen_fds());
    }
    fds::close_inherited(&keep).map_err(Failure::moat)?;

    let target = target(args.command)?;

    let mut policy = args.policy.build(Some(&target))?;
    let private_tmp = match policy.fs.private_tmp {
        true => Some(private_tmp(&mut policy)?),
        false => None,
    };
    let compat = policy.compat.unwrap_or_default();
    let abi = match (args.max_abi, args.from_runtime) {
        (Some(n), _) => abi::detect_with_cap(Some(moat_policy::Abi::from_number(i64::from(n)))),
        (None, true) => abi::detect_with_cap(None),
        (None, false) => abi::detect().map_err(Failure::moat)?,
    };
    let vars = Vars::from_process();
    let plan = plan::plan(&policy, abi, compat, &vars)
        .and_then(|p| p.require())
        .map_err(|e| Failure::moat(remedy::advise(&e)))?;
    let mode = compat.name();
    for w in plan.report.warnings() {
        eprintln!("moat: {mode}: {w}");
    }
    let env = exec::environment(&policy.env);
    if args.explain {
        // moat stays the command's parent: it removes the directory itself.
        let code = super::explain::run(&target, env.as_deref(), plan);
        if let Some(root) = private_tmp {
            root.remove_all().map_err(Failure::moat)?;
        }
        return code;
    }

    let mut restrictions =
        Restrictions::from_plan(&plan, &[], Enforcement::Required).map_err(Failure::moat)?;
    if let Some(root) = private_tmp {
        restrictions = restrictions.remove_when_done(root).map_err(Failure::moat)?;
    }
    restrictions.apply().map_err(Failure::moat)?;
    let err = exec::exec(&target, env.as_deref(), Some(&plan));
    let mut message = remedy::advise(&err);
    if let ExecError::PolicyDenied { lacking, .. } = &err {
        if args.policy.replaced_default() && default_grants_exec(lacking, abi, &vars) {
            message.push_str(&format!(
                "\nmoat: path and port flags replace the default preset, which allows {}: \
                 add --preset default to start from it",
                lacking.display()
            ));
        }
        message.push_str(&remedy::explain_hint());
    }
    Err(Failure {
        code: err.exit_code(),
        message,
    })
}

/// Makes the sandbox's private temporary directory, grants it and names it in TMPDIR, TMP
/// and TEMP. Its root (`moat-run.<pid>.<random>`, locked while the sandbox lives) is what
/// the supervisor removes; one left by a supervisor killed with SIGKILL is removed by the
/// next `moat run --private-tmp` that uses the same place.
fn private_tmp(policy: &mut moat_policy::Policy) -> Result<TmpRoot, Failure> {
    let base = tmpdir::choose_root(None);
    let root = TmpRoot::create(&base, "moat-run").map_err(Failure::moat)?;
    let dir = root.create_call().map_err(Failure::moat)?;
    let path = dir.path.to_string_lossy().into_owned();
    policy.grant_paths(
        [path.clone()],
        moat_policy::FsGroup::ReadWrite.access(),
        false,
        "--private-tmp",
    );
    for var in ["TMPDIR", "TMP", "TEMP"] {
        policy.env.set.retain(|(k, _)| k != var);
        policy.env.set.push((var.to_string(), path.clone()));
    }
    Ok(root)
}

/// Whether the built-in `default` preset would let `path` execute.
fn default_grants_exec(path: &std::path::Path, abi: abi::AbiInfo, vars: &Vars) -> bool {
    let Ok(default) = moat_policy::presets::load("default") else {
        return false;
    };
    plan::plan(&default, abi, moat_policy::Compat::BestEffort, vars)
        .is_ok_and(|p| p.grants(path, moat_policy::FsRight::Execute))
}

/// The command to run, checked and looked up in PATH like a shell does; its errors exit
/// 126 or 127 as a shell's would.
pub fn target(command: Vec<OsString>) -> Result<Target, Failure> {
    super::reject_unknown_option(&command)?;
    let mut command = command.into_iter();
    let Some(cmd) = command.next() else {
        return Err(Failure::moat("no command given"));
    };
    Target::resolve(&cmd, command.collect(), std::env::var_os("PATH").as_deref()).map_err(|e| {
        Failure {
            code: e.exit_code(),
            message: remedy::advise(&e),
        }
    })
}
