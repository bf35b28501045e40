//! What the runner reports while it works. The library never prints: a caller passes a
//! callback and renders these (the CLI draws Django-style lines and progress bars; a
//! service might log them or forward them to a channel).

use std::path::PathBuf;
use std::time::Duration;

use pgcalm_pg::catalog::{Blocker, IndexBuildProgress, Queued, SessionInfo};
use serde::Serialize;

use crate::file::Direction;
use crate::journal::LeaseHolder;
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
    /// The runner's connection goes through a transaction pooler (found before anything
    /// ran): it holds no session state, takes the runner lock per transaction plus a
    /// lease in the journal, and sets its timeouts with `SET LOCAL` in every transaction.
    ThroughTransactionPooler {
        /// `host:port` of the pooler.
        endpoint: String,
        /// What showed it (backend pids of one connection's transactions).
        evidence: String,
    },
    /// Another runner holds the migration lock; this one waits (reported once).
    WaitingForLock {
        /// The other runner's session, if visible.
        holder: Option<SessionInfo>,
        /// The other runner's lease, when it works through a transaction pooler.
        lease: Option<LeaseHolder>,
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
    /// waits; reported when the set of blockers changes). An autovacuum among them
    /// yields (see [`describe_blocker`]).
    LockWait {
        /// Which statement waits.
        statement: StatementRef,
        /// The sessions it waits for: pid, application, state, transaction age, query.
        blockers: Vec<Blocker>,
    },
    /// How many of the application's sessions wait behind the statement's locks (held,
    /// or queued behind the lock it waits for), by kind; sampled while it runs, reported
    /// when the counts change, and once more, empty, when it ends with a queue behind it.
    LockQueue {
        /// Which statement.
        statement: StatementRef,
        /// Reads, writes, other.
        queued: Queued,
    },
    /// Under `cancel_idle_blockers`, a session the statement waited for, idle in its
    /// transaction for longer than allowed, was ended (`pg_terminate_backend`; journaled
    /// in `pgcalm.blocker_cancellations`), or could not be.
    BlockerCancelled {
        /// The statement it blocked.
        statement: StatementRef,
        /// The session as it was when ended.
        blocker: Blocker,
        /// The policy's limit.
        #[serde(with = "secs")]
        idle_limit: Duration,
        /// It was ended (false: `error` says why not).
        terminated: bool,
        /// Why it could not be ended (permissions).
        error: Option<String>,
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
    /// A backfill (`-- pgcalm:backfill`) starts walking its table's primary key, or
    /// resumes after the last batch an earlier run committed.
    BackfillStarted {
        /// The UPDATE.
        statement: StatementRef,
        /// The table, schema-qualified.
        table: String,
        /// The primary key columns it walks.
        key: Vec<String>,
        /// The table's rows, estimated (`pg_class.reltuples`).
        total_estimate: i64,
        /// Keys an earlier run already did (0: a fresh start).
        resumed_rows: i64,
        /// Rows in the first batch.
        batch_size: u64,
        /// The policy's replica lag limit (None: not throttled).
        #[serde(with = "opt_secs")]
        max_replica_lag: Option<Duration>,
    },
    /// A batch of a backfill committed (with its last key, in the journal).
    BackfillProgress {
        /// The UPDATE.
        statement: StatementRef,
        /// Keys walked so far (all runs).
        rows_done: i64,
        /// Rows the UPDATE changed so far (all runs).
        rows_updated: i64,
        /// The table's rows, estimated (at least `rows_done`).
        total_estimate: i64,
        /// Batches committed (all runs).
        batches: i64,
        /// Keys in this batch.
        batch_rows: i64,
        /// How long this batch's transaction took.
        #[serde(with = "secs")]
        batch_time: Duration,
        /// Rows in the next batch.
        next_batch_size: u64,
        /// Keys per second in this run, waits included.
        rows_per_sec: f64,
        /// Time left at that rate (None before it is known).
        #[serde(with = "opt_secs")]
        eta: Option<Duration>,
    },
    /// A backfill waits before its next batch: a replica's replay lag is above the
    /// limit (reported when the wait starts).
    ReplicaLagWait {
        /// The UPDATE.
        statement: StatementRef,
        /// The standby (`application_name` in `pg_stat_replication`).
        replica: String,
        /// Its replay lag in seconds.
        lag_secs: f64,
        /// WAL it has not replayed, in bytes.
        lag_bytes: i64,
        /// The limit.
        #[serde(with = "secs")]
        limit: Duration,
    },
    /// The replica caught up: the backfill goes on.
    ReplicaLagCleared {
        /// The UPDATE.
        statement: StatementRef,
        /// How long it waited.
        #[serde(with = "secs")]
        waited: Duration,
    },
    /// A backfill walked its whole table.
    BackfillFinished {
        /// The UPDATE.
        statement: StatementRef,
        /// Keys walked (all runs).
        rows_done: i64,
        /// Rows changed (all runs).
        rows_updated: i64,
        /// Batches (all runs).
        batches: i64,
        /// Time spent waiting for replicas in this run.
        #[serde(with = "secs")]
        waited_for_replica: Duration,
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

/// A blocker for messages: a session as [`describe_session`] words it, with how long it
/// has sat idle in its transaction; an autovacuum worker as what it is: it yields to the
/// statement (the server cancels it once the wait lasts `deadlock_timeout`), unless it
/// runs to prevent wraparound.
pub fn describe_blocker(b: &Blocker) -> String {
    if b.autovacuum {
        let what = b
            .session
            .query
            .as_deref()
            .map(|q| q.trim_start_matches("autovacuum:").trim())
            .filter(|q| !q.is_empty())
            .unwrap_or("VACUUM");
        return if b.prevents_wraparound() {
            format!(
                "autovacuum (pid {}: {what}), which does not yield: it runs to prevent wraparound, \
                 so the statement waits until it ends or lock_timeout",
                b.session.pid
            )
        } else {
            format!(
                "autovacuum (pid {}: {what}), which yields to DDL: PostgreSQL cancels it once \
                 the statement has waited deadlock_timeout (1s by default)",
                b.session.pid
            )
        };
    }
    let text = describe_session(&b.session);
    match (&b.session.state, b.state_secs) {
        (Some(state), Some(idle)) if b.idle_in_transaction() => {
            text.replacen(&format!("{state},"), &format!("{state} for {idle:.1}s,"), 1)
        }
        _ => text,
    }
}

/// `2 reads, 1 write` (kinds with none left out; `nothing` when empty).
pub fn describe_queue(q: &Queued) -> String {
    let part = |n: u32, one: &str, many: &str| match n {
        0 => None,
        1 => Some(format!("1 {one}")),
        n => Some(format!("{n} {many}")),
    };
    let parts: Vec<String> = [
        part(q.reads, "read", "reads"),
        part(q.writes, "write", "writes"),
        part(q.other, "other", "others"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if parts.is_empty() {
        "nothing".into()
    } else {
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocker(state: &str, query: &str, autovacuum: bool) -> Blocker {
        Blocker {
            session: SessionInfo {
                pid: 4242,
                application_name: if autovacuum {
                    String::new()
                } else {
                    "psql".into()
                },
                user: None,
                state: Some(state.into()),
                query: Some(query.into()),
                xact_age_secs: Some(40.0),
                wait_event_type: None,
            },
            autovacuum,
            state_secs: Some(35.5),
        }
    }

    #[test]
    fn autovacuum_is_worded_as_yielding_unless_it_prevents_wraparound() {
        let yields = blocker("active", "autovacuum: VACUUM public.large_email", true);
        assert_eq!(
            describe_blocker(&yields),
            "autovacuum (pid 4242: VACUUM public.large_email), which yields to DDL: PostgreSQL \
             cancels it once the statement has waited deadlock_timeout (1s by default)"
        );
        let stays = blocker(
            "active",
            "autovacuum: VACUUM public.large_email (to prevent wraparound)",
            true,
        );
        assert!(describe_blocker(&stays).contains("does not yield"));
    }

    #[test]
    fn a_session_idle_in_a_transaction_says_for_how_long() {
        let b = blocker("idle in transaction", "SELECT count(*) FROM t", false);
        assert_eq!(
            describe_blocker(&b),
            "pid 4242 (psql; idle in transaction for 35.5s, transaction open 40.0s; last query: \
             SELECT count(*) FROM t)"
        );
        let active = blocker("active", "SELECT pg_sleep(60)", false);
        assert_eq!(
            describe_blocker(&active),
            "pid 4242 (psql; active, transaction open 40.0s; last query: SELECT pg_sleep(60))"
        );
    }

    #[test]
    fn queues_are_counted_in_words() {
        let q = |reads, writes, other| Queued {
            reads,
            writes,
            other,
        };
        assert_eq!(describe_queue(&q(2, 1, 0)), "2 reads, 1 write");
        assert_eq!(describe_queue(&q(0, 0, 1)), "1 other");
        assert_eq!(describe_queue(&q(0, 0, 0)), "nothing");
    }
}

pub(crate) mod secs {
    use std::time::Duration;

    pub(crate) fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64((d.as_secs_f64() * 1000.0).round() / 1000.0)
    }
}

mod opt_secs {
    use std::time::Duration;

    pub(super) fn serialize<S: serde::Serializer>(
        d: &Option<Duration>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::secs::serialize(d, s),
            None => s.serialize_none(),
        }
    }
}
