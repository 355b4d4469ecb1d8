//! The HTTP surface: which path goes to which handler, and what wraps them all.

use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use tracing::info;

use crate::activities;
use crate::error;
use crate::health;
use crate::state::{AppState, MAX_BODY_BYTES};

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health::overall))
        .route("/health/live", get(health::live))
        .route("/health/ready", get(health::ready))
        .route(health::DETAILS_PATH, get(health::details))
        .route(activities::COLLECTION_PATH, get(activities::list).post(activities::create))
        .route(activities::ITEM_PATH, get(activities::fetch).delete(activities::delete))
        // Applies to the routes above, so it must come after them.
        .method_not_allowed_fallback(error::method_not_allowed)
        .fallback(error::route_not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

/// One log line per request. Health probes are left out: Docker and the proxy poll
/// them every few seconds and would bury everything else.
async fn log_request(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    if !path.starts_with("/health") {
        info!(
            %method,
            %path,
            status = response.status().as_u16(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "request"
        );
    }
    response
}

#[cfg(test)]
mod tests {
    //! The router against a database that cannot exist (a socket directory that is
    //! not there): everything short of real queries can be checked without PostgreSQL.

    use super::*;
    use crate::db::{self, MigrationStatus};
    use axum::body::{Body, to_bytes};
    use axum::http::{Method, StatusCode, header};
    use serde_json::{Value, json};
    use std::sync::Arc;
    use tower::ServiceExt;

    fn unreachable_state() -> AppState {
        let config: tokio_postgres::Config =
            "host=/nonexistent/cultivate-test-socket user=apiuser dbname=cultivate".parse().unwrap();
        AppState { pool: db::build_pool(&config).unwrap(), migrations: Arc::new(MigrationStatus::default()) }
    }

    async fn send(request: Request<Body>) -> (StatusCode, Value, axum::http::HeaderMap) {
        let response = router(unreachable_state()).oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|error| panic!("body is not JSON ({error}): {}", String::from_utf8_lossy(&bytes)))
        };
        (status, body, headers)
    }

    fn get_request(path: &str) -> Request<Body> {
        Request::get(path).body(Body::empty()).unwrap()
    }

    fn post_json(body: impl Into<Body>) -> Request<Body> {
        Request::post("/api/v1/activities").header(header::CONTENT_TYPE, "application/json").body(body.into()).unwrap()
    }

    fn error_message(body: &Value) -> &str {
        body["error"].as_str().unwrap_or_else(|| panic!("no error message in {body}"))
    }

    #[tokio::test]
    async fn liveness_does_not_need_the_database() {
        let (status, body, _) = send(get_request("/health/live")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, json!({ "status": "live" }));
    }

    /// The database error as the pool reports it names the socket path: a public
    /// health body must not carry it, nor any other reason.
    fn assert_status_only(path: &str, body: &Value, expected_status: &str) {
        assert_eq!(body, &json!({ "status": expected_status }), "{path}: the public body says more than a status");
        let text = body.to_string();
        for leak in ["nonexistent", "cultivate-test-socket", "database", "reason", "unreachable", "migrations"] {
            assert!(!text.contains(leak), "{path}: public body leaks {leak:?}: {text}");
        }
    }

    #[tokio::test]
    async fn public_health_hides_why_the_database_is_unreachable() {
        let (status, body, _) = send(get_request("/health")).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_status_only("/health", &body, "unavailable");
    }

    #[tokio::test]
    async fn readiness_fails_while_the_database_is_unreachable() {
        let (status, body, _) = send(get_request("/health/ready")).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_status_only("/health/ready", &body, "not_ready");
    }

    #[tokio::test]
    async fn health_details_explain_an_unreachable_database() {
        let (status, body, _) = send(get_request(health::DETAILS_PATH)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["status"], "unavailable");
        let reason = body["reason"].as_str().unwrap();
        assert!(reason.starts_with("database unreachable: "), "{reason}");
    }

    #[tokio::test]
    async fn readiness_is_fast_even_when_failing() {
        let started = Instant::now();
        let _ = send(get_request("/health/ready")).await;
        assert!(started.elapsed() < std::time::Duration::from_secs(3));
    }

    #[tokio::test]
    async fn database_outage_is_a_json_503() {
        for request in [
            get_request("/api/v1/activities"),
            get_request("/api/v1/activities/1"),
            Request::delete("/api/v1/activities/1").body(Body::empty()).unwrap(),
            post_json(r#"{"title": "Sow basil"}"#),
        ] {
            let path = format!("{} {}", request.method(), request.uri());
            let (status, body, _) = send(request).await;
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
            assert_eq!(error_message(&body), "database unavailable", "{path}");
        }
    }

    #[tokio::test]
    async fn non_numeric_id_is_a_400() {
        for request in [
            get_request("/api/v1/activities/abc"),
            Request::delete("/api/v1/activities/1.5").body(Body::empty()).unwrap(),
            get_request("/api/v1/activities/99999999999999999999"),
        ] {
            let (status, body, _) = send(request).await;
            assert_eq!(status, StatusCode::BAD_REQUEST);
            assert!(!error_message(&body).is_empty());
        }
    }

    #[tokio::test]
    async fn malformed_json_is_a_400_naming_the_problem() {
        let cases = [
            (r#"{"title": "#, "Failed to parse the request body as JSON"),
            (r#"{"title": 42}"#, "invalid type"),
            (r#"{"notes": "no title"}"#, "missing field `title`"),
            (r#"[1, 2]"#, "invalid type"),
            ("", "EOF"),
        ];
        for (body, expected) in cases {
            let (status, response, _) = send(post_json(body)).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "body {body:?}");
            let message = error_message(&response);
            assert!(message.contains(expected), "body {body:?}: {message:?} lacks {expected:?}");
        }
    }

    #[tokio::test]
    async fn missing_or_wrong_content_type_is_a_400() {
        for content_type in [None, Some("text/plain"), Some("application/x-www-form-urlencoded")] {
            let mut request = Request::post("/api/v1/activities");
            if let Some(content_type) = content_type {
                request = request.header(header::CONTENT_TYPE, content_type);
            }
            let request = request.body(Body::from(r#"{"title":"x"}"#)).unwrap();
            let (status, body, _) = send(request).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{content_type:?}");
            assert!(error_message(&body).contains("Content-Type"), "{content_type:?}: {body}");
        }
    }

    #[tokio::test]
    async fn invalid_titles_are_a_400_before_touching_the_database() {
        let too_long = json!({ "title": "x".repeat(201) }).to_string();
        for body in [r#"{"title": ""}"#, r#"{"title": "   "}"#, too_long.as_str()] {
            let (status, response, _) = send(post_json(body.to_owned())).await;
            assert_eq!(status, StatusCode::BAD_REQUEST);
            assert!(error_message(&response).contains("title"), "{response}");
        }
    }

    #[tokio::test]
    async fn oversized_body_is_a_413() {
        let body = json!({ "title": "x", "notes": "n".repeat(MAX_BODY_BYTES) }).to_string();
        let (status, response, _) = send(post_json(body)).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(!error_message(&response).is_empty());
    }

    #[tokio::test]
    async fn unknown_routes_and_methods_get_json_errors() {
        let (status, body, _) = send(get_request("/nope")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(error_message(&body), "no route for GET /nope");

        let request = Request::builder().method(Method::PUT).uri("/api/v1/activities").body(Body::empty()).unwrap();
        let (status, body, headers) = send(request).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert!(error_message(&body).contains("PUT"));
        let allow = headers.get(header::ALLOW).unwrap().to_str().unwrap();
        assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
    }
}
