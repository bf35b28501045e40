//! pgcalm-lint: the bottom layer that understands migration SQL, with PostgreSQL's own
//! grammar (`pg_query`).
//!
//! Owns:
//! - The lock table ([`statement_locks`]): for a parsed statement and a PostgreSQL major
//!   version, the lock each relation gets, what it blocks, whether the table is
//!   rewritten or scanned under it, whether it must run outside a transaction. Lint,
//!   trace, the runner's `--plan` and `docs/locks.md` ([`locks_markdown`]) read it from
//!   here.
//! - The one statement splitter (byte span, line, column, comments), used by
//!   pgcalm-migrate's file parser too: a lexer that follows PostgreSQL's scanner rules
//!   cuts statements without parsing ([`split_unparsed`]); [`for_each_statement`] parses them a chunk at a time on
//!   threads with stacks big enough for any tree pg_query returns; syntax errors located
//!   at their token.
//! - The rules (one per file) over a unit ([`lint_sql`], [`UnitLinter`]: a plain SQL
//!   file, or a pgcalm migration section), aware of transactions, `lock_timeout`, and
//!   tables created earlier in the unit; `-- pgcalm:ignore RULE reason` directives. Each
//!   rule is a [`RuleId`], whose table holds its name, severity, hazard and the trace
//!   evidence that confirms it.
//!
//! The modules are private; what other crates use is re-exported below.
//!
//! ```
//! use pgcalm_lint::{LintOptions, RuleId, UnitKind, lint_sql};
//!
//! let sql = "CREATE INDEX large_email_email_idx ON large_email (email);";
//! let result = lint_sql(sql, UnitKind::PlainSql, &LintOptions::default()).unwrap();
//! let rules: Vec<RuleId> = result.findings.iter().map(|f| f.rule).collect();
//! assert_eq!(
//!     rules,
//!     [RuleId::MissingLockTimeout, RuleId::RequireConcurrentIndexCreation]
//! );
//! assert_eq!(rules[1].name(), "require-concurrent-index-creation");
//! ```
//!
//! Architecture invariant: no I/O, no printing, no database: the CLI renders the
//! findings this crate returns, and pgcalm-trace checks its lock table against a real
//! server.
#![cfg_attr(test, allow(unused_crate_dependencies))] // unit tests use some dev-dependencies
#![warn(missing_docs)]

// Declared to switch prost's recursion limit off (its `no-recursion-limit` feature: see
// the workspace Cargo.toml), and to decode pg_query's parse result (`split::parse_stmts`).

mod docs;
mod engine;
mod finding;
mod fix;
mod lexer;
mod locks;
mod order;
mod plpgsql;
mod rule_id;
mod rules;
mod size;
mod split;
mod tool;
mod unit;

// Dates of expiring ignores.
pub use pgcalm_date::{BadDate, Date};
// Linting a unit and what it reports.
pub use engine::{Ignored, LintResult, StatementLockReport, UnitLinter};
pub use finding::{Finding, SeenBy, Severity, TableSize};
// `lint --fix`: the fixes right where a file runs, put in place.
pub use fix::{Edit, Refused, apply_edits, safe_edits};
// Risk by size: findings graded by the sizes of their tables.
pub use size::{TableSizes, TableStats, grade_by_size, sized_tables};
pub use unit::{LintOptions, RuleSelection, Schema, UnitKind, UnitState};
// Rule identities.
pub use rule_id::{Evidence, RuleId, RuleInfo, RuleKind, UnknownRule};
// The lock table.
pub use docs::locks_markdown;
pub use locks::{
    Blocks, Condition, DroppedKeys, Effect, ForeignKeyReach, IndirectLock, LockMode, LockTarget,
    PgVersion, RelName, RelationLock, StatementLocks, has_option, sql_statement_locks,
    statement_label, statement_locks,
};
// Migration tools: the order they run files in, and how each runs a file.
pub use order::{run_order, sort_in_run_order};
pub use tool::{Piece, Plan, Sidecars, Tool, TxMode, UnknownTool, detect, plan};
// The splitter.
pub use split::{
    LineIndex, SourceStatement, Span, SyntaxError, for_each_statement, line_col, parse_first,
    split, split_unparsed, with_parse_stack,
};

/// Splits and lints a whole source text as one unit, a statement at a time.
pub fn lint_sql(
    source: &str,
    kind: UnitKind,
    options: &LintOptions,
) -> Result<LintResult, SyntaxError> {
    with_parse_stack(|| {
        let mut linter = UnitLinter::new(source, kind, options, UnitState::new(kind, options));
        for_each_statement(source, 0..source.len(), |s| linter.statement(&s))?;
        Ok(linter.finish().0)
    })
}
