//! `require-concurrent-index-creation`: `CREATE INDEX` without CONCURRENTLY on a table
//! that existed before the unit holds SHARE for the whole build: every write waits.

use pg_query::NodeEnum;
use pg_query::protobuf::Token;

use crate::engine::{Cx, Rule, Violation};
use crate::finding::Severity;
use crate::locks::RelName;

/// The rule.
pub static RULE: Rule = Rule {
    name: "require-concurrent-index-creation",
    severity: Severity::Error,
    summary: "CREATE INDEX without CONCURRENTLY on an existing table blocks writes for the build",
    default_on: true,
    check,
};

fn check(cx: &Cx<'_>) -> Vec<Violation> {
    let NodeEnum::IndexStmt(index) = cx.node else {
        return Vec::new();
    };
    let Some(table) = index.relation.as_ref().map(RelName::from_range_var) else {
        return Vec::new();
    };
    let Some(lock) = cx.existing_lock_on(&table).filter(|_| !index.concurrent) else {
        return Vec::new();
    };
    let help = if cx.is_migration() {
        "build it with CREATE INDEX CONCURRENTLY (SHARE UPDATE EXCLUSIVE: reads and writes go \
         on) in a `-- migrate:up transaction:false` section; pgcalm repairs an invalid index \
         left by a failed build"
    } else {
        "build it with CREATE INDEX CONCURRENTLY (SHARE UPDATE EXCLUSIVE: reads and writes go \
         on), outside a transaction block; if it fails, drop the INVALID index it leaves and \
         retry"
    };
    let mut v = Violation::new(format!(
        "CREATE INDEX holds {} on {table} for the whole build: every INSERT, UPDATE and \
         DELETE waits until it finishes",
        lock.mode
    ))
    .help(help)
    .lock(lock);
    // `CREATE [UNIQUE] INDEX [CONCURRENTLY] [IF NOT EXISTS] name ON ...`: CONCURRENTLY
    // goes right after INDEX.
    if let Some(at) = cx.token_offset(Token::Index) {
        let sql = cx.sql();
        let after = at + "INDEX".len();
        v = v.fix(format!("{} CONCURRENTLY{};", &sql[..after], &sql[after..]));
    }
    vec![v]
}

#[cfg(test)]
mod tests {
    use insta::assert_snapshot;

    use crate::rules::test_support::{check, check_migration};

    const RULE: &str = "require-concurrent-index-creation";

    #[test]
    fn the_seed_risky_index() {
        assert_snapshot!(check(RULE, "CREATE INDEX large_email_email_idx ON large_email (email);"), @"
        error[require-concurrent-index-creation] 1:1
          lock: CREATE INDEX takes SHARE on large_email: blocks writes
          CREATE INDEX holds SHARE on large_email for the whole build: every INSERT, UPDATE and DELETE waits until it finishes
          help: build it with CREATE INDEX CONCURRENTLY (SHARE UPDATE EXCLUSIVE: reads and writes go on), outside a transaction block; if it fails, drop the INVALID index it leaves and retry
          fix:
            CREATE INDEX CONCURRENTLY large_email_email_idx ON large_email (email);
        ");
    }

    #[test]
    fn unique_and_if_not_exists_keep_their_words() {
        assert_snapshot!(check(RULE, "create unique index if not exists u on accounts using btree (lower(email));"), @"
        error[require-concurrent-index-creation] 1:1
          lock: CREATE INDEX takes SHARE on accounts: blocks writes
          CREATE INDEX holds SHARE on accounts for the whole build: every INSERT, UPDATE and DELETE waits until it finishes
          help: build it with CREATE INDEX CONCURRENTLY (SHARE UPDATE EXCLUSIVE: reads and writes go on), outside a transaction block; if it fails, drop the INVALID index it leaves and retry
          fix:
            create unique index CONCURRENTLY if not exists u on accounts using btree (lower(email));
        ");
    }

    #[test]
    fn concurrently_is_fine() {
        assert_snapshot!(check(RULE, "CREATE INDEX CONCURRENTLY i ON large_email (email);"), @"ok");
    }

    #[test]
    fn a_table_created_earlier_in_the_unit_is_fine() {
        assert_snapshot!(check_migration(RULE, "CREATE TABLE t (a int);\nCREATE INDEX t_a ON t (a);", true), @"ok");
    }

    #[test]
    fn in_a_migration_the_help_names_transaction_false() {
        assert_snapshot!(check_migration(RULE, "CREATE INDEX i ON users (email);", true), @"
        error[require-concurrent-index-creation] 1:1
          lock: CREATE INDEX takes SHARE on users: blocks writes
          CREATE INDEX holds SHARE on users for the whole build: every INSERT, UPDATE and DELETE waits until it finishes
          help: build it with CREATE INDEX CONCURRENTLY (SHARE UPDATE EXCLUSIVE: reads and writes go on) in a `-- migrate:up transaction:false` section; pgcalm repairs an invalid index left by a failed build
          fix:
            CREATE INDEX CONCURRENTLY i ON users (email);
        ");
    }
}
