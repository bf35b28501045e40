//! The safety policy: timeouts per statement, lock-timeout retries with jittered
//! exponential backoff, and how long to wait for another runner.

use std::time::Duration;

use serde::Serialize;

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
        }
    }
}

/// One `SET` the runner sends before a statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Setting {
    /// GUC name.
    pub name: &'static str,
    /// Value as SQL literal text (`'2000ms'`, `0`, `DEFAULT`).
    pub value: String,
}

impl Policy {
    /// The settings a statement runs with. The runner and `sqlmigrate` both use this, so
    /// what is printed is what is sent.
    pub fn settings_for(&self, kind: &StatementKind) -> Vec<Setting> {
        let statement_timeout = if kind.share_update_exclusive_only {
            "0".to_string()
        } else {
            match self.statement_timeout {
                Some(d) => format!("'{}ms'", d.as_millis()),
                None => "DEFAULT".to_string(),
            }
        };
        let lock_timeout = match self.concurrent_lock_timeout {
            Some(d) if kind.share_update_exclusive_only => d,
            _ => self.lock_timeout,
        };
        vec![
            Setting {
                name: "lock_timeout",
                value: format!("'{}ms'", lock_timeout.as_millis()),
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
        .map(|s| format!("SET {local}{} = {}", s.name, s.value))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Parses `2s`, `500ms`, `1m`, `1.5s`, `0` (seconds when there is no unit).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (examples: 2s, 500ms, 1m)"))?;
    let secs = match unit.trim() {
        "" | "s" | "sec" | "secs" => value,
        "ms" => value / 1000.0,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{text}` (use ms, s, m or h)"
            ));
        }
    };
    Ok(Duration::from_secs_f64(secs))
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
    fn parses_durations() {
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1m").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("2 parsecs").is_err());
    }

    #[test]
    fn concurrent_lock_timeout_applies_only_to_share_update_exclusive_statements() {
        let sue = StatementKind {
            share_update_exclusive_only: true,
            ..StatementKind::default()
        };
        let other = StatementKind::default();
        let lock = |p: &Policy, k: &StatementKind| p.settings_for(k)[0].value.clone();
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
