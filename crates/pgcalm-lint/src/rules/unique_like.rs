//! Shared by `adding-unique-constraint` and `adding-primary-key` (not a rule): both
//! build a unique index under ACCESS EXCLUSIVE, and both have the same recipe.

use pg_query::NodeEnum;
use pg_query::protobuf::{AlterTableType, ConstrType, Constraint};

use crate::engine::{Cx, Violation};
use crate::rules::recipe::{Fix, and_list, edited_alter, outside_this_transaction};
use crate::rules::{added_constraint, alter_existing_table, ident, not_null_check_recipe, rel};
use crate::unit::string_list;

/// Which key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyKind {
    Unique,
    PrimaryKey,
}

impl KeyKind {
    fn contype(self) -> ConstrType {
        match self {
            KeyKind::Unique => ConstrType::ConstrUnique,
            KeyKind::PrimaryKey => ConstrType::ConstrPrimary,
        }
    }

    fn sql(self) -> &'static str {
        match self {
            KeyKind::Unique => "UNIQUE",
            KeyKind::PrimaryKey => "PRIMARY KEY",
        }
    }
}

/// One key the statement adds with an index build: its constraint, and the new column it
/// is declared on (`ADD COLUMN c int UNIQUE`).
struct Key<'a> {
    constraint: &'a Constraint,
    new_column: Option<String>,
}

impl Key<'_> {
    /// Its columns.
    fn columns(&self) -> Vec<String> {
        match &self.new_column {
            Some(c) => vec![c.clone()],
            None => string_list(&self.constraint.keys),
        }
    }

    /// Its name: as written, or the one PostgreSQL generates.
    fn name(&self, table: &crate::RelName, kind: KeyKind) -> String {
        if !self.constraint.conname.is_empty() {
            return self.constraint.conname.clone();
        }
        match kind {
            KeyKind::PrimaryKey => format!("{}_pkey", table.name),
            KeyKind::Unique => format!("{}_{}_key", table.name, self.columns().join("_")),
        }
    }
}

/// Whether a constraint node is the key kind built with an index (not `USING INDEX`).
fn builds_index(c: &Constraint, kind: KeyKind) -> bool {
    c.contype == kind.contype() as i32 && c.indexname.is_empty()
}

/// Findings for `ADD <key>` without `USING INDEX` on an existing table: one per
/// statement, however many keys it adds.
pub(crate) fn check_key(cx: &Cx<'_>, kind: KeyKind) -> Vec<Violation> {
    let Some((table, cmds, lock)) = alter_existing_table(cx) else {
        return Vec::new();
    };
    let mut keys = Vec::new();
    // Constraints the statement drops: with a new primary key added, a key swap.
    let mut dropped: Vec<&str> = Vec::new();
    for (subtype, cmd) in cmds {
        match subtype {
            AlterTableType::AtDropConstraint => dropped.push(&cmd.name),
            AlterTableType::AtAddConstraint => {
                if let Some(c) = added_constraint(cmd).filter(|c| builds_index(c, kind)) {
                    keys.push(Key {
                        constraint: c,
                        new_column: None,
                    });
                }
            }
            AlterTableType::AtAddColumn => {
                let Some(NodeEnum::ColumnDef(col)) =
                    cmd.def.as_deref().and_then(|d| d.node.as_ref())
                else {
                    continue;
                };
                for c in &col.constraints {
                    if let Some(NodeEnum::Constraint(c)) = &c.node
                        && builds_index(c, kind)
                    {
                        keys.push(Key {
                            constraint: c,
                            new_column: Some(col.colname.clone()),
                        });
                    }
                }
            }
            _ => {}
        }
    }
    if keys.is_empty() {
        return Vec::new();
    }
    let what = kind.sql();
    let not_null_note = if kind == KeyKind::PrimaryKey {
        " The key columns must be NOT NULL already (see primary-key-using-index-nullable)."
    } else {
        ""
    };
    let indexes = if keys.len() == 1 {
        "a unique index".to_string()
    } else {
        format!("{} unique indexes", keys.len())
    };
    let mut v = Violation::new(format!(
        "ADD {what} builds {indexes} on {table} while holding {}: {} wait for the whole build",
        lock.mode,
        lock.blocks()
    ))
    .lock(lock);
    let new_columns: Vec<String> = keys.iter().filter_map(|k| k.new_column.clone()).collect();
    let mut help = if new_columns.is_empty() {
        format!(
            "build the index first with CREATE UNIQUE INDEX CONCURRENTLY (reads and writes go \
             on; outside a transaction), then attach it with ADD CONSTRAINT ... {what} USING \
             INDEX, which only takes a short lock.{not_null_note}"
        )
    } else {
        format!(
            "add the column without {what} first (nullable, or with a constant default), then \
             CREATE UNIQUE INDEX CONCURRENTLY and ADD CONSTRAINT ... {what} USING INDEX.\
             {not_null_note} (column {})",
            and_list(&new_columns)
        )
    };
    if cx.state.partitioned(table) == Some(true) {
        help = format!(
            "{table} is partitioned: PostgreSQL builds no index on it CONCURRENTLY and attaches \
             none to it with USING INDEX. Build the index ON ONLY {table}, then CREATE UNIQUE \
             INDEX CONCURRENTLY on each partition and ALTER INDEX ... ATTACH PARTITION each; the \
             {what} constraint itself still takes the lock"
        );
        return vec![v.help(help)];
    }
    if kind == KeyKind::PrimaryKey && !dropped.is_empty() {
        // Split in two, the old key would go first and the table be without one (no
        // replica identity: logical replication stops) until the new one is attached.
        let key = &keys[0];
        let name = key.name(table, kind);
        let t = rel(table);
        help.push_str(&format!(
            " The statement swaps the primary key: build the new index first under another \
             name (`CREATE UNIQUE INDEX CONCURRENTLY {new} ON {t} ({cols});`), then swap the \
             keys in one statement, so the table always has one (its replica identity): \
             `ALTER TABLE {t} {drops}, ADD CONSTRAINT {name} PRIMARY KEY USING INDEX {new};` (its other subcommands in \
             a statement of their own)",
            new = ident(&format!("{}_new", name)),
            cols = key
                .columns()
                .iter()
                .map(|c| ident(c))
                .collect::<Vec<_>>()
                .join(", "),
            drops = dropped
                .iter()
                .map(|d| format!("DROP CONSTRAINT {}", ident(d)))
                .collect::<Vec<_>>()
                .join(", "),
            name = ident(&name),
        ));
        return vec![v.help(help)];
    }
    match recipe(cx, table, kind, &keys) {
        Some((index_sql, attach_sql)) => match outside_this_transaction(cx) {
            // CONCURRENTLY cannot run here: say where it goes, and fix nothing in place.
            Some(place) => {
                help.push_str(&format!(
                    " This file runs in one transaction, where CONCURRENTLY fails (25001): \
                     build the index in {place}: `{}`; then, here or later: `{}`",
                    index_sql.replace('\n', " "),
                    attach_sql.replace('\n', " ")
                ));
            }
            None => {
                v = v.fix(format!("{index_sql}\n{attach_sql}"));
            }
        },
        None => {
            if let Some(place) = outside_this_transaction(cx) {
                help.push_str(&format!(
                    " This file runs in one transaction, where CONCURRENTLY fails (25001): \
                     the index build goes in {place}"
                ));
            }
        }
    }
    vec![v.help(help)]
}

/// The safe form as (what builds the indexes, what attaches them): the statement's other
/// subcommands (and its new columns, without the key), `CREATE UNIQUE INDEX
/// CONCURRENTLY` per key, then one `ADD CONSTRAINT ... USING INDEX` per key. For a
/// primary key, columns not known NOT NULL are proven first by a validated CHECK
/// (PostgreSQL 12+). `None` when there is no such form (a new primary-key column, which
/// is empty until filled; storage options lint does not copy; before PostgreSQL 12 a
/// nullable key column).
fn recipe(
    cx: &Cx<'_>,
    table: &crate::RelName,
    kind: KeyKind,
    keys: &[Key<'_>],
) -> Option<(String, String)> {
    if keys.iter().any(|k| {
        (kind == KeyKind::PrimaryKey && k.new_column.is_some())
            || !k.constraint.options.is_empty()
            || !k.constraint.indexspace.is_empty()
    }) {
        return None;
    }
    let t = rel(table);
    let mut build = Vec::new();
    // The statement without the keys: other subcommands, new columns without the key.
    let rest = edited_alter(cx.node, |cmd| {
        if cmd.subtype == AlterTableType::AtAddConstraint as i32 {
            return !matches!(cmd.def.as_deref().and_then(|d| d.node.as_ref()),
                Some(NodeEnum::Constraint(c)) if builds_index(c, kind));
        }
        if cmd.subtype == AlterTableType::AtAddColumn as i32
            && let Some(NodeEnum::ColumnDef(col)) =
                cmd.def.as_deref_mut().and_then(|d| d.node.as_mut())
        {
            col.constraints.retain(
                |c| !matches!(&c.node, Some(NodeEnum::Constraint(c)) if builds_index(c, kind)),
            );
        }
        true
    });
    build.extend(rest);
    let mut checks = Vec::new();
    let mut attach = Vec::new();
    for key in keys {
        let c = key.constraint;
        let columns = key.columns();
        if kind == KeyKind::PrimaryKey {
            for col in &columns {
                if cx.state.known_not_null(table, col, cx.pg()) {
                    continue;
                }
                if !cx.pg().at_least(12) {
                    return None;
                }
                let (add, validate, drop) = not_null_check_recipe(table, col);
                build.push(add);
                build.push(validate);
                checks.push(drop);
            }
        }
        let name = ident(&key.name(table, kind));
        let cols: Vec<String> = columns.iter().map(|c| ident(c)).collect();
        let include = string_list(&c.including);
        let include = if include.is_empty() {
            String::new()
        } else {
            format!(
                " INCLUDE ({})",
                include
                    .iter()
                    .map(|c| ident(c))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let nulls = if c.nulls_not_distinct {
            " NULLS NOT DISTINCT"
        } else {
            ""
        };
        let deferrable = match (c.deferrable, c.initdeferred) {
            (_, true) => " DEFERRABLE INITIALLY DEFERRED",
            (true, false) => " DEFERRABLE",
            _ => "",
        };
        build.push(format!(
            "CREATE UNIQUE INDEX CONCURRENTLY {name} ON {t} ({}){include}{nulls};",
            cols.join(", ")
        ));
        attach.push(format!(
            "ALTER TABLE {t} ADD CONSTRAINT {name} {} USING INDEX {name}{deferrable};",
            kind.sql()
        ));
    }
    attach.extend(checks);
    let fix = Fix::default().now(build.join("\n")).sql()?;
    Some((fix, attach.join("\n")))
}
