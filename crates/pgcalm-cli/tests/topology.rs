//! `pgcalm up --replica --pooler`, `status`, `url`, `down` with the real binary: a
//! streaming replica and PgBouncer started by pgcalm, each test in its own working
//! directory (its own cluster).
#![allow(unused_crate_dependencies)] // a test crate uses some of the dev-dependencies

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{fails, ok, pgcalm_in as pgcalm};
use pgcalm_pg::{ConnectFailure, Target};

/// Stops everything even when the test fails half-way.
struct Down<'a>(&'a Path);
impl Drop for Down<'_> {
    fn drop(&mut self) {
        let _ = pgcalm(self.0).args(["down", "--volumes"]).output();
    }
}

/// Whether a process runs (a zombie waiting to be reaped does not).
fn alive(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, s)| !s.trim_start().starts_with('Z'))
    })
}

/// Waits until `pid` is gone, failing after 15 s.
fn gone(what: &str, pid: u64) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while alive(pid) {
        assert!(Instant::now() < deadline, "{what} (pid {pid}) still runs");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn status_json(dir: &Path) -> serde_json::Value {
    let out = pgcalm(dir)
        .args(["status", "--format", "json"])
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap()
}

fn pid_of(json: &serde_json::Value, part: &str) -> u64 {
    let pid = match part {
        "primary" => &json["pid"],
        part => &json[part]["pid"],
    };
    pid.as_u64()
        .unwrap_or_else(|| panic!("{part} pid in {json:#}"))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The first value `sql` returns over the simple query protocol (what works through
/// transaction pooling), or the error.
async fn first_value(url: &str, sql: &str) -> Result<String, pgcalm_pg::PgError> {
    let client = Target::from_url(url)?.connect().await?;
    let rows = client
        .simple_query(sql)
        .await
        .map_err(pgcalm_pg::PgError::query(sql))?;
    Ok(rows
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
            _ => None,
        })
        .unwrap_or_default())
}

#[test]
fn up_replica_pooler_then_status_down_and_up_again() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let _down = Down(dir);

    let up = ok(pgcalm(dir).args(["up", "--replica", "--pooler"]));
    for expected in [
        "Created a streaming replica in",
        "slot pgcalm_replica, role pgcalm_replication",
        "Started the replica on 127.0.0.1:",
        "streaming from the primary",
        "Started PgBouncer on 127.0.0.1:",
        "pool_mode transaction, default_pool_size 20",
        "Replica URL:    postgresql://postgres:****@127.0.0.1:",
        "Pooler URL:     postgresql://postgres:****@127.0.0.1:",
    ] {
        assert!(up.contains(expected), "{expected:?} in:\n{up}");
    }

    let status = ok(pgcalm(dir).arg("status"));
    let filters = vec![
        (r"pid \d+", "pid [pid]"),
        (r"127\.0\.0\.1:\d+", "127.0.0.1:[port]"),
        (r"lag \d+ \w+ / [\d.]+ s", "lag [bytes] / [secs] s"),
        (r"Version:  PostgreSQL .*", "Version:  PostgreSQL [version]"),
        (r"PgBouncer 1\.\d+\.\d+", "PgBouncer [version]"),
        (
            r"clients \d+ active, \d+ waiting; servers \d+ active, \d+ idle",
            "[clients and servers]",
        ),
        (r"/\S*/\.pgcalm", "[dir]/.pgcalm"),
    ];
    insta::with_settings!({filters => filters}, {
        insta::assert_snapshot!("status_with_replica_and_pooler", status);
    });
    let json = status_json(dir);
    assert_eq!(json["replica"]["state"], "streaming", "{json:#}");
    assert_eq!(json["replica"]["role"], "standby");
    assert!(json["replica"]["lag_bytes"].is_i64(), "{json:#}");
    assert!(json["replica"]["lag_seconds"].is_f64(), "{json:#}");
    assert_eq!(json["pooler"]["pool_mode"], "transaction");
    assert_eq!(json["pooler"]["pool_size"], 20);
    let pids = ["primary", "replica", "pooler"].map(|part| pid_of(&json, part));

    // A write on the primary appears on the replica; the pooler needs the password.
    ok(pgcalm(dir).args([
        "psql",
        "-c",
        "CREATE TABLE seen AS SELECT 'on the replica'::text AS what",
    ]));
    let replica_url = ok(pgcalm(dir).args(["url", "--replica"]))
        .trim()
        .to_string();
    let pooler_url = ok(pgcalm(dir).args(["url", "--pooler"])).trim().to_string();
    let rt = runtime();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match rt.block_on(first_value(&replica_url, "SELECT what FROM seen")) {
            Ok(what) => {
                assert_eq!(what, "on the replica");
                break;
            }
            Err(e) => assert!(Instant::now() < deadline, "not on the replica: {e}"),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let through = rt
        .block_on(first_value(&pooler_url, "SELECT what FROM seen"))
        .unwrap();
    assert_eq!(through, "on the replica");
    let port = json["pooler"]["port"].as_u64().unwrap();
    let no_password = format!("postgresql://postgres@127.0.0.1:{port}/risky_migrations");
    let err = rt
        .block_on(first_value(&no_password, "SELECT 1"))
        .unwrap_err();
    assert_eq!(
        err.connect_failure(),
        Some(ConnectFailure::AuthFailed),
        "{err}"
    );

    // A plain `up` finds all three running.
    let again = ok(pgcalm(dir).arg("up"));
    assert!(again.contains("The replica is already running"), "{again}");
    assert!(again.contains("PgBouncer is already running"), "{again}");

    // `down` stops all three, and no process is left.
    let down = ok(pgcalm(dir).arg("down"));
    for (expected, pid) in [
        ("Stopped PgBouncer (pid", pids[2]),
        ("Stopped the replica (pid", pids[1]),
        ("Stopped PostgreSQL (pid", pids[0]),
    ] {
        assert!(down.contains(&format!("{expected} {pid})")), "{down}");
        gone(expected, pid);
    }
    let stopped = pgcalm(dir).arg("status").output().unwrap();
    assert_eq!(stopped.status.code(), Some(3));
    let text = String::from_utf8_lossy(&stopped.stdout);
    assert!(
        text.contains("Replica:  not running on 127.0.0.1:"),
        "{text}"
    );
    assert!(
        text.contains("Pooler:   not running on 127.0.0.1:"),
        "{text}"
    );

    // The choice is remembered: a plain `up` starts the replica and the pooler again.
    let restarted = ok(pgcalm(dir).arg("up"));
    assert!(restarted.contains("Started the replica on"), "{restarted}");
    assert!(restarted.contains("Started PgBouncer on"), "{restarted}");
    assert!(
        !restarted.contains("Created a streaming replica"),
        "{restarted}"
    );
    assert_eq!(status_json(dir)["replica"]["state"], "streaming");

    // --no-pooler removes the pooler, and only it.
    let pooler_pid = pid_of(&status_json(dir), "pooler");
    let removed = ok(pgcalm(dir).args(["up", "--no-pooler"]));
    assert!(
        removed.contains("Removed PgBouncer: stopped it, deleted"),
        "{removed}"
    );
    gone("PgBouncer after --no-pooler", pooler_pid);
    assert!(!dir.join(".pgcalm/pooler").exists());
    let json = status_json(dir);
    assert!(json["pooler"].is_null(), "{json:#}");
    assert_eq!(json["replica"]["state"], "streaming");
    let err = fails(pgcalm(dir).args(["url", "--pooler"]));
    assert!(err.contains("pgcalm up --pooler"), "{err}");

    // `down --volumes` stops and deletes everything pgcalm made.
    let json = status_json(dir);
    let (primary, replica) = (pid_of(&json, "primary"), pid_of(&json, "replica"));
    let deleted = ok(pgcalm(dir).args(["down", "--volumes"]));
    assert!(deleted.contains("Stopped the replica"), "{deleted}");
    assert!(deleted.contains("Deleted"), "{deleted}");
    gone("the replica", replica);
    gone("the primary", primary);
    assert!(!dir.join(".pgcalm").exists());
}

#[test]
fn a_slot_left_by_a_deleted_replica_is_reported_then_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let _down = Down(dir);
    ok(pgcalm(dir).args(["up", "--replica"]));

    // The replica dies and its directory is deleted by hand; its slot keeps WAL.
    let replica = pid_of(&status_json(dir), "replica");
    // SAFETY: SIGQUIT (immediate shutdown) to the replica this test started.
    assert_eq!(unsafe { libc_kill(replica as i32, 3) }, 0);
    gone("the killed replica", replica);
    std::fs::remove_dir_all(dir.join(".pgcalm/replica")).unwrap();
    let status = ok(pgcalm(dir).arg("status"));
    assert!(status.contains("Replica:  not created"), "{status}");
    assert!(
        status.contains("Slot:     pgcalm_replica is inactive and keeps")
            && status.contains("left by a deleted replica; `pgcalm up` drops it"),
        "{status}"
    );

    let up = ok(pgcalm(dir).arg("up"));
    assert!(
        up.contains("Dropped replication slot pgcalm_replica left by a deleted replica (it kept"),
        "{up}"
    );
    assert!(up.contains("Created a streaming replica"), "{up}");
    let json = status_json(dir);
    assert_eq!(json["replica"]["state"], "streaming", "{json:#}");
    assert_eq!(json["inactive_slots"], serde_json::json!([]));

    // --no-replica removes the replica with its slot, role and pg_hba.conf rule.
    let removed = ok(pgcalm(dir).args(["up", "--no-replica"]));
    for expected in [
        "Stopped the replica (pid",
        "Deleted the replica",
        "Dropped the replica's replication slot pgcalm_replica",
        "Removed the replica's role pgcalm_replication and its pg_hba.conf replication rule",
    ] {
        assert!(removed.contains(expected), "{expected:?} in:\n{removed}");
    }
    let hba = std::fs::read_to_string(dir.join(".pgcalm/data/pg_hba.conf")).unwrap();
    assert!(!hba.contains("pgcalm_replication"), "{hba}");
    assert!(status_json(dir)["replica"].is_null());
}

#[test]
fn a_missing_pgbouncer_names_its_package_and_starts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let _down = Down(dir.path());
    let err = fails(
        pgcalm(dir.path())
            .env("PGCALM_PGBOUNCER", "/nonexistent/pgbouncer")
            .args(["up", "--pooler"]),
    );
    insta::assert_snapshot!(err, @r"
    error: PgBouncer (pgbouncer) not found; searched: /nonexistent/pgbouncer
      fix: install the Debian package pgbouncer (`./dev.sh setup` installs it, or `apt-get install -y pgbouncer`), or point PGCALM_PGBOUNCER at the pgbouncer binary
    ");
    assert!(!dir.path().join(".pgcalm").exists(), "nothing was started");
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}
