//! A statement's short name for messages (`CREATE INDEX CONCURRENTLY`).

use pg_query::NodeEnum;
use pg_query::protobuf::{AlterTableType, ObjectType, TransactionStmtKind};

use super::has_option;

/// `CreateStmt` -> `CREATE TABLE` etc. for the common statements; a readable fallback
/// for the rest.
pub fn statement_label(node: &NodeEnum) -> String {
    let s = match node {
        NodeEnum::CreateStmt(_) => "CREATE TABLE",
        NodeEnum::IndexStmt(i) => match (i.unique, i.concurrent) {
            (true, true) => "CREATE UNIQUE INDEX CONCURRENTLY",
            (false, true) => "CREATE INDEX CONCURRENTLY",
            _ => "CREATE INDEX",
        },
        NodeEnum::AlterTableStmt(a) => {
            let validate_only = !a.cmds.is_empty()
                && a.cmds.iter().all(|c| {
                    matches!(&c.node, Some(NodeEnum::AlterTableCmd(cmd))
                        if cmd.subtype == AlterTableType::AtValidateConstraint as i32)
                });
            if validate_only {
                "ALTER TABLE ... VALIDATE CONSTRAINT"
            } else {
                "ALTER TABLE"
            }
        }
        NodeEnum::DropStmt(d) if d.concurrent => {
            if d.remove_type == ObjectType::ObjectIndex as i32 {
                "DROP INDEX CONCURRENTLY"
            } else {
                "DROP ... CONCURRENTLY"
            }
        }
        NodeEnum::DropStmt(d) => match ObjectType::try_from(d.remove_type) {
            Ok(ObjectType::ObjectTable) => "DROP TABLE",
            Ok(ObjectType::ObjectIndex) => "DROP INDEX",
            Ok(ObjectType::ObjectView) => "DROP VIEW",
            Ok(ObjectType::ObjectMatview) => "DROP MATERIALIZED VIEW",
            Ok(ObjectType::ObjectSequence) => "DROP SEQUENCE",
            Ok(ObjectType::ObjectSchema) => "DROP SCHEMA",
            Ok(ObjectType::ObjectType) => "DROP TYPE",
            Ok(ObjectType::ObjectDomain) => "DROP DOMAIN",
            Ok(ObjectType::ObjectFunction) => "DROP FUNCTION",
            _ => "DROP",
        },
        NodeEnum::InsertStmt(_) => "INSERT",
        NodeEnum::UpdateStmt(_) => "UPDATE",
        NodeEnum::DeleteStmt(_) => "DELETE",
        NodeEnum::SelectStmt(_) => "SELECT",
        NodeEnum::ReindexStmt(r) if has_option(&r.params, "concurrently") => "REINDEX CONCURRENTLY",
        NodeEnum::ReindexStmt(_) => "REINDEX",
        NodeEnum::VacuumStmt(v) if v.is_vacuumcmd => "VACUUM",
        NodeEnum::VacuumStmt(_) => "ANALYZE",
        NodeEnum::RenameStmt(_) => "ALTER ... RENAME",
        NodeEnum::AlterObjectSchemaStmt(_) => "ALTER ... SET SCHEMA",
        NodeEnum::RefreshMatViewStmt(r) if r.concurrent => "REFRESH MATERIALIZED VIEW CONCURRENTLY",
        NodeEnum::RefreshMatViewStmt(_) => "REFRESH MATERIALIZED VIEW",
        NodeEnum::AlterDomainStmt(_) => "ALTER DOMAIN",
        NodeEnum::AlterEnumStmt(e) if e.old_val.is_empty() => "ALTER TYPE ... ADD VALUE",
        NodeEnum::CreatedbStmt(_) => "CREATE DATABASE",
        NodeEnum::DropdbStmt(_) => "DROP DATABASE",
        NodeEnum::CreateTableSpaceStmt(_) => "CREATE TABLESPACE",
        NodeEnum::DropTableSpaceStmt(_) => "DROP TABLESPACE",
        NodeEnum::AlterSystemStmt(_) => "ALTER SYSTEM",
        NodeEnum::TransactionStmt(t) => {
            use TransactionStmtKind as K;
            match K::try_from(t.kind).unwrap_or(K::Undefined) {
                K::TransStmtBegin | K::TransStmtStart => "BEGIN",
                K::TransStmtCommit => "COMMIT",
                K::TransStmtRollback => "ROLLBACK",
                K::TransStmtSavepoint => "SAVEPOINT",
                K::TransStmtRelease => "RELEASE SAVEPOINT",
                K::TransStmtRollbackTo => "ROLLBACK TO SAVEPOINT",
                _ => "transaction control",
            }
        }
        NodeEnum::DoStmt(_) => "DO",
        NodeEnum::CreateFunctionStmt(_) => "CREATE FUNCTION",
        NodeEnum::VariableSetStmt(_) => "SET",
        NodeEnum::TruncateStmt(_) => "TRUNCATE",
        NodeEnum::ClusterStmt(_) => "CLUSTER",
        NodeEnum::LockStmt(_) => "LOCK",
        NodeEnum::CreateTrigStmt(_) => "CREATE TRIGGER",
        _ => "",
    };
    if s.is_empty() {
        // `CreateSeqStmt(..)` -> "CreateSeq" is good enough for a message. The Debug
        // output stops at its first `(`, so a big tree is not printed for nothing.
        struct VariantName(String);
        impl std::fmt::Write for VariantName {
            fn write_str(&mut self, part: &str) -> std::fmt::Result {
                match part.find('(') {
                    Some(at) => {
                        self.0.push_str(&part[..at]);
                        Err(std::fmt::Error)
                    }
                    None => {
                        self.0.push_str(part);
                        Ok(())
                    }
                }
            }
        }
        let mut name = VariantName(String::new());
        let _ = std::fmt::write(&mut name, format_args!("{node:?}"));
        name.0.trim_end_matches("Stmt").to_string()
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(sql: &str) -> String {
        statement_label(&crate::split::parse_first(sql).expect(sql))
    }

    #[test]
    fn common_statements_have_their_sql_name_and_others_their_node_name() {
        for (sql, expected) in [
            (
                "CREATE UNIQUE INDEX CONCURRENTLY i ON t (c)",
                "CREATE UNIQUE INDEX CONCURRENTLY",
            ),
            ("CREATE INDEX i ON t (c)", "CREATE INDEX"),
            (
                "ALTER TABLE t VALIDATE CONSTRAINT k",
                "ALTER TABLE ... VALIDATE CONSTRAINT",
            ),
            (
                "ALTER TABLE t VALIDATE CONSTRAINT k, ADD COLUMN c int",
                "ALTER TABLE",
            ),
            ("DROP INDEX CONCURRENTLY i", "DROP INDEX CONCURRENTLY"),
            ("DROP MATERIALIZED VIEW v", "DROP MATERIALIZED VIEW"),
            ("REINDEX (CONCURRENTLY) TABLE t", "REINDEX CONCURRENTLY"),
            ("ANALYZE t", "ANALYZE"),
            ("ROLLBACK TO SAVEPOINT a", "ROLLBACK TO SAVEPOINT"),
            ("ALTER TABLE t RENAME TO u", "ALTER ... RENAME"),
            ("ALTER TABLE t SET SCHEMA s", "ALTER ... SET SCHEMA"),
            ("DROP SCHEMA s CASCADE", "DROP SCHEMA"),
            (
                "REFRESH MATERIALIZED VIEW CONCURRENTLY m",
                "REFRESH MATERIALIZED VIEW CONCURRENTLY",
            ),
            ("ALTER DOMAIN d ADD CHECK (VALUE > 0)", "ALTER DOMAIN"),
            ("ALTER TYPE e ADD VALUE 'x'", "ALTER TYPE ... ADD VALUE"),
            ("ALTER TYPE e RENAME VALUE 'x' TO 'y'", "AlterEnum"),
            ("CREATE SEQUENCE s", "CreateSeq"),
            ("GRANT SELECT ON t TO r", "Grant"),
        ] {
            assert_eq!(label(sql), expected, "{sql}");
        }
    }
}
