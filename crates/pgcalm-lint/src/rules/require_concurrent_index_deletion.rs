//! `require-concurrent-index-deletion`: `DROP INDEX` without CONCURRENTLY takes ACCESS
//! EXCLUSIVE on the index's table. The drop itself is quick, but queued behind one long
//! query it blocks every read and write of the table.

use pg_query::NodeEnum;
use pg_query::protobuf::{DropBehavior, ObjectType};

use crate::engine::{Cx, Rule, Violation};
use crate::finding::Severity;
use crate::locks::{RelName, Target};

/// The rule.
pub static RULE: Rule = Rule {
    name: "require-concurrent-index-deletion",
    severity: Severity::Error,
    summary: "DROP INDEX without CONCURRENTLY takes ACCESS EXCLUSIVE on the table",
    default_on: true,
    check,
};

fn check(cx: &Cx<'_>) -> Vec<Violation> {
    let NodeEnum::DropStmt(drop) = cx.node else {
        return Vec::new();
    };
    if drop.concurrent || drop.remove_type != ObjectType::ObjectIndex as i32 {
        return Vec::new();
    }
    let indexes: Vec<RelName> = cx
        .existing_locks()
        .filter_map(|l| match &l.target {
            Target::TableOfIndex(i) => Some(i.clone()),
            _ => None,
        })
        .collect();
    let Some(lock) = cx.strongest_existing_lock() else {
        return Vec::new();
    };
    if indexes.is_empty() {
        return Vec::new();
    }
    let cascade = drop.behavior == DropBehavior::DropCascade as i32;
    let if_exists = if drop.missing_ok { "IF EXISTS " } else { "" };
    let fix: Vec<String> = indexes
        .iter()
        .map(|i| format!("DROP INDEX CONCURRENTLY {if_exists}{i};"))
        .collect();
    let mut help = String::from(
        "drop it with DROP INDEX CONCURRENTLY (SHARE UPDATE EXCLUSIVE: reads and writes go on), \
         one index per statement, outside a transaction block",
    );
    if cx.is_migration() {
        help.push_str(" (a `transaction:false` section)");
    }
    if cascade {
        help.push_str("; CONCURRENTLY does not support CASCADE: drop the dependent objects first");
    }
    vec![
        Violation::new(format!(
            "DROP INDEX takes {} on the table of {}: queued behind one long query, it blocks \
             every read and write of the table",
            lock.mode,
            indexes
                .iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .help(help)
        .fix(fix.join("\n"))
        .lock(lock),
    ]
}

#[cfg(test)]
mod tests {
    use insta::assert_snapshot;

    use crate::rules::test_support::{check, check_migration};

    const RULE: &str = "require-concurrent-index-deletion";

    #[test]
    fn flags_a_plain_drop() {
        assert_snapshot!(check(RULE, "DROP INDEX IF EXISTS large_email_email_idx;"), @"
        error[require-concurrent-index-deletion] 1:1
          lock: DROP INDEX takes ACCESS EXCLUSIVE on the table of index large_email_email_idx: blocks reads and writes
          DROP INDEX takes ACCESS EXCLUSIVE on the table of large_email_email_idx: queued behind one long query, it blocks every read and write of the table
          help: drop it with DROP INDEX CONCURRENTLY (SHARE UPDATE EXCLUSIVE: reads and writes go on), one index per statement, outside a transaction block
          fix:
            DROP INDEX CONCURRENTLY IF EXISTS large_email_email_idx;
        ");
    }

    #[test]
    fn two_indexes_become_two_statements() {
        assert_snapshot!(check(RULE, "DROP INDEX a_idx, public.b_idx CASCADE;"), @"
        error[require-concurrent-index-deletion] 1:1
          lock: DROP INDEX takes ACCESS EXCLUSIVE on the table of index public.b_idx: blocks reads and writes
          DROP INDEX takes ACCESS EXCLUSIVE on the table of a_idx, public.b_idx: queued behind one long query, it blocks every read and write of the table
          help: drop it with DROP INDEX CONCURRENTLY (SHARE UPDATE EXCLUSIVE: reads and writes go on), one index per statement, outside a transaction block; CONCURRENTLY does not support CASCADE: drop the dependent objects first
          fix:
            DROP INDEX CONCURRENTLY a_idx;
            DROP INDEX CONCURRENTLY public.b_idx;
        ");
    }

    #[test]
    fn concurrently_is_fine() {
        assert_snapshot!(check(RULE, "DROP INDEX CONCURRENTLY IF EXISTS large_email_email_idx;"), @"ok");
    }

    #[test]
    fn an_index_on_a_table_created_in_the_unit_is_fine() {
        assert_snapshot!(check_migration(RULE, "CREATE TABLE t (a int);\nCREATE INDEX t_a ON t (a);\nDROP INDEX t_a;", true), @"ok");
    }
}
