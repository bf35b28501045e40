//! `pgcalm trace` through the real binary, in a scratch database (DATABASE_URL = an empty
//! testkit database): the seed's risky and safe index migrations, plain SQL with
//! --setup (a default calling a user function: only running it shows the rewrite), JSON,
//! and the refusal of a database that is not empty.
#![allow(unused_crate_dependencies)] // a test crate uses some of the dev-dependencies

mod common;

use std::path::Path;
use std::process::Output;

use pgcalm_testkit::TestDb;

fn trace(db: &TestDb, dir: &Path, args: &[&str]) -> Output {
    common::pgcalm_in(dir)
        .env("DATABASE_URL", db.url())
        .arg("trace")
        .args(args)
        .output()
        .unwrap()
}

/// The seed's app with its 0001 and one more migration.
fn seed_app(name: &str, sql: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("migrations/demoapp");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::copy(
        common::repo_migrations().join("demoapp/0001_initial.sql"),
        app.join("0001_initial.sql"),
    )
    .unwrap();
    std::fs::write(app.join(name), sql).unwrap();
    dir
}

/// The seed's app as in the repo: 0001 and the safe 0002.
fn seed_app_with_its_0002() -> tempfile::TempDir {
    let name = "0002_add_email_index_concurrently.sql";
    let sql = std::fs::read_to_string(common::repo_migrations().join("demoapp").join(name));
    seed_app(name, &sql.unwrap())
}

#[tokio::test]
async fn the_seeds_risky_index_is_seen_by_lint_and_trace() {
    let db = TestDb::new().await;
    let dir = seed_app(
        "0002_add_email_index.sql",
        "-- migrate:up\nCREATE INDEX large_email_email_idx ON large_email (email);\n",
    );
    let out = trace(
        &db,
        dir.path(),
        &["migrations/demoapp/0002_add_email_index.sql"],
    );
    assert!(!out.status.success(), "findings exit 1");
    let text = common::stdout(&out);
    assert!(
        text.contains("| CREATE INDEX large_email_email_idx ON large_email (email) | SHARE on public.large_email | SHARE on large_email | built public.large_email_email_idx |"),
        "{text}"
    );
    // Lint's renderer, with who saw it.
    assert!(
        text.contains("require-concurrent-index-creation")
            && text.contains("[migrations/demoapp/0002_add_email_index.sql:2:1]")
            && text.contains("(seen by lint and trace)"),
        "{text}"
    );
    assert!(
        text.contains("1 file, 1 statement: 1 error, 0 warnings"),
        "{text}"
    );
    assert!(text.contains("public.large_email (100 rows)"), "{text}");
}

#[tokio::test]
async fn the_seeds_safe_migration_takes_share_update_exclusive_only() {
    let db = TestDb::new().await;
    let dir = seed_app_with_its_0002();
    let out = trace(
        &db,
        dir.path(),
        &[
            "--format",
            "json",
            "migrations/demoapp/0002_add_email_index_concurrently.sql",
        ],
    );
    assert!(out.status.success(), "{}", common::stderr(&out));
    let json: serde_json::Value = serde_json::from_str(&common::stdout(&out)).unwrap();
    let s = &json["traces"][0]["statements"][0];
    assert_eq!(s["line"], 4);
    assert_eq!(s["sampled"], true);
    assert_eq!(s["locks"][0]["mode"], "ShareUpdateExclusiveLock");
    assert_eq!(s["locks"][0]["relation"], "public.large_email");
    assert_eq!(s["indexes"][0]["valid"], true);
    assert_eq!(json["files"][0]["findings"], serde_json::json!([]));
    assert_eq!(json["summary"]["errors"], 0);
}

#[tokio::test]
async fn plain_sql_with_setup_shows_the_rewrite_of_a_volatile_user_function() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("schema.sql"),
        "CREATE TABLE t (id bigint PRIMARY KEY, n int);\nCREATE FUNCTION pick() RETURNS int LANGUAGE plpgsql VOLATILE AS 'BEGIN RETURN 1; END';\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("change.sql"),
        "SET lock_timeout = '2s';\nALTER TABLE t ADD COLUMN w int DEFAULT pick();\n",
    )
    .unwrap();
    let out = trace(&db, dir.path(), &["--setup", "schema.sql", "change.sql"]);
    let text = common::stdout(&out);
    assert!(text.contains("rewrote public.t"), "{text}");
    assert!(
        text.contains("adding-field-with-volatile-default") && text.contains("[change.sql:2:1]"),
        "{text}"
    );
    assert!(text.contains("seen by"), "{text}");
    assert!(!out.status.success());
}

#[tokio::test]
async fn a_database_with_tables_is_refused_unless_forced() {
    let db = TestDb::new().await;
    db.execute("CREATE TABLE precious (id int)").await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("x.sql"), "SELECT 1;\n").unwrap();
    let out = trace(&db, dir.path(), &["x.sql"]);
    assert!(!out.status.success());
    let err = common::stderr(&out);
    assert!(
        err.contains("is not empty (1 user tables, e.g. public.precious)"),
        "{err}"
    );
    assert!(err.contains("--force"), "{err}");
    let out = trace(&db, dir.path(), &["--force", "x.sql"]);
    assert!(out.status.success(), "{}", common::stderr(&out));
}

#[tokio::test]
async fn plain_sql_after_a_migration_as_setup_shows_the_missing_lock_timeout() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("risky.sql"),
        "CREATE INDEX large_email_email_idx ON large_email (email);\n",
    )
    .unwrap();
    let setup = common::repo_migrations().join("demoapp/0001_initial.sql");
    let out = trace(
        &db,
        dir.path(),
        &["--setup", setup.to_str().unwrap(), "risky.sql"],
    );
    let text = common::stdout(&out);
    // The migration's up section ran (its down section, which drops the tables, did not).
    assert!(text.contains("public.large_email (100 rows)"), "{text}");
    assert!(text.contains("missing-lock-timeout"), "{text}");
    assert_eq!(
        text.matches("(seen by lint and trace)").count(),
        2,
        "{text}"
    );
    assert!(
        text.contains("1 file, 1 statement: 2 errors, 0 warnings"),
        "{text}"
    );
}

#[tokio::test]
async fn backwards_traces_the_down_section_after_applying_the_migration() {
    let db = TestDb::new().await;
    let dir = seed_app_with_its_0002();
    let out = trace(
        &db,
        dir.path(),
        &[
            "--backwards",
            "migrations/demoapp/0002_add_email_index_concurrently.sql",
        ],
    );
    let text = common::stdout(&out);
    assert!(out.status.success(), "{text}{}", common::stderr(&out));
    // DROP INDEX CONCURRENTLY: SHARE UPDATE EXCLUSIVE on the table, sampled while it ran.
    assert!(
        text.contains("| DROP INDEX CONCURRENTLY IF EXISTS large_email_email_idx | SHARE UPDATE EXCLUSIVE on public.large_email"),
        "{text}"
    );
    // The trace left its tables in the given database: a second trace there is refused.
    let out = trace(
        &db,
        dir.path(),
        &["--backwards", "migrations/demoapp/0001_initial.sql"],
    );
    assert!(!out.status.success());
    assert!(
        common::stderr(&out).contains("is not empty"),
        "{}",
        common::stderr(&out)
    );
}

/// Plain SQL traced without `--setup`: its tables do not exist in the scratch database.
/// That is the trace's set-up missing, not a statement that would fail in production.
#[tokio::test]
async fn a_table_missing_from_the_scratch_database_asks_for_the_set_up() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("plain.sql"),
        "CREATE INDEX big_email_idx ON big (email);\n",
    )
    .unwrap();
    // Words as a reader sees them, whatever the wrapping.
    let words = |out: &Output| {
        common::stdout(out)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    let out = trace(&db, dir.path(), &["plain.sql"]);
    let text = words(&out);
    assert!(!text.contains("would fail in production"), "{text}");
    let finding = text
        .split("statement-failed")
        .nth(1)
        .unwrap_or_else(|| panic!("a statement-failed finding: {text}"));
    assert!(
        finding.contains("relation \"big\" does not exist in the scratch database"),
        "{finding}"
    );
    assert!(
        finding.contains("--setup") && finding.contains("earlier migrations"),
        "{finding}"
    );

    // With a set-up that does not create it, the set-up is named as what lacks it.
    std::fs::write(
        dir.path().join("schema.sql"),
        "CREATE TABLE other (id int);\n",
    )
    .unwrap();
    let db = TestDb::new().await;
    let out = trace(&db, dir.path(), &["--setup", "schema.sql", "plain.sql"]);
    let text = words(&out);
    assert!(
        text.contains("the set-up run before it (1 statement: the app's earlier migrations and --setup files) did not create it"),
        "{text}"
    );
}
