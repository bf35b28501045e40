//! The journal: which migrations are applied, in pgcalm's own schema.
//!
//! `pgcalm.migrations` has one row per migration that was ever started: its state
//! (`applied`, `not_applied` after a failed attempt, `running_up` / `running_down` while
//! a no-transaction migration runs or after it was interrupted), the checksum of what was
//! applied, timing, the last failure (or cancellation), and `in_flight`: the statement a
//! no-transaction migration sent outside a transaction and has not journaled yet.
//! `pgcalm.migration_statements` records each completed statement of a no-transaction
//! migration, so a rerun resumes after the last one. Transactional migrations write their
//! row inside their own transaction; so does each statement of a no-transaction migration
//! that PostgreSQL lets run in one (its short transaction), so "done" and "journaled"
//! commit together. Only a statement that cannot run in a transaction (CONCURRENTLY,
//! VACUUM...) is in flight while it runs: if the runner dies then, the resume checks the
//! database (or asks) before running it again.
//!
//! `pgcalm.runner_lease` holds at most one row: the runner that works through a
//! transaction pooler, where no session lasts to hold a session advisory lock (see
//! [`fence`]). `pgcalm.blocker_cancellations` records each session the runner ended
//! under `cancel_idle_blockers`.

use std::collections::HashMap;
use std::time::Duration;

use pgcalm_pg::PgError;
use pgcalm_pg::catalog::Blocker;
use serde::Serialize;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, GenericClient};

use crate::event::StatementRef;
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
    in_flight        integer,
    cancelled        boolean NOT NULL DEFAULT false,
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
CREATE TABLE IF NOT EXISTS pgcalm.runner_lease (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    token       text NOT NULL,
    holder      text NOT NULL,
    acquired_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    expires_at  timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS pgcalm.blocker_cancellations (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    migration        text NOT NULL,
    statement        integer NOT NULL,
    path             text NOT NULL,
    line             integer NOT NULL,
    pid              integer NOT NULL,
    application_name text NOT NULL,
    usename          text,
    state            text,
    idle_secs        float8,
    xact_age_secs    float8,
    query            text,
    idle_limit_secs  float8 NOT NULL,
    terminated       boolean NOT NULL,
    error            text,
    cancelled_at     timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS pgcalm.backfill_progress (
    app             text NOT NULL,
    name            text NOT NULL,
    direction       text NOT NULL,
    statement_index integer NOT NULL,
    last_key        text[],
    rows_scanned    bigint NOT NULL,
    rows_updated    bigint NOT NULL,
    batches         bigint NOT NULL,
    last_batch_rows bigint NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app, name, direction, statement_index),
    FOREIGN KEY (app, name) REFERENCES pgcalm.migrations ON DELETE CASCADE
);
";

/// The tables added after the first journal: an upgrade creates them
/// ([`ensure_schema`]).
const LATER_TABLES: [&str; 3] = [
    "pgcalm.runner_lease",
    "pgcalm.blocker_cancellations",
    "pgcalm.backfill_progress",
];

/// Brings a journal created by an earlier pgcalm up to date (idempotent): the columns
/// `in_flight` and `cancelled`, then the tables of [`LATER_TABLES`] (SCHEMA_SQL's
/// `CREATE TABLE IF NOT EXISTS`). A runner of the version without `in_flight` killed
/// mid-way sent every statement of a no-transaction migration outside a transaction, so
/// the statement after its journaled ones may have run: it is marked in flight.
const UPGRADE_SQL: &str = "
ALTER TABLE pgcalm.migrations
    ADD COLUMN IF NOT EXISTS in_flight integer,
    ADD COLUMN IF NOT EXISTS cancelled boolean NOT NULL DEFAULT false;
UPDATE pgcalm.migrations m
   SET in_flight = (SELECT count(*) FROM pgcalm.migration_statements s
                     WHERE s.app = m.app AND s.name = m.name AND m.state = 'running_' || s.direction)
 WHERE m.state LIKE 'running%' AND m.error IS NULL AND m.in_flight IS NULL;
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
    /// The statement (0-based) sent outside a transaction and not journaled: it may
    /// have completed after its runner died.
    pub in_flight: Option<usize>,
    /// The last run was cancelled (not failed); `error` says at which statement.
    pub cancelled: bool,
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

/// Creates the journal tables if needed, or brings an older journal up to date.
pub async fn ensure_schema(client: &Client) -> Result<(), PgError> {
    if !pgcalm_pg::catalog::relation_exists(client, "pgcalm.migration_statements").await? {
        return client
            .batch_execute(SCHEMA_SQL)
            .await
            .map_err(PgError::query("creating pgcalm's journal (schema pgcalm)"));
    }
    if !has_current_columns(client).await? {
        client
            .batch_execute(UPGRADE_SQL)
            .await
            .map_err(PgError::query(
                "adding the in_flight and cancelled columns to pgcalm.migrations",
            ))?;
    }
    for table in LATER_TABLES {
        if !pgcalm_pg::catalog::relation_exists(client, table).await? {
            return client
                .batch_execute(SCHEMA_SQL)
                .await
                .map_err(PgError::query(format!(
                    "adding {table} to pgcalm's journal"
                )));
        }
    }
    Ok(())
}

/// Brings a journal an earlier pgcalm created up to this version's columns, and creates
/// none: called under the runner lock before the journal is read, so the statement such
/// a runner left unjournaled is known (and asked about), while a run refused for a bad
/// file still creates nothing. Returns whether the journal exists.
pub async fn upgrade_existing(client: &Client) -> Result<bool, PgError> {
    let exists = pgcalm_pg::catalog::relation_exists(client, "pgcalm.migration_statements").await?;
    if exists {
        ensure_schema(client).await?;
    }
    Ok(exists)
}

/// Whether the journal has this version's columns (an earlier pgcalm created it
/// without `in_flight` and `cancelled`). Asks the catalog: a failed probe query would
/// abort the read-only transaction `showmigrations` reads in.
async fn has_current_columns(client: &Client) -> Result<bool, PgError> {
    for column in ["in_flight", "cancelled"] {
        if !pgcalm_pg::catalog::column_exists(client, "pgcalm.migrations", column).await? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Reads the whole journal; empty when it does not exist yet (reading never creates it).
pub async fn load(client: &Client) -> Result<HashMap<(String, String), Entry>, PgError> {
    if !pgcalm_pg::catalog::relation_exists(client, "pgcalm.migration_statements").await? {
        return Ok(HashMap::new());
    }
    // Reading never changes the journal: one an earlier pgcalm created is read as it is.
    let current = if has_current_columns(client).await? {
        "in_flight, cancelled"
    } else {
        "NULL::integer, false"
    };
    let rows = client
        .query(
            &format!(
                "SELECT app, name, state, checksum, statements_total, runner_pid,
                        to_char(applied_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
                        duration_ms, error, error_direction, error_line, {current}
                   FROM pgcalm.migrations"
            ),
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
                in_flight: r.get::<_, Option<i32>>(11).map(|i| i as usize),
                cancelled: r.get(12),
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
                    applied_at = now(), duration_ms = excluded.duration_ms, in_flight = NULL,
                    cancelled = false, error = NULL, error_direction = NULL, error_line = NULL,
                    error_at = NULL",
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
/// progress of the other direction. A statement in flight in the same direction stays
/// so: the resume has not settled it yet.
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
                    in_flight = CASE WHEN pgcalm.migrations.state = excluded.state
                                     THEN pgcalm.migrations.in_flight END,
                    cancelled = false,
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

/// Records that statement `index` of a no-transaction migration is about to be sent
/// outside a transaction (`Some`), or that the attempt ended without completing it
/// (`None`). Autocommit, before the statement: if the runner dies while it runs, the
/// resume knows it may have completed.
pub async fn record_in_flight(
    client: &Client,
    file: &MigrationFile,
    index: Option<usize>,
) -> Result<(), PgError> {
    client
        .execute(
            "UPDATE pgcalm.migrations SET in_flight = $3 WHERE app = $1 AND name = $2",
            &[&file.app, &file.name, &index.map(|i| i as i32)],
        )
        .await
        .map_err(PgError::query(format!(
            "recording which statement of {} runs",
            file.id()
        )))?;
    Ok(())
}

/// Records one completed statement of a no-transaction migration, and that nothing is
/// in flight any more: inside the statement's own short transaction, or autocommit
/// right after a statement that cannot run in one.
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
    // One statement: the progress row and the cleared in-flight mark commit together.
    client
        .execute(
            "WITH done AS (
                INSERT INTO pgcalm.migration_statements
                       (app, name, direction, statement_index, line, checksum, duration_ms)
                VALUES ($1, $2, $3, $4, $5, $6, $7)
                ON CONFLICT (app, name, direction, statement_index) DO UPDATE
                   SET checksum = excluded.checksum, line = excluded.line,
                       duration_ms = excluded.duration_ms, finished_at = now()
             )
             UPDATE pgcalm.migrations SET in_flight = NULL WHERE app = $1 AND name = $2",
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

/// Records a failure or a cancellation (autocommit, after any rollback): the statement
/// that stopped is known not to have completed, so nothing is in flight. A migration that
/// had no row gets one in state `not_applied`, so `showmigrations` can say why it is not
/// applied.
pub async fn record_failure(
    client: &Client,
    file: &MigrationFile,
    direction: Direction,
    error: &str,
    line: usize,
    cancelled: bool,
) -> Result<(), PgError> {
    let section = file.section(direction).expect("planned sections exist");
    client
        .execute(
            "INSERT INTO pgcalm.migrations
                    (app, name, state, checksum, transactional, statements_total,
                     error, error_direction, error_line, error_at, cancelled)
             VALUES ($1, $2, 'not_applied', $3, $4, $5, $6, $7, $8, now(), $9)
             ON CONFLICT (app, name) DO UPDATE
                SET error = excluded.error, error_direction = excluded.error_direction,
                    error_line = excluded.error_line, error_at = now(), runner_pid = NULL,
                    in_flight = NULL, cancelled = excluded.cancelled",
            &[
                &file.app,
                &file.name,
                &file.checksum,
                &section.transaction,
                &(section.statements.len() as i32),
                &error,
                &direction.as_str(),
                &(line as i32),
                &cancelled,
            ],
        )
        .await
        .map_err(PgError::query(format!(
            "recording the failure of {}",
            file.id()
        )))?;
    Ok(())
}

/// How long a runner's lease lasts unless renewed (a runner renews it every
/// [`LEASE_RENEWAL`] and in every transaction it runs). A runner that died holding it
/// keeps the next one waiting at most this long.
pub const LEASE_TTL: Duration = Duration::from_secs(30);

/// How often a runner working through a transaction pooler renews its lease.
pub const LEASE_RENEWAL: Duration = Duration::from_secs(5);

/// Another runner's lease on the journal, as a waiting runner describes it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LeaseHolder {
    /// Who holds it: `pgcalm migrate (process 4242)`.
    pub holder: String,
    /// Seconds since it was taken.
    pub held_secs: f64,
    /// Seconds until it lapses unless renewed.
    pub expires_in_secs: f64,
}

impl std::fmt::Display for LeaseHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}, through a transaction pooler, for {:.1}s (its lease lapses in {:.1}s unless renewed)",
            self.holder, self.held_secs, self.expires_in_secs
        )
    }
}

/// The lease another runner holds now (not lapsed), if any; None when there is no lease
/// table yet. Call it holding the runner lock (session or transaction advisory lock), so
/// that no lease is taken meanwhile.
pub async fn live_lease(client: &Client) -> Result<Option<LeaseHolder>, PgError> {
    if !pgcalm_pg::catalog::relation_exists(client, "pgcalm.runner_lease").await? {
        return Ok(None);
    }
    let row = client
        .query_typed_opt(
            "SELECT holder, extract(epoch FROM clock_timestamp() - acquired_at)::float8,
                    extract(epoch FROM expires_at - clock_timestamp())::float8
               FROM pgcalm.runner_lease WHERE expires_at > clock_timestamp()",
            &[],
        )
        .await
        .map_err(PgError::query("reading the migration runner lease"))?;
    Ok(row.map(|r| LeaseHolder {
        holder: r.get(0),
        held_secs: r.get(1),
        expires_in_secs: r.get(2),
    }))
}

/// Takes the lease for `token` (replacing a lapsed one): inside the transaction that
/// holds the runner's transaction advisory lock and found no live lease.
pub async fn take_lease(client: &Client, token: &str, holder: &str) -> Result<(), PgError> {
    client
        .query_typed(
            "INSERT INTO pgcalm.runner_lease AS l (token, holder, expires_at)
             VALUES ($1, $2, clock_timestamp() + make_interval(secs => $3))
             ON CONFLICT (singleton) DO UPDATE
                SET token = excluded.token, holder = excluded.holder,
                    acquired_at = excluded.acquired_at, expires_at = excluded.expires_at",
            &[
                (&token, Type::TEXT),
                (&holder, Type::TEXT),
                (&LEASE_TTL.as_secs_f64(), Type::FLOAT8),
            ],
        )
        .await
        .map_err(PgError::query("taking the migration runner lease"))?;
    Ok(())
}

/// The first statement of every transaction a runner sends through a transaction
/// pooler, in one round trip: `settings` (its `SET LOCAL`s), the runner's transaction
/// advisory lock `key` (held to the end of the transaction, so no other runner can take
/// the lease meanwhile), and the renewal of the lease of `token`. Returns the backend
/// pid the transaction runs on, or None when the lease is not ours any more (it lapsed
/// and another runner took it): nothing may be done then.
pub async fn fence(
    client: &Client,
    settings: &str,
    key: i64,
    token: &str,
) -> Result<Option<i32>, PgError> {
    debug_assert!(token.chars().all(|c| c.is_ascii_hexdigit()));
    let sql = format!(
        "{settings}; SELECT pg_advisory_xact_lock({key});
         UPDATE pgcalm.runner_lease
            SET expires_at = clock_timestamp() + interval '{ttl} seconds'
          WHERE token = '{token}'
         RETURNING pg_backend_pid()",
        ttl = LEASE_TTL.as_secs()
    );
    let messages = client.simple_query(&sql).await.map_err(PgError::query(
        "taking the runner lock and renewing its lease",
    ))?;
    Ok(messages.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).and_then(|p| p.parse().ok()),
        _ => None,
    }))
}

/// Renews the lease of `token` (autocommit, from a connection of its own): the runner's
/// heartbeat while a long statement runs. False when it is not ours any more.
pub async fn renew_lease(client: &Client, token: &str) -> Result<bool, PgError> {
    let n = client
        .query_typed(
            "UPDATE pgcalm.runner_lease
                SET expires_at = clock_timestamp() + make_interval(secs => $2)
              WHERE token = $1
             RETURNING 1",
            &[
                (&token, Type::TEXT),
                (&LEASE_TTL.as_secs_f64(), Type::FLOAT8),
            ],
        )
        .await
        .map_err(PgError::query("renewing the migration runner lease"))?;
    Ok(!n.is_empty())
}

/// Gives the lease of `token` back (autocommit).
pub async fn release_lease(client: &Client, token: &str) -> Result<(), PgError> {
    client
        .query_typed(
            "DELETE FROM pgcalm.runner_lease WHERE token = $1",
            &[(&token, Type::TEXT)],
        )
        .await
        .map_err(PgError::query("releasing the migration runner lease"))?;
    Ok(())
}

/// Records that the runner ended (or tried to end) `blocker`, which kept statement `at`
/// waiting while idle in a transaction for longer than `idle_limit` (autocommit, from
/// the runner's monitor connection: it stays recorded whatever the migration does next).
pub async fn record_blocker_cancellation(
    client: &Client,
    at: &StatementRef,
    blocker: &Blocker,
    idle_limit: Duration,
    error: Option<&str>,
) -> Result<(), PgError> {
    let s = &blocker.session;
    let path = at.path.display().to_string();
    client
        .query_typed(
            "INSERT INTO pgcalm.blocker_cancellations
                    (migration, statement, path, line, pid, application_name, usename, state,
                     idle_secs, xact_age_secs, query, idle_limit_secs, terminated, error)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
            &[
                (&at.migration, Type::TEXT),
                (&(at.number as i32), Type::INT4),
                (&path, Type::TEXT),
                (&(at.line as i32), Type::INT4),
                (&s.pid, Type::INT4),
                (&s.application_name, Type::TEXT),
                (&s.user, Type::TEXT),
                (&s.state, Type::TEXT),
                (&blocker.state_secs, Type::FLOAT8),
                (&s.xact_age_secs, Type::FLOAT8),
                (&s.query, Type::TEXT),
                (&idle_limit.as_secs_f64(), Type::FLOAT8),
                (&error.is_none(), Type::BOOL),
                (&error, Type::TEXT),
            ],
        )
        .await
        .map_err(PgError::query(format!(
            "recording in the journal that session {} was ended",
            s.pid
        )))?;
    Ok(())
}

/// Where a backfill stands: what its committed batches did
/// (`pgcalm.backfill_progress`, written by each batch in its own transaction).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BackfillProgress {
    /// The last primary key value done (as text, one per key column); None before the
    /// first batch that found a row.
    pub last_key: Option<Vec<String>>,
    /// Keys walked so far.
    pub rows_scanned: i64,
    /// Rows the UPDATE changed so far.
    pub rows_updated: i64,
    /// Batches committed.
    pub batches: i64,
    /// Keys in the last batch (0: the walk reached the end).
    pub last_batch_rows: i64,
}

/// The backfill progress of statement `index` of `file`'s `direction` section; None
/// before its first batch committed.
pub async fn backfill_progress(
    client: &Client,
    file: &MigrationFile,
    direction: Direction,
    index: usize,
) -> Result<Option<BackfillProgress>, PgError> {
    let row = client
        .query_opt(
            "SELECT last_key, rows_scanned, rows_updated, batches, last_batch_rows
               FROM pgcalm.backfill_progress
              WHERE app = $1 AND name = $2 AND direction = $3 AND statement_index = $4",
            &[&file.app, &file.name, &direction.as_str(), &(index as i32)],
        )
        .await
        .map_err(PgError::query(format!(
            "reading the backfill progress of statement {} of {}",
            index + 1,
            file.id()
        )))?;
    Ok(row.map(|r| BackfillProgress {
        last_key: r.get(0),
        rows_scanned: r.get(1),
        rows_updated: r.get(2),
        batches: r.get(3),
        last_batch_rows: r.get(4),
    }))
}

/// Forgets a finished backfill's progress (with its statement's journal entry, in one
/// transaction), so the statement applied again later starts from the first key.
pub async fn clear_backfill(
    client: &Client,
    file: &MigrationFile,
    direction: Direction,
    index: usize,
) -> Result<(), PgError> {
    client
        .execute(
            "DELETE FROM pgcalm.backfill_progress
              WHERE app = $1 AND name = $2 AND direction = $3 AND statement_index = $4",
            &[&file.app, &file.name, &direction.as_str(), &(index as i32)],
        )
        .await
        .map_err(PgError::query(format!(
            "clearing the backfill progress of statement {} of {}",
            index + 1,
            file.id()
        )))?;
    Ok(())
}
