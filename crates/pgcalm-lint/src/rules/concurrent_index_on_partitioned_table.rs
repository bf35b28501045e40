//! `concurrent-index-on-partitioned-table`: `CREATE INDEX CONCURRENTLY` on a table known to
//! be partitioned (from the unit or `--schema`). PostgreSQL refuses it ("cannot create
//! index on partitioned table concurrently", 0A000): the migration fails there. The way
//! that blocks no writes: the index `ON ONLY` the parent (no build; invalid until every
//! partition has one), then `CREATE INDEX CONCURRENTLY` on each partition and `ALTER
//! INDEX ... ATTACH PARTITION` each.

use pg_query::NodeEnum;

use crate::engine::{Cx, Rule, Violation};
use crate::locks::RelName;
use crate::rule_id::RuleId;
use crate::rules::recipe::{outside_this_transaction, per_partition_index};

/// The rule.
pub(super) static RULE: Rule = Rule {
    id: RuleId::ConcurrentIndexOnPartitionedTable,
    check,
};

fn check(cx: &Cx<'_>) -> Vec<Violation> {
    let NodeEnum::IndexStmt(i) = cx.node else {
        return Vec::new();
    };
    let Some(table) = i.relation.as_ref().map(RelName::from_range_var) else {
        return Vec::new();
    };
    if !cx.locks.refused_if_partitioned || cx.state.partitioned(&table) != Some(true) {
        return Vec::new();
    }
    let help = format!(
        "create the index ON ONLY {table} (no build; it stays invalid), then CREATE INDEX \
         CONCURRENTLY on each partition and ALTER INDEX ... ATTACH PARTITION each; the \
         parent's index becomes valid once every partition's is attached"
    );
    let fix = per_partition_index(cx, i).filter(|_| outside_this_transaction(cx).is_none());
    let mut v = Violation::new(format!(
        "{table} is partitioned: PostgreSQL refuses CREATE INDEX CONCURRENTLY on a \
         partitioned table (0A000), so the migration fails here"
    ))
    .help(help);
    if let Some(lock) = cx.existing_lock_on(&table) {
        v = v.lock(lock);
    }
    if let Some(sql) = fix {
        v = v.fix(sql);
    }
    vec![v]
}

#[cfg(test)]
mod tests {
    use insta::assert_snapshot;

    use crate::rules::test_support::{check, check_schema, lines};

    const RULE: &str = "concurrent-index-on-partitioned-table";

    #[test]
    fn concurrently_on_a_known_partitioned_table() {
        let schema = "CREATE TABLE metrics (at timestamptz, v int) PARTITION BY RANGE (at);\nCREATE TABLE metrics_2026 PARTITION OF metrics FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');";
        assert_snapshot!(check_schema(RULE, schema, "CREATE INDEX CONCURRENTLY metrics_v_idx ON metrics (v);"), @"
        error[concurrent-index-on-partitioned-table] 1:1
          lock: CREATE INDEX CONCURRENTLY takes SHARE UPDATE EXCLUSIVE on metrics: blocks no reads or writes
          metrics is partitioned: PostgreSQL refuses CREATE INDEX CONCURRENTLY on a partitioned table (0A000), so the migration fails here
          help: create the index ON ONLY metrics (no build; it stays invalid), then CREATE INDEX CONCURRENTLY on each partition and ALTER INDEX ... ATTACH PARTITION each; the parent's index becomes valid once every partition's is attached
          fix:
            SET lock_timeout = '2s';
            CREATE INDEX metrics_v_idx ON ONLY metrics USING btree (v);
            CREATE INDEX CONCURRENTLY metrics_2026_v_idx ON metrics_2026 USING btree (v);
            ALTER INDEX metrics_v_idx ATTACH PARTITION metrics_2026_v_idx;
        ");
    }

    #[test]
    fn partitioned_by_the_unit() {
        assert_eq!(
            lines(
                RULE,
                "CREATE TABLE m (k int) PARTITION BY RANGE (k);\nCREATE INDEX CONCURRENTLY m_k ON m (k);"
            ),
            [2]
        );
    }

    #[test]
    fn a_table_not_known_partitioned_is_not_flagged() {
        assert_snapshot!(check(RULE, "CREATE INDEX CONCURRENTLY i ON users (email);"), @"ok");
    }
}
