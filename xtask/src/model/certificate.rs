//! The TLS certificate and key a deploy hands to nginx, checked before anything reaches
//! a host (design Property 14): both parse, the key is the leaf's, the leaf is valid
//! now, the chain runs from the leaf to its issuers, each signed by the next, and the
//! leaf's names cover the names the site is served under. Parsing is x509-parser's
//! (certificates) and rustls's (PEM sections, keys and the key-to-certificate match);
//! nothing here reads PEM or DER by hand.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

pub const CHAIN_FILE: &str = "fullchain.pem";
pub const KEY_FILE: &str = "privkey.pem";

/// What a good pair says about itself, for the log, `doctor` and `status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateSummary {
    /// The leaf's serial number, hex with colons as `openssl x509 -serial` shows it.
    pub serial: String,
    /// The names the leaf covers (DNS names and IP addresses).
    pub names: Vec<String>,
    /// Unix time the leaf expires.
    pub not_after: i64,
    /// The leaf's issuer, as a distinguished name.
    pub issuer: String,
    /// Certificates in the chain file, the leaf included.
    pub chain_len: usize,
}

impl CertificateSummary {
    /// Whole days from `now` until the leaf expires (negative once expired).
    pub fn days_left(&self, now: i64) -> i64 {
        (self.not_after - now).div_euclid(86_400)
    }

    /// The expiry date, `YYYY-MM-DD`.
    pub fn expiry_date(&self) -> String {
        date(self.not_after)
    }
}

/// The pair in `[http] cert_path` on this machine, read and checked.
#[derive(Clone, Debug)]
pub struct LocalCertificates {
    pub chain_path: PathBuf,
    pub key_path: PathBuf,
    pub chain: Vec<u8>,
    pub key: Vec<u8>,
    pub summary: CertificateSummary,
}

impl LocalCertificates {
    /// With HTTPS on: both files of `[http] cert_path`, the key readable by its owner
    /// only, checked against `[http] server_names` at `now`. `None` with HTTPS off.
    pub fn load(config: &crate::model::config::Config, now: i64) -> Result<Option<LocalCertificates>> {
        let Some(dir) = config.http.cert_path.as_deref().filter(|_| config.http.https) else { return Ok(None) };
        let chain_path = Path::new(dir).join(CHAIN_FILE);
        let key_path = Path::new(dir).join(KEY_FILE);
        for file in [&chain_path, &key_path] {
            if !file.is_file() {
                bail!(
                    "HTTPS is on but {} does not exist: put {CHAIN_FILE} and {KEY_FILE} in `[http] cert_path` ({dir}), \
                     or set `[http] https = false`",
                    file.display()
                );
            }
        }
        crate::support::secrets::check_private_key_mode(&key_path)?;
        let chain = std::fs::read(&chain_path).with_context(|| format!("reading {}", chain_path.display()))?;
        let key = std::fs::read(&key_path).with_context(|| format!("reading {}", key_path.display()))?;
        let summary = check(
            &chain_path.display().to_string(),
            &chain,
            &key_path.display().to_string(),
            &key,
            &config.http.server_names,
            now,
        )?;
        Ok(Some(LocalCertificates { chain_path, key_path, chain, key, summary }))
    }

    /// The warning to give when the certificate expires within `warn_days`.
    pub fn expiry_warning(&self, now: i64, warn_days: u32) -> Option<String> {
        let days = self.summary.days_left(now);
        (days < i64::from(warn_days)).then(|| {
            format!(
                "{}: the certificate expires in {days} days ({}; `[http] cert_warn_days` = {warn_days}): renew it and \
                 run `cargo xtask certs`",
                self.chain_path.display(),
                self.summary.expiry_date()
            )
        })
    }
}

/// Unix time now, by this machine's clock.
pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Checks a chain file and a key file as read from `chain_path` and `key_path` (named in
/// every error) against `server_names` at `now` (Unix seconds).
pub fn check(
    chain_path: &str,
    chain_pem: &[u8],
    key_path: &str,
    key_pem: &[u8],
    server_names: &[String],
    now: i64,
) -> Result<CertificateSummary> {
    let ders = parse_chain(chain_path, chain_pem)?;
    let mut chain = Vec::with_capacity(ders.len());
    for (index, der) in ders.iter().enumerate() {
        match X509Certificate::from_der(der.as_ref()) {
            Ok((_, cert)) => chain.push(cert),
            Err(err) => bail!(
                "{chain_path}: certificate {} of {} is not a valid X.509 certificate ({err}); the file must hold the \
                 PEM certificates your CA issued, the site's own first",
                index + 1,
                ders.len()
            ),
        }
    }
    let leaf = &chain[0];
    let key = parse_key(key_path, key_pem)?;
    check_key_matches(chain_path, key_path, &ders, key)?;

    for (index, cert) in chain.iter().enumerate() {
        let what =
            if index == 0 { "the certificate".to_string() } else { format!("certificate {} (an issuer)", index + 1) };
        let validity = cert.validity();
        if now < validity.not_before.timestamp() {
            bail!(
                "{chain_path}: {what} is not valid yet: valid from {} (subject {}); wait until then, or check this \
                 machine's clock",
                date_time(validity.not_before.timestamp()),
                cert.subject()
            );
        }
        if now > validity.not_after.timestamp() {
            bail!(
                "{chain_path}: {what} expired on {} (subject {}); renew it and run `cargo xtask certs`",
                date_time(validity.not_after.timestamp()),
                cert.subject()
            );
        }
    }
    for (index, pair) in chain.windows(2).enumerate() {
        let (child, issuer) = (&pair[0], &pair[1]);
        let signed = child.issuer() == issuer.subject() && child.verify_signature(Some(issuer.public_key())).is_ok();
        if !signed {
            bail!(
                "{chain_path}: certificate {} (subject {}, issued by {}) is not signed by certificate {} (subject {}): \
                 the chain must run from the site's certificate to the one that issued it, then its issuer, in order \
                 (fullchain.pem as your CA sends it)",
                index + 1,
                child.subject(),
                child.issuer(),
                index + 2,
                issuer.subject()
            );
        }
    }

    let summary = summarize(chain_path, leaf, chain.len())?;
    let names = &summary.names;
    let uncovered: Vec<&str> =
        server_names.iter().map(String::as_str).filter(|wanted| !names.iter().any(|n| covers(n, wanted))).collect();
    if !uncovered.is_empty() {
        bail!(
            "{chain_path}: the certificate is for {} and does not cover {} (`[http] server_names`); use a certificate \
             for those names, or set `server_names` to the names it covers",
            if names.is_empty() { "no name".to_string() } else { names.join(", ") },
            uncovered.join(", ")
        );
    }
    Ok(summary)
}

/// What the leaf of a chain file says about itself, without the key (for `status`,
/// which reads the host's chain).
pub fn describe(chain_path: &str, chain_pem: &[u8]) -> Result<CertificateSummary> {
    let ders = parse_chain(chain_path, chain_pem)?;
    let leaf = match X509Certificate::from_der(ders[0].as_ref()) {
        Ok((_, leaf)) => leaf,
        Err(err) => bail!("{chain_path}: the first certificate is not a valid X.509 certificate ({err})"),
    };
    summarize(chain_path, &leaf, ders.len())
}

fn summarize(chain_path: &str, leaf: &X509Certificate<'_>, chain_len: usize) -> Result<CertificateSummary> {
    Ok(CertificateSummary {
        serial: leaf.raw_serial_as_string(),
        names: leaf_names(chain_path, leaf)?,
        not_after: leaf.validity().not_after.timestamp(),
        issuer: leaf.issuer().to_string(),
        chain_len,
    })
}

fn parse_chain<'a>(path: &str, pem: &'a [u8]) -> Result<Vec<CertificateDer<'a>>> {
    let mut ders = Vec::new();
    for item in CertificateDer::pem_slice_iter(pem) {
        match item {
            Ok(der) => ders.push(der),
            Err(err) => {
                bail!(
                    "{path} is not a readable PEM file ({}); it must hold `-----BEGIN CERTIFICATE-----` blocks",
                    pem_problem(&err)
                )
            }
        }
    }
    if ders.is_empty() {
        bail!("{path} holds no certificate: it must hold the site's certificate and its chain as PEM blocks");
    }
    Ok(ders)
}

fn parse_key(path: &str, pem: &[u8]) -> Result<PrivateKeyDer<'static>> {
    match PrivateKeyDer::from_pem_slice(pem) {
        Ok(key) => Ok(key),
        Err(rustls::pki_types::pem::Error::NoItemsFound) => bail!(
            "{path} holds no private key: it must hold one PEM key block (`BEGIN PRIVATE KEY`, `BEGIN RSA PRIVATE \
             KEY` or `BEGIN EC PRIVATE KEY`)"
        ),
        Err(err) => bail!("{path} is not a readable PEM key ({})", pem_problem(&err)),
    }
}

/// What is wrong with a PEM file, in words (the crate's own message shows the
/// markers as bytes).
fn pem_problem(err: &rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error;
    match err {
        Error::MissingSectionEnd { end_marker } => {
            format!("the `{}` section has no END line", String::from_utf8_lossy(end_marker))
        }
        Error::IllegalSectionStart { line } => {
            format!("a malformed BEGIN line: {:?}", String::from_utf8_lossy(line))
        }
        Error::Base64Decode(why) => format!("a section's base64 is damaged: {why}"),
        other => other.to_string(),
    }
}

/// The key must be the one the leaf certificate was issued for.
fn check_key_matches(
    chain_path: &str,
    key_path: &str,
    chain: &[CertificateDer<'_>],
    key: PrivateKeyDer<'static>,
) -> Result<()> {
    let signing_key = match rustls::crypto::ring::sign::any_supported_type(&key) {
        Ok(key) => key,
        Err(err) => {
            bail!("{key_path}: the private key cannot be used ({err}); nginx needs an RSA, ECDSA or Ed25519 key")
        }
    };
    let certified =
        rustls::sign::CertifiedKey::new(chain.iter().map(|c| c.clone().into_owned()).collect(), signing_key);
    match certified.keys_match() {
        Ok(()) => Ok(()),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => bail!(
            "{key_path} does not match the certificate in {chain_path}: the key is not the one the certificate was \
             issued for; put the key that belongs to this certificate (or the certificate that belongs to this key) \
             next to it"
        ),
        Err(err) => bail!("{key_path} cannot be checked against {chain_path}: {err}"),
    }
}

/// The DNS names and IP addresses the leaf covers: its subject alternative names, or
/// without any, its common name (as old certificates carry it).
fn leaf_names(path: &str, leaf: &X509Certificate<'_>) -> Result<Vec<String>> {
    let san = match leaf.subject_alternative_name() {
        Ok(san) => san,
        Err(err) => bail!("{path}: the certificate's subject alternative names cannot be read ({err})"),
    };
    let mut names = Vec::new();
    if let Some(san) = san {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(dns) => names.push(dns.to_ascii_lowercase()),
                GeneralName::IPAddress(bytes) => {
                    let ip = match bytes.len() {
                        4 => <[u8; 4]>::try_from(*bytes).ok().map(IpAddr::from),
                        16 => <[u8; 16]>::try_from(*bytes).ok().map(IpAddr::from),
                        _ => None,
                    };
                    names.extend(ip.map(|ip| ip.to_string()));
                }
                _ => {}
            }
        }
    } else {
        names.extend(leaf.subject().iter_common_name().filter_map(|cn| cn.as_str().ok()).map(str::to_ascii_lowercase));
    }
    Ok(names)
}

/// Whether a certificate name covers `wanted`: the same name, or a wildcard
/// `*.example.com` for exactly one more label (`www.example.com`, not `example.com`).
pub fn covers(name: &str, wanted: &str) -> bool {
    let wanted = wanted.to_ascii_lowercase();
    if name == wanted {
        return true;
    }
    match (name.strip_prefix("*."), wanted.split_once('.')) {
        (Some(parent), Some((label, rest))) => !label.is_empty() && rest == parent && wanted.parse::<IpAddr>().is_err(),
        _ => false,
    }
}

fn date(unix: i64) -> String {
    date_time(unix).chars().take(10).collect()
}

fn date_time(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| unix.to_string())
}

#[cfg(test)]
mod tests;
