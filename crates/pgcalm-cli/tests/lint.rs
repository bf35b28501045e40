//! `pgcalm lint` with the real binary: the seed's risky and safe migrations, every output
//! format, exit codes (0 clean, 1 findings, 2 usage or parse error), ignore directives,
//! stdin, directories, pgcalm.toml rules, the PostgreSQL version.
#![allow(unused_crate_dependencies)] // a test crate uses some of the dev-dependencies

mod common;

use std::path::{Path, PathBuf};

use common::{lint_in, pgcalm_in, stderr, stdout, write};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn the_seed_risky_index_as_plain_sql_needs_concurrently_and_a_lock_timeout() {
    let (code, out, err) = lint_in(&repo(), &["examples/lint/risky_create_index.sql"]);
    assert_eq!(code, 1, "{err}");
    // The plain build blocks writes however short the wait for its lock: no "safe SQL"
    // may be that build behind a lock_timeout.
    assert!(
        !out.contains("SET lock_timeout = '2s';\n            CREATE INDEX large_email_email_idx"),
        "{out}"
    );
    insta::assert_snapshot!("seed_risky_text", out);
}

#[test]
fn the_seed_safe_migration_is_clean() {
    let (code, out, err) = lint_in(
        &repo(),
        &["migrations/demoapp/0002_add_email_index_concurrently.sql"],
    );
    assert_eq!(code, 0, "{out}{err}");
    insta::assert_snapshot!(out, @"1 file, 2 statements: no risky statements");
}

#[test]
fn json_github_and_markdown_formats() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "migrations/app/0003_fk.sql",
        "-- migrate:up\nALTER TABLE orders ADD CONSTRAINT orders_user_fk FOREIGN KEY (user_id) REFERENCES users (id);\n\n-- migrate:down\nALTER TABLE orders DROP CONSTRAINT orders_user_fk;\n",
    );
    let (code, json, _) = lint_in(dir.path(), &["--format", "json", "migrations"]);
    assert_eq!(code, 1);
    insta::assert_snapshot!("formats_json", json);
    let (code, github, _) = lint_in(dir.path(), &["--format", "github", "migrations"]);
    assert_eq!(code, 1);
    insta::assert_snapshot!("formats_github", github);
    let (code, markdown, _) = lint_in(dir.path(), &["--format", "markdown", "migrations"]);
    assert_eq!(code, 1);
    insta::assert_snapshot!("formats_markdown", markdown);
}

#[test]
fn a_syntax_error_is_exit_2_with_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "bad.sql",
        "SET lock_timeout = '2s';\nALTER TABLE t ADD CONSTRAINT c CHECK a > 0;\n",
    );
    write(dir.path(), "good.sql", "SELECT 1;\n");
    let (code, out, err) = lint_in(dir.path(), &["bad.sql", "good.sql"]);
    assert_eq!(code, 2, "{out}");
    assert!(
        err.contains("bad.sql:2:38: SQL syntax error: syntax error at or near \"a\""),
        "{err}"
    );
    // The other file is still linted and reported.
    assert_eq!(
        out,
        "2 files, 1 statement: bad.sql could not be parsed and was not linted; the other file: 0 errors, 0 warnings\n"
    );
}

#[test]
fn usage_errors_are_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = lint_in(dir.path(), &["missing.sql"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("missing.sql: no such file or directory"),
        "{err}"
    );
    let out = pgcalm_in(dir.path())
        .args(["--format", "github", "showmigrations"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    // showmigrations' --format knows text and json only (github, markdown: lint, trace).
    assert!(
        stderr(&out).contains("invalid value 'github'")
            && stderr(&out).contains("[possible values: text, json]"),
        "{}",
        stderr(&out)
    );
    let (code, _, err) = lint_in(dir.path(), &["--nonsense"]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn ignore_directives_need_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "with_reason.sql",
        "SET lock_timeout = '2s';\n-- pgcalm:ignore require-concurrent-index-creation audit_log is empty until the feature ships\nCREATE INDEX audit_log_at ON audit_log (at);\n",
    );
    let (code, out, _) = lint_in(dir.path(), &["with_reason.sql"]);
    assert_eq!(code, 0, "{out}");
    insta::assert_snapshot!(out, @"1 file, 2 statements: no risky statements (1 finding ignored by -- pgcalm:ignore)");

    write(
        dir.path(),
        "without_reason.sql",
        "SET lock_timeout = '2s';\nCREATE INDEX audit_log_at ON audit_log (at); -- pgcalm:ignore require-concurrent-index-creation\n",
    );
    let (code, out, _) = lint_in(dir.path(), &["--format", "json", "without_reason.sql"]);
    assert_eq!(code, 1);
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    let rules: Vec<&str> = doc["files"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap())
        .collect();
    assert_eq!(
        rules,
        ["invalid-ignore", "require-concurrent-index-creation"]
    );
}

#[test]
fn stdin_directories_and_migration_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = pgcalm_in(dir.path())
        .args(["lint", "--format", "json", "-"])
        .write_stdin("DROP INDEX users_email_idx;\n")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(doc["files"][0]["path"], "<stdin>");
    assert_eq!(
        doc["files"][0]["findings"][1]["rule"],
        "require-concurrent-index-deletion"
    );

    // A directory: every *.sql below; the migration file's CONCURRENTLY section needs
    // transaction:false, its tables created in the section are new.
    write(
        dir.path(),
        "db/a/0001_t.sql",
        "-- migrate:up\nCREATE TABLE t (a int);\nCREATE INDEX t_a ON t (a);\n",
    );
    write(
        dir.path(),
        "db/b/nested/0002_i.sql",
        "-- migrate:up\nCREATE INDEX CONCURRENTLY u_a ON u (a);\n",
    );
    write(dir.path(), "db/notes.txt", "CREATE INDEX x ON y (z);");
    let (code, out, _) = lint_in(dir.path(), &["--format", "json", "db"]);
    assert_eq!(code, 1);
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    let files: Vec<(&str, &str, usize)> = doc["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap(),
                f["kind"].as_str().unwrap(),
                f["findings"].as_array().unwrap().len(),
            )
        })
        .collect();
    assert_eq!(
        files,
        [
            ("db/a/0001_t.sql", "migration", 0),
            ("db/b/nested/0002_i.sql", "migration", 1)
        ]
    );
    assert_eq!(
        doc["files"][1]["findings"][0]["rule"],
        "concurrently-in-transaction"
    );
}

#[test]
fn pgcalm_toml_turns_rules_off_and_names_unknown_ones() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "x.sql", "CREATE INDEX i ON t (a);\n");
    write(
        dir.path(),
        "pgcalm.toml",
        "[lint]\ndisable = [\"missing-lock-timeout\"]\n",
    );
    let (code, out, _) = lint_in(dir.path(), &["--format", "json", "x.sql"]);
    assert_eq!(code, 1);
    assert_eq!(out.matches("\"rule\"").count(), 1, "{out}");
    assert!(out.contains("require-concurrent-index-creation"));

    write(
        dir.path(),
        "pgcalm.toml",
        "[lint]\ndisable = [\"no-such-rule\"]\n",
    );
    let (code, _, err) = lint_in(dir.path(), &["x.sql"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown rule `no-such-rule`"), "{err}");
}

#[test]
fn assume_in_transaction_and_pg_version() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "cic.sql",
        "CREATE INDEX CONCURRENTLY i ON t (a);\n",
    );
    assert_eq!(lint_in(dir.path(), &["cic.sql"]).0, 0);
    let (code, out, _) = lint_in(
        dir.path(),
        &["--assume-in-transaction", "--format", "json", "cic.sql"],
    );
    assert_eq!(code, 1);
    assert!(out.contains("concurrently-in-transaction"), "{out}");

    // A validated CHECK (col IS NOT NULL) lets SET NOT NULL skip its scan from PG12.
    write(
        dir.path(),
        "not_null.sql",
        "SET lock_timeout = '2s';\n\
         ALTER TABLE users ADD CONSTRAINT users_email_nn CHECK (email IS NOT NULL) NOT VALID;\n\
         ALTER TABLE users VALIDATE CONSTRAINT users_email_nn;\n\
         ALTER TABLE users ALTER COLUMN email SET NOT NULL;\n",
    );
    assert_eq!(lint_in(dir.path(), &["not_null.sql"]).0, 0);
    let (code, out, _) = lint_in(
        dir.path(),
        &["--pg-version", "11", "--format", "json", "not_null.sql"],
    );
    assert_eq!(code, 1);
    assert!(out.contains("setting-not-null"), "{out}");
}

#[test]
fn list_rules() {
    let (code, out, _) = lint_in(&repo(), &["--list-rules"]);
    assert_eq!(code, 0);
    assert!(out.contains("missing-lock-timeout"), "{out}");
    assert!(out.contains("setting-not-null"), "{out}");
}

#[test]
fn locks_shows_every_statement_and_the_down_section_may_drop_what_up_created() {
    // The seed's first migration: its down section drops the tables its up section
    // created, which is what rolling it back means, so there are no findings; --locks
    // still shows what each statement takes.
    let (code, out, err) = lint_in(&repo(), &["--locks", "migrations/demoapp/0001_initial.sql"]);
    assert_eq!(code, 0, "{out}{err}");
    insta::assert_snapshot!(out, @"
                    Locks taken by migrations/demoapp/0001_initial.sql
     line |  statement   |            lock             | on | blocks | rewrite | scan
    ------+--------------+-----------------------------+----+--------+---------+------
     3    | CREATE TABLE | none on pre-existing tables |    |        |         |
     9    | CREATE TABLE | none on pre-existing tables |    |        |         |
     16   | DROP TABLE   | none on pre-existing tables |    |        |         |
     17   | DROP TABLE   | none on pre-existing tables |    |        |         |

    1 file, 4 statements: no risky statements
    ");
    let (code, out, _) = lint_in(
        &repo(),
        &[
            "--locks",
            "--format",
            "json",
            "examples/lint/risky_create_index.sql",
        ],
    );
    assert_eq!(code, 1);
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    let lock = &doc["files"][0]["locks"][0]["locks"][0];
    assert_eq!(lock["mode"], "SHARE");
    assert_eq!(lock["target"]["name"]["name"], "large_email");
}

/// `CREATE VIEW v AS SELECT 'a' || 'a' || ...`: `||` is left-associative, so `depth`
/// operators nest the expression tree `depth` levels deep. PostgreSQL 15 runs such a view
/// up to about 6,000 levels with its default max_stack_depth (2 MB).
fn nested_view(name: &str, depth: usize) -> String {
    format!(
        "CREATE VIEW {name} AS SELECT {} AS x;\n",
        vec!["'a'"; depth + 1].join(" || ")
    )
}

#[test]
fn a_statement_nested_1000_deep_is_linted() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "deep.sql",
        &format!("{}{}", nested_view("v50", 50), nested_view("v1000", 1000)),
    );
    let (code, out, err) = lint_in(dir.path(), &["deep.sql"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out, "1 file, 2 statements: no risky statements\n", "{err}");
}

#[test]
fn a_non_utf8_byte_is_named_at_its_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let sql = b"SELECT 1;\nSELECT 2;\n\nSELECT '\xe9t\xe9';\n";
    std::fs::write(dir.path().join("latin1.sql"), sql).unwrap();
    let (code, _, err) = lint_in(dir.path(), &["latin1.sql"]);
    assert_eq!(code, 2, "{err}");
    insta::assert_snapshot!(err, @"
    error: latin1.sql:4:9: the file is not UTF-8 (byte 0xe9 is not valid UTF-8 here)
      fix: save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`); pgcalm reads SQL files as UTF-8
    ");
}

#[test]
fn a_file_that_does_not_parse_is_not_summarised_as_clean() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "bad.sql", "SELECT 1;\nSELECT (;\n");
    let (code, out, err) = lint_in(dir.path(), &["bad.sql"]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(!out.contains("no risky statements"), "{out}");
    insta::assert_snapshot!(out, @"1 file, 0 statements: bad.sql could not be parsed and was not linted");

    // Beside a clean file: the clean one is reported, the summary names the other.
    write(dir.path(), "good.sql", "SELECT 1;\n");
    let (code, out, _) = lint_in(dir.path(), &["bad.sql", "good.sql"]);
    assert_eq!(code, 2);
    insta::assert_snapshot!(out, @"2 files, 1 statement: bad.sql could not be parsed and was not linted; the other file: 0 errors, 0 warnings");
    let (code, json, _) = lint_in(dir.path(), &["--format", "json", "bad.sql", "good.sql"]);
    assert_eq!(code, 2);
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(doc["unparsed"][0]["path"], "bad.sql");
    assert_eq!(doc["unparsed"][0]["line"], 2);
    insta::assert_snapshot!(serde_json::to_string_pretty(&doc["summary"]).unwrap(), @r#"
    {
      "errors": 0,
      "files": 2,
      "ignored": 0,
      "statements": 1,
      "unparsed": 1,
      "warnings": 0
    }
    "#);
    let (code, markdown, _) = lint_in(dir.path(), &["--format", "markdown", "bad.sql"]);
    assert_eq!(code, 2);
    assert!(!markdown.contains("no risky statements"), "{markdown}");
}

/// An empty or whitespace-only file, and a migration whose down section is empty (as
/// dbmate writes them), are linted, not crashed on: pg_query's scanner aborted the
/// process on text without a token (50 of 1,852 real-world files, bench/corpus).
#[test]
fn empty_files_and_empty_sections_are_linted_without_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "empty.sql", "");
    write(dir.path(), "blank.sql", "\n  \t\n");
    write(
        dir.path(),
        "migrations/app/0001_t.sql",
        "-- migrate:up\nCREATE TABLE t (id int);\n\n-- migrate:down\n\n",
    );
    for path in ["empty.sql", "blank.sql", "migrations/app/0001_t.sql"] {
        let (code, out, err) = lint_in(dir.path(), &[path]);
        assert_eq!(code, 0, "{path}: {out}{err}");
        assert!(out.contains("no risky statements"), "{path}: {out}");
    }
}

#[test]
fn a_directory_s_earlier_files_tell_which_table_an_index_is_on() {
    // Diesel-like: up.sql runs in one transaction; the second migration drops two
    // indexes the first created. The first drop locks post; the second cannot wait.
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "m/2020-01-01_a/up.sql",
        "CREATE TABLE post (id int PRIMARY KEY, score int);\n\
         CREATE INDEX idx_post_score ON post (score);\n\
         CREATE INDEX idx_post_hot ON post (score, id);\n",
    );
    // A down migration's drops do not count for the files after it.
    write(dir.path(), "m/2020-01-01_a/down.sql", "DROP TABLE post;\n");
    write(
        dir.path(),
        "m/2020-02-02_b/up.sql",
        "SET lock_timeout = '2s';\nDROP INDEX idx_post_score;\nDROP INDEX idx_post_hot;\n",
    );
    let (code, out, err) = lint_in(
        dir.path(),
        &["--assume-in-transaction", "--format", "json", "m"],
    );
    assert_eq!(code, 1, "{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    let file = doc["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "m/2020-02-02_b/up.sql")
        .unwrap();
    let lines: Vec<(u64, &str)> = file["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["span"]["line"].as_u64().unwrap(),
                f["rule"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(lines, [(2, "require-concurrent-index-deletion")], "{out}");
}
