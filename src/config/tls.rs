//! Reading a service's `ca_file`: validation checks it at startup, and the proxy's backend
//! client builds its trust store from it, with the same parser.

use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::CertificateDer;

/// The certificates in the PEM file at `path` (at least one); the error names the file.
pub fn read_certificates(path: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{path}: {e}"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{path}: {e}"))?;
    match certs.is_empty() {
        true => Err(format!("{path}: no PEM certificate in it")),
        false => Ok(certs),
    }
}
