//! Lock waits that name their blocker: while a statement waits for its lock the runner
//! reports the sessions it waits for (pid, application, state, transaction age, query)
//! and the sessions queued behind it by kind; under `cancel_idle_blockers` it ends
//! blockers that sit idle in a transaction longer than allowed (and journals it), never
//! an active one, and without the policy it ends nothing.
#![allow(unused_crate_dependencies)] // a test crate uses some of the dev-dependencies

use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

use common::{idle_in_transaction, migrations, runner};
use pgcalm_migrate::{Event, Goal, Policy};
use pgcalm_pg::catalog::Queued;
use pgcalm_testkit::TestDb;

fn policy(cancel_idle_blockers: Option<Duration>) -> Policy {
    Policy {
        lock_timeout: Duration::from_millis(400),
        retry_initial: Duration::from_millis(50),
        retry_max: Duration::from_millis(100),
        max_retries: 200,
        cancel_idle_blockers,
        ..Policy::default()
    }
}

/// `t`, and a migration that needs ACCESS EXCLUSIVE on it.
async fn table_and_alter(db: &TestDb) -> tempfile::TempDir {
    db.execute("CREATE TABLE t (id int); INSERT INTO t VALUES (1)")
        .await;
    migrations(&[(
        "0001_col.sql",
        "-- migrate:up\nALTER TABLE t ADD COLUMN note text;\n",
    )])
}

fn cancellations(events: &[Event]) -> Vec<i32> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::BlockerCancelled { blocker, .. } => Some(blocker.session.pid),
            _ => None,
        })
        .collect()
}

fn named(events: &[Event], pid: i32) -> Option<pgcalm_pg::catalog::Blocker> {
    events.iter().find_map(|e| match e {
        Event::LockWait { blockers, .. } => blockers.iter().find(|b| b.session.pid == pid).cloned(),
        _ => None,
    })
}

#[tokio::test]
async fn an_idle_in_transaction_blocker_is_named_then_ended_under_the_policy() {
    let db = TestDb::new().await;
    let dir = table_and_alter(&db).await;
    let (blocker, pid) = idle_in_transaction(&db, "t").await;
    let (r, events) = runner(&db, dir.path(), policy(Some(Duration::from_secs(1))));
    r.migrate(&Goal::All(vec![])).await.unwrap();

    let events = events.lock().unwrap().clone();
    let b = named(&events, pid).expect("the blocker is named while the statement waits");
    assert_eq!(b.session.application_name, "forgotten-shell");
    assert_eq!(b.session.state.as_deref(), Some("idle in transaction"));
    assert!(b.session.xact_age_secs.is_some(), "{b:?}");
    assert!(
        b.session
            .query
            .as_deref()
            .is_some_and(|q| q.contains("count(*) FROM t")),
        "{b:?}"
    );
    assert!(!b.autovacuum);
    assert_eq!(
        cancellations(&events),
        [pid],
        "ended once, under the policy"
    );
    let Some(Event::BlockerCancelled {
        blocker: ended,
        terminated,
        idle_limit,
        ..
    }) = events
        .iter()
        .find(|e| matches!(e, Event::BlockerCancelled { .. }))
    else {
        unreachable!()
    };
    assert!(*terminated);
    assert_eq!(*idle_limit, Duration::from_secs(1));
    assert!(ended.state_secs.is_some_and(|s| s >= 1.0), "{ended:?}");
    // After it was named, before the migration finished.
    let order = |f: fn(&Event) -> bool| events.iter().position(f).unwrap();
    assert!(
        order(|e| matches!(e, Event::LockWait { .. }))
            < order(|e| matches!(e, Event::BlockerCancelled { .. }))
    );
    assert!(
        order(|e| matches!(e, Event::BlockerCancelled { .. }))
            < order(|e| matches!(e, Event::MigrationFinished { .. }))
    );
    // Its session is gone, and the journal says who was ended, where and why.
    assert!(blocker.simple_query("SELECT 1").await.is_err());
    let row = db
        .client()
        .await
        .query_one(
            "SELECT pid, application_name, state, migration, statement, line, terminated,
                    idle_secs >= 1
               FROM pgcalm.blocker_cancellations",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), pid);
    assert_eq!(row.get::<_, String>(1), "forgotten-shell");
    assert_eq!(row.get::<_, String>(2), "idle in transaction");
    assert_eq!(row.get::<_, String>(3), "app.0001_col");
    assert_eq!(row.get::<_, i32>(4), 1);
    assert_eq!(row.get::<_, i32>(5), 2);
    assert!(row.get::<_, bool>(6));
    assert!(row.get::<_, bool>(7));
}

#[tokio::test]
async fn an_active_blocker_is_never_ended() {
    let db = TestDb::new().await;
    let dir = table_and_alter(&db).await;
    // Holds ACCESS SHARE on t in a transaction that runs a query for 2.5s: active,
    // older than the policy's limit, and never idle.
    let busy = db.client().await;
    let busy_pid: i32 = busy
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    let work = tokio::spawn(async move {
        busy.batch_execute(
            "SET application_name = 'report'; BEGIN; SELECT count(*) FROM t; \
             SELECT pg_sleep(2.5); COMMIT",
        )
        .await
    });
    wait_for(
        &db,
        "the busy session holds its lock",
        |n| n == 1,
        &format!("SELECT count(*) FROM pg_locks WHERE pid = {busy_pid} AND relation = 't'::regclass AND granted"),
    )
    .await;
    let (r, events) = runner(&db, dir.path(), policy(Some(Duration::from_millis(300))));
    r.migrate(&Goal::All(vec![])).await.unwrap();
    work.await
        .unwrap()
        .expect("the active blocker's transaction completed");
    let events = events.lock().unwrap();
    let b = named(&events, busy_pid).expect("the active blocker is named");
    assert_eq!(b.session.state.as_deref(), Some("active"));
    assert!(cancellations(&events).is_empty(), "{events:?}");
}

#[tokio::test]
async fn without_the_policy_no_blocker_is_ended() {
    let db = TestDb::new().await;
    let dir = table_and_alter(&db).await;
    let (blocker, pid) = idle_in_transaction(&db, "t").await;
    let (r, events) = runner(
        &db,
        dir.path(),
        Policy {
            max_retries: 3,
            ..policy(None)
        },
    );
    let started = Instant::now();
    let err = r.migrate(&Goal::All(vec![])).await.unwrap_err().to_string();
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert!(
        err.contains("lock_timeout") || err.contains("lock timeout"),
        "{err}"
    );
    let events = events.lock().unwrap().clone();
    assert!(named(&events, pid).is_some());
    assert!(cancellations(&events).is_empty());
    // The blocker's session and transaction are intact.
    blocker.batch_execute("SELECT 1; COMMIT").await.unwrap();
}

#[tokio::test]
async fn sessions_queued_behind_the_migration_are_counted_by_kind() {
    let db = TestDb::new().await;
    let dir = table_and_alter(&db).await;
    let (blocker, _) = db.session("BEGIN; SELECT count(*) FROM t").await;
    let (r, events) = runner(
        &db,
        dir.path(),
        Policy {
            // Long enough for the queue to form behind the waiting ALTER.
            lock_timeout: Duration::from_secs(20),
            ..policy(None)
        },
    );
    let run = tokio::spawn(async move { r.migrate(&Goal::All(vec![])).await });
    wait_for(&db, "the ALTER waits for its lock", |n| n >= 1, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE 'pgcalm migrate app%' AND wait_event_type = 'Lock'").await;
    // Two readers and one writer queue behind the ALTER's ACCESS EXCLUSIVE request.
    let mut queued = Vec::new();
    for sql in [
        "SELECT count(*) FROM t",
        "SELECT count(*) FROM t",
        "INSERT INTO t VALUES (2)",
    ] {
        let c = db.client().await;
        queued.push(tokio::spawn(async move { c.batch_execute(sql).await }));
    }
    let seen = Arc::clone(&events);
    let deadline = Instant::now() + Duration::from_secs(15);
    let want = Queued {
        reads: 2,
        writes: 1,
        other: 0,
    };
    while !seen
        .lock()
        .unwrap()
        .iter()
        .any(|e| matches!(e, Event::LockQueue { queued, .. } if *queued == want))
    {
        assert!(
            Instant::now() < deadline,
            "never reported 2 reads and 1 write queued: {:?}",
            seen.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    blocker.batch_execute("COMMIT").await.unwrap();
    run.await.unwrap().unwrap();
    for q in queued {
        q.await.unwrap().unwrap();
    }
    // Once the migration is done, the queue is reported empty again.
    let events = events.lock().unwrap();
    let last = events
        .iter()
        .rev()
        .find_map(|e| match e {
            Event::LockQueue { queued, .. } => Some(*queued),
            _ => None,
        })
        .unwrap();
    assert_eq!(last, Queued::default());
}

/// Polls `sql` (one integer) until `ok` holds, at most 20s.
async fn wait_for(db: &TestDb, what: &str, ok: impl Fn(i64) -> bool, sql: &str) {
    let c = db.client().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let n: i64 = c.query_one(sql, &[]).await.unwrap().get(0);
        if ok(n) {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
