//! The demo API while the database goes away and comes back. Its own test binary: it
//! stops the per-binary test cluster.
#![allow(unused_crate_dependencies)] // a test crate uses some of the dev-dependencies

mod common;

use common::{RunningServer, demo_db, eventually, get_json, seed_rows};
use pgcalm_demo::ServeOptions;
use pgcalm_pg::ClusterOptions;
use pgcalm_testkit::TestCluster;
use serde_json::json;

#[tokio::test]
async fn database_down_gives_503_and_the_server_recovers_by_itself() {
    let db = demo_db().await;
    seed_rows(&db, 20).await;
    let server = RunningServer::start(&db, ServeOptions::default()).await;
    assert_eq!(get_json(&server.url("/list_large/")).await.0, 200);

    let cluster = TestCluster::get().cluster();
    cluster.stop().unwrap();

    for path in ["/list_large/", "/lookup/?email=user1@example.com"] {
        let (status, ctype, body) = get_json(&server.url(path)).await;
        assert_eq!(
            (status, ctype.as_str()),
            (503, "application/json"),
            "{path}: {body}"
        );
        let msg = body["error"].as_str().unwrap();
        assert!(msg.starts_with("database unavailable"), "{msg}");
    }
    let resp = common::http()
        .post(server.url("/add_large/"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    let (status, _, body) = get_json(&server.url("/healthz")).await;
    assert_eq!((status, &body["status"]), (503, &json!("unavailable")));
    assert!(!server.task.is_finished(), "the server keeps running");

    cluster.start(None, &ClusterOptions::throwaway()).unwrap();
    let url = server.url("/list_large/");
    eventually("the server to answer 200 again", || async {
        get_json(&url).await.0 == 200
    })
    .await;
    let (status, _, body) = get_json(&url).await;
    assert_eq!(
        (status, body["emails"].as_array().unwrap().len()),
        (200, 20)
    );
    assert_eq!(get_json(&server.url("/healthz")).await.0, 200);
}
