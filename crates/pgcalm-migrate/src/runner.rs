//! The runner: one at a time (advisory lock; through a transaction pooler, a
//! transaction advisory lock in every transaction plus a lease in the journal), every
//! statement through
//! [`Executor::execute`] (timeouts, notices, lock-wait sampling, index progress, cancel
//! requests), lock-timeout retries, all-or-nothing transactional migrations, journaled
//! and resumable no-transaction migrations (each statement in a short transaction with its
//! journal entry wherever PostgreSQL allows one), invalid-index repair, and cancellation
//! (a `CancellationToken`: the statement in flight is cancelled on the server and rolled
//! back, the journal says where the run stopped, the lock is released).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::collections::{HashMap, HashSet};

use pgcalm_pg::catalog::{self, Blocker, Pooling, Queued, SessionInfo};
use pgcalm_pg::{PgError, Target};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_postgres::error::{DbError, ErrorPosition, SqlState};
use tokio_postgres::{CancelToken, Client, SimpleQueryMessage};
use tokio_util::sync::CancellationToken;

use crate::backfill::{BackfillSpec, BackfillUpdate, JournalKey};
use crate::error::{Cancellation, MigrateError, RiskyFinding, StatementFailure, StoppedMigration};
use crate::event::{Event, Notice, StatementRef};
use crate::file::{Direction, MigrationFile, MigrationSet, Statement};
use crate::journal::{self, Entry, LeaseHolder};
use crate::plan::{
    self, Goal, LeftIndex, MigrationStatus, Plan, StartPoint, StatementSession, Step,
};
use crate::policy::{Policy, set_sql};
use crate::statement::{IndexBuild, Recheck};

/// Key of the session advisory lock that keeps runners one at a time (per database):
/// "pgcalm" in ASCII.
pub const RUNNER_LOCK_KEY: i64 = 0x7067_6361_6c6d;

/// `application_name` of the runner's session that sends the statements (between
/// statements; while one runs, [`statement_session_name`]).
pub const SESSION_NAME: &str = "pgcalm migrate";

/// `application_name` of the runner's monitor session when it connects (renamed
/// `pgcalm migrate (monitor of <pid>)` on a connection that keeps its session).
const MONITOR_NAME: &str = "pgcalm migrate (monitor)";

/// PostgreSQL keeps the first NAMEDATALEN - 1 bytes of an `application_name`.
const APPLICATION_NAME_MAX: usize = 63;

/// A callback receiving the runner's [`Event`]s.
pub type EventSink = Arc<dyn Fn(&Event) + Send + Sync>;

/// What a finished `migrate` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunReport {
    /// The plan that ran.
    pub plan: Plan,
    /// Per migration run: `app.name`, direction, seconds.
    pub ran: Vec<(String, Direction, f64)>,
}

/// What to do with a statement that was in flight outside a transaction when the last
/// runner died, when the database does not tell whether it completed (an unnamed
/// CONCURRENTLY build, DETACH PARTITION CONCURRENTLY, ...).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum InDoubt {
    /// Stop with [`MigrateError::InDoubt`] naming the statement.
    #[default]
    Ask,
    /// Record it as done without running it (`--assume-done`).
    AssumeDone,
    /// Run it again (`--rerun`).
    Rerun,
}

/// Runs migrations from a directory against a database.
#[derive(Clone)]
pub struct Runner {
    target: Target,
    dir: std::path::PathBuf,
    policy: Policy,
    sink: EventSink,
    cancel: CancellationToken,
    in_doubt: InDoubt,
    direct: Option<Target>,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("target", &self.target.masked_url())
            .field("dir", &self.dir)
            .field("policy", &self.policy)
            .field("in_doubt", &self.in_doubt)
            .field("direct", &self.direct.as_ref().map(Target::masked_url))
            .finish()
    }
}

impl Runner {
    /// A runner for the migrations under `dir` (one folder per app) on `target`, with
    /// the default [`Policy`] and no event callback.
    pub fn new(target: Target, dir: impl Into<std::path::PathBuf>) -> Self {
        Runner {
            target,
            dir: dir.into(),
            policy: Policy::default(),
            sink: Arc::new(|_| {}),
            cancel: CancellationToken::new(),
            in_doubt: InDoubt::Ask,
            direct: None,
        }
    }

    /// The server itself, for when the target is a transaction pooler (`--direct-url`,
    /// `PGCALM_MIGRATE_URL`). When given, [`Runner::migrate`] runs entirely on it (the
    /// convention of Prisma's `directUrl`): one runner needs one session, which a direct
    /// connection keeps, and a run split across two addresses would hold its lock in two
    /// places. Without it, a run through a transaction pooler does what it can there and
    /// refuses the rest before anything runs.
    pub fn with_direct_target(mut self, direct: Option<Target>) -> Self {
        self.direct = direct;
        self
    }

    /// Replaces the safety policy.
    pub fn with_policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// Sets the callback that receives progress [`Event`]s.
    pub fn on_event(mut self, sink: impl Fn(&Event) + Send + Sync + 'static) -> Self {
        self.sink = Arc::new(sink);
        self
    }

    /// Stops [`Runner::migrate`] when `token` is cancelled: the statement in flight gets
    /// a cancel request and the runner waits for it to end (a transaction rolls back),
    /// records in the journal where it stopped, releases the migration lock and returns
    /// [`MigrateError::Cancelled`] saying what stayed done. The CLI cancels it on
    /// SIGINT/SIGTERM.
    pub fn with_cancel(mut self, token: CancellationToken) -> Self {
        self.cancel = token;
        self
    }

    /// What to do with a statement an earlier runner left in doubt (see [`InDoubt`]).
    pub fn on_in_doubt(mut self, choice: InDoubt) -> Self {
        self.in_doubt = choice;
        self
    }

    /// The policy in use.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Reads and checks the migration files.
    pub fn load(&self) -> Result<MigrationSet, MigrateError> {
        MigrationSet::load(&self.dir)
    }

    /// Every migration's state (`showmigrations`). Reads only; never creates the journal.
    /// Besides the journal it looks at the server: a runner's session running one of
    /// the statements now (alive, or orphaned: its runner is gone and the server has not
    /// noticed), and an INVALID index that an interrupted CONCURRENTLY build left. It
    /// reads in one read-only transaction, so it works through a transaction pooler.
    pub async fn status(&self, app: Option<&str>) -> Result<Vec<MigrationStatus>, MigrateError> {
        let set = self.load()?;
        let client = self.read_only("pgcalm showmigrations").await?;
        let statuses = self.statuses(&client, &set, app).await;
        end_read(&client).await?;
        statuses
    }

    async fn statuses(
        &self,
        client: &Client,
        set: &MigrationSet,
        app: Option<&str>,
    ) -> Result<Vec<MigrationStatus>, MigrateError> {
        let journal = journal::load(client).await?;
        let sessions = catalog::sessions_named(client, SESSION_NAME).await?;
        // The runner lives while its monitor session does: the session of a dead client
        // closes at once when idle, while one running a statement may outlive it.
        let live = catalog::advisory_lock_holder(client, RUNNER_LOCK_KEY)
            .await?
            .map(|s| s.pid)
            .filter(|pid| {
                sessions
                    .iter()
                    .any(|s| s.application_name == monitor_name(*pid))
            });
        // A runner through a transaction pooler has no session of its own: while its
        // lease is live, the statement sessions are its.
        let leased = journal::live_lease(client).await?.is_some();
        let mut statuses = plan::statuses(set, &journal, app, live)?;
        for status in &mut statuses {
            let Some(file) = set.get(&status.app, &status.name) else {
                continue;
            };
            status.session = sessions
                .iter()
                .filter(|s| s.state.as_deref() == Some("active"))
                .find_map(|s| statement_session(file, s, live))
                .map(|mut s| {
                    s.orphaned &= !leased;
                    s
                });
            if let Some((direction, done, slot)) = status.pending_index_mut()
                && let Some(stmt) = file.section(direction).and_then(|s| s.statements.get(done))
                && let Some(IndexBuild {
                    index: Some(index),
                    concurrent: true,
                    create: true,
                }) = &stmt.kind().index_build
                && let Some(state) = catalog::index_state(client, index).await?
                && !state.valid
                && state.in_flight_pid.is_none()
            {
                *slot = Some(LeftIndex {
                    index: state.name,
                    table: state.table,
                });
            }
        }
        Ok(statuses)
    }

    /// The server the runner works on: the direct target when given.
    fn server(&self) -> &Target {
        self.direct.as_ref().unwrap_or(&self.target)
    }

    /// A connection named `name` inside a read-only transaction (what only reads works
    /// through a transaction pooler this way); end it with [`end_read`].
    async fn read_only(&self, name: &str) -> Result<Client, MigrateError> {
        let client = self.server().with_application_name(name).connect().await?;
        client
            .batch_execute("BEGIN READ ONLY")
            .await
            .map_err(PgError::query("starting a read-only transaction"))?;
        Ok(client)
    }

    /// What [`Runner::migrate`] would run now, without running it (`--plan`).
    pub async fn plan(&self, goal: &Goal) -> Result<Plan, MigrateError> {
        let set = self.load()?;
        let client = self.read_only("pgcalm migrate --plan").await?;
        let journal = journal::load(&client).await;
        end_read(&client).await?;
        let journal = journal?;
        plan::check_checksums(&set, &journal, &goal_apps(&set, goal))?;
        let plan = plan::plan(&set, &journal, goal)?;
        check_files(&plan)?;
        Ok(plan)
    }

    /// The lint options the runner judges migrations with: the server's major version
    /// (for `--plan`'s verdicts, the same the refusal uses).
    pub async fn lint_options(&self) -> Result<pgcalm_lint::LintOptions, MigrateError> {
        let client = self.read_only("pgcalm migrate --plan").await?;
        let options = lint_options_of(&client).await;
        end_read(&client).await?;
        options
    }

    /// Migrates to `goal`: takes the runner lock, checks the files against the journal,
    /// and runs the plan. Emits [`Event::Planned`] once the plan is known.
    ///
    /// Before anything else it finds out whether its connection keeps a server session
    /// ([`catalog::session_pooling`]). Directly (or through a pooler in session mode) it
    /// holds a session advisory lock and sets its bookkeeping timeouts for the session.
    /// Through a transaction pooler it keeps no session state: every transaction it sends
    /// takes the runner lock as a transaction advisory lock and checks its lease in the
    /// journal ([`journal::fence`]), timeouts are `SET LOCAL`, and a plan with statements
    /// that must run outside a transaction (CONCURRENTLY, VACUUM) is refused before
    /// anything runs ([`MigrateError::NeedsDirectUrl`]). With a direct target
    /// ([`Runner::with_direct_target`]) the whole run goes there.
    pub async fn migrate(&self, goal: &Goal) -> Result<RunReport, MigrateError> {
        // Files first: a malformed file stops everything before a connection is made
        // (the files about to run are parsed once the plan is known).
        let set = self.load()?;
        let target = self.server();
        let (client, notices) = target
            .with_application_name(SESSION_NAME)
            .connect_with_notices()
            .await?;
        // Named uniquely until the pooler check has looked for its backend.
        let probe_name = format!("{SESSION_NAME} (probe {})", &lease_token()[..12]);
        let monitor = target.with_application_name(&probe_name).connect().await?;
        let endpoint = format!("{}:{}", target.host(), target.port());
        let pooling = catalog::session_pooling(&client, &monitor, &probe_name).await?;
        // A direct URL is taken at its word unless transaction pooling is proven: a
        // pooler in session mode is a right place for migrations.
        let keeps_session = match &pooling {
            Pooling::Session => true,
            Pooling::Unproven { .. } => self.direct.is_some(),
            Pooling::Transaction { .. } => false,
        };
        if keeps_session {
            return self
                .migrate_in_session(goal, &set, client, notices, monitor)
                .await;
        }
        let evidence = pooling.evidence().unwrap_or_default().to_string();
        if self.direct.is_some() {
            return Err(MigrateError::DirectUrlPooled { endpoint, evidence });
        }
        monitor
            .batch_execute(&format!("SET application_name = {}", literal(MONITOR_NAME)))
            .await
            .map_err(PgError::query("naming the runner's monitor session"))?;
        self.emit(Event::ThroughTransactionPooler {
            endpoint: endpoint.clone(),
            evidence: evidence.clone(),
        });
        let through = Through { endpoint, evidence };
        self.migrate_through_pooler(goal, &set, client, notices, monitor, through)
            .await
    }

    /// The run on a connection that keeps its session: a session advisory lock, the
    /// bookkeeping timeouts set once for the session.
    async fn migrate_in_session(
        &self,
        goal: &Goal,
        set: &MigrationSet,
        client: Client,
        notices: UnboundedReceiver<DbError>,
        monitor: Client,
    ) -> Result<RunReport, MigrateError> {
        let pid = catalog::backend_pid(&client).await?;
        // Named after the session it watches: `showmigrations` tells a live runner (both
        // sessions connected) from an orphaned statement (its runner gone).
        monitor
            .batch_execute(&format!(
                "SET application_name = {}",
                literal(&monitor_name(pid))
            ))
            .await
            .map_err(PgError::query("naming the runner's monitor session"))?;
        // pgcalm's own bookkeeping (journal DDL and writes) gets the same short
        // lock_timeout: nothing this session does may queue the application for long.
        let mut session = self.bookkeeping_settings(false);
        // If the runner dies mid-statement, the server ends the statement (and its locks)
        // within this interval instead of running it to its end for no one.
        if let Some(interval) = self.check_interval(&client).await? {
            session.push_str(&format!(
                "; SET client_connection_check_interval = '{}ms'",
                interval.as_millis()
            ));
        }
        client
            .batch_execute(&session)
            .await
            .map_err(PgError::query("setting the runner session's timeouts"))?;
        if !self.acquire_lock(&client, &monitor, false).await? {
            return Err(nothing_done());
        }
        let (plan, journal) = self.prepare(&client, goal, set, None).await?;
        let exec = Executor::new(self, &client, notices, &monitor, pid, None);
        // Closing the session (when `client` drops) releases the advisory lock.
        self.run_plan(exec, plan, journal).await
    }

    /// The run through a transaction pooler: no session state anywhere. The runner lock
    /// is a transaction advisory lock taken by every transaction, and between
    /// transactions a lease row in the journal keeps other runners out; a task of its own
    /// renews the lease while statements run, and it is given back at the end.
    async fn migrate_through_pooler(
        &self,
        goal: &Goal,
        set: &MigrationSet,
        client: Client,
        notices: UnboundedReceiver<DbError>,
        monitor: Client,
        through: Through,
    ) -> Result<RunReport, MigrateError> {
        // The lease (and this transaction) is taken with the transaction advisory lock
        // held: acquire_lock returns inside that transaction.
        if !self.acquire_lock(&client, &monitor, true).await? {
            return Err(nothing_done());
        }
        let token = lease_token();
        let holder = format!("{SESSION_NAME} (process {})", std::process::id());
        let prepared = async {
            let interval = self.check_interval(&client).await?;
            let (plan, journal) = self.prepare(&client, goal, set, Some(&through)).await?;
            journal::take_lease(&client, &token, &holder).await?;
            client
                .batch_execute("COMMIT")
                .await
                .map_err(PgError::query("committing the runner lease"))?;
            Ok::<_, MigrateError>((plan, journal, interval))
        }
        .await;
        let (plan, journal, interval) = match prepared {
            Ok(p) => p,
            Err(e) => {
                // Nothing was changed: the checks ran before the journal was touched.
                let _ = client.batch_execute("ROLLBACK").await;
                return Err(e);
            }
        };
        let heartbeat = Heartbeat::start(&self.target, &token).await;
        let pooled = PooledSession {
            fence_settings: self.bookkeeping_settings(true),
            statement_settings: interval
                .map(|i| {
                    format!(
                        "; SET LOCAL client_connection_check_interval = '{}ms'",
                        i.as_millis()
                    )
                })
                .unwrap_or_default(),
            token: token.clone(),
        };
        let exec = Executor::new(self, &client, notices, &monitor, 0, Some(pooled));
        let result = self.run_plan(exec, plan, journal).await;
        drop(heartbeat);
        // Best effort: a lease that cannot be given back lapses after LEASE_TTL.
        let _ = journal::release_lease(&client, &token).await;
        result
    }

    /// `SET` (or `SET LOCAL`) of the bookkeeping timeouts: the policy's, as for a
    /// statement of no particular kind.
    fn bookkeeping_settings(&self, local: bool) -> String {
        set_sql(&self.policy.settings_for(&Default::default()), local)
    }

    /// The `client_connection_check_interval` to set, when the policy asks for one and
    /// the server has it (PostgreSQL 14+).
    async fn check_interval(&self, client: &Client) -> Result<Option<Duration>, MigrateError> {
        match self.policy.client_connection_check_interval {
            Some(interval) if catalog::checks_client_connection(client).await? => {
                Ok(Some(interval))
            }
            _ => Ok(None),
        }
    }

    /// Under the runner lock: brings an older journal up to date, reads it, plans, checks
    /// the files (and, through a pooler, that every statement can run in a transaction),
    /// lints what will run, and only then creates the journal if it did not exist.
    async fn prepare(
        &self,
        client: &Client,
        goal: &Goal,
        set: &MigrationSet,
        through: Option<&Through>,
    ) -> Result<(Plan, Journal), MigrateError> {
        let journal_exists = journal::upgrade_existing(client).await?;
        let journal = journal::load(client).await?;
        plan::check_checksums(set, &journal, &goal_apps(set, goal))?;
        let plan = plan::plan(set, &journal, goal)?;
        check_files(&plan)?;
        if let Some(through) = through {
            let outside = statements_outside_transactions(&plan);
            if let Some(first) = outside.first() {
                // Going forward, the migrations before the first one that cannot run
                // here can: say how to apply just those.
                let at = plan
                    .steps
                    .iter()
                    .position(|s| s.file.id() == first.migration)
                    .unwrap_or(0);
                let until = match (at.checked_sub(1).map(|i| &plan.steps[i]), &plan.steps[at]) {
                    (Some(before), blocked)
                        if before.direction == Direction::Up
                            && blocked.direction == Direction::Up
                            && before.file.app == blocked.file.app =>
                    {
                        Some((before.file.app.clone(), before.file.name.clone()))
                    }
                    _ => None,
                };
                return Err(MigrateError::NeedsDirectUrl {
                    endpoint: through.endpoint.clone(),
                    evidence: through.evidence.clone(),
                    statements: outside,
                    until,
                });
            }
        }
        // Safe by default: lint what is about to run, refuse it before anything runs.
        if !self.policy.allow_risky {
            let options = lint_options_of(client).await?;
            let findings = risky_findings(&plan, &options);
            if !findings.is_empty() {
                return Err(MigrateError::RiskyMigration { findings });
            }
        }
        // Only now that the files are known to be good: nothing changes before.
        if !journal_exists {
            journal::ensure_schema(client).await?;
        }
        Ok((plan, journal))
    }

    /// Runs the plan's steps in order (the lock is held).
    async fn run_plan(
        &self,
        mut exec: Executor<'_>,
        plan: Plan,
        journal: Journal,
    ) -> Result<RunReport, MigrateError> {
        self.emit(Event::Planned {
            operation: plan.operation.clone(),
            steps: plan
                .steps
                .iter()
                .map(crate::event::PlannedStep::from)
                .collect(),
        });
        let mut ran = Vec::new();
        for (i, step) in plan.steps.iter().enumerate() {
            let stopped = if self.cancel.is_cancelled() {
                Some(None)
            } else {
                let started = Instant::now();
                let prior = journal.get(&(step.file.app.clone(), step.file.name.clone()));
                match exec.run_step(step, prior).await {
                    Ok(()) => {
                        let took = started.elapsed();
                        self.emit(Event::MigrationFinished {
                            app: step.file.app.clone(),
                            name: step.file.name.clone(),
                            direction: step.direction,
                            duration: took,
                        });
                        ran.push((step.file.id(), step.direction, took.as_secs_f64()));
                        None
                    }
                    Err(Stop::Cancelled(stopped)) => Some(Some(stopped)),
                    Err(Stop::Failed(e)) => return Err(e),
                }
            };
            if let Some(stopped) = stopped {
                let not_started = plan.steps[i + usize::from(stopped.is_some())..]
                    .iter()
                    .map(|s| s.file.id())
                    .collect();
                exec.release_lock().await;
                return Err(MigrateError::Cancelled(Box::new(Cancellation {
                    completed: ran.into_iter().map(|(id, d, _)| (id, d)).collect(),
                    stopped,
                    not_started,
                })));
            }
        }
        Ok(RunReport { plan, ran })
    }

    /// Takes the runner lock, waiting for another runner as the policy allows. False when
    /// the run was cancelled while it waited. Through a transaction pooler (`pooled`) it
    /// returns inside the transaction that holds the lock.
    async fn acquire_lock(
        &self,
        client: &Client,
        monitor: &Client,
        pooled: bool,
    ) -> Result<bool, MigrateError> {
        let started = Instant::now();
        let mut reported = false;
        loop {
            let busy = if pooled {
                self.try_transaction_lock(client, monitor).await?
            } else {
                self.try_session_lock(client, monitor).await?
            };
            let Some(busy) = busy else {
                if reported {
                    self.emit(Event::LockAcquired {
                        waited: started.elapsed(),
                    });
                }
                return Ok(true);
            };
            let waited = started.elapsed();
            if let Some(limit) = self.policy.wait_for_lock
                && waited >= limit
            {
                return Err(MigrateError::LockBusy {
                    holder: busy.holder.map(Box::new),
                    lease: busy.lease.map(Box::new),
                    waited,
                });
            }
            if !reported {
                self.emit(Event::WaitingForLock {
                    holder: busy.holder,
                    lease: busy.lease,
                });
                reported = true;
            }
            let nap = Duration::from_millis(200);
            let nap = match self.policy.wait_for_lock {
                Some(limit) => nap
                    .min(limit.saturating_sub(waited))
                    .max(Duration::from_millis(1)),
                None => nap,
            };
            tokio::select! {
                _ = tokio::time::sleep(nap) => {}
                _ = self.cancel.cancelled() => return Ok(false),
            }
        }
    }

    /// The session advisory lock, unless a runner working through a transaction pooler
    /// holds the lease (then the lock is given back at once). None: it is ours.
    async fn try_session_lock(
        &self,
        client: &Client,
        monitor: &Client,
    ) -> Result<Option<Busy>, MigrateError> {
        let got: bool = client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&RUNNER_LOCK_KEY])
            .await
            .map_err(PgError::query("taking the migration runner lock"))?
            .get(0);
        if !got {
            let holder = catalog::advisory_lock_holder(monitor, RUNNER_LOCK_KEY).await?;
            return Ok(Some(Busy {
                holder,
                lease: None,
            }));
        }
        match journal::live_lease(client).await? {
            None => Ok(None),
            Some(lease) => {
                client
                    .execute("SELECT pg_advisory_unlock($1)", &[&RUNNER_LOCK_KEY])
                    .await
                    .map_err(PgError::query("releasing the migration runner lock"))?;
                Ok(Some(Busy {
                    holder: None,
                    lease: Some(lease),
                }))
            }
        }
    }

    /// A transaction holding the transaction advisory lock, when no other runner's lease
    /// is live. None: the lock is ours and the transaction stays open.
    async fn try_transaction_lock(
        &self,
        client: &Client,
        monitor: &Client,
    ) -> Result<Option<Busy>, MigrateError> {
        let sql = format!(
            "BEGIN; {}; SELECT pg_try_advisory_xact_lock({RUNNER_LOCK_KEY})",
            self.bookkeeping_settings(true)
        );
        let got = client
            .simple_query(&sql)
            .await
            .map_err(PgError::query("taking the migration runner lock"))?
            .iter()
            .any(|m| matches!(m, SimpleQueryMessage::Row(r) if r.get(0) == Some("t")));
        let busy = if got {
            match journal::live_lease(client).await {
                Ok(None) => return Ok(None),
                Ok(Some(lease)) => Busy {
                    holder: None,
                    lease: Some(lease),
                },
                Err(e) => {
                    let _ = client.batch_execute("ROLLBACK").await;
                    return Err(e.into());
                }
            }
        } else {
            Busy {
                holder: None,
                lease: None,
            }
        };
        client
            .batch_execute("ROLLBACK")
            .await
            .map_err(PgError::query("ending the runner lock transaction"))?;
        if busy.lease.is_some() {
            return Ok(Some(busy));
        }
        // A runner's session lock, or another runner's transaction now.
        let holder = catalog::advisory_lock_holder(monitor, RUNNER_LOCK_KEY).await?;
        Ok(Some(Busy {
            holder,
            lease: None,
        }))
    }
    fn emit(&self, e: Event) {
        (self.sink)(&e)
    }
}

/// `application_name` of the runner's session while it sends statement `number`
/// (1-based) of `file`'s `direction` section: `pgcalm migrate app.0002 #3` (`... down
/// #3` unapplying). A long app name is shortened so the whole fits PostgreSQL's 63 bytes.
pub fn statement_session_name(file: &MigrationFile, direction: Direction, number: usize) -> String {
    format!("{} #{number}", session_head(file, direction))
}

/// Whether a session (by its `application_name`) is a runner's session that sends
/// migration statements (not its monitor): the lab tells the migration's locks by it.
pub fn is_runner_session(application_name: &str) -> bool {
    application_name == SESSION_NAME
        || application_name
            .strip_prefix(SESSION_NAME)
            .and_then(|rest| rest.strip_prefix(' '))
            .and_then(|rest| rest.rsplit_once(" #"))
            .is_some_and(|(_, n)| n.parse::<usize>().is_ok())
}

fn session_head(file: &MigrationFile, direction: Direction) -> String {
    let tail = format!(
        ".{:04}{}",
        file.number,
        if direction == Direction::Down {
            " down"
        } else {
            ""
        }
    );
    let room =
        APPLICATION_NAME_MAX.saturating_sub(SESSION_NAME.len() + 1 + tail.len() + " #9999".len());
    let mut end = file.app.len().min(room);
    while !file.app.is_char_boundary(end) {
        end -= 1;
    }
    format!("{SESSION_NAME} {}{tail}", &file.app[..end])
}

/// The statement of `file` that session `s` runs, from its `application_name`.
fn statement_session(
    file: &MigrationFile,
    s: &SessionInfo,
    live_runner: Option<i32>,
) -> Option<StatementSession> {
    let (head, number) = s.application_name.rsplit_once(" #")?;
    let number: usize = number.parse().ok()?;
    let direction = [Direction::Up, Direction::Down]
        .into_iter()
        .find(|d| session_head(file, *d) == head)?;
    let line = file
        .section(direction)?
        .statements
        .get(number.checked_sub(1)?)?
        .line;
    Some(StatementSession {
        pid: s.pid,
        direction,
        number,
        line,
        orphaned: live_runner != Some(s.pid),
    })
}

fn monitor_name(pid: i32) -> String {
    format!("{SESSION_NAME} (monitor of {pid})")
}

/// Ends a [`Runner::read_only`] transaction.
async fn end_read(client: &Client) -> Result<(), MigrateError> {
    client
        .batch_execute("COMMIT")
        .await
        .map_err(|e| PgError::query("ending a read-only transaction")(e).into())
}

/// The journal as read: each migration's row by (app, name).
type Journal = HashMap<(String, String), Entry>;

/// The transaction pooler the runner's connection goes through.
struct Through {
    /// `host:port`.
    endpoint: String,
    /// What showed it.
    evidence: String,
}

/// Who holds the runner lock, when this runner cannot have it.
struct Busy {
    holder: Option<SessionInfo>,
    lease: Option<LeaseHolder>,
}

/// What a runner working through a transaction pooler sends in every transaction.
struct PooledSession {
    /// The bookkeeping timeouts, `SET LOCAL` (the start of [`journal::fence`]).
    fence_settings: String,
    /// Added to each statement's `SET LOCAL`s: `client_connection_check_interval`.
    statement_settings: String,
    /// The runner's lease.
    token: String,
}

/// A random lease token (hex, so it is safe in a literal).
fn lease_token() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// Renews a lease from a connection of its own every [`journal::LEASE_RENEWAL`], while
/// the runner sleeps between retries or runs a statement; stops when dropped.
struct Heartbeat(Option<tokio::task::JoinHandle<()>>);

impl Heartbeat {
    async fn start(target: &Target, token: &str) -> Heartbeat {
        // Best effort: every transaction of the runner renews the lease too.
        let Ok(client) = target
            .with_application_name("pgcalm migrate (lease)")
            .connect()
            .await
        else {
            return Heartbeat(None);
        };
        let token = token.to_string();
        Heartbeat(Some(tokio::spawn(async move {
            loop {
                tokio::time::sleep(journal::LEASE_RENEWAL).await;
                let _ = journal::renew_lease(&client, &token).await;
            }
        })))
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        if let Some(task) = &self.0 {
            task.abort();
        }
    }
}

/// A run cancelled before it had the lock: nothing done.
fn nothing_done() -> MigrateError {
    MigrateError::Cancelled(Box::new(Cancellation {
        completed: Vec::new(),
        stopped: None,
        not_started: Vec::new(),
    }))
}

/// The statements of a plan that must run outside a transaction (CONCURRENTLY, VACUUM, a
/// DO block that commits): what a run through a transaction pooler cannot do.
fn statements_outside_transactions(plan: &Plan) -> Vec<StatementRef> {
    let mut out = Vec::new();
    for step in &plan.steps {
        let section = step.section();
        if section.transaction {
            continue;
        }
        let total = section.statements.len();
        out.extend(
            section
                .statements
                .iter()
                .skip(step.resume_from)
                .filter(|s| s.kind().needs_no_transaction || s.kind().commits_itself)
                .map(|s| stmt_ref(&step.file, s, total)),
        );
    }
    out
}

/// An SQL string literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Lint's findings on the statements the plan will run (an interrupted migration's
/// completed statements are not run again, so not judged again).
pub fn risky_findings(plan: &Plan, options: &pgcalm_lint::LintOptions) -> Vec<RiskyFinding> {
    let mut out = Vec::new();
    for step in &plan.steps {
        let findings =
            plan::section_findings(&step.file, step.direction, step.resume_from, options);
        out.extend(findings.into_iter().map(|finding| RiskyFinding {
            migration: step.file.id(),
            path: step.file.path.clone(),
            direction: step.direction,
            finding,
        }));
    }
    out
}

/// Lint options for the server's major version (`15` for 15.4), with today's date (an
/// ignore `until` a date past is itself a finding).
async fn lint_options_of(client: &Client) -> Result<pgcalm_lint::LintOptions, MigrateError> {
    Ok(pgcalm_lint::LintOptions {
        pg_version: pgcalm_lint::PgVersion(catalog::server_major_version(client).await?),
        today: Some(pgcalm_lint::Date::today()),
        ..Default::default()
    })
}

fn goal_apps(set: &MigrationSet, goal: &Goal) -> Vec<String> {
    match goal {
        Goal::All(apps) if apps.is_empty() => set.apps.keys().cloned().collect(),
        Goal::All(apps) => apps.clone(),
        Goal::To { app, .. } | Goal::ForwardTo { app, .. } => vec![app.clone()],
    }
}

/// A statement failed: the driver error plus the sessions seen blocking it.
struct ExecError {
    error: tokio_postgres::Error,
    blockers: Vec<SessionInfo>,
    /// It failed because the runner's cancel request reached it (57014 after a cancel).
    cancelled: bool,
}

impl ExecError {
    fn is_lock_timeout(&self) -> bool {
        self.error.code() == Some(&SqlState::LOCK_NOT_AVAILABLE)
    }

    /// PostgreSQL refused it inside a transaction block: a statement the lock table
    /// thought could run in one (25001: an older server, a gap in the table), or a
    /// procedure or DO block that commits (2D000). It rolled back with its transaction.
    fn needs_no_transaction(&self) -> bool {
        matches!(
            self.error.code(),
            Some(&SqlState::ACTIVE_SQL_TRANSACTION)
                | Some(&SqlState::INVALID_TRANSACTION_TERMINATION)
        )
    }
}

/// One sample taken while a statement runs.
struct LockSample {
    queue: Result<catalog::LockQueue, PgError>,
    progress: Option<pgcalm_pg::catalog::IndexBuildProgress>,
}

/// Samples, from the monitor connection, whom backend `pid` waits for and who waits for
/// it, and the progress of its index build.
async fn observe_locks(monitor: &Client, pid: i32, builds_index: bool) -> LockSample {
    // Both at once (pipelined on the one connection): a sample is dropped unfinished
    // when the statement ends.
    let progress = async {
        match builds_index {
            true => catalog::index_build_progress(monitor, pid)
                .await
                .ok()
                .flatten(),
            false => None,
        }
    };
    let (queue, progress) = tokio::join!(catalog::lock_queue(monitor, pid), progress);
    LockSample { queue, progress }
}

/// What the sampling of one statement's locks has seen so far.
#[derive(Default)]
struct LockWatch {
    /// The sessions it waited for at the last sample that saw any.
    blockers: Vec<Blocker>,
    /// The queue behind it last reported.
    queued: Queued,
    /// Blockers the policy could not end (permissions): not tried again.
    refused: HashSet<i32>,
}

/// Why a step stopped before its end.
enum Stop {
    /// The run was cancelled; the journal says where.
    Cancelled(StoppedMigration),
    /// A failure (already journaled when it was a statement's).
    Failed(MigrateError),
}

impl From<MigrateError> for Stop {
    fn from(e: MigrateError) -> Self {
        Stop::Failed(e)
    }
}

impl From<PgError> for Stop {
    fn from(e: PgError) -> Self {
        Stop::Failed(e.into())
    }
}

/// Sends statements for one runner session.
struct Executor<'a> {
    client: &'a Client,
    notices: UnboundedReceiver<DbError>,
    monitor: &'a Client,
    pid: i32,
    policy: &'a Policy,
    sink: &'a EventSink,
    target: &'a Target,
    cancel: &'a CancellationToken,
    /// Cancels the statement running on `client`.
    cancel_token: CancelToken,
    /// A cancel request went to the server. When the statement ended before it
    /// arrived, it cancels the next command instead: bookkeeping then runs once more.
    cancel_sent: bool,
    in_doubt: InDoubt,
    /// Through a transaction pooler: what every transaction sends first.
    pooled: Option<PooledSession>,
}

impl<'a> Executor<'a> {
    /// `pid` is the session's backend (through a pooler: 0, then each transaction's).
    fn new(
        runner: &'a Runner,
        client: &'a Client,
        notices: UnboundedReceiver<DbError>,
        monitor: &'a Client,
        pid: i32,
        pooled: Option<PooledSession>,
    ) -> Self {
        Executor {
            client,
            notices,
            monitor,
            pid,
            policy: &runner.policy,
            sink: &runner.sink,
            target: runner.server(),
            cancel: &runner.cancel,
            cancel_token: client.cancel_token(),
            cancel_sent: false,
            in_doubt: runner.in_doubt,
            pooled,
        }
    }
}

impl Executor<'_> {
    fn emit(&self, e: Event) {
        (self.sink)(&e)
    }

    /// Starts a transaction; through a transaction pooler, with the fence first (the
    /// bookkeeping timeouts `SET LOCAL`, the runner's transaction advisory lock, the
    /// lease checked and renewed), and notes the backend it runs on.
    async fn begin(&mut self, what: &str) -> Result<(), MigrateError> {
        self.sql("BEGIN", what).await?;
        if let Some(pid) = self.fence().await? {
            self.pid = pid;
        }
        Ok(())
    }

    /// Through a transaction pooler, inside a transaction just begun: [`journal::fence`];
    /// rolls back and fails when the lease is lost. Returns the transaction's backend
    /// pid (None on a connection that keeps its session: nothing to do).
    async fn fence(&self) -> Result<Option<i32>, MigrateError> {
        let Some(p) = &self.pooled else {
            return Ok(None);
        };
        match journal::fence(self.client, &p.fence_settings, RUNNER_LOCK_KEY, &p.token).await {
            Ok(Some(pid)) => Ok(Some(pid)),
            Ok(None) => {
                let _ = self.client.batch_execute("ROLLBACK").await;
                Err(MigrateError::LeaseLost { migration: None })
            }
            Err(e) => {
                let _ = self.client.batch_execute("ROLLBACK").await;
                Err(e.into())
            }
        }
    }

    /// Journal bookkeeping outside a migration's transaction: autocommit on a connection
    /// that keeps its session ([`Executor::book`]); through a transaction pooler, in a
    /// fenced transaction of its own, so that no runner that lost its lease writes.
    async fn bookkeep<T, F, Fut>(&self, op: F) -> Result<T, MigrateError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, PgError>>,
    {
        if self.pooled.is_none() {
            return Ok(self.book(op).await?);
        }
        let mut retried = false;
        loop {
            let attempt = async {
                self.sql("BEGIN", "starting a journal transaction").await?;
                self.fence().await?;
                let value = op().await?;
                self.sql("COMMIT", "committing a journal write").await?;
                Ok::<_, MigrateError>(value)
            }
            .await;
            match attempt {
                Ok(value) => return Ok(value),
                Err(e) => {
                    let _ = self.client.batch_execute("ROLLBACK").await;
                    // The late cancel request of the statement before landed here.
                    let late_cancel = matches!(&e, MigrateError::Pg(p) if is_query_canceled(p));
                    if late_cancel && self.cancel_sent && !retried {
                        retried = true;
                        continue;
                    }
                    return Err(e);
                }
            }
        }
    }

    /// After a lock timeout: reports retry number `retry` with who blocked it, then
    /// sleeps the policy's jittered backoff. False when the run was cancelled meanwhile.
    async fn back_off(
        &self,
        statement: StatementRef,
        retry: u32,
        blockers: Vec<SessionInfo>,
        whole_transaction: bool,
    ) -> bool {
        let delay = self.policy.backoff(retry);
        self.emit(Event::LockTimeoutRetry {
            statement,
            retry,
            max_retries: self.policy.max_retries,
            delay,
            blockers,
            whole_transaction,
        });
        tokio::select! {
            _ = tokio::time::sleep(delay) => true,
            _ = self.cancel.cancelled() => false,
        }
    }

    /// THE way the runner sends a statement: sets `lock_timeout` and `statement_timeout`
    /// for it (`SET LOCAL` inside a transaction) and names the session after it
    /// ([`statement_session_name`]), sends it alone (no implicit multi-statement
    /// transaction), and while it runs samples, from the monitor connection, the sessions
    /// blocking it and the index-build progress, forwards NOTICEs, and on cancellation
    /// sends the server a cancel request, then waits for the statement to end.
    async fn execute(
        &mut self,
        at: &StatementRef,
        stmt: &Statement,
        in_transaction: bool,
        session_name: &str,
    ) -> Result<Duration, ExecError> {
        // Anything still queued came from pgcalm's own bookkeeping, not from this statement.
        while self.notices.try_recv().is_ok() {}
        let settings = self.policy.settings_for(stmt.kind());
        let mut set = format!(
            "{}; SET {}application_name = {}",
            set_sql(&settings, in_transaction),
            if in_transaction { "LOCAL " } else { "" },
            literal(session_name)
        );
        if let Some(p) = &self.pooled {
            set.push_str(&p.statement_settings);
        }
        self.client
            .batch_execute(&set)
            .await
            .map_err(|error| ExecError {
                error,
                blockers: Vec::new(),
                cancelled: false,
            })?;
        tracing::debug!(
            migration = %at.migration,
            line = at.line,
            ?settings,
            in_transaction,
            sql = %stmt.sql,
            "sending a migration statement"
        );
        let started = Instant::now();
        let poll = (self.policy.lock_timeout / 4)
            .clamp(Duration::from_millis(25), Duration::from_millis(250));
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + poll, poll);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut watch = LockWatch::default();
        let builds_index = stmt.kind().index_build.is_some();
        let (client, monitor, pid) = (self.client, self.monitor, self.pid);
        // The sample in flight. It is dropped as soon as the statement ends: it may wait
        // for a server connection the statement's transaction holds (a pool of one).
        let mut sampling: Option<std::pin::Pin<Box<dyn Future<Output = LockSample> + Send + '_>>> =
            None;
        let result = {
            let fut = client.batch_execute(&stmt.sql);
            tokio::pin!(fut);
            loop {
                tokio::select! {
                    r = &mut fut => break r,
                    _ = self.cancel.cancelled(), if !self.cancel_sent => {
                        self.cancel_sent = true;
                        (self.sink)(&Event::Cancelling { statement: at.clone() });
                        // Best effort: when the request cannot be sent, the statement runs
                        // to its end (and its transaction, if any, is rolled back after).
                        let _ = self.target.cancel_query(&self.cancel_token).await;
                    }
                    Some(n) = self.notices.recv() => {
                        (self.sink)(&Event::Notice { statement: at.clone(), notice: notice_of(&n) });
                    }
                    Some(sample) = async {
                        match sampling.as_mut() {
                            Some(f) => Some(f.await),
                            None => None,
                        }
                    }, if sampling.is_some() => {
                        sampling = None;
                        // Monitoring is best effort: a failed sample must not fail the
                        // statement.
                        if let Ok(queue) = sample.queue {
                            self.watch_locks(at, &mut watch, queue, poll).await;
                        }
                        if let Some(progress) = sample.progress {
                            (self.sink)(&Event::IndexProgress { statement: at.clone(), progress });
                        }
                    }
                    _ = ticker.tick(), if sampling.is_none() => {
                        sampling = Some(Box::pin(observe_locks(monitor, pid, builds_index)));
                    }
                }
            }
        };
        drop(sampling);
        if !watch.queued.is_empty() {
            self.emit(Event::LockQueue {
                statement: at.clone(),
                queued: Queued::default(),
            });
        }
        while let Ok(n) = self.notices.try_recv() {
            self.emit(Event::Notice {
                statement: at.clone(),
                notice: notice_of(&n),
            });
        }
        result
            .map(|_| started.elapsed())
            .map_err(|error| ExecError {
                cancelled: self.cancel_sent && error.code() == Some(&SqlState::QUERY_CANCELED),
                error,
                blockers: watch.blockers.into_iter().map(|b| b.session).collect(),
            })
    }

    /// One sample of the statement's lock queue: reports blockers when they change and
    /// the queue behind it when it changes, and applies `cancel_idle_blockers`.
    async fn watch_locks(
        &self,
        at: &StatementRef,
        watch: &mut LockWatch,
        queue: catalog::LockQueue,
        poll: Duration,
    ) {
        if !queue.blockers.is_empty() {
            let pids = |b: &[Blocker]| b.iter().map(|b| b.session.pid).collect::<Vec<_>>();
            if pids(&queue.blockers) != pids(&watch.blockers) {
                self.emit(Event::LockWait {
                    statement: at.clone(),
                    blockers: queue.blockers.clone(),
                });
            }
            watch.blockers = queue.blockers;
        }
        if queue.queued != watch.queued {
            watch.queued = queue.queued;
            self.emit(Event::LockQueue {
                statement: at.clone(),
                queued: queue.queued,
            });
        }
        let Some(limit) = self.policy.cancel_idle_blockers else {
            return;
        };
        let idle: Vec<Blocker> = watch
            .blockers
            .iter()
            .filter(|b| {
                b.idle_in_transaction()
                    && b.state_secs.is_some_and(|s| s > limit.as_secs_f64())
                    && !watch.refused.contains(&b.session.pid)
            })
            .cloned()
            .collect();
        for b in idle {
            // Bounded: through a pool of one server connection, the monitor waits for the
            // one the statement's transaction holds.
            let ended = tokio::time::timeout(
                poll.max(Duration::from_secs(1)),
                catalog::terminate_idle_blocker(self.monitor, self.pid, b.session.pid, limit),
            )
            .await;
            let (blocker, error) = match ended {
                Ok(Ok(Some(ended))) => (ended, None),
                // It moved on, or no server connection was free: nothing to do now.
                Ok(Ok(None)) | Err(_) => continue,
                Ok(Err(e)) => {
                    watch.refused.insert(b.session.pid);
                    (b, Some(e.to_string()))
                }
            };
            // Journaled from the monitor (autocommit): it stays recorded whatever the
            // migration does next. Best effort: the event says it anyway.
            let _ = tokio::time::timeout(
                Duration::from_secs(5),
                journal::record_blocker_cancellation(
                    self.monitor,
                    at,
                    &blocker,
                    limit,
                    error.as_deref(),
                ),
            )
            .await;
            self.emit(Event::BlockerCancelled {
                statement: at.clone(),
                terminated: error.is_none(),
                blocker,
                idle_limit: limit,
                error,
            });
        }
    }

    /// Runs bookkeeping `op`, once more when a cancel request meant for the statement
    /// before hit it instead (so it must be safe to repeat).
    async fn book<T, F, Fut>(&self, op: F) -> Result<T, PgError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, PgError>>,
    {
        match op().await {
            Err(e) if self.cancel_sent && is_query_canceled(&e) => op().await,
            r => r,
        }
    }

    /// Gives the migration lock back at once (closing the session would too; through a
    /// transaction pooler, the lease).
    async fn release_lock(&self) {
        let client = self.client;
        if let Some(p) = &self.pooled {
            let token = p.token.as_str();
            let _ = self.book(|| journal::release_lease(client, token)).await;
            return;
        }
        let _ = self
            .book(|| async move {
                client
                    .execute("SELECT pg_advisory_unlock($1)", &[&RUNNER_LOCK_KEY])
                    .await
                    .map_err(PgError::query("releasing the migration runner lock"))
            })
            .await;
    }

    async fn rollback(&self, what: &str) -> Result<(), PgError> {
        let client = self.client;
        self.book(|| async move {
            client
                .batch_execute("ROLLBACK")
                .await
                .map_err(PgError::query(what.to_string()))
        })
        .await
    }

    async fn run_step(&mut self, step: &Step, prior: Option<&Entry>) -> Result<(), Stop> {
        let section = step.section();
        self.emit(Event::MigrationStarted {
            app: step.file.app.clone(),
            name: step.file.name.clone(),
            direction: step.direction,
            total: section.statements.len(),
            resume_from: step.resume_from,
            transaction: section.transaction,
        });
        if section.transaction {
            self.run_transactional(step).await
        } else {
            self.run_statement_by_statement(step, prior).await
        }
    }

    async fn run_transactional(&mut self, step: &Step) -> Result<(), Stop> {
        let file = &step.file;
        let section = step.section();
        let total = section.statements.len();
        let mut retry = 0;
        loop {
            let started = Instant::now();
            self.begin("starting the migration transaction").await?;
            let mut halt = None;
            for stmt in &section.statements {
                let at = stmt_ref(file, stmt, total);
                if self.cancel.is_cancelled() {
                    halt = Some(Halt::Cancelled(stmt, at, false));
                    break;
                }
                self.emit(Event::StatementStarted {
                    statement: at.clone(),
                    attempt: retry + 1,
                });
                let name = statement_session_name(file, step.direction, stmt.index + 1);
                match self.execute(&at, stmt, true, &name).await {
                    Ok(d) => self.emit(Event::StatementFinished {
                        statement: at,
                        duration: d,
                    }),
                    Err(e) if e.cancelled => {
                        halt = Some(Halt::Cancelled(stmt, at, true));
                        break;
                    }
                    Err(e) => {
                        halt = Some(Halt::Failed(stmt, at, e));
                        break;
                    }
                }
            }
            let halt = match halt {
                Some(halt) => halt,
                None => {
                    let recorded = match step.direction {
                        Direction::Up => {
                            journal::record_applied(self.client, file, started.elapsed()).await
                        }
                        Direction::Down => journal::record_unapplied(self.client, file).await,
                    };
                    let last = section.statements.last().expect("sections are not empty");
                    let last_ref = stmt_ref(file, last, total);
                    match recorded {
                        Err(e) if self.cancel_sent && is_query_canceled(&e) => {
                            Halt::Cancelled(last, last_ref, true)
                        }
                        Err(e) => {
                            let _ = self.rollback("rolling back the migration").await;
                            return Err(e.into());
                        }
                        Ok(()) => match self.client.batch_execute("COMMIT").await {
                            Ok(()) => return Ok(()),
                            // A COMMIT that fails rolls back: the late cancel request
                            // landed on it.
                            Err(e)
                                if self.cancel_sent
                                    && e.code() == Some(&SqlState::QUERY_CANCELED) =>
                            {
                                Halt::Cancelled(last, last_ref, true)
                            }
                            Err(e) => {
                                let _ = self.rollback("rolling back the migration").await;
                                return Err(PgError::query("committing the migration")(e).into());
                            }
                        },
                    }
                }
            };
            self.rollback("rolling back the migration").await?;
            let (stmt, at, e) = match halt {
                Halt::Cancelled(stmt, at, in_flight) => {
                    return Err(self.cancelled(step, stmt, at, in_flight).await);
                }
                Halt::Failed(stmt, at, e) => (stmt, at, e),
            };
            // A lock timeout aborts the whole transaction: retry all of it.
            if e.is_lock_timeout() && retry < self.policy.max_retries {
                retry += 1;
                if !self.back_off(at, retry, e.blockers, true).await {
                    let first = &section.statements[0];
                    let at = stmt_ref(file, first, total);
                    return Err(self.cancelled(step, first, at, false).await);
                }
                continue;
            }
            let outcome = match step.direction {
                Direction::Up => format!("rolled back: nothing of {} was applied", file.id()),
                Direction::Down => format!("rolled back: {} is still applied", file.id()),
            };
            return Err(self.fail(step, stmt, e, retry, outcome).await.into());
        }
    }

    async fn run_statement_by_statement(
        &mut self,
        step: &Step,
        prior: Option<&Entry>,
    ) -> Result<(), Stop> {
        let file = &step.file;
        let section = step.section();
        let started = Instant::now();
        self.bookkeep(|| journal::record_running(self.client, file, step.direction, self.pid))
            .await?;
        for stmt in section.statements.iter().skip(step.resume_from) {
            let at = stmt_ref(file, stmt, section.statements.len());
            let name = statement_session_name(file, step.direction, stmt.index + 1);
            if let Some(spec) = &stmt.backfill {
                self.run_backfill(step, &at, stmt, spec, &name).await?;
                continue;
            }
            let mut retry = 0;
            // Why an INVALID index of this statement would exist, as far as we know.
            let mut cause = match prior.and_then(|p| p.error.as_deref()) {
                Some(_) if stmt.index == step.resume_from && prior.is_some_and(|p| p.cancelled) => {
                    "left by the cancelled build of the last run".to_string()
                }
                Some(e) if stmt.index == step.resume_from => format!(
                    "left by the failed build of the last run: {}",
                    e.lines().next().unwrap_or(e)
                ),
                _ => {
                    "left by a CREATE INDEX CONCURRENTLY that failed or was interrupted".to_string()
                }
            };
            // The last runner died while this statement ran outside a transaction.
            let mut in_doubt = step.interrupted && stmt.index == step.resume_from;
            // PostgreSQL refuses it in a transaction block: it runs alone, in flight.
            let mut outside = stmt.kind().needs_no_transaction || stmt.kind().commits_itself;
            loop {
                if self.cancel.is_cancelled() {
                    return Err(self.cancelled(step, stmt, at, false).await);
                }
                if std::mem::take(&mut in_doubt) && self.settle_in_doubt(step, &at, stmt).await? {
                    break;
                }
                if let Some(build) = &stmt.kind().index_build
                    && build.create
                    && let Some(index) = &build.index
                {
                    self.prepare_index_build(step, &at, stmt, index, &cause)
                        .await?;
                }
                self.emit(Event::StatementStarted {
                    statement: at.clone(),
                    attempt: retry + 1,
                });
                let result = if outside {
                    self.run_outside_transaction(step, &at, stmt, &name).await?
                } else {
                    self.run_in_short_transaction(step, &at, stmt, &name)
                        .await?
                };
                match result {
                    Ok(d) => {
                        self.emit(Event::StatementFinished {
                            statement: at.clone(),
                            duration: d,
                        });
                        break;
                    }
                    Err(e) if e.cancelled => {
                        return Err(self.cancelled(step, stmt, at, true).await);
                    }
                    // Through a transaction pooler it cannot run alone (its session
                    // settings would stay behind): it fails, saying so.
                    Err(e) if !outside && e.needs_no_transaction() && self.pooled.is_none() => {
                        outside = true
                    }
                    Err(e) if e.is_lock_timeout() && retry < self.policy.max_retries => {
                        retry += 1;
                        cause = "left by the previous attempt, which hit lock_timeout".to_string();
                        if !self.back_off(at.clone(), retry, e.blockers, false).await {
                            return Err(self.cancelled(step, stmt, at, false).await);
                        }
                    }
                    Err(e) => {
                        let mut outcome = format!(
                            "{} of {} statements of {} are done; fix the cause and rerun `pgcalm migrate` to resume at statement {}",
                            stmt.index,
                            section.statements.len(),
                            file.id(),
                            stmt.index + 1
                        );
                        if let Some(left) = self.left_index(stmt).await {
                            outcome.push_str(&format!(
                                "\n  the failed build left an INVALID index {} on {}; the next run drops it concurrently and rebuilds it",
                                left.index, left.table
                            ));
                        }
                        if e.needs_no_transaction() && self.pooled.is_some() {
                            outcome.push_str(
                                "\n  it must run outside a transaction, which pgcalm does not do through a transaction pooler: give --direct-url (PGCALM_MIGRATE_URL)",
                            );
                        }
                        return Err(self.fail(step, stmt, e, retry, outcome).await.into());
                    }
                }
            }
        }
        let took = started.elapsed();
        match step.direction {
            Direction::Up => {
                self.bookkeep(|| journal::record_applied(self.client, file, took))
                    .await?
            }
            Direction::Down => {
                self.bookkeep(|| journal::record_unapplied(self.client, file))
                    .await?
            }
        }
        Ok(())
    }

    /// A `-- pgcalm:backfill` UPDATE: keyset batches over the table's primary key, each
    /// in a short transaction of its own (BEGIN, through a pooler the fence, the
    /// statement's `SET LOCAL` timeouts, the batch, which upserts its last key in
    /// `pgcalm.backfill_progress`, COMMIT), from the key the journal holds (an earlier
    /// run's last committed batch). Before each batch it waits while a replica lags more
    /// than the policy allows; the batch size adapts to the target batch time. When the
    /// walk ends, the statement is journaled done and its progress row cleared together.
    async fn run_backfill(
        &mut self,
        step: &Step,
        at: &StatementRef,
        stmt: &Statement,
        spec: &BackfillSpec,
        name: &str,
    ) -> Result<(), Stop> {
        let file = &step.file;
        let update = BackfillUpdate::of(&stmt.sql).map_err(|e| {
            MigrateError::File(crate::error::FileError {
                path: file.path.clone(),
                line: stmt.line,
                column: None,
                kind: crate::error::FileErrorKind::BackfillNotUpdate {
                    reason: e.0,
                    directive_line: spec.line,
                },
            })
        })?;
        let key = catalog::primary_key(self.monitor, &update.table)
            .await?
            .ok_or_else(|| MigrateError::BackfillNoPrimaryKey {
                path: file.path.clone(),
                line: stmt.line,
                directive_line: spec.line,
                table: update.table.clone(),
            })?;
        let total = catalog::estimated_rows(self.monitor, &key.table).await?;
        let (client, direction, index) = (self.client, step.direction, stmt.index);
        let mut progress = self
            .bookkeep(|| journal::backfill_progress(client, file, direction, index))
            .await?
            .unwrap_or_default();
        let mut sizer = spec.sizer();
        let limit = self.policy.max_replica_lag.filter(|d| !d.is_zero());
        self.emit(Event::StatementStarted {
            statement: at.clone(),
            attempt: 1,
        });
        self.emit(Event::BackfillStarted {
            statement: at.clone(),
            table: key.table.clone(),
            key: key.columns.iter().map(|(c, _)| c.clone()).collect(),
            total_estimate: total,
            resumed_rows: progress.rows_scanned,
            batch_size: sizer.size(),
            max_replica_lag: limit,
        });
        let journal_key = JournalKey {
            app: &file.app,
            name: &file.name,
            direction: direction.as_str(),
            index,
        };
        let started = Instant::now();
        let start_rows = progress.rows_scanned;
        let mut waited = Duration::ZERO;
        let mut retry = 0;
        // The walk ends when no key is left after the last one done.
        loop {
            if self.cancel.is_cancelled() {
                return Err(self.cancelled(step, stmt, at.clone(), false).await);
            }
            if let Some(limit) = limit {
                match self.wait_for_replicas(at, limit).await? {
                    Some(w) => waited += w,
                    None => return Err(self.cancelled(step, stmt, at.clone(), false).await),
                }
            }
            let batch_started = Instant::now();
            self.begin("starting a backfill batch").await?;
            let next =
                update.next_keys_sql(&key.columns, progress.last_key.as_deref(), sizer.size());
            let upto = match client.query_opt(&next, &[]).await {
                Ok(Some(row)) => (row.get::<_, Vec<String>>(0), row.get::<_, i64>(1)),
                Ok(None) => {
                    self.rollback("ending the backfill's last key query")
                        .await?;
                    break;
                }
                Err(e) => {
                    let _ = self.rollback("rolling back the backfill batch").await;
                    if self.cancel_sent && is_canceled(&e) {
                        return Err(self.cancelled(step, stmt, at.clone(), false).await);
                    }
                    return Err(PgError::query(format!(
                        "finding the next keys of the backfill at {}:{}",
                        at.path.display(),
                        at.line
                    ))(e)
                    .into());
                }
            };
            let batch = synthetic(&update.batch_sql(
                &key.columns,
                progress.last_key.as_deref(),
                &upto.0,
                upto.1,
                &journal_key,
            ));
            let failed = match self.execute(at, &batch, true, name).await {
                Ok(_) => match journal::backfill_progress(client, file, direction, index).await {
                    Ok(Some(now)) => match client.batch_execute("COMMIT").await {
                        Ok(()) => {
                            let took = batch_started.elapsed();
                            sizer.observe(took);
                            retry = 0;
                            let batch_rows = now.last_batch_rows;
                            progress = now;
                            let rate = (progress.rows_scanned - start_rows) as f64
                                / started.elapsed().as_secs_f64().max(1e-3);
                            let total = total.max(progress.rows_scanned);
                            self.emit(Event::BackfillProgress {
                                statement: at.clone(),
                                rows_done: progress.rows_scanned,
                                rows_updated: progress.rows_updated,
                                total_estimate: total,
                                batches: progress.batches,
                                batch_rows,
                                batch_time: took,
                                next_batch_size: sizer.size(),
                                rows_per_sec: rate,
                                eta: (rate > 0.0).then(|| {
                                    Duration::from_secs_f64(
                                        (total - progress.rows_scanned) as f64 / rate,
                                    )
                                }),
                            });
                            if !spec.delay.is_zero() {
                                tokio::select! {
                                    _ = tokio::time::sleep(spec.delay) => {}
                                    _ = self.cancel.cancelled() => {}
                                }
                            }
                            continue;
                        }
                        Err(error) => {
                            let _ = client.batch_execute("ROLLBACK").await;
                            ExecError {
                                cancelled: self.cancel_sent && is_canceled(&error),
                                error,
                                blockers: Vec::new(),
                            }
                        }
                    },
                    Ok(None) => {
                        self.rollback("rolling back the backfill batch").await?;
                        return Err(Stop::Failed(MigrateError::Pg(PgError::UnexpectedAnswer(
                            format!(
                                "the backfill batch of {}:{} left no row in pgcalm.backfill_progress",
                                at.path.display(),
                                at.line
                            ),
                        ))));
                    }
                    Err(e) => {
                        self.rollback("rolling back the backfill batch").await?;
                        return match e {
                            PgError::Query { source, .. }
                                if self.cancel_sent && is_canceled(&source) =>
                            {
                                Err(self.cancelled(step, stmt, at.clone(), true).await)
                            }
                            e => Err(e.into()),
                        };
                    }
                },
                Err(e) => {
                    self.rollback("rolling back the backfill batch").await?;
                    e
                }
            };
            if failed.cancelled {
                return Err(self.cancelled(step, stmt, at.clone(), true).await);
            }
            if failed.is_lock_timeout() && retry < self.policy.max_retries {
                retry += 1;
                if !self
                    .back_off(at.clone(), retry, failed.blockers, false)
                    .await
                {
                    return Err(self.cancelled(step, stmt, at.clone(), false).await);
                }
                continue;
            }
            let outcome = format!(
                "{} of {} statements of {} are done, and {} batches of this backfill ({} rows) are committed; fix the cause and rerun `pgcalm migrate` to resume after the last committed batch",
                stmt.index,
                step.section().statements.len(),
                file.id(),
                progress.batches,
                progress.rows_scanned
            );
            return Err(self.fail(step, stmt, failed, retry, outcome).await.into());
        }
        // Done and forgotten together: a run killed in between redoes neither.
        let took = started.elapsed();
        self.begin("recording the backfill as done").await?;
        let recorded = async {
            journal::record_statement_done(client, file, direction, index, took).await?;
            journal::clear_backfill(client, file, direction, index).await
        }
        .await;
        if let Err(e) = recorded {
            let _ = self
                .rollback("rolling back the backfill's journal entry")
                .await;
            return Err(e.into());
        }
        self.sql("COMMIT", "committing the backfill's journal entry")
            .await?;
        self.emit(Event::BackfillFinished {
            statement: at.clone(),
            rows_done: progress.rows_scanned,
            rows_updated: progress.rows_updated,
            batches: progress.batches,
            waited_for_replica: waited,
        });
        self.emit(Event::StatementFinished {
            statement: at.clone(),
            duration: took,
        });
        Ok(())
    }

    /// Waits while a replica's replay lag (read on the primary) is above `limit`,
    /// reporting the wait. Returns how long it waited; None when the run was cancelled
    /// meanwhile.
    async fn wait_for_replicas(
        &self,
        at: &StatementRef,
        limit: Duration,
    ) -> Result<Option<Duration>, Stop> {
        let started = Instant::now();
        let mut reported = false;
        loop {
            let lag = catalog::max_replica_lag(self.monitor).await?;
            match lag {
                Some((replica, lag)) if lag.seconds.unwrap_or(0.0) > limit.as_secs_f64() => {
                    if !reported {
                        reported = true;
                        self.emit(Event::ReplicaLagWait {
                            statement: at.clone(),
                            replica,
                            lag_secs: lag.seconds.unwrap_or(0.0),
                            lag_bytes: lag.bytes,
                            limit,
                        });
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                        _ = self.cancel.cancelled() => return Ok(None),
                    }
                }
                _ if reported => {
                    let waited = started.elapsed();
                    self.emit(Event::ReplicaLagCleared {
                        statement: at.clone(),
                        waited,
                    });
                    return Ok(Some(waited));
                }
                // The check itself is not a wait.
                _ => return Ok(Some(Duration::ZERO)),
            }
        }
    }

    /// A statement of a no-transaction section that may run in a transaction: BEGIN,
    /// the statement, its journal entry, COMMIT. Done and journaled commit together, so
    /// a runner killed at any point leaves it either done and journaled or rolled back.
    /// The outer error is bookkeeping's; the inner one the statement's (a COMMIT that
    /// fails counts as the statement's: nothing of it stays).
    async fn run_in_short_transaction(
        &mut self,
        step: &Step,
        at: &StatementRef,
        stmt: &Statement,
        name: &str,
    ) -> Result<Result<Duration, ExecError>, MigrateError> {
        self.begin("starting the statement's transaction").await?;
        let took = match self.execute(at, stmt, true, name).await {
            Ok(d) => d,
            Err(e) => {
                self.rollback("rolling back the failed statement").await?;
                return Ok(Err(e));
            }
        };
        if let Err(e) = journal::record_statement_done(
            self.client,
            &step.file,
            step.direction,
            stmt.index,
            took,
        )
        .await
        {
            self.rollback("rolling back the statement").await?;
            return match e {
                PgError::Query { source, .. } if self.cancel_sent && is_canceled(&source) => {
                    Ok(Err(ExecError {
                        error: source,
                        blockers: Vec::new(),
                        cancelled: true,
                    }))
                }
                e => Err(e.into()),
            };
        }
        match self.client.batch_execute("COMMIT").await {
            Ok(()) => Ok(Ok(took)),
            Err(error) => {
                // Whatever failed it (a deferred constraint, the late cancel request),
                // the transaction is gone; make sure the session is out of it.
                let _ = self.client.batch_execute("ROLLBACK").await;
                Ok(Err(ExecError {
                    cancelled: self.cancel_sent && is_canceled(&error),
                    error,
                    blockers: Vec::new(),
                }))
            }
        }
    }

    /// A statement PostgreSQL refuses in a transaction (CONCURRENTLY, VACUUM...): marked
    /// in flight in the journal, sent alone, journaled when it completes. If the runner
    /// dies meanwhile, the resume checks the database before running it again
    /// ([`Executor::settle_in_doubt`]).
    async fn run_outside_transaction(
        &mut self,
        step: &Step,
        at: &StatementRef,
        stmt: &Statement,
        name: &str,
    ) -> Result<Result<Duration, ExecError>, MigrateError> {
        let (client, file) = (self.client, &step.file);
        self.book(|| journal::record_in_flight(client, file, Some(stmt.index)))
            .await?;
        let result = self.execute(at, stmt, false, name).await;
        // Named after the statement only while it runs (a plain SET outlives it).
        self.book(|| async move {
            client
                .batch_execute(&format!("SET application_name = {}", literal(SESSION_NAME)))
                .await
                .map_err(PgError::query("naming the runner's session"))
        })
        .await?;
        match result {
            Ok(took) => {
                self.book(|| {
                    journal::record_statement_done(client, file, step.direction, stmt.index, took)
                })
                .await?;
                Ok(Ok(took))
            }
            Err(e) => {
                // The server answered with an error: it did not complete.
                self.book(|| journal::record_in_flight(client, file, None))
                    .await?;
                Ok(Err(e))
            }
        }
    }

    /// The statement at which an earlier runner died while it ran outside a transaction:
    /// true when the database shows it completed (recorded as done), false when it is to
    /// run (again): what it did is visible and not done, running it twice does no harm,
    /// or `--rerun`. Otherwise, without `--assume-done`, an error naming it.
    async fn settle_in_doubt(
        &mut self,
        step: &Step,
        at: &StatementRef,
        stmt: &Statement,
    ) -> Result<bool, Stop> {
        let done = |reason: String| Event::StatementAlreadyDone {
            statement: at.clone(),
            reason,
        };
        let rerun = |reason: String| Event::StatementRerun {
            statement: at.clone(),
            reason,
        };
        let (event, completed) = match &stmt.kind().recheck {
            Recheck::IndexValid(index) => match catalog::index_state(self.monitor, index).await? {
                Some(s) if s.valid && s.in_flight_pid.is_none() => (
                    done(format!(
                        "index {} exists and is valid: the interrupted run finished this statement",
                        s.name
                    )),
                    true,
                ),
                // Not built: an INVALID leftover is dropped and the build runs again.
                _ => return Ok(false),
            },
            Recheck::IndexGone(index) => match catalog::index_state(self.monitor, index).await? {
                None => (
                    done(format!(
                        "index {index} no longer exists: the interrupted run finished this statement"
                    )),
                    true,
                ),
                Some(_) => (
                    rerun(format!(
                        "index {index} still exists: the interrupted run did not finish dropping it"
                    )),
                    false,
                ),
            },
            Recheck::Rerun => (
                rerun(
                    "it may have run before the runner stopped; running it again does no harm"
                        .into(),
                ),
                false,
            ),
            Recheck::Unknown => match self.in_doubt {
                InDoubt::AssumeDone => (
                    done("--assume-done: recorded as done without running it".into()),
                    true,
                ),
                InDoubt::Rerun => (rerun("--rerun: running it again".into()), false),
                InDoubt::Ask => {
                    return Err(MigrateError::InDoubt {
                        migration: at.migration.clone(),
                        path: at.path.clone(),
                        line: at.line,
                        number: at.number,
                        statement: at.summary.clone(),
                    }
                    .into());
                }
            },
        };
        self.emit(event);
        if completed {
            self.bookkeep(|| {
                journal::record_statement_done(
                    self.client,
                    &step.file,
                    step.direction,
                    stmt.index,
                    Duration::ZERO,
                )
            })
            .await?;
        }
        Ok(completed)
    }

    /// Before a CREATE INDEX [CONCURRENTLY] with a name: a build of that index still in
    /// flight in another session is an error (never touched); an INVALID leftover of a
    /// concurrent build is dropped concurrently so the build can run again.
    async fn prepare_index_build(
        &mut self,
        step: &Step,
        at: &StatementRef,
        stmt: &Statement,
        index: &str,
        cause: &str,
    ) -> Result<(), Stop> {
        let Some(state) = catalog::index_state(self.monitor, index).await? else {
            return Ok(());
        };
        if let Some(pid) = state.in_flight_pid {
            return Err(MigrateError::IndexBuildInFlight {
                path: at.path.clone(),
                line: at.line,
                index: state.name,
                pid,
            }
            .into());
        }
        if state.valid
            || !stmt
                .kind()
                .index_build
                .as_ref()
                .is_some_and(|b| b.concurrent)
        {
            return Ok(());
        }
        self.emit(Event::InvalidIndexFound {
            statement: at.clone(),
            index: state.name.clone(),
            table: state.table.clone(),
            cause: cause.to_string(),
        });
        let drop = synthetic(&format!("DROP INDEX CONCURRENTLY IF EXISTS {}", state.name));
        let name = statement_session_name(&step.file, step.direction, stmt.index + 1);
        let mut retry = 0;
        loop {
            match self.execute(at, &drop, false, &name).await {
                Ok(_) => break,
                Err(e) if e.cancelled => {
                    return Err(self.cancelled(step, stmt, at.clone(), false).await);
                }
                Err(e) if e.is_lock_timeout() && retry < self.policy.max_retries => {
                    retry += 1;
                    if !self.back_off(at.clone(), retry, e.blockers, false).await {
                        return Err(self.cancelled(step, stmt, at.clone(), false).await);
                    }
                }
                Err(e) => {
                    return Err(PgError::Query {
                        context: format!("dropping the invalid index {}", state.name),
                        source: e.error,
                    }
                    .into());
                }
            }
        }
        self.emit(Event::InvalidIndexDropped { index: state.name });
        Ok(())
    }

    /// The INVALID index a (failed or cancelled) CONCURRENTLY build of `stmt` left.
    async fn left_index(&self, stmt: &Statement) -> Option<LeftIndex> {
        let index = stmt
            .kind()
            .index_build
            .as_ref()
            .filter(|b| b.create && b.concurrent)?
            .index
            .as_ref()?;
        match catalog::index_state(self.monitor, index).await {
            Ok(Some(state)) if !state.valid => Some(LeftIndex {
                index: state.name,
                table: state.table,
            }),
            _ => None,
        }
    }

    async fn sql(&self, sql: &str, what: &str) -> Result<(), MigrateError> {
        self.client
            .batch_execute(sql)
            .await
            .map_err(|e| PgError::query(what.to_string())(e).into())
    }

    /// Records in the journal that the run was cancelled at `stmt` (cancelled on the
    /// server when `in_flight`, else before it was sent) and says what is left.
    async fn cancelled(
        &self,
        step: &Step,
        stmt: &Statement,
        at: StatementRef,
        in_flight: bool,
    ) -> Stop {
        let section = step.section();
        let message = if in_flight {
            format!(
                "cancelled while statement {} of {} ran",
                at.number, at.total
            )
        } else {
            format!(
                "cancelled before statement {} of {} ran",
                at.number, at.total
            )
        };
        let (client, file) = (self.client, &step.file);
        // Best effort: the journal write must not hide what happened.
        let _ = self
            .bookkeep(|| {
                journal::record_failure(client, file, step.direction, &message, stmt.line, true)
            })
            .await;
        Stop::Cancelled(StoppedMigration {
            statement: at,
            in_flight,
            direction: step.direction,
            transaction: section.transaction,
            done: if section.transaction { 0 } else { stmt.index },
            invalid_index: self.left_index(stmt).await.map(|l| (l.index, l.table)),
        })
    }

    /// Records the failure in the journal and builds the error.
    async fn fail(
        &self,
        step: &Step,
        stmt: &Statement,
        e: ExecError,
        retries: u32,
        outcome: String,
    ) -> MigrateError {
        let file = &step.file;
        let section = step.section();
        let (message, code, position) = match e.error.as_db_error() {
            Some(db) => {
                let mut m = format!("{}: {}", db.severity(), db.message());
                if let Some(d) = db.detail() {
                    m.push_str(&format!("\n  DETAIL: {d}"));
                }
                if let Some(h) = db.hint() {
                    m.push_str(&format!("\n  HINT: {h}"));
                }
                let pos = match db.position() {
                    Some(ErrorPosition::Original(p)) => Some(*p as usize),
                    _ => None,
                };
                (m, db.code().code().to_string(), pos)
            }
            None => (e.error.to_string(), String::new(), None),
        };
        let (line, column) = match position {
            Some(p) => {
                let (l, c) = stmt.position_in_file(&file.source, p);
                (l, Some(c))
            }
            None => (stmt.line, None),
        };
        let message = if e.is_lock_timeout() {
            format!(
                "{message} (lock_timeout {}ms; the application was never queued behind this statement for longer)",
                self.policy.lock_timeout.as_millis()
            )
        } else {
            message
        };
        // Best effort: the journal write must not hide the real error.
        let _ = self
            .bookkeep(|| {
                journal::record_failure(self.client, file, step.direction, &message, line, false)
            })
            .await;
        MigrateError::StatementFailed(Box::new(StatementFailure {
            migration: file.id(),
            path: file.path.clone(),
            line,
            column,
            number: stmt.index + 1,
            total: section.statements.len(),
            statement: stmt.summary(),
            code,
            message,
            outcome,
            retries,
            blockers: e.blockers,
        }))
    }
}

/// Why a transactional migration stopped: the run was cancelled at a statement (in
/// flight on the server, or not sent yet), or a statement failed.
enum Halt<'a> {
    Cancelled(&'a Statement, StatementRef, bool),
    Failed(&'a Statement, StatementRef, ExecError),
}

fn is_canceled(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&SqlState::QUERY_CANCELED)
}

fn is_query_canceled(e: &PgError) -> bool {
    matches!(e, PgError::Query { source, .. } if is_canceled(source))
}

fn stmt_ref(file: &MigrationFile, stmt: &Statement, total: usize) -> StatementRef {
    StatementRef {
        migration: file.id(),
        path: file.path.clone(),
        line: stmt.line,
        number: stmt.index + 1,
        total,
        summary: stmt.summary(),
    }
}

/// Parses the files a plan runs ([`MigrationFile::check`]: syntax, BEGIN/COMMIT,
/// CONCURRENTLY in a transaction), before any runs; only those: the others were only
/// scanned.
fn check_files(plan: &Plan) -> Result<(), MigrateError> {
    for step in &plan.steps {
        step.file.check()?;
    }
    Ok(())
}

/// A statement pgcalm writes itself (the DROP of an invalid index).
fn synthetic(sql: &str) -> Statement {
    Statement::new(0, sql.to_string(), 0, 0)
}

fn notice_of(n: &DbError) -> Notice {
    Notice {
        severity: n.severity().to_string(),
        message: n.message().to_string(),
        detail: n.detail().map(str::to_string),
        hint: n.hint().map(str::to_string),
    }
}

/// Applies, for each start point, the migrations up to and including it that are not
/// applied yet; never unapplies anything. This is `pgcalm up`'s start point
/// (pgcalm.toml: `[up] migrate_to = ["demoapp:0001"]`).
pub async fn migrate_to_start_point(
    runner: &Runner,
    points: &[StartPoint],
) -> Result<Vec<RunReport>, MigrateError> {
    let mut reports = Vec::new();
    for point in points {
        reports.push(runner.migrate(&point.goal()).await?);
    }
    Ok(reports)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::file::parse_file;

    fn file(app: &str) -> MigrationFile {
        let source = "-- migrate:up\nSELECT 1;\nSELECT 2;\n-- migrate:down\nSELECT 3;\n";
        parse_file(app, Path::new("x/0002_x.sql"), source).unwrap()
    }

    fn session(pid: i32, name: &str) -> SessionInfo {
        SessionInfo {
            pid,
            application_name: name.to_string(),
            user: None,
            state: Some("active".into()),
            query: None,
            xact_age_secs: None,
            wait_event_type: None,
        }
    }

    #[test]
    fn statement_sessions_are_named_and_found_by_migration_direction_and_number() {
        let f = file("app");
        assert_eq!(
            statement_session_name(&f, Direction::Up, 2),
            "pgcalm migrate app.0002 #2"
        );
        let down = statement_session_name(&f, Direction::Down, 1);
        assert_eq!(down, "pgcalm migrate app.0002 down #1");
        let found = statement_session(&f, &session(7, &down), None).unwrap();
        assert_eq!(
            (found.direction, found.number, found.line, found.orphaned),
            (Direction::Down, 1, 5, true)
        );
        assert!(
            !statement_session(&f, &session(7, &down), Some(7))
                .unwrap()
                .orphaned
        );
        assert!(statement_session(&file("other"), &session(7, &down), None).is_none());
        assert!(is_runner_session("pgcalm migrate") && is_runner_session(&down));
        assert!(!is_runner_session(&monitor_name(7)));
    }

    #[test]
    fn a_long_app_name_is_shortened_so_the_statement_number_survives() {
        let f = file(&"é".repeat(40));
        let name = statement_session_name(&f, Direction::Down, 9999);
        assert!(name.len() <= APPLICATION_NAME_MAX, "{name}");
        assert!(name.ends_with(".0002 down #9999"), "{name}");
        assert_eq!(
            statement_session(&f, &session(1, &name), None).map(|s| s.number),
            None,
            "statement 9999 does not exist"
        );
        let name = statement_session_name(&f, Direction::Up, 2);
        assert_eq!(
            statement_session(&f, &session(1, &name), None)
                .unwrap()
                .number,
            2
        );
    }
}
