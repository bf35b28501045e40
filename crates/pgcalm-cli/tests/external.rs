//! `pgcalm up` / `status` with DATABASE_URL: use that server, create the database if
//! missing, never start a cluster.

use assert_cmd::Command;
use pgcalm_testkit::TestDb;

fn repo_migrations() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations")
}

#[tokio::test]
async fn up_with_database_url_creates_the_missing_database_only() {
    let db = TestDb::new().await;
    let fresh = db.target().with_dbname(&format!("{}_fresh", db.name()));
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = Command::cargo_bin("pgcalm")
            .unwrap()
            .current_dir(dir.path())
            .env("DATABASE_URL", fresh.masked_url())
            .env("PGCALM_MIGRATIONS_DIR", repo_migrations())
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
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
    let down = Command::cargo_bin("pgcalm")
        .unwrap()
        .current_dir(dir.path())
        .env("DATABASE_URL", fresh.masked_url())
        .arg("down")
        .output()
        .unwrap();
    assert!(
        !down.status.success(),
        "down must refuse to touch an external server"
    );
    assert!(String::from_utf8_lossy(&down.stderr).contains("only stops the embedded one"));
}
