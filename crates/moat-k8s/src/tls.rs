//! The webhook's serving certificate, reloaded when its files change.
//!
//! The API server only talks to a webhook over HTTPS, and certificates expire: cert-manager
//! renews them in the Secret, and the kubelet swaps the mounted files (an atomic symlink
//! flip). The server must pick the new pair up without a restart, so the certificate sits
//! behind a resolver that rustls asks on every handshake, and a background task swaps it
//! when the files change. A new pair that does not load (half written, key not matching
//! the certificate) is reported and the old one kept: a bad renewal must not take the
//! webhook, and with it pod creation, down.

use rustls::crypto::ring;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

/// A certificate or key that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file cannot be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file holds no usable PEM certificate or key.
    #[error("{}: {reason}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The key does not belong to the certificate.
    #[error("{} and {}: the key does not match the certificate: {reason}", cert.display(), key.display())]
    Mismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls' explanation.
        reason: String,
    },
}

/// What identifies a file's version: device, inode, size and modification time, read
/// through symlinks (a Secret volume flips `..data`, which changes the inode).
type Stamp = Option<(u64, u64, u64, i64, i64)>;

fn stamp(path: &Path) -> Stamp {
    std::fs::metadata(path)
        .ok()
        .map(|m| (m.dev(), m.ino(), m.len(), m.mtime(), m.mtime_nsec()))
}

/// Loads a PEM certificate chain and its private key (PKCS#8, PKCS#1 or SEC1).
pub fn load(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            path: path.to_path_buf(),
            source,
        })
    };
    let pem_error = |path: &Path, reason: String| TlsError::Pem {
        path: path.to_path_buf(),
        reason,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&read(cert)?)
        .collect::<Result<_, _>>()
        .map_err(|e| pem_error(cert, format!("not a PEM certificate: {e}")))?;
    if chain.is_empty() {
        return Err(pem_error(cert, "no CERTIFICATE block".to_string()));
    }
    let der = PrivateKeyDer::from_pem_slice(&read(key)?)
        .map_err(|e| pem_error(key, format!("no usable PEM private key: {e}")))?;
    let signing = ring::default_provider()
        .key_provider
        .load_private_key(der)
        .map_err(|e| pem_error(key, e.to_string()))?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|e| TlsError::Mismatch {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
        reason: e.to_string(),
    })?;
    Ok(certified)
}

/// The serving certificate, swapped in place when its files change.
#[derive(Debug)]
pub struct ReloadingCert {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
    /// The files' stamps when last looked at, loaded or not: a broken pair is reported
    /// once, not on every check.
    seen: Mutex<(Stamp, Stamp)>,
}

impl ReloadingCert {
    /// Loads the pair; an error here stops the server from starting.
    pub fn new(cert: &Path, key: &Path) -> Result<ReloadingCert, TlsError> {
        let seen = (stamp(cert), stamp(key));
        let loaded = load(cert, key)?;
        Ok(ReloadingCert {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            current: RwLock::new(Arc::new(loaded)),
            seen: Mutex::new(seen),
        })
    }

    /// Reloads the pair if either file changed since the last look. `Ok(true)`: a new
    /// certificate is in use; `Ok(false)`: nothing changed; `Err`: the files changed but do
    /// not load, and the previous certificate stays in use.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let now = (stamp(&self.cert), stamp(&self.key));
        {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            if *seen == now {
                return Ok(false);
            }
            *seen = now;
        }
        let loaded = load(&self.cert, &self.key)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(loaded);
        Ok(true)
    }

    /// The certificate in use.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// The rustls configuration: ring, TLS 1.2 and 1.3, HTTP/2 and HTTP/1.1 offered by ALPN.
pub fn server_config(cert: Arc<ReloadingCert>) -> Result<rustls::ServerConfig, rustls::Error> {
    let mut config =
        rustls::ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(cert);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}
