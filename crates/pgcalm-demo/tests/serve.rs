//! The demo API against a real server on loopback: every route, every error answer,
//! request timeout and graceful shutdown. (Database down and back: serve_recovery.rs.)
#![allow(unused_crate_dependencies)] // a test crate uses some of the dev-dependencies

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{
    RunningServer, demo_db, eventually, get_json, http, into_json, seed_rows,
    serve_sessions_waiting_for_lock,
};
use pgcalm_demo::{RequestLog, ServeOptions, Server};
use pgcalm_testkit::TestDb;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn user(i: i64) -> Value {
    json!({"id": i, "name": format!("User {i}"), "email": format!("user{i}@example.com")})
}

#[tokio::test]
async fn list_large_returns_the_first_100_rows_by_id() {
    let db = demo_db().await;
    seed_rows(&db, 150).await;
    let server = RunningServer::start(&db, ServeOptions::default()).await;

    let (status, ctype, body) = get_json(&server.url("/list_large/")).await;
    assert_eq!((status, ctype.as_str()), (200, "application/json"));
    let expected: Vec<Value> = (1..=100).map(user).collect();
    assert_eq!(body, json!({ "emails": expected }));
}

#[tokio::test]
async fn list_small_returns_the_ten_small_rows() {
    let db = demo_db().await;
    seed_rows(&db, 0).await;
    let server = RunningServer::start(&db, ServeOptions::default()).await;
    let (status, _, body) = get_json(&server.url("/list_small/")).await;
    assert_eq!(status, 200);
    let expected: Vec<Value> = (1..=10).map(user).collect();
    assert_eq!(body, json!({ "emails": expected }));
}

#[tokio::test]
async fn lookup_finds_rows_by_email_and_requires_the_parameter() {
    let db = demo_db().await;
    seed_rows(&db, 200).await;
    let server = RunningServer::start(&db, ServeOptions::default()).await;

    let (status, _, body) = get_json(&server.url("/lookup/?email=user5%40example.com")).await;
    assert_eq!((status, body), (200, json!({ "emails": [user(5)] })));

    let (status, _, body) = get_json(&server.url("/lookup/?email=nobody@example.com")).await;
    assert_eq!((status, body), (200, json!({ "emails": [] })));

    for query in ["", "?email=", "?other=1"] {
        let (status, ctype, body) = get_json(&server.url(&format!("/lookup/{query}"))).await;
        assert_eq!(
            (status, ctype.as_str(), body),
            (
                400,
                "application/json",
                json!({"error": "missing query parameter 'email'"})
            ),
            "query {query:?}"
        );
    }
}

#[tokio::test]
async fn add_large_inserts_one_row_and_returns_it_with_201() {
    let db = demo_db().await;
    seed_rows(&db, 10).await;
    let server = RunningServer::start(&db, ServeOptions::default()).await;

    let mut ids = Vec::new();
    for _ in 0..2 {
        let resp = http().post(server.url("/add_large/")).send().await.unwrap();
        let (status, _, body) = into_json(resp).await;
        assert_eq!(status, 201);
        let id = body["id"].as_i64().unwrap();
        let name = body["name"].as_str().unwrap();
        let tag = name.strip_prefix("Probe ").expect("name is 'Probe <tag>'");
        assert_eq!(body["email"], json!(format!("probe{tag}@example.com")));
        let stored: (String, String) = {
            let row = db
                .client()
                .await
                .query_one("SELECT name, email FROM large_email WHERE id = $1", &[&id])
                .await
                .unwrap();
            (row.get(0), row.get(1))
        };
        assert_eq!(
            (stored.0.as_str(), stored.1.as_str()),
            (name, body["email"].as_str().unwrap())
        );
        ids.push(id);
    }
    // Ids come from the identity sequence, after the seeded rows.
    assert_eq!(ids, vec![11, 12]);
}

#[tokio::test]
async fn healthz_says_ok_when_the_database_answers() {
    let db = demo_db().await;
    let server = RunningServer::start(&db, ServeOptions::default()).await;
    let (status, _, body) = get_json(&server.url("/healthz")).await;
    assert_eq!((status, body), (200, json!({"status": "ok"})));
}

#[tokio::test]
async fn unknown_paths_get_json_404_and_slashless_routes_redirect() {
    let db = demo_db().await;
    let server = RunningServer::start(&db, ServeOptions::default()).await;

    let (status, ctype, body) = get_json(&server.url("/nope/")).await;
    assert_eq!(
        (status, ctype.as_str(), body),
        (
            404,
            "application/json",
            json!({"error": "no route for /nope/"})
        )
    );

    let resp = http()
        .get(server.url("/list_large?x=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 301);
    assert_eq!(resp.headers()["location"], "/list_large/?x=1");

    // Not a route without its slash for other methods: 404 as usual.
    let resp = http().post(server.url("/add_large")).send().await.unwrap();
    assert_eq!(into_json(resp).await.0, 404);
}

#[tokio::test]
async fn wrong_methods_get_json_405_with_allow() {
    let db = demo_db().await;
    let server = RunningServer::start(&db, ServeOptions::default()).await;

    let resp = http()
        .post(server.url("/list_large/"))
        .send()
        .await
        .unwrap();
    let allow = resp
        .headers()
        .get("allow")
        .map(|v| v.to_str().unwrap().to_string());
    let (status, ctype, body) = into_json(resp).await;
    assert_eq!(
        (status, ctype.as_str(), body),
        (
            405,
            "application/json",
            json!({"error": "method POST not allowed on /list_large/"})
        )
    );
    assert_eq!(allow.as_deref(), Some("GET,HEAD"));

    let resp = http().get(server.url("/add_large/")).send().await.unwrap();
    assert_eq!(resp.headers()["allow"], "POST");
    assert_eq!(into_json(resp).await.0, 405);
}

#[tokio::test]
async fn oversized_bodies_are_refused_with_413() {
    let db = demo_db().await;
    seed_rows(&db, 0).await;
    let opts = ServeOptions {
        body_limit: 1024,
        ..ServeOptions::default()
    };
    let server = RunningServer::start(&db, opts).await;

    // Declared length over the limit: refused before any database work.
    let resp = http()
        .post(server.url("/add_large/"))
        .body(vec![b'x'; 4096])
        .send()
        .await
        .unwrap();
    let (status, ctype, body) = into_json(resp).await;
    assert_eq!(
        (status, ctype.as_str(), body),
        (
            413,
            "application/json",
            json!({"error": "request body larger than the limit of 1024 bytes"})
        )
    );

    // Chunked (no declared length): refused while reading.
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let chunk = "y".repeat(2000);
    let request = format!(
        "POST /add_large/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
         {:x}\r\n{chunk}\r\n0\r\n\r\n",
        chunk.len()
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("limit of 1024 bytes"), "{answer}");

    // Small bodies are fine, and nothing was inserted by the refused ones.
    let resp = http()
        .post(server.url("/add_large/"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    let rows: i64 = db.query_i64("SELECT count(*) FROM large_email").await;
    assert_eq!(rows, 1);
}

#[tokio::test]
async fn a_request_stuck_on_a_lock_times_out_with_504_and_its_query_is_cancelled() {
    let db = demo_db().await;
    seed_rows(&db, 10).await;
    let opts = ServeOptions {
        request_timeout: Duration::from_millis(500),
        pool_size: 1,
        ..ServeOptions::default()
    };
    let server = RunningServer::start(&db, opts).await;

    // A migration holding ACCESS EXCLUSIVE on large_email.
    let mut locker = db.client().await;
    let tx = locker.transaction().await.unwrap();
    tx.batch_execute("LOCK TABLE large_email IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();

    let (status, ctype, body) = get_json(&server.url("/list_large/")).await;
    assert_eq!(
        (status, ctype.as_str(), body),
        (
            504,
            "application/json",
            json!({"error": "request timed out after 0.5s"})
        )
    );
    // The server gave up on the query: nothing of it stays queued behind the lock.
    eventually("the timed-out query to leave the lock queue", || async {
        serve_sessions_waiting_for_lock(&db).await == 0
    })
    .await;
    // Other tables still answer through the single pooled connection.
    let (status, _, _) = get_json(&server.url("/list_small/")).await;
    assert_eq!(status, 200);

    tx.rollback().await.unwrap();
    let (status, _, body) = get_json(&server.url("/list_large/")).await;
    assert_eq!(
        (status, body["emails"].as_array().unwrap().len()),
        (200, 10)
    );
}

#[tokio::test]
async fn missing_tables_answer_500_with_the_fix() {
    let db = pgcalm_testkit::TestDb::new().await;
    let server = RunningServer::start(&db, ServeOptions::default()).await;
    let (status, ctype, body) = get_json(&server.url("/list_large/")).await;
    assert_eq!((status, ctype.as_str()), (500, "application/json"));
    assert_eq!(
        body,
        json!({"error": "the demo tables are missing; create them with `pgcalm up` or `pgcalm migrate`"})
    );
}

#[tokio::test]
async fn a_changed_column_type_does_not_break_cached_statements() {
    let db = demo_db().await;
    seed_rows(&db, 5).await;
    let server = RunningServer::start(&db, ServeOptions::default()).await;
    assert_eq!(get_json(&server.url("/list_large/")).await.0, 200);
    // A lab scenario: change a column's type under the running app.
    db.execute("ALTER TABLE large_email ALTER COLUMN name TYPE text")
        .await;
    let (status, _, body) = get_json(&server.url("/list_large/")).await;
    assert_eq!((status, body["emails"][0].clone()), (200, user(1)));
}

/// A server whose request log lines are kept.
async fn logging_server(db: &TestDb) -> (RunningServer, Arc<Mutex<Vec<RequestLog>>>) {
    let lines: Arc<Mutex<Vec<RequestLog>>> = Arc::default();
    let sink = lines.clone();
    let opts = ServeOptions {
        on_request: Some(Arc::new(move |l| sink.lock().unwrap().push(l))),
        ..ServeOptions::default()
    };
    (RunningServer::start(db, opts).await, lines)
}

#[tokio::test]
async fn request_log_records_method_path_status() {
    let db = demo_db().await;
    seed_rows(&db, 3).await;
    let (server, lines) = logging_server(&db).await;
    get_json(&server.url("/lookup/?email=user1@example.com")).await;
    get_json(&server.url("/nope")).await;
    let seen: Vec<(String, String, u16)> = lines
        .lock()
        .unwrap()
        .iter()
        .map(|l| (l.method.to_string(), l.uri.clone(), l.status))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("GET".into(), "/lookup/?email=user1@example.com".into(), 200),
            ("GET".into(), "/nope".into(), 404),
        ]
    );
}

#[tokio::test]
async fn graceful_shutdown_finishes_requests_in_flight_and_refuses_new_ones() {
    let db = demo_db().await;
    seed_rows(&db, 10).await;
    let mut server = RunningServer::start(&db, ServeOptions::default()).await;

    // Park one request behind a lock so it is in flight when the signal comes.
    let mut locker = db.client().await;
    let tx = locker.transaction().await.unwrap();
    tx.batch_execute("LOCK TABLE large_email IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let in_flight = tokio::spawn(get_json(server.url("/list_large/").leak()));
    eventually("the request to wait for the lock", || async {
        serve_sessions_waiting_for_lock(&db).await == 1
    })
    .await;

    server.signal_shutdown();
    let addr = server.addr;
    eventually("the listener to close", || async {
        tokio::net::TcpStream::connect(addr).await.is_err()
    })
    .await;
    assert!(
        !server.task.is_finished(),
        "the server must wait for the request in flight"
    );

    tx.rollback().await.unwrap();
    let (status, _, body) = in_flight.await.unwrap();
    assert_eq!(
        (status, body["emails"].as_array().unwrap().len()),
        (200, 10)
    );
    server.task.await.unwrap().unwrap();
}

/// Words of PostgreSQL's and the driver's error texts that must never reach a client.
const DATABASE_WORDS: [&str; 8] = [
    "relation",
    "does not exist",
    "column",
    "invalid byte sequence",
    "0x00",
    "UTF8",
    "db error",
    "SQLSTATE",
];

fn assert_no_database_text(body: &Value) {
    let text = body.to_string();
    for word in DATABASE_WORDS {
        assert!(
            !text.contains(word),
            "the body carries database text ({word:?}): {text}"
        );
    }
}

#[tokio::test]
async fn lookup_refuses_bad_emails_with_400_before_the_database_sees_them() {
    let db = demo_db().await;
    seed_rows(&db, 10).await;
    let server = RunningServer::start(&db, ServeOptions::default()).await;

    let too_long = format!("?email={}", "a".repeat(256));
    for (query, why) in [
        ("?email=a%00b", "NUL"),
        (too_long.as_str(), "longer than 255"),
    ] {
        let (status, ctype, body) = get_json(&server.url(&format!("/lookup/{query}"))).await;
        assert_eq!(
            (status, ctype.as_str()),
            (400, "application/json"),
            "{query}: {body}"
        );
        let msg = body["error"].as_str().unwrap();
        assert!(msg.contains(why), "{query}: {msg}");
        assert_no_database_text(&body);
    }
    // The longest email the column holds is still looked up.
    let longest = format!("/lookup/?email={}", "a".repeat(255));
    let (status, _, body) = get_json(&server.url(&longest)).await;
    assert_eq!((status, body), (200, json!({ "emails": [] })));
}

#[tokio::test]
async fn database_errors_answer_5xx_without_database_text_and_are_logged_with_the_request() {
    let db = demo_db().await;
    seed_rows(&db, 10).await;
    let (server, lines) = logging_server(&db).await;
    assert_eq!(get_json(&server.url("/list_large/")).await.0, 200);

    // A schema change under the running app: the handlers' SQL no longer works.
    db.execute("ALTER TABLE large_email RENAME COLUMN email TO mail")
        .await;
    let (status, ctype, body) = get_json(&server.url("/lookup/?email=user1@example.com")).await;
    assert_eq!(
        (status, ctype.as_str()),
        (500, "application/json"),
        "{body}"
    );
    assert_eq!(
        body,
        json!({"error": "internal error (the server's log has the details)"})
    );

    db.execute("DROP TABLE large_email").await;
    for path in ["/list_large/", "/lookup/?email=user1@example.com"] {
        let (status, _, body) = get_json(&server.url(path)).await;
        assert_eq!(status, 500, "{path}: {body}");
        assert_no_database_text(&body);
    }
    let resp = http().post(server.url("/add_large/")).send().await.unwrap();
    let (status, _, body) = into_json(resp).await;
    assert_eq!(status, 500, "{body}");
    assert_no_database_text(&body);

    // The details go to the request log, beside the request they belong to.
    let logged: Vec<(String, u16, Option<String>)> = lines
        .lock()
        .unwrap()
        .iter()
        .map(|l| (l.uri.clone(), l.status, l.error.clone()))
        .collect();
    let (uri, status, error) = &logged[1];
    assert_eq!(
        (uri.as_str(), *status),
        ("/lookup/?email=user1@example.com", 500)
    );
    let error = error.as_deref().unwrap_or_default();
    assert!(error.contains("column \"email\" does not exist"), "{error}");
    let (uri, _, error) = &logged[2];
    assert_eq!(uri, "/list_large/");
    assert!(
        error
            .as_deref()
            .is_some_and(|e| e.contains("relation \"large_email\" does not exist")),
        "{error:?}"
    );
    assert_eq!(logged[0].2, None, "a 200 carries no error");
}

/// Reads from `tcp` until the server closes it; returns what it sent and when it
/// closed, or `None` if it was still open after `limit`.
async fn read_until_closed(
    tcp: &mut (impl tokio::io::AsyncRead + Unpin),
    limit: Duration,
) -> Option<(String, Duration)> {
    let started = std::time::Instant::now();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at((started + limit).into(), tcp.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => {
                return Some((
                    String::from_utf8_lossy(&seen).into_owned(),
                    started.elapsed(),
                ));
            }
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

/// A demo database with 10 rows and a server with these timeouts.
async fn server_with_timeouts(header: Duration, idle: Duration) -> (TestDb, RunningServer) {
    let db = demo_db().await;
    seed_rows(&db, 10).await;
    let opts = ServeOptions {
        header_timeout: header,
        idle_timeout: idle,
        ..ServeOptions::default()
    };
    let server = RunningServer::start(&db, opts).await;
    (db, server)
}

#[tokio::test]
async fn a_client_sending_its_request_head_slowly_is_closed_at_the_header_timeout() {
    let (_db, server) = server_with_timeouts(Duration::from_secs(1), Duration::from_secs(30)).await;

    // Slowloris: a request line, then one byte of a header every 100 ms, never the end.
    let mut slow = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    slow.write_all(b"GET /list_large/ HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let (mut reader, mut writer) = slow.into_split();
    let trickle = tokio::spawn(async move {
        while writer.write_all(b"a").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let closed = read_until_closed(&mut reader, Duration::from_secs(10)).await;
    trickle.abort();
    let (answer, elapsed) = closed.expect("the slow client was still connected after 10 s");
    assert_eq!(answer, "", "no answer to a request that never came");
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(5),
        "closed after {elapsed:?}, expected about the 1 s header timeout"
    );

    // A client that connects and sends nothing is closed at the header timeout too.
    let mut silent = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let (answer, elapsed) = read_until_closed(&mut silent, Duration::from_secs(10))
        .await
        .expect("a silent connection is closed");
    assert_eq!(answer, "", "nothing is sent to a client that sent nothing");
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(5),
        "{elapsed:?}"
    );

    // Normal clients are served as usual.
    assert_eq!(get_json(&server.url("/list_large/")).await.0, 200);
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_at_the_idle_timeout() {
    let (_db, server) =
        server_with_timeouts(Duration::from_secs(30), Duration::from_millis(500)).await;

    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (answer, elapsed) = read_until_closed(&mut tcp, Duration::from_secs(10))
        .await
        .expect("the idle connection is closed");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.ends_with(r#"{"status":"ok"}"#),
        "one answer, kept alive until the idle timeout: {answer}"
    );
    assert!(
        elapsed >= Duration::from_millis(400) && elapsed < Duration::from_secs(5),
        "closed after {elapsed:?}, expected about the 0.5 s idle timeout"
    );
}

#[tokio::test]
async fn connections_over_the_cap_get_503_at_once_and_the_server_recovers() {
    let db = demo_db().await;
    seed_rows(&db, 10).await;
    let opts = ServeOptions {
        max_connections: Some(20),
        header_timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(30),
        ..ServeOptions::default()
    };
    let server = RunningServer::start(&db, opts).await;

    // 20 idle sockets fill every slot.
    let mut idle = Vec::new();
    for _ in 0..20 {
        idle.push(tokio::net::TcpStream::connect(server.addr).await.unwrap());
    }
    // The server accepts in connection order: the next ones are over the cap.
    for _ in 0..5 {
        let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        tcp.write_all(b"GET /list_large/ HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let (answer, elapsed) = read_until_closed(&mut tcp, Duration::from_secs(5))
            .await
            .expect("a connection over the cap is answered and closed, not left hanging");
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        assert!(answer.contains("Connection: close"), "{answer}");
        let body: Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
        assert_eq!(
            body,
            json!({"error": "too many open connections; try again later"})
        );
        assert!(elapsed < Duration::from_secs(5));
    }

    // The slots come back as soon as the idle clients leave.
    drop(idle);
    let url = server.url("/list_large/");
    eventually("a normal request to be served again", || async {
        get_json(&url).await.0 == 200
    })
    .await;
}

#[tokio::test]
async fn shutdown_does_not_wait_for_idle_or_slow_clients() {
    let (_db, mut server) =
        server_with_timeouts(Duration::from_secs(60), Duration::from_secs(60)).await;
    let mut slow = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    slow.write_all(b"GET /list_large/ HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut kept_alive = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    kept_alive
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = kept_alive.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));

    server.signal_shutdown();
    tokio::time::timeout(Duration::from_secs(5), &mut server.task)
        .await
        .expect("the server stops without waiting for the idle and slow clients")
        .unwrap()
        .unwrap();
    assert!(
        read_until_closed(&mut slow, Duration::from_secs(1))
            .await
            .is_some()
    );
    assert!(
        read_until_closed(&mut kept_alive, Duration::from_secs(1))
            .await
            .is_some()
    );
}

#[tokio::test]
async fn the_root_lists_the_routes_and_each_one_is_served() {
    let db = demo_db().await;
    seed_rows(&db, 3).await;
    let server = RunningServer::start(&db, ServeOptions::default()).await;
    let (status, ctype, body) = get_json(&server.url("/")).await;
    assert_eq!(
        (status, ctype.as_str()),
        (200, "application/json"),
        "{body}"
    );
    let routes = body["routes"].as_array().unwrap();
    let listed: Vec<(&str, &str)> = routes
        .iter()
        .map(|r| (r["method"].as_str().unwrap(), r["path"].as_str().unwrap()))
        .collect();
    for route in [
        ("GET", "/list_large/"),
        ("GET", "/list_small/"),
        ("GET", "/lookup/"),
        ("POST", "/add_large/"),
        ("GET", "/healthz"),
        ("GET", "/"),
    ] {
        assert!(listed.contains(&route), "{route:?} in {listed:?}");
    }
    for r in routes {
        assert!(!r["description"].as_str().unwrap().is_empty(), "{r}");
    }
    // Every listed route is one the server answers (not 404 or 405).
    for (method, path) in listed {
        let url = server.url(&path.replace("/lookup/", "/lookup/?email=user1@example.com"));
        let status = match method {
            "POST" => http().post(&url).send().await.unwrap().status().as_u16(),
            _ => http().get(&url).send().await.unwrap().status().as_u16(),
        };
        assert!((200..300).contains(&status), "{method} {path}: {status}");
    }
}

/// A loopback port nothing listens on (bound, then released).
fn dead_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn a_server_whose_database_moved_follows_it_when_told_where() {
    let db = demo_db().await;
    seed_rows(&db, 3).await;
    // The target the server starts with names a port where nothing listens any more, as
    // after `pgcalm down` and `pgcalm up --port N`.
    let port = pgcalm_testkit::TestCluster::get().port();
    let stale_url = db
        .url()
        .replace(&format!(":{port}/"), &format!(":{}/", dead_port()));
    assert_ne!(stale_url, db.url());
    let stale = pgcalm_pg::Target::from_url(&stale_url).unwrap();
    let serve = |retarget: Option<pgcalm_demo::Retarget>| {
        let stale = stale.clone();
        async move {
            let server = Server::bind(
                &stale,
                ServeOptions {
                    port: 0,
                    retarget,
                    ..ServeOptions::default()
                },
            )
            .await
            .unwrap();
            let url = format!("http://{}/list_large/", server.local_addr());
            let task = tokio::spawn(server.run(std::future::pending()));
            (url, task)
        }
    };

    // Without a way to find it again, the server keeps knocking at the old port.
    let (url, task) = serve(None).await;
    for _ in 0..3 {
        assert_eq!(get_json(&url).await.0, 503);
    }
    task.abort();

    // With one, the first request that cannot connect looks the target up again.
    let asked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (count, moved) = (asked.clone(), db.target().clone());
    let retarget: pgcalm_demo::Retarget = Arc::new(move || {
        count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(moved.clone())
    });
    let (url, task) = serve(Some(retarget)).await;
    let (status, _, body) = get_json(&url).await;
    assert_eq!(
        (status, body["emails"].as_array().map(Vec::len)),
        (200, Some(3))
    );
    for _ in 0..5 {
        assert_eq!(get_json(&url).await.0, 200);
    }
    assert_eq!(
        asked.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "looked up once, when it could not connect"
    );
    task.abort();
}
