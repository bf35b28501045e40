//! pgcalm-testkit: a real, throwaway PostgreSQL for tests.
//!
//! Owns: one embedded cluster per test binary (own temp dir, own loopback port,
//! durability off, password authentication like any pgcalm cluster), started on first
//! use and stopped when the process exits, even after a panicking test, and a fresh
//! database per test so tests run in parallel.
//!
//! A watchdog process also stops the server and deletes the directory if the test
//! binary is killed outright (`kill -9`, timeouts), so no cluster outlives its tests.
//!
//! The production topology, for tests that need it: [`TestCluster::with_replica`] is a
//! primary with a streaming replica, and [`TestPooler::start`] puts a PgBouncer in
//! transaction pooling mode in front of any test cluster (see [`topology`]).
//!
//! ```no_run
//! # async fn t() {
//! let db = pgcalm_testkit::TestDb::new().await;
//! let client = db.client().await;
//! client.batch_execute("CREATE TABLE t (id int)").await.unwrap();
//! # }
//! ```
#![cfg_attr(test, allow(unused_crate_dependencies))] // unit tests use some dev-dependencies

pub mod tls;
pub mod topology;

pub use topology::TestPooler;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};

use pgcalm_pg::{Cluster, ClusterOptions, StartOutcome, Target};
use tokio_postgres::Client;

/// The per-binary cluster.
pub struct TestCluster {
    cluster: Cluster,
    port: u16,
    dir: PathBuf,
}

static CLUSTER: OnceLock<TestCluster> = OnceLock::new();
/// Clusters started with [`TestCluster::start_with`], stopped at exit like the shared one.
static EXTRA: Mutex<Vec<&'static TestCluster>> = Mutex::new(Vec::new());
static NEXT_DB: AtomicU32 = AtomicU32::new(1);

impl TestCluster {
    /// The shared cluster of this test binary, started on first call.
    pub fn get() -> &'static TestCluster {
        CLUSTER.get_or_init(Self::start)
    }

    /// Another cluster for this test binary, with extra server settings (e.g. `ssl =
    /// on`): `prepare` gets the cluster's temp dir (deleted at exit) to write the files
    /// the settings name ([`write_server_file`]) and returns the settings.
    pub fn start_with(
        prepare: impl FnOnce(&Path) -> Vec<(String, String)>,
    ) -> &'static TestCluster {
        let tc: &'static TestCluster = Box::leak(Box::new(Self::launch(prepare)));
        EXTRA.lock().unwrap().push(tc);
        tc
    }

    fn start() -> TestCluster {
        Self::launch(|_| Vec::new())
    }

    fn launch(prepare: impl FnOnce(&Path) -> Vec<(String, String)>) -> TestCluster {
        let dir = tempfile::Builder::new()
            .prefix("pgcalm-test-")
            .tempdir()
            .expect("creating a temp dir for the test cluster")
            .keep();
        let cluster = Cluster::new(dir.join("cluster"));
        let options = ClusterOptions {
            settings: prepare(&dir),
            ..ClusterOptions::throwaway()
        };
        let outcome = cluster
            .start(None, &options)
            .unwrap_or_else(|e| panic!("starting the test cluster failed: {e}"));
        let StartOutcome::Started { port, pid, .. } = outcome else {
            panic!("fresh test cluster reported as already running");
        };
        spawn_watchdog(&dir, pid);
        // SAFETY: registering a plain extern "C" function with no captured state.
        unsafe { libc::atexit(stop_at_exit) };
        TestCluster { cluster, port, dir }
    }

    /// The cluster handle (for tests of stop/start behaviour).
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// Loopback port of the server.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The superuser's password (alphanumeric), for tests that write their own URLs.
    pub fn password(&self) -> String {
        self.cluster
            .password()
            .unwrap_or_else(|e| panic!("the test cluster's password: {e}"))
            .expect("test clusters are created with a password")
    }

    /// The temp dir holding the cluster.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A URL for `DATABASE_URL` naming `dbname` on this cluster, with the cluster's
    /// password in it: hand it to child processes through the environment, never as an
    /// argument.
    pub fn url(&self, dbname: &str) -> String {
        self.cluster
            .url(dbname)
            .unwrap_or_else(|e| panic!("the test cluster's URL: {e}"))
    }
}

extern "C" fn stop_at_exit() {
    topology::stop_poolers();
    let extra = EXTRA.lock().map(|e| e.clone()).unwrap_or_default();
    for tc in CLUSTER.get().into_iter().chain(extra) {
        let replica = tc.cluster.replica();
        let postmasters = [replica.running_pid(), tc.cluster.running_pid()];
        for pid in postmasters.into_iter().flatten() {
            // SIGQUIT = immediate shutdown: the data is thrown away anyway.
            // SAFETY: kill(2) on the postmaster we started.
            unsafe { libc::kill(pid as i32, libc::SIGQUIT) };
            for _ in 0..200 {
                if replica.running_pid().is_none() && tc.cluster.running_pid().is_none() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
        let _ = std::fs::remove_dir_all(&tc.dir);
    }
}

/// Writes a file the test server reads (a certificate, a private key): mode 0600, owned
/// by the server's OS user (`postgres` when the tests run as root), as PostgreSQL
/// demands of a key file.
pub fn write_server_file(path: &Path, contents: &[u8]) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
    file.write_all(contents)
        .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    if pgcalm_pg::cluster::running_as_root() {
        let chown = Command::new("chown").arg("postgres").arg(path).status();
        assert!(
            chown.is_ok_and(|s| s.success()),
            "chown postgres {}",
            path.display()
        );
    }
}

/// A shell loop that outlives a killed test binary just long enough to clean up: the
/// postmaster, and the replica and poolers started later, found by their pid files.
fn spawn_watchdog(dir: &Path, postmaster: u32) {
    let parent = std::process::id();
    let dir = dir.display();
    let script = format!(
        "while kill -0 {parent} 2>/dev/null; do sleep 0.5; done; \
         for f in '{dir}'/*/pgbouncer.pid; do [ -f \"$f\" ] && kill -TERM $(cat \"$f\") 2>/dev/null; done; \
         f='{dir}/cluster/replica/data/postmaster.pid'; [ -f \"$f\" ] && kill -QUIT $(head -1 \"$f\") 2>/dev/null; \
         kill -QUIT {postmaster} 2>/dev/null; sleep 1; rm -rf '{dir}'"
    );
    // Its own process group: killing the test's group (a harness timeout, `kill -- -PGID`)
    // must not take the watchdog with it.
    let _ = Command::new("sh")
        .process_group(0)
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
}

/// A database name no other test of this binary uses.
fn next_db_name() -> String {
    format!(
        "t{}_{}",
        std::process::id(),
        NEXT_DB.fetch_add(1, Ordering::Relaxed)
    )
}

/// A fresh, empty database on the per-binary cluster.
pub struct TestDb {
    target: Target,
    url: String,
}

impl TestDb {
    /// Creates a new database named after this process and a counter.
    pub async fn new() -> TestDb {
        Self::on(TestCluster::get()).await
    }

    /// A new database on another test cluster (e.g. [`TestCluster::with_replica`]).
    pub async fn on(tc: &TestCluster) -> TestDb {
        let name = next_db_name();
        let target = tc
            .cluster
            .target(&name)
            .unwrap_or_else(|e| panic!("the test cluster's target: {e}"));
        target
            .ensure_database()
            .await
            .unwrap_or_else(|e| panic!("creating test database {name}: {e}"));
        TestDb {
            url: tc.url(&name),
            target,
        }
    }

    /// Connection target of this database.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The database name.
    pub fn name(&self) -> &str {
        self.target.dbname()
    }

    /// A URL for `DATABASE_URL` ([`TestCluster::url`] of this database).
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// A new connection that has run `sql` (e.g. `BEGIN; LOCK TABLE t IN SHARE MODE;`),
    /// and its backend pid: the other session of lock and blocking tests.
    pub async fn session(&self, sql: &str) -> (Client, i32) {
        let client = self.client().await;
        client
            .batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("session setup {sql:?}: {e}"));
        let pid = client
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .unwrap()
            .get(0);
        (client, pid)
    }

    /// The single integer a query returns (a count, an id), on a new connection.
    pub async fn query_i64(&self, sql: &str) -> i64 {
        self.client()
            .await
            .query_one(sql, &[])
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .get(0)
    }

    /// Runs SQL (one or more statements) on a new connection: test set-up.
    pub async fn execute(&self, sql: &str) {
        self.client()
            .await
            .batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// A new connection.
    pub async fn client(&self) -> Client {
        self.target
            .connect()
            .await
            .unwrap_or_else(|e| panic!("connecting to {}: {e}", self.name()))
    }
}
