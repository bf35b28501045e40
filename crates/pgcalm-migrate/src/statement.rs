//! What a statement is, from its parse tree: which ones cannot run in a transaction,
//! which only take SHARE UPDATE EXCLUSIVE (and so get `statement_timeout = 0`), which
//! build an index (progress bar, invalid-index repair), and how a resume tells whether
//! one that ran outside a transaction completed before its runner died.

use pg_query::NodeEnum;
use pgcalm_lint::PgVersion;
use pgcalm_lint::{has_option, statement_locks};
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
    /// A `DO` block whose body says COMMIT or ROLLBACK (batched backfills): PostgreSQL
    /// refuses those inside a transaction block (2D000), so in a `transaction:false`
    /// section it runs on its own, like the statements that need no transaction.
    pub commits_itself: bool,
    /// The index it builds, if it is CREATE INDEX or REINDEX.
    pub index_build: Option<IndexBuild>,
    /// How a resume tells whether it completed, when it ran outside a transaction and
    /// its runner died (inside one, its journal entry commits with it).
    pub recheck: Recheck,
}

/// How a resume finds out whether a statement that ran outside a transaction (it is
/// in flight in the journal) completed before its runner died.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(tag = "check", content = "index", rename_all = "snake_case")]
pub enum Recheck {
    /// Nothing in the database tells: resume stops and asks (`--assume-done` /
    /// `--rerun`).
    #[default]
    Unknown,
    /// Running it again does no harm: VACUUM, REINDEX, CLUSTER, ALTER SYSTEM, `DROP ...
    /// IF EXISTS`, `ADD VALUE IF NOT EXISTS`.
    Rerun,
    /// Done when this index exists and is valid (a named CREATE INDEX; an INVALID one is
    /// dropped and built again).
    IndexValid(String),
    /// Done when this index no longer exists (DROP INDEX without IF EXISTS).
    IndexGone(String),
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
/// takes SHARE UPDATE EXCLUSIVE come from the lock table (`pgcalm_lint::statement_locks`), which
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
    let recheck = match node {
        NodeEnum::IndexStmt(_) => match &index_build {
            Some(IndexBuild {
                index: Some(name), ..
            }) => Recheck::IndexValid(name.clone()),
            _ => Recheck::Unknown,
        },
        NodeEnum::ReindexStmt(_)
        | NodeEnum::VacuumStmt(_)
        | NodeEnum::ClusterStmt(_)
        | NodeEnum::AlterSystemStmt(_) => Recheck::Rerun,
        NodeEnum::DropStmt(d) if d.missing_ok => Recheck::Rerun,
        NodeEnum::DropStmt(d)
            if pg_query::protobuf::ObjectType::try_from(d.remove_type)
                == Ok(pg_query::protobuf::ObjectType::ObjectIndex)
                && d.objects.len() == 1 =>
        {
            match d.objects[0].node.as_ref() {
                Some(NodeEnum::List(l)) => qualified_name(&l.items)
                    .map(Recheck::IndexGone)
                    .unwrap_or_default(),
                _ => Recheck::Unknown,
            }
        }
        NodeEnum::AlterEnumStmt(e) if e.skip_if_new_val_exists => Recheck::Rerun,
        _ => Recheck::Unknown,
    };
    StatementKind {
        recheck,
        commits_itself: matches!(node, NodeEnum::DoStmt(d) if do_body_commits(d)),
        needs_no_transaction: locks.outside_transaction,
        share_update_exclusive_only: locks.share_update_exclusive_only(),
        transaction_control: locks.transaction_control,
        index_build,
        label: locks.label,
    }
}

/// Whether a `DO` block's body has the word COMMIT or ROLLBACK (a comment or string
/// saying it too only makes the runner send the block on its own, as before).
fn do_body_commits(d: &pg_query::protobuf::DoStmt) -> bool {
    d.args.iter().any(|a| match a.node.as_ref() {
        Some(NodeEnum::DefElem(e)) if e.defname == "as" => {
            match e.arg.as_deref().and_then(|n| n.node.as_ref()) {
                Some(NodeEnum::String(body)) => body
                    .sval
                    .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
                    .any(|w| {
                        w.eq_ignore_ascii_case("commit") || w.eq_ignore_ascii_case("rollback")
                    }),
                _ => false,
            }
        }
        _ => false,
    })
}

/// `schema.name` from a parse tree's list of names, quoted where needed.
fn qualified_name(items: &[pg_query::Node]) -> Option<String> {
    let parts: Option<Vec<String>> = items
        .iter()
        .map(|n| match n.node.as_ref() {
            Some(NodeEnum::String(s)) => Some(quote(&s.sval)),
            _ => None,
        })
        .collect();
    parts.filter(|p| !p.is_empty()).map(|p| p.join("."))
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

    #[test]
    fn a_do_block_that_commits_is_told_from_one_that_does_not() {
        assert!(kind("DO $$ BEGIN UPDATE t SET a = 1; COMMIT; END $$").commits_itself);
        assert!(kind("DO LANGUAGE plpgsql $x$ BEGIN rollback; END $x$").commits_itself);
        assert!(!kind("DO $$ BEGIN UPDATE t SET committed = true; END $$").commits_itself);
        assert!(!kind("UPDATE t SET a = 1").commits_itself);
    }

    #[test]
    fn a_resume_knows_which_statements_it_can_check_or_safely_run_again() {
        let check = |sql| kind(sql).recheck;
        assert_eq!(
            check("CREATE INDEX CONCURRENTLY i ON s.t (a)"),
            Recheck::IndexValid("s.i".into())
        );
        assert_eq!(
            check("DROP INDEX CONCURRENTLY \"Odd\".i"),
            Recheck::IndexGone("\"Odd\".i".into())
        );
        for sql in [
            "DROP INDEX CONCURRENTLY IF EXISTS i",
            "REINDEX INDEX CONCURRENTLY i",
            "VACUUM (ANALYZE) t",
            "ALTER TYPE mood ADD VALUE IF NOT EXISTS 'meh'",
        ] {
            assert_eq!(check(sql), Recheck::Rerun, "{sql}");
        }
        for sql in [
            // A second run would build a second index.
            "CREATE INDEX CONCURRENTLY ON t (a)",
            "ALTER TYPE mood ADD VALUE 'meh'",
            "ALTER TABLE p DETACH PARTITION c CONCURRENTLY",
            "UPDATE t SET c = c + 1",
        ] {
            assert_eq!(check(sql), Recheck::Unknown, "{sql}");
        }
    }
}
