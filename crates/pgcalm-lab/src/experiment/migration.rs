//! Migrations through pgcalm's runner: the risky and rollback policies, a migration
//! recorded statement by statement (timings, lock-timeout retries), and when it held
//! locks that block the app (the lock table's verdict on the file it ran).

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pgcalm_migrate::{Direction, Event, Goal, Policy};

use super::{Lab, LabEvent};
use crate::results::{Form, MigrationRun, RunClock, StatementRun, duration_ms};
use crate::verdict::{self, LockHold};

/// The policy of the risky forms: the way Django runs a migration (one transaction, no
/// lock_timeout, no retries), with the runner's lint refusal lifted (`allow_risky`).
/// The statements still go through pgcalm's runner, so they are journaled and observed
/// like the safe ones.
pub(crate) fn risky_policy() -> Policy {
    Policy {
        lock_timeout: Duration::ZERO,
        max_retries: 0,
        allow_risky: true,
        ..Policy::default()
    }
}

/// The policy of rollbacks and clean-ups: default timeouts, patient retries; risky
/// statements allowed (a risky form's down section is as risky as its up, and the lab
/// runs it with the probe off).
pub(super) fn rollback_policy() -> Policy {
    Policy {
        max_retries: 30,
        allow_risky: true,
        ..Policy::default()
    }
}

impl Lab {
    /// Migrates `form` to `target` (`0001_<name>` or `zero`) through the runner and
    /// records what it did. `report` forwards the runner's events for progress.
    pub(super) async fn migrate(
        &self,
        dir: &Path,
        form: Form,
        target: &str,
        policy: Policy,
        report: bool,
    ) -> MigrationRun {
        let recorder = Arc::new(Mutex::new(Recorder::default()));
        let rec = recorder.clone();
        let sink = self.on_event.clone();
        let clock = self.clock;
        let lock_timeout_ms = Some(policy.lock_timeout.as_millis() as u64).filter(|ms| *ms > 0);
        let runner = self.runner(dir, policy).on_event(move |e: &Event| {
            rec.lock()
                .expect("recorder lock")
                .record(e, &clock, lock_timeout_ms);
            if report {
                sink(LabEvent::Migration(Box::new(e.clone())));
            }
        });
        let started = Instant::now();
        let result = runner
            .migrate(&Goal::To {
                app: form.as_str().into(),
                target: target.into(),
            })
            .await;
        let ended = Instant::now();
        let rec = std::mem::take(&mut *recorder.lock().expect("recorder lock"));
        MigrationRun {
            migration: format!("{}:{}", form.as_str(), target),
            started: self.clock.moment(started),
            ended: self.clock.moment(ended),
            wall_ms: duration_ms(ended - started),
            succeeded: result.is_ok(),
            error: result.err().map(|e| e.to_string()),
            retries: rec.retries,
            statements: rec.statements,
        }
    }
}

/// When the migration held locks that block the app's reads or writes: its statements'
/// timings, judged by the lock table (`pgcalm_migrate::statement_verdicts`, the one the
/// runner's `--plan` uses) for the file it ran.
pub(super) fn lock_holds_of(dir: &Path, form: Form, run: &MigrationRun) -> Vec<LockHold> {
    let Ok(set) = pgcalm_migrate::MigrationSet::load(dir) else {
        return Vec::new();
    };
    let Some(file) = set.apps.get(form.as_str()).and_then(|files| files.first()) else {
        return Vec::new();
    };
    let Some(section) = file.section(Direction::Up) else {
        return Vec::new();
    };
    let verdicts = pgcalm_migrate::statement_verdicts(
        file,
        Direction::Up,
        0,
        &pgcalm_lint::LintOptions::default(),
    );
    verdict::lock_holds(&run.statements, section.transaction, |line| {
        verdicts
            .iter()
            .find(|v| v.line == line)
            .map(|v| {
                let b = v.locks.blocks();
                (b.reads, b.writes)
            })
            .unwrap_or((false, false))
    })
}

/// Collects statements and retries from the runner's events.
#[derive(Default)]
struct Recorder {
    statements: Vec<StatementRun>,
    /// When the statement in flight (the last one) was sent.
    open_since: Option<Instant>,
    retries: u32,
}

impl Recorder {
    fn record(&mut self, e: &Event, clock: &RunClock, lock_timeout_ms: Option<u64>) {
        match e {
            Event::StatementStarted { statement, .. } => {
                let now = Instant::now();
                self.statements.push(StatementRun {
                    sql: statement.summary.clone(),
                    line: Some(statement.line),
                    start_ms: clock.rel_ms(now),
                    duration_ms: 0.0,
                    lock_timeout_ms,
                    error: None,
                });
                self.open_since = Some(now);
            }
            Event::StatementFinished { duration, .. } => {
                if self.open_since.take().is_some()
                    && let Some(run) = self.statements.last_mut()
                {
                    run.duration_ms = duration_ms(*duration);
                }
            }
            Event::LockTimeoutRetry { .. } => {
                self.retries += 1;
                if let Some(at) = self.open_since.take()
                    && let Some(run) = self.statements.last_mut()
                {
                    run.duration_ms = duration_ms(at.elapsed());
                    run.error = Some("canceling statement due to lock timeout".into());
                }
            }
            _ => {}
        }
    }
}
