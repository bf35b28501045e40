//! `VACUUM` / `ANALYZE`, `CLUSTER`, `REFRESH MATERIALIZED VIEW`: statements that read
//! (and for some rewrite) a whole table.

use pg_query::NodeEnum;

use super::{Effect, LockMode, LockTarget, RelName, StatementLocks, has_option};

/// `VACUUM` and `ANALYZE`: SHARE UPDATE EXCLUSIVE and a scan of each table named (every
/// table when none is); `VACUUM FULL`: ACCESS EXCLUSIVE and a rewrite. `VACUUM` runs
/// outside a transaction, `ANALYZE` may not.
pub(super) fn vacuum(s: &mut StatementLocks, v: &pg_query::protobuf::VacuumStmt) {
    let full = v.is_vacuumcmd && has_option(&v.options, "full");
    let (mode, rewrite) = if full {
        (LockMode::AccessExclusive, Effect::Yes)
    } else {
        (LockMode::ShareUpdateExclusive, Effect::No)
    };
    let mut any = false;
    for rel in &v.rels {
        if let Some(NodeEnum::VacuumRelation(vr)) = &rel.node
            && let Some(r) = &vr.relation
        {
            any = true;
            s.add(
                LockTarget::Table(RelName::from_range_var(r)),
                mode,
                rewrite,
                Effect::Yes,
            );
        }
    }
    if !any {
        s.add(LockTarget::Database, mode, rewrite, Effect::Yes);
    }
    s.outside_transaction = v.is_vacuumcmd;
}

/// `CLUSTER`: ACCESS EXCLUSIVE and a rewrite of the table; with no table, every
/// clustered table, outside a transaction.
pub(super) fn cluster(s: &mut StatementLocks, c: &pg_query::protobuf::ClusterStmt) {
    match &c.relation {
        Some(r) => s.add(
            LockTarget::Table(RelName::from_range_var(r)),
            LockMode::AccessExclusive,
            Effect::Yes,
            Effect::Yes,
        ),
        None => {
            s.add(
                LockTarget::Database,
                LockMode::AccessExclusive,
                Effect::Yes,
                Effect::Yes,
            );
            s.outside_transaction = true;
        }
    }
}

/// `REFRESH MATERIALIZED VIEW`: ACCESS EXCLUSIVE and new contents (the query runs in
/// full); `WITH NO DATA`: new, empty files and no query (reads then fail until the next
/// refresh); `CONCURRENTLY`: EXCLUSIVE (reads go on), rows updated in place.
pub(super) fn refresh_materialized_view(
    s: &mut StatementLocks,
    r: &pg_query::protobuf::RefreshMatViewStmt,
) {
    let (mode, rewrite) = if r.concurrent {
        (LockMode::Exclusive, Effect::No)
    } else {
        (LockMode::AccessExclusive, Effect::Yes)
    };
    let scan = if r.skip_data { Effect::No } else { Effect::Yes };
    if let Some(rel) = &r.relation {
        s.add(
            LockTarget::Table(RelName::from_range_var(rel)),
            mode,
            rewrite,
            scan,
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::locks::test_support::facts;

    #[test]
    fn vacuum_and_analyze_scan_under_share_update_exclusive_and_full_rewrites() {
        assert_eq!(
            facts("VACUUM t", 15),
            [
                "t SHARE UPDATE EXCLUSIVE rewrite no scan yes",
                "outside a transaction"
            ]
        );
        assert_eq!(
            facts("VACUUM", 15),
            [
                "every table SHARE UPDATE EXCLUSIVE rewrite no scan yes",
                "outside a transaction"
            ]
        );
        assert_eq!(
            facts("ANALYZE t", 15),
            ["t SHARE UPDATE EXCLUSIVE rewrite no scan yes"]
        );
        for sql in ["VACUUM FULL t", "VACUUM (FULL) t"] {
            assert_eq!(
                facts(sql, 15),
                [
                    "t ACCESS EXCLUSIVE rewrite yes scan yes",
                    "outside a transaction"
                ],
                "{sql}"
            );
        }
        assert_eq!(
            facts("VACUUM (FULL false) t", 15),
            [
                "t SHARE UPDATE EXCLUSIVE rewrite no scan yes",
                "outside a transaction"
            ]
        );
    }

    #[test]
    fn cluster_rewrites_under_access_exclusive() {
        assert_eq!(
            facts("CLUSTER t USING i", 15),
            ["t ACCESS EXCLUSIVE rewrite yes scan yes"]
        );
        assert_eq!(
            facts("CLUSTER", 15),
            [
                "every table ACCESS EXCLUSIVE rewrite yes scan yes",
                "outside a transaction"
            ]
        );
    }

    #[test]
    fn refresh_concurrently_lets_reads_through() {
        assert_eq!(
            facts("REFRESH MATERIALIZED VIEW m", 15),
            ["m ACCESS EXCLUSIVE rewrite yes scan yes"]
        );
        assert_eq!(
            facts("REFRESH MATERIALIZED VIEW CONCURRENTLY m", 15),
            ["m EXCLUSIVE rewrite no scan yes"]
        );
        assert_eq!(
            facts("REFRESH MATERIALIZED VIEW m WITH NO DATA", 15),
            ["m ACCESS EXCLUSIVE rewrite yes scan no"]
        );
    }
}
