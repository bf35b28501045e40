//! `backfill-in-ddl-transaction`: an `UPDATE` or `DELETE` in a transaction that already
//! holds, from an earlier statement, a lock that blocks reads or writes of an existing
//! table (ACCESS EXCLUSIVE from ADD COLUMN, SHARE from CREATE INDEX, ...). Locks last
//! until COMMIT, so the table stays blocked for as long as the data change runs, however
//! small its batch. A migration tool's one-row version table (`alembic_version`, ...) or a
//! system catalog (`UPDATE pg_index ...`) is bookkeeping: not flagged.

use pg_query::NodeEnum;

use crate::engine::{Cx, Rule, Violation};
use crate::locks::RelName;
use crate::rule_id::RuleId;
use crate::rules::is_bookkeeping_table;
use crate::unit::UnitKind;

/// The rule.
pub(super) static RULE: Rule = Rule {
    id: RuleId::BackfillInDdlTransaction,
    check,
};

fn check(cx: &Cx<'_>) -> Vec<Violation> {
    let relation = match cx.node {
        NodeEnum::UpdateStmt(u) => u.relation.as_ref(),
        NodeEnum::DeleteStmt(d) => d.relation.as_ref(),
        _ => return Vec::new(),
    };
    // A migration tool's version table or a system catalog: bookkeeping, over at once.
    if !cx.state.in_transaction
        || relation.is_some_and(|r| is_bookkeeping_table(&RelName::from_range_var(r)))
    {
        return Vec::new();
    }
    let Some(held) = cx
        .state
        .held
        .iter()
        .filter(|l| l.blocks().any())
        .max_by_key(|l| l.mode)
    else {
        return Vec::new();
    };
    let help = match cx.kind {
        UnitKind::Migration { .. } => {
            "commit the schema change first: move the data change to a later migration with \
             `-- migrate:up transaction:false`, in batches by primary key"
        }
        UnitKind::PlainSql => {
            "COMMIT the schema change first, then change the data in batches by primary key, \
             each batch its own transaction"
        }
    };
    vec![
        Violation::new(format!(
            "{} runs in the transaction that already holds {} on {} from an earlier statement: \
             {} of it wait until COMMIT, for as long as this data change takes",
            cx.locks.label,
            held.mode,
            held.target,
            held.blocks()
        ))
        .help(help)
        .lock(held),
    ]
}

#[cfg(test)]
mod tests {
    use insta::assert_snapshot;

    use crate::rules::test_support::{check, check_migration};

    const RULE: &str = "backfill-in-ddl-transaction";

    #[test]
    fn update_after_add_column_in_one_transaction() {
        assert_snapshot!(check(RULE, "SET lock_timeout = '2s';\nBEGIN;\nALTER TABLE users ADD COLUMN plan text;\nUPDATE users SET plan = 'free' WHERE id BETWEEN 1 AND 10000;\nCOMMIT;"), @"
        error[backfill-in-ddl-transaction] 4:1
          lock: UPDATE takes ACCESS EXCLUSIVE on users: blocks reads and writes
          UPDATE runs in the transaction that already holds ACCESS EXCLUSIVE on users from an earlier statement: reads and writes of it wait until COMMIT, for as long as this data change takes
          help: COMMIT the schema change first, then change the data in batches by primary key, each batch its own transaction
        ");
    }

    #[test]
    fn in_a_transactional_migration() {
        assert_snapshot!(check_migration(RULE, "CREATE INDEX i ON orders (state);\nDELETE FROM orders WHERE id < 100;", true), @"
        error[backfill-in-ddl-transaction] 2:1
          lock: DELETE takes SHARE on orders: blocks writes
          DELETE runs in the transaction that already holds SHARE on orders from an earlier statement: writes of it wait until COMMIT, for as long as this data change takes
          help: commit the schema change first: move the data change to a later migration with `-- migrate:up transaction:false`, in batches by primary key
        ");
    }

    #[test]
    fn after_commit_or_on_weak_locks_only() {
        assert_snapshot!(check(RULE, "BEGIN;\nALTER TABLE users ADD COLUMN plan text;\nCOMMIT;\nUPDATE users SET plan = 'free' WHERE id < 100;"), @"ok");
        assert_snapshot!(check(RULE, "BEGIN;\nCREATE TABLE s (id int);\nINSERT INTO s SELECT id FROM users;\nUPDATE s SET id = 0;\nCOMMIT;"), @"ok");
        assert_snapshot!(check_migration(RULE, "ALTER TABLE users ADD COLUMN plan text;\nUPDATE users SET plan = 'free' WHERE id < 100;", false), @"ok");
    }

    #[test]
    fn a_version_table_or_a_catalog_is_bookkeeping() {
        assert_snapshot!(check_migration(RULE, "ALTER TABLE users ADD COLUMN plan text;\nUPDATE alembic_version SET version_num = 'ae1027a6acf' WHERE alembic_version.version_num = '1975ea83b712';", true), @"ok");
        // A catalog tweak around a bulk load (Lemmy re-enables indexes so).
        assert_snapshot!(check_migration(RULE, "ALTER TABLE t DISABLE TRIGGER ALL;\nUPDATE pg_index SET indisready = TRUE WHERE indrelid = (SELECT oid FROM pg_class WHERE relname = 't');", true), @"ok");
    }
}
