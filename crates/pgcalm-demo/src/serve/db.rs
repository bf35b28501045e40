//! Pooled connections for requests: prepared statements cached per connection when the
//! connections keep their server sessions, unnamed ones through a transaction pooler
//! such as PgBouncer (found out once per target, [`Statements`]), a guard that cancels a
//! query whose request was dropped mid-flight, and a database that follows its server
//! when it moves.
//!
//! [`Database`] holds the pool of the current target. When opening a connection fails
//! (refused, password rejected, timed out) and [`ServeOptions::retarget`] is set, it asks
//! for the target again (at most every [`RETARGET_INTERVAL`]); a different one (the
//! embedded cluster recreated with a new password, or started on another port) gets a
//! new pool, the old one is closed, and the request tries once more. Without it, or
//! while the target stays the same, the pool heals by itself when the server returns.
//!
//! [`ServeOptions::retarget`]: super::ServeOptions::retarget

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use deadpool_postgres::{
    Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime, TimeoutType,
};
use pgcalm_pg::catalog::session_pooling;
use pgcalm_pg::{Target, TlsConnector};
use tokio::sync::OnceCell;
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{ToSql, Type};

use super::Retarget;
use super::error::{ApiError, ServeError};

/// Shortest time between two lookups of the target, so a server that is down costs one
/// lookup per interval, not one per request.
pub(crate) const RETARGET_INTERVAL: Duration = Duration::from_millis(200);

/// How the pool is built, whatever the target.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PoolSettings {
    pub(crate) size: usize,
    pub(crate) request_timeout: Duration,
    /// See [`super::ServeOptions::send_cancel_requests`].
    pub(crate) send_cancel_requests: bool,
}

/// How queries are sent on a target's connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Statements {
    /// Named prepared statements, cached per connection (parsed and planned once per
    /// connection): the connections keep their server sessions.
    Prepared,
    /// Unnamed statements (parse, bind, execute in one round trip, nothing left on the
    /// server connection): through a transaction pooler, where a named statement stays
    /// on the server connection it was prepared on, which the next transaction may not
    /// get (PgBouncer: `prepared statement "s0" does not exist`, or another client's
    /// `s0`). Also used while the check cannot be made.
    Unnamed,
}

/// Tells the session checks of one process apart.
static CHECKS: AtomicU64 = AtomicU64::new(0);

/// Whether `target`'s connections keep their server sessions
/// ([`pgcalm_pg::catalog::session_pooling`], what the migration runner asks too), on two
/// connections of its own.
async fn statements_for(target: &Target) -> Result<Statements, pgcalm_pg::PgError> {
    let name = format!(
        "pgcalm serve (session check {}-{})",
        std::process::id(),
        CHECKS.fetch_add(1, Ordering::Relaxed)
    );
    let first = target
        .with_application_name("pgcalm serve (session check)")
        .connect()
        .await?;
    let second = target.with_application_name(&name).connect().await?;
    let pooling = session_pooling(&first, &second, &name).await?;
    Ok(match pooling.may_lose_session() {
        true => Statements::Unnamed,
        false => Statements::Prepared,
    })
}

/// One target's pool.
struct Backend {
    pool: Pool,
    tls: TlsConnector,
    endpoint: Endpoint,
    target: Target,
    /// Found out on the first checkout ([`statements_for`]).
    statements: OnceCell<Statements>,
}

impl Backend {
    /// How to send queries here: found out once; [`Statements::Unnamed`] while that
    /// fails (the server is down: the request fails anyway, or the check is retried).
    async fn statements(&self) -> Statements {
        self.statements
            .get_or_try_init(|| statements_for(&self.target))
            .await
            .copied()
            .unwrap_or(Statements::Unnamed)
    }
}

/// What makes two targets the same server and login: hosts, ports, user, password,
/// database.
#[derive(Debug, PartialEq, Eq)]
struct Endpoint {
    hosts: Vec<String>,
    ports: Vec<u16>,
    user: Option<String>,
    password: Option<Vec<u8>>,
    dbname: Option<String>,
}

impl Endpoint {
    fn of(target: &Target) -> Endpoint {
        let config = target.config();
        Endpoint {
            hosts: config
                .get_hosts()
                .iter()
                .map(|h| format!("{h:?}"))
                .collect(),
            ports: config.get_ports().to_vec(),
            user: config.get_user().map(str::to_string),
            password: config.get_password().map(<[u8]>::to_vec),
            dbname: config.get_dbname().map(str::to_string),
        }
    }
}

/// The demo app's database: the current target's pool, and how to find the target again.
pub(crate) struct Database {
    current: RwLock<Arc<Backend>>,
    settings: PoolSettings,
    retarget: Option<Retarget>,
    /// When the target was last looked up.
    looked_up: Mutex<Option<Instant>>,
}

impl Database {
    /// The pool for `target`; no connection is opened yet.
    pub(crate) fn new(
        target: &Target,
        settings: PoolSettings,
        retarget: Option<Retarget>,
    ) -> Result<Database, ServeError> {
        Ok(Database {
            current: RwLock::new(Arc::new(backend(target, settings)?)),
            settings,
            retarget,
            looked_up: Mutex::new(None),
        })
    }

    fn current(&self) -> Arc<Backend> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Takes a connection from the pool (opening one if needed); when that fails to
    /// connect, follows the target if it moved and tries once more.
    pub(crate) async fn checkout(&self) -> Result<Checkout, ApiError> {
        let backend = self.current();
        match backend.pool.get().await {
            Ok(conn) => Ok(self.checkout_of(conn, &backend).await),
            Err(e) if cannot_connect(&e) && self.follow(&backend) => {
                let backend = self.current();
                let conn = backend
                    .pool
                    .get()
                    .await
                    .map_err(|e| ApiError::from_pool(&e))?;
                Ok(self.checkout_of(conn, &backend).await)
            }
            Err(e) => Err(ApiError::from_pool(&e)),
        }
    }

    async fn checkout_of(&self, conn: Object, backend: &Backend) -> Checkout {
        let statements = backend.statements().await;
        Checkout {
            conn: Some(conn),
            armed: false,
            tls: backend.tls.clone(),
            // Not through a pooler either (see `ServeOptions::send_cancel_requests`).
            send_cancel_request: self.settings.send_cancel_requests
                && statements == Statements::Prepared,
            statements,
        }
    }

    /// After `failed`'s pool could not connect: whether the pool now in use is another
    /// target's (looked up here, or by a request just before).
    fn follow(&self, failed: &Arc<Backend>) -> bool {
        let moved = |db: &Database| !Arc::ptr_eq(&db.current(), failed);
        let Some(retarget) = &self.retarget else {
            return false;
        };
        {
            let mut looked_up = self.looked_up.lock().unwrap_or_else(|e| e.into_inner());
            if looked_up.is_some_and(|at| at.elapsed() < RETARGET_INTERVAL) {
                return moved(self);
            }
            *looked_up = Some(Instant::now());
        }
        let Ok(target) = retarget() else {
            return moved(self);
        };
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        if !Arc::ptr_eq(&current, failed) {
            return true;
        }
        if Endpoint::of(&target) == current.endpoint {
            return false;
        }
        let Ok(fresh) = backend(&target, self.settings) else {
            return false;
        };
        let old = std::mem::replace(&mut *current, Arc::new(fresh));
        old.pool.close();
        true
    }

    /// Closes the pool (server shutdown).
    pub(crate) fn close(&self) {
        self.current().pool.close();
    }
}

/// Whether a pool error is a failure to open a connection (rather than every connection
/// being busy, or the pool closing).
fn cannot_connect(e: &PoolError) -> bool {
    matches!(
        e,
        PoolError::Backend(_) | PoolError::Timeout(TimeoutType::Create)
    )
}

fn backend(target: &Target, settings: PoolSettings) -> Result<Backend, ServeError> {
    let target = target.with_application_name("pgcalm serve");
    let mut config = target.config().clone();
    // A server that is down refuses at once; a host that does not answer must not hold a
    // request for longer than the request timeout.
    config.connect_timeout(settings.request_timeout.min(Duration::from_secs(5)));
    let manager = Manager::from_config(
        config,
        target.tls(),
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let pool = Pool::builder(manager)
        .max_size(settings.size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(settings.request_timeout))
        .create_timeout(Some(settings.request_timeout))
        .build()
        .map_err(|e| ServeError::InvalidOptions(format!("building the connection pool: {e}")))?;
    Ok(Backend {
        pool,
        tls: target.tls(),
        endpoint: Endpoint::of(&target),
        target,
        statements: OnceCell::new(),
    })
}

/// A connection checked out for one request.
///
/// While a query is in flight the checkout is "armed": if it is dropped in that state
/// (request timeout, client gone, shutdown), the query is cancelled on the server and the
/// connection is taken out of the pool instead of being handed, still busy, to the next
/// request. Otherwise it goes back to the pool as usual.
pub(crate) struct Checkout {
    conn: Option<Object>,
    armed: bool,
    /// The pool's TLS settings, for the cancel request.
    tls: TlsConnector,
    /// Whether an abandoned query gets a cancel request before its connection is closed.
    send_cancel_request: bool,
    /// Prepared or unnamed statements.
    statements: Statements,
}

impl Checkout {
    /// Runs `sql` with typed parameters, as a prepared statement cached on the
    /// connection or as an unnamed one ([`Statements`]).
    pub(crate) async fn query(
        &mut self,
        sql: &str,
        params: &[(&(dyn ToSql + Sync), Type)],
    ) -> Result<Vec<Row>, ApiError> {
        let conn = self.conn.as_ref().expect("checkout holds a connection");
        self.armed = true;
        let result = match self.statements {
            Statements::Unnamed => conn.query_typed(sql, params).await,
            Statements::Prepared => {
                let values: Vec<&(dyn ToSql + Sync)> = params.iter().map(|(v, _)| *v).collect();
                let types: Vec<Type> = params.iter().map(|(_, t)| t.clone()).collect();
                async {
                    let statement = conn.prepare_typed_cached(sql, &types).await?;
                    match conn.query(&statement, &values).await {
                        // A column changed type under a cached statement (a lab
                        // scenario does that): forget it, prepare again, retry once.
                        // Nothing ran yet.
                        Err(e) if is_stale_plan(&e) => {
                            conn.statement_cache.remove(sql, &types);
                            let statement = conn.prepare_typed_cached(sql, &types).await?;
                            conn.query(&statement, &values).await
                        }
                        other => other,
                    }
                }
                .await
            }
        };
        self.armed = false;
        result.map_err(|e| ApiError::from_db(&e))
    }
}

fn is_stale_plan(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&SqlState::FEATURE_NOT_SUPPORTED)
        && e.as_db_error().is_some_and(|db| {
            db.message()
                .contains("cached plan must not change result type")
        })
}

impl Drop for Checkout {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let Some(conn) = self.conn.take() else {
            return;
        };
        let client = Object::take(conn);
        if !self.send_cancel_request {
            drop(client);
            return;
        }
        let token = client.cancel_token();
        let tls = self.tls.clone();
        // Drop can run outside a runtime only if the runtime itself is gone; then the
        // connection dies with it anyway.
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let _ = token.cancel_query(tls).await;
                drop(client);
            });
        }
    }
}

/// Whether the demo tables answer (the server's start-up hint).
pub(crate) async fn check_tables(db: &Database) -> Result<(), ServeError> {
    let unavailable = |e: ApiError| ServeError::Database(e.log_text());
    let mut conn = db.checkout().await.map_err(unavailable)?;
    for table in ["small_email", "large_email"] {
        conn.query(&format!("SELECT 1 FROM {table} LIMIT 0"), &[])
            .await
            .map_err(unavailable)?;
    }
    Ok(())
}
