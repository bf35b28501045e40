//! The runner through a real PgBouncer in transaction pooling mode (testkit's
//! `TestPooler`): two runners never interleave, nothing of a run's session state (timeouts,
//! advisory locks) is left on a server connection another client gets next, and what
//! cannot run through the pooler (statements outside a transaction, which need
//! session-level lock_timeout) is refused before anything runs unless a direct URL is
//! given; then the whole run goes there. A runner's lease keeps every other runner out
//! until it lapses.
#![allow(unused_crate_dependencies)] // a test crate uses some of the dev-dependencies

use std::path::Path;
use std::time::Duration;

mod common;

use common::{idle_in_transaction, migrations, recording};
use pgcalm_migrate::{Event, Goal, MigrateError, Policy, Runner};
use pgcalm_pg::catalog::Pooling;
use pgcalm_testkit::{TestCluster, TestDb, TestPooler};
use tokio_postgres::{Client, SimpleQueryMessage};

fn policy() -> Policy {
    Policy {
        lock_timeout: Duration::from_millis(500),
        retry_initial: Duration::from_millis(50),
        retry_max: Duration::from_millis(200),
        ..Policy::default()
    }
}

fn through(pooler: &TestPooler, db: &TestDb, dir: &Path) -> Runner {
    Runner::new(pooler.target(db.name()), dir).with_policy(policy())
}

/// The first column of the first row of a simple query (the pooler speaks it safely).
async fn one(client: &Client, sql: &str) -> String {
    rows(client, sql)
        .await
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("{sql}: no row"))
}

/// The first column of each row of a simple query.
async fn rows(client: &Client, sql: &str) -> Vec<String> {
    client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(r.get(0).unwrap_or_default().to_string()),
            _ => None,
        })
        .collect()
}

/// Three transactional migrations that each log their start and end around a sleep.
fn logging_migrations() -> tempfile::TempDir {
    let list: Vec<(String, String)> = (1..=3)
        .map(|i| {
            (
                format!("000{i}_step{i}.sql"),
                format!(
                    "-- migrate:up\n\
                     INSERT INTO ran (what) VALUES ('{i} start');\n\
                     SELECT pg_sleep(0.3);\n\
                     INSERT INTO ran (what) VALUES ('{i} end');\n\
                     -- migrate:down\n\
                     DELETE FROM ran WHERE what LIKE '{i} %';\n"
                ),
            )
        })
        .collect();
    let refs: Vec<(&str, &str)> = list.iter().map(|(n, s)| (n.as_str(), s.as_str())).collect();
    migrations(&refs)
}

/// Two runners at once through a pooler with `servers` server connections: each
/// migration runs once, one after the other.
async fn two_runners_at_once(servers: u32) {
    let db = TestDb::new().await;
    db.execute(
        "CREATE TABLE ran (n bigint GENERATED ALWAYS AS IDENTITY, what text NOT NULL, \
         at timestamptz NOT NULL DEFAULT clock_timestamp())",
    )
    .await;
    let dir = logging_migrations();
    let pooler = TestPooler::start(TestCluster::get(), servers);
    let (a, b) = (
        through(&pooler, &db, dir.path()),
        through(&pooler, &db, dir.path()),
    );
    let all = Goal::All(vec![]);
    let (ra, rb) = tokio::join!(a.migrate(&all), b.migrate(&all));
    ra.unwrap();
    rb.unwrap();

    let direct = db.client().await;
    // Each migration ran once, and one after the other.
    assert_eq!(
        rows(&direct, "SELECT what FROM ran ORDER BY at, n").await,
        ["1 start", "1 end", "2 start", "2 end", "3 start", "3 end"]
    );
    assert_eq!(
        one(
            &direct,
            "SELECT count(*) FROM pgcalm.migrations WHERE state = 'applied'"
        )
        .await,
        "3"
    );
}

#[tokio::test]
async fn two_runners_through_a_transaction_pooler_never_interleave() {
    two_runners_at_once(3).await;
}

/// One server connection for both runners and their monitors: nothing may wait for a
/// server connection while holding the only one.
#[tokio::test]
async fn two_runners_through_a_pool_of_one_never_interleave_nor_deadlock() {
    two_runners_at_once(1).await;
}

#[tokio::test]
async fn a_run_through_the_pooler_leaves_no_session_state_on_its_server_connections() {
    let db = TestDb::new().await;
    let dir = migrations(&[
        (
            "0001_t.sql",
            "-- migrate:up\nCREATE TABLE t (id int);\nALTER TABLE t ADD COLUMN v int;\n",
        ),
        (
            "0002_more.sql",
            "-- migrate:up transaction:false\nALTER TABLE t ADD COLUMN w int;\n\
             COMMENT ON TABLE t IS 'two statements, each in a short transaction';\n",
        ),
    ]);
    // One server connection: the next client through the pooler gets the runner's.
    let pooler = TestPooler::start(TestCluster::get(), 1);
    through(&pooler, &db, dir.path())
        .migrate(&Goal::All(vec![]))
        .await
        .unwrap();
    let direct = db.client().await;
    assert_eq!(
        one(
            &direct,
            "SELECT count(*) FROM pgcalm.migrations WHERE state = 'applied'"
        )
        .await,
        "2"
    );

    let next = pooler.target(db.name()).connect().await.unwrap();
    for setting in [
        "lock_timeout",
        "statement_timeout",
        "client_connection_check_interval",
    ] {
        assert_eq!(
            one(&next, &format!("SHOW {setting}")).await,
            "0",
            "{setting} of the runner leaked to the next client of the pooler"
        );
    }
    // No advisory lock is held by the server connection, nor by any session on this
    // database (other tests run runners on theirs).
    assert_eq!(
        one(
            &next,
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
        )
        .await,
        "0"
    );
    assert_eq!(
        one(
            &direct,
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        .await,
        "0"
    );
}

/// A table, then a CONCURRENTLY index build (which runs outside a transaction).
fn table_then_concurrent_index() -> tempfile::TempDir {
    migrations(&[
        ("0001_t.sql", "-- migrate:up\nCREATE TABLE t (id int);\n"),
        (
            "0002_idx.sql",
            "-- migrate:up transaction:false\nCREATE INDEX CONCURRENTLY t_id ON t (id);\n\
             -- migrate:down transaction:false\nDROP INDEX CONCURRENTLY IF EXISTS t_id;\n",
        ),
    ])
}

#[tokio::test]
async fn a_concurrent_build_through_the_pooler_is_refused_before_anything_runs() {
    let db = TestDb::new().await;
    let dir = table_then_concurrent_index();
    let pooler = TestPooler::start(TestCluster::get(), 2);
    let result = through(&pooler, &db, dir.path())
        .migrate(&Goal::All(vec![]))
        .await;
    let err = result
        .expect_err("a CONCURRENTLY build through a transaction pooler must be refused")
        .to_string();
    for part in [
        "transaction pooler",
        "0002_idx.sql:2",
        "CREATE INDEX CONCURRENTLY",
        "--direct-url",
        "PGCALM_MIGRATE_URL",
    ] {
        assert!(err.contains(part), "missing {part:?} in:\n{err}");
    }
    // Nothing ran: not 0001 either, and no journal.
    let direct = db.client().await;
    assert_eq!(
        one(
            &direct,
            "SELECT to_regclass('t') IS NULL AND to_regclass('pgcalm.migrations') IS NULL"
        )
        .await,
        "t"
    );
}

#[tokio::test]
async fn with_a_direct_url_the_whole_run_goes_to_the_server() {
    let db = TestDb::new().await;
    let dir = table_then_concurrent_index();
    let pooler = TestPooler::start(TestCluster::get(), 1);
    let (r, events) =
        recording(through(&pooler, &db, dir.path()).with_direct_target(Some(db.target().clone())));
    r.migrate(&Goal::All(vec![])).await.unwrap();
    let direct = db.client().await;
    assert_eq!(
        one(
            &direct,
            "SELECT indisvalid FROM pg_index WHERE indexrelid = 't_id'::regclass"
        )
        .await,
        "t"
    );
    assert!(
        !events
            .lock()
            .unwrap()
            .iter()
            .any(|e| matches!(e, Event::ThroughTransactionPooler { .. })),
        "the run did not go through the pooler"
    );
    // Nothing of it is on the pooler's server connection.
    let next = pooler.target(db.name()).connect().await.unwrap();
    assert_eq!(one(&next, "SHOW lock_timeout").await, "0");
    // And through the pooler, showmigrations reads what ran.
    let status = through(&pooler, &db, dir.path())
        .status(None)
        .await
        .unwrap();
    let markers: Vec<String> = status
        .iter()
        .map(|s| format!("{} {}", s.marker(), s.name))
        .collect();
    assert_eq!(markers, ["[X] 0001_t", "[X] 0002_idx"]);
}

#[tokio::test]
async fn a_direct_url_that_is_a_transaction_pooler_too_is_refused() {
    let db = TestDb::new().await;
    let dir = table_then_concurrent_index();
    // A pool of one: the pooler check proves transaction pooling (two connections
    // share the one server session).
    let pooler = TestPooler::start(TestCluster::get(), 1);
    let err = through(&pooler, &db, dir.path())
        .with_direct_target(Some(pooler.target(db.name())))
        .migrate(&Goal::All(vec![]))
        .await
        .unwrap_err();
    assert!(matches!(err, MigrateError::DirectUrlPooled { .. }), "{err}");
    assert!(err.to_string().contains("--direct-url"), "{err}");
}

#[tokio::test]
async fn a_live_lease_keeps_every_runner_out_and_a_lapsed_one_is_taken_over() {
    let db = TestDb::new().await;
    let dir = migrations(&[("0001_t.sql", "-- migrate:up\nCREATE TABLE t (id int);\n")]);
    let more = migrations(&[
        ("0001_t.sql", "-- migrate:up\nCREATE TABLE t (id int);\n"),
        ("0002_u.sql", "-- migrate:up\nCREATE TABLE u (id int);\n"),
    ]);
    let pooler = TestPooler::start(TestCluster::get(), 2);
    through(&pooler, &db, dir.path())
        .migrate(&Goal::All(vec![]))
        .await
        .unwrap();
    let direct = db.client().await;
    // The run gave its lease back.
    assert_eq!(
        one(&direct, "SELECT count(*) FROM pgcalm.runner_lease").await,
        "0"
    );
    // Another runner through some pooler holds a live lease.
    direct
        .batch_execute(
            "INSERT INTO pgcalm.runner_lease (token, holder, expires_at)
             VALUES ('0ther', 'pgcalm migrate (process 4242)', now() + interval '1 minute')",
        )
        .await
        .unwrap();
    let impatient = Policy {
        wait_for_lock: Some(Duration::from_millis(300)),
        ..policy()
    };
    for (what, runner) in [
        ("through the pooler", through(&pooler, &db, more.path())),
        ("directly", Runner::new(db.target().clone(), more.path())),
    ] {
        let err = runner
            .with_policy(impatient.clone())
            .migrate(&Goal::All(vec![]))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, MigrateError::LockBusy { lease: Some(l), .. } if l.holder == "pgcalm migrate (process 4242)"),
            "{what}: {err}"
        );
        assert!(err.to_string().contains("process 4242"), "{what}: {err}");
    }
    assert_eq!(one(&direct, "SELECT to_regclass('u') IS NULL").await, "t");
    // Its runner died: once the lease lapses, the next runner takes it over.
    direct
        .batch_execute("UPDATE pgcalm.runner_lease SET expires_at = now() - interval '1 second'")
        .await
        .unwrap();
    through(&pooler, &db, more.path())
        .with_policy(impatient)
        .migrate(&Goal::All(vec![]))
        .await
        .unwrap();
    assert_eq!(
        one(&direct, "SELECT to_regclass('u') IS NOT NULL").await,
        "t"
    );
    assert_eq!(
        one(&direct, "SELECT count(*) FROM pgcalm.runner_lease").await,
        "0"
    );
}

#[tokio::test]
async fn the_pooler_check_tells_a_direct_connection_from_pgbouncer() {
    let db = TestDb::new().await;
    let check = |target: pgcalm_pg::Target| async move {
        let name = "pgcalm pooler check probe";
        let first = target.connect().await.unwrap();
        let second = target.with_application_name(name).connect().await.unwrap();
        pgcalm_pg::catalog::session_pooling(&first, &second, name)
            .await
            .unwrap()
    };
    assert_eq!(check(db.target().clone()).await, Pooling::Session);
    for servers in [1, 4] {
        let pooler = TestPooler::start(TestCluster::get(), servers);
        let found = check(pooler.target(db.name())).await;
        assert!(found.may_lose_session(), "{servers} servers: {found:?}");
        if servers == 1 {
            assert!(
                matches!(found, Pooling::Transaction { .. }),
                "one server session for two connections proves it: {found:?}"
            );
        }
    }
}

#[tokio::test]
async fn through_the_pooler_a_blocker_is_named_and_an_idle_one_ended() {
    let db = TestDb::new().await;
    db.execute("CREATE TABLE t (id int)").await;
    let dir = migrations(&[(
        "0001_col.sql",
        "-- migrate:up\nALTER TABLE t ADD COLUMN note text;\n",
    )]);
    let (_idle, pid) = idle_in_transaction(&db, "t").await;
    let pooler = TestPooler::start(TestCluster::get(), 3);
    let (r, events) = recording(through(&pooler, &db, dir.path()).with_policy(Policy {
        lock_timeout: Duration::from_millis(400),
        max_retries: 200,
        cancel_idle_blockers: Some(Duration::from_secs(1)),
        ..policy()
    }));
    r.migrate(&Goal::All(vec![])).await.unwrap();
    let events = events.lock().unwrap().clone();
    assert!(matches!(
        events.first(),
        Some(Event::ThroughTransactionPooler { .. })
    ));
    assert!(events.iter().any(|e| matches!(e,
        Event::LockWait { blockers, .. } if blockers.iter().any(|b| b.session.pid == pid))));
    assert!(events.iter().any(|e| matches!(e,
        Event::BlockerCancelled { blocker, terminated: true, .. } if blocker.session.pid == pid)));
    let direct = db.client().await;
    assert_eq!(
        one(
            &direct,
            "SELECT count(*) FROM pgcalm.blocker_cancellations WHERE terminated"
        )
        .await,
        "1"
    );
}
