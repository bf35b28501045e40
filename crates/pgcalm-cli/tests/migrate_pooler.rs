//! `pgcalm migrate` through a real PgBouncer in transaction pooling mode, and the lock
//! waits it names, with the real binary: the refusal of a CONCURRENTLY build through the
//! pooler (nothing runs, the message names the statement and the fix), the same run
//! with `PGCALM_MIGRATE_URL`, and the line an idle blocker ended under
//! `--cancel-idle-blockers` prints.
#![allow(unused_crate_dependencies)] // a test crate uses some of the dev-dependencies

mod common;

use std::path::Path;
use std::time::Duration;

use common::{app_dir, fails, ok, pgcalm_in};
use pgcalm_testkit::{TestCluster, TestDb, TestPooler};

fn migrate(dir: &Path, database_url: &str) -> assert_cmd::Command {
    let mut cmd = pgcalm_in(dir);
    cmd.env("DATABASE_URL", database_url)
        .env_remove("PGCALM_MIGRATE_URL")
        .env_remove("PGCALM_CANCEL_IDLE_BLOCKERS")
        .arg("migrate");
    cmd
}

#[tokio::test]
async fn a_concurrent_build_through_the_pooler_is_refused_then_runs_with_the_direct_url() {
    let db = TestDb::new().await;
    let pooler = TestPooler::start(TestCluster::get(), 2);
    let dir = app_dir(&[
        ("0001_t.sql", "-- migrate:up\nCREATE TABLE t (id int);\n"),
        (
            "0002_idx.sql",
            "-- migrate:up transaction:false\nCREATE INDEX CONCURRENTLY t_id ON t (id);\n",
        ),
    ]);
    let err = fails(&mut migrate(dir.path(), &pooler.url(db.name())));
    for part in [
        "is a transaction pooler",
        "migrations/app/0002_idx.sql:2: CREATE INDEX CONCURRENTLY t_id ON t (id)",
        "nothing ran",
        "fix: give pgcalm the PostgreSQL server's own address for migrations: --direct-url URL, or PGCALM_MIGRATE_URL",
        "`pgcalm migrate app 0001_t` applies those before it now",
    ] {
        assert!(err.contains(part), "missing {part:?} in:\n{err}");
    }
    assert!(!err.contains(&TestCluster::get().password()), "{err}");
    assert_eq!(
        db.query_i64("SELECT CASE WHEN to_regclass('t') IS NULL THEN 1 ELSE 0 END::int8")
            .await,
        1,
        "nothing ran"
    );

    let out = ok(migrate(dir.path(), &pooler.url(db.name())).env("PGCALM_MIGRATE_URL", db.url()));
    assert!(out.contains("Applying app.0002_idx... OK"), "{out}");
    assert!(!out.contains("transaction pooler"), "{out}");
}

#[tokio::test]
async fn an_idle_blocker_is_named_ended_and_the_line_says_so() {
    let db = TestDb::new().await;
    db.execute("CREATE TABLE t (id int)").await;
    let dir = app_dir(&[(
        "0001_col.sql",
        "-- migrate:up\nALTER TABLE t ADD COLUMN note text;\n",
    )]);
    let idle = db.client().await;
    let pid: i32 = idle
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    idle.batch_execute("SET application_name = 'forgotten-shell'")
        .await
        .unwrap();
    idle.batch_execute("BEGIN").await.unwrap();
    idle.batch_execute("SELECT count(*) FROM t").await.unwrap();
    let url = db.url();
    let out = tokio::task::spawn_blocking(move || {
        ok(migrate(dir.path(), &url).args([
            "--cancel-idle-blockers",
            "1s",
            "--lock-timeout",
            "400ms",
            "--retry-max",
            "100ms",
            "--max-retries",
            "100",
        ]))
    })
    .await
    .unwrap();
    let waits = format!(
        "statement 1 (migrations/app/0001_col.sql:2) waits for a lock held by pid {pid} (forgotten-shell; idle in transaction for "
    );
    assert!(out.contains(&waits), "{out}");
    let ended = format!("    ended pid {pid} (forgotten-shell; idle in transaction for ");
    assert!(out.contains(&ended), "{out}");
    assert!(
        out.contains(
            "(idle in its transaction over --cancel-idle-blockers 1.0s), which blocked statement 1 \
             (migrations/app/0001_col.sql:2); recorded in pgcalm.blocker_cancellations"
        ),
        "{out}"
    );
    assert!(out.contains("Applying app.0001_col... OK"), "{out}");
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(idle.simple_query("SELECT 1").await.is_err());
}
