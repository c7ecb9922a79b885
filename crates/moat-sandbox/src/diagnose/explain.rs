//! What the sandbox denied, and what would allow it (`moat run --explain`).
//!
//! Denials come from two sources: the kernel's own Landlock audit records
//! ([`crate::diagnose::audit`]), exact but only where audit is enabled and readable, and the tracer
//! ([`crate::diagnose::trace`]), whose observed calls are checked here against the plan the same
//! way Landlock checks them ([`Checker`]). Either way each denial becomes one [`Denial`]
//! that names the operation, the object and the flag or policy line that would allow it.

use crate::plan::Plan;
use crate::remedy::Remedy;
use moat_policy::record::Observed;
use moat_policy::{FsAccess, FsGroup, FsRight, NetAccess, NetRight, Right, Scope, ScopeSet};
use std::fmt;
use std::path::{Path, PathBuf};

/// What was denied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Denied {
    /// Filesystem rights on a path (the file, or the directory for create and remove).
    Fs {
        /// The object.
        path: PathBuf,
        /// The rights it lacked.
        rights: Vec<FsRight>,
    },
    /// A network right on a port.
    Port {
        /// The right.
        right: NetRight,
        /// The port.
        port: u16,
    },
    /// Reaching a process outside the sandbox.
    Scope(Scope),
}

/// Whether a denied `ioctl` on a device could have mattered to the program: a terminal
/// request (type `'T'`: `TCGETS`, `TIOCGWINSZ`, ...) on a device that is no terminal would
/// have failed with `ENOTTY` anyway (`isatty(3)` on `/dev/null`, which many programs ask),
/// so Landlock's `EACCES` changes nothing and the denial is not worth a line.
pub(crate) fn ioctl_matters(cmd: u64, rdev: u64) -> bool {
    let terminal_request = (cmd >> 8) & 0xff == u64::from(b'T');
    !terminal_request || is_terminal(rdev)
}

/// Whether character device `rdev` is a terminal: its class in sysfs is `tty` (consoles,
/// pseudo-terminals, serial and USB serial ports alike), found without opening the
/// device. Without sysfs, the majors every kernel gives terminals.
fn is_terminal(rdev: u64) -> bool {
    let (major, minor) = (libc::major(rdev), libc::minor(rdev));
    match std::fs::read_link(format!("/sys/dev/char/{major}:{minor}/subsystem")) {
        Ok(class) => class.file_name().is_some_and(|n| n == "tty"),
        // 4: virtual consoles and serial, 5: /dev/tty, /dev/console, /dev/ptmx,
        // 136-143: pseudo-terminal slaves.
        Err(_) => matches!(major, 4 | 5 | 136..=143),
    }
}

#[cfg(test)]
mod ioctl_tests {
    use super::*;

    #[test]
    fn terminal_requests_matter_only_on_terminals() {
        let tcgets = 0x5401;
        let dev = |major: u32, minor: u32| libc::makedev(major, minor);
        // /dev/null (1:3) is no terminal; /dev/ptmx (5:2) is.
        assert!(!ioctl_matters(tcgets, dev(1, 3)));
        assert!(ioctl_matters(tcgets, dev(5, 2)));
        // Any other request on /dev/null is reported.
        assert!(ioctl_matters(0x1234_5678, dev(1, 3)));
    }
}

/// A denial and who ran into it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denial {
    /// What was denied.
    pub what: Denied,
    /// The process.
    pub pid: i32,
    /// Its command name.
    pub comm: String,
}

fn rights_text(rights: &[FsRight]) -> String {
    rights
        .iter()
        .map(|r| r.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The smallest intent group holding `rights`. `devices` is no intent group (it is not
/// made of reads, writes or executes), so a denied device creation is offered `all`.
fn group_for(rights: FsAccess) -> FsGroup {
    FsGroup::ALL
        .into_iter()
        .filter(|g| *g != FsGroup::Devices)
        .find(|g| g.access().contains_all(rights))
        .unwrap_or(FsGroup::All)
}

impl Denied {
    /// What would allow it; each front end says it in its own words.
    pub fn remedy(&self) -> Remedy {
        match self {
            Denied::Fs { path, rights } => Remedy::Grant {
                path: path.clone(),
                group: group_for(FsAccess::of(rights)),
            },
            Denied::Port { right, port } => Remedy::AllowPort {
                right: *right,
                port: *port,
            },
            Denied::Scope(s) => Remedy::Unscope(*s),
        }
    }
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Denied::Fs { path, rights } => {
                write!(f, "{} on {}", rights_text(rights), path.display())
            }
            Denied::Port { right, port } => write!(f, "{} on port {port}", right.name()),
            Denied::Scope(Scope::Signal) => {
                write!(f, "sending a signal to a process outside the sandbox")
            }
            Denied::Scope(Scope::AbstractUnixSocket) => write!(
                f,
                "connecting to an abstract unix socket of a process outside the sandbox"
            ),
        }
    }
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (pid {}): denied {}", self.comm, self.pid, self.what)
    }
}

/// Checks observed calls against a plan as Landlock would.
pub struct Checker {
    fs_handled: FsAccess,
    /// Canonical rule paths, whether they are directories, and their rights.
    rules: Vec<(PathBuf, bool, FsAccess)>,
    net_handled: NetAccess,
    ports: Vec<(u16, NetAccess)>,
    scopes: ScopeSet,
}

impl Checker {
    /// A checker for what `plan` enforces.
    pub fn new(plan: &Plan) -> Checker {
        match &plan.landlock {
            None => Checker {
                fs_handled: FsAccess::EMPTY,
                rules: Vec::new(),
                net_handled: NetAccess::EMPTY,
                ports: Vec::new(),
                scopes: ScopeSet::EMPTY,
            },
            Some(l) => Checker {
                fs_handled: l.fs_handled,
                rules: l
                    .path_rules
                    .iter()
                    .map(|r| {
                        let p = std::fs::canonicalize(&r.path).unwrap_or_else(|_| r.path.clone());
                        (p, r.is_dir, r.access)
                    })
                    .collect(),
                net_handled: l.net_handled,
                ports: l.port_rules.clone(),
                scopes: l.scopes,
            },
        }
    }

    /// The rights on `path` that no rule grants.
    fn missing(&self, path: &Path, access: FsAccess) -> FsAccess {
        let mut needed = access.intersect(self.fs_handled);
        for (rule, is_dir, granted) in &self.rules {
            let covers = if *is_dir {
                path.starts_with(rule)
            } else {
                path == rule
            };
            if covers {
                needed = needed.minus(*granted);
            }
        }
        needed
    }

    /// What of `observed` the plan denies.
    pub fn check(&self, observed: &Observed) -> Option<Denied> {
        match observed {
            Observed::Fs { path, access, .. } => {
                let missing = self.missing(path, *access);
                (!missing.is_empty()).then(|| Denied::Fs {
                    path: path.clone(),
                    rights: missing.iter().collect(),
                })
            }
            Observed::Port { right, port } => {
                let handled = self.net_handled.contains(*right);
                let granted = self
                    .ports
                    .iter()
                    .any(|(p, a)| p == port && a.contains(*right));
                (handled && !granted).then_some(Denied::Port {
                    right: *right,
                    port: *port,
                })
            }
            Observed::SignalOutside => self
                .scopes
                .contains(Scope::Signal)
                .then_some(Denied::Scope(Scope::Signal)),
            Observed::AbstractSocketOutside => self
                .scopes
                .contains(Scope::AbstractUnixSocket)
                .then_some(Denied::Scope(Scope::AbstractUnixSocket)),
            // Refused by the socket seal before the tracer sees them; `moat check` lists
            // what the seal refuses.
            Observed::Udp | Observed::UnsealedSocket(_) | Observed::Created(_) => None,
        }
    }
}

impl Checker {
    /// What the plan denies of one call's observations. When creating an entry is denied,
    /// the kernel stops there: the rights the new file would have needed are not reported.
    pub fn check_call(&self, observed: &[Observed]) -> Vec<Denied> {
        let mut out: Vec<Denied> = Vec::new();
        for o in observed {
            let Some(d) = self.check(o) else { continue };
            let blocked = match &d {
                Denied::Fs { path, .. } => out.iter().any(|prev| match prev {
                    Denied::Fs { path: dir, rights } => {
                        path.parent() == Some(dir.as_path())
                            && rights.iter().any(|r| MAKE.contains(r))
                    }
                    _ => false,
                }),
                _ => false,
            };
            if !blocked {
                out.push(d);
            }
        }
        out
    }
}

const MAKE: [FsRight; 7] = [
    FsRight::MakeReg,
    FsRight::MakeDir,
    FsRight::MakeSym,
    FsRight::MakeSock,
    FsRight::MakeFifo,
    FsRight::MakeChar,
    FsRight::MakeBlock,
];

/// Collects denials in order of first appearance, each once.
#[derive(Default)]
pub struct Denials {
    seen: Vec<Denial>,
}

impl Denials {
    /// Adds `d` unless the same operation on the same object was already denied.
    pub fn add(&mut self, d: Denial) {
        if !self.seen.iter().any(|s| s.what == d.what) {
            self.seen.push(d);
        }
    }

    /// The denials collected.
    pub fn into_vec(self) -> Vec<Denial> {
        self.seen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remedies_name_the_smallest_group() {
        let fs = |path: &str, rights: Vec<FsRight>| Denied::Fs {
            path: path.into(),
            rights,
        };
        let grant = |path: &str, group| Remedy::Grant {
            path: path.into(),
            group,
        };
        assert_eq!(
            fs("/root/.bashrc", vec![FsRight::ReadFile]).remedy(),
            grant("/root/.bashrc", FsGroup::Read)
        );
        assert_eq!(
            fs("/opt/x", vec![FsRight::Execute, FsRight::ReadFile]).remedy(),
            grant("/opt/x", FsGroup::ReadExec)
        );
        assert_eq!(
            fs("/etc", vec![FsRight::MakeReg]).remedy(),
            grant("/etc", FsGroup::Write)
        );
        let port = Denied::Port {
            right: NetRight::BindTcp,
            port: 100,
        };
        assert_eq!(
            port.remedy().policy_line().as_deref(),
            Some("[network] bind_tcp = [100]")
        );
        assert!(Denied::Scope(Scope::Signal)
            .remedy()
            .policy_line()
            .is_some_and(|l| l.contains("[scopes] signal = false")));
    }
}
