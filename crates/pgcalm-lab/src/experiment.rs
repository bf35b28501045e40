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

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pgcalm_migrate::{Direction, Event, Goal, MigrateError, Policy, Runner};
use pgcalm_pg::catalog::{self, DatabaseSnapshot};
use pgcalm_pg::{PgError, Target};
use pgcalm_probe::{Probe, ProbeConfig, ProbeTarget, StopWhen};
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

use crate::app::{self, RunningApp};
use crate::monitor::{self, BLOCKER_APP, RunningMonitor};
use crate::results::{
    EndpointRole, Explain, ExplainPair, Form, FormRun, LabResults, MigrationRun, PoolTopology,
    ProbeTarget as ResultTarget, RunClock, RunInfo, RunOptions, Sample, ScenarioResult, Span,
    StatementRun, duration_ms,
};
use crate::scenario::{Scenario, catalogue};
use crate::verdict::{self, Endpoint, Evidence, LockHold};
use pgcalm_demo::seed::{self, SeedEvent, SeedOptions};
use pgcalm_demo::serve::ServeError;

/// Default rows in `large_email` (the seed's 10M).
pub const DEFAULT_ROWS: u64 = 10_000_000;
/// The probe's cadence for reads and writes.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(200);
/// The probe's cadence for lookups: an unindexed lookup is a parallel scan of the whole
/// table, so probing it often would load the CPU and slow the migration itself.
pub const LOOKUP_INTERVAL: Duration = Duration::from_secs(2);
/// The probe's timeout.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// The email the lookup probe asks for (the Django peer's).
pub const LOOKUP_EMAIL: &str = "user5@example.com";

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
    /// (emulates a bigger table: see [`Scenario::materialize`]).
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
            seed_streams: seed::DEFAULT_STREAMS,
            database_label: String::new(),
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
    Seed(#[from] seed::SeedError),
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

/// The demo tables' migration (the repository's `migrations/demoapp/0001_initial.sql`),
/// embedded so the lab works outside the repository.
const DEMOAPP_0001: &str = include_str!("../../../migrations/demoapp/0001_initial.sql");

/// The policy of the risky forms: the way Django runs a migration (one transaction, no
/// lock_timeout, no retries), with the runner's lint refusal lifted (`allow_risky`).
/// The statements still go through pgcalm's runner, so they are journaled and observed
/// like the safe ones.
pub fn risky_policy() -> Policy {
    Policy {
        lock_timeout: Duration::ZERO,
        max_retries: 0,
        allow_risky: true,
        ..Policy::default()
    }
}

/// The policy of rollbacks and clean-ups: default timeouts, patient retries; risky
/// statements allowed (a risky form's down section is as risky as its up, and the lab
/// runs it with the probe off).
fn rollback_policy() -> Policy {
    Policy {
        max_retries: 30,
        allow_risky: true,
        ..Policy::default()
    }
}

/// The runs of a scenario: the risky form on each of its topologies, then the safe form
/// on one shared pool.
pub fn runs_of(scenario: &Scenario) -> Vec<(Form, PoolTopology)> {
    let mut runs: Vec<(Form, PoolTopology)> = scenario
        .risky_topologies
        .iter()
        .map(|t| (Form::Risky, *t))
        .collect();
    runs.push((Form::Safe, PoolTopology::Shared));
    runs
}

/// The probe targets and their roles, in report order.
pub fn probe_endpoints() -> Vec<Endpoint> {
    vec![
        Endpoint {
            name: "list_large".into(),
            role: EndpointRole::Read,
        },
        Endpoint {
            name: "add_large".into(),
            role: EndpointRole::Write,
        },
        Endpoint {
            name: "lookup".into(),
            role: EndpointRole::Lookup,
        },
    ]
}

fn path_of(role: EndpointRole) -> (&'static str, String) {
    match role {
        EndpointRole::Read => ("GET", "/list_large/".into()),
        EndpointRole::Write => ("POST", "/add_large/".into()),
        EndpointRole::Lookup => ("GET", format!("/lookup/?email={LOOKUP_EMAIL}")),
    }
}

/// Runs the lab against `target` (its own database) and returns every figure.
pub async fn run_lab(
    target: &Target,
    opts: &LabOptions,
    on_event: LabEventSink,
    cancel: CancellationToken,
) -> Result<LabResults, LabError> {
    let scenarios = resolve(&opts.scenarios)?;
    if opts.rows == 0 {
        return Err(LabError::InvalidOptions("--rows must be positive".into()));
    }
    if opts.tail < PROBE_TIMEOUT {
        return Err(LabError::InvalidOptions(format!(
            "the tail must be at least the probe timeout ({} ms)",
            PROBE_TIMEOUT.as_millis()
        )));
    }
    let clock = RunClock::start();
    let lab = Lab {
        target: target.clone(),
        opts: opts.clone(),
        clock,
        on_event: on_event.clone(),
        cancel: cancel.clone(),
    };
    let admin = lab.connect("pgcalm lab").await?;
    let postgres_version = catalog::server_version(&admin).await?;
    lab.prepare_schema().await?;
    lab.clean_leftovers(&admin).await?;
    lab.ensure_rows(&admin).await?;

    let eps = probe_endpoints();
    let name_of = |role: EndpointRole| -> Vec<String> {
        eps.iter()
            .filter(|e| e.role == role)
            .map(|e| e.name.clone())
            .collect()
    };
    let mut topologies: Vec<PoolTopology> = scenarios
        .iter()
        .flat_map(|s| runs_of(s).into_iter().map(|(_, t)| t))
        .collect();
    topologies.sort();
    topologies.dedup();
    let mut results = LabResults::new(RunInfo {
        pgcalm_version: env!("CARGO_PKG_VERSION").to_string(),
        postgres_version,
        rows: opts.rows,
        machine_cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        started: clock.started(),
        finished: None,
        options: RunOptions {
            scenarios: scenarios.iter().map(|s| s.name.to_string()).collect(),
            out_dir: opts.work_dir.display().to_string(),
            database: opts.database_label.clone(),
            lock_timeout_ms: opts.policy.lock_timeout.as_millis() as u64,
            baseline_ms: opts.baseline.as_millis() as u64,
            probe_targets: eps
                .iter()
                .map(|e| {
                    let (method, path) = path_of(e.role);
                    ResultTarget {
                        name: e.name.clone(),
                        role: e.role,
                        method: method.into(),
                        path,
                        interval_ms: interval_of(e.role).as_millis() as u64,
                        timeout_ms: PROBE_TIMEOUT.as_millis() as u64,
                    }
                })
                .collect(),
            pool_layouts: topologies
                .iter()
                .map(|t| app::layout(*t, name_of))
                .collect(),
        },
    });

    let total: usize = scenarios.iter().map(|s| runs_of(s).len()).sum();
    let mut number = 0;
    let outcome = async {
        for scenario in &scenarios {
            let mut result = ScenarioResult {
                name: scenario.name.to_string(),
                title: scenario.title.to_string(),
                demonstrates: scenario.demonstrates.to_string(),
                hazard: scenario.hazard.to_string(),
                forms: Vec::new(),
            };
            let dir = scenario
                .materialize(&opts.work_dir.join("migrations"), opts.hold)
                .map_err(|source| LabError::Io {
                    dir: opts.work_dir.join("migrations"),
                    source,
                })?;
            for (form, topology) in runs_of(scenario) {
                number += 1;
                (lab.on_event)(LabEvent::FormStarted {
                    scenario: scenario.name.to_string(),
                    form,
                    topology,
                    number,
                    total,
                });
                let run = lab
                    .run_form(&admin, scenario, &dir, form, topology, &eps)
                    .await?;
                (lab.on_event)(LabEvent::FormFinished(Box::new(run.clone())));
                result.forms.push(run);
            }
            results.scenarios.push(result);
        }
        Ok::<(), LabError>(())
    }
    .await;
    // The probe's rows go, whatever happened, so the next run can reuse the table.
    let _ = admin
        .execute(
            "DELETE FROM large_email WHERE id > $1",
            &[&(opts.rows as i64)],
        )
        .await;
    outcome?;
    results.run.finished = Some(clock.now());
    Ok(results)
}

fn interval_of(role: EndpointRole) -> Duration {
    match role {
        EndpointRole::Lookup => LOOKUP_INTERVAL,
        _ => PROBE_INTERVAL,
    }
}

fn resolve(names: &[String]) -> Result<Vec<Scenario>, LabError> {
    if names.iter().any(|n| n == "all") {
        return Ok(catalogue());
    }
    names
        .iter()
        .map(|n| {
            crate::scenario::find(n).map_err(|known| LabError::UnknownScenario {
                name: n.clone(),
                known,
            })
        })
        .collect()
}

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

    fn runner(&self, dir: &std::path::Path, policy: Policy) -> Runner {
        Runner::new(self.target.clone(), dir).with_policy(policy)
    }

    /// The demo tables, through the runner (journaled like any migration).
    async fn prepare_schema(&self) -> Result<(), LabError> {
        self.emit(LabEvent::Preparing("demo tables (demoapp 0001)".into()));
        let dir = self.opts.work_dir.join("migrations").join("_base");
        let app = dir.join("demoapp");
        std::fs::create_dir_all(&app)
            .and_then(|_| std::fs::write(app.join("0001_initial.sql"), DEMOAPP_0001))
            .map_err(|source| LabError::Io {
                dir: app.clone(),
                source,
            })?;
        self.runner(&dir, rollback_policy())
            .migrate(&Goal::ForwardTo {
                app: "demoapp".into(),
                target: "0001".into(),
            })
            .await
            .map_err(|e| LabError::Migrate {
                context: "creating the demo tables".into(),
                source: Box::new(e),
            })?;
        Ok(())
    }

    /// Rolls back forms an interrupted run left applied and runs every teardown.
    async fn clean_leftovers(&self, admin: &Client) -> Result<(), LabError> {
        self.emit(LabEvent::Preparing("cleaning up after earlier runs".into()));
        let root = self.opts.work_dir.join("migrations");
        for scenario in catalogue() {
            let dir = scenario
                .materialize(&root, None)
                .map_err(|source| LabError::Io {
                    dir: root.clone(),
                    source,
                })?;
            let runner = self.runner(&dir, rollback_policy());
            for form in [Form::Risky, Form::Safe] {
                let applied = runner
                    .status(Some(form.as_str()))
                    .await
                    .map(|s| {
                        s.iter()
                            .any(|m| m.state != pgcalm_migrate::State::NotApplied)
                    })
                    .unwrap_or(false);
                if applied {
                    // Best effort: the teardown below removes what a failed down leaves.
                    let _ = runner
                        .migrate(&Goal::To {
                            app: form.as_str().into(),
                            target: "zero".into(),
                        })
                        .await;
                }
            }
            run_sql(admin, &scenario, "teardown.sql", scenario.teardown).await?;
        }
        Ok(())
    }

    /// Seeds `large_email` with the seed's rows `1..=N`, unless it holds exactly those.
    async fn ensure_rows(&self, admin: &Client) -> Result<(), LabError> {
        let rows = self.opts.rows as i64;
        let row = admin
            .query_one(
                "SELECT (SELECT count(*) FROM large_email), (SELECT coalesce(max(id), 0) FROM large_email), (SELECT count(*) FROM small_email)",
                &[],
            )
            .await
            .map_err(PgError::query("counting the rows of large_email"))?;
        let (count, max, small): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
        if count == rows && max == rows && small > 0 {
            self.emit(LabEvent::Preparing(format!(
                "reusing large_email: it holds the seed's {rows} rows"
            )));
            return Ok(());
        }
        self.emit(LabEvent::Preparing(format!(
            "seeding {rows} rows (large_email held {count})"
        )));
        let on_event = self.on_event.clone();
        let report = seed::seed(
            &self.target,
            &SeedOptions {
                large_count: self.opts.rows,
                truncate: true,
                streams: self.opts.seed_streams,
                ..SeedOptions::default()
            },
            &move |e| on_event(LabEvent::Seed(e)),
            self.cancel.clone(),
        )
        .await?;
        if report.cancelled {
            return Err(LabError::Cancelled);
        }
        // A freshly loaded table: set its visibility map and hint bits now rather than in
        // the middle of the first measurement.
        for sql in ["VACUUM (ANALYZE) large_email", "CHECKPOINT"] {
            admin
                .batch_execute(sql)
                .await
                .map_err(PgError::query("vacuuming large_email after the seed"))?;
        }
        Ok(())
    }

    async fn run_form(
        &self,
        admin: &Client,
        scenario: &Scenario,
        dir: &std::path::Path,
        form: Form,
        topology: PoolTopology,
        eps: &[Endpoint],
    ) -> Result<FormRun, LabError> {
        self.check_cancelled()?;
        let step = |s: LabStep| self.emit(LabEvent::Step(s));
        step(LabStep::Setup);
        run_sql(admin, scenario, "setup.sql", scenario.setup).await?;
        let explain_before = self.explain_scenario(admin, scenario).await?;

        let running_app = RunningApp::start(&self.target, topology).await?;
        let sink = self.on_event.clone();
        let monitor = RunningMonitor::start(&self.target, move |s: &DatabaseSnapshot| {
            sink(LabEvent::Snapshot {
                lock_waiters: s.lock_waits.len(),
                index_build: s.index_builds.first().map(|b| {
                    (
                        b.phase.clone(),
                        // counter() only reports a phase whose total is known (> 0).
                        b.counter().map(|(d, t, _)| d as f64 * 100.0 / t as f64),
                    )
                }),
            })
        })
        .await?;
        let probe_stop = CancellationToken::new();
        let probe_start_ms = self.clock.rel_ms(Instant::now());
        let probes = self
            .start_probes(&running_app, eps, probe_stop.clone())
            .await?;

        step(LabStep::Baseline);
        let baseline_start = self.clock.rel_ms(Instant::now());
        tokio::time::sleep(self.opts.baseline).await;
        let baseline = Span {
            start_ms: baseline_start,
            end_ms: self.clock.rel_ms(Instant::now()),
        };

        let blocker = match scenario.blocker {
            Some(b) => Some(self.start_blocker(b).await?),
            None => None,
        };
        step(LabStep::Migrating);
        let policy = match form {
            Form::Risky => risky_policy(),
            Form::Safe => self.opts.policy.clone(),
        };
        let migration = self
            .migrate(dir, form, &scenario.migration_name(), policy, true)
            .await;
        step(LabStep::Tail);
        tokio::time::sleep(self.opts.tail).await;
        probe_stop.cancel();
        let mut samples: Vec<Sample> = Vec::new();
        for p in probes {
            samples.extend(p.await.unwrap_or_default());
        }
        samples.sort_by(|a, b| a.at_ms.total_cmp(&b.at_ms));
        let probe_window = Span {
            start_ms: probe_start_ms,
            end_ms: self.clock.rel_ms(Instant::now()),
        };
        let snapshots = monitor.stop().await;
        if let Some(b) = blocker {
            let _ = b.await;
        }
        running_app.stop().await;

        let mut notes = Vec::new();
        if form == Form::Safe
            && migration.succeeded
            && let Some(check) = scenario.check
        {
            let bad: i64 = admin
                .query_one(check.sql, &[])
                .await
                .map_err(PgError::query(format!("checking {}", check.what)))?
                .get(0);
            notes.push(format!("after the migration: {bad} {}", check.what));
        }
        let explain_after = self.explain_scenario(admin, scenario).await?;

        step(LabStep::RollingBack);
        let rollback = self
            .migrate(dir, form, "zero", rollback_policy(), false)
            .await;
        if !rollback.succeeded {
            notes.push(format!(
                "the rollback failed ({}); teardown.sql cleaned up",
                rollback.error.as_deref().unwrap_or("unknown error")
            ));
        }
        step(LabStep::Teardown);
        run_sql(admin, scenario, "teardown.sql", scenario.teardown).await?;

        let judged = Span {
            start_ms: migration.started.rel_ms,
            end_ms: probe_window.end_ms,
        };
        let waits = monitor::app_waits(&snapshots);
        let lock_waits = monitor::lock_waits(&snapshots, &self.clock);
        let holds = lock_holds_of(dir, form, &migration);
        let (endpoints, mut verdict) = verdict::judge(&Evidence {
            endpoints: eps,
            samples: &samples,
            baseline,
            judged,
            waits: &waits,
            lock_waits: &lock_waits,
            holds: &holds,
            lock_timeout_ms: self.opts.policy.lock_timeout.as_millis() as f64,
            topology,
        });
        if !migration.succeeded {
            notes.push(format!(
                "the migration failed: {}",
                migration.error.as_deref().unwrap_or("unknown error")
            ));
        }
        if let Some(b) = scenario.blocker {
            notes.push(format!(
                "during the migration the lab held {} for {:.0} s on its own connection",
                b.describe(),
                self.opts.blocker.as_secs_f64()
            ));
        }
        if let Some(hold) = self.opts.hold.filter(|_| form == Form::Risky) {
            notes.push(format!(
                "--hold {:.1}: the migration's transaction was kept open {:.1} s after its last statement, as on a bigger table",
                hold.as_secs_f64(),
                hold.as_secs_f64()
            ));
        }
        verdict.notes.extend(notes);
        Ok(FormRun {
            form,
            topology,
            probe_window,
            baseline,
            migration,
            rollback: Some(rollback),
            endpoints,
            verdict,
            lock_waits,
            index_builds: monitor::index_builds(&snapshots, &self.clock),
            explain: explain_before
                .zip(explain_after)
                .map(|(before, after)| ExplainPair {
                    query: scenario.explain.unwrap_or_default().to_string(),
                    before,
                    after,
                }),
            samples,
        })
    }

    /// EXPLAIN ANALYZE of the scenario's query, if it has one (before and after the
    /// migration).
    async fn explain_scenario(
        &self,
        admin: &Client,
        scenario: &Scenario,
    ) -> Result<Option<Explain>, LabError> {
        let Some(query) = scenario.explain else {
            return Ok(None);
        };
        self.emit(LabEvent::Step(LabStep::Explain));
        Ok(Some(explain(admin, query).await?))
    }

    /// Reads and writes every 200 ms, lookups every 2 s; each probe collects its
    /// samples until `stop`.
    async fn start_probes(
        &self,
        app: &RunningApp,
        eps: &[Endpoint],
        stop: CancellationToken,
    ) -> Result<Vec<tokio::task::JoinHandle<Vec<Sample>>>, LabError> {
        let mut handles = Vec::new();
        for interval in [PROBE_INTERVAL, LOOKUP_INTERVAL] {
            let mine: Vec<&Endpoint> = eps
                .iter()
                .filter(|e| interval_of(e.role) == interval)
                .collect();
            let targets = mine
                .iter()
                .map(|e| {
                    let (method, path) = path_of(e.role);
                    ProbeTarget::parse(&format!(
                        "{}={method} {}{path}",
                        e.name,
                        app.base_url(e.role)
                    ))
                    .map_err(|e| LabError::Probe(e.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let roles: Vec<EndpointRole> = mine.iter().map(|e| e.role).collect();
            let mut config = ProbeConfig::new(targets);
            config.interval = interval;
            config.timeout = PROBE_TIMEOUT;
            let probe = Probe::new(config)
                .await
                .map_err(|e| LabError::Probe(e.to_string()))?;
            let sink = self.on_event.clone();
            let clock = self.clock;
            let stop = StopWhen {
                cancel: stop.clone(),
                ..StopWhen::default()
            };
            handles.push(tokio::spawn(async move {
                let mut samples = Vec::new();
                probe
                    .run(stop, |s| {
                        let role = roles[s.target_index];
                        sink(LabEvent::Probe {
                            role,
                            ok: s.is_ok(),
                            latency_ms: s.latency_ms,
                        });
                        samples.push(Sample {
                            endpoint: s.target.clone(),
                            at_ms: clock.rel_ms_unix(s.started_at_ms),
                            latency_ms: s.latency_ms,
                            outcome: s.outcome,
                            status: s.status,
                            error: s.error,
                        });
                    })
                    .await;
                samples
            }));
        }
        Ok(handles)
    }

    /// Opens the scenario's blocking session and returns once it holds its lock; the
    /// task ends when the session has held it for [`LabOptions::blocker`].
    async fn start_blocker(
        &self,
        blocker: crate::scenario::Blocker,
    ) -> Result<tokio::task::JoinHandle<()>, LabError> {
        let client = self.connect(BLOCKER_APP).await?;
        let secs = self.opts.blocker.as_secs_f64();
        let statements = blocker.sql(secs);
        let started = Instant::now();
        let hold = self.opts.blocker;
        let (held_tx, held_rx) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            match blocker {
                crate::scenario::Blocker::SlowQuery => {
                    let query = client.batch_execute(&statements[0]);
                    tokio::pin!(query);
                    // The query takes its lock as soon as it starts; give it a moment.
                    tokio::select! {
                        _ = &mut query => {}
                        _ = tokio::time::sleep(Duration::from_millis(300)) => {
                            let _ = held_tx.send(());
                            let _ = query.await;
                        }
                    }
                }
                crate::scenario::Blocker::OpenTransaction => {
                    for s in &statements {
                        let _ = client.batch_execute(s).await;
                    }
                    let _ = held_tx.send(());
                    tokio::time::sleep(hold.saturating_sub(started.elapsed())).await;
                    let _ = client.batch_execute("COMMIT").await;
                }
            }
        });
        let _ = held_rx.await;
        Ok(handle)
    }

    /// Migrates `form` to `target` (`0001_<name>` or `zero`) through the runner and
    /// records what it did. `report` forwards the runner's events for progress.
    async fn migrate(
        &self,
        dir: &std::path::Path,
        form: Form,
        target: &str,
        policy: Policy,
        report: bool,
    ) -> MigrationRun {
        let recorder = Arc::new(Mutex::new(Recorder::default()));
        let rec = recorder.clone();
        let sink = self.on_event.clone();
        let clock = self.clock;
        let lock_timeout_ms = Some(policy.lock_timeout.as_millis() as u64).filter(|ms| *ms > 0);
        let runner = self.runner(dir, policy).on_event(move |e: &Event| {
            rec.lock()
                .expect("recorder lock")
                .record(e, &clock, lock_timeout_ms);
            if report {
                sink(LabEvent::Migration(Box::new(e.clone())));
            }
        });
        let started = Instant::now();
        let result = runner
            .migrate(&Goal::To {
                app: form.as_str().into(),
                target: target.into(),
            })
            .await;
        let ended = Instant::now();
        let rec = std::mem::take(&mut *recorder.lock().expect("recorder lock"));
        MigrationRun {
            migration: format!("{}:{}", form.as_str(), target),
            started: self.clock.moment(started),
            ended: self.clock.moment(ended),
            wall_ms: duration_ms(ended - started),
            succeeded: result.is_ok(),
            error: result.err().map(|e| e.to_string()),
            retries: rec.retries,
            statements: rec.statements,
        }
    }
}

/// When the migration held locks that block the app's reads or writes: its statements'
/// timings, judged by the lock table (`pgcalm_migrate::statement_verdicts`, the one the
/// runner's `--plan` uses) for the file it ran.
fn lock_holds_of(dir: &std::path::Path, form: Form, run: &MigrationRun) -> Vec<LockHold> {
    let Ok(set) = pgcalm_migrate::MigrationSet::load(dir) else {
        return Vec::new();
    };
    let Some(file) = set.apps.get(form.as_str()).and_then(|files| files.first()) else {
        return Vec::new();
    };
    let Some(section) = file.section(Direction::Up) else {
        return Vec::new();
    };
    let verdicts = pgcalm_migrate::statement_verdicts(
        file,
        Direction::Up,
        0,
        &pgcalm_lint::LintOptions::default(),
    );
    verdict::lock_holds(&run.statements, section.transaction, |line| {
        verdicts
            .iter()
            .find(|v| v.line == line)
            .map(|v| {
                let b = v.locks.blocks();
                (b.reads, b.writes)
            })
            .unwrap_or((false, false))
    })
}

/// Collects statements and retries from the runner's events.
#[derive(Default)]
struct Recorder {
    statements: Vec<StatementRun>,
    /// When the statement in flight (the last one) was sent.
    open_since: Option<Instant>,
    retries: u32,
}

impl Recorder {
    fn record(&mut self, e: &Event, clock: &RunClock, lock_timeout_ms: Option<u64>) {
        match e {
            Event::StatementStarted { statement, .. } => {
                let now = Instant::now();
                self.statements.push(StatementRun {
                    sql: statement.summary.clone(),
                    line: Some(statement.line),
                    start_ms: clock.rel_ms(now),
                    duration_ms: 0.0,
                    lock_timeout_ms,
                    error: None,
                });
                self.open_since = Some(now);
            }
            Event::StatementFinished { duration, .. } => {
                if self.open_since.take().is_some()
                    && let Some(run) = self.statements.last_mut()
                {
                    run.duration_ms = duration_ms(*duration);
                }
            }
            Event::LockTimeoutRetry { .. } => {
                self.retries += 1;
                if let Some(at) = self.open_since.take()
                    && let Some(run) = self.statements.last_mut()
                {
                    run.duration_ms = duration_ms(at.elapsed());
                    run.error = Some("canceling statement due to lock timeout".into());
                }
            }
            _ => {}
        }
    }
}

/// Runs a scenario's plain SQL file (setup or teardown) in one implicit transaction.
async fn run_sql(
    client: &Client,
    scenario: &Scenario,
    file: &'static str,
    sql: &str,
) -> Result<(), LabError> {
    client
        .batch_execute(sql)
        .await
        .map_err(|e| LabError::ScenarioSql {
            scenario: scenario.name.to_string(),
            file,
            message: e
                .as_db_error()
                .map(|d| d.message().to_string())
                .unwrap_or_else(|| e.to_string()),
        })
}

/// EXPLAIN (ANALYZE) of `query`: its main scan node and execution time.
pub async fn explain(client: &Client, query: &str) -> Result<Explain, LabError> {
    let rows = client
        .query(&format!("EXPLAIN (ANALYZE) {query}"), &[])
        .await
        .map_err(PgError::query("running EXPLAIN ANALYZE"))?;
    let lines: Vec<String> = rows.iter().map(|r| r.get::<_, String>(0)).collect();
    Ok(parse_explain(&lines.join("\n")))
}

/// The first scan node and the `Execution Time` of an EXPLAIN ANALYZE text plan.
pub fn parse_explain(plan: &str) -> Explain {
    let node = plan
        .lines()
        .map(|l| l.trim().trim_start_matches("->").trim())
        .find(|l| l.contains("Scan"))
        .map(|l| l.split("  (").next().unwrap_or(l).trim().to_string())
        .unwrap_or_default();
    let execution_ms = plan
        .lines()
        .find_map(|l| l.trim().strip_prefix("Execution Time:"))
        .and_then(|t| t.trim().trim_end_matches("ms").trim().parse().ok())
        .unwrap_or(0.0);
    Explain {
        node,
        execution_ms,
        plan: plan.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explain_text_gives_the_scan_node_and_execution_time() {
        let plan = "Gather  (cost=1000.00..116778.10 rows=1 width=39) (actual time=338.012..340.101 rows=1 loops=1)
  Workers Planned: 2
  ->  Parallel Seq Scan on large_email  (cost=0.00..115778.00 rows=1 width=39) (actual time=220.1..330.2 rows=0 loops=3)
        Filter: ((email)::text = 'user1000000@example.com'::text)
Planning Time: 0.101 ms
Execution Time: 340.152 ms";
        let e = parse_explain(plan);
        assert_eq!(e.node, "Parallel Seq Scan on large_email");
        assert_eq!(e.execution_ms, 340.152);
        let after = "Index Scan using large_email_email_idx on large_email  (cost=0.56..8.58 rows=1 width=39) (actual time=0.030..0.031 rows=1 loops=1)
  Index Cond: ((email)::text = 'user1000000@example.com'::text)
Planning Time: 0.2 ms
Execution Time: 0.052 ms";
        let e = parse_explain(after);
        assert_eq!(
            e.node,
            "Index Scan using large_email_email_idx on large_email"
        );
        assert_eq!(e.execution_ms, 0.052);
    }

    #[test]
    fn the_seeds_scenario_runs_risky_on_separate_seed_like_and_shared_pools_then_safe() {
        let add_index = crate::scenario::find("add_index").unwrap();
        assert_eq!(
            runs_of(&add_index),
            vec![
                (Form::Risky, PoolTopology::Separate),
                (Form::Risky, PoolTopology::SharedSeedLike),
                (Form::Risky, PoolTopology::Shared),
                (Form::Safe, PoolTopology::Shared)
            ]
        );
    }
}
