//! `pgcalm migrate [APP] [TARGET]`: the seed's `manage.py migrate demoapp 0002`, forward
//! or back, Django's output plus the time each migration took; `--plan` shows what would
//! run. Also the shared pieces of the migration commands: the `[migrate]` section of
//! pgcalm.toml, the runner, the event printer, and `pgcalm up`'s start point.

use std::io::{IsTerminal, Write as _};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use pgcalm_lint::LintOptions;
use pgcalm_migrate::{
    Cancellation, Direction, Event, Goal, InDoubt, MigrateError, Operation, Plan, Policy, Runner,
    StatementVerdict, describe_blocker, describe_queue, describe_session, parse_duration,
    statement_verdicts,
};
use pgcalm_pg::Target;
use pgcalm_pg::catalog::Queued;
use tokio_util::sync::CancellationToken;

use crate::context::Context;
use crate::interrupt::{Interrupt, Interrupts};

/// Flags of `pgcalm migrate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// App whose migrations to run (all apps when omitted).
    pub app: Option<String>,
    /// Migrate forward or back to this migration (a prefix of its name is enough);
    /// `zero` unapplies all of the app's migrations.
    #[arg(requires = "app")]
    pub target: Option<String>,
    /// Show what would run, with each statement's timeouts, without running it.
    #[arg(long)]
    pub plan: bool,
    /// A statement that cannot run in a transaction was in flight when the last runner
    /// died and the database does not show whether it completed: record it as done
    #[arg(long, conflicts_with = "rerun")]
    pub assume_done: bool,
    /// ... or run it again
    #[arg(long)]
    pub rerun: bool,
    /// The PostgreSQL server's own address, for when DATABASE_URL is a transaction
    /// pooler: the whole run then goes there (prefer the environment variable: a
    /// password on a command line is visible to other users) [pgcalm.toml [migrate]
    /// direct_url]
    #[arg(long, env = "PGCALM_MIGRATE_URL", hide_env_values = true)]
    pub direct_url: Option<String>,
    /// End sessions the migration waits for that sit idle in a transaction longer than
    /// this (pg_terminate_backend); each is printed and journaled [default: never;
    /// pgcalm.toml [migrate] cancel_idle_blockers]
    #[arg(long, env = "PGCALM_CANCEL_IDLE_BLOCKERS", value_parser = parse_duration)]
    pub cancel_idle_blockers: Option<Duration>,
    #[command(flatten)]
    pub policy: PolicyArgs,
}

/// Safety settings, shared by `migrate`, `sqlmigrate` and `up`.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct PolicyArgs {
    /// lock_timeout for every statement: the longest the app can queue behind the
    /// migration [default: 2s; pgcalm.toml [migrate] lock_timeout]
    #[arg(long, env = "PGCALM_LOCK_TIMEOUT", value_parser = parse_duration)]
    pub lock_timeout: Option<Duration>,
    /// lock_timeout for statements that only take SHARE UPDATE EXCLUSIVE (CONCURRENTLY,
    /// VALIDATE): queued, they block neither reads nor writes [default: --lock-timeout]
    #[arg(long, env = "PGCALM_CONCURRENT_LOCK_TIMEOUT", value_parser = parse_duration)]
    pub concurrent_lock_timeout: Option<Duration>,
    /// statement_timeout for statements stronger than SHARE UPDATE EXCLUSIVE (those get
    /// 0) [default: the server's]
    #[arg(long, env = "PGCALM_STATEMENT_TIMEOUT", value_parser = parse_duration)]
    pub statement_timeout: Option<Duration>,
    /// Lock-timeout retries per statement (or transactional migration) [default: 10]
    #[arg(long, env = "PGCALM_MAX_RETRIES")]
    pub max_retries: Option<u32>,
    /// First retry delay; doubles each retry, with jitter [default: 500ms]
    #[arg(long, env = "PGCALM_RETRY_INITIAL", value_parser = parse_duration)]
    pub retry_initial: Option<Duration>,
    /// Longest retry delay [default: 30s]
    #[arg(long, env = "PGCALM_RETRY_MAX", value_parser = parse_duration)]
    pub retry_max: Option<Duration>,
    /// Give up after waiting this long for another runner [default: wait as long as it takes]
    #[arg(long, env = "PGCALM_WAIT", value_parser = parse_duration)]
    pub wait: Option<Duration>,
    /// How soon the server notices a runner that died mid-statement and ends the statement
    /// and its locks (PostgreSQL 14+; 0 turns it off) [default: 1s]
    #[arg(long, env = "PGCALM_CLIENT_CONNECTION_CHECK_INTERVAL", value_parser = parse_duration)]
    pub client_connection_check_interval: Option<Duration>,
    /// Run migrations that `pgcalm lint` finds risky. Without it pgcalm refuses them with
    /// the findings before anything runs (a statement with `-- pgcalm:ignore RULE reason`
    /// above it is let through) [pgcalm.toml [migrate] allow_risky]
    #[arg(long)]
    pub allow_risky: bool,
}

/// `[migrate]` section of pgcalm.toml.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct MigrateSection {
    lock_timeout: Option<String>,
    concurrent_lock_timeout: Option<String>,
    statement_timeout: Option<String>,
    max_retries: Option<u32>,
    retry_initial: Option<String>,
    retry_max: Option<String>,
    wait: Option<String>,
    client_connection_check_interval: Option<String>,
    allow_risky: Option<bool>,
    cancel_idle_blockers: Option<String>,
    direct_url: Option<String>,
}

/// `[up]` section of pgcalm.toml.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct UpSection {
    /// `app:migration` pairs `pgcalm up` migrates forward to.
    #[serde(default)]
    migrate_to: Vec<String>,
}

/// The policy: flags and environment > pgcalm.toml `[migrate]` > defaults.
pub fn policy(ctx: &Context, args: &PolicyArgs) -> anyhow::Result<Policy> {
    let file: MigrateSection = ctx.section("migrate")?;
    let dur = |flag: Option<Duration>,
               key: &str,
               text: &Option<String>|
     -> anyhow::Result<Option<Duration>> {
        match (flag, text) {
            (Some(d), _) => Ok(Some(d)),
            (None, Some(t)) => parse_duration(t)
                .map(Some)
                .map_err(|e| anyhow::anyhow!("pgcalm.toml [migrate] {key}: {e}")),
            (None, None) => Ok(None),
        }
    };
    let d = Policy::default();
    Ok(Policy {
        lock_timeout: dur(args.lock_timeout, "lock_timeout", &file.lock_timeout)?
            .unwrap_or(d.lock_timeout),
        concurrent_lock_timeout: dur(
            args.concurrent_lock_timeout,
            "concurrent_lock_timeout",
            &file.concurrent_lock_timeout,
        )?,
        statement_timeout: dur(
            args.statement_timeout,
            "statement_timeout",
            &file.statement_timeout,
        )?,
        max_retries: args
            .max_retries
            .or(file.max_retries)
            .unwrap_or(d.max_retries),
        retry_initial: dur(args.retry_initial, "retry_initial", &file.retry_initial)?
            .unwrap_or(d.retry_initial),
        retry_max: dur(args.retry_max, "retry_max", &file.retry_max)?.unwrap_or(d.retry_max),
        wait_for_lock: dur(args.wait, "wait", &file.wait)?,
        client_connection_check_interval: dur(
            args.client_connection_check_interval,
            "client_connection_check_interval",
            &file.client_connection_check_interval,
        )?
        .or(d.client_connection_check_interval),
        allow_risky: args.allow_risky || file.allow_risky.unwrap_or(d.allow_risky),
        cancel_idle_blockers: dur(None, "cancel_idle_blockers", &file.cancel_idle_blockers)?,
    })
}

/// Runs `migrate`.
pub async fn run(ctx: &Context, args: Args) -> anyhow::Result<()> {
    let goal = match (&args.app, &args.target) {
        (Some(app), Some(target)) => Goal::To {
            app: app.clone(),
            target: target.clone(),
        },
        (Some(app), None) => Goal::All(vec![app.clone()]),
        _ => Goal::All(vec![]),
    };
    let target = ctx.target().await?;
    let in_doubt = match (args.assume_done, args.rerun) {
        (true, _) => InDoubt::AssumeDone,
        (_, true) => InDoubt::Rerun,
        _ => InDoubt::Ask,
    };
    let file: MigrateSection = ctx.section("migrate")?;
    let direct = match args.direct_url.as_deref().or(file.direct_url.as_deref()) {
        Some(url) if !url.is_empty() => Some(Target::from_url(url).context(
            "--direct-url (PGCALM_MIGRATE_URL, [migrate] direct_url) is not a PostgreSQL URL",
        )?),
        _ => None,
    };
    let mut policy = policy(ctx, &args.policy)?;
    if args.cancel_idle_blockers.is_some() {
        policy.cancel_idle_blockers = args.cancel_idle_blockers;
    }
    let runner = Runner::new(target, ctx.migrations_dir())
        .with_policy(policy)
        .with_direct_target(direct)
        .on_in_doubt(in_doubt);
    if args.plan {
        let plan = runner.plan(&goal).await?;
        let lint = runner.lint_options().await?;
        if ctx.json() {
            return crate::render::json(&plan_json(&plan, runner.policy(), &lint));
        }
        let _ = write!(
            std::io::stdout(),
            "{}",
            render_plan(&plan, runner.policy(), &lint)
        );
        return Ok(());
    }
    run_with_printer(runner, &goal, ctx.json()).await
}

/// Runs the runner towards `goal`, printing its events (Django-style text, or one JSON
/// object per event). SIGINT/SIGTERM cancel the run (the statement in flight is cancelled
/// on the server and rolled back); it then says what stayed applied and how to resume,
/// and exits 130 / 143. A second signal exits at once, without waiting.
pub async fn run_with_printer(runner: Runner, goal: &Goal, json: bool) -> anyhow::Result<()> {
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
    let result = runner.migrate(goal).await;
    watcher.abort();
    match result {
        Ok(_) => Ok(()),
        Err(MigrateError::Cancelled(c)) => {
            let signal = first_rx.try_recv().unwrap_or(Interrupt::Int);
            printer.end("CANCELLED");
            report_cancellation(&c, signal, json);
            Err(crate::render::Exit(signal.exit_code()).into())
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
/// shell-quoted, with the password of a `--database-url` masked.
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

/// `pgcalm up`'s last step: apply the migrations up to the start point named in
/// pgcalm.toml (`[up] migrate_to = ["demoapp:0001"]`), forward only.
pub async fn apply_start_point(ctx: &Context, target: &Target) -> anyhow::Result<()> {
    let up: UpSection = ctx.section("up")?;
    if up.migrate_to.is_empty() {
        return Ok(());
    }
    let runner = Runner::new(target.clone(), ctx.migrations_dir())
        .with_policy(policy(ctx, &PolicyArgs::default())?);
    for spec in &up.migrate_to {
        let (app, name) = spec
            .split_once(':')
            .filter(|(a, t)| !a.is_empty() && !t.is_empty())
            .with_context(|| {
                format!("pgcalm.toml [up] migrate_to: `{spec}` is not an `app:migration` pair (e.g. \"demoapp:0001\")")
            })?;
        let goal = Goal::ForwardTo {
            app: app.to_string(),
            target: name.to_string(),
        };
        run_with_printer(runner.clone(), &goal, ctx.json()).await?;
    }
    Ok(())
}

/// `statement 3 (migrations/app/0002_x.sql:7)`.
fn at(s: &pgcalm_migrate::StatementRef) -> String {
    format!("statement {} ({}:{})", s.number, s.path.display(), s.line)
}

/// `12.3s`, `0.04s`.
pub fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 1.0 {
        format!("{s:.2}s")
    } else {
        format!("{s:.1}s")
    }
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

/// The `--plan` text: each migration, then each statement with its file line, the
/// timeouts it runs with, the lock it takes (the lock table), what that blocks, and its
/// verdict (lint).
pub fn render_plan(plan: &Plan, policy: &Policy, lint: &LintOptions) -> String {
    let mut out = String::from("Planned operations:\n");
    if plan.steps.is_empty() {
        out.push_str("  No planned migration operations.\n");
        return out;
    }
    for step in &plan.steps {
        let section = step.section();
        let verb = match step.direction {
            Direction::Up => "apply",
            Direction::Down => "unapply",
        };
        let tx = if section.transaction {
            "in one transaction"
        } else {
            "transaction:false, statement by statement"
        };
        let resume = if step.resume_from > 0 {
            format!(
                "; resumes at statement {} (1-{} done by an interrupted run)",
                step.resume_from + 1,
                step.resume_from
            )
        } else {
            String::new()
        };
        out.push_str(&format!("{} ({verb}, {tx}{resume})\n", step.file.id()));
        let verdicts = statement_verdicts(&step.file, step.direction, step.resume_from, lint);
        for (s, v) in section
            .statements
            .iter()
            .skip(step.resume_from)
            .zip(&verdicts)
        {
            let settings: Vec<String> = policy
                .settings_for(s.kind())
                .iter()
                .map(|x| format!("{} {}", x.name, human_setting(&x.value)))
                .collect();
            out.push_str(&format!(
                "    {}:{}  {}  [{}]\n      lock: {}; {}\n",
                step.file.path.display(),
                s.line,
                s.summary(),
                settings.join(", "),
                v.lock_summary(),
                v.verdict()
            ));
        }
    }
    out
}

/// `'2000ms'` -> `2s`, `'250ms'` -> `250ms`, `0` -> `0`.
fn human_setting(value: &str) -> String {
    let v = value.trim_matches('\'');
    match v.strip_suffix("ms").and_then(|n| n.parse::<u64>().ok()) {
        Some(ms) if ms > 0 && ms % 1000 == 0 => format!("{}s", ms / 1000),
        _ => v.to_string(),
    }
}

/// The `--plan --format json` document.
pub fn plan_json(plan: &Plan, policy: &Policy, lint: &LintOptions) -> serde_json::Value {
    let steps: Vec<serde_json::Value> = plan
        .steps
        .iter()
        .map(|step| {
            let section = step.section();
            serde_json::json!({
                "app": step.file.app,
                "name": step.file.name,
                "path": step.file.path,
                "direction": step.direction,
                "transaction": section.transaction,
                "resume_from": step.resume_from,
                "statements": section.statements.iter().skip(step.resume_from)
                    .zip(statement_verdicts(&step.file, step.direction, step.resume_from, lint))
                    .map(|(s, v)| with_verdict(serde_json::json!({
                    "number": s.index + 1,
                    "line": s.line,
                    "kind": s.kind().label,
                    "sql": s.sql,
                    "settings": policy.settings_for(s.kind()),
                }), &v)).collect::<Vec<_>>(),
            })
        })
        .collect();
    serde_json::json!({ "operation": plan.operation, "steps": steps })
}

/// A statement's `--format json` object (`--plan`, `sqlmigrate`) with what the lock
/// table and lint say about it added: `locks`, `verdict` (`safe` or `risky`), `rules`.
pub fn with_verdict(mut statement: serde_json::Value, v: &StatementVerdict) -> serde_json::Value {
    statement["locks"] = serde_json::json!(v.locks.locks);
    statement["verdict"] = if v.findings.is_empty() {
        "safe"
    } else {
        "risky"
    }
    .into();
    statement["rules"] = v.findings.iter().map(|f| f.rule).collect::<Vec<_>>().into();
    statement
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
                    let lockers = if progress.current_locker_pid != 0 {
                        format!(
                            ", waiting for pid {} ({} of {} lockers done)",
                            progress.current_locker_pid,
                            progress.lockers_done,
                            progress.lockers_total
                        )
                    } else {
                        String::new()
                    };
                    match progress.counter() {
                        Some((done, total, unit)) => {
                            bar.set_style(build_style(unit));
                            // Position first to 0: no frame mixes two phases' counters.
                            bar.set_position(0);
                            bar.set_length(total.max(1) as u64);
                            bar.set_position(done.max(0) as u64);
                        }
                        None => bar.set_style(spinner_style_with_prefix()),
                    }
                    bar.set_prefix(format!("{}{lockers}", progress.phase));
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

fn build_style(unit: &str) -> ProgressStyle {
    ProgressStyle::with_template(&format!(
        "{{msg}} {{spinner}} {{elapsed}}\n    {{prefix}} [{{bar:30}}] {{pos}}/{{len}} {unit} ({{percent}}%)"
    ))
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ")
}

#[cfg(test)]
mod tests {
    use super::*;

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
