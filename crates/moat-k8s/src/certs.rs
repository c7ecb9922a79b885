//! `moat-k8s webhook gen-certs`: a self-signed CA and a serving certificate for the
//! webhook Service, for clusters without cert-manager.
//!
//! The API server reaches the webhook as `https://<service>.<namespace>.svc:443`, so the
//! serving certificate names the Service's DNS forms; it trusts it through the
//! `caBundle` of the MutatingWebhookConfiguration, which is the CA certificate, base64
//! encoded. The CA's private key is not kept: renewing means generating a new pair and
//! updating the `caBundle`, which is one command and leaves no long-lived signing key
//! lying around.

use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use std::path::{Path, PathBuf};
use time::{Duration, OffsetDateTime};

/// What to generate.
#[derive(Clone, Debug)]
pub struct CertRequest {
    /// The webhook Service's name.
    pub service: String,
    /// Its namespace.
    pub namespace: String,
    /// How long both certificates are valid, in days.
    pub days: u32,
    /// More DNS names or IP addresses for the serving certificate (a test address, say).
    pub extra_names: Vec<String>,
}

/// A generated CA certificate and serving pair, PEM encoded.
#[derive(Clone, Debug)]
pub struct Generated {
    /// The CA certificate: what the API server must trust.
    pub ca_pem: String,
    /// The serving certificate (`tls.crt`).
    pub cert_pem: String,
    /// The serving certificate's private key (`tls.key`).
    pub key_pem: String,
}

impl Generated {
    /// The value of `caBundle`: the CA certificate, base64 encoded.
    pub fn ca_bundle(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.ca_pem)
    }
}

/// Why certificates could not be made or written.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// rcgen refused the parameters.
    #[error("cannot generate the certificates: {0}")]
    Generate(#[from] rcgen::Error),
    /// A file cannot be written.
    #[error("{}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// The DNS names the API server may use for the Service.
pub fn service_names(service: &str, namespace: &str) -> Vec<String> {
    vec![
        service.to_string(),
        format!("{service}.{namespace}"),
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
    ]
}

/// Generates a CA and a serving certificate signed by it (ECDSA P-256).
pub fn generate(req: &CertRequest) -> Result<Generated, CertError> {
    // An hour of slack before now: clocks in a cluster are not exactly in step.
    let not_before = OffsetDateTime::now_utc() - Duration::hours(1);
    let not_after = OffsetDateTime::now_utc() + Duration::days(i64::from(req.days));

    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.distinguished_name.push(
        DnType::CommonName,
        format!("moat webhook CA ({})", req.namespace),
    );
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.not_before = not_before;
    ca.not_after = not_after;
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate()?)?;

    let mut names = service_names(&req.service, &req.namespace);
    names.extend(req.extra_names.iter().cloned());
    let mut leaf = CertificateParams::new(names)?;
    leaf.distinguished_name.push(
        DnType::CommonName,
        format!("{}.{}.svc", req.service, req.namespace),
    );
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.not_before = not_before;
    leaf.not_after = not_after;
    let key = KeyPair::generate()?;
    let cert = leaf.signed_by(&key, &ca)?;
    Ok(Generated {
        ca_pem: ca.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Writes `ca.crt`, `tls.crt` and `tls.key` (mode 0600) into `dir`, creating it.
pub fn write(dir: &Path, generated: &Generated) -> Result<(), CertError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CertError::Write { path, source }
    };
    std::fs::create_dir_all(dir).map_err(err(dir))?;
    for (name, text, mode) in [
        ("ca.crt", &generated.ca_pem, 0o644),
        ("tls.crt", &generated.cert_pem, 0o644),
        ("tls.key", &generated.key_pem, 0o600),
    ] {
        let path = dir.join(name);
        // A key written over an existing, more open file must not keep its old mode.
        let _ = std::fs::remove_file(&path);
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&path)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .map_err(err(&path))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_pair_loads_and_names_the_service() {
        let g = generate(&CertRequest {
            service: "moat-webhook".into(),
            namespace: "moat-system".into(),
            days: 30,
            extra_names: vec!["127.0.0.1".into()],
        })
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &g).unwrap();
        crate::tls::load(&dir.path().join("tls.crt"), &dir.path().join("tls.key")).unwrap();
        let mode = std::fs::metadata(dir.path().join("tls.key")).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
            0o600
        );
        let bundle = base64::engine::general_purpose::STANDARD
            .decode(g.ca_bundle())
            .unwrap();
        assert!(String::from_utf8(bundle)
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----"));
    }
}
