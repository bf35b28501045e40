//! A streaming standby of the embedded cluster (`pgcalm up --replica`).
//!
//! The standby is a cluster directory of its own under the primary's root
//! ([`REPLICA_DIR`]: `data/`, `postgres.log`, its remembered port, a `PGCALM_CLUSTER`
//! marker), so it starts, stops and recovers from a crash like the primary
//! ([`Cluster`]). It is made by `pg_basebackup -R` over a physical replication slot
//! ([`REPLICATION_SLOT`]) as a login role with the REPLICATION attribute
//! ([`REPLICATION_ROLE`]) and a random password of its own, which lives only in a 0600
//! passfile in the replica's directory ([`REPLICATION_PASSFILE`], owned by the servers'
//! OS account): `pg_basebackup` and the standby's `primary_conninfo` name the file
//! (`passfile=`), never the password. The primary's `pg_hba.conf` gets one
//! `host replication` rule for that role on 127.0.0.1, only while a replica exists.
//!
//! The standby shares the primary's roles (it is a physical copy), so it is reached with
//! the primary's superuser password.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use tokio_postgres::Client;

use crate::catalog::topology::{self as catalog, SlotInfo};
use crate::cluster::{
    self, Cluster, ClusterOptions, MARKER_FILE, Ownership, StartOutcome, give_to_server_account,
    new_password, output_text, run_pg, running_as_root, scram_verifier,
};
use crate::error::PgError;
use crate::target::Target;

/// The replica's directory, inside the primary's cluster root.
pub const REPLICA_DIR: &str = "replica";

/// The physical replication slot the replica streams through (pgcalm drops only this
/// one).
pub const REPLICATION_SLOT: &str = "pgcalm_replica";

/// The role the replica connects to the primary as (LOGIN REPLICATION, no other right).
pub const REPLICATION_ROLE: &str = "pgcalm_replication";

/// The replication role's passfile, in the replica's directory (mode 0600).
pub const REPLICATION_PASSFILE: &str = "replication.pgpass";

/// The standby's `cluster_name` and `application_name`: its name in the primary's
/// `pg_stat_replication`.
pub const REPLICA_NAME: &str = "pgcalm_replica";

/// The comment line above the replication rule pgcalm adds to the primary's
/// `pg_hba.conf` (the pair is removed together).
const HBA_COMMENT: &str = "# pgcalm: the replica's replication connection (`pgcalm up --replica`; removed by --no-replica)";

/// How [`Cluster::start_replica`] waits.
#[derive(Debug, Clone)]
pub struct ReplicaOptions {
    /// How long the standby may take to stream from the primary once started.
    pub streaming_timeout: Duration,
}

impl Default for ReplicaOptions {
    fn default() -> Self {
        Self {
            streaming_timeout: Duration::from_secs(60),
        }
    }
}

/// What [`Cluster::start_replica`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum ReplicaStart {
    /// The standby was already running; nothing was done.
    AlreadyRunning {
        /// Its postmaster pid.
        pid: u32,
        /// Its port.
        port: u16,
    },
    /// The standby was started (and made first when `created` says so); it streams.
    Started {
        /// Its postmaster pid.
        pid: u32,
        /// Its port.
        port: u16,
        /// Set when it was made by this call.
        created: Option<ReplicaCreated>,
    },
}

/// How a new replica was made.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaCreated {
    /// The slot an earlier replica left behind (its directory deleted), dropped before
    /// the new slot was made.
    pub dropped_slot: Option<SlotInfo>,
    /// Size of the base backup, in bytes.
    pub backup_bytes: u64,
}

/// What [`Cluster::remove_replica`] removed (all empty when there was no replica).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReplicaRemoval {
    /// The standby's pid, when it was running.
    pub stopped_pid: Option<u32>,
    /// The replica's directory and its size, when it existed.
    pub deleted: Option<(PathBuf, u64)>,
    /// The replication slot, when it existed on the primary.
    pub dropped_slot: Option<SlotInfo>,
    /// Whether the replication role existed and was dropped.
    pub dropped_role: bool,
    /// Whether the `pg_hba.conf` rule was removed.
    pub removed_hba_rule: bool,
}

impl ReplicaRemoval {
    /// Whether nothing was there to remove.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Handle on the replica of an embedded cluster. Creating it does no I/O.
#[derive(Debug, Clone)]
pub struct Replica {
    primary: Cluster,
    standby: Cluster,
}

impl Cluster {
    /// The replica of this cluster (which may not exist).
    pub fn replica(&self) -> Replica {
        Replica {
            primary: self.clone(),
            standby: Cluster::new(self.root().join(REPLICA_DIR)),
        }
    }

    /// Starts the replica, first making it when it does not exist (role, slot,
    /// `pg_hba.conf` rule, `pg_basebackup`), and waits until it streams from the
    /// primary, which must be running. A slot of a replica whose directory was deleted is
    /// dropped and made anew.
    ///
    /// Errors: [`PgError::Command`] when `pg_basebackup` fails (its output; the slot is
    /// dropped again), [`PgError::ReplicaNotStreaming`] with the standby's log when it
    /// does not stream within [`ReplicaOptions::streaming_timeout`],
    /// [`PgError::ForeignPartDir`] when the replica's directory is not pgcalm's.
    pub async fn start_replica(&self, opts: &ReplicaOptions) -> Result<ReplicaStart, PgError> {
        let replica = self.replica();
        if let Some(pid) = replica.running_pid() {
            let port = replica.port().unwrap_or_default();
            return Ok(ReplicaStart::AlreadyRunning { pid, port });
        }
        if self.running_pid().is_none() {
            return Err(PgError::Unusable(format!(
                "the primary in {} is not running, so no replica can stream from it\n  \
                 fix: start it with `pgcalm up`",
                self.root().display()
            )));
        }
        if let Ownership::Foreign(found) = replica.standby.ownership() {
            return Err(replica.foreign("use", found));
        }
        let admin = self
            .target("postgres")?
            .with_application_name("pgcalm up --replica")
            .connect()
            .await?;
        let created = match replica.exists() {
            false => Some(replica.create(&admin).await?),
            true => {
                replica.ensure_primary_side(&admin).await?;
                None
            }
        };
        if let Some(port) = replica.port()
            && !cluster::port_is_free(port)
        {
            return Err(PgError::PartPortTaken {
                part: "replica",
                port,
                remembered_in: replica.standby.root().join(cluster::STATE_FILE),
            });
        }
        let (pid, port) = match replica.standby.start(None, &ClusterOptions::default())? {
            StartOutcome::AlreadyRunning { pid, port }
            | StartOutcome::Started { pid, port, .. } => (pid, port),
        };
        replica
            .wait_until_streaming(&admin, port, opts.streaming_timeout)
            .await?;
        Ok(ReplicaStart::Started { pid, port, created })
    }

    /// Removes the replica and everything pgcalm made for it: stops it, deletes its
    /// directory (only when it holds pgcalm's marker), drops the replication slot and
    /// role and the `pg_hba.conf` rule. The slot and role are dropped only while the
    /// primary runs (the next call drops them otherwise), so this also cleans up after
    /// a replica whose directory was deleted by hand.
    pub async fn remove_replica(&self) -> Result<ReplicaRemoval, PgError> {
        let replica = self.replica();
        let mut removal = ReplicaRemoval {
            stopped_pid: replica.stop()?,
            ..ReplicaRemoval::default()
        };
        removal.deleted = match replica.standby.ownership() {
            Ownership::Marked | Ownership::OlderPgcalm => replica.standby.delete()?,
            Ownership::Vacant => {
                let _ = fs::remove_dir(replica.root());
                None
            }
            Ownership::Foreign(found) => return Err(replica.foreign("delete", found)),
        };
        removal.removed_hba_rule = remove_hba_rule(&self.data_dir())?;
        if self.running_pid().is_some() {
            let admin = self
                .target("postgres")?
                .with_application_name("pgcalm up --no-replica")
                .connect()
                .await?;
            if removal.removed_hba_rule {
                catalog::reload_config(&admin).await?;
            }
            removal.dropped_slot = drop_slot_once_released(&admin).await?;
            removal.dropped_role = catalog::drop_role(&admin, REPLICATION_ROLE).await?;
        }
        Ok(removal)
    }
}

impl Replica {
    /// The replica's directory.
    pub fn root(&self) -> &Path {
        self.standby.root()
    }

    /// The standby's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.standby.data_dir()
    }

    /// The standby's server log.
    pub fn log_path(&self) -> PathBuf {
        self.standby.log_path()
    }

    /// The replication role's passfile ([`REPLICATION_PASSFILE`]).
    pub fn passfile_path(&self) -> PathBuf {
        self.root().join(REPLICATION_PASSFILE)
    }

    /// Whether the replica has been made (its base backup is complete).
    pub fn exists(&self) -> bool {
        self.standby.is_initialized()
    }

    /// The standby's remembered port.
    pub fn port(&self) -> Option<u16> {
        self.standby.port()
    }

    /// The standby's postmaster pid, when it runs.
    pub fn running_pid(&self) -> Option<u32> {
        self.standby.running_pid()
    }

    /// The database `dbname` on the standby (read only), as the primary's superuser.
    pub fn target(&self, dbname: &str) -> Result<Target, PgError> {
        self.primary.target_on(self.port_or_fail()?, dbname)
    }

    /// The connection URL of `dbname` on the standby, with the password in it (see
    /// [`Cluster::url`]).
    pub fn url(&self, dbname: &str) -> Result<String, PgError> {
        self.primary.url_on(self.port_or_fail()?, dbname)
    }

    /// Stops the standby (fast shutdown); returns its pid when it was running.
    pub fn stop(&self) -> Result<Option<u32>, PgError> {
        let pid = self.running_pid();
        self.standby.stop()?;
        Ok(pid)
    }

    fn port_or_fail(&self) -> Result<u16, PgError> {
        self.port().ok_or_else(|| {
            PgError::Unusable(format!(
                "there is no replica in {}\n  fix: run `pgcalm up --replica`",
                self.root().display()
            ))
        })
    }

    fn foreign(&self, action: &'static str, found: String) -> PgError {
        PgError::ForeignPartDir {
            action,
            part: "replica",
            path: self.root().to_path_buf(),
            marker: MARKER_FILE,
            found,
        }
    }

    /// Makes the replica: role with a new password, passfile, `pg_hba.conf` rule, slot,
    /// base backup, standby settings.
    async fn create(&self, admin: &Client) -> Result<ReplicaCreated, PgError> {
        let root = self.root();
        fs::create_dir_all(root).map_err(PgError::io("creating", root))?;
        let _lock = self.standby.lock()?;
        let marker = root.join(MARKER_FILE);
        let text = format!(
            "This directory is a streaming replica of the embedded PostgreSQL cluster in {}, \
             created by pgcalm {}.\n`pgcalm up --no-replica` and `pgcalm down --volumes` delete \
             it (pgcalm deletes only directories that hold this file).\n",
            self.primary.root().display(),
            env!("CARGO_PKG_VERSION")
        );
        fs::write(&marker, text).map_err(PgError::io("writing", &marker))?;
        let as_postgres = running_as_root();
        if as_postgres {
            self.standby.hand_to_postgres_user()?;
        }
        // A data directory without PG_VERSION is what a failed base backup left.
        let data = self.data_dir();
        if data.exists() {
            fs::remove_dir_all(&data).map_err(PgError::io("removing", &data))?;
        }

        let password = new_password();
        self.write_passfile(&password)?;
        catalog::set_replication_role(admin, REPLICATION_ROLE, &scram_verifier(&password)).await?;
        self.ensure_primary_side(admin).await?;
        // Any slot of ours is a deleted replica's: its WAL position is of no use.
        let dropped_slot = drop_slot_once_released(admin).await?;
        catalog::create_physical_slot(admin, REPLICATION_SLOT).await?;

        if let Err(e) = self.base_backup(as_postgres) {
            let _ = catalog::drop_inactive_slot(admin, REPLICATION_SLOT).await;
            let _ = fs::remove_dir_all(&data);
            return Err(e);
        }
        let conf_path = data.join("postgresql.conf");
        let mut conf = fs::OpenOptions::new()
            .append(true)
            .open(&conf_path)
            .map_err(PgError::io("opening", &conf_path))?;
        write!(
            conf,
            "\n# --- written by pgcalm: this is the replica ---\ncluster_name = '{REPLICA_NAME}'\n\
             hot_standby = on\n\
             # report replay every second (default 10s): the primary's replay_lag, which\n\
             # status and the backfill throttle read, follows the replica within a second\n\
             wal_receiver_status_interval = '1s'\n"
        )
        .map_err(PgError::io("writing", &conf_path))?;
        Ok(ReplicaCreated {
            dropped_slot,
            backup_bytes: cluster::dir_size(&data),
        })
    }

    /// The replication rule in the primary's `pg_hba.conf` (reloaded when added) and the
    /// slot (made when missing: the standby then asks it for WAL from where it stopped).
    async fn ensure_primary_side(&self, admin: &Client) -> Result<(), PgError> {
        if add_hba_rule(&self.primary.data_dir())? {
            catalog::reload_config(admin).await?;
        }
        let slots = catalog::replication_slots(admin).await?;
        if !slots.iter().any(|s| s.name == REPLICATION_SLOT) && self.exists() {
            catalog::create_physical_slot(admin, REPLICATION_SLOT).await?;
        }
        Ok(())
    }

    /// The replication role's passfile: 0600 from its first byte, owned by the servers'
    /// OS account (the standby's WAL receiver reads it).
    fn write_passfile(&self, password: &str) -> Result<(), PgError> {
        let path = self.passfile_path();
        let mut file = cluster::create_private(&path)?;
        file.write_all(format!("127.0.0.1:*:*:{REPLICATION_ROLE}:{password}\n").as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(PgError::io("writing", &path))?;
        give_to_server_account(&path)
    }

    /// `pg_basebackup -R` into the replica's data directory, through the slot, as the
    /// replication role with its passfile (the connection string names the file only).
    fn base_backup(&self, as_postgres: bool) -> Result<(), PgError> {
        let bins = self.primary.binaries()?;
        let primary_port = self.primary.port().unwrap_or_default();
        let conninfo = format!(
            "host=127.0.0.1 port={primary_port} user={REPLICATION_ROLE} passfile={} \
             application_name={REPLICA_NAME}",
            conninfo_value(&self.passfile_path().display().to_string())
        );
        let data = self.data_dir();
        let out = run_pg(
            as_postgres,
            Command::new(bins.bin("pg_basebackup"))
                .arg("-D")
                .arg(&data)
                .args(["-d", &conninfo, "-R", "-S", REPLICATION_SLOT])
                .args(["-X", "stream", "-c", "fast", "--no-password"]),
        )?;
        if out.status.success() {
            return Ok(());
        }
        Err(PgError::Command {
            step: format!(
                "pg_basebackup (127.0.0.1:{primary_port} into {})",
                data.display()
            ),
            status: out.status.to_string(),
            output: output_text(&out),
            hint: format!(
                "\n  the primary's log is {} (`pgcalm logs`); nothing of the replica was kept",
                self.primary.log_path().display()
            ),
        })
    }

    /// Waits until the primary's `pg_stat_replication` shows the standby streaming.
    async fn wait_until_streaming(
        &self,
        admin: &Client,
        port: u16,
        timeout: Duration,
    ) -> Result<(), PgError> {
        let started = Instant::now();
        loop {
            let streaming = catalog::wal_senders(admin)
                .await?
                .iter()
                .any(|s| s.application_name == REPLICA_NAME && s.state == "streaming");
            if streaming {
                return Ok(());
            }
            let stopped = self.running_pid().is_none();
            if stopped || started.elapsed() >= timeout {
                let log = self.log_path();
                return Err(PgError::ReplicaNotStreaming {
                    dir: self.root().to_path_buf(),
                    port,
                    waited_secs: started.elapsed().as_secs(),
                    log_tail: cluster::tail(&log, 12),
                    log,
                    fix: format!(
                        "{}if the log says the WAL it needs was removed or the slot is gone, \
                         make a new replica: `pgcalm up --no-replica`, then `pgcalm up --replica`",
                        if stopped { "the replica stopped; " } else { "" }
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Drops pgcalm's slot once no standby uses it (a standby just stopped may still be
/// attached for a moment); None when there is none.
async fn drop_slot_once_released(admin: &Client) -> Result<Option<SlotInfo>, PgError> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let slot = catalog::replication_slots(admin)
            .await?
            .into_iter()
            .find(|s| s.name == REPLICATION_SLOT);
        match slot {
            None => return Ok(None),
            Some(slot) if !slot.active || Instant::now() >= deadline => {
                if slot.active {
                    return Err(PgError::Unusable(format!(
                        "replication slot {REPLICATION_SLOT} is still in use by a standby that \
                         is not pgcalm's replica\n  fix: stop that standby, then run the \
                         command again"
                    )));
                }
                return catalog::drop_inactive_slot(admin, REPLICATION_SLOT).await;
            }
            Some(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// The replication rule for pgcalm's replica.
fn hba_rule() -> String {
    format!("host    replication  {REPLICATION_ROLE}  127.0.0.1/32  scram-sha-256")
}

/// Appends the replication rule to `pg_hba.conf` unless it is there; returns whether it
/// wrote.
fn add_hba_rule(data_dir: &Path) -> Result<bool, PgError> {
    let path = data_dir.join("pg_hba.conf");
    let text = fs::read_to_string(&path).map_err(PgError::io("reading", &path))?;
    let rule = hba_rule();
    if text.lines().any(|line| line.trim() == rule) {
        return Ok(false);
    }
    let mut text = text;
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&format!("{HBA_COMMENT}\n{rule}\n"));
    fs::write(&path, text).map_err(PgError::io("writing", &path))?;
    Ok(true)
}

/// Removes the replication rule (and its comment) from `pg_hba.conf`; returns whether
/// it was there. A missing file (no primary) has nothing to remove.
fn remove_hba_rule(data_dir: &Path) -> Result<bool, PgError> {
    let path = data_dir.join("pg_hba.conf");
    let Ok(text) = fs::read_to_string(&path) else {
        return Ok(false);
    };
    let rule = hba_rule();
    let kept: Vec<&str> = text
        .lines()
        .filter(|line| line.trim() != rule && line.trim() != HBA_COMMENT)
        .collect();
    if kept.len() == text.lines().count() {
        return Ok(false);
    }
    fs::write(&path, format!("{}\n", kept.join("\n"))).map_err(PgError::io("writing", &path))?;
    Ok(true)
}

/// A libpq connection-string value, quoted (a path may hold spaces).
fn conninfo_value(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_replication_rule_comes_and_goes_alone() {
        let dir = std::env::temp_dir().join(format!("pgcalm-hba-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let original = "# mine\nhost all all 127.0.0.1/32 scram-sha-256\n";
        fs::write(dir.join("pg_hba.conf"), original).unwrap();
        assert!(add_hba_rule(&dir).unwrap());
        assert!(!add_hba_rule(&dir).unwrap(), "added once");
        let added = fs::read_to_string(dir.join("pg_hba.conf")).unwrap();
        assert!(added.starts_with(original), "{added}");
        assert!(
            added.contains("host    replication  pgcalm_replication  127.0.0.1/32  scram-sha-256"),
            "{added}"
        );
        assert!(remove_hba_rule(&dir).unwrap());
        assert!(!remove_hba_rule(&dir).unwrap());
        assert_eq!(
            fs::read_to_string(dir.join("pg_hba.conf")).unwrap(),
            original
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn conninfo_values_are_quoted() {
        assert_eq!(conninfo_value("/a b/it's"), r"'/a b/it\'s'");
    }
}
