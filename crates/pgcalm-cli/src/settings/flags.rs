//! The flag and environment layers of the settings: the flags every command takes
//! ([`GlobalArgs`]) and the groups commands flatten into their own flags
//! ([`PolicyArgs`], [`LintArgs`]). clap reads each flag's environment variable, so a
//! value here is already "flag, else environment".

use std::path::PathBuf;
use std::time::Duration;

use pgcalm_migrate::parse_duration;

/// Flags shared by every command.
#[derive(Debug, clap::Args)]
pub(crate) struct GlobalArgs {
    /// Use this PostgreSQL server instead of the embedded one.
    #[arg(long, global = true, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Directory of the embedded cluster [default: .pgcalm]
    #[arg(long, global = true, env = "PGCALM_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Database name on the embedded server [default: risky_migrations]
    #[arg(long, global = true, env = "PGCALM_DATABASE")]
    pub database: Option<String>,
    /// Directory of migration files (`<app>/<NNNN>_<name>.sql`) [default: migrations]
    #[arg(long, global = true, env = "PGCALM_MIGRATIONS_DIR")]
    pub migrations_dir: Option<PathBuf>,
    /// Configuration file [default: ./pgcalm.toml when present]
    #[arg(long, global = true, env = "PGCALM_CONFIG")]
    pub config: Option<PathBuf>,
    /// Output format: text for people, json for tools (lint and trace also: github,
    /// markdown) [default: text]
    #[arg(long, global = true, value_enum)]
    pub format: Option<OutputFormat>,
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum OutputFormat {
    /// Human-readable text and tables.
    Text,
    /// One JSON document on stdout.
    Json,
    /// GitHub Actions workflow annotations (`pgcalm lint`, `pgcalm trace`).
    Github,
    /// A Markdown report for a pull-request comment (`pgcalm lint`, `pgcalm trace`).
    Markdown,
}

/// Safety settings of the runner, flags of `migrate` and `sqlmigrate`; their
/// environment variables count for every command that runs migration statements (`up`,
/// `trace`, `lab` too).
#[derive(Debug, Default, Clone, clap::Args)]
pub(crate) struct PolicyArgs {
    /// lock_timeout for every statement: the longest the app can queue behind the
    /// migration [default: 2s; pgcalm.toml [migrate] lock_timeout]
    #[arg(long, env = "PGCALM_LOCK_TIMEOUT", value_parser = parse_duration)]
    pub lock_timeout: Option<Duration>,
    /// lock_timeout for statements that only take SHARE UPDATE EXCLUSIVE (CONCURRENTLY,
    /// VALIDATE): queued, they block neither reads nor writes [default: --lock-timeout]
    #[arg(long, env = "PGCALM_CONCURRENT_LOCK_TIMEOUT", value_parser = parse_duration)]
    pub concurrent_lock_timeout: Option<Duration>,
    /// statement_timeout for statements stronger than SHARE UPDATE EXCLUSIVE (those get
    /// 0) [default: the server's]
    #[arg(long, env = "PGCALM_STATEMENT_TIMEOUT", value_parser = parse_duration)]
    pub statement_timeout: Option<Duration>,
    /// Lock-timeout retries per statement (or transactional migration) [default: 10]
    #[arg(long, env = "PGCALM_MAX_RETRIES")]
    pub max_retries: Option<u32>,
    /// First retry delay; doubles each retry, with jitter [default: 500ms]
    #[arg(long, env = "PGCALM_RETRY_INITIAL", value_parser = parse_duration)]
    pub retry_initial: Option<Duration>,
    /// Longest retry delay [default: 30s]
    #[arg(long, env = "PGCALM_RETRY_MAX", value_parser = parse_duration)]
    pub retry_max: Option<Duration>,
    /// Give up after waiting this long for another runner [default: wait as long as it takes]
    #[arg(long, env = "PGCALM_WAIT", value_parser = parse_duration)]
    pub wait: Option<Duration>,
    /// How soon the server notices a runner that died mid-statement and ends the statement
    /// and its locks (PostgreSQL 14+; 0 turns it off) [default: 1s]
    #[arg(long, env = "PGCALM_CLIENT_CONNECTION_CHECK_INTERVAL", value_parser = parse_duration)]
    pub client_connection_check_interval: Option<Duration>,
    /// Run migrations that `pgcalm lint` finds risky. Without it pgcalm refuses them with
    /// the findings before anything runs (a statement with `-- pgcalm:ignore RULE reason`
    /// above it is let through) [pgcalm.toml [migrate] allow_risky]
    #[arg(long)]
    pub allow_risky: bool,
}

impl PolicyArgs {
    /// The policy's environment variables alone, for a command without the flags: the
    /// same definitions and parser as the flags, so `PGCALM_LOCK_TIMEOUT` means the same
    /// to every command. A bad value is an error naming the variable.
    pub(crate) fn from_env() -> anyhow::Result<PolicyArgs> {
        use clap::error::{ContextKind, ContextValue};
        use clap::{CommandFactory as _, Parser as _};

        #[derive(clap::Parser)]
        #[command(name = "pgcalm")]
        struct EnvOnly {
            #[command(flatten)]
            policy: PolicyArgs,
        }

        EnvOnly::try_parse_from(["pgcalm"])
            .map(|e| e.policy)
            .map_err(|e| {
                // `--lock-timeout <LOCK_TIMEOUT>` -> PGCALM_LOCK_TIMEOUT
                let flag = match e.get(ContextKind::InvalidArg) {
                    Some(ContextValue::String(arg)) => arg.split(' ').next().map(str::to_string),
                    _ => None,
                };
                let variable = flag.as_deref().and_then(|flag| {
                    EnvOnly::command()
                        .get_arguments()
                        .find(|a| a.get_long().is_some_and(|l| flag == format!("--{l}")))
                        .and_then(|a| a.get_env())
                        .map(|v| v.to_string_lossy().into_owned())
                });
                let why = std::error::Error::source(&e)
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| e.kind().to_string());
                anyhow::anyhow!(
                    "{}: {why}",
                    variable.unwrap_or_else(|| "environment".into())
                )
            })
    }
}

/// Lint settings on the command line (`pgcalm lint`).
#[derive(Debug, Default, Clone, clap::Args)]
pub(crate) struct LintArgs {
    /// PostgreSQL major version the SQL will run on [default: [lint] pg_version, or 15]
    #[arg(long, value_name = "MAJOR")]
    pub pg_version: Option<u32>,
    /// Plain SQL files are run inside one transaction by the tool that applies them
    /// (Flyway, some Rails setups)
    #[arg(long)]
    pub assume_in_transaction: bool,
    /// Schema SQL of the existing tables (`pg_dump --schema-only`), so lint knows column
    /// types and NOT NULL columns [default: [lint] schema]
    #[arg(long, value_name = "FILE")]
    pub schema: Option<PathBuf>,
}
