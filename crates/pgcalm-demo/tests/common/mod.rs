//! Shared by the integration tests: a database with the demo schema, and a running
//! demo server on a loopback port.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use pgcalm_demo::{SeedOptions, SeedReport, seed};
use pgcalm_demo::{ServeOptions, Server};
use pgcalm_testkit::TestDb;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The demo schema, from the one place it is defined.
const INITIAL: &str = pgcalm_demo::DEMOAPP_INITIAL_MIGRATION;

/// The `-- migrate:up` section of migrations/demoapp/0001_initial.sql.
pub(crate) fn initial_up() -> &'static str {
    let up = INITIAL.split("-- migrate:down").next().unwrap();
    up.split_once("-- migrate:up").map(|(_, s)| s).unwrap_or(up)
}

/// A fresh database with `small_email` and `large_email` (migration 0001).
pub(crate) async fn demo_db() -> TestDb {
    let db = TestDb::new().await;
    db.execute(initial_up()).await;
    db
}

/// Seeds `large` rows (and the 10 small ones) without progress or cancel.
pub(crate) async fn seed_rows(db: &TestDb, large: u64) -> SeedReport {
    let opts = SeedOptions {
        large_count: large,
        batch_size: 1000,
        ..SeedOptions::default()
    };
    seed(db.target(), &opts, &|_| {}, Default::default())
        .await
        .unwrap()
}

/// A demo server running on an ephemeral loopback port.
pub(crate) struct RunningServer {
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    pub task: JoinHandle<Result<(), pgcalm_demo::ServeError>>,
}

impl RunningServer {
    pub(crate) async fn start(db: &TestDb, opts: ServeOptions) -> RunningServer {
        let server = Server::bind(db.target(), ServeOptions { port: 0, ..opts })
            .await
            .unwrap();
        let addr = server.local_addr();
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(server.run(async {
            let _ = rx.await;
        }));
        RunningServer {
            addr,
            shutdown: Some(tx),
            task,
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Sends the shutdown signal (what SIGINT/SIGTERM do in the CLI).
    pub(crate) fn signal_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// An HTTP client that does not follow redirects.
pub(crate) fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// `(status, content-type, JSON body)` of a GET.
pub(crate) async fn get_json(url: &str) -> (u16, String, serde_json::Value) {
    let resp = http().get(url).send().await.unwrap();
    into_json(resp).await
}

pub(crate) async fn into_json(resp: reqwest::Response) -> (u16, String, serde_json::Value) {
    let status = resp.status().as_u16();
    let ctype = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let text = resp.text().await.unwrap();
    let body =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("body is not JSON ({e}): {text:?}"));
    (status, ctype, body)
}

/// Sessions of the demo server waiting for a lock (test-side view of pg_stat_activity).
pub(crate) async fn serve_sessions_waiting_for_lock(db: &TestDb) -> i64 {
    db.client()
        .await
        .query_one(
            "SELECT count(*) FROM pg_stat_activity
             WHERE application_name = 'pgcalm serve' AND wait_event_type = 'Lock'",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

/// Polls `check` (up to about 10 s) until it returns true.
pub(crate) async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}
