use proptest::prelude::*;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

use super::*;

const DAY: i64 = 86_400;

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

/// A leaf for `names` valid from `from` to `until` (days from now) signed by `issuer`:
/// (fullchain.pem with the issuer after the leaf, privkey.pem).
fn leaf(names: &[&str], from: i64, until: i64, issuer: &CertifiedIssuer<'static, KeyPair>) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    params.not_before = time::OffsetDateTime::from_unix_timestamp(now() + from * DAY).unwrap();
    params.not_after = time::OffsetDateTime::from_unix_timestamp(now() + until * DAY).unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    (format!("{}{}", cert.pem(), issuer.pem()), key.serialize_pem())
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|n| n.to_string()).collect()
}

fn run(chain: &str, key: &str, wanted: &[&str]) -> Result<CertificateSummary> {
    check("/certs/fullchain.pem", chain.as_bytes(), "/certs/privkey.pem", key.as_bytes(), &names(wanted), now())
}

fn refusal(chain: &str, key: &str, wanted: &[&str]) -> String {
    format!("{:#}", run(chain, key, wanted).expect_err("the pair should be refused"))
}

#[test]
fn a_valid_pair_for_the_server_names_is_accepted_with_its_serial_names_and_expiry() {
    let issuer = ca("Test CA");
    let (chain, key) = leaf(&["example.com", "www.example.com"], -1, 90, &issuer);
    let summary = run(&chain, &key, &["example.com", "www.example.com"]).unwrap();
    assert_eq!(summary.names, ["example.com", "www.example.com"]);
    assert_eq!(summary.chain_len, 2);
    assert!(summary.issuer.contains("Test CA"), "{}", summary.issuer);
    assert!((88..=90).contains(&summary.days_left(now())), "{}", summary.days_left(now()));
    assert!(!summary.serial.is_empty() && summary.serial.contains(':'), "{}", summary.serial);
}

#[test]
fn a_key_of_another_certificate_is_refused_naming_both_files() {
    let issuer = ca("Test CA");
    let (chain, _) = leaf(&["example.com"], -1, 90, &issuer);
    let (_, other_key) = leaf(&["example.com"], -1, 90, &issuer);
    let message = refusal(&chain, &other_key, &["example.com"]);
    assert!(message.contains("/certs/privkey.pem does not match the certificate in /certs/fullchain.pem"), "{message}");
}

#[test]
fn an_expired_or_not_yet_valid_leaf_is_refused_with_its_dates() {
    let issuer = ca("Test CA");
    let (chain, key) = leaf(&["example.com"], -90, -1, &issuer);
    let message = refusal(&chain, &key, &["example.com"]);
    assert!(message.contains("/certs/fullchain.pem: the certificate expired on"), "{message}");
    let (chain, key) = leaf(&["example.com"], 2, 90, &issuer);
    let message = refusal(&chain, &key, &["example.com"]);
    assert!(message.contains("the certificate is not valid yet: valid from"), "{message}");
}

#[test]
fn a_chain_out_of_order_or_from_another_issuer_is_refused() {
    let issuer = ca("Test CA");
    let stranger = ca("Another CA");
    let (chain, key) = leaf(&["example.com"], -1, 90, &issuer);
    let leaf_only = chain.strip_suffix(issuer.pem().as_str()).unwrap();
    // The leaf followed by a CA that did not sign it.
    let message = refusal(&format!("{leaf_only}{}", stranger.pem()), &key, &["example.com"]);
    assert!(
        message.contains("certificate 1 (subject") && message.contains("is not signed by certificate 2"),
        "{message}"
    );
    // The issuer first: the key then matches no leaf.
    let message = refusal(&format!("{}{leaf_only}", issuer.pem()), &key, &["example.com"]);
    assert!(message.contains("does not match"), "{message}");
    // A leaf alone is a complete chain for a CA the clients already trust.
    run(leaf_only, &key, &["example.com"]).unwrap();
}

#[test]
fn names_not_covered_are_refused_and_wildcards_cover_one_label() {
    let issuer = ca("Test CA");
    let (chain, key) = leaf(&["*.example.com", "127.0.0.1"], -1, 90, &issuer);
    run(&chain, &key, &["www.example.com", "API.example.com", "127.0.0.1"]).unwrap();
    let message = refusal(&chain, &key, &["example.com", "a.b.example.com", "www.example.com"]);
    assert!(
        message.contains(
            "the certificate is for *.example.com, 127.0.0.1 and does not cover example.com, a.b.example.com"
        ),
        "{message}"
    );
    assert!(covers("*.example.com", "www.example.com"));
    assert!(!covers("*.example.com", ".example.com"));
    assert!(!covers("*.0.0.1", "127.0.0.1"));
}

#[test]
fn unreadable_files_are_refused_with_the_file_and_what_it_must_hold() {
    let issuer = ca("Test CA");
    let (chain, key) = leaf(&["example.com"], -1, 90, &issuer);
    assert!(refusal("", &key, &[]).contains("/certs/fullchain.pem holds no certificate"));
    assert!(refusal(&chain, "", &[]).contains("/certs/privkey.pem holds no private key"));
    assert!(refusal(&chain, &chain, &[]).contains("/certs/privkey.pem holds no private key"));
    let broken = "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n";
    assert!(refusal(broken, &key, &[]).contains("/certs/fullchain.pem is not a readable PEM file"));
    let truncated = chain.lines().take(4).collect::<Vec<_>>().join("\n");
    let message = refusal(&truncated, &key, &[]);
    assert!(message.starts_with("/certs/fullchain.pem"), "{message}");
    let not_x509 = "-----BEGIN CERTIFICATE-----\nAAECAwQF\n-----END CERTIFICATE-----\n";
    let message = refusal(not_x509, &key, &[]);
    assert!(message.contains("certificate 1 of 1 is not a valid X.509 certificate"), "{message}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    // Property 14: certificate validation before mounting. Any single byte of the
    // site's certificate changed (a corrupted file that still reads as PEM) is refused:
    // it no longer parses, or its issuer's signature or the key no longer matches it.
    #[test]
    fn property_14_a_corrupted_certificate_is_refused(position in any::<prop::sample::Index>(), flip in 1u8..=255) {
        let (issuer, der, key) = &*FIXTURE;
        let mut corrupted = der.clone();
        let at = position.index(corrupted.len());
        corrupted[at] ^= flip;
        let chain = format!("{}{}", pem::encode(&pem::Pem::new("CERTIFICATE", corrupted)), issuer);
        let result = check("fullchain.pem", chain.as_bytes(), "privkey.pem", key.as_bytes(), &names(&["example.com"]), now());
        prop_assert!(result.is_err(), "byte {} changed and the certificate was accepted", at);
    }
}

/// One issuer, one leaf's DER and its key, generated once for all the cases.
static FIXTURE: std::sync::LazyLock<(String, Vec<u8>, String)> = std::sync::LazyLock::new(|| {
    let issuer = ca("Test CA");
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["example.com".to_string()]).unwrap().signed_by(&key, &issuer).unwrap();
    (issuer.pem(), cert.der().to_vec(), key.serialize_pem())
});
