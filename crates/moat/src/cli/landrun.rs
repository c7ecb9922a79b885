//! The landrun personality: moat started under the name `landrun` (a symlink or a copy,
//! see `moat install-landrun-link`) takes landrun's command line and keeps landrun's
//! rules, so that scripts written for landrun run unchanged, with moat's enforcement
//! underneath.
//!
//! What follows landrun (the 0.1.18 release, whose own test script passes against this,
//! see docs/compatibility.md):
//! - its flags and their syntax: `--flag VALUE`, `--flag=VALUE`, `-flag`, comma lists for
//!   paths, ports and `--env`; the command starts at the first word that is not a flag;
//! - its defaults: without a path flag everything is denied (not moat's `default` preset),
//!   and the command gets only the variables `--env` names;
//! - its exit status: 1 for every failure of its own (a missing path or command, a denied
//!   exec, a bad flag), otherwise the command's own;
//! - its strictness: without `--best-effort` it targets Landlock ABI 9 and refuses to run
//!   on a kernel below it, unless every domain is unrestricted;
//! - its error lines on stderr, `[landrun:error] MESSAGE` (without the timestamp).
//!
//! What stays moat's (deliberately stronger, docs/compatibility.md): the socket filter of
//! a restricted network, the terminal-injection block, the `listen` supervisor, dropped
//! capabilities, and under `--best-effort` the list of every control the kernel cannot
//! enforce.
//!
//! This module is reached only when the launcher's own name is `landrun`: `moat run`'s
//! launch path pays one file-name comparison for it.

use super::policy_args::{parse_log_level, PolicyArgs};
use super::run::{self, RunArgs};
use moat_policy::PortRange;
use std::ffi::{OsStr, OsString};

/// The landrun release this personality follows.
pub const LANDRUN_VERSION: &str = "0.1.18";

/// landrun's exit status for every failure of its own.
pub const EXIT_FAILURE: i32 = 1;

/// The Landlock ABI landrun 0.1.18 targets without `--best-effort`.
pub const TARGET_ABI: u32 = 9;

/// The name that selects this personality.
pub const NAME: &str = "landrun";

/// Whether `argv0` (the launcher's own name as started) selects this personality.
pub fn selected_by(argv0: &OsStr) -> bool {
    // The bytes after the last `/`: cheaper than `Path::file_name`'s component parsing, on
    // the launch path of every `moat run`.
    use std::os::unix::ffi::OsStrExt;
    argv0.as_bytes().rsplit(|&b| b == b'/').next() == Some(NAME.as_bytes())
}

/// Runs the landrun personality on the words after the program name; returns the exit
/// status (only when the command could not be started).
pub fn main(args: Vec<OsString>) -> i32 {
    let outcome = match parse(args) {
        Ok(Parsed::Help) => {
            print!("{}", help());
            return 0;
        }
        Ok(Parsed::Version) => {
            println!(
                "landrun version {LANDRUN_VERSION} (moat {})",
                env!("CARGO_PKG_VERSION")
            );
            return 0;
        }
        Ok(Parsed::Run(args)) => launch(*args),
        Err(message) => Err(message),
    };
    match outcome {
        Ok(code) => code,
        Err(message) => {
            eprintln!("[landrun:error] {message}");
            EXIT_FAILURE
        }
    }
}

/// What a landrun command line asks for.
#[derive(Debug)]
pub enum Parsed {
    /// `--help` or `-h`.
    Help,
    /// `--version` or `-v`.
    Version,
    /// Run a command.
    Run(Box<RunArgs>),
}

/// Reads a landrun command line (after the program name) into `moat run`'s arguments with
/// landrun's defaults. `LANDRUN_LOG_LEVEL` stands in for `--log-level` as in landrun.
pub fn parse(args: Vec<OsString>) -> Result<Parsed, String> {
    let mut policy = PolicyArgs {
        // landrun: no path flag, nothing allowed; only the --env variables passed.
        deny_by_default: true,
        clear_env: true,
        ..PolicyArgs::default()
    };
    let mut words = args.into_iter();
    let mut command = Vec::new();
    while let Some(word) = words.next() {
        let text = word.to_string_lossy();
        if text == "--" {
            break;
        }
        if !text.starts_with('-') || text == "-" {
            command.push(word);
            break;
        }
        let flag = text.trim_start_matches('-');
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (flag, None),
        };
        if let Some(slot) = bool_flag(&mut policy, name) {
            *slot = match inline.as_deref() {
                None | Some("true") | Some("1") => true,
                Some("false") | Some("0") => false,
                Some(other) => return Err(format!("invalid value \"{other}\" for flag -{name}")),
            };
            continue;
        }
        match name {
            "h" | "help" => return Ok(Parsed::Help),
            "v" | "version" => return Ok(Parsed::Version),
            _ => {}
        }
        let value = match inline {
            Some(v) => v,
            None => words
                .next()
                .map(|v| v.to_string_lossy().into_owned())
                .ok_or_else(|| format!("flag needs an argument: -{name}"))?,
        };
        let items = || value.split(',').map(str::to_string);
        match name {
            // landrun takes an unknown level as `error`; so does this.
            "log-level" => policy.log_level = Some(log_level(&value)),
            "ro" => policy.ro.extend(items()),
            "rox" => policy.rox.extend(items()),
            "rw" => policy.rw.extend(items()),
            "rwx" => policy.rwx.extend(items()),
            "unix" => policy.unix.extend(items()),
            "env" => policy.env.extend(items().filter(|s| !s.is_empty())),
            "bind-tcp" => policy.bind_tcp.extend(ports(name, &value)?),
            "connect-tcp" => policy.connect_tcp.extend(ports(name, &value)?),
            _ => return Err(format!("flag provided but not defined: -{name}")),
        }
    }
    command.extend(words);
    if policy.log_level.is_none() {
        if let Some(level) = std::env::var_os("LANDRUN_LOG_LEVEL") {
            policy.log_level = Some(log_level(&level.to_string_lossy()));
        }
    }
    if policy.unrestricted_filesystem {
        // landrun ignores --unix paths when the filesystem is unrestricted, even missing ones.
        policy.unix.clear();
    }
    if command.is_empty() {
        return Err("Missing command to run".to_string());
    }
    Ok(Parsed::Run(Box::new(RunArgs {
        policy,
        preserve_fd: Vec::new(),
        explain: false,
        // moat-runtime's settings for its launcher: never landrun's.
        from_runtime: false,
        max_abi: None,
        command,
    })))
}

/// landrun's level for `value`: unknown ones count as `error`.
fn log_level(value: &str) -> String {
    parse_log_level(value).unwrap_or_else(|_| "error".to_string())
}

/// The boolean flag `name` names, if it is one.
fn bool_flag<'a>(policy: &'a mut PolicyArgs, name: &str) -> Option<&'a mut bool> {
    Some(match name {
        "best-effort" => &mut policy.best_effort,
        "unrestricted-filesystem" => &mut policy.unrestricted_filesystem,
        "unrestricted-network" => &mut policy.unrestricted_network,
        "unrestricted-scoped" => &mut policy.unrestricted_scoped,
        "ignore-missing" => &mut policy.ignore_missing,
        "log-disable-originating" => &mut policy.log_same_exec_off,
        "log-enable-subprocesses" => &mut policy.log_new_exec_on,
        "log-disable-subdomains" => &mut policy.log_subdomains_off,
        "ldd" => &mut policy.ldd,
        "add-exec" => &mut policy.add_exec,
        _ => return None,
    })
}

/// A comma list of ports (landrun takes numbers; moat's ranges are accepted too).
fn ports(flag: &str, value: &str) -> Result<Vec<PortRange>, String> {
    value
        .split(',')
        .map(|p| {
            PortRange::parse(p).map_err(|e| format!("invalid value \"{p}\" for flag -{flag}: {e}"))
        })
        .collect()
}

/// Applies landrun's strictness, then runs the command as `moat run` would.
fn launch(args: RunArgs) -> Result<i32, String> {
    let p = &args.policy;
    let all_unrestricted =
        p.unrestricted_filesystem && p.unrestricted_network && p.unrestricted_scoped;
    if !p.best_effort && !all_unrestricted {
        let abi = moat_sandbox::abi::detect().map_err(|e| e.to_string())?;
        let have = abi.effective.number();
        if have < TARGET_ABI {
            return Err(format!(
                "Failed to apply sandbox: this kernel's Landlock ABI is {have}; landrun \
                 {LANDRUN_VERSION} targets ABI {TARGET_ABI} unless --best-effort is given \
                 (then moat enforces what this kernel can and lists what it cannot)"
            ));
        }
    }
    run::run(args).map_err(|f| f.message)
}

/// `landrun --help`.
fn help() -> String {
    format!(
        "landrun {LANDRUN_VERSION} (moat {moat}): run a command in a Landlock sandbox

usage: landrun [flags] [--] COMMAND [ARGS...]

With no path flag nothing is allowed; the command gets only the variables --env names.
Paths, ports and --env values take comma lists; every flag is repeatable.

  --ro PATH            read PATH (and what is beneath it)
  --rox PATH           read and execute PATH
  --rw PATH            read and write PATH
  --rwx PATH           read, write and execute PATH
  --unix PATH          connect to the pathname unix socket PATH (or those beneath it)
  --bind-tcp PORT      bind TCP PORT
  --connect-tcp PORT   connect to TCP PORT
  --env KEY[=VALUE]    pass KEY from this environment, or set it
  --ldd                add the command's ELF interpreter and libraries
  --add-exec           add the command itself (read and execute)
  --unrestricted-filesystem, --unrestricted-network, --unrestricted-scoped
                       leave that domain unrestricted
  --ignore-missing     skip paths that do not exist instead of failing
  --best-effort        run with what this kernel enforces (listed on stderr); without it
                       Landlock ABI {TARGET_ABI} is required
  --log-disable-originating, --log-enable-subprocesses, --log-disable-subdomains
                       Landlock audit logging (ABI 7)
  --log-level LEVEL    error, info or debug (also LANDRUN_LOG_LEVEL); moat prints the same
                       at every level: errors and what is not enforced
  -h, --help           this help
  -v, --version        the landrun release followed, and moat's version

Exit status: the command's own; 1 when landrun fails (bad flag, missing path or command,
denied exec, kernel below ABI {TARGET_ABI} without --best-effort).
This is moat under landrun's name: see `moat run --help` and moat's docs/compatibility.md.
",
        moat = env!("CARGO_PKG_VERSION")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_words(line: &[&str]) -> Result<Parsed, String> {
        parse(line.iter().map(OsString::from).collect())
    }

    fn run_args(line: &[&str]) -> RunArgs {
        match parse_words(line) {
            Ok(Parsed::Run(a)) => *a,
            other => panic!("{line:?} gave {other:?}"),
        }
    }

    #[test]
    fn landrun_defaults_deny_and_clear_the_environment() {
        let a = run_args(&["--", "ls"]);
        assert!(a.policy.deny_by_default);
        assert!(a.policy.clear_env);
        assert!(!a.policy.best_effort);
    }

    #[test]
    fn flags_in_every_spelling() {
        let a = run_args(&[
            "-ro",
            "/a,/b",
            "--rox=/usr",
            "--rw",
            "x",
            "--bind-tcp",
            "80,81",
            "--best-effort=true",
            "--ldd=false",
            "--env",
            "A=1",
            "touch",
            "--rw",
        ]);
        assert_eq!(a.policy.ro, ["/a", "/b"]);
        assert_eq!(a.policy.rox, ["/usr"]);
        assert_eq!(a.policy.rw, ["x"]);
        assert_eq!(a.policy.bind_tcp.len(), 2);
        assert!(a.policy.best_effort);
        assert!(!a.policy.ldd);
        assert_eq!(a.policy.env, ["A=1"]);
        // The command starts at the first word that is not a flag.
        assert_eq!(a.command, ["touch", "--rw"]);
    }

    #[test]
    fn unix_paths_are_dropped_with_an_unrestricted_filesystem() {
        let a = run_args(&["--unrestricted-filesystem", "--unix", "/x.sock", "true"]);
        assert!(a.policy.unix.is_empty());
        let a = run_args(&["--unix", "/x.sock", "true"]);
        assert_eq!(a.policy.unix, ["/x.sock"]);
    }

    #[test]
    fn refusals() {
        for line in [
            &["--log-level", "error"][..],
            &["--no-such-flag", "true"],
            &["--ro"],
            &["--bind-tcp", "http", "true"],
            &["--ldd=maybe", "true"],
        ] {
            assert!(parse_words(line).is_err(), "{line:?} accepted");
        }
        let a = run_args(&["--log-level", "loud", "true"]);
        assert_eq!(a.policy.log_level.as_deref(), Some("error"));
        assert!(matches!(parse_words(&["-h"]), Ok(Parsed::Help)));
        assert!(matches!(parse_words(&["--version"]), Ok(Parsed::Version)));
    }

    #[test]
    fn selected_by_the_file_name_only() {
        assert!(selected_by(OsStr::new("landrun")));
        assert!(selected_by(OsStr::new("/usr/local/bin/landrun")));
        assert!(!selected_by(OsStr::new("moat")));
        assert!(!selected_by(OsStr::new("/opt/landrun/moat")));
        assert!(!selected_by(OsStr::new("landrun2")));
    }
}
