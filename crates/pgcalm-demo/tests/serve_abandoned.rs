//! What the demo server does with a request whose client gave up while its query waits
//! on a lock (a write behind a migration's SHARE lock), on a pool of one connection:
//! by default the query is cancelled and the connection freed, so a read gets through;
//! with `cancel_abandoned_queries` off (the seed's Django app on sync workers) the
//! write keeps the connection until its query finishes, so the read waits too.
#![allow(unused_crate_dependencies)] // a test crate uses some of the dev-dependencies

mod common;

use std::time::Duration;

use common::{RunningServer, demo_db, eventually, seed_rows, serve_sessions_waiting_for_lock};
use pgcalm_demo::ServeOptions;
use pgcalm_testkit::TestDb;

/// A client that gives up after `timeout`.
fn client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder().timeout(timeout).build().unwrap()
}

/// Starts a one-connection server and, with SHARE on large_email held by the caller, sends
/// a write that waits on it and gives up after 300 ms, then a read with a 1.5 s
/// timeout, the lock still held. Returns the read's status (or its error) and the
/// server.
async fn write_abandoned_then_read(
    db: &TestDb,
    cancel_abandoned_queries: bool,
) -> (Result<u16, reqwest::Error>, RunningServer) {
    let opts = ServeOptions {
        pool_size: 1,
        request_timeout: Duration::from_secs(20),
        cancel_abandoned_queries,
        ..ServeOptions::default()
    };
    let server = RunningServer::start(db, opts).await;
    // Open the pool's one connection before the lock, so the write only waits on it.
    let warm = client(Duration::from_secs(10))
        .get(server.url("/list_large/"))
        .send()
        .await
        .unwrap();
    assert_eq!(warm.status().as_u16(), 200);

    let write = client(Duration::from_millis(300))
        .post(server.url("/add_large/"))
        .send()
        .await;
    assert!(
        write.as_ref().is_err_and(|e| e.is_timeout()),
        "the write must wait on the lock: {write:?}"
    );
    let read = client(Duration::from_millis(1500))
        .get(server.url("/list_large/"))
        .send()
        .await
        .map(|r| r.status().as_u16());
    (read, server)
}

async fn lock_table(db: &TestDb) -> tokio_postgres::Client {
    let locker = db.client().await;
    locker
        .batch_execute("BEGIN; LOCK TABLE large_email IN SHARE MODE")
        .await
        .unwrap();
    locker
}

#[tokio::test]
async fn by_default_an_abandoned_write_frees_its_connection_for_a_read() {
    let db = demo_db().await;
    seed_rows(&db, 10).await;
    let locker = lock_table(&db).await;
    let (read, _server) = write_abandoned_then_read(&db, true).await;
    assert_eq!(
        read.as_ref().ok(),
        Some(&200),
        "the read gets the freed connection: {read:?}"
    );
    eventually("the cancelled write to leave the lock queue", || async {
        serve_sessions_waiting_for_lock(&db).await == 0
    })
    .await;
    locker.batch_execute("COMMIT").await.unwrap();
    assert_eq!(
        db.query_i64("SELECT count(*) FROM large_email").await,
        10,
        "the cancelled write inserted nothing"
    );
}

#[tokio::test]
async fn with_abandoned_queries_kept_a_blocked_write_holds_the_only_connection() {
    let db = demo_db().await;
    seed_rows(&db, 10).await;
    let locker = lock_table(&db).await;
    let (read, server) = write_abandoned_then_read(&db, false).await;
    assert!(
        read.as_ref().is_err_and(|e| e.is_timeout()),
        "the read waits for the connection the blocked write keeps: {read:?}"
    );
    assert_eq!(
        serve_sessions_waiting_for_lock(&db).await,
        1,
        "the abandoned write still waits on the lock"
    );
    locker.batch_execute("COMMIT").await.unwrap();
    // The write runs to its end once the lock goes, and the connection is free again.
    eventually("the abandoned write to commit", || async {
        db.query_i64("SELECT count(*) FROM large_email").await == 11
    })
    .await;
    let read = client(Duration::from_secs(10))
        .get(server.url("/list_large/"))
        .send()
        .await
        .unwrap();
    assert_eq!(read.status().as_u16(), 200);
}
