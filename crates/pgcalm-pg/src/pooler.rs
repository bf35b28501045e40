//! PgBouncer in front of the embedded cluster (`pgcalm up --pooler`), in transaction
//! pooling mode, as production runs it.
//!
//! Everything lives in one directory ([`POOLER_DIR`] under the cluster root, or any
//! directory given to [`Pooler::new`]): the generated `pgbouncer.ini`, the auth file,
//! the log and the pid file, and a [`MARKER_FILE`] that lets pgcalm delete it. PgBouncer
//! listens on 127.0.0.1 only (no Unix socket), on a free port chosen once and kept in
//! its ini. Clients log in with SCRAM as the primary's superuser: the auth file holds
//! that role's SCRAM verifier, exactly as the server stores it, which lets PgBouncer log
//! in to the server for a client that proved the password (no password on disk beyond
//! the cluster's own passfile). The same user is PgBouncer's admin and stats user, so
//! pgcalm reads `SHOW POOLS` / `SHOW CONFIG` on the admin database `pgbouncer`.
//!
//! PgBouncer refuses to run as root: as root it runs as `postgres`, like the server.

use std::fs;
use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::binaries::locate_pgbouncer;
use crate::catalog::topology::{self as catalog, PoolStats};
use crate::cluster::{
    self, Cluster, Ownership, SUPERUSER, create_private, give_to_server_account, output_text,
    run_pg, running_as_root,
};
use crate::error::PgError;
use crate::target::Target;

/// The pooler's directory, inside the cluster root.
pub const POOLER_DIR: &str = "pooler";

/// The directory of `pgcalm lab --pooler`'s own PgBouncer, inside the cluster root: the
/// lab never changes the pool of the user's `up --pooler`. `down` stops it too, should
/// a killed lab have left it running.
pub const LAB_POOLER_DIR: &str = "lab-pooler";

/// The file that marks a pooler directory as pgcalm's (deleted only when it holds it).
pub const MARKER_FILE: &str = "PGCALM_POOLER";

/// The admin console's database name (PgBouncer's own).
pub const ADMIN_DATABASE: &str = "pgbouncer";

/// PgBouncer's `default_pool_size` unless told otherwise: server connections per
/// database and user (PgBouncer's own default, well below the server's 200
/// `max_connections`).
pub const DEFAULT_POOL_SIZE: u32 = 20;

/// Client connections PgBouncer accepts (`max_client_conn`): many more clients than
/// server connections is what a pooler is for.
const MAX_CLIENT_CONN: u32 = 1000;

/// How [`Pooler::start`] configures PgBouncer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolerOptions {
    /// `default_pool_size`: server connections per database and user.
    pub pool_size: u32,
}

impl Default for PoolerOptions {
    fn default() -> Self {
        Self {
            pool_size: DEFAULT_POOL_SIZE,
        }
    }
}

/// What [`Pooler::start`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PoolerStart {
    /// PgBouncer was already running; `reloaded` when its settings changed and it
    /// reread them.
    AlreadyRunning {
        /// Its pid.
        pid: u32,
        /// Its port.
        port: u16,
        /// Whether the configuration changed and was reloaded.
        reloaded: bool,
    },
    /// PgBouncer was started.
    Started {
        /// Its pid.
        pid: u32,
        /// Its port.
        port: u16,
    },
}

/// The pooler as `pgcalm status` shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PoolerStatus {
    /// Its directory.
    pub dir: PathBuf,
    /// Its port.
    pub port: Option<u16>,
    /// Its pid, when it runs.
    pub pid: Option<u32>,
    /// `SHOW VERSION` (`PgBouncer 1.18.0`).
    pub version: Option<String>,
    /// `pool_mode` (`transaction`).
    pub pool_mode: Option<String>,
    /// `default_pool_size`.
    pub pool_size: Option<u32>,
    /// Its pools (`SHOW POOLS`, the admin console's own left out).
    pub pools: Vec<PoolStats>,
    /// Why the figures are missing, when they are.
    pub problem: Option<String>,
}

impl PoolerStatus {
    /// A figure summed over the pools.
    pub fn total(&self, figure: impl Fn(&PoolStats) -> i64) -> i64 {
        self.pools.iter().map(figure).sum()
    }
}

/// Handle on a PgBouncer directory. Creating it does no I/O.
#[derive(Debug, Clone)]
pub struct Pooler {
    dir: PathBuf,
}

impl Pooler {
    /// The pooler of an embedded cluster ([`POOLER_DIR`] under its root).
    pub fn of(cluster: &Cluster) -> Self {
        Self::new(cluster.root().join(POOLER_DIR))
    }

    /// `pgcalm lab --pooler`'s own pooler ([`LAB_POOLER_DIR`] under the cluster root).
    pub fn lab_of(cluster: &Cluster) -> Self {
        Self::new(cluster.root().join(LAB_POOLER_DIR))
    }

    /// A pooler in `dir` (tests run several, each in its own directory).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        let dir = std::path::absolute(&dir).unwrap_or(dir);
        Self { dir }
    }

    /// Its directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The generated `pgbouncer.ini`.
    pub fn ini_path(&self) -> PathBuf {
        self.dir.join("pgbouncer.ini")
    }

    /// PgBouncer's log.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("pgbouncer.log")
    }

    /// The auth file (the superuser's SCRAM verifier, mode 0600).
    pub fn auth_file_path(&self) -> PathBuf {
        self.dir.join("userlist.txt")
    }

    fn pid_path(&self) -> PathBuf {
        self.dir.join("pgbouncer.pid")
    }

    /// Whether a pooler was set up here.
    pub fn exists(&self) -> bool {
        self.dir.join(MARKER_FILE).is_file()
    }

    /// Its port, as its ini says.
    pub fn port(&self) -> Option<u16> {
        self.ini_setting("listen_port")?.parse().ok()
    }

    /// `default_pool_size`, as its ini says.
    pub fn pool_size(&self) -> Option<u32> {
        self.ini_setting("default_pool_size")?.parse().ok()
    }

    fn ini_setting(&self, key: &str) -> Option<String> {
        let text = fs::read_to_string(self.ini_path()).ok()?;
        text.lines().find_map(|line| {
            let (k, v) = line.split_once('=')?;
            (k.trim() == key).then(|| v.trim().to_string())
        })
    }

    /// PgBouncer's pid, when it runs from this directory's ini.
    pub fn running_pid(&self) -> Option<u32> {
        let text = fs::read_to_string(self.pid_path()).ok()?;
        let pid: u32 = text.trim().parse().ok()?;
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let ini = self.ini_path();
        let ours = cmdline
            .split(|b| *b == 0)
            .any(|arg| Path::new(std::ffi::OsStr::from_bytes(arg)) == ini);
        ours.then_some(pid)
    }

    /// The database `dbname` through the pooler, as the primary's superuser with its
    /// password.
    pub fn target(&self, primary: &Cluster, dbname: &str) -> Result<Target, PgError> {
        primary.target_on(self.port_or_fail()?, dbname)
    }

    /// The admin console (`SHOW POOLS`...): speaks the simple query protocol only.
    pub fn admin_target(&self, primary: &Cluster) -> Result<Target, PgError> {
        Ok(self
            .target(primary, ADMIN_DATABASE)?
            .with_application_name("pgcalm"))
    }

    /// The connection URL of `dbname` through the pooler, with the password in it (see
    /// [`Cluster::url`]).
    pub fn url(&self, primary: &Cluster, dbname: &str) -> Result<String, PgError> {
        primary.url_on(self.port_or_fail()?, dbname)
    }

    fn port_or_fail(&self) -> Result<u16, PgError> {
        self.port().ok_or_else(|| {
            PgError::Unusable(format!(
                "there is no pooler in {}\n  fix: run `pgcalm up --pooler`",
                self.dir.display()
            ))
        })
    }

    /// Starts PgBouncer in front of `primary` (which must run), writing its
    /// configuration first; a running one rereads it when `opts` changed it.
    ///
    /// Errors: [`PgError::PoolerNotFound`] (which package installs it),
    /// [`PgError::ForeignPartDir`] when the directory is not pgcalm's,
    /// [`PgError::PartPortTaken`], [`PgError::Command`] with PgBouncer's log when it does
    /// not start.
    pub async fn start(
        &self,
        primary: &Cluster,
        opts: &PoolerOptions,
    ) -> Result<PoolerStart, PgError> {
        let binary = locate_pgbouncer()?;
        let primary_port = match (primary.running_pid(), primary.port()) {
            (Some(_), Some(port)) => port,
            _ => {
                return Err(PgError::Unusable(format!(
                    "the primary in {} is not running, so PgBouncer has nothing to pool\n  \
                     fix: start it with `pgcalm up`",
                    primary.root().display()
                )));
            }
        };
        self.claim()?;
        let verifier = {
            let admin = primary
                .target("postgres")?
                .with_application_name("pgcalm up --pooler")
                .connect()
                .await?;
            catalog::role_verifier(&admin, SUPERUSER).await?
        };
        let verifier = verifier
            .filter(|v| v.starts_with("SCRAM-SHA-256$"))
            .ok_or_else(|| {
                PgError::Unusable(format!(
                    "the superuser {SUPERUSER} of {} has no SCRAM password, which PgBouncer's \
                 scram-sha-256 authentication needs\n  fix: run `pgcalm up` once (it secures \
                 a cluster an older pgcalm created), then `pgcalm up --pooler`",
                    primary.root().display()
                ))
            })?;
        self.write_auth_file(&verifier)?;

        if let Some(pid) = self.running_pid() {
            let port = self.port().unwrap_or_default();
            let ini = self.ini_text(port, primary_port, opts);
            let reloaded = fs::read_to_string(self.ini_path()).ok().as_deref() != Some(&ini);
            // A new verifier or settings: SIGHUP rereads both.
            self.write_ini(&ini)?;
            // SAFETY: kill(2) on the PgBouncer this directory's pid file names.
            unsafe { libc::kill(pid as i32, libc::SIGHUP) };
            return Ok(PoolerStart::AlreadyRunning {
                pid,
                port,
                reloaded,
            });
        }
        let port = match self.port() {
            Some(port) if cluster::port_is_free(port) => port,
            Some(port) => {
                return Err(PgError::PartPortTaken {
                    part: "pooler",
                    port,
                    remembered_in: self.ini_path(),
                });
            }
            None => cluster::free_loopback_port()?,
        };
        self.write_ini(&self.ini_text(port, primary_port, opts))?;
        let _ = fs::remove_file(self.pid_path());
        let out = run_pg(
            running_as_root(),
            Command::new(&binary).arg("-d").arg(self.ini_path()),
        )?;
        if !out.status.success() {
            return Err(self.did_not_start(
                format!("{} -d ({})", binary.display(), out.status),
                output_text(&out),
            ));
        }
        let pid = self.wait_until_listening(port)?;
        Ok(PoolerStart::Started { pid, port })
    }

    /// Makes the directory pgcalm's pooler directory (or checks that it is).
    fn claim(&self) -> Result<(), PgError> {
        match cluster::marked_dir_ownership(&self.dir, MARKER_FILE) {
            Ownership::Marked => return Ok(()),
            Ownership::Foreign(found) => return Err(self.foreign("use", found)),
            // (An older pgcalm's layout is a cluster's only.)
            Ownership::Vacant | Ownership::OlderPgcalm => {}
        }
        fs::create_dir_all(&self.dir).map_err(PgError::io("creating", &self.dir))?;
        let marker = self.dir.join(MARKER_FILE);
        let text = format!(
            "This directory is a PgBouncer set up by pgcalm {} (`pgcalm up --pooler`).\n\
             `pgcalm up --no-pooler` and `pgcalm down --volumes` delete it (pgcalm deletes \
             only directories that hold this file).\n",
            env!("CARGO_PKG_VERSION")
        );
        fs::write(&marker, text).map_err(PgError::io("writing", &marker))?;
        // PgBouncer (as the servers' account) writes its log and pid file here.
        give_to_server_account(&self.dir)
    }

    fn foreign(&self, action: &'static str, found: String) -> PgError {
        PgError::ForeignPartDir {
            action,
            part: "pooler",
            path: self.dir.clone(),
            marker: MARKER_FILE,
            found,
        }
    }

    /// The auth file: `"user" "verifier"`, 0600 from its first byte, readable by the
    /// account PgBouncer runs as.
    fn write_auth_file(&self, verifier: &str) -> Result<(), PgError> {
        let path = self.auth_file_path();
        let tmp = self.dir.join(".userlist.txt.new");
        let mut file = create_private(&tmp)?;
        file.write_all(format!("\"{SUPERUSER}\" \"{verifier}\"\n").as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(PgError::io("writing", &tmp))?;
        give_to_server_account(&tmp)?;
        fs::rename(&tmp, &path).map_err(PgError::io("writing", &path))
    }

    fn write_ini(&self, text: &str) -> Result<(), PgError> {
        let path = self.ini_path();
        fs::write(&path, text).map_err(PgError::io("writing", &path))
    }

    /// `pgbouncer.ini`: every database of the primary, transaction pooling, SCRAM from
    /// the auth file, loopback only.
    fn ini_text(&self, port: u16, primary_port: u16, opts: &PoolerOptions) -> String {
        let path = |p: PathBuf| p.display().to_string();
        format!(
            "; Written by pgcalm (`pgcalm up --pooler`); rewritten on every `pgcalm up`.\n\
             [databases]\n\
             * = host=127.0.0.1 port={primary_port}\n\
             \n\
             [pgbouncer]\n\
             listen_addr = 127.0.0.1\n\
             listen_port = {port}\n\
             unix_socket_dir =\n\
             auth_type = scram-sha-256\n\
             auth_file = {auth}\n\
             admin_users = {SUPERUSER}\n\
             stats_users = {SUPERUSER}\n\
             pool_mode = transaction\n\
             default_pool_size = {pool_size}\n\
             max_client_conn = {MAX_CLIENT_CONN}\n\
             ignore_startup_parameters = extra_float_digits\n\
             logfile = {log}\n\
             pidfile = {pid}\n",
            auth = path(self.auth_file_path()),
            pool_size = opts.pool_size,
            log = path(self.log_path()),
            pid = path(self.pid_path()),
        )
    }

    /// Waits for the pid file and for the port to accept connections.
    fn wait_until_listening(&self, port: u16) -> Result<u32, PgError> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
        loop {
            if let Some(pid) = self.running_pid()
                && TcpStream::connect_timeout(&addr.into(), Duration::from_millis(200)).is_ok()
            {
                return Ok(pid);
            }
            if Instant::now() > deadline {
                return Err(self.did_not_start(
                    format!("waiting for PgBouncer on 127.0.0.1:{port}"),
                    "it did not listen within 10 s".into(),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn did_not_start(&self, step: String, output: String) -> PgError {
        let log = self.log_path();
        PgError::Command {
            step,
            status: "PgBouncer did not start".into(),
            output: format!(
                "{output}\n--- last lines of {} ---\n{}",
                log.display(),
                cluster::tail(&log, 15)
            ),
            hint: String::new(),
        }
    }

    /// Stops PgBouncer (SIGTERM: it closes its connections at once); returns its pid when
    /// it was running.
    pub fn stop(&self) -> Result<Option<u32>, PgError> {
        let Some(pid) = self.running_pid() else {
            return Ok(None);
        };
        // SAFETY: kill(2) on the PgBouncer this directory's pid file names.
        unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while process_alive(pid) {
            if Instant::now() > deadline {
                // SAFETY: as above; it ignored SIGTERM for 10 s.
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = fs::remove_file(self.pid_path());
        Ok(Some(pid))
    }

    /// Stops PgBouncer and deletes its directory (only when it holds [`MARKER_FILE`]);
    /// returns the path and its size, or None when there was none.
    pub fn delete(&self) -> Result<Option<(PathBuf, u64)>, PgError> {
        match cluster::marked_dir_ownership(&self.dir, MARKER_FILE) {
            Ownership::Marked => {}
            Ownership::Foreign(found) => return Err(self.foreign("delete", found)),
            Ownership::Vacant | Ownership::OlderPgcalm => {
                let _ = fs::remove_dir(&self.dir);
                return Ok(None);
            }
        }
        self.stop()?;
        let size = cluster::dir_size(&self.dir);
        fs::remove_dir_all(&self.dir).map_err(PgError::io("deleting", &self.dir))?;
        Ok(Some((self.dir.clone(), size)))
    }

    /// What `pgcalm status` shows: port, pid, and from the admin console the version,
    /// pool mode, pool size and the pools' client and server counts.
    pub async fn status(&self, primary: &Cluster) -> PoolerStatus {
        let mut status = PoolerStatus {
            dir: self.dir.clone(),
            port: self.port(),
            pid: self.running_pid(),
            version: None,
            pool_mode: None,
            pool_size: None,
            pools: Vec::new(),
            problem: None,
        };
        if status.pid.is_none() {
            status.problem = Some("PgBouncer is not running; `pgcalm up` starts it".into());
            return status;
        }
        let asked = async {
            let admin = self.admin_target(primary)?.connect().await?;
            let version = catalog::pooler_version(&admin).await?;
            let mode = catalog::pooler_setting(&admin, "pool_mode").await?;
            let size = catalog::pooler_setting(&admin, "default_pool_size").await?;
            let pools = catalog::pooler_pools(&admin).await?;
            Ok::<_, PgError>((version, mode, size, pools))
        };
        match asked.await {
            Ok((version, mode, size, pools)) => {
                status.version = Some(version);
                status.pool_mode = mode;
                status.pool_size = size.and_then(|s| s.parse().ok());
                status.pools = pools;
            }
            Err(e) => status.problem = Some(e.to_string()),
        }
        status
    }
}

/// Whether a process exists (a zombie counts as gone).
fn process_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name in parentheses.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}
