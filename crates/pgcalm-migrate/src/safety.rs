//! Lints a migration file with pgcalm-lint: each section (up, and down) is a
//! [`LintUnit`] of kind [`UnitKind::Migration`], so transaction:false is understood, the
//! runner's lock_timeout is taken for granted, and tables created earlier in the
//! section are new. The runner refuses a migration with findings unless told otherwise.

use std::path::Path;

use pgcalm_lint::{
    Finding, LintOptions, LintResult, LintUnit, SeenBy, Severity, SourceStatement, Span,
    StatementLockReport, UnitKind, UnitState, lint_unit_from, state_after,
    statement_lock_reports_from,
};
use serde::Serialize;

use crate::error::{FileError, FileErrorKind};
use crate::file::{Direction, MigrationFile, Section, parse_file_unchecked};

/// The findings of a migration file's up and down sections, in file order (ignored ones
/// left out).
pub fn lint_migration(file: &MigrationFile, options: &LintOptions) -> Vec<Finding> {
    lint_migration_sections(file, options)
        .into_iter()
        .flat_map(|(_, r)| r.findings)
        .collect()
}

/// Each section's lint result (with the findings `-- pgcalm:ignore` suppressed).
pub fn lint_migration_sections(
    file: &MigrationFile,
    options: &LintOptions,
) -> Vec<(Direction, LintResult)> {
    let mut directions = Vec::new();
    let mut units = Units::new();
    let mut unsplit = Vec::new();
    for direction in [Direction::Up, Direction::Down] {
        let Some(section) = file.section(direction) else {
            continue;
        };
        match pgcalm_lint::split(&file.source, section.body.clone()) {
            Ok(statements) => {
                directions.push(direction);
                let transaction = section.transaction;
                units.push((UnitKind::Migration { transaction }, statements));
            }
            // A MigrationFile comes from `parse_file`, whose sections parsed with this
            // same splitter; say so rather than lint nothing if one was built otherwise.
            Err(e) => unsplit.push((direction, syntax_error_result(e))),
        }
    }
    let mut out: Vec<(Direction, LintResult)> = directions
        .into_iter()
        .zip(each_unit(&file.source, &units, options, |unit, state| {
            lint_unit_from(unit, options, state)
        }))
        .chain(unsplit)
        .collect();
    // Up before down (stable: one result per direction).
    out.sort_by_key(|(direction, _)| *direction == Direction::Down);
    out
}

fn syntax_error_result(e: pgcalm_lint::SyntaxError) -> LintResult {
    LintResult {
        findings: vec![Finding {
            rule: "syntax-error",
            severity: Severity::Error,
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
    source.lines().any(|l| {
        l.trim()
            .strip_prefix("--")
            .map(str::trim_start)
            .is_some_and(|r| r.starts_with("migrate:up"))
    })
}

/// The state a unit starts from: a down section knows the tables its up section
/// created (rolling back drops them; the application it returns to never used them).
fn initial_state(unit: &LintUnit<'_>, options: &LintOptions, up: Option<&UnitState>) -> UnitState {
    let mut state = UnitState::new(unit.kind, options);
    if let Some(up) = up {
        state.adopt_new_tables(up);
    }
    state
}

/// Runs `f` on each unit of a file with its initial state (the second unit of a
/// migration file is its down section).
fn each_unit<T>(
    source: &str,
    units: &Units,
    options: &LintOptions,
    mut f: impl FnMut(&LintUnit<'_>, UnitState) -> T,
) -> Vec<T> {
    let mut up_state = None;
    let mut out = Vec::new();
    for (i, (kind, statements)) in units.iter().enumerate() {
        let unit = LintUnit {
            source,
            statements,
            kind: *kind,
        };
        let state = initial_state(&unit, options, up_state.as_ref());
        if i == 0 && units.len() > 1 {
            up_state = Some(state_after(&unit, options));
        }
        out.push(f(&unit, state));
    }
    out
}

/// A file's lint units: the sections of a migration file, or the whole plain SQL text.
type Units = Vec<(UnitKind, Vec<SourceStatement>)>;

fn source_units(path: &Path, source: &str) -> Result<(SourceKind, Units), FileError> {
    let syntax = |e| FileError::syntax(path, e);
    if !is_migration_source(source) {
        let statements = pgcalm_lint::split(source, 0..source.len()).map_err(syntax)?;
        return Ok((SourceKind::PlainSql, vec![(UnitKind::PlainSql, statements)]));
    }
    let app = path
        .parent()
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("");
    let file = parse_file_unchecked(app, path, source)?;
    let sections: Vec<&Section> = [Some(&file.up), file.down.as_ref()]
        .into_iter()
        .flatten()
        .collect();
    // The runner refuses BEGIN/COMMIT in a migration file outright; so does lint.
    // (CONCURRENTLY in a transactional section becomes a finding instead.)
    if let Some(s) = sections
        .iter()
        .flat_map(|s| &s.statements)
        .find(|s| s.kind.transaction_control)
    {
        return Err(FileError {
            path: path.to_path_buf(),
            line: s.line,
            column: None,
            kind: FileErrorKind::TransactionControl {
                statement: s.kind.label.clone(),
            },
        });
    }
    let mut units = Vec::new();
    for section in sections {
        let statements = pgcalm_lint::split(source, section.body.clone()).map_err(syntax)?;
        units.push((
            UnitKind::Migration {
                transaction: section.transaction,
            },
            statements,
        ));
    }
    Ok((SourceKind::Migration, units))
}

/// Lints one file's text: a pgcalm migration file section by section, anything else as
/// plain SQL (one unit). Syntax errors and malformed migration files are errors naming
/// the file, line and column.
pub fn lint_source(
    path: &Path,
    source: &str,
    options: &LintOptions,
) -> Result<SourceLint, FileError> {
    let (kind, units) = source_units(path, source)?;
    let mut lint = SourceLint {
        kind,
        statements: 0,
        result: LintResult::default(),
    };
    for (r, (_, statements)) in each_unit(source, &units, options, |unit, state| {
        lint_unit_from(unit, options, state)
    })
    .into_iter()
    .zip(&units)
    {
        lint.statements += statements.len();
        lint.result.findings.extend(r.findings);
        lint.result.ignored.extend(r.ignored);
    }
    Ok(lint)
}

/// Each statement of a file (both sections of a migration) with its locks on existing
/// relations, as [`lint_source`] sees them.
pub fn source_locks(
    path: &Path,
    source: &str,
    options: &LintOptions,
) -> Result<Vec<StatementLockReport>, FileError> {
    let (_, units) = source_units(path, source)?;
    Ok(each_unit(source, &units, options, |unit, state| {
        statement_lock_reports_from(unit, options, state)
    })
    .into_iter()
    .flatten()
    .collect())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::file::parse_file;

    fn rules(findings: &[Finding]) -> Vec<(&str, usize)> {
        findings.iter().map(|f| (f.rule, f.span.line)).collect()
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
        let rules: Vec<&str> = plain.result.findings.iter().map(|f| f.rule).collect();
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
            migration.result.findings[0].rule,
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
