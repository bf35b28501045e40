//! Sessions and lock waits: who blocks a backend (`pg_blocking_pids`) and who queues
//! behind it ([`lock_queue`]), who holds an advisory lock, whether a backend is still
//! alive. Used by the migration runner to name the sessions its statement waits for, to
//! count the application's sessions queued behind it, and to end blockers idle in a
//! transaction ([`terminate_idle_blocker`]); and by `monitor`.

use std::time::Duration;

use serde::Serialize;
use tokio_postgres::Client;
use tokio_postgres::types::Type;

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

/// A session that blocks another, with what the runner needs to word it and to judge it
/// under its cancellation policy.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Blocker {
    /// The session (pid, application, state, transaction age, query).
    #[serde(flatten)]
    pub session: SessionInfo,
    /// An autovacuum worker (`backend_type`): it yields to a lock request that conflicts
    /// with it (the server cancels it after `deadlock_timeout`) unless it runs to
    /// prevent wraparound (its query then says so).
    pub autovacuum: bool,
    /// Seconds in its current state (`now() - state_change`): how long it has sat idle
    /// in its transaction, or run its query.
    pub state_secs: Option<f64>,
}

impl Blocker {
    /// Idle inside an open transaction (`idle in transaction`, also `(aborted)`): it
    /// holds its locks and does nothing.
    pub fn idle_in_transaction(&self) -> bool {
        self.session
            .state
            .as_deref()
            .is_some_and(|s| s.starts_with("idle in transaction"))
    }

    /// An autovacuum that runs to prevent transaction id wraparound: it does not yield.
    pub fn prevents_wraparound(&self) -> bool {
        self.autovacuum
            && self
                .session
                .query
                .as_deref()
                .is_some_and(|q| q.contains("to prevent wraparound"))
    }
}

/// Sessions waiting behind a backend's lock, by what they wait to do. From the lock mode
/// each one waits for: ACCESS SHARE is a read; ROW SHARE (`SELECT ... FOR UPDATE`), ROW
/// EXCLUSIVE and row locks are writes; anything stronger (DDL, maintenance) is other.
/// A session whose wait shows no lock mode is judged by its query's first word.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Queued {
    /// Reads (`SELECT`).
    pub reads: u32,
    /// Writes (`INSERT`, `UPDATE`, `DELETE`, `SELECT ... FOR UPDATE`).
    pub writes: u32,
    /// Other statements (DDL, VACUUM, another migration).
    pub other: u32,
}

impl Queued {
    /// Nobody waits.
    pub fn is_empty(&self) -> bool {
        self.reads + self.writes + self.other == 0
    }
}

/// Around one backend's locks, sampled in one query: the sessions it waits for, and the
/// sessions that wait for it.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct LockQueue {
    /// The sessions the backend waits for (empty when it waits for no lock), oldest
    /// transaction first.
    pub blockers: Vec<Blocker>,
    /// The sessions of its database waiting for it: for a lock it holds, or queued behind
    /// the lock it waits for (PostgreSQL queues a conflicting request behind a waiting
    /// one).
    pub queued: Queued,
}

const BLOCKER_COLUMNS: &str = "a.backend_type = 'autovacuum worker',
       extract(epoch FROM now() - a.state_change)::float8";

fn blocker_from_row(r: &tokio_postgres::Row) -> Blocker {
    Blocker {
        session: session_from_row(r),
        autovacuum: r.get(7),
        state_secs: r.get(8),
    }
}

/// The [`LockQueue`] of backend `pid`, in one round trip (an unnamed statement, so it
/// is safe through a transaction pooler). Call it from a second connection while `pid`
/// runs a statement.
pub async fn lock_queue(client: &Client, pid: i32) -> Result<LockQueue, PgError> {
    let sql = format!(
        "WITH blocking AS (SELECT pg_blocking_pids($1) AS pids),
         ungranted AS (
             SELECT DISTINCT ON (pid) pid, mode, locktype FROM pg_locks WHERE NOT granted
         ), waiting AS (
             SELECT CASE
                      WHEN l.mode = 'AccessShareLock' THEN 'read'
                      WHEN l.mode IN ('RowShareLock', 'RowExclusiveLock')
                        OR l.locktype IN ('transactionid', 'tuple') THEN 'write'
                      WHEN l.mode IS NOT NULL THEN 'other'
                      WHEN w.query ~* '^\\s*(select|table|values)\\M' THEN 'read'
                      WHEN w.query ~* '^\\s*(insert|update|delete|merge)\\M' THEN 'write'
                      ELSE 'other'
                    END AS kind
               FROM pg_stat_activity w
               LEFT JOIN ungranted l ON l.pid = w.pid
              WHERE w.datname = current_database() AND w.wait_event_type = 'Lock'
                AND w.pid <> $1 AND $1 = ANY (pg_blocking_pids(w.pid))
         ), queued AS (
             SELECT count(*) FILTER (WHERE kind = 'read')::int4 AS reads,
                    count(*) FILTER (WHERE kind = 'write')::int4 AS writes,
                    count(*) FILTER (WHERE kind = 'other')::int4 AS other
               FROM waiting
         )
         SELECT {SESSION_COLUMNS}, {BLOCKER_COLUMNS}, q.reads, q.writes, q.other
           FROM queued q
           LEFT JOIN pg_stat_activity a ON a.pid = ANY ((SELECT pids FROM blocking)::int4[])
          ORDER BY a.xact_start NULLS LAST, a.pid"
    );
    let rows = client
        .query_typed(&sql, &[(&pid, Type::INT4)])
        .await
        .map_err(PgError::query(format!(
            "looking up the sessions that block pid {pid} and those queued behind it"
        )))?;
    let mut queue = LockQueue::default();
    for r in &rows {
        queue.queued = Queued {
            reads: r.get::<_, i32>(9) as u32,
            writes: r.get::<_, i32>(10) as u32,
            other: r.get::<_, i32>(11) as u32,
        };
        if r.get::<_, Option<i32>>(0).is_some() {
            queue.blockers.push(blocker_from_row(r));
        }
    }
    Ok(queue)
}

/// Ends session `blocker` (`pg_terminate_backend`) if, at this moment, it still blocks
/// backend `waiter` and has sat idle in its transaction for longer than `idle_longer_than`;
/// the check and the termination are one statement. Returns the session as it was when
/// ended, or None when it no longer qualifies (it moved on, or is gone). A cancel request
/// (`pg_cancel_backend`) would not do: a backend idle in a transaction is reading the
/// next command, and PostgreSQL ignores a cancel request there, so the transaction and
/// its locks would stay. Fails when the role may not signal that session (it needs to be
/// the same role, a member of `pg_signal_backend`, or superuser for a superuser's session).
pub async fn terminate_idle_blocker(
    client: &Client,
    waiter: i32,
    blocker: i32,
    idle_longer_than: Duration,
) -> Result<Option<Blocker>, PgError> {
    let sql = format!(
        "SELECT {SESSION_COLUMNS}, {BLOCKER_COLUMNS}, pg_terminate_backend(a.pid)
           FROM pg_stat_activity a
          WHERE a.pid = $2 AND a.pid = ANY ((SELECT pg_blocking_pids($1))::int4[])
            AND a.state IN ('idle in transaction', 'idle in transaction (aborted)')
            AND now() - a.state_change > make_interval(secs => $3)"
    );
    let row = client
        .query_typed_opt(
            &sql,
            &[
                (&waiter, Type::INT4),
                (&blocker, Type::INT4),
                (&idle_longer_than.as_secs_f64(), Type::FLOAT8),
            ],
        )
        .await
        .map_err(PgError::query(format!(
            "ending session {blocker}, idle in a transaction that blocks pid {waiter}"
        )))?;
    Ok(row.as_ref().map(blocker_from_row))
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

/// The session holding the advisory lock `key` (a single `bigint` key, as taken by
/// `pg_advisory_lock(key)` or `pg_advisory_xact_lock(key)`) in the current database, if
/// any. One round trip (an unnamed statement): safe through a transaction pooler.
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
        .query_typed_opt(&sql, &[(&key, Type::INT8)])
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

/// Whether the relation `table` (possibly schema-qualified, on the search path) has a
/// column named `column`. False when the relation does not exist. Unlike a probe query,
/// it never fails, so it may run inside a transaction that must go on.
pub async fn column_exists(client: &Client, table: &str, column: &str) -> Result<bool, PgError> {
    let row = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_attribute
                             WHERE attrelid = to_regclass($1) AND attname = $2
                               AND attnum > 0 AND NOT attisdropped)",
            &[&table, &column],
        )
        .await
        .map_err(PgError::query(format!(
            "checking whether {table} has a column {column}"
        )))?;
    Ok(row.get(0))
}
