//! Liveness and readiness endpoints.
//!
//! - `/health/live`: the process serves HTTP. Never touches the database, so an
//!   orchestrator does not restart the API because PostgreSQL is down.
//! - `/health/ready`: the API can do its job (database answers, schema migrated).
//! - `/health`: the same checks in a more descriptive body, for people and dashboards.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::db::{self, MigrationState};
use crate::error::describe;
use crate::routes::AppState;

/// A health check answers within this time whatever the database does.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

type HealthResponse = (StatusCode, Json<Value>);

pub async fn live() -> HealthResponse {
    (StatusCode::OK, Json(json!({ "status": "live" })))
}

pub async fn ready(State(state): State<AppState>) -> HealthResponse {
    match check(&state).await {
        Ok(()) => (StatusCode::OK, Json(json!({ "status": "ready" }))),
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "not_ready", "reason": reason }))),
    }
}

pub async fn overall(State(state): State<AppState>) -> HealthResponse {
    match check(&state).await {
        Ok(()) => (StatusCode::OK, Json(json!({ "status": "ok", "database": "ok", "migrations": "applied" }))),
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "unavailable", "reason": reason }))),
    }
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
