//! `setting-not-null`: `ALTER COLUMN ... SET NOT NULL` on an existing table scans every
//! row under ACCESS EXCLUSIVE. From PostgreSQL 12 the scan is skipped when a validated
//! `CHECK (col IS NOT NULL)` already proves it, which gives the safe recipe: add the
//! check NOT VALID, VALIDATE it (SHARE UPDATE EXCLUSIVE), SET NOT NULL, drop the check.

use pg_query::protobuf::AlterTableType;

use crate::engine::{Cx, Rule, Violation};
use crate::finding::Severity;
use crate::rules::{alter_existing_table, not_null_check_recipe};

/// The rule.
pub static RULE: Rule = Rule {
    name: "setting-not-null",
    severity: Severity::Error,
    summary: "SET NOT NULL scans the table under ACCESS EXCLUSIVE unless a validated CHECK proves it (PG12+)",
    default_on: true,
    check,
};

fn check(cx: &Cx<'_>) -> Vec<Violation> {
    let Some((table, cmds, lock)) = alter_existing_table(cx) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (subtype, cmd) in cmds {
        if subtype != AlterTableType::AtSetNotNull {
            continue;
        }
        let column = cmd.name.as_str();
        if cx.state.known_not_null(&table, column, cx.pg()) {
            continue;
        }
        let (add, validate, drop) = not_null_check_recipe(&table, column);
        let mut v = Violation::new(format!(
            "SET NOT NULL on {table}.{column} checks every row while holding {}: {} wait for \
             the whole scan",
            lock.mode,
            lock.blocks()
        ))
        .lock(lock);
        if cx.pg().at_least(12) {
            let pg18 = if cx.pg().at_least(18) {
                " (on PostgreSQL 18 also: ADD CONSTRAINT ... NOT NULL col NOT VALID, then VALIDATE)"
            } else {
                ""
            };
            v = v
                .help(format!(
                    "prove it first without blocking: ADD CONSTRAINT ... CHECK (col IS NOT NULL) \
                     NOT VALID, VALIDATE CONSTRAINT in its own transaction, then SET NOT NULL \
                     (no scan on PostgreSQL 12+) and drop the check{pg18}"
                ))
                .fix(format!("{add}\n{validate}\n{};\n{drop}", cx.sql()));
        } else {
            v = v
                .help(
                    "before PostgreSQL 12 SET NOT NULL always scans: keep a validated CHECK \
                     (col IS NOT NULL) instead (added NOT VALID, then VALIDATEd), or run it \
                     when the table is idle",
                )
                .fix(format!("{add}\n{validate}"));
        }
        out.push(v);
    }
    out
}

#[cfg(test)]
mod tests {
    use insta::assert_snapshot;

    use crate::rules::test_support::{check, check_pg};

    const RULE: &str = "setting-not-null";

    #[test]
    fn flags_set_not_null() {
        assert_snapshot!(check(RULE, "ALTER TABLE users ALTER COLUMN email SET NOT NULL;"), @"
        error[setting-not-null] 1:1
          lock: ALTER TABLE takes ACCESS EXCLUSIVE on users: blocks reads and writes
          SET NOT NULL on users.email checks every row while holding ACCESS EXCLUSIVE: reads and writes wait for the whole scan
          help: prove it first without blocking: ADD CONSTRAINT ... CHECK (col IS NOT NULL) NOT VALID, VALIDATE CONSTRAINT in its own transaction, then SET NOT NULL (no scan on PostgreSQL 12+) and drop the check
          fix:
            ALTER TABLE users ADD CONSTRAINT users_email_not_null CHECK (email IS NOT NULL) NOT VALID;
            ALTER TABLE users VALIDATE CONSTRAINT users_email_not_null;
            ALTER TABLE users ALTER COLUMN email SET NOT NULL;
            ALTER TABLE users DROP CONSTRAINT users_email_not_null;
        ");
    }

    #[test]
    fn a_validated_check_earlier_makes_it_safe_from_pg12() {
        let sql = "ALTER TABLE users ADD CONSTRAINT users_email_not_null CHECK (email IS NOT NULL) NOT VALID;\nALTER TABLE users VALIDATE CONSTRAINT users_email_not_null;\nALTER TABLE users ALTER COLUMN email SET NOT NULL;";
        assert_snapshot!(check(RULE, sql), @"ok");
        assert_snapshot!(check_pg(RULE, sql, 11), @"
        error[setting-not-null] 3:1
          lock: ALTER TABLE takes ACCESS EXCLUSIVE on users: blocks reads and writes
          SET NOT NULL on users.email checks every row while holding ACCESS EXCLUSIVE: reads and writes wait for the whole scan
          help: before PostgreSQL 12 SET NOT NULL always scans: keep a validated CHECK (col IS NOT NULL) instead (added NOT VALID, then VALIDATEd), or run it when the table is idle
          fix:
            ALTER TABLE users ADD CONSTRAINT users_email_not_null CHECK (email IS NOT NULL) NOT VALID;
            ALTER TABLE users VALIDATE CONSTRAINT users_email_not_null;
        ");
    }

    #[test]
    fn an_unvalidated_check_does_not() {
        assert_snapshot!(check(RULE, "ALTER TABLE users ADD CONSTRAINT c CHECK (email IS NOT NULL) NOT VALID;\nALTER TABLE users ALTER COLUMN email SET NOT NULL;"), @"
        error[setting-not-null] 2:1
          lock: ALTER TABLE takes ACCESS EXCLUSIVE on users: blocks reads and writes
          SET NOT NULL on users.email checks every row while holding ACCESS EXCLUSIVE: reads and writes wait for the whole scan
          help: prove it first without blocking: ADD CONSTRAINT ... CHECK (col IS NOT NULL) NOT VALID, VALIDATE CONSTRAINT in its own transaction, then SET NOT NULL (no scan on PostgreSQL 12+) and drop the check
          fix:
            ALTER TABLE users ADD CONSTRAINT users_email_not_null CHECK (email IS NOT NULL) NOT VALID;
            ALTER TABLE users VALIDATE CONSTRAINT users_email_not_null;
            ALTER TABLE users ALTER COLUMN email SET NOT NULL;
            ALTER TABLE users DROP CONSTRAINT users_email_not_null;
        ");
    }

    #[test]
    fn a_new_table_is_fine() {
        assert_snapshot!(check(RULE, "CREATE TABLE t (a int);\nALTER TABLE t ALTER COLUMN a SET NOT NULL;"), @"ok");
    }
}
