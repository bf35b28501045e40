//! `pgcalm lint` for CI and the migration tools, with the real binary: each tool's
//! transaction mode and no-transaction markers (`--tool`, detection from the layout),
//! up migrations only unless `--include-down`, Alembic's and Django's SQL output, SARIF
//! and GitLab Code Quality output (parse errors included), `--fail-on`, `--since` on a
//! real git repository, `--disable` / `--enable`, ignores that expire.
#![allow(unused_crate_dependencies)] // a test crate uses some of the dev-dependencies

mod common;

use std::path::Path;
use std::process::Command;

use common::{lint_in, pgcalm_in, stderr, stdout, write};
use serde_json::Value;

/// Each linted file (or piece) as (path, migration label, rules found), from JSON.
fn rules_of(json: &str) -> Vec<(String, Option<String>, Vec<String>)> {
    let doc: Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"));
    doc["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_string(),
                f["migration"].as_str().map(str::to_string),
                f["findings"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x["rule"].as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect()
}

fn has_cit(rules: &[String]) -> bool {
    rules.iter().any(|r| r == "concurrently-in-transaction")
}

const CIC: &str = "CREATE INDEX CONCURRENTLY users_email_idx ON users (email);\n";
const CIC2: &str =
    "SET lock_timeout = '2s';\nCREATE INDEX CONCURRENTLY users_email_idx ON users (email);\n";

#[test]
fn each_tool_runs_a_file_in_its_own_transaction_mode() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // (file, text, whether CONCURRENTLY runs inside a transaction there)
    let cases: &[(&str, String, bool)] = &[
        // One simple-query message: a lone statement is autocommit, several are one
        // implicit transaction.
        ("prisma/migrations/20240101000000_one/migration.sql", CIC.into(), false),
        ("prisma/migrations/20240102000000_two/migration.sql", CIC2.into(), true),
        ("gm/000001_one.up.sql", CIC.into(), false),
        ("gm/000002_two.up.sql", CIC2.into(), true),
        // Wrapped unless the tool's marker says otherwise.
        ("goose/00001_tx.sql", format!("-- +goose Up\n{CIC}-- +goose Down\nDROP INDEX users_email_idx;\n"), true),
        ("goose/00002_notx.sql", format!("-- +goose NO TRANSACTION\n-- +goose Up\n{CIC}-- +goose Down\nDROP INDEX users_email_idx;\n"), false),
        ("diesel/2024-01-01-000000_tx/up.sql", CIC.into(), true),
        ("diesel/2024-01-02-000000_notx/up.sql", CIC.into(), false),
        ("flyway/V1__tx.sql", "SET lock_timeout = '2s';\nALTER TABLE users ADD COLUMN a int;\nREINDEX INDEX CONCURRENTLY users_pkey;\n".into(), false),
        ("flyway/V2__conf.sql", "SET lock_timeout = '2s';\nCREATE INDEX CONCURRENTLY i ON users (a);\n".into(), false),
    ];
    for (name, text, _) in cases {
        write(d, name, text);
    }
    write(
        d,
        "diesel/2024-01-02-000000_notx/metadata.toml",
        "run_in_transaction = false\n",
    );
    write(
        d,
        "flyway/V2__conf.sql.conf",
        "executeInTransaction=false\n",
    );
    for (name, _, in_tx) in cases {
        // Detected from the layout, and named.
        let (_, out, err) = lint_in(d, &["--format", "json", name]);
        let found = rules_of(&out);
        assert_eq!(found.len(), 1, "{name}: {out}{err}");
        assert_eq!(has_cit(&found[0].2), *in_tx, "{name} (detected): {out}");
        let tool = name.split('/').next().unwrap();
        let tool = match tool {
            "gm" => "golang-migrate",
            t => t,
        };
        let (_, out, _) = lint_in(d, &["--format", "json", "--tool", tool, name]);
        assert_eq!(
            has_cit(&rules_of(&out)[0].2),
            *in_tx,
            "{name} (--tool {tool}): {out}"
        );
        // The old switch still wraps every file.
        let (_, out, _) = lint_in(d, &["--format", "json", "--assume-in-transaction", name]);
        assert!(
            has_cit(&rules_of(&out)[0].2),
            "{name} (--assume-in-transaction): {out}"
        );
    }
    // Flyway wraps a migration with no non-transactional statement.
    write(
        d,
        "flyway/V3__wrapped.sql",
        "SET lock_timeout = '2s';\nALTER TABLE users ADD COLUMN b int;\nALTER TABLE users ADD COLUMN c int;\n",
    );
    let (_, out, _) = lint_in(d, &["--format", "json", "flyway/V3__wrapped.sql"]);
    assert!(
        out.contains("one transaction around the file")
            || out.contains("executeInTransaction (default true) (in one transaction)"),
        "{out}"
    );

    // dbmate: transaction:false (only with --tool: `-- migrate:up` is pgcalm's own format).
    write(
        d,
        "dbmate/1_x.sql",
        &format!(
            "-- migrate:up transaction:false\n{CIC}\n-- migrate:down\nDROP INDEX users_email_idx;\n"
        ),
    );
    write(
        d,
        "dbmate/2_x.sql",
        &format!("-- migrate:up\n{CIC}\n-- migrate:down\nDROP INDEX users_email_idx;\n"),
    );
    let (_, out, _) = lint_in(d, &["--format", "json", "--tool", "dbmate", "dbmate"]);
    let found = rules_of(&out);
    assert_eq!(found.len(), 2, "{out}");
    assert!(!has_cit(&found[0].2) && has_cit(&found[1].2), "{out}");
    // dbmate sets no lock_timeout, unlike pgcalm's runner.
    write(
        d,
        "dbmate2/3_x.sql",
        "-- migrate:up\nALTER TABLE users ADD COLUMN x int;\n",
    );
    let (_, out, _) = lint_in(d, &["--format", "json", "--tool", "dbmate", "dbmate2"]);
    assert_eq!(rules_of(&out)[0].2, ["missing-lock-timeout"], "{out}");
    let (code, _, _) = lint_in(d, &["dbmate2"]);
    assert_eq!(
        code, 0,
        "as a pgcalm migration, its runner sets lock_timeout"
    );
}

#[test]
fn down_migrations_are_linted_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "m/000001_x.up.sql", "SELECT 1;\n");
    write(d, "m/000001_x.down.sql", "DROP TABLE users;\n");
    write(
        d,
        "g/00001_x.sql",
        "-- +goose Up\nSELECT 1;\n-- +goose Down\nDROP TABLE users;\n",
    );
    let (code, out, err) = lint_in(d, &["--format", "json", "m", "g"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("000001_x.down.sql: not linted: a golang-migrate down migration (lint it with --include-down)"), "{err}");
    let (code, out, _) = lint_in(d, &["--format", "json", "--include-down", "m", "g"]);
    assert_eq!(code, 1);
    let dropped = rules_of(&out)
        .into_iter()
        .filter(|(_, _, r)| r.contains(&"dropping-table".to_string()))
        .map(|(p, l, _)| (p, l))
        .collect::<Vec<_>>();
    assert_eq!(
        dropped,
        [
            ("m/000001_x.down.sql".to_string(), None),
            ("g/00001_x.sql".to_string(), Some("down".to_string()))
        ]
    );
    // Ruby is not linted, and says so.
    write(
        d,
        "db/migrate/20240101_add.rb",
        "class Add < ActiveRecord::Migration[7.1]; end\n",
    );
    let (code, _, err) = lint_in(d, &["db/migrate/20240101_add.rb"]);
    assert_eq!(code, 0);
    assert!(err.contains("a Rails migration is Ruby"), "{err}");
}

fn lint_stdin(dir: &Path, args: &[&str], input: &str) -> (i32, String, String) {
    let out = pgcalm_in(dir)
        .arg("lint")
        .args(args)
        .write_stdin(input)
        .output()
        .unwrap();
    (out.status.code().unwrap_or(-1), stdout(&out), stderr(&out))
}

#[test]
fn alembic_and_django_sql_output_is_linted_migration_by_migration() {
    let dir = tempfile::tempdir().unwrap();
    // `alembic upgrade --sql`: one BEGIN around every migration (the default).
    let alembic = "BEGIN;\n\nCREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL);\n\n\
        -- Running upgrade  -> a1\n\nCREATE TABLE accounts (id int);\n\n\
        INSERT INTO alembic_version (version_num) VALUES ('a1') RETURNING alembic_version.version_num;\n\n\
        -- Running upgrade a1 -> b2\n\nCREATE INDEX CONCURRENTLY users_email_idx ON users (email);\n\n\
        UPDATE alembic_version SET version_num='b2' WHERE alembic_version.version_num = 'a1';\n\nCOMMIT;\n";
    let (code, out, err) = lint_stdin(
        dir.path(),
        &["--tool", "alembic", "--format", "json", "-"],
        alembic,
    );
    assert_eq!(code, 1, "{err}");
    let found = rules_of(&out);
    let labels: Vec<_> = found.iter().map(|f| f.1.clone().unwrap()).collect();
    assert_eq!(labels, ["upgrade -> a1", "upgrade a1 -> b2"]);
    assert!(found[0].2.is_empty(), "{out}");
    assert!(has_cit(&found[1].2), "{out}");

    // `sqlmigrate` of two migrations, the second one not atomic (no BEGIN/COMMIT).
    let django = "BEGIN;\n--\n-- Create model Account\n--\nCREATE TABLE accounts (id int);\nCOMMIT;\n\
        BEGIN;\n--\n-- Add index\n--\nCREATE INDEX CONCURRENTLY users_email_idx ON users (email);\nCOMMIT;\n";
    let (_, out, _) = lint_stdin(
        dir.path(),
        &["--tool", "django", "--format", "json", "-"],
        django,
    );
    let found = rules_of(&out);
    assert_eq!(found.len(), 2, "{out}");
    assert_eq!(found[1].1.as_deref(), Some("migration 2"));
    assert!(!has_cit(&found[0].2) && has_cit(&found[1].2), "{out}");
    let non_atomic = "CREATE INDEX CONCURRENTLY users_email_idx ON users (email);\n";
    let (_, out, _) = lint_stdin(
        dir.path(),
        &["--tool", "django", "--format", "json", "-"],
        non_atomic,
    );
    assert!(!has_cit(&rules_of(&out)[0].2), "{out}");
}

/// A project with one risky statement, one ignored one and a file that does not parse.
fn ci_project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "db/V1__index.sql",
        "SET lock_timeout = '2s';\nCREATE INDEX users_email_idx ON users (email);\n",
    );
    write(
        dir.path(),
        "db/V2__docs.sql",
        "CREATE TABLE docs (body json);\n",
    );
    write(
        dir.path(),
        "db/V3__broken.sql",
        "ALTER TABLE users ADD COLUMN;\n",
    );
    dir
}

#[test]
fn sarif_output_has_the_shape_code_scanning_requires() {
    let dir = ci_project();
    let (code, out, err) = lint_in(dir.path(), &["--format", "sarif", "db"]);
    assert_eq!(code, 2, "{err}");
    let doc: Value = serde_json::from_str(&out).unwrap();
    // SARIF 2.1.0's required properties, and what GitHub code scanning reads.
    assert_eq!(doc["version"], "2.1.0");
    assert!(doc["$schema"].as_str().unwrap().contains("sarif-2.1.0"));
    let run = &doc["runs"][0];
    let driver = &run["tool"]["driver"];
    assert_eq!(driver["name"], "pgcalm");
    let rules = driver["rules"].as_array().unwrap();
    for rule in rules {
        assert!(rule["id"].is_string() && rule["shortDescription"]["text"].is_string());
        assert!(rule["help"]["text"].is_string(), "{rule}");
    }
    let results = run["results"].as_array().unwrap();
    assert!(!results.is_empty());
    for r in results {
        let id = r["ruleId"].as_str().unwrap();
        let index = r["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(rules[index]["id"], id, "ruleIndex points at its rule");
        assert!(["error", "warning", "note", "none"].contains(&r["level"].as_str().unwrap()));
        assert!(!r["message"]["text"].as_str().unwrap().is_empty());
        let loc = &r["locations"][0]["physicalLocation"];
        assert!(
            loc["artifactLocation"]["uri"]
                .as_str()
                .unwrap()
                .starts_with("db/V")
        );
        let region = &loc["region"];
        for k in ["startLine", "startColumn", "endLine", "endColumn"] {
            assert!(region[k].as_u64().unwrap() >= 1, "{k}: {r}");
        }
        assert!(region["endLine"].as_u64() >= region["startLine"].as_u64());
        assert!(r["partialFingerprints"]["pgcalm/v1"].is_string());
    }
    // The file that does not parse is a result, not only a line on stderr.
    assert!(
        results.iter().any(|r| r["ruleId"] == "syntax-error"
            && r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
                == "db/V3__broken.sql"),
        "{out}"
    );
    let out = out.replace(env!("CARGO_PKG_VERSION"), "[version]");
    insta::assert_snapshot!("ci_sarif", out);
}

#[test]
fn gitlab_code_quality_output() {
    let dir = ci_project();
    let (code, out, _) = lint_in(dir.path(), &["--format", "gitlab", "db"]);
    assert_eq!(code, 2);
    let issues: Vec<Value> = serde_json::from_str(&out).unwrap();
    let mut fingerprints = std::collections::HashSet::new();
    for i in &issues {
        for k in ["description", "check_name", "fingerprint", "severity"] {
            assert!(i[k].is_string(), "{k}: {i}");
        }
        assert!(
            ["info", "minor", "major", "critical", "blocker"]
                .contains(&i["severity"].as_str().unwrap())
        );
        assert!(
            i["location"]["path"].is_string()
                && i["location"]["lines"]["begin"].as_u64().unwrap() >= 1
        );
        assert!(
            fingerprints.insert(i["fingerprint"].as_str().unwrap().to_string()),
            "unique"
        );
    }
    assert!(issues.iter().any(|i| i["check_name"] == "syntax-error"));
    insta::assert_snapshot!("ci_gitlab", out);
    // The same findings give the same fingerprints on the next run.
    assert_eq!(lint_in(dir.path(), &["--format", "gitlab", "db"]).1, out);
}

#[test]
fn fail_on_sets_which_findings_fail_the_run() {
    let dir = tempfile::tempdir().unwrap();
    // A warning only (a json column).
    write(dir.path(), "warn.sql", "CREATE TABLE docs (body json);\n");
    let (_, out, _) = lint_in(dir.path(), &["--format", "json", "warn.sql"]);
    let doc: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (
            doc["summary"]["errors"].as_u64(),
            doc["summary"]["warnings"].as_u64()
        ),
        (Some(0), Some(1)),
        "{out}"
    );
    assert_eq!(lint_in(dir.path(), &["warn.sql"]).0, 1);
    assert_eq!(
        lint_in(dir.path(), &["--fail-on", "warning", "warn.sql"]).0,
        1
    );
    assert_eq!(
        lint_in(dir.path(), &["--fail-on", "error", "warn.sql"]).0,
        0
    );
    write(dir.path(), "err.sql", "CREATE INDEX i ON users (a);\n");
    assert_eq!(lint_in(dir.path(), &["--fail-on", "error", "err.sql"]).0, 1);
    assert_eq!(lint_in(dir.path(), &["--fail-on", "never", "err.sql"]).0, 0);
    write(dir.path(), "bad.sql", "ALTER TABLE;\n");
    assert_eq!(lint_in(dir.path(), &["--fail-on", "error", "bad.sql"]).0, 2);
    assert_eq!(lint_in(dir.path(), &["--fail-on", "never", "bad.sql"]).0, 0);
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.com",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn since_lints_only_the_files_added_or_changed_since_a_ref() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    git(d, &["init", "-q", "-b", "main"]);
    write(
        d,
        "db/000001_old.up.sql",
        "CREATE INDEX a_idx ON users (a);\n",
    );
    write(d, "db/000002_changed.up.sql", "SELECT 1;\n");
    write(d, "db/000003_deleted.up.sql", "SELECT 1;\n");
    git(d, &["add", "db"]);
    git(d, &["commit", "-q", "-m", "base"]);
    git(d, &["branch", "base"]);
    write(
        d,
        "db/000002_changed.up.sql",
        "CREATE INDEX b_idx ON users (b);\n",
    );
    write(
        d,
        "db/000004_new.up.sql",
        "CREATE INDEX c_idx ON users (c);\n",
    );
    std::fs::remove_file(d.join("db/000003_deleted.up.sql")).unwrap();
    git(d, &["add", "-A", "db"]);
    git(d, &["commit", "-q", "-m", "change"]);
    // Every file, then only those added or changed since `base`.
    let (_, out, _) = lint_in(d, &["--format", "json", "db"]);
    assert_eq!(rules_of(&out).len(), 3);
    let (code, out, err) = lint_in(d, &["--format", "json", "--since", "base", "db"]);
    assert_eq!(code, 1, "{err}");
    let paths: Vec<_> = rules_of(&out).into_iter().map(|f| f.0).collect();
    assert_eq!(paths, ["db/000002_changed.up.sql", "db/000004_new.up.sql"]);
    // From a subdirectory, and an uncommitted change counts too.
    write(
        d,
        "db/000001_old.up.sql",
        "CREATE INDEX a2_idx ON users (a);\n",
    );
    let (_, out, _) = lint_in(&d.join("db"), &["--format", "json", "--since", "base", "."]);
    assert_eq!(rules_of(&out).len(), 3, "{out}");
    // A ref git does not know is an error naming it.
    let (code, _, err) = lint_in(d, &["--since", "no-such-ref", "db"]);
    assert_eq!(code, 2);
    assert!(err.contains("--since no-such-ref"), "{err}");
}

#[test]
fn since_still_learns_the_indexes_of_the_unchanged_files_before() {
    // The new migration drops two indexes an old one created on `post`, in one
    // transaction: only the first drop waits for the table.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    git(d, &["init", "-q", "-b", "main"]);
    write(
        d,
        "db/0001_old.sql",
        "CREATE INDEX p_a ON post (a);\nCREATE INDEX p_b ON post (b);\n",
    );
    git(d, &["add", "db"]);
    git(d, &["commit", "-q", "-m", "base"]);
    write(
        d,
        "db/0002_new.sql",
        "SET lock_timeout = '2s';\nDROP INDEX p_a;\nDROP INDEX p_b;\n",
    );
    git(d, &["add", "db"]);
    let (code, out, err) = lint_in(
        d,
        &[
            "--assume-in-transaction",
            "--format",
            "json",
            "--since",
            "main",
            "db",
        ],
    );
    assert_eq!(code, 1, "{err}");
    assert_eq!(
        rules_of(&out),
        [(
            "db/0002_new.sql".to_string(),
            None,
            vec!["require-concurrent-index-deletion".to_string()]
        )]
    );
}

#[test]
fn disable_and_enable_on_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "x.sql", "CREATE INDEX i ON t (a);\n");
    let count = |args: &[&str]| {
        let mut all = vec!["--format", "json"];
        all.extend_from_slice(args);
        all.push("x.sql");
        let (_, out, _) = lint_in(dir.path(), &all);
        rules_of(&out)[0].2.clone()
    };
    assert_eq!(
        count(&[]),
        ["missing-lock-timeout", "require-concurrent-index-creation"]
    );
    assert_eq!(
        count(&["--disable", "missing-lock-timeout"]),
        ["require-concurrent-index-creation"]
    );
    // The command line wins over pgcalm.toml.
    write(
        dir.path(),
        "pgcalm.toml",
        "[lint]\ndisable = [\"missing-lock-timeout\"]\n",
    );
    assert_eq!(count(&[]), ["require-concurrent-index-creation"]);
    assert_eq!(
        count(&["--enable", "missing-lock-timeout"]),
        ["missing-lock-timeout", "require-concurrent-index-creation"]
    );
    // An unknown rule is an error with the closest name.
    let (code, _, err) = lint_in(dir.path(), &["--disable", "missing-lock-timout", "x.sql"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("did you mean `missing-lock-timeout`?"),
        "{err}"
    );
    write(
        dir.path(),
        "pgcalm.toml",
        "[lint]\nenable = [\"renaming-colum\"]\ntool = \"prisma\"\n",
    );
    let (code, _, err) = lint_in(dir.path(), &["x.sql"]);
    assert_eq!(code, 2);
    assert!(err.contains("did you mean `renaming-column`?"), "{err}");
    write(dir.path(), "pgcalm.toml", "[lint]\ntool = \"flyaway\"\n");
    let (code, _, err) = lint_in(dir.path(), &["x.sql"]);
    assert_eq!(code, 2);
    assert!(err.contains("did you mean `flyway`?"), "{err}");
}

#[test]
fn pgcalm_toml_names_the_tool() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "x.sql", CIC2);
    let (_, out, _) = lint_in(dir.path(), &["--format", "json", "x.sql"]);
    assert!(
        !has_cit(&rules_of(&out)[0].2),
        "plain SQL: each statement on its own"
    );
    write(
        dir.path(),
        "pgcalm.toml",
        "[lint]\ntool = \"golang-migrate\"\n",
    );
    let (_, out, _) = lint_in(dir.path(), &["--format", "json", "x.sql"]);
    assert!(has_cit(&rules_of(&out)[0].2), "{out}");
}

#[test]
fn an_expired_ignore_is_a_finding_and_the_finding_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let sql = |until: &str| {
        format!(
            "SET lock_timeout = '2s';\n-- pgcalm:ignore require-concurrent-index-creation until {until} tiny table\nCREATE INDEX i ON t (a);\n"
        )
    };
    write(dir.path(), "future.sql", &sql("2999-01-01"));
    write(dir.path(), "past.sql", &sql("2020-01-01"));
    let (code, _, _) = lint_in(dir.path(), &["future.sql"]);
    assert_eq!(code, 0);
    let (code, out, _) = lint_in(dir.path(), &["--format", "json", "past.sql"]);
    assert_eq!(code, 1);
    assert_eq!(
        rules_of(&out)[0].2,
        ["expired-ignore", "require-concurrent-index-creation"]
    );
    assert!(out.contains("expired on 2020-01-01"), "{out}");
}

#[test]
fn a_goose_statement_block_in_a_no_transaction_file_is_one_implicit_transaction() {
    // goose sends a `-- +goose StatementBegin` ... `StatementEnd` block as one Exec: one
    // simple-query message, whose statements PostgreSQL runs in one implicit transaction
    // (hatchet v1_0_109.sql:81). Outside a block each statement goes on its own.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "goose/00001_block.sql",
        "-- +goose NO TRANSACTION\n-- +goose Up\nSET lock_timeout = '2s';\n\
         -- +goose StatementBegin\nALTER TABLE users VALIDATE CONSTRAINT users_email_check;\nALTER TABLE users ALTER COLUMN email SET NOT NULL;\nRESET lock_timeout;\nALTER TABLE users DROP CONSTRAINT users_email_check;\n-- +goose StatementEnd\n\
         ALTER TABLE orders ADD COLUMN note2 text;\n\
         -- +goose StatementBegin\nCREATE INDEX CONCURRENTLY users_email_idx ON users (email);\nSELECT 1;\n-- +goose StatementEnd\n\
         -- +goose StatementBegin\nCREATE INDEX CONCURRENTLY users_name_idx ON users (name);\n-- +goose StatementEnd\n\
         -- +goose Down\nDROP INDEX users_email_idx;\n",
    );
    let (_, out, err) = lint_in(d, &["--format", "json", "--tool", "goose", "goose"]);
    let doc: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
    let found: Vec<(u64, String)> = doc["files"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["span"]["line"].as_u64().unwrap(),
                f["rule"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    // Line 8: the block already holds users (lines 5-6), so no lock_timeout is needed;
    // line 10 runs on its own after RESET: it needs one. Line 12: CONCURRENTLY in a
    // block of two statements fails; alone in its block (line 15) it runs.
    assert!(
        !found.contains(&(8, "missing-lock-timeout".into())),
        "{found:?}"
    );
    assert!(
        found.contains(&(10, "missing-lock-timeout".into())),
        "{found:?}"
    );
    assert!(
        found.contains(&(12, "concurrently-in-transaction".into())),
        "{found:?}"
    );
    assert!(!found.iter().any(|(l, _)| *l == 15), "{found:?}");
}

/// Writes `files` under a temporary directory, lints it (JSON, `args` first, without
/// `missing-lock-timeout`), and checks the files are read in `order` and that the file
/// dropping index `p_a` knows its table (`post`) from the earlier file that built it.
fn assert_read_in_order(files: &[(&str, &str)], args: &[&str], order: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (path, sql) in files {
        write(d, path, sql);
    }
    let mut all = args.to_vec();
    all.extend(["--disable", "missing-lock-timeout", "--format", "json"]);
    all.push(Path::new(order[0]).parent().unwrap().to_str().unwrap());
    let (_, out, err) = lint_in(d, &all);
    let doc: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
    let linted = doc["files"].as_array().unwrap();
    let paths: Vec<&str> = linted.iter().map(|f| f["path"].as_str().unwrap()).collect();
    assert_eq!(paths, order, "{err}");
    let drop = linted
        .iter()
        .flat_map(|f| f["findings"].as_array().unwrap())
        .find(|x| x["rule"] == "require-concurrent-index-deletion")
        .unwrap_or_else(|| panic!("no DROP INDEX finding: {out}"));
    assert_eq!(drop["table"], "post", "{drop}");
}

#[test]
fn flyway_files_are_read_in_version_order() {
    // Flyway runs V2 before V10 (versions compare as numbers, part by part) and the
    // repeatable R__ migrations after every versioned one: V10's DROP INDEX is on the
    // table V2's index was built on.
    assert_read_in_order(
        &[
            ("db/V2__index.sql", "CREATE INDEX p_a ON post (a);\n"),
            ("db/V10__drop.sql", "DROP INDEX p_a;\n"),
            ("db/V1.1__more.sql", "SELECT 1;\n"),
            ("db/R__views.sql", "SELECT 2;\n"),
        ],
        &["--tool", "flyway"],
        &[
            "db/V1.1__more.sql",
            "db/V2__index.sql",
            "db/V10__drop.sql",
            "db/R__views.sql",
        ],
    );
}

#[test]
fn unpadded_version_prefixes_are_read_in_number_order() {
    // golang-migrate, goose and dbmate order by the number before the first `_`: 2 runs
    // before 10 whether or not it is zero-padded.
    assert_read_in_order(
        &[
            ("gm/1_t.up.sql", "SELECT 1;\n"),
            ("gm/2_index.up.sql", "CREATE INDEX p_a ON post (a);\n"),
            ("gm/10_drop.up.sql", "DROP INDEX p_a;\n"),
        ],
        &[],
        &["gm/1_t.up.sql", "gm/2_index.up.sql", "gm/10_drop.up.sql"],
    );
}
