//! What a trace runs: the statements of the traced file, each with its file line, and
//! the setup before them (the app's earlier migrations, or a `--setup` file).
//!
//! A pgcalm migration file (it has a `-- migrate:up` line) is traced as the runner runs
//! its up section: in one transaction unless `transaction:false`. Plain SQL is traced as
//! written, its own BEGIN/COMMIT included.

use std::path::{Path, PathBuf};

use pgcalm_migrate::statement::{StatementKind, classify};
use pgcalm_migrate::{MigrationFile, parse_file};

use crate::error::TraceError;

/// One statement as it will be sent.
#[derive(Debug, Clone)]
pub struct ScriptStatement {
    /// The file it comes from.
    pub path: PathBuf,
    /// 1-based line of its first keyword.
    pub line: usize,
    /// Its text, without the trailing semicolon.
    pub sql: String,
    /// What it is (transaction control, needs no transaction, ...).
    pub kind: StatementKind,
}

/// A traced file and how to prepare the database for it.
#[derive(Debug, Clone)]
pub struct Script {
    /// The traced file.
    pub path: PathBuf,
    /// Run first, untraced, in order.
    pub setup: Vec<ScriptStatement>,
    /// Traced, in order. A transactional migration's up section is wrapped in a
    /// BEGIN and COMMIT of its own (transaction control is executed, never reported).
    pub statements: Vec<ScriptStatement>,
    /// The parsed migration when the file is a pgcalm migration file.
    pub migration: Option<MigrationFile>,
}

/// Whether a file's text is a pgcalm migration (has a `-- migrate:up` line).
pub fn is_migration_file(source: &str) -> bool {
    source.lines().any(|l| {
        l.trim()
            .strip_prefix("--")
            .map(str::trim_start)
            .is_some_and(|r| r.starts_with("migrate:up"))
    })
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
        let source = read(path)?;
        let mut setup = Vec::new();
        if is_migration_file(&source) {
            let app = path
                .parent()
                .and_then(Path::file_name)
                .and_then(|n| n.to_str())
                .unwrap_or("app")
                .to_string();
            let file =
                parse_file(&app, path, &source).map_err(pgcalm_migrate::MigrateError::from)?;
            for earlier in earlier_migrations(path, &app, file.number)? {
                setup.extend(up_statements(&earlier));
            }
            for f in setup_files {
                setup.extend(plain_statements(f, &read(f)?)?);
            }
            return Ok(Script {
                path: path.to_path_buf(),
                setup,
                statements: up_statements(&file),
                migration: Some(file),
            });
        }
        for f in setup_files {
            setup.extend(plain_statements(f, &read(f)?)?);
        }
        Ok(Script {
            path: path.to_path_buf(),
            setup,
            statements: plain_statements(path, &source)?,
            migration: None,
        })
    }
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
        if !is_migration_file(&source) {
            continue;
        }
        let f = parse_file(app, &p, &source).map_err(pgcalm_migrate::MigrateError::from)?;
        if f.number < number {
            files.push(f);
        }
    }
    files.sort_by_key(|f| f.number);
    Ok(files)
}

/// A migration's up section as sent: wrapped in BEGIN/COMMIT when transactional.
fn up_statements(file: &MigrationFile) -> Vec<ScriptStatement> {
    let stmt = |line: usize, sql: &str, kind: StatementKind| ScriptStatement {
        path: file.path.clone(),
        line,
        sql: sql.to_string(),
        kind,
    };
    let mut out = Vec::new();
    if file.up.transaction {
        out.push(stmt(file.up.line, "BEGIN", classify_sql("BEGIN")));
    }
    out.extend(
        file.up
            .statements
            .iter()
            .map(|s| stmt(s.line, &s.sql, s.kind.clone())),
    );
    if file.up.transaction {
        let last = file.up.statements.last().map_or(file.up.line, |s| s.line);
        out.push(stmt(last, "COMMIT", classify_sql("COMMIT")));
    }
    out
}

fn classify_sql(sql: &str) -> StatementKind {
    let parsed = pg_query::parse(sql, 0).ok();
    classify(
        parsed
            .as_ref()
            .and_then(|p| p.protobuf.stmts.first())
            .and_then(|s| s.stmt.as_ref())
            .and_then(|n| n.node.as_ref()),
    )
}

/// Splits plain SQL into statements with PostgreSQL's parser, each with its file line.
pub fn plain_statements(path: &Path, source: &str) -> Result<Vec<ScriptStatement>, TraceError> {
    let parsed = pg_query::parse(source, 0).map_err(|e| TraceError::Syntax {
        path: path.to_path_buf(),
        line: 1,
        message: e.to_string(),
    })?;
    let mut out = Vec::new();
    for raw in &parsed.protobuf.stmts {
        let loc = raw.stmt_location.max(0) as usize;
        let len = if raw.stmt_len == 0 {
            source.len() - loc
        } else {
            raw.stmt_len as usize
        };
        let slice = &source[loc..loc + len];
        let lead = leading_noise(slice);
        let sql = slice[lead..].trim_end().trim_end_matches(';').trim_end();
        if sql.is_empty() {
            continue;
        }
        let line = source[..loc + lead].matches('\n').count() + 1;
        out.push(ScriptStatement {
            path: path.to_path_buf(),
            line,
            sql: sql.to_string(),
            kind: classify(raw.stmt.as_ref().and_then(|n| n.node.as_ref())),
        });
    }
    Ok(out)
}

/// Bytes of whitespace and comments before the first token.
fn leading_noise(sql: &str) -> usize {
    use pg_query::protobuf::Token;
    match pg_query::scan(sql) {
        Ok(scan) => scan
            .tokens
            .iter()
            .find(|t| t.token != Token::SqlComment as i32 && t.token != Token::CComment as i32)
            .map(|t| t.start as usize)
            .unwrap_or(0),
        Err(_) => sql.len() - sql.trim_start().len(),
    }
}
