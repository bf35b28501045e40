//! What `pgcalm trace` reads around each statement of a traced migration: the relation
//! locks a backend holds (`pg_locks`), and a snapshot of the user schema (relations with
//! their `relfilenode`, constraints with `convalidated`, indexes with `indisvalid`,
//! columns with `attnotnull`) whose difference before and after a statement shows
//! rewrites, validations and index builds.
//!
//! The snapshot is read on the migration's own connection, inside its transaction, so it
//! sees the statement's uncommitted catalog changes; the locks are read from a second
//! connection, so the reading adds no locks of its own.

use serde::Serialize;
use tokio_postgres::Client;

use crate::error::PgError;

/// Schemas that hold no user objects.
const SYSTEM_SCHEMAS: &str = "n.nspname NOT IN ('pg_catalog', 'information_schema')
    AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'";

/// A relation lock held (or awaited) by a backend.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct HeldLock {
    /// `pg_class` oid of the locked relation.
    pub oid: u32,
    /// Schema-qualified name (`public.large_email`); `None` when the reading session
    /// cannot see the relation (created by the locking backend's open transaction).
    pub name: Option<String>,
    /// `relkind` (`r` table, `i` index, `S` sequence, `p` partitioned table, ...).
    pub kind: Option<char>,
    /// `AccessExclusiveLock`, `ShareLock`, ... as `pg_locks.mode` spells it.
    pub mode: String,
    /// False while the backend waits for it.
    pub granted: bool,
}

/// The relation locks backend `pid` holds or waits for in the current database, from
/// `pg_locks`. Read it from a connection other than `pid`'s.
pub async fn relation_locks(client: &Client, pid: i32) -> Result<Vec<HeldLock>, PgError> {
    let rows = client
        .query(
            "SELECT l.relation::int8, n.nspname || '.' || c.relname, c.relkind::text, l.mode, l.granted
               FROM pg_locks l
               LEFT JOIN pg_class c ON c.oid = l.relation
               LEFT JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE l.pid = $1 AND l.locktype = 'relation'
                AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
              ORDER BY l.relation, l.mode",
            &[&pid],
        )
        .await
        .map_err(PgError::query(format!("reading the locks of pid {pid}")))?;
    Ok(rows
        .iter()
        .map(|r| HeldLock {
            oid: r.get::<_, i64>(0) as u32,
            name: r.get(1),
            kind: r.get::<_, Option<String>>(2).and_then(|k| k.chars().next()),
            mode: r.get(3),
            granted: r.get(4),
        })
        .collect())
}

/// A user relation and its storage file.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RelationState {
    /// `pg_class` oid.
    pub oid: u32,
    /// Schema-qualified name.
    pub name: String,
    /// `relkind`.
    pub kind: char,
    /// `relfilenode`: a new value after a statement means the relation was rewritten
    /// (0 for relations without storage: views, partitioned tables).
    pub relfilenode: u32,
}

/// A table constraint and whether it is validated.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ConstraintState {
    /// Oid of the table it is on.
    pub table_oid: u32,
    /// Schema-qualified table name.
    pub table: String,
    /// Constraint name.
    pub name: String,
    /// `contype`: `p` primary key, `u` unique, `f` foreign key, `c` check, `x` exclusion.
    pub kind: char,
    /// `convalidated`: false for `NOT VALID` constraints until `VALIDATE CONSTRAINT`.
    pub validated: bool,
    /// `pg_get_constraintdef`.
    pub definition: String,
}

/// An index and whether it is valid.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct IndexValidity {
    /// Oid of the index.
    pub oid: u32,
    /// Schema-qualified index name.
    pub name: String,
    /// Oid of its table.
    pub table_oid: u32,
    /// Schema-qualified table name.
    pub table: String,
    /// `indisvalid`.
    pub valid: bool,
}

/// A column of a user table, with what seeding rows into it needs to know.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ColumnState {
    /// Oid of its table.
    pub table_oid: u32,
    /// Schema-qualified table name.
    pub table: String,
    /// Column name.
    pub name: String,
    /// `format_type` of the column (`character varying(255)`, `bigint`, ...).
    pub type_name: String,
    /// `attnotnull`.
    pub not_null: bool,
    /// Has a default, or is an identity or generated column: an INSERT may leave it out.
    pub defaulted: bool,
}

/// The user schema at one moment: what a statement's effects are diffed against.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct SchemaSnapshot {
    /// Tables, partitioned tables, materialized views, indexes and sequences.
    pub relations: Vec<RelationState>,
    /// Constraints of user tables.
    pub constraints: Vec<ConstraintState>,
    /// Indexes of user tables.
    pub indexes: Vec<IndexValidity>,
    /// Columns of user tables (not dropped, not system columns), in table and column order.
    pub columns: Vec<ColumnState>,
}

/// Reads the user schema as `client`'s transaction sees it (its own uncommitted DDL
/// included). Four catalog queries; cheap on the small schemas traced.
pub async fn schema_snapshot(client: &Client) -> Result<SchemaSnapshot, PgError> {
    let err = || PgError::query("reading the schema snapshot of the traced database");
    let relations = client
        .query(
            &format!(
                "SELECT c.oid::int8, n.nspname || '.' || c.relname, c.relkind::text, c.relfilenode::int8
                   FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE c.relkind IN ('r', 'p', 'm', 'i', 'I', 'S') AND {SYSTEM_SCHEMAS}
                  ORDER BY c.oid"
            ),
            &[],
        )
        .await
        .map_err(err())?
        .iter()
        .map(|r| RelationState {
            oid: r.get::<_, i64>(0) as u32,
            name: r.get(1),
            kind: r.get::<_, String>(2).chars().next().unwrap_or('?'),
            relfilenode: r.get::<_, i64>(3) as u32,
        })
        .collect();
    let constraints = client
        .query(
            &format!(
                "SELECT c.oid::int8, n.nspname || '.' || c.relname, k.conname, k.contype::text,
                        k.convalidated, pg_get_constraintdef(k.oid)
                   FROM pg_constraint k
                   JOIN pg_class c ON c.oid = k.conrelid
                   JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE {SYSTEM_SCHEMAS}
                  ORDER BY c.oid, k.conname"
            ),
            &[],
        )
        .await
        .map_err(err())?
        .iter()
        .map(|r| ConstraintState {
            table_oid: r.get::<_, i64>(0) as u32,
            table: r.get(1),
            name: r.get(2),
            kind: r.get::<_, String>(3).chars().next().unwrap_or('?'),
            validated: r.get(4),
            definition: r.get(5),
        })
        .collect();
    let indexes = client
        .query(
            &format!(
                "SELECT i.indexrelid::int8, n.nspname || '.' || ic.relname,
                        i.indrelid::int8, n.nspname || '.' || c.relname, i.indisvalid
                   FROM pg_index i
                   JOIN pg_class ic ON ic.oid = i.indexrelid
                   JOIN pg_class c ON c.oid = i.indrelid
                   JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE {SYSTEM_SCHEMAS}
                  ORDER BY i.indexrelid"
            ),
            &[],
        )
        .await
        .map_err(err())?
        .iter()
        .map(|r| IndexValidity {
            oid: r.get::<_, i64>(0) as u32,
            name: r.get(1),
            table_oid: r.get::<_, i64>(2) as u32,
            table: r.get(3),
            valid: r.get(4),
        })
        .collect();
    let columns = client
        .query(
            &format!(
                "SELECT c.oid::int8, n.nspname || '.' || c.relname, a.attname,
                        format_type(a.atttypid, a.atttypmod), a.attnotnull,
                        a.atthasdef OR a.attidentity <> '' OR a.attgenerated <> ''
                   FROM pg_attribute a
                   JOIN pg_class c ON c.oid = a.attrelid
                   JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
                    AND {SYSTEM_SCHEMAS}
                  ORDER BY c.oid, a.attnum"
            ),
            &[],
        )
        .await
        .map_err(err())?
        .iter()
        .map(|r| ColumnState {
            table_oid: r.get::<_, i64>(0) as u32,
            table: r.get(1),
            name: r.get(2),
            type_name: r.get(3),
            not_null: r.get(4),
            defaulted: r.get(5),
        })
        .collect();
    Ok(SchemaSnapshot {
        relations,
        constraints,
        indexes,
        columns,
    })
}

/// Names of the user tables in the current database (`pgcalm trace --database-url`
/// refuses a database that has any, unless forced: it is meant to be a scratch one).
pub async fn user_tables(client: &Client) -> Result<Vec<String>, PgError> {
    let rows = client
        .query(
            &format!(
                "SELECT n.nspname || '.' || c.relname
                   FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE c.relkind IN ('r', 'p') AND {SYSTEM_SCHEMAS}
                  ORDER BY 1"
            ),
            &[],
        )
        .await
        .map_err(PgError::query("listing the user tables"))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// The server's major version (`15` for 15.4), from `server_version_num`: what the lock
/// table is asked about.
pub async fn server_major_version(client: &Client) -> Result<u32, PgError> {
    let row = client
        .query_one(
            "SELECT current_setting('server_version_num')::int / 10000",
            &[],
        )
        .await
        .map_err(PgError::query("reading the server's major version"))?;
    Ok(row.get::<_, i32>(0) as u32)
}
