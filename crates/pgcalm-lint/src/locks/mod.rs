//! THE lock table: for a parsed statement and a PostgreSQL major version, the lock each
//! relation it touches gets, what that lock blocks, and whether the statement rewrites
//! or scans the table while holding it. Lint, trace (which compares it with `pg_locks`),
//! the runner's `--plan` and `docs/locks.md` all read it from here.
//!
//! The facts follow PostgreSQL's `AlterTableGetLockLevel` and the lock notes of each
//! command's reference page; where the answer depends on something a parse tree cannot
//! know (the column's old type, the volatility of a user function), the effect is
//! [`Effect::Unless`] with the condition spelled out.
//!
//! [`statement_locks`] sends each kind of statement to the file of its family, which
//! states its facts and tests them: `alter_table.rs` (ALTER TABLE, RENAME, SET SCHEMA),
//! `index.rs` (CREATE INDEX, REINDEX), `create_drop.rs` (CREATE TABLE, DROP, triggers,
//! rules, policies, statistics), `maintenance.rs` (VACUUM, ANALYZE, CLUSTER, REFRESH),
//! `dml.rs` (INSERT, UPDATE, DELETE, MERGE, TRUNCATE, LOCK) and `misc.rs` (COMMENT,
//! ALTER TYPE, ALTER DOMAIN, what runs outside a transaction or cannot be known). The
//! vocabulary of the answers: `mode.rs` (lock modes, the conflict matrix), `relation.rs`
//! (what is locked), `answer.rs` (effects, per-relation and per-statement answers, what
//! is reached through partitions, a domain or CASCADE), `expr.rs` (defaults' volatility,
//! serial types), `label.rs` (statement names).

use std::fmt;

use pg_query::NodeEnum;
use pg_query::protobuf::RangeVar;
use serde::Serialize;

mod alter_table;
mod answer;
mod create_drop;
mod dml;
mod expr;
mod index;
mod label;
mod maintenance;
mod misc;
mod mode;
mod relation;

pub(crate) use answer::ForeignKey;
pub use answer::{
    Condition, DroppedKeys, Effect, ForeignKeyReach, IndirectLock, RelationLock, StatementLocks,
};
pub(crate) use expr::{Volatility, has_default, is_serial_type, volatility};
pub use label::statement_label;
pub use mode::{Blocks, LockMode};
pub use relation::{LockTarget, RelName};

/// A PostgreSQL major version (`15` for 15.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct PgVersion(pub u32);

impl PgVersion {
    /// What lint assumes when nobody says (`--pg-version`).
    pub const DEFAULT: PgVersion = PgVersion(15);

    /// True from major version `major` on.
    pub fn at_least(self, major: u32) -> bool {
        self.0 >= major
    }
}

impl fmt::Display for PgVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PostgreSQL {}", self.0)
    }
}

/// The lock table's answer for one statement's text (its first statement; nothing for
/// text that does not parse).
pub fn sql_statement_locks(sql: &str, pg: PgVersion) -> StatementLocks {
    crate::split::parse_first(sql)
        .map(|n| statement_locks(&n, pg))
        .unwrap_or_default()
}

/// The lock table: what `node` locks on PostgreSQL `pg`.
pub fn statement_locks(node: &NodeEnum, pg: PgVersion) -> StatementLocks {
    let mut s = StatementLocks {
        label: statement_label(node),
        ..StatementLocks::default()
    };
    match node {
        NodeEnum::AlterTableStmt(a) => alter_table::alter_table(&mut s, a, pg),
        NodeEnum::RenameStmt(r) => alter_table::rename(&mut s, r, pg),
        NodeEnum::AlterObjectSchemaStmt(a) => alter_table::set_schema(&mut s, a),
        NodeEnum::IndexStmt(i) => index::create_index(&mut s, i),
        NodeEnum::ReindexStmt(r) => index::reindex(&mut s, r),
        NodeEnum::CreateStmt(c) => create_drop::create_table(&mut s, c),
        NodeEnum::DropStmt(d) => create_drop::drop(&mut s, d),
        NodeEnum::CreateTrigStmt(t) => create_drop::create_trigger(&mut s, t),
        NodeEnum::RuleStmt(r) => create_drop::create_rule(&mut s, r),
        NodeEnum::CreatePolicyStmt(p) => create_drop::policy(&mut s, p.table.as_ref()),
        NodeEnum::AlterPolicyStmt(p) => create_drop::policy(&mut s, p.table.as_ref()),
        NodeEnum::CreateStatsStmt(st) => create_drop::create_statistics(&mut s, st),
        NodeEnum::VacuumStmt(v) => maintenance::vacuum(&mut s, v),
        NodeEnum::ClusterStmt(c) => maintenance::cluster(&mut s, c),
        NodeEnum::RefreshMatViewStmt(r) => maintenance::refresh_materialized_view(&mut s, r),
        NodeEnum::InsertStmt(i) => dml::write(&mut s, i.relation.as_ref()),
        NodeEnum::UpdateStmt(u) => dml::write(&mut s, u.relation.as_ref()),
        NodeEnum::DeleteStmt(d) => dml::write(&mut s, d.relation.as_ref()),
        NodeEnum::MergeStmt(m) => dml::write(&mut s, m.relation.as_ref()),
        NodeEnum::TruncateStmt(t) => dml::truncate(&mut s, t),
        NodeEnum::LockStmt(l) => dml::lock(&mut s, l),
        NodeEnum::CommentStmt(c) => misc::comment(&mut s, c),
        NodeEnum::AlterEnumStmt(e) => misc::alter_enum(&mut s, e, pg),
        NodeEnum::AlterDomainStmt(d) => misc::alter_domain(&mut s, d),
        NodeEnum::DoStmt(_) | NodeEnum::CallStmt(_) => misc::opaque(&mut s),
        NodeEnum::TransactionStmt(_) => misc::transaction_control(&mut s),
        NodeEnum::CreatedbStmt(_)
        | NodeEnum::DropdbStmt(_)
        | NodeEnum::CreateTableSpaceStmt(_)
        | NodeEnum::DropTableSpaceStmt(_)
        | NodeEnum::AlterSystemStmt(_) => misc::outside_transaction(&mut s),
        _ => {}
    }
    s.locks.sort_by_key(|l| std::cmp::Reverse(l.mode));
    s
}

/// The constraints in a list of nodes (a column's, a table's elements).
fn constraints(nodes: &[pg_query::Node]) -> impl Iterator<Item = &pg_query::protobuf::Constraint> {
    nodes.iter().filter_map(|n| match &n.node {
        Some(NodeEnum::Constraint(c)) => Some(c.as_ref()),
        _ => None,
    })
}

/// The relations in a list of nodes (`TRUNCATE a, b`).
fn range_vars(nodes: &[pg_query::Node]) -> impl Iterator<Item = &RangeVar> {
    nodes.iter().filter_map(|n| match &n.node {
        Some(NodeEnum::RangeVar(r)) => Some(r),
        _ => None,
    })
}

/// Whether a `(option, ...)` list holds `name` (`REINDEX (CONCURRENTLY)`, `VACUUM (FULL)`),
/// not switched off with `false`.
pub fn has_option(options: &[pg_query::Node], name: &str) -> bool {
    options.iter().any(|o| match &o.node {
        Some(NodeEnum::DefElem(d)) if d.defname.eq_ignore_ascii_case(name) => {
            !matches!(
                d.arg.as_deref().and_then(|a| a.node.as_ref()),
                Some(NodeEnum::Boolean(b)) if !b.boolval
            ) && !matches!(
                d.arg.as_deref().and_then(|a| a.node.as_ref()),
                Some(NodeEnum::String(s)) if s.sval.eq_ignore_ascii_case("false") || s.sval.eq_ignore_ascii_case("off")
            )
        }
        _ => false,
    })
}

/// The family files' tests state lock facts through [`test_support::facts`].
#[cfg(test)]
pub(crate) mod test_support {
    use super::{Effect, ForeignKeyReach, PgVersion, sql_statement_locks};

    /// The lock table's answer for `sql` on PostgreSQL `major`, one line per relation,
    /// strongest first (`t SHARE rewrite no scan yes`), then what it takes on partitions
    /// (`each partition of t SHARE scan yes`), then the statement's flags (`refused if
    /// partitioned`, `outside a transaction`, `opaque`, `transaction control`,
    /// `cascades`).
    pub(crate) fn facts(sql: &str, major: u32) -> Vec<String> {
        let effect = |e: Effect| match e {
            Effect::No => "no".to_string(),
            Effect::Yes => "yes".to_string(),
            Effect::Unless(c) => format!("unless {c:?}"),
        };
        let s = sql_statement_locks(sql, PgVersion(major));
        assert!(!s.label.is_empty(), "{sql} parses");
        let mut out: Vec<String> = s
            .locks
            .iter()
            .map(|l| {
                format!(
                    "{} {} rewrite {} scan {}",
                    l.target,
                    l.mode,
                    effect(l.rewrite),
                    effect(l.scan)
                )
            })
            .collect();
        for (partitions, which) in [
            (&s.each_partition, "each partition"),
            (&s.default_partition, "the default partition"),
            (&s.tables_using_domain, "every table using"),
        ] {
            if let Some(p) = partitions {
                let of = if which.ends_with("using") { "" } else { " of" };
                out.push(format!(
                    "{which}{of} {} {} scan {}",
                    p.via,
                    p.mode,
                    effect(p.scan)
                ));
            }
        }
        for reach in &s.foreign_keys {
            out.push(match reach {
                ForeignKeyReach::Drops { table, keys } => {
                    format!("referenced by the dropped keys of {table} ({keys:?})")
                }
                ForeignKeyReach::CascadesFrom(t) => format!("referencing {t}"),
            });
        }
        for (flag, name) in [
            (s.refused_if_partitioned, "refused if partitioned"),
            (s.outside_transaction, "outside a transaction"),
            (s.opaque, "opaque"),
            (s.transaction_control, "transaction control"),
            (s.cascades, "cascades"),
        ] {
            if flag {
                out.push(name.to_string());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::facts;
    use super::*;

    #[test]
    fn text_that_does_not_parse_and_statements_without_locks_lock_nothing() {
        assert_eq!(
            sql_statement_locks("CREATE INDEX ON", PgVersion::DEFAULT),
            StatementLocks::default()
        );
        assert_eq!(facts("SELECT 1", 15), Vec::<String>::new());
        assert_eq!(
            facts(
                "CREATE FUNCTION f() RETURNS int AS 'select 1' LANGUAGE sql",
                15
            ),
            Vec::<String>::new()
        );
    }

    #[test]
    fn has_option_reads_switched_off_options_as_absent() {
        let params = |sql: &str| match crate::split::parse_first(sql) {
            Some(NodeEnum::ReindexStmt(r)) => r.params,
            other => panic!("{other:?}"),
        };
        assert!(has_option(
            &params("REINDEX (CONCURRENTLY) INDEX i"),
            "concurrently"
        ));
        assert!(has_option(
            &params("REINDEX (CONCURRENTLY true) INDEX i"),
            "concurrently"
        ));
        assert!(!has_option(
            &params("REINDEX (CONCURRENTLY false) INDEX i"),
            "concurrently"
        ));
        assert!(!has_option(
            &params("REINDEX (CONCURRENTLY off) INDEX i"),
            "concurrently"
        ));
        assert!(!has_option(
            &params("REINDEX (VERBOSE) INDEX i"),
            "concurrently"
        ));
    }
}
