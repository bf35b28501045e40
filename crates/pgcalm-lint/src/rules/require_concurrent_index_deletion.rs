//! `require-concurrent-index-deletion`: `DROP INDEX` without CONCURRENTLY takes ACCESS
//! EXCLUSIVE on the index's table. The drop itself is quick, but queued behind one long
//! query it blocks every read and write of the table.
//!
//! The fix (one `DROP INDEX CONCURRENTLY` per index, names quoted as written) is offered
//! only where it can run: not with CASCADE (CONCURRENTLY does not support it), not for an
//! index of a partitioned table, not in a unit that runs in one transaction (the help says
//! where the statement goes instead). Not reported when the transaction already holds
//! the table (from an earlier statement): the drop cannot wait then.

use pg_query::NodeEnum;
use pg_query::protobuf::{DropBehavior, ObjectType};

use crate::engine::{Cx, Rule, Violation};
use crate::locks::{LockTarget, RelName};
use crate::rule_id::RuleId;
use crate::rules::recipe::outside_this_transaction;
use crate::rules::rel;

/// The rule.
pub(super) static RULE: Rule = Rule {
    id: RuleId::RequireConcurrentIndexDeletion,
    check,
};

fn check(cx: &Cx<'_>) -> Vec<Violation> {
    let NodeEnum::DropStmt(drop) = cx.node else {
        return Vec::new();
    };
    if drop.concurrent || drop.remove_type != ObjectType::ObjectIndex as i32 {
        return Vec::new();
    }
    // A table the transaction already holds (an earlier ALTER TABLE or DROP INDEX of
    // it) cannot make this drop wait, and CONCURRENTLY cannot run inside it anyway.
    let indexes: Vec<RelName> = cx
        .existing_locks()
        .filter(|l| !cx.state.already_holds(l))
        .filter_map(|l| match &l.target {
            LockTarget::TableOfIndex(i) => Some(i.clone()),
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
        .map(|i| format!("DROP INDEX CONCURRENTLY {if_exists}{};", rel(i)))
        .collect();
    let partitioned: Vec<String> = indexes
        .iter()
        .filter(|i| {
            cx.state
                .indexes
                .get(&i.name)
                .is_some_and(|idx| cx.state.partitioned(&idx.table) == Some(true))
        })
        .map(|i| i.to_string())
        .collect();
    let mut help = String::from(
        "drop it with DROP INDEX CONCURRENTLY (SHARE UPDATE EXCLUSIVE: reads and writes go on), \
         one index per statement, outside a transaction block",
    );
    let place = outside_this_transaction(cx);
    if cx.is_migration() && place.is_none() {
        help.push_str(" (a `transaction:false` section)");
    }
    let mut runnable = true;
    if !partitioned.is_empty() {
        help = format!(
            "{} belongs to a partitioned table, and PostgreSQL cannot drop a partitioned \
             index CONCURRENTLY: drop it when the table is quiet, with a short lock_timeout \
             (and retry)",
            partitioned.join(", ")
        );
        runnable = false;
    } else if cascade {
        help.push_str(
            "; CONCURRENTLY does not support CASCADE: drop the dependent objects (the \
             constraints that use the index, foreign keys that need it) first, then the index",
        );
        runnable = false;
    } else if let Some(place) = place {
        help.push_str(&format!(
            "; this file runs in one transaction, where CONCURRENTLY fails (25001): put `{}` \
             in {place}",
            fix.join(" ")
        ));
        runnable = false;
    }
    let mut v = Violation::new(format!(
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
    .lock(lock);
    if runnable {
        v = v.fix(fix.join("\n"));
    }
    vec![v]
}

#[cfg(test)]
mod tests {
    use insta::assert_snapshot;

    use crate::rules::test_support::{check, check_migration, check_schema};

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
          help: drop it with DROP INDEX CONCURRENTLY (SHARE UPDATE EXCLUSIVE: reads and writes go on), one index per statement, outside a transaction block; CONCURRENTLY does not support CASCADE: drop the dependent objects (the constraints that use the index, foreign keys that need it) first, then the index
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

    #[test]
    fn quoted_names_stay_quoted() {
        assert_snapshot!(check(RULE, "DROP INDEX IF EXISTS \"Subscription_planId_customerId_key\";"), @r#"
        error[require-concurrent-index-deletion] 1:1
          lock: DROP INDEX takes ACCESS EXCLUSIVE on the table of index Subscription_planId_customerId_key: blocks reads and writes
          DROP INDEX takes ACCESS EXCLUSIVE on the table of Subscription_planId_customerId_key: queued behind one long query, it blocks every read and write of the table
          help: drop it with DROP INDEX CONCURRENTLY (SHARE UPDATE EXCLUSIVE: reads and writes go on), one index per statement, outside a transaction block
          fix:
            DROP INDEX CONCURRENTLY IF EXISTS "Subscription_planId_customerId_key";
        "#);
    }

    #[test]
    fn cascade_has_no_concurrent_form() {
        assert_snapshot!(check(RULE, "DROP INDEX users_email_key CASCADE;"), @"
        error[require-concurrent-index-deletion] 1:1
          lock: DROP INDEX takes ACCESS EXCLUSIVE on the table of index users_email_key: blocks reads and writes
          DROP INDEX takes ACCESS EXCLUSIVE on the table of users_email_key: queued behind one long query, it blocks every read and write of the table
          help: drop it with DROP INDEX CONCURRENTLY (SHARE UPDATE EXCLUSIVE: reads and writes go on), one index per statement, outside a transaction block; CONCURRENTLY does not support CASCADE: drop the dependent objects (the constraints that use the index, foreign keys that need it) first, then the index
        ");
    }

    #[test]
    fn in_a_transaction_the_fix_goes_to_a_migration_of_its_own() {
        assert_snapshot!(check_migration(RULE, "DROP INDEX users_status_idx;", true), @"
        error[require-concurrent-index-deletion] 1:1
          lock: DROP INDEX takes ACCESS EXCLUSIVE on the table of index users_status_idx: blocks reads and writes
          DROP INDEX takes ACCESS EXCLUSIVE on the table of users_status_idx: queued behind one long query, it blocks every read and write of the table
          help: drop it with DROP INDEX CONCURRENTLY (SHARE UPDATE EXCLUSIVE: reads and writes go on), one index per statement, outside a transaction block; this file runs in one transaction, where CONCURRENTLY fails (25001): put `DROP INDEX CONCURRENTLY users_status_idx;` in a migration of its own whose section says `-- migrate:up transaction:false`
        ");
    }

    #[test]
    fn an_index_of_a_partitioned_table_cannot_be_dropped_concurrently() {
        let schema = "CREATE TABLE metrics (at timestamptz, v int) PARTITION BY RANGE (at);\nCREATE INDEX metrics_v_idx ON metrics (v);";
        assert_snapshot!(check_schema(RULE, schema, "DROP INDEX metrics_v_idx;"), @"
        error[require-concurrent-index-deletion] 1:1
          lock: DROP INDEX takes ACCESS EXCLUSIVE on metrics: blocks reads and writes
          DROP INDEX takes ACCESS EXCLUSIVE on the table of metrics_v_idx: queued behind one long query, it blocks every read and write of the table
          help: metrics_v_idx belongs to a partitioned table, and PostgreSQL cannot drop a partitioned index CONCURRENTLY: drop it when the table is quiet, with a short lock_timeout (and retry)
        ");
    }
}
