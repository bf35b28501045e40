//! The flag and environment layers of the settings: the flags every command takes
//! ([`GlobalArgs`]) and the groups a command flattens into its own flags when they apply
//! to it ([`ServerArgs`], [`DatabaseArgs`], [`MigrationsArgs`], the formats,
//! [`PolicyArgs`], [`LintArgs`]), so its `--help` lists only those. clap reads each
//! flag's environment variable, so a value here is already "flag, else environment";
//! [`from_env`] reads a group's variables for a command without its flags.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use pgcalm_migrate::parse_duration;

/// Flags every command takes, before or after its name: where the project is and which
/// configuration file to read.
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Settings")]
pub(crate) struct GlobalArgs {
    /// Run as if started in DIR: the project is found from there (like `cargo -C`,
    /// `docker compose --project-directory`)
    #[arg(short = 'C', long = "project", global = true, value_name = "DIR")]
    pub project: Option<PathBuf>,
    /// Configuration file [default: the project's pgcalm.toml]
    #[arg(long, global = true, env = "PGCALM_CONFIG")]
    pub config: Option<PathBuf>,
}

/// `--database-url` and `--data-dir`: which server, for the commands that talk to one.
#[derive(Debug, Default, Clone, clap::Args)]
#[command(next_help_heading = "Settings")]
pub(crate) struct ServerArgs {
    /// Use this PostgreSQL server instead of the embedded one.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    #[command(flatten)]
    pub data_dir: DataDirArgs,
}

/// `--data-dir`: where the embedded cluster is.
#[derive(Debug, Default, Clone, clap::Args)]
#[command(next_help_heading = "Settings")]
pub(crate) struct DataDirArgs {
    /// Directory of the embedded cluster [default: the project's .pgcalm]
    #[arg(long, env = "PGCALM_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
}

/// `--database`: the database on the embedded server.
#[derive(Debug, Default, Clone, clap::Args)]
#[command(next_help_heading = "Settings")]
pub(crate) struct DatabaseArgs {
    /// Database name on the embedded server [default: risky_migrations]
    #[arg(long, env = "PGCALM_DATABASE")]
    pub database: Option<String>,
}

/// `--migrations-dir`: for the commands that read migration files.
#[derive(Debug, Default, Clone, clap::Args)]
#[command(next_help_heading = "Settings")]
pub(crate) struct MigrationsArgs {
    /// Directory of migration files (`<app>/<NNNN>_<name>.sql`) [default: the project's
    /// migrations]
    #[arg(long, env = "PGCALM_MIGRATIONS_DIR")]
    pub migrations_dir: Option<PathBuf>,
}

/// `--format text|json`.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Settings")]
pub(crate) struct FormatArgs {
    /// Output format: text for people, json for tools [default: text; `monitor` writes
    /// JSON when its output is not a terminal, unless told text]
    #[arg(long, value_enum)]
    pub format: Option<TextOrJson>,
}

/// `--format text|json|github|markdown|sarif|gitlab`: the commands that report findings.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Settings")]
pub(crate) struct ReportFormatArgs {
    /// Output format: text for people, json for tools, github annotations, markdown for
    /// a pull-request comment, sarif for GitHub code scanning, gitlab for GitLab Code
    /// Quality (sarif and gitlab hold the findings only).
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

/// The formats of the commands that report no findings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum TextOrJson {
    /// Human-readable text and tables.
    Text,
    /// One JSON document on stdout.
    Json,
}

impl From<TextOrJson> for OutputFormat {
    fn from(f: TextOrJson) -> Self {
        match f {
            TextOrJson::Text => OutputFormat::Text,
            TextOrJson::Json => OutputFormat::Json,
        }
    }
}

/// A command that talks to a database and reads migration files: its own flags, then
/// `--database-url`, `--data-dir`, `--database`, `--migrations-dir`, `--format`.
#[derive(Debug, clap::Args)]
pub(crate) struct OnMigrations<A: clap::Args> {
    #[command(flatten)]
    pub args: A,
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub migrations: MigrationsArgs,
    #[command(flatten)]
    pub format: FormatArgs,
}

/// A command that talks to a database: its own flags, then `--database-url`,
/// `--data-dir`, `--database`, `--format`.
#[derive(Debug, clap::Args)]
pub(crate) struct OnDatabase<A: clap::Args> {
    #[command(flatten)]
    pub args: A,
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub format: FormatArgs,
}

/// A command that connects and prints no report (`url`, `psql`): its own flags, then
/// `--database-url`, `--data-dir`, `--database`.
#[derive(Debug, clap::Args)]
pub(crate) struct OnServer<A: clap::Args> {
    #[command(flatten)]
    pub args: A,
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub database: DatabaseArgs,
}

/// A command on the embedded cluster's directory alone (`down`, `logs`): its own flags,
/// then `--data-dir`.
#[derive(Debug, clap::Args)]
pub(crate) struct OnDataDir<A: clap::Args> {
    #[command(flatten)]
    pub args: A,
    #[command(flatten)]
    pub data_dir: DataDirArgs,
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
    /// SARIF 2.1.0 for GitHub code scanning (`pgcalm lint`).
    Sarif,
    /// GitLab Code Quality JSON (`pgcalm lint`).
    Gitlab,
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

/// How `migrate` reaches the server and treats the sessions it waits for: flags of
/// `migrate` alone (their environment variables count for it only).
#[derive(Debug, Default, Clone, clap::Args)]
#[command(next_help_heading = "Settings")]
pub(crate) struct RunnerArgs {
    /// The PostgreSQL server's own address, for when DATABASE_URL is a transaction
    /// pooler: the whole run then goes there (prefer the environment variable: a
    /// password on a command line is visible to other users) [pgcalm.toml [migrate]
    /// direct_url]
    #[arg(long, env = "PGCALM_MIGRATE_URL", hide_env_values = true)]
    pub direct_url: Option<String>,
    /// End sessions the migration waits for that sit idle in a transaction longer than
    /// this (pg_terminate_backend); each is printed and journaled [default: never;
    /// pgcalm.toml [migrate] cancel_idle_blockers]
    #[arg(long, env = "PGCALM_CANCEL_IDLE_BLOCKERS", value_parser = parse_duration)]
    pub cancel_idle_blockers: Option<Duration>,
    /// Before each batch of a backfill (`-- pgcalm:backfill`), wait while a replica's
    /// replay lag is above this; 0 turns the throttle off [default: 1s; pgcalm.toml
    /// [migrate] max_replica_lag]
    #[arg(long, env = "PGCALM_MAX_REPLICA_LAG", value_parser = parse_duration)]
    pub max_replica_lag: Option<Duration>,
}

/// A flag group read from its environment variables alone, for a command without the
/// flags: the same definitions and parser as the flags, so `PGCALM_LOCK_TIMEOUT` or
/// `DATABASE_URL` means the same to every command. A bad value is an error naming the
/// variable.
pub(crate) fn from_env<T: clap::Args + clap::FromArgMatches>() -> anyhow::Result<T> {
    use clap::error::{ContextKind, ContextValue};

    let command = T::augment_args(clap::Command::new("pgcalm"));
    let error = |e: clap::Error| {
        // `--lock-timeout <LOCK_TIMEOUT>` -> PGCALM_LOCK_TIMEOUT
        let flag = match e.get(ContextKind::InvalidArg) {
            Some(ContextValue::String(arg)) => arg.split(' ').next().map(str::to_string),
            _ => None,
        };
        let variable = flag.as_deref().and_then(|flag| {
            command
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
    };
    let matches = command
        .clone()
        .try_get_matches_from(["pgcalm"])
        .map_err(error)?;
    T::from_arg_matches(&matches).map_err(error)
}

/// Lint settings on the command line (`pgcalm lint`).
#[derive(Debug, Default, Clone, clap::Args)]
pub(crate) struct LintArgs {
    /// PostgreSQL major version the SQL will run on [default: [lint] pg_version, or 15]
    #[arg(long, value_name = "MAJOR")]
    pub pg_version: Option<u32>,
    /// Plain SQL files are run inside one transaction by the tool that applies them
    /// (the same as a tool that wraps every file; detection from the layout is off)
    #[arg(long)]
    pub assume_in_transaction: bool,
    /// The migration tool that runs the files, which decides each file's transaction
    /// mode and what runs going up: prisma, golang-migrate, goose, flyway, dbmate,
    /// diesel, sqitch, alembic, django, rails, psql [default: [lint] tool, or detected
    /// from each file's layout]
    #[arg(long, value_name = "TOOL", value_parser = super::file::tool_name)]
    pub tool: Option<pgcalm_lint::Tool>,
    /// Lint down migrations too (a tool's down.sql, goose's Down section, ...)
    #[arg(long)]
    pub include_down: bool,
    /// Switch a rule off (repeatable; added to [lint] disable)
    #[arg(long, value_name = "RULE", value_parser = super::file::rule_name)]
    pub disable: Vec<pgcalm_lint::RuleId>,
    /// Switch a rule on, including one off by default (repeatable; added to [lint] enable)
    #[arg(long, value_name = "RULE", value_parser = super::file::rule_name)]
    pub enable: Vec<pgcalm_lint::RuleId>,
    /// Schema SQL of the existing tables (`pg_dump --schema-only`), so lint knows column
    /// types and NOT NULL columns [default: [lint] schema]
    #[arg(long, value_name = "FILE")]
    pub schema: Option<PathBuf>,
}

/// The settings flags written before the command's name, from when they were global
/// (`pgcalm --migrations-dir DIR seed`, as scripts still write them), and the environment
/// variable each one stands for there.
const BEFORE_THE_NAME: [(&str, Option<&str>); 5] = [
    ("--database-url", Some("DATABASE_URL")),
    ("--data-dir", Some("PGCALM_DATA_DIR")),
    ("--database", Some("PGCALM_DATABASE")),
    ("--migrations-dir", Some("PGCALM_MIGRATIONS_DIR")),
    ("--format", None),
];

/// The command line with the settings flags written before the command's name taken
/// out, and what they mean: each one there counts as its environment variable (it
/// applies to the commands that use the setting, whether or not they list the flag), and
/// `--format` moves after the name when the command has one. Flags after the name are
/// the command's own, checked by clap.
pub(crate) fn args_in_place(
    args: impl IntoIterator<Item = OsString>,
    cli: &clap::Command,
) -> (Vec<OsString>, Vec<(&'static str, OsString)>) {
    const GLOBAL_WITH_VALUE: [&str; 3] = ["-C", "--project", "--config"];
    let mut args: Vec<OsString> = args.into_iter().collect();
    let mut env = Vec::new();
    let mut format = None;
    let mut i = 1;
    while i < args.len() {
        let Some(arg) = args[i].to_str().map(str::to_string) else {
            break;
        };
        if !arg.starts_with('-') {
            // The command's name.
            let takes_format = cli
                .find_subcommand(&arg)
                .is_some_and(|c| c.get_arguments().any(|a| a.get_long() == Some("format")));
            if let Some(value) = format.filter(|_| takes_format) {
                args.splice(i + 1..i + 1, [OsString::from("--format"), value]);
            }
            return (args, env);
        }
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) => (name, Some(OsString::from(value))),
            None => (arg.as_str(), None),
        };
        let width = if inline.is_some() { 1 } else { 2 };
        if let Some((_, variable)) = BEFORE_THE_NAME.iter().find(|(flag, _)| *flag == name) {
            let mut taken = args.drain(i..(i + width).min(args.len()));
            let value = inline.or_else(|| taken.nth(1)).unwrap_or_default();
            drop(taken);
            match variable {
                Some(variable) => env.push((*variable, value)),
                None => format = Some(value),
            }
        } else if GLOBAL_WITH_VALUE.contains(&name) {
            i += width;
        } else {
            i += 1;
        }
    }
    (args, env)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn placed(args: &[&str]) -> (Vec<String>, Vec<(&'static str, String)>) {
        let cli = clap::Command::new("pgcalm")
            .subcommand(clap::Command::new("status").arg(clap::arg!(--format <F>)))
            .subcommand(clap::Command::new("seed"))
            .subcommand(clap::Command::new("psql"));
        let (args, env) = args_in_place(args.iter().map(OsString::from), &cli);
        let text = |s: OsString| s.into_string().unwrap();
        (
            args.into_iter().map(text).collect(),
            env.into_iter().map(|(k, v)| (k, text(v))).collect(),
        )
    }

    #[test]
    fn settings_flags_before_the_command_name_are_environment_values() {
        assert_eq!(
            placed(&[
                "pgcalm",
                "--migrations-dir",
                "m",
                "seed",
                "--large-count",
                "5"
            ]),
            (
                vec![
                    "pgcalm".into(),
                    "seed".into(),
                    "--large-count".into(),
                    "5".into()
                ],
                vec![("PGCALM_MIGRATIONS_DIR", "m".into())]
            )
        );
        let (args, env) = placed(&[
            "pgcalm",
            "-C",
            "shop",
            "--format=json",
            "--data-dir",
            "d",
            "--config",
            "x.toml",
            "status",
        ]);
        assert_eq!(
            args,
            [
                "pgcalm", "-C", "shop", "--config", "x.toml", "status", "--format", "json"
            ]
        );
        assert_eq!(env, [("PGCALM_DATA_DIR", "d".to_string())]);
        // A command without --format does not get one.
        assert_eq!(
            placed(&["pgcalm", "--format", "json", "seed"]).0,
            ["pgcalm", "seed"]
        );
        // After the name, nothing moves.
        assert_eq!(
            placed(&["pgcalm", "psql", "--data-dir", "d", "-c", "select 1"]).0,
            ["pgcalm", "psql", "--data-dir", "d", "-c", "select 1"]
        );
        assert_eq!(placed(&["pgcalm", "--version"]).0, ["pgcalm", "--version"]);
    }
}
