//! TLS for HTTPS/WSS and RTMPS with rustls (ring provider): certificate loading with errors that
//! name the file, and a certificate resolver that reloads from disk (on SIGHUP and when the files
//! change) so renewals need no restart. New connections get the new certificate; open ones keep
//! theirs.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::crypto::ring;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// How often the certificate files are checked for changes.
const RELOAD_POLL: Duration = Duration::from_secs(5);

/// A certificate or key that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read certificate file {path}: {reason}")]
    Cert { path: String, reason: String },
    #[error("cannot read private key file {path}: {reason}")]
    Key { path: String, reason: String },
    #[error("certificate {cert} and key {key} do not go together: {reason}")]
    Mismatch {
        cert: String,
        key: String,
        reason: String,
    },
}

/// Reads a PEM certificate chain and private key into a signing key.
pub fn load_certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let cert_name = cert.display().to_string();
    let key_name = key.display().to_string();
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| TlsError::Cert {
            path: cert_name.clone(),
            reason: e.to_string(),
        })?
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Cert {
            path: cert_name.clone(),
            reason: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::Cert {
            path: cert_name,
            reason: "no PEM certificate in it".into(),
        });
    }
    let der = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
        path: key_name.clone(),
        reason: e.to_string(),
    })?;
    let provider = ring::default_provider();
    let certified =
        CertifiedKey::from_der(chain, der, &provider).map_err(|e| TlsError::Mismatch {
            cert: cert_name,
            key: key_name,
            reason: e.to_string(),
        })?;
    Ok(certified)
}

/// Serves the current certificate; [`ReloadingCert::reload`] swaps it.
#[derive(Debug)]
pub struct ReloadingCert {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
}

impl ReloadingCert {
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Arc<Self>, TlsError> {
        let key = load_certified_key(cert_path, key_path)?;
        Ok(Arc::new(ReloadingCert {
            cert_path: cert_path.to_owned(),
            key_path: key_path.to_owned(),
            current: RwLock::new(Arc::new(key)),
        }))
    }

    /// Loads the files again; on error the old certificate stays in use.
    pub fn reload(&self) -> Result<(), TlsError> {
        let key = load_certified_key(&self.cert_path, &self.key_path)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(key);
        Ok(())
    }

    fn modified(&self) -> Option<(SystemTime, SystemTime)> {
        let m = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        Some((m(&self.cert_path)?, m(&self.key_path)?))
    }

    /// An acceptor that uses this certificate, offering `alpn` protocols.
    pub fn acceptor(self: &Arc<Self>, alpn: &[&[u8]]) -> TlsAcceptor {
        let mut config =
            rustls::ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
                .with_safe_default_protocol_versions()
                .map(|b| b.with_no_client_auth().with_cert_resolver(self.clone()))
                // The ring provider supports the default versions, so this branch is never taken; it
                // still yields a working config instead of a panic.
                .unwrap_or_else(|_| {
                    rustls::ServerConfig::builder()
                        .with_no_client_auth()
                        .with_cert_resolver(self.clone())
                });
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        TlsAcceptor::from(Arc::new(config))
    }

    /// Reloads on SIGHUP and when the files' modification times change, until `shutdown`.
    pub fn spawn_reloader(self: &Arc<Self>, what: &'static str, shutdown: CancellationToken) {
        let this = self.clone();
        tokio::spawn(async move {
            let mut last = this.modified();
            let mut poll = tokio::time::interval(RELOAD_POLL);
            #[cfg(unix)]
            let mut hup =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
            loop {
                #[cfg(unix)]
                let hangup = async {
                    match hup.as_mut() {
                        Some(h) => h.recv().await,
                        None => std::future::pending().await,
                    }
                };
                #[cfg(not(unix))]
                let hangup = std::future::pending::<Option<()>>();
                let forced = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = poll.tick() => false,
                    _ = hangup => true,
                };
                let now = this.modified();
                if !forced && (now.is_none() || now == last) {
                    continue;
                }
                last = now;
                match this.reload() {
                    Ok(()) => {
                        tracing::info!(what, cert = %this.cert_path.display(), "certificate reloaded")
                    }
                    Err(e) => {
                        tracing::error!(what, error = %e, "certificate reload failed; keeping the old one")
                    }
                }
            }
        });
    }
}

/// Completes a TLS handshake within `limit`, giving up at once on shutdown.
pub async fn accept(
    acceptor: &TlsAcceptor,
    socket: tokio::net::TcpStream,
    limit: Duration,
    shutdown: &CancellationToken,
) -> Result<tokio_rustls::server::TlsStream<tokio::net::TcpStream>, String> {
    tokio::select! {
        r = tokio::time::timeout(limit, acceptor.accept(socket)) => match r {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("TLS handshake timed out".into()),
        },
        _ = shutdown.cancelled() => Err("server shutting down".into()),
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        )
    }
}
