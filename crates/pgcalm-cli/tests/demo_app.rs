//! `pgcalm seed` and `pgcalm serve` as the user runs them: the real binary against a
//! real server, Ctrl-C / SIGTERM included.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use pgcalm_testkit::TestDb;

fn pgcalm(db: &TestDb) -> Command {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("pgcalm"));
    let migrations = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations");
    cmd.env("DATABASE_URL", db.url())
        .arg("--migrations-dir")
        .arg(migrations);
    cmd
}

/// A database at the seed's starting point (`pgcalm migrate demoapp 0001`).
async fn demo_db() -> TestDb {
    let db = TestDb::new().await;
    let out = pgcalm(&db)
        .args(["migrate", "demoapp", "0001"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    db
}

fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

async fn large_rows(db: &TestDb) -> i64 {
    db.query_i64("SELECT count(*) FROM large_email").await
}

#[tokio::test]
async fn seed_reports_like_the_peer_and_fills_both_tables() {
    let db = demo_db().await;
    let out = pgcalm(&db)
        .args(["seed", "--large-count", "20000", "--batch-size", "1000"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("Inserted 10 rows into small_email"),
        "{stdout}"
    );
    let last = stdout.lines().last().unwrap();
    assert!(
        last.starts_with("Done: 10 small + 20000 large rows in "),
        "{last}"
    );
    assert!(last.contains("rows/s)"), "{last}");
    assert_eq!(large_rows(&db).await, 20_000);

    // --truncate starts over.
    let out = pgcalm(&db)
        .args([
            "seed",
            "--large-count",
            "500",
            "--truncate",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (report["large_rows"].as_u64(), report["first_id"].as_u64()),
        (Some(500), Some(1))
    );
    assert_eq!(large_rows(&db).await, 500);
}

#[tokio::test]
async fn seed_ctrl_c_keeps_committed_rows_and_says_how_many() {
    let db = demo_db().await;
    let child = pgcalm(&db)
        .args(["seed", "--large-count", "50000000", "--batch-size", "1000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..600 {
        if large_rows(&db).await > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    signal(child.id(), "-INT");
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(130),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout.lines().last().unwrap();
    let committed: i64 = last
        .strip_prefix("Cancelled: 10 small + ")
        .and_then(|rest| rest.split_once(" of 50000000 large rows committed"))
        .map(|(n, _)| n.parse().unwrap())
        .unwrap_or_else(|| panic!("unexpected last line: {last}"));
    assert!(committed > 0 && committed < 50_000_000);
    assert_eq!(
        large_rows(&db).await,
        committed,
        "the message says exactly what stayed"
    );
}

/// A plain HTTP/1.1 GET; returns the status line and the body.
fn http_get(addr: &str, path: &str) -> (String, String) {
    let mut tcp = TcpStream::connect(addr).unwrap();
    write!(
        tcp,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_string(), body.to_string())
}

#[tokio::test]
async fn serve_answers_logs_requests_and_stops_on_sigterm() {
    let db = demo_db().await;
    let out = pgcalm(&db)
        .args(["seed", "--large-count", "150"])
        .output()
        .unwrap();
    assert!(out.status.success());

    let mut child = pgcalm(&db)
        .args(["serve", "--port", "0", "--verbose"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    // "Serving the demo app on http://127.0.0.1:PORT/list_large/ (database ...)"
    let addr = first
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("unexpected first line: {first}"))
        .to_string();
    assert!(
        addr.starts_with("127.0.0.1:"),
        "loopback by default: {addr}"
    );
    assert!(!first.contains("password"));

    let (status, body) = tokio::task::spawn_blocking({
        let addr = addr.clone();
        move || http_get(&addr, "/list_large/")
    })
    .await
    .unwrap();
    assert_eq!(status, "HTTP/1.1 200 OK");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["emails"].as_array().unwrap().len(), 100);
    assert_eq!(
        body["emails"][0],
        serde_json::json!({"id": 1, "name": "User 1", "email": "user1@example.com"})
    );

    signal(child.id(), "-TERM");
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert!(
        rest.contains("Shutting down") && rest.trim_end().ends_with("Stopped."),
        "{rest}"
    );
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(
        stderr.contains("method=GET uri=\"/list_large/\" status=200 latency_ms="),
        "{stderr}"
    );
}
