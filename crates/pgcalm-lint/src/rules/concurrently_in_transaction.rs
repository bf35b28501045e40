//! `concurrently-in-transaction`: a statement PostgreSQL refuses inside a transaction
//! block (CONCURRENTLY index builds and drops, REINDEX CONCURRENTLY, DETACH PARTITION
//! CONCURRENTLY, VACUUM, ...) in a transaction: a BEGIN before it, a migration section
//! without `transaction:false`, or `--assume-in-transaction`. It fails with SQLSTATE
//! 25001 when it runs.

use crate::engine::{Cx, Rule, Violation};
use crate::rule_id::RuleId;
use crate::unit::UnitKind;

/// The rule.
pub(super) static RULE: Rule = Rule {
    id: RuleId::ConcurrentlyInTransaction,
    check,
};

fn check(cx: &Cx<'_>) -> Vec<Violation> {
    if !cx.locks.outside_transaction || !cx.state.in_transaction {
        return Vec::new();
    }
    let help = match cx.kind {
        UnitKind::Migration { .. } => {
            "mark the section `-- migrate:up transaction:false` (or `-- migrate:down \
             transaction:false`): pgcalm then runs each statement on its own and resumes \
             after the last one that completed"
        }
        UnitKind::PlainSql if cx.options.assume_in_transaction => {
            "the tool that runs this file wraps it in a transaction: move the statement to a \
             file it runs without one"
        }
        UnitKind::PlainSql if cx.state.simple_query.is_some_and(|n| n > 1) => {
            "the tool sends it in one query with other statements, which PostgreSQL runs as              one implicit transaction: send it alone (for goose, alone in its `-- +goose              StatementBegin` block, or outside any)"
        }
        UnitKind::PlainSql => "run it outside BEGIN ... COMMIT, as a statement of its own",
    };
    vec![
        Violation::new(format!(
            "{} cannot run inside a transaction block (PostgreSQL error 25001)",
            cx.locks.label
        ))
        .help(help),
    ]
}

#[cfg(test)]
mod tests {
    use insta::assert_snapshot;

    use crate::rules::test_support::{check, check_migration, check_with};
    use crate::{LintOptions, UnitKind};

    const RULE: &str = "concurrently-in-transaction";

    #[test]
    fn inside_begin() {
        assert_snapshot!(check(RULE, "BEGIN;\nCREATE INDEX CONCURRENTLY i ON t (a);\nCOMMIT;"), @"
        error[concurrently-in-transaction] 2:1
          lock: CREATE INDEX CONCURRENTLY takes SHARE UPDATE EXCLUSIVE on t: blocks no reads or writes
          CREATE INDEX CONCURRENTLY cannot run inside a transaction block (PostgreSQL error 25001)
          help: run it outside BEGIN ... COMMIT, as a statement of its own
        ");
    }

    #[test]
    fn in_a_transactional_migration() {
        assert_snapshot!(check_migration(RULE, "DROP INDEX CONCURRENTLY i;", true), @"
        error[concurrently-in-transaction] 1:1
          lock: DROP INDEX CONCURRENTLY takes SHARE UPDATE EXCLUSIVE on the table of index i: blocks no reads or writes
          DROP INDEX CONCURRENTLY cannot run inside a transaction block (PostgreSQL error 25001)
          help: mark the section `-- migrate:up transaction:false` (or `-- migrate:down transaction:false`): pgcalm then runs each statement on its own and resumes after the last one that completed
        ");
        assert_snapshot!(check_migration(RULE, "DROP INDEX CONCURRENTLY i;", false), @"ok");
    }

    #[test]
    fn assume_in_transaction() {
        let options = LintOptions {
            assume_in_transaction: true,
            ..LintOptions::default()
        };
        assert_snapshot!(check_with(RULE, "REINDEX INDEX CONCURRENTLY i;", UnitKind::PlainSql, &options), @"
        error[concurrently-in-transaction] 1:1
          lock: REINDEX CONCURRENTLY takes SHARE UPDATE EXCLUSIVE on the table of index i: blocks no reads or writes
          REINDEX CONCURRENTLY cannot run inside a transaction block (PostgreSQL error 25001)
          help: the tool that runs this file wraps it in a transaction: move the statement to a file it runs without one
        ");
    }

    #[test]
    fn after_commit_is_fine() {
        assert_snapshot!(check(RULE, "BEGIN;\nCREATE TABLE t (a int);\nCOMMIT;\nCREATE INDEX CONCURRENTLY i ON t (a);\nVACUUM t;"), @"ok");
    }
}
