//! `ALTER TABLE` (each subcommand's lock after PostgreSQL's `AlterTableGetLockLevel`;
//! a multi-command statement takes its strictest subcommand's), `ALTER ... RENAME` and
//! `ALTER ... SET SCHEMA`.

use pg_query::NodeEnum;
use pg_query::protobuf::{AlterTableType, ConstrType, ObjectType};

use super::expr::{Volatility, has_default, is_null_const, is_serial_type, volatility};
use super::{
    Condition, DroppedKeys, Effect, ForeignKeyReach, IndirectLock, LockMode, LockTarget, PgVersion,
    RelName, StatementLocks, constraints,
};

/// One `ALTER TABLE` subcommand's lock on the altered table.
struct SubcommandLock {
    mode: LockMode,
    rewrite: Effect,
    scan: Effect,
}

/// `ALTER TABLE` (and `ALTER INDEX ...` forms that parse as one): each subcommand's lock
/// on the altered relation, the strictest winning, plus what a subcommand locks besides
/// (a foreign key's referenced table, a partition being attached or detached).
pub(super) fn alter_table(
    s: &mut StatementLocks,
    a: &pg_query::protobuf::AlterTableStmt,
    pg: PgVersion,
) {
    let Some(rel) = &a.relation else { return };
    let name = RelName::from_range_var(rel);
    let target = if ObjectType::try_from(a.objtype) == Ok(ObjectType::ObjectIndex) {
        LockTarget::Index(name)
    } else {
        LockTarget::Table(name)
    };
    let mut only_concurrent_detach = !a.cmds.is_empty();
    let index = matches!(target, LockTarget::Index(_));
    for cmd in &a.cmds {
        let Some(NodeEnum::AlterTableCmd(cmd)) = &cmd.node else {
            continue;
        };
        let subtype = AlterTableType::try_from(cmd.subtype).unwrap_or(AlterTableType::Undefined);
        let def = cmd.def.as_deref().and_then(|d| d.node.as_ref());
        // DROP COLUMN / DROP CONSTRAINT ... CASCADE: the views and other tables' foreign
        // keys that depend on it go too.
        if cmd.behavior == pg_query::protobuf::DropBehavior::DropCascade as i32 {
            s.cascades = true;
        }
        // Other relations a subcommand locks (the referenced table of a foreign key)
        // are listed after the altered table.
        let mut others = StatementLocks::default();
        let sub = if index {
            index_subcommand_lock(&mut others, subtype, def, pg)
        } else {
            subcommand_lock(&mut others, subtype, def, pg)
        };
        if let Some(parent) = target.table() {
            partition_locks(s, parent, subtype, def);
        }
        if subtype == AlterTableType::AtDetachPartition
            && matches!(def, Some(NodeEnum::PartitionCmd(p)) if p.concurrent)
        {
            s.outside_transaction = true;
        } else {
            only_concurrent_detach = false;
        }
        s.add(target.clone(), sub.mode, sub.rewrite, sub.scan);
        // DROP CONSTRAINT of a foreign key, DROP COLUMN of a key's column: its
        // referenced table is locked too.
        let keys = match subtype {
            AlterTableType::AtDropConstraint => Some(DroppedKeys::Constraint(cmd.name.clone())),
            AlterTableType::AtDropColumn => Some(DroppedKeys::Column(cmd.name.clone())),
            _ => None,
        };
        if let (Some(keys), LockTarget::Table(table)) = (keys, &target) {
            s.foreign_keys.push(ForeignKeyReach::Drops {
                table: table.clone(),
                keys,
            });
        }
        for l in others.locks {
            s.add(l.target, l.mode, l.rewrite, l.scan);
        }
    }
    if only_concurrent_detach {
        s.label = "ALTER TABLE ... DETACH PARTITION CONCURRENTLY".into();
    }
}

/// What attaching or detaching a partition takes on the parent's DEFAULT partition, if
/// it has one: attaching scans it under ACCESS EXCLUSIVE (none of its rows may belong to
/// the new partition; a validated CHECK on it that excludes the new range spares the
/// scan), detaching locks it.
fn partition_locks(
    s: &mut StatementLocks,
    parent: &RelName,
    subtype: AlterTableType,
    def: Option<&NodeEnum>,
) {
    let Some(NodeEnum::PartitionCmd(p)) = def else {
        return;
    };
    let attaching_default = p.bound.as_ref().is_some_and(|b| b.is_default);
    let scan = match subtype {
        AlterTableType::AtAttachPartition if !attaching_default => {
            Effect::Unless(Condition::PartitionConstraintImplied)
        }
        AlterTableType::AtDetachPartition if !p.concurrent => Effect::No,
        _ => return,
    };
    s.default_partition = Some(IndirectLock {
        via: parent.clone(),
        mode: LockMode::AccessExclusive,
        scan,
    });
}

/// `ALTER INDEX parent ATTACH PARTITION child`: SHARE UPDATE EXCLUSIVE on the parent
/// index, ACCESS EXCLUSIVE on the partition's index (no scan: it is checked to match);
/// the other `ALTER INDEX` forms that parse as `ALTER TABLE` (SET, SET STATISTICS...)
/// as `ALTER TABLE`'s.
fn index_subcommand_lock(
    s: &mut StatementLocks,
    subtype: AlterTableType,
    def: Option<&NodeEnum>,
    pg: PgVersion,
) -> SubcommandLock {
    if subtype != AlterTableType::AtAttachPartition {
        return subcommand_lock(s, subtype, def, pg);
    }
    if let Some(NodeEnum::PartitionCmd(p)) = def
        && let Some(child) = &p.name
    {
        s.add(
            LockTarget::Index(RelName::from_range_var(child)),
            LockMode::AccessExclusive,
            Effect::No,
            Effect::No,
        );
    }
    SubcommandLock {
        mode: LockMode::ShareUpdateExclusive,
        rewrite: Effect::No,
        scan: Effect::No,
    }
}

/// `ALTER TABLE/INDEX/... RENAME` (a table, column, constraint or index): ACCESS
/// EXCLUSIVE, but SHARE UPDATE EXCLUSIVE for an index from PostgreSQL 12.
pub(super) fn rename(s: &mut StatementLocks, r: &pg_query::protobuf::RenameStmt, pg: PgVersion) {
    let renamed = ObjectType::try_from(r.rename_type).unwrap_or(ObjectType::Undefined);
    let mode = match renamed {
        // ALTER INDEX ... RENAME takes SHARE UPDATE EXCLUSIVE since PostgreSQL 12.
        ObjectType::ObjectIndex if pg.at_least(12) => LockMode::ShareUpdateExclusive,
        _ => LockMode::AccessExclusive,
    };
    if let Some(r) = &r.relation {
        let name = RelName::from_range_var(r);
        let target = if renamed == ObjectType::ObjectIndex {
            LockTarget::Index(name)
        } else {
            LockTarget::Table(name)
        };
        s.add(target, mode, Effect::No, Effect::No);
    }
}

/// `ALTER TABLE ... SET SCHEMA`: ACCESS EXCLUSIVE.
pub(super) fn set_schema(s: &mut StatementLocks, a: &pg_query::protobuf::AlterObjectSchemaStmt) {
    s.table(a.relation.as_ref(), LockMode::AccessExclusive);
}

fn subcommand_lock(
    s: &mut StatementLocks,
    subtype: AlterTableType,
    def: Option<&NodeEnum>,
    pg: PgVersion,
) -> SubcommandLock {
    use AlterTableType as At;
    use LockMode::*;
    let lock = |mode| SubcommandLock {
        mode,
        rewrite: Effect::No,
        scan: Effect::No,
    };
    match subtype {
        At::AtAddColumn => match def {
            Some(NodeEnum::ColumnDef(col)) => add_column_lock(s, col, pg),
            _ => lock(AccessExclusive),
        },
        At::AtSetNotNull => SubcommandLock {
            scan: if pg.at_least(12) {
                Effect::Unless(Condition::ProvenNotNull)
            } else {
                Effect::Yes
            },
            ..lock(AccessExclusive)
        },
        At::AtAlterColumnType => SubcommandLock {
            rewrite: Effect::Unless(Condition::BinaryCoercible),
            ..lock(AccessExclusive)
        },
        At::AtAddConstraint => match def {
            Some(NodeEnum::Constraint(c)) => add_constraint_lock(s, c, pg),
            _ => lock(AccessExclusive),
        },
        At::AtValidateConstraint => SubcommandLock {
            scan: Effect::Yes,
            ..lock(ShareUpdateExclusive)
        },
        At::AtSetStatistics
        | At::AtSetOptions
        | At::AtResetOptions
        | At::AtClusterOn
        | At::AtDropCluster
        | At::AtSetRelOptions
        | At::AtResetRelOptions
        | At::AtDetachPartitionFinalize => lock(ShareUpdateExclusive),
        At::AtEnableTrig
        | At::AtEnableAlwaysTrig
        | At::AtEnableReplicaTrig
        | At::AtDisableTrig
        | At::AtEnableTrigAll
        | At::AtDisableTrigAll
        | At::AtEnableTrigUser
        | At::AtDisableTrigUser => lock(ShareRowExclusive),
        At::AtSetLogged
        | At::AtSetUnLogged
        | At::AtSetTableSpace
        | At::AtSetAccessMethod
        | At::AtSetExpression => SubcommandLock {
            rewrite: Effect::Yes,
            ..lock(AccessExclusive)
        },
        At::AtAttachPartition => {
            // The parent: SHARE UPDATE EXCLUSIVE since PostgreSQL 12. The partition
            // being attached is scanned under ACCESS EXCLUSIVE.
            if let Some(NodeEnum::PartitionCmd(p)) = def
                && let Some(part) = &p.name
            {
                s.add(
                    LockTarget::Table(RelName::from_range_var(part)),
                    AccessExclusive,
                    Effect::No,
                    Effect::Unless(Condition::PartitionConstraintImplied),
                );
            }
            lock(if pg.at_least(12) {
                ShareUpdateExclusive
            } else {
                AccessExclusive
            })
        }
        At::AtDetachPartition => {
            let concurrent = matches!(def, Some(NodeEnum::PartitionCmd(p)) if p.concurrent);
            let mode = if concurrent {
                ShareUpdateExclusive
            } else {
                AccessExclusive
            };
            if let Some(NodeEnum::PartitionCmd(p)) = def
                && let Some(part) = &p.name
            {
                s.table(Some(part), mode);
            }
            lock(mode)
        }
        // DROP/SET DEFAULT, DROP NOT NULL, DROP COLUMN, DROP CONSTRAINT (a primary key's
        // too), identity, storage, owner, REPLICA IDENTITY, rules, row security,
        // inheritance...
        _ => lock(AccessExclusive),
    }
}

fn add_column_lock(
    s: &mut StatementLocks,
    col: &pg_query::protobuf::ColumnDef,
    pg: PgVersion,
) -> SubcommandLock {
    let mut rewrite = Effect::No;
    let mut scan = Effect::No;
    let serial = col.type_name.as_ref().is_some_and(is_serial_type);
    if serial {
        rewrite = Effect::Yes;
    }
    for c in constraints(&col.constraints) {
        match ConstrType::try_from(c.contype).unwrap_or(ConstrType::Undefined) {
            ConstrType::ConstrDefault => {
                if let Some(expr) = c.raw_expr.as_deref() {
                    rewrite = rewrite.max(default_rewrite(expr, pg));
                }
            }
            ConstrType::ConstrIdentity => rewrite = Effect::Yes,
            // Stored generated columns are computed for every row; virtual ones (PG18)
            // are not stored.
            ConstrType::ConstrGenerated if c.generated_kind != "v" => rewrite = Effect::Yes,
            ConstrType::ConstrCheck
            | ConstrType::ConstrPrimary
            | ConstrType::ConstrUnique
            | ConstrType::ConstrExclusion => scan = Effect::Yes,
            // A new column's foreign key is validated only when the column has a
            // default (PostgreSQL skips it when every row starts out NULL).
            ConstrType::ConstrForeign => {
                s.table(c.pktable.as_ref(), LockMode::ShareRowExclusive);
                if has_default(col) {
                    scan = Effect::Yes;
                }
            }
            _ => {}
        }
    }
    SubcommandLock {
        mode: LockMode::AccessExclusive,
        rewrite,
        scan,
    }
}

fn add_constraint_lock(
    s: &mut StatementLocks,
    c: &pg_query::protobuf::Constraint,
    pg: PgVersion,
) -> SubcommandLock {
    let _ = pg;
    let validated = if c.skip_validation {
        Effect::No
    } else {
        Effect::Yes
    };
    match ConstrType::try_from(c.contype).unwrap_or(ConstrType::Undefined) {
        ConstrType::ConstrForeign => {
            s.table(c.pktable.as_ref(), LockMode::ShareRowExclusive);
            SubcommandLock {
                mode: LockMode::ShareRowExclusive,
                rewrite: Effect::No,
                scan: validated,
            }
        }
        ConstrType::ConstrPrimary if !c.indexname.is_empty() => SubcommandLock {
            // USING INDEX: no build, but the key columns become NOT NULL.
            mode: LockMode::AccessExclusive,
            rewrite: Effect::No,
            scan: Effect::Unless(Condition::ProvenNotNull),
        },
        ConstrType::ConstrUnique if !c.indexname.is_empty() => SubcommandLock {
            mode: LockMode::AccessExclusive,
            rewrite: Effect::No,
            scan: Effect::No,
        },
        ConstrType::ConstrPrimary | ConstrType::ConstrUnique | ConstrType::ConstrExclusion => {
            SubcommandLock {
                mode: LockMode::AccessExclusive,
                rewrite: Effect::No,
                scan: Effect::Yes,
            }
        }
        _ => SubcommandLock {
            mode: LockMode::AccessExclusive,
            rewrite: Effect::No,
            scan: validated,
        },
    }
}

/// Whether adding a column with this default rewrites the table: from PostgreSQL 11 a
/// non-volatile default is stored once in the catalog; a volatile one (or any default
/// before 11) is written into every row.
fn default_rewrite(expr: &pg_query::Node, pg: PgVersion) -> Effect {
    if is_null_const(expr) {
        return Effect::No;
    }
    if !pg.at_least(11) {
        return Effect::Yes;
    }
    match volatility(expr) {
        Volatility::Volatile => Effect::Yes,
        Volatility::Unknown => Effect::Unless(Condition::NonVolatileDefault),
        Volatility::Stable => Effect::No,
    }
}

#[cfg(test)]
mod tests {
    use crate::locks::test_support::facts;

    #[test]
    fn a_constant_default_rewrites_before_pg11_only() {
        let sql = "ALTER TABLE t ADD COLUMN c int DEFAULT 0";
        assert_eq!(facts(sql, 10), ["t ACCESS EXCLUSIVE rewrite yes scan no"]);
        assert_eq!(facts(sql, 11), ["t ACCESS EXCLUSIVE rewrite no scan no"]);
        // A NULL default never rewrites; no default neither.
        let null = "ALTER TABLE t ADD COLUMN c int DEFAULT NULL::int";
        assert_eq!(facts(null, 10), ["t ACCESS EXCLUSIVE rewrite no scan no"]);
        assert_eq!(
            facts("ALTER TABLE t ADD COLUMN c int", 10),
            ["t ACCESS EXCLUSIVE rewrite no scan no"]
        );
    }

    #[test]
    fn a_default_rewrites_by_its_volatility_from_pg11() {
        let default = |expr: &str| {
            facts(
                &format!("ALTER TABLE t ADD COLUMN c int DEFAULT {expr}"),
                11,
            )
        };
        assert_eq!(default("now()"), ["t ACCESS EXCLUSIVE rewrite no scan no"]);
        assert_eq!(
            default("gen_random_uuid()"),
            ["t ACCESS EXCLUSIVE rewrite yes scan no"]
        );
        assert_eq!(
            default("my_function()"),
            ["t ACCESS EXCLUSIVE rewrite unless NonVolatileDefault scan no"]
        );
    }

    #[test]
    fn serial_identity_and_stored_generated_columns_rewrite() {
        for sql in [
            "ALTER TABLE t ADD COLUMN c bigserial",
            "ALTER TABLE t ADD COLUMN c bigint GENERATED ALWAYS AS IDENTITY",
            "ALTER TABLE t ADD COLUMN c int GENERATED ALWAYS AS (a * 2) STORED",
        ] {
            assert_eq!(
                facts(sql, 15),
                ["t ACCESS EXCLUSIVE rewrite yes scan no"],
                "{sql}"
            );
        }
    }

    #[test]
    fn a_new_columns_constraints_scan_and_its_foreign_key_only_with_a_default() {
        assert_eq!(
            facts("ALTER TABLE t ADD COLUMN c int UNIQUE", 15),
            ["t ACCESS EXCLUSIVE rewrite no scan yes"]
        );
        assert_eq!(
            facts("ALTER TABLE t ADD COLUMN p int REFERENCES p (id)", 15),
            [
                "t ACCESS EXCLUSIVE rewrite no scan no",
                "p SHARE ROW EXCLUSIVE rewrite no scan no"
            ]
        );
        assert_eq!(
            facts(
                "ALTER TABLE t ADD COLUMN p int DEFAULT 1 REFERENCES p (id)",
                15
            ),
            [
                "t ACCESS EXCLUSIVE rewrite no scan yes",
                "p SHARE ROW EXCLUSIVE rewrite no scan no"
            ]
        );
    }

    #[test]
    fn set_not_null_scans_unless_a_check_proves_it_from_pg12() {
        let sql = "ALTER TABLE t ALTER COLUMN c SET NOT NULL";
        assert_eq!(facts(sql, 11), ["t ACCESS EXCLUSIVE rewrite no scan yes"]);
        assert_eq!(
            facts(sql, 12),
            ["t ACCESS EXCLUSIVE rewrite no scan unless ProvenNotNull"]
        );
    }

    #[test]
    fn a_type_change_rewrites_unless_binary_coercible() {
        assert_eq!(
            facts("ALTER TABLE t ALTER COLUMN c TYPE bigint", 15),
            ["t ACCESS EXCLUSIVE rewrite unless BinaryCoercible scan no"]
        );
    }

    #[test]
    fn constraints_scan_unless_not_valid_and_validate_blocks_no_writes() {
        assert_eq!(
            facts("ALTER TABLE t ADD CONSTRAINT k CHECK (c > 0)", 15),
            ["t ACCESS EXCLUSIVE rewrite no scan yes"]
        );
        assert_eq!(
            facts("ALTER TABLE t ADD CONSTRAINT k CHECK (c > 0) NOT VALID", 15),
            ["t ACCESS EXCLUSIVE rewrite no scan no"]
        );
        assert_eq!(
            facts(
                "ALTER TABLE t ADD CONSTRAINT k FOREIGN KEY (c) REFERENCES p (id)",
                15
            ),
            [
                "t SHARE ROW EXCLUSIVE rewrite no scan yes",
                "p SHARE ROW EXCLUSIVE rewrite no scan no"
            ]
        );
        assert_eq!(
            facts(
                "ALTER TABLE t ADD CONSTRAINT k FOREIGN KEY (c) REFERENCES p (id) NOT VALID",
                15
            ),
            [
                "t SHARE ROW EXCLUSIVE rewrite no scan no",
                "p SHARE ROW EXCLUSIVE rewrite no scan no"
            ]
        );
        assert_eq!(
            facts("ALTER TABLE t VALIDATE CONSTRAINT k", 15),
            ["t SHARE UPDATE EXCLUSIVE rewrite no scan yes"]
        );
    }

    #[test]
    fn keys_build_an_index_unless_using_one() {
        for sql in [
            "ALTER TABLE t ADD CONSTRAINT k UNIQUE (c)",
            "ALTER TABLE t ADD PRIMARY KEY (c)",
            "ALTER TABLE t ADD CONSTRAINT k EXCLUDE USING gist (r WITH &&)",
        ] {
            assert_eq!(
                facts(sql, 15),
                ["t ACCESS EXCLUSIVE rewrite no scan yes"],
                "{sql}"
            );
        }
        assert_eq!(
            facts("ALTER TABLE t ADD CONSTRAINT k UNIQUE USING INDEX i", 15),
            ["t ACCESS EXCLUSIVE rewrite no scan no"]
        );
        // The key columns become NOT NULL: a scan unless they are already.
        assert_eq!(
            facts(
                "ALTER TABLE t ADD CONSTRAINT k PRIMARY KEY USING INDEX i",
                15
            ),
            ["t ACCESS EXCLUSIVE rewrite no scan unless ProvenNotNull"]
        );
    }

    #[test]
    fn attach_partition_takes_share_update_exclusive_on_the_parent_from_pg12() {
        let sql = "ALTER TABLE t ATTACH PARTITION p FOR VALUES IN (1)";
        let partition = "p ACCESS EXCLUSIVE rewrite no scan unless PartitionConstraintImplied";
        let default =
            "the default partition of t ACCESS EXCLUSIVE scan unless PartitionConstraintImplied";
        assert_eq!(
            facts(sql, 11),
            ["t ACCESS EXCLUSIVE rewrite no scan no", partition, default]
        );
        assert_eq!(
            facts(sql, 12),
            [
                partition,
                "t SHARE UPDATE EXCLUSIVE rewrite no scan no",
                default
            ]
        );
        // Attaching the DEFAULT partition itself scans it, and no other.
        assert_eq!(
            facts("ALTER TABLE t ATTACH PARTITION p DEFAULT", 15),
            [partition, "t SHARE UPDATE EXCLUSIVE rewrite no scan no"]
        );
    }

    #[test]
    fn attaching_an_index_partition_locks_the_indexes_only() {
        assert_eq!(
            facts("ALTER INDEX t_c_idx ATTACH PARTITION p_c_idx", 15),
            [
                "index p_c_idx ACCESS EXCLUSIVE rewrite no scan no",
                "index t_c_idx SHARE UPDATE EXCLUSIVE rewrite no scan no"
            ]
        );
    }

    #[test]
    fn detach_partition_concurrently_runs_outside_a_transaction() {
        assert_eq!(
            facts("ALTER TABLE t DETACH PARTITION p", 15),
            [
                "t ACCESS EXCLUSIVE rewrite no scan no",
                "p ACCESS EXCLUSIVE rewrite no scan no",
                "the default partition of t ACCESS EXCLUSIVE scan no"
            ]
        );
        let concurrently = "ALTER TABLE t DETACH PARTITION p CONCURRENTLY";
        assert_eq!(
            facts(concurrently, 15),
            [
                "t SHARE UPDATE EXCLUSIVE rewrite no scan no",
                "p SHARE UPDATE EXCLUSIVE rewrite no scan no",
                "outside a transaction"
            ]
        );
        assert_eq!(
            crate::sql_statement_locks(concurrently, crate::PgVersion::DEFAULT).label,
            "ALTER TABLE ... DETACH PARTITION CONCURRENTLY"
        );
        assert_eq!(
            facts("ALTER TABLE t DETACH PARTITION p FINALIZE", 15),
            ["t SHARE UPDATE EXCLUSIVE rewrite no scan no"]
        );
    }

    #[test]
    fn storage_and_trigger_subcommands_take_weaker_locks_and_some_rewrite() {
        assert_eq!(
            facts("ALTER TABLE t ALTER COLUMN c SET STATISTICS 500", 15),
            ["t SHARE UPDATE EXCLUSIVE rewrite no scan no"]
        );
        assert_eq!(
            facts("ALTER TABLE t SET (fillfactor = 70)", 15),
            ["t SHARE UPDATE EXCLUSIVE rewrite no scan no"]
        );
        assert_eq!(
            facts("ALTER TABLE t DISABLE TRIGGER ALL", 15),
            ["t SHARE ROW EXCLUSIVE rewrite no scan no"]
        );
        for sql in [
            "ALTER TABLE t SET TABLESPACE s",
            "ALTER TABLE t SET LOGGED",
            "ALTER TABLE t SET UNLOGGED",
        ] {
            assert_eq!(
                facts(sql, 15),
                ["t ACCESS EXCLUSIVE rewrite yes scan no"],
                "{sql}"
            );
        }
        for sql in [
            "ALTER TABLE t ALTER COLUMN c DROP NOT NULL",
            "ALTER TABLE t ALTER COLUMN c SET DEFAULT 0",
            "ALTER TABLE t REPLICA IDENTITY NOTHING",
            "ALTER TABLE t REPLICA IDENTITY FULL",
        ] {
            assert_eq!(
                facts(sql, 15),
                ["t ACCESS EXCLUSIVE rewrite no scan no"],
                "{sql}"
            );
        }
    }

    #[test]
    fn dropping_a_column_or_constraint_reaches_a_foreign_keys_referenced_table() {
        // A foreign key dropped with its column or by name: its referenced table gets
        // ACCESS EXCLUSIVE too (lint resolves which with the keys it knows).
        assert_eq!(
            facts("ALTER TABLE t DROP COLUMN c", 15),
            [
                "t ACCESS EXCLUSIVE rewrite no scan no",
                "referenced by the dropped keys of t (Column(\"c\"))"
            ]
        );
        for k in ["k", "t_pkey"] {
            assert_eq!(
                facts(&format!("ALTER TABLE t DROP CONSTRAINT {k}"), 15),
                [
                    "t ACCESS EXCLUSIVE rewrite no scan no".to_string(),
                    format!("referenced by the dropped keys of t (Constraint(\"{k}\"))")
                ]
            );
        }
    }

    #[test]
    fn dropping_a_column_or_constraint_with_cascade_reaches_its_dependents() {
        assert_eq!(
            facts("ALTER TABLE t DROP COLUMN c CASCADE", 15),
            [
                "t ACCESS EXCLUSIVE rewrite no scan no",
                "referenced by the dropped keys of t (Column(\"c\"))",
                "cascades"
            ]
        );
        assert_eq!(
            facts("ALTER TABLE t DROP CONSTRAINT t_pkey CASCADE", 15),
            [
                "t ACCESS EXCLUSIVE rewrite no scan no",
                "referenced by the dropped keys of t (Constraint(\"t_pkey\"))",
                "cascades"
            ]
        );
    }

    #[test]
    fn a_multi_command_alter_takes_the_strictest_lock_and_every_cost() {
        assert_eq!(
            facts(
                "ALTER TABLE t ALTER COLUMN a SET STATISTICS 100, ADD COLUMN c int",
                15
            ),
            ["t ACCESS EXCLUSIVE rewrite no scan no"]
        );
        assert_eq!(
            facts(
                "ALTER TABLE t ALTER COLUMN a TYPE bigint, ADD CONSTRAINT k CHECK (a > 0)",
                15
            ),
            ["t ACCESS EXCLUSIVE rewrite unless BinaryCoercible scan yes"]
        );
    }

    #[test]
    fn renaming_an_index_takes_share_update_exclusive_from_pg12() {
        assert_eq!(
            facts("ALTER INDEX i RENAME TO j", 11),
            ["index i ACCESS EXCLUSIVE rewrite no scan no"]
        );
        assert_eq!(
            facts("ALTER INDEX i RENAME TO j", 12),
            ["index i SHARE UPDATE EXCLUSIVE rewrite no scan no"]
        );
        for sql in [
            "ALTER TABLE t RENAME TO u",
            "ALTER TABLE t RENAME COLUMN c TO d",
        ] {
            assert_eq!(
                facts(sql, 12),
                ["t ACCESS EXCLUSIVE rewrite no scan no"],
                "{sql}"
            );
        }
        assert_eq!(
            facts("ALTER TABLE t SET SCHEMA s", 15),
            ["t ACCESS EXCLUSIVE rewrite no scan no"]
        );
    }
}
