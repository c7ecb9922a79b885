//! `moat policy`: converting between dialects.

use super::Failure;
use moat_policy::Dialect;
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
    /// OCI process.landlock JSON (runtime-spec #1111 shape).
    Oci1111,
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
    /// Fail (exit 125) instead of warning when the target dialect cannot express part of
    /// the policy.
    #[arg(long)]
    exact: bool,
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
    let dialect = match args.to {
        Target::Moat => Dialect::Moat,
        Target::Landlockconfig => Dialect::LandlockConfig,
        Target::Oci => Dialect::OciPr1241,
        Target::Oci1111 => Dialect::OciPr1111,
    };
    let written = moat_policy::write::write(&policy, dialect).map_err(Failure::moat)?;
    if args.exact && !written.warnings.is_empty() {
        return Err(Failure::moat(format!(
            "{} cannot express this policy exactly:\n  - {}",
            dialect.name(),
            written.warnings.join("\n  - ")
        )));
    }
    for w in &written.warnings {
        eprintln!("moat: warning: {w}");
    }
    match &args.output {
        Some(path) => std::fs::write(path, &written.text)
            .map_err(|e| Failure::moat(format!("{}: {e}", path.display())))?,
        None => print!("{}", written.text),
    }
    Ok(0)
}
