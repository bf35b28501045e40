//! `pgcalm trace [PATHS]`: runs each migration on a throwaway database and reports the
//! locks it really takes (pg_locks), rewrites, scans and index builds, per statement,
//! beside what the lock table predicted; findings carry lint's rule names and who saw
//! them (lint, trace, both), rendered by `pgcalm lint`'s renderer in every format (text,
//! json, github, markdown). A pgcalm migration runs with the runner's timeouts, from the
//! resolved policy (pgcalm.toml `[migrate]`, `PGCALM_*`). Exit 1 when there are findings.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use pgcalm_lint::{LintOptions, PgVersion};
use pgcalm_migrate::{Direction, Policy};
use pgcalm_trace::{ScratchDb, Script, Server, TraceOptions, TraceReport, build_report, trace};

use crate::output::{Exit, trace_report};
use crate::settings::{OutputFormat, Settings};

/// Flags of `pgcalm trace`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Migration files (`migrations/<app>/<NNNN>_<name>.sql`: the app's earlier
    /// migrations run first) or plain SQL files (see --setup).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// SQL run before a traced file, untraced (the schema the migration expects, e.g. a
    /// `pg_dump -s`); repeatable, in order.
    #[arg(long)]
    pub setup: Vec<PathBuf>,
    /// Rows put into every existing table before tracing, so scans and rewrites do work.
    #[arg(long, default_value_t = 100)]
    pub rows: u64,
    /// With --database-url: trace in that database even if it has tables.
    #[arg(long)]
    pub force: bool,
    /// Trace a migration's down section (what unapplying runs), after applying it.
    #[arg(long)]
    pub backwards: bool,
}

/// Where the traces run.
enum Place {
    Server(Server),
    Given(Option<Box<ScratchDb>>),
}

/// Traces each file and prints the reports.
pub(crate) async fn run(settings: &Settings, args: Args) -> anyhow::Result<()> {
    let mut place = match settings.cluster() {
        // DATABASE_URL / --database-url: a scratch database the user owns.
        None => {
            if args.paths.len() > 1 {
                bail!(
                    "with --database-url, trace one file at a time: each needs an empty database\n  \
                     fix: give one path, or leave --database-url out to get a fresh database per file"
                );
            }
            Place::Given(Some(Box::new(
                ScratchDb::given(settings.target_unchecked()?, args.force).await?,
            )))
        }
        Some(cluster) if cluster.running_pid().is_some() => Place::Server(Server::Existing {
            admin: Box::new(settings.target_unchecked()?),
        }),
        Some(_) => Place::Server(
            Server::start_throwaway().context("starting a throwaway PostgreSQL for the trace")?,
        ),
    };
    let mut reports = Vec::new();
    let mut outcome = Ok(());
    for path in &args.paths {
        // A spinner on a terminal: a trace takes seconds (setup, seeding, each statement).
        let spinner = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_message(format!("tracing {}", path.display()));
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            bar
        });
        // Ctrl-C or SIGTERM ends the trace but still stops and deletes a throwaway cluster below.
        let traced = tokio::select! {
            r = trace_one(&mut place, path, &args, &settings.policy) => r,
            _ = crate::signals::interrupted() => Err(anyhow::anyhow!("interrupted")),
        };
        if let Some(bar) = spinner {
            bar.finish_and_clear();
        }
        match traced {
            Ok(r) => reports.push(r),
            Err(e) => {
                outcome = Err(e);
                break;
            }
        }
    }
    if let Place::Server(server) = place {
        server.shutdown()?;
    }
    outcome?;
    let fancy = settings.format == OutputFormat::Text && std::io::stdout().is_terminal();
    let out = trace_report::render(&reports, settings.format, fancy)?;
    say!("{}", out.trim_end_matches('\n'));
    if reports.iter().any(|r| !r.findings.is_empty()) {
        return Err(Exit(1).into());
    }
    Ok(())
}

async fn trace_one(
    place: &mut Place,
    path: &Path,
    args: &Args,
    policy: &Policy,
) -> anyhow::Result<TraceReport> {
    let direction = if args.backwards {
        Direction::Down
    } else {
        Direction::Up
    };
    let script = Script::load_direction(path, &args.setup, direction)?;
    let db = match place {
        Place::Server(server) => server.fresh_database().await?,
        Place::Given(db) => *db.take().context("one file per given database")?,
    };
    let options = TraceOptions {
        seed_rows: args.rows,
        policy: policy.clone(),
    };
    let traced = trace(db.target(), &script, &options).await;
    db.dispose().await?;
    let traced = traced?;
    let lint_options = LintOptions {
        pg_version: PgVersion(traced.server_major),
        ..LintOptions::default()
    };
    let lint = script.lint(&lint_options);
    Ok(build_report(&script, traced, &lint, &lint_options))
}
