//! `pgcalm probe` against a real axum server on loopback, and `pgcalm monitor` against
//! the test cluster, through the real binary.
#![allow(unused_crate_dependencies)] // a test crate uses some of the dev-dependencies

mod common;

use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use common::{fails, ok, pgcalm};
use pgcalm_testkit::TestDb;

/// 127.0.0.1 server: `/ok` answers, `/slow` after 400 ms, `/hang` never. Returns its
/// base URL.
async fn server() -> String {
    let router = Router::new()
        .route("/ok", get(|| async { "emails" }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(400)).await;
                "emails"
            }),
        )
        .route("/hang", get(std::future::pending::<&'static str>));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    base
}

fn refused_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://127.0.0.1:{}/", l.local_addr().unwrap().port())
}

/// Runs the binary off the runtime that serves the test's HTTP server.
async fn run(mut cmd: assert_cmd::Command) -> String {
    tokio::task::spawn_blocking(move || ok(&mut cmd))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn probe_prints_the_seed_lines_and_a_summary_per_target() {
    let base = server().await;
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("samples.csv");
    let mut cmd = pgcalm();
    cmd.env_remove("NO_COLOR").args([
        "probe",
        &format!("list={base}/ok"),
        &format!("stuck={base}/hang"),
        &format!("down={}", refused_url()),
        "--interval",
        "100ms",
        "--timeout",
        "300ms",
        "--count",
        "3",
        "--out",
        csv.to_str().unwrap(),
    ]);
    let out = run(cmd).await;
    let lines: Vec<&str> = out.lines().collect();
    let line = |needle: &str| lines.iter().filter(|l| l.contains(needle)).count();
    // Not a terminal: the same lines, without colour codes.
    assert!(!out.contains('\x1b'), "{out}");
    assert_eq!(line(" - ✓ list: API responded ("), 3, "{out}");
    assert_eq!(line(" - ✗ stuck: API blocked/timeout (300 ms)"), 3, "{out}");
    assert_eq!(line(" - ✗ down: API error: connect refused"), 3, "{out}");
    let first = lines[0];
    assert!(
        first.as_bytes()[2] == b':' && first.as_bytes()[5] == b':' && &first[8..11] == " - ",
        "HH:MM:SS - ...: {first}"
    );
    let summary = out.split("Probe summary").nth(1).expect("a summary");
    let row = |name: &str| {
        summary
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no row for {name}: {summary}"))
            .split('|')
            .map(str::trim)
            .collect::<Vec<_>>()
    };
    assert_eq!(row("list")[1..5], ["3", "3", "0", "0"]);
    assert_eq!(row("list")[9], "none");
    assert_eq!(row("stuck")[1..5], ["3", "0", "3", "0"]);
    assert_eq!(row("down")[4], "3 (3 connect refused)");
    assert!(
        row("down")[9].contains("not recovered (3 failed)"),
        "{summary}"
    );
    let csv_text = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(csv_text.lines().count(), 1 + 9, "{csv_text}");
    assert!(csv_text.contains(",error,connect_refused,,"), "{csv_text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn probe_prints_its_lines_in_the_order_the_requests_were_sent() {
    // Each slow request answers after the fast ones sent after it: its line still comes
    // first, so the times on the lines never go backwards.
    let base = server().await;
    let mut cmd = pgcalm();
    cmd.args([
        "probe",
        &format!("slow={base}/slow"),
        &format!("fast={base}/ok"),
        "--interval",
        "150ms",
        "--count",
        "4",
    ]);
    let out = run(cmd).await;
    let names: Vec<&str> = out
        .lines()
        .filter(|l| l.contains(" - ✓ "))
        .map(|l| l.split(" - ✓ ").nth(1).unwrap().split(':').next().unwrap())
        .collect();
    assert_eq!(names, ["slow", "fast"].repeat(4), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn probe_json_summary_and_refusals() {
    let base = server().await;
    let mut cmd = pgcalm();
    cmd.args([
        "--format",
        "json",
        "probe",
        &format!("add=POST {base}/ok"),
        "--interval",
        "50ms",
        "--count",
        "2",
    ]);
    let out = run(cmd).await;
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let t = &report["targets"][0];
    assert_eq!(t["name"], "add");
    assert_eq!(t["method"], "POST");
    // The route only takes GET: a 405 is an HTTP 4xx error, not a success.
    assert_eq!(t["errors_by_kind"]["http_4xx"], 2, "{report:#}");
    assert_eq!(report["keep_alive"], false);

    let err = fails(pgcalm().args(["probe", "http://192.0.2.1:8001/", "--count", "1"]));
    assert!(
        err.contains("not loopback") && err.contains("--allow-remote"),
        "{err}"
    );
    let err = fails(pgcalm().args(["probe", "list=localhost:8001/list_large/"]));
    assert!(err.contains("expected [NAME=][METHOD ]URL"), "{err}");
    let err = fails(pgcalm().args(["probe", &format!("{base}/ok"), "--out", "x.txt"]));
    assert!(err.contains("x.txt") && err.contains(".csv"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn monitor_reports_a_lock_waiter_and_its_blocker() {
    let db = TestDb::new().await;
    db.execute("CREATE TABLE t (v int)").await;
    let (_holder, holder_pid) = db.session("BEGIN; LOCK TABLE t IN SHARE MODE;").await;
    let (writer, writer_pid) = db.session("SELECT 1").await;
    let insert =
        tokio::spawn(async move { writer.batch_execute("INSERT INTO t VALUES (1)").await });

    let deadline = Instant::now() + Duration::from_secs(60);
    let snapshot = loop {
        let mut cmd = pgcalm();
        cmd.env("DATABASE_URL", db.url())
            .args(["monitor", "--format", "json", "--count", "1"]);
        let out = run(cmd).await;
        assert_eq!(out.lines().count(), 1, "one JSON object per sample: {out}");
        let snap: serde_json::Value = serde_json::from_str(&out).unwrap();
        let waits = snap["lock_waits"].as_array().unwrap();
        if waits.iter().any(|w| w["pid"] == writer_pid) {
            break snap;
        }
        assert!(Instant::now() < deadline, "never saw the waiter: {snap:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let wait = &snapshot["lock_waits"][0];
    assert_eq!(wait["pid"], writer_pid);
    assert_eq!(wait["mode"], "RowExclusiveLock");
    assert_eq!(wait["relation"], "t");
    assert_eq!(wait["blocked_by"], serde_json::json!([holder_pid]));
    let sessions = snapshot["sessions"].as_array().unwrap();
    assert!(sessions.iter().any(|s| s["pid"] == holder_pid));
    assert!(
        sessions
            .iter()
            .all(|s| s["application_name"] != "pgcalm monitor"),
        "the monitor hides its own session: {sessions:?}"
    );

    // Not a terminal: JSON lines even without --format json, until --count.
    let mut cmd = pgcalm();
    cmd.env("DATABASE_URL", db.url())
        .args(["monitor", "--interval", "50ms", "--count", "2"]);
    let out = run(cmd).await;
    assert_eq!(out.lines().count(), 2, "{out}");
    for line in out.lines() {
        let snap: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(snap["query_ms"].as_f64().unwrap() > 0.0);
    }
    assert!(!insert.is_finished());
}

#[tokio::test(flavor = "multi_thread")]
async fn monitor_prints_text_when_asked_even_piped_and_idle_is_not_waiting() {
    let db = TestDb::new().await;
    let (_idle, idle_pid) = db.session("SET application_name = 'idle-pool'").await;
    let mut cmd = pgcalm();
    cmd.env("DATABASE_URL", db.url()).args([
        "--format",
        "text",
        "monitor",
        "--count",
        "2",
        "--interval",
        "50ms",
    ]);
    let out = run(cmd).await;
    assert!(
        serde_json::from_str::<serde_json::Value>(out.lines().next().unwrap_or("")).is_err(),
        "--format text, not JSON: {out}"
    );
    assert!(
        !out.contains('\x1b'),
        "no screen control codes in a pipe: {out}"
    );
    assert_eq!(out.matches("pgcalm monitor: ").count(), 2, "{out}");
    let row = out
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{idle_pid} ")))
        .unwrap_or_else(|| panic!("no row for the idle session {idle_pid}: {out}"));
    let cells: Vec<&str> = row.split('|').map(str::trim).collect();
    assert_eq!(
        cells[1..4],
        ["idle-pool", "idle", ""],
        "an idle connection waits for nothing: {row}"
    );
}

#[test]
fn probe_without_an_end_stops_when_its_reader_goes_away() {
    let bin = assert_cmd::cargo::cargo_bin("pgcalm");
    let pipeline = format!(
        "'{}' probe {} --interval 20ms | head -2",
        bin.display(),
        refused_url()
    );
    // `timeout` exits 124 if the probe keeps running after `head` is gone.
    let out = std::process::Command::new("timeout")
        .args(["60", "sh", "-c", &pipeline])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2);
}
