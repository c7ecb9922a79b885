//! Subcommands served by companion binaries (`moat webhook` → `moat-k8s webhook`,
//! `moat watchdog` → `moat-watchdog`, `moat exporter` → `moat-exporter`).
//!
//! The server-side jobs (the admission webhook, later the function watchdog) need an async
//! runtime, TLS and the Kubernetes API types. Linked into `moat` itself they would multiply
//! the size of the binary that sits in front of every sandboxed command, so they live in
//! their own binaries, installed next to `moat`, and `moat` hands their subcommands over
//! with one `execve`, the way git and cargo run their external subcommands.

use std::ffi::{OsStr, OsString};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use super::Failure;

/// A subcommand of `moat` and the companion binary that implements it.
pub struct Companion {
    /// The word after `moat`.
    pub subcommand: &'static str,
    /// The binary installed next to `moat`.
    pub binary: &'static str,
    /// Whether the subcommand word is passed on (`moat webhook ...` → `moat-k8s webhook ...`)
    /// or dropped (`moat k8s render ...` → `moat-k8s render ...`).
    pub keep_word: bool,
}

/// Every subcommand that a companion binary serves.
pub const COMPANIONS: &[Companion] = &[
    Companion {
        subcommand: "webhook",
        binary: "moat-k8s",
        keep_word: true,
    },
    Companion {
        subcommand: "k8s",
        binary: "moat-k8s",
        keep_word: false,
    },
    Companion {
        subcommand: "watchdog",
        binary: "moat-watchdog",
        keep_word: false,
    },
    Companion {
        subcommand: "exporter",
        binary: "moat-exporter",
        keep_word: false,
    },
];

/// The companion serving `word`, if any.
pub fn lookup(word: &OsStr) -> Option<&'static Companion> {
    COMPANIONS.iter().find(|c| word == c.subcommand)
}

/// Where the companion binary is: next to the running `moat` first (an installation keeps
/// them together, and a `cargo build` puts them in the same target directory), else on PATH.
fn locate(binary: &str) -> Option<PathBuf> {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(binary)))
        .filter(|p| is_executable(p));
    beside.or_else(|| {
        std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(binary))
                .find(|p| is_executable(p))
        })
    })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Replaces this process with the companion, passing `args` (the words after the
/// subcommand). Returns only on failure.
pub fn exec(companion: &Companion, args: impl Iterator<Item = OsString>) -> Failure {
    let Some(path) = locate(companion.binary) else {
        return Failure::moat(format!(
            "`moat {}` is served by the companion binary `{}`, which is neither next to this \
             moat nor on PATH (build it with `cargo build --release`, or install it beside moat)",
            companion.subcommand, companion.binary
        ));
    };
    let mut cmd = std::process::Command::new(&path);
    // clap names the program after argv[0] in usage lines: the user typed `moat webhook`
    // or `moat k8s`, so that is what `--help` and errors should show.
    if companion.keep_word {
        cmd.arg0("moat");
    } else {
        cmd.arg0(format!("moat {}", companion.subcommand));
    }
    if companion.keep_word {
        cmd.arg(companion.subcommand);
    }
    cmd.args(args);
    let err = cmd.exec();
    Failure::moat(format!("cannot run {}: {err}", path.display()))
}
