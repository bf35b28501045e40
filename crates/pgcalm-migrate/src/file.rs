//! Migration files: discovery (`migrations/<app>/<NNNN>_<name>.sql`), the dbmate-style
//! sections (`-- migrate:up [transaction:false]` / `-- migrate:down ...`), and statement
//! splitting, keeping each statement's file line. [`MigrationSet::load`] only scans the
//! files (statements, lines and checksums; no parse tree): `showmigrations` needs no
//! more, and the runner parses the files it is about to run ([`MigrationFile::check`]).

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};
use sha2::{Digest, Sha256};

use crate::backfill::{BackfillSpec, BackfillUpdate, directive_options};
use crate::error::{FileError, FileErrorKind, MigrateError};
use crate::statement::{StatementKind, classify, classify_sql};

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
#[derive(Debug, Clone)]
pub struct Statement {
    /// 0-based position in its section.
    pub index: usize,
    /// The statement text, without the trailing semicolon.
    pub sql: String,
    /// 1-based file line of its first keyword.
    pub line: usize,
    /// Byte offset of its first keyword in the file.
    pub offset: usize,
    /// What it is, from its parse tree ([`Statement::kind`]).
    kind: OnceLock<StatementKind>,
    /// SHA-256 of the text (hex): lets an interrupted migration check that the statements
    /// it already ran were not edited before it resumes.
    pub checksum: String,
    /// `-- pgcalm:backfill ...` above it: the runner applies it in keyset batches.
    pub backfill: Option<BackfillSpec>,
}

impl Serialize for Statement {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("Statement", 7)?;
        s.serialize_field("index", &self.index)?;
        s.serialize_field("sql", &self.sql)?;
        s.serialize_field("line", &self.line)?;
        s.serialize_field("offset", &self.offset)?;
        s.serialize_field("kind", self.kind())?;
        s.serialize_field("checksum", &self.checksum)?;
        if let Some(b) = &self.backfill {
            s.serialize_field("backfill", b)?;
        }
        s.end()
    }
}

impl Statement {
    /// A statement of a section (its kind is read from its text when first asked).
    pub fn new(index: usize, sql: String, line: usize, offset: usize) -> Statement {
        Statement {
            index,
            checksum: hex(&Sha256::digest(sql.as_bytes())),
            sql,
            line,
            offset,
            kind: OnceLock::new(),
            backfill: None,
        }
    }

    /// What it is and which locks and timeouts it needs. Known once its file was parsed
    /// ([`MigrationFile::check`], [`parse_file`]); otherwise its text is parsed now.
    pub fn kind(&self) -> &StatementKind {
        self.kind.get_or_init(|| classify_sql(&self.sql))
    }

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

    /// Parses the statements with PostgreSQL's parser and checks that each section can
    /// run: no syntax error, no BEGIN/COMMIT, nothing that cannot run inside a
    /// transaction in a transactional section. [`MigrationSet::load`] does not parse
    /// (`showmigrations` needs no more); the runner checks the files it is about to run,
    /// before it runs any. A file from [`parse_file`] is checked already.
    pub fn check(&self) -> Result<(), FileError> {
        let mut sections: Vec<&Section> = [Some(&self.up), self.down.as_ref()]
            .into_iter()
            .flatten()
            .collect();
        sections.sort_by_key(|s| s.line);
        // The trees (and the decoder's recursion on deep ones) stay on a parse stack.
        pgcalm_lint::with_parse_stack(|| {
            for section in sections {
                self.parse_section(section)?;
                check_section(&self.path, section)?;
            }
            Ok(())
        })
    }

    /// Parses a section's statements and keeps each one's kind.
    fn parse_section(&self, section: &Section) -> Result<(), FileError> {
        let mut statements = section.statements.iter();
        let mut differs = None;
        pgcalm_lint::for_each_statement(&self.source, section.body.clone(), |parsed| {
            match statements.next() {
                Some(s) if s.offset == parsed.span.start && s.sql == parsed.sql(&self.source) => {
                    let _ = s.kind.set(classify(parsed.node.as_ref()));
                }
                _ => {
                    differs.get_or_insert(parsed.span.line);
                }
            }
        })
        .map_err(|e| FileError::syntax(&self.path, e))?;
        if let Some(line) = differs.or(statements.next().map(|s| s.line)) {
            return Err(FileError {
                path: self.path.clone(),
                line,
                column: None,
                kind: FileErrorKind::StatementBoundaries,
            });
        }
        Ok(())
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
        let source = read_source(&path)?;
        let file = parse_file_with(app, &path, source, Read::Scan)?;
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
    parse_file_with(app, path, source.to_string(), Read::ParseAndCheck)
}

/// Like [`parse_file`], but keeps statements a section cannot run (CONCURRENTLY in a
/// transactional section, BEGIN/COMMIT): lint reports them as findings with the rest.
/// A file name without a number gets number 0.
pub fn parse_file_unchecked(
    app: &str,
    path: &Path,
    source: &str,
) -> Result<MigrationFile, FileError> {
    parse_file_with(app, path, source.to_string(), Read::Parse)
}

/// How much of a file [`parse_file_with`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Read {
    /// Statements from the scanner: no parse tree, no syntax check
    /// ([`MigrationSet::load`]; [`MigrationFile::check`] does the rest).
    Scan,
    /// Parsed (syntax errors), each statement's kind known.
    Parse,
    /// Parsed, and each section checked ([`check_section`]).
    ParseAndCheck,
}

/// Reads a file as UTF-8; a byte that is not names its line and column.
pub fn read_source(path: &Path) -> Result<String, FileError> {
    let bytes = std::fs::read(path).map_err(|e| FileError {
        path: path.to_path_buf(),
        line: 1,
        column: None,
        kind: FileErrorKind::Unreadable(e.to_string()),
    })?;
    source_from_bytes(path, bytes)
}

/// The text of `bytes` (read from `path`, named in the error): UTF-8, or an error at
/// the line and column of the first byte that is not.
pub fn source_from_bytes(path: &Path, bytes: Vec<u8>) -> Result<String, FileError> {
    String::from_utf8(bytes).map_err(|e| {
        let bytes = e.as_bytes();
        let valid = e.utf8_error().valid_up_to();
        let line_start = bytes[..valid]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        let before = std::str::from_utf8(&bytes[line_start..valid]).unwrap_or_default();
        FileError {
            path: path.to_path_buf(),
            line: bytes[..valid].iter().filter(|&&b| b == b'\n').count() + 1,
            column: Some(before.chars().count() + 1),
            kind: FileErrorKind::NotUtf8 { byte: bytes[valid] },
        }
    })
}

/// A section's directive and the byte range of its SQL, before its statements are read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionHeader {
    /// Up or down.
    pub direction: Direction,
    /// False for `transaction:false`.
    pub transaction: bool,
    /// 1-based line of the `-- migrate:...` directive.
    pub line: usize,
    /// Byte range of the section's SQL (after the directive line).
    pub body: Range<usize>,
}

/// The sections of a migration file, in file order, from its `-- migrate:up|down
/// [options]` lines (nothing is parsed): an up section, each direction once, known
/// options, no SQL before the first.
pub fn section_headers(path: &Path, source: &str) -> Result<Vec<SectionHeader>, FileError> {
    let err = |line: usize, kind: FileErrorKind| FileError {
        path: path.to_path_buf(),
        line,
        column: None,
        kind,
    };
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
    if !directives.iter().any(|d| d.direction == Direction::Up) {
        return Err(err(1, FileErrorKind::MissingUp));
    }
    // Anything but comments before the first directive would silently never run.
    let first_start = directives.iter().map(|d| d.line).min().unwrap_or(1);
    for (i, l) in source.lines().enumerate().take(first_start - 1) {
        let t = l.trim();
        if !t.is_empty() && !t.starts_with("--") {
            return Err(err(i + 1, FileErrorKind::SqlBeforeUp));
        }
    }
    Ok(directives
        .iter()
        .map(|d| SectionHeader {
            direction: d.direction,
            transaction: d.transaction,
            line: d.line,
            body: d.body_start
                ..directives
                    .iter()
                    .map(|o| o.line_start)
                    .filter(|&e| e >= d.body_start)
                    .min()
                    .unwrap_or(source.len()),
        })
        .collect())
}

/// Reads a migration file from its text (kept in the result, not copied).
fn parse_file_with(
    app: &str,
    path: &Path,
    source: String,
    read: Read,
) -> Result<MigrationFile, FileError> {
    let check = read != Read::Parse;
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

    let mut sections: Vec<Section> = Vec::new();
    for header in section_headers(path, &source)? {
        let statements = match read {
            Read::Scan => scanned_statements(path, &source, header.body.clone())?,
            Read::Parse | Read::ParseAndCheck => {
                parsed_statements(path, &source, header.body.clone())?
            }
        };
        let mut statements = statements;
        attach_backfills(path, &source, header.body.clone(), &mut statements)?;
        let section = Section {
            direction: header.direction,
            transaction: header.transaction,
            line: header.line,
            statements,
            body: header.body,
        };
        if read == Read::ParseAndCheck {
            check_section(path, &section)?;
        }
        if section.direction == Direction::Up && section.statements.is_empty() {
            return Err(err(header.line, None, FileErrorKind::EmptyUp));
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
        // A backfill directive changes how the statement runs (files without one keep
        // the checksums they had).
        if let Some(b) = &s.backfill {
            hasher.update(format!("-- {} {}\n", crate::backfill::DIRECTIVE, b.text).as_bytes());
        }
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
        source,
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
        let kind = s.kind();
        if kind.transaction_control {
            return Err(at(FileErrorKind::TransactionControl {
                statement: kind.label.clone(),
            }));
        }
        if let Some(backfill) = &s.backfill {
            if section.transaction {
                return Err(FileError {
                    line: backfill.line,
                    ..at(FileErrorKind::BackfillInTransaction {
                        section: section.direction.as_str(),
                        section_line: section.line,
                    })
                });
            }
            if let Err(e) = BackfillUpdate::of(&s.sql) {
                return Err(at(FileErrorKind::BackfillNotUpdate {
                    reason: e.0,
                    directive_line: backfill.line,
                }));
            }
        }
        if section.transaction && kind.needs_no_transaction {
            return Err(at(FileErrorKind::NeedsNoTransaction {
                statement: kind.label.clone(),
                section: section.direction.as_str(),
                section_line: section.line,
            }));
        }
    }
    Ok(())
}

/// Gives each statement the `-- pgcalm:backfill` directive on a line above it (between
/// the statement before and it). A directive with bad options, inside a statement or
/// with no statement after it in its section is an error at its line.
fn attach_backfills(
    path: &Path,
    source: &str,
    body: Range<usize>,
    statements: &mut [Statement],
) -> Result<(), FileError> {
    let (first_line, _) = line_col(source, body.start);
    let mut offset = body.start;
    for (i, raw) in source[body.clone()].split_inclusive('\n').enumerate() {
        let line = first_line + i;
        let here = offset;
        offset += raw.len();
        let Some(options) = directive_options(raw) else {
            continue;
        };
        let err = |kind| FileError {
            path: path.to_path_buf(),
            line,
            column: None,
            kind,
        };
        // A comment line inside a statement's text is not a directive for pgcalm.
        if statements
            .iter()
            .any(|s| s.offset < here && here < s.offset + s.sql.len())
        {
            continue;
        }
        let spec = BackfillSpec::parse(options, line)
            .map_err(|message| err(FileErrorKind::BackfillOption { message }))?;
        let Some(next) = statements.iter_mut().find(|s| s.offset > here) else {
            return Err(err(FileErrorKind::BackfillWithoutStatement));
        };
        if let Some(other) = &next.backfill {
            return Err(err(FileErrorKind::BackfillOption {
                message: format!(
                    "a second directive for the statement on line {} (the first is on line {})",
                    next.line, other.line
                ),
            }));
        }
        next.backfill = Some(spec);
    }
    Ok(())
}

/// A section's statements, parsed with PostgreSQL's parser (the lint crate's splitter,
/// the one splitter of the workspace), each with its kind. On a syntax error, names the
/// token the parser stopped at.
fn parsed_statements(
    path: &Path,
    source: &str,
    body: Range<usize>,
) -> Result<Vec<Statement>, FileError> {
    let mut out = Vec::new();
    pgcalm_lint::with_parse_stack(|| {
        pgcalm_lint::for_each_statement(source, body, |s| {
            let statement = Statement::new(
                s.index,
                s.sql(source).to_string(),
                s.span.line,
                s.span.start,
            );
            let _ = statement.kind.set(classify(s.node.as_ref()));
            out.push(statement);
        })
    })
    .map_err(|e| FileError::syntax(path, e))?;
    Ok(out)
}

/// A section's statements as the scanner cuts them (no parse tree; their kinds are
/// read when asked, or when the file is checked).
fn scanned_statements(
    path: &Path,
    source: &str,
    body: Range<usize>,
) -> Result<Vec<Statement>, FileError> {
    Ok(pgcalm_lint::split_unparsed(source, body)
        .map_err(|e| FileError::syntax(path, e))?
        .into_iter()
        .map(|s| {
            Statement::new(
                s.index,
                s.sql(source).to_string(),
                s.span.line,
                s.span.start,
            )
        })
        .collect())
}

/// 1-based line and column (in characters) of a byte offset.
pub(crate) fn line_col(source: &str, byte: usize) -> (usize, usize) {
    pgcalm_lint::line_col(source, byte)
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
