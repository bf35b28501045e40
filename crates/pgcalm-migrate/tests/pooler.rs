//! The runner through a real PgBouncer in transaction pooling mode (testkit's
//! `TestPooler`): two runners never interleave, nothing of a run's session state (timeouts,
//! advisory locks) is left on a server connection another client gets next, and what
//! cannot run through the pooler (statements outside a transaction, which need
//! session-level lock_timeout) is refused before anything runs unless a direct URL is
//! given.

use std::path::Path;
use std::time::Duration;

use pgcalm_migrate::{Goal, Policy, Runner};
use pgcalm_testkit::{TestCluster, TestDb, TestPooler};
use tokio_postgres::{Client, SimpleQueryMessage};

/// A migrations directory with one app, `app`, holding these files.
fn migrations(files: &[(String, String)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("app")).unwrap();
    for (name, sql) in files {
        std::fs::write(dir.path().join("app").join(name), sql).unwrap();
    }
    dir
}

fn files(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(n, s)| (n.to_string(), s.to_string()))
        .collect()
}

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
    client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(r.get(0).unwrap_or_default().to_string()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{sql}: no row"))
}

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
    migrations(&list)
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
    let dir = migrations(&files(&[
        (
            "0001_t.sql",
            "-- migrate:up\nCREATE TABLE t (id int);\nALTER TABLE t ADD COLUMN v int;\n",
        ),
        (
            "0002_more.sql",
            "-- migrate:up transaction:false\nALTER TABLE t ADD COLUMN w int;\n\
             COMMENT ON TABLE t IS 'two statements, each in a short transaction';\n",
        ),
    ]));
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
    migrations(&files(&[
        ("0001_t.sql", "-- migrate:up\nCREATE TABLE t (id int);\n"),
        (
            "0002_idx.sql",
            "-- migrate:up transaction:false\nCREATE INDEX CONCURRENTLY t_id ON t (id);\n\
             -- migrate:down transaction:false\nDROP INDEX CONCURRENTLY IF EXISTS t_id;\n",
        ),
    ]))
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
