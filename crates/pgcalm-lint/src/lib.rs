//! pgcalm-lint: the bottom layer that understands migration SQL, with PostgreSQL's own
//! grammar (`pg_query`).
//!
//! Owns:
//! - [`locks`]: THE lock table. For a parsed statement and a PostgreSQL major version:
//!   the lock each relation gets, what it blocks, whether the table is rewritten or
//!   scanned under it, whether it must run outside a transaction. Lint, trace, the
//!   runner's `--plan` and `docs/locks.md` read it from here.
//! - [`split`]: the one statement splitter (byte span, line, column, comments), used by
//!   pgcalm-migrate's file parser too: the scanner cuts statements without parsing
//!   ([`split_unparsed`]); [`for_each_statement`] parses them a chunk at a time on
//!   threads with stacks big enough for any tree pg_query returns; syntax errors located
//!   at their token.
//! - [`engine`] and [`rules`]: rules (one per file) over a [`LintUnit`] (a plain SQL
//!   file, or a pgcalm migration section), aware of transactions, `lock_timeout`, and
//!   tables created earlier in the unit; `-- pgcalm:ignore RULE reason` directives.
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

#![warn(missing_docs)]

pub mod docs;
pub mod engine;
pub mod finding;
pub mod locks;
pub mod rule_id;
pub mod rules;
pub mod split;
pub mod unit;

pub use engine::{
    Cx, Ignored, LintResult, Rule, StatementLockReport, UnitLinter, Violation, deparse, lint_unit,
    lint_unit_from, state_after, statement_lock_reports, statement_lock_reports_from,
};
pub use finding::{Finding, SeenBy, Severity};
pub use locks::{
    Blocks, Condition, Effect, LockMode, PgVersion, RelName, RelationLock, StatementLocks, Target,
    sql_statement_locks, statement_locks,
};
pub use rule_id::{Evidence, RuleId, RuleInfo, RuleKind, UnknownRule};
pub use split::{
    LineIndex, SourceStatement, Span, SyntaxError, for_each_statement, parse_first, parse_raw,
    split, split_unparsed, with_parse_stack,
};
pub use unit::{LintOptions, LintUnit, RuleSelection, Schema, UnitKind, UnitState};

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
