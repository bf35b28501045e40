//! `CREATE INDEX [CONCURRENTLY]` and `REINDEX [CONCURRENTLY]`: index builds, which read
//! the whole table under their lock.

use pg_query::protobuf::ReindexObjectType;

use super::{Effect, IndirectLock, LockMode, LockTarget, RelName, StatementLocks, has_option};

/// `CREATE INDEX`: SHARE on the table (blocks writes for the build); on a partitioned
/// table, SHARE on each partition too, each built in turn (`ON ONLY` builds nothing: the
/// parent's index stays invalid until one is attached per partition).
/// `CONCURRENTLY`: SHARE UPDATE EXCLUSIVE, outside a transaction; refused on a
/// partitioned table.
pub(super) fn create_index(s: &mut StatementLocks, i: &pg_query::protobuf::IndexStmt) {
    let mode = if i.concurrent {
        LockMode::ShareUpdateExclusive
    } else {
        LockMode::Share
    };
    if let Some(r) = &i.relation {
        let table = RelName::from_range_var(r);
        s.add(
            LockTarget::Table(table.clone()),
            mode,
            Effect::No,
            Effect::Yes,
        );
        if r.inh && !i.concurrent {
            s.each_partition = Some(IndirectLock {
                via: table,
                mode,
                scan: Effect::Yes,
            });
        }
    }
    s.outside_transaction = i.concurrent;
    s.refused_if_partitioned = i.concurrent;
}

/// `REINDEX INDEX|TABLE`: SHARE on the table and ACCESS EXCLUSIVE on the index(es) it
/// rebuilds (new files); `CONCURRENTLY`: SHARE UPDATE EXCLUSIVE on the table only.
/// `SCHEMA`, `SYSTEM` and `DATABASE` reindex every table, outside a transaction.
pub(super) fn reindex(s: &mut StatementLocks, r: &pg_query::protobuf::ReindexStmt) {
    use LockMode::*;
    let concurrent = has_option(&r.params, "concurrently");
    let kind = ReindexObjectType::try_from(r.kind).unwrap_or(ReindexObjectType::Undefined);
    let name = r.relation.as_ref().map(RelName::from_range_var);
    let build = Effect::Yes;
    match (kind, name) {
        (ReindexObjectType::ReindexObjectIndex, Some(i)) if concurrent => {
            s.add(
                LockTarget::TableOfIndex(i),
                ShareUpdateExclusive,
                Effect::No,
                build,
            );
        }
        (ReindexObjectType::ReindexObjectIndex, Some(i)) => {
            s.add(
                LockTarget::TableOfIndex(i.clone()),
                Share,
                Effect::No,
                build,
            );
            s.add(
                LockTarget::Index(i),
                AccessExclusive,
                Effect::Yes,
                Effect::No,
            );
        }
        (ReindexObjectType::ReindexObjectTable, Some(t)) if concurrent => {
            s.add(
                LockTarget::Table(t),
                ShareUpdateExclusive,
                Effect::No,
                build,
            );
        }
        (ReindexObjectType::ReindexObjectTable, Some(t)) => {
            s.add(LockTarget::Table(t.clone()), Share, Effect::No, build);
            s.add(
                LockTarget::IndexesOf(t),
                AccessExclusive,
                Effect::Yes,
                Effect::No,
            );
        }
        _ => {
            let mode = if concurrent {
                ShareUpdateExclusive
            } else {
                Share
            };
            s.add(LockTarget::Database, mode, Effect::No, build);
        }
    }
    s.outside_transaction = concurrent
        || matches!(
            kind,
            ReindexObjectType::ReindexObjectSchema
                | ReindexObjectType::ReindexObjectSystem
                | ReindexObjectType::ReindexObjectDatabase
        );
}

#[cfg(test)]
mod tests {
    use crate::locks::test_support::facts;

    #[test]
    fn create_index_blocks_writes_for_the_build_unless_concurrent() {
        assert_eq!(
            facts("CREATE INDEX i ON t (c)", 15),
            [
                "t SHARE rewrite no scan yes",
                "each partition of t SHARE scan yes"
            ]
        );
        assert_eq!(
            facts("CREATE UNIQUE INDEX i ON s.t (c)", 15),
            [
                "s.t SHARE rewrite no scan yes",
                "each partition of s.t SHARE scan yes"
            ]
        );
        assert_eq!(
            facts("CREATE INDEX CONCURRENTLY i ON t (c)", 15),
            [
                "t SHARE UPDATE EXCLUSIVE rewrite no scan yes",
                "refused if partitioned",
                "outside a transaction"
            ]
        );
    }

    #[test]
    fn on_only_a_parent_builds_nothing_on_its_partitions() {
        assert_eq!(
            facts("CREATE INDEX i ON ONLY t (c)", 15),
            ["t SHARE rewrite no scan yes"]
        );
    }

    #[test]
    fn reindex_rebuilds_the_index_under_access_exclusive_unless_concurrent() {
        assert_eq!(
            facts("REINDEX INDEX i", 15),
            [
                "index i ACCESS EXCLUSIVE rewrite yes scan no",
                "the table of index i SHARE rewrite no scan yes"
            ]
        );
        assert_eq!(
            facts("REINDEX TABLE t", 15),
            [
                "the indexes of t ACCESS EXCLUSIVE rewrite yes scan no",
                "t SHARE rewrite no scan yes"
            ]
        );
        assert_eq!(
            facts("REINDEX INDEX CONCURRENTLY i", 15),
            [
                "the table of index i SHARE UPDATE EXCLUSIVE rewrite no scan yes",
                "outside a transaction"
            ]
        );
        assert_eq!(
            facts("REINDEX (CONCURRENTLY) TABLE t", 15),
            [
                "t SHARE UPDATE EXCLUSIVE rewrite no scan yes",
                "outside a transaction"
            ]
        );
    }

    #[test]
    fn reindex_of_a_schema_or_database_locks_every_table_outside_a_transaction() {
        for sql in ["REINDEX SCHEMA s", "REINDEX DATABASE d", "REINDEX SYSTEM d"] {
            assert_eq!(
                facts(sql, 15),
                [
                    "every table SHARE rewrite no scan yes",
                    "outside a transaction"
                ],
                "{sql}"
            );
        }
    }
}
