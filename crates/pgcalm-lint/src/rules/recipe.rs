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
use crate::engine::{Cx, deparse};
use crate::rules::{alter_existing_table, ident, rel};
use crate::unit::UnitKind;

/// A fix: the statements that run in place of the flagged one, where its unit runs them
/// (its transaction, or autocommit), then the steps that must wait for something (a
/// deploy, a backfill, a transaction of their own), written as comments so the fix stays
/// runnable as it is.
#[derive(Debug, Clone, Default)]
pub(crate) struct Fix {
    now: Vec<String>,
    later: Vec<String>,
}

impl Fix {
    /// A statement (or several, one per line) that runs in place.
    pub(crate) fn now(mut self, sql: impl Into<String>) -> Fix {
        let sql = sql.into();
        if !sql.is_empty() {
            self.now.push(sql);
        }
        self
    }

    /// Steps for later, after `-- {when}:`, each line commented out.
    pub(crate) fn later(mut self, when: &str, sql: &str) -> Fix {
        if sql.is_empty() {
            return self;
        }
        self.later.push(format!("-- {when}:"));
        for line in sql.lines() {
            self.later.push(if line.starts_with("--") {
                line.to_string()
            } else {
                format!("-- {line}")
            });
        }
        self
    }

    /// The SQL, or `None` when nothing can run in place.
    pub(crate) fn sql(self) -> Option<String> {
        if self.now.is_empty() {
            return None;
        }
        let mut out = self.now;
        out.extend(self.later);
        Some(out.join("\n"))
    }
}

/// Where a statement that cannot run inside this unit's transaction (CONCURRENTLY) has to
/// go: `None` when the unit does not run it in a transaction.
pub(crate) fn outside_this_transaction(cx: &Cx<'_>) -> Option<&'static str> {
    if !cx.state.in_transaction {
        return None;
    }
    if cx.body.is_some() {
        return Some("a statement of its own, outside any DO block or function");
    }
    Some(match cx.kind {
        UnitKind::Migration { .. } => {
            "a migration of its own whose section says `-- migrate:up transaction:false`"
        }
        UnitKind::PlainSql if cx.options.assume_in_transaction => {
            "a migration of its own that its tool runs without a transaction (goose `-- +goose \
             NO TRANSACTION`, dbmate `transaction:false`, Diesel `run_in_transaction = false`, \
             Flyway `executeInTransaction=false`; Prisma and golang-migrate run a file that \
             holds one statement on its own)"
        }
        UnitKind::PlainSql if cx.state.simple_query.is_some_and(|n| n > 1) => {
            "a query of its own (here the tool sends it with other statements in one query,              one implicit transaction; for goose: alone in its `-- +goose StatementBegin` block,              or outside any)"
        }
        UnitKind::PlainSql => "a statement of its own after COMMIT, outside the transaction block",
    })
}

/// When a step that needs a transaction of its own (VALIDATE after `ADD ... NOT VALID`,
/// which would otherwise scan under the ADD's lock) runs, for the fix's comments.
pub(crate) fn in_a_later_transaction(cx: &Cx<'_>) -> &'static str {
    match cx.kind {
        UnitKind::PlainSql if !cx.options.assume_in_transaction => {
            "after COMMIT, in a transaction of its own"
        }
        _ => "in a later migration (a transaction of its own)",
    }
}

/// The `ALTER TABLE` statement with its subcommands edited (`edit` returns false to drop
/// one), as SQL with its `;`; `None` when no subcommand is left.
pub(crate) fn edited_alter(
    node: &NodeEnum,
    mut edit: impl FnMut(&mut AlterTableCmd) -> bool,
) -> Option<String> {
    let mut node = node.clone();
    let NodeEnum::AlterTableStmt(a) = &mut node else {
        return None;
    };
    a.cmds.retain_mut(|c| match &mut c.node {
        Some(NodeEnum::AlterTableCmd(cmd)) => edit(cmd),
        _ => true,
    });
    if a.cmds.is_empty() {
        return None;
    }
    deparse(node).map(|sql| format!("{sql};"))
}

/// Removes a column definition's constraints of the given kinds (and `NOT NULL` when
/// `ConstrNotnull` is one of them).
pub(crate) fn strip_constraints(col: &mut ColumnDef, kinds: &[ConstrType]) {
    col.constraints.retain(|n| match &n.node {
        Some(NodeEnum::Constraint(c)) => !kinds.iter().any(|k| c.contype == *k as i32),
        _ => true,
    });
    if kinds.contains(&ConstrType::ConstrNotnull) {
        col.is_not_null = false;
    }
    if kinds.contains(&ConstrType::ConstrDefault) {
        col.raw_default = None;
    }
}

/// The steps that make columns NOT NULL once they are filled, for a fix's comments:
/// the CHECK way from PostgreSQL 12 (no long lock), a validated CHECK kept instead before.
pub(crate) fn not_null_steps(table: &RelName, columns: &[&str], pg: crate::PgVersion) -> String {
    let mut out = Vec::new();
    for column in columns {
        let (add, validate, drop) = super::not_null_check_recipe(table, column);
        if pg.at_least(12) {
            out.push(format!(
                "{add}\n{validate}\nALTER TABLE {} ALTER COLUMN {} SET NOT NULL;\n{drop}",
                rel(table),
                ident(column)
            ));
        } else {
            out.push(format!(
                "-- (before PostgreSQL 12 SET NOT NULL always scans: keep the validated CHECK)\n{add}\n{validate}"
            ));
        }
    }
    out.join("\n")
}

/// Rows per batch in the backfills the fixes print (strong_migrations uses 10k).
pub(crate) const BATCH: u32 = 10_000;

/// The `ADD COLUMN` definitions of an `ALTER TABLE` on an existing table that `flagged`
/// picks, with the table and the statement's lock on it (`None` when it picks none).
pub(crate) fn added_columns<'a>(
    cx: &Cx<'a>,
    flagged: impl Fn(&ColumnDef) -> bool,
) -> Option<(RelName, Vec<&'a ColumnDef>, &'a crate::RelationLock)> {
    let (table, cmds, lock) = alter_existing_table(cx)?;
    let columns: Vec<&ColumnDef> = cmds
        .iter()
        .filter(|(t, _)| *t == AlterTableType::AtAddColumn)
        .filter_map(|(_, cmd)| column_def(cmd))
        .filter(|col| flagged(col))
        .collect();
    (!columns.is_empty()).then_some((table.clone(), columns, lock))
}

/// The statement with the flagged `ADD COLUMN` definitions edited (the other subcommands
/// as written), for a fix.
pub(crate) fn with_added_columns_edited(
    node: &NodeEnum,
    flagged: &[&ColumnDef],
    mut edit: impl FnMut(&mut ColumnDef),
) -> Option<String> {
    edited_alter(node, |cmd| {
        if cmd.subtype == AlterTableType::AtAddColumn as i32
            && let Some(NodeEnum::ColumnDef(col)) =
                cmd.def.as_deref_mut().and_then(|d| d.node.as_mut())
            && flagged.iter().any(|f| f.colname == col.colname)
        {
            edit(col);
        }
        true
    })
}

/// `a`, `a and b`, `a, b and c`.
pub(crate) fn and_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
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

/// A type as SQL (`varchar(255)`, `bigint`), by deparsing `SELECT NULL::<type>`, once
/// per type: a file names the same few types again and again, and each deparse is a
/// round trip through PostgreSQL's deparser.
pub(crate) fn type_sql(t: &TypeName) -> String {
    thread_local! {
        static SEEN: std::cell::RefCell<HashMap<Vec<u8>, String>> = Default::default();
    }
    // The type without where it was written: the same type at another place is the same
    // SQL.
    let mut key = t.clone();
    key.location = 0;
    for m in &mut key.typmods {
        if let Some(NodeEnum::AConst(c)) = &mut m.node {
            c.location = 0;
        }
    }
    let key = prost::Message::encode_to_vec(&key);
    if let Some(sql) = SEEN.with_borrow(|seen| seen.get(&key).cloned()) {
        return sql;
    }
    let sql = deparsed_type(t);
    SEEN.with_borrow_mut(|seen| {
        if seen.len() >= TEMPLATES_KEPT {
            seen.clear();
        }
        seen.insert(key, sql.clone());
    });
    sql
}

/// [`type_sql`], uncached.
fn deparsed_type(t: &TypeName) -> String {
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

/// A `SELECT` parsed from a template, to be edited and deparsed.
fn template_select(sql: &str) -> Option<pg_query::protobuf::SelectStmt> {
    match template(sql)? {
        NodeEnum::SelectStmt(s) => Some(*s),
        _ => None,
    }
}

/// Templates kept parsed, at most: their texts are a few fixed ones and one per key
/// or type a file's fixes name, so a file of many distinct names keeps memory flat.
const TEMPLATES_KEPT: usize = 256;

/// The first statement of `sql`, parsed once per template text (fixes are built for
/// every finding, and parsing dominates their cost).
pub(crate) fn template(sql: &str) -> Option<NodeEnum> {
    static PARSED: OnceLock<Mutex<HashMap<String, Option<NodeEnum>>>> = OnceLock::new();
    let cache = PARSED.get_or_init(Default::default);
    if let Some(parsed) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(sql) {
        return parsed.clone();
    }
    // Parsed without the lock held (a parse may hop to the parse thread).
    let parsed = crate::split::parse_first(sql);
    let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
    if cache.len() >= TEMPLATES_KEPT {
        cache.clear();
    }
    cache.insert(sql.to_string(), parsed.clone());
    parsed
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

/// The WHERE condition of a batch by physical row: `ctid = ANY (ARRAY(SELECT ctid FROM
/// <from> WHERE <rows> LIMIT n))`, `from` being the table as SQL (with its alias), `rows`
/// the rows still to change. A loop of it ends when `rows` no longer holds for a changed
/// row.
pub(crate) fn ctid_batch_condition(
    from: &str,
    rows: Option<pg_query::Node>,
) -> Option<pg_query::Node> {
    let mut inner = template_select(&format!("SELECT ctid FROM {from} LIMIT {BATCH}"))?;
    inner.where_clause = rows.map(Box::new);
    let inner = deparse(NodeEnum::SelectStmt(Box::new(inner)))?;
    match template(&format!("SELECT 1 WHERE ctid = ANY (ARRAY({inner}))"))? {
        NodeEnum::SelectStmt(s) => s.where_clause.map(|w| *w),
        _ => None,
    }
}

/// The comment that heads every batched backfill by physical row in a fix.
pub(crate) fn ctid_batches_comment() -> String {
    format!(
        "-- in batches of {BATCH} rows (the key's type is not known: by physical row), each \
         batch its own transaction, until it changes none:"
    )
}

/// The comment that heads every batched backfill in a fix.
pub(crate) fn batches_comment() -> String {
    format!(
        "-- backfill in batches of {BATCH} rows by primary key (id here), each batch its own \
         transaction, until max(id):"
    )
}

/// Whether lint knows the table's `id` column to be an integer (declared in the unit or
/// the schema): only then can a backfill batch by `id` ranges.
pub(crate) fn integer_id(cx: &Cx<'_>, table: &RelName) -> bool {
    cx.state
        .table(table)
        .and_then(|t| t.column("id"))
        .is_some_and(|c| {
            matches!(
                c.type_name.as_str(),
                "int2"
                    | "int4"
                    | "int8"
                    | "smallint"
                    | "integer"
                    | "int"
                    | "bigint"
                    | "smallserial"
                    | "serial"
                    | "bigserial"
                    | "serial2"
                    | "serial4"
                    | "serial8"
            )
        })
}

/// A batched `UPDATE table SET column = value` for a fix's comments: by `id` ranges when
/// the key is known to be an integer (the first batch; the loop goes on to max(id));
/// otherwise by physical row, each batch the next rows whose column is not yet `value`,
/// until it updates none (runnable whatever the key). `value` must be the same for
/// every run (not volatile), else the loop would not end.
pub(crate) fn batched_set(cx: &Cx<'_>, table: &RelName, column: &str, value: &str) -> String {
    let (t, c) = (rel(table), ident(column));
    if integer_id(cx, table) {
        return format!(
            "{}
UPDATE {t} SET {c} = {value} WHERE id >= 1 AND id < {};",
            batches_comment(),
            BATCH + 1
        );
    }
    format!(
        "-- backfill in batches of {BATCH} rows (the key's type is not known: by physical \
         row), each batch its own transaction, until it updates none:\n\
         UPDATE {t} SET {c} = {value} WHERE ctid = ANY (ARRAY(SELECT ctid FROM {t} WHERE {c} \
         IS DISTINCT FROM ({value}) LIMIT {BATCH}));"
    )
}

/// A batched backfill of `column = value` for rows where the column is still NULL (a fix
/// writes it as comments: it is a loop, each batch its own transaction): the first two
/// batches by `id` ranges when lint knows the key is an integer ([`integer_id`]);
/// otherwise by physical row, each batch the next rows still NULL, until it updates none
/// (runnable whatever the key; also when the column being filled is `id` itself). A
/// `stable` value (the same for every run: a generated column's expression, which may
/// be NULL) picks the rows still different from it instead, so the loop ends.
pub(crate) fn backfill(
    cx: &Cx<'_>,
    table: &RelName,
    column: &str,
    value: &str,
    stable: bool,
) -> String {
    let (t, c) = (rel(table), ident(column));
    if column == "id" || !integer_id(cx, table) {
        let left = if stable {
            format!("{c} IS DISTINCT FROM ({value})")
        } else {
            format!("{c} IS NULL")
        };
        return format!(
            "-- in batches of {BATCH} rows, each its own transaction, until it updates none:\n\
             UPDATE {t} SET {c} = {value} WHERE ctid = ANY (ARRAY(SELECT ctid FROM {t} WHERE {left} LIMIT {BATCH}));"
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

/// The way to index a partitioned table without blocking writes, as SQL that runs in
/// place outside a transaction block: the index `ON ONLY` the parent (no build), then per
/// partition `CREATE INDEX CONCURRENTLY` and `ALTER INDEX ... ATTACH PARTITION` (the
/// parent's index is valid once every partition's is attached), after a `lock_timeout`
/// when none is set (the first step takes SHARE on the parent). `None` unless lint knows
/// every partition (it saw the parent's `PARTITION BY`, in the unit or the schema) and
/// there is at least one, or when the index has no name to attach to.
pub(crate) fn per_partition_index(
    cx: &Cx<'_>,
    index: &pg_query::protobuf::IndexStmt,
) -> Option<String> {
    let parent = RelName::from_range_var(index.relation.as_ref()?);
    let t = cx.state.table(&parent)?;
    if !t.partitions_complete || t.partitions.is_empty() || index.idxname.is_empty() {
        return None;
    }
    let mut on_only = index.clone();
    on_only.concurrent = false;
    on_only.relation.as_mut()?.inh = false;
    let mut out = Vec::new();
    // The ON ONLY step takes SHARE on the parent, briefly: it must not queue for long.
    if !cx.is_migration() && !cx.state.lock_timeout_set() {
        out.push("SET lock_timeout = '2s';".to_string());
    }
    out.push(format!(
        "{};",
        deparse(NodeEnum::IndexStmt(Box::new(on_only)))?
    ));
    for p in &t.partitions {
        // `metrics_v_idx` on `metrics_2026` -> `metrics_2026_v_idx`.
        let child = match index.idxname.strip_prefix(&parent.name) {
            Some(rest) if rest.starts_with('_') => format!("{}{rest}", p.name),
            _ => format!("{}_{}", p.name, index.idxname),
        };
        let mut build = index.clone();
        build.concurrent = true;
        build.idxname = child.clone();
        let r = build.relation.as_mut()?;
        r.schemaname = p.schema.clone().unwrap_or_default();
        r.relname = p.name.clone();
        r.inh = true;
        out.push(format!(
            "{};",
            deparse(NodeEnum::IndexStmt(Box::new(build)))?
        ));
        out.push(format!(
            "ALTER INDEX {} ATTACH PARTITION {};",
            rel(&RelName {
                schema: parent.schema.clone(),
                name: index.idxname.clone(),
            }),
            rel(&RelName {
                schema: p.schema.clone(),
                name: child,
            })
        ));
    }
    Some(out.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The type of each column of `CREATE TABLE t (...)`.
    fn column_types(columns: &str) -> Vec<TypeName> {
        let sql = format!("CREATE TABLE t ({columns})");
        let Some(NodeEnum::CreateStmt(c)) = crate::split::parse_first(&sql) else {
            panic!("{sql}");
        };
        c.table_elts
            .iter()
            .filter_map(|e| match &e.node {
                Some(NodeEnum::ColumnDef(d)) => d.type_name.clone(),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_type_is_deparsed_once_and_told_apart_by_its_modifiers() {
        let types = column_types(
            "a varchar(10), b  varchar(10), c varchar(20), d numeric(10, 2), \
             e numeric(10, 3), f int[], g int, h \"Mood\", i public.mood",
        );
        let sql: Vec<String> = types.iter().map(type_sql).collect();
        assert_eq!(
            sql,
            [
                "varchar(10)",
                "varchar(10)",
                "varchar(20)",
                "numeric(10, 2)",
                "numeric(10, 3)",
                "int[]",
                "int",
                "\"Mood\"",
                "public.mood"
            ]
        );
        // The same answers again (from what was kept), and as uncached.
        for (t, s) in types.iter().zip(&sql) {
            assert_eq!(&type_sql(t), s);
            assert_eq!(&deparsed_type(t), s);
        }
    }
}
