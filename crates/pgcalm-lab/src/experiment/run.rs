//! The runs of each scenario, and the steps of one run around its measured window:
//! `setup.sql` and EXPLAIN before, the safe form's post-check, EXPLAIN after, the
//! rollback and `teardown.sql`, then the verdict on what was measured.

use std::path::Path;

use pgcalm_pg::PgError;
use tokio_postgres::Client;

use super::measure::Measured;
use super::migration::{lock_holds_of, rollback_policy};
use super::plan::runs_of;
use super::{Lab, LabError, LabEvent, LabStep, sql};
use crate::monitor;
use crate::results::{
    EndpointSummary, ExplainPair, Form, FormRun, LabResults, LockWait, MigrationRun, PoolTopology,
    ScenarioResult, TimeSpan, TopologyFigures, Verdict,
};
use crate::scenario::Scenario;
use crate::verdict::{self, Endpoint, VerdictEvidence};

/// One run: a scenario's form under a pool topology, its migration files in `dir`.
#[derive(Clone, Copy)]
pub(super) struct Run<'a> {
    pub(super) scenario: &'a Scenario,
    pub(super) dir: &'a Path,
    pub(super) form: Form,
    pub(super) topology: PoolTopology,
}

impl Lab {
    /// Every run of every scenario, in order; each scenario goes into `results` once all
    /// its runs are done.
    pub(super) async fn run_scenarios(
        &self,
        admin: &Client,
        scenarios: &[Scenario],
        eps: &[Endpoint],
        results: &mut LabResults,
    ) -> Result<(), LabError> {
        let total: usize = scenarios.iter().map(|s| runs_of(s).len()).sum();
        let mut number = 0;
        for scenario in scenarios {
            let mut result = ScenarioResult {
                name: scenario.name.to_string(),
                title: scenario.title.to_string(),
                demonstrates: scenario.demonstrates.to_string(),
                hazard: scenario.hazard.to_string(),
                forms: Vec::new(),
            };
            let root = self.opts.work_dir.join("migrations");
            let dir = scenario
                .materialize(&root, self.opts.hold)
                .map_err(|source| LabError::Io { dir: root, source })?;
            for (form, topology) in runs_of(scenario) {
                number += 1;
                self.emit(LabEvent::FormStarted {
                    scenario: scenario.name.to_string(),
                    form,
                    topology,
                    number,
                    total,
                });
                let run = Run {
                    scenario,
                    dir: &dir,
                    form,
                    topology,
                };
                let form_run = self.run_form(admin, run, eps).await?;
                self.emit(LabEvent::FormFinished(Box::new(form_run.clone())));
                result.forms.push(form_run);
            }
            results.scenarios.push(result);
        }
        Ok(())
    }

    /// One run, steps 1 to 6, judged.
    async fn run_form(
        &self,
        admin: &Client,
        run: Run<'_>,
        eps: &[Endpoint],
    ) -> Result<FormRun, LabError> {
        self.check_cancelled()?;
        self.step(LabStep::Setup);
        sql::run_sql(admin, run.scenario, "setup.sql", run.scenario.setup).await?;
        let explain_before = self.explain_scenario(admin, run.scenario).await?;

        let measured = self.measure(run, eps).await?;

        let mut notes = Vec::new();
        notes.extend(self.check_after(admin, run, &measured.migration).await?);
        let explain_after = self.explain_scenario(admin, run.scenario).await?;
        let rollback = self.roll_back(admin, run).await?;
        if !rollback.succeeded {
            notes.push(format!(
                "the rollback failed ({}); teardown.sql cleaned up",
                rollback.error.as_deref().unwrap_or("unknown error")
            ));
        }

        let lock_waits = monitor::lock_waits(&measured.snapshots, &self.clock);
        let judged = TimeSpan {
            start_ms: measured.migration.started.rel_ms,
            end_ms: measured.probe_window.end_ms,
        };
        let topology_figures = measured
            .topology_samples
            .clone()
            .map(|samples| TopologyFigures::of(samples, judged));
        let (endpoints, mut verdict) = self.judge(run, eps, &measured, &lock_waits);
        notes.extend(self.run_notes(run, &measured.migration));
        verdict.notes.extend(notes);
        Ok(FormRun {
            form: run.form,
            topology: run.topology,
            probe_window: measured.probe_window,
            baseline: measured.baseline,
            rollback: Some(rollback),
            endpoints,
            verdict,
            lock_waits,
            index_builds: monitor::index_builds(&measured.snapshots, &self.clock),
            explain: explain_before
                .zip(explain_after)
                .map(|(before, after)| ExplainPair {
                    query: run.scenario.explain.unwrap_or_default().to_string(),
                    before,
                    after,
                }),
            migration: measured.migration,
            samples: measured.samples,
            topology_figures,
        })
    }

    /// After a safe form that applied: the scenario's post-check (rows that break its
    /// promise, 0 expected), as a note.
    async fn check_after(
        &self,
        admin: &Client,
        run: Run<'_>,
        migration: &MigrationRun,
    ) -> Result<Option<String>, LabError> {
        let Some(check) = run.scenario.check else {
            return Ok(None);
        };
        if run.form != Form::Safe || !migration.succeeded {
            return Ok(None);
        }
        let bad: i64 = admin
            .query_one(check.sql, &[])
            .await
            .map_err(PgError::query(format!("checking {}", check.what)))?
            .get(0);
        Ok(Some(format!("after the migration: {bad} {}", check.what)))
    }

    /// The down section through the runner (patient retries, the probe off), then
    /// `teardown.sql`, which also removes what a failed rollback left: the next run
    /// starts from the same state.
    async fn roll_back(&self, admin: &Client, run: Run<'_>) -> Result<MigrationRun, LabError> {
        self.step(LabStep::RollingBack);
        let rollback = self
            .migrate(run.dir, run.form, "zero", rollback_policy(), false)
            .await;
        self.step(LabStep::Teardown);
        sql::run_sql(admin, run.scenario, "teardown.sql", run.scenario.teardown).await?;
        Ok(rollback)
    }

    /// The verdict on what was measured, from the migration's start to the probe's end
    /// (see [`crate::verdict`]).
    fn judge(
        &self,
        run: Run<'_>,
        eps: &[Endpoint],
        measured: &Measured,
        lock_waits: &[LockWait],
    ) -> (Vec<EndpointSummary>, Verdict) {
        let judged = TimeSpan {
            start_ms: measured.migration.started.rel_ms,
            end_ms: measured.probe_window.end_ms,
        };
        let waits = monitor::app_waits(&measured.snapshots);
        let holds = lock_holds_of(run.dir, run.form, &measured.migration);
        verdict::judge(&VerdictEvidence {
            endpoints: eps,
            samples: &measured.samples,
            baseline: measured.baseline,
            judged,
            waits: &waits,
            lock_waits,
            holds: &holds,
            lock_timeout_ms: self.opts.policy.lock_timeout.as_millis() as f64,
            topology: run.topology,
            through_pooler: self.opts.topology.pooler.is_some(),
        })
    }

    /// What the reader needs to know about how the run went: a failed migration, the
    /// blocking session the lab held, the risky form's `--hold`.
    fn run_notes(&self, run: Run<'_>, migration: &MigrationRun) -> Vec<String> {
        let mut notes = Vec::new();
        if !migration.succeeded {
            notes.push(format!(
                "the migration failed: {}",
                migration.error.as_deref().unwrap_or("unknown error")
            ));
        }
        if let Some(b) = run.scenario.blocker {
            notes.push(format!(
                "during the migration the lab held {} for {:.0} s on its own connection",
                b.describe(),
                self.opts.blocker.as_secs_f64()
            ));
        }
        if let Some(hold) = self.opts.hold.filter(|_| run.form == Form::Risky) {
            notes.push(format!(
                "--hold {:.1}: the migration's transaction was kept open {:.1} s after its last statement, as on a bigger table",
                hold.as_secs_f64(),
                hold.as_secs_f64()
            ));
        }
        notes
    }
}
