//! `-- pgcalm:backfill` through the real `pgcalm` binary: a `kill -9` in the middle of a
//! backfill, then a rerun, updates every row exactly once (each batch commits with its
//! journaled last key); progress is printed, and in `--format json` it is a stream of
//! events.
#![allow(unused_crate_dependencies)]

mod common;

use std::process::{Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use common::app_dir;
use pgcalm_testkit::TestDb;

const ROWS: i64 = 20_000;

/// `pgcalm migrate ARGS` on `db`, which must succeed; its stdout.
fn migrate(db: &TestDb, dir: &std::path::Path, args: &[&str]) -> String {
    common::ok(
        Command::cargo_bin("pgcalm")
            .unwrap()
            .current_dir(dir)
            .env("DATABASE_URL", db.url())
            .arg("migrate")
            .args(args),
    )
}

#[tokio::test]
async fn kill_9_mid_backfill_then_rerun_updates_every_row_exactly_once() {
    let db = TestDb::new().await;
    db.execute(&format!(
        "CREATE TABLE t (id bigint PRIMARY KEY, n int NOT NULL DEFAULT 0);
         INSERT INTO t (id) SELECT g FROM generate_series(1, {ROWS}) g;
         ANALYZE t;"
    ))
    .await;
    let dir = app_dir(&[(
        "0001_backfill.sql",
        "-- migrate:up transaction:false\n\
         -- pgcalm:backfill batch_size=100 delay=10ms\n\
         UPDATE t SET n = n + 1;\n",
    )]);
    let mut child = StdCommand::new(assert_cmd::cargo::cargo_bin("pgcalm"))
        .current_dir(dir.path())
        .env("DATABASE_URL", db.url())
        .args(["migrate"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let c = db.client().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(
            Instant::now() < deadline,
            "the backfill never committed 20 batches"
        );
        let batches: Option<i64> = c
            .query_opt("SELECT batches FROM pgcalm.backfill_progress", &[])
            .await
            .ok()
            .flatten()
            .map(|r| r.get(0));
        if batches.is_some_and(|b| b >= 20) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let counts = |sql: &'static str| {
        let c = &c;
        async move { c.query_one(sql, &[]).await.unwrap().get::<_, i64>(0) }
    };
    let partial = counts("SELECT count(*) FROM t WHERE n = 1").await;
    assert!(partial > 0 && partial < ROWS, "{partial}");
    assert_eq!(counts("SELECT count(*) FROM t WHERE n > 1").await, 0);

    let stdout = migrate(&db, dir.path(), &["--format", "json"]);
    // Every row exactly once: the killed run's committed batches are not redone.
    assert_eq!(counts("SELECT count(*) FROM t WHERE n = 1").await, ROWS);
    assert_eq!(counts("SELECT count(*) FROM t WHERE n <> 1").await, 0);
    // The JSON events: the resume point, progress with rate and ETA, the end.
    let events: Vec<serde_json::Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let started = events
        .iter()
        .find(|e| e["event"] == "backfill_started")
        .expect("backfill_started");
    let resumed = started["resumed_rows"].as_i64().unwrap();
    assert!((2000..ROWS).contains(&resumed), "{started}");
    assert_eq!(started["key"], serde_json::json!(["id"]));
    let progress = events
        .iter()
        .find(|e| e["event"] == "backfill_progress")
        .expect("backfill_progress");
    for field in [
        "rows_done",
        "rows_updated",
        "total_estimate",
        "rows_per_sec",
        "eta",
    ] {
        assert!(progress.get(field).is_some(), "{field}: {progress}");
    }
    let finished = events
        .iter()
        .find(|e| e["event"] == "backfill_finished")
        .expect("backfill_finished");
    assert_eq!(finished["rows_done"], ROWS);
    assert_eq!(finished["rows_updated"], ROWS);
}

#[tokio::test]
async fn the_printer_shows_the_backfill_and_its_end() {
    let db = TestDb::new().await;
    db.execute(
        "CREATE TABLE t (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
         INSERT INTO t (id) SELECT g FROM generate_series(1, 500) g;
         ANALYZE t;",
    )
    .await;
    let dir = app_dir(&[(
        "0001_backfill.sql",
        "-- migrate:up transaction:false\n-- pgcalm:backfill batch_size=200\nUPDATE t SET n = 1;\n",
    )]);
    let stdout = migrate(&db, dir.path(), &["--max-replica-lag", "2s"]);
    assert!(
        stdout.contains("    statement 1 (migrations/app/0001_backfill.sql:3) backfills public.t in batches by (id): about 500 rows, first batch 200, waits while a replica lags more than 2.0s\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("backfilled: 500 rows updated of 500 walked in 3 batches"),
        "{stdout}"
    );
}
