//! The frontend image: static assets, ports from the environment, HTTPS only with
//! certificates, security headers, an unprivileged nginx.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use cultivate_tests::{
    Resource, Stack, exec, get, get_when_up, http, image, listening_tcp_ports, project, published_port, require_engine,
    strings, wait_healthy,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use xtask::images::Service;

use crate::tls::{TestCertificates, https_get};

/// The content type nginx must send for each kind of file the site ships.
fn expected_content_type(path: &Path) -> &'static [&'static str] {
    match path.extension().and_then(|e| e.to_str()) {
        Some("html") => &["text/html"],
        Some("css") => &["text/css"],
        Some("js") => &["application/javascript", "text/javascript"],
        Some("svg") => &["image/svg+xml"],
        Some("png") => &["image/png"],
        Some("ico") => &["image/x-icon", "image/vnd.microsoft.icon"],
        Some("json") => &["application/json"],
        Some("txt") => &["text/plain"],
        Some("woff2") => &["font/woff2"],
        other => panic!("{}: no expected content type for extension {other:?}; add it here", path.display()),
    }
}

fn site_files() -> Vec<std::path::PathBuf> {
    fn walk(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() { walk(&path, files) } else { files.push(path) }
        }
    }
    let mut files = Vec::new();
    walk(&project().path("web-frontend/site"), &mut files);
    files.sort();
    files
}

// Property 1: static asset accessibility — every file of the site is served over HTTP,
// byte for byte, with the right content type.
#[test]
fn property_1_every_static_asset_is_served_with_its_content_type() {
    require_engine();
    let stack = Stack::shared();
    let root = project().path("web-frontend/site");
    let files = site_files();
    assert!(files.len() >= 3, "the site has only {files:?}");
    for file in files {
        let url_path = format!("/{}", file.strip_prefix(&root).unwrap().display());
        let response = get(&stack.url(&url_path)).unwrap();
        assert_eq!(response.status, 200, "{url_path}");
        let content_type = response.header("content-type").unwrap_or_default().to_string();
        let expected = expected_content_type(&file);
        assert!(
            expected.iter().any(|e| content_type.starts_with(e)),
            "{url_path}: {content_type}, expected {expected:?}"
        );
        assert_eq!(response.body, std::fs::read(&file).unwrap(), "{url_path}: body differs from the file");
    }
    let index = get(&stack.url("/")).unwrap();
    assert_eq!(index.body, std::fs::read(root.join("index.html")).unwrap(), "/ does not serve index.html");
}

#[test]
fn security_headers_and_gzip_on_every_page() {
    require_engine();
    let stack = Stack::shared();
    for path in ["/", "/app.js", "/api/v1/activities", "/does-not-exist"] {
        let response = get(&stack.url(path)).unwrap();
        assert_eq!(response.header("x-content-type-options"), Some("nosniff"), "{path}");
        assert_eq!(response.header("x-frame-options"), Some("DENY"), "{path}");
        assert!(response.header("referrer-policy").is_some(), "{path}");
        let csp = response.header("content-security-policy").unwrap_or_default();
        assert!(csp.contains("default-src 'self'") && csp.contains("script-src 'self'"), "{path}: CSP {csp:?}");
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{path}: CSP {csp:?}");
        assert!(
            response.header("server").is_none_or(|s| !s.chars().any(|c| c.is_ascii_digit())),
            "{path}: version leaked"
        );
    }
    let compressed = http("GET", &stack.url("/app.js"), &[("accept-encoding", "gzip")], None).unwrap();
    assert_eq!(compressed.header("content-encoding"), Some("gzip"));
    // The page satisfies its own CSP: no inline script or style, no inline handlers.
    let html = std::fs::read_to_string(project().path("web-frontend/site/index.html")).unwrap();
    for (needle, what) in [
        ("<script>", "inline script"),
        ("<style", "inline style"),
        (" style=", "style attribute"),
        (" onclick=", "inline handler"),
    ] {
        assert!(!html.contains(needle), "index.html has an {what}, which the CSP forbids");
    }
}

#[test]
fn nginx_master_and_workers_are_not_root() {
    require_engine();
    let stack = Stack::shared();
    let output = exec(&stack.frontend, None, &["sh", "-c", "grep -h '^Uid:' /proc/[0-9]*/status"]).unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.lines().count() >= 2, "expected nginx master and workers: {text}");
    for line in text.lines() {
        assert!(line.split_whitespace().skip(1).all(|uid| uid == "101"), "a frontend process runs as {line}");
    }
}

fn port_is_free(port: u16) -> bool {
    TcpListener::bind(("0.0.0.0", port)).is_ok() && TcpListener::bind(("::", port)).is_ok()
}

// Property 2: port configuration flexibility — the frontend answers on any valid port
// it is configured with. One real container start per port would make 100 cases take
// minutes, so: a bounded number of real starts with published ports, and 100 cases
// against one container on the host's loopback in which the image's own entrypoint
// re-renders the configuration for the new port and nginx reloads it.
#[test]
fn property_2_frontend_answers_on_any_configured_port() {
    require_engine();
    // Ports outside the kernel's ephemeral range, where the engine publishes ports of
    // the other tests' containers.
    let ports = prop_oneof![1u16..=32767, 61000u16..=65535];

    let mut starts = TestRunner::new(Config { cases: 3, failure_persistence: None, ..Config::default() });
    starts
        .run(&ports, |port| {
            let container = Resource::container(
                "p2-start",
                &strings(&[
                    "-e",
                    &format!("HTTP_PORT={port}"),
                    "-p",
                    &format!("127.0.0.1::{port}"),
                    &image(Service::WebFrontend),
                ]),
            )
            .unwrap();
            wait_healthy(&container.name, Duration::from_secs(60)).unwrap();
            let host_port = published_port(&container.name, port).unwrap();
            let response = get_when_up(&format!("http://127.0.0.1:{host_port}/"), Duration::from_secs(10)).unwrap();
            prop_assert_eq!(response.status, 200);
            Ok(())
        })
        .unwrap();

    let host_net = Resource::container(
        "p2-hostnet",
        &strings(&[
            "--network",
            "host",
            "-e",
            "HTTP_PORT=64999",
            "-e",
            "BACKEND_HOST=127.0.0.1",
            &image(Service::WebFrontend),
        ]),
    )
    .unwrap();
    get_when_up("http://127.0.0.1:64999/nginx-health", Duration::from_secs(30)).unwrap();
    let mut runner = TestRunner::new(Config { cases: 100, failure_persistence: None, ..Config::default() });
    runner
        .run(&ports, |port| {
            prop_assume!(port != 64999 && port_is_free(port));
            let reload = exec(
                &host_net.name,
                None,
                &[
                    "env",
                    &format!("HTTP_PORT={port}"),
                    "cultivate-frontend-entrypoint",
                    "nginx",
                    "-s",
                    "reload",
                    "-c",
                    "/tmp/nginx/conf/nginx.conf",
                ],
            )
            .unwrap();
            prop_assert!(
                reload.status.success(),
                "reload for port {port}: {}",
                String::from_utf8_lossy(&reload.stderr)
            );
            let response = get_when_up(&format!("http://127.0.0.1:{port}/"), Duration::from_secs(10)).unwrap();
            prop_assert_eq!(response.status, 200, "port {}", port);
            prop_assert!(response.text().contains("<title>Cultivate</title>"));
            Ok(())
        })
        .unwrap();
}

fn free_loopback_port() -> u16 {
    TcpListener::bind(("127.0.0.1", 0)).unwrap().local_addr().unwrap().port()
}

// Property 3: conditional HTTPS enablement — with a certificate and key mounted, HTTPS
// answers with TLS 1.2 and 1.3, sends HSTS, and HTTP redirects to HTTPS.
#[test]
fn property_3_https_with_a_generated_certificate() {
    require_engine();
    let certificates = TestCertificates::generate();
    let https_port = free_loopback_port();
    let container = Resource::container(
        "https",
        &strings(&[
            "-v",
            &format!("{}:/etc/nginx/certs:ro", certificates.dir.display()),
            "-e",
            &format!("HTTPS_PUBLIC_PORT={https_port}"),
            "-p",
            "127.0.0.1::80",
            "-p",
            &format!("127.0.0.1:{https_port}:443"),
            &image(Service::WebFrontend),
        ]),
    )
    .unwrap();
    wait_healthy(&container.name, Duration::from_secs(60)).unwrap();

    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let (negotiated, head) = https_get(https_port, &certificates.ca_der, version).unwrap();
        assert_eq!(negotiated, version.version);
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(head.to_ascii_lowercase().contains("strict-transport-security: max-age="), "no HSTS: {head}");
    }
    let http_port = published_port(&container.name, 80).unwrap();
    let redirect = get(&format!("http://127.0.0.1:{http_port}/some/page?x=1")).unwrap();
    assert_eq!(redirect.status, 301);
    // Host 127.0.0.1 is not among the server names (SERVER_NAMES unset: localhost).
    assert_eq!(redirect.header("location"), Some(format!("https://localhost:{https_port}/some/page?x=1").as_str()));
    let mut listening = listening_tcp_ports(&container.name).unwrap();
    listening.sort();
    // 8080 and 8443: the same servers for the edge, with a PROXY protocol header.
    assert_eq!(listening, vec![80, 443, 8080, 8443]);
}

// Property 4: HTTP-only fallback — without certificates, HTTP works and nothing answers
// TLS: no listener on 443 (nor on the edge's 8443) at all.
#[test]
fn property_4_without_certificates_only_http_answers() {
    require_engine();
    let certificates = TestCertificates::generate(); // only for a CA to try against
    let https_port = free_loopback_port();
    let container = Resource::container(
        "http-only",
        &strings(&["-p", "127.0.0.1::80", "-p", &format!("127.0.0.1:{https_port}:443"), &image(Service::WebFrontend)]),
    )
    .unwrap();
    wait_healthy(&container.name, Duration::from_secs(60)).unwrap();
    let http_port = published_port(&container.name, 80).unwrap();
    assert_eq!(get(&format!("http://127.0.0.1:{http_port}/")).unwrap().status, 200);
    assert_eq!(listening_tcp_ports(&container.name).unwrap(), vec![80, 8080]);
    assert!(
        https_get(https_port, &certificates.ca_der, &rustls::version::TLS13).is_err(),
        "TLS answered without certificates"
    );
}

#[test]
fn a_lone_certificate_without_its_key_is_refused_at_start() {
    require_engine();
    let certificates = TestCertificates::generate();
    std::fs::remove_file(certificates.dir.join("privkey.pem")).unwrap();
    let output = cultivate_tests::docker_capture([
        "run".to_string(),
        "--rm".to_string(),
        "-v".to_string(),
        format!("{}:/etc/nginx/certs:ro", certificates.dir.display()),
        image(Service::WebFrontend),
    ])
    .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("privkey.pem is missing"), "{stderr}");
}

/// `GET path` on 127.0.0.1:`port` with the given `Host` header (a raw request, so the
/// header is exactly what a forging client sends). Returns the status and Location.
fn get_with_host(port: u16, path: &str, host: &str) -> (u16, Option<String>) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let text = String::from_utf8_lossy(&response);
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    let status = head.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap_or_else(|| panic!("{text}"));
    let location = head
        .lines()
        .find_map(|line| line.split_once(':').filter(|(name, _)| name.eq_ignore_ascii_case("location")))
        .map(|(_, value)| value.trim().to_string());
    (status, location)
}

/// A frontend with the test certificates (HTTPS on) and `env`, its HTTP port published.
fn https_frontend(certificates: &TestCertificates, purpose: &str, env: &[&str]) -> (Resource, u16) {
    let mut args = vec!["-v".to_string(), format!("{}:/etc/nginx/certs:ro", certificates.dir.display())];
    for variable in env {
        args.extend(["-e".to_string(), variable.to_string()]);
    }
    args.extend(strings(&["-p", "127.0.0.1::80", &image(Service::WebFrontend)]));
    let container = Resource::container(purpose, &args).unwrap();
    wait_healthy(&container.name, Duration::from_secs(60)).unwrap();
    let port = published_port(&container.name, 80).unwrap();
    (container, port)
}

// Issue 9 item 12: the HTTP→HTTPS redirect goes to a configured server name only; a
// forged Host header is not echoed into the Location.
#[test]
fn http_redirect_goes_only_to_configured_server_names() {
    require_engine();
    let certificates = TestCertificates::generate();

    let (configured, port) = https_frontend(
        &certificates,
        "redirect-names",
        &["SERVER_NAMES=app.example.org 127.0.0.1 www.example.org", "HTTPS_PUBLIC_PORT=8443"],
    );
    let cases = [
        ("evil.example", "https://app.example.org:8443/p?q=1"),
        ("evil.example:8443", "https://app.example.org:8443/p?q=1"),
        ("app.example.org.evil.example", "https://app.example.org:8443/p?q=1"),
        ("www.example.org", "https://www.example.org:8443/p?q=1"),
        ("WWW.Example.ORG:80", "https://www.example.org:8443/p?q=1"),
        (&format!("127.0.0.1:{port}"), "https://127.0.0.1:8443/p?q=1"),
        ("app.example.org", "https://app.example.org:8443/p?q=1"),
    ];
    for (host, expected) in cases {
        let (status, location) = get_with_host(port, "/p?q=1", host);
        assert_eq!(status, 301, "Host {host}");
        assert_eq!(location.as_deref(), Some(expected), "Host {host}");
    }
    drop(configured);

    // Unset: localhost, and the default port 443 is left out.
    let (_default, port) = https_frontend(&certificates, "redirect-default", &[]);
    for host in ["evil.example", "localhost", "127.0.0.1"] {
        let (status, location) = get_with_host(port, "/x", host);
        assert_eq!(status, 301, "Host {host}");
        assert_eq!(location.as_deref(), Some("https://localhost/x"), "Host {host}");
    }
}

#[test]
fn a_bad_server_name_is_refused_at_start() {
    require_engine();
    let certificates = TestCertificates::generate();
    for (names, named) in [
        ("app.example.org evil.example/x", "'evil.example/x'"),
        ("a..b", "'a..b'"),
        ("10.0.0.256", "'10.0.0.256'"),
        ("*", "'*'"),
        ("-bad.example", "'-bad.example'"),
    ] {
        // With and without HTTPS: the value is checked either way. The command `true`
        // replaces nginx once the configuration is rendered, so nothing keeps running.
        for with_certificates in [true, false] {
            let mut args = strings(&["run", "--rm", "-e", &format!("SERVER_NAMES={names}")]);
            if with_certificates {
                args.extend(["-v".to_string(), format!("{}:/etc/nginx/certs:ro", certificates.dir.display())]);
            }
            args.extend([image(Service::WebFrontend), "true".to_string()]);
            let output = cultivate_tests::docker_capture(args).unwrap();
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(!output.status.success(), "SERVER_NAMES={names:?} accepted: {stderr}");
            assert!(
                stderr.contains("SERVER_NAMES must be a space-separated list of DNS names or IPv4 addresses")
                    && stderr.contains(named),
                "SERVER_NAMES={names:?}: unclear message {stderr}"
            );
        }
    }
}

// Issue 9 item 11: the public health paths are rate-limited per client; a monitor
// polling every 100 ms is never refused, a flood gets JSON 429s.
#[test]
fn health_bursts_beyond_the_limit_get_a_json_429() {
    require_engine();
    let stack = Stack::shared();
    // A frontend of its own (the limit is per nginx and client address), in front of the
    // shared backend.
    let frontend = Resource::container(
        "health-limit",
        &strings(&["--network", &stack.network, "-p", "127.0.0.1::80", &image(Service::WebFrontend)]),
    )
    .unwrap();
    wait_healthy(&frontend.name, Duration::from_secs(60)).unwrap();
    let port = published_port(&frontend.name, 80).unwrap();
    let url = format!("http://127.0.0.1:{port}/health");

    // Polling every 100 ms for 3 s, with a short burst of 5 in the middle.
    for round in 0..30 {
        let burst = if round == 15 { 5 } else { 1 };
        for _ in 0..burst {
            let response = get(&url).unwrap();
            assert_eq!(response.status, 200, "poll {round}: {}", response.text());
        }
        std::thread::sleep(Duration::from_millis(100));
    }

    // A flood: 8 clients, 40 requests each at most, stopping at the first 429.
    let started = Instant::now();
    let refused = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..8)
            .map(|_| {
                scope.spawn(|| {
                    for _ in 0..40 {
                        if started.elapsed() > Duration::from_secs(60) {
                            break;
                        }
                        let response = get(&url).unwrap();
                        if response.status == 429 {
                            return Some(response);
                        }
                        assert_eq!(response.status, 200, "{}", response.text());
                    }
                    None
                })
            })
            .collect();
        clients.into_iter().filter_map(|client| client.join().unwrap()).next()
    });
    let refused = refused.expect("320 requests to /health as fast as possible were never refused with 429");
    assert!(refused.header("content-type").unwrap_or_default().starts_with("application/json"));
    assert_eq!(refused.json(), serde_json::json!({"error": "too many requests"}));
    assert_eq!(refused.header("x-frame-options"), Some("DENY"));
}

/// `text` as an HTML serializer writes it inside an element.
fn html_text(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('\u{a0}', "&nbsp;")
}

// A real browser runs app.js against the stack: an activity created through nginx is
// listed on the page, and markup in its title is shown as text, not made an element.
#[test]
fn the_page_lists_a_new_activity_in_a_real_browser_with_markup_as_text() {
    require_engine();
    let stack = Stack::shared();
    let title = format!("Browser <b>bold</b> & {}", cultivate_tests::unique("browser"));
    let body = serde_json::json!({"title": title, "notes": "seen by Chromium"}).to_string();
    let created =
        http("POST", &stack.url("/api/v1/activities"), &[("content-type", "application/json")], Some(body.as_bytes()))
            .unwrap();
    assert_eq!(created.status, 201, "{}", created.text());
    let id = created.json()["id"].as_i64().expect("created activity has an id");

    let rendered_title = format!("<h3 class=\"activity-title\">{}</h3>", html_text(&title));
    let dom = cultivate_tests::browser::rendered_dom_containing(&stack.url("/"), &rendered_title).unwrap();
    assert!(dom.contains(&format!("data-id=\"{id}\"")), "activity {id} has no list item:\n{dom}");
    assert!(!dom.contains("<b>bold</b>"), "the title's markup became an element:\n{dom}");
    assert!(
        dom.contains("aria-busy=\"false\"") && !dom.contains("id=\"status\" class=\"status status-error\""),
        "the list did not load:\n{dom}"
    );

    let deleted = http("DELETE", &stack.url(&format!("/api/v1/activities/{id}")), &[], None).unwrap();
    assert_eq!(deleted.status, 204);
}
