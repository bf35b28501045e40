//! The orchestration of a lab run.
//!
//! Once: the demo tables (the embedded `demoapp` 0001 migration, through the runner),
//! leftovers of an interrupted run rolled back and torn down, `large_email` seeded with
//! N rows (skipped when it already holds exactly the seed's rows `1..=N`).
//!
//! Then for each scenario and each of its runs (the risky form on its pool topologies,
//! then the safe form on one shared pool, the demo app as it runs):
//!
//! 1. `setup.sql`; EXPLAIN ANALYZE of the scenario's query, if it has one;
//! 2. the demo API started in-process on free loopback ports, the monitor (a database
//!    snapshot every 250 ms) and the probe (reads and writes every 200 ms, lookups every
//!    2 s, 3 s timeout);
//! 3. a baseline (probe on, nothing else);
//! 4. the scenario's blocking session, if it has one, then the migration through
//!    pgcalm's runner, so every statement is journaled: the risky form the way Django
//!    runs it (one transaction, no lock_timeout, no retries), the safe form with
//!    [`LabOptions::policy`] (by default lock_timeout 2s, retries; `transaction:false`
//!    where the file says);
//! 5. a tail of one probe timeout, so requests sent during the migration finish;
//! 6. EXPLAIN ANALYZE again, the rollback (the down section, through the runner), then
//!    `teardown.sql`, so the next run starts from the same state.
//!
//! At the end the probe's own rows (`POST /add_large/`, ids above N) are deleted, so the
//! next run can reuse the table.
//!
//! Where each step is: `plan.rs` (what runs: scenarios, runs, endpoints, the run's
//! metadata), `prepare.rs` (once, before the first run), `run.rs` (each scenario's runs;
//! steps 1 and 6 and the verdict), `measure.rs` (steps 2 to 5), `migration.rs` (the
//! runner's policies and what a migration did), `sql.rs` (setup, teardown, EXPLAIN).

mod measure;
mod migration;
mod plan;
mod prepare;
mod run;
mod sql;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use pgcalm_demo::{SeedError, SeedEvent, ServeError};
use pgcalm_migrate::{Event, MigrateError, Policy, Runner};
use pgcalm_pg::catalog;
use pgcalm_pg::{PgError, Target};
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

use crate::results::{EndpointRole, Form, FormRun, LabResults, PoolTopology, RunClock};
use crate::scenario::{SEED as SEED_SCENARIO, catalogue};
use crate::topology::LabTopology;

pub(crate) use self::plan::probe_endpoints;

/// Default rows in `large_email` (the seed's 10M).
pub const DEFAULT_ROWS: u64 = 10_000_000;
/// The probe's cadence for reads and writes.
pub(crate) const PROBE_INTERVAL: Duration = Duration::from_millis(200);
/// The probe's cadence for lookups: an unindexed lookup is a parallel scan of the whole
/// table, so probing it often would load the CPU and slow the migration itself.
pub(crate) const LOOKUP_INTERVAL: Duration = Duration::from_secs(2);
/// The probe's timeout.
pub(crate) const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// The email the lookup probe asks for (the Django peer's).
pub(crate) const LOOKUP_EMAIL: &str = "user5@example.com";

/// How to run the lab.
#[derive(Debug, Clone)]
pub struct LabOptions {
    /// Rows in `large_email`.
    pub rows: u64,
    /// Scenario names, in order.
    pub scenarios: Vec<String>,
    /// Where the scenarios' migration files are written for the runner.
    pub work_dir: PathBuf,
    /// Keep each risky form's transaction open this long after its last statement
    /// (emulates a bigger table: see [`crate::Scenario::materialize`]).
    pub hold: Option<Duration>,
    /// Probe on, no migration, before each migration.
    pub baseline: Duration,
    /// Probe on after the migration (at least the probe timeout, so requests sent
    /// during the migration are all counted).
    pub tail: Duration,
    /// How long the scenario's blocking session (slow query, open transaction) lasts.
    pub blocker: Duration,
    /// The safe forms' policy: the one `pgcalm migrate` would use (the CLI passes the
    /// policy resolved from flags, environment and `pgcalm.toml`). Its `lock_timeout`
    /// also sets the safe criteria's limit. Default: [`Policy::default`] (lock_timeout
    /// 2s, retries). The risky forms and the rollbacks keep policies of their own.
    pub policy: Policy,
    /// Parallel COPY streams when seeding.
    pub seed_streams: usize,
    /// Text describing the database for the results (never a password).
    pub database_label: String,
    /// Run in the app's own database instead of the lab's (the seed walkthrough's Step 5,
    /// right after its Step 3): see [`InApp`].
    pub in_app: Option<InApp>,
    /// The demo app through a transaction pooler, a replica's lag sampled: see
    /// [`LabTopology`]. Default: the app connects to the server directly.
    pub topology: LabTopology,
}

/// The lab in the app's own database, the one the seed walkthrough built: `large_email`
/// as the app's seed left it (counted, not reseeded), the app's `demoapp` migrations
/// after 0001 rolled back first (0002's index has the name the seed's scenario builds)
/// and re-applied at the end, the probe's rows deleted. The seed's scenario only: the
/// others change the app's tables in ways of their own.
#[derive(Debug, Clone)]
pub struct InApp {
    /// The app's migrations directory (holding `demoapp/`).
    pub migrations_dir: PathBuf,
}

impl Default for LabOptions {
    fn default() -> Self {
        LabOptions {
            rows: DEFAULT_ROWS,
            scenarios: vec!["add_index".into()],
            work_dir: PathBuf::from("lab-report"),
            hold: None,
            baseline: Duration::from_secs(3),
            tail: PROBE_TIMEOUT + Duration::from_millis(500),
            blocker: Duration::from_secs(6),
            policy: Policy::default(),
            seed_streams: pgcalm_demo::DEFAULT_STREAMS,
            database_label: String::new(),
            in_app: None,
            topology: LabTopology::default(),
        }
    }
}

/// What the lab is doing, for progress displays.
#[derive(Debug, Clone)]
pub enum LabEvent {
    /// A preparation step (a sentence).
    Preparing(String),
    /// Seeding progress.
    Seed(SeedEvent),
    /// A run of a scenario form begins.
    FormStarted {
        /// Scenario name.
        scenario: String,
        /// Risky or safe.
        form: Form,
        /// Pool topology.
        topology: PoolTopology,
        /// 1-based position among all runs.
        number: usize,
        /// Runs in total.
        total: usize,
    },
    /// The current run moves to a step.
    Step(LabStep),
    /// An event of the migration runner (statements, index progress, retries).
    Migration(Box<Event>),
    /// A database snapshot was taken (lock waiters, index builds).
    Snapshot {
        /// Sessions waiting for a lock.
        lock_waiters: usize,
        /// The first index build in flight: phase and percent of its current counter.
        index_build: Option<(String, Option<f64>)>,
    },
    /// A probe request finished.
    Probe {
        /// What it exercised.
        role: EndpointRole,
        /// Whether it succeeded.
        ok: bool,
        /// Its latency.
        latency_ms: f64,
    },
    /// A run finished.
    FormFinished(Box<FormRun>),
}

/// Steps of one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabStep {
    /// `setup.sql`.
    Setup,
    /// EXPLAIN ANALYZE.
    Explain,
    /// Probe on, no migration.
    Baseline,
    /// The migration under the probe.
    Migrating,
    /// Probe on after the migration.
    Tail,
    /// The down section.
    RollingBack,
    /// `teardown.sql`.
    Teardown,
}

impl LabStep {
    /// Lower-case words.
    pub fn as_str(self) -> &'static str {
        match self {
            LabStep::Setup => "setup",
            LabStep::Explain => "explain analyze",
            LabStep::Baseline => "baseline",
            LabStep::Migrating => "migrating",
            LabStep::Tail => "after the migration",
            LabStep::RollingBack => "rolling back",
            LabStep::Teardown => "teardown",
        }
    }
}

/// Why a lab run stopped.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// A scenario name that is not in the catalogue.
    #[error("unknown scenario `{name}`\n  known scenarios: {known} (or `all`)")]
    UnknownScenario {
        /// What was asked.
        name: String,
        /// The catalogue.
        known: String,
    },
    /// Options that cannot work.
    #[error("{0}")]
    InvalidOptions(String),
    /// The database could not be reached, or a statement failed.
    #[error(transparent)]
    Pg(#[from] PgError),
    /// The runner failed outside a measured migration (base schema, rollback).
    #[error("{context}: {source}")]
    Migrate {
        /// What the lab was doing.
        context: String,
        /// The runner's error.
        source: Box<MigrateError>,
    },
    /// A scenario's setup or teardown SQL failed.
    #[error(
        "scenario {scenario}: {file} failed: {message}\n  fix: the database may hold leftovers of another tool; rerun `pgcalm lab` (it cleans up first) or drop the database"
    )]
    ScenarioSql {
        /// Scenario.
        scenario: String,
        /// `setup.sql` / `teardown.sql`.
        file: &'static str,
        /// The server's message.
        message: String,
    },
    /// Seeding failed.
    #[error(transparent)]
    Seed(#[from] SeedError),
    /// The demo API could not start.
    #[error(transparent)]
    Serve(#[from] ServeError),
    /// The probe could not be configured.
    #[error("probe: {0}")]
    Probe(String),
    /// Writing the scenarios' migration files failed.
    #[error("cannot write the scenario files under {dir}: {source}")]
    Io {
        /// The directory.
        dir: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Cancelled (Ctrl-C).
    #[error("cancelled")]
    Cancelled,
}

/// Receives [`LabEvent`]s; shared with the probe's, the monitor's and the runner's tasks.
pub type LabEventSink = Arc<dyn Fn(LabEvent) + Send + Sync>;

/// Runs the lab against `target` (its own database) and returns every figure.
pub async fn run_lab(
    target: &Target,
    opts: &LabOptions,
    on_event: LabEventSink,
    cancel: CancellationToken,
) -> Result<LabResults, LabError> {
    let scenarios = plan::resolve(&opts.scenarios)?;
    if opts.rows == 0 {
        return Err(LabError::InvalidOptions("--rows must be positive".into()));
    }
    if opts.tail < PROBE_TIMEOUT {
        return Err(LabError::InvalidOptions(format!(
            "the tail must be at least the probe timeout ({} ms)",
            PROBE_TIMEOUT.as_millis()
        )));
    }
    if opts.in_app.is_some()
        && let Some(other) = scenarios.iter().find(|s| s.name != SEED_SCENARIO)
    {
        return Err(LabError::InvalidOptions(format!(
            "in the app's database the lab runs the seed's scenario ({SEED_SCENARIO}) only, not {}: \
             the others change the app's tables\n  fix: leave --scenario out, or run the \
             others in the lab's own database (without --app-database)",
            other.name
        )));
    }
    let mut lab = Lab {
        target: target.clone(),
        opts: opts.clone(),
        clock: RunClock::start(),
        on_event,
        cancel,
    };
    let admin = lab.connect("pgcalm lab").await?;
    let postgres_version = catalog::server_version(&admin).await?;
    // The rows the probe's own (ids above) are deleted at the end; in the app's database,
    // what the app's migrations to re-apply there.
    let (keep_up_to, reapply) = match &opts.in_app {
        None => {
            lab.prepare_schema().await?;
            lab.clean_leftovers(&admin, &catalogue()).await?;
            lab.ensure_rows(&admin).await?;
            (opts.rows as i64, None)
        }
        Some(app) => {
            let reapply = lab.roll_back_app(app).await?;
            lab.clean_leftovers(&admin, &scenarios).await?;
            let (rows, max_id) = lab.app_rows(&admin).await?;
            lab.opts.rows = rows;
            (max_id, reapply)
        }
    };

    let eps = probe_endpoints();
    let mut results = LabResults::new(plan::run_info(
        &lab.opts,
        &lab.clock,
        postgres_version,
        &scenarios,
        &eps,
    ));
    let mut outcome = lab
        .run_scenarios(&admin, &scenarios, &eps, &mut results)
        .await;
    // The probe's rows go, whatever happened, so the next run can reuse the table.
    let _ = admin
        .execute("DELETE FROM large_email WHERE id > $1", &[&keep_up_to])
        .await;
    if let (Some(app), Some(name)) = (&opts.in_app, reapply) {
        let reapplied = lab.reapply_app(app, &name).await;
        outcome = outcome.and(reapplied);
    }
    outcome?;
    results.run.finished = Some(lab.clock.now());
    Ok(results)
}

/// One lab run: where, with which options, on which clock, reporting to whom.
struct Lab {
    target: Target,
    opts: LabOptions,
    clock: RunClock,
    on_event: LabEventSink,
    cancel: CancellationToken,
}

impl Lab {
    async fn connect(&self, app: &str) -> Result<Client, PgError> {
        self.target.with_application_name(app).connect().await
    }

    fn emit(&self, e: LabEvent) {
        (self.on_event)(e)
    }

    fn check_cancelled(&self) -> Result<(), LabError> {
        if self.cancel.is_cancelled() {
            Err(LabError::Cancelled)
        } else {
            Ok(())
        }
    }

    fn step(&self, s: LabStep) {
        self.emit(LabEvent::Step(s))
    }

    fn runner(&self, dir: &std::path::Path, policy: Policy) -> Runner {
        Runner::new(self.target.clone(), dir).with_policy(policy)
    }
}
