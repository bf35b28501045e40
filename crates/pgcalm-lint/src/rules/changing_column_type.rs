//! `changing-column-type`: `ALTER COLUMN ... TYPE` on an existing table. Unless the new
//! type is binary-coercible from the old one, PostgreSQL rewrites the table and rebuilds
//! its indexes under ACCESS EXCLUSIVE. Binary-coercible (metadata-only) changes:
//! `varchar(n)` to `varchar(m >= n)`, unbounded `varchar` or `text`; `text` to unbounded
//! `varchar`; `numeric(p, s)` to `numeric(q >= p, s)` or unbounded `numeric`;
//! `varbit(n)` to a wider one; `cidr` to `inet`. `timestamp` <-> `timestamptz` (no
//! precision given) is free from PostgreSQL 12 when the session time zone is UTC: after a
//! `SET timezone = 'UTC'` (or `Etc/UTC`, `GMT`, `+00:00`...) in the unit; without one the
//! server's zone is unknown and it is flagged. When lint does not know the old type, a
//! change to `timestamptz` (or `timestamp`) in a UTC session is taken as the conversion
//! from the other one that the `SET` is written for.
//!
//! The old type is known when the column was created or added earlier in the unit (or
//! the engine was given the existing schema); otherwise only a target type that could
//! never be reached cheaply is sure, and the finding says the old type is unknown. One
//! statement rewrites the table once: one finding, naming every column.

use pg_query::NodeEnum;
use pg_query::protobuf::{AlterTableCmd, AlterTableType};

use crate::engine::{Cx, Rule, Violation};
use crate::rule_id::RuleId;
use crate::rules::recipe::{
    Fix, and_list, batched_set, column_def, edited_alter, expr_sql, type_sql,
};
use crate::rules::{alter_existing_table, ident};
use crate::unit::{string_list, type_name};

/// The rule.
pub(super) static RULE: Rule = Rule {
    id: RuleId::ChangingColumnType,
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

/// Whether `old` -> `new` is `timestamp` <-> `timestamptz` without a precision on the new
/// type (`timestamptz(3)` adds a rounding PostgreSQL computes for every row), which
/// PostgreSQL 12+ does in place in a UTC session. An unknown old type counts.
fn timestamp_zone_flip(old: Option<&str>, new: &str) -> bool {
    let base = |t: &str| t.split('(').next().unwrap_or(t).to_string();
    let flip = |a: &str, b: &str| {
        matches!(
            (a, b),
            ("timestamp", "timestamptz") | ("timestamptz", "timestamp")
        )
    };
    !new.contains('(')
        && matches!(new, "timestamp" | "timestamptz")
        && old.is_none_or(|o| flip(&base(o), new))
}

/// A USING expression that is only the column itself, or it cast once (to the new
/// type): a rewrite exactly when the change without USING would be one. A cast of a
/// cast (`col::text::new_enum`, the way from one enum to another) goes through the
/// intermediate type's I/O: always a rewrite.
fn using_is_the_column(using: &pg_query::Node, column: &str) -> bool {
    let is_column = |n: &pg_query::Node| match n.node.as_ref() {
        Some(NodeEnum::ColumnRef(c)) => {
            string_list(&c.fields).last().map(String::as_str) == Some(column)
        }
        _ => false,
    };
    match using.node.as_ref() {
        Some(NodeEnum::TypeCast(t)) => t.arg.as_deref().is_some_and(is_column),
        _ => is_column(using),
    }
}

/// One flagged type change: the column, its new type as SQL, why it rewrites, the value
/// for the new column (the USING expression as written, else the column: the
/// conversion the statement makes), whether it differs per run (a volatile USING: no
/// backfill that loops until nothing changes), and whether the old type is unknown.
struct Change {
    column: String,
    new_sql: String,
    why: String,
    value: String,
    volatile: bool,
    unknown_old: bool,
}

/// Why `ALTER COLUMN ... TYPE` rewrites (`None`: it does not).
fn change(cx: &Cx<'_>, table: &crate::RelName, cmd: &AlterTableCmd) -> Option<Change> {
    let def = column_def(cmd)?;
    let new_type = def.type_name.as_ref()?;
    let column = &cmd.name;
    let written = def.raw_default.as_deref();
    let using = written.filter(|u| !using_is_the_column(u, column));
    let old = cx.state.column_type(table, column).map(str::to_string);
    let new_name = type_name(new_type);
    if using.is_none()
        && cx.pg().at_least(12)
        && cx.state.time_zone_is_utc()
        && timestamp_zone_flip(old.as_deref(), &new_name)
    {
        return None;
    }
    if using.is_none()
        && old
            .as_deref()
            .is_some_and(|o| binary_coercible(o, &new_name))
    {
        return None;
    }
    // Printed only for a change that rewrites, each once (USING is the written value).
    let new_sql = type_sql(new_type);
    let written_sql = written.map(expr_sql);
    let why = match (&old, using) {
        (_, Some(_)) => format!(
            "the USING expression `{}` is computed for every row",
            written_sql.as_deref().unwrap_or_default()
        ),
        (Some(old), None) => format!("{old} -> {new_sql} is not binary-coercible"),
        (None, None) => format!(
            "unless {new_sql} is binary-coercible from the current type, which lint does not know"
        ),
    };
    Some(Change {
        column: column.clone(),
        value: written_sql.unwrap_or_else(|| ident(column)),
        volatile: written
            .is_some_and(|u| crate::locks::volatility(u) == crate::locks::Volatility::Volatile),
        unknown_old: old.is_none() && using.is_none(),
        new_sql,
        why,
    })
}

fn check(cx: &Cx<'_>) -> Vec<Violation> {
    let Some((table, cmds, lock)) = alter_existing_table(cx) else {
        return Vec::new();
    };
    let changes: Vec<Change> = cmds
        .iter()
        .filter(|(t, _)| *t == AlterTableType::AtAlterColumnType)
        .filter_map(|(_, cmd)| change(cx, table, cmd))
        .collect();
    if changes.is_empty() {
        return Vec::new();
    }
    let mut help = String::from(
        "expand and contract: add a column of the new type, keep it in step with a trigger, \
         backfill in batches, switch the application, drop the old column",
    );
    if changes.iter().any(|c| c.unknown_old) {
        help.push_str(
            ". If the change is binary-coercible (varchar(n) -> varchar(m >= n) or text, \
             numeric precision up at the same scale), it is metadata-only: give lint the \
             schema, or say so with `-- pgcalm:ignore changing-column-type <old type>`",
        );
    }
    let (what, why) = match changes.as_slice() {
        [c] => (
            format!("ALTER COLUMN {} TYPE {}", c.column, c.new_sql),
            if c.unknown_old {
                format!(" {}", c.why)
            } else {
                format!(": {}", c.why)
            },
        ),
        _ => (
            format!(
                "ALTER COLUMN {}",
                and_list(
                    &changes
                        .iter()
                        .map(|c| format!("{} TYPE {}", c.column, c.new_sql))
                        .collect::<Vec<_>>()
                )
            ),
            format!(
                " ({})",
                changes
                    .iter()
                    .map(|c| format!("{}: {}", c.column, c.why))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        ),
    };
    // In place: the statement with each type change turned into a new column of the new
    // type (its other subcommands as written); the rest is for later.
    let added = edited_alter(cx.node, |cmd| {
        if cmd.subtype == AlterTableType::AtAlterColumnType as i32
            && let Some(c) = changes.iter().find(|c| c.column == cmd.name)
            && let Some(NodeEnum::ColumnDef(def)) =
                cmd.def.as_deref_mut().and_then(|d| d.node.as_mut())
        {
            cmd.subtype = AlterTableType::AtAddColumn as i32;
            def.colname = format!("{}_new", c.column);
            def.raw_default = None;
            cmd.name.clear();
        } else if cmd.subtype == AlterTableType::AtColumnDefault as i32
            && changes.iter().any(|c| c.column == cmd.name)
        {
            // A default set with the new type is the new column's (on the old column a
            // value of the new type may not even fit: 0.1728 in an integer is 0). One
            // dropped with it stays on the old column while old code still inserts (the
            // new column has none).
            if cmd.def.is_none() {
                return false;
            }
            cmd.name = format!("{}_new", cmd.name);
        }
        true
    });
    let mut later = Vec::new();
    for c in &changes {
        let new_column = format!("{}_new", c.column);
        let c_new = ident(&new_column);
        // A value that differs per run never settles: no batch loop for it.
        let backfill = if c.volatile {
            format!(
                "-- backfill {c_new} = {} in batches by primary key, each batch its own \
                 transaction (each row once: the value differs per run)",
                c.value
            )
        } else {
            batched_set(cx, table, &new_column, &c.value)
        };
        later.push(format!(
            "-- a BEFORE INSERT OR UPDATE trigger keeps {c_new} = {} (of NEW's columns) for \
             new writes; then:\n{backfill}\n-- then in one short transaction rename {} away \
             and {c_new} to {}; drop the old column once nothing reads it",
            c.value,
            ident(&c.column),
            ident(&c.column),
        ));
    }
    let fix = Fix::default()
        .now(added.unwrap_or_default())
        .later("then", &later.join("\n"));
    let mut v = Violation::new(format!(
        "{what} rewrites {table} and rebuilds its indexes under ACCESS EXCLUSIVE{why}; reads \
         and writes wait until it ends"
    ))
    .help(help)
    .lock(lock);
    if let Some(sql) = fix.sql() {
        v = v.fix(sql);
    }
    vec![v]
}

#[cfg(test)]
mod tests {
    use insta::assert_snapshot;

    use super::binary_coercible;
    use crate::rules::test_support::{check, check_pg, lines};

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
            -- then:
            -- a BEFORE INSERT OR UPDATE trigger keeps id_new = id (of NEW's columns) for new writes; then:
            -- backfill in batches of 10000 rows (the key's type is not known: by physical row), each batch its own transaction, until it updates none:
            -- UPDATE events SET id_new = id WHERE ctid = ANY (ARRAY(SELECT ctid FROM events WHERE id_new IS DISTINCT FROM (id) LIMIT 10000));
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
            -- then:
            -- a BEFORE INSERT OR UPDATE trigger keeps status_new = length(status) (of NEW's columns) for new writes; then:
            -- backfill in batches of 10000 rows (the key's type is not known: by physical row), each batch its own transaction, until it updates none:
            -- UPDATE users SET status_new = length(status) WHERE ctid = ANY (ARRAY(SELECT ctid FROM users WHERE status_new IS DISTINCT FROM (length(status)) LIMIT 10000));
            -- then in one short transaction rename status away and status_new to status; drop the old column once nothing reads it
        ");
    }

    #[test]
    fn a_using_cast_through_text_is_kept_in_the_backfill() {
        // formbricks 20240421093432_adds_website_survey_type: an enum to another enum goes
        // through text (no cast between two enums): the backfill must convert the same way,
        // and "Survey".id is TEXT: no integer key ranges when the key's type is unknown.
        assert_snapshot!(check(RULE, "ALTER TABLE \"Survey\" ALTER COLUMN \"type\" TYPE \"SurveyType_new\" USING (\"type\"::text::\"SurveyType_new\");"), @r#"
        error[changing-column-type] 1:1
          lock: ALTER TABLE takes ACCESS EXCLUSIVE on Survey: blocks reads and writes
          ALTER COLUMN type TYPE "SurveyType_new" rewrites Survey and rebuilds its indexes under ACCESS EXCLUSIVE: the USING expression `type::text::"SurveyType_new"` is computed for every row; reads and writes wait until it ends
          help: expand and contract: add a column of the new type, keep it in step with a trigger, backfill in batches, switch the application, drop the old column
          fix:
            ALTER TABLE "Survey" ADD COLUMN type_new "SurveyType_new";
            -- then:
            -- a BEFORE INSERT OR UPDATE trigger keeps type_new = type::text::"SurveyType_new" (of NEW's columns) for new writes; then:
            -- backfill in batches of 10000 rows (the key's type is not known: by physical row), each batch its own transaction, until it updates none:
            -- UPDATE "Survey" SET type_new = type::text::"SurveyType_new" WHERE ctid = ANY (ARRAY(SELECT ctid FROM "Survey" WHERE type_new IS DISTINCT FROM (type::text::"SurveyType_new") LIMIT 10000));
            -- then in one short transaction rename type away and type_new to type; drop the old column once nothing reads it
        "#);
    }

    #[test]
    fn a_default_set_with_the_type_goes_to_the_new_column() {
        // lemmy 2023-08-23-182533_scaled_rank: the new default belongs to the new float
        // column; on the old integer one it would round 0.1728 to 0 for the old code's
        // inserts (judged a wrong fix in the seed-20 sample).
        let out = check(
            RULE,
            "ALTER TABLE post_aggregates ALTER COLUMN hot_rank TYPE float, ALTER COLUMN hot_rank SET DEFAULT 0.1728;",
        );
        assert!(
            out.contains("ALTER TABLE post_aggregates ADD COLUMN hot_rank_new double precision, ALTER COLUMN hot_rank_new SET DEFAULT 0.1728;"),
            "{out}"
        );
        // documenso 20240227003622_migrate_to_cuids_for_webhooks: a DROP DEFAULT on the
        // new column would run before its ADD COLUMN (PostgreSQL's pass order) and fail.
        let out = check(
            RULE,
            "ALTER TABLE \"Webhook\" ALTER COLUMN \"id\" DROP DEFAULT, ALTER COLUMN \"id\" SET DATA TYPE TEXT;",
        );
        assert!(
            out.contains("ALTER TABLE \"Webhook\" ADD COLUMN id_new text;"),
            "{out}"
        );
    }

    #[test]
    fn integer_key_ranges_only_for_a_known_integer_key() {
        let sql = "CREATE TABLE IF NOT EXISTS orders (id bigint PRIMARY KEY, note varchar(50));\n\
                   ALTER TABLE orders ALTER COLUMN note TYPE varchar(20);";
        let out = check(RULE, sql);
        assert!(out.contains("WHERE id >= 1 AND id < 10001"), "{out}");
        let sql = "CREATE TABLE IF NOT EXISTS orders (id uuid PRIMARY KEY, note varchar(50));\n\
                   ALTER TABLE orders ALTER COLUMN note TYPE varchar(20);";
        let out = check(RULE, sql);
        assert!(!out.contains("id >= 1"), "{out}");
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
            -- then:
            -- a BEFORE INSERT OR UPDATE trigger keeps note_new = note (of NEW's columns) for new writes; then:
            -- backfill in batches of 10000 rows (the key's type is not known: by physical row), each batch its own transaction, until it updates none:
            -- UPDATE orders SET note_new = note WHERE ctid = ANY (ARRAY(SELECT ctid FROM orders WHERE note_new IS DISTINCT FROM (note) LIMIT 10000));
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

    #[test]
    fn timestamp_to_timestamptz_in_a_utc_session_is_metadata_only_from_pg12() {
        for set in [
            "SET timezone = 'UTC'",
            "SET TIME ZONE 'UTC'",
            "SET timezone TO 'Etc/UTC'",
            "SET SESSION TIME ZONE 'GMT'",
            "SET timezone = '+00:00'",
            "SET TIME ZONE 0",
            "SELECT set_config('timezone', 'UTC', false)",
            "BEGIN;\nSET LOCAL timezone = 'UTC'",
        ] {
            for change in [
                "TYPE timestamp with time zone",
                "TYPE timestamptz",
                "TYPE timestamp",
            ] {
                let sql = format!("{set};\nALTER TABLE t ALTER COLUMN at {change};");
                assert_eq!(lines(RULE, &sql), Vec::<usize>::new(), "{sql}");
            }
        }
        // The old type known from the unit: timestamp.
        let sql = "SET timezone = 'UTC';\nALTER TABLE t ADD COLUMN at timestamp;\nALTER TABLE t ALTER COLUMN at TYPE timestamptz;";
        assert_eq!(lines(RULE, sql), Vec::<usize>::new());
        // Not UTC, not in effect, a precision, a USING, another old type: rewrites.
        for sql in [
            "SET timezone = 'Europe/London';\nALTER TABLE t ALTER COLUMN at TYPE timestamptz;",
            "SET LOCAL timezone = 'UTC';\nALTER TABLE t ALTER COLUMN at TYPE timestamptz;",
            "SET timezone = 'UTC';\nRESET timezone;\nALTER TABLE t ALTER COLUMN at TYPE timestamptz;",
            "SET timezone = 'UTC';\nSET TIME ZONE LOCAL;\nALTER TABLE t ALTER COLUMN at TYPE timestamptz;",
            "BEGIN;\nSET LOCAL timezone = 'UTC';\nCOMMIT;\nALTER TABLE t ALTER COLUMN at TYPE timestamptz;",
            "BEGIN;\nSET timezone = 'UTC';\nROLLBACK;\nALTER TABLE t ALTER COLUMN at TYPE timestamptz;",
            "ALTER TABLE t ALTER COLUMN at TYPE timestamptz;",
            "SET timezone = 'UTC';\nALTER TABLE t ALTER COLUMN at TYPE timestamptz(3);",
            "SET timezone = 'UTC';\nALTER TABLE t ALTER COLUMN at TYPE timestamptz USING at AT TIME ZONE 'UTC';",
            "SET timezone = 'UTC';\nALTER TABLE t ADD COLUMN d date;\nALTER TABLE t ALTER COLUMN d TYPE timestamptz;",
        ] {
            assert_eq!(lines(RULE, sql).len(), 1, "{sql}");
        }
        let sql = "SET timezone = 'UTC';\nALTER TABLE t ALTER COLUMN at TYPE timestamptz;";
        assert_ne!(check_pg(RULE, sql, 11), "ok");
    }

    #[test]
    fn one_finding_per_statement() {
        let sql = "ALTER TABLE events ALTER COLUMN id TYPE bigint, ALTER COLUMN kind TYPE varchar(10), ADD COLUMN note text;";
        assert_eq!(lines(RULE, sql), [1]);
        assert_snapshot!(check(RULE, sql), @"
        error[changing-column-type] 1:1
          lock: ALTER TABLE takes ACCESS EXCLUSIVE on events: blocks reads and writes
          ALTER COLUMN id TYPE bigint and kind TYPE varchar(10) rewrites events and rebuilds its indexes under ACCESS EXCLUSIVE (id: unless bigint is binary-coercible from the current type, which lint does not know; kind: unless varchar(10) is binary-coercible from the current type, which lint does not know); reads and writes wait until it ends
          help: expand and contract: add a column of the new type, keep it in step with a trigger, backfill in batches, switch the application, drop the old column. If the change is binary-coercible (varchar(n) -> varchar(m >= n) or text, numeric precision up at the same scale), it is metadata-only: give lint the schema, or say so with `-- pgcalm:ignore changing-column-type <old type>`
          fix:
            ALTER TABLE events ADD COLUMN id_new bigint, ADD COLUMN kind_new varchar(10), ADD COLUMN note text;
            -- then:
            -- a BEFORE INSERT OR UPDATE trigger keeps id_new = id (of NEW's columns) for new writes; then:
            -- backfill in batches of 10000 rows (the key's type is not known: by physical row), each batch its own transaction, until it updates none:
            -- UPDATE events SET id_new = id WHERE ctid = ANY (ARRAY(SELECT ctid FROM events WHERE id_new IS DISTINCT FROM (id) LIMIT 10000));
            -- then in one short transaction rename id away and id_new to id; drop the old column once nothing reads it
            -- a BEFORE INSERT OR UPDATE trigger keeps kind_new = kind (of NEW's columns) for new writes; then:
            -- backfill in batches of 10000 rows (the key's type is not known: by physical row), each batch its own transaction, until it updates none:
            -- UPDATE events SET kind_new = kind WHERE ctid = ANY (ARRAY(SELECT ctid FROM events WHERE kind_new IS DISTINCT FROM (kind) LIMIT 10000));
            -- then in one short transaction rename kind away and kind_new to kind; drop the old column once nothing reads it
        ");
    }
}
