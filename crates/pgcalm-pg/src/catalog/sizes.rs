//! Table sizes for `pgcalm lint --database-url`: the planner's row estimate and the size
//! on disk of each table a migration touches, read in one query.

use tokio_postgres::Client;

use crate::error::PgError;

/// One table's estimated rows and size.
#[derive(Debug, Clone, PartialEq)]
pub struct TableSize {
    /// The name as asked (a `regclass` text: `"public"."Big"`, `"users"`).
    pub name: String,
    /// `pg_class.reltuples`; `None` when the table was never vacuumed or analyzed.
    pub rows: Option<f64>,
    /// `pg_total_relation_size`: heap, indexes and TOAST, in bytes.
    pub bytes: i64,
}

/// The sizes of the tables `names` name (each a `regclass` text, resolved with the
/// session's `search_path`), in one query; names that resolve to nothing are left out.
pub async fn table_sizes(client: &Client, names: &[String]) -> Result<Vec<TableSize>, PgError> {
    let rows = client
        .query(
            "SELECT n, c.reltuples::float8, pg_total_relation_size(c.oid)::int8
               FROM unnest($1::text[]) AS n
               JOIN pg_class c ON c.oid = to_regclass(n)",
            &[&names],
        )
        .await
        .map_err(PgError::query("reading the sizes of the linted tables"))?;
    Ok(rows
        .iter()
        .map(|r| {
            let rows: f64 = r.get(1);
            TableSize {
                name: r.get(0),
                rows: (rows >= 0.0).then_some(rows),
                bytes: r.get(2),
            }
        })
        .collect())
}
