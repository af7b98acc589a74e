//! TLS for the integration tests: a private CA and leaves for 127.0.0.1 made with rcgen at test
//! time, written as the server's PEM files, and `wss://`/HTTPS clients that trust only that CA.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use courier::config::TlsConfig;
use courier::Config;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::{Connector, MaybeTlsStream};

use super::{
    http_on, next_json, spawn_with_admin, token_for, HttpResponse, TestServer, Ws, API_KEY, WAIT,
};

/// A private CA, the server's certificate files (in a temp dir of their own) and the client
/// configuration that trusts that CA only (ALPN `http/1.1`, as browsers offer for WebSocket).
pub struct Pki {
    ca: Issuer<'static, KeyPair>,
    client: Arc<ClientConfig>,
    /// The CA's certificate, PEM (what a client's `--ca-cert` file holds).
    ca_pem: String,
    dir: PathBuf,
    /// The server's certificate chain and key files; [`Pki::new`] fills them with a first leaf.
    pub files: TlsConfig,
}

impl Pki {
    /// A new CA, with a first leaf (CN `first`) in [`Pki::files`].
    pub fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "courier test CA");
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("CA certificate");
        let mut roots = RootCertStore::empty();
        roots.add(cert.der().clone()).expect("CA as a root");
        #[allow(deprecated)] // ring, as the server (no post-quantum key exchange; fine here)
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        client.alpn_protocols = vec![b"http/1.1".to_vec()];
        // Full handshakes only: a resumed session shows the certificate of the session it
        // resumes, and the reload test must see what the server serves now.
        client.resumption = rustls::client::Resumption::disabled();
        let dir =
            std::env::temp_dir().join(format!("courier-tls-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let files = TlsConfig {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        };
        let pki = Self {
            ca: Issuer::new(params, key),
            client: Arc::new(client),
            ca_pem: cert.pem(),
            dir,
            files,
        };
        pki.issue("first");
        pki
    }

    /// The CA certificate as a PEM file (for the load tester's `--ca-cert`).
    pub fn ca_file(&self) -> PathBuf {
        let path = self.dir.join("ca.pem");
        std::fs::write(&path, &self.ca_pem).expect("write ca.pem");
        path
    }

    /// Writes a new leaf for 127.0.0.1 (CN `name`, a new key) over the server's files; returns
    /// the certificate, to compare with what a client is served.
    pub fn issue(&self, name: &str) -> CertificateDer<'static> {
        let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("leaf params");
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.ca).expect("leaf certificate");
        std::fs::write(&self.files.cert, cert.pem()).expect("write cert");
        std::fs::write(&self.files.key, key.serialize_pem()).expect("write key");
        cert.der().clone()
    }

    /// A TLS connection to `addr` (verified as 127.0.0.1 against the CA).
    pub async fn connect(&self, addr: SocketAddr) -> TlsStream<TcpStream> {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        let name = ServerName::from(addr.ip());
        let handshake = TlsConnector::from(self.client.clone()).connect(name, tcp);
        tokio::time::timeout(WAIT, handshake)
            .await
            .expect("TLS handshake timed out")
            .expect("TLS handshake")
    }

    /// `wss://` to the notifications endpoint with `token`, over `tcp` (connected to `addr`).
    pub async fn wss_on(&self, tcp: TcpStream, addr: SocketAddr, token: &str) -> Ws {
        let url = format!("wss://{addr}/ws/notifications/?token={token}");
        let connector = Connector::Rustls(self.client.clone());
        let handshake =
            tokio_tungstenite::client_async_tls_with_config(url, tcp, None, Some(connector));
        tokio::time::timeout(WAIT, handshake)
            .await
            .expect("wss handshake timed out")
            .expect("wss handshake")
            .0
    }

    /// `wss://` to the notifications endpoint at `addr` with `token`.
    pub async fn wss(&self, addr: SocketAddr, token: &str) -> Ws {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        self.wss_on(tcp, addr, token).await
    }

    /// Connects `user` over `wss://` and consumes `connection_established`.
    pub async fn connect_user(&self, addr: SocketAddr, user: Value) -> Ws {
        let mut ws = self.wss(addr, &token_for(user)).await;
        let hello = next_json(&mut ws).await;
        assert_eq!(hello["type"], "connection_established", "{hello}");
        ws
    }

    /// [`connect_small_rcvbuf`](super::connect_small_rcvbuf) over `wss://`: a 4 KiB receive
    /// buffer, so a client that stops reading backs up into the server.
    pub async fn connect_small_rcvbuf(&self, addr: SocketAddr, user: u64) -> Ws {
        let sock = tokio::net::TcpSocket::new_v4().expect("socket");
        sock.set_recv_buffer_size(4096).expect("rcvbuf");
        let tcp = sock.connect(addr).await.expect("connect");
        let mut ws = self
            .wss_on(tcp, addr, &token_for(serde_json::json!(user)))
            .await;
        assert_eq!(next_json(&mut ws).await["type"], "connection_established");
        ws
    }

    /// One HTTPS request (as [`http`](super::http)).
    pub async fn https(
        &self,
        addr: SocketAddr,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> HttpResponse {
        let tls = self.connect(addr).await;
        http_on(tls, addr, method, path, headers, body).await
    }

    /// `POST path` over HTTPS with a JSON body and the test API key.
    pub async fn post_json(&self, addr: SocketAddr, path: &str, body: &Value) -> HttpResponse {
        let body = serde_json::to_vec(body).expect("json");
        let headers = [("X-API-Key", API_KEY), ("Content-Type", "application/json")];
        self.https(addr, "POST", path, &headers, &body).await
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A server whose main listener speaks TLS with `pki`'s files; its admin listener (plain) is
/// returned beside it.
pub async fn spawn_tls_server(mut config: Config, pki: &Pki) -> (TestServer, SocketAddr) {
    config.tls = Some(pki.files.clone());
    spawn_with_admin(config).await
}

/// The certificate the server presented to `ws`.
pub fn peer_cert(ws: &Ws) -> CertificateDer<'static> {
    let MaybeTlsStream::Rustls(tls) = ws.get_ref() else {
        panic!("a wss:// client expected");
    };
    tls.get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .expect("a server certificate")
        .clone()
        .into_owned()
}
