//! `pgcalm migrate [APP] [TARGET]`: the seed's `manage.py migrate demoapp 0002`, forward
//! or back, Django's output plus the time each migration took; `--plan` shows what would
//! run.

use std::io::Write as _;

use anyhow::Context as _;
use pgcalm_migrate::{Goal, InDoubt, Runner};
use pgcalm_pg::Target;

use crate::migrate_events::run_printed;
use crate::output::migration::{plan_json, render_plan};
use crate::settings::{PolicyArgs, RunnerArgs, Settings};

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
    // Read into the settings (policy, direct URL) in `main`.
    #[command(flatten)]
    pub policy: PolicyArgs,
    #[command(flatten)]
    pub runner: RunnerArgs,
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
    let direct = match settings.direct_url.as_deref() {
        Some(url) => Some(Target::from_url(url).context(
            "--direct-url (PGCALM_MIGRATE_URL, [migrate] direct_url) is not a PostgreSQL URL",
        )?),
        None => None,
    };
    let runner = Runner::new(target, settings.migrations_dir())
        .with_policy(settings.policy.clone())
        .with_direct_target(direct)
        .on_in_doubt(in_doubt);
    if args.plan {
        let plan = runner.plan(&goal).await?;
        let lint = runner.lint_options().await?;
        if settings.json() {
            return crate::output::print_json(&plan_json(&plan, runner.policy(), &lint));
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
