//! pgcalm: zero-downtime PostgreSQL schema changes, proven live.
//!
//! This binary is deliberately thin: it parses flags (each command's flags live beside
//! it in `cmd/<name>.rs`), resolves the settings once (`settings`: flags > environment >
//! pgcalm.toml > defaults), calls a library crate, and renders the result (`output`,
//! `migrate_events`). Errors become `error: ...` lines and exit code 1 (2 for a usage or
//! configuration error).
#![cfg_attr(test, allow(unused_crate_dependencies))] // unit tests use some dev-dependencies

/// `println!` that never panics: for commands that must not die half-way when their
/// stdout is closed (`pgcalm migrate | head`); the output is lost, the work goes on.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

mod cmd;
mod migrate_events;
mod output;
mod settings;
mod signals;

/// mimalloc: lint's parse trees are many small allocations (see the workspace Cargo.toml).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::settings::{CommandFlags, GlobalArgs, OutputFormat, Settings};

/// Zero-downtime PostgreSQL schema changes: run migrations safely, catch risky ones,
/// and measure downtime live.
#[derive(Debug, Parser)]
#[command(name = "pgcalm", version, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the embedded PostgreSQL (or check DATABASE_URL), create the database and
    /// apply migrations up to the configured start point.
    Up(cmd::up::Args),
    /// Stop the embedded PostgreSQL; --volumes also deletes its data.
    Down(cmd::down::Args),
    /// Where the database is, whether it runs, its version and the migration state.
    Status(cmd::status::Args),
    /// Print the connection URL with its password, for scripts: DATABASE_URL=$(pgcalm url).
    Url(cmd::url::Args),
    /// Open psql on the current database (extra arguments go to psql).
    Psql(cmd::psql::Args),
    /// Show the embedded server's log.
    Logs(cmd::logs::Args),
    /// Describe a table: columns, indexes (and validity), constraints, rows, size.
    Inspect(cmd::inspect::Args),
    /// List each app's migrations: [X] applied, [ ] not, [-] partial, [!] failed.
    Showmigrations(cmd::showmigrations::Args),
    /// Apply migrations, or go forward or back to APP TARGET (`zero` unapplies all).
    Migrate(cmd::migrate::Args),
    /// Print the SQL a migration runs, with the timeouts pgcalm sets.
    Sqlmigrate(cmd::sqlmigrate::Args),
    /// Fill small_email and large_email (`User i`, `useri@example.com`) with binary COPY.
    Seed(cmd::seed::Args),
    /// Serve the demo app's HTTP API (/list_large/, /lookup/, /add_large/, ...).
    Serve(cmd::serve::Args),
    /// Probe HTTP endpoints on a fixed schedule: a line per request, a summary on exit.
    Probe(cmd::probe::Args),
    /// Live view of the database: sessions, lock waits and their blockers, index builds.
    Monitor(cmd::monitor::Args),
    /// Find risky statements in migrations before they run (static, PostgreSQL grammar).
    Lint(cmd::lint::Args),
    /// Run migrations on a throwaway database and report the locks they really take.
    Trace(cmd::trace::Args),
    /// Run risky and safe migrations against the live demo app and measure the downtime.
    Lab(cmd::lab::Args),
}

impl Command {
    /// The flag groups of this command that feed the settings.
    fn settings_flags(&self) -> CommandFlags<'_> {
        match self {
            Command::Migrate(a) => CommandFlags {
                policy: Some(&a.policy),
                ..CommandFlags::default()
            },
            Command::Sqlmigrate(a) => CommandFlags {
                policy: Some(&a.policy),
                ..CommandFlags::default()
            },
            Command::Lint(a) => CommandFlags {
                lint: Some(&a.lint),
                ..CommandFlags::default()
            },
            _ => CommandFlags::default(),
        }
    }
}

async fn dispatch(settings: &Settings, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Up(a) => cmd::up::run(settings, a).await,
        Command::Down(a) => cmd::down::run(settings, a).await,
        Command::Status(a) => cmd::status::run(settings, a).await,
        Command::Url(a) => cmd::url::run(settings, a).await,
        Command::Psql(a) => cmd::psql::run(settings, a).await,
        Command::Logs(a) => cmd::logs::run(settings, a).await,
        Command::Inspect(a) => cmd::inspect::run(settings, a).await,
        Command::Showmigrations(a) => cmd::showmigrations::run(settings, a).await,
        Command::Migrate(a) => cmd::migrate::run(settings, a).await,
        Command::Sqlmigrate(a) => cmd::sqlmigrate::run(settings, a).await,
        Command::Seed(a) => cmd::seed::run(settings, a).await,
        Command::Serve(a) => cmd::serve::run(settings, a).await,
        Command::Probe(a) => cmd::probe::run(settings, a).await,
        Command::Monitor(a) => cmd::monitor::run(settings, a).await,
        Command::Lint(a) => cmd::lint::run(settings, a).await,
        Command::Trace(a) => cmd::trace::run(settings, a).await,
        Command::Lab(a) => cmd::lab::run(settings, a).await,
    }
}

/// Whether the command may die quietly on a closed pipe (`pgcalm status | head`), like
/// other Unix tools: it only reports, or is idempotent (`up`, `down`). Migrations, seed
/// and serve keep running instead of being killed by SIGPIPE half-way.
fn dies_on_closed_pipe(command: &Command) -> bool {
    matches!(
        command,
        Command::Up(_)
            | Command::Down(_)
            | Command::Psql(_)
            | Command::Status(_)
            | Command::Url(_)
            | Command::Inspect(_)
            | Command::Logs(_)
            | Command::Showmigrations(_)
            | Command::Sqlmigrate(_)
            | Command::Probe(_)
            | Command::Monitor(_)
    )
}

/// Runs the command on a Tokio runtime.
fn run(settings: &Settings, command: Command) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // `pgcalm lint` opens no connection: nothing to wait for at the end.
    let connects = !matches!(command, Command::Lint(_));
    runtime.block_on(async {
        let result = dispatch(settings, command).await;
        // Dropped clients queue a Terminate message; let their connection tasks send
        // it, so the server logs a clean disconnect instead of "connection reset".
        if connects {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        result
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if dies_on_closed_pipe(&cli.command) {
        // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PGCALM_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    // github and markdown are report formats of the commands that report findings.
    if matches!(
        cli.global.format,
        Some(OutputFormat::Github | OutputFormat::Markdown)
    ) && !matches!(cli.command, Command::Lint(_) | Command::Trace(_))
    {
        eprintln!("error: --format github/markdown is only for `pgcalm lint` and `pgcalm trace`");
        return ExitCode::from(2);
    }
    // Read once, before anything runs: a configuration error is a usage error (exit 2).
    let settings = match Settings::resolve(&cli.global, cli.command.settings_flags()) {
        Ok(settings) => settings,
        Err(e) => {
            output::error(&e);
            return ExitCode::from(2);
        }
    };
    match run(&settings, cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is::<output::Exit>() => {
            ExitCode::from(e.downcast_ref::<output::Exit>().map_or(1, |x| x.0))
        }
        Err(e) => {
            output::error(&e);
            ExitCode::FAILURE
        }
    }
}
