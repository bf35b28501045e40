//! Errors of the server (start-up) and of single requests (JSON answers).

use std::net::SocketAddr;
use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use deadpool_postgres::{PoolError, TimeoutType};
use tokio_postgres::error::SqlState;

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Options that cannot work.
    #[error("{0}")]
    InvalidOptions(String),
    /// The listening socket could not be bound.
    #[error(
        "cannot listen on {addr}: {source}\n  fix: stop whatever uses that port, or choose \
         another with --port (0 picks a free one)"
    )]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Accepting connections failed.
    #[error("serving HTTP failed: {0}")]
    Serve(#[source] std::io::Error),
    /// The database is not ready for the demo app (start-up check).
    #[error("{0}")]
    Database(String),
}

/// A request that cannot be answered normally; rendered as `{"error": "..."}`.
#[derive(Debug)]
pub(crate) enum ApiError {
    BadRequest(String),
    NotFound(String),
    MethodNotAllowed(String),
    PayloadTooLarge(usize),
    /// The database cannot be reached, is shutting down, or every connection is busy.
    Unavailable(String),
    /// The request outlived the request timeout.
    Timeout(Duration),
    /// Anything else (a missing table, a changed schema, ...).
    Internal(String),
}

impl ApiError {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub(crate) fn message(&self) -> String {
        match self {
            ApiError::BadRequest(m)
            | ApiError::NotFound(m)
            | ApiError::MethodNotAllowed(m)
            | ApiError::Unavailable(m)
            | ApiError::Internal(m) => m.clone(),
            ApiError::PayloadTooLarge(limit) => {
                format!("request body larger than the limit of {limit} bytes")
            }
            ApiError::Timeout(t) => format!("request timed out after {:.1}s", t.as_secs_f64()),
        }
    }

    /// Classifies a driver error: connection trouble is 503 (the server recovers when the
    /// database returns), everything else 500.
    pub(crate) fn from_db(e: &tokio_postgres::Error) -> ApiError {
        let Some(db) = e.as_db_error() else {
            return ApiError::Unavailable(format!("database unavailable: {}", error_chain(e)));
        };
        let code = db.code();
        let unavailable = code.code().starts_with("08")
            || [
                SqlState::ADMIN_SHUTDOWN,
                SqlState::CRASH_SHUTDOWN,
                SqlState::CANNOT_CONNECT_NOW,
                SqlState::TOO_MANY_CONNECTIONS,
                SqlState::LOCK_NOT_AVAILABLE,
                SqlState::QUERY_CANCELED,
                SqlState::T_R_DEADLOCK_DETECTED,
                SqlState::T_R_SERIALIZATION_FAILURE,
            ]
            .contains(code);
        if unavailable {
            return ApiError::Unavailable(format!("database unavailable: {}", db.message()));
        }
        if *code == SqlState::UNDEFINED_TABLE {
            return ApiError::Internal(format!(
                "{}; create the demo tables with `pgcalm up` or `pgcalm migrate`",
                db.message()
            ));
        }
        ApiError::Internal(format!("database error: {}", db.message()))
    }

    /// Classifies a pool error.
    pub(crate) fn from_pool(e: &PoolError) -> ApiError {
        match e {
            PoolError::Backend(e) => ApiError::from_db(e),
            PoolError::Timeout(TimeoutType::Wait) => {
                ApiError::Unavailable("every database connection is busy".into())
            }
            PoolError::Timeout(_) => {
                ApiError::Unavailable("database unavailable: connecting timed out".into())
            }
            PoolError::Closed => ApiError::Unavailable("server is shutting down".into()),
            other => ApiError::Internal(format!("connection pool: {other}")),
        }
    }
}

/// A driver error with its causes ("error connecting to server: Connection refused").
fn error_chain(e: &tokio_postgres::Error) -> String {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        let s_text = s.to_string();
        if !msg.contains(&s_text) {
            msg = format!("{msg}: {s_text}");
        }
        src = s.source();
    }
    msg
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&serde_json::json!({ "error": self.message() }))
            .unwrap_or_else(|_| br#"{"error":"internal error"}"#.to_vec());
        (
            self.status(),
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response()
    }
}
