//! The production topology in tests: a primary with a streaming replica
//! ([`TestCluster::with_replica`]) and PgBouncer in transaction pooling mode in front of
//! a test cluster ([`TestPooler::start`]), both made by pgcalm-pg's own code
//! (`Cluster::start_replica`, `Pooler::start`) and stopped when the test binary exits.
//!
//! ```no_run
//! # async fn t() {
//! use pgcalm_testkit::{TestCluster, TestDb, TestPooler};
//! let primary = TestCluster::with_replica();
//! let db = TestDb::on(primary).await;
//! let replica = primary.replica_target(db.name()).connect().await.unwrap();
//! let pooler = TestPooler::start(primary, 2); // two server connections
//! let through = pooler.target(db.name()).connect().await.unwrap();
//! through.simple_query("SELECT 1").await.unwrap();
//! # }
//! ```

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};

use pgcalm_pg::catalog::PoolStats;
use pgcalm_pg::{Pooler, PoolerOptions, PoolerStart, ReplicaOptions, Target};

use crate::TestCluster;

static REPLICATED: OnceLock<&'static TestCluster> = OnceLock::new();
/// Directories of the poolers started, stopped at exit.
static POOLERS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
static NEXT_POOLER: AtomicU32 = AtomicU32::new(1);

impl TestCluster {
    /// A primary with a streaming replica (`Cluster::start_replica`), started on first
    /// call and shared by the tests of this binary (give each its own database with
    /// [`crate::TestDb::on`]). It is a cluster of its own, not [`TestCluster::get`].
    pub fn with_replica() -> &'static TestCluster {
        REPLICATED.get_or_init(|| {
            let tc = TestCluster::start_with(|_| Vec::new());
            let cluster = tc.cluster().clone();
            run(async move {
                cluster
                    .start_replica(&ReplicaOptions::default())
                    .await
                    .unwrap_or_else(|e| panic!("starting the test replica failed: {e}"))
            });
            tc
        })
    }

    /// The database `dbname` on this cluster's replica (read only).
    pub fn replica_target(&self, dbname: &str) -> Target {
        self.cluster()
            .replica()
            .target(dbname)
            .unwrap_or_else(|e| panic!("the test replica's target: {e}"))
    }

    /// A URL of `dbname` on the replica, password included (environment only).
    pub fn replica_url(&self, dbname: &str) -> String {
        self.cluster()
            .replica()
            .url(dbname)
            .unwrap_or_else(|e| panic!("the test replica's URL: {e}"))
    }
}

/// PgBouncer in front of a test cluster, in its own directory under the cluster's temp
/// dir, transaction pooling with `pool_size` server connections per database and user.
/// Stopped when dropped (and at exit).
pub struct TestPooler {
    pooler: Pooler,
    cluster: &'static TestCluster,
    port: u16,
    pid: u32,
}

impl TestPooler {
    /// Starts a new PgBouncer in front of `cluster`. Several may run at once.
    pub fn start(cluster: &'static TestCluster, pool_size: u32) -> TestPooler {
        let n = NEXT_POOLER.fetch_add(1, Ordering::Relaxed);
        let pooler = Pooler::new(cluster.dir().join(format!("pooler-{n}")));
        POOLERS.lock().unwrap().push(pooler.dir().to_path_buf());
        let (primary, started) = (cluster.cluster().clone(), pooler.clone());
        let outcome = run(async move {
            started
                .start(&primary, &PoolerOptions { pool_size })
                .await
                .unwrap_or_else(|e| panic!("starting the test pooler failed: {e}"))
        });
        let PoolerStart::Started { pid, port } = outcome else {
            panic!("a new test pooler reported as already running");
        };
        TestPooler {
            pooler,
            cluster,
            port,
            pid,
        }
    }

    /// The pgcalm-pg handle (its directory, log, `status`).
    pub fn pooler(&self) -> &Pooler {
        &self.pooler
    }

    /// PgBouncer's pid.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Its loopback port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The database `dbname` through the pooler, with the cluster's password. Through
    /// transaction pooling, use the simple query protocol (`simple_query`,
    /// `batch_execute`): a prepared statement may land on another server connection.
    pub fn target(&self, dbname: &str) -> Target {
        self.pooler
            .target(self.cluster.cluster(), dbname)
            .unwrap_or_else(|e| panic!("the test pooler's target: {e}"))
    }

    /// A URL of `dbname` through the pooler, password included (environment only).
    pub fn url(&self, dbname: &str) -> String {
        self.pooler
            .url(self.cluster.cluster(), dbname)
            .unwrap_or_else(|e| panic!("the test pooler's URL: {e}"))
    }

    /// The admin console (`SHOW POOLS`, simple query protocol only).
    pub fn admin_target(&self) -> Target {
        self.pooler
            .admin_target(self.cluster.cluster())
            .unwrap_or_else(|e| panic!("the test pooler's admin target: {e}"))
    }

    /// Its pools now (`SHOW POOLS`).
    pub async fn pools(&self) -> Vec<PoolStats> {
        let admin = self
            .admin_target()
            .connect()
            .await
            .unwrap_or_else(|e| panic!("connecting to the test pooler's admin console: {e}"));
        pgcalm_pg::catalog::topology::pooler_pools(&admin)
            .await
            .unwrap_or_else(|e| panic!("SHOW POOLS: {e}"))
    }
}

impl Drop for TestPooler {
    fn drop(&mut self) {
        let _ = self.pooler.stop();
    }
}

/// Stops every pooler this binary started (at exit).
pub(crate) fn stop_poolers() {
    let dirs = POOLERS.lock().map(|d| d.clone()).unwrap_or_default();
    for dir in dirs {
        let _ = Pooler::new(dir).stop();
    }
}

/// Runs `fut` to completion on a runtime of its own, on a thread of its own, so that
/// sync and async tests alike can call it (a runtime cannot block inside another).
fn run<T: Send + 'static>(fut: impl Future<Output = T> + Send + 'static) -> T {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the test topology")
            .block_on(fut)
    })
    .join()
    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}
