//! Typed errors. Every message names the file and line it is about and says what to do
//! next; none contains a password (connection errors come from `pgcalm-pg`, which masks it).

use std::path::PathBuf;
use std::time::Duration;

use pgcalm_pg::PgError;
use pgcalm_pg::catalog::SessionInfo;

use crate::journal::LeaseHolder;

/// A migration file that cannot be used, found before anything runs.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{}:{line}{}: {kind}", path.display(), column.map(|c| format!(":{c}")).unwrap_or_default())]
pub struct FileError {
    /// The file.
    pub path: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// What is wrong, and the fix.
    pub kind: FileErrorKind,
}

impl FileError {
    /// A syntax error PostgreSQL's parser found in `path` (splitting it into statements).
    pub fn syntax(path: &std::path::Path, e: pgcalm_lint::SyntaxError) -> Self {
        FileError {
            path: path.to_path_buf(),
            line: e.line,
            column: e.column,
            kind: FileErrorKind::Syntax {
                message: e.message,
                excerpt: e.excerpt,
            },
        }
    }
}

/// What is wrong with a migration file.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum FileErrorKind {
    /// No `-- migrate:up` line.
    #[error(
        "no `-- migrate:up` line, so pgcalm cannot tell which SQL applies the migration\n  \
         fix: put `-- migrate:up` above the SQL that applies it and `-- migrate:down` above \
         the SQL that reverts it"
    )]
    MissingUp,
    /// A directive appears twice.
    #[error(
        "second `-- migrate:{section}` line (the first is on line {first_line})\n  fix: keep one `-- migrate:{section}` section per file"
    )]
    DuplicateSection {
        /// `up` or `down`.
        section: &'static str,
        /// Where the first one is.
        first_line: usize,
    },
    /// An option on a directive line pgcalm does not know.
    #[error(
        "unknown option `{option}` on the `-- migrate:{section}` line\n  fix: the only option is `transaction:false` (or `transaction:true`, the default)"
    )]
    UnknownOption {
        /// `up` or `down`.
        section: &'static str,
        /// The option as written.
        option: String,
    },
    /// `-- migrate:something` that is neither up nor down.
    #[error(
        "unknown directive `-- {directive}`\n  fix: the directives are `-- migrate:up` and `-- migrate:down`"
    )]
    UnknownDirective {
        /// The directive as written.
        directive: String,
    },
    /// SQL before the first directive, which would never run.
    #[error(
        "SQL before the `-- migrate:up` line would never run\n  fix: move it below `-- migrate:up` (or `-- migrate:down`), or make it a `--` comment"
    )]
    SqlBeforeUp,
    /// The up section has no statement.
    #[error(
        "the `-- migrate:up` section has no SQL statement\n  fix: add the statements that apply the migration below `-- migrate:up`"
    )]
    EmptyUp,
    /// The file name is not `<NNNN>_<name>.sql`.
    #[error(
        "file name `{file_name}` does not start with a migration number\n  fix: rename it to `<NNNN>_<name>.sql`, e.g. `0003_add_users.sql`; numbers order the migrations of an app"
    )]
    BadFileName {
        /// The name as found.
        file_name: String,
    },
    /// Two files of one app carry the same number.
    #[error("migration number {number} is used twice in app `{app}`: also by {}\n  fix: renumber one of them; numbers order the migrations of an app", other.display())]
    DuplicateNumber {
        /// The app.
        app: String,
        /// The number.
        number: u32,
        /// The other file.
        other: PathBuf,
    },
    /// PostgreSQL's grammar rejects a statement.
    #[error(
        "SQL syntax error: {message}\n  {excerpt}\n  fix: correct the statement; pgcalm checks every file with PostgreSQL's own parser before running anything"
    )]
    Syntax {
        /// The parser's message (`syntax error at or near "TABEL"`).
        message: String,
        /// The line of the statement with a caret under the position.
        excerpt: String,
    },
    /// A statement that cannot run inside a transaction block, in a transactional section.
    #[error(
        "{statement} cannot run inside a transaction, and this `-- migrate:{section}` section \
         (line {section_line}) runs in one; PostgreSQL would reject it with \"cannot run inside \
         a transaction block\" (25001)\n  fix: make the section non-transactional: \
         `-- migrate:{section} transaction:false` on line {section_line}, and keep the \
         statements that need a transaction in another migration"
    )]
    NeedsNoTransaction {
        /// e.g. `CREATE INDEX CONCURRENTLY`.
        statement: String,
        /// `up` or `down`.
        section: &'static str,
        /// Line of the directive.
        section_line: usize,
    },
    /// `-- pgcalm:backfill` with an option pgcalm cannot use.
    #[error(
        "`-- pgcalm:backfill`: {message}\n  fix: write it as `-- pgcalm:backfill batch_size=auto target=200ms` \
         (options: batch_size=auto|N, target=DURATION, delay=DURATION) on the line above the UPDATE"
    )]
    BackfillOption {
        /// What is wrong.
        message: String,
    },
    /// `-- pgcalm:backfill` with no statement after it in its section.
    #[error(
        "`-- pgcalm:backfill` with no statement after it in its section\n  fix: put it on the \
         line above the UPDATE it batches"
    )]
    BackfillWithoutStatement,
    /// A backfill in a section that runs in one transaction.
    #[error(
        "a backfill commits batch by batch, so it cannot run inside this `-- migrate:{section}` \
         section's transaction (line {section_line})\n  fix: make the section non-transactional: \
         `-- migrate:{section} transaction:false` on line {section_line} (each other statement \
         then commits on its own; keep DDL that must be atomic in another migration)"
    )]
    BackfillInTransaction {
        /// `up` or `down`.
        section: &'static str,
        /// Line of the section's directive.
        section_line: usize,
    },
    /// The statement under `-- pgcalm:backfill` is not a plain single-table UPDATE.
    #[error(
        "{reason}\n  fix: write it as `UPDATE table SET ... [WHERE ...]`, or remove the \
         `-- pgcalm:backfill` directive on line {directive_line}"
    )]
    BackfillNotUpdate {
        /// Why not.
        reason: String,
        /// Line of the directive.
        directive_line: usize,
    },
    /// BEGIN / COMMIT / ROLLBACK / SAVEPOINT in a migration.
    #[error(
        "`{statement}` in a migration: pgcalm manages transactions itself (a section runs in \
         one transaction, or with `transaction:false` each statement commits on its own)\n  \
         fix: remove it; use `transaction:false` for statements that must commit separately"
    )]
    TransactionControl {
        /// The statement keyword.
        statement: String,
    },
    /// The file could not be read.
    #[error("cannot read the file: {0}")]
    Unreadable(String),
    /// A byte that is not UTF-8 (the error's line and column are where it is).
    #[error(
        "the file is not UTF-8 (byte {byte:#04x} is not valid UTF-8 here)\n  fix: save the file as \
         UTF-8 (e.g. `iconv -f latin1 -t utf-8`); pgcalm reads SQL files as UTF-8"
    )]
    NotUtf8 {
        /// The first byte that is not.
        byte: u8,
    },
    /// PostgreSQL's parser ends a statement elsewhere than pgcalm's scanner did (no known
    /// SQL does this).
    #[error(
        "PostgreSQL's parser ends a statement here, where pgcalm's scanner did not; pgcalm \
         will not guess which statements to run\n  fix: please report this file; ending each \
         statement with `;` at the end of its line may avoid it"
    )]
    StatementBoundaries,
}

/// Everything that can go wrong while loading, planning or running migrations.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// A malformed migration file.
    #[error(transparent)]
    File(#[from] FileError),

    /// The migrations directory is missing or unreadable.
    #[error("cannot read migrations directory {}: {cause}\n  fix: create it (`migrations/<app>/<NNNN>_<name>.sql`) or point pgcalm at it with --migrations-dir / PGCALM_MIGRATIONS_DIR", dir.display())]
    NoMigrationsDir {
        /// The directory.
        dir: PathBuf,
        /// Why.
        cause: String,
    },

    /// An app name given on the command line has no folder.
    #[error("no app named `{app}` in {}; apps: {known}\n  fix: use one of those names, or create {}/{app}/", dir.display(), dir.display())]
    UnknownApp {
        /// What was asked for.
        app: String,
        /// The migrations directory.
        dir: PathBuf,
        /// Known apps, comma-separated.
        known: String,
    },

    /// No migration of the app matches the target.
    #[error(
        "app `{app}` has no migration matching `{target}`; its migrations: {known}\n  fix: give a number or name prefix of one of them, or `zero` to unapply all"
    )]
    UnknownTarget {
        /// The app.
        app: String,
        /// What was asked for.
        target: String,
        /// Known names, comma-separated.
        known: String,
    },

    /// A prefix matches more than one migration.
    #[error(
        "`{target}` matches more than one migration of `{app}`: {matches}\n  fix: give more of the name"
    )]
    AmbiguousTarget {
        /// The app.
        app: String,
        /// What was asked for.
        target: String,
        /// The matches, comma-separated.
        matches: String,
    },

    /// An applied migration's file was edited afterwards.
    #[error(
        "{} was changed after it was applied (recorded checksum {recorded}, file now {actual}): \
         the database no longer matches the file\n  fix: restore the file as it was applied \
         (e.g. `git checkout -- {}`), and put the change in a new migration",
        path.display(), path.display()
    )]
    ChecksumMismatch {
        /// The file.
        path: PathBuf,
        /// Short checksum recorded when applied.
        recorded: String,
        /// Short checksum of the file now.
        actual: String,
    },

    /// A statement already run by an interrupted no-transaction migration was edited.
    #[error(
        "{}:{line}: statement {number} was already run by the interrupted migration, but its text \
         changed since\n  fix: restore it; only the statements that have not run yet may be \
         edited before resuming",
        path.display()
    )]
    CompletedStatementChanged {
        /// The file.
        path: PathBuf,
        /// Line of the statement.
        line: usize,
        /// 1-based statement number.
        number: usize,
    },

    /// The journal lists an applied migration whose file is gone.
    #[error("{app}.{name} is applied but its file is missing from {}\n  fix: restore the file (its down section is needed to unapply it)", dir.display())]
    MissingFile {
        /// The app.
        app: String,
        /// The migration name.
        name: String,
        /// The app's folder.
        dir: PathBuf,
    },

    /// Unapplying a migration without a down section.
    #[error("{} has no `-- migrate:down` section, so {app}.{name} cannot be unapplied\n  fix: add a `-- migrate:down` section with the SQL that reverts it", path.display())]
    Irreversible {
        /// The app.
        app: String,
        /// The migration name.
        name: String,
        /// The file.
        path: PathBuf,
    },

    /// A migration was interrupted while being unapplied, and the plan wants to apply it.
    #[error(
        "{app}.{name} was being unapplied when the runner stopped ({done} of {total} down \
         statements done)\n  fix: finish unapplying it first (`pgcalm migrate {app} <the \
         migration before it>` or `zero`), then migrate forward"
    )]
    HalfUnapplied {
        /// The app.
        app: String,
        /// The migration name.
        name: String,
        /// Statements done.
        done: usize,
        /// Statements in the down section.
        total: usize,
    },

    /// Another runner holds the lock and `--wait` ran out.
    #[error(
        "another pgcalm migrate holds the migration lock{}{}; gave up after {:.1}s\n  fix: wait for it \
         to finish, or raise --wait",
        holder.as_ref().map(|h| format!(" (pid {}, application {:?})", h.pid, h.application_name)).unwrap_or_default(),
        lease.as_ref().map(|l| format!(" ({l})")).unwrap_or_default(),
        waited.as_secs_f64()
    )]
    LockBusy {
        /// The session holding it, if it could be seen.
        holder: Option<Box<SessionInfo>>,
        /// The other runner's lease, when it works through a transaction pooler.
        lease: Option<Box<LeaseHolder>>,
        /// How long we waited.
        waited: Duration,
    },

    /// The runner's connection goes through a transaction pooler, and the plan holds
    /// statements that must run outside a transaction. Nothing ran.
    #[error("{}", format_needs_direct_url(endpoint, evidence, statements, until.as_ref()))]
    NeedsDirectUrl {
        /// `host:port` of the pooler.
        endpoint: String,
        /// What showed it.
        evidence: String,
        /// The statements that cannot run through it.
        statements: Vec<crate::event::StatementRef>,
        /// The migration (app, name) just before the first that cannot run through it,
        /// when migrating that far goes through the pooler.
        until: Option<(String, String)>,
    },

    /// The direct URL (`--direct-url`) goes through a transaction pooler too.
    #[error(
        "the direct URL ({endpoint}) goes through a transaction pooler too ({evidence}), so \
         pgcalm cannot hold a session there either; nothing ran\n  fix: give --direct-url \
         (PGCALM_MIGRATE_URL) the PostgreSQL server's own host and port, or a pooler in \
         session mode"
    )]
    DirectUrlPooled {
        /// `host:port` of the direct URL.
        endpoint: String,
        /// What showed it.
        evidence: String,
    },

    /// Through a transaction pooler, the runner's lease lapsed (it could not renew it
    /// for [`LEASE_TTL`](crate::journal::LEASE_TTL)) and another runner took it. The
    /// runner stopped before its next transaction; what it committed stays.
    #[error(
        "this runner's lease on the journal lapsed and another runner took it{}; stopped \
         before running anything more (what committed before stays)\n  fix: let the other \
         runner finish, then rerun; if the pooler was saturated, give --direct-url \
         (PGCALM_MIGRATE_URL)",
        migration.as_ref().map(|m| format!(" while {m} was next")).unwrap_or_default()
    )]
    LeaseLost {
        /// The migration it was about to run or was running.
        migration: Option<String>,
    },

    /// A statement failed on the server.
    #[error("{}", format_statement_failure(self))]
    StatementFailed(Box<StatementFailure>),

    /// The table under a `-- pgcalm:backfill` UPDATE has no primary key to walk.
    #[error(
        "{}:{line}: table {table} has no primary key, and a backfill walks the primary key in \
         batches\n  fix: add a primary key to {table} in an earlier migration, or remove the \
         `-- pgcalm:backfill` directive on line {directive_line} to run the UPDATE as one statement",
        path.display()
    )]
    BackfillNoPrimaryKey {
        /// The file.
        path: PathBuf,
        /// Line of the UPDATE.
        line: usize,
        /// Line of the directive.
        directive_line: usize,
        /// The table as written.
        table: String,
    },

    /// An index the migration creates is being built by another session right now.
    #[error(
        "{}:{line}: index {index} is being built right now by another session (pid {pid}); pgcalm \
         does not touch a build in flight\n  fix: wait for that build to finish (or cancel it with \
         `SELECT pg_cancel_backend({pid})`), then rerun",
        path.display()
    )]
    IndexBuildInFlight {
        /// The file.
        path: PathBuf,
        /// Line of the statement.
        line: usize,
        /// The index.
        index: String,
        /// The backend building it.
        pid: i32,
    },

    /// Lint found risky statements in the migrations about to run, and the policy does
    /// not allow risky migrations. Nothing ran.
    #[error("{}", format_risky(findings))]
    RiskyMigration {
        /// Each finding, with the migration it is in.
        findings: Vec<RiskyFinding>,
    },

    /// The run was cancelled (the runner's `CancellationToken`: Ctrl-C or SIGTERM in the
    /// CLI). The statement in flight was cancelled on the server and, where it ran in a
    /// transaction, rolled back; the journal says where it stopped; the migration lock is
    /// released; what completed before stays.
    #[error("{0}")]
    Cancelled(Box<Cancellation>),

    /// A statement that cannot run in a transaction was in flight when an earlier runner
    /// died, and nothing in the database tells whether it completed.
    #[error(
        "{}:{line}: statement {number} of {migration} ({statement}) was running outside a \
         transaction when the last runner stopped, and the database does not tell whether it \
         completed\n  fix: look at the database; then rerun with --assume-done if it \
         completed, or with --rerun to run it again",
        path.display()
    )]
    InDoubt {
        /// `app.name`.
        migration: String,
        /// The file.
        path: PathBuf,
        /// Line of the statement.
        line: usize,
        /// 1-based statement number.
        number: usize,
        /// The statement, shortened.
        statement: String,
    },

    /// Talking to PostgreSQL failed outside a migration statement.
    #[error(transparent)]
    Pg(#[from] PgError),
}

/// What a cancelled run did and left: the migrations it completed (they stay), the one it
/// stopped in, and those it did not start.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Cancellation {
    /// Migrations this run completed before the cancel, in order.
    pub completed: Vec<(String, crate::file::Direction)>,
    /// The migration it stopped in; `None` when it stopped between migrations (or while
    /// waiting for the migration lock, when `completed` is empty too).
    pub stopped: Option<StoppedMigration>,
    /// Migrations of the plan it did not start.
    pub not_started: Vec<String>,
}

/// The migration a cancel stopped in, and its state now.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StoppedMigration {
    /// The statement it stopped at: the one cancelled on the server, or the next one
    /// when the cancel came between statements.
    pub statement: crate::event::StatementRef,
    /// The statement was running and was cancelled on the server (false: the runner
    /// stopped before sending it).
    pub in_flight: bool,
    /// Apply or unapply.
    pub direction: crate::file::Direction,
    /// The section ran in one transaction (all of it rolled back).
    pub transaction: bool,
    /// Statements of a no-transaction section that are done (they stay).
    pub done: usize,
    /// An INVALID index the cancelled CONCURRENTLY build left: (index, table).
    pub invalid_index: Option<(String, String)>,
}

impl Cancellation {
    /// The report, one line per fact: what was cancelled, what stayed done, what did not
    /// start. The CLI adds the command that resumes.
    pub fn lines(&self) -> Vec<String> {
        use crate::file::Direction;
        let mut out = Vec::new();
        match &self.stopped {
            Some(s) => {
                let at = &s.statement;
                let what = format!(
                    "{}:{}: statement {} of {} of {} ({})",
                    at.path.display(),
                    at.line,
                    at.number,
                    at.total,
                    at.migration,
                    at.summary
                );
                let state = if s.transaction {
                    match s.direction {
                        Direction::Up => format!(
                            "its transaction rolled back: nothing of {} was applied",
                            at.migration
                        ),
                        Direction::Down => format!(
                            "its transaction rolled back: {} is still applied",
                            at.migration
                        ),
                    }
                } else {
                    format!(
                        "{} of {} {}statements of {} are done",
                        s.done,
                        at.total,
                        if s.direction == Direction::Down {
                            "down "
                        } else {
                            ""
                        },
                        at.migration
                    )
                };
                out.push(if s.in_flight {
                    format!("{what} was cancelled on the server; {state}")
                } else {
                    format!("stopped before {what}; {state}")
                });
                if let Some((index, table)) = &s.invalid_index {
                    out.push(format!(
                        "  the cancelled build left an INVALID index {index} on {table}; the next \
                         run drops it concurrently and rebuilds it"
                    ));
                }
            }
            None if self.completed.is_empty() => {
                out.push("stopped before running anything".to_string())
            }
            None => out.push("stopped between migrations".to_string()),
        }
        for (migration, direction) in &self.completed {
            out.push(match direction {
                Direction::Up => format!("  still applied: {migration} (applied by this run)"),
                Direction::Down => {
                    format!("  still unapplied: {migration} (unapplied by this run)")
                }
            });
        }
        if !self.not_started.is_empty() {
            out.push(format!("  not started: {}", self.not_started.join(", ")));
        }
        out
    }
}

impl std::fmt::Display for Cancellation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cancelled: {}\n  the migration lock is released; run the same migrate again to resume",
            self.lines().join("\n")
        )
    }
}

/// A lint finding in a migration the runner was about to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RiskyFinding {
    /// `app.name`.
    pub migration: String,
    /// The file.
    pub path: PathBuf,
    /// Apply or unapply.
    pub direction: crate::file::Direction,
    /// The finding (rule, line, message, fix).
    pub finding: pgcalm_lint::Finding,
}

fn format_risky(findings: &[RiskyFinding]) -> String {
    let mut migrations: Vec<&str> = findings.iter().map(|f| f.migration.as_str()).collect();
    migrations.dedup();
    let mut out = format!(
        "refusing to run {}: lint found {} risky statement{} (nothing ran)",
        migrations.join(", "),
        findings.len(),
        if findings.len() == 1 { "" } else { "s" }
    );
    for f in findings {
        let x = &f.finding;
        out.push_str(&format!(
            "\n  {}:{}: {} [{}]: {}",
            f.path.display(),
            x.span.line,
            x.severity,
            x.rule,
            x.message
        ));
        if !x.help.is_empty() {
            out.push_str(&format!("\n    fix: {}", x.help));
        }
        if let Some(sql) = &x.fix_sql {
            out.push_str(&format!(
                "\n    safe SQL: {}",
                sql.replace('\n', "\n      ")
            ));
        }
    }
    out.push_str(
        "\n  fix: rewrite the statements as shown; if one is safe here (e.g. the table is \
         small or unused), put `-- pgcalm:ignore RULE reason` on the line above it; or run \
         anyway with --allow-risky (pgcalm.toml: [migrate] allow_risky = true)",
    );
    out
}

/// Why a statement failed, where it came from, and what state the migration is in now.
#[derive(Debug)]
pub struct StatementFailure {
    /// `app.name` of the migration.
    pub migration: String,
    /// The file.
    pub path: PathBuf,
    /// File line of the statement (or of the error position inside it).
    pub line: usize,
    /// 1-based column of the error position, when the server gave one.
    pub column: Option<usize>,
    /// 1-based statement number in its section and the section's size.
    pub number: usize,
    /// Statements in the section.
    pub total: usize,
    /// The statement, shortened to its first line.
    pub statement: String,
    /// SQLSTATE.
    pub code: String,
    /// Server message, with DETAIL and HINT when present.
    pub message: String,
    /// What happened to the migration (rolled back, k of n done, invalid index left...).
    pub outcome: String,
    /// Lock-timeout retries made before giving up (0 for other errors).
    pub retries: u32,
    /// The sessions that blocked the last attempt, for lock timeouts.
    pub blockers: Vec<SessionInfo>,
}

fn format_statement_failure(e: &MigrateError) -> String {
    let MigrateError::StatementFailed(f) = e else {
        return String::new();
    };
    let col = f.column.map(|c| format!(":{c}")).unwrap_or_default();
    let mut s = format!(
        "{}:{}{col}: statement {} of {} of {} failed: {}\n  statement: {}\n  SQLSTATE {}",
        f.path.display(),
        f.line,
        f.number,
        f.total,
        f.migration,
        f.message,
        f.statement,
        f.code
    );
    if f.retries > 0 {
        s.push_str(&format!(" after {} lock-timeout retries", f.retries));
    }
    for b in &f.blockers {
        s.push_str(&format!(
            "\n  blocked by {}",
            crate::event::describe_session(b)
        ));
    }
    s.push_str(&format!("\n  {}", f.outcome));
    s
}

fn format_needs_direct_url(
    endpoint: &str,
    evidence: &str,
    statements: &[crate::event::StatementRef],
    until: Option<&(String, String)>,
) -> String {
    let mut out = format!(
        "{endpoint} is a transaction pooler ({evidence}), and {} of the migrations to run \
         cannot run through it: {} outside a transaction, where lock_timeout can only be set \
         for the whole session, and the pooler would hand that session (its lock_timeout, \
         pgcalm's runner lock) to the application's next transaction:",
        if statements.len() == 1 {
            "a statement"
        } else {
            "statements"
        },
        if statements.len() == 1 {
            "it runs"
        } else {
            "they run"
        }
    );
    for s in statements {
        out.push_str(&format!(
            "\n  {}:{}: {} ({}, statement {} of {})",
            s.path.display(),
            s.line,
            s.summary,
            s.migration,
            s.number,
            s.total
        ));
    }
    out.push_str(
        "\nnothing ran\n  fix: give pgcalm the PostgreSQL server's own address for migrations: \
         --direct-url URL, or PGCALM_MIGRATE_URL (pgcalm.toml: [migrate] direct_url); the whole \
         run then goes there. Transactional migrations run through the pooler as they are",
    );
    match until {
        Some((app, name)) => out.push_str(&format!(
            ": `pgcalm migrate {app} {name}` applies those before it now"
        )),
        None => out.push('.'),
    }
    out
}
