//! `moat check`: plan a policy on this kernel and show the report, without running.

use super::policy_args::PolicyArgs;
use super::{remedy, Failure};
use moat_policy::Vars;
use moat_sandbox::exec::Target;
use moat_sandbox::{abi, plan};
use std::ffi::OsString;

/// Arguments of `moat check`.
#[derive(clap::Args, Debug)]
#[command(
    about = "Validate a policy and show what would be enforced on this kernel",
    long_about = "Validate a policy and show exactly what would be enforced on this kernel and \
what would be dropped, without running anything. Takes the same policy flags as `moat run`; a \
command after `--` is only needed for --ldd and --add-exec.\n\n\
Exit status: 0 when `moat run` would run the sandbox; 125 when the policy is invalid or strict \
mode would refuse it."
)]
pub struct CheckArgs {
    #[command(flatten)]
    policy: PolicyArgs,
    /// The command (for --ldd and --add-exec).
    #[arg(
        value_name = "COMMAND",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    command: Vec<OsString>,
}

/// Runs `moat check`.
pub fn check(args: CheckArgs) -> Result<i32, Failure> {
    super::reject_unknown_option(&args.command)?;
    let failure = |e: moat_sandbox::exec::ExecError| Failure {
        code: e.exit_code(),
        message: remedy::advise(&e),
    };
    let target = match args.command.split_first() {
        Some((cmd, rest)) => {
            let t = Target::resolve(cmd, rest.to_vec(), std::env::var_os("PATH").as_deref())
                .map_err(failure)?;
            t.check_exists().map_err(failure)?;
            Some(t)
        }
        None => None,
    };
    let policy = args.policy.build(target.as_ref())?;
    let compat = policy.compat.unwrap_or_default();
    let abi = abi::detect().map_err(Failure::moat)?;
    let mut plan = plan::plan(&policy, abi, compat, &Vars::from_process())
        .map_err(|e| Failure::moat(remedy::advise(&e)))?;
    plan.describe();
    if policy.fs.private_tmp {
        plan.report.enforced.push(
            "private temporary directory: one of the sandbox's own (TMPDIR, TMP, TEMP), \
             removed by moat's supervisor when the sandbox ends"
                .to_string(),
        );
    }
    println!("{}", plan.report);
    if plan.report.refused() {
        return Err(Failure::moat(remedy::advise(&plan.report.refusal())));
    }
    Ok(0)
}
