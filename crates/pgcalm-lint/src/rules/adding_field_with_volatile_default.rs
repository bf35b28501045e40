//! `adding-field-with-volatile-default`: `ADD COLUMN ... DEFAULT <volatile expression>`
//! on an existing table, or any non-NULL default before PostgreSQL 11. The default is
//! computed for every existing row, so the table is rewritten under ACCESS EXCLUSIVE:
//! no reads or writes until the rewrite ends. From PostgreSQL 11 a non-volatile default
//! (a constant, `now()`) is stored once in the catalog and costs nothing.

use pg_query::protobuf::{ColumnDef, ConstrType};

use crate::engine::{Cx, Rule, Violation};
use crate::locks::{Volatility, volatility};
use crate::rule_id::RuleId;
use crate::rules::recipe::{
    Fix, added_columns, and_list, backfill, declared_not_null, default_expr, expr_sql,
    in_a_later_transaction, not_null_steps, strip_constraints, with_added_columns_edited,
};
use crate::rules::{ident, rel};

/// The rule.
pub(super) static RULE: Rule = Rule {
    id: RuleId::AddingFieldWithVolatileDefault,
    check,
};

/// Why adding a column rewrites the table.
enum Rewrite {
    /// Before PostgreSQL 11 every default does.
    AnyDefault,
    /// The default is volatile.
    Volatile,
    /// Its volatility is not known.
    Unknown,
}

/// Whether adding this column rewrites the table, and why (`None`: it does not). No SQL
/// is printed for the columns that do not.
fn rewrite(cx: &Cx<'_>, col: &ColumnDef) -> Option<Rewrite> {
    let default = default_expr(col)?;
    if !cx.pg().at_least(11) {
        return Some(Rewrite::AnyDefault);
    }
    match volatility(default) {
        Volatility::Volatile => Some(Rewrite::Volatile),
        Volatility::Unknown => Some(Rewrite::Unknown),
        Volatility::Stable => None,
    }
}

/// Why adding a column whose default is `value` (as SQL) rewrites the table.
fn explain(cx: &Cx<'_>, rewrite: &Rewrite, value: &str) -> String {
    match rewrite {
        Rewrite::AnyDefault => format!(
            "before PostgreSQL 11 every default is written into each row ({})",
            cx.pg()
        ),
        Rewrite::Volatile => {
            format!("`{value}` is volatile, so it is computed for each existing row")
        }
        Rewrite::Unknown => format!(
            "pgcalm cannot tell whether `{value}` is volatile; if it is, it is computed for each existing row"
        ),
    }
}

fn check(cx: &Cx<'_>) -> Vec<Violation> {
    let Some((table, columns, lock)) = added_columns(cx, |c| rewrite(cx, c).is_some()) else {
        return Vec::new();
    };
    let names: Vec<String> = columns.iter().map(|c| c.colname.clone()).collect();
    // Each default as SQL, printed once for the message and the fix.
    let values: Vec<String> = columns
        .iter()
        .map(|c| default_expr(c).map(expr_sql).unwrap_or_default())
        .collect();
    let reasons = columns.iter().zip(&values).filter_map(|(c, value)| {
        rewrite(cx, c).map(|r| (c.colname.as_str(), explain(cx, &r, value)))
    });
    let why = match columns.as_slice() {
        [_] => reasons.map(|(_, w)| w).next().unwrap_or_default(),
        _ => reasons
            .map(|(name, w)| format!("{name}: {w}"))
            .collect::<Vec<_>>()
            .join("; "),
    };
    // In place: the columns without their defaults (NOT NULL and a primary key wait for
    // the backfill), then the defaults for new rows; later: the backfill, NOT NULL.
    let mut fix = Fix::default().now(
        with_added_columns_edited(cx.node, &columns, |col| {
            strip_constraints(
                col,
                &[
                    ConstrType::ConstrDefault,
                    ConstrType::ConstrNotnull,
                    ConstrType::ConstrPrimary,
                ],
            )
        })
        .unwrap_or_default(),
    );
    let mut backfills = Vec::new();
    for (col, value) in columns.iter().zip(&values) {
        fix = fix.now(format!(
            "ALTER TABLE {} ALTER COLUMN {} SET DEFAULT {value};",
            rel(&table),
            ident(&col.colname)
        ));
        backfills.push(backfill(cx, &table, &col.colname, value, false));
    }
    let when = if cx.state.in_transaction {
        format!("{}, fill the existing rows", in_a_later_transaction(cx))
    } else {
        "then fill the existing rows".to_string()
    };
    fix = fix.later(&when, &backfills.join("\n"));
    let not_null: Vec<&str> = columns
        .iter()
        .filter(|c| declared_not_null(c))
        .map(|c| c.colname.as_str())
        .collect();
    fix = fix.later(
        "once every row is filled",
        &not_null_steps(&table, &not_null, cx.pg()),
    );
    let mut v = Violation::new(format!(
        "ADD COLUMN {} rewrites {table} under ACCESS EXCLUSIVE: {why}; reads and writes wait \
         until every row is rewritten",
        and_list(&names)
    ))
    .help(
        "add the column without a default, then SET DEFAULT (new rows only, no rewrite), then \
         fill the existing rows in short batches",
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

    use crate::rules::test_support::{check, check_migration, check_pg, lines};

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
            -- then fill the existing rows:
            -- in batches of 10000 rows, each its own transaction, until it updates none:
            -- UPDATE users SET public_id = gen_random_uuid() WHERE ctid = ANY (ARRAY(SELECT ctid FROM users WHERE public_id IS NULL LIMIT 10000));
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
            -- then fill the existing rows:
            -- in batches of 10000 rows, each its own transaction, until it updates none:
            -- UPDATE events SET w = random() WHERE ctid = ANY (ARRAY(SELECT ctid FROM events WHERE w IS NULL LIMIT 10000));
            -- once every row is filled:
            -- ALTER TABLE events ADD CONSTRAINT events_w_not_null CHECK (w IS NOT NULL) NOT VALID;
            -- ALTER TABLE events VALIDATE CONSTRAINT events_w_not_null;
            -- ALTER TABLE events ALTER COLUMN w SET NOT NULL;
            -- ALTER TABLE events DROP CONSTRAINT events_w_not_null;
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
            -- then fill the existing rows:
            -- in batches of 10000 rows, each its own transaction, until it updates none:
            -- UPDATE users SET code = make_code() WHERE ctid = ANY (ARRAY(SELECT ctid FROM users WHERE code IS NULL LIMIT 10000));
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
            -- then fill the existing rows:
            -- in batches of 10000 rows, each its own transaction, until it updates none:
            -- UPDATE users SET plan = 'free' WHERE ctid = ANY (ARRAY(SELECT ctid FROM users WHERE plan IS NULL LIMIT 10000));
        ");
    }

    #[test]
    fn new_tables_are_exempt() {
        assert_snapshot!(check(RULE, "CREATE TABLE t (id int);\nALTER TABLE t ADD COLUMN u uuid DEFAULT gen_random_uuid();"), @"ok");
    }

    #[test]
    fn one_finding_per_statement_and_the_other_clauses_kept() {
        let sql = "ALTER TABLE users ADD COLUMN a uuid DEFAULT gen_random_uuid(), ADD COLUMN b float8 DEFAULT random(), ADD COLUMN c text;";
        assert_eq!(lines(RULE, sql), [1]);
        assert_snapshot!(check(RULE, sql), @"
        error[adding-field-with-volatile-default] 1:1
          lock: ALTER TABLE takes ACCESS EXCLUSIVE on users: blocks reads and writes
          ADD COLUMN a and b rewrites users under ACCESS EXCLUSIVE: a: `gen_random_uuid()` is volatile, so it is computed for each existing row; b: `random()` is volatile, so it is computed for each existing row; reads and writes wait until every row is rewritten
          help: add the column without a default, then SET DEFAULT (new rows only, no rewrite), then fill the existing rows in short batches
          fix:
            ALTER TABLE users ADD COLUMN a uuid, ADD COLUMN b float8, ADD COLUMN c text;
            ALTER TABLE users ALTER COLUMN a SET DEFAULT gen_random_uuid();
            ALTER TABLE users ALTER COLUMN b SET DEFAULT random();
            -- then fill the existing rows:
            -- in batches of 10000 rows, each its own transaction, until it updates none:
            -- UPDATE users SET a = gen_random_uuid() WHERE ctid = ANY (ARRAY(SELECT ctid FROM users WHERE a IS NULL LIMIT 10000));
            -- in batches of 10000 rows, each its own transaction, until it updates none:
            -- UPDATE users SET b = random() WHERE ctid = ANY (ARRAY(SELECT ctid FROM users WHERE b IS NULL LIMIT 10000));
        ");
    }

    #[test]
    fn in_one_transaction_the_backfill_comes_later() {
        assert_snapshot!(check_migration(RULE, "ALTER TABLE users ADD COLUMN public_id uuid NOT NULL DEFAULT gen_random_uuid();", true), @"
        error[adding-field-with-volatile-default] 1:1
          lock: ALTER TABLE takes ACCESS EXCLUSIVE on users: blocks reads and writes
          ADD COLUMN public_id rewrites users under ACCESS EXCLUSIVE: `gen_random_uuid()` is volatile, so it is computed for each existing row; reads and writes wait until every row is rewritten
          help: add the column without a default, then SET DEFAULT (new rows only, no rewrite), then fill the existing rows in short batches
          fix:
            ALTER TABLE users ADD COLUMN public_id uuid;
            ALTER TABLE users ALTER COLUMN public_id SET DEFAULT gen_random_uuid();
            -- in a later migration (a transaction of its own), fill the existing rows:
            -- in batches of 10000 rows, each its own transaction, until it updates none:
            -- UPDATE users SET public_id = gen_random_uuid() WHERE ctid = ANY (ARRAY(SELECT ctid FROM users WHERE public_id IS NULL LIMIT 10000));
            -- once every row is filled:
            -- ALTER TABLE users ADD CONSTRAINT users_public_id_not_null CHECK (public_id IS NOT NULL) NOT VALID;
            -- ALTER TABLE users VALIDATE CONSTRAINT users_public_id_not_null;
            -- ALTER TABLE users ALTER COLUMN public_id SET NOT NULL;
            -- ALTER TABLE users DROP CONSTRAINT users_public_id_not_null;
        ");
    }
}
