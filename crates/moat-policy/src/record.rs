//! From what a program was seen doing to the smallest moat policy that lets it do it again
//! (`moat record`).
//!
//! A tracer (in `moat-sandbox`) turns each system call into [`Observed`] facts: a right on
//! a path, a port, a socket kind, a signal or abstract socket that leaves the program's own
//! processes. [`synthesize`] folds them into a [`Policy`] in moat's own model:
//!
//! - rights attach where Landlock checks them: file rights on the file, creating and
//!   removing on the directory;
//! - what the run created (files, directories, sockets) did not exist when the policy is
//!   applied next time, so rights on it move up to the nearest directory that existed
//!   before the run (Landlock rules name existing objects);
//! - per-process and per-terminal names (`/proc/<pid>`, `/dev/pts/<n>`) become their
//!   directory, so the policy works for the next run's pids and terminal;
//! - a right that [`Options::dir_threshold`] or more entries of one directory received is
//!   granted on the directory instead, repeatedly, but never on `/`: exact files where the
//!   list is short, directories where many siblings are used. Rights are folded one by
//!   one, so a directory whose files were only read gets no write right.

use crate::model::{Origin, PathRule, Policy, PortRule};
use crate::ports::PortRange;
use crate::rights::{FsAccess, FsRight, NetAccess, NetRight, Right, Scope};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

/// One fact about what a traced program did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Observed {
    /// Rights the program used on `path` (absolute, symlinks resolved).
    Fs {
        /// The object Landlock checks: the file itself, or the directory for create and
        /// remove rights.
        path: PathBuf,
        /// The rights used.
        access: FsAccess,
        /// `path` is a directory.
        is_dir: bool,
    },
    /// `path` did not exist before the program created it.
    Created(PathBuf),
    /// A network right on a port.
    Port {
        /// `bind_tcp`, `connect_tcp`, `bind_udp` or `connect_send_udp`.
        right: NetRight,
        /// The port (0: an ephemeral port).
        port: u16,
    },
    /// The program used a UDP socket.
    Udp,
    /// The program used a socket moat's socket seal refuses (raw, packet, SCTP, MPTCP, an
    /// unusual family): only an unrestricted network allows it.
    UnsealedSocket(String),
    /// The program signalled a process outside its own process tree.
    SignalOutside,
    /// The program connected to an abstract unix socket it did not create itself.
    AbstractSocketOutside,
}

/// How [`synthesize`] folds paths.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// A right used on this many entries of one directory is granted on the directory.
    pub dir_threshold: usize,
    /// Sensitive paths ([`crate::secrets`]) a directory rule must not reach unless the run
    /// used them itself: each beneath a directory rule becomes a path exception.
    pub keep_out: Vec<PathBuf>,
    /// The private temporary directory the run was given: what it did there becomes
    /// `private_tmp = true` instead of rules (the next run gets another directory).
    pub private_tmp: Option<PathBuf>,
    /// The process ids of the run: a path whose name holds one (a runtime socket such as
    /// `app-4242.sock`) belongs to this run only.
    pub pids: BTreeSet<u32>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            dir_threshold: 4,
            keep_out: Vec::new(),
            private_tmp: None,
            pids: BTreeSet::new(),
        }
    }
}

/// The origin given to recorded rules.
pub const ORIGIN: &str = "recorded";

/// The smallest moat policy that allows everything in `observed`.
pub fn synthesize(observed: &[Observed], opts: Options) -> Policy {
    let created: BTreeSet<&Path> = observed
        .iter()
        .filter_map(|o| match o {
            Observed::Created(p) => Some(p.as_path()),
            _ => None,
        })
        .collect();

    // path -> (rights, is_dir)
    let mut grants: BTreeMap<PathBuf, (FsAccess, bool)> = BTreeMap::new();
    let mut policy = Policy::deny_all();
    let mut ports: BTreeMap<u16, NetAccess> = BTreeMap::new();
    for o in observed {
        match o {
            Observed::Fs {
                path,
                access,
                is_dir,
            } => {
                let (path, is_dir) = anchor(path, *is_dir, &created);
                let e = grants.entry(path).or_insert((FsAccess::EMPTY, is_dir));
                e.0 = e.0.union(*access);
                e.1 |= is_dir;
            }
            Observed::Created(_) => {}
            Observed::Port { right, port } => {
                let e = ports.entry(*port).or_default();
                e.insert(*right);
            }
            Observed::Udp => policy.net.allow_udp = true,
            Observed::UnsealedSocket(_) => policy.lift_network(),
            Observed::SignalOutside => policy.scopes = policy.scopes.minus(one(Scope::Signal)),
            Observed::AbstractSocketOutside => {
                policy.scopes = policy.scopes.minus(one(Scope::AbstractUnixSocket))
            }
        }
    }
    if let Some(tmp) = &opts.private_tmp {
        let before = grants.len();
        grants.retain(|path, _| !path.starts_with(tmp));
        policy.fs.private_tmp = grants.len() != before;
    }
    // What the run used itself, before folding hides it.
    let used: BTreeSet<PathBuf> = grants.keys().cloned().collect();
    fold_directories(&mut grants, opts.dir_threshold);
    for secret in &opts.keep_out {
        // A directory rule with a right on the files beneath it (listing it is not one).
        let reached = grants.iter().any(|(dir, (access, is_dir))| {
            *is_dir
                && !access.intersect(FsAccess::file_rights()).is_empty()
                && secret.starts_with(dir)
                && secret != dir
        });
        let touched = used.iter().any(|u| u.starts_with(secret));
        if reached && !touched {
            policy.except_paths([secret.to_string_lossy()], ORIGIN);
        }
    }

    let origin = Origin::new(ORIGIN);
    policy.fs.rules = grants
        .into_iter()
        .filter(|(_, (access, _))| !access.is_empty())
        .map(|(path, (access, is_dir))| PathRule {
            path: path.to_string_lossy().into_owned(),
            // A file rule carries only what Landlock accepts on a file.
            access: if is_dir {
                access
            } else {
                access.intersect(FsAccess::file_rights())
            },
            optional: in_one_session(&path, &opts.pids),
            origin: origin.clone(),
            within: None,
        })
        .collect();
    if !policy.net.unrestricted {
        if policy.net.allow_udp {
            // All UDP is open; port rules for it would say less than that.
            for access in ports.values_mut() {
                *access = access.minus(NetAccess::of(&[
                    NetRight::BindUdp,
                    NetRight::ConnectSendUdp,
                ]));
            }
        }
        policy.net.rules = ports
            .into_iter()
            .filter(|(_, a)| !a.is_empty())
            .map(|(port, access)| PortRule {
                ports: PortRange::single(port),
                access,
                origin: origin.clone(),
            })
            .collect();
    }
    policy
}

impl std::fmt::Display for Observed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Observed::Fs { path, access, .. } => write!(f, "{access} on {}", path.display()),
            Observed::Created(path) => write!(f, "created {}", path.display()),
            Observed::Port { right, port: 0 } => write!(f, "{} on an ephemeral port", right.name()),
            Observed::Port { right, port } => write!(f, "{} on port {port}", right.name()),
            Observed::Udp => write!(f, "a UDP socket"),
            Observed::UnsealedSocket(what) => write!(f, "{what}, outside the socket seal"),
            Observed::SignalOutside => write!(f, "a signal to a process outside its tree"),
            Observed::AbstractSocketOutside => {
                write!(f, "an abstract unix socket it did not create")
            }
        }
    }
}

/// `base` (a policy file) merged with what a run recorded, kept minimal: merging the same
/// run again changes nothing. One rule per path (rights united), one per port range; a
/// rule whose rights a directory rule above it already grants goes, unless a path
/// exception lies between them (the rule then grants what the exception took away).
pub fn merge(base: Policy, recorded: Policy) -> Policy {
    let mut policy = base.merge(recorded);
    let mut by_path: Vec<PathRule> = Vec::new();
    for rule in std::mem::take(&mut policy.fs.rules) {
        match by_path.iter_mut().find(|r| r.path == rule.path) {
            Some(r) => {
                r.access = r.access.union(rule.access);
                r.optional &= rule.optional;
            }
            None => by_path.push(rule),
        }
    }
    let beneath = |child: &str, dir: &str| {
        child
            .strip_prefix(dir)
            .is_some_and(|rest| dir == "/" || rest.starts_with('/'))
            && child != dir
    };
    let exceptions: Vec<String> = policy.fs.except.iter().map(|e| e.path.clone()).collect();
    let covered = |rule: &PathRule| {
        !rule.path.contains('$')
            && by_path.iter().any(|dir| {
                !dir.path.contains('$')
                    && (!dir.optional || rule.optional)
                    && beneath(&rule.path, &dir.path)
                    && dir.access.contains_all(rule.access)
                    && !exceptions.iter().any(|e| {
                        (e == &rule.path || beneath(&rule.path, e)) && beneath(e, &dir.path)
                    })
            })
    };
    let keep: Vec<bool> = by_path.iter().map(|r| !covered(r)).collect();
    policy.fs.rules = by_path
        .into_iter()
        .zip(keep)
        .filter_map(|(r, k)| k.then_some(r))
        .collect();
    let mut seen = BTreeSet::new();
    policy.fs.except.retain(|e| seen.insert(e.path.clone()));
    let mut by_ports: Vec<PortRule> = Vec::new();
    for rule in std::mem::take(&mut policy.net.rules) {
        match by_ports.iter_mut().find(|r| r.ports == rule.ports) {
            Some(r) => r.access = r.access.union(rule.access),
            None => by_ports.push(rule),
        }
    }
    policy.net.rules = by_ports;
    policy
}

fn one(s: Scope) -> crate::rights::ScopeSet {
    crate::rights::ScopeSet::of(&[s])
}

/// Where a right observed on `path` must be granted: the path itself, or, for what the run
/// created and for per-process and per-terminal names, a directory that exists next time.
fn anchor(path: &Path, is_dir: bool, created: &BTreeSet<&Path>) -> (PathBuf, bool) {
    let mut p = generic_name(path).unwrap_or_else(|| path.to_path_buf());
    let mut moved = p != path;
    // The nearest ancestor-or-self that was not created by the run.
    while created.contains(p.as_path()) || ancestors_created(&p, created) {
        match p.parent() {
            Some(parent) if parent != p => {
                p = parent.to_path_buf();
                moved = true;
            }
            _ => break,
        }
    }
    (p, is_dir || moved)
}

fn ancestors_created(p: &Path, created: &BTreeSet<&Path>) -> bool {
    p.ancestors().skip(1).any(|a| created.contains(a))
}

/// Whether `path` names something of the recorded session only: the run's own control
/// group (`/sys/fs/cgroup/<controller>/<its group>/...`, which another service or
/// container does not have), or a name holding one of the run's process ids as a number of
/// its own (`/run/app/worker-4242.sock`; not one of three digits or fewer, which names
/// plenty of ordinary files). Such a rule is optional: a replay elsewhere skips it instead
/// of refusing to start, and the program finds no such file, as it would outside moat.
fn in_one_session(path: &Path, pids: &BTreeSet<u32>) -> bool {
    let cgroup = path
        .strip_prefix("/sys/fs/cgroup")
        .is_ok_and(|rest| rest.components().count() > 1);
    let with_pid = path.components().any(|c| {
        c.as_os_str()
            .to_string_lossy()
            .split(|ch: char| !ch.is_ascii_digit())
            .filter(|run| run.len() > 3)
            .filter_map(|run| run.parse::<u32>().ok())
            .any(|n| pids.contains(&n))
    });
    cgroup || with_pid
}

/// `/proc/<pid>/...` and `/proc/self/...` become `/proc`; `/dev/pts/<n>` becomes
/// `/dev/pts`: the next run has other pids and another terminal.
fn generic_name(path: &Path) -> Option<PathBuf> {
    let mut c = path.components();
    if c.next() != Some(Component::RootDir) {
        return None;
    }
    let first = c.next()?.as_os_str().to_str()?;
    let second = c.next()?.as_os_str().to_str()?;
    match (first, second) {
        ("proc", s)
            if s == "self" || s == "thread-self" || s.bytes().all(|b| b.is_ascii_digit()) =>
        {
            Some(PathBuf::from("/proc"))
        }
        ("dev", "pts") if c.next().is_some() => Some(PathBuf::from("/dev/pts")),
        _ => None,
    }
}

/// Grants a right on a directory when `threshold` or more of its entries received it, and
/// drops it from them; repeated up the tree until nothing changes. Never folds into `/`.
fn fold_directories(grants: &mut BTreeMap<PathBuf, (FsAccess, bool)>, threshold: usize) {
    if threshold == 0 {
        return;
    }
    loop {
        // dir -> right -> entries that hold it
        let mut by_dir: BTreeMap<PathBuf, BTreeMap<FsRight, Vec<PathBuf>>> = BTreeMap::new();
        for (path, (access, _)) in grants.iter() {
            let Some(parent) = path.parent() else {
                continue;
            };
            if parent.parent().is_none() {
                continue; // the parent is `/`
            }
            for r in access.iter() {
                by_dir
                    .entry(parent.to_path_buf())
                    .or_default()
                    .entry(r)
                    .or_default()
                    .push(path.clone());
            }
        }
        let mut changed = false;
        for (dir, rights) in by_dir {
            for (right, entries) in rights {
                if entries.len() < threshold {
                    continue;
                }
                for e in &entries {
                    if let Some(g) = grants.get_mut(e) {
                        g.0 = g.0.minus(FsAccess::of(&[right]));
                    }
                }
                let g = grants.entry(dir.clone()).or_insert((FsAccess::EMPTY, true));
                g.0.insert(right);
                g.1 = true;
                changed = true;
            }
        }
        grants.retain(|_, (a, _)| !a.is_empty());
        // A right granted on a directory covers everything beneath it. Looked up by
        // ancestor (a path's depth), not by pairs of entries: a recording of a tree walk
        // holds tens of thousands of directories.
        let dirs: BTreeMap<PathBuf, FsAccess> = grants
            .iter()
            .filter(|(_, (_, d))| *d)
            .map(|(p, (a, _))| (p.clone(), *a))
            .collect();
        for (path, (access, _)) in grants.iter_mut() {
            for ancestor in path.ancestors().skip(1) {
                if let Some(a) = dirs.get(ancestor) {
                    *access = access.minus(*a);
                }
            }
        }
        grants.retain(|_, (a, _)| !a.is_empty());
        if !changed {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_holding_a_pid_of_the_run_are_optional() {
        let opts = Options {
            pids: BTreeSet::from([4242, 77]),
            ..Options::default()
        };
        let p = synthesize(
            &[
                fs("/run/app/worker-4242.sock", &[FsRight::ReadFile], false),
                fs("/run/app/worker-42421.sock", &[FsRight::ReadFile], false),
                fs("/etc/x77", &[FsRight::ReadFile], false),
            ],
            opts,
        );
        let optional = |path: &str| p.fs.rules.iter().find(|r| r.path == path).unwrap().optional;
        assert!(optional("/run/app/worker-4242.sock"));
        assert!(!optional("/run/app/worker-42421.sock"));
        assert!(
            !optional("/etc/x77"),
            "three digits or fewer are ordinary names"
        );
    }

    #[test]
    fn the_sessions_own_cgroup_is_optional() {
        let p = synthesize(
            &[
                fs(
                    "/sys/fs/cgroup/memory/ci/job-7/memory.limit_in_bytes",
                    &[FsRight::ReadFile],
                    false,
                ),
                fs("/sys/fs/cgroup", &[FsRight::ReadDir], true),
            ],
            Options::default(),
        );
        let optional = |path: &str| p.fs.rules.iter().find(|r| r.path == path).unwrap().optional;
        assert!(optional(
            "/sys/fs/cgroup/memory/ci/job-7/memory.limit_in_bytes"
        ));
        assert!(!optional("/sys/fs/cgroup"));
    }

    #[test]
    fn folds_keep_secrets_out_unless_the_run_used_them() {
        let files = ["a", "b", "c", "d", "e"]
            .map(|n| fs(&format!("/etc/{n}"), &[FsRight::ReadFile], false));
        let opts = Options {
            keep_out: vec![
                PathBuf::from("/etc/shadow"),
                PathBuf::from("/etc/ssl/private"),
            ],
            ..Options::default()
        };
        let p = synthesize(&files, opts.clone());
        let except: Vec<&str> = p.fs.except.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(except, ["/etc/shadow", "/etc/ssl/private"]);
        // Used by the run: granted, not excepted.
        let mut used = files.to_vec();
        used.push(fs("/etc/shadow", &[FsRight::ReadFile], false));
        let p = synthesize(&used, opts.clone());
        let except: Vec<&str> = p.fs.except.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(except, ["/etc/ssl/private"]);
        // No fold, no rule above them: nothing to except.
        let p = synthesize(&files[..2], opts);
        assert!(p.fs.except.is_empty());
    }

    fn fs(path: &str, rights: &[FsRight], is_dir: bool) -> Observed {
        Observed::Fs {
            path: PathBuf::from(path),
            access: FsAccess::of(rights),
            is_dir,
        }
    }

    fn rules(p: &Policy) -> Vec<(String, Vec<&'static str>)> {
        p.fs.rules
            .iter()
            .map(|r| (r.path.clone(), r.access.iter().map(|x| x.name()).collect()))
            .collect()
    }

    #[test]
    fn few_files_stay_files_many_fold_into_their_directory() {
        use FsRight::*;
        let mut o = vec![
            fs("/etc/hosts", &[ReadFile], false),
            fs("/etc/passwd", &[ReadFile], false),
        ];
        for lib in ["a", "b", "c", "d"] {
            o.push(fs(&format!("/usr/lib/x/lib{lib}.so"), &[ReadFile], false));
        }
        o.push(fs("/usr/lib/x/libd.so", &[Execute], false));
        let p = synthesize(&o, Options::default());
        assert_eq!(
            rules(&p),
            [
                ("/etc/hosts".to_string(), vec!["read_file"]),
                ("/etc/passwd".to_string(), vec!["read_file"]),
                ("/usr/lib/x".to_string(), vec!["read_file"]),
                ("/usr/lib/x/libd.so".to_string(), vec!["execute"]),
            ]
        );
    }

    #[test]
    fn reads_never_become_writes() {
        use FsRight::*;
        let mut o: Vec<Observed> = ["a", "b", "c", "d"]
            .iter()
            .map(|f| fs(&format!("/srv/{f}"), &[ReadFile], false))
            .collect();
        o.push(fs("/srv/a", &[WriteFile], false));
        let p = synthesize(&o, Options::default());
        assert_eq!(
            rules(&p),
            [
                ("/srv".to_string(), vec!["read_file"]),
                ("/srv/a".to_string(), vec!["write_file"]),
            ]
        );
    }

    #[test]
    fn what_the_run_created_moves_to_an_existing_directory() {
        use FsRight::*;
        let o = vec![
            Observed::Created("/tmp/build".into()),
            fs("/tmp", &[MakeDir], true),
            Observed::Created("/tmp/build/out.o".into()),
            fs("/tmp/build", &[MakeReg], true),
            fs("/tmp/build/out.o", &[WriteFile, ReadFile], false),
        ];
        let p = synthesize(&o, Options::default());
        assert_eq!(
            rules(&p),
            [(
                "/tmp".to_string(),
                vec!["write_file", "read_file", "make_dir", "make_reg"]
            )]
        );
    }

    #[test]
    fn per_process_names_become_their_directory() {
        use FsRight::*;
        let o = vec![
            fs("/proc/4242/maps", &[ReadFile], false),
            fs("/proc/self/status", &[ReadFile], false),
            fs("/dev/pts/3", &[ReadFile, WriteFile, IoctlDev], false),
            fs("/proc/sys/kernel/ngroups_max", &[ReadFile], false),
        ];
        let p = synthesize(&o, Options::default());
        assert_eq!(
            rules(&p),
            [
                (
                    "/dev/pts".to_string(),
                    vec!["write_file", "read_file", "ioctl_dev"]
                ),
                ("/proc".to_string(), vec!["read_file"]),
            ]
        );
    }

    #[test]
    fn never_folds_into_the_root() {
        let o: Vec<Observed> = ["/a", "/b", "/c", "/d", "/e"]
            .iter()
            .map(|p| fs(p, &[FsRight::ReadFile], false))
            .collect();
        let p = synthesize(&o, Options::default());
        assert_eq!(p.fs.rules.len(), 5);
    }

    #[test]
    fn network_and_scopes() {
        let o = vec![
            Observed::Port {
                right: NetRight::BindTcp,
                port: 8080,
            },
            Observed::Port {
                right: NetRight::ConnectTcp,
                port: 8080,
            },
            Observed::Port {
                right: NetRight::ConnectSendUdp,
                port: 53,
            },
            Observed::Udp,
            Observed::SignalOutside,
        ];
        let p = synthesize(&o, Options::default());
        assert!(p.net.allow_udp && !p.net.unrestricted);
        assert_eq!(p.net.rules.len(), 1);
        assert_eq!(
            p.net.rules[0].access,
            NetAccess::of(&[NetRight::BindTcp, NetRight::ConnectTcp])
        );
        assert!(!p.scopes.contains(Scope::Signal));
        assert!(p.scopes.contains(Scope::AbstractUnixSocket));
        let p = synthesize(
            &[Observed::UnsealedSocket("raw".into())],
            Options::default(),
        );
        assert!(p.net.unrestricted);
    }
}
