//! The served certificate: read from the PEM files, swapped whole on reload.

use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::config::TlsConfig;
use crate::error::{Error, Result};

/// The certificate every new handshake is served, and where it is read from. rustls asks
/// [`resolve`](ResolvesServerCert::resolve) once per handshake; a reload replaces the `Arc`
/// under a std lock held only for that swap or clone (never across an `.await`), so handshakes
/// in flight keep the certificate they started with and established connections are untouched.
pub(super) struct CertStore {
    paths: TlsConfig,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertStore {
    /// Reads the certificate chain and key named by `paths`; an error names the flag and file.
    pub(super) fn load(paths: &TlsConfig, provider: Arc<CryptoProvider>) -> Result<Self> {
        let current = read(paths, &provider)?;
        Ok(Self {
            paths: paths.clone(),
            provider,
            current: RwLock::new(Arc::new(current)),
        })
    }

    /// Reads the files again and serves them from the next handshake on; on an error the
    /// certificate served so far stays.
    pub(super) fn reload(&self) -> Result<()> {
        let fresh = Arc::new(read(&self.paths, &self.provider)?);
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = fresh;
        Ok(())
    }

    /// The certificate served now.
    pub(super) fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

impl fmt::Debug for CertStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertStore")
            .field("paths", &self.paths)
            .finish_non_exhaustive()
    }
}

/// The chain and key of `paths`, checked to belong together.
fn read(paths: &TlsConfig, provider: &CryptoProvider) -> Result<CertifiedKey> {
    let cert = paths.cert.display();
    let chain = CertificateDer::pem_file_iter(&paths.cert)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| Error::Config(format!("--tls-cert {cert}: {e}")))?;
    if chain.is_empty() {
        return Err(Error::Config(format!(
            "--tls-cert {cert}: no CERTIFICATE in the file"
        )));
    }
    let key = PrivateKeyDer::from_pem_file(&paths.key)
        .map_err(|e| Error::Config(format!("--tls-key {}: {e}", paths.key.display())))?;
    // Also checks that the key is the certificate's (a renewed certificate beside the old key
    // would otherwise fail every handshake).
    CertifiedKey::from_der(chain, key, provider).map_err(|e| {
        Error::Config(format!(
            "--tls-cert {cert} with --tls-key {}: {e}",
            paths.key.display()
        ))
    })
}
