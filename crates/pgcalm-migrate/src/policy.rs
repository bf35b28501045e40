//! The safety policy: timeouts per statement, lock-timeout retries with jittered
//! exponential backoff, and how long to wait for another runner.

use std::time::Duration;

use serde::Serialize;

use crate::duration::human;
use crate::statement::StatementKind;

/// How the runner protects the application while it changes the schema.
#[derive(Debug, Clone, Serialize)]
pub struct Policy {
    /// `lock_timeout` for every statement: the longest the application can be queued
    /// behind a lock request of the migration. Default 2s.
    pub lock_timeout: Duration,
    /// `lock_timeout` for statements that only take SHARE UPDATE EXCLUSIVE
    /// (CONCURRENTLY builds and drops, VALIDATE CONSTRAINT). Such a request, even queued,
    /// blocks neither reads nor writes, and a CONCURRENTLY build also waits (as lock
    /// waits) for every older transaction in the database; a longer value here avoids
    /// retry storms behind a long transaction elsewhere. `None`: same as `lock_timeout`.
    pub concurrent_lock_timeout: Option<Duration>,
    /// `statement_timeout` for statements that take stronger locks than SHARE UPDATE
    /// EXCLUSIVE. `None` keeps the server's setting. Statements that only take SHARE
    /// UPDATE EXCLUSIVE always run with `statement_timeout = 0`.
    pub statement_timeout: Option<Duration>,
    /// Lock-timeout retries per statement (or per transactional migration) before giving
    /// up. Default 10.
    pub max_retries: u32,
    /// First backoff delay. Default 500ms; doubles each retry.
    pub retry_initial: Duration,
    /// Largest backoff delay. Default 30s.
    pub retry_max: Duration,
    /// How long to wait for another runner's lock; `None` waits as long as it takes.
    pub wait_for_lock: Option<Duration>,
    /// `client_connection_check_interval` of the runner's session (PostgreSQL 14 and
    /// later): how soon the server notices a runner that died (`kill -9`, a lost host)
    /// while a statement runs, and ends the statement and its locks instead of running it
    /// to its end as an orphan. Default 1s; zero turns the check off; `None` keeps the
    /// server's setting.
    pub client_connection_check_interval: Option<Duration>,
    /// Run migrations that lint finds risky (`--allow-risky`). Off by default: the
    /// runner refuses them with the findings before anything runs
    /// ([`MigrateError::RiskyMigration`](crate::MigrateError::RiskyMigration)); a
    /// statement with `-- pgcalm:ignore RULE reason` above it is let through.
    pub allow_risky: bool,
    /// End the sessions a statement waits for that have sat idle in a transaction for
    /// longer than this (`--cancel-idle-blockers 30s`): a forgotten `BEGIN` in a shell,
    /// an application that leaks transactions. Never an active session, never
    /// autovacuum. The session is terminated (`pg_terminate_backend`: PostgreSQL ignores a
    /// cancel request while a session is idle, so its transaction and locks would stay);
    /// each one is reported ([`Event::BlockerCancelled`](crate::Event::BlockerCancelled))
    /// and journaled (`pgcalm.blocker_cancellations`). `None` (the default): nothing is
    /// ended.
    pub cancel_idle_blockers: Option<Duration>,
    /// Before each batch of a backfill (`-- pgcalm:backfill`), wait while a replica's
    /// replay lag, read on the primary (`pg_stat_replication`), is above this
    /// (`--max-replica-lag`). Default 1s; `None` (or zero) never waits.
    pub max_replica_lag: Option<Duration>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            lock_timeout: Duration::from_secs(2),
            concurrent_lock_timeout: None,
            statement_timeout: None,
            max_retries: 10,
            retry_initial: Duration::from_millis(500),
            retry_max: Duration::from_secs(30),
            wait_for_lock: None,
            client_connection_check_interval: Some(Duration::from_secs(1)),
            allow_risky: false,
            cancel_idle_blockers: None,
            max_replica_lag: Some(Duration::from_secs(1)),
        }
    }
}

/// One `SET` the runner sends before a statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Setting {
    /// GUC name.
    pub name: &'static str,
    /// Its value (serialized as the SQL literal the runner sends: `'2000ms'`, `0`,
    /// `DEFAULT`).
    pub value: SettingValue,
}

/// The value of a timeout the runner sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettingValue {
    /// A time limit (zero: none, as PostgreSQL reads `'0ms'`).
    Duration(Duration),
    /// No limit at all: `0` (statements that only take SHARE UPDATE EXCLUSIVE).
    NoLimit,
    /// The server's own setting: `DEFAULT`.
    ServerDefault,
}

impl SettingValue {
    /// The SQL literal after `SET name =`: `'2000ms'`, `0`, `DEFAULT`.
    pub fn sql(&self) -> String {
        match self {
            SettingValue::Duration(d) => format!("'{}ms'", d.as_millis()),
            SettingValue::NoLimit => "0".to_string(),
            SettingValue::ServerDefault => "DEFAULT".to_string(),
        }
    }
}

/// For people: `2s`, `250ms`, `0`, `DEFAULT`.
impl std::fmt::Display for SettingValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SettingValue::Duration(d) => f.write_str(&human(*d)),
            SettingValue::NoLimit => f.write_str("0"),
            SettingValue::ServerDefault => f.write_str("DEFAULT"),
        }
    }
}

impl Serialize for SettingValue {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.sql())
    }
}

impl Policy {
    /// The settings a statement runs with. The runner and `sqlmigrate` both use this, so
    /// what is printed is what is sent.
    pub fn settings_for(&self, kind: &StatementKind) -> Vec<Setting> {
        let statement_timeout = if kind.share_update_exclusive_only {
            SettingValue::NoLimit
        } else {
            match self.statement_timeout {
                Some(d) => SettingValue::Duration(d),
                None => SettingValue::ServerDefault,
            }
        };
        let lock_timeout = match self.concurrent_lock_timeout {
            Some(d) if kind.share_update_exclusive_only => d,
            _ => self.lock_timeout,
        };
        vec![
            Setting {
                name: "lock_timeout",
                value: SettingValue::Duration(lock_timeout),
            },
            Setting {
                name: "statement_timeout",
                value: statement_timeout,
            },
        ]
    }

    /// The delay before retry number `attempt` (1-based): exponential from
    /// `retry_initial`, capped at `retry_max`, with "equal jitter" (half fixed, half
    /// random) so that several runners or app retries do not move in lockstep.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .retry_initial
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
            .min(self.retry_max);
        let half = exp / 2;
        let jitter = rand::random_range(0.0..=1.0f64);
        half + half.mul_f64(jitter)
    }
}

/// Renders `SET name = value` statements (with `LOCAL` inside a transaction).
pub fn set_sql(settings: &[Setting], local: bool) -> String {
    let local = if local { "LOCAL " } else { "" };
    settings
        .iter()
        .map(|s| format!("SET {local}{} = {}", s.name, s.value.sql()))
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let p = Policy {
            retry_initial: Duration::from_millis(100),
            retry_max: Duration::from_millis(1000),
            ..Policy::default()
        };
        for _ in 0..50 {
            let d1 = p.backoff(1);
            assert!(
                d1 >= Duration::from_millis(50) && d1 <= Duration::from_millis(100),
                "{d1:?}"
            );
            let d3 = p.backoff(3);
            assert!(
                d3 >= Duration::from_millis(200) && d3 <= Duration::from_millis(400),
                "{d3:?}"
            );
            let d20 = p.backoff(20);
            assert!(
                d20 >= Duration::from_millis(500) && d20 <= Duration::from_millis(1000),
                "{d20:?}"
            );
        }
        let samples: std::collections::HashSet<_> = (0..20).map(|_| p.backoff(4)).collect();
        assert!(samples.len() > 1, "backoff must be jittered");
    }

    #[test]
    fn share_update_exclusive_statements_get_no_statement_timeout() {
        let p = Policy {
            statement_timeout: Some(Duration::from_secs(60)),
            ..Policy::default()
        };
        let sue = StatementKind {
            share_update_exclusive_only: true,
            ..StatementKind::default()
        };
        assert_eq!(
            set_sql(&p.settings_for(&sue), false),
            "SET lock_timeout = '2000ms'; SET statement_timeout = 0"
        );
        assert_eq!(
            set_sql(&p.settings_for(&StatementKind::default()), true),
            "SET LOCAL lock_timeout = '2000ms'; SET LOCAL statement_timeout = '60000ms'"
        );
    }

    #[test]
    fn settings_show_for_people_and_as_sql() {
        let p = Policy {
            concurrent_lock_timeout: Some(Duration::from_secs(600)),
            ..Policy::default()
        };
        let sue = StatementKind {
            share_update_exclusive_only: true,
            ..StatementKind::default()
        };
        let shown = |k: &StatementKind| {
            p.settings_for(k)
                .iter()
                .map(|s| format!("{} {}", s.name, s.value))
                .collect::<Vec<_>>()
                .join(", ")
        };
        assert_eq!(shown(&sue), "lock_timeout 600s, statement_timeout 0");
        assert_eq!(
            shown(&StatementKind::default()),
            "lock_timeout 2s, statement_timeout DEFAULT"
        );
        let sql: Vec<String> = p.settings_for(&sue).iter().map(|s| s.value.sql()).collect();
        assert_eq!(sql, ["'600000ms'", "0"]);
    }

    #[test]
    fn concurrent_lock_timeout_applies_only_to_share_update_exclusive_statements() {
        let sue = StatementKind {
            share_update_exclusive_only: true,
            ..StatementKind::default()
        };
        let other = StatementKind::default();
        let lock = |p: &Policy, k: &StatementKind| p.settings_for(k)[0].value.sql();
        let default = Policy::default();
        assert_eq!(
            lock(&default, &sue),
            "'2000ms'",
            "unset: same as lock_timeout"
        );
        let p = Policy {
            concurrent_lock_timeout: Some(Duration::from_secs(600)),
            ..Policy::default()
        };
        assert_eq!(lock(&p, &sue), "'600000ms'");
        assert_eq!(lock(&p, &other), "'2000ms'");
    }
}
