//! `dropping-with-cascade`: `DROP ... CASCADE` (or `ALTER TABLE ... DROP COLUMN|CONSTRAINT
//! ... CASCADE`) of an object that existed before the unit. PostgreSQL then drops, without
//! naming them, whatever depends on it: the views over a table or column and other
//! tables' foreign keys to it (ACCESS EXCLUSIVE on each of those tables), every column
//! of a dropped type with its data, the defaults, triggers, constraints and indexes that
//! use a dropped function or sequence. Without CASCADE it refuses while anything depends
//! on the object, which is the check one wants. `DROP SCHEMA ... CASCADE` is
//! `dropping-schema`'s.

use pg_query::NodeEnum;
use pg_query::protobuf::{AlterTableType, DropBehavior, ObjectType};

use crate::engine::{Cx, Rule, Violation};
use crate::locks::RelName;
use crate::rule_id::RuleId;
use crate::rules::recipe::and_list;
use crate::rules::{alter_table_cmds, dropped_objects, later_in_transaction};

/// The rule.
pub(super) static RULE: Rule = Rule {
    id: RuleId::DroppingWithCascade,
    check,
};

/// What CASCADE also drops, for an object of this kind.
fn dependents(kind: ObjectType) -> &'static str {
    match kind {
        ObjectType::ObjectTable | ObjectType::ObjectForeignTable => {
            "the views over it and the foreign keys of other tables to it (ACCESS EXCLUSIVE on \
             each of those tables)"
        }
        ObjectType::ObjectView | ObjectType::ObjectMatview => "every view built on it",
        ObjectType::ObjectType | ObjectType::ObjectDomain => {
            "every column of that type in any table, with its data, and the functions using it"
        }
        ObjectType::ObjectFunction | ObjectType::ObjectProcedure | ObjectType::ObjectRoutine => {
            "the triggers, column defaults, constraints and indexes that call it"
        }
        ObjectType::ObjectSequence => {
            "the column defaults that use it (INSERTs relying on them then fail)"
        }
        ObjectType::ObjectExtension => {
            "every object of the extension and what depends on them (columns of its types, \
             indexes using its operator classes)"
        }
        ObjectType::ObjectColumn => "the views, indexes and constraints that use the column",
        ObjectType::ObjectTabconstraint => {
            "the foreign keys of other tables that depend on it (a referenced primary or \
             unique key)"
        }
        _ => "every object that depends on it",
    }
}

/// Whether a statement creates a view (or materialized view) named `view`.
fn creates_view(node: &NodeEnum, view: &RelName) -> bool {
    let created = match node {
        NodeEnum::ViewStmt(v) => v.view.as_ref(),
        NodeEnum::CreateTableAsStmt(c) if c.objtype == ObjectType::ObjectMatview as i32 => {
            c.into.as_ref().and_then(|i| i.rel.as_ref())
        }
        _ => None,
    };
    created.is_some_and(|r| RelName::from_range_var(r).same_as(view))
}

/// Whether a statement renames a type to `name` (`ALTER TYPE x_new RENAME TO x`).
fn renames_type_to(node: &NodeEnum, name: &str) -> bool {
    matches!(node, NodeEnum::RenameStmt(r)
        if (r.rename_type == ObjectType::ObjectType as i32
            || r.rename_type == ObjectType::ObjectDomain as i32)
            && r.newname == name)
}

fn check(cx: &Cx<'_>) -> Vec<Violation> {
    if !cx.locks.cascades {
        return Vec::new();
    }
    let (what, kind, lock_on): (Vec<String>, ObjectType, Option<RelName>) = match cx.node {
        NodeEnum::DropStmt(d) => {
            let kind = ObjectType::try_from(d.remove_type).unwrap_or(ObjectType::Undefined);
            if kind == ObjectType::ObjectSchema {
                return Vec::new();
            }
            let later = later_in_transaction(cx);
            let objects: Vec<_> = dropped_objects(d)
                .into_iter()
                .filter(|(name, relation)| match relation {
                    // A view created again in the same transaction: what depended on it is
                    // the file's to create again too (it could not have run otherwise).
                    Some(r)
                        if matches!(kind, ObjectType::ObjectView | ObjectType::ObjectMatview) =>
                    {
                        !later.iter().any(|n| creates_view(n, r))
                    }
                    Some(r) => !cx.is_new_table(r),
                    None => match kind {
                        // A type the unit created (or renamed to this name), or the old one of
                        // a swap (another type is renamed to its name later): the file moved
                        // its columns to the new type.
                        ObjectType::ObjectType | ObjectType::ObjectDomain => {
                            !cx.state.created.types.contains(name)
                                && !later.iter().any(|n| renames_type_to(n, name))
                        }
                        ObjectType::ObjectFunction
                        | ObjectType::ObjectProcedure
                        | ObjectType::ObjectRoutine => !cx.state.created.functions.contains(name),
                        _ => true,
                    },
                })
                .collect();
            let lock_on = objects.iter().find_map(|(_, r)| r.clone());
            (
                objects.into_iter().map(|(name, _)| name).collect(),
                kind,
                lock_on,
            )
        }
        NodeEnum::AlterTableStmt(_) => {
            let Some((table, cmds)) = alter_table_cmds(cx.node) else {
                return Vec::new();
            };
            if cx.is_new_table(&table) {
                return Vec::new();
            }
            // A foreign key or a CHECK has nothing depending on it: CASCADE drops nothing
            // more.
            let plain_constraint = |c: &pg_query::protobuf::AlterTableCmd| {
                c.name.ends_with("_fkey")
                    || c.name.ends_with("_check")
                    || cx.state.checks.contains_key(&c.name)
            };
            let cascading: Vec<_> = cmds
                .iter()
                .filter(|(t, c)| {
                    c.behavior == DropBehavior::DropCascade as i32
                        && !(*t == AlterTableType::AtDropConstraint && plain_constraint(c))
                })
                .collect();
            let kind = match cascading.first() {
                Some((AlterTableType::AtDropColumn, _)) => ObjectType::ObjectColumn,
                Some((AlterTableType::AtDropConstraint, _)) => ObjectType::ObjectTabconstraint,
                Some(_) => ObjectType::Undefined,
                None => return Vec::new(),
            };
            let names = cascading
                .iter()
                .map(|(t, c)| {
                    let what = if *t == AlterTableType::AtDropColumn {
                        "COLUMN"
                    } else {
                        "CONSTRAINT"
                    };
                    format!("DROP {what} {} CASCADE on {table}", c.name)
                })
                .collect();
            (names, kind, Some(table))
        }
        _ => return Vec::new(),
    };
    if what.is_empty() {
        return Vec::new();
    }
    let statement = match cx.node {
        NodeEnum::DropStmt(_) => format!("{} {} CASCADE", cx.locks.label, and_list(&what)),
        _ => and_list(&what),
    };
    let it = if what.len() == 1 { "it" } else { "them" };
    let mut v = Violation::new(format!(
        "{statement} also drops what depends on {it}, unnamed: {}; what exactly (and whose \
         data) only the catalog knows",
        dependents(kind)
            .replace(" it ", &format!(" {it} "))
            .replace(" it)", &format!(" {it})"))
    ))
    .help(
        "drop what depends on it first, each by name (the migration then says what goes), \
         then drop it without CASCADE: PostgreSQL refuses while anything forgotten still \
         depends on it, instead of dropping it silently",
    );
    if let Some(lock) = lock_on.as_ref().and_then(|t| cx.existing_lock_on(t)) {
        v = v.lock(lock);
    }
    vec![v]
}

#[cfg(test)]
mod tests {
    use insta::assert_snapshot;

    use crate::rules::test_support::{check, lines};

    const RULE: &str = "dropping-with-cascade";

    #[test]
    fn drop_table_cascade() {
        assert_snapshot!(check(RULE, "DROP TABLE IF EXISTS accounts CASCADE;"), @"
        error[dropping-with-cascade] 1:1
          lock: DROP TABLE takes ACCESS EXCLUSIVE on accounts: blocks reads and writes
          DROP TABLE accounts CASCADE also drops what depends on it, unnamed: the views over it and the foreign keys of other tables to it (ACCESS EXCLUSIVE on each of those tables); what exactly (and whose data) only the catalog knows
          help: drop what depends on it first, each by name (the migration then says what goes), then drop it without CASCADE: PostgreSQL refuses while anything forgotten still depends on it, instead of dropping it silently
        ");
    }

    #[test]
    fn drop_type_cascade_drops_columns_with_their_data() {
        assert_snapshot!(check(RULE, "DROP TYPE mood CASCADE;"), @"
        error[dropping-with-cascade] 1:1
          DROP TYPE mood CASCADE also drops what depends on it, unnamed: every column of that type in any table, with its data, and the functions using it; what exactly (and whose data) only the catalog knows
          help: drop what depends on it first, each by name (the migration then says what goes), then drop it without CASCADE: PostgreSQL refuses while anything forgotten still depends on it, instead of dropping it silently
        ");
    }

    #[test]
    fn a_column_or_constraint_dropped_with_cascade() {
        assert_snapshot!(check(RULE, "ALTER TABLE users DROP CONSTRAINT users_pkey CASCADE;"), @"
        error[dropping-with-cascade] 1:1
          lock: ALTER TABLE takes ACCESS EXCLUSIVE on users: blocks reads and writes
          DROP CONSTRAINT users_pkey CASCADE on users also drops what depends on it, unnamed: the foreign keys of other tables that depend on it (a referenced primary or unique key); what exactly (and whose data) only the catalog knows
          help: drop what depends on it first, each by name (the migration then says what goes), then drop it without CASCADE: PostgreSQL refuses while anything forgotten still depends on it, instead of dropping it silently
        ");
    }

    #[test]
    fn without_cascade_or_on_what_the_unit_created() {
        assert_eq!(
            lines(RULE, "DROP TABLE accounts;\nDROP TYPE mood RESTRICT;"),
            Vec::<usize>::new()
        );
        assert_eq!(
            lines(
                RULE,
                "CREATE TABLE t (a int);\nDROP TABLE t CASCADE;\nCREATE TYPE e AS ENUM ('a');\nDROP TYPE e CASCADE;\nCREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1';\nDROP FUNCTION f() CASCADE;"
            ),
            Vec::<usize>::new()
        );
        // A schema is dropping-schema's.
        assert_eq!(lines(RULE, "DROP SCHEMA s CASCADE;"), Vec::<usize>::new());
    }

    #[test]
    fn what_the_file_makes_again_or_nothing_depends_on() {
        for sql in [
            // The view and its dependents made again in the same transaction.
            "BEGIN;\nDROP VIEW user_view CASCADE;\nCREATE VIEW user_view AS SELECT id FROM users;\nCREATE MATERIALIZED VIEW user_mview AS SELECT * FROM user_view;\nCOMMIT;",
            // A type swap: the columns moved to the new type first.
            "BEGIN;\nCREATE TYPE mood_new AS ENUM ('a');\nALTER TABLE t ALTER COLUMN m TYPE mood_new USING m::text::mood_new;\nDROP TYPE mood CASCADE;\nALTER TYPE mood_new RENAME TO mood;\nCOMMIT;",
            "BEGIN;\nALTER TYPE mood RENAME TO mood__;\nCREATE TYPE mood AS ENUM ('a');\nALTER TABLE t ALTER COLUMN m TYPE mood USING m::text::mood;\nDROP TYPE mood__ CASCADE;\nCOMMIT;",
            // Nothing depends on a foreign key or a check.
            "ALTER TABLE rules DROP CONSTRAINT rules_segment_key_fkey CASCADE;",
            "ALTER TABLE rules DROP CONSTRAINT rules_rank_check CASCADE;",
        ] {
            assert_eq!(lines(RULE, sql), Vec::<usize>::new(), "{sql}");
        }
        // A view dropped and not made again in the transaction: its dependents are gone.
        assert_eq!(
            lines(
                RULE,
                "DROP VIEW IF EXISTS datasets_view CASCADE;\nCREATE VIEW datasets_view AS SELECT 1;"
            ),
            [1]
        );
    }
}
