//! Liveness and readiness endpoints.
//!
//! Public (nginx proxies exactly these three paths to the internet), status only: the
//! body never says *why* a check failed, since database and migration errors name
//! hosts, roles, sockets and SQL. The reason goes to the log instead.
//!
//! - `/health/live`: the process serves HTTP. Never touches the database, so an
//!   orchestrator does not restart the API because PostgreSQL is down.
//! - `/health/ready`: the API can do its job (database answers, schema migrated).
//! - `/health`: the same checks, for people and dashboards.
//!
//! Internal (nginx answers 404 for it; reachable on the container network, e.g. from
//! the frontend container with `curl http://backend:3000/health/details`, and by the
//! container's own HEALTHCHECK, whose output `docker inspect` keeps):
//!
//! - `/health/details`: the readiness checks with their reason when failing.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};
use tracing::warn;

use crate::db::{self, MigrationState};
use crate::error_text::describe;
use crate::state::AppState;

/// A health check answers within this time whatever the database does.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The internal endpoint with the failure reason; nginx never proxies it.
pub const DETAILS_PATH: &str = "/health/details";

type HealthResponse = (StatusCode, Json<Value>);

pub async fn live() -> HealthResponse {
    (StatusCode::OK, Json(json!({ "status": "live" })))
}

pub async fn ready(State(state): State<AppState>) -> HealthResponse {
    match check_logged(&state, "/health/ready").await {
        Ok(()) => (StatusCode::OK, Json(json!({ "status": "ready" }))),
        Err(_reason) => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "not_ready" }))),
    }
}

pub async fn overall(State(state): State<AppState>) -> HealthResponse {
    match check_logged(&state, "/health").await {
        Ok(()) => (StatusCode::OK, Json(json!({ "status": "ok" }))),
        Err(_reason) => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "unavailable" }))),
    }
}

/// Internal only: the checks of `/health` with what failed.
pub async fn details(State(state): State<AppState>) -> HealthResponse {
    match check_logged(&state, DETAILS_PATH).await {
        Ok(()) => (StatusCode::OK, Json(json!({ "status": "ok", "database": "ok", "migrations": "applied" }))),
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "unavailable", "reason": reason }))),
    }
}

/// [`check`], logging the reason of a failure (the only place a public caller's
/// failure is explained).
async fn check_logged(state: &AppState, path: &str) -> Result<(), String> {
    check(state).await.inspect_err(|reason| warn!(path, reason = %reason, "health check failed"))
}

/// Ok when a pooled connection answers `SELECT 1` and migrations have been applied;
/// otherwise why not. The database comes first: while it is unreachable, that is the
/// root cause of pending migrations too.
async fn check(state: &AppState) -> Result<(), String> {
    match tokio::time::timeout(CHECK_TIMEOUT, ping(state)).await {
        Ok(Ok(())) => {}
        Ok(Err(reason)) => return Err(format!("database unreachable: {reason}")),
        Err(_elapsed) => {
            return Err(format!("database unreachable: no answer within {}s", CHECK_TIMEOUT.as_secs()));
        }
    }
    match state.migrations.get() {
        MigrationState::Applied => Ok(()),
        MigrationState::Pending => Err("migrations not applied yet".to_owned()),
        MigrationState::Failed(error) => Err(format!("migrations not applied yet (last attempt: {error})")),
    }
}

async fn ping(state: &AppState) -> Result<(), String> {
    let client = state.pool.get().await.map_err(|error| db::describe_pool_error(&error))?;
    // The simple-query protocol: one round trip, no prepared statement.
    client.simple_query("SELECT 1").await.map(drop).map_err(|error| describe(&error))
}
