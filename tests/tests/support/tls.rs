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
    ca: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
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
        TestCertificates { dir, ca_der: ca.der().clone(), ca }
    }

    /// Replaces the pair with a new certificate for `localhost` from the same
    /// authority, valid from `from` to `until` days from now, its key 0600 (as a
    /// renewal leaves it). Returns the new certificate.
    #[allow(dead_code)] // used by some of the test binaries that include this file
    pub fn renew(&self, from: i64, until: i64) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now + time::Duration::days(from);
        params.not_after = now + time::Duration::days(until);
        let leaf = params.signed_by(&key, &self.ca).unwrap();
        std::fs::write(self.dir.join("fullchain.pem"), format!("{}{}", leaf.pem(), self.ca.pem())).unwrap();
        let key_path = self.dir.join("privkey.pem");
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
        leaf.der().to_vec()
    }
}

impl Drop for TestCertificates {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// GET / over TLS with only `version` allowed, trusting only `ca`. Returns the
/// negotiated protocol and the response head.
#[allow(dead_code)] // used by some of the test binaries that include this file
pub fn https_get(
    port: u16,
    ca: &rustls::pki_types::CertificateDer<'static>,
    version: &'static rustls::SupportedProtocolVersion,
) -> anyhow::Result<(rustls::ProtocolVersion, String)> {
    let (negotiated, head, _) = exchange(port, ca, version, "/", Duration::from_secs(10))?;
    Ok((negotiated, head))
}

/// `GET path` over TLS 1.3 trusting only `ca`: the response head and the certificate
/// the server presented.
#[allow(dead_code)]
pub fn https_request(
    port: u16,
    ca: &rustls::pki_types::CertificateDer<'static>,
    path: &str,
) -> anyhow::Result<(String, Vec<u8>)> {
    let (_, head, peer) = exchange(port, ca, &rustls::version::TLS13, path, Duration::from_secs(2))?;
    Ok((head, peer))
}

/// One `GET path` over TLS with only `version` allowed, trusting only `ca`, each read
/// and write given up after `limit`: the negotiated protocol, the response head and the
/// server's certificate.
fn exchange(
    port: u16,
    ca: &rustls::pki_types::CertificateDer<'static>,
    version: &'static rustls::SupportedProtocolVersion,
    path: &str,
    limit: Duration,
) -> anyhow::Result<(rustls::ProtocolVersion, String, Vec<u8>)> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone())?;
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[version])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connection = rustls::ClientConnection::new(Arc::new(config), "localhost".try_into()?)?;
    let socket = TcpStream::connect(("127.0.0.1", port))?;
    socket.set_read_timeout(Some(limit))?;
    socket.set_write_timeout(Some(limit))?;
    let mut tls = rustls::StreamOwned::new(connection, socket);
    tls.write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes())?;
    let mut response = Vec::new();
    match tls.read_to_end(&mut response) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !response.is_empty() => {}
        Err(e) => return Err(e.into()),
    }
    let negotiated = tls.conn.protocol_version().ok_or_else(|| anyhow::anyhow!("no protocol negotiated"))?;
    let peer = tls.conn.peer_certificates().and_then(|c| c.first()).map(|c| c.to_vec()).unwrap_or_default();
    let text = String::from_utf8_lossy(&response);
    let head = text.split("\r\n\r\n").next().unwrap_or_default().to_string();
    Ok((negotiated, head, peer))
}

/// HTTPS requests while something happens: `GET /api/v1/activities` about every 20 ms,
/// each given up after 2 s, for at most 5 minutes; remembers the certificates seen.
#[allow(dead_code)]
pub struct TlsLoad {
    stop: Arc<std::sync::atomic::AtomicBool>,
    worker: std::thread::JoinHandle<TlsLoadReport>,
}

#[allow(dead_code)]
#[derive(Debug, Default)]
pub struct TlsLoadReport {
    pub sent: u32,
    pub failures: Vec<String>,
    /// Each certificate the server presented, in the order first seen.
    pub certificates: Vec<Vec<u8>>,
}

#[allow(dead_code)]
impl TlsLoad {
    pub fn start(port: u16, ca: &rustls::pki_types::CertificateDer<'static>) -> TlsLoad {
        use std::sync::atomic::Ordering;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let ca = ca.clone();
        let worker = std::thread::spawn(move || {
            let deadline = std::time::Instant::now() + Duration::from_secs(300);
            let mut report = TlsLoadReport::default();
            while !flag.load(Ordering::Relaxed) && std::time::Instant::now() < deadline {
                report.sent += 1;
                match https_request(port, &ca, "/api/v1/activities") {
                    Ok((head, peer)) if head.starts_with("HTTP/1.1 200") => {
                        if !report.certificates.contains(&peer) {
                            report.certificates.push(peer);
                        }
                    }
                    Ok((head, _)) => report.failures.push(head.lines().next().unwrap_or_default().to_string()),
                    Err(err) => report.failures.push(format!("{err:#}")),
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            report
        });
        TlsLoad { stop, worker }
    }

    pub fn stop(self) -> TlsLoadReport {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.worker.join().expect("the TLS load thread")
    }
}
