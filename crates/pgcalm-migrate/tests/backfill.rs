//! `-- pgcalm:backfill` on a real PostgreSQL (and a real streaming replica for the
//! throttle): the UPDATE runs in keyset batches over the primary key, each committed on
//! its own with its last key (a concurrent reader sees the key prefix grow), a cancelled
//! run resumes after its last committed batch (every row updated exactly once), the
//! runner waits while the replica's replay lag is above the limit and goes on once it
//! caught up, and what cannot be batched is refused before anything runs.
#![allow(unused_crate_dependencies)] // a test crate uses some of the dev-dependencies

use std::time::{Duration, Instant};

mod common;

use common::{migrations, runner};
use pgcalm_migrate::{Event, Goal, MigrateError, Policy};
use pgcalm_testkit::{TestCluster, TestDb};
use tokio_util::sync::CancellationToken;

fn policy() -> Policy {
    Policy {
        // The default cluster has no replica: nothing to wait for either way.
        ..Policy::default()
    }
}

/// `t(id bigint PRIMARY KEY, n int)` with `rows` rows, every n = 0.
async fn counters(db: &TestDb, rows: i64) {
    db.execute(&format!(
        "CREATE TABLE t (id bigint PRIMARY KEY, n int NOT NULL DEFAULT 0, tag text);
         INSERT INTO t (id) SELECT g FROM generate_series(1, {rows}) g;
         ANALYZE t;"
    ))
    .await;
}

/// (rows with n = 1, rows with n > 1, highest id with n = 1).
async fn updated(db: &TestDb) -> (i64, i64, Option<i64>) {
    let c = db.client().await;
    let r = c
        .query_one(
            "SELECT count(*) FILTER (WHERE n = 1), count(*) FILTER (WHERE n > 1),
                    max(id) FILTER (WHERE n = 1)
               FROM t",
            &[],
        )
        .await
        .unwrap();
    (r.get(0), r.get(1), r.get(2))
}

fn count<F: Fn(&Event) -> bool>(events: &common::Events, f: F) -> usize {
    events.lock().unwrap().iter().filter(|e| f(e)).count()
}

#[tokio::test]
async fn batches_commit_one_by_one_in_key_order_and_update_each_row_once() {
    let db = TestDb::new().await;
    counters(&db, 2000).await;
    let dir = migrations(&[(
        "0001_backfill.sql",
        "-- migrate:up transaction:false\n\
         -- pgcalm:backfill batch_size=200 delay=150ms\n\
         UPDATE t SET n = n + 1;\n",
    )]);
    let (r, events) = runner(&db, dir.path(), policy());
    let run = tokio::spawn(async move { r.migrate(&Goal::All(vec![])).await });
    // A reader on its own connection sees committed batches while the run goes on: each
    // time a prefix of the keys, a whole number of batches.
    let mut seen = Vec::new();
    while !run.is_finished() {
        let (done, twice, max_id) = updated(&db).await;
        assert_eq!(twice, 0);
        assert_eq!(max_id.unwrap_or(0), done, "committed rows are a key prefix");
        assert_eq!(done % 200, 0, "whole batches only: {done}");
        seen.push(done);
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    run.await.unwrap().unwrap();
    let partial: Vec<i64> = seen
        .iter()
        .copied()
        .filter(|d| *d > 0 && *d < 2000)
        .collect();
    assert!(
        partial.len() >= 3,
        "the reader saw batches commit one by one: {seen:?}"
    );
    assert_eq!(updated(&db).await, (2000, 0, Some(2000)));
    // Ten batches of 200.
    let progress: Vec<(i64, i64)> = events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            Event::BackfillProgress {
                rows_done,
                batch_rows,
                ..
            } => Some((*rows_done, *batch_rows)),
            _ => None,
        })
        .collect();
    assert_eq!(progress.len(), 10, "{progress:?}");
    assert_eq!(progress[0], (200, 200));
    assert_eq!(progress[9], (2000, 200));
    assert!(events.lock().unwrap().iter().any(|e| matches!(
        e,
        Event::BackfillFinished {
            rows_done: 2000,
            rows_updated: 2000,
            batches: 10,
            ..
        }
    )));
    // Journaled as done; the progress row is gone with it.
    let c = db.client().await;
    let left: i64 = c
        .query_one("SELECT count(*) FROM pgcalm.backfill_progress", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
    let state: String = c
        .query_one("SELECT state FROM pgcalm.migrations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(state, "applied");
}

#[tokio::test]
async fn a_composite_key_and_a_where_clause_with_auto_batches() {
    let db = TestDb::new().await;
    db.execute(
        "CREATE TABLE m (a int, b text, n int NOT NULL DEFAULT 0, PRIMARY KEY (a, b));
         INSERT INTO m (a, b) SELECT g / 10, 'k' || (g % 10) FROM generate_series(0, 4999) g;",
    )
    .await;
    let dir = migrations(&[(
        "0001_backfill.sql",
        "-- migrate:up transaction:false\n\
         CREATE INDEX CONCURRENTLY m_n ON m (n);\n\
         -- pgcalm:backfill batch_size=auto target=50ms\n\
         UPDATE m AS x SET n = x.n + 1 WHERE x.a % 2 = 0;\n",
    )]);
    let (r, events) = runner(&db, dir.path(), policy());
    r.migrate(&Goal::All(vec![])).await.unwrap();
    let c = db.client().await;
    let row = c
        .query_one(
            "SELECT count(*) FILTER (WHERE n = 1 AND a % 2 = 0),
                    count(*) FILTER (WHERE n <> 0 AND a % 2 = 1),
                    count(*) FILTER (WHERE n > 1)
               FROM m",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (
            row.get::<_, i64>(0),
            row.get::<_, i64>(1),
            row.get::<_, i64>(2)
        ),
        (2500, 0, 0)
    );
    assert!(events.lock().unwrap().iter().any(|e| matches!(e,
        Event::BackfillStarted { key, .. } if key == &["a".to_string(), "b".to_string()])));
    assert!(events.lock().unwrap().iter().any(|e| matches!(
        e,
        Event::BackfillFinished {
            rows_done: 5000,
            rows_updated: 2500,
            ..
        }
    )));
}

#[tokio::test]
async fn a_cancelled_backfill_resumes_after_its_last_committed_batch() {
    let db = TestDb::new().await;
    counters(&db, 3000).await;
    let dir = migrations(&[(
        "0001_backfill.sql",
        "-- migrate:up transaction:false\n\
         -- pgcalm:backfill batch_size=100 delay=30ms\n\
         UPDATE t SET n = n + 1;\n",
    )]);
    let cancel = CancellationToken::new();
    let (r, _) = runner(&db, dir.path(), policy());
    let r = r.with_cancel(cancel.clone());
    let run = tokio::spawn(async move { r.migrate(&Goal::All(vec![])).await });
    let deadline = Instant::now() + Duration::from_secs(30);
    while updated(&db).await.0 < 500 {
        assert!(Instant::now() < deadline, "the backfill never got going");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cancel.cancel();
    let err = run.await.unwrap().unwrap_err();
    assert!(matches!(err, MigrateError::Cancelled(_)), "{err}");
    let (done, twice, _) = updated(&db).await;
    assert!((500..3000).contains(&done) && twice == 0, "{done} {twice}");
    let (r, events) = runner(&db, dir.path(), policy());
    r.migrate(&Goal::All(vec![])).await.unwrap();
    assert_eq!(updated(&db).await, (3000, 0, Some(3000)));
    assert!(events.lock().unwrap().iter().any(|e| matches!(e,
        Event::BackfillStarted { resumed_rows, .. } if *resumed_rows == done)));
}

#[tokio::test]
async fn what_cannot_be_batched_is_refused_before_anything_runs() {
    let db = TestDb::new().await;
    db.execute(
        "CREATE TABLE nokey (id int, n int NOT NULL DEFAULT 0);
         INSERT INTO nokey (id) SELECT g FROM generate_series(1, 10) g;
         CREATE TABLE t (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
         INSERT INTO t (id) SELECT g FROM generate_series(1, 10) g;",
    )
    .await;
    // No primary key: the error names the file, the UPDATE's line and the fix.
    let dir = migrations(&[(
        "0001_nokey.sql",
        "-- migrate:up transaction:false\n-- pgcalm:backfill\nUPDATE nokey SET n = 1;\n",
    )]);
    let (r, _) = runner(&db, dir.path(), policy());
    let err = r.migrate(&Goal::All(vec![])).await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("app/0001_nokey.sql:3: table \"nokey\" has no primary key")
            && msg.contains("fix: add a primary key to \"nokey\"")
            && msg.contains("directive on line 2"),
        "{msg}"
    );
    // Inside the section's transaction: refused with the fix, before anything runs.
    let dir = migrations(&[(
        "0001_tx.sql",
        "-- migrate:up\nUPDATE t SET n = 5 WHERE id = 1;\n-- pgcalm:backfill\nUPDATE t SET n = 1;\n",
    )]);
    let (r, _) = runner(&db, dir.path(), policy());
    let msg = r.migrate(&Goal::All(vec![])).await.unwrap_err().to_string();
    assert!(
        msg.contains("0001_tx.sql:3: a backfill commits batch by batch, so it cannot run inside")
            && msg.contains("`-- migrate:up transaction:false` on line 1"),
        "{msg}"
    );
    // Not a plain single-table UPDATE.
    let dir = migrations(&[(
        "0001_join.sql",
        "-- migrate:up transaction:false\n-- pgcalm:backfill\nUPDATE t SET n = o.n FROM nokey o WHERE o.id = t.id;\n",
    )]);
    let (r, _) = runner(&db, dir.path(), policy());
    let msg = r.migrate(&Goal::All(vec![])).await.unwrap_err().to_string();
    assert!(
        msg.contains("0001_join.sql:3: a backfill runs a plain single-table")
            && msg.contains("has a FROM clause"),
        "{msg}"
    );
    // A bad option names its line.
    let dir = migrations(&[(
        "0001_opt.sql",
        "-- migrate:up transaction:false\n-- pgcalm:backfill rows=10\nUPDATE t SET n = 1;\n",
    )]);
    let (r, _) = runner(&db, dir.path(), policy());
    let msg = r.migrate(&Goal::All(vec![])).await.unwrap_err().to_string();
    assert!(
        msg.contains("0001_opt.sql:2: `-- pgcalm:backfill`: unknown option `rows`"),
        "{msg}"
    );
    let c = db.client().await;
    let changed: i64 = c
        .query_one(
            "SELECT (SELECT count(*) FROM t WHERE n <> 0) + (SELECT count(*) FROM nokey WHERE n <> 0)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(changed, 0, "nothing ran");
}

#[tokio::test]
async fn the_backfill_waits_while_the_replica_lags_and_goes_on_once_it_caught_up() {
    let primary = TestCluster::with_replica();
    let db = TestDb::on(primary).await;
    counters(&db, 1000).await;
    // The replica has the database and the table (it replays), then stops replaying.
    let deadline = Instant::now() + Duration::from_secs(30);
    let replica = loop {
        match primary.replica_target(db.name()).connect().await {
            Ok(c) => break c,
            Err(e) => assert!(Instant::now() < deadline, "{e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    while replica
        .query_one("SELECT to_regclass('t') IS NOT NULL", &[])
        .await
        .map(|r| !r.get::<_, bool>(0))
        .unwrap_or(true)
    {
        assert!(Instant::now() < deadline, "the replica never got table t");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    replica
        .batch_execute("SELECT pg_wal_replay_pause()")
        .await
        .unwrap();
    // WAL it cannot replay: its replay lag, as the primary reports it, grows past 1s.
    let c = db.client().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        c.batch_execute("UPDATE t SET tag = 'x' WHERE id = 1")
            .await
            .unwrap();
        let lag = pgcalm_pg::catalog::max_replica_lag(&c).await.unwrap();
        if lag
            .as_ref()
            .is_some_and(|(_, l)| l.seconds.unwrap_or(0.0) > 1.5)
        {
            break;
        }
        assert!(Instant::now() < deadline, "no replica lag: {lag:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let dir = migrations(&[(
        "0001_backfill.sql",
        "-- migrate:up transaction:false\n-- pgcalm:backfill batch_size=100\nUPDATE t SET n = n + 1;\n",
    )]);
    let (r, events) = runner(
        &db,
        dir.path(),
        Policy {
            max_replica_lag: Some(Duration::from_secs(1)),
            ..Policy::default()
        },
    );
    let run = tokio::spawn(async move { r.migrate(&Goal::All(vec![])).await });
    let deadline = Instant::now() + Duration::from_secs(30);
    while count(&events, |e| matches!(e, Event::ReplicaLagWait { .. })) == 0 {
        assert!(Instant::now() < deadline, "the runner never waited");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // It keeps waiting: no batch while the replica is paused.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!run.is_finished());
    assert_eq!(
        updated(&db).await.0,
        0,
        "no batch ran while the replica lagged"
    );
    assert_eq!(
        count(&events, |e| matches!(e, Event::BackfillProgress { .. })),
        0
    );
    replica
        .batch_execute("SELECT pg_wal_replay_resume()")
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the backfill goes on once the replica caught up")
        .unwrap()
        .unwrap();
    assert_eq!(updated(&db).await, (1000, 0, Some(1000)));
    let evs = events.lock().unwrap();
    let waited = evs
        .iter()
        .find_map(|e| match e {
            Event::ReplicaLagCleared { waited, .. } => Some(*waited),
            _ => None,
        })
        .expect("the wait ended with the replica caught up");
    assert!(waited >= Duration::from_secs(2), "{waited:?}");
    let wait_at = evs
        .iter()
        .position(|e| matches!(e, Event::ReplicaLagCleared { .. }))
        .unwrap();
    let first_batch = evs
        .iter()
        .position(|e| matches!(e, Event::BackfillProgress { .. }))
        .unwrap();
    assert!(wait_at < first_batch);
}
