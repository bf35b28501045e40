//! A few rows in every table that exists before the traced migration, so that scans,
//! rewrites and failing NOT NULL additions behave as on a live table. Values come from
//! the column type; a table whose constraints reject them stays empty (and says why).

use pgcalm_pg::catalog::{ColumnState, SchemaSnapshot};
use pgcalm_pg::quote_ident;
use serde::Serialize;
use tokio_postgres::Client;

use crate::tracer::qualified;

/// What seeding did to one table.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Seeded {
    /// Schema-qualified table.
    pub table: String,
    /// Rows inserted.
    pub rows: u64,
    /// Why none were, when the insert failed or a column type has no generator.
    pub skipped: Option<String>,
}

/// An expression of column type `type_name` for row number `i`, or None.
fn value_for(type_name: &str) -> Option<String> {
    let t = type_name.to_ascii_lowercase();
    let cast = |e: &str| Some(format!("({e})::{type_name}"));
    if t == "smallint" {
        cast("i % 32000")
    } else if t.starts_with("integer")
        || t.starts_with("bigint")
        || t.starts_with("numeric")
        || t.starts_with("real")
        || t.starts_with("double")
    {
        cast("i")
    } else if t.starts_with("character") || t == "text" || t == "citext" {
        cast("'v' || i")
    } else if t == "boolean" {
        cast("i % 2 = 0")
    } else if t.starts_with("timestamp") || t == "date" || t.starts_with("time") {
        cast("now()")
    } else if t == "uuid" {
        cast("md5(i::text)")
    } else if t == "json" || t == "jsonb" {
        cast("'{}'")
    } else if t == "bytea" {
        cast("'\\x00'")
    } else {
        None
    }
}

fn insert_sql(table: &str, columns: &[&ColumnState], rows: u64) -> Result<String, String> {
    let mut names = Vec::new();
    let mut values = Vec::new();
    for c in columns.iter().filter(|c| !c.defaulted) {
        match value_for(&c.type_name) {
            Some(v) => {
                names.push(quote_ident(&c.name));
                values.push(v);
            }
            None if !c.not_null => {}
            None => return Err(format!("no value generator for type {}", c.type_name)),
        }
    }
    let target = qualified(table);
    Ok(if names.is_empty() {
        format!("INSERT INTO {target} SELECT FROM generate_series(1, {rows}) i")
    } else {
        format!(
            "INSERT INTO {target} ({}) SELECT {} FROM generate_series(1, {rows}) i",
            names.join(", "),
            values.join(", ")
        )
    })
}

/// Inserts `rows` rows into every ordinary table of `schema` (in creation order, so a
/// referenced table is filled before the tables referencing it). Best effort: a failed
/// insert is reported, not raised.
pub(crate) async fn seed_tables(
    client: &Client,
    schema: &SchemaSnapshot,
    rows: u64,
) -> Vec<Seeded> {
    let mut out = Vec::new();
    for rel in schema.relations.iter().filter(|r| r.kind == 'r') {
        let columns: Vec<&ColumnState> = schema
            .columns
            .iter()
            .filter(|c| c.table_oid == rel.oid)
            .collect();
        let outcome = match insert_sql(&rel.name, &columns, rows) {
            Err(why) => Err(why),
            Ok(sql) => client.execute(&sql, &[]).await.map_err(|e| {
                e.as_db_error()
                    .map_or(e.to_string(), |d| d.message().to_string())
            }),
        };
        out.push(match outcome {
            Ok(n) => Seeded {
                table: rel.name.clone(),
                rows: n,
                skipped: None,
            },
            Err(why) => Seeded {
                table: rel.name.clone(),
                rows: 0,
                skipped: Some(why),
            },
        });
    }
    out
}
