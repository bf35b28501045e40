//! The demo application's HTTP API: the Django peer's views over `small_email` and
//! `large_email`, served by axum over a deadpool-postgres pool.
//!
//! | route | answer |
//! |---|---|
//! | `GET /list_large/`, `GET /list_small/` | `{"emails": [{"id", "name", "email"}, ...]}`, first 100 rows by id |
//! | `GET /lookup/?email=E` | the rows whose email is `E` (first 100 by id); 400 without `email` |
//! | `POST /add_large/` | inserts `Probe <tag>` / `probe<tag>@example.com`, returns it with 201 |
//! | `GET /healthz` | `{"status": "ok"}`, or 503 when the database cannot be reached |
//! | `GET /` | `{"app", "routes": [{"method", "path", "description"}, ...]}`: this table |
//!
//! Every error is JSON, `{"error": "..."}`: 400 (a missing parameter, or one the database
//! would refuse or can never match: NUL, longer than the column), 404 (with a 301 to the
//! slash-terminated route for `GET /list_large` and friends, like Django's
//! `APPEND_SLASH`), 405, 413 for bodies over the limit, 500 (in our words: the driver's
//! and the database's error text goes to the request log, [`RequestLog::error`], never
//! to the client), 503 when the database is down or every connection is busy, 504 when a
//! request outlives the request timeout. The server keeps running while the database is
//! down and recovers by itself: dead connections are dropped from the pool and new ones
//! are opened on demand. When the database comes back somewhere else (another port, a
//! new password), [`ServeOptions::retarget`] tells the server where: it looks the target
//! up again when it cannot connect, and moves its pool there.
//!
//! Hostile clients cannot starve the others: at most [`ServeOptions::max_connections`]
//! are open at once (kept below the open-file limit, which is raised toward its hard
//! limit when too low); the next ones get a 503 and are closed. A client must send its
//! request head within [`ServeOptions::header_timeout`] and may stay silent between
//! requests for [`ServeOptions::idle_timeout`]; past either its connection is closed.
//!
//! A request that times out (or whose client goes away) while its query runs cancels the
//! query on the server and discards the connection, so a query stuck behind a migration's
//! lock never blocks the next request that would have reused the connection. With
//! [`ServeOptions::cancel_abandoned_queries`] off (`pgcalm serve
//! --keep-abandoned-queries`) such a request keeps its connection until its query
//! finishes instead, the way the seed's Django app on gunicorn sync workers keeps a
//! worker busy with a request whose client gave up: the lab uses it to show a shared
//! pool running out of connections.
//!
//! ```no_run
//! # async fn demo(target: &pgcalm_pg::Target) -> Result<(), pgcalm_demo::ServeError> {
//! use pgcalm_demo::{ServeOptions, Server};
//! let server = Server::bind(target, ServeOptions::default()).await?;
//! eprintln!("listening on http://{}", server.local_addr());
//! server.run(async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(()) }
//! ```

mod api;
mod background;
mod conn;
mod db;
mod error;
mod nofile;

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use pgcalm_pg::Target;
use tokio::net::TcpListener;

/// HTTP method and version, as found in [`RequestLog`].
pub use axum::http::{Method, Version};
pub use background::{
    LOCK_FILE, LOG_FILE, RECORD_FILE, ServeRecord, StoppedServe, delete_background_dir,
    stop_background,
};
pub use error::ServeError;

use self::db::{Database, PoolSettings};
use self::error::{ApiError, ErrorDetail};

/// Default port (the seed's safe project).
pub const DEFAULT_PORT: u16 = 8001;
/// Default connection pool size. Measured on 2 cores (bench/README.md): more
/// connections than cores add context switches, not throughput.
pub const DEFAULT_POOL_SIZE: usize = 4;
/// Default HTTP request timeout.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Default request body limit. No route needs a body; this only bounds what is read.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;
/// Default cap on open client connections, lowered to fit the open-file limit when
/// that cannot be raised enough. An idle connection costs a few KB.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
/// Default time a client has to send a complete request head.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Default longest silence of a kept-alive connection between two requests.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// One line of the request log, given to [`ServeOptions::on_request`].
#[derive(Debug, Clone)]
pub struct RequestLog {
    /// HTTP method.
    pub method: Method,
    /// Path and query string.
    pub uri: String,
    /// HTTP version of the request.
    pub version: Version,
    /// Response status.
    pub status: u16,
    /// Time from receiving the request head to producing the response head.
    pub latency: Duration,
    /// What went wrong behind a 5xx answer, in the driver's or database's words (the
    /// client only gets a generic message).
    pub error: Option<String>,
}

/// Receives one [`RequestLog`] per request. Called on the request's task: hand the
/// record to a channel rather than doing I/O here.
pub type RequestLogger = Arc<dyn Fn(RequestLog) + Send + Sync>;

/// Looks the database's target up again, for [`ServeOptions::retarget`]; the error is
/// why it could not (the server keeps its current target then).
pub type Retarget = Arc<dyn Fn() -> Result<Target, String> + Send + Sync>;

/// How to serve.
#[derive(Clone)]
pub struct ServeOptions {
    /// Address to bind (loopback by default).
    pub bind: IpAddr,
    /// Port; 0 picks a free one (see [`Server::local_addr`]).
    pub port: u16,
    /// Maximum open database connections.
    pub pool_size: usize,
    /// Longest time a request may take; past it the answer is 504 and the query is
    /// cancelled.
    pub request_timeout: Duration,
    /// Largest request body accepted, in bytes; larger ones get 413.
    pub body_limit: usize,
    /// Most client connections open at once; further ones get a 503 and are closed.
    /// `None`: [`DEFAULT_MAX_CONNECTIONS`], or less if the open-file limit is lower. A
    /// value the open-file limit cannot hold is refused by [`Server::bind`].
    pub max_connections: Option<usize>,
    /// Time a client has to send a complete request head, from the accept for the first
    /// request and from the first byte for later ones; past it the connection is closed.
    pub header_timeout: Duration,
    /// Longest silence of a kept-alive connection between two requests (or while a
    /// response waits for a client that stopped reading); past it the connection is
    /// closed.
    pub idle_timeout: Duration,
    /// Request log sink, if any.
    pub on_request: Option<RequestLogger>,
    /// Cancel the query of a request whose client gave up (or that timed out) and free
    /// its connection (default). Off: the query runs to its end and holds its
    /// connection meanwhile, like a sync worker of the seed's app.
    pub cancel_abandoned_queries: bool,
    /// How an abandoned query is ended: a cancel request, then its connection closed
    /// (default), or, off, its connection only closed. Never a cancel request when the
    /// connections are found to go through a pooler (the first checkout asks, see
    /// `db.rs`): PgBouncer before 1.20 (Debian 12 ships 1.18) can crash when the client
    /// of a cancel request closes before the request is done (pgbouncer/pgbouncer#801);
    /// closing the client connection frees the pooler's server connection just the same
    /// (PgBouncer closes it), and the server ends the query when it next writes to it.
    pub send_cancel_requests: bool,
    /// Where the database is now, asked when a connection cannot be opened: a target
    /// that differs from the one in use (another port or password) replaces it. `None`:
    /// the target never moves (the pool still reconnects when the server returns).
    pub retarget: Option<Retarget>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: DEFAULT_PORT,
            pool_size: DEFAULT_POOL_SIZE,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            body_limit: DEFAULT_BODY_LIMIT,
            max_connections: None,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            on_request: None,
            cancel_abandoned_queries: true,
            send_cancel_requests: true,
            retarget: None,
        }
    }
}

impl std::fmt::Debug for ServeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeOptions")
            .field("bind", &self.bind)
            .field("port", &self.port)
            .field("pool_size", &self.pool_size)
            .field("request_timeout", &self.request_timeout)
            .field("body_limit", &self.body_limit)
            .field("max_connections", &self.max_connections)
            .field("header_timeout", &self.header_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("on_request", &self.on_request.is_some())
            .field("cancel_abandoned_queries", &self.cancel_abandoned_queries)
            .field("send_cancel_requests", &self.send_cancel_requests)
            .field("retarget", &self.retarget.is_some())
            .finish()
    }
}

/// A bound, not yet running server.
pub struct Server {
    listener: TcpListener,
    addr: SocketAddr,
    router: Router,
    db: Arc<Database>,
    limits: conn::Limits,
}

impl Server {
    /// Binds the listening socket and prepares the connection pool. No database
    /// connection is opened yet: the server starts even when the database is down.
    pub async fn bind(target: &Target, opts: ServeOptions) -> Result<Server, ServeError> {
        if opts.pool_size == 0 {
            return Err(ServeError::InvalidOptions(
                "--pool-size must be positive".into(),
            ));
        }
        for (flag, value) in [
            ("--request-timeout", opts.request_timeout),
            ("--header-timeout", opts.header_timeout),
            ("--idle-timeout", opts.idle_timeout),
        ] {
            if value.is_zero() {
                return Err(ServeError::InvalidOptions(format!(
                    "{flag} must be positive"
                )));
            }
        }
        let max_connections = nofile::connection_cap(
            opts.max_connections,
            DEFAULT_MAX_CONNECTIONS,
            opts.pool_size + conn::REFUSALS_AT_ONCE,
        )?;
        let limits = conn::Limits {
            max_connections,
            header_timeout: opts.header_timeout,
            idle_timeout: opts.idle_timeout,
        };
        let db = Arc::new(Database::new(
            target,
            PoolSettings {
                size: opts.pool_size,
                request_timeout: opts.request_timeout,
                send_cancel_requests: opts.send_cancel_requests,
            },
            opts.retarget.clone(),
        )?);
        let addr = SocketAddr::new(opts.bind, opts.port);
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| ServeError::Bind { addr, source })?;
        let router = router(db.clone(), &opts);
        Ok(Server {
            listener,
            addr,
            router,
            db,
            limits,
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The cap on open connections in force ([`ServeOptions::max_connections`], or the
    /// default fitted to the open-file limit).
    pub fn max_connections(&self) -> usize {
        self.limits.max_connections
    }

    /// Checks that the database answers and has the demo tables, for a startup hint.
    /// The server runs either way.
    pub async fn check_database(&self) -> Result<(), ServeError> {
        db::check_tables(&self.db).await
    }

    /// Serves until `shutdown` completes, then stops accepting connections, closes the
    /// connections that are between requests, lets the requests in flight finish (each
    /// is bounded by the request timeout) and closes the pool.
    pub async fn run<F>(self, shutdown: F) -> Result<(), ServeError>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        conn::serve(self.listener, self.router, self.limits, shutdown).await;
        self.db.close();
        Ok(())
    }
}

/// Settings the per-request middleware needs.
#[derive(Clone)]
struct Frame {
    request_timeout: Duration,
    body_limit: usize,
    on_request: Option<RequestLogger>,
}

fn router(db: Arc<Database>, opts: &ServeOptions) -> Router {
    let frame = Frame {
        request_timeout: opts.request_timeout,
        body_limit: opts.body_limit,
        on_request: opts.on_request.clone(),
    };
    Router::new()
        .route("/", get(api::routes))
        .route("/list_large/", get(api::list_large))
        .route("/list_small/", get(api::list_small))
        .route("/lookup/", get(api::lookup))
        .route("/add_large/", post(api::add_large))
        .route("/healthz", get(api::healthz))
        .fallback(api::not_found)
        .method_not_allowed_fallback(api::method_not_allowed)
        .with_state(api::AppState::new(
            db,
            opts.body_limit,
            opts.cancel_abandoned_queries,
        ))
        .layer(DefaultBodyLimit::max(opts.body_limit))
        .layer(middleware::from_fn_with_state(frame, frame_request))
}

/// Around every request: refuse oversized bodies up front, bound the time, log.
async fn frame_request(State(frame): State<Frame>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let log = frame
        .on_request
        .as_ref()
        .map(|_| (req.method().clone(), req.uri().to_string(), req.version()));
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut response = match declared {
        Some(len) if len > frame.body_limit as u64 => {
            ApiError::PayloadTooLarge(frame.body_limit).into_response()
        }
        _ => match tokio::time::timeout(frame.request_timeout, next.run(req)).await {
            Ok(response) => response,
            Err(_) => ApiError::Timeout(frame.request_timeout).into_response(),
        },
    };
    let error = response
        .extensions_mut()
        .remove::<ErrorDetail>()
        .map(|d| d.0);
    if let (Some(sink), Some((method, uri, version))) = (&frame.on_request, log) {
        sink(RequestLog {
            method,
            uri,
            version,
            status: response.status().as_u16(),
            latency: started.elapsed(),
            error,
        });
    }
    response
}
