//! Command-line definition and dispatch. Each subcommand has its own module.

mod check;
mod companion;
mod explain;
mod install_aids;
mod landrun;
mod policy;
mod policy_args;
mod presets;
mod record;
mod remedy;
mod run;
mod run_fast;
mod status;

use clap::{Parser, Subcommand};

/// Exit status when moat itself fails (bad policy, sandbox not applicable).
pub const EXIT_MOAT: i32 = 125;

/// A failure that ends the command: the message and the exit status.
pub struct Failure {
    /// Exit status.
    pub code: i32,
    /// What to print after `moat: `.
    pub message: String,
}

impl Failure {
    /// A moat failure (exit 125).
    pub fn moat(message: impl std::fmt::Display) -> Self {
        Failure {
            code: EXIT_MOAT,
            message: message.to_string(),
        }
    }
}

#[derive(Parser)]
#[command(
    name = "moat",
    version,
    about = "Run programs under a Landlock sandbox: least privilege, enforced by the kernel.",
    long_about = "Run programs under a Landlock sandbox: least privilege, enforced by the kernel.\n\n\
moat restricts itself with Landlock (filesystem rights per path, TCP ports, IPC scopes) and a \
seccomp socket filter, then execs the program. No root needed; the sandbox cannot be undone by \
the program and is inherited by everything it starts.",
    after_help = "Examples:\n  moat run -- ls -l              default policy: system files readable, no network, no writes\n  moat run --rox /usr,/lib --ro /etc --rw /tmp -- make\n  moat run --preset web-server -- python3 -m http.server 8080\n  moat check --policy app.toml   show what would be enforced on this kernel\n  moat status                    what this kernel's Landlock can do",
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a command in a sandbox.
    Run(run::RunArgs),
    /// Validate a policy and show what would be enforced on this kernel, without running.
    Check(check::CheckArgs),
    /// Show the kernel's Landlock ABI and what it can enforce.
    Status(status::StatusArgs),
    /// List the built-in presets, or print one as TOML.
    Presets(presets::PresetsArgs),
    /// Work with policy files.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Run a command and write the policy it needs.
    Record(record::RecordArgs),
    /// Kubernetes admission webhook: opted-in pods get runtimeClassName moat and a policy
    /// per container (served by the moat-k8s binary; see `moat webhook --help`).
    #[command(disable_help_flag = true)]
    Webhook(CompanionArgs),
    /// Kubernetes tools, e.g. `moat k8s render FILE`: the policy each container of a
    /// manifest would get (served by the moat-k8s binary; see `moat k8s --help`).
    #[command(disable_help_flag = true)]
    K8s(CompanionArgs),
    /// Function server compatible with the OpenFaaS classic watchdog that runs every call
    /// in its own sandbox (served by the moat-watchdog binary; see `moat watchdog --help`).
    #[command(disable_help_flag = true)]
    Watchdog(CompanionArgs),
    /// Prometheus exporter of the per-container network counters moat-runtime attaches
    /// with cgroup-bpf (served by the moat-exporter binary; see `moat exporter --help`).
    #[command(disable_help_flag = true)]
    Exporter(CompanionArgs),
    /// Print shell completions (bash, zsh, fish, elvish, powershell).
    Completions(install_aids::CompletionsArgs),
    /// Print the manual page, or write one per subcommand with --dir.
    Man(install_aids::ManArgs),
    /// Make a `landrun` symlink to moat: started under that name, moat takes landrun's
    /// command line, defaults and exit codes (docs/compatibility.md).
    InstallLandrunLink(install_aids::LandrunLinkArgs),
}

/// The words after a subcommand that a companion binary serves, passed on untouched.
#[derive(clap::Args)]
struct CompanionArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
    args: Vec<std::ffi::OsString>,
}

/// clap takes everything from the first positional value on as the command, so a
/// mistyped option before `--` would silently become the program to run. Refuse that: a
/// command that starts with `-` must come after an explicit `--`.
pub fn reject_unknown_option(command: &[std::ffi::OsString]) -> Result<(), Failure> {
    let Some(first) = command.first() else {
        return Ok(());
    };
    use std::os::unix::ffi::OsStrExt;
    if first.as_bytes().first() != Some(&b'-') {
        return Ok(());
    }
    // The command is the tail of the raw arguments; it was explicit when `--` precedes it.
    let raw: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let explicit = raw
        .len()
        .checked_sub(command.len() + 1)
        .and_then(|i| raw.get(i))
        .is_some_and(|a| a == "--");
    if !explicit {
        let given = first.to_string_lossy();
        let hint = closest_run_flag(&given)
            .map(|f| format!("did you mean `--{f}`? "))
            .unwrap_or_default();
        return Err(Failure::moat(format!(
            "unknown option `{given}` ({hint}see --help; put the command after --)"
        )));
    }
    Ok(())
}

/// The `moat run` flag a mistyped `--name` most likely meant, as clap suggests for the
/// flags it rejects itself (Jaro similarity above 0.8).
fn closest_run_flag(given: &str) -> Option<String> {
    use clap::Args;
    let name = given.trim_start_matches('-');
    let name = name.split_once('=').map_or(name, |(n, _)| n);
    let cmd = run::RunArgs::augment_args(clap::Command::new("run"));
    cmd.get_arguments()
        .filter_map(|a| a.get_long())
        // `moat check` shares the check but not every run flag: never "did you mean"
        // the very word given.
        .filter(|long| *long != name)
        .map(|long| (strsim::jaro(name, long), long))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, long)| long.to_string())
}

/// `moat run` is on the launch path of every sandboxed command: try the fast parser
/// ([`run_fast`]) first; when it gives up, parse with only `run`'s own clap definition built
/// (not the whole tree). Help and error messages are clap's either way.
fn run_fast_path(
    mut args: std::vec::IntoIter<std::ffi::OsString>,
) -> Option<Result<run::RunArgs, clap::Error>> {
    use clap::{Args, FromArgMatches};
    if args.next().as_deref() != Some(std::ffi::OsStr::new("run")) {
        return None;
    }
    let rest: Vec<std::ffi::OsString> = args.collect();
    // The fast parser takes the arguments by value; clap needs them only when it gives up,
    // which is rare, so it gets them again from the process rather than a copy made for
    // every launch.
    if let Some(parsed) = run_fast::parse(rest) {
        return Some(Ok(parsed));
    }
    let rest: Vec<std::ffi::OsString> = std::env::args_os().skip(2).collect();
    let cmd = run::RunArgs::augment_args(clap::Command::new("run"))
        .bin_name("moat run")
        .version(env!("CARGO_PKG_VERSION"));
    Some(
        cmd.try_get_matches_from(std::iter::once(std::ffi::OsString::from("run")).chain(rest))
            .and_then(|m| run::RunArgs::from_arg_matches(&m)),
    )
}

/// Parses the command line, runs the subcommand and returns the exit status.
pub fn main() -> i32 {
    // `args_os` copies every argument: once, here, for the whole launch.
    let mut all = std::env::args_os();
    let argv0 = all.next();
    // Started as `landrun` (a symlink or copy): landrun's command line and rules.
    if argv0.as_deref().is_some_and(landrun::selected_by) {
        return landrun::main(all.collect());
    }
    let mut words = all.collect::<Vec<_>>().into_iter();
    let first = words.as_slice().first().cloned();
    if let Some(companion) = first.as_deref().and_then(companion::lookup) {
        words.next();
        let f = companion::exec(companion, words);
        eprintln!("moat: {}", f.message);
        return f.code;
    }
    let parsed = match run_fast_path(words) {
        Some(parsed) => parsed.map(|args| Cli {
            command: Command::Run(args),
        }),
        None => Cli::try_parse(),
    };
    let cli = match parsed {
        Ok(c) => c,
        Err(e) => {
            if !e.use_stderr() {
                // --help and --version.
                let _ = e.print();
                return 0;
            }
            // One style for every error moat prints: `moat: ...`, clap's included.
            let text = e.render().to_string();
            match text.strip_prefix("error: ") {
                Some(rest) => eprint!("moat: {rest}"),
                None => eprint!("{text}"),
            }
            return EXIT_MOAT;
        }
    };
    let result = match cli.command {
        Command::Run(args) => run::run(args),
        Command::Check(args) => check::check(args),
        Command::Status(args) => status::status(args),
        Command::Presets(args) => presets::presets(args),
        Command::Policy(cmd) => policy::policy(cmd),
        Command::Record(args) => record::record(args),
        Command::Completions(args) => {
            install_aids::completions(args, <Cli as clap::CommandFactory>::command())
        }
        Command::Man(args) => install_aids::man(args, <Cli as clap::CommandFactory>::command()),
        Command::InstallLandrunLink(args) => install_aids::landrun_link(args),
        // Handed over before parsing; reaching here means the word was not first.
        Command::Webhook(_) | Command::K8s(_) | Command::Watchdog(_) | Command::Exporter(_) => Err(
            Failure::moat("`webhook`, `k8s` and `watchdog` must come right after `moat`"),
        ),
    };
    match result {
        Ok(code) => code,
        Err(f) => {
            eprintln!("moat: {}", f.message);
            f.code
        }
    }
}
