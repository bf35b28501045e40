//! Every scenario of the catalogue, risky and safe form, at a small row count, against
//! a real PostgreSQL (a database per scenario) and the real demo API on loopback: the
//! risky form blocks what the scenario says it blocks, the safe form blocks nothing and
//! meets the safe criteria. A regression in the runner's safety (a lost lock_timeout, a
//! CONCURRENTLY run inside a transaction, a retry that stopped retrying) fails here.
//!
//! At a few thousand rows a risky statement is over before a 200 ms probe can see it,
//! so the risky forms run with `hold` (their transaction stays open 3.5 s after the last
//! statement, as on a bigger table); the lock scenarios' blocking session lasts 4 s.
//! The scenarios run concurrently, each in its own database, to keep the suite short.

use std::sync::Arc;
use std::time::Duration;

use pgcalm_lab::lab::results::{Form, FormRun, PoolTopology, ScenarioResult};
use pgcalm_lab::lab::scenario::{Scenario, catalogue};
use pgcalm_lab::lab::{LabOptions, run_lab};
use pgcalm_testkit::TestDb;

const ROWS: u64 = 5_000;

async fn run_scenario(scenario: &Scenario, work: &std::path::Path) -> ScenarioResult {
    let db = TestDb::new().await;
    let opts = LabOptions {
        rows: ROWS,
        scenarios: vec![scenario.name.to_string()],
        work_dir: work.join(scenario.name),
        hold: Some(Duration::from_millis(3500)),
        baseline: Duration::from_secs(1),
        blocker: Duration::from_secs(4),
        seed_streams: 1,
        ..LabOptions::default()
    };
    let mut results = run_lab(db.target(), &opts, Arc::new(|_| {}), Default::default())
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", scenario.name));
    // The lab leaves the table as it found it: only the seeded rows, no scenario object.
    assert_eq!(
        db.query_i64("SELECT count(*) FROM large_email").await,
        ROWS as i64,
        "{}: the probe's rows are removed",
        scenario.name
    );
    assert_eq!(
        db.query_i64(
            "SELECT count(*) FROM pg_attribute WHERE attrelid = 'large_email'::regclass AND attnum > 0 AND NOT attisdropped"
        )
        .await,
        3,
        "{}: teardown restores the columns",
        scenario.name
    );
    results.scenarios.remove(0)
}

/// Why a form's verdict is not what the scenario says, if it is not.
fn check(scenario: &Scenario, run: &FormRun) -> Option<String> {
    let v = &run.verdict;
    let what = format!(
        "{} {}-{}: reads {:?}, writes {:?}, criteria {:?}, migration ok {} ({:?}), notes {:?}",
        scenario.name,
        run.form.as_str(),
        run.topology.as_str(),
        v.reads,
        v.writes,
        v.safe_criteria,
        run.migration.succeeded,
        run.migration.error,
        v.notes
    );
    if !run.migration.succeeded || !run.rollback.as_ref().is_some_and(|r| r.succeeded) {
        return Some(format!("migration or rollback failed: {what}"));
    }
    if run.samples.is_empty() {
        return Some(format!("no probe samples: {what}"));
    }
    match (run.form, run.topology) {
        (Form::Safe, _) => {
            if v.reads.blocked || v.writes.blocked || !v.safe_criteria.passed {
                return Some(format!("safe form blocked: {what}"));
            }
        }
        (Form::Risky, PoolTopology::Separate) => {
            let expected = scenario.risky_blocks;
            if v.reads.blocked != expected.reads || v.writes.blocked != expected.writes {
                return Some(format!("risky form: expected {expected:?}, got {what}"));
            }
            if v.safe_criteria.passed {
                return Some(format!("risky form passed the safe criteria: {what}"));
            }
        }
        (Form::Risky, PoolTopology::Shared) => {
            // On one shared pool the risky form stops at least what it stops on
            // separate pools.
            if scenario.risky_blocks.writes && !v.writes.blocked {
                return Some(format!("risky form on a shared pool: {what}"));
            }
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn risky_forms_block_what_they_say_and_safe_forms_block_nothing() {
    let work = tempfile::tempdir().unwrap();
    let scenarios = catalogue();
    let runs = scenarios.iter().map(|s| {
        let work = work.path().to_path_buf();
        let s = s.clone();
        tokio::spawn(async move {
            let result = run_scenario(&s, &work).await;
            (s, result)
        })
    });
    let mut failures = Vec::new();
    for joined in futures_util::future::join_all(runs).await {
        let (scenario, result) = joined.expect("scenario task");
        let keys: Vec<String> = result.forms.iter().map(|f| f.key()).collect();
        let mut expected = vec!["risky-separate".to_string()];
        if scenario.name == "add_index" {
            expected.push("risky-shared".into());
        }
        expected.push("safe-shared".into());
        assert_eq!(keys, expected, "{}", scenario.name);
        failures.extend(result.forms.iter().filter_map(|f| check(&scenario, f)));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
