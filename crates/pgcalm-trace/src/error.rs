//! Typed errors of the tracer. Messages name the file, line or database and the fix;
//! none contains a password (connection errors come from `pgcalm-pg`, which masks it).

use std::path::PathBuf;

use pgcalm_migrate::MigrateError;
use pgcalm_pg::PgError;

/// Everything that can stop a trace before it has a report.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// The scratch database given with `--database-url` already has tables.
    #[error(
        "database {database} is not empty ({count} user tables, e.g. {examples}); trace \
         runs migrations in it and leaves their effects behind\n  fix: point --database-url \
         at an empty scratch database, leave it out to use a throwaway database, or pass \
         --force if this database may be changed"
    )]
    NotEmpty {
        /// Database name.
        database: String,
        /// How many user tables it has.
        count: usize,
        /// The first few, comma-separated.
        examples: String,
    },

    /// A setup step (an earlier migration, a `--setup` file) failed.
    #[error(
        "{}:{line}: setup failed before the traced migration could run: {message}\n  fix: \
         the migrations before the traced one (or the --setup file) must apply cleanly to an \
         empty database",
        path.display()
    )]
    Setup {
        /// The file of the failing setup SQL.
        path: PathBuf,
        /// Its line.
        line: usize,
        /// The server's message.
        message: String,
    },

    /// A file that is not a migration pgcalm can read, or a plain SQL file that does not
    /// parse.
    #[error(transparent)]
    Migration(#[from] MigrateError),

    /// A plain SQL file that PostgreSQL's grammar rejects.
    #[error("{}:{line}: SQL syntax error: {message}\n  fix: correct the statement", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// Line of the statement.
        line: usize,
        /// The parser's message.
        message: String,
    },

    /// A file could not be read.
    #[error("cannot read {}: {cause}", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        cause: String,
    },

    /// `--backwards` on a file without a down section (or plain SQL).
    #[error(
        "{} has no `-- migrate:down` section to trace\n  fix: trace it forward (without \
         --backwards), or add a `-- migrate:down` section",
        path.display()
    )]
    NoDownSection {
        /// The file.
        path: PathBuf,
    },

    /// A throwaway server or database could not be made.
    #[error("cannot set up the throwaway database: {0}")]
    Scratch(String),

    /// Talking to PostgreSQL failed.
    #[error(transparent)]
    Pg(#[from] PgError),
}
