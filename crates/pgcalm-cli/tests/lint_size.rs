//! Risk by size with a real PostgreSQL: `pgcalm lint` with a database grades the findings
//! that grow with their table by its estimated rows (`[lint] small_table_rows`), says the
//! size it used in every format, and without a database changes nothing.
#![allow(unused_crate_dependencies)] // a test crate uses some of the dev-dependencies

mod common;

use std::path::Path;

use common::{pgcalm_in, stdout, write};
use pgcalm_testkit::TestDb;
use serde_json::Value;

const MIGRATION: &str = "\
-- migrate:up
CREATE INDEX small_email_idx ON public.small_email (email);
CREATE INDEX large_email_idx ON large_email (email);

-- migrate:down
";

async fn sized_db() -> TestDb {
    let db = TestDb::new().await;
    db.execute(
        "CREATE TABLE small_email (id int PRIMARY KEY, email text);
         INSERT INTO small_email SELECT i, 'u' || i || '@example.com' FROM generate_series(1, 50) i;
         CREATE TABLE large_email (id int PRIMARY KEY, email text);
         INSERT INTO large_email SELECT i, 'u' || i || '@example.com' FROM generate_series(1, 20000) i;
         ANALYZE small_email;
         ANALYZE large_email;",
    )
    .await;
    db
}

/// `pgcalm lint --format FORMAT migrations` in `dir`, with `url` as DATABASE_URL or none.
fn lint(dir: &Path, url: Option<&str>, format: &str) -> (i32, String) {
    let mut cmd = pgcalm_in(dir);
    if let Some(url) = url {
        cmd.env("DATABASE_URL", url);
    }
    let out = cmd
        .args(["lint", "--format", format, "migrations"])
        .output()
        .unwrap();
    (out.status.code().unwrap_or(-1), stdout(&out))
}

/// Every finding of the JSON report.
fn finding_values(json: &str) -> Vec<Value> {
    let doc: Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"));
    doc["files"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|f| f["findings"].as_array().unwrap().clone())
        .collect()
}

/// (rule, severity, message) of each finding of the JSON report.
fn findings(json: &str) -> Vec<(String, String, String)> {
    finding_values(json)
        .iter()
        .map(|x| {
            let s = |k: &str| x[k].as_str().unwrap().to_string();
            (s("rule"), s("severity"), s("message"))
        })
        .collect()
}

/// The `table_size` of the index build finding on `table` in the JSON report.
fn table_size_of(json: &str, table: &str) -> Value {
    finding_values(json)
        .into_iter()
        .find(|x| {
            x["rule"] == "require-concurrent-index-creation"
                && x["message"].as_str().unwrap().contains(table)
        })
        .unwrap_or_else(|| panic!("no index build finding on {table}: {json}"))["table_size"]
        .clone()
}

fn index_build(found: &[(String, String, String)], table: &str) -> (String, String) {
    let (_, severity, message) = found
        .iter()
        .find(|(r, _, m)| r == "require-concurrent-index-creation" && m.contains(table))
        .unwrap_or_else(|| panic!("no index build finding on {table}: {found:?}"));
    (severity.clone(), message.clone())
}

#[tokio::test]
async fn a_small_tables_index_build_is_a_warning_that_says_its_size_and_a_large_one_an_error() {
    let db = sized_db().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "pgcalm.toml", "[lint]\nsmall_table_rows = 10000\n");
    write(d, "migrations/20240101000000_idx.sql", MIGRATION);

    let (code, out) = lint(d, Some(&db.url()), "json");
    assert_eq!(code, 1);
    let found = findings(&out);
    let (severity, message) = index_build(&found, "small_email");
    assert_eq!(severity, "warning", "{message}");
    assert!(
        message.contains("(public.small_email: ~50 rows, "),
        "{message}"
    );
    assert!(
        message.contains("small, under small_table_rows = 10000"),
        "{message}"
    );
    let (severity, message) = index_build(&found, "large_email");
    assert_eq!(severity, "error", "{message}");
    assert!(message.contains("(large_email: ~20k rows, "), "{message}");
    // The size used is data too, beside the message.
    let size = table_size_of(&out, "large_email");
    assert_eq!(size["rows"], 20_000, "{out}");
    let bytes = size["bytes"].as_i64().unwrap();
    assert!(bytes > 20_000 * 20, "{out}");
    assert_eq!(table_size_of(&out, "small_email")["rows"], 50, "{out}");

    // SARIF carries the size and the grade.
    let (_, sarif) = lint(d, Some(&db.url()), "sarif");
    let doc: Value = serde_json::from_str(&sarif).unwrap();
    let results = doc["runs"][0]["results"].as_array().unwrap();
    let small = results
        .iter()
        .find(|r| {
            r["message"]["text"]
                .as_str()
                .unwrap()
                .contains("small_email: ~50 rows")
        })
        .unwrap_or_else(|| panic!("{sarif}"));
    assert_eq!(small["level"], "warning");
    assert_eq!(small["properties"]["tableSize"]["rows"], 50, "{sarif}");
    assert!(
        small["properties"]["tableSize"]["bytes"].as_i64().unwrap() > 0,
        "{sarif}"
    );

    // A lower threshold makes the 20k-row table small too.
    write(d, "pgcalm.toml", "[lint]\nsmall_table_rows = 100000\n");
    let (_, out) = lint(d, Some(&db.url()), "json");
    assert_eq!(index_build(&findings(&out), "large_email").0, "warning");
}

#[tokio::test]
async fn without_a_database_the_findings_are_as_before() {
    let db = sized_db().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "migrations/20240101000000_idx.sql", MIGRATION);
    let (code, without) = lint(d, None, "json");
    assert_eq!(code, 1);
    for f in finding_values(&without) {
        assert_eq!(f["table_size"], Value::Null, "{f}");
    }
    for (rule, severity, message) in findings(&without) {
        assert!(!message.contains(" rows"), "{rule}: {message}");
        if rule == "require-concurrent-index-creation" {
            assert_eq!(severity, "error");
        }
    }
    // With the database only the index builds' severities and messages differ.
    let (_, with) = lint(d, Some(&db.url()), "json");
    let (a, b) = (findings(&without), findings(&with));
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.0, y.0);
        if x.0 != "require-concurrent-index-creation" {
            assert_eq!(x, y);
        }
    }
}
