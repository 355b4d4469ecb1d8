//! `/api/v1/activities`: list, create, fetch and delete activities.

use std::future::Future;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio_postgres::Row;

use crate::error::{ApiError, ApiJson, ApiPath};
use crate::state::AppState;

pub const COLLECTION_PATH: &str = "/api/v1/activities";
pub const ITEM_PATH: &str = "/api/v1/activities/{id}";

/// The list endpoint returns at most this many activities, newest first.
const LIST_LIMIT: i64 = 500;

/// Same bound as the column's CHECK constraint, counted in characters like
/// PostgreSQL's `char_length`.
const TITLE_MAX_CHARS: usize = 200;

/// Bounds the database work of one request; the pool separately bounds the wait for a
/// connection. A database that stops answering yields a 503 instead of a hung request.
const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

const COLUMNS: &str = "id, title, notes, created_at";

/// An activity as the API returns it.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Activity {
    pub id: i64,
    pub title: String,
    pub notes: String,
    /// RFC 3339, always in UTC (e.g. `2025-01-31T08:15:00.123456Z`).
    pub created_at: String,
}

impl Activity {
    fn from_row(row: &Row) -> Result<Self, ApiError> {
        let decode = |error| ApiError::internal("could not decode an activities row", error);
        let created_at: OffsetDateTime = row.try_get("created_at").map_err(decode)?;
        Ok(Activity {
            id: row.try_get("id").map_err(decode)?,
            title: row.try_get("title").map_err(decode)?,
            notes: row.try_get("notes").map_err(decode)?,
            created_at: format_timestamp(created_at)?,
        })
    }
}

fn format_timestamp(timestamp: OffsetDateTime) -> Result<String, ApiError> {
    timestamp
        .to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .map_err(|error| ApiError::internal("could not format a timestamp", error))
}

/// Body of `POST /api/v1/activities`.
#[derive(Debug, Deserialize)]
pub struct NewActivity {
    pub title: String,
    /// Optional; absent or `null` means no notes.
    #[serde(default)]
    pub notes: Option<String>,
}

/// A `NewActivity` that passed validation: what gets inserted.
#[derive(Debug, PartialEq, Eq)]
struct ValidActivity {
    title: String,
    notes: String,
}

impl NewActivity {
    fn validate(self) -> Result<ValidActivity, ApiError> {
        // Surrounding whitespace is never meaningful in a title, and trimming first
        // means a title of only spaces counts as empty.
        let title = self.title.trim();
        if title.is_empty() {
            return Err(ApiError::bad_request("field `title` must not be empty"));
        }
        let title_chars = title.chars().count();
        if title_chars > TITLE_MAX_CHARS {
            return Err(ApiError::bad_request(format!(
                "field `title` must be at most {TITLE_MAX_CHARS} characters, got {title_chars}"
            )));
        }
        let notes = self.notes.unwrap_or_default();
        // PostgreSQL text cannot hold NUL; refuse it here rather than fail the INSERT.
        for (field, value) in [("title", title), ("notes", notes.as_str())] {
            if value.contains('\0') {
                return Err(ApiError::bad_request(format!("field `{field}` must not contain NUL characters")));
            }
        }
        Ok(ValidActivity { title: title.to_owned(), notes })
    }
}

/// Runs one request's database work under [`QUERY_TIMEOUT`].
async fn with_timeout<T>(work: impl Future<Output = Result<T, ApiError>>) -> Result<T, ApiError> {
    tokio::time::timeout(QUERY_TIMEOUT, work)
        .await
        .unwrap_or_else(|_elapsed| Err(ApiError::unavailable("database did not answer in time")))
}

fn not_found(id: i64) -> ApiError {
    ApiError::not_found(format!("activity {id} not found"))
}

pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<Activity>>, ApiError> {
    with_timeout(async {
        let client = state.pool.get().await?;
        let statement = client
            .prepare_cached(&format!("SELECT {COLUMNS} FROM activities ORDER BY created_at DESC, id DESC LIMIT $1"))
            .await?;
        let rows = client.query(&statement, &[&LIST_LIMIT]).await?;
        let activities = rows.iter().map(Activity::from_row).collect::<Result<_, _>>()?;
        Ok(Json(activities))
    })
    .await
}

pub async fn create(
    State(state): State<AppState>,
    ApiJson(input): ApiJson<NewActivity>,
) -> Result<impl IntoResponse, ApiError> {
    let input = input.validate()?;
    let activity = with_timeout(async {
        let client = state.pool.get().await?;
        let statement = client
            .prepare_cached(&format!("INSERT INTO activities (title, notes) VALUES ($1, $2) RETURNING {COLUMNS}"))
            .await?;
        let row = client.query_one(&statement, &[&input.title, &input.notes]).await?;
        Activity::from_row(&row)
    })
    .await?;
    let location = format!("{COLLECTION_PATH}/{}", activity.id);
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(activity)))
}

pub async fn fetch(State(state): State<AppState>, ApiPath(id): ApiPath<i64>) -> Result<Json<Activity>, ApiError> {
    with_timeout(async {
        let client = state.pool.get().await?;
        let statement = client.prepare_cached(&format!("SELECT {COLUMNS} FROM activities WHERE id = $1")).await?;
        match client.query_opt(&statement, &[&id]).await? {
            Some(row) => Ok(Json(Activity::from_row(&row)?)),
            None => Err(not_found(id)),
        }
    })
    .await
}

pub async fn delete(State(state): State<AppState>, ApiPath(id): ApiPath<i64>) -> Result<StatusCode, ApiError> {
    with_timeout(async {
        let client = state.pool.get().await?;
        let statement = client.prepare_cached("DELETE FROM activities WHERE id = $1").await?;
        match client.execute(&statement, &[&id]).await? {
            0 => Err(not_found(id)),
            _ => Ok(StatusCode::NO_CONTENT),
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_activity(title: &str, notes: Option<&str>) -> NewActivity {
        NewActivity { title: title.to_owned(), notes: notes.map(str::to_owned) }
    }

    #[test]
    fn titles_are_trimmed_and_notes_default_to_empty() {
        let valid = new_activity("  Water the tomatoes \n", None).validate().unwrap();
        assert_eq!(valid, ValidActivity { title: "Water the tomatoes".into(), notes: String::new() });
    }

    #[test]
    fn blank_titles_are_rejected() {
        for title in ["", "   ", "\t\n"] {
            let error = new_activity(title, None).validate().unwrap_err();
            assert_eq!(error.status, StatusCode::BAD_REQUEST);
            assert!(error.message.contains("title"), "{}", error.message);
        }
    }

    #[test]
    fn title_length_is_counted_in_characters() {
        // 200 two-byte characters are 400 bytes but within the limit.
        assert!(new_activity(&"é".repeat(200), None).validate().is_ok());
        let error = new_activity(&"é".repeat(201), None).validate().unwrap_err();
        assert_eq!(error.status, StatusCode::BAD_REQUEST);
        assert!(error.message.contains("title"), "{}", error.message);
        assert!(error.message.contains("201"), "{}", error.message);
    }

    #[test]
    fn nul_characters_are_rejected() {
        let error = new_activity("ok", Some("a\0b")).validate().unwrap_err();
        assert!(error.message.contains("notes"), "{}", error.message);
    }

    #[test]
    fn timestamps_are_rfc3339_in_utc() {
        let timestamp = time::Date::from_calendar_date(2025, time::Month::January, 31)
            .unwrap()
            .with_hms_micro(8, 15, 0, 123_456)
            .unwrap()
            .assume_offset(time::UtcOffset::from_hms(2, 0, 0).unwrap());
        assert_eq!(format_timestamp(timestamp).unwrap(), "2025-01-31T06:15:00.123456Z");
    }
}
