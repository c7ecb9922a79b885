//! A fast parse of `moat run`'s command line, for the launch path.
//!
//! clap builds the whole argument definition (every flag, its help text and value parser)
//! before it parses anything: measured at about 125 us cold and 55 us warm per launch, a
//! large share of what `moat run` adds to a command. This parser, on `lexopt`, handles the
//! ordinary case in a few microseconds and produces the same [`RunArgs`]. Anything out of
//! the ordinary (help, version, a malformed value, an unknown flag, conflicting flags)
//! makes it give up, and clap parses the line again to answer with its usual messages, so
//! clap stays the one definition of the interface. A test checks that both parsers agree.

use super::policy_args::PolicyArgs;
use super::run::RunArgs;
use lexopt::Arg;
use moat_policy::{PortRange, Scope};
use std::ffi::OsString;

/// Parses `moat run` arguments (after `run`), or returns `None` to let clap handle them.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Option<RunArgs> {
    let mut p = lexopt::Parser::from_args(args);
    let mut policy = PolicyArgs::default();
    let mut preserve_fd = Vec::new();
    let mut max_abi = None;
    let mut from_runtime = false;
    let mut command = Vec::new();
    loop {
        let arg = p.next().ok()??;
        match arg {
            Arg::Long(name) => {
                let name = name.to_string();
                match name.as_str() {
                    "policy" => policy.policies.push(value(&mut p)?.into()),
                    "policy-text" => policy.policy_texts.push(value(&mut p)?),
                    "preset" => policy.presets.extend(list(&mut p)?),
                    "ro" => policy.ro.extend(list(&mut p)?),
                    "rox" => policy.rox.extend(list(&mut p)?),
                    "rw" => policy.rw.extend(list(&mut p)?),
                    "rwx" => policy.rwx.extend(list(&mut p)?),
                    "unix" => policy.unix.extend(list(&mut p)?),
                    "except" => policy.except.extend(list(&mut p)?),
                    "keep-cap" => {
                        for name in list(&mut p)? {
                            policy
                                .keep_cap
                                .push(moat_policy::KeepCaps::parse([name.as_str()]).ok()?);
                        }
                    }
                    "bind-tcp" => policy.bind_tcp.extend(ports(&mut p)?),
                    "connect-tcp" => policy.connect_tcp.extend(ports(&mut p)?),
                    "bind-udp" => policy.bind_udp.extend(ports(&mut p)?),
                    "connect-udp" => policy.connect_udp.extend(ports(&mut p)?),
                    "unscoped" => {
                        for s in list(&mut p)? {
                            policy.unscoped.push(match s.as_str() {
                                "signal" => Scope::Signal,
                                "abstract-unix-socket" => Scope::AbstractUnixSocket,
                                _ => return None,
                            });
                        }
                    }
                    "env" => policy.env.push(value(&mut p)?),
                    "log-level" => {
                        if policy.log_level.is_some() {
                            return None;
                        }
                        let level = super::policy_args::parse_log_level(&value(&mut p)?).ok()?;
                        policy.log_level = Some(level);
                    }
                    "preserve-fd" => preserve_fd.push(value(&mut p)?.parse().ok()?),
                    "max-abi" if max_abi.is_none() => max_abi = Some(value(&mut p)?.parse().ok()?),
                    "from-runtime" if !from_runtime => from_runtime = true,
                    "max-abi" | "from-runtime" => return None,
                    _ => flag(&mut policy, &name)?,
                }
            }
            Arg::Value(first) => {
                command.push(first);
                command.extend(p.raw_args().ok()?);
                break;
            }
            // Short flags are -h and -V only: clap's business.
            Arg::Short(_) => return None,
        }
    }
    if command.is_empty() || (policy.best_effort && policy.strict) {
        return None;
    }
    Some(RunArgs {
        policy,
        preserve_fd,
        explain: false,
        max_abi,
        from_runtime,
        command,
    })
}

/// Sets a boolean flag; `None` for a repeated or unknown one (clap reports both).
fn flag(policy: &mut PolicyArgs, name: &str) -> Option<()> {
    let slot = match name {
        "allow-udp" => &mut policy.allow_udp,
        "unrestricted-filesystem" => &mut policy.unrestricted_filesystem,
        "unrestricted-network" => &mut policy.unrestricted_network,
        "unrestricted-scoped" => &mut policy.unrestricted_scoped,
        "best-effort" => &mut policy.best_effort,
        "strict" => &mut policy.strict,
        "ignore-missing" => &mut policy.ignore_missing,
        "ldd" => &mut policy.ldd,
        "add-exec" => &mut policy.add_exec,
        "log-same-exec-off" | "log-disable-originating" => &mut policy.log_same_exec_off,
        "log-new-exec-on" | "log-enable-subprocesses" => &mut policy.log_new_exec_on,
        "log-subdomains-off" | "log-disable-subdomains" => &mut policy.log_subdomains_off,
        "clear-env" => &mut policy.clear_env,
        "private-tmp" => &mut policy.private_tmp,
        _ => return None,
    };
    if *slot {
        return None;
    }
    *slot = true;
    Some(())
}

fn value(p: &mut lexopt::Parser) -> Option<String> {
    p.value().ok()?.into_string().ok()
}

/// A comma list, split the way clap's `value_delimiter = ','` splits it.
fn list(p: &mut lexopt::Parser) -> Option<Vec<String>> {
    Some(value(p)?.split(',').map(str::to_string).collect())
}

fn ports(p: &mut lexopt::Parser) -> Option<Vec<PortRange>> {
    list(p)?.iter().map(|s| PortRange::parse(s).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Args, FromArgMatches};

    fn by_clap(line: &[&str]) -> Option<RunArgs> {
        let cmd = RunArgs::augment_args(clap::Command::new("run"));
        let m = cmd
            .try_get_matches_from(std::iter::once("run").chain(line.iter().copied()))
            .ok()?;
        RunArgs::from_arg_matches(&m).ok()
    }

    fn by_fast(line: &[&str]) -> Option<RunArgs> {
        parse(line.iter().map(OsString::from))
    }

    #[test]
    fn agrees_with_clap() {
        let lines: &[&[&str]] = &[
            &["--", "true"],
            &["--private-tmp", "--ro", "/etc", "--", "true"],
            &["true", "-x", "--ro", "y"],
            &[
                "--rox",
                "/usr,/lib,/lib64,/bin",
                "--ro",
                "/etc",
                "--",
                "/bin/true",
            ],
            &[
                "--rw=/tmp",
                "--rwx",
                "/opt",
                "--ro",
                "a,b",
                "--",
                "ls",
                "-l",
            ],
            &[
                "--bind-tcp",
                "80,8000-8010",
                "--connect-tcp=443",
                "--bind-udp",
                "53",
                "--connect-udp",
                "5353",
                "cmd",
            ],
            &[
                "--policy",
                "a.toml",
                "--policy=b.json",
                "--preset",
                "default,shell",
                "--preset",
                "minimal",
                "--",
                "x",
            ],
            &[
                "--allow-udp",
                "--unrestricted-filesystem",
                "--unrestricted-network",
                "--best-effort",
                "--ignore-missing",
                "--",
                "x",
            ],
            &[
                "--strict",
                "--ldd",
                "--add-exec",
                "--log-same-exec-off",
                "--log-new-exec-on",
                "--log-subdomains-off",
                "x",
            ],
            &[
                "--env",
                "A=1",
                "--env",
                "B",
                "--clear-env",
                "--preserve-fd",
                "5",
                "--preserve-fd=7",
                "--",
                "env",
            ],
            &["--unscoped", "signal,abstract-unix-socket", "--", "x"],
            // landrun's spellings.
            &[
                "--log-level",
                "debug",
                "--unrestricted-scoped",
                "--log-disable-originating",
                "--log-enable-subprocesses",
                "--log-disable-subdomains",
                "--",
                "x",
            ],
            &["--log-level=ERROR", "--unscoped", "signal", "x"],
            &[
                "--unix",
                "/run/a.sock,/run/b",
                "--except=/etc/shadow",
                "--except",
                "rel/dir",
                "--keep-cap",
                "chown,NET_BIND_SERVICE",
                "--keep-cap=all",
                "--",
                "x",
            ],
            &[
                "--policy-text",
                "{\"filesystem\":{\"read\":[\"/etc\"]}}",
                "--policy",
                "a.toml",
                "--policy-text=[filesystem]\nread = [\"/a b\", \"/\u{e9}\"]\n",
                "--policy-text",
                "- not a policy",
                "--ro",
                "/x",
                "--",
                "x",
            ],
            &["--", "--not-a-flag", "--ro", "x"],
            &[
                "--from-runtime",
                "--max-abi",
                "3",
                "--policy-text",
                "{}",
                "--preserve-fd",
                "3",
                "--",
                "x",
            ],
        ];
        for line in lines {
            let clap = by_clap(line).unwrap_or_else(|| panic!("clap refused {line:?}"));
            let fast = by_fast(line).unwrap_or_else(|| panic!("fast parser gave up on {line:?}"));
            assert_eq!(format!("{fast:?}"), format!("{clap:?}"), "{line:?}");
        }
    }

    #[test]
    fn gives_up_where_clap_must_answer() {
        let lines: &[&[&str]] = &[
            &["--help"],
            &["--from-runtime", "--from-runtime", "x"],
            &["--max-abi", "seven", "x"],
            &["-h"],
            &["--version"],
            &[],
            &["--ro"],
            &["--policy-text"],
            &["--bind-tcp", "70000", "--", "x"],
            &["--best-effort", "--strict", "--", "x"],
            &["--ldd", "--ldd", "--", "x"],
            &["--unscoped", "everything", "--", "x"],
            &["--keep-cap", "chwon", "--", "x"],
            &["--preserve-fd", "x", "--", "y"],
            &["--no-such-flag", "--", "x"],
            &["--log-level", "loud", "--", "x"],
            &["--log-level", "info", "--log-level", "debug", "--", "x"],
            &[
                "--log-same-exec-off",
                "--log-disable-originating",
                "--",
                "x",
            ],
        ];
        for line in lines {
            assert!(by_fast(line).is_none(), "fast parser accepted {line:?}");
        }
    }
}
