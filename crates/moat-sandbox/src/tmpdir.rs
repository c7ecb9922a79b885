//! Private temporary directories: one per watchdog call or `moat run --private-tmp`
//! sandbox, given to it as TMPDIR, TMP and TEMP, and removed when its processes are dead.
//!
//! They live in one directory per owner process (`<root>/<owner>.<pid>.<random>`, mode
//! 0700: `moat-watchdog` for a watchdog, `moat-run` for a sandbox's supervisor), on
//! a tmpfs when one is available: creating and removing a directory there costs a few
//! microseconds against 80-120 on ext4 (DESIGN.md section 5), and the files never reach a
//! disk. Isolation does not come from the modes (every call runs as the same user) but
//! from Landlock: each call's ruleset grants its own directory and no other.
//!
//! With `max_call_tmp_bytes` and the privilege to mount (root), each call's directory is a
//! tmpfs of its own, of that size (and a proportionate number of inodes), mounted in a
//! mount namespace private to the watchdog and its calls ([`private_mounts`]): a call that
//! fills its directory gets `ENOSPC` and takes nothing from the others, its files go with
//! one `umount`, and the kernel drops every such mount when the watchdog and its calls are
//! gone, however they went. A call's tmpfs is made only when the private directories are
//! on a tmpfs already (memory either way): on a disk, they stay on the disk.
//!
//! Removal never follows a symbolic link the call planted: the tree is walked with
//! `openat(O_NOFOLLOW | O_DIRECTORY)` and emptied with `unlinkat` relative to directory
//! descriptors, iteratively (one descriptor and one name per level, however deep the call
//! nested its directories), and only after the call's processes are dead, so nothing moves
//! the tree while it is removed.

use std::ffi::{CStr, CString, OsStr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// `TMPFS_MAGIC` from `linux/magic.h`.
const TMPFS_MAGIC: i64 = 0x0102_1994;

/// Why a temporary directory could not be made or removed.
#[derive(Debug, thiserror::Error)]
pub enum TmpError {
    /// The root directory cannot be used.
    #[error("cannot use {} for private temporary directories: {source}", path.display())]
    Root {
        /// The directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A call's directory cannot be created.
    #[error("cannot create the call's private temporary directory in {}: {source}", root.display())]
    Create {
        /// The watchdog's directory.
        root: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A call's directory cannot be removed.
    #[error("cannot remove {}: {source}", path.display())]
    Remove {
        /// The directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// The watchdog's directory of call directories.
#[derive(Debug)]
pub struct TmpRoot {
    path: PathBuf,
    parent: OwnedFd,
    name: CString,
    fd: OwnedFd,
    /// `<name>.lock`, locked (`flock`) for as long as this watchdog lives.
    lock_name: CString,
    _lock: OwnedFd,
    tmpfs: bool,
    call_fs: Option<CallFs>,
    next: AtomicU64,
    /// Directories left by watchdogs that are gone, removed at start.
    pub stale_removed: Vec<String>,
}

/// One call's directory. Remove it with [`TmpRoot::remove`] once the call's processes are
/// dead; dropping it leaves the directory for [`TmpRoot::remove_all`].
#[derive(Debug)]
pub struct CallDir {
    /// Its path, given to the call.
    pub path: PathBuf,
    name: CString,
    /// A descriptor on it, for the call's Landlock rule.
    pub fd: OwnedFd,
    /// Whether it is a tmpfs of its own.
    mounted: bool,
}

impl CallDir {
    /// Whether it is a tmpfs of its own that is full (no block or no inode left): the call
    /// reached `max_call_tmp_bytes`.
    pub fn is_full(&self) -> bool {
        if !self.mounted {
            return false;
        }
        // SAFETY: zeroed statfs is a valid out-buffer for fstatfs on a valid descriptor.
        let mut st: libc::statfs = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        if unsafe { libc::fstatfs(self.fd.as_raw_fd(), &mut st) } != 0 {
            return false;
        }
        st.f_bavail == 0 || st.f_ffree == 0
    }
}

/// The size of each call's own tmpfs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallFs {
    /// Bytes.
    pub bytes: u64,
    /// Inodes (files, directories, links): a tmpfs keeps each in memory besides `bytes`.
    pub inodes: u64,
}

impl CallFs {
    /// A tmpfs of `bytes`, with one inode per 16 KiB (at least 64).
    pub fn of(bytes: u64) -> CallFs {
        CallFs {
            bytes,
            inodes: (bytes / 16384).max(64),
        }
    }
}

/// Gives the watchdog (and so its calls) a mount namespace of its own, in which mounts it
/// makes stay: it still sees mounts the host makes later (slave propagation), but the host
/// never sees the calls' tmpfs mounts, and they vanish with the namespace. Must run before
/// the process starts any thread (unshare refuses a namespace to one thread of several).
/// Needs `CAP_SYS_ADMIN`.
pub fn private_mounts() -> std::io::Result<()> {
    // SAFETY: unshare and mount with valid arguments; no pointer is kept.
    unsafe {
        if libc::unshare(libc::CLONE_NEWNS) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_SLAVE,
            std::ptr::null(),
        ) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Picks where private directories go: `configured` if given, else `/dev/shm` when it is a
/// writable tmpfs, else `$TMPDIR` or `/tmp`.
pub fn choose_root(configured: Option<&Path>) -> PathBuf {
    if let Some(p) = configured {
        return p.to_path_buf();
    }
    let shm = Path::new("/dev/shm");
    if is_tmpfs(shm) && writable(shm) {
        return shm.to_path_buf();
    }
    std::env::var_os("TMPDIR")
        .filter(|t| !t.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp"))
}

/// Whether `path` is on a tmpfs (`statfs`).
pub fn is_tmpfs(path: &Path) -> bool {
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: zeroed statfs is a valid out-buffer; `c` is NUL-terminated.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return false;
    }
    st.f_type as i64 == TMPFS_MAGIC
}

fn writable(path: &Path) -> bool {
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `c` is NUL-terminated.
    unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) == 0 }
}

impl TmpRoot {
    /// Creates `<base>/<owner>.<pid>.<random>` (mode 0700, then 0300), and its lock file
    /// `<same>.lock`, locked for as long as the owner (the watchdog, or the supervisor of a
    /// `moat run` sandbox, which inherits the lock) lives. The random part keeps
    /// watchdogs apart that share `<base>` with the same pid (each PID 1 of its own PID
    /// namespace, say); an existing name is never reused.
    ///
    /// A watchdog killed with SIGKILL cannot remove its directory; the kernel releases its
    /// lock. So first, every `<owner>.*.lock` in `<base>` that can be locked (its
    /// watchdog is gone, whatever its PID namespace) and is older than a minute (not one
    /// being created right now) is removed with its directory.
    pub fn create(base: &Path, owner: &str) -> Result<TmpRoot, TmpError> {
        let err = |source| TmpError::Root {
            path: base.to_path_buf(),
            source,
        };
        let parent =
            open_dir(libc::AT_FDCWD, &cstr(base.as_os_str()).map_err(err)?, false).map_err(err)?;
        let stale_removed = remove_stale(&parent, owner);
        let mut attempt = 0u32;
        let (name, lock_name, lock) = loop {
            let stem = format!("{owner}.{}.{:08x}", std::process::id(), random_u32());
            let name = cstr(OsStr::new(&stem)).map_err(err)?;
            let lock_name = cstr(OsStr::new(&format!("{stem}.lock"))).map_err(err)?;
            // The lock file first: a directory never exists without a lock to tell whether
            // its watchdog lives.
            // SAFETY: openat with a valid directory descriptor and NUL-terminated name.
            let lfd = unsafe {
                libc::openat(
                    parent.as_raw_fd(),
                    lock_name.as_ptr(),
                    libc::O_RDWR
                        | libc::O_CREAT
                        | libc::O_EXCL
                        | libc::O_CLOEXEC
                        | libc::O_NOFOLLOW,
                    0o600,
                )
            };
            if lfd >= 0 {
                // SAFETY: a new descriptor owned by nobody else.
                let lock = unsafe { OwnedFd::from_raw_fd(lfd) };
                // SAFETY: flock on a valid descriptor.
                if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
                    return Err(err(std::io::Error::last_os_error()));
                }
                // SAFETY: mkdirat with a valid directory descriptor and NUL-terminated name.
                if unsafe { libc::mkdirat(parent.as_raw_fd(), name.as_ptr(), 0o700) } == 0 {
                    break (name, lock_name, lock);
                }
                // SAFETY: removing the lock file just made.
                unsafe { libc::unlinkat(parent.as_raw_fd(), lock_name.as_ptr(), 0) };
            }
            let e = std::io::Error::last_os_error();
            attempt += 1;
            if e.kind() != std::io::ErrorKind::AlreadyExists || attempt > 16 {
                return Err(err(e));
            }
        };
        let path = base.join(OsStr::from_bytes(name.as_bytes()));
        let fd = open_dir(parent.as_raw_fd(), &name, true).map_err(err)?;
        // Search but no read for the owner: a call (running as the same user, unless that is
        // root) can reach its own directory by path, but can neither list the others nor
        // watch them appear with inotify, which Landlock does not check. The watchdog
        // itself only creates and removes by name.
        // SAFETY: fchmod on a descriptor just opened.
        if unsafe { libc::fchmod(fd.as_raw_fd(), 0o300) } != 0 {
            return Err(err(std::io::Error::last_os_error()));
        }
        Ok(TmpRoot {
            tmpfs: is_tmpfs(&path),
            call_fs: None,
            path,
            parent,
            name,
            fd,
            lock_name,
            _lock: lock,
            next: AtomicU64::new(1),
            stale_removed,
        })
    }

    /// The descriptors it holds (its parent, itself, its lock), for a process that must
    /// keep them across closing every other one.
    pub fn descriptors(&self) -> [RawFd; 3] {
        [
            self.parent.as_raw_fd(),
            self.fd.as_raw_fd(),
            self._lock.as_raw_fd(),
        ]
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether it is on a tmpfs.
    pub fn is_tmpfs(&self) -> bool {
        self.tmpfs
    }

    /// Makes each call's directory a tmpfs of its own of `fs`'s size, checking now that it
    /// can be done (one is mounted and removed). Needs [`private_mounts`] first.
    pub fn use_call_tmpfs(&mut self, fs: CallFs) -> Result<(), TmpError> {
        self.call_fs = Some(fs);
        match self.create_call() {
            Ok(d) => self.remove(d),
            Err(e) => {
                self.call_fs = None;
                Err(e)
            }
        }
    }

    /// The size of each call's tmpfs, when each has one.
    pub fn call_fs(&self) -> Option<CallFs> {
        self.call_fs
    }

    /// Creates a new call directory (mode 0700).
    pub fn create_call(&self) -> Result<CallDir, TmpError> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        // Unguessable: on kernels without Landlock's `resolve_unix` (ABI 9), a unix socket a
        // call binds in its directory can be reached by any process that knows its path.
        let name = CString::new(format!("call-{n}-{:016x}", random_u64())).map_err(|_| {
            TmpError::Create {
                root: self.path.clone(),
                source: std::io::ErrorKind::InvalidInput.into(),
            }
        })?;
        let err = |source| TmpError::Create {
            root: self.path.clone(),
            source,
        };
        // SAFETY: mkdirat with a valid directory descriptor and NUL-terminated name.
        if unsafe { libc::mkdirat(self.fd.as_raw_fd(), name.as_ptr(), 0o700) } != 0 {
            return Err(err(std::io::Error::last_os_error()));
        }
        let path = self.path.join(OsStr::from_bytes(name.as_bytes()));
        if let Some(fs) = self.call_fs {
            if let Err(e) = mount_tmpfs(&path, fs) {
                // SAFETY: removing the directory just made.
                unsafe { libc::unlinkat(self.fd.as_raw_fd(), name.as_ptr(), libc::AT_REMOVEDIR) };
                return Err(err(e));
            }
        }
        // Opened after the mount: the descriptor is on the call's own tmpfs.
        let fd = match open_dir(self.fd.as_raw_fd(), &name, true) {
            Ok(fd) => fd,
            Err(e) => {
                if self.call_fs.is_some() {
                    unmount(&path);
                }
                // SAFETY: removing the directory just made.
                unsafe { libc::unlinkat(self.fd.as_raw_fd(), name.as_ptr(), libc::AT_REMOVEDIR) };
                return Err(err(e));
            }
        };
        Ok(CallDir {
            path,
            name,
            fd,
            mounted: self.call_fs.is_some(),
        })
    }

    /// Removes a call's directory and everything in it, without following links. Call only
    /// when no process of the call is left.
    pub fn remove(&self, dir: CallDir) -> Result<(), TmpError> {
        let CallDir {
            path,
            name,
            fd,
            mounted,
        } = dir;
        drop(fd);
        if mounted {
            // Everything the call wrote goes with its tmpfs.
            unmount(&path);
        }
        // The common case, an empty directory, costs one system call.
        // SAFETY: unlinkat with a valid directory descriptor and NUL-terminated name.
        if unsafe { libc::unlinkat(self.fd.as_raw_fd(), name.as_ptr(), libc::AT_REMOVEDIR) } == 0 {
            return Ok(());
        }
        remove_tree(self.fd.as_fd(), &name).map_err(|source| TmpError::Remove { path, source })
    }

    /// Removes the watchdog's directory and every call directory left in it (at exit).
    pub fn remove_all(&self) -> Result<(), TmpError> {
        if self.call_fs.is_some() {
            if let Ok(names) = self.entries() {
                for n in names {
                    unmount(&self.path.join(n));
                }
            }
        }
        remove_tree(self.parent.as_fd(), &self.name).map_err(|source| TmpError::Remove {
            path: self.path.clone(),
            source,
        })?;
        // SAFETY: unlinkat with a valid directory descriptor and NUL-terminated name.
        unsafe { libc::unlinkat(self.parent.as_raw_fd(), self.lock_name.as_ptr(), 0) };
        Ok(())
    }

    /// The names of the call directories that exist now (for tests and leak checks).
    pub fn entries(&self) -> std::io::Result<Vec<String>> {
        let mut names = Vec::new();
        for e in std::fs::read_dir(&self.path)? {
            names.push(e?.file_name().to_string_lossy().into_owned());
        }
        Ok(names)
    }
}

/// Mounts a tmpfs of `fs`'s size on `path`, owned by the watchdog's user, mode 0700, with
/// neither set-user-ID programs, devices nor execution (a call may not execute what it
/// writes there anyway: its sandbox does not grant it).
fn mount_tmpfs(path: &Path, fs: CallFs) -> std::io::Result<()> {
    let target = cstr(path.as_os_str())?;
    // SAFETY: geteuid and getegid cannot fail.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let options = CString::new(format!(
        "size={},nr_inodes={},mode=0700,uid={uid},gid={gid}",
        fs.bytes, fs.inodes
    ))
    .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // SAFETY: mount with NUL-terminated strings; nothing is kept.
    let r = unsafe {
        libc::mount(
            c"tmpfs".as_ptr(),
            target.as_ptr(),
            c"tmpfs".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            options.as_ptr().cast(),
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Detaches the tmpfs on `path` (its files go with it), never following a link.
fn unmount(path: &Path) {
    if let Ok(target) = cstr(path.as_os_str()) {
        // SAFETY: umount2 with a NUL-terminated path.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH | libc::UMOUNT_NOFOLLOW) };
    }
}

/// 32 random bits.
pub fn random_u32() -> u32 {
    random_u64() as u32
}

/// 64 random bits from the kernel (`getrandom`), or from the clock and a counter if it has
/// none to give (early boot).
fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    // SAFETY: getrandom writes at most 8 bytes into `b`.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), libc::GRND_NONBLOCK) };
    if n == 8 {
        return u64::from_ne_bytes(b);
    }
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    t ^ COUNTER.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
}

/// Removes the directories of watchdogs that are gone (see [`TmpRoot::create`]); returns
/// their names. Best effort: what cannot be read or removed is left, and logged by the caller.
fn remove_stale(parent: &OwnedFd, owner: &str) -> Vec<String> {
    let mut removed = Vec::new();
    let Ok(entries) = std::fs::read_dir(format!("/proc/self/fd/{}", parent.as_raw_fd())) else {
        return removed;
    };
    for e in entries.flatten() {
        let file = e.file_name();
        let Some(stem) = file
            .to_str()
            .and_then(|n| n.strip_suffix(".lock"))
            .filter(|n| {
                n.strip_prefix(owner)
                    .is_some_and(|rest| rest.starts_with('.'))
            })
        else {
            continue;
        };
        let young = e
            .metadata()
            .ok()
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.elapsed().ok())
            .is_none_or(|age| age < std::time::Duration::from_secs(60));
        if young {
            continue;
        }
        let (Ok(lock_name), Ok(name)) = (cstr(&file), cstr(OsStr::new(stem))) else {
            continue;
        };
        // SAFETY: openat with a valid directory descriptor and NUL-terminated name.
        let lfd = unsafe {
            libc::openat(
                parent.as_raw_fd(),
                lock_name.as_ptr(),
                libc::O_RDWR | libc::O_CLOEXEC | libc::O_NOFOLLOW,
            )
        };
        if lfd < 0 {
            continue;
        }
        // SAFETY: a new descriptor owned by nobody else.
        let lock = unsafe { OwnedFd::from_raw_fd(lfd) };
        // SAFETY: flock on a valid descriptor.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            // Its watchdog lives.
            continue;
        }
        let gone = match remove_tree(parent.as_fd(), &name) {
            Ok(()) => true,
            Err(e) => e.kind() == std::io::ErrorKind::NotFound,
        };
        if gone {
            // SAFETY: unlinkat with a valid directory descriptor and NUL-terminated name.
            unsafe { libc::unlinkat(parent.as_raw_fd(), lock_name.as_ptr(), 0) };
            removed.push(stem.to_string());
        }
    }
    removed
}

fn cstr(s: &OsStr) -> std::io::Result<CString> {
    CString::new(s.as_bytes()).map_err(|_| std::io::ErrorKind::InvalidInput.into())
}

/// Opens a directory relative to `at`; `nofollow` refuses a symbolic link as the last
/// component.
fn open_dir(at: i32, name: &CStr, nofollow: bool) -> std::io::Result<OwnedFd> {
    let mut flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC;
    if nofollow {
        flags |= libc::O_NOFOLLOW;
    }
    // SAFETY: openat with a valid descriptor (or AT_FDCWD) and a NUL-terminated name.
    let fd = unsafe { libc::openat(at, name.as_ptr(), flags) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a new descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Removes `name` (a directory in `parent`) and everything beneath it.
///
/// Iterative: it descends into one subdirectory at a time, holding a descriptor on the
/// current directory only, and climbs back with `..` (safe here: the tree's writers are
/// dead). Entries are unlinked relative to the directory descriptor, so a symbolic link is
/// removed, never followed, and `O_NOFOLLOW` keeps a link from being entered.
pub fn remove_tree(parent: BorrowedFd<'_>, name: &CStr) -> std::io::Result<()> {
    let mut names: Vec<CString> = Vec::new();
    let mut cur = enter(parent.as_raw_fd(), name)?;
    loop {
        match first_subdir_after_unlinking_files(&cur)? {
            Some(sub) => {
                let next = enter(cur.as_raw_fd(), &sub)?;
                names.push(sub);
                cur = next;
            }
            None => {
                let Some(done) = names.pop() else {
                    break;
                };
                let up = open_dir(cur.as_raw_fd(), c"..", false)?;
                cur = up;
                // SAFETY: unlinkat with a valid directory descriptor and name.
                if unsafe { libc::unlinkat(cur.as_raw_fd(), done.as_ptr(), libc::AT_REMOVEDIR) }
                    != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
            }
        }
    }
    drop(cur);
    // SAFETY: as above.
    if unsafe { libc::unlinkat(parent.as_raw_fd(), name.as_ptr(), libc::AT_REMOVEDIR) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Opens a directory to empty it, first giving it back the owner's rights: a call may have
/// made one of its directories unreadable or unwritable (chmod is not a Landlock right),
/// which would stop a watchdog that is not root from emptying it. `name` is known to be a
/// directory (not a link), and nothing else changes the tree meanwhile.
fn enter(at: i32, name: &CStr) -> std::io::Result<OwnedFd> {
    // SAFETY: fchmodat with a valid descriptor and NUL-terminated name; failure is fine
    // (the open below reports what matters).
    unsafe { libc::fchmodat(at, name.as_ptr(), 0o700, 0) };
    open_dir(at, name, true)
}

/// Unlinks every non-directory in `dir` and returns the name of a subdirectory, if any.
fn first_subdir_after_unlinking_files(dir: &OwnedFd) -> std::io::Result<Option<CString>> {
    // readdir consumes a descriptor: give it a duplicate so `dir` stays usable.
    // SAFETY: F_DUPFD_CLOEXEC on a valid descriptor.
    let dup = unsafe { libc::fcntl(dir.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) };
    if dup < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fdopendir takes ownership of `dup` (closed by closedir).
    let stream = unsafe { libc::fdopendir(dup) };
    if stream.is_null() {
        let e = std::io::Error::last_os_error();
        // SAFETY: `dup` is still ours when fdopendir fails.
        unsafe { libc::close(dup) };
        return Err(e);
    }
    let mut result = Ok(None);
    loop {
        // SAFETY: `stream` is a valid directory stream until closedir.
        let entry = unsafe { libc::readdir64(stream) };
        if entry.is_null() {
            break;
        }
        // SAFETY: readdir64 returned a valid entry with a NUL-terminated name.
        let (name, kind) = unsafe { (CStr::from_ptr((*entry).d_name.as_ptr()), (*entry).d_type) };
        if name == c"." || name == c".." {
            continue;
        }
        let is_dir =
            kind == libc::DT_DIR || (kind == libc::DT_UNKNOWN && is_directory_at(dir, name));
        if is_dir {
            result = Ok(Some(name.to_owned()));
            break;
        }
        // SAFETY: unlinkat with a valid directory descriptor and name.
        if unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0) } != 0 {
            result = Err(std::io::Error::last_os_error());
            break;
        }
    }
    // SAFETY: the stream opened above, closed once.
    unsafe { libc::closedir(stream) };
    result
}

fn is_directory_at(dir: &OwnedFd, name: &CStr) -> bool {
    // SAFETY: zeroed stat is a valid out-buffer; fstatat does not follow the link.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let r = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    r == 0 && st.st_mode & libc::S_IFMT == libc::S_IFDIR
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn base() -> PathBuf {
        let b = std::env::temp_dir().join(format!(
            "moat-tmpdir-test-{}-{}",
            std::process::id(),
            std::thread::current()
                .name()
                .unwrap_or("t")
                .replace(':', "_")
        ));
        std::fs::create_dir_all(&b).unwrap();
        b
    }

    #[test]
    fn creates_private_dirs_and_removes_them_without_following_links() {
        let b = base();
        let outside = b.join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("keep"), "x").unwrap();
        let root = TmpRoot::create(&b, "moat-watchdog").unwrap();
        let dir = root.create_call().unwrap();
        assert_eq!(
            std::fs::metadata(&dir.path).unwrap().permissions().mode() & 0o777,
            0o700
        );
        // A tree with files, a link to a directory outside, and deep nesting.
        std::fs::write(dir.path.join("f"), "secret").unwrap();
        std::os::unix::fs::symlink(&outside, dir.path.join("link")).unwrap();
        let mut deep = dir.path.clone();
        for i in 0..300 {
            deep.push(format!("d{i}"));
        }
        std::fs::create_dir_all(&deep).unwrap();
        std::fs::write(deep.join("leaf"), "x").unwrap();
        let p = dir.path.clone();
        root.remove(dir).unwrap();
        assert!(!p.exists());
        assert!(outside.join("keep").exists(), "followed a link");
        assert!(root.entries().unwrap().is_empty());
        let second = root.create_call().unwrap();
        assert_ne!(second.path, p);
        root.remove_all().unwrap();
        assert!(!root.path().exists());
        std::fs::remove_dir_all(&b).unwrap();
    }

    #[test]
    fn directories_of_dead_watchdogs_are_removed_and_live_ones_kept() {
        let b = base();
        let live = TmpRoot::create(&b, "moat-watchdog").unwrap();
        // A dead watchdog's directory and unlocked lock file, a minute old.
        let dead = b.join("moat-watchdog.1.deadbeef");
        std::fs::create_dir_all(dead.join("call-1-x")).unwrap();
        std::fs::write(dead.join("call-1-x/f"), "x").unwrap();
        let dead_lock = b.join("moat-watchdog.1.deadbeef.lock");
        std::fs::write(&dead_lock, "").unwrap();
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(120);
        std::fs::File::options()
            .write(true)
            .open(&dead_lock)
            .unwrap()
            .set_modified(old)
            .unwrap();
        // The live watchdog's lock file, made to look old too.
        let live_lock = PathBuf::from(format!("{}.lock", live.path().display()));
        std::fs::File::options()
            .write(true)
            .open(&live_lock)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let second = TmpRoot::create(&b, "moat-watchdog").unwrap();
        assert_eq!(second.stale_removed, ["moat-watchdog.1.deadbeef"]);
        assert!(!dead.exists() && !dead_lock.exists());
        assert!(live.path().exists() && live_lock.exists());
        second.remove_all().unwrap();
        live.remove_all().unwrap();
        assert!(!live_lock.exists());
        std::fs::remove_dir_all(&b).unwrap();
    }

    #[test]
    fn shm_is_preferred_when_tmpfs() {
        let chosen = choose_root(None);
        if is_tmpfs(Path::new("/dev/shm")) {
            assert_eq!(chosen, Path::new("/dev/shm"));
        }
        assert_eq!(choose_root(Some(Path::new("/x"))), Path::new("/x"));
    }
}
