//! `pgcalm lint --fix` with the real binary on temporary files: the safe SQL goes in
//! where it is right for the file's tool and transaction mode, everything else is kept
//! byte for byte, a file in one transaction keeps its finding, a second run changes
//! nothing, the write keeps the file's permissions and leaves no temporary file, and
//! `--dry-run` prints the diff instead.
#![allow(unused_crate_dependencies)] // a test crate uses some of the dev-dependencies

mod common;

use std::path::Path;

use common::{lint_in, write};
use serde_json::Value;

/// The rules lint finds in `file` (JSON), and its exit code.
fn rules_in(dir: &Path, args: &[&str]) -> (i32, Vec<String>) {
    let mut all = vec!["--format", "json"];
    all.extend_from_slice(args);
    let (code, out, err) = lint_in(dir, &all);
    let doc: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    let rules = doc["files"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|f| f["findings"].as_array().unwrap().iter())
        .map(|x| x["rule"].as_str().unwrap().to_string())
        .collect();
    (code, rules)
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap()
}

const NO_TX: &str = "\
-- migrate:up transaction:false
-- the email lookup of the sign-in page
SET lock_timeout = '2s';

CREATE INDEX   users_email_idx ON users (email)  ; -- keep this comment

-- migrate:down
DROP INDEX CONCURRENTLY users_email_idx;
";

#[test]
fn fix_makes_a_plain_create_index_concurrently_where_the_file_runs_outside_a_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "migrations/20240101000000_email.sql", NO_TX);
    write(
        d,
        "gm/000001_email.up.sql",
        "-- golang-migrate: one statement, so no transaction\nCREATE INDEX users_name_idx ON users (name);\n",
    );
    let (code, before) = rules_in(d, &["migrations", "gm"]);
    assert_eq!(code, 1);
    assert_eq!(
        before
            .iter()
            .filter(|r| *r == "require-concurrent-index-creation")
            .count(),
        2,
        "{before:?}"
    );

    let (code, out, err) = lint_in(d, &["--fix", "migrations", "gm"]);
    assert!(
        err.contains(
            "fixed migrations/20240101000000_email.sql: line 5 require-concurrent-index-creation"
        ),
        "{err}"
    );
    assert!(
        err.contains("fixed gm/000001_email.up.sql: line 2 require-concurrent-index-creation"),
        "{err}"
    );
    // Only the statement changed: comments, blank lines, spacing and the rest are kept.
    assert_eq!(
        read(d, "migrations/20240101000000_email.sql"),
        NO_TX.replace(
            "CREATE INDEX   users_email_idx ON users (email)  ;",
            // The statement's own spacing is kept too; its `;` ends it.
            "CREATE INDEX CONCURRENTLY   users_email_idx ON users (email);"
        )
    );
    assert_eq!(
        read(d, "gm/000001_email.up.sql"),
        "-- golang-migrate: one statement, so no transaction\nCREATE INDEX CONCURRENTLY users_name_idx ON users (name);\n"
    );
    // What remains is reported and sets the exit code; the fixed rule is gone.
    let (code_after, after) = rules_in(d, &["migrations", "gm"]);
    assert!(
        !after
            .iter()
            .any(|r| r == "require-concurrent-index-creation"),
        "{after:?}\n{out}"
    );
    assert_eq!(
        code, code_after,
        "--fix exits as the fixed files lint: {out}"
    );
}

const CLAUSES: &str = "\
-- migrate:up transaction:false
DROP INDEX IF EXISTS \"IndexName\" CASCADE;
ALTER TABLE \"Orders\" ADD CONSTRAINT \"Orders_user_fk\" FOREIGN KEY (\"userId\") REFERENCES \"Users\" (id) ON DELETE CASCADE;
ALTER TABLE orders ADD COLUMN note text, ADD CONSTRAINT orders_amount_check CHECK (amount > 0);

-- migrate:down
";

#[test]
fn fix_keeps_quoted_names_and_the_other_clauses_and_leaves_what_it_cannot_fix() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "migrations/20240101000000_fk.sql", CLAUSES);
    let (code, _, err) = lint_in(d, &["--fix", "migrations"]);
    assert_eq!(code, 1, "the DROP INDEX ... CASCADE findings remain: {err}");
    assert_eq!(
        read(d, "migrations/20240101000000_fk.sql"),
        "\
-- migrate:up transaction:false
DROP INDEX IF EXISTS \"IndexName\" CASCADE;
ALTER TABLE \"Orders\" ADD CONSTRAINT \"Orders_user_fk\" FOREIGN KEY (\"userId\") REFERENCES \"Users\" (id) ON DELETE CASCADE NOT VALID;
ALTER TABLE \"Orders\" VALIDATE CONSTRAINT \"Orders_user_fk\";
ALTER TABLE orders ADD COLUMN note text, ADD CONSTRAINT orders_amount_check CHECK (amount > 0) NOT VALID;
ALTER TABLE orders VALIDATE CONSTRAINT orders_amount_check;

-- migrate:down
"
    );
    let (_, after) = rules_in(d, &["migrations"]);
    assert!(
        !after.iter().any(|r| r == "constraint-missing-not-valid"),
        "{after:?}"
    );
    assert!(
        after
            .iter()
            .any(|r| r == "require-concurrent-index-deletion"),
        "{after:?}"
    );
    assert!(
        after.iter().any(|r| r == "dropping-with-cascade"),
        "{after:?}"
    );
}

const IN_TX: &str = "\
-- migrate:up
CREATE INDEX users_email_idx ON users (email);

-- migrate:down
DROP INDEX IF EXISTS users_email_idx;
";

#[test]
fn a_file_that_runs_in_one_transaction_keeps_its_statement_and_its_finding() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "migrations/20240101000000_tx.sql", IN_TX);
    // Prisma runs several statements in one implicit transaction.
    let prisma = "SET lock_timeout = '2s';\nCREATE INDEX users_name_idx ON users (name);\n";
    write(
        d,
        "prisma/migrations/20240101000000_two/migration.sql",
        prisma,
    );
    let (code, out, err) = lint_in(d, &["--fix", "migrations", "prisma"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(!err.contains("fixed"), "{err}");
    assert_eq!(read(d, "migrations/20240101000000_tx.sql"), IN_TX);
    assert_eq!(
        read(d, "prisma/migrations/20240101000000_two/migration.sql"),
        prisma
    );
    // The finding stays, with its note on where CONCURRENTLY can go.
    assert!(out.contains("require-concurrent-index-creation"), "{out}");
    assert!(out.contains("in a migration of its own"), "{out}");
    let (_, after) = rules_in(d, &["migrations", "prisma"]);
    assert!(
        !after.iter().any(|r| r == "concurrently-in-transaction"),
        "{after:?}"
    );
}

#[test]
fn fix_twice_changes_nothing_and_keeps_the_permissions_without_a_temporary_file() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "migrations/20240101000000_email.sql", NO_TX);
    let path = d.join("migrations/20240101000000_email.sql");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    let (_, _, err) = lint_in(d, &["--fix", "migrations"]);
    assert!(err.contains("fixed"), "{err}");
    let once = read(d, "migrations/20240101000000_email.sql");
    assert_ne!(once, NO_TX);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
    let names: Vec<String> = std::fs::read_dir(d.join("migrations"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        ["20240101000000_email.sql"],
        "no temporary file is left"
    );

    let (_, _, err) = lint_in(d, &["--fix", "migrations"]);
    assert!(!err.contains("fixed"), "{err}");
    assert_eq!(read(d, "migrations/20240101000000_email.sql"), once);
}

#[test]
fn fix_dry_run_prints_the_diff_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "migrations/20240101000000_email.sql", NO_TX);
    write(d, "migrations/20240102000000_fk.sql", CLAUSES);
    let (code, out, err) = lint_in(d, &["--fix", "--dry-run", "migrations"]);
    assert_eq!(read(d, "migrations/20240101000000_email.sql"), NO_TX);
    assert_eq!(read(d, "migrations/20240102000000_fk.sql"), CLAUSES);
    assert_eq!(code, 1, "the DROP INDEX ... CASCADE findings remain");
    // The diff comes first, then the report of what remains.
    let diff: String = out
        .lines()
        .take_while(|l| l.starts_with([' ', '+', '-', '@']))
        .map(|l| format!("{l}\n"))
        .collect();
    insta::assert_snapshot!(diff);
    assert!(
        err.contains("would fix migrations/20240101000000_email.sql: line 5"),
        "{err}"
    );
    // `--diff` is the same.
    let (_, again, _) = lint_in(d, &["--fix", "--diff", "migrations"]);
    assert_eq!(again, out);
    // A machine format keeps stdout to itself: the diff goes to stderr.
    let (code, json, err) = lint_in(d, &["--fix", "--dry-run", "--format", "json", "migrations"]);
    assert_eq!(code, 1);
    serde_json::from_str::<serde_json::Value>(&json).expect("stdout is one JSON document");
    assert!(err.contains(diff.lines().next().unwrap()), "{err}");
}

#[test]
fn a_fix_of_several_statements_is_not_written_into_a_one_query_file() {
    // Prisma, golang-migrate, Diesel `run_in_transaction = false` send a file as one
    // query: its one statement runs alone, but a fix of several statements written in
    // would run them in one implicit transaction, where CONCURRENTLY and a VALIDATE of
    // its own fail (crates.io 2024-03-05-120032, formbricks 20240530073540, kratos
    // 20241031094100000002). The finding says to split it into migrations instead.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let files = [
        (
            "prisma/migrations/20240101000000_one/migration.sql",
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS users_name_idx ON users (name);\n",
        ),
        (
            "gm/000001_fk.up.sql",
            "ALTER TABLE orders ADD CONSTRAINT orders_user_fk FOREIGN KEY (user_id) REFERENCES users (id);\n",
        ),
        (
            "gm/000002_index.up.sql",
            "CREATE INDEX users_email_idx ON users (email);\n",
        ),
    ];
    for (name, text) in files {
        write(d, name, text);
    }
    let (_, out, err) = lint_in(d, &["--fix", "prisma", "gm"]);
    // The plain index gets its one-statement fix; the others stay as they were.
    assert_eq!(
        read(d, "gm/000002_index.up.sql"),
        "CREATE INDEX CONCURRENTLY users_email_idx ON users (email);\n",
        "{out}{err}"
    );
    assert_eq!(read(d, files[0].0), files[0].1, "{out}{err}");
    // (at most a lock_timeout before the statement, which runs fine with it)
    let fk = read(d, files[1].0);
    assert!(
        fk.ends_with(files[1].1) && !fk.contains("VALIDATE"),
        "{fk}: {out}{err}"
    );
    let flat = out.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(flat.contains("migrations of one statement each"), "{out}");
    assert!(
        flat.contains("`DROP INDEX CONCURRENTLY IF EXISTS users_name_idx;`, then `CREATE INDEX"),
        "{out}"
    );
    let (_, after) = rules_in(d, &["prisma", "gm"]);
    assert!(
        !after.iter().any(|r| r == "concurrently-in-transaction"),
        "{after:?}"
    );
}
