//! `changing-column-type`: `ALTER COLUMN ... TYPE` on an existing table. Unless the new
//! type is binary-coercible from the old one, PostgreSQL rewrites the table and rebuilds
//! its indexes under ACCESS EXCLUSIVE. Binary-coercible (metadata-only) changes:
//! `varchar(n)` to `varchar(m >= n)`, unbounded `varchar` or `text`; `text` to unbounded
//! `varchar`; `numeric(p, s)` to `numeric(q >= p, s)` or unbounded `numeric`;
//! `varbit(n)` to a wider one; `cidr` to `inet`. `timestamp` to `timestamptz` is free
//! only when the session time zone is UTC, which lint cannot know, so it is flagged.
//!
//! The old type is known when the column was created or added earlier in the unit (or
//! the engine was given the existing schema); otherwise only a target type that could
//! never be reached cheaply is sure, and the finding says the old type is unknown.

use crate::engine::{Cx, Rule, Violation};
use crate::finding::Severity;
use crate::rules::recipe::{BATCH, batches_comment, column_def, expr_sql, type_sql};
use crate::rules::{alter_existing_table, ident, rel};
use crate::unit::type_name;
use pg_query::protobuf::AlterTableType;

/// The rule.
pub static RULE: Rule = Rule {
    name: "changing-column-type",
    severity: Severity::Error,
    summary: "ALTER COLUMN TYPE rewrites the table unless the change is binary-coercible",
    default_on: true,
    check,
};

/// `varchar(255)` -> (`varchar`, [255]).
fn split_type(t: &str) -> (&str, Vec<i64>) {
    match t.split_once('(') {
        Some((base, mods)) => (
            base,
            mods.trim_end_matches(')')
                .split(',')
                .filter_map(|m| m.trim().parse().ok())
                .collect(),
        ),
        None => (t, Vec::new()),
    }
}

/// Whether PostgreSQL changes `old` to `new` without touching the rows.
pub(crate) fn binary_coercible(old: &str, new: &str) -> bool {
    if old == new {
        return true;
    }
    let ((ob, om), (nb, nm)) = (split_type(old), split_type(new));
    let text_like = |b: &str| matches!(b, "varchar" | "text");
    match (ob, nb) {
        ("varchar", "varchar") | ("varbit", "varbit") | ("bit varying", "bit varying") => {
            nm.is_empty() || (!om.is_empty() && nm[0] >= om[0])
        }
        ("varchar", "text") => true,
        ("text", "varchar") => nm.is_empty(),
        (o, n) if text_like(o) && text_like(n) => nm.is_empty(),
        ("numeric", "numeric") => {
            nm.is_empty()
                || (om.len() == nm.len()
                    && !om.is_empty()
                    && nm[0] >= om[0]
                    && om.get(1).copied().unwrap_or(0) == nm.get(1).copied().unwrap_or(0))
        }
        ("cidr", "inet") => true,
        _ => false,
    }
}

fn check(cx: &Cx<'_>) -> Vec<Violation> {
    let Some((table, cmds, lock)) = alter_existing_table(cx) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (subtype, cmd) in cmds {
        if subtype != AlterTableType::AtAlterColumnType {
            continue;
        }
        let Some(def) = column_def(cmd) else { continue };
        let Some(new_type) = def.type_name.as_ref() else {
            continue;
        };
        let column = &cmd.name;
        let using = def.raw_default.as_deref();
        let old = cx
            .state
            .table(&table)
            .and_then(|t| t.column(column))
            .map(|c| c.type_name.clone())
            .filter(|t| !t.is_empty());
        let new_sql = type_sql(new_type);
        let mut help = String::from(
            "expand and contract: add a column of the new type, keep it in step with a trigger, \
             backfill in batches, switch the application, drop the old column",
        );
        let why = match (&old, using) {
            (_, Some(u)) => format!(
                ": the USING expression `{}` is computed for every row",
                expr_sql(u)
            ),
            (Some(old), None) if binary_coercible(old, &type_name(new_type)) => continue,
            (Some(old), None) => format!(": {old} -> {new_sql} is not binary-coercible"),
            (None, None) => {
                help.push_str(
                    ". If the change is binary-coercible (varchar(n) -> varchar(m >= n) or text, \
                     numeric precision up at the same scale), it is metadata-only: give lint the \
                     schema, or say so with `-- pgcalm:ignore changing-column-type <old type>`",
                );
                format!(
                    " unless {new_sql} is binary-coercible from the current type, which lint does not know"
                )
            }
        };
        let t = rel(&table);
        let c = ident(column);
        let c_new = ident(&format!("{column}_new"));
        let value = using.map(expr_sql).unwrap_or_else(|| c.clone());
        let fix = format!(
            "ALTER TABLE {t} ADD COLUMN {c_new} {new_sql};\n-- a BEFORE INSERT OR UPDATE trigger \
             keeps {c_new} = {value} for new writes; then:\n{}\nUPDATE {t} SET {c_new} = {value} \
             WHERE id >= 1 AND id < {};\n-- then in one short transaction rename {c} away and \
             {c_new} to {c}; drop the old column once nothing reads it",
            batches_comment(),
            BATCH + 1,
        );
        let v = Violation::new(format!(
            "ALTER COLUMN {column} TYPE {new_sql} rewrites {table} and rebuilds its indexes under \
             ACCESS EXCLUSIVE{why}; reads and writes wait until it ends"
        ))
        .help(help)
        .fix(fix)
        .lock(lock);
        out.push(v);
    }
    out
}

#[cfg(test)]
mod tests {
    use insta::assert_snapshot;

    use super::binary_coercible;
    use crate::rules::test_support::check;

    const RULE: &str = "changing-column-type";

    #[test]
    fn int_to_bigint_with_the_old_type_unknown() {
        assert_snapshot!(check(RULE, "ALTER TABLE events ALTER COLUMN id TYPE bigint;"), @"
        error[changing-column-type] 1:1
          lock: ALTER TABLE takes ACCESS EXCLUSIVE on events: blocks reads and writes
          ALTER COLUMN id TYPE bigint rewrites events and rebuilds its indexes under ACCESS EXCLUSIVE unless bigint is binary-coercible from the current type, which lint does not know; reads and writes wait until it ends
          help: expand and contract: add a column of the new type, keep it in step with a trigger, backfill in batches, switch the application, drop the old column. If the change is binary-coercible (varchar(n) -> varchar(m >= n) or text, numeric precision up at the same scale), it is metadata-only: give lint the schema, or say so with `-- pgcalm:ignore changing-column-type <old type>`
          fix:
            ALTER TABLE events ADD COLUMN id_new bigint;
            -- a BEFORE INSERT OR UPDATE trigger keeps id_new = id for new writes; then:
            -- backfill in batches of 10000 rows by primary key (id here), each batch its own transaction, until max(id):
            UPDATE events SET id_new = id WHERE id >= 1 AND id < 10001;
            -- then in one short transaction rename id away and id_new to id; drop the old column once nothing reads it
        ");
    }

    #[test]
    fn using_expression_always_rewrites() {
        assert_snapshot!(check(RULE, "ALTER TABLE users ALTER COLUMN status TYPE integer USING length(status);"), @"
        error[changing-column-type] 1:1
          lock: ALTER TABLE takes ACCESS EXCLUSIVE on users: blocks reads and writes
          ALTER COLUMN status TYPE int rewrites users and rebuilds its indexes under ACCESS EXCLUSIVE: the USING expression `length(status)` is computed for every row; reads and writes wait until it ends
          help: expand and contract: add a column of the new type, keep it in step with a trigger, backfill in batches, switch the application, drop the old column
          fix:
            ALTER TABLE users ADD COLUMN status_new int;
            -- a BEFORE INSERT OR UPDATE trigger keeps status_new = length(status) for new writes; then:
            -- backfill in batches of 10000 rows by primary key (id here), each batch its own transaction, until max(id):
            UPDATE users SET status_new = length(status) WHERE id >= 1 AND id < 10001;
            -- then in one short transaction rename status away and status_new to status; drop the old column once nothing reads it
        ");
    }

    #[test]
    fn known_old_type_from_earlier_in_the_file() {
        let sql = "ALTER TABLE orders ADD COLUMN note varchar(50);\n\
                   ALTER TABLE orders ALTER COLUMN note TYPE varchar(100);\n\
                   ALTER TABLE orders ALTER COLUMN note TYPE text;\n\
                   ALTER TABLE orders ALTER COLUMN note TYPE varchar(20);";
        assert_snapshot!(check(RULE, sql), @"
        error[changing-column-type] 4:1
          lock: ALTER TABLE takes ACCESS EXCLUSIVE on orders: blocks reads and writes
          ALTER COLUMN note TYPE varchar(20) rewrites orders and rebuilds its indexes under ACCESS EXCLUSIVE: text -> varchar(20) is not binary-coercible; reads and writes wait until it ends
          help: expand and contract: add a column of the new type, keep it in step with a trigger, backfill in batches, switch the application, drop the old column
          fix:
            ALTER TABLE orders ADD COLUMN note_new varchar(20);
            -- a BEFORE INSERT OR UPDATE trigger keeps note_new = note for new writes; then:
            -- backfill in batches of 10000 rows by primary key (id here), each batch its own transaction, until max(id):
            UPDATE orders SET note_new = note WHERE id >= 1 AND id < 10001;
            -- then in one short transaction rename note away and note_new to note; drop the old column once nothing reads it
        ");
    }

    #[test]
    fn coercible_pairs() {
        for (old, new) in [
            ("varchar(50)", "varchar(100)"),
            ("varchar(50)", "varchar"),
            ("varchar(50)", "text"),
            ("text", "varchar"),
            ("numeric(10,2)", "numeric(12,2)"),
            ("numeric(10,2)", "numeric"),
            ("cidr", "inet"),
        ] {
            assert!(binary_coercible(old, new), "{old} -> {new}");
        }
        for (old, new) in [
            ("varchar(100)", "varchar(50)"),
            ("text", "varchar(50)"),
            ("numeric(10,2)", "numeric(12,4)"),
            ("numeric", "numeric(10,2)"),
            ("int4", "int8"),
            ("timestamp", "timestamptz"),
        ] {
            assert!(!binary_coercible(old, new), "{old} -> {new}");
        }
    }
}
