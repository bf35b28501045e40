//! What `pgcalm migrate` (and `up`'s start point) prints while the runner works:
//! Django's lines on stdout (`  Applying demoapp.0002_... OK (1.2s)`), a spinner or an
//! index build's progress bar on stderr when both are terminals, lock waits and retries
//! with who blocks, or one JSON object per event. SIGINT/SIGTERM cancel the run; a
//! cancelled run says what stayed applied and the command that resumes.

use std::future::Future;
use std::io::{IsTerminal, Write as _};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use pgcalm_migrate::{
    Cancellation, Direction, Event, MigrateError, Operation, Runner, describe_blocker,
    describe_queue, describe_session,
};
use pgcalm_pg::Target;
use pgcalm_pg::catalog::IndexBuildProgress;
use pgcalm_pg::catalog::Queued;
use tokio_util::sync::CancellationToken;

use crate::output::secs;
use crate::signals::{Interrupt, Interrupts};

/// Runs `work` on the runner with its events printed (Django-style text, or one JSON
/// object per event). SIGINT/SIGTERM cancel the run (the statement in flight is cancelled
/// on the server and rolled back); it then says what stayed applied and how to resume,
/// and exits 130 / 143. A second signal exits at once, without waiting.
pub(crate) async fn run_printed<T, F, Fut>(runner: Runner, json: bool, work: F) -> anyhow::Result<T>
where
    F: FnOnce(Runner) -> Fut,
    Fut: Future<Output = Result<T, MigrateError>>,
{
    let printer = Arc::new(Printer::new(json));
    let p = printer.clone();
    let cancel = CancellationToken::new();
    let (first_tx, mut first_rx) = tokio::sync::oneshot::channel();
    let mut interrupts = Interrupts::new();
    let watcher = tokio::spawn({
        let cancel = cancel.clone();
        async move {
            let first = interrupts.next().await;
            let _ = first_tx.send(first);
            cancel.cancel();
            let second = interrupts.next().await;
            eprintln!(
                "{} again: exiting without waiting for the cancelled statement to end; the server \
                 ends it when it notices the runner is gone (client_connection_check_interval)",
                second.name()
            );
            std::process::exit(first.exit_code().into());
        }
    });
    let runner = runner.on_event(move |e| p.handle(e)).with_cancel(cancel);
    let result = work(runner).await;
    watcher.abort();
    match result {
        Ok(done) => Ok(done),
        Err(MigrateError::Cancelled(c)) => {
            let signal = first_rx.try_recv().unwrap_or(Interrupt::Int);
            printer.end("CANCELLED");
            report_cancellation(&c, signal, json);
            Err(crate::output::Exit(signal.exit_code()).into())
        }
        Err(e) => {
            printer.end("FAILED");
            Err(e.into())
        }
    }
}

/// What a cancelled run did and how to resume: on stderr, or one JSON object on stdout.
fn report_cancellation(c: &Cancellation, signal: Interrupt, json: bool) {
    let resume = resume_command(std::env::args().skip(1));
    if json {
        let doc = serde_json::json!({
            "event": "cancelled",
            "signal": signal.name(),
            "cancellation": c,
            "resume": resume,
        });
        say!("{doc}");
        return;
    }
    let mut text = format!("cancelled ({}): {}", signal.name(), c.lines().join("\n"));
    text.push_str(&format!(
        "\n  the migration lock is released; resume with: {resume}"
    ));
    eprintln!("{text}");
}

/// The command that resumes a cancelled run: this one (`args` without the program),
/// shell-quoted, with the password of a `--database-url` or `--direct-url` masked.
fn resume_command(args: impl Iterator<Item = String>) -> String {
    let mut out = vec!["pgcalm".to_string()];
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        let flag = ["--database-url", "--direct-url"]
            .into_iter()
            .find(|f| arg == *f || arg.starts_with(&format!("{f}=")));
        let url = if let Some(flag) = flag {
            out.push(flag.into());
            match arg.strip_prefix(&format!("{flag}=")) {
                Some(url) => Some(url.to_string()),
                None => args.next(),
            }
        } else {
            out.push(shell_quote(&arg));
            continue;
        };
        if let Some(url) = url {
            let masked = Target::from_url(&url)
                .map(|t| t.masked_url())
                .unwrap_or_else(|_| "\"$DATABASE_URL\"".into());
            out.push(shell_quote(&masked));
        }
    }
    out.join(" ")
}

fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', "'\\''"))
    }
}

/// `statement 3 (migrations/app/0002_x.sql:7)`.
fn at(s: &pgcalm_migrate::StatementRef) -> String {
    format!("statement {} ({}:{})", s.number, s.path.display(), s.line)
}

fn operation_line(op: &Operation) -> String {
    match op {
        Operation::ApplyAll { apps } => format!("  Apply all migrations: {}", apps.join(", ")),
        Operation::Target { app, name } => {
            format!("  Target specific migration: {name}, from {app}")
        }
        Operation::UnapplyAll { app } => format!("  Unapply all migrations: {app}"),
    }
}

/// Renders runner events: Django's lines on stdout, a progress bar on stderr when it is
/// a terminal.
struct Printer {
    json: bool,
    tty: bool,
    state: Mutex<PrinterState>,
}

#[derive(Default)]
struct PrinterState {
    /// `  Applying demoapp.0002_...`
    label: String,
    /// Non-terminal: the label was printed without its newline.
    line_open: bool,
    bar: Option<ProgressBar>,
    started: Option<Instant>,
    /// (statement number, blocker pids) of the last lock wait printed: retries of the
    /// same statement blocked by the same sessions are reported by their retry line.
    last_wait: Option<(usize, Vec<i32>)>,
    /// The most sessions queued behind the running statement at once (by kind): a line
    /// when it ends (the progress line shows the queue now).
    queue_peak: Queued,
    /// Non-terminal: when the last backfill progress line was printed (one per 5s).
    backfill_line_at: Option<Instant>,
}

impl Printer {
    fn new(json: bool) -> Self {
        Printer {
            json,
            tty: std::io::stdout().is_terminal() && std::io::stderr().is_terminal(),
            state: Mutex::new(PrinterState::default()),
        }
    }

    /// Prints a full line, keeping the pending `Applying ...` line and bar intact.
    fn line(&self, st: &mut PrinterState, text: &str) {
        if st.line_open {
            say!();
            st.line_open = false;
        }
        match &st.bar {
            Some(bar) => bar.suspend(|| say!("{text}")),
            None => say!("{text}"),
        }
    }

    fn handle(&self, e: &Event) {
        if self.json {
            if let Ok(s) = serde_json::to_string(e) {
                say!("{s}");
            }
            return;
        }
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match e {
            Event::ThroughTransactionPooler { endpoint, evidence } => {
                self.line(
                    &mut st,
                    &format!(
                        "Through a transaction pooler at {endpoint} ({evidence}): the runner lock \
                         and timeouts are taken per transaction, with a lease in pgcalm.runner_lease"
                    ),
                );
            }
            Event::WaitingForLock { holder, lease } => {
                let who = match (holder, lease) {
                    (_, Some(l)) => format!(": the migration lease is held by {l}"),
                    (Some(h), None) => {
                        format!(": the migration lock is held by {}", describe_session(h))
                    }
                    (None, None) => String::new(),
                };
                self.line(
                    &mut st,
                    &format!("Waiting for another pgcalm migrate to finish{who}..."),
                );
            }
            Event::LockAcquired { waited } => {
                self.line(
                    &mut st,
                    &format!("Got the migration lock after {}", secs(*waited)),
                );
            }
            Event::Planned { operation, steps } => {
                self.line(&mut st, "Operations to perform:");
                self.line(&mut st, &operation_line(operation));
                self.line(&mut st, "Running migrations:");
                if steps.is_empty() {
                    self.line(&mut st, "  No migrations to apply.");
                }
            }
            Event::MigrationStarted {
                app,
                name,
                direction,
                total,
                resume_from,
                ..
            } => {
                let verb = match direction {
                    Direction::Up => "Applying",
                    Direction::Down => "Unapplying",
                };
                if *resume_from > 0 {
                    self.line(
                        &mut st,
                        &format!(
                            "  Resuming {app}.{name} at statement {} of {total}: statements 1-{resume_from} were completed by an interrupted run",
                            resume_from + 1
                        ),
                    );
                }
                st.label = format!("  {verb} {app}.{name}...");
                st.last_wait = None;
                st.queue_peak = Queued::default();
                st.started = Some(Instant::now());
                if self.tty {
                    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
                    bar.set_style(spinner_style());
                    bar.set_message(st.label.clone());
                    bar.enable_steady_tick(Duration::from_millis(120));
                    st.bar = Some(bar);
                } else {
                    let _ = write!(std::io::stdout(), "{}", st.label);
                    let _ = std::io::stdout().flush();
                    st.line_open = true;
                }
            }
            Event::StatementStarted { statement, attempt } => {
                if let Some(bar) = &st.bar
                    && statement.total > 1
                {
                    let retry = if *attempt > 1 {
                        format!(", attempt {attempt}")
                    } else {
                        String::new()
                    };
                    bar.set_message(format!(
                        "{} statement {}/{} (line {}{retry})",
                        st.label, statement.number, statement.total, statement.line
                    ));
                }
            }
            Event::StatementFinished { statement, .. } => {
                let peak = std::mem::take(&mut st.queue_peak);
                if !peak.is_empty() {
                    self.line(
                        &mut st,
                        &format!(
                            "    {} queued the application behind its lock: at most {}",
                            at(statement),
                            describe_queue(&peak)
                        ),
                    );
                }
            }
            Event::LockWait {
                statement,
                blockers,
            } => {
                let key = (
                    statement.number,
                    blockers.iter().map(|b| b.session.pid).collect(),
                );
                if st.last_wait.as_ref() == Some(&key) {
                    return;
                }
                st.last_wait = Some(key);
                let who: Vec<String> = blockers.iter().map(describe_blocker).collect();
                // Autovacuum is no blocker to fight: it yields (describe_blocker says so).
                let verb = if blockers.iter().all(|b| b.autovacuum) {
                    "waits for"
                } else {
                    "waits for a lock held by"
                };
                self.line(
                    &mut st,
                    &format!(
                        "    statement {} ({}:{}) {verb} {}",
                        statement.number,
                        statement.path.display(),
                        statement.line,
                        who.join(", ")
                    ),
                );
            }
            Event::LockQueue { statement, queued } => {
                st.queue_peak = Queued {
                    reads: st.queue_peak.reads.max(queued.reads),
                    writes: st.queue_peak.writes.max(queued.writes),
                    other: st.queue_peak.other.max(queued.other),
                };
                if let Some(bar) = &st.bar {
                    let mut message = st.label.clone();
                    if statement.total > 1 {
                        message.push_str(&format!(
                            " statement {}/{} (line {})",
                            statement.number, statement.total, statement.line
                        ));
                    }
                    if !queued.is_empty() {
                        message
                            .push_str(&format!("; queued behind it: {}", describe_queue(queued)));
                    }
                    bar.set_message(message);
                }
            }
            Event::BlockerCancelled {
                statement,
                blocker,
                idle_limit,
                terminated,
                error,
            } => {
                let what = if *terminated {
                    "ended".to_string()
                } else {
                    format!(
                        "could not end {}",
                        error.as_deref().unwrap_or("(no reason given)")
                    )
                };
                self.line(
                    &mut st,
                    &format!(
                        "    {what} {} (idle in its transaction over --cancel-idle-blockers {}), which blocked {}; recorded in pgcalm.blocker_cancellations",
                        describe_blocker(blocker),
                        secs(*idle_limit),
                        at(statement)
                    ),
                );
            }
            Event::LockTimeoutRetry {
                statement,
                retry,
                max_retries,
                delay,
                blockers,
                whole_transaction,
            } => {
                let who = if blockers.is_empty() {
                    String::new()
                } else {
                    format!(
                        ", blocked by {}",
                        blockers
                            .iter()
                            .map(describe_session)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                let what = if *whole_transaction {
                    "the migration transaction"
                } else {
                    "the statement"
                };
                self.line(
                    &mut st,
                    &format!(
                        "    lock_timeout at statement {} ({}:{}){who}; retrying {what} in {} (retry {retry}/{max_retries})",
                        statement.number,
                        statement.path.display(),
                        statement.line,
                        secs(*delay)
                    ),
                );
            }
            Event::Notice { statement, notice } => {
                let mut text = format!(
                    "    {} from statement {} ({}:{}: {}): {}",
                    notice.severity,
                    statement.number,
                    statement.path.display(),
                    statement.line,
                    statement.summary,
                    notice.message
                );
                if let Some(d) = &notice.detail {
                    text.push_str(&format!("\n      DETAIL: {d}"));
                }
                if let Some(h) = &notice.hint {
                    text.push_str(&format!("\n      HINT: {h}"));
                }
                self.line(&mut st, &text);
            }
            Event::IndexProgress { progress, .. } => {
                if let Some(bar) = &st.bar {
                    // The phase and its counter go in one string, set at once: a frame
                    // drawn between two updates never pairs one phase with another's
                    // counters.
                    bar.set_style(spinner_style_with_prefix());
                    bar.set_prefix(index_build_line(progress));
                }
            }
            Event::InvalidIndexFound {
                statement,
                index,
                table,
                cause,
            } => {
                self.line(
                    &mut st,
                    &format!(
                        "    found INVALID index {index} on {table} ({cause}); statement {} ({}:{}) rebuilds it: dropping it concurrently first",
                        statement.number,
                        statement.path.display(),
                        statement.line
                    ),
                );
            }
            Event::InvalidIndexDropped { index } => {
                self.line(&mut st, &format!("    dropped invalid index {index}"));
            }
            Event::Cancelling { statement } => {
                self.line(
                    &mut st,
                    &format!(
                        "    cancelling {}: cancel request sent, waiting for the server to end it",
                        at(statement)
                    ),
                );
            }
            Event::StatementRerun { statement, reason } => {
                self.line(
                    &mut st,
                    &format!(
                        "    {} was in flight when the last runner stopped: {reason}",
                        at(statement)
                    ),
                );
            }
            Event::StatementAlreadyDone { statement, reason } => {
                self.line(
                    &mut st,
                    &format!("    {} is already done: {reason}", at(statement)),
                );
            }
            Event::BackfillStarted {
                statement,
                table,
                key,
                total_estimate,
                resumed_rows,
                batch_size,
                max_replica_lag,
            } => {
                let resumed = if *resumed_rows > 0 {
                    format!(", resuming after {resumed_rows} rows an interrupted run committed")
                } else {
                    String::new()
                };
                let throttle = match max_replica_lag {
                    Some(l) => format!("waits while a replica lags more than {}", secs(*l)),
                    None => "replica lag not watched".to_string(),
                };
                st.backfill_line_at = None;
                self.line(
                    &mut st,
                    &format!(
                        "    {} backfills {table} in batches by ({}): about {total_estimate} rows, first batch {batch_size}, {throttle}{resumed}",
                        at(statement),
                        key.join(", ")
                    ),
                );
            }
            Event::BackfillProgress {
                rows_done,
                rows_updated,
                total_estimate,
                next_batch_size,
                rows_per_sec,
                eta,
                ..
            } => {
                let text = backfill_line(
                    *rows_done,
                    *rows_updated,
                    *total_estimate,
                    *rows_per_sec,
                    *eta,
                    *next_batch_size,
                );
                if let Some(bar) = &st.bar {
                    bar.set_style(spinner_style_with_prefix());
                    bar.set_prefix(text);
                } else if st
                    .backfill_line_at
                    .is_none_or(|t| t.elapsed() >= Duration::from_secs(5))
                {
                    st.backfill_line_at = Some(Instant::now());
                    self.line(&mut st, &format!("    {text}"));
                }
            }
            Event::ReplicaLagWait {
                replica,
                lag_secs,
                lag_bytes,
                limit,
                ..
            } => {
                self.line(
                    &mut st,
                    &format!(
                        "    waiting: replica {replica} is {lag_secs:.1}s behind ({lag_bytes} bytes to replay), above the {} limit",
                        secs(*limit)
                    ),
                );
            }
            Event::ReplicaLagCleared { waited, .. } => {
                self.line(
                    &mut st,
                    &format!(
                        "    the replica caught up after {}: the backfill goes on",
                        secs(*waited)
                    ),
                );
            }
            Event::BackfillFinished {
                statement,
                rows_done,
                rows_updated,
                batches,
                waited_for_replica,
            } => {
                self.line(
                    &mut st,
                    &format!(
                        "    {} backfilled: {rows_updated} rows updated of {rows_done} walked in {batches} batches; waited {} for replicas",
                        at(statement),
                        secs(*waited_for_replica)
                    ),
                );
            }
            Event::MigrationFinished { duration, .. } => {
                if let Some(bar) = st.bar.take() {
                    bar.finish_and_clear();
                }
                if st.line_open {
                    say!(" OK ({})", secs(*duration));
                    st.line_open = false;
                } else {
                    say!("{} OK ({})", st.label, secs(*duration));
                }
                st.label.clear();
            }
        }
    }

    /// Ends the `Applying ...` line of the migration that was running when the runner
    /// returned an error: `FAILED`, `CANCELLED`.
    fn end(&self, word: &str) {
        if self.json {
            return;
        }
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(bar) = st.bar.take() {
            bar.finish_and_clear();
            say!("{} {word}", st.label);
        } else if st.line_open {
            say!(" {word}");
            st.line_open = false;
        } else if !st.label.is_empty() {
            say!("{} {word}", st.label);
        }
    }
}

fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{msg} {spinner} {elapsed}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

fn spinner_style_with_prefix() -> ProgressStyle {
    ProgressStyle::with_template("{msg} {spinner} {elapsed}\n    {prefix}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

/// The index build's line under the `Applying ...` one: the phase, the session it
/// waits for, and the phase's own counter as a bar:
/// `building index: scanning table [=======>        ] 250/1000 blocks (25%)`.
/// `backfill 120000/1000000 rows (12%), 118000 updated, 41000 rows/s, ETA 21s, batch 4000`.
fn backfill_line(
    done: i64,
    updated: i64,
    total: i64,
    rate: f64,
    eta: Option<Duration>,
    batch: u64,
) -> String {
    let pct = if total > 0 {
        format!(" ({}%)", done * 100 / total)
    } else {
        String::new()
    };
    let eta = eta
        .map(|e| format!(", ETA {}", secs(e)))
        .unwrap_or_default();
    format!(
        "backfill {done}/{total} rows{pct}, {updated} updated, {rate:.0} rows/s{eta}, batch {batch}"
    )
}

fn index_build_line(p: &IndexBuildProgress) -> String {
    const WIDTH: usize = 30;
    let lockers = if p.current_locker_pid != 0 {
        format!(
            ", waiting for pid {} ({} of {} lockers done)",
            p.current_locker_pid, p.lockers_done, p.lockers_total
        )
    } else {
        String::new()
    };
    let Some((done, total, unit)) = p.counter() else {
        return format!("{}{lockers}", p.phase);
    };
    let done = done.clamp(0, total.max(1));
    let filled = (done as usize * WIDTH) / total.max(1) as usize;
    let bar = if filled >= WIDTH {
        "=".repeat(WIDTH)
    } else {
        format!("{}>{}", "=".repeat(filled), " ".repeat(WIDTH - filled - 1))
    };
    format!(
        "{}{lockers} [{bar}] {done}/{total} {unit} ({}%)",
        p.phase,
        done * 100 / total.max(1)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_index_builds_line_pairs_each_phase_with_its_own_counter() {
        let row =
            |phase: &str, blocks: (i64, i64), tuples: (i64, i64), locker: i64| IndexBuildProgress {
                pid: 1,
                table: Some("large_email".into()),
                index: Some("large_email_email_idx".into()),
                command: "CREATE INDEX CONCURRENTLY".into(),
                phase: phase.into(),
                lockers_total: i64::from(locker != 0),
                lockers_done: 0,
                current_locker_pid: locker,
                blocks_total: blocks.1,
                blocks_done: blocks.0,
                tuples_total: tuples.1,
                tuples_done: tuples.0,
            };
        // A build's samples as PostgreSQL 15 gave them, in order.
        let lines: Vec<String> = [
            row("waiting for writers before build", (0, 0), (0, 0), 4242),
            row("building index: scanning table", (3676, 14705), (0, 0), 0),
            row(
                "building index: sorting live tuples",
                (0, 0),
                (0, 2_000_000),
                0,
            ),
            row(
                "building index: loading tuples in tree",
                (0, 0),
                (500_000, 2_000_000),
                0,
            ),
            row(
                "index validation: scanning table",
                (14705, 14705),
                (0, 0),
                0,
            ),
        ]
        .iter()
        .map(index_build_line)
        .collect();
        insta::assert_snapshot!(lines.join("\n"), @"
        waiting for writers before build, waiting for pid 4242 (0 of 1 lockers done) [>                             ] 0/1 lockers (0%)
        building index: scanning table [=======>                      ] 3676/14705 blocks (24%)
        building index: sorting live tuples
        building index: loading tuples in tree [=======>                      ] 500000/2000000 tuples (25%)
        index validation: scanning table [==============================] 14705/14705 blocks (100%)
        ");
    }

    #[test]
    fn the_resume_command_is_this_one_quoted_without_a_password() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            resume_command(args(&["migrate", "app", "0002", "--lock-timeout", "60s"]).into_iter()),
            "pgcalm migrate app 0002 --lock-timeout 60s"
        );
        assert_eq!(
            resume_command(
                args(&[
                    "--database-url",
                    "postgres://u:s3cret@h:5432/d",
                    "--migrations-dir",
                    "my migrations",
                    "migrate",
                    "--database-url=postgres://u:s3cret@h/d",
                    "--direct-url=postgres://u:s3cret@h:5433/d",
                ])
                .into_iter()
            ),
            "pgcalm --database-url 'postgresql://u:****@h:5432/d' --migrations-dir 'my migrations' \
             migrate --database-url 'postgresql://u:****@h:5432/d' \
             --direct-url 'postgresql://u:****@h:5433/d'"
        );
    }
}
