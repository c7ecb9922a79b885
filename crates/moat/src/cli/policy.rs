//! `moat policy`: converting between dialects.

use super::Failure;
use std::path::PathBuf;

/// `moat policy` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum PolicyCommand {
    /// Read policies of any dialect and write them out as one policy in a chosen dialect.
    Convert(ConvertArgs),
}

/// The dialects `convert` writes.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum Target {
    /// moat's TOML format.
    Moat,
    /// landlockconfig JSON.
    Landlockconfig,
    /// OCI process.landlock JSON (runtime-spec #1241 shape).
    Oci,
}

/// Arguments of `moat policy convert`.
#[derive(clap::Args, Debug)]
pub struct ConvertArgs {
    /// The dialect to write.
    #[arg(long, value_enum, default_value = "moat")]
    to: Target,
    /// Write here instead of standard output.
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Policy files (several are combined into one ruleset).
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
}

/// Runs `moat policy`.
pub fn policy(cmd: PolicyCommand) -> Result<i32, Failure> {
    match cmd {
        PolicyCommand::Convert(args) => convert(args),
    }
}

fn convert(args: ConvertArgs) -> Result<i32, Failure> {
    let mut policy = None;
    for f in &args.files {
        let p = moat_policy::load_file(f).map_err(Failure::moat)?;
        policy = Some(match policy {
            None => p,
            Some(acc) => moat_policy::Policy::merge(acc, p),
        });
    }
    let Some(policy) = policy else {
        return Err(Failure::moat("no policy file given"));
    };
    let _ = (&policy, args.to, &args.output);
    Err(Failure::moat("convert: writers not wired yet"))
}
