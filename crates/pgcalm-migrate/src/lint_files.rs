//! `pgcalm lint`'s driver over files and directories: finds the SQL files (every `*.sql`
//! below a directory, in the order their tool runs them: [`pgcalm_lint::run_order`]), keeps only those changed since
//! a git ref (`--since`), cuts each into the pieces its migration tool runs
//! ([`pgcalm_lint::plan`], with the tool's files beside it), lints each piece with
//! [`lint_source`], carries what earlier files taught of indexes and their tables to the
//! later ones, and with `--fix` writes the safe SQL in place (atomically) or makes the
//! diff. It never prints: what happens along the way comes to the caller as
//! [`LintNote`]s, in order.
//!
//! ```no_run
//! use pgcalm_migrate::lint_files::{LintFiles, LintNote};
//!
//! let linted = LintFiles::new(vec!["migrations".into()], Default::default())
//!     .run(|note| {
//!         if let LintNote::NotLinted { path, why } = note {
//!             eprintln!("note: {path}: not linted: {why}");
//!         }
//!     })
//!     .unwrap();
//! for piece in &linted.pieces {
//!     println!("{}: {} findings", piece.path, piece.lint.result.findings.len());
//! }
//! ```

use std::collections::HashSet;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use pgcalm_lint::{
    LintOptions, Plan, RuleId, Schema, Sidecars, StatementLockReport, TableSizes, TableStats, Tool,
    TxMode,
};
use pgcalm_pg::PgError;
use tokio_postgres::Client;

use crate::error::FileError;
use crate::file::{read_source, source_from_bytes};
use crate::safety::{
    LearnedState, SourceLint, is_migration_source, lint_source, lint_source_learning,
};

/// What to lint and how: the request of one `pgcalm lint` run.
#[derive(Debug, Clone)]
pub struct LintFiles {
    /// Files and directories (every `*.sql` below, recursively); `-` reads stdin.
    pub paths: Vec<PathBuf>,
    /// The options every file starts from (its tool sets the transaction mode).
    pub options: LintOptions,
    /// The tool that runs every file; `None`: each file's is detected from its layout
    /// (none under `options.assume_in_transaction`).
    pub tool: Option<Tool>,
    /// Lint down migrations too.
    pub include_down: bool,
    /// Also report each statement's locks on existing relations.
    pub locks: bool,
    /// Lint only the files added or changed since this git ref.
    pub since: Option<String>,
    /// Put the safe SQL of the findings in place.
    pub fix: Option<FixMode>,
}

/// What `--fix` does with a file's fixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FixMode {
    /// Rewrite the file in place.
    Write,
    /// Leave it and give the unified diff ([`LintNote::Fixed`]'s `diff`).
    Diff,
}

/// What happened along the way, in order (the caller shows it as it comes).
#[derive(Debug, Clone)]
pub enum LintNote {
    /// A file could not be read or parsed (it is also in [`LintedFiles::unparsed`]).
    Unparsed {
        /// The error, with file, line and column.
        error: FileError,
    },
    /// Its tool does not run this file going up.
    NotLinted {
        /// As given or found.
        path: String,
        /// Why not.
        why: String,
    },
    /// A finding's safe SQL is not right where the file runs.
    FixRefused {
        /// As given or found.
        path: String,
        /// The finding's line.
        line: usize,
        /// The finding's rule.
        rule: RuleId,
        /// What re-linting the fix in place found.
        problems: Vec<String>,
    },
    /// With its fixes in place the file would not parse: it is left as it is.
    NotFixed {
        /// As given or found.
        path: String,
        /// The parse error.
        error: FileError,
    },
    /// A file was fixed (or, [`FixMode::Diff`], would be).
    Fixed {
        /// As given or found.
        path: String,
        /// Each fix: `line 5 require-concurrent-index-creation`.
        fixes: Vec<String>,
        /// [`FixMode::Diff`]: the unified diff (`--- a/PATH`, `+++ b/PATH`).
        diff: Option<String>,
    },
}

/// One linted piece of a file: the whole file, or one migration of a tool's SQL output.
#[derive(Debug, Clone)]
pub struct LintedPiece {
    /// As given (or found under a directory); `<stdin>` for `-`.
    pub path: String,
    /// Which migration of a tool's SQL output (Alembic, Django); `None`: the file.
    pub label: Option<String>,
    /// How its tool runs it (`golang-migrate ... (not in a transaction)`); `None`: no tool.
    pub mode: Option<String>,
    /// Its text (the file's, with what is not this piece blanked: the spans point into it).
    pub source: Arc<String>,
    /// Kind, statements, findings.
    pub lint: SourceLint,
    /// Each statement's locks (with [`LintFiles::locks`]).
    pub locks: Vec<StatementLockReport>,
}

/// A file that could not be read or parsed: it was not linted.
#[derive(Debug, Clone)]
pub struct UnparsedFile {
    /// As given (or found).
    pub path: String,
    /// Why, where.
    pub error: FileError,
}

/// What a run linted.
#[derive(Debug, Clone, Default)]
pub struct LintedFiles {
    /// Every piece linted, in file order.
    pub pieces: Vec<LintedPiece>,
    /// The files that could not be read or parsed.
    pub unparsed: Vec<UnparsedFile>,
}

/// What stops a run before it has linted every file.
#[derive(Debug, thiserror::Error)]
pub enum LintFilesError {
    /// A path that is neither a file nor a directory nor `-`.
    #[error("{}: no such file or directory (give .sql files, directories, or - for stdin)", .0.display())]
    NoSuchPath(PathBuf),
    /// A directory could not be walked.
    #[error("reading directory {}", path.display())]
    ReadDir {
        /// The directory given.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// git could not be started.
    #[error("running git in {} for --since", dir.display())]
    GitUnavailable {
        /// Where.
        dir: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// git said no (an unknown ref, not a repository).
    #[error("--since {git_ref}: git {args} in {} failed: {stderr}", dir.display())]
    Git {
        /// The ref given.
        git_ref: String,
        /// git's arguments.
        args: String,
        /// Where.
        dir: PathBuf,
        /// What git said.
        stderr: String,
    },
    /// `--fix` with stdin.
    #[error("--fix rewrites files: give their paths, not - (stdin)")]
    FixStdin,
    /// Stdin could not be read.
    #[error("reading SQL from stdin")]
    Stdin(#[source] std::io::Error),
    /// A fixed file could not be written.
    #[error("--fix: {what} {}", path.display())]
    FixFile {
        /// resolving, reading.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The fixed text could not replace the file.
    #[error("--fix: writing {} (through {}) failed: {source}; the file is unchanged", path.display(), tmp.display())]
    FixWrite {
        /// The file.
        path: PathBuf,
        /// The temporary file.
        tmp: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

const STDIN: &str = "<stdin>";

impl LintFiles {
    /// Lints `paths` with `options` (tools detected, no locks, no `--since`, no fix).
    pub fn new(paths: Vec<PathBuf>, options: LintOptions) -> LintFiles {
        LintFiles {
            paths,
            options,
            tool: None,
            include_down: false,
            locks: false,
            since: None,
            fix: None,
        }
    }

    /// Lints every file. A file that cannot be read or parsed is a [`LintNote::Unparsed`]
    /// as it comes and the others are still linted; what stops the run is an error.
    pub fn run(&self, mut on_note: impl FnMut(LintNote)) -> Result<LintedFiles, LintFilesError> {
        let (files, changed) = self.files()?;
        // --since: only the changed files are linted; the unchanged ones before the last
        // of them are still read for the indexes they create (below).
        let linted_file = |name: &str, path: &Path| {
            changed
                .as_ref()
                .is_none_or(|c| name == STDIN || c.contains(&canonical(path)))
        };
        let last = files
            .iter()
            .rposition(|(name, path)| linted_file(name, path))
            .map_or(0, |i| i + 1);
        let mut linted = LintedFiles::default();
        // What earlier files (in migration order) told of indexes and their tables, on top
        // of the schema's: `DROP INDEX i` in a later file then locks a known table, one its
        // transaction may already hold.
        let mut history: Option<Arc<Schema>> = self.options.schema.clone();
        for (i, (name, path)) in files.into_iter().take(last).enumerate() {
            if !linted_file(&name, &path) {
                if let Ok(source) = read_source(&path) {
                    let history = Arc::make_mut(history.get_or_insert_with(Default::default));
                    for up in self.up_pieces(&path, &source) {
                        let _ = history.learn_from_sql(&up);
                    }
                }
                continue;
            }
            let source = if name == STDIN {
                if self.fix.is_some() {
                    return Err(LintFilesError::FixStdin);
                }
                let mut bytes = Vec::new();
                std::io::stdin()
                    .read_to_end(&mut bytes)
                    .map_err(LintFilesError::Stdin)?;
                source_from_bytes(Path::new(&name), bytes)
            } else {
                read_source(&path)
            };
            let source = match source {
                Ok(s) => s,
                Err(error) => {
                    self.unparsed(&name, error, &mut linted, &mut on_note);
                    continue;
                }
            };
            let options = LintOptions {
                schema: history.clone(),
                ..self.options.clone()
            };
            let file = File {
                name: &name,
                path: &path,
                options: &options,
            };
            let Some(pieces) = self.pieces(file, &source, &mut on_note) else {
                continue;
            };
            let pieces = match self.fix {
                Some(mode) => self.fix_file(file, &source, pieces, mode, &mut on_note)?,
                None => pieces,
            };
            // The last file teaches no later one. A file of one piece teaches what its
            // lint learned; one of several (Django's or Alembic's SQL output, each piece
            // linted from the same start) is read again for it.
            let teaches = !is_down_file(&path) && i + 1 != last;
            let one_piece = pieces.len() == 1;
            let ups: Vec<String> = if teaches && !one_piece {
                pieces
                    .iter()
                    .filter(|p| p.label.as_deref() != Some("down"))
                    .map(|p| up_section(&p.text).to_string())
                    .collect()
            } else {
                Vec::new()
            };
            let mut learned = Vec::new();
            for piece in pieces {
                let up = piece.label.as_deref() != Some("down");
                let state = self.lint_piece(&name, piece, &mut linted, &mut on_note);
                if teaches && one_piece && up {
                    learned.extend(state);
                }
            }
            drop(options);
            if !learned.is_empty() || !ups.is_empty() {
                let history = Arc::make_mut(history.get_or_insert_with(Default::default));
                for state in learned {
                    history.learn_from_state(state);
                }
                for up in ups {
                    // A file that does not parse was reported above; it teaches nothing.
                    let _ = history.learn_from_sql(&up);
                }
            }
        }
        Ok(linted)
    }

    /// The files to read, in order, each as named in reports; with `--since`, the changed
    /// ones (canonical paths).
    #[allow(clippy::type_complexity)]
    fn files(&self) -> Result<(Vec<(String, PathBuf)>, Option<HashSet<PathBuf>>), LintFilesError> {
        let mut files: Vec<(String, PathBuf)> = Vec::new();
        let mut changed: Option<HashSet<PathBuf>> = None;
        for p in &self.paths {
            if let Some(git_ref) = &self.since
                && p.as_os_str() != "-"
            {
                let dir = if p.is_dir() {
                    p.as_path()
                } else {
                    p.parent().unwrap_or(Path::new("."))
                };
                let dir = if dir.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    dir
                };
                changed
                    .get_or_insert_with(Default::default)
                    .extend(changed_since(dir, git_ref)?);
            }
            if p.as_os_str() == "-" {
                files.push((STDIN.into(), p.clone()));
            } else if p.is_dir() {
                let mut found = Vec::new();
                sql_files_under(p, &mut found).map_err(|source| LintFilesError::ReadDir {
                    path: p.clone(),
                    source,
                })?;
                pgcalm_lint::sort_in_run_order(&mut found);
                files.extend(found.into_iter().map(|f| (f.display().to_string(), f)));
            } else if p.is_file() {
                files.push((p.display().to_string(), p.clone()));
            } else {
                return Err(LintFilesError::NoSuchPath(p.clone()));
            }
        }
        Ok((files, changed))
    }

    /// The tool that runs a file: the one given; else none under
    /// `assume_in_transaction` (as before tools); else the layout's.
    fn tool_of(&self, path: &Path, source: &str) -> Option<Tool> {
        self.tool.or_else(|| {
            (!self.options.assume_in_transaction)
                .then(|| pgcalm_lint::detect(path, source))
                .flatten()
        })
    }

    /// The texts of a file its tool runs going up (none for a down migration), quietly:
    /// for what they teach of indexes, not to lint.
    fn up_pieces(&self, path: &Path, source: &str) -> Vec<String> {
        if is_down_file(path) {
            return Vec::new();
        }
        let Some(tool) = self.tool_of(path, source) else {
            return vec![up_section(source).to_string()];
        };
        match pgcalm_lint::plan(tool, path, source, &sidecars(tool, path), false) {
            Plan::Skip(_) => Vec::new(),
            Plan::Lint(pieces) => pieces
                .into_iter()
                .filter(|p| p.label.as_deref() != Some("down"))
                .map(|p| p.text)
                .collect(),
        }
    }

    /// The pieces of a file as its tool runs them; `None` when the tool does not run it.
    fn pieces(
        &self,
        file: File<'_>,
        source: &str,
        on_note: &mut impl FnMut(LintNote),
    ) -> Option<Vec<PieceToLint>> {
        let Some(tool) = self.tool_of(file.path, source) else {
            return Some(vec![PieceToLint {
                label: None,
                mode: None,
                text: source.to_string(),
                options: file.options.clone(),
            }]);
        };
        let sidecars = sidecars(tool, file.path);
        match pgcalm_lint::plan(tool, file.path, source, &sidecars, self.include_down) {
            Plan::Skip(why) => {
                on_note(LintNote::NotLinted {
                    path: file.name.to_string(),
                    why,
                });
                None
            }
            Plan::Lint(pieces) => Some(
                pieces
                    .into_iter()
                    .map(|p| {
                        let statements = match p.mode {
                            TxMode::SimpleQuery => {
                                pgcalm_lint::split_unparsed(&p.text, 0..p.text.len())
                                    .map_or(2, |s| s.len())
                            }
                            _ => 0,
                        };
                        let options = LintOptions {
                            assume_in_transaction: p.mode.in_transaction(statements),
                            simple_queries: p.simple_queries,
                            ..file.options.clone()
                        };
                        let mode = format!(
                            "{} ({})",
                            p.why,
                            if options.assume_in_transaction {
                                "in one transaction"
                            } else {
                                "not in a transaction"
                            }
                        );
                        PieceToLint {
                            label: p.label,
                            mode: Some(mode),
                            text: p.text,
                            options,
                        }
                    })
                    .collect(),
            ),
        }
    }

    /// Lints one piece into `linted`.
    fn lint_piece(
        &self,
        name: &str,
        piece: PieceToLint,
        linted: &mut LintedFiles,
        on_note: &mut impl FnMut(LintNote),
    ) -> LearnedState {
        let file = Path::new(name);
        match lint_source_learning(file, &piece.text, &piece.options, self.locks) {
            Ok((lint, locks, learned)) => {
                linted.pieces.push(LintedPiece {
                    path: name.to_string(),
                    label: piece.label,
                    mode: piece.mode,
                    source: Arc::new(piece.text),
                    lint,
                    locks,
                });
                learned
            }
            Err(error) => {
                self.unparsed(name, error, linted, on_note);
                None
            }
        }
    }

    fn unparsed(
        &self,
        name: &str,
        error: FileError,
        linted: &mut LintedFiles,
        on_note: &mut impl FnMut(LintNote),
    ) {
        on_note(LintNote::Unparsed {
            error: error.clone(),
        });
        linted.unparsed.push(UnparsedFile {
            path: name.to_string(),
            error,
        });
    }

    /// `--fix`: puts in place the fixes that are right where each piece runs
    /// ([`pgcalm_lint::safe_edits`]), writes the file (atomically) or makes the diff, and
    /// returns the pieces of the fixed text to report what remains. A file whose fixed
    /// text would not parse is left as it is.
    fn fix_file(
        &self,
        file: File<'_>,
        source: &str,
        pieces: Vec<PieceToLint>,
        mode: FixMode,
        on_note: &mut impl FnMut(LintNote),
    ) -> Result<Vec<PieceToLint>, LintFilesError> {
        let name = Path::new(file.name);
        let mut edits = Vec::new();
        for piece in &pieces {
            let Ok(lint) = lint_source(name, &piece.text, &piece.options) else {
                continue; // reported when the pieces are linted
            };
            let relint = |t: &str| {
                lint_source(name, t, &piece.options).ok().map(|l| {
                    l.result
                        .findings
                        .iter()
                        .map(|f| (f.rule, f.span.start))
                        .collect()
                })
            };
            let (safe, refused) =
                pgcalm_lint::safe_edits(&piece.text, &lint.result.findings, relint);
            for r in refused {
                on_note(LintNote::FixRefused {
                    path: file.name.to_string(),
                    line: r.line,
                    rule: r.rule,
                    problems: r.problems,
                });
            }
            edits.extend(safe);
        }
        if edits.is_empty() {
            return Ok(pieces);
        }
        let fixed = pgcalm_lint::apply_edits(source, &edits);
        let Some(fixed_pieces) = self.pieces(file, &fixed, on_note) else {
            return Ok(pieces);
        };
        for piece in &fixed_pieces {
            if let Err(error) = lint_source(name, &piece.text, &piece.options) {
                on_note(LintNote::NotFixed {
                    path: file.name.to_string(),
                    error,
                });
                return Ok(pieces);
            }
        }
        let fixes = edits
            .iter()
            .map(|e| format!("line {} {}", e.line, e.rule))
            .collect();
        let diff = match mode {
            FixMode::Diff => Some(unified_diff(file.name, source, &fixed)),
            FixMode::Write => {
                write_atomically(file.path, &fixed)?;
                None
            }
        };
        on_note(LintNote::Fixed {
            path: file.name.to_string(),
            fixes,
            diff,
        });
        Ok(fixed_pieces)
    }
}

/// The file being linted: its name in reports, its path, its options.
#[derive(Clone, Copy)]
struct File<'a> {
    name: &'a str,
    path: &'a Path,
    options: &'a LintOptions,
}

/// One piece of a file to lint: the file's text with what is not this piece blanked
/// (same offsets) and the options it runs with.
struct PieceToLint {
    label: Option<String>,
    mode: Option<String>,
    text: String,
    options: LintOptions,
}

/// The files `git diff --name-only --diff-filter=AM REF` names under the repository of
/// `dir`, as canonical paths.
fn changed_since(dir: &Path, git_ref: &str) -> Result<HashSet<PathBuf>, LintFilesError> {
    let git = |args: &[&str]| -> Result<String, LintFilesError> {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .output()
            .map_err(|source| LintFilesError::GitUnavailable {
                dir: dir.to_path_buf(),
                source,
            })?;
        if !out.status.success() {
            return Err(LintFilesError::Git {
                git_ref: git_ref.to_string(),
                args: args.join(" "),
                dir: dir.to_path_buf(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let top = PathBuf::from(git(&["rev-parse", "--show-toplevel"])?.trim());
    let names = git(&["diff", "--name-only", "--diff-filter=AM", git_ref, "--"])?;
    Ok(names
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| canonical(&top.join(l)))
        .collect())
}

fn canonical(p: &Path) -> PathBuf {
    p.canonicalize().unwrap_or_else(|_| p.to_path_buf())
}

/// What a file's tool puts beside it that changes how it runs.
fn sidecars(tool: Tool, path: &Path) -> Sidecars {
    let read = |p: PathBuf| std::fs::read_to_string(p).ok();
    match tool {
        Tool::Diesel => Sidecars {
            diesel_metadata: path.parent().and_then(|d| read(d.join("metadata.toml"))),
            ..Sidecars::default()
        },
        Tool::Flyway => {
            let mut conf = path.as_os_str().to_owned();
            conf.push(".conf");
            Sidecars {
                flyway_conf: read(PathBuf::from(conf)),
                ..Sidecars::default()
            }
        }
        _ => Sidecars::default(),
    }
}

/// A down migration (`down.sql`, `*.down.sql`): what it drops is still there for the
/// files after it.
fn is_down_file(path: &Path) -> bool {
    path.file_stem()
        .and_then(|s| s.to_str())
        .is_some_and(|s| s == "down" || s.ends_with(".down") || s.ends_with("_down"))
}

/// A pgcalm migration's text up to its `-- migrate:down` section.
fn up_section(text: &str) -> &str {
    if !is_migration_source(text) {
        return text;
    }
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        if line.trim_start().starts_with("-- migrate:down") {
            return &text[..at];
        }
        at += line.len();
    }
    text
}

/// A unified diff (`--- a/NAME`, `+++ b/NAME`, 3 lines of context).
fn unified_diff(name: &str, old: &str, new: &str) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(&format!("a/{name}"), &format!("b/{name}"))
        .to_string()
}

/// Replaces `path`'s content: a temporary file in the same directory with the file's
/// permissions, synced, then renamed over it (a symlink's target is replaced).
fn write_atomically(path: &Path, text: &str) -> Result<(), LintFilesError> {
    use std::io::Write as _;
    let target = path
        .canonicalize()
        .map_err(|source| LintFilesError::FixFile {
            what: "resolving",
            path: path.to_path_buf(),
            source,
        })?;
    let dir = target.parent().unwrap_or(Path::new("."));
    let permissions = std::fs::metadata(&target)
        .map_err(|source| LintFilesError::FixFile {
            what: "reading",
            path: target.clone(),
            source,
        })?
        .permissions();
    let file_name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.pgcalm-fix.{}", std::process::id()));
    let written = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create_new(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.set_permissions(permissions)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &target)
    })();
    if let Err(source) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(LintFilesError::FixWrite {
            path: target,
            tmp,
            source,
        });
    }
    Ok(())
}

fn sql_files_under(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let hidden = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if hidden {
            continue;
        }
        if path.is_dir() {
            sql_files_under(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "sql") {
            out.push(path);
        }
    }
    Ok(())
}

/// The estimated rows and size of `tables` (as [`pgcalm_lint::sized_tables`] names them:
/// the finding's text and its `regclass`), read in one query
/// ([`pgcalm_pg::catalog::table_sizes`]); a table the database does not have is left out.
pub async fn read_table_sizes(
    client: &Client,
    tables: &[(String, String)],
    small_table_rows: f64,
) -> Result<TableSizes, PgError> {
    let names: Vec<String> = tables
        .iter()
        .map(|(_, regclass)| regclass.clone())
        .collect();
    let sizes = pgcalm_pg::catalog::table_sizes(client, &names).await?;
    let tables = sizes
        .into_iter()
        .filter_map(|s| {
            let (table, _) = tables.iter().find(|(_, regclass)| *regclass == s.name)?;
            Some((
                table.clone(),
                TableStats {
                    rows: s.rows,
                    bytes: s.bytes,
                },
            ))
        })
        .collect();
    Ok(TableSizes {
        small_table_rows,
        tables,
    })
}
