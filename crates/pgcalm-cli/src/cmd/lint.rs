//! `pgcalm lint [PATHS|-]`: finds risky statements before they run, with PostgreSQL's
//! own grammar. Files or directories (every `*.sql` below, recursively; a file with a
//! `-- migrate:up` line is a pgcalm migration file, anything else plain SQL), or stdin
//! with `-`. Exit 0 clean, 1 findings, 2 usage or parse errors.

use std::io::{IsTerminal as _, Read as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use pgcalm_lint::{LintOptions, RuleId, StatementLockReport};
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
        reports,
        unparsed,
        locks,
    } = match linted {
        Ok(x) => x,
        Err(e) => {
            crate::output::error(&e);
            return Err(Exit(2).into());
        }
    };
    let fancy = settings.format == OutputFormat::Text && std::io::stdout().is_terminal();
    let mut out = render(&reports, &unparsed, settings.format, fancy);
    if args.locks {
        out = with_locks(out, &reports, &locks, settings.format)?;
    }
    say!("{}", out.trim_end_matches('\n'));
    if !unparsed.is_empty() {
        return Err(Exit(2).into());
    }
    if reports.iter().any(|r| !r.result.findings.is_empty()) {
        return Err(Exit(1).into());
    }
    Ok(())
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
    for p in &paths {
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
    let mut linted = Linted {
        reports: Vec::new(),
        unparsed: Vec::new(),
        locks: Vec::new(),
    };
    for (name, path) in files {
        let source = if name == "<stdin>" {
            let mut bytes = Vec::new();
            std::io::stdin()
                .read_to_end(&mut bytes)
                .context("reading SQL from stdin")?;
            source_from_bytes(Path::new(&name), bytes)
        } else {
            read_source(&path)
        };
        let path = Path::new(&name);
        let result = source.and_then(|source| {
            let lint = if args.locks {
                lint_source_and_locks(path, &source, options)
            } else {
                lint_source(path, &source, options).map(|lint| (lint, Vec::new()))
            };
            lint.map(|lint| (source, lint))
        });
        match result {
            Ok((source, (lint, locks))) => {
                linted.reports.push(FileReport {
                    path: name,
                    source: Arc::new(source),
                    kind: lint.kind,
                    statements: lint.statements,
                    result: lint.result,
                });
                linted.locks.push(locks);
            }
            Err(e) => {
                eprintln!("error: {e}");
                linted.unparsed.push(Unparsed::new(&name, &e));
            }
        }
    }
    Ok(linted)
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
