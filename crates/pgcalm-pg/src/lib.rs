//! pgcalm-pg: everything that talks to PostgreSQL as a server.
//!
//! Owns:
//! - [`binaries`]: finding `initdb` / `pg_ctl` (PG_BIN, pg_config, PATH, /usr/lib/postgresql)
//!   and `pgbouncer` (PGCALM_PGBOUNCER, PATH, /usr/sbin).
//! - [`cluster`]: the embedded cluster under `.pgcalm/` (initdb, start, stop, crash recovery;
//!   password-only authentication, a marker for the directories it may delete, a lock).
//! - [`replica`]: a streaming standby of that cluster (`pg_basebackup`, a replication
//!   slot, a replication role with a password of its own), [`pooler`]: PgBouncer in front
//!   of it in transaction pooling mode, [`topology`]: which of them `pgcalm up` runs,
//!   stopping them all, their status.
//! - [`target`]: a typed connection target (embedded or `DATABASE_URL`) whose display form
//!   masks the password, and connections that surface server notices.
//! - [`tls`]: libpq's `sslmode` / `sslrootcert` over rustls, the one connector every
//!   connection and pool uses.
//! - [`catalog`]: every query against `pg_catalog` / `pg_stat_*` (table description,
//!   index-build progress, activity and lock waits).
//!
//! Architecture invariant: this crate never prints; it returns typed values and
//! [`PgError`]s whose messages name the fix.
//!
//! ```no_run
//! # async fn demo() -> Result<(), pgcalm_pg::PgError> {
//! use pgcalm_pg::{Cluster, ClusterOptions};
//! let cluster = Cluster::new(".pgcalm");
//! cluster.start(None, &ClusterOptions::default())?;
//! let target = cluster.target("risky_migrations")?; // port and password
//! target.ensure_database().await?;
//! let client = target.connect().await?;
//! let report = pgcalm_pg::catalog::describe_table(&client, "large_email", true).await?;
//! println!("{} columns", report.columns.len());
//! # Ok(()) }
//! ```
#![cfg_attr(test, allow(unused_crate_dependencies))] // unit tests use some dev-dependencies

pub mod binaries;
pub mod catalog;
pub mod cluster;
pub mod error;
pub mod pooler;
pub mod replica;
pub mod target;
pub mod tls;
pub mod topology;

pub use binaries::PgBinaries;
pub use cluster::{Cluster, ClusterOptions, ClusterStatus, CrashRecovery, Ownership, StartOutcome};
pub use error::{ConnectFailure, PgError};
pub use pooler::{LAB_POOLER_DIR, Pooler, PoolerOptions, PoolerStart, PoolerStatus};
pub use replica::{Replica, ReplicaCreated, ReplicaOptions, ReplicaRemoval, ReplicaStart};
pub use target::{DEFAULT_DATABASE, Origin, Target, quote_ident};
pub use tls::{SslMode, TlsConnector};
pub use topology::{Parts, ReplicaState, ReplicaStatus, Stopped, Topology};
