//! The JSON error body shared by every endpoint, and extractors whose rejections use it.
//!
//! axum's own extractors answer with plain-text bodies and, for JSON, with 415 or 422.
//! Clients of this API get `{"error": "..."}` and a 400 for anything wrong with what
//! they sent, 413 for a body over the limit, and 503 when the database is unavailable.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::json;
use tracing::{error, warn};

use crate::db;
use crate::error_text::describe;
use crate::state::MAX_BODY_BYTES;

/// An error response: the status and the message sent as `{"error": message}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError { status, message: message.into() }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }

    /// A fault on our side. The details go to the log, not to the client.
    pub fn internal(context: &str, detail: impl std::fmt::Display) -> Self {
        error!(%detail, "{context}");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal server error")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

/// No connection could be had from the pool: the database is down or overloaded.
impl From<deadpool_postgres::PoolError> for ApiError {
    fn from(error: deadpool_postgres::PoolError) -> Self {
        warn!(error = %db::describe_pool_error(&error), "no database connection");
        Self::unavailable("database unavailable")
    }
}

impl From<tokio_postgres::Error> for ApiError {
    fn from(error: tokio_postgres::Error) -> Self {
        if db::is_unavailable(&error) {
            warn!(error = %describe(&error), "database unavailable");
            Self::unavailable("database unavailable")
        } else {
            Self::internal("database query failed", describe(&error))
        }
    }
}

/// `axum::Json` with rejections mapped to this API's error body and status codes.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(json_rejection_to_error(rejection)),
        }
    }
}

fn json_rejection_to_error(rejection: JsonRejection) -> ApiError {
    // `DefaultBodyLimit` surfaces as a rejection while the body is read.
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body exceeds the {}-byte limit: {}", MAX_BODY_BYTES, rejection.body_text()),
        );
    }
    // Syntax errors, wrong types, missing fields and a missing or wrong content type
    // are all the client's mistake: 400, with axum's text naming what was wrong.
    ApiError::bad_request(rejection.body_text())
}

/// `axum::extract::Path` with rejections (e.g. a non-numeric id) as a JSON 400.
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(ApiPath(value)),
            Err(rejection) => Err(path_rejection_to_error(rejection)),
        }
    }
}

fn path_rejection_to_error(rejection: PathRejection) -> ApiError {
    if rejection.status().is_server_error() {
        // A route and its handler disagree about parameters: our bug, not the client's.
        ApiError::internal("path extraction failed", rejection.body_text())
    } else {
        ApiError::bad_request(rejection.body_text())
    }
}

/// For paths that match no route.
pub async fn route_not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(format!("no route for {method} {}", uri.path()))
}

/// For known paths requested with a method they do not support (axum adds `Allow`).
pub async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, format!("method {method} is not allowed for {}", uri.path()))
}
