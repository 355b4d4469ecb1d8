//! TLS for tests: a throwaway certificate authority and a `localhost` certificate it
//! signed, and a GET over TLS that trusts only that authority and pins the protocol
//! version. Shared by the container tests and the deploy tests (`#[path]` modules).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

/// A certificate authority and a certificate for `localhost` it signed.
pub struct TestCertificates {
    pub dir: std::path::PathBuf,
    pub ca_der: rustls::pki_types::CertificateDer<'static>,
}

impl TestCertificates {
    pub fn generate() -> TestCertificates {
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(rcgen::DnType::CommonName, "Cultivate test CA");
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().unwrap()).unwrap();
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf =
            rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap().signed_by(&leaf_key, &ca).unwrap();

        let dir = std::env::temp_dir().join(cultivate_tests::unique("certs"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("fullchain.pem"), leaf.pem()).unwrap();
        std::fs::write(dir.join("privkey.pem"), leaf_key.serialize_pem()).unwrap();
        // Read by nginx's unprivileged user inside the container; a deploy hands the key
        // to uid 101 instead. This is a throwaway test key.
        use std::os::unix::fs::PermissionsExt;
        for file in ["fullchain.pem", "privkey.pem"] {
            std::fs::set_permissions(dir.join(file), std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        TestCertificates { dir, ca_der: ca.der().clone() }
    }
}

impl Drop for TestCertificates {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// GET / over TLS with only `version` allowed, trusting only `ca`. Returns the
/// negotiated protocol and the response head.
pub fn https_get(
    port: u16,
    ca: &rustls::pki_types::CertificateDer<'static>,
    version: &'static rustls::SupportedProtocolVersion,
) -> anyhow::Result<(rustls::ProtocolVersion, String)> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone())?;
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[version])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connection = rustls::ClientConnection::new(Arc::new(config), "localhost".try_into()?)?;
    let socket = TcpStream::connect(("127.0.0.1", port))?;
    socket.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut tls = rustls::StreamOwned::new(connection, socket);
    tls.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
    let mut response = Vec::new();
    match tls.read_to_end(&mut response) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !response.is_empty() => {}
        Err(e) => return Err(e.into()),
    }
    let negotiated = tls.conn.protocol_version().ok_or_else(|| anyhow::anyhow!("no protocol negotiated"))?;
    let text = String::from_utf8_lossy(&response);
    let head = text.split("\r\n\r\n").next().unwrap_or_default().to_string();
    Ok((negotiated, head))
}
