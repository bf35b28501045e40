//! Migration files taken as PostgreSQL takes them, through the real `pgcalm` binary and
//! a testkit database: a statement nested 1,000 deep is applied, a non-UTF-8 byte is
//! named at its line, and each command parses only the files it needs (a syntax error in
//! a file that will not run stops neither `showmigrations` nor a `migrate` to an earlier
//! target).
#![allow(unused_crate_dependencies)] // a test crate uses some of the dev-dependencies

mod common;

use std::path::Path;

use assert_cmd::Command;
use pgcalm_testkit::TestDb;

/// A working directory with one app, `app`, holding these files.
fn app_dir(files: &[(&str, &[u8])]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("migrations/app")).unwrap();
    for (name, sql) in files {
        std::fs::write(dir.path().join("migrations/app").join(name), sql).unwrap();
    }
    dir
}

/// `pgcalm ARGS` in `dir` on the test database.
fn pgcalm(db: &TestDb, dir: &Path, args: &[&str]) -> Command {
    let mut cmd = common::pgcalm_in(dir);
    cmd.env("DATABASE_URL", db.url())
        .env_remove("PGCALM_LOCK_TIMEOUT")
        .args(args);
    cmd
}

fn ok(db: &TestDb, dir: &Path, args: &[&str]) -> String {
    common::ok(&mut pgcalm(db, dir, args))
}

fn fails(db: &TestDb, dir: &Path, args: &[&str]) -> String {
    common::fails(&mut pgcalm(db, dir, args))
}

/// `CREATE VIEW name AS SELECT 'a' || 'a' || ...` nested `depth` levels deep (`||` is
/// left-associative). PostgreSQL 15 with its default max_stack_depth (2 MB) runs it up to
/// about 6,000 levels.
fn nested_view(name: &str, depth: usize) -> String {
    format!(
        "CREATE VIEW {name} AS SELECT {} AS x;\n",
        vec!["'a'"; depth + 1].join(" || ")
    )
}

#[tokio::test]
async fn a_statement_nested_1000_deep_is_applied() {
    let db = TestDb::new().await;
    let sql = format!(
        "-- migrate:up\n{}{}\n-- migrate:down\nDROP VIEW v1000;\nDROP VIEW v50;\n",
        nested_view("v50", 50),
        nested_view("v1000", 1000)
    );
    let dir = app_dir(&[("0001_deep.sql", sql.as_bytes())]);
    ok(&db, dir.path(), &["migrate"]);
    assert_eq!(
        db.query_i64("SELECT length(x)::bigint FROM v1000").await,
        1001
    );
    assert_eq!(db.query_i64("SELECT length(x)::bigint FROM v50").await, 51);
    ok(&db, dir.path(), &["migrate", "app", "zero"]);
    assert_eq!(
        db.query_i64("SELECT count(*) FROM pg_views WHERE viewname IN ('v50', 'v1000')")
            .await,
        0
    );
}

#[tokio::test]
async fn a_non_utf8_byte_is_named_at_its_line_and_column() {
    let db = TestDb::new().await;
    let dir = app_dir(&[(
        "0001_latin1.sql",
        b"-- migrate:up\nCREATE TABLE t (v text);\n\nINSERT INTO t VALUES ('caf\xe9');\n",
    )]);
    let expected = "error: migrations/app/0001_latin1.sql:4:27: the file is not UTF-8 \
                    (byte 0xe9 is not valid UTF-8 here)\n  \
                    fix: save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`); pgcalm \
                    reads SQL files as UTF-8\n";
    assert_eq!(fails(&db, dir.path(), &["showmigrations"]), expected);
    assert_eq!(fails(&db, dir.path(), &["migrate"]), expected);
}

#[tokio::test]
async fn commands_parse_only_the_files_they_need() {
    let db = TestDb::new().await;
    let dir = app_dir(&[
        ("0001_t.sql", b"-- migrate:up\nCREATE TABLE t (id int);\n"),
        (
            "0002_bad.sql",
            b"-- migrate:up\nALTER TABLE t ADD COLUMN v int;\nCREATE TABEL u (id int);\n",
        ),
    ]);
    // Neither lists nor a run up to 0001 needs 0002's statements.
    assert_eq!(
        ok(&db, dir.path(), &["showmigrations"]),
        "app\n [ ] 0001_t\n [ ] 0002_bad\n"
    );
    ok(&db, dir.path(), &["migrate", "app", "0001"]);
    assert_eq!(
        ok(&db, dir.path(), &["showmigrations"]),
        "app\n [X] 0001_t\n [ ] 0002_bad\n"
    );
    // Running 0002 parses it: refused before any of its statements runs.
    let err = fails(&db, dir.path(), &["migrate"]);
    assert!(
        err.starts_with(
            "error: migrations/app/0002_bad.sql:3:8: SQL syntax error: syntax error at or near \"TABEL\""
        ),
        "{err}"
    );
    assert_eq!(
        db.query_i64("SELECT count(*) FROM information_schema.columns WHERE table_name = 't'")
            .await,
        1
    );
}
