//! docs/locks.md is rendered from the lock table; this test fails when it is stale.
//! `PGCALM_UPDATE_DOCS=1 cargo test -p pgcalm-lint --test docs` rewrites it.
#![allow(unused_crate_dependencies)] // a test crate uses some of the dev-dependencies

use std::path::PathBuf;

#[test]
fn docs_locks_md_is_up_to_date() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/locks.md");
    let expected = pgcalm_lint::locks_markdown();
    let actual = std::fs::read_to_string(&path).unwrap_or_default();
    if actual == expected {
        return;
    }
    if std::env::var_os("PGCALM_UPDATE_DOCS").is_some() {
        std::fs::write(&path, &expected).expect("write docs/locks.md");
        return;
    }
    panic!(
        "docs/locks.md is out of date with the lock table; run \
         `PGCALM_UPDATE_DOCS=1 cargo test -p pgcalm-lint --test docs` and commit it"
    );
}
