//! pgcalm-migrate: plain-SQL migrations, run without downtime.
//!
//! Files live in `migrations/<app>/<NNNN>_<name>.sql`, both directions in one file
//! (the dbmate convention); `transaction:false` is Django's `atomic = False`:
//!
//! ```sql
//! -- migrate:up transaction:false
//! CREATE INDEX CONCURRENTLY large_email_email_idx ON large_email (email);
//!
//! -- migrate:down transaction:false
//! DROP INDEX CONCURRENTLY IF EXISTS large_email_email_idx;
//! ```
//!
//! Owns:
//! - [`file`]: discovery and parsing; statements split by PostgreSQL's scanner, each
//!   with its file line, and parsed (pg_query) only for the files that run; malformed
//!   files are refused with `path:line`.
//! - [`safety`]: lints a migration file's sections with pgcalm-lint (the runner refuses
//!   risky migrations with these findings), and any SQL file the way `pgcalm lint` does.
//! - [`lint_files`]: `pgcalm lint`'s driver over files and directories (migration order,
//!   `--since`, each file's tool, `--fix`), reporting as it goes through [`LintNote`]s.
//! - [`statement`]: what a statement needs (no transaction? SHARE UPDATE EXCLUSIVE
//!   only? index build?), from its parse tree.
//! - [`plan`]: migration states (`showmigrations`) and plans (forward or back to a
//!   target, a name prefix, or `zero`).
//! - [`policy`]: `lock_timeout` (2s), `statement_timeout` (0 for SHARE UPDATE EXCLUSIVE
//!   statements), jittered exponential backoff for lock-timeout retries.
//! - [`runner`]: one runner at a time (advisory lock; through a transaction pooler a
//!   transaction advisory lock and a lease in the journal), every statement through one
//!   function that applies the timeouts and names what it waits for, all-or-nothing
//!   transactional migrations, journaled and resumable no-transaction migrations (each
//!   statement that may run in a transaction commits with its journal entry),
//!   invalid-index repair, cancellation ([`Runner::with_cancel`]: the statement in
//!   flight is cancelled on the server).
//! - [`backfill`]: `-- pgcalm:backfill` above an UPDATE: keyset batches over the primary
//!   key, one short transaction each with its journaled last key, throttled on replica lag.
//! - [`journal`]: the `pgcalm.migrations` / `pgcalm.migration_statements` tables, the
//!   runner's lease and the blockers it ended.
//!
//! Architecture invariant: this crate never prints. It reports through [`Event`]s
//! and returns [`MigrateError`]s whose messages name the file, the line and the fix.
//! Catalog SQL (`pg_stat_*`, `pg_locks`) lives in `pgcalm-pg`.
//!
//! # Embedding the runner in a service
//!
//! ```no_run
//! use std::time::Duration;
//! use pgcalm_migrate::{Event, Goal, Policy, Runner};
//! use pgcalm_pg::Target;
//!
//! # async fn deploy() -> Result<(), Box<dyn std::error::Error>> {
//! let target = Target::from_url(&std::env::var("DATABASE_URL")?)?;
//! let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Event>();
//! // The service's shutdown signal: cancelling it cancels the statement in flight on the
//! // server (rolled back where it runs in a transaction) and returns
//! // MigrateError::Cancelled saying what stayed applied; the next run resumes.
//! let shutdown = tokio_util::sync::CancellationToken::new();
//! let runner = Runner::new(target, "migrations")
//!     .with_cancel(shutdown.clone())
//!     .with_policy(Policy {
//!         lock_timeout: Duration::from_secs(1),
//!         wait_for_lock: Some(Duration::from_secs(60)), // another replica may be migrating
//!         ..Policy::default()
//!     })
//!     .on_event(move |e| {
//!         let _ = tx.send(e.clone());
//!     });
//! // Log progress while the migration runs (the callback never blocks the runner).
//! let logger = tokio::spawn(async move {
//!     while let Some(event) = rx.recv().await {
//!         if let Event::MigrationFinished { app, name, duration, .. } = &event {
//!             eprintln!("applied {app}.{name} in {:.1}s", duration.as_secs_f64());
//!         }
//!     }
//! });
//! let report = runner.migrate(&Goal::All(vec![])).await?;
//! drop(runner); // closes the channel, ends the logger
//! logger.await?;
//! println!("{} migrations applied", report.ran.len());
//! # Ok(()) }
//! ```
#![cfg_attr(test, allow(unused_crate_dependencies))] // unit tests use some dev-dependencies
#![warn(missing_docs)]

pub mod backfill;
pub mod duration;
pub mod error;
pub mod event;
pub mod file;
pub mod journal;
pub mod lint_files;
pub mod plan;
pub mod policy;
pub mod runner;
pub mod safety;
pub mod statement;

pub use backfill::{BackfillSpec, BackfillUpdate};
pub use duration::{DurationError, HumanDuration, parse_duration};
pub use error::{
    Cancellation, FileError, FileErrorKind, MigrateError, RiskyFinding, StatementFailure,
    StoppedMigration,
};
pub use event::{
    Event, Notice, PlannedStep, StatementRef, describe_blocker, describe_queue, describe_session,
};
pub use file::{
    Direction, MigrationFile, MigrationSet, Section, Statement, parse_file, parse_file_unchecked,
};
pub use lint_files::{
    FixMode, LintFiles, LintFilesError, LintNote, LintedFiles, LintedPiece, UnparsedFile,
    read_table_sizes,
};
pub use plan::{
    Goal, LeftIndex, MigrationStatus, Operation, Plan, StartPoint, StartPointError, State,
    StatementSession, StatementVerdict, Step, statement_verdicts,
};
pub use policy::{Policy, Setting, SettingValue};
pub use runner::{
    InDoubt, RUNNER_LOCK_KEY, RunReport, Runner, SESSION_NAME, is_runner_session,
    migrate_to_start_point, risky_findings, statement_session_name,
};
pub use safety::{
    SourceKind, SourceLint, is_migration_source, lint_migration, lint_migration_sections,
    lint_source, source_locks,
};
