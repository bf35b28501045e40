//! `pgcalm lint [PATHS|-]`: finds risky statements before they run, with PostgreSQL's
//! own grammar. Files or directories (every `*.sql` below, recursively; a file with a
//! `-- migrate:up` line is a pgcalm migration file, anything else plain SQL), or stdin
//! with `-`. Each file runs the way its migration tool runs it (`--tool`, `[lint] tool`,
//! or detected from the layout: [`pgcalm_lint::tool`]). Exit 0 clean, 1 findings (as
//! `--fail-on` says), 2 usage or parse errors. `--fix` rewrites each file with the safe
//! SQL that is right where it runs (`--dry-run`: the diff instead) and reports what
//! remains.

use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;

use pgcalm_lint::{LintOptions, RuleId, Severity, TableSizes};
use pgcalm_migrate::{FixMode, LintFiles, LintNote, LintedFiles};

use crate::output::Exit;
use crate::output::lint_report::{FileReport, Unparsed, render, with_locks, write_report};
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

/// Runs `pgcalm lint`.
pub(crate) async fn run(settings: &Settings, args: Args) -> anyhow::Result<()> {
    if args.list_rules {
        print!("{}", list_rules());
        return Ok(());
    }
    // Options once: reading them parses the --schema file.
    let linted = settings
        .lint_options()
        .and_then(|options| Ok(request(settings, &args, options).run(|n| note(settings, n))?));
    let LintedFiles { pieces, unparsed } = match linted {
        Ok(x) => x,
        Err(e) => {
            crate::output::error(&e);
            return Err(Exit(2).into());
        }
    };
    let unparsed: Vec<Unparsed> = unparsed
        .iter()
        .map(|u| Unparsed::new(&u.path, &u.error))
        .collect();
    let (mut reports, locks) = FileReport::of_pieces(pieces);
    if let Some(sizes) = table_sizes(settings, &reports).await {
        for r in &mut reports {
            pgcalm_lint::grade_by_size(&mut r.result.findings, &sizes);
        }
    }
    let fancy = settings.format == OutputFormat::Text && std::io::stdout().is_terminal();
    if args.locks {
        let out = render(&reports, &unparsed, settings.format, fancy);
        let out = with_locks(out, &reports, &locks, settings.format)?;
        say!("{}", out.trim_end_matches('\n'));
    } else {
        // A closed stdout (`| head`) is not lint's failure: the exit code still says.
        let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
        let _ = write_report(&mut stdout, &reports, &unparsed, settings.format, fancy)
            .and_then(|()| stdout.flush());
    }
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

/// What to lint: the paths given (else the migrations directory) with the resolved
/// settings.
fn request(settings: &Settings, args: &Args, options: LintOptions) -> LintFiles {
    let paths = if args.paths.is_empty() {
        vec![settings.migrations_dir().to_path_buf()]
    } else {
        args.paths.clone()
    };
    LintFiles {
        tool: settings.lint.tool,
        include_down: args.lint.include_down,
        locks: args.locks,
        since: args.since.clone(),
        fix: args.fix.then_some(if args.dry_run {
            FixMode::Diff
        } else {
            FixMode::Write
        }),
        ..LintFiles::new(paths, options)
    }
}

/// Shows what happened to a file as it comes (stderr; a text diff on stdout).
fn note(settings: &Settings, note: LintNote) {
    match note {
        LintNote::Unparsed { error } => eprintln!("error: {error}"),
        LintNote::NotLinted { path, why } => eprintln!("note: {path}: not linted: {why}"),
        LintNote::FixRefused {
            path,
            line,
            rule,
            problems,
        } => eprintln!(
            "note: {path}:{line}: {rule}: its safe SQL is not applied: {}",
            problems.join("; ")
        ),
        LintNote::NotFixed { path, error } => {
            eprintln!(
                "error: {path}: not fixed: with its fixes in place it would not parse: {error}"
            )
        }
        LintNote::Fixed { path, fixes, diff } => match diff {
            Some(diff) => {
                // A machine format owns stdout: the diff goes beside it, to stderr.
                match settings.format {
                    OutputFormat::Text => say!("{}", diff.trim_end_matches('\n')),
                    _ => eprintln!("{}", diff.trim_end_matches('\n')),
                }
                eprintln!("would fix {path}: {}", fixes.join(", "));
            }
            None => eprintln!("fixed {path}: {}", fixes.join(", ")),
        },
    }
}

/// With a database (`--database-url`, or the embedded server when it is running: lint
/// starts none), the estimated rows and size of every table a size-dependent finding is
/// on. `None` without a database, or when it cannot be read (said on stderr: the
/// findings keep their severities).
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
        let small = settings.lint.small_table_rows;
        anyhow::Ok(pgcalm_migrate::read_table_sizes(&client, &tables, small).await?)
    };
    match read.await {
        Ok(sizes) => Some(sizes),
        Err(e) => {
            eprintln!("note: findings not graded by table size: {e:#}");
            None
        }
    }
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
