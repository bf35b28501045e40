//! `adding-not-null-column-without-default`: `ADD COLUMN ... NOT NULL` with no default on
//! an existing table. PostgreSQL refuses it as soon as the table has a row, and once it
//! exists, inserts from application code that does not know the column fail.

use pg_query::NodeEnum;
use pg_query::protobuf::{AlterTableType, ColumnDef, ConstrType};

use crate::engine::{Cx, Rule, Violation};
use crate::locks::is_serial_type;
use crate::rule_id::RuleId;
use crate::rules::recipe::{
    Fix, added_columns, and_list, column_constraint, column_def, declared_not_null, not_null_steps,
    strip_constraints, with_added_columns_edited,
};
use crate::rules::{alter_table_cmds, ident, rel};

/// The rule.
pub(super) static RULE: Rule = Rule {
    id: RuleId::AddingNotNullColumnWithoutDefault,
    check,
};

/// NOT NULL with nothing to fill it: no default, sequence or generation expression
/// (those columns are other rules' business).
fn flagged(col: &ColumnDef) -> bool {
    let fills_itself = column_constraint(col, ConstrType::ConstrDefault).is_some()
        || column_constraint(col, ConstrType::ConstrIdentity).is_some()
        || column_constraint(col, ConstrType::ConstrGenerated).is_some()
        || col.type_name.as_ref().is_some_and(is_serial_type);
    declared_not_null(col) && !fills_itself
}

fn check(cx: &Cx<'_>) -> Vec<Violation> {
    if let Some((table, columns, lock)) = added_columns(cx, flagged) {
        let names: Vec<String> = columns.iter().map(|c| c.colname.clone()).collect();
        let list = and_list(&names);
        let fix = Fix::default()
            .now(nullable(cx.node, &columns).unwrap_or_default())
            .later(
                "deploy code that writes it, fill the existing rows in batches, then",
                &not_null_steps(
                    &table,
                    &names.iter().map(String::as_str).collect::<Vec<_>>(),
                    cx.pg(),
                ),
            );
        let mut v = Violation::new(format!(
            "ADD COLUMN {list} NOT NULL has no default: it fails if {table} has any row, and \
             afterwards every INSERT that does not name {list} (code deployed before this \
             migration) fails"
        ))
        .help(
            "give it a constant DEFAULT (metadata-only from PostgreSQL 11), or add it nullable, \
             backfill, and set NOT NULL the CHECK way",
        )
        .lock(lock);
        if let Some(sql) = fix.sql() {
            v = v.fix(sql);
        }
        return vec![v];
    }
    on_a_new_table_with_rows(cx)
}

/// A table created in the unit is new (nobody else uses it), but once it has been given
/// rows, PostgreSQL refuses a NOT NULL column without a default on it.
fn on_a_new_table_with_rows(cx: &Cx<'_>) -> Vec<Violation> {
    let Some((table, cmds)) = alter_table_cmds(cx.node) else {
        return Vec::new();
    };
    if !cx.state.is_new_table(&table) || !cx.state.has_rows(&table) {
        return Vec::new();
    }
    let columns: Vec<&ColumnDef> = cmds
        .into_iter()
        .filter(|(t, _)| *t == AlterTableType::AtAddColumn)
        .filter_map(|(_, cmd)| column_def(cmd))
        .filter(|c| flagged(c))
        .collect();
    if columns.is_empty() {
        return Vec::new();
    }
    let names: Vec<String> = columns.iter().map(|c| c.colname.clone()).collect();
    let list = and_list(&names);
    let set_not_null: Vec<String> = names
        .iter()
        .map(|c| {
            format!(
                "ALTER TABLE {} ALTER COLUMN {} SET NOT NULL;",
                rel(&table),
                ident(c)
            )
        })
        .collect();
    let fix = Fix::default()
        .now(nullable(cx.node, &columns).unwrap_or_default())
        .later(
            "fill it (the table is new: nobody waits), then",
            &set_not_null.join("\n"),
        );
    let mut v = Violation::new(format!(
        "ADD COLUMN {list} NOT NULL has no default, and {table} was given rows earlier in this \
         file: PostgreSQL refuses it (the existing rows would be NULL)"
    ))
    .help("give it a DEFAULT, or add it nullable, fill it, then SET NOT NULL");
    if let Some(sql) = fix.sql() {
        v = v.fix(sql);
    }
    vec![v]
}

/// The statement with the flagged columns added nullable (their other constraints and the
/// other subcommands as written).
fn nullable(node: &NodeEnum, columns: &[&ColumnDef]) -> Option<String> {
    with_added_columns_edited(node, columns, |col| {
        strip_constraints(col, &[ConstrType::ConstrNotnull, ConstrType::ConstrPrimary])
    })
}

#[cfg(test)]
mod tests {
    use insta::assert_snapshot;

    use crate::rules::test_support::{check, lines};

    const RULE: &str = "adding-not-null-column-without-default";

    #[test]
    fn not_null_without_default() {
        assert_snapshot!(check(RULE, "ALTER TABLE users ADD COLUMN plan text NOT NULL;"), @"
        error[adding-not-null-column-without-default] 1:1
          lock: ALTER TABLE takes ACCESS EXCLUSIVE on users: blocks reads and writes
          ADD COLUMN plan NOT NULL has no default: it fails if users has any row, and afterwards every INSERT that does not name plan (code deployed before this migration) fails
          help: give it a constant DEFAULT (metadata-only from PostgreSQL 11), or add it nullable, backfill, and set NOT NULL the CHECK way
          fix:
            ALTER TABLE users ADD COLUMN plan text;
            -- deploy code that writes it, fill the existing rows in batches, then:
            -- ALTER TABLE users ADD CONSTRAINT users_plan_not_null CHECK (plan IS NOT NULL) NOT VALID;
            -- ALTER TABLE users VALIDATE CONSTRAINT users_plan_not_null;
            -- ALTER TABLE users ALTER COLUMN plan SET NOT NULL;
            -- ALTER TABLE users DROP CONSTRAINT users_plan_not_null;
        ");
    }

    #[test]
    fn with_a_default_or_nullable_or_on_a_new_table() {
        assert_snapshot!(check(RULE, "ALTER TABLE users ADD COLUMN plan text NOT NULL DEFAULT 'free', ADD COLUMN bio text, ADD COLUMN id bigserial NOT NULL;\nCREATE TABLE t (a int);\nALTER TABLE t ADD COLUMN b int NOT NULL;"), @"ok");
    }

    #[test]
    fn references_and_the_other_clauses_are_kept() {
        assert_snapshot!(check(RULE, "ALTER TABLE \"Post\" ADD COLUMN \"authorId\" int NOT NULL REFERENCES \"User\" (id) ON UPDATE CASCADE, ADD COLUMN \"title\" text NOT NULL, ADD COLUMN body text;"), @r#"
        error[adding-not-null-column-without-default] 1:1
          lock: ALTER TABLE takes ACCESS EXCLUSIVE on Post: blocks reads and writes
          ADD COLUMN authorId and title NOT NULL has no default: it fails if Post has any row, and afterwards every INSERT that does not name authorId and title (code deployed before this migration) fails
          help: give it a constant DEFAULT (metadata-only from PostgreSQL 11), or add it nullable, backfill, and set NOT NULL the CHECK way
          fix:
            ALTER TABLE "Post" ADD COLUMN "authorId" int REFERENCES "User" (id) ON UPDATE CASCADE, ADD COLUMN title text, ADD COLUMN body text;
            -- deploy code that writes it, fill the existing rows in batches, then:
            -- ALTER TABLE "Post" ADD CONSTRAINT "Post_authorId_not_null" CHECK ("authorId" IS NOT NULL) NOT VALID;
            -- ALTER TABLE "Post" VALIDATE CONSTRAINT "Post_authorId_not_null";
            -- ALTER TABLE "Post" ALTER COLUMN "authorId" SET NOT NULL;
            -- ALTER TABLE "Post" DROP CONSTRAINT "Post_authorId_not_null";
            -- ALTER TABLE "Post" ADD CONSTRAINT "Post_title_not_null" CHECK (title IS NOT NULL) NOT VALID;
            -- ALTER TABLE "Post" VALIDATE CONSTRAINT "Post_title_not_null";
            -- ALTER TABLE "Post" ALTER COLUMN title SET NOT NULL;
            -- ALTER TABLE "Post" DROP CONSTRAINT "Post_title_not_null";
        "#);
    }

    #[test]
    fn a_new_table_that_was_given_rows_refuses_it() {
        let sql = "BEGIN;\nCREATE TABLE t (a int);\nINSERT INTO t SELECT id FROM users;\nALTER TABLE t ADD COLUMN b int NOT NULL;\nCOMMIT;";
        assert_snapshot!(check(RULE, sql), @"
        error[adding-not-null-column-without-default] 4:1
          ADD COLUMN b NOT NULL has no default, and t was given rows earlier in this file: PostgreSQL refuses it (the existing rows would be NULL)
          help: give it a DEFAULT, or add it nullable, fill it, then SET NOT NULL
          fix:
            ALTER TABLE t ADD COLUMN b int;
            -- fill it (the table is new: nobody waits), then:
            -- ALTER TABLE t ALTER COLUMN b SET NOT NULL;
        ");
        // Empty: fine.
        assert_eq!(
            lines(
                RULE,
                "CREATE TABLE t (a int);\nALTER TABLE t ADD COLUMN b int NOT NULL;"
            ),
            Vec::<usize>::new()
        );
    }
}
