//! `adding-unique-constraint`: `ADD UNIQUE` (or `ADD COLUMN ... UNIQUE`) on an existing
//! table builds its index under ACCESS EXCLUSIVE: no reads or writes for the whole build.

use crate::engine::{Cx, Rule, Violation};
use crate::rule_id::RuleId;
use crate::rules::unique_like::{KeyKind, check_key};

/// The rule.
pub(super) static RULE: Rule = Rule {
    id: RuleId::AddingUniqueConstraint,
    check,
};

fn check(cx: &Cx<'_>) -> Vec<Violation> {
    check_key(cx, KeyKind::Unique)
}

#[cfg(test)]
mod tests {
    use insta::assert_snapshot;

    use crate::rules::test_support::{check, check_migration, check_schema, lines};

    const RULE: &str = "adding-unique-constraint";

    #[test]
    fn named_constraint() {
        assert_snapshot!(check(RULE, "ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE (email);"), @"
        error[adding-unique-constraint] 1:1
          lock: ALTER TABLE takes ACCESS EXCLUSIVE on users: blocks reads and writes
          ADD UNIQUE builds a unique index on users while holding ACCESS EXCLUSIVE: reads and writes wait for the whole build
          help: build the index first with CREATE UNIQUE INDEX CONCURRENTLY (reads and writes go on; outside a transaction), then attach it with ADD CONSTRAINT ... UNIQUE USING INDEX, which only takes a short lock.
          fix:
            CREATE UNIQUE INDEX CONCURRENTLY users_email_key ON users (email);
            ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE USING INDEX users_email_key;
        ");
    }

    #[test]
    fn unnamed_constraint_gets_postgres_name() {
        assert_snapshot!(check(RULE, "ALTER TABLE users ADD UNIQUE NULLS NOT DISTINCT (org_id, email) DEFERRABLE;"), @"
        error[adding-unique-constraint] 1:1
          lock: ALTER TABLE takes ACCESS EXCLUSIVE on users: blocks reads and writes
          ADD UNIQUE builds a unique index on users while holding ACCESS EXCLUSIVE: reads and writes wait for the whole build
          help: build the index first with CREATE UNIQUE INDEX CONCURRENTLY (reads and writes go on; outside a transaction), then attach it with ADD CONSTRAINT ... UNIQUE USING INDEX, which only takes a short lock.
          fix:
            CREATE UNIQUE INDEX CONCURRENTLY users_org_id_email_key ON users (org_id, email) NULLS NOT DISTINCT;
            ALTER TABLE users ADD CONSTRAINT users_org_id_email_key UNIQUE USING INDEX users_org_id_email_key DEFERRABLE;
        ");
    }

    #[test]
    fn new_column_unique() {
        assert_snapshot!(check(RULE, "ALTER TABLE users ADD COLUMN handle text UNIQUE;"), @"
        error[adding-unique-constraint] 1:1
          lock: ALTER TABLE takes ACCESS EXCLUSIVE on users: blocks reads and writes
          ADD UNIQUE builds a unique index on users while holding ACCESS EXCLUSIVE: reads and writes wait for the whole build
          help: add the column without UNIQUE first (nullable, or with a constant default), then CREATE UNIQUE INDEX CONCURRENTLY and ADD CONSTRAINT ... UNIQUE USING INDEX. (column handle)
          fix:
            ALTER TABLE users ADD COLUMN handle text;
            CREATE UNIQUE INDEX CONCURRENTLY users_handle_key ON users (handle);
            ALTER TABLE users ADD CONSTRAINT users_handle_key UNIQUE USING INDEX users_handle_key;
        ");
    }

    #[test]
    fn using_index_and_new_tables_are_fine() {
        assert_snapshot!(check(RULE, "ALTER TABLE users ADD CONSTRAINT k UNIQUE USING INDEX k_idx;\nCREATE TABLE t (a int);\nALTER TABLE t ADD UNIQUE (a);"), @"ok");
    }

    #[test]
    fn the_other_clauses_and_references_are_kept() {
        assert_snapshot!(check(RULE, "ALTER TABLE users ADD COLUMN org_id bigint REFERENCES orgs (id) ON DELETE CASCADE, ADD CONSTRAINT \"User_orgId_email_key\" UNIQUE (org_id, email);"), @r#"
        error[adding-unique-constraint] 1:1
          lock: ALTER TABLE takes ACCESS EXCLUSIVE on users: blocks reads and writes
          ADD UNIQUE builds a unique index on users while holding ACCESS EXCLUSIVE: reads and writes wait for the whole build
          help: build the index first with CREATE UNIQUE INDEX CONCURRENTLY (reads and writes go on; outside a transaction), then attach it with ADD CONSTRAINT ... UNIQUE USING INDEX, which only takes a short lock.
          fix:
            ALTER TABLE users ADD COLUMN org_id bigint REFERENCES orgs (id) ON DELETE CASCADE;
            CREATE UNIQUE INDEX CONCURRENTLY "User_orgId_email_key" ON users (org_id, email);
            ALTER TABLE users ADD CONSTRAINT "User_orgId_email_key" UNIQUE USING INDEX "User_orgId_email_key";
        "#);
    }

    #[test]
    fn a_new_unique_column_gets_the_recipe_too() {
        assert_snapshot!(check(RULE, "ALTER TABLE users ADD COLUMN handle text UNIQUE, ADD COLUMN bio text;"), @"
        error[adding-unique-constraint] 1:1
          lock: ALTER TABLE takes ACCESS EXCLUSIVE on users: blocks reads and writes
          ADD UNIQUE builds a unique index on users while holding ACCESS EXCLUSIVE: reads and writes wait for the whole build
          help: add the column without UNIQUE first (nullable, or with a constant default), then CREATE UNIQUE INDEX CONCURRENTLY and ADD CONSTRAINT ... UNIQUE USING INDEX. (column handle)
          fix:
            ALTER TABLE users ADD COLUMN handle text, ADD COLUMN bio text;
            CREATE UNIQUE INDEX CONCURRENTLY users_handle_key ON users (handle);
            ALTER TABLE users ADD CONSTRAINT users_handle_key UNIQUE USING INDEX users_handle_key;
        ");
    }

    #[test]
    fn in_a_transaction_the_index_goes_to_a_migration_of_its_own() {
        assert_snapshot!(check_migration(RULE, "ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE (email);", true), @"
        error[adding-unique-constraint] 1:1
          lock: ALTER TABLE takes ACCESS EXCLUSIVE on users: blocks reads and writes
          ADD UNIQUE builds a unique index on users while holding ACCESS EXCLUSIVE: reads and writes wait for the whole build
          help: build the index first with CREATE UNIQUE INDEX CONCURRENTLY (reads and writes go on; outside a transaction), then attach it with ADD CONSTRAINT ... UNIQUE USING INDEX, which only takes a short lock. This file runs in one transaction, where CONCURRENTLY fails (25001): build the index in a migration of its own whose section says `-- migrate:up transaction:false`: `CREATE UNIQUE INDEX CONCURRENTLY users_email_key ON users (email);`; then, here or later: `ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE USING INDEX users_email_key;`
        ");
    }

    #[test]
    fn a_partitioned_table_gets_no_concurrent_fix() {
        let schema = "CREATE TABLE metrics (at timestamptz, v int) PARTITION BY RANGE (at);";
        assert!(
            !check_schema(RULE, schema, "ALTER TABLE metrics ADD UNIQUE (at, v);").contains("fix:")
        );
    }

    #[test]
    fn one_finding_per_statement() {
        assert_eq!(
            lines(RULE, "ALTER TABLE users ADD UNIQUE (a), ADD UNIQUE (b);"),
            [1]
        );
    }
}
