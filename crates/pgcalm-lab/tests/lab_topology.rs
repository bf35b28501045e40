//! The seed's scenario with the production topology: the demo app through a real
//! PgBouncer in transaction pooling mode with two server connections, and a streaming
//! replica attached. The risky plain CREATE INDEX (held 2 s, as on a bigger table)
//! leaves the app's clients waiting for a server connection, because blocked INSERTs
//! hold both; the CONCURRENTLY form leaves nothing blocked. The results carry the
//! replica's lag and the pooler's waits, the report a lane for each.
#![allow(unused_crate_dependencies)] // a test crate uses some of the dev-dependencies

use std::sync::Arc;
use std::time::Duration;

use pgcalm_lab::{
    BlockLevel, Form, LabOptions, LabPooler, LabTopology, TopologyInfo, run_lab,
    step5_terminal_table, write_report,
};
use pgcalm_testkit::{TestCluster, TestDb, TestPooler};

const ROWS: u64 = 2_000;
const POOL_SIZE: u32 = 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_a_small_transaction_pool_blocked_writes_leave_clients_waiting() {
    let primary = TestCluster::with_replica();
    let db = TestDb::on(primary).await;
    let pooler = TestPooler::start(primary, POOL_SIZE);
    let work = tempfile::tempdir().unwrap();
    let opts = LabOptions {
        rows: ROWS,
        work_dir: work.path().join("work"),
        // Past the probe's 3 s timeout: a write held up by the build then counts as
        // blocked however fast the 2,000-row build is on an idle machine.
        hold: Some(Duration::from_secs(4)),
        baseline: Duration::from_secs(1),
        seed_streams: 1,
        topology: LabTopology {
            pooler: Some(LabPooler {
                target: pooler.target(db.name()),
                admin: pooler.admin_target(),
                pool_size: POOL_SIZE,
            }),
            replica: true,
        },
        ..LabOptions::default()
    };
    let results = run_lab(db.target(), &opts, Arc::new(|_| {}), Default::default())
        .await
        .unwrap();

    assert_eq!(
        results.run.options.topology,
        Some(TopologyInfo {
            pooler_pool_size: Some(POOL_SIZE),
            replica: true
        })
    );
    let add_index = results.scenario("add_index").unwrap();
    for f in &add_index.forms {
        let what = format!("{} {}", f.form.as_str(), f.topology.as_str());
        let t = f
            .topology_figures
            .as_ref()
            .unwrap_or_else(|| panic!("{what}"));
        assert!(
            t.max_replica_lag_bytes.is_some_and(|b| b >= 0),
            "{what}: {t:?}"
        );
        assert!(
            t.max_replica_lag_ms.is_some_and(|ms| ms >= 0.0),
            "{what}: {t:?}"
        );
        assert!(!t.samples.is_empty(), "{what}");
        let waiting = t.max_clients_waiting.unwrap_or_else(|| panic!("{what}"));
        let wait_ms = t.max_wait_ms.unwrap_or_else(|| panic!("{what}"));
        match f.form {
            // Every app pool shares the pooler's two server connections; blocked INSERTs
            // hold them, so the next requests wait in PgBouncer.
            Form::Risky => {
                assert!(waiting > 0, "{what}: {t:?}");
                assert_ne!(f.verdict.writes.level, BlockLevel::No, "{what}");
            }
            // Nothing blocked: the build takes no lock writes wait for.
            Form::Safe => {
                assert_eq!(f.verdict.writes.level, BlockLevel::No, "{what}");
                assert_eq!(f.verdict.reads.level, BlockLevel::No, "{what}");
                assert!(wait_ms < 1000.0, "{what}: {t:?}");
                assert!(f.verdict.safe_criteria.passed, "{what}");
            }
        }
    }

    // The terminal's Step 5 table has a row for each figure.
    let step5 = step5_terminal_table(&results).unwrap();
    let aspects: Vec<&str> = step5.rows.iter().map(|r| r[0].as_str()).collect();
    assert!(aspects.contains(&"Replica lag"), "{aspects:?}");
    assert!(aspects.contains(&"Pool waits"), "{aspects:?}");

    // results.json: the figures are numbers; report.html: a lane per figure and form.
    let out = work.path().join("report");
    let files = write_report(&results, &out).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&files.json).unwrap()).unwrap();
    assert_eq!(
        json["run"]["options"]["topology"]["pooler_pool_size"],
        POOL_SIZE
    );
    let forms = json["scenarios"][0]["forms"].as_array().unwrap();
    assert_eq!(forms.len(), add_index.forms.len());
    for form in forms {
        let t = &form["topology_figures"];
        for field in [
            "max_replica_lag_bytes",
            "max_replica_lag_ms",
            "max_clients_waiting",
            "max_wait_ms",
        ] {
            assert!(t[field].is_number(), "{field}: {t}");
        }
        assert!(t["samples"][0]["at_ms"].is_number(), "{t}");
    }
    let html = std::fs::read_to_string(&files.html).unwrap();
    for lane in [r#"data-lane="replica lag""#, r#"data-lane="pool waiting""#] {
        assert_eq!(html.matches(lane).count(), add_index.forms.len(), "{lane}");
    }
}
