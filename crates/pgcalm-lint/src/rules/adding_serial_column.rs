//! `adding-serial-column`: `ADD COLUMN` of a `serial`/`bigserial`/`smallserial` or an
//! identity column on an existing table. Every existing row gets a value from the
//! sequence, so the table is rewritten under ACCESS EXCLUSIVE.

use pg_query::protobuf::{ColumnDef, ConstrType};

use crate::engine::{Cx, Rule, Violation};
use crate::finding::Severity;
use crate::locks::is_serial_type;
use crate::rules::recipe::{backfill, check_added_columns, column_constraint, type_sql};
use crate::rules::{ident, rel};
use crate::unit::type_name;

/// The rule.
pub static RULE: Rule = Rule {
    name: "adding-serial-column",
    severity: Severity::Error,
    summary: "ADD COLUMN serial or GENERATED ... AS IDENTITY rewrites the table",
    default_on: true,
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

fn check(cx: &Cx<'_>) -> Vec<Violation> {
    check_added_columns(cx, |table, col| {
        let key = key_type(col)?;
        let column = &col.colname;
        let t = rel(table);
        let seq = ident(&format!("{}_{column}_seq", table.name));
        let fix = format!(
            "CREATE SEQUENCE {seq} AS {key};\nALTER TABLE {t} ADD COLUMN {c} {key};\n\
             ALTER TABLE {t} ALTER COLUMN {c} SET DEFAULT nextval('{seq}');\n\
             ALTER SEQUENCE {seq} OWNED BY {t}.{c};\n{}",
            backfill(table, column, &format!("nextval('{seq}')")),
            c = ident(column),
        );
        Some(
            Violation::new(format!(
                "ADD COLUMN {column} numbers every existing row of {table} from a sequence: the \
                 table is rewritten under ACCESS EXCLUSIVE and reads and writes wait until it ends"
            ))
            .help(
                "add a plain nullable integer column, give it a sequence default (new rows only, \
                 no rewrite), fill existing rows in short batches, then make it NOT NULL the \
                 CHECK way (an identity column can then be declared with ADD GENERATED ... AS \
                 IDENTITY once the default is dropped)",
            )
            .fix(fix),
        )
    })
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
            -- backfill in batches of 10000 rows, each its own transaction, until it updates none:
            UPDATE audit_log SET id = nextval('audit_log_id_seq') WHERE ctid = ANY (ARRAY(SELECT ctid FROM audit_log WHERE id IS NULL LIMIT 10000));
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
            -- backfill in batches of 10000 rows, each its own transaction, until it updates none:
            UPDATE sessions SET id = nextval('sessions_id_seq') WHERE ctid = ANY (ARRAY(SELECT ctid FROM sessions WHERE id IS NULL LIMIT 10000));
        ");
    }

    #[test]
    fn plain_integer_and_new_tables_are_fine() {
        assert_snapshot!(check(RULE, "ALTER TABLE t ADD COLUMN n bigint;\nCREATE TABLE n (a int);\nALTER TABLE n ADD COLUMN id serial;"), @"ok");
    }
}
