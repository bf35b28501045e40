//! The journal: which migrations are applied, in pgcalm's own schema.
//!
//! `pgcalm.migrations` has one row per migration that was ever started: its state
//! (`applied`, `not_applied` after a failed attempt, `running_up` / `running_down` while
//! a no-transaction migration runs or after it was interrupted), the checksum of what was
//! applied, timing, and the last failure. `pgcalm.migration_statements` records each
//! completed statement of a no-transaction migration, so a rerun resumes after the last
//! one. Transactional migrations write their row inside their own transaction.

use std::collections::HashMap;
use std::time::Duration;

use pgcalm_pg::PgError;
use serde::Serialize;
use tokio_postgres::{Client, GenericClient};

use crate::file::{Direction, MigrationFile};

/// The journal's DDL, idempotent.
pub const SCHEMA_SQL: &str = "
CREATE SCHEMA IF NOT EXISTS pgcalm;
CREATE TABLE IF NOT EXISTS pgcalm.migrations (
    app              text NOT NULL,
    name             text NOT NULL,
    state            text NOT NULL CHECK (state IN ('applied', 'not_applied', 'running_up', 'running_down')),
    checksum         text NOT NULL,
    transactional    boolean NOT NULL,
    statements_total integer NOT NULL,
    runner_pid       integer,
    started_at       timestamptz NOT NULL DEFAULT now(),
    applied_at       timestamptz,
    duration_ms      bigint,
    error            text,
    error_direction  text,
    error_line       integer,
    error_at         timestamptz,
    PRIMARY KEY (app, name)
);
CREATE TABLE IF NOT EXISTS pgcalm.migration_statements (
    app             text NOT NULL,
    name            text NOT NULL,
    direction       text NOT NULL,
    statement_index integer NOT NULL,
    line            integer NOT NULL,
    checksum        text NOT NULL,
    duration_ms     bigint NOT NULL,
    finished_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app, name, direction, statement_index),
    FOREIGN KEY (app, name) REFERENCES pgcalm.migrations ON DELETE CASCADE
);
";

/// A migration's row in the journal.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Entry {
    /// App.
    pub app: String,
    /// Migration name.
    pub name: String,
    /// `applied`, `not_applied`, `running_up`, `running_down`.
    pub state: String,
    /// Checksum recorded when it started / was applied.
    pub checksum: String,
    /// Statements in the section being run (for running states).
    pub statements_total: usize,
    /// Backend pid of the runner that set a running state.
    pub runner_pid: Option<i32>,
    /// When it was applied (RFC 3339).
    pub applied_at: Option<String>,
    /// How long applying took.
    pub duration_ms: Option<i64>,
    /// Last failure, cleared by the next success.
    pub error: Option<String>,
    /// Direction of the failed run.
    pub error_direction: Option<String>,
    /// File line of the failed statement.
    pub error_line: Option<i32>,
    /// Completed statements of the running direction: (index, checksum), in order.
    pub done: Vec<(usize, String)>,
}

impl Entry {
    /// Statements completed in the running direction, counted as a prefix.
    pub fn done_prefix(&self) -> usize {
        self.done
            .iter()
            .enumerate()
            .take_while(|(i, (idx, _))| i == idx)
            .count()
    }
}

/// Creates the journal tables if needed.
pub async fn ensure_schema(client: &Client) -> Result<(), PgError> {
    if pgcalm_pg::catalog::relation_exists(client, "pgcalm.migration_statements").await? {
        return Ok(());
    }
    client
        .batch_execute(SCHEMA_SQL)
        .await
        .map_err(PgError::query("creating pgcalm's journal (schema pgcalm)"))
}

/// Reads the whole journal; empty when it does not exist yet (reading never creates it).
pub async fn load(client: &Client) -> Result<HashMap<(String, String), Entry>, PgError> {
    if !pgcalm_pg::catalog::relation_exists(client, "pgcalm.migration_statements").await? {
        return Ok(HashMap::new());
    }
    let rows = client
        .query(
            "SELECT app, name, state, checksum, statements_total, runner_pid,
                    to_char(applied_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
                    duration_ms, error, error_direction, error_line
               FROM pgcalm.migrations",
            &[],
        )
        .await
        .map_err(PgError::query("reading the migration journal"))?;
    let mut entries: HashMap<(String, String), Entry> = rows
        .iter()
        .map(|r| {
            let e = Entry {
                app: r.get(0),
                name: r.get(1),
                state: r.get(2),
                checksum: r.get(3),
                statements_total: r.get::<_, i32>(4) as usize,
                runner_pid: r.get(5),
                applied_at: r.get(6),
                duration_ms: r.get(7),
                error: r.get(8),
                error_direction: r.get(9),
                error_line: r.get(10),
                done: Vec::new(),
            };
            ((e.app.clone(), e.name.clone()), e)
        })
        .collect();
    let rows = client
        .query(
            "SELECT s.app, s.name, s.statement_index, s.checksum
               FROM pgcalm.migration_statements s
               JOIN pgcalm.migrations m USING (app, name)
              WHERE m.state = 'running_' || s.direction
              ORDER BY s.app, s.name, s.statement_index",
            &[],
        )
        .await
        .map_err(PgError::query(
            "reading the migration journal's statement progress",
        ))?;
    for r in rows {
        if let Some(e) = entries.get_mut(&(r.get(0), r.get(1))) {
            e.done.push((r.get::<_, i32>(2) as usize, r.get(3)));
        }
    }
    Ok(entries)
}

/// Records a transactional migration as applied (call inside its transaction).
pub async fn record_applied(
    client: &impl GenericClient,
    file: &MigrationFile,
    duration: Duration,
) -> Result<(), PgError> {
    client
        .execute(
            "INSERT INTO pgcalm.migrations AS m
                    (app, name, state, checksum, transactional, statements_total, applied_at, duration_ms)
             VALUES ($1, $2, 'applied', $3, $4, $5, now(), $6)
             ON CONFLICT (app, name) DO UPDATE
                SET state = 'applied', checksum = excluded.checksum,
                    transactional = excluded.transactional,
                    statements_total = excluded.statements_total, runner_pid = NULL,
                    applied_at = now(), duration_ms = excluded.duration_ms,
                    error = NULL, error_direction = NULL, error_line = NULL, error_at = NULL",
            &[
                &file.app,
                &file.name,
                &file.checksum,
                &file.up.transaction,
                &(file.up.statements.len() as i32),
                &(duration.as_millis() as i64),
            ],
        )
        .await
        .map_err(PgError::query(format!("recording {} as applied", file.id())))?;
    client
        .execute(
            "DELETE FROM pgcalm.migration_statements WHERE app = $1 AND name = $2",
            &[&file.app, &file.name],
        )
        .await
        .map_err(PgError::query(format!(
            "recording {} as applied",
            file.id()
        )))?;
    Ok(())
}

/// Forgets a migration: it is unapplied (call inside the down transaction, if any).
pub async fn record_unapplied(
    client: &impl GenericClient,
    file: &MigrationFile,
) -> Result<(), PgError> {
    client
        .execute(
            "DELETE FROM pgcalm.migrations WHERE app = $1 AND name = $2",
            &[&file.app, &file.name],
        )
        .await
        .map_err(PgError::query(format!(
            "recording {} as unapplied",
            file.id()
        )))?;
    Ok(())
}

/// Marks a no-transaction migration as running in `direction` (autocommit), clearing
/// progress of the other direction.
pub async fn record_running(
    client: &Client,
    file: &MigrationFile,
    direction: Direction,
    runner_pid: i32,
) -> Result<(), PgError> {
    let section = file.section(direction).expect("planned sections exist");
    let state = format!("running_{direction}");
    client
        .execute(
            "INSERT INTO pgcalm.migrations
                    (app, name, state, checksum, transactional, statements_total, runner_pid)
             VALUES ($1, $2, $3, $4, false, $5, $6)
             ON CONFLICT (app, name) DO UPDATE
                SET state = excluded.state,
                    checksum = CASE WHEN excluded.state = 'running_up' THEN excluded.checksum
                                    ELSE pgcalm.migrations.checksum END,
                    transactional = false,
                    statements_total = excluded.statements_total,
                    runner_pid = excluded.runner_pid,
                    error = NULL, error_direction = NULL, error_line = NULL, error_at = NULL",
            &[
                &file.app,
                &file.name,
                &state,
                &file.checksum,
                &(section.statements.len() as i32),
                &runner_pid,
            ],
        )
        .await
        .map_err(PgError::query(format!("recording that {} runs", file.id())))?;
    client
        .execute(
            "DELETE FROM pgcalm.migration_statements WHERE app = $1 AND name = $2 AND direction <> $3",
            &[&file.app, &file.name, &direction.as_str()],
        )
        .await
        .map_err(PgError::query(format!("recording that {} runs", file.id())))?;
    Ok(())
}

/// Records one completed statement of a no-transaction migration (autocommit).
pub async fn record_statement_done(
    client: &Client,
    file: &MigrationFile,
    direction: Direction,
    index: usize,
    duration: Duration,
) -> Result<(), PgError> {
    let s = &file
        .section(direction)
        .expect("planned sections exist")
        .statements[index];
    client
        .execute(
            "INSERT INTO pgcalm.migration_statements
                    (app, name, direction, statement_index, line, checksum, duration_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (app, name, direction, statement_index) DO UPDATE
                SET checksum = excluded.checksum, line = excluded.line,
                    duration_ms = excluded.duration_ms, finished_at = now()",
            &[
                &file.app,
                &file.name,
                &direction.as_str(),
                &(index as i32),
                &(s.line as i32),
                &s.checksum,
                &(duration.as_millis() as i64),
            ],
        )
        .await
        .map_err(PgError::query(format!(
            "recording statement {} of {} as done",
            index + 1,
            file.id()
        )))?;
    Ok(())
}

/// Records a failure (autocommit, after any rollback). A migration that had no row
/// gets one in state `not_applied`, so `showmigrations` can say why it is not applied.
pub async fn record_failure(
    client: &Client,
    file: &MigrationFile,
    direction: Direction,
    error: &str,
    line: usize,
) -> Result<(), PgError> {
    let section = file.section(direction).expect("planned sections exist");
    client
        .execute(
            "INSERT INTO pgcalm.migrations
                    (app, name, state, checksum, transactional, statements_total,
                     error, error_direction, error_line, error_at)
             VALUES ($1, $2, 'not_applied', $3, $4, $5, $6, $7, $8, now())
             ON CONFLICT (app, name) DO UPDATE
                SET error = excluded.error, error_direction = excluded.error_direction,
                    error_line = excluded.error_line, error_at = now(), runner_pid = NULL",
            &[
                &file.app,
                &file.name,
                &file.checksum,
                &section.transaction,
                &(section.statements.len() as i32),
                &error,
                &direction.as_str(),
                &(line as i32),
            ],
        )
        .await
        .map_err(PgError::query(format!(
            "recording the failure of {}",
            file.id()
        )))?;
    Ok(())
}
