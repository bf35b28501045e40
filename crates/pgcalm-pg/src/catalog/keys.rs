//! What a batched backfill needs of its table: the primary key (the keyset it walks)
//! and an estimate of its rows (for progress and ETA).

use serde::Serialize;
use tokio_postgres::Client;

use crate::error::PgError;

/// A table's primary key, as the backfill walks it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PrimaryKey {
    /// The table, schema-qualified and quoted (`"public"."large_email"`).
    pub table: String,
    /// Its key columns in key order: (quoted name, type as `format_type` prints it).
    pub columns: Vec<(String, String)>,
}

/// The primary key of `table` (a name as written in SQL, resolved with the session's
/// `search_path`). `Ok(None)` when the table exists without a primary key;
/// [`PgError::Query`] when it does not exist.
pub async fn primary_key(client: &Client, table: &str) -> Result<Option<PrimaryKey>, PgError> {
    let rows = client
        .query(
            "SELECT format('%I.%I', n.nspname, c.relname),
                    quote_ident(a.attname::text),
                    format_type(a.atttypid, a.atttypmod)
               FROM pg_class c
               JOIN pg_namespace n ON n.oid = c.relnamespace
               LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary
               LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY (i.indkey)
              WHERE c.oid = $1::text::regclass
              ORDER BY array_position(i.indkey::int2[], a.attnum)",
            &[&table],
        )
        .await
        .map_err(PgError::query(format!(
            "reading the primary key of table {table}"
        )))?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let columns: Vec<(String, String)> = rows
        .iter()
        .filter_map(|r| {
            Some((
                r.get::<_, Option<String>>(1)?,
                r.get::<_, Option<String>>(2)?,
            ))
        })
        .collect();
    if columns.is_empty() {
        return Ok(None);
    }
    Ok(Some(PrimaryKey {
        table: first.get(0),
        columns,
    }))
}

/// The planner's estimate of `table`'s rows (`pg_class.reltuples`), or, for a table
/// never vacuumed or analyzed, its exact count.
pub async fn estimated_rows(client: &Client, table: &str) -> Result<i64, PgError> {
    let what = || format!("estimating the rows of table {table}");
    let estimate: f32 = client
        .query_one(
            "SELECT reltuples FROM pg_class WHERE oid = $1::text::regclass",
            &[&table],
        )
        .await
        .map_err(PgError::query(what()))?
        .get(0);
    if estimate >= 0.0 {
        return Ok(estimate as i64);
    }
    let count: i64 = client
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .map_err(PgError::query(what()))?
        .get(0);
    Ok(count)
}
