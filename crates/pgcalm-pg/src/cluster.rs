//! The embedded PostgreSQL cluster: pgcalm's own server under a directory (`.pgcalm/`
//! by default), created with `initdb` and run with `pg_ctl` on a loopback port that is
//! chosen once and remembered.
//!
//! As root the server runs as the `postgres` user through `runuser`, because `initdb`
//! refuses root. Recovery from a `kill -9` (stale `postmaster.pid`, orphaned backends
//! still attached to shared memory) happens on the next [`Cluster::start`].
//!
//! Trust nothing, lose nothing:
//! - The superuser `postgres` has a random password set at creation, kept in
//!   [`PASSWORD_FILE`] (a libpq passfile, mode 0600, owned by the invoking user, not by
//!   the server's account); `pg_hba.conf` allows only `scram-sha-256` over loopback TCP
//!   (no trust, no Unix socket, no replication). The password never appears on a
//!   command line: initdb reads its SCRAM verifier from a 0600 file deleted afterwards.
//!   A cluster an older pgcalm created with `trust` is converted by
//!   [`Cluster::replace_trust_auth`].
//! - A directory is pgcalm's when it holds [`MARKER_FILE`] (written at creation) or is
//!   unmistakably an older pgcalm's cluster (see [`Ownership::OlderPgcalm`]);
//!   [`Cluster::start`] refuses any other non-empty directory and [`Cluster::delete`]
//!   any directory that is not pgcalm's.
//! - [`Cluster::start`] and [`Cluster::delete`] hold an exclusive lock ([`LOCK_FILE`]),
//!   so a second `pgcalm up` gets [`PgError::Busy`] instead of racing initdb.

use std::fs;
use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use rand::RngExt as _;

use crate::binaries::PgBinaries;
use crate::error::PgError;
use crate::target::Target;

/// Name of the file (inside the cluster root) where the chosen port is remembered, and
/// (`key=value` lines) what `pgcalm up` runs beside the server ([`crate::Parts`]).
pub const STATE_FILE: &str = "cluster.state";

/// Name of the file (inside the cluster root) that marks the directory as a cluster
/// pgcalm created: `pgcalm down --volumes` deletes only directories that hold it.
pub const MARKER_FILE: &str = "PGCALM_CLUSTER";

/// Name of the superuser's password file (inside the cluster root): a libpq passfile
/// (`PGPASSFILE`), mode 0600, owned by the user who ran `pgcalm up`.
pub const PASSWORD_FILE: &str = "pgpass";

/// Name of the lock file (inside the cluster root) held while a cluster is created,
/// started or deleted; it holds the pid of the holder.
pub const LOCK_FILE: &str = "up.lock";

/// Entries pgcalm's other parts keep in a project's `.pgcalm/` beside the cluster (the
/// background demo app's `serve/`): they neither make the directory foreign nor count as
/// a cluster, and go with it when `pgcalm down --volumes` deletes it.
pub const PROJECT_ENTRIES: [&str; 1] = ["serve"];

/// The embedded cluster's superuser (the only role pgcalm creates).
pub const SUPERUSER: &str = "postgres";

/// `pg_hba.conf` of the embedded cluster: password over loopback TCP, nothing else.
const PG_HBA: &str = "\
# pg_hba.conf of pgcalm's embedded cluster (written by pgcalm).
# Password authentication (scram-sha-256) over loopback TCP only: no trust, no
# replication, and no Unix socket (the server runs with unix_socket_directories='').
# The password is in the cluster directory's pgpass file; `pgcalm url` prints the URL.
# TYPE  DATABASE  USER  ADDRESS       METHOD
host    all       all   127.0.0.1/32  scram-sha-256
host    all       all   ::1/128       scram-sha-256
";

/// Server settings written into `postgresql.conf` when a cluster is created.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// `fsync`, `synchronous_commit` and `full_page_writes`: off only for throwaway
    /// test clusters, where durability buys nothing.
    pub durable: bool,
    /// Extra `name = value` lines for `postgresql.conf`.
    pub settings: Vec<(String, String)>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self {
            durable: true,
            settings: Vec::new(),
        }
    }
}

impl ClusterOptions {
    /// Settings for a throwaway cluster (tests, trace): durability off.
    pub fn throwaway() -> Self {
        Self {
            durable: false,
            settings: Vec::new(),
        }
    }
}

/// What [`Cluster::start`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartOutcome {
    /// The server was already up; nothing was done.
    AlreadyRunning {
        /// Postmaster pid.
        pid: u32,
        /// Port it listens on.
        port: u16,
    },
    /// The server was started.
    Started {
        /// Postmaster pid.
        pid: u32,
        /// Port it listens on.
        port: u16,
        /// Whether `initdb` ran first (a new cluster).
        created: bool,
        /// Leftovers of a crashed server that were cleaned up before starting.
        recovered: Option<CrashRecovery>,
    },
}

/// Leftovers of a server that was killed without a clean shutdown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrashRecovery {
    /// The pid recorded in the stale `postmaster.pid`.
    pub stale_pid: Option<u32>,
    /// Orphaned backend processes that still held the data directory and were killed.
    pub orphans_killed: Vec<u32>,
}

/// A point-in-time view of the cluster for `pgcalm status`.
#[derive(Debug, Clone)]
pub struct ClusterStatus {
    /// Cluster root (e.g. `.pgcalm`).
    pub root: PathBuf,
    /// Whether `initdb` has run.
    pub initialized: bool,
    /// Postmaster pid when running.
    pub pid: Option<u32>,
    /// Remembered port.
    pub port: Option<u16>,
    /// Major version of the data directory.
    pub data_major: Option<u32>,
}

/// Whose a cluster directory is, as far as using or deleting it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ownership {
    /// Missing or empty: [`Cluster::start`] may create a cluster there.
    Vacant,
    /// It holds [`MARKER_FILE`]: pgcalm created it.
    Marked,
    /// A cluster an older pgcalm created, before the marker existed: `data/` with
    /// `PG_VERSION`, a `cluster.state` with the remembered port, and nothing else but
    /// `postgres.log`. [`Cluster::start`] adopts it (writes the marker).
    OlderPgcalm,
    /// Anything else: not pgcalm's to use or delete. Says what it holds.
    Foreign(String),
}

/// Handle on an embedded cluster directory. Creating the handle does no I/O.
#[derive(Debug, Clone)]
pub struct Cluster {
    root: PathBuf,
}

impl Cluster {
    /// A cluster rooted at `root` (created on first [`Cluster::start`]).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        // Absolute paths: pg_ctl runs with a different working directory under runuser.
        let root = std::path::absolute(&root).unwrap_or(root);
        Self { root }
    }

    /// The cluster root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The PostgreSQL data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    /// The server log written by `pg_ctl -l`.
    pub fn log_path(&self) -> PathBuf {
        self.root.join("postgres.log")
    }

    fn state_path(&self) -> PathBuf {
        self.root.join(STATE_FILE)
    }

    /// The superuser's password file ([`PASSWORD_FILE`]).
    pub fn password_path(&self) -> PathBuf {
        self.root.join(PASSWORD_FILE)
    }

    /// The superuser's password, or None for a cluster without one (an older pgcalm's,
    /// still on `trust` until [`Cluster::replace_trust_auth`]). Fails when the file
    /// exists but cannot be read, e.g. by another OS user than the one who ran `up`.
    pub fn password(&self) -> Result<Option<String>, PgError> {
        let path = self.password_path();
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(cause) => return Err(PgError::PasswordFile { path, cause }),
        };
        // `host:port:database:user:password`; ours is alphanumeric, so nothing is escaped.
        Ok(text
            .lines()
            .filter_map(|line| line.splitn(5, ':').nth(4))
            .next()
            .map(str::to_string))
    }

    /// The database `dbname` on this cluster: its remembered port, the superuser and
    /// the password from [`PASSWORD_FILE`] (none for a `trust` cluster of an older
    /// pgcalm).
    pub fn target(&self, dbname: &str) -> Result<Target, PgError> {
        let port = self.port().ok_or_else(|| self.not_created())?;
        self.target_on(port, dbname)
    }

    /// [`Cluster::target`] on another port: a server that shares this cluster's roles
    /// and password (its replica, its pooler).
    pub(crate) fn target_on(&self, port: u16, dbname: &str) -> Result<Target, PgError> {
        let target = Target::embedded(port, dbname);
        Ok(match self.password()? {
            Some(password) => target.with_password(&password),
            None => target,
        })
    }

    /// The connection URL of `dbname` with the password in it, for scripts
    /// (`DATABASE_URL=$(pgcalm url)`): never print it unasked, never log it.
    pub fn url(&self, dbname: &str) -> Result<String, PgError> {
        let port = self.port().ok_or_else(|| self.not_created())?;
        self.url_on(port, dbname)
    }

    /// [`Cluster::url`] on another port (see [`Cluster::target_on`]).
    pub(crate) fn url_on(&self, port: u16, dbname: &str) -> Result<String, PgError> {
        let mut url = url::Url::parse(&format!("postgresql://{SUPERUSER}@127.0.0.1:{port}"))
            .expect("a literal URL parses");
        if let Some(password) = self.password()? {
            url.set_password(Some(&password))
                .expect("a URL with a host takes a password");
        }
        url.path_segments_mut()
            .expect("a URL with a host has a path")
            .push(dbname);
        Ok(url.to_string())
    }

    fn not_created(&self) -> PgError {
        PgError::Unusable(format!(
            "the embedded PostgreSQL in {} has not been created (no port in {})\n  \
             fix: run `pgcalm up`",
            self.root.display(),
            self.state_path().display()
        ))
    }

    /// Whose the cluster directory is: see [`Ownership`].
    pub fn ownership(&self) -> Ownership {
        let names: Vec<String> = match marked_dir_entries(&self.root, MARKER_FILE) {
            Ok(names) => names
                .into_iter()
                .filter(|n| !PROJECT_ENTRIES.contains(&n.as_str()))
                .collect(),
            Err(ownership) => return ownership,
        };
        if names.is_empty() {
            return Ownership::Vacant;
        }
        let older_layout = names
            .iter()
            .all(|n| ["data", STATE_FILE, "postgres.log"].contains(&n.as_str()))
            && self.is_initialized()
            && self.port().is_some();
        if older_layout {
            return Ownership::OlderPgcalm;
        }
        Ownership::Foreign(list_some(&names))
    }

    /// Writes [`MARKER_FILE`]: from now on `down --volumes` may delete the directory.
    fn write_marker(&self) -> Result<(), PgError> {
        let path = self.root.join(MARKER_FILE);
        let text = format!(
            "This directory is an embedded PostgreSQL cluster created by pgcalm {}.\n\
             `pgcalm down --volumes` deletes it (and deletes only directories that hold this file).\n\
             data/: the server's data directory; {PASSWORD_FILE}: the superuser's password \
             (mode 0600); {STATE_FILE}: the remembered port; postgres.log: the server log.\n",
            env!("CARGO_PKG_VERSION")
        );
        fs::write(&path, text).map_err(PgError::io("writing", &path))
    }

    /// Takes the cluster's exclusive lock ([`LOCK_FILE`]), or fails at once with the
    /// pid of the process that holds it.
    pub(crate) fn lock(&self) -> Result<DirLock, PgError> {
        let path = self.root.join(LOCK_FILE);
        let mut file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(PgError::io("opening", &path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(PgError::Busy {
                    root: self.root.clone(),
                    pid: lock_holder(&path),
                });
            }
            Err(fs::TryLockError::Error(e)) => return Err(PgError::io("locking", &path)(e)),
        }
        file.set_len(0)
            .and_then(|()| writeln!(file, "{}", std::process::id()))
            .map_err(PgError::io("writing", &path))?;
        Ok(DirLock(file))
    }

    /// Whether `initdb` has already run here.
    pub fn is_initialized(&self) -> bool {
        self.data_dir().join("PG_VERSION").is_file()
    }

    /// Major version recorded in the data directory, if there is one.
    pub fn data_major(&self) -> Option<u32> {
        let text = fs::read_to_string(self.data_dir().join("PG_VERSION")).ok()?;
        crate::binaries::parse_major(text.trim())
    }

    /// The remembered port, if one was chosen.
    pub fn port(&self) -> Option<u16> {
        self.state_value("port")?.parse().ok()
    }

    /// One `key=value` line of [`STATE_FILE`].
    pub(crate) fn state_value(&self, key: &str) -> Option<String> {
        let text = fs::read_to_string(self.state_path()).ok()?;
        text.lines().find_map(|line| {
            let (k, v) = line.split_once('=')?;
            (k.trim() == key).then(|| v.trim().to_string())
        })
    }

    /// Sets (or, with None, removes) one `key=value` line of [`STATE_FILE`], keeping the
    /// others; written to a new file renamed over the old one.
    pub(crate) fn set_state_value(&self, key: &str, value: Option<&str>) -> Result<(), PgError> {
        let path = self.state_path();
        let old = fs::read_to_string(&path).unwrap_or_default();
        let mut lines: Vec<String> = old
            .lines()
            .filter(|line| line.split_once('=').is_none_or(|(k, _)| k.trim() != key))
            .map(str::to_string)
            .collect();
        if let Some(value) = value {
            lines.push(format!("{key}={value}"));
        }
        let mut text = lines.join("\n");
        text.push('\n');
        if text == old {
            return Ok(());
        }
        let tmp = self.root.join(format!(".{STATE_FILE}.new"));
        fs::write(&tmp, text)
            .and_then(|()| fs::rename(&tmp, &path))
            .map_err(PgError::io("writing", &path))
    }

    /// Binaries that can run this cluster: those matching the data directory's major
    /// version when it exists, else the newest found.
    pub fn binaries(&self) -> Result<PgBinaries, PgError> {
        let found = PgBinaries::locate()?;
        let Some(data_major) = self.data_major() else {
            return Ok(found);
        };
        if data_major == found.major {
            return Ok(found);
        }
        // Another installed major may match the data directory.
        let matching = PathBuf::from(format!("/usr/lib/postgresql/{data_major}/bin"));
        if matching.join("pg_ctl").is_file()
            && std::env::var_os("PG_BIN").is_none()
            && let Ok(bins) = PgBinaries::from_dir(&matching)
        {
            return Ok(bins);
        }
        Err(PgError::VersionMismatch {
            data_dir: self.data_dir(),
            data_major,
            bin_major: found.major,
            bindir: found.bindir,
        })
    }

    /// Pid of the running postmaster of this data directory, if any.
    pub fn running_pid(&self) -> Option<u32> {
        let pid = self.recorded_pid()?;
        process_uses_dir(pid, &self.data_dir()).then_some(pid)
    }

    fn recorded_pid(&self) -> Option<u32> {
        let text = fs::read_to_string(self.data_dir().join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    /// Current state, for `pgcalm status`.
    pub fn status(&self) -> ClusterStatus {
        ClusterStatus {
            root: self.root.clone(),
            initialized: self.is_initialized(),
            pid: self.running_pid(),
            port: self.port(),
            data_major: self.data_major(),
        }
    }

    /// Creates the cluster if needed and starts it. `port` overrides (and replaces) the
    /// remembered port; otherwise the remembered one is used, or a free one is chosen.
    ///
    /// Refuses a non-empty directory that is not pgcalm's ([`PgError::ForeignDir`], nothing
    /// touched) and a cluster another process is creating or starting
    /// ([`PgError::Busy`]).
    pub fn start(&self, port: Option<u16>, opts: &ClusterOptions) -> Result<StartOutcome, PgError> {
        if let Some(pid) = self.running_pid() {
            return self.already_running(pid);
        }
        let bins = self.binaries()?;
        if let Ownership::Foreign(found) = self.ownership() {
            return Err(self.foreign(found));
        }
        fs::create_dir_all(&self.root).map_err(PgError::io("creating", &self.root))?;
        let _lock = self.lock()?;
        // Another `up` may have finished between the first look and the lock.
        if let Some(pid) = self.running_pid() {
            return self.already_running(pid);
        }
        match self.ownership() {
            Ownership::Marked => {}
            Ownership::Vacant | Ownership::OlderPgcalm => self.write_marker()?,
            Ownership::Foreign(found) => return Err(self.foreign(found)),
        }
        let as_postgres = running_as_root();
        if as_postgres {
            self.hand_to_postgres_user()?;
        }
        let created = !self.is_initialized();
        if created {
            // A data directory without PG_VERSION in a marked cluster is the leftover of
            // an initdb that was killed: pgcalm's own, and empty of data.
            let data = self.data_dir();
            if data.exists() {
                fs::remove_dir_all(&data).map_err(PgError::io("removing", &data))?;
            }
            self.initdb(&bins, opts)?;
        }
        let port = self.choose_port(port)?;
        if !port_is_free(port) {
            return Err(PgError::PortTaken {
                port,
                state_file: self.state_path(),
            });
        }
        let recovered = self.recover_from_crash();
        let server_opts =
            format!("-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''");
        let data = self.data_dir();
        let log = self.log_path();
        let out = run_pg(
            as_postgres,
            Command::new(bins.bin("pg_ctl"))
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(&log)
                .args(["-w", "-t", "120", "-o", &server_opts, "start"]),
        )?;
        if !out.status.success() {
            return Err(PgError::Command {
                step: "pg_ctl start".into(),
                status: out.status.to_string(),
                output: format!(
                    "{}\n--- last lines of {} ---\n{}",
                    output_text(&out),
                    log.display(),
                    tail(&log, 15)
                ),
                hint: String::new(),
            });
        }
        let pid = self.wait_for_pid()?;
        self.remember_port(port)?;
        Ok(StartOutcome::Started {
            pid,
            port,
            created,
            recovered,
        })
    }

    fn already_running(&self, pid: u32) -> Result<StartOutcome, PgError> {
        if self.ownership() == Ownership::OlderPgcalm {
            self.write_marker()?;
        }
        let port = self.port().unwrap_or_default();
        Ok(StartOutcome::AlreadyRunning { pid, port })
    }

    /// Why `start` refuses the directory: it holds `found`, which pgcalm did not create.
    fn foreign(&self, found: String) -> PgError {
        PgError::ForeignDir {
            path: self.root.clone(),
            found,
        }
    }

    /// Secures a running cluster that an older pgcalm created with `trust`
    /// authentication: while trust still lets pgcalm in, sets a new random password
    /// (as its SCRAM verifier), writes [`PASSWORD_FILE`], rewrites `pg_hba.conf` to
    /// password-only and reloads the server. Returns false when `pg_hba.conf` trusts
    /// no one (nothing to do). Holds the cluster's lock: two `up`s at once must not
    /// set two passwords.
    pub async fn replace_trust_auth(&self) -> Result<bool, PgError> {
        let hba_path = self.data_dir().join("pg_hba.conf");
        let trusts = || -> Result<bool, PgError> {
            let hba = fs::read_to_string(&hba_path).map_err(PgError::io("reading", &hba_path))?;
            Ok(trusts_anyone(&hba))
        };
        if !trusts()? {
            return Ok(false);
        }
        let _lock = self.lock()?;
        if !trusts()? {
            return Ok(false); // converted meanwhile
        }
        let port = self.port().ok_or_else(|| self.not_created())?;
        let password = new_password();
        let client = Target::embedded(port, "postgres")
            .with_application_name("pgcalm up")
            .connect()
            .await?;
        client
            .batch_execute(&format!(
                "ALTER ROLE {SUPERUSER} PASSWORD '{}'",
                scram_verifier(&password)
            ))
            .await
            .map_err(PgError::query("setting the superuser's password"))?;
        self.write_password_file(&password)?;
        fs::write(&hba_path, PG_HBA).map_err(PgError::io("writing", &hba_path))?;
        client
            .batch_execute("SELECT pg_reload_conf()")
            .await
            .map_err(PgError::query("reloading pg_hba.conf"))?;
        Ok(true)
    }

    /// Writes the password file, 0600 from its first byte (a new file renamed over the
    /// old one), owned by the invoking user.
    fn write_password_file(&self, password: &str) -> Result<(), PgError> {
        let path = self.password_path();
        let tmp = self.root.join(format!(".{PASSWORD_FILE}.new"));
        let mut file = create_private(&tmp)?;
        // libpq passfile lines: host:port:database:user:password.
        let lines =
            format!("127.0.0.1:*:*:{SUPERUSER}:{password}\nlocalhost:*:*:{SUPERUSER}:{password}\n");
        file.write_all(lines.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(PgError::io("writing", &tmp))?;
        fs::rename(&tmp, &path).map_err(PgError::io("writing", &path))
    }

    /// Stops the server with a fast shutdown. Returns false when it was not running.
    pub fn stop(&self) -> Result<bool, PgError> {
        if self.running_pid().is_none() {
            return Ok(false);
        }
        let bins = self.binaries()?;
        let out = run_pg(
            running_as_root(),
            Command::new(bins.bin("pg_ctl"))
                .arg("-D")
                .arg(self.data_dir())
                .args(["-m", "fast", "-w", "-t", "120", "stop"]),
        )?;
        if !out.status.success() && self.running_pid().is_some() {
            return Err(PgError::Command {
                step: "pg_ctl stop".into(),
                status: out.status.to_string(),
                output: output_text(&out),
                hint: String::new(),
            });
        }
        Ok(true)
    }

    /// Stops the server if it runs, then deletes the whole cluster root. Returns the
    /// deleted path and its size in bytes, or None when there was nothing to delete.
    /// Refuses ([`PgError::NotDeletable`], nothing touched) a directory that is not
    /// pgcalm's: without [`MARKER_FILE`] and not an older pgcalm's cluster.
    pub fn delete(&self) -> Result<Option<(PathBuf, u64)>, PgError> {
        if !self.root.exists() {
            return Ok(None);
        }
        let found = match self.ownership() {
            Ownership::Marked | Ownership::OlderPgcalm => None,
            Ownership::Vacant => Some("nothing".to_string()),
            Ownership::Foreign(found) => Some(found),
        };
        if let Some(found) = found {
            return Err(PgError::NotDeletable {
                path: self.root.clone(),
                found,
            });
        }
        let _lock = self.lock()?;
        // The replica and the pooler live under the root: stop them before it goes.
        crate::pooler::Pooler::of(self).stop()?;
        crate::pooler::Pooler::lab_of(self).stop()?;
        self.replica().stop()?;
        self.stop()?;
        let size = dir_size(&self.root);
        fs::remove_dir_all(&self.root).map_err(PgError::io("deleting", &self.root))?;
        Ok(Some((self.root.clone(), size)))
    }

    /// Runs initdb with a new random superuser password (written to the password file
    /// first), then writes `pg_hba.conf` and pgcalm's settings.
    fn initdb(&self, bins: &PgBinaries, opts: &ClusterOptions) -> Result<(), PgError> {
        let data = self.data_dir();
        let password = new_password();
        self.write_password_file(&password)?;
        let as_postgres = running_as_root();
        let pwfile = self.pwfile_for_initdb(&password, as_postgres)?;
        let out = run_pg(
            as_postgres,
            Command::new(bins.bin("initdb"))
                .arg("-D")
                .arg(&data)
                .arg(format!("--pwfile={}", pwfile.display()))
                .args([
                    "-U",
                    SUPERUSER,
                    "--auth=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--locale=C",
                    "--no-sync",
                ]),
        );
        let _ = fs::remove_file(&pwfile);
        let out = out?;
        if !out.status.success() {
            return Err(PgError::Command {
                step: "initdb".into(),
                status: out.status.to_string(),
                output: output_text(&out),
                hint: String::new(),
            });
        }
        let mut conf = String::from("\n# --- written by pgcalm ---\n");
        let mut push = |k: &str, v: &str| conf.push_str(&format!("{k} = {v}\n"));
        // A demo database of ~10M rows: room for bulk loads and index builds.
        push("shared_buffers", "'256MB'");
        push("maintenance_work_mem", "'256MB'");
        push("max_wal_size", "'4GB'");
        push("max_connections", "200");
        // Lock waits are what pgcalm is about: make them visible in `pgcalm logs`.
        push("log_lock_waits", "on");
        push("log_line_prefix", "'%m [%p] %q%u@%d '");
        // Passwords set later (ALTER ROLE) are stored as SCRAM verifiers too.
        push("password_encryption", "'scram-sha-256'");
        if !opts.durable {
            push("fsync", "off");
            push("synchronous_commit", "off");
            push("full_page_writes", "off");
        }
        for (k, v) in &opts.settings {
            push(k, v);
        }
        let conf_path = data.join("postgresql.conf");
        let mut text =
            fs::read_to_string(&conf_path).map_err(PgError::io("reading", &conf_path))?;
        text.push_str(&conf);
        fs::write(&conf_path, text).map_err(PgError::io("writing", &conf_path))?;
        let hba_path = data.join("pg_hba.conf");
        fs::write(&hba_path, PG_HBA).map_err(PgError::io("writing", &hba_path))?;
        Ok(())
    }

    /// initdb's `--pwfile`: the SCRAM verifier of `password` (stored as is, so the
    /// password itself never reaches the server), in a new 0600 file that only the
    /// server's account can read. The caller deletes it after initdb.
    fn pwfile_for_initdb(&self, password: &str, as_postgres: bool) -> Result<PathBuf, PgError> {
        let path = self.root.join("initdb.pwfile");
        let mut file = create_private(&path)?;
        let written =
            writeln!(file, "{}", scram_verifier(password)).and_then(|()| match postgres_user_ids()
                .filter(|_| as_postgres)
            {
                Some((uid, gid)) => std::os::unix::fs::chown(&path, Some(uid), Some(gid)),
                None => Ok(()),
            });
        if let Err(e) = written {
            let _ = fs::remove_file(&path);
            return Err(PgError::io("writing", &path)(e));
        }
        Ok(path)
    }

    /// The port to start on: the requested one, else the remembered one, else a free one.
    fn choose_port(&self, requested: Option<u16>) -> Result<u16, PgError> {
        match (requested, self.port()) {
            (Some(p), _) | (None, Some(p)) => Ok(p),
            (None, None) => free_loopback_port(),
        }
    }

    /// Remembers the port, once a server has really started on it.
    pub(crate) fn remember_port(&self, port: u16) -> Result<(), PgError> {
        if self.port() == Some(port) {
            return Ok(());
        }
        self.set_state_value("port", Some(&port.to_string()))
    }

    /// Removes what a killed server left behind: orphaned backends that still hold the
    /// data directory (they keep the shared memory segment busy) and a stale pid file.
    fn recover_from_crash(&self) -> Option<CrashRecovery> {
        let pid_file = self.data_dir().join("postmaster.pid");
        let stale_pid = pid_file.exists().then(|| self.recorded_pid()).flatten();
        let orphans = pids_using_dir(&self.data_dir());
        if !pid_file.exists() && orphans.is_empty() {
            return None;
        }
        for pid in &orphans {
            // SAFETY: kill(2) with a pid we just read from /proc; no memory is shared.
            unsafe { libc::kill(*pid as i32, libc::SIGKILL) };
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while !pids_using_dir(&self.data_dir()).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = fs::remove_file(&pid_file);
        Some(CrashRecovery {
            stale_pid,
            orphans_killed: orphans,
        })
    }

    fn wait_for_pid(&self) -> Result<u32, PgError> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(pid) = self.running_pid() {
                return Ok(pid);
            }
            if Instant::now() > deadline {
                return Err(PgError::Unusable(format!(
                    "pg_ctl reported the server started but {} names no live postmaster; see {}",
                    self.data_dir().join("postmaster.pid").display(),
                    self.log_path().display()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// As root, the server runs as `postgres`: it must own the root and be able to
    /// reach it through every parent directory.
    pub(crate) fn hand_to_postgres_user(&self) -> Result<(), PgError> {
        // Only the root: everything below it is created by the server itself.
        give_to_server_account(&self.root)?;
        let probe = Command::new("runuser")
            .args(["-u", "postgres", "--", "test", "-w"])
            .arg(&self.root)
            .status()
            .map_err(|source| PgError::Spawn {
                program: "runuser".into(),
                source,
            })?;
        if !probe.success() {
            return Err(PgError::Unusable(format!(
                "the `postgres` user cannot write to {} (a parent directory is not searchable, \
                 e.g. /root)\n  fix: run pgcalm from a directory other users can reach, or set \
                 PGCALM_DATA_DIR to one (e.g. /var/tmp/pgcalm)",
                self.root.display()
            )));
        }
        Ok(())
    }
}

/// The exclusive lock of a cluster directory, released when dropped (or when the
/// process dies: it is an `flock`).
#[derive(Debug)]
pub(crate) struct DirLock(#[allow(dead_code)] fs::File);

/// The pid written in a lock file by its holder (which writes it right after taking the
/// lock, so a moment's wait is enough).
fn lock_holder(path: &Path) -> String {
    for _ in 0..50 {
        if let Ok(text) = fs::read_to_string(path)
            && let Ok(pid) = text.trim().parse::<u32>()
        {
            return pid.to_string();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    "unknown".into()
}

/// Whose a directory is by its marker file: `Err(Marked)` with the marker, `Err(Vacant)`
/// missing or empty (a lock file alone counts as empty: another process is creating
/// it), `Err(Foreign)` unreadable or a file; otherwise `Ok` with its entries (sorted)
/// for the caller to judge.
pub(crate) fn marked_dir_entries(dir: &Path, marker: &str) -> Result<Vec<String>, Ownership> {
    if dir.join(marker).is_file() {
        return Err(Ownership::Marked);
    }
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Ownership::Vacant),
        Err(e) if dir.is_dir() => {
            return Err(Ownership::Foreign(format!(
                "entries that cannot be listed ({e})"
            )));
        }
        Err(_) => return Err(Ownership::Foreign("a file, not a directory".into())),
    };
    let mut names: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name != LOCK_FILE)
        .collect();
    names.sort();
    if names.is_empty() {
        return Err(Ownership::Vacant);
    }
    Ok(names)
}

/// Whose a directory other than a cluster's is: [`Ownership::Marked`] with `marker` in
/// it, [`Ownership::Vacant`] missing or empty, [`Ownership::Foreign`] otherwise.
pub(crate) fn marked_dir_ownership(dir: &Path, marker: &str) -> Ownership {
    match marked_dir_entries(dir, marker) {
        Ok(names) => Ownership::Foreign(list_some(&names)),
        Err(ownership) => ownership,
    }
}

/// The first few names, and how many more there are.
pub(crate) fn list_some(names: &[String]) -> String {
    let shown: Vec<&str> = names.iter().take(5).map(String::as_str).collect();
    let more = match names.len().saturating_sub(shown.len()) {
        0 => String::new(),
        n => format!(" and {n} more"),
    };
    format!("{}{more}", shown.join(", "))
}

/// Creates `path` anew (a leftover is removed first) with mode 0600 from the start.
pub(crate) fn create_private(path: &Path) -> Result<fs::File, PgError> {
    let _ = fs::remove_file(path);
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(PgError::io("creating", path))
}

/// A new random password: 32 alphanumeric characters (about 190 bits), nothing to
/// escape in a URL or a passfile.
pub(crate) fn new_password() -> String {
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(32)
        .map(char::from)
        .collect()
}

/// The SCRAM-SHA-256 verifier of `password` (what PostgreSQL stores): sent instead of
/// the password itself, which then never reaches the server or its logs.
pub(crate) fn scram_verifier(password: &str) -> String {
    postgres_protocol::password::scram_sha_256(password.as_bytes())
}

/// Whether a `pg_hba.conf` has a `trust` rule (any line whose method is trust).
fn trusts_anyone(hba: &str) -> bool {
    hba.lines()
        .map(|line| line.split('#').next().unwrap_or_default())
        .any(|rule| rule.split_whitespace().skip(3).any(|word| word == "trust"))
}

/// Whether the server's OS account can enter `dir` (search permission on it and on every
/// directory above it): always, unless pgcalm runs as root and `postgres` is kept out,
/// as from a clone in a 0700 home directory.
pub fn server_account_can_enter(dir: &Path) -> Result<bool, PgError> {
    if !running_as_root() {
        return Ok(true);
    }
    let status = Command::new("runuser")
        .args(["-u", "postgres", "--", "test", "-x"])
        .arg(dir)
        .status()
        .map_err(|source| PgError::Spawn {
            program: "runuser".into(),
            source,
        })?;
    Ok(status.success())
}

/// Creates `dir` for a cluster the server's account owns, mode 0700 (its parents as
/// needed, 0755, so the account can reach it). An existing directory is left as it is:
/// [`Cluster::start`] judges whose it is.
pub fn create_server_dir(dir: &Path) -> Result<(), PgError> {
    use std::os::unix::fs::DirBuilderExt as _;
    if dir.exists() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(parent)
            .map_err(PgError::io("creating", parent))?;
    }
    fs::DirBuilder::new()
        .mode(0o700)
        .create(dir)
        .map_err(PgError::io("creating", dir))?;
    give_to_server_account(dir)
}

/// Whether the effective user is root (and the server must run as `postgres`).
pub fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Runs a server program, through `runuser -u postgres` when `as_postgres`.
pub(crate) fn run_pg(as_postgres: bool, cmd: &mut Command) -> Result<Output, PgError> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let mut actual = if as_postgres {
        let mut wrapped = Command::new("runuser");
        wrapped
            .args(["-u", "postgres", "--"])
            .arg(cmd.get_program())
            .args(cmd.get_args());
        wrapped
    } else {
        let mut same = Command::new(cmd.get_program());
        same.args(cmd.get_args());
        same
    };
    // No password is ever an argument (passfiles and the environment carry them), so
    // the command line is safe to log.
    tracing::debug!(command = ?actual, "running a server program");
    let started = std::time::Instant::now();
    // pg_ctl's server inherits our stdout otherwise and keeps pipes open.
    let out = actual
        .stdin(std::process::Stdio::null())
        .current_dir("/")
        .output()
        .map_err(|source| PgError::Spawn { program, source })?;
    tracing::debug!(status = %out.status, elapsed_ms = started.elapsed().as_millis() as u64, "server program done");
    Ok(out)
}

pub(crate) fn output_text(out: &Output) -> String {
    let mut s = String::from_utf8_lossy(&out.stderr).trim().to_string();
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !stdout.trim().is_empty() {
        if !s.is_empty() {
            s.push('\n');
        }
        s.push_str(stdout.trim());
    }
    s
}

/// The last `n` lines of a text file (empty when unreadable).
pub fn tail(path: &Path, n: usize) -> String {
    last_lines(&fs::read_to_string(path).unwrap_or_default(), n)
}

/// The last `n` lines of `text`, joined by newlines.
pub fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Asks the kernel for a free loopback port.
pub fn free_loopback_port() -> Result<u16, PgError> {
    let l = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))
        .map_err(PgError::io("binding a loopback port", "127.0.0.1:0"))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(PgError::io("binding a loopback port", "127.0.0.1:0"))
}

/// Whether nothing listens on 127.0.0.1:`port`.
pub fn port_is_free(port: u16) -> bool {
    TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)).is_ok()
}

fn process_uses_dir(pid: u32, dir: &Path) -> bool {
    let Ok(cwd) = fs::read_link(format!("/proc/{pid}/cwd")) else {
        // Not ours to inspect (or gone): fall back to "is it alive".
        // SAFETY: signal 0 only checks for existence.
        return unsafe { libc::kill(pid as i32, 0) == 0 }
            && fs::read_to_string(format!("/proc/{pid}/cmdline"))
                .map(|c| c.contains("postgres"))
                .unwrap_or(false);
    };
    same_path(&cwd, dir)
}

/// Processes whose working directory is `dir`: a postmaster and its backends all run
/// in the data directory, so this finds them even after the postmaster died.
fn pids_using_dir(dir: &Path) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            fs::read_link(format!("/proc/{pid}/cwd"))
                .map(|cwd| same_path(&cwd, dir))
                .unwrap_or(false)
        })
        .collect()
}

fn same_path(a: &Path, b: &Path) -> bool {
    let canon = |p: &Path| fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    canon(a) == canon(b)
}

pub(crate) fn postgres_user_ids() -> Option<(u32, u32)> {
    let name = std::ffi::CString::new("postgres").ok()?;
    // SAFETY: getpwnam returns a pointer into static storage or null; we copy out
    // the two integers immediately.
    unsafe {
        let pw = libc::getpwnam(name.as_ptr());
        if pw.is_null() {
            None
        } else {
            Some(((*pw).pw_uid, (*pw).pw_gid))
        }
    }
}

/// Hands a file or directory pgcalm wrote to the server's OS account (`postgres` when
/// pgcalm runs as root), which must read it (a passfile) or write in it (a directory).
pub(crate) fn give_to_server_account(path: &Path) -> Result<(), PgError> {
    if !running_as_root() {
        return Ok(());
    }
    let (uid, gid) = postgres_user_ids().ok_or_else(|| {
        PgError::Unusable(
            "running as root but there is no `postgres` user to run the server as\n  \
             fix: install the server package (`apt-get install -y postgresql`), which creates it, \
             or run pgcalm as an ordinary user"
                .into(),
        )
    })?;
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .map_err(PgError::io("changing owner of", path))
}

pub(crate) fn dir_size(path: &Path) -> u64 {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return 0;
    };
    if meta.is_dir() {
        fs::read_dir(path)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| dir_size(&e.path()))
            .sum()
    } else {
        meta.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_trust_rules_only_in_the_method_column() {
        let initdb_trust = "local   all  all                 trust\n\
                            host    all  all  127.0.0.1/32   trust\n\
                            host    replication all ::1/128  trust\n";
        assert!(trusts_anyone(initdb_trust));
        assert!(!trusts_anyone(PG_HBA));
        assert!(!trusts_anyone("# host all all 127.0.0.1/32 trust\n"));
        assert!(!trusts_anyone(
            "host all all 127.0.0.1/32 scram-sha-256 # was trust\n"
        ));
    }

    #[test]
    fn tells_whose_a_directory_is() {
        let tmp = std::env::temp_dir().join(format!("pgcalm-ownership-{}", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        let cluster = Cluster::new(&tmp);
        assert_eq!(cluster.ownership(), Ownership::Vacant, "missing");
        fs::create_dir(&tmp).unwrap();
        assert_eq!(cluster.ownership(), Ownership::Vacant, "empty");
        fs::write(tmp.join(LOCK_FILE), "123\n").unwrap();
        assert_eq!(cluster.ownership(), Ownership::Vacant, "a lock file only");
        fs::create_dir(tmp.join("serve")).unwrap();
        assert_eq!(
            cluster.ownership(),
            Ownership::Vacant,
            "the demo app's only"
        );

        // An older pgcalm's layout, exactly.
        fs::create_dir(tmp.join("data")).unwrap();
        fs::write(tmp.join("data/PG_VERSION"), "15\n").unwrap();
        fs::write(tmp.join(STATE_FILE), "port=5555\n").unwrap();
        fs::write(tmp.join("postgres.log"), "").unwrap();
        assert_eq!(cluster.ownership(), Ownership::OlderPgcalm);
        // One file of someone else's, and it is not pgcalm's any more.
        fs::write(tmp.join("notes.txt"), "mine").unwrap();
        assert_eq!(
            cluster.ownership(),
            Ownership::Foreign("cluster.state, data, notes.txt, postgres.log".into())
        );
        fs::remove_file(tmp.join("notes.txt")).unwrap();
        assert_eq!(
            cluster.ownership(),
            Ownership::OlderPgcalm,
            "serve/ beside it"
        );
        fs::write(tmp.join("notes.txt"), "mine").unwrap();
        // The marker settles it.
        cluster.write_marker().unwrap();
        assert_eq!(cluster.ownership(), Ownership::Marked);

        let file = tmp.join("notes.txt");
        assert_eq!(
            Cluster::new(&file).ownership(),
            Ownership::Foreign("a file, not a directory".into())
        );
        fs::remove_dir_all(&tmp).unwrap();
    }

    #[test]
    fn the_password_file_is_a_private_passfile() {
        use std::os::unix::fs::PermissionsExt as _;
        let tmp = std::env::temp_dir().join(format!("pgcalm-pgpass-{}", std::process::id()));
        fs::create_dir_all(&tmp).unwrap();
        let cluster = Cluster::new(&tmp);
        assert_eq!(
            cluster.password().unwrap(),
            None,
            "a trust cluster has none"
        );
        cluster.write_password_file("Secret123").unwrap();
        cluster.write_password_file("Secret456").unwrap();
        assert_eq!(cluster.password().unwrap().as_deref(), Some("Secret456"));
        let text = fs::read_to_string(cluster.password_path()).unwrap();
        assert!(
            text.starts_with("127.0.0.1:*:*:postgres:Secret456\n"),
            "{text}"
        );
        let mode = fs::metadata(cluster.password_path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        fs::remove_dir_all(&tmp).unwrap();
    }

    #[test]
    fn passwords_are_random_and_need_no_escaping() {
        let (a, b) = (new_password(), new_password());
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()), "{a}");
        assert!(scram_verifier(&a).starts_with("SCRAM-SHA-256$4096:"));
        assert!(!scram_verifier(&a).contains(&a));
    }
}
