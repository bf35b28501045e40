//! The monitor's snapshot against a real server: a lock waiter with its blocker, and a
//! concurrent index build's phases.
#![allow(unused_crate_dependencies)] // a test crate uses some of the dev-dependencies

use std::time::{Duration, Instant};

use pgcalm_pg::catalog::{DatabaseMonitor, DatabaseSnapshot, backend_pid, snapshot};
use pgcalm_testkit::TestDb;
use tokio_postgres::Client;

/// Samples until `seen` holds, or panics after a generous deadline.
async fn sample_until(
    client: &Client,
    what: &str,
    seen: impl Fn(&DatabaseSnapshot) -> bool,
) -> DatabaseSnapshot {
    let monitor = DatabaseMonitor::prepare(client).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = monitor.snapshot(client).await.unwrap();
        if seen(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "never saw {what}; last: {s:#?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn reports_a_lock_waiter_with_its_mode_and_blocker() {
    let db = TestDb::new().await;
    db.execute("CREATE TABLE t (v int)").await;
    let (_holder, holder_pid) = db.session("BEGIN; SELECT * FROM t;").await;
    let (_idle, idle_pid) = db.session("SELECT 1").await;
    let (waiter, waiter_pid) = db.session("SET application_name = 'the-waiter'").await;
    let alter = tokio::spawn(async move { waiter.batch_execute("ALTER TABLE t ADD w int").await });

    let monitor = db.client().await;
    let own_pid = backend_pid(&monitor).await.unwrap();
    let s = sample_until(&monitor, "the ALTER waiting", |s| {
        s.lock_waits.iter().any(|w| w.pid == waiter_pid)
    })
    .await;
    let wait = s.lock_waits.iter().find(|w| w.pid == waiter_pid).unwrap();
    assert_eq!(wait.mode, "AccessExclusiveLock");
    assert_eq!(wait.locktype, "relation");
    assert_eq!(wait.relation.as_deref(), Some("t"));
    assert_eq!(wait.blocked_by, vec![holder_pid]);
    assert_eq!(wait.application_name, "the-waiter");
    assert!(wait.query.as_deref().unwrap().contains("ALTER TABLE t"));

    let holder = s.sessions.iter().find(|a| a.pid == holder_pid).unwrap();
    assert_eq!(holder.state.as_deref(), Some("idle in transaction"));
    assert!(holder.xact_secs.is_some_and(|s| s >= 0.0), "{holder:?}");
    let idle = s.sessions.iter().find(|a| a.pid == idle_pid).unwrap();
    assert_eq!(idle.state.as_deref(), Some("idle"));
    assert_eq!(idle.xact_secs, None, "idle: in no transaction");
    let waiting = s.sessions.iter().find(|a| a.pid == waiter_pid).unwrap();
    assert_eq!(waiting.wait_event_type.as_deref(), Some("Lock"));
    assert!(
        s.sessions.iter().all(|a| a.pid != own_pid),
        "the monitor hides itself"
    );
    assert!(s.query_ms > 0.0);

    // The snapshot is what the lab records: it reads back from JSON (floats to within
    // serde_json's last digit, so compare the rest).
    let json = serde_json::to_string(&s).unwrap();
    let back: DatabaseSnapshot = serde_json::from_str(&json).unwrap();
    let key = |s: &DatabaseSnapshot| {
        let waits: Vec<_> = s
            .lock_waits
            .iter()
            .map(|w| (w.pid, w.mode.clone(), w.blocked_by.clone()))
            .collect();
        let sessions: Vec<_> = s
            .sessions
            .iter()
            .map(|a| (a.pid, a.state.clone()))
            .collect();
        (s.taken_at_ms, waits, sessions)
    };
    assert_eq!(key(&back), key(&s));
    assert!(!alter.is_finished(), "{:?}", alter.await);
}

#[tokio::test]
async fn reports_the_phases_of_a_concurrent_index_build() {
    let db = TestDb::new().await;
    let c = db.client().await;
    c.batch_execute(
        "CREATE TABLE big (id bigint PRIMARY KEY, email text NOT NULL);
         INSERT INTO big SELECT i, 'user' || i || '@example.com' FROM generate_series(1, 300000) i;",
    )
    .await
    .unwrap();
    // An open writer makes the build wait in a known phase first; then the build itself
    // (wide keys, little sort memory) runs long enough to be sampled in a building phase.
    let (writer, writer_pid) = db
        .session("BEGIN; INSERT INTO big VALUES (0, 'zero@example.com');")
        .await;
    let (builder, builder_pid) = db.session("SET maintenance_work_mem = '1MB'").await;
    let build = tokio::spawn(async move {
        builder
            .batch_execute(
                "CREATE INDEX CONCURRENTLY big_wide_idx ON big ((repeat(md5(email), 4)))",
            )
            .await
    });

    let monitor = db.client().await;
    let build_in = |s: &DatabaseSnapshot| {
        s.index_builds
            .iter()
            .find(|b| b.pid == builder_pid)
            .cloned()
    };
    let s = sample_until(&monitor, "the build waiting for the writer", |s| {
        build_in(s).is_some_and(|b| b.current_locker_pid == writer_pid as i64)
    })
    .await;
    let b = build_in(&s).unwrap();
    assert_eq!(b.command, "CREATE INDEX CONCURRENTLY");
    assert_eq!(b.phase, "waiting for writers before build");
    assert_eq!(b.table.as_deref(), Some("big"));
    assert_eq!(b.index.as_deref(), Some("big_wide_idx"));

    writer.batch_execute("COMMIT").await.unwrap();
    let s = sample_until(&monitor, "the build building", |s| {
        build_in(s).is_some_and(|b| b.phase.starts_with("building index"))
    })
    .await;
    let b = build_in(&s).unwrap();
    assert!(b.counter().is_some(), "{b:?}");
    build.await.unwrap().unwrap();
    assert!(snapshot(&monitor).await.unwrap().index_builds.is_empty());
}

#[tokio::test]
async fn names_the_index_of_a_plain_build() {
    // PostgreSQL reports index_relid 0 for a plain (non-concurrent) CREATE INDEX: the
    // name comes from the statement. A slow expression keeps the build in view.
    let db = TestDb::new().await;
    db.execute(
        "CREATE TABLE t AS SELECT i FROM generate_series(1, 60) i;
         CREATE FUNCTION slow(int) RETURNS int IMMUTABLE LANGUAGE plpgsql
             AS 'BEGIN PERFORM pg_sleep(0.05); RETURN $1; END'",
    )
    .await;
    let (builder, builder_pid) = db.session("SELECT 1").await;
    let build = tokio::spawn(async move {
        builder
            .batch_execute("/* app */ create unique index if not exists \"T_Slow\" ON t (slow(i))")
            .await
    });
    let monitor = db.client().await;
    let s = sample_until(&monitor, "the plain build", |s| {
        s.index_builds.iter().any(|b| b.pid == builder_pid)
    })
    .await;
    let b = s
        .index_builds
        .iter()
        .find(|b| b.pid == builder_pid)
        .unwrap();
    assert_eq!(b.command, "CREATE INDEX");
    assert_eq!(b.table.as_deref(), Some("t"));
    assert_eq!(b.index.as_deref(), Some("\"T_Slow\""));
    build.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_parallel_query_blocks_as_one_session() {
    // pg_blocking_pids names the leader once per process of a parallel query (leader and
    // workers all hold the table's lock): the waiter is blocked by one session.
    let db = TestDb::new().await;
    db.execute(
        "CREATE TABLE pt AS SELECT i FROM generate_series(1, 3000) i;
         ANALYZE pt;
         CREATE FUNCTION slow_p(int) RETURNS bool PARALLEL SAFE LANGUAGE plpgsql
             AS 'BEGIN PERFORM pg_sleep(0.002); RETURN true; END'",
    )
    .await;
    let (reader, reader_pid) = db
        .session(
            "SET max_parallel_workers_per_gather = 2; SET parallel_setup_cost = 0;
             SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0",
        )
        .await;
    let scan = tokio::spawn(async move {
        reader
            .batch_execute("SELECT count(*) FROM pt WHERE slow_p(i)")
            .await
    });
    let monitor = db.client().await;
    let workers = || async {
        monitor
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE leader_pid = $1 AND pid <> $1",
                &[&reader_pid],
            )
            .await
            .unwrap()
            .get::<_, i64>(0)
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while workers().await == 0 {
        assert!(Instant::now() < deadline, "the scan never ran in parallel");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (waiter, waiter_pid) = db.session("SELECT 1").await;
    let alter = tokio::spawn(async move { waiter.batch_execute("ALTER TABLE pt ADD w int").await });
    let s = sample_until(
        &monitor,
        "the ALTER waiting behind the parallel scan",
        |s| s.lock_waits.iter().any(|w| w.pid == waiter_pid),
    )
    .await;
    assert!(
        workers().await > 0,
        "sampled while the workers held the lock"
    );
    let wait = s.lock_waits.iter().find(|w| w.pid == waiter_pid).unwrap();
    assert_eq!(wait.blocked_by, vec![reader_pid]);
    scan.await.unwrap().unwrap();
    alter.await.unwrap().unwrap();
}
