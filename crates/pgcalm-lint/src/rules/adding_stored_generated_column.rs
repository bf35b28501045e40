//! `adding-stored-generated-column`: `ADD COLUMN ... GENERATED ALWAYS AS (expr) STORED`
//! on an existing table. The expression is computed and stored for every existing row:
//! a rewrite under ACCESS EXCLUSIVE.

use pg_query::protobuf::ConstrType;

use crate::engine::{Cx, Rule, Violation};
use crate::finding::Severity;
use crate::rules::recipe::{backfill, check_added_columns, column_constraint, expr_sql, type_sql};
use crate::rules::{ident, rel};

/// The rule.
pub static RULE: Rule = Rule {
    name: "adding-stored-generated-column",
    severity: Severity::Error,
    summary: "ADD COLUMN ... GENERATED ALWAYS AS (...) STORED rewrites the table",
    default_on: true,
    check,
};

fn check(cx: &Cx<'_>) -> Vec<Violation> {
    check_added_columns(cx, |table, col| {
        // Virtual generated columns (PostgreSQL 18) are not stored: no rewrite.
        let generated = column_constraint(col, ConstrType::ConstrGenerated)
            .filter(|g| g.generated_kind != "v")?;
        let column = &col.colname;
        let expr = generated
            .raw_expr
            .as_deref()
            .map(expr_sql)
            .unwrap_or_default();
        let fix = format!(
            "ALTER TABLE {} ADD COLUMN {} {};\n-- a BEFORE INSERT OR UPDATE trigger sets it to \
             {expr} for new rows; then:\n{}",
            rel(table),
            ident(column),
            col.type_name.as_ref().map(type_sql).unwrap_or_default(),
            backfill(table, column, &expr),
        );
        Some(Violation::new(format!(
            "ADD COLUMN {column} GENERATED ... STORED computes {expr} for every existing row of \
             {table}: the table is rewritten under ACCESS EXCLUSIVE and reads and writes wait"
        ))
        .help(
            "add a plain nullable column kept up to date by a trigger, and fill existing rows \
             in short batches (or compute the value in queries or an expression index)",
        )
        .fix(fix))
    })
}

#[cfg(test)]
mod tests {
    use insta::assert_snapshot;

    use crate::rules::test_support::check;

    const RULE: &str = "adding-stored-generated-column";

    #[test]
    fn stored_generated_on_an_existing_table() {
        assert_snapshot!(check(RULE, "ALTER TABLE users ADD COLUMN email_domain text GENERATED ALWAYS AS (split_part(email, '@', 2)) STORED;"), @"
        error[adding-stored-generated-column] 1:1
          lock: ALTER TABLE takes ACCESS EXCLUSIVE on users: blocks reads and writes
          ADD COLUMN email_domain GENERATED ... STORED computes split_part(email, '@', 2) for every existing row of users: the table is rewritten under ACCESS EXCLUSIVE and reads and writes wait
          help: add a plain nullable column kept up to date by a trigger, and fill existing rows in short batches (or compute the value in queries or an expression index)
          fix:
            ALTER TABLE users ADD COLUMN email_domain text;
            -- a BEFORE INSERT OR UPDATE trigger sets it to split_part(email, '@', 2) for new rows; then:
            -- backfill in batches of 10000 rows by primary key (id here), each batch its own transaction, until max(id):
            UPDATE users SET email_domain = split_part(email, '@', 2) WHERE id >= 1 AND id < 10001 AND email_domain IS NULL;
            UPDATE users SET email_domain = split_part(email, '@', 2) WHERE id >= 10001 AND id < 20001 AND email_domain IS NULL;
        ");
    }

    #[test]
    fn new_table_is_fine() {
        assert_snapshot!(check(RULE, "CREATE TABLE t (a text, b text GENERATED ALWAYS AS (lower(a)) STORED);\nALTER TABLE t ADD COLUMN c text GENERATED ALWAYS AS (upper(a)) STORED;"), @"ok");
    }
}
