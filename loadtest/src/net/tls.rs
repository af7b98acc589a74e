//! TLS for `wss://` and `https://` URLs: one rustls client configuration per run (trusted roots,
//! `--ca-cert`, `--insecure`), shared by every connection, and the handshake's errors in words.
//!
//! Roots: the Mozilla set compiled in by `webpki-roots`, not the platform's store
//! (`rustls-native-certs`): a load tester runs on CI boxes and containers whose stores differ or
//! are empty, and the same command must verify the same way everywhere. A server under a private
//! CA (staging, a test nginx) is what `--ca-cert` is for, and it *replaces* the built-in roots,
//! as curl's `--cacert` does: the run then trusts exactly the CA it was given, so a certificate
//! from any other CA, public ones included, is refused.

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;

use tokio::net::TcpStream;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::{self, CryptoProvider};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::{
    self, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_rustls::TlsConnector;

use super::Stream;

/// The run's TLS client settings: built once (reading `--ca-cert`), cloned (an `Arc`) into every
/// connection that speaks TLS.
#[derive(Clone)]
pub struct TlsClient {
    connector: TlsConnector,
    insecure: bool,
    /// What certificates are checked against, for the report.
    trust: Arc<str>,
}

impl fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsClient")
            .field("insecure", &self.insecure)
            .field("trust", &self.trust)
            .finish_non_exhaustive()
    }
}

/// courier's own provider ([`courier::tls_provider`]: ring, key exchange X25519 first as browsers
/// offer it), so the tester negotiates what a browser would with the server it measures.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(courier::tls_provider())
}

impl TlsClient {
    /// Trusts the built-in roots, or only the certificates of `ca_cert` (a PEM file, one or more
    /// certificates); with `insecure`, trusts any certificate (signatures are still checked, so
    /// the handshake itself is real). An unreadable file or one without a certificate is an error
    /// naming the file.
    pub fn new(ca_cert: Option<&Path>, insecure: bool) -> Result<Self, String> {
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?;
        let config = if insecure {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAny(provider())))
                .with_no_client_auth()
        } else {
            let roots = match ca_cert {
                Some(path) => roots_from(path)?,
                None => RootCertStore {
                    roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
                },
            };
            builder.with_root_certificates(roots).with_no_client_auth()
        };
        let trust = match (insecure, ca_cert) {
            (true, _) => "none (--insecure)".to_owned(),
            (false, Some(path)) => format!("--ca-cert {}", path.display()),
            (false, None) => "built-in roots (webpki-roots)".to_owned(),
        };
        Ok(Self {
            connector: TlsConnector::from(Arc::new(config)),
            insecure,
            trust: trust.into(),
        })
    }

    /// Whether certificates go unchecked (`--insecure`).
    pub fn insecure(&self) -> bool {
        self.insecure
    }

    /// What certificates are checked against: `--ca-cert FILE`, the built-in roots, or none.
    pub fn trust(&self) -> &str {
        &self.trust
    }

    /// The TLS handshake over `tcp` with `name` (SNI for a DNS name; an IP address sends no SNI
    /// and is checked against the certificate's IP SANs). Errors read as [`describe`] puts them.
    pub async fn handshake(
        &self,
        tcp: TcpStream,
        name: &ServerName<'static>,
    ) -> io::Result<Stream> {
        let tls = self.connector.connect(name.clone(), tcp).await?;
        Ok(Stream::Tls(Box::new(tls)))
    }
}

/// Every certificate of the PEM file at `path`.
fn roots_from(path: &Path) -> Result<RootCertStore, String> {
    let shown = path.display();
    let bytes = std::fs::read(path).map_err(|e| format!("--ca-cert {shown}: {e}"))?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&bytes) {
        let cert = cert.map_err(|e| format!("--ca-cert {shown}: not PEM: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("--ca-cert {shown}: {e}"))?;
    }
    if roots.is_empty() {
        return Err(format!(
            "--ca-cert {shown}: no certificate (expected PEM \"BEGIN CERTIFICATE\" blocks)"
        ));
    }
    Ok(roots)
}

/// The name a URL's host is checked against: a DNS name, or an IP address (brackets removed).
pub fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(bare.to_owned()).map_err(|e| format!("{host:?} is not a TLS name: {e}"))
}

/// The rustls error inside a handshake's `io::Error`, when there is one.
fn rustls_error(e: &io::Error) -> Option<&rustls::Error> {
    e.get_ref()?.downcast_ref::<rustls::Error>()
}

/// A failed handshake in words, prefixed `tls: `, with what to do about a refused certificate;
/// `None` when the error is not TLS's (a refused or reset TCP connection).
pub fn describe(e: &io::Error) -> Option<String> {
    use rustls::CertificateError as C;
    let err = rustls_error(e)?;
    let hint = match err {
        rustls::Error::InvalidCertificate(C::UnknownIssuer | C::BadSignature) => {
            " (give --ca-cert FILE with the CA that signed the server's certificate, or --insecure to skip the check)"
        }
        rustls::Error::InvalidCertificate(C::NotValidForName | C::NotValidForNameContext { .. }) => {
            " (connect by a name or address the certificate carries, or --insecure to skip the check)"
        }
        rustls::Error::InvalidCertificate(_) => " (--insecure skips the check)",
        _ => "",
    };
    Some(format!("tls: {err}{hint}"))
}

/// A class for the connect-error table: the certificate problem, short (`tls: UnknownIssuer`).
pub fn classify(e: &io::Error) -> Option<String> {
    rustls_error(e).map(|err| match err {
        rustls::Error::InvalidCertificate(c) => format!("tls: certificate {c:?}"),
        other => format!("tls: {other}"),
    })
}

/// `--insecure`: accepts any certificate for any name. Handshake signatures are still verified
/// with the provider's algorithms, so a peer must hold the key of the certificate it shows.
#[derive(Debug)]
struct AcceptAny(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
