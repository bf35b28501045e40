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
    /// The database is not ready for the demo app (start-up check).
    #[error("{0}")]
    Database(String),
    /// A file of the background server (its record or log).
    #[error("{action} {}: {source}", path.display())]
    File {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// The background server could not be signalled.
    #[error("cannot signal the demo app (pid {pid}): {source}")]
    Signal {
        /// Its process id.
        pid: u32,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// A request that cannot be answered normally; rendered as `{"error": "..."}`.
///
/// The answer says what kind of trouble it is in words of our own; the driver's or the
/// database's error text (table and column names, values, SQLSTATEs) never reaches the
/// client. It goes with the response as an [`ErrorDetail`] extension, which the request
/// frame moves into the request log.
#[derive(Debug)]
pub(crate) enum ApiError {
    BadRequest(String),
    NotFound(String),
    MethodNotAllowed(String),
    PayloadTooLarge(usize),
    /// The database cannot be reached, is shutting down, or every connection is busy.
    Unavailable {
        answer: &'static str,
        detail: Option<String>,
    },
    /// The request outlived the request timeout.
    Timeout(Duration),
    /// Anything else (a missing table, a changed schema, ...).
    Internal {
        answer: &'static str,
        detail: String,
    },
}

/// What went wrong behind a 5xx answer, for the log only.
#[derive(Debug, Clone)]
pub(crate) struct ErrorDetail(pub(crate) String);

const UNAVAILABLE: &str = "database unavailable";
const INTERNAL: &str = "internal error (the server's log has the details)";

impl ApiError {
    /// A 500 whose cause is only logged.
    pub(crate) fn internal(detail: impl Into<String>) -> ApiError {
        ApiError::Internal {
            answer: INTERNAL,
            detail: detail.into(),
        }
    }

    pub(crate) fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The text the client gets.
    pub(crate) fn message(&self) -> String {
        match self {
            ApiError::BadRequest(m) | ApiError::NotFound(m) | ApiError::MethodNotAllowed(m) => {
                m.clone()
            }
            ApiError::Unavailable { answer, .. } | ApiError::Internal { answer, .. } => {
                (*answer).to_string()
            }
            ApiError::PayloadTooLarge(limit) => {
                format!("request body larger than the limit of {limit} bytes")
            }
            ApiError::Timeout(t) => format!("request timed out after {:.1}s", t.as_secs_f64()),
        }
    }

    /// The cause, for the log: the driver's or database's own words.
    pub(crate) fn detail(&self) -> Option<&str> {
        match self {
            ApiError::Unavailable { detail, .. } => detail.as_deref(),
            ApiError::Internal { detail, .. } => Some(detail),
            _ => None,
        }
    }

    /// The answer and its cause in one line, for the operator (the start-up check).
    pub(crate) fn log_text(&self) -> String {
        match self.detail() {
            Some(detail) => format!("{}: {detail}", self.message()),
            None => self.message(),
        }
    }

    /// Classifies a driver error: connection trouble is 503 (the server recovers when the
    /// database returns), everything else 500.
    pub(crate) fn from_db(e: &tokio_postgres::Error) -> ApiError {
        let detail = error_chain(e);
        let Some(db) = e.as_db_error() else {
            return ApiError::Unavailable {
                answer: UNAVAILABLE,
                detail: Some(detail),
            };
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
            return ApiError::Unavailable {
                answer: UNAVAILABLE,
                detail: Some(detail),
            };
        }
        if *code == SqlState::UNDEFINED_TABLE {
            return ApiError::Internal {
                answer: "the demo tables are missing; create them with `pgcalm up` or \
                         `pgcalm migrate`",
                detail,
            };
        }
        ApiError::internal(detail)
    }

    /// Classifies a pool error.
    pub(crate) fn from_pool(e: &PoolError) -> ApiError {
        let unavailable = |answer| ApiError::Unavailable {
            answer,
            detail: Some(e.to_string()),
        };
        match e {
            PoolError::Backend(e) => ApiError::from_db(e),
            PoolError::Timeout(TimeoutType::Wait) => {
                unavailable("every database connection is busy")
            }
            PoolError::Timeout(_) => unavailable("database unavailable: connecting timed out"),
            PoolError::Closed => unavailable("server is shutting down"),
            other => ApiError::internal(format!("connection pool: {other}")),
        }
    }
}

/// A driver error with its causes ("error connecting to server: Connection refused"),
/// and the SQLSTATE of a database error.
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
    if let Some(code) = e.code() {
        msg = format!("{msg} (SQLSTATE {})", code.code());
    }
    msg
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&serde_json::json!({ "error": self.message() }))
            .unwrap_or_else(|_| br#"{"error":"internal error"}"#.to_vec());
        let mut response = (
            self.status(),
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response();
        self.attach_detail(&mut response);
        response
    }
}

impl ApiError {
    /// Hands the cause, if any, to the request log through the response.
    pub(crate) fn attach_detail(&self, response: &mut Response) {
        if let Some(detail) = self.detail() {
            response
                .extensions_mut()
                .insert(ErrorDetail(detail.to_string()));
        }
    }
}
