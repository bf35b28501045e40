//! `CREATE TABLE` (the tables its foreign keys reference, the parent of a partition),
//! `DROP` of tables, views, sequences and indexes, and what is created on a table:
//! triggers, rules, policies, statistics.

use pg_query::NodeEnum;
use pg_query::protobuf::{ConstrType, ObjectType};

use super::{
    Condition, DroppedKeys, Effect, ForeignKeyReach, IndirectLock, LockMode, LockTarget, RelName,
    StatementLocks, constraints, range_vars,
};

/// `CREATE TABLE`: nothing on the new table; SHARE ROW EXCLUSIVE on each table its
/// foreign keys reference (not itself: a self-reference names the table being created),
/// ACCESS EXCLUSIVE on the parent of `PARTITION OF` (and a scan of its DEFAULT partition,
/// if it has one).
pub(super) fn create_table(s: &mut StatementLocks, c: &pg_query::protobuf::CreateStmt) {
    let created = c.relation.as_ref().map(RelName::from_range_var);
    let mut referenced = |con: &pg_query::protobuf::Constraint| {
        let other = con.pktable.as_ref().filter(|r| {
            created
                .as_ref()
                .is_none_or(|t| !t.same_as(&RelName::from_range_var(r)))
        });
        s.table(other, LockMode::ShareRowExclusive);
    };
    for elt in &c.table_elts {
        match &elt.node {
            Some(NodeEnum::ColumnDef(col)) => {
                for con in constraints(&col.constraints) {
                    if con.contype == ConstrType::ConstrForeign as i32 {
                        referenced(con);
                    }
                }
            }
            Some(NodeEnum::Constraint(con)) if con.contype == ConstrType::ConstrForeign as i32 => {
                referenced(con);
            }
            _ => {}
        }
    }
    if let Some(bound) = &c.partbound {
        for parent in range_vars(&c.inh_relations) {
            s.table(Some(parent), LockMode::AccessExclusive);
            // The parent's DEFAULT partition is read in full: none of its rows may
            // belong to the new partition.
            if !bound.is_default {
                s.default_partition = Some(IndirectLock {
                    via: RelName::from_range_var(parent),
                    mode: LockMode::AccessExclusive,
                    scan: Effect::Unless(Condition::PartitionConstraintImplied),
                });
            }
        }
    }
}

/// `CREATE TRIGGER`: SHARE ROW EXCLUSIVE on its table.
pub(super) fn create_trigger(s: &mut StatementLocks, t: &pg_query::protobuf::CreateTrigStmt) {
    s.table(t.relation.as_ref(), LockMode::ShareRowExclusive);
}

/// `CREATE RULE`: ACCESS EXCLUSIVE on its table.
pub(super) fn create_rule(s: &mut StatementLocks, r: &pg_query::protobuf::RuleStmt) {
    s.table(r.relation.as_ref(), LockMode::AccessExclusive);
}

/// `CREATE POLICY` / `ALTER POLICY`: ACCESS EXCLUSIVE on its table.
pub(super) fn policy(s: &mut StatementLocks, table: Option<&pg_query::protobuf::RangeVar>) {
    s.table(table, LockMode::AccessExclusive);
}

/// `CREATE STATISTICS`: SHARE UPDATE EXCLUSIVE on its table.
pub(super) fn create_statistics(s: &mut StatementLocks, st: &pg_query::protobuf::CreateStatsStmt) {
    for r in range_vars(&st.relations) {
        s.table(Some(r), LockMode::ShareUpdateExclusive);
    }
}

/// `DROP INDEX [CONCURRENTLY]` (the index's table: ACCESS EXCLUSIVE, or SHARE UPDATE
/// EXCLUSIVE outside a transaction) and `DROP` of tables, views, materialized views,
/// sequences and foreign tables (ACCESS EXCLUSIVE). `DROP ... CASCADE` of any object
/// (a schema, a type, a function too) drops what depends on it as well.
pub(super) fn drop(s: &mut StatementLocks, d: &pg_query::protobuf::DropStmt) {
    let kind = ObjectType::try_from(d.remove_type).unwrap_or(ObjectType::Undefined);
    s.cascades = d.behavior == pg_query::protobuf::DropBehavior::DropCascade as i32;
    let names = d.objects.iter().filter_map(|o| match &o.node {
        Some(NodeEnum::List(l)) => RelName::from_names(&l.items),
        _ => None,
    });
    match kind {
        ObjectType::ObjectIndex => {
            let mode = if d.concurrent {
                LockMode::ShareUpdateExclusive
            } else {
                LockMode::AccessExclusive
            };
            for i in names {
                s.add(LockTarget::TableOfIndex(i), mode, Effect::No, Effect::No);
            }
            s.outside_transaction = d.concurrent;
        }
        ObjectType::ObjectTable
        | ObjectType::ObjectView
        | ObjectType::ObjectMatview
        | ObjectType::ObjectSequence
        | ObjectType::ObjectForeignTable => {
            for t in names {
                // A dropped table's foreign keys go with it: their referenced tables are
                // locked too; with CASCADE, so are the tables whose keys reference it.
                if kind == ObjectType::ObjectTable {
                    s.foreign_keys.push(ForeignKeyReach::Drops {
                        table: t.clone(),
                        keys: DroppedKeys::All,
                    });
                    if s.cascades {
                        s.foreign_keys
                            .push(ForeignKeyReach::CascadesFrom(t.clone()));
                    }
                }
                s.add(
                    LockTarget::Table(t),
                    LockMode::AccessExclusive,
                    Effect::No,
                    Effect::No,
                );
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use crate::locks::test_support::facts;

    #[test]
    fn create_table_locks_the_tables_its_foreign_keys_reference_not_itself() {
        assert_eq!(
            facts("CREATE TABLE u (id int, c int REFERENCES p (id))", 15),
            ["p SHARE ROW EXCLUSIVE rewrite no scan no"]
        );
        assert_eq!(
            facts(
                "CREATE TABLE c (id int PRIMARY KEY, p int REFERENCES c (id), u int REFERENCES users (id))",
                15
            ),
            ["users SHARE ROW EXCLUSIVE rewrite no scan no"]
        );
        assert_eq!(
            facts(
                "CREATE TABLE u (id int, c int, FOREIGN KEY (c) REFERENCES s.p (id))",
                15
            ),
            ["s.p SHARE ROW EXCLUSIVE rewrite no scan no"]
        );
        assert_eq!(facts("CREATE TABLE u (id int)", 15), Vec::<String>::new());
    }

    #[test]
    fn a_partition_locks_its_parent() {
        assert_eq!(
            facts(
                "CREATE TABLE p1 PARTITION OF t FOR VALUES FROM (1) TO (10)",
                15
            ),
            [
                "t ACCESS EXCLUSIVE rewrite no scan no",
                "the default partition of t ACCESS EXCLUSIVE scan unless PartitionConstraintImplied"
            ]
        );
        assert_eq!(
            facts("CREATE TABLE d PARTITION OF t DEFAULT", 15),
            ["t ACCESS EXCLUSIVE rewrite no scan no"]
        );
        // Plain inheritance does not.
        assert_eq!(
            facts("CREATE TABLE c (x int) INHERITS (t)", 15),
            Vec::<String>::new()
        );
    }

    #[test]
    fn drop_index_locks_its_table_unless_concurrent() {
        assert_eq!(
            facts("DROP INDEX i", 15),
            ["the table of index i ACCESS EXCLUSIVE rewrite no scan no"]
        );
        assert_eq!(
            facts("DROP INDEX CONCURRENTLY i", 15),
            [
                "the table of index i SHARE UPDATE EXCLUSIVE rewrite no scan no",
                "outside a transaction"
            ]
        );
    }

    #[test]
    fn dropping_a_relation_takes_access_exclusive() {
        assert_eq!(
            facts("DROP TABLE a, s.b", 15),
            [
                "a ACCESS EXCLUSIVE rewrite no scan no",
                "s.b ACCESS EXCLUSIVE rewrite no scan no",
                "referenced by the dropped keys of a (All)",
                "referenced by the dropped keys of s.b (All)"
            ]
        );
        for sql in [
            "DROP VIEW v",
            "DROP MATERIALIZED VIEW v",
            "DROP SEQUENCE v",
            "DROP FOREIGN TABLE v",
        ] {
            assert_eq!(
                facts(sql, 15),
                ["v ACCESS EXCLUSIVE rewrite no scan no"],
                "{sql}"
            );
        }
        assert_eq!(facts("DROP FUNCTION f()", 15), Vec::<String>::new());
    }

    #[test]
    fn drop_cascade_reaches_what_depends_on_the_object() {
        assert_eq!(
            facts("DROP TABLE a CASCADE", 15),
            [
                "a ACCESS EXCLUSIVE rewrite no scan no",
                "referenced by the dropped keys of a (All)",
                "referencing a",
                "cascades"
            ]
        );
        // A schema, a type, a function: no relation named, but their dependents go too.
        for sql in [
            "DROP SCHEMA s CASCADE",
            "DROP TYPE e CASCADE",
            "DROP FUNCTION f() CASCADE",
        ] {
            assert_eq!(facts(sql, 15), ["cascades"], "{sql}");
        }
        assert_eq!(facts("DROP SCHEMA s", 15), Vec::<String>::new());
    }

    #[test]
    fn what_is_created_on_a_table_locks_it() {
        assert_eq!(
            facts(
                "CREATE TRIGGER g BEFORE UPDATE ON t FOR EACH ROW EXECUTE FUNCTION f()",
                15
            ),
            ["t SHARE ROW EXCLUSIVE rewrite no scan no"]
        );
        assert_eq!(
            facts("CREATE RULE r AS ON INSERT TO t DO INSTEAD NOTHING", 15),
            ["t ACCESS EXCLUSIVE rewrite no scan no"]
        );
        for sql in [
            "CREATE POLICY p ON t USING (true)",
            "ALTER POLICY p ON t USING (false)",
        ] {
            assert_eq!(
                facts(sql, 15),
                ["t ACCESS EXCLUSIVE rewrite no scan no"],
                "{sql}"
            );
        }
        assert_eq!(
            facts("CREATE STATISTICS s ON a, b FROM t", 15),
            ["t SHARE UPDATE EXCLUSIVE rewrite no scan no"]
        );
    }
}
