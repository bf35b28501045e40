//! Settings: resolved once in `main`, before any command runs, from flags > environment
//! (`DATABASE_URL`, `PGCALM_*`) > `pgcalm.toml` > defaults, into the one typed value
//! every command's `run` receives; and the handles commands need from it (target,
//! cluster).
//!
//! - `flags.rs`: the flags (and, through clap, their environment variables): every
//!   command's [`GlobalArgs`], and the groups a command flattens into its own flags
//!   ([`PolicyArgs`], [`LintArgs`]).
//! - `file.rs`: pgcalm.toml, one struct per section, unknown sections and keys refused
//!   with file:line:column.

mod file;
mod flags;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use pgcalm_lint::{LintOptions, PgVersion, RuleSelection, Schema};
use pgcalm_migrate::{HumanDuration, Policy, StartPoint};
use pgcalm_pg::{Cluster, DEFAULT_DATABASE, Target};

pub(crate) use flags::{GlobalArgs, LintArgs, OutputFormat, PolicyArgs};

/// Everything configurable, resolved.
#[derive(Debug)]
pub(crate) struct Settings {
    /// Output format chosen by `--format` (text unless given).
    pub format: OutputFormat,
    /// Whether `--format` was given: `monitor` writes JSON when piped unless told text.
    pub format_given: bool,
    /// A server of the user's (`DATABASE_URL`, `--database-url`, `[database] url`);
    /// `None`: the embedded cluster.
    database_url: Option<String>,
    /// The embedded cluster's directory.
    data_dir: PathBuf,
    /// The database on the embedded server.
    database: String,
    /// Directory of migration files.
    migrations_dir: PathBuf,
    /// The runner's policy (`[migrate]`, the policy flags): what `migrate`, `sqlmigrate`,
    /// `up`, `trace` and `lab`'s safe forms run with.
    pub policy: Policy,
    /// `pgcalm lint`'s rules and assumptions (`[lint]`, its flags).
    pub lint: LintSettings,
    /// Where `pgcalm up` migrates forward to (`[up] migrate_to`).
    pub start_points: Vec<StartPoint>,
}

/// `pgcalm lint`'s settings; the schema file is read when lint runs.
#[derive(Debug, Clone)]
pub(crate) struct LintSettings {
    /// PostgreSQL major version the SQL will run on.
    pub pg_version: PgVersion,
    /// Plain SQL runs inside one transaction.
    pub assume_in_transaction: bool,
    /// Rules switched on and off.
    pub rules: RuleSelection,
    /// Schema SQL of the existing tables.
    pub schema: Option<PathBuf>,
}

/// The flag groups of the command being run (`None`: it has no such flags; the
/// environment variables of the policy flags still count).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct CommandFlags<'a> {
    /// `migrate`, `sqlmigrate`.
    pub policy: Option<&'a PolicyArgs>,
    /// `lint`.
    pub lint: Option<&'a LintArgs>,
}

impl Settings {
    /// Resolves flags, environment, pgcalm.toml and defaults. Errors (a file that does
    /// not parse, an unknown section or key, a bad value) name file:line:column.
    pub(crate) fn resolve(
        global: &GlobalArgs,
        command: CommandFlags<'_>,
    ) -> anyhow::Result<Settings> {
        let path = global
            .config
            .clone()
            .unwrap_or_else(|| PathBuf::from("pgcalm.toml"));
        let (file, base) = if path.is_file() {
            let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
            (file::read(&path)?, base)
        } else if global.config.is_some() {
            bail!(
                "config file {} does not exist\n  fix: give an existing file to --config (or PGCALM_CONFIG), or leave it out",
                path.display()
            );
        } else {
            (file::ConfigFile::default(), PathBuf::new())
        };
        let env_policy;
        let policy_flags = match command.policy {
            Some(flags) => flags,
            None => {
                env_policy = PolicyArgs::from_env()?;
                &env_policy
            }
        };
        let lint_flags = command.lint.cloned().unwrap_or_default();
        let db = file.database;
        Ok(Settings {
            format: global.format.unwrap_or(OutputFormat::Text),
            format_given: global.format.is_some(),
            database_url: global
                .database_url
                .clone()
                .filter(|u| !u.is_empty())
                .or(db.url),
            data_dir: global
                .data_dir
                .clone()
                .or_else(|| db.data_dir.map(|d| base.join(d)))
                .unwrap_or_else(|| PathBuf::from(".pgcalm")),
            database: global
                .database
                .clone()
                .or(db.name)
                .unwrap_or_else(|| DEFAULT_DATABASE.to_string()),
            migrations_dir: global
                .migrations_dir
                .clone()
                .or_else(|| file.migrations.dir.map(|d| base.join(d)))
                .unwrap_or_else(|| PathBuf::from("migrations")),
            policy: policy(policy_flags, &file.migrate),
            lint: LintSettings {
                pg_version: PgVersion(
                    lint_flags
                        .pg_version
                        .or(file.lint.pg_version)
                        .unwrap_or(PgVersion::DEFAULT.0),
                ),
                assume_in_transaction: lint_flags.assume_in_transaction
                    || file.lint.assume_in_transaction.unwrap_or(false),
                rules: RuleSelection {
                    disable: file.lint.disable.into_iter().map(|r| r.0).collect(),
                    enable: file.lint.enable.into_iter().map(|r| r.0).collect(),
                },
                schema: lint_flags
                    .schema
                    .or_else(|| file.lint.schema.map(|s| base.join(s))),
            },
            start_points: file.up.migrate_to,
        })
    }

    /// `pgcalm lint`'s options, with the schema file read and parsed.
    pub(crate) fn lint_options(&self) -> anyhow::Result<LintOptions> {
        let schema = match &self.lint.schema {
            Some(path) => {
                let sql = std::fs::read_to_string(path)
                    .with_context(|| format!("reading the schema {}", path.display()))?;
                let schema = Schema::from_sql(&sql).map_err(|e| {
                    anyhow::anyhow!(
                        "{}:{}{}: SQL syntax error in the schema: {}\n  {}",
                        path.display(),
                        e.line,
                        e.column.map(|c| format!(":{c}")).unwrap_or_default(),
                        e.message,
                        e.excerpt
                    )
                })?;
                Some(Arc::new(schema))
            }
            None => None,
        };
        Ok(LintOptions {
            pg_version: self.lint.pg_version,
            assume_in_transaction: self.lint.assume_in_transaction,
            rules: self.lint.rules.clone(),
            schema,
        })
    }

    /// The embedded cluster, or None when `DATABASE_URL` names a server.
    pub(crate) fn cluster(&self) -> Option<Cluster> {
        self.database_url
            .is_none()
            .then(|| Cluster::new(&self.data_dir))
    }

    /// The target without checking that it is reachable: `DATABASE_URL`, or the
    /// embedded cluster's remembered port and password.
    pub(crate) fn target_unchecked(&self) -> anyhow::Result<Target> {
        if let Some(url) = &self.database_url {
            return Ok(Target::from_url(url)?);
        }
        Ok(self.created_cluster()?.target(&self.database)?)
    }

    /// The connection URL with its password: `DATABASE_URL` as given, or the embedded
    /// cluster's (which only the user who ran `pgcalm up` can read).
    pub(crate) fn url_with_password(&self) -> anyhow::Result<String> {
        if let Some(url) = &self.database_url {
            return Ok(url.clone());
        }
        Ok(self.created_cluster()?.url(&self.database)?)
    }

    fn created_cluster(&self) -> anyhow::Result<Cluster> {
        let cluster = Cluster::new(&self.data_dir);
        if cluster.port().is_none() {
            bail!(
                "no database: the embedded PostgreSQL in {} has not been created and DATABASE_URL is not set\n  \
                 fix: run `pgcalm up` (or set DATABASE_URL)",
                self.data_dir.display()
            );
        }
        Ok(cluster)
    }

    /// The database to work on; for the embedded cluster, fails with the fix when it is
    /// not running.
    pub(crate) async fn target(&self) -> anyhow::Result<Target> {
        let target = self.target_unchecked()?;
        if let Some(cluster) = self.cluster()
            && cluster.running_pid().is_none()
        {
            bail!(
                "the embedded PostgreSQL ({}) is not running\n  fix: run `pgcalm up`",
                cluster.root().display()
            );
        }
        Ok(target)
    }

    /// Directory of migration files.
    pub(crate) fn migrations_dir(&self) -> &Path {
        &self.migrations_dir
    }

    /// Whether output should be JSON.
    pub(crate) fn json(&self) -> bool {
        self.format == OutputFormat::Json
    }
}

/// The policy: flags and environment > pgcalm.toml `[migrate]` > defaults.
fn policy(flags: &PolicyArgs, file: &file::MigrateSection) -> Policy {
    let pick = |flag: Option<Duration>, file: Option<HumanDuration>| flag.or(file.map(|d| d.0));
    let d = Policy::default();
    Policy {
        lock_timeout: pick(flags.lock_timeout, file.lock_timeout).unwrap_or(d.lock_timeout),
        concurrent_lock_timeout: pick(flags.concurrent_lock_timeout, file.concurrent_lock_timeout),
        statement_timeout: pick(flags.statement_timeout, file.statement_timeout),
        max_retries: flags
            .max_retries
            .or(file.max_retries)
            .unwrap_or(d.max_retries),
        retry_initial: pick(flags.retry_initial, file.retry_initial).unwrap_or(d.retry_initial),
        retry_max: pick(flags.retry_max, file.retry_max).unwrap_or(d.retry_max),
        wait_for_lock: pick(flags.wait, file.wait),
        client_connection_check_interval: pick(
            flags.client_connection_check_interval,
            file.client_connection_check_interval,
        )
        .or(d.client_connection_check_interval),
        allow_risky: flags.allow_risky || file.allow_risky.unwrap_or(d.allow_risky),
    }
}
