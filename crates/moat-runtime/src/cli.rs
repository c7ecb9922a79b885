//! runc's command line, as far as moat-runtime needs to understand it.
//!
//! moat-runtime reads the global flags in front of the subcommand, the subcommand, and for
//! `create`, `run` and `exec` the few options it acts on. Everything else is handed to the
//! real runtime exactly as it came. runc parses with Go's `flag` package (via urfave/cli),
//! so `-root x`, `--root x` and `--root=x` all mean the same, and options end at the first
//! positional argument or at `--`.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

/// The flag that names the real runtime; moat-runtime removes it before passing on.
pub const RUNTIME_FLAG: &str = "moat-runtime";

/// Global flags (runc's, and crun's) that take a value.
pub(crate) const GLOBAL_VALUE_FLAGS: &[&str] = &[
    "log",
    "log-format",
    "root",
    "criu",
    "rootless",
    "cgroup-manager",
    "log-level",
    "handler",
];

/// Options of `create` and `run` that take a value.
const CREATE_VALUE_FLAGS: &[&str] = &["bundle", "b", "console-socket", "pid-file", "preserve-fds"];

/// Options of `restore` that take a value (runc 1.1's list).
const RESTORE_VALUE_FLAGS: &[&str] = &[
    "bundle",
    "b",
    "console-socket",
    "pid-file",
    "image-path",
    "work-path",
    "manage-cgroups-mode",
    "empty-ns",
    "lsm-profile",
    "lsm-mount-context",
    "parent-path",
];

/// Options of `exec` that take a value.
const EXEC_VALUE_FLAGS: &[&str] = &[
    "console-socket",
    "cwd",
    "env",
    "e",
    "user",
    "u",
    "additional-gids",
    "g",
    "process",
    "p",
    "pid-file",
    "process-label",
    "apparmor",
    "cap",
    "c",
    "preserve-fds",
    "cgroup",
];

/// The subcommands moat-runtime acts on; every other one passes straight through.
const CONFINING: &[&str] = &["create", "run", "exec"];

/// Why a command line could not be understood well enough to act on it safely.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A flag that needs a value is last on the line.
    #[error("flag `{0}` needs a value")]
    MissingValue(String),
    /// An option moat-runtime must read has a value it cannot use.
    #[error("flag `{flag}`: `{value}` is not a number")]
    NotANumber {
        /// The flag.
        flag: String,
        /// Its value.
        value: String,
    },
    /// The subcommand could not be found but the line names a confining one: guessing
    /// could start a container without its sandbox.
    #[error("cannot tell the subcommand in this command line (unknown global flag before `{0}`?); refusing to guess")]
    Ambiguous(String),
}

/// The global part of a runtime command line.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Globals {
    /// `--log FILE`.
    pub log: Option<PathBuf>,
    /// `--log-format text|json`.
    pub log_format: Option<String>,
    /// `--moat-runtime PATH` (moat-runtime's own, removed before passing on).
    pub runtime: Option<OsString>,
}

/// A command line split where moat-runtime needs it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CommandLine {
    /// The global flags moat-runtime reads.
    pub globals: Globals,
    /// The global flags as written, without `--moat-runtime`.
    pub global_args: Vec<OsString>,
    /// The subcommand, if any.
    pub command: Option<String>,
    /// Everything after the subcommand, as written.
    pub rest: Vec<OsString>,
}

impl CommandLine {
    /// The argument vector to hand to the real runtime: globals, subcommand, rest.
    pub fn to_args(&self) -> Vec<OsString> {
        let mut v = self.global_args.clone();
        if let Some(c) = &self.command {
            v.push(c.into());
        }
        v.extend(self.rest.iter().cloned());
        v
    }
}

/// A flag's name without its dashes, and its inline value (`--x=v`), or `None` when the
/// argument is not a flag.
fn split_flag(arg: &OsString) -> Option<(String, Option<OsString>)> {
    let b = arg.as_bytes();
    if b.len() < 2 || b[0] != b'-' || b == b"--" {
        return None;
    }
    let body = if b.starts_with(b"--") {
        &b[2..]
    } else {
        &b[1..]
    };
    match body.iter().position(|&c| c == b'=') {
        Some(i) => Some((
            String::from_utf8_lossy(&body[..i]).into_owned(),
            Some(OsString::from_vec(body[i + 1..].to_vec())),
        )),
        None => Some((String::from_utf8_lossy(body).into_owned(), None)),
    }
}

/// Splits a runtime command line (without the program name).
pub fn parse(args: Vec<OsString>) -> Result<CommandLine, CliError> {
    let mut line = CommandLine::default();
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let Some((name, inline)) = split_flag(&arg) else {
            if arg == "--" {
                line.global_args.push(arg);
                continue;
            }
            line.command = Some(arg.to_string_lossy().into_owned());
            break;
        };
        let takes_value = GLOBAL_VALUE_FLAGS.contains(&name.as_str()) || name == RUNTIME_FLAG;
        let value = if takes_value && inline.is_none() {
            Some(
                it.next()
                    .ok_or_else(|| CliError::MissingValue(name.clone()))?,
            )
        } else {
            inline.clone()
        };
        match name.as_str() {
            RUNTIME_FLAG => {
                line.globals.runtime = value;
                continue;
            }
            "log" => line.globals.log = value.clone().map(PathBuf::from),
            "log-format" => {
                line.globals.log_format = value.as_ref().map(|v| v.to_string_lossy().into())
            }
            _ => {}
        }
        line.global_args.push(arg);
        if takes_value && inline.is_none() {
            if let Some(v) = value {
                line.global_args.push(v);
            }
        }
    }
    line.rest = it.collect();
    let known = line
        .command
        .as_deref()
        .is_some_and(|c| KNOWN_COMMANDS.contains(&c));
    if !known {
        // An unknown global flag taking a value would make its value look like the
        // subcommand; refuse rather than let a `create` through unconfined.
        if let Some(c) = line
            .rest
            .iter()
            .find(|a| CONFINING.iter().any(|c| *a == *c))
        {
            return Err(CliError::Ambiguous(c.to_string_lossy().into_owned()));
        }
    }
    Ok(line)
}

/// `globals` (global flags as written) without the flags named in `drop` and their values.
pub fn without_globals(globals: &[OsString], drop: &[&str]) -> Vec<OsString> {
    let mut out = Vec::with_capacity(globals.len());
    let mut it = globals.iter();
    while let Some(arg) = it.next() {
        let Some((name, inline)) = split_flag(arg) else {
            out.push(arg.clone());
            continue;
        };
        let takes_value = GLOBAL_VALUE_FLAGS.contains(&name.as_str()) && inline.is_none();
        if drop.contains(&name.as_str()) {
            if takes_value {
                it.next();
            }
            continue;
        }
        out.push(arg.clone());
        if takes_value {
            if let Some(v) = it.next() {
                out.push(v.clone());
            }
        }
    }
    out
}

/// Every runc subcommand, and crun's extra ones.
const KNOWN_COMMANDS: &[&str] = &[
    "checkpoint",
    "create",
    "delete",
    "events",
    "exec",
    "init",
    "kill",
    "list",
    "pause",
    "ps",
    "restore",
    "resume",
    "run",
    "spec",
    "start",
    "state",
    "update",
    "features",
    "help",
    "h",
    "mounts",
];

/// The options of `create`/`run`/`exec`/`restore` moat-runtime reads, and where the
/// positional arguments start.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CommandOptions {
    /// `-h`/`--help` among the options: the runtime prints the command's usage and does
    /// nothing else.
    pub help: bool,
    /// How many positional arguments follow the options.
    pub positionals: usize,
    /// `--bundle DIR` (create/run).
    pub bundle: Option<PathBuf>,
    /// `--preserve-fds N`.
    pub preserve_fds: u32,
    /// `--process FILE` (exec), and the index in `rest` of its value.
    pub process: Option<(PathBuf, ProcessArg)>,
    /// Index in `rest` of the first positional argument (the container id).
    pub first_positional: Option<usize>,
    /// The first positional argument itself (the container id), wherever the runtime's
    /// parser finds it.
    pub id: Option<OsString>,
}

/// Where the `--process` value sits in the argument vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessArg {
    /// `--process=FILE` at this index.
    Inline(usize),
    /// `--process FILE`: the value at this index.
    Separate(usize),
}

/// Subcommands whose arguments runc (urfave/cli 1.22, `SkipArgReorder` unset) reorders
/// before parsing them, so that options may follow the container id: `create id --bundle
/// b` reads bundle `b`. `exec` keeps its order (what follows the id is the command).
const REORDERED: &[&str] = &["create", "run", "restore"];

/// urfave/cli 1.22's argument reordering: every argument starting with `-` (but `-`
/// alone) moves to the front in order, with the argument after it when that one does not
/// start with `-` (the flag's possible value); the rest follow in order, and everything
/// from `--` on stays at the end.
pub fn reorder(rest: &[OsString]) -> Vec<OsString> {
    let (mut flags, mut others) = (Vec::new(), Vec::new());
    let mut value_may_follow = false;
    for (i, arg) in rest.iter().enumerate() {
        let b = arg.as_bytes();
        if b == b"--" {
            others.extend_from_slice(&rest[i..]);
            break;
        }
        let dash = b.first() == Some(&b'-');
        if value_may_follow && !dash {
            value_may_follow = false;
            flags.push(arg.clone());
            continue;
        }
        value_may_follow = false;
        if dash && b != b"-" {
            flags.push(arg.clone());
            value_may_follow = !b.contains(&b'=');
        } else {
            others.push(arg.clone());
        }
    }
    flags.extend(others);
    flags
}

/// Whether a `delete`'s arguments (after the subcommand) force it: `-f`, `--force` or
/// either `=true`, with any number of dashes, as runc's flag parser takes them.
pub fn delete_forced(rest: &[OsString]) -> bool {
    rest.iter().any(|a| {
        let a = a.to_string_lossy();
        matches!(
            a.trim_start_matches('-'),
            "f" | "force" | "f=true" | "force=true"
        )
    })
}

/// Whether a boolean flag's inline value (`-h=VALUE`) means true, as Go's
/// `strconv.ParseBool` reads it.
fn go_true(value: &OsString) -> bool {
    matches!(
        value.as_bytes(),
        b"1" | b"t" | b"T" | b"true" | b"TRUE" | b"True"
    )
}

/// Reads the options of a subcommand's arguments (`rest`), as runc's parser (Go's `flag`
/// package behind urfave/cli) reads them. For `create`, `run` and `restore` the indices
/// refer to the reordered arguments (see [`reorder`]); moat-runtime only uses them for
/// `exec`, which is not reordered.
pub fn parse_options(command: &str, rest: &[OsString]) -> Result<CommandOptions, CliError> {
    let value_flags = match command {
        "exec" => EXEC_VALUE_FLAGS,
        "restore" => RESTORE_VALUE_FLAGS,
        _ => CREATE_VALUE_FLAGS,
    };
    let reordered;
    let rest = if REORDERED.contains(&command) {
        reordered = reorder(rest);
        &reordered[..]
    } else {
        rest
    };
    let mut o = CommandOptions::default();
    let mut i = 0;
    while i < rest.len() {
        let arg = &rest[i];
        if arg == "--" {
            if i + 1 < rest.len() {
                o.first_positional = Some(i + 1);
                o.id = Some(rest[i + 1].clone());
                o.positionals = rest.len() - i - 1;
            }
            break;
        }
        let Some((name, inline)) = split_flag(arg) else {
            o.first_positional = Some(i);
            o.id = Some(arg.clone());
            o.positionals = rest.len() - i;
            break;
        };
        if matches!(name.as_str(), "h" | "help") && inline.as_ref().is_none_or(go_true) {
            o.help = true;
        }
        let (value, at) = if value_flags.contains(&name.as_str()) {
            match inline {
                Some(v) => (Some(v), ProcessArg::Inline(i)),
                None => {
                    i += 1;
                    let v = rest
                        .get(i)
                        .cloned()
                        .ok_or_else(|| CliError::MissingValue(name.clone()))?;
                    (Some(v), ProcessArg::Separate(i))
                }
            }
        } else {
            (None, ProcessArg::Inline(i))
        };
        if let Some(v) = value {
            match name.as_str() {
                "bundle" | "b" if command != "exec" => o.bundle = Some(PathBuf::from(v)),
                "preserve-fds" => {
                    let s = v.to_string_lossy();
                    o.preserve_fds = s.trim().parse().map_err(|_| CliError::NotANumber {
                        flag: name.clone(),
                        value: s.into_owned(),
                    })?
                }
                "process" | "p" if command == "exec" => o.process = Some((PathBuf::from(v), at)),
                _ => {}
            }
        }
        i += 1;
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn globals_in_every_spelling_and_runtime_flag_removed() {
        let l = parse(os(&[
            "--root",
            "/r",
            "-log=/l",
            "--log-format",
            "json",
            "--moat-runtime",
            "/usr/bin/crun",
            "--systemd-cgroup",
            "create",
            "--bundle",
            "/b",
            "id",
        ]))
        .unwrap();
        assert_eq!(l.globals.log, Some(PathBuf::from("/l")));
        assert_eq!(l.globals.log_format.as_deref(), Some("json"));
        assert_eq!(l.globals.runtime, Some(OsString::from("/usr/bin/crun")));
        assert_eq!(l.command.as_deref(), Some("create"));
        assert_eq!(
            l.to_args(),
            os(&[
                "--root",
                "/r",
                "-log=/l",
                "--log-format",
                "json",
                "--systemd-cgroup",
                "create",
                "--bundle",
                "/b",
                "id"
            ])
        );
    }

    #[test]
    fn inline_runtime_flag_is_removed_too() {
        let l = parse(os(&["--moat-runtime=/x", "state", "id"])).unwrap();
        assert_eq!(l.to_args(), os(&["state", "id"]));
    }

    #[test]
    fn an_unknown_value_flag_before_create_is_refused() {
        assert!(matches!(
            parse(os(&["--weird", "v", "create", "id"])),
            Err(CliError::Ambiguous(_))
        ));
        // Unknown bool flags before a known command are fine.
        assert!(parse(os(&["--weird", "create", "id"])).is_ok());
    }

    #[test]
    fn create_options() {
        let o = parse_options(
            "create",
            &os(&["-b", "/b", "--preserve-fds=2", "--pid-file", "p", "cid"]),
        )
        .unwrap();
        assert_eq!(o.bundle, Some(PathBuf::from("/b")));
        assert_eq!(o.preserve_fds, 2);
        assert_eq!(o.first_positional, Some(5));
        assert!(parse_options("create", &os(&["--preserve-fds", "x", "id"])).is_err());
    }

    #[test]
    fn restore_options_find_the_bundle_past_value_flags() {
        let o = parse_options(
            "restore",
            &os(&[
                "--image-path",
                "/img",
                "--work-path=/w",
                "-d",
                "--bundle",
                "/b",
                "cid",
            ]),
        )
        .unwrap();
        assert_eq!(o.bundle, Some(PathBuf::from("/b")));
        assert_eq!(o.first_positional, Some(6));
        assert_eq!(o.id.as_deref(), Some(std::ffi::OsStr::new("cid")));
    }

    #[test]
    fn options_after_the_container_id_count_for_create_run_restore() {
        // runc reorders: `create id --bundle /b` reads bundle /b.
        let o = parse_options("create", &os(&["id", "--bundle", "/b"])).unwrap();
        assert_eq!(o.bundle, Some(PathBuf::from("/b")));
        assert_eq!(o.positionals, 1);
        let o = parse_options("run", &os(&["id", "-b=/b", "--detach"])).unwrap();
        assert_eq!(o.bundle, Some(PathBuf::from("/b")));
        let o = parse_options("restore", &os(&["id", "--image-path", "/i", "-b", "/b"])).unwrap();
        assert_eq!(o.bundle, Some(PathBuf::from("/b")));
        // A value that starts with a dash is not moved with its flag, and `--` ends it.
        assert_eq!(
            reorder(&os(&["id", "--pid-file", "-x", "--", "--bundle", "/b"])),
            os(&["--pid-file", "-x", "id", "--", "--bundle", "/b"])
        );
        let o = parse_options("create", &os(&["id", "--", "--bundle", "/b"])).unwrap();
        assert_eq!(o.bundle, None);
        assert_eq!(
            o.positionals, 4,
            "runc then refuses: not exactly one argument"
        );
        // exec is not reordered: what follows the id is the command.
        let o = parse_options("exec", &os(&["id", "ls", "-h"])).unwrap();
        assert!(!o.help);
    }

    #[test]
    fn help_is_found_where_runc_finds_it() {
        for line in [
            &["-h"][..],
            &["--help"],
            &["-help"],
            &["id", "-h"],
            &["--help=true"],
            &["-b", "/b", "-h", "id"],
        ] {
            assert!(parse_options("create", &os(line)).unwrap().help, "{line:?}");
        }
        for line in [
            &["--help=false"][..],
            &["--pid-file", "-h", "id"],
            &["id", "--", "-h"],
        ] {
            assert!(
                !parse_options("create", &os(line)).unwrap().help,
                "{line:?}"
            );
        }
        assert!(parse_options("exec", &os(&["-h"])).unwrap().help);
        assert!(!parse_options("exec", &os(&["id", "-h"])).unwrap().help);
    }

    #[test]
    fn log_flags_are_dropped_with_their_values() {
        let g = os(&[
            "--root",
            "/r",
            "--log",
            "/l",
            "--log-format=json",
            "--debug",
            "--systemd-cgroup",
        ]);
        assert_eq!(
            without_globals(&g, &["log", "log-format", "debug"]),
            os(&["--root", "/r", "--systemd-cgroup"])
        );
    }

    #[test]
    fn exec_options() {
        let o = parse_options(
            "exec",
            &os(&["-e", "A=B", "--tty", "--process", "/p.json", "-d", "cid"]),
        )
        .unwrap();
        assert_eq!(
            o.process,
            Some((PathBuf::from("/p.json"), ProcessArg::Separate(4)))
        );
        assert_eq!(o.first_positional, Some(6));
        let o = parse_options("exec", &os(&["--process=/p", "cid"])).unwrap();
        assert_eq!(
            o.process,
            Some((PathBuf::from("/p"), ProcessArg::Inline(0)))
        );
        let o = parse_options("exec", &os(&["cid", "sh", "-c", "x"])).unwrap();
        assert_eq!(o.first_positional, Some(0));
    }
}
