//! `adding-field-with-volatile-default`: `ADD COLUMN ... DEFAULT <volatile expression>`
//! on an existing table, or any non-NULL default before PostgreSQL 11. The default is
//! computed for every existing row, so the table is rewritten under ACCESS EXCLUSIVE:
//! no reads or writes until the rewrite ends. From PostgreSQL 11 a non-volatile default
//! (a constant, `now()`) is stored once in the catalog and costs nothing.

use crate::engine::{Cx, Rule, Violation};
use crate::finding::Severity;
use crate::locks::{Volatility, volatility};
use crate::rules::recipe::{
    backfill, check_added_columns, declared_not_null, default_expr, expr_sql, set_not_null_safely,
    type_sql,
};
use crate::rules::{ident, rel};

/// The rule.
pub static RULE: Rule = Rule {
    name: "adding-field-with-volatile-default",
    severity: Severity::Error,
    summary: "ADD COLUMN with a volatile default (any default before PostgreSQL 11) rewrites the table",
    default_on: true,
    check,
};

fn check(cx: &Cx<'_>) -> Vec<Violation> {
    check_added_columns(cx, |table, col| {
        let default = default_expr(col)?;
        let value = expr_sql(default);
        let why = if !cx.pg().at_least(11) {
            format!(
                "before PostgreSQL 11 every default is written into each row ({})",
                cx.pg()
            )
        } else {
            match volatility(default) {
                Volatility::Volatile => {
                    format!("`{value}` is volatile, so it is computed for each existing row")
                }
                Volatility::Unknown => format!(
                    "pgcalm cannot tell whether `{value}` is volatile; if it is, it is computed for each existing row"
                ),
                Volatility::Stable => return None,
            }
        };
        let column = &col.colname;
        let t = rel(table);
        let mut fix = format!(
            "ALTER TABLE {t} ADD COLUMN {} {};\nALTER TABLE {t} ALTER COLUMN {} SET DEFAULT {value};\n{}",
            ident(column),
            col.type_name.as_ref().map(type_sql).unwrap_or_default(),
            ident(column),
            backfill(table, column, &value),
        );
        if declared_not_null(col) {
            fix.push('\n');
            fix.push_str(&set_not_null_safely(table, column));
        }
        Some(
            Violation::new(format!(
                "ADD COLUMN {column} rewrites {table} under ACCESS EXCLUSIVE: {why}; reads and \
                 writes wait until every row is rewritten"
            ))
            .help(
                "add the column without a default, then SET DEFAULT (new rows only, no \
                 rewrite), then fill the existing rows in short batches",
            )
            .fix(fix),
        )
    })
}

#[cfg(test)]
mod tests {
    use insta::assert_snapshot;

    use crate::rules::test_support::{check, check_pg};

    const RULE: &str = "adding-field-with-volatile-default";

    #[test]
    fn volatile_default_on_an_existing_table() {
        assert_snapshot!(check(RULE, "ALTER TABLE users ADD COLUMN public_id uuid DEFAULT gen_random_uuid();"), @"
        error[adding-field-with-volatile-default] 1:1
          lock: ALTER TABLE takes ACCESS EXCLUSIVE on users: blocks reads and writes
          ADD COLUMN public_id rewrites users under ACCESS EXCLUSIVE: `gen_random_uuid()` is volatile, so it is computed for each existing row; reads and writes wait until every row is rewritten
          help: add the column without a default, then SET DEFAULT (new rows only, no rewrite), then fill the existing rows in short batches
          fix:
            ALTER TABLE users ADD COLUMN public_id uuid;
            ALTER TABLE users ALTER COLUMN public_id SET DEFAULT gen_random_uuid();
            -- backfill in batches of 10000 rows by primary key (id here), each batch its own transaction, until max(id):
            UPDATE users SET public_id = gen_random_uuid() WHERE id >= 1 AND id < 10001 AND public_id IS NULL;
            UPDATE users SET public_id = gen_random_uuid() WHERE id >= 10001 AND id < 20001 AND public_id IS NULL;
        ");
    }

    #[test]
    fn not_null_volatile_default_adds_the_not_null_steps() {
        assert_snapshot!(check(RULE, "ALTER TABLE events ADD COLUMN w double precision NOT NULL DEFAULT random();"), @"
        error[adding-field-with-volatile-default] 1:1
          lock: ALTER TABLE takes ACCESS EXCLUSIVE on events: blocks reads and writes
          ADD COLUMN w rewrites events under ACCESS EXCLUSIVE: `random()` is volatile, so it is computed for each existing row; reads and writes wait until every row is rewritten
          help: add the column without a default, then SET DEFAULT (new rows only, no rewrite), then fill the existing rows in short batches
          fix:
            ALTER TABLE events ADD COLUMN w double precision;
            ALTER TABLE events ALTER COLUMN w SET DEFAULT random();
            -- backfill in batches of 10000 rows by primary key (id here), each batch its own transaction, until max(id):
            UPDATE events SET w = random() WHERE id >= 1 AND id < 10001 AND w IS NULL;
            UPDATE events SET w = random() WHERE id >= 10001 AND id < 20001 AND w IS NULL;
            ALTER TABLE events ADD CONSTRAINT events_w_not_null CHECK (w IS NOT NULL) NOT VALID;
            ALTER TABLE events VALIDATE CONSTRAINT events_w_not_null;
            ALTER TABLE events ALTER COLUMN w SET NOT NULL;
            ALTER TABLE events DROP CONSTRAINT events_w_not_null;
        ");
    }

    #[test]
    fn unknown_function_is_flagged_with_the_doubt_said() {
        assert_snapshot!(check(RULE, "ALTER TABLE users ADD COLUMN code text DEFAULT make_code();"), @"
        error[adding-field-with-volatile-default] 1:1
          lock: ALTER TABLE takes ACCESS EXCLUSIVE on users: blocks reads and writes
          ADD COLUMN code rewrites users under ACCESS EXCLUSIVE: pgcalm cannot tell whether `make_code()` is volatile; if it is, it is computed for each existing row; reads and writes wait until every row is rewritten
          help: add the column without a default, then SET DEFAULT (new rows only, no rewrite), then fill the existing rows in short batches
          fix:
            ALTER TABLE users ADD COLUMN code text;
            ALTER TABLE users ALTER COLUMN code SET DEFAULT make_code();
            -- backfill in batches of 10000 rows by primary key (id here), each batch its own transaction, until max(id):
            UPDATE users SET code = make_code() WHERE id >= 1 AND id < 10001 AND code IS NULL;
            UPDATE users SET code = make_code() WHERE id >= 10001 AND id < 20001 AND code IS NULL;
        ");
    }

    #[test]
    fn constant_and_stable_defaults_are_metadata_only_from_11() {
        assert_snapshot!(check(RULE, "ALTER TABLE users ADD COLUMN plan text NOT NULL DEFAULT 'free', ADD COLUMN at timestamptz DEFAULT now(), ADD COLUMN n int DEFAULT NULL;"), @"ok");
    }

    #[test]
    fn any_default_before_11() {
        assert_snapshot!(check_pg(RULE, "ALTER TABLE users ADD COLUMN plan text DEFAULT 'free';", 10), @"
        error[adding-field-with-volatile-default] 1:1
          lock: ALTER TABLE takes ACCESS EXCLUSIVE on users: blocks reads and writes
          ADD COLUMN plan rewrites users under ACCESS EXCLUSIVE: before PostgreSQL 11 every default is written into each row (PostgreSQL 10); reads and writes wait until every row is rewritten
          help: add the column without a default, then SET DEFAULT (new rows only, no rewrite), then fill the existing rows in short batches
          fix:
            ALTER TABLE users ADD COLUMN plan text;
            ALTER TABLE users ALTER COLUMN plan SET DEFAULT 'free';
            -- backfill in batches of 10000 rows by primary key (id here), each batch its own transaction, until max(id):
            UPDATE users SET plan = 'free' WHERE id >= 1 AND id < 10001 AND plan IS NULL;
            UPDATE users SET plan = 'free' WHERE id >= 10001 AND id < 20001 AND plan IS NULL;
        ");
    }

    #[test]
    fn new_tables_are_exempt() {
        assert_snapshot!(check(RULE, "CREATE TABLE t (id int);\nALTER TABLE t ADD COLUMN u uuid DEFAULT gen_random_uuid();"), @"ok");
    }
}
