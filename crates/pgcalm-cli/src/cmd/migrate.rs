//! `pgcalm migrate [APP] [TARGET]`: the seed's `manage.py migrate demoapp 0002`, forward
//! or back, Django's output plus the time each migration took; `--plan` shows what would
//! run.

use std::io::Write as _;
use std::time::Duration;

use anyhow::Context as _;
use pgcalm_migrate::{Goal, InDoubt, Runner, parse_duration};
use pgcalm_pg::Target;

use crate::migrate_events::run_printed;
use crate::output::migration::{plan_json, render_plan};
use crate::settings::{PolicyArgs, Settings};

/// Flags of `pgcalm migrate`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
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
    /// Before each batch of a backfill (`-- pgcalm:backfill`), wait while a replica's
    /// replay lag is above this; 0 turns the throttle off [default: 1s; pgcalm.toml
    /// [migrate] max_replica_lag]
    #[arg(long, env = "PGCALM_MAX_REPLICA_LAG", value_parser = parse_duration)]
    pub max_replica_lag: Option<Duration>,
    // Read into the settings' policy in `main`.
    #[command(flatten)]
    pub policy: PolicyArgs,
}

/// Runs `migrate`.
pub(crate) async fn run(settings: &Settings, args: Args) -> anyhow::Result<()> {
    let goal = match (&args.app, &args.target) {
        (Some(app), Some(target)) => Goal::To {
            app: app.clone(),
            target: target.clone(),
        },
        (Some(app), None) => Goal::All(vec![app.clone()]),
        _ => Goal::All(vec![]),
    };
    let target = settings.target().await?;
    let in_doubt = match (args.assume_done, args.rerun) {
        (true, _) => InDoubt::AssumeDone,
        (_, true) => InDoubt::Rerun,
        _ => InDoubt::Ask,
    };
    let direct = match args
        .direct_url
        .as_deref()
        .filter(|u| !u.is_empty())
        .or(settings.direct_url.as_deref())
    {
        Some(url) => Some(Target::from_url(url).context(
            "--direct-url (PGCALM_MIGRATE_URL, [migrate] direct_url) is not a PostgreSQL URL",
        )?),
        None => None,
    };
    let mut policy = settings.policy.clone();
    if args.cancel_idle_blockers.is_some() {
        policy.cancel_idle_blockers = args.cancel_idle_blockers;
    }
    if let Some(lag) = args.max_replica_lag {
        policy.max_replica_lag = Some(lag);
    }
    let runner = Runner::new(target, settings.migrations_dir())
        .with_policy(policy)
        .with_direct_target(direct)
        .on_in_doubt(in_doubt);
    if args.plan {
        let plan = runner.plan(&goal).await?;
        let lint = runner.lint_options().await?;
        if settings.json() {
            return crate::output::json(&plan_json(&plan, runner.policy(), &lint));
        }
        let _ = write!(
            std::io::stdout(),
            "{}",
            render_plan(&plan, runner.policy(), &lint)
        );
        return Ok(());
    }
    run_printed(runner, settings.json(), |runner| async move {
        runner.migrate(&goal).await
    })
    .await?;
    Ok(())
}
