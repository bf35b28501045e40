//! `adding-stored-generated-column`: `ADD COLUMN ... GENERATED ALWAYS AS (expr) STORED`
//! on an existing table. The expression is computed and stored for every existing row:
//! a rewrite under ACCESS EXCLUSIVE.

use pg_query::protobuf::{ColumnDef, ConstrType};

use crate::engine::{Cx, Rule, Violation};
use crate::rule_id::RuleId;
use crate::rules::recipe::{
    Fix, added_columns, and_list, backfill, column_constraint, expr_sql, in_a_later_transaction,
    strip_constraints, with_added_columns_edited,
};

/// The rule.
pub(super) static RULE: Rule = Rule {
    id: RuleId::AddingStoredGeneratedColumn,
    check,
};

/// The expression of a stored generated column (virtual ones, PostgreSQL 18, are not
/// stored: no rewrite).
fn stored_expr(col: &ColumnDef) -> Option<String> {
    let generated =
        column_constraint(col, ConstrType::ConstrGenerated).filter(|g| g.generated_kind != "v")?;
    Some(
        generated
            .raw_expr
            .as_deref()
            .map(expr_sql)
            .unwrap_or_default(),
    )
}

fn check(cx: &Cx<'_>) -> Vec<Violation> {
    let Some((table, columns, lock)) = added_columns(cx, |c| stored_expr(c).is_some()) else {
        return Vec::new();
    };
    let names: Vec<String> = columns.iter().map(|c| c.colname.clone()).collect();
    let exprs: Vec<String> = columns.iter().filter_map(|c| stored_expr(c)).collect();
    let plain = with_added_columns_edited(cx.node, &columns, |col| {
        strip_constraints(col, &[ConstrType::ConstrGenerated])
    });
    let mut fill = Vec::new();
    for (col, expr) in columns.iter().zip(&exprs) {
        fill.push(format!(
            "-- a BEFORE INSERT OR UPDATE trigger sets {} to {expr} for new rows; then:\n{}",
            col.colname,
            backfill(cx, &table, &col.colname, expr, true)
        ));
    }
    let when = if cx.state.in_transaction {
        format!("{}, fill the existing rows", in_a_later_transaction(cx))
    } else {
        "then fill the existing rows".to_string()
    };
    let fix = Fix::default()
        .now(plain.unwrap_or_default())
        .later(&when, &fill.join("\n"));
    let mut v = Violation::new(format!(
        "ADD COLUMN {} GENERATED ... STORED computes {} for every existing row of {table}: the \
         table is rewritten under ACCESS EXCLUSIVE and reads and writes wait",
        and_list(&names),
        and_list(&exprs)
    ))
    .help(
        "add a plain nullable column kept up to date by a trigger, and fill existing rows \
         in short batches (or compute the value in queries or an expression index)",
    )
    .lock(lock);
    if let Some(sql) = fix.sql() {
        v = v.fix(sql);
    }
    vec![v]
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
            -- then fill the existing rows:
            -- a BEFORE INSERT OR UPDATE trigger sets email_domain to split_part(email, '@', 2) for new rows; then:
            -- in batches of 10000 rows, each its own transaction, until it updates none:
            -- UPDATE users SET email_domain = split_part(email, '@', 2) WHERE ctid = ANY (ARRAY(SELECT ctid FROM users WHERE email_domain IS DISTINCT FROM (split_part(email, '@', 2)) LIMIT 10000));
        ");
    }

    #[test]
    fn new_table_is_fine() {
        assert_snapshot!(check(RULE, "CREATE TABLE t (a text, b text GENERATED ALWAYS AS (lower(a)) STORED);\nALTER TABLE t ADD COLUMN c text GENERATED ALWAYS AS (upper(a)) STORED;"), @"ok");
    }
}
