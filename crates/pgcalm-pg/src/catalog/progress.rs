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
    /// Work done in this phase, as (done, total, unit): the counter PostgreSQL reports
    /// this phase's progress in (lockers while waiting, tuples while loading the tree,
    /// blocks while scanning), never another phase's. The sorts report none, though
    /// `tuples_total` is already set for the load that follows them.
    pub fn counter(&self) -> Option<(i64, i64, &'static str)> {
        let blocks =
            (self.blocks_total > 0).then_some((self.blocks_done, self.blocks_total, "blocks"));
        let tuples =
            (self.tuples_total > 0).then_some((self.tuples_done, self.tuples_total, "tuples"));
        let lockers =
            (self.lockers_total > 0).then_some((self.lockers_done, self.lockers_total, "lockers"));
        let phase = self.phase.as_str();
        if phase.starts_with("waiting for") {
            lockers
        } else if phase.contains("sorting") || phase == "initializing" {
            None
        } else if phase.contains("loading tuples") {
            tuples
        } else {
            // Scans (`building index: scanning table`, `index validation: scanning ...`)
            // and access methods' own sub-phases: blocks, else tuples.
            blocks.or(tuples)
        }
    }
}

/// A plain (non-concurrent) CREATE INDEX reports `index_relid` 0 for its whole build;
/// its name is then read from the statement (`CREATE [UNIQUE] INDEX [CONCURRENTLY] [IF
/// NOT EXISTS] name ON`): quoted as written, folded to lower case otherwise, NULL for an
/// index without a name.
const PROGRESS_SQL: &str = r#"SELECT p.pid, p.relid::regclass::text,
        coalesce(nullif(p.index_relid, 0)::regclass::text,
                 (SELECT CASE WHEN n LIKE '"%' THEN n ELSE lower(n) END
                    FROM substring(a.query FROM '(?i)\mcreate\s+(?:unique\s+)?index\s+(?:concurrently\s+)?(?:if\s+not\s+exists\s+)?("(?:[^"]|"")+"|[^\s("]+)\s+on\M') n
                   WHERE n IS NOT NULL)),
        p.command, p.phase, p.lockers_total, p.lockers_done, p.current_locker_pid,
        p.blocks_total, p.blocks_done, p.tuples_total, p.tuples_done
   FROM pg_stat_progress_create_index p
   LEFT JOIN pg_stat_activity a ON a.pid = p.pid"#;

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

#[cfg(test)]
mod tests {
    use super::*;

    fn build(
        phase: &str,
        blocks: (i64, i64),
        tuples: (i64, i64),
        lockers: (i64, i64),
    ) -> IndexBuildProgress {
        IndexBuildProgress {
            pid: 1,
            table: Some("t".into()),
            index: Some("i".into()),
            command: "CREATE INDEX CONCURRENTLY".into(),
            phase: phase.into(),
            lockers_total: lockers.1,
            lockers_done: lockers.0,
            current_locker_pid: 0,
            blocks_total: blocks.1,
            blocks_done: blocks.0,
            tuples_total: tuples.1,
            tuples_done: tuples.0,
        }
    }

    #[test]
    fn each_phase_counts_with_its_own_counter() {
        // Rows as PostgreSQL 15 reported them for a 2M-row build: the sorts report no
        // progress of their own, but tuples_total is already set (0 done) for the load.
        let counters = [
            build("waiting for writers before build", (0, 0), (0, 0), (0, 1)),
            build(
                "building index: scanning table",
                (17, 14705),
                (0, 0),
                (0, 0),
            ),
            build(
                "building index: sorting live tuples",
                (0, 0),
                (0, 2_000_000),
                (0, 0),
            ),
            build(
                "building index: loading tuples in tree",
                (0, 0),
                (102_277, 2_000_000),
                (0, 0),
            ),
            build(
                "index validation: scanning index",
                (432, 19940),
                (0, 0),
                (0, 0),
            ),
            build("index validation: sorting tuples", (0, 0), (0, 0), (0, 0)),
            build(
                "index validation: scanning table",
                (10890, 14705),
                (0, 0),
                (0, 0),
            ),
            build("waiting for old snapshots", (0, 0), (0, 0), (1, 3)),
        ]
        .map(|b| b.counter());
        assert_eq!(
            counters,
            [
                Some((0, 1, "lockers")),
                Some((17, 14705, "blocks")),
                None,
                Some((102_277, 2_000_000, "tuples")),
                Some((432, 19940, "blocks")),
                None,
                Some((10890, 14705, "blocks")),
                Some((1, 3, "lockers")),
            ]
        );
    }
}
