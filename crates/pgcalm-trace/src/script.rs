//! What a trace runs: the statements of the traced file, each with its file line, and
//! the setup before them (the app's earlier migrations, or a `--setup` file).
//!
//! A pgcalm migration file (it has a `-- migrate:up` line) is traced as the runner runs
//! its up section: in one transaction unless `transaction:false`. Plain SQL is traced as
//! written, its own BEGIN/COMMIT included.

use std::path::{Path, PathBuf};

use pgcalm_migrate::statement::{StatementKind, classify, classify_sql};
use pgcalm_migrate::{
    Direction, MigrationFile, is_migration_source, lint_migration_sections, parse_file_unchecked,
};

use pgcalm_lint::{LineIndex, LintOptions, LintResult, Span, UnitKind, lint_sql, split};

use crate::error::TraceError;

/// One statement as it will be sent.
#[derive(Debug, Clone)]
pub struct ScriptStatement {
    /// The file it comes from.
    pub path: PathBuf,
    /// Where it is in that file (line, column, bytes).
    pub span: Span,
    /// Its text, without the trailing semicolon.
    pub sql: String,
    /// What it is (transaction control, needs no transaction, ...).
    pub kind: StatementKind,
}

impl ScriptStatement {
    /// 1-based line of its first keyword.
    pub fn line(&self) -> usize {
        self.span.line
    }
}

/// A traced file and how to prepare the database for it.
#[derive(Debug, Clone)]
pub struct Script {
    /// The traced file.
    pub path: PathBuf,
    /// Its text.
    pub source: String,
    /// Run first, untraced, in order.
    pub setup: Vec<ScriptStatement>,
    /// Traced, in order. A transactional migration's up section is wrapped in a
    /// BEGIN and COMMIT of its own (transaction control is executed, never reported).
    pub statements: Vec<ScriptStatement>,
    /// Which section of a migration is traced (plain SQL: `Up`).
    pub direction: Direction,
    /// The parsed migration when the file is a pgcalm migration file: the runner's
    /// `lock_timeout` is set before each statement, as `pgcalm migrate` would.
    pub migration: Option<MigrationFile>,
}

fn read(path: &Path) -> Result<String, TraceError> {
    std::fs::read_to_string(path).map_err(|e| TraceError::Unreadable {
        path: path.to_path_buf(),
        cause: e.to_string(),
    })
}

impl Script {
    /// Reads a file to trace. A pgcalm migration gets the earlier migrations of its app
    /// (same folder, lower numbers) as setup; plain SQL gets `setup_files` (run in order).
    pub fn load(path: &Path, setup_files: &[PathBuf]) -> Result<Script, TraceError> {
        Script::load_direction(path, setup_files, Direction::Up)
    }

    /// [`Script::load`] for one direction of a pgcalm migration: `Down` applies the
    /// migration first (untraced) and traces its down section, as unapplying it would run.
    pub fn load_direction(
        path: &Path,
        setup_files: &[PathBuf],
        direction: Direction,
    ) -> Result<Script, TraceError> {
        let source = read(path)?;
        let mut setup = Vec::new();
        if is_migration_source(&source) {
            let app = path
                .parent()
                .and_then(Path::file_name)
                .and_then(|n| n.to_str())
                .unwrap_or("app")
                .to_string();
            let file = parse_migration(&app, path, &source)?;
            if file.number > 0 {
                for earlier in earlier_migrations(path, &app, file.number)? {
                    setup.extend(section_statements(&earlier, Direction::Up));
                }
            }
            setup.extend(setup_statements(setup_files)?);
            if direction == Direction::Down {
                if file.down.is_none() {
                    return Err(TraceError::NoDownSection {
                        path: path.to_path_buf(),
                    });
                }
                setup.extend(section_statements(&file, Direction::Up));
            }
            return Ok(Script {
                path: path.to_path_buf(),
                source,
                setup,
                statements: section_statements(&file, direction),
                direction,
                migration: Some(file),
            });
        }
        if direction == Direction::Down {
            return Err(TraceError::NoDownSection {
                path: path.to_path_buf(),
            });
        }
        setup.extend(setup_statements(setup_files)?);
        Ok(Script {
            path: path.to_path_buf(),
            statements: plain_statements(path, &source)?,
            source,
            setup,
            direction,
            migration: None,
        })
    }
}

/// The statements of `--setup` files, in order: plain SQL as written, a pgcalm migration's
/// up section (so `--setup migrations/demoapp/0001_initial.sql` works).
fn setup_statements(files: &[PathBuf]) -> Result<Vec<ScriptStatement>, TraceError> {
    let mut out = Vec::new();
    for f in files {
        let source = read(f)?;
        if is_migration_source(&source) {
            out.extend(section_statements(
                &parse_migration("setup", f, &source)?,
                Direction::Up,
            ));
        } else {
            out.extend(plain_statements(f, &source)?);
        }
    }
    Ok(out)
}

/// The migrations of `app` in `path`'s folder numbered below `number`, in order.
fn earlier_migrations(
    path: &Path,
    app: &str,
    number: u32,
) -> Result<Vec<MigrationFile>, TraceError> {
    let Some(dir) = path.parent() else {
        return Ok(Vec::new());
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let mut files = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| TraceError::Unreadable {
        path: dir.to_path_buf(),
        cause: e.to_string(),
    })?;
    for entry in entries.flatten() {
        let p = entry.path();
        if p.extension().is_none_or(|e| e != "sql") || p == path {
            continue;
        }
        let source = read(&p)?;
        if !is_migration_source(&source) {
            continue;
        }
        let f = parse_migration(app, &p, &source)?;
        if f.number < number {
            files.push(f);
        }
    }
    files.sort_by_key(|f| f.number);
    Ok(files)
}

/// A migration section as the runner sends it: wrapped in BEGIN/COMMIT when
/// transactional; nothing when the migration has no such section.
fn section_statements(file: &MigrationFile, direction: Direction) -> Vec<ScriptStatement> {
    let Some(section) = file.section(direction) else {
        return Vec::new();
    };
    let lines = LineIndex::new(&file.source);
    let at_line = |line: usize, sql: &str| ScriptStatement {
        path: file.path.clone(),
        span: Span {
            start: 0,
            end: 0,
            line,
            column: 1,
        },
        sql: sql.to_string(),
        kind: classify_sql(sql),
    };
    let mut out = Vec::new();
    if section.transaction {
        out.push(at_line(section.line, "BEGIN"));
    }
    out.extend(section.statements.iter().map(|s| {
        let (line, column) = lines.line_col(&file.source, s.offset);
        ScriptStatement {
            path: file.path.clone(),
            span: Span {
                start: s.offset,
                end: s.offset + s.sql.len(),
                line,
                column,
            },
            sql: s.sql.clone(),
            kind: s.kind().clone(),
        }
    }));
    if section.transaction {
        let last = section.statements.last().map_or(section.line, |s| s.line);
        out.push(at_line(last, "COMMIT"));
    }
    out
}

/// Parses a migration file; a name without a number (a fixture, a scratch file) is
/// read as migration 0, with no earlier migrations.
fn parse_migration(app: &str, path: &Path, source: &str) -> Result<MigrationFile, TraceError> {
    let numbered = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.as_bytes().first().is_some_and(u8::is_ascii_digit));
    // Unchecked: a CONCURRENTLY in a transactional section is traced (the server refuses
    // it, and the report says so) rather than refused here.
    let parsed = if numbered {
        parse_file_unchecked(app, path, source)
    } else {
        let stem = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("file.sql");
        parse_file_unchecked(app, &path.with_file_name(format!("0000_{stem}")), source).map(
            |mut f| {
                f.path = path.to_path_buf();
                f
            },
        )
    };
    parsed.map_err(|e| TraceError::Migration(pgcalm_migrate::MigrateError::from(e)))
}

/// Plain SQL split by lint's splitter (PostgreSQL's parser), each with its file line.
pub(crate) fn plain_statements(
    path: &Path,
    source: &str,
) -> Result<Vec<ScriptStatement>, TraceError> {
    let statements = split(source, 0..source.len()).map_err(|e| TraceError::Syntax {
        path: path.to_path_buf(),
        line: e.line,
        message: e.message,
    })?;
    Ok(statements
        .iter()
        .map(|s| ScriptStatement {
            path: path.to_path_buf(),
            span: s.span,
            sql: s.sql(source).to_string(),
            kind: classify(s.node.as_ref()),
        })
        .collect())
}

impl Script {
    /// Lint's findings on the traced file: the traced section of a pgcalm migration (as
    /// the runner runs it, through `pgcalm_migrate::safety`), or the whole plain SQL file.
    pub fn lint(&self, options: &LintOptions) -> LintResult {
        match &self.migration {
            Some(file) => lint_migration_sections(file, options)
                .into_iter()
                .find(|(d, _)| *d == self.direction)
                .map(|(_, r)| r)
                .unwrap_or_default(),
            None => lint_sql(&self.source, UnitKind::PlainSql, options).unwrap_or_default(),
        }
    }
}
