//! Before the first run: the demo tables, leftovers of an interrupted run rolled back
//! and torn down, and `large_email` seeded (or reused when it holds exactly the seed's
//! rows `1..=N`).

use pgcalm_demo::SeedOptions;
use pgcalm_migrate::Goal;
use pgcalm_pg::PgError;
use tokio_postgres::Client;

use super::migration::rollback_policy;
use super::{Lab, LabError, LabEvent, sql};
use crate::results::Form;
use crate::scenario::catalogue;

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

    /// Rolls back forms an interrupted run left applied and runs every teardown.
    pub(super) async fn clean_leftovers(&self, admin: &Client) -> Result<(), LabError> {
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
            sql::run_sql(admin, &scenario, "teardown.sql", scenario.teardown).await?;
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
