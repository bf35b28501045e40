//! The demo API through PgBouncer in transaction pooling mode, as an application runs in
//! production: more client connections than server connections, so consecutive
//! statements of one client land on different server connections.
#![allow(unused_crate_dependencies)] // a test crate uses some of the dev-dependencies

mod common;

use common::{demo_db, http, seed_rows};
use pgcalm_demo::{ServeOptions, Server};
use pgcalm_testkit::{TestCluster, TestPooler};
use tokio::sync::oneshot;

#[tokio::test]
async fn reads_and_writes_are_served_through_a_transaction_pooler() {
    let db = demo_db().await;
    seed_rows(&db, 50).await;
    // Two server connections behind eight client connections.
    let pooler = TestPooler::start(TestCluster::get(), 2);
    let server = Server::bind(
        &pooler.target(db.name()),
        ServeOptions {
            port: 0,
            pool_size: 8,
            ..ServeOptions::default()
        },
    )
    .await
    .unwrap();
    let base = format!("http://{}", server.local_addr());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));

    let client = http();
    let mut requests = Vec::new();
    for i in 0..60 {
        let client = client.clone();
        let base = base.clone();
        requests.push(tokio::spawn(async move {
            let resp = match i % 3 {
                0 => client.get(format!("{base}/list_large/")).send().await,
                1 => {
                    let url = format!("{base}/lookup/?email=user{}@example.com", i % 50 + 1);
                    client.get(url).send().await
                }
                _ => client.post(format!("{base}/add_large/")).send().await,
            }
            .unwrap();
            let status = resp.status().as_u16();
            (i, status, resp.text().await.unwrap())
        }));
    }
    let mut writes = 0;
    for r in requests {
        let (i, status, body) = r.await.unwrap();
        let expected = if i % 3 == 2 { 201 } else { 200 };
        assert_eq!(status, expected, "request {i} through the pooler: {body}");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        match i % 3 {
            // The seeded rows, and the writes committed so far.
            0 => assert!(json["emails"].as_array().unwrap().len() >= 50, "{body}"),
            1 => assert_eq!(json["emails"].as_array().unwrap().len(), 1, "{body}"),
            _ => writes += 1,
        }
    }

    // The writes are on the server, and they went through PgBouncer's pool of this
    // database, in transaction mode.
    let rows: i64 = db
        .client()
        .await
        .query_one("SELECT count(*) FROM large_email WHERE id > 50", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, writes);
    let pools = pooler.pools().await;
    let pool = pools.iter().find(|p| p.database == db.name()).unwrap();
    assert_eq!(pool.pool_mode, "transaction");
    assert!(
        pool.servers_active + pool.servers_idle + pool.servers_used <= 2,
        "{pool:?}"
    );

    let _ = stop.send(());
    task.await.unwrap().unwrap();
}
