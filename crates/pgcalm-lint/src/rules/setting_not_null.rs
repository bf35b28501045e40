//! `setting-not-null`: `ALTER COLUMN ... SET NOT NULL` on an existing table scans every
//! row under ACCESS EXCLUSIVE. From PostgreSQL 12 the scan is skipped when a validated
//! `CHECK (col IS NOT NULL)` already proves it, which gives the safe recipe: add the
//! check NOT VALID, VALIDATE it (SHARE UPDATE EXCLUSIVE), SET NOT NULL, drop the check.
//! In a unit that runs in one transaction the VALIDATE would scan under the lock the ADD
//! took, so the fix adds the checks and leaves the rest to a later transaction. One
//! finding per statement, naming every column.

use pg_query::protobuf::AlterTableType;

use crate::engine::{Cx, Rule, Violation};
use crate::rule_id::RuleId;
use crate::rules::recipe::{Fix, and_list, edited_alter, in_a_later_transaction};
use crate::rules::{alter_existing_table, ident, not_null_check_recipe, rel};

/// The rule.
pub(super) static RULE: Rule = Rule {
    id: RuleId::SettingNotNull,
    check,
};

fn check(cx: &Cx<'_>) -> Vec<Violation> {
    let Some((table, cmds, lock)) = alter_existing_table(cx) else {
        return Vec::new();
    };
    let columns: Vec<String> = cmds
        .iter()
        .filter(|(t, _)| *t == AlterTableType::AtSetNotNull)
        .map(|(_, cmd)| cmd.name.clone())
        .filter(|c| !cx.state.known_not_null(table, c, cx.pg()))
        .collect();
    if columns.is_empty() {
        return Vec::new();
    }
    let (mut adds, mut validates, mut drops) = (Vec::new(), Vec::new(), Vec::new());
    for column in &columns {
        let (add, validate, drop) = not_null_check_recipe(table, column);
        adds.push(add);
        validates.push(validate);
        drops.push(drop);
    }
    // The statement's other subcommands, as written, and its SET NOT NULLs alone.
    let flagged = |cmd: &pg_query::protobuf::AlterTableCmd| {
        cmd.subtype == AlterTableType::AtSetNotNull as i32 && columns.contains(&cmd.name)
    };
    let rest = edited_alter(cx.node, |cmd| !flagged(cmd)).unwrap_or_default();
    let set_not_null = format!(
        "ALTER TABLE {} {};",
        rel(table),
        columns
            .iter()
            .map(|c| format!("ALTER COLUMN {} SET NOT NULL", ident(c)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut v = Violation::new(format!(
        "SET NOT NULL on {} checks every row while holding {}: {} wait for the whole scan",
        and_list(
            &columns
                .iter()
                .map(|c| format!("{table}.{c}"))
                .collect::<Vec<_>>()
        ),
        lock.mode,
        lock.blocks()
    ))
    .lock(lock);
    let fix = if cx.pg().at_least(12) {
        let pg18 = if cx.pg().at_least(18) {
            " (on PostgreSQL 18 also: ADD CONSTRAINT ... NOT NULL col NOT VALID, then VALIDATE)"
        } else {
            ""
        };
        v = v.help(format!(
            "prove it first without blocking: ADD CONSTRAINT ... CHECK (col IS NOT NULL) \
             NOT VALID, VALIDATE CONSTRAINT in its own transaction, then SET NOT NULL \
             (no scan on PostgreSQL 12+) and drop the check{pg18}"
        ));
        let finish = format!(
            "{}\n{set_not_null}\n{}",
            validates.join("\n"),
            drops.join("\n")
        );
        if cx.state.in_transaction {
            Fix::default()
                .now(rest)
                .now(adds.join("\n"))
                .later(in_a_later_transaction(cx), &finish)
        } else {
            Fix::default().now(rest).now(adds.join("\n")).now(finish)
        }
    } else {
        v = v.help(
            "before PostgreSQL 12 SET NOT NULL always scans: keep a validated CHECK \
             (col IS NOT NULL) instead (added NOT VALID, then VALIDATEd), or run it \
             when the table is idle",
        );
        if cx.state.in_transaction {
            Fix::default()
                .now(rest)
                .now(adds.join("\n"))
                .later(in_a_later_transaction(cx), &validates.join("\n"))
        } else {
            Fix::default()
                .now(rest)
                .now(adds.join("\n"))
                .now(validates.join("\n"))
        }
    };
    if let Some(sql) = fix.sql() {
        v = v.fix(sql);
    }
    vec![v]
}

#[cfg(test)]
mod tests {
    use insta::assert_snapshot;

    use crate::rules::test_support::{check, check_migration, check_pg, lines};

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

    #[test]
    fn one_finding_per_statement() {
        let sql = "ALTER TABLE users ALTER COLUMN email SET NOT NULL, ALTER COLUMN \"firstName\" SET NOT NULL;";
        assert_eq!(lines(RULE, sql), [1]);
        assert_snapshot!(check(RULE, sql), @r#"
        error[setting-not-null] 1:1
          lock: ALTER TABLE takes ACCESS EXCLUSIVE on users: blocks reads and writes
          SET NOT NULL on users.email and users.firstName checks every row while holding ACCESS EXCLUSIVE: reads and writes wait for the whole scan
          help: prove it first without blocking: ADD CONSTRAINT ... CHECK (col IS NOT NULL) NOT VALID, VALIDATE CONSTRAINT in its own transaction, then SET NOT NULL (no scan on PostgreSQL 12+) and drop the check
          fix:
            ALTER TABLE users ADD CONSTRAINT users_email_not_null CHECK (email IS NOT NULL) NOT VALID;
            ALTER TABLE users ADD CONSTRAINT "users_firstName_not_null" CHECK ("firstName" IS NOT NULL) NOT VALID;
            ALTER TABLE users VALIDATE CONSTRAINT users_email_not_null;
            ALTER TABLE users VALIDATE CONSTRAINT "users_firstName_not_null";
            ALTER TABLE users ALTER COLUMN email SET NOT NULL, ALTER COLUMN "firstName" SET NOT NULL;
            ALTER TABLE users DROP CONSTRAINT users_email_not_null;
            ALTER TABLE users DROP CONSTRAINT "users_firstName_not_null";
        "#);
    }

    #[test]
    fn in_one_transaction_the_check_is_validated_in_a_later_one() {
        assert_snapshot!(check_migration(RULE, "ALTER TABLE users ALTER COLUMN email SET NOT NULL;", true), @"
        error[setting-not-null] 1:1
          lock: ALTER TABLE takes ACCESS EXCLUSIVE on users: blocks reads and writes
          SET NOT NULL on users.email checks every row while holding ACCESS EXCLUSIVE: reads and writes wait for the whole scan
          help: prove it first without blocking: ADD CONSTRAINT ... CHECK (col IS NOT NULL) NOT VALID, VALIDATE CONSTRAINT in its own transaction, then SET NOT NULL (no scan on PostgreSQL 12+) and drop the check
          fix:
            ALTER TABLE users ADD CONSTRAINT users_email_not_null CHECK (email IS NOT NULL) NOT VALID;
            -- in a later migration (a transaction of its own):
            -- ALTER TABLE users VALIDATE CONSTRAINT users_email_not_null;
            -- ALTER TABLE users ALTER COLUMN email SET NOT NULL;
            -- ALTER TABLE users DROP CONSTRAINT users_email_not_null;
        ");
    }
}
