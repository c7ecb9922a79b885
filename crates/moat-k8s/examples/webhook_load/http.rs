//! A lean HTTP/1.1-over-TLS client: one keep-alive connection, one request in flight.
//!
//! The load generator shares the machine's cores with the webhook, so every microsecond it
//! spends is taken from the server and shows up as server latency. A general client
//! (hyper) builds a request object, a header map and a body stream per request; this one
//! writes a request serialised once (headers and body, one TLS record, one system call)
//! and reads the answer into a reused buffer, parsing only the status line and
//! `content-length`. That is all an AdmissionReview exchange needs: the webhook answers
//! every request with a complete body of known length.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::io::{Error, ErrorKind};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// The name the API server uses to reach the webhook Service; the certificate carries it.
pub const SERVICE_NAME: &str = "moat-webhook.moat-system.svc";

/// A TLS connector that trusts exactly the CA in `ca_pem`, as the API server trusts only
/// the webhook configuration's `caBundle`. ring, as in the server: AES-GCM with AES-NI and
/// PCLMUL where the CPU has them. Like the API server's Go client on such a CPU, it
/// prefers AES-128-GCM (rustls' own order puts AES-256 first), and it offers HTTP/1.1 by
/// ALPN.
pub fn connector(ca_pem: &str) -> Result<TlsConnector, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        let cert = cert.map_err(|e| format!("CA PEM: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("CA certificate: {e}"))?;
    }
    // TLS 1.3 with Go's order on a CPU with AES-NI.
    use rustls::crypto::ring::cipher_suite as suite;
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites = vec![
        suite::TLS13_AES_128_GCM_SHA256,
        suite::TLS13_CHACHA20_POLY1305_SHA256,
        suite::TLS13_AES_256_GCM_SHA384,
    ];
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| format!("TLS versions: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsConnector::from(Arc::new(config)))
}

/// A POST of `body` to `path`, serialised as it goes on the wire.
pub fn post(path: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "POST {path} HTTP/1.1\r\nhost: {SERVICE_NAME}\r\ncontent-type: application/json\r\n\
         accept: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// One keep-alive connection.
pub struct Connection {
    tls: TlsStream<TcpStream>,
    buf: Vec<u8>,
}

impl Connection {
    /// Connects and completes the TLS handshake, verifying the certificate for
    /// [`SERVICE_NAME`].
    pub async fn open(connector: &TlsConnector, addr: SocketAddr) -> std::io::Result<Connection> {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let name = ServerName::try_from(SERVICE_NAME).map_err(Error::other)?;
        let tls = connector.connect(name, tcp).await?;
        Ok(Connection {
            tls,
            buf: Vec::with_capacity(16 * 1024),
        })
    }

    /// Sends one serialised request (see [`post`]) and reads the whole answer; returns its
    /// status code and body length.
    pub async fn exchange(&mut self, request: &[u8]) -> std::io::Result<(u16, usize)> {
        self.tls.write_all(request).await?;
        self.tls.flush().await?;
        self.buf.clear();
        loop {
            if let Some(answer) = complete(&self.buf)? {
                return Ok(answer);
            }
            if self.buf.capacity() - self.buf.len() < 4096 {
                self.buf.reserve(16 * 1024);
            }
            if self.tls.read_buf(&mut self.buf).await? == 0 {
                return Err(Error::new(ErrorKind::UnexpectedEof, "connection closed"));
            }
        }
    }
}

/// `Some((status, body length))` once `buf` holds a whole response.
fn complete(buf: &[u8]) -> std::io::Result<Option<(u16, usize)>> {
    let bad = |what: &str| Error::new(ErrorKind::InvalidData, what.to_string());
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..end]).map_err(|_| bad("response head not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.strip_prefix("HTTP/1.1 "))
        .and_then(|l| l.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| bad("no HTTP/1.1 status line"))?;
    let length = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .ok_or_else(|| bad("response without content-length"))?;
    let total = end + 4 + length;
    match buf.len().cmp(&total) {
        std::cmp::Ordering::Less => Ok(None),
        std::cmp::Ordering::Equal => Ok(Some((status, length))),
        // Nothing was pipelined, so nothing may follow the answer.
        std::cmp::Ordering::Greater => Err(bad("bytes after the response")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_whole_response_only() {
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        assert_eq!(complete(r).unwrap(), Some((200, 2)));
        assert_eq!(complete(&r[..r.len() - 1]).unwrap(), None);
        assert_eq!(complete(b"HTTP/1.1 200 OK\r\n").unwrap(), None);
        assert!(complete(b"HTTP/1.1 200 OK\r\n\r\n").is_err());
    }
}
