//! `adding-not-null-column-without-default`: `ADD COLUMN ... NOT NULL` with no default on
//! an existing table. PostgreSQL refuses it as soon as the table has a row, and once it
//! exists, inserts from application code that does not know the column fail.

use pg_query::protobuf::ConstrType;

use crate::engine::{Cx, Rule, Violation};
use crate::finding::Severity;
use crate::locks::is_serial_type;
use crate::rules::recipe::{
    check_added_columns, column_constraint, declared_not_null, set_not_null_safely, type_sql,
};
use crate::rules::{ident, rel};

/// The rule.
pub static RULE: Rule = Rule {
    name: "adding-not-null-column-without-default",
    severity: Severity::Error,
    summary: "ADD COLUMN NOT NULL without a default fails on a table with rows and breaks old inserts",
    default_on: true,
    check,
};

fn check(cx: &Cx<'_>) -> Vec<Violation> {
    check_added_columns(cx, |table, col| {
        // Columns that fill themselves (default, sequence, generated) are other rules' business.
        let fills_itself = column_constraint(col, ConstrType::ConstrDefault).is_some()
            || column_constraint(col, ConstrType::ConstrIdentity).is_some()
            || column_constraint(col, ConstrType::ConstrGenerated).is_some()
            || col.type_name.as_ref().is_some_and(is_serial_type);
        if !declared_not_null(col) || fills_itself {
            return None;
        }
        let column = &col.colname;
        let ty = col.type_name.as_ref().map(type_sql).unwrap_or_default();
        let fix = format!(
            "ALTER TABLE {} ADD COLUMN {} {ty};\n-- deploy code that writes it, backfill existing \
             rows in batches, then:\n{}",
            rel(table),
            ident(column),
            set_not_null_safely(table, column),
        );
        Some(Violation::new(format!(
            "ADD COLUMN {column} NOT NULL has no default: it fails if {table} has any row, and \
             afterwards every INSERT that does not name {column} (code deployed before this \
             migration) fails"
        ))
        .help(
            "give it a constant DEFAULT (metadata-only from PostgreSQL 11), or add it nullable, \
             backfill, and set NOT NULL the CHECK way",
        )
        .fix(fix))
    })
}

#[cfg(test)]
mod tests {
    use insta::assert_snapshot;

    use crate::rules::test_support::check;

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
            -- deploy code that writes it, backfill existing rows in batches, then:
            ALTER TABLE users ADD CONSTRAINT users_plan_not_null CHECK (plan IS NOT NULL) NOT VALID;
            ALTER TABLE users VALIDATE CONSTRAINT users_plan_not_null;
            ALTER TABLE users ALTER COLUMN plan SET NOT NULL;
            ALTER TABLE users DROP CONSTRAINT users_plan_not_null;
        ");
    }

    #[test]
    fn with_a_default_or_nullable_or_on_a_new_table() {
        assert_snapshot!(check(RULE, "ALTER TABLE users ADD COLUMN plan text NOT NULL DEFAULT 'free', ADD COLUMN bio text, ADD COLUMN id bigserial NOT NULL;\nCREATE TABLE t (a int);\nALTER TABLE t ADD COLUMN b int NOT NULL;"), @"ok");
    }
}
