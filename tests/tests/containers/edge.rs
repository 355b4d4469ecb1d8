//! The edge image (deploy/edge): on Docker targets it holds the published ports and
//! passes each connection, TLS untouched, to a `frontend` container, with the client's
//! address in a PROXY protocol header.

use std::time::Duration;

use cultivate_tests::{
    Resource, docker, exec, get, image, logs, published_port, require_engine, strings, wait_healthy,
};
use xtask::images::Service;

use crate::tls::{TestCertificates, https_get};

/// The container's address on `network`.
fn address_on(container: &str, network: &str) -> String {
    let format = format!("{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}}");
    docker(["inspect", "--format", format.as_str(), container]).unwrap().trim().to_string()
}

#[test]
fn the_edge_passes_http_and_tls_through_with_the_clients_address() {
    require_engine();
    let certificates = TestCertificates::generate();
    let network = Resource::network("edge").unwrap();
    let frontend = Resource::container(
        "edge-frontend",
        &strings(&[
            "--network",
            &network.name,
            "--network-alias",
            "frontend",
            "-v",
            &format!("{}:/etc/nginx/certs:ro", certificates.dir.display()),
            &image(Service::WebFrontend),
        ]),
    )
    .unwrap();
    wait_healthy(&frontend.name, Duration::from_secs(60)).unwrap();
    let edge = Resource::container(
        "edge",
        &strings(&["--network", &network.name, "-p", "127.0.0.1::80", "-p", "127.0.0.1::443", &image(Service::Edge)]),
    )
    .unwrap();
    // Its own check goes through it to the frontend.
    wait_healthy(&edge.name, Duration::from_secs(60)).unwrap();
    let (http_port, https_port) = (published_port(&edge.name, 80).unwrap(), published_port(&edge.name, 443).unwrap());

    // TLS end to end: the frontend's certificate, both versions, HSTS.
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let (negotiated, head) = https_get(https_port, &certificates.ca_der, version).unwrap();
        assert_eq!(negotiated, version.version);
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    }
    // Plain HTTP reaches the frontend's redirect server.
    let redirect = get(&format!("http://127.0.0.1:{http_port}/edge-probe")).unwrap();
    assert_eq!(redirect.status, 301, "{}", redirect.text());

    // The frontend logs the client, not the edge.
    let edge_address = address_on(&edge.name, &network.name);
    let line = logs(&frontend.name).lines().rev().find(|l| l.contains("GET /edge-probe")).map(String::from);
    let line = line.unwrap_or_else(|| panic!("no access log line for /edge-probe: {}", logs(&frontend.name)));
    let client = line.split_whitespace().next().unwrap_or_default();
    assert!(!client.is_empty() && client != edge_address, "the frontend saw the edge ({edge_address}): {line}");

    // Unprivileged, like the frontend.
    let id = exec(&edge.name, None, &["id", "-u"]).unwrap();
    assert_eq!(String::from_utf8_lossy(&id.stdout).trim(), "101");
}

#[test]
fn without_a_frontend_the_edge_gives_no_answer_and_is_unhealthy() {
    require_engine();
    let network = Resource::network("edge-alone").unwrap();
    let edge = Resource::container(
        "edge-alone",
        &strings(&["--network", &network.name, "-p", "127.0.0.1::80", &image(Service::Edge)]),
    )
    .unwrap();
    let port = published_port(&edge.name, 80).unwrap();
    // nginx starts without the frontend resolvable (it resolves per connection) and
    // closes the client's connection: no answer, never a wrong one.
    std::thread::sleep(Duration::from_secs(1));
    let answer = get(&format!("http://127.0.0.1:{port}/"));
    assert!(answer.is_err(), "the edge answered without a frontend: {:?}", answer.map(|r| r.status));
    let health = exec(&edge.name, None, &["curl", "-fsS", "-m", "3", "http://127.0.0.1:80/nginx-health"]).unwrap();
    assert!(!health.status.success(), "the edge's check passed without a frontend");
}
