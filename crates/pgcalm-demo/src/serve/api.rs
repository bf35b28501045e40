//! The routes: the Django peer's `demoapp/views.py`, same SQL, same JSON shapes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::ser::{SerializeMap, SerializeSeq};
use tokio_postgres::Row;
use tokio_postgres::types::{ToSql, Type};

use super::db::Database;
use super::error::ApiError;

const LIST_LARGE: &str = "SELECT id, name, email FROM large_email ORDER BY id LIMIT 100";
const LIST_SMALL: &str = "SELECT id, name, email FROM small_email ORDER BY id LIMIT 100";
const LOOKUP: &str =
    "SELECT id, name, email FROM large_email WHERE email = $1 ORDER BY id LIMIT 100";
const ADD_LARGE: &str =
    "INSERT INTO large_email (name, email) VALUES ($1, $2) RETURNING id, name, email";
const HEALTH: &str = "SELECT 1";

/// One route of the API, as `GET /` lists it.
#[derive(Debug, Serialize)]
pub(crate) struct Route {
    pub(crate) method: &'static str,
    pub(crate) path: &'static str,
    pub(crate) description: &'static str,
}

/// Every route the router serves (a test requests each one), for `GET /`.
pub(crate) const ROUTES: [Route; 6] = [
    Route {
        method: "GET",
        path: "/list_large/",
        description: "the first 100 rows of large_email by id",
    },
    Route {
        method: "GET",
        path: "/list_small/",
        description: "the first 100 rows of small_email by id",
    },
    Route {
        method: "GET",
        path: "/lookup/",
        description: "rows of large_email whose email is ?email= (the seed's lookup)",
    },
    Route {
        method: "POST",
        path: "/add_large/",
        description: "inserts one row into large_email and returns it (the write probe)",
    },
    Route {
        method: "GET",
        path: "/healthz",
        description: "whether the database answers",
    },
    Route {
        method: "GET",
        path: "/",
        description: "this list",
    },
];

/// `GET /`: the routes.
pub(crate) async fn routes() -> Result<Response, ApiError> {
    json(
        StatusCode::OK,
        &serde_json::json!({ "app": "pgcalm demo app", "routes": ROUTES }),
    )
}

/// Routes that end in a slash; `GET` without it is redirected (Django's `APPEND_SLASH`).
const SLASHED_ROUTES: [&str; 4] = ["/list_large/", "/list_small/", "/lookup/", "/add_large/"];

/// Shared by all handlers.
#[derive(Clone)]
pub(crate) struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    db: Arc<Database>,
    body_limit: usize,
    /// `ServeOptions::cancel_abandoned_queries`.
    cancel_abandoned: bool,
    /// Makes `/add_large/` tags unique within the process (the peer's `itertools.count`).
    probes: AtomicU64,
}

impl AppState {
    pub(crate) fn new(db: Arc<Database>, body_limit: usize, cancel_abandoned: bool) -> Self {
        Self {
            inner: Arc::new(Inner {
                db,
                body_limit,
                cancel_abandoned,
                probes: AtomicU64::new(0),
            }),
        }
    }
}

/// Rows of `(id, name, email)`, serialized as a JSON array of objects straight from the
/// driver's buffers.
struct EmailRows<'a>(&'a [Row]);

/// One `(id, name, email)` row as a JSON object.
struct EmailRow<'a>(&'a Row);

impl Serialize for EmailRow<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::Error as _;
        let row = self.0;
        let id: i64 = row.try_get(0).map_err(S::Error::custom)?;
        let name: &str = row.try_get(1).map_err(S::Error::custom)?;
        let email: &str = row.try_get(2).map_err(S::Error::custom)?;
        let mut map = s.serialize_map(Some(3))?;
        map.serialize_entry("id", &id)?;
        map.serialize_entry("name", name)?;
        map.serialize_entry("email", email)?;
        map.end()
    }
}

impl Serialize for EmailRows<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for row in self.0 {
            seq.serialize_element(&EmailRow(row))?;
        }
        seq.end()
    }
}

#[derive(Serialize)]
struct EmailList<'a> {
    emails: EmailRows<'a>,
}

fn json(status: StatusCode, value: &impl Serialize) -> Result<Response, ApiError> {
    // 100 rows of the demo tables are about 6 KB.
    let mut body = Vec::with_capacity(8 * 1024);
    serde_json::to_writer(&mut body, value)
        .map_err(|e| ApiError::internal(format!("encoding the answer: {e}")))?;
    Ok((
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response())
}

/// Runs `sql` with `params` on a pooled connection and returns its rows.
///
/// By default the work runs on the request's task: a request dropped mid-query (client
/// gone, request timeout) cancels its query and frees its connection ([`Checkout`]).
/// With `cancel_abandoned_queries` off it runs on a task of its own, which outlives the
/// request: the wait for a connection and the query go on, and the connection stays
/// held until the query ends, the way a sync worker (the seed's Django app on gunicorn)
/// stays busy with a request whose client has left.
async fn run_query(
    state: &AppState,
    sql: &'static str,
    params: Vec<String>,
) -> Result<Vec<Row>, ApiError> {
    let db = state.inner.db.clone();
    let work = async move {
        // The columns they go into or compare with are varchar (what a prepared statement
        // would have inferred).
        let typed: Vec<(&(dyn ToSql + Sync), Type)> = params
            .iter()
            .map(|p| (p as &(dyn ToSql + Sync), Type::VARCHAR))
            .collect();
        let mut conn = db.checkout().await?;
        conn.query(sql, &typed).await
    };
    if state.inner.cancel_abandoned {
        work.await
    } else {
        tokio::spawn(work)
            .await
            .map_err(|e| ApiError::internal(format!("the query's task failed: {e}")))?
    }
}

async fn list(state: &AppState, sql: &'static str) -> Result<Response, ApiError> {
    let rows = run_query(state, sql, Vec::new()).await?;
    json(
        StatusCode::OK,
        &EmailList {
            emails: EmailRows(&rows),
        },
    )
}

/// `GET /list_large/`: first 100 rows of large_email by id.
pub(crate) async fn list_large(State(state): State<AppState>) -> Result<Response, ApiError> {
    list(&state, LIST_LARGE).await
}

/// `GET /list_small/`: first 100 rows of small_email by id.
pub(crate) async fn list_small(State(state): State<AppState>) -> Result<Response, ApiError> {
    list(&state, LIST_SMALL).await
}

#[derive(serde::Deserialize)]
pub(crate) struct LookupParams {
    email: Option<String>,
}

/// `GET /lookup/?email=`: rows of large_email with that email (first 100 by id).
pub(crate) async fn lookup(
    State(state): State<AppState>,
    params: Result<Query<LookupParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let email = match params {
        Ok(Query(LookupParams { email: Some(e) })) if !e.is_empty() => e,
        Ok(_) => {
            return Err(ApiError::BadRequest(
                "missing query parameter 'email'".into(),
            ));
        }
        Err(e) => {
            return Err(ApiError::BadRequest(format!(
                "bad query string: {}",
                e.body_text()
            )));
        }
    };
    check_email(&email)?;
    let rows = run_query(&state, LOOKUP, vec![email]).await?;
    json(
        StatusCode::OK,
        &EmailList {
            emails: EmailRows(&rows),
        },
    )
}

/// The longest email the column holds (`varchar(255)`): a longer one cannot match.
const EMAIL_MAX_CHARS: usize = 255;

/// What PostgreSQL would refuse in a text parameter (NUL) or what cannot match is a 400,
/// answered before the database sees it.
fn check_email(email: &str) -> Result<(), ApiError> {
    if email.contains('\0') {
        return Err(ApiError::BadRequest(
            "'email' must not contain NUL characters".into(),
        ));
    }
    if email.chars().count() > EMAIL_MAX_CHARS {
        return Err(ApiError::BadRequest(format!(
            "'email' is longer than {EMAIL_MAX_CHARS} characters"
        )));
    }
    Ok(())
}

/// `POST /add_large/`: the write probe; inserts one row and returns it with 201.
pub(crate) async fn add_large(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    // The body is not used, but a chunked one over the limit is refused like a declared one.
    if let Err(e) = body {
        return Err(match e.status() {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge(state.inner.body_limit),
            _ => ApiError::BadRequest(e.body_text()),
        });
    }
    let n = state.inner.probes.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let tag = format!("{nanos}-{n}");
    let name = format!("Probe {tag}");
    let email = format!("probe{tag}@example.com");
    let rows = run_query(&state, ADD_LARGE, vec![name, email]).await?;
    let row = rows
        .first()
        .ok_or_else(|| ApiError::internal("INSERT returned no row"))?;
    json(StatusCode::CREATED, &EmailRow(row))
}

/// `GET /healthz`: whether the database answers.
pub(crate) async fn healthz(State(state): State<AppState>) -> Response {
    let checked = async {
        let mut conn = state.inner.db.checkout().await?;
        conn.query(HEALTH, &[]).await
    }
    .await;
    match checked {
        Ok(_) => json(StatusCode::OK, &serde_json::json!({ "status": "ok" }))
            .unwrap_or_else(IntoResponse::into_response),
        Err(e) => {
            let body = serde_json::json!({ "status": "unavailable", "error": e.message() });
            let mut response = json(e.status(), &body).unwrap_or_else(IntoResponse::into_response);
            e.attach_detail(&mut response);
            response
        }
    }
}

/// Unknown path: 404, or 301 to the slash-terminated route for `GET`/`HEAD`.
pub(crate) async fn not_found(method: Method, uri: Uri) -> Response {
    let path = uri.path();
    if (method == Method::GET || method == Method::HEAD)
        && SLASHED_ROUTES
            .iter()
            .any(|r| r.strip_suffix('/') == Some(path))
    {
        let location = match uri.query() {
            Some(q) => format!("{path}/?{q}"),
            None => format!("{path}/"),
        };
        if let Ok(location) = HeaderValue::from_str(&location) {
            return (
                StatusCode::MOVED_PERMANENTLY,
                [(header::LOCATION, location)],
            )
                .into_response();
        }
    }
    ApiError::NotFound(format!("no route for {path}")).into_response()
}

/// Known path, wrong method: 405 (axum adds the `Allow` header).
pub(crate) async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    ApiError::MethodNotAllowed(format!("method {method} not allowed on {}", uri.path()))
        .into_response()
}
