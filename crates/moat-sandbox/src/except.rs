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
            if !p.is_absolute() || p.components().any(|c| c == Component::ParentDir) {
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
                .position(|(_, id)| rules.iter().any(|r| r.id == *id && r.is_dir));
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
    chain.retain(|dir, _| !excepted.iter().any(|e| dir.starts_with(e)));
    if chain.is_empty() {
        return Ok(());
    }

    // What each directory on the way inherited from the enclosing rules.
    let inherited: BTreeMap<&PathBuf, FsAccess> = chain
        .iter()
        .map(|(dir, (_, ids))| {
            let access = rules
                .iter()
                .filter(|r| ids.contains(&r.id))
                .fold(FsAccess::EMPTY, |a, r| a.union(r.access));
            (dir, access)
        })
        .collect();
    let chain_ids: BTreeSet<Id> = chain.values().map(|(id, _)| *id).collect();
    let replaced: Vec<String> = rules
        .iter()
        .filter(|r| chain_ids.contains(&r.id))
        .map(|r| r.path.display().to_string())
        .collect();
    rules.retain(|r| !chain_ids.contains(&r.id));

    let exceptions: Vec<String> = excepted.iter().map(|p| p.display().to_string()).collect();
    let origin = Origin::new(format!("except {}", exceptions.join(", ")));
    for (dir, access) in &inherited {
        let access = access.intersect(handled);
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            // A directory on the way that cannot be listed keeps no right at all.
            Err(_) => continue,
        };
        let mut count = 0usize;
        for entry in entries.flatten() {
            let path = entry.path();
            if chain.contains_key(&path) || excepted.contains(&path) {
                continue;
            }
            // A symbolic link is reached through its target's own path, which its own rules
            // govern; a rule on the link would be on the target and could name the exception.
            if entry.file_type().map(|t| t.is_symlink()).unwrap_or(true) {
                continue;
            }
            let Ok(fd) = open_path(&path, libc::O_NOFOLLOW) else {
                continue; // gone since the listing
            };
            let Ok((is_dir, id)) = is_directory(std::os::fd::AsFd::as_fd(&fd)) else {
                continue;
            };
            if excepted_ids.contains(&id) {
                continue; // another name of an excepted file
            }
            let access = if is_dir {
                access
            } else {
                access.intersect(FsAccess::file_rights())
            };
            if access.is_empty() {
                continue;
            }
            count += 1;
            rules.push(OpenedRule {
                path,
                fd,
                is_dir,
                id,
                access,
                origins: vec![origin.clone()],
                expanded_from: Some((*dir).clone()),
            });
        }
        let list = FsAccess::of(&[FsRight::ReadDir]).intersect(access);
        if !list.is_empty() {
            if let Ok(fd) = open_path(dir, 0) {
                if let Ok((true, id)) = is_directory(std::os::fd::AsFd::as_fd(&fd)) {
                    rules.push(OpenedRule {
                        path: (*dir).clone(),
                        fd,
                        is_dir: true,
                        id,
                        access: list,
                        origins: vec![origin.clone()],
                        expanded_from: None,
                    });
                }
            }
        }
        report.notes.push(format!(
            "except {}: {} expanded into {count} entries (rights {access}), keeping only \
             read_dir on it",
            exceptions.join(", "),
            dir.display()
        ));
    }
    report.notes.push(format!(
        "rules replaced by the expansion: {}; entries created later directly in an expanded \
         directory get no rights",
        replaced.join(", ")
    ));
    Ok(())
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
