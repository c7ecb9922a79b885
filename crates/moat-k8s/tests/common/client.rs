//! A real HTTPS client for the webhook: hyper over rustls, trusting only the CA it is given,
//! as the API server trusts only the webhook configuration's `caBundle`. Shared by the
//! tests. (The load generator, examples/webhook_load/, has a leaner client of its own.)

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// The name the API server uses to reach the webhook Service; the certificate carries it.
pub const SERVICE_NAME: &str = "moat-webhook.moat-system.svc";

/// A TLS connector that trusts exactly the CA in `ca_pem` and offers only `h2` by ALPN.
pub fn connector_h2(ca_pem: &str) -> TlsConnector {
    let mut config = client_config(ca_pem);
    config.alpn_protocols = vec![b"h2".to_vec()];
    TlsConnector::from(Arc::new(config))
}

/// A TLS connector that trusts exactly the CA in `ca_pem`.
pub fn connector(ca_pem: &str) -> TlsConnector {
    TlsConnector::from(Arc::new(client_config(ca_pem)))
}

fn client_config(ca_pem: &str) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.expect("CA PEM")).expect("CA certificate");
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// One keep-alive HTTP/1.1 connection over TLS.
pub struct Connection {
    sender: SendRequest<Full<Bytes>>,
}

impl Connection {
    /// Connects and completes the TLS handshake, verifying the certificate for
    /// [`SERVICE_NAME`].
    pub async fn open(connector: &TlsConnector, addr: SocketAddr) -> std::io::Result<Connection> {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let name = ServerName::try_from(SERVICE_NAME).expect("server name");
        let tls = connector.connect(name, tcp).await?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(std::io::Error::other)?;
        tokio::spawn(conn);
        Ok(Connection { sender })
    }

    /// Sends one request and reads the whole answer.
    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        body: Vec<u8>,
    ) -> Result<(StatusCode, Vec<u8>), hyper::Error> {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", SERVICE_NAME)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .expect("request");
        let resp = self.sender.send_request(req).await?;
        let status = resp.status();
        let bytes = resp.into_body().collect().await?.to_bytes();
        Ok((status, bytes.to_vec()))
    }
}

/// One HTTP/2 connection over TLS (ALPN `h2`), as the API server opens when the webhook
/// offers it.
pub struct Http2 {
    sender: hyper::client::conn::http2::SendRequest<Full<Bytes>>,
}

impl Http2 {
    /// Connects, completes the TLS handshake (which must settle on `h2`) and the HTTP/2
    /// preface.
    pub async fn open(ca_pem: &str, addr: SocketAddr) -> std::io::Result<Http2> {
        let tcp = TcpStream::connect(addr).await?;
        let name = ServerName::try_from(SERVICE_NAME).expect("server name");
        let tls = connector_h2(ca_pem).connect(name, tcp).await?;
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let (sender, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            TokioIo::new(tls),
        )
        .await
        .map_err(std::io::Error::other)?;
        tokio::spawn(conn);
        Ok(Http2 { sender })
    }

    /// Sends a POST of `body` to `path`, with `length` as its declared Content-Length when
    /// given, and reads the whole answer.
    pub async fn post(
        &mut self,
        path: &str,
        body: Vec<u8>,
        length: Option<u64>,
    ) -> Result<(StatusCode, Vec<u8>), hyper::Error> {
        let mut req = Request::builder()
            .method("POST")
            .uri(format!("https://{SERVICE_NAME}{path}"))
            .header("content-type", "application/json");
        if let Some(len) = length {
            req = req.header("content-length", len);
        }
        let req = req.body(Full::new(Bytes::from(body))).expect("request");
        let resp = self.sender.send_request(req).await?;
        let status = resp.status();
        let bytes = resp.into_body().collect().await?.to_bytes();
        Ok((status, bytes.to_vec()))
    }
}
