//! Pieces the expand-and-backfill rules share: the `ALTER TABLE` subcommands on an
//! existing table, SQL text for parse-tree fragments (PostgreSQL's deparser), and the
//! batched backfill their fixes print.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use pg_query::NodeEnum;
use pg_query::protobuf::{
    AlterTableCmd, AlterTableType, ColumnDef, ConstrType, Constraint, TypeName,
};

use crate::RelName;
use crate::engine::{Cx, Violation, deparse};
use crate::rules::{alter_existing_table, ident, rel};

/// Rows per batch in the backfills the fixes print (strong_migrations uses 10k).
pub(crate) const BATCH: u32 = 10_000;

/// The violations `per_column` finds in the `ADD COLUMN` definitions of an `ALTER TABLE`
/// on an existing table, each with the statement's lock on the table.
pub(crate) fn check_added_columns(
    cx: &Cx<'_>,
    per_column: impl Fn(&RelName, &ColumnDef) -> Option<Violation>,
) -> Vec<Violation> {
    let Some((table, cmds, lock)) = alter_existing_table(cx) else {
        return Vec::new();
    };
    cmds.into_iter()
        .filter(|(t, _)| *t == AlterTableType::AtAddColumn)
        .filter_map(|(_, cmd)| column_def(cmd))
        .filter_map(|col| per_column(&table, col))
        .map(|v| v.lock(lock))
        .collect()
}

/// The column definition a subcommand carries (`ADD COLUMN`, `ALTER COLUMN TYPE`).
pub(crate) fn column_def(cmd: &AlterTableCmd) -> Option<&ColumnDef> {
    match cmd.def.as_deref()?.node.as_ref()? {
        NodeEnum::ColumnDef(c) => Some(c),
        _ => None,
    }
}

/// A column's constraints (`DEFAULT`, `NOT NULL`, `GENERATED`...) with their kind.
pub(crate) fn column_constraints(
    col: &ColumnDef,
) -> impl Iterator<Item = (ConstrType, &Constraint)> {
    col.constraints.iter().filter_map(|n| match &n.node {
        Some(NodeEnum::Constraint(c)) => Some((
            ConstrType::try_from(c.contype).unwrap_or(ConstrType::Undefined),
            c.as_ref(),
        )),
        _ => None,
    })
}

/// The column's constraint of one kind.
pub(crate) fn column_constraint(col: &ColumnDef, kind: ConstrType) -> Option<&Constraint> {
    column_constraints(col)
        .find(|(k, _)| *k == kind)
        .map(|(_, c)| c)
}

/// `DEFAULT` expression, unless it is `DEFAULT NULL`.
pub(crate) fn default_expr(col: &ColumnDef) -> Option<&pg_query::Node> {
    let expr = column_constraint(col, ConstrType::ConstrDefault)?
        .raw_expr
        .as_deref()?;
    (!is_null(expr)).then_some(expr)
}

/// Declared `NOT NULL` (or `PRIMARY KEY`).
pub(crate) fn declared_not_null(col: &ColumnDef) -> bool {
    col.is_not_null
        || column_constraints(col)
            .any(|(k, _)| matches!(k, ConstrType::ConstrNotnull | ConstrType::ConstrPrimary))
}

fn is_null(expr: &pg_query::Node) -> bool {
    match expr.node.as_ref() {
        Some(NodeEnum::AConst(c)) => c.isnull,
        Some(NodeEnum::TypeCast(t)) => t.arg.as_deref().is_some_and(is_null),
        _ => false,
    }
}

/// An expression as SQL (`gen_random_uuid()`), by deparsing `SELECT <expr>`.
pub(crate) fn expr_sql(expr: &pg_query::Node) -> String {
    let select = template_select("SELECT 1").map(|mut s| {
        if let Some(NodeEnum::ResTarget(t)) =
            s.target_list.first_mut().and_then(|n| n.node.as_mut())
        {
            t.val = Some(Box::new(expr.clone()));
        }
        s
    });
    select
        .and_then(|s| deparse(NodeEnum::SelectStmt(Box::new(s))))
        .and_then(|sql| sql.strip_prefix("SELECT ").map(str::to_string))
        .unwrap_or_else(|| "<expression>".into())
}

/// A type as SQL (`varchar(255)`, `bigint`), by deparsing `SELECT NULL::<type>`.
pub(crate) fn type_sql(t: &TypeName) -> String {
    let select = template_select("SELECT NULL::int").map(|mut s| {
        if let Some(NodeEnum::ResTarget(r)) =
            s.target_list.first_mut().and_then(|n| n.node.as_mut())
            && let Some(NodeEnum::TypeCast(c)) = r.val.as_mut().and_then(|v| v.node.as_mut())
        {
            c.type_name = Some(t.clone());
        }
        s
    });
    select
        .and_then(|s| deparse(NodeEnum::SelectStmt(Box::new(s))))
        .and_then(|sql| sql.strip_prefix("SELECT NULL::").map(str::to_string))
        .unwrap_or_else(|| crate::unit::type_name(t))
}

/// A `SELECT` parsed from a template (once per template text: fixes are built for
/// every finding, and parsing dominates their cost), to be edited and deparsed.
fn template_select(sql: &str) -> Option<pg_query::protobuf::SelectStmt> {
    static PARSED: OnceLock<Mutex<HashMap<String, Option<NodeEnum>>>> = OnceLock::new();
    let cache = PARSED.get_or_init(Default::default);
    let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
    match cache
        .entry(sql.to_string())
        .or_insert_with(|| template(sql))
    {
        Some(NodeEnum::SelectStmt(s)) => Some(s.as_ref().clone()),
        _ => None,
    }
}

/// The first statement of `sql`, parsed.
pub(crate) fn template(sql: &str) -> Option<NodeEnum> {
    crate::split::parse_first(sql)
}

/// The WHERE condition of the first batch: `id >= 1 AND id < 10001` (the key is
/// assumed to be `id`, qualified as `key` says; the fixes say so).
pub(crate) fn first_batch_condition(key: &str) -> Option<pg_query::Node> {
    match template(&format!(
        "SELECT 1 WHERE {key} >= 1 AND {key} < {}",
        BATCH + 1
    ))? {
        NodeEnum::SelectStmt(s) => s.where_clause.map(|w| *w),
        _ => None,
    }
}

/// The comment that heads every batched backfill in a fix.
pub(crate) fn batches_comment() -> String {
    format!(
        "-- backfill in batches of {BATCH} rows by primary key (id here), each batch its own \
         transaction, until max(id):"
    )
}

/// A batched backfill of `column = value` for rows where the column is still NULL.
pub(crate) fn backfill(table: &RelName, column: &str, value: &str) -> String {
    let (t, c) = (rel(table), ident(column));
    if column == "id" {
        // The column being filled is the usual key: batch by physical row instead.
        return format!(
            "-- backfill in batches of {BATCH} rows, each its own transaction, until it updates none:\n\
             UPDATE {t} SET {c} = {value} WHERE ctid = ANY (ARRAY(SELECT ctid FROM {t} WHERE {c} IS NULL LIMIT {BATCH}));"
        );
    }
    format!(
        "{}\nUPDATE {t} SET {c} = {value} WHERE id >= 1 AND id < {} AND {c} IS NULL;\n\
         UPDATE {t} SET {c} = {value} WHERE id >= {} AND id < {} AND {c} IS NULL;",
        batches_comment(),
        BATCH + 1,
        BATCH + 1,
        2 * BATCH + 1
    )
}

/// The CHECK-assisted `SET NOT NULL` (PostgreSQL 12+), after a backfill.
pub(crate) fn set_not_null_safely(table: &RelName, column: &str) -> String {
    let (add, validate, drop) = super::not_null_check_recipe(table, column);
    format!(
        "{add}\n{validate}\nALTER TABLE {} ALTER COLUMN {} SET NOT NULL;\n{drop}",
        rel(table),
        ident(column)
    )
}
