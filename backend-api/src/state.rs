//! What the handlers share: the application state and the request body limit.
//!
//! Its own module so that handlers and the error extractors can reach it without
//! importing the router that sits above them.

use std::sync::Arc;

use deadpool_postgres::Pool;

use crate::db::MigrationStatus;

/// Request bodies above this size are refused with 413 before they are parsed.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// What every handler can reach. Cheap to clone: both fields are shared handles.
#[derive(Clone)]
pub struct AppState {
    pub pool: Pool,
    pub migrations: Arc<MigrationStatus>,
}
