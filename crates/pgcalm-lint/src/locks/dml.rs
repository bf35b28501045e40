//! Statements on a table's rows: `INSERT`, `UPDATE`, `DELETE`, `MERGE`, `TRUNCATE`, and
//! the explicit `LOCK TABLE`.

use super::{Effect, ForeignKeyReach, LockMode, LockTarget, RelName, StatementLocks, range_vars};

/// `INSERT`, `UPDATE`, `DELETE`, `MERGE`: ROW EXCLUSIVE on the target table (what
/// blocks writes blocks these).
pub(super) fn write(s: &mut StatementLocks, table: Option<&pg_query::protobuf::RangeVar>) {
    s.table(table, LockMode::RowExclusive);
}

/// `TRUNCATE`: ACCESS EXCLUSIVE on each table, and new, empty files (the relfilenode
/// changes as in a rewrite); `CASCADE`: every table with a foreign key to one of them is
/// emptied the same way, recursively.
pub(super) fn truncate(s: &mut StatementLocks, t: &pg_query::protobuf::TruncateStmt) {
    s.cascades = t.behavior == pg_query::protobuf::DropBehavior::DropCascade as i32;
    for r in range_vars(&t.relations) {
        if s.cascades {
            s.foreign_keys
                .push(ForeignKeyReach::CascadesFrom(RelName::from_range_var(r)));
        }
        s.add(
            LockTarget::Table(RelName::from_range_var(r)),
            LockMode::AccessExclusive,
            Effect::Yes,
            Effect::No,
        );
    }
}

/// `LOCK TABLE ... IN <mode> MODE`: that mode on each table.
pub(super) fn lock(s: &mut StatementLocks, l: &pg_query::protobuf::LockStmt) {
    let mode = lock_stmt_mode(l.mode);
    for r in range_vars(&l.relations) {
        s.table(Some(r), mode);
    }
}

fn lock_stmt_mode(mode: i32) -> LockMode {
    // The parse tree carries PostgreSQL's LOCKMODE number (1 = AccessShareLock ... 8).
    match mode {
        1 => LockMode::AccessShare,
        2 => LockMode::RowShare,
        3 => LockMode::RowExclusive,
        4 => LockMode::ShareUpdateExclusive,
        5 => LockMode::Share,
        6 => LockMode::ShareRowExclusive,
        7 => LockMode::Exclusive,
        _ => LockMode::AccessExclusive,
    }
}

#[cfg(test)]
mod tests {
    use crate::locks::test_support::facts;

    #[test]
    fn row_writes_take_row_exclusive() {
        for sql in [
            "INSERT INTO t VALUES (1)",
            "UPDATE t SET c = 0",
            "DELETE FROM t",
            "MERGE INTO t USING u ON t.id = u.id WHEN MATCHED THEN DELETE",
        ] {
            assert_eq!(
                facts(sql, 15),
                ["t ROW EXCLUSIVE rewrite no scan no"],
                "{sql}"
            );
        }
    }

    #[test]
    fn truncate_gives_every_table_new_files_under_access_exclusive() {
        assert_eq!(
            facts("TRUNCATE a, s.b", 15),
            [
                "a ACCESS EXCLUSIVE rewrite yes scan no",
                "s.b ACCESS EXCLUSIVE rewrite yes scan no"
            ]
        );
        assert_eq!(
            facts("TRUNCATE a CASCADE", 15),
            [
                "a ACCESS EXCLUSIVE rewrite yes scan no",
                "referencing a",
                "cascades"
            ]
        );
        assert_eq!(
            facts("TRUNCATE a RESTRICT", 15),
            ["a ACCESS EXCLUSIVE rewrite yes scan no"]
        );
    }
}
