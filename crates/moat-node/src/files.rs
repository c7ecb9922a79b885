//! Changes to the node's files as one transaction: each file is written beside its target
//! and renamed over it (a reader never sees half a file), the previous content is kept
//! first and listed in a journal, and the whole set is restored on [`Transaction::rollback`]
//! or, after a crash, by the next run before it does anything else.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// A file operation that failed.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct FileError {
    /// The file.
    pub path: PathBuf,
    /// The error.
    pub source: std::io::Error,
}

fn err(path: &Path) -> impl FnOnce(std::io::Error) -> FileError + '_ {
    move |source| FileError {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `content` to `path` with `mode` through a temporary file in the same directory
/// and a rename, creating the directory when missing.
pub fn write_atomic(path: &Path, content: &[u8], mode: u32) -> Result<(), FileError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err(dir))?;
    }
    let tmp = sibling(path, "moat-new");
    let mut f = std::fs::File::create(&tmp).map_err(err(&tmp))?;
    f.write_all(content).map_err(err(&tmp))?;
    f.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(err(&tmp))?;
    f.sync_all().map_err(err(&tmp))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(err(path))
}

/// `path` with `.suffix` appended to its file name.
pub fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".");
    name.push(suffix);
    path.with_file_name(name)
}

/// Whether `path` holds exactly `content`.
pub fn same_content(path: &Path, content: &[u8]) -> bool {
    std::fs::read(path).is_ok_and(|c| c == content)
}

/// One changed file: where, and where its previous content is (`None`: it did not exist).
#[derive(Debug, Clone)]
struct Entry {
    target: PathBuf,
    backup: Option<PathBuf>,
}

/// A set of file changes that can be undone together.
#[derive(Debug)]
pub struct Transaction {
    journal: PathBuf,
    entries: Vec<Entry>,
}

impl Transaction {
    /// Starts a transaction journaled at `journal`. A journal left by a run that did not
    /// finish is rolled back first; the returned list names what was restored.
    pub fn begin(journal: PathBuf) -> Result<(Transaction, Vec<PathBuf>), FileError> {
        let mut restored = Vec::new();
        if let Ok(text) = std::fs::read_to_string(&journal) {
            let entries = text
                .lines()
                .filter_map(|l| {
                    let (t, b) = l.split_once('\t')?;
                    Some(Entry {
                        target: PathBuf::from(t),
                        backup: (!b.is_empty()).then(|| PathBuf::from(b)),
                    })
                })
                .collect();
            let stale = Transaction {
                journal: journal.clone(),
                entries,
            };
            restored = stale.entries.iter().map(|e| e.target.clone()).collect();
            stale.rollback()?;
        }
        Ok((
            Transaction {
                journal,
                entries: Vec::new(),
            },
            restored,
        ))
    }

    fn record(&mut self, target: &Path) -> Result<(), FileError> {
        if self.entries.iter().any(|e| e.target == target) {
            return Ok(());
        }
        let backup = if target.exists() {
            let b = sibling(target, "moat-backup");
            std::fs::copy(target, &b).map_err(err(&b))?;
            Some(b)
        } else {
            None
        };
        self.entries.push(Entry {
            target: target.to_path_buf(),
            backup,
        });
        let text: String = self
            .entries
            .iter()
            .map(|e| {
                format!(
                    "{}\t{}\n",
                    e.target.display(),
                    e.backup
                        .as_deref()
                        .map(|b| b.display().to_string())
                        .unwrap_or_default()
                )
            })
            .collect();
        write_atomic(&self.journal, text.as_bytes(), 0o600)
    }

    /// Replaces `target` with `content` (unless it already holds exactly that). Returns
    /// whether it changed.
    pub fn write(&mut self, target: &Path, content: &[u8], mode: u32) -> Result<bool, FileError> {
        if same_content(target, content) {
            return Ok(false);
        }
        self.record(target)?;
        write_atomic(target, content, mode)?;
        Ok(true)
    }

    /// Removes `target` if it exists. Returns whether it did.
    pub fn remove(&mut self, target: &Path) -> Result<bool, FileError> {
        if !target.exists() {
            return Ok(false);
        }
        self.record(target)?;
        std::fs::remove_file(target).map_err(err(target))?;
        Ok(true)
    }

    /// Whether anything changed so far.
    pub fn changed(&self) -> bool {
        !self.entries.is_empty()
    }

    /// Puts every file back as it was and ends the transaction.
    pub fn rollback(self) -> Result<(), FileError> {
        for e in self.entries.iter().rev() {
            match &e.backup {
                Some(b) => std::fs::rename(b, &e.target).map_err(err(&e.target))?,
                None => match std::fs::remove_file(&e.target) {
                    Err(x) if x.kind() != std::io::ErrorKind::NotFound => {
                        return Err(err(&e.target)(x))
                    }
                    _ => {}
                },
            }
        }
        remove_if_there(&self.journal)
    }

    /// Keeps the changes and ends the transaction.
    pub fn commit(self) -> Result<(), FileError> {
        for b in self.entries.iter().filter_map(|e| e.backup.as_ref()) {
            remove_if_there(b)?;
        }
        remove_if_there(&self.journal)
    }
}

fn remove_if_there(p: &Path) -> Result<(), FileError> {
    match std::fs::remove_file(p) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(err(p)(e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollback_restores_written_created_and_removed_files() {
        let d = tempfile::tempdir().unwrap();
        let (a, b, c) = (d.path().join("a"), d.path().join("x/b"), d.path().join("c"));
        std::fs::write(&a, "a0").unwrap();
        std::fs::write(&c, "c0").unwrap();
        let (mut t, restored) = Transaction::begin(d.path().join("journal")).unwrap();
        assert!(restored.is_empty());
        assert!(t.write(&a, b"a1", 0o644).unwrap());
        assert!(!t.write(&a, b"a1", 0o644).unwrap());
        assert!(t.write(&b, b"b1", 0o755).unwrap());
        assert!(t.remove(&c).unwrap());
        assert_eq!(std::fs::read_to_string(&a).unwrap(), "a1");
        t.rollback().unwrap();
        assert_eq!(std::fs::read_to_string(&a).unwrap(), "a0");
        assert!(!b.exists());
        assert_eq!(std::fs::read_to_string(&c).unwrap(), "c0");
        assert_eq!(
            std::fs::read_dir(d.path()).unwrap().count(),
            3,
            "a, c and x/"
        );
    }

    #[test]
    fn an_interrupted_run_is_rolled_back_by_the_next() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a");
        std::fs::write(&a, "a0").unwrap();
        let journal = d.path().join("journal");
        let (mut t, _) = Transaction::begin(journal.clone()).unwrap();
        t.write(&a, b"a1", 0o644).unwrap();
        std::mem::forget(t); // the process dies here
        let (t, restored) = Transaction::begin(journal.clone()).unwrap();
        assert_eq!(restored, std::slice::from_ref(&a));
        assert_eq!(std::fs::read_to_string(&a).unwrap(), "a0");
        t.commit().unwrap();
        assert!(!journal.exists());
    }

    #[test]
    fn commit_keeps_the_changes_and_drops_the_backups() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a");
        std::fs::write(&a, "a0").unwrap();
        let (mut t, _) = Transaction::begin(d.path().join("journal")).unwrap();
        t.write(&a, b"a1", 0o600).unwrap();
        t.commit().unwrap();
        assert_eq!(std::fs::read_to_string(&a).unwrap(), "a1");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }
}
