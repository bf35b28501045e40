//! `detach-partition-non-concurrent`: `ALTER TABLE parent DETACH PARTITION p` without
//! `CONCURRENTLY` on an existing partitioned table takes ACCESS EXCLUSIVE on the parent
//! (and on `p`, and on the DEFAULT partition): queued behind one long query on any
//! partition, it stops every read and write of the whole table. `DETACH PARTITION ...
//! CONCURRENTLY` (PostgreSQL 14+) takes SHARE UPDATE EXCLUSIVE; it must run outside a
//! transaction block and is refused when the table has a DEFAULT partition.

use pg_query::NodeEnum;
use pg_query::protobuf::AlterTableType;

use crate::engine::{Cx, Rule, Violation};
use crate::locks::RelName;
use crate::rule_id::RuleId;
use crate::rules::alter_table_cmds;
use crate::rules::recipe::outside_this_transaction;

/// The rule.
pub(super) static RULE: Rule = Rule {
    id: RuleId::DetachPartitionNonConcurrent,
    check,
};

fn check(cx: &Cx<'_>) -> Vec<Violation> {
    let Some((parent, cmds)) = alter_table_cmds(cx.node) else {
        return Vec::new();
    };
    let Some(part) = cmds
        .iter()
        .find_map(|(t, c)| match (t, c.def.as_deref()?.node.as_ref()?) {
            (AlterTableType::AtDetachPartition, NodeEnum::PartitionCmd(p)) if !p.concurrent => {
                p.name.as_ref().map(RelName::from_range_var)
            }
            _ => None,
        })
    else {
        return Vec::new();
    };
    let Some(lock) = cx.existing_lock_on(&parent) else {
        return Vec::new();
    };
    let default = cx
        .state
        .table(&parent)
        .and_then(|p| p.default_partition.clone());
    let v = Violation::new(format!(
        "DETACH PARTITION {part} takes ACCESS EXCLUSIVE on {parent} (and on {part}{}): queued \
         behind one long query on any partition, it stops every read and write of {parent}",
        match &default {
            Some(d) => format!(" and the DEFAULT partition {d}"),
            None => String::new(),
        }
    ))
    .lock(lock);
    if !cx.pg().at_least(14) {
        return vec![v.help(
            "DETACH PARTITION ... CONCURRENTLY needs PostgreSQL 14; before it, keep \
             lock_timeout short and retry, so the wait gives up before the queue behind it \
             grows",
        )];
    }
    if let Some(d) = default {
        return vec![v.help(format!(
            "DETACH PARTITION ... CONCURRENTLY (SHARE UPDATE EXCLUSIVE) is refused while \
             {parent} has a DEFAULT partition ({d}): keep lock_timeout short and retry"
        ))];
    }
    // `... DETACH PARTITION p` -> `... DETACH PARTITION p CONCURRENTLY`: only when it is the
    // statement's one subcommand (CONCURRENTLY cannot be combined with others).
    let concurrently = (cmds.len() == 1).then(|| format!("{} CONCURRENTLY;", cx.sql().trim_end()));
    let mut help = String::from(
        "DETACH PARTITION ... CONCURRENTLY takes SHARE UPDATE EXCLUSIVE (reads and writes go on) \
         and runs outside a transaction block; if it is interrupted, finish it with DETACH \
         PARTITION ... FINALIZE",
    );
    let fix = match (outside_this_transaction(cx), concurrently) {
        (Some(place), Some(sql)) => {
            help.push_str(&format!(
                "; this file runs in one transaction, where CONCURRENTLY fails (25001): put \
                 `{sql}` in {place}"
            ));
            None
        }
        (None, sql) => sql,
        (Some(_), None) => None,
    };
    let mut v = v.help(help);
    if let Some(sql) = fix {
        v = v.fix(sql);
    }
    vec![v]
}

#[cfg(test)]
mod tests {
    use insta::assert_snapshot;

    use crate::rules::test_support::{check, check_migration, check_pg, check_schema, lines};

    const RULE: &str = "detach-partition-non-concurrent";

    #[test]
    fn detach_without_concurrently() {
        assert_snapshot!(check(RULE, "ALTER TABLE metrics DETACH PARTITION metrics_2024;"), @"
        error[detach-partition-non-concurrent] 1:1
          lock: ALTER TABLE takes ACCESS EXCLUSIVE on metrics: blocks reads and writes
          DETACH PARTITION metrics_2024 takes ACCESS EXCLUSIVE on metrics (and on metrics_2024): queued behind one long query on any partition, it stops every read and write of metrics
          help: DETACH PARTITION ... CONCURRENTLY takes SHARE UPDATE EXCLUSIVE (reads and writes go on) and runs outside a transaction block; if it is interrupted, finish it with DETACH PARTITION ... FINALIZE
          fix:
            ALTER TABLE metrics DETACH PARTITION metrics_2024 CONCURRENTLY;
        ");
    }

    #[test]
    fn in_a_transaction_or_with_a_default_partition_or_before_14() {
        assert_snapshot!(check_migration(RULE, "ALTER TABLE metrics DETACH PARTITION metrics_2024;", true), @"
        error[detach-partition-non-concurrent] 1:1
          lock: ALTER TABLE takes ACCESS EXCLUSIVE on metrics: blocks reads and writes
          DETACH PARTITION metrics_2024 takes ACCESS EXCLUSIVE on metrics (and on metrics_2024): queued behind one long query on any partition, it stops every read and write of metrics
          help: DETACH PARTITION ... CONCURRENTLY takes SHARE UPDATE EXCLUSIVE (reads and writes go on) and runs outside a transaction block; if it is interrupted, finish it with DETACH PARTITION ... FINALIZE; this file runs in one transaction, where CONCURRENTLY fails (25001): put `ALTER TABLE metrics DETACH PARTITION metrics_2024 CONCURRENTLY;` in a migration of its own whose section says `-- migrate:up transaction:false`
        ");
        let schema = "CREATE TABLE metrics (k int) PARTITION BY RANGE (k);\nCREATE TABLE metrics_rest PARTITION OF metrics DEFAULT;";
        assert_snapshot!(check_schema(RULE, schema, "ALTER TABLE metrics DETACH PARTITION metrics_2024;"), @"
        error[detach-partition-non-concurrent] 1:1
          lock: ALTER TABLE takes ACCESS EXCLUSIVE on metrics: blocks reads and writes
          DETACH PARTITION metrics_2024 takes ACCESS EXCLUSIVE on metrics (and on metrics_2024 and the DEFAULT partition metrics_rest): queued behind one long query on any partition, it stops every read and write of metrics
          help: DETACH PARTITION ... CONCURRENTLY (SHARE UPDATE EXCLUSIVE) is refused while metrics has a DEFAULT partition (metrics_rest): keep lock_timeout short and retry
        ");
        assert_snapshot!(check_pg(RULE, "ALTER TABLE metrics DETACH PARTITION metrics_2024;", 13), @"
        error[detach-partition-non-concurrent] 1:1
          lock: ALTER TABLE takes ACCESS EXCLUSIVE on metrics: blocks reads and writes
          DETACH PARTITION metrics_2024 takes ACCESS EXCLUSIVE on metrics (and on metrics_2024): queued behind one long query on any partition, it stops every read and write of metrics
          help: DETACH PARTITION ... CONCURRENTLY needs PostgreSQL 14; before it, keep lock_timeout short and retry, so the wait gives up before the queue behind it grows
        ");
    }

    #[test]
    fn concurrently_finalize_or_a_new_table_are_fine() {
        assert_eq!(
            lines(
                RULE,
                "ALTER TABLE metrics DETACH PARTITION metrics_2024 CONCURRENTLY;\nALTER TABLE metrics DETACH PARTITION metrics_2024 FINALIZE;\nCREATE TABLE m (k int) PARTITION BY RANGE (k);\nALTER TABLE m DETACH PARTITION m1;"
            ),
            Vec::<usize>::new()
        );
    }
}
