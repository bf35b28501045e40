//! Before the first run: the demo tables, leftovers of an interrupted run rolled back
//! and torn down, and `large_email` seeded (or reused when it holds exactly the seed's
//! rows `1..=N`). In the app's database ([`InApp`]): the app's demoapp migrations after
//! 0001 rolled back (re-applied after the runs), its rows counted as they are.

use pgcalm_demo::SeedOptions;
use pgcalm_migrate::{Goal, State};
use pgcalm_pg::PgError;
use tokio_postgres::Client;

use super::migration::rollback_policy;
use super::{InApp, Lab, LabError, LabEvent, sql};
use crate::results::Form;
use crate::scenario::Scenario;

/// The demo tables' migration, embedded so the lab works outside the repository.
const DEMOAPP_0001: &str = pgcalm_demo::DEMOAPP_INITIAL_MIGRATION;

impl Lab {
    /// The demo tables, through the runner (journaled like any migration).
    pub(super) async fn prepare_schema(&self) -> Result<(), LabError> {
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

    /// Rolls back forms an interrupted run left applied and runs the teardown of each of
    /// `scenarios` (the whole catalogue in the lab's own database).
    pub(super) async fn clean_leftovers(
        &self,
        admin: &Client,
        scenarios: &[Scenario],
    ) -> Result<(), LabError> {
        self.emit(LabEvent::Preparing("cleaning up after earlier runs".into()));
        let root = self.opts.work_dir.join("migrations");
        for scenario in scenarios {
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
            sql::run_sql(admin, scenario, "teardown.sql", scenario.teardown).await?;
        }
        Ok(())
    }

    /// Seeds `large_email` with the seed's rows `1..=N`, unless it holds exactly those.
    pub(super) async fn ensure_rows(&self, admin: &Client) -> Result<(), LabError> {
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
        let report = pgcalm_demo::seed(
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
}

impl Lab {
    /// In the app's database: rolls the app's demoapp migrations back to 0001 (0002's
    /// index has the name the seed's scenario builds) and returns the last one that was
    /// applied, to re-apply at the end (None: only 0001 was).
    pub(super) async fn roll_back_app(&self, app: &InApp) -> Result<Option<String>, LabError> {
        let migrate_error = |context: &str| {
            let context = context.to_string();
            move |e| LabError::Migrate {
                context,
                source: Box::new(e),
            }
        };
        let runner = self.runner(&app.migrations_dir, rollback_policy());
        let statuses = runner
            .status(Some("demoapp"))
            .await
            .map_err(migrate_error("reading the app's demoapp migrations"))?;
        if let Some(odd) = statuses
            .iter()
            .find(|s| !matches!(s.state, State::Applied | State::NotApplied))
        {
            return Err(LabError::InvalidOptions(format!(
                "demoapp {} is neither applied nor unapplied (a run stopped part way)\n  fix: \
                 finish it first (`pgcalm showmigrations demoapp` says how), then rerun",
                odd.name
            )));
        }
        let applied: Vec<&str> = statuses
            .iter()
            .filter(|s| s.state == State::Applied)
            .map(|s| s.name.as_str())
            .collect();
        let (Some(first), Some(last)) = (applied.first(), applied.last()) else {
            return Err(LabError::InvalidOptions(
                "the app's database has no demo tables yet (demoapp 0001 is not applied)\n  \
                 fix: run `pgcalm up` (it applies demoapp 0001) and `pgcalm seed`, or leave \
                 --app-database out to use the lab's own database"
                    .into(),
            ));
        };
        if first == last {
            return Ok(None);
        }
        self.emit(LabEvent::Preparing(format!(
            "rolling demoapp back to {first}, where the seed's scenario starts ({last} is \
             re-applied at the end)"
        )));
        runner
            .migrate(&Goal::To {
                app: "demoapp".into(),
                target: (*first).to_string(),
            })
            .await
            .map_err(migrate_error("rolling demoapp back to 0001"))?;
        Ok(Some((*last).to_string()))
    }

    /// In the app's database: re-applies demoapp up to `name`, with the safe forms'
    /// policy (what `pgcalm migrate` runs).
    pub(super) async fn reapply_app(&self, app: &InApp, name: &str) -> Result<(), LabError> {
        self.emit(LabEvent::Preparing(format!("re-applying demoapp {name}")));
        self.runner(&app.migrations_dir, self.opts.policy.clone())
            .migrate(&Goal::To {
                app: "demoapp".into(),
                target: name.to_string(),
            })
            .await
            .map_err(|e| LabError::Migrate {
                context: format!(
                    "re-applying demoapp {name} (run `pgcalm migrate demoapp {name}`)"
                ),
                source: Box::new(e),
            })?;
        Ok(())
    }

    /// In the app's database: the rows of `large_email` as the app's seed left them (its
    /// count, for the results, and its highest id: the probe's rows come after it).
    pub(super) async fn app_rows(&self, admin: &Client) -> Result<(u64, i64), LabError> {
        let row = admin
            .query_one(
                "SELECT count(*), coalesce(max(id), 0) FROM large_email",
                &[],
            )
            .await
            .map_err(PgError::query("counting the rows of large_email"))?;
        let (count, max): (i64, i64) = (row.get(0), row.get(1));
        if count == 0 {
            return Err(LabError::InvalidOptions(
                "large_email is empty in the app's database\n  fix: seed it first \
                 (`pgcalm seed --large-count 10000000`)"
                    .into(),
            ));
        }
        self.emit(LabEvent::Preparing(format!(
            "using the app's large_email as it is: {count} rows"
        )));
        Ok((count as u64, max))
    }
}
