//! `COMMENT ON`, `ALTER TYPE ... ADD VALUE`, `ALTER DOMAIN`, and statements the lock
//! table knows only as a whole: what must run outside a transaction, what cannot be known
//! from the text (`DO`, `CALL`), transaction control.

use pg_query::NodeEnum;
use pg_query::protobuf::ObjectType;

use super::{Effect, IndirectLock, LockMode, LockTarget, PgVersion, RelName, StatementLocks};

/// `COMMENT ON TABLE|VIEW|COLUMN`: SHARE UPDATE EXCLUSIVE on the table.
pub(super) fn comment(s: &mut StatementLocks, c: &pg_query::protobuf::CommentStmt) {
    let objtype = ObjectType::try_from(c.objtype).unwrap_or(ObjectType::Undefined);
    if let Some(NodeEnum::List(l)) = c.object.as_deref().and_then(|o| o.node.as_ref()) {
        let table = match objtype {
            ObjectType::ObjectTable | ObjectType::ObjectView => RelName::from_names(&l.items),
            ObjectType::ObjectColumn => {
                RelName::from_names(&l.items[..l.items.len().saturating_sub(1)])
            }
            _ => None,
        };
        if let Some(t) = table {
            s.add(
                LockTarget::Table(t),
                LockMode::ShareUpdateExclusive,
                Effect::No,
                Effect::No,
            );
        }
    }
}

/// `ALTER TYPE ... ADD VALUE` may run in a transaction block only from PostgreSQL 12
/// (`RENAME VALUE` always may). It locks the type, no table; the value it adds cannot be
/// used before its transaction commits (the unit follows that, not the lock table).
pub(super) fn alter_enum(
    s: &mut StatementLocks,
    e: &pg_query::protobuf::AlterEnumStmt,
    pg: PgVersion,
) {
    s.outside_transaction = e.old_val.is_empty() && !pg.at_least(12);
}

/// `ALTER DOMAIN`: adding a constraint (`ADD CONSTRAINT` without `NOT VALID`, `SET NOT
/// NULL`) or validating one reads every column of the domain, in every table, under
/// SHARE on each table (writes wait); `VALIDATE CONSTRAINT` too, in every released
/// PostgreSQL (18 and before). The other forms (`NOT VALID`, `DROP`, defaults) read
/// nothing and lock only the domain.
pub(super) fn alter_domain(s: &mut StatementLocks, d: &pg_query::protobuf::AlterDomainStmt) {
    let validates = match d.subtype.as_str() {
        "O" | "V" => true,
        "C" => matches!(
            d.def.as_deref().and_then(|n| n.node.as_ref()),
            Some(NodeEnum::Constraint(c)) if !c.skip_validation
        ),
        _ => false,
    };
    if validates && let Some(domain) = RelName::from_names(&d.type_name) {
        s.tables_using_domain = Some(IndirectLock {
            via: domain,
            mode: LockMode::Share,
            scan: Effect::Yes,
        });
    }
}

/// `DO`, `CALL`: their locks cannot be known from the text (a branch may not run, SQL may
/// be built at run time), so the lock table leaves them opaque; lint reads the
/// statements of a `DO` block, and of the unit's own functions it calls, one by one
/// (`plpgsql.rs`).
pub(super) fn opaque(s: &mut StatementLocks) {
    s.opaque = true;
}

/// `BEGIN`, `COMMIT`, `ROLLBACK`, `SAVEPOINT`...
pub(super) fn transaction_control(s: &mut StatementLocks) {
    s.transaction_control = true;
}

/// `CREATE/DROP DATABASE`, `CREATE/DROP TABLESPACE`, `ALTER SYSTEM`: refused inside a
/// transaction block.
pub(super) fn outside_transaction(s: &mut StatementLocks) {
    s.outside_transaction = true;
}

#[cfg(test)]
mod tests {
    use crate::locks::test_support::facts;

    #[test]
    fn comment_on_a_table_or_column_takes_share_update_exclusive() {
        for sql in [
            "COMMENT ON TABLE t IS 'x'",
            "COMMENT ON VIEW t IS 'x'",
            "COMMENT ON COLUMN t.c IS 'x'",
        ] {
            assert_eq!(
                facts(sql, 15),
                ["t SHARE UPDATE EXCLUSIVE rewrite no scan no"],
                "{sql}"
            );
        }
        assert_eq!(
            facts("COMMENT ON COLUMN s.t.c IS 'x'", 15),
            ["s.t SHARE UPDATE EXCLUSIVE rewrite no scan no"]
        );
        assert_eq!(
            facts("COMMENT ON SCHEMA s IS 'x'", 15),
            Vec::<String>::new()
        );
    }

    #[test]
    fn add_value_runs_in_a_transaction_from_pg12() {
        assert_eq!(
            facts("ALTER TYPE e ADD VALUE 'x'", 11),
            ["outside a transaction"]
        );
        assert_eq!(
            facts("ALTER TYPE e ADD VALUE 'x'", 12),
            Vec::<String>::new()
        );
        assert_eq!(
            facts("ALTER TYPE e RENAME VALUE 'x' TO 'y'", 11),
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_domain_constraint_reads_every_table_using_it_under_share() {
        for sql in [
            "ALTER DOMAIN d ADD CONSTRAINT k CHECK (VALUE > 0)",
            "ALTER DOMAIN d SET NOT NULL",
            "ALTER DOMAIN d VALIDATE CONSTRAINT k",
        ] {
            assert_eq!(
                facts(sql, 15),
                ["every table using d SHARE scan yes"],
                "{sql}"
            );
        }
        for sql in [
            "ALTER DOMAIN d ADD CONSTRAINT k CHECK (VALUE > 0) NOT VALID",
            "ALTER DOMAIN d DROP CONSTRAINT k",
            "ALTER DOMAIN d DROP NOT NULL",
            "ALTER DOMAIN d SET DEFAULT 0",
        ] {
            assert_eq!(facts(sql, 15), Vec::<String>::new(), "{sql}");
        }
    }

    #[test]
    fn what_the_text_cannot_tell_and_what_runs_outside_a_transaction() {
        assert_eq!(facts("DO $$ BEGIN END $$", 15), ["opaque"]);
        assert_eq!(facts("CALL p()", 15), ["opaque"]);
        for sql in ["BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT a"] {
            assert_eq!(facts(sql, 15), ["transaction control"], "{sql}");
        }
        for sql in [
            "CREATE DATABASE d",
            "DROP DATABASE d",
            "CREATE TABLESPACE s LOCATION '/x'",
            "DROP TABLESPACE s",
            "ALTER SYSTEM SET work_mem = '1MB'",
        ] {
            assert_eq!(facts(sql, 15), ["outside a transaction"], "{sql}");
        }
    }
}
