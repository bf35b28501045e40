//! The measured window of one run (steps 2 to 5): the demo API, the monitor and the
//! probes up, a baseline, the scenario's blocking session and the migration, a tail of
//! one probe timeout; then everything stopped, with what the probe and the monitor saw.

use std::time::{Duration, Instant};

use pgcalm_pg::catalog::DatabaseSnapshot;
use pgcalm_probe::{Probe, ProbeConfig, ProbeTarget, StopWhen};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::migration::risky_policy;
use super::plan::{interval_of, path_of};
use super::run::Run;
use super::{LOOKUP_INTERVAL, Lab, LabError, LabEvent, LabStep, PROBE_INTERVAL, PROBE_TIMEOUT};
use crate::app::{self, RunningApp};
use crate::monitor::{BLOCKER_APP, RunningMonitor};
use crate::results::{EndpointRole, Form, MigrationRun, RecordedSample, TimeSpan, TopologySample};
use crate::scenario::Blocker;
use crate::topology::RunningTopologyMonitor;
use crate::verdict::Endpoint;

/// What the probe and the monitor recorded of one run, and the migration they watched.
pub(super) struct Measured {
    /// Probe on, no migration.
    pub(super) baseline: TimeSpan,
    /// The probe's whole window: baseline, migration, tail.
    pub(super) probe_window: TimeSpan,
    /// Every probe request of the window, by send time.
    pub(super) samples: Vec<RecordedSample>,
    /// Every database snapshot the monitor took.
    pub(super) snapshots: Vec<DatabaseSnapshot>,
    /// The replica's and the pooler's samples, when the run had them.
    pub(super) topology_samples: Option<Vec<TopologySample>>,
    /// The migration under the probe.
    pub(super) migration: MigrationRun,
}

impl Lab {
    /// Steps 2 to 5 of `run`: starts the app, the monitor and the probes, waits out the
    /// baseline, starts the blocker and migrates, waits out the tail, stops everything.
    pub(super) async fn measure(
        &self,
        run: Run<'_>,
        eps: &[Endpoint],
    ) -> Result<Measured, LabError> {
        let topology = &self.opts.topology;
        // The app through the pooler when there is one; everything else direct.
        let app_target = match &topology.pooler {
            Some(p) => p.target.with_dbname(self.target.dbname()),
            None => self.target.clone(),
        };
        let running_app = RunningApp::start(
            &app_target,
            run.topology,
            app::app_pool_size(topology),
            topology.pooler.is_some(),
        )
        .await?;
        let monitor = self.start_monitor().await?;
        let parts_monitor =
            RunningTopologyMonitor::start(&self.target, topology, self.target.dbname(), self.clock)
                .await?;
        let probe_stop = CancellationToken::new();
        let probe_start_ms = self.clock.rel_ms(Instant::now());
        let probes = self
            .start_probes(&running_app, eps, probe_stop.clone())
            .await?;

        self.step(LabStep::Baseline);
        let baseline_start = self.clock.rel_ms(Instant::now());
        tokio::time::sleep(self.opts.baseline).await;
        let baseline = TimeSpan {
            start_ms: baseline_start,
            end_ms: self.clock.rel_ms(Instant::now()),
        };

        let blocker = match run.scenario.blocker {
            Some(b) => Some(self.start_blocker(b).await?),
            None => None,
        };
        self.step(LabStep::Migrating);
        let policy = match run.form {
            Form::Risky => risky_policy(),
            Form::Safe => self.opts.policy.clone(),
        };
        let migration = self
            .migrate(
                run.dir,
                run.form,
                &run.scenario.migration_name(),
                policy,
                true,
            )
            .await;
        self.step(LabStep::Tail);
        tokio::time::sleep(self.opts.tail).await;
        probe_stop.cancel();
        let mut samples: Vec<RecordedSample> = Vec::new();
        for p in probes {
            samples.extend(p.await.unwrap_or_default());
        }
        samples.sort_by(|a, b| a.at_ms.total_cmp(&b.at_ms));
        let probe_window = TimeSpan {
            start_ms: probe_start_ms,
            end_ms: self.clock.rel_ms(Instant::now()),
        };
        let snapshots = monitor.stop().await;
        let topology_samples = match parts_monitor {
            Some(m) => Some(m.stop().await),
            None => None,
        };
        if let Some(b) = blocker {
            let _ = b.await;
        }
        running_app.stop().await;
        Ok(Measured {
            baseline,
            probe_window,
            samples,
            snapshots,
            topology_samples,
            migration,
        })
    }

    /// The monitor, reporting each snapshot's lock waiters and first index build as
    /// progress.
    async fn start_monitor(&self) -> Result<RunningMonitor, LabError> {
        let sink = self.on_event.clone();
        let monitor = RunningMonitor::start(&self.target, move |s: &DatabaseSnapshot| {
            sink(LabEvent::Snapshot {
                lock_waiters: s.lock_waits.len(),
                index_build: s.index_builds.first().map(|b| {
                    (
                        b.phase.clone(),
                        // counter() only reports a phase whose total is known (> 0).
                        b.counter().map(|(d, t, _)| d as f64 * 100.0 / t as f64),
                    )
                }),
            })
        })
        .await?;
        Ok(monitor)
    }

    /// Reads and writes every 200 ms, lookups every 2 s; each probe collects its
    /// samples until `stop`.
    async fn start_probes(
        &self,
        app: &RunningApp,
        eps: &[Endpoint],
        stop: CancellationToken,
    ) -> Result<Vec<JoinHandle<Vec<RecordedSample>>>, LabError> {
        let mut handles = Vec::new();
        for interval in [PROBE_INTERVAL, LOOKUP_INTERVAL] {
            let mine: Vec<&Endpoint> = eps
                .iter()
                .filter(|e| interval_of(e.role) == interval)
                .collect();
            let targets = mine
                .iter()
                .map(|e| {
                    let (method, path) = path_of(e.role);
                    ProbeTarget::parse(&format!(
                        "{}={method} {}{path}",
                        e.name,
                        app.base_url(e.role)
                    ))
                    .map_err(|e| LabError::Probe(e.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let roles: Vec<EndpointRole> = mine.iter().map(|e| e.role).collect();
            let mut config = ProbeConfig::new(targets);
            config.interval = interval;
            config.timeout = PROBE_TIMEOUT;
            let probe = Probe::new(config)
                .await
                .map_err(|e| LabError::Probe(e.to_string()))?;
            let sink = self.on_event.clone();
            let clock = self.clock;
            let stop = StopWhen {
                cancel: stop.clone(),
                ..StopWhen::default()
            };
            handles.push(tokio::spawn(async move {
                let mut samples = Vec::new();
                probe
                    .run(stop, |s| {
                        let role = roles[s.target_index];
                        sink(LabEvent::Probe {
                            role,
                            ok: s.is_ok(),
                            latency_ms: s.latency_ms,
                        });
                        samples.push(RecordedSample {
                            endpoint: s.target.clone(),
                            at_ms: clock.rel_ms_unix(s.started_at_ms),
                            latency_ms: s.latency_ms,
                            outcome: s.outcome,
                            status: s.status,
                            error: s.error,
                        });
                    })
                    .await;
                samples
            }));
        }
        Ok(handles)
    }

    /// Opens the scenario's blocking session and returns once it holds its lock; the
    /// task ends when the session has held it for [`LabOptions::blocker`].
    async fn start_blocker(&self, blocker: Blocker) -> Result<JoinHandle<()>, LabError> {
        let client = self.connect(BLOCKER_APP).await?;
        let secs = self.opts.blocker.as_secs_f64();
        let statements = blocker.sql(secs);
        let started = Instant::now();
        let hold = self.opts.blocker;
        let (held_tx, held_rx) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            match blocker {
                Blocker::SlowQuery => {
                    let query = client.batch_execute(&statements[0]);
                    tokio::pin!(query);
                    // The query takes its lock as soon as it starts; give it a moment.
                    tokio::select! {
                        _ = &mut query => {}
                        _ = tokio::time::sleep(Duration::from_millis(300)) => {
                            let _ = held_tx.send(());
                            let _ = query.await;
                        }
                    }
                }
                Blocker::OpenTransaction => {
                    for s in &statements {
                        let _ = client.batch_execute(s).await;
                    }
                    let _ = held_tx.send(());
                    tokio::time::sleep(hold.saturating_sub(started.elapsed())).await;
                    let _ = client.batch_execute("COMMIT").await;
                }
            }
        });
        let _ = held_rx.await;
        Ok(handle)
    }
}
