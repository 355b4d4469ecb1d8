//! The edge image (deploy/edge): on Docker targets it holds the published ports and
//! passes each connection, TLS untouched, to a `frontend` container, with the client's
//! address in a PROXY protocol header.

use std::time::Duration;

use cultivate_tests::{
    Resource, docker, exec, get, get_within, image, logs, published_port, require_engine, strings, wait_healthy,
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

/// `GET /` through the edge `count` times, each given 2 s: the failures.
fn failures_through(port: u16, count: u32) -> Vec<String> {
    let url = format!("http://127.0.0.1:{port}/");
    (0..count)
        .filter_map(|_| match get_within(&url, Duration::from_secs(2)) {
            Ok(200) => None,
            Ok(status) => Some(format!("status {status}")),
            Err(err) => Some(format!("{err:#}")),
        })
        .collect()
}

/// Issue 12, item 2: a deploy routes the edge to the new frontend by its own name
/// before the old one stops, because the edge passes TCP and cannot retry a connection
/// the old one resets. Routed, no new connection reaches the old one, even where the
/// service's name still resolves to it: paused, it would hold every request it got.
#[test]
fn the_edge_routed_to_one_frontend_sends_new_connections_to_it_alone() {
    require_engine();
    let network = Resource::network("edge-route").unwrap();
    let frontend = |purpose: &str| {
        let args = strings(&["--network", &network.name, "--network-alias", "frontend", &image(Service::WebFrontend)]);
        Resource::container(purpose, &args).unwrap()
    };
    let (old, new) = (frontend("edge-route-old"), frontend("edge-route-new"));
    let edge = Resource::container(
        "edge-route",
        &strings(&["--network", &network.name, "-p", "127.0.0.1::80", &image(Service::Edge)]),
    )
    .unwrap();
    for container in [&old.name, &new.name, &edge.name] {
        wait_healthy(container, Duration::from_secs(60)).unwrap();
    }
    let port = published_port(&edge.name, 80).unwrap();
    let route = |host: &str| exec(&edge.name, None, &["cultivate-edge-route", host]).unwrap();
    let routed_to = || {
        String::from_utf8_lossy(&exec(&edge.name, None, &["cat", "/tmp/edge/route"]).unwrap().stdout).trim().to_string()
    };
    assert_eq!(routed_to(), "frontend", "an edge starts routing by the service's name");

    let routed = route(&new.name);
    assert!(routed.status.success(), "{}", String::from_utf8_lossy(&routed.stderr));
    assert_eq!(routed_to(), new.name);
    docker(["pause", &old.name]).unwrap();
    let failures = failures_through(port, 20);
    assert!(failures.is_empty(), "requests reached the old frontend: {failures:?}");

    // A name that is not one is refused, and the route stays.
    let refused = route("no such;frontend");
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("'no such;frontend'") && stderr.contains("container or service name"), "{stderr}");
    assert_eq!(routed_to(), new.name);
    assert!(failures_through(port, 5).is_empty());

    // Back to the service's name (the old one is gone by then in a deploy): again
    // routing there is no reload.
    docker(["unpause", &old.name]).unwrap();
    assert!(route("frontend").status.success());
    let again = route("frontend");
    assert!(String::from_utf8_lossy(&again.stderr).contains("already routing to frontend"));
    assert_eq!(routed_to(), "frontend");
    assert!(failures_through(port, 10).is_empty());
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
