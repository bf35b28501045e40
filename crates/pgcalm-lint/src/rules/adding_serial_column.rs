//! `adding-serial-column`: `ADD COLUMN` of a `serial`/`bigserial`/`smallserial` or an
//! identity column on an existing table. Every existing row gets a value from the
//! sequence, so the table is rewritten under ACCESS EXCLUSIVE.

use pg_query::NodeEnum;
use pg_query::protobuf::{ColumnDef, ConstrType};

use crate::engine::{Cx, Rule, Violation};
use crate::locks::is_serial_type;
use crate::rule_id::RuleId;
use crate::rules::recipe::{
    Fix, added_columns, and_list, backfill, column_constraint, in_a_later_transaction,
    not_null_steps, strip_constraints, template, type_sql, with_added_columns_edited,
};
use crate::rules::{ident, rel};
use crate::unit::type_name;

/// The rule.
pub(super) static RULE: Rule = Rule {
    id: RuleId::AddingSerialColumn,
    check,
};

/// The integer type behind a serial or identity column.
fn key_type(col: &ColumnDef) -> Option<String> {
    let t = col.type_name.as_ref()?;
    if is_serial_type(t) {
        return Some(
            match type_name(t).as_str() {
                "smallserial" | "serial2" => "smallint",
                "serial" | "serial4" => "integer",
                _ => "bigint",
            }
            .into(),
        );
    }
    column_constraint(col, ConstrType::ConstrIdentity).map(|_| type_sql(t))
}

/// Whether the column gets a [`key_type`], without printing it.
fn is_key(col: &ColumnDef) -> bool {
    col.type_name.as_ref().is_some_and(|t| {
        is_serial_type(t) || column_constraint(col, ConstrType::ConstrIdentity).is_some()
    })
}

/// A type name node for a fix (`bigint`), from a parsed template.
fn plain_type(key: &str) -> Option<pg_query::protobuf::TypeName> {
    match template(&format!("SELECT NULL::{key}"))? {
        NodeEnum::SelectStmt(s) => match s.target_list.first()?.node.as_ref()? {
            NodeEnum::ResTarget(r) => match r.val.as_deref()?.node.as_ref()? {
                NodeEnum::TypeCast(c) => c.type_name.clone(),
                _ => None,
            },
            _ => None,
        },
        _ => None,
    }
}

fn check(cx: &Cx<'_>) -> Vec<Violation> {
    let Some((table, columns, lock)) = added_columns(cx, is_key) else {
        return Vec::new();
    };
    let t = rel(&table);
    let names: Vec<String> = columns.iter().map(|c| c.colname.clone()).collect();
    // In place: a sequence per column, the columns as plain nullable integers, a sequence
    // default for new rows; later: the existing rows numbered in batches, then NOT NULL.
    let mut fix = Fix::default();
    let mut after = Vec::new();
    let mut backfills = Vec::new();
    for col in &columns {
        let key = key_type(col).unwrap_or_default();
        let c = ident(&col.colname);
        let seq = ident(&format!("{}_{}_seq", table.name, col.colname));
        fix = fix.now(format!("CREATE SEQUENCE {seq} AS {key};"));
        after.push(format!(
            "ALTER TABLE {t} ALTER COLUMN {c} SET DEFAULT nextval('{seq}');\n\
             ALTER SEQUENCE {seq} OWNED BY {t}.{c};"
        ));
        backfills.push(backfill(
            cx,
            &table,
            &col.colname,
            &format!("nextval('{seq}')"),
            false,
        ));
    }
    let plain = with_added_columns_edited(cx.node, &columns, |col| {
        if let Some(key) = key_type(col).as_deref().and_then(plain_type) {
            col.type_name = Some(key);
        }
        strip_constraints(
            col,
            &[
                ConstrType::ConstrIdentity,
                ConstrType::ConstrNotnull,
                ConstrType::ConstrPrimary,
            ],
        );
    });
    fix = fix.now(plain.unwrap_or_default());
    for a in after {
        fix = fix.now(a);
    }
    let when = if cx.state.in_transaction {
        format!("{}, number the existing rows", in_a_later_transaction(cx))
    } else {
        "then number the existing rows".to_string()
    };
    fix = fix.later(&when, &backfills.join("\n")).later(
        "once every row has a value",
        &not_null_steps(
            &table,
            &names.iter().map(String::as_str).collect::<Vec<_>>(),
            cx.pg(),
        ),
    );
    let mut v = Violation::new(format!(
        "ADD COLUMN {} numbers every existing row of {table} from a sequence: the table is \
         rewritten under ACCESS EXCLUSIVE and reads and writes wait until it ends",
        and_list(&names)
    ))
    .help(
        "add a plain nullable integer column, give it a sequence default (new rows only, no \
         rewrite), fill existing rows in short batches, then make it NOT NULL the CHECK way (an \
         identity column can then be declared with ADD GENERATED ... AS IDENTITY once the \
         default is dropped)",
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

    const RULE: &str = "adding-serial-column";

    #[test]
    fn bigserial() {
        assert_snapshot!(check(RULE, "ALTER TABLE audit_log ADD COLUMN id bigserial;"), @"
        error[adding-serial-column] 1:1
          lock: ALTER TABLE takes ACCESS EXCLUSIVE on audit_log: blocks reads and writes
          ADD COLUMN id numbers every existing row of audit_log from a sequence: the table is rewritten under ACCESS EXCLUSIVE and reads and writes wait until it ends
          help: add a plain nullable integer column, give it a sequence default (new rows only, no rewrite), fill existing rows in short batches, then make it NOT NULL the CHECK way (an identity column can then be declared with ADD GENERATED ... AS IDENTITY once the default is dropped)
          fix:
            CREATE SEQUENCE audit_log_id_seq AS bigint;
            ALTER TABLE audit_log ADD COLUMN id bigint;
            ALTER TABLE audit_log ALTER COLUMN id SET DEFAULT nextval('audit_log_id_seq');
            ALTER SEQUENCE audit_log_id_seq OWNED BY audit_log.id;
            -- then number the existing rows:
            -- in batches of 10000 rows, each its own transaction, until it updates none:
            -- UPDATE audit_log SET id = nextval('audit_log_id_seq') WHERE ctid = ANY (ARRAY(SELECT ctid FROM audit_log WHERE id IS NULL LIMIT 10000));
            -- once every row has a value:
            -- ALTER TABLE audit_log ADD CONSTRAINT audit_log_id_not_null CHECK (id IS NOT NULL) NOT VALID;
            -- ALTER TABLE audit_log VALIDATE CONSTRAINT audit_log_id_not_null;
            -- ALTER TABLE audit_log ALTER COLUMN id SET NOT NULL;
            -- ALTER TABLE audit_log DROP CONSTRAINT audit_log_id_not_null;
        ");
    }

    #[test]
    fn identity() {
        assert_snapshot!(check(RULE, "ALTER TABLE sessions ADD COLUMN id integer GENERATED ALWAYS AS IDENTITY;"), @"
        error[adding-serial-column] 1:1
          lock: ALTER TABLE takes ACCESS EXCLUSIVE on sessions: blocks reads and writes
          ADD COLUMN id numbers every existing row of sessions from a sequence: the table is rewritten under ACCESS EXCLUSIVE and reads and writes wait until it ends
          help: add a plain nullable integer column, give it a sequence default (new rows only, no rewrite), fill existing rows in short batches, then make it NOT NULL the CHECK way (an identity column can then be declared with ADD GENERATED ... AS IDENTITY once the default is dropped)
          fix:
            CREATE SEQUENCE sessions_id_seq AS int;
            ALTER TABLE sessions ADD COLUMN id int;
            ALTER TABLE sessions ALTER COLUMN id SET DEFAULT nextval('sessions_id_seq');
            ALTER SEQUENCE sessions_id_seq OWNED BY sessions.id;
            -- then number the existing rows:
            -- in batches of 10000 rows, each its own transaction, until it updates none:
            -- UPDATE sessions SET id = nextval('sessions_id_seq') WHERE ctid = ANY (ARRAY(SELECT ctid FROM sessions WHERE id IS NULL LIMIT 10000));
            -- once every row has a value:
            -- ALTER TABLE sessions ADD CONSTRAINT sessions_id_not_null CHECK (id IS NOT NULL) NOT VALID;
            -- ALTER TABLE sessions VALIDATE CONSTRAINT sessions_id_not_null;
            -- ALTER TABLE sessions ALTER COLUMN id SET NOT NULL;
            -- ALTER TABLE sessions DROP CONSTRAINT sessions_id_not_null;
        ");
    }

    #[test]
    fn plain_integer_and_new_tables_are_fine() {
        assert_snapshot!(check(RULE, "ALTER TABLE t ADD COLUMN n bigint;\nCREATE TABLE n (a int);\nALTER TABLE n ADD COLUMN id serial;"), @"ok");
    }
}
