//! The lab's database monitor: a [`DatabaseSnapshot`] every 250 ms on its own
//! connection while a form runs, kept for the verdict (who waited on whom) and turned
//! into the results' lock waits and index build samples.

use std::time::Duration;

use pgcalm_pg::catalog::{DatabaseMonitor, DatabaseSnapshot};
use pgcalm_pg::{PgError, Target};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::app::APP_NAME;
use crate::results::{EndpointRole, IndexBuildSample, LockWait, RunClock};

/// Time between two snapshots.
pub(crate) const SAMPLE_INTERVAL: Duration = Duration::from_millis(250);

/// `application_name` of the session the lab holds open in lock scenarios.
pub(crate) const BLOCKER_APP: &str = "pgcalm lab (blocker)";

/// A monitor sampling in the background.
pub(crate) struct RunningMonitor {
    cancel: CancellationToken,
    handle: JoinHandle<Vec<DatabaseSnapshot>>,
}

impl RunningMonitor {
    /// Connects and starts sampling every [`SAMPLE_INTERVAL`]; `on_snapshot` sees each
    /// sample as it is taken (progress display).
    pub(crate) async fn start(
        target: &Target,
        on_snapshot: impl Fn(&DatabaseSnapshot) + Send + 'static,
    ) -> Result<Self, PgError> {
        let client = target
            .with_application_name("pgcalm lab (monitor)")
            .connect()
            .await?;
        let monitor = DatabaseMonitor::prepare(&client).await?;
        let cancel = CancellationToken::new();
        let stop = cancel.clone();
        let handle = tokio::spawn(async move {
            let mut snapshots = Vec::new();
            let mut ticker = tokio::time::interval(SAMPLE_INTERVAL);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = ticker.tick() => {
                        // Best effort: a failed sample is a gap in the record, not a failed run.
                        if let Ok(s) = monitor.snapshot(&client).await {
                            on_snapshot(&s);
                            snapshots.push(s);
                        }
                    }
                }
            }
            snapshots
        });
        Ok(RunningMonitor { cancel, handle })
    }

    /// Stops sampling and returns every snapshot taken.
    pub(crate) async fn stop(self) -> Vec<DatabaseSnapshot> {
        self.cancel.cancel();
        self.handle.await.unwrap_or_default()
    }
}

/// What a demo API query does, from its text (the app's SQL is fixed: `api.rs`).
pub(crate) fn role_of_query(query: &str) -> Option<EndpointRole> {
    let q = query.trim_start().to_ascii_uppercase();
    if q.starts_with("INSERT") {
        Some(EndpointRole::Write)
    } else if q.starts_with("SELECT") && q.contains("WHERE EMAIL") {
        Some(EndpointRole::Lookup)
    } else if q.starts_with("SELECT") && q.contains("LARGE_EMAIL") {
        Some(EndpointRole::Read)
    } else {
        None
    }
}

/// Every lock wait seen, for the results.
pub(crate) fn lock_waits(snapshots: &[DatabaseSnapshot], clock: &RunClock) -> Vec<LockWait> {
    snapshots
        .iter()
        .flat_map(|s| {
            s.lock_waits.iter().map(move |w| LockWait {
                at_ms: clock.rel_ms_unix(s.taken_at_ms),
                waiter_pid: w.pid,
                waiter_app: w.application_name.clone(),
                mode: w.mode.clone(),
                relation: w.relation.clone(),
                blocker_pids: w.blocked_by.clone(),
                waited_ms: w.waiting_secs.map(|s| s * 1000.0),
                query: w.query.clone(),
            })
        })
        .collect()
}

/// How many of `waits` (the results' lock waits) are the demo API's queries of `role`.
pub(crate) fn lock_waits_of(waits: &[LockWait], role: EndpointRole) -> u64 {
    waits
        .iter()
        .filter(|w| {
            w.waiter_app == APP_NAME && w.query.as_deref().and_then(role_of_query) == Some(role)
        })
        .count() as u64
}

/// Every index build observation, for the results.
pub(crate) fn index_builds(
    snapshots: &[DatabaseSnapshot],
    clock: &RunClock,
) -> Vec<IndexBuildSample> {
    snapshots
        .iter()
        .flat_map(|s| {
            s.index_builds.iter().map(move |b| {
                let counter = b.counter();
                IndexBuildSample {
                    at_ms: clock.rel_ms_unix(s.taken_at_ms),
                    index: b.index.clone(),
                    command: b.command.clone(),
                    phase: b.phase.clone(),
                    done: counter.map(|c| c.0),
                    total: counter.map(|c| c.1),
                    unit: counter.map(|c| c.2.to_string()),
                }
            })
        })
        .collect()
}

/// One observation of an app request waiting on the migration (or the lab's blocker).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AppWait {
    /// Which kind of request waited.
    pub role: EndpointRole,
    /// The lock mode it wanted.
    pub mode: String,
    /// How long it had waited when seen, in seconds.
    pub waited_secs: f64,
    /// Whether the session it waited on held its lock (true) or was itself still
    /// queued for one (false: a lock request ahead of it in the queue).
    pub holder_granted: bool,
    /// Whose session it waited on.
    pub on: WaitedOn,
}

/// The session an app request waited on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WaitedOn {
    /// The runner's session sending the migration (its `application_name` is the
    /// runner's: [`pgcalm_migrate::is_runner_session`]).
    Migration,
    /// The session the lab holds open in lock scenarios ([`BLOCKER_APP`]).
    Blocker,
}

/// The demo API's requests seen waiting on the migration's session or on the lab's
/// blocker, classified by role.
pub(crate) fn app_waits(snapshots: &[DatabaseSnapshot]) -> Vec<AppWait> {
    let mut out = Vec::new();
    for s in snapshots {
        let app_of = |pid: i32| {
            s.sessions
                .iter()
                .find(|a| a.pid == pid)
                .map(|a| (a.application_name.as_str(), a.wait_event_type.as_deref()))
        };
        for w in &s.lock_waits {
            if w.application_name != APP_NAME {
                continue;
            }
            let Some(role) = w.query.as_deref().and_then(role_of_query) else {
                continue;
            };
            for &pid in &w.blocked_by {
                let Some((app, holder_waiting)) = app_of(pid) else {
                    continue;
                };
                let on = match app {
                    BLOCKER_APP => WaitedOn::Blocker,
                    app if pgcalm_migrate::is_runner_session(app) => WaitedOn::Migration,
                    _ => continue,
                };
                out.push(AppWait {
                    role,
                    mode: w.mode.clone(),
                    waited_secs: w.waiting_secs.unwrap_or(0.0),
                    holder_granted: holder_waiting != Some("Lock"),
                    on,
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_apps_queries_are_classified_by_role() {
        let q = |s| role_of_query(s);
        assert_eq!(
            q("INSERT INTO large_email (name, email) VALUES ($1, $2) RETURNING id, name, email"),
            Some(EndpointRole::Write)
        );
        assert_eq!(
            q("SELECT id, name, email FROM large_email ORDER BY id LIMIT 100"),
            Some(EndpointRole::Read)
        );
        assert_eq!(
            q("SELECT id, name, email FROM large_email WHERE email = $1 ORDER BY id LIMIT 100"),
            Some(EndpointRole::Lookup)
        );
        assert_eq!(q("SELECT 1"), None);
    }

    #[test]
    fn lock_waits_are_counted_per_role_of_the_demo_apis_queries_only() {
        let wait = |app: &str, query: &str| LockWait {
            at_ms: 0.0,
            waiter_pid: 1,
            waiter_app: app.into(),
            mode: "RowExclusiveLock".into(),
            relation: Some("large_email".into()),
            blocker_pids: vec![2],
            waited_ms: None,
            query: Some(query.into()),
        };
        let insert = "INSERT INTO large_email (name, email) VALUES ($1, $2)";
        let waits = [
            wait(APP_NAME, insert),
            wait(APP_NAME, insert),
            wait(APP_NAME, "SELECT id FROM large_email ORDER BY id LIMIT 100"),
            wait("psql", insert),
        ];
        assert_eq!(lock_waits_of(&waits, EndpointRole::Write), 2);
        assert_eq!(lock_waits_of(&waits, EndpointRole::Read), 1);
        assert_eq!(lock_waits_of(&waits, EndpointRole::Lookup), 0);
    }
}
