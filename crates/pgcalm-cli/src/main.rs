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

mod background;
mod cmd;
mod migrate_events;
mod output;
mod settings;
mod signals;

/// mimalloc: lint's parse trees are many small allocations (see the workspace Cargo.toml).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;

use clap::{CommandFactory as _, Parser, Subcommand};

use crate::settings::{
    CommandFlags, FormatArgs, GlobalArgs, MigrationsArgs, OnDataDir, OnDatabase, OnMigrations,
    OnServer, ReportFormatArgs, ServerArgs, Settings,
};

/// Zero-downtime PostgreSQL schema changes: run migrations safely, catch risky ones,
/// and measure downtime live.
///
/// Every command works on the project found from the current directory upwards (the
/// first directory with a pgcalm.toml or a .pgcalm/), or from -C DIR.
#[derive(Debug, Parser)]
#[command(name = "pgcalm", version, about, long_about)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

// Each command takes, after its own flags, the settings flags that apply to it (the
// `On*` groups of settings/flags.rs): `--database-url` / `--data-dir` where it talks to a
// server, `--database`, `--migrations-dir` where it reads migration files, `--format`
// with the values it renders; so its `--help` lists only those.
#[derive(Debug, Subcommand)]
enum Command {
    /// Start a project here: pgcalm.toml (every setting, commented out at its default)
    /// and migrations/.
    Init(cmd::init::Args),
    /// Start the embedded PostgreSQL (or check DATABASE_URL), create the database and
    /// apply migrations up to the configured start point.
    Up(OnMigrations<cmd::up::Args>),
    /// Stop the demo app and the embedded PostgreSQL; --volumes also deletes their data.
    Down(OnDataDir<cmd::down::Args>),
    /// Where the database is, whether it runs, its version and the migration state, and
    /// the demo app `serve --detach` runs.
    Status(OnMigrations<cmd::status::Args>),
    /// Print the connection URL with its password, for scripts: DATABASE_URL=$(pgcalm url).
    Url(OnServer<cmd::url::Args>),
    /// Open psql on the current database (extra arguments go to psql).
    Psql(OnServer<cmd::psql::Args>),
    /// Show the embedded server's log.
    Logs(OnDataDir<cmd::logs::Args>),
    /// Describe a table: columns, indexes (and validity), constraints, rows, size.
    Inspect(OnDatabase<cmd::inspect::Args>),
    /// List each app's migrations: [X] applied, [ ] not, [-] partial, [!] failed.
    Showmigrations(OnMigrations<cmd::showmigrations::Args>),
    /// Apply migrations, or go forward or back to APP TARGET (`zero` unapplies all).
    Migrate(OnMigrations<cmd::migrate::Args>),
    /// Print the SQL a migration runs, with the timeouts pgcalm sets.
    Sqlmigrate {
        #[command(flatten)]
        args: cmd::sqlmigrate::Args,
        #[command(flatten)]
        migrations: MigrationsArgs,
        #[command(flatten)]
        format: FormatArgs,
    },
    /// Fill small_email and large_email (`User i`, `useri@example.com`) with binary COPY.
    Seed(OnDatabase<cmd::seed::Args>),
    /// Serve the demo app's HTTP API (/list_large/, /lookup/, /add_large/, ...), in the
    /// foreground or, with --detach, in the background until `pgcalm down`.
    Serve(OnDatabase<cmd::serve::Args>),
    /// Probe HTTP endpoints on a fixed schedule: a line per request, a summary on exit.
    Probe {
        #[command(flatten)]
        args: cmd::probe::Args,
        #[command(flatten)]
        format: FormatArgs,
    },
    /// Live view of the database: sessions, lock waits and their blockers, index builds.
    Monitor(OnDatabase<cmd::monitor::Args>),
    /// Find risky statements in migrations before they run (static, PostgreSQL grammar).
    Lint {
        #[command(flatten)]
        args: cmd::lint::Args,
        #[command(flatten)]
        migrations: MigrationsArgs,
        #[command(flatten)]
        format: ReportFormatArgs,
        /// `--database-url`: where the sizes of the linted tables are read.
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Run migrations on a throwaway database and report the locks they really take.
    Trace {
        #[command(flatten)]
        args: cmd::trace::Args,
        #[command(flatten)]
        server: ServerArgs,
        #[command(flatten)]
        format: ReportFormatArgs,
    },
    /// Run risky and safe migrations against the live demo app and measure the downtime.
    Lab {
        #[command(flatten)]
        args: cmd::lab::Args,
        #[command(flatten)]
        server: ServerArgs,
        #[command(flatten)]
        format: FormatArgs,
    },
}

impl Command {
    /// The flag groups of this command that feed the settings.
    fn settings_flags(&self) -> CommandFlags<'_> {
        let none = CommandFlags::default();
        match self {
            Command::Init(_) => none,
            Command::Up(c) => c.flags(),
            Command::Status(c) => c.flags(),
            Command::Showmigrations(c) => c.flags(),
            Command::Migrate(c) => CommandFlags {
                policy: Some(&c.args.policy),
                runner: Some(&c.args.runner),
                ..c.flags()
            },
            Command::Down(c) => c.flags(),
            Command::Logs(c) => c.flags(),
            Command::Url(c) => c.flags(),
            Command::Psql(c) => c.flags(),
            Command::Inspect(c) => c.flags(),
            Command::Seed(c) => c.flags(),
            Command::Serve(c) => c.flags(),
            Command::Monitor(c) => c.flags(),
            Command::Sqlmigrate {
                args,
                migrations,
                format,
            } => CommandFlags {
                migrations: Some(migrations),
                format: format.format.map(Into::into),
                policy: Some(&args.policy),
                ..none
            },
            Command::Probe { format, .. } => CommandFlags {
                format: format.format.map(Into::into),
                ..none
            },
            Command::Lint {
                args,
                migrations,
                format,
                server,
            } => CommandFlags {
                server: Some(server),
                migrations: Some(migrations),
                format: Some(format.format),
                lint: Some(&args.lint),
                ..none
            },
            Command::Trace { server, format, .. } => CommandFlags {
                server: Some(server),
                format: Some(format.format),
                ..none
            },
            Command::Lab { server, format, .. } => CommandFlags {
                server: Some(server),
                format: format.format.map(Into::into),
                ..none
            },
        }
    }
}

async fn dispatch(settings: &Settings, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Init(a) => cmd::init::run(settings, a).await,
        Command::Up(c) => cmd::up::run(settings, c.args).await,
        Command::Down(c) => cmd::down::run(settings, c.args).await,
        Command::Status(c) => cmd::status::run(settings, c.args).await,
        Command::Url(c) => cmd::url::run(settings, c.args).await,
        Command::Psql(c) => cmd::psql::run(settings, c.args).await,
        Command::Logs(c) => cmd::logs::run(settings, c.args).await,
        Command::Inspect(c) => cmd::inspect::run(settings, c.args).await,
        Command::Showmigrations(c) => cmd::showmigrations::run(settings, c.args).await,
        Command::Migrate(c) => cmd::migrate::run(settings, c.args).await,
        Command::Sqlmigrate { args, .. } => cmd::sqlmigrate::run(settings, args).await,
        Command::Seed(c) => cmd::seed::run(settings, c.args).await,
        Command::Serve(c) => cmd::serve::run(settings, c.args).await,
        Command::Probe { args, .. } => cmd::probe::run(settings, args).await,
        Command::Monitor(c) => cmd::monitor::run(settings, c.args).await,
        Command::Lint { args, .. } => cmd::lint::run(settings, args).await,
        Command::Trace { args, .. } => cmd::trace::run(settings, args).await,
        Command::Lab { args, .. } => cmd::lab::run(settings, args).await,
    }
}

/// Whether the command may die quietly on a closed pipe (`pgcalm status | head`), like
/// other Unix tools: it only reports, or is idempotent (`up`, `down`). Migrations, seed
/// and serve keep running instead of being killed by SIGPIPE half-way.
fn dies_on_closed_pipe(command: &Command) -> bool {
    matches!(
        command,
        Command::Init(_)
            | Command::Up(_)
            | Command::Down(_)
            | Command::Psql(_)
            | Command::Status(_)
            | Command::Url(_)
            | Command::Inspect(_)
            | Command::Logs(_)
            | Command::Showmigrations(_)
            | Command::Sqlmigrate { .. }
            | Command::Probe { .. }
            | Command::Monitor(_)
    )
}

/// Runs the command on a Tokio runtime.
fn run(settings: &Settings, command: Command) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // `pgcalm lint` and `init` open no connection: nothing to wait for at the end.
    let connects = !matches!(command, Command::Lint { .. } | Command::Init(_));
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
    let (args, env) = settings::args_in_place(std::env::args_os(), &Cli::command());
    for (variable, value) in env {
        // SAFETY: no other thread runs yet (the runtime starts later).
        unsafe { std::env::set_var(variable, value) };
    }
    let cli = Cli::parse_from(args);
    if dies_on_closed_pipe(&cli.command) {
        // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    init_tracing();
    // -C DIR: as if started there, like `cargo -C` and `make -C`.
    if let Some(dir) = &cli.global.project
        && let Err(e) = std::env::set_current_dir(dir)
    {
        eprintln!(
            "error: cannot run in {}: {e}\n  fix: give -C / --project an existing directory",
            dir.display()
        );
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

/// Warnings of pgcalm's own crates on stderr (`PGCALM_LOG` overrides); of the crates
/// below them (driver, pool, HTTP server) only errors: their warnings are internals
/// the user cannot act on. Coloured only on a terminal, and not with `NO_COLOR`.
fn init_tracing() {
    use std::io::IsTerminal as _;
    const DEFAULT: &str = "error,pgcalm_cli=warn,pgcalm_pg=warn,pgcalm_migrate=warn,\
                           pgcalm_demo=warn,pgcalm_lab=warn,pgcalm_probe=warn,pgcalm_trace=warn,\
                           pgcalm_lint=warn";
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PGCALM_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT)),
        )
        .with_ansi(colour)
        .with_writer(std::io::stderr)
        .init();
}
