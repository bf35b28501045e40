//! `pgcalm up` / `status` with DATABASE_URL: use that server, create the database if
//! missing, never start a cluster.
#![allow(unused_crate_dependencies)] // a test crate uses some of the dev-dependencies

mod common;

use common::{fails, ok, pgcalm, pgcalm_in, repo_migrations};
use pgcalm_testkit::{TestCluster, TestDb};

#[tokio::test]
async fn up_with_database_url_creates_the_missing_database_only() {
    let db = TestDb::new().await;
    let fresh = db.target().with_dbname(&format!("{}_fresh", db.name()));
    let fresh_url = TestCluster::get().url(fresh.dbname());
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        ok(pgcalm_in(dir.path())
            .env("DATABASE_URL", &fresh_url)
            .env("PGCALM_MIGRATIONS_DIR", repo_migrations())
            .args(args))
    };
    let first = run(&["up"]);
    assert!(
        first.contains(&format!("Database {} created", fresh.dbname())),
        "{first}"
    );
    assert!(first.contains("external"), "{first}");
    let second = run(&["up"]);
    assert!(
        second.contains(&format!("Database {} exists", fresh.dbname())),
        "{second}"
    );
    let status = run(&["status"]);
    assert!(status.contains("Server:   external"), "{status}");
    assert!(
        status.contains("Migrations: demoapp at zero (0/2 applied; next: 0001_initial)"),
        "{status}"
    );
    assert!(status.contains("State:    reachable"), "{status}");
    assert!(
        !dir.path().join(".pgcalm").exists(),
        "no embedded cluster with DATABASE_URL"
    );
    let err = fails(
        pgcalm_in(dir.path())
            .env("DATABASE_URL", &fresh_url)
            .arg("down"),
    );
    assert!(err.contains("only stops the embedded one"), "{err}");
}

#[tokio::test]
async fn a_closed_stdout_does_not_stop_a_migration_half_way() {
    let db = TestDb::new().await;
    let bin = assert_cmd::cargo::cargo_bin("pgcalm");
    // The reader (`true`) is gone before pgcalm prints its first line.
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{{ sleep 0.3; '{}' migrate demoapp 0002; echo \"exit=$?\" >&2; }} | true",
            bin.display()
        ))
        .env("DATABASE_URL", db.url())
        .env("PGCALM_MIGRATIONS_DIR", repo_migrations())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains("exit=0"), "{err}");
    let shown = ok(pgcalm()
        .env("DATABASE_URL", db.url())
        .env("PGCALM_MIGRATIONS_DIR", repo_migrations())
        .args(["showmigrations", "demoapp"]));
    assert_eq!(
        shown,
        "demoapp\n [X] 0001_initial\n [X] 0002_add_email_index_concurrently\n"
    );
}
