//! https backends (issue 14): the public roots by default, a private CA trusted through the
//! service's `ca_file`, and `insecure_skip_verify` for development. The backend is a real TLS
//! server with a certificate from a CA the test makes.

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

use crate::proxy::{gateway, service, token_for};
use crate::wire::read_request;

/// A CA (its PEM) and a certificate for 127.0.0.1 signed by it, with its key.
fn private_ca() -> (String, CertificateDer<'static>, PrivateKeyDer<'static>) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "mcp-gateway test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap().signed_by(&key, &ca).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    (ca.pem(), cert.der().clone(), key)
}

/// An https backend on 127.0.0.1 answering every request with `200 ok`; its port.
async fn tls_backend(cert: CertificateDer<'static>, key: PrivateKeyDer<'static>) -> u16 {
    let config = ServerConfig::builder().with_no_client_auth().with_single_cert(vec![cert], key).unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    actix_web::rt::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            actix_web::rt::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                let mut buf = Vec::new();
                while read_request(&mut tls, &mut buf).await.is_some() {
                    if tls.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

/// Writes `pem` to a file of its own; its path.
fn pem_file(pem: &str) -> String {
    let path =
        std::env::temp_dir().join(format!("mcp-gateway-ca-{}-{}.pem", std::process::id(), rand_suffix()));
    std::fs::write(&path, pem).unwrap();
    path.to_string_lossy().into_owned()
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}

/// Two calls through a gateway whose `svc` is the https backend at `port`, set up by `tls`.
async fn calls(port: u16, tls: impl FnOnce(&mut mcp_gateway::config::ServiceSettings)) -> Vec<(u16, String)> {
    let mut svc = service(format!("https://127.0.0.1:{port}/mcp"));
    tls(&mut svc);
    let app = gateway(|s| {
        s.mcp_services.insert("svc".into(), svc);
    })
    .await;
    let mut out = Vec::new();
    for _ in 0..2 {
        let mut res = app
            .client()
            .post(app.url("/svc/mcp"))
            .insert_header(("Authorization", format!("Bearer {}", token_for(&app, "svc"))))
            .insert_header(("Content-Type", "application/json"))
            .send_body(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
            .await
            .expect("request");
        let body = res.body().await.expect("body");
        out.push((res.status().as_u16(), String::from_utf8_lossy(&body).into_owned()));
    }
    out
}

#[actix_web::test]
async fn a_backend_with_a_private_ca_is_reached_once_its_ca_file_is_trusted() {
    let (ca, cert, key) = private_ca();
    let port = tls_backend(cert, key).await;
    let path = pem_file(&ca);
    let answers = calls(port, |s| s.ca_file = Some(path.clone())).await;
    std::fs::remove_file(&path).unwrap();
    assert_eq!(answers, vec![(200, "ok".to_owned()), (200, "ok".to_owned())]);
}

#[actix_web::test]
async fn a_private_certificate_is_refused_without_its_ca_or_with_another() {
    let (_, cert, key) = private_ca();
    let port = tls_backend(cert, key).await;
    let answers = calls(port, |_| {}).await;
    assert!(answers.iter().all(|(status, _)| *status == 502), "{answers:?}");
    let (other_ca, _, _) = private_ca();
    let path = pem_file(&other_ca);
    let answers = calls(port, |s| s.ca_file = Some(path.clone())).await;
    std::fs::remove_file(&path).unwrap();
    assert!(answers.iter().all(|(status, _)| *status == 502), "{answers:?}");
}

#[actix_web::test]
async fn insecure_skip_verify_reaches_any_certificate_in_development() {
    // The test gateway runs with `debug: true`; validation refuses the switch otherwise
    // (`config::validate` unit tests).
    let (_, cert, key) = private_ca();
    let port = tls_backend(cert, key).await;
    let answers = calls(port, |s| s.insecure_skip_verify = true).await;
    assert_eq!(answers, vec![(200, "ok".to_owned()), (200, "ok".to_owned())]);
}
