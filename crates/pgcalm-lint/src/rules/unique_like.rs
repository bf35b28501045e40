//! Shared by `adding-unique-constraint` and `adding-primary-key` (not a rule): both
//! build a unique index under ACCESS EXCLUSIVE, and both have the same recipe.

use pg_query::NodeEnum;
use pg_query::protobuf::{AlterTableType, ConstrType};

use crate::engine::{Cx, Violation};
use crate::rules::{added_constraint, alter_existing_table, ident, rel};
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

/// Findings for `ADD <key>` without `USING INDEX` on an existing table.
pub(crate) fn check_key(cx: &Cx<'_>, kind: KeyKind) -> Vec<Violation> {
    let Some((table, cmds, lock)) = alter_existing_table(cx) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (subtype, cmd) in cmds {
        let (constraint, new_column) = match subtype {
            AlterTableType::AtAddConstraint => match added_constraint(cmd) {
                Some(c) => (c, None),
                None => continue,
            },
            AlterTableType::AtAddColumn => {
                let Some(NodeEnum::ColumnDef(col)) =
                    cmd.def.as_deref().and_then(|d| d.node.as_ref())
                else {
                    continue;
                };
                let found = col.constraints.iter().find_map(|c| match &c.node {
                    Some(NodeEnum::Constraint(c)) if c.contype == kind.contype() as i32 => {
                        Some(c.as_ref())
                    }
                    _ => None,
                });
                match found {
                    Some(c) => (c, Some(col.colname.clone())),
                    None => continue,
                }
            }
            _ => continue,
        };
        if constraint.contype != kind.contype() as i32 || !constraint.indexname.is_empty() {
            continue;
        }
        let what = kind.sql();
        let mut v = Violation::new(format!(
            "ADD {what} builds a unique index on {table} while holding {}: {} wait for the \
             whole build",
            lock.mode,
            lock.blocks()
        ))
        .lock(lock);
        let not_null_note = if kind == KeyKind::PrimaryKey {
            " The key columns must be NOT NULL already (see primary-key-using-index-nullable)."
        } else {
            ""
        };
        if let Some(column) = new_column {
            v = v.help(format!(
                "add the column without {what} first (nullable, or with a constant default), \
                 then CREATE UNIQUE INDEX CONCURRENTLY and ADD CONSTRAINT ... {what} USING \
                 INDEX.{not_null_note} (column {column})"
            ));
        } else {
            let columns = string_list(&constraint.keys);
            let name = if constraint.conname.is_empty() {
                match kind {
                    KeyKind::PrimaryKey => format!("{}_pkey", table.name),
                    KeyKind::Unique => format!("{}_{}_key", table.name, columns.join("_")),
                }
            } else {
                constraint.conname.clone()
            };
            let cols: Vec<String> = columns.iter().map(|c| ident(c)).collect();
            let nulls = if constraint.nulls_not_distinct {
                " NULLS NOT DISTINCT"
            } else {
                ""
            };
            let deferrable = match (constraint.deferrable, constraint.initdeferred) {
                (_, true) => " DEFERRABLE INITIALLY DEFERRED",
                (true, false) => " DEFERRABLE",
                _ => "",
            };
            v = v
                .help(format!(
                    "build the index first with CREATE UNIQUE INDEX CONCURRENTLY (reads and \
                     writes go on; outside a transaction), then attach it with ADD CONSTRAINT \
                     ... {what} USING INDEX, which only takes a short lock.{not_null_note}"
                ))
                .fix(format!(
                    "CREATE UNIQUE INDEX CONCURRENTLY {n} ON {t} ({c}){nulls};\nALTER TABLE {t} \
                     ADD CONSTRAINT {n} {what} USING INDEX {n}{deferrable};",
                    n = ident(&name),
                    t = rel(&table),
                    c = cols.join(", "),
                ));
        }
        out.push(v);
    }
    out
}
