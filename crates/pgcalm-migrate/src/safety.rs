//! Lints a migration file with pgcalm-lint: each section (up, and down) is a lint unit
//! of kind [`UnitKind::Migration`], so transaction:false is understood, the runner's
//! lock_timeout is taken for granted, and tables created earlier in the section are
//! new. The runner refuses a migration with findings unless told otherwise. Statements
//! are parsed and linted a chunk at a time ([`pgcalm_lint::for_each_statement`]), so a
//! file of any size lints in flat memory.

use std::ops::Range;
use std::path::Path;

use pg_query::NodeEnum;
use pgcalm_lint::{
    Finding, LintOptions, LintResult, RuleId, SeenBy, Span, StatementLockReport, SyntaxError,
    UnitKind, UnitLinter, UnitState,
};
use serde::Serialize;

use crate::error::{FileError, FileErrorKind};
use crate::file::{Direction, MigrationFile, section_headers};

/// The findings of a migration file's up and down sections, in file order (ignored ones
/// left out).
pub fn lint_migration(file: &MigrationFile, options: &LintOptions) -> Vec<Finding> {
    lint_migration_sections(file, options)
        .into_iter()
        .flat_map(|(_, r)| r.findings)
        .collect()
}

/// Each section's lint result (with the findings `-- pgcalm:ignore` suppressed); a
/// section that does not parse gives one `syntax-error` finding.
pub fn lint_migration_sections(
    file: &MigrationFile,
    options: &LintOptions,
) -> Vec<(Direction, LintResult)> {
    let units: Vec<Unit> = [Some(&file.up), file.down.as_ref()]
        .into_iter()
        .flatten()
        .map(|s| Unit {
            kind: UnitKind::Migration {
                transaction: s.transaction,
            },
            range: s.body.clone(),
            section: Some((s.direction, s.line)),
        })
        .collect();
    lint_units(&file.source, &units, options, false)
        .0
        .into_iter()
        .zip(&units)
        .map(|(outcome, unit)| {
            let direction = unit.section.map_or(Direction::Up, |(d, _)| d);
            match outcome.syntax {
                // A MigrationFile's sections were split by this same splitter when it
                // was checked; say so rather than lint nothing if one was not.
                Some(e) => (direction, syntax_error_result(e)),
                None => (direction, outcome.result),
            }
        })
        .collect()
}

fn syntax_error_result(e: SyntaxError) -> LintResult {
    LintResult {
        findings: vec![Finding {
            rule: RuleId::SyntaxError,
            severity: RuleId::SyntaxError.severity(),
            span: Span {
                start: e.offset,
                end: e.offset,
                line: e.line,
                column: e.column.unwrap_or(1),
            },
            statement: String::new(),
            lock: None,
            table: None,
            blocks: Default::default(),
            message: e.message,
            help: "fix the syntax error".into(),
            fix_sql: None,
            seen_by: SeenBy::Lint,
            table_size: None,
        }],
        ..LintResult::default()
    }
}

/// How a linted file runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// A pgcalm migration file (it has a `-- migrate:up` line).
    Migration,
    /// Plain SQL, run as written.
    PlainSql,
}

/// What linting one file produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceLint {
    /// Migration file or plain SQL.
    pub kind: SourceKind,
    /// Statements linted (both sections of a migration).
    pub statements: usize,
    /// Findings and ignored findings, in file order.
    pub result: LintResult,
}

/// Whether a text is a pgcalm migration file: a line `-- migrate:up ...`.
pub fn is_migration_source(source: &str) -> bool {
    // Found by searching for the directive, not by walking every line of the file: a
    // line whose text before it is `--` with only whitespace around.
    source.match_indices("migrate:up").any(|(at, _)| {
        let line_start = source[..at].rfind('\n').map_or(0, |n| n + 1);
        source[line_start..at]
            .trim()
            .strip_prefix("--")
            .is_some_and(|rest| rest.trim().is_empty())
    })
}

/// A lint unit of a file: a migration section, or the whole plain SQL text.
#[derive(Debug, Clone)]
struct Unit {
    kind: UnitKind,
    range: Range<usize>,
    /// The section's direction and directive line (`None`: plain SQL).
    section: Option<(Direction, usize)>,
}

/// What linting one unit gave.
struct UnitOutcome {
    result: LintResult,
    locks: Vec<StatementLockReport>,
    statements: usize,
    /// The syntax error that stopped it.
    syntax: Option<SyntaxError>,
    /// Its first BEGIN/COMMIT/ROLLBACK...: line and label.
    transaction_control: Option<(usize, String)>,
}

/// What linting the first unit (the up section, or the plain SQL) left lint knowing, when
/// it parsed: what later files can learn from ([`pgcalm_lint::Schema::learn_from_state`]).
pub type LearnedState = Option<UnitState>;

/// Lints a file's units in order, a statement at a time; a down section (the second
/// unit) starts from what its up section created (rolling back drops those tables; the
/// application it returns to never used them), unless the up section does not parse.
fn lint_units(
    source: &str,
    units: &[Unit],
    options: &LintOptions,
    locks: bool,
) -> (Vec<UnitOutcome>, LearnedState) {
    // Rules walk the trees (and drop them) on this thread: a parse stack too.
    pgcalm_lint::with_parse_stack(|| {
        let mut up_state: Option<UnitState> = None;
        let mut out = Vec::new();
        for (i, unit) in units.iter().enumerate() {
            let mut state = UnitState::new(unit.kind, options);
            if let Some(up) = &up_state {
                state.adopt_new_tables(up);
            }
            let mut linter = UnitLinter::new(source, unit.kind, options, state);
            if locks {
                linter = linter.with_lock_reports();
            }
            let mut transaction_control = None;
            let counted = pgcalm_lint::for_each_statement(source, unit.range.clone(), |s| {
                if transaction_control.is_none()
                    && let Some(node @ NodeEnum::TransactionStmt(_)) = &s.node
                {
                    transaction_control = Some((s.span.line, pgcalm_lint::statement_label(node)));
                }
                linter.statement(&s);
            });
            let (result, locks, state) = linter.finish_with_locks();
            if i == 0 && counted.is_ok() {
                up_state = Some(state);
            }
            out.push(UnitOutcome {
                result,
                locks,
                statements: counted.as_ref().map_or(0, |n| *n),
                syntax: counted.err(),
                transaction_control,
            });
        }
        // A file with only a down section teaches nothing.
        let up = units
            .first()
            .is_some_and(|u| !matches!(u.section, Some((Direction::Down, _))));
        (out, up_state.filter(|_| up))
    })
}

/// A file's lint units: the sections of a migration file (up, then down), or the whole
/// plain SQL text. Only the directive lines are read here.
fn source_units(path: &Path, source: &str) -> Result<(SourceKind, Vec<Unit>), FileError> {
    if !is_migration_source(source) {
        let unit = Unit {
            kind: UnitKind::PlainSql,
            range: 0..source.len(),
            section: None,
        };
        return Ok((SourceKind::PlainSql, vec![unit]));
    }
    let mut headers = section_headers(path, source)?;
    headers.sort_by_key(|h| h.direction == Direction::Down);
    let units = headers
        .into_iter()
        .map(|h| Unit {
            kind: UnitKind::Migration {
                transaction: h.transaction,
            },
            range: h.body,
            section: Some((h.direction, h.line)),
        })
        .collect();
    Ok((SourceKind::Migration, units))
}

/// The first error of a linted file, as the runner would refuse it: a syntax error or
/// an empty up section (the first in file order), then BEGIN/COMMIT in a migration
/// (the runner refuses those outright; CONCURRENTLY in a transactional section is a
/// finding instead).
fn file_error(path: &Path, units: &[Unit], outcomes: &[UnitOutcome]) -> Option<FileError> {
    let at = |line: usize, kind: FileErrorKind| FileError {
        path: path.to_path_buf(),
        line,
        column: None,
        kind,
    };
    let mut in_file_order: Vec<(&Unit, &UnitOutcome)> = units.iter().zip(outcomes).collect();
    in_file_order.sort_by_key(|(u, _)| u.section.map(|(_, line)| line));
    for (unit, outcome) in in_file_order {
        if let Some(e) = &outcome.syntax {
            return Some(FileError::syntax(path, e.clone()));
        }
        if let Some((Direction::Up, line)) = unit.section
            && outcome.statements == 0
        {
            return Some(at(line, FileErrorKind::EmptyUp));
        }
    }
    units
        .iter()
        .zip(outcomes)
        .filter(|(u, _)| u.section.is_some())
        .find_map(|(_, o)| o.transaction_control.clone())
        .map(|(line, statement)| at(line, FileErrorKind::TransactionControl { statement }))
}

/// Lints one file's text: a pgcalm migration file section by section, anything else as
/// plain SQL (one unit). Syntax errors and malformed migration files are errors naming
/// the file, line and column.
pub fn lint_source(
    path: &Path,
    source: &str,
    options: &LintOptions,
) -> Result<SourceLint, FileError> {
    lint_source_learning(path, source, options, false).map(|(lint, ..)| lint)
}

/// Each statement of a file (both sections of a migration) with its locks on existing
/// relations, as [`lint_source`] sees them.
pub fn source_locks(
    path: &Path,
    source: &str,
    options: &LintOptions,
) -> Result<Vec<StatementLockReport>, FileError> {
    lint_source_learning(path, source, options, true).map(|(_, locks, _)| locks)
}

/// [`lint_source`] (with the lock reports when `locks`), and what the file's up section
/// or plain SQL left lint knowing, for the files after it in a `pgcalm lint DIR` run.
pub fn lint_source_learning(
    path: &Path,
    source: &str,
    options: &LintOptions,
    locks: bool,
) -> Result<(SourceLint, Vec<StatementLockReport>, LearnedState), FileError> {
    let (kind, units) = source_units(path, source)?;
    let (outcomes, learned) = lint_units(source, &units, options, locks);
    if let Some(e) = file_error(path, &units, &outcomes) {
        return Err(e);
    }
    let mut lint = SourceLint {
        kind,
        statements: 0,
        result: LintResult::default(),
    };
    let mut all_locks = Vec::new();
    for outcome in outcomes {
        lint.statements += outcome.statements;
        lint.result.findings.extend(outcome.result.findings);
        lint.result.ignored.extend(outcome.result.ignored);
        all_locks.extend(outcome.locks);
    }
    Ok((lint, all_locks, learned))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::file::{parse_file, parse_file_unchecked};

    #[test]
    fn a_migration_source_has_the_directive_on_a_comment_line_of_its_own() {
        let yes = [
            "-- migrate:up\nSELECT 1;\n",
            "SELECT 0;\n  --   migrate:up transaction:false\r\nSELECT 1;",
            "--migrate:up",
            "\n\n-- migrate:down\n-- migrate:up\n",
        ];
        let no = [
            "SELECT 1; -- migrate:up\n",
            "-- see migrate:up\n",
            "SELECT 'migrate:up';\n",
            "-- migrate:down\nSELECT 1;\n",
            "",
        ];
        for text in yes {
            assert!(is_migration_source(text), "{text:?}");
        }
        for text in no {
            assert!(!is_migration_source(text), "{text:?}");
        }
    }

    fn rules(findings: &[Finding]) -> Vec<(&str, usize)> {
        findings
            .iter()
            .map(|f| (f.rule.name(), f.span.line))
            .collect()
    }

    #[test]
    fn the_seed_migrations() {
        let safe = parse_file(
            "demoapp",
            Path::new("0002_add_email_index_concurrently.sql"),
            "-- migrate:up transaction:false\nCREATE INDEX CONCURRENTLY large_email_email_idx ON large_email (email);\n\n-- migrate:down transaction:false\nDROP INDEX CONCURRENTLY IF EXISTS large_email_email_idx;\n",
        )
        .unwrap();
        assert_eq!(lint_migration(&safe, &LintOptions::default()), []);

        let risky = parse_file(
            "demoapp",
            Path::new("0002_add_email_index.sql"),
            "-- migrate:up\nCREATE INDEX large_email_email_idx ON large_email (email);\n\n-- migrate:down\nDROP INDEX large_email_email_idx;\n",
        )
        .unwrap();
        // The runner sets lock_timeout, so only the index rules fire, in both sections.
        assert_eq!(
            rules(&lint_migration(&risky, &LintOptions::default())),
            [
                ("require-concurrent-index-creation", 2),
                ("require-concurrent-index-deletion", 5)
            ]
        );
    }

    #[test]
    fn a_table_created_in_the_section_is_new_and_ignores_apply() {
        let file = parse_file(
            "app",
            Path::new("0003_t.sql"),
            "-- migrate:up\nCREATE TABLE t (a int);\nCREATE INDEX t_a ON t (a);\n-- pgcalm:ignore require-concurrent-index-creation users is empty in every deployment\nCREATE INDEX u_a ON users (a);\n",
        )
        .unwrap();
        let sections = lint_migration_sections(&file, &LintOptions::default());
        assert_eq!(sections.len(), 1);
        let (direction, result) = &sections[0];
        assert_eq!(*direction, Direction::Up);
        assert_eq!(result.findings, []);
        assert_eq!(result.ignored.len(), 1);
        assert_eq!(
            result.ignored[0].reason,
            "users is empty in every deployment"
        );
    }

    #[test]
    fn a_down_section_may_drop_what_its_up_section_created() {
        let file = parse_file(
            "app",
            Path::new("0007_t.sql"),
            "-- migrate:up\nCREATE TABLE t (a int);\nCREATE INDEX t_a ON t (a);\n-- migrate:down\nDROP INDEX t_a;\nDROP TABLE t;\nDROP INDEX u_a;\n",
        )
        .unwrap();
        // Only the index that the up section did not create is flagged.
        assert_eq!(
            rules(&lint_migration(&file, &LintOptions::default())),
            [("require-concurrent-index-deletion", 7)]
        );
    }

    #[test]
    fn concurrently_in_a_transactional_section_is_a_finding() {
        let file = parse_file_unchecked(
            "app",
            Path::new("0004_i.sql"),
            "-- migrate:up\nCREATE INDEX CONCURRENTLY i ON users (a);\n",
        )
        .unwrap();
        assert_eq!(
            rules(&lint_migration(&file, &LintOptions::default())),
            [("concurrently-in-transaction", 2)]
        );
    }
}

#[cfg(test)]
mod source_tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn plain_sql_and_migration_files_and_their_errors() {
        let plain = lint_source(
            Path::new("risky.sql"),
            "CREATE INDEX large_email_email_idx ON large_email (email);\n",
            &LintOptions::default(),
        )
        .unwrap();
        assert_eq!(plain.kind, SourceKind::PlainSql);
        let rules: Vec<&str> = plain
            .result
            .findings
            .iter()
            .map(|f| f.rule.name())
            .collect();
        assert_eq!(
            rules,
            ["missing-lock-timeout", "require-concurrent-index-creation"]
        );

        // Any file name: lint reads fixtures and pull-request files too.
        let migration = lint_source(
            Path::new("fixtures/add_index.sql"),
            "-- migrate:up\nCREATE INDEX CONCURRENTLY i ON t (a);\n",
            &LintOptions::default(),
        )
        .unwrap();
        assert_eq!(migration.kind, SourceKind::Migration);
        assert_eq!(migration.statements, 1);
        assert_eq!(
            migration.result.findings[0].rule.name(),
            "concurrently-in-transaction"
        );

        // The locks of each statement on existing tables (t is new in the section).
        let locks = source_locks(
            Path::new("0006_t.sql"),
            "-- migrate:up\nCREATE TABLE t (a int);\nCREATE INDEX t_a ON t (a);\nCREATE INDEX u_a ON u (a);\n",
            &LintOptions::default(),
        )
        .unwrap();
        let summary: Vec<(usize, String)> = locks
            .iter()
            .map(|s| {
                let modes: Vec<String> = s
                    .locks
                    .iter()
                    .map(|l| format!("{} {}", l.mode, l.target))
                    .collect();
                (s.span.line, modes.join(", "))
            })
            .collect();
        assert_eq!(
            summary,
            [
                (2, String::new()),
                (3, String::new()),
                (4, "SHARE u".to_string())
            ]
        );

        let err = lint_source(
            Path::new("0005_tx.sql"),
            "-- migrate:up\nBEGIN;\nCREATE INDEX i ON t (a);\nCOMMIT;\n",
            &LintOptions::default(),
        )
        .unwrap_err();
        assert_eq!(err.line, 2);
        assert!(
            matches!(err.kind, FileErrorKind::TransactionControl { .. }),
            "{err}"
        );

        let err = lint_source(
            Path::new("bad.sql"),
            "SELECT 1;\nALTER TABLE t ADD CHECK a > 0;\n",
            &LintOptions::default(),
        )
        .unwrap_err();
        assert_eq!((err.line, err.column), (2, Some(25)));
    }
}
