//! Sessions and lock waits: who blocks a backend (`pg_blocking_pids`), who holds an
//! advisory lock, whether a backend is still alive. Used by the migration runner to
//! name the session that made a statement time out, and by `monitor`.

use serde::Serialize;
use tokio_postgres::Client;

use crate::error::PgError;

/// A session as `pg_stat_activity` shows it, trimmed to what a person needs to decide
/// whether to wait for it or cancel it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SessionInfo {
    /// Backend pid.
    pub pid: i32,
    /// `application_name` (may be empty).
    pub application_name: String,
    /// `usename`.
    pub user: Option<String>,
    /// `state` (`active`, `idle in transaction`, ...).
    pub state: Option<String>,
    /// The session's current or last query, first 200 characters.
    pub query: Option<String>,
    /// Seconds since its transaction began, if it is in one.
    pub xact_age_secs: Option<f64>,
    /// `wait_event_type` (e.g. `Lock`).
    pub wait_event_type: Option<String>,
}

const SESSION_COLUMNS: &str = "a.pid, coalesce(a.application_name, ''), a.usename::text, a.state,
       left(a.query, 200), extract(epoch FROM now() - a.xact_start)::float8, a.wait_event_type";

fn session_from_row(r: &tokio_postgres::Row) -> SessionInfo {
    SessionInfo {
        pid: r.get(0),
        application_name: r.get(1),
        user: r.get(2),
        state: r.get(3),
        query: r.get(4),
        xact_age_secs: r.get(5),
        wait_event_type: r.get(6),
    }
}

/// The sessions that block backend `pid` right now (`pg_blocking_pids`), empty when it
/// waits for nothing. Call it from a second connection while `pid` runs a statement.
pub async fn blocking_sessions(client: &Client, pid: i32) -> Result<Vec<SessionInfo>, PgError> {
    let sql = format!(
        "SELECT {SESSION_COLUMNS}
           FROM pg_stat_activity a
          WHERE a.pid = ANY (pg_blocking_pids($1))
          ORDER BY a.xact_start NULLS LAST, a.pid"
    );
    let rows = client
        .query(&sql, &[&pid])
        .await
        .map_err(PgError::query(format!(
            "looking up the sessions that block pid {pid}"
        )))?;
    Ok(rows.iter().map(session_from_row).collect())
}

/// The session with backend `pid`, if it is still connected.
pub async fn session(client: &Client, pid: i32) -> Result<Option<SessionInfo>, PgError> {
    let sql = format!("SELECT {SESSION_COLUMNS} FROM pg_stat_activity a WHERE a.pid = $1");
    let row = client
        .query_opt(&sql, &[&pid])
        .await
        .map_err(PgError::query(format!("looking up session {pid}")))?;
    Ok(row.as_ref().map(session_from_row))
}

/// The sessions of the current database whose `application_name` starts with `prefix`
/// (this connection left out), oldest first: what `showmigrations` reads to find the
/// migration runner's sessions and the statement each one is running.
pub async fn sessions_named(client: &Client, prefix: &str) -> Result<Vec<SessionInfo>, PgError> {
    let sql = format!(
        "SELECT {SESSION_COLUMNS}
           FROM pg_stat_activity a
          WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()
            AND starts_with(a.application_name, $1)
          ORDER BY a.backend_start, a.pid"
    );
    let rows = client
        .query(&sql, &[&prefix])
        .await
        .map_err(PgError::query(format!(
            "looking up the sessions named {prefix:?}..."
        )))?;
    Ok(rows.iter().map(session_from_row).collect())
}

/// Whether the server can notice a client that went away while a statement runs
/// (`client_connection_check_interval`, PostgreSQL 14 and later).
pub async fn checks_client_connection(client: &Client) -> Result<bool, PgError> {
    let row = client
        .query_one(
            "SELECT current_setting('server_version_num')::int >= 140000",
            &[],
        )
        .await
        .map_err(PgError::query("reading the server version"))?;
    Ok(row.get(0))
}

/// The session holding the session-level advisory lock `key` (a single `bigint` key, as
/// taken by `pg_advisory_lock(key)`) in the current database, if any.
pub async fn advisory_lock_holder(
    client: &Client,
    key: i64,
) -> Result<Option<SessionInfo>, PgError> {
    // A bigint key is stored as classid = high 32 bits, objid = low 32 bits, objsubid = 1.
    let sql = format!(
        "SELECT {SESSION_COLUMNS}
           FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
          WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
            AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
            AND l.classid = (($1::bigint >> 32) & 4294967295)::bigint::oid
            AND l.objid = ($1::bigint & 4294967295)::oid
          LIMIT 1"
    );
    let row = client
        .query_opt(&sql, &[&key])
        .await
        .map_err(PgError::query(
            "looking up the holder of the migration runner lock",
        ))?;
    Ok(row.as_ref().map(session_from_row))
}

/// This connection's backend pid.
pub async fn backend_pid(client: &Client) -> Result<i32, PgError> {
    let row = client
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .map_err(PgError::query("reading the backend pid"))?;
    Ok(row.get(0))
}

/// This session's TLS protocol (`TLSv1.3`) from `pg_stat_ssl`, or None when it is not
/// encrypted.
pub async fn session_tls(client: &Client) -> Result<Option<String>, PgError> {
    let row = client
        .query_opt(
            "SELECT version FROM pg_stat_ssl WHERE pid = pg_backend_pid() AND ssl",
            &[],
        )
        .await
        .map_err(PgError::query("reading the session's TLS state"))?;
    Ok(row.map(|r| r.get(0)))
}

/// Whether a relation (table, index, ...) with this possibly schema-qualified name is
/// visible on the search path.
pub async fn relation_exists(client: &Client, name: &str) -> Result<bool, PgError> {
    let row = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&name])
        .await
        .map_err(PgError::query(format!("checking whether {name} exists")))?;
    Ok(row.get(0))
}
