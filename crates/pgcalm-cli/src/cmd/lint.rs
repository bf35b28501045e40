//! `pgcalm lint [PATHS|-]`: finds risky statements before they run, with PostgreSQL's
//! own grammar. Files or directories (every `*.sql` below, recursively; a file with a
//! `-- migrate:up` line is a pgcalm migration file, anything else plain SQL), or stdin
//! with `-`. Each file runs the way its migration tool runs it (`--tool`, `[lint] tool`,
//! or detected from the layout: [`pgcalm_lint::tool`]). Exit 0 clean, 1 findings (as
//! `--fail-on` says), 2 usage or parse errors. `--fix` rewrites each file with the safe
//! SQL that is right where it runs (`--dry-run`: the diff instead) and reports what
//! remains.

use std::io::{IsTerminal as _, Read as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use pgcalm_lint::{
    LintOptions, Plan, RuleId, Severity, Sidecars, StatementLockReport, TableSizes, TableStats,
    Tool, TxMode,
};
use pgcalm_migrate::file::{read_source, source_from_bytes};
use pgcalm_migrate::safety::{lint_source, lint_source_and_locks};

use crate::output::Exit;
use crate::output::lint_report::{FileReport, Unparsed, render, with_locks};
use crate::settings::{LintArgs, OutputFormat, Settings};

/// Flags of `pgcalm lint`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// SQL files or directories (every *.sql below, recursively); `-` reads stdin
    /// [default: the migrations directory]
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub lint: LintArgs,
    /// Also show every statement's locks on existing tables (what it blocks, whether it
    /// rewrites or scans), risky or not
    #[arg(long)]
    pub locks: bool,
    /// List the rules and exit
    #[arg(long)]
    pub list_rules: bool,
    /// Which findings fail the run (exit 1): any finding (warning), errors only
    /// (error), or none (never: parse errors do not fail it either)
    #[arg(long, value_enum, default_value_t = FailOn::Warning, value_name = "LEVEL")]
    pub fail_on: FailOn,
    /// Lint only the files added or changed since this git ref (`git diff --name-only
    /// --diff-filter=AM REF`: committed and uncommitted changes to tracked files)
    #[arg(long, value_name = "GIT_REF")]
    pub since: Option<String>,
    /// Rewrite each file in place with the safe SQL of its findings, where that SQL is
    /// right where the file runs (its tool and transaction mode); what cannot be fixed
    /// stays reported
    #[arg(long)]
    pub fix: bool,
    /// With --fix: print a unified diff of the fixes instead of writing them
    #[arg(long, alias = "diff", requires = "fix")]
    pub dry_run: bool,
}

/// `--fail-on`: the least severe finding that fails the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum FailOn {
    /// Errors fail the run; warnings are reported only.
    Error,
    /// Errors and warnings fail the run.
    Warning,
    /// Nothing fails the run (exit 0 whatever is found).
    Never,
}

/// What `pgcalm lint` found in every file it was given.
struct Linted {
    reports: Vec<FileReport>,
    unparsed: Vec<Unparsed>,
    /// Each report's statements with their locks (`--locks`).
    locks: Vec<Vec<StatementLockReport>>,
}

/// Runs `pgcalm lint`.
pub(crate) async fn run(settings: &Settings, args: Args) -> anyhow::Result<()> {
    if args.list_rules {
        print!("{}", list_rules());
        return Ok(());
    }
    // Options once: reading them parses the --schema file.
    let linted = settings
        .lint_options()
        .and_then(|options| lint_all(settings, &args, &options));
    let Linted {
        mut reports,
        unparsed,
        locks,
    } = match linted {
        Ok(x) => x,
        Err(e) => {
            crate::output::error(&e);
            return Err(Exit(2).into());
        }
    };
    if let Some(sizes) = table_sizes(settings, &reports).await {
        for r in &mut reports {
            pgcalm_lint::grade_by_size(&mut r.result.findings, &sizes);
        }
    }
    let fancy = settings.format == OutputFormat::Text && std::io::stdout().is_terminal();
    let mut out = render(&reports, &unparsed, settings.format, fancy);
    if args.locks {
        out = with_locks(out, &reports, &locks, settings.format)?;
    }
    say!("{}", out.trim_end_matches('\n'));
    let failing = |s: Severity| match args.fail_on {
        FailOn::Error => s == Severity::Error,
        FailOn::Warning => true,
        FailOn::Never => false,
    };
    if !unparsed.is_empty() && args.fail_on != FailOn::Never {
        return Err(Exit(2).into());
    }
    let findings = reports.iter().flat_map(|r| &r.result.findings);
    if findings.map(|f| f.severity).any(failing) {
        return Err(Exit(1).into());
    }
    Ok(())
}

/// With a database (`--database-url`, or the embedded server when it is running: lint
/// starts none), the estimated rows and size of every table a size-dependent finding is
/// on, read in one query. `None` without a database, or when it cannot be read (said on
/// stderr: the findings keep their severities).
async fn table_sizes(settings: &Settings, reports: &[FileReport]) -> Option<TableSizes> {
    let running = match settings.cluster() {
        None => true, // DATABASE_URL
        Some(cluster) => cluster.running_pid().is_some(),
    };
    if !running {
        return None;
    }
    let tables = pgcalm_lint::sized_tables(reports.iter().flat_map(|r| &r.result.findings));
    if tables.is_empty() {
        return None;
    }
    let read = async {
        let client = settings.target_unchecked()?.connect().await?;
        let names: Vec<String> = tables
            .iter()
            .map(|(_, regclass)| regclass.clone())
            .collect();
        anyhow::Ok(pgcalm_pg::catalog::table_sizes(&client, &names).await?)
    };
    let sizes = match read.await {
        Ok(sizes) => sizes,
        Err(e) => {
            eprintln!("note: findings not graded by table size: {e:#}");
            return None;
        }
    };
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
    Some(TableSizes {
        small_table_rows: settings.lint.small_table_rows,
        tables,
    })
}

/// The files `git diff --name-only --diff-filter=AM REF` names under the repository of
/// `dir`, as absolute paths.
fn changed_since(dir: &Path, git_ref: &str) -> anyhow::Result<std::collections::HashSet<PathBuf>> {
    let git = |args: &[&str]| -> anyhow::Result<String> {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .output()
            .with_context(|| format!("running git in {} for --since", dir.display()))?;
        if !out.status.success() {
            bail!(
                "--since {git_ref}: git {} in {} failed: {}",
                args.join(" "),
                dir.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
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

/// Lints every file; a file that cannot be read or parsed is reported (stderr) as it
/// comes, and the others are still linted.
fn lint_all(settings: &Settings, args: &Args, options: &LintOptions) -> anyhow::Result<Linted> {
    let paths = if args.paths.is_empty() {
        vec![settings.migrations_dir().to_path_buf()]
    } else {
        args.paths.clone()
    };
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    let mut changed: Option<std::collections::HashSet<PathBuf>> = None;
    for p in &paths {
        if let Some(git_ref) = &args.since
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
            files.push(("<stdin>".into(), p.clone()));
        } else if p.is_dir() {
            let mut found = Vec::new();
            sql_files_under(p, &mut found)
                .with_context(|| format!("reading directory {}", p.display()))?;
            found.sort();
            files.extend(found.into_iter().map(|f| (f.display().to_string(), f)));
        } else if p.is_file() {
            files.push((p.display().to_string(), p.clone()));
        } else {
            bail!(
                "{}: no such file or directory (give .sql files, directories, or - for stdin)",
                p.display()
            );
        }
    }
    // --since: only the changed files are linted; the unchanged ones before the last of
    // them are still read for the indexes they create (below).
    let linted_file = |name: &str, path: &Path| {
        changed
            .as_ref()
            .is_none_or(|c| name == "<stdin>" || c.contains(&canonical(path)))
    };
    let last = files
        .iter()
        .rposition(|(name, path)| linted_file(name, path))
        .map_or(0, |i| i + 1);
    files.truncate(last);
    let mut linted = Linted {
        reports: Vec::new(),
        unparsed: Vec::new(),
        locks: Vec::new(),
    };
    // What earlier files (in the order above: migration order) told of indexes and
    // their tables, on top of --schema's: `DROP INDEX i` in a later file then locks a
    // known table, one its transaction may already hold.
    let mut history: Option<Arc<pgcalm_lint::Schema>> = options.schema.clone();
    for (name, path) in files {
        if !linted_file(&name, &path) {
            if let Ok(source) = read_source(&path) {
                let history = Arc::make_mut(history.get_or_insert_with(Default::default));
                for up in up_pieces(settings, &path, &source) {
                    let _ = history.learn_indexes(&up);
                }
            }
            continue;
        }
        let source = if name == "<stdin>" {
            if args.fix {
                bail!("--fix rewrites files: give their paths, not - (stdin)");
            }
            let mut bytes = Vec::new();
            std::io::stdin()
                .read_to_end(&mut bytes)
                .context("reading SQL from stdin")?;
            source_from_bytes(Path::new(&name), bytes)
        } else {
            read_source(&path)
        };
        let source = match source {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                linted.unparsed.push(Unparsed::new(&name, &e));
                continue;
            }
        };
        let file_options = LintOptions {
            schema: history.clone(),
            ..options.clone()
        };
        let run = Run {
            settings,
            args,
            options: &file_options,
        };
        let Some(pieces) = file_pieces(run, &name, &path, &source) else {
            continue;
        };
        let pieces = if args.fix {
            fix_file(run, &name, &path, &source, pieces)?
        } else {
            pieces
        };
        let ups: Vec<String> = if is_down_file(&path) {
            Vec::new()
        } else {
            pieces
                .iter()
                .filter(|(label, ..)| label.as_deref() != Some("down"))
                .map(|(_, _, text, _)| up_section(text).to_string())
                .collect()
        };
        lint_pieces(args, &name, pieces, &mut linted);
        drop(file_options);
        for up in ups {
            // A file that does not parse was reported above; it teaches nothing.
            let _ = Arc::make_mut(history.get_or_insert_with(Default::default)).learn_indexes(&up);
        }
    }
    Ok(linted)
}

/// The tool that runs a file: an explicit one; else none with --assume-in-transaction (as
/// before tools); else the layout's.
fn tool_of(settings: &Settings, path: &Path, source: &str) -> Option<Tool> {
    settings.lint.tool.or_else(|| {
        (!settings.lint.assume_in_transaction)
            .then(|| pgcalm_lint::detect(path, source))
            .flatten()
    })
}

/// The texts of a file its tool runs going up (none for a down migration), quietly: for
/// what they teach of indexes, not to lint.
fn up_pieces(settings: &Settings, path: &Path, source: &str) -> Vec<String> {
    if is_down_file(path) {
        return Vec::new();
    }
    let Some(tool) = tool_of(settings, path, source) else {
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

/// A down migration (`down.sql`, `*.down.sql`): what it drops is still there for the
/// files after it.
fn is_down_file(path: &Path) -> bool {
    path.file_stem()
        .and_then(|s| s.to_str())
        .is_some_and(|s| s == "down" || s.ends_with(".down") || s.ends_with("_down"))
}

/// A pgcalm migration's text up to its `-- migrate:down` section.
fn up_section(text: &str) -> &str {
    if !pgcalm_migrate::is_migration_source(text) {
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

/// One piece of a file to lint: its label, how it runs (for the report), its text (the
/// file's, with what is not this piece blanked: same offsets) and the options it runs with.
type PieceToLint = (Option<String>, Option<String>, String, LintOptions);

/// What every file of one `pgcalm lint` run is linted with.
#[derive(Clone, Copy)]
struct Run<'a> {
    settings: &'a Settings,
    args: &'a Args,
    options: &'a LintOptions,
}

/// The pieces of a file as its tool runs them; `None` when the tool does not run it.
fn file_pieces(run: Run<'_>, name: &str, path: &Path, source: &str) -> Option<Vec<PieceToLint>> {
    let Run {
        settings,
        args,
        options,
    } = run;
    let Some(tool) = tool_of(settings, path, source) else {
        return Some(vec![(None, None, source.to_string(), options.clone())]);
    };
    match pgcalm_lint::plan(
        tool,
        path,
        source,
        &sidecars(tool, path),
        args.lint.include_down,
    ) {
        Plan::Skip(why) => {
            eprintln!("note: {name}: not linted: {why}");
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
                        ..options.clone()
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
                    (p.label, Some(mode), p.text, options)
                })
                .collect(),
        ),
    }
}

/// Lints a file's pieces into `linted`.
fn lint_pieces(args: &Args, name: &str, pieces: Vec<PieceToLint>, linted: &mut Linted) {
    let file = Path::new(name);
    for (label, mode, text, options) in pieces {
        let lint = if args.locks {
            lint_source_and_locks(file, &text, &options)
        } else {
            lint_source(file, &text, &options).map(|lint| (lint, Vec::new()))
        };
        match lint {
            Ok((lint, locks)) => {
                linted.reports.push(FileReport {
                    path: name.to_string(),
                    label,
                    mode,
                    source: Arc::new(text),
                    kind: lint.kind,
                    statements: lint.statements,
                    result: lint.result,
                });
                linted.locks.push(locks);
            }
            Err(e) => {
                eprintln!("error: {e}");
                linted.unparsed.push(Unparsed::new(name, &e));
            }
        }
    }
}

/// `--fix`: puts in place the fixes that are right where each piece runs
/// ([`pgcalm_lint::safe_edits`]), writes the file (atomically) or prints the diff
/// (`--dry-run`), and returns the pieces of the fixed text to report what remains. A file
/// whose fixed text would not parse is left as it is.
fn fix_file(
    run: Run<'_>,
    name: &str,
    path: &Path,
    source: &str,
    pieces: Vec<PieceToLint>,
) -> anyhow::Result<Vec<PieceToLint>> {
    let file = Path::new(name);
    let mut edits = Vec::new();
    for (_, _, text, options) in &pieces {
        let Ok(lint) = lint_source(file, text, options) else {
            continue; // reported when the pieces are linted
        };
        let relint = |t: &str| {
            lint_source(file, t, options).ok().map(|l| {
                l.result
                    .findings
                    .iter()
                    .map(|f| (f.rule, f.span.start))
                    .collect()
            })
        };
        let (safe, refused) = pgcalm_lint::safe_edits(text, &lint.result.findings, relint);
        for r in refused {
            eprintln!(
                "note: {name}:{}: {}: its safe SQL is not applied: {}",
                r.line,
                r.rule,
                r.problems.join("; ")
            );
        }
        edits.extend(safe);
    }
    if edits.is_empty() {
        return Ok(pieces);
    }
    let fixed = pgcalm_lint::apply_edits(source, &edits);
    let Some(fixed_pieces) = file_pieces(run, name, path, &fixed) else {
        return Ok(pieces);
    };
    for (_, _, text, options) in &fixed_pieces {
        if let Err(e) = lint_source(file, text, options) {
            eprintln!("error: {name}: not fixed: with its fixes in place it would not parse: {e}");
            return Ok(pieces);
        }
    }
    let what: Vec<String> = edits
        .iter()
        .map(|e| format!("line {} {}", e.line, e.rule))
        .collect();
    if run.args.dry_run {
        let diff = unified_diff(name, source, &fixed);
        // A machine format owns stdout: the diff goes beside it, to stderr.
        match run.settings.format {
            OutputFormat::Text => say!("{}", diff.trim_end_matches('\n')),
            _ => eprintln!("{}", diff.trim_end_matches('\n')),
        }
        eprintln!("would fix {name}: {}", what.join(", "));
    } else {
        write_atomically(path, &fixed)?;
        eprintln!("fixed {name}: {}", what.join(", "));
    }
    Ok(fixed_pieces)
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
fn write_atomically(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let target = path
        .canonicalize()
        .with_context(|| format!("--fix: resolving {}", path.display()))?;
    let dir = target.parent().unwrap_or(Path::new("."));
    let permissions = std::fs::metadata(&target)
        .with_context(|| format!("--fix: reading {}", target.display()))?
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
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        bail!(
            "--fix: writing {} (through {}) failed: {e}; the file is unchanged",
            target.display(),
            tmp.display()
        );
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

fn list_rules() -> String {
    let rows: Vec<Vec<String>> = RuleId::rules()
        .map(|id| {
            let r = id.info();
            vec![
                r.name.to_string(),
                r.severity.to_string(),
                if r.default_on { "on" } else { "off" }.to_string(),
                r.hazard.to_string(),
            ]
        })
        .collect();
    crate::output::psql_table(None, &["rule", "severity", "default", "catches"], &rows)
}
