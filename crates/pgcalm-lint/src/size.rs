//! Risk by size: with the existing tables' estimated rows and sizes (read by the caller
//! from a database: this crate has none), a finding whose hazard grows with the table (a
//! rewrite, a validating scan, a write-blocking index build) is graded by the table it
//! is on: on a small one it is a warning, on a large one an error, and its message says
//! the size used (`large_email: ~10M rows, 1.2 GB`).

use std::collections::HashMap;

use crate::finding::{Finding, Severity, TableSize};
use crate::rule_id::Evidence;

/// One table's estimated rows (`None`: never analyzed) and size in bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TableStats {
    /// `pg_class.reltuples`.
    pub rows: Option<f64>,
    /// Heap, indexes and TOAST.
    pub bytes: i64,
}

/// The sizes of the tables findings are on, keyed by the finding's `table` text, and the
/// threshold below which a table is small.
#[derive(Debug, Clone, PartialEq)]
pub struct TableSizes {
    /// Fewer estimated rows than this: small (a warning).
    pub small_table_rows: f64,
    /// By the finding's `table` (`large_email`, `public.Big`).
    pub tables: HashMap<String, TableStats>,
}

/// Whether a finding's hazard grows with its table's size.
fn graded(f: &Finding) -> bool {
    f.lock.is_some()
        && matches!(
            f.rule.evidence(),
            Evidence::Rewrite | Evidence::Scan | Evidence::IndexBuild
        )
}

/// The tables whose sizes grade `findings`: each as the finding names it and as a
/// `regclass` text for the database (`public.Big` -> `"public"."Big"`), without repeats.
/// A name with a `.` inside a quoted part cannot be told apart and is split at its
/// first `.`.
pub fn sized_tables<'a>(findings: impl IntoIterator<Item = &'a Finding>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for f in findings {
        let Some(table) = &f.table else { continue };
        if !graded(f) || table.starts_with("the table of ") || out.iter().any(|(t, _)| t == table) {
            continue;
        }
        let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
        let regclass = match table.split_once('.') {
            Some((schema, name)) => format!("{}.{}", quote(schema), quote(name)),
            None => quote(table),
        };
        out.push((table.clone(), regclass));
    }
    out
}

/// Grades each size-dependent finding by its table's size: a warning below
/// `small_table_rows`, an error at or above it; the message says the size it used, and
/// `table_size` holds it. A table never analyzed keeps its severity and says so.
pub fn grade_by_size(findings: &mut [Finding], sizes: &TableSizes) {
    for f in findings.iter_mut().filter(|f| graded(f)) {
        let Some(table) = &f.table else { continue };
        let Some(stats) = sizes.tables.get(table) else {
            continue;
        };
        f.table_size = Some(TableSize {
            rows: stats.rows.map(|r| r.max(0.0).round() as u64),
            bytes: stats.bytes,
        });
        let size = format!(
            "{table}: {}, {}",
            rows_text(stats.rows),
            bytes_text(stats.bytes)
        );
        match stats.rows {
            Some(rows) if rows < sizes.small_table_rows => {
                f.severity = Severity::Warning;
                f.message = format!(
                    "{} ({size}: small, under small_table_rows = {}, so a warning)",
                    f.message, sizes.small_table_rows
                );
            }
            Some(_) => {
                f.severity = Severity::Error;
                f.message = format!("{} ({size})", f.message);
            }
            None => f.message = format!("{} ({size})", f.message),
        }
    }
}

/// `~50 rows`, `~200k rows`, `~10M rows`, `rows unknown (never analyzed)`.
fn rows_text(rows: Option<f64>) -> String {
    let Some(rows) = rows else {
        return "rows unknown (never analyzed)".into();
    };
    let (n, unit) = match rows {
        r if r >= 1e9 => (r / 1e9, "G"),
        r if r >= 1e6 => (r / 1e6, "M"),
        r if r >= 1e3 => (r / 1e3, "k"),
        r => (r, ""),
    };
    if n < 10.0 && !unit.is_empty() {
        format!("~{n:.1}{unit} rows")
    } else {
        format!("~{n:.0}{unit} rows")
    }
}

/// `16 kB`, `1.2 GB` (powers of 1024, as `pg_size_pretty` counts).
fn bytes_text(bytes: i64) -> String {
    let b = bytes as f64;
    let (n, unit) = match b {
        b if b >= 1024f64.powi(4) => (b / 1024f64.powi(4), "TB"),
        b if b >= 1024f64.powi(3) => (b / 1024f64.powi(3), "GB"),
        b if b >= 1024f64.powi(2) => (b / 1024f64.powi(2), "MB"),
        b if b >= 1024.0 => (b / 1024.0, "kB"),
        b => return format!("{b:.0} bytes"),
    };
    if n < 10.0 {
        format!("{n:.1} {unit}")
    } else {
        format!("{n:.0} {unit}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_pg_size_pretty() {
        assert_eq!(rows_text(Some(50.0)), "~50 rows");
        assert_eq!(rows_text(Some(200_000.0)), "~200k rows");
        assert_eq!(rows_text(Some(10_400_000.0)), "~10M rows");
        assert_eq!(bytes_text(16 * 1024), "16 kB");
        assert_eq!(bytes_text(1_288_490_189), "1.2 GB");
        assert_eq!(bytes_text(8000), "7.8 kB");
    }
}
