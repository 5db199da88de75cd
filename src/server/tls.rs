//! TLS for `--ssl-certfile`/`--ssl-keyfile`: rustls (ring provider) terminates TLS on each
//! accepted TCP stream before hyper sees it.

use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::server::TlsStream;

use crate::log::{self, Level};

/// A client that opens a connection and never finishes the handshake must not hold a task
/// (and a graceful-shutdown slot) forever.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads the PEM certificate chain and private key (the key may sit in the certificate file,
/// as Python's `ssl.load_cert_chain` allows). Errors name the file and what is wrong with it.
/// `alpn`: the protocols offered, preferred first.
pub fn acceptor(
    certfile: &str,
    keyfile: Option<&str>,
    alpn: Vec<Vec<u8>>,
) -> Result<TlsAcceptor, String> {
    let certs = CertificateDer::pem_file_iter(certfile)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read certificates from --ssl-certfile {certfile}: {e}"))?;
    if certs.is_empty() {
        return Err(format!(
            "--ssl-certfile {certfile} holds no PEM certificate (BEGIN CERTIFICATE)"
        ));
    }
    let key_path = keyfile.unwrap_or(certfile);
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| {
        let flag = if keyfile.is_some() {
            "--ssl-keyfile"
        } else {
            "--ssl-certfile (no --ssl-keyfile given)"
        };
        format!("cannot read a private key from {flag} {key_path}: {e}")
    })?;
    let mut config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up failed: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("the TLS certificate and key do not fit together: {e}"))?;
    config.alpn_protocols = alpn;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Runs the handshake on its own task, then hands the encrypted stream to `serve`. A failed
/// handshake (a plain-HTTP client, a client that rejects the certificate) ends only that
/// connection.
pub fn spawn_handshake<F>(acceptor: TlsAcceptor, stream: TcpStream, serve: F)
where
    F: FnOnce(TlsStream<TcpStream>) + Send + 'static,
{
    tokio::spawn(async move {
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
            Ok(Ok(tls)) => serve(tls),
            Ok(Err(err)) => log::write(Level::Debug, &format!("TLS handshake failed: {err}")),
            Err(_) => log::write(Level::Debug, "TLS handshake timed out"),
        }
    });
}
