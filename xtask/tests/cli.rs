//! The command line on bad input: a clear error naming the input and the fix, exit
//! code ≠ 0, and nothing rendered on stdout.

use std::path::PathBuf;
use std::process::{Command, Output};

struct TempConfig(PathBuf);

impl TempConfig {
    fn new(name: &str, text: &str) -> TempConfig {
        let path = std::env::temp_dir().join(format!("cultivate-cli-{}-{name}.toml", std::process::id()));
        std::fs::write(&path, text).unwrap();
        TempConfig(path)
    }
}

impl Drop for TempConfig {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn render(config: &str, name: &str, extra: &[&str]) -> Output {
    let file = TempConfig::new(name, config);
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["render", "--version", "abc1234", "--config"])
        .arg(&file.0)
        .args(extra)
        .env_remove("HTTP_PORT")
        .env_remove("DEPLOYMENT_PATH")
        .output()
        .unwrap()
}

fn assert_refused(output: &Output, expected: &[&str]) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "exit 0 for bad input: {stderr}");
    assert!(output.stdout.is_empty(), "something was rendered: {}", String::from_utf8_lossy(&output.stdout));
    for needle in expected {
        assert!(stderr.contains(needle), "stderr lacks {needle:?}:\n{stderr}");
    }
}

const APP: &str = "[app]\nname = \"cultivate\"\n";

#[test]
fn malformed_toml() {
    let output = render(&format!("{APP}[http\nport = 80\n"), "malformed", &["--os", "linux"]);
    assert_refused(&output, &["line 3", "column"]);
}

#[test]
fn unknown_key() {
    let output = render(&format!("{APP}[http]\nprot = 80\n"), "unknown", &["--os", "linux"]);
    assert_refused(&output, &["unknown key `http.prot` (did you mean `http.port`?)", "deploy/deploy.toml"]);
}

#[test]
fn out_of_range_and_duplicate_ports() {
    let output = render(&format!("{APP}[http]\nport = 99999\n"), "range", &["--os", "linux"]);
    assert_refused(&output, &["`http.port` = 99999: a port number 1–65535"]);
    let output = render(
        &format!("{APP}[http]\nport = 8443\nhttps_port = 8443\nhttps = true\ncert_path = \"/c\"\n"),
        "duplicate",
        &["--os", "linux"],
    );
    assert_refused(&output, &["both 8443"]);
}

#[test]
fn negative_limits() {
    let output = render(&format!("{APP}[resources.database]\ncpus = -2.0\n"), "negative", &["--os", "linux"]);
    assert_refused(&output, &["`resources.database.cpus` = -2: a number of CPUs from 0.01 to 1024"]);
}

#[test]
fn missing_required_values_are_all_named() {
    let output = render("[hosts.web]\nport = 22\n", "missing", &["--os", "linux"]);
    assert_refused(
        &output,
        &["missing `app.name`", "missing `hosts.web.address`", "missing `hosts.web.user`", "3 problems"],
    );
}

#[test]
fn a_macos_path_outside_finchs_vm() {
    let output = render(
        &format!("{APP}[paths]\ndeployment = \"/opt/cultivate\"\n"),
        "macos",
        &["--os", "macos", "--user", "ada"],
    );
    assert_refused(
        &output,
        &["Cannot access path '/opt/cultivate' on macOS target", "DEPLOYMENT_PATH=/Users/ada/cultivate"],
    );
}

#[test]
fn an_unknown_host() {
    let output = render(APP, "nohost", &["--host", "prod"]);
    assert_refused(&output, &["no host `prod`"]);
}

#[test]
fn paths_with_spaces_and_quotes_render_quoted() {
    let output = render(
        &format!("{APP}[paths]\ndeployment = \"/srv/my app/it's \\\"x\\\"\"\n"),
        "quotes",
        &["--os", "linux", "--env"],
    );
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("DEPLOYMENT_PATH=\"/srv/my app/it's \\\"x\\\"\"\n"), "{stdout}");
}

/// `xtask --config FILE deploy --host target ARGS`, with the host on a closed loopback
/// port: a run that got as far as connecting would fail with "refused" instead.
fn deploy(config: &str, name: &str, extra: &[&str]) -> Output {
    let file = TempConfig::new(name, config);
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("--config")
        .arg(&file.0)
        .args(["deploy", "--host", "target", "--yes"])
        .args(extra)
        .env_remove("CERT_PATH")
        .env_remove("ENABLE_HTTPS")
        .output()
        .unwrap()
}

const HOST: &str = "[hosts.target]\naddress = \"127.0.0.1\"\nport = 1\nuser = \"deploy\"\n";

fn manifest_with_version(name: &str, version: &str) -> TempConfig {
    let json = serde_json::json!({
        "version": version, "revision": "abc1234", "runtime": "docker", "build_host": "here",
        "built_at": "2026-12-03T00:00:00Z",
        "base": {"requested": "debian:bookworm-slim", "reference": "debian:bookworm-slim", "origin": "present"},
        "images": [],
    });
    TempConfig::new(name, &json.to_string())
}

// Issue 9, item 7: the version in a manifest becomes a directory under releases/ and
// a log line: checked like --version, before anything else happens.
#[test]
fn a_manifest_whose_version_is_a_path_or_forges_log_lines_is_refused() {
    for (name, version) in [("dotdot", "../../x"), ("newline", "v1\n2026-12-03T00:00:00Z INFO forged")] {
        let manifest = manifest_with_version(&format!("manifest-{name}"), version);
        let output = deploy(&format!("{APP}{HOST}"), name, &["--manifest", &manifest.0.to_string_lossy()]);
        assert_refused(&output, &["image manifest", "its `version`", "not a valid image tag"]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("refused") && !stderr.contains("ssh"), "it went on to connect: {stderr}");
    }
}

// Issue 9, item 10: a TLS key others can read is refused like a readable secret file.
#[test]
fn a_readable_tls_private_key_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("cultivate-cli-{}-certs", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for file in ["fullchain.pem", "privkey.pem"] {
        std::fs::write(dir.join(file), "-----BEGIN X-----\n").unwrap();
    }
    let config = format!("{APP}[http]\nhttps = true\ncert_path = {:?}\n{HOST}", dir.to_string_lossy());
    for mode in [0o644, 0o640, 0o604] {
        std::fs::set_permissions(dir.join("privkey.pem"), std::fs::Permissions::from_mode(mode)).unwrap();
        let output = deploy(&config, "readable-key", &[]);
        assert_refused(&output, &["privkey.pem has mode", "readable by others", "chmod 600"]);
    }
    // 0600 passes this check: the next one, the pair itself, refuses these files.
    std::fs::set_permissions(dir.join("privkey.pem"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let output = deploy(&config, "private-key", &["--manifest", "/nonexistent/manifest.json"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("readable by others")
            && stderr.contains("fullchain.pem is not a readable PEM file (the `X` section has no END line)"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A certificate directory with a CA-signed pair for `names`, valid from `from` to
/// `until` days from now; `other_key` puts a key of another certificate beside it.
fn certificate_dir(name: &str, names: &[&str], from: i64, until: i64, other_key: bool) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("cultivate-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().unwrap()).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now + time::Duration::days(from);
    params.not_after = now + time::Duration::days(until);
    let leaf = params.signed_by(&key, &ca).unwrap();
    let key_pem = if other_key { rcgen::KeyPair::generate().unwrap().serialize_pem() } else { key.serialize_pem() };
    std::fs::write(dir.join("fullchain.pem"), format!("{}{}", leaf.pem(), ca.pem())).unwrap();
    std::fs::write(dir.join("privkey.pem"), key_pem).unwrap();
    std::fs::set_permissions(dir.join("privkey.pem"), std::fs::Permissions::from_mode(0o600)).unwrap();
    dir
}

// Issue 13 (design Property 14): an expired, not yet valid, mismatched or malformed
// pair, or one for other names, is refused by `deploy` and `certs` before any host is
// reached, naming the file and the problem.
#[test]
fn a_bad_certificate_pair_is_refused_before_any_host_is_reached() {
    // (case, the certificate's name, valid from and until in days from now, another
    // certificate's key, what the error says)
    let cases = [
        ("expired", "example.com", (-90, -1), false, "fullchain.pem: the certificate expired on"),
        ("future", "example.com", (3, 90), false, "fullchain.pem: the certificate is not valid yet"),
        ("mismatched", "example.com", (-1, 90), true, "privkey.pem does not match the certificate in"),
        ("other-names", "other.example", (-1, 90), false, "does not cover example.com (`[http] server_names`)"),
        ("malformed", "example.com", (-1, 90), false, "fullchain.pem holds no certificate"),
    ];
    for (name, names, (from, until), other_key, expected) in cases {
        let dir = certificate_dir(name, &[names], from, until, other_key);
        if name == "malformed" {
            std::fs::write(dir.join("fullchain.pem"), "not a certificate\n").unwrap();
        }
        let config = format!(
            "{APP}[http]\nhttps = true\ncert_path = {:?}\nserver_names = [\"example.com\"]\n{HOST}",
            dir.to_string_lossy()
        );
        for task in ["deploy", "certs"] {
            let file = TempConfig::new(&format!("cert-{name}-{task}"), &config);
            let mut command = Command::new(env!("CARGO_BIN_EXE_xtask"));
            command.arg("--config").arg(&file.0).args([task, "--host", "target"]);
            let output = command.env_remove("CERT_PATH").env_remove("ENABLE_HTTPS").output().unwrap();
            assert_refused(&output, &[expected]);
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(!stderr.contains("refused") && !stderr.contains("ssh"), "{task} went on to connect: {stderr}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

/// Issue 14: selectors naming what the configuration lacks are refused before any host
/// is reached, naming what is configured.
#[test]
fn an_unknown_group_or_cluster() {
    let file = TempConfig::new(
        "selectors",
        &format!(
            "{APP}[hosts.a]\naddress = \"127.0.0.1\"\nuser = \"u\"\n[hosts.b]\naddress = \"127.0.0.1\"\nuser = \"u\"\n[groups]\nprod = [\"a\"]\n"
        ),
    );
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_xtask")).arg("--config").arg(&file.0).args(args).output().unwrap()
    };
    for task in ["deploy", "rollback", "status", "backup", "audit", "lock", "logs", "doctor"] {
        let output = run(&[task, "--group", "staging"]);
        assert_refused(&output, &["no group `staging` in deploy/deploy.toml; configured: prod"]);
    }
    assert_refused(
        &run(&["doctor", "--cluster", "web"]),
        &["no cluster `web` in deploy/deploy.toml; configured: none"],
    );
    assert_refused(
        &run(&["restore", "--host", "a", "--host", "b", "--yes"]),
        &["`restore` works on one host at a time"],
    );
    assert_refused(
        &run(&["render", "--os", "macos", "--user", "ada", "--stack", "--version", "v1"]),
        &["--stack renders for Docker Swarm"],
    );
}
