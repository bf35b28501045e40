//! `renaming-table`: `ALTER TABLE ... RENAME TO` on an existing table. The rename is a
//! brief ACCESS EXCLUSIVE, but application code already running keeps using the old name.
//! Safe when the same transaction then creates a view with the old name (a simple view
//! is updatable, so old code keeps reading and writing through it).

use pg_query::NodeEnum;
use pg_query::protobuf::ObjectType;

use crate::engine::{Cx, Rule, Violation};
use crate::locks::RelName;
use crate::rule_id::RuleId;
use crate::rules::{later_in_transaction, rel};

/// The rule.
pub(super) static RULE: Rule = Rule {
    id: RuleId::RenamingTable,
    check,
};

/// Whether a later statement of the same transaction creates a view named `old`.
fn view_follows_in_transaction(cx: &Cx<'_>, old: &RelName) -> bool {
    later_in_transaction(cx).iter().any(|node| {
        matches!(node, NodeEnum::ViewStmt(v)
            if v.view.as_ref().is_some_and(|r| RelName::from_range_var(r).same_as(old)))
    })
}

fn check(cx: &Cx<'_>) -> Vec<Violation> {
    let NodeEnum::RenameStmt(r) = cx.node else {
        return Vec::new();
    };
    if r.rename_type != ObjectType::ObjectTable as i32 {
        return Vec::new();
    }
    let Some(old) = r.relation.as_ref().map(RelName::from_range_var) else {
        return Vec::new();
    };
    if cx.is_new_table(&old) || view_follows_in_transaction(cx, &old) {
        return Vec::new();
    }
    let new = RelName {
        schema: old.schema.clone(),
        name: r.newname.clone(),
    };
    let view = format!(
        "ALTER TABLE {} RENAME TO {};\nCREATE VIEW {} AS SELECT * FROM {};",
        rel(&old),
        crate::rules::ident(&r.newname),
        rel(&old),
        rel(&new)
    );
    let fix = if cx.state.in_transaction {
        view
    } else {
        format!("BEGIN;\n{view}\nCOMMIT;")
    };
    let mut v = Violation::new(format!(
        "RENAME TO {} on {old}: application code already running still queries {old} and fails \
         until every instance is redeployed",
        r.newname
    ))
    .help(
        "in the same transaction, create a view with the old name over the renamed table \
         (simple views are updatable); drop the view once no code uses the old name",
    )
    .fix(fix);
    if let Some(lock) = cx.existing_lock_on(&old) {
        v = v.lock(lock);
    }
    vec![v]
}

#[cfg(test)]
mod tests {
    use insta::assert_snapshot;

    use crate::rules::test_support::{check, check_migration};

    const RULE: &str = "renaming-table";

    #[test]
    fn rename_without_a_view() {
        assert_snapshot!(check(RULE, "ALTER TABLE orders RENAME TO purchases;"), @"
        error[renaming-table] 1:1
          lock: ALTER ... RENAME takes ACCESS EXCLUSIVE on orders: blocks reads and writes
          RENAME TO purchases on orders: application code already running still queries orders and fails until every instance is redeployed
          help: in the same transaction, create a view with the old name over the renamed table (simple views are updatable); drop the view once no code uses the old name
          fix:
            BEGIN;
            ALTER TABLE orders RENAME TO purchases;
            CREATE VIEW orders AS SELECT * FROM purchases;
            COMMIT;
        ");
    }

    #[test]
    fn a_view_after_commit_is_too_late() {
        assert_snapshot!(check(RULE, "BEGIN;\nALTER TABLE orders RENAME TO purchases;\nCOMMIT;\nCREATE VIEW orders AS SELECT * FROM purchases;"), @"
        error[renaming-table] 2:1
          lock: ALTER ... RENAME takes ACCESS EXCLUSIVE on orders: blocks reads and writes
          RENAME TO purchases on orders: application code already running still queries orders and fails until every instance is redeployed
          help: in the same transaction, create a view with the old name over the renamed table (simple views are updatable); drop the view once no code uses the old name
          fix:
            ALTER TABLE orders RENAME TO purchases;
            CREATE VIEW orders AS SELECT * FROM purchases;
        ");
    }

    #[test]
    fn a_view_in_the_same_transaction_keeps_old_code_working() {
        assert_snapshot!(check(RULE, "BEGIN;\nALTER TABLE orders RENAME TO purchases;\nCREATE VIEW orders AS SELECT * FROM purchases;\nCOMMIT;"), @"ok");
        assert_snapshot!(check_migration(RULE, "ALTER TABLE orders RENAME TO purchases;\nCREATE VIEW orders AS SELECT * FROM purchases;", true), @"ok");
    }
}
