//! Helpers shared by the runner's test binaries.

#![allow(dead_code)] // each test binary uses its own subset

use std::path::Path;
use std::sync::{Arc, Mutex};

use pgcalm_migrate::{Event, Policy, Runner};
use pgcalm_testkit::TestDb;
use tokio_postgres::Client;

/// The events a runner reported, in order.
pub(crate) type Events = Arc<Mutex<Vec<Event>>>;

/// `runner`, recording its events.
pub(crate) fn recording(runner: Runner) -> (Runner, Events) {
    let events = Events::default();
    let sink = events.clone();
    let r = runner.on_event(move |e| sink.lock().unwrap().push(e.clone()));
    (r, events)
}

/// A runner on `db` for the migrations under `dir`, recording its events.
pub(crate) fn runner(db: &TestDb, dir: &Path, policy: Policy) -> (Runner, Events) {
    recording(Runner::new(db.target().clone(), dir).with_policy(policy))
}

/// A migrations directory with one app, `app`, holding these files.
pub(crate) fn migrations(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("app")).unwrap();
    for (name, sql) in files {
        std::fs::write(dir.path().join("app").join(name), sql).unwrap();
    }
    dir
}

/// A session named `forgotten-shell` that read `table` in a transaction it left open
/// (ACCESS SHARE held, idle), and its pid.
pub(crate) async fn idle_in_transaction(db: &TestDb, table: &str) -> (Client, i32) {
    let c = db.client().await;
    let pid = c
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    c.batch_execute("SET application_name = 'forgotten-shell'")
        .await
        .unwrap();
    c.batch_execute("BEGIN").await.unwrap();
    c.batch_execute(&format!("SELECT count(*) FROM {table}"))
        .await
        .unwrap();
    (c, pid)
}
