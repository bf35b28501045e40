//! `renaming-table`: `ALTER TABLE ... RENAME TO` (or `ALTER VIEW` / `ALTER MATERIALIZED
//! VIEW ... RENAME TO`) on an existing relation, or moving it to another schema (`SET
//! SCHEMA`). The statement is a brief ACCESS EXCLUSIVE, but application code already
//! running keeps using the old name (or finds the old schema on its search_path) and
//! fails. Safe when the same transaction then creates a view with the old name (a simple
//! view is updatable, so old code keeps reading and writing through it).

use pg_query::NodeEnum;
use pg_query::protobuf::ObjectType;

use crate::engine::{Cx, Rule, Violation};
use crate::locks::RelName;
use crate::rule_id::RuleId;
use crate::rules::{ident, later_in_transaction, rel};

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

/// What kind of relation a rename or move names (`None`: not a relation lint follows).
fn relation_kind(object: i32) -> Option<&'static str> {
    match ObjectType::try_from(object).ok()? {
        ObjectType::ObjectTable | ObjectType::ObjectForeignTable => Some("table"),
        ObjectType::ObjectView => Some("view"),
        ObjectType::ObjectMatview => Some("materialized view"),
        _ => None,
    }
}

/// The relation's old name, its new one, what the statement does (`RENAME TO
/// purchases`), and the relation's kind.
fn renamed(node: &NodeEnum) -> Option<(RelName, RelName, String, &'static str)> {
    match node {
        NodeEnum::RenameStmt(r) => {
            let kind = relation_kind(r.rename_type)?;
            let old = RelName::from_range_var(r.relation.as_ref()?);
            let new = RelName {
                schema: old.schema.clone(),
                name: r.newname.clone(),
            };
            Some((old, new, format!("RENAME TO {}", r.newname), kind))
        }
        NodeEnum::AlterObjectSchemaStmt(a) => {
            let kind = relation_kind(a.object_type)?;
            let old = RelName::from_range_var(a.relation.as_ref()?);
            let new = RelName {
                schema: Some(a.newschema.clone()),
                name: old.name.clone(),
            };
            Some((old, new, format!("SET SCHEMA {}", a.newschema), kind))
        }
        _ => None,
    }
}

fn check(cx: &Cx<'_>) -> Vec<Violation> {
    let Some((old, new, what, kind)) = renamed(cx.node) else {
        return Vec::new();
    };
    if cx.is_new_table(&old) || view_follows_in_transaction(cx, &old) {
        return Vec::new();
    }
    let alter = match kind {
        "view" => "ALTER VIEW",
        "materialized view" => "ALTER MATERIALIZED VIEW",
        _ => "ALTER TABLE",
    };
    let moved = match cx.node {
        NodeEnum::AlterObjectSchemaStmt(_) => format!(
            "{alter} {} SET SCHEMA {}",
            rel(&old),
            ident(new.schema.as_deref().unwrap_or_default())
        ),
        _ => format!("{alter} {} RENAME TO {}", rel(&old), ident(&new.name)),
    };
    let view = format!(
        "{moved};\nCREATE VIEW {} AS SELECT * FROM {};",
        rel(&old),
        rel(&new)
    );
    let fix = if cx.state.in_transaction {
        view
    } else {
        format!("BEGIN;\n{view}\nCOMMIT;")
    };
    let mut v = Violation::new(format!(
        "{what} on {old}: application code already running still queries {old} and fails \
         until every instance is redeployed"
    ))
    .help(format!(
        "in the same transaction, create a view with the old name over the {} {kind} \
         (simple views are updatable); drop the view once no code uses the old name",
        if what.starts_with("SET SCHEMA") {
            "moved"
        } else {
            "renamed"
        }
    ))
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
    fn moving_to_another_schema_and_renaming_a_view() {
        assert_snapshot!(check(RULE, "ALTER TABLE public.orders SET SCHEMA archive;"), @"
        error[renaming-table] 1:1
          lock: ALTER ... SET SCHEMA takes ACCESS EXCLUSIVE on public.orders: blocks reads and writes
          SET SCHEMA archive on public.orders: application code already running still queries public.orders and fails until every instance is redeployed
          help: in the same transaction, create a view with the old name over the moved table (simple views are updatable); drop the view once no code uses the old name
          fix:
            BEGIN;
            ALTER TABLE public.orders SET SCHEMA archive;
            CREATE VIEW public.orders AS SELECT * FROM archive.orders;
            COMMIT;
        ");
        assert_snapshot!(check(RULE, "ALTER VIEW active_users RENAME TO current_users;"), @"
        error[renaming-table] 1:1
          lock: ALTER ... RENAME takes ACCESS EXCLUSIVE on active_users: blocks reads and writes
          RENAME TO current_users on active_users: application code already running still queries active_users and fails until every instance is redeployed
          help: in the same transaction, create a view with the old name over the renamed view (simple views are updatable); drop the view once no code uses the old name
          fix:
            BEGIN;
            ALTER VIEW active_users RENAME TO current_users;
            CREATE VIEW active_users AS SELECT * FROM current_users;
            COMMIT;
        ");
        assert_snapshot!(check(RULE, "BEGIN;\nALTER TABLE orders SET SCHEMA archive;\nCREATE VIEW orders AS SELECT * FROM archive.orders;\nCOMMIT;"), @"ok");
        // Functions and types moved are no relation (and no rename of one).
        assert_snapshot!(check(RULE, "ALTER FUNCTION f() SET SCHEMA archive;"), @"ok");
    }

    #[test]
    fn a_view_in_the_same_transaction_keeps_old_code_working() {
        assert_snapshot!(check(RULE, "BEGIN;\nALTER TABLE orders RENAME TO purchases;\nCREATE VIEW orders AS SELECT * FROM purchases;\nCOMMIT;"), @"ok");
        assert_snapshot!(check_migration(RULE, "ALTER TABLE orders RENAME TO purchases;\nCREATE VIEW orders AS SELECT * FROM purchases;", true), @"ok");
    }
}
