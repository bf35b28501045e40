//! The runner: one at a time (advisory lock), every statement through
//! [`Executor::execute`] (timeouts, notices, lock-wait sampling, index progress),
//! lock-timeout retries, all-or-nothing transactional migrations, journaled and
//! resumable no-transaction migrations, invalid-index repair.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pgcalm_pg::catalog::{self, SessionInfo};
use pgcalm_pg::{PgError, Target};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_postgres::Client;
use tokio_postgres::error::{DbError, ErrorPosition, SqlState};

use crate::error::{MigrateError, RiskyFinding, StatementFailure};
use crate::event::{Event, Notice, StatementRef};
use crate::file::{Direction, MigrationFile, MigrationSet, Statement};
use crate::journal;
use crate::plan::{self, Goal, MigrationStatus, Plan, Step};
use crate::policy::{Policy, set_sql};

/// Key of the session advisory lock that keeps runners one at a time (per database):
/// "pgcalm" in ASCII.
pub const RUNNER_LOCK_KEY: i64 = 0x7067_6361_6c6d;

/// A callback receiving the runner's [`Event`]s.
pub type EventSink = Arc<dyn Fn(&Event) + Send + Sync>;

/// What a finished `migrate` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    /// The plan that ran.
    pub plan: Plan,
    /// Per migration run: `app.name`, direction, seconds.
    pub ran: Vec<(String, Direction, f64)>,
}

/// Runs migrations from a directory against a database.
#[derive(Clone)]
pub struct Runner {
    target: Target,
    dir: std::path::PathBuf,
    policy: Policy,
    sink: EventSink,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("target", &self.target.masked_url())
            .field("dir", &self.dir)
            .field("policy", &self.policy)
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
        }
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

    /// The policy in use.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Reads and checks the migration files.
    pub fn load(&self) -> Result<MigrationSet, MigrateError> {
        MigrationSet::load(&self.dir)
    }

    /// Every migration's state (`showmigrations`). Reads only; never creates the journal.
    pub async fn status(&self, app: Option<&str>) -> Result<Vec<MigrationStatus>, MigrateError> {
        let set = self.load()?;
        let client = self
            .target
            .with_application_name("pgcalm showmigrations")
            .connect()
            .await?;
        let journal = journal::load(&client).await?;
        let active = catalog::advisory_lock_holder(&client, RUNNER_LOCK_KEY)
            .await?
            .map(|s| s.pid);
        plan::statuses(&set, &journal, app, active)
    }

    /// What [`Runner::migrate`] would run now, without running it (`--plan`).
    pub async fn plan(&self, goal: &Goal) -> Result<Plan, MigrateError> {
        let set = self.load()?;
        let client = self
            .target
            .with_application_name("pgcalm migrate --plan")
            .connect()
            .await?;
        let journal = journal::load(&client).await?;
        plan::check_checksums(&set, &journal, &goal_apps(&set, goal))?;
        let plan = plan::plan(&set, &journal, goal)?;
        check_files(&plan)?;
        Ok(plan)
    }

    /// The lint options the runner judges migrations with: the server's major version
    /// (for `--plan`'s verdicts, the same the refusal uses).
    pub async fn lint_options(&self) -> Result<pgcalm_lint::LintOptions, MigrateError> {
        let client = self
            .target
            .with_application_name("pgcalm migrate --plan")
            .connect()
            .await?;
        lint_options_of(&client).await
    }

    /// Migrates to `goal`: takes the runner lock, checks the files against the journal,
    /// and runs the plan. Emits [`Event::Planned`] once the plan is known.
    pub async fn migrate(&self, goal: &Goal) -> Result<Report, MigrateError> {
        // Files first: a malformed file stops everything before a connection is made
        // (the files about to run are parsed once the plan is known).
        let set = self.load()?;
        let (client, notices) = self
            .target
            .with_application_name("pgcalm migrate")
            .connect_with_notices()
            .await?;
        let monitor = self
            .target
            .with_application_name("pgcalm migrate (monitor)")
            .connect()
            .await?;
        let pid = catalog::backend_pid(&client).await?;
        // pgcalm's own bookkeeping (journal DDL and writes) gets the same short
        // lock_timeout: nothing this session does may queue the application for long.
        let bookkeeping = set_sql(&self.policy.settings_for(&Default::default()), false);
        client
            .batch_execute(&bookkeeping)
            .await
            .map_err(PgError::query("setting the runner session's timeouts"))?;
        self.acquire_lock(&client, &monitor).await?;
        let journal = journal::load(&client).await?;
        plan::check_checksums(&set, &journal, &goal_apps(&set, goal))?;
        let plan = plan::plan(&set, &journal, goal)?;
        check_files(&plan)?;
        // Safe by default: lint what is about to run, refuse it before anything runs.
        if !self.policy.allow_risky {
            let options = lint_options_of(&client).await?;
            let findings = risky_findings(&plan, &options);
            if !findings.is_empty() {
                return Err(MigrateError::RiskyMigration { findings });
            }
        }
        // Only now that the files are known to be good: nothing changes before.
        journal::ensure_schema(&client).await?;
        self.emit(Event::Planned {
            operation: plan.operation.clone(),
            steps: plan
                .steps
                .iter()
                .map(crate::event::PlannedStep::from)
                .collect(),
        });
        let mut exec = Executor {
            client: &client,
            notices,
            monitor: &monitor,
            pid,
            policy: &self.policy,
            sink: &self.sink,
        };
        let mut ran = Vec::new();
        for step in &plan.steps {
            let started = Instant::now();
            let prior_error = journal
                .get(&(step.file.app.clone(), step.file.name.clone()))
                .and_then(|e| e.error.clone());
            exec.run_step(step, prior_error.as_deref()).await?;
            let took = started.elapsed();
            self.emit(Event::MigrationFinished {
                app: step.file.app.clone(),
                name: step.file.name.clone(),
                direction: step.direction,
                duration: took,
            });
            ran.push((step.file.id(), step.direction, took.as_secs_f64()));
        }
        // Closing the session releases the advisory lock.
        drop(client);
        Ok(Report { plan, ran })
    }

    async fn acquire_lock(&self, client: &Client, monitor: &Client) -> Result<(), MigrateError> {
        let started = Instant::now();
        let mut reported = false;
        loop {
            let got: bool = client
                .query_one("SELECT pg_try_advisory_lock($1)", &[&RUNNER_LOCK_KEY])
                .await
                .map_err(PgError::query("taking the migration runner lock"))?
                .get(0);
            if got {
                if reported {
                    self.emit(Event::LockAcquired {
                        waited: started.elapsed(),
                    });
                }
                return Ok(());
            }
            let waited = started.elapsed();
            if let Some(limit) = self.policy.wait_for_lock
                && waited >= limit
            {
                let holder = catalog::advisory_lock_holder(monitor, RUNNER_LOCK_KEY).await?;
                return Err(MigrateError::LockBusy {
                    holder: holder.map(Box::new),
                    waited,
                });
            }
            if !reported {
                let holder = catalog::advisory_lock_holder(monitor, RUNNER_LOCK_KEY).await?;
                self.emit(Event::WaitingForLock { holder });
                reported = true;
            }
            let nap = Duration::from_millis(200);
            let nap = match self.policy.wait_for_lock {
                Some(limit) => nap
                    .min(limit.saturating_sub(waited))
                    .max(Duration::from_millis(1)),
                None => nap,
            };
            tokio::time::sleep(nap).await;
        }
    }

    fn emit(&self, e: Event) {
        (self.sink)(&e)
    }
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

/// Lint options for the server's major version (`15` for 15.4).
async fn lint_options_of(client: &Client) -> Result<pgcalm_lint::LintOptions, MigrateError> {
    Ok(pgcalm_lint::LintOptions {
        pg_version: pgcalm_lint::PgVersion(catalog::server_major_version(client).await?),
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
}

impl ExecError {
    fn is_lock_timeout(&self) -> bool {
        self.error.code() == Some(&SqlState::LOCK_NOT_AVAILABLE)
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
}

impl Executor<'_> {
    fn emit(&self, e: Event) {
        (self.sink)(&e)
    }

    /// After a lock timeout: reports retry number `retry` with who blocked it, then
    /// sleeps the policy's jittered backoff.
    async fn back_off(
        &self,
        statement: StatementRef,
        retry: u32,
        blockers: Vec<SessionInfo>,
        whole_transaction: bool,
    ) {
        let delay = self.policy.backoff(retry);
        self.emit(Event::LockTimeoutRetry {
            statement,
            retry,
            max_retries: self.policy.max_retries,
            delay,
            blockers,
            whole_transaction,
        });
        tokio::time::sleep(delay).await;
    }

    /// THE way the runner sends a statement: sets `lock_timeout` and `statement_timeout`
    /// for it (`SET LOCAL` inside a transaction), sends it alone (no implicit multi-
    /// statement transaction), and while it runs samples, from the monitor connection,
    /// the sessions blocking it and the index-build progress, and forwards NOTICEs.
    async fn execute(
        &mut self,
        at: &StatementRef,
        stmt: &Statement,
        in_transaction: bool,
    ) -> Result<Duration, ExecError> {
        // Anything still queued came from pgcalm's own bookkeeping, not from this statement.
        while self.notices.try_recv().is_ok() {}
        let settings = self.policy.settings_for(stmt.kind());
        self.client
            .batch_execute(&set_sql(&settings, in_transaction))
            .await
            .map_err(|error| ExecError {
                error,
                blockers: Vec::new(),
            })?;
        let started = Instant::now();
        let poll = (self.policy.lock_timeout / 4)
            .clamp(Duration::from_millis(25), Duration::from_millis(250));
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + poll, poll);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut blockers: Vec<SessionInfo> = Vec::new();
        let builds_index = stmt.kind().index_build.is_some();
        let result = {
            let fut = self.client.batch_execute(&stmt.sql);
            tokio::pin!(fut);
            loop {
                tokio::select! {
                    r = &mut fut => break r,
                    Some(n) = self.notices.recv() => {
                        (self.sink)(&Event::Notice { statement: at.clone(), notice: notice_of(&n) });
                    }
                    _ = ticker.tick() => {
                        // Monitoring is best effort: a failed sample must not fail the statement.
                        if let Ok(now) = catalog::blocking_sessions(self.monitor, self.pid).await
                            && !now.is_empty()
                        {
                            let changed = now.iter().map(|s| s.pid).collect::<Vec<_>>()
                                != blockers.iter().map(|s| s.pid).collect::<Vec<_>>();
                            blockers = now;
                            if changed {
                                (self.sink)(&Event::LockWait { statement: at.clone(), blockers: blockers.clone() });
                            }
                        }
                        if builds_index
                            && let Ok(Some(progress)) = catalog::index_build_progress(self.monitor, self.pid).await
                        {
                            (self.sink)(&Event::IndexProgress { statement: at.clone(), progress });
                        }
                    }
                }
            }
        };
        while let Ok(n) = self.notices.try_recv() {
            self.emit(Event::Notice {
                statement: at.clone(),
                notice: notice_of(&n),
            });
        }
        result
            .map(|_| started.elapsed())
            .map_err(|error| ExecError { error, blockers })
    }

    async fn run_step(
        &mut self,
        step: &Step,
        prior_error: Option<&str>,
    ) -> Result<(), MigrateError> {
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
            self.run_statement_by_statement(step, prior_error).await
        }
    }

    async fn run_transactional(&mut self, step: &Step) -> Result<(), MigrateError> {
        let file = &step.file;
        let section = step.section();
        let mut retry = 0;
        loop {
            let started = Instant::now();
            self.sql("BEGIN", "starting the migration transaction")
                .await?;
            let mut failure = None;
            for stmt in &section.statements {
                let at = stmt_ref(file, stmt, section.statements.len());
                self.emit(Event::StatementStarted {
                    statement: at.clone(),
                    attempt: retry + 1,
                });
                match self.execute(&at, stmt, true).await {
                    Ok(d) => self.emit(Event::StatementFinished {
                        statement: at,
                        duration: d,
                    }),
                    Err(e) => {
                        failure = Some((stmt, at, e));
                        break;
                    }
                }
            }
            let Some((stmt, at, e)) = failure else {
                let recorded = match step.direction {
                    Direction::Up => {
                        journal::record_applied(self.client, file, started.elapsed()).await
                    }
                    Direction::Down => journal::record_unapplied(self.client, file).await,
                };
                if let Err(err) = recorded {
                    let _ = self.client.batch_execute("ROLLBACK").await;
                    return Err(err.into());
                }
                self.sql("COMMIT", "committing the migration").await?;
                return Ok(());
            };
            self.sql("ROLLBACK", "rolling back the failed migration")
                .await?;
            // A lock timeout aborts the whole transaction: retry all of it.
            if e.is_lock_timeout() && retry < self.policy.max_retries {
                retry += 1;
                self.back_off(at, retry, e.blockers, true).await;
                continue;
            }
            let outcome = match step.direction {
                Direction::Up => format!("rolled back: nothing of {} was applied", file.id()),
                Direction::Down => format!("rolled back: {} is still applied", file.id()),
            };
            return Err(self.fail(step, stmt, e, retry, outcome).await);
        }
    }

    async fn run_statement_by_statement(
        &mut self,
        step: &Step,
        prior_error: Option<&str>,
    ) -> Result<(), MigrateError> {
        let file = &step.file;
        let section = step.section();
        let started = Instant::now();
        journal::record_running(self.client, file, step.direction, self.pid).await?;
        for stmt in section.statements.iter().skip(step.resume_from) {
            let at = stmt_ref(file, stmt, section.statements.len());
            let mut retry = 0;
            // Why an INVALID index of this statement would exist, as far as we know.
            let mut cause = match prior_error {
                Some(e) if stmt.index == step.resume_from => format!(
                    "left by the failed build of the last run: {}",
                    e.lines().next().unwrap_or(e)
                ),
                _ => {
                    "left by a CREATE INDEX CONCURRENTLY that failed or was interrupted".to_string()
                }
            };
            loop {
                if let Some(build) = &stmt.kind().index_build
                    && build.create
                    && let Some(index) = &build.index
                {
                    let first_after_resume = step.interrupted && stmt.index == step.resume_from;
                    match self
                        .prepare_index_build(step, &at, stmt, index, first_after_resume, &cause)
                        .await?
                    {
                        IndexPrep::Build => {}
                        IndexPrep::AlreadyDone => break,
                    }
                }
                self.emit(Event::StatementStarted {
                    statement: at.clone(),
                    attempt: retry + 1,
                });
                match self.execute(&at, stmt, false).await {
                    Ok(d) => {
                        journal::record_statement_done(
                            self.client,
                            file,
                            step.direction,
                            stmt.index,
                            d,
                        )
                        .await?;
                        self.emit(Event::StatementFinished {
                            statement: at.clone(),
                            duration: d,
                        });
                        break;
                    }
                    Err(e) if e.is_lock_timeout() && retry < self.policy.max_retries => {
                        retry += 1;
                        cause = "left by the previous attempt, which hit lock_timeout".to_string();
                        self.back_off(at.clone(), retry, e.blockers, false).await;
                    }
                    Err(e) => {
                        let mut outcome = format!(
                            "{} of {} statements of {} are done; fix the cause and rerun `pgcalm migrate` to resume at statement {}",
                            stmt.index,
                            section.statements.len(),
                            file.id(),
                            stmt.index + 1
                        );
                        if let Some(index) = stmt
                            .kind()
                            .index_build
                            .as_ref()
                            .and_then(|b| b.index.as_ref())
                            && let Ok(Some(state)) = catalog::index_state(self.monitor, index).await
                            && !state.valid
                        {
                            outcome.push_str(&format!(
                                "\n  the failed build left an INVALID index {} on {}; the next run drops it concurrently and rebuilds it",
                                state.name, state.table
                            ));
                        }
                        return Err(self.fail(step, stmt, e, retry, outcome).await);
                    }
                }
            }
        }
        match step.direction {
            Direction::Up => journal::record_applied(self.client, file, started.elapsed()).await?,
            Direction::Down => journal::record_unapplied(self.client, file).await?,
        }
        Ok(())
    }

    /// Before a CREATE INDEX [CONCURRENTLY] with a name: a build of that index still in
    /// flight in another session is an error (never touched); an INVALID leftover is
    /// dropped concurrently so the build can run again; a valid index right after an
    /// interrupted run means the statement completed before the runner died.
    async fn prepare_index_build(
        &mut self,
        step: &Step,
        at: &StatementRef,
        stmt: &Statement,
        index: &str,
        first_after_resume: bool,
        cause: &str,
    ) -> Result<IndexPrep, MigrateError> {
        let Some(state) = catalog::index_state(self.monitor, index).await? else {
            return Ok(IndexPrep::Build);
        };
        if let Some(pid) = state.in_flight_pid {
            return Err(MigrateError::IndexBuildInFlight {
                path: at.path.clone(),
                line: at.line,
                index: state.name,
                pid,
            });
        }
        if state.valid {
            if first_after_resume {
                self.emit(Event::StatementAlreadyDone {
                    statement: at.clone(),
                    reason: format!(
                        "index {} exists and is valid: the interrupted run finished this statement",
                        state.name
                    ),
                });
                journal::record_statement_done(
                    self.client,
                    &step.file,
                    step.direction,
                    stmt.index,
                    Duration::ZERO,
                )
                .await?;
                return Ok(IndexPrep::AlreadyDone);
            }
            return Ok(IndexPrep::Build);
        }
        if !stmt
            .kind()
            .index_build
            .as_ref()
            .is_some_and(|b| b.concurrent)
        {
            return Ok(IndexPrep::Build);
        }
        self.emit(Event::InvalidIndexFound {
            statement: at.clone(),
            index: state.name.clone(),
            table: state.table.clone(),
            cause: cause.to_string(),
        });
        let drop = synthetic(&format!("DROP INDEX CONCURRENTLY IF EXISTS {}", state.name));
        let mut retry = 0;
        loop {
            match self.execute(at, &drop, false).await {
                Ok(_) => break,
                Err(e) if e.is_lock_timeout() && retry < self.policy.max_retries => {
                    retry += 1;
                    self.back_off(at.clone(), retry, e.blockers, false).await;
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
        Ok(IndexPrep::Build)
    }

    async fn sql(&self, sql: &str, what: &str) -> Result<(), MigrateError> {
        self.client
            .batch_execute(sql)
            .await
            .map_err(|e| PgError::query(what.to_string())(e).into())
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
        let _ = journal::record_failure(self.client, file, step.direction, &message, line).await;
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

enum IndexPrep {
    Build,
    AlreadyDone,
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

/// Applies, for each `app:migration` spec, the migrations up to and including it that
/// are not applied yet; never unapplies anything. This is `pgcalm up`'s start point
/// (pgcalm.toml: `[up] migrate_to = ["demoapp:0001"]`).
pub async fn migrate_to_start_point(
    runner: &Runner,
    specs: &[String],
) -> Result<Vec<Report>, MigrateError> {
    let mut reports = Vec::new();
    for spec in specs {
        let (app, target) = spec
            .split_once(':')
            .filter(|(a, t)| !a.is_empty() && !t.is_empty())
            .ok_or_else(|| MigrateError::BadSpec { spec: spec.clone() })?;
        reports.push(
            runner
                .migrate(&Goal::ForwardTo {
                    app: app.to_string(),
                    target: target.to_string(),
                })
                .await?,
        );
    }
    Ok(reports)
}
