//! `pgcalm up / status / down / logs / psql` with the real binary, each test in its own
//! working directory and therefore with its own embedded cluster.
#![allow(unused_crate_dependencies)] // a test crate uses some of the dev-dependencies

mod common;

use std::path::Path;

use common::{fails, ok, pgcalm_in as pgcalm, stderr, stdout};

/// Stops the cluster even when the test fails half-way.
struct Down<'a>(&'a Path);
impl Drop for Down<'_> {
    fn drop(&mut self) {
        let _ = pgcalm(self.0).args(["down", "--volumes"]).output();
    }
}

#[test]
fn up_status_down_cycle() {
    let dir = tempfile::tempdir().unwrap();
    let _down = Down(dir.path());
    let first = ok(pgcalm(dir.path()).arg("up"));
    assert!(first.contains("Created a PostgreSQL"), "{first}");
    assert!(
        first.contains("Database risky_migrations created"),
        "{first}"
    );
    let port = std::fs::read_to_string(dir.path().join(".pgcalm/cluster.state")).unwrap();
    let port: u16 = port.trim().strip_prefix("port=").unwrap().parse().unwrap();

    let second = ok(pgcalm(dir.path()).arg("up"));
    assert!(second.contains("is already running"), "{second}");
    assert!(
        second.contains("Database risky_migrations exists"),
        "{second}"
    );

    let status = ok(pgcalm(dir.path()).arg("status"));
    assert!(status.contains("State:    running (pid"), "{status}");
    assert!(status.contains("Version:  PostgreSQL 1"), "{status}");
    assert!(
        status.contains(&format!(
            "postgresql://postgres:****@127.0.0.1:{port}/risky_migrations"
        )),
        "{status}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&ok(pgcalm(dir.path()).args(["status", "--format", "json"]))).unwrap();
    assert_eq!(json["running"], true);
    assert_eq!(json["server"], "embedded");

    let logs = ok(pgcalm(dir.path()).args(["logs", "-n", "20"]));
    assert!(logs.contains("ready to accept connections"), "{logs}");
    let one = ok(pgcalm(dir.path()).args(["psql", "-Atc", "SELECT current_database()"]));
    assert_eq!(one.trim(), "risky_migrations");

    let down = ok(pgcalm(dir.path()).arg("down"));
    assert!(down.contains("Stopped PostgreSQL"), "{down}");
    let stopped = pgcalm(dir.path()).arg("status").output().unwrap();
    assert_eq!(stopped.status.code(), Some(3), "status of a stopped server");
    let status = stdout(&stopped);
    assert!(status.contains("State:    not running"), "{status}");
    assert!(ok(pgcalm(dir.path()).arg("down")).contains("is not running"));
    let err = fails(pgcalm(dir.path()).args(["inspect", "large_email"]));
    assert!(
        err.contains("not running") && err.contains("pgcalm up"),
        "{err}"
    );

    // Restart keeps the remembered port, then --volumes deletes everything.
    let again = ok(pgcalm(dir.path()).arg("up"));
    assert!(again.contains(&format!("127.0.0.1:{port}")), "{again}");
    let gone = ok(pgcalm(dir.path()).args(["down", "--volumes"]));
    assert!(
        gone.contains("Stopped PostgreSQL") && gone.contains("Deleted"),
        "{gone}"
    );
    assert!(!dir.path().join(".pgcalm").exists());
}

#[test]
fn up_recovers_after_kill_9_without_losing_data() {
    let dir = tempfile::tempdir().unwrap();
    let _down = Down(dir.path());
    ok(pgcalm(dir.path()).arg("up"));
    ok(pgcalm(dir.path()).args([
        "psql",
        "-c",
        "CREATE TABLE kept AS SELECT g FROM generate_series(1, 1000) g",
    ]));
    let pid_file = dir.path().join(".pgcalm/data/postmaster.pid");
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    // SAFETY: killing the postmaster this test started.
    assert_eq!(unsafe { libc_kill(pid, 9) }, 0);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(pid_file.exists(), "kill -9 leaves postmaster.pid behind");

    let out = ok(pgcalm(dir.path()).arg("up"));
    assert!(out.contains("Recovered from an unclean shutdown"), "{out}");
    assert!(out.contains(&format!("pid {pid} was not running")), "{out}");
    let count = ok(pgcalm(dir.path()).args(["psql", "-Atc", "SELECT count(*) FROM kept"]));
    assert_eq!(count.trim(), "1000");
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

#[test]
fn taken_port_is_refused_and_not_remembered() {
    let dir = tempfile::tempdir().unwrap();
    let _down = Down(dir.path());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let err = fails(pgcalm(dir.path()).args(["up", "--port", &port.to_string()]));
    assert!(
        err.contains(&format!("port {port} on 127.0.0.1 is already in use")),
        "{err}"
    );
    assert!(err.contains("pgcalm up --port"), "{err}");
    drop(listener);
    // The failed port was not remembered: a plain `up` picks a free one.
    let out = ok(pgcalm(dir.path()).arg("up"));
    assert!(out.contains("Started PostgreSQL"), "{out}");
}

#[test]
fn data_directory_of_another_major_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _down = Down(dir.path());
    ok(pgcalm(dir.path()).arg("up"));
    ok(pgcalm(dir.path()).arg("down"));
    let version_file = dir.path().join(".pgcalm/data/PG_VERSION");
    let real = std::fs::read_to_string(&version_file).unwrap();
    std::fs::write(&version_file, "99\n").unwrap();
    let err = fails(pgcalm(dir.path()).arg("up"));
    assert!(err.contains("created by PostgreSQL 99"), "{err}");
    assert!(
        err.contains("pg_upgrade") && err.contains("pgcalm down --volumes"),
        "{err}"
    );
    // Nothing was lost: restoring the file makes the cluster usable again.
    std::fs::write(&version_file, real).unwrap();
    ok(pgcalm(dir.path()).arg("up"));
}

#[test]
fn missing_binaries_name_the_package() {
    let dir = tempfile::tempdir().unwrap();
    let err = fails(
        pgcalm(dir.path())
            .arg("up")
            .env("PG_BIN", "/nonexistent/bin"),
    );
    assert!(
        err.contains("PostgreSQL server binaries (initdb, pg_ctl) not found"),
        "{err}"
    );
    assert!(err.contains("apt-get install -y postgresql"), "{err}");
    assert!(
        !dir.path().join(".pgcalm/data").exists(),
        "nothing half-created"
    );
}

#[test]
fn unreachable_database_url_names_host_but_never_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://app:hunter2secret@127.0.0.1:{closed}/shop");
    let err = fails(pgcalm(dir.path()).arg("up").env("DATABASE_URL", &url));
    assert!(err.contains(&format!("127.0.0.1:{closed}")), "{err}");
    assert!(!err.contains("hunter2secret"), "{err}");
    let out = pgcalm(dir.path())
        .arg("status")
        .env("DATABASE_URL", &url)
        .output()
        .unwrap();
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert!(all.contains("postgresql://app:****@127.0.0.1"), "{all}");
    assert!(!all.contains("hunter2secret"), "{all}");
    assert!(
        !dir.path().join(".pgcalm").exists(),
        "DATABASE_URL never creates a cluster"
    );
}

#[test]
fn logs_follow_prints_new_server_lines_as_they_come() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let _down = Down(dir.path());
    ok(pgcalm(dir.path()).arg("up"));
    let mut follow = std::process::Command::new(assert_cmd::cargo::cargo_bin("pgcalm"))
        .current_dir(dir.path())
        .args(["logs", "--follow", "-n", "0"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lines = std::io::BufReader::new(follow.stdout.take().unwrap()).lines();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    std::thread::sleep(std::time::Duration::from_millis(500));
    ok(pgcalm(dir.path()).args([
        "psql",
        "-c",
        "DO $$ BEGIN RAISE LOG 'follow-marker-%', 42; END $$",
    ]));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut seen = false;
    while !seen && std::time::Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(std::time::Duration::from_millis(200)) {
            seen = line.contains("follow-marker-42");
        }
    }
    follow.kill().unwrap();
    follow.wait().unwrap();
    assert!(seen, "the new log line reached `pgcalm logs --follow`");
}

#[test]
fn a_closed_pipe_ends_reporting_commands_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let bin = assert_cmd::cargo::cargo_bin("pgcalm");
    // The reader (`true`) is gone before pgcalm starts, so its first write meets a
    // closed pipe.
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{{ sleep 0.3; '{}' status; }} | true",
            bin.display()
        ))
        .current_dir(dir.path())
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(!err.contains("panicked"), "{err}");
}
