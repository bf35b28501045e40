//! The demo app follows `up` / `down`, with the real binary on a project's embedded
//! server: `serve --detach` (and `up --serve`) run it in the background with its pid and
//! log under `.pgcalm/serve/`, `status` shows it, `down` stops it; a running serve
//! reconnects after `down` / `up` even when the port changed; its request log is one
//! runserver-like line per request, without colour codes when not on a terminal; `GET /`
//! lists the routes.
#![allow(unused_crate_dependencies)] // a test crate uses some of the dev-dependencies

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{fails, ok, pgcalm, repo_migrations};

/// A project on the repository's migrations whose `up` applies demoapp 0001.
fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("pgcalm.toml"),
        format!(
            "[migrations]\ndir = {:?}\n\n[up]\nmigrate_to = [\"demoapp:0001\"]\n",
            repo_migrations().canonicalize().unwrap()
        ),
    )
    .unwrap();
    dir
}

fn pgcalm_at(dir: &Path) -> assert_cmd::Command {
    let mut cmd = pgcalm();
    cmd.current_dir(dir).env_remove("PGCALM_SERVE_PORT");
    cmd
}

/// Stops everything the test started in `dir`, even when it fails half-way.
struct Down(PathBuf);
impl Drop for Down {
    fn drop(&mut self) {
        let _ = pgcalm_at(&self.0).args(["down", "--volumes"]).output();
    }
}

/// A GET: the status code and the body.
fn http_get(addr: &str, path: &str) -> (u16, String) {
    let (status, body) = common::http_get(addr, path);
    (status.split(' ').nth(1).unwrap().parse().unwrap(), body)
}

/// Whether a process with this pid runs (a zombie does not: it has exited, and only
/// waits for a parent to reap it, which an init that reaps nothing never does).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let state = stat.rsplit_once(") ")?.1.chars().next()?;
            Some(state != 'Z' && state != 'X')
        })
        .unwrap_or(false)
}

/// `http://127.0.0.1:PORT` in `text` -> `127.0.0.1:PORT`.
fn address_in(text: &str) -> String {
    text.split("http://")
        .nth(1)
        .and_then(|rest| rest.split(['/', ' ', ')']).next())
        .unwrap_or_else(|| panic!("no URL in: {text}"))
        .to_string()
}

/// `(pid N)` in `text`.
fn pid_in(text: &str) -> u32 {
    text.split("(pid ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no pid in: {text}"))
}

/// `[02/Dec/2026 10:00:00] "GET /path HTTP/1.1" 200 12ms`: Django's runserver line with
/// the time taken instead of the size.
fn is_request_line(line: &str, method: &str, path: &str, status: u16) -> bool {
    let Some(rest) = line.strip_prefix('[') else {
        return false;
    };
    let Some((when, rest)) = rest.split_once("] ") else {
        return false;
    };
    let date_ok = when.len() == 20
        && when.chars().enumerate().all(|(i, c)| match i {
            2 | 6 => c == '/',
            3 => c.is_ascii_uppercase(),
            4 | 5 => c.is_ascii_lowercase(),
            11 => c == ' ',
            14 | 17 => c == ':',
            _ => c.is_ascii_digit(),
        });
    let Some(rest) = rest.strip_prefix(&format!("\"{method} {path} HTTP/1.1\" {status} ")) else {
        return false;
    };
    // A failed request's line goes on with `: <the error>`.
    let ms = rest.split([' ', ':']).next().unwrap_or_default();
    let ms_ok = ms
        .strip_suffix("ms")
        .is_some_and(|n| !n.is_empty() && n.parse::<f64>().is_ok());
    date_ok && ms_ok
}

#[test]
fn serve_detach_runs_in_the_background_status_shows_it_and_down_stops_it() {
    let dir = project();
    let root = dir.path();
    let _down = Down(root.to_path_buf());
    ok(pgcalm_at(root).arg("up"));

    let started = ok(pgcalm_at(root).args(["serve", "--detach", "--port", "0"]));
    let pid = pid_in(&started);
    let addr = address_in(&started);
    let log = root.join(".pgcalm/serve/serve.log");
    assert!(
        started.contains(&log.display().to_string()) || started.contains(".pgcalm/serve/serve.log"),
        "names its log: {started}"
    );
    assert!(alive(pid), "{started}");

    let status = ok(pgcalm_at(root).arg("status"));
    let app = status
        .lines()
        .find(|l| l.starts_with("App:"))
        .unwrap_or_else(|| panic!("no App: line in {status}"));
    assert!(
        app.contains("running") && app.contains(&format!("pid {pid}")) && app.contains(&addr),
        "{status}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&ok(pgcalm_at(root).args(["status", "--format", "json"]))).unwrap();
    assert_eq!(json["app"]["pid"], pid);
    assert_eq!(json["app"]["alive"], true);

    let (code, body) = http_get(&addr, "/list_large/");
    assert_eq!(code, 200, "{body}");
    // `GET /` lists the routes.
    let (code, body) = http_get(&addr, "/");
    assert_eq!(code, 200, "{body}");
    let routes: serde_json::Value = serde_json::from_str(&body).unwrap();
    let listed: Vec<String> = routes["routes"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r["method"].as_str().unwrap(),
                r["path"].as_str().unwrap()
            )
        })
        .collect();
    for route in [
        "GET /list_large/",
        "GET /list_small/",
        "GET /lookup/",
        "POST /add_large/",
        "GET /healthz",
    ] {
        assert!(listed.iter().any(|r| r == route), "{route} in {listed:?}");
    }

    // A second one is not started.
    let again = ok(pgcalm_at(root).args(["serve", "--detach"]));
    assert!(
        again.contains("already running") && again.contains(&format!("pid {pid}")),
        "{again}"
    );

    // The log: one line per request, no colour codes (it is a file).
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains('\u{1b}'), "ESC in {text}");
    assert!(
        text.lines()
            .any(|l| is_request_line(l, "GET", "/list_large/", 200)),
        "{text}"
    );

    let down = ok(pgcalm_at(root).arg("down"));
    assert!(
        down.contains(&format!("Stopped the demo app (pid {pid})")),
        "{down}"
    );
    assert!(!alive(pid), "pid {pid} still there after down");
    let status = common::stdout(&pgcalm_at(root).arg("status").output().unwrap());
    assert!(!status.contains(&format!("pid {pid}")), "{status}");

    // `up --serve` brings both back.
    // PGCALM_SERVE_PORT reaches the background serve: a free port, not the default 8001.
    let up = ok(pgcalm_at(root)
        .env("PGCALM_SERVE_PORT", "0")
        .args(["up", "--serve"]));
    let second = pid_in(up.lines().find(|l| l.contains("demo app")).unwrap_or(&up));
    assert!(alive(second), "{up}");
    let gone = ok(pgcalm_at(root).args(["down", "--volumes"]));
    assert!(gone.contains(&format!("(pid {second})")), "{gone}");
    assert!(!alive(second));
    assert!(
        !root.join(".pgcalm").exists(),
        "down --volumes deletes the app's log too"
    );
}

/// A free loopback port (bound, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The child's stderr lines, collected on a thread.
fn collect_lines(stream: impl Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    rx
}

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_running_serve_reconnects_after_down_and_up_on_another_port() {
    let dir = project();
    let root = dir.path();
    let _down = Down(root.to_path_buf());
    ok(pgcalm_at(root).arg("up"));

    // A serve in the foreground, its output piped (not a terminal).
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("pgcalm"))
        .current_dir(root)
        .env_remove("DATABASE_URL")
        .env_remove("PGCALM_LOG")
        .args(["serve", "--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let log = collect_lines(child.stderr.take().unwrap());
    let serve = Kill(child);
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let addr = address_in(&first);

    assert_eq!(http_get(&addr, "/list_large/").0, 200);
    ok(pgcalm_at(root).arg("down"));
    let (code, body) = http_get(&addr, "/list_large/");
    assert_eq!(code, 503, "{body}");

    let port = free_port();
    let up = ok(pgcalm_at(root).args(["up", "--port", &port.to_string()]));
    assert!(up.contains(&format!("127.0.0.1:{port}")), "{up}");
    // The server notices on the next failed connection: no request after the first may
    // fail once the cluster answers on its new port.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = (0, String::new());
    while Instant::now() < deadline {
        last = http_get(&addr, "/list_large/");
        if last.0 == 200 {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        last.0, 200,
        "still {} after up on port {port}: {}",
        last.0, last.1
    );
    assert_eq!(http_get(&addr, "/healthz").0, 200);
    let mut serve = serve;
    assert!(
        serve.0.try_wait().unwrap().is_none(),
        "the same serve process answers"
    );

    // Stop it and read its log: runserver lines, no colour codes, no driver internals.
    // SAFETY: signalling the child this test started.
    unsafe { libc::kill(serve.0.id() as i32, libc::SIGTERM) };
    serve.0.wait().unwrap();
    let lines: Vec<String> = log.iter().collect();
    let text = lines.join("\n");
    assert!(!text.contains('\u{1b}'), "ESC in the piped log:\n{text}");
    assert!(
        lines
            .iter()
            .any(|l| is_request_line(l, "GET", "/list_large/", 200)),
        "{text}"
    );
    let refused = lines
        .iter()
        .find(|l| is_request_line(l, "GET", "/list_large/", 503))
        .unwrap_or_else(|| panic!("no 503 line:\n{text}"));
    assert!(
        refused.contains("Connection refused"),
        "the error behind it: {refused}"
    );
    for line in &lines {
        assert!(
            !line.contains("WARN")
                && !line.contains("tokio_postgres")
                && !line.contains("deadpool"),
            "driver internals in the log: {line}\n{text}"
        );
    }
}

#[test]
fn serve_detach_outside_a_project_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let err = fails(pgcalm_at(dir.path()).args(["serve", "--detach"]));
    assert!(err.contains("pgcalm init"), "{err}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
