//! Migration files: discovery (`migrations/<app>/<NNNN>_<name>.sql`), the dbmate-style
//! sections (`-- migrate:up [transaction:false]` / `-- migrate:down ...`), and statement
//! splitting with PostgreSQL's own parser, keeping each statement's file line.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::{FileError, FileErrorKind, MigrateError};
use crate::statement::{StatementKind, classify};

/// Which way a migration runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Apply (`-- migrate:up`).
    Up,
    /// Unapply (`-- migrate:down`).
    Down,
}

impl Direction {
    /// `up` / `down`, as in the file and the journal.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Up => "up",
            Direction::Down => "down",
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One SQL statement of a section, as it will be sent.
#[derive(Debug, Clone, Serialize)]
pub struct Statement {
    /// 0-based position in its section.
    pub index: usize,
    /// The statement text, without the trailing semicolon.
    pub sql: String,
    /// 1-based file line of its first keyword.
    pub line: usize,
    /// Byte offset of its first keyword in the file.
    pub offset: usize,
    /// What it is and which locks and timeouts it needs.
    pub kind: StatementKind,
    /// SHA-256 of the text (hex): lets an interrupted migration check that the statements
    /// it already ran were not edited before it resumes.
    pub checksum: String,
}

impl Statement {
    /// The first line of the statement, shortened, for messages.
    pub fn summary(&self) -> String {
        let first = self.sql.lines().next().unwrap_or("").trim();
        let mut s: String = first.chars().take(100).collect();
        if s.len() < first.len() || self.sql.lines().nth(1).is_some() {
            s.push_str(" ...");
        }
        s
    }

    /// File line and 1-based column of a character position (1-based, as PostgreSQL
    /// reports it in `ERROR ... at character N`) inside this statement.
    pub fn position_in_file(&self, source: &str, char_pos: usize) -> (usize, usize) {
        let byte = self
            .sql
            .char_indices()
            .nth(char_pos.saturating_sub(1))
            .map(|(b, _)| b)
            .unwrap_or(self.sql.len());
        line_col(source, self.offset + byte)
    }
}

/// One direction of a migration.
#[derive(Debug, Clone, Serialize)]
pub struct Section {
    /// Up or down.
    pub direction: Direction,
    /// False for `transaction:false`: each statement commits on its own.
    pub transaction: bool,
    /// 1-based line of the `-- migrate:...` directive.
    pub line: usize,
    /// The statements, in order.
    pub statements: Vec<Statement>,
    /// Byte range of the section's SQL in the file (after the directive line), for
    /// tools that read it again (lint).
    #[serde(skip)]
    pub body: std::ops::Range<usize>,
}

/// A parsed migration file.
#[derive(Debug, Clone, Serialize)]
pub struct MigrationFile {
    /// App (the folder name).
    pub app: String,
    /// The number that orders it within the app.
    pub number: u32,
    /// File stem, e.g. `0002_add_email_index_concurrently`.
    pub name: String,
    /// Path of the file.
    pub path: PathBuf,
    /// The up section.
    pub up: Section,
    /// The down section; `None` makes the migration irreversible.
    pub down: Option<Section>,
    /// SHA-256 (hex) of what was applied: the up section's directive and SQL. The down
    /// section may be corrected after applying without invalidating the record.
    pub checksum: String,
    /// The whole file, for mapping positions to lines.
    #[serde(skip)]
    pub source: String,
}

impl MigrationFile {
    /// `app.name`.
    pub fn id(&self) -> String {
        format!("{}.{}", self.app, self.name)
    }

    /// The section for a direction.
    pub fn section(&self, direction: Direction) -> Option<&Section> {
        match direction {
            Direction::Up => Some(&self.up),
            Direction::Down => self.down.as_ref(),
        }
    }
}

/// The migrations found under a directory, by app, each app's files in number order.
#[derive(Debug, Clone, Default)]
pub struct MigrationSet {
    /// The directory they came from.
    pub dir: PathBuf,
    /// App name -> its migrations, ordered by number.
    pub apps: BTreeMap<String, Vec<MigrationFile>>,
}

impl MigrationSet {
    /// Reads and checks every file under `dir` (one folder per app). Any malformed file
    /// is an error, so nothing runs from a directory pgcalm does not fully understand.
    pub fn load(dir: impl AsRef<Path>) -> Result<MigrationSet, MigrateError> {
        let dir = dir.as_ref().to_path_buf();
        let entries = std::fs::read_dir(&dir).map_err(|e| MigrateError::NoMigrationsDir {
            dir: dir.clone(),
            cause: e.to_string(),
        })?;
        let mut apps = BTreeMap::new();
        for entry in entries {
            let entry = entry.map_err(|e| MigrateError::NoMigrationsDir {
                dir: dir.clone(),
                cause: e.to_string(),
            })?;
            let path = entry.path();
            if !path.is_dir() {
                continue;
            }
            let Some(app) = path
                .file_name()
                .and_then(|n| n.to_str())
                .map(str::to_string)
            else {
                continue;
            };
            if app.starts_with('.') {
                continue;
            }
            apps.insert(app.clone(), load_app(&app, &path)?);
        }
        Ok(MigrationSet { dir, apps })
    }

    /// The migrations of one app.
    pub fn app(&self, app: &str) -> Result<&[MigrationFile], MigrateError> {
        self.apps
            .get(app)
            .map(Vec::as_slice)
            .ok_or_else(|| MigrateError::UnknownApp {
                app: app.to_string(),
                dir: self.dir.clone(),
                known: self.apps.keys().cloned().collect::<Vec<_>>().join(", "),
            })
    }

    /// Looks a migration up by app and exact name.
    pub fn get(&self, app: &str, name: &str) -> Option<&MigrationFile> {
        self.apps.get(app)?.iter().find(|m| m.name == name)
    }

    /// Resolves a target (`0002`, `0002_add`, the full name) to one migration of `app`.
    pub fn resolve(&self, app: &str, target: &str) -> Result<&MigrationFile, MigrateError> {
        let migrations = self.app(app)?;
        if let Some(exact) = migrations.iter().find(|m| m.name == target) {
            return Ok(exact);
        }
        let matches: Vec<&MigrationFile> = migrations
            .iter()
            .filter(|m| m.name.starts_with(target))
            .collect();
        match matches.as_slice() {
            [one] => Ok(one),
            [] => Err(MigrateError::UnknownTarget {
                app: app.to_string(),
                target: target.to_string(),
                known: migrations
                    .iter()
                    .map(|m| m.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
            many => Err(MigrateError::AmbiguousTarget {
                app: app.to_string(),
                target: target.to_string(),
                matches: many
                    .iter()
                    .map(|m| m.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }
}

fn load_app(app: &str, dir: &Path) -> Result<Vec<MigrationFile>, MigrateError> {
    let entries = std::fs::read_dir(dir).map_err(|e| MigrateError::NoMigrationsDir {
        dir: dir.to_path_buf(),
        cause: e.to_string(),
    })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "sql"))
        .collect();
    paths.sort();
    let mut files: Vec<MigrationFile> = Vec::new();
    for path in paths {
        let source = std::fs::read_to_string(&path).map_err(|e| FileError {
            path: path.clone(),
            line: 1,
            column: None,
            kind: FileErrorKind::Unreadable(e.to_string()),
        })?;
        let file = parse_file(app, &path, &source)?;
        if let Some(other) = files.iter().find(|f| f.number == file.number) {
            return Err(FileError {
                path: path.clone(),
                line: 1,
                column: None,
                kind: FileErrorKind::DuplicateNumber {
                    app: app.to_string(),
                    number: file.number,
                    other: other.path.clone(),
                },
            }
            .into());
        }
        files.push(file);
    }
    files.sort_by_key(|f| f.number);
    Ok(files)
}

/// Parses one migration file's text. `path` names it in errors and its file name gives
/// the number and name.
pub fn parse_file(app: &str, path: &Path, source: &str) -> Result<MigrationFile, FileError> {
    parse_file_with(app, path, source, true)
}

/// Like [`parse_file`], but keeps statements a section cannot run (CONCURRENTLY in a
/// transactional section, BEGIN/COMMIT): lint reports them as findings with the rest.
/// A file name without a number gets number 0.
pub fn parse_file_unchecked(
    app: &str,
    path: &Path,
    source: &str,
) -> Result<MigrationFile, FileError> {
    parse_file_with(app, path, source, false)
}

fn parse_file_with(
    app: &str,
    path: &Path,
    source: &str,
    check: bool,
) -> Result<MigrationFile, FileError> {
    let err = |line: usize, column: Option<usize>, kind: FileErrorKind| FileError {
        path: path.to_path_buf(),
        line,
        column,
        kind,
    };
    let name = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("")
        .to_string();
    let number = name
        .split_once('_')
        .map(|(n, _)| n)
        .unwrap_or(&name)
        .parse::<u32>()
        .ok()
        .filter(|_| name.as_bytes().first().is_some_and(u8::is_ascii_digit))
        // Lint reads migration-format files under any name (a fixture, a pull request).
        .or((!check).then_some(0))
        .ok_or_else(|| {
            err(
                1,
                None,
                FileErrorKind::BadFileName {
                    file_name: path
                        .file_name()
                        .and_then(|s| s.to_str())
                        .unwrap_or("")
                        .to_string(),
                },
            )
        })?;

    // Find the directive lines and the byte range each section's SQL covers.
    struct Directive {
        direction: Direction,
        transaction: bool,
        line: usize,
        line_start: usize,
        body_start: usize,
    }
    let mut directives: Vec<Directive> = Vec::new();
    let mut offset = 0;
    for (i, raw_line) in source.split_inclusive('\n').enumerate() {
        let line_no = i + 1;
        let line = raw_line.trim();
        if let Some(rest) = directive_rest(line) {
            let word = rest.split_whitespace().next().unwrap_or("");
            let direction = match word {
                "up" => Direction::Up,
                "down" => Direction::Down,
                _ => {
                    return Err(err(
                        line_no,
                        None,
                        FileErrorKind::UnknownDirective {
                            directive: format!("migrate:{word}"),
                        },
                    ));
                }
            };
            let options = &rest[word.len()..];
            let section = direction.as_str();
            if let Some(first) = directives.iter().find(|d| d.direction == direction) {
                return Err(err(
                    line_no,
                    None,
                    FileErrorKind::DuplicateSection {
                        section,
                        first_line: first.line,
                    },
                ));
            }
            let mut transaction = true;
            for option in options.split_whitespace() {
                match option {
                    "transaction:false" => transaction = false,
                    "transaction:true" => transaction = true,
                    other => {
                        return Err(err(
                            line_no,
                            None,
                            FileErrorKind::UnknownOption {
                                section,
                                option: other.to_string(),
                            },
                        ));
                    }
                }
            }
            directives.push(Directive {
                direction,
                transaction,
                line: line_no,
                line_start: offset,
                body_start: offset + raw_line.len(),
            });
        }
        offset += raw_line.len();
    }
    let Some(up_idx) = directives.iter().position(|d| d.direction == Direction::Up) else {
        return Err(err(1, None, FileErrorKind::MissingUp));
    };
    // Anything but comments before the first directive would silently never run.
    let first_start = directives.iter().map(|d| d.line).min().unwrap_or(1);
    for (i, l) in source.lines().enumerate().take(first_start - 1) {
        let t = l.trim();
        if !t.is_empty() && !t.starts_with("--") {
            return Err(err(i + 1, None, FileErrorKind::SqlBeforeUp));
        }
    }

    let mut sections: Vec<Section> = Vec::new();
    for (i, d) in directives.iter().enumerate() {
        let end = directives
            .iter()
            .map(|o| o.line_start)
            .filter(|&e| e >= d.body_start)
            .min()
            .unwrap_or(source.len());
        let statements = split_statements(path, source, d.body_start, end)?;
        let section = Section {
            direction: d.direction,
            transaction: d.transaction,
            line: d.line,
            statements,
            body: d.body_start..end,
        };
        if check {
            check_section(path, &section)?;
        }
        if i == up_idx && section.statements.is_empty() {
            return Err(err(d.line, None, FileErrorKind::EmptyUp));
        }
        sections.push(section);
    }
    let up = sections
        .iter()
        .find(|s| s.direction == Direction::Up)
        .cloned()
        .expect("found above");
    let down = sections
        .into_iter()
        .find(|s| s.direction == Direction::Down);

    let mut hasher = Sha256::new();
    hasher.update(if up.transaction {
        b"transaction:true\n" as &[u8]
    } else {
        b"transaction:false\n"
    });
    for s in &up.statements {
        hasher.update(s.sql.as_bytes());
        hasher.update(b";\n");
    }
    let checksum = hex(&hasher.finalize());
    Ok(MigrationFile {
        app: app.to_string(),
        number,
        name,
        path: path.to_path_buf(),
        up,
        down,
        checksum,
        source: source.to_string(),
    })
}

/// `-- migrate:up ...` -> `up ...`.
fn directive_rest(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("--")?.trim_start();
    rest.strip_prefix("migrate:").map(str::trim_end)
}

/// Refuses what cannot work in this section before anything runs.
fn check_section(path: &Path, section: &Section) -> Result<(), FileError> {
    for s in &section.statements {
        let at = |kind| FileError {
            path: path.to_path_buf(),
            line: s.line,
            column: None,
            kind,
        };
        if s.kind.transaction_control {
            return Err(at(FileErrorKind::TransactionControl {
                statement: s.kind.label.clone(),
            }));
        }
        if section.transaction && s.kind.needs_no_transaction {
            return Err(at(FileErrorKind::NeedsNoTransaction {
                statement: s.kind.label.clone(),
                section: section.direction.as_str(),
                section_line: section.line,
            }));
        }
    }
    Ok(())
}

/// Splits `source[start..end]` into statements with PostgreSQL's parser (the lint
/// crate's splitter, the one splitter of the workspace). On a syntax error, names the
/// token the parser stopped at.
fn split_statements(
    path: &Path,
    source: &str,
    start: usize,
    end: usize,
) -> Result<Vec<Statement>, FileError> {
    let split = pgcalm_lint::split(source, start..end).map_err(|e| FileError::syntax(path, e))?;
    Ok(split
        .into_iter()
        .enumerate()
        .map(|(index, s)| {
            let sql = s.sql(source).to_string();
            Statement {
                index,
                line: s.span.line,
                offset: s.span.start,
                kind: classify(s.node.as_ref()),
                checksum: hex(&Sha256::digest(sql.as_bytes())),
                sql,
            }
        })
        .collect())
}

/// 1-based line and column (in characters) of a byte offset.
pub(crate) fn line_col(source: &str, byte: usize) -> (usize, usize) {
    pgcalm_lint::split::line_col(source, byte)
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
