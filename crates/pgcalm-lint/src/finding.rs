//! What lint (and trace) report: one [`Finding`] per rule per statement.

use std::fmt;

use serde::Serialize;

use crate::locks::{Blocks, LockMode};
use crate::rule_id::RuleId;
use crate::split::Span;

/// How bad a finding is. Both fail `pgcalm lint` (exit 1); the runner refuses errors
/// and warnings alike unless `--allow-risky`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// May block reads or writes, or fail in production, depending on data or timing.
    Warning,
    /// Blocks reads or writes of a live table, rewrites it, or cannot run as written.
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

/// Which tool saw a hazard: lint reads the text, trace runs it and reads `pg_locks`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SeenBy {
    /// Static analysis only.
    Lint,
    /// Only observed when run (a rewrite of a type change the text cannot tell).
    Trace,
    /// Both agree.
    Both,
}

/// One hazard in one statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The rule (`require-concurrent-index-creation` in output).
    pub rule: RuleId,
    /// Error or warning.
    pub severity: Severity,
    /// The statement's place in its source.
    pub span: Span,
    /// What the statement is (`CREATE INDEX`).
    pub statement: String,
    /// The lock that makes it risky, when one does.
    pub lock: Option<LockMode>,
    /// The relation that lock is on (`large_email`, `the table of index i`).
    pub table: Option<String>,
    /// What the lock blocks on that relation.
    pub blocks: Blocks,
    /// What is wrong, in one sentence.
    pub message: String,
    /// The safe recipe.
    pub help: String,
    /// The rewritten SQL, where one exists.
    pub fix_sql: Option<String>,
    /// Which tool saw it.
    pub seen_by: SeenBy,
    /// The size of `table` that graded it ([`grade_by_size`](crate::grade_by_size):
    /// `pgcalm lint` with a database); `null` in JSON when none did.
    pub table_size: Option<TableSize>,
}

/// A table's size as a finding was graded by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TableSize {
    /// Estimated rows (`pg_class.reltuples`, rounded); `None` when never analyzed.
    pub rows: Option<u64>,
    /// Heap, indexes and TOAST.
    pub bytes: i64,
}

impl Finding {
    /// `CREATE INDEX takes SHARE on large_email (blocks writes)`, for labels.
    pub fn lock_label(&self) -> Option<String> {
        let lock = self.lock?;
        Some(match &self.table {
            Some(t) => format!(
                "{} takes {lock} on {t}: blocks {}",
                self.statement, self.blocks
            ),
            None => format!("{} takes {lock}: blocks {}", self.statement, self.blocks),
        })
    }
}
