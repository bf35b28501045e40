//! Index builds in flight (`pg_stat_progress_create_index`, PG 12+) and the state of an
//! index by name: what the migration runner's progress bar and its invalid-index repair
//! read, and what `monitor` shows.

use serde::{Deserialize, Serialize};
use tokio_postgres::Client;
use tokio_postgres::types::Type;

use crate::error::PgError;

/// One row of `pg_stat_progress_create_index`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct IndexBuildProgress {
    /// Backend building the index.
    pub pid: i32,
    /// Table, schema-qualified when not on the search path.
    pub table: Option<String>,
    /// Index (None in the first phase of a non-concurrent build).
    pub index: Option<String>,
    /// `CREATE INDEX CONCURRENTLY`, `REINDEX`, ...
    pub command: String,
    /// `building index: scanning table`, `waiting for old snapshots`, ...
    pub phase: String,
    /// Sessions waited for in the current waiting phase.
    pub lockers_total: i64,
    /// Of which already gone.
    pub lockers_done: i64,
    /// The session being waited for now (0 when none).
    pub current_locker_pid: i64,
    /// Blocks to scan in this phase.
    pub blocks_total: i64,
    /// Blocks scanned.
    pub blocks_done: i64,
    /// Tuples to process in this phase.
    pub tuples_total: i64,
    /// Tuples processed.
    pub tuples_done: i64,
}

impl IndexBuildProgress {
    /// Work done in this phase, as (done, total, unit), picking the counter that moves:
    /// blocks while scanning, tuples while sorting/loading, lockers while waiting.
    pub fn counter(&self) -> Option<(i64, i64, &'static str)> {
        if self.blocks_total > 0 {
            Some((self.blocks_done, self.blocks_total, "blocks"))
        } else if self.tuples_total > 0 {
            Some((self.tuples_done, self.tuples_total, "tuples"))
        } else if self.lockers_total > 0 {
            Some((self.lockers_done, self.lockers_total, "lockers"))
        } else {
            None
        }
    }
}

const PROGRESS_SQL: &str =
    "SELECT p.pid, p.relid::regclass::text, nullif(p.index_relid, 0)::regclass::text,
        p.command, p.phase, p.lockers_total, p.lockers_done, p.current_locker_pid,
        p.blocks_total, p.blocks_done, p.tuples_total, p.tuples_done
   FROM pg_stat_progress_create_index p";

pub(super) fn progress_from_row(r: &tokio_postgres::Row) -> IndexBuildProgress {
    IndexBuildProgress {
        pid: r.get(0),
        table: r.get(1),
        index: r.get(2),
        command: r.get(3),
        phase: r.get(4),
        lockers_total: r.get(5),
        lockers_done: r.get(6),
        current_locker_pid: r.get(7),
        blocks_total: r.get(8),
        blocks_done: r.get(9),
        tuples_total: r.get(10),
        tuples_done: r.get(11),
    }
}

/// The index build backend `pid` is running, if any. One round trip (an unnamed
/// statement): safe through a transaction pooler, as the migration runner's monitor needs.
pub async fn index_build_progress(
    client: &Client,
    pid: i32,
) -> Result<Option<IndexBuildProgress>, PgError> {
    let row = client
        .query_typed_opt(
            &format!("{PROGRESS_SQL} WHERE p.pid = $1"),
            &[(&pid, Type::INT4)],
        )
        .await
        .map_err(PgError::query(format!(
            "reading index build progress of pid {pid}"
        )))?;
    Ok(row.as_ref().map(progress_from_row))
}

/// Every index build in flight in the current database.
pub async fn index_builds(client: &Client) -> Result<Vec<IndexBuildProgress>, PgError> {
    let rows = client
        .query(&index_builds_sql(), &[])
        .await
        .map_err(PgError::query("reading index builds in flight"))?;
    Ok(rows.iter().map(progress_from_row).collect())
}

/// Every index build of the current database: shared by [`index_builds`] and the monitor.
pub(super) fn index_builds_sql() -> String {
    format!("{PROGRESS_SQL} WHERE p.datname = current_database() ORDER BY p.pid")
}

/// What the catalog says about an index, looked up by (possibly schema-qualified) name.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct IndexState {
    /// Schema-qualified index name, quoted as needed.
    pub name: String,
    /// Table it is on.
    pub table: String,
    /// `pg_get_indexdef`.
    pub definition: String,
    /// `indisvalid`.
    pub valid: bool,
    /// `indisready` (false while a concurrent build has not reached its first scan).
    pub ready: bool,
    /// Another backend building this index right now: a build still in flight, which
    /// must not be touched.
    pub in_flight_pid: Option<i32>,
}

/// Looks up an index by name. `None` when there is no such relation, or it is not an index.
/// One round trip (an unnamed statement): safe through a transaction pooler.
pub async fn index_state(client: &Client, name: &str) -> Result<Option<IndexState>, PgError> {
    // A build in flight shows in the progress view: DefineIndex sets index_relid right
    // after creating the catalog entry, before any wait. Locks on the index are no sign:
    // the planner locks invalid indexes too.
    let row = client
        .query_typed_opt(
            "SELECT i.indexrelid::regclass::text, i.indrelid::regclass::text,
                    pg_get_indexdef(i.indexrelid), i.indisvalid, i.indisready,
                    (SELECT p.pid FROM pg_stat_progress_create_index p
                      WHERE p.index_relid = i.indexrelid AND p.pid <> pg_backend_pid() LIMIT 1)
               FROM pg_index i
              WHERE i.indexrelid = to_regclass($1)",
            &[(&name, Type::TEXT)],
        )
        .await
        .map_err(PgError::query(format!("looking up index {name}")))?;
    Ok(row.map(|r| IndexState {
        name: r.get(0),
        table: r.get(1),
        definition: r.get(2),
        valid: r.get(3),
        ready: r.get(4),
        in_flight_pid: r.get(5),
    }))
}
