//! The runner against a real PostgreSQL (testkit): forward and back, checksums,
//! all-or-nothing, lock timeouts with a real blocker, statement_timeout = 0 for SHARE
//! UPDATE EXCLUSIVE statements, invalid-index repair, builds in flight, notices, the
//! runner lock, and the start point of `pgcalm up`.
#![allow(unused_crate_dependencies)] // a test crate uses some of the dev-dependencies

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod common;

use common::{migrations, runner};
use pgcalm_migrate::{Event, Goal, InDoubt, MigrateError, Policy, Runner, StartPoint};
use pgcalm_testkit::TestDb;
use tokio_util::sync::CancellationToken;

fn repo_migrations() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations")
}

/// Short timeouts so the suite stays fast.
fn fast_policy() -> Policy {
    Policy {
        lock_timeout: Duration::from_millis(200),
        retry_initial: Duration::from_millis(50),
        retry_max: Duration::from_millis(200),
        max_retries: 100,
        ..Policy::default()
    }
}

fn to(app: &str, target: &str) -> Goal {
    Goal::To {
        app: app.into(),
        target: target.into(),
    }
}

async fn markers(r: &Runner, app: &str) -> Vec<String> {
    r.status(Some(app))
        .await
        .unwrap()
        .iter()
        .map(|s| format!("{} {}", s.marker(), s.name))
        .collect()
}

async fn index_valid(db: &TestDb, name: &str) -> Option<bool> {
    db.client()
        .await
        .query_opt(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass($1)",
            &[&name],
        )
        .await
        .unwrap()
        .map(|r| r.get(0))
}

#[tokio::test]
async fn seed_walkthrough_forward_back_by_prefix_and_zero() {
    let db = TestDb::new().await;
    let (r, events) = runner(&db, &repo_migrations(), Policy::default());
    assert_eq!(
        markers(&r, "demoapp").await,
        ["[ ] 0001_initial", "[ ] 0002_add_email_index_concurrently"]
    );
    r.migrate(&to("demoapp", "0001")).await.unwrap();
    assert_eq!(
        markers(&r, "demoapp").await,
        ["[X] 0001_initial", "[ ] 0002_add_email_index_concurrently"]
    );
    db.execute("INSERT INTO large_email (name, email) SELECT 'u' || i, 'u' || i || '@x' FROM generate_series(1, 1000) i").await;
    r.migrate(&to("demoapp", "0002")).await.unwrap();
    assert_eq!(index_valid(&db, "large_email_email_idx").await, Some(true));
    assert_eq!(
        markers(&r, "demoapp").await,
        ["[X] 0001_initial", "[X] 0002_add_email_index_concurrently"]
    );
    // Back: the down section runs, the index goes, the data stays.
    r.migrate(&to("demoapp", "0001")).await.unwrap();
    assert_eq!(index_valid(&db, "large_email_email_idx").await, None);
    assert_eq!(
        markers(&r, "demoapp").await,
        ["[X] 0001_initial", "[ ] 0002_add_email_index_concurrently"]
    );
    let n: i64 = db.query_i64("SELECT count(*) FROM large_email").await;
    assert_eq!(n, 1000);
    // Forward again, then everything off (0001's down section drops the tables its up
    // section created: lint knows they are the migration's own, so nothing is refused).
    r.migrate(&Goal::All(vec![])).await.unwrap();
    r.migrate(&to("demoapp", "zero")).await.unwrap();
    assert_eq!(
        markers(&r, "demoapp").await,
        ["[ ] 0001_initial", "[ ] 0002_add_email_index_concurrently"]
    );
    let gone: bool = db
        .client()
        .await
        .query_one("SELECT to_regclass('large_email') IS NULL", &[])
        .await
        .unwrap()
        .get(0);
    assert!(gone);
    // Unapplying runs in reverse order.
    let finished: Vec<String> = events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            Event::MigrationFinished {
                name, direction, ..
            } => Some(format!("{direction} {name}")),
            _ => None,
        })
        .collect();
    assert_eq!(
        finished,
        [
            "up 0001_initial",
            "up 0002_add_email_index_concurrently",
            "down 0002_add_email_index_concurrently",
            "up 0002_add_email_index_concurrently",
            "down 0002_add_email_index_concurrently",
            "down 0001_initial",
        ]
    );
}

#[tokio::test]
async fn start_point_only_goes_forward() {
    let db = TestDb::new().await;
    let (r, _) = runner(&db, &repo_migrations(), Policy::default());
    let start: Vec<StartPoint> = vec!["demoapp:0001".parse().unwrap()];
    pgcalm_migrate::migrate_to_start_point(&r, &start)
        .await
        .unwrap();
    assert_eq!(
        markers(&r, "demoapp").await,
        ["[X] 0001_initial", "[ ] 0002_add_email_index_concurrently"]
    );
    r.migrate(&to("demoapp", "0002")).await.unwrap();
    // `pgcalm up` again must not roll the user's 0002 back.
    pgcalm_migrate::migrate_to_start_point(&r, &start)
        .await
        .unwrap();
    assert_eq!(
        markers(&r, "demoapp").await,
        ["[X] 0001_initial", "[X] 0002_add_email_index_concurrently"]
    );
    let err = "demoapp".parse::<StartPoint>().unwrap_err();
    assert!(
        err.to_string().contains("not an `app:migration` pair"),
        "{err}"
    );
}

#[tokio::test]
async fn changed_applied_file_is_an_error_naming_it() {
    let db = TestDb::new().await;
    let dir = migrations(&[(
        "0001_t.sql",
        "-- migrate:up\nCREATE TABLE t (id int);\n-- migrate:down\nDROP TABLE t;\n",
    )]);
    let (r, _) = runner(&db, dir.path(), Policy::default());
    r.migrate(&Goal::All(vec![])).await.unwrap();
    // Fixing the down section of an applied migration is fine: it has not run.
    std::fs::write(
        dir.path().join("app/0001_t.sql"),
        "-- migrate:up\nCREATE TABLE t (id int);\n-- migrate:down\nDROP TABLE IF EXISTS t;\n",
    )
    .unwrap();
    r.migrate(&Goal::All(vec![])).await.unwrap();
    std::fs::write(
        dir.path().join("app/0001_t.sql"),
        "-- migrate:up\nCREATE TABLE t (id bigint);\n-- migrate:down\nDROP TABLE t;\n",
    )
    .unwrap();
    let err = r.migrate(&Goal::All(vec![])).await.unwrap_err();
    assert!(
        matches!(err, MigrateError::ChecksumMismatch { .. }),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("app/0001_t.sql was changed after it was applied"),
        "{msg}"
    );
    assert!(msg.contains("new migration"), "{msg}");
    let status = r.status(Some("app")).await.unwrap();
    assert!(status[0].changed_since_applied);
    assert!(
        status[0]
            .explanation()
            .unwrap()
            .contains("file changed since it was applied")
    );
}

#[tokio::test]
async fn transactional_migration_is_all_or_nothing() {
    let db = TestDb::new().await;
    let dir = migrations(&[(
        "0001_two.sql",
        "-- migrate:up\nCREATE TABLE first (id int);\nINSERT INTO first VALUES (1);\nSELECT 1 / 0;\n-- migrate:down\nDROP TABLE first;\n",
    )]);
    let (r, _) = runner(&db, dir.path(), Policy::default());
    let err = r.migrate(&Goal::All(vec![])).await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("0001_two.sql:4:"),
        "error points at the statement's line: {msg}"
    );
    assert!(
        msg.contains("statement 3 of 3 of app.0001_two failed: ERROR: division by zero"),
        "{msg}"
    );
    assert!(
        msg.contains("rolled back: nothing of app.0001_two was applied"),
        "{msg}"
    );
    let gone: bool = db
        .client()
        .await
        .query_one("SELECT to_regclass('first') IS NULL", &[])
        .await
        .unwrap()
        .get(0);
    assert!(
        gone,
        "the first statement must be rolled back with the failed one"
    );
    let s = &r.status(Some("app")).await.unwrap()[0];
    assert_eq!(s.marker(), "[!]");
    let why = s.explanation().unwrap();
    assert!(
        why.contains(
            "apply failed (line 4): ERROR: division by zero; rolled back, nothing applied"
        ),
        "{why}"
    );
}

#[tokio::test]
async fn lock_timeout_retries_never_queue_readers_and_finish_when_the_blocker_leaves() {
    let db = TestDb::new().await;
    let setup = db.client().await;
    setup
        .batch_execute("CREATE TABLE busy (id int); INSERT INTO busy VALUES (1);")
        .await
        .unwrap();
    let dir = migrations(&[(
        "0001_alter.sql",
        "-- migrate:up\nCREATE TABLE side (id int);\nALTER TABLE busy ADD COLUMN note text;\n",
    )]);
    // The blocker: an open transaction holding ROW EXCLUSIVE on busy (like an app
    // request in flight). It does not block readers; the migration's ACCESS EXCLUSIVE
    // request would, if it were allowed to queue.
    let (blocker, blocker_pid) = db.session("BEGIN; INSERT INTO busy VALUES (2);").await;

    let (r, events) = runner(&db, dir.path(), fast_policy());
    let migration = tokio::spawn(async move { r.migrate(&Goal::All(vec![])).await });

    // The third session: an app reading the table the whole time.
    // Its own statement_timeout turns "queued forever" into a failed assertion, not a hang.
    let reader = db.client().await;
    reader
        .batch_execute("SET statement_timeout = '1s'")
        .await
        .unwrap();
    let mut worst = Duration::ZERO;
    let until = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < until {
        let t = Instant::now();
        let read = reader.query_one("SELECT count(*) FROM busy", &[]).await;
        worst = worst.max(t.elapsed());
        if read.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        !migration.is_finished(),
        "the migration must still be waiting for the blocker"
    );
    // (b) a reader is never queued much longer than lock_timeout (200ms).
    let queued_too_long = worst >= Duration::from_millis(450);
    blocker.batch_execute("COMMIT").await.unwrap();
    migration.await.unwrap().unwrap();
    assert!(!queued_too_long, "a SELECT waited {worst:?}");
    // (a) the migration retried the whole transaction, naming the blocker.
    let events = events.lock().unwrap().clone();
    let retries: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::LockTimeoutRetry {
                blockers,
                whole_transaction,
                statement,
                ..
            } => Some((
                blockers.iter().map(|b| b.pid).collect::<Vec<_>>(),
                *whole_transaction,
                statement.line,
            )),
            _ => None,
        })
        .collect();
    assert!(
        retries.len() >= 3,
        "expected several retries, got {retries:?}"
    );
    assert!(retries.iter().all(|(_, whole, line)| *whole && *line == 3));
    assert!(
        retries.iter().any(|(pids, _, _)| pids == &[blocker_pid]),
        "{retries:?}"
    );
    // (c) it completed once the blocker left, and the first statement ran exactly once.
    let c = db.client().await;
    let cols: i64 = c
        .query_one("SELECT count(*) FROM information_schema.columns WHERE table_name = 'busy' AND column_name = 'note'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(cols, 1);
    assert!(
        c.query_one("SELECT to_regclass('side') IS NOT NULL", &[])
            .await
            .unwrap()
            .get::<_, bool>(0)
    );
}

#[tokio::test]
async fn lock_timeout_retries_give_up_with_the_blocker_named() {
    let db = TestDb::new().await;
    db.execute("CREATE TABLE held (id int)").await;
    let dir = migrations(&[(
        "0001_idx.sql",
        "-- migrate:up transaction:false\nSELECT 1;\nCREATE INDEX CONCURRENTLY held_id ON held (id);\n",
    )]);
    let (blocker, blocker_pid) = db.session("BEGIN; LOCK TABLE held IN SHARE MODE;").await;
    let (r, events) = runner(
        &db,
        dir.path(),
        Policy {
            max_retries: 2,
            ..fast_policy()
        },
    );
    let err = r.migrate(&Goal::All(vec![])).await.unwrap_err().to_string();
    assert!(err.contains("0001_idx.sql:3: statement 2 of 2"), "{err}");
    assert!(
        err.contains("SQLSTATE 55P03 after 2 lock-timeout retries"),
        "{err}"
    );
    assert!(
        err.contains(&format!("blocked by pid {blocker_pid}")),
        "{err}"
    );
    assert!(
        err.contains("1 of 2 statements of app.0001_idx are done"),
        "{err}"
    );
    let retries = events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::LockTimeoutRetry {
                    whole_transaction: false,
                    ..
                }
            )
        })
        .count();
    assert_eq!(retries, 2);
    let s = &r.status(Some("app")).await.unwrap()[0];
    assert_eq!(s.marker(), "[!]");
    assert!(s.explanation().unwrap().contains("apply failed at statement 2 of 2 (line 3): ERROR: canceling statement due to lock timeout (lock_timeout 200ms; the application was never queued behind this statement for longer); 1 of 2 statements done; rerun resumes at statement 2"), "{:?}", s.explanation());
    blocker.batch_execute("ROLLBACK").await.unwrap();
    r.migrate(&Goal::All(vec![])).await.unwrap();
    assert_eq!(index_valid(&db, "held_id").await, Some(true));
}

#[tokio::test]
async fn share_update_exclusive_statements_run_without_statement_timeout() {
    let db = TestDb::new().await;
    db.execute(
            "CREATE TABLE v (n int);
             INSERT INTO v SELECT generate_series(1, 20);
             CREATE FUNCTION slow_ok(int) RETURNS boolean LANGUAGE sql AS 'SELECT true FROM pg_sleep(0.02)';
             ALTER TABLE v ADD CONSTRAINT n_ok CHECK (slow_ok(n)) NOT VALID;",
        ).await;
    let policy = Policy {
        statement_timeout: Some(Duration::from_millis(100)),
        lock_timeout: Duration::from_secs(5),
        ..Policy::default()
    };
    // VALIDATE (about 400ms of checks) and a CONCURRENTLY build that waits for a writer
    // (600ms) both outlast the 100ms statement_timeout, and must not be cancelled.
    let dir = migrations(&[
        (
            "0001_validate.sql",
            "-- migrate:up\nALTER TABLE v VALIDATE CONSTRAINT n_ok;\n",
        ),
        (
            "0002_index.sql",
            "-- migrate:up transaction:false\nCREATE INDEX CONCURRENTLY v_n ON v (n);\n",
        ),
        ("0003_slow.sql", "-- migrate:up\nSELECT pg_sleep(0.5);\n"),
    ]);
    let writer = db.client().await;
    writer
        .batch_execute("BEGIN; INSERT INTO v VALUES (21);")
        .await
        .unwrap();
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(600)).await;
        writer.batch_execute("COMMIT").await.unwrap();
    });
    let (r, _) = runner(&db, dir.path(), policy);
    let started = Instant::now();
    r.migrate(&to("app", "0001")).await.unwrap();
    r.migrate(&to("app", "0002")).await.unwrap();
    release.await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "the build had to wait for the writer"
    );
    assert_eq!(index_valid(&db, "v_n").await, Some(true));
    // The control: an ordinary statement gets the configured statement_timeout.
    let err = r.migrate(&to("app", "0003")).await.unwrap_err().to_string();
    assert!(
        err.contains("canceling statement due to statement timeout"),
        "{err}"
    );
}

#[tokio::test]
async fn invalid_index_from_a_failed_unique_build_is_reported_then_dropped_and_rebuilt() {
    let db = TestDb::new().await;
    let c = db.client().await;
    c.batch_execute("CREATE TABLE u (v int); INSERT INTO u VALUES (1), (1), (2);")
        .await
        .unwrap();
    let dir = migrations(&[(
        "0001_unique.sql",
        "-- migrate:up transaction:false\nCREATE UNIQUE INDEX CONCURRENTLY u_v_key ON u (v);\n-- migrate:down transaction:false\nDROP INDEX CONCURRENTLY IF EXISTS u_v_key;\n",
    )]);
    let (r, events) = runner(&db, dir.path(), fast_policy());
    let err = r.migrate(&Goal::All(vec![])).await.unwrap_err().to_string();
    assert!(
        err.contains("0001_unique.sql:2: statement 1 of 1 of app.0001_unique failed"),
        "{err}"
    );
    assert!(err.contains("DETAIL: Key (v)=(1) is duplicated."), "{err}");
    assert!(
        err.contains(
            "left an INVALID index u_v_key on u; the next run drops it concurrently and rebuilds it"
        ),
        "{err}"
    );
    assert_eq!(index_valid(&db, "u_v_key").await, Some(false));
    let s = &r.status(Some("app")).await.unwrap()[0];
    assert_eq!(s.marker(), "[!]");
    assert!(
        s.explanation()
            .unwrap()
            .contains("could not create unique index"),
        "{:?}",
        s.explanation()
    );

    c.batch_execute("DELETE FROM u WHERE ctid = (SELECT max(ctid) FROM u WHERE v = 1)")
        .await
        .unwrap();
    r.migrate(&Goal::All(vec![])).await.unwrap();
    assert_eq!(index_valid(&db, "u_v_key").await, Some(true));
    let events = events.lock().unwrap().clone();
    let found = events.iter().find_map(|e| match e {
        Event::InvalidIndexFound {
            index,
            table,
            cause,
            ..
        } => Some((index.clone(), table.clone(), cause.clone())),
        _ => None,
    });
    let (index, table, cause) = found.expect("the invalid index must be reported");
    assert_eq!((index.as_str(), table.as_str()), ("u_v_key", "u"));
    assert!(
        cause.contains("could not create unique index \"u_v_key\""),
        "{cause}"
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::InvalidIndexDropped { index } if index == "u_v_key"))
    );
    assert_eq!(markers(&r, "app").await, ["[X] 0001_unique"]);
}

#[tokio::test]
async fn a_build_in_flight_in_another_session_is_not_touched() {
    let db = TestDb::new().await;
    let c = db.client().await;
    c.batch_execute("CREATE TABLE f (v int); INSERT INTO f VALUES (1), (2);")
        .await
        .unwrap();
    // A writer keeps the other session's concurrent build waiting, with its (not yet
    // valid) index already in the catalog.
    let writer = db.client().await;
    writer
        .batch_execute("BEGIN; INSERT INTO f VALUES (3);")
        .await
        .unwrap();
    let builder = db.client().await;
    let builder_pid: i32 = builder
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    let build = tokio::spawn(async move {
        builder
            .batch_execute("CREATE INDEX CONCURRENTLY f_v ON f (v)")
            .await
    });
    for _ in 0..200 {
        if index_valid(&db, "f_v").await.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        index_valid(&db, "f_v").await,
        Some(false),
        "the other build must be in flight"
    );

    let dir = migrations(&[(
        "0001_idx.sql",
        "-- migrate:up transaction:false\nCREATE INDEX CONCURRENTLY f_v ON f (v);\n",
    )]);
    let (r, _) = runner(&db, dir.path(), fast_policy());
    let err = r.migrate(&Goal::All(vec![])).await.unwrap_err();
    assert!(
        matches!(err, MigrateError::IndexBuildInFlight { pid, .. } if pid == builder_pid),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("0001_idx.sql:2: index f_v is being built right now"),
        "{err}"
    );

    writer.batch_execute("COMMIT").await.unwrap();
    build
        .await
        .unwrap()
        .expect("the other session's build must finish untouched");
    assert_eq!(index_valid(&db, "f_v").await, Some(true));
}

#[tokio::test]
async fn concurrently_in_a_transaction_is_refused_before_anything_runs() {
    let db = TestDb::new().await;
    let dir = migrations(&[
        ("0001_ok.sql", "-- migrate:up\nCREATE TABLE ok (id int);\n"),
        (
            "0002_bad.sql",
            "-- migrate:up\nCREATE TABLE t (id int);\n\nCREATE INDEX CONCURRENTLY t_id ON t (id);\n",
        ),
    ]);
    let (r, events) = runner(&db, dir.path(), Policy::default());
    let err = r.migrate(&Goal::All(vec![])).await.unwrap_err().to_string();
    assert!(
        err.contains("0002_bad.sql:4: CREATE INDEX CONCURRENTLY cannot run inside a transaction"),
        "{err}"
    );
    assert!(
        err.contains("`-- migrate:up transaction:false` on line 1"),
        "{err}"
    );
    assert!(events.lock().unwrap().is_empty());
    let c = db.client().await;
    let nothing: bool = c
        .query_one(
            "SELECT to_regclass('ok') IS NULL AND to_regclass('pgcalm.migrations') IS NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(nothing, "not even the valid first migration may run");
}

#[tokio::test]
async fn notices_and_errors_name_statement_file_and_line() {
    let db = TestDb::new().await;
    let dir = migrations(&[
        (
            "0001_notice.sql",
            "-- migrate:up transaction:false\nCREATE TABLE n (id int);\nDROP TABLE IF EXISTS not_there; -- pgcalm:ignore dropping-table it never existed: this raises the NOTICE\n",
        ),
        (
            "0002_err.sql",
            "-- migrate:up\nSELECT 1;\nSELECT id\n  FROM missing_table;\n",
        ),
    ]);
    let (r, events) = runner(&db, dir.path(), Policy::default());
    r.migrate(&to("app", "0001")).await.unwrap();
    let notice = events.lock().unwrap().iter().find_map(|e| match e {
        Event::Notice { statement, notice } => Some((statement.clone(), notice.clone())),
        _ => None,
    });
    let (at, notice) = notice.expect("DROP ... IF EXISTS raises a NOTICE");
    assert_eq!((at.line, at.number, at.total), (3, 2, 2));
    assert!(at.path.ends_with("app/0001_notice.sql"));
    assert_eq!(at.summary, "DROP TABLE IF EXISTS not_there");
    assert_eq!(notice.severity, "NOTICE");
    assert!(
        notice
            .message
            .contains("\"not_there\" does not exist, skipping"),
        "{notice:?}"
    );

    let err = r.migrate(&Goal::All(vec![])).await.unwrap_err().to_string();
    // The server's error position is mapped to the file: line 4, column 8.
    assert!(err.contains("0002_err.sql:4:8: statement 2 of 2 of app.0002_err failed: ERROR: relation \"missing_table\" does not exist"), "{err}");
    assert!(err.contains("statement: SELECT id ..."), "{err}");
    assert!(err.contains("SQLSTATE 42P01"), "{err}");
}

#[tokio::test]
async fn one_runner_at_a_time() {
    let db = TestDb::new().await;
    let dir = migrations(&[("0001_t.sql", "-- migrate:up\nCREATE TABLE t (id int);\n")]);
    let (holder, holder_pid) = db
        .session(&format!(
            "SELECT pg_advisory_lock({})",
            pgcalm_migrate::RUNNER_LOCK_KEY
        ))
        .await;

    // Gives up after --wait, naming the other runner.
    let (impatient, _) = runner(
        &db,
        dir.path(),
        Policy {
            wait_for_lock: Some(Duration::from_millis(300)),
            ..Policy::default()
        },
    );
    let t = Instant::now();
    let err = impatient.migrate(&Goal::All(vec![])).await.unwrap_err();
    assert!(t.elapsed() >= Duration::from_millis(300));
    assert!(
        matches!(&err, MigrateError::LockBusy { holder: Some(h), .. } if h.pid == holder_pid),
        "{err}"
    );
    assert!(err.to_string().contains("gave up after 0.3s"), "{err}");

    // Waits (saying so) and proceeds when the lock is free.
    let (patient, events) = runner(&db, dir.path(), Policy::default());
    let run = tokio::spawn(async move { patient.migrate(&Goal::All(vec![])).await });
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(!run.is_finished());
    holder
        .query_one(
            "SELECT pg_advisory_unlock($1)",
            &[&pgcalm_migrate::RUNNER_LOCK_KEY],
        )
        .await
        .unwrap();
    run.await.unwrap().unwrap();
    let events = events.lock().unwrap();
    assert!(
        matches!(&events[0], Event::WaitingForLock { holder: Some(h), lease: None } if h.pid == holder_pid),
        "{:?}",
        events[0]
    );
    assert!(
        matches!(&events[1], Event::LockAcquired { waited } if *waited >= Duration::from_millis(400))
    );
}

#[tokio::test]
async fn index_build_progress_is_reported_while_it_waits_and_builds() {
    let db = TestDb::new().await;
    let c = db.client().await;
    c.batch_execute("CREATE TABLE p (v int); INSERT INTO p SELECT generate_series(1, 50000);")
        .await
        .unwrap();
    let (writer, writer_pid) = db.session("BEGIN; INSERT INTO p VALUES (0);").await;
    let dir = migrations(&[(
        "0001_idx.sql",
        "-- migrate:up transaction:false\nCREATE INDEX CONCURRENTLY p_v ON p (v);\n",
    )]);
    let (r, events) = runner(
        &db,
        dir.path(),
        Policy {
            lock_timeout: Duration::from_secs(5),
            ..Policy::default()
        },
    );
    let run = tokio::spawn(async move { r.migrate(&Goal::All(vec![])).await });
    // The writer ends once the build has waited for it over a few samples (250 ms apart).
    until_the_runner_waits(&db).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    writer.batch_execute("COMMIT").await.unwrap();
    run.await.unwrap().unwrap();
    let events = events.lock().unwrap();
    let progress: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::IndexProgress {
                progress,
                statement,
            } => Some((progress.clone(), statement.line)),
            _ => None,
        })
        .collect();
    assert!(!progress.is_empty());
    let waiting = progress
        .iter()
        .find(|(p, _)| p.phase.starts_with("waiting for writers"))
        .expect("the build waited for the writer");
    assert_eq!(waiting.0.current_locker_pid, writer_pid as i64);
    assert_eq!(waiting.0.command, "CREATE INDEX CONCURRENTLY");
    assert_eq!(waiting.0.index.as_deref(), Some("p_v"));
    assert_eq!(waiting.1, 2);
}

#[tokio::test]
async fn rollback_of_a_failed_no_transaction_migration_runs_its_down_section() {
    let db = TestDb::new().await;
    let dir = migrations(&[(
        "0001_two.sql",
        "-- migrate:up transaction:false\nCREATE TABLE a (id int);\nCREATE TABLE a (id int);\n-- migrate:down transaction:false\nDROP TABLE IF EXISTS a;\n",
    )]);
    let (r, _) = runner(&db, dir.path(), Policy::default());
    let err = r.migrate(&Goal::All(vec![])).await.unwrap_err().to_string();
    assert!(
        err.contains("1 of 2 statements of app.0001_two are done"),
        "{err}"
    );
    r.migrate(&to("app", "zero")).await.unwrap();
    assert_eq!(markers(&r, "app").await, ["[ ] 0001_two"]);
    let gone: bool = db
        .client()
        .await
        .query_one("SELECT to_regclass('a') IS NULL", &[])
        .await
        .unwrap()
        .get(0);
    assert!(gone);
}

#[tokio::test]
async fn going_back_needs_the_file_and_a_down_section() {
    let db = TestDb::new().await;
    let dir = migrations(&[
        ("0001_keep.sql", "-- migrate:up\nCREATE TABLE k (id int);\n"),
        (
            "0002_gone.sql",
            "-- migrate:up\nCREATE TABLE g (id int);\n-- migrate:down\nDROP TABLE g;\n",
        ),
    ]);
    let (r, _) = runner(&db, dir.path(), Policy::default());
    r.migrate(&Goal::All(vec![])).await.unwrap();
    std::fs::remove_file(dir.path().join("app/0002_gone.sql")).unwrap();
    let status = r.status(Some("app")).await.unwrap();
    assert_eq!(status[1].name, "0002_gone");
    assert_eq!(status[1].explanation().as_deref(), Some("file missing"));
    let err = r.migrate(&to("app", "0001")).await.unwrap_err().to_string();
    assert!(
        err.contains("app.0002_gone is applied but its file is missing"),
        "{err}"
    );
    // Forward runs are not blocked by it.
    r.migrate(&Goal::All(vec![])).await.unwrap();
    // No down section: cannot be unapplied, and the error says which file to fix.
    let err = r.migrate(&to("app", "zero")).await.unwrap_err().to_string();
    assert!(
        err.contains("app.0002_gone is applied but its file is missing"),
        "{err}"
    );
    std::fs::write(
        dir.path().join("app/0002_gone.sql"),
        "-- migrate:up\nCREATE TABLE g (id int);\n-- migrate:down\nDROP TABLE g;\n",
    )
    .unwrap();
    let err = r.migrate(&to("app", "zero")).await.unwrap_err().to_string();
    assert!(err.contains("app/0001_keep.sql has no `-- migrate:down` section, so app.0001_keep cannot be unapplied"), "{err}");
    let still: bool = db
        .client()
        .await
        .query_one("SELECT to_regclass('g') IS NOT NULL", &[])
        .await
        .unwrap()
        .get(0);
    assert!(still, "an impossible plan must not start");
}

#[tokio::test]
async fn lock_timeout_mid_concurrent_build_leaves_an_invalid_index_that_the_retry_repairs() {
    let db = TestDb::new().await;
    db.execute("CREATE TABLE w (v int); INSERT INTO w VALUES (1);")
        .await;
    // A writer in flight: CREATE INDEX CONCURRENTLY creates the (invalid) index, then
    // waits for it and hits lock_timeout, leaving the invalid index behind.
    let writer = db.client().await;
    writer
        .batch_execute("BEGIN; INSERT INTO w VALUES (2);")
        .await
        .unwrap();
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(700)).await;
        writer.batch_execute("COMMIT").await.unwrap();
    });
    let dir = migrations(&[(
        "0001_idx.sql",
        "-- migrate:up transaction:false\nCREATE INDEX CONCURRENTLY w_v ON w (v);\n",
    )]);
    let (r, events) = runner(&db, dir.path(), fast_policy());
    r.migrate(&Goal::All(vec![])).await.unwrap();
    release.await.unwrap();
    assert_eq!(index_valid(&db, "w_v").await, Some(true));
    let events = events.lock().unwrap().clone();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::LockTimeoutRetry { .. }))
    );
    let causes: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            Event::InvalidIndexFound { cause, .. } => Some(cause.as_str()),
            _ => None,
        })
        .collect();
    assert!(
        !causes.is_empty(),
        "the retry must find the invalid index the timed-out attempt left"
    );
    assert!(
        causes
            .iter()
            .all(|c| *c == "left by the previous attempt, which hit lock_timeout"),
        "{causes:?}"
    );
    let indexes: i64 = db
        .query_i64("SELECT count(*) FROM pg_indexes WHERE tablename = 'w'")
        .await;
    assert_eq!(indexes, 1, "no leftover index");
}

#[tokio::test]
async fn showmigrations_sees_a_migration_running_now() {
    let db = TestDb::new().await;
    let dir = migrations(&[(
        "0001_slow.sql",
        "-- migrate:up transaction:false\nCREATE TABLE s (id int);\nSELECT pg_sleep(0.8);\n",
    )]);
    let (r, _) = runner(&db, dir.path(), Policy::default());
    let watcher = r.clone();
    let run = tokio::spawn(async move { r.migrate(&Goal::All(vec![])).await });
    let deadline = Instant::now() + Duration::from_secs(10);
    let seen = loop {
        assert!(Instant::now() < deadline, "never saw the migration running");
        let s = watcher.status(Some("app")).await.unwrap().remove(0);
        if s.marker() == "[-]" && s.explanation().is_some_and(|w| w.contains("1 of 2")) {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let why = seen.explanation().unwrap();
    assert!(
        why.starts_with("applying now: 1 of 2 statements done (runner backend pid "),
        "{why}"
    );
    run.await.unwrap().unwrap();
    assert_eq!(markers(&watcher, "app").await, ["[X] 0001_slow"]);
}

#[tokio::test]
async fn an_interrupted_unapply_must_finish_before_going_forward_and_resumes() {
    let db = TestDb::new().await;
    let up =
        "-- migrate:up transaction:false\nCREATE TABLE a (id int);\nCREATE TABLE b (id int);\n";
    let dir = migrations(&[(
        "0001_ab.sql",
        &format!("{up}-- migrate:down transaction:false\nDROP TABLE a;\nDROP TABLE b_typo;\n"),
    )]);
    // The typo (which makes the unapply fail half-way) names a table the migration did
    // not create, so lint flags it (dropping-table): allowed, this test is about resuming.
    let policy = Policy {
        allow_risky: true,
        ..Policy::default()
    };
    let (r, _) = runner(&db, dir.path(), policy);
    r.migrate(&Goal::All(vec![])).await.unwrap();
    let err = r.migrate(&to("app", "zero")).await.unwrap_err().to_string();
    assert!(
        err.contains("1 of 2 statements of app.0001_ab are done"),
        "{err}"
    );
    let s = &r.status(Some("app")).await.unwrap()[0];
    assert!(
        s.explanation()
            .unwrap()
            .starts_with("unapply failed at statement 2 of 2 (line 6)"),
        "{:?}",
        s.explanation()
    );
    let err = r.migrate(&Goal::All(vec![])).await.unwrap_err().to_string();
    assert!(
        err.contains(
            "app.0001_ab was being unapplied when the runner stopped (1 of 2 down statements done)"
        ),
        "{err}"
    );
    // Fix the pending statement (the completed one must stay as it was), then resume.
    std::fs::write(
        dir.path().join("app/0001_ab.sql"),
        format!("{up}-- migrate:down transaction:false\nDROP TABLE a;\nDROP TABLE b;\n"),
    )
    .unwrap();
    r.migrate(&to("app", "zero")).await.unwrap();
    assert_eq!(markers(&r, "app").await, ["[ ] 0001_ab"]);
    let gone: bool = db
        .client()
        .await
        .query_one(
            "SELECT to_regclass('a') IS NULL AND to_regclass('b') IS NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        gone,
        "statement 1 (DROP TABLE a) must not run twice, statement 2 must run"
    );
}

/// `app/0001_idx.sql`: `build` (a CONCURRENTLY build on `k`), then `CREATE TABLE
/// after_idx`, in a `transaction:false` section.
fn build_then_table(build: &str) -> tempfile::TempDir {
    migrations(&[(
        "0001_idx.sql",
        &format!("-- migrate:up transaction:false\n{build};\nCREATE TABLE after_idx (id int);\n"),
    )])
}

/// What a runner killed during the build of `build_then_table` leaves, once it ran: the
/// journal says "running, nothing done, statement 1 in flight"; statement 2 undone.
const KILLED_DURING_THE_BUILD: &str = "DROP TABLE after_idx;
     UPDATE pgcalm.migrations SET state = 'running_up', runner_pid = 0, in_flight = 0;
     DELETE FROM pgcalm.migration_statements;";

#[tokio::test]
async fn a_build_that_finished_after_its_runner_was_killed_counts_as_done() {
    let db = TestDb::new().await;
    let c = db.client().await;
    c.batch_execute("CREATE TABLE k (v int)").await.unwrap();
    let dir = build_then_table("CREATE INDEX CONCURRENTLY k_v ON k (v)");
    let (r, events) = runner(&db, dir.path(), Policy::default());
    // The server finished the orphaned build.
    r.migrate(&Goal::All(vec![])).await.unwrap();
    c.batch_execute(KILLED_DURING_THE_BUILD).await.unwrap();
    assert!(markers(&r, "app").await[0].starts_with("[-] 0001_idx"));
    events.lock().unwrap().clear();
    r.migrate(&Goal::All(vec![])).await.unwrap();
    let done = events.lock().unwrap().iter().find_map(|e| match e {
        Event::StatementAlreadyDone { statement, reason } => {
            Some((statement.number, reason.clone()))
        }
        _ => None,
    });
    assert_eq!(
        done,
        Some((
            1,
            "index k_v exists and is valid: the interrupted run finished this statement".into()
        ))
    );
    assert_eq!(markers(&r, "app").await, ["[X] 0001_idx"]);
    assert!(
        c.query_one("SELECT to_regclass('after_idx') IS NOT NULL", &[])
            .await
            .unwrap()
            .get::<_, bool>(0)
    );
}

#[tokio::test]
async fn concurrent_lock_timeout_lets_a_build_outwait_an_old_snapshot_without_retries() {
    let db = TestDb::new().await;
    db.execute(
        "CREATE TABLE t (n int); INSERT INTO t SELECT generate_series(1, 1000);
             CREATE TABLE elsewhere (x int);",
    )
    .await;
    // A long transaction on another table: it holds no lock on t, only an old snapshot,
    // which a CONCURRENTLY build must wait out (a lock wait on its virtual xid).
    let long_tx = db.client().await;
    long_tx
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM elsewhere;")
        .await
        .unwrap();
    let dir = migrations(&[(
        "0001_index.sql",
        "-- migrate:up transaction:false\nCREATE INDEX CONCURRENTLY t_n ON t (n);\n",
    )]);
    let policy = Policy {
        concurrent_lock_timeout: Some(Duration::from_secs(60)),
        ..fast_policy() // lock_timeout 200ms for everything else
    };
    let (r, events) = runner(&db, dir.path(), policy);
    let migration = tokio::spawn(async move { r.migrate(&Goal::All(vec![])).await });
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(
        !migration.is_finished(),
        "the build waits for the old snapshot"
    );
    long_tx.batch_execute("COMMIT").await.unwrap();
    migration.await.unwrap().unwrap();
    assert_eq!(index_valid(&db, "t_n").await, Some(true));
    let retries = events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| matches!(e, Event::LockTimeoutRetry { .. }))
        .count();
    assert_eq!(retries, 0, "waited instead of timing out and retrying");
}

#[tokio::test]
async fn an_expired_ignore_no_longer_lets_a_risky_statement_through() {
    // `-- pgcalm:ignore RULE until DATE` holds until that date: after it, the runner
    // refuses the statement again (and says the ignore expired), as `pgcalm lint` does.
    let db = TestDb::new().await;
    db.execute("CREATE TABLE big (id int, email text)").await;
    let dir = migrations(&[(
        "0001_index.sql",
        "-- migrate:up\n-- pgcalm:ignore require-concurrent-index-creation until 2020-01-01 big was tiny then\nCREATE INDEX big_email ON big (email);\n",
    )]);
    let (r, _) = runner(&db, dir.path(), fast_policy());
    let err = r.migrate(&Goal::All(vec![])).await.unwrap_err();
    let MigrateError::RiskyMigration { findings } = &err else {
        panic!("expected a refusal, got {err}");
    };
    let rules: Vec<&str> = findings.iter().map(|f| f.finding.rule.name()).collect();
    assert_eq!(
        rules,
        ["expired-ignore", "require-concurrent-index-creation"],
        "{err}"
    );
    assert_eq!(markers(&r, "app").await, ["[ ] 0001_index"]);

    // Until a date still to come, it lets the statement through.
    std::fs::write(
        dir.path().join("app/0001_index.sql"),
        "-- migrate:up\n-- pgcalm:ignore require-concurrent-index-creation until 9999-12-31 big stays tiny\nCREATE INDEX big_email ON big (email);\n",
    )
    .unwrap();
    r.migrate(&Goal::All(vec![])).await.unwrap();
    assert_eq!(markers(&r, "app").await, ["[X] 0001_index"]);
}

#[tokio::test]
async fn risky_migrations_are_refused_before_anything_runs_unless_ignored_or_allowed() {
    let db = TestDb::new().await;
    db.execute("CREATE TABLE big (id int, email text)").await;
    let dir = migrations(&[(
        "0001_index.sql",
        "-- migrate:up\nCREATE TABLE side (id int);\nCREATE INDEX big_email ON big (email);\n",
    )]);
    let (r, events) = runner(&db, dir.path(), fast_policy());
    let err = r.migrate(&Goal::All(vec![])).await.unwrap_err();
    let MigrateError::RiskyMigration { findings } = &err else {
        panic!("expected a refusal, got {err}");
    };
    let rules: Vec<(&str, usize)> = findings
        .iter()
        .map(|f| (f.finding.rule.name(), f.finding.span.line))
        .collect();
    assert_eq!(rules, [("require-concurrent-index-creation", 3)]);
    let msg = err.to_string();
    assert!(
        msg.contains("0001_index.sql:3: error [require-concurrent-index-creation]"),
        "{msg}"
    );
    assert!(
        msg.contains("CONCURRENTLY"),
        "the fix is in the message: {msg}"
    );
    assert!(
        msg.contains("--allow-risky") && msg.contains("pgcalm:ignore"),
        "{msg}"
    );
    // Nothing ran: not even the safe first statement, and no plan was announced.
    assert_eq!(
        db.query_i64("SELECT count(*) FROM pg_class WHERE relname IN ('side', 'big_email')")
            .await,
        0
    );
    assert!(events.lock().unwrap().is_empty());
    assert_eq!(markers(&r, "app").await, ["[ ] 0001_index"]);

    // An ignore directive with a reason lets that statement through.
    std::fs::write(
        dir.path().join("app/0001_index.sql"),
        "-- migrate:up\nCREATE TABLE side (id int);\n-- pgcalm:ignore require-concurrent-index-creation big holds a few rows in every deployment\nCREATE INDEX big_email ON big (email);\n",
    )
    .unwrap();
    r.migrate(&Goal::All(vec![])).await.unwrap();
    assert_eq!(markers(&r, "app").await, ["[X] 0001_index"]);

    // --allow-risky runs a risky one as written.
    std::fs::write(
        dir.path().join("app/0002_index.sql"),
        "-- migrate:up\nCREATE INDEX big_id ON big (id);\n",
    )
    .unwrap();
    assert!(matches!(
        r.migrate(&Goal::All(vec![])).await,
        Err(MigrateError::RiskyMigration { .. })
    ));
    let (allowed, _) = runner(
        &db,
        dir.path(),
        Policy {
            allow_risky: true,
            ..fast_policy()
        },
    );
    allowed.migrate(&Goal::All(vec![])).await.unwrap();
    assert_eq!(
        db.query_i64("SELECT count(*) FROM pg_class WHERE relname = 'big_id'")
            .await,
        1
    );
}

/// Waits until a runner's session in this database waits for a lock (at most 20s).
async fn until_the_runner_waits(db: &TestDb) {
    let c = db.client().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let waits: bool = c
            .query_one(
                "SELECT count(*) > 0 FROM pg_stat_activity WHERE datname = current_database()
                    AND application_name LIKE 'pgcalm migrate %' AND wait_event_type = 'Lock'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if waits {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the runner never waited for a lock"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_cancelled_run_cancels_the_statement_in_flight_keeps_what_completed_and_frees_the_lock() {
    let db = TestDb::new().await;
    let dir = migrations(&[
        (
            "0001_first.sql",
            "-- migrate:up transaction:false\nCREATE TABLE one (id int);\nCREATE TABLE two (id int);\nSELECT pg_advisory_xact_lock(99);\n",
        ),
        (
            "0002_next.sql",
            "-- migrate:up\nCREATE TABLE three (id int);\n",
        ),
    ]);
    let (gate, _) = db.session("SELECT pg_advisory_lock(99)").await;
    let stop = CancellationToken::new();
    let policy = Policy {
        lock_timeout: Duration::from_secs(60),
        ..Policy::default()
    };
    let (r, events) = runner(&db, dir.path(), policy);
    let cancellable = r.clone().with_cancel(stop.clone());
    let run = tokio::spawn(async move { cancellable.migrate(&Goal::All(vec![])).await });
    until_the_runner_waits(&db).await;
    let sent = Instant::now();
    stop.cancel();
    let err = run.await.unwrap().unwrap_err();
    // The behaviour under test, with a generous bound: the cancel reaches the server
    // at once instead of the statement waiting out its 60s lock_timeout.
    assert!(
        sent.elapsed() < Duration::from_secs(5),
        "{:?}",
        sent.elapsed()
    );
    let MigrateError::Cancelled(c) = &err else {
        panic!("{err}")
    };
    let stopped = c.stopped.as_ref().unwrap();
    assert_eq!(
        (stopped.statement.number, stopped.in_flight, stopped.done),
        (3, true, 2)
    );
    assert_eq!(c.not_started, ["app.0002_next"]);
    let text = err.to_string();
    assert!(
        text.starts_with("cancelled: ") && text.contains("0001_first.sql:4: statement 3 of 3 of app.0001_first (SELECT pg_advisory_xact_lock(99)) was cancelled on the server; 2 of 3 statements of app.0001_first are done\n  not started: app.0002_next\n  the migration lock is released; run the same migrate again to resume"),
        "{text}"
    );
    assert!(
        events
            .lock()
            .unwrap()
            .iter()
            .any(|e| matches!(e, Event::Cancelling { statement } if statement.number == 3))
    );
    let c = db.client().await;
    assert!(
        pgcalm_pg::catalog::advisory_lock_holder(&c, pgcalm_migrate::RUNNER_LOCK_KEY)
            .await
            .unwrap()
            .is_none(),
        "the migration lock is released before migrate returns"
    );
    let s = &r.status(Some("app")).await.unwrap()[0];
    assert_eq!(
        (s.marker(), s.explanation().unwrap().as_str()),
        (
            "[-]",
            "cancelled at statement 3 of 3 (line 4); 2 of 3 statements done; `pgcalm migrate` resumes at statement 3"
        )
    );
    // Resuming does not run statements 1-2 again (CREATE TABLE would fail).
    gate.batch_execute("SELECT pg_advisory_unlock_all()")
        .await
        .unwrap();
    r.migrate(&Goal::All(vec![])).await.unwrap();
    assert_eq!(
        markers(&r, "app").await,
        ["[X] 0001_first", "[X] 0002_next"]
    );
}

#[tokio::test]
async fn a_cancel_while_waiting_for_another_runner_runs_nothing() {
    let db = TestDb::new().await;
    let dir = migrations(&[("0001_t.sql", "-- migrate:up\nCREATE TABLE t (id int);\n")]);
    let (_holder, _) = db
        .session(&format!(
            "SELECT pg_advisory_lock({})",
            pgcalm_migrate::RUNNER_LOCK_KEY
        ))
        .await;
    let stop = CancellationToken::new();
    let (r, _) = runner(&db, dir.path(), Policy::default());
    let r = r.with_cancel(stop.clone());
    let run = tokio::spawn(async move { r.migrate(&Goal::All(vec![])).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.cancel();
    let err = run.await.unwrap().unwrap_err();
    assert!(
        matches!(&err, MigrateError::Cancelled(c) if c.stopped.is_none() && c.completed.is_empty()),
        "{err}"
    );
    assert!(
        err.to_string()
            .starts_with("cancelled: stopped before running anything"),
        "{err}"
    );
}

#[tokio::test]
async fn a_statement_left_in_flight_that_the_database_cannot_vouch_for_is_asked_about() {
    let db = TestDb::new().await;
    let c = db.client().await;
    c.batch_execute("CREATE TABLE k (v int)").await.unwrap();
    // An unnamed build: a second run would build a second index, and nothing tells
    // which index the first run built.
    let dir = build_then_table("CREATE INDEX CONCURRENTLY ON k (v)");
    let (r, events) = runner(&db, dir.path(), Policy::default());
    r.migrate(&Goal::All(vec![])).await.unwrap();
    c.batch_execute(KILLED_DURING_THE_BUILD).await.unwrap();
    let err = r.migrate(&Goal::All(vec![])).await.unwrap_err();
    assert!(
        matches!(
            err,
            MigrateError::InDoubt {
                number: 1,
                line: 2,
                ..
            }
        ),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.ends_with("0001_idx.sql:2: statement 1 of app.0001_idx (CREATE INDEX CONCURRENTLY ON k (v)) was running outside a transaction when the last runner stopped, and the database does not tell whether it completed\n  fix: look at the database; then rerun with --assume-done if it completed, or with --rerun to run it again"),
        "{text}"
    );
    let indexes = || db.query_i64("SELECT count(*) FROM pg_indexes WHERE tablename = 'k'");
    assert_eq!(indexes().await, 1, "nothing ran");

    r.clone()
        .on_in_doubt(InDoubt::AssumeDone)
        .migrate(&Goal::All(vec![]))
        .await
        .unwrap();
    assert_eq!(indexes().await, 1, "--assume-done did not build it again");
    assert!(events.lock().unwrap().iter().any(|e| matches!(e,
        Event::StatementAlreadyDone { statement, reason }
            if statement.number == 1 && reason.starts_with("--assume-done"))));
    assert_eq!(markers(&r, "app").await, ["[X] 0001_idx"]);

    c.batch_execute(KILLED_DURING_THE_BUILD).await.unwrap();
    r.clone()
        .on_in_doubt(InDoubt::Rerun)
        .migrate(&Goal::All(vec![]))
        .await
        .unwrap();
    assert_eq!(indexes().await, 2, "--rerun built it again, as asked");
}

#[tokio::test]
async fn a_journal_of_an_earlier_pgcalm_is_upgraded_and_its_unjournaled_statement_asked_about() {
    let db = TestDb::new().await;
    // The journal as pgcalm 0.1 left it after a kill -9 during statement 1 of a
    // transaction:false migration (each statement then ran outside a transaction: an
    // orphaned UPDATE could commit without its journal row).
    db.execute(
        "CREATE TABLE counter (c int); INSERT INTO counter VALUES (1);
         CREATE SCHEMA pgcalm;
         CREATE TABLE pgcalm.migrations (
             app text NOT NULL, name text NOT NULL,
             state text NOT NULL CHECK (state IN ('applied', 'not_applied', 'running_up', 'running_down')),
             checksum text NOT NULL, transactional boolean NOT NULL, statements_total integer NOT NULL,
             runner_pid integer, started_at timestamptz NOT NULL DEFAULT now(), applied_at timestamptz,
             duration_ms bigint, error text, error_direction text, error_line integer, error_at timestamptz,
             PRIMARY KEY (app, name));
         CREATE TABLE pgcalm.migration_statements (
             app text NOT NULL, name text NOT NULL, direction text NOT NULL,
             statement_index integer NOT NULL, line integer NOT NULL, checksum text NOT NULL,
             duration_ms bigint NOT NULL, finished_at timestamptz NOT NULL DEFAULT now(),
             PRIMARY KEY (app, name, direction, statement_index),
             FOREIGN KEY (app, name) REFERENCES pgcalm.migrations ON DELETE CASCADE);",
    )
    .await;
    let dir = migrations(&[(
        "0001_bump.sql",
        "-- migrate:up transaction:false\n-- pgcalm:ignore unbatched-backfill one row\nUPDATE counter SET c = c + 1;\nCREATE TABLE after_bump (id int);\n",
    )]);
    let (r, _) = runner(&db, dir.path(), Policy::default());
    let checksum = r.load().unwrap().apps["app"][0].checksum.clone();
    db.client()
        .await
        .execute(
            "INSERT INTO pgcalm.migrations (app, name, state, checksum, transactional, statements_total, runner_pid)
             VALUES ('app', '0001_bump', 'running_up', $1, false, 2, 0)",
            &[&checksum],
        )
        .await
        .unwrap();
    // Reading an old journal works and changes nothing.
    assert_eq!(markers(&r, "app").await, ["[-] 0001_bump"]);
    let err = r.migrate(&Goal::All(vec![])).await.unwrap_err();
    assert!(
        matches!(
            err,
            MigrateError::InDoubt {
                number: 1,
                line: 3,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(db.query_i64("SELECT c::bigint FROM counter").await, 1);
    // The UPDATE had committed: the operator says so, and it does not count twice.
    r.clone()
        .on_in_doubt(InDoubt::AssumeDone)
        .migrate(&Goal::All(vec![]))
        .await
        .unwrap();
    assert_eq!(db.query_i64("SELECT c::bigint FROM counter").await, 1);
    assert_eq!(markers(&r, "app").await, ["[X] 0001_bump"]);
}

#[tokio::test]
async fn statements_that_commit_by_themselves_run_on_their_own_in_a_no_transaction_section() {
    let db = TestDb::new().await;
    db.execute(
        "CREATE TABLE b (n int);
         CREATE PROCEDURE fill() LANGUAGE plpgsql AS $$
         BEGIN INSERT INTO b VALUES (1); COMMIT; INSERT INTO b VALUES (2); COMMIT; END $$;",
    )
    .await;
    // A batched DO block is sent on its own; the procedure, whose COMMIT only the server
    // sees, is refused in the short transaction (2D000), rolled back, and sent on its own.
    let dir = migrations(&[(
        "0001_batches.sql",
        "-- migrate:up transaction:false\nDO $$ BEGIN INSERT INTO b VALUES (10); COMMIT; END $$;\nCALL fill();\nINSERT INTO b VALUES (20);\n",
    )]);
    let policy = Policy {
        allow_risky: true, // DO and CALL are opaque to lint; this test is about transactions
        ..Policy::default()
    };
    let (r, _) = runner(&db, dir.path(), policy);
    r.migrate(&Goal::All(vec![])).await.unwrap();
    let rows: Vec<i32> = db
        .client()
        .await
        .query("SELECT n FROM b ORDER BY n", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(rows, [1, 2, 10, 20], "each statement once");
    assert_eq!(markers(&r, "app").await, ["[X] 0001_batches"]);
}
