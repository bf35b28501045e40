//! `pgcalm seed` and `pgcalm serve` as the user runs them: the real binary against a
//! real server, Ctrl-C / SIGTERM included.
#![allow(unused_crate_dependencies)] // a test crate uses some of the dev-dependencies

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::http_get;
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

/// A demo database seeded with 150 large rows by `pgcalm seed`.
async fn seeded_demo_db() -> TestDb {
    let db = demo_db().await;
    let out = pgcalm(&db)
        .args(["seed", "--large-count", "150"])
        .output()
        .unwrap();
    assert!(out.status.success());
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

/// A running `pgcalm serve`: the child, its stdout after the first line, the address it
/// listens on and that first line.
type Serving = (
    std::process::Child,
    BufReader<std::process::ChildStdout>,
    String,
    String,
);

/// `pgcalm serve --port 0 EXTRA...` with its output piped.
fn spawn_serve(db: &TestDb, extra: &[&str]) -> Serving {
    spawn_serve_with(pgcalm(db), extra)
}

fn spawn_serve_with(mut cmd: Command, extra: &[&str]) -> Serving {
    let mut child = cmd
        .args(["serve", "--port", "0"])
        .args(extra)
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
    (child, stdout, addr, first)
}

/// All the child wrote to stderr (once it has exited).
fn stderr_of(child: &mut std::process::Child) -> String {
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    stderr
}

/// [`http_get`] on a blocking thread.
async fn get_off_runtime(addr: &str, path: &'static str) -> (String, String) {
    let addr = addr.to_string();
    tokio::task::spawn_blocking(move || http_get(&addr, path))
        .await
        .unwrap()
}

#[tokio::test]
async fn serve_answers_logs_requests_and_stops_on_sigterm() {
    let db = seeded_demo_db().await;

    let (mut child, mut stdout, addr, first) = spawn_serve(&db, &["--verbose"]);
    assert!(
        addr.starts_with("127.0.0.1:"),
        "loopback by default: {addr}"
    );
    assert!(!first.contains("password"));

    let (status, body) = get_off_runtime(&addr, "/list_large/").await;
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
    let stderr = stderr_of(&mut child);
    assert!(
        stderr.contains("\"GET /list_large/ HTTP/1.1\" 200 "),
        "{stderr}"
    );
}

/// Sets this process's open-file soft limit to its hard limit and returns it: the flood
/// tests hold one socket per attacking connection here.
fn raise_own_open_files_limit() -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a local struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        lim.rlim_cur = lim.rlim_max.min(1 << 20);
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
    }
    usize::try_from(lim.rlim_cur).unwrap_or(usize::MAX)
}

/// Starts the child with an open-file soft limit of 1024, the usual default of a login
/// shell or a systemd service (the hard limit stays).
fn with_soft_open_files_limit_1024(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: getrlimit/setrlimit are async-signal-safe; nothing else runs in the hook.
    unsafe {
        cmd.pre_exec(|| {
            let mut lim = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_max >= 1024 {
                lim.rlim_cur = 1024;
                libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            }
            Ok(())
        });
    }
}

/// Opens `n` connections at once (3 s to connect each), sending `head` on each if
/// given; returns the open ones and how many could not connect.
async fn open_connections(
    addr: &str,
    n: usize,
    head: Option<&'static [u8]>,
) -> (Vec<tokio::net::TcpStream>, usize) {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        let addr = addr.to_string();
        set.spawn(async move {
            let mut tcp =
                tokio::time::timeout(Duration::from_secs(3), tokio::net::TcpStream::connect(addr))
                    .await
                    .ok()?
                    .ok()?;
            if let Some(head) = head {
                tokio::io::AsyncWriteExt::write_all(&mut tcp, head)
                    .await
                    .ok()?;
            }
            Some(tcp)
        });
    }
    let mut open = Vec::new();
    let mut failed = 0;
    while let Some(result) = set.join_next().await {
        match result.unwrap() {
            Some(tcp) => open.push(tcp),
            None => failed += 1,
        }
    }
    (open, failed)
}

/// One GET on a fresh connection, as a probe sends it; the status line, or why not
/// within `limit`.
async fn timed_get(addr: &str, path: &str, limit: Duration) -> Result<String, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        let mut tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        tcp.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .map_err(|e| format!("send: {e}"))?;
        let mut answer = Vec::new();
        tcp.read_to_end(&mut answer)
            .await
            .map_err(|e| format!("read: {e}"))?;
        let answer = String::from_utf8_lossy(&answer).into_owned();
        Ok(answer
            .lines()
            .next()
            .unwrap_or("(empty answer)")
            .to_string())
    };
    tokio::time::timeout(limit, exchange)
        .await
        .unwrap_or_else(|_| Err(format!("timed out after {limit:?}")))
}

/// Waits (up to 10 s) for the child to exit after a signal.
fn wait_exit(child: &mut std::process::Child) -> std::process::ExitStatus {
    for _ in 0..200 {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!("pgcalm serve did not stop within 10 s of SIGTERM");
}

/// A request line and the start of a header, never finished (slowloris).
const PARTIAL_HEAD: &[u8] = b"GET /list_large/ HTTP/1.1\r\nHost: x\r\nX-Slow: ";

#[tokio::test]
async fn serve_keeps_answering_through_2000_slowloris_and_1100_idle_connections() {
    let db = seeded_demo_db().await;
    // This process holds one end of every connection; with a lower limit than the
    // 3,100 sockets need, the flood shrinks in proportion (said in the output).
    let budget = raise_own_open_files_limit().saturating_sub(256);
    let (n_slow, n_idle) = if budget >= 3100 {
        (2000, 1100)
    } else {
        (budget * 2000 / 3100, budget * 1100 / 3100)
    };

    // Started with the open-file limit most shells and services give it.
    let mut cmd = pgcalm(&db);
    with_soft_open_files_limit_1024(&mut cmd);
    let (mut child, _stdout, addr, _) = spawn_serve_with(cmd, &[]);

    let (slow, slow_failed) = open_connections(&addr, n_slow, Some(PARTIAL_HEAD)).await;
    let (idle, idle_failed) = open_connections(&addr, n_idle, None).await;
    // The slowloris clients send one more header byte every second.
    let trickle = tokio::spawn(async move {
        let mut slow = slow;
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            for tcp in &mut slow {
                let _ = tokio::io::AsyncWriteExt::write_all(tcp, b"a").await;
            }
        }
    });

    // What a probe sees meanwhile: requests on fresh connections, 3 s timeout each.
    let total = 20;
    let mut failed = Vec::new();
    for i in 0..total {
        match timed_get(&addr, "/list_large/", Duration::from_secs(3)).await {
            Ok(status) if status == "HTTP/1.1 200 OK" => {}
            Ok(status) => failed.push(format!("request {i}: {status}")),
            Err(why) => failed.push(format!("request {i}: {why}")),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let summary = format!(
        "{} of {total} requests failed while {n_slow} slowloris ({slow_failed} could not \
         connect) and {n_idle} idle ({idle_failed} could not connect) connections were open",
        failed.len()
    );
    eprintln!("{summary}");
    trickle.abort();
    drop(idle);
    assert!(failed.is_empty(), "{summary}:\n{}", failed.join("\n"));

    signal(child.id(), "-TERM");
    let status = wait_exit(&mut child);
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn serve_flags_cap_connections_with_503_and_time_out_silent_clients() {
    let db = demo_db().await;
    let (mut child, _stdout, addr, first) = spawn_serve(
        &db,
        &[
            "--max-connections",
            "50",
            "--header-timeout",
            "1s",
            "--idle-timeout",
            "2s",
        ],
    );
    assert!(first.contains("up to 50 connections"), "{first}");
    let (mut silent, failed) = open_connections(&addr, 50, None).await;
    assert_eq!(failed, 0);

    // Over the cap: refused at once with a 503, not left hanging.
    for _ in 0..3 {
        let status = timed_get(&addr, "/healthz", Duration::from_secs(3)).await;
        assert_eq!(
            status.as_deref(),
            Ok("HTTP/1.1 503 Service Unavailable"),
            "{status:?}"
        );
    }
    // The silent clients are closed at the 1 s header timeout, which frees their slots.
    for tcp in &mut silent {
        let mut buf = [0u8; 16];
        let read = tokio::time::timeout(
            Duration::from_secs(5),
            tokio::io::AsyncReadExt::read(tcp, &mut buf),
        )
        .await;
        assert!(
            matches!(read, Ok(Ok(0)) | Ok(Err(_))),
            "a silent client is still connected: {read:?}"
        );
    }
    let status = timed_get(&addr, "/healthz", Duration::from_secs(3)).await;
    assert_eq!(status.as_deref(), Ok("HTTP/1.1 200 OK"));

    signal(child.id(), "-TERM");
    assert!(wait_exit(&mut child).success());
}

#[tokio::test]
async fn serve_logs_the_database_error_it_keeps_from_the_client() {
    // No demo tables: every list request fails in the database.
    let db = TestDb::new().await;
    let (mut child, _stdout, addr, _) = spawn_serve(&db, &["--quiet"]);
    let (status, body) = get_off_runtime(&addr, "/list_large/").await;
    assert_eq!(status, "HTTP/1.1 500 Internal Server Error");
    assert!(!body.contains("does not exist"), "{body}");

    signal(child.id(), "-TERM");
    assert!(wait_exit(&mut child).success());
    let stderr = stderr_of(&mut child);
    // With --quiet, only the failed request is logged, with the database's words.
    let logged: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("HTTP/1.1\""))
        .collect();
    assert_eq!(logged.len(), 1, "{stderr}");
    assert!(
        logged[0].contains(r#""GET /list_large/ HTTP/1.1" 500"#)
            && logged[0].contains(r#"relation "large_email" does not exist"#),
        "{stderr}"
    );
}
