//! `moat record`: run a command traced, unrestricted, and write the smallest moat policy
//! that lets the same run succeed under `moat run --policy FILE`.

use super::Failure;
use moat_policy::record::{self, Observed, Options};
use moat_policy::write;
use moat_sandbox::diagnose::trace;
use moat_sandbox::tmpdir::{self, TmpRoot};
use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;

/// Arguments of `moat record`.
#[derive(clap::Args, Debug)]
#[command(
    about = "Run a command and write the policy it needs",
    long_about = "Run a command, unrestricted, and write the smallest moat policy that lets the \
same run succeed under `moat run --policy FILE`.\n\n\
Every file and directory access (read, write, create, remove, rename, link, execute, truncate, \
device ioctl), every TCP/UDP bind and connect, and every signal or abstract unix socket that \
leaves the command's own processes is observed, in the command and everything it starts, with \
seccomp user notification: no root needed. Nothing is denied while recording.\n\n\
The policy grants exact files where few are used and a directory where many entries of it are \
(see --dir-threshold), only the rights that were used, and moves rights on what the run created \
to the nearest directory that existed before it. Exit status: the command's own; 125 when moat \
fails.",
    after_help = "Examples:\n  moat record -o make.toml -- make\n  moat run --policy make.toml -- make\n  moat record --merge make.toml -o make.toml -- make install DESTDIR=/tmp/x"
)]
pub struct RecordArgs {
    /// Write the policy to FILE instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Extend this policy (any dialect moat reads) with what the run needs.
    #[arg(long, value_name = "FILE")]
    merge: Option<PathBuf>,
    /// Grant a right on a directory once this many of its entries used it (0: never).
    #[arg(long, value_name = "N", default_value_t = Options::default().dir_threshold)]
    dir_threshold: usize,
    /// Let a folded directory rule reach secrets the run did not use (password hashes,
    /// private keys, credential files in $HOME; docs/authoring.md lists them). By default
    /// each becomes a path exception of the recorded policy.
    #[arg(long)]
    fold_secrets: bool,
    /// Give the run the shared temporary directory instead of a private one: its
    /// temporary files then become rules on $TMPDIR or /tmp. By default the run gets a
    /// directory of its own and the policy `private_tmp = true`.
    #[arg(long = "shared-tmp")]
    shared_tmp: bool,
    /// Print each observed call to standard error.
    #[arg(short, long)]
    verbose: bool,
    /// The command and its arguments (after `--`).
    #[arg(
        value_name = "COMMAND",
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    command: Vec<OsString>,
}

/// Runs `moat record`.
pub fn record(args: RecordArgs) -> Result<i32, Failure> {
    // Read the base first: a broken file must not cost a whole traced run.
    let base = match &args.merge {
        Some(f) => Some(moat_policy::load_file(f).map_err(Failure::moat)?),
        None => None,
    };
    let target = super::run::target(args.command)?;

    // A private temporary directory, unless asked not to: temporary files then need no
    // right on the shared /tmp, and the policy says `private_tmp = true` instead.
    let private = match args.shared_tmp {
        true => None,
        false => {
            let root =
                TmpRoot::create(&tmpdir::choose_root(None), "moat-run").map_err(Failure::moat)?;
            let dir = root.create_call().map_err(Failure::moat)?;
            Some((root, dir.path))
        }
    };
    let env: Option<Vec<(OsString, OsString)>> = private.as_ref().map(|(_, dir)| {
        let mut env: Vec<(OsString, OsString)> = std::env::vars_os()
            .filter(|(k, _)| !["TMPDIR", "TMP", "TEMP"].iter().any(|v| k == v))
            .collect();
        for var in ["TMPDIR", "TMP", "TEMP"] {
            env.push((var.into(), dir.clone().into_os_string()));
        }
        env
    });
    let session = trace::spawn(&target, env.as_deref(), || Ok(())).map_err(Failure::moat)?;
    let mut observed: Vec<Observed> = Vec::new();
    let mut pids = std::collections::BTreeSet::new();
    let verbose = args.verbose;
    let exit = session
        .run(|e| {
            if verbose {
                let seen: Vec<String> = e.observed.iter().map(|o| o.to_string()).collect();
                eprintln!(
                    "moat: record: {} ({}) {}: {}",
                    e.comm(),
                    e.pid,
                    e.call,
                    seen.join("; ")
                );
            }
            pids.insert(e.pid as u32);
            observed.extend(e.observed.iter().cloned());
        })
        .map_err(Failure::moat)?;

    let recorded = record::synthesize(
        &observed,
        Options {
            dir_threshold: args.dir_threshold,
            private_tmp: private.as_ref().map(|(_, dir)| dir.clone()),
            pids,
            keep_out: if args.fold_secrets {
                Vec::new()
            } else {
                let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
                moat_sandbox::secrets::existing(home.as_deref())
            },
        },
    );
    if let Some((root, _)) = private {
        // The recorded run is over (moat is its parent and waited for it).
        root.remove_all().map_err(Failure::moat)?;
    }
    let policy = match base {
        Some(b) => record::merge(b, recorded),
        None => recorded,
    };
    let text = write::to_moat_toml(&policy).map_err(Failure::moat)?;
    let mut out = String::from(
        "# Recorded by `moat record`: what one run needed. Review before use: a run that\n\
         # did not take every path of the program did not record everything it may need.\n",
    );
    out.push_str(&text.text);
    match &args.output {
        Some(path) => std::fs::write(path, out)
            .map_err(|e| Failure::moat(format!("cannot write {}: {e}", path.display())))?,
        None => {
            let _ = std::io::stdout().write_all(out.as_bytes());
        }
    }
    for w in text.warnings {
        eprintln!("moat: record: {w}");
    }
    eprintln!(
        "moat: record: {} ended with status {}; {} rules{}",
        target.program.display(),
        exit.status(),
        policy.fs.rules.len() + policy.net.rules.len(),
        args.output
            .as_ref()
            .map(|p| format!(", written to {}", p.display()))
            .unwrap_or_default()
    );
    Ok(exit.status())
}
