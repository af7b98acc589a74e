//! The TLS settings of the main listener (`--tls-cert`, `--tls-key`).

use std::path::PathBuf;

/// Where the main listener's certificate and key are. Both are PEM files read at start and again
/// on every reload (SIGHUP), so a renewed certificate is served without a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// The certificate chain: the server's certificate first, then its intermediates.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1/RSA or SEC1/EC).
    pub key: PathBuf,
}
