//! HTTPS on the server's own listener (`serve --tls-cert FILE --tls-key FILE`), so that a
//! deployment without a reverse proxy still gives browsers a secure context (WebCrypto, and
//! no one on the path reading tokens or rewriting pages).
//!
//! rustls with the ring provider (no OpenSSL); TLS 1.2 and 1.3 at rustls's safe defaults,
//! HTTP/1.1 only (ALPN `http/1.1`), as the plain listener. The files are PEM: the certificate
//! chain (leaf first) and its private key (PKCS#8, PKCS#1 or SEC1). Both are read and checked
//! at start (a missing, unreadable, empty or mismatched file is an error naming it) and again
//! on `SIGHUP`: a good pair replaces the served one for new connections, a bad one is logged
//! and the old pair stays.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use tokio_rustls::rustls::crypto::{ring, CryptoProvider};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

/// Why a certificate or key file cannot be served; the message names the file.
#[derive(Debug, thiserror::Error)]
#[error("{}: {why}", file.display())]
pub struct TlsError {
    pub file: PathBuf,
    pub why: String,
}

/// The TLS side of the listener: the acceptor and the pair it serves, reloadable.
pub struct Tls {
    acceptor: TlsAcceptor,
    served: Arc<Served>,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("cert", &self.served.cert)
            .field("key", &self.served.key)
            .finish()
    }
}

/// The files and the pair read from them last.
struct Served {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
}

impl fmt::Debug for Served {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Served")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish()
    }
}

impl ResolvesServerCert for Served {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().unwrap_or_else(|e| e.into_inner()).clone())
    }
}

/// Reads the chain in `cert` and the key in `key`, and checks that they belong together.
fn read_pair(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let bad = |file: &Path, why: String| TlsError {
        file: file.to_owned(),
        why,
    };
    let pem = std::fs::read(cert).map_err(|e| bad(cert, format!("cannot read the certificate file: {e}")))?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(cert, format!("not a PEM certificate file: {e}")))?;
    if chain.is_empty() {
        return Err(bad(cert, "no CERTIFICATE in it (expected PEM)".into()));
    }
    let pem = std::fs::read(key).map_err(|e| bad(key, format!("cannot read the key file: {e}")))?;
    let der = PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|e| bad(key, format!("no PEM private key in it (PKCS#8, PKCS#1 or SEC1): {e}")))?;
    CertifiedKey::from_der(chain, der, provider).map_err(|e| {
        bad(
            key,
            format!(
                "not a usable private key for the certificate in {}: {e}",
                cert.display()
            ),
        )
    })
}

impl Tls {
    /// Reads and checks the pair; an error names the file at fault.
    pub fn load(cert: &Path, key: &Path) -> Result<Arc<Tls>, TlsError> {
        let provider = Arc::new(ring::default_provider());
        let pair = read_pair(cert, key, &provider)?;
        let served = Arc::new(Served {
            cert: cert.to_owned(),
            key: key.to_owned(),
            provider: provider.clone(),
            current: RwLock::new(Arc::new(pair)),
        });
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError {
                file: cert.to_owned(),
                why: format!("no TLS version available: {e}"),
            })?
            .with_no_client_auth()
            .with_cert_resolver(served.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(Tls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            served,
        }))
    }

    /// Reads the files again; a good pair is served to new connections from now on, a bad
    /// one changes nothing.
    pub fn reload(&self) -> Result<(), TlsError> {
        let pair = read_pair(&self.served.cert, &self.served.key, &self.served.provider)?;
        *self.served.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(pair);
        Ok(())
    }

    pub fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }

    /// Reloads on every `SIGHUP` until the process ends (Unix only).
    pub fn reload_on_sighup(self: &Arc<Self>) {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let tls = self.clone();
            match signal(SignalKind::hangup()) {
                Ok(mut hangups) => {
                    tokio::spawn(async move {
                        while hangups.recv().await.is_some() {
                            match tls.reload() {
                                Ok(()) => {
                                    tracing::info!(cert = %tls.served.cert.display(), "SIGHUP: reloaded the TLS certificate and key")
                                }
                                Err(e) => {
                                    tracing::error!(error = %e, "SIGHUP: the TLS files were not reloaded; serving the previous pair")
                                }
                            }
                        }
                    });
                }
                Err(e) => tracing::warn!(error = %e, "cannot listen for SIGHUP; the TLS files are read at start only"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tls").join(name)
    }

    #[test]
    fn a_good_pair_loads() {
        Tls::load(&data("server1.pem"), &data("server1.key")).expect("the fixture pair");
    }

    /// Each bad file is refused with an error naming it.
    #[test]
    fn bad_files_are_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "not pem at all\n").unwrap();
        let missing = dir.path().join("missing.pem");
        let cases = [
            (data("server1.pem"), missing.clone(), &missing, "cannot read"),
            (garbage.clone(), data("server1.key"), &garbage, "no CERTIFICATE"),
            (data("server1.pem"), garbage.clone(), &garbage, "no PEM private key"),
            (
                data("server1.pem"),
                data("server1.pem"),
                &data("server1.pem"),
                "no PEM private key",
            ),
            (
                data("server1.pem"),
                data("server2.key"),
                &data("server2.key"),
                "not a usable private key",
            ),
        ];
        for (cert, key, named, why) in cases {
            let e = Tls::load(&cert, &key).unwrap_err();
            assert_eq!(&e.file, named, "{e}");
            assert!(e.to_string().contains(why), "{e}");
            assert!(e.to_string().starts_with(&named.display().to_string()), "{e}");
        }
    }
}
