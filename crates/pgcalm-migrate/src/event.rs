//! What the runner reports while it works. The library never prints: a caller passes a
//! callback and renders these (the CLI draws Django-style lines and progress bars; a
//! service might log them or forward them to a channel).

use std::path::PathBuf;
use std::time::Duration;

use pgcalm_pg::catalog::{IndexBuildProgress, SessionInfo};
use serde::Serialize;

use crate::file::Direction;
use crate::plan::{Operation, Step};

/// One migration of a plan, as announced before running.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PlannedStep {
    /// App.
    pub app: String,
    /// Migration name.
    pub name: String,
    /// Apply or unapply.
    pub direction: Direction,
    /// Whether its section runs in one transaction.
    pub transaction: bool,
    /// Statements in the section.
    pub statements: usize,
    /// Statements already done by an interrupted run.
    pub resume_from: usize,
}

impl From<&Step> for PlannedStep {
    fn from(s: &Step) -> Self {
        let section = s.section();
        PlannedStep {
            app: s.file.app.clone(),
            name: s.file.name.clone(),
            direction: s.direction,
            transaction: section.transaction,
            statements: section.statements.len(),
            resume_from: s.resume_from,
        }
    }
}

/// Where a statement comes from: migration, file, line and position in its section.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct StatementRef {
    /// `app.name`.
    pub migration: String,
    /// The file.
    pub path: PathBuf,
    /// 1-based file line.
    pub line: usize,
    /// 1-based statement number in its section.
    pub number: usize,
    /// Statements in the section.
    pub total: usize,
    /// First line of the statement, shortened.
    pub summary: String,
}

/// A server message (NOTICE, WARNING, ...) and the statement that raised it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Notice {
    /// `NOTICE`, `WARNING`, ...
    pub severity: String,
    /// The message.
    pub message: String,
    /// DETAIL, if any.
    pub detail: Option<String>,
    /// HINT, if any.
    pub hint: Option<String>,
}

/// One step of the runner's work, in order.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// Another runner holds the migration lock; this one waits (reported once).
    WaitingForLock {
        /// The other runner's session, if visible.
        holder: Option<SessionInfo>,
    },
    /// The migration lock is ours.
    LockAcquired {
        /// Time spent waiting for it.
        #[serde(with = "secs")]
        waited: Duration,
    },
    /// The runner holds the lock and knows what it will do.
    Planned {
        /// What was asked.
        operation: Operation,
        /// The migrations that will run, in order (empty: nothing to do).
        steps: Vec<PlannedStep>,
    },
    /// A migration starts (or resumes).
    MigrationStarted {
        /// App.
        app: String,
        /// Migration name.
        name: String,
        /// Apply or unapply.
        direction: Direction,
        /// Statements in the section.
        total: usize,
        /// Statements already done by an interrupted earlier run (skipped now).
        resume_from: usize,
        /// Whether the section runs in one transaction.
        transaction: bool,
    },
    /// A statement is sent.
    StatementStarted {
        /// Which.
        statement: StatementRef,
        /// Attempt number (1 = first try).
        attempt: u32,
    },
    /// A statement finished.
    StatementFinished {
        /// Which.
        statement: StatementRef,
        /// How long it took.
        #[serde(with = "secs")]
        duration: Duration,
    },
    /// The statement is waiting for a lock held by these sessions (sampled while it
    /// waits; reported when the set of blockers changes).
    LockWait {
        /// Which statement waits.
        statement: StatementRef,
        /// The sessions it waits for.
        blockers: Vec<SessionInfo>,
    },
    /// The statement hit `lock_timeout`; it (or its transaction) will be retried.
    LockTimeoutRetry {
        /// Which statement.
        statement: StatementRef,
        /// The retry about to happen (1-based).
        retry: u32,
        /// Retries allowed.
        max_retries: u32,
        /// Delay before it.
        #[serde(with = "secs")]
        delay: Duration,
        /// The sessions that held the lock.
        blockers: Vec<SessionInfo>,
        /// True when the whole migration transaction is retried.
        whole_transaction: bool,
    },
    /// A server NOTICE/WARNING raised by a statement.
    Notice {
        /// Which statement raised it.
        statement: StatementRef,
        /// The message.
        notice: Notice,
    },
    /// Index build progress, polled from `pg_stat_progress_create_index`.
    IndexProgress {
        /// Which statement builds it.
        statement: StatementRef,
        /// The progress row.
        progress: IndexBuildProgress,
    },
    /// An INVALID index left by an earlier failed build was found where the migration
    /// is about to build it; it will be dropped concurrently and rebuilt.
    InvalidIndexFound {
        /// The statement that builds it.
        statement: StatementRef,
        /// Index name.
        index: String,
        /// Its table.
        table: String,
        /// Why it is invalid, as far as pgcalm knows.
        cause: String,
    },
    /// The invalid index was dropped.
    InvalidIndexDropped {
        /// Index name.
        index: String,
    },
    /// A statement of an interrupted run is already done in the database (e.g. its
    /// index exists and is valid), so it is recorded as done without running it again.
    StatementAlreadyDone {
        /// Which statement.
        statement: StatementRef,
        /// What was found.
        reason: String,
    },
    /// The run was asked to stop while this statement ran: a cancel request went to the
    /// server, and the runner waits for the statement to end (and roll back).
    Cancelling {
        /// The statement being cancelled.
        statement: StatementRef,
    },
    /// A statement that was in flight outside a transaction when an earlier runner died
    /// runs again: running it twice does no harm, or `--rerun` said so.
    StatementRerun {
        /// Which statement.
        statement: StatementRef,
        /// Why running it again is right.
        reason: String,
    },
    /// A migration finished.
    MigrationFinished {
        /// App.
        app: String,
        /// Migration name.
        name: String,
        /// Applied or unapplied.
        direction: Direction,
        /// Wall time, including retries.
        #[serde(with = "secs")]
        duration: Duration,
    },
}

/// A one-line description of a session for messages: `pid 4242 (psql, idle in
/// transaction for 12.0s: UPDATE large_email ...)`.
pub fn describe_session(s: &SessionInfo) -> String {
    let mut parts = Vec::new();
    if !s.application_name.is_empty() {
        parts.push(s.application_name.clone());
    }
    if let Some(state) = &s.state {
        match s.xact_age_secs {
            Some(age) => parts.push(format!("{state}, transaction open {age:.1}s")),
            None => parts.push(state.clone()),
        }
    }
    if let Some(q) = &s.query {
        let q: String = q.split_whitespace().collect::<Vec<_>>().join(" ");
        if !q.is_empty() {
            let long = q.chars().count() > 60;
            let mut q: String = q.chars().take(60).collect();
            if long {
                q.push_str("...");
            }
            parts.push(format!("last query: {q}"));
        }
    }
    if parts.is_empty() {
        format!("pid {}", s.pid)
    } else {
        format!("pid {} ({})", s.pid, parts.join("; "))
    }
}

mod secs {
    use std::time::Duration;

    pub(super) fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64((d.as_secs_f64() * 1000.0).round() / 1000.0)
    }
}
