//! Settings: resolved once in `main`, before any command runs, from flags > environment
//! (`DATABASE_URL`, `PGCALM_*`) > `pgcalm.toml` > defaults, into the one typed value
//! every command's `run` receives; and the handles commands need from it (target,
//! cluster).
//!
//! - `project.rs`: the project, found from the current directory upwards (a pgcalm.toml
//!   or a `.pgcalm/`); its defaults are resolved against it.
//! - `flags.rs`: the flags (and, through clap, their environment variables): every
//!   command's [`GlobalArgs`], and the groups a command flattens into its own flags
//!   when they apply to it ([`ServerArgs`], [`MigrationsArgs`], [`PolicyArgs`], ...).
//! - `file.rs`: pgcalm.toml, one struct per section, unknown sections and keys refused
//!   with file:line:column.

mod file;
mod flags;
mod project;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use pgcalm_lint::{LintOptions, PgVersion, RuleSelection, Schema};
use pgcalm_migrate::{HumanDuration, Policy, StartPoint};
use pgcalm_pg::{Cluster, DEFAULT_DATABASE, Ownership, Target};

pub(crate) use file::starter_config;
use flags::{DataDirArgs, DatabaseArgs};
pub(crate) use flags::{
    FormatArgs, GlobalArgs, LintArgs, MigrationsArgs, OnDataDir, OnDatabase, OnMigrations,
    OnServer, OutputFormat, PolicyArgs, ReportFormatArgs, RunnerArgs, ServerArgs, args_in_place,
};
pub(crate) use project::{CONFIG_FILE, Project};

/// Everything configurable, resolved.
#[derive(Debug)]
pub(crate) struct Settings {
    /// Output format chosen by `--format` (text unless given).
    pub format: OutputFormat,
    /// The current directory (after `-C`).
    cwd: PathBuf,
    /// The project found from it, if any.
    project: Option<Project>,
    /// Whether `--format` was given: `monitor` writes JSON when piped unless told text.
    pub format_given: bool,
    /// A server of the user's (`DATABASE_URL`, `--database-url`, `[database] url`);
    /// `None`: the embedded cluster.
    database_url: Option<String>,
    /// Where the embedded cluster is.
    data: DataPlace,
    /// The database on the embedded server.
    database: String,
    /// Where the migration files are.
    migrations_dir: PathBuf,
    /// The runner's policy (`[migrate]`, the policy flags): what `migrate`, `sqlmigrate`,
    /// `up`, `trace` and `lab`'s safe forms run with.
    pub policy: Policy,
    /// `pgcalm lint`'s rules and assumptions (`[lint]`, its flags).
    pub lint: LintSettings,
    /// Where `pgcalm up` migrates forward to (`[up] migrate_to`).
    pub start_points: Vec<StartPoint>,
    /// The server's own address when `database_url` is a transaction pooler
    /// (`migrate --direct-url`, `PGCALM_MIGRATE_URL`, `[migrate] direct_url`).
    pub direct_url: Option<String>,
    /// The configuration file given with `--config` / `PGCALM_CONFIG`.
    config: Option<PathBuf>,
}

/// Where the embedded cluster is.
#[derive(Debug, Clone)]
enum DataPlace {
    /// `--data-dir`, `PGCALM_DATA_DIR`, `[database] data_dir`.
    Given(PathBuf),
    /// The project's `.pgcalm/`, or where its `.pgcalm/cluster-dir` points.
    Project(Project),
    /// There is no project here: nothing to create or use.
    Nowhere,
}

impl DataPlace {
    /// The cluster's root, the pointer read afresh.
    fn root(&self, cwd: &Path) -> PathBuf {
        match self {
            DataPlace::Given(dir) => dir.clone(),
            DataPlace::Project(project) => project
                .pointer()
                .unwrap_or_else(|| project.path(project::STATE_DIR)),
            DataPlace::Nowhere => cwd.join(project::STATE_DIR),
        }
    }
}

/// Where `pgcalm up` runs the embedded cluster.
#[derive(Debug)]
pub(crate) struct Placement {
    /// The cluster.
    pub cluster: Cluster,
    /// Set when it is kept outside the project.
    pub outside: Option<Outside>,
}

/// A cluster kept outside its project, which the server's account cannot enter.
#[derive(Debug)]
pub(crate) struct Outside {
    /// The project directory the `postgres` user cannot enter.
    pub project: PathBuf,
    /// `.pgcalm/cluster-dir`, which names the cluster's directory.
    pub pointer: PathBuf,
    /// Whether `up` chose the place just now (else an earlier `up` did).
    pub new: bool,
}

/// Re-resolves the embedded cluster's target (its port and password may change with a
/// `down` / `up`); given to the demo app so a running `serve` follows the cluster.
pub(crate) type Retarget = Arc<dyn Fn() -> Result<Target, String> + Send + Sync>;

/// `pgcalm lint`'s settings; the schema file is read when lint runs.
#[derive(Debug, Clone)]
pub(crate) struct LintSettings {
    /// PostgreSQL major version the SQL will run on.
    pub pg_version: PgVersion,
    /// Plain SQL runs inside one transaction.
    pub assume_in_transaction: bool,
    /// The migration tool that runs the files (`None`: detected per file).
    pub tool: Option<pgcalm_lint::Tool>,
    /// Rules switched on and off.
    pub rules: RuleSelection,
    /// Schema SQL of the existing tables.
    pub schema: Option<PathBuf>,
    /// Fewer estimated rows than this: a small table (`[lint] small_table_rows`).
    pub small_table_rows: f64,
}

/// The flag groups of the command being run (`None`: it has no such flags; their
/// environment variables still count).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct CommandFlags<'a> {
    /// `--database-url`, `--data-dir`.
    pub server: Option<&'a ServerArgs>,
    /// `--data-dir` alone (`down`, `logs`).
    pub data_dir: Option<&'a DataDirArgs>,
    /// `--database`.
    pub database: Option<&'a DatabaseArgs>,
    /// `--migrations-dir`.
    pub migrations: Option<&'a MigrationsArgs>,
    /// `--format` (text when the command has none).
    pub format: Option<OutputFormat>,
    /// `migrate`, `sqlmigrate`.
    pub policy: Option<&'a PolicyArgs>,
    /// `migrate`.
    pub runner: Option<&'a RunnerArgs>,
    /// `lint`.
    pub lint: Option<&'a LintArgs>,
}

impl<A: clap::Args> OnMigrations<A> {
    /// Its settings flags.
    pub(crate) fn flags(&self) -> CommandFlags<'_> {
        CommandFlags {
            server: Some(&self.server),
            database: Some(&self.database),
            migrations: Some(&self.migrations),
            format: self.format.format.map(Into::into),
            ..CommandFlags::default()
        }
    }
}

impl<A: clap::Args> OnDatabase<A> {
    /// Its settings flags.
    pub(crate) fn flags(&self) -> CommandFlags<'_> {
        CommandFlags {
            server: Some(&self.server),
            database: Some(&self.database),
            format: self.format.format.map(Into::into),
            ..CommandFlags::default()
        }
    }
}

impl<A: clap::Args> OnServer<A> {
    /// Its settings flags.
    pub(crate) fn flags(&self) -> CommandFlags<'_> {
        CommandFlags {
            server: Some(&self.server),
            database: Some(&self.database),
            ..CommandFlags::default()
        }
    }
}

impl<A: clap::Args> OnDataDir<A> {
    /// Its settings flags.
    pub(crate) fn flags(&self) -> CommandFlags<'_> {
        CommandFlags {
            data_dir: Some(&self.data_dir),
            ..CommandFlags::default()
        }
    }
}

impl Settings {
    /// Resolves flags, environment, pgcalm.toml and defaults for the project found from
    /// the current directory. Errors (a file that does not parse, an unknown section or
    /// key, a bad value) name file:line:column.
    pub(crate) fn resolve(
        global: &GlobalArgs,
        command: CommandFlags<'_>,
    ) -> anyhow::Result<Settings> {
        let cwd = std::env::current_dir().context("reading the current directory")?;
        let project = match &global.config {
            // An explicit file makes its directory the project, as `docker compose -f`.
            Some(path) => {
                if !path.is_file() {
                    bail!(
                        "config file {} does not exist\n  fix: give an existing file to --config \
                         (or PGCALM_CONFIG), or leave it out",
                        path.display()
                    );
                }
                Some(Project::at(path.parent().unwrap_or(Path::new("")), &cwd))
            }
            None => Project::discover(&cwd),
        };
        let config = global
            .config
            .clone()
            .or_else(|| project.as_ref().and_then(Project::config_file));
        let (file, base) = match &config {
            Some(path) => (
                file::read(path)?,
                path.parent().map(Path::to_path_buf).unwrap_or_default(),
            ),
            None => (file::ConfigFile::default(), PathBuf::new()),
        };
        let env_policy;
        let policy_flags = match command.policy {
            Some(flags) => flags,
            None => {
                env_policy = flags::from_env::<PolicyArgs>()?;
                &env_policy
            }
        };
        // Only `migrate` has these (clap reads their environment variables for it).
        let runner = command.runner.cloned().unwrap_or_default();
        let server = match command.server {
            Some(server) => server.clone(),
            None => {
                let mut server = flags::from_env::<ServerArgs>()?;
                if let Some(dir) = command.data_dir {
                    server.data_dir = dir.clone();
                }
                server
            }
        };
        let database = match command.database {
            Some(d) => d.clone(),
            None => flags::from_env::<DatabaseArgs>()?,
        };
        let migrations = match command.migrations {
            Some(m) => m.clone(),
            None => flags::from_env::<MigrationsArgs>()?,
        };
        let lint_flags = command.lint.cloned().unwrap_or_default();
        let db = file.database;
        let data = match server
            .data_dir
            .data_dir
            .or_else(|| db.data_dir.map(|d| base.join(d)))
        {
            Some(dir) => DataPlace::Given(dir),
            None => match &project {
                Some(project) => DataPlace::Project(project.clone()),
                None => DataPlace::Nowhere,
            },
        };
        let migrations_dir = migrations
            .migrations_dir
            .or_else(|| file.migrations.dir.map(|d| base.join(d)))
            .unwrap_or_else(|| match &project {
                Some(project) => project.path("migrations"),
                None => PathBuf::from("migrations"),
            });
        Ok(Settings {
            format: command.format.unwrap_or(OutputFormat::Text),
            format_given: command.format.is_some(),
            cwd,
            project,
            database_url: server.database_url.filter(|u| !u.is_empty()).or(db.url),
            data,
            database: database
                .database
                .or(db.name)
                .unwrap_or_else(|| DEFAULT_DATABASE.to_string()),
            migrations_dir,
            policy: policy(policy_flags, &runner, &file.migrate),
            lint: LintSettings {
                pg_version: PgVersion(
                    lint_flags
                        .pg_version
                        .or(file.lint.pg_version)
                        .unwrap_or(PgVersion::DEFAULT.0),
                ),
                assume_in_transaction: lint_flags.assume_in_transaction
                    || file.lint.assume_in_transaction.unwrap_or(false),
                tool: lint_flags.tool.or(file.lint.tool.map(|t| t.0)),
                rules: RuleSelection {
                    disable: (file.lint.disable.into_iter().map(|r| r.0))
                        .chain(lint_flags.disable.iter().copied())
                        .filter(|r| !lint_flags.enable.contains(r))
                        .collect(),
                    enable: (file.lint.enable.into_iter().map(|r| r.0))
                        .chain(lint_flags.enable.iter().copied())
                        .filter(|r| !lint_flags.disable.contains(r))
                        .collect(),
                },
                schema: lint_flags
                    .schema
                    .or_else(|| file.lint.schema.map(|s| base.join(s))),
                small_table_rows: file.lint.small_table_rows.unwrap_or(10_000.0),
            },
            start_points: file.up.migrate_to,
            direct_url: runner
                .direct_url
                .or(file.migrate.direct_url)
                .filter(|u| !u.is_empty()),
            config: global.config.clone(),
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
            today: Some(pgcalm_lint::Date::today()),
            simple_queries: Vec::new(),
        })
    }

    /// The embedded cluster, or None when `DATABASE_URL` names a server. Outside any
    /// project it is one that does not exist (`./.pgcalm`), which the commands that
    /// only look at it report as not created; [`Settings::placement`] and
    /// [`Settings::embedded_cluster`] refuse it.
    pub(crate) fn cluster(&self) -> Option<Cluster> {
        self.database_url
            .is_none()
            .then(|| Cluster::new(self.data.root(&self.cwd)))
    }

    /// The embedded cluster for a command that creates, starts, stops or deletes it (None
    /// for `DATABASE_URL`); outside any project, the error saying how to start one.
    pub(crate) fn embedded_cluster(&self) -> anyhow::Result<Option<Cluster>> {
        if self.database_url.is_none() && matches!(self.data, DataPlace::Nowhere) {
            return Err(project::no_project(&self.cwd));
        }
        Ok(self.cluster())
    }

    /// Where `pgcalm up` runs the embedded cluster (None for `DATABASE_URL`): the
    /// project's `.pgcalm/`, or, as root when the `postgres` user cannot enter the
    /// project, a directory of the server's own under /var/lib/pgcalm, named by
    /// `.pgcalm/cluster-dir` (written here the first time).
    pub(crate) fn placement(&self) -> anyhow::Result<Option<Placement>> {
        let Some(cluster) = self.embedded_cluster()? else {
            return Ok(None);
        };
        let DataPlace::Project(project) = &self.data else {
            return Ok(Some(Placement {
                cluster,
                outside: None,
            }));
        };
        let outside = |new| Outside {
            project: project.root().to_path_buf(),
            pointer: project.pointer_file(),
            new,
        };
        if project.pointer().is_some() {
            return Ok(Some(Placement {
                cluster,
                outside: Some(outside(false)),
            }));
        }
        let keep_inside = !pgcalm_pg::cluster::running_as_root()
            || matches!(
                cluster.ownership(),
                Ownership::Marked | Ownership::OlderPgcalm
            )
            || pgcalm_pg::cluster::server_account_can_enter(project.root())?;
        if keep_inside {
            return Ok(Some(Placement {
                cluster,
                outside: None,
            }));
        }
        let dir = project.shared_data_dir();
        pgcalm_pg::cluster::create_server_dir(&dir)?;
        project.write_pointer(&dir)?;
        Ok(Some(Placement {
            cluster: Cluster::new(dir),
            outside: Some(outside(true)),
        }))
    }

    /// Why the cluster is outside the project, for `status` (None when it is inside).
    pub(crate) fn outside_note(&self) -> Option<String> {
        let DataPlace::Project(project) = &self.data else {
            return None;
        };
        project.pointer().map(|_| {
            format!(
                "kept outside the project, which the `postgres` user cannot enter; {} names it",
                project.pointer_file().display()
            )
        })
    }

    /// After `down --volumes` deleted the cluster: the pointer to it goes too. Returns
    /// the pointer file it removed.
    pub(crate) fn forget_outside_cluster(&self) -> anyhow::Result<Option<PathBuf>> {
        let DataPlace::Project(project) = &self.data else {
            return Ok(None);
        };
        if project.pointer().is_none() {
            return Ok(None);
        }
        let pointer = project.pointer_file();
        std::fs::remove_file(&pointer)
            .with_context(|| format!("removing {}", pointer.display()))?;
        Ok(Some(pointer))
    }

    /// The project, if there is one.
    pub(crate) fn project(&self) -> Option<&Project> {
        self.project.as_ref()
    }

    /// The project, or the error saying there is none and how to start one.
    pub(crate) fn require_project(&self) -> anyhow::Result<&Project> {
        self.project
            .as_ref()
            .ok_or_else(|| project::no_project(&self.cwd))
    }

    /// The current directory (after `-C`).
    pub(crate) fn cwd(&self) -> &Path {
        &self.cwd
    }

    /// For the demo app on the embedded cluster: how to find the cluster's target again
    /// after a `down` / `up` (None for `DATABASE_URL`, which does not move).
    pub(crate) fn retarget(&self) -> Option<Retarget> {
        if self.database_url.is_some() {
            return None;
        }
        let (data, cwd, database) = (self.data.clone(), self.cwd.clone(), self.database.clone());
        Some(Arc::new(move || {
            Cluster::new(data.root(&cwd))
                .target(&database)
                .map_err(|e| e.to_string())
        }))
    }

    /// The flags and environment that make a child `pgcalm` (the background demo app),
    /// started in the same directory, resolve the same settings; the URL goes through
    /// the environment, never on a command line.
    pub(crate) fn for_child(&self) -> (Vec<OsString>, Vec<(&'static str, String)>) {
        let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        let mut args: Vec<OsString> = Vec::new();
        if let Some(config) = &self.config {
            args.extend(["--config".into(), absolute(config).into()]);
        }
        if let DataPlace::Given(dir) = &self.data {
            args.extend(["--data-dir".into(), absolute(dir).into()]);
        }
        args.extend(["--database".into(), self.database.clone().into()]);
        if self.json() {
            args.extend(["--format".into(), "json".into()]);
        }
        let env = match &self.database_url {
            Some(url) => vec![("DATABASE_URL", url.clone())],
            None => Vec::new(),
        };
        (args, env)
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

    /// The embedded cluster, once `pgcalm up` created it (outside any project, the
    /// error saying how to start one).
    fn created_cluster(&self) -> anyhow::Result<Cluster> {
        let cluster = Cluster::new(self.data.root(&self.cwd));
        if matches!(self.data, DataPlace::Nowhere) {
            return Err(project::no_project(&self.cwd));
        }
        if cluster.port().is_none() {
            bail!(
                "no database: the embedded PostgreSQL in {} has not been created and DATABASE_URL is not set\n  \
                 fix: run `pgcalm up` (or set DATABASE_URL)",
                cluster.root().display()
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
fn policy(flags: &PolicyArgs, runner: &RunnerArgs, file: &file::MigrateSection) -> Policy {
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
        cancel_idle_blockers: pick(runner.cancel_idle_blockers, file.cancel_idle_blockers),
        max_replica_lag: pick(runner.max_replica_lag, file.max_replica_lag).or(d.max_replica_lag),
    }
}
