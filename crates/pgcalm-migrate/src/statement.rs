//! What a statement is, from its parse tree: which ones cannot run in a transaction,
//! which only take SHARE UPDATE EXCLUSIVE (and so get `statement_timeout = 0`), and which
//! build an index (progress bar, invalid-index repair).

use pg_query::NodeEnum;
use pg_query::protobuf::{AlterTableType, ObjectType};
use serde::Serialize;

/// The facts about a statement that the runner's policies need.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StatementKind {
    /// Short name for messages: `CREATE INDEX CONCURRENTLY`, `ALTER TABLE`, ...
    pub label: String,
    /// PostgreSQL refuses it inside a transaction block (CONCURRENTLY, VACUUM, ...).
    pub needs_no_transaction: bool,
    /// Takes no lock stronger than SHARE UPDATE EXCLUSIVE, so it never blocks reads or
    /// writes and may run as long as it needs: `statement_timeout = 0`.
    pub share_update_exclusive_only: bool,
    /// BEGIN / COMMIT / ROLLBACK / SAVEPOINT: refused in migration files.
    pub transaction_control: bool,
    /// The index it builds, if it is CREATE INDEX or REINDEX.
    pub index_build: Option<IndexBuild>,
}

/// An index build statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IndexBuild {
    /// Index name as written (schema-qualified when the table is), `None` when unnamed.
    pub index: Option<String>,
    /// CONCURRENTLY.
    pub concurrent: bool,
    /// `CREATE INDEX` (true) or `REINDEX` (false).
    pub create: bool,
}

fn has_def(options: &[pg_query::Node], name: &str) -> bool {
    options.iter().any(
        |o| matches!(&o.node, Some(NodeEnum::DefElem(d)) if d.defname.eq_ignore_ascii_case(name)),
    )
}

/// Classifies a parsed statement.
pub fn classify(node: Option<&NodeEnum>) -> StatementKind {
    let Some(node) = node else {
        return StatementKind::default();
    };
    let mut k = StatementKind {
        label: label_of(node),
        ..StatementKind::default()
    };
    match node {
        NodeEnum::IndexStmt(s) => {
            let index = (!s.idxname.is_empty()).then(|| match s.relation.as_ref() {
                Some(r) if !r.schemaname.is_empty() => {
                    format!("{}.{}", quote(&r.schemaname), quote(&s.idxname))
                }
                _ => quote(&s.idxname),
            });
            k.index_build = Some(IndexBuild {
                index,
                concurrent: s.concurrent,
                create: true,
            });
            if s.concurrent {
                k.needs_no_transaction = true;
                k.share_update_exclusive_only = true;
                k.label = if s.unique {
                    "CREATE UNIQUE INDEX CONCURRENTLY".into()
                } else {
                    "CREATE INDEX CONCURRENTLY".into()
                };
            }
        }
        NodeEnum::ReindexStmt(s) => {
            let concurrent = has_def(&s.params, "concurrently");
            k.index_build = Some(IndexBuild {
                index: None,
                concurrent,
                create: false,
            });
            if concurrent {
                k.needs_no_transaction = true;
                k.share_update_exclusive_only = true;
                k.label = "REINDEX CONCURRENTLY".into();
            }
        }
        NodeEnum::DropStmt(s) if s.concurrent => {
            k.needs_no_transaction = true;
            k.share_update_exclusive_only = true;
            k.label = if s.remove_type == ObjectType::ObjectIndex as i32 {
                "DROP INDEX CONCURRENTLY".into()
            } else {
                "DROP ... CONCURRENTLY".into()
            };
        }
        NodeEnum::AlterTableStmt(s) => {
            let subtypes: Vec<(AlterTableType, bool)> = s
                .cmds
                .iter()
                .filter_map(|c| match &c.node {
                    Some(NodeEnum::AlterTableCmd(cmd)) => {
                        let concurrent = matches!(
                            cmd.def.as_deref().and_then(|d| d.node.as_ref()),
                            Some(NodeEnum::PartitionCmd(p)) if p.concurrent
                        );
                        AlterTableType::try_from(cmd.subtype)
                            .ok()
                            .map(|t| (t, concurrent))
                    }
                    _ => None,
                })
                .collect();
            if !subtypes.is_empty()
                && subtypes
                    .iter()
                    .all(|(t, _)| *t == AlterTableType::AtValidateConstraint)
            {
                k.share_update_exclusive_only = true;
                k.label = "ALTER TABLE ... VALIDATE CONSTRAINT".into();
            }
            if subtypes
                .iter()
                .any(|(t, c)| *t == AlterTableType::AtDetachPartition && *c)
            {
                k.needs_no_transaction = true;
                k.share_update_exclusive_only = subtypes.len() == 1;
                k.label = "ALTER TABLE ... DETACH PARTITION CONCURRENTLY".into();
            }
        }
        NodeEnum::VacuumStmt(s) => {
            if s.is_vacuumcmd {
                k.needs_no_transaction = true;
            }
            k.share_update_exclusive_only = !has_def(&s.options, "full");
        }
        NodeEnum::CreatedbStmt(_)
        | NodeEnum::DropdbStmt(_)
        | NodeEnum::CreateTableSpaceStmt(_)
        | NodeEnum::DropTableSpaceStmt(_)
        | NodeEnum::AlterSystemStmt(_) => {
            k.needs_no_transaction = true;
        }
        NodeEnum::TransactionStmt(_) => {
            k.transaction_control = true;
        }
        _ => {}
    }
    k
}

/// `CreateStmt` -> `CREATE TABLE` etc. for the common statements; a readable fallback
/// for the rest.
fn label_of(node: &NodeEnum) -> String {
    let s = match node {
        NodeEnum::CreateStmt(_) => "CREATE TABLE",
        NodeEnum::IndexStmt(_) => "CREATE INDEX",
        NodeEnum::AlterTableStmt(_) => "ALTER TABLE",
        NodeEnum::DropStmt(_) => "DROP",
        NodeEnum::InsertStmt(_) => "INSERT",
        NodeEnum::UpdateStmt(_) => "UPDATE",
        NodeEnum::DeleteStmt(_) => "DELETE",
        NodeEnum::SelectStmt(_) => "SELECT",
        NodeEnum::ReindexStmt(_) => "REINDEX",
        NodeEnum::VacuumStmt(v) if v.is_vacuumcmd => "VACUUM",
        NodeEnum::VacuumStmt(_) => "ANALYZE",
        NodeEnum::RenameStmt(_) => "ALTER ... RENAME",
        NodeEnum::CreatedbStmt(_) => "CREATE DATABASE",
        NodeEnum::DropdbStmt(_) => "DROP DATABASE",
        NodeEnum::CreateTableSpaceStmt(_) => "CREATE TABLESPACE",
        NodeEnum::DropTableSpaceStmt(_) => "DROP TABLESPACE",
        NodeEnum::AlterSystemStmt(_) => "ALTER SYSTEM",
        NodeEnum::TransactionStmt(t) => {
            use pg_query::protobuf::TransactionStmtKind as K;
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
        _ => "",
    };
    if s.is_empty() {
        // `CreateSeqStmt` -> "CREATE SEQ" is good enough for a message.
        let dbg = format!("{node:?}");
        let name = dbg.split('(').next().unwrap_or("statement");
        name.trim_end_matches("Stmt").to_string()
    } else {
        s.to_string()
    }
}

/// Quotes an identifier only when PostgreSQL would need it.
fn quote(ident: &str) -> String {
    let plain = ident
        .chars()
        .enumerate()
        .all(|(i, c)| c == '_' || c.is_ascii_lowercase() || (i > 0 && c.is_ascii_digit()));
    if plain {
        ident.to_string()
    } else {
        pgcalm_pg::quote_ident(ident)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(sql: &str) -> StatementKind {
        let parsed = pg_query::parse(sql, 0).unwrap();
        classify(
            parsed.protobuf.stmts[0]
                .stmt
                .as_ref()
                .and_then(|n| n.node.as_ref()),
        )
    }

    #[test]
    fn concurrent_builds_need_no_transaction_and_no_statement_timeout() {
        for sql in [
            "CREATE INDEX CONCURRENTLY i ON t (a)",
            "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS i ON t (a)",
            "DROP INDEX CONCURRENTLY IF EXISTS i",
            "REINDEX INDEX CONCURRENTLY i",
            "ALTER TABLE p DETACH PARTITION c CONCURRENTLY",
        ] {
            let k = kind(sql);
            assert!(k.needs_no_transaction, "{sql}");
            assert!(k.share_update_exclusive_only, "{sql}");
        }
    }

    #[test]
    fn validate_constraint_is_share_update_exclusive_but_transactional() {
        let k = kind("ALTER TABLE t VALIDATE CONSTRAINT c");
        assert!(k.share_update_exclusive_only);
        assert!(!k.needs_no_transaction);
        let k = kind("ALTER TABLE t VALIDATE CONSTRAINT c, ADD COLUMN x int");
        assert!(
            !k.share_update_exclusive_only,
            "a mixed ALTER takes ACCESS EXCLUSIVE"
        );
    }

    #[test]
    fn plain_ddl_gets_the_normal_policy() {
        let k = kind("CREATE INDEX i ON s.t (a)");
        assert!(!k.needs_no_transaction && !k.share_update_exclusive_only);
        assert_eq!(k.index_build.unwrap().index.as_deref(), Some("s.i"));
        assert_eq!(kind("CREATE TABLE t (a int)").label, "CREATE TABLE");
        assert!(kind("COMMIT").transaction_control);
        assert_eq!(kind("CREATE SEQUENCE s").label, "CreateSeq");
    }
}
