//! Migration files as pgcalm reads them: sections, statements with their file lines,
//! and a clear `path:line` error for every kind of malformed file (insta snapshots).
#![allow(unused_crate_dependencies)] // a test crate uses some of the dev-dependencies

use std::path::Path;

use pgcalm_migrate::{MigrationSet, parse_file};

fn parse_err(name: &str, sql: &str) -> String {
    let path = Path::new("migrations/app").join(name);
    match parse_file("app", &path, sql) {
        Ok(f) => panic!(
            "expected an error, parsed {} statements",
            f.up.statements.len()
        ),
        Err(e) => e.to_string(),
    }
}

#[test]
fn demo_migrations_parse_with_lines() {
    let set =
        MigrationSet::load(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations")).unwrap();
    let demo = set.app("demoapp").unwrap();
    let names: Vec<_> = demo.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["0001_initial", "0002_add_email_index_concurrently"]);
    let initial = &demo[0];
    assert!(initial.up.transaction);
    assert_eq!(initial.up.statements.len(), 2);
    assert_eq!(initial.up.statements[0].line, 3);
    assert!(
        initial.up.statements[0]
            .sql
            .starts_with("CREATE TABLE small_email")
    );
    assert_eq!(initial.up.statements[1].line, 9);
    let down = initial.down.as_ref().unwrap();
    assert_eq!(
        down.statements
            .iter()
            .map(|s| s.sql.as_str())
            .collect::<Vec<_>>(),
        ["DROP TABLE large_email", "DROP TABLE small_email"]
    );
    let idx = &demo[1];
    assert!(!idx.up.transaction && !idx.down.as_ref().unwrap().transaction);
    assert_eq!(idx.up.statements[0].line, 4);
    assert_eq!(
        idx.up.statements[0].kind().label,
        "CREATE INDEX CONCURRENTLY"
    );
    assert!(idx.up.statements[0].kind().share_update_exclusive_only);
}

#[test]
fn splits_with_the_real_scanner() {
    let sql = "-- migrate:up\n\
               CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1; $$;\n\
               /* a comment; with a semicolon */\n\
               INSERT INTO t VALUES ('a;b'); -- trailing; comment\n\
               \n\
               -- leading comment\n\
               SELECT 1\n\
               -- trailing comment, no semicolon\n";
    let f = parse_file("app", Path::new("0001_x.sql"), sql).unwrap();
    let stmts: Vec<_> =
        f.up.statements
            .iter()
            .map(|s| (s.line, s.sql.as_str()))
            .collect();
    assert_eq!(
        stmts,
        [
            (
                2,
                "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1; $$"
            ),
            (4, "INSERT INTO t VALUES ('a;b')"),
            (7, "SELECT 1"),
        ]
    );
    assert!(f.down.is_none());
}

#[test]
fn checksum_ignores_down_section_but_not_up() {
    let a = parse_file(
        "app",
        Path::new("0001_x.sql"),
        "-- migrate:up\nSELECT 1;\n-- migrate:down\nSELECT 2;\n",
    )
    .unwrap();
    let b = parse_file(
        "app",
        Path::new("0001_x.sql"),
        "-- migrate:up\nSELECT 1;\n-- migrate:down\nSELECT 3;\n",
    )
    .unwrap();
    let c = parse_file(
        "app",
        Path::new("0001_x.sql"),
        "-- migrate:up\nSELECT 4;\n-- migrate:down\nSELECT 2;\n",
    )
    .unwrap();
    assert_eq!(a.checksum, b.checksum);
    assert_ne!(a.checksum, c.checksum);
}

#[test]
fn missing_up() {
    insta::assert_snapshot!(parse_err("0001_x.sql", "CREATE TABLE t (id int);\n"));
}

#[test]
fn unknown_option() {
    insta::assert_snapshot!(parse_err(
        "0001_x.sql",
        "-- comment\n-- migrate:up transaction:off\nSELECT 1;\n"
    ));
}

#[test]
fn unknown_directive() {
    insta::assert_snapshot!(parse_err(
        "0001_x.sql",
        "-- migrate:up\nSELECT 1;\n-- migrate:rollback\nSELECT 2;\n"
    ));
}

#[test]
fn duplicate_section() {
    insta::assert_snapshot!(parse_err(
        "0001_x.sql",
        "-- migrate:up\nSELECT 1;\n-- migrate:up\nSELECT 2;\n"
    ));
}

#[test]
fn sql_before_up() {
    insta::assert_snapshot!(parse_err(
        "0001_x.sql",
        "-- header\nSELECT 0;\n-- migrate:up\nSELECT 1;\n"
    ));
}

#[test]
fn empty_up_section() {
    insta::assert_snapshot!(parse_err(
        "0001_x.sql",
        "-- migrate:up\n-- nothing yet\n\n-- migrate:down\nDROP TABLE t;\n"
    ));
}

#[test]
fn non_numeric_file_name() {
    insta::assert_snapshot!(parse_err("add_users.sql", "-- migrate:up\nSELECT 1;\n"));
}

#[test]
fn syntax_error_with_position() {
    let sql = "-- migrate:up\nCREATE TABLE ok (id int);\n\nCREATE TABEL users (\n    id int\n);\n";
    insta::assert_snapshot!(parse_err("0001_x.sql", sql));
}

#[test]
fn syntax_error_mid_statement() {
    let sql = "-- migrate:up\nALTER TABLE users\n    ADD COLUMN email text,\n    ADD CHECK email <> '';\n";
    insta::assert_snapshot!(parse_err("0001_x.sql", sql));
}

#[test]
fn syntax_error_at_end_of_input() {
    let sql = "-- migrate:up\nCREATE TABLE t (id int\n";
    insta::assert_snapshot!(parse_err("0001_x.sql", sql));
}

#[test]
fn concurrently_in_a_transaction_is_refused_with_the_fix() {
    let sql =
        "-- migrate:up\nCREATE TABLE t (id int);\nCREATE INDEX CONCURRENTLY t_id ON t (id);\n";
    insta::assert_snapshot!(parse_err("0003_idx.sql", sql));
}

#[test]
fn concurrently_in_a_transactional_down_section_is_refused() {
    let sql = "-- migrate:up transaction:false\nCREATE INDEX CONCURRENTLY i ON t (id);\n-- migrate:down\nDROP INDEX CONCURRENTLY i;\n";
    insta::assert_snapshot!(parse_err("0003_idx.sql", sql));
}

#[test]
fn transaction_control_is_refused() {
    insta::assert_snapshot!(parse_err(
        "0001_x.sql",
        "-- migrate:up\nBEGIN;\nSELECT 1;\nCOMMIT;\n"
    ));
}

#[test]
fn duplicate_numbers_in_an_app() {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("shop");
    std::fs::create_dir(&app).unwrap();
    std::fs::write(app.join("0001_a.sql"), "-- migrate:up\nSELECT 1;\n").unwrap();
    std::fs::write(app.join("0001_b.sql"), "-- migrate:up\nSELECT 2;\n").unwrap();
    let err = MigrationSet::load(dir.path()).unwrap_err().to_string();
    let err = err.replace(&dir.path().display().to_string(), "<dir>");
    insta::assert_snapshot!(err);
}

#[test]
fn resolves_targets_by_prefix() {
    let set =
        MigrationSet::load(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations")).unwrap();
    assert_eq!(
        set.resolve("demoapp", "0002").unwrap().name,
        "0002_add_email_index_concurrently"
    );
    assert_eq!(set.resolve("demoapp", "0001_initial").unwrap().number, 1);
    let err = set.resolve("demoapp", "00").unwrap_err().to_string();
    assert!(err.contains("matches more than one migration"), "{err}");
    let err = set.resolve("demoapp", "0009").unwrap_err().to_string();
    assert!(
        err.contains("0001_initial, 0002_add_email_index_concurrently"),
        "{err}"
    );
    let err = set.app("nope").unwrap_err().to_string();
    assert!(
        err.contains("no app named `nope`") && err.contains("demoapp"),
        "{err}"
    );
}

#[test]
fn a_byte_that_is_not_utf8_is_named_at_its_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("shop");
    std::fs::create_dir(&app).unwrap();
    // Line 3: "é" is two bytes, one character; then a Latin-1 "é" (0xe9).
    std::fs::write(
        app.join("0001_a.sql"),
        b"-- migrate:up\nSELECT 1;\nSELECT '\xc3\xa9t\xe9';\n",
    )
    .unwrap();
    let err = MigrationSet::load(dir.path()).unwrap_err().to_string();
    let err = err.replace(&dir.path().display().to_string(), "<dir>");
    assert!(
        err.starts_with(
            "<dir>/shop/0001_a.sql:3:11: the file is not UTF-8 (byte 0xe9 is not valid UTF-8 here)"
        ),
        "{err}"
    );
}
