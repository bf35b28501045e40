//! The embedded PostgreSQL cluster: pgcalm's own server under a directory (`.pgcalm/`
//! by default), created with `initdb` and run with `pg_ctl` on a loopback port that is
//! chosen once and remembered.
//!
//! As root the server runs as the `postgres` user through `runuser`, because `initdb`
//! refuses root. Recovery from a `kill -9` (stale `postmaster.pid`, orphaned backends
//! still attached to shared memory) happens on the next [`Cluster::start`].

use std::fs;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::binaries::PgBinaries;
use crate::error::PgError;

/// Name of the file (inside the cluster root) where the chosen port is remembered.
pub const STATE_FILE: &str = "cluster.state";

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
        let text = fs::read_to_string(self.state_path()).ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix("port="))
            .and_then(|p| p.trim().parse().ok())
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
    pub fn start(&self, port: Option<u16>, opts: &ClusterOptions) -> Result<StartOutcome, PgError> {
        if let Some(pid) = self.running_pid() {
            let port = self.port().unwrap_or_default();
            return Ok(StartOutcome::AlreadyRunning { pid, port });
        }
        let bins = self.binaries()?;
        fs::create_dir_all(&self.root).map_err(PgError::io("creating", &self.root))?;
        let as_postgres = running_as_root();
        if as_postgres {
            self.hand_to_postgres_user()?;
        }
        let created = !self.is_initialized();
        if created {
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
    pub fn delete(&self) -> Result<Option<(PathBuf, u64)>, PgError> {
        self.stop()?;
        if !self.root.exists() {
            return Ok(None);
        }
        let size = dir_size(&self.root);
        fs::remove_dir_all(&self.root).map_err(PgError::io("deleting", &self.root))?;
        Ok(Some((self.root.clone(), size)))
    }

    fn initdb(&self, bins: &PgBinaries, opts: &ClusterOptions) -> Result<(), PgError> {
        let data = self.data_dir();
        let out = run_pg(
            running_as_root(),
            Command::new(bins.bin("initdb")).arg("-D").arg(&data).args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ]),
        )?;
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
        Ok(())
    }

    /// The port to start on: the requested one, else the remembered one, else a free one.
    fn choose_port(&self, requested: Option<u16>) -> Result<u16, PgError> {
        match (requested, self.port()) {
            (Some(p), _) | (None, Some(p)) => Ok(p),
            (None, None) => free_loopback_port(),
        }
    }

    /// Remembers the port, once a server has really started on it.
    fn remember_port(&self, port: u16) -> Result<(), PgError> {
        if self.port() == Some(port) {
            return Ok(());
        }
        let path = self.state_path();
        fs::write(&path, format!("port={port}\n")).map_err(PgError::io("writing", &path))
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
    fn hand_to_postgres_user(&self) -> Result<(), PgError> {
        let (uid, gid) = postgres_user_ids().ok_or_else(|| {
            PgError::Unusable(
                "running as root but there is no `postgres` user to run the server as\n  \
                 fix: install the server package (`apt-get install -y postgresql`), which creates it, \
                 or run pgcalm as an ordinary user"
                    .into(),
            )
        })?;
        // Only the root: everything below it is created by the server itself.
        std::os::unix::fs::chown(&self.root, Some(uid), Some(gid))
            .map_err(PgError::io("changing owner of", &self.root))?;
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

/// Whether the effective user is root (and the server must run as `postgres`).
pub fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Runs a server program, through `runuser -u postgres` when `as_postgres`.
fn run_pg(as_postgres: bool, cmd: &mut Command) -> Result<Output, PgError> {
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
    // pg_ctl's server inherits our stdout otherwise and keeps pipes open.
    actual
        .stdin(std::process::Stdio::null())
        .current_dir("/")
        .output()
        .map_err(|source| PgError::Spawn { program, source })
}

fn output_text(out: &Output) -> String {
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

fn postgres_user_ids() -> Option<(u32, u32)> {
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

fn dir_size(path: &Path) -> u64 {
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
