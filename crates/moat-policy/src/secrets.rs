//! Files a sandbox should not read merely because a rule grants the directory above them:
//! password hashes, private keys, credentials. The default preset keeps the system ones out
//! of its rule on /etc (its `except` list is the one place they are named); `moat record`
//! keeps all of them out of the directories it folds a run's accesses into (which of them
//! exist is found by `moat_sandbox::secrets`, this crate makes no system calls).

use crate::model::Policy;
use std::path::{Path, PathBuf};

/// Credential files and directories beneath a user's home directory.
pub const IN_HOME: &[&str] = &[
    ".ssh",
    ".gnupg",
    ".aws",
    ".azure",
    ".config/gcloud",
    ".kube",
    ".docker/config.json",
    ".netrc",
    ".git-credentials",
    ".pgpass",
    ".password-store",
    ".local/share/keyrings",
];

/// Beneath /etc, files named `*.key` or `*.pem` are private keys too, except under
/// /etc/ssl/certs (public certificates, hundreds of them).
pub fn is_key_file(path: &Path) -> bool {
    let public = path.starts_with("/etc/ssl/certs");
    let named = path.extension().is_some_and(|e| e == "key" || e == "pem");
    named && !public
}

/// The system's sensitive paths the default preset keeps out of its rule on /etc.
pub fn system() -> Vec<PathBuf> {
    crate::presets::load("default")
        .map(|p: Policy| {
            p.fs.except
                .into_iter()
                .map(|e| PathBuf::from(e.path))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_files_but_not_public_certificates() {
        assert!(is_key_file(Path::new("/etc/nginx/tls/site.key")));
        assert!(is_key_file(Path::new("/etc/app/client.pem")));
        assert!(!is_key_file(Path::new("/etc/ssl/certs/ca.pem")));
        assert!(!is_key_file(Path::new("/etc/hostname")));
    }
}
