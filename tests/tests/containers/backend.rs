//! The backend behind nginx: its API round trip and its error answers, as a browser
//! would reach them (through the frontend's published port).

use std::time::{Duration, Instant};

use cultivate_tests::{Resource, Stack, docker, exec, get, http, image, logs, require_engine, strings, wait_healthy};
use xtask::images::Service;

const JSON: (&str, &str) = ("content-type", "application/json");

fn post_activity(stack: &Stack, body: &[u8]) -> cultivate_tests::Response {
    http("POST", &stack.url("/api/v1/activities"), &[JSON], Some(body)).unwrap()
}

#[test]
fn api_round_trip_through_nginx() {
    require_engine();
    let stack = Stack::shared();
    let title = format!("round trip {}", std::process::id());
    let created =
        post_activity(stack, serde_json::json!({"title": title, "notes": "via nginx"}).to_string().as_bytes());
    assert_eq!(created.status, 201, "{}", created.text());
    let activity = created.json();
    let id = activity["id"].as_i64().expect("created activity has an id");
    assert_eq!(activity["title"], title.as_str());
    assert!(created.header("location").is_some_and(|l| l.ends_with(&format!("/api/v1/activities/{id}"))));

    let list = get(&stack.url("/api/v1/activities")).unwrap();
    assert_eq!(list.status, 200);
    assert!(list.json().as_array().unwrap().iter().any(|a| a["id"] == id), "new activity not listed");

    let one = get(&stack.url(&format!("/api/v1/activities/{id}"))).unwrap();
    assert_eq!((one.status, one.json()["notes"].as_str()), (200, Some("via nginx")));

    let deleted = http("DELETE", &stack.url(&format!("/api/v1/activities/{id}")), &[], None).unwrap();
    assert_eq!(deleted.status, 204);
    let gone = get(&stack.url(&format!("/api/v1/activities/{id}"))).unwrap();
    assert_eq!(gone.status, 404, "{}", gone.text());
    assert!(gone.json()["error"].as_str().unwrap().contains(&id.to_string()));
}

#[test]
fn bad_json_is_a_400_that_names_the_problem() {
    require_engine();
    let stack = Stack::shared();
    let cases: [(&[u8], &str); 3] =
        [(b"{\"title\": ", "EOF"), (b"{\"title\": 42}", "title"), (b"{\"notes\": \"no title\"}", "title")];
    for (body, named) in cases {
        let response = post_activity(stack, body);
        assert_eq!(response.status, 400, "{:?} → {}", String::from_utf8_lossy(body), response.text());
        let error = response.json()["error"].as_str().unwrap_or_default().to_string();
        assert!(error.contains(named), "error {error:?} does not name {named:?}");
    }
    let empty_title = post_activity(stack, b"{\"title\": \"   \"}");
    assert_eq!(empty_title.status, 400);
}

#[test]
fn oversized_body_is_413_and_unknown_id_is_404() {
    require_engine();
    let stack = Stack::shared();
    let big = serde_json::json!({"title": "x", "notes": "n".repeat(20 * 1024)}).to_string();
    assert_eq!(post_activity(stack, big.as_bytes()).status, 413);
    assert_eq!(get(&stack.url("/api/v1/activities/987654321")).unwrap().status, 404);
    assert_eq!(get(&stack.url("/api/v1/activities/not-a-number")).unwrap().status, 400);
}

/// `GET url` run inside `container` (the frontend image has curl): what a compose
/// healthcheck or an operator's `docker exec` reaches on the container network.
fn curl_inside(container: &str, url: &str) -> (String, String) {
    let output = exec(container, None, &["curl", "-sS", "--max-time", "10", "-w", "\n%{http_code}", url]).unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, code) = stdout
        .rsplit_once('\n')
        .unwrap_or_else(|| panic!("curl {url} in {container}: {stdout}{}", String::from_utf8_lossy(&output.stderr)));
    (code.to_string(), body.to_string())
}

// Issue 9 item 11: the public health answers carry a status only; the details are on
// the internal network.
#[test]
fn health_endpoints_report_the_database() {
    require_engine();
    let stack = Stack::shared();
    let health = get(&stack.url("/health")).unwrap();
    assert_eq!(health.status, 200, "{}", health.text());
    assert_eq!(health.json(), serde_json::json!({"status": "ok"}), "public /health says more than its status");
    assert_eq!(get(&stack.url("/health/live")).unwrap().status, 200);
    let ready = get(&stack.url("/health/ready")).unwrap();
    assert_eq!((ready.status, ready.json()), (200, serde_json::json!({"status": "ready"})));

    let (code, details) = curl_inside(&stack.frontend, "http://backend:3000/health/details");
    assert_eq!(code, "200", "{details}");
    let details: serde_json::Value = serde_json::from_str(&details).unwrap();
    assert_eq!((details["database"].as_str(), details["migrations"].as_str()), (Some("ok"), Some("applied")));
}

#[test]
fn health_details_are_not_proxied_by_nginx() {
    require_engine();
    let stack = Stack::shared();
    for path in ["/health/details", "/health/details?x=1", "/health/live/../details", "/health/%64etails", "/health/"] {
        let response = get(&stack.url(path)).unwrap();
        assert_eq!(response.status, 404, "{path}: {}", response.text());
        assert_eq!(response.json(), serde_json::json!({"error": "not found"}), "{path}");
        assert!(!response.text().contains("database"), "{path}: {}", response.text());
    }
    // The same path reaches the backend from inside the network.
    let (code, _) = curl_inside(&stack.frontend, "http://backend:3000/health/details");
    assert_eq!(code, "200");
}

// With no database behind the socket, the public answers through nginx still say only
// "unavailable": the error (socket path, errno text) is in the backend's log and at the
// internal /health/details.
#[test]
fn public_health_hides_the_database_error_when_the_database_is_unreachable() {
    require_engine();
    let network = Resource::network("outage-net").unwrap();
    // An empty socket volume: the backend's connection attempts fail at once.
    let socket_volume = Resource::volume("outage-socket").unwrap();
    let backend = Resource::container(
        "outage-backend",
        &strings(&[
            "--network",
            &network.name,
            "--network-alias",
            "backend",
            "-v",
            &format!("{}:/var/run/postgresql", socket_volume.name),
            &image(Service::BackendApi),
        ]),
    )
    .unwrap();
    let frontend = Resource::container(
        "outage-frontend",
        &strings(&["--network", &network.name, "-p", "127.0.0.1::80", &image(Service::WebFrontend)]),
    )
    .unwrap();
    wait_healthy(&frontend.name, Duration::from_secs(60)).unwrap();
    let port = cultivate_tests::published_port(&frontend.name, 80).unwrap();
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");

    // Until the backend listens nginx answers 502; then the backend's own 503.
    let deadline = Instant::now() + Duration::from_secs(60);
    let health = loop {
        let response = get(&url("/health")).unwrap();
        if response.status == 503 || Instant::now() >= deadline {
            break response;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(health.status, 503, "{}; backend logs:\n{}", health.text(), logs(&backend.name));
    let ready = get(&url("/health/ready")).unwrap();
    assert_eq!(ready.status, 503, "{}", ready.text());
    for (path, response, status) in [("/health", &health, "unavailable"), ("/health/ready", &ready, "not_ready")] {
        let text = response.text();
        assert_eq!(response.json(), serde_json::json!({"status": status}), "{path} says more than its status");
        for leak in ["database", "postgresql", "PGSQL", "unreachable", "reason", "No such file"] {
            assert!(!text.contains(leak), "{path} through nginx leaks {leak:?}: {text}");
        }
    }

    // The detail stays inside: the internal endpoint and the log.
    let (code, details) = curl_inside(&frontend.name, "http://backend:3000/health/details");
    assert_eq!(code, "503", "{details}");
    assert!(details.contains("database unreachable"), "{details}");
    let backend_logs = logs(&backend.name);
    assert!(
        backend_logs.lines().any(|line| line.contains("health check failed") && line.contains("database unreachable")),
        "the backend did not log why it is unhealthy:\n{backend_logs}"
    );
}

#[test]
fn backend_runs_as_uid_1001() {
    require_engine();
    let stack = Stack::shared();
    let user = docker(["inspect", "--format", "{{.Config.User}}", &stack.backend]).unwrap();
    assert_eq!(user, "1001:1001");
    let status = exec(&stack.backend, None, &["cat", "/proc/1/status"]).unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    let uids = text.lines().find(|l| l.starts_with("Uid:")).unwrap_or_default();
    assert!(uids.split_whitespace().skip(1).all(|uid| uid == "1001"), "backend process ids: {uids}");
}
