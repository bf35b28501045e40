//! The probe against a real axum server on loopback that can be made to hang, answer
//! errors, or be gone.
#![allow(unused_crate_dependencies)] // a test crate uses some of the dev-dependencies

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::routing::get;
use pgcalm_probe::{ErrorKind, Outcome, Probe, ProbeConfig, ProbeTarget, StopWhen};

#[derive(Default)]
struct App {
    hanging: AtomicBool,
    client_ports: Mutex<HashSet<u16>>,
}

/// An HTTP server on 127.0.0.1: `/ok` answers unless hanging, `/fail` 500, `/missing` 404.
async fn server() -> (String, Arc<App>) {
    let app = Arc::new(App::default());
    let router = Router::new()
        .route(
            "/ok",
            get(
                |State(app): State<Arc<App>>, ConnectInfo(peer): ConnectInfo<SocketAddr>| async move {
                    app.client_ports.lock().unwrap().insert(peer.port());
                    if app.hanging.load(Ordering::SeqCst) {
                        std::future::pending::<()>().await;
                    }
                    "emails"
                },
            ),
        )
        .route("/fail", get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") }))
        .with_state(app.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    (base, app)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

async fn probe(targets: &[String], interval_ms: u64, timeout_ms: u64) -> Probe {
    let targets = targets
        .iter()
        .map(|t| ProbeTarget::parse(t).unwrap())
        .collect();
    let mut config = ProbeConfig::new(targets);
    config.interval = Duration::from_millis(interval_ms);
    config.timeout = Duration::from_millis(timeout_ms);
    Probe::new(config).await.unwrap()
}

#[tokio::test]
async fn a_target_that_stops_answering_shows_timeouts_and_the_outage_span() {
    let (base, app) = server().await;
    let (interval, timeout) = (200u64, 500u64);
    let probe = probe(&[format!("api={base}/ok")], interval, timeout).await;
    let mut running = probe.spawn(StopWhen::after(Duration::from_millis(3_000)));

    tokio::time::sleep(Duration::from_millis(700)).await;
    app.hanging.store(true, Ordering::SeqCst);
    let hang_start = now_ms();
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    app.hanging.store(false, Ordering::SeqCst);
    let hang_end = now_ms();

    let mut first_failure_known = None;
    let mut streamed = 0;
    while let Some(s) = running.samples.recv().await {
        streamed += 1;
        if s.outcome == Outcome::Timeout && first_failure_known.is_none() {
            first_failure_known = Some(s.ended_at_ms());
        }
    }
    let report = running.finish().await;
    let t = &report.targets[0];
    assert_eq!(t.requests, streamed, "every sample is streamed");
    assert_eq!(t.errors, 0, "{t:?}");
    // Slack for a busy 2-core machine on top of the bound under test.
    let slack = 250;
    let shown = first_failure_known.expect("a timeout was recorded");
    assert!(
        shown <= hang_start + timeout + interval + slack,
        "the first ✗ came {} ms after the server stopped answering",
        shown - hang_start
    );
    assert_eq!(t.outages.len(), 1, "{:?}", t.outages);
    let outage = t.longest_outage.unwrap();
    assert!(outage.recovered);
    assert!(
        outage.start_ms + slack >= hang_start && outage.start_ms <= hang_start + interval + slack,
        "outage starts {} ms from the hang",
        outage.start_ms as i64 - hang_start as i64
    );
    assert!(
        outage.end_ms + slack >= hang_end && outage.end_ms <= hang_end + interval + slack,
        "outage ends {} ms from the recovery",
        outage.end_ms as i64 - hang_end as i64
    );
    // Hung requests do not hold the schedule back: one request per interval while hung,
    // although each waited out a timeout longer than the interval.
    assert!(outage.failed_requests >= 1_200 / interval - 1, "{outage:?}");
    assert_eq!(t.timeouts, outage.failed_requests);
    assert!(t.latency.is_some());
}

#[tokio::test]
async fn connect_refused_is_an_error_not_a_timeout() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let probe = probe(&[format!("gone=http://127.0.0.1:{port}/")], 50, 1_000).await;
    let mut details = Vec::new();
    let report = probe
        .run(StopWhen::count(3), |s| details.push(s.detail.clone()))
        .await;
    let t = &report.targets[0];
    assert_eq!(
        (t.requests, t.ok, t.timeouts, t.errors),
        (3, 0, 0, 3),
        "{t:?}"
    );
    assert_eq!(t.errors_by_kind.get("connect_refused"), Some(&3));
    let outage = t.longest_outage.unwrap();
    assert!(!outage.recovered);
    assert_eq!(outage.failed_requests, 3);
    assert!(t.latency.is_none());
    // The target names the URL; the detail says what went wrong without repeating it.
    for detail in &details {
        let detail = detail.as_deref().unwrap();
        assert!(detail.starts_with("error sending request"), "{detail}");
        assert!(!detail.contains(&format!(":{port}/")), "{detail}");
    }
}

#[tokio::test]
async fn http_errors_by_kind_and_fresh_connections_by_default() {
    let (base, app) = server().await;
    let targets = [
        format!("ok={base}/ok"),
        format!("fail={base}/fail"),
        format!("missing=POST {base}/missing"),
    ];
    let mut lines = Vec::new();
    let report = probe(&targets, 30, 1_000)
        .await
        .run(StopWhen::count(4), |s| lines.push(s.clone()))
        .await;
    assert_eq!(lines.len(), 12);
    let [ok, fail, missing] = &report.targets[..] else {
        panic!("three targets")
    };
    assert_eq!((ok.ok, ok.errors), (4, 0));
    assert_eq!(fail.errors_by_kind.get("http_5xx"), Some(&4), "{fail:?}");
    assert_eq!(
        missing.errors_by_kind.get("http_4xx"),
        Some(&4),
        "{missing:?}"
    );
    assert!(
        lines
            .iter()
            .any(|s| s.error == Some(ErrorKind::Http4xx) && s.status == Some(404))
    );
    // Fresh connection per request: four requests came from four client ports.
    assert_eq!(app.client_ports.lock().unwrap().len(), 4);

    app.client_ports.lock().unwrap().clear();
    let mut config = ProbeConfig::new(vec![ProbeTarget::parse(&format!("{base}/ok")).unwrap()]);
    config.interval = Duration::from_millis(30);
    config.keep_alive = true;
    let report = Probe::new(config)
        .await
        .unwrap()
        .run(StopWhen::count(4), |_| {})
        .await;
    assert_eq!(report.targets[0].ok, 4);
    assert_eq!(
        app.client_ports.lock().unwrap().len(),
        1,
        "one kept-alive connection"
    );
}

#[tokio::test]
async fn cancel_ends_the_run_without_waiting_for_hung_requests() {
    let (base, app) = server().await;
    app.hanging.store(true, Ordering::SeqCst);
    let probe = probe(&[format!("{base}/ok")], 100, 30_000).await;
    let running = probe.spawn(StopWhen::default());
    tokio::time::sleep(Duration::from_millis(250)).await;
    let report = tokio::time::timeout(Duration::from_secs(10), running.stop())
        .await
        .expect("cancel does not wait out the 30 s timeout");
    assert!(report.cancelled);
    assert_eq!(
        report.targets[0].requests, 0,
        "hung requests are dropped, not counted"
    );
}

#[tokio::test]
async fn samples_are_written_as_csv_or_json_lines() {
    let (base, _app) = server().await;
    let dir = tempfile::tempdir().unwrap();
    for name in ["s.csv", "s.jsonl"] {
        let path = dir.path().join(name);
        let mut writer = pgcalm_probe::SampleWriter::create(&path).unwrap();
        probe(&[format!("list={base}/ok")], 20, 1_000)
            .await
            .run(StopWhen::count(2), |s| writer.write(s).unwrap())
            .await;
        writer.finish().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        if name.ends_with("csv") {
            assert_eq!(lines[0], pgcalm_probe::CSV_HEADER);
            assert_eq!(lines.len(), 3);
            assert!(
                lines[1].starts_with("list,0,") && lines[1].contains(",ok,,200,"),
                "{}",
                lines[1]
            );
        } else {
            assert_eq!(lines.len(), 2);
            let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
            assert_eq!(v["outcome"], "ok");
            assert_eq!(v["target"], "list");
        }
    }
}

#[tokio::test]
async fn a_name_is_resolved_once_checked_and_the_probe_connects_to_what_was_checked() {
    let (base, app) = server().await;
    let port = base.rsplit(':').next().unwrap();
    let probe = probe(&[format!("byname=http://localhost:{port}/ok")], 20, 1_000).await;
    let report = probe.run(StopWhen::count(3), |_| {}).await;
    assert_eq!(report.targets[0].ok, 3, "{:?}", report.targets[0]);
    assert_eq!(app.client_ports.lock().unwrap().len(), 3);

    // A name that does not resolve is refused before any request, naming the host.
    let config = ProbeConfig::new(vec![
        ProbeTarget::parse(&format!("nowhere=http://nowhere.invalid:{port}/ok")).unwrap(),
    ]);
    let e = Probe::new(config).await.unwrap_err().to_string();
    assert!(
        e.starts_with("target `nowhere`: cannot resolve nowhere.invalid"),
        "{e}"
    );
}
