//! From one intercepted system call to what a policy must allow for it.
//!
//! The call is read at entry, before it runs: its outcome is not known, so a call that
//! fails for another reason (a missing file) is still recorded as an attempt, which is what
//! the program needs to be allowed to try. Paths are made absolute against the caller's
//! working directory or directory descriptor and resolved like the kernel does (symlinks
//! followed), because Landlock rules name the objects, not the spellings.

use super::memory::{self, read_bytes, read_c_string};
use super::notify::Notification;
use crate::seccomp::{decide_socket, Decision, Seal};
use moat_policy::record::Observed;
use moat_policy::{FsAccess, FsRight, NetRight};
use std::collections::BTreeSet;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// One intercepted call and what it needs.
#[derive(Clone, Debug)]
pub struct Event {
    /// The calling thread.
    pub pid: i32,
    /// The system call, by name.
    pub call: &'static str,
    /// What a policy must allow for it.
    pub observed: Vec<Observed>,
}

impl Event {
    /// The caller's command name, read from /proc: only while the call is held (inside the
    /// callback of [`super::Session::run`]) is the pid sure to be the caller's.
    pub fn comm(&self) -> String {
        memory::comm(self.pid)
    }
}

/// Decodes calls of one traced process tree.
pub struct Decoder {
    root: i32,
    /// Abstract unix socket names the tree bound itself.
    abstract_bound: BTreeSet<Vec<u8>>,
    /// Every thread that made a traced call: each is under the sandbox's filter, so inside
    /// the sandbox, even when it left the process tree (a daemon the run started, which
    /// its parent's exit reparented).
    members: BTreeSet<i32>,
}

const FIOCLEX: u64 = 0x5451;
const FIONCLEX: u64 = 0x5450;
const FIONBIO: u64 = 0x5421;
const FIOASYNC: u64 = 0x5452;
const FIOQSIZE: u64 = 0x5460;

fn fs(path: PathBuf, rights: &[FsRight], is_dir: bool) -> Observed {
    Observed::Fs {
        path,
        access: FsAccess::of(rights),
        is_dir,
    }
}

/// `path` with symlinks resolved; for a path that does not exist (yet), its resolved
/// parent joined with its name.
fn resolve(path: &Path) -> PathBuf {
    if let Ok(c) = std::fs::canonicalize(path) {
        return c;
    }
    match (path.parent(), path.file_name()) {
        (Some(parent), Some(name)) => std::fs::canonicalize(parent)
            .unwrap_or_else(|_| parent.to_path_buf())
            .join(name),
        _ => path.to_path_buf(),
    }
}

/// The parent directory Landlock checks for creating or removing `path`.
fn parent(path: &Path) -> PathBuf {
    path.parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"))
}

/// The right to create an object of the type in `mode`.
fn make_right(mode: u32) -> FsRight {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => FsRight::MakeDir,
        libc::S_IFCHR => FsRight::MakeChar,
        libc::S_IFBLK => FsRight::MakeBlock,
        libc::S_IFIFO => FsRight::MakeFifo,
        libc::S_IFSOCK => FsRight::MakeSock,
        libc::S_IFLNK => FsRight::MakeSym,
        _ => FsRight::MakeReg,
    }
}

impl Decoder {
    /// A decoder for the tree rooted at `root` (the traced child).
    pub fn new(root: i32) -> Decoder {
        Decoder {
            root,
            abstract_bound: BTreeSet::new(),
            members: BTreeSet::from([root]),
        }
    }

    /// What `n` needs. Memory is read here; the caller checks the notification is still
    /// valid afterwards.
    pub fn decode(&mut self, n: &Notification) -> Event {
        let pid = n.pid as i32;
        self.members.insert(pid);
        let a = n.data.args;
        let nr = i64::from(n.data.nr);
        let mut out = Vec::new();
        let path_at = |dirfd: u64, addr: u64| -> Option<PathBuf> {
            let p = PathBuf::from(read_c_string(pid, addr)?);
            if p.is_absolute() {
                // Resolved here, /proc/self would be moat's own: make it the caller's.
                for own in ["/proc/self", "/proc/thread-self"] {
                    if let Ok(rest) = p.strip_prefix(own) {
                        return Some(Path::new("/proc").join(pid.to_string()).join(rest));
                    }
                }
                return Some(p);
            }
            Some(memory::fd_path(pid, dirfd as i32 as i64)?.join(p))
        };
        let cwd = libc::AT_FDCWD as u64;
        let call: &'static str = match nr {
            #[cfg(target_arch = "x86_64")]
            libc::SYS_open => {
                if let Some(p) = path_at(cwd, a[0]) {
                    self.open(&p, a[1], &mut out);
                }
                "open"
            }
            #[cfg(target_arch = "x86_64")]
            libc::SYS_creat => {
                if let Some(p) = path_at(cwd, a[0]) {
                    let flags = (libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC) as u64;
                    self.open(&p, flags, &mut out);
                }
                "creat"
            }
            libc::SYS_openat => {
                if let Some(p) = path_at(a[0], a[1]) {
                    self.open(&p, a[2], &mut out);
                }
                "openat"
            }
            libc::SYS_openat2 => {
                // struct open_how starts with the u64 flags.
                let flags = read_bytes(pid, a[2], 8)
                    .and_then(|b| b.try_into().ok())
                    .map(u64::from_ne_bytes);
                if let (Some(p), Some(flags)) = (path_at(a[0], a[1]), flags) {
                    self.open(&p, flags, &mut out);
                }
                "openat2"
            }
            libc::SYS_execve => {
                if let Some(p) = path_at(cwd, a[0]) {
                    exec(&p, &mut out);
                }
                "execve"
            }
            libc::SYS_execveat => {
                let empty = a[4] & libc::AT_EMPTY_PATH as u64 != 0;
                let p = match read_c_string(pid, a[1]) {
                    Some(s) if s.is_empty() && empty => memory::fd_path(pid, a[0] as i32 as i64),
                    _ => path_at(a[0], a[1]),
                };
                if let Some(p) = p {
                    exec(&p, &mut out);
                }
                "execveat"
            }
            #[cfg(target_arch = "x86_64")]
            libc::SYS_mkdir => {
                self.create(path_at(cwd, a[0]), FsRight::MakeDir, &mut out);
                "mkdir"
            }
            libc::SYS_mkdirat => {
                self.create(path_at(a[0], a[1]), FsRight::MakeDir, &mut out);
                "mkdirat"
            }
            #[cfg(target_arch = "x86_64")]
            libc::SYS_mknod => {
                self.create(path_at(cwd, a[0]), make_right(a[1] as u32), &mut out);
                "mknod"
            }
            libc::SYS_mknodat => {
                self.create(path_at(a[0], a[1]), make_right(a[2] as u32), &mut out);
                "mknodat"
            }
            #[cfg(target_arch = "x86_64")]
            libc::SYS_symlink => {
                self.create(path_at(cwd, a[1]), FsRight::MakeSym, &mut out);
                "symlink"
            }
            libc::SYS_symlinkat => {
                self.create(path_at(a[1], a[2]), FsRight::MakeSym, &mut out);
                "symlinkat"
            }
            #[cfg(target_arch = "x86_64")]
            libc::SYS_rmdir => {
                remove(path_at(cwd, a[0]), FsRight::RemoveDir, &mut out);
                "rmdir"
            }
            #[cfg(target_arch = "x86_64")]
            libc::SYS_unlink => {
                remove(path_at(cwd, a[0]), FsRight::RemoveFile, &mut out);
                "unlink"
            }
            libc::SYS_unlinkat => {
                let right = if a[2] & libc::AT_REMOVEDIR as u64 != 0 {
                    FsRight::RemoveDir
                } else {
                    FsRight::RemoveFile
                };
                remove(path_at(a[0], a[1]), right, &mut out);
                "unlinkat"
            }
            #[cfg(target_arch = "x86_64")]
            libc::SYS_rename => {
                rename(path_at(cwd, a[0]), path_at(cwd, a[1]), false, &mut out);
                "rename"
            }
            libc::SYS_renameat => {
                rename(path_at(a[0], a[1]), path_at(a[2], a[3]), false, &mut out);
                "renameat"
            }
            libc::SYS_renameat2 => {
                let exchange = a[4] & libc::RENAME_EXCHANGE as u64 != 0;
                rename(path_at(a[0], a[1]), path_at(a[2], a[3]), exchange, &mut out);
                "renameat2"
            }
            #[cfg(target_arch = "x86_64")]
            libc::SYS_link => {
                self.link(path_at(cwd, a[0]), path_at(cwd, a[1]), &mut out);
                "link"
            }
            libc::SYS_linkat => {
                self.link(path_at(a[0], a[1]), path_at(a[2], a[3]), &mut out);
                "linkat"
            }
            libc::SYS_truncate => {
                if let Some(p) = path_at(cwd, a[0])
                    .map(|p| resolve(&p))
                    .filter(|p| p.exists())
                {
                    out.push(fs(p, &[FsRight::Truncate], false));
                }
                "truncate"
            }
            libc::SYS_ftruncate => {
                if let Some(p) = memory::fd_path(pid, a[0] as i32 as i64) {
                    if p.is_absolute() {
                        out.push(fs(p, &[FsRight::Truncate], false));
                    }
                }
                "ftruncate"
            }
            libc::SYS_socket => {
                socket(a[0] as i32, a[1] as i32, a[2] as i32, &mut out);
                "socket"
            }
            libc::SYS_bind => {
                self.address(pid, a[0], a[1], a[2], true, &mut out);
                "bind"
            }
            libc::SYS_connect => {
                self.address(pid, a[0], a[1], a[2], false, &mut out);
                "connect"
            }
            libc::SYS_kill | libc::SYS_rt_sigqueueinfo => {
                self.signal(pid, a[0] as i32, &mut out);
                if nr == libc::SYS_kill {
                    "kill"
                } else {
                    "rt_sigqueueinfo"
                }
            }
            libc::SYS_tkill => {
                self.signal(pid, a[0] as i32, &mut out);
                "tkill"
            }
            libc::SYS_tgkill | libc::SYS_rt_tgsigqueueinfo => {
                self.signal(pid, a[0] as i32, &mut out);
                if nr == libc::SYS_tgkill {
                    "tgkill"
                } else {
                    "rt_tgsigqueueinfo"
                }
            }
            libc::SYS_ioctl => {
                ioctl(pid, a[0] as i32 as i64, a[1], &mut out);
                "ioctl"
            }
            _ => "?",
        };
        Event {
            pid,
            call,
            observed: out,
        }
    }

    fn open(&self, path: &Path, flags: u64, out: &mut Vec<Observed>) {
        let flags = flags as i32;
        if flags & libc::O_PATH != 0 {
            return; // O_PATH opens need no right
        }
        let p = resolve(path);
        let acc = flags & libc::O_ACCMODE;
        let mut file = Vec::new();
        if acc == libc::O_RDONLY || acc == libc::O_RDWR {
            file.push(FsRight::ReadFile);
        }
        if acc == libc::O_WRONLY || acc == libc::O_RDWR {
            file.push(FsRight::WriteFile);
        }
        if flags & libc::O_TRUNC != 0 {
            file.push(FsRight::Truncate);
        }
        if flags & libc::O_TMPFILE == libc::O_TMPFILE {
            // An unnamed file in directory `p`.
            file.push(FsRight::MakeReg);
            out.push(fs(p, &file, true));
            return;
        }
        match std::fs::metadata(&p) {
            Ok(m) if m.is_dir() => out.push(fs(p, &[FsRight::ReadDir], true)),
            Ok(_) => out.push(fs(p, &file, false)),
            Err(_) if flags & libc::O_CREAT != 0 => {
                out.push(Observed::Created(p.clone()));
                out.push(fs(parent(&p), &[FsRight::MakeReg], true));
                out.push(fs(p, &file, false));
            }
            // Does not exist and is not created: the lookup fails before Landlock is
            // asked, so no rule is needed (and none could name it).
            Err(_) => {}
        }
    }

    fn create(&self, path: Option<PathBuf>, right: FsRight, out: &mut Vec<Observed>) {
        // An existing entry fails with EEXIST before Landlock is asked (`mkdir -p` tries
        // every component): no right, and nothing created.
        let path = path.filter(|p| p.symlink_metadata().is_err());
        if let Some(p) = path.map(|p| resolve(&p)) {
            out.push(fs(parent(&p), &[right], true));
            out.push(Observed::Created(p));
        }
    }

    fn link(&self, from: Option<PathBuf>, to: Option<PathBuf>, out: &mut Vec<Observed>) {
        let (Some(from), Some(to)) = (from.map(|p| resolve(&p)), to.map(|p| resolve(&p))) else {
            return;
        };
        if to.symlink_metadata().is_ok() {
            return; // EEXIST before Landlock is asked
        }
        let (src, dst) = (parent(&from), parent(&to));
        if src != dst {
            out.push(fs(src, &[FsRight::Refer], true));
            out.push(fs(dst.clone(), &[FsRight::Refer], true));
        }
        out.push(fs(dst, &[FsRight::MakeReg], true));
        out.push(Observed::Created(to));
    }

    fn address(
        &mut self,
        pid: i32,
        fd: u64,
        addr: u64,
        len: u64,
        bind: bool,
        out: &mut Vec<Observed>,
    ) {
        let len = (len as usize).min(std::mem::size_of::<libc::sockaddr_storage>());
        let Some(sa) = read_bytes(pid, addr, len) else {
            return;
        };
        if sa.len() < 2 {
            return;
        }
        let family = i32::from(u16::from_ne_bytes([sa[0], sa[1]]));
        match family {
            libc::AF_INET | libc::AF_INET6 if sa.len() >= 4 => {
                let port = u16::from_be_bytes([sa[2], sa[3]]);
                let sock = memory::steal_fd(pid, fd as i32 as i64);
                let kind = sock
                    .as_ref()
                    .and_then(|s| memory::sockopt(s, libc::SO_TYPE));
                let right = match (kind, bind) {
                    (Some(libc::SOCK_DGRAM), true) => NetRight::BindUdp,
                    (Some(libc::SOCK_DGRAM), false) => NetRight::ConnectSendUdp,
                    (_, true) => NetRight::BindTcp,
                    (_, false) => NetRight::ConnectTcp,
                };
                out.push(Observed::Port { right, port });
            }
            libc::AF_UNIX if sa.len() > 2 => {
                let name = &sa[2..];
                if name[0] == 0 {
                    let name = name.to_vec();
                    if bind {
                        self.abstract_bound.insert(name);
                    } else if !self.abstract_bound.contains(&name) {
                        out.push(Observed::AbstractSocketOutside);
                    }
                    return;
                }
                let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
                let raw = PathBuf::from(std::ffi::OsStr::from_bytes(&name[..end]));
                let path = if raw.is_absolute() {
                    raw
                } else {
                    match memory::fd_path(pid, i64::from(libc::AT_FDCWD)) {
                        Some(cwd) => cwd.join(raw),
                        None => return,
                    }
                };
                let p = resolve(&path);
                if bind {
                    out.push(fs(parent(&p), &[FsRight::MakeSock], true));
                    out.push(Observed::Created(p));
                } else if p.exists() {
                    out.push(fs(p, &[FsRight::ResolveUnix], false));
                }
            }
            _ => {}
        }
    }

    fn signal(&self, caller: i32, target: i32, out: &mut Vec<Observed>) {
        let inside = match target {
            // Its own process group, or a single process of the tree.
            0 => true,
            -1 => false,
            t if t > 0 => self.members.contains(&t) || memory::in_tree(t, self.root),
            // A process group: inside when it is the caller's own.
            g => {
                // SAFETY: getpgid takes a plain pid.
                let own = unsafe { libc::getpgid(caller) };
                own == -g
            }
        };
        if !inside {
            out.push(Observed::SignalOutside);
        }
    }
}

/// The kernel opens both the program and its interpreter for reading with execute intent:
/// Landlock checks `execute` and `read_file` on each.
fn exec(path: &Path, out: &mut Vec<Observed>) {
    let p = resolve(path);
    if !p.exists() {
        return; // a PATH search trying a directory where the program is not
    }
    if let Some(interp) = crate::ldd::interpreter_of(&p) {
        let interp = resolve(&interp);
        if interp != p {
            out.push(fs(interp, &[FsRight::Execute, FsRight::ReadFile], false));
        }
    }
    out.push(fs(p, &[FsRight::Execute, FsRight::ReadFile], false));
}

fn remove(path: Option<PathBuf>, right: FsRight, out: &mut Vec<Observed>) {
    if let Some(p) = path {
        // The entry itself is removed, not what a symlink points to: resolve the parent.
        let p = match (p.parent(), p.file_name()) {
            (Some(dir), Some(_)) => resolve(dir),
            _ => return,
        };
        out.push(fs(p, &[right], true));
    }
}

fn rename(from: Option<PathBuf>, to: Option<PathBuf>, exchange: bool, out: &mut Vec<Observed>) {
    let (Some(from), Some(to)) = (from, to) else {
        return;
    };
    let kind = |p: &Path| {
        std::fs::symlink_metadata(p)
            .map(|m| make_right(m.mode()))
            .unwrap_or(FsRight::MakeReg)
    };
    let removal = |r: FsRight| {
        if r == FsRight::MakeDir {
            FsRight::RemoveDir
        } else {
            FsRight::RemoveFile
        }
    };
    let (src, dst) = (
        from.parent().map(resolve).unwrap_or_else(|| "/".into()),
        to.parent().map(resolve).unwrap_or_else(|| "/".into()),
    );
    let moved = kind(&from);
    out.push(fs(src.clone(), &[removal(moved)], true));
    out.push(fs(dst.clone(), &[moved], true));
    if exchange || to.symlink_metadata().is_ok() {
        let other = kind(&to);
        out.push(fs(dst.clone(), &[removal(other)], true));
        if exchange {
            out.push(fs(src.clone(), &[other], true));
        }
    }
    if src != dst {
        out.push(fs(src, &[FsRight::Refer], true));
        out.push(fs(dst.clone(), &[FsRight::Refer], true));
    }
    if let Some(name) = to.file_name() {
        out.push(Observed::Created(dst.join(name)));
    }
}

/// A socket the network seal would refuse means the program needs an unrestricted network;
/// an internet datagram socket means UDP. The seal's own table decides which is which.
fn socket(domain: i32, kind: i32, protocol: i32, out: &mut Vec<Observed>) {
    let with_udp = Seal {
        network: true,
        allow_udp: true,
        ..Seal::default()
    };
    match decide_socket(with_udp, domain, kind, protocol) {
        Decision::Refuse(_) | Decision::Kill(_) => out.push(Observed::UnsealedSocket(format!(
            "socket(family {domain}, type {}, protocol {protocol})",
            kind & 0xf
        ))),
        Decision::Allow | Decision::Supervise(_) => {
            if (domain == libc::AF_INET || domain == libc::AF_INET6)
                && kind & 0xf == libc::SOCK_DGRAM
            {
                out.push(Observed::Udp);
            }
        }
    }
}

fn ioctl(pid: i32, fd: i64, cmd: u64, out: &mut Vec<Observed>) {
    let cmd = cmd & 0xffff_ffff;
    if [FIOCLEX, FIONCLEX, FIONBIO, FIOASYNC, FIOQSIZE].contains(&cmd) {
        return; // allowed on every file
    }
    let Some(meta) = memory::fd_metadata(pid, fd) else {
        return;
    };
    let ft = meta.file_type();
    if !(ft.is_char_device() || ft.is_block_device())
        || !crate::diagnose::explain::ioctl_matters(cmd, meta.rdev())
    {
        return;
    }
    if let Some(p) = memory::fd_path(pid, fd).filter(|p| p.is_absolute()) {
        out.push(fs(p, &[FsRight::IoctlDev], false));
    }
}
