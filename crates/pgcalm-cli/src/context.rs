//! Configuration resolution: flags > environment (`DATABASE_URL`, `PGCALM_*`) >
//! `pgcalm.toml` > defaults, and the handles commands need (target, cluster).

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use pgcalm_pg::{Cluster, DEFAULT_DATABASE, Target};
use serde::de::DeserializeOwned;

/// Flags shared by every command.
#[derive(Debug, clap::Args)]
pub struct GlobalArgs {
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
    /// markdown).
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Human-readable text and tables.
    Text,
    /// One JSON document on stdout.
    Json,
    /// GitHub Actions workflow annotations (`pgcalm lint`, `pgcalm trace`).
    Github,
    /// A Markdown report for a pull-request comment (`pgcalm lint`, `pgcalm trace`).
    Markdown,
}

/// `[database]` section of pgcalm.toml.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DatabaseSection {
    name: Option<String>,
    data_dir: Option<PathBuf>,
    url: Option<String>,
}

/// `[migrations]` section of pgcalm.toml.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct MigrationsSection {
    dir: Option<PathBuf>,
}

/// Resolved configuration and the raw file for sections owned by other commands.
#[derive(Debug)]
pub struct Context {
    database_url: Option<String>,
    data_dir: PathBuf,
    database: String,
    migrations_dir: PathBuf,
    /// Output format chosen by `--format`.
    pub format: OutputFormat,
    file: toml::Table,
    file_path: Option<PathBuf>,
}

impl Context {
    /// Resolves flags, environment, file and defaults.
    pub fn load(args: GlobalArgs) -> anyhow::Result<Self> {
        let explicit = args.config.is_some();
        let path = args.config.unwrap_or_else(|| PathBuf::from("pgcalm.toml"));
        let (file, file_path) = if path.is_file() {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading config file {}", path.display()))?;
            let table: toml::Table = toml::from_str(&text)
                .map_err(|e| anyhow::anyhow!("config file {}: {e}", path.display()))?;
            (table, Some(path))
        } else if explicit {
            bail!("config file {} does not exist", path.display());
        } else {
            (toml::Table::new(), None)
        };
        let mut ctx = Self {
            database_url: None,
            data_dir: PathBuf::new(),
            database: String::new(),
            migrations_dir: PathBuf::new(),
            format: args.format,
            file,
            file_path,
        };
        let db: DatabaseSection = ctx.section("database")?;
        let mig: MigrationsSection = ctx.section("migrations")?;
        let base = ctx.file_dir();
        ctx.database_url = args.database_url.filter(|u| !u.is_empty()).or(db.url);
        ctx.data_dir = args
            .data_dir
            .or_else(|| db.data_dir.map(|d| base.join(d)))
            .unwrap_or_else(|| PathBuf::from(".pgcalm"));
        ctx.database = args
            .database
            .or(db.name)
            .unwrap_or_else(|| DEFAULT_DATABASE.to_string());
        ctx.migrations_dir = args
            .migrations_dir
            .or_else(|| mig.dir.map(|d| base.join(d)))
            .unwrap_or_else(|| PathBuf::from("migrations"));
        Ok(ctx)
    }

    fn file_dir(&self) -> PathBuf {
        self.file_path
            .as_deref()
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .unwrap_or_default()
    }

    /// A section of pgcalm.toml deserialized into `T` (its default when absent).
    pub fn section<T: DeserializeOwned + Default>(&self, name: &str) -> anyhow::Result<T> {
        match self.file.get(name) {
            None => Ok(T::default()),
            Some(value) => value.clone().try_into().map_err(|e| {
                let file = self
                    .file_path
                    .as_deref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "pgcalm.toml".into());
                anyhow::anyhow!("config file {file}, section [{name}]: {e}")
            }),
        }
    }

    /// The embedded cluster, or None when `DATABASE_URL` names a server.
    pub fn cluster(&self) -> Option<Cluster> {
        self.database_url
            .is_none()
            .then(|| Cluster::new(&self.data_dir))
    }

    /// The target without checking that it is reachable: `DATABASE_URL`, or the
    /// embedded cluster's remembered port and password.
    pub fn target_unchecked(&self) -> anyhow::Result<Target> {
        if let Some(url) = &self.database_url {
            return Ok(Target::from_url(url)?);
        }
        Ok(self.created_cluster()?.target(&self.database)?)
    }

    /// The connection URL with its password: `DATABASE_URL` as given, or the embedded
    /// cluster's (which only the user who ran `pgcalm up` can read).
    pub fn url_with_password(&self) -> anyhow::Result<String> {
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
    pub async fn target(&self) -> anyhow::Result<Target> {
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
    pub fn migrations_dir(&self) -> &Path {
        &self.migrations_dir
    }

    /// Whether output should be JSON.
    pub fn json(&self) -> bool {
        self.format == OutputFormat::Json
    }
}
