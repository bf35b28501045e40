//! The seed and the demo server over TLS (sslmode=verify-full against the testkit's TLS
//! cluster): the seed's loading connections, the server's pool and the cancel request of
//! an abandoned query all go through the target's connector.
#![allow(unused_crate_dependencies)] // a test crate uses some of the dev-dependencies

mod common;

use std::time::Duration;

use common::{
    RunningServer, eventually, get_json, initial_up, seed_rows, serve_sessions_waiting_for_lock,
};
use pgcalm_demo::ServeOptions;
use pgcalm_testkit::tls::TlsCluster;

#[tokio::test]
async fn seed_and_serve_run_over_verify_full_and_cancel_over_it() {
    let tls = TlsCluster::get();
    let db = tls.database(&tls.verify_full()).await;
    db.execute(initial_up()).await;
    seed_rows(&db, 50).await;
    assert_eq!(db.query_i64("SELECT count(*) FROM large_email").await, 50);

    let opts = ServeOptions {
        request_timeout: Duration::from_millis(500),
        pool_size: 1,
        ..ServeOptions::default()
    };
    let server = RunningServer::start(&db, opts).await;
    let (status, _, body) = get_json(&server.url("/list_small/")).await;
    assert_eq!(
        (status, body["emails"].as_array().map(Vec::len)),
        (200, Some(10))
    );
    let plain_serve_sessions = db
        .query_i64(
            "SELECT count(*) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
             WHERE a.application_name = 'pgcalm serve' AND NOT s.ssl",
        )
        .await;
    assert_eq!(plain_serve_sessions, 0);

    // A query stuck behind a lock past the request timeout is cancelled on the server.
    let mut locker = db.client().await;
    let tx = locker.transaction().await.unwrap();
    tx.batch_execute("LOCK TABLE large_email IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let (status, _, _) = get_json(&server.url("/list_large/")).await;
    assert_eq!(status, 504);
    eventually("the timed-out query to leave the lock queue", || async {
        serve_sessions_waiting_for_lock(&db).await == 0
    })
    .await;
    tx.rollback().await.unwrap();
}
