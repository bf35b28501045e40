//! `require-concurrent-index-creation`: `CREATE INDEX` without CONCURRENTLY on a table
//! that existed before the unit holds SHARE for the whole build: every write waits.
//!
//! The fix adds CONCURRENTLY where it can run: not in a unit that runs in one transaction
//! (the help says where the statement goes instead), and not on a partitioned table,
//! which PostgreSQL refuses (the help gives the per-partition way; when lint has not seen
//! the table's definition, the help says it cannot tell). `CREATE INDEX ... ON ONLY` a
//! table not known to be a plain one is that way's first step (no build): no finding.

use pg_query::NodeEnum;
use pg_query::protobuf::Token;

use crate::engine::{Cx, Rule, Violation};
use crate::locks::RelName;
use crate::rule_id::RuleId;
use crate::rules::concurrent_index_if_not_exists::concurrent_build;
use crate::rules::recipe::{and_list, outside_this_transaction, per_partition_index};

/// The rule.
pub(super) static RULE: Rule = Rule {
    id: RuleId::RequireConcurrentIndexCreation,
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
    let partitioned = cx.state.partitioned(&table);
    let only = index.relation.as_ref().is_some_and(|r| !r.inh);
    if only && partitioned != Some(false) {
        // `ON ONLY parent`: the first step of the per-partition way, no build.
        return Vec::new();
    }
    // On a partitioned table the build holds the lock on every partition too.
    let partitions = cx
        .state
        .table(&table)
        .filter(|t| partitioned == Some(true) && !t.partitions.is_empty())
        .map(|t| {
            format!(
                " and on each of its partitions ({})",
                and_list(
                    &t.partitions
                        .iter()
                        .map(|p| p.to_string())
                        .collect::<Vec<_>>()
                )
            )
        })
        .unwrap_or_default();
    let v = Violation::new(format!(
        "CREATE INDEX holds {} on {table}{partitions} for the whole build: every INSERT, \
         UPDATE and DELETE waits until it finishes",
        lock.mode
    ))
    .lock(lock);
    let per_partition = format!(
        "create the index ON ONLY {table} (no build; it stays invalid), then CREATE INDEX \
         CONCURRENTLY on each partition and ALTER INDEX ... ATTACH PARTITION each; the \
         parent's index becomes valid once every partition's is attached"
    );
    if partitioned == Some(true) {
        let mut help = format!(
            "{table} is partitioned, and PostgreSQL refuses CREATE INDEX CONCURRENTLY on a \
             partitioned table: {per_partition}"
        );
        let mut fix = None;
        match outside_this_transaction(cx) {
            None => fix = per_partition_index(cx, index),
            Some(place) => help.push_str(&format!(
                "; CONCURRENTLY fails in this file's transaction (25001): put those steps in \
                 {place}"
            )),
        }
        let mut v = v.help(help);
        if let Some(sql) = fix {
            v = v.fix(sql);
        }
        return vec![v];
    }
    // `CREATE [UNIQUE] INDEX [CONCURRENTLY] [IF NOT EXISTS] name ON ...`: CONCURRENTLY
    // goes right after INDEX.
    let concurrently = cx.token_offset(Token::Index).map(|at| {
        let sql = cx.sql();
        let after = at + "INDEX".len();
        concurrent_build(
            cx,
            index,
            format!("{} CONCURRENTLY{};", &sql[..after], &sql[after..]),
        )
    });
    let mut help = match (outside_this_transaction(cx), &concurrently) {
        (Some(place), Some(sql)) => format!(
            "build it with CREATE INDEX CONCURRENTLY (SHARE UPDATE EXCLUSIVE: reads and writes \
             go on); this file runs in one transaction, where CONCURRENTLY fails (25001): put \
             `{sql}` in {place}"
        ),
        _ if cx.is_migration() => "build it with CREATE INDEX CONCURRENTLY (SHARE UPDATE \
             EXCLUSIVE: reads and writes go on) in a `-- migrate:up transaction:false` section; \
             pgcalm repairs an invalid index left by a failed build"
            .to_string(),
        _ => "build it with CREATE INDEX CONCURRENTLY (SHARE UPDATE EXCLUSIVE: reads and writes \
             go on), outside a transaction block; if it fails, drop the INVALID index it leaves \
             and retry"
            .to_string(),
    };
    if partitioned.is_none() {
        help.push_str(&format!(
            ". If {table} is partitioned (lint cannot tell without --schema), CONCURRENTLY is \
             refused there: build the index ON ONLY {table}, then CONCURRENTLY on each \
             partition, and ATTACH each"
        ));
    }
    let mut v = v.help(help);
    if outside_this_transaction(cx).is_none()
        && let Some(sql) = concurrently
    {
        v = v.fix(sql);
    }
    vec![v]
}

#[cfg(test)]
mod tests {
    use insta::assert_snapshot;

    use crate::rules::test_support::{check, check_migration, check_schema, lines};

    const RULE: &str = "require-concurrent-index-creation";

    #[test]
    fn the_seed_risky_index() {
        assert_snapshot!(check(RULE, "CREATE INDEX large_email_email_idx ON large_email (email);"), @"
        error[require-concurrent-index-creation] 1:1
          lock: CREATE INDEX takes SHARE on large_email: blocks writes
          CREATE INDEX holds SHARE on large_email for the whole build: every INSERT, UPDATE and DELETE waits until it finishes
          help: build it with CREATE INDEX CONCURRENTLY (SHARE UPDATE EXCLUSIVE: reads and writes go on), outside a transaction block; if it fails, drop the INVALID index it leaves and retry. If large_email is partitioned (lint cannot tell without --schema), CONCURRENTLY is refused there: build the index ON ONLY large_email, then CONCURRENTLY on each partition, and ATTACH each
          fix:
            CREATE INDEX CONCURRENTLY large_email_email_idx ON large_email (email);
        ");
    }

    #[test]
    fn unique_keeps_its_word_and_if_not_exists_drops_a_leftover_first() {
        assert_snapshot!(check(RULE, "create unique index if not exists u on accounts using btree (lower(email));"), @"
        error[require-concurrent-index-creation] 1:1
          lock: CREATE INDEX takes SHARE on accounts: blocks writes
          CREATE INDEX holds SHARE on accounts for the whole build: every INSERT, UPDATE and DELETE waits until it finishes
          help: build it with CREATE INDEX CONCURRENTLY (SHARE UPDATE EXCLUSIVE: reads and writes go on), outside a transaction block; if it fails, drop the INVALID index it leaves and retry. If accounts is partitioned (lint cannot tell without --schema), CONCURRENTLY is refused there: build the index ON ONLY accounts, then CONCURRENTLY on each partition, and ATTACH each
          fix:
            DROP INDEX CONCURRENTLY IF EXISTS u;
            create unique index CONCURRENTLY u on accounts using btree (lower(email));
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
          help: build it with CREATE INDEX CONCURRENTLY (SHARE UPDATE EXCLUSIVE: reads and writes go on); this file runs in one transaction, where CONCURRENTLY fails (25001): put `CREATE INDEX CONCURRENTLY i ON users (email);` in a migration of its own whose section says `-- migrate:up transaction:false`. If users is partitioned (lint cannot tell without --schema), CONCURRENTLY is refused there: build the index ON ONLY users, then CONCURRENTLY on each partition, and ATTACH each
        ");
    }

    #[test]
    fn in_a_transaction_the_fix_goes_to_a_migration_of_its_own() {
        assert_snapshot!(check(RULE, "BEGIN;\nCREATE INDEX i ON users (email);\nCOMMIT;"), @"
        error[require-concurrent-index-creation] 2:1
          lock: CREATE INDEX takes SHARE on users: blocks writes
          CREATE INDEX holds SHARE on users for the whole build: every INSERT, UPDATE and DELETE waits until it finishes
          help: build it with CREATE INDEX CONCURRENTLY (SHARE UPDATE EXCLUSIVE: reads and writes go on); this file runs in one transaction, where CONCURRENTLY fails (25001): put `CREATE INDEX CONCURRENTLY i ON users (email);` in a statement of its own after COMMIT, outside the transaction block. If users is partitioned (lint cannot tell without --schema), CONCURRENTLY is refused there: build the index ON ONLY users, then CONCURRENTLY on each partition, and ATTACH each
        ");
    }

    #[test]
    fn no_concurrently_fix_for_a_partitioned_table() {
        let schema = "CREATE TABLE metrics (at timestamptz, v int) PARTITION BY RANGE (at);\nCREATE TABLE plain (a int);";
        assert_snapshot!(check_schema(RULE, schema, "CREATE INDEX metrics_v_idx ON metrics (v);"), @"
        error[require-concurrent-index-creation] 1:1
          lock: CREATE INDEX takes SHARE on metrics: blocks writes
          CREATE INDEX holds SHARE on metrics for the whole build: every INSERT, UPDATE and DELETE waits until it finishes
          help: metrics is partitioned, and PostgreSQL refuses CREATE INDEX CONCURRENTLY on a partitioned table: create the index ON ONLY metrics (no build; it stays invalid), then CREATE INDEX CONCURRENTLY on each partition and ALTER INDEX ... ATTACH PARTITION each; the parent's index becomes valid once every partition's is attached
        ");
        // A known plain table: the fix, no doubt in the help.
        assert_snapshot!(check_schema(RULE, schema, "CREATE INDEX plain_a_idx ON plain (a);"), @"
        error[require-concurrent-index-creation] 1:1
          lock: CREATE INDEX takes SHARE on plain: blocks writes
          CREATE INDEX holds SHARE on plain for the whole build: every INSERT, UPDATE and DELETE waits until it finishes
          help: build it with CREATE INDEX CONCURRENTLY (SHARE UPDATE EXCLUSIVE: reads and writes go on), outside a transaction block; if it fails, drop the INVALID index it leaves and retry
          fix:
            CREATE INDEX CONCURRENTLY plain_a_idx ON plain (a);
        ");
        // PARTITION OF earlier in the unit tells too.
        let sql = "CREATE TABLE IF NOT EXISTS m2 PARTITION OF metrics FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');\nCREATE INDEX m_v ON metrics (v);";
        assert!(!check(RULE, sql).contains("CONCURRENTLY m_v"));
        // ON ONLY the parent is the per-partition way's first step: no build.
        assert_eq!(
            lines(RULE, "CREATE INDEX m_v ON ONLY metrics (v);"),
            Vec::<usize>::new()
        );
        assert_snapshot!(check_schema(RULE, schema, "CREATE INDEX plain_a_idx ON ONLY plain (a);"), @"
        error[require-concurrent-index-creation] 1:1
          lock: CREATE INDEX takes SHARE on plain: blocks writes
          CREATE INDEX holds SHARE on plain for the whole build: every INSERT, UPDATE and DELETE waits until it finishes
          help: build it with CREATE INDEX CONCURRENTLY (SHARE UPDATE EXCLUSIVE: reads and writes go on), outside a transaction block; if it fails, drop the INVALID index it leaves and retry
          fix:
            CREATE INDEX CONCURRENTLY plain_a_idx ON ONLY plain (a);
        ");
    }

    #[test]
    fn with_every_partition_known_the_fix_is_the_per_partition_way() {
        let schema = "CREATE TABLE metrics (at timestamptz, v int) PARTITION BY RANGE (at);\nCREATE TABLE metrics_2026 PARTITION OF metrics FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');\nCREATE TABLE metrics_rest PARTITION OF metrics DEFAULT;";
        assert_snapshot!(check_schema(RULE, schema, "SET lock_timeout = '2s';\nCREATE INDEX metrics_v_idx ON metrics (v);"), @"
        error[require-concurrent-index-creation] 2:1
          lock: CREATE INDEX takes SHARE on metrics: blocks writes
          CREATE INDEX holds SHARE on metrics and on each of its partitions (metrics_2026 and metrics_rest) for the whole build: every INSERT, UPDATE and DELETE waits until it finishes
          help: metrics is partitioned, and PostgreSQL refuses CREATE INDEX CONCURRENTLY on a partitioned table: create the index ON ONLY metrics (no build; it stays invalid), then CREATE INDEX CONCURRENTLY on each partition and ALTER INDEX ... ATTACH PARTITION each; the parent's index becomes valid once every partition's is attached
          fix:
            CREATE INDEX metrics_v_idx ON ONLY metrics USING btree (v);
            CREATE INDEX CONCURRENTLY metrics_2026_v_idx ON metrics_2026 USING btree (v);
            ALTER INDEX metrics_v_idx ATTACH PARTITION metrics_2026_v_idx;
            CREATE INDEX CONCURRENTLY metrics_rest_v_idx ON metrics_rest USING btree (v);
            ALTER INDEX metrics_v_idx ATTACH PARTITION metrics_rest_v_idx;
        ");
        // In a transaction the steps go elsewhere (CONCURRENTLY fails there).
        assert!(
            !check_schema(
                RULE,
                schema,
                "BEGIN;\nCREATE INDEX metrics_v_idx ON metrics (v);\nCOMMIT;"
            )
            .contains("fix:")
        );
    }

    #[test]
    fn create_table_if_not_exists_may_be_an_existing_table() {
        assert_eq!(
            lines(
                RULE,
                "CREATE TABLE IF NOT EXISTS t (a int);\nCREATE INDEX i ON t (a);"
            ),
            [2]
        );
        // Unless the unit dropped it first.
        assert_eq!(
            lines(
                RULE,
                "DROP TABLE IF EXISTS t;\nCREATE TABLE IF NOT EXISTS t (a int);\nCREATE INDEX i ON t (a);"
            ),
            Vec::<usize>::new()
        );
    }

    #[test]
    fn a_materialized_view_the_unit_creates_is_new_even_if_not_exists() {
        // MarquezProject/marquez V71: the migration creates its views, then indexes them.
        let sql = "CREATE MATERIALIZED VIEW IF NOT EXISTS daily AS SELECT date_trunc('day', placed_at) AS d, count(*) AS n FROM orders GROUP BY 1;\nCREATE INDEX IF NOT EXISTS daily_d_idx ON daily (d);\nALTER MATERIALIZED VIEW daily OWNER TO app;";
        for rule in [RULE, "missing-lock-timeout", "accumulated-locks"] {
            assert_eq!(lines(rule, sql), Vec::<usize>::new(), "{rule}");
            let in_tx = format!("BEGIN;\n{sql}\nCOMMIT;");
            assert_eq!(
                lines(rule, &in_tx),
                Vec::<usize>::new(),
                "{rule} in a transaction"
            );
        }
        // A table created IF NOT EXISTS may be an existing one (with rows and users).
        assert_eq!(
            lines(
                RULE,
                "CREATE TABLE IF NOT EXISTS daily (d date);\nCREATE INDEX daily_d_idx ON daily (d);"
            ),
            [2]
        );
    }

    #[test]
    fn a_new_table_stays_new_once_it_has_rows() {
        // No code deployed before this migration knows a table it creates: filled or not,
        // committed or not, nobody waits for its locks (its rows matter elsewhere:
        // adding-not-null-column-without-default).
        for sql in [
            "CREATE TABLE t (a int);\nINSERT INTO t SELECT id FROM users;\nCREATE INDEX i ON t (a);",
            "CREATE TABLE t (a int);\nCOPY t FROM '/tmp/t.csv';\nCREATE INDEX i ON t (a);",
            "CREATE TABLE t AS SELECT id AS a FROM users;\nCREATE INDEX i ON t (a);",
            "BEGIN;\nCREATE TABLE t (a int);\nINSERT INTO t SELECT id FROM users;\nCREATE INDEX i ON t (a);\nCOMMIT;",
        ] {
            assert_eq!(lines(RULE, sql), Vec::<usize>::new(), "{sql}");
        }
    }
}
