//! How the client verifies https backends: the public web roots, plus a service's own CA
//! certificates (`ca_file`: a private CA), or — in development only, which the configuration
//! enforces — no verification at all (`insecure_skip_verify`).

use std::sync::Arc;

use tokio_rustls::rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use tokio_rustls::rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::{ClientConfig, DigitallySignedStruct, Error, RootCertStore, SignatureScheme};

/// A service's TLS options, as configured.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct TlsOptions {
    /// PEM file of CA certificates trusted besides the public roots.
    pub ca_file: Option<String>,
    /// Accept any certificate (development only).
    pub insecure_skip_verify: bool,
}

/// The rustls configuration for `options` (hyper-rustls sets ALPN to `http/1.1` itself); an
/// error names the unreadable `ca_file`.
pub fn client_config(options: &TlsOptions) -> Result<ClientConfig, String> {
    let mut roots = RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = &options.ca_file {
        for cert in crate::config::read_certificates(path)? {
            roots.add(cert).map_err(|e| format!("{path}: {e}"))?;
        }
    }
    let mut config = ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    if options.insecure_skip_verify {
        let provider = Arc::clone(config.crypto_provider());
        config.dangerous().set_certificate_verifier(Arc::new(AnyCertificate(provider)));
    }
    Ok(config)
}

/// `insecure_skip_verify`: any certificate is accepted, but the handshake's signatures are
/// still checked (so the connection is at least to whoever holds the shown key).
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
