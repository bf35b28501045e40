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
