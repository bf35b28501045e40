//! Catalog queries. Architecture invariant: this module is the only place in pgcalm that
//! writes SQL against `pg_catalog` / `pg_stat_*`; every other crate calls these functions.

pub mod table;

pub use table::{
    ColumnInfo, ConstraintInfo, IndexInfo, RowCount, TableReport, describe_table, server_version,
};
