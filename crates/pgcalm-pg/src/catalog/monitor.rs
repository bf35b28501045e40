//! What `pgcalm monitor` shows and the lab records during migrations: one
//! [`DatabaseSnapshot`] per sample, with sessions (`pg_stat_activity`), lock waits and
//! their blockers (`pg_locks`, `pg_blocking_pids`), index builds (the same query as the
//! migration runner's progress bar, [`super::progress`]) and the other progress views
//! (`pg_stat_progress_cluster` / `_vacuum` / `_analyze`). The monitor's own session is
//! left out of everything. Needs PostgreSQL 14+ (`pg_locks.waitstart`).

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio_postgres::{Client, Statement};

use super::progress::{IndexBuildProgress, index_builds_sql, progress_from_row};
use crate::error::PgError;

/// A client session of the current database, as a person deciding whether to wait for
/// it or cancel it needs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionActivity {
    /// Backend pid.
    pub pid: i32,
    /// `application_name` (may be empty).
    pub application_name: String,
    /// `usename`.
    pub user: Option<String>,
    /// `active`, `idle`, `idle in transaction`, ...
    pub state: Option<String>,
    /// `wait_event_type` (`Lock`, `IO`, `Client`, ...), None when not waiting.
    pub wait_event_type: Option<String>,
    /// `wait_event` (`relation`, `ClientRead`, ...).
    pub wait_event: Option<String>,
    /// Seconds in the current state (running this query, idle, idle in transaction).
    pub state_secs: Option<f64>,
    /// Seconds since its transaction began, if it is in one.
    pub xact_secs: Option<f64>,
    /// Current or last query, first 200 characters, whitespace collapsed.
    pub query: Option<String>,
}

/// A session waiting for a lock, what it wants, and who is in the way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockWait {
    /// Waiting backend.
    pub pid: i32,
    /// Its `application_name`.
    pub application_name: String,
    /// `relation`, `transactionid`, `advisory`, ...
    pub locktype: String,
    /// Mode wanted (`AccessExclusiveLock`, `ShareLock`, ...).
    pub mode: String,
    /// Relation, for relation locks.
    pub relation: Option<String>,
    /// Sessions that block it (`pg_blocking_pids`): holders and waiters queued ahead,
    /// each once (a parallel query's workers count as their leader).
    pub blocked_by: Vec<i32>,
    /// Seconds it has waited.
    pub waiting_secs: Option<f64>,
    /// The waiting query, first 200 characters.
    pub query: Option<String>,
}

/// A running VACUUM, CLUSTER / VACUUM FULL or ANALYZE.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaintenanceProgress {
    /// Backend.
    pub pid: i32,
    /// `VACUUM`, `CLUSTER`, `VACUUM FULL`, `ANALYZE`.
    pub command: String,
    /// Table.
    pub table: Option<String>,
    /// Phase as PostgreSQL names it.
    pub phase: String,
    /// Blocks done in this phase.
    pub blocks_done: i64,
    /// Blocks to do in this phase (0 when unknown).
    pub blocks_total: i64,
}

/// One sample of the database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatabaseSnapshot {
    /// When it was taken, Unix time in milliseconds.
    pub taken_at_ms: u64,
    /// How long the monitor's own queries took, milliseconds.
    pub query_ms: f64,
    /// Client sessions of this database, longest-running first (the monitor excluded).
    pub sessions: Vec<SessionActivity>,
    /// Sessions waiting for a lock, longest wait first.
    pub lock_waits: Vec<LockWait>,
    /// `CREATE INDEX` / `REINDEX` in flight.
    pub index_builds: Vec<IndexBuildProgress>,
    /// VACUUM / CLUSTER / ANALYZE in flight.
    pub maintenance: Vec<MaintenanceProgress>,
}

const SESSIONS_SQL: &str = "
SELECT a.pid, coalesce(a.application_name, ''), a.usename::text, a.state,
       a.wait_event_type, a.wait_event,
       extract(epoch FROM now() - a.state_change)::float8,
       extract(epoch FROM now() - a.xact_start)::float8,
       left(regexp_replace(a.query, '\\s+', ' ', 'g'), 200)
  FROM pg_stat_activity a
 WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()
   AND a.backend_type = 'client backend'
 ORDER BY a.state = 'idle', a.xact_start NULLS LAST, a.pid";

const LOCK_WAITS_SQL: &str = "
SELECT w.pid, coalesce(a.application_name, ''), w.locktype, w.mode,
       CASE WHEN w.relation IS NOT NULL THEN w.relation::regclass::text END,
       pg_blocking_pids(w.pid),
       extract(epoch FROM now() - w.waitstart)::float8,
       left(regexp_replace(a.query, '\\s+', ' ', 'g'), 200)
  FROM pg_locks w JOIN pg_stat_activity a ON a.pid = w.pid
 WHERE NOT w.granted AND a.datname = current_database() AND w.pid <> pg_backend_pid()
 ORDER BY w.waitstart NULLS LAST, w.pid";

const MAINTENANCE_SQL: &str = "
SELECT pid, 'VACUUM', relid::regclass::text, phase, heap_blks_scanned, heap_blks_total
  FROM pg_stat_progress_vacuum WHERE datname = current_database()
UNION ALL
SELECT pid, command, relid::regclass::text, phase, heap_blks_scanned, heap_blks_total
  FROM pg_stat_progress_cluster WHERE datname = current_database()
UNION ALL
SELECT pid, 'ANALYZE', relid::regclass::text, phase, sample_blks_scanned, sample_blks_total
  FROM pg_stat_progress_analyze WHERE datname = current_database()
ORDER BY 1";

/// Prepared statements for repeated snapshots on one connection (parsed once, so a
/// sample costs one round trip of four pipelined queries).
#[derive(Debug, Clone)]
pub struct DatabaseMonitor {
    sessions: Statement,
    lock_waits: Statement,
    index_builds: Statement,
    maintenance: Statement,
}

impl DatabaseMonitor {
    /// Prepares the monitor's queries on `client`.
    pub async fn prepare(client: &Client) -> Result<Self, PgError> {
        let index_sql = index_builds_sql();
        let (sessions, lock_waits, index_builds, maintenance) = futures_util::try_join!(
            client.prepare(SESSIONS_SQL),
            client.prepare(LOCK_WAITS_SQL),
            client.prepare(&index_sql),
            client.prepare(MAINTENANCE_SQL),
        )
        .map_err(PgError::query("preparing the monitor's queries"))?;
        Ok(Self {
            sessions,
            lock_waits,
            index_builds,
            maintenance,
        })
    }

    /// Takes one sample. `client` must be the connection this was prepared on.
    pub async fn snapshot(&self, client: &Client) -> Result<DatabaseSnapshot, PgError> {
        let started = Instant::now();
        let taken_at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64;
        let (sessions, lock_waits, index_builds, maintenance) = futures_util::try_join!(
            client.query(&self.sessions, &[]),
            client.query(&self.lock_waits, &[]),
            client.query(&self.index_builds, &[]),
            client.query(&self.maintenance, &[]),
        )
        .map_err(PgError::query("sampling sessions, locks and progress"))?;
        let query_ms = started.elapsed().as_secs_f64() * 1000.0;
        Ok(DatabaseSnapshot {
            taken_at_ms,
            query_ms,
            sessions: sessions
                .iter()
                .map(|r| SessionActivity {
                    pid: r.get(0),
                    application_name: r.get(1),
                    user: r.get(2),
                    state: r.get(3),
                    wait_event_type: r.get(4),
                    wait_event: r.get(5),
                    state_secs: age(r, 6),
                    xact_secs: age(r, 7),
                    query: r.get(8),
                })
                .collect(),
            lock_waits: lock_waits
                .iter()
                .map(|r| LockWait {
                    pid: r.get(0),
                    application_name: r.get(1),
                    locktype: r.get(2),
                    mode: r.get(3),
                    relation: r.get(4),
                    blocked_by: sessions_once(r.get(5)),
                    waiting_secs: age(r, 6),
                    query: r.get(7),
                })
                .collect(),
            index_builds: index_builds.iter().map(progress_from_row).collect(),
            maintenance: maintenance
                .iter()
                .map(|r| MaintenanceProgress {
                    pid: r.get(0),
                    command: r.get(1),
                    table: r.get(2),
                    phase: r.get(3),
                    blocks_done: r.get(4),
                    blocks_total: r.get(5),
                })
                .collect(),
        })
    }
}

/// `pg_blocking_pids` with each session once: it names a parallel query's leader once
/// per process (leader and workers each hold the lock), `{4242,4242,4242}`.
fn sessions_once(mut pids: Vec<i32>) -> Vec<i32> {
    let mut seen = std::collections::HashSet::new();
    pids.retain(|pid| seen.insert(*pid));
    pids
}

/// Seconds since a timestamp, from `now()`: the start of the monitor's own statement,
/// which can be a moment before another session's last state change, so clamped at 0.
fn age(r: &tokio_postgres::Row, column: usize) -> Option<f64> {
    r.get::<_, Option<f64>>(column).map(|s| s.max(0.0))
}

/// One sample without keeping prepared statements (for a single look; use
/// [`DatabaseMonitor`] to sample repeatedly).
pub async fn snapshot(client: &Client) -> Result<DatabaseSnapshot, PgError> {
    DatabaseMonitor::prepare(client)
        .await?
        .snapshot(client)
        .await
}
