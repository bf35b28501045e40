//! Where a trace runs: a fresh database (`pgcalm_trace_<random>`) on a server that is
//! already there (the embedded cluster), dropped afterwards; a throwaway cluster in a
//! temp dir, deleted afterwards; or a scratch database the user names, which must be
//! empty unless forced.

use pgcalm_pg::catalog::user_tables;
use pgcalm_pg::{Cluster, ClusterOptions, StartOutcome, Target, quote_ident};

use crate::error::TraceError;

/// A server on which each traced file gets its own fresh database.
#[derive(Debug)]
pub enum Server {
    /// A running server (the embedded cluster); `admin` reaches any of its databases.
    Existing {
        /// A target on it (its database name is replaced).
        admin: Box<Target>,
    },
    /// A cluster started for this trace only.
    Throwaway {
        /// The cluster (stopped and deleted by [`Server::shutdown`]).
        cluster: Cluster,
        /// Its loopback port.
        port: u16,
    },
}

impl Server {
    /// Starts a throwaway cluster in a new temp dir (durability off). Takes a few
    /// seconds (initdb).
    pub fn start_throwaway() -> Result<Server, TraceError> {
        let dir = tempfile::Builder::new()
            .prefix("pgcalm-trace-")
            .tempdir()
            .map_err(|e| TraceError::Scratch(format!("creating a temp dir: {e}")))?
            .keep();
        let cluster = Cluster::new(dir.join("cluster"));
        match cluster.start(None, &ClusterOptions::throwaway())? {
            StartOutcome::Started { port, .. } | StartOutcome::AlreadyRunning { port, .. } => {
                Ok(Server::Throwaway { cluster, port })
            }
        }
    }

    /// A new empty database on this server, dropped by [`ScratchDb::dispose`].
    pub async fn fresh_database(&self) -> Result<ScratchDb, TraceError> {
        let name = format!("pgcalm_trace_{:08x}", rand::random::<u32>());
        let base = match self {
            Server::Existing { admin } => (**admin).clone(),
            Server::Throwaway { cluster, .. } => cluster.target("postgres")?,
        };
        let target = base.with_dbname(&name);
        target.ensure_database().await?;
        Ok(ScratchDb {
            target,
            drop_after: true,
        })
    }

    /// Stops and deletes a throwaway cluster; nothing for an existing server.
    pub fn shutdown(self) -> Result<(), TraceError> {
        if let Server::Throwaway { cluster, .. } = self {
            let root = cluster.root().to_path_buf();
            cluster.delete()?;
            // The temp dir that held the cluster root.
            if let Some(parent) = root.parent() {
                let _ = std::fs::remove_dir(parent);
            }
        }
        Ok(())
    }
}

/// The database one trace runs in.
#[derive(Debug)]
pub struct ScratchDb {
    target: Target,
    drop_after: bool,
}

impl ScratchDb {
    /// A database the user named: refused when it has user tables, unless `force`.
    /// It is kept afterwards.
    pub async fn given(target: Target, force: bool) -> Result<ScratchDb, TraceError> {
        let client = target
            .with_application_name("pgcalm trace")
            .connect()
            .await?;
        let tables = user_tables(&client).await?;
        if !tables.is_empty() && !force {
            return Err(TraceError::NotEmpty {
                database: target.dbname().to_string(),
                count: tables.len(),
                examples: tables
                    .iter()
                    .take(3)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        Ok(ScratchDb {
            target,
            drop_after: false,
        })
    }

    /// Where to connect.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Drops the database if this trace created it (closing any session left in it).
    pub async fn dispose(self) -> Result<(), TraceError> {
        if !self.drop_after {
            return Ok(());
        }
        let admin = self.target.with_dbname("postgres").connect().await?;
        admin
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                quote_ident(self.target.dbname())
            ))
            .await
            .map_err(pgcalm_pg::PgError::query(format!(
                "dropping the trace database {}",
                self.target.dbname()
            )))?;
        Ok(())
    }
}
