//! The replica and the pooler as the servers see them: replication slots, the
//! replication role, `pg_stat_replication` and the standby's replay position on
//! PostgreSQL's side; `SHOW POOLS` / `SHOW CONFIG` / `SHOW VERSION` on PgBouncer's admin
//! console. Used by `pgcalm up --replica --pooler` and `pgcalm status`, and by anything
//! that must watch replica lag.

use serde::Serialize;
use tokio_postgres::{Client, SimpleQueryMessage, SimpleQueryRow};

use crate::error::PgError;
use crate::target::quote_ident;

/// A replication slot (`pg_replication_slots`), as seen on the primary.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SlotInfo {
    /// Slot name.
    pub name: String,
    /// `physical` or `logical`.
    pub kind: String,
    /// Whether a standby (or decoder) uses it now.
    pub active: bool,
    /// WAL the slot keeps on the primary's disk: bytes from its `restart_lsn` to the
    /// current WAL position (None before it has reserved any).
    pub retained_bytes: Option<i64>,
}

/// Every replication slot of the server (run it on a primary).
pub async fn replication_slots(client: &Client) -> Result<Vec<SlotInfo>, PgError> {
    let rows = client
        .query(
            "SELECT slot_name::text, slot_type, active,
                    pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::int8
               FROM pg_replication_slots
              ORDER BY slot_name",
            &[],
        )
        .await
        .map_err(PgError::query("listing the replication slots"))?;
    Ok(rows
        .iter()
        .map(|r| SlotInfo {
            name: r.get(0),
            kind: r.get(1),
            active: r.get(2),
            retained_bytes: r.get(3),
        })
        .collect())
}

/// Creates a physical replication slot that keeps WAL from now on (so a base backup
/// taken after it can stream from its start).
pub async fn create_physical_slot(client: &Client, name: &str) -> Result<(), PgError> {
    client
        .execute(
            "SELECT pg_create_physical_replication_slot($1, true)",
            &[&name],
        )
        .await
        .map_err(PgError::query(format!("creating replication slot {name}")))?;
    Ok(())
}

/// Drops the slot `name` when it exists and no one uses it; returns what it was.
/// An active slot is left alone (None, like a missing one): see [`replication_slots`].
pub async fn drop_inactive_slot(client: &Client, name: &str) -> Result<Option<SlotInfo>, PgError> {
    let Some(slot) = replication_slots(client)
        .await?
        .into_iter()
        .find(|s| s.name == name && !s.active)
    else {
        return Ok(None);
    };
    client
        .execute(
            "SELECT pg_drop_replication_slot(slot_name)
               FROM pg_replication_slots
              WHERE slot_name = $1 AND NOT active",
            &[&name],
        )
        .await
        .map_err(PgError::query(format!("dropping replication slot {name}")))?;
    Ok(Some(slot))
}

/// Whether a role exists.
pub async fn role_exists(client: &Client, role: &str) -> Result<bool, PgError> {
    Ok(client
        .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&role])
        .await
        .map_err(PgError::query(format!("looking up role {role}")))?
        .is_some())
}

/// Creates the login role `role` with the REPLICATION attribute, or updates it, with the
/// password whose SCRAM verifier is `verifier` (the password itself never reaches the
/// server).
pub async fn set_replication_role(
    client: &Client,
    role: &str,
    verifier: &str,
) -> Result<(), PgError> {
    let verb = match role_exists(client, role).await? {
        true => "ALTER",
        false => "CREATE",
    };
    // A verifier is base64 and `$:` only: nothing to escape in a literal.
    debug_assert!(!verifier.contains('\''));
    client
        .batch_execute(&format!(
            "{verb} ROLE {} WITH LOGIN REPLICATION PASSWORD '{verifier}'",
            quote_ident(role)
        ))
        .await
        .map_err(PgError::query(format!(
            "setting up replication role {role}"
        )))
}

/// Drops the role `role` when it exists; returns whether it did.
pub async fn drop_role(client: &Client, role: &str) -> Result<bool, PgError> {
    if !role_exists(client, role).await? {
        return Ok(false);
    }
    client
        .batch_execute(&format!("DROP ROLE {}", quote_ident(role)))
        .await
        .map_err(PgError::query(format!("dropping role {role}")))?;
    Ok(true)
}

/// The SCRAM verifier stored for `role` (`pg_authid.rolpassword`; superuser only):
/// what a pooler's auth file must hold, byte for byte, to log in to the server for a
/// client that authenticated with SCRAM.
pub async fn role_verifier(client: &Client, role: &str) -> Result<Option<String>, PgError> {
    let row = client
        .query_opt(
            "SELECT rolpassword FROM pg_authid WHERE rolname = $1",
            &[&role],
        )
        .await
        .map_err(PgError::query(format!(
            "reading the password verifier of {role}"
        )))?;
    Ok(row.and_then(|r| r.get(0)))
}

/// Makes the server reread its configuration files (`pg_hba.conf`).
pub async fn reload_config(client: &Client) -> Result<(), PgError> {
    client
        .execute("SELECT pg_reload_conf()", &[])
        .await
        .map_err(PgError::query("reloading the server configuration"))?;
    Ok(())
}

/// A standby connected to this server (`pg_stat_replication`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WalSender {
    /// The standby's `application_name` (its `cluster_name` for pgcalm's replica).
    pub application_name: String,
    /// `startup`, `catchup`, `streaming`, `backup` or `stopping`.
    pub state: String,
    /// WAL the standby has not replayed yet: bytes from its `replay_lsn` to the primary's
    /// current WAL position.
    pub lag_bytes: Option<i64>,
    /// `replay_lag` in seconds: how long the last replayed commit took to be applied
    /// there (None once the standby has been idle and caught up a while).
    pub replay_lag_secs: Option<f64>,
}

/// The standbys streaming from this server.
pub async fn wal_senders(client: &Client) -> Result<Vec<WalSender>, PgError> {
    let rows = client
        .query(
            "SELECT coalesce(application_name, ''), coalesce(state, ''),
                    pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::int8,
                    extract(epoch FROM replay_lag)::float8
               FROM pg_stat_replication
              ORDER BY application_name, pid",
            &[],
        )
        .await
        .map_err(PgError::query("reading pg_stat_replication"))?;
    Ok(rows
        .iter()
        .map(|r| WalSender {
            application_name: r.get(0),
            state: r.get(1),
            lag_bytes: r.get(2),
            replay_lag_secs: r.get(3),
        })
        .collect())
}

/// A standby's own view of its replay (run on the standby).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StandbyReplay {
    /// `pg_is_in_recovery()`: true on a standby, false once promoted.
    pub in_recovery: bool,
    /// Whether it has replayed all the WAL it has received.
    pub replayed_all_received: bool,
    /// Seconds since the commit it replayed last was made on the primary
    /// (`pg_last_xact_replay_timestamp`); grows while the primary is idle.
    pub last_replay_age_secs: Option<f64>,
}

/// The standby's replay position ([`StandbyReplay`]).
pub async fn standby_replay(client: &Client) -> Result<StandbyReplay, PgError> {
    let row = client
        .query_one(
            "SELECT pg_is_in_recovery(),
                    coalesce(pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn(), false),
                    extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8",
            &[],
        )
        .await
        .map_err(PgError::query("reading the standby's replay position"))?;
    Ok(StandbyReplay {
        in_recovery: row.get(0),
        replayed_all_received: row.get(1),
        last_replay_age_secs: row.get(2),
    })
}

/// How far a standby is behind, in bytes and seconds.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct ReplicaLag {
    /// WAL not replayed yet ([`WalSender::lag_bytes`]).
    pub bytes: i64,
    /// 0 when nothing is left to replay; else `replay_lag` from `pg_stat_replication`,
    /// or, when the primary has not measured one, the age of the standby's last replayed
    /// commit ([`StandbyReplay::last_replay_age_secs`]).
    pub seconds: Option<f64>,
}

impl ReplicaLag {
    /// Combines the primary's view of a standby with the standby's own (when it could
    /// be asked).
    pub fn of(sender: &WalSender, standby: Option<&StandbyReplay>) -> Option<Self> {
        let bytes = sender.lag_bytes?;
        let seconds = if bytes <= 0 {
            Some(0.0)
        } else {
            sender
                .replay_lag_secs
                .or_else(|| standby.and_then(|s| s.last_replay_age_secs))
        };
        Some(Self { bytes, seconds })
    }
}

/// One pool of PgBouncer (`SHOW POOLS`): a database and user pair.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PoolStats {
    /// Database.
    pub database: String,
    /// User.
    pub user: String,
    /// Clients linked to a server connection (or idle with no need of one).
    pub clients_active: i64,
    /// Clients waiting for a server connection.
    pub clients_waiting: i64,
    /// Server connections linked to a client.
    pub servers_active: i64,
    /// Server connections idle and ready.
    pub servers_idle: i64,
    /// Server connections idle for longer than `server_check_delay`.
    pub servers_used: i64,
    /// How long the oldest waiting client has waited, in seconds.
    pub max_wait_secs: f64,
    /// The pool's mode (`transaction`, `session`, `statement`).
    pub pool_mode: String,
}

/// PgBouncer's pools, except its own admin console's (`SHOW POOLS` on the admin
/// database `pgbouncer`).
pub async fn pooler_pools(admin: &Client) -> Result<Vec<PoolStats>, PgError> {
    let rows = admin_rows(admin, "SHOW POOLS").await?;
    let int = |r: &SimpleQueryRow, name: &str| -> i64 {
        r.get(name).and_then(|v| v.parse().ok()).unwrap_or(0)
    };
    let text = |r: &SimpleQueryRow, name: &str| r.get(name).unwrap_or_default().to_string();
    Ok(rows
        .iter()
        .map(|r| PoolStats {
            database: text(r, "database"),
            user: text(r, "user"),
            clients_active: int(r, "cl_active"),
            clients_waiting: int(r, "cl_waiting"),
            servers_active: int(r, "sv_active"),
            servers_idle: int(r, "sv_idle"),
            servers_used: int(r, "sv_used"),
            max_wait_secs: int(r, "maxwait") as f64 + int(r, "maxwait_us") as f64 / 1e6,
            pool_mode: text(r, "pool_mode"),
        })
        .filter(|p| p.database != "pgbouncer")
        .collect())
}

/// PgBouncer's setting `name` (`SHOW CONFIG`), None when it has no such setting.
pub async fn pooler_setting(admin: &Client, name: &str) -> Result<Option<String>, PgError> {
    let rows = admin_rows(admin, "SHOW CONFIG").await?;
    Ok(rows
        .iter()
        .find(|r| r.get("key") == Some(name))
        .and_then(|r| r.get("value").map(str::to_string)))
}

/// PgBouncer's version (`SHOW VERSION`: `PgBouncer 1.18.0`).
pub async fn pooler_version(admin: &Client) -> Result<String, PgError> {
    let rows = admin_rows(admin, "SHOW VERSION").await?;
    Ok(rows
        .first()
        .and_then(|r| r.get(0))
        .unwrap_or_default()
        .to_string())
}

/// The rows of an admin console command (the console speaks the simple protocol only).
async fn admin_rows(admin: &Client, command: &str) -> Result<Vec<SimpleQueryRow>, PgError> {
    let messages = admin
        .simple_query(command)
        .await
        .map_err(PgError::query(format!("asking PgBouncer `{command}`")))?;
    Ok(messages
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(row),
            _ => None,
        })
        .collect())
}

/// The worst replay lag among the standbys streaming from this server (run on the
/// primary; through a transaction pooler too, it is one query): None without a standby.
/// A standby whose replay is stuck shows a growing `replay_lag` as long as it reports
/// (PostgreSQL interpolates it); one that has replayed everything counts as 0.
pub async fn max_replica_lag(client: &Client) -> Result<Option<(String, ReplicaLag)>, PgError> {
    let senders = wal_senders(client).await?;
    Ok(senders
        .iter()
        .filter_map(|s| ReplicaLag::of(s, None).map(|l| (s.application_name.clone(), l)))
        .max_by(|(_, a), (_, b)| {
            let key = |l: &ReplicaLag| (l.seconds.unwrap_or(0.0), l.bytes);
            key(a)
                .partial_cmp(&key(b))
                .unwrap_or(std::cmp::Ordering::Equal)
        }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_is_zero_seconds_once_everything_is_replayed() {
        let sender = |bytes, lag| WalSender {
            application_name: "pgcalm_replica".into(),
            state: "streaming".into(),
            lag_bytes: bytes,
            replay_lag_secs: lag,
        };
        let idle_standby = StandbyReplay {
            in_recovery: true,
            replayed_all_received: true,
            last_replay_age_secs: Some(3600.0),
        };
        // Caught up: an idle primary's hour-old last commit is no lag.
        let caught_up = ReplicaLag::of(&sender(Some(0), None), Some(&idle_standby)).unwrap();
        assert_eq!(caught_up.seconds, Some(0.0));
        // Behind: the primary's measure first, the standby's replay age otherwise.
        let behind = ReplicaLag::of(&sender(Some(8192), Some(0.25)), Some(&idle_standby));
        assert_eq!(behind.unwrap().seconds, Some(0.25));
        let unmeasured = ReplicaLag::of(&sender(Some(8192), None), Some(&idle_standby));
        assert_eq!(unmeasured.unwrap().seconds, Some(3600.0));
        assert_eq!(ReplicaLag::of(&sender(None, None), None), None);
    }
}
