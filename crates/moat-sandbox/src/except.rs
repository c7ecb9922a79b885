//! Path exceptions: "read /etc except /etc/shadow".
//!
//! Landlock only allows: a rule on a directory grants its rights on everything beneath,
//! and nothing can take them back for one entry. So an exception is planned as an
//! expansion. Each rule on a directory above the excepted path (an enclosing rule) is
//! replaced, along the way down to the exception, by rules on the directory's current
//! entries, minus the one that leads to the exception, with the rights the enclosing rules
//! gave there. The directories on the way keep only `read_dir` (so `ls /etc` still works;
//! it lists names, not contents, and names inside an excepted directory stay listable).
//!
//! The consequence, documented in docs/policy.md: an entry created later directly inside an
//! expanded directory gets no rights at all, since it has no rule and its directory's rule
//! is gone. That is also what keeps a path that does not exist yet (a future `~/.ssh`)
//! out.
//!
//! An expansion costs a rule per entry. It is skipped when the file permissions already
//! keep the sandboxed program out: an existing exception that this user does not own and
//! whose permission bits grant this user nothing (`/etc/shadow` for anyone but root), or a
//! missing one whose nearest existing directory is neither root's (when running as root)
//! nor this user's. Kept capabilities that bypass file permissions disable the shortcut.

use crate::caps::Held;
use crate::plan::{is_directory, open_path, OpenedRule, PlanError};
use crate::report::Report;
use moat_policy::{Cap, FsAccess, FsRight, KeepCaps, Origin, Policy, Vars};
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

/// A file's identity.
pub(crate) type Id = (u64, u64);

/// Applies the policy's exceptions to the opened rules.
pub(crate) fn apply(
    rules: &mut Vec<OpenedRule>,
    policy: &Policy,
    handled: FsAccess,
    vars: &Vars,
    held: &Held,
    report: &mut Report,
) -> Result<(), PlanError> {
    if policy.fs.except.is_empty() || rules.is_empty() {
        return Ok(());
    }
    let keep = policy.caps.unwrap_or_default();
    let mut excepted: BTreeSet<PathBuf> = BTreeSet::new();
    // The excepted files themselves, to leave out their other names (hard links) in the
    // directories expanded.
    let mut excepted_ids: BTreeSet<Id> = BTreeSet::new();
    // Chain directory -> (its id, the ids of its ancestors and itself).
    let mut chain: BTreeMap<PathBuf, (Id, Vec<Id>)> = BTreeMap::new();
    let mut notes = Vec::new();
    for exception in &policy.fs.except {
        for path in vars.expand(&exception.path, &exception.origin.0)? {
            let p = PathBuf::from(&path);
            if !crate::plan::is_clean_absolute(&path) {
                return Err(PlanError::BadPath {
                    path,
                    origin: exception.origin.clone(),
                });
            }
            if let Some(why) = permissions_suffice(&p, held, keep) {
                notes.push(format!("except {path}: {why}"));
                continue;
            }
            let canonical = canonical(&p);
            let ancestors = ancestor_ids(&canonical);
            let covering = ancestors
                .iter()
                .position(|(_, id)| rules.iter().any(|r| r.id == Some(*id) && r.is_dir));
            let Some(top) = covering else {
                notes.push(format!(
                    "except {path}: no rule of an enclosing directory reaches it"
                ));
                continue;
            };
            if let Ok(m) = std::fs::metadata(&canonical) {
                excepted_ids.insert((m.dev(), m.ino()));
            }
            excepted.insert(canonical.clone());
            let ids: Vec<Id> = ancestors.iter().map(|(_, id)| *id).collect();
            for (depth, (dir, id)) in ancestors.iter().enumerate().skip(top) {
                chain.insert(dir.clone(), (*id, ids[..=depth].to_vec()));
            }
        }
    }
    report.notes.extend(notes);
    // A directory that is itself excepted, or beneath an excepted path, is not expanded:
    // nothing beneath it gets a right.
    chain.retain(|dir, _| !excepted.iter().any(|e| is_within(dir, e)));
    if chain.is_empty() {
        return Ok(());
    }

    // What each directory on the way inherited from the enclosing rules.
    let inherited: BTreeMap<&PathBuf, FsAccess> = chain
        .iter()
        .map(|(dir, (_, ids))| {
            let access = rules
                .iter()
                .filter(|r| r.id.is_some_and(|id| ids.contains(&id)))
                .fold(FsAccess::EMPTY, |a, r| a.union(r.access));
            (dir, access)
        })
        .collect();
    let chain_ids: BTreeSet<Id> = chain.values().map(|(id, _)| *id).collect();
    let replaced: Vec<String> = rules
        .iter()
        .filter(|r| r.id.is_some_and(|id| chain_ids.contains(&id)))
        .map(|r| r.path.display().to_string())
        .collect();
    rules.retain(|r| !r.id.is_some_and(|id| chain_ids.contains(&id)));

    let exceptions: Vec<String> = excepted.iter().map(|p| p.display().to_string()).collect();
    let origin = Origin::new(format!("except {}", exceptions.join(", ")));
    // What each directory on the way must leave out: the next directory on the way and the
    // excepted entries it holds, by name.
    let mut skip: BTreeMap<&Path, Vec<&std::ffi::OsStr>> = BTreeMap::new();
    for path in chain.keys().chain(excepted.iter()) {
        if let (Some(parent), Some(name)) = (path.parent(), path.file_name()) {
            skip.entry(parent).or_default().push(name);
        }
    }
    for (dir, access) in &inherited {
        let access = access.intersect(handled);
        let leave_out = skip.get(dir.as_path()).map(Vec::as_slice).unwrap_or(&[]);
        let count = expand(dir, access, leave_out, &excepted_ids, &origin, rules);
        let list = FsAccess::of(&[FsRight::ReadDir]).intersect(access);
        if !list.is_empty() {
            if let Ok(fd) = open_path(dir, 0) {
                if let Ok((true, id)) = is_directory(std::os::fd::AsFd::as_fd(&fd)) {
                    rules.push(OpenedRule {
                        path: (*dir).clone(),
                        fd,
                        is_dir: true,
                        id: Some(id),
                        access: list,
                        origins: vec![origin.clone()],
                        expanded_from: None,
                    });
                }
            }
        }
        report.notes.push(format!(
            "{} expanded into {count} entries (rights {access}), keeping only read_dir on it",
            dir.display()
        ));
    }
    report.notes.push(format!(
        "excepted: {}; rules replaced by the expansion: {}; entries created later directly in \
         an expanded directory get no rights",
        exceptions.join(", "),
        replaced.join(", ")
    ));
    Ok(())
}

/// Adds a rule with `access` on every entry of `dir` but those named in `leave_out`,
/// symbolic links, and other names of the excepted files; returns how many.
///
/// The directory is read with `getdents64` and each entry opened relative to it
/// (`openat(O_PATH | O_NOFOLLOW)`), its type taken from the directory entry: an expansion
/// of `/etc` makes a rule for each of its 100-250 entries at every start, and
/// `std::fs::read_dir` with a path per entry cost about three times as many instructions.
fn expand(
    dir: &Path,
    access: FsAccess,
    leave_out: &[&std::ffi::OsStr],
    excepted_ids: &BTreeSet<Id>,
    origin: &Origin,
    rules: &mut Vec<OpenedRule>,
) -> usize {
    use rustix::fs::{FileType, Mode, OFlags};
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    // A directory on the way that cannot be read keeps no right at all.
    let Ok(dirfd) = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return 0;
    };
    let Ok(dev) = rustix::fs::fstat(&dirfd).map(|st| st.st_dev) else {
        return 0;
    };
    let Ok(mut entries) = rustix::fs::Dir::read_from(&dirfd) else {
        return 0;
    };
    let shared: std::sync::Arc<Path> = dir.into();
    let prefix = dir.as_os_str().as_bytes();
    let mut count = 0;
    while let Some(Ok(entry)) = entries.read() {
        let name = entry.file_name();
        let bytes = name.to_bytes();
        if bytes == b"." || bytes == b".." || leave_out.iter().any(|n| n.as_bytes() == bytes) {
            continue;
        }
        if excepted_ids.contains(&(dev, entry.ino())) {
            continue; // another name of an excepted file
        }
        let kind = match entry.file_type() {
            FileType::Unknown => {
                match rustix::fs::statat(&dirfd, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) => FileType::from_raw_mode(st.st_mode),
                    Err(_) => continue,
                }
            }
            kind => kind,
        };
        // A symbolic link is reached through its target's own path, which its own rules
        // govern; a rule on the link would be on the target and could name the exception.
        if kind == FileType::Symlink {
            continue;
        }
        let is_dir = kind == FileType::Directory;
        let access = if is_dir {
            access
        } else {
            access.intersect(FsAccess::file_rights())
        };
        if access.is_empty() {
            continue;
        }
        let Ok(fd) = rustix::fs::openat(
            &dirfd,
            name,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) else {
            continue; // gone since the listing
        };
        count += 1;
        let mut path = Vec::with_capacity(prefix.len() + 1 + bytes.len());
        path.extend_from_slice(prefix);
        if prefix != b"/" {
            path.push(b'/');
        }
        path.extend_from_slice(bytes);
        rules.push(OpenedRule {
            path: PathBuf::from(std::ffi::OsString::from_vec(path)),
            fd,
            is_dir,
            id: Some((dev, entry.ino())),
            access,
            origins: vec![origin.clone()],
            expanded_from: Some(std::sync::Arc::clone(&shared)),
        });
    }
    count
}

/// `Some(why)` when the file permissions already keep the sandboxed program away from
/// `path`, so no expansion is needed.
fn permissions_suffice(path: &Path, held: &Held, keep: KeepCaps) -> Option<String> {
    let bypass = [Cap::DAC_OVERRIDE, Cap::DAC_READ_SEARCH, Cap::FOWNER];
    let kept = |c: Cap| keep.all && held.permitted.contains(c) || keep.caps.contains(c);
    if bypass.into_iter().any(kept) {
        return None;
    }
    // SAFETY: geteuid and getegid cannot fail.
    let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
    match std::fs::metadata(path) {
        Ok(m) => {
            if m.uid() == euid {
                return None; // the owner can change the permissions
            }
            let bits = if m.gid() == egid || groups().contains(&m.gid()) {
                (m.mode() >> 3) & 7
            } else {
                m.mode() & 7
            };
            (bits == 0).then(|| {
                format!(
                    "not needed, its permissions ({:o}, owner {}) give this user nothing",
                    m.mode() & 0o7777,
                    m.uid()
                )
            })
        }
        Err(_) => {
            // Missing: only whoever may create entries in the nearest existing directory
            // could make it appear, and this user could then read it anyway.
            let mut dir = path.parent();
            while let Some(d) = dir {
                if let Ok(m) = std::fs::metadata(d) {
                    if held.root || m.uid() == euid {
                        return None;
                    }
                    return Some(format!(
                        "not needed, it does not exist and {} belongs to another user",
                        d.display()
                    ));
                }
                dir = d.parent();
            }
            None
        }
    }
}

/// Whether `path` is `dir` or beneath it, compared as bytes (no `Path::components`).
fn is_within(path: &Path, dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let (p, d) = (path.as_os_str().as_bytes(), dir.as_os_str().as_bytes());
    p.starts_with(d) && (p.len() == d.len() || p[d.len()] == b'/' || d.ends_with(b"/"))
}

/// The supplementary groups of this process.
fn groups() -> Vec<u32> {
    // SAFETY: a null buffer with size 0 only asks for the count.
    let n = unsafe { libc::getgroups(0, std::ptr::null_mut()) };
    if n <= 0 {
        return Vec::new();
    }
    let mut g = vec![0; n as usize];
    // SAFETY: `g` has room for `n` groups.
    let n = unsafe { libc::getgroups(n, g.as_mut_ptr()) };
    g.truncate(n.max(0) as usize);
    g
}

/// The path with every existing part resolved (symlinks, `.`), and the missing rest kept
/// as written.
fn canonical(path: &Path) -> PathBuf {
    let mut existing = path.to_path_buf();
    let mut rest = Vec::new();
    loop {
        if let Ok(real) = std::fs::canonicalize(&existing) {
            let mut out = real;
            for part in rest.iter().rev() {
                out.push(part);
            }
            return out;
        }
        match (
            existing.file_name().map(|n| n.to_os_string()),
            existing.parent(),
        ) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                existing = parent.to_path_buf();
            }
            _ => return path.to_path_buf(),
        }
    }
}

/// Every existing directory from `/` down to the parent of `path`, with its identity.
fn ancestor_ids(path: &Path) -> Vec<(PathBuf, Id)> {
    let mut out = Vec::new();
    let mut dir = PathBuf::from("/");
    let parts: Vec<Component> = path.components().collect();
    let parent_parts = parts.len().saturating_sub(1);
    for (i, c) in parts.iter().enumerate().take(parent_parts) {
        if i > 0 {
            dir.push(c);
        }
        let Ok(cs) = CString::new(dir.as_os_str().as_bytes()) else {
            break;
        };
        // SAFETY: a zeroed stat is a valid out-buffer; `cs` is a valid C string.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        if unsafe { libc::stat(cs.as_ptr(), &mut st) } != 0 {
            break;
        }
        out.push((dir.clone(), (st.st_dev, st.st_ino)));
    }
    out
}
