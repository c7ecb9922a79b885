//! Which of the sensitive paths of [`moat_policy::secrets`] exist on this machine.

use moat_policy::secrets::{is_key_file, system, IN_HOME};
use std::path::{Path, PathBuf};

/// The sensitive paths that exist here: the default preset's exceptions, the key files
/// beneath /etc, and the credential files beneath `home`.
pub fn existing(home: Option<&Path>) -> Vec<PathBuf> {
    let mut out = system();
    let mut stack = vec![PathBuf::from("/etc")];
    // /etc is small (a few thousand entries); links are not followed.
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(kind) = e.file_type() else { continue };
            let path = e.path();
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file() && is_key_file(&path) {
                out.push(path);
            }
        }
    }
    if let Some(home) = home {
        out.extend(IN_HOME.iter().map(|rel| home.join(rel)));
    }
    out.retain(|p| p.symlink_metadata().is_ok());
    out.sort();
    out.dedup();
    out
}
