//! Health: the lock file and `GET /_/health`.
//!
//! As in the classic watchdog, the lock file is `.lock` in the watchdog's temporary
//! directory (`$TMPDIR`, else `/tmp`), written once the server listens and removed on
//! SIGTERM; exec health checks look for it, and `/_/health` answers 200 while it exists
//! and the watchdog accepts calls, 503 otherwise. Calls never see it: their sandbox grants
//! neither `/tmp` nor the watchdog's `$TMPDIR`.
//!
//! One deliberate difference: with `suppress_lock=true` the classic watchdog's
//! `/_/health` answers 503 forever (it still looks for the file it did not write); here it
//! answers 200 while calls are accepted.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// The health state.
#[derive(Debug)]
pub struct Health {
    lock: Option<PathBuf>,
    accepting: AtomicBool,
    stopping: AtomicBool,
}

/// The classic lock file's path.
pub fn lock_path() -> PathBuf {
    let dir = std::env::var_os("TMPDIR")
        .filter(|t| !t.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    dir.join(".lock")
}

impl Health {
    /// Not yet accepting; `lock` is the lock file, `None` with `suppress_lock`.
    pub fn new(lock: Option<PathBuf>) -> Health {
        Health {
            lock,
            accepting: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
        }
    }

    /// The lock file, if one is used.
    pub fn lock(&self) -> Option<&Path> {
        self.lock.as_deref()
    }

    /// Writes the lock file (mode 0660, as the classic watchdog) and starts accepting.
    pub fn mark_healthy(&self) -> std::io::Result<()> {
        if let Some(path) = &self.lock {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o660)
                .open(path)?;
        }
        self.accepting.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Stops accepting and removes the lock file (SIGTERM).
    pub fn mark_unhealthy(&self) -> std::io::Result<()> {
        self.accepting.store(false, Ordering::SeqCst);
        self.stopping.store(true, Ordering::SeqCst);
        match &self.lock {
            Some(path) => match std::fs::remove_file(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            },
            None => Ok(()),
        }
    }

    /// Whether the watchdog is shutting down (since SIGTERM or SIGINT).
    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Whether `/_/health` answers 200.
    pub fn is_healthy(&self) -> bool {
        self.accepting.load(Ordering::SeqCst) && self.lock.as_deref().is_none_or(|p| p.exists())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_lock_file() {
        let path = std::env::temp_dir().join(format!("moat-health-{}.lock", std::process::id()));
        let h = Health::new(Some(path.clone()));
        assert!(!h.is_healthy());
        h.mark_healthy().unwrap();
        assert!(h.is_healthy() && path.exists());
        std::fs::remove_file(&path).unwrap();
        assert!(!h.is_healthy(), "a removed lock file makes it unhealthy");
        h.mark_healthy().unwrap();
        h.mark_unhealthy().unwrap();
        assert!(!h.is_healthy() && !path.exists());
        let h = Health::new(None);
        h.mark_healthy().unwrap();
        assert!(h.is_healthy());
    }
}
