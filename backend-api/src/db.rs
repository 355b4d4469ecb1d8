//! The connection pool used by request handlers, and the schema migrations.
//!
//! The pool connects lazily and replaces broken connections, so the API keeps running
//! while PostgreSQL restarts. Migrations run in a background task that keeps retrying
//! until they succeed; readiness reports 503 until then.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime, TimeoutType};
use tokio_postgres::NoTls;
use tracing::{info, warn};

use crate::error_text::describe;

mod embedded {
    // SQL files under backend-api/migrations, compiled into the binary.
    refinery::embed_migrations!("migrations");
}

/// Arbitrary but fixed: every instance of this service takes the same session-level
/// advisory lock, so two instances starting together apply migrations one at a time.
/// (Bytes of "cultivat" read as a big-endian i64.)
pub const MIGRATION_LOCK_KEY: i64 = 0x6375_6c74_6976_6174;

/// Enough for a small service; well under the server's `max_connections`.
const POOL_MAX_SIZE: usize = 10;

/// How long a request waits for a pooled connection before it gets a 503.
const POOL_TIMEOUT: Duration = Duration::from_secs(2);

/// Back-off between migration attempts: doubles from the first value up to the cap.
const MIGRATION_RETRY_INITIAL: Duration = Duration::from_millis(250);
const MIGRATION_RETRY_MAX: Duration = Duration::from_secs(5);

/// Bounds one migration attempt, including the wait for another instance's lock. On
/// time-out the connection is dropped, and PostgreSQL releases a lock it held.
const MIGRATION_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(60);

pub fn build_pool(config: &tokio_postgres::Config) -> Result<Pool, deadpool_postgres::BuildError> {
    let manager = Manager::from_config(
        config.clone(),
        NoTls,
        ManagerConfig {
            // `Fast` only checks `is_closed()`; a connection that died unnoticed fails one
            // query, then is dropped, and the next checkout opens a fresh one.
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(POOL_MAX_SIZE)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(POOL_TIMEOUT))
        .create_timeout(Some(POOL_TIMEOUT))
        .recycle_timeout(Some(POOL_TIMEOUT))
        .build()
}

/// A pool error in words, without deadpool's generic prefix.
pub fn describe_pool_error(error: &PoolError) -> String {
    match error {
        PoolError::Backend(error) => describe(error),
        PoolError::Timeout(TimeoutType::Wait) => "timed out waiting for a free connection".into(),
        PoolError::Timeout(TimeoutType::Create) => "timed out connecting".into(),
        PoolError::Timeout(TimeoutType::Recycle) => "timed out checking a connection".into(),
        other => other.to_string(),
    }
}

/// Whether a query failed because the database cannot serve us right now (a 503), as
/// opposed to a fault in the query or the data (a 500).
pub fn is_unavailable(error: &tokio_postgres::Error) -> bool {
    match error.code() {
        // No SQLSTATE: the connection broke (I/O error, server gone, closed client).
        None => error.is_closed() || error_chain_has_io_error(error),
        Some(code) => {
            let code = code.code();
            // 08 connection exception, 53 insufficient resources (e.g. too many
            // connections), 57 operator intervention (shutdown, restart, cancel),
            // 42P01 undefined table: the schema is not migrated yet.
            code.starts_with("08") || code.starts_with("53") || code.starts_with("57") || code == "42P01"
        }
    }
}

fn error_chain_has_io_error(error: &tokio_postgres::Error) -> bool {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if cause.is::<std::io::Error>() {
            return true;
        }
        source = cause.source();
    }
    false
}

/// Shared record of whether the schema is up to date, read by the readiness checks.
#[derive(Debug, Default)]
pub struct MigrationStatus {
    state: Mutex<MigrationState>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum MigrationState {
    #[default]
    Pending,
    /// The last attempt failed with this message; another attempt will follow.
    Failed(String),
    Applied,
}

impl MigrationStatus {
    pub fn get(&self) -> MigrationState {
        self.lock().clone()
    }

    pub fn set(&self, state: MigrationState) {
        *self.lock() = state;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MigrationState> {
        // The guarded value is replaced whole, so a panic elsewhere cannot leave it
        // half-written: a poisoned lock is safe to keep using.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Runs migrations until they succeed, sleeping with bounded exponential back-off
/// between attempts. Meant to be spawned: it returns only after success.
pub async fn migrate_until_applied(config: tokio_postgres::Config, status: Arc<MigrationStatus>) {
    let mut delay = MIGRATION_RETRY_INITIAL;
    for attempt in 1u32.. {
        match tokio::time::timeout(MIGRATION_ATTEMPT_TIMEOUT, run_migrations(&config)).await {
            Ok(Ok(applied)) => {
                if applied.is_empty() {
                    info!(attempt, "database schema is up to date");
                } else {
                    info!(attempt, applied = %applied.join(", "), "applied database migrations");
                }
                status.set(MigrationState::Applied);
                return;
            }
            Ok(Err(error)) => {
                warn!(attempt, retry_in_ms = delay.as_millis() as u64, %error, "migrations failed");
                status.set(MigrationState::Failed(error));
            }
            Err(_elapsed) => {
                let error = format!("attempt timed out after {}s", MIGRATION_ATTEMPT_TIMEOUT.as_secs());
                warn!(attempt, retry_in_ms = delay.as_millis() as u64, %error, "migrations failed");
                status.set(MigrationState::Failed(error));
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(MIGRATION_RETRY_MAX);
    }
}

/// One attempt: a dedicated connection (not from the pool, so the session-level
/// advisory lock cannot outlive the attempt on a recycled connection), the lock, the
/// refinery runner, the unlock. Returns the names of the migrations it applied.
async fn run_migrations(config: &tokio_postgres::Config) -> Result<Vec<String>, String> {
    let (mut client, connection) =
        config.connect(NoTls).await.map_err(|error| format!("database unreachable: {}", describe(&error)))?;
    // The connection future drives the socket; it ends when `client` is dropped.
    let connection = tokio::spawn(async move {
        if let Err(error) = connection.await {
            warn!(error = %describe(&error), "migration connection closed with an error");
        }
    });

    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK_KEY])
        .await
        .map_err(|error| format!("could not take the migration lock: {}", describe(&error)))?;

    let outcome = embedded::migrations::runner().run_async(&mut client).await;

    // Unlock even when migrating failed. Should the unlock itself fail, the connection
    // is closed right below, which releases the lock just the same.
    if let Err(error) = client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK_KEY]).await {
        warn!(error = %describe(&error), "could not release the migration lock; closing the connection releases it");
    }
    drop(client);
    let _ = connection.await;

    let report = outcome.map_err(|error| format!("migration failed: {}", describe(&error)))?;
    Ok(report.applied_migrations().iter().map(ToString::to_string).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_migrations_are_ordered_and_versioned() {
        let runner = embedded::migrations::runner();
        let names: Vec<String> = runner.get_migrations().iter().map(ToString::to_string).collect();
        assert_eq!(names.first().map(String::as_str), Some("V1__create_activities"));
        let sql = runner.get_migrations()[0].sql().unwrap_or_default();
        assert!(sql.contains("CREATE TABLE"), "{sql}");
    }

    #[test]
    fn migration_status_starts_pending() {
        let status = MigrationStatus::default();
        assert_eq!(status.get(), MigrationState::Pending);
        status.set(MigrationState::Applied);
        assert_eq!(status.get(), MigrationState::Applied);
    }

    #[tokio::test]
    async fn pool_reports_an_unreachable_database_without_panicking() {
        let config: tokio_postgres::Config =
            "host=/nonexistent/cultivate-test-socket user=apiuser dbname=cultivate".parse().unwrap();
        let pool = build_pool(&config).unwrap();
        assert!(pool.get().await.is_err());
        assert!(run_migrations(&config).await.is_err());
    }
}
