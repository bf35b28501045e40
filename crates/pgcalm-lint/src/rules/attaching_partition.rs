//! `attaching-partition`: `ALTER TABLE parent ATTACH PARTITION t` of a table that existed
//! before the unit reads all of `t` under ACCESS EXCLUSIVE to check that its rows fit the
//! partition bound, unless a validated CHECK on `t` implies the bound. When the parent
//! has a DEFAULT partition, attaching (or `CREATE TABLE ... PARTITION OF`) also reads all
//! of that one under ACCESS EXCLUSIVE: none of its rows may belong to the new partition.
//! Before PostgreSQL 12 the parent itself is locked ACCESS EXCLUSIVE all the while.
//!
//! The DEFAULT partition is known when the unit (or `--schema`) shows it; a validated
//! CHECK on the table (added in the unit or in the schema) is taken to be the one that
//! implies the bound.

use pg_query::NodeEnum;
use pg_query::protobuf::{AlterTableType, ObjectType};

use crate::engine::{Cx, Rule, Violation};
use crate::locks::RelName;
use crate::rule_id::RuleId;
use crate::rules::alter_table_cmds;

/// The rule.
pub(super) static RULE: Rule = Rule {
    id: RuleId::AttachingPartition,
    check,
};

/// The parent, and the table being attached (`None` for `CREATE TABLE ... PARTITION OF`,
/// which is new).
fn attaching(node: &NodeEnum) -> Option<(RelName, Option<RelName>)> {
    match node {
        NodeEnum::AlterTableStmt(a) if a.objtype != ObjectType::ObjectIndex as i32 => {
            let (parent, cmds) = alter_table_cmds(node)?;
            let part =
                cmds.iter()
                    .find_map(|(t, c)| match (t, c.def.as_deref()?.node.as_ref()?) {
                        (AlterTableType::AtAttachPartition, NodeEnum::PartitionCmd(p)) => {
                            p.name.as_ref().map(RelName::from_range_var)
                        }
                        _ => None,
                    })?;
            Some((parent, Some(part)))
        }
        NodeEnum::CreateStmt(c) if c.partbound.is_some() => {
            let parent = c.inh_relations.iter().find_map(|n| match &n.node {
                Some(NodeEnum::RangeVar(r)) => Some(RelName::from_range_var(r)),
                _ => None,
            })?;
            Some((parent, None))
        }
        _ => None,
    }
}

fn check(cx: &Cx<'_>) -> Vec<Violation> {
    let Some((parent, attached)) = attaching(cx.node) else {
        return Vec::new();
    };
    if cx.is_new_table(&parent) {
        return Vec::new();
    }
    let validated_check_on = |t: &RelName| {
        cx.state
            .checks
            .values()
            .any(|c| c.validated && c.table.same_as(t))
    };
    let mut scans = Vec::new();
    let mut lock = cx.existing_lock_on(&parent);
    let attached = attached.filter(|t| !cx.is_new_table(t) && !validated_check_on(t));
    if let Some(t) = &attached {
        scans.push(format!(
            "all of {t} is read under ACCESS EXCLUSIVE to check that its rows fit the \
             partition bound: reads and writes of {t} wait"
        ));
        lock = cx.existing_lock_on(t).or(lock);
    }
    let default = cx
        .locks
        .default_partition
        .as_ref()
        .and_then(|_| cx.state.table(&parent))
        .and_then(|p| p.default_partition.clone())
        .filter(|d| !cx.is_new_table(d) && !validated_check_on(d));
    if let Some(d) = &default {
        scans.push(format!(
            "the DEFAULT partition {d} is read in full under ACCESS EXCLUSIVE (none of its \
             rows may belong to the new partition): reads and writes of {d} wait"
        ));
    }
    if scans.is_empty() {
        return Vec::new();
    }
    if attached.is_some() && !cx.pg().at_least(12) {
        scans.push(format!(
            "before PostgreSQL 12 {parent} itself is locked ACCESS EXCLUSIVE all the while: \
             every read and write of it waits"
        ));
    }
    let mut help = Vec::new();
    if let Some(t) = &attached {
        help.push(format!(
            "first add to {t} a CHECK constraint that matches the partition bound NOT VALID, \
             then VALIDATE it in its own transaction (SHARE UPDATE EXCLUSIVE: reads and writes \
             go on); ATTACH then skips its scan, and the CHECK may be dropped after"
        ));
    }
    if let Some(d) = &default {
        help.push(format!(
            "add to {d} a CHECK that excludes the new partition's range the same way (NOT \
             VALID, then VALIDATE), which spares its scan; or move its rows of that range out \
             in batches first"
        ));
    }
    let what = match &attached {
        Some(t) => format!("ATTACH PARTITION {t} to {parent}"),
        None => format!("{} ... PARTITION OF {parent}", cx.locks.label),
    };
    let mut v = Violation::new(format!("{what}: {}", scans.join("; "))).help(help.join("; "));
    if let Some(lock) = lock {
        v = v.lock(lock);
    }
    vec![v]
}

#[cfg(test)]
mod tests {
    use insta::assert_snapshot;

    use crate::rules::test_support::{check, check_pg, check_schema, lines};

    const RULE: &str = "attaching-partition";

    const SCHEMA: &str = "CREATE TABLE m (k int, v int) PARTITION BY RANGE (k);\n\
        CREATE TABLE m1 PARTITION OF m FOR VALUES FROM (0) TO (10);\n\
        CREATE TABLE m_rest PARTITION OF m DEFAULT;\n\
        CREATE TABLE m2 (k int, v int);";

    #[test]
    fn attaching_an_existing_table_scans_it() {
        assert_snapshot!(check(RULE, "ALTER TABLE m ATTACH PARTITION m2 FOR VALUES FROM (10) TO (20);"), @"
        error[attaching-partition] 1:1
          lock: ALTER TABLE takes ACCESS EXCLUSIVE on m2: blocks reads and writes
          ATTACH PARTITION m2 to m: all of m2 is read under ACCESS EXCLUSIVE to check that its rows fit the partition bound: reads and writes of m2 wait
          help: first add to m2 a CHECK constraint that matches the partition bound NOT VALID, then VALIDATE it in its own transaction (SHARE UPDATE EXCLUSIVE: reads and writes go on); ATTACH then skips its scan, and the CHECK may be dropped after
        ");
    }

    #[test]
    fn a_known_default_partition_is_scanned_too() {
        assert_snapshot!(check_schema(RULE, SCHEMA, "ALTER TABLE m ATTACH PARTITION m2 FOR VALUES FROM (10) TO (20);"), @"
        error[attaching-partition] 1:1
          lock: ALTER TABLE takes ACCESS EXCLUSIVE on m2: blocks reads and writes
          ATTACH PARTITION m2 to m: all of m2 is read under ACCESS EXCLUSIVE to check that its rows fit the partition bound: reads and writes of m2 wait; the DEFAULT partition m_rest is read in full under ACCESS EXCLUSIVE (none of its rows may belong to the new partition): reads and writes of m_rest wait
          help: first add to m2 a CHECK constraint that matches the partition bound NOT VALID, then VALIDATE it in its own transaction (SHARE UPDATE EXCLUSIVE: reads and writes go on); ATTACH then skips its scan, and the CHECK may be dropped after; add to m_rest a CHECK that excludes the new partition's range the same way (NOT VALID, then VALIDATE), which spares its scan; or move its rows of that range out in batches first
        ");
        // A new partition of its own: only the DEFAULT partition is read.
        assert_snapshot!(check_schema(RULE, SCHEMA, "CREATE TABLE m3 PARTITION OF m FOR VALUES FROM (20) TO (30);"), @"
        error[attaching-partition] 1:1
          lock: CREATE TABLE takes ACCESS EXCLUSIVE on m: blocks reads and writes
          CREATE TABLE ... PARTITION OF m: the DEFAULT partition m_rest is read in full under ACCESS EXCLUSIVE (none of its rows may belong to the new partition): reads and writes of m_rest wait
          help: add to m_rest a CHECK that excludes the new partition's range the same way (NOT VALID, then VALIDATE), which spares its scan; or move its rows of that range out in batches first
        ");
    }

    #[test]
    fn before_pg12_the_parent_is_locked_too() {
        assert_snapshot!(check_pg(RULE, "ALTER TABLE m ATTACH PARTITION m2 FOR VALUES FROM (10) TO (20);", 11), @"
        error[attaching-partition] 1:1
          lock: ALTER TABLE takes ACCESS EXCLUSIVE on m2: blocks reads and writes
          ATTACH PARTITION m2 to m: all of m2 is read under ACCESS EXCLUSIVE to check that its rows fit the partition bound: reads and writes of m2 wait; before PostgreSQL 12 m itself is locked ACCESS EXCLUSIVE all the while: every read and write of it waits
          help: first add to m2 a CHECK constraint that matches the partition bound NOT VALID, then VALIDATE it in its own transaction (SHARE UPDATE EXCLUSIVE: reads and writes go on); ATTACH then skips its scan, and the CHECK may be dropped after
        ");
    }

    #[test]
    fn a_new_table_a_validated_check_or_no_default_partition_is_fine() {
        for sql in [
            // Created in the unit: empty.
            "CREATE TABLE m4 (k int, v int);\nALTER TABLE m ATTACH PARTITION m4 FOR VALUES FROM (40) TO (50);",
            // The recipe: a validated CHECK implies the bound.
            "ALTER TABLE m2 ADD CONSTRAINT m2_bound CHECK (k >= 10 AND k < 20) NOT VALID;\nALTER TABLE m2 VALIDATE CONSTRAINT m2_bound;\nALTER TABLE m ATTACH PARTITION m2 FOR VALUES FROM (10) TO (20);",
            // No DEFAULT partition known: a new partition reads nothing.
            "CREATE TABLE m5 PARTITION OF m FOR VALUES FROM (50) TO (60);",
            // Indexes attach without a scan.
            "ALTER INDEX m_v_idx ATTACH PARTITION m2_v_idx;",
        ] {
            assert_eq!(lines(RULE, sql), Vec::<usize>::new(), "{sql}");
        }
    }
}
