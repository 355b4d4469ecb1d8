//! The backend behind nginx: its API round trip and its error answers, as a browser
//! would reach them (through the frontend's published port).

use cultivate_tests::{Stack, docker, exec, get, http, require_engine};

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

#[test]
fn health_endpoints_report_the_database() {
    require_engine();
    let stack = Stack::shared();
    let health = get(&stack.url("/health")).unwrap();
    assert_eq!(health.status, 200, "{}", health.text());
    assert_eq!(health.json()["database"], "ok");
    assert_eq!(get(&stack.url("/health/live")).unwrap().status, 200);
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
