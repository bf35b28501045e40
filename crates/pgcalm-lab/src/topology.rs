//! The production parts a lab run can go through and watch: the demo app through
//! PgBouncer in transaction pooling mode, a streaming replica of the server, and a
//! sampler of both every 250 ms (the replica's lag from `pg_stat_replication` on the
//! primary, the pooler's waiting clients from its admin console's `SHOW POOLS`).
//!
//! The migrations, the monitor and the blocking session still talk to the server
//! directly, as `pgcalm migrate --direct-url` would: only the application goes through
//! the pooler.

use std::path::Path;

use pgcalm_pg::catalog::topology as catalog;
use pgcalm_pg::{Cluster, PgError, Pooler, PoolerOptions, ReplicaOptions, Target};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::monitor::SAMPLE_INTERVAL;
use crate::results::{RunClock, TopologyInfo, TopologySample};

/// PgBouncer's server connections for the lab unless told otherwise: small, so that
/// what a migration's lock does to the pool shows within seconds.
pub const DEFAULT_LAB_POOL_SIZE: u32 = 4;

/// Client connections the demo app opens through the pooler: more than the pooler's
/// server connections, as an application with many workers behind PgBouncer has (the
/// pooler, not the app, is then what runs out).
pub(crate) const APP_CLIENTS_THROUGH_POOLER: usize = 16;

/// What a lab run goes through and watches besides the server (default: nothing; the
/// app connects to the server directly).
#[derive(Debug, Clone, Default)]
pub struct LabTopology {
    /// The demo app connects through this pooler.
    pub pooler: Option<LabPooler>,
    /// A streaming replica is attached: sample its lag on the primary.
    pub replica: bool,
}

/// A transaction pooler the demo app connects through.
#[derive(Debug, Clone)]
pub struct LabPooler {
    /// The pooler's address; the lab's database name is set on it.
    pub target: Target,
    /// Its admin console (`SHOW POOLS`), as a user it accepts there.
    pub admin: Target,
    /// Its server connections per database and user (`default_pool_size`).
    pub pool_size: u32,
}

impl LabTopology {
    /// Whether there is anything beside the server.
    pub fn is_direct(&self) -> bool {
        self.pooler.is_none() && !self.replica
    }

    /// For the results.
    pub(crate) fn info(&self) -> Option<TopologyInfo> {
        (!self.is_direct()).then(|| TopologyInfo {
            pooler_pool_size: self.pooler.as_ref().map(|p| p.pool_size),
            replica: self.replica,
        })
    }

    /// The embedded cluster's parts for `pgcalm lab --replica --pooler`: the replica
    /// that `pgcalm up --replica` runs (made and started if needed, and remembered, so
    /// `status` and `down` know it), and a PgBouncer of the lab's own in
    /// [`pgcalm_pg::LAB_POOLER_DIR`] with `pool_size` server connections, so the lab never changes
    /// the pool of the user's `pgcalm up --pooler`. Stop that pooler with
    /// [`stop_lab_pooler`] when the lab is done.
    pub async fn embedded(
        cluster: &Cluster,
        replica: bool,
        pool_size: Option<u32>,
    ) -> Result<LabTopology, PgError> {
        if replica {
            cluster.start_replica(&ReplicaOptions::default()).await?;
            cluster.remember_parts(&cluster.parts().with(Some(true), None, None))?;
        }
        let pooler = match pool_size {
            None => None,
            Some(pool_size) => {
                let pooler = Pooler::lab_of(cluster);
                pooler.start(cluster, &PoolerOptions { pool_size }).await?;
                Some(LabPooler {
                    target: pooler.target(cluster, "postgres")?,
                    admin: pooler.admin_target(cluster)?,
                    pool_size,
                })
            }
        };
        Ok(LabTopology { pooler, replica })
    }
}

/// Stops the lab's own PgBouncer (see [`LabTopology::embedded`]), if one runs under
/// `cluster_root`. Its directory stays, log included, for the next lab run (same port)
/// and for a look after a failed one; `pgcalm down --volumes` deletes it with the
/// cluster.
pub fn stop_lab_pooler(cluster_root: &Path) -> Result<(), PgError> {
    Pooler::lab_of(&Cluster::new(cluster_root)).stop()?;
    Ok(())
}

/// The replica and pooler sampler of one run.
pub(crate) struct RunningTopologyMonitor {
    cancel: CancellationToken,
    handle: JoinHandle<Vec<TopologySample>>,
}

impl RunningTopologyMonitor {
    /// Connects to the primary (`primary`, for `pg_stat_replication`) and the pooler's
    /// admin console as `topology` has them, and samples every [`SAMPLE_INTERVAL`]; the
    /// pool counted is the one of `dbname`. None when there is nothing to watch.
    pub(crate) async fn start(
        primary: &Target,
        topology: &LabTopology,
        dbname: &str,
        clock: RunClock,
    ) -> Result<Option<Self>, PgError> {
        if topology.is_direct() {
            return Ok(None);
        }
        let primary = match topology.replica {
            true => Some(
                primary
                    .with_application_name("pgcalm lab (replica lag)")
                    .connect()
                    .await?,
            ),
            false => None,
        };
        let admin = match &topology.pooler {
            Some(p) => Some(p.admin.connect().await?),
            None => None,
        };
        let dbname = dbname.to_string();
        let cancel = CancellationToken::new();
        let stop = cancel.clone();
        let handle = tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut ticker = tokio::time::interval(SAMPLE_INTERVAL);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = ticker.tick() => {}
                }
                let at_ms = clock.rel_ms(std::time::Instant::now());
                let mut sample = TopologySample {
                    at_ms,
                    replica_lag_bytes: None,
                    replica_lag_ms: None,
                    clients_waiting: None,
                    max_wait_ms: None,
                    servers_active: None,
                };
                // Best effort, like the database monitor: a failed ask is a gap.
                if let Some(primary) = &primary
                    && let Ok(senders) = catalog::wal_senders(primary).await
                {
                    sample.replica_lag_bytes = senders.iter().filter_map(|s| s.lag_bytes).max();
                    sample.replica_lag_ms = senders
                        .iter()
                        .filter_map(|s| match s.lag_bytes {
                            Some(b) if b <= 0 => Some(0.0),
                            Some(_) => s.replay_lag_secs.map(|secs| secs * 1000.0),
                            None => None,
                        })
                        .reduce(f64::max);
                }
                if let Some(admin) = &admin
                    && let Ok(pools) = catalog::pooler_pools(admin).await
                {
                    let mine = pools.iter().filter(|p| p.database == dbname);
                    let (waiting, wait_s, active) = mine.fold((0, 0.0f64, 0), |(w, m, a), p| {
                        (
                            w + p.clients_waiting,
                            m.max(p.max_wait_secs),
                            a + p.servers_active,
                        )
                    });
                    sample.clients_waiting = Some(waiting);
                    sample.max_wait_ms = Some(wait_s * 1000.0);
                    sample.servers_active = Some(active);
                }
                samples.push(sample);
            }
            samples
        });
        Ok(Some(RunningTopologyMonitor { cancel, handle }))
    }

    /// Stops sampling and returns every sample taken.
    pub(crate) async fn stop(self) -> Vec<TopologySample> {
        self.cancel.cancel();
        self.handle.await.unwrap_or_default()
    }
}
