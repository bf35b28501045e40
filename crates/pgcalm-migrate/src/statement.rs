//! What a statement is, from its parse tree: which ones cannot run in a transaction,
//! which only take SHARE UPDATE EXCLUSIVE (and so get `statement_timeout = 0`), and which
//! build an index (progress bar, invalid-index repair).

use pg_query::NodeEnum;
use pgcalm_lint::PgVersion;
use pgcalm_lint::locks::{has_option, statement_locks};
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

/// Classifies one statement's text (its first statement; the default kind for text that
/// does not parse).
pub fn classify_sql(sql: &str) -> StatementKind {
    classify(pgcalm_lint::parse_first(sql).as_ref())
}

/// Classifies a parsed statement. Whether it needs no transaction and whether it only
/// takes SHARE UPDATE EXCLUSIVE come from the lock table (`pgcalm_lint::locks`), which
/// assumes the default PostgreSQL version: files are parsed before a connection exists.
pub fn classify(node: Option<&NodeEnum>) -> StatementKind {
    let Some(node) = node else {
        return StatementKind::default();
    };
    let locks = statement_locks(node, PgVersion::DEFAULT);
    let index_build = match node {
        NodeEnum::IndexStmt(s) => Some(IndexBuild {
            index: (!s.idxname.is_empty()).then(|| match s.relation.as_ref() {
                Some(r) if !r.schemaname.is_empty() => {
                    format!("{}.{}", quote(&r.schemaname), quote(&s.idxname))
                }
                _ => quote(&s.idxname),
            }),
            concurrent: s.concurrent,
            create: true,
        }),
        NodeEnum::ReindexStmt(s) => Some(IndexBuild {
            index: None,
            concurrent: has_option(&s.params, "concurrently"),
            create: false,
        }),
        _ => None,
    };
    StatementKind {
        needs_no_transaction: locks.outside_transaction,
        share_update_exclusive_only: locks.share_update_exclusive_only(),
        transaction_control: locks.transaction_control,
        index_build,
        label: locks.label,
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
