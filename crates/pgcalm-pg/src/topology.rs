//! What runs beside the embedded primary: the replica ([`crate::replica`]) and the
//! pooler ([`crate::pooler`]), which of them `pgcalm up` set up ([`Parts`], remembered
//! in the cluster's state file so a plain `pgcalm up` restarts them), stopping them all,
//! and their status ([`Topology`]).
//!
//! ```text
//! app ──> pooler (PgBouncer, transaction pooling) ──> primary ──WAL──> replica
//! ```

use std::path::PathBuf;

use serde::Serialize;

use crate::catalog::topology::{self as catalog, ReplicaLag, SlotInfo};
use crate::cluster::Cluster;
use crate::error::PgError;
use crate::pooler::{DEFAULT_POOL_SIZE, Pooler, PoolerStatus};
use crate::replica::{REPLICA_NAME, REPLICATION_SLOT};

/// What `pgcalm up` runs beside the primary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Parts {
    /// A streaming replica.
    pub replica: bool,
    /// PgBouncer in front of the primary.
    pub pooler: bool,
    /// The pooler's `default_pool_size`.
    pub pool_size: u32,
}

impl Default for Parts {
    fn default() -> Self {
        Self {
            replica: false,
            pooler: false,
            pool_size: DEFAULT_POOL_SIZE,
        }
    }
}

impl Parts {
    /// This choice changed by `up`'s flags: `Some(true)` adds a part, `Some(false)`
    /// removes it, None keeps what was chosen before.
    pub fn with(self, replica: Option<bool>, pooler: Option<bool>, pool_size: Option<u32>) -> Self {
        Self {
            replica: replica.unwrap_or(self.replica),
            pooler: pooler.unwrap_or(self.pooler),
            pool_size: pool_size.unwrap_or(self.pool_size),
        }
    }
}

/// The pids [`Cluster::stop_all`] stopped (None: that part was not running).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stopped {
    /// PgBouncer.
    pub pooler: Option<u32>,
    /// The PgBouncer a killed `pgcalm lab --pooler` left running.
    pub lab_pooler: Option<u32>,
    /// The replica's postmaster.
    pub replica: Option<u32>,
    /// The primary's postmaster.
    pub primary: Option<u32>,
}

impl Cluster {
    /// What `pgcalm up` set up beside the server ([`Parts`]), from the state file.
    pub fn parts(&self) -> Parts {
        let on = |key| self.state_value(key).as_deref() == Some("on");
        Parts {
            replica: on("replica"),
            pooler: on("pooler"),
            pool_size: self
                .state_value("pool_size")
                .and_then(|v| v.parse().ok())
                .unwrap_or(DEFAULT_POOL_SIZE),
        }
    }

    /// Remembers `parts` in the state file, for the next `pgcalm up`.
    pub fn remember_parts(&self, parts: &Parts) -> Result<(), PgError> {
        let on = |yes: bool| yes.then_some("on");
        self.set_state_value("replica", on(parts.replica))?;
        self.set_state_value("pooler", on(parts.pooler))?;
        let size = parts.pool_size.to_string();
        self.set_state_value(
            "pool_size",
            (parts.pool_size != DEFAULT_POOL_SIZE).then_some(size.as_str()),
        )
    }

    /// Stops the pooler, the replica and the primary, in that order (clients first, and
    /// the replica before the server it streams from).
    pub fn stop_all(&self) -> Result<Stopped, PgError> {
        let pooler = Pooler::of(self).stop()?;
        let lab_pooler = Pooler::lab_of(self).stop()?;
        let replica = self.replica().stop()?;
        let primary = self.running_pid();
        self.stop()?;
        Ok(Stopped {
            pooler,
            lab_pooler,
            replica,
            primary,
        })
    }
}

/// The replica and the pooler as `pgcalm status` shows them.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Topology {
    /// The replica, when one was set up (or its directory exists).
    pub replica: Option<ReplicaStatus>,
    /// The pooler, when one was set up (or its directory exists).
    pub pooler: Option<PoolerStatus>,
    /// Replication slots on the primary that no standby uses: each keeps WAL on the
    /// primary's disk. pgcalm's own ([`REPLICATION_SLOT`]) without a replica was left by
    /// a deleted one, and the next `pgcalm up` drops it; others are not pgcalm's.
    pub inactive_slots: Vec<SlotInfo>,
}

/// Where the replica stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplicaState {
    /// It streams from the primary.
    Streaming,
    /// Connected, not streaming yet (`startup`, `catchup`).
    CatchingUp,
    /// Running, but the primary has no connection from it.
    NotConnected,
    /// Its server is stopped.
    NotRunning,
    /// Set up, but its directory does not hold a replica (deleted, or a base backup
    /// failed).
    NotCreated,
}

impl ReplicaState {
    /// In words, as `status` prints it.
    pub fn label(self) -> &'static str {
        match self {
            Self::Streaming => "streaming",
            Self::CatchingUp => "catching up",
            Self::NotConnected => "not connected to the primary",
            Self::NotRunning => "not running",
            Self::NotCreated => "not created",
        }
    }
}

/// The replica's status.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ReplicaStatus {
    /// Its directory.
    pub dir: PathBuf,
    /// Its port.
    pub port: Option<u16>,
    /// Its postmaster pid, when it runs.
    pub pid: Option<u32>,
    /// Where it stands.
    pub state: ReplicaState,
    /// `standby` while it replays the primary's WAL, `primary` once promoted.
    pub role: Option<String>,
    /// The replication slot it streams through.
    pub slot: String,
    /// WAL the primary has written that it has not replayed, in bytes.
    pub lag_bytes: Option<i64>,
    /// Its replay lag in seconds (see [`ReplicaLag::seconds`]).
    pub lag_seconds: Option<f64>,
    /// What went wrong asking, when something did.
    pub problem: Option<String>,
}

impl Topology {
    /// The status of the parts beside `primary`. Never fails: what cannot be asked is
    /// left out and said in a `problem`.
    pub async fn collect(primary: &Cluster) -> Topology {
        let parts = primary.parts();
        let admin = match primary.running_pid() {
            Some(_) => match primary.target("postgres") {
                Ok(t) => t
                    .with_application_name("pgcalm status")
                    .connect()
                    .await
                    .ok(),
                Err(_) => None,
            },
            None => None,
        };
        let replica = primary.replica();
        let replica = match parts.replica || replica.root().exists() {
            true => Some(replica_status(primary, admin.as_ref()).await),
            false => None,
        };
        let pooler = Pooler::of(primary);
        let pooler = match parts.pooler || pooler.dir().exists() {
            true => Some(pooler.status(primary).await),
            false => None,
        };
        let inactive_slots = match &admin {
            Some(admin) => catalog::replication_slots(admin)
                .await
                .unwrap_or_default()
                .into_iter()
                .filter(|s| !s.active)
                .collect(),
            None => Vec::new(),
        };
        Topology {
            replica,
            pooler,
            inactive_slots,
        }
    }
}

async fn replica_status(
    primary: &Cluster,
    admin: Option<&tokio_postgres::Client>,
) -> ReplicaStatus {
    let replica = primary.replica();
    let mut status = ReplicaStatus {
        dir: replica.root().to_path_buf(),
        port: replica.port(),
        pid: replica.running_pid(),
        state: ReplicaState::NotRunning,
        role: None,
        slot: REPLICATION_SLOT.to_string(),
        lag_bytes: None,
        lag_seconds: None,
        problem: None,
    };
    if !replica.exists() {
        status.state = ReplicaState::NotCreated;
        status.problem = Some("no replica in its directory; `pgcalm up` makes it".into());
        return status;
    }
    if status.pid.is_none() {
        status.problem = Some("the replica is stopped; `pgcalm up` starts it".into());
        return status;
    }
    let standby = async {
        let client = replica.target("postgres")?.connect().await?;
        catalog::standby_replay(&client).await
    };
    let standby = match standby.await {
        Ok(standby) => {
            status.role = Some(
                if standby.in_recovery {
                    "standby"
                } else {
                    "primary"
                }
                .into(),
            );
            Some(standby)
        }
        Err(e) => {
            status.problem = Some(e.to_string());
            None
        }
    };
    let Some(admin) = admin else {
        status.state = ReplicaState::NotConnected;
        status.problem = Some("the primary is not running".into());
        return status;
    };
    let sender = match catalog::wal_senders(admin).await {
        Ok(senders) => senders
            .into_iter()
            .find(|s| s.application_name == REPLICA_NAME),
        Err(e) => {
            status.problem = Some(e.to_string());
            None
        }
    };
    let Some(sender) = sender else {
        status.state = ReplicaState::NotConnected;
        return status;
    };
    status.state = match sender.state.as_str() {
        "streaming" => ReplicaState::Streaming,
        _ => ReplicaState::CatchingUp,
    };
    if let Some(lag) = ReplicaLag::of(&sender, standby.as_ref()) {
        status.lag_bytes = Some(lag.bytes);
        status.lag_seconds = lag.seconds;
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn up_flags_change_only_what_they_name() {
        let before = Parts {
            replica: true,
            pooler: false,
            pool_size: 5,
        };
        assert_eq!(before.with(None, None, None), before);
        let after = before.with(Some(false), Some(true), None);
        assert_eq!(
            after,
            Parts {
                replica: false,
                pooler: true,
                pool_size: 5
            }
        );
    }

    #[test]
    fn the_choice_is_remembered_beside_the_port() {
        let tmp = std::env::temp_dir().join(format!("pgcalm-parts-{}", std::process::id()));
        std::fs::create_dir_all(&tmp).unwrap();
        let cluster = Cluster::new(&tmp);
        cluster.remember_port(5555).unwrap();
        assert_eq!(cluster.parts(), Parts::default());
        let parts = Parts {
            replica: true,
            pooler: true,
            pool_size: 3,
        };
        cluster.remember_parts(&parts).unwrap();
        assert_eq!(cluster.parts(), parts);
        assert_eq!(cluster.port(), Some(5555));
        cluster.remember_port(5556).unwrap();
        assert_eq!(cluster.parts(), parts, "a new port keeps the parts");
        cluster.remember_parts(&Parts::default()).unwrap();
        let text = std::fs::read_to_string(tmp.join(crate::cluster::STATE_FILE)).unwrap();
        assert_eq!(text, "port=5556\n");
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
